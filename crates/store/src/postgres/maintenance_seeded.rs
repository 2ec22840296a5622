//! TEMPORARY: PostgreSQL checks with rows seeded by plain SQL, until the other areas
//! are ported (removed before the final commit).

use crate::postgres::scratch::ScratchDatabase;
use crate::*;
use serde_json::json;
use std::sync::Arc;

struct Db {
    _database: ScratchDatabase,
    url: String,
    store: Arc<PostgresStore>,
}

async fn db() -> Db {
    let (database, store) = tokio::task::spawn_blocking(|| {
        let database = ScratchDatabase::create().unwrap();
        let store = PostgresStore::connect(database.url(), PostgresOptions::default()).unwrap();
        (database, store)
    })
    .await
    .unwrap();
    Db {
        url: database.url().to_owned(),
        _database: database,
        store: Arc::new(store),
    }
}

impl Db {
    async fn sql(&self, batch: &str) {
        let url = self.url.clone();
        let batch = batch.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut client = pg::Client::connect(&url, pg::NoTls).unwrap();
            client
                .batch_execute(&batch)
                .unwrap_or_else(|e| panic!("{e}: {batch}"));
        })
        .await
        .unwrap();
    }
    async fn count(&self, query: &str) -> i64 {
        let url = self.url.clone();
        let query = query.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut client = pg::Client::connect(&url, pg::NoTls).unwrap();
            client.query_one(&query, &[]).unwrap().get::<_, i64>(0)
        })
        .await
        .unwrap()
    }
}

const SITES: &str = "INSERT INTO sites (id, name, key, origins, identity_secret, created_at) VALUES \
    ('s_1', 'Shop', 'k1', '[\"*\"]', 'x', 0), ('s_2', 'Other', 'k2', '[\"*\"]', 'x', 0);";

fn visitor(id: &str, site: &str, last_seen: i64) -> String {
    format!(
        "INSERT INTO visitors (id, site_id, first_seen, last_seen) VALUES ('{id}', '{site}', {last_seen}, {last_seen});"
    )
}

/// A closed conversation with two lines, a bot turn, a hand-off and a rating.
fn closed(id: &str, site: &str, visitor: &str, at: i64, decision: &str) -> String {
    format!(
        "INSERT INTO conversations (id, site_id, visitor_id, state, last_seq, handed_off_at, \
         handoff_reason, first_response_at, created_at, updated_at, closed_at) VALUES \
         ('{id}', '{site}', '{visitor}', 'closed', 2, {h}, 'requested', {r}, {at}, {at}, {c}); \
         INSERT INTO messages (conversation_id, seq, kind, author_kind, author_id, text, at) VALUES \
         ('{id}', 1, 'text', 'visitor', '{visitor}', 'where is my parcel', {at}), \
         ('{id}', 2, 'text', 'agent', 'a_1', 'it ships today', {r}); \
         INSERT INTO bot_turns (conversation_id, site_id, intent, decision, score, lang, question, at) \
         VALUES ('{id}', '{site}', 'none', '{decision}', 0.5, 'en', 'where?', {at}); \
         INSERT INTO ratings (conversation_id, score, comment, at) VALUES ('{id}', 4, 'kind', {r});",
        h = at + 1000,
        r = at + 2000,
        c = at + 10_000,
    )
}

const HOUR: i64 = 3_600_000;

