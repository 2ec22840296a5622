//! The bot in the hub: answers in the visitor's language, hands off, stays silent after,
//! offers a callback when nobody is there, reloads its rules.

use salam_e2e::{Client, TestHub, http_request, salam_binary};
use salam_protocol::{AuthorKind, ConversationState, ErrorCode, FormKind, Message, ServerFrame};
use serde_json::{Value, json};
use std::time::Duration;

fn bot_message(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::Message(m) if m.author.kind == AuthorKind::Bot)
}

async fn bot_reply(client: &mut Client) -> anyhow::Result<Message> {
    let (frame, _) = client.recv_until(bot_message).await?;
    let ServerFrame::Message(message) = frame else {
        unreachable!()
    };
    Ok(message)
}

async fn bot_hub() -> anyhow::Result<TestHub> {
    let hub = TestHub::start().await?;
    hub.set_site_settings(r#"{"bot": true}"#).await?;
    Ok(hub)
}

async fn get_json(hub: &TestHub, path: &str) -> anyhow::Result<Value> {
    let token = hub.admin_token().await?;
    let response = http_request(
        hub.addr,
        "GET",
        path,
        &[("authorization", &format!("Bearer {token}"))],
        "",
    )
    .await?;
    anyhow::ensure!(response.status == 200, "{path}: {}", response.status);
    Ok(serde_json::from_str(&response.body)?)
}

#[tokio::test]
async fn arabic_answer_persian_handoff_then_silence() -> anyhow::Result<()> {
    let hub = bot_hub().await?;
    let mut agent = hub.admin_agent().await?;
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "كم يستغرق توصيل الطلب؟"}))
        .await?;
    let answer = bot_reply(&mut visitor).await?;
    assert_eq!(
        salam_bot::detect_language(&answer.text),
        Some(salam_bot::Lang::Ar),
        "answered in Arabic: {}",
        answer.text
    );
    assert!(
        !answer.quick_replies.is_empty(),
        "a bot answer offers quick replies"
    );
    let conversation = answer.conversation.clone();
    assert_eq!(
        answer.rule.as_deref(),
        Some("shipping_time"),
        "bot lines name their rule"
    );

    visitor
        .send_json(
            &json!({"type": "send", "client_id": "2", "text": "میخوام با یه آدم واقعی صحبت کنم"}),
        )
        .await?;
    let handoff = bot_reply(&mut visitor).await?;
    assert_eq!(
        salam_bot::detect_language(&handoff.text),
        Some(salam_bot::Lang::Fa),
        "{}",
        handoff.text
    );
    let (state, _) = visitor
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::State {
                    state: ConversationState::Assigned,
                    ..
                }
            )
        })
        .await?;
    assert!(matches!(state, ServerFrame::State { .. }));
    // The agent was assigned and sees the whole history, the bot's part included.
    agent
        .recv_until(|f| matches!(f, ServerFrame::Conversation { conversation } if conversation.state == ConversationState::Assigned))
        .await?;

    // After the handoff the bot says nothing more.
    visitor
        .send_json(&json!({"type": "send", "client_id": "3", "text": "ساعت کاری شما چیه؟"}))
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(frame) = tokio::time::timeout_at(deadline, visitor.recv()).await {
        assert!(!bot_message(&frame?), "the bot spoke after the handoff");
    }
    let report = get_json(&hub, "/api/reports").await?;
    assert_eq!(report["handoffs_by_reason"][0][0], "requested");
    let history = get_json(&hub, &format!("/api/conversations/{conversation}/messages")).await?;
    let n_bot = history["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|m| m["author"]["kind"] == "bot")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(n_bot, 2);
    Ok(())
}

