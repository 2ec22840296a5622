//! Connection slots under attack (issue 12): the agent socket's Origin, the hello
//! deadline, slots kept for agents, sockets and TCP connections per address, and the
//! header-read timeout.

use salam_e2e::{Client, Ended, SHOP_ORIGIN, TestHub, refused_with};
use salam_protocol::ServerFrame;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn the_agent_socket_needs_the_consoles_origin_with_a_cookie() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.auth.console_origins = vec!["https://support.shop.test".into()];
    })
    .await?;
    let token = hub.admin_token().await?;
    let cookie = ("Cookie", format!("salam_session={token}"));
    let own = format!("http://{}", hub.addr);
    let other_port = format!("http://127.0.0.1:{}", hub.addr.port() + 1);
    // Another port of the same host, a site the hub serves, a sandboxed page, none.
    for origin in [
        Some(other_port.as_str()),
        Some(SHOP_ORIGIN),
        Some("https://evil.example"),
        Some("null"),
        None,
    ] {
        let mut headers = vec![cookie.clone()];
        if let Some(origin) = origin {
            headers.push(("Origin", origin.to_owned()));
        }
        let refused = Client::connect_with(hub.addr, "/ws/agent", &headers).await;
        assert!(refused_with(&refused, 403), "{origin:?} was let in");
    }
    for origin in [own.as_str(), "https://support.shop.test"] {
        let mut client = Client::connect_with(
            hub.addr,
            "/ws/agent",
            &[cookie.clone(), ("Origin", origin.into())],
        )
        .await?;
        client.send_json(&json!({"type": "hello", "v": 1})).await?;
        client
            .recv_until(|frame| matches!(frame, ServerFrame::Welcome { .. }))
            .await?;
    }
    // A bearer token cannot be attached by a page: no Origin needed.
    let mut bearer = Client::connect_agent(hub.addr, &token).await?;
    bearer.send_json(&json!({"type": "hello", "v": 1})).await?;
    bearer
        .recv_until(|frame| matches!(frame, ServerFrame::Welcome { .. }))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_socket_that_never_says_hello_gives_its_slot_back() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.websocket.hello_timeout_secs = 1;
        // Pings every second: the answers (pongs) must not count as a handshake.
        config.websocket.heartbeat_secs = 1;
    })
    .await?;
    let mut silent = Client::connect_visitor(hub.addr, Some(SHOP_ORIGIN)).await?;
    match silent.ended().await {
        Ended::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("the silent socket was not closed: {other:?}"),
    }
    // One that greets in time stays.
    let mut greeted = hub.visitor(None).await?;
    greeted
        .send_json(&json!({"type": "ping", "nonce": 7}))
        .await?;
    greeted
        .recv_until(|frame| matches!(frame, ServerFrame::Pong { nonce: Some(7) }))
        .await?;
    Ok(())
}

#[tokio::test]
async fn agents_keep_their_reserved_slots() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.limits.max_connections = 6;
        config.limits.agent_reserved_connections = 3;
    })
    .await?;
    let mut visitors = Vec::new();
    for _ in 0..3 {
        visitors.push(hub.visitor(None).await?);
    }
    let refused = Client::connect_visitor(hub.addr, Some(SHOP_ORIGIN)).await;
    assert!(refused_with(&refused, 503), "visitors took an agent's slot");
    // The agents still get in.
    let token = hub.admin_token().await?;
    let mut agents = Vec::new();
    for _ in 0..3 {
        let mut agent = Client::connect_agent(hub.addr, &token).await?;
        agent.send_json(&json!({"type": "hello", "v": 1})).await?;
        agent
            .recv_until(|frame| matches!(frame, ServerFrame::Welcome { .. }))
            .await?;
        agents.push(agent);
    }
    Ok(())
}

#[tokio::test]
async fn one_address_cannot_take_every_socket() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.limits.max_connections_per_ip = 3;
    })
    .await?;
    let from = |ip: &str| {
        vec![
            ("Origin", SHOP_ORIGIN.to_owned()),
            ("X-Forwarded-For", ip.to_owned()),
        ]
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Client::connect_with(hub.addr, "/ws/visitor", &from("203.0.113.7")).await?);
    }
    let refused = Client::connect_with(hub.addr, "/ws/visitor", &from("203.0.113.7")).await;
    assert!(
        refused_with(&refused, 429),
        "a fourth socket from one address"
    );
    // Others are not affected, and a closed socket gives its place back.
    Client::connect_with(hub.addr, "/ws/visitor", &from("203.0.113.8")).await?;
    open.pop().expect("a socket").close().await;
    let mut again = None;
    for _ in 0..50 {
        if let Ok(client) =
            Client::connect_with(hub.addr, "/ws/visitor", &from("203.0.113.7")).await
        {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the freed place was not given back");
    Ok(())
}

/// Reads until the server closes the connection; `Err` if it is still open after
/// `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> anyhow::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => anyhow::bail!("still open after {wait:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(received),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.limits.header_timeout_secs = 1).await?;
    // Slowloris: a request line and one header, then nothing more.
    let mut slow = TcpStream::connect(hub.addr).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let answer = closed_within(&mut slow, Duration::from_secs(15)).await?;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A request that arrives whole is served.
    let health = salam_e2e::http_request(hub.addr, "GET", "/healthz", &[], "").await?;
    assert_eq!(health.status, 200);
    Ok(())
}

#[tokio::test]
async fn tcp_connections_per_address_are_capped() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        // Loopback is a trusted proxy by default (not capped): here it is a client.
        config.auth.trusted_proxies.clear();
        config.limits.max_connections_per_ip = 2;
        config.limits.header_timeout_secs = 60;
    })
    .await?;
    // The cap on TCP connections is the socket cap plus room for REST calls (64).
    let cap = 2 + 64;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(TcpStream::connect(hub.addr).await?);
    }
    let mut over = TcpStream::connect(hub.addr).await?;
    closed_within(&mut over, Duration::from_secs(15)).await?;
    // The ones held are still served.
    let first = &mut held[0];
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let answer = closed_within(first, Duration::from_secs(15)).await?;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    Ok(())
}
