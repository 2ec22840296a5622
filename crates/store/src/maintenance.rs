//! Running the database for years: online backups and restores, the retention sweep, a
//! visitor's data on request (export and erasure), the audit log, and the report facts
//! that keep the reports' figures after the details are deleted.
//!
//! Key design decision: **deletions go through the one writer in small batches, and
//! leave anonymous facts behind.** A retention batch or an erasure is one writer job, so
//! it commits atomically with whatever else is in its group commit and never holds the
//! write lock for long: a retention batch takes at most a few hundred conversations and
//! a few thousand messages, and the caller yields between batches. Before a conversation
//! is deleted its report figures are copied into `report_facts`, a row with no id, no
//! visitor and no text (the creation hour, durations, the score), which the report
//! queries add to what is still stored.
//!
//! Backups and restores are functions on the database file, not [`Store`](crate::Store)
//! methods: they run from the `salam` command line while a hub may be running (a
//! PostgreSQL deployment would use `pg_dump` instead). A backup is `VACUUM INTO` a new
//! file in one read transaction, so it is a consistent snapshot that does not block the
//! hub's writer (WAL mode), and it is checked with `PRAGMA integrity_check` before it
//! gets its final name. A restore needs the database to itself: every process that
//! opens the store holds a shared lock on `salam.db.lock`, and a restore takes it
//! exclusively, so it refuses while a hub runs.

use crate::sqlite::{
    MESSAGE_COLUMNS, OFFLINE_REQUEST_COLUMNS, VISITOR_COLUMNS, map_err, message_from_row,
    offline_request_from_row, visitor_from_row,
};
use crate::{OfflineRequest, StoreError, Timing, Visitor};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use salam_protocol::Message;
use std::fs::File;
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------------ file lock

/// A lock on the database's lock file (`salam.db.lock`), held as long as this value
/// lives. Stores hold it shared; a restore holds it exclusively.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// The lock file next to `database`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn open_lock_file(database: &Path) -> std::io::Result<File> {
    let path = lock_path(database);
    // Created on the first start; opened read-only when the directory has become
    // read-only since (a full or read-only disk must not stop the hub from starting).
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
}

impl DatabaseLock {
    /// A shared lock: any number of stores, backups and commands may hold it at once.
    pub(crate) fn shared(database: &Path) -> Result<DatabaseLock, StoreError> {
        let file = open_lock_file(database).map_err(|err| {
            StoreError::Unavailable(format!(
                "cannot open {}: {err}",
                lock_path(database).display()
            ))
        })?;
        match file.try_lock_shared() {
            Ok(()) => Ok(DatabaseLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(
                "the database is being restored; try again when the restore is done".into(),
            )),
            Err(std::fs::TryLockError::Error(err)) => Err(StoreError::Unavailable(format!(
                "cannot lock {}: {err}",
                lock_path(database).display()
            ))),
        }
    }

    /// The exclusive lock a restore needs: nobody else has the database open.
    fn exclusive(database: &Path) -> Result<DatabaseLock, MaintenanceError> {
        let file = open_lock_file(database).map_err(|source| MaintenanceError::Io {
            path: lock_path(database),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => Ok(DatabaseLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(MaintenanceError::InUse(database.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(source)) => Err(MaintenanceError::Io {
                path: lock_path(database),
                source,
            }),
        }
    }
}

// ------------------------------------------------------------------- backup, restore

/// Why a backup, a restore or a check failed.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// A hub or another `salam` command has the database open (a restore needs it to
    /// itself).
    #[error("{0} is in use: stop the hub (and any other salam command) first")]
    InUse(PathBuf),
    /// The file to write already exists (backups never overwrite).
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// The file does not exist.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Sqlite { path: PathBuf, message: String },
    /// `PRAGMA integrity_check` found problems (its first lines).
    #[error("{path} failed its integrity check: {report}")]
    Damaged { path: PathBuf, report: String },
    /// The file is an SQLite database, but not one of Salam's.
    #[error("{0} is not a Salam database")]
    NotSalam(PathBuf),
    /// The database was written by a newer Salam.
    #[error("{path} has schema version {found}; this salam knows versions up to {known}")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> MaintenanceError + '_ {
    move |err| MaintenanceError::Sqlite {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> MaintenanceError + '_ {
    move |source| MaintenanceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a checked database holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    pub path: PathBuf,
    pub schema_version: i64,
    pub bytes: u64,
    pub conversations: u64,
    pub messages: u64,
}

/// Checks a database file (a backup): it opens, passes `PRAGMA integrity_check`, is a
/// Salam database, and its schema is not newer than this binary's.
pub fn verify(path: &Path) -> Result<DatabaseInfo, MaintenanceError> {
    if !path.is_file() {
        return Err(MaintenanceError::Missing(path.to_path_buf()));
    }
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error(path))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_error(path))?;
    let problems: Vec<String> = connection
        .prepare("PRAGMA integrity_check")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|err| match err {
            // Not a database at all ("file is not a database").
            rusqlite::Error::SqliteFailure(failure, _)
                if failure.code == rusqlite::ErrorCode::NotADatabase =>
            {
                MaintenanceError::NotSalam(path.to_path_buf())
            }
            other => sqlite_error(path)(other),
        })?;
    if problems != ["ok"] {
        return Err(MaintenanceError::Damaged {
            path: path.to_path_buf(),
            report: problems.into_iter().take(5).collect::<Vec<_>>().join("; "),
        });
    }
    let tables: i64 = connection
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('settings', 'sites', 'conversations', 'messages')",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite_error(path))?;
    if tables != 4 {
        return Err(MaintenanceError::NotSalam(path.to_path_buf()));
    }
    let schema_version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sqlite_error(path))?;
    if schema_version > crate::schema::CURRENT_VERSION {
        return Err(MaintenanceError::TooNew {
            path: path.to_path_buf(),
            found: schema_version,
            known: crate::schema::CURRENT_VERSION,
        });
    }
    let count = |table: &str| -> Result<u64, MaintenanceError> {
        connection
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sqlite_error(path))
    };
    Ok(DatabaseInfo {
        path: path.to_path_buf(),
        schema_version,
        bytes: std::fs::metadata(path).map_err(io_error(path))?.len(),
        conversations: count("conversations")?,
        messages: count("messages")?,
    })
}