#[tokio::test]
async fn with_nobody_online_the_visitor_is_offered_a_callback() -> anyhow::Result<()> {
    let hub = bot_hub().await?;
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(
            &json!({"type": "send", "client_id": "1", "text": "I want to talk to a human please"}),
        )
        .await?;
    let (form, skipped) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Form { .. }))
        .await?;
    let ServerFrame::Form { conversation, form } = form else {
        unreachable!()
    };
    assert_eq!(form, FormKind::Contact);
    let said: Vec<String> = skipped
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) if m.author.kind == AuthorKind::Bot => Some(m.text.clone()),
            _ => None,
        })
        .collect();
    assert!(
        said.iter().any(|text| text.contains("within a few hours")),
        "the bot says when to expect a reply: {said:?}"
    );
    // A bad contact is refused; a good one is stored and confirmed.
    visitor
        .send_json(
            &json!({"type": "contact", "conversation": conversation, "email": "not-an-email"}),
        )
        .await?;
    let (error, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::BadField,
            ..
        }
    ));
    visitor
        .send_json(&json!({"type": "contact", "conversation": conversation, "name": "Layla", "email": "layla@example.com", "message": "call me about order 42"}))
        .await?;
    bot_reply(&mut visitor).await?;
    let requests = get_json(&hub, "/api/offline-requests").await?;
    assert_eq!(requests["requests"][0]["email"], "layla@example.com");
    assert_eq!(
        requests["requests"][0]["conversation"],
        conversation.as_str()
    );
    // The conversation waits in the queue for the first agent who comes online.
    let mut agent = hub.admin_agent().await?;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Conversation { conversation: c } if c.id == conversation && c.state == ConversationState::Assigned))
        .await?;
    Ok(())
}

#[tokio::test]
async fn misses_and_complaints_hand_off_and_vips_skip_the_bot() -> anyhow::Result<()> {
    let hub = bot_hub().await?;
    // Two misses in a row hand off.
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "qwzx blorf"}))
        .await?;
    bot_reply(&mut visitor).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "2", "text": "vrrk plimb"}))
        .await?;
    visitor
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::State {
                    state: ConversationState::Queued,
                    ..
                }
            )
        })
        .await?;
    // A complaint hands off with a raised priority.
    let mut angry = hub.visitor(None).await?;
    angry
        .send_json(&json!({"type": "send", "client_id": "1", "text": "This is unacceptable, I want to speak to your manager!"}))
        .await?;
    let (frame, _) = angry
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::State {
                    state: ConversationState::Queued,
                    ..
                }
            )
        })
        .await?;
    let ServerFrame::State { conversation, .. } = frame else {
        unreachable!()
    };
    let found = hub
        .state
        .store
        .conversation(&conversation)
        .await?
        .expect("stored");
    assert!(found.priority > 0, "complaints get a raised priority");
    let report = get_json(&hub, "/api/reports").await?;
    let reasons = report["handoffs_by_reason"].to_string();
    assert!(
        reasons.contains("misses") && reasons.contains("complaint"),
        "{reasons}"
    );

    // A VIP identified by the site's backend skips the bot; a forged identity is refused.
    hub.set_site_settings(r#"{"bot": true, "vip_user_ids": ["u42"]}"#)
        .await?;
    let mut vip = hub.visitor(None).await?;
    let forged = salam_hub::identity::sign(
        "not the site's secret",
        &json!({"sub": "u42", "exp": salam_hub::clock::now_ms() / 1000 + 600}),
    );
    vip.send_json(&json!({"type": "identify", "token": forged, "name": "Dana"}))
        .await?;
    let (error, _) = vip
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::Unauthorized,
            ..
        }
    ));
    let token = salam_hub::identity::sign(
        &hub.site.identity_secret,
        &json!({"sub": "u42", "name": "Dana", "exp": salam_hub::clock::now_ms() / 1000 + 600}),
    );
    vip.send_json(&json!({"type": "identify", "token": token}))
        .await?;
    vip.send_json(&json!({"type": "send", "client_id": "1", "text": "hello"}))
        .await?;
    let (frame, skipped) = vip
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::State {
                    state: ConversationState::Queued,
                    ..
                }
            )
        })
        .await?;
    assert!(
        !skipped.iter().any(bot_message) || skipped.iter().filter(|f| bot_message(f)).count() <= 1
    );
    let ServerFrame::State { conversation, .. } = frame else {
        unreachable!()
    };
    let found = hub
        .state
        .store
        .conversation(&conversation)
        .await?
        .expect("stored");
    assert_eq!(found.priority, hub.state.config.routing.vip_priority);
    let turns = hub.state.store.recent_bot_turns(&conversation, 5).await?;
    assert!(turns.is_empty(), "the bot never ran for the VIP");
    let visitor = hub
        .state
        .store
        .visitor(&found.visitor_id)
        .await?
        .expect("visitor");
    assert_eq!(visitor.external_id.as_deref(), Some("u42"));
    assert_eq!(visitor.name.as_deref(), Some("Dana"));
    Ok(())
}

