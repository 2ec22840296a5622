//! The group-commit writer: one thread, one connection, one transaction per batch.
//!
//! A job that fails after writing something it cannot undo (an unguarded job, or one
//! that panicked: a bug) rolls its whole batch back. Its own caller gets its own error
//! (a panic is [`StoreError::Corrupt`]); the other callers of the batch get the
//! retryable [`StoreError::Unavailable`]. A panic is caught, so the thread and its
//! connection serve the next batch (an uncaught one would answer `ShutDown` to every
//! later write).

use crate::{StoreError, StoreMetrics};
use rusqlite::Connection;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Called with the batch's commit result once the batch is committed or rolled back.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs inside the batch transaction and returns its completion. Given `None` (the
/// transaction could not begin), it skips its work and only returns the completion,
/// which then reports the batch's error. It sets the flag when it failed after writing
/// something it could not undo: the whole batch is then rolled back.
type Job = Box<dyn FnOnce(Option<&Connection>, &mut bool) -> Completion + Send>;

/// Handle to the writer thread. Cloning it is cheap; the thread stops when every handle
/// is dropped, after committing what was queued.
#[derive(Clone)]
pub(crate) struct Writer {
    sender: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `connection`. `queue` bounds the jobs waiting;
    /// `max_batch` bounds the jobs in one transaction. `wal` is the database's WAL
    /// file, whose length the writer caps (see [`WAL_HARD_CAP`]).
    pub(crate) fn start(
        connection: Connection,
        queue: usize,
        max_batch: usize,
        metrics: Arc<StoreMetrics>,
        wal: Option<PathBuf>,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        let (sender, receiver) = mpsc::channel(queue);
        let handle = std::thread::Builder::new()
            .name("salam-writer".into())
            .spawn(move || run(connection, receiver, max_batch, &metrics, wal))?;
        Ok((Writer { sender }, handle))
    }

    /// Queues `op` for the writer's next transaction and returns at once with the
    /// receiver of its result. Jobs queued one after another run in that order.
    pub(crate) async fn enqueue<T, F>(
        &self,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(Guard::Savepoint, op).await
    }

    /// Like [`Writer::enqueue`] without a savepoint, for the hot path (a message
    /// append): a savepoint copies every page the job touches into a sub-journal. If
    /// `op` fails after changing rows, the whole batch is rolled back and every job in
    /// it fails (retryable), so a half-done job is never committed.
    pub(crate) async fn enqueue_unguarded<T, F>(
        &self,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(Guard::Poison, op).await
    }

    async fn queue<T, F>(
        &self,
        guard: Guard,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection, poisoned| {
            // `culprit`: this job spoilt the batch, which is rolled back; its caller gets
            // its own error, the others of the batch the retryable commit error.
            let (result, culprit) = match connection {
                Some(connection) => {
                    let before = connection.total_changes();
                    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| match guard {
                        Guard::Savepoint => in_savepoint(connection, op),
                        Guard::Poison => op(connection),
                    }));
                    match ran {
                        Ok(result) => {
                            let culprit = matches!(guard, Guard::Poison)
                                && result.is_err()
                                && connection.total_changes() != before;
                            (result, culprit)
                        }
                        // Whatever it left half done (an open savepoint, rows) goes with
                        // the batch's rollback.
                        Err(panic) => (Err(panicked(panic.as_ref())), true),
                    }
                }
                None => (
                    Err(StoreError::Unavailable("transaction did not begin".into())),
                    false,
                ),
            };
            if culprit {
                *poisoned = true;
            }
            Box::new(move |commit: Result<(), StoreError>| {
                let answer = if culprit { result } else { commit.and(result) };
                let _ = reply.send(answer);
            })
        });
        self.sender
            .send(job)
            .await
            .map_err(|_| StoreError::ShutDown)?;
        Ok(answer)
    }

    /// Runs `op` in the writer's transaction and resolves once that transaction is
    /// committed. The result is `Ok` only if both `op` and the commit succeeded.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(op)
            .await?
            .await
            .map_err(|_| StoreError::ShutDown)?
    }
}

/// The error a panicking job's (or PostgreSQL read's) caller gets (a bug, or, in
/// PostgreSQL, a schema the code disagrees with: `row.get` of the wrong type panics),
/// logged with the panic's message.
pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> StoreError {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    tracing::error!(panic = message, "a store operation panicked");
    StoreError::Corrupt(format!("a store operation failed unexpectedly: {message}"))
}

