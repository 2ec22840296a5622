//! The store's conversations, on every backend: visitors, conversations and their reads,
//! compare-and-set transitions with their system line, the message log (gap-free
//! sequences, idempotent client ids, the summary an append moves, webhook marks) and
//! key-account marks. The last tests are PostgreSQL's alone: two stores (two hubs) on
//! one database.

use crate::common::each_backend;
use salam_protocol::{
    Author, AuthorKind, ConversationState, EventCode, Message, MessageKind, PageInfo, Preview,
    QuickReply, SystemEvent,
};
use salam_store::postgres::scratch::ScratchDatabase;
use salam_store::{
    AgentRole, Conversation, ConversationFilter, IdentityUpdate, NewAgent, NewMessage,
    OfflineRequest, PostgresOptions, PostgresStore, RetentionBudget, Store, StoreError, Transition,
    Transitioned, VisitorUpdate,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A visitor's text with a client id.
fn text(conversation: &str, client_id: Option<&str>, body: &str) -> NewMessage {
    NewMessage {
        conversation: conversation.to_owned(),
        kind: MessageKind::Text,
        author: Author {
            kind: AuthorKind::Visitor,
            id: Some("v_1".into()),
            name: None,
        },
        text: body.to_owned(),
        client_id: client_id.map(str::to_owned),
        quick_replies: Vec::new(),
        rule: None,
        event: None,
        at: 1,
        only_in: None,
    }
}

fn agent_text(conversation: &str, client_id: &str, body: &str) -> NewMessage {
    let mut message = text(conversation, Some(client_id), body);
    message.author = Author {
        kind: AuthorKind::Agent,
        id: Some("a_1".into()),
        name: Some("Sara".into()),
    };
    message
}

/// A site, its visitor `v_1` and a conversation with the bot.
async fn fixture(store: &dyn Store) -> Conversation {
    let site = store.create_site("Shop", &["*".into()]).await.unwrap();
    store
        .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
        .await
        .unwrap();
    store
        .create_conversation(&site.id, "v_1", ConversationState::Bot, 1)
        .await
        .unwrap()
}

async fn sara(store: &dyn Store) -> salam_store::Agent {
    store
        .create_agent(NewAgent {
            email: "sara@x.test".into(),
            name: "Sara".into(),
            role: AgentRole::Agent,
            password_hash: "h".into(),
            all_sites: true,
            site_ids: vec![],
            capacity: None,
            departments: vec![],
        })
        .await
        .unwrap()
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|message| message.seq).collect()
}

fn ids(conversations: &[Conversation]) -> Vec<&str> {
    conversations
        .iter()
        .map(|conversation| conversation.id.as_str())
        .collect()
}

#[tokio::test]
async fn sequences_are_gap_free_and_resends_are_idempotent() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let mut handles = Vec::new();
        for index in 0..200 {
            let store = store.clone();
            let id = conversation.id.clone();
            handles.push(tokio::spawn(async move {
                store
                    .append(text(&id, Some(&format!("m{index}")), "hi"))
                    .await
                    .unwrap()
            }));
        }
        let mut numbers = Vec::new();
        for handle in handles {
            let appended = handle.await.unwrap();
            assert!(!appended.duplicate);
            numbers.push(appended.message.seq);
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=200).collect::<Vec<_>>());
        let again = store
            .append(text(&conversation.id, Some("m7"), "hi again"))
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message.text, "hi", "the original is returned");
        assert_eq!(again.message.client_id.as_deref(), Some("m7"));
        // The same client id from another author is another message.
        let other = store
            .append(agent_text(&conversation.id, "m7", "hello"))
            .await
            .unwrap();
        assert_eq!((other.duplicate, other.message.seq), (false, 201));
        let stored = store
            .messages_after(&conversation.id, 0, 1000)
            .await
            .unwrap();
        assert_eq!(seqs(&stored), (1..=201).collect::<Vec<_>>());
        let found = store.conversation(&conversation.id).await.unwrap().unwrap();
        assert_eq!(found.last_seq, 201, "a resend gives its number back");
        // The next message follows without a gap.
        let next = store
            .append(text(&conversation.id, Some("m-next"), "next"))
            .await
            .unwrap();
        assert_eq!(next.message.seq, 202);
    })
    .await;
}

#[tokio::test]
async fn queued_appends_commit_in_the_order_they_were_queued() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let mut pending = Vec::new();
        for index in 0..50 {
            let mut message = text(&conversation.id, Some(&format!("q{index}")), "x");
            message.text = format!("line {index}");
            pending.push(store.append_queued(message).await.unwrap());
        }
        // A resend queued among them is answered with the original.
        pending.push(
            store
                .append_queued(text(&conversation.id, Some("q3"), "again"))
                .await
                .unwrap(),
        );
        let mut answers = Vec::new();
        for answer in pending {
            answers.push(answer.await.unwrap());
        }
        let resend = answers.pop().unwrap();
        assert!(resend.duplicate);
        assert_eq!(
            (resend.message.seq, resend.message.text.as_str()),
            (4, "line 3")
        );
        for (index, appended) in answers.iter().enumerate() {
            assert_eq!(appended.message.seq, index as u64 + 1);
            assert_eq!(appended.message.text, format!("line {index}"));
            assert_eq!(appended.state, ConversationState::Bot);
            assert_eq!(appended.unread, index as u32 + 1);
        }
        let stored = store
            .messages_after(&conversation.id, 0, 100)
            .await
            .unwrap();
        assert_eq!(stored.len(), 50);
        assert_eq!(stored[49].text, "line 49");
    })
    .await;
}

