//! The store's rest, on every backend: the REST API's tables (API tokens, conversation
//! pages, contacts with their attribute history) and the webhooks' endpoints and
//! durable outbox.

use crate::common::each_backend;
use salam_protocol::{Author, AuthorKind, ConversationState, MessageKind};
use salam_store::*;
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn attributes(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

// --- API tokens -----------------------------------------------------------------------

fn token(site_id: &str, name: &str, hash: &str, now: i64) -> NewApiToken {
    NewApiToken {
        site_id: site_id.into(),
        name: name.into(),
        scope: ApiScope::Write,
        token_hash: hash.into(),
        created_by: Some("a_1".into()),
        now,
    }
}

#[tokio::test]
async fn api_tokens_are_listed_newest_first_found_by_hash_touched_and_revoked_in_their_site() {
    each_backend(|store| async move {
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site");
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site");
        let old = store
            .create_api_token(token(&site.id, "old", "h_old", 10))
            .await
            .expect("token");
        assert_eq!(
            old,
            ApiToken {
                id: old.id.clone(),
                site_id: site.id.clone(),
                name: "old".into(),
                scope: ApiScope::Write,
                created_by: Some("a_1".into()),
                created_at: 10,
                last_used_at: None,
                revoked_at: None,
            }
        );
        assert!(old.id.starts_with("tok_"));
        let mut reader = token(&site.id, "reader", "h_reader", 20);
        reader.scope = ApiScope::Read;
        reader.created_by = None;
        let reader = store.create_api_token(reader).await.expect("token");
        let mut admin = token(&site.id, "admin", "h_admin", 20);
        admin.scope = ApiScope::Admin;
        let admin = store.create_api_token(admin).await.expect("token");
        let elsewhere = store
            .create_api_token(token(&other.id, "elsewhere", "h_else", 30))
            .await
            .expect("token");

        // A taken hash, and a site that does not exist: conflicts, nothing stored.
        assert!(matches!(
            store
                .create_api_token(token(&other.id, "again", "h_old", 40))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store
                .create_api_token(token("s_missing", "lost", "h_lost", 40))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.api_token_by_hash("h_lost").await.expect("read"), None);

        // Newest first; equal times by id.
        let mut same_time = [reader.clone(), admin.clone()];
        same_time.sort_by(|a, b| a.id.cmp(&b.id));
        let listed = store.api_tokens(&site.id).await.expect("list");
        assert_eq!(
            listed,
            [same_time[0].clone(), same_time[1].clone(), old.clone()]
        );
        assert_eq!(
            store.api_tokens(&other.id).await.expect("list"),
            vec![elsewhere.clone()]
        );
        assert!(store.api_tokens("s_none").await.expect("list").is_empty());

        // By hash, whatever the site; an unknown hash is nobody.
        assert_eq!(
            store.api_token_by_hash("h_admin").await.expect("read"),
            Some(admin.clone())
        );
        assert_eq!(
            store.api_token_by_hash("h_nobody").await.expect("read"),
            None
        );

        // A use is recorded (an unknown id changes nothing and is no error).
        store.touch_api_token(&old.id, 50).await.expect("touch");
        store.touch_api_token(&old.id, 55).await.expect("touch");
        store.touch_api_token("tok_none", 55).await.expect("touch");
        let touched = store
            .api_token_by_hash("h_old")
            .await
            .expect("read")
            .expect("token");
        assert_eq!(touched.last_used_at, Some(55));

        // Revoked only in its own site; the first revocation's time stays; kept listed.
        assert!(matches!(
            store.revoke_api_token(&other.id, &old.id, 60).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.revoke_api_token(&site.id, "tok_none", 60).await,
            Err(StoreError::NotFound)
        ));
        store
            .revoke_api_token(&site.id, &old.id, 60)
            .await
            .expect("revoke");
        store
            .revoke_api_token(&site.id, &old.id, 70)
            .await
            .expect("revoke again");
        let revoked = store
            .api_token_by_hash("h_old")
            .await
            .expect("read")
            .expect("token");
        assert_eq!(revoked.revoked_at, Some(60));
        let listed = store.api_tokens(&site.id).await.expect("list");
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[2], revoked);
        assert_eq!(
            store
                .api_token_by_hash("h_else")
                .await
                .expect("read")
                .expect("token")
                .revoked_at,
            None
        );
    })
    .await;
}

// --- conversation pages ---------------------------------------------------------------

fn text(conversation: &str, visitor: &str, body: &str, at: i64) -> NewMessage {
    NewMessage {
        conversation: conversation.into(),
        kind: MessageKind::Text,
        author: Author {
            kind: AuthorKind::Visitor,
            id: Some(visitor.into()),
            name: None,
        },
        text: body.into(),
        client_id: None,
        quick_replies: Vec::new(),
        rule: None,
        event: None,
        at,
        only_in: None,
    }
}

/// Every page of `page`'s query, each of at most `page.limit`, following the cursor.
async fn all_pages(
    store: &Arc<dyn Store>,
    site_id: &str,
    page: ConversationPage,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let found = store
            .conversation_page(
                site_id,
                ConversationPage {
                    after: after.clone(),
                    ..page.clone()
                },
            )
            .await
            .expect("page");
        if found.is_empty() {
            return pages;
        }
        assert!(found.len() <= page.limit.max(1) as usize);
        let last = found.last().expect("a row");
        after = Some((last.updated_at, last.id.clone()));
        pages.push(found.into_iter().map(|c| c.id).collect());
        assert!(pages.len() < 20, "the cursor moves on");
    }
}

