//! What the routing owner does for the whole cluster (issue 13): a dead hub's agent
//! sockets count as closed, so the grace period runs and the chats go to an agent who
//! is still there; and cluster-wide jobs run once (webhook delivery: every event is
//! delivered once, not once per hub).

use anyhow::{Context, Result, ensure};
use salam_e2e::cluster::Cluster;
use salam_e2e::http_request;
use salam_e2e::process::{Api, ORIGIN, add_agents, agent_session, eventually, visitor_session};
use salam_e2e::webhook_receiver::Receiver;
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// The index of the hub that owns routing now.
async fn owner(cluster: &mut Cluster) -> Result<usize> {
    let addrs: Vec<_> = (0..cluster.len()).map(|i| cluster.hub(i).addr).collect();
    eventually("one routing owner", Duration::from_secs(15), || {
        let addrs = addrs.clone();
        async move {
            let mut owners = Vec::new();
            for (index, addr) in addrs.into_iter().enumerate() {
                if let Ok(response) = http_request(addr, "GET", "/healthz", &[], "").await
                    && let Ok(health) = serde_json::from_str::<Value>(&response.body)
                    && health["routing_owner"] == true
                {
                    owners.push(index);
                }
            }
            Ok((owners.len() == 1).then(|| owners[0]))
        }
    })
    .await
}

/// An agent on a hub that does not own routing holds a chat; that hub is SIGKILLed.
/// Its sockets count as closed (the owner hears no heartbeat), the grace period runs
/// out, and the chat goes to the agent online on another hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hubs_agent_sockets_count_as_closed_and_their_chats_move_on() -> Result<()> {
    let config = "[routing]\ngrace_secs = 2\nauto_close_secs = 0\n";
    let mut cluster = Cluster::start(3, config).await?;
    let result = dead_hubs_agent(&mut cluster).await;
    result.with_context(|| format!("the cluster's logs:\n{}", cluster.logs(30)))
}

async fn dead_hubs_agent(cluster: &mut Cluster) -> Result<()> {
    cluster.wait_all_serving().await?;
    let owner = owner(cluster).await?;
    let others: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    let (doomed, staying) = (others[0], others[1]);
    let first = cluster.first_start()?.clone();
    let staying_addr = cluster.hub(staying).addr;
    let admin = Api::login(staying_addr, &first.admin_email, &first.admin_password).await?;
    let site = admin
        .create_site("Cluster Shop", ORIGIN, json!({"bot": false}))
        .await?;
    let agents = add_agents(&admin, "gone", |_| vec![site.id.clone()], 2, Some(5)).await?;
    // Only the first agent is online when the visitor writes: the chat is theirs.
    let doomed_socket = agent_session(cluster.hub(doomed).addr, &agents[0].token).await?;
    let mut visitor = visitor_session(staying_addr, ORIGIN, &site.key, None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "g1", "text": "anyone?"}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!()
    };
    let holder = |admin: Api, site: String, conversation: String| async move {
        let open = admin.open_conversations(&site).await?;
        Ok(open
            .iter()
            .find(|c| c["id"] == conversation.as_str() && c["state"] == "assigned")
            .and_then(|c| c["agent"]["id"].as_str().map(str::to_owned)))
    };
    let first_holder = eventually("the chat assigned", Duration::from_secs(20), || {
        holder(admin.clone(), site.id.clone(), conversation.clone())
    })
    .await?;
    ensure!(
        first_holder == agents[0].id,
        "assigned to {first_holder}, not the only agent online"
    );
    let _staying_socket = agent_session(staying_addr, &agents[1].token).await?;
    cluster.hub(doomed).kill().await?;
    drop(doomed_socket);
    // Silent for 3 s, then 2 s of grace: the chat moves to the agent still online.
    let moved = eventually(
        "the dead hub's chat given to the agent on another hub",
        Duration::from_secs(30),
        || {
            let admin = admin.clone();
            let site = site.id.clone();
            let conversation = conversation.clone();
            let wanted = agents[1].id.clone();
            async move {
                let now = holder(admin, site, conversation).await?;
                Ok((now.as_deref() == Some(wanted.as_str())).then_some(()))
            }
        },
    )
    .await;
    moved?;
    let log = cluster.logs(100_000);
    ensure!(!log.contains("panicked"), "a hub panicked");
    Ok(())
}

/// Webhook delivery runs on the routing owner only: with three hubs, every event of
/// messages written on every hub is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_delivered_once_per_cluster_not_once_per_hub() -> Result<()> {
    let config = "[routing]\nauto_close_secs = 0\n\n[webhooks]\npoll_ms = 100\nretry_base_ms = 200\nretry_max_ms = 800\n";
    let mut cluster = Cluster::start(3, config).await?;
    let result = webhooks_once(&mut cluster).await;
    result.with_context(|| format!("the cluster's logs:\n{}", cluster.logs(30)))
}

async fn webhooks_once(cluster: &mut Cluster) -> Result<()> {
    cluster.wait_all_serving().await?;
    let admin = cluster.admin().await?;
    let site = admin
        .create_site("Hooked Shop", ORIGIN, json!({"bot": false}))
        .await?;
    let receiver = Receiver::start().await?;
    let created = admin
        .json(
            "POST",
            &format!("/api/sites/{}/webhooks", site.id),
            Some(&json!({"url": receiver.url(), "events": ["message.created"], "include_notes": false})),
        )
        .await?;
    let secret = created["secret"].as_str().context("secret")?.to_owned();
    receiver.set_secrets(&[&secret]);
    // Every hub has heard of the endpoint (a notice) before its visitors write.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut texts = Vec::new();
    for hub in 0..3 {
        let addr = cluster.hub(hub).addr;
        let mut visitor = visitor_session(addr, ORIGIN, &site.key, None).await?;
        for n in 0..4 {
            let text = format!("hub{} says {n}", hub + 1);
            visitor
                .send_json(&json!({"type": "send", "client_id": text, "text": text}))
                .await?;
            visitor
                .recv_until(
                    |f| matches!(f, ServerFrame::Ack { client_id, .. } if *client_id == text),
                )
                .await?;
            texts.push(text);
        }
        visitor.close().await;
    }
    eventually(
        "every message's event delivered",
        Duration::from_secs(60),
        || {
            let delivered: Vec<String> = receiver
                .delivered()
                .iter()
                .filter_map(|r| {
                    r.body["data"]["message"]["text"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect();
            let all = texts.iter().all(|t| delivered.contains(t));
            async move { Ok(all.then_some(())) }
        },
    )
    .await?;
    // Three dispatchers would have sent some of them more than once by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for request in receiver.requests() {
        ensure!(
            !request.verified.is_empty(),
            "an unsigned request: {request:?}"
        );
        *by_id.entry(request.id.clone()).or_default() += 1;
    }
    let doubled: Vec<(&String, &usize)> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        doubled.is_empty(),
        "events delivered more than once: {doubled:?}"
    );
    ensure!(
        by_id.len() >= texts.len(),
        "{} events for {} messages",
        by_id.len(),
        texts.len()
    );
    Ok(())
}
