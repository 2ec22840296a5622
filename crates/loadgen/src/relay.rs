//! Visitors sending messages through the server to agents.
//!
//! The same run drives the Salam hub, a Socket.IO relay or a Pusher-protocol server
//! (Soketi) through [`crate::client`]: only the framing differs, never the schedule or
//! the accounting.
//!
//! Every message gets a numeric id, sent as its `client_id` (`lg-` and the id in hex;
//! a payload field for the other protocols), and its send time goes into one shared
//! table. The first agent that receives the
//! message frame takes the entry out and records send → receipt, so with several
//! agents the latency is "visitor → first agent". The visitor records send → `ack`
//! separately.
//!
//! Two ways to send:
//!
//! - closed loop (`--rate 0`): each visitor keeps `--window` messages awaiting their
//!   `ack`, which measures how many messages the hub commits per CPU-second (for a
//!   protocol without acks, Pusher's client events, a message is done when an agent
//!   has received it);
//! - open loop (`--rate R`): R messages per second in total, spread evenly over the
//!   visitors and in time. The send time recorded is the *scheduled* time, so a hub
//!   that falls behind shows up in the latency instead of silently slowing the load
//!   (no coordinated omission).
//!
//! Only messages scheduled inside the measured window count toward the latency; after
//! the window the visitors stop sending and the agents get a short drain period to
//! receive what is still in flight.
//!
//! With `--idle N`, N more visitors connect first and stay connected, idle, through
//! the whole run (see [`crate::idle::IdlePool`]): the latency is then measured on a
//! server that also holds N open conversations, as a real one does.
//!
//! With `--also-addr` (more hubs of one cluster) and `--agent-addr`, visitors and agents
//! spread over several hubs and only deliveries across hubs count (see
//! [`crate::spread`]).

use crate::client::{Conn, Event, Target, agent_of};
use crate::echo::join_all;
use crate::idle::IdlePool;
use crate::probe::ServerProbe;
use crate::report::{LatencySummary, Window, latency_histogram, record};
use crate::spread::Spread;
use anyhow::{Result, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// The most visitors one run may have: a message id holds the visitor's index in its
/// upper bits and must stay below 2^53 (Socket.IO ack ids are JavaScript numbers).
pub const MAX_VISITORS: usize = 1 << 20;

/// Options of `salam-loadgen relay`.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub target: Target,
    pub visitors: usize,
    pub agents: usize,
    /// Messages per second in total; 0 for closed loop.
    pub rate: f64,
    /// Messages awaiting `ack` per visitor, in closed loop.
    pub window: usize,
    pub text_bytes: usize,
    pub warmup: Duration,
    pub seconds: Duration,
    pub drain: Duration,
    pub connect_concurrency: usize,
    /// Idle visitors held open through the run (0: none).
    pub idle: usize,
    pub probe: Option<ServerProbe>,
    /// Which hub each visitor and agent connects to (several: `crate::spread`); `None`:
    /// all to `target.addr`.
    pub spread: Option<Spread>,
}

/// Where the run is; visitors and agents watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    /// Stop sending; keep reading acks and messages.
    Drain,
    Stop,
}

/// What the tasks share.
struct Shared {
    base: Instant,
    /// Send time of each message no agent has received yet, by message id. A std
    /// `Mutex` is fine: it is held for one insert or remove, never across an `.await`.
    pending: Mutex<HashMap<u64, Instant>>,
    track_delivery: bool,
    /// Messages scheduled in `[from, until)` (nanoseconds after `base`) are measured.
    measure_from_ns: AtomicU64,
    measure_until_ns: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    undecodable: AtomicU64,
    /// For protocols without acks: tells visitor `i` (the index in a message id's upper
    /// bits) that an agent received one of its messages.
    completions: Vec<mpsc::UnboundedSender<u64>>,
    /// The address of each visitor (by its index in a message id), with the spread.
    visitor_addrs: std::sync::OnceLock<Vec<String>>,
    spread: Spread,
}

impl Shared {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn in_window(&self, sent_at: Instant) -> bool {
        let at = self.nanos(sent_at);
        at >= self.measure_from_ns.load(Ordering::Relaxed)
            && at < self.measure_until_ns.load(Ordering::Relaxed)
    }

    fn pending_len(&self) -> usize {
        self.pending
            .lock()
            .map(|pending| pending.len())
            .unwrap_or(0)
    }

