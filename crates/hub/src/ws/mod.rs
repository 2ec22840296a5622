//! The WebSocket connection machinery shared by `/ws/visitor` and `/ws/agent`.
//!
//! Each connection is two tasks: a *receive* loop (this module) and a *send* task
//! ([`send`]) that owns the socket's write half. The receive loop is the one prologue
//! both endpoints share: it closes a socket that has not said `hello` within
//! `websocket.hello_timeout_secs` (1008), answers a frame the WebSocket library could
//! not hand over (over the hard limit: `frame_too_large` then 1009; not UTF-8:
//! `bad_json` then 1007), checks the frame size, decodes the frame into the
//! endpoint's closed enum ([`Endpoint::decode`]), takes a token from the connection's
//! rate bucket, answers `ping`, lets only `hello` through before the handshake and only
//! once, and then dispatches the frame to the endpoint, whose modules have one handler
//! per frame type. Everything destined for the client goes through the connection's
//! bounded mailbox to the send task. When either task ends, the other is stopped.

mod send;

use crate::fanout::{Mailbox, Outbound, Side};
use crate::rate::TokenBucket;
use crate::state::AppState;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::StreamExt;
use salam_protocol::{DecodeError, ErrorCode, ServerFrame};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// Close codes the hub uses.
/// Sends one `error` frame on a freshly upgraded socket and closes it with 1008: the
/// answer to a handshake refused before `hello` (a page on an origin the site does not
/// allow). Gives up after 5 s on a client that does not read.
pub async fn refuse(socket: WebSocket, code: ErrorCode, message: &str, reason: &'static str) {
    use axum::extract::ws::{CloseFrame, Utf8Bytes};
    let mut socket = socket;
    let frame = ServerFrame::error(code, message).to_json();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        socket.send(WsMessage::Text(frame.into())).await?;
        socket
            .send(WsMessage::Close(Some(CloseFrame {
                code: close_code::POLICY,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await?;
        // Wait for the client's close (or its going away) so the frames are read.
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, WsMessage::Close(_)) {
                break;
            }
        }
        Ok::<(), axum::Error>(())
    })
    .await;
}

pub mod close_code {
    /// The hub is restarting: reconnect (with backoff) and resume.
    pub const RECONNECT: u16 = 1012;
    /// The peer broke the protocol in a way that ends the connection (bad handshake).
    pub const POLICY: u16 = 1008;
    /// The frame was larger than the hard limit.
    pub const TOO_BIG: u16 = 1009;
    /// A text frame was not UTF-8.
    pub const NOT_UTF8: u16 = 1007;
    /// The client was silent past the idle timeout.
    pub const IDLE: u16 = 1001;
    /// The client could not keep up: reconnect and resume from the last sequence seen.
    pub const RESYNC: u16 = 4000;
    /// Agents: the session ended (signed out, expired, password changed, account
    /// disabled): sign in again; do not reconnect with the same session.
    pub const SESSION_ENDED: u16 = 4001;
    /// Agents: their role or sites were narrowed: reconnect at once for the new scope.
    pub const ACCESS_CHANGED: u16 = 4003;
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

/// Queues a frame for a client (waits if its own queue is full: backpressure on a
/// client that does not read is its own problem).
async fn send_frame(mailbox: &Mailbox, frame: &ServerFrame) {
    mailbox.send(Outbound::Frame(frame.to_json().into())).await;
}

/// Queues an error frame for a client and counts it.
async fn send_error(
    state: &AppState,
    mailbox: &Mailbox,
    code: ErrorCode,
    message: &str,
    client_id: Option<String>,
) {
    state.metrics.error(code);
    let frame = ServerFrame::Error {
        code,
        message: message.to_owned(),
        client_id,
    };
    send_frame(mailbox, &frame).await;
}

impl Replier {
    /// Queues a frame for this client.
    pub async fn send(&self, frame: &ServerFrame) {
        send_frame(&self.mailbox, frame).await;
    }

