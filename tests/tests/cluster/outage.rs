//! Issue 13, "losing the database", with three hubs: the cluster's PostgreSQL server
//! (one of the test's own, [`PrivatePostgres`]) stops for 10 s while visitors send
//! through nginx and agents stay connected to different hubs, then starts again.
//!
//! Checked: while it is down every hub answers each send with `error`
//! `store_unavailable` (never an `ack`), answers every send, stays up without a panic,
//! and its `/healthz` answers 503 with `database_status` `unavailable`. Once the server
//! is back, without restarting any hub: every hub's `/healthz` answers 200 and exactly
//! one hub owns routing again (the routing lease's session died with the server), the
//! refused sends resent with the same client ids are stored exactly once (and
//! everything acknowledged is stored at its sequence), and a new visitor's
//! conversation is assigned to an agent that is online.

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use salam_e2e::cluster::{Cluster, hub_id};
use salam_e2e::http_request;
use salam_e2e::postgres::PrivatePostgres;
use salam_e2e::process::{
    ORIGIN, add_agents, agent_session, check_history, eventually, visitor_session,
};
use salam_e2e::resending::{Phase, Writer};
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const CONFIG: &str = r#"
[limits]
rate_per_sec = 1000
burst = 1000

[routing]
default_capacity = 100
auto_close_secs = 0
"#;

const HUBS: usize = 3;
/// Visitors sending through nginx (`least_conn` spreads them over the hubs).
const WRITERS: usize = 3;
/// How long the database stays down.
const DATABASE_DOWN: Duration = Duration::from_secs(10);
/// How soon after the server is back one hub must own routing again (the lease is
/// tried every 500 ms; the hubs' sessions reconnect first).
const OWNER_AGAIN_WITHIN: Duration = Duration::from_secs(15);

