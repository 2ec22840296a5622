//! The embedded SQLite backend.

use crate::maintenance::{
    AuditEntry, AuditNote, Erasure, NewAudit, RetentionBatch, RetentionBudget, VisitorRecord,
    VisitorSelector, VisitorSweep,
};
use crate::writer::Writer;
use crate::{
    Agent, AgentRole, AgentUpdate, Alert, Appended, BotReport, BotTurn, Canned, Conversation,
    ConversationFilter, Department, IdentityUpdate, NewAgent, NewMessage, OfflineRequest, Page,
    PendingTransition, RecentTurn, Session, SessionAgent, Site, Store, StoreError, StoreMetrics,
    Timing, Transition, Transitioned, Visitor, VisitorUpdate,
};
use async_trait::async_trait;
use rand::Rng;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use salam_protocol::{
    Author, AuthorKind, ConversationState, Message, MessageKind, Presence, Preview, QuickReply,
    SystemEvent,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A bot turn (`b`) that counts as a question the bot could not answer: a miss
/// (`fallback`, `clarify`), or the hand-off the bot made because it kept missing
/// (`misses`) or was asked the same again (`repeated`). A hand-off the visitor asked
/// for, or a rule made, is not one.
pub(crate) const UNANSWERED_TURN: &str = "(b.decision IN ('fallback', 'clarify') \
     OR (b.decision = 'handoff' AND EXISTS (SELECT 1 FROM conversations h \
     WHERE h.id = b.conversation_id AND h.handoff_reason IN ('misses', 'repeated'))))";

/// How the SQLite store is opened.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `synchronous = FULL` makes every commit survive power loss, not only a process
    /// crash; `NORMAL` (the default, with WAL) survives a crash of the hub and is faster.
    pub synchronous_full: bool,
    /// Writes waiting for the writer at most (callers wait when it is full).
    pub queue: usize,
    /// Writes in one transaction at most.
    pub max_batch: usize,
    /// Read connections kept open.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            synchronous_full: false,
            queue: 8192,
            max_batch: 512,
            readers: 4,
        }
    }
}

/// The SQLite store: a writer thread and a pool of read connections over one file.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) writer: Writer,
    readers: Arc<ReadPool>,
    metrics: Arc<StoreMetrics>,
    /// The sites with an enabled webhook endpoint, as the hub last told (their
    /// messages leave a `webhook_pending` mark in their own transaction).
    pub(crate) webhook_sites: crate::webhooks::WebhookSites,
    /// Dropped with the last clone; the checkpoint thread stops then.
    _alive: Arc<()>,
    /// A shared lock on `salam.db.lock` while the store is open, so a restore refuses
    /// to run under it (see `maintenance`).
    _lock: Arc<crate::maintenance::DatabaseLock>,
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReadPool {
    fn take(&self) -> Result<Connection, StoreError> {
        // A std Mutex is fine: it is held only to pop or push, never across an await.
        if let Some(connection) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(connection);
        }
        open_reader(&self.path)
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_err)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(map_err)?;
    Ok(connection)
}

/// WAL length (pages) at which the writer checkpoints after a commit (SQLite's
/// auto-checkpoint), bounding the WAL.
const WAL_WRITER_CHECKPOINT_PAGES: i64 = 8192;

/// Copies the WAL back into the database from a connection of its own, so the writer's
/// commits rarely pay for a checkpoint: every second while the WAL is short, every
/// 100 ms while it is long. `PASSIVE` never blocks the writer. Under steady writes it
/// never quite catches up, though (the writer appends while it copies), and the WAL
/// only restarts from its beginning after a checkpoint that copied everything; so the
/// writer keeps SQLite's auto-checkpoint at [`WAL_WRITER_CHECKPOINT_PAGES`]: it then
/// copies the few frames left between two batches, which completes, and the next
/// transaction restarts the WAL. No blocking `RESTART`/`TRUNCATE` on the normal path: the
/// writer would stall for the whole copy (seen as a 130 ms p99 at 5k messages/s); only
/// past the writer's hard cap (`writer::WAL_HARD_CAP`), when this thread was starved
/// while holding the checkpoint lock, does the writer truncate the WAL itself.
fn spawn_checkpointer(path: PathBuf, alive: std::sync::Weak<()>) -> Result<(), StoreError> {
    let connection = Connection::open(&path).map_err(map_err)?;
    connection
        .busy_timeout(std::time::Duration::from_millis(100))
        .map_err(map_err)?;
    std::thread::Builder::new()
        .name("salam-checkpoint".into())
        .spawn(move || {
            // Nice 10: on a busy core the message path (runtime and writer threads)
            // runs first and the copy fills the idle time; if it falls behind, the
            // writer's own auto-checkpoint still bounds the WAL.
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10);
            // Every second while the WAL is short; every 100 ms while it is long, so
            // under heavy writes each copy (and the WAL) stays small.
            let mut pause = std::time::Duration::from_secs(1);
            loop {
                std::thread::sleep(pause);
                if alive.upgrade().is_none() || !path.exists() {
                    return;
                }
                let wal_pages: Result<i64, _> =
                    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1));
                let long = wal_pages.is_ok_and(|pages| pages > WAL_WRITER_CHECKPOINT_PAGES / 4);
                pause = std::time::Duration::from_millis(if long { 100 } else { 1000 });
            }
        })
        .map_err(|err| StoreError::Unavailable(err.to_string()))?;
    Ok(())
}

/// The WAL file SQLite keeps beside the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Maps a SQLite error onto the store's error enum.
pub(crate) fn map_err(err: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as Code;
    match &err {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            Code::ConstraintViolation => StoreError::Conflict(err.to_string()),
            Code::DiskFull
            | Code::ReadOnly
            | Code::SystemIoFailure
            | Code::CannotOpen
            | Code::DatabaseBusy
            | Code::DatabaseLocked
            | Code::PermissionDenied
            | Code::OutOfMemory => StoreError::Unavailable(err.to_string()),
            _ => StoreError::Unavailable(err.to_string()),
        },
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        _ => StoreError::Corrupt(err.to_string()),
    }
}

/// A random id with a prefix: `c_` + 20 characters of [a-z0-9] (about 103 bits).
pub(crate) fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    for _ in 0..20 {
        id.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    id
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts
    /// the writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let lock = Arc::new(crate::maintenance::DatabaseLock::shared(path)?);
        let mut connection = Connection::open(path).map_err(map_err)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(map_err)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(map_err)?;
        connection
            .pragma_update(
                None,
                "synchronous",
                if options.synchronous_full {
                    "FULL"
                } else {
                    "NORMAL"
                },
            )
            .map_err(map_err)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(map_err)?;
        crate::schema::migrate(&mut connection)?;
        // Checkpoints mostly run on their own thread (below); the writer's own only
        // bounds the WAL (see `spawn_checkpointer`).
        connection
            .pragma_update(None, "wal_autocheckpoint", WAL_WRITER_CHECKPOINT_PAGES)
            .map_err(map_err)?;
        // When the WAL restarts, its file is cut back to this size.
        connection
            .pragma_update(None, "journal_size_limit", 64_i64 << 20)
            .map_err(map_err)?;
        let alive = Arc::new(());
        spawn_checkpointer(path.to_path_buf(), Arc::downgrade(&alive))?;
        connection.set_prepared_statement_cache_capacity(64);
        let metrics = Arc::new(StoreMetrics::default());
        let (writer, _thread) = Writer::start(
            connection,
            options.queue.max(1),
            options.max_batch.max(1),
            metrics.clone(),
            Some(wal_path(path)),
        )
        .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let readers = Arc::new(ReadPool {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            max_idle: options.readers.max(1),
        });
        Ok(SqliteStore {
            writer,
            readers,
            metrics,
            webhook_sites: Default::default(),
            _alive: alive,
            _lock: lock,
        })
    }

    /// One statement on the writer, its parameters owned: the number of rows changed.
    async fn execute<P>(&self, sql: &'static str, params: P) -> Result<usize, StoreError>
    where
        P: rusqlite::Params + Send + 'static,
    {
        self.writer
            .write(move |connection| connection.execute(sql, params).map_err(map_err))
            .await
    }

    /// Runs a read on a pooled connection in the blocking pool.
    pub(crate) async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = readers.take()?;
            let result = op(&connection);
            readers.give_back(connection);
            result
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("read task failed: {err}")))?
    }
}

fn site_from_row(row: &Row<'_>) -> rusqlite::Result<Site> {
    let origins: String = row.get(3)?;
    Ok(Site {
        id: row.get(0)?,
        name: row.get(1)?,
        key: row.get(2)?,
        origins: serde_json::from_str(&origins).unwrap_or_default(),
        created_at: row.get(4)?,
        settings: row.get(5)?,
        identity_secret: row.get(6)?,
        previous_identity_secret: row.get(7)?,
        identity_secret_rotated_at: row.get(8)?,
    })
}

const SITE_COLUMNS: &str = "id, name, key, origins, created_at, settings, identity_secret, \
     previous_identity_secret, identity_secret_rotated_at";

const AGENT_COLUMNS: &str =
    "id, email, name, role, disabled, password_hash, capacity, departments, all_sites, presence";

fn agent_from_row(connection: &Connection, row: &Row<'_>) -> Result<(Agent, String), StoreError> {
    let id: String = row.get(0).map_err(map_err)?;
    let role: String = row.get(3).map_err(map_err)?;
    let role = AgentRole::parse(&role).ok_or_else(|| StoreError::Corrupt(role.clone()))?;
    let mut statement = connection
        .prepare_cached("SELECT site_id FROM agent_sites WHERE agent_id = ?1 ORDER BY site_id")
        .map_err(map_err)?;
    let site_ids = statement
        .query_map([&id], |row| row.get(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(map_err)?;
    Ok((
        Agent {
            id,
            email: row.get(1).map_err(map_err)?,
            name: row.get(2).map_err(map_err)?,
            role,
            site_ids,
            disabled: row.get::<_, i64>(4).map_err(map_err)? != 0,
            capacity: row
                .get::<_, Option<i64>>(6)
                .map_err(map_err)?
                .map(|capacity| capacity.clamp(0, u32::MAX as i64) as u32),
            departments: serde_json::from_str(&row.get::<_, String>(7).map_err(map_err)?)
                .unwrap_or_default(),
            all_sites: row.get::<_, i64>(8).map_err(map_err)? != 0,
            presence: match row.get::<_, String>(9).map_err(map_err)?.as_str() {
                "away" => Presence::Away,
                _ => Presence::Online,
            },
        },
        row.get(5).map_err(map_err)?,
    ))
}

fn agent_where(
    connection: &Connection,
    condition: &str,
    value: &str,
) -> Result<Option<(Agent, String)>, StoreError> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE {condition}");
    let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
    let mut rows = statement.query([value]).map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => agent_from_row(connection, row).map(Some),
        None => Ok(None),
    }
}

pub(crate) const CONVERSATION_SELECT: &str = "SELECT c.id, c.site_id, c.visitor_id, v.name, c.state, \
     c.agent_id, a.name, c.last_seq, c.created_at, c.updated_at, c.department, c.priority, \
     c.queued_at, c.unread, c.preview, c.preview_author, c.preview_at, v.email, v.locale, \
     c.channel \
     FROM conversations c LEFT JOIN visitors v ON v.id = c.visitor_id \
     LEFT JOIN agents a ON a.id = c.agent_id";

