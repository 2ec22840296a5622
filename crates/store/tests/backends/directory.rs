//! The store's directory, on every backend: settings, sites, departments, canned
//! responses, agents and their sessions, offline requests, alerts, ratings, bot turns,
//! timings and the bot report.

use crate::common::each_backend;
use salam_protocol::{ConversationState, MessageKind, Presence};
use salam_store::{
    Agent, AgentRole, AgentUpdate, Alert, BotTurn, NewAgent, NewMessage, OfflineRequest, Page,
    Store, StoreError, Transition, VisitorUpdate,
};
use std::sync::Arc;

/// Now, in milliseconds since the Unix epoch (sessions expire by the clock).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn new_agent(email: &str, name: &str) -> NewAgent {
    NewAgent {
        email: email.into(),
        name: name.into(),
        role: AgentRole::Agent,
        password_hash: format!("hash of {name}"),
        all_sites: false,
        site_ids: vec![],
        capacity: None,
        departments: vec![],
    }
}

async fn agent(store: &Arc<dyn Store>, email: &str, name: &str) -> Agent {
    store
        .create_agent(new_agent(email, name))
        .await
        .expect("create agent")
}

/// A site with one visitor (`v_1`).
async fn site_with_visitor(store: &Arc<dyn Store>) -> String {
    let site = store
        .create_site("Shop", &["*".into()])
        .await
        .expect("site");
    store
        .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
        .await
        .expect("visitor");
    site.id
}

fn page(before: Option<i64>, limit: u32) -> Page {
    Page { before, limit }
}

#[tokio::test]
async fn a_setting_is_set_once_and_kept() {
    each_backend(|store| async move {
        assert_eq!(store.get_setting("secret").await.expect("read"), None);
        let first = store
            .set_setting_if_absent("secret", "one")
            .await
            .expect("set");
        assert_eq!(first, "one");
        let second = store
            .set_setting_if_absent("secret", "two")
            .await
            .expect("set again");
        assert_eq!(second, "one", "the first value stays");
        assert_eq!(
            store.get_setting("secret").await.expect("read"),
            Some("one".into())
        );
    })
    .await;
}

