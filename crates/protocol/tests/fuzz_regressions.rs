//! Regression tests from fuzzing the decoders (`fuzz/`, target `protocol_decode`; see
//! docs/fuzzing.md). Each crash the fuzzer found is here with its minimised input,
//! next to hand-written hostile inputs for the same entry points: invalid UTF-8, deep
//! nesting, huge numbers, escaped lone surrogates, NUL, bidi and combining marks.
//!
//! The checks are the fuzz target's: the right stable error code (`bad_json` exactly for
//! text that is not JSON), and a decoded frame survives `to_json` and a second decode.

use salam_protocol::{
    AgentFrame, DecodeError, ErrorCode, ServerFrame, VisitorFrame, decode_agent, decode_server,
    decode_visitor, decode_visitor_bytes,
};

/// The code each endpoint's decoder gives `text`, or `None` when it decodes.
fn codes(text: &str) -> [Option<ErrorCode>; 3] {
    let code = |result: Result<(), DecodeError>| result.err().map(|error| error.code);
    [
        code(decode_visitor(text).map(|_| ())),
        code(decode_agent(text).map(|_| ())),
        code(decode_server(text).map(|_| ())),
    ]
}

#[track_caller]
fn assert_code_everywhere(text: &str, expected: ErrorCode) {
    let start: String = text.chars().take(80).collect();
    assert_eq!(codes(text), [Some(expected); 3], "decoding {start:?}…");
}

#[track_caller]
fn visitor_round_trip(text: &str) -> VisitorFrame {
    let frame = decode_visitor(text).unwrap_or_else(|error| panic!("{text:?}: {error}"));
    let encoded = frame.to_json();
    assert_eq!(decode_visitor(&encoded), Ok(frame.clone()), "via {encoded}");
    frame
}

// ---------------------------------------------------------------------------------------
// Crashes found by the fuzzer.

