//! Chaos 2: consumers that stop reading their socket — an agent who watches a busy
//! conversation (its full stream, as a console that opened it) and a second tab of that
//! conversation's visitor — while traffic flows.
//!
//! Checked: the hub drops them (closes the connection) or tells them to resync while
//! they are stalled, instead of holding them open; everyone else keeps getting every
//! message, in order; the others' p99 latency (send → ack, send → delivery to another
//! agent) while the consumers are stalled stays within 2x of the same measure before
//! and after (same test, same load); and the hub's memory stays bounded: its RSS does
//! not keep growing with the traffic addressed to the stalled consumers.

use crate::load::{
    AFTER, BEFORE, Book, DURING, Phases, STOP, Sender, await_assigned, compare, sample_memory,
    watch,
};
use crate::support::{ORIGIN, World, add_agents, scale, serial};
use anyhow::{Context, Result, ensure};
use futures_util::StreamExt;
use salam_e2e::Client;
use salam_e2e::process::{
    agent_session, metric, small_buffer_agent, small_buffer_visitor, stats, visitor_session,
};
use salam_protocol::{ErrorCode, ServerFrame};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Small mailboxes (an agent's is 8x) so the stalled consumers overflow theirs within a
/// second or two; rate limits high enough for the bulk senders.
const CONFIG: &str = r#"
[limits]
rate_per_sec = 1000
burst = 1000
outbound_queue = 32

[routing]
default_capacity = 100
auto_close_secs = 0
"#;

/// How a stalled consumer's connection ended once it read again.
enum Fate {
    /// An `error` frame with code `resync` (and then, normally, close 4000).
    Resync { frames_before: usize },
    /// Closed (with this close code) or reset without `resync`.
    Closed {
        code: Option<u16>,
        frames_before: usize,
    },
    /// Still open and delivering after reading for a while.
    StillOpen { frames: usize },
}

impl std::fmt::Display for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fate::Resync { frames_before } => {
                write!(f, "told to resync after {frames_before} buffered frames")
            }
            Fate::Closed {
                code,
                frames_before,
            } => write!(
                f,
                "closed (code {code:?}) after {frames_before} buffered frames, without resync"
            ),
            Fate::StillOpen { frames } => write!(f, "still open after reading {frames} frames"),
        }
    }
}

