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
//! **Several hubs on one database** (issue 13). Two hubs' batches can lock the same
//! rows in opposite orders; PostgreSQL then aborts one of them with
//! `deadlock_detected` (40P01), or a serialization failure (40001). Such a batch is
//! rolled back and run again whole in a fresh transaction, up to [`RETRIES`] times
//! after a short jittered pause, before its jobs are failed as above; each rerun counts
//! in [`StoreMetrics::retried_batches`]. The conflict is seen through `map_err`
//! ([`note_conflict`]), whether it aborted an unguarded job's transaction or only a
//! guarded job's savepoint, and through the commit's own error. So every job must be
//! able to run again: it is a `FnOnce + Clone` closure, cloned for each run, and it
//! answers its caller only once the batch is committed or given up. A run that was
//! rolled back left nothing behind (a resend is still found by its client id, the
//! statement cache holds statements of the session, which a rollback keeps), so a
//! retried append is written once.
//!
//! Deadlocks are also avoided at the source: the jobs that lock a conversation's row
//! (appends and transitions, queued with [`Writer::enqueue_on`] and the like) name it,
//! and a batch naming two conversations or more locks their rows first, in the order
//! of their ids (`SELECT … ORDER BY id FOR NO KEY UPDATE`, one statement per batch).
//! Two hubs' batches on the same conversations then wait for each other instead of
//! deadlocking; other rows (visitors, agents) are left to the retry.
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
use rand::Rng;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
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

/// How many times a batch the database aborted for a deadlock or a serialization
/// failure runs again before its jobs are failed.
const RETRIES: u32 = 5;

thread_local! {
    /// Set on the writer thread when a statement failed with a conflict another
    /// transaction caused (see [`note_conflict`]): its batch runs again.
    static CONFLICT: Cell<bool> = const { Cell::new(false) };
}

/// Whether the database aborted `err`'s statement only because of another
/// transaction: a deadlock (40P01) or a serialization failure (40001). Running the
/// same transaction again is the documented answer.
fn is_conflict(err: &pg::Error) -> bool {
    use pg::error::SqlState;
    err.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// Notes a conflict ([`is_conflict`]) for the writer, which retries the batch it
/// happened in. Called by `map_err` for every error, so the writer learns of it
/// whether the job failed (unguarded, the transaction is aborted) or only its savepoint
/// was rolled back (guarded). Off the writer thread the flag is never read.
pub(crate) fn note_conflict(err: &pg::Error) {
    if is_conflict(err) {
        CONFLICT.with(|conflict| conflict.set(true));
    }
}

/// A queued job. It may run more than once: a batch the database aborted for a
/// conflict runs again whole in a fresh transaction; only the last run counts.
trait Job: Send {
    /// Runs the job inside the batch's transaction and keeps its result; returns
    /// `true` when the job spoilt the batch, which must be rolled back.
    fn run(&mut self, transaction: &mut Transaction<'_>) -> bool;
    /// Answers the caller once the batch is committed (`Ok`) or given up (`Err`).
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
    /// Forgets the last run's result (a batch about to run again).
    fn forget(&mut self);
    /// The conversation whose row the job locks, if it says so.
    fn conversation(&self) -> Option<&str>;
}

struct Queued<T, F> {
    op: F,
    savepoint: bool,
    /// The conversation whose row the job locks (see [`Writer::enqueue_on`]).
    conversation: Option<String>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    /// The last run's result and whether it spoilt the batch (`culprit`: its caller
    /// gets its own error, the others of the batch the retryable commit error).
    ran: Option<(Result<T, StoreError>, bool)>,
}

impl<T, F> Job for Queued<T, F>
where
    T: Send,
    F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Clone + Send,
{
    fn run(&mut self, transaction: &mut Transaction<'_>) -> bool {
        // A copy per run: the job's own values stay for a run after a conflict.
        let (op, savepoint) = (self.op.clone(), self.savepoint);
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if savepoint {
                in_savepoint(transaction, op)
            } else {
                op(transaction)
            }
        }));
        let (result, culprit) = match ran {
            Ok(result) => {
                let culprit = !savepoint
                    && matches!(&result, Err(err) if !is_refusal(err)
                        || transaction.batch_execute("SELECT 1").is_err());
                (result, culprit)
            }
            Err(panic) => (Err(panicked(panic.as_ref())), true),
        };
        self.ran = Some((result, culprit));
        culprit
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match self.ran {
            Some((result, true)) => result,
            Some((result, false)) => commit.and(result),
            // The transaction did not begin: `commit` says why.
            None => Err(commit
                .err()
                .unwrap_or_else(|| StoreError::Unavailable("transaction did not begin".into()))),
        };
        let _ = self.reply.send(answer);
    }

    fn forget(&mut self) {
        self.ran = None;
    }

    fn conversation(&self) -> Option<&str> {
        self.conversation.as_deref()
    }
}

