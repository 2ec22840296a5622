//! The store's maintenance, on every backend: retention batches and the visitor sweep,
//! a visitor's data (finding, export, erasure), the audit log, visitor events, the
//! customer timeline and trigger counts.

use crate::common::each_backend;
use salam_protocol::{Author, AuthorKind, ConversationState, MessageKind};
use salam_store::*;
use serde_json::json;

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

fn line(conversation: &str, kind: AuthorKind, text: &str, at: i64) -> NewMessage {
    NewMessage {
        conversation: conversation.to_owned(),
        kind: MessageKind::Text,
        author: Author {
            kind,
            id: Some(
                if kind == AuthorKind::Agent {
                    "a_1"
                } else {
                    "v_1"
                }
                .into(),
            ),
            name: None,
        },
        text: text.to_owned(),
        client_id: None,
        quick_replies: Vec::new(),
        rule: None,
        event: None,
        at,
        only_in: None,
    }
}

async fn visitor(store: &dyn Store, site: &str, visitor: &str, at: i64) {
    store
        .touch_visitor(visitor, site, VisitorUpdate::default(), at)
        .await
        .expect("touch visitor");
}

/// A closed conversation of `visitor` created at `at`: the visitor's line and a bot
/// turn, then (when `handed_off`) a hand-off, an agent's reply after `reply_ms` and a
/// rating; closed 10 seconds after it began.
async fn closed_conversation(
    store: &dyn Store,
    site: &str,
    visitor_id: &str,
    at: i64,
    handed_off: bool,
    reply_ms: i64,
) -> String {
    visitor(store, site, visitor_id, at).await;
    let conversation = store
        .create_conversation(site, visitor_id, ConversationState::Bot, at)
        .await
        .expect("create conversation")
        .id;
    store
        .append(line(
            &conversation,
            AuthorKind::Visitor,
            "where is my parcel",
            at,
        ))
        .await
        .expect("append");
    store
        .record_bot_turn(BotTurn {
            conversation: conversation.clone(),
            site_id: site.to_owned(),
            rule_id: None,
            intent: "none".into(),
            decision: if handed_off { "fallback" } else { "answer" },
            score: 0.5,
            lang: "en".into(),
            question: "where is my parcel".into(),
            at,
        })
        .await
        .expect("bot turn");
    if handed_off {
        let mut handoff = Transition::new(
            &conversation,
            &[ConversationState::Bot],
            ConversationState::Queued,
            at + 1000,
        );
        handoff.handoff_reason = Some("requested".into());
        store.transition(handoff).await.expect("hand off");
        store
            .append(line(
                &conversation,
                AuthorKind::Agent,
                "it ships today",
                at + 1000 + reply_ms,
            ))
            .await
            .expect("agent line");
        store
            .rate(&conversation, 4, Some("kind"), at + 9000)
            .await
            .expect("rate");
    }
    store
        .transition(Transition::new(
            &conversation,
            &[ConversationState::Bot, ConversationState::Queued],
            ConversationState::Closed,
            at + 10_000,
        ))
        .await
        .expect("close");
    conversation
}

fn offline_request(site: &str, visitor: &str, email: &str, at: i64) -> OfflineRequest {
    OfflineRequest {
        id: 0,
        site_id: site.into(),
        visitor_id: visitor.into(),
        conversation: None,
        name: Some("Layla".into()),
        email: Some(email.into()),
        phone: None,
        message: Some("call me".into()),
        created_at: at,
        done_at: None,
    }
}

fn durations(timings: &[Timing]) -> (Vec<i64>, Vec<i64>, Vec<u8>) {
    let mut first: Vec<i64> = timings
        .iter()
        .filter_map(|t| Some(t.first_response_at? - t.handed_off_at?))
        .collect();
    let mut resolution: Vec<i64> = timings
        .iter()
        .filter_map(|t| Some(t.closed_at? - t.created_at))
        .collect();
    let mut scores: Vec<u8> = timings.iter().filter_map(|t| t.score).collect();
    first.sort_unstable();
    resolution.sort_unstable();
    scores.sort_unstable();
    (first, resolution, scores)
}

fn note(at: i64) -> AuditNote {
    AuditNote {
        actor: "cli:test".into(),
        selector: "visitor_id",
        at,
    }
}

// ------------------------------------------------------------------------ retention

