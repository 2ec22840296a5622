//! Three hubs on one PostgreSQL database and one NATS server, behind nginx (issue 13):
//! a chat across hubs, losing the routing owner, and losing a visitor's hub under
//! two-sided load.

use anyhow::{Context, Result, bail, ensure};
use salam_e2e::cluster::Cluster;
use salam_e2e::http_request;
use salam_e2e::process::{
    AgentAccount, Api, ORIGIN, SiteInfo, add_agents, agent_session, check_history, eventually,
    visitor_session,
};
use salam_e2e::two_sided::{
    Outcome, Phase, Role, agent_party, all_assigned, progress, stop_and_check, visitor_party,
};
use salam_protocol::{ConversationState, ServerFrame};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;
use tokio::sync::watch;

const CONFIG: &str = r#"
[limits]
rate_per_sec = 100000
burst = 100000

[routing]
grace_secs = 300
auto_close_secs = 0
"#;

/// A site whose bot is off (visitors go straight to agents), made through nginx.
async fn shop(cluster: &Cluster) -> Result<(Api, SiteInfo)> {
    let admin = cluster.admin().await?;
    let site = admin
        .create_site("Cluster Shop", ORIGIN, json!({"bot": false}))
        .await?;
    Ok((admin, site))
}

/// Each hub's `/healthz`, by index (`None` for a hub that does not answer).
async fn health(cluster: &mut Cluster) -> Vec<Option<Value>> {
    let mut out = Vec::new();
    for index in 0..cluster.len() {
        let addr = cluster.hub(index).addr;
        out.push(match http_request(addr, "GET", "/healthz", &[], "").await {
            Ok(response) => serde_json::from_str(&response.body).ok(),
            Err(_) => None,
        });
    }
    out
}