/// Fuzz crash (minimised to `""u`): a data error was reported before serde_json looked
/// past the first value, so text with trailing garbage was `unknown_type` or
/// `bad_field` instead of `bad_json`.
#[test]
fn trailing_garbage_after_a_value_is_bad_json() {
    for text in [
        "\"\"u",
        "\"s\"ur",
        r#"{"type":"weions"urst":40}}"#,
        r#"{"type":"launch_missiles"} }"#,
        r#"{"type":"send","text":42} junk"#,
        r#"{"type":"seen","conversation":"c","seq":-1}]"#,
        "[1,2,3] [",
        "42 x",
    ] {
        assert_code_everywhere(text, ErrorCode::BadJson);
    }
    // The same values without the garbage keep their codes.
    assert_code_everywhere(r#"{"type":"launch_missiles"}"#, ErrorCode::UnknownType);
    assert_code_everywhere("\"\"", ErrorCode::UnknownType);
    assert_code_everywhere("[1,2,3]", ErrorCode::UnknownType);
    assert_eq!(
        codes(r#"{"type":"send","text":42}"#)[0],
        Some(ErrorCode::BadField)
    );
}

/// The same early data error, with the invalid part inside the value: serde stops at
/// the first element that is not a tag and never reads the lone surrogate after it.
#[test]
fn lone_surrogate_after_an_early_data_error_is_bad_json() {
    assert_code_everywhere(r#"[1, "\ud800"]"#, ErrorCode::BadJson);
    assert_code_everywhere(r#"[1, 1e400]"#, ErrorCode::BadJson);
    assert_code_everywhere(r#"[1, "fine"]"#, ErrorCode::UnknownType);
}

// ---------------------------------------------------------------------------------------
// Hostile inputs for the same entry points.

#[test]
fn binary_frames_are_refused_by_utf8_validity() {
    for bytes in [
        &[0xff, 0xfe][..],
        &[0xc0, 0x80],             // overlong NUL
        &[0xed, 0xa0, 0x80],       // a UTF-16 surrogate encoded in UTF-8
        &[0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
        b"{\"type\":\"ping\"}\xe2\x82",
    ] {
        assert_eq!(
            decode_visitor_bytes(bytes).map_err(|error| error.code),
            Err(ErrorCode::BadJson),
            "{bytes:?}"
        );
    }
    for bytes in [&b""[..], b"\0", b"{\"type\":\"ping\"}", "سلام".as_bytes()] {
        assert_eq!(
            decode_visitor_bytes(bytes).map_err(|error| error.code),
            Err(ErrorCode::BinaryUnsupported),
            "{bytes:?}"
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let deep = |depth: usize| {
        format!(
            r#"{{"type":"send","client_id":"a","text":"x","extra":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    // Unknown fields are ignored, however nested, up to serde_json's limit of 128 ...
    assert_eq!(
        decode_visitor(&deep(100)),
        Ok(VisitorFrame::Send {
            client_id: "a".into(),
            text: "x".into(),
            conversation: None
        })
    );
    // ... and past it the frame is not JSON we accept, at any depth.
    for depth in [200, 100_000] {
        assert_eq!(
            codes(&deep(depth))[0],
            Some(ErrorCode::BadJson),
            "depth {depth}"
        );
    }
    assert_code_everywhere(&"[".repeat(100_000), ErrorCode::BadJson);
    assert_code_everywhere(&"{\"a\":".repeat(50_000), ErrorCode::BadJson);
}

#[test]
fn huge_numbers_are_bad_fields_or_bad_json() {
    let seen = |seq: &str| format!(r#"{{"type":"seen","conversation":"c","seq":{seq}}}"#);
    assert_eq!(
        visitor_round_trip(&seen("18446744073709551615")),
        VisitorFrame::Seen {
            conversation: "c".into(),
            seq: u64::MAX
        }
    );
    for seq in ["18446744073709551616", "-1", "1.5", "1e3", "\"1\"", "null"] {
        assert_eq!(codes(&seen(seq))[0], Some(ErrorCode::BadField), "{seq}");
    }
    // Out of range even for an f64: serde_json refuses to parse it.
    assert_eq!(codes(&seen("1e400"))[0], Some(ErrorCode::BadJson));
    let rate = |score: &str| format!(r#"{{"type":"rate","conversation":"c","score":{score}}}"#);
    assert!(decode_visitor(&rate("255")).is_ok());
    assert_eq!(codes(&rate("256"))[0], Some(ErrorCode::BadField));
    let hello = r#"{"type":"hello","v":4294967296}"#;
    assert_eq!(codes(hello)[1], Some(ErrorCode::BadField));
}

#[test]
fn escaped_lone_surrogates_are_bad_json_and_pairs_decode() {
    for text in [
        r#"{"type":"send","client_id":"a","text":"\ud800"}"#,
        r#"{"type":"send","client_id":"a","text":"\udc00x"}"#,
        r#"{"type":"send","client_id":"a","text":"\ud800\u0041"}"#,
        // In an ignored field too: every value is read before the frame is built.
        r#"{"type":"ping","extra":"\udfff"}"#,
        r#"{"type":"\ud800"}"#,
    ] {
        assert_code_everywhere(text, ErrorCode::BadJson);
    }
    let frame = visitor_round_trip(r#"{"type":"send","client_id":"a","text":"\ud83d\ude00"}"#);
    assert!(matches!(frame, VisitorFrame::Send { text, .. } if text == "😀"));
}

#[test]
fn nul_bytes() {
    let frame = visitor_round_trip(r#"{"type":"send","client_id":"\u0000","text":"a\u0000b"}"#);
    assert!(
        matches!(&frame, VisitorFrame::Send { client_id, text, .. } if client_id == "\0" && text == "a\0b")
    );
    // A raw control character inside a string, or a NUL after the frame, is not JSON.
    assert_code_everywhere("{\"type\":\"ping\",\"x\":\"a\0b\"}", ErrorCode::BadJson);
    assert_code_everywhere("{\"type\":\"ping\"}\0", ErrorCode::BadJson);
    assert_code_everywhere("\0", ErrorCode::BadJson);
}

#[test]
fn bidi_and_combining_marks_survive_the_round_trip() {
    let text = "\u{202E}redro\u{202C} \u{200F}سلام\u{200E} e\u{0301}\u{0301}\u{0301} \u{064B}\u{0651} \u{FEFF}";
    let json = serde_json::json!({"type": "send", "client_id": "\u{200D}", "text": text});
    let frame = visitor_round_trip(&json.to_string());
    assert!(matches!(frame, VisitorFrame::Send { text: got, .. } if got == text));

    let agent = serde_json::json!({
        "type": "transfer", "conversation": "c\u{2067}", "note": text, "department": "\u{0300}"
    });
    let frame = decode_agent(&agent.to_string()).expect("transfer decodes");
    assert_eq!(decode_agent(&frame.to_json()), Ok(frame.clone()));
    assert!(matches!(frame, AgentFrame::Transfer { note: Some(note), .. } if note == text));

    let server = serde_json::json!({"type": "error", "code": "internal", "message": text});
    let frame = decode_server(&server.to_string()).expect("error frame decodes");
    assert_eq!(decode_server(&frame.to_json()), Ok(frame.clone()));
    assert!(matches!(frame, ServerFrame::Error { message, .. } if message == text));
}

#[test]
fn error_messages_stay_short_whatever_the_input() {
    let escaped = "\u{1}".repeat(60_000);
    for text in [
        format!(r#"{{"type":"{}"}}"#, "\\u0001".repeat(10_000)),
        format!(r#"{{"type":"{}"}}"#, "😀".repeat(20_000)),
        format!(r#"{{"type":"send","client_id":"{escaped}","text":1}}"#),
        format!("{{\"{}", "x".repeat(70_000)),
    ] {
        for result in [
            decode_visitor(&text).map(|_| ()),
            decode_agent(&text).map(|_| ()),
            decode_server(&text).map(|_| ()),
        ] {
            let error = result.expect_err("does not decode");
            assert!(error.message.len() <= 2048, "{} bytes", error.message.len());
        }
    }
}
