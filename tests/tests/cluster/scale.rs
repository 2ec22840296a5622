//! Scale across several hubs (issue 13): 50,000 idle visitor connections held by three
//! hubs, while a chat across two of them still works.
//!
//! Key design decision: **the visitors connect to the hubs directly, and the client
//! side is several `salam-loadgen idle` processes.** Every process here may hold at
//! most 20,000 open files, so no single client process could hold 50,000 sockets, and
//! nginx in front would need two descriptors per connection (the client's and the
//! upstream's): its two workers could relay 20,000, not 50,000. Each hub gets a third
//! (about 16,700, under its own 20,000) from two load generators of about 8,300
//! connections each. Loopback source ports are no limit: the load generator spreads
//! its connections over the source addresses 127.0.0.1 to 127.0.0.8
//! (crates/loadgen/src/wire.rs), each with the whole ephemeral port range.

use anyhow::{Context, Result, bail, ensure};
use salam_e2e::cluster::Cluster;
use salam_e2e::loadgen_binary;
use salam_e2e::process::{
    ORIGIN, add_agents, agent_session, eventually, metric, proc_sample, visitor_session,
};
use salam_protocol::{ConversationState, ServerFrame};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Idle visitors across the cluster.
const VISITORS: usize = 50_000;
const HUBS: usize = 3;
/// Load generators per hub (each far under the 20,000 open files a process may have).
const LOADGENS_PER_HUB: usize = 2;
/// Handshakes in flight per load generator: connects at a bounded rate on two cores.
const HANDSHAKES_IN_FLIGHT: usize = 32;
/// How long every connection must stay open once all are up.
const HOLD: Duration = Duration::from_secs(5);
/// How long all the connections may take to open (a debug build on two cores).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(240);

