//! Shutdown, limits, health, metrics, pages.

use salam_e2e::{Client, Ended, TestHub, http_request, refused_with};
use salam_protocol::ServerFrame;
use serde_json::json;

#[tokio::test]
async fn graceful_shutdown_tells_clients_to_reconnect_and_keeps_everything() -> anyhow::Result<()> {
    let mut hub = TestHub::start().await?;
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "before"}))
        .await?;
    let ServerFrame::Ack { conversation, .. } = visitor.recv().await? else {
        panic!()
    };
    let store = hub.state.store.clone();
    hub.shutdown().await?;
    match visitor.ended().await {
        Ended::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1012),
        other => panic!("expected close 1012, got {other:?}"),
    }
    let stored = store.messages_after(&conversation, 0, 100).await?;
    let texts: Vec<&str> = stored
        .iter()
        .filter(|m| m.author.kind == salam_protocol::AuthorKind::Visitor)
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(texts, ["before"]);
    Ok(())
}

#[tokio::test]
async fn the_connection_limit_is_enforced() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.limits.max_connections = 2;
        config.limits.agent_reserved_connections = 0;
    })
    .await?;
    let first = hub.visitor(None).await?;
    let _second = hub.visitor(None).await?;
    let third = Client::connect_visitor(hub.addr, Some(salam_e2e::SHOP_ORIGIN)).await;
    assert!(refused_with(&third, 503));
    // A slot frees up when a client leaves.
    first.close().await;
    let mut ok = false;
    for _ in 0..50 {
        if hub.visitor(None).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "the freed slot was not reused");
    Ok(())
}

#[tokio::test]
async fn health_metrics_and_demo_page() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let health = http_request(hub.addr, "GET", "/healthz", &[], "").await?;
    assert_eq!((health.status, health.body.contains("ok")), (200, true));
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "x"}))
        .await?;
    visitor.recv().await?;
    visitor.send_text("nonsense").await?;
    visitor
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    // Without the token /metrics is not there at all (it would tell an outsider when
    // no agent is online); with it, the counters.
    let outsider = http_request(hub.addr, "GET", "/metrics", &[], "").await?;
    assert_eq!(outsider.status, 401, "{}", outsider.body);
    assert!(!outsider.body.contains("salam_connections"));
    let wrong = http_request(
        hub.addr,
        "GET",
        "/metrics",
        &[("authorization", "Bearer not-the-token")],
        "",
    )
    .await?;
    assert_eq!(wrong.status, 401);
    let authorization = format!("Bearer {}", salam_e2e::process::METRICS_TOKEN);
    let metrics = http_request(
        hub.addr,
        "GET",
        "/metrics",
        &[("authorization", authorization.as_str())],
        "",
    )
    .await?;
    for needle in [
        "salam_connections{kind=\"visitor\"} 1",
        "salam_messages_total ",
        "salam_errors_sent_total{code=\"bad_json\"} 1",
        "salam_commit_batch_size_count",
        "salam_commit_seconds_sum",
    ] {
        assert!(
            metrics.body.contains(needle),
            "missing {needle} in\n{}",
            metrics.body
        );
    }
    let page = http_request(hub.addr, "GET", "/", &[], "").await?;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Demo Store"));
    Ok(())
}

#[tokio::test]
async fn idle_clients_are_pinged_and_dead_ones_closed() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.websocket.heartbeat_secs = 1;
        config.websocket.idle_timeout_secs = 2;
    })
    .await?;
    // tungstenite answers pings automatically only while the socket is read; a client
    // that never reads looks dead and is closed.
    let visitor = hub.visitor(None).await?;
    let mut socket = visitor.socket;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let mut closed = false;
    while let Ok(Some(item)) = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        futures_util::StreamExt::next(&mut socket),
    )
    .await
    {
        match item {
            Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1001);
                closed = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the idle client was not closed");
    Ok(())
}
