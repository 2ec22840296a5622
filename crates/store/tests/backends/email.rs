//! The store's email, on every backend: a conversation's channel, threading by
//! `Message-ID`, bounces and auto-replies, failing addresses, the visitor of an
//! address, batched unseen replies, transcript requests and missed conversations.
//!
//! The data around them (sites, visitors, conversations and their states) is made
//! through the directory's and the conversations' methods.

use crate::common::each_backend;
use salam_protocol::ConversationState;
use salam_store::{
    AuditNote, Channel, Conversation, Direction, EmailEvent, EmailEventKind, EmailRecord, Erasure,
    IdentityUpdate, Site, Store, StoreError, TranscriptRequest, Transition, Transitioned,
    UnseenDue, VisitorUpdate,
};
use std::sync::Arc;

async fn site(store: &dyn Store) -> Site {
    store.create_site("Shop", &[]).await.expect("site")
}

/// A conversation of a new visitor with this address, in `state`.
async fn conversation_of(
    store: &dyn Store,
    site: &Site,
    visitor_id: &str,
    state: ConversationState,
) -> Conversation {
    let email = format!("{visitor_id}@example.com");
    let visitor = store
        .email_visitor(&site.id, &email, None, visitor_id, 1)
        .await
        .expect("visitor");
    store
        .create_conversation(&site.id, &visitor, state, 1)
        .await
        .expect("conversation")
}

/// Hands a bot conversation to the queue at `at` (its `queued_at`).
async fn queue(store: &dyn Store, conversation: &Conversation, at: i64) {
    let done = store
        .transition(Transition::new(
            &conversation.id,
            &[ConversationState::Bot],
            ConversationState::Queued,
            at,
        ))
        .await
        .expect("queue");
    assert!(matches!(done, Transitioned::Applied { .. }), "{done:?}");
}

fn record(message_id: &str, conversation: &str, direction: Direction, at: i64) -> EmailRecord {
    EmailRecord {
        message_id: message_id.into(),
        conversation: conversation.into(),
        direction,
        address: "anna@example.com".into(),
        at,
    }
}

fn event(address: &str, kind: EmailEventKind, detail: &str, at: i64) -> EmailEvent {
    EmailEvent {
        address: address.into(),
        kind,
        detail: detail.into(),
        at,
    }
}

fn due(conversation: &Conversation, from_seq: u64) -> UnseenDue {
    UnseenDue {
        conversation: conversation.id.clone(),
        from_seq,
    }
}