#[tokio::test]
async fn seeded_retention_and_sweep() {
    let db = db().await;
    let mut seed = SITES.to_owned();
    for index in 0..5 {
        seed += &visitor(&format!("v_{index}"), "s_1", index);
        seed += &closed(
            &format!("c_{index}"),
            "s_1",
            &format!("v_{index}"),
            10 * HOUR + index * 60_000,
            "fallback",
        );
    }
    seed += &visitor("v_keep", "s_1", 0);
    seed += "INSERT INTO offline_requests (site_id, visitor_id, email, created_at) VALUES ('s_1', 'v_keep', 'a@b', 5);";
    seed += &visitor("v_o", "s_2", 0);
    seed += &closed("c_o", "s_2", "v_o", 0, "answer");
    db.sql(&seed).await;
    let store = db.store.clone();
    let budget = RetentionBudget {
        conversations: 2,
        messages: 5000,
    };
    let mut got = Vec::new();
    loop {
        let batch = store
            .retention_batch("s_1", 50 * HOUR, budget)
            .await
            .unwrap();
        got.push((
            batch.conversations,
            batch.messages,
            batch.offline_requests,
            batch.more,
        ));
        if !batch.more {
            break;
        }
    }
    assert_eq!(got, [(2, 4, 1, true), (2, 4, 0, true), (1, 2, 0, false)]);
    assert_eq!(db.count("SELECT count(*) FROM conversations").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM messages").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM report_facts WHERE site_id = 's_1' AND handed_off AND had_bot AND NOT deflected AND score = 4 AND unanswered = 1 AND first_response_ms = 1000 AND resolution_ms = 10000 AND created_hour = 36000000").await, 5);
    let budget = RetentionBudget {
        conversations: 200,
        messages: 3,
    };
    let batch = store
        .retention_batch("s_2", 50 * HOUR, budget)
        .await
        .unwrap();
    assert_eq!((batch.conversations, batch.more), (1, false));
    // Sweep.
    let cutoffs = vec![("s_1".to_owned(), 50 * HOUR)];
    let sweep = store.sweep_visitors(&cutoffs, 0, 2).await.unwrap();
    assert_eq!(sweep.deleted, 2);
    let sweep = store
        .sweep_visitors(&cutoffs, sweep.next.unwrap(), 100)
        .await
        .unwrap();
    assert_eq!((sweep.deleted, sweep.next), (4, None));
    assert_eq!(db.count("SELECT count(*) FROM visitors").await, 1);
}