#[tokio::test]
async fn conversation_pages_go_by_last_change_then_id_and_the_cursor_sees_each_once() {
    each_backend(|store| async move {
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site");
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site");
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .expect("visitor");
        store
            .touch_visitor("v_2", &other.id, VisitorUpdate::default(), 1)
            .await
            .expect("visitor");
        let create = |state, now| {
            let store = store.clone();
            let site = site.id.clone();
            async move {
                store
                    .create_conversation(&site, "v_1", state, now)
                    .await
                    .expect("conversation")
            }
        };
        let first = create(ConversationState::Bot, 100).await;
        let tie_a = create(ConversationState::Queued, 200).await;
        let tie_b = create(ConversationState::Queued, 200).await;
        let last = create(ConversationState::Bot, 300).await;
        store
            .create_conversation(&other.id, "v_2", ConversationState::Queued, 150)
            .await
            .expect("another site's");
        let mut ties = [tie_a.id.clone(), tie_b.id.clone()];
        ties.sort();

        let every = ConversationPage {
            limit: 2,
            ..ConversationPage::default()
        };
        assert_eq!(
            all_pages(&store, &site.id, every.clone()).await,
            [
                vec![first.id.clone(), ties[0].clone()],
                vec![ties[1].clone(), last.id.clone()],
            ]
        );
        // A page's rows are the conversations as read one by one.
        let page = store
            .conversation_page(&site.id, every.clone())
            .await
            .expect("page");
        assert_eq!(
            page[0],
            store
                .conversation(&first.id)
                .await
                .expect("read")
                .expect("row")
        );
        // A limit of 0 is 1.
        assert_eq!(
            all_pages(
                &store,
                &site.id,
                ConversationPage {
                    limit: 0,
                    ..ConversationPage::default()
                }
            )
            .await
            .len(),
            4
        );
        // By state, and changed since a time (inclusive).
        assert_eq!(
            all_pages(
                &store,
                &site.id,
                ConversationPage {
                    state: Some(ConversationState::Queued),
                    limit: 10,
                    ..ConversationPage::default()
                }
            )
            .await,
            [ties.to_vec()]
        );
        assert_eq!(
            all_pages(
                &store,
                &site.id,
                ConversationPage {
                    updated_since: Some(200),
                    limit: 10,
                    ..ConversationPage::default()
                }
            )
            .await,
            [vec![ties[0].clone(), ties[1].clone(), last.id.clone()]]
        );
        // A cursor in the middle of a tie: the rest of it, then later changes.
        let after_tie = store
            .conversation_page(
                &site.id,
                ConversationPage {
                    after: Some((200, ties[0].clone())),
                    limit: 10,
                    ..ConversationPage::default()
                },
            )
            .await
            .expect("page");
        assert_eq!(
            after_tie.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [ties[1].as_str(), last.id.as_str()]
        );
        // A change moves a conversation to the end: a sync that reached the end sees it.
        store
            .append(text(&first.id, "v_1", "hello", 400))
            .await
            .expect("append");
        let changed = store
            .conversation_page(
                &site.id,
                ConversationPage {
                    after: Some((300, last.id.clone())),
                    limit: 10,
                    ..ConversationPage::default()
                },
            )
            .await
            .expect("page");
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].id.as_str(), changed[0].updated_at),
            (first.id.as_str(), 400)
        );
        assert_eq!(changed[0].last_seq, 1);
        assert!(
            store
                .conversation_page("s_none", every)
                .await
                .expect("page")
                .is_empty()
        );
    })
    .await;
}

// --- contacts -------------------------------------------------------------------------

fn new_contact(site_id: &str, external_id: Option<&str>, attrs: Value, now: i64) -> NewContact {
    NewContact {
        site_id: site_id.into(),
        external_id: external_id.map(str::to_owned),
        email: None,
        name: None,
        attributes: attributes(attrs),
        changed_by: "token:t1".into(),
        now,
    }
}

