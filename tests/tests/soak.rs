//! Soak: the real `salam` binary under moderate, steady, churning load — visitors
//! coming and going (new and returning, conversations opened and closed), agents
//! answering and reconnecting now and then, the console's REST calls — while the hub's
//! resident memory and open files are sampled every second.
//!
//! After a warm-up, the samples must show no growth trend: the mean of the last third
//! is compared with the mean of the middle third, and the least-squares slope over the
//! whole measured window is bounded, for both RSS and open files. The bounds are set
//! so that an allocator's noise passes and a real leak fails: one connection (its file
//! descriptor) per session, or a couple of KB per message (the RSS slope is measured
//! per message handled, so a slower machine does not change the verdict).
//!
//! `SALAM_SOAK_SECS` sets the duration (default 75 s; the long variant is 600 s, see
//! docs/chaos.md).

use anyhow::{Context, Result, ensure};
use futures_util::StreamExt;
use salam_e2e::Client;
use salam_e2e::process::{
    AgentAccount, ORIGIN, World, add_agents, agent_session, proc_sample, stats, visitor_session,
};
use salam_protocol::{AuthorKind, ErrorCode, MessageKind, ServerFrame};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const CONFIG: &str = r#"
[routing]
default_capacity = 8
"#;

/// Visitors chatting at the same time.
const VISITOR_SLOTS: u64 = 10;
/// Agents answering.
const AGENTS: usize = 3;

/// The run's length: `SALAM_SOAK_SECS`, default 75 s (30 s at least).
fn soak_duration() -> Duration {
    let secs = std::env::var("SALAM_SOAK_SECS")
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(75)
        .max(30);
    Duration::from_secs(secs)
}

/// A small deterministic generator (xorshift64*), so a run's pattern can be repeated.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low))
    }
}

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    replies: AtomicU64,
    sessions: AtomicU64,
    closed: AtomicU64,
    /// Agent replies refused because the visitor had just closed the conversation.
    late_replies: AtomicU64,
    agent_sessions: AtomicU64,
    rest_calls: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counters {
    fn error(&self, text: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 20 {
            errors.push(text);
        }
    }
}

/// Waits for the answer to `client_id`: its ack's conversation, or `None` on an error.
async fn answer(
    client: &mut Client,
    client_id: &str,
    counters: &Counters,
) -> Result<Option<String>> {
    loop {
        match client.recv().await? {
            ServerFrame::Ack {
                client_id: acked,
                conversation,
                ..
            } if acked == client_id => return Ok(Some(conversation)),
            ServerFrame::Error { code, message, .. } => {
                counters.error(format!("visitor got {code}: {message}"));
                return Ok(None);
            }
            _ => {}
        }
    }
}

/// One visitor slot: session after session until `stop`. A session sends 3 to 7
/// messages about a second apart, then often closes the conversation; the next session
/// is a returning visitor (same token: the open conversation, or a new one) or a new one.
async fn visitor_slot(
    addr: SocketAddr,
    site_key: String,
    slot: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut rng = Rng::new(slot + 1);
    let mut token: Option<String> = None;
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut client = visitor_session(addr, ORIGIN, &site_key, token.as_deref()).await?;
        token = client.token.clone();
        let mut conversation = match &client.welcome {
            // The last closed conversation may be listed too (read-only): skip it.
            Some(ServerFrame::Welcome { conversations, .. }) => conversations
                .iter()
                .find(|c| c.state != salam_protocol::ConversationState::Closed)
                .map(|c| c.id.clone()),
            _ => None,
        };
        for _ in 0..3 + rng.below(5) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            next += 1;
            let client_id = format!("s{slot}-{next}");
            let mut frame = json!({
                "type": "send",
                "client_id": client_id,
                "text": format!("question {next} from slot {slot}: where is my order?"),
            });
            if let Some(conversation) = &conversation {
                frame["conversation"] = json!(conversation);
            }
            client.send_json(&frame).await?;
            if let Some(acked) = answer(&mut client, &client_id, &counters).await? {
                conversation = Some(acked);
                counters.messages.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(rng.millis(600, 1400)).await;
        }
        if let Some(conversation) = &conversation
            && rng.below(10) < 6
        {
            client
                .send_json(&json!({"type": "close", "conversation": conversation}))
                .await?;
            client
                .recv_until(|f| matches!(f, ServerFrame::State { .. }))
                .await?;
            counters.closed.fetch_add(1, Ordering::Relaxed);
            if rng.below(2) == 0 {
                token = None;
            }
        }
        client.close().await;
        counters.sessions.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(rng.millis(100, 400)).await;
    }
    Ok(())
}

