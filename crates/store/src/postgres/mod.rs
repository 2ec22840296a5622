//! The PostgreSQL backend (issue 13): what several hubs share.
//!
//! Chosen by a `postgres://` store URL (`store.url` in the configuration, or
//! `SALAM_DATABASE_URL`). It keeps the SQLite backend's shape and guarantees:
//!
//! - **One writer per hub, group commit, ack after commit.** Writes go through a bounded
//!   queue to one thread holding one connection ([`writer`]), which runs each batch in
//!   one transaction and answers every caller only after `COMMIT` returned
//!   (`synchronous_commit` is on: the commit is on the server's disk).
//! - **Gap-free sequences across hubs.** An append takes its conversation's row lock
//!   with `UPDATE conversations SET last_seq = last_seq + 1 … RETURNING`, so appends of
//!   several hubs to one conversation serialise, and a rolled-back batch gives its
//!   numbers back.
//! - **Idempotent client ids.** The unique client-id index is the check; a resend finds
//!   the committed row (read after the row lock, so a resend racing on another hub
//!   sees the first one's commit) and returns it.
//! - **Compare-and-set transitions**, as in SQLite: `UPDATE … WHERE state IN (…)`.
//! - **Reads** run on a small pool of connections in the blocking pool.
//! - **Migrations** ([`schema`]) are versioned and taken under an advisory lock, so
//!   several hubs may start at once.
//! - **No wait is forever.** Every connection has a `lock_timeout` (5 s) and an
//!   `idle_in_transaction_session_timeout` (60 s), reads a `statement_timeout` (60 s)
//!   ([`PostgresOptions`]): a lock held by another session (a stalled tool, a forgotten
//!   `psql` transaction) fails the write waiting for it with the retryable
//!   [`StoreError::Unavailable`] instead of stopping the writer, and the server ends a
//!   session of ours that stalls inside a transaction. Options the URL carries
//!   (`?options=-c%20lock_timeout%3D10s`) are kept and win. The migrations wait for each
//!   other without a limit.
//! - **Losing the database** answers [`StoreError::Unavailable`] (the hub's
//!   `store_unavailable`), acknowledges nothing, and reconnects by itself.
//!
//! - **One hub per database** ([`PostgresStore::claim_single_hub`]) when hubs have no
//!   bus: a session advisory lock on a connection of its own, which a watcher thread
//!   takes again when its session is lost, and logs an error about every 2 s while
//!   another hub holds it. With a bus, hubs join a cluster instead
//!   ([`PostgresStore::join_cluster`], `lease`): a hub number each, and one routing
//!   owner at a time.
//! - **Errors** ([`map_err`]): a taken unique value is `Conflict`; the code and the
//!   schema disagreeing (SQL type or syntax errors, a value the driver cannot convert,
//!   a panicking `row.get`) is `Corrupt`, which retrying will not mend; a closed
//!   connection, an I/O error or a timeout is `Unavailable`. Messages carry the whole
//!   chain of causes (the server's own message included).
//!
//! The SQL lives beside SQLite's, one file per area, with the same names.

mod conversations;
mod directory;
mod email;
mod lease;
mod maintenance;
mod rest;
pub(crate) mod rows;
pub(crate) mod schema;
pub mod scratch;
mod writer;

use crate::*;
use pg::Client;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use writer::Writer;

pub use lease::{ClusterLease, LEASE_EVERY, MAX_HUB_NUMBER};

/// How the PostgreSQL store runs.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Writes waiting for the writer at most (callers wait when it is full).
    pub queue: usize,
    /// Writes in one transaction at most.
    pub max_batch: usize,
    /// Read connections at most (reads beyond wait for one: the server's connections
    /// are shared by every hub).
    pub readers: usize,
    /// How long a statement waits for a lock another session holds before it fails
    /// with [`StoreError::Unavailable`] (`lock_timeout`, on every connection).
    pub lock_timeout: Duration,
    /// How long a read may run (`statement_timeout`, on the read connections).
    pub read_timeout: Duration,
    /// How long a session may sit idle inside a transaction before the server ends it
    /// (`idle_in_transaction_session_timeout`, on every connection).
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            queue: 8192,
            max_batch: 512,
            readers: 8,
            lock_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// An owned statement parameter (a writer job outlives its caller's borrows).
pub(crate) type Param = Box<dyn pg::types::ToSql + Sync + Send>;

/// The PostgreSQL store: a writer thread and a pool of read connections.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) writer: Writer,
    readers: Arc<ReadPool>,
    metrics: Arc<StoreMetrics>,
    /// The sites with an enabled webhook endpoint, as this hub last told (their
    /// messages leave a `webhook_pending` mark in their own transaction).
    pub(crate) webhook_sites: crate::webhooks::WebhookSites,
}

struct ReadPool {
    config: pg::Config,
    idle: Mutex<Vec<Client>>,
    max_idle: usize,
    /// One permit per connection that may be open for reading.
    permits: Arc<tokio::sync::Semaphore>,
}