/// Also (issue 15): answered but still open is not deflected yet, and the typo on which
/// the bot gave up and handed off is among the unanswered questions.
#[tokio::test]
async fn a_bot_answer_closed_by_the_visitor_counts_as_deflected() -> anyhow::Result<()> {
    let hub = bot_hub().await?;
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "what payment methods do you accept?"}))
        .await?;
    let answer = bot_reply(&mut visitor).await?;
    let report = get_json(&hub, "/api/reports").await?;
    assert_eq!(
        (&report["bot_conversations"], &report["deflected"]),
        (&json!(1), &json!(0)),
        "an open conversation is not settled yet: {report}"
    );
    visitor
        .send_json(&json!({"type": "close", "conversation": answer.conversation}))
        .await?;
    let (form, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Form { .. }))
        .await?;
    assert!(matches!(
        form,
        ServerFrame::Form {
            form: FormKind::Rating,
            ..
        }
    ));
    visitor
        .send_json(&json!({"type": "send", "client_id": "2", "text": "asdkjh qwe"}))
        .await?;
    let missed = bot_reply(&mut visitor).await?;
    let report = get_json(&hub, "/api/reports").await?;
    assert_eq!(report["deflected"], 1);
    assert_eq!(report["unanswered"][0][0], "asdkjh qwe");
    // A second miss in a row: the bot hands off on it, and it is unanswered too.
    visitor
        .send_json(
            &json!({"type": "send", "client_id": "3", "text": "waht abuot the blnder i bougt"}),
        )
        .await?;
    hub.wait_for(&missed.conversation, |c| {
        c.state == ConversationState::Queued
    })
    .await?;
    let report = get_json(&hub, "/api/reports").await?;
    assert_eq!(
        report["handoffs_by_reason"],
        json!([["misses", 1]]),
        "{report}"
    );
    let unanswered = report["unanswered"].to_string();
    assert!(
        unanswered.contains("asdkjh qwe") && unanswered.contains("waht abuot the blnder i bougt"),
        "{unanswered}"
    );
    Ok(())
}