/// Opens an existing database for reading and writing (never creating one).
fn open_existing(path: &Path) -> Result<Connection, MaintenanceError> {
    if !path.is_file() {
        return Err(MaintenanceError::Missing(path.to_path_buf()));
    }
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error(path))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite_error(path))?;
    Ok(connection)
}

/// Writes a consistent copy of `database` (on which a hub may be running and writing)
/// into `target`, as one self-contained file, and checks it before it gets its name:
/// `VACUUM INTO` a `.partial` file in one read transaction (which does not block the
/// hub's writer), rollback-journal mode (no `-wal` to go with it), fsync,
/// [`verify`], rename.
pub fn backup(database: &Path, target: &Path) -> Result<DatabaseInfo, MaintenanceError> {
    if target.exists() {
        return Err(MaintenanceError::Exists(target.to_path_buf()));
    }
    // Shared: a restore cannot start under a backup.
    let _lock = DatabaseLock::shared(database)
        .map_err(|_| MaintenanceError::InUse(database.to_path_buf()))?;
    let source = open_existing(database)?;
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_file(&partial).map_err(io_error(&partial))?;
    }
    let partial_name = partial
        .to_str()
        .ok_or_else(|| MaintenanceError::Io {
            path: partial.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the backup path must be valid UTF-8",
            ),
        })?
        .to_owned();
    source
        .execute("VACUUM INTO ?1", [&partial_name])
        .map_err(sqlite_error(database))?;
    drop(source);
    {
        let copy = Connection::open(&partial).map_err(sqlite_error(&partial))?;
        let _: String = copy
            .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
            .map_err(sqlite_error(&partial))?;
    }
    File::open(&partial)
        .and_then(|file| file.sync_all())
        .map_err(io_error(&partial))?;
    if let Err(err) = verify(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    std::fs::rename(&partial, target).map_err(io_error(target))?;
    sync_parent(target)?;
    let mut info = verify(target)?;
    info.path = target.to_path_buf();
    Ok(info)
}

fn sync_parent(path: &Path) -> Result<(), MaintenanceError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(parent))
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The restored database, as checked after the restore.
    pub database: DatabaseInfo,
    /// Where the database it replaced was kept (`salam.db.before-restore`), if there
    /// was one.
    pub previous: Option<PathBuf>,
}

/// Replaces `database` with the backup at `backup`. Refuses while anything has the
/// database open ([`MaintenanceError::InUse`]); checks the backup first and the result
/// after. The database it replaces is first copied to `DATABASE.before-restore`
/// (replacing an older one). The copy into place is SQLite's backup API in one write
/// transaction, so a crash midway leaves the old database, never half of each.
pub fn restore(backup: &Path, database: &Path) -> Result<Restored, MaintenanceError> {
    verify(backup)?;
    let _lock = DatabaseLock::exclusive(database)?;
    let previous = if database.is_file() {
        let mut name = database.as_os_str().to_owned();
        name.push(".before-restore");
        let previous = PathBuf::from(name);
        if previous.exists() {
            std::fs::remove_file(&previous).map_err(io_error(&previous))?;
        }
        let current = open_existing(database)?;
        let previous_name = previous.to_string_lossy().into_owned();
        current
            .execute("VACUUM INTO ?1", [&previous_name])
            .map_err(sqlite_error(database))?;
        Some(previous)
    } else {
        None
    };
    {
        let source = Connection::open_with_flags(
            backup,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_error(backup))?;
        let mut target = Connection::open(database).map_err(sqlite_error(database))?;
        target
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite_error(database))?;
        {
            let copy = rusqlite::backup::Backup::new(&source, &mut target)
                .map_err(sqlite_error(database))?;
            // Every page in one step: one write transaction on the target.
            match copy.step(-1).map_err(sqlite_error(database))? {
                rusqlite::backup::StepResult::Done => {}
                other => {
                    return Err(MaintenanceError::Sqlite {
                        path: database.to_path_buf(),
                        message: format!("the copy did not finish ({other:?})"),
                    });
                }
            }
        }
        // Fold the copy into the database file itself.
        let _: (i64, i64, i64) = target
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(sqlite_error(database))?;
    }
    sync_parent(database)?;
    Ok(Restored {
        database: verify(database)?,
        previous,
    })
}