/// A refusal in the writer's batch (a missing conversation, a closed one, a bot line
/// too late) answers its own caller and spoils none of the others, queued or not.
#[tokio::test]
async fn a_refused_append_does_not_spoil_its_batch() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let site_id = conversation.site_id.clone();
        let closed = store
            .create_conversation(&site_id, "v_1", ConversationState::Closed, 1)
            .await
            .unwrap();
        let good = store.append(text(&conversation.id, Some("a"), "x"));
        let bad = store.append(text("c_missing", Some("b"), "x"));
        let (good, bad) = tokio::join!(good, bad);
        assert_eq!(good.unwrap().message.seq, 1);
        assert!(matches!(bad, Err(StoreError::NotFound)));
        let mut bot_line = text(&conversation.id, None, "too late");
        bot_line.author.kind = AuthorKind::Bot;
        bot_line.only_in = Some(ConversationState::Queued);
        let mut pending = Vec::new();
        for message in [
            text(&conversation.id, Some("c1"), "one"),
            text("c_missing", Some("c2"), "lost"),
            text(&closed.id, Some("c3"), "late"),
            bot_line,
            text(&conversation.id, Some("c4"), "two"),
        ] {
            pending.push(store.append_queued(message).await.unwrap());
        }
        let mut answers = Vec::new();
        for answer in pending {
            answers.push(answer.await);
        }
        assert_eq!(answers[0].as_ref().unwrap().message.seq, 2);
        assert!(matches!(answers[1], Err(StoreError::NotFound)));
        assert!(matches!(answers[2], Err(StoreError::Closed)));
        assert!(matches!(
            answers[3],
            Err(StoreError::StateChanged(ConversationState::Bot))
        ));
        assert_eq!(answers[4].as_ref().unwrap().message.seq, 3);
        assert_eq!(
            seqs(&store.messages_after(&conversation.id, 0, 10).await.unwrap()),
            vec![1, 2, 3]
        );
        assert!(
            store
                .messages_after(&closed.id, 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

/// A text holding U+0000 (which a PostgreSQL `TEXT` cannot) is stored like any other,
/// and the messages queued with it are committed.
#[tokio::test]
async fn a_text_with_a_nul_character_is_stored_without_spoiling_its_batch() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let mut pending = Vec::new();
        for (client_id, body) in [("n1", "before"), ("n2\0", "a\0b"), ("n3", "after")] {
            pending.push(
                store
                    .append_queued(text(&conversation.id, Some(client_id), body))
                    .await
                    .unwrap(),
            );
        }
        for (index, answer) in pending.into_iter().enumerate() {
            assert_eq!(answer.await.unwrap().message.seq, index as u64 + 1);
        }
        let stored = store.messages_after(&conversation.id, 0, 10).await.unwrap();
        assert_eq!(seqs(&stored), vec![1, 2, 3]);
        assert!(stored[1].text.starts_with('a') && stored[1].text.ends_with('b'));
        // Its resend is still recognised.
        let again = store
            .append(text(&conversation.id, Some("n2\0"), "a\0b"))
            .await
            .unwrap();
        assert_eq!((again.duplicate, again.message.seq), (true, 2));
        assert!(store.conversation("c_\0").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn closed_conversations_refuse_text_but_keep_events_and_answer_resends() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        store
            .append(text(&conversation.id, Some("early"), "before the close"))
            .await
            .unwrap();
        store
            .transition(Transition::new(
                &conversation.id,
                &[ConversationState::Bot],
                ConversationState::Closed,
                2,
            ))
            .await
            .unwrap();
        let refused = store.append(text(&conversation.id, None, "late")).await;
        assert!(matches!(refused, Err(StoreError::Closed)));
        let refused = store
            .append(text(&conversation.id, Some("late"), "late"))
            .await;
        assert!(matches!(refused, Err(StoreError::Closed)));
        let resend = store
            .append(text(&conversation.id, Some("early"), "before the close"))
            .await
            .unwrap();
        assert!(resend.duplicate);
        assert_eq!(
            (resend.message.seq, resend.state, resend.unread),
            (1, ConversationState::Closed, 0)
        );
        let mut event = text(&conversation.id, None, "closed");
        event.kind = MessageKind::Event;
        event.author.kind = AuthorKind::System;
        event.event = Some(SystemEvent::new(EventCode::ClosedByVisitor, &[]));
        let appended = store.append(event).await.unwrap();
        assert_eq!(
            (appended.message.seq, appended.state),
            (2, ConversationState::Closed)
        );
        let stored = store.messages_after(&conversation.id, 1, 10).await.unwrap();
        assert_eq!(
            stored[0].event.as_ref().map(|event| event.code),
            Some(EventCode::ClosedByVisitor)
        );
    })
    .await;
}