impl ReadPool {
    fn take(&self) -> Result<Client, StoreError> {
        // A std Mutex is fine: it is held only to pop or push, never across an await.
        while let Some(client) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            if !client.is_closed() {
                return Ok(client);
            }
        }
        connect(&self.config)
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(client);
        }
    }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        // Closing a synchronous client blocks on its own runtime, which must not
        // happen on an async runtime's thread (the last handle may be dropped there).
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("salam-pg-close".into())
                .spawn(move || drop(idle));
        }
    }
}

/// The advisory lock key a serving hub holds ("salam" + 2 in ASCII, as a number).
const HUB_LOCK: i64 = 0x73_61_6c_61_6d_02;

/// How often the claim's watcher checks that its session (and so its lock) is alive.
const CLAIM_WATCH_EVERY: Duration = Duration::from_secs(2);

/// The single-hub claim of [`PostgresStore::claim_single_hub`]: released when dropped
/// (or when the process dies: the server ends the session). A watcher thread keeps it
/// (see [`PostgresStore::claim_single_hub`]).
pub struct HubClaim {
    /// Dropping it stops the watcher, which closes the claim's session.
    _stop: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for HubClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubClaim")
    }
}

/// The message of a refused claim.
const CLAIMED_ELSEWHERE: &str = "another hub is serving this PostgreSQL database; several \
     hubs on one database need the message bus, which this release does not have yet \
     (docs/deploy.md)";

/// Takes the single-hub lock on `client`'s session, if no other session holds it.
fn try_claim(client: &mut Client) -> Result<bool, StoreError> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&HUB_LOCK])
        .map_err(map_err)?
        .get(0))
}

/// The claim's watcher: every [`CLAIM_WATCH_EVERY`], checks the claim's session; when
/// it is gone (the server restarted, the connection dropped, an operator ended it)
/// connects again and takes the lock again. When another hub took it meanwhile, logs an
/// error at every check until this hub has it again. Stops when the claim is dropped.
fn watch_claim(client: Client, config: pg::Config, stop: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut client = Some(client);
    let mut holding = true;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CLAIM_WATCH_EVERY) {
        let alive = client
            .as_mut()
            .is_some_and(|client| client.is_valid(CLAIM_WATCH_EVERY).is_ok());
        if alive && holding {
            continue;
        }
        if !alive {
            holding = false;
            client = match config.connect(pg::NoTls) {
                Ok(fresh) => Some(fresh),
                Err(err) => {
                    tracing::warn!(error = %map_err(err), "the hub's claim on the PostgreSQL database was lost and cannot be taken again yet");
                    continue;
                }
            };
        }
        let Some(session) = client.as_mut() else {
            continue;
        };
        match try_claim(session) {
            Ok(true) => {
                holding = true;
                tracing::warn!(
                    "the hub's claim on the PostgreSQL database was lost (its session ended) and is taken again"
                );
            }
            Ok(false) => tracing::error!(
                "another hub took this hub's claim on the PostgreSQL database while its \
                 session was lost: two hubs are serving one database, each routing its own \
                 agents and queues; stop one of them (this hub takes the claim again once \
                 the other stops; docs/deploy.md)"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "the hub's claim on the PostgreSQL database cannot be taken again yet");
            }
        }
    }
    // Closing the session releases the lock; this is the watcher's own thread.
    drop(client);
}

/// Parses a `postgres://` URL, with the settings every connection of the store uses.
fn config_of(url: &str) -> Result<pg::Config, StoreError> {
    config_with(url, &[])
}

