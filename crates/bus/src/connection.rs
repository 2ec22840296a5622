//! The connection task: the handshake, then a reader and a writer on one socket, and
//! reconnecting when either fails.
//!
//! The reader and the writer are two futures of one task (`select!`): the writer owns the
//! outbound queue's receiver across connections, and when one of them fails the other is
//! dropped with the socket. They share a [`Link`]: the `PONG`s owed to the server, the
//! waiters of our `PING`s in order.

use crate::BusError;
use crate::client::{Command, Shared, lock};
use crate::proto::{self, Parsed, ServerInfo, ServerOp};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// The writer's buffer: a burst of publishes goes out in writes of this size.
const WRITE_BUFFER: usize = 64 * 1024;
/// Commands the writer takes off the queue before it flushes even if more are waiting.
const MAX_BATCH: usize = 8 * 1024;
/// The reader's buffer grows from this (and to a whole message when one is larger).
const READ_BUFFER: usize = 64 * 1024;
/// The most the read buffer grows by before the bytes to fill it have arrived.
const READ_GROWTH: usize = 1024 * 1024;
/// How often the client pings an otherwise quiet server.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A server that sent nothing (not even a `PONG` to our keepalive) for this long is gone.
/// The reader checks it, so it also catches a writer stuck on a server that stopped
/// reading (no keepalive goes out, no `PONG` comes back).
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A socket after a successful handshake.
pub(crate) struct Connection {
    reader: OwnedReadHalf,
    writer: BufWriter<OwnedWriteHalf>,
    /// Bytes read but not yet parsed (the handshake may have read past the `PONG`).
    buffer: BytesMut,
    /// This connection's number (see `Shared::generation`).
    generation: u64,
}

/// Connect and handshake, within the request timeout.
pub(crate) async fn establish(shared: &Shared) -> Result<Connection, BusError> {
    match tokio::time::timeout(shared.options.request_timeout, handshake(shared)).await {
        Ok(result) => result,
        Err(_) => Err(BusError::Connect(io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer from the server in time",
        ))),
    }
}

/// TCP, `INFO`, then `CONNECT`, a `SUB` for every live subscription and `PING`; done at the
/// `PONG`. Messages for the subscriptions may arrive before it and are delivered.
async fn handshake(shared: &Shared) -> Result<Connection, BusError> {
    let address = &shared.address;
    let stream = TcpStream::connect((address.host.as_str(), address.port))
        .await
        .map_err(BusError::Connect)?;
    // Writes are batched by the writer; do not let the kernel delay the last one.
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut connection = Connection {
        reader,
        writer: BufWriter::with_capacity(WRITE_BUFFER, writer),
        buffer: BytesMut::with_capacity(READ_BUFFER),
        generation: shared.generation.fetch_add(1, Ordering::Relaxed) + 1,
    };
    match connection.read_op(shared).await? {
        ServerOp::Info(info) => apply_info(shared, &info)?,
        other => {
            return Err(BusError::Protocol(format!(
                "expected INFO first, got {}",
                op_name(&other)
            )));
        }
    }
    let mut out = BytesMut::new();
    let credentials = address
        .credentials
        .as_ref()
        .map(|(user, pass)| (user.as_str(), pass.as_str()));
    proto::encode_connect(&mut out, &shared.options.name, credentials);
    for (sid, entry) in lock(&shared.subscriptions).iter_mut() {
        proto::encode_sub(&mut out, &entry.subject, *sid);
        entry.sent_generation = connection.generation;
    }
    out.extend_from_slice(b"PING\r\n");
    connection.send(&out).await?;
    loop {
        match connection.read_op(shared).await? {
            ServerOp::Pong => return Ok(connection),
            ServerOp::Ping => connection.send(b"PONG\r\n").await?,
            ServerOp::Info(info) => apply_info(shared, &info)?,
            ServerOp::Ok => {}
            ServerOp::Err(text) => return Err(BusError::Protocol(format!("server: {text}"))),
            ServerOp::Msg(delivery) => shared.dispatch(delivery),
        }
    }
}