// ------------------------------------------------------------------ report facts

/// Copies the report figures of a conversation into `report_facts` (before it is
/// deleted).
fn archive_conversation(connection: &Connection, conversation: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO report_facts (site_id, created_hour, had_bot, deflected, handed_off, \
             handoff_reason, first_response_ms, resolution_ms, score, unanswered, key_account) \
             SELECT c.site_id, c.created_at - (c.created_at % 3600000), \
             EXISTS (SELECT 1 FROM bot_turns b WHERE b.conversation_id = c.id), \
             c.state = 'closed' AND c.handed_off_at IS NULL AND EXISTS (SELECT 1 FROM bot_turns b \
                 WHERE b.conversation_id = c.id AND b.decision = 'answer'), \
             c.handed_off_at IS NOT NULL, c.handoff_reason, \
             c.first_response_at - c.handed_off_at, c.closed_at - c.created_at, \
             (SELECT r.score FROM ratings r WHERE r.conversation_id = c.id), \
             (SELECT count(*) FROM bot_turns b WHERE b.conversation_id = c.id \
                 AND {}), \
             c.key_account \
             FROM conversations c WHERE c.id = ?1",
            crate::sqlite::UNANSWERED_TURN
        ))
        .map_err(map_err)?
        .execute([conversation])
        .map_err(map_err)?;
    Ok(())
}

/// Adds the facts of deleted conversations of `site_id` created in `[from, to)` to a
/// bot report (conversations, the bot's share, deflections, hand-offs by reason).
pub(crate) fn add_archived_to_bot_report(
    connection: &Connection,
    site_id: &str,
    from: i64,
    to: i64,
    report: &mut crate::BotReport,
    reasons: &mut std::collections::BTreeMap<String, u64>,
) -> Result<(), StoreError> {
    let (total, with_bot, deflected): (i64, i64, i64) = connection
        .prepare_cached(
            "SELECT count(*), coalesce(sum(had_bot), 0), coalesce(sum(deflected), 0) \
             FROM report_facts WHERE site_id = ?1 AND created_hour >= ?2 AND created_hour < ?3",
        )
        .map_err(map_err)?
        .query_row(params![site_id, from, to], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(map_err)?;
    report.conversations += total as u64;
    report.bot_conversations += with_bot as u64;
    report.deflected += deflected as u64;
    let mut statement = connection
        .prepare_cached(
            "SELECT handoff_reason, count(*) FROM report_facts WHERE site_id = ?1 \
             AND handed_off AND created_hour >= ?2 AND created_hour < ?3 GROUP BY 1",
        )
        .map_err(map_err)?;
    let rows = statement
        .query_map(params![site_id, from, to], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                row.get::<_, i64>(1)?,
            ))
        })
        .map_err(map_err)?;
    for row in rows {
        let (reason, count) = row.map_err(map_err)?;
        *reasons.entry(reason).or_default() += count as u64;
    }
    Ok(())
}

/// The timings of deleted conversations of `site_id` created in `[from, to)`, rebuilt
/// from their facts: `conversation` is empty, `created_at` is the hour, and the other
/// times keep their distances from it (which is all the reports read).
pub(crate) fn archived_timings(
    connection: &Connection,
    site_id: &str,
    from: i64,
    to: i64,
    timings: &mut Vec<Timing>,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT created_hour, handed_off, first_response_ms, resolution_ms, score \
             FROM report_facts WHERE site_id = ?1 AND created_hour >= ?2 AND created_hour < ?3",
        )
        .map_err(map_err)?;
    let rows = statement
        .query_map(params![site_id, from, to], |row| {
            let created_at: i64 = row.get(0)?;
            let handed_off: bool = row.get(1)?;
            let first_response_ms: Option<i64> = row.get(2)?;
            let resolution_ms: Option<i64> = row.get(3)?;
            Ok(Timing {
                conversation: String::new(),
                created_at,
                handed_off_at: handed_off.then_some(created_at),
                first_response_at: first_response_ms.map(|ms| created_at + ms),
                closed_at: resolution_ms.map(|ms| created_at + ms),
                score: row.get::<_, Option<i64>>(4)?.map(|score| score as u8),
            })
        })
        .map_err(map_err)?;
    for row in rows {
        timings.push(row.map_err(map_err)?);
    }
    Ok(())
}

// ------------------------------------------------------------------------ deletion

/// Runs `job` with SQLite's `secure_delete` set to `mode` (`ON`: deleted content is
/// overwritten with zeros; `FAST`: where that costs no extra writes), then puts the
/// connection's setting back.
pub(crate) fn with_secure_delete<T>(
    connection: &Connection,
    mode: &str,
    job: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let before: i64 = connection
        .query_row("PRAGMA secure_delete", [], |row| row.get(0))
        .map_err(map_err)?;
    connection
        .pragma_update(None, "secure_delete", mode)
        .map_err(map_err)?;
    let result = job();
    let _ = connection.pragma_update(None, "secure_delete", before);
    result
}