#[tokio::test]
async fn contact_updates_merge_attributes_record_each_change_and_stay_in_their_site() {
    each_backend(|store| async move {
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site");
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site");
        let mut first = new_contact(&site.id, Some("u1"), json!({"plan": "pro", "seats": 3}), 10);
        first.email = Some("a@b.test".into());
        let created = store.create_contact(first).await.expect("contact");
        assert!(created.id.starts_with("ct_"));
        assert_eq!(
            (
                created.created_at,
                created.updated_at,
                created.email.as_deref()
            ),
            (10, 10, Some("a@b.test"))
        );
        assert_eq!(
            Value::Object(created.attributes.clone()),
            json!({"plan": "pro", "seats": 3})
        );
        assert!(created.visitor_ids.is_empty());
        // The same external id again in the site: a conflict; in another site: fine. A
        // site that does not exist: a conflict.
        let again = new_contact(&site.id, Some("u1"), json!({}), 11);
        assert!(matches!(
            store.create_contact(again.clone()).await,
            Err(StoreError::Conflict(_))
        ));
        let theirs = store
            .create_contact(NewContact {
                site_id: other.id.clone(),
                ..again.clone()
            })
            .await
            .expect("in another site");
        assert!(matches!(
            store
                .create_contact(NewContact {
                    site_id: "s_missing".into(),
                    ..again
                })
                .await,
            Err(StoreError::Conflict(_))
        ));

        let updated = store
            .update_contact(
                &site.id,
                &created.id,
                ContactUpdate {
                    name: Some(Some("Ann".into())),
                    email: Some(None),
                    attributes: attributes(
                        json!({"plan": "team", "seats": null, "vip": true, "gone": null}),
                    ),
                    changed_by: "agent:a1".into(),
                    now: 20,
                    ..ContactUpdate::default()
                },
            )
            .await
            .expect("update");
        assert_eq!(
            Value::Object(updated.attributes.clone()),
            json!({"plan": "team", "vip": true})
        );
        assert_eq!(
            (updated.name.as_deref(), updated.email.as_deref()),
            (Some("Ann"), None)
        );
        assert_eq!((updated.created_at, updated.updated_at), (10, 20));
        assert_eq!(updated.external_id.as_deref(), Some("u1"));
        let changes = store
            .contact_changes(&site.id, &created.id, 100)
            .await
            .expect("changes");
        let seen: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    c.old_value.clone(),
                    c.new_value.clone(),
                    c.changed_by.as_str(),
                    c.at,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("plan", None, Some(json!("pro")), "token:t1", 10),
                ("seats", None, Some(json!(3)), "token:t1", 10),
                (
                    "plan",
                    Some(json!("pro")),
                    Some(json!("team")),
                    "agent:a1",
                    20
                ),
                ("seats", Some(json!(3)), None, "agent:a1", 20),
                ("vip", None, Some(json!(true)), "agent:a1", 20),
            ]
        );
        assert!(changes.windows(2).all(|pair| pair[0].id < pair[1].id));
        // Oldest first, at most `limit` (0 is 1).
        let two = store
            .contact_changes(&site.id, &created.id, 2)
            .await
            .expect("changes");
        assert_eq!(two, changes[..2]);
        let one = store
            .contact_changes(&site.id, &created.id, 0)
            .await
            .expect("changes");
        assert_eq!(one, changes[..1]);

        // A refused update (its external id is taken) changes nothing, history included.
        store
            .create_contact(new_contact(&site.id, Some("u2"), json!({}), 30))
            .await
            .expect("contact");
        assert!(matches!(
            store
                .update_contact(
                    &site.id,
                    &created.id,
                    ContactUpdate {
                        external_id: Some(Some("u2".into())),
                        attributes: attributes(json!({"plan": "free"})),
                        changed_by: "agent:a1".into(),
                        now: 40,
                        ..ContactUpdate::default()
                    },
                )
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.contact(&site.id, &created.id).await.expect("read"),
            Some(updated.clone())
        );
        assert_eq!(
            store
                .contact_changes(&site.id, &created.id, 100)
                .await
                .expect("changes"),
            changes
        );
        // Setting the same value records nothing but still touches the contact.
        let same = store
            .update_contact(
                &site.id,
                &created.id,
                ContactUpdate {
                    attributes: attributes(json!({"plan": "team"})),
                    changed_by: "agent:a1".into(),
                    now: 50,
                    ..ContactUpdate::default()
                },
            )
            .await
            .expect("update");
        assert_eq!(same.updated_at, 50);
        assert_eq!(
            store
                .contact_changes(&site.id, &created.id, 100)
                .await
                .expect("changes")
                .len(),
            5
        );
        // Clearing the external id frees it.
        let cleared = store
            .update_contact(
                &site.id,
                &created.id,
                ContactUpdate {
                    external_id: Some(None),
                    changed_by: "agent:a1".into(),
                    now: 60,
                    ..ContactUpdate::default()
                },
            )
            .await
            .expect("update");
        assert_eq!(cleared.external_id, None);
        assert_eq!(
            store
                .contact_by_external_id(&site.id, "u1")
                .await
                .expect("read"),
            None
        );

        // Another site sees nothing of it, and the other site's contact is its own.
        assert_eq!(
            store.contact(&other.id, &created.id).await.expect("read"),
            None
        );
        assert_eq!(
            store.contact(&site.id, "ct_none").await.expect("read"),
            None
        );
        assert!(matches!(
            store
                .update_contact(&other.id, &created.id, ContactUpdate::default())
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(
            store
                .contact_changes(&other.id, &created.id, 100)
                .await
                .expect("changes")
                .is_empty()
        );
        assert_eq!(
            store
                .contact_by_external_id(&other.id, "u1")
                .await
                .expect("read")
                .map(|c| c.id),
            Some(theirs.id)
        );
    })
    .await;
}

#[tokio::test]
async fn a_contact_is_linked_to_the_visitors_who_identified_with_its_external_id() {
    each_backend(|store| async move {
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site");
        let other = store
            .create_site("Other", &["*".into()])
            .await
            .expect("site");
        let created = store
            .create_contact(new_contact(&site.id, Some("u1"), json!({}), 10))
            .await
            .expect("contact");
        let identify = |visitor: &'static str, site: String, seen: i64| {
            let store = store.clone();
            async move {
                store
                    .touch_visitor(visitor, &site, VisitorUpdate::default(), seen)
                    .await
                    .expect("visitor");
                store
                    .identify_visitor(
                        visitor,
                        IdentityUpdate {
                            external_id: "u1".into(),
                            ..IdentityUpdate::default()
                        },
                    )
                    .await
                    .expect("identify");
            }
        };
        // Seen later first: the list goes by first sight. Another site's "u1" is not it.
        identify("v_late", site.id.clone(), 20).await;
        identify("v_early", site.id.clone(), 5).await;
        identify("v_there", other.id.clone(), 1).await;
        store
            .touch_visitor("v_anonymous", &site.id, VisitorUpdate::default(), 1)
            .await
            .expect("visitor");
        let linked = store
            .contact(&site.id, &created.id)
            .await
            .expect("read")
            .expect("contact");
        assert_eq!(linked.visitor_ids, ["v_early", "v_late"]);
        let by_external = store
            .contact_by_external_id(&site.id, "u1")
            .await
            .expect("read")
            .expect("contact");
        assert_eq!(by_external, linked);
        assert_eq!(
            store
                .contact_by_external_id(&site.id, "u9")
                .await
                .expect("read"),
            None
        );
        let found = store
            .find_contacts(
                &site.id,
                ContactSearch {
                    limit: 10,
                    ..ContactSearch::default()
                },
            )
            .await
            .expect("find");
        assert_eq!(found, vec![linked.clone()]);
        // Updates answer with the link too.
        let updated = store
            .update_contact(
                &site.id,
                &created.id,
                ContactUpdate {
                    name: Some(Some("Ann".into())),
                    changed_by: "agent:a1".into(),
                    now: 30,
                    ..ContactUpdate::default()
                },
            )
            .await
            .expect("update");
        assert_eq!(updated.visitor_ids, ["v_early", "v_late"]);
        // A contact created after its visitor identified is linked as well.
        let theirs = store
            .create_contact(new_contact(&other.id, Some("u1"), json!({}), 40))
            .await
            .expect("contact");
        assert_eq!(theirs.visitor_ids, ["v_there"]);
    })
    .await;
}

