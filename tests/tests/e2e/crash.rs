//! Crash test: the hub process is killed with SIGKILL while clients send; after a
//! restart every acknowledged message is present exactly once and in order, and the
//! clients resume without a gap.

use salam_e2e::{Client, http_request, salam_binary};
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Process {
    child: Child,
    site_key: Option<String>,
    admin: Option<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or(18_181)
}

fn start(
    binary: &std::path::Path,
    data: &std::path::Path,
    addr: SocketAddr,
) -> anyhow::Result<Process> {
    let mut child = Command::new(binary)
        .args([
            "--data",
            &data.display().to_string(),
            "--listen",
            &addr.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let (mut site_key, mut email, mut password) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "hub did not start");
        let Some(line) = lines.next() else {
            anyhow::bail!("hub exited early")
        };
        let line = line?;
        if let Some(rest) = line.split("public key ").nth(1) {
            site_key = Some(rest.trim_end_matches(").").to_owned());
        }
        if let Some(rest) = line.trim().strip_prefix("e-mail:") {
            email = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.trim().strip_prefix("password:") {
            password = Some(rest.trim().to_owned());
        }
        if line.starts_with("Salam is listening") {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok(Process {
        child,
        site_key,
        admin: email.zip(password),
    })
}

/// One visitor that keeps sending; it remembers what was acknowledged.
struct Sender {
    token: String,
    conversation: Option<String>,
    next: u32,
    /// client id → seq, for every ack received.
    acked: BTreeMap<String, u64>,
    /// Sent but not (yet) acknowledged.
    pending: Vec<String>,
    last_seen: u64,
}

async fn connect(
    addr: SocketAddr,
    key: &str,
    token: Option<&str>,
) -> anyhow::Result<(Client, String)> {
    let origin = format!("http://{addr}");
    let mut client = Client::connect_visitor(addr, Some(&origin)).await?;
    let mut hello = json!({"type": "hello", "v": 1, "site": key});
    if let Some(token) = token {
        hello["token"] = json!(token);
    }
    client.send_json(&hello).await?;
    match client.recv().await? {
        ServerFrame::Welcome {
            token: Some(token), ..
        } => Ok((client, token)),
        other => anyhow::bail!("expected welcome, got {other:?}"),
    }
}

/// Sends continuously until the socket fails; returns then.
async fn send_until_broken(client: &mut Client, sender: &mut Sender) {
    loop {
        let client_id = format!("m{}", sender.next);
        sender.next += 1;
        sender.pending.push(client_id.clone());
        let mut frame =
            json!({"type": "send", "client_id": client_id, "text": format!("message {client_id}")});
        if let Some(conversation) = &sender.conversation {
            frame["conversation"] = json!(conversation);
        }
        if client.send_json(&frame).await.is_err() {
            return;
        }
        // Wait for this message's ack (other frames are our own deliveries).
        loop {
            match client.recv().await {
                Ok(ServerFrame::Ack {
                    client_id: acked,
                    conversation,
                    seq,
                    ..
                }) => {
                    sender.conversation = Some(conversation);
                    sender.pending.retain(|id| *id != acked);
                    sender.acked.insert(acked.clone(), seq);
                    if acked == client_id {
                        break;
                    }
                }
                Ok(ServerFrame::Message(message)) => {
                    sender.last_seen = sender.last_seen.max(message.seq)
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() -> anyhow::Result<()> {
    let binary = tokio::task::spawn_blocking(salam_binary).await??;
    let dir = tempfile::tempdir()?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    std::fs::write(
        dir.path().join("salam.toml"),
        salam_e2e::process::with_test_defaults(
            "[limits]\nrate_per_sec = 100000\nburst = 100000\n",
        )?,
    )?;
    let first = start(&binary, dir.path(), addr)?;
    let key = first.site_key.clone().expect("site key printed");
    let (email, password) = first.admin.clone().expect("admin printed");
    let mut child = first.child;

    let n_senders = 4;
    let mut handles = Vec::new();
    for _ in 0..n_senders {
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            let (mut client, token) = connect(addr, &key, None).await?;
            let mut sender = Sender {
                token,
                conversation: None,
                next: 0,
                acked: BTreeMap::new(),
                pending: Vec::new(),
                last_seen: 0,
            };
            send_until_broken(&mut client, &mut sender).await;
            anyhow::Ok(sender)
        }));
    }
    // Let them send for a while, then kill the hub mid-stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill()?; // SIGKILL
    child.wait()?;
    let mut senders = Vec::new();
    for handle in handles {
        senders.push(handle.await??);
    }
    let n_acked: usize = senders.iter().map(|s| s.acked.len()).sum();
    assert!(
        n_acked > 20,
        "only {n_acked} messages were acknowledged before the kill"
    );

    // Restart on the same data; every client resumes and resends what was pending.
    let second = start(&binary, dir.path(), addr)?;
    let mut child = second.child;
    for sender in &mut senders {
        let (mut client, _) = connect(addr, &key, Some(&sender.token)).await?;
        let conversation = sender.conversation.clone().expect("conversation");
        client
            .send_json(
                &json!({"type": "resume", "conversation": conversation, "after": sender.last_seen}),
            )
            .await?;
        let (resumed, replayed) = client
            .recv_until(|f| matches!(f, ServerFrame::Resumed { .. }))
            .await?;
        let mut expected = sender.last_seen + 1;
        for frame in &replayed {
            if let ServerFrame::Message(message) = frame {
                assert_eq!(message.seq, expected, "replay has a gap or duplicate");
                expected += 1;
            }
        }
        let ServerFrame::Resumed { last_seq, .. } = resumed else {
            unreachable!()
        };
        assert_eq!(last_seq + 1, expected);
        for client_id in sender.pending.clone() {
            client
                .send_json(&json!({"type": "send", "conversation": conversation, "client_id": client_id, "text": format!("message {client_id}")}))
                .await?;
            let (ack, _) = client
                .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
                .await?;
            let ServerFrame::Ack {
                client_id: acked,
                seq,
                ..
            } = ack
            else {
                unreachable!()
            };
            sender.acked.insert(acked, seq);
        }
    }

    // Every acknowledged message is stored exactly once, in order, with its seq.
    let login = http_request(
        addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        &json!({"email": email, "password": password}).to_string(),
    )
    .await?;
    let token: Value = serde_json::from_str(&login.body)?;
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap_or_default());
    for sender in &senders {
        let conversation = sender.conversation.clone().expect("conversation");
        // Page through the whole history.
        let mut messages: Vec<Value> = Vec::new();
        loop {
            let after = messages.len();
            let history = http_request(
                addr,
                "GET",
                &format!("/api/conversations/{conversation}/messages?after={after}&limit=1000"),
                &[("authorization", &bearer)],
                "",
            )
            .await?;
            let body: Value = serde_json::from_str(&history.body)?;
            let page = body["messages"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            messages.extend(page);
        }
        let mut by_client: HashMap<String, u64> = HashMap::new();
        for (index, message) in messages.iter().enumerate() {
            assert_eq!(
                message["seq"].as_u64(),
                Some(index as u64 + 1),
                "sequence has a gap"
            );
            if let Some(client_id) = message["client_id"].as_str() {
                assert!(
                    by_client
                        .insert(client_id.to_owned(), index as u64 + 1)
                        .is_none(),
                    "{client_id} stored twice"
                );
            }
        }
        for (client_id, seq) in &sender.acked {
            assert_eq!(
                by_client.get(client_id),
                Some(seq),
                "acknowledged {client_id} lost or moved"
            );
        }
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// The hub under a tiny open-file limit: connections beyond it fail, nothing crashes,
/// and once they close the hub serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_keeps_serving_at_the_file_limit() -> anyhow::Result<()> {
    let binary = tokio::task::spawn_blocking(salam_binary).await??;
    let dir = tempfile::tempdir()?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec '{}' --data '{}' --listen {addr}",
            binary.display(),
            dir.path().display()
        ))
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (key_sender, key_receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut key = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("public key ").nth(1) {
                key = Some(rest.trim_end_matches(").").to_owned());
            }
            if line.starts_with("Salam is listening") {
                let _ = key_sender.send(key.take());
            }
        }
    });
    let key =
        tokio::task::spawn_blocking(move || key_receiver.recv_timeout(Duration::from_secs(30)))
            .await??
            .expect("site key printed");

    // Open far more sockets than the limit allows.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_secs(3), connect(addr, &key, None)).await {
            Ok(Ok((client, _))) => held.push(client),
            _ => {
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
        }
    }
    assert!(
        refused > 0,
        "the limit was never reached ({} connections held)",
        held.len()
    );
    assert!(
        child.try_wait()?.is_none(),
        "the hub died at the file limit"
    );
    drop(held);
    // Once the sockets are gone the hub accepts and serves again.
    let mut served = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(Ok((mut client, _))) =
            tokio::time::timeout(Duration::from_secs(3), connect(addr, &key, None)).await
        {
            client
                .send_json(&json!({"type": "send", "client_id": "after", "text": "still there?"}))
                .await?;
            let (ack, _) = client
                .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
                .await?;
            served = matches!(ack, ServerFrame::Ack { .. });
            break;
        }
    }
    assert!(served, "the hub did not recover after the file limit");
    child.kill()?;
    child.wait()?;
    Ok(())
}
