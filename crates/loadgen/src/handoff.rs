//! A storm of hand-offs: the routing control plane under load.
//!
//! Key design decision: **only the public interfaces**, so the same run measures any
//! build of the hub (this one and an older one, side by side in one script run). The
//! agents connect and greet; `visitors` visitors connect and greet; then every visitor
//! sends its first message at the same moment. On a site with the bot off each first
//! message is a hand-off, so the hub's routing gets `visitors` hand-offs at once; each
//! visitor waits for `state: assigned`. Meanwhile two pollers call
//! `GET /api/widget/{key}` (public, what every widget loads) and `GET /api/agents`
//! (what every console polls) back to back, one request at a time each, and record
//! their latency until the last visitor is assigned.
//!
//! Reported: hand-offs routed per second (first send to last assignment), the
//! send → assigned latency, and the two endpoints' latency during the storm.

use crate::report::{LatencySummary, latency_histogram, record};
use crate::wire::{self, Incoming, Socket};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use salam_protocol::{ConversationState, ServerFrame, VisitorFrame};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Options of `salam-loadgen handoff`.
#[derive(Debug, Clone)]
pub struct HandoffOptions {
    pub addr: String,
    /// The site's public key (its bot must be off).
    pub site: String,
    pub origin: String,
    /// Bearer tokens of the agents to connect (their capacity must hold the storm).
    pub agent_tokens: Vec<String>,
    pub visitors: usize,
    /// How long to wait for the last assignment.
    pub timeout: Duration,
    pub connect_concurrency: usize,
}

/// Calls `path` back to back until `done`, recording each latency.
async fn poll(
    addr: String,
    path: String,
    token: Option<String>,
    done: Arc<AtomicBool>,
) -> (hdrhistogram::Histogram<u64>, u64) {
    let mut histogram = latency_histogram();
    let mut failures = 0;
    while !done.load(Ordering::Relaxed) {
        let started = Instant::now();
        match wire::http_get(&addr, &path, token.as_deref()).await {
            Ok(200) => record(&mut histogram, started.elapsed()),
            _ => failures += 1,
        }
    }
    (histogram, failures)
}

/// Waits for `state: assigned` on a visitor's socket.
async fn assigned(socket: &mut Socket) -> Result<()> {
    loop {
        match wire::next_frame(socket).await? {
            Incoming::Frame(ServerFrame::State {
                state: ConversationState::Assigned,
                ..
            }) => return Ok(()),
            Incoming::Closed => bail!("the hub closed a visitor"),
            _ => {}
        }
    }
}

/// Runs the storm; returns the JSON result.
pub async fn run(options: HandoffOptions) -> Result<serde_json::Value> {
    if options.visitors == 0 || options.agent_tokens.is_empty() {
        bail!("needs at least one visitor and one agent token");
    }
    let mut agents = Vec::new();
    for token in &options.agent_tokens {
        agents.push(wire::agent_hello(&options.addr, token).await?);
    }
    eprintln!(
        "handoff: {} agents online; connecting {} visitors",
        agents.len(),
        options.visitors
    );
    // Agents' sockets are read (and dropped) in the background so they never stall.
    let mut readers = tokio::task::JoinSet::new();
    for mut socket in agents {
        readers.spawn(async move {
            while let Ok(Incoming::Frame(_)) = wire::next_frame(&mut socket).await {}
        });
    }
    let connected: Vec<Result<Socket>> = futures_util::stream::iter(0..options.visitors)
        .map(|_| wire::visitor_hello(&options.addr, &options.site, &options.origin))
        .buffer_unordered(options.connect_concurrency.max(1))
        .collect()
        .await;
    let (visitors, connect_errors, first_error) =
        crate::report::split_connected(connected, "visitor")?;
    eprintln!(
        "handoff: {} visitors connected; the storm starts",
        visitors.len()
    );
    let done = Arc::new(AtomicBool::new(false));
    let widget = tokio::spawn(poll(
        options.addr.clone(),
        format!("/api/widget/{}", options.site),
        None,
        done.clone(),
    ));
    let agents_view = tokio::spawn(poll(
        options.addr.clone(),
        "/api/agents".into(),
        options.agent_tokens.first().cloned(),
        done.clone(),
    ));
    // The pollers start with the storm: their figure is the latency *during* it.
    let started = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(visitors.len()));
    let mut storm = tokio::task::JoinSet::new();
    for (index, mut socket) in visitors.into_iter().enumerate() {
        let barrier = barrier.clone();
        storm.spawn(async move {
            barrier.wait().await;
            let sent_at = Instant::now();
            let send = VisitorFrame::Send {
                client_id: format!("storm-{index}"),
                text: format!("I need a person, please ({index})"),
                conversation: None,
            };
            wire::send_json(&mut socket, &send).await?;
            assigned(&mut socket).await?;
            anyhow::Ok((sent_at.elapsed(), Instant::now()))
        });
    }
    let mut latency = latency_histogram();
    let mut last = started;
    let mut failed = 0u64;
    let deadline = tokio::time::Instant::now() + options.timeout;
    while let Some(joined) = tokio::time::timeout_at(deadline, storm.join_next())
        .await
        .ok()
        .flatten()
    {
        match joined {
            Ok(Ok((took, at))) => {
                record(&mut latency, took);
                last = last.max(at);
            }
            _ => failed += 1,
        }
    }
    let unfinished = storm.len() as u64;
    storm.abort_all();
    done.store(true, Ordering::Relaxed);
    let (widget, widget_failures) = widget.await.context("widget poller")?;
    let (agents_view, agents_failures) = agents_view.await.context("agents poller")?;
    readers.abort_all();
    let assigned_count = latency.len();
    let storm_secs = last.saturating_duration_since(started).as_secs_f64();
    Ok(serde_json::json!({
        "mode": "handoff",
        "visitors": options.visitors,
        "agents": options.agent_tokens.len(),
        "connect_errors": connect_errors,
        "first_connect_error": first_error,
        "assigned": assigned_count,
        "failed": failed,
        "unfinished": unfinished,
        "storm_secs": storm_secs,
        "handoffs_per_sec": if storm_secs > 0.0 { assigned_count as f64 / storm_secs } else { 0.0 },
        "assign_latency_ms": LatencySummary::of(&latency),
        "widget_ms": LatencySummary::of(&widget),
        "widget_requests": widget.len(),
        "widget_failures": widget_failures,
        "agents_ms": LatencySummary::of(&agents_view),
        "agents_requests": agents_view.len(),
        "agents_failures": agents_failures,
    }))
}