/// Deletes a conversation and everything that hangs off it (messages, bot turns, its
/// rating, alerts, callbacks and webhook deliveries, whose bodies quote it), after
/// archiving its report facts. Returns the number
/// of messages deleted.
fn delete_conversation(connection: &Connection, conversation: &str) -> Result<u64, StoreError> {
    archive_conversation(connection, conversation)?;
    let mut messages = 0;
    for (index, sql) in [
        "DELETE FROM messages WHERE conversation_id = ?1",
        "DELETE FROM bot_turns WHERE conversation_id = ?1",
        "DELETE FROM ratings WHERE conversation_id = ?1",
        "DELETE FROM alerts WHERE conversation_id = ?1",
        "DELETE FROM offline_requests WHERE conversation_id = ?1",
        "DELETE FROM webhook_deliveries WHERE conversation_id = ?1",
        "DELETE FROM conversations WHERE id = ?1",
    ]
    .into_iter()
    .enumerate()
    {
        let deleted = connection
            .prepare_cached(sql)
            .map_err(map_err)?
            .execute([conversation])
            .map_err(map_err)?;
        if index == 0 {
            messages = deleted as u64;
        }
    }
    Ok(messages)
}

/// How much one retention batch may delete. The writer runs a batch as one job, so
/// these bound how long it holds the write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionBudget {
    /// Conversations per batch at most.
    pub conversations: u32,
    /// Messages per batch at most (a batch takes at least one conversation, whatever
    /// its length).
    pub messages: u32,
}

impl Default for RetentionBudget {
    fn default() -> RetentionBudget {
        RetentionBudget {
            conversations: 200,
            messages: 5000,
        }
    }
}

/// What one retention batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionBatch {
    pub conversations: u64,
    pub messages: u64,
    pub offline_requests: u64,
    /// The batch used up its budget: there may be more to delete.
    pub more: bool,
}

