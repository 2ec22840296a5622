//! Chaos 5: 500 agents, each holding two chats, lose their sockets at the same moment
//! and reconnect all at once, within the routing grace period.
//!
//! The agents work on 50 sites (10 each, capacity 2), and 1,000 visitors each start a
//! conversation, so every agent holds exactly two. After the storm each agent's
//! `welcome` lists its own two chats, still assigned to it, `resume` replays each one
//! without a gap, and once the grace period has run out (which would hand the chats of
//! an agent the hub thought absent to someone else) every conversation is still
//! assigned to the agent that had it; no agent ever sees one of its chats requeued.
//!
//! Creating the agents goes through the real admin API (`POST /api/admin/agents`, then
//! `POST /api/login` for each): two argon2 operations per agent, about 15–20 ms each
//! here, run four at a time.

use crate::support::{AgentAccount, ORIGIN, World, add_agents, eventually, scale, serial};
use anyhow::{Context, Result, ensure};
use futures_util::StreamExt;
use salam_e2e::Client;
use salam_e2e::process::{SiteInfo, agent_session, metric, visitor_session};
use salam_protocol::{ConversationState, ServerFrame};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const GRACE_SECS: u64 = 30;
const AGENTS_PER_SITE: usize = 10;
const CHATS_PER_AGENT: usize = 2;