/// Regression (control plane): an assignment decided before a close was committed
/// after it, and its unconditional UPDATE reopened the closed conversation.
#[tokio::test]
async fn transitions_are_compare_and_set_with_their_system_line() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let sara = sara(&*store).await;
        let mut handoff = Transition::new(
            &conversation.id,
            &[ConversationState::Bot],
            ConversationState::Queued,
            5,
        );
        handoff.department = Some("billing".into());
        handoff.priority = Some(3);
        handoff.handoff_reason = Some("requested".into());
        handoff.event = Some(SystemEvent::new(EventCode::Queued, &[]));
        let Transitioned::Applied {
            conversation: queued,
            event,
        } = store.transition(handoff.clone()).await.unwrap()
        else {
            panic!("a bot conversation can be handed off")
        };
        assert_eq!(queued.state, ConversationState::Queued);
        assert_eq!(
            (queued.department.as_str(), queued.priority),
            ("billing", 3)
        );
        assert_eq!((queued.queued_at, queued.updated_at), (Some(5), 5));
        assert_eq!(queued.last_seq, 1);
        let event = event.expect("the system line is stored with the change");
        assert_eq!((event.seq, event.kind), (1, MessageKind::Event));
        assert_eq!(event.author.kind, AuthorKind::System);
        assert_eq!(event.text, "waiting for a person");
        let replayed = store.messages_after(&conversation.id, 0, 10).await.unwrap();
        assert_eq!(
            replayed[0].event.as_ref().map(|event| event.code),
            Some(EventCode::Queued)
        );
        // A second hand-off from `bot` is stale: nothing changes, no line is written.
        assert!(matches!(
            store.transition(handoff).await.unwrap(),
            Transitioned::Stale(found) if found.state == ConversationState::Queued
        ));
        // Queued: taken by an agent; department and priority stay when not given.
        let mut taken = Transition::new(
            &conversation.id,
            &[ConversationState::Queued],
            ConversationState::Assigned,
            6,
        );
        taken.agent_id = Some(sara.id.clone());
        taken.event = Some(SystemEvent::new(EventCode::Joined, &[("agent", "Sara")]));
        let pending = store.transition_queued(taken).await.unwrap();
        let Transitioned::Applied {
            conversation: assigned,
            event,
        } = pending.await.unwrap()
        else {
            panic!("a queued conversation can be taken")
        };
        assert_eq!(assigned.agent_id.as_deref(), Some(sara.id.as_str()));
        assert_eq!(assigned.agent_name.as_deref(), Some("Sara"));
        assert_eq!(
            (assigned.department.as_str(), assigned.priority),
            ("billing", 3)
        );
        assert_eq!(event.map(|event| event.seq), Some(2));
        // Back to the queue: the agent is cleared, the queue time is new.
        let requeue = Transition::new(
            &conversation.id,
            &[ConversationState::Assigned],
            ConversationState::Queued,
            7,
        );
        let Transitioned::Applied {
            conversation: requeued,
            event,
        } = store.transition(requeue).await.unwrap()
        else {
            panic!("an assigned conversation can be requeued")
        };
        assert_eq!((requeued.agent_id, requeued.queued_at), (None, Some(7)));
        assert!(event.is_none(), "no line was asked for");
        let closed = Transition::new(
            &conversation.id,
            &[ConversationState::Queued, ConversationState::Assigned],
            ConversationState::Closed,
            8,
        );
        assert!(matches!(
            store.transition(closed).await.unwrap(),
            Transitioned::Applied { .. }
        ));
        let mut late_assignment = Transition::new(
            &conversation.id,
            &[ConversationState::Queued],
            ConversationState::Assigned,
            9,
        );
        late_assignment.agent_id = Some(sara.id.clone());
        late_assignment.event = Some(SystemEvent::new(EventCode::Joined, &[("agent", "Sara")]));
        let pending = store.transition_queued(late_assignment).await.unwrap();
        assert!(matches!(
            pending.await.unwrap(),
            Transitioned::Stale(found) if found.state == ConversationState::Closed
        ));
        let history = store.messages_after(&conversation.id, 0, 10).await.unwrap();
        assert_eq!(
            seqs(&history),
            vec![1, 2],
            "the refused assignment wrote no line"
        );
        assert!(matches!(
            store
                .transition(Transition::new(
                    "c_missing",
                    &[ConversationState::Bot],
                    ConversationState::Closed,
                    10
                ))
                .await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

#[tokio::test]
async fn bot_lines_wait_for_the_bot_state() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let sara = sara(&*store).await;
        let mut bot_line = text(&conversation.id, None, "Our hours are 9 to 5.");
        bot_line.author.kind = AuthorKind::Bot;
        bot_line.rule = Some("hours".into());
        bot_line.quick_replies = vec![QuickReply {
            label: "Thanks".into(),
            payload: "thanks".into(),
        }];
        bot_line.only_in = Some(ConversationState::Bot);
        let first = store.append(bot_line.clone()).await.unwrap();
        let stored = store.messages_after(&conversation.id, 0, 1).await.unwrap();
        assert_eq!(stored, vec![first.message]);
        assert_eq!(stored[0].rule.as_deref(), Some("hours"));
        assert_eq!(stored[0].quick_replies.len(), 1);
        let mut taken = Transition::new(
            &conversation.id,
            &[ConversationState::Bot],
            ConversationState::Assigned,
            3,
        );
        taken.agent_id = Some(sara.id.clone());
        store.transition(taken).await.unwrap();
        assert!(matches!(
            store.append(bot_line).await,
            Err(StoreError::StateChanged(ConversationState::Assigned))
        ));
        assert_eq!(
            store
                .conversation(&conversation.id)
                .await
                .unwrap()
                .unwrap()
                .last_seq,
            1,
            "the refused line took no number"
        );
    })
    .await;
}

#[tokio::test]
async fn appends_move_the_summary_in_the_same_statement() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let first = store
            .append(text(&conversation.id, Some("v1"), "my parcel is late"))
            .await
            .unwrap();
        assert_eq!(first.unread, 1);
        let second = store
            .append(text(&conversation.id, Some("v2"), "hello?"))
            .await
            .unwrap();
        assert_eq!(second.unread, 2);
        // No first response before the hand-off (the bot phase does not count).
        let mut bot_reply = agent_text(&conversation.id, "b1", "The bot answers");
        bot_reply.author.kind = AuthorKind::Bot;
        store.append(bot_reply).await.unwrap();
        let mut handoff = Transition::new(
            &conversation.id,
            &[ConversationState::Bot],
            ConversationState::Queued,
            10,
        );
        handoff.handoff_reason = Some("requested".into());
        store.transition(handoff).await.unwrap();
        let mut note = agent_text(&conversation.id, "n1", "checking the courier");
        note.kind = MessageKind::Note;
        note.at = 15;
        assert_eq!(
            store.append(note).await.unwrap().unread,
            2,
            "a note reads nothing"
        );
        let found = store.conversation(&conversation.id).await.unwrap().unwrap();
        let preview = found.preview.expect("a note is previewed");
        assert_eq!(
            (preview.author, preview.text.as_str(), preview.at),
            (AuthorKind::Agent, "checking the courier", 15)
        );
        let mut reply = agent_text(&conversation.id, "a1", "Sorry! It ships today.");
        reply.at = 30;
        let reply = store.append(reply).await.unwrap();
        assert_eq!(reply.unread, 0, "an agent's reply clears the count");
        let mut event = text(&conversation.id, None, "an event line");
        event.kind = MessageKind::Event;
        event.author.kind = AuthorKind::System;
        event.at = 40;
        store.append(event).await.unwrap();
        let found = store.conversation(&conversation.id).await.unwrap().unwrap();
        assert_eq!(found.updated_at, 40);
        let preview = found.preview.expect("a preview");
        assert_eq!(
            (preview.author, preview.text.as_str(), preview.at),
            (AuthorKind::Agent, "Sorry! It ships today.", 30),
            "an event line is not previewed"
        );
        let mut later = agent_text(&conversation.id, "a2", "Anything else?");
        later.at = 90;
        store.append(later).await.unwrap();
        // The first response is kept from the first reply: 30 - 10.
        store
            .key_account_mark(&conversation.id, "Gold")
            .await
            .unwrap();
        let sites = [found.site_id.clone()];
        assert_eq!(
            store
                .key_account_first_responses(&sites, 0, 100)
                .await
                .unwrap(),
            vec![20]
        );
        let long = "ش".repeat(500);
        store
            .append(text(&conversation.id, Some("v3"), &long))
            .await
            .unwrap();
        let found = store.conversation(&conversation.id).await.unwrap().unwrap();
        assert_eq!(
            found.preview.unwrap().text.chars().count(),
            Preview::MAX_CHARS
        );
        assert_eq!(found.unread, 1);
        assert!(store.mark_read(&conversation.id).await.unwrap());
        assert!(!store.mark_read(&conversation.id).await.unwrap());
        assert!(!store.mark_read("c_missing").await.unwrap());
        let found = store.conversation(&conversation.id).await.unwrap().unwrap();
        assert_eq!(found.unread, 0);
    })
    .await;
}