#[tokio::test]
async fn contacts_are_found_by_email_name_external_id_and_attribute_as_sqlite_finds_them() {
    each_backend(|store| async move {
        let site = store.create_site("Shop", &["*".into()]).await.expect("site");
        let other = store.create_site("Other", &["*".into()]).await.expect("site");
        let add = |site: String, email: Option<&str>, name: Option<&str>, external: Option<&str>, attrs: Value| {
            let store = store.clone();
            let email = email.map(str::to_owned);
            let name = name.map(str::to_owned);
            let external = external.map(str::to_owned);
            async move {
                store
                    .create_contact(NewContact {
                        site_id: site,
                        external_id: external,
                        email,
                        name,
                        attributes: attributes(attrs),
                        changed_by: "token:t1".into(),
                        now: 1,
                    })
                    .await
                    .expect("contact")
                    .id
            }
        };
        let ann = add(
            site.id.clone(),
            Some("Ann@Example.TEST"),
            Some("Ann Lee"),
            Some("u1"),
            json!({"plan": "pro", "seats": 3, "vip": true, "ratio": 0.5, "code": "3", "none": null}),
        )
        .await;
        let percent = add(
            site.id.clone(),
            Some("percent@example.test"),
            Some("100% Pro_Shop"),
            None,
            json!({"plan": "team", "seats": 30, "vip": false}),
        )
        .await;
        let accented = add(
            site.id.clone(),
            Some("Ünal@example.test"),
            Some("Élodie Ünal"),
            Some("u3"),
            json!({"plan": "PRO"}),
        )
        .await;
        let nameless = add(site.id.clone(), None, None, None, json!({})).await;
        add(
            other.id.clone(),
            Some("ann@example.test"),
            Some("Ann Lee"),
            Some("u1"),
            json!({"plan": "pro"}),
        )
        .await;

        let find = |search: ContactSearch| {
            let store = store.clone();
            let site = site.id.clone();
            async move {
                store
                    .find_contacts(&site, ContactSearch { limit: 50, ..search })
                    .await
                    .expect("find")
                    .into_iter()
                    .map(|contact| contact.id)
                    .collect::<Vec<_>>()
            }
        };
        let sorted = |mut ids: Vec<String>| {
            ids.sort();
            ids
        };
        // Nothing asked: all of the site's, by id.
        assert_eq!(
            find(ContactSearch::default()).await,
            sorted(vec![ann.clone(), percent.clone(), accented.clone(), nameless.clone()])
        );
        // E-mail: equal, ignoring ASCII case only (as SQLite's NOCASE).
        let by_email = |email: &str| ContactSearch {
            email: Some(email.into()),
            ..ContactSearch::default()
        };
        assert_eq!(find(by_email("ann@example.test")).await, vec![ann.clone()]);
        assert_eq!(find(by_email("ANN@EXAMPLE.TEST")).await, vec![ann.clone()]);
        assert!(find(by_email("ann@example")).await.is_empty());
        assert_eq!(find(by_email("Ünal@EXAMPLE.test")).await, vec![accented.clone()]);
        assert!(
            find(by_email("ünal@example.test")).await.is_empty(),
            "non-ASCII letters keep their case"
        );
        // Name: contained, ignoring ASCII case; % and _ are plain characters.
        let by_name = |name: &str| ContactSearch {
            name: Some(name.into()),
            ..ContactSearch::default()
        };
        assert_eq!(find(by_name("nn l")).await, vec![ann.clone()]);
        assert_eq!(find(by_name("LEE")).await, vec![ann.clone()]);
        assert_eq!(find(by_name("0% p")).await, vec![percent.clone()]);
        assert_eq!(find(by_name("o_s")).await, vec![percent.clone()]);
        assert!(find(by_name("%")).await.len() == 1);
        assert!(find(by_name("n_L")).await.is_empty());
        assert!(find(by_name("\\")).await.is_empty());
        assert_eq!(find(by_name("LODIE")).await, vec![accented.clone()]);
        assert!(
            find(by_name("élodie")).await.is_empty(),
            "non-ASCII letters keep their case"
        );
        // External id: exact.
        let by_external = |id: &str| ContactSearch {
            external_id: Some(id.into()),
            ..ContactSearch::default()
        };
        assert_eq!(find(by_external("u1")).await, vec![ann.clone()]);
        assert!(find(by_external("U1")).await.is_empty());
        // Attribute: its value written as text; a string by its text (case matters), a
        // number by its value, a boolean by `true`/`false`, `null` never.
        let by_attribute = |key: &str, value: &str| ContactSearch {
            attribute: Some((key.into(), value.into())),
            ..ContactSearch::default()
        };
        for (key, value, hits) in [
            ("plan", "pro", vec![ann.clone()]),
            ("plan", "PRO", vec![accented.clone()]),
            ("plan", "team", vec![percent.clone()]),
            ("seats", "3", vec![ann.clone()]),
            ("seats", "3.0", vec![ann.clone()]),
            ("seats", "30", vec![percent.clone()]),
            ("seats", "three", vec![]),
            ("ratio", "0.5", vec![ann.clone()]),
            ("ratio", ".5", vec![ann.clone()]),
            ("code", "3", vec![ann.clone()]),
            ("code", "3.0", vec![]),
            ("vip", "true", vec![ann.clone()]),
            ("vip", "false", vec![percent.clone()]),
            ("vip", "1", vec![]),
            ("none", "null", vec![]),
            ("none", "", vec![]),
            ("404", "x", vec![]),
        ] {
            assert_eq!(find(by_attribute(key, value)).await, sorted(hits), "{key}={value}");
        }
        // Conditions add up.
        assert_eq!(
            find(ContactSearch {
                name: Some("a".into()),
                attribute: Some(("plan".into(), "pro".into())),
                ..ContactSearch::default()
            })
            .await,
            vec![ann.clone()]
        );
        assert!(
            find(ContactSearch {
                email: Some("ann@example.test".into()),
                external_id: Some("u3".into()),
                ..ContactSearch::default()
            })
            .await
            .is_empty()
        );
        // Pages by id: `after` the last of the previous one; a limit of 0 is 1.
        let everyone = sorted(vec![ann.clone(), percent.clone(), accented.clone(), nameless.clone()]);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .find_contacts(
                    &site.id,
                    ContactSearch {
                        after: after.clone(),
                        limit: 3,
                        ..ContactSearch::default()
                    },
                )
                .await
                .expect("page");
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 3);
            after = page.last().map(|contact| contact.id.clone());
            seen.extend(page.into_iter().map(|contact| contact.id));
        }
        assert_eq!(seen, everyone);
        let one = store
            .find_contacts(
                &site.id,
                ContactSearch {
                    limit: 0,
                    ..ContactSearch::default()
                },
            )
            .await
            .expect("find");
        assert_eq!(one.len(), 1);
        assert!(
            store
                .find_contacts(
                    "s_none",
                    ContactSearch {
                        limit: 10,
                        ..ContactSearch::default()
                    }
                )
                .await
                .expect("find")
                .is_empty()
        );
    })
    .await;
}

