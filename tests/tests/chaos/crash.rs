//! Chaos 1: the hub is SIGKILLed twice (more at a larger scale) while visitors *and*
//! agents send continuously, and restarted on the same data directory and port.
//!
//! Unlike the end-to-end crash test (visitors only, one kill, resume once everything is
//! quiet), every client here reconnects on its own while the others keep sending, so
//! its `resume` races live traffic. Checked: nothing acknowledged is lost, moved or
//! stored twice (REST history); each client's own stream is in order on every
//! connection, never repeats what it resumed after, and in the end holds every sequence
//! of its conversations; each agent finds its chats still assigned to it after every
//! restart.

use crate::support::{AgentAccount, ORIGIN, World, add_agents, eventually, scale, serial};
use anyhow::{Context, Result, ensure};
use salam_e2e::process::{agent_session, check_history, visitor_session};
use salam_e2e::two_sided::{Party, Phase, Role, progress};
use salam_protocol::ServerFrame;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

const CONFIG: &str = r#"
[limits]
rate_per_sec = 100000
burst = 100000

[routing]
grace_secs = 300
default_capacity = 10
auto_close_secs = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_two_sided_load_loses_and_duplicates_nothing() -> Result<()> {
    let _serial = serial().await;
    sigkill_under_load(CONFIG).await
}

/// The same with the conversations in PostgreSQL (issue 13): the commit before the ack
/// is PostgreSQL's, and the restarted hub rebuilds routing from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_two_sided_load_loses_and_duplicates_nothing_on_postgres() -> Result<()> {
    let _serial = serial().await;
    let database = salam_e2e::postgres::scratch().await?;
    sigkill_under_load(&format!(
        "{CONFIG}\n[store]\nurl = \"{}\"\n",
        database.url()
    ))
    .await
}

