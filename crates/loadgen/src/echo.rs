//! The ceiling: a bare tokio-tungstenite echo server, and the closed-loop client that
//! measures its round trips per server CPU-second.
//!
//! The server does what the hub must do at the least for one message — read a frame,
//! write a frame — with the hub's 4 KiB buffers, and nothing else: no JSON, no storage,
//! no fan-out. The hub's acknowledged messages per CPU-second divided by this figure
//! is the share of the CPU the hub spends on the WebSocket itself.

use crate::probe::ServerProbe;
use crate::report::Window;
use crate::wire::{self, Socket, small_buffers};
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::accept_async_with_config;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Accepts connections until `shutdown` completes and echoes every data frame back.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(async move {
                        // A client that breaks the protocol only ends its own connection.
                        let _ = echo_connection(stream).await;
                    });
                }
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning on the error.
                    eprintln!("salam-echo: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn echo_connection(stream: TcpStream) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut socket = accept_async_with_config(stream, Some(small_buffers())).await?;
    while let Some(message) = socket.next().await {
        match message? {
            message @ (Message::Text(_) | Message::Binary(_)) => socket.send(message).await?,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    Ok(())
}

/// Options of `salam-loadgen echo`.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    pub addr: String,
    pub connections: usize,
    pub window: usize,
    pub payload_bytes: usize,
    pub warmup: Duration,
    pub seconds: Duration,
    pub probe: Option<ServerProbe>,
}

/// Runs closed-loop round trips against an echo server; returns the JSON result.
pub async fn run(options: EchoOptions) -> Result<serde_json::Value> {
    if options.connections == 0 || options.window == 0 {
        bail!("--connections and --window must be at least 1");
    }
    eprintln!(
        "echo: connecting {} clients to {}",
        options.connections, options.addr
    );
    let mut sockets = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let socket = tokio::time::timeout(
            wire::HANDSHAKE_TIMEOUT,
            wire::connect(&options.addr, "/", &[]),
        )
        .await
        .context("connecting timed out")??;
        sockets.push(socket);
    }

    // A payload the size of a typical `send` frame.
    let payload: Utf8Bytes = format!(
        "{{\"type\":\"send\",\"client_id\":\"lg-0\",\"text\":\"{}\"}}",
        "x".repeat(options.payload_bytes)
    )
    .into();
    let round_trips = Arc::new(AtomicU64::new(0));
    let (stop_sender, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for socket in sockets {
        tasks.spawn(client(
            socket,
            options.window,
            payload.clone(),
            round_trips.clone(),
            stop.clone(),
        ));
    }

    eprintln!("echo: warming up for {:?}", options.warmup);
    tokio::time::sleep(options.warmup).await;
    let at_start = round_trips.load(Ordering::Relaxed);
    let window = Window::open(options.probe.as_ref());
    tokio::time::sleep(options.seconds).await;
    let at_end = round_trips.load(Ordering::Relaxed);
    let measured = window.close();
    let _ = stop_sender.send(true);

    let (_, errors, first_error) = join_all(&mut tasks).await;
    let count = at_end - at_start;
    eprintln!(
        "echo: {count} round trips in {:.2} s = {:.0}/s; server CPU {:?} s",
        measured.seconds,
        measured.per_second(count),
        measured.server_cpu_seconds
    );
    Ok(serde_json::json!({
        "test": "echo",
        "addr": options.addr,
        "connections": options.connections,
        "window": options.window,
        "payload_bytes": payload.len(),
        "seconds": measured.seconds,
        "round_trips": count,
        "round_trips_per_sec": measured.per_second(count),
        "server_cpu_seconds": measured.server_cpu_seconds,
        "server_cpu_share": measured.server_cpu_share(),
        "loadgen_cpu_share": measured.loadgen_cpu_share,
        "round_trips_per_server_cpu_sec": measured.per_server_cpu_second(count),
        "errors": errors,
        "first_error": first_error,
    }))
}

/// Keeps `window` frames in flight on one connection until told to stop.
async fn client(
    mut socket: Socket,
    window: usize,
    payload: Utf8Bytes,
    round_trips: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    for _ in 0..window {
        socket.feed(Message::Text(payload.clone())).await?;
    }
    socket.flush().await?;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            message = socket.next() => match message {
                Some(Ok(Message::Text(_))) => {
                    round_trips.fetch_add(1, Ordering::Relaxed);
                    socket.send(Message::Text(payload.clone())).await?;
                }
                Some(Ok(Message::Close(_))) | None => bail!("the server closed the connection"),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err.into()),
            },
        }
    }
}

/// Waits (at most ten seconds) for every task; returns what the tasks that succeeded
/// returned, the number that failed, and the first failure.
pub async fn join_all<T: 'static>(tasks: &mut JoinSet<Result<T>>) -> (Vec<T>, u64, Option<String>) {
    let mut results = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok(Ok(result)))) => results.push(result),
            Ok(Some(Ok(Err(err)))) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{err:#}"));
            }
            Ok(Some(Err(join_error))) => {
                errors += 1;
                first_error.get_or_insert_with(|| join_error.to_string());
            }
            Err(_elapsed) => {
                tasks.abort_all();
                first_error.get_or_insert_with(|| "tasks did not stop in time".into());
                break;
            }
        }
    }
    (results, errors, first_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_round_trips_against_the_echo_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let (stop_sender, stop) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stop.await;
        }));
        let result = run(EchoOptions {
            addr,
            connections: 4,
            window: 2,
            payload_bytes: 16,
            warmup: Duration::from_millis(50),
            seconds: Duration::from_millis(200),
            // The server runs in this process, so its CPU time is ours.
            probe: Some(ServerProbe::new(std::process::id()).expect("own process")),
        })
        .await
        .expect("echo run");
        assert!(result["round_trips"].as_u64().unwrap_or(0) > 0, "{result}");
        assert_eq!(result["errors"], 0, "{result}");
        assert!(
            result["round_trips_per_server_cpu_sec"].is_number(),
            "{result}"
        );
        let _ = stop_sender.send(());
        server.await.expect("server stops");
    }
}