#[tokio::test]
async fn reports_keep_their_figures_after_retention_deletes_the_details() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let sites = std::slice::from_ref(&site);
        for (index, handed_off) in [true, false, true, true, false].into_iter().enumerate() {
            let at = 10 * HOUR + index as i64 * MINUTE;
            let reply_ms = 5000 * (index as i64 + 1);
            closed_conversation(
                store,
                &site,
                &format!("v_{index}"),
                at,
                handed_off,
                reply_ms,
            )
            .await;
        }
        let (from, to) = (0, 100 * HOUR);
        let before = store.bot_report(sites, from, to).await.unwrap();
        let timings_before = store.timings(sites, from, to).await.unwrap();
        assert_eq!((before.conversations, before.deflected), (5, 2));

        let budget = RetentionBudget {
            conversations: 2,
            messages: 5000,
        };
        let mut deleted = 0;
        let mut messages = 0;
        let mut batches = 0;
        loop {
            let batch = store
                .retention_batch(&site, 50 * HOUR, budget)
                .await
                .unwrap();
            assert!(batch.conversations <= 2, "within its budget: {batch:?}");
            deleted += batch.conversations;
            messages += batch.messages;
            batches += 1;
            if !batch.more {
                break;
            }
        }
        // Three conversations were handed off (two lines each), two were not (one).
        assert_eq!((deleted, messages, batches), (5, 8, 3));
        let closed = store
            .find_conversations(
                sites,
                ConversationFilter {
                    state: Some(ConversationState::Closed),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(closed.is_empty(), "{closed:?}");

        let after = store.bot_report(sites, from, to).await.unwrap();
        assert_eq!(
            (
                after.conversations,
                after.bot_conversations,
                after.deflected,
                &after.handoffs_by_reason
            ),
            (
                before.conversations,
                before.bot_conversations,
                before.deflected,
                &before.handoffs_by_reason
            )
        );
        assert!(after.unanswered.is_empty(), "the questions quoted visitors");
        let timings_after = store.timings(sites, from, to).await.unwrap();
        assert_eq!(durations(&timings_after), durations(&timings_before));

        // Nobody is left to find, and their profiles go with the visitor sweep.
        let cutoffs = vec![(site.clone(), 50 * HOUR)];
        let sweep = store.sweep_visitors(&cutoffs, 0, 2).await.unwrap();
        assert_eq!(sweep.deleted, 2);
        let sweep = store
            .sweep_visitors(&cutoffs, sweep.next.expect("more to sweep"), 100)
            .await
            .unwrap();
        assert_eq!((sweep.deleted, sweep.next), (3, None));
    })
    .await;
}

#[tokio::test]
async fn a_retention_batch_keeps_to_its_budget_its_site_and_its_cut_off() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let other = store.create_site("Other", &["*".into()]).await.unwrap().id;
        let mut oldest_first = Vec::new();
        for index in 0..3 {
            oldest_first.push(
                closed_conversation(store, &site, &format!("v_{index}"), index * HOUR, true, 10)
                    .await,
            );
        }
        let elsewhere = closed_conversation(store, &other, "v_other", 0, true, 10).await;
        let open = {
            visitor(store, &site, "v_open", 0).await;
            store
                .create_conversation(&site, "v_open", ConversationState::Queued, 0)
                .await
                .unwrap()
                .id
        };
        // Each conversation has 2 lines; a budget of 3 messages takes one at a time,
        // the oldest first.
        let budget = RetentionBudget {
            conversations: 200,
            messages: 3,
        };
        let batch = store
            .retention_batch(&site, 10 * HOUR, budget)
            .await
            .unwrap();
        assert_eq!(
            batch,
            RetentionBatch {
                conversations: 1,
                messages: 2,
                offline_requests: 0,
                more: true
            }
        );
        assert!(
            store
                .conversation(&oldest_first[0])
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .conversation(&oldest_first[1])
                .await
                .unwrap()
                .is_some()
        );
        // Nothing closed at or after the cut-off is touched (the second closed at
        // 1 h + 10 s).
        let batch = store
            .retention_batch(&site, HOUR + 10_000, budget)
            .await
            .unwrap();
        assert_eq!(batch, RetentionBatch::default());
        // Callbacks left before the cut-off go too, whatever became of them.
        store
            .create_offline_request(offline_request(&site, "v_cb", "cb@example.test", HOUR))
            .await
            .unwrap();
        let batch = store
            .retention_batch(&site, 10 * HOUR, RetentionBudget::default())
            .await
            .unwrap();
        assert_eq!(
            (
                batch.conversations,
                batch.messages,
                batch.offline_requests,
                batch.more
            ),
            (2, 4, 1, false)
        );
        // Another site's conversations and open conversations stay.
        assert!(store.conversation(&elsewhere).await.unwrap().is_some());
        assert!(store.conversation(&open).await.unwrap().is_some());
        assert!(
            store
                .offline_requests(
                    std::slice::from_ref(&site),
                    Page {
                        before: None,
                        limit: 10
                    }
                )
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn the_visitor_sweep_steps_through_the_table_and_spares_who_is_still_needed() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let other = store.create_site("Other", &["*".into()]).await.unwrap().id;
        // Created in this order: the sweep walks them in it.
        visitor(store, &site, "v_gone_1", HOUR).await;
        visitor(store, &site, "v_recent", 20 * HOUR).await;
        visitor(store, &site, "v_chatting", HOUR).await;
        store
            .create_conversation(&site, "v_chatting", ConversationState::Bot, HOUR)
            .await
            .unwrap();
        visitor(store, &site, "v_callback", HOUR).await;
        store
            .create_offline_request(offline_request(&site, "v_callback", "c@example.test", HOUR))
            .await
            .unwrap();
        visitor(store, &other, "v_other_site", HOUR).await;
        visitor(store, &site, "v_gone_2", HOUR).await;
        store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.clone(),
                visitor_id: "v_gone_2".into(),
                kind: VisitorEventKind::PageView,
                data: json!({"url": "/"}),
                at: HOUR,
            })
            .await
            .unwrap();

        let cutoffs = vec![(site.clone(), 10 * HOUR)];
        let mut after = 0;
        let mut steps = Vec::new();
        loop {
            let sweep = store.sweep_visitors(&cutoffs, after, 2).await.unwrap();
            steps.push(sweep.deleted);
            match sweep.next {
                Some(next) => {
                    assert!(next > after, "the cursor moves on");
                    after = next;
                }
                None => break,
            }
        }
        // Six visitors, two per step: a full last step says there may be more, and the
        // next one finds the end.
        assert_eq!(steps, [1, 0, 1, 0]);
        for (id, kept) in [
            ("v_gone_1", false),
            ("v_recent", true),
            ("v_chatting", true),
            ("v_callback", true),
            ("v_other_site", true),
            ("v_gone_2", false),
        ] {
            assert_eq!(store.visitor(id).await.unwrap().is_some(), kept, "{id}");
        }
        assert!(
            store
                .visitor_events(vec!["v_gone_2".into()], 10)
                .await
                .unwrap()
                .is_empty(),
            "a visitor's events go with them"
        );
    })
    .await;
}