/// One retention batch for a site, inside the writer's transaction: the oldest closed
/// conversations closed before `closed_before` (within `budget`), and callbacks left
/// before it.
pub(crate) fn retention_batch(
    connection: &Connection,
    site_id: &str,
    closed_before: i64,
    budget: RetentionBudget,
) -> Result<RetentionBatch, StoreError> {
    let candidates: Vec<(String, i64)> = connection
        .prepare_cached(
            "SELECT id, last_seq FROM conversations WHERE site_id = ?1 AND state = 'closed' \
             AND closed_at < ?2 ORDER BY closed_at LIMIT ?3",
        )
        .map_err(map_err)?
        .query_map(
            params![site_id, closed_before, budget.conversations.max(1)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(map_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_err)?;
    let full = candidates.len() as u32 >= budget.conversations.max(1);
    let mut batch = RetentionBatch::default();
    let mut planned_messages = 0_i64;
    for (conversation, last_seq) in candidates {
        if batch.conversations > 0 && planned_messages + last_seq > budget.messages as i64 {
            batch.more = true;
            break;
        }
        planned_messages += last_seq;
        batch.messages += delete_conversation(connection, &conversation)?;
        batch.conversations += 1;
    }
    // Callbacks (contact details) left before the cut-off, whatever became of them.
    let callbacks = connection
        .prepare_cached(
            "DELETE FROM offline_requests WHERE id IN (SELECT id FROM offline_requests \
             WHERE site_id = ?1 AND created_at < ?2 LIMIT ?3)",
        )
        .map_err(map_err)?
        .execute(params![site_id, closed_before, budget.conversations.max(1)])
        .map_err(map_err)? as u64;
    batch.offline_requests = callbacks;
    batch.more |= full || callbacks >= budget.conversations.max(1) as u64;
    Ok(batch)
}

/// What one step of the visitor sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VisitorSweep {
    /// Visitors deleted.
    pub deleted: u64,
    /// Where the next step starts (`None`: the sweep reached the end of the table).
    pub next: Option<i64>,
}

/// One step of the visitor sweep, inside the writer's transaction: looks at the next
/// `scan` visitors after rowid `after` and deletes those of a site in `cutoffs` (site
/// id, cut-off) last seen before its cut-off with no conversation and no callback left.
/// A step reads at most `scan` rows however many visitors there are, so the whole
/// table is swept in bounded steps without an index on `last_seen` (which every
/// visitor's `hello` would have to update).
pub(crate) fn sweep_visitors(
    connection: &Connection,
    cutoffs: &[(String, i64)],
    after: i64,
    scan: u32,
) -> Result<VisitorSweep, StoreError> {
    let rows: Vec<(i64, String, String, i64)> = connection
        .prepare_cached(
            "SELECT rowid, id, site_id, last_seen FROM visitors WHERE rowid > ?1 \
             ORDER BY rowid LIMIT ?2",
        )
        .map_err(map_err)?
        .query_map(params![after, scan.max(1)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .map_err(map_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_err)?;
    let mut sweep = VisitorSweep {
        deleted: 0,
        next: (rows.len() as u32 >= scan.max(1))
            .then(|| rows.last().map(|row| row.0))
            .flatten(),
    };
    for (_, visitor_id, site_id, last_seen) in rows {
        let Some((_, cutoff)) = cutoffs.iter().find(|(site, _)| *site == site_id) else {
            continue;
        };
        if last_seen >= *cutoff {
            continue;
        }
        let deleted = connection
            .prepare_cached(
                "DELETE FROM visitors WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM conversations c \
                 WHERE c.site_id = ?2 AND c.visitor_id = ?1) AND NOT EXISTS \
                 (SELECT 1 FROM offline_requests o WHERE o.visitor_id = ?1)",
            )
            .map_err(map_err)?
            .execute(params![visitor_id, site_id])
            .map_err(map_err)?;
        sweep.deleted += deleted as u64;
    }
    Ok(sweep)
}

// ------------------------------------------------------------- a visitor's data

/// How a person asking for their data is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitorSelector {
    /// The hub's visitor id (`v_…`, shown in the console).
    Id(String),
    /// The site's own customer id, as verified by `identify` (`external_id`); on one
    /// site, or on every site.
    ExternalId {
        external_id: String,
        site_id: Option<String>,
    },
    /// An e-mail address, from `identify`, the pre-chat form or a callback form
    /// (case-insensitive).
    Email(String),
}

impl VisitorSelector {
    /// The kind of selector, for the audit log (never its value, which may be an
    /// e-mail address).
    pub fn kind(&self) -> &'static str {
        match self {
            VisitorSelector::Id(_) => "visitor_id",
            VisitorSelector::ExternalId { .. } => "external_id",
            VisitorSelector::Email(_) => "email",
        }
    }
}

/// The ids of the visitors a selector matches, in a stable order.
pub(crate) fn find_visitors(
    connection: &Connection,
    selector: &VisitorSelector,
) -> Result<Vec<String>, StoreError> {
    let (sql, values): (&str, Vec<Option<String>>) = match selector {
        VisitorSelector::Id(id) => (
            "SELECT id FROM visitors WHERE id = ?1 \
             UNION SELECT visitor_id FROM offline_requests WHERE visitor_id = ?1 ORDER BY 1",
            vec![Some(id.clone())],
        ),
        VisitorSelector::ExternalId {
            external_id,
            site_id,
        } => (
            "SELECT id FROM visitors WHERE external_id = ?1 AND (?2 IS NULL OR site_id = ?2) \
             ORDER BY 1",
            vec![Some(external_id.clone()), site_id.clone()],
        ),
        VisitorSelector::Email(email) => (
            "SELECT id FROM visitors WHERE email = ?1 COLLATE NOCASE \
             UNION SELECT visitor_id FROM offline_requests WHERE email = ?1 COLLATE NOCASE \
             ORDER BY 1",
            vec![Some(email.trim().to_owned())],
        ),
    };
    let mut statement = connection.prepare_cached(sql).map_err(map_err)?;
    let ids = statement
        .query_map(rusqlite::params_from_iter(values.iter()), |row| row.get(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(map_err)?;
    Ok(ids)
}

/// A conversation in an export: its facts, every message, and the rating.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationRecord {
    pub id: String,
    pub site_id: String,
    pub state: String,
    pub department: String,
    pub agent_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub messages: Vec<Message>,
    pub rating: Option<RatingRecord>,
}

/// A rating in an export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RatingRecord {
    pub score: u8,
    pub comment: Option<String>,
    pub at: i64,
}

/// Everything stored about one visitor.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VisitorRecord {
    pub visitor_id: String,
    /// The profile (absent when only callbacks name this visitor id).
    pub profile: Option<Visitor>,
    pub conversations: Vec<ConversationRecord>,
    pub offline_requests: Vec<OfflineRequest>,
    /// Pages visited and proactive messages shown (issue 19), oldest first.
    pub events: Vec<crate::VisitorEvent>,
    /// The site's contact with the visitor's verified external id, with its attribute
    /// history (issue 19).
    pub contact: Option<crate::contacts::ContactRecord>,
}

fn visitor_profile(
    connection: &Connection,
    visitor_id: &str,
) -> Result<Option<Visitor>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {VISITOR_COLUMNS} FROM visitors WHERE id = ?1"
        ))
        .map_err(map_err)?
        .query_row([visitor_id], visitor_from_row)
        .optional()
        .map_err(map_err)
}

