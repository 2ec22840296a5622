//! The PostgreSQL backend's frame (issue 13), PostgreSQL alone: what the writer, the
//! connections and the single-hub claim do when something around them goes wrong (a
//! job that panics or fails midway, a lock held by another session, a lost
//! connection, text PostgreSQL cannot hold). The NUL test runs on both backends.
//!
//! Another session plays the part of whatever goes wrong: it changes a column's type
//! (the schema and the code disagree), holds locks in an open transaction (a stalled
//! tool) or ends the store's sessions (a restart).

use salam_protocol::{Author, AuthorKind, ConversationState, MessageKind};
use salam_store::postgres::scratch::ScratchDatabase;
use salam_store::{
    ContactSearch, ContactUpdate, NewContact, NewMessage, PostgresOptions, PostgresStore, Store,
    StoreError, VisitorUpdate,
};
use std::sync::mpsc;
use std::time::Duration;

/// A fresh PostgreSQL store on its own scratch database.
async fn postgres(options: PostgresOptions) -> (ScratchDatabase, PostgresStore) {
    tokio::task::spawn_blocking(move || {
        let database =
            ScratchDatabase::create().expect("a scratch database (SALAM_TEST_POSTGRES_URL)");
        let store = PostgresStore::connect(database.url(), options).expect("connect");
        (database, store)
    })
    .await
    .expect("connect task")
}

/// A connection of another client to the test's database. Blocking.
fn other_session(url: &str) -> pg::Client {
    let config: pg::Config = url.parse().expect("a PostgreSQL URL");
    config.connect(pg::NoTls).expect("another session")
}

/// Runs `sql` in another session, outside the async runtime.
async fn execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    tokio::task::spawn_blocking(move || {
        other_session(&url)
            .batch_execute(&sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    })
    .await
    .expect("sql task");
}

/// The first column (BIGINT) of the first row of `sql`, run in another session.
async fn number(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    tokio::task::spawn_blocking(move || {
        other_session(&url)
            .query_one(&sql, &[])
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .get(0)
    })
    .await
    .expect("sql task")
}