#[tokio::test]
async fn a_conversation_is_a_chat_until_it_is_set_to_email() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let chat = conversation_of(&*store, &site, "anna", ConversationState::Bot).await;
        assert_eq!(chat.channel, Channel::Chat);
        assert_eq!(
            store.email_channel(&chat.id).await.expect("channel"),
            Some(Channel::Chat)
        );

        store
            .email_set_channel(&chat.id, Channel::Email)
            .await
            .expect("set");
        assert_eq!(
            store.email_channel(&chat.id).await.expect("channel"),
            Some(Channel::Email)
        );
        // Set again to what it is: fine, nothing changes.
        store
            .email_set_channel(&chat.id, Channel::Email)
            .await
            .expect("set again");
        assert_eq!(
            store.email_channel(&chat.id).await.expect("channel"),
            Some(Channel::Email)
        );
        let read = store
            .conversation(&chat.id)
            .await
            .expect("read")
            .expect("there");
        assert_eq!(read.channel, Channel::Email, "the conversation shows it");

        store
            .email_set_channel(&chat.id, Channel::Chat)
            .await
            .expect("set back");
        assert_eq!(
            store.email_channel(&chat.id).await.expect("channel"),
            Some(Channel::Chat)
        );

        assert_eq!(store.email_channel("c_none").await.expect("read"), None);
        assert!(matches!(
            store.email_set_channel("c_none", Channel::Email).await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

#[tokio::test]
async fn a_reply_finds_its_conversation_by_the_newest_known_message_id() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let a = conversation_of(&*store, &site, "anna", ConversationState::Bot).await;
        let b = conversation_of(&*store, &site, "bob", ConversationState::Bot).await;
        for (id, conversation, direction, at) in [
            ("a1@shop.example", &a, Direction::Out, 10),
            ("a2@mail.example", &a, Direction::In, 20),
            ("b1@shop.example", &b, Direction::Out, 15),
        ] {
            store
                .email_record_message(record(id, &conversation.id, direction, at))
                .await
                .expect("record");
        }

        let thread = |ids: &[&str]| {
            let store = store.clone();
            let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            async move { store.email_thread_of(ids).await.expect("thread") }
        };
        assert_eq!(thread(&[]).await, None);
        assert_eq!(thread(&["nobody@else.example"]).await, None);
        assert_eq!(thread(&["a1@shop.example"]).await, Some(a.id.clone()));
        // The last known reference wins (In-Reply-To is passed last), unknown ones are
        // passed over.
        assert_eq!(
            thread(&["a1@shop.example", "b1@shop.example"]).await,
            Some(b.id.clone())
        );
        assert_eq!(
            thread(&["b1@shop.example", "a2@mail.example", "nobody@else.example"]).await,
            Some(a.id.clone())
        );
        // Message-IDs are compared exactly.
        assert_eq!(thread(&["A1@shop.example"]).await, None);

        // A known id is kept as it was: recorded again for another conversation, it
        // still leads to the first.
        store
            .email_record_message(record("a1@shop.example", &b.id, Direction::In, 30))
            .await
            .expect("record again");
        assert_eq!(thread(&["a1@shop.example"]).await, Some(a.id.clone()));
        assert_eq!(
            store.email_thread_ids(&b.id, 10).await.expect("ids"),
            vec!["b1@shop.example".to_string()]
        );

        // A mail of a conversation that does not exist is refused.
        assert!(matches!(
            store
                .email_record_message(record("x@shop.example", "c_none", Direction::In, 1))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(thread(&["x@shop.example"]).await, None);
    })
    .await;
}

#[tokio::test]
async fn a_thread_lists_its_newest_message_ids_oldest_first() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let a = conversation_of(&*store, &site, "anna", ConversationState::Bot).await;
        let other = conversation_of(&*store, &site, "bob", ConversationState::Bot).await;
        assert!(
            store
                .email_thread_ids(&a.id, 10)
                .await
                .expect("ids")
                .is_empty()
        );
        // Recorded out of order; two at the same time are ordered by id, in binary
        // order (upper case first).
        for (id, at) in [
            ("d@x", 40),
            ("b@x", 20),
            ("a@x", 10),
            ("c@x", 20),
            ("C@x", 20),
        ] {
            store
                .email_record_message(record(id, &a.id, Direction::Out, at))
                .await
                .expect("record");
        }
        store
            .email_record_message(record("other@x", &other.id, Direction::In, 50))
            .await
            .expect("record");

        let ids = |limit| {
            let store = store.clone();
            let conversation = a.id.clone();
            async move {
                store
                    .email_thread_ids(&conversation, limit)
                    .await
                    .expect("ids")
            }
        };
        assert_eq!(ids(10).await, ["a@x", "C@x", "b@x", "c@x", "d@x"]);
        assert_eq!(ids(5).await, ["a@x", "C@x", "b@x", "c@x", "d@x"]);
        assert_eq!(ids(3).await, ["C@x", "b@x", "d@x"]);
        assert_eq!(ids(1).await, ["d@x"]);
        assert!(ids(0).await.is_empty());
        assert!(
            store
                .email_thread_ids("c_none", 10)
                .await
                .expect("ids")
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_bounce_marks_its_address_failing_and_an_auto_reply_does_not() {
    each_backend(|store| async move {
        assert!(store.email_events(10).await.expect("events").is_empty());
        assert!(
            !store
                .email_failing("anna@example.com")
                .await
                .expect("failing")
        );

        store
            .email_record_event(event(
                "ooo@example.com",
                EmailEventKind::AutoReply,
                "Out of office",
                10,
            ))
            .await
            .expect("auto-reply");
        assert!(
            !store
                .email_failing("ooo@example.com")
                .await
                .expect("failing")
        );

        store
            .email_record_event(event(
                "Anna@Example.com",
                EmailEventKind::Bounce,
                "550 no such user",
                20,
            ))
            .await
            .expect("bounce");
        // Addresses are compared without regard to case.
        for address in ["Anna@Example.com", "anna@example.com", "ANNA@EXAMPLE.COM"] {
            assert!(
                store.email_failing(address).await.expect("failing"),
                "{address}"
            );
        }
        assert!(
            !store
                .email_failing("anna@example.org")
                .await
                .expect("failing")
        );

        // A second bounce of the address (in another case) is one more event.
        store
            .email_record_event(event(
                "anna@EXAMPLE.com",
                EmailEventKind::Bounce,
                "550 mailbox full",
                30,
            ))
            .await
            .expect("bounce again");
        assert!(
            store
                .email_failing("anna@example.com")
                .await
                .expect("failing")
        );

        // Newest first, addresses as they came.
        assert_eq!(
            store.email_events(10).await.expect("events"),
            vec![
                event(
                    "anna@EXAMPLE.com",
                    EmailEventKind::Bounce,
                    "550 mailbox full",
                    30
                ),
                event(
                    "Anna@Example.com",
                    EmailEventKind::Bounce,
                    "550 no such user",
                    20
                ),
                event(
                    "ooo@example.com",
                    EmailEventKind::AutoReply,
                    "Out of office",
                    10
                ),
            ]
        );
        assert_eq!(store.email_events(1).await.expect("events").len(), 1);
        assert!(store.email_events(0).await.expect("events").is_empty());

        // A long report is cut at 2,000 characters (not bytes).
        let long = "ي".repeat(2500);
        store
            .email_record_event(event("bob@example.com", EmailEventKind::Bounce, &long, 40))
            .await
            .expect("long bounce");
        let newest = store.email_events(1).await.expect("events").remove(0);
        assert_eq!(newest.detail, "ي".repeat(2000));
        assert!(
            store
                .email_failing("bob@example.com")
                .await
                .expect("failing")
        );
    })
    .await;
}

#[tokio::test]
async fn only_the_newest_ten_thousand_email_events_are_kept() {
    each_backend(|store| async move {
        store
            .email_record_event(event("first@example.com", EmailEventKind::Bounce, "550", 0))
            .await
            .expect("first");
        // Ten thousand more, written together (the writers batch them).
        let writes: Vec<_> = (1..=10_000)
            .map(|n| {
                let store: Arc<dyn Store> = store.clone();
                tokio::spawn(async move {
                    store
                        .email_record_event(event(
                            &format!("{n}@example.com"),
                            EmailEventKind::AutoReply,
                            "auto",
                            n,
                        ))
                        .await
                })
            })
            .collect();
        for write in writes {
            write.await.expect("task").expect("event");
        }
        let events = store.email_events(20_000).await.expect("events");
        assert_eq!(events.len(), 10_000);
        assert!(
            events
                .iter()
                .all(|event| event.address != "first@example.com"),
            "the oldest went"
        );
        // The event went; the failing mark stays.
        assert!(
            store
                .email_failing("first@example.com")
                .await
                .expect("failing")
        );
    })
    .await;
}

#[tokio::test]
async fn a_mail_finds_the_most_recent_visitor_of_its_address_or_makes_one() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let other_site = store.create_site("Other", &[]).await.expect("site");

        let anna = store
            .email_visitor(
                &site.id,
                "Anna@Example.com",
                Some("Anna".into()),
                "v_anna",
                10,
            )
            .await
            .expect("new");
        assert_eq!(anna, "v_anna");
        let visitor = store.visitor("v_anna").await.expect("read").expect("made");
        assert_eq!(visitor.site_id, site.id);
        assert_eq!(visitor.email.as_deref(), Some("Anna@Example.com"));
        assert_eq!(visitor.name.as_deref(), Some("Anna"));
        assert_eq!((visitor.first_seen, visitor.last_seen), (10, 10));

        // Found again without regard to case; seen now; the name is kept.
        let again = store
            .email_visitor(
                &site.id,
                "anna@EXAMPLE.com",
                Some("A. N.".into()),
                "v_x",
                20,
            )
            .await
            .expect("found");
        assert_eq!(again, "v_anna");
        let visitor = store.visitor("v_anna").await.expect("read").expect("there");
        assert_eq!(visitor.name.as_deref(), Some("Anna"));
        assert_eq!(visitor.email.as_deref(), Some("Anna@Example.com"));
        assert_eq!((visitor.first_seen, visitor.last_seen), (10, 20));
        assert_eq!(store.visitor("v_x").await.expect("read"), None);

        // A visitor without a name gets the mail's.
        store
            .email_visitor(&site.id, "bob@example.com", None, "v_bob", 30)
            .await
            .expect("new");
        assert_eq!(
            store
                .visitor("v_bob")
                .await
                .expect("read")
                .expect("there")
                .name,
            None
        );
        store
            .email_visitor(&site.id, "bob@example.com", Some("Bob".into()), "v_y", 40)
            .await
            .expect("found");
        assert_eq!(
            store
                .visitor("v_bob")
                .await
                .expect("read")
                .expect("there")
                .name
                .as_deref(),
            Some("Bob")
        );

        // Another site's visitor is not this site's.
        let elsewhere = store
            .email_visitor(&other_site.id, "anna@example.com", None, "v_elsewhere", 50)
            .await
            .expect("new");
        assert_eq!(elsewhere, "v_elsewhere");

        // Of two visitors with the address, the one seen last.
        store
            .touch_visitor("v_chat", &site.id, VisitorUpdate::default(), 60)
            .await
            .expect("chat visitor");
        store
            .identify_visitor(
                "v_chat",
                IdentityUpdate {
                    external_id: "u1".into(),
                    name: None,
                    email: Some("ANNA@example.com".into()),
                    verified: vec!["email".into()],
                    attributes: None,
                },
            )
            .await
            .expect("identify");
        let recent = store
            .email_visitor(&site.id, "anna@example.com", None, "v_z", 70)
            .await
            .expect("found");
        assert_eq!(recent, "v_chat");
        store
            .touch_visitor("v_anna", &site.id, VisitorUpdate::default(), 80)
            .await
            .expect("anna seen");
        let recent = store
            .email_visitor(&site.id, "anna@example.com", None, "v_z", 90)
            .await
            .expect("found");
        assert_eq!(recent, "v_anna");

        // A new visitor for a site that does not exist is refused.
        assert!(matches!(
            store
                .email_visitor("s_none", "carl@example.com", None, "v_carl", 100)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.visitor("v_carl").await.expect("read"), None);
    })
    .await;
}