    /// Queues an error frame.
    pub async fn error(&self, code: ErrorCode, message: &str, client_id: Option<String>) {
        send_error(&self.state, &self.mailbox, code, message, client_id).await;
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

    /// Queues a frame for this client.
    pub async fn send(&self, frame: &ServerFrame) {
        send_frame(&self.mailbox, frame).await;
    }

    /// Queues an error frame.
    pub async fn error(&self, code: ErrorCode, message: &str, client_id: Option<String>) {
        send_error(&self.state, &self.mailbox, code, message, client_id).await;
    }

    /// Queues a raw outbound item (replay requests).
    pub async fn push(&self, item: Outbound) {
        self.mailbox.send(item).await;
    }
}

/// Work that completes after the frame's handler returned (a send waiting for its
/// commit, then its ack, delivery and bot turn).
pub type Deferred = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

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

/// The first frames every endpoint shares.
pub enum Prologue {
    /// `hello`: the handshake.
    Hello,
    /// `ping`: answered with `pong` here.
    Ping(Option<u64>),
    /// Anything else: dispatched to the endpoint after the handshake.
    Other,
}

/// One endpoint: its frame enum and handlers.
pub trait Endpoint: Send {
    /// The closed enum of frames this endpoint accepts.
    type Frame: Send;
    /// Which side the connection is on (delivery filtering, queue depth).
    const SIDE: Side;

