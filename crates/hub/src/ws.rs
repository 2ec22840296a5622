//! The WebSocket connection machinery shared by `/ws/visitor` and `/ws/agent`.
//!
//! Each connection is two tasks: a *receive* loop (this task) that checks size and rate,
//! decodes each frame into a closed enum and dispatches it, and a *send* task that owns
//! the socket's write half. Everything destined for the client goes through the
//! connection's bounded mailbox to the send task, which keeps each conversation's
//! messages in sequence order (filling any gap from the store), pings idle clients and
//! closes the socket on shutdown. When either task ends, the other is stopped.

use crate::fanout::{Mailbox, Outbound};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use salam_protocol::{ErrorCode, MessageKind, ServerFrame};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// Close codes the hub uses.
pub mod close_code {
    /// The hub is restarting: reconnect (with backoff) and resume.
    pub const RECONNECT: u16 = 1012;
    /// The peer broke the protocol in a way that ends the connection (bad handshake).
    pub const POLICY: u16 = 1008;
    /// The frame was larger than the hard limit.
    pub const TOO_BIG: u16 = 1009;
    /// The client was silent past the idle timeout.
    pub const IDLE: u16 = 1001;
    /// The client could not keep up: reconnect and resume from the last sequence seen.
    pub const RESYNC: u16 = 4000;
}

/// Who is on the other end, for delivery filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Visitor,
    Agent,
}

/// What the receive loop hands each frame handler.
pub struct Link {
    pub state: AppState,
    pub connection: u64,
    pub mailbox: Mailbox,
    bucket: TokenBucket,
}

/// The part of a [`Link`] that work finishing later (after a commit) needs: where to
/// send the client's answers.
#[derive(Clone)]
pub struct Replier {
    pub state: AppState,
    pub mailbox: Mailbox,
}

impl Replier {
    /// Queues a frame for this client.
    pub async fn send(&self, frame: &ServerFrame) {
        self.mailbox
            .send(Outbound::Frame(frame.to_json().into()))
            .await;
    }

    /// Queues an error frame.
    pub async fn error(&self, code: ErrorCode, message: &str, client_id: Option<String>) {
        self.state.metrics.error(code);
        self.send(&ServerFrame::Error {
            code,
            message: message.to_owned(),
            client_id,
        })
        .await;
    }
}

impl Link {
    /// A handle for work that finishes after this frame's handler returns.
    pub fn replier(&self) -> Replier {
        Replier {
            state: self.state.clone(),
            mailbox: self.mailbox.clone(),
        }
    }

    /// Queues a frame for this client (waits if its own queue is full: backpressure
    /// on a client that does not read is its own problem).
    pub async fn send(&self, frame: &ServerFrame) {
        self.replier().send(frame).await;
    }

    /// Queues an error frame.
    pub async fn error(&self, code: ErrorCode, message: &str, client_id: Option<String>) {
        self.replier().error(code, message, client_id).await;
    }

    /// Queues a raw outbound item (replay requests).
    pub async fn push(&self, item: Outbound) {
        self.mailbox.send(item).await;
    }

    /// Takes one token from the connection's bucket.
    pub fn allow(&mut self) -> bool {
        self.bucket.take(Instant::now())
    }
}

