//! Running the hub for years (issue 18), through its real interfaces: `salam backup` and
//! `salam restore` under write load; the retention sweep (the hub's background job and
//! `salam retention run`) with reports that keep their figures; a visitor's export and
//! erasure from the command line (down to the bytes of the database file) and the
//! admin REST API; JSON logs, SIGHUP and SIGTERM of a running `salam`; databases
//! written by earlier releases opened, migrated and served by this one.

use anyhow::{Context, Result, bail, ensure};
use salam_e2e::process::{Api, HubProcess, agent_session, eventually, visitor_session};
use salam_e2e::{Client, TestHub};
use salam_protocol::{ConversationState, ServerFrame};
use salam_store::{SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A day, in milliseconds.
const DAY_MS: i64 = 24 * 3_600_000;

/// How long a test waits for the hub to do something in the background (generous: CI
/// runs the suite's tests in parallel on two shared cores).
const WAIT: Duration = Duration::from_secs(60);

/// Runs `salam --data DATA ARGS...` and returns what it did.
async fn salam(data: &Path, args: &[&str]) -> Result<Output> {
    let binary = tokio::task::spawn_blocking(salam_e2e::salam_binary).await??;
    run_salam(&binary, data, args).await
}

/// [`salam`] with the binary already built.
async fn run_salam(binary: &Path, data: &Path, args: &[&str]) -> Result<Output> {
    Ok(tokio::process::Command::new(binary)
        .arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await?)
}

/// Standard output and error of a command, for messages.
fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("a UTF-8 path")
}

/// Waits for the `ack` of the message just sent; its conversation and sequence.
async fn ack(client: &mut Client) -> Result<(String, u64)> {
    let (frame, _) = client
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    match frame {
        ServerFrame::Ack {
            conversation, seq, ..
        } => Ok((conversation, seq)),
        _ => unreachable!("only an ack is awaited"),
    }
}

/// A visitor's whole chat with an agent: a question, the agent's reply, the agent's
/// close and the visitor's rating. Returns the conversation and the visitor id.
async fn chat(
    hub: &TestHub,
    agent: &mut Client,
    question: &str,
    reply: &str,
    score: u8,
) -> Result<(String, String)> {
    let (mut visitor, conversation) = hub.visitor_says(question).await?;
    let assigned = reply_and_close(hub, agent, &mut visitor, &conversation, reply).await?;
    visitor
        .send_json(&json!({"type": "rate", "conversation": conversation, "score": score, "comment": format!("rated {score}")}))
        .await?;
    eventually("the rating is stored", WAIT, || async {
        Ok(hub.state.store.rating(&conversation).await?.map(|_| ()))
    })
    .await?;
    Ok((conversation, assigned.visitor_id))
}

/// Once `conversation` is assigned to `agent`: the agent replies, the visitor reads
/// it, the agent closes the conversation. Returns it as it was when assigned.
async fn reply_and_close(
    hub: &TestHub,
    agent: &mut Client,
    visitor: &mut Client,
    conversation: &str,
    reply: &str,
) -> Result<salam_store::Conversation> {
    let assigned = hub
        .wait_for(conversation, |c| c.state == ConversationState::Assigned)
        .await?;
    agent.watch(conversation, 0).await?;
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": format!("r-{conversation}"), "text": reply}))
        .await?;
    visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Message(m) if m.text == reply))
        .await?;
    agent
        .send_json(&json!({"type": "close", "conversation": conversation}))
        .await?;
    hub.wait_for(conversation, |c| c.state == ConversationState::Closed)
        .await?;
    Ok(assigned)
}

/// Moves conversations (and their visitors) `by_ms` into the past, every time of theirs
/// by the same amount, so durations stay as they were. Written through a connection of
/// its own while the hub runs, as another SQLite client would.
fn backdate(database: &Path, conversations: &[String], by_ms: i64) -> Result<()> {
    let connection = rusqlite::Connection::open(database)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    for conversation in conversations {
        connection.execute(
            "UPDATE visitors SET first_seen = first_seen - ?2, last_seen = last_seen - ?2 \
             WHERE id IN (SELECT visitor_id FROM conversations WHERE id = ?1)",
            rusqlite::params![conversation, by_ms],
        )?;
        connection.execute(
            "UPDATE conversations SET created_at = created_at - ?2, updated_at = updated_at - ?2, \
             closed_at = closed_at - ?2, handed_off_at = handed_off_at - ?2, \
             first_response_at = first_response_at - ?2, queued_at = queued_at - ?2 WHERE id = ?1",
            rusqlite::params![conversation, by_ms],
        )?;
    }
    Ok(())
}