// --- webhooks -------------------------------------------------------------------------

async fn endpoint(
    store: &Arc<dyn Store>,
    site_id: &str,
    events: &[&str],
    notes: bool,
    now: i64,
) -> WebhookEndpoint {
    store
        .create_webhook_endpoint(NewWebhookEndpoint {
            site_id: site_id.into(),
            url: "https://hooks.example/".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            include_notes: notes,
            secret: "whsec_test".into(),
            created_by: "a_1".into(),
            now,
        })
        .await
        .expect("endpoint")
}

fn event(id: &str, kind: &str, conversation: Option<&str>, seq: Option<u64>) -> WebhookEvent {
    WebhookEvent {
        event_id: id.into(),
        event_type: kind.into(),
        site_id: "s_1".into(),
        conversation_id: conversation.map(str::to_owned),
        seq,
        note: false,
        body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        created_at: 10,
    }
}

async fn emit(store: &Arc<dyn Store>, event: WebhookEvent) -> usize {
    store
        .enqueue_webhook_event(event)
        .await
        .expect("queued")
        .await
        .expect("committed")
}

async fn due_ids(store: &Arc<dyn Store>, now: i64) -> Vec<String> {
    let mut ids: Vec<String> = store
        .due_webhook_deliveries(now, 0, 100)
        .await
        .expect("due")
        .into_iter()
        .map(|due| due.delivery.event_id)
        .collect();
    ids.sort();
    ids
}

fn attempt(due: &DueDelivery, at: i64, outcome: AttemptOutcome) -> WebhookAttempt {
    WebhookAttempt {
        delivery_id: due.delivery.id,
        endpoint_id: due.delivery.endpoint_id.clone(),
        at,
        status: Some(500),
        error: Some("HTTP 500".into()),
        duration_ms: 3,
        outcome,
    }
}

const NEVER: DisablePolicy = DisablePolicy {
    failures: 1000,
    over_ms: 0,
};