/// The index of the hub that owns routing, once exactly one does.
async fn owner(cluster: &mut Cluster, within: Duration) -> Result<usize> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let owners: Vec<usize> = health(cluster)
            .await
            .iter()
            .enumerate()
            .filter(|(_, h)| h.as_ref().is_some_and(|h| h["routing_owner"] == true))
            .map(|(index, _)| index)
            .collect();
        if let [one] = owners.as_slice() {
            return Ok(*one);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no single routing owner within {within:?}: {owners:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/agents?site=…` (the routing owner's view, on whichever hub answers).
async fn agents_of(admin: &Api, site_id: &str) -> Result<Vec<Value>> {
    let listed = admin.get(&format!("/api/agents?site={site_id}")).await?;
    Ok(listed["sites"][site_id]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn no_panic(cluster: &Cluster) -> Result<()> {
    let logs = cluster.logs(100_000);
    ensure!(
        !logs.contains("panicked"),
        "a hub panicked:\n{}",
        cluster.logs(40)
    );
    Ok(())
}

fn messages(frames: &[ServerFrame], conversation: &str) -> Vec<(u64, String)> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Message(m) if m.conversation == conversation => {
                Some((m.seq, m.text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A visitor on hub1 and an agent on hub2 chat both ways; the visitor's second tab, on
/// hub3, sees the whole conversation in order, then both sides live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_and_an_agent_on_two_hubs_chat_and_a_tab_on_a_third_sees_it_all() -> Result<()> {
    let mut cluster = Cluster::start(3, CONFIG).await?;
    let result = chat_across(&mut cluster).await;
    result.with_context(|| format!("the cluster's logs:\n{}", cluster.logs(30)))
}

async fn chat_across(cluster: &mut Cluster) -> Result<()> {
    cluster.wait_all_serving().await?;
    let (admin, site) = shop(cluster).await?;
    let agents = add_agents(&admin, "across", |_| vec![site.id.clone()], 1, Some(5)).await?;
    let (hub1, hub2, hub3) = (
        cluster.hub(0).addr,
        cluster.hub(1).addr,
        cluster.hub(2).addr,
    );
    let mut agent = agent_session(hub2, &agents[0].token).await?;
    // The agent is online for routing (wherever it runs) before the visitor writes.
    eventually(
        "the agent online in routing",
        Duration::from_secs(20),
        || {
            let admin = admin.clone();
            let site_id = site.id.clone();
            async move {
                let online = agents_of(&admin, &site_id)
                    .await?
                    .iter()
                    .any(|a| a["presence"] == "online");
                Ok(online.then_some(()))
            }
        },
    )
    .await?;

    let mut visitor = visitor_session(hub1, ORIGIN, &site.key, None).await?;
    let token = visitor.token.clone().context("a visitor token")?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "v1", "text": "hello from hub1"}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!()
    };
    let seen = agent.agent_sees("hello from hub1").await?;
    ensure!(seen.conversation == conversation, "another conversation");
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "a1", "text": "hi from hub2"}))
        .await?;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == "a1"))
        .await?;
    visitor
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.text == "hi from hub2"))
        .await
        .context("the visitor on hub1 never got the agent's answer from hub2")?;

    // The second tab, on hub3: the whole conversation, in order.
    let mut tab = visitor_session(hub3, ORIGIN, &site.key, Some(&token)).await?;
    let Some(ServerFrame::Welcome { conversations, .. }) = &tab.welcome else {
        bail!("no welcome on hub3");
    };
    let listed = conversations
        .iter()
        .find(|c| c.id == conversation)
        .context("hub3's welcome does not list the conversation")?;
    let last_seq = listed.last_seq;
    tab.send_json(&json!({"type": "resume", "conversation": conversation, "after": 0}))
        .await?;
    let (_, replayed) = tab
        .recv_until(|f| matches!(f, ServerFrame::Resumed { .. }))
        .await?;
    let replayed = messages(&replayed, &conversation);
    let seqs: Vec<u64> = replayed.iter().map(|(seq, _)| *seq).collect();
    ensure!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs.last() == Some(&last_seq),
        "hub3 replayed {seqs:?} (last_seq {last_seq})"
    );
    let texts: Vec<&str> = replayed.iter().map(|(_, text)| text.as_str()).collect();
    let hello = texts.iter().position(|t| *t == "hello from hub1");
    let hi = texts.iter().position(|t| *t == "hi from hub2");
    ensure!(
        matches!((hello, hi), (Some(a), Some(b)) if a < b),
        "hub3 replayed {texts:?}"
    );

    // Live on every hub: both sides write again; the tab gets both, in order.
    visitor
        .send_json(&json!({"type": "send", "client_id": "v2", "text": "second from hub1"}))
        .await?;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.text == "second from hub1"))
        .await
        .context("the agent on hub2 never got the visitor's second message")?;
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "a2", "text": "second from hub2"}))
        .await?;
    let (_, live) = tab
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.text == "second from hub2"))
        .await
        .context("the tab on hub3 never got the agent's second message")?;
    let mut live = messages(&live, &conversation);
    live.push((0, "second from hub2".into()));
    let live_texts: Vec<&str> = live.iter().map(|(_, t)| t.as_str()).collect();
    ensure!(
        live_texts.contains(&"second from hub1"),
        "the tab on hub3 missed the visitor's live message: {live_texts:?}"
    );
    let live_seqs: Vec<u64> = live[..live.len() - 1].iter().map(|(s, _)| *s).collect();
    ensure!(
        live_seqs.iter().all(|s| *s > last_seq) && live_seqs.windows(2).all(|w| w[0] < w[1]),
        "live on hub3: {live_seqs:?} after {last_seq}"
    );
    // The stored truth: gap-free, each client id once.
    let history = admin.history(&conversation).await?;
    let stored = check_history(&conversation, &history)?;
    for id in ["v1", "a1", "v2", "a2"] {
        ensure!(stored.contains_key(id), "{id} is not stored: {stored:?}");
    }

    // Presence across hubs: the agent's second console, on hub3, is the same agent
    // online once; closing the first keeps them online (no grace period starts).
    let second = agent_session(hub3, &agents[0].token).await?;
    agent.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let listed = eventually(
        "the agent listed once, online",
        Duration::from_secs(10),
        || {
            let admin = admin.clone();
            let site_id = site.id.clone();
            let id = agents[0].id.clone();
            async move {
                let rows: Vec<Value> = agents_of(&admin, &site_id)
                    .await?
                    .into_iter()
                    .filter(|a| a["id"] == id.as_str())
                    .collect();
                Ok((rows.len() == 1 && rows[0]["presence"] == "online").then_some(rows))
            }
        },
    )
    .await?;
    ensure!(
        listed[0]["load"] == 1,
        "the agent's load across hubs: {}",
        listed[0]
    );
    second.close().await;
    no_panic(cluster)
}

/// The routing owner is SIGKILLed: another hub owns routing, a new hand-off is assigned
/// within 10 s, no conversation is assigned twice and no agent exceeds its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_routing_owner_dies_another_hub_routes_within_10_s() -> Result<()> {
    let mut cluster = Cluster::start(3, CONFIG).await?;
    let result = owner_dies(&mut cluster).await;
    result.with_context(|| format!("the cluster's logs:\n{}", cluster.logs(30)))
}

async fn owner_dies(cluster: &mut Cluster) -> Result<()> {
    cluster.wait_all_serving().await?;
    let (_, site) = shop(cluster).await?;
    let dead = owner(cluster, Duration::from_secs(10)).await?;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    let first = cluster.first_start()?.clone();
    let survivor_addr = cluster.hub(survivors[0]).addr;
    // The admin of a surviving hub (nginx would do, but this keeps every call off the
    // dying hub).
    let admin = Api::login(survivor_addr, &first.admin_email, &first.admin_password).await?;
    let capacity = 2;
    let agents: Vec<AgentAccount> = add_agents(
        &admin,
        "owner",
        |_| vec![site.id.clone()],
        2,
        Some(capacity),
    )
    .await?;
    // One agent on each surviving hub.
    let mut sockets = Vec::new();
    for (agent, hub) in agents.iter().zip(&survivors) {
        sockets.push(agent_session(cluster.hub(*hub).addr, &agent.token).await?);
    }
    let mut visitors = Vec::new();
    let mut conversations = Vec::new();
    let survivor_addrs = [
        cluster.hub(survivors[0]).addr,
        cluster.hub(survivors[1]).addr,
    ];
    let write = |index: usize| {
        let addr = survivor_addrs[index % 2];
        let key = site.key.clone();
        async move {
            let mut visitor = visitor_session(addr, ORIGIN, &key, None).await?;
            visitor
                .send_json(&json!({"type": "send", "client_id": format!("w{index}"), "text": "a person please"}))
                .await?;
            let (ack, _) = visitor
                .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
                .await?;
            let ServerFrame::Ack { conversation, .. } = ack else {
                unreachable!()
            };
            anyhow::Ok((visitor, conversation))
        }
    };
    // Before: two chats, assigned.
    for index in 0..2 {
        let (visitor, conversation) = write(index).await?;
        visitors.push(visitor);
        conversations.push(conversation);
    }
    let assigned = |admin: Api, site: String, want: usize| async move {
        let open = admin.open_conversations(&site).await?;
        let n = open.iter().filter(|c| c["state"] == "assigned").count();
        anyhow::Ok((n >= want).then_some(open))
    };
    eventually(
        "two chats assigned before the kill",
        Duration::from_secs(20),
        || assigned(admin.clone(), site.id.clone(), 2),
    )
    .await?;

    let killed = tokio::time::Instant::now();
    cluster.hub(dead).kill().await?;
    let new_owner = owner(cluster, Duration::from_secs(10)).await?;
    ensure!(new_owner != dead, "the dead hub still owns routing");
    let took_over = killed.elapsed();
    // A new hand-off, on a surviving hub, assigned within 10 s of the kill.
    let (visitor, conversation) = write(2).await?;
    visitors.push(visitor);
    conversations.push(conversation.clone());
    eventually(
        "the new hand-off assigned within 10 s of the kill",
        Duration::from_secs(10).saturating_sub(killed.elapsed()),
        || {
            let admin = admin.clone();
            let site = site.id.clone();
            let conversation = conversation.clone();
            async move {
                let open = admin.open_conversations(&site).await?;
                Ok(open
                    .iter()
                    .any(|c| c["id"] == conversation.as_str() && c["state"] == "assigned")
                    .then_some(()))
            }
        },
    )
    .await?;
    let assigned_after = killed.elapsed();
    // More chats than the agents can hold: the rest wait, nobody exceeds capacity.
    for index in 3..6 {
        let (visitor, conversation) = write(index).await?;
        visitors.push(visitor);
        conversations.push(conversation);
    }
    let total_capacity = capacity as usize * agents.len();
    let open = eventually("the agents full", Duration::from_secs(20), || {
        assigned(admin.clone(), site.id.clone(), total_capacity)
    })
    .await?;
    // Let routing settle, then read again: the count must not creep past capacity.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = {
        let again = admin.open_conversations(&site.id).await?;
        if again.is_empty() { open } else { again }
    };
    let mut load: HashMap<String, usize> = HashMap::new();
    for c in open.iter().filter(|c| c["state"] == "assigned") {
        let agent = c["agent"]["id"].as_str().unwrap_or_default().to_owned();
        *load.entry(agent).or_default() += 1;
    }
    for (agent, n) in &load {
        ensure!(
            *n <= capacity as usize,
            "agent {agent} holds {n} chats (capacity {capacity})"
        );
    }
    let queued = open.iter().filter(|c| c["state"] == "queued").count();
    ensure!(
        queued == conversations.len() - total_capacity,
        "{queued} queued of {} with capacity for {total_capacity}",
        conversations.len()
    );
    // No conversation was assigned twice: one "joined" line each.
    for conversation in &conversations {
        let history = admin.history(conversation).await?;
        let joined = history
            .iter()
            .filter(|m| m["kind"] == "event" && m["event"]["code"] == "joined")
            .count();
        ensure!(joined <= 1, "{conversation} was assigned {joined} times");
    }
    println!(
        "cluster owner failover: hub{} killed, hub{} owns routing after {:.2} s, new hand-off assigned after {:.2} s",
        dead + 1,
        new_owner + 1,
        took_over.as_secs_f64(),
        assigned_after.as_secs_f64()
    );
    drop(sockets);
    drop(visitors);
    no_panic(cluster)
}

/// Visitors on hub2 and agents on hub3 send continuously; hub2 is SIGKILLed. Its
/// visitors reconnect through nginx to another hub and resume: every acknowledged
/// message is stored once and seen once, in order, by both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_visitors_hub_under_load_loses_and_duplicates_nothing() -> Result<()> {
    let mut cluster = Cluster::start(3, CONFIG).await?;
    let result = visitors_hub_dies(&mut cluster).await;
    result.with_context(|| format!("the cluster's logs:\n{}", cluster.logs(30)))
}

async fn visitors_hub_dies(cluster: &mut Cluster) -> Result<()> {
    let started = std::time::Instant::now();
    cluster.wait_all_serving().await?;
    let (admin, site) = shop(cluster).await?;
    let (front, hub2, hub3) = (cluster.front(), cluster.hub(1).addr, cluster.hub(2).addr);
    let n_visitors = 6;
    let agents = add_agents(&admin, "load", |_| vec![site.id.clone()], 2, Some(10)).await?;
    let mut setup_agents = Vec::new();
    for agent in &agents {
        setup_agents.push(agent_session(hub3, &agent.token).await?);
    }
    let mut parties = Vec::new();
    for index in 0..n_visitors {
        let mut party = visitor_party(hub2, &site.key, &format!("v{index}")).await?;
        party.first_addr = Some(hub2);
        parties.push(party);
    }
    let assigned = all_assigned(&admin, &site.id, n_visitors).await?;
    for (index, agent) in agents.iter().enumerate() {
        let mut party = agent_party(index, agent, &assigned);
        party.first_addr = Some(hub3);
        parties.push(party);
    }
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let counters: Vec<(Arc<AtomicU64>, usize)> = parties
        .iter()
        .map(|p| (p.acks.clone(), p.conversations.len()))
        .collect();
    let quiet: Vec<Arc<AtomicBool>> = parties.iter().map(|p| p.quiet.clone()).collect();
    let mut handles = Vec::new();
    for party in parties {
        handles.push(tokio::spawn(party.run(front, phase_rx.clone())));
    }
    progress(&counters, 10, "every client sending before the kill").await?;
    for socket in setup_agents.drain(..) {
        socket.close().await;
    }
    progress(&counters, 10, "every client sending again").await?;
    cluster.hub(1).kill().await?;
    progress(&counters, 20, "every client sending after the kill").await?;

    let Outcome {
        finished,
        targets,
        mut problems,
        total_acked,
    } = stop_and_check(&admin, assigned.keys(), &phase_tx, &quiet, handles).await?;
    for party in &finished {
        if matches!(party.role, Role::Visitor { .. }) && party.connections < 2 {
            problems.push(format!(
                "{} connected {} times: it never lost its hub",
                party.name, party.connections
            ));
        }
    }
    // Every conversation still assigned to its agent (the grace period kept them).
    let open = admin.open_conversations(&site.id).await?;
    for c in &open {
        let id = c["id"].as_str().unwrap_or_default();
        if let Some(agent) = assigned.get(id)
            && (c["state"] != "assigned" || c["agent"]["id"] != agent.as_str())
        {
            problems.push(format!("{id} is {} after the kill", c["state"]));
        }
    }
    let state_ok = open.iter().all(|c| {
        c["state"] == serde_json::to_value(ConversationState::Assigned).unwrap_or_default()
    });
    println!(
        "cluster visitor-hub kill: {} clients, {total_acked} messages acknowledged, {} stored in {} conversations, all assigned: {state_ok}, {:.1} s",
        finished.len(),
        targets.values().sum::<u64>(),
        targets.len(),
        started.elapsed().as_secs_f64()
    );
    no_panic(cluster)?;
    ensure!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems[..problems.len().min(40)].join("\n")
    );
    ensure!(
        total_acked >= 100,
        "only {total_acked} messages were acknowledged: the load was not continuous"
    );
    Ok(())
}