    fn take_pending(&self, id: u64) -> Option<Instant> {
        self.pending.lock().ok()?.remove(&id)
    }
}

/// The `client_id` of message `id`.
pub fn client_id(id: u64) -> String {
    format!("lg-{id:x}")
}

/// The message id in a `client_id` written by [`client_id`].
pub fn parse_client_id(client_id: &str) -> Option<u64> {
    u64::from_str_radix(client_id.strip_prefix("lg-")?, 16).ok()
}

/// Runs the relay benchmark; returns the JSON result.
pub async fn run(options: RelayOptions) -> Result<serde_json::Value> {
    if options.visitors == 0 || options.visitors > MAX_VISITORS {
        bail!("--visitors must be from 1 to {MAX_VISITORS}");
    }
    let has_acks = options.target.has_acks();
    if !has_acks && options.agents == 0 {
        bail!("without acks (Pusher) a relay run needs at least one agent");
    }
    if options.rate == 0.0 && options.window == 0 {
        bail!("closed loop (--rate 0) needs --window of at least 1");
    }
    if !(options.rate.is_finite() && options.rate >= 0.0) {
        bail!("--rate must be a number of messages per second, or 0");
    }
    // Idle visitors first: the server holds them through everything that follows.
    let mut idle_pool = IdlePool::new();
    let idle_grown = if options.idle > 0 {
        eprintln!("relay: connecting {} idle visitors", options.idle);
        let grown = idle_pool
            .grow(&options.target, options.idle, options.connect_concurrency)
            .await;
        eprintln!(
            "relay: {} idle visitors connected in {:.2} s ({} failed)",
            grown.opened, grown.seconds, grown.failed
        );
        Some(grown)
    } else {
        None
    };

    let (completion_senders, mut completion_receivers): (Vec<_>, Vec<_>) = (0..options.visitors)
        .map(|_| {
            let (sender, receiver) = mpsc::unbounded_channel::<u64>();
            (sender, Some(receiver))
        })
        .unzip();
    let spread = match options.spread.clone() {
        Some(spread) => {
            if spread.crosses() && options.target.protocol() != crate::client::Protocol::Salam {
                bail!("several hub addresses work with --protocol salam only");
            }
            spread
        }
        None => Spread::new(
            vec![options.target.addr.clone()],
            Vec::new(),
            options.agents,
        )?,
    };
    let shared = Arc::new(Shared {
        visitor_addrs: std::sync::OnceLock::new(),
        spread: spread.clone(),
        base: Instant::now(),
        pending: Mutex::new(HashMap::new()),
        track_delivery: options.agents > 0,
        measure_from_ns: AtomicU64::new(u64::MAX),
        measure_until_ns: AtomicU64::new(u64::MAX),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        undecodable: AtomicU64::new(0),
        completions: if has_acks {
            Vec::new()
        } else {
            completion_senders
        },
    });
    let (phase_sender, phase) = watch::channel(Phase::Run);

    // Agents first, so that they are listening before the first conversation starts.
    let mut agent_tasks = JoinSet::new();
    if options.agents > 0 {
        let credentials = options.target.agent_credentials().await?;
        for agent_idx in 0..options.agents as u64 {
            let visitors: Vec<u64> = (0..options.visitors as u64)
                .filter(|visitor| agent_of(*visitor, options.agents) == agent_idx)
                .collect();
            let target = Target {
                addr: spread.agent_addr(agent_idx).to_owned(),
                server: options.target.server.clone(),
            };
            let conn = Conn::agent(&target, &credentials, agent_idx, &visitors).await?;
            agent_tasks.spawn(agent(conn, agent_idx, shared.clone(), phase.clone()));
        }
    }
    eprintln!(
        "relay: {} agents connected; connecting {} visitors",
        options.agents, options.visitors
    );
    let connect_started = Instant::now();
    let server = &options.target.server;
    let spread_ref = &spread;
    let connected: Vec<Result<(String, Conn)>> =
        futures_util::stream::iter(0..options.visitors as u64)
            .map(|visitor| async move {
                let target = Target {
                    addr: spread_ref.visitor_addr(visitor).to_owned(),
                    server: server.clone(),
                };
                let conn =
                    Conn::visitor(&target, visitor, agent_of(visitor, options.agents)).await?;
                Ok((target.addr, conn))
            })
            .buffer_unordered(options.connect_concurrency.max(1))
            .collect()
            .await;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let (connected, connect_errors, first_connect_error) =
        crate::report::split_connected(connected, "visitor")?;
    let (visitor_addrs, sockets): (Vec<String>, Vec<Conn>) = connected.into_iter().unzip();
    let _ = shared.visitor_addrs.set(visitor_addrs);
    let n_visitors = sockets.len();

    let text = format!("load test {}", "x".repeat(options.text_bytes));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut visitor_tasks = JoinSet::new();
    for (visitor_idx, socket) in sockets.into_iter().enumerate() {
        let plan = if options.rate > 0.0 {
            let interval = Duration::from_secs_f64(n_visitors as f64 / options.rate);
            // Spread the visitors evenly over one interval.
            let offset = interval.mul_f64(visitor_idx as f64 / n_visitors as f64);
            Plan::Open {
                first: start + offset,
                interval,
            }
        } else {
            Plan::Closed {
                window: options.window,
            }
        };
        let completions = completion_receivers
            .get_mut(visitor_idx)
            .and_then(Option::take)
            .filter(|_| !has_acks);
        visitor_tasks.spawn(visitor(
            socket,
            visitor_idx as u64,
            plan,
            text.clone(),
            shared.clone(),
            phase.clone(),
            completions,
        ));
    }

    eprintln!("relay: warming up for {:?}", options.warmup);
    tokio::time::sleep_until(start).await;
    tokio::time::sleep(options.warmup).await;
    let counters = |shared: &Shared| {
        [
            shared.sent.load(Ordering::Relaxed),
            shared.acked.load(Ordering::Relaxed),
            shared.delivered.load(Ordering::Relaxed),
        ]
    };
    let idle_lost_before = idle_pool.lost();
    let window = Window::open(options.probe.as_ref());
    shared
        .measure_from_ns
        .store(shared.nanos(window.started()), Ordering::Relaxed);
    let [sent_start, acked_start, delivered_start] = counters(&shared);
    tokio::time::sleep(options.seconds).await;
    let [sent_end, acked_end, delivered_end] = counters(&shared);
    shared
        .measure_until_ns
        .store(shared.nanos(Instant::now()), Ordering::Relaxed);
    let measured = window.close();
    let idle_lost_in_window = idle_pool.lost() - idle_lost_before;

    // Let what is in flight arrive, then stop.
    let _ = phase_sender.send(Phase::Drain);
    let drain_deadline = Instant::now() + options.drain;
    while shared.track_delivery && shared.pending_len() > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = phase_sender.send(Phase::Stop);
    let (visitor_histograms, visitor_errors, first_visitor_error) =
        join_all(&mut visitor_tasks).await;
    let (agent_histograms, agent_errors, first_agent_error) = join_all(&mut agent_tasks).await;
    let idle_open_at_end = idle_pool.open();
    idle_pool.close().await;

    let mut ack_latency = latency_histogram();
    for histogram in &visitor_histograms {
        let _ = ack_latency.add(histogram);
    }
    let mut delivery_latency = latency_histogram();
    for histogram in &agent_histograms {
        let _ = delivery_latency.add(histogram);
    }
    // Which messages never reached an agent (visitor index and message number), as a
    // hint for whoever debugs it.
    let undelivered: Vec<u64> = match shared.pending.lock() {
        Ok(pending) => pending
            .iter()
            .filter(|(_, at)| shared.in_window(**at))
            .map(|(id, _)| *id)
            .collect(),
        Err(_) => Vec::new(),
    };
    let undelivered_in_window = undelivered.len();
    let undelivered_sample: Vec<String> = undelivered
        .iter()
        .take(10)
        .map(|id| format!("visitor {} message {}", id >> 32, id & 0xffff_ffff))
        .collect();
    if !undelivered_sample.is_empty() {
        eprintln!("relay: never reached an agent: {undelivered_sample:?}");
    }

    let sent = sent_end - sent_start;
    let acked = acked_end - acked_start;
    let delivered = delivered_end - delivered_start;
    let latency = LatencySummary::of(&delivery_latency);
    let ack = LatencySummary::of(&ack_latency);
    eprintln!(
        "relay: {acked} acked, {delivered} relayed in {:.2} s = {:.0}/s, {:.0} per server \
         CPU-second; visitor→agent p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms",
        measured.seconds,
        measured.per_second(delivered),
        measured
            .per_server_cpu_second(delivered)
            .unwrap_or(f64::NAN),
        latency.p50_ms,
        latency.p99_ms,
        latency.p999_ms,
    );
    let idle = idle_grown.map(|grown| {
        serde_json::json!({
            "wanted": options.idle,
            "opened": grown.opened,
            "failed": grown.failed,
            "connect_seconds": grown.seconds,
            "first_error": grown.first_error,
            "lost_before_window": idle_lost_before,
            "lost_in_window": idle_lost_in_window,
            "open_at_end": idle_open_at_end,
        })
    });
    Ok(serde_json::json!({
        "test": "relay",
        "protocol": options.target.protocol(),
        "addr": options.target.addr,
        "visitor_addrs": spread.crosses().then(|| (0..options.visitors.min(64) as u64)
            .map(|visitor| spread.visitor_addr(visitor).to_owned())
            .collect::<std::collections::BTreeSet<_>>()),
        "agent_addrs": spread.crosses().then(|| (0..options.agents as u64)
            .map(|agent| spread.agent_addr(agent).to_owned())
            .collect::<std::collections::BTreeSet<_>>()),
        "mode": if options.rate > 0.0 { "open" } else { "closed" },
        "visitors": n_visitors,
        "agents": options.agents,
        "rate": options.rate,
        "window": options.window,
        "text_bytes": text.len(),
        "connect_seconds": connect_seconds,
        "seconds": measured.seconds,
        "sent": sent,
        "acked": acked,
        "delivered": delivered,
        "acked_per_sec": measured.per_second(acked),
        "delivered_per_sec": measured.per_second(delivered),
        "server_cpu_seconds": measured.server_cpu_seconds,
        "server_cpu_share": measured.server_cpu_share(),
        "loadgen_cpu_share": measured.loadgen_cpu_share,
        "acked_per_server_cpu_sec": measured.per_server_cpu_second(acked),
        "relayed": delivered,
        "relayed_per_sec": measured.per_second(delivered),
        "relayed_per_server_cpu_sec": measured.per_server_cpu_second(delivered),
        "idle": idle,
        "latency": latency,
        "ack_latency": ack,
        "undelivered_in_window": undelivered_in_window,
        "undelivered_sample": undelivered_sample,
        "rejected": shared.rejected.load(Ordering::Relaxed),
        "undecodable": shared.undecodable.load(Ordering::Relaxed),
        "connect_errors": connect_errors,
        "first_connect_error": first_connect_error,
        "errors": visitor_errors + agent_errors,
        "first_error": first_visitor_error.or(first_agent_error),
    }))
}

