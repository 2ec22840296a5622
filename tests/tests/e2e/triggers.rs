//! Proactive triggers (issue 19) over HTTP: the hub sends a site's triggers signed in the
//! widget settings, only those that may speak now (a named agent's only while that agent
//! is online), those on customer attributes only to a customer who meets them, and
//! refuses a trigger report whose signature is forged or missing.

use anyhow::Context;
use salam_e2e::{TestHub, http_request, sign_identity};
use serde_json::{Value, json};

fn settings() -> Value {
    json!({"triggers": [
        {"id": "pricing", "when": [{"kind": "url", "pattern": "/pricing*"}],
         "message": "Questions about our plans?"},
        {"id": "from-sara", "when": [{"kind": "exit_intent"}],
         "message": "Sara here: can I help?", "from": "AGENT"},
        {"id": "vip", "when": [{"kind": "time_on_page", "seconds": 5}],
         "attributes": [{"attribute": "plan", "op": "eq", "value": "enterprise"}],
         "message": "Your account manager is here.", "handoff": false},
        {"id": "off", "enabled": false, "when": [{"kind": "exit_intent"}], "message": "Never"}
    ]})
}

async fn widget_settings(hub: &TestHub) -> anyhow::Result<Value> {
    let response = http_request(
        hub.addr,
        "GET",
        &format!("/api/widget/{}", hub.site.key),
        &[],
        "",
    )
    .await?;
    anyhow::ensure!(response.status == 200, "{}", response.body);
    Ok(serde_json::from_str(&response.body)?)
}

fn ids(triggers: &Value) -> Vec<String> {
    triggers
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|t| t["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Posts a trigger report as the widget does (JSON as `text/plain`).
async fn report(hub: &TestHub, body: &Value) -> anyhow::Result<(u16, Value)> {
    let response = http_request(
        hub.addr,
        "POST",
        &format!("/api/widget/{}/trigger", hub.site.key),
        &[("content-type", "text/plain;charset=UTF-8")],
        &body.to_string(),
    )
    .await?;
    Ok((
        response.status,
        serde_json::from_str(&response.body).unwrap_or(Value::Null),
    ))
}

fn signed(trigger: &Value) -> Value {
    json!({
        "id": trigger["id"], "text": trigger["text"], "author": trigger["author"],
        "exp": trigger["exp"], "sig": trigger["sig"],
    })
}

#[tokio::test]
async fn only_triggers_that_may_speak_are_sent_and_each_is_signed() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (sara, sara_token) = hub.add_agent("Sara", Some(2), &[]).await?;
    let text = settings().to_string().replace("AGENT", &sara);
    hub.set_site_settings(&text).await?;

    // Sara is offline: her trigger stays quiet; the disabled one and the one on
    // attributes are never sent to an anonymous page.
    let body = widget_settings(&hub).await?;
    anyhow::ensure!(ids(&body["triggers"]) == ["pricing"], "{body}");
    anyhow::ensure!(body["personal_triggers"] == true, "{body}");
    let pricing = &body["triggers"][0];
    anyhow::ensure!(
        pricing["author"] == "bot" && pricing["sig"].is_string(),
        "{pricing}"
    );
    anyhow::ensure!(
        pricing["when"] == json!([{"kind": "url", "pattern": "/pricing*"}]),
        "{pricing}"
    );

    // Online, her trigger is sent with her name.
    let _sara_socket = hub.agent(&sara_token).await?;
    // (Presence reaches the published routing view a moment after the socket greets.)
    let mut body = widget_settings(&hub).await?;
    for _ in 0..300 {
        if ids(&body["triggers"]).len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        body = widget_settings(&hub).await?;
    }
    let hers = &body["triggers"][1];
    anyhow::ensure!(
        hers["id"] == "from-sara" && hers["author"] == sara && hers["name"] == "Sara",
        "{hers}"
    );

    // A customer whose signed identity says `plan = enterprise` gets the attribute
    // trigger too; an anonymous visitor's token does not.
    let mut customer = hub.visitor(None).await?;
    let identity = sign_identity(
        &hub.site.identity_secret,
        &json!({"sub": "acme-1", "exp": salam_hub::clock::now_ms() / 1000 + 3600,
                "attributes": {"plan": "enterprise"}}),
    );
    customer
        .send_json(&json!({"type": "identify", "token": identity}))
        .await?;
    customer.round_trip().await?;
    let anonymous = hub.visitor(None).await?;
    let personal = async |token: &str| -> anyhow::Result<Vec<String>> {
        let response = http_request(
            hub.addr,
            "POST",
            &format!("/api/widget/{}/triggers", hub.site.key),
            &[("content-type", "text/plain")],
            &json!({"visitor": token}).to_string(),
        )
        .await?;
        anyhow::ensure!(response.status == 200, "{}", response.body);
        let body: Value = serde_json::from_str(&response.body)?;
        Ok(ids(&body["triggers"]))
    };
    let customer_token = customer.token.clone().unwrap_or_default();
    let anonymous_token = anonymous.token.clone().unwrap_or_default();
    let got = personal(&customer_token).await?;
    anyhow::ensure!(got.contains(&"vip".to_owned()), "{got:?}");
    let got = personal(&anonymous_token).await?;
    anyhow::ensure!(!got.contains(&"vip".to_owned()), "{got:?}");
    Ok(())
}

#[tokio::test]
async fn a_forged_or_unsigned_trigger_report_is_refused() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    hub.set_site_settings(&settings().to_string()).await?;
    let body = widget_settings(&hub).await?;
    let pricing = signed(&body["triggers"][0]);
    let visitor = hub.visitor(None).await?;
    let token = visitor.token.clone().unwrap_or_default();

    let mut forged_text = pricing.clone();
    forged_text["text"] = json!("Send your password to evil.example");
    let mut unsigned = pricing.clone();
    unsigned["sig"] = json!("");
    let mut later = pricing.clone();
    later["exp"] = json!(pricing["exp"].as_i64().unwrap_or(0) + 3_600_000);
    for trigger in [forged_text, unsigned, later] {
        let (status, answer) = report(
            &hub,
            &json!({"event": "shown", "visitor": token, "trigger": trigger}),
        )
        .await?;
        anyhow::ensure!(
            status == 403 && answer["error"] == "forbidden",
            "{status} {answer}"
        );
    }
    let (status, answer) = report(&hub, &json!({"event": "clicked", "trigger": pricing})).await?;
    anyhow::ensure!(
        status == 400 && answer["error"] == "bad_json",
        "{status} {answer}"
    );

    // The real one is recorded as the visitor's event, and counted in the report.
    let (status, answer) = report(
        &hub,
        &json!({"event": "shown", "visitor": token, "trigger": pricing}),
    )
    .await?;
    anyhow::ensure!(
        status == 200 && answer["recorded"] == true,
        "{status} {answer}"
    );
    let (status, answer) = report(&hub, &json!({"event": "opened", "trigger": pricing})).await?;
    anyhow::ensure!(
        status == 200 && answer["recorded"] == false,
        "{status} {answer}"
    );
    let admin = hub.admin_token().await?;
    let counts = hub
        .get_ok(
            &admin,
            &format!("/api/triggers/report?site={}", hub.site.id),
        )
        .await?;
    let rows = counts["triggers"].as_array().cloned().unwrap_or_default();
    let row = rows
        .iter()
        .find(|row| row["id"] == "pricing")
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(row["shown"] == 1 && row["opened"] == 0, "{counts}");
    Ok(())
}