// ------------------------------------------------------------- a visitor's data

#[tokio::test]
async fn visitors_are_found_by_id_customer_id_or_any_case_of_their_email() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let other = store.create_site("Other", &["*".into()]).await.unwrap().id;
        for (id, site_id) in [("v_b", &site), ("v_a", &site), ("v_c", &other)] {
            visitor(store, site_id, id, 1).await;
            store
                .identify_visitor(
                    id,
                    IdentityUpdate {
                        external_id: "customer-7".into(),
                        email: Some(format!("Layla.{id}@Example.test")),
                        ..IdentityUpdate::default()
                    },
                )
                .await
                .unwrap();
        }
        // Known only by a callback.
        store
            .create_offline_request(offline_request(
                &site,
                "v_only_callback",
                "OMAR@example.test",
                2,
            ))
            .await
            .unwrap();
        let find = |selector: VisitorSelector| async move {
            store.find_visitors(&selector).await.expect("find")
        };
        assert_eq!(find(VisitorSelector::Id("v_a".into())).await, ["v_a"]);
        assert_eq!(
            find(VisitorSelector::Id("v_only_callback".into())).await,
            ["v_only_callback"]
        );
        assert!(
            find(VisitorSelector::Id("v_nobody".into()))
                .await
                .is_empty()
        );
        assert_eq!(
            find(VisitorSelector::ExternalId {
                external_id: "customer-7".into(),
                site_id: None
            })
            .await,
            ["v_a", "v_b", "v_c"]
        );
        assert_eq!(
            find(VisitorSelector::ExternalId {
                external_id: "customer-7".into(),
                site_id: Some(other.clone())
            })
            .await,
            ["v_c"]
        );
        assert!(
            find(VisitorSelector::ExternalId {
                external_id: "CUSTOMER-7".into(),
                site_id: None
            })
            .await
            .is_empty(),
            "a customer id is exact"
        );
        assert_eq!(
            find(VisitorSelector::Email("  layla.V_B@example.TEST ".into())).await,
            ["v_b"]
        );
        assert_eq!(
            find(VisitorSelector::Email("omar@EXAMPLE.test".into())).await,
            ["v_only_callback"]
        );
    })
    .await;
}