#[tokio::test]
async fn unseen_replies_wait_in_one_batch_until_it_is_due() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let mut conversations = Vec::new();
        for name in ["c1", "c2", "c3", "c4", "c5"] {
            conversations
                .push(conversation_of(&*store, &site, name, ConversationState::Queued).await);
        }
        let [c1, c2, c3, c4, c5] = &conversations[..] else {
            unreachable!()
        };
        assert!(
            store
                .email_due_unseen(i64::MAX, 10)
                .await
                .expect("due")
                .is_empty()
        );

        store
            .email_schedule_unseen(&c1.id, 3, 100)
            .await
            .expect("schedule");
        // A later reply joins the batch: its first reply and deadline stay.
        store
            .email_schedule_unseen(&c1.id, 5, 200)
            .await
            .expect("schedule");
        store
            .email_schedule_unseen(&c2.id, 7, 50)
            .await
            .expect("schedule");
        store
            .email_schedule_unseen(&c3.id, 1, 300)
            .await
            .expect("schedule");

        assert!(
            store
                .email_due_unseen(49, 10)
                .await
                .expect("due")
                .is_empty()
        );
        assert_eq!(
            store.email_due_unseen(99, 10).await.expect("due"),
            vec![due(c2, 7)]
        );
        assert_eq!(
            store.email_due_unseen(150, 10).await.expect("due"),
            vec![due(c1, 3)]
        );
        // Taken once.
        assert!(
            store
                .email_due_unseen(150, 10)
                .await
                .expect("due")
                .is_empty()
        );

        // The visitor saw the replies: the batch is dropped, unless they saw only
        // earlier ones.
        store
            .email_schedule_unseen(&c4.id, 4, 250)
            .await
            .expect("schedule");
        store.email_visitor_seen(&c4.id, 3).await.expect("seen");
        store.email_visitor_seen(&c3.id, 1).await.expect("seen");
        store.email_visitor_seen("c_none", 1).await.expect("seen");
        assert_eq!(
            store.email_due_unseen(400, 10).await.expect("due"),
            vec![due(c4, 4)]
        );

        // Oldest first, at most `limit`; a taken batch may start again.
        store
            .email_schedule_unseen(&c5.id, 9, 530)
            .await
            .expect("schedule");
        store
            .email_schedule_unseen(&c1.id, 8, 510)
            .await
            .expect("schedule");
        store
            .email_schedule_unseen(&c2.id, 8, 520)
            .await
            .expect("schedule");
        store
            .email_schedule_unseen(&c3.id, 2, 900)
            .await
            .expect("schedule");
        assert_eq!(
            store.email_due_unseen(600, 2).await.expect("due"),
            vec![due(c1, 8), due(c2, 8)]
        );
        assert_eq!(
            store.email_due_unseen(600, 10).await.expect("due"),
            vec![due(c5, 9)]
        );
        store.email_visitor_seen(&c3.id, 2).await.expect("seen");
        assert!(
            store
                .email_due_unseen(i64::MAX, 10)
                .await
                .expect("due")
                .is_empty()
        );

        // A batch of a conversation that does not exist is refused.
        assert!(matches!(
            store.email_schedule_unseen("c_none", 1, 1).await,
            Err(StoreError::Conflict(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_transcript_request_is_taken_once() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let a = conversation_of(&*store, &site, "anna", ConversationState::Bot).await;
        let b = conversation_of(&*store, &site, "bob", ConversationState::Bot).await;
        assert_eq!(
            store.email_take_transcript(&a.id).await.expect("take"),
            None
        );

        let request = |conversation: &Conversation, email: &str, lang: &str| TranscriptRequest {
            conversation: conversation.id.clone(),
            email: email.into(),
            lang: lang.into(),
        };
        store
            .email_request_transcript(request(&a, "anna@example.com", "en"), 10)
            .await
            .expect("request");
        // A second request replaces the first.
        store
            .email_request_transcript(request(&a, "anna@example.org", "fa"), 20)
            .await
            .expect("request again");
        store
            .email_request_transcript(request(&b, "bob@example.com", "ar"), 30)
            .await
            .expect("request");

        assert_eq!(
            store.email_take_transcript(&a.id).await.expect("take"),
            Some(request(&a, "anna@example.org", "fa"))
        );
        assert_eq!(
            store.email_take_transcript(&a.id).await.expect("take"),
            None
        );
        assert_eq!(
            store.email_take_transcript(&b.id).await.expect("take"),
            Some(request(&b, "bob@example.com", "ar"))
        );
        assert_eq!(
            store.email_take_transcript("c_none").await.expect("take"),
            None
        );

        assert!(matches!(
            store
                .email_request_transcript(
                    TranscriptRequest {
                        conversation: "c_none".into(),
                        email: "x@example.com".into(),
                        lang: "en".into(),
                    },
                    40,
                )
                .await,
            Err(StoreError::Conflict(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn agents_hear_once_of_each_conversation_left_in_the_queue() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let mut queued = Vec::new();
        for (name, at) in [
            ("q100", 100),
            ("q50", 50),
            ("q500", 500),
            ("q60", 60),
            ("q70", 70),
        ] {
            let conversation = conversation_of(&*store, &site, name, ConversationState::Bot).await;
            queue(&*store, &conversation, at).await;
            queued.push(conversation);
        }
        let [q100, q50, q500, q60, q70] = &queued[..] else {
            unreachable!()
        };
        // Never queued, created queued (no queue time), queued then closed or taken.
        conversation_of(&*store, &site, "bot", ConversationState::Bot).await;
        conversation_of(&*store, &site, "direct", ConversationState::Queued).await;
        let closed = conversation_of(&*store, &site, "closed", ConversationState::Bot).await;
        queue(&*store, &closed, 10).await;
        let taken = conversation_of(&*store, &site, "taken", ConversationState::Bot).await;
        queue(&*store, &taken, 20).await;
        for (conversation, to) in [
            (&closed, ConversationState::Closed),
            (&taken, ConversationState::Assigned),
        ] {
            let done = store
                .transition(Transition::new(
                    &conversation.id,
                    &[ConversationState::Queued],
                    to,
                    30,
                ))
                .await
                .expect("transition");
            assert!(matches!(done, Transitioned::Applied { .. }), "{done:?}");
        }

        let ids = |conversations: &[&Conversation]| {
            conversations
                .iter()
                .map(|conversation| conversation.id.clone())
                .collect::<Vec<_>>()
        };
        assert!(
            store
                .email_take_missed(49, 1000, 10)
                .await
                .expect("take")
                .is_empty()
        );
        // Oldest first, at most `limit` of those not told yet.
        assert_eq!(
            store.email_take_missed(100, 1000, 2).await.expect("take"),
            ids(&[q50, q60])
        );
        assert_eq!(
            store.email_take_missed(100, 1000, 2).await.expect("take"),
            ids(&[q70, q100])
        );
        // Told once.
        assert!(
            store
                .email_take_missed(100, 1000, 10)
                .await
                .expect("take")
                .is_empty()
        );
        assert_eq!(
            store
                .email_take_missed(i64::MAX, 1000, 10)
                .await
                .expect("take"),
            ids(&[q500])
        );
        assert!(
            store
                .email_take_missed(i64::MAX, 1000, 10)
                .await
                .expect("take")
                .is_empty()
        );
    })
    .await;
}

/// Several hubs on one PostgreSQL database (SQLite has one hub per file): what one hub
/// takes, another does not take too, and one address makes one visitor.
mod several_hubs {
    use super::*;
    use salam_store::postgres::scratch::ScratchDatabase;
    use salam_store::{PostgresOptions, PostgresStore};
    use std::collections::BTreeSet;

    /// Two stores (two hubs) on one fresh database; the database lives as long as the
    /// first value.
    async fn two_hubs() -> (ScratchDatabase, Arc<dyn Store>, Arc<dyn Store>) {
        tokio::task::spawn_blocking(|| {
            let database = ScratchDatabase::create().expect("PostgreSQL is needed");
            let connect = || -> Arc<dyn Store> {
                Arc::new(
                    PostgresStore::connect(database.url(), PostgresOptions::default())
                        .expect("connect"),
                )
            };
            let (a, b) = (connect(), connect());
            (database, a, b)
        })
        .await
        .expect("connect task")
    }

    #[tokio::test]
    async fn two_hubs_receiving_mail_from_one_new_address_make_one_visitor() {
        let (_database, a, b) = two_hubs().await;
        let site = site(&*a).await;
        // Rounds of mail from new addresses, each address arriving at both hubs at once.
        for round in 0..5 {
            let mut calls = Vec::new();
            for n in 0..4 {
                for address in 0..5 {
                    let hub = if n % 2 == 0 { a.clone() } else { b.clone() };
                    let site_id = site.id.clone();
                    calls.push(tokio::spawn(async move {
                        // Two hubs' batches may wait on each other's addresses: the
                        // database refuses one (retryable, as a mail server retries a
                        // 451), never both.
                        for _ in 0..5 {
                            match hub
                                .email_visitor(
                                    &site_id,
                                    &format!("Person{round}.{address}@example.com"),
                                    None,
                                    &format!("v_{round}_{address}_{n}"),
                                    1,
                                )
                                .await
                            {
                                Ok(found) => return (address, found),
                                Err(StoreError::Unavailable(_)) => continue,
                                Err(err) => panic!("email visitor: {err:?}"),
                            }
                        }
                        panic!("email visitor: refused five times");
                    }));
                }
            }
            let mut visitors: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 5];
            for call in calls {
                let (address, found) = call.await.expect("task");
                visitors[address].insert(found);
            }
            for (address, found) in visitors.iter().enumerate() {
                assert_eq!(
                    found.len(),
                    1,
                    "round {round}, address {address}: {found:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn two_hubs_take_each_due_batch_and_each_missed_conversation_once() {
        let (_database, a, b) = two_hubs().await;
        let site = site(&*a).await;
        let mut expected = BTreeSet::new();
        for n in 0..60 {
            let conversation =
                conversation_of(&*a, &site, &format!("v{n}"), ConversationState::Bot).await;
            queue(&*a, &conversation, n).await;
            a.email_schedule_unseen(&conversation.id, 1, n)
                .await
                .expect("schedule");
            expected.insert(conversation.id);
        }
        let mut takers = Vec::new();
        for n in 0..8 {
            let hub = if n % 2 == 0 { a.clone() } else { b.clone() };
            takers.push(tokio::spawn(async move {
                let (mut due, mut missed) = (Vec::new(), Vec::new());
                loop {
                    let batch = hub.email_due_unseen(1000, 3).await.expect("due");
                    let told = hub.email_take_missed(1000, 2000, 3).await.expect("missed");
                    if batch.is_empty() && told.is_empty() {
                        return (due, missed);
                    }
                    due.extend(batch.into_iter().map(|due| due.conversation));
                    missed.extend(told);
                }
            }));
        }
        let (mut due, mut missed) = (Vec::new(), Vec::new());
        for taker in takers {
            let (d, m) = taker.await.expect("task");
            due.extend(d);
            missed.extend(m);
        }
        due.sort();
        missed.sort();
        let expected: Vec<String> = expected.into_iter().collect();
        assert_eq!(due, expected, "each due batch taken once");
        assert_eq!(missed, expected, "each missed conversation taken once");
    }
}

#[tokio::test]
async fn erasing_a_visitor_drops_the_bounces_and_failing_marks_of_their_address() {
    each_backend(|store| async move {
        let site = site(&*store).await;
        let anna = store
            .email_visitor(&site.id, "Anna@Example.com", None, "v_anna", 1)
            .await
            .expect("visitor");
        for (address, kind) in [
            ("anna@EXAMPLE.com", EmailEventKind::Bounce),
            ("ANNA@example.com", EmailEventKind::AutoReply),
            ("bob@example.com", EmailEventKind::Bounce),
        ] {
            store
                .email_record_event(event(address, kind, "550", 2))
                .await
                .expect("event");
        }
        assert!(
            store
                .email_failing("anna@example.com")
                .await
                .expect("failing")
        );

        let erased = store
            .erase_visitor(
                &anna,
                AuditNote {
                    actor: "cli:test".into(),
                    selector: "visitor",
                    at: 3,
                },
            )
            .await
            .expect("erase");
        assert!(matches!(erased, Erasure::Erased(_)), "{erased:?}");
        assert!(
            !store
                .email_failing("anna@example.com")
                .await
                .expect("failing")
        );
        assert!(
            store
                .email_failing("bob@example.com")
                .await
                .expect("failing")
        );
        assert_eq!(
            store.email_events(10).await.expect("events"),
            vec![event("bob@example.com", EmailEventKind::Bounce, "550", 2)]
        );
    })
    .await;
}

#[tokio::test]
async fn mail_text_with_nul_characters_is_stored() {
    // Anything may arrive in a mail; PostgreSQL's text cannot hold U+0000 (it is
    // dropped there), SQLite's can: either way the mail is recorded and threads, and
    // its visitor is found again.
    each_backend(|store| async move {
        let site = site(&*store).await;
        let conversation = conversation_of(&*store, &site, "anna", ConversationState::Bot).await;

        store
            .email_record_event(event(
                "nul@example.com\0",
                EmailEventKind::Bounce,
                "550\0 gone",
                1,
            ))
            .await
            .expect("event");
        let recorded = store.email_events(1).await.expect("events").remove(0);
        // SQLite's substr() ends a text at U+0000: the report is cut there.
        assert_eq!(recorded.detail, "550");
        assert_eq!(recorded.address.replace('\0', ""), "nul@example.com");
        assert!(
            store
                .email_failing("nul@example.com\0")
                .await
                .expect("failing")
        );

        store
            .email_record_message(record(
                "a\0b@shop.example",
                &conversation.id,
                Direction::In,
                2,
            ))
            .await
            .expect("record");
        assert_eq!(
            store
                .email_thread_of(vec!["a\0b@shop.example".into()])
                .await
                .expect("thread"),
            Some(conversation.id.clone())
        );
        let ids = store
            .email_thread_ids(&conversation.id, 10)
            .await
            .expect("ids");
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].replace('\0', ""), "ab@shop.example");

        for new_id in ["v_nul", "v_other"] {
            let found = store
                .email_visitor(&site.id, "Nul\0@example.com", Some("N\0".into()), new_id, 3)
                .await
                .expect("visitor");
            assert_eq!(found, "v_nul");
        }

        store
            .email_request_transcript(
                TranscriptRequest {
                    conversation: conversation.id.clone(),
                    email: "anna\0@example.com".into(),
                    lang: "en".into(),
                },
                4,
            )
            .await
            .expect("request");
        let taken = store
            .email_take_transcript(&conversation.id)
            .await
            .expect("take")
            .expect("there");
        assert_eq!(taken.email.replace('\0', ""), "anna@example.com");
    })
    .await;
}
