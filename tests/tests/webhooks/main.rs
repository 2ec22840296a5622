//! Webhooks end to end (issue 17): the real `salam` binary, real WebSocket clients, a
//! real SQLite file and a real HTTP receiver ([`receiver`]) that checks every
//! signature with the documented algorithm and fails on purpose.
//!
//! Checked: the signature verifies (and with both secrets during a rotation); a failing
//! delivery is retried with the same event id and body until it is delivered, and a
//! conversation's later event waits for it; notes reach only the endpoints that ask;
//! an endpoint that keeps failing is disabled with an admin alert (an `alert.created`
//! for the other endpoints); a delivery cut short by SIGKILL is delivered after the
//! restart with the same event id; a delivery is sent again by hand.

use salam_e2e::webhook_receiver as receiver;

use anyhow::{Context, Result, ensure};
use receiver::{Receiver, Request};
use salam_e2e::Client;
use salam_e2e::process::{ORIGIN, World, agent_session, eventually, visitor_session};
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::time::Duration;

/// Fast retries, so the tests do not wait long; no automatic disabling unless a test
/// asks for it.
const CONFIG: &str = r#"
[routing]
auto_close_secs = 0

[webhooks]
timeout_ms = 3000
retry_base_ms = 200
retry_max_ms = 800
poll_ms = 100
max_attempts = 100
disable_after_failures = 100000
disable_after_secs = 0
"#;

/// Generous: a debug build on a shared two-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// Creates an endpoint for `receiver`; returns its id and secret (and tells the
/// receiver the secret).
async fn endpoint(
    world: &World,
    receiver: &Receiver,
    events: &[&str],
    include_notes: bool,
) -> Result<(String, String)> {
    let created = world
        .admin
        .json(
            "POST",
            &format!("/api/sites/{}/webhooks", world.site.id),
            Some(&json!({"url": receiver.url(), "events": events, "include_notes": include_notes})),
        )
        .await?;
    let id = created["endpoint"]["id"]
        .as_str()
        .context("endpoint id")?
        .to_owned();
    let secret = created["secret"].as_str().context("secret")?.to_owned();
    ensure!(secret.starts_with("whsec_"), "secret {secret}");
    receiver.set_secrets(&[&secret]);
    Ok((id, secret))
}

/// A new visitor says `text`; returns the socket and the conversation.
async fn visitor_says(world: &World, text: &str) -> Result<(Client, String)> {
    let mut visitor = visitor_session(world.hub.addr, ORIGIN, &world.site.key, None).await?;
    let (_, conversation) = say(&mut visitor, None, text).await?;
    Ok((visitor, conversation))
}

/// Sends `text` (as a visitor, or as an agent into `conversation`) and waits for its
/// acknowledgement: its sequence number and conversation.
async fn say(client: &mut Client, conversation: Option<&str>, text: &str) -> Result<(u64, String)> {
    let client_id = format!("c-{text}");
    let mut frame = json!({"type": "send", "client_id": client_id, "text": text});
    if let Some(conversation) = conversation {
        frame["conversation"] = json!(conversation);
    }
    client.send_json(&frame).await?;
    let (ack, _) = client
        .recv_until(
            |frame| matches!(frame, ServerFrame::Ack { client_id: id, .. } if *id == client_id),
        )
        .await?;
    match ack {
        ServerFrame::Ack {
            seq, conversation, ..
        } => Ok((seq, conversation)),
        _ => unreachable!("recv_until returned the ack"),
    }
}

fn message_text(request: &Request) -> &str {
    request.body["data"]["message"]["text"]
        .as_str()
        .unwrap_or("")
}

/// Waits until `receiver` has a delivered (2xx) request matching `want`.
async fn delivered(
    receiver: &Receiver,
    what: &str,
    want: impl Fn(&Request) -> bool,
) -> Result<Request> {
    eventually(what, PATIENCE, || {
        let found = receiver
            .delivered()
            .into_iter()
            .find(|request| want(request));
        async move { Ok(found) }
    })
    .await
}

