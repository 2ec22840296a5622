use super::*;
use salam_protocol::ServerFrame;
use serde_json::Value;

/// What `decode` should give for a frame the protocol crate decoded (matched with `..`
/// so that fields added to the protocol later do not break this test).
fn expected(frame: &ServerFrame) -> Option<Incoming> {
    Some(match frame {
        ServerFrame::Welcome {
            token,
            conversations,
            limits,
            team,
            ..
        } => Incoming::Welcome {
            token: token.clone(),
            conversations: conversations
                .iter()
                .map(|c| Summary {
                    id: c.id.clone(),
                    state: c.state,
                    updated_at: c.updated_at,
                })
                .collect(),
            max_text_chars: Some(limits.max_text_chars.into()),
            team: team.map(|team| team.online),
        },
        ServerFrame::Ack {
            client_id,
            conversation,
            seq,
            ..
        } => Incoming::Ack {
            client_id: client_id.clone(),
            conversation: conversation.clone(),
            seq: *seq,
        },
        ServerFrame::Message(m) => Incoming::Message(Line {
            conversation: m.conversation.clone(),
            seq: m.seq,
            kind: m.kind,
            author: m.author.kind,
            name: m.author.name.clone(),
            text: m.text.clone(),
            at: m.at,
            client_id: m.client_id.clone(),
            quick_replies: m
                .quick_replies
                .iter()
                .map(|r| QuickReply {
                    label: r.label.clone(),
                    payload: r.payload.clone(),
                })
                .collect(),
            event: m.event.as_ref().map(|event| crate::wire::Event {
                code: event.code.as_str().to_owned(),
                params: event
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }),
        }),
        ServerFrame::Typing { author, typing, .. } => Incoming::Typing {
            author: author.kind,
            name: author.name.clone(),
            typing: *typing,
        },
        ServerFrame::State {
            conversation,
            state,
            ..
        } => Incoming::State {
            conversation: conversation.clone(),
            state: *state,
        },
        ServerFrame::Queue {
            conversation,
            position,
            wait_secs,
            agents_online,
            offer_callback,
            ..
        } => Incoming::Queue {
            conversation: conversation.clone(),
            position: *position,
            wait_secs: *wait_secs,
            agents_online: *agents_online,
            offer_callback: *offer_callback,
        },
        ServerFrame::Form {
            conversation, form, ..
        } => Incoming::Form {
            conversation: conversation.clone(),
            form: *form,
        },
        ServerFrame::Resumed { last_seq, .. } => Incoming::Resumed {
            last_seq: *last_seq,
        },
        ServerFrame::Error {
            code: ErrorCode::OriginNotAllowed,
            ..
        } => Incoming::OriginNotAllowed,
        ServerFrame::Error {
            code, client_id, ..
        } => Incoming::Error {
            code: Some(*code),
            client_id: client_id.clone(),
        },
        _ => return None,
    })
}

/// Every server frame example of docs/protocol.md, plus the frames added since.
fn server_examples() -> Vec<String> {
    let docs = include_str!("../../../docs/protocol.md");
    let mut lines: Vec<String> = docs
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(str::to_owned)
        .collect();
    lines.extend(
        [
            r#"{"type":"queue","conversation":"c_1","position":2,"wait_secs":90}"#,
            r#"{"type":"queue","conversation":"c_1","position":1,"wait_secs":900,"agents_online":false,"offer_callback":true}"#,
            r#"{"type":"welcome","v":1,"session":"s_1","token":"v_1.x","conversations":[],"limits":{"max_text_chars":4000},"team":{"online":false}}"#,
            r#"{"type":"error","code":"origin_not_allowed","message":"chat is not enabled on this page"}"#,
            r#"{"type":"message","conversation":"c_1","seq":4,"kind":"event","author":{"kind":"system"},"text":"closed after 10 minutes without activity","at":1,"event":{"code":"closed_idle","params":{"minutes":"10"}}}"#,
            r#"{"type":"form","conversation":"c_1","form":"contact"}"#,
            r#"{"type":"form","conversation":"c_1","form":"rating"}"#,
            r#"{"type":"message","conversation":"c_1","seq":3,"author":{"kind":"agent","name":"<img src=x onerror=alert(1)>"},"text":"\u003cscript\u003e","at":1,"future_field":[1,{"x":null}]}"#,
        ]
        .map(str::to_owned),
    );
    lines
}