/// Work that completes after the frame's handler returned (a send waiting for its
/// commit, then its ack, delivery and bot turn).
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What a frame handler tells the receive loop.
pub enum Flow {
    Continue,
    /// Keep reading; finish this when the work queued before it has finished.
    Defer(Deferred),
    /// Close the connection with this code and reason (after the queued frames).
    Close(u16, &'static str),
}

/// Sends one connection may have waiting for their commit. They are queued to the store
/// in arrival order and finished in that order, so a client that pipelines its sends
/// gets them into one group commit without any reordering.
const MAX_IN_FLIGHT: usize = 64;

/// Per-connection token bucket (frames per second with a burst).
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket {
            tokens: burst as f64,
            rate: rate as f64,
            burst: burst as f64,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The frame handlers of one endpoint.
pub trait Endpoint: Send {
    /// Handles one text frame that passed the size and rate checks.
    fn on_text(
        &mut self,
        link: &mut Link,
        text: &str,
    ) -> impl std::future::Future<Output = Flow> + Send;
    /// Whether the connection belongs to an admin (receives alerts).
    fn is_admin(&self) -> bool {
        false
    }
    /// Called once when the connection ends (unsubscribe, presence).
    fn on_close(&mut self, link: &Link) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs a connection until the client leaves, the hub shuts down or the client is
/// kicked.
pub async fn run<E: Endpoint>(
    state: AppState,
    socket: WebSocket,
    side: Side,
    connection: u64,
    mut endpoint: E,
) {
    let (sink, mut stream) = socket.split();
    // An agent receives every message of their sites, so their queue is deeper.
    let queue = state.config.limits.outbound_queue.max(8) as usize;
    let queue = match side {
        Side::Visitor => queue,
        Side::Agent => queue * 8,
    };
    let (sender, receiver) = mpsc::channel(queue);
    let kick = Arc::new(Notify::new());
    let mailbox = Mailbox {
        connection,
        sender,
        kick: kick.clone(),
        admin: endpoint.is_admin(),
    };
    let last_heard = Arc::new(AtomicI64::new(crate::state::now_ms()));
    let (close_tx, close_rx) = tokio::sync::oneshot::channel();
    let fut = send_loop(
        state.clone(),
        sink,
        receiver,
        kick,
        side,
        last_heard.clone(),
        close_rx,
    );
    let mut send_task = tokio::spawn(fut);
    let mut link = Link {
        bucket: TokenBucket::new(state.config.limits.rate_per_sec, state.config.limits.burst),
        state: state.clone(),
        connection,
        mailbox,
    };
    let max_frame = state.config.limits.max_frame_bytes as usize;
    let mut close_tx = Some(close_tx);
    let mut in_flight: std::collections::VecDeque<Deferred> = std::collections::VecDeque::new();
    loop {
        let can_read = in_flight.len() < MAX_IN_FLIGHT;
        let has_work = !in_flight.is_empty();
        let incoming = tokio::select! {
            biased;
            () = async {
                if let Some(front) = in_flight.front_mut() {
                    front.await;
                }
            }, if has_work => {
                in_flight.pop_front();
                continue;
            }
            incoming = stream.next(), if can_read => incoming,
            _ = &mut send_task => break,
        };
        let Some(Ok(incoming)) = incoming else {
            break;
        };
        last_heard.store(crate::state::now_ms(), Ordering::Relaxed);
        let flow = match incoming {
            WsMessage::Text(text) => {
                state
                    .metrics
                    .frames_received
                    .fetch_add(1, Ordering::Relaxed);
                if text.len() > max_frame {
                    Box::pin(link.error(
                        ErrorCode::FrameTooLarge,
                        &format!(
                            "frame of {} bytes is over the limit of {max_frame}",
                            text.len()
                        ),
                        None,
                    ))
                    .await;
                    Flow::Continue
                } else {
                    // Boxed: the handlers' futures are large and an idle connection
                    // should not carry their space (memory per connection).
                    Box::pin(endpoint.on_text(&mut link, text.as_str())).await
                }
            }
            WsMessage::Binary(bytes) => {
                state
                    .metrics
                    .frames_received
                    .fetch_add(1, Ordering::Relaxed);
                let code = salam_protocol::decode_visitor_bytes(&bytes)
                    .err()
                    .map(|err| err.code)
                    .unwrap_or(ErrorCode::BinaryUnsupported);
                Box::pin(link.error(code, "binary frames are not part of protocol v1", None)).await;
                Flow::Continue
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => Flow::Continue,
            WsMessage::Close(_) => break,
        };
        match flow {
            Flow::Continue => {}
            Flow::Defer(work) => in_flight.push_back(work),
            Flow::Close(code, reason) => {
                Box::pin(finish(&mut in_flight)).await;
                if let Some(close_tx) = close_tx.take() {
                    let _ = close_tx.send((code, reason));
                }
                // Let the send task flush what is queued and close the socket.
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut send_task).await;
                break;
            }
        }
    }
    // Committed messages are delivered (and answered by the bot) even when their
    // sender has gone.
    Box::pin(finish(&mut in_flight)).await;
    send_task.abort();
    Box::pin(endpoint.on_close(&link)).await;
}

/// Finishes deferred work in order (bounded in time: a stuck store must not keep a
/// dead connection's task forever).
async fn finish(in_flight: &mut std::collections::VecDeque<Deferred>) {
    while let Some(work) = in_flight.pop_front() {
        if tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .is_err()
        {
            tracing::warn!("deferred work timed out");
        }
    }
}

/// Owns the write half: ordered delivery, heartbeats, shutdown.
async fn send_loop(
    state: AppState,
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut receiver: mpsc::Receiver<Box<Outbound>>,
    kick: Arc<Notify>,
    side: Side,
    last_heard: Arc<AtomicI64>,
    mut close_rx: tokio::sync::oneshot::Receiver<(u16, &'static str)>,
) {
    let mut shutdown = state.shutdown.clone();
    let heartbeat = Duration::from_secs(state.config.websocket.heartbeat_secs.max(1) as u64);
    let idle_ms = state.config.websocket.idle_timeout_secs as i64 * 1000;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut order = Order {
        side,
        delivered: HashMap::new(),
        own: HashMap::new(),
        held: HashMap::new(),
        hold_until: None,
    };
    let close = |code: u16, reason: &'static str| {
        WsMessage::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }))
    };
    loop {
        let item = tokio::select! {
            biased;
            _ = shutdown.changed() => {
                let _ = sink.send(close(close_code::RECONNECT, "hub restarting; reconnect")).await;
                return;
            }
            requested = &mut close_rx => {
                if let Ok((code, reason)) = requested {
                    // Drain what the handler queued before asking to close (the error).
                    while let Ok(item) = receiver.try_recv() {
                        if order.write(&state, &mut sink, *item).await.is_err() {
                            return;
                        }
                    }
                    let _ = sink.send(close(code, reason)).await;
                }
                return;
            }
            _ = kick.notified() => {
                let frame = ServerFrame::error(
                    ErrorCode::Resync,
                    "you fell behind; reconnect and resume from the last sequence you saw",
                );
                let _ = sink.feed(WsMessage::Text(frame.to_json().into())).await;
                let _ = sink.send(close(close_code::RESYNC, "too slow; resync")).await;
                return;
            }
            _ = ticker.tick() => {
                if crate::state::now_ms() - last_heard.load(Ordering::Relaxed) > idle_ms {
                    let _ = sink.send(close(close_code::IDLE, "idle timeout")).await;
                    return;
                }
                let ping = sink.send(WsMessage::Ping(Default::default()));
                if !matches!(tokio::time::timeout(WRITE_DEADLINE, ping).await, Ok(Ok(()))) {
                    return;
                }
                continue;
            }
            () = hold_expired(order.hold_until) => {
                // No `resume` came: go on from the positions `welcome` listed.
                let written = async {
                    order.release(&state, &mut sink).await?;
                    sink.flush().await
                };
                if !matches!(tokio::time::timeout(WRITE_DEADLINE, written).await, Ok(Ok(()))) {
                    return;
                }
                continue;
            }
            item = receiver.recv() => item,
        };
        let Some(item) = item else { return };
        // Write this and whatever else is already queued, then flush once. A client
        // that stops reading leaves the write pending on a full socket: it is dropped
        // when the mailbox overflows (kick) or the write makes no progress for
        // `WRITE_DEADLINE`, so its socket and queue are not held for as long as it
        // stays silent.
        let written = async {
            order.write(&state, &mut sink, *item).await?;
            while let Ok(item) = receiver.try_recv() {
                order.write(&state, &mut sink, *item).await?;
            }
            sink.flush().await
        };
        tokio::select! {
            result = tokio::time::timeout(WRITE_DEADLINE, written) => {
                if !matches!(result, Ok(Ok(()))) {
                    return;
                }
            }
            _ = kick.notified() => return,
        }
    }
}

