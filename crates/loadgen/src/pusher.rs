//! The Pusher Channels protocol (version 7), as Soketi speaks it.
//!
//! Key design decision: **visitors and agents talk through client events on private
//! channels**, because that is the only way two Pusher clients can talk without an
//! application server in between. Each visitor subscribes to its own private channel
//! (`private-chat-N`), its agent subscribes to the same channel, and the visitor
//! triggers `client-message` on it; the server relays the event to every other
//! subscriber. Subscribing to a private channel needs an auth signature,
//! `KEY:hex(HMAC-SHA256(SECRET, "SOCKET_ID:CHANNEL"))`, which an application's auth
//! endpoint would normally compute; the load generator knows the app secret and signs
//! for itself ([`auth_signature`]). Client events have no acknowledgement: a message
//! counts as relayed when the agent receives it.
//!
//! Frames are JSON objects `{"event", "channel"?, "data"}`. The server's own events
//! carry `data` as a JSON *string* holding JSON (`pusher:connection_established`),
//! while client events carry whatever the client sent; [`Frame::data_value`] undoes
//! the string wrapping. Nothing here panics on server input.

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// The protocol version the load generator announces.
pub const PROTOCOL_VERSION: u32 = 7;

/// The event visitors trigger and agents receive.
pub const MESSAGE_EVENT: &str = "client-message";

/// The path that opens a connection to the app with public key `key`.
pub fn connect_path(key: &str) -> String {
    format!("/app/{key}?protocol={PROTOCOL_VERSION}&client=salam-loadgen&version=7.0.0")
}

/// The private channel of visitor `index`.
pub fn visitor_channel(index: u64) -> String {
    format!("private-chat-{index}")
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Frame {
    pub event: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl Frame {
    /// `data`, with a JSON string that itself holds JSON decoded (Pusher's own events
    /// send their data that way); anything else as it is.
    pub fn data_value(&self) -> Value {
        match &self.data {
            Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| self.data.clone()),
            other => other.clone(),
        }
    }
}

/// Decodes one frame.
pub fn decode(text: &str) -> Result<Frame> {
    serde_json::from_str(text).context("not a Pusher frame")
}

/// The `socket_id` from `pusher:connection_established`; a `pusher:error` (an unknown
/// app key, the connection quota) becomes the error.
pub fn socket_id(frame: &Frame) -> Result<String> {
    let data = frame.data_value();
    match frame.event.as_str() {
        "pusher:connection_established" => data
            .get("socket_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("connection_established without a socket_id"),
        "pusher:error" => bail!("the server refused the connection: {data}"),
        other => bail!("expected pusher:connection_established, got {other:?}"),
    }
}

/// The auth string for subscribing `socket_id` to the private `channel`:
/// `KEY:hex(HMAC-SHA256(SECRET, "SOCKET_ID:CHANNEL"))`.
pub fn auth_signature(key: &str, secret: &str, socket_id: &str, channel: &str) -> String {
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 takes keys of any length");
    mac.update(socket_id.as_bytes());
    mac.update(b":");
    mac.update(channel.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut auth = String::with_capacity(key.len() + 1 + 64);
    auth.push_str(key);
    auth.push(':');
    for byte in digest {
        auth.push(char::from(HEX[usize::from(byte >> 4)]));
        auth.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    auth
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `pusher:subscribe` to a private channel with its auth string.
pub fn subscribe(channel: &str, auth: &str) -> String {
    json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}}).to_string()
}

/// A client event on `channel`.
pub fn client_event(channel: &str, event: &str, data: &Value) -> String {
    json!({"event": event, "channel": channel, "data": data}).to_string()
}

/// The client's keep-alive, sent after `activity_timeout` seconds without traffic.
pub fn ping() -> String {
    r#"{"event":"pusher:ping","data":{}}"#.to_owned()
}

/// The answer to the server's `pusher:ping`.
pub fn pong() -> String {
    r#"{"event":"pusher:pong","data":{}}"#.to_owned()
}

/// What a subscription's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    Succeeded(String),
    Failed { channel: String, error: String },
}

/// Whether `frame` answers a subscription (and to which channel).
pub fn subscription_result(frame: &Frame) -> Option<Subscription> {
    let channel = frame.channel.clone().unwrap_or_default();
    match frame.event.as_str() {
        "pusher_internal:subscription_succeeded" => Some(Subscription::Succeeded(channel)),
        "pusher:subscription_error" => Some(Subscription::Failed {
            channel,
            error: frame.data_value().to_string(),
        }),
        _ => None,
    }
}