#[test]
fn decodes_what_the_protocol_crate_decodes() {
    let mut n_checked = 0;
    for line in server_examples() {
        let Ok(frame) = salam_protocol::decode_server(&line) else {
            continue; // a client frame example
        };
        assert_eq!(decode(&line), expected(&frame), "{line}");
        // And the protocol's own serialisation of it (fields in another order).
        let reserialized = serde_json::to_string(&frame).unwrap();
        assert_eq!(decode(&reserialized), expected(&frame), "{reserialized}");
        n_checked += 1;
    }
    assert!(n_checked >= 20, "only {n_checked} server frames checked");
}

fn outgoing_examples() -> Vec<Outgoing> {
    vec![
        Outgoing::Hello {
            site: "pk_demo".into(),
            token: Some("v_1.sig".into()),
            locale: "ar".into(),
            page: Page {
                url: Some("https://shop.example/cart".into()),
                title: Some("Cart \"1\"".into()),
                referrer: None,
            },
        },
        Outgoing::Hello {
            site: "pk_demo".into(),
            token: None,
            locale: "en".into(),
            page: Page::default(),
        },
        Outgoing::Resume {
            conversation: "c_1".into(),
            after: 12,
        },
        Outgoing::Send {
            client_id: "w1".into(),
            text: "وين طلبي؟\n<b>".into(),
            conversation: None,
        },
        Outgoing::Send {
            client_id: "w2".into(),
            text: "x".into(),
            conversation: Some("c_1".into()),
        },
        Outgoing::Typing {
            conversation: "c_1".into(),
            typing: true,
        },
        Outgoing::Seen {
            conversation: "c_1".into(),
            seq: 14,
        },
        Outgoing::Rate {
            conversation: "c_1".into(),
            score: 4,
            comment: Some("ok".into()),
        },
        Outgoing::Contact {
            conversation: None,
            name: Some("Ali".into()),
            email: None,
            phone: Some("+98".into()),
            message: None,
        },
        Outgoing::Identify {
            token: "eyJ.eyJ.sig".into(),
            name: None,
            email: Some("a@b.example".into()),
        },
    ]
}

#[test]
fn encodes_what_the_protocol_crate_reads_back_exactly() {
    for frame in outgoing_examples() {
        let text = frame.encode();
        let decoded =
            salam_protocol::decode_visitor(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
        // Nothing lost or misnamed: the protocol's serialisation equals ours.
        let ours: Value = serde_json::from_str(&text).unwrap();
        let theirs = serde_json::to_value(&decoded).unwrap();
        assert_eq!(ours, theirs, "{text}");
    }
}

#[test]
fn lines_round_trip_through_storage() {
    let line = r#"{"type":"message","conversation":"c_1","seq":16,"kind":"text","author":{"kind":"bot","name":"Salam bot"},"text":"Track it.","at":1795000100020,"quick_replies":[{"label":"Talk to a person","payload":"Talk to a person"}]}"#;
    let Some(Incoming::Message(decoded)) = decode(line) else {
        panic!("not a message");
    };
    let stored = decoded.to_json().to_text();
    assert_eq!(
        Line::from_json(&Json::parse(&stored).unwrap()),
        Some(decoded)
    );
}

#[test]
fn ignores_what_a_widget_does_not_use() {
    assert_eq!(decode(r#"{"type":"pong","nonce":3}"#), None);
    assert_eq!(decode(r#"{"type":"agents","agents":[]}"#), None);
    assert_eq!(decode("not json"), None);
    assert_eq!(
        decode(r#"{"type":"error","code":"brand_new_code","message":"?"}"#),
        Some(Incoming::Error {
            code: None,
            client_id: None
        })
    );
}