async fn deliveries(world: &World, endpoint: &str) -> Result<Vec<Value>> {
    let log = world
        .admin
        .get(&format!("/api/webhooks/{endpoint}/deliveries?limit=200"))
        .await?;
    Ok(log["deliveries"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn the_receiver_verifies_the_signature_of_every_event_of_a_conversation() -> Result<()> {
    let world = World::start(CONFIG).await?;
    let receiver = Receiver::start().await?;
    // Only http(s) URLs and known events are accepted.
    for (url, events) in [
        ("ftp://hooks.example/x", json!(["message.created"])),
        ("javascript:alert(1)", json!(["message.created"])),
        (receiver.url().as_str(), json!(["message.deleted"])),
        (receiver.url().as_str(), json!([])),
    ] {
        let refused = world
            .admin
            .call(
                "POST",
                &format!("/api/sites/{}/webhooks", world.site.id),
                Some(&json!({"url": url, "events": events})),
            )
            .await?;
        ensure!(refused.status == 400, "{url} {events}: {}", refused.status);
    }
    let all = [
        "conversation.created",
        "conversation.queued",
        "conversation.assigned",
        "conversation.transferred",
        "conversation.closed",
        "message.created",
        "rating.created",
        "offline_request.created",
        "alert.created",
    ];
    let (endpoint_id, _) = endpoint(&world, &receiver, &all, false).await?;
    // The list never shows the secret.
    let listed = world
        .admin
        .get(&format!("/api/sites/{}/webhooks", world.site.id))
        .await?;
    ensure!(
        !listed.to_string().contains("whsec_"),
        "the list shows a secret: {listed}"
    );

    let (mut visitor, conversation) = visitor_says(&world, "hello webhooks").await?;
    delivered(&receiver, "conversation.created", |r| {
        r.kind() == "conversation.created"
    })
    .await?;
    let message = delivered(&receiver, "the visitor's message", |r| {
        r.kind() == "message.created" && message_text(r) == "hello webhooks"
    })
    .await?;
    ensure!(message.body["data"]["message"]["author"]["kind"] == "visitor");
    ensure!(message.body["seq"] == message.body["data"]["message"]["seq"]);
    delivered(&receiver, "conversation.queued", |r| {
        r.kind() == "conversation.queued"
    })
    .await?;
    visitor
        .send_json(&json!({"type": "close", "conversation": conversation}))
        .await?;
    delivered(&receiver, "conversation.closed", |r| {
        r.kind() == "conversation.closed"
    })
    .await?;
    visitor
        .send_json(
            &json!({"type": "rate", "conversation": conversation, "score": 1, "comment": "slow"}),
        )
        .await?;
    let rating = delivered(&receiver, "rating.created", |r| {
        r.kind() == "rating.created"
    })
    .await?;
    ensure!(rating.body["data"]["rating"]["score"] == 1);
    let alert = delivered(&receiver, "alert.created", |r| r.kind() == "alert.created").await?;
    ensure!(alert.body["data"]["alert"]["kind"] == "low_rating");

    let requests = receiver.requests();
    for request in &requests {
        ensure!(
            request.answered == 200,
            "answered {}: {:?}",
            request.answered,
            request.body
        );
        ensure!(
            request.verified == [0],
            "signature not verified: {:?}",
            request.body
        );
        ensure!(
            request.id == request.body["id"],
            "header id {} vs body",
            request.id
        );
        ensure!(request.id.starts_with("evt_"), "event id {}", request.id);
        ensure!(
            request.user_agent.starts_with("Salam-Webhooks/"),
            "{}",
            request.user_agent
        );
        ensure!(request.body["site_id"] == world.site.id.as_str());
        ensure!(request.body["created_at"].as_i64().is_some_and(|at| at > 0));
        ensure!(request.body["conversation_id"] == conversation.as_str());
    }
    // The delivery log says the same.
    let log = deliveries(&world, &endpoint_id).await?;
    ensure!(log.len() >= requests.len(), "log {log:?}");
    for entry in &log {
        ensure!(entry["status"] == "delivered", "{entry}");
        ensure!(entry["last_status"] == 200, "{entry}");
        ensure!(entry["attempts"] == 1, "{entry}");
    }
    world.assert_no_panic()
}

#[tokio::test]
async fn retries_keep_the_event_id_and_a_failing_event_holds_the_next_one() -> Result<()> {
    let world = World::start(CONFIG).await?;
    let receiver = Receiver::start().await?;
    let (endpoint_id, _) = endpoint(&world, &receiver, &["message.created"], false).await?;
    receiver.fail_next(3);
    let (mut visitor, conversation) = visitor_says(&world, "one").await?;
    say(&mut visitor, Some(&conversation), "two").await?;
    say(&mut visitor, Some(&conversation), "three").await?;
    delivered(&receiver, "the third message", |r| {
        message_text(r) == "three"
    })
    .await?;

    let requests = receiver.requests();
    // The first event failed three times, then was delivered: four requests, one id,
    // the same bytes.
    let first = &requests[0];
    ensure!(
        message_text(first) == "one",
        "first request {:?}",
        first.body
    );
    let same: Vec<&Request> = requests.iter().filter(|r| r.id == first.id).collect();
    ensure!(
        same.len() == 4,
        "{} requests for the first event",
        same.len()
    );
    ensure!(
        same.iter().all(|r| r.raw == first.raw),
        "the bytes changed between retries"
    );
    ensure!(
        same.iter().map(|r| r.answered).collect::<Vec<_>>() == [500, 500, 500, 200],
        "answers {:?}",
        same.iter().map(|r| r.answered).collect::<Vec<_>>()
    );
    // In order: no request for an event comes before every earlier event of the
    // conversation was delivered.
    for (index, request) in requests.iter().enumerate() {
        let seq = request.body["seq"].as_u64().context("seq")?;
        let earlier: std::collections::BTreeSet<&String> = requests
            .iter()
            .filter(|other| other.body["seq"].as_u64().is_some_and(|s| s < seq))
            .map(|other| &other.id)
            .collect();
        for id in earlier {
            ensure!(
                requests[..index]
                    .iter()
                    .any(|other| &other.id == id && other.answered == 200),
                "event {} (seq {seq}) was sent before event {id} was delivered",
                request.id
            );
        }
    }
    let delivered_seqs: Vec<u64> = receiver
        .delivered()
        .iter()
        .filter_map(|r| r.body["seq"].as_u64())
        .collect();
    ensure!(
        delivered_seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "delivered out of order: {delivered_seqs:?}"
    );
    // The log shows the four attempts of the first event.
    let log = deliveries(&world, &endpoint_id).await?;
    let entry = log
        .iter()
        .find(|entry| entry["event_id"] == first.id.as_str())
        .context("the first event in the log")?;
    ensure!(
        entry["attempts"] == 4 && entry["status"] == "delivered",
        "{entry}"
    );
    world.assert_no_panic()
}

#[tokio::test]
async fn notes_reach_only_the_endpoints_that_ask_for_them() -> Result<()> {
    let world = World::start(CONFIG).await?;
    let plain = Receiver::start().await?;
    let with_notes = Receiver::start().await?;
    endpoint(&world, &plain, &["message.created"], false).await?;
    endpoint(&world, &with_notes, &["message.created"], true).await?;
    let (_visitor, conversation) = visitor_says(&world, "I need a person").await?;
    let mut agent = agent_session(world.hub.addr, &world.admin.token).await?;
    agent
        .send_json(&json!({"type": "take", "conversation": conversation}))
        .await?;
    agent
        .send_json(
            &json!({"type": "send", "conversation": conversation, "client_id": "n1",
            "text": "internal only", "note": true}),
        )
        .await?;
    agent
        .recv_until(
            |frame| matches!(frame, ServerFrame::Ack { client_id, .. } if client_id == "n1"),
        )
        .await?;
    say(&mut agent, Some(&conversation), "public reply").await?;

    // Events of one conversation arrive in order: once the reply is in, a note sent
    // before it would be too.
    let reply = delivered(&plain, "the reply (plain)", |r| {
        message_text(r) == "public reply"
    })
    .await?;
    ensure!(reply.body["data"]["message"]["author"]["kind"] == "agent");
    delivered(&with_notes, "the reply (with notes)", |r| {
        message_text(r) == "public reply"
    })
    .await?;
    let note = with_notes
        .delivered()
        .into_iter()
        .find(|r| message_text(r) == "internal only")
        .context("the endpoint with include_notes got no note")?;
    ensure!(
        note.body["data"]["message"]["kind"] == "note",
        "{:?}",
        note.body
    );
    ensure!(
        !plain
            .requests()
            .iter()
            .any(|r| message_text(r) == "internal only"),
        "a note went to an endpoint without include_notes"
    );
    world.assert_no_panic()
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_disabled_with_an_alert() -> Result<()> {
    let config = CONFIG.replace(
        "disable_after_failures = 100000",
        "disable_after_failures = 3",
    );
    let world = World::start(&config).await?;
    let failing = Receiver::start().await?;
    let watcher = Receiver::start().await?;
    failing.fail_always(true);
    let (failing_id, _) = endpoint(&world, &failing, &["message.created"], false).await?;
    endpoint(&world, &watcher, &["alert.created"], false).await?;
    let (_visitor, _) = visitor_says(&world, "anyone?").await?;

    let alert = delivered(&watcher, "the alert", |r| r.kind() == "alert.created").await?;
    ensure!(
        alert.body["data"]["alert"]["kind"] == "webhook_disabled",
        "{:?}",
        alert.body
    );
    let listed = world
        .admin
        .get(&format!("/api/sites/{}/webhooks", world.site.id))
        .await?;
    let endpoint = listed["endpoints"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["id"] == failing_id.as_str()))
        .context("the failing endpoint")?;
    ensure!(endpoint["enabled"] == false, "{endpoint}");
    ensure!(endpoint["disabled_reason"] == "failing", "{endpoint}");
    ensure!(
        failing.requests().len() >= 3,
        "{} attempts",
        failing.requests().len()
    );
    let alerts = world.admin.get("/api/alerts").await?;
    ensure!(
        alerts["alerts"]
            .as_array()
            .is_some_and(|all| all.iter().any(|a| a["kind"] == "webhook_disabled")),
        "no alert for admins: {alerts}"
    );
    // Enabling it again clears the failures.
    let enabled = world
        .admin
        .json(
            "PATCH",
            &format!("/api/webhooks/{failing_id}"),
            Some(&json!({"enabled": true})),
        )
        .await?;
    ensure!(
        enabled["endpoint"]["enabled"] == true && enabled["endpoint"]["consecutive_failures"] == 0
    );
    world.assert_no_panic()
}

#[tokio::test]
async fn a_delivery_cut_by_sigkill_is_delivered_after_the_restart() -> Result<()> {
    let data = tempfile::tempdir()?;
    let config = CONFIG.replace("timeout_ms = 3000", "timeout_ms = 120000");
    let mut world = World::start_on(data.path(), &config).await?;
    let receiver = Receiver::start().await?;
    endpoint(&world, &receiver, &["message.created"], false).await?;
    receiver.stall(true);
    let (_visitor, _) = visitor_says(&world, "before the crash").await?;
    // The hub is mid-delivery: the receiver holds the request and does not answer.
    let stalled = eventually("the stalled request", PATIENCE, || {
        let found = receiver
            .requests()
            .into_iter()
            .find(|r| message_text(r) == "before the crash");
        async move { Ok(found) }
    })
    .await?;
    ensure!(stalled.answered == 0);
    world.hub.kill().await?;
    receiver.stall(false);
    world.hub.restart().await?;
    let after = delivered(&receiver, "the event after the restart", |r| {
        r.id == stalled.id
    })
    .await?;
    ensure!(
        after.raw == stalled.raw,
        "the body changed across the restart"
    );
    ensure!(after.verified == [0], "signature after the restart");
    world.assert_no_panic()
}

/// The crash window between a message's commit and its event's: the outbox job of an
/// event fails here (a trigger refuses the outbox row, as a SIGKILL between the two
/// commits would leave it: the message committed, its event nowhere), the hub is
/// killed, and after the restart the event is delivered all the same, because the
/// message's own transaction left a mark in `webhook_pending`.
#[tokio::test]
async fn a_message_whose_event_missed_the_outbox_is_delivered_after_a_restart() -> Result<()> {
    let data = tempfile::tempdir()?;
    let mut world = World::start_on(data.path(), CONFIG).await?;
    let receiver = Receiver::start().await?;
    endpoint(&world, &receiver, &["message.created"], false).await?;
    let (mut visitor, conversation) = visitor_says(&world, "before the window").await?;
    delivered(&receiver, "the first message", |r| {
        message_text(r) == "before the window"
    })
    .await?;
    let database = data.path().join("salam.db");
    let outside = rusqlite::Connection::open(&database)?;
    outside.busy_timeout(Duration::from_secs(10))?;
    outside.execute_batch(
        "CREATE TRIGGER lose_the_event BEFORE INSERT ON webhook_deliveries \
         BEGIN SELECT RAISE(ABORT, 'the crash window'); END;",
    )?;
    let (_, same) = say(&mut visitor, Some(&conversation), "lost in the window").await?;
    ensure!(same == conversation);
    // The message is committed (acknowledged) and its event is not in the outbox.
    let outbox: i64 = outside.query_row(
        "SELECT count(*) FROM webhook_deliveries WHERE body LIKE '%lost in the window%'",
        [],
        |row| row.get(0),
    )?;
    ensure!(outbox == 0, "the trigger let the event into the outbox");
    world.hub.kill().await?;
    outside.execute_batch("DROP TRIGGER lose_the_event;")?;
    drop(outside);
    world.hub.restart().await?;
    let after = delivered(&receiver, "the event after the restart", |r| {
        message_text(r) == "lost in the window"
    })
    .await?;
    ensure!(after.verified == [0], "signature after the restart");
    ensure!(after.body["conversation_id"] == conversation.as_str());
    // Its mark is gone once the event is in the outbox: a second restart sends nothing new.
    world.hub.kill().await?;
    world.hub.restart().await?;
    let marks: i64 = rusqlite::Connection::open(&database)?.query_row(
        "SELECT count(*) FROM webhook_pending",
        [],
        |row| row.get(0),
    )?;
    ensure!(marks == 0, "{marks} marks left after the event was queued");
    world.assert_no_panic()
}

#[tokio::test]
async fn a_delivery_is_sent_again_by_hand_with_the_same_event_id() -> Result<()> {
    let world = World::start(CONFIG).await?;
    let receiver = Receiver::start().await?;
    let (endpoint_id, _) = endpoint(&world, &receiver, &["message.created"], false).await?;
    let (_visitor, _) = visitor_says(&world, "send me twice").await?;
    let first = delivered(&receiver, "the message", |r| {
        message_text(r) == "send me twice"
    })
    .await?;
    let log = deliveries(&world, &endpoint_id).await?;
    let entry = log
        .iter()
        .find(|entry| entry["event_id"] == first.id.as_str())
        .context("the delivery in the log")?;
    let delivery_id = entry["id"].as_i64().context("delivery id")?;
    world
        .admin
        .json(
            "POST",
            &format!("/api/webhook-deliveries/{delivery_id}/redeliver"),
            None,
        )
        .await?;
    eventually("the redelivery", PATIENCE, || {
        let n = receiver
            .delivered()
            .iter()
            .filter(|r| r.id == first.id)
            .count();
        async move { Ok((n >= 2).then_some(())) }
    })
    .await?;
    let again: Vec<Request> = receiver
        .delivered()
        .into_iter()
        .filter(|r| r.id == first.id)
        .collect();
    ensure!(
        again.iter().all(|r| r.raw == first.raw),
        "redelivered bytes differ"
    );
    let log = deliveries(&world, &endpoint_id).await?;
    let entry = log
        .iter()
        .find(|entry| entry["id"] == delivery_id)
        .context("the delivery in the log")?;
    ensure!(
        entry["attempts"] == 2 && entry["status"] == "delivered",
        "{entry}"
    );
    world.assert_no_panic()
}

#[tokio::test]
async fn during_a_rotation_both_secrets_verify() -> Result<()> {
    let world = World::start(CONFIG).await?;
    let receiver = Receiver::start().await?;
    let (endpoint_id, old) = endpoint(&world, &receiver, &["message.created"], false).await?;
    let rotated = world
        .admin
        .json("POST", &format!("/api/webhooks/{endpoint_id}/rotate"), None)
        .await?;
    let new = rotated["secret"].as_str().context("new secret")?.to_owned();
    ensure!(new != old);
    ensure!(
        rotated["endpoint"]["previous_secret_valid_until"]
            .as_i64()
            .is_some()
    );
    receiver.set_secrets(&[&old, &new]);
    let (_visitor, _) = visitor_says(&world, "rotating").await?;
    let request = delivered(&receiver, "the message", |r| message_text(r) == "rotating").await?;
    ensure!(
        request.verified == [0, 1],
        "verified with {:?}",
        request.verified
    );
    world.assert_no_panic()
}

/// The receiver in docs/webhook_receiver.py, run as it is documented: it accepts the
/// hub's deliveries (the log shows its 204) and refuses a forged signature and a
/// replayed (too old) one.
#[tokio::test]
async fn the_documented_python_receiver_accepts_the_hub_and_refuses_forgeries() -> Result<()> {
    use salam_e2e::process::free_port;
    use tokio::io::AsyncBufReadExt;
    let world = World::start(CONFIG).await?;
    let port = free_port()?;
    let created = world
        .admin
        .json(
            "POST",
            &format!("/api/sites/{}/webhooks", world.site.id),
            Some(
                &json!({"url": format!("http://127.0.0.1:{port}/"), "events": ["message.created"]}),
            ),
        )
        .await?;
    let endpoint_id = created["endpoint"]["id"].as_str().context("id")?.to_owned();
    let secret = created["secret"].as_str().context("secret")?.to_owned();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/webhook_receiver.py");
    let mut python = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .env("SALAM_WEBHOOK_SECRETS", &secret)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("python3 runs the documented receiver")?;
    let mut lines = tokio::io::BufReader::new(python.stdout.take().context("stdout")?).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line())
        .await??
        .context("the receiver said nothing")?;
    ensure!(first.starts_with("listening"), "{first}");

    let (_visitor, _) = visitor_says(&world, "checked in python").await?;
    let event: Value = loop {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await??
            .context("the receiver stopped")?;
        let event: Value = serde_json::from_str(&line)?;
        if event["data"]["message"]["text"] == "checked in python" {
            break event;
        }
    };
    // The receiver prints the event before its 204 reaches the hub, and the hub logs
    // the answer after that: wait for the log.
    eventually("the 204 in the delivery log", PATIENCE, || async {
        let log = deliveries(&world, &endpoint_id).await?;
        let entry = log
            .iter()
            .find(|entry| entry["event_id"] == event["id"])
            .context("the delivery in the log")?;
        Ok((entry["last_status"] == 204 && entry["status"] == "delivered").then_some(()))
    })
    .await?;

    // A forged signature and a replay are refused.
    let body = r#"{"id":"evt_forged","type":"message.created"}"#;
    let sign = |timestamp: i64| {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("v1={hex}")
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let receiver: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for (timestamp, signature, want) in [
        (now, "v1=00".to_owned(), 401),
        (now - 3600, sign(now - 3600), 401),
        (now, sign(now), 204),
    ] {
        let timestamp = timestamp.to_string();
        let answer = salam_e2e::http_request(
            receiver,
            "POST",
            "/",
            &[
                ("Salam-Webhook-Timestamp", timestamp.as_str()),
                ("Salam-Signature", signature.as_str()),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await?;
        ensure!(
            answer.status == want,
            "{signature} at {timestamp}: {}",
            answer.status
        );
    }
    world.assert_no_panic()
}