/// Reads what a stalled consumer was sent until the hub ends the connection, 20 s at
/// most.
async fn wake(mut client: Client) -> Fate {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut frames = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.socket.next()).await {
            Err(_) => return Fate::StillOpen { frames },
            Ok(Some(Ok(WsMessage::Text(text)))) => {
                if let Ok(ServerFrame::Error {
                    code: ErrorCode::Resync,
                    ..
                }) = salam_protocol::decode_server(text.as_str())
                {
                    return Fate::Resync {
                        frames_before: frames,
                    };
                }
                frames += 1;
            }
            Ok(Some(Ok(WsMessage::Close(frame)))) => {
                return Fate::Closed {
                    code: frame.map(|f| u16::from(f.code)),
                    frames_before: frames,
                };
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => {
                return Fate::Closed {
                    code: None,
                    frames_before: frames,
                };
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_is_dropped_and_slows_nobody() -> Result<()> {
    let _serial = serial().await;
    let started = std::time::Instant::now();
    let scale = scale();
    let world = World::start(CONFIG).await?;
    let addr = world.hub.addr;
    let site_id = world.site.id.clone();
    let agents = add_agents(
        &world.admin,
        "slow",
        |_| vec![site_id.clone()],
        2,
        Some(100),
    )
    .await?;
    let mut watcher_client = agent_session(addr, &agents[0].token).await?;

    // Small messages whose latency is measured, and large ones that make the traffic
    // (4,000 four-byte characters: about 16 KB a frame).
    let small = "how long does delivery take?".to_owned();
    let large = "🙂".repeat(4000);
    let mut senders = Vec::new();
    for (index, (rate, text, tracked)) in [
        (10.0, &small, true),
        (10.0, &small, true),
        (10.0, &small, true),
        (10.0, &small, true),
        (10.0, &small, true),
        (10.0, &small, true),
        (40.0, &large, false),
        (40.0, &large, false),
    ]
    .into_iter()
    .enumerate()
    {
        let name = if tracked {
            format!("lat{index}")
        } else {
            format!("bulk{index}")
        };
        let mut client = visitor_session(addr, ORIGIN, &world.site.key, None).await?;
        client
            .send_json(&json!({"type": "send", "client_id": format!("{name}-0"), "text": "hi"}))
            .await?;
        let (ack, _) = client
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
            .await?;
        let ServerFrame::Ack { conversation, .. } = ack else {
            unreachable!()
        };
        senders.push(Sender {
            name,
            client,
            conversation,
            rate,
            text: text.clone(),
            tracked,
            active: |_| true,
        });
    }
    let conversations: Vec<String> = senders.iter().map(|s| s.conversation.clone()).collect();
    await_assigned(&mut watcher_client, &conversations).await?;
    let busy_token = senders[6].client.token.clone().context("visitor token")?;
    let busy_conversation = senders[6].conversation.clone();

    let book = Arc::new(Book::default());
    let phases = Phases::default();
    let (expect_tx, expect_rx) = tokio::sync::watch::channel(None);
    let watcher = tokio::spawn(watch(
        watcher_client,
        book.clone(),
        phases.clone(),
        expect_rx,
    ));
    let memory = tokio::spawn(sample_memory(
        world.hub.pid().context("hub pid")?,
        phases.clone(),
    ));
    let mut running = Vec::new();
    for sender in senders {
        running.push(tokio::spawn(sender.run(book.clone(), phases.clone())));
    }
    let base_agents = metric(addr, "salam_connections{kind=\"agent\"}").await?;
    let base_visitors = metric(addr, "salam_connections{kind=\"visitor\"}").await?;

    let phase_secs = 8 * scale as u64;
    tokio::time::sleep(Duration::from_secs(phase_secs)).await;

    // Two consumers greet (the agent opens the busy conversation), then never read
    // again.
    phases.set(DURING);
    let mut stalled_agent = small_buffer_agent(addr, &agents[1].token).await?;
    stalled_agent.watch(&busy_conversation, 0).await?;
    let stalled_tab =
        small_buffer_visitor(addr, ORIGIN, &world.site.key, Some(&busy_token)).await?;
    let stall_started = Instant::now();
    let stall = Duration::from_secs(15 * scale as u64);
    let mut gauge = Vec::new();
    let mut dropped_after = None;
    while stall_started.elapsed() < stall {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let agents_now = metric(addr, "salam_connections{kind=\"agent\"}").await?;
        let visitors_now = metric(addr, "salam_connections{kind=\"visitor\"}").await?;
        gauge.push((agents_now, visitors_now));
        if dropped_after.is_none() && agents_now <= base_agents && visitors_now <= base_visitors {
            dropped_after = Some(stall_started.elapsed());
        }
    }
    let kicks = metric(addr, "salam_slow_consumer_kicks_total").await?;
    let agent_fate = wake(stalled_agent).await;
    let tab_fate = wake(stalled_tab).await;

    phases.set(AFTER);
    tokio::time::sleep(Duration::from_secs(phase_secs)).await;
    phases.set(STOP);
    let mut reports = Vec::new();
    for handle in running {
        reports.push(handle.await??);
    }
    let expected: HashSet<String> = reports
        .iter()
        .flat_map(|r| r.acked.iter().map(|(id, _)| id.clone()))
        .collect();
    expect_tx.send_replace(Some(Arc::new(expected.clone())));
    let watched = watcher.await??;
    let samples = memory.await?;

    // The stalled tab's visitor can resume and gets the whole busy conversation.
    let mut again = visitor_session(addr, ORIGIN, &world.site.key, Some(&busy_token)).await?;
    let listed_last = match &again.welcome {
        Some(ServerFrame::Welcome { conversations, .. }) => conversations
            .iter()
            .find(|c| c.id == busy_conversation)
            .map(|c| c.last_seq)
            .context("the busy conversation is not in the welcome")?,
        _ => anyhow::bail!("no welcome"),
    };
    // The last hundred are enough to show a clean replay (each is about 16 KB).
    let after = listed_last.saturating_sub(100);
    again
        .send_json(&json!({"type": "resume", "conversation": busy_conversation, "after": after}))
        .await?;
    let (resumed, replayed) = again
        .recv_until(|f| matches!(f, ServerFrame::Resumed { .. }))
        .await?;
    let replayed: Vec<u64> = replayed
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) if m.conversation == busy_conversation => Some(m.seq),
            _ => None,
        })
        .collect();

    // Memory while stalled: after the first 3 s (mailboxes fill, buffers settle), the
    // RSS must not keep growing with the traffic addressed to the stalled consumers.
    let during: Vec<&(f64, u8, u64, u64)> = samples.iter().filter(|s| s.1 == DURING).collect();
    let settle = during.first().map_or(0.0, |s| s.0) + 3.0;
    let settled: Vec<&&(f64, u8, u64, u64)> = during.iter().filter(|s| s.0 >= settle).collect();
    let xs: Vec<f64> = settled.iter().map(|s| s.0).collect();
    let ys: Vec<f64> = settled.iter().map(|s| s.2 as f64 * 1024.0).collect();
    let rss_slope = stats::slope(&xs, &ys);
    let stall_secs = during
        .last()
        .zip(during.first())
        .map_or(1.0, |(last, first)| (last.0 - first.0).max(1.0));
    let traffic_rate = watched.bytes_by_phase[DURING as usize] as f64 / stall_secs;
    let rss_before = samples
        .iter()
        .filter(|s| s.1 == BEFORE)
        .map(|s| s.2)
        .max()
        .unwrap_or(0);
    let rss_during = during.iter().map(|s| s.2).max().unwrap_or(0);
    let (latency, latency_ok) = compare(&book, 2.0, 10.0);
    println!(
        "chaos slow consumer ({:.1} s):\n{latency}\n  memory: RSS before {} MiB, max while stalled {} MiB, \
         slope while stalled {:.0} KiB/s against {:.0} KiB/s of traffic\n  \
         stalled agent: {agent_fate}; stalled tab: {tab_fate}; kicks {kicks}; \
         connections (agents, visitors) every 0.5 s while stalled: {gauge:?}; baseline ({base_agents}, {base_visitors})",
        started.elapsed().as_secs_f64(),
        rss_before / 1024,
        rss_during / 1024,
        rss_slope / 1024.0,
        traffic_rate / 1024.0,
    );

    let mut problems = Vec::new();
    for report in &reports {
        if !report.errors.is_empty() || !report.unanswered.is_empty() {
            problems.push(format!(
                "{}: errors {:?}, unanswered {:?}",
                report.name,
                &report.errors[..report.errors.len().min(5)],
                &report.unanswered[..report.unanswered.len().min(5)]
            ));
        }
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !watched.delivered.contains_key(*id))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "the watching agent missed {} acknowledged messages, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if !watched.disorder.is_empty() || !watched.errors.is_empty() {
        problems.push(format!(
            "the watching agent saw disorder {:?} / errors {:?}",
            &watched.disorder[..watched.disorder.len().min(5)],
            &watched.errors[..watched.errors.len().min(5)]
        ));
    }
    let ServerFrame::Resumed { last_seq, .. } = resumed else {
        unreachable!()
    };
    if replayed != (after + 1..=last_seq).collect::<Vec<u64>>() || last_seq < listed_last {
        problems.push(format!(
            "resuming the busy conversation after {after} replayed {} messages, not {}..={last_seq}",
            replayed.len(),
            after + 1
        ));
    }
    for (who, fate) in [("agent", &agent_fate), ("visitor tab", &tab_fate)] {
        if let Fate::StillOpen { frames } = fate {
            problems.push(format!(
                "the stalled {who} was neither dropped nor told to resync: after the stall it read \
                 {frames} frames over 20 s and the connection stayed open"
            ));
        }
    }
    if dropped_after.is_none() {
        problems.push(format!(
            "the hub kept the stalled consumers' connections open for the whole {stall:?} stall \
             ({kicks} slow-consumer kicks counted): a consumer that does not read is never dropped"
        ));
    }
    if !latency_ok {
        problems.push("the others' p99 latency grew beyond 2x while a consumer was stalled".into());
    }
    if rss_slope > 0.25 * traffic_rate {
        problems.push(format!(
            "the hub's RSS grew by {:.0} KiB/s while consumers were stalled, more than a quarter of \
             the {:.0} KiB/s of traffic: the stalled consumers' frames are being buffered",
            rss_slope / 1024.0,
            traffic_rate / 1024.0
        ));
    }
    if rss_during > rss_before + 64 * 1024 {
        problems.push(format!(
            "the hub's RSS rose from {} MiB to {} MiB while consumers were stalled",
            rss_before / 1024,
            rss_during / 1024
        ));
    }
    ensure!(
        traffic_rate > 256.0 * 1024.0,
        "the traffic while stalled was only {:.0} KiB/s: too little to tell a bounded hub from one that buffers",
        traffic_rate / 1024.0
    );
    world.assert_no_panic()?;
    ensure!(
        problems.is_empty(),
        "{} problem(s):\n{}\nhub log:\n{}",
        problems.len(),
        problems.join("\n"),
        world.hub.log_tail(20)
    );
    Ok(())
}