/// Parses a `postgres://` URL, with the settings every connection of the store uses and
/// `settings` (server parameters: name, value). Options the URL already had
/// (`?options=-c …`) are kept, after ours: a setting given there wins.
fn config_with(url: &str, settings: &[(&str, String)]) -> Result<pg::Config, StoreError> {
    let mut config: pg::Config = url
        .parse()
        .map_err(|err| StoreError::Unavailable(format!("invalid PostgreSQL URL: {err}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("salam");
    }
    // Commit before ack: a commit returns once the server has it on disk, whatever the
    // server's default.
    let mut options = String::from("-c synchronous_commit=on -c timezone=UTC");
    for (name, value) in settings {
        options.push_str(&format!(" -c {name}={value}"));
    }
    if let Some(given) = config
        .get_options()
        .filter(|given| !given.trim().is_empty())
    {
        options.push(' ');
        options.push_str(given);
    }
    config.options(&options);
    Ok(config)
}

/// A duration as a server parameter's value, in milliseconds (0 would turn the
/// timeout off: at least 1 ms).
fn millis(duration: Duration) -> String {
    duration.as_millis().clamp(1, i32::MAX as u128).to_string()
}

fn connect(config: &pg::Config) -> Result<Client, StoreError> {
    config.connect(pg::NoTls).map_err(map_err)
}

/// Maps a PostgreSQL error onto the store's error enum, with the whole chain of causes
/// in its message (the driver's own message is only its kind, e.g. `db error`).
///
/// - A taken unique value or a broken reference: [`StoreError::Conflict`].
/// - The code and the schema disagree (an SQL syntax, type or data error, or a value
///   the driver cannot convert to or from the column's type): [`StoreError::Corrupt`].
/// - Anything else (a closed connection, an I/O error, a timeout, a lock or statement
///   timeout, the server shutting down, a serialisation failure, disk full, a read-only
///   standby): the retryable [`StoreError::Unavailable`].
pub(crate) fn map_err(err: pg::Error) -> StoreError {
    use pg::error::SqlState;
    writer::note_conflict(&err);
    let message = describe(&err);
    match err.code() {
        Some(code)
            if *code == SqlState::UNIQUE_VIOLATION
                || *code == SqlState::FOREIGN_KEY_VIOLATION
                || *code == SqlState::CHECK_VIOLATION
                || *code == SqlState::NOT_NULL_VIOLATION
                || *code == SqlState::EXCLUSION_VIOLATION =>
        {
            StoreError::Conflict(message)
        }
        // Syntax, undefined tables or columns, wrong types: the code and the schema
        // disagree.
        Some(code)
            if code.code().starts_with("42")
                || code.code().starts_with("22")
                || *code == SqlState::DATATYPE_MISMATCH =>
        {
            StoreError::Corrupt(message)
        }
        Some(_) => StoreError::Unavailable(message),
        None if !err.is_closed() && is_conversion(&err) => StoreError::Corrupt(message),
        None => StoreError::Unavailable(message),
    }
}

/// Whether an error without an SQL code is the client's: a Rust value that does not
/// fit the parameter's or the column's type, a column or parameter count that does not
/// match. The driver's kinds are private; its message is the kind alone.
fn is_conversion(err: &pg::Error) -> bool {
    let kind = err.to_string();
    [
        "error serializing parameter",
        "error deserializing column",
        "invalid column",
        "query returned an unexpected number of columns",
    ]
    .iter()
    .any(|prefix| kind.starts_with(prefix))
        || (kind.starts_with("expected ") && kind.contains(" parameters but got "))
}

/// An error and its causes, `: `-separated.
fn describe(err: &pg::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

// ------------------------------------------------------------------------- U+0000

// PostgreSQL's `TEXT` cannot hold U+0000 (SQLite's can): binding one fails the
// statement, and in the writer's transaction a failed statement spoils more than its
// own write. So every area makes text from outside storable before any statement, by
// one policy:
//
// - **Stored text and what is looked up by it** (names, message texts, canned
//   responses, departments, origins, ids, contact fields, JSON strings and keys): each
//   U+0000 becomes U+FFFD ([`storable`], [`storable_json`]). Lookups apply the same
//   replacement, so a value written with a NUL is found, and removed, by that value.
// - **E-mail addresses and message ids** ([`without_nul`]): the NUL is dropped, so an
//   address matches the same address however it arrived (a bounce, a header, a form),
//   and as SQLite reads the part of a text before its NUL where SQLite's e-mail code
//   does (e-mail's `until_nul`).

/// `text` with U+FFFD for each U+0000 (see the policy above).
pub(crate) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// [`storable`] for an owned text (no copy without a NUL).
pub(crate) fn storable_owned(text: String) -> String {
    match storable(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(replaced) => replaced,
    }
}

/// [`storable`] for an optional text.
pub(crate) fn storable_option(text: Option<String>) -> Option<String> {
    text.map(storable_owned)
}

/// [`storable`] for every string and key of a JSON value: its text escapes a NUL as
/// `\u0000`, which `TEXT` holds but a `::jsonb` cast refuses (so one stored NUL would
/// fail every JSON query of its table).
pub(crate) fn storable_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(storable_owned(text)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(map) => Value::Object(storable_map(map)),
        other => other,
    }
}

/// [`storable_json`] for a JSON object's keys and values.
pub(crate) fn storable_map(
    map: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    map.into_iter()
        .map(|(key, value)| (storable_owned(key), storable_json(value)))
        .collect()
}

/// `text` without its U+0000 characters: for e-mail addresses and message ids (see the
/// policy above).
pub(crate) fn without_nul(text: &str) -> String {
    text.replace('\0', "")
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    crate::sqlite::now_ms()
}

impl PostgresStore {
    /// Connects to the database at `url`, applies the migrations it lacks and starts the
    /// writer thread. Blocking: call it outside the async runtime (or in
    /// `spawn_blocking`).
    pub fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        // No session of the store waits for a lock forever, or idles in a transaction
        // for long (a stalled tool or session elsewhere fails, not blocks, the writer).
        let lock_timeout = ("lock_timeout", millis(options.lock_timeout));
        let idle = (
            "idle_in_transaction_session_timeout",
            millis(options.idle_in_transaction_timeout),
        );
        let config = config_with(url, &[lock_timeout.clone(), idle.clone()])?;
        let read_config = config_with(
            url,
            &[
                lock_timeout,
                idle,
                ("statement_timeout", millis(options.read_timeout)),
            ],
        )?;
        let mut client = connect(&config)?;
        schema::migrate(&mut client)?;
        let metrics = Arc::new(StoreMetrics::default());
        let writer = Writer::start(
            client,
            config.clone(),
            options.queue.max(1),
            options.max_batch.max(1),
            metrics.clone(),
        )
        .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        Ok(PostgresStore {
            writer,
            readers: Arc::new(ReadPool {
                config: read_config,
                idle: Mutex::new(Vec::new()),
                max_idle: options.readers.max(1),
                permits: Arc::new(tokio::sync::Semaphore::new(options.readers.max(1))),
            }),
            metrics,
            webhook_sites: Default::default(),
        })
    }

    /// Applies the migrations the database at `url` lacks and returns its schema
    /// version (`salam migrate`).
    pub fn migrate(url: &str) -> Result<i64, StoreError> {
        let mut client = connect(&config_of(url)?)?;
        schema::migrate(&mut client)
    }

    /// Claims the database for this hub alone, for as long as the returned guard lives
    /// (a session advisory lock on a connection of its own, named `…-hub-claim` in
    /// `pg_stat_activity`): until hubs share routing and fan-out through a bus (issue
    /// 13), a second hub serving the same database would split the agents and the
    /// queues between two routers, so it is refused with [`StoreError::Conflict`].
    /// Command-line tools (`salam agent add`, `salam visitor export`, `salam migrate`)
    /// do not claim it and run beside the hub. Blocking.
    ///
    /// A watcher thread checks the claim's session every 2 s: if it is gone (PostgreSQL
    /// restarted, the network dropped), the lock went with it, so the watcher connects
    /// again and takes the lock again. If another hub took it in between, the watcher
    /// logs an error at every check (two hubs are serving one database: the operator
    /// stops one of them) and takes the claim again once the other releases it.
    pub fn claim_single_hub(&self) -> Result<HubClaim, StoreError> {
        let mut config = self.readers.config.clone();
        let name = format!(
            "{}-hub-claim",
            config.get_application_name().unwrap_or("salam")
        );
        config.application_name(&name);
        let mut client = connect(&config)?;
        if !try_claim(&mut client)? {
            return Err(StoreError::Conflict(CLAIMED_ELSEWHERE.into()));
        }
        let (stop, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("salam-pg-claim".into())
            .spawn(move || watch_claim(client, config, stopped))
            .map_err(|err| StoreError::Unavailable(format!("cannot watch the claim: {err}")))?;
        Ok(HubClaim { _stop: stop })
    }

    /// One statement on the writer (in its savepoint) that must change a row:
    /// [`StoreError::NotFound`] when it changed none.
    pub(crate) async fn change_one(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<(), StoreError> {
        // Shared: a job may run again after a conflict (see `writer`).
        let params = Arc::new(params);
        self.writer
            .write(move |transaction| {
                let params: Vec<&(dyn pg::types::ToSql + Sync)> = params
                    .iter()
                    .map(|param| param.as_ref() as &(dyn pg::types::ToSql + Sync))
                    .collect();
                match transaction.execute(sql, &params).map_err(map_err)? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }

    /// Whether the database answers now (`/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|client| client.batch_execute("SELECT 1").map_err(map_err))
            .await
    }

    /// Runs a read on a pooled connection in the blocking pool.
    pub(crate) async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let permit = readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::ShutDown)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut client = readers.take()?;
            let result = op(&mut client);
            readers.give_back(client);
            result
        })
        .await
        .map_err(|err| match err.try_into_panic() {
            // A bug, or the schema and the code disagree (`row.get` of the wrong type
            // panics): retrying will not help. The connection went with the panic.
            Ok(panic) => crate::writer::panicked(panic.as_ref()),
            Err(err) => StoreError::Unavailable(format!("read task failed: {err}")),
        })?
    }
}