#[tokio::test]
async fn an_export_holds_everything_stored_about_a_visitor() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let second = closed_conversation(store, &site, "v_layla", 2 * HOUR, false, 0).await;
        let first = closed_conversation(store, &site, "v_layla", HOUR, true, 10).await;
        store
            .identify_visitor(
                "v_layla",
                IdentityUpdate {
                    external_id: "customer-7".into(),
                    name: Some("Layla".into()),
                    ..IdentityUpdate::default()
                },
            )
            .await
            .unwrap();
        let mut attributes = serde_json::Map::new();
        attributes.insert("plan".into(), json!("pro"));
        let contact = store
            .create_contact(NewContact {
                site_id: site.clone(),
                external_id: Some("customer-7".into()),
                email: None,
                name: Some("Layla".into()),
                attributes,
                changed_by: "token:t_1".into(),
                now: 3 * HOUR,
            })
            .await
            .unwrap();
        store
            .create_offline_request(offline_request(
                &site,
                "v_layla",
                "l@example.test",
                4 * HOUR,
            ))
            .await
            .unwrap();
        for (url, at) in [("/a", 10), ("/b", 20)] {
            store
                .record_visitor_event(NewVisitorEvent {
                    site_id: site.clone(),
                    visitor_id: "v_layla".into(),
                    kind: VisitorEventKind::PageView,
                    data: json!({"url": url}),
                    at,
                })
                .await
                .unwrap();
        }

        let exported = store.export_visitor("v_layla").await.unwrap().unwrap();
        assert_eq!(exported.visitor_id, "v_layla");
        assert_eq!(
            exported.profile.as_ref().and_then(|p| p.name.as_deref()),
            Some("Layla")
        );
        // Oldest first, every message in order, with the rating.
        let ids: Vec<_> = exported
            .conversations
            .iter()
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(ids, [first.clone(), second.clone()]);
        let texts: Vec<_> = exported.conversations[0]
            .messages
            .iter()
            .map(|m| (m.seq, m.text.as_str()))
            .collect();
        assert_eq!(texts, [(1, "where is my parcel"), (2, "it ships today")]);
        let record = &exported.conversations[0];
        assert_eq!(
            (record.state.as_str(), record.closed_at, record.created_at),
            ("closed", Some(HOUR + 10_000), HOUR)
        );
        assert_eq!(
            record
                .rating
                .as_ref()
                .map(|r| (r.score, r.comment.as_deref())),
            Some((4, Some("kind")))
        );
        assert_eq!(exported.conversations[1].rating, None);
        assert_eq!(exported.offline_requests.len(), 1);
        assert_eq!(
            exported.offline_requests[0].email.as_deref(),
            Some("l@example.test")
        );
        let urls: Vec<_> = exported
            .events
            .iter()
            .map(|event| event.data["url"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(urls, ["/a", "/b"]);
        let record = exported.contact.as_ref().expect("the contact");
        assert_eq!(record.contact.id, contact.id);
        assert_eq!(record.contact.visitor_ids, ["v_layla"]);
        assert_eq!(
            record
                .changes
                .iter()
                .map(|c| (c.key.as_str(), c.new_value.clone()))
                .collect::<Vec<_>>(),
            [("plan", Some(json!("pro")))]
        );
        let json = serde_json::to_value(&exported).unwrap();
        assert_eq!(json["events"][1]["data"]["url"], "/b");

        // Known only by a callback; unknown.
        store
            .create_offline_request(offline_request(&site, "v_callback", "c@example.test", 1))
            .await
            .unwrap();
        let only = store.export_visitor("v_callback").await.unwrap().unwrap();
        assert!(only.profile.is_none() && only.conversations.is_empty());
        assert_eq!(only.offline_requests.len(), 1);
        assert!(store.export_visitor("v_nobody").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn an_erasure_refuses_open_conversations_then_deletes_everything_and_is_audited() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        closed_conversation(store, &site, "v_layla", HOUR, true, 10).await;
        closed_conversation(store, &site, "v_omar", HOUR, true, 10).await;
        // A callback with another address (before she identified: a callback's address
        // shows on the profile until an identity replaces it).
        store
            .create_offline_request(offline_request(
                &site,
                "v_layla",
                "Layla.Phone@example.test",
                HOUR,
            ))
            .await
            .unwrap();
        store
            .identify_visitor(
                "v_layla",
                IdentityUpdate {
                    external_id: "customer-7".into(),
                    name: Some("Layla".into()),
                    email: Some("Layla@Example.test".into()),
                    ..IdentityUpdate::default()
                },
            )
            .await
            .unwrap();
        store
            .create_contact(NewContact {
                site_id: site.clone(),
                external_id: Some("customer-7".into()),
                email: None,
                name: None,
                attributes: [("plan".to_owned(), json!("pro"))].into_iter().collect(),
                changed_by: "token:t_1".into(),
                now: HOUR,
            })
            .await
            .unwrap();
        store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.clone(),
                visitor_id: "v_layla".into(),
                kind: VisitorEventKind::PageView,
                data: json!({"url": "/"}),
                at: HOUR,
            })
            .await
            .unwrap();
        // Mail to both of her addresses bounced; to Omar's too.
        for address in [
            "layla@example.test",
            "LAYLA.phone@example.test",
            "omar@example.test",
        ] {
            store
                .email_record_event(EmailEvent {
                    address: address.into(),
                    kind: EmailEventKind::Bounce,
                    detail: "550 no such user".into(),
                    at: HOUR,
                })
                .await
                .unwrap();
        }
        let open = store
            .create_conversation(&site, "v_layla", ConversationState::Queued, 2 * HOUR)
            .await
            .unwrap()
            .id;
        let by_email = VisitorSelector::Email("layla@example.TEST".into());
        assert_eq!(store.find_visitors(&by_email).await.unwrap(), ["v_layla"]);
        assert_eq!(
            store
                .export_visitor("v_layla")
                .await
                .unwrap()
                .unwrap()
                .conversations
                .len(),
            2
        );

        let note = AuditNote {
            actor: "cli:test".into(),
            selector: by_email.kind(),
            at: 3 * HOUR,
        };
        assert_eq!(
            store.erase_visitor("v_layla", note.clone()).await.unwrap(),
            Erasure::Open(vec![open.clone()])
        );
        assert!(
            store.audit_log(10).await.unwrap().is_empty(),
            "nothing erased"
        );
        assert!(store.visitor("v_layla").await.unwrap().is_some());
        store
            .transition(Transition::new(
                &open,
                &[ConversationState::Queued],
                ConversationState::Closed,
                3 * HOUR,
            ))
            .await
            .unwrap();
        let Erasure::Erased(erased) = store.erase_visitor("v_layla", note).await.unwrap() else {
            panic!("nothing is open any more")
        };
        assert_eq!(
            erased,
            Erased {
                visitors: 1,
                conversations: 2,
                messages: 2,
                offline_requests: 1,
                contacts: 1
            }
        );
        assert!(store.export_visitor("v_layla").await.unwrap().is_none());
        assert!(store.find_visitors(&by_email).await.unwrap().is_empty());
        assert!(store.conversation(&open).await.unwrap().is_none());
        assert!(
            store
                .contact_by_external_id(&site, "customer-7")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .visitor_events(vec!["v_layla".into()], 10)
                .await
                .unwrap()
                .is_empty()
        );
        for (address, failing) in [
            ("layla@example.test", false),
            ("layla.phone@example.test", false),
            ("omar@example.test", true),
        ] {
            assert_eq!(
                store.email_failing(address).await.unwrap(),
                failing,
                "{address}"
            );
        }
        let events: Vec<_> = store
            .email_events(10)
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.address)
            .collect();
        assert_eq!(events, ["omar@example.test"]);
        // Omar is untouched.
        assert!(store.export_visitor("v_omar").await.unwrap().is_some());

        let audit = store.audit_log(10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (
                audit[0].action.as_str(),
                audit[0].subject.as_str(),
                audit[0].actor.as_str(),
                audit[0].at
            ),
            ("visitor.erase", "v_layla", "cli:test", 3 * HOUR)
        );
        let detail: serde_json::Value = serde_json::from_str(&audit[0].detail).unwrap();
        assert_eq!(detail["selector"], "email");
        assert_eq!(detail["erased"]["conversations"], 2);
        assert!(
            !audit[0].detail.to_lowercase().contains("layla@"),
            "the audit log names no e-mail"
        );
        // The reports still count the erased conversations.
        let report = store
            .bot_report(std::slice::from_ref(&site), 0, 100 * HOUR)
            .await
            .unwrap();
        assert_eq!(report.conversations, 3);

        // Nobody to erase: nothing deleted, and it is still recorded.
        let Erasure::Erased(nothing) = store.erase_visitor("v_nobody", note_at(4)).await.unwrap()
        else {
            panic!("nobody has nothing open")
        };
        assert_eq!(nothing, Erased::default());
        assert_eq!(store.audit_log(10).await.unwrap()[0].subject, "v_nobody");
    })
    .await;
}

