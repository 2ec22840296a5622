//! Chaos 3: one visitor floods at ten times the rate limit while others chat normally.
//!
//! Checked: the flooder gets `rate_limited` error frames naming each refused send, and
//! every send gets exactly one answer; what it sent within its allowance (the token
//! bucket: `burst` plus `rate_per_sec` a second) is acknowledged, stored once and
//! delivered; refused sends can be resent later with the same client id; the others are
//! never limited, lose nothing, and their p99 latency during the flood stays within 2x
//! of the same measure before and after it.

use crate::load::{AFTER, Book, DURING, Phases, STOP, Sender, await_assigned, compare, watch};
use crate::support::{ORIGIN, World, add_agents, scale, serial};
use anyhow::{Context, Result, ensure};
use salam_e2e::process::{agent_session, check_history, visitor_session};
use salam_protocol::{ErrorCode, ServerFrame};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const RATE: f64 = 10.0;
const BURST: f64 = 40.0;

const CONFIG: &str = r#"
[limits]
rate_per_sec = 10
burst = 40

[routing]
default_capacity = 100
auto_close_secs = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_limited_and_degrades_nobody() -> Result<()> {
    let _serial = serial().await;
    let started = std::time::Instant::now();
    let scale = scale();
    let world = World::start(CONFIG).await?;
    let addr = world.hub.addr;
    let site_id = world.site.id.clone();
    let agents = add_agents(
        &world.admin,
        "flood",
        |_| vec![site_id.clone()],
        1,
        Some(100),
    )
    .await?;
    let mut watcher_client = agent_session(addr, &agents[0].token).await?;

    let mut senders = Vec::new();
    for index in 0..9 {
        let flooder = index == 8;
        let name = if flooder {
            "flooder".to_owned()
        } else {
            format!("calm{index}")
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
            // Calm visitors stay well within the limit; the flooder sends at 10x it,
            // only while the flood lasts.
            rate: if flooder { 10.0 * RATE } else { RATE / 2.0 },
            text: if flooder {
                "buy now buy now buy now".into()
            } else {
                "a normal question".into()
            },
            tracked: !flooder,
            active: if flooder {
                |phase| phase == DURING
            } else {
                |_| true
            },
        });
    }
    let conversations: Vec<String> = senders.iter().map(|s| s.conversation.clone()).collect();
    await_assigned(&mut watcher_client, &conversations).await?;
    let flooder_token = senders[8].client.token.clone().context("flooder token")?;
    let flooder_conversation = senders[8].conversation.clone();

    let book = Arc::new(Book::default());
    let phases = Phases::default();
    let (expect_tx, expect_rx) = tokio::sync::watch::channel(None);
    let watcher = tokio::spawn(watch(
        watcher_client,
        book.clone(),
        phases.clone(),
        expect_rx,
    ));
    let mut running = Vec::new();
    for sender in senders {
        running.push(tokio::spawn(sender.run(book.clone(), phases.clone())));
    }
    let phase_secs = 8 * scale as u64;
    tokio::time::sleep(Duration::from_secs(phase_secs)).await;
    phases.set(DURING);
    let flood_started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(10 * scale as u64)).await;
    phases.set(AFTER);
    let flood_secs = flood_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(phase_secs)).await;
    phases.set(STOP);
    let mut reports = Vec::new();
    for handle in running {
        reports.push(handle.await??);
    }
    let flood = reports.pop().context("flooder report")?;

    // Refused sends can be resent with the same client id once the bucket has refilled
    // (a few, slowly): each is stored once.
    let refused: Vec<String> = flood
        .errors
        .iter()
        .filter_map(|(_, client_id)| client_id.clone())
        .take(5)
        .collect();
    let mut resent = Vec::new();
    let mut again = visitor_session(addr, ORIGIN, &world.site.key, Some(&flooder_token)).await?;
    for client_id in &refused {
        tokio::time::sleep(Duration::from_millis(250)).await;
        again
            .send_json(&json!({
                "type": "send",
                "conversation": flooder_conversation,
                "client_id": client_id,
                "text": "buy now buy now buy now",
            }))
            .await?;
        let (answer, _) = again
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
            .await?;
        match answer {
            ServerFrame::Ack {
                client_id: acked,
                seq,
                duplicate: false,
                ..
            } if acked == *client_id => resent.push((acked, seq)),
            other => anyhow::bail!("resending the refused {client_id} got {other:?}"),
        }
    }
    again.close().await;

    let mut expected: HashSet<String> = reports
        .iter()
        .chain([&flood])
        .flat_map(|r| r.acked.iter().map(|(id, _)| id.clone()))
        .collect();
    expected.extend(resent.iter().map(|(id, _)| id.clone()));
    expect_tx.send_replace(Some(Arc::new(expected.clone())));
    let watched = watcher.await??;
    let history = world.admin.history(&flooder_conversation).await?;
    let stored = check_history(&flooder_conversation, &history)?;

    let (latency, latency_ok) = compare(&book, 2.0, 10.0);
    let limited = flood
        .errors
        .iter()
        .filter(|(code, _)| *code == ErrorCode::RateLimited)
        .count();
    let allowance = BURST + RATE * flood_secs;
    println!(
        "chaos flood ({:.1} s):\n{latency}\n  flooder: {} sent in {flood_secs:.1} s, {} acknowledged \
         (allowance {allowance:.0}), {limited} rate_limited, {} resent later and stored",
        started.elapsed().as_secs_f64(),
        flood.sent,
        flood.acked.len(),
        resent.len()
    );

    let mut problems = Vec::new();
    for report in &reports {
        if !report.errors.is_empty() || !report.unanswered.is_empty() {
            problems.push(format!(
                "{} (within the limit) got errors {:?} / no answer for {:?}",
                report.name,
                &report.errors[..report.errors.len().min(5)],
                &report.unanswered[..report.unanswered.len().min(5)]
            ));
        }
    }
    if !flood.unanswered.is_empty() {
        problems.push(format!(
            "{} of the flooder's sends got no answer at all, e.g. {:?}",
            flood.unanswered.len(),
            &flood.unanswered[..flood.unanswered.len().min(5)]
        ));
    }
    if let Some(other) = flood
        .errors
        .iter()
        .find(|(code, client_id)| *code != ErrorCode::RateLimited || client_id.is_none())
    {
        problems.push(format!(
            "the flooder got {other:?}; expected rate_limited naming the send"
        ));
    }
    if (limited as f64) < 0.5 * flood.sent as f64 {
        problems.push(format!(
            "only {limited} of the flooder's {} sends were rate limited",
            flood.sent
        ));
    }
    let n_acked = flood.acked.len() as f64;
    if n_acked > allowance + 2.0 {
        problems.push(format!(
            "the flooder got {n_acked} acks, over its allowance of {allowance:.0}"
        ));
    }
    if n_acked < 0.8 * allowance {
        problems.push(format!(
            "the flooder got only {n_acked} acks: sends within its allowance of {allowance:.0} were refused"
        ));
    }
    for (client_id, seq) in flood.acked.iter().chain(&resent) {
        if stored.get(client_id) != Some(seq) {
            problems.push(format!(
                "the flooder's {client_id} was acknowledged as seq {seq} but stored as {:?}",
                stored.get(client_id)
            ));
        }
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !watched.delivered.contains_key(*id))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "the agent missed {} acknowledged messages, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if !watched.disorder.is_empty() {
        problems.push(format!(
            "the agent saw messages out of order: {:?}",
            &watched.disorder[..watched.disorder.len().min(5)]
        ));
    }
    if !latency_ok {
        problems.push("the others' p99 latency grew beyond 2x during the flood".into());
    }
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