/// How one visitor sends.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Closed {
        window: usize,
    },
    Open {
        first: tokio::time::Instant,
        interval: Duration,
    },
}

/// One visitor's connection: sends by its plan, reads acks; returns its send → ack
/// latency. `completions` (protocols without acks) says which of its messages an agent
/// has received.
async fn visitor(
    mut conn: Conn,
    visitor_idx: u64,
    plan: Plan,
    text: String,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    mut completions: Option<mpsc::UnboundedReceiver<u64>>,
) -> Result<Histogram<u64>> {
    let mut sender = Sender {
        visitor_idx,
        next: 0,
        text,
        in_flight: HashMap::new(),
        shared,
    };
    let mut ack_latency = latency_histogram();
    let mut sending = true;
    // In closed loop there is no ticker; a disabled select branch stands in for it.
    let (mut ticker, closed_window) = match plan {
        Plan::Open { first, interval } => {
            let mut ticker = tokio::time::interval_at(first, interval);
            // Catch up on missed sends, keeping the schedule the latency is measured on.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            (Some(ticker), None)
        }
        Plan::Closed { window } => (None, Some(window)),
    };
    if let Some(window) = closed_window {
        for _ in 0..window {
            sender.send(&mut conn, Instant::now()).await?;
        }
    }
    loop {
        tokio::select! {
            changed = phase.changed() => {
                let now = match changed {
                    Ok(()) => *phase.borrow_and_update(),
                    Err(_) => Phase::Stop,
                };
                match now {
                    Phase::Run => {}
                    Phase::Drain => sending = false,
                    Phase::Stop => return Ok(ack_latency),
                }
            }
            scheduled = async {
                match ticker.as_mut() {
                    Some(ticker) => ticker.tick().await,
                    None => std::future::pending().await,
                }
            }, if sending && ticker.is_some() => {
                sender.send(&mut conn, scheduled.into_std()).await?;
            }
            completed = async {
                match completions.as_mut() {
                    Some(receiver) => receiver.recv().await,
                    None => std::future::pending().await,
                }
            }, if completions.is_some() => {
                // The agent received it: in a protocol without acks that is the end of
                // the message's round.
                let Some(id) = completed else {
                    completions = None;
                    continue;
                };
                sender.in_flight.remove(&id);
                if sending && closed_window.is_some() {
                    sender.send(&mut conn, Instant::now()).await?;
                }
            }
            incoming = conn.next_event() => {
                let resend = match incoming? {
                    Event::Ack { id } => {
                        sender.shared.acked.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent_at) = id.and_then(|id| sender.in_flight.remove(&id))
                            && sender.shared.in_window(sent_at)
                        {
                            record(&mut ack_latency, sent_at.elapsed());
                        }
                        true
                    }
                    Event::Rejected { id } => {
                        sender.shared.rejected.fetch_add(1, Ordering::Relaxed);
                        match id {
                            Some(id) => {
                                sender.forget(id);
                                // Do not turn a refusal (rate limit, overload) into a
                                // busy loop.
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                true
                            }
                            None => false,
                        }
                    }
                    Event::Delivered { .. } | Event::Other => false,
                    Event::Undecodable => {
                        sender.shared.undecodable.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                    Event::Closed => bail!("the server closed a visitor connection"),
                };
                if resend && sending && closed_window.is_some() {
                    sender.send(&mut conn, Instant::now()).await?;
                }
            }
        }
    }
}