pub(crate) fn conversation_from_row(row: &Row<'_>) -> rusqlite::Result<Conversation> {
    let state: String = row.get(4)?;
    Ok(Conversation {
        id: row.get(0)?,
        site_id: row.get(1)?,
        visitor_id: row.get(2)?,
        visitor_name: row.get(3)?,
        visitor_email: row.get(17)?,
        visitor_locale: row.get(18)?,
        state: ConversationState::parse(&state).unwrap_or(ConversationState::Closed),
        agent_id: row.get(5)?,
        agent_name: row.get(6)?,
        last_seq: row.get::<_, i64>(7)? as u64,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
        department: row.get(10)?,
        priority: row.get(11)?,
        queued_at: row.get(12)?,
        unread: row.get::<_, i64>(13)?.clamp(0, u32::MAX as i64) as u32,
        preview: match (
            row.get::<_, Option<String>>(14)?,
            row.get::<_, Option<String>>(15)?,
        ) {
            (Some(text), Some(author)) => Some(Preview {
                author: author_kind_from(&author),
                text,
                at: row.get::<_, Option<i64>>(16)?.unwrap_or(0),
            }),
            _ => None,
        },
        channel: salam_protocol::Channel::parse(&row.get::<_, String>(19)?)
            .unwrap_or(salam_protocol::Channel::Chat),
    })
}

pub(crate) fn author_kind_from(name: &str) -> AuthorKind {
    match name {
        "visitor" => AuthorKind::Visitor,
        "agent" => AuthorKind::Agent,
        "bot" => AuthorKind::Bot,
        _ => AuthorKind::System,
    }
}

fn conversation_by_id(
    connection: &Connection,
    id: &str,
) -> Result<Option<Conversation>, StoreError> {
    let sql = format!("{CONVERSATION_SELECT} WHERE c.id = ?1");
    connection
        .prepare_cached(&sql)
        .map_err(map_err)?
        .query_row([id], conversation_from_row)
        .optional()
        .map_err(map_err)
}

pub(crate) fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "text",
        MessageKind::Note => "note",
        MessageKind::Event => "event",
    }
}

pub(crate) fn author_kind_name(kind: AuthorKind) -> &'static str {
    match kind {
        AuthorKind::Visitor => "visitor",
        AuthorKind::Agent => "agent",
        AuthorKind::Bot => "bot",
        AuthorKind::System => "system",
    }
}

pub(crate) const MESSAGE_COLUMNS: &str = "conversation_id, seq, kind, author_kind, author_id, author_name, text, \
     at, client_id, quick_replies, rule, event";

pub(crate) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let kind: String = row.get(2)?;
    let author_kind: String = row.get(3)?;
    let author_id: String = row.get(4)?;
    let quick_replies: Option<String> = row.get(9)?;
    Ok(Message {
        conversation: row.get(0)?,
        seq: row.get::<_, i64>(1)? as u64,
        kind: match kind.as_str() {
            "note" => MessageKind::Note,
            "event" => MessageKind::Event,
            _ => MessageKind::Text,
        },
        author: Author {
            kind: author_kind_from(&author_kind),
            id: (!author_id.is_empty()).then_some(author_id),
            name: row.get(5)?,
        },
        text: row.get(6)?,
        at: row.get(7)?,
        client_id: row.get(8)?,
        quick_replies: quick_replies
            .and_then(|json| serde_json::from_str::<Vec<QuickReply>>(&json).ok())
            .unwrap_or_default(),
        rule: row.get(10)?,
        event: row
            .get::<_, Option<String>>(11)?
            .and_then(|json| serde_json::from_str::<SystemEvent>(&json).ok()),
    })
}

pub(crate) const VISITOR_COLUMNS: &str = "id, site_id, name, email, phone, external_id, locale, \
     page_url, page_title, referrer, user_agent, first_seen, last_seen, verified, attributes";

pub(crate) fn visitor_from_row(row: &Row<'_>) -> rusqlite::Result<Visitor> {
    Ok(Visitor {
        id: row.get(0)?,
        site_id: row.get(1)?,
        name: row.get(2)?,
        email: row.get(3)?,
        phone: row.get(4)?,
        external_id: row.get(5)?,
        locale: row.get(6)?,
        page_url: row.get(7)?,
        page_title: row.get(8)?,
        referrer: row.get(9)?,
        user_agent: row.get(10)?,
        first_seen: row.get(11)?,
        last_seen: row.get(12)?,
        verified: serde_json::from_str(&row.get::<_, String>(13)?).unwrap_or_default(),
        attributes: row
            .get::<_, Option<String>>(14)?
            .and_then(|json| serde_json::from_str(&json).ok()),
    })
}

pub(crate) const OFFLINE_REQUEST_COLUMNS: &str =
    "id, site_id, visitor_id, conversation_id, name, email, phone, message, created_at, done_at";

pub(crate) fn offline_request_from_row(row: &Row<'_>) -> rusqlite::Result<OfflineRequest> {
    Ok(OfflineRequest {
        id: row.get(0)?,
        site_id: row.get(1)?,
        visitor_id: row.get(2)?,
        conversation: row.get(3)?,
        name: row.get(4)?,
        email: row.get(5)?,
        phone: row.get(6)?,
        message: row.get(7)?,
        created_at: row.get(8)?,
        done_at: row.get(9)?,
    })
}

/// The body of `append`, run inside the writer's transaction.
/// `marks`: the sites whose messages leave a `webhook_pending` mark (see
/// [`crate::webhooks`]); `None` for event lines, which never become `message.created`.
fn append_in(
    connection: &Connection,
    message: NewMessage,
    marks: Option<&crate::webhooks::WebhookSites>,
) -> Result<Appended, StoreError> {
    let (state, last_seq, site_id): (String, i64, String) = connection
        .prepare_cached("SELECT state, last_seq, site_id FROM conversations WHERE id = ?1")
        .map_err(map_err)?
        .query_row([&message.conversation], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
    let conversation_state = ConversationState::parse(&state).unwrap_or(ConversationState::Closed);
    if let Some(required) = message.only_in
        && required != conversation_state
    {
        return Err(StoreError::StateChanged(conversation_state));
    }
    let author_kind = author_kind_name(message.author.kind);
    let author_id = message.author.id.as_deref().unwrap_or("");
    // A resend of a committed client id is answered with the original.
    let original =
        |connection: &Connection, client_id: &str| -> Result<Option<Appended>, StoreError> {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 \
             AND author_kind = ?2 AND author_id = ?3 AND client_id = ?4"
            );
            let found = connection
                .prepare_cached(&sql)
                .map_err(map_err)?
                .query_row(
                    params![message.conversation, author_kind, author_id, client_id],
                    message_from_row,
                )
                .optional()
                .map_err(map_err)?;
            Ok(found.map(|message| Appended {
                message,
                duplicate: true,
                state: conversation_state,
                unread: 0,
            }))
        };
    if conversation_state == ConversationState::Closed && message.kind != MessageKind::Event {
        if let Some(client_id) = &message.client_id
            && let Some(found) = original(connection, client_id)?
        {
            return Ok(found);
        }
        return Err(StoreError::Closed);
    }
    let seq = last_seq + 1;
    let quick_replies = if message.quick_replies.is_empty() {
        None
    } else {
        serde_json::to_string(&message.quick_replies).ok()
    };
    let event_json = message
        .event
        .as_ref()
        .and_then(|event| serde_json::to_string(event).ok());
    // The unique index on the client id does the duplicate check: no row is written
    // for a resend (one index probe per message instead of two).
    let inserted = connection
        .prepare_cached(
            "INSERT INTO messages (conversation_id, seq, kind, author_kind, author_id, \
             author_name, text, at, client_id, quick_replies, rule, event) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (conversation_id, author_kind, author_id, client_id) \
             WHERE client_id IS NOT NULL DO NOTHING",
        )
        .map_err(map_err)?
        .execute(params![
            message.conversation,
            seq,
            kind_name(message.kind),
            author_kind,
            author_id,
            message.author.name,
            message.text,
            message.at,
            message.client_id,
            quick_replies,
            message.rule,
            event_json,
        ])
        .map_err(map_err)?;
    if inserted == 0 {
        let client_id = message.client_id.as_deref().unwrap_or("");
        return original(connection, client_id)?.ok_or_else(|| {
            StoreError::Corrupt("a conflicting message could not be read back".into())
        });
    }
    if let Some(marks) = marks {
        crate::webhooks::mark_pending(connection, marks, &site_id, &message, seq)?;
    }
    // One statement moves the summary with the message: the preview (texts and notes),
    // the unread count (a visitor's text adds one, an agent's reply clears it) and the
    // first response after a hand-off.
    let kind = kind_name(message.kind);
    let preview: Option<String> = (message.kind != MessageKind::Event)
        .then(|| message.text.chars().take(Preview::MAX_CHARS).collect());
    let unread: i64 = connection
        .prepare_cached(
            "UPDATE conversations SET last_seq = ?1, updated_at = ?2, \
             unread = CASE WHEN ?4 = 'visitor' AND ?5 = 'text' THEN unread + 1 \
                           WHEN ?4 = 'agent' AND ?5 = 'text' THEN 0 ELSE unread END, \
             preview = coalesce(?6, preview), \
             preview_author = CASE WHEN ?6 IS NULL THEN preview_author ELSE ?4 END, \
             preview_at = CASE WHEN ?6 IS NULL THEN preview_at ELSE ?2 END, \
             first_response_at = CASE WHEN ?4 = 'agent' AND ?5 = 'text' \
                 AND handed_off_at IS NOT NULL THEN coalesce(first_response_at, ?2) \
                 ELSE first_response_at END \
             WHERE id = ?3 RETURNING unread",
        )
        .map_err(map_err)?
        .query_row(
            params![
                seq,
                message.at,
                message.conversation,
                author_kind,
                kind,
                preview
            ],
            |row| row.get(0),
        )
        .map_err(map_err)?;
    Ok(Appended {
        message: Message {
            conversation: message.conversation,
            seq: seq as u64,
            kind: message.kind,
            author: message.author,
            text: message.text,
            at: message.at,
            client_id: message.client_id,
            quick_replies: message.quick_replies,
            rule: message.rule,
            event: message.event,
        },
        state: conversation_state,
        duplicate: false,
        unread: unread.clamp(0, u32::MAX as i64) as u32,
    })
}

/// `|a|b|`: the set of state names a transition may start from.
fn state_set(states: &[ConversationState]) -> String {
    let mut set = String::from("|");
    for state in states {
        set.push_str(state.as_str());
        set.push('|');
    }
    set
}