fn config() -> String {
    format!(
        r#"
[routing]
grace_secs = {GRACE_SECS}
default_capacity = {CHATS_PER_AGENT}
auto_close_secs = 0
"#
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    Connect,
    Drop,
    Reconnect,
    Finish,
}

/// What one agent saw.
struct AgentReport {
    /// When the test started.
    clock: Instant,
    /// Its conversations listed as assigned to it in the welcome after the storm.
    restored: BTreeSet<String>,
    /// Problems seen by this agent.
    problems: Vec<String>,
}

/// Reads frames until `step` changes (never letting the hub's mailbox for this agent
/// fill up); records any of `mine` leaving the assigned state.
async fn read_until_step(
    client: &mut Client,
    step: &mut watch::Receiver<Step>,
    current: Step,
    mine: &BTreeSet<String>,
    report: &mut AgentReport,
) -> Result<()> {
    while *step.borrow_and_update() == current {
        let incoming = tokio::select! {
            incoming = client.socket.next() => incoming,
            _ = step.changed() => continue,
        };
        match incoming {
            Some(Ok(WsMessage::Text(text))) => {
                if let ServerFrame::State {
                    conversation,
                    state,
                    reason,
                } = salam_protocol::decode_server(text.as_str())?
                    && mine.contains(&conversation)
                    && state != ConversationState::Assigned
                {
                    report.problems.push(format!(
                        "{conversation} moved to {state:?} ({reason:?}) while {current:?}, {:.1} s into the test",
                        report.clock.elapsed().as_secs_f64()
                    ));
                }
            }
            Some(Ok(_)) => {}
            other => anyhow::bail!("socket ended in step {current:?}: {other:?}"),
        }
    }
    Ok(())
}

/// Replays a conversation from the start; returns the sequences replayed.
async fn replay(client: &mut Client, conversation: &str) -> Result<(Vec<u64>, u64, bool)> {
    client
        .send_json(&json!({"type": "resume", "conversation": conversation, "after": 0}))
        .await?;
    let mut seqs = Vec::new();
    let mut has_question = false;
    loop {
        match client.recv().await? {
            ServerFrame::Message(message) if message.conversation == conversation => {
                seqs.push(message.seq);
                has_question |= message.text.starts_with("question ");
            }
            ServerFrame::Resumed {
                conversation: resumed,
                last_seq,
            } if resumed == conversation => return Ok((seqs, last_seq, has_question)),
            _ => {}
        }
    }
}

async fn agent_task(
    addr: SocketAddr,
    account: AgentAccount,
    mine: BTreeSet<String>,
    mut step: watch::Receiver<Step>,
    connected: Arc<AtomicUsize>,
    restored: Arc<AtomicUsize>,
    clock: Instant,
) -> Result<AgentReport> {
    let mut report = AgentReport {
        clock,
        restored: BTreeSet::new(),
        problems: Vec::new(),
    };
    let mut client = agent_session(addr, &account.token).await?;
    connected.fetch_add(1, Ordering::Relaxed);
    read_until_step(&mut client, &mut step, Step::Connect, &mine, &mut report).await?;
    // Drop: the socket goes away without a close handshake.
    drop(client);
    while *step.borrow_and_update() == Step::Drop {
        step.changed().await?;
    }
    let mut client = agent_session(addr, &account.token).await?;
    let Some(ServerFrame::Welcome { conversations, .. }) = &client.welcome else {
        anyhow::bail!("no welcome");
    };
    for summary in conversations {
        let to_me = summary.agent.as_ref().and_then(|a| a.id.as_deref()) == Some(&account.id);
        if to_me && summary.state == ConversationState::Assigned {
            report.restored.insert(summary.id.clone());
        }
    }
    if report.restored != mine {
        report.problems.push(format!(
            "after reconnecting, the welcome assigns {:?} to it instead of {mine:?}",
            report.restored
        ));
    }
    for conversation in &mine {
        let (seqs, last_seq, has_question) = replay(&mut client, conversation).await?;
        if seqs != (1..=last_seq).collect::<Vec<u64>>() || !has_question {
            report.problems.push(format!(
                "resuming {conversation} replayed {seqs:?} (last {last_seq}, question present: {has_question})"
            ));
        }
    }
    restored.fetch_add(1, Ordering::Relaxed);
    read_until_step(&mut client, &mut step, Step::Reconnect, &mine, &mut report).await?;
    client.close().await;
    Ok(report)
}

/// Every open conversation of the sites: id → (state, agent id).
async fn assignments(
    world: &World,
    sites: &[SiteInfo],
) -> Result<HashMap<String, (String, Option<String>)>> {
    let mut all = HashMap::new();
    for site in sites {
        for summary in world.admin.open_conversations(&site.id).await? {
            all.insert(
                summary["id"].as_str().context("id")?.to_owned(),
                (
                    summary["state"].as_str().unwrap_or_default().to_owned(),
                    summary["agent"]["id"].as_str().map(str::to_owned),
                ),
            );
        }
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_agents_reconnecting_at_once_keep_their_chats() -> Result<()> {
    let _serial = serial().await;
    let started = std::time::Instant::now();
    let clock = Instant::now();
    let n_agents = 500 * scale() as usize;
    let n_sites = n_agents / AGENTS_PER_SITE;
    let world = World::start(&config()).await?;
    let addr = world.hub.addr;
    let mut sites = Vec::new();
    for index in 0..n_sites {
        sites.push(
            world
                .admin
                .create_site(&format!("Shop {index}"), ORIGIN, json!({"bot": false}))
                .await?,
        );
    }
    let site_ids: Vec<String> = sites.iter().map(|s| s.id.clone()).collect();
    let created = std::time::Instant::now();
    let agents = add_agents(
        &world.admin,
        "storm",
        |index| vec![site_ids[index / AGENTS_PER_SITE].clone()],
        n_agents,
        None,
    )
    .await?;
    let agents_secs = created.elapsed().as_secs_f64();

    // All agents online, then the visitors: each conversation goes to an agent of its
    // site with room, until every agent holds exactly its capacity.
    let (step_tx, step_rx) = watch::channel(Step::Connect);
    let connected = Arc::new(AtomicUsize::new(0));
    let restored = Arc::new(AtomicUsize::new(0));
    let mut connections = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut sockets: Vec<Client> = Vec::new();
    for account in &agents {
        let limit = limit.clone();
        let token = account.token.clone();
        connections.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            agent_session(addr, &token).await
        });
    }
    while let Some(joined) = connections.join_next().await {
        sockets.push(joined??);
    }
    let visitors_started = std::time::Instant::now();
    let mut visitors = tokio::task::JoinSet::new();
    for index in 0..n_agents * CHATS_PER_AGENT {
        let limit = limit.clone();
        let key = sites[index % n_sites].key.clone();
        visitors.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let mut visitor = visitor_session(addr, ORIGIN, &key, None).await?;
            visitor
                .send_json(
                    &json!({"type": "send", "client_id": "q", "text": format!("question {index}")}),
                )
                .await?;
            visitor
                .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
                .await?;
            visitor.close().await;
            anyhow::Ok(())
        });
    }
    // The setup sockets keep reading while the visitors arrive.
    let mut readers = tokio::task::JoinSet::new();
    for mut socket in sockets {
        readers.spawn(async move { while let Some(Ok(_)) = socket.socket.next().await {} });
    }
    while let Some(joined) = visitors.join_next().await {
        joined??;
    }
    let visitors_secs = visitors_started.elapsed().as_secs_f64();
    let before = eventually(
        "every conversation assigned",
        Duration::from_secs(120),
        || async {
            let all = assignments(&world, &sites).await?;
            let assigned = all
                .values()
                .filter(|(state, _)| state == "assigned")
                .count();
            Ok((assigned == n_agents * CHATS_PER_AGENT).then_some(all))
        },
    )
    .await?;
    let mut mine: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (conversation, (_, agent)) in &before {
        mine.entry(agent.clone().context("assigned without agent")?)
            .or_default()
            .insert(conversation.clone());
    }
    ensure!(
        agents
            .iter()
            .all(|a| mine.get(&a.id).map_or(0, BTreeSet::len) == CHATS_PER_AGENT),
        "the chats were not spread {CHATS_PER_AGENT} per agent"
    );

    // The agents' own connections replace the setup ones.
    let mut tasks = Vec::new();
    for account in &agents {
        tasks.push(tokio::spawn(agent_task(
            addr,
            account.clone(),
            mine.remove(&account.id).unwrap_or_default(),
            step_rx.clone(),
            connected.clone(),
            restored.clone(),
            clock,
        )));
    }
    eventually("every agent connected", Duration::from_secs(120), || {
        let n = connected.load(Ordering::Relaxed);
        async move { Ok((n == n_agents).then_some(())) }
    })
    .await?;
    readers.abort_all();
    eventually(
        "the setup sockets closed",
        Duration::from_secs(60),
        || async {
            let n = metric(addr, "salam_connections{kind=\"agent\"}").await?;
            Ok((n as usize == n_agents).then_some(()))
        },
    )
    .await?;

    // The storm: every socket drops at once, then every agent reconnects at once.
    step_tx.send_replace(Step::Drop);
    let dropped_at = Instant::now();
    println!(
        "chaos storm: dropping every agent {:.1} s into the test",
        clock.elapsed().as_secs_f64()
    );
    eventually(
        "the hub noticing every drop",
        Duration::from_secs(60),
        || async {
            let n = metric(addr, "salam_connections{kind=\"agent\"}").await?;
            Ok((n == 0.0).then_some(()))
        },
    )
    .await?;
    step_tx.send_replace(Step::Reconnect);
    eventually(
        "every agent reconnected and resumed",
        Duration::from_secs(GRACE_SECS * 3),
        || {
            let n = restored.load(Ordering::Relaxed);
            async move { Ok((n == n_agents).then_some(())) }
        },
    )
    .await?;
    let storm = dropped_at.elapsed();
    ensure!(
        storm < Duration::from_secs(GRACE_SECS),
        "dropping and restoring {n_agents} agents took {storm:?}, longer than the {GRACE_SECS} s grace period"
    );
    let mut problems = Vec::new();
    // Routing must see them back well inside the grace period (half of it: on a slower
    // machine the rest is the margin): every agent online again in the routing state,
    // which `GET /api/agents` reads from the routing actor.
    let margin = Duration::from_secs(GRACE_SECS / 2);
    let online = eventually(
        "the routing state showing every agent online again",
        margin.saturating_sub(dropped_at.elapsed()),
        || async {
            let snapshot = world.admin.get("/api/agents").await?;
            let online = snapshot["sites"]
                .as_object()
                .map(|sites| {
                    sites
                        .values()
                        .flat_map(|list| list.as_array().cloned().unwrap_or_default())
                        .filter(|agent| agent["presence"] == "online")
                        .count()
                })
                .unwrap_or(0);
            Ok((online == n_agents).then_some(()))
        },
    )
    .await;
    if let Err(err) = online {
        problems.push(format!(
            "{err:#}: {:.1} s after the drop (all {n_agents} had reconnected after {:.1} s) \
             routing has still not seen them all back; with a {GRACE_SECS} s grace period it \
             is about to hand their chats away",
            dropped_at.elapsed().as_secs_f64(),
            storm.as_secs_f64()
        ));
    }
    let caught_up = dropped_at.elapsed();

    // Past the grace period nothing may have moved.
    tokio::time::sleep_until(dropped_at + Duration::from_secs(GRACE_SECS + 4)).await;
    let after = assignments(&world, &sites).await?;
    step_tx.send_replace(Step::Finish);
    for (index, task) in tasks.into_iter().enumerate() {
        match task.await? {
            Ok(report) => problems.extend(
                report
                    .problems
                    .into_iter()
                    .map(|p| format!("agent {index}: {p}")),
            ),
            Err(err) => problems.push(format!("agent {index}: {err:#}")),
        }
    }
    for (conversation, (_, agent)) in &before {
        let now = after.get(conversation);
        if now.map(|(state, agent)| (state.as_str(), agent)) != Some(("assigned", agent)) {
            problems.push(format!(
                "{conversation} was assigned to {agent:?}, after the grace period it is {now:?}"
            ));
        }
    }
    println!(
        "chaos storm ({:.1} s): {n_agents} agents on {n_sites} sites created and signed in in {agents_secs:.1} s, \
         {} conversations in {visitors_secs:.1} s; drop and reconnect of every agent took {:.1} s, \
         routing check done {:.1} s after the drop (grace {GRACE_SECS} s)",
        started.elapsed().as_secs_f64(),
        before.len(),
        storm.as_secs_f64(),
        caught_up.as_secs_f64()
    );
    world.assert_no_panic()?;
    ensure!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems[..problems.len().min(30)].join("\n")
    );
    Ok(())
}