#[tokio::test]
async fn messages_page_forwards_and_backwards() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        for index in 0..10 {
            store
                .append(text(&conversation.id, Some(&format!("m{index}")), "x"))
                .await
                .unwrap();
        }
        let page = store.messages_before(&conversation.id, 8, 3).await.unwrap();
        assert_eq!(seqs(&page), vec![5, 6, 7]);
        let last = store
            .messages_before(&conversation.id, u64::MAX, 4)
            .await
            .unwrap();
        assert_eq!(seqs(&last), vec![7, 8, 9, 10]);
        assert!(
            store
                .messages_before(&conversation.id, 1, 4)
                .await
                .unwrap()
                .is_empty()
        );
        let page = store.messages_after(&conversation.id, 3, 4).await.unwrap();
        assert_eq!(seqs(&page), vec![4, 5, 6, 7]);
        assert!(
            store
                .messages_after(&conversation.id, 10, 4)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .messages_after(&conversation.id, u64::MAX, 4)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .messages_after("c_missing", 0, 4)
                .await
                .unwrap()
                .is_empty()
        );
        let first = &store.messages_after(&conversation.id, 0, 1).await.unwrap()[0];
        assert_eq!(first.conversation, conversation.id);
        assert_eq!(first.author.id.as_deref(), Some("v_1"));
        assert_eq!((first.kind, first.at), (MessageKind::Text, 1));
    })
    .await;
}

#[tokio::test]
async fn visitors_are_touched_and_identified() {
    each_backend(|store| async move {
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        assert!(store.visitor("v_9").await.unwrap().is_none());
        let update = VisitorUpdate {
            locale: Some("fa".into()),
            page: Some(PageInfo {
                url: Some("https://shop.test/a".into()),
                title: Some("A".into()),
                referrer: Some("https://search.test".into()),
            }),
            user_agent: Some("Browser/1".into()),
        };
        store
            .touch_visitor("v_9", &site.id, update, 100)
            .await
            .unwrap();
        let second = VisitorUpdate {
            locale: None,
            page: Some(PageInfo {
                url: Some("https://shop.test/b".into()),
                title: None,
                referrer: None,
            }),
            user_agent: None,
        };
        store
            .touch_visitor("v_9", &site.id, second, 200)
            .await
            .unwrap();
        let visitor = store.visitor("v_9").await.unwrap().unwrap();
        assert_eq!(visitor.site_id, site.id);
        assert_eq!(
            (visitor.first_seen, visitor.last_seen),
            (100, 200),
            "first seen stays"
        );
        assert_eq!(
            visitor.locale.as_deref(),
            Some("fa"),
            "a missing value keeps the old"
        );
        assert_eq!(visitor.page_url.as_deref(), Some("https://shop.test/b"));
        assert_eq!(visitor.page_title.as_deref(), Some("A"));
        assert_eq!(visitor.referrer.as_deref(), Some("https://search.test"));
        assert_eq!(visitor.user_agent.as_deref(), Some("Browser/1"));
        assert_eq!((visitor.name, visitor.email), (None, None));
        assert!(visitor.verified.is_empty());
        assert_eq!(store.visitor_external_id("v_9").await.unwrap(), None);
        assert_eq!(store.visitor_external_id("v_missing").await.unwrap(), None);
        let identity = IdentityUpdate {
            external_id: "user-42".into(),
            name: Some("Leyla".into()),
            email: None,
            verified: vec!["name".into()],
            attributes: Some(serde_json::json!({"plan": "gold"})),
        };
        store
            .identify_visitor("v_9", identity.clone())
            .await
            .unwrap();
        assert!(matches!(
            store.identify_visitor("v_missing", identity).await,
            Err(StoreError::NotFound)
        ));
        let again = IdentityUpdate {
            external_id: "user-42".into(),
            name: None,
            email: Some("leyla@x.test".into()),
            verified: vec!["email".into()],
            attributes: None,
        };
        store.identify_visitor("v_9", again).await.unwrap();
        let visitor = store.visitor("v_9").await.unwrap().unwrap();
        assert_eq!(visitor.external_id.as_deref(), Some("user-42"));
        assert_eq!(
            visitor.name.as_deref(),
            Some("Leyla"),
            "kept when not given"
        );
        assert_eq!(visitor.email.as_deref(), Some("leyla@x.test"));
        assert_eq!(visitor.verified, vec!["email".to_owned()], "replaced");
        assert_eq!(
            visitor.attributes,
            Some(serde_json::json!({"plan": "gold"}))
        );
        assert_eq!(
            store.visitor_external_id("v_9").await.unwrap().as_deref(),
            Some("user-42")
        );
        // The conversation shows the visitor's name, e-mail and locale.
        let conversation = store
            .create_conversation(&site.id, "v_9", ConversationState::Queued, 300)
            .await
            .unwrap();
        assert_eq!(conversation.visitor_name.as_deref(), Some("Leyla"));
        assert_eq!(conversation.visitor_email.as_deref(), Some("leyla@x.test"));
        assert_eq!(conversation.visitor_locale.as_deref(), Some("fa"));
        assert_eq!(
            (
                conversation.state,
                conversation.last_seq,
                conversation.unread
            ),
            (ConversationState::Queued, 0, 0)
        );
        assert_eq!(
            (conversation.created_at, conversation.updated_at),
            (300, 300)
        );
        assert_eq!((conversation.queued_at, conversation.preview), (None, None));
        assert_eq!(conversation.channel, salam_protocol::Channel::Chat);
        assert!(matches!(
            store
                .create_conversation(&site.id, "v_missing", ConversationState::Bot, 1)
                .await,
            Err(StoreError::Conflict(_))
        ));
    })
    .await;
}

/// Closes `id` at `at`.
async fn close(store: &dyn Store, id: &str, at: i64) {
    let change = Transition::new(
        id,
        &[
            ConversationState::Bot,
            ConversationState::Queued,
            ConversationState::Assigned,
        ],
        ConversationState::Closed,
        at,
    );
    assert!(matches!(
        store.transition(change).await.unwrap(),
        Transitioned::Applied { .. }
    ));
}

