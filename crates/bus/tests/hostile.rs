//! Fake servers (a tokio listener in the test) that misbehave: the client returns an
//! error or reconnects, and never panics.

use crate::support::{eventually, options};
use salam_bus::{BusError, Client, Options};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const INFO: &[u8] = b"INFO {\"server_id\":\"fake\",\"max_payload\":1048576,\"headers\":true}\r\n";

/// A server that sends `greeting` on connect and then reads until the client hangs up.
async fn greeting_server(greeting: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.write_all(greeting).await;
                drain(&mut socket).await;
            });
        }
    });
    url
}

async fn drain(socket: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// A server that does the handshake properly (INFO, then PONG to the client's PING), then
/// sends `after_handshake`, on every connection. Counts connections and keeps what the
/// client sent after the handshake.
async fn lying_server(
    info: &'static [u8],
    after_handshake: Vec<u8>,
) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    let n_connections = Arc::new(AtomicUsize::new(0));
    let counter = n_connections.clone();
    let from_client = Arc::new(Mutex::new(Vec::new()));
    let recorded = from_client.clone();
    let after_handshake: &'static [u8] = after_handshake.leak();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let _ = socket.write_all(info).await;
                let mut received = Vec::new();
                let mut chunk = [0u8; 4096];
                while !received.windows(6).any(|window| window == b"PING\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(n) if n > 0 => received.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let _ = socket.write_all(b"PONG\r\n").await;
                let _ = socket.write_all(after_handshake).await;
                while let Ok(n) = socket.read(&mut chunk).await
                    && n > 0
                {
                    recorded.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            });
        }
    });
    (url, n_connections, from_client)
}

#[tokio::test]
async fn garbage_instead_of_info_is_a_protocol_error() {
    for greeting in [
        &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
        b"MSG a 1 99999999999999\r\n",
        b"INFO {\"max_payload\":\r\n",
        b"\x00\x01\x02\xff\r\n",
        b"PONG\r\n",
    ] {
        let url = greeting_server(greeting).await;
        let result = Client::connect(options(&url)).await;
        assert!(
            matches!(result, Err(BusError::Protocol(_))),
            "{:?}: {result:?}",
            String::from_utf8_lossy(greeting)
        );
    }
}

#[tokio::test]
async fn a_server_that_says_nothing_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    let quick = Options {
        request_timeout: Duration::from_millis(200),
        ..options(&url)
    };
    let result = Client::connect(quick).await;
    assert!(matches!(result, Err(BusError::Connect(_))), "{result:?}");
    drop(listener);
}

#[tokio::test]
async fn a_server_that_refuses_us_with_err_is_a_protocol_error() {
    let url = greeting_server(b"-ERR 'Authorization Violation'\r\n").await;
    let result = Client::connect(options(&url)).await;
    assert!(matches!(result, Err(BusError::Protocol(_))), "{result:?}");
}

/// After a good handshake, each of these makes the client drop the connection and
/// connect again.
#[tokio::test]
async fn hostile_frames_after_the_handshake_make_the_client_reconnect() {
    let endless_line = {
        let mut line = b"INFO ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 200 * 1024));
        line
    };
    let cases: Vec<(&'static [u8], Vec<u8>)> = vec![
        (INFO, b"MSG a 2 999999999999\r\n".to_vec()),
        (INFO, b"MSG a 2 2000000\r\n".to_vec()),
        (INFO, b"MSG a 2 3\r\nabcXX".to_vec()),
        (INFO, b"WHAT IS THIS\r\n".to_vec()),
        (INFO, endless_line),
        // A server that claims an absurd max_payload still cannot make us buffer it.
        (
            b"INFO {\"max_payload\":1000000000000}\r\n",
            b"MSG a 2 900000000000\r\n".to_vec(),
        ),
    ];
    for (info, frame) in cases {
        let shown = String::from_utf8_lossy(&frame[..frame.len().min(40)]).into_owned();
        let (url, n_connections, _) = lying_server(info, frame).await;
        let client = Client::connect(options(&url)).await.unwrap();
        eventually(&format!("a reconnection after {shown:?}"), || {
            client.stats().reconnects >= 1 && n_connections.load(Ordering::SeqCst) >= 2
        })
        .await;
    }
}

#[tokio::test]
async fn server_pings_are_answered_and_async_info_is_applied() {
    let (url, _, from_client) = lying_server(
        INFO,
        b"PING\r\nINFO {\"max_payload\":2048}\r\n+OK\r\n-ERR 'Invalid Subject'\r\n".to_vec(),
    )
    .await;
    let client = Client::connect(options(&url)).await.unwrap();
    eventually("a PONG for the server's PING", || {
        from_client
            .lock()
            .unwrap()
            .windows(6)
            .any(|window| window == b"PONG\r\n")
    })
    .await;
    eventually("the new max_payload", || {
        client.server_max_payload() == 2048
    })
    .await;
    let result = client.publish("a", bytes::Bytes::from(vec![0; 2049]));
    assert!(
        matches!(
            result,
            Err(BusError::TooLarge {
                size: 2049,
                max: 2048
            })
        ),
        "{result:?}"
    );
    assert!(client.is_connected());
    assert_eq!(
        client.stats().reconnects,
        0,
        "+OK and -ERR do not break the connection"
    );
}

/// A server that completes the handshake once, then never sends anything again (it reads
/// and keeps what it reads) and accepts no further connection.
async fn server_that_falls_silent() -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    let from_client = Arc::new(Mutex::new(Vec::new()));
    let recorded = from_client.clone();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        drop(listener);
        let _ = socket.write_all(INFO).await;
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        while !received.windows(6).any(|window| window == b"PING\r\n") {
            match socket.read(&mut chunk).await {
                Ok(n) if n > 0 => received.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let _ = socket.write_all(b"PONG\r\n").await;
        while let Ok(n) = socket.read(&mut chunk).await
            && n > 0
        {
            recorded.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    (url, from_client)
}

#[tokio::test]
async fn a_server_that_falls_silent_is_pinged_then_given_up() {
    let (url, from_client) = server_that_falls_silent().await;
    let client = Client::connect(options(&url)).await.unwrap();
    // Keepalive and staleness are minutes of idle time: let tokio's clock jump.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(61)).await;
    eventually("the client gives up on the silent server", || {
        !client.is_connected()
    })
    .await;
    let sent = from_client.lock().unwrap().clone();
    assert!(
        sent.windows(6).any(|window| window == b"PING\r\n"),
        "no keepalive PING: {:?}",
        String::from_utf8_lossy(&sent)
    );
}