async fn sigkill_under_load(config: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let scale = scale();
    let n_visitors = 6 * scale as usize;
    let n_agents = 2 * scale as usize;
    let n_kills = 2 * scale;
    let mut world = World::start(config).await?;
    let addr = world.hub.addr;
    let site_id = world.site.id.clone();
    let agents: Vec<AgentAccount> = add_agents(
        &world.admin,
        "crash",
        |_| vec![site_id.clone()],
        n_agents,
        None,
    )
    .await?;
    // Agents online first, so every conversation is assigned as it starts.
    let mut setup_agents = Vec::new();
    for agent in &agents {
        setup_agents.push(agent_session(addr, &agent.token).await?);
    }
    let mut parties = Vec::new();
    for index in 0..n_visitors {
        let mut visitor = visitor_session(addr, ORIGIN, &world.site.key, None).await?;
        let name = format!("v{index}");
        let client_id = format!("{name}-0");
        visitor
            .send_json(&json!({"type": "send", "client_id": client_id, "text": "hello"}))
            .await?;
        let (ack, _) = visitor
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
            .await?;
        let ServerFrame::Ack {
            conversation, seq, ..
        } = ack
        else {
            unreachable!()
        };
        let token = visitor.token.clone().context("visitor token")?;
        let mut party = Party::new(
            name,
            Role::Visitor {
                site_key: world.site.key.clone(),
                token,
            },
            vec![conversation.clone()],
        );
        party.acked.insert(client_id, (conversation, seq));
        parties.push(party);
        visitor.close().await;
    }
    // Every conversation assigned; each agent sends into its own.
    let assigned: HashMap<String, String> = eventually(
        "every conversation assigned",
        Duration::from_secs(60),
        || {
            let admin = world.admin.clone();
            let site_id = site_id.clone();
            async move {
                let open = admin.open_conversations(&site_id).await?;
                let assigned: HashMap<String, String> = open
                    .iter()
                    .filter(|c| c["state"] == "assigned")
                    .filter_map(|c| {
                        Some((
                            c["id"].as_str()?.to_owned(),
                            c["agent"]["id"].as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                Ok((assigned.len() == n_visitors).then_some(assigned))
            }
        },
    )
    .await?;
    for (index, agent) in agents.iter().enumerate() {
        let mut mine: Vec<String> = assigned
            .iter()
            .filter(|(_, owner)| **owner == agent.id)
            .map(|(conversation, _)| conversation.clone())
            .collect();
        mine.sort();
        parties.push(Party::new(
            format!("a{index}"),
            Role::Agent {
                id: agent.id.clone(),
                token: agent.token.clone(),
            },
            mine,
        ));
    }
    ensure!(
        parties
            .iter()
            .filter(|p| matches!(p.role, Role::Agent { .. }))
            .any(|p| !p.conversations.is_empty()),
        "no agent got a conversation"
    );

    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let counters: Vec<(Arc<AtomicU64>, usize)> = parties
        .iter()
        .map(|p| (p.acks.clone(), p.conversations.len()))
        .collect();
    let quiet: Vec<Arc<AtomicBool>> = parties.iter().map(|p| p.quiet.clone()).collect();
    let mut handles = Vec::new();
    for party in parties {
        handles.push(tokio::spawn(party.run(addr, phase_rx.clone())));
    }
    progress(&counters, 10, "every client sending before the first kill").await?;
    for socket in setup_agents.drain(..) {
        socket.close().await;
    }
    for kill in 0..n_kills {
        progress(&counters, 10, "every client sending again").await?;
        // Land the kill mid-stream at a slightly different moment each time.
        tokio::time::sleep(Duration::from_millis(400 + 350 * kill as u64 % 900)).await;
        world.hub.kill().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        world.hub.restart().await?;
    }
    progress(&counters, 20, "every client sending after the last restart").await?;

    // Stop, let everything in flight be acknowledged, then read the stored truth.
    phase_tx.send_replace(Phase::Stop);
    eventually("every send acknowledged", Duration::from_secs(60), || {
        let all = quiet.iter().all(|q| q.load(Ordering::Relaxed));
        async move { Ok(all.then_some(())) }
    })
    .await?;
    let mut stored: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut targets = HashMap::new();
    for conversation in assigned.keys() {
        let history = world.admin.history(conversation).await?;
        stored.insert(conversation.clone(), check_history(conversation, &history)?);
        targets.insert(conversation.clone(), history.len() as u64);
    }
    phase_tx.send_replace(Phase::Drain(Arc::new(targets.clone())));
    let mut finished = Vec::new();
    for handle in handles {
        finished.push(
            tokio::time::timeout(Duration::from_secs(90), handle)
                .await
                .context("a client never caught up")??,
        );
    }

    let mut problems: Vec<String> = Vec::new();
    let mut total_acked = 0;
    for party in &finished {
        problems.extend(party.violations.iter().cloned());
        if !party.conversations.is_empty() && party.connections < n_kills + 1 {
            problems.push(format!(
                "{} connected {} times over {n_kills} kills",
                party.name, party.connections
            ));
        }
        for (client_id, (conversation, seq)) in &party.acked {
            total_acked += 1;
            match stored.get(conversation).and_then(|s| s.get(client_id)) {
                Some(stored_seq) if stored_seq == seq => {}
                other => problems.push(format!(
                    "{client_id} acknowledged as {conversation} seq {seq}, stored as {other:?}"
                )),
            }
        }
        for conversation in &party.conversations {
            let last = targets[conversation];
            let seen = &party.tracks[conversation].seen;
            let missing: Vec<u64> = (1..=last).filter(|seq| !seen.contains(seq)).collect();
            if !missing.is_empty() || seen.iter().any(|seq| *seq > last) {
                problems.push(format!(
                    "{} saw {conversation} with a gap: missing {missing:?} of 1..={last}",
                    party.name
                ));
            }
        }
    }
    let reconnects: Vec<String> = finished
        .iter()
        .map(|p| format!("{}:{}", p.name, p.connections))
        .collect();
    println!(
        "chaos crash: {n_kills} kills, {} clients, {total_acked} messages acknowledged, \
         {} stored in {} conversations, connections {reconnects:?}, {:.1} s",
        finished.len(),
        targets.values().sum::<u64>(),
        targets.len(),
        started.elapsed().as_secs_f64()
    );
    world.assert_no_panic()?;
    ensure!(
        problems.is_empty(),
        "{} problem(s):\n{}\nhub log:\n{}",
        problems.len(),
        problems[..problems.len().min(40)].join("\n"),
        world.hub.log_tail(30)
    );
    ensure!(
        total_acked >= 100 * n_kills as usize,
        "only {total_acked} messages were acknowledged: the load was not continuous"
    );
    Ok(())
}
