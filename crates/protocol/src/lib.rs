//! Salam wire protocol, version 1.
//!
//! Key design decision: **this crate is the only place that knows the wire format.**
//! Every frame that crosses a WebSocket is one variant of a closed, internally tagged
//! enum (`{"type": "send", ...}`): [`VisitorFrame`] and [`AgentFrame`] for what clients
//! send, [`ServerFrame`] for what the hub sends. The hub decodes bytes into one of these
//! as early as possible and dispatches on the variant; anything that does not decode
//! becomes a [`DecodeError`] carrying a stable [`ErrorCode`], never a panic.
//!
//! The crate depends only on `serde` and `serde_json` and builds for
//! `wasm32-unknown-unknown`. The widget uses its enums (states, kinds, error codes) but
//! reads and writes frames with a small codec of its own (no `serde_json` in the WASM),
//! which its tests check against this crate's serde in both directions; the console's
//! JavaScript and the load generator speak the same frames, as `docs/protocol.md`
//! documents them.
//!
//! Fields are only ever added, optional, with a default for their absence, so old and
//! new clients and hubs understand each other. Codes sent to clients are closed enums
//! too ([`ErrorCode`], [`EventCode`]); for a system line's [`Message::event`], which a
//! newer hub may write with a code this version does not know, decoding never fails:
//! an unknown code is [`EventCode::Unknown`] (show the line's `text`), and a malformed
//! `event` decodes as absent.
//!
//! `docs/protocol.md` at the repository root shows an example of every frame; the unit
//! tests below check that those examples decode.

mod codes;
mod frames;

pub use codes::{DecodeError, ErrorCode};
pub use frames::*;

/// The protocol version this crate speaks. Sent in `hello` and `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Default limit on the characters of one message text (configurable in the hub).
pub const DEFAULT_MAX_TEXT_CHARS: usize = 4_000;

/// Default limit on the bytes of one WebSocket frame (configurable in the hub).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Decodes one text frame sent on `/ws/visitor`.
pub fn decode_visitor(text: &str) -> Result<VisitorFrame, DecodeError> {
    codes::decode(text)
}

/// Decodes one text frame sent on `/ws/agent`.
pub fn decode_agent(text: &str) -> Result<AgentFrame, DecodeError> {
    codes::decode(text)
}

/// Decodes one frame sent by the hub (used by the widget, the load generator and tests).
pub fn decode_server(text: &str) -> Result<ServerFrame, DecodeError> {
    codes::decode(text)
}

/// Decodes raw bytes (a binary frame, or text of unknown encoding). Binary frames are not
/// part of protocol v1, so this always fails, but with the right code and without reading
/// past the bytes given: invalid UTF-8 is `bad_json`, valid UTF-8 is
/// `binary_unsupported`.
pub fn decode_visitor_bytes(bytes: &[u8]) -> Result<VisitorFrame, DecodeError> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Err(DecodeError::new(
            ErrorCode::BinaryUnsupported,
            "binary frames are not part of protocol v1; send JSON text frames",
        )),
        Err(_) => Err(DecodeError::new(
            ErrorCode::BadJson,
            "frame is not valid UTF-8",
        )),
    }
}

impl ServerFrame {
    /// Encodes the frame as JSON text. Serialising these types cannot fail (no maps with
    /// non-string keys, no foreign `Serialize` impls), so this returns a `String`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(r#"{"type":"error","code":"internal","message":"encode failed"}"#)
        })
    }

    /// Shorthand for an error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error {
            code,
            message: message.into(),
            client_id: None,
        }
    }
}

impl VisitorFrame {
    /// Encodes the frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl AgentFrame {
    /// Encodes the frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Counts characters as the text limit does (Unicode scalar values).
pub fn text_len(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests;