/// The figures of `/api/reports` over a range, minus the list of unanswered questions
/// (which quotes visitors, so it goes with the details).
async fn report_figures(hub: &TestHub, token: &str, from: i64, to: i64) -> Result<Value> {
    let (status, mut report) = hub
        .rest(
            token,
            "GET",
            &format!("/api/reports?from={from}&to={to}"),
            Value::Null,
        )
        .await?;
    ensure!(status == 200, "reports: {status} {report}");
    let object = report.as_object_mut().context("a report object")?;
    object.remove("unanswered");
    Ok(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_holds_every_message_acked_before_it_started() -> Result<()> {
    let hub = TestHub::start_with(|config| {
        config.limits.rate_per_sec = 100_000;
        config.limits.burst = 100_000;
        config.limits.visitor_rate_per_sec = 100_000;
        config.limits.visitor_burst = 100_000;
    })
    .await?;
    let data = hub.state.config.data.clone();
    // Built before the load starts, so the backup itself is what runs under it.
    let binary = tokio::task::spawn_blocking(salam_e2e::salam_binary).await??;
    type Acked = Vec<(Instant, String, u64, String)>;
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..6 {
        let mut visitor = hub.visitor(None).await?;
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.spawn(async move {
            let mut index = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let text = format!("load {writer}-{index}");
                visitor
                    .send_json(&json!({"type": "send", "client_id": format!("{writer}-{index}"), "text": text}))
                    .await?;
                let (conversation, seq) = ack(&mut visitor).await?;
                let at = Instant::now();
                acked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((at, conversation, seq, text));
                index += 1;
            }
            anyhow::Ok(index)
        });
    }
    eventually("300 messages acked", Duration::from_secs(120), || {
        let n_acked = acked.lock().unwrap_or_else(|p| p.into_inner()).len();
        async move { Ok((n_acked >= 300).then_some(())) }
    })
    .await?;

    let scratch = tempfile::tempdir()?;
    let copy = scratch.path().join("salam-backup.db");
    let started = Instant::now();
    let backup = run_salam(&binary, &data, &["backup", path_str(&copy)?]).await?;
    let took = started.elapsed();
    let during = acked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(at, ..)| *at > started && at.duration_since(started) < took)
        .count();
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = writers.join_next().await {
        joined??;
    }
    ensure!(backup.status.success(), "backup failed: {}", said(&backup));
    ensure!(
        said(&backup).contains("integrity check ok"),
        "the backup reports its check: {}",
        said(&backup)
    );
    println!(
        "backup under load: {} ms for `salam backup` (process, copy, check), {during} messages acked meanwhile; {}",
        took.as_millis(),
        said(&backup).trim()
    );

    // The hub holds the database: a restore over it is refused.
    let refused = salam(&data, &["restore", path_str(&copy)?]).await?;
    ensure!(
        !refused.status.success(),
        "a restore under a running hub must be refused"
    );
    ensure!(said(&refused).contains("in use"), "{}", said(&refused));

    // Restored on another machine (directory), every acknowledged message is there.
    let fresh = scratch.path().join("restored");
    std::fs::create_dir_all(&fresh)?;
    let restore = salam(&fresh, &["restore", path_str(&copy)?]).await?;
    ensure!(
        restore.status.success(),
        "restore failed: {}",
        said(&restore)
    );
    let restored = SqliteStore::open(&fresh.join("salam.db"), SqliteOptions::default())?;
    let before: Acked = acked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(at, ..)| *at < started)
        .cloned()
        .collect();
    ensure!(before.len() >= 300);
    for (_, conversation, seq, text) in &before {
        let found = restored.messages_after(conversation, seq - 1, 1).await?;
        ensure!(
            found
                .first()
                .is_some_and(|message| message.seq == *seq && &message.text == text),
            "message {seq} of {conversation} ({text:?}), acked before the backup, is not in the restored copy: {found:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_job_deletes_old_conversations_and_reports_keep_their_figures() -> Result<()>
{
    let hub = TestHub::start_with(|config| config.retention.interval_secs = 1).await?;
    let database = hub.state.config.database_path();
    let admin = hub.admin_token().await?;
    let (_, sara) = hub.add_agent("Sara", Some(10), &[]).await?;
    let mut agent = hub.agent(&sara).await?;
    let mut old = Vec::new();
    let mut old_visitors = Vec::new();
    for (index, score) in [5, 2, 4].into_iter().enumerate() {
        let (conversation, visitor) = chat(
            &hub,
            &mut agent,
            &format!("old question {index}"),
            &format!("old answer {index}"),
            score,
        )
        .await?;
        old.push(conversation);
        old_visitors.push(visitor);
    }
    let (recent, _) = chat(&hub, &mut agent, "recent question", "recent answer", 3).await?;
    let (mut open_visitor, open) = hub.visitor_says("still talking").await?;
    hub.wait_for(&open, |c| c.state == ConversationState::Assigned)
        .await?;
    backdate(&database, &old, 3 * DAY_MS)?;
    let (from, to) = (0, salam_hub::clock::now_ms() + DAY_MS);
    let before = report_figures(&hub, &admin, from, to).await?;
    ensure!(before["conversations"] == 5, "{before}");

    // One day of retention: the three old conversations go, in the background.
    let (status, body) = hub
        .rest(
            &admin,
            "PUT",
            &format!("/api/sites/{}/settings", hub.site.id),
            json!({"bot": false, "retention_days": 1}),
        )
        .await?;
    ensure!(status == 200, "settings: {status} {body}");
    // The old conversations go, and so do their visitors (nothing of theirs is left).
    eventually(
        "the old conversations and visitors are deleted",
        WAIT,
        || async {
            for conversation in &old {
                if hub.state.store.conversation(conversation).await?.is_some() {
                    return Ok(None);
                }
            }
            for visitor in &old_visitors {
                if hub.state.store.visitor(visitor).await?.is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    for conversation in [&recent, &open] {
        ensure!(
            hub.state.store.conversation(conversation).await?.is_some(),
            "{conversation} is not old enough to go"
        );
    }
    for conversation in &old {
        ensure!(
            hub.state
                .store
                .messages_after(conversation, 0, 10)
                .await?
                .is_empty()
        );
        ensure!(hub.state.store.rating(conversation).await?.is_none());
    }
    let after = report_figures(&hub, &admin, from, to).await?;
    ensure!(
        after == before,
        "the reports changed when the details went:\nbefore {before}\nafter  {after}"
    );
    let (_, audit) = hub
        .rest(&admin, "GET", "/api/admin/audit", Value::Null)
        .await?;
    ensure!(
        audit["entries"]
            .as_array()
            .is_some_and(|entries| entries.iter().any(|entry| {
                entry["action"] == "retention.delete"
                    && entry["subject"] == hub.site.id.as_str()
                    && entry["detail"]["conversations"] == 3
            })),
        "the audit log says what the sweep deleted: {audit}"
    );
    // The open conversation goes on as before.
    open_visitor
        .send_json(&json!({"type": "send", "client_id": "later", "text": "still here"}))
        .await?;
    ensure!(ack(&mut open_visitor).await?.0 == open);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salam_retention_run_sweeps_when_the_hub_leaves_it_to_a_timer() -> Result<()> {
    let hub = TestHub::start_with(|config| config.retention.enabled = false).await?;
    let data = hub.state.config.data.clone();
    let (_, sara) = hub.add_agent("Sara", Some(10), &[]).await?;
    let mut agent = hub.agent(&sara).await?;
    let (old, _) = chat(&hub, &mut agent, "an old question", "an old answer", 4).await?;
    let (kept, _) = chat(&hub, &mut agent, "a new question", "a new answer", 4).await?;
    backdate(
        &hub.state.config.database_path(),
        std::slice::from_ref(&old),
        40 * DAY_MS,
    )?;
    hub.set_site_settings(r#"{"bot": false, "retention_days": 30}"#)
        .await?;
    let run = salam(&data, &["retention", "run"]).await?;
    ensure!(run.status.success(), "{}", said(&run));
    ensure!(
        said(&run).contains("deleted 1 conversations"),
        "{}",
        said(&run)
    );
    ensure!(hub.state.store.conversation(&old).await?.is_none());
    ensure!(hub.state.store.conversation(&kept).await?.is_some());
    Ok(())
}

/// Text only Layla wrote or was written for her: none of it may survive her erasure.
const LAYLA_TEXT: &str = "quokka marmalade order 4411";
const LAYLA_EMAIL: &str = "layla.quokka@example.test";
const LAYLA_NAME: &str = "Layla Quokkawati";
const LAYLA_CUSTOMER: &str = "customer-quokka-77";
const LAYLA_COMMENT: &str = "quokka comment: far too slow";
const LAYLA_CALLBACK: &str = "quokka callback about 4411 please";
const LAYLA_PHONE: &str = "+98 912 555 4411";
const SARA_REPLY: &str = "quokka reply: it ships today";
/// Omar's text stays: it shows the scan reads the file.
const OMAR_TEXT: &str = "omar kept this walrus sentence";

/// Every place `needle` occurs in `haystack`.
fn occurrences(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle.as_bytes())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_visitor_leaves_nothing_in_the_database_file() -> Result<()> {
    let mut hub = TestHub::start().await?;
    hub.set_site_settings(r#"{"bot": true}"#).await?;
    let data = hub.state.config.data.clone();
    let admin = hub.admin_token().await?;
    let (_, sara) = hub.add_agent("Sara", Some(10), &[]).await?;
    let mut agent = hub.agent(&sara).await?;

    let mut layla = hub.visitor(None).await?;
    let token = salam_hub::identity::sign(
        &hub.site.identity_secret,
        &json!({"sub": LAYLA_CUSTOMER, "name": LAYLA_NAME, "email": LAYLA_EMAIL,
                "exp": salam_hub::clock::now_ms() / 1000 + 600}),
    );
    layla
        .send_json(&json!({"type": "identify", "token": token}))
        .await?;
    // Her question goes to the bot first (a bot turn quotes it), then to Sara.
    layla
        .send_json(&json!({"type": "send", "client_id": "l1", "text": LAYLA_TEXT}))
        .await?;
    let (conversation, _) = ack(&mut layla).await?;
    layla
        .send_json(&json!({"type": "send", "client_id": "l2", "text": "talk to a person please"}))
        .await?;
    ack(&mut layla).await?;
    reply_and_close(&hub, &mut agent, &mut layla, &conversation, SARA_REPLY).await?;
    // A low score with a comment (the admins' alert quotes it) and a callback.
    layla
        .send_json(&json!({"type": "rate", "conversation": conversation, "score": 1, "comment": LAYLA_COMMENT}))
        .await?;
    layla
        .send_json(&json!({"type": "contact", "conversation": conversation, "name": LAYLA_NAME, "email": LAYLA_EMAIL, "phone": LAYLA_PHONE, "message": LAYLA_CALLBACK}))
        .await?;
    let (_omar, omar_conversation) = hub.visitor_says(OMAR_TEXT).await?;
    let sites = std::slice::from_ref(&hub.site.id);
    eventually("the alert and the callback are stored", WAIT, || async {
        let page = salam_store::Page {
            before: None,
            limit: 100,
        };
        let alerts = hub.state.store.alerts(sites, page).await?;
        let callbacks = hub.state.store.offline_requests(sites, page).await?;
        Ok(
            (alerts.iter().any(|a| a.detail.contains("quokka")) && !callbacks.is_empty())
                .then_some(()),
        )
    })
    .await?;

    // The export: one JSON document with all of it (found by e-mail in any case).
    let scratch = tempfile::tempdir()?;
    let file = scratch.path().join("layla.json");
    let export = salam(
        &data,
        &[
            "visitor",
            "export",
            "--email",
            &LAYLA_EMAIL.to_uppercase(),
            "--out",
            path_str(&file)?,
        ],
    )
    .await?;
    ensure!(export.status.success(), "{}", said(&export));
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    let visitor = &exported["visitors"][0];
    ensure!(
        exported["visitors"].as_array().map(Vec::len) == Some(1),
        "{exported}"
    );
    ensure!(
        visitor["profile"]["email"] == LAYLA_EMAIL
            && visitor["profile"]["external_id"] == LAYLA_CUSTOMER
    );
    let messages = visitor["conversations"][0]["messages"]
        .as_array()
        .context("messages")?;
    for text in [LAYLA_TEXT, SARA_REPLY] {
        ensure!(
            messages.iter().any(|m| m["text"] == text),
            "{text} is in the export"
        );
    }
    ensure!(visitor["conversations"][0]["rating"]["comment"] == LAYLA_COMMENT);
    ensure!(visitor["offline_requests"][0]["message"] == LAYLA_CALLBACK);
    // The contact her verified identity made (issue 19), with its history.
    ensure!(
        visitor["contact"]["external_id"] == LAYLA_CUSTOMER
            && visitor["contact"]["name"] == LAYLA_NAME
            && visitor["contact"]["email"] == LAYLA_EMAIL
            && visitor["contact"]["changes"].is_array(),
        "the contact is in the export: {visitor}"
    );
    let by_customer = salam(
        &data,
        &[
            "visitor",
            "export",
            "--external-id",
            LAYLA_CUSTOMER,
            "--site",
            &hub.site.key,
        ],
    )
    .await?;
    ensure!(
        by_customer.status.success() && said(&by_customer).contains(LAYLA_TEXT),
        "{}",
        said(&by_customer)
    );

    // The erasure, from the command line while the hub runs.
    let erase = salam(&data, &["visitor", "erase", "--email", LAYLA_EMAIL]).await?;
    ensure!(erase.status.success(), "{}", said(&erase));
    ensure!(said(&erase).contains("Erased v_"), "{}", said(&erase));
    let again = salam(&data, &["visitor", "erase", "--email", LAYLA_EMAIL]).await?;
    ensure!(
        !again.status.success() && said(&again).contains("no visitor matches"),
        "{}",
        said(&again)
    );
    let (_, audit) = hub
        .rest(&admin, "GET", "/api/admin/audit", Value::Null)
        .await?;
    let entries = audit["entries"].as_array().context("entries")?;
    for action in ["visitor.export", "visitor.erase"] {
        ensure!(
            entries.iter().any(|e| e["action"] == action
                && e["actor"].as_str().is_some_and(|a| a.starts_with("cli:"))),
            "{action} is in the audit log: {audit}"
        );
    }
    ensure!(
        !audit.to_string().contains("quokka"),
        "the audit log quotes nobody: {audit}"
    );
    // The conversation is gone from the console's search and the reports' question list.
    let (_, found) = hub
        .rest(
            &admin,
            "GET",
            "/api/conversations?state=closed&q=quokka",
            Value::Null,
        )
        .await?;
    ensure!(
        found["conversations"].as_array().is_some_and(Vec::is_empty),
        "{found}"
    );
    let (_, report) = hub
        .rest(&admin, "GET", "/api/reports?from=0", Value::Null)
        .await?;
    ensure!(!report.to_string().contains("quokka"), "{report}");

    // Down to the bytes: after a checkpoint and a VACUUM, neither the database file nor
    // its WAL holds any of it.
    hub.shutdown().await?;
    let database = data.join("salam.db");
    {
        let connection = rusqlite::Connection::open(&database)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        connection.execute_batch("VACUUM")?;
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let mut bytes = std::fs::read(&database)?;
    let wal = data.join("salam.db-wal");
    if wal.exists() {
        bytes.extend(std::fs::read(&wal)?);
    }
    ensure!(
        occurrences(&bytes, OMAR_TEXT) > 0,
        "the scan reads the file: Omar's text is there"
    );
    ensure!(
        hub.state
            .store
            .conversation(&omar_conversation)
            .await?
            .is_some()
    );
    for secret in [
        LAYLA_TEXT,
        LAYLA_EMAIL,
        LAYLA_NAME,
        LAYLA_CUSTOMER,
        LAYLA_COMMENT,
        LAYLA_CALLBACK,
        LAYLA_PHONE,
        SARA_REPLY,
        "quokka",
    ] {
        ensure!(
            occurrences(&bytes, secret) == 0,
            "{secret:?} is still in the database file after the erasure"
        );
    }
    Ok(())
}

/// A REST call that must answer `status`; the body.
async fn expect(
    hub: &TestHub,
    token: &str,
    (method, path, body): (&str, &str, Value),
    status: u16,
) -> Result<Value> {
    let (answered, body) = hub.rest(token, method, path, body).await?;
    ensure!(
        answered == status,
        "{method} {path}: {answered}, not {status}: {body}"
    );
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_export_and_erase_visitors_over_rest_and_open_chats_close_first() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    // One chat at a time: the next visitor gets Sara only once the erasure freed her.
    let (_, sara) = hub.add_agent("Sara", Some(1), &[]).await?;
    let mut agent = hub.agent(&sara).await?;
    let (mut visitor, conversation) = hub.visitor_says("please forget me").await?;
    let found = hub
        .wait_for(&conversation, |c| c.state == ConversationState::Assigned)
        .await?;
    let export = format!("/api/admin/visitors/export?visitor={}", found.visitor_id);
    let export = || ("GET", export.as_str(), Value::Null);
    let erase = || {
        let body = json!({"visitor": found.visitor_id});
        ("POST", "/api/admin/visitors/erase", body)
    };
    // Admins only; exactly one way of naming the visitor; nobody is 404.
    expect(&hub, &sara, export(), 403).await?;
    expect(&hub, &sara, erase(), 403).await?;
    let unnamed = ("GET", "/api/admin/visitors/export", Value::Null);
    expect(&hub, &admin, unnamed, 400).await?;
    let nobody = (
        "GET",
        "/api/admin/visitors/export?email=nobody@example.test",
        Value::Null,
    );
    expect(&hub, &admin, nobody, 404).await?;

    let exported = expect(&hub, &admin, export(), 200).await?;
    ensure!(exported["format"] == "salam-visitor-export/1");
    let first = &exported["visitors"][0]["conversations"][0]["messages"][0];
    ensure!(first["text"] == "please forget me", "{exported}");

    // The conversation is open and assigned: the erasure closes it first.
    let erased = expect(&hub, &admin, erase(), 200).await?;
    ensure!(erased["erased"]["total"]["conversations"] == 1, "{erased}");
    let closed = |frame: &ServerFrame| matches!(frame, ServerFrame::State { conversation: c, state: ConversationState::Closed, .. } if *c == conversation);
    visitor
        .recv_until(closed)
        .await
        .context("the visitor's widget sees the conversation close")?;
    agent
        .recv_until(closed)
        .await
        .context("the agent sees it close")?;
    ensure!(hub.state.store.conversation(&conversation).await?.is_none());
    expect(&hub, &admin, export(), 404).await?;
    let audit = ("GET", "/api/admin/audit?limit=5", Value::Null);
    let audit = expect(&hub, &admin, audit, 200).await?;
    let entry = &audit["entries"][0];
    ensure!(
        entry["action"] == "visitor.erase" && entry["subject"] == found.visitor_id.as_str(),
        "{audit}"
    );
    ensure!(
        entry["actor"]
            .as_str()
            .is_some_and(|actor| actor.starts_with("agent:") && actor.contains(&hub.admin_email)),
        "the audit log names the admin: {audit}"
    );
    // Sara's one slot is free again: routing heard of the close.
    let (_, next) = hub.visitor_says("a new visitor").await?;
    hub.wait_for(&next, |c| c.state == ConversationState::Assigned)
        .await?;
    Ok(())
}

/// A `salam serve` process whose log is JSON, read line by line.
struct JsonLoggingHub {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<Value>,
}

impl JsonLoggingHub {
    /// Waits for a log line for which `want` holds; every line must be a JSON object
    /// with a timestamp and a level.
    async fn wait_for(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Result<Value> {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
                .await
                .with_context(|| {
                    format!("no log line for {what} within 30 s; seen {:?}", self.seen)
                })?
                .with_context(|| format!("the log ended before {what}; seen {:?}", self.seen))?;
            let parsed: Value = serde_json::from_str(&line)
                .with_context(|| format!("a log line that is not JSON: {line:?}"))?;
            ensure!(
                parsed["timestamp"].is_string() && parsed["level"].is_string(),
                "a log line without timestamp or level: {line}"
            );
            self.seen.push(parsed.clone());
            if want(&parsed) {
                return Ok(parsed);
            }
        }
    }

    fn signal(&self, signal: rustix::process::Signal) -> Result<()> {
        let pid = self.child.id().context("the hub is running")?;
        let pid = rustix::process::Pid::from_raw(pid as i32).context("a pid")?;
        rustix::process::kill_process(pid, signal)?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_sighup_reloads_the_rules_and_sigterm_stops_gracefully() -> Result<()> {
    let binary = tokio::task::spawn_blocking(salam_e2e::salam_binary).await??;
    let scratch = tempfile::tempdir()?;
    let rules = scratch.path().join("rules");
    std::fs::create_dir_all(&rules)?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace")?;
    for entry in std::fs::read_dir(workspace.join("bot-rules"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            std::fs::copy(&path, rules.join(path.file_name().context("a name")?))?;
        }
    }
    let config = scratch.path().join("salam.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nfilter = \"info\"\nformat = \"json\"\n[bot]\nrules_dir = {rules:?}\nreload_poll_ms = 3600000\n"
        ),
    )?;
    let mut child = tokio::process::Command::new(&binary)
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(scratch.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let stderr = child.stderr.take().context("stderr")?;
    let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stderr = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = stderr.next_line().await {
            let _ = sender.send(line);
        }
    });
    loop {
        let line = tokio::time::timeout(Duration::from_secs(90), stdout.next_line())
            .await
            .context("the hub did not start")??
            .context("the hub exited before listening")?;
        if line.starts_with("Salam is listening") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let mut hub = JsonLoggingHub {
        child,
        lines,
        seen: Vec::new(),
    };

    // `systemctl reload` sends SIGHUP: the rules are read again.
    hub.signal(rustix::process::Signal::HUP)?;
    let reloaded = hub
        .wait_for("the reload", |line| line["message"] == "bot rules reloaded")
        .await?;
    ensure!(
        reloaded["level"] == "INFO" && reloaded["rules"].as_u64().is_some_and(|n| n > 10),
        "fields are top-level JSON values: {reloaded}"
    );
    // A broken rule file: the reload fails, the rules in force stay, the hub runs on.
    std::fs::write(rules.join("zz-broken.toml"), "[[rule]]\nid = \n")?;
    hub.signal(rustix::process::Signal::HUP)?;
    let refused = hub
        .wait_for("the refused reload", |line| line["level"] == "ERROR")
        .await?;
    ensure!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("zz-broken.toml")),
        "{refused}"
    );
    ensure!(
        hub.child.try_wait()?.is_none(),
        "SIGHUP must not end the hub"
    );

    // SIGTERM (`systemctl stop`, a restart): a graceful stop, exit status 0.
    hub.signal(rustix::process::Signal::TERM)?;
    hub.wait_for("the stop", |line| line["message"] == "stopped")
        .await?;
    let status = tokio::time::timeout(Duration::from_secs(30), hub.child.wait()).await??;
    ensure!(status.success(), "a graceful stop exits 0: {status}");
    Ok(())
}

/// The upgrade fixtures: databases written by earlier releases through their real
/// interfaces (see tests/fixtures/upgrade/README.md).
fn fixture(name: &str) -> Result<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upgrade");
    let database = dir.join(format!("{name}.sqlite3"));
    let description: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json")))?)?;
    ensure!(database.is_file(), "no fixture {}", database.display());
    Ok((database, description))
}

/// Opens a fixture with this release's binary and checks that everything in it is
/// served: the closed conversation's history and rating, the open one still assigned
/// to its agent, both visitors coming back with their tokens, a new message continuing
/// the sequence, reports, and the new schema's export and erasure.
async fn upgrade_from(name: &str) -> Result<()> {
    let (database, fixture) = fixture(name)?;
    let data = tempfile::tempdir()?;
    std::fs::copy(&database, data.path().join("salam.db"))?;
    let mut hub = HubProcess::start(data.path(), "[routing]\nauto_close_secs = 0\n").await?;
    let text = |key: &str| {
        fixture[key]
            .as_str()
            .map(str::to_owned)
            .context(key.to_owned())
    };
    let admin = Api::login(hub.addr, &text("admin_email")?, &text("admin_password")?).await?;
    let (closed, open) = (text("closed")?, text("open")?);

    for conversation in [&closed, &open] {
        let history: Vec<Value> = admin
            .history(conversation)
            .await?
            .into_iter()
            .map(|m| json!({"seq": m["seq"], "kind": m["kind"], "author": m["author"]["kind"], "text": m["text"]}))
            .collect();
        ensure!(
            Value::Array(history.clone()) == fixture["histories"][conversation.as_str()],
            "{name}: the history of {conversation} changed:\n{history:?}"
        );
    }
    let found = admin.get(&format!("/api/conversations/{closed}")).await?;
    ensure!(
        found["conversation"]["state"] == "closed" && found["rating"]["score"] == 2,
        "{found}"
    );
    let found = admin.get(&format!("/api/conversations/{open}")).await?;
    ensure!(
        found["conversation"]["state"] == "assigned"
            && found["conversation"]["agent"]["id"] == fixture["agent_id"],
        "{name}: the open conversation is still Sara's: {found}"
    );

    // Sara signs in and finds her chat; Omar comes back with his token and goes on.
    let sara = Api::login(hub.addr, &text("agent_email")?, &text("agent_password")?).await?;
    let mut console = agent_session(hub.addr, &sara.token).await?;
    let Some(ServerFrame::Welcome { conversations, .. }) = &console.welcome else {
        bail!("no welcome")
    };
    ensure!(
        conversations.iter().any(|c| c.id == open),
        "{name}: Sara's welcome lists {open}"
    );
    let (origin, site_key) = (text("origin")?, text("site_key")?);
    let mut omar =
        visitor_session(hub.addr, &origin, &site_key, Some(&text("omar_token")?)).await?;
    let Some(ServerFrame::Welcome { conversations, .. }) = &omar.welcome else {
        bail!("no welcome")
    };
    ensure!(
        conversations.iter().any(|c| c.id == open),
        "{name}: Omar's welcome lists {open}"
    );
    omar.send_json(
        &json!({"type": "send", "client_id": "after-upgrade", "text": "hello after the upgrade"}),
    )
    .await?;
    let (conversation, seq) = ack(&mut omar).await?;
    let last = fixture["histories"][open.as_str()]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["seq"].as_u64())
        .context("the last sequence")?;
    ensure!(
        (conversation.as_str(), seq) == (open.as_str(), last + 1),
        "{name}: the sequence goes on"
    );
    console
        .agent_sees("hello after the upgrade")
        .await
        .with_context(|| format!("{name}: Sara gets Omar's message"))?;
    let layla = visitor_session(hub.addr, &origin, &site_key, Some(&text("layla_token")?)).await?;
    let layla_id = layla
        .token
        .as_deref()
        .and_then(|token| token.split('.').next())
        .context("Layla's id")?
        .to_owned();
    ensure!(
        text("layla_token")?.starts_with(&layla_id),
        "{name}: Layla is the same visitor"
    );

    let report = admin.get("/api/reports?from=0").await?;
    ensure!(
        report["conversations"].as_u64().is_some_and(|n| n >= 2),
        "{report}"
    );
    // What the new schema added works on the old data.
    let export = admin
        .get(&format!("/api/admin/visitors/export?visitor={layla_id}"))
        .await?;
    ensure!(
        export["visitors"][0]["offline_requests"]
            .as_array()
            .is_some_and(|r| r.len() == 1),
        "{export}"
    );
    let erased = admin
        .json(
            "POST",
            "/api/admin/visitors/erase",
            Some(&json!({"visitor": layla_id})),
        )
        .await?;
    ensure!(erased["erased"]["total"]["conversations"] == 1, "{erased}");
    let report_after = admin.get("/api/reports?from=0").await?;
    ensure!(
        report_after["conversations"] == report["conversations"],
        "{report_after}"
    );
    hub.kill().await?;
    let connection = rusqlite::Connection::open(data.path().join("salam.db"))?;
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    // The version a new database gets from this build (no number written here: every
    // migration added would have to change it).
    let fresh = tempfile::tempdir()?;
    drop(salam_store::SqliteStore::open(
        &fresh.path().join("fresh.db"),
        salam_store::SqliteOptions::default(),
    )?);
    let current: i64 = rusqlite::Connection::open(fresh.path().join("fresh.db"))?.query_row(
        "PRAGMA user_version",
        [],
        |row| row.get(0),
    )?;
    ensure!(
        version == current,
        "{name}: migrated to schema {version}, not the current {current}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_v1_database_from_an_earlier_release_upgrades() -> Result<()> {
    upgrade_from("schema-v1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_v2_database_from_an_earlier_release_upgrades() -> Result<()> {
    upgrade_from("schema-v2").await
}