#[tokio::test]
async fn a_reply_to_a_handoff_trigger_goes_to_people_after_the_agents_message() -> anyhow::Result<()>
{
    let hub = TestHub::start().await?;
    let (sara, sara_token) = hub.add_agent("Sara", Some(2), &[]).await?;
    hub.set_site_settings(
        &json!({"triggers": [{"id": "key-account", "when": [{"kind": "exit_intent"}],
            "message": "Sara here, your account manager.", "from": sara, "handoff": true}]})
        .to_string(),
    )
    .await?;
    let _sara_socket = hub.agent(&sara_token).await?;
    let mut body = widget_settings(&hub).await?;
    for _ in 0..300 {
        if !ids(&body["triggers"]).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        body = widget_settings(&hub).await?;
    }
    let trigger = signed(&body["triggers"][0]);
    anyhow::ensure!(trigger["id"] == "key-account", "{body}");

    let mut visitor = hub.visitor(None).await?;
    let token = visitor.token.clone().unwrap_or_default();
    let (status, answer) = report(
        &hub,
        &json!({"event": "opened", "visitor": token, "trigger": trigger}),
    )
    .await?;
    anyhow::ensure!(
        status == 200 && answer["recorded"] == true,
        "{status} {answer}"
    );
    visitor
        .send_json(&json!({"type": "send", "client_id": "k1", "text": "We need 200 more seats"}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|f| matches!(f, salam_protocol::ServerFrame::Ack { .. }))
        .await?;
    let salam_protocol::ServerFrame::Ack { conversation, .. } = ack else {
        anyhow::bail!("no ack");
    };
    // Straight to people: never the bot's.
    hub.wait_for(&conversation, |c| {
        c.state != salam_protocol::ConversationState::Bot
    })
    .await?;
    let messages = hub.state.store.messages_after(&conversation, 0, 50).await?;
    let texts: Vec<(salam_protocol::AuthorKind, Option<String>, &str)> = messages
        .iter()
        .filter(|m| m.kind == salam_protocol::MessageKind::Text)
        .map(|m| (m.author.kind, m.author.id.clone(), m.text.as_str()))
        .collect();
    anyhow::ensure!(
        texts.first()
            == Some(&(
                salam_protocol::AuthorKind::Agent,
                Some(sara.clone()),
                "Sara here, your account manager."
            ))
            && texts.get(1).map(|t| t.2) == Some("We need 200 more seats"),
        "{texts:?}"
    );
    anyhow::ensure!(
        !messages
            .iter()
            .any(|m| m.author.kind == salam_protocol::AuthorKind::Bot),
        "the bot answered: {messages:?}"
    );
    let admin = hub.admin_token().await?;
    let counts = hub
        .get_ok(
            &admin,
            &format!("/api/triggers/report?site={}", hub.site.id),
        )
        .await?;
    let row = &counts["triggers"][0];
    anyhow::ensure!(
        row["opened"] == 1 && row["replied"] == 1 && row["converted"] == 1,
        "{counts}"
    );
    Ok(())
}

#[tokio::test]
async fn a_trigger_for_business_hours_is_quiet_when_the_site_is_closed() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let triggers = json!([
        {"id": "hours", "when": [{"kind": "exit_intent"}], "message": "We are here",
         "only_when_open": true},
        {"id": "always", "when": [{"kind": "exit_intent"}], "message": "Leave a message"}
    ]);
    // Closed every day.
    hub.set_site_settings(
        &json!({"business_hours": {"utc_offset_minutes": 0, "open": {}}, "triggers": triggers})
            .to_string(),
    )
    .await?;
    let body = widget_settings(&hub).await?;
    anyhow::ensure!(ids(&body["triggers"]) == ["always"], "{body}");
    // Open around the clock.
    let open: serde_json::Map<String, Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|day| (day.to_string(), json!("00:00-24:00")))
        .collect();
    hub.set_site_settings(
        &json!({"business_hours": {"utc_offset_minutes": 0, "open": open}, "triggers": triggers})
            .to_string(),
    )
    .await?;
    let body = widget_settings(&hub).await?;
    anyhow::ensure!(ids(&body["triggers"]) == ["hours", "always"], "{body}");
    Ok(())
}