#[tokio::test]
async fn sites_are_found_listed_and_updated() {
    each_backend(|store| async move {
        let shop = store
            .create_site("Shop", &["https://shop.test".into()])
            .await
            .expect("site");
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site");
        assert_ne!(shop.key, other.key);
        assert_ne!(shop.identity_secret, other.identity_secret);
        assert_eq!(shop.settings, "{}");
        assert_eq!(
            store.site_by_key(&shop.key).await.expect("by key"),
            Some(shop.clone())
        );
        assert_eq!(
            store.site_by_id(&other.id).await.expect("by id"),
            Some(other.clone())
        );
        assert_eq!(store.site_by_key(&shop.id).await.expect("by key"), None);
        assert_eq!(store.site_by_id("s_missing").await.expect("by id"), None);

        // Oldest first, then by id.
        let mut expected = vec![shop.clone(), other.clone()];
        expected.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        assert_eq!(store.list_sites().await.expect("list"), expected);

        let renamed = store
            .update_site(&shop.id, Some("Shop & Co"), None)
            .await
            .expect("rename");
        assert_eq!(renamed.name, "Shop & Co");
        assert_eq!(renamed.origins, ["https://shop.test"], "origins unchanged");
        let moved = store
            .update_site(
                &shop.id,
                None,
                Some(&["https://a.test".into(), "https://b.test".into()]),
            )
            .await
            .expect("new origins");
        assert_eq!(moved.name, "Shop & Co", "name unchanged");
        assert_eq!(moved.origins, ["https://a.test", "https://b.test"]);
        assert_eq!(
            store.site_by_id(&shop.id).await.expect("by id"),
            Some(moved.clone())
        );
        assert!(matches!(
            store.update_site("s_missing", Some("x"), None).await,
            Err(StoreError::NotFound)
        ));

        store
            .update_site_settings(&shop.id, r##"{"color":"#123456"}"##)
            .await
            .expect("settings");
        assert_eq!(
            store
                .site_by_id(&shop.id)
                .await
                .expect("by id")
                .expect("site")
                .settings,
            r##"{"color":"#123456"}"##
        );
        assert_eq!(
            store
                .site_by_id(&other.id)
                .await
                .expect("by id")
                .expect("site")
                .settings,
            "{}",
            "only that site"
        );
        assert!(matches!(
            store.update_site_settings("s_missing", "{}").await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

/// Rotation keeps the previous secret and says when it happened.
#[tokio::test]
async fn identity_secrets_rotate_and_keep_the_previous_one() {
    each_backend(|store| async move {
        let before = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site");
        assert_eq!(before.previous_identity_secret, None);
        assert_eq!(before.identity_secret_rotated_at, None);
        let after = store
            .rotate_identity_secret(&before.id, "sk_new", 77)
            .await
            .expect("rotate");
        assert_eq!(after.identity_secret, "sk_new");
        assert_eq!(
            after.previous_identity_secret.as_deref(),
            Some(before.identity_secret.as_str())
        );
        assert_eq!(after.identity_secret_rotated_at, Some(77));
        let again = store
            .rotate_identity_secret(&before.id, "sk_newer", 88)
            .await
            .expect("rotate again");
        assert_eq!(again.previous_identity_secret.as_deref(), Some("sk_new"));
        assert_eq!(
            store.site_by_id(&before.id).await.expect("by id"),
            Some(again)
        );
        assert!(matches!(
            store.rotate_identity_secret("s_missing", "sk", 1).await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

/// Canned responses and departments belong to one site each, sorted in byte order
/// (capitals first) within a site, sites in the order asked.
#[tokio::test]
async fn canned_and_departments_are_per_site() {
    each_backend(|store| async move {
        let shop = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site")
            .id;
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site")
            .id;
        for name in ["sales", "Support", "billing"] {
            store.add_department(&shop, name).await.expect("department");
        }
        store
            .add_department(&shop, "sales")
            .await
            .expect("a second add changes nothing");
        store
            .add_department(&other, "billing")
            .await
            .expect("department");
        assert!(matches!(
            store.add_department("s_missing", "sales").await,
            Err(StoreError::Conflict(_))
        ));
        let departments = store
            .departments(&[other.clone(), shop.clone()])
            .await
            .expect("departments");
        let listed: Vec<(&str, &str)> = departments
            .iter()
            .map(|d| (d.site_id.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (other.as_str(), "billing"),
                (shop.as_str(), "Support"),
                (shop.as_str(), "billing"),
                (shop.as_str(), "sales"),
            ]
        );
        store
            .remove_department(&other, "sales")
            .await
            .expect("not there: nothing");
        store
            .remove_department(&shop, "sales")
            .await
            .expect("remove");
        let names: Vec<String> = store
            .departments(std::slice::from_ref(&shop))
            .await
            .expect("departments")
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["Support", "billing"]);

        let hi = store
            .add_canned(&shop, "hi", "Hello!")
            .await
            .expect("canned");
        assert_eq!(
            (hi.site_id.as_str(), hi.shortcut.as_str()),
            (shop.as_str(), "hi")
        );
        let bye = store
            .add_canned(&shop, "Bye", "Goodbye!")
            .await
            .expect("canned");
        store
            .add_canned(&other, "hi", "Salam!")
            .await
            .expect("same shortcut elsewhere");
        assert!(matches!(
            store.add_canned(&shop, "hi", "again").await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.add_canned("s_missing", "hi", "x").await,
            Err(StoreError::Conflict(_))
        ));
        let canned = store
            .canned(std::slice::from_ref(&shop))
            .await
            .expect("canned");
        assert_eq!(canned, [bye.clone(), hi.clone()]);
        let texts: Vec<String> = store
            .canned(&[other.clone(), shop.clone()])
            .await
            .expect("canned")
            .into_iter()
            .map(|c| c.text)
            .collect();
        assert_eq!(texts, ["Salam!", "Goodbye!", "Hello!"]);
        store.remove_canned(bye.id).await.expect("remove");
        assert!(matches!(
            store.remove_canned(bye.id).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store
                .canned(std::slice::from_ref(&shop))
                .await
                .expect("canned"),
            [hi]
        );
        // The failed adds took nothing with them: a later one works.
        store
            .add_canned(&shop, "thanks", "Thank you!")
            .await
            .expect("canned");
    })
    .await;
}

/// E-mails are unique whatever their case, and found whatever the case typed.
#[tokio::test]
async fn agent_emails_are_unique_in_any_case() {
    each_backend(|store| async move {
        assert_eq!(store.count_agents().await.expect("count"), 0);
        let sara = agent(&store, "Sara@Shop.test", "Sara").await;
        assert!(matches!(
            store
                .create_agent(new_agent("sara@SHOP.test", "Other Sara"))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.count_agents().await.expect("count"), 1);
        let (found, hash) = store
            .agent_by_email("  SARA@shop.TEST ")
            .await
            .expect("by e-mail")
            .expect("found in any case, trimmed");
        assert_eq!(found, sara);
        assert_eq!(found.email, "Sara@Shop.test", "kept as typed");
        assert_eq!(hash, "hash of Sara");
        assert_eq!(
            store
                .agent_by_email("nobody@shop.test")
                .await
                .expect("by e-mail"),
            None
        );
        assert_eq!(
            store.agent_by_id(&sara.id).await.expect("by id"),
            Some(sara)
        );
        assert_eq!(store.agent_by_id("a_missing").await.expect("by id"), None);
    })
    .await;
}

/// Every field of an agent, and its sites, as created and as changed.
#[tokio::test]
async fn agents_keep_their_sites_and_change_field_by_field() {
    each_backend(|store| async move {
        let b = store
            .create_site("B", &["*".into()])
            .await
            .expect("site")
            .id;
        let a = store
            .create_site("A", &["*".into()])
            .await
            .expect("site")
            .id;
        let mut sorted = vec![a.clone(), b.clone()];
        sorted.sort();
        let created = store
            .create_agent(NewAgent {
                email: "mona@shop.test".into(),
                name: "Mona".into(),
                role: AgentRole::Admin,
                password_hash: "h".into(),
                all_sites: true,
                site_ids: vec![sorted[1].clone(), sorted[0].clone()],
                capacity: Some(3),
                departments: vec!["sales".into(), "billing".into()],
            })
            .await
            .expect("create");
        assert_eq!(created.role, AgentRole::Admin);
        assert!(created.all_sites && !created.disabled);
        assert_eq!(created.capacity, Some(3));
        assert_eq!(created.departments, ["sales", "billing"]);
        assert_eq!(created.presence, Presence::Online);
        let stored = store
            .agent_by_id(&created.id)
            .await
            .expect("by id")
            .expect("agent");
        assert_eq!(stored.site_ids, sorted, "sites sorted by id");
        assert_eq!(
            Agent {
                site_ids: created.site_ids.clone(),
                ..stored.clone()
            },
            created
        );

        let updated = store
            .update_agent(
                &created.id,
                AgentUpdate {
                    name: Some("Mona L.".into()),
                    role: Some(AgentRole::Agent),
                    capacity: Some(Some(5)),
                    departments: Some(vec!["support".into()]),
                    disabled: Some(false),
                    all_sites: Some(false),
                    site_ids: Some(vec![b.clone()]),
                },
            )
            .await
            .expect("update");
        assert_eq!(updated.name, "Mona L.");
        assert_eq!(updated.role, AgentRole::Agent);
        assert_eq!(updated.capacity, Some(5));
        assert_eq!(updated.departments, ["support"]);
        assert!(!updated.all_sites && !updated.disabled);
        assert_eq!(updated.site_ids, std::slice::from_ref(&b));
        assert_eq!(updated.email, "mona@shop.test");

        // Nothing asked, nothing changed; `Some(None)` clears the capacity.
        let same = store
            .update_agent(&created.id, AgentUpdate::default())
            .await
            .expect("no change");
        assert_eq!(same, updated);
        let cleared = store
            .update_agent(
                &created.id,
                AgentUpdate {
                    capacity: Some(None),
                    site_ids: Some(vec![]),
                    ..Default::default()
                },
            )
            .await
            .expect("clear");
        assert_eq!(cleared.capacity, None);
        assert!(cleared.site_ids.is_empty());
        assert_eq!(cleared.name, "Mona L.");

        // An unknown site refuses the whole update: the name stays too.
        assert!(matches!(
            store
                .update_agent(
                    &created.id,
                    AgentUpdate {
                        name: Some("Changed".into()),
                        site_ids: Some(vec![a.clone(), "s_missing".into()]),
                        ..Default::default()
                    },
                )
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.agent_by_id(&created.id).await.expect("by id"),
            Some(cleared)
        );
        assert!(matches!(
            store
                .update_agent("a_missing", AgentUpdate::default())
                .await,
            Err(StoreError::NotFound)
        ));

        // An unknown site refuses the new agent: nothing of it stays.
        assert!(matches!(
            store
                .create_agent(NewAgent {
                    site_ids: vec!["s_missing".into()],
                    ..new_agent("lost@shop.test", "Lost")
                })
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store
                .agent_by_email("lost@shop.test")
                .await
                .expect("by e-mail"),
            None
        );
        assert_eq!(store.count_agents().await.expect("count"), 1);
    })
    .await;
}

/// Agents are listed by name (byte order), then by id.
#[tokio::test]
async fn agents_are_listed_by_name() {
    each_backend(|store| async move {
        let zoe = agent(&store, "zoe@shop.test", "Zoe").await;
        let adam = agent(&store, "adam@shop.test", "adam").await;
        let first_sam = agent(&store, "sam1@shop.test", "Sam").await;
        let second_sam = agent(&store, "sam2@shop.test", "Sam").await;
        let mut sams = [first_sam, second_sam];
        sams.sort_by(|a, b| a.id.cmp(&b.id));
        let listed = store.list_agents().await.expect("list");
        assert_eq!(
            listed,
            [sams[0].clone(), sams[1].clone(), zoe, adam],
            "capitals sort before lower case"
        );
        assert_eq!(store.count_agents().await.expect("count"), 4);
    })
    .await;
}

#[tokio::test]
async fn passwords_and_presence_are_kept() {
    each_backend(|store| async move {
        let sara = agent(&store, "sara@shop.test", "Sara").await;
        assert_eq!(
            store.password_hash(&sara.id).await.expect("hash"),
            Some("hash of Sara".into())
        );
        store
            .set_password_hash(&sara.id, "new hash")
            .await
            .expect("set hash");
        assert_eq!(
            store.password_hash(&sara.id).await.expect("hash"),
            Some("new hash".into())
        );
        let (_, hash) = store
            .agent_by_email("sara@shop.test")
            .await
            .expect("by e-mail")
            .expect("agent");
        assert_eq!(hash, "new hash");
        assert_eq!(store.password_hash("a_missing").await.expect("hash"), None);
        assert!(matches!(
            store.set_password_hash("a_missing", "h").await,
            Err(StoreError::NotFound)
        ));

        let presence = |store: Arc<dyn Store>, id: String| async move {
            store
                .agent_by_id(&id)
                .await
                .expect("by id")
                .expect("agent")
                .presence
        };
        store
            .set_agent_presence(&sara.id, Presence::Away)
            .await
            .expect("away");
        assert_eq!(
            presence(store.clone(), sara.id.clone()).await,
            Presence::Away
        );
        // Offline is not a choice that is kept: the agent is online when back.
        store
            .set_agent_presence(&sara.id, Presence::Offline)
            .await
            .expect("offline");
        assert_eq!(
            presence(store.clone(), sara.id.clone()).await,
            Presence::Online
        );
        store
            .set_agent_presence("a_missing", Presence::Away)
            .await
            .expect("nobody: nothing to do");
    })
    .await;
}

/// Sessions expire by the clock, a new one sweeps the expired ones, and an agent's
/// sessions are deleted all but one.
#[tokio::test]
async fn sessions_expire_and_are_deleted() {
    each_backend(|store| async move {
        let sara = agent(&store, "sara@shop.test", "Sara").await;
        store
            .create_session("t1", &sara.id, 100)
            .await
            .expect("session");
        let found = store
            .session_agent("t1", 50)
            .await
            .expect("session agent")
            .expect("live at 50");
        assert_eq!(found.agent, sara);
        assert_eq!(found.expires_at, 100);
        assert!(
            store
                .session_agent("t1", 150)
                .await
                .expect("read")
                .is_none()
        );
        assert!(
            store
                .session_agent("t_missing", 50)
                .await
                .expect("read")
                .is_none()
        );
        assert!(matches!(
            store.create_session("t_x", "a_missing", i64::MAX).await,
            Err(StoreError::Conflict(_))
        ));
        // Creating a session deletes the ones expired by the clock: t1 goes.
        let far = i64::MAX / 2;
        store
            .create_session("t2", &sara.id, far)
            .await
            .expect("session");
        assert!(store.session_agent("t1", 50).await.expect("read").is_none());
        assert!(matches!(
            store.create_session("t2", &sara.id, far).await,
            Err(StoreError::Conflict(_))
        ));
        store
            .create_session("t3", &sara.id, far + 1)
            .await
            .expect("session");
        store
            .create_session("t4", &sara.id, now_ms() + 10)
            .await
            .expect("session");
        let live = store
            .sessions_of_agent(&sara.id, now_ms() + 20)
            .await
            .expect("sessions");
        let mut tokens: Vec<&str> = live.iter().map(|s| s.token_hash.as_str()).collect();
        tokens.sort();
        assert_eq!(tokens, ["t2", "t3"], "the expired one is not listed");
        assert_eq!(live.iter().map(|s| s.expires_at).max(), Some(far + 1));
        store
            .delete_sessions_of_agent(&sara.id, Some("t3"))
            .await
            .expect("delete but one");
        let live = store
            .sessions_of_agent(&sara.id, 0)
            .await
            .expect("sessions");
        assert_eq!(
            live.iter()
                .map(|s| s.token_hash.as_str())
                .collect::<Vec<_>>(),
            ["t3"]
        );
        store.delete_session("t3").await.expect("delete");
        store
            .delete_session("t3")
            .await
            .expect("deleting again is fine");
        assert!(
            store
                .sessions_of_agent(&sara.id, 0)
                .await
                .expect("sessions")
                .is_empty()
        );

        store
            .create_session("t5", &sara.id, far)
            .await
            .expect("session");
        store
            .create_session("t6", &sara.id, far)
            .await
            .expect("session");
        store
            .delete_sessions_of_agent(&sara.id, None)
            .await
            .expect("delete all");
        assert!(
            store
                .sessions_of_agent(&sara.id, 0)
                .await
                .expect("sessions")
                .is_empty()
        );
    })
    .await;
}

/// Sessions remember when they were last used; a disabled agent has none.
#[tokio::test]
async fn sessions_are_touched_and_end_with_a_disabled_agent() {
    each_backend(|store| async move {
        let sara = agent(&store, "sara@shop.test", "Sara").await;
        let far = now_ms() + 1_000_000;
        store
            .create_session("t", &sara.id, far)
            .await
            .expect("session");
        let created = store
            .session_agent("t", now_ms())
            .await
            .expect("read")
            .expect("live");
        store
            .touch_session("t", created.last_seen + 5_000)
            .await
            .expect("touch");
        store
            .touch_session("t_missing", 1)
            .await
            .expect("no session: nothing to do");
        let touched = store
            .session_agent("t", now_ms())
            .await
            .expect("read")
            .expect("live");
        assert_eq!(touched.last_seen, created.last_seen + 5_000);
        assert_eq!(
            store
                .sessions_of_agent(&sara.id, 0)
                .await
                .expect("sessions")[0]
                .last_seen,
            created.last_seen + 5_000
        );

        let disabled = store
            .update_agent(
                &sara.id,
                AgentUpdate {
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("disable");
        assert!(disabled.disabled);
        assert!(
            store
                .session_agent("t", now_ms())
                .await
                .expect("read")
                .is_none()
        );
        assert!(
            store
                .sessions_of_agent(&sara.id, 0)
                .await
                .expect("sessions")
                .is_empty()
        );
        // A session made for a disabled agent does not let them in.
        store
            .create_session("t2", &sara.id, far)
            .await
            .expect("session");
        assert!(
            store
                .session_agent("t2", now_ms())
                .await
                .expect("read")
                .is_none()
        );
    })
    .await;
}

fn offline_request(site: &str, visitor: &str, message: Option<&str>) -> OfflineRequest {
    OfflineRequest {
        id: 0,
        site_id: site.to_owned(),
        visitor_id: visitor.to_owned(),
        conversation: None,
        name: Some("Mona".into()),
        email: Some("mona@shop.test".into()),
        phone: None,
        message: message.map(str::to_owned),
        created_at: 5,
        done_at: None,
    }
}

/// One open request per visitor: a second one updates it and keeps the first
/// message; the list pages newest first across sites.
#[tokio::test]
async fn offline_requests_do_not_pile_up() {
    each_backend(|store| async move {
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site")
            .id;
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site")
            .id;
        let (first, new) = store
            .create_offline_request(offline_request(&site, "v_1", Some("call me")))
            .await
            .expect("request");
        assert!(new);
        for _ in 0..5 {
            let (again, new) = store
                .create_offline_request(offline_request(&site, "v_1", Some("spam")))
                .await
                .expect("again");
            assert_eq!((again, new), (first, false));
        }
        let (again, _) = store
            .create_offline_request(OfflineRequest {
                name: None,
                phone: Some("+1 555".into()),
                conversation: Some("c_later".into()),
                created_at: 9,
                ..offline_request(&site, "v_1", None)
            })
            .await
            .expect("no message");
        assert_eq!(again, first);
        let open = store
            .offline_requests(std::slice::from_ref(&site), page(None, 10))
            .await
            .expect("list");
        assert_eq!(
            open,
            [OfflineRequest {
                id: first,
                site_id: site.clone(),
                visitor_id: "v_1".into(),
                conversation: Some("c_later".into()),
                name: Some("Mona".into()),
                email: Some("mona@shop.test".into()),
                phone: Some("+1 555".into()),
                message: Some("call me\n\nspam".into()),
                created_at: 9,
                done_at: None,
            }]
        );

        // A request without a message takes the first message that comes.
        let (quiet, new) = store
            .create_offline_request(offline_request(&site, "v_2", None))
            .await
            .expect("request");
        assert!(new);
        store
            .create_offline_request(offline_request(&site, "v_2", Some("hello")))
            .await
            .expect("request");
        // Messages add up to 8000 characters at most.
        let long = "x".repeat(7_000);
        store
            .create_offline_request(offline_request(&site, "v_2", Some(&long)))
            .await
            .expect("request");
        store
            .create_offline_request(offline_request(&site, "v_2", Some(&"y".repeat(3_000))))
            .await
            .expect("request");
        let quiet_now = store
            .offline_requests(std::slice::from_ref(&site), Page::at(quiet))
            .await
            .expect("list");
        let message = quiet_now[0].message.clone().expect("message");
        assert_eq!(message.chars().count(), 8_000);
        assert!(message.starts_with(&format!("hello\n\n{long}\n\ny")));

        store.offline_request_done(first, 6).await.expect("done");
        store
            .offline_request_done(first, 60)
            .await
            .expect("done again");
        assert!(matches!(
            store.offline_request_done(first + 1_000, 6).await,
            Err(StoreError::NotFound)
        ));
        let done = store
            .offline_requests(std::slice::from_ref(&site), Page::at(first))
            .await
            .expect("list");
        assert_eq!(done[0].done_at, Some(6), "the first time stays");
        let (second, new) = store
            .create_offline_request(offline_request(&site, "v_1", Some("later")))
            .await
            .expect("after done");
        assert!(new && second != first);
        let (elsewhere, new) = store
            .create_offline_request(offline_request(&other, "v_1", Some("other site")))
            .await
            .expect("other site");
        assert!(new && elsewhere != second);
        assert!(matches!(
            store
                .create_offline_request(offline_request("s_missing", "v_1", Some("x")))
                .await,
            Err(StoreError::Conflict(_))
        ));

        let both = [site.clone(), other.clone()];
        let all = store
            .offline_requests(&both, page(None, 100))
            .await
            .expect("list");
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        let mut expected = vec![first, quiet, second, elsewhere];
        expected.sort_by(|a, b| b.cmp(a));
        assert_eq!(ids, expected, "newest first across sites");
        let top = store
            .offline_requests(&both, page(None, 3))
            .await
            .expect("list");
        let rest = store
            .offline_requests(&both, page(Some(top[2].id), 3))
            .await
            .expect("list");
        let paged: Vec<i64> = top.iter().chain(&rest).map(|r| r.id).collect();
        assert_eq!(paged, expected, "two pages hold everything once");
        assert!(
            store
                .offline_requests(&[], page(None, 10))
                .await
                .expect("no sites")
                .is_empty()
        );
    })
    .await;
}

/// The details a visitor leaves show on their record, except what a signed identity
/// vouched for; the conversation's contact question is answered.
#[tokio::test]
async fn an_offline_request_fills_the_visitors_unverified_details() {
    each_backend(|store| async move {
        let site = site_with_visitor(&store).await;
        let conversation = store
            .create_conversation(&site, "v_1", ConversationState::Bot, 2)
            .await
            .expect("conversation");
        store
            .identify_visitor(
                "v_1",
                salam_store::IdentityUpdate {
                    external_id: "u1".into(),
                    name: Some("Signed Name".into()),
                    email: None,
                    verified: vec!["name".into()],
                    attributes: None,
                },
            )
            .await
            .expect("identify");
        store
            .set_contact_asked(&conversation.id, 3)
            .await
            .expect("asked");
        assert!(
            store
                .contact_pending(&conversation.id)
                .await
                .expect("pending")
        );
        store
            .create_offline_request(OfflineRequest {
                conversation: Some(conversation.id.clone()),
                phone: Some("+1 555".into()),
                ..offline_request(&site, "v_1", Some("call me"))
            })
            .await
            .expect("request");
        let visitor = store.visitor("v_1").await.expect("visitor").expect("found");
        assert_eq!(visitor.name.as_deref(), Some("Signed Name"), "signed stays");
        assert_eq!(visitor.email.as_deref(), Some("mona@shop.test"));
        assert_eq!(visitor.phone.as_deref(), Some("+1 555"));
        assert!(
            !store
                .contact_pending(&conversation.id)
                .await
                .expect("pending")
        );
        // Nothing given changes nothing.
        store
            .create_offline_request(OfflineRequest {
                name: None,
                email: None,
                ..offline_request(&site, "v_1", None)
            })
            .await
            .expect("request");
        let again = store.visitor("v_1").await.expect("visitor").expect("found");
        assert_eq!(again, visitor);
    })
    .await;
}

fn alert(site: &str, conversation: Option<&str>, kind: &str) -> Alert {
    Alert {
        id: 0,
        site_id: site.to_owned(),
        conversation: conversation.map(str::to_owned),
        kind: kind.to_owned(),
        detail: "rated 1/5".into(),
        at: 1,
        acknowledged_at: None,
    }
}

/// Alerts are one per conversation and kind, page newest first and are acknowledged
/// once.
#[tokio::test]
async fn alerts_do_not_pile_up_and_page_by_id() {
    each_backend(|store| async move {
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site")
            .id;
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site")
            .id;
        let first = store
            .create_alert(alert(&site, Some("c_1"), "low_rating"))
            .await
            .expect("alert")
            .expect("new");
        for _ in 0..14 {
            assert_eq!(
                store
                    .create_alert(alert(&site, Some("c_1"), "low_rating"))
                    .await
                    .expect("alert"),
                None
            );
        }
        let mut ids = vec![first];
        ids.push(
            store
                .create_alert(alert(&site, Some("c_1"), "missed"))
                .await
                .expect("alert")
                .expect("another kind"),
        );
        for _ in 0..2 {
            ids.push(
                store
                    .create_alert(alert(&site, None, "mail_bounced"))
                    .await
                    .expect("alert")
                    .expect("without a conversation, every one counts"),
            );
        }
        for index in 0..3 {
            ids.push(
                store
                    .create_alert(alert(&other, Some(&format!("c_o{index}")), "low_rating"))
                    .await
                    .expect("alert")
                    .expect("new"),
            );
        }
        ids.sort_by(|a, b| b.cmp(a));
        let both = [site.clone(), other.clone()];
        let all = store.alerts(&both, page(None, 100)).await.expect("alerts");
        assert_eq!(all.iter().map(|a| a.id).collect::<Vec<_>>(), ids);
        assert_eq!(
            store
                .alerts(std::slice::from_ref(&other), page(None, 100))
                .await
                .expect("alerts")
                .len(),
            3
        );
        let top = store.alerts(&both, page(None, 4)).await.expect("alerts");
        let rest = store
            .alerts(&both, page(Some(top[3].id), 4))
            .await
            .expect("alerts");
        let paged: Vec<i64> = top.iter().chain(&rest).map(|a| a.id).collect();
        assert_eq!(paged, ids, "two pages hold everything once, newest first");

        store
            .acknowledge_alert(first, 10)
            .await
            .expect("acknowledge");
        store.acknowledge_alert(first, 20).await.expect("again");
        assert!(matches!(
            store.acknowledge_alert(ids[0] + 1_000, 10).await,
            Err(StoreError::NotFound)
        ));
        let acknowledged = store
            .alerts(std::slice::from_ref(&site), Page::at(first))
            .await
            .expect("alerts");
        assert_eq!(
            acknowledged,
            [Alert {
                id: first,
                acknowledged_at: Some(10),
                ..alert(&site, Some("c_1"), "low_rating")
            }],
            "the first acknowledgement stays"
        );
    })
    .await;
}

/// A second rating replaces the first; a rating needs a conversation and a score from
/// 1 to 5.
#[tokio::test]
async fn ratings_replace_the_earlier_one() {
    each_backend(|store| async move {
        let site = site_with_visitor(&store).await;
        let conversation = store
            .create_conversation(&site, "v_1", ConversationState::Bot, 2)
            .await
            .expect("conversation")
            .id;
        assert_eq!(store.rating(&conversation).await.expect("rating"), None);
        store
            .rate(&conversation, 2, Some("slow"), 5)
            .await
            .expect("rate");
        assert_eq!(
            store.rating(&conversation).await.expect("rating"),
            Some((2, Some("slow".into())))
        );
        store
            .rate(&conversation, 5, None, 6)
            .await
            .expect("rate again");
        assert_eq!(
            store.rating(&conversation).await.expect("rating"),
            Some((5, None))
        );
        for score in [0, 6] {
            assert!(matches!(
                store.rate(&conversation, score, None, 7).await,
                Err(StoreError::Conflict(_))
            ));
        }
        assert!(matches!(
            store.rate("c_missing", 3, None, 7).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.rating(&conversation).await.expect("rating"),
            Some((5, None))
        );
    })
    .await;
}

fn bot_turn(
    site: &str,
    conversation: &str,
    decision: &'static str,
    question: &str,
    at: i64,
) -> BotTurn {
    BotTurn {
        conversation: conversation.to_owned(),
        site_id: site.to_owned(),
        rule_id: None,
        intent: if decision == "answer" {
            "order_tracking"
        } else {
            "none"
        }
        .into(),
        decision,
        score: 0.5,
        lang: "en".into(),
        question: question.to_owned(),
        at,
    }
}

/// A conversation's last bot turns, newest first.
#[tokio::test]
async fn recent_bot_turns_are_newest_first() {
    each_backend(|store| async move {
        let site = site_with_visitor(&store).await;
        let conversation = store
            .create_conversation(&site, "v_1", ConversationState::Bot, 2)
            .await
            .expect("conversation")
            .id;
        let other = store
            .create_conversation(&site, "v_1", ConversationState::Bot, 2)
            .await
            .expect("conversation")
            .id;
        for (decision, question) in [("answer", "one"), ("clarify", "two"), ("fallback", "three")] {
            store
                .record_bot_turn(bot_turn(&site, &conversation, decision, question, 3))
                .await
                .expect("turn");
        }
        store
            .record_bot_turn(bot_turn(&site, &other, "answer", "elsewhere", 4))
            .await
            .expect("turn");
        assert!(matches!(
            store
                .record_bot_turn(bot_turn(&site, "c_missing", "answer", "x", 4))
                .await,
            Err(StoreError::Conflict(_))
        ));
        let recent = store
            .recent_bot_turns(&conversation, 2)
            .await
            .expect("turns");
        let seen: Vec<(&str, &str, &str)> = recent
            .iter()
            .map(|t| (t.decision.as_str(), t.intent.as_str(), t.question.as_str()))
            .collect();
        assert_eq!(
            seen,
            [("fallback", "none", "three"), ("clarify", "none", "two")]
        );
        assert_eq!(
            store
                .recent_bot_turns(&conversation, 10)
                .await
                .expect("turns")
                .len(),
            3
        );
        assert!(
            store
                .recent_bot_turns("c_missing", 10)
                .await
                .expect("turns")
                .is_empty()
        );
    })
    .await;
}

/// Timings: each conversation created in the range, its hand-off, first answer, close
/// and score.
#[tokio::test]
async fn timings_read_each_conversation_in_the_range() {
    each_backend(|store| async move {
        let site = site_with_visitor(&store).await;
        let handled = store
            .create_conversation(&site, "v_1", ConversationState::Bot, 10)
            .await
            .expect("conversation")
            .id;
        let mut handoff = Transition::new(
            &handled,
            &[ConversationState::Bot],
            ConversationState::Queued,
            20,
        );
        handoff.handoff_reason = Some("requested".into());
        store.transition(handoff).await.expect("hand off");
        let sara = agent(&store, "sara@shop.test", "Sara").await;
        store
            .append(NewMessage {
                conversation: handled.clone(),
                kind: MessageKind::Text,
                author: sara.author(),
                text: "Hello, how can I help?".into(),
                client_id: Some("k1".into()),
                quick_replies: Vec::new(),
                rule: None,
                event: None,
                at: 35,
                only_in: None,
            })
            .await
            .expect("first answer");
        store
            .transition(Transition::new(
                &handled,
                &[ConversationState::Queued],
                ConversationState::Closed,
                50,
            ))
            .await
            .expect("close");
        store.rate(&handled, 4, None, 55).await.expect("rate");
        let open = store
            .create_conversation(&site, "v_1", ConversationState::Bot, 12)
            .await
            .expect("conversation")
            .id;
        store
            .create_conversation(&site, "v_1", ConversationState::Bot, 100)
            .await
            .expect("outside the range");
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site")
            .id;

        let mut timings = store
            .timings(&[site.clone(), other.clone()], 10, 100)
            .await
            .expect("timings");
        timings.sort_by_key(|t| t.created_at);
        let seen: Vec<_> = timings
            .iter()
            .map(|t| {
                (
                    t.conversation.as_str(),
                    t.created_at,
                    t.handed_off_at,
                    t.first_response_at,
                    t.closed_at,
                    t.score,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (handled.as_str(), 10, Some(20), Some(35), Some(50), Some(4)),
                (open.as_str(), 12, None, None, None, None),
            ]
        );
        assert!(
            store
                .timings(std::slice::from_ref(&other), 0, 1_000)
                .await
                .expect("timings")
                .is_empty()
        );
    })
    .await;
}

/// Regressions (issue 15): a bot conversation still open was counted as "settled by
/// the bot"; the question that made the bot give up (its hand-off after missing
/// again, or after the same question twice) was missing from the unanswered list.
#[tokio::test]
async fn deflection_needs_a_close_and_the_question_that_gave_up_is_unanswered() {
    each_backend(|store| async move {
        let site = site_with_visitor(&store).await;
        let sites = std::slice::from_ref(&site);
        let new_conversation =
            || store.create_conversation(&site, "v_1", ConversationState::Bot, 2);
        let hand_off = |conversation: String, reason: &str| {
            let mut handoff = Transition::new(
                &conversation,
                &[ConversationState::Bot],
                ConversationState::Queued,
                5,
            );
            handoff.handoff_reason = Some(reason.to_owned());
            handoff
        };
        let close = |conversation: &str| {
            Transition::new(
                conversation,
                &[ConversationState::Bot, ConversationState::Queued],
                ConversationState::Closed,
                9,
            )
        };
        assert_eq!(
            store.bot_report(sites, 0, 100).await.expect("report"),
            Default::default(),
            "nothing yet"
        );
        // The bot answered; the visitor is still there.
        let answered_open = new_conversation().await.expect("conversation").id;
        store
            .record_bot_turn(bot_turn(
                &site,
                &answered_open,
                "answer",
                "where is my order",
                2,
            ))
            .await
            .expect("turn");
        let report = store.bot_report(sites, 0, 100).await.expect("report");
        assert_eq!(
            (
                report.conversations,
                report.bot_conversations,
                report.deflected
            ),
            (1, 1, 0)
        );
        // Closed without a person: now it is settled by the bot.
        store
            .transition(close(&answered_open))
            .await
            .expect("close");
        let report = store.bot_report(sites, 0, 100).await.expect("report");
        assert_eq!((report.bot_conversations, report.deflected), (1, 1));

        // A typo, missed twice: the second miss is the hand-off (reason `misses`).
        let typo = new_conversation().await.expect("conversation").id;
        store
            .record_bot_turn(bot_turn(&site, &typo, "fallback", "wehre is my oder", 3))
            .await
            .expect("turn");
        store
            .record_bot_turn(bot_turn(&site, &typo, "handoff", "  WEHRE is my oder??", 4))
            .await
            .expect("turn");
        store
            .transition(hand_off(typo.clone(), "misses"))
            .await
            .expect("hand off");
        // The same question again after an answer (reason `repeated`).
        let again = new_conversation().await.expect("conversation").id;
        store
            .record_bot_turn(bot_turn(&site, &again, "answer", "can i pay later", 3))
            .await
            .expect("turn");
        store
            .record_bot_turn(bot_turn(&site, &again, "handoff", "Can I pay later ", 4))
            .await
            .expect("turn");
        store
            .transition(hand_off(again.clone(), "repeated"))
            .await
            .expect("hand off");
        // The visitor asked for a person: the bot was not stumped.
        let asked = new_conversation().await.expect("conversation").id;
        store
            .record_bot_turn(bot_turn(&site, &asked, "handoff", "a human please", 3))
            .await
            .expect("turn");
        store
            .transition(hand_off(asked.clone(), "requested"))
            .await
            .expect("hand off");
        // Missed twice in one more conversation, and once in a language with letters
        // beyond ASCII (lower-cased as ASCII only, as SQLite's lower() does).
        let twice = new_conversation().await.expect("conversation").id;
        for question in ["Can I pay later", "ÉTÉ Soldes"] {
            store
                .record_bot_turn(bot_turn(&site, &twice, "clarify", question, 6))
                .await
                .expect("turn");
        }
        // Out of the range: not counted.
        store
            .record_bot_turn(bot_turn(&site, &twice, "fallback", "too late", 100))
            .await
            .expect("turn");

        let report = store.bot_report(sites, 0, 100).await.expect("report");
        assert_eq!(
            report.unanswered,
            vec![
                ("can i pay later".to_owned(), 2),
                ("wehre is my oder".to_owned(), 1),
                ("wehre is my oder??".to_owned(), 1),
                ("ÉtÉ soldes".to_owned(), 1),
            ],
            "most frequent first, then by text"
        );
        assert_eq!(report.conversations, 5);
        assert_eq!(report.bot_conversations, 5);
        assert_eq!(report.deflected, 1, "hand-offs are never deflections");
        let reasons: Vec<(&str, u64)> = report
            .handoffs_by_reason
            .iter()
            .map(|(reason, n)| (reason.as_str(), *n))
            .collect();
        assert_eq!(
            reasons,
            vec![("misses", 1), ("repeated", 1), ("requested", 1)]
        );
        // Another site's report is its own.
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site")
            .id;
        assert_eq!(
            store
                .bot_report(std::slice::from_ref(&other), 0, 100)
                .await
                .expect("report"),
            Default::default()
        );
        // Conversations are counted by when they were created.
        assert_eq!(
            store
                .bot_report(sites, 3, 100)
                .await
                .expect("report")
                .conversations,
            0
        );
    })
    .await;
}
