//! Stable error codes and the decoder that maps serde failures onto them.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fmt;

/// Every error a client can see. The snake_case names are stable: clients match on them,
/// so a code is never renamed or reused for another meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON (or not UTF-8).
    BadJson,
    /// The frame is JSON but its `type` is missing or not a frame of this endpoint.
    UnknownType,
    /// The frame has the right `type` but a field is missing or has the wrong type.
    BadField,
    /// A binary WebSocket frame; protocol v1 uses text frames only.
    BinaryUnsupported,
    /// The message text is longer than the hub's limit (default 4,000 characters).
    TextTooLong,
    /// The message text is empty or only white space.
    EmptyText,
    /// The frame is larger than the hub's limit (default 64 KiB).
    FrameTooLarge,
    /// Too many frames too fast; the frame was dropped. Slow down and resend.
    RateLimited,
    /// The `hello` asked for a protocol version the hub does not speak.
    UnsupportedVersion,
    /// A frame other than `hello` (or `ping`) arrived before the handshake.
    HelloRequired,
    /// A second `hello` on a connection that already completed the handshake.
    AlreadyGreeted,
    /// The visitor token or agent session is missing, forged or expired.
    Unauthorized,
    /// The caller may not touch this conversation or do this action.
    Forbidden,
    /// Agents: a `take` (or a transfer to an agent) refused because the agent already
    /// holds as many chats as their capacity.
    AtCapacity,
    /// The site key is unknown.
    UnknownSite,
    /// The conversation (or other object) does not exist.
    NotFound,
    /// The conversation is closed; start a new one.
    ConversationClosed,
    /// The hub could not store the message (disk full, database read-only). Nothing was
    /// acknowledged; resend later with the same `client_id`.
    StoreUnavailable,
    /// The client fell too far behind the live stream; resume from the last sequence seen.
    Resync,
    /// The hub is at its connection limit; retry later.
    Overloaded,
    /// An unexpected server-side failure; details are in the hub's log, never here.
    Internal,
    /// Agents: their role or sites were narrowed while connected; the socket closes
    /// (code 4003) and a reconnect gets the new scope.
    AccessChanged,
    /// REST: the path exists but not with this HTTP method.
    MethodNotAllowed,
    /// Visitors: the page's origin is not one of the site's allowed origins. Terminal:
    /// the hub closes the socket (1008) and reconnecting will not help until the site's
    /// owner allows the origin.
    OriginNotAllowed,
}

impl ErrorCode {
    /// The stable snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadField => "bad_field",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::EmptyText => "empty_text",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::AlreadyGreeted => "already_greeted",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::AtCapacity => "at_capacity",
            ErrorCode::UnknownSite => "unknown_site",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ConversationClosed => "conversation_closed",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::Resync => "resync",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::AccessChanged => "access_changed",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame that could not be decoded: the stable code plus a short human explanation
/// (safe to send to the client; it never contains server internals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The stable code.
    pub code: ErrorCode,
    /// A short explanation for the developer reading the frame log.
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> DecodeError {
        DecodeError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Only the tag, for classifying a failed decode.
#[derive(Deserialize)]
struct TagOnly {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

/// Decodes `text` into `T`; on failure, tells a syntax error, an unknown `type` and a bad
/// field apart. The classification runs only on the error path, so a good frame is parsed
/// once.
pub(crate) fn decode<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    match serde_json::from_str::<T>(text) {
        Ok(frame) => Ok(frame),
        Err(err) if err.is_syntax() || err.is_eof() => Err(DecodeError::new(
            ErrorCode::BadJson,
            short(&err.to_string()),
        )),
        Err(err) => classify(text, &err),
    }
}

/// Classifies a frame that failed with a data error (wrong type, missing field, unknown
/// variant).
fn classify<T>(text: &str, err: &serde_json::Error) -> Result<T, DecodeError> {
    // serde reports a data error as soon as it meets it, before serde_json has looked at
    // the rest of the text: `"hi" junk`, `{"type":"nope"} }` or `[1, "\ud800"]` fail
    // with a data error but are not JSON at all. Found by fuzzing
    // (crates/protocol/tests/fuzz_regressions.rs).
    if let Err(syntax) = serde_json::from_str::<serde_json::Value>(text) {
        return Err(DecodeError::new(
            ErrorCode::BadJson,
            short(&syntax.to_string()),
        ));
    }
    match serde_json::from_str::<TagOnly>(text) {
        Ok(TagOnly {
            kind: Some(serde_json::Value::String(kind)),
        }) if err.to_string().starts_with("unknown variant") => Err(DecodeError::new(
            ErrorCode::UnknownType,
            format!("unknown frame type {:?}", short(&kind)),
        )),
        Ok(TagOnly { kind: Some(_) }) => Err(DecodeError::new(
            ErrorCode::BadField,
            short(&err.to_string()),
        )),
        Ok(TagOnly { kind: None }) => Err(DecodeError::new(
            ErrorCode::UnknownType,
            "frame has no string field \"type\"",
        )),
        // Valid JSON but not an object (an array, a number, ...).
        Err(_) => Err(DecodeError::new(
            ErrorCode::UnknownType,
            "frame must be a JSON object with a \"type\" field",
        )),
    }
}

/// Error texts echo parts of the input; keep them short.
fn short(text: &str) -> String {
    const MAX: usize = 160;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
