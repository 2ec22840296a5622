//! Many idle visitor connections: the server's memory per connection and how fast it
//! accepts new ones.
//!
//! The connections are opened in steps (`--connections 1000,5000,10000`): after each
//! step the load generator waits for the server to settle and reads its resident
//! memory, so one run gives the cost per connection at several sizes, all against the
//! same baseline taken before the first connection. Measuring the steps in one process
//! (rather than one process per size) avoids the allocator re-using memory freed by
//! an earlier, larger run and hiding the cost.
//!
//! Key design decision: **an idle connection is held by a task that keeps reading**,
//! not parked in a `Vec`. Socket.IO closes a client that misses one heartbeat
//! (`2` → `3`, every 25 s), Soketi one that is silent for 120 s, and the hub pings too;
//! a held connection answers all of them ([`crate::client::Conn::next_event`]) and,
//! for Pusher, pings on its own every 30 s like `pusher-js`. Connections the server
//! drops anyway are counted (`lost`). What "connected" means is each protocol's full
//! handshake: `hello` → `welcome` (Salam), open → connect (Socket.IO), connection
//! established and subscribed to the visitor's own private channel (Pusher: a chat
//! widget that could not receive replies would not be a chat widget), or just the
//! WebSocket upgrade (echo).

use crate::client::{Conn, Event, IDLE_BASE, Target};
use crate::probe::ServerProbe;
use crate::report::Window;
use anyhow::{Result, bail};
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// Options of `salam-loadgen idle`.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    pub target: Target,
    /// Total connections after each step, increasing.
    pub steps: Vec<usize>,
    pub hold: Hold,
    pub settle: Duration,
    pub connect_concurrency: usize,
    pub probe: Option<ServerProbe>,
}

/// How long the connections are held after the last step.
#[derive(Debug, Clone, Copy)]
pub enum Hold {
    For(Duration),
    /// Until standard input reaches its end (or fails): the caller decides.
    UntilStdinCloses,
}

impl Hold {
    async fn wait(self) {
        match self {
            Hold::For(duration) => tokio::time::sleep(duration).await,
            Hold::UntilStdinCloses => {
                let mut stdin = tokio::io::stdin();
                let mut buffer = [0u8; 256];
                while matches!(
                    tokio::io::AsyncReadExt::read(&mut stdin, &mut buffer).await,
                    Ok(n) if n > 0
                ) {}
            }
        }
    }
}

/// What one step measured.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Connections open after the step (opened so far minus lost).
    pub connections: usize,
    /// Connections this step opened.
    pub opened: usize,
    pub failed: usize,
    /// Connections the server closed since the first step, as of this step.
    pub lost: u64,
    pub seconds: f64,
    pub connects_per_sec: f64,
    pub server_cpu_seconds: Option<f64>,
    pub connects_per_server_cpu_sec: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// `(rss_bytes - baseline) / connections`.
    pub bytes_per_connection: Option<f64>,
}

/// Idle visitor connections, each held open by a task of its own.
pub struct IdlePool {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    lost: Arc<AtomicU64>,
    opened: usize,
    next: u64,
}

impl std::fmt::Debug for IdlePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdlePool")
            .field("opened", &self.opened)
            .field("lost", &self.lost())
            .finish()
    }
}

/// What one [`IdlePool::grow`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Grown {
    pub opened: usize,
    pub failed: usize,
    pub seconds: f64,
    pub first_error: Option<String>,
}

impl Default for IdlePool {
    fn default() -> IdlePool {
        IdlePool::new()
    }
}

impl IdlePool {
    pub fn new() -> IdlePool {
        IdlePool {
            tasks: JoinSet::new(),
            stop: watch::channel(false).0,
            lost: Arc::new(AtomicU64::new(0)),
            opened: 0,
            next: 0,
        }
    }

    /// Opens `count` more idle visitors, `concurrency` handshakes at a time; each is
    /// held from the moment its handshake completes.
    pub async fn grow(&mut self, target: &Target, count: usize, concurrency: usize) -> Grown {
        let first = self.next;
        self.next += count as u64;
        let started = Instant::now();
        let mut results = futures_util::stream::iter(first..first + count as u64)
            .map(|n| Conn::visitor(target, IDLE_BASE + n, 0))
            .buffer_unordered(concurrency.max(1));
        let mut grown = Grown {
            opened: 0,
            failed: 0,
            seconds: 0.0,
            first_error: None,
        };
        while let Some(result) = results.next().await {
            match result {
                Ok(conn) => {
                    grown.opened += 1;
                    self.tasks
                        .spawn(hold(conn, self.stop.subscribe(), self.lost.clone()));
                }
                Err(err) => {
                    grown.failed += 1;
                    grown.first_error.get_or_insert_with(|| format!("{err:#}"));
                }
            }
        }
        grown.seconds = started.elapsed().as_secs_f64();
        self.opened += grown.opened;
        grown
    }

    /// Connections the server has closed so far.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.opened
            .saturating_sub(usize::try_from(self.lost()).unwrap_or(usize::MAX))
    }

    /// Closes every connection.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Holds one idle connection: answers the server, keeps it alive, counts it as lost