/// The ids of a visitor's conversations (through the site's visitor index).
fn conversations_of(connection: &Connection, visitor_id: &str) -> Result<Vec<String>, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT c.id FROM visitors v JOIN conversations c \
             ON c.site_id = v.site_id AND c.visitor_id = v.id \
             WHERE v.id = ?1 ORDER BY c.created_at, c.id",
        )
        .map_err(map_err)?;
    let ids = statement
        .query_map([visitor_id], |row| row.get(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(map_err)?;
    Ok(ids)
}

/// Everything stored about a visitor (`None`: nothing at all).
pub(crate) fn export_visitor(
    connection: &Connection,
    visitor_id: &str,
) -> Result<Option<VisitorRecord>, StoreError> {
    let profile = visitor_profile(connection, visitor_id)?;
    let mut conversations = Vec::new();
    for id in conversations_of(connection, visitor_id)? {
        let record = connection
            .prepare_cached(
                "SELECT id, site_id, state, department, agent_id, created_at, updated_at, \
                 closed_at FROM conversations WHERE id = ?1",
            )
            .map_err(map_err)?
            .query_row([&id], |row| {
                Ok(ConversationRecord {
                    id: row.get(0)?,
                    site_id: row.get(1)?,
                    state: row.get(2)?,
                    department: row.get(3)?,
                    agent_id: row.get(4)?,
                    created_at: row.get(5)?,
                    updated_at: row.get(6)?,
                    closed_at: row.get(7)?,
                    messages: Vec::new(),
                    rating: None,
                })
            })
            .map_err(map_err)?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 ORDER BY seq"
        );
        let messages = connection
            .prepare_cached(&sql)
            .map_err(map_err)?
            .query_map([&id], message_from_row)
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?;
        let rating = connection
            .prepare_cached("SELECT score, comment, at FROM ratings WHERE conversation_id = ?1")
            .map_err(map_err)?
            .query_row([&id], |row| {
                Ok(RatingRecord {
                    score: row.get::<_, i64>(0)?.clamp(0, 255) as u8,
                    comment: row.get(1)?,
                    at: row.get(2)?,
                })
            })
            .optional()
            .map_err(map_err)?;
        conversations.push(ConversationRecord {
            messages,
            rating,
            ..record
        });
    }
    let offline_requests = connection
        .prepare_cached(&format!(
            "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests WHERE visitor_id = ?1 ORDER BY id"
        ))
        .map_err(map_err)?
        .query_map([visitor_id], offline_request_from_row)
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)?;
    let events = crate::timeline::events_of_visitor(connection, visitor_id)?;
    let contact = crate::contacts::contact_of_visitor(connection, visitor_id)?;
    if profile.is_none() && conversations.is_empty() && offline_requests.is_empty() {
        return Ok(None);
    }
    Ok(Some(VisitorRecord {
        visitor_id: visitor_id.to_owned(),
        profile,
        conversations,
        offline_requests,
        events,
        contact,
    }))
}

/// What an erasure deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub visitors: u64,
    pub conversations: u64,
    pub messages: u64,
    pub offline_requests: u64,
    /// The site's contact with the visitor's verified external id, with its history
    /// (issue 19: an identity makes one).
    pub contacts: u64,
}

/// The outcome of an erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erasure {
    /// Everything was deleted and the audit log says so.
    Erased(Erased),
    /// Nothing was deleted: these conversations of the visitor are still open (close
    /// them first, so nobody is chatting in a conversation that vanishes).
    Open(Vec<String>),
}

/// Who asks for an erasure, and how they found the visitor (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNote {
    pub actor: String,
    /// The kind of selector ([`VisitorSelector::kind`]), never its value.
    pub selector: &'static str,
    pub at: i64,
}

/// Erases a visitor inside the writer's transaction: every conversation of theirs
/// (messages, bot turns with their questions, the last-message preview, ratings with
/// their comments, alerts quoting them), their callbacks, the site's contact with their
/// verified external id (and its history), and their profile, after
/// archiving the conversations' report facts; then records it in the audit log. With
/// `secure_delete` on for the job, SQLite overwrites what it deletes instead of
/// leaving it in free space.
pub(crate) fn erase_visitor(
    connection: &Connection,
    visitor_id: &str,
    note: &AuditNote,
) -> Result<Erasure, StoreError> {
    let open: Vec<String> = connection
        .prepare_cached(
            "SELECT c.id FROM visitors v JOIN conversations c \
             ON c.site_id = v.site_id AND c.visitor_id = v.id \
             WHERE v.id = ?1 AND c.state != 'closed' ORDER BY c.id",
        )
        .map_err(map_err)?
        .query_map([visitor_id], |row| row.get(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_err)?;
    if !open.is_empty() {
        return Ok(Erasure::Open(open));
    }
    with_secure_delete(connection, "ON", || {
        let mut erased = Erased::default();
        for conversation in conversations_of(connection, visitor_id)? {
            erased.messages += delete_conversation(connection, &conversation)?;
            erased.conversations += 1;
        }
        crate::email::erase_addresses(connection, visitor_id)?;
        erased.offline_requests = connection
            .prepare_cached("DELETE FROM offline_requests WHERE visitor_id = ?1")
            .map_err(map_err)?
            .execute([visitor_id])
            .map_err(map_err)? as u64;
        erased.contacts = crate::contacts::erase_contact_of_visitor(connection, visitor_id)?;
        erased.visitors = connection
            .prepare_cached("DELETE FROM visitors WHERE id = ?1")
            .map_err(map_err)?
            .execute([visitor_id])
            .map_err(map_err)? as u64;
        let detail = serde_json::json!({ "selector": note.selector, "erased": erased });
        insert_audit(
            connection,
            &NewAudit {
                at: note.at,
                actor: note.actor.clone(),
                action: "visitor.erase".into(),
                subject: visitor_id.to_owned(),
                detail: detail.to_string(),
            },
        )?;
        Ok(Erasure::Erased(erased))
    })
}

// ---------------------------------------------------------------------- audit log

/// An entry to add to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub at: i64,
    /// Who: `agent:ID (E-MAIL)`, `cli:USER`, `retention`.
    pub actor: String,
    /// What: `visitor.erase`, `visitor.export`, `retention.delete`.
    pub action: String,
    /// On what: a visitor id, a site id.
    pub subject: String,
    /// JSON with counts; never personal data.
    pub detail: String,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

pub(crate) fn insert_audit(connection: &Connection, entry: &NewAudit) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(map_err)?
        .execute(params![
            entry.at,
            entry.actor,
            entry.action,
            entry.subject,
            entry.detail
        ])
        .map_err(map_err)?;
    Ok(())
}