// Every method of the trait, each delegating to its area's file (same name as in the
// SQLite backend).
#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        directory::get_setting(self, key).await
    }
    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        directory::set_setting_if_absent(self, key, value).await
    }
    async fn create_site(&self, name: &str, origins: &[String]) -> Result<Site, StoreError> {
        directory::create_site(self, name, origins).await
    }
    async fn site_by_key(&self, key: &str) -> Result<Option<Site>, StoreError> {
        directory::site_by_key(self, key).await
    }
    async fn site_by_id(&self, id: &str) -> Result<Option<Site>, StoreError> {
        directory::site_by_id(self, id).await
    }
    async fn list_sites(&self) -> Result<Vec<Site>, StoreError> {
        directory::list_sites(self).await
    }
    async fn update_site(
        &self,
        id: &str,
        name: Option<&str>,
        origins: Option<&[String]>,
    ) -> Result<Site, StoreError> {
        directory::update_site(self, id, name, origins).await
    }
    async fn departments(&self, site_ids: &[String]) -> Result<Vec<Department>, StoreError> {
        directory::departments(self, site_ids).await
    }
    async fn add_department(&self, site_id: &str, name: &str) -> Result<(), StoreError> {
        directory::add_department(self, site_id, name).await
    }
    async fn remove_department(&self, site_id: &str, name: &str) -> Result<(), StoreError> {
        directory::remove_department(self, site_id, name).await
    }
    async fn canned(&self, site_ids: &[String]) -> Result<Vec<Canned>, StoreError> {
        directory::canned(self, site_ids).await
    }
    async fn add_canned(
        &self,
        site_id: &str,
        shortcut: &str,
        text: &str,
    ) -> Result<Canned, StoreError> {
        directory::add_canned(self, site_id, shortcut, text).await
    }
    async fn remove_canned(&self, id: i64) -> Result<(), StoreError> {
        directory::remove_canned(self, id).await
    }
    async fn rotate_identity_secret(
        &self,
        site_id: &str,
        secret: &str,
        now: i64,
    ) -> Result<Site, StoreError> {
        directory::rotate_identity_secret(self, site_id, secret, now).await
    }
    async fn offline_request_done(&self, id: i64, now: i64) -> Result<(), StoreError> {
        directory::offline_request_done(self, id, now).await
    }
    async fn acknowledge_alert(&self, id: i64, now: i64) -> Result<(), StoreError> {
        directory::acknowledge_alert(self, id, now).await
    }
    async fn create_agent(&self, agent: NewAgent) -> Result<Agent, StoreError> {
        directory::create_agent(self, agent).await
    }
    async fn count_agents(&self) -> Result<u64, StoreError> {
        directory::count_agents(self).await
    }
    async fn agent_by_email(&self, email: &str) -> Result<Option<(Agent, String)>, StoreError> {
        directory::agent_by_email(self, email).await
    }
    async fn agent_by_id(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        directory::agent_by_id(self, id).await
    }
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        directory::list_agents(self).await
    }
    async fn update_agent(&self, id: &str, update: AgentUpdate) -> Result<Agent, StoreError> {
        directory::update_agent(self, id, update).await
    }
    async fn create_session(
        &self,
        token_hash: &str,
        agent_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        directory::create_session(self, token_hash, agent_id, expires_at).await
    }
    async fn session_agent(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionAgent>, StoreError> {
        directory::session_agent(self, token_hash, now).await
    }
    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        directory::touch_session(self, token_hash, now).await
    }
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        directory::delete_session(self, token_hash).await
    }
    async fn sessions_of_agent(
        &self,
        agent_id: &str,
        now: i64,
    ) -> Result<Vec<Session>, StoreError> {
        directory::sessions_of_agent(self, agent_id, now).await
    }
    async fn delete_sessions_of_agent(
        &self,
        agent_id: &str,
        keep: Option<&str>,
    ) -> Result<(), StoreError> {
        directory::delete_sessions_of_agent(self, agent_id, keep).await
    }
    async fn password_hash(&self, agent_id: &str) -> Result<Option<String>, StoreError> {
        directory::password_hash(self, agent_id).await
    }
    async fn set_password_hash(&self, agent_id: &str, hash: &str) -> Result<(), StoreError> {
        directory::set_password_hash(self, agent_id, hash).await
    }
    async fn set_agent_presence(
        &self,
        agent_id: &str,
        presence: Presence,
    ) -> Result<(), StoreError> {
        directory::set_agent_presence(self, agent_id, presence).await
    }
    async fn touch_visitor(
        &self,
        visitor_id: &str,
        site_id: &str,
        update: VisitorUpdate,
        now: i64,
    ) -> Result<(), StoreError> {
        conversations::touch_visitor(self, visitor_id, site_id, update, now).await
    }
    async fn identify_visitor(
        &self,
        visitor_id: &str,
        identity: IdentityUpdate,
    ) -> Result<(), StoreError> {
        conversations::identify_visitor(self, visitor_id, identity).await
    }
    async fn visitor_external_id(&self, visitor_id: &str) -> Result<Option<String>, StoreError> {
        conversations::visitor_external_id(self, visitor_id).await
    }
    async fn update_site_settings(&self, site_id: &str, settings: &str) -> Result<(), StoreError> {
        directory::update_site_settings(self, site_id, settings).await
    }
    async fn create_conversation(
        &self,
        site_id: &str,
        visitor_id: &str,
        state: ConversationState,
        now: i64,
    ) -> Result<Conversation, StoreError> {
        conversations::create_conversation(self, site_id, visitor_id, state, now).await
    }
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        conversations::conversation(self, id).await
    }
    async fn open_conversations_of_visitor(
        &self,
        site_id: &str,
        visitor_id: &str,
    ) -> Result<Vec<Conversation>, StoreError> {
        conversations::open_conversations_of_visitor(self, site_id, visitor_id).await
    }
    async fn recent_closed_conversation_of_visitor(
        &self,
        site_id: &str,
        visitor_id: &str,
        since: i64,
    ) -> Result<Option<Conversation>, StoreError> {
        conversations::recent_closed_conversation_of_visitor(self, site_id, visitor_id, since).await
    }
    async fn set_contact_asked(&self, conversation: &str, at: i64) -> Result<(), StoreError> {
        conversations::set_contact_asked(self, conversation, at).await
    }
    async fn contact_pending(&self, conversation: &str) -> Result<bool, StoreError> {
        conversations::contact_pending(self, conversation).await
    }
    async fn contact_of_conversation(
        &self,
        conversation: &str,
    ) -> Result<Option<OfflineRequest>, StoreError> {
        conversations::contact_of_conversation(self, conversation).await
    }
    async fn open_conversations_of_sites(
        &self,
        site_ids: &[String],
        limit: u32,
    ) -> Result<Vec<Conversation>, StoreError> {
        conversations::open_conversations_of_sites(self, site_ids, limit).await
    }
    async fn transition(&self, transition: Transition) -> Result<Transitioned, StoreError> {
        conversations::transition(self, transition).await
    }
    async fn transition_queued(
        &self,
        transition: Transition,
    ) -> Result<PendingTransition, StoreError> {
        conversations::transition_queued(self, transition).await
    }
    async fn mark_read(&self, id: &str) -> Result<bool, StoreError> {
        conversations::mark_read(self, id).await
    }
    async fn set_priority(&self, id: &str, priority: i32) -> Result<(), StoreError> {
        conversations::set_priority(self, id, priority).await
    }
    async fn idle_conversations(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Conversation>, StoreError> {
        conversations::idle_conversations(self, before, limit).await
    }
    async fn conversations_in_state(
        &self,
        state: ConversationState,
    ) -> Result<Vec<Conversation>, StoreError> {
        conversations::conversations_in_state(self, state).await
    }
    async fn find_conversations(
        &self,
        site_ids: &[String],
        filter: ConversationFilter,
    ) -> Result<Vec<Conversation>, StoreError> {
        conversations::find_conversations(self, site_ids, filter).await
    }
    async fn visitor(&self, visitor_id: &str) -> Result<Option<Visitor>, StoreError> {
        conversations::visitor(self, visitor_id).await
    }
    async fn conversations_of_visitor(
        &self,
        visitor_id: &str,
    ) -> Result<Vec<Conversation>, StoreError> {
        conversations::conversations_of_visitor(self, visitor_id).await
    }
    async fn timings(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<Timing>, StoreError> {
        directory::timings(self, site_ids, from, to).await
    }
    async fn record_bot_turn(&self, turn: BotTurn) -> Result<(), StoreError> {
        directory::record_bot_turn(self, turn).await
    }
    async fn recent_bot_turns(
        &self,
        conversation: &str,
        n: u32,
    ) -> Result<Vec<RecentTurn>, StoreError> {
        directory::recent_bot_turns(self, conversation, n).await
    }
    async fn create_offline_request(
        &self,
        request: OfflineRequest,
    ) -> Result<(i64, bool), StoreError> {
        directory::create_offline_request(self, request).await
    }
    async fn offline_requests(
        &self,
        site_ids: &[String],
        page: Page,
    ) -> Result<Vec<OfflineRequest>, StoreError> {
        directory::offline_requests(self, site_ids, page).await
    }
    async fn rate(
        &self,
        conversation: &str,
        score: u8,
        comment: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        directory::rate(self, conversation, score, comment, now).await
    }
    async fn rating(&self, conversation: &str) -> Result<Option<(u8, Option<String>)>, StoreError> {
        directory::rating(self, conversation).await
    }
    async fn create_alert(&self, alert: Alert) -> Result<Option<i64>, StoreError> {
        directory::create_alert(self, alert).await
    }
    async fn alerts(&self, site_ids: &[String], page: Page) -> Result<Vec<Alert>, StoreError> {
        directory::alerts(self, site_ids, page).await
    }
    async fn bot_report(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<BotReport, StoreError> {
        directory::bot_report(self, site_ids, from, to).await
    }
    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        conversations::append(self, message).await
    }
    async fn append_queued(&self, message: NewMessage) -> Result<PendingAppend, StoreError> {
        conversations::append_queued(self, message).await
    }
    async fn messages_after(
        &self,
        conversation: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        conversations::messages_after(self, conversation, after, limit).await
    }
    async fn messages_before(
        &self,
        conversation: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        conversations::messages_before(self, conversation, before, limit).await
    }
    async fn retention_batch(
        &self,
        site_id: &str,
        closed_before: i64,
        budget: RetentionBudget,
    ) -> Result<RetentionBatch, StoreError> {
        maintenance::retention_batch(self, site_id, closed_before, budget).await
    }
    async fn sweep_visitors(
        &self,
        cutoffs: &[(String, i64)],
        after: i64,
        scan: u32,
    ) -> Result<VisitorSweep, StoreError> {
        maintenance::sweep_visitors(self, cutoffs, after, scan).await
    }
    async fn find_visitors(&self, selector: &VisitorSelector) -> Result<Vec<String>, StoreError> {
        maintenance::find_visitors(self, selector).await
    }
    async fn export_visitor(&self, visitor_id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        maintenance::export_visitor(self, visitor_id).await
    }
    async fn erase_visitor(
        &self,
        visitor_id: &str,
        note: AuditNote,
    ) -> Result<Erasure, StoreError> {
        maintenance::erase_visitor(self, visitor_id, note).await
    }
    async fn record_audit(&self, entry: NewAudit) -> Result<(), StoreError> {
        maintenance::record_audit(self, entry).await
    }
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        maintenance::audit_log(self, limit).await
    }
    async fn create_api_token(&self, token: NewApiToken) -> Result<ApiToken, StoreError> {
        rest::create_api_token(self, token).await
    }
    async fn api_tokens(&self, site_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        rest::api_tokens(self, site_id).await
    }
    async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        rest::api_token_by_hash(self, token_hash).await
    }
    async fn revoke_api_token(&self, site_id: &str, id: &str, now: i64) -> Result<(), StoreError> {
        rest::revoke_api_token(self, site_id, id, now).await
    }
    async fn touch_api_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        rest::touch_api_token(self, id, now).await
    }
    async fn conversation_page(
        &self,
        site_id: &str,
        page: ConversationPage,
    ) -> Result<Vec<Conversation>, StoreError> {
        rest::conversation_page(self, site_id, page).await
    }
    async fn create_contact(&self, contact: NewContact) -> Result<Contact, StoreError> {
        rest::create_contact(self, contact).await
    }
    async fn update_contact(
        &self,
        site_id: &str,
        id: &str,
        update: ContactUpdate,
    ) -> Result<Contact, StoreError> {
        rest::update_contact(self, site_id, id, update).await
    }
    async fn contact(&self, site_id: &str, id: &str) -> Result<Option<Contact>, StoreError> {
        rest::contact(self, site_id, id).await
    }
    async fn contact_by_external_id(
        &self,
        site_id: &str,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        rest::contact_by_external_id(self, site_id, external_id).await
    }
    async fn find_contacts(
        &self,
        site_id: &str,
        search: ContactSearch,
    ) -> Result<Vec<Contact>, StoreError> {
        rest::find_contacts(self, site_id, search).await
    }
    async fn contact_changes(
        &self,
        site_id: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<AttributeChange>, StoreError> {
        rest::contact_changes(self, site_id, id, limit).await
    }
    async fn create_webhook_endpoint(
        &self,
        endpoint: NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint, StoreError> {
        rest::create_webhook_endpoint(self, endpoint).await
    }
    async fn webhook_endpoints(
        &self,
        site_ids: &[String],
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        rest::webhook_endpoints(self, site_ids).await
    }
    async fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        rest::webhook_endpoint(self, id).await
    }
    async fn update_webhook_endpoint(
        &self,
        id: &str,
        update: WebhookEndpointUpdate,
    ) -> Result<WebhookEndpoint, StoreError> {
        rest::update_webhook_endpoint(self, id, update).await
    }
    async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), StoreError> {
        rest::delete_webhook_endpoint(self, id).await
    }
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_expires_at: i64,
    ) -> Result<WebhookEndpoint, StoreError> {
        rest::rotate_webhook_secret(self, id, secret, previous_expires_at).await
    }
    async fn webhook_sites(&self) -> Result<Vec<String>, StoreError> {
        rest::webhook_sites(self).await
    }
    async fn webhook_pending_messages(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, Message)>, StoreError> {
        rest::webhook_pending_messages(self, limit).await
    }
    async fn enqueue_webhook_event(
        &self,
        event: WebhookEvent,
    ) -> Result<PendingWebhook, StoreError> {
        rest::enqueue_webhook_event(self, event).await
    }
    async fn due_webhook_deliveries(
        &self,
        now: i64,
        settle_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        rest::due_webhook_deliveries(self, now, settle_ms, limit).await
    }
    async fn next_webhook_due(&self, settle_ms: i64) -> Result<Option<i64>, StoreError> {
        rest::next_webhook_due(self, settle_ms).await
    }
    async fn record_webhook_attempt(
        &self,
        attempt: WebhookAttempt,
        policy: DisablePolicy,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        rest::record_webhook_attempt(self, attempt, policy).await
    }
    async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        rest::webhook_deliveries(self, endpoint_id, before, limit).await
    }
    async fn webhook_delivery(&self, id: i64) -> Result<Option<WebhookDelivery>, StoreError> {
        rest::webhook_delivery(self, id).await
    }
    async fn redeliver_webhook(&self, id: i64, now: i64) -> Result<(), StoreError> {
        rest::redeliver_webhook(self, id, now).await
    }
    async fn email_set_channel(
        &self,
        conversation: &str,
        channel: Channel,
    ) -> Result<(), StoreError> {
        email::email_set_channel(self, conversation, channel).await
    }
    async fn email_channel(&self, conversation: &str) -> Result<Option<Channel>, StoreError> {
        email::email_channel(self, conversation).await
    }
    async fn email_record_message(&self, record: EmailRecord) -> Result<(), StoreError> {
        email::email_record_message(self, record).await
    }
    async fn email_thread_of(
        &self,
        message_ids: Vec<String>,
    ) -> Result<Option<String>, StoreError> {
        email::email_thread_of(self, message_ids).await
    }
    async fn email_thread_ids(
        &self,
        conversation: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        email::email_thread_ids(self, conversation, limit).await
    }
    async fn email_record_event(&self, event: EmailEvent) -> Result<(), StoreError> {
        email::email_record_event(self, event).await
    }
    async fn email_events(&self, limit: u32) -> Result<Vec<EmailEvent>, StoreError> {
        email::email_events(self, limit).await
    }
    async fn email_failing(&self, address: &str) -> Result<bool, StoreError> {
        email::email_failing(self, address).await
    }
    async fn email_visitor(
        &self,
        site_id: &str,
        email: &str,
        name: Option<String>,
        new_id: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        email::email_visitor(self, site_id, email, name, new_id, now).await
    }
    async fn email_schedule_unseen(
        &self,
        conversation: &str,
        seq: u64,
        due_at: i64,
    ) -> Result<(), StoreError> {
        email::email_schedule_unseen(self, conversation, seq, due_at).await
    }
    async fn email_visitor_seen(&self, conversation: &str, seq: u64) -> Result<(), StoreError> {
        email::email_visitor_seen(self, conversation, seq).await
    }
    async fn email_due_unseen(&self, now: i64, limit: u32) -> Result<Vec<UnseenDue>, StoreError> {
        email::email_due_unseen(self, now, limit).await
    }
    async fn email_request_transcript(
        &self,
        request: TranscriptRequest,
        now: i64,
    ) -> Result<(), StoreError> {
        email::email_request_transcript(self, request, now).await
    }
    async fn email_take_transcript(
        &self,
        conversation: &str,
    ) -> Result<Option<TranscriptRequest>, StoreError> {
        email::email_take_transcript(self, conversation).await
    }
    async fn email_take_missed(
        &self,
        queued_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        email::email_take_missed(self, queued_before, now, limit).await
    }
    async fn record_visitor_event(&self, event: NewVisitorEvent) -> Result<(), StoreError> {
        maintenance::record_visitor_event(self, event).await
    }
    async fn visitor_events(
        &self,
        visitor_ids: Vec<String>,
        limit: u32,
    ) -> Result<Vec<VisitorEvent>, StoreError> {
        maintenance::visitor_events(self, visitor_ids, limit).await
    }
    async fn customer_timeline(
        &self,
        query: TimelineQuery,
    ) -> Result<Option<Timeline>, StoreError> {
        maintenance::customer_timeline(self, query).await
    }
    async fn key_account_mark(&self, conversation: &str, rule: &str) -> Result<(), StoreError> {
        conversations::key_account_mark(self, conversation, rule).await
    }
    async fn key_account_first_responses(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<i64>, StoreError> {
        conversations::key_account_first_responses(self, site_ids, from, to).await
    }
    async fn trigger_counts(
        &self,
        site_id: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<TriggerCount>, StoreError> {
        maintenance::trigger_counts(self, site_id, since, until).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        // The writer handles jobs in order, so an empty job resolves after every write
        // queued before it has been committed.
        self.writer.write(|_| Ok(())).await
    }
    fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }
    fn remember_webhook_sites(&self, sites: &[String]) {
        let mut known = self
            .webhook_sites
            .write()
            .unwrap_or_else(|e| e.into_inner());
        known.clear();
        known.extend(sites.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_urls_own_options_are_kept_after_the_stores() {
        let config = config_with(
            "postgres://salam@localhost/salam?options=-c%20lock_timeout%3D10s",
            &[("lock_timeout", millis(Duration::from_secs(5)))],
        )
        .expect("a URL");
        assert_eq!(
            config.get_options(),
            Some(
                "-c synchronous_commit=on -c timezone=UTC -c lock_timeout=5000 -c lock_timeout=10s"
            )
        );
        let plain = config_of("postgres://salam@localhost/salam").expect("a URL");
        assert_eq!(
            plain.get_options(),
            Some("-c synchronous_commit=on -c timezone=UTC")
        );
    }
}