/// One agent: answers every visitor line in the chats assigned to them; drops the
/// socket and reconnects every 15 to 25 s.
async fn agent_loop(
    addr: SocketAddr,
    account: AgentAccount,
    index: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut rng = Rng::new(1000 + index);
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut client = agent_session(addr, &account.token).await?;
        let mut assigned: HashMap<String, Option<String>> = match &client.welcome {
            Some(ServerFrame::Welcome { conversations, .. }) => conversations
                .iter()
                .map(|c| (c.id.clone(), c.agent.as_ref().and_then(|a| a.id.clone())))
                .collect(),
            _ => HashMap::new(),
        };
        let session_end = Instant::now() + rng.millis(15_000, 25_000);
        while !stop.load(Ordering::Relaxed) && Instant::now() < session_end {
            let incoming = match tokio::time::timeout(
                Duration::from_millis(500),
                client.socket.next(),
            )
            .await
            {
                Err(_) => continue,
                Ok(incoming) => incoming,
            };
            let text = match incoming {
                Some(Ok(WsMessage::Text(text))) => text,
                Some(Ok(_)) => continue,
                other => anyhow::bail!("agent socket ended: {other:?}"),
            };
            match salam_protocol::decode_server(text.as_str())? {
                ServerFrame::Conversation { conversation } => {
                    let agent = conversation.agent.and_then(|a| a.id);
                    assigned.insert(conversation.id, agent);
                }
                ServerFrame::Message(message)
                    if message.author.kind == AuthorKind::Visitor
                        && message.kind == MessageKind::Text
                        && assigned.get(&message.conversation).cloned().flatten()
                            == Some(account.id.clone()) =>
                {
                    next += 1;
                    client
                        .send_json(&json!({
                            "type": "send",
                            "conversation": message.conversation,
                            "client_id": format!("a{index}-{next}"),
                            "text": "It left our warehouse this morning.",
                        }))
                        .await?;
                    counters.replies.fetch_add(1, Ordering::Relaxed);
                }
                // A visitor may close the conversation while the reply is on its way:
                // the hub refuses the reply (never stores it), which is right.
                ServerFrame::Error {
                    code: ErrorCode::ConversationClosed,
                    ..
                } => {
                    counters.late_replies.fetch_add(1, Ordering::Relaxed);
                }
                ServerFrame::Error { code, message, .. } => {
                    counters.error(format!("agent got {code}: {message}"));
                }
                _ => {}
            }
        }
        client.close().await;
        counters.agent_sessions.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The console's polling: the conversation list and one history, every two seconds.
async fn rest_poller(
    world_admin: salam_e2e::process::Api,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let listed = world_admin.get("/api/conversations?limit=50").await?;
        if let Some(id) = listed["conversations"][0]["id"].as_str() {
            world_admin
                .get(&format!("/api/conversations/{id}/messages?limit=100"))
                .await?;
        }
        counters.rest_calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// One second's sample.
struct Sample {
    at: f64,
    rss_kib: u64,
    fds: u64,
    messages: u64,
}

/// Mean of each third of `values`.
fn thirds(values: &[f64]) -> [f64; 3] {
    let third = values.len() / 3;
    [
        stats::mean(&values[..third]),
        stats::mean(&values[third..2 * third]),
        stats::mean(&values[2 * third..]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_does_not_grow_under_steady_churn() -> Result<()> {
    let duration = soak_duration();
    // The warm-up also outlasts the hub's blocking threads that hashed the agents'
    // passwords (tokio lets them go after 10 s idle, and their memory with them).
    let warm_up = Duration::from_secs_f64((duration.as_secs_f64() * 0.2).max(20.0));
    let mut world = World::start(CONFIG).await?;
    let addr = world.hub.addr;
    let pid = world.hub.pid().context("hub pid")?;
    let site_id = world.site.id.clone();
    let agents = add_agents(
        &world.admin,
        "soak",
        |_| vec![site_id.clone()],
        AGENTS,
        None,
    )
    .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut tasks = tokio::task::JoinSet::new();
    for (index, account) in agents.into_iter().enumerate() {
        tasks.spawn(agent_loop(
            addr,
            account,
            index as u64,
            stop.clone(),
            counters.clone(),
        ));
    }
    for slot in 0..VISITOR_SLOTS {
        tasks.spawn(visitor_slot(
            addr,
            world.site.key.clone(),
            slot,
            stop.clone(),
            counters.clone(),
        ));
    }
    tasks.spawn(rest_poller(
        world.admin.clone(),
        stop.clone(),
        counters.clone(),
    ));

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < duration {
        ticker.tick().await;
        if let Some(finished) = tasks.try_join_next() {
            finished??;
            anyhow::bail!("a load task ended early");
        }
        let sample = proc_sample(pid).map_err(|err| {
            err.context(format!("the hub is gone; log:\n{}", world.hub.log_tail(30)))
        })?;
        samples.push(Sample {
            at: started.elapsed().as_secs_f64(),
            rss_kib: sample.rss_kib,
            fds: sample.fds,
            messages: counters.messages.load(Ordering::Relaxed)
                + counters.replies.load(Ordering::Relaxed),
        });
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(finished) = tokio::time::timeout(Duration::from_secs(60), tasks.join_next())
        .await
        .context("the load did not stop")?
    {
        finished??;
    }
    ensure!(
        world.hub.is_running(),
        "the hub died; log:\n{}",
        world.hub.log_tail(30)
    );

    let measured: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= warm_up.as_secs_f64())
        .collect();
    ensure!(measured.len() >= 12, "too few samples after the warm-up");
    let at: Vec<f64> = measured.iter().map(|s| s.at).collect();
    let rss: Vec<f64> = measured.iter().map(|s| s.rss_kib as f64).collect();
    let fds: Vec<f64> = measured.iter().map(|s| s.fds as f64).collect();
    let [rss_first, rss_middle, rss_last] = thirds(&rss);
    let [fds_first, fds_middle, fds_last] = thirds(&fds);
    let rss_slope = stats::slope(&at, &rss); // KiB/s
    let fds_slope = stats::slope(&at, &fds); // fds/s
    let window = at[at.len() - 1] - at[0];
    let messages = (measured[measured.len() - 1].messages - measured[0].messages) as f64;
    let message_rate = messages / window.max(1.0);
    let sessions = counters.sessions.load(Ordering::Relaxed);
    let session_rate = sessions as f64 / duration.as_secs_f64();
    let rss_min = rss.iter().copied().fold(f64::MAX, f64::min);
    let rss_max = rss.iter().copied().fold(0.0, f64::max);
    println!(
        "soak: {:.0} s ({:.0} s warm-up), {} samples measured\n  \
         load: {} visitor messages, {} agent replies ({} refused: closed first), {sessions} visitor sessions ({} closed), \
         {} agent sessions, {} REST rounds; about {message_rate:.1} messages/s and {session_rate:.2} sessions/s\n  \
         RSS KiB: min {rss_min:.0}, max {rss_max:.0}; thirds {rss_first:.0} / {rss_middle:.0} / {rss_last:.0}; \
         slope {rss_slope:.1} KiB/s ({:.2} KiB per message)\n  \
         open files: thirds {fds_first:.1} / {fds_middle:.1} / {fds_last:.1}; slope {fds_slope:.3}/s",
        duration.as_secs_f64(),
        warm_up.as_secs_f64(),
        measured.len(),
        counters.messages.load(Ordering::Relaxed),
        counters.replies.load(Ordering::Relaxed),
        counters.late_replies.load(Ordering::Relaxed),
        counters.closed.load(Ordering::Relaxed),
        counters.agent_sessions.load(Ordering::Relaxed),
        counters.rest_calls.load(Ordering::Relaxed),
        rss_slope / message_rate.max(0.1),
    );
    let series: Vec<String> = samples
        .iter()
        .step_by(5)
        .map(|s| format!("{:.0}s:{}MiB/{}fd", s.at, s.rss_kib / 1024, s.fds))
        .collect();
    println!("  every 5 s: {}", series.join(" "));

    let errors = counters
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    ensure!(errors.is_empty(), "clients got errors: {errors:?}");
    ensure!(
        sessions as f64 >= 0.5 * duration.as_secs_f64() && message_rate >= 4.0,
        "the load was too light to tell anything ({sessions} sessions, {message_rate:.1} messages/s)"
    );
    // Open files: each leaked connection keeps one; a session a second or so would add
    // dozens between the middle and the last third.
    let fds_allowed = 6.0_f64.max(0.1 * fds_middle);
    ensure!(
        fds_last <= fds_middle + fds_allowed && fds_slope <= 0.15,
        "open files grow: thirds {fds_first:.1} / {fds_middle:.1} / {fds_last:.1}, slope {fds_slope:.3}/s"
    );
    // Memory: the last third may not sit much above the middle one, and the trend over
    // the whole window must stay under 1.5 KiB per message handled (a healthy hub shows
    // about 0.6 here while SQLite's page caches fill up with the growing database).
    let rss_allowed = 2048.0_f64.max(0.03 * rss_middle);
    ensure!(
        rss_last <= rss_middle + rss_allowed && rss_slope <= 1.5 * message_rate,
        "RSS grows: thirds {rss_first:.0} / {rss_middle:.0} / {rss_last:.0} KiB (allowed +{rss_allowed:.0}), \
         slope {rss_slope:.1} KiB/s against {message_rate:.1} messages/s"
    );
    world.hub.kill().await?;
    Ok(())
}