/// Waits until `sql` (a count, run in another session) is positive; panics when it never
/// is (a bound against hanging, not a measure of speed).
async fn wait_until(url: &str, sql: &str, what: &str) {
    for _ in 0..600 {
        if number(url, sql).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

/// Another session holding `statements`' locks in an open transaction (a stalled
/// tool), until dropped or after `at_most`.
struct Holder {
    release: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn hold(url: &str, statements: &str, at_most: Duration) -> Holder {
    let (url, statements) = (url.to_owned(), statements.to_owned());
    let (ready, holding) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let mut client = other_session(&url);
        let mut transaction = client.transaction().expect("begin");
        transaction.batch_execute(&statements).expect("take locks");
        ready.send(()).expect("the test waits");
        let _ = released.recv_timeout(at_most);
        transaction.commit().expect("commit");
    });
    holding.recv().expect("the locks are held");
    Holder {
        release: Some(release),
        thread: Some(thread),
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn visitor_text(conversation: &str, body: &str) -> NewMessage {
    NewMessage {
        conversation: conversation.to_owned(),
        kind: MessageKind::Text,
        author: Author {
            kind: AuthorKind::Visitor,
            id: Some("v_1".into()),
            name: None,
        },
        text: body.to_owned(),
        client_id: None,
        quick_replies: Vec::new(),
        rule: None,
        event: None,
        at: 1,
        only_in: None,
    }
}

// Issue 13: a job that panicked (here `row.get::<i64>` of an INTEGER column) ended the
// writer thread, and every later write answered `ShutDown`.
#[tokio::test]
async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
    let (database, store) = postgres(PostgresOptions::default()).await;
    let site = store.create_site("Shop", &["*".into()]).await.unwrap();
    execute(
        database.url(),
        "ALTER TABLE canned_responses ALTER COLUMN id TYPE integer",
    )
    .await;
    let added = store.add_canned(&site.id, "hi", "Hello!").await;
    assert!(matches!(added, Err(StoreError::Corrupt(_))), "{added:?}");
    assert_eq!(
        number(database.url(), "SELECT count(*) FROM canned_responses").await,
        0,
        "the panicking write was rolled back"
    );
    // A read that panics the same way is `Corrupt` too, not a retryable failure.
    execute(
        database.url(),
        &format!(
            "INSERT INTO canned_responses (site_id, shortcut, text, created_at) \
             VALUES ('{}', 'bye', 'Bye!', 1)",
            site.id
        ),
    )
    .await;
    let read = store.canned(std::slice::from_ref(&site.id)).await;
    assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");
    // The writer goes on, on the same database.
    store.add_department(&site.id, "Sales").await.unwrap();
    let departments = store
        .departments(std::slice::from_ref(&site.id))
        .await
        .unwrap();
    assert_eq!(departments.len(), 1);
}

// Issue 13: when an unguarded append failed midway, every caller of its batch got the
// batch's retryable error, its own caller too.
#[tokio::test]
async fn an_append_failing_midway_answers_its_own_error_and_its_batch_retries() {
    let (database, store) = postgres(PostgresOptions::default()).await;
    let site = store.create_site("Shop", &["*".into()]).await.unwrap();
    store
        .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
        .await
        .unwrap();
    let stalled = store
        .create_conversation(&site.id, "v_1", ConversationState::Bot, 1)
        .await
        .unwrap();
    let other = store
        .create_conversation(&site.id, "v_1", ConversationState::Bot, 1)
        .await
        .unwrap();
    // A constraint the second insert breaks after the append already wrote (its
    // sequence number): the whole batch must be rolled back.
    execute(
        database.url(),
        "ALTER TABLE messages ADD CONSTRAINT no_boom CHECK (text <> 'boom')",
    )
    .await;
    // Another session holds the first conversation's row, so the writer waits inside a
    // first batch while the next two appends queue up: they form the next batch.
    let holder = hold(
        database.url(),
        &format!(
            "SELECT 1 FROM conversations WHERE id = '{}' FOR UPDATE",
            stalled.id
        ),
        Duration::from_secs(60),
    );
    let first = store
        .append_queued(visitor_text(&stalled.id, "waits"))
        .await
        .unwrap();
    wait_until(
        database.url(),
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock'",
        "the writer waiting for the held row",
    )
    .await;
    let bystander = store
        .append_queued(visitor_text(&other.id, "fine"))
        .await
        .unwrap();
    let broken = store
        .append_queued(visitor_text(&other.id, "boom"))
        .await
        .unwrap();
    drop(holder);
    first.await.expect("the first batch commits");
    let broken = broken.await;
    assert!(matches!(broken, Err(StoreError::Conflict(_))), "{broken:?}");
    let bystander = bystander.await;
    assert!(
        matches!(bystander, Err(StoreError::Unavailable(_))),
        "{bystander:?}"
    );
    // Retried, the bystander's append goes through with the number the batch gave back.
    let retried = store.append(visitor_text(&other.id, "fine")).await.unwrap();
    assert_eq!(retried.message.seq, 1);
}

/// Options with a short `lock_timeout`, so a test waits little for it.
fn impatient() -> PostgresOptions {
    PostgresOptions {
        lock_timeout: Duration::from_millis(500),
        ..PostgresOptions::default()
    }
}

// Issue 13: a lock held by another session (a stalled tool) blocked the writer, and
// every write behind it, for as long as it was held.
#[tokio::test]
async fn a_write_waiting_for_a_lock_held_elsewhere_fails_retryably_and_the_writer_goes_on() {
    let (database, store) = postgres(impatient()).await;
    let site = store.create_site("Shop", &["*".into()]).await.unwrap();
    // Held far longer than the timeout: without one, the update would wait for it.
    let holder = hold(
        database.url(),
        &format!(
            "SELECT 1 FROM sites WHERE id = '{}' FOR NO KEY UPDATE",
            site.id
        ),
        Duration::from_secs(30),
    );
    let updated = store.update_site(&site.id, Some("Store"), None).await;
    assert!(
        matches!(updated, Err(StoreError::Unavailable(_))),
        "{updated:?}"
    );
    // The writer goes on beside the held lock, and the update succeeds once it is gone.
    store.add_department(&site.id, "Sales").await.unwrap();
    drop(holder);
    let updated = store
        .update_site(&site.id, Some("Store"), None)
        .await
        .unwrap();
    assert_eq!(updated.name, "Store");
}

// Issue 13: the same for a read waiting for a table another session locked.
#[tokio::test]
async fn a_read_waiting_for_a_lock_held_elsewhere_fails_retryably() {
    let (database, store) = postgres(impatient()).await;
    let site = store.create_site("Shop", &["*".into()]).await.unwrap();
    let holder = hold(
        database.url(),
        "LOCK TABLE sites IN ACCESS EXCLUSIVE MODE",
        Duration::from_secs(30),
    );
    let read = store.site_by_id(&site.id).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    drop(holder);
    let read = store.site_by_id(&site.id).await.unwrap();
    assert_eq!(read.map(|site| site.name), Some("Shop".to_owned()));
}

// Issue 13: an error the driver raised before the server saw anything (a Rust value
// that does not fit the column's type) was answered as retryable.
#[tokio::test]
async fn a_value_the_driver_cannot_convert_is_corrupt_not_retryable() {
    let (database, store) = postgres(PostgresOptions::default()).await;
    store
        .set_setting_if_absent("greeting", "hello")
        .await
        .unwrap();
    execute(
        database.url(),
        "DELETE FROM settings; ALTER TABLE settings ALTER COLUMN key TYPE bigint USING 0",
    )
    .await;
    // `key = $1` is now a BIGINT parameter, bound from a Rust string.
    let read = store.get_setting("greeting").await;
    assert!(
        matches!(&read, Err(StoreError::Corrupt(message)) if message.contains("serializing")),
        "{read:?}"
    );
}

/// Ends the store's sessions from another one, as a restart of the server would.
async fn end_the_stores_sessions(url: &str) {
    number(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND application_name = 'salam'",
    )
    .await;
}

/// `attempt` until it succeeds, each failure a retryable one (a few tries at most).
async fn retried<T: std::fmt::Debug, F: std::future::Future<Output = Result<T, StoreError>>>(
    mut attempt: impl FnMut() -> F,
) -> T {
    for _ in 0..3 {
        match attempt().await {
            Ok(value) => return value,
            Err(StoreError::Unavailable(_)) => continue,
            Err(err) => panic!("a lost connection answered {err:?}, not Unavailable"),
        }
    }
    panic!("the store did not reconnect");
}

// A lost connection (the server restarted) answers the retryable `Unavailable` and the
// next attempt connects again, for the writer and for the readers alike.
#[tokio::test]
async fn lost_connections_answer_unavailable_and_reconnect() {
    let (database, store) = postgres(PostgresOptions::default()).await;
    let site = store.create_site("Shop", &["*".into()]).await.unwrap();
    store.site_by_id(&site.id).await.unwrap();
    end_the_stores_sessions(database.url()).await;
    let read = retried(|| store.site_by_id(&site.id)).await;
    assert_eq!(read.map(|site| site.name), Some("Shop".to_owned()));
    retried(|| store.add_department(&site.id, "Sales")).await;
    assert_eq!(
        store
            .departments(std::slice::from_ref(&site.id))
            .await
            .unwrap()
            .len(),
        1
    );
}

// Issue 13: the single-hub claim is a lock of a session nothing watched; when the
// session ended (PostgreSQL restarted), the claim was silently gone and a second hub
// could start beside the first.
#[tokio::test]
async fn a_lost_hub_claim_is_taken_again() {
    let (database, store) = postgres(PostgresOptions::default()).await;
    let store = std::sync::Arc::new(store);
    let claimer = store.clone();
    let claim = tokio::task::spawn_blocking(move || claimer.claim_single_hub())
        .await
        .unwrap()
        .expect("the first claim");
    let claimed = "SELECT pid::bigint FROM pg_stat_activity \
                   WHERE datname = current_database() AND application_name = 'salam-hub-claim'";
    let lost = number(database.url(), claimed).await;
    number(
        database.url(),
        &format!("SELECT count(pg_terminate_backend({lost}))"),
    )
    .await;
    wait_until(
        database.url(),
        &format!(
            "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) \
             WHERE locktype = 'advisory' AND granted AND datname = current_database() \
             AND application_name = 'salam-hub-claim' AND pid <> {lost}"
        ),
        "the claim taken again on a new session",
    )
    .await;
    // A second hub is refused again.
    let url = database.url().to_owned();
    let second = tokio::task::spawn_blocking(move || {
        PostgresStore::connect(&url, PostgresOptions::default())
            .expect("a second store")
            .claim_single_hub()
    })
    .await
    .unwrap();
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    drop(claim);
}

/// Whether `stored` is `given` as the backend keeps it: SQLite as it came, PostgreSQL
/// (whose `TEXT` cannot hold U+0000) with U+FFFD for each NUL.
fn kept(stored: &str, given: &str) -> bool {
    stored == given || stored == given.replace('\0', "\u{FFFD}")
}

// Issue 13: a NUL character in a site's name, a department, a canned response or a
// contact failed the write on PostgreSQL (and a NUL in one contact's attributes failed
// every attribute search of its site).
#[tokio::test]
async fn text_with_a_nul_character_is_stored() {
    crate::common::each_backend(|store| async move {
        let site = store.create_site("Sh\0op", &["*".into()]).await.unwrap();
        assert!(kept(&site.name, "Sh\0op"), "{:?}", site.name);
        let site = store
            .update_site(
                &site.id,
                Some("St\0ore"),
                Some(&["https://a\0.test".into()]),
            )
            .await
            .unwrap();
        assert!(kept(&site.name, "St\0ore"), "{:?}", site.name);
        let read = store.site_by_id(&site.id).await.unwrap().unwrap();
        assert!(kept(&read.name, "St\0ore"), "{:?}", read.name);
        assert!(
            kept(&read.origins[0], "https://a\0.test"),
            "{:?}",
            read.origins
        );

        store.add_department(&site.id, "Sa\0les").await.unwrap();
        store.add_department(&site.id, "Sa\0les").await.unwrap();
        let departments = store
            .departments(std::slice::from_ref(&site.id))
            .await
            .unwrap();
        assert_eq!(departments.len(), 1);
        assert!(kept(&departments[0].name, "Sa\0les"));
        // Removed by the name it was added with.
        store.remove_department(&site.id, "Sa\0les").await.unwrap();
        assert!(
            store
                .departments(std::slice::from_ref(&site.id))
                .await
                .unwrap()
                .is_empty()
        );

        let canned = store.add_canned(&site.id, "h\0i", "Hel\0lo").await.unwrap();
        let listed = store.canned(std::slice::from_ref(&site.id)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, canned.id);
        assert!(kept(&listed[0].shortcut, "h\0i") && kept(&listed[0].text, "Hel\0lo"));

        let mut attributes = serde_json::Map::new();
        attributes.insert("pl\0an".into(), "pr\0o".into());
        attributes.insert("plan".into(), "pr\0o".into());
        let contact = store
            .create_contact(NewContact {
                site_id: site.id.clone(),
                external_id: Some("u\u{0}1".into()),
                email: None,
                name: Some("An\0a".into()),
                attributes,
                changed_by: "token:t1".into(),
                now: 10,
            })
            .await
            .unwrap();
        assert!(kept(contact.name.as_deref().unwrap(), "An\0a"));
        let mut attributes = serde_json::Map::new();
        attributes.insert("ti\0er".into(), "go\0ld".into());
        let updated = store
            .update_contact(
                &site.id,
                &contact.id,
                ContactUpdate {
                    name: Some(Some("Bo\0b".into())),
                    attributes,
                    changed_by: "token:t1".into(),
                    now: 11,
                    ..ContactUpdate::default()
                },
            )
            .await
            .unwrap();
        assert!(kept(updated.name.as_deref().unwrap(), "Bo\0b"));
        assert_eq!(updated.attributes.len(), 3);
        // Found by the attribute value it was given (SQLite refuses a NUL in the key
        // searched for), by the external id it was given.
        let search = |attribute: (&str, &str)| ContactSearch {
            attribute: Some((attribute.0.into(), attribute.1.into())),
            limit: 10,
            ..ContactSearch::default()
        };
        let found = store
            .find_contacts(&site.id, search(("plan", "pr\0o")))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let found = store
            .find_contacts(&site.id, search(("plan", "pro")))
            .await
            .unwrap();
        assert!(found.is_empty());
        let by_external = store
            .contact_by_external_id(&site.id, "u\u{0}1")
            .await
            .unwrap();
        assert_eq!(by_external.map(|found| found.id), Some(contact.id.clone()));
        let changes = store
            .contact_changes(&site.id, &contact.id, 10)
            .await
            .unwrap();
        assert_eq!(changes.len(), 3);
    })
    .await;
}

// Issue 13: a visitor looked up by e-mail address in a site, and the foreign-key check
// of a deleted visitor's conversations, scanned their tables.
#[tokio::test]
async fn visitors_by_email_and_conversations_by_visitor_are_indexed() {
    // SQLite: the plans search an index by the looked-up columns.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("salam.db");
    drop(salam_store::SqliteStore::open(&path, salam_store::SqliteOptions::default()).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    let plan = |sql: &str| -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = statement
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let by_email =
        plan("SELECT id FROM visitors WHERE site_id = 's' AND email = 'a@b.test' COLLATE NOCASE");
    assert!(by_email.contains("(site_id=? AND email=?)"), "{by_email}");
    let by_visitor = plan("SELECT 1 FROM conversations WHERE visitor_id = 'v'");
    assert!(by_visitor.contains("(visitor_id=?)"), "{by_visitor}");

    // PostgreSQL: an index leads with the looked-up columns.
    let (database, _store) = postgres(PostgresOptions::default()).await;
    let indexed = |table: &str, columns: &str| {
        format!(
            "SELECT count(*) FROM pg_indexes WHERE tablename = '{table}' \
             AND indexdef LIKE '%({columns})%'"
        )
    };
    assert_eq!(
        number(
            database.url(),
            &indexed("visitors", "site_id, lower(email)")
        )
        .await,
        1
    );
    assert_eq!(
        number(database.url(), &indexed("conversations", "visitor_id")).await,
        1
    );
}