#[tokio::test]
async fn seeded_find_export_erase_audit() {
    let db = db().await;
    let mut seed = SITES.to_owned();
    seed += &visitor("v_layla", "s_1", 1);
    seed += &closed("c_1", "s_1", "v_layla", HOUR, "fallback");
    seed += "UPDATE visitors SET email = 'Layla@Example.test', external_id = 'cust-7', name = 'Layla' WHERE id = 'v_layla';";
    seed += "INSERT INTO conversations (id, site_id, visitor_id, state, created_at, updated_at) VALUES ('c_open', 's_1', 'v_layla', 'queued', 2, 2);";
    seed += "INSERT INTO offline_requests (site_id, visitor_id, email, message, created_at) VALUES ('s_1', 'v_layla', 'Layla.Phone@example.test', 'call', 5), ('s_1', 'v_cb', 'OMAR@x.test', 'x', 6);";
    seed += "INSERT INTO contacts (id, site_id, external_id, attributes, created_at, updated_at) VALUES ('ct_1', 's_1', 'cust-7', '{\"plan\":\"pro\"}', 1, 1);";
    seed += "INSERT INTO contact_attribute_changes (contact_id, key, old_value, new_value, changed_by, at) VALUES ('ct_1', 'plan', NULL, '\"pro\"', 'token:t', 1);";
    seed += "INSERT INTO email_events (address, kind, detail, at) VALUES ('layla@example.test', 'bounce', 'x', 1), ('LAYLA.phone@example.test', 'bounce', 'x', 1), ('omar@x.test', 'bounce', 'x', 1);";
    seed += "INSERT INTO email_failing (address, reason, at) VALUES ('layla@example.test', 'x', 1), ('layla.phone@example.test', 'x', 1), ('omar@x.test', 'x', 1);";
    seed += &visitor("v_b", "s_1", 1);
    seed += &visitor("v_a", "s_2", 1);
    seed += "UPDATE visitors SET external_id = 'cust-7' WHERE id IN ('v_a', 'v_b');";
    db.sql(&seed).await;
    let store = db.store.clone();
    store
        .record_visitor_event(NewVisitorEvent {
            site_id: "s_1".into(),
            visitor_id: "v_layla".into(),
            kind: VisitorEventKind::PageView,
            data: json!({"url": "/a"}),
            at: 3,
        })
        .await
        .unwrap();
    let find = |s: VisitorSelector| {
        let store = store.clone();
        async move { store.find_visitors(&s).await.unwrap() }
    };
    assert_eq!(
        find(VisitorSelector::Email(" layla@EXAMPLE.test ".into())).await,
        ["v_layla"]
    );
    assert_eq!(
        find(VisitorSelector::Email("omar@x.TEST".into())).await,
        ["v_cb"]
    );
    assert_eq!(find(VisitorSelector::Id("v_cb".into())).await, ["v_cb"]);
    assert_eq!(
        find(VisitorSelector::Id("v_layla".into())).await,
        ["v_layla"]
    );
    assert_eq!(
        find(VisitorSelector::ExternalId {
            external_id: "cust-7".into(),
            site_id: None
        })
        .await,
        ["v_a", "v_b", "v_layla"]
    );
    assert_eq!(
        find(VisitorSelector::ExternalId {
            external_id: "cust-7".into(),
            site_id: Some("s_1".into())
        })
        .await,
        ["v_b", "v_layla"]
    );

    let exported = store.export_visitor("v_layla").await.unwrap().unwrap();
    assert_eq!(exported.conversations.len(), 2);
    assert_eq!(exported.conversations[0].id, "c_open");
    assert_eq!(exported.conversations[1].messages.len(), 2);
    assert_eq!(
        exported.conversations[1].rating.as_ref().map(|r| r.score),
        Some(4)
    );
    assert_eq!(exported.offline_requests.len(), 1);
    assert_eq!(exported.events.len(), 1);
    let contact = exported.contact.unwrap();
    assert_eq!(contact.contact.visitor_ids, ["v_layla", "v_b"]);
    assert_eq!(contact.changes[0].new_value, Some(json!("pro")));
    assert_eq!(exported.profile.unwrap().name.as_deref(), Some("Layla"));
    assert!(
        store
            .export_visitor("v_cb")
            .await
            .unwrap()
            .unwrap()
            .profile
            .is_none()
    );
    assert!(store.export_visitor("v_none").await.unwrap().is_none());

    let note = AuditNote {
        actor: "cli:t".into(),
        selector: "email",
        at: 9,
    };
    assert_eq!(
        store.erase_visitor("v_layla", note.clone()).await.unwrap(),
        Erasure::Open(vec!["c_open".into()])
    );
    db.sql("UPDATE conversations SET state = 'closed', closed_at = 3 WHERE id = 'c_open'")
        .await;
    let Erasure::Erased(erased) = store.erase_visitor("v_layla", note).await.unwrap() else {
        panic!()
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
    assert_eq!(db.count("SELECT count(*) FROM email_events").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM email_failing").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM visitor_events").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM contacts").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM report_facts").await, 2);
    let audit = store.audit_log(5).await.unwrap();
    assert_eq!(
        (
            audit[0].action.as_str(),
            audit[0].subject.as_str(),
            audit[0].at
        ),
        ("visitor.erase", "v_layla", 9)
    );
    assert!(
        audit[0].detail.contains("\"contacts\":1"),
        "{}",
        audit[0].detail
    );
    store
        .record_audit(NewAudit {
            at: 10,
            actor: "a".into(),
            action: "visitor.export".into(),
            subject: "v".into(),
            detail: "{}".into(),
        })
        .await
        .unwrap();
    let audit = store.audit_log(1).await.unwrap();
    assert_eq!((audit.len(), audit[0].at), (1, 10));
}

