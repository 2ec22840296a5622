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

use crate::support::{AgentAccount, World, add_agents, scale, serial};
use anyhow::{Result, ensure};
use salam_e2e::process::agent_session;
use salam_e2e::two_sided::{
    Outcome, Phase, Role, agent_party, all_assigned, progress, stop_and_check, visitor_party,
};
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
        parties.push(visitor_party(addr, &world.site.key, &format!("v{index}")).await?);
    }
    // Every conversation assigned; each agent sends into its own.
    let assigned = all_assigned(&world.admin, &site_id, n_visitors).await?;
    for (index, agent) in agents.iter().enumerate() {
        parties.push(agent_party(index, agent, &assigned));
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
    let Outcome {
        finished,
        targets,
        mut problems,
        total_acked,
    } = stop_and_check(&world.admin, assigned.keys(), &phase_tx, &quiet, handles).await?;
    for party in &finished {
        if !party.conversations.is_empty() && party.connections < n_kills + 1 {
            problems.push(format!(
                "{} connected {} times over {n_kills} kills",
                party.name, party.connections
            ));
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
