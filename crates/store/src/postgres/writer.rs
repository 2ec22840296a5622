//! The PostgreSQL group-commit writer: one thread, one connection, one transaction per
//! batch, as SQLite's (`crate::writer`). Appends of one hub keep the order they were
//! queued in; appends of several hubs to one conversation serialise on the
//! conversation's row lock (`UPDATE … SET last_seq = last_seq + 1`), so sequences stay
//! gap-free across hubs.
//!
//! Unlike SQLite, PostgreSQL aborts the whole transaction after any failed statement.
//! So every job runs in a savepoint except the hot path's unguarded ones, and an
//! unguarded job that fails poisons its batch (rolled back, every job answered with a
//! retryable error) unless it failed with a refusal it checks before writing anything
//! ([`StoreError::Closed`], [`StoreError::StateChanged`], [`StoreError::NotFound`]) and
//! the transaction is still usable. The job that spoilt the batch answers its own
//! caller with its own error (a `Conflict` stays a `Conflict`); the others of the batch
//! get [`StoreError::Unavailable`] and may retry, as with SQLite's writer.
//!
//! **A panicking job** (a bug, or a schema the code disagrees with: `row.get` of the
//! wrong type panics) is caught: its batch is rolled back, its caller gets
//! [`StoreError::Corrupt`], the others [`StoreError::Unavailable`], and the thread
//! goes on with the next batch (on a new connection if the rollback failed). Without
//! this, one bad row would stop the writer and every later write would answer
//! `ShutDown`.
//!
//! When the connection is lost (the database restarted, the network dropped), the batch
//! in flight is answered with [`StoreError::Unavailable`] and the next batch connects
//! again, so the hub recovers by itself once the database is back.
//!
//! **Prepared statements.** The hot path's statements (an append's two) are prepared
//! once per writer connection ([`prepared`]) instead of being parsed and planned again
//! for every message: parsing and planning were about 40% of the server's CPU per
//! append (docs/benchmarks.md, "PostgreSQL"). The cache lives on the writer thread and
//! is emptied whenever the writer connects again.

use super::map_err;
use crate::writer::panicked;
use crate::{StoreError, StoreMetrics};
use pg::{Client, Transaction};
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

thread_local! {
    /// The writer connection's prepared statements, by SQL text (see [`prepared`]).
    static STATEMENTS: RefCell<HashMap<&'static str, pg::Statement>> = RefCell::new(HashMap::new());
}

/// `sql` prepared with `types` on the writer's connection, once per connection. Only
/// for jobs of the writer (it is keyed by thread: a statement belongs to the
/// connection that prepared it, and the writer thread has one connection at a time).
pub(crate) fn prepared(
    transaction: &mut Transaction<'_>,
    sql: &'static str,
    types: &[pg::types::Type],
) -> Result<pg::Statement, StoreError> {
    if let Some(statement) = STATEMENTS.with(|cache| cache.borrow().get(sql).cloned()) {
        return Ok(statement);
    }
    let statement = transaction.prepare_typed(sql, types).map_err(map_err)?;
    STATEMENTS.with(|cache| cache.borrow_mut().insert(sql, statement.clone()));
    Ok(statement)
}

