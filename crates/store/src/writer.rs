//! The group-commit writer: one thread, one connection, one transaction per batch.

use crate::{StoreError, StoreMetrics};
use rusqlite::Connection;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Called with the batch's commit result once the batch is committed or rolled back.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs inside the batch transaction (in its own savepoint) and returns its completion.
/// Given `None` (the transaction could not begin), it skips its work and only returns
/// the completion, which then reports the batch's error.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

/// Handle to the writer thread. Cloning it is cheap; the thread stops when every handle
/// is dropped, after committing what was queued.
#[derive(Clone)]
pub(crate) struct Writer {
    sender: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `connection`. `queue` bounds the jobs waiting;
    /// `max_batch` bounds the jobs in one transaction.
    pub(crate) fn start(
        connection: Connection,
        queue: usize,
        max_batch: usize,
        metrics: Arc<StoreMetrics>,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        let (sender, receiver) = mpsc::channel(queue);
        let handle = std::thread::Builder::new()
            .name("salam-writer".into())
            .spawn(move || run(connection, receiver, max_batch, &metrics))?;
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
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let result = match connection {
                Some(connection) => in_savepoint(connection, op),
                None => Err(StoreError::Unavailable("transaction did not begin".into())),
            };
            Box::new(move |commit: Result<(), StoreError>| {
                let _ = reply.send(commit.and(result));
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

fn run(
    connection: Connection,
    mut receiver: mpsc::Receiver<Job>,
    max_batch: usize,
    metrics: &StoreMetrics,
) {
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
        let commit = match connection.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                completions.extend(batch.drain(..).map(|job| job(Some(&connection))));
                match connection.execute_batch("COMMIT") {
                    Ok(()) => Ok(()),
                    Err(err) => {
                        let _ = connection.execute_batch("ROLLBACK");
                        Err(crate::sqlite::map_err(err))
                    }
                }
            }
            Err(err) => {
                let err = crate::sqlite::map_err(err);
                // Nothing ran: every job of the batch gets the error without running.
                completions.extend(batch.drain(..).map(|job| job(None)));
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
    }
    tracing::debug!("writer stopped: every queued write is committed");
}