/// How a job's partial failure is undone.
#[derive(Clone, Copy)]
enum Guard {
    /// In its own savepoint: a failure undoes only this job.
    Savepoint,
    /// No savepoint: a failure after a change rolls back the whole batch.
    Poison,
}

fn in_savepoint<T>(
    connection: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: these run twice per write.
    let run = |sql: &str| -> Result<(), StoreError> {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(|_| ())
            .map_err(crate::sqlite::map_err)
    };
    run("SAVEPOINT job")?;
    match op(connection) {
        Ok(value) => {
            run("RELEASE job")?;
            Ok(value)
        }
        Err(err) => {
            // Undo only this job; the rest of the batch goes on.
            let _ = connection.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(err)
        }
    }
}

/// The WAL length past which the writer itself checkpoints with `TRUNCATE`, waiting for
/// readers and the checkpoint thread. Normally the WAL restarts long before (SQLite's
/// auto-checkpoint at 32 MiB, then `journal_size_limit` cuts the file to 64 MiB), but on
/// a starved machine the background checkpointer can hold the checkpoint lock while
/// descheduled, every auto-checkpoint then finds it busy and skips, and the WAL grows
/// with the traffic. This blocking copy is the last resort that bounds the disk: rare,
/// and only ever after the commit's completions have been answered.
const WAL_HARD_CAP: u64 = 80 << 20;
/// How many batches pass between two looks at the WAL's length (one `stat` each).
const WAL_CHECK_EVERY: u32 = 16;