/// Called with the batch's commit result once the batch is committed or rolled back.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs inside the batch transaction and returns its completion; given `None` (no
/// transaction), it only returns the completion. Sets the flag when the batch must be
/// rolled back.
type Job = Box<dyn FnOnce(Option<&mut Transaction<'_>>, &mut bool) -> Completion + Send>;

/// Handle to the writer thread. Cloning it is cheap; the thread stops when every handle
/// is dropped, after committing what was queued.
#[derive(Clone)]
pub(crate) struct Writer {
    sender: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `client`; `config` reconnects it when it is lost.
    pub(crate) fn start(
        client: Client,
        config: pg::Config,
        queue: usize,
        max_batch: usize,
        metrics: Arc<StoreMetrics>,
    ) -> std::io::Result<Writer> {
        let (sender, receiver) = mpsc::channel(queue);
        std::thread::Builder::new()
            .name("salam-pg-writer".into())
            .spawn(move || run(client, config, receiver, max_batch, &metrics))?;
        Ok(Writer { sender })
    }

    /// Queues `op` in its own savepoint for the writer's next transaction and returns
    /// at once with the receiver of its result. Jobs run in the order queued.
    pub(crate) async fn enqueue<T, F>(
        &self,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(true, op).await
    }

    /// Like [`Writer::enqueue`] without a savepoint, for the hot path (see the module
    /// documentation for when a failure rolls back the whole batch).
    pub(crate) async fn enqueue_unguarded<T, F>(
        &self,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(false, op).await
    }

    async fn queue<T, F>(
        &self,
        savepoint: bool,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |transaction, poisoned| {
            // `culprit`: this job spoilt the batch, which is rolled back; its caller gets
            // its own error, the others of the batch the retryable commit error.
            let (result, culprit) = match transaction {
                Some(transaction) => {
                    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        if savepoint {
                            in_savepoint(transaction, op)
                        } else {
                            op(transaction)
                        }
                    }));
                    match ran {
                        Ok(result) => {
                            let culprit = !savepoint
                                && matches!(&result, Err(err) if !is_refusal(err)
                                    || transaction.batch_execute("SELECT 1").is_err());
                            (result, culprit)
                        }
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

    /// Runs `op` (in a savepoint) in the writer's transaction and resolves once that
    /// transaction is committed.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(op)
            .await?
            .await
            .map_err(|_| StoreError::ShutDown)?
    }
}

/// The refusals a job checks before it writes: they leave nothing to undo.
fn is_refusal(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Closed | StoreError::StateChanged(_) | StoreError::NotFound
    )
}

fn in_savepoint<T>(
    transaction: &mut Transaction<'_>,
    op: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut savepoint = transaction.savepoint("job").map_err(map_err)?;
    match op(&mut savepoint) {
        Ok(value) => {
            savepoint.commit().map_err(map_err)?;
            Ok(value)
        }
        // Dropping the savepoint rolls it back: only this job is undone.
        Err(err) => Err(err),
    }
}

fn run(
    client: Client,
    config: pg::Config,
    mut receiver: mpsc::Receiver<Job>,
    max_batch: usize,
    metrics: &StoreMetrics,
) {
    let mut client = Some(client);
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
        let mut reconnect = false;
        if client.as_ref().is_none_or(Client::is_closed) {
            // Statements prepared on the lost connection do not exist on the next one.
            STATEMENTS.with(|cache| cache.borrow_mut().clear());
            client = match config.connect(pg::NoTls) {
                Ok(fresh) => {
                    tracing::info!("the store's writer connected to PostgreSQL again");
                    Some(fresh)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the store's writer cannot reach PostgreSQL");
                    None
                }
            };
        }
        let commit = match client.as_mut().map(Client::transaction) {
            Some(Ok(mut transaction)) => {
                completions.extend(
                    batch
                        .drain(..)
                        .map(|job| job(Some(&mut transaction), &mut poisoned)),
                );
                if poisoned {
                    // A rollback that fails leaves the session in doubt (a job may have
                    // panicked midway through a statement): the next batch reconnects.
                    if let Err(err) = transaction.rollback() {
                        tracing::warn!(error = %err, "the store's writer could not roll back; reconnecting");
                        reconnect = true;
                    }
                    Err(StoreError::Unavailable(
                        "a write failed midway; its batch was rolled back".into(),
                    ))
                } else {
                    transaction.commit().map_err(map_err)
                }
            }
            Some(Err(err)) => {
                completions.extend(batch.drain(..).map(|job| job(None, &mut poisoned)));
                Err(map_err(err))
            }
            None => {
                completions.extend(batch.drain(..).map(|job| job(None, &mut poisoned)));
                Err(StoreError::Unavailable(
                    "the database cannot be reached".into(),
                ))
            }
        };
        if reconnect {
            client = None;
        }
        if let Err(err) = &commit {
            tracing::warn!(error = %err, batch = size, "commit failed; nothing in the batch is acknowledged");
        }
        metrics.record_batch(size, started.elapsed().as_micros() as u64, commit.is_ok());
        for completion in completions.drain(..) {
            completion(commit.clone());
        }
    }
    tracing::debug!("PostgreSQL writer stopped: every queued write is committed");
}