/// CPU seconds (user + system) process `pid` has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command's closing parenthesis: state is the first, utime
    // the 12th, stime the 13th; clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("unreadable /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |n: usize| -> Result<f64> {
        Ok(fields
            .get(n)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// One `salam-loadgen idle` process against one hub.
struct Loadgen {
    hub: usize,
    wanted: usize,
    child: tokio::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Loadgen {
    /// Starts the process; `holding` gets `(index, Ok(open))` once it holds its
    /// connections, or `(index, Err(..))` if its progress output ends before that.
    fn start(
        index: usize,
        hub: usize,
        addr: std::net::SocketAddr,
        site_key: &str,
        wanted: usize,
        holding: mpsc::UnboundedSender<(usize, Result<usize>)>,
    ) -> Result<Loadgen> {
        let mut child = tokio::process::Command::new(loadgen_binary()?)
            .args(["--threads", "1", "idle", "--addr"])
            .arg(addr.to_string())
            .args(["--site", site_key, "--origin", ORIGIN, "--connections"])
            .arg(wanted.to_string())
            .args([
                "--settle",
                "0",
                "--hold-until-stdin-closes",
                "--concurrency",
            ])
            .arg(HANDSHAKES_IN_FLIGHT.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run salam-loadgen")?;
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let kept = stderr.clone();
        tokio::spawn(async move {
            let mut reported = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if !reported && let Some(rest) = line.strip_prefix("idle: holding ") {
                    let open = rest
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .with_context(|| format!("unreadable progress line {line:?}"));
                    let _ = holding.send((index, open));
                    reported = true;
                }
                kept.lock().map(|mut kept| kept.push(line)).ok();
            }
            if !reported {
                let _ = holding.send((index, Err(anyhow::anyhow!("exited before holding"))));
            }
        });
        Ok(Loadgen {
            hub,
            wanted,
            child,
            stderr,
        })
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Releases the connections (closes stdin) and returns the JSON report.
    async fn finish(mut self) -> Result<Value> {
        drop(self.child.stdin.take());
        let stderr = self.stderr.clone();
        let output = tokio::time::timeout(Duration::from_secs(60), self.child.wait_with_output())
            .await
            .context("salam-loadgen did not finish")??;
        let tail = || {
            let lines = stderr.lock().map(|l| l.clone()).unwrap_or_default();
            lines[lines.len().saturating_sub(5)..].join("\n")
        };
        ensure!(
            output.status.success(),
            "salam-loadgen failed ({}): {}",
            output.status,
            tail()
        );
        serde_json::from_slice(&output.stdout).context("salam-loadgen's report is not JSON")
    }
}

/// Three hubs hold 50,000 idle visitor connections (every one welcomed, none dropped
/// after holding) while a visitor on hub1 reaches an agent on hub2. Prints each hub's
/// resident memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hubs_hold_fifty_thousand_idle_visitors() -> Result<()> {
    let started = Instant::now();
    // Each hub's share plus its agents and the bus, PostgreSQL and listening sockets
    // stay under its 20,000 open files; the per-address limits are off
    // (`with_test_defaults`): every visitor here comes from 127.0.0.x.
    let config = "[limits]\nmax_connections = 19500\nagent_reserved_connections = 500\n";
    let mut cluster = Cluster::start(HUBS, config).await?;
    cluster.wait_all_serving().await?;
    let admin = cluster.admin().await?;
    let site = admin
        .create_site("Scale Shop", ORIGIN, json!({"bot": false}))
        .await?;
    let site_id = site.id.clone();
    let agents = add_agents(&admin, "scale", |_| vec![site_id.clone()], 1, None).await?;
    let addrs: Vec<_> = (0..HUBS).map(|hub| cluster.hub(hub).addr).collect();
    let baseline: Vec<u64> = (0..HUBS)
        .map(|hub| cluster.hub(hub).sample().map(|s| s.rss_kib))
        .collect::<Result<_>>()?;

    // About a third of the visitors per hub, split over its load generators.
    let connecting = Instant::now();
    let hub_pids: Vec<u32> = (0..HUBS)
        .map(|hub| cluster.hub(hub).pid().context("a hub is not running"))
        .collect::<Result<_>>()?;
    let hub_cpu_before = hub_pids
        .iter()
        .map(|&pid| cpu_seconds(pid))
        .collect::<Result<Vec<_>>>()?;
    let (holding_tx, mut holding_rx) = mpsc::unbounded_channel();
    let mut loadgens = Vec::new();
    let mut per_hub = [0usize; HUBS];
    for index in 0..HUBS * LOADGENS_PER_HUB {
        let hub = index % HUBS;
        let processes = HUBS * LOADGENS_PER_HUB;
        let wanted = VISITORS / processes + usize::from(index < VISITORS % processes);
        per_hub[hub] += wanted;
        loadgens.push(Loadgen::start(
            index,
            hub,
            addrs[hub],
            &site.key,
            wanted,
            holding_tx.clone(),
        )?);
    }
    drop(holding_tx);
    ensure!(per_hub.iter().sum::<usize>() == VISITORS);

    // Every load generator holds all it wanted: each of its handshakes ended in
    // `welcome` (`salam-loadgen` counts a connection only then).
    let mut open_total = 0;
    for _ in 0..loadgens.len() {
        let (index, open) = tokio::time::timeout(CONNECT_TIMEOUT, holding_rx.recv())
            .await
            .context("the visitors did not all connect in time")?
            .context("a load generator's progress ended")?;
        let loadgen = &loadgens[index];
        let open = open.with_context(|| format!("loadgen {index}: {}", loadgen.stderr_tail()))?;
        ensure!(
            open == loadgen.wanted,
            "loadgen {index} holds {open} of {} connections to hub{}: {}",
            loadgen.wanted,
            loadgen.hub + 1,
            loadgen.stderr_tail()
        );
        open_total += open;
    }
    ensure!(open_total == VISITORS);
    let connected_in = connecting.elapsed();
    let mut hub_cpu = 0.0;
    for (pid, before) in hub_pids.iter().zip(&hub_cpu_before) {
        hub_cpu += cpu_seconds(*pid)? - before;
    }
    let mut loadgen_cpu = 0.0;
    for loadgen in &loadgens {
        loadgen_cpu += cpu_seconds(loadgen.child.id().context("a load generator exited")?)?;
    }
    println!(
        "connecting: {:.0} s, the hubs used {hub_cpu:.0} CPU-seconds ({:.0} connections per hub CPU-second), the load generators {loadgen_cpu:.0}",
        connected_in.as_secs_f64(),
        VISITORS as f64 / hub_cpu
    );
    for (index, loadgen) in loadgens.iter().enumerate() {
        let fds = loadgen
            .child
            .id()
            .context("a load generator exited")
            .and_then(proc_sample)?
            .fds;
        println!(
            "loadgen {index} → hub{}: {} connections, {fds} open files",
            loadgen.hub + 1,
            loadgen.wanted
        );
    }

    tokio::time::sleep(HOLD).await;
    // Each hub counts its share as open visitor connections.
    for hub in 0..HUBS {
        let addr = addrs[hub];
        let wanted = per_hub[hub] as f64;
        eventually(
            &format!("hub{} counts {wanted} visitors", hub + 1),
            Duration::from_secs(30),
            || async move {
                let open = metric(addr, "salam_connections{kind=\"visitor\"}").await?;
                ensure!(open == wanted, "hub{} counts {open}", hub + 1);
                Ok(Some(()))
            },
        )
        .await?;
    }

    // A chat across two hubs while they hold them: a visitor on hub1, the agent on hub2.
    let mut agent = agent_session(addrs[1], &agents[0].token).await?;
    let mut visitor = visitor_session(addrs[0], ORIGIN, &site.key, None).await?;
    let text = "hello from hub1 to hub2";
    visitor
        .send_json(&json!({"type": "send", "client_id": "scale-1", "text": text}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = ack else {
        bail!("not an ack: {ack:?}");
    };
    let mut watching = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        ensure!(
            Instant::now() < deadline,
            "the agent on hub2 never received the message"
        );
        match agent.recv().await? {
            ServerFrame::Message(message)
                if message.conversation == conversation && message.text == text =>
            {
                break;
            }
            ServerFrame::Conversation {
                conversation: summary,
            } if summary.id == conversation
                && summary.state == ConversationState::Assigned
                && !watching =>
            {
                agent.watch(&conversation, 0).await?;
                watching = true;
            }
            _ => {}
        }
    }

    let mut rss = Vec::new();
    for hub in 0..HUBS {
        let sample = cluster.hub(hub).sample()?;
        let grown = sample.rss_kib.saturating_sub(baseline[hub]);
        println!(
            "hub{}: {} idle visitors, RSS {:.1} MiB ({:.1} MiB before them, {:.1} KiB per connection), {} open files",
            hub + 1,
            per_hub[hub],
            sample.rss_kib as f64 / 1024.0,
            baseline[hub] as f64 / 1024.0,
            grown as f64 / per_hub[hub] as f64,
            sample.fds
        );
        rss.push(sample.rss_kib);
    }

    // Released: no connection was dropped while held.
    let mut lost = 0;
    let mut failed = 0;
    let mut opened = 0;
    for loadgen in loadgens {
        let report = loadgen.finish().await?;
        lost += report["lost"].as_u64().context("no lost in the report")?;
        opened += report["setup"]["opened"]
            .as_u64()
            .context("no opened in the report")?;
        for step in report["steps"].as_array().context("no steps")? {
            failed += step["failed"].as_u64().context("no failed in a step")?;
        }
    }
    ensure!(
        opened == VISITORS as u64 && failed == 0 && lost == 0,
        "{opened} opened, {failed} failed, {lost} dropped while held"
    );
    for hub in 0..HUBS {
        ensure!(cluster.hub(hub).is_running(), "hub{} died", hub + 1);
    }
    println!(
        "{VISITORS} idle visitors connected in {:.0} s ({:.0}/s), held {HOLD:?}; whole test {:.0} s; RSS of the hubs together {:.0} MiB",
        connected_in.as_secs_f64(),
        VISITORS as f64 / connected_in.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        rss.iter().sum::<u64>() as f64 / 1024.0
    );
    Ok(())
}