fn note_at(hours: i64) -> AuditNote {
    note(hours * HOUR)
}

// ---------------------------------------------------------------------- audit log

#[tokio::test]
async fn the_audit_log_lists_the_newest_entries_first() {
    each_backend(|store| async move {
        assert!(store.audit_log(10).await.unwrap().is_empty());
        for (index, action) in ["visitor.export", "retention.delete", "visitor.export"]
            .into_iter()
            .enumerate()
        {
            store
                .record_audit(NewAudit {
                    at: 1000 + index as i64,
                    actor: format!("agent:a_{index} (a{index}@example.test)"),
                    action: action.into(),
                    subject: format!("v_{index}"),
                    detail: json!({"n": index}).to_string(),
                })
                .await
                .unwrap();
        }
        let entries = store.audit_log(2).await.unwrap();
        let seen: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.at,
                    e.action.as_str(),
                    e.subject.as_str(),
                    e.detail.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1002, "visitor.export", "v_2", r#"{"n":2}"#),
                (1001, "retention.delete", "v_1", r#"{"n":1}"#)
            ]
        );
        assert!(entries[0].id > entries[1].id);
        assert_eq!(entries[1].actor, "agent:a_1 (a1@example.test)");
        assert_eq!(store.audit_log(10).await.unwrap().len(), 3);
    })
    .await;
}

// ------------------------------------------------------------------ visitor events

fn page_event(site: &str, visitor: &str, kind: VisitorEventKind, at: i64) -> NewVisitorEvent {
    NewVisitorEvent {
        site_id: site.into(),
        visitor_id: visitor.into(),
        kind,
        data: json!({"url": format!("https://shop.test/p/{at}")}),
        at,
    }
}