/// An agent kept online on one hub: connects (retrying while the hub cannot check its
/// session), reads every frame, reconnects when the socket closes. `online` is true
/// while a connection is open.
async fn stay_online(
    addr: SocketAddr,
    token: String,
    online: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> u32 {
    let mut connections = 0;
    while !*stop.borrow_and_update() {
        let mut client = match agent_session(addr, &token).await {
            Ok(client) => client,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        connections += 1;
        online.store(true, Ordering::Relaxed);
        loop {
            tokio::select! {
                incoming = client.socket.next() => match incoming {
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                _ = stop.changed() => break,
            }
        }
        online.store(false, Ordering::Relaxed);
    }
    connections
}

/// `GET /healthz` on one hub's own address: (status, body as JSON).
async fn healthz(addr: SocketAddr) -> Result<(u16, Value)> {
    let response = http_request(addr, "GET", "/healthz", &[], "").await?;
    let body = serde_json::from_str(&response.body)
        .with_context(|| format!("/healthz body is not JSON: {}", response.body))?;
    Ok((response.status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hubs_refuse_during_a_database_outage_and_recover_by_themselves() -> Result<()> {
    let started = std::time::Instant::now();
    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
    let mut cluster = Cluster::start_on(&postgres.url(), HUBS, CONFIG).await?;
    cluster.wait_all_serving().await?;
    let front = cluster.front();
    let hubs: Vec<SocketAddr> = (0..HUBS).map(|index| cluster.hub(index).addr).collect();
    let admin = cluster.admin().await?;
    let site = admin
        .create_site("Outage Shop", ORIGIN, json!({"bot": false}))
        .await?;
    let site_id = site.id.clone();

    // One agent on each hub, online before any visitor writes.
    let agents = add_agents(&admin, "outage", |_| vec![site_id.clone()], HUBS, Some(100)).await?;
    let (stop_agents, stop_rx) = watch::channel(false);
    let mut online = Vec::new();
    let mut agent_tasks = Vec::new();
    for (agent, &addr) in agents.iter().zip(&hubs) {
        let flag = Arc::new(AtomicBool::new(false));
        online.push((agent.id.clone(), flag.clone()));
        agent_tasks.push(tokio::spawn(stay_online(
            addr,
            agent.token.clone(),
            flag,
            stop_rx.clone(),
        )));
    }
    eventually("every agent online", Duration::from_secs(30), || {
        let all = online.iter().all(|(_, flag)| flag.load(Ordering::Relaxed));
        async move { Ok(all.then_some(())) }
    })
    .await?;

    let (refusals, recovered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut writers = Vec::new();
    let mut backlogs = Vec::new();
    for index in 0..WRITERS {
        let writer = Writer::open(
            front,
            &format!("w{index}"),
            &site.key,
            refusals.clone(),
            recovered.clone(),
        )
        .await?;
        backlogs.push(writer.backlog.clone());
        writers.push(writer);
    }
    let conversations: Vec<String> = writers.iter().map(|w| w.conversation.clone()).collect();
    let (phase_tx, phase_rx) = watch::channel(Phase::Before);
    let handles: Vec<_> = writers
        .into_iter()
        .map(|writer| tokio::spawn(writer.run(front, phase_rx.clone())))
        .collect();
    let setup = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The database goes away.
    phase_tx.send_replace(Phase::Fault);
    let fault_started = Instant::now();
    tokio::task::block_in_place(|| postgres.stop())?;
    let down_at = Instant::now();
    let refused_after = eventually(
        "a hub refusing a message (store_unavailable) with the database down",
        Duration::from_secs(30),
        || {
            let n = refusals.load(Ordering::Relaxed);
            async move { Ok((n > 0).then_some(fault_started.elapsed())) }
        },
    )
    .await;
    let refused_after = match refused_after {
        Ok(after) => after,
        Err(err) => {
            phase_tx.send_replace(Phase::Stop);
            return Err(err.context(cluster.logs(20)));
        }
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (index, &addr) in hubs.iter().enumerate() {
        let (status, body) = healthz(addr).await?;
        ensure!(
            status == 503 && body["database_status"] == "unavailable",
            "{}'s /healthz with the database down answered {status} {body}",
            hub_id(index)
        );
    }
    tokio::time::sleep(DATABASE_DOWN.saturating_sub(fault_started.elapsed())).await;
    let running = cluster.running();
    ensure!(
        running.len() == HUBS,
        "only hubs {running:?} still run with the database down:\n{}",
        cluster.logs(30)
    );
    let refusals_during_outage = refusals.load(Ordering::Relaxed);

    // The database comes back; no hub is restarted.
    let up_at = Instant::now();
    tokio::task::block_in_place(|| postgres.restart())?;
    phase_tx.send_replace(Phase::Recover);
    let recovery_started = Instant::now();
    // When the first send is acknowledged again (the backlog of refusals takes longer:
    // each writer resends five a second).
    let first_ack = tokio::spawn({
        let recovered = recovered.clone();
        async move {
            while recovered.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            recovery_started.elapsed()
        }
    });
    let owner = eventually(
        "every hub healthy again and exactly one owning routing",
        OWNER_AGAIN_WITHIN,
        || {
            let hubs = hubs.clone();
            async move {
                let mut owners = Vec::new();
                for (index, addr) in hubs.into_iter().enumerate() {
                    let (status, body) = healthz(addr).await?;
                    if status != 200 {
                        return Ok(None);
                    }
                    if body["routing_owner"] == true {
                        owners.push(hub_id(index));
                    }
                }
                Ok((owners.len() == 1).then(|| owners.remove(0)))
            }
        },
    )
    .await;
    let owner_after = recovery_started.elapsed();
    let recover = eventually(
        "the hubs acknowledging again (every refused send resent and acknowledged)",
        Duration::from_secs(90),
        || {
            let backlog: u64 = backlogs.iter().map(|b| b.load(Ordering::Relaxed)).sum();
            let n = recovered.load(Ordering::Relaxed);
            async move { Ok((backlog == 0 && n >= 20 * WRITERS as u64).then_some(())) }
        },
    )
    .await;
    let recovered_after = recovery_started.elapsed();
    let first_ack_after = if first_ack.is_finished() {
        Some(first_ack.await?)
    } else {
        first_ack.abort();
        None
    };

    // A new hand-off after recovery goes to an agent who is online.
    let handoff = async {
        let mut visitor = visitor_session(front, ORIGIN, &site.key, None).await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "after-0", "text": "hello again"}))
            .await?;
        let (ack, _) = visitor
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
            .await?;
        let ServerFrame::Ack { conversation, .. } = ack else {
            bail!("expected an ack, got {ack:?}");
        };
        let agent = eventually(
            "the new conversation assigned",
            Duration::from_secs(30),
            || {
                let admin = admin.clone();
                let site_id = site_id.clone();
                let conversation = conversation.clone();
                async move {
                    let open = admin.open_conversations(&site_id).await?;
                    Ok(open
                        .iter()
                        .find(|c| c["id"] == conversation.as_str() && c["state"] == "assigned")
                        .and_then(|c| c["agent"]["id"].as_str().map(str::to_owned)))
                }
            },
        )
        .await?;
        let agent_online = online
            .iter()
            .any(|(id, flag)| *id == agent && flag.load(Ordering::Relaxed));
        ensure!(
            agent_online,
            "the new conversation went to {agent}, who is not online"
        );
        visitor.close().await;
        anyhow::Ok(agent)
    }
    .await;

    let handoff_done = started.elapsed();
    phase_tx.send_replace(Phase::Stop);
    let mut finished = Vec::new();
    for handle in handles {
        finished.push(
            tokio::time::timeout(Duration::from_secs(90), handle)
                .await
                .context("a writer never finished")??,
        );
    }
    stop_agents.send_replace(true);
    let mut agent_connections = Vec::new();
    for task in agent_tasks {
        agent_connections.push(task.await?);
    }

    let mut problems = Vec::new();
    for err in [
        owner.as_ref().err(),
        recover.as_ref().err(),
        handoff.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        problems.push(format!("{err:#}"));
    }
    let mut stored = HashMap::new();
    for conversation in &conversations {
        match check_history(conversation, &admin.history(conversation).await?) {
            Ok(by_client) => stored.extend(by_client),
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    let mut acked_in: HashMap<&str, usize> = HashMap::new();
    for writer in &finished {
        problems.extend(
            writer
                .violations
                .iter()
                .map(|v| format!("{}: {v}", writer.name)),
        );
        for (label, n) in &writer.acked_in {
            *acked_in.entry(label).or_default() += n;
        }
        for (client_id, seq) in &writer.acked {
            if stored.get(client_id) != Some(seq) {
                problems.push(format!(
                    "{client_id} was acknowledged as seq {seq} but is stored as {:?}",
                    stored.get(client_id)
                ));
            }
        }
        for (client_id, &sent) in &writer.first_sent {
            match writer.acked_at.get(client_id) {
                None => problems.push(format!("{client_id} was never acknowledged")),
                // Sent once the server was down and acknowledged before it came back:
                // nothing could have committed it.
                Some(&acked) if sent > down_at && acked < up_at => problems.push(format!(
                    "{client_id}, sent {:.1} s into the outage, was acknowledged before the database came back",
                    (sent - down_at).as_secs_f64()
                )),
                Some(_) => {}
            }
        }
    }
    println!(
        "cluster outage ({HUBS} hubs, {WRITERS} visitors, {:.1} s; set-up {:.1} s, hand-off done at {:.1} s): \
         acknowledged {acked_in:?}; first refusal {:.1} s into the outage, {refusals_during_outage} \
         refusals during it; after the restart: {} owned routing in {:.1} s, first ack in {}, \
         every refused send stored in {:.1} s; agent connections {agent_connections:?}",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        handoff_done.as_secs_f64(),
        refused_after.as_secs_f64(),
        owner.as_deref().unwrap_or("no hub"),
        owner_after.as_secs_f64(),
        first_ack_after.map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        recovered_after.as_secs_f64()
    );
    cluster.assert_no_panic()?;
    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n{}\n{}\n---- postgres log\n{}",
            problems.len(),
            problems[..problems.len().min(30)].join("\n"),
            cluster.logs(30),
            postgres.log_tail(20)
        );
    }
    ensure!(
        refusals_during_outage > 0,
        "nothing was refused during the outage"
    );
    Ok(())
}
