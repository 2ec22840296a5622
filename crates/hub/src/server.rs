//! The HTTP server: accepts TCP connections and serves the router over hyper's HTTP/1.1
//! (with upgrades to WebSocket; no cleartext HTTP/2, which no browser speaks and a
//! proxy in front does not need), with what `axum::serve` does not offer:
//!
//! - a **header-read timeout** (`limits.header_timeout_secs`): a client that trickles its
//!   request headers (slowloris) is cut off instead of holding a file descriptor;
//! - a **cap on TCP connections per address** (a little above
//!   `limits.max_connections_per_ip`, which caps WebSockets), so one address cannot take
//!   every descriptor; addresses of trusted proxies are not capped here (their clients
//!   are, by their forwarded address, at the WebSocket upgrade);
//! - the peer's address as a request extension (`ConnectInfo<SocketAddr>`), which
//!   [`crate::extract::ClientIp`] reads;
//! - `TCP_NODELAY` on every accepted socket (chat frames are small, and Nagle's
//!   algorithm holding one back until the peer's delayed ACK was the p99 at 5k
//!   messages/s).
//!
//! Graceful: when `shutdown` resolves it stops accepting and lets the connections in
//! flight finish (upgraded WebSockets have their own shutdown signal).

use axum::Router;
use axum::extract::ConnectInfo;
use dashmap::DashMap;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::Service;

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// A request's headers must arrive within this.
    pub header_timeout: Duration,
    /// TCP connections one address may hold at once (not for trusted proxies).
    pub tcp_per_ip: usize,
    /// Peers whose connections are not capped (they carry many clients).
    pub trusted_proxies: Vec<crate::config::IpNet>,
}

/// Open TCP connections per address; a connection holds a [`Slot`].
#[derive(Default)]
struct Open(DashMap<IpAddr, usize>);

/// One counted connection; given back when dropped.
struct Slot {
    open: Arc<Open>,
    ip: IpAddr,
}

impl Open {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut count = self.0.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The guard is dropped at the end of the `match`, before `remove_if` takes the
        // shard again.
        let empty = match self.open.0.get_mut(&self.ip) {
            Some(mut count) => {
                *count = count.saturating_sub(1);
                *count == 0
            }
            None => false,
        };
        if empty {
            self.open.0.remove_if(&self.ip, |_, count| *count == 0);
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits (5 s at most) for
/// the HTTP connections in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Open::default());
    // Graceful stop: `stop` tells every connection to finish its request in flight and
    // close; each task holds an `alive` sender, so `all_closed` ends once they are gone.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    // HTTP/1.1 (with upgrades to WebSocket): what nginx and browsers speak to the hub.
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let trusted = limits
            .trusted_proxies
            .iter()
            .any(|proxy| proxy.contains(peer.ip()));
        let slot = if trusted {
            None
        } else {
            match open.take(peer.ip(), limits.tcp_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "too many connections from one address; refused");
                    drop(stream);
                    continue;
                }
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                // A Router is always ready; each request gets its own clone to call.
                router.clone().call(request.map(axum::body::Body::new))
            },
        );
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = async {
                    let _ = stopping.wait_for(|stop| *stop).await;
                } => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    let _ = stop.send(true);
    drop(alive);
    tokio::select! {
        _ = all_closed.recv() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::debug!("connections still open after 5 s; stopping anyway");
        }
    }
    Ok(())
}

/// The peer address of a request served by [`serve`] (`None` in tests that call the
/// router directly).
pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