#[tokio::test]
async fn events_are_kept_per_visitor_newest_first_capped_and_erased_with_the_visitor() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let other = store.create_site("Other", &["*".into()]).await.unwrap().id;
        for id in ["v_1", "v_2"] {
            visitor(store, &site, id, 1).await;
        }
        store
            .record_visitor_event(page_event(&site, "v_1", VisitorEventKind::PageView, 10))
            .await
            .unwrap();
        store
            .record_visitor_event(page_event(&site, "v_2", VisitorEventKind::TriggerShown, 20))
            .await
            .unwrap();
        // Another site's visitor id, or an unknown visitor, records nothing.
        for (site_id, visitor_id) in [(&other, "v_1"), (&site, "v_nobody")] {
            let refused = store
                .record_visitor_event(page_event(
                    site_id,
                    visitor_id,
                    VisitorEventKind::PageView,
                    30,
                ))
                .await;
            assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
        }

        let events = store
            .visitor_events(vec!["v_1".into(), "v_2".into()], 10)
            .await
            .unwrap();
        let kinds: Vec<_> = events
            .iter()
            .map(|e| (e.visitor_id.as_str(), e.site_id.as_str(), e.kind, e.at))
            .collect();
        assert_eq!(
            kinds,
            [
                ("v_2", site.as_str(), VisitorEventKind::TriggerShown, 20),
                ("v_1", site.as_str(), VisitorEventKind::PageView, 10)
            ]
        );
        assert_eq!(events[1].data["url"], "https://shop.test/p/10");
        // The limit holds across visitors; events at one millisecond, newest id first.
        store
            .record_visitor_event(page_event(
                &site,
                "v_1",
                VisitorEventKind::TriggerOpened,
                20,
            ))
            .await
            .unwrap();
        let newest = store
            .visitor_events(vec!["v_1".into(), "v_2".into()], 2)
            .await
            .unwrap();
        let newest: Vec<_> = newest
            .iter()
            .map(|e| (e.visitor_id.as_str(), e.kind))
            .collect();
        assert_eq!(
            newest,
            [
                ("v_1", VisitorEventKind::TriggerOpened),
                ("v_2", VisitorEventKind::TriggerShown)
            ]
        );

        // The cap: a visitor keeps at most MAX_EVENTS_PER_VISITOR (trimmed every 64th
        // event).
        let cap = visitor_events::MAX_EVENTS_PER_VISITOR;
        for at in 0..(cap + 200) {
            store
                .record_visitor_event(page_event(
                    &site,
                    "v_1",
                    VisitorEventKind::PageView,
                    100 + at,
                ))
                .await
                .unwrap();
        }
        let kept = store
            .visitor_events(vec!["v_1".into()], 5000)
            .await
            .unwrap();
        assert!(kept.len() as i64 <= cap + 64, "{}", kept.len());
        assert!(kept.len() as i64 >= cap, "{}", kept.len());
        assert_eq!(kept[0].at, 100 + cap + 199);
        assert_eq!(
            store
                .visitor_events(vec!["v_2".into()], 10)
                .await
                .unwrap()
                .len(),
            1,
            "another visitor's events are not trimmed"
        );

        // Erasing the visitor erases their events.
        store.erase_visitor("v_1", note(5)).await.unwrap();
        assert!(
            store
                .visitor_events(vec!["v_1".into()], 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .visitor_events(vec!["v_2".into()], 10)
                .await
                .unwrap()
                .len(),
            1
        );
    })
    .await;
}

// ------------------------------------------------------------------------ timeline

fn kinds(timeline: &Timeline) -> Vec<String> {
    timeline
        .entries
        .iter()
        .map(|entry| {
            let value = serde_json::to_value(entry).unwrap();
            let kind = value["kind"].as_str().unwrap().to_owned();
            let what = match entry {
                TimelineEntry::Conversation { conversation, .. } => conversation.id.clone(),
                TimelineEntry::PageView { url, .. } => url.clone().unwrap_or_default(),
                TimelineEntry::OfflineRequest { message, .. } => {
                    message.clone().unwrap_or_default()
                }
                TimelineEntry::TriggerShown(trigger) => trigger.text.clone().unwrap_or_default(),
                _ => String::new(),
            };
            format!("{kind}:{what}")
        })
        .collect()
}

async fn identify(store: &dyn Store, visitor: &str, external_id: &str) {
    store
        .identify_visitor(
            visitor,
            IdentityUpdate {
                external_id: external_id.into(),
                ..IdentityUpdate::default()
            },
        )
        .await
        .unwrap();
}

async fn page(store: &dyn Store, site: &str, visitor: &str, url: &str, at: i64) {
    store
        .record_visitor_event(NewVisitorEvent {
            site_id: site.into(),
            visitor_id: visitor.into(),
            kind: VisitorEventKind::PageView,
            data: json!({"url": url, "title": "T"}),
            at,
        })
        .await
        .unwrap();
}

fn query(visitor: &str, limit: u32, before: Option<TimelineCursor>) -> TimelineQuery {
    TimelineQuery {
        visitor_id: visitor.into(),
        before,
        limit,
    }
}

/// Every page of `visitor`'s timeline of `size` entries, each cursor through its text.
async fn paged(store: &dyn Store, visitor: &str, size: u32) -> Vec<String> {
    let mut entries = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .customer_timeline(query(visitor, size, before))
            .await
            .unwrap()
            .unwrap();
        assert!(page.entries.len() <= size as usize);
        entries.extend(kinds(&page));
        match page.next {
            Some(next) => {
                let decoded = TimelineCursor::decode(&next.encode()).expect("a cursor");
                assert_eq!(decoded, next);
                before = Some(decoded);
            }
            None => break,
        }
    }
    entries
}

