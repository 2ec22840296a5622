//! The protocol adapters against small in-process servers that speak just enough
//! Socket.IO and Pusher: handshakes, heartbeats answered while reading, a message sent
//! and its ack or delivery seen as the right [`Event`], and a server that misbehaves.

use futures_util::{SinkExt, StreamExt};
use salam_loadgen::client::{AgentCredentials, Conn, Event, Server, Target};
use salam_loadgen::pusher;
use salam_loadgen::relay::client_id;
use serde_json::{Value, json};
use std::future::Future;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type ServerSocket = WebSocketStream<tokio::net::TcpStream>;

/// Accepts one WebSocket and runs `script` on it; returns the address.
async fn one_connection<F, Fut>(script: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let handle = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let socket = tokio_tungstenite::accept_async(stream)
            .await
            .expect("upgrade");
        script(socket).await;
    });
    (addr, handle)
}

async fn recv_text(socket: &mut ServerSocket) -> String {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
            Some(Ok(_)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send_text(socket: &mut ServerSocket, text: &str) {
    socket
        .send(Message::text(text.to_owned()))
        .await
        .expect("send");
}

#[tokio::test]
async fn socketio_visitor_sends_and_gets_its_ack() {
    let id = (2u64 << 32) | 7;
    let (addr, server) = one_connection(move |mut socket| async move {
        send_text(
            &mut socket,
            r#"0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        )
        .await;
        assert_eq!(recv_text(&mut socket).await, "40");
        // A heartbeat before the connect answer is answered too.
        send_text(&mut socket, "2").await;
        assert_eq!(recv_text(&mut socket).await, "3");
        send_text(&mut socket, r#"40{"sid":"n1"}"#).await;
        let event = recv_text(&mut socket).await;
        let expected_prefix = format!("42{id}[");
        assert!(event.starts_with(&expected_prefix), "{event}");
        let args: Value = serde_json::from_str(&event[expected_prefix.len() - 1..]).expect("json");
        assert_eq!(args[0], "chat");
        assert_eq!(args[1]["to"], "a1");
        assert_eq!(args[1]["id"], client_id(id));
        send_text(&mut socket, "2").await;
        send_text(&mut socket, &format!("43{id}[\"ok\"]")).await;
        assert_eq!(recv_text(&mut socket).await, "3");
        send_text(&mut socket, "garbage").await;
        send_text(&mut socket, "1").await;
    })
    .await;
    let target = Target {
        addr,
        server: Server::SocketIo,
    };
    let mut conn = Conn::visitor(&target, 2, 1).await.expect("handshake");
    conn.send_message(id, "hello").await.expect("send");
    assert_eq!(
        conn.next_event().await.ok(),
        Some(Event::Ack { id: Some(id) })
    );
    assert_eq!(conn.next_event().await.ok(), Some(Event::Undecodable));
    assert_eq!(conn.next_event().await.ok(), Some(Event::Closed));
    server.await.expect("server script");
}

#[tokio::test]
async fn socketio_agent_registers_and_receives() {
    let (addr, server) = one_connection(|mut socket| async move {
        send_text(
            &mut socket,
            r#"0{"sid":"s2","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#,
        )
        .await;
        assert_eq!(recv_text(&mut socket).await, r#"40{"agent":"a3"}"#);
        send_text(&mut socket, r#"40{"sid":"n2"}"#).await;
        send_text(
            &mut socket,
            &format!(
                r#"42["chat",{{"from":"v","id":"{}","text":"x"}}]"#,
                client_id(11)
            ),
        )
        .await;
    })
    .await;
    let target = Target {
        addr,
        server: Server::SocketIo,
    };
    let mut conn = Conn::agent(&target, &AgentCredentials::None, 3, &[])
        .await
        .expect("handshake");
    assert_eq!(
        conn.next_event().await.ok(),
        Some(Event::Delivered { id: 11 })
    );
    server.await.expect("server script");
}

#[tokio::test]
async fn socketio_refused_connection_is_an_error() {
    let (addr, server) = one_connection(|mut socket| async move {
        send_text(
            &mut socket,
            r#"0{"sid":"s3","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#,
        )
        .await;
        let _ = recv_text(&mut socket).await;
        send_text(&mut socket, r#"44{"message":"no"}"#).await;
    })
    .await;
    let target = Target {
        addr,
        server: Server::SocketIo,
    };
    let error = Conn::visitor(&target, 0, 0).await.expect_err("refused");
    assert!(format!("{error:#}").contains("refused"), "{error:#}");
    server.await.expect("server script");
}

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";

/// Checks a `pusher:subscribe` frame's signature and answers it.
async fn accept_subscription(socket: &mut ServerSocket, socket_id: &str) -> String {
    let subscribe: Value = serde_json::from_str(&recv_text(socket).await).expect("json");
    assert_eq!(subscribe["event"], "pusher:subscribe");
    let channel = subscribe["data"]["channel"]
        .as_str()
        .expect("channel")
        .to_owned();
    assert_eq!(
        subscribe["data"]["auth"],
        pusher::auth_signature(KEY, SECRET, socket_id, &channel)
    );
    send_text(
        socket,
        &json!({"event": "pusher_internal:subscription_succeeded", "channel": channel}).to_string(),
    )
    .await;
    channel
}

fn established(socket_id: &str) -> String {
    json!({
        "event": "pusher:connection_established",
        "data": json!({"socket_id": socket_id, "activity_timeout": 30}).to_string(),
    })
    .to_string()
}

#[tokio::test]
async fn pusher_visitor_subscribes_and_triggers_client_events() {
    let (addr, server) = one_connection(|mut socket| async move {
        send_text(&mut socket, &established("1.2")).await;
        assert_eq!(
            accept_subscription(&mut socket, "1.2").await,
            "private-chat-5"
        );
        let event: Value = serde_json::from_str(&recv_text(&mut socket).await).expect("json");
        assert_eq!(event["event"], "client-message");
        assert_eq!(event["channel"], "private-chat-5");
        assert_eq!(event["data"]["id"], client_id(99));
        send_text(&mut socket, r#"{"event":"pusher:ping","data":{}}"#).await;
        send_text(
            &mut socket,
            r#"{"event":"pusher:error","data":{"code":4301}}"#,
        )
        .await;
        let pong: Value = serde_json::from_str(&recv_text(&mut socket).await).expect("json");
        assert_eq!(pong["event"], "pusher:pong");
        let ping: Value = serde_json::from_str(&recv_text(&mut socket).await).expect("json");
        assert_eq!(ping["event"], "pusher:ping");
    })
    .await;
    let target = Target {
        addr,
        server: Server::Pusher {
            key: KEY.to_owned(),
            secret: SECRET.to_owned(),
        },
    };
    let mut conn = Conn::visitor(&target, 5, 0).await.expect("handshake");
    conn.send_message(99, "hello").await.expect("send");
    assert_eq!(
        conn.next_event().await.ok(),
        Some(Event::Rejected { id: None })
    );
    assert!(conn.keepalive_interval().is_some());
    conn.keepalive().await.expect("keepalive");
    server.await.expect("server script");
}

#[tokio::test]
async fn pusher_agent_subscribes_to_its_visitors() {
    let (addr, server) = one_connection(|mut socket| async move {
        send_text(&mut socket, &established("9.9")).await;
        let mut channels = vec![
            accept_subscription(&mut socket, "9.9").await,
            accept_subscription(&mut socket, "9.9").await,
        ];
        channels.sort();
        assert_eq!(channels, ["private-chat-1", "private-chat-3"]);
        send_text(
            &mut socket,
            &json!({"event": "client-message", "channel": "private-chat-3", "data": {"id": client_id(7)}})
                .to_string(),
        )
        .await;
    })
    .await;
    let target = Target {
        addr,
        server: Server::Pusher {
            key: KEY.to_owned(),
            secret: SECRET.to_owned(),
        },
    };
    let mut conn = Conn::agent(&target, &AgentCredentials::None, 1, &[1, 3])
        .await
        .expect("handshake");
    assert_eq!(
        conn.next_event().await.ok(),
        Some(Event::Delivered { id: 7 })
    );
    server.await.expect("server script");
}

#[tokio::test]
async fn pusher_subscription_error_is_an_error() {
    let (addr, server) = one_connection(|mut socket| async move {
        send_text(&mut socket, &established("1.1")).await;
        let _ = recv_text(&mut socket).await;
        send_text(
            &mut socket,
            r#"{"event":"pusher:subscription_error","channel":"private-chat-0","data":{"type":"AuthError","status":401}}"#,
        )
        .await;
    })
    .await;
    let target = Target {
        addr,
        server: Server::Pusher {
            key: KEY.to_owned(),
            secret: "wrong".to_owned(),
        },
    };
    let error = Conn::visitor(&target, 0, 0).await.expect_err("refused");
    assert!(format!("{error:#}").contains("AuthError"), "{error:#}");
    server.await.expect("server script");
}