/// if the server closes it.
async fn hold(mut conn: Conn, mut stop: watch::Receiver<bool>, lost: Arc<AtomicU64>) {
    let mut keepalive = conn.keepalive_interval().map(|every| {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = async {
                match keepalive.as_mut() {
                    Some(ticker) => ticker.tick().await,
                    None => std::future::pending().await,
                }
            }, if keepalive.is_some() => {
                if conn.keepalive().await.is_err() {
                    lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            event = conn.next_event() => match event {
                Ok(Event::Closed) | Err(_) => {
                    lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(_) => {}
            },
        }
    }
}

/// Opens the connections step by step and holds them; returns the JSON result.
pub async fn run(options: IdleOptions) -> Result<serde_json::Value> {
    if options.steps.is_empty() || options.steps.windows(2).any(|pair| pair[0] >= pair[1]) {
        bail!("--connections must be one or more increasing numbers");
    }
    let rss = |probe: &Option<ServerProbe>| probe.as_ref().and_then(|probe| probe.rss_bytes().ok());
    let baseline_rss = rss(&options.probe);
    let mut pool = IdlePool::new();
    let mut steps = Vec::new();
    let mut first_error = None;
    let (mut total_opened, mut total_seconds, mut total_cpu) = (0usize, 0.0f64, Some(0.0f64));
    for &wanted_total in &options.steps {
        let wanted = wanted_total.saturating_sub(pool.open());
        let window = Window::open(options.probe.as_ref());
        let grown = pool
            .grow(&options.target, wanted, options.connect_concurrency)
            .await;
        let measured = window.close();
        if let Some(err) = grown.first_error {
            first_error.get_or_insert(err);
        }
        total_opened += grown.opened;
        total_seconds += grown.seconds;
        total_cpu = total_cpu
            .zip(measured.server_cpu_seconds)
            .map(|(a, b)| a + b);
        tokio::time::sleep(options.settle).await;
        let rss_bytes = rss(&options.probe);
        let connections = pool.open();
        let bytes_per_connection = match (rss_bytes, baseline_rss) {
            (Some(now), Some(base)) if connections > 0 => {
                Some((now as f64 - base as f64) / connections as f64)
            }
            _ => None,
        };
        let step = Step {
            connections,
            opened: grown.opened,
            failed: grown.failed,
            lost: pool.lost(),
            seconds: grown.seconds,
            connects_per_sec: if grown.seconds > 0.0 {
                grown.opened as f64 / grown.seconds
            } else {
                0.0
            },
            server_cpu_seconds: measured.server_cpu_seconds,
            connects_per_server_cpu_sec: measured.per_server_cpu_second(grown.opened as u64),
            rss_bytes,
            bytes_per_connection,
        };
        eprintln!(
            "idle: {} connections ({} failed, {} lost) in {:.2} s = {:.0}/s; \
             {:.0} bytes per connection",
            step.connections,
            step.failed,
            step.lost,
            step.seconds,
            step.connects_per_sec,
            step.bytes_per_connection.unwrap_or(f64::NAN)
        );
        steps.push(step);
        if grown.opened == 0 && wanted > 0 {
            break;
        }
    }
    if pool.open() == 0 {
        bail!(
            "no visitor could connect: {}",
            first_error.unwrap_or_default()
        );
    }
    // Tests wait for this line (tests/tests/cluster/scale.rs).
    eprintln!(
        "idle: holding {} connections ({:?})",
        pool.open(),
        options.hold
    );
    options.hold.wait().await;
    let rss_after_hold = rss(&options.probe);
    let lost = pool.lost();
    pool.close().await;
    let setup_cpu = total_cpu.filter(|cpu| *cpu > 0.0);
    Ok(serde_json::json!({
        "test": "idle",
        "protocol": options.target.protocol(),
        "addr": options.target.addr,
        "baseline_rss_bytes": baseline_rss,
        "rss_after_hold_bytes": rss_after_hold,
        "steps": steps,
        "lost": lost,
        // Every step's handshakes together.
        "setup": {
            "opened": total_opened,
            "seconds": total_seconds,
            "server_cpu_seconds": setup_cpu,
            "connects_per_sec": if total_seconds > 0.0 { total_opened as f64 / total_seconds } else { 0.0 },
            "connects_per_server_cpu_sec": setup_cpu.map(|cpu| total_opened as f64 / cpu),
        },
        "first_error": first_error,
    }))
}

/// Parses `1000,5000,10000` (also `10k`).
pub fn parse_steps(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let (digits, factor) = match part.strip_suffix(['k', 'K']) {
                Some(digits) => (digits, 1000),
                None => (part, 1),
            };
            match digits.parse::<usize>() {
                Ok(count) => Ok(count * factor),
                Err(_) => bail!("{part:?} is not a number of connections"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(parse_steps("1000").ok(), Some(vec![1000]));
        assert_eq!(
            parse_steps("1k, 5000,10K").ok(),
            Some(vec![1000, 5000, 10_000])
        );
        assert!(parse_steps("1000,,2").is_err());
        assert!(parse_steps("many").is_err());
    }
}