#[tokio::test]
async fn seeded_events_timeline_triggers() {
    let db = db().await;
    let mut seed = SITES.to_owned();
    for (id, site) in [
        ("v_phone", "s_1"),
        ("v_laptop", "s_1"),
        ("v_else", "s_2"),
        ("v_mail", "s_1"),
        ("v_1", "s_1"),
    ] {
        seed += &visitor(id, site, 1);
    }
    seed +=
        "UPDATE visitors SET external_id = 'cust-7' WHERE id IN ('v_phone', 'v_laptop', 'v_else');";
    seed += "UPDATE visitors SET email = 'layla@x.test', verified = '[\"email\"]' WHERE id = 'v_laptop';";
    seed += "UPDATE visitors SET email = 'Layla@X.test' WHERE id = 'v_mail';";
    seed += &closed("c_first", "s_1", "v_phone", 10 * 60_000, "answer");
    seed += "INSERT INTO conversations (id, site_id, visitor_id, state, created_at, updated_at) VALUES ('c_second', 's_1', 'v_laptop', 'bot', 7500000, 7500000), ('c_mail', 's_1', 'v_mail', 'queued', 2, 2), ('c_else', 's_2', 'v_else', 'bot', 3, 3);";
    seed += "INSERT INTO offline_requests (site_id, visitor_id, message, created_at) VALUES ('s_1', 'v_phone', 'call me', 1320000);";
    // Three of each at one millisecond for v_1.
    for n in 0..3 {
        seed += &format!(
            "INSERT INTO conversations (id, site_id, visitor_id, state, created_at, updated_at) VALUES ('c_ms{n}', 's_1', 'v_1', 'bot', 1000, 1000);"
        );
        seed += &format!(
            "INSERT INTO offline_requests (site_id, visitor_id, message, created_at, done_at) VALUES ('s_1', 'v_1', 'm{n}', 1000, 1000);"
        );
    }
    db.sql(&seed).await;
    let store = db.store.clone();
    let event = |visitor: &str, kind, data: serde_json::Value, at| NewVisitorEvent {
        site_id: "s_1".into(),
        visitor_id: visitor.into(),
        kind,
        data,
        at,
    };
    let minute = 60_000;
    for (v, k, d, at) in [
        (
            "v_phone",
            VisitorEventKind::PageView,
            json!({"url": "/phone"}),
            9 * minute,
        ),
        (
            "v_phone",
            VisitorEventKind::TriggerShown,
            json!({"trigger": "t1", "text": "Need help?"}),
            9 * minute + 1,
        ),
        (
            "v_laptop",
            VisitorEventKind::PageView,
            json!({"url": "/old"}),
            40 * minute,
        ),
        (
            "v_laptop",
            VisitorEventKind::PageView,
            json!({"url": "/home"}),
            100 * minute,
        ),
        (
            "v_laptop",
            VisitorEventKind::PageView,
            json!({"url": "/pricing"}),
            120 * minute,
        ),
        (
            "v_1",
            VisitorEventKind::PageView,
            json!({"url": "/p0"}),
            1000,
        ),
        (
            "v_1",
            VisitorEventKind::PageView,
            json!({"url": "/p1"}),
            1000,
        ),
        (
            "v_1",
            VisitorEventKind::PageView,
            json!({"url": "/p2"}),
            1000,
        ),
    ] {
        store
            .record_visitor_event(event(v, k, d, at))
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .record_visitor_event(event("v_else", VisitorEventKind::PageView, json!({}), 1))
            .await,
        Err(StoreError::NotFound)
    ));
    let tl = store
        .customer_timeline(TimelineQuery {
            visitor_id: "v_laptop".into(),
            before: None,
            limit: 50,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tl.visitor_ids, ["v_laptop", "v_phone", "v_mail"]);
    assert_eq!(tl.session_since, Some(100 * minute));
    let names = |t: &Timeline| -> Vec<String> {
        t.entries
            .iter()
            .map(|e| {
                let v = serde_json::to_value(e).unwrap();
                format!(
                    "{}:{}",
                    v["kind"].as_str().unwrap(),
                    match e {
                        TimelineEntry::Conversation { conversation, .. } => conversation.id.clone(),
                        TimelineEntry::PageView { url, .. } => url.clone().unwrap_or_default(),
                        TimelineEntry::OfflineRequest { message, .. } =>
                            message.clone().unwrap_or_default(),
                        _ => String::new(),
                    }
                )
            })
            .collect()
    };
    assert_eq!(
        names(&tl),
        [
            "conversation:c_second",
            "page_view:/pricing",
            "page_view:/home",
            "offline_request:call me",
            "conversation:c_first",
            "trigger_shown:",
            "conversation:c_mail"
        ]
    );
    let TimelineEntry::Conversation {
        closed_at, rating, ..
    } = &tl.entries[4]
    else {
        panic!()
    };
    assert_eq!(
        (*closed_at, rating.as_ref().map(|r| r.score)),
        (Some(10 * minute + 10_000), Some(4))
    );
    for (visitor, total) in [("v_laptop", 7), ("v_1", 9)] {
        let whole = names(
            &store
                .customer_timeline(TimelineQuery {
                    visitor_id: visitor.into(),
                    before: None,
                    limit: 50,
                })
                .await
                .unwrap()
                .unwrap(),
        );
        assert_eq!(whole.len(), total);
        for size in 1..=5 {
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = store
                    .customer_timeline(TimelineQuery {
                        visitor_id: visitor.into(),
                        before,
                        limit: size,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                paged.extend(names(&page));
                match page.next {
                    Some(n) => before = Some(TimelineCursor::decode(&n.encode()).unwrap()),
                    None => break,
                }
            }
            assert_eq!(paged, whole, "{visitor} {size}");
        }
        if visitor == "v_1" {
            assert_eq!(
                whole,
                [
                    "conversation:c_ms2",
                    "conversation:c_ms1",
                    "conversation:c_ms0",
                    "offline_request:m2",
                    "offline_request:m1",
                    "offline_request:m0",
                    "page_view:/p2",
                    "page_view:/p1",
                    "page_view:/p0"
                ]
            );
        }
    }
    assert!(
        store
            .customer_timeline(TimelineQuery {
                visitor_id: "nobody".into(),
                before: None,
                limit: 5
            })
            .await
            .unwrap()
            .is_none()
    );
    // Events.
    let events = store
        .visitor_events(vec!["v_phone".into(), "v_laptop".into()], 2)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.at).collect::<Vec<_>>(),
        [120 * minute, 100 * minute]
    );
    for at in 0..1200 {
        store
            .record_visitor_event(event("v_mail", VisitorEventKind::PageView, json!({}), at))
            .await
            .unwrap();
    }
    let n = db
        .count("SELECT count(*) FROM visitor_events WHERE visitor_id = 'v_mail'")
        .await;
    assert!((1000..=1064).contains(&n), "{n}");
    // Triggers.
    for (k, t, at) in [
        (VisitorEventKind::TriggerShown, "pricing", 10),
        (VisitorEventKind::TriggerShown, "pricing", 20),
        (VisitorEventKind::TriggerOpened, "pricing", 21),
        (VisitorEventKind::TriggerShown, "exit", 30),
        (VisitorEventKind::TriggerShown, "pricing", 500),
    ] {
        store
            .record_visitor_event(event("v_1", k, json!({"trigger": t}), at))
            .await
            .unwrap();
    }
    store
        .record_visitor_event(event(
            "v_1",
            VisitorEventKind::TriggerShown,
            json!({"text": "no id"}),
            40,
        ))
        .await
        .unwrap();
    store.record_visitor_event(event("v_1", VisitorEventKind::PageView, json!({"title": "a\u{0}b", "trigger": "x"}), 41)).await.unwrap();
    let counts = store.trigger_counts("s_1", 0, 100).await.unwrap();
    let got: Vec<_> = counts
        .iter()
        .map(|c| (c.trigger.as_str(), c.kind, c.count))
        .collect();
    assert_eq!(
        got,
        [
            ("exit", VisitorEventKind::TriggerShown, 1),
            ("pricing", VisitorEventKind::TriggerOpened, 1),
            ("pricing", VisitorEventKind::TriggerShown, 2)
        ]
    );
}
