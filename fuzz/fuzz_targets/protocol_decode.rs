//! Fuzz target `protocol_decode`: arbitrary bytes into every public decoder of
//! `salam-protocol` (`decode_visitor_bytes`, `decode_visitor`, `decode_agent`,
//! `decode_server`).
//!
//! Checked, besides "never panics":
//! - the error code is the documented one: `bad_json` exactly when the text is not JSON
//!   (serde_json's own parser is the reference), `unknown_type` or `bad_field` for JSON
//!   that is not a frame of the endpoint; error messages stay short;
//! - round trip: a frame that decodes, encoded with `to_json` and decoded again, is equal
//!   to the first decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salam_protocol::{
    DecodeError, ErrorCode, ServerFrame, decode_agent, decode_server, decode_visitor,
    decode_visitor_bytes,
};

/// Error messages are built from `short()` (160 bytes) of the input, possibly escaped
/// with `{:?}` (at most 10 bytes per character) plus a fixed prefix.
const MAX_MESSAGE_BYTES: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let text = std::str::from_utf8(data);

    // Binary frames always fail, with a code that depends only on UTF-8 validity.
    let bytes_error = decode_visitor_bytes(data).expect_err("binary frames never decode");
    let expected = if text.is_ok() {
        ErrorCode::BinaryUnsupported
    } else {
        ErrorCode::BadJson
    };
    assert_eq!(bytes_error.code, expected, "{bytes_error}");

    let Ok(text) = text else {
        return;
    };
    // The reference for "is JSON": serde_json's own parser into a `Value` (which, like
    // the frame types, rejects lone surrogates and numbers out of range).
    let is_json = serde_json::from_str::<serde_json::Value>(text).is_ok();

    check(text, is_json, decode_visitor, |frame| frame.to_json());
    check(text, is_json, decode_agent, |frame| frame.to_json());
    check(text, is_json, decode_server, ServerFrame::to_json);
});

/// Decodes `text` with `decode`; checks the error classification, or the round trip
/// through `encode`.
fn check<T: PartialEq + std::fmt::Debug>(
    text: &str,
    is_json: bool,
    decode: fn(&str) -> Result<T, DecodeError>,
    encode: fn(&T) -> String,
) {
    match decode(text) {
        Ok(frame) => {
            assert!(is_json, "a frame decoded from text that is not JSON");
            let encoded = encode(&frame);
            match decode(&encoded) {
                Ok(again) => assert_eq!(again, frame, "round trip through {encoded}"),
                Err(error) => panic!("re-encoded frame {encoded} does not decode: {error}"),
            }
        }
        Err(error) => {
            assert!(
                error.message.len() <= MAX_MESSAGE_BYTES,
                "error message of {} bytes",
                error.message.len()
            );
            if is_json {
                assert!(
                    matches!(error.code, ErrorCode::UnknownType | ErrorCode::BadField),
                    "valid JSON classified as {error}"
                );
            } else {
                assert_eq!(error.code, ErrorCode::BadJson, "invalid JSON: {error}");
            }
        }
    }
}