/// The body of `transition`, run inside the writer's transaction.
fn transition_in(connection: &Connection, change: Transition) -> Result<Transitioned, StoreError> {
    let to = change.to.as_str();
    let agent_id = (change.to == ConversationState::Assigned)
        .then_some(change.agent_id.clone())
        .flatten();
    let changed = connection
        .prepare_cached(
            "UPDATE conversations SET state = ?2, agent_id = ?3, updated_at = ?4, \
             department = coalesce(?5, department), priority = coalesce(?6, priority), \
             queued_at = CASE WHEN ?2 = 'queued' THEN ?4 ELSE queued_at END, \
             handed_off_at = CASE WHEN ?2 IN ('queued', 'assigned') \
                 THEN coalesce(handed_off_at, ?4) ELSE handed_off_at END, \
             handoff_reason = CASE WHEN ?2 IN ('queued', 'assigned') \
                 THEN coalesce(handoff_reason, ?7) ELSE handoff_reason END, \
             closed_at = CASE WHEN ?2 = 'closed' THEN ?4 ELSE closed_at END \
             WHERE id = ?1 AND instr(?8, '|' || state || '|') > 0",
        )
        .map_err(map_err)?
        .execute(params![
            change.conversation,
            to,
            agent_id,
            change.at,
            change.department,
            change.priority,
            change.handoff_reason,
            state_set(&change.from),
        ])
        .map_err(map_err)?;
    if changed == 0 {
        return conversation_by_id(connection, &change.conversation)?
            .map(Transitioned::Stale)
            .ok_or(StoreError::NotFound);
    }
    let event = match change.event {
        Some(event) => Some(
            append_in(
                connection,
                NewMessage {
                    conversation: change.conversation.clone(),
                    kind: MessageKind::Event,
                    author: Author {
                        kind: AuthorKind::System,
                        id: None,
                        name: None,
                    },
                    text: event.english(),
                    client_id: None,
                    quick_replies: Vec::new(),
                    rule: None,
                    at: change.at,
                    only_in: None,
                    event: Some(event),
                },
                None,
            )?
            .message,
        ),
        None => None,
    };
    let conversation =
        conversation_by_id(connection, &change.conversation)?.ok_or(StoreError::NotFound)?;
    Ok(Transitioned::Applied {
        conversation,
        event: event.map(Box::new),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |connection| {
            connection
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)",
                        [&key, &value],
                    )
                    .map_err(map_err)?;
                connection
                    .query_row("SELECT value FROM settings WHERE key = ?1", [&key], |row| {
                        row.get(0)
                    })
                    .map_err(map_err)
            })
            .await
    }

    async fn create_site(&self, name: &str, origins: &[String]) -> Result<Site, StoreError> {
        let site = Site {
            id: new_id("s"),
            name: name.to_owned(),
            key: new_id("pk"),
            origins: origins.to_vec(),
            created_at: now_ms(),
            settings: "{}".into(),
            identity_secret: new_id("sk"),
            previous_identity_secret: None,
            identity_secret_rotated_at: None,
        };
        let row = site.clone();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO sites (id, name, key, origins, created_at, settings, identity_secret) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            row.id,
                            row.name,
                            row.key,
                            serde_json::to_string(&row.origins).unwrap_or_default(),
                            row.created_at,
                            row.settings,
                            row.identity_secret
                        ],
                    )
                    .map_err(map_err)
            })
            .await?;
        Ok(site)
    }

    async fn site_by_key(&self, key: &str) -> Result<Option<Site>, StoreError> {
        let key = key.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE key = ?1"))
                .map_err(map_err)?
                .query_row([key], site_from_row)
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn site_by_id(&self, id: &str) -> Result<Option<Site>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?1"))
                .map_err(map_err)?
                .query_row([id], site_from_row)
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn list_sites(&self) -> Result<Vec<Site>, StoreError> {
        self.read(|connection| {
            let mut statement = connection
                .prepare(&format!(
                    "SELECT {SITE_COLUMNS} FROM sites ORDER BY created_at, id"
                ))
                .map_err(map_err)?;
            let sites = statement
                .query_map([], site_from_row)
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(sites)
        })
        .await
    }

    async fn create_agent(&self, agent: NewAgent) -> Result<Agent, StoreError> {
        let id = new_id("a");
        let created = Agent {
            id: id.clone(),
            email: agent.email.clone(),
            name: agent.name.clone(),
            role: agent.role,
            all_sites: agent.all_sites,
            site_ids: agent.site_ids.clone(),
            disabled: false,
            capacity: agent.capacity,
            departments: agent.departments.clone(),
            presence: Presence::Online,
        };
        let now = now_ms();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO agents (id, email, name, role, password_hash, created_at, \
                         capacity, departments, all_sites) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            id,
                            agent.email,
                            agent.name,
                            agent.role.as_str(),
                            agent.password_hash,
                            now,
                            agent.capacity,
                            serde_json::to_string(&agent.departments)
                                .unwrap_or_else(|_| "[]".into()),
                            agent.all_sites as i64
                        ],
                    )
                    .map_err(map_err)?;
                for site_id in &agent.site_ids {
                    connection
                        .execute(
                            "INSERT INTO agent_sites (agent_id, site_id) VALUES (?1, ?2)",
                            [&id, site_id],
                        )
                        .map_err(map_err)?;
                }
                Ok(())
            })
            .await?;
        Ok(created)
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.read(|connection| {
            let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name, id");
            let mut statement = connection.prepare(&sql).map_err(map_err)?;
            let mut rows = statement.query([]).map_err(map_err)?;
            let mut agents = Vec::new();
            while let Some(row) = rows.next().map_err(map_err)? {
                agents.push(agent_from_row(connection, row)?.0);
            }
            Ok(agents)
        })
        .await
    }

    async fn update_agent(&self, id: &str, update: AgentUpdate) -> Result<Agent, StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                let exists = agent_where(connection, "id = ?1", &id)?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                if let Some(name) = &update.name {
                    connection
                        .execute(
                            "UPDATE agents SET name = ?2 WHERE id = ?1",
                            params![id, name],
                        )
                        .map_err(map_err)?;
                }
                if let Some(role) = update.role {
                    connection
                        .execute(
                            "UPDATE agents SET role = ?2 WHERE id = ?1",
                            params![id, role.as_str()],
                        )
                        .map_err(map_err)?;
                }
                if let Some(capacity) = update.capacity {
                    connection
                        .execute(
                            "UPDATE agents SET capacity = ?2 WHERE id = ?1",
                            params![id, capacity],
                        )
                        .map_err(map_err)?;
                }
                if let Some(departments) = &update.departments {
                    let json = serde_json::to_string(departments).unwrap_or_else(|_| "[]".into());
                    connection
                        .execute(
                            "UPDATE agents SET departments = ?2 WHERE id = ?1",
                            params![id, json],
                        )
                        .map_err(map_err)?;
                }
                if let Some(disabled) = update.disabled {
                    connection
                        .execute(
                            "UPDATE agents SET disabled = ?2 WHERE id = ?1",
                            params![id, disabled as i64],
                        )
                        .map_err(map_err)?;
                    if disabled {
                        connection
                            .execute("DELETE FROM sessions WHERE agent_id = ?1", [&id])
                            .map_err(map_err)?;
                    }
                }
                if let Some(all_sites) = update.all_sites {
                    connection
                        .execute(
                            "UPDATE agents SET all_sites = ?2 WHERE id = ?1",
                            params![id, all_sites as i64],
                        )
                        .map_err(map_err)?;
                }
                if let Some(site_ids) = &update.site_ids {
                    connection
                        .execute("DELETE FROM agent_sites WHERE agent_id = ?1", [&id])
                        .map_err(map_err)?;
                    for site_id in site_ids {
                        connection
                            .execute(
                                "INSERT INTO agent_sites (agent_id, site_id) VALUES (?1, ?2)",
                                [&id, site_id],
                            )
                            .map_err(map_err)?;
                    }
                }
                agent_where(connection, "id = ?1", &id)?
                    .map(|(agent, _)| agent)
                    .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn update_site(
        &self,
        id: &str,
        name: Option<&str>,
        origins: Option<&[String]>,
    ) -> Result<Site, StoreError> {
        let (id, name, origins) = (
            id.to_owned(),
            name.map(str::to_owned),
            origins.map(|origins| serde_json::to_string(origins).unwrap_or_else(|_| "[]".into())),
        );
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE sites SET name = coalesce(?2, name), origins = coalesce(?3, origins) WHERE id = ?1",
                        params![id, name, origins],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                connection
                    .query_row(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?1"), [&id], site_from_row)
                    .map_err(map_err)
            })
            .await
    }

    async fn departments(&self, site_ids: &[String]) -> Result<Vec<Department>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT site_id, name FROM departments WHERE site_id = ?1 ORDER BY name",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map([site_id], |row| {
                        Ok(Department {
                            site_id: row.get(0)?,
                            name: row.get(1)?,
                        })
                    })
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            Ok(all)
        })
        .await
    }

    async fn add_department(&self, site_id: &str, name: &str) -> Result<(), StoreError> {
        let (site_id, name) = (site_id.to_owned(), name.to_owned());
        let now = now_ms();
        self.execute(
            "INSERT OR IGNORE INTO departments (site_id, name, created_at) VALUES (?1, ?2, ?3)",
            (site_id, name, now),
        )
        .await
        .map(|_| ())
    }

    async fn remove_department(&self, site_id: &str, name: &str) -> Result<(), StoreError> {
        let (site_id, name) = (site_id.to_owned(), name.to_owned());
        self.execute(
            "DELETE FROM departments WHERE site_id = ?1 AND name = ?2",
            [site_id, name],
        )
        .await
        .map(|_| ())
    }

    async fn canned(&self, site_ids: &[String]) -> Result<Vec<Canned>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, site_id, shortcut, text FROM canned_responses WHERE site_id = ?1 \
                     ORDER BY shortcut",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map([site_id], |row| {
                        Ok(Canned {
                            id: row.get(0)?,
                            site_id: row.get(1)?,
                            shortcut: row.get(2)?,
                            text: row.get(3)?,
                        })
                    })
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            Ok(all)
        })
        .await
    }

    async fn add_canned(
        &self,
        site_id: &str,
        shortcut: &str,
        text: &str,
    ) -> Result<Canned, StoreError> {
        let (site_id, shortcut, text) = (site_id.to_owned(), shortcut.to_owned(), text.to_owned());
        let now = now_ms();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO canned_responses (site_id, shortcut, text, created_at) \
                         VALUES (?1, ?2, ?3, ?4)",
                        params![site_id, shortcut, text, now],
                    )
                    .map_err(map_err)?;
                Ok(Canned {
                    id: connection.last_insert_rowid(),
                    site_id,
                    shortcut,
                    text,
                })
            })
            .await
    }

    async fn rotate_identity_secret(
        &self,
        site_id: &str,
        secret: &str,
        now: i64,
    ) -> Result<Site, StoreError> {
        let (site_id, secret) = (site_id.to_owned(), secret.to_owned());
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE sites SET previous_identity_secret = identity_secret, \
                         identity_secret = ?2, identity_secret_rotated_at = ?3 WHERE id = ?1",
                        params![site_id, secret, now],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                connection
                    .query_row(
                        &format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?1"),
                        [&site_id],
                        site_from_row,
                    )
                    .map_err(map_err)
            })
            .await
    }

    async fn remove_canned(&self, id: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute("DELETE FROM canned_responses WHERE id = ?1", [id])
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn offline_request_done(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE offline_requests SET done_at = coalesce(done_at, ?2) WHERE id = ?1",
                        params![id, now],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn acknowledge_alert(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, ?2) WHERE id = ?1",
                        params![id, now],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn count_agents(&self) -> Result<u64, StoreError> {
        self.read(|connection| {
            connection
                .query_row("SELECT count(*) FROM agents", [], |row| {
                    row.get::<_, i64>(0)
                })
                .map(|n| n as u64)
                .map_err(map_err)
        })
        .await
    }

    async fn agent_by_email(&self, email: &str) -> Result<Option<(Agent, String)>, StoreError> {
        let email = email.trim().to_owned();
        self.read(move |connection| agent_where(connection, "email = ?1", &email))
            .await
    }

    async fn agent_by_id(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| {
            Ok(agent_where(connection, "id = ?1", &id)?.map(|(agent, _)| agent))
        })
        .await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        agent_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (token_hash, agent_id) = (token_hash.to_owned(), agent_id.to_owned());
        let now = now_ms();
        self.writer
            .write(move |connection| {
                connection
                    .execute("DELETE FROM sessions WHERE expires_at < ?1", params![now])
                    .map_err(map_err)?;
                connection
                    .execute(
                        "INSERT INTO sessions (token_hash, agent_id, created_at, expires_at, last_seen) \
                         VALUES (?1, ?2, ?3, ?4, ?3)",
                        params![token_hash, agent_id, now, expires_at],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    async fn session_agent(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionAgent>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read(move |connection| {
            let session: Option<(String, i64, i64)> = connection
                .prepare_cached(
                    "SELECT agent_id, expires_at, last_seen FROM sessions \
                     WHERE token_hash = ?1 AND expires_at > ?2",
                )
                .map_err(map_err)?
                .query_row(params![token_hash, now], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
                .map_err(map_err)?;
            let Some((agent_id, expires_at, last_seen)) = session else {
                return Ok(None);
            };
            Ok(agent_where(connection, "id = ?1", &agent_id)?
                .map(|(agent, _)| agent)
                .filter(|agent| !agent.disabled)
                .map(|agent| SessionAgent {
                    agent,
                    expires_at,
                    last_seen,
                }))
        })
        .await
    }

    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.execute(
            "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
            (token_hash, now),
        )
        .await
        .map(|_| ())
    }

    async fn sessions_of_agent(
        &self,
        agent_id: &str,
        now: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let agent_id = agent_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT token_hash, expires_at, last_seen FROM sessions \
                     WHERE agent_id = ?1 AND expires_at > ?2",
                )
                .map_err(map_err)?;
            let rows = statement
                .query_map(params![agent_id, now], |row| {
                    Ok(Session {
                        token_hash: row.get(0)?,
                        expires_at: row.get(1)?,
                        last_seen: row.get(2)?,
                    })
                })
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn delete_sessions_of_agent(
        &self,
        agent_id: &str,
        keep: Option<&str>,
    ) -> Result<(), StoreError> {
        let (agent_id, keep) = (agent_id.to_owned(), keep.map(str::to_owned));
        self.execute(
            "DELETE FROM sessions WHERE agent_id = ?1 AND token_hash IS NOT ?2",
            (agent_id, keep),
        )
        .await
        .map(|_| ())
    }

    async fn password_hash(&self, agent_id: &str) -> Result<Option<String>, StoreError> {
        let agent_id = agent_id.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT password_hash FROM agents WHERE id = ?1",
                    [agent_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn set_password_hash(&self, agent_id: &str, hash: &str) -> Result<(), StoreError> {
        let (agent_id, hash) = (agent_id.to_owned(), hash.to_owned());
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE agents SET password_hash = ?2 WHERE id = ?1",
                        params![agent_id, hash],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn set_agent_presence(
        &self,
        agent_id: &str,
        presence: Presence,
    ) -> Result<(), StoreError> {
        let agent_id = agent_id.to_owned();
        let presence = match presence {
            Presence::Away => "away",
            Presence::Online | Presence::Offline => "online",
        };
        self.execute(
            "UPDATE agents SET presence = ?2 WHERE id = ?1",
            (agent_id, presence),
        )
        .await
        .map(|_| ())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
                    .map(|_| ())
                    .map_err(map_err)
            })
            .await
    }

    async fn touch_visitor(
        &self,
        visitor_id: &str,
        site_id: &str,
        update: VisitorUpdate,
        now: i64,
    ) -> Result<(), StoreError> {
        let (visitor_id, site_id) = (visitor_id.to_owned(), site_id.to_owned());
        self.writer
            .write(move |connection| {
                let page = update.page.unwrap_or_default();
                connection
                    .prepare_cached(
                        "INSERT INTO visitors (id, site_id, locale, page_url, page_title, referrer, \
                         user_agent, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
                         ON CONFLICT (id) DO UPDATE SET \
                         locale = coalesce(excluded.locale, locale), \
                         page_url = coalesce(excluded.page_url, page_url), \
                         page_title = coalesce(excluded.page_title, page_title), \
                         referrer = coalesce(excluded.referrer, referrer), \
                         user_agent = coalesce(excluded.user_agent, user_agent), \
                         last_seen = excluded.last_seen",
                    )
                    .map_err(map_err)?
                    .execute(params![
                        visitor_id,
                        site_id,
                        update.locale,
                        page.url,
                        page.title,
                        page.referrer,
                        update.user_agent,
                        now
                    ])
                    .map(|_| ())
                    .map_err(map_err)
            })
            .await
    }

    async fn create_conversation(
        &self,
        site_id: &str,
        visitor_id: &str,
        state: ConversationState,
        now: i64,
    ) -> Result<Conversation, StoreError> {
        let id = new_id("c");
        let (site_id, visitor_id) = (site_id.to_owned(), visitor_id.to_owned());
        self.writer
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO conversations (id, site_id, visitor_id, state, created_at, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    )
                    .map_err(map_err)?
                    .execute(params![id, site_id, visitor_id, state.as_str(), now])
                    .map_err(map_err)?;
                conversation_by_id(connection, &id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| conversation_by_id(connection, &id))
            .await
    }

    async fn open_conversations_of_visitor(
        &self,
        site_id: &str,
        visitor_id: &str,
    ) -> Result<Vec<Conversation>, StoreError> {
        let (site_id, visitor_id) = (site_id.to_owned(), visitor_id.to_owned());
        self.read(move |connection| {
            let sql = format!(
                "{CONVERSATION_SELECT} WHERE c.site_id = ?1 AND c.visitor_id = ?2 \
                 AND c.state != 'closed' ORDER BY c.created_at, c.id"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let rows = statement
                .query_map([site_id, visitor_id], conversation_from_row)
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn recent_closed_conversation_of_visitor(
        &self,
        site_id: &str,
        visitor_id: &str,
        since: i64,
    ) -> Result<Option<Conversation>, StoreError> {
        let (site_id, visitor_id) = (site_id.to_owned(), visitor_id.to_owned());
        self.read(move |connection| {
            let sql = format!(
                "{CONVERSATION_SELECT} WHERE c.site_id = ?1 AND c.visitor_id = ?2 \
                 AND c.state = 'closed' AND c.closed_at >= ?3 \
                 AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.site_id = ?1 \
                     AND o.visitor_id = ?2 AND o.state != 'closed' \
                     AND o.created_at > c.created_at) \
                 ORDER BY c.closed_at DESC, c.id DESC LIMIT 1"
            );
            connection
                .prepare_cached(&sql)
                .map_err(map_err)?
                .query_row(params![site_id, visitor_id, since], conversation_from_row)
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn set_contact_asked(&self, conversation: &str, at: i64) -> Result<(), StoreError> {
        let conversation = conversation.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE conversations SET contact_asked_at = ?2 WHERE id = ?1",
                        params![conversation, at],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    async fn contact_pending(&self, conversation: &str) -> Result<bool, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT contact_asked_at IS NOT NULL FROM conversations WHERE id = ?1",
                    [conversation],
                    |row| row.get::<_, bool>(0),
                )
                .optional()
                .map(|pending| pending.unwrap_or(false))
                .map_err(map_err)
        })
        .await
    }

    async fn contact_of_conversation(
        &self,
        conversation: &str,
    ) -> Result<Option<OfflineRequest>, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            let sql = format!(
                "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests \
                 WHERE conversation_id = ?1 ORDER BY id DESC LIMIT 1"
            );
            connection
                .query_row(&sql, [conversation], offline_request_from_row)
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn open_conversations_of_sites(
        &self,
        site_ids: &[String],
        limit: u32,
    ) -> Result<Vec<Conversation>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let sql = format!(
                "{CONVERSATION_SELECT} WHERE c.site_id = ?1 AND c.state != 'closed' \
                 ORDER BY c.updated_at DESC LIMIT ?2"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map(params![site_id, limit], conversation_from_row)
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            all.sort_by_key(|conversation: &Conversation| {
                std::cmp::Reverse(conversation.updated_at)
            });
            all.truncate(limit as usize);
            Ok(all)
        })
        .await
    }

    async fn identify_visitor(
        &self,
        visitor_id: &str,
        identity: IdentityUpdate,
    ) -> Result<(), StoreError> {
        let visitor_id = visitor_id.to_owned();
        self.writer
            .write(move |connection| {
                let verified =
                    serde_json::to_string(&identity.verified).unwrap_or_else(|_| "[]".into());
                let attributes = identity
                    .attributes
                    .as_ref()
                    .and_then(|attributes| serde_json::to_string(attributes).ok());
                let changed = connection
                    .execute(
                        "UPDATE visitors SET external_id = ?2, name = coalesce(?3, name), \
                         email = coalesce(?4, email), verified = ?5, \
                         attributes = coalesce(?6, attributes) WHERE id = ?1",
                        params![
                            visitor_id,
                            identity.external_id,
                            identity.name,
                            identity.email,
                            verified,
                            attributes
                        ],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn visitor_external_id(&self, visitor_id: &str) -> Result<Option<String>, StoreError> {
        let visitor_id = visitor_id.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT external_id FROM visitors WHERE id = ?1",
                    [visitor_id],
                    |row| row.get::<_, Option<String>>(0),
                )
                .optional()
                .map(Option::flatten)
                .map_err(map_err)
        })
        .await
    }

    async fn update_site_settings(&self, site_id: &str, settings: &str) -> Result<(), StoreError> {
        let (site_id, settings) = (site_id.to_owned(), settings.to_owned());
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE sites SET settings = ?2 WHERE id = ?1",
                        [site_id, settings],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn transition(&self, transition: Transition) -> Result<Transitioned, StoreError> {
        self.writer
            .write(move |connection| transition_in(connection, transition))
            .await
    }

    async fn transition_queued(
        &self,
        transition: Transition,
    ) -> Result<PendingTransition, StoreError> {
        let answer = self
            .writer
            .enqueue(move |connection| transition_in(connection, transition))
            .await?;
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::ShutDown)?
        }))
    }

    async fn mark_read(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.execute(
            "UPDATE conversations SET unread = 0 WHERE id = ?1 AND unread != 0",
            [id],
        )
        .await
        .map(|changed| changed > 0)
    }

    async fn set_priority(&self, id: &str, priority: i32) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.execute(
            "UPDATE conversations SET priority = ?2 WHERE id = ?1",
            (id, priority),
        )
        .await
        .map(|_| ())
    }

    async fn idle_conversations(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Conversation>, StoreError> {
        self.read(move |connection| {
            let sql = format!(
                "{CONVERSATION_SELECT} WHERE c.state != 'closed' AND c.updated_at < ?1 \
                 ORDER BY c.updated_at LIMIT ?2"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let rows = statement
                .query_map(params![before, limit], conversation_from_row)
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn conversations_in_state(
        &self,
        state: ConversationState,
    ) -> Result<Vec<Conversation>, StoreError> {
        self.read(move |connection| {
            let sql =
                format!("{CONVERSATION_SELECT} WHERE c.state = ?1 ORDER BY c.updated_at, c.id");
            let mut statement = connection.prepare(&sql).map_err(map_err)?;
            let rows = statement
                .query_map([state.as_str()], conversation_from_row)
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn find_conversations(
        &self,
        site_ids: &[String],
        filter: ConversationFilter,
    ) -> Result<Vec<Conversation>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut sql = format!("{CONVERSATION_SELECT} WHERE c.site_id = ?1");
            match filter.state {
                Some(state) => sql.push_str(&format!(" AND c.state = '{}'", state.as_str())),
                None if filter.include_closed => {}
                None => sql.push_str(" AND c.state != 'closed'"),
            }
            if filter.agent_id.is_some() {
                sql.push_str(" AND c.agent_id = ?2");
            } else {
                sql.push_str(" AND ?2 IS NULL");
            }
            if filter.query.is_some() {
                sql.push_str(
                    " AND (v.name LIKE ?3 ESCAPE '\\' OR v.email LIKE ?3 ESCAPE '\\' OR EXISTS \
                     (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.kind != 'event' \
                     AND m.text LIKE ?3 ESCAPE '\\'))",
                );
            } else {
                sql.push_str(" AND ?3 IS NULL");
            }
            sql.push_str(" ORDER BY c.updated_at DESC LIMIT ?4");
            let pattern = filter.query.as_ref().map(|query| {
                let escaped = query
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                format!("%{escaped}%")
            });
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map(
                        params![site_id, filter.agent_id, pattern, filter.limit.max(1)],
                        conversation_from_row,
                    )
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            all.sort_by_key(|conversation: &Conversation| std::cmp::Reverse(conversation.updated_at));
            all.truncate(filter.limit.max(1) as usize);
            Ok(all)
        })
        .await
    }

    async fn visitor(&self, visitor_id: &str) -> Result<Option<Visitor>, StoreError> {
        let visitor_id = visitor_id.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {VISITOR_COLUMNS} FROM visitors WHERE id = ?1"),
                    [visitor_id],
                    visitor_from_row,
                )
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn conversations_of_visitor(
        &self,
        visitor_id: &str,
    ) -> Result<Vec<Conversation>, StoreError> {
        let visitor_id = visitor_id.to_owned();
        self.read(move |connection| {
            let sql = format!(
                "{CONVERSATION_SELECT} WHERE c.visitor_id = ?1 ORDER BY c.created_at DESC LIMIT 50"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let rows = statement
                .query_map([visitor_id], conversation_from_row)
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn timings(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<Timing>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT c.id, c.created_at, c.handed_off_at, c.first_response_at, c.closed_at, r.score \
                     FROM conversations c LEFT JOIN ratings r ON r.conversation_id = c.id \
                     WHERE c.site_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map(params![site_id, from, to], |row| {
                        Ok(Timing {
                            conversation: row.get(0)?,
                            created_at: row.get(1)?,
                            handed_off_at: row.get(2)?,
                            first_response_at: row.get(3)?,
                            closed_at: row.get(4)?,
                            score: row.get::<_, Option<i64>>(5)?.map(|score| score as u8),
                        })
                    })
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
                // Conversations the retention sweep or an erasure deleted.
                crate::maintenance::archived_timings(connection, &site_id, from, to, &mut all)?;
            }
            Ok(all)
        })
        .await
    }

    async fn record_bot_turn(&self, turn: BotTurn) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO bot_turns (conversation_id, site_id, rule_id, intent, decision, \
                         score, lang, question, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .map_err(map_err)?
                    .execute(params![
                        turn.conversation,
                        turn.site_id,
                        turn.rule_id,
                        turn.intent,
                        turn.decision,
                        turn.score as f64,
                        turn.lang,
                        turn.question,
                        turn.at
                    ])
                    .map(|_| ())
                    .map_err(map_err)
            })
            .await
    }

    async fn recent_bot_turns(
        &self,
        conversation: &str,
        n: u32,
    ) -> Result<Vec<RecentTurn>, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT decision, intent, question FROM bot_turns WHERE conversation_id = ?1 \
                     ORDER BY id DESC LIMIT ?2",
                )
                .map_err(map_err)?;
            let rows = statement
                .query_map(params![conversation, n], |row| {
                    Ok(RecentTurn {
                        decision: row.get(0)?,
                        intent: row.get(1)?,
                        question: row.get(2)?,
                    })
                })
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn create_offline_request(
        &self,
        request: OfflineRequest,
    ) -> Result<(i64, bool), StoreError> {
        self.writer
            .write(move |connection| {
                // The details show on the visitor's record, so on the conversation too;
                // what a signed identity vouched for stays.
                connection
                    .execute(
                        "UPDATE visitors SET \
                         name = CASE WHEN ?2 IS NOT NULL AND instr(verified, '\"name\"') = 0 \
                                     THEN ?2 ELSE name END, \
                         email = CASE WHEN ?3 IS NOT NULL AND instr(verified, '\"email\"') = 0 \
                                      THEN ?3 ELSE email END, \
                         phone = coalesce(?4, phone) WHERE id = ?1",
                        params![
                            request.visitor_id,
                            request.name,
                            request.email,
                            request.phone
                        ],
                    )
                    .map_err(map_err)?;
                if let Some(conversation) = &request.conversation {
                    connection
                        .execute(
                            "UPDATE conversations SET contact_asked_at = NULL WHERE id = ?1",
                            [conversation],
                        )
                        .map_err(map_err)?;
                }
                let open: Option<i64> = connection
                    .query_row(
                        "SELECT id FROM offline_requests WHERE site_id = ?1 AND visitor_id = ?2 \
                         AND done_at IS NULL",
                        params![request.site_id, request.visitor_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(map_err)?;
                if let Some(id) = open {
                    connection
                        .execute(
                            "UPDATE offline_requests SET conversation_id = coalesce(?2, conversation_id), \
                             name = coalesce(?3, name), email = coalesce(?4, email), \
                             phone = coalesce(?5, phone), \
                             message = CASE WHEN ?6 IS NULL OR instr(message, ?6) > 0 THEN message \
                                            WHEN message IS NULL THEN ?6 \
                                            ELSE substr(message || char(10) || char(10) || ?6, 1, 8000) END, \
                             created_at = ?7 WHERE id = ?1",
                            params![
                                id,
                                request.conversation,
                                request.name,
                                request.email,
                                request.phone,
                                request.message,
                                request.created_at
                            ],
                        )
                        .map_err(map_err)?;
                    return Ok((id, false));
                }
                connection
                    .execute(
                        "INSERT INTO offline_requests (site_id, visitor_id, conversation_id, name, \
                         email, phone, message, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            request.site_id,
                            request.visitor_id,
                            request.conversation,
                            request.name,
                            request.email,
                            request.phone,
                            request.message,
                            request.created_at
                        ],
                    )
                    .map_err(map_err)?;
                Ok((connection.last_insert_rowid(), true))
            })
            .await
    }

    async fn offline_requests(
        &self,
        site_ids: &[String],
        page: Page,
    ) -> Result<Vec<OfflineRequest>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests WHERE site_id = ?1 \
                     AND id < ?2 ORDER BY id DESC LIMIT ?3"
                ))
                .map_err(map_err)?;
            let before = page.before.unwrap_or(i64::MAX);
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map(
                        params![site_id, before, page.limit],
                        offline_request_from_row,
                    )
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            all.sort_by_key(|request| std::cmp::Reverse(request.id));
            all.truncate(page.limit as usize);
            Ok(all)
        })
        .await
    }

    async fn rate(
        &self,
        conversation: &str,
        score: u8,
        comment: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (conversation, comment) = (conversation.to_owned(), comment.map(str::to_owned));
        self.execute(
            "INSERT INTO ratings (conversation_id, score, comment, at) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (conversation_id) DO UPDATE SET score = excluded.score, \
                         comment = excluded.comment, at = excluded.at",
            (conversation, score, comment, now),
        )
        .await
        .map(|_| ())
    }

    async fn rating(&self, conversation: &str) -> Result<Option<(u8, Option<String>)>, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT score, comment FROM ratings WHERE conversation_id = ?1",
                    [conversation],
                    |row| Ok((row.get::<_, i64>(0)? as u8, row.get(1)?)),
                )
                .optional()
                .map_err(map_err)
        })
        .await
    }

    async fn create_alert(&self, alert: Alert) -> Result<Option<i64>, StoreError> {
        self.writer
            .write(move |connection| {
                let inserted = connection
                    .execute(
                        "INSERT OR IGNORE INTO alerts (site_id, conversation_id, kind, detail, at) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            alert.site_id,
                            alert.conversation,
                            alert.kind,
                            alert.detail,
                            alert.at
                        ],
                    )
                    .map_err(map_err)?;
                Ok((inserted > 0).then(|| connection.last_insert_rowid()))
            })
            .await
    }

    async fn alerts(&self, site_ids: &[String], page: Page) -> Result<Vec<Alert>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, site_id, conversation_id, kind, detail, at, acknowledged_at FROM alerts \
                     WHERE site_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                )
                .map_err(map_err)?;
            let before = page.before.unwrap_or(i64::MAX);
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map(params![site_id, before, page.limit], |row| {
                        Ok(Alert {
                            id: row.get(0)?,
                            site_id: row.get(1)?,
                            conversation: row.get(2)?,
                            kind: row.get(3)?,
                            detail: row.get(4)?,
                            at: row.get(5)?,
                            acknowledged_at: row.get(6)?,
                        })
                    })
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            all.sort_by_key(|alert| std::cmp::Reverse(alert.id));
            all.truncate(page.limit as usize);
            Ok(all)
        })
        .await
    }

    async fn bot_report(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<BotReport, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut report = BotReport::default();
            let mut reasons: std::collections::BTreeMap<String, u64> = Default::default();
            let mut unanswered: std::collections::HashMap<String, u64> = Default::default();
            for site_id in &site_ids {
                let (total, with_bot, deflected): (i64, i64, i64) = connection
                    .query_row(
                        "SELECT count(*), \
                         sum(EXISTS (SELECT 1 FROM bot_turns b WHERE b.conversation_id = c.id)), \
                         sum(c.state = 'closed' AND c.handed_off_at IS NULL AND EXISTS (SELECT 1 FROM bot_turns b WHERE b.conversation_id = c.id AND b.decision = 'answer')) \
                         FROM conversations c WHERE c.site_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3",
                        params![site_id, from, to],
                        |row| Ok((row.get(0)?, row.get::<_, Option<i64>>(1)?.unwrap_or(0), row.get::<_, Option<i64>>(2)?.unwrap_or(0))),
                    )
                    .map_err(map_err)?;
                report.conversations += total as u64;
                report.bot_conversations += with_bot as u64;
                report.deflected += deflected as u64;
                let mut statement = connection
                    .prepare_cached(
                        "SELECT handoff_reason, count(*) FROM conversations WHERE site_id = ?1 \
                         AND handed_off_at IS NOT NULL AND created_at >= ?2 AND created_at < ?3 GROUP BY 1",
                    )
                    .map_err(map_err)?;
                let rows = statement
                    .query_map(params![site_id, from, to], |row| {
                        Ok((row.get::<_, Option<String>>(0)?.unwrap_or_default(), row.get::<_, i64>(1)?))
                    })
                    .map_err(map_err)?;
                for row in rows {
                    let (reason, count) = row.map_err(map_err)?;
                    *reasons.entry(reason).or_default() += count as u64;
                }
                // A miss, and the turn that handed off because the bot kept missing
                // (`misses`) or was asked the same again (`repeated`): the question
                // that made it give up is one it could not answer either.
                let mut statement = connection
                    .prepare_cached(&format!(
                        "SELECT lower(trim(b.question)), count(*) FROM bot_turns b \
                         WHERE b.site_id = ?1 AND b.at >= ?2 AND b.at < ?3 AND {UNANSWERED_TURN} \
                         GROUP BY 1"
                    ))
                    .map_err(map_err)?;
                let rows = statement
                    .query_map(params![site_id, from, to], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })
                    .map_err(map_err)?;
                for row in rows {
                    let (question, count) = row.map_err(map_err)?;
                    *unanswered.entry(question).or_default() += count as u64;
                }
                // Conversations the retention sweep or an erasure deleted.
                crate::maintenance::add_archived_to_bot_report(
                    connection, site_id, from, to, &mut report, &mut reasons,
                )?;
            }
            report.handoffs_by_reason = reasons.into_iter().collect();
            let mut unanswered: Vec<(String, u64)> = unanswered.into_iter().collect();
            unanswered.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            unanswered.truncate(50);
            report.unanswered = unanswered;
            Ok(report)
        })
        .await
    }

    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        let marks = self.webhook_sites.clone();
        self.writer
            .write(move |connection| append_in(connection, message, Some(&marks)))
            .await
    }

    async fn append_queued(&self, message: NewMessage) -> Result<crate::PendingAppend, StoreError> {
        let marks = self.webhook_sites.clone();
        let answer = self
            .writer
            .enqueue_unguarded(move |connection| append_in(connection, message, Some(&marks)))
            .await?;
        Ok(crate::PendingAppend::new(async move {
            answer.await.map_err(|_| StoreError::ShutDown)?
        }))
    }

    async fn messages_after(
        &self,
        conversation: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 \
                 ORDER BY seq LIMIT ?3"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let rows = statement
                .query_map(
                    params![conversation, after.min(i64::MAX as u64) as i64, limit],
                    message_from_row,
                )
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn messages_before(
        &self,
        conversation: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq < ?2 \
                 ORDER BY seq DESC LIMIT ?3"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let mut rows = statement
                .query_map(
                    params![conversation, before.min(i64::MAX as u64) as i64, limit],
                    message_from_row,
                )
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // The writer handles jobs in order, so an empty job resolves after every write
        // queued before it has been committed.
        self.writer.write(|_| Ok(())).await
    }

    fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    // --- operations (the SQL is in `maintenance`) ---

    async fn retention_batch(
        &self,
        site_id: &str,
        closed_before: i64,
        budget: RetentionBudget,
    ) -> Result<RetentionBatch, StoreError> {
        let site_id = site_id.to_owned();
        self.writer
            .write(move |connection| {
                // Zero what is deleted where that costs no extra writes.
                crate::maintenance::with_secure_delete(connection, "FAST", || {
                    crate::maintenance::retention_batch(connection, &site_id, closed_before, budget)
                })
            })
            .await
    }

    async fn sweep_visitors(
        &self,
        cutoffs: &[(String, i64)],
        after: i64,
        scan: u32,
    ) -> Result<VisitorSweep, StoreError> {
        let cutoffs = cutoffs.to_vec();
        self.writer
            .write(move |connection| {
                crate::maintenance::sweep_visitors(connection, &cutoffs, after, scan)
            })
            .await
    }

    async fn find_visitors(&self, selector: &VisitorSelector) -> Result<Vec<String>, StoreError> {
        let selector = selector.clone();
        self.read(move |connection| crate::maintenance::find_visitors(connection, &selector))
            .await
    }

    async fn export_visitor(&self, visitor_id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        let visitor_id = visitor_id.to_owned();
        self.read(move |connection| {
            // One read transaction: the export is a consistent snapshot.
            connection.execute_batch("BEGIN").map_err(map_err)?;
            let record = crate::maintenance::export_visitor(connection, &visitor_id);
            let _ = connection.execute_batch("COMMIT");
            record
        })
        .await
    }

    async fn erase_visitor(
        &self,
        visitor_id: &str,
        note: AuditNote,
    ) -> Result<Erasure, StoreError> {
        let visitor_id = visitor_id.to_owned();
        self.writer
            .write(move |connection| {
                crate::maintenance::erase_visitor(connection, &visitor_id, &note)
            })
            .await
    }

    async fn record_audit(&self, entry: NewAudit) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| crate::maintenance::insert_audit(connection, &entry))
            .await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |connection| crate::maintenance::audit_log(connection, limit))
            .await
    }

    // --- REST API v1 (issue 17): crate::api_tokens, crate::api_pages, crate::contacts ---
    async fn create_api_token(
        &self,
        token: crate::NewApiToken,
    ) -> Result<crate::ApiToken, StoreError> {
        self.create_api_token_impl(token).await
    }
    async fn api_tokens(&self, site_id: &str) -> Result<Vec<crate::ApiToken>, StoreError> {
        self.api_tokens_impl(site_id).await
    }
    async fn api_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<crate::ApiToken>, StoreError> {
        self.api_token_by_hash_impl(token_hash).await
    }
    async fn revoke_api_token(&self, site_id: &str, id: &str, now: i64) -> Result<(), StoreError> {
        self.revoke_api_token_impl(site_id, id, now).await
    }
    async fn touch_api_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.touch_api_token_impl(id, now).await
    }
    async fn conversation_page(
        &self,
        site_id: &str,
        page: crate::ConversationPage,
    ) -> Result<Vec<Conversation>, StoreError> {
        self.conversation_page_impl(site_id, page).await
    }
    async fn create_contact(
        &self,
        contact: crate::NewContact,
    ) -> Result<crate::Contact, StoreError> {
        self.create_contact_impl(contact).await
    }
    async fn update_contact(
        &self,
        site_id: &str,
        id: &str,
        update: crate::ContactUpdate,
    ) -> Result<crate::Contact, StoreError> {
        self.update_contact_impl(site_id, id, update).await
    }
    async fn contact(&self, site_id: &str, id: &str) -> Result<Option<crate::Contact>, StoreError> {
        self.contact_impl(site_id, id).await
    }
    async fn contact_by_external_id(
        &self,
        site_id: &str,
        external_id: &str,
    ) -> Result<Option<crate::Contact>, StoreError> {
        self.contact_by_external_id_impl(site_id, external_id).await
    }
    async fn find_contacts(
        &self,
        site_id: &str,
        search: crate::ContactSearch,
    ) -> Result<Vec<crate::Contact>, StoreError> {
        self.find_contacts_impl(site_id, search).await
    }
    async fn contact_changes(
        &self,
        site_id: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<crate::AttributeChange>, StoreError> {
        self.contact_changes_impl(site_id, id, limit).await
    }
    // --- webhooks (issue 17): see `crate::webhooks` ---
    async fn create_webhook_endpoint(
        &self,
        endpoint: crate::NewWebhookEndpoint,
    ) -> Result<crate::WebhookEndpoint, StoreError> {
        self.webhook_create(endpoint).await
    }
    async fn webhook_endpoints(
        &self,
        site_ids: &[String],
    ) -> Result<Vec<crate::WebhookEndpoint>, StoreError> {
        self.webhook_list(site_ids).await
    }
    async fn webhook_endpoint(
        &self,
        id: &str,
    ) -> Result<Option<crate::WebhookEndpoint>, StoreError> {
        self.webhook_get(id).await
    }
    async fn update_webhook_endpoint(
        &self,
        id: &str,
        update: crate::WebhookEndpointUpdate,
    ) -> Result<crate::WebhookEndpoint, StoreError> {
        self.webhook_update(id, update).await
    }
    async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), StoreError> {
        self.webhook_delete(id).await
    }
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_expires_at: i64,
    ) -> Result<crate::WebhookEndpoint, StoreError> {
        self.webhook_rotate(id, secret, previous_expires_at).await
    }
    async fn webhook_sites(&self) -> Result<Vec<String>, StoreError> {
        SqliteStore::webhook_sites(self).await
    }
    fn remember_webhook_sites(&self, sites: &[String]) {
        self.webhook_remember_sites(sites);
    }
    async fn webhook_pending_messages(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, Message)>, StoreError> {
        self.webhook_pending(limit).await
    }
    async fn enqueue_webhook_event(
        &self,
        event: crate::WebhookEvent,
    ) -> Result<crate::PendingWebhook, StoreError> {
        self.webhook_enqueue(event).await
    }
    async fn due_webhook_deliveries(
        &self,
        now: i64,
        settle_ms: i64,
        limit: u32,
    ) -> Result<Vec<crate::DueDelivery>, StoreError> {
        self.webhook_due(now, settle_ms, limit).await
    }
    async fn next_webhook_due(&self, settle_ms: i64) -> Result<Option<i64>, StoreError> {
        self.webhook_next_due(settle_ms).await
    }
    async fn record_webhook_attempt(
        &self,
        attempt: crate::WebhookAttempt,
        policy: crate::DisablePolicy,
    ) -> Result<Option<crate::WebhookEndpoint>, StoreError> {
        self.webhook_record(attempt, policy).await
    }
    async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<crate::WebhookDelivery>, StoreError> {
        SqliteStore::webhook_deliveries(self, endpoint_id, before, limit).await
    }
    async fn webhook_delivery(
        &self,
        id: i64,
    ) -> Result<Option<crate::WebhookDelivery>, StoreError> {
        SqliteStore::webhook_delivery(self, id).await
    }
    async fn redeliver_webhook(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.webhook_redeliver(id, now).await
    }
    // --- e-mail (issue 17): in crate::email ---
    async fn email_set_channel(
        &self,
        conversation: &str,
        channel: crate::Channel,
    ) -> Result<(), StoreError> {
        self.email_set_channel_impl(conversation, channel).await
    }
    async fn email_channel(
        &self,
        conversation: &str,
    ) -> Result<Option<crate::Channel>, StoreError> {
        self.email_channel_impl(conversation).await
    }
    async fn email_record_message(&self, record: crate::EmailRecord) -> Result<(), StoreError> {
        self.email_record_message_impl(record).await
    }
    async fn email_thread_of(
        &self,
        message_ids: Vec<String>,
    ) -> Result<Option<String>, StoreError> {
        self.email_thread_of_impl(message_ids).await
    }
    async fn email_thread_ids(
        &self,
        conversation: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.email_thread_ids_impl(conversation, limit).await
    }
    async fn email_record_event(&self, event: crate::EmailEvent) -> Result<(), StoreError> {
        self.email_record_event_impl(event).await
    }
    async fn email_events(&self, limit: u32) -> Result<Vec<crate::EmailEvent>, StoreError> {
        self.email_events_impl(limit).await
    }
    async fn email_failing(&self, address: &str) -> Result<bool, StoreError> {
        self.email_failing_impl(address).await
    }
    async fn email_visitor(
        &self,
        site_id: &str,
        email: &str,
        name: Option<String>,
        new_id: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        self.email_visitor_impl(site_id, email, name, new_id, now)
            .await
    }
    async fn email_schedule_unseen(
        &self,
        conversation: &str,
        seq: u64,
        due_at: i64,
    ) -> Result<(), StoreError> {
        self.email_schedule_unseen_impl(conversation, seq, due_at)
            .await
    }
    async fn email_visitor_seen(&self, conversation: &str, seq: u64) -> Result<(), StoreError> {
        self.email_visitor_seen_impl(conversation, seq).await
    }
    async fn email_due_unseen(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<crate::UnseenDue>, StoreError> {
        self.email_due_unseen_impl(now, limit).await
    }
    async fn email_request_transcript(
        &self,
        request: crate::TranscriptRequest,
        now: i64,
    ) -> Result<(), StoreError> {
        self.email_request_transcript_impl(request, now).await
    }
    async fn email_take_transcript(
        &self,
        conversation: &str,
    ) -> Result<Option<crate::TranscriptRequest>, StoreError> {
        self.email_take_transcript_impl(conversation).await
    }
    async fn email_take_missed(
        &self,
        queued_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.email_take_missed_impl(queued_before, now, limit).await
    }
    // --- visitor events (issue 19): crate::visitor_events ---
    async fn record_visitor_event(&self, event: crate::NewVisitorEvent) -> Result<(), StoreError> {
        self.record_visitor_event_impl(event).await
    }
    async fn visitor_events(
        &self,
        visitor_ids: Vec<String>,
        limit: u32,
    ) -> Result<Vec<crate::VisitorEvent>, StoreError> {
        self.visitor_events_impl(visitor_ids, limit).await
    }
    // --- customer timeline (issue 19): crate::timeline ---
    async fn customer_timeline(
        &self,
        query: crate::TimelineQuery,
    ) -> Result<Option<crate::Timeline>, StoreError> {
        self.customer_timeline_impl(query).await
    }
    // --- key accounts (issue 19) ---
    async fn key_account_mark(&self, conversation: &str, rule: &str) -> Result<(), StoreError> {
        self.key_account_mark_impl(conversation, rule).await
    }
    async fn key_account_first_responses(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.key_account_first_responses_impl(site_ids, from, to)
            .await
    }
    // --- proactive triggers (issue 19): crate::trigger_counts ---
    async fn trigger_counts(
        &self,
        site_id: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<crate::TriggerCount>, StoreError> {
        self.trigger_counts_impl(site_id.to_owned(), since, until)
            .await
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    async fn fixture() -> (tempfile::TempDir, SqliteStore, Conversation) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        let conversation = store
            .create_conversation(&site.id, "v_1", ConversationState::Bot, 1)
            .await
            .unwrap();
        (dir, store, conversation)
    }

    /// Under writes that never pause, the checkpointer alone never catches up and the
    /// WAL would grow without bound; the writer finishing the checkpoint restarts it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_steady_writes() {
        let (dir, store, _) = fixture().await;
        let site = store.create_site("Load", &["*".into()]).await.unwrap();
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        let mut conversations = Vec::new();
        for _ in 0..64 {
            let created = store
                .create_conversation(&site.id, "v_1", ConversationState::Queued, 1)
                .await
                .unwrap();
            conversations.push(created.id);
        }
        let body = "x".repeat(2000);
        let wal = dir.path().join("t.db-wal");
        let (mut written, mut largest) = (0_u64, 0_u64);
        // 160 MB of text, in pipelined rounds (most of it goes through the WAL).
        for round in 0..1280 {
            let mut pending = Vec::new();
            for (index, conversation) in conversations.iter().enumerate() {
                let client_id = format!("r{round}-{index}");
                pending.push(
                    store
                        .append_queued(text(conversation, Some(&client_id), &body))
                        .await
                        .unwrap(),
                );
            }
            for answer in pending {
                answer.await.unwrap();
                written += body.len() as u64;
            }
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        assert!(written >= 160_000_000);
        assert!(
            largest < 96 << 20,
            "the WAL reached {largest} bytes after {written} bytes of messages: it never restarted"
        );
    }

    #[tokio::test]
    async fn sequences_are_gap_free_and_resends_are_idempotent() {
        let (_dir, store, conversation) = fixture().await;
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
        let mut seqs: Vec<u64> = Vec::new();
        for handle in handles {
            seqs.push(handle.await.unwrap().message.seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        let again = store
            .append(text(&conversation.id, Some("m7"), "hi"))
            .await
            .unwrap();
        assert!(again.duplicate);
        let stored = store
            .messages_after(&conversation.id, 0, 1000)
            .await
            .unwrap();
        assert_eq!(stored.len(), 200);
        assert_eq!(
            stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=200).collect::<Vec<_>>()
        );
        assert!(
            store
                .metrics()
                .batches
                .load(std::sync::atomic::Ordering::Relaxed)
                < 200
        );
    }

    #[tokio::test]
    async fn a_failing_job_does_not_spoil_its_batch() {
        let (_dir, store, conversation) = fixture().await;
        let good = store.append(text(&conversation.id, Some("a"), "x"));
        let bad = store.append(text("c_missing", Some("b"), "x"));
        let (good, bad) = tokio::join!(good, bad);
        assert_eq!(good.unwrap().message.seq, 1);
        assert!(matches!(bad, Err(StoreError::NotFound)));
    }

    #[tokio::test]
    async fn closed_conversations_refuse_text_but_keep_events() {
        let (_dir, store, conversation) = fixture().await;
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
        let mut event = text(&conversation.id, None, "closed");
        event.kind = MessageKind::Event;
        assert_eq!(store.append(event).await.unwrap().message.seq, 1);
    }

    #[tokio::test]
    async fn sessions_expire_and_emails_are_unique() {
        let (_dir, store, _) = fixture().await;
        let agent = store
            .create_agent(NewAgent {
                email: "a@x.test".into(),
                name: "A".into(),
                role: AgentRole::Agent,
                password_hash: "h".into(),
                all_sites: false,
                site_ids: vec![],
                capacity: None,
                departments: vec![],
            })
            .await
            .unwrap();
        let again = store
            .create_agent(NewAgent {
                email: "A@X.test".into(),
                name: "B".into(),
                role: AgentRole::Agent,
                password_hash: "h".into(),
                all_sites: false,
                site_ids: vec![],
                capacity: None,
                departments: vec![],
            })
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))));
        store.create_session("t1", &agent.id, 100).await.unwrap();
        assert_eq!(
            store
                .session_agent("t1", 50)
                .await
                .unwrap()
                .map(|found| found.expires_at),
            Some(100)
        );
        assert!(store.session_agent("t1", 150).await.unwrap().is_none());
        // (Creating a session deletes the ones expired by the clock: t1 goes.)
        let far = i64::MAX / 2;
        store.create_session("t2", &agent.id, far).await.unwrap();
        store
            .create_session("t3", &agent.id, far + 1)
            .await
            .unwrap();
        store
            .create_session("t4", &agent.id, now_ms() + 10)
            .await
            .unwrap();
        let live = store
            .sessions_of_agent(&agent.id, now_ms() + 20)
            .await
            .unwrap();
        assert_eq!(live.len(), 2, "the expired one is not listed: {live:?}");
        store
            .delete_sessions_of_agent(&agent.id, Some("t3"))
            .await
            .unwrap();
        let live = store.sessions_of_agent(&agent.id, 0).await.unwrap();
        assert_eq!(
            live.iter()
                .map(|s| s.token_hash.as_str())
                .collect::<Vec<_>>(),
            vec!["t3"]
        );
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

    /// Regression (control plane): an assignment decided before a close was committed
    /// after it, and its unconditional UPDATE reopened the closed conversation.
    #[tokio::test]
    async fn transitions_are_compare_and_set_with_their_system_line() {
        let (_dir, store, conversation) = fixture().await;
        let mut handoff = Transition::new(
            &conversation.id,
            &[ConversationState::Bot],
            ConversationState::Queued,
            5,
        );
        handoff.department = Some("billing".into());
        handoff.priority = Some(3);
        handoff.handoff_reason = Some("requested".into());
        handoff.event = Some(SystemEvent::new(salam_protocol::EventCode::Queued, &[]));
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
        assert_eq!(queued.queued_at, Some(5));
        let event = event.expect("the system line is stored with the change");
        assert_eq!((event.seq, event.kind), (1, MessageKind::Event));
        assert_eq!(event.text, "waiting for a person");
        // The code is stored with the line: a replay carries it.
        let replayed = store.messages_after(&conversation.id, 0, 10).await.unwrap();
        assert_eq!(
            replayed[0].event.as_ref().map(|event| event.code),
            Some(salam_protocol::EventCode::Queued)
        );
        // A second hand-off from `bot` is stale: nothing changes, no line is written.
        assert!(matches!(
            store.transition(handoff).await.unwrap(),
            Transitioned::Stale(found) if found.state == ConversationState::Queued
        ));
        let closed = Transition::new(
            &conversation.id,
            &[ConversationState::Queued, ConversationState::Assigned],
            ConversationState::Closed,
            6,
        );
        assert!(matches!(
            store.transition(closed).await.unwrap(),
            Transitioned::Applied { .. }
        ));
        let mut late_assignment = Transition::new(
            &conversation.id,
            &[ConversationState::Queued],
            ConversationState::Assigned,
            7,
        );
        late_assignment.agent_id = Some("a_1".into());
        late_assignment.event = Some(SystemEvent::new(
            salam_protocol::EventCode::Joined,
            &[("agent", "Sara")],
        ));
        assert!(matches!(
            store.transition(late_assignment).await.unwrap(),
            Transitioned::Stale(found) if found.state == ConversationState::Closed
        ));
        let history = store.messages_after(&conversation.id, 0, 10).await.unwrap();
        assert_eq!(history.len(), 1, "the refused assignment wrote no line");
        assert!(matches!(
            store
                .transition(Transition::new(
                    "c_missing",
                    &[ConversationState::Bot],
                    ConversationState::Closed,
                    8
                ))
                .await,
            Err(StoreError::NotFound)
        ));
    }

    async fn sara(store: &SqliteStore) -> Agent {
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

    #[tokio::test]
    async fn bot_lines_wait_for_the_bot_state() {
        let (_dir, store, conversation) = fixture().await;
        let sara = sara(&store).await;
        let mut bot_line = text(&conversation.id, None, "Our hours are 9 to 5.");
        bot_line.author.kind = AuthorKind::Bot;
        bot_line.only_in = Some(ConversationState::Bot);
        assert!(store.append(bot_line.clone()).await.is_ok());
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
    }

    #[tokio::test]
    async fn appends_move_the_summary_in_the_same_statement() {
        let (_dir, store, conversation) = fixture().await;
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
        assert_eq!(
            store.append(note).await.unwrap().unread,
            2,
            "a note reads nothing"
        );
        let reply = store
            .append(agent_text(&conversation.id, "a1", "Sorry! It ships today."))
            .await
            .unwrap();
        assert_eq!(reply.unread, 0, "an agent's reply clears the count");
        let found = store.conversation(&conversation.id).await.unwrap().unwrap();
        let preview = found.preview.expect("a preview");
        assert_eq!(
            (preview.author, preview.text.as_str()),
            (AuthorKind::Agent, "Sorry! It ships today.")
        );
        store
            .append(agent_text(&conversation.id, "a2", "Anything else?"))
            .await
            .unwrap();
        let timings = store
            .timings(std::slice::from_ref(&found.site_id), 0, 100)
            .await
            .unwrap();
        assert_eq!(
            timings[0].first_response_at,
            Some(1),
            "kept from the first reply"
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
        let found = store.conversation(&conversation.id).await.unwrap().unwrap();
        assert_eq!(found.unread, 0);
    }

    #[tokio::test]
    async fn messages_before_pages_backwards() {
        let (_dir, store, conversation) = fixture().await;
        for index in 0..10 {
            store
                .append(text(&conversation.id, Some(&format!("m{index}")), "x"))
                .await
                .unwrap();
        }
        let page = store.messages_before(&conversation.id, 8, 3).await.unwrap();
        assert_eq!(
            page.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        let last = store
            .messages_before(&conversation.id, u64::MAX, 4)
            .await
            .unwrap();
        assert_eq!(
            last.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );
    }

    /// A database written by the first schema opens, migrates, and keeps its admins on
    /// every site.
    #[tokio::test]
    async fn version_one_databases_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(crate::schema::FIRST_VERSION)
                .unwrap();
            connection
                .execute_batch(
                    "PRAGMA user_version = 1; \
                     INSERT INTO agents (id, email, name, role, password_hash, created_at) \
                     VALUES ('a_admin', 'boss@x.test', 'Boss', 'admin', 'h', 1), \
                            ('a_agent', 'sara@x.test', 'Sara', 'agent', 'h', 1);",
                )
                .unwrap();
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let admin = store.agent_by_id("a_admin").await.unwrap().unwrap();
        let agent = store.agent_by_id("a_agent").await.unwrap().unwrap();
        assert!(admin.all_sites && !agent.all_sites);
        assert_eq!(agent.presence, Presence::Online);
    }

    /// Canned responses and departments belong to one site each.
    #[tokio::test]
    async fn canned_and_departments_are_per_site() {
        let (_dir, store, conversation) = fixture().await;
        let shop = conversation.site_id.clone();
        let other = store.create_site("Other", &["*".into()]).await.unwrap().id;
        store.add_department(&shop, "sales").await.unwrap();
        store.add_department(&other, "billing").await.unwrap();
        let canned = store.add_canned(&shop, "hi", "Hello!").await.unwrap();
        store.add_canned(&other, "hi", "Salam!").await.unwrap();
        assert!(matches!(
            store.add_canned(&shop, "hi", "again").await,
            Err(StoreError::Conflict(_))
        ));
        let names = |departments: Vec<Department>| {
            departments.into_iter().map(|d| d.name).collect::<Vec<_>>()
        };
        assert_eq!(
            names(
                store
                    .departments(std::slice::from_ref(&shop))
                    .await
                    .unwrap()
            ),
            ["sales"]
        );
        assert_eq!(
            names(
                store
                    .departments(std::slice::from_ref(&other))
                    .await
                    .unwrap()
            ),
            ["billing"]
        );
        let texts: Vec<String> = store
            .canned(std::slice::from_ref(&shop))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.text)
            .collect();
        assert_eq!(texts, ["Hello!"]);
        assert_eq!(canned.site_id, shop);
        store.remove_department(&other, "sales").await.unwrap();
        assert_eq!(
            store
                .departments(std::slice::from_ref(&shop))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    /// One open request per visitor: a second `contact` updates it and keeps the first
    /// message; alerts are one per conversation and kind; both lists page by id.
    #[tokio::test]
    async fn offline_requests_and_alerts_do_not_pile_up() {
        let (_dir, store, conversation) = fixture().await;
        let site = conversation.site_id.clone();
        let request = |message: &str| OfflineRequest {
            id: 0,
            site_id: site.clone(),
            visitor_id: "v_1".into(),
            conversation: None,
            name: Some("Mona".into()),
            email: Some("mona@shop.test".into()),
            phone: None,
            message: Some(message.into()),
            created_at: 5,
            done_at: None,
        };
        let (first, new) = store
            .create_offline_request(request("call me"))
            .await
            .unwrap();
        assert!(new);
        for _ in 0..5 {
            let (again, new) = store.create_offline_request(request("spam")).await.unwrap();
            assert_eq!((again, new), (first, false));
        }
        let open = store
            .offline_requests(
                std::slice::from_ref(&site),
                Page {
                    before: None,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].message.as_deref(), Some("call me\n\nspam"));
        store.offline_request_done(first, 6).await.unwrap();
        let (second, new) = store
            .create_offline_request(request("later"))
            .await
            .unwrap();
        assert!(new && second != first);

        let alert = || Alert {
            id: 0,
            site_id: site.clone(),
            conversation: Some(conversation.id.clone()),
            kind: "low_rating".into(),
            detail: "rated 1/5".into(),
            at: 1,
            acknowledged_at: None,
        };
        assert!(store.create_alert(alert()).await.unwrap().is_some());
        for _ in 0..14 {
            assert_eq!(store.create_alert(alert()).await.unwrap(), None);
        }
        for index in 0..5 {
            let other = store
                .create_conversation(&site, "v_1", ConversationState::Closed, index)
                .await
                .unwrap();
            store
                .create_alert(Alert {
                    conversation: Some(other.id),
                    ..alert()
                })
                .await
                .unwrap();
        }
        let all = store
            .alerts(
                std::slice::from_ref(&site),
                Page {
                    before: None,
                    limit: 100,
                },
            )
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
        let page = store
            .alerts(
                std::slice::from_ref(&site),
                Page {
                    before: None,
                    limit: 4,
                },
            )
            .await
            .unwrap();
        let rest = store
            .alerts(
                std::slice::from_ref(&site),
                Page {
                    before: Some(page[3].id),
                    limit: 4,
                },
            )
            .await
            .unwrap();
        let mut ids: Vec<i64> = page.iter().chain(&rest).map(|a| a.id).collect();
        assert_eq!(ids.len(), 6, "two pages hold everything once");
        ids.dedup();
        assert_eq!(ids.len(), 6);
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    }

    /// Rotation keeps the previous secret; identify records what was verified.
    #[tokio::test]
    async fn secrets_rotate_and_identities_say_what_was_verified() {
        let (_dir, store, conversation) = fixture().await;
        let before = store
            .site_by_id(&conversation.site_id)
            .await
            .unwrap()
            .unwrap();
        let after = store
            .rotate_identity_secret(&before.id, "sk_new", 77)
            .await
            .unwrap();
        assert_eq!(after.identity_secret, "sk_new");
        assert_eq!(after.previous_identity_secret, Some(before.identity_secret));
        assert_eq!(after.identity_secret_rotated_at, Some(77));
        store
            .identify_visitor(
                "v_1",
                IdentityUpdate {
                    external_id: "u1".into(),
                    name: Some("Mona".into()),
                    email: Some("typed@shop.test".into()),
                    verified: vec!["name".into()],
                    attributes: Some(serde_json::json!({"plan": "pro"})),
                },
            )
            .await
            .unwrap();
        let visitor = store.visitor("v_1").await.unwrap().unwrap();
        assert_eq!(visitor.verified, ["name"]);
        assert_eq!(visitor.external_id.as_deref(), Some("u1"));
        assert_eq!(visitor.attributes, Some(serde_json::json!({"plan": "pro"})));
    }

    /// Sessions remember when they were last used.
    #[tokio::test]
    async fn sessions_are_touched() {
        let (_dir, store, _) = fixture().await;
        let agent = store
            .create_agent(NewAgent {
                email: "sara@shop.test".into(),
                name: "Sara".into(),
                role: AgentRole::Agent,
                password_hash: "h".into(),
                all_sites: true,
                site_ids: vec![],
                capacity: None,
                departments: vec![],
            })
            .await
            .unwrap();
        let far = now_ms() + 1_000_000;
        store.create_session("t", &agent.id, far).await.unwrap();
        let created = store.session_agent("t", now_ms()).await.unwrap().unwrap();
        store
            .touch_session("t", created.last_seen + 5_000)
            .await
            .unwrap();
        let touched = store.session_agent("t", now_ms()).await.unwrap().unwrap();
        assert_eq!(touched.last_seen, created.last_seen + 5_000);
    }

    /// A version-2 database with global canned responses and departments gives each
    /// site its own copy.
    #[tokio::test]
    async fn version_two_databases_give_every_site_its_own_canned_and_departments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(crate::schema::FIRST_VERSION)
                .unwrap();
            connection
                .execute_batch(crate::schema::SECOND_VERSION)
                .unwrap();
            connection
                .execute_batch(
                    "PRAGMA user_version = 2; \
                     INSERT INTO sites (id, name, key, origins, created_at, settings, identity_secret) \
                     VALUES ('s_a', 'A', 'pk_a', '[]', 1, '{}', 'sk_a'), \
                            ('s_b', 'B', 'pk_b', '[]', 1, '{}', 'sk_b'); \
                     INSERT INTO departments (name, created_at) VALUES ('sales', 1); \
                     INSERT INTO canned_responses (shortcut, text, created_at) VALUES ('hi', 'Hello', 1);",
                )
                .unwrap();
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        for site in ["s_a", "s_b"] {
            let departments = store.departments(&[site.to_owned()]).await.unwrap();
            assert_eq!(departments.len(), 1, "{site}");
            let canned = store.canned(&[site.to_owned()]).await.unwrap();
            assert_eq!(canned[0].text, "Hello", "{site}");
        }
    }

    /// Regressions (issue 15): a bot conversation still open was counted as "settled by
    /// the bot"; the question that made the bot give up (its hand-off after missing
    /// again, or after the same question twice) was missing from the unanswered list.
    #[tokio::test]
    async fn deflection_needs_a_close_and_the_question_that_gave_up_is_unanswered() {
        let (_dir, store, answered_open) = fixture().await;
        let site = answered_open.site_id.clone();
        let sites = std::slice::from_ref(&site);
        let turn = |conversation: &str, decision: &'static str, question: &str, at: i64| BotTurn {
            conversation: conversation.to_owned(),
            site_id: site.clone(),
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
        };
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
        // The bot answered; the visitor is still there.
        store
            .record_bot_turn(turn(&answered_open.id, "answer", "where is my order", 2))
            .await
            .unwrap();
        let report = store.bot_report(sites, 0, 100).await.unwrap();
        assert_eq!((report.bot_conversations, report.deflected), (1, 0));
        // Closed without a person: now it is settled by the bot.
        store.transition(close(&answered_open.id)).await.unwrap();
        let report = store.bot_report(sites, 0, 100).await.unwrap();
        assert_eq!((report.bot_conversations, report.deflected), (1, 1));

        // A typo, missed twice: the second miss is the hand-off (reason `misses`).
        let typo = new_conversation().await.unwrap().id;
        store
            .record_bot_turn(turn(&typo, "fallback", "wehre is my oder", 3))
            .await
            .unwrap();
        store
            .record_bot_turn(turn(&typo, "handoff", "wehre is my oder??", 4))
            .await
            .unwrap();
        store
            .transition(hand_off(typo.clone(), "misses"))
            .await
            .unwrap();
        // The same question again after an answer (reason `repeated`).
        let again = new_conversation().await.unwrap().id;
        store
            .record_bot_turn(turn(&again, "answer", "can i pay later", 3))
            .await
            .unwrap();
        store
            .record_bot_turn(turn(&again, "handoff", "Can I pay later ", 4))
            .await
            .unwrap();
        store
            .transition(hand_off(again.clone(), "repeated"))
            .await
            .unwrap();
        // The visitor asked for a person: the bot was not stumped.
        let asked = new_conversation().await.unwrap().id;
        store
            .record_bot_turn(turn(&asked, "handoff", "a human please", 3))
            .await
            .unwrap();
        store
            .transition(hand_off(asked.clone(), "requested"))
            .await
            .unwrap();

        let report = store.bot_report(sites, 0, 100).await.unwrap();
        assert_eq!(
            report.unanswered,
            vec![
                ("can i pay later".to_owned(), 1),
                ("wehre is my oder".to_owned(), 1),
                ("wehre is my oder??".to_owned(), 1),
            ]
        );
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
    }
}