fn apply_info(shared: &Shared, info: &ServerInfo) -> Result<(), BusError> {
    if info.tls_required {
        return Err(BusError::Url(
            "the server requires TLS, which this client does not do".to_string(),
        ));
    }
    if let Some(max_payload) = info.max_payload {
        shared.set_max_payload(max_payload);
    }
    Ok(())
}

fn op_name(op: &ServerOp) -> &'static str {
    match op {
        ServerOp::Info(_) => "INFO",
        ServerOp::Msg(_) => "MSG",
        ServerOp::Ping => "PING",
        ServerOp::Pong => "PONG",
        ServerOp::Ok => "+OK",
        ServerOp::Err(_) => "-ERR",
    }
}

impl Connection {
    /// The next operation, reading as much as it takes.
    async fn read_op(&mut self, shared: &Shared) -> Result<ServerOp, BusError> {
        loop {
            let limit = shared.max_payload.load(Ordering::Relaxed);
            match proto::parse(&mut self.buffer, limit) {
                Ok(Parsed::Op(op)) => return Ok(op),
                Ok(Parsed::NeedMore(needed)) => {
                    read_more(&mut self.reader, &mut self.buffer, needed).await?
                }
                Err(error) => return Err(BusError::Protocol(error.0)),
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), BusError> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(BusError::Connect)?;
        self.writer.flush().await.map_err(BusError::Connect)
    }
}

/// Read at least once into `buffer`, making room towards the `needed` bytes in all, but
/// at most [`READ_GROWTH`] at a time: memory follows the bytes that actually arrive, not
/// the size a server announces.
async fn read_more(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
    needed: usize,
) -> Result<(), BusError> {
    let room = needed
        .saturating_sub(buffer.len())
        .clamp(READ_BUFFER / 4, READ_GROWTH);
    buffer.reserve(room);
    match reader.read_buf(buffer).await {
        Ok(0) => Err(BusError::Connect(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ))),
        Ok(_) => Ok(()),
        Err(error) => Err(BusError::Connect(error)),
    }
}

/// Serve connections forever: when one fails, wait, reconnect (re-subscribing), repeat.
/// Ends only when the [`crate::Client`] is dropped (the task is aborted).
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut outbound: mpsc::Receiver<Command>,
    mut connection: Connection,
) {
    loop {
        let error = serve(&shared, &mut outbound, connection).await;
        shared.connected.store(false, Ordering::Release);
        tracing::warn!(%error, "bus connection lost; reconnecting");
        let mut n_failures: u64 = 0;
        connection = loop {
            tokio::time::sleep(shared.options.reconnect_delay).await;
            match establish(&shared).await {
                Ok(connection) => break connection,
                Err(error) => {
                    n_failures += 1;
                    // Once, then about once a minute at the default delay: not a log flood.
                    if n_failures == 1 || n_failures.is_multiple_of(240) {
                        tracing::warn!(%error, n_failures, "bus reconnection failed");
                    } else {
                        tracing::debug!(%error, n_failures, "bus reconnection failed");
                    }
                }
            }
        };
        shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        shared.connected.store(true, Ordering::Release);
        tracing::info!("bus reconnected");
    }
}

/// What the reader and writer of one connection share.
struct Link {
    /// `PONG`s the writer owes the server (the reader saw its `PING`s).
    pongs_owed: AtomicUsize,
    wake_writer: Notify,
    /// One entry per `PING` written and not yet answered, in order; keepalive pings have
    /// no waiter.
    pings: Mutex<VecDeque<Option<oneshot::Sender<()>>>>,
}

/// Run one connection until it fails; returns why.
async fn serve(
    shared: &Shared,
    outbound: &mut mpsc::Receiver<Command>,
    connection: Connection,
) -> BusError {
    let Connection {
        reader,
        writer,
        buffer,
        generation,
    } = connection;
    let link = Link {
        pongs_owed: AtomicUsize::new(0),
        wake_writer: Notify::new(),
        pings: Mutex::new(VecDeque::new()),
    };
    tokio::select! {
        error = read_loop(shared, &link, reader, buffer) => error,
        error = write_loop(shared, &link, outbound, writer, generation) => error,
    }
}