    fn decode(text: &str) -> Result<Self::Frame, DecodeError>;
    /// What the shared prologue does with the frame.
    fn prologue(frame: &Self::Frame) -> Prologue;
    /// The `client_id` a refusal of this frame must name (a `send`'s).
    fn client_id(frame: &Self::Frame) -> Option<String>;
    /// Whether the handshake is done.
    fn greeted(&self) -> bool;
    /// Whether the connection belongs to an admin (receives alerts).
    fn is_admin(&self) -> bool {
        false
    }
    /// Handles `hello` (only ever called once, and first).
    fn hello(&mut self, link: &mut Link, frame: Self::Frame) -> impl Future<Output = Flow> + Send;
    /// Handles a frame after the handshake.
    fn dispatch(
        &mut self,
        link: &mut Link,
        frame: Self::Frame,
    ) -> impl Future<Output = Flow> + Send;
    /// Resolves when something outside the connection concerns it (an agent's authority
    /// changed, their session expires); then [`Endpoint::on_control`] runs. Never by
    /// default.
    fn control(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
    /// Reacts to what made [`Endpoint::control`] resolve.
    fn on_control(&mut self, _link: &mut Link) -> impl Future<Output = Flow> + Send {
        async { Flow::Continue }
    }
    /// Called once when the connection ends (unsubscribe, presence).
    fn on_close(&mut self, link: &Link) -> impl Future<Output = ()> + Send;
}

/// Runs a connection until the client leaves, the hub shuts down or the client is
/// kicked.
pub async fn run<E: Endpoint>(
    state: AppState,
    socket: WebSocket,
    connection: u64,
    mut endpoint: E,
) {
    let (sink, mut stream) = socket.split();
    // An agent receives summaries of every conversation of their sites, so their queue
    // is deeper.
    let queue = state.config.limits.outbound_queue.max(8) as usize;
    let queue = match E::SIDE {
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
        side: E::SIDE,
    };
    let last_heard = Arc::new(AtomicI64::new(crate::clock::now_ms()));
    let (close_tx, close_rx) = tokio::sync::oneshot::channel();
    let fut = send::send_loop(
        state.clone(),
        sink,
        receiver,
        kick,
        E::SIDE,
        last_heard.clone(),
        close_rx,
    );
    let mut send_task = tokio::spawn(fut);
    let mut link = Link {
        bucket: TokenBucket::new(
            state.config.limits.rate_per_sec,
            state.config.limits.burst,
            Instant::now(),
        ),
        state: state.clone(),
        connection,
        mailbox,
    };
    let max_frame = state.config.limits.max_frame_bytes as usize;
    // A socket that never says hello gives its slot back (pongs are not a handshake).
    let hello_deadline = tokio::time::Instant::now()
        + Duration::from_secs(u64::from(state.config.websocket.hello_timeout_secs.max(1)));
    let mut close_tx = Some(close_tx);
    let mut in_flight: VecDeque<Deferred> = VecDeque::new();
    'connection: loop {
        let can_read = in_flight.len() < MAX_IN_FLIGHT;
        let has_work = !in_flight.is_empty();
        let greeted = endpoint.greeted();
        let flow = tokio::select! {
            biased;
            () = async {
                if let Some(front) = in_flight.front_mut() {
                    front.await;
                }
            }, if has_work => {
                in_flight.pop_front();
                continue;
            }
            () = endpoint.control(), if greeted => {
                Box::pin(endpoint.on_control(&mut link)).await
            }
            () = tokio::time::sleep_until(hello_deadline), if !greeted => {
                Flow::Close(close_code::POLICY, "no hello in time")
            }
            incoming = stream.next(), if can_read => 'read: {
                let incoming = match incoming {
                    Some(Ok(incoming)) => incoming,
                    Some(Err(err)) => match unreadable(err) {
                        Some(refusal) => {
                            break 'read Box::pin(refuse_unreadable(&link, refusal)).await
                        }
                        None => break 'connection,
                    },
                    None => break 'connection,
                };
                last_heard.store(crate::clock::now_ms(), Ordering::Relaxed);
                match incoming {
                    WsMessage::Text(text) => {
                        state
                            .metrics
                            .frames_received
                            .fetch_add(1, Ordering::Relaxed);
                        // Boxed: the handlers' futures are large and an idle connection
                        // should not carry their space (memory per connection).
                        Box::pin(prologue(&mut endpoint, &mut link, text.as_str(), max_frame)).await
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
                        Box::pin(link.error(code, "binary frames are not part of protocol v1", None))
                            .await;
                        Flow::Continue
                    }
                    WsMessage::Ping(_) | WsMessage::Pong(_) => Flow::Continue,
                    WsMessage::Close(_) => break 'connection,
                }
            },
            _ = &mut send_task => break,
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
    state.registry.drop_connection(connection);
}

/// A frame the WebSocket library could not hand over, and what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    /// Over the hard frame limit: close 1009.
    TooBig,
    /// A text frame that is not UTF-8: `bad_json`, then close 1007 (the library
    /// cannot read on after it).
    NotUtf8,
}

/// Classifies a read error: `None` for a broken connection (nothing to tell).
fn unreadable(err: axum::Error) -> Option<Unreadable> {
    let inner = err.into_inner();
    match inner.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some(Unreadable::TooBig),
        tungstenite::Error::Utf8(_) => Some(Unreadable::NotUtf8),
        _ => None,
    }
}

/// Tells the client why its frame was refused, then closes (see [`Unreadable`]).
async fn refuse_unreadable(link: &Link, refusal: Unreadable) -> Flow {
    match refusal {
        Unreadable::TooBig => {
            link.error(
                ErrorCode::FrameTooLarge,
                "the frame is over the hard limit; the connection closes",
                None,
            )
            .await;
            Flow::Close(close_code::TOO_BIG, "frame too large")
        }
        Unreadable::NotUtf8 => {
            link.error(
                ErrorCode::BadJson,
                "the frame is not UTF-8; the connection closes",
                None,
            )
            .await;
            Flow::Close(close_code::NOT_UTF8, "text frame not UTF-8")
        }
    }
}

/// The shared prologue of one text frame: size, decode, rate, ping, handshake, then
/// the endpoint's handler.
async fn prologue<E: Endpoint>(
    endpoint: &mut E,
    link: &mut Link,
    text: &str,
    max_frame: usize,
) -> Flow {
    if text.len() > max_frame {
        link.error(
            ErrorCode::FrameTooLarge,
            &format!(
                "frame of {} bytes is over the limit of {max_frame}",
                text.len()
            ),
            None,
        )
        .await;
        return Flow::Continue;
    }
    let frame = match E::decode(text) {
        Ok(frame) => frame,
        Err(err) => {
            link.error(err.code, &err.message, None).await;
            return Flow::Continue;
        }
    };
    if !link.bucket.take(Instant::now()) {
        link.error(
            ErrorCode::RateLimited,
            "too many frames; this one was dropped",
            E::client_id(&frame),
        )
        .await;
        return Flow::Continue;
    }
    match E::prologue(&frame) {
        Prologue::Ping(nonce) => {
            link.send(&ServerFrame::Pong { nonce }).await;
            Flow::Continue
        }
        Prologue::Hello if endpoint.greeted() => {
            link.error(ErrorCode::AlreadyGreeted, "hello was already sent", None)
                .await;
            Flow::Continue
        }
        Prologue::Hello => endpoint.hello(link, frame).await,
        Prologue::Other if !endpoint.greeted() => {
            link.error(
                ErrorCode::HelloRequired,
                "send hello before anything else",
                E::client_id(&frame),
            )
            .await;
            Flow::Continue
        }
        Prologue::Other => endpoint.dispatch(link, frame).await,
    }
}

/// Finishes deferred work in order (bounded in time: a stuck store must not keep a
/// dead connection's task forever).
async fn finish(in_flight: &mut VecDeque<Deferred>) {
    while let Some(work) = in_flight.pop_front() {
        if tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .is_err()
        {
            tracing::warn!("deferred work timed out");
        }
    }
}