fn copy_rules(to: &std::path::Path) -> anyhow::Result<()> {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bot-rules");
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            std::fs::copy(&path, to.join(path.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn rules_reload_on_change_and_a_broken_file_keeps_the_old_rules() -> anyhow::Result<()> {
    let rules = tempfile::tempdir()?;
    copy_rules(rules.path())?;
    let dir = rules.path().to_path_buf();
    let hub = TestHub::start_with(|config| {
        config.bot.rules_dir = dir;
        config.bot.reload_poll_ms = 100;
    })
    .await?;
    hub.set_site_settings(r#"{"bot": true}"#).await?;
    let payment = rules.path().join("payment.toml");
    let original = std::fs::read_to_string(&payment)?;
    let marker = "Marker-7731";
    let edited = original.replacen("We accept Visa", &format!("{marker}: we accept Visa"), 1);
    assert_ne!(edited, original);
    std::fs::write(&payment, &edited)?;
    let token = hub.admin_token().await?;
    let ask = || async {
        let response = http_request(
            hub.addr,
            "POST",
            "/api/rules/try",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
            &json!({"text": "which payment methods do you accept?"}).to_string(),
        )
        .await?;
        anyhow::Ok(serde_json::from_str::<Value>(&response.body)?)
    };
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let explained = ask().await?;
        if explained.to_string().contains(marker) {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the edited rule was not reloaded");
    // Break a file: the error is reported with file:line and the rules stay.
    std::fs::write(
        rules.path().join("broken.toml"),
        "[[rule]]\nid = \"x\"\nintent = \"x\"\nregex = [\"(unclosed\"]\n",
    )?;
    let mut reported = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listed = get_json(&hub, "/api/rules").await?;
        if let Some(error) = listed["last_error"].as_str() {
            reported = Some(error.to_owned());
            break;
        }
    }
    let reported = reported.expect("the broken file was reported");
    assert!(reported.contains("broken.toml:"), "{reported}");
    assert!(
        ask().await?.to_string().contains(marker),
        "the previous rules stay in force"
    );
    Ok(())
}

#[tokio::test]
async fn the_rules_cli_checks_tries_and_evaluates() -> anyhow::Result<()> {
    let binary = tokio::task::spawn_blocking(salam_binary).await??;
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::process::Command::new(&binary)
        .args(["rules", "eval", "bot-rules/eval/dev.tsv"])
        .current_dir(&workspace)
        .output()?;
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout)?;
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(first.split('\t').count(), 4, "{first}");
    assert!(String::from_utf8(output.stderr)?.contains("accuracy"));

    let output = std::process::Command::new(&binary)
        .args(["rules", "try", "--lang", "ar", "where is my order"])
        .current_dir(&workspace)
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert!(
        stdout.contains("order_tracking") && stdout.contains("language:   ar"),
        "{stdout}"
    );

    let broken = tempfile::tempdir()?;
    copy_rules(broken.path())?;
    std::fs::write(
        broken.path().join("zz.toml"),
        "[[rule]]\nid = \"greeting\"\nintent = \"dup\"\n",
    )?;
    let output = std::process::Command::new(&binary)
        .args(["rules", "check"])
        .arg(broken.path())
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout)?;
    assert!(stdout.contains("zz.toml:"), "{stdout}");
    let _ = Client::connect; // the harness is shared with the other modules
    Ok(())
}

/// Regression (issue 16): every site got the demo store's bot: on a new site it called
/// itself "Demo Store Assistant" and pointed to demo.store. A site created through the
/// API speaks for itself; the one that sets its own values gets them.
#[tokio::test]
async fn every_site_gets_a_bot_that_speaks_for_it() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let (status, created) = hub
        .rest(
            &admin,
            "POST",
            "/api/sites",
            json!({"name": "Kitchen Corner", "origins": ["https://kitchen.test"]}),
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    let site_id = created["site"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = created["site"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        created["site"]["settings"]["bot_identity"],
        json!({}),
        "{created}"
    );
    let ask = |origin: &'static str, key: String| async move {
        let mut visitor = Client::connect_visitor(hub.addr, Some(origin)).await?;
        visitor
            .send_json(&json!({"type": "hello", "v": 1, "site": key}))
            .await?;
        visitor.recv().await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "1", "text": "how can I contact you?"}))
            .await?;
        bot_reply(&mut visitor).await
    };
    let answer = ask("https://kitchen.test", key.clone()).await?;
    assert_eq!(
        answer.author.name.as_deref(),
        Some("Kitchen Corner Assistant")
    );
    for demo in ["Demo Store", "demo.store", "555"] {
        assert!(
            !answer.text.contains(demo),
            "the new site's bot speaks for the demo: {}",
            answer.text
        );
    }
    // Its own values, from the settings, apply at once.
    let (status, body) = hub
        .rest(
            &admin,
            "PUT",
            &format!("/api/sites/{site_id}/settings"),
            json!({"bot_identity": {"store_name": {"en": "Kitchen Corner Ltd"}, "email": "help@kitchen.test"}}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let answer = ask("https://kitchen.test", key).await?;
    assert_eq!(
        answer.author.name.as_deref(),
        Some("Kitchen Corner Ltd Assistant")
    );
    assert!(answer.text.contains("help@kitchen.test"), "{}", answer.text);
    // The demo pack's own identity stays the site's that never set one.
    let hub_bot = bot_hub().await?;
    let mut visitor = hub_bot.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "how can I contact you?"}))
        .await?;
    let answer = bot_reply(&mut visitor).await?;
    assert_eq!(answer.author.name.as_deref(), Some("Demo Store Assistant"));
    Ok(())
}