#[tokio::test]
async fn webhook_endpoints_are_created_listed_by_site_updated_rotated_and_deleted() {
    each_backend(|store| async move {
        let first = endpoint(&store, "s_1", &["message.created"], false, 5).await;
        assert!(first.id.starts_with("wh_"));
        assert_eq!(
            first,
            WebhookEndpoint {
                id: first.id.clone(),
                site_id: "s_1".into(),
                url: "https://hooks.example/".into(),
                events: vec!["message.created".into()],
                include_notes: false,
                enabled: true,
                secret: "whsec_test".into(),
                previous_secret: None,
                previous_expires_at: None,
                created_by: "a_1".into(),
                created_at: 5,
                consecutive_failures: 0,
                failing_since: None,
                disabled_reason: None,
            }
        );
        let earlier = endpoint(&store, "s_1", &["alert.created"], true, 1).await;
        let theirs = endpoint(&store, "s_2", &["alert.created"], false, 0).await;
        // By site in the order asked, oldest first in each.
        let listed = store
            .webhook_endpoints(&["s_2".into(), "s_1".into(), "s_none".into()])
            .await
            .expect("list");
        assert_eq!(listed, [theirs.clone(), earlier.clone(), first.clone()]);
        assert!(store.webhook_endpoints(&[]).await.expect("list").is_empty());
        assert_eq!(
            store.webhook_endpoint(&first.id).await.expect("read"),
            Some(first.clone())
        );
        assert_eq!(store.webhook_endpoint("wh_none").await.expect("read"), None);
        assert_eq!(store.webhook_sites().await.expect("sites"), ["s_1", "s_2"]);

        // Only what is given changes.
        let updated = store
            .update_webhook_endpoint(
                &first.id,
                WebhookEndpointUpdate {
                    url: Some("https://hooks.example/v2".into()),
                    events: Some(vec!["message.created".into(), "conversation.closed".into()]),
                    include_notes: Some(true),
                    enabled: None,
                },
            )
            .await
            .expect("update");
        assert_eq!(
            updated,
            WebhookEndpoint {
                url: "https://hooks.example/v2".into(),
                events: vec!["message.created".into(), "conversation.closed".into()],
                include_notes: true,
                ..first.clone()
            }
        );
        let unchanged = store
            .update_webhook_endpoint(&first.id, WebhookEndpointUpdate::default())
            .await
            .expect("update");
        assert_eq!(unchanged, updated);
        assert!(matches!(
            store
                .update_webhook_endpoint("wh_none", WebhookEndpointUpdate::default())
                .await,
            Err(StoreError::NotFound)
        ));
        // Disabled by an admin: no reason; its site has no enabled endpoint left.
        let disabled = store
            .update_webhook_endpoint(
                &theirs.id,
                WebhookEndpointUpdate {
                    enabled: Some(false),
                    ..WebhookEndpointUpdate::default()
                },
            )
            .await
            .expect("disable");
        assert!(!disabled.enabled);
        assert_eq!(disabled.disabled_reason, None);
        assert_eq!(store.webhook_sites().await.expect("sites"), ["s_1"]);

        // Rotation: the old secret signs until the given time; rotating again drops it.
        let rotated = store
            .rotate_webhook_secret(&first.id, "whsec_two", 99)
            .await
            .expect("rotate");
        assert_eq!(
            (
                rotated.secret.as_str(),
                rotated.previous_secret.as_deref(),
                rotated.previous_expires_at
            ),
            ("whsec_two", Some("whsec_test"), Some(99))
        );
        let again = store
            .rotate_webhook_secret(&first.id, "whsec_three", 199)
            .await
            .expect("rotate");
        assert_eq!(
            (again.secret.as_str(), again.previous_secret.as_deref()),
            ("whsec_three", Some("whsec_two"))
        );
        assert!(matches!(
            store.rotate_webhook_secret("wh_none", "x", 1).await,
            Err(StoreError::NotFound)
        ));
        // A due delivery carries the endpoint's URL and secrets.
        emit(&store, event("e1", "message.created", Some("c"), Some(1))).await;
        let due = store.due_webhook_deliveries(100, 0, 10).await.expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!(
            (
                due[0].url.as_str(),
                due[0].secret.as_str(),
                due[0].previous_secret.as_deref(),
                due[0].previous_expires_at
            ),
            (
                "https://hooks.example/v2",
                "whsec_three",
                Some("whsec_two"),
                Some(199)
            )
        );

        // Deleted with its deliveries.
        let delivery = due[0].delivery.id;
        store
            .delete_webhook_endpoint(&first.id)
            .await
            .expect("delete");
        assert_eq!(store.webhook_endpoint(&first.id).await.expect("read"), None);
        assert_eq!(store.webhook_delivery(delivery).await.expect("read"), None);
        assert!(
            store
                .webhook_deliveries(&first.id, None, 10)
                .await
                .expect("log")
                .is_empty()
        );
        assert!(matches!(
            store.delete_webhook_endpoint(&first.id).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store
                .webhook_endpoints(&["s_1".into()])
                .await
                .expect("list"),
            [earlier]
        );
    })
    .await;
}

#[tokio::test]
async fn an_event_reaches_the_subscribed_enabled_endpoints_and_notes_only_those_that_ask() {
    each_backend(|store| async move {
        let messages = endpoint(&store, "s_1", &["message.created"], false, 1).await;
        let with_notes = endpoint(
            &store,
            "s_1",
            &["conversation.closed", "message.created"],
            true,
            1,
        )
        .await;
        let other = endpoint(&store, "s_1", &["conversation.closed"], true, 1).await;
        assert_eq!(
            emit(&store, event("e1", "message.created", Some("c"), Some(1))).await,
            2
        );
        // The same event again writes nothing more.
        assert_eq!(
            emit(&store, event("e1", "message.created", Some("c"), Some(1))).await,
            0
        );
        let mut note = event("e2", "message.created", Some("c"), Some(2));
        note.note = true;
        assert_eq!(emit(&store, note).await, 1);
        // A prefix of a subscribed type is not it.
        assert_eq!(emit(&store, event("e5", "message", None, None)).await, 0);
        // Another site's event reaches nobody here.
        let mut elsewhere = event("e3", "message.created", None, None);
        elsewhere.site_id = "s_2".into();
        assert_eq!(emit(&store, elsewhere).await, 0);
        store
            .update_webhook_endpoint(
                &messages.id,
                WebhookEndpointUpdate {
                    enabled: Some(false),
                    ..WebhookEndpointUpdate::default()
                },
            )
            .await
            .expect("disabled");
        assert_eq!(
            emit(&store, event("e4", "message.created", Some("d"), Some(1))).await,
            1
        );
        let log = store
            .webhook_deliveries(&with_notes.id, None, 10)
            .await
            .expect("log");
        assert_eq!(
            log.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(),
            ["e4", "e2", "e1"],
            "newest first"
        );
        let e1 = &log[2];
        assert_eq!(
            (
                e1.endpoint_id.as_str(),
                e1.event_type.as_str(),
                e1.conversation_id.as_deref(),
                e1.body.as_slice(),
                e1.status,
                e1.attempts,
                e1.next_attempt_at,
                e1.created_at
            ),
            (
                with_notes.id.as_str(),
                "message.created",
                Some("c"),
                b"{\"id\":\"e1\"}".as_slice(),
                DeliveryStatus::Pending,
                0,
                10,
                10
            )
        );
        assert_eq!(
            (
                e1.last_status,
                e1.last_error.as_deref(),
                e1.last_duration_ms,
                e1.last_attempt_at,
                e1.delivered_at
            ),
            (None, None, None, None, None)
        );
        assert_eq!(
            store.webhook_delivery(e1.id).await.expect("read").as_ref(),
            Some(e1)
        );
        assert_eq!(store.webhook_delivery(-1).await.expect("read"), None);
        // The log pages by id, before the last one seen.
        let older = store
            .webhook_deliveries(&with_notes.id, Some(log[0].id), 1)
            .await
            .expect("log");
        assert_eq!(older, log[1..2]);
        assert!(
            store
                .webhook_deliveries(&with_notes.id, Some(log[2].id), 10)
                .await
                .expect("log")
                .is_empty()
        );
        assert!(
            store
                .webhook_deliveries(&other.id, None, 10)
                .await
                .expect("log")
                .is_empty()
        );
        assert_eq!(store.webhook_sites().await.expect("sites"), ["s_1"]);
    })
    .await;
}

#[tokio::test]
async fn a_conversation_goes_out_by_seq_and_a_failing_event_holds_the_next() {
    each_backend(|store| async move {
        endpoint(
            &store,
            "s_1",
            &["message.created", "alert.created"],
            false,
            1,
        )
        .await;
        // Queued out of order: seq 2 before seq 1 (two tasks racing).
        emit(
            &store,
            event("second", "message.created", Some("c"), Some(2)),
        )
        .await;
        emit(
            &store,
            event("first", "message.created", Some("c"), Some(1)),
        )
        .await;
        emit(
            &store,
            event("other", "message.created", Some("d"), Some(7)),
        )
        .await;
        // Without a seq: after every event of its conversation with one.
        emit(
            &store,
            event("unnumbered", "message.created", Some("d"), None),
        )
        .await;
        // Not subscribed: nothing queued.
        assert_eq!(
            emit(&store, event("loose", "visitor.seen", None, None)).await,
            0
        );
        assert_eq!(
            due_ids(&store, 100).await,
            ["first", "other"],
            "one head per conversation"
        );
        let due = store
            .due_webhook_deliveries(100, 0, 100)
            .await
            .expect("due");
        // Soonest first, then by id.
        assert!(due.windows(2).all(|pair| {
            (pair[0].delivery.next_attempt_at, pair[0].delivery.id)
                < (pair[1].delivery.next_attempt_at, pair[1].delivery.id)
        }));
        assert_eq!(
            store
                .due_webhook_deliveries(100, 0, 1)
                .await
                .expect("due")
                .len(),
            1
        );
        let head = due
            .into_iter()
            .find(|due| due.delivery.event_id == "first")
            .expect("first is due");
        // It fails: it is retried later, and "second" still waits behind it.
        let recorded = store
            .record_webhook_attempt(attempt(&head, 100, AttemptOutcome::Retry(500)), NEVER)
            .await
            .expect("recorded");
        assert!(recorded.is_none());
        let retrying = store
            .webhook_delivery(head.delivery.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(
            (
                retrying.status,
                retrying.attempts,
                retrying.next_attempt_at,
                retrying.last_status,
                retrying.last_error.as_deref(),
                retrying.last_duration_ms,
                retrying.last_attempt_at,
                retrying.delivered_at
            ),
            (
                DeliveryStatus::Retrying,
                1,
                500,
                Some(500),
                Some("HTTP 500"),
                Some(3),
                Some(100),
                None
            )
        );
        assert_eq!(due_ids(&store, 200).await, ["other"]);
        // ("other" is due since 10; the held "second" does not count.)
        assert_eq!(store.next_webhook_due(0).await.expect("next"), Some(10));
        // The settle window counts from when each was queued.
        assert_eq!(
            store.next_webhook_due(1000).await.expect("next"),
            Some(1010)
        );
        assert_eq!(due_ids(&store, 500).await, ["first", "other"]);
        // Delivered: now "second" goes ("unnumbered" waits for "other").
        let mut delivered = attempt(&head, 600, AttemptOutcome::Delivered);
        delivered.status = Some(200);
        delivered.error = None;
        store
            .record_webhook_attempt(delivered, NEVER)
            .await
            .expect("recorded");
        assert_eq!(due_ids(&store, 600).await, ["other", "second"]);
        let row = store
            .webhook_delivery(head.delivery.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.status, DeliveryStatus::Delivered);
        assert_eq!(row.attempts, 2);
        assert_eq!(row.delivered_at, Some(600));
        assert_eq!(row.last_status, Some(200));
        assert_eq!(row.last_error, None);
        // Dead: the next in line goes.
        let other = store
            .due_webhook_deliveries(600, 0, 100)
            .await
            .expect("due")
            .into_iter()
            .find(|due| due.delivery.event_id == "other")
            .expect("other is due");
        store
            .record_webhook_attempt(attempt(&other, 610, AttemptOutcome::Dead), NEVER)
            .await
            .expect("recorded");
        assert_eq!(due_ids(&store, 610).await, ["second", "unnumbered"]);
        // A redelivery queues the same row again, due at the given time.
        store
            .redeliver_webhook(head.delivery.id, 700)
            .await
            .expect("redeliver");
        let again = store
            .webhook_delivery(head.delivery.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(again.status, DeliveryStatus::Pending);
        assert_eq!(again.next_attempt_at, 700);
        assert_eq!(again.body, row.body);
        assert_eq!(again.event_id, "first");
        // Queued again, it is the head of its line once more: "second" waits for it.
        assert_eq!(due_ids(&store, 650).await, ["unnumbered"]);
        assert_eq!(due_ids(&store, 700).await, ["first", "unnumbered"]);
        assert!(matches!(
            store.redeliver_webhook(-1, 700).await,
            Err(StoreError::NotFound)
        ));
        // The settle window keeps a just-queued event back.
        assert!(
            store
                .due_webhook_deliveries(20, 100, 10)
                .await
                .expect("due")
                .is_empty()
        );
        // Nothing is due before its time.
        assert!(due_ids(&store, 5).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_failing_often_enough_for_long_enough_is_disabled_once() {
    each_backend(|store| async move {
        let hook = endpoint(&store, "s_1", &["alert.created"], false, 1).await;
        assert_eq!(store.next_webhook_due(0).await.expect("next"), None);
        for n in 0..4 {
            emit(&store, event(&format!("e{n}"), "alert.created", None, None)).await;
        }
        let policy = DisablePolicy {
            failures: 3,
            over_ms: 1000,
        };
        let due = store.due_webhook_deliveries(100, 0, 10).await.expect("due");
        assert_eq!(due.len(), 4);
        // Three failures within 1 s: not yet (too short a time).
        for (n, delivery) in due.iter().take(3).enumerate() {
            let disabled = store
                .record_webhook_attempt(
                    attempt(delivery, 100 + n as i64, AttemptOutcome::Retry(10_000)),
                    policy,
                )
                .await
                .expect("recorded");
            assert!(disabled.is_none());
        }
        let failing = store
            .webhook_endpoint(&hook.id)
            .await
            .expect("read")
            .expect("endpoint");
        assert_eq!(
            (
                failing.consecutive_failures,
                failing.failing_since,
                failing.enabled
            ),
            (3, Some(100), true)
        );
        // The fourth, after more than a second of failing: disabled, once.
        let disabled = store
            .record_webhook_attempt(attempt(&due[3], 1200, AttemptOutcome::Dead), policy)
            .await
            .expect("recorded")
            .expect("disabled now");
        assert!(!disabled.enabled);
        assert_eq!(disabled.consecutive_failures, 4);
        assert_eq!(disabled.failing_since, Some(100));
        assert_eq!(disabled.disabled_reason.as_deref(), Some("failing"));
        assert_eq!(
            store.webhook_endpoint(&hook.id).await.expect("read"),
            Some(disabled.clone())
        );
        let dead = store
            .webhook_delivery(due[3].delivery.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(
            (dead.status, dead.next_attempt_at),
            (DeliveryStatus::Dead, 1200)
        );
        // A later failure does not disable it again.
        assert!(
            store
                .record_webhook_attempt(
                    attempt(&due[0], 1300, AttemptOutcome::Retry(20_000)),
                    policy
                )
                .await
                .expect("recorded")
                .is_none()
        );
        assert!(store.webhook_sites().await.expect("sites").is_empty());
        assert!(
            due_ids(&store, 30_000).await.is_empty(),
            "a disabled endpoint gets nothing"
        );
        assert_eq!(store.next_webhook_due(0).await.expect("next"), None);
        // Enabling it clears the count; its waiting deliveries go again.
        let enabled = store
            .update_webhook_endpoint(
                &hook.id,
                WebhookEndpointUpdate {
                    enabled: Some(true),
                    ..WebhookEndpointUpdate::default()
                },
            )
            .await
            .expect("enabled");
        assert_eq!(
            (
                enabled.enabled,
                enabled.consecutive_failures,
                enabled.failing_since,
                enabled.disabled_reason
            ),
            (true, 0, None, None)
        );
        assert_eq!(due_ids(&store, 30_000).await.len(), 3);
        // A success clears the failures too.
        store
            .record_webhook_attempt(
                attempt(&due[1], 30_000, AttemptOutcome::Retry(40_000)),
                policy,
            )
            .await
            .expect("recorded");
        let mut delivered = attempt(&due[2], 30_001, AttemptOutcome::Delivered);
        delivered.status = Some(204);
        assert!(
            store
                .record_webhook_attempt(delivered, policy)
                .await
                .expect("recorded")
                .is_none()
        );
        let healthy = store
            .webhook_endpoint(&hook.id)
            .await
            .expect("read")
            .expect("endpoint");
        assert_eq!(
            (healthy.consecutive_failures, healthy.failing_since),
            (0, None)
        );
    })
    .await;
}

/// A message of a site with webhooks is marked in its own transaction until its
/// `message.created` is in the outbox; other sites' messages are not marked.
#[tokio::test]
async fn a_message_is_marked_until_its_event_is_in_the_outbox() {
    each_backend(|store| async move {
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site");
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .expect("visitor");
        let conversation = store
            .create_conversation(&site.id, "v_1", ConversationState::Bot, 1)
            .await
            .expect("conversation");
        let pending = || {
            let store = store.clone();
            async move { store.webhook_pending_messages(10).await.expect("pending") }
        };
        store
            .append(text(&conversation.id, "v_1", "before any endpoint", 2))
            .await
            .expect("append");
        assert!(pending().await.is_empty());
        store.remember_webhook_sites(std::slice::from_ref(&site.id));
        let marked = store
            .append(text(&conversation.id, "v_1", "marked", 3))
            .await
            .expect("append")
            .message;
        let also = store
            .append(text(&conversation.id, "v_1", "also marked", 4))
            .await
            .expect("append")
            .message;
        assert_eq!(
            pending().await,
            [
                (site.id.clone(), marked.clone()),
                (site.id.clone(), also.clone())
            ]
        );
        assert_eq!(
            store.webhook_pending_messages(1).await.expect("pending"),
            [(site.id.clone(), marked.clone())]
        );
        let mut queued = event(
            "evt_m",
            "message.created",
            Some(&conversation.id),
            Some(marked.seq),
        );
        queued.site_id = site.id.clone();
        emit(&store, queued).await;
        assert_eq!(
            pending().await,
            [(site.id.clone(), also.clone())],
            "the outbox job leaves the mark"
        );
        store.remember_webhook_sites(&[]);
        store
            .append(text(&conversation.id, "v_1", "no longer marked", 5))
            .await
            .expect("append");
        assert_eq!(pending().await.len(), 1);
    })
    .await;
}

// --- several hubs on one database (PostgreSQL only) -------------------------------------

/// Two hubs (two stores, each with its own writer) on one PostgreSQL database update one
/// contact at once, each its own attributes: every change is kept, none overwrites
/// another's merge. (SQLite has one hub per file, so this is PostgreSQL's alone.)
#[tokio::test]
async fn contact_updates_from_two_hubs_keep_every_change() {
    use salam_store::postgres::scratch::ScratchDatabase;
    let (database, hubs) = tokio::task::spawn_blocking(|| {
        let database = ScratchDatabase::create().expect("PostgreSQL (SALAM_TEST_POSTGRES_URL)");
        let hubs: Vec<Arc<dyn Store>> = (0..2)
            .map(|_| {
                Arc::new(
                    PostgresStore::connect(database.url(), PostgresOptions::default())
                        .expect("connect"),
                ) as Arc<dyn Store>
            })
            .collect();
        (database, hubs)
    })
    .await
    .expect("connect task");
    let site = hubs[0]
        .create_site("Shop", &["*".into()])
        .await
        .expect("site");
    let created = hubs[0]
        .create_contact(new_contact(&site.id, None, json!({}), 1))
        .await
        .expect("contact");
    const EACH: usize = 25;
    let mut updates = tokio::task::JoinSet::new();
    for (n, hub) in hubs.iter().enumerate() {
        for k in 0..EACH {
            let (hub, site, id) = (hub.clone(), site.id.clone(), created.id.clone());
            updates.spawn(async move {
                hub.update_contact(
                    &site,
                    &id,
                    ContactUpdate {
                        attributes: attributes(json!({ format!("h{n}_{k}"): k })),
                        changed_by: format!("agent:h{n}"),
                        now: 10 + k as i64,
                        ..ContactUpdate::default()
                    },
                )
                .await
                .expect("update")
            });
        }
    }
    while let Some(done) = updates.join_next().await {
        done.expect("update task");
    }
    for hub in &hubs {
        hub.flush().await.expect("flush");
    }
    let contact = hubs[1]
        .contact(&site.id, &created.id)
        .await
        .expect("read")
        .expect("contact");
    assert_eq!(
        contact.attributes.len(),
        2 * EACH,
        "no update lost another's"
    );
    let changes = hubs[1]
        .contact_changes(&site.id, &created.id, 1000)
        .await
        .expect("changes");
    assert_eq!(changes.len(), 2 * EACH);
    assert!(changes.iter().all(|change| change.old_value.is_none()));
    drop(hubs);
    drop(database);
}