#[tokio::test]
async fn a_visitors_conversations_open_and_recently_closed() {
    each_backend(|store| async move {
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other_site = store.create_site("Other", &["*".into()]).await.unwrap();
        for (visitor, site_id) in [
            ("v_1", &site.id),
            ("v_2", &site.id),
            ("v_3", &other_site.id),
        ] {
            store
                .touch_visitor(visitor, site_id, VisitorUpdate::default(), 1)
                .await
                .unwrap();
        }
        let old = store
            .create_conversation(&site.id, "v_1", ConversationState::Bot, 10)
            .await
            .unwrap();
        close(&*store, &old.id, 20).await;
        let first = store
            .create_conversation(&site.id, "v_1", ConversationState::Queued, 30)
            .await
            .unwrap();
        let second = store
            .create_conversation(&site.id, "v_1", ConversationState::Bot, 40)
            .await
            .unwrap();
        store
            .create_conversation(&site.id, "v_2", ConversationState::Bot, 50)
            .await
            .unwrap();
        let open = store
            .open_conversations_of_visitor(&site.id, "v_1")
            .await
            .unwrap();
        assert_eq!(
            ids(&open),
            vec![first.id.as_str(), second.id.as_str()],
            "oldest first"
        );
        assert!(
            store
                .open_conversations_of_visitor(&other_site.id, "v_1")
                .await
                .unwrap()
                .is_empty()
        );
        let all = store.conversations_of_visitor("v_1").await.unwrap();
        assert_eq!(
            ids(&all),
            vec![second.id.as_str(), first.id.as_str(), old.id.as_str()],
            "newest first, closed ones too"
        );
        assert!(
            store
                .conversations_of_visitor("v_missing")
                .await
                .unwrap()
                .is_empty()
        );
        // A closed conversation counts as recent only while no newer one is open.
        assert_eq!(
            store
                .recent_closed_conversation_of_visitor(&site.id, "v_1", 0)
                .await
                .unwrap(),
            None
        );
        close(&*store, &first.id, 60).await;
        close(&*store, &second.id, 70).await;
        let recent = store
            .recent_closed_conversation_of_visitor(&site.id, "v_1", 0)
            .await
            .unwrap()
            .expect("the last closed");
        assert_eq!(recent.id, second.id);
        assert_eq!(recent.state, ConversationState::Closed);
        assert_eq!(
            store
                .recent_closed_conversation_of_visitor(&site.id, "v_1", 71)
                .await
                .unwrap(),
            None,
            "closed before `since`"
        );
        assert_eq!(
            store
                .recent_closed_conversation_of_visitor(&site.id, "v_1", 70)
                .await
                .unwrap()
                .map(|conversation| conversation.id),
            Some(second.id.clone())
        );
        assert_eq!(
            store
                .recent_closed_conversation_of_visitor(&other_site.id, "v_1", 0)
                .await
                .unwrap(),
            None
        );
        // An older open one does not hide a newer closed one.
        let third = store
            .create_conversation(&site.id, "v_2", ConversationState::Bot, 80)
            .await
            .unwrap();
        close(&*store, &third.id, 90).await;
        assert_eq!(
            store
                .recent_closed_conversation_of_visitor(&site.id, "v_2", 0)
                .await
                .unwrap()
                .map(|conversation| conversation.id),
            Some(third.id)
        );
    })
    .await;
}