/// Regression (issue 16): a follow-up such as "and how much does it cost?" after a
/// delivery answer fell back; the hub now gives the bot the conversation's context.
#[tokio::test]
async fn a_follow_up_is_read_in_the_context_of_the_last_answer() -> anyhow::Result<()> {
    let hub = bot_hub().await?;
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(
            &json!({"type": "send", "client_id": "1", "text": "how long does delivery take?"}),
        )
        .await?;
    let first = bot_reply(&mut visitor).await?;
    assert_eq!(first.rule.as_deref(), Some("shipping_time"), "{first:?}");
    visitor
        .send_json(&json!({"type": "send", "client_id": "2", "text": "and how much does it cost?"}))
        .await?;
    let second = bot_reply(&mut visitor).await?;
    assert_eq!(second.rule.as_deref(), Some("shipping_cost"), "{second:?}");
    // The same question twice is a sign the bot is not helping: a person takes over.
    visitor
        .send_json(&json!({"type": "send", "client_id": "3", "text": "and how much does it cost?"}))
        .await?;
    let (state, _) = visitor
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::State {
                    state: ConversationState::Queued,
                    ..
                }
            )
        })
        .await?;
    assert!(matches!(state, ServerFrame::State { .. }));
    Ok(())
}

/// Issue 16: a rule author sees the unanswered questions grouped and teaches the bot one
/// of them as an example of a rule; the rules reload and the bot answers it.
#[tokio::test]
async fn unanswered_questions_are_grouped_and_one_click_teaches_the_bot() -> anyhow::Result<()> {
    // A copy of the default pack: the test edits its files.
    let rules = tempfile::tempdir()?;
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bot-rules");
    for entry in std::fs::read_dir(&source)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            std::fs::copy(
                &path,
                rules.path().join(path.file_name().unwrap_or_default()),
            )?;
        }
    }
    let dir = rules.path().to_path_buf();
    let hub = TestHub::start_with(move |config| config.bot.rules_dir = dir).await?;
    hub.set_site_settings(r#"{"bot": true}"#).await?;
    let question = "can you giftwrap my parcel for a birthday";
    for (index, text) in [
        question,
        "can u giftwrap my parcel for a birthday?",
        question,
    ]
    .into_iter()
    .enumerate()
    {
        let mut visitor = hub.visitor(None).await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": format!("q{index}"), "text": text}))
            .await?;
        let reply = bot_reply(&mut visitor).await?;
        assert_eq!(
            reply.rule, None,
            "the pack should not know this yet: {reply:?}"
        );
    }
    let report = get_json(&hub, "/api/reports").await?;
    let clusters = report["unanswered_clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let group = clusters
        .iter()
        .find(|c| c["text"] == question)
        .ok_or_else(|| anyhow::anyhow!("no group for the question: {report}"))?;
    assert_eq!(group["total"], 3, "{group}");
    assert_eq!(
        group["questions"].as_array().map(Vec::len),
        Some(2),
        "{group}"
    );
    assert_eq!(group["lang"], "en");
    // An agent may not edit the rules; an admin may.
    let (_, agent_token) = hub.add_agent("Sara", None, &[]).await?;
    let teach = json!({"rule": "shipping_options", "lang": "en", "text": question});
    let (status, _) = hub
        .rest(&agent_token, "POST", "/api/rules/examples", teach.clone())
        .await?;
    assert_eq!(status, 403);
    let admin = hub.admin_token().await?;
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            "/api/rules/examples",
            json!({"rule": "nope", "lang": "en", "text": question}),
        )
        .await?;
    assert_eq!(status, 404, "{body}");
    let rule_ids: Vec<String> = get_json(&hub, "/api/rules").await?["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|rule| rule["id"].as_str().map(str::to_owned))
        .collect();
    let rule = [
        "gift_wrap",
        "shipping_options",
        "shipping_time",
        "contact_info",
    ]
    .into_iter()
    .find(|id| rule_ids.iter().any(|known| known == id))
    .ok_or_else(|| anyhow::anyhow!("no rule to teach: {rule_ids:?}"))?;
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            "/api/rules/examples",
            json!({"rule": rule, "lang": "en", "text": question}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], true, "{body}");
    let file = body["file"].as_str().unwrap_or_default();
    let written = std::fs::read_to_string(rules.path().join(file))?;
    assert!(written.contains(question), "the example is in {file}");
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "again", "text": question}))
        .await?;
    let reply = bot_reply(&mut visitor).await?;
    assert_eq!(
        reply.rule.as_deref(),
        Some(rule),
        "the bot learned it: {reply:?}"
    );
    Ok(())
}