/// Handle to the writer thread. Cloning it is cheap; the thread stops when every handle
/// is dropped, after committing what was queued.
#[derive(Clone)]
pub(crate) struct Writer {
    sender: mpsc::Sender<Box<dyn Job>>,
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
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Clone + Send + 'static,
    {
        self.queue(true, None, op).await
    }

    /// Like [`Writer::enqueue`] for a job that locks `conversation`'s row: the batch
    /// locks its conversations' rows up front, in one order (see the module
    /// documentation). `conversation` is as stored (see `storable`).
    pub(crate) async fn enqueue_on<T, F>(
        &self,
        conversation: String,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Clone + Send + 'static,
    {
        self.queue(true, Some(conversation), op).await
    }

    /// Like [`Writer::enqueue_on`] without a savepoint, for the hot path (see the
    /// module documentation for when a failure rolls back the whole batch).
    pub(crate) async fn enqueue_unguarded<T, F>(
        &self,
        conversation: String,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Clone + Send + 'static,
    {
        self.queue(false, Some(conversation), op).await
    }

    async fn queue<T, F>(
        &self,
        savepoint: bool,
        conversation: Option<String>,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Clone + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Queued {
            op,
            savepoint,
            conversation,
            reply,
            ran: None,
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
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Clone + Send + 'static,
    {
        Self::answer(self.enqueue(op).await?).await
    }

    /// [`Writer::write`] for a job that locks `conversation`'s row (see
    /// [`Writer::enqueue_on`]).
    pub(crate) async fn write_on<T, F>(&self, conversation: String, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Clone + Send + 'static,
    {
        Self::answer(self.enqueue_on(conversation, op).await?).await
    }

    async fn answer<T>(answer: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        answer.await.map_err(|_| StoreError::ShutDown)?
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
    mut receiver: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    metrics: &StoreMetrics,
) {
    let mut client = Some(client);
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
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
        let mut attempt = 0;
        let commit = loop {
            match run_batch(&mut client, &config, &mut batch, attempt < RETRIES) {
                Attempt::Done(commit) => break commit,
                Attempt::Conflict => {
                    attempt += 1;
                    metrics.retried_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        attempt,
                        batch = size,
                        "another writer's transaction conflicted with this batch; running it again"
                    );
                    backoff(attempt);
                }
            }
        };
        if let Err(err) = &commit {
            tracing::warn!(error = %err, batch = size, "commit failed; nothing in the batch is acknowledged");
        }
        metrics.record_batch(size, started.elapsed().as_micros() as u64, commit.is_ok());
        for job in batch.drain(..) {
            job.answer(commit.clone());
        }
    }
    tracing::debug!("PostgreSQL writer stopped: every queued write is committed");
}

/// How one run of a batch ended.
enum Attempt {
    /// Committed, or failed for good: answer the jobs with this.
    Done(Result<(), StoreError>),
    /// The database aborted the batch for a conflict with another transaction and it
    /// was rolled back: run it again.
    Conflict,
}

/// Runs every job of `batch` in one transaction on `client` (connecting again first
/// when it is lost) and commits it. With `retry`, a batch in which a statement failed
/// for a conflict ([`note_conflict`]) is rolled back for another run instead.
fn run_batch(
    client: &mut Option<Client>,
    config: &pg::Config,
    batch: &mut [Box<dyn Job>],
    retry: bool,
) -> Attempt {
    // A job that does not run this time must not answer with an earlier run's result.
    for job in batch.iter_mut() {
        job.forget();
    }
    if client.as_ref().is_none_or(Client::is_closed) {
        // Statements prepared on the lost connection do not exist on the next one.
        STATEMENTS.with(|cache| cache.borrow_mut().clear());
        *client = match config.connect(pg::NoTls) {
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
    let Some(connection) = client.as_mut() else {
        return Attempt::Done(Err(StoreError::Unavailable(
            "the database cannot be reached".into(),
        )));
    };
    let mut transaction = match connection.transaction() {
        Ok(transaction) => transaction,
        Err(err) => return Attempt::Done(Err(map_err(err))),
    };
    CONFLICT.with(|conflict| conflict.set(false));
    if let Err(err) = lock_conversations(&mut transaction, batch) {
        let conflict = CONFLICT.with(Cell::take);
        if transaction.rollback().is_err() {
            *client = None;
        } else if conflict && retry {
            return Attempt::Conflict;
        }
        return Attempt::Done(Err(err));
    }
    let mut poisoned = false;
    for job in batch.iter_mut() {
        poisoned |= job.run(&mut transaction);
    }
    let conflict = CONFLICT.with(Cell::take);
    if poisoned || (conflict && retry) {
        // A rollback that fails leaves the session in doubt (a job may have panicked
        // midway through a statement): the next batch reconnects, and this one is
        // not run again.
        if let Err(err) = transaction.rollback() {
            tracing::warn!(error = %err, "the store's writer could not roll back; reconnecting");
            *client = None;
        } else if conflict && retry {
            return Attempt::Conflict;
        }
        return Attempt::Done(Err(StoreError::Unavailable(
            "a write failed midway; its batch was rolled back".into(),
        )));
    }
    // Past the last retry, a conflict that only rolled back a guarded job's savepoint
    // fails that job alone: the rest of the batch commits.
    match transaction.commit() {
        Ok(()) => Attempt::Done(Ok(())),
        Err(err) if retry && is_conflict(&err) => Attempt::Conflict,
        Err(err) => Attempt::Done(Err(map_err(err))),
    }
}

/// Locks the rows of the conversations `batch`'s jobs name, in the order of their ids,
/// before any job runs. Another hub's batch that writes to the same conversations in
/// another order then waits for this one instead of deadlocking with it. Only for two
/// conversations or more: one row alone is locked by the job itself, in any order.
fn lock_conversations(
    transaction: &mut Transaction<'_>,
    batch: &[Box<dyn Job>],
) -> Result<(), StoreError> {
    let ids: BTreeSet<&str> = batch.iter().filter_map(|job| job.conversation()).collect();
    if ids.len() < 2 {
        return Ok(());
    }
    let ids: Vec<&str> = ids.into_iter().collect();
    let statement = prepared(
        transaction,
        "SELECT 1 FROM conversations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        &[pg::types::Type::TEXT_ARRAY],
    )?;
    transaction
        .execute(&statement, &[&ids])
        .map(|_| ())
        .map_err(map_err)
}

/// A short pause before running a conflicting batch again, longer with each attempt
/// and jittered, so the two writers that deadlocked do not meet again in step.
fn backoff(attempt: u32) {
    let most = 5 * u64::from(attempt.min(RETRIES));
    let millis = rand::thread_rng().gen_range(1..=most);
    std::thread::sleep(Duration::from_millis(millis));
}