#[tokio::test]
async fn the_contact_asked_for_is_pending_until_answered() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        assert!(!store.contact_pending(&conversation.id).await.unwrap());
        assert!(!store.contact_pending("c_missing").await.unwrap());
        assert_eq!(
            store
                .contact_of_conversation(&conversation.id)
                .await
                .unwrap(),
            None
        );
        store.set_contact_asked(&conversation.id, 5).await.unwrap();
        assert!(store.contact_pending(&conversation.id).await.unwrap());
        store.set_contact_asked("c_missing", 5).await.unwrap();
        let request = OfflineRequest {
            id: 0,
            site_id: conversation.site_id.clone(),
            visitor_id: "v_1".into(),
            conversation: Some(conversation.id.clone()),
            name: Some("Leyla".into()),
            email: Some("leyla@x.test".into()),
            phone: None,
            message: Some("call me".into()),
            created_at: 6,
            done_at: None,
        };
        let (id, _) = store.create_offline_request(request).await.unwrap();
        assert!(
            !store.contact_pending(&conversation.id).await.unwrap(),
            "the details answer the question"
        );
        let found = store
            .contact_of_conversation(&conversation.id)
            .await
            .unwrap()
            .expect("the conversation's contact");
        assert_eq!(found.id, id);
        assert_eq!(found.email.as_deref(), Some("leyla@x.test"));
        assert_eq!(
            found.conversation.as_deref(),
            Some(conversation.id.as_str())
        );
        assert_eq!(
            store.contact_of_conversation("c_missing").await.unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn inbox_lists_by_site_state_agent_and_age() {
    each_backend(|store| async move {
        let sara = sara(&*store).await;
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other_site = store.create_site("Other", &["*".into()]).await.unwrap();
        let third_site = store.create_site("Third", &["*".into()]).await.unwrap();
        for (visitor, site_id) in [
            ("v_1", &site.id),
            ("v_2", &other_site.id),
            ("v_3", &third_site.id),
        ] {
            store
                .touch_visitor(visitor, site_id, VisitorUpdate::default(), 1)
                .await
                .unwrap();
        }
        let bot = store
            .create_conversation(&site.id, "v_1", ConversationState::Bot, 10)
            .await
            .unwrap();
        let queued = store
            .create_conversation(&other_site.id, "v_2", ConversationState::Queued, 20)
            .await
            .unwrap();
        let assigned = store
            .create_conversation(&site.id, "v_1", ConversationState::Queued, 30)
            .await
            .unwrap();
        let mut taken = Transition::new(
            &assigned.id,
            &[ConversationState::Queued],
            ConversationState::Assigned,
            40,
        );
        taken.agent_id = Some(sara.id.clone());
        store.transition(taken).await.unwrap();
        let closed = store
            .create_conversation(&site.id, "v_1", ConversationState::Bot, 50)
            .await
            .unwrap();
        close(&*store, &closed.id, 60).await;
        store
            .create_conversation(&third_site.id, "v_3", ConversationState::Bot, 70)
            .await
            .unwrap();
        let both = [site.id.clone(), other_site.id.clone()];
        let open = store.open_conversations_of_sites(&both, 10).await.unwrap();
        assert_eq!(
            ids(&open),
            vec![assigned.id.as_str(), queued.id.as_str(), bot.id.as_str()],
            "open ones of the given sites, newest first"
        );
        let open = store.open_conversations_of_sites(&both, 2).await.unwrap();
        assert_eq!(ids(&open), vec![assigned.id.as_str(), queued.id.as_str()]);
        assert!(
            store
                .open_conversations_of_sites(&[], 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Idle: open ones not updated since, oldest first.
        let idle = store.idle_conversations(40, 10).await.unwrap();
        assert_eq!(ids(&idle), vec![bot.id.as_str(), queued.id.as_str()]);
        let idle = store.idle_conversations(41, 1).await.unwrap();
        assert_eq!(ids(&idle), vec![bot.id.as_str()]);
        let in_state = store
            .conversations_in_state(ConversationState::Assigned)
            .await
            .unwrap();
        assert_eq!(ids(&in_state), vec![assigned.id.as_str()]);
        assert_eq!(in_state[0].agent_name.as_deref(), Some("Sara"));
        let in_state = store
            .conversations_in_state(ConversationState::Closed)
            .await
            .unwrap();
        assert_eq!(ids(&in_state), vec![closed.id.as_str()]);
        assert_eq!(
            store
                .conversations_in_state(ConversationState::Bot)
                .await
                .unwrap()
                .len(),
            2
        );
        // Priority.
        store.set_priority(&bot.id, 7).await.unwrap();
        store.set_priority(&bot.id, -2).await.unwrap();
        store.set_priority("c_missing", 1).await.unwrap();
        assert_eq!(
            store.conversation(&bot.id).await.unwrap().unwrap().priority,
            -2
        );
        assert_eq!(store.conversation("c_missing").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn conversations_are_found_by_state_agent_and_words() {
    each_backend(|store| async move {
        let sara = sara(&*store).await;
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other_site = store.create_site("Other", &["*".into()]).await.unwrap();
        for (visitor, site_id) in [
            ("v_1", &site.id),
            ("v_2", &site.id),
            ("v_3", &other_site.id),
        ] {
            store
                .touch_visitor(visitor, site_id, VisitorUpdate::default(), 1)
                .await
                .unwrap();
        }
        let identity = IdentityUpdate {
            external_id: "u1".into(),
            name: Some("Leyla Karimi".into()),
            email: Some("LEYLA@shop.test".into()),
            verified: vec![],
            attributes: None,
        };
        store.identify_visitor("v_1", identity).await.unwrap();
        let leyla = store
            .create_conversation(&site.id, "v_1", ConversationState::Queued, 10)
            .await
            .unwrap();
        let parcel = store
            .create_conversation(&site.id, "v_2", ConversationState::Bot, 20)
            .await
            .unwrap();
        let mut message = text(&parcel.id, Some("p1"), "My PARCEL is 100% late_ly");
        message.at = 25;
        store.append(message).await.unwrap();
        let mut event = text(&parcel.id, None, "secret event words");
        event.kind = MessageKind::Event;
        event.author.kind = AuthorKind::System;
        event.at = 26;
        store.append(event).await.unwrap();
        let mut taken = Transition::new(
            &leyla.id,
            &[ConversationState::Queued],
            ConversationState::Assigned,
            30,
        );
        taken.agent_id = Some(sara.id.clone());
        store.transition(taken).await.unwrap();
        let closed = store
            .create_conversation(&site.id, "v_2", ConversationState::Bot, 40)
            .await
            .unwrap();
        close(&*store, &closed.id, 50).await;
        let elsewhere = store
            .create_conversation(&other_site.id, "v_3", ConversationState::Bot, 60)
            .await
            .unwrap();
        let sites = [site.id.clone(), other_site.id.clone()];
        let find = |filter: ConversationFilter| {
            let store = store.clone();
            let sites = sites.clone();
            async move { store.find_conversations(&sites, filter).await.unwrap() }
        };
        let all_open = find(ConversationFilter {
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(
            ids(&all_open),
            vec![elsewhere.id.as_str(), leyla.id.as_str(), parcel.id.as_str()]
        );
        let everything = find(ConversationFilter {
            include_closed: true,
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(everything.len(), 4);
        assert_eq!(everything[1].id, closed.id);
        let only_closed = find(ConversationFilter {
            state: Some(ConversationState::Closed),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&only_closed), vec![closed.id.as_str()]);
        let saras = find(ConversationFilter {
            agent_id: Some(sara.id.clone()),
            include_closed: true,
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&saras), vec![leyla.id.as_str()]);
        let words = |query: &str| ConversationFilter {
            query: Some(query.into()),
            include_closed: true,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            ids(&find(words("leyla")).await),
            vec![leyla.id.as_str()],
            "by name"
        );
        assert_eq!(
            ids(&find(words("leyla@SHOP")).await),
            vec![leyla.id.as_str()],
            "by e-mail, whatever the case"
        );
        assert_eq!(
            ids(&find(words("parcel")).await),
            vec![parcel.id.as_str()],
            "by text"
        );
        assert_eq!(ids(&find(words("100%")).await), vec![parcel.id.as_str()]);
        assert!(find(words("100%x")).await.is_empty(), "% is no wildcard");
        assert_eq!(ids(&find(words("late_ly")).await), vec![parcel.id.as_str()]);
        assert!(find(words("latexly")).await.is_empty(), "_ is no wildcard");
        assert!(
            find(words("secret event")).await.is_empty(),
            "event lines are not searched"
        );
        assert!(find(words("nobody")).await.is_empty());
        let one = find(ConversationFilter {
            include_closed: true,
            limit: 1,
            ..Default::default()
        })
        .await;
        assert_eq!(ids(&one), vec![elsewhere.id.as_str()]);
        let at_least_one = find(ConversationFilter {
            limit: 0,
            ..Default::default()
        })
        .await;
        assert_eq!(at_least_one.len(), 1, "a zero limit lists one");
    })
    .await;
}

/// A text or note of a site with webhooks leaves a `webhook_pending` mark in its own
/// transaction; event lines, system lines, resends and other sites' messages leave none.
#[tokio::test]
async fn messages_of_sites_with_webhooks_leave_a_mark() {
    each_backend(|store| async move {
        let conversation = fixture(&*store).await;
        let quiet_site = store.create_site("Quiet", &["*".into()]).await.unwrap();
        store
            .touch_visitor("v_q", &quiet_site.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        let quiet = store
            .create_conversation(&quiet_site.id, "v_q", ConversationState::Bot, 1)
            .await
            .unwrap();
        store.remember_webhook_sites(std::slice::from_ref(&conversation.site_id));
        store
            .append(text(&conversation.id, Some("w1"), "marked"))
            .await
            .unwrap();
        store
            .append_queued(text(&conversation.id, Some("w1"), "marked"))
            .await
            .unwrap()
            .await
            .unwrap();
        let mut note = agent_text(&conversation.id, "w2", "a note");
        note.kind = MessageKind::Note;
        store.append_queued(note).await.unwrap().await.unwrap();
        let mut event = text(&conversation.id, None, "an event");
        event.kind = MessageKind::Event;
        event.author.kind = AuthorKind::System;
        store.append(event).await.unwrap();
        let mut handoff = Transition::new(
            &conversation.id,
            &[ConversationState::Bot],
            ConversationState::Queued,
            2,
        );
        handoff.event = Some(SystemEvent::new(EventCode::Queued, &[]));
        store.transition(handoff).await.unwrap();
        store
            .append(text(&quiet.id, Some("q1"), "not marked"))
            .await
            .unwrap();
        let pending = store.webhook_pending_messages(10).await.unwrap();
        let marked: Vec<(String, u64, &str)> = pending
            .iter()
            .map(|(site_id, message)| (site_id.clone(), message.seq, message.text.as_str()))
            .collect();
        assert_eq!(
            marked,
            vec![
                (conversation.site_id.clone(), 1, "marked"),
                (conversation.site_id.clone(), 2, "a note"),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn key_accounts_first_responses_per_site_and_range() {
    each_backend(|store| async move {
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other = store.create_site("Other", &["*".into()]).await.unwrap();
        for (visitor, site_id) in [("v1", &site.id), ("v2", &site.id), ("v3", &other.id)] {
            store
                .touch_visitor(visitor, site_id, VisitorUpdate::default(), 1)
                .await
                .unwrap();
        }
        let mut ids = Vec::new();
        for (site_id, visitor, at) in [
            (&site.id, "v1", 100),
            (&site.id, "v2", 110),
            (&other.id, "v3", 120),
        ] {
            let created = store
                .create_conversation(site_id, visitor, ConversationState::Bot, at)
                .await
                .unwrap();
            let mut change = Transition::new(
                &created.id,
                &[ConversationState::Bot],
                ConversationState::Queued,
                at,
            );
            change.department = Some(String::new());
            store.transition(change).await.unwrap();
            let mut reply = agent_text(&created.id, "r1", "hello");
            reply.at = at + 700;
            store.append(reply).await.unwrap();
            ids.push(created.id);
        }
        store.key_account_mark(&ids[0], "Enterprise").await.unwrap();
        store.key_account_mark(&ids[2], "Gold").await.unwrap();
        assert!(matches!(
            store.key_account_mark("nope", "Gold").await,
            Err(StoreError::NotFound)
        ));
        let sites = [site.id.clone()];
        assert_eq!(
            store
                .key_account_first_responses(&sites, 0, 1000)
                .await
                .unwrap(),
            vec![700]
        );
        assert!(
            store
                .key_account_first_responses(&sites, 101, 1000)
                .await
                .unwrap()
                .is_empty(),
            "created before the range"
        );
        assert!(
            store
                .key_account_first_responses(&sites, 0, 100)
                .await
                .unwrap()
                .is_empty(),
            "the range's end is excluded"
        );
        let both = [site.id.clone(), other.id.clone()];
        assert_eq!(
            store
                .key_account_first_responses(&both, 0, 1000)
                .await
                .unwrap(),
            vec![700, 700]
        );
        // Closed and deleted by the retention sweep: the report facts keep the mark.
        for id in &ids[..2] {
            close(&*store, id, 200).await;
        }
        let budget = RetentionBudget {
            conversations: 10,
            messages: 1000,
        };
        let batch = store
            .retention_batch(&site.id, 10_000, budget)
            .await
            .unwrap();
        assert_eq!(batch.conversations, 2);
        assert!(store.conversation(&ids[0]).await.unwrap().is_none());
        assert_eq!(
            store
                .key_account_first_responses(&sites, 0, 1000)
                .await
                .unwrap(),
            vec![700],
            "the deleted key account still counts"
        );
        assert!(
            store
                .key_account_first_responses(&sites, 101, 1000)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

/// Two PostgreSQL stores (two hubs) on one scratch database.
async fn two_hubs() -> (ScratchDatabase, Arc<dyn Store>, Arc<dyn Store>) {
    tokio::task::spawn_blocking(|| {
        let database =
            ScratchDatabase::create().expect("a scratch database (SALAM_TEST_POSTGRES_URL)");
        // Small batches, so the two writers' transactions interleave often.
        let options = PostgresOptions {
            max_batch: 8,
            ..PostgresOptions::default()
        };
        let first = PostgresStore::connect(database.url(), options.clone()).expect("hub one");
        let second = PostgresStore::connect(database.url(), options).expect("hub two");
        let first: Arc<dyn Store> = Arc::new(first);
        let second: Arc<dyn Store> = Arc::new(second);
        (database, first, second)
    })
    .await
    .expect("connect task")
}

/// Several hubs append to one conversation at once, some resending client ids the
/// other hub (or they themselves) already sent: the log is 1..N without a gap, each
/// client id once, and every resend is answered with its original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_append_to_one_conversation_without_gaps_or_doubles() {
    let (_database, one, two) = two_hubs().await;
    let conversation = fixture(&*one).await;
    const PER_HUB: usize = 120;
    let mut tasks = Vec::new();
    for (hub, store) in [(0, one.clone()), (1, two.clone())] {
        let id = conversation.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut pending = Vec::new();
            // Every third message is shared: both hubs send client id `s{index}`.
            let client_id_of = |index: usize| {
                if index.is_multiple_of(3) {
                    format!("s{index}")
                } else {
                    format!("h{hub}-{index}")
                }
            };
            for index in 0..PER_HUB {
                let client_id = client_id_of(index);
                let message = text(&id, Some(&client_id), &format!("{client_id} from {hub}"));
                let answer = if index.is_multiple_of(2) {
                    store.append_queued(message).await.unwrap()
                } else {
                    let store = store.clone();
                    salam_store::PendingAppend::new(async move { store.append(message).await })
                };
                pending.push((client_id, answer));
                // Each hub resends one of its own earlier messages now and then.
                if index % 10 == 9 {
                    let earlier = client_id_of(index - 1);
                    let resend = text(&id, Some(&earlier), "resent");
                    pending.push((earlier, store.append_queued(resend).await.unwrap()));
                }
            }
            let mut answers = Vec::new();
            for (client_id, answer) in pending {
                answers.push((client_id, answer.await.unwrap()));
            }
            answers
        }));
    }
    let mut by_client_id: BTreeMap<String, Vec<(u64, bool)>> = BTreeMap::new();
    for task in tasks {
        for (client_id, appended) in task.await.unwrap() {
            assert_eq!(
                appended.message.client_id.as_deref(),
                Some(client_id.as_str())
            );
            by_client_id
                .entry(client_id)
                .or_default()
                .push((appended.message.seq, appended.duplicate));
        }
    }
    one.flush().await.unwrap();
    two.flush().await.unwrap();
    let stored = one
        .messages_after(&conversation.id, 0, 10_000)
        .await
        .unwrap();
    let distinct = by_client_id.len();
    assert_eq!(
        seqs(&stored),
        (1..=distinct as u64).collect::<Vec<_>>(),
        "gap-free, one row per client id"
    );
    let stored_ids: BTreeSet<&str> = stored
        .iter()
        .filter_map(|message| message.client_id.as_deref())
        .collect();
    assert_eq!(stored_ids.len(), distinct, "no client id twice");
    for (client_id, answers) in &by_client_id {
        let originals = answers.iter().filter(|(_, duplicate)| !duplicate).count();
        assert_eq!(originals, 1, "{client_id} was written once: {answers:?}");
        let first_seq = answers[0].0;
        assert!(
            answers.iter().all(|(seq, _)| *seq == first_seq),
            "every answer for {client_id} names the committed row: {answers:?}"
        );
        let row = &stored[first_seq as usize - 1];
        assert_eq!(row.client_id.as_deref(), Some(client_id.as_str()));
        assert_ne!(row.text, "resent", "a resend never replaces the original");
    }
    assert!(
        by_client_id.values().any(|answers| answers.len() == 2),
        "some client ids were sent by both hubs"
    );
    let found = two.conversation(&conversation.id).await.unwrap().unwrap();
    assert_eq!(found.last_seq, distinct as u64);
    assert_eq!(
        found.unread as usize, distinct,
        "each visitor text counted once"
    );
}

/// Both hubs try to take one queued conversation at the same moment: exactly one
/// wins, the other finds it taken, and one system line is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_race_to_take_a_conversation_and_exactly_one_wins() {
    let (_database, one, two) = two_hubs().await;
    let first = fixture(&*one).await;
    let sara = sara(&*one).await;
    let omid = one
        .create_agent(NewAgent {
            email: "omid@x.test".into(),
            name: "Omid".into(),
            role: AgentRole::Agent,
            password_hash: "h".into(),
            all_sites: true,
            site_ids: vec![],
            capacity: None,
            departments: vec![],
        })
        .await
        .unwrap();
    let mut conversations = vec![first.id.clone()];
    for at in 2..12 {
        let created = one
            .create_conversation(&first.site_id, "v_1", ConversationState::Queued, at)
            .await
            .unwrap();
        conversations.push(created.id);
    }
    let take = |store: Arc<dyn Store>, id: String, agent: salam_store::Agent| async move {
        let mut change = Transition::new(
            &id,
            &[ConversationState::Bot, ConversationState::Queued],
            ConversationState::Assigned,
            100,
        );
        change.agent_id = Some(agent.id.clone());
        change.event = Some(SystemEvent::new(
            EventCode::Joined,
            &[("agent", &agent.name)],
        ));
        store
            .transition_queued(change)
            .await
            .unwrap()
            .await
            .unwrap()
    };
    for id in &conversations {
        let (a, b) = tokio::join!(
            tokio::spawn(take(one.clone(), id.clone(), sara.clone())),
            tokio::spawn(take(two.clone(), id.clone(), omid.clone())),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let winner = match (&a, &b) {
            (Transitioned::Applied { conversation, .. }, Transitioned::Stale(stale))
            | (Transitioned::Stale(stale), Transitioned::Applied { conversation, .. }) => {
                assert_eq!(
                    stale.agent_id, conversation.agent_id,
                    "the loser sees the winner"
                );
                conversation.agent_id.clone().unwrap()
            }
            _ => panic!("exactly one hub takes {id}: {a:?} / {b:?}"),
        };
        let found = two.conversation(id).await.unwrap().unwrap();
        assert_eq!(found.state, ConversationState::Assigned);
        assert_eq!(found.agent_id.as_deref(), Some(winner.as_str()));
        let lines = one.messages_after(id, 0, 10).await.unwrap();
        assert_eq!(lines.len(), 1, "one system line for one change");
        assert_eq!(found.last_seq, 1);
    }
}

/// What one hub committed, the other sees at once: a resend to the other hub is
/// answered with the original (also after a close there), and numbers continue.
#[tokio::test]
async fn a_resend_to_another_hub_is_answered_with_the_original() {
    let (_database, one, two) = two_hubs().await;
    let conversation = fixture(&*one).await;
    let original = one
        .append(text(&conversation.id, Some("k1"), "first"))
        .await
        .unwrap();
    let resend = two
        .append_queued(text(&conversation.id, Some("k1"), "first again"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(resend.duplicate);
    assert_eq!(resend.message, original.message);
    let next = two
        .append(text(&conversation.id, Some("k2"), "second"))
        .await
        .unwrap();
    assert_eq!(
        (next.duplicate, next.message.seq, next.unread),
        (false, 2, 2)
    );
    let mut close = Transition::new(
        &conversation.id,
        &[ConversationState::Bot],
        ConversationState::Closed,
        5,
    );
    close.event = Some(SystemEvent::new(EventCode::ClosedByVisitor, &[]));
    assert!(matches!(
        two.transition(close).await.unwrap(),
        Transitioned::Applied { event: Some(event), .. } if event.seq == 3
    ));
    let late_resend = one
        .append(text(&conversation.id, Some("k2"), "second again"))
        .await
        .unwrap();
    assert_eq!(
        (
            late_resend.duplicate,
            late_resend.message.seq,
            late_resend.state
        ),
        (true, 2, ConversationState::Closed)
    );
    assert!(matches!(
        one.append(text(&conversation.id, Some("k3"), "too late"))
            .await,
        Err(StoreError::Closed)
    ));
    assert_eq!(
        seqs(&two.messages_after(&conversation.id, 0, 10).await.unwrap()),
        vec![1, 2, 3]
    );
}