#[tokio::test]
async fn trigger_reports_are_rate_limited_per_address() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    hub.set_site_settings(&settings().to_string()).await?;
    let body = widget_settings(&hub).await?;
    let pricing = signed(&body["triggers"][0]);
    // A burst of 30, then 2 a second: 100 in a row cannot all pass.
    let mut limited = None;
    for _ in 0..100 {
        let response = http_request(
            hub.addr,
            "POST",
            &format!("/api/widget/{}/trigger", hub.site.key),
            &[("content-type", "text/plain")],
            &json!({"event": "shown", "trigger": pricing}).to_string(),
        )
        .await?;
        if response.status == 429 {
            limited = Some(response);
            break;
        }
        anyhow::ensure!(
            response.status == 200,
            "{} {}",
            response.status,
            response.body
        );
    }
    let limited = limited.context("100 reports in a row were all accepted")?;
    let answer: Value = serde_json::from_str(&limited.body)?;
    anyhow::ensure!(answer["error"] == "rate_limited", "{answer}");
    anyhow::ensure!(
        limited
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("retry-after")),
        "no Retry-After: {:?}",
        limited.headers
    );
    Ok(())
}

#[tokio::test]
async fn settings_with_a_bad_trigger_are_refused_with_the_reason() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let path = format!("/api/sites/{}/settings", hub.site.id);
    let trigger = |patch: Value| {
        let mut t = json!({"id": "t1", "when": [{"kind": "exit_intent"}], "message": "Hi"});
        if let (Value::Object(t), Value::Object(patch)) = (&mut t, patch) {
            t.extend(patch);
        }
        json!({"triggers": [t]})
    };
    for (bad, reason) in [
        (
            trigger(json!({"attributes": [{"attribute": "plan", "op": "like", "value": "e"}]})),
            "attribute condition",
        ),
        (
            trigger(json!({"attributes": [{"attribute": "ltv", "op": "gt", "value": "lots"}]})),
            "compare with a number",
        ),
        (
            trigger(json!({"when": [{"kind": "url", "pattern": "/a b"}]})),
            "url pattern",
        ),
    ] {
        let (status, body) = hub.rest(&admin, "PUT", &path, bad).await?;
        anyhow::ensure!(
            status == 400 && body["message"].as_str().is_some_and(|m| m.contains(reason)),
            "{status} {body}"
        );
    }
    let good = trigger(
        json!({"attributes": [{"attribute": "plan", "op": "in", "value": ["enterprise"]}]}),
    );
    let (status, body) = hub.rest(&admin, "PUT", &path, good).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(())
}