#[tokio::test]
async fn one_customer_across_devices_with_the_current_session_and_pages() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let other = store.create_site("Other", &["*".into()]).await.unwrap().id;
        for (id, site_id) in [
            ("v_phone", &site),
            ("v_laptop", &site),
            ("v_anon", &site),
            ("v_elsewhere", &other),
        ] {
            visitor(store, site_id, id, 1).await;
        }
        identify(store, "v_phone", "customer-7").await;
        identify(store, "v_laptop", "customer-7").await;
        // The same user id on another site is another customer.
        identify(store, "v_elsewhere", "customer-7").await;

        // Earlier, on the phone: a conversation, closed and rated, and a callback.
        let first = store
            .create_conversation(&site, "v_phone", ConversationState::Assigned, 10 * MINUTE)
            .await
            .unwrap();
        store
            .transition(Transition::new(
                &first.id,
                &[ConversationState::Assigned],
                ConversationState::Closed,
                20 * MINUTE,
            ))
            .await
            .unwrap();
        store
            .rate(&first.id, 5, Some("quick"), 21 * MINUTE)
            .await
            .unwrap();
        store
            .create_offline_request(offline_request(
                &site,
                "v_phone",
                "l@example.com",
                22 * MINUTE,
            ))
            .await
            .unwrap();
        page(store, &site, "v_phone", "/phone-page", 9 * MINUTE).await;
        store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.clone(),
                visitor_id: "v_phone".into(),
                kind: VisitorEventKind::TriggerShown,
                data: json!({"trigger": "t1", "text": "Need help?"}),
                at: 9 * MINUTE + 1,
            })
            .await
            .unwrap();
        let elsewhere = store
            .create_conversation(&other, "v_elsewhere", ConversationState::Bot, 30 * MINUTE)
            .await
            .unwrap();

        // Now, on the laptop: an old visit, then (after a gap) the current session.
        page(store, &site, "v_laptop", "/old-visit", 40 * MINUTE).await;
        page(store, &site, "v_laptop", "/home", 100 * MINUTE).await;
        page(store, &site, "v_laptop", "/pricing", 120 * MINUTE).await;
        let second = store
            .create_conversation(&site, "v_laptop", ConversationState::Bot, 125 * MINUTE)
            .await
            .unwrap();
        // The earlier one went on by e-mail.
        store
            .email_set_channel(&first.id, Channel::Email)
            .await
            .unwrap();

        let timeline = store
            .customer_timeline(query("v_laptop", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(timeline.site_id, site);
        assert_eq!(timeline.external_id.as_deref(), Some("customer-7"));
        assert_eq!(timeline.visitor_ids, ["v_laptop", "v_phone"]);
        assert_eq!(timeline.session_since, Some(100 * MINUTE));
        assert_eq!(
            kinds(&timeline),
            [
                format!("conversation:{}", second.id),
                "page_view:/pricing".into(),
                "page_view:/home".into(),
                "offline_request:call me".into(),
                format!("conversation:{}", first.id),
                "trigger_shown:Need help?".into(),
            ]
        );
        assert!(timeline.next.is_none());
        let TimelineEntry::Conversation {
            closed_at,
            rating,
            conversation,
            ..
        } = &timeline.entries[4]
        else {
            panic!("{:?}", timeline.entries[4]);
        };
        assert_eq!(*closed_at, Some(20 * MINUTE));
        assert_eq!(conversation.channel, Some(Channel::Email));
        assert_eq!(
            rating
                .as_ref()
                .map(|r| (r.score, r.comment.as_deref(), r.at)),
            Some((5, Some("quick"), 21 * MINUTE))
        );
        let TimelineEntry::Conversation {
            closed_at, rating, ..
        } = &timeline.entries[0]
        else {
            panic!("{:?}", timeline.entries[0]);
        };
        assert_eq!((closed_at, rating), (&None, &None));
        assert!(
            !kinds(&timeline).contains(&format!("conversation:{}", elsewhere.id)),
            "another site's customer is another customer"
        );

        // An anonymous visitor's timeline holds only their own; nobody has none.
        page(store, &site, "v_anon", "/anon", 50 * MINUTE).await;
        let anon = store
            .customer_timeline(query("v_anon", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(anon.visitor_ids, ["v_anon"]);
        assert_eq!(anon.external_id, None);
        assert_eq!(kinds(&anon), ["page_view:/anon"]);
        assert!(
            store
                .customer_timeline(query("v_nobody", 50, None))
                .await
                .unwrap()
                .is_none()
        );

        // Pages of two entries: the same entries, in the same order, each once.
        assert_eq!(paged(store, "v_laptop", 2).await, kinds(&timeline));
    })
    .await;
}

#[tokio::test]
async fn timeline_entries_sharing_a_millisecond_page_exactly() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        visitor(store, &site, "v_1", 1).await;
        for n in 0..3 {
            page(store, &site, "v_1", &format!("/p{n}"), 1000).await;
            store
                .create_conversation(&site, "v_1", ConversationState::Bot, 1000)
                .await
                .unwrap();
            // Dealt with, so the next one is a new request.
            let (id, _) = store
                .create_offline_request(OfflineRequest {
                    message: Some(format!("m{n}")),
                    ..offline_request(&site, "v_1", "a@example.test", 1000)
                })
                .await
                .unwrap();
            store.offline_request_done(id, 1000).await.unwrap();
        }
        let whole = store
            .customer_timeline(query("v_1", 50, None))
            .await
            .unwrap()
            .unwrap();
        let all = kinds(&whole);
        assert_eq!(all.len(), 9);
        // Conversations, then callbacks, then events; each newest (largest id) first.
        assert!(all[..3].iter().all(|k| k.starts_with("conversation:")));
        let mut ids: Vec<_> = all[..3].to_vec();
        ids.sort_unstable();
        ids.reverse();
        assert_eq!(ids, all[..3], "conversation ids descending, byte by byte");
        assert_eq!(
            all[3..],
            [
                "offline_request:m2",
                "offline_request:m1",
                "offline_request:m0",
                "page_view:/p2",
                "page_view:/p1",
                "page_view:/p0"
            ]
        );
        for size in 1..=8 {
            assert_eq!(paged(store, "v_1", size).await, all, "pages of {size}");
        }
    })
    .await;
}

