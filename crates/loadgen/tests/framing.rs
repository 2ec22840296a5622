//! The peers' framing: Engine.IO / Socket.IO packets, Pusher frames and the Pusher
//! auth signature, and how the adapters map frames to benchmark events. Pure functions,
//! including what they do with garbage (an error or `Undecodable`, never a panic).

use salam_loadgen::client::{Event, pusher_event, salam_event, socketio_event};
use salam_loadgen::pusher::{self, Subscription};
use salam_loadgen::relay::client_id;
use salam_loadgen::socketio::{self, EioPacket, Sio, SioPacket};
use serde_json::{Value, json};

#[test]
fn engine_io_packets_decode() {
    let open = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
    let Ok(EioPacket::Open(payload)) = socketio::decode_eio(open) else {
        panic!("not an open packet");
    };
    let handshake = socketio::parse_handshake(payload).expect("handshake");
    assert_eq!(handshake.sid, "lv_VI97HAXpY6yYWAAAC");
    assert_eq!(handshake.ping_interval, 25_000);
    assert_eq!(handshake.ping_timeout, 20_000);
    assert_eq!(handshake.max_payload, Some(1_000_000));

    let cases: [(&str, EioPacket<'_>); 8] = [
        ("1", EioPacket::Close),
        ("2", EioPacket::Ping("")),
        ("2probe", EioPacket::Ping("probe")),
        ("3", EioPacket::Pong("")),
        ("40", EioPacket::Message("0")),
        ("42[\"a\"]", EioPacket::Message("2[\"a\"]")),
        ("5", EioPacket::Upgrade),
        ("6", EioPacket::Noop),
    ];
    for (text, expected) in cases {
        assert_eq!(socketio::decode_eio(text).ok(), Some(expected), "{text}");
    }
    for bad in ["", "7", "x", "b4AQID", "é", "٣"] {
        assert!(socketio::decode_eio(bad).is_err(), "{bad:?}");
    }
    assert!(socketio::parse_handshake("{\"sid\":1}").is_err());
    assert!(socketio::parse_handshake("nope").is_err());
}

#[test]
fn engine_io_pong_echoes_the_ping_payload() {
    assert_eq!(socketio::pong(""), "3");
    assert_eq!(socketio::pong("probe"), "3probe");
}

fn sio(text: &str) -> Option<Sio> {
    socketio::decode_sio(text).ok()
}

#[test]
fn socket_io_packets_decode() {
    let root = |packet| Sio {
        namespace: "/".to_owned(),
        packet,
    };
    assert_eq!(sio("0"), Some(root(SioPacket::Connect(None))));
    assert_eq!(
        sio(r#"0{"sid":"abc"}"#),
        Some(root(SioPacket::Connect(Some(json!({"sid": "abc"})))))
    );
    assert_eq!(sio("1"), Some(root(SioPacket::Disconnect)));
    assert_eq!(
        sio(r#"2["chat",{"id":"lg-1"}]"#),
        Some(root(SioPacket::Event {
            id: None,
            args: vec![json!("chat"), json!({"id": "lg-1"})],
        }))
    );
    assert_eq!(
        sio(r#"212["chat"]"#),
        Some(root(SioPacket::Event {
            id: Some(12),
            args: vec![json!("chat")],
        }))
    );
    assert_eq!(
        sio(r#"34294967296["ok"]"#),
        Some(root(SioPacket::Ack {
            id: 4_294_967_296,
            args: vec![json!("ok")],
        }))
    );
    assert_eq!(
        sio(r#"4{"message":"not authorized"}"#),
        Some(root(SioPacket::ConnectError(
            json!({"message": "not authorized"})
        )))
    );
    // Namespaces, with and without a payload.
    assert_eq!(
        sio(r#"2/admin,7["x",1]"#),
        Some(Sio {
            namespace: "/admin".to_owned(),
            packet: SioPacket::Event {
                id: Some(7),
                args: vec![json!("x"), json!(1)],
            },
        })
    );
    assert_eq!(
        sio("1/admin,"),
        Some(Sio {
            namespace: "/admin".to_owned(),
            packet: SioPacket::Disconnect,
        })
    );
    assert_eq!(
        sio("1/admin"),
        Some(Sio {
            namespace: "/admin".to_owned(),
            packet: SioPacket::Disconnect,
        })
    );
    assert_eq!(
        sio(r#"2["chat"]"#).and_then(|sio| sio.packet.event_name().map(str::to_owned)),
        Some("chat".to_owned())
    );
}

#[test]
fn socket_io_garbage_is_an_error() {
    for bad in [
        "",
        "9",
        "x[]",
        "2",
        "2[]",
        "2{}",
        "2[\"chat\"",
        "3[\"ok\"]",
        "3",
        "399999999999999999999999[\"ok\"]",
        "51-[\"x\",{\"_placeholder\":true,\"num\":0}]",
        "6",
        "4",
        "é[]",
        "2/ns,",
        "0{",
    ] {
        assert!(socketio::decode_sio(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn socket_io_packets_encode() {
    assert_eq!(socketio::connect(None), "40");
    assert_eq!(
        socketio::connect(Some(&json!({"agent": "a0"}))),
        r#"40{"agent":"a0"}"#
    );
    assert_eq!(
        socketio::event("chat", &[json!({"id": "lg-1"})], Some(17)),
        r#"4217["chat",{"id":"lg-1"}]"#
    );
    assert_eq!(socketio::event("hi", &[], None), r#"42["hi"]"#);
    // What is encoded decodes to the same packet.
    let encoded = socketio::event("chat", &[json!({"to": "a1"})], Some(99));
    let Ok(EioPacket::Message(payload)) = socketio::decode_eio(&encoded) else {
        panic!("not a message");
    };
    assert_eq!(
        sio(payload).map(|sio| sio.packet),
        Some(SioPacket::Event {
            id: Some(99),
            args: vec![json!("chat"), json!({"to": "a1"})],
        })
    );
}

/// The example from Pusher's documentation of private-channel authentication, also
/// checked with `openssl dgst -sha256 -hmac` and with the `pusher` npm package that
/// Soketi verifies signatures with.
#[test]
fn pusher_auth_signature_known_vector() {
    assert_eq!(
        pusher::auth_signature(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar"
        ),
        "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    );
}

#[test]
fn pusher_frames_decode() {
    let established = pusher::decode(
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":30}"}"#,
    )
    .expect("frame");
    assert_eq!(
        pusher::socket_id(&established).ok().as_deref(),
        Some("123.456")
    );

    let refused = pusher::decode(
        r#"{"event":"pusher:error","data":{"code":4001,"message":"App key x does not exist."}}"#,
    )
    .expect("frame");
    let error = pusher::socket_id(&refused).expect_err("an error");
    assert!(format!("{error:#}").contains("4001"), "{error:#}");

    let no_id =
        pusher::decode(r#"{"event":"pusher:connection_established","data":"{}"}"#).expect("frame");
    assert!(pusher::socket_id(&no_id).is_err());

    let succeeded = pusher::decode(
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-chat-3"}"#,
    )
    .expect("frame");
    assert_eq!(
        pusher::subscription_result(&succeeded),
        Some(Subscription::Succeeded("private-chat-3".to_owned()))
    );
    let failed = pusher::decode(
        r#"{"event":"pusher:subscription_error","channel":"private-chat-3","data":{"type":"AuthError","status":401}}"#,
    )
    .expect("frame");
    assert!(matches!(
        pusher::subscription_result(&failed),
        Some(Subscription::Failed { channel, .. }) if channel == "private-chat-3"
    ));

    // Data as an object, as a string of JSON, and as a string that is not JSON.
    let frame = |data: Value| pusher::Frame {
        event: "e".to_owned(),
        channel: None,
        data,
    };
    assert_eq!(frame(json!({"a": 1})).data_value(), json!({"a": 1}));
    assert_eq!(frame(json!("{\"a\":1}")).data_value(), json!({"a": 1}));
    assert_eq!(frame(json!("plain")).data_value(), json!("plain"));

    for bad in ["", "[]", "{}", "{\"event\":3}", "not json", "{\"data\":{}}"] {
        assert!(pusher::decode(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn pusher_frames_encode() {
    let subscribe: Value =
        serde_json::from_str(&pusher::subscribe("private-chat-1", "k:sig")).expect("json");
    assert_eq!(
        subscribe,
        json!({"event": "pusher:subscribe", "data": {"channel": "private-chat-1", "auth": "k:sig"}})
    );
    let event: Value = serde_json::from_str(&pusher::client_event(
        "private-chat-1",
        pusher::MESSAGE_EVENT,
        &json!({"id": "lg-1"}),
    ))
    .expect("json");
    assert_eq!(
        event,
        json!({"event": "client-message", "channel": "private-chat-1", "data": {"id": "lg-1"}})
    );
    assert_eq!(
        pusher::decode(&pusher::ping())
            .map(|frame| frame.event)
            .ok(),
        Some("pusher:ping".to_owned())
    );
    assert_eq!(
        pusher::decode(&pusher::pong())
            .map(|frame| frame.event)
            .ok(),
        Some("pusher:pong".to_owned())
    );
    assert_eq!(
        pusher::connect_path("key"),
        "/app/key?protocol=7&client=salam-loadgen&version=7.0.0"
    );
}

#[test]
fn socket_io_frames_map_to_events() {
    let id = (3u64 << 32) | 9;
    assert_eq!(socketio_event("2"), (None, Some("3".to_owned())));
    assert_eq!(
        socketio_event(&format!("43{id}[\"ok\"]")),
        (Some(Event::Ack { id: Some(id) }), None)
    );
    assert_eq!(
        socketio_event(&format!("43{id}[\"no_agent\"]")),
        (Some(Event::Rejected { id: Some(id) }), None)
    );
    let delivered = format!(
        r#"42["chat",{{"from":"x","id":"{}","text":"hi"}}]"#,
        client_id(id)
    );
    assert_eq!(
        socketio_event(&delivered),
        (Some(Event::Delivered { id }), None)
    );
    assert_eq!(socketio_event("1"), (Some(Event::Closed), None));
    assert_eq!(socketio_event("41"), (Some(Event::Closed), None));
    assert_eq!(
        socketio_event(r#"42["other",1]"#),
        (Some(Event::Other), None)
    );
    for bad in [
        "",
        "zz",
        "42[\"chat\",{}]",
        "42[\"chat\",{\"id\":\"nope\"}]",
        "4é",
    ] {
        assert_eq!(
            socketio_event(bad),
            (Some(Event::Undecodable), None),
            "{bad:?}"
        );
    }
}

#[test]
fn pusher_frames_map_to_events() {
    let id = 42;
    let delivered = format!(
        r#"{{"event":"client-message","channel":"private-chat-0","data":{{"id":"{}","text":"hi"}}}}"#,
        client_id(id)
    );
    assert_eq!(
        pusher_event(&delivered),
        (Some(Event::Delivered { id }), None)
    );
    assert_eq!(
        pusher_event(r#"{"event":"pusher:ping","data":{}}"#),
        (None, Some(pusher::pong()))
    );
    assert_eq!(
        pusher_event(r#"{"event":"pusher:error","data":{"code":4301}}"#),
        (Some(Event::Rejected { id: None }), None)
    );
    assert_eq!(
        pusher_event(r#"{"event":"pusher:pong","data":{}}"#),
        (Some(Event::Other), None)
    );
    for bad in ["", "null", r#"{"event":"client-message","data":{}}"#] {
        assert_eq!(
            pusher_event(bad),
            (Some(Event::Undecodable), None),
            "{bad:?}"
        );
    }
}

#[test]
fn salam_frames_map_to_events() {
    assert_eq!(
        salam_event(
            r#"{"type":"ack","client_id":"lg-2a","conversation":"c_1","seq":1,"duplicate":false}"#
        ),
        Some(Event::Ack { id: Some(0x2a) })
    );
    assert_eq!(
        salam_event(
            r#"{"type":"error","code":"rate_limited","message":"slow down","client_id":"lg-2b"}"#
        ),
        Some(Event::Rejected { id: Some(0x2b) })
    );
    assert_eq!(salam_event("{"), Some(Event::Undecodable));
    assert_eq!(
        salam_event(r#"{"type":"pong","nonce":1}"#),
        Some(Event::Other)
    );
}

#[test]
fn salam_messages_are_deliveries() {
    let message = r#"{"type":"message","conversation":"c_p4m2x9k1l0s8d7f6g5h4","seq":15,"kind":"text","author":{"kind":"visitor","id":"v_8k2j4h5g6f7d8s9a0q1w"},"text":"hi","at":1795000100000,"client_id":"lg-5"}"#;
    assert_eq!(salam_event(message), Some(Event::Delivered { id: 5 }));
    let foreign = message.replace("lg-5", "7f9c2b1e");
    assert_eq!(salam_event(&foreign), Some(Event::Other));
}