/// How long one batch of writes to a client may take before it is dropped.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long live messages of the conversations listed in `welcome` wait for `resume`.
const HOLD_FOR_RESUME: Duration = Duration::from_secs(2);

/// Resolves when the hold set by `welcome` ends (never without one).
async fn hold_expired(until: Option<tokio::time::Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// Keeps per-conversation order for one connection.
struct Order {
    side: Side,
    /// The highest sequence written to this client, per conversation.
    delivered: HashMap<String, u64>,
    /// Sequences of this client's own messages acknowledged ahead of the ones before
    /// them: they count as delivered once those arrive.
    own: HashMap<String, std::collections::BTreeSet<u64>>,
    /// Conversations listed in `welcome` whose `resume` has not come yet, with the
    /// listed `last_seq`: their live messages are not written (they are committed, so
    /// the resume's replay includes them).
    held: HashMap<String, u64>,
    hold_until: Option<tokio::time::Instant>,
}

type SendResult = Result<(), axum::Error>;

impl Order {
    fn visible(&self, kind: MessageKind) -> bool {
        self.side == Side::Agent || kind != MessageKind::Note
    }

    /// Moves `delivered` past own messages that are next in line.
    fn advance(&mut self, conversation: &str) {
        let Some(own) = self.own.get_mut(conversation) else {
            return;
        };
        if let Some(last) = self.delivered.get_mut(conversation) {
            while own.remove(&(*last + 1)) {
                *last += 1;
            }
        }
        if own.is_empty() {
            self.own.remove(conversation);
        }
    }

    /// Records an acknowledged own message as delivered (or pending its predecessors).
    fn note_own(&mut self, conversation: &str, seq: u64) {
        match self.delivered.get(conversation).copied() {
            None => {
                self.delivered.insert(conversation.to_owned(), seq);
            }
            Some(last) if seq <= last => {}
            Some(last) if seq == last + 1 => {
                self.delivered.insert(conversation.to_owned(), seq);
                self.advance(conversation);
            }
            Some(_) => {
                self.own
                    .entry(conversation.to_owned())
                    .or_default()
                    .insert(seq);
            }
        }
    }

    async fn write(
        &mut self,
        state: &AppState,
        sink: &mut SplitSink<WebSocket, WsMessage>,
        item: Outbound,
    ) -> SendResult {
        match item {
            Outbound::Frame(json) => sink.feed(WsMessage::Text(json)).await,
            Outbound::Ack(ack) => {
                let crate::fanout::OwnAck {
                    conversation,
                    seq,
                    json,
                } = *ack;
                self.note_own(&conversation, seq);
                sink.feed(WsMessage::Text(json)).await
            }
            Outbound::Hold(listed) => {
                self.held.extend(*listed);
                self.hold_until =
                    (!self.held.is_empty()).then(|| tokio::time::Instant::now() + HOLD_FOR_RESUME);
                Ok(())
            }
            Outbound::Message(message, _) if self.held.contains_key(&message.conversation) => {
                Ok(())
            }
            Outbound::Message(message, json) => {
                self.advance(&message.conversation);
                let last = self.delivered.get(&message.conversation).copied();
                match last {
                    Some(last) if message.seq <= last => Ok(()),
                    Some(last) if message.seq > last + 1 => {
                        // A later sequence overtook an earlier one between commit and
                        // delivery: what is missing is committed, so read it.
                        // Boxed (rare): keeps the send task's future small.
                        Box::pin(self.replay(
                            state,
                            sink,
                            &message.conversation,
                            last,
                            Some(message.seq - 1),
                        ))
                        .await?;
                        self.write_message(sink, &message, json).await
                    }
                    _ => self.write_message(sink, &message, json).await,
                }
            }
            Outbound::Resume(resume) => {
                let (conversation, after) = *resume;
                if self.held.remove(&conversation).is_some() && self.held.is_empty() {
                    self.hold_until = None;
                }
                let last_seq =
                    Box::pin(self.replay(state, sink, &conversation, after, None)).await?;
                let frame = ServerFrame::Resumed {
                    conversation,
                    last_seq,
                };
                sink.feed(WsMessage::Text(frame.to_json().into())).await
            }
        }
    }

    async fn write_message(
        &mut self,
        sink: &mut SplitSink<WebSocket, WsMessage>,
        message: &salam_protocol::Message,
        json: Utf8Bytes,
    ) -> SendResult {
        self.delivered
            .insert(message.conversation.clone(), message.seq);
        if self.visible(message.kind) {
            sink.feed(WsMessage::Text(json)).await?;
        }
        Ok(())
    }

    /// Ends the hold: each held conversation goes on from the `last_seq` `welcome`
    /// listed, with what was committed since read from the store.
    async fn release(
        &mut self,
        state: &AppState,
        sink: &mut SplitSink<WebSocket, WsMessage>,
    ) -> SendResult {
        self.hold_until = None;
        for (conversation, listed) in std::mem::take(&mut self.held) {
            self.delivered.insert(conversation.clone(), listed);
            Box::pin(self.replay(state, sink, &conversation, listed, None)).await?;
        }
        Ok(())
    }

    /// Writes the committed messages after `after` (up to `until`), returning the last
    /// sequence written.
    async fn replay(
        &mut self,
        state: &AppState,
        sink: &mut SplitSink<WebSocket, WsMessage>,
        conversation: &str,
        after: u64,
        until: Option<u64>,
    ) -> Result<u64, axum::Error> {
        const PAGE: u32 = 500;
        let mut last = after;
        loop {
            let page = match state.store.messages_after(conversation, last, PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(%conversation, error = %err, "replay read failed");
                    let frame = ServerFrame::error(
                        ErrorCode::StoreUnavailable,
                        "could not read the history; resume again",
                    );
                    sink.feed(WsMessage::Text(frame.to_json().into())).await?;
                    return Ok(last);
                }
            };
            let n_read = page.len();
            for message in page {
                if until.is_some_and(|until| message.seq > until) {
                    return Ok(last);
                }
                last = message.seq;
                self.delivered.insert(conversation.to_owned(), last);
                // Filling a gap skips this client's own acknowledged messages; an
                // explicit resume sends everything asked for.
                let own = self
                    .own
                    .get_mut(conversation)
                    .is_some_and(|own| own.remove(&message.seq));
                if own && until.is_some() {
                    continue;
                }
                if self.visible(message.kind) {
                    let json = ServerFrame::Message(message).to_json();
                    sink.feed(WsMessage::Text(json.into())).await?;
                }
            }
            if n_read < PAGE as usize {
                self.delivered.insert(conversation.to_owned(), last);
                return Ok(last);
            }
        }
    }
}
