//! Engine.IO v4 and Socket.IO v5 framing, over a plain WebSocket.
//!
//! Key design decision: **WebSocket transport only, text packets only**. The load
//! generator opens `/socket.io/?EIO=4&transport=websocket` directly, the way a
//! Socket.IO client configured with `transports: ["websocket"]` does, so there is no
//! long-polling handshake and no upgrade; each WebSocket text frame is exactly one
//! Engine.IO packet. Binary packets (Socket.IO's `BINARY_EVENT` and `BINARY_ACK`, which
//! come as extra WebSocket frames) are reported as errors: the relay under test never
//! sends them.
//!
//! The decoders are pure functions over `&str` that return an error for anything
//! malformed; none of them panics on server input.
//!
//! Engine.IO packets are a type digit and a payload: `0` open (JSON handshake), `1`
//! close, `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop. A Socket.IO packet is
//! the payload of an Engine.IO message: a type digit (`0` connect, `1` disconnect, `2`
//! event, `3` ack, `4` connect error), an optional namespace (`/admin,`), an optional
//! ack id (digits), then JSON. So an event with ack id 12 is `4212["chat",{...}]` and
//! the server's answer to it is `4312["ok"]`.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// The path that opens a WebSocket-only Engine.IO v4 session.
pub const CONNECT_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// The largest ack id that survives JavaScript's numbers unchanged (2^53 - 1).
pub const MAX_ACK_ID: u64 = (1 << 53) - 1;

/// One Engine.IO packet, borrowing its payload from the frame's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EioPacket<'a> {
    /// The handshake (JSON, see [`Handshake`]).
    Open(&'a str),
    Close,
    /// The server's heartbeat; answer with [`pong`] and the same payload.
    Ping(&'a str),
    Pong(&'a str),
    /// A Socket.IO packet.
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Decodes one Engine.IO text packet.
pub fn decode_eio(text: &str) -> Result<EioPacket<'_>> {
    let mut chars = text.chars();
    let Some(kind) = chars.next() else {
        bail!("empty Engine.IO packet");
    };
    let payload = chars.as_str();
    Ok(match kind {
        '0' => EioPacket::Open(payload),
        '1' => EioPacket::Close,
        '2' => EioPacket::Ping(payload),
        '3' => EioPacket::Pong(payload),
        '4' => EioPacket::Message(payload),
        '5' => EioPacket::Upgrade,
        '6' => EioPacket::Noop,
        'b' => bail!("binary Engine.IO packets are not supported"),
        other => bail!("unknown Engine.IO packet type {other:?}"),
    })
}

/// The answer to a ping with `payload` (usually empty).
pub fn pong(payload: &str) -> String {
    format!("3{payload}")
}

/// The JSON of an Engine.IO open packet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    pub sid: String,
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for the pong.
    pub ping_timeout: u64,
    #[serde(default)]
    pub max_payload: Option<u64>,
}

/// Parses the payload of an open packet.
pub fn parse_handshake(payload: &str) -> Result<Handshake> {
    serde_json::from_str(payload).context("the Engine.IO handshake is not the expected JSON")
}

/// One Socket.IO packet (protocol v5).
#[derive(Debug, Clone, PartialEq)]
pub enum SioPacket {
    /// The server accepted the connection to the namespace (`{"sid": ...}`), or a
    /// client asks to connect (with its `auth` payload).
    Connect(Option<Value>),
    Disconnect,
    /// `emit(args[0], args[1..])`, with an ack id when the sender wants an answer.
    Event {
        id: Option<u64>,
        args: Vec<Value>,
    },
    /// The answer to the event with ack id `id`.
    Ack {
        id: u64,
        args: Vec<Value>,
    },
    /// The server refused the connection (a middleware error).
    ConnectError(Value),
}

/// A Socket.IO packet and the namespace it belongs to (`/` when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Sio {
    pub namespace: String,
    pub packet: SioPacket,
}

impl SioPacket {
    /// An event's name (its first argument), if it is an event with a string name.
    pub fn event_name(&self) -> Option<&str> {
        match self {
            SioPacket::Event { args, .. } => args.first().and_then(Value::as_str),
            _ => None,
        }
    }
}

/// Decodes the payload of an Engine.IO message as a Socket.IO packet.
pub fn decode_sio(text: &str) -> Result<Sio> {
    let bytes = text.as_bytes();
    let Some(&kind) = bytes.first() else {
        bail!("empty Socket.IO packet");
    };
    match kind {
        b'0'..=b'4' => {}
        b'5' | b'6' => bail!("binary Socket.IO packets are not supported"),
        // Checked before any slicing: `text[1..]` is only a char boundary after an
        // ASCII first byte.
        _ => bail!("unknown Socket.IO packet type"),
    }
    let mut at = 1;
    let mut namespace = "/".to_owned();
    if bytes.get(at) == Some(&b'/') {
        let Some(comma) = text[at..].find(',') else {
            // Only a namespace and nothing else: `1/admin` (a disconnect).
            namespace = text[at..].to_owned();
            return finish(kind, namespace, None, "");
        };
        namespace = text[at..at + comma].to_owned();
        at += comma + 1;
    }
    let digits = bytes[at..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    let id = if digits > 0 {
        let id: u64 = text[at..at + digits]
            .parse()
            .context("the ack id is too large")?;
        at += digits;
        Some(id)
    } else {
        None
    };
    finish(kind, namespace, id, &text[at..])
}

fn finish(kind: u8, namespace: String, id: Option<u64>, json: &str) -> Result<Sio> {
    let parse = |what: &str| -> Result<Value> {
        serde_json::from_str(json).with_context(|| format!("the {what} payload is not JSON"))
    };
    let array = |what: &str| -> Result<Vec<Value>> {
        match parse(what)? {
            Value::Array(args) => Ok(args),
            _ => bail!("the {what} payload is not a JSON array"),
        }
    };
    let packet = match kind {
        b'0' if json.is_empty() => SioPacket::Connect(None),
        b'0' => SioPacket::Connect(Some(parse("connect")?)),
        b'1' => SioPacket::Disconnect,
        b'2' => {
            let args = array("event")?;
            if args.is_empty() {
                bail!("an event with no name");
            }
            SioPacket::Event { id, args }
        }
        b'3' => SioPacket::Ack {
            id: id.context("an ack without an id")?,
            args: array("ack")?,
        },
        b'4' => SioPacket::ConnectError(parse("connect error")?),
        _ => bail!("unknown Socket.IO packet type"),
    };
    Ok(Sio { namespace, packet })
}

/// The Engine.IO message that connects to the default namespace, with an optional
/// `auth` payload (`40` or `40{"agent":"a0"}`).
pub fn connect(auth: Option<&Value>) -> String {
    match auth {
        Some(auth) => format!("40{auth}"),
        None => "40".to_owned(),
    }
}

/// The Engine.IO message for `emit(name, ...args)` on the default namespace, asking
/// for an ack when `ack_id` is given (`42["chat",{...}]`, `4217["chat",{...}]`).
pub fn event(name: &str, args: &[Value], ack_id: Option<u64>) -> String {
    let mut array = Vec::with_capacity(args.len() + 1);
    array.push(Value::String(name.to_owned()));
    array.extend(args.iter().cloned());
    let json = Value::Array(array);
    match ack_id {
        Some(id) => format!("42{id}{json}"),
        None => format!("42{json}"),
    }
}
