use super::*;
use proptest::prelude::*;

fn check_visitor(text: &str, expect: Result<VisitorFrame, ErrorCode>) {
    let got = decode_visitor(text).map_err(|err| err.code);
    assert_eq!(got, expect, "decoding {text}");
}

#[test]
fn visitor_frames_decode() {
    check_visitor(
        r#"{"type":"hello","v":1,"site":"pk_demo"}"#,
        Ok(VisitorFrame::Hello {
            v: 1,
            site: "pk_demo".into(),
            token: None,
            locale: None,
            page: None,
        }),
    );
    check_visitor(
        r#"{"type":"send","client_id":"m1","text":"hi","extra":true}"#,
        Ok(VisitorFrame::Send {
            client_id: "m1".into(),
            text: "hi".into(),
            conversation: None,
        }),
    );
    check_visitor(r#"{"type":"ping"}"#, Ok(VisitorFrame::Ping { nonce: None }));
}

#[test]
fn decode_errors_have_stable_codes() {
    check_visitor("{not json", Err(ErrorCode::BadJson));
    check_visitor("", Err(ErrorCode::BadJson));
    check_visitor(r#"{"type":"launch_missiles"}"#, Err(ErrorCode::UnknownType));
    check_visitor(r#"{"text":"no type"}"#, Err(ErrorCode::UnknownType));
    check_visitor(r#"[1,2,3]"#, Err(ErrorCode::UnknownType));
    check_visitor(r#"{"type":42}"#, Err(ErrorCode::BadField));
    check_visitor(
        r#"{"type":"send","client_id":"m1","text":42}"#,
        Err(ErrorCode::BadField),
    );
    check_visitor(r#"{"type":"send","text":"x"}"#, Err(ErrorCode::BadField));
    check_visitor(
        r#"{"type":"seen","conversation":"c","seq":-1}"#,
        Err(ErrorCode::BadField),
    );
    // An agent-only frame is unknown on the visitor endpoint.
    check_visitor(
        r#"{"type":"send","conversation":"c","client_id":"m","text":"x","note":true}"#,
        Ok(VisitorFrame::Send {
            client_id: "m".into(),
            text: "x".into(),
            conversation: Some("c".into()),
        }),
    );
    assert_eq!(
        decode_visitor_bytes(&[0xff, 0xfe]).unwrap_err().code,
        ErrorCode::BadJson
    );
    assert_eq!(
        decode_visitor_bytes(b"{}").unwrap_err().code,
        ErrorCode::BinaryUnsupported
    );
}

#[test]
fn server_frames_round_trip() {
    let frames = vec![
        ServerFrame::Ack {
            client_id: "m1".into(),
            conversation: "c_1".into(),
            seq: 3,
            duplicate: false,
        },
        ServerFrame::Message(Message {
            conversation: "c_1".into(),
            seq: 4,
            kind: MessageKind::Text,
            author: Author {
                kind: AuthorKind::Bot,
                id: None,
                name: Some("Salam bot".into()),
            },
            text: "<script>alert(1)</script>".into(),
            at: 1_700_000_000_000,
            client_id: None,
            quick_replies: vec![QuickReply {
                label: "Talk to a person".into(),
                payload: "human".into(),
            }],
            rule: Some("shipping_time".into()),
        }),
        ServerFrame::error(ErrorCode::RateLimited, "slow down"),
        ServerFrame::Pong { nonce: Some(7) },
    ];
    for frame in frames {
        let json = frame.to_json();
        assert_eq!(decode_server(&json).unwrap(), frame, "{json}");
    }
    let json = ServerFrame::error(ErrorCode::TextTooLong, "x").to_json();
    assert!(json.contains(r#""code":"text_too_long""#), "{json}");
}

#[test]
fn error_code_names_match_serde() {
    let codes = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::BadField,
        ErrorCode::BinaryUnsupported,
        ErrorCode::TextTooLong,
        ErrorCode::EmptyText,
        ErrorCode::FrameTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::UnsupportedVersion,
        ErrorCode::HelloRequired,
        ErrorCode::AlreadyGreeted,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::AtCapacity,
        ErrorCode::UnknownSite,
        ErrorCode::NotFound,
        ErrorCode::ConversationClosed,
        ErrorCode::StoreUnavailable,
        ErrorCode::Resync,
        ErrorCode::Overloaded,
        ErrorCode::Internal,
        ErrorCode::AccessChanged,
        ErrorCode::MethodNotAllowed,
    ];
    for code in codes {
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
    }
}

/// Every ```json block in docs/protocol.md must decode as one of the three frame enums,
/// so the documentation cannot drift from the code.
#[test]
fn protocol_doc_examples_decode() {
    let doc = include_str!("../../../docs/protocol.md");
    let mut n_examples = 0;
    let mut rest = doc;
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("unclosed code block");
        for line in body[..end].lines().filter(|line| !line.trim().is_empty()) {
            let ok = decode_visitor(line).is_ok()
                || decode_agent(line).is_ok()
                || decode_server(line).is_ok();
            assert!(ok, "docs/protocol.md example does not decode: {line}");
            n_examples += 1;
        }
        rest = &body[end + 3..];
    }
    assert!(
        n_examples >= 20,
        "only {n_examples} examples in docs/protocol.md"
    );
}

proptest! {
    #[test]
    fn decoder_never_panics_on_strings(text in ".{0,256}") {
        let _ = decode_visitor(&text);
        let _ = decode_agent(&text);
        let _ = decode_server(&text);
    }

    #[test]
    fn decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_visitor_bytes(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = decode_visitor(text);
            let _ = decode_agent(text);
        }
    }

    #[test]
    fn decoder_never_panics_on_json_like(
        kind in prop_oneof![Just("hello"), Just("send"), Just("resume"), Just("seen"), Just("typing"), Just("x")],
        field in "[a-z_]{1,10}",
        value in prop_oneof![Just("1".to_string()), Just("\"s\"".to_string()), Just("null".to_string()), Just("[]".to_string()), Just("{}".to_string()), Just("-1".to_string()), Just("1e400".to_string())],
    ) {
        let text = format!(r#"{{"type":"{kind}","{field}":{value},"v":1,"site":"s","client_id":"c","text":"t","conversation":"c","seq":1,"after":0}}"#);
        let _ = decode_visitor(&text);
        let _ = decode_agent(&text);
    }
}