fn run(
    connection: Connection,
    mut receiver: mpsc::Receiver<Job>,
    max_batch: usize,
    metrics: &StoreMetrics,
    wal: Option<PathBuf>,
) {
    let mut since_check = 0_u32;
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut completions: Vec<Completion> = Vec::with_capacity(max_batch);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = batch.len();
        let mut poisoned = false;
        let commit = match connection.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                completions.extend(
                    batch
                        .drain(..)
                        .map(|job| job(Some(&connection), &mut poisoned)),
                );
                if poisoned {
                    let _ = connection.execute_batch("ROLLBACK");
                    Err(StoreError::Unavailable(
                        "a write failed midway; its batch was rolled back".into(),
                    ))
                } else {
                    match connection.execute_batch("COMMIT") {
                        Ok(()) => Ok(()),
                        Err(err) => {
                            let _ = connection.execute_batch("ROLLBACK");
                            Err(crate::sqlite::map_err(err))
                        }
                    }
                }
            }
            Err(err) => {
                let err = crate::sqlite::map_err(err);
                // Nothing ran: every job of the batch gets the error without running.
                completions.extend(batch.drain(..).map(|job| job(None, &mut poisoned)));
                Err(err)
            }
        };
        if let Err(err) = &commit {
            tracing::warn!(error = %err, batch = size, "commit failed; nothing in the batch is acknowledged");
        }
        metrics.record_batch(size, started.elapsed().as_micros() as u64, commit.is_ok());
        for completion in completions.drain(..) {
            completion(commit.clone());
        }
        since_check += 1;
        if since_check >= WAL_CHECK_EVERY
            && let Some(wal) = &wal
        {
            since_check = 0;
            let length = std::fs::metadata(wal).map_or(0, |m| m.len());
            if length > WAL_HARD_CAP {
                let started = Instant::now();
                let done = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    row.get::<_, i64>(0)
                });
                tracing::warn!(
                    wal_bytes = length,
                    busy = ?done,
                    millis = started.elapsed().as_millis() as u64,
                    "the WAL outgrew its cap; the writer checkpointed it (TRUNCATE)"
                );
            }
        }
    }
    tracing::debug!("writer stopped: every queued write is committed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let connection = Connection::open(dir.path().join("w.db")).expect("open");
        connection
            .execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .expect("schema");
        let (writer, _thread) =
            Writer::start(connection, 16, 64, Arc::new(StoreMetrics::default()), None)
                .expect("start");
        (dir, writer)
    }

    fn insert(connection: &Connection, key: &str) -> Result<(), StoreError> {
        connection
            .execute("INSERT INTO t (k) VALUES (?1)", [key])
            .map(|_| ())
            .map_err(crate::sqlite::map_err)
    }

    async fn count(writer: &Writer, key: &'static str) -> i64 {
        writer
            .write(move |connection| {
                connection
                    .query_row("SELECT count(*) FROM t WHERE k = ?1", [key], |row| {
                        row.get(0)
                    })
                    .map_err(crate::sqlite::map_err)
            })
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn an_unguarded_job_failing_midway_never_commits_half_its_work() {
        let (_dir, writer) = writer();
        // Queued back to back: usually one batch, which the failure rolls back whole.
        let first = writer
            .enqueue(|connection| insert(connection, "a"))
            .await
            .expect("queued");
        let broken = writer
            .enqueue_unguarded(|connection| {
                insert(connection, "b")?;
                Err::<(), _>(StoreError::Unavailable("fails after a write".into()))
            })
            .await
            .expect("queued");
        let first = first.await.expect("answered");
        assert!(broken.await.expect("answered").is_err());
        assert_eq!(count(&writer, "b").await, 0, "half a job was committed");
        // The other job is either committed (its own batch) or failed with the batch.
        assert_eq!(count(&writer, "a").await, i64::from(first.is_ok()));
        // The writer goes on.
        writer
            .write(|connection| insert(connection, "c"))
            .await
            .expect("later write");
        assert_eq!(count(&writer, "c").await, 1);
    }

    #[tokio::test]
    async fn an_unguarded_job_failing_before_any_write_spares_its_batch() {
        let (_dir, writer) = writer();
        let first = writer
            .enqueue_unguarded(|connection| insert(connection, "a"))
            .await
            .expect("queued");
        let refused = writer
            .enqueue_unguarded(|_| Err::<(), _>(StoreError::Closed))
            .await
            .expect("queued");
        assert!(matches!(
            refused.await.expect("answered"),
            Err(StoreError::Closed)
        ));
        first.await.expect("answered").expect("committed");
        assert_eq!(count(&writer, "a").await, 1);
    }
    /// Holds the writer inside a first job until released, so the jobs queued meanwhile
    /// form the next batch together.
    async fn stall(writer: &Writer) -> std::sync::mpsc::Sender<()> {
        let (started_tx, started) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let _stalled = writer
            .enqueue(move |_| {
                let _ = started_tx.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
            .expect("queued");
        started.await.expect("the stalling job runs");
        release
    }

    // Issue 13: a panicking job used to end the thread; every later write answered
    // `ShutDown`.
    #[tokio::test]
    async fn a_panicking_job_fails_its_batch_and_the_writer_goes_on() {
        let (_dir, writer) = writer();
        let release = stall(&writer).await;
        let bystander = writer
            .enqueue(|connection| insert(connection, "a"))
            .await
            .expect("queued");
        let panicking = writer
            .enqueue(|connection| {
                insert(connection, "b")?;
                panic!("a bug in a write");
            })
            .await
            .expect("queued");
        drop(release);
        let panicking: Result<(), StoreError> = panicking.await.expect("answered");
        assert!(
            matches!(&panicking, Err(StoreError::Corrupt(message)) if message.contains("a bug in a write")),
            "{panicking:?}"
        );
        let bystander = bystander.await.expect("answered");
        assert!(
            matches!(bystander, Err(StoreError::Unavailable(_))),
            "{bystander:?}"
        );
        assert_eq!(count(&writer, "a").await, 0, "the batch was rolled back");
        assert_eq!(count(&writer, "b").await, 0, "the batch was rolled back");
        writer
            .write(|connection| insert(connection, "c"))
            .await
            .expect("the writer goes on");
        assert_eq!(count(&writer, "c").await, 1);
    }

    // Issue 13: the job that spoilt the batch gets its own error, not the batch's.
    #[tokio::test]
    async fn an_unguarded_job_failing_midway_answers_its_own_error() {
        let (_dir, writer) = writer();
        let release = stall(&writer).await;
        let bystander = writer
            .enqueue(|connection| insert(connection, "a"))
            .await
            .expect("queued");
        let broken = writer
            .enqueue_unguarded(|connection| {
                insert(connection, "b")?;
                insert(connection, "b")
            })
            .await
            .expect("queued");
        drop(release);
        let broken = broken.await.expect("answered");
        assert!(matches!(broken, Err(StoreError::Conflict(_))), "{broken:?}");
        let bystander = bystander.await.expect("answered");
        assert!(
            matches!(bystander, Err(StoreError::Unavailable(_))),
            "{bystander:?}"
        );
        assert_eq!(count(&writer, "a").await, 0, "the batch was rolled back");
        assert_eq!(count(&writer, "b").await, 0, "the batch was rolled back");
    }
}