/// The newest `limit` entries of the audit log, newest first.
pub(crate) fn audit_log(
    connection: &Connection,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
        )
        .map_err(map_err)?;
    let entries = statement
        .query_map([limit], |row| {
            Ok(AuditEntry {
                id: row.get(0)?,
                at: row.get(1)?,
                actor: row.get(2)?,
                action: row.get(3)?,
                subject: row.get(4)?,
                detail: row.get(5)?,
            })
        })
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        BotTurn, NewMessage, SqliteOptions, SqliteStore, Store, Transition, VisitorUpdate,
    };
    use salam_protocol::{Author, AuthorKind, ConversationState, MessageKind};

    const HOUR: i64 = 3_600_000;

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

    /// A closed conversation of `visitor` created at `at`: a bot turn, then (when
    /// `handed_off`) a hand-off, an agent's reply after `reply_ms` and a rating.
    async fn closed_conversation(
        store: &SqliteStore,
        site: &str,
        visitor: &str,
        at: i64,
        handed_off: bool,
        reply_ms: i64,
    ) -> String {
        store
            .touch_visitor(visitor, site, VisitorUpdate::default(), at)
            .await
            .unwrap();
        let conversation = store
            .create_conversation(site, visitor, ConversationState::Bot, at)
            .await
            .unwrap()
            .id;
        store
            .append(line(
                &conversation,
                AuthorKind::Visitor,
                "where is my parcel",
                at,
            ))
            .await
            .unwrap();
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
            .unwrap();
        if handed_off {
            let mut handoff = Transition::new(
                &conversation,
                &[ConversationState::Bot],
                ConversationState::Queued,
                at + 1000,
            );
            handoff.handoff_reason = Some("requested".into());
            store.transition(handoff).await.unwrap();
            store
                .append(line(
                    &conversation,
                    AuthorKind::Agent,
                    "it ships today",
                    at + 1000 + reply_ms,
                ))
                .await
                .unwrap();
            store
                .rate(&conversation, 4, Some("kind"), at + 9000)
                .await
                .unwrap();
        }
        store
            .transition(Transition::new(
                &conversation,
                &[ConversationState::Bot, ConversationState::Queued],
                ConversationState::Closed,
                at + 10_000,
            ))
            .await
            .unwrap();
        conversation
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

    #[tokio::test]
    async fn reports_keep_their_figures_after_retention_deletes_the_details() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let sites = std::slice::from_ref(&site);
        for (index, handed_off) in [true, false, true, true, false].into_iter().enumerate() {
            let at = 10 * HOUR + index as i64 * 60_000;
            closed_conversation(
                &store,
                &site,
                &format!("v_{index}"),
                at,
                handed_off,
                5000 * (index as i64 + 1),
            )
            .await;
        }
        let (from, to) = (0, 100 * HOUR);
        let before = store.bot_report(sites, from, to).await.unwrap();
        let timings_before = store.timings(sites, from, to).await.unwrap();
        assert_eq!(before.conversations, 5);
        assert_eq!(before.deflected, 2);

        let budget = RetentionBudget {
            conversations: 2,
            messages: 5000,
        };
        let mut deleted = 0;
        let mut batches = 0;
        loop {
            let batch = store
                .retention_batch(&site, 50 * HOUR, budget)
                .await
                .unwrap();
            assert!(
                batch.conversations <= 2,
                "a batch stays within its budget: {batch:?}"
            );
            deleted += batch.conversations;
            batches += 1;
            if !batch.more {
                break;
            }
        }
        assert_eq!((deleted, batches), (5, 3));
        assert!(
            store
                .find_conversations(
                    sites,
                    crate::ConversationFilter {
                        state: Some(ConversationState::Closed),
                        limit: 10,
                        ..Default::default()
                    }
                )
                .await
                .unwrap()
                .is_empty()
        );

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
        assert!(
            after.unanswered.is_empty(),
            "the questions quoted visitors: they are gone"
        );
        let timings_after = store.timings(sites, from, to).await.unwrap();
        assert_eq!(durations(&timings_after), durations(&timings_before));

        // Nobody is left to find, and their profiles go with the visitor sweep.
        let cutoffs = vec![(site.clone(), 50 * HOUR)];
        let sweep = store.sweep_visitors(&cutoffs, 0, 2).await.unwrap();
        assert_eq!(sweep.deleted, 2);
        let sweep = store
            .sweep_visitors(&cutoffs, sweep.next.unwrap(), 100)
            .await
            .unwrap();
        assert_eq!((sweep.deleted, sweep.next), (3, None));
    }

    #[tokio::test]
    async fn a_long_conversation_fills_a_batch_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        for index in 0..3 {
            closed_conversation(&store, &site, &format!("v_{index}"), HOUR, true, 10).await;
        }
        // Each conversation has 2 lines; a budget of 3 messages takes one at a time.
        let budget = RetentionBudget {
            conversations: 200,
            messages: 3,
        };
        let batch = store
            .retention_batch(&site, 2 * HOUR, budget)
            .await
            .unwrap();
        assert_eq!((batch.conversations, batch.more), (1, true));
        // Nothing closed after the cut-off is touched.
        let batch = store.retention_batch(&site, HOUR, budget).await.unwrap();
        assert_eq!(batch, RetentionBatch::default());
    }

    #[tokio::test]
    async fn an_erasure_refuses_open_conversations_and_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("e.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        closed_conversation(&store, &site, "v_layla", HOUR, true, 10).await;
        store
            .identify_visitor(
                "v_layla",
                crate::IdentityUpdate {
                    external_id: "customer-7".into(),
                    name: Some("Layla".into()),
                    email: Some("Layla@Example.test".into()),
                    ..crate::IdentityUpdate::default()
                },
            )
            .await
            .unwrap();
        let open = store
            .create_conversation(&site, "v_layla", ConversationState::Queued, 2 * HOUR)
            .await
            .unwrap()
            .id;
        let by_email = VisitorSelector::Email("layla@example.TEST".into());
        assert_eq!(
            store.find_visitors(&by_email).await.unwrap(),
            vec!["v_layla".to_owned()]
        );
        let by_customer = VisitorSelector::ExternalId {
            external_id: "customer-7".into(),
            site_id: Some(site.clone()),
        };
        assert_eq!(store.find_visitors(&by_customer).await.unwrap().len(), 1);
        let exported = store.export_visitor("v_layla").await.unwrap().unwrap();
        assert_eq!(exported.conversations.len(), 2);
        assert_eq!(exported.conversations[0].messages.len(), 2);
        assert_eq!(
            exported.conversations[0].rating.as_ref().map(|r| r.score),
            Some(4)
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
            (erased.visitors, erased.conversations, erased.messages),
            (1, 2, 2)
        );
        assert!(store.export_visitor("v_layla").await.unwrap().is_none());
        assert!(store.find_visitors(&by_email).await.unwrap().is_empty());
        let audit = store.audit_log(10).await.unwrap();
        assert_eq!(
            (
                audit[0].action.as_str(),
                audit[0].subject.as_str(),
                audit[0].actor.as_str()
            ),
            ("visitor.erase", "v_layla", "cli:test")
        );
        assert!(
            !audit[0].detail.to_lowercase().contains("layla@"),
            "the audit log names no e-mail"
        );
        // The reports still count the two conversations.
        let report = store
            .bot_report(std::slice::from_ref(&site), 0, 100 * HOUR)
            .await
            .unwrap();
        assert_eq!(report.conversations, 2);
    }

    #[tokio::test]
    async fn backups_are_checked_and_restores_need_the_database_to_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("salam.db");
        let store = SqliteStore::open(&database, SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap().id;
        let kept = closed_conversation(&store, &site, "v_1", HOUR, true, 10).await;
        let copy = dir.path().join("copy.db");
        let info = backup(&database, &copy).unwrap();
        assert_eq!(
            (info.conversations, info.messages, info.schema_version),
            (1, 2, crate::schema::CURRENT_VERSION)
        );
        assert!(matches!(
            backup(&database, &copy),
            Err(MaintenanceError::Exists(_))
        ));
        // Written after the backup: gone after the restore.
        closed_conversation(&store, &site, "v_2", 2 * HOUR, false, 0).await;
        assert!(matches!(
            restore(&copy, &database),
            Err(MaintenanceError::InUse(_))
        ));
        drop(store);
        let restored = restore(&copy, &database).unwrap();
        assert_eq!(restored.database.conversations, 1);
        assert!(
            restored
                .previous
                .as_ref()
                .is_some_and(|path| path.is_file())
        );
        let store = SqliteStore::open(&database, SqliteOptions::default()).unwrap();
        assert!(store.conversation(&kept).await.unwrap().is_some());
        assert_eq!(store.export_visitor("v_2").await.unwrap(), None);
        // Not a database; not Salam's.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![7u8; 8192]).unwrap();
        assert!(matches!(verify(&junk), Err(MaintenanceError::NotSalam(_))));
        // A database from a newer release is refused, by the store and by a restore.
        let newer = dir.path().join("newer.db");
        std::fs::copy(&copy, &newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        assert!(matches!(
            verify(&newer),
            Err(MaintenanceError::TooNew { found: 99, .. })
        ));
        assert!(matches!(
            SqliteStore::open(&newer, SqliteOptions::default()),
            Err(StoreError::Corrupt(reason)) if reason.contains("newer release")
        ));
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(verify(&other), Err(MaintenanceError::NotSalam(_))));
    }
}
