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
            event: None,
        }),
        ServerFrame::Message(Message {
            conversation: "c_1".into(),
            seq: 5,
            kind: MessageKind::Event,
            author: Author {
                kind: AuthorKind::System,
                id: None,
                name: None,
            },
            text: "Sara joined the conversation".into(),
            at: 1_700_000_000_000,
            client_id: None,
            quick_replies: vec![],
            rule: None,
            event: Some(SystemEvent::new(EventCode::Joined, &[("agent", "Sara")])),
        }),
        ServerFrame::Queue {
            conversation: "c_1".into(),
            position: 2,
            wait_secs: 700,
            agents_online: false,
            offer_callback: true,
        },
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
        ErrorCode::OriginNotAllowed,
    ];
    for code in codes {
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
    }
}

fn decoded_message(json: &str) -> Message {
    match decode_server(json) {
        Ok(ServerFrame::Message(message)) => message,
        other => panic!("{json}: {other:?}"),
    }
}

#[test]
fn event_is_encoded_as_code_and_params() {
    let json = ServerFrame::Message(Message {
        conversation: "c1".into(),
        seq: 4,
        kind: MessageKind::Event,
        author: Author {
            kind: AuthorKind::System,
            id: None,
            name: None,
        },
        text: "Sara joined the conversation".into(),
        at: 1_765_000_000_000,
        client_id: None,
        quick_replies: vec![],
        rule: None,
        event: Some(SystemEvent::new(EventCode::Joined, &[("agent", "Sara")])),
    })
    .to_json();
    assert!(
        json.contains(r#""event":{"code":"joined","params":{"agent":"Sara"}}"#),
        "{json}"
    );
    // Params are omitted when empty.
    let json = serde_json::to_string(&SystemEvent::new(EventCode::Queued, &[])).unwrap();
    assert_eq!(json, r#"{"code":"queued"}"#);
    // Every code's name is its serde name, and parses back.
    for code in [
        EventCode::Queued,
        EventCode::Joined,
        EventCode::TransferredToAgent,
        EventCode::TransferredToDepartment,
        EventCode::Requeued,
        EventCode::ClosedByAgent,
        EventCode::ClosedByVisitor,
        EventCode::ClosedIdle,
        EventCode::ClosedErased,
    ] {
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
        assert_eq!(EventCode::parse(code.as_str()), code);
    }
}

#[test]
fn messages_without_or_with_unknown_events_decode() {
    // An older hub's event line: no `event`.
    let old = decoded_message(
        r#"{"type":"message","conversation":"c1","seq":4,"kind":"event","author":{"kind":"system"},"text":"closed by Sara","at":1}"#,
    );
    assert_eq!(old.event, None);
    assert_eq!(old.text, "closed by Sara");
    // A newer hub's code: decodes as Unknown, params kept, text still there.
    let newer = decoded_message(
        r#"{"type":"message","conversation":"c1","seq":4,"kind":"event","author":{"kind":"system"},"text":"snoozed","at":1,"event":{"code":"snoozed","params":{"until":"9"}}}"#,
    );
    let event = newer.event.expect("event kept");
    assert_eq!(event.code, EventCode::Unknown);
    assert_eq!(event.params.get("until").map(String::as_str), Some("9"));
    assert_eq!(newer.text, "snoozed");
    // A malformed event does not fail the message either.
    for bad in [
        r#"42"#,
        r#"{"params":{}}"#,
        r#"{"code":7}"#,
        r#"{"code":"joined","params":{"agent":1}}"#,
        r#"null"#,
    ] {
        let json = format!(
            r#"{{"type":"message","conversation":"c1","seq":1,"kind":"event","author":{{"kind":"system"}},"text":"t","at":1,"event":{bad}}}"#
        );
        assert_eq!(decoded_message(&json).event, None, "{json}");
    }
}

#[test]
fn queue_and_welcome_new_fields_default_when_absent() {
    match decode_server(r#"{"type":"queue","conversation":"c_1","position":2,"wait_secs":90}"#) {
        Ok(ServerFrame::Queue {
            agents_online,
            offer_callback,
            ..
        }) => {
            assert!(agents_online);
            assert!(!offer_callback);
        }
        other => panic!("{other:?}"),
    }
    let json = ServerFrame::Queue {
        conversation: "c_1".into(),
        position: 1,
        wait_secs: 60,
        agents_online: true,
        offer_callback: false,
    }
    .to_json();
    assert_eq!(
        json,
        r#"{"type":"queue","conversation":"c_1","position":1,"wait_secs":60,"agents_online":true}"#
    );
    let welcome = r#"{"type":"welcome","v":1,"role":"visitor","you":{"kind":"visitor","id":"v_1"},"conversations":[],"heartbeat_secs":25,"limits":{"max_text_chars":4000,"max_frame_bytes":65536,"rate_per_sec":10,"burst":40}}"#;
    match decode_server(welcome) {
        Ok(ServerFrame::Welcome { team, .. }) => assert_eq!(team, None),
        other => panic!("{other:?}"),
    }
    let with_team = welcome.replace(
        r#""heartbeat_secs""#,
        r#""team":{"online":false},"heartbeat_secs""#,
    );
    match decode_server(&with_team) {
        Ok(ServerFrame::Welcome { team, .. }) => assert_eq!(team, Some(Team { online: false })),
        other => panic!("{other:?}"),
    }
    let json = ServerFrame::error(
        ErrorCode::OriginNotAllowed,
        "chat is not enabled on this page",
    )
    .to_json();
    assert_eq!(
        json,
        r#"{"type":"error","code":"origin_not_allowed","message":"chat is not enabled on this page"}"#
    );
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