async fn read_loop(
    shared: &Shared,
    link: &Link,
    mut reader: OwnedReadHalf,
    mut buffer: BytesMut,
) -> BusError {
    loop {
        let limit = shared.max_payload.load(Ordering::Relaxed);
        let needed = match proto::parse(&mut buffer, limit) {
            Ok(Parsed::Op(op)) => {
                handle(shared, link, op);
                continue;
            }
            Ok(Parsed::NeedMore(needed)) => needed,
            Err(error) => return BusError::Protocol(error.0),
        };
        match tokio::time::timeout(STALE_AFTER, read_more(&mut reader, &mut buffer, needed)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return error,
            Err(_) => {
                return BusError::Protocol("nothing from the server for a minute".to_string());
            }
        }
    }
}

fn handle(shared: &Shared, link: &Link, op: ServerOp) {
    match op {
        ServerOp::Msg(delivery) => shared.dispatch(delivery),
        ServerOp::Ping => {
            link.pongs_owed.fetch_add(1, Ordering::Relaxed);
            link.wake_writer.notify_one();
        }
        ServerOp::Pong => {
            if let Some(Some(waiter)) = lock(&link.pings).pop_front() {
                let _ = waiter.send(());
            }
        }
        ServerOp::Info(info) => {
            if let Some(max_payload) = info.max_payload {
                shared.set_max_payload(max_payload);
            }
        }
        ServerOp::Ok => {}
        // The server closes the connection after the fatal ones; the reader then sees EOF.
        ServerOp::Err(text) => tracing::warn!(error = %text, "bus server error"),
    }
}

async fn write_loop(
    shared: &Shared,
    link: &Link,
    outbound: &mut mpsc::Receiver<Command>,
    mut writer: BufWriter<OwnedWriteHalf>,
    generation: u64,
) -> BusError {
    let mut keepalive = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut scratch = BytesMut::with_capacity(4 * 1024);
    loop {
        scratch.clear();
        tokio::select! {
            biased;
            _ = link.wake_writer.notified() => {}
            _ = keepalive.tick() => {
                lock(&link.pings).push_back(None);
                scratch.extend_from_slice(b"PING\r\n");
            }
            command = outbound.recv() => match command {
                Some(command) => encode(shared, link, command, generation, &mut scratch),
                // Cannot happen while the client exists (it holds a sender).
                None => return BusError::Disconnected,
            },
        }
        // Drain whatever else is queued into the buffer; flush when the queue is empty (or
        // after a large batch, so that a queue that never empties still gets flushed and the
        // reader, in the same task, gets its turn).
        let mut n_drained = 0;
        loop {
            for _ in 0..link.pongs_owed.swap(0, Ordering::Relaxed) {
                scratch.extend_from_slice(b"PONG\r\n");
            }
            if !scratch.is_empty() {
                if let Err(error) = writer.write_all(&scratch).await {
                    return BusError::Connect(error);
                }
                scratch.clear();
            }
            if n_drained == MAX_BATCH {
                break;
            }
            match outbound.try_recv() {
                Ok(command) => encode(shared, link, command, generation, &mut scratch),
                Err(_) => break,
            }
            n_drained += 1;
        }
        if let Err(error) = writer.flush().await {
            return BusError::Connect(error);
        }
    }
}

fn encode(shared: &Shared, link: &Link, command: Command, generation: u64, out: &mut BytesMut) {
    match command {
        Command::Publish {
            subject,
            reply,
            payload,
        } => {
            proto::encode_pub(out, &subject, reply.as_deref(), &payload);
        }
        Command::Subscribe { sid } => {
            if let Some(entry) = lock(&shared.subscriptions).get_mut(&sid)
                && entry.sent_generation != generation
            {
                proto::encode_sub(out, &entry.subject, sid);
                entry.sent_generation = generation;
            }
        }
        Command::Unsubscribe { sid } => proto::encode_unsub(out, sid),
        Command::Ping(waiter) => {
            lock(&link.pings).push_back(Some(waiter));
            out.extend_from_slice(b"PING\r\n");
        }
    }
}