/// A visitor's outgoing messages.
struct Sender {
    visitor_idx: u64,
    next: u64,
    text: String,
    /// Send time by message id, until the ack.
    in_flight: HashMap<u64, Instant>,
    shared: Arc<Shared>,
}

impl Sender {
    async fn send(&mut self, conn: &mut Conn, sent_at: Instant) -> Result<()> {
        let id = (self.visitor_idx << 32) | (self.next & 0xffff_ffff);
        self.next += 1;
        self.in_flight.insert(id, sent_at);
        if self.shared.track_delivery
            && let Ok(mut pending) = self.shared.pending.lock()
        {
            pending.insert(id, sent_at);
        }
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
        conn.send_message(id, &self.text).await
    }

    fn forget(&mut self, id: u64) {
        self.in_flight.remove(&id);
        self.shared.take_pending(id);
    }
}

/// One agent's connection: takes each message it is first to receive out of the
/// pending table; returns its visitor → agent latency.
async fn agent(
    mut conn: Conn,
    agent_idx: u64,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> Result<Histogram<u64>> {
    let mut latency = latency_histogram();
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow_and_update() == Phase::Stop {
                    return Ok(latency);
                }
            }
            incoming = conn.next_event() => match incoming? {
                Event::Delivered { id } => {
                    let received_at = Instant::now();
                    // Across hubs, only an agent on another hub than the visitor's counts.
                    let visitor_addr = usize::try_from(id >> 32).ok().and_then(|visitor| {
                        shared.visitor_addrs.get().and_then(|addrs| addrs.get(visitor))
                    });
                    if let Some(visitor_addr) = visitor_addr
                        && !shared.spread.counts(agent_idx, visitor_addr)
                    {
                        continue;
                    }
                    if let Some(sent_at) = shared.take_pending(id) {
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                        if shared.in_window(sent_at) {
                            record(&mut latency, received_at.saturating_duration_since(sent_at));
                        }
                        if let Some(visitor) = usize::try_from(id >> 32)
                            .ok()
                            .and_then(|visitor| shared.completions.get(visitor))
                        {
                            let _ = visitor.send(id);
                        }
                    }
                }
                Event::Ack { .. } | Event::Other => {}
                Event::Rejected { .. } => {
                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                }
                Event::Undecodable => {
                    shared.undecodable.fetch_add(1, Ordering::Relaxed);
                }
                Event::Closed => bail!("the server closed an agent connection"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip() {
        for id in [0, 1, 0xff, (7 << 32) | 42, u64::MAX] {
            assert_eq!(parse_client_id(&client_id(id)), Some(id));
        }
        assert_eq!(parse_client_id("m1"), None);
        assert_eq!(parse_client_id("lg-zz"), None);
        assert_eq!(parse_client_id("lg-"), None);
    }
}
