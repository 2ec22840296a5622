//! A small client for **core NATS** — publish, subscribe, request/reply — written on tokio
//! TCP, for the hubs of a cluster to talk to each other (issue 13).
//!
//! # Why our own client
//!
//! The release binary has a 20 MB budget with about 170 KB left; the official client
//! (`async-nats`) brings a TLS stack (rustls, ring) and JetStream we do not use. This crate
//! adds nothing to the binary but its own code: it uses tokio, bytes, serde_json, thiserror
//! and tracing, which the hub already has.
//!
//! # The protocol subset
//!
//! - Client → server: `CONNECT` (with `"verbose":false`, `"echo":false` — a client never
//!   receives its own publishes, which the hub relies on — `"headers":true`,
//!   `"no_responders":true`, and `user`/`pass` from the URL if given), `PUB`, `SUB`,
//!   `UNSUB`, `PING`, `PONG`.
//! - Server → client: `INFO` (at connect and asynchronous updates; `max_payload` is kept),
//!   `MSG`, `HMSG` (headers are read only for the status line, so that `503` answers a
//!   request with [`BusError::NoResponders`]; the payload is delivered without them),
//!   `PING` (answered with `PONG`), `PONG`, `+OK`, `-ERR` (logged; when the server closes
//!   the connection after it, the client reconnects).
//! - Not implemented: TLS, tokens, NKeys/JWT credentials, JetStream, sending headers, queue
//!   groups, cluster URL discovery (one server URL: `nats://[user:pass@]host[:port]`).
//!
//! # How it works
//!
//! [`Client`] is a cheap `Clone` handle over shared state. One background task owns the
//! connection: a reader that decodes frames with the pure parser in `proto` (partial frames
//! across reads, sizes checked before buffering) and hands messages to subscriptions, and a
//! writer that drains one bounded outbound queue into a buffered socket and flushes only
//! when the queue is empty (or after 8 192 messages), so a burst of publishes costs a few
//! write calls. Both run in one task, so when either fails the other stops with it and the
//! task reconnects.
//!
//! - **At most once.** [`Client::publish`] never waits: it puts the message on the bounded
//!   queue or returns [`BusError::Full`] / [`BusError::Disconnected`], counted in
//!   [`Stats::dropped_outbound`]. A message accepted just before the connection breaks may
//!   be lost.
//! - **Slow consumers drop.** Each [`Subscription`] has a bounded queue; when it is full
//!   the reader drops the message and counts it ([`Stats::dropped_inbound`]) rather than
//!   wait, so one slow subscriber does not stall the others.
//! - **Reconnect forever.** The first connection must succeed ([`Client::connect`] returns
//!   the error); afterwards a lost connection is retried every
//!   [`Options::reconnect_delay`], and every live subscription (and the request inbox) is
//!   subscribed again before the client reports itself connected.
//! - **Hostile servers.** Malformed input is a protocol error that closes the connection
//!   (and reconnects), never a panic; a message larger than the server's `max_payload`
//!   is refused before any memory is set aside for it.
//! - **Keepalive.** The client pings the server every 30 seconds and treats a connection
//!   that has sent nothing for a minute as dead.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), salam_bus::BusError> {
//! use bytes::Bytes;
//! use salam_bus::{Client, Options};
//!
//! let client = Client::connect(Options {
//!     url: "nats://127.0.0.1:4222".to_string(),
//!     name: "hub1".to_string(),
//!     ..Options::default()
//! })
//! .await?;
//! let mut inbox = client.subscribe("salam.hub1.>").await?;
//! client.publish("salam.hub2.forward", Bytes::from_static(b"{}"))?;
//! while let Some(message) = inbox.next().await {
//!     if message.reply.is_some() {
//!         client.respond(&message, Bytes::from_static(b"ok"))?;
//!     }
//! }
//! let answer = client.request("salam.hub2.ask", Bytes::new()).await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```
//!
//! Requests share one subscription, `_INBOX.<random>.*`; each request waits for the reply
//! on its own token under it. Because echo is off, a client cannot answer its own requests:
//! use two clients (as two hubs do).

mod client;
mod connection;
mod proto;
mod subject;
mod url;

pub use client::{Client, Subscription, SubscriptionHandle};
pub use subject::MAX_SUBJECT_LEN;

use bytes::Bytes;
use std::time::Duration;

/// How to connect and how much to buffer. Its `Debug` hides the password in the URL.
#[derive(Clone)]
pub struct Options {
    /// `nats://[user:pass@]host[:port]` (port 4222 if left out; user and password may be
    /// percent-encoded).
    pub url: String,
    /// The connection's name, shown by the server's monitoring (`connz`).
    pub name: String,
    /// Messages (publishes and control operations) waiting to be written; default 65 536.
    pub outbound_capacity: usize,
    /// Messages waiting in each subscription for [`Subscription::next`]; default 8 192.
    pub subscription_capacity: usize,
    /// The pause between reconnection attempts; default 250 ms.
    pub reconnect_delay: Duration,
    /// How long [`Client::request`] waits for a reply, and how long connecting,
    /// [`Client::subscribe`] and [`Client::flush`] wait for the server; default 2 s.
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: "nats://127.0.0.1:4222".to_string(),
            name: "salam".to_string(),
            outbound_capacity: 65_536,
            subscription_capacity: 8_192,
            reconnect_delay: Duration::from_millis(250),
            request_timeout: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Options")
            .field("url", &url::redact(&self.url))
            .field("name", &self.name)
            .field("outbound_capacity", &self.outbound_capacity)
            .field("subscription_capacity", &self.subscription_capacity)
            .field("reconnect_delay", &self.reconnect_delay)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// A message received on a subscription or as a reply.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    /// Where the sender wants an answer ([`Client::respond`]).
    pub reply: Option<String>,
    pub payload: Bytes,
}

/// Counters since [`Client::connect`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages accepted by `publish` (queued for the server).
    pub published: u64,
    /// Messages `publish` refused: queue full or disconnected.
    pub dropped_outbound: u64,
    /// Messages the server delivered (`MSG` and `HMSG`), including dropped ones.
    pub received: u64,
    /// Messages dropped because their subscription's queue was full.
    pub dropped_inbound: u64,
    /// Successful reconnections after a lost connection.
    pub reconnects: u64,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The URL cannot be parsed or asks for something this client does not do (TLS).
    #[error("bad bus url: {0}")]
    Url(String),
    /// The TCP connection could not be made (or timed out).
    #[error("cannot connect to the bus: {0}")]
    Connect(#[source] std::io::Error),
    /// The server sent something that is not the NATS protocol, or refused us (`-ERR`,
    /// for example a wrong password) while connecting.
    #[error("bus protocol error: {0}")]
    Protocol(String),
    /// Not connected now (the client is reconnecting); nothing was sent.
    #[error("not connected to the bus")]
    Disconnected,
    /// The outbound queue is full; nothing was sent.
    #[error("bus outbound queue full")]
    Full,
    /// The payload is larger than the server's `max_payload`.
    #[error("payload of {size} bytes exceeds the bus limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// No reply (or no `PONG`) within [`Options::request_timeout`].
    #[error("bus request timed out")]
    Timeout,
    /// A request's subject has no subscriber (the server answered 503).
    #[error("no responders on the bus for this subject")]
    NoResponders,
    /// Empty, with whitespace or control characters, with an empty token, too long, or a
    /// wildcard where none is allowed.
    #[error("invalid bus subject {0}")]
    InvalidSubject(String),
}