/// A mail that came before the customer identified anywhere is theirs once a signed
/// identity vouches for its address; an address the visitor only typed links nothing.
#[tokio::test]
async fn an_earlier_mail_is_linked_to_the_timeline_by_a_signed_address_only() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let mut mails = Vec::new();
        for (address, id) in [
            ("Layla@Example.com", "v_mail_l"),
            ("omar@example.com", "v_mail_o"),
        ] {
            let visitor = store
                .email_visitor(&site, address, None, id, 1)
                .await
                .unwrap();
            let conversation = store
                .create_conversation(&site, &visitor, ConversationState::Queued, 2)
                .await
                .unwrap();
            store
                .email_set_channel(&conversation.id, Channel::Email)
                .await
                .unwrap();
            mails.push((visitor, conversation.id));
        }
        for id in ["v_signed", "v_typed"] {
            visitor(store, &site, id, 3).await;
        }
        for (visitor, user, email, verified) in [
            (
                "v_signed",
                "customer-l",
                "layla@example.com",
                vec!["email".to_owned()],
            ),
            ("v_typed", "customer-o", "omar@example.com", Vec::new()),
        ] {
            store
                .identify_visitor(
                    visitor,
                    IdentityUpdate {
                        external_id: user.into(),
                        email: Some(email.into()),
                        verified,
                        ..IdentityUpdate::default()
                    },
                )
                .await
                .unwrap();
        }
        let layla = store
            .customer_timeline(query("v_signed", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            layla.visitor_ids,
            ["v_signed".to_owned(), mails[0].0.clone()]
        );
        assert_eq!(kinds(&layla), [format!("conversation:{}", mails[0].1)]);
        let omar = store
            .customer_timeline(query("v_typed", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(omar.visitor_ids, ["v_typed"]);
        assert!(omar.entries.is_empty(), "{:?}", kinds(&omar));
    })
    .await;
}

// ------------------------------------------------------------------ trigger counts

#[tokio::test]
async fn triggers_are_counted_per_trigger_and_kind_within_the_period_and_the_site() {
    each_backend(|store| async move {
        let store = store.as_ref();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let other = store.create_site("Other", &["*".into()]).await.unwrap().id;
        visitor(store, &site, "v_1", 1).await;
        visitor(store, &other, "v_2", 1).await;
        let record = |site: &str, visitor: &str, kind, trigger: &str, at| NewVisitorEvent {
            site_id: site.into(),
            visitor_id: visitor.into(),
            kind,
            data: json!({"trigger": trigger, "text": "Hi"}),
            at,
        };
        for (kind, trigger, at) in [
            (VisitorEventKind::TriggerShown, "pricing", 10),
            (VisitorEventKind::TriggerShown, "pricing", 20),
            (VisitorEventKind::TriggerOpened, "pricing", 21),
            (VisitorEventKind::TriggerConverted, "pricing", 22),
            (VisitorEventKind::TriggerShown, "exit", 30),
            (VisitorEventKind::TriggerReplied, "exit", 99),
            // Outside the period.
            (VisitorEventKind::TriggerShown, "pricing", 100),
            (VisitorEventKind::TriggerShown, "pricing", 9),
            // Not a proactive message's event.
            (VisitorEventKind::PageView, "pricing", 40),
        ] {
            store
                .record_visitor_event(record(&site, "v_1", kind, trigger, at))
                .await
                .unwrap();
        }
        // A page whose title holds a NUL character (the visitor's browser sends it)
        // does not trouble the count.
        store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.clone(),
                visitor_id: "v_1".into(),
                kind: VisitorEventKind::PageView,
                data: json!({"url": "/", "title": "a\u{0}b", "trigger": "pricing"}),
                at: 41,
            })
            .await
            .unwrap();
        // Without a trigger id: not counted.
        store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.clone(),
                visitor_id: "v_1".into(),
                kind: VisitorEventKind::TriggerShown,
                data: json!({"text": "Hi"}),
                at: 50,
            })
            .await
            .unwrap();
        store
            .record_visitor_event(record(
                &other,
                "v_2",
                VisitorEventKind::TriggerShown,
                "pricing",
                15,
            ))
            .await
            .unwrap();
        let counts = store.trigger_counts(&site, 10, 100).await.unwrap();
        let got: Vec<(&str, VisitorEventKind, i64)> = counts
            .iter()
            .map(|c| (c.trigger.as_str(), c.kind, c.count))
            .collect();
        assert_eq!(
            got,
            [
                ("exit", VisitorEventKind::TriggerReplied, 1),
                ("exit", VisitorEventKind::TriggerShown, 1),
                ("pricing", VisitorEventKind::TriggerConverted, 1),
                ("pricing", VisitorEventKind::TriggerOpened, 1),
                ("pricing", VisitorEventKind::TriggerShown, 2),
            ]
        );
        assert!(
            store
                .trigger_counts(&site, 200, 300)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}
