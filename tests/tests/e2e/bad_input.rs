//! Bad input: each gets an error frame with a stable code; the connection stays usable
//! where that makes sense; nothing panics; nothing acknowledged is lost.

use futures_util::SinkExt;
use salam_e2e::TestHub;
use salam_protocol::{ErrorCode, ServerFrame};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn expect_error(
    client: &mut salam_e2e::Client,
    code: ErrorCode,
) -> anyhow::Result<Option<String>> {
    match client.recv().await? {
        ServerFrame::Error {
            code: got,
            client_id,
            ..
        } if got == code => Ok(client_id),
        other => anyhow::bail!("expected error {code}, got {other:?}"),
    }
}

async fn still_usable(client: &mut salam_e2e::Client) -> anyhow::Result<()> {
    client
        .send_json(&json!({"type": "ping", "nonce": 42}))
        .await?;
    let (pong, _) = client
        .recv_until(|f| matches!(f, ServerFrame::Pong { .. }))
        .await?;
    assert!(matches!(pong, ServerFrame::Pong { nonce: Some(42) }));
    Ok(())
}

#[tokio::test]
async fn malformed_frames_get_stable_codes_and_the_socket_survives() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut visitor = hub.visitor(None).await?;
    let cases: &[(&str, ErrorCode)] = &[
        ("{not json", ErrorCode::BadJson),
        ("", ErrorCode::BadJson),
        ("[1, 2]", ErrorCode::UnknownType),
        (r#"{"type": "launch"}"#, ErrorCode::UnknownType),
        (
            r#"{"type": "send", "client_id": 7, "text": "x"}"#,
            ErrorCode::BadField,
        ),
        (r#"{"type": "send", "client_id": "c"}"#, ErrorCode::BadField),
        (
            r#"{"type": "seen", "conversation": "c", "seq": "many"}"#,
            ErrorCode::BadField,
        ),
        (
            r#"{"type": "hello", "v": 1, "site": "x"}"#,
            ErrorCode::AlreadyGreeted,
        ),
        (
            r#"{"type": "send", "client_id": "e", "text": "   "}"#,
            ErrorCode::EmptyText,
        ),
        (
            r#"{"type": "send", "client_id": "", "text": "x"}"#,
            ErrorCode::BadField,
        ),
    ];
    for (text, code) in cases {
        visitor.send_text(text).await?;
        expect_error(&mut visitor, *code)
            .await
            .map_err(|err| anyhow::anyhow!("{text}: {err}"))?;
    }
    // A binary frame.
    visitor
        .socket
        .send(WsMessage::binary(vec![0u8, 159, 146, 150]))
        .await?;
    expect_error(&mut visitor, ErrorCode::BadJson).await?;
    visitor
        .socket
        .send(WsMessage::binary(b"{}".to_vec()))
        .await?;
    expect_error(&mut visitor, ErrorCode::BinaryUnsupported).await?;
    still_usable(&mut visitor).await?;
    Ok(())
}

#[tokio::test]
async fn oversized_text_and_frames_are_refused_without_losing_the_socket() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut visitor = hub.visitor(None).await?;
    let long = "ش".repeat(4_001);
    visitor
        .send_json(&json!({"type": "send", "client_id": "long", "text": long}))
        .await?;
    assert_eq!(
        expect_error(&mut visitor, ErrorCode::TextTooLong)
            .await?
            .as_deref(),
        Some("long")
    );
    // Exactly at the limit is fine.
    let at_limit = "x".repeat(4_000);
    visitor
        .send_json(&json!({"type": "send", "client_id": "ok", "text": at_limit}))
        .await?;
    assert!(matches!(visitor.recv().await?, ServerFrame::Ack { .. }));
    // A frame over 64 KiB.
    let huge = format!(
        r#"{{"type":"send","client_id":"h","text":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    visitor.send_text(&huge).await?;
    let (error, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::FrameTooLarge,
            ..
        }
    ));
    still_usable(&mut visitor).await?;
    // Beyond the hard limit (1 MiB) the socket is closed with 1009.
    let mut other = hub.visitor(None).await?;
    let _ = other.send_text(&"b".repeat(2 * 1024 * 1024)).await;
    match other.ended().await {
        salam_e2e::Ended::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        salam_e2e::Ended::Closed(None) | salam_e2e::Ended::Error(_) => {}
    }
    // The hub still serves.
    let mut again = hub.visitor(None).await?;
    still_usable(&mut again).await?;
    Ok(())
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_what_was_acked_is_kept() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.limits.rate_per_sec = 5;
        config.limits.burst = 10;
    })
    .await?;
    let mut agent = hub.admin_agent().await?;
    let mut flooder = hub.visitor(None).await?;
    let n_sent = 100;
    for index in 0..n_sent {
        flooder
            .send_json(&json!({"type": "send", "client_id": format!("f{index}"), "text": "spam"}))
            .await?;
    }
    let mut acked = Vec::new();
    let mut limited = 0;
    let mut conversation = String::new();
    while acked.len() + limited < n_sent {
        match flooder.recv().await? {
            ServerFrame::Ack {
                client_id,
                seq,
                conversation: acked_in,
                ..
            } => {
                conversation = acked_in;
                acked.push((client_id, seq));
            }
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                client_id,
                ..
            } => {
                assert!(client_id.is_some(), "the refused send is named");
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(limited >= 80, "only {limited} of {n_sent} were limited");
    assert!(!acked.is_empty());
    // Every acknowledged message is stored, in order, and reaches the agent who opens
    // the conversation (replayed, then live: once each, by sequence).
    let seqs: Vec<u64> = acked.iter().map(|(_, seq)| *seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    agent.watch(&conversation, 0).await?;
    let mut delivered = std::collections::BTreeMap::new();
    while delivered.len() < acked.len() {
        if let ServerFrame::Message(m) = agent.recv().await?
            && m.author.kind == salam_protocol::AuthorKind::Visitor
        {
            delivered.insert(m.seq, m.client_id.unwrap_or_default());
        }
    }
    let delivered: Vec<(String, u64)> = delivered
        .into_iter()
        .map(|(seq, client_id)| (client_id, seq))
        .collect();
    assert_eq!(delivered, acked);
    // Another visitor is not affected.
    let mut calm = hub.visitor(None).await?;
    calm.send_json(&json!({"type": "send", "client_id": "c1", "text": "hello"}))
        .await?;
    assert!(matches!(calm.recv().await?, ServerFrame::Ack { .. }));
    Ok(())
}

#[tokio::test]
async fn frames_before_hello_and_hostile_text() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut client =
        salam_e2e::Client::connect_visitor(hub.addr, Some(salam_e2e::SHOP_ORIGIN)).await?;
    client
        .send_json(&json!({"type": "send", "client_id": "x", "text": "hi"}))
        .await?;
    expect_error(&mut client, ErrorCode::HelloRequired).await?;
    client
        .send_json(&json!({"type": "hello", "v": 2, "site": hub.site.key}))
        .await?;
    expect_error(&mut client, ErrorCode::UnsupportedVersion).await?;

    let mut agent = hub.admin_agent().await?;
    let mut visitor = hub.visitor(None).await?;
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)> \u{202e}\u{0000}\u{200f} ((a+)+)+$ 🙂";
    visitor
        .send_json(&json!({"type": "send", "client_id": "h", "text": hostile}))
        .await?;
    let ServerFrame::Ack { conversation, .. } = visitor.recv().await? else {
        panic!("expected the ack")
    };
    // The agent's summary carries a preview of it, verbatim...
    let (activity, _) = agent
        .recv_until(|f| matches!(f, ServerFrame::Activity { .. }))
        .await?;
    let ServerFrame::Activity { preview, .. } = activity else {
        unreachable!()
    };
    // Spanning bidi controls (U+202E) are stripped and NUL becomes U+FFFD (PostgreSQL's
    // text cannot hold it: the same on both backends); everything else is verbatim.
    let stored = hostile.replace('\u{202e}', "").replace('\0', "\u{FFFD}");
    assert_eq!(preview.text, stored, "the preview is data too");
    // ...and the message itself when the agent opens the conversation.
    agent.watch(&conversation, 0).await?;
    let (frame, _) = agent
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.author.kind == salam_protocol::AuthorKind::Visitor))
        .await?;
    let ServerFrame::Message(message) = frame else {
        unreachable!()
    };
    assert_eq!(
        message.text, stored,
        "stored and relayed as data (without the override)"
    );
    Ok(())
}
