//! Hostile review, issue 12 ("edges"), what people type: a transfer's department must
//! be one of the site's, hostile characters are cleaned from texts, notes and names,
//! and site settings and report ranges are validated. Each test pins a finding of the review and fails
//! on the code before the fix.

use salam_e2e::{Client, TestHub, error_code, http_request};
use salam_protocol::{AuthorKind, ErrorCode, MessageKind, ServerFrame};
use serde_json::{Value, json};

/// An agent's frame and the error it got, if any (a transfer is answered once the
/// new assignment is committed, before the next frame is read).
async fn refused_with(agent: &mut Client, frame: &Value) -> anyhow::Result<Option<ErrorCode>> {
    agent.send_json(frame).await?;
    let codes: Vec<ErrorCode> = agent
        .round_trip()
        .await?
        .iter()
        .filter_map(error_code)
        .collect();
    anyhow::ensure!(codes.len() <= 1, "{codes:?}");
    Ok(codes.first().copied())
}

/// The events (system lines) of a conversation, from the store.
async fn events(hub: &TestHub, conversation: &str) -> anyhow::Result<Vec<String>> {
    Ok(hub
        .state
        .store
        .messages_after(conversation, 0, 1000)
        .await?
        .into_iter()
        .filter(|message| message.kind == MessageKind::Event)
        .map(|message| message.text)
        .collect())
}

/// Finding: "Agents can inject text into visitor-facing system lines through a
/// transfer's department name, which is neither validated nor limited in length." A
/// transfer names a department of the conversation's site, or is refused with
/// `not_found` and the visitor is told nothing.
#[tokio::test]
async fn a_transfer_names_a_department_of_the_site_or_nothing() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    // Omar serves billing and sales; Sara serves nothing in particular.
    let (_, omar_token) = hub
        .add_agent("Omar", Some(5), &["billing", "sales"])
        .await?;
    let (_, sara_token) = hub.add_agent("Sara", Some(5), &[]).await?;
    let _omar = hub.agent(&omar_token).await?;
    let mut sara = hub.agent(&sara_token).await?;
    let (mut visitor, conversation) = hub.visitor_says("I was charged twice").await?;
    hub.wait_for(&conversation, |c| c.agent_id.is_some())
        .await?;
    // "… joined the conversation".
    let events_before = events(&hub, &conversation).await?;
    // Sales is a department of another site only.
    let other = hub
        .create_site("Other Shop", &["http://other.test".to_owned()])
        .await?;
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            "/api/departments",
            json!({"site_id": other.id, "name": "sales"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");

    let hostile = [
        (
            "served by an agent, not a department of the site",
            "billing".to_owned(),
        ),
        ("10,000 characters", "x".repeat(10_000)),
        ("a right-to-left override", "\u{202e}gnillib".to_owned()),
        ("markup", "<img src=x onerror=alert(1)> billing".to_owned()),
        ("a department of another site", "sales".to_owned()),
    ];
    for (what, department) in &hostile {
        let frame =
            json!({"type": "transfer", "conversation": conversation, "department": department});
        assert_eq!(
            refused_with(&mut sara, &frame).await?,
            Some(ErrorCode::NotFound),
            "{what}"
        );
    }
    assert_eq!(
        events(&hub, &conversation).await?,
        events_before,
        "a refused transfer told the visitor something"
    );

    // A department of the site works, and the visitor is told its name.
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            "/api/departments",
            json!({"site_id": hub.site.id, "name": "billing"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let frame = json!({"type": "transfer", "conversation": conversation, "department": "billing"});
    assert_eq!(refused_with(&mut sara, &frame).await?, None);
    let (_, before) = visitor
        .recv_until(
            |f| matches!(f, ServerFrame::Message(m) if m.text == "transferred to the billing team"),
        )
        .await?;
    let told_before: Vec<&str> = before
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) if m.author.kind == AuthorKind::System => Some(m.text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        !told_before
            .iter()
            .any(|text| text.starts_with("transferred")),
        "{told_before:?}"
    );
    let transfers: Vec<String> = events(&hub, &conversation)
        .await?
        .into_iter()
        .filter(|text| text.starts_with("transferred"))
        .collect();
    assert_eq!(transfers, ["transferred to the billing team"]);
    Ok(())
}

/// The messages of a conversation as `GET /api/conversations/{id}/messages` lists them.
async fn history(hub: &TestHub, token: &str, conversation: &str) -> anyhow::Result<Vec<Value>> {
    let listed = hub
        .get_ok(
            token,
            &format!("/api/conversations/{conversation}/messages"),
        )
        .await?;
    Ok(listed["messages"].as_array().cloned().unwrap_or_default())
}

/// Finding: "Hostile characters are accepted: bidi controls such as U+202E in names
/// and texts, and messages made only of zero-width characters." Spanning bidi
/// controls are stripped, invisible-only texts are empty, and the Persian zero-width
/// non-joiner inside a word stays.
#[tokio::test]
async fn bidi_controls_are_stripped_and_invisible_texts_are_empty() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let (mut visitor, conversation) = hub.visitor_says("hello").await?;
    for (index, invisible) in [
        "\u{200b}\u{200c}\u{feff}",
        "\u{200b} \u{2060}\n\u{200d}",
        "\u{202e}\u{2066}\u{200b}\u{2069}",
    ]
    .iter()
    .enumerate()
    {
        let client_id = format!("invisible-{index}");
        visitor
            .send_json(&json!({"type": "send", "client_id": client_id, "text": invisible}))
            .await?;
        let (answer, _) = visitor
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
            .await?;
        match answer {
            ServerFrame::Error {
                code: ErrorCode::EmptyText,
                client_id: Some(named),
                ..
            } => assert_eq!(named, client_id),
            other => panic!("{invisible:?}: expected empty_text, got {other:?}"),
        }
    }
    let sent = [
        // Trojan source: the override makes "exe.pdf" read as "fdp.exe".
        (
            "file\u{202e}fdp.exe is my invoice",
            "filefdp.exe is my invoice",
        ),
        (
            "\u{2066}a\u{2067}b\u{2068}c\u{2069}d\u{202a}e\u{202b}f\u{202c}g\u{202d}h",
            "abcdefgh",
        ),
        // "I want": the zero-width non-joiner is part of the spelling.
        ("می\u{200c}خواهم", "می\u{200c}خواهم"),
        ("\u{200b}  مرحبا\u{200f} 123 \u{feff}", "مرحبا\u{200f} 123"),
    ];
    for (index, (text, _)) in sent.iter().enumerate() {
        visitor
            .send_json(&json!({"type": "send", "client_id": format!("t{index}"), "text": text}))
            .await?;
        let (ack, _) = visitor
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
            .await?;
        assert!(matches!(ack, ServerFrame::Ack { .. }), "{text:?}: {ack:?}");
    }
    let stored = history(&hub, &admin, &conversation).await?;
    for (index, (text, clean)) in sent.iter().enumerate() {
        let client_id = format!("t{index}");
        let found = stored
            .iter()
            .find(|m| m["client_id"] == client_id.as_str())
            .unwrap_or_else(|| panic!("{text:?} is not stored"));
        assert_eq!(found["text"], *clean, "{text:?}");
    }
    assert!(
        !stored.iter().any(|m| m["client_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("invisible"))),
        "an invisible message was stored"
    );

    // Names: the contact form's, and the name sent beside an identity token.
    visitor
        .send_json(
            &json!({"type": "contact", "name": "\u{202e}alyaL\u{202c} Ahmadi",
                           "email": "layla@example.com"}),
        )
        .await?;
    let token = salam_e2e::sign_identity(
        &hub.site.identity_secret,
        &json!({"sub": "customer-7", "exp": salam_hub::clock::now_ms() / 1000 + 3600}),
    );
    visitor
        .send_json(&json!({"type": "identify", "token": token, "name": "Re\u{2067}za\u{2069}"}))
        .await?;
    let answers = visitor.round_trip().await?;
    assert!(
        !answers.iter().any(|f| error_code(f).is_some()),
        "{answers:?}"
    );
    let requests = hub.get_ok(&admin, "/api/offline-requests").await?;
    assert_eq!(
        requests["requests"][0]["name"], "alyaL Ahmadi",
        "{requests}"
    );
    let shown = hub
        .get_ok(&admin, &format!("/api/conversations/{conversation}"))
        .await?;
    assert_eq!(shown["visitor"]["name"], "Reza", "{shown}");

    // Internal notes: the same cleaning, and an invisible note is refused.
    let mut console = hub.admin_agent().await?;
    let notes = [
        ("note-blank", "\u{200b}\u{202e}\u{feff}"),
        (
            "note-1",
            "refund \u{202e}fdp.exe\u{202c} \u{2066}now\u{2069}",
        ),
    ];
    let mut answered = Vec::new();
    for (client_id, text) in notes {
        console
            .send_json(&json!({"type": "send", "conversation": conversation,
                               "client_id": client_id, "text": text, "note": true}))
            .await?;
        let (answer, _) = console
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
            .await?;
        answered.push(answer);
    }
    assert!(
        matches!(&answered[0], ServerFrame::Error { code: ErrorCode::EmptyText,
                                                      client_id: Some(named), .. }
                 if named == "note-blank"),
        "{:?}",
        answered[0]
    );
    assert!(
        matches!(&answered[1], ServerFrame::Ack { client_id, .. } if client_id == "note-1"),
        "{:?}",
        answered[1]
    );
    let stored = history(&hub, &admin, &conversation).await?;
    let note = stored
        .iter()
        .find(|m| m["client_id"] == "note-1")
        .expect("the note is stored");
    assert_eq!(note["kind"], "note", "{note}");
    assert_eq!(note["text"], "refund fdp.exe now", "{note}");
    assert!(
        !stored.iter().any(|m| m["client_id"] == "note-blank"),
        "an invisible note was stored"
    );
    Ok(())
}

/// `PUT /api/sites/{id}/settings` with `settings` as `token`.
async fn put_settings(hub: &TestHub, token: &str, settings: Value) -> anyhow::Result<(u16, Value)> {
    hub.rest(
        token,
        "PUT",
        &format!("/api/sites/{}/settings", hub.site.id),
        settings,
    )
    .await
}

/// Finding: "Site settings are not validated on write: colour, logo URL, position."
/// Each bad value is refused with 400 and a JSON message; what the widget draws is
/// unchanged; valid settings are stored.
#[tokio::test]
async fn site_settings_are_validated_on_write() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let widget_path = format!("/api/widget/{}", hub.site.key);
    let widget_before = hub.get_ok(&admin, &widget_path).await?;
    // Each bad value, and a word its refusal must name.
    let bad = [
        (json!({"color": "red"}), "color"),
        (
            json!({"color": "#0f766e\"><script>alert(1)</script>"}),
            "color",
        ),
        (json!({"color": "#12345g"}), "color"),
        (json!({"logo": "javascript:alert(1)"}), "logo"),
        (json!({"logo": "http://shop.test/logo.png"}), "logo"),
        (json!({"logo": "https://x\" onerror=\"alert(1)"}), "logo"),
        (
            json!({"logo": format!("https://cdn.shop.test/{}", "a".repeat(600))}),
            "logo",
        ),
        (json!({"position": "center"}), "position"),
        (json!({"locale": "de"}), "locale"),
        (
            json!({"business_hours": {"open": {"mon": "25:00-26:00"}}}),
            "business_hours",
        ),
        (
            json!({"business_hours": {"utc_offset_minutes": 900, "open": {}}}),
            "utc_offset_minutes",
        ),
        (json!({"default_capacity": 0}), "default_capacity"),
        (json!({"default_capacity": 101}), "default_capacity"),
        (
            json!({"first_response_target_secs": 8 * 24 * 3600}),
            "first_response_target_secs",
        ),
        (json!({"accept_timeout_secs": 3601}), "accept_timeout_secs"),
        (json!({"greeting": {"en": "x".repeat(501)}}), "greeting"),
        (json!({"vip_user_ids": vec!["vip"; 1001]}), "vip_user_ids"),
    ];
    for (settings, named) in bad {
        let (status, body) = put_settings(&hub, &admin, settings.clone()).await?;
        assert_eq!(status, 400, "{settings} was accepted: {body}");
        assert_eq!(body["error"], "bad_field", "{settings}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(named)),
            "{settings}: the refusal does not name {named}: {body}"
        );
    }
    assert_eq!(hub.get_ok(&admin, &widget_path).await?, widget_before);

    let good = json!({"color": "#112233", "position": "left", "locale": "fa",
                      "logo": "https://cdn.shop.test/logo.png", "bot": false,
                      "greeting": {"en": "Hi\u{202e}!"}});
    let (_, sara) = hub.add_agent("Sara", None, &[]).await?;
    let (status, _) = put_settings(&hub, &sara, good.clone()).await?;
    assert_eq!(status, 403, "an agent changed the settings");
    let (status, body) = put_settings(&hub, &admin, good).await?;
    assert_eq!(status, 200, "{body}");
    let widget = hub.get_ok(&admin, &widget_path).await?;
    assert_eq!(widget["color"], "#112233");
    assert_eq!(widget["position"], "left");
    assert_eq!(widget["locale"], "fa");
    assert_eq!(widget["logo"], "https://cdn.shop.test/logo.png");
    assert_eq!(widget["greeting"]["en"], "Hi!");
    // The widget's public endpoint answers JSON too for an unknown key.
    let unknown = http_request(hub.addr, "GET", "/api/widget/pk_nope", &[], "").await?;
    assert_eq!(unknown.status, 404);
    Ok(())
}

/// Finding: "GET /api/reports?to=-9223372036854775808 wraps around." Ranges out of
/// bounds or backwards are refused with 400 JSON; the hub does not panic.
#[tokio::test]
async fn report_ranges_are_checked() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let bearer = format!("Bearer {admin}");
    let auth = [("authorization", bearer.as_str())];
    for query in [
        "to=-9223372036854775808",
        "from=-9223372036854775808",
        "from=-9223372036854775808&to=9223372036854775807",
        "to=-1",
        "from=2000&to=1000",
        "to=9223372036854775808",
    ] {
        let response =
            http_request(hub.addr, "GET", &format!("/api/reports?{query}"), &auth, "").await?;
        crate::wire::assert_json_error(query, &response, 400, Some("bad_field"));
    }
    for query in [
        "from=0&to=9223372036854775807",
        "to=9223372036854775807",
        "from=0&to=1",
    ] {
        let report = hub.get_ok(&admin, &format!("/api/reports?{query}")).await?;
        assert_eq!(report["conversations"], 0, "{query}: {report}");
    }
    let health = http_request(hub.addr, "GET", "/healthz", &[], "").await?;
    assert_eq!(health.status, 200);
    Ok(())
}

/// A department as the admin typed it ("Billing") in both places the console asks for
/// it, the site's departments and the agent's: the site's is kept in lower case, so
/// the agent's must match it, or no transfer to it ever finds an agent.
#[tokio::test]
async fn a_department_typed_with_capitals_still_reaches_its_agents() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            "/api/departments",
            json!({"site_id": hub.site.id, "name": "Billing"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            "/api/admin/agents",
            json!({"email": "omar@shop.test", "name": "Omar", "password": salam_e2e::AGENT_PASSWORD,
                   "departments": ["Billing"], "site_ids": [hub.site.id]}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let omar_token = hub
        .login("omar@shop.test", salam_e2e::AGENT_PASSWORD)
        .await?;
    let _omar = hub.agent(&omar_token).await?;
    let (_, sara_token) = hub.add_agent("Sara", Some(5), &[]).await?;
    let mut sara = hub.agent(&sara_token).await?;
    let (mut visitor, conversation) = hub.visitor_says("I was charged twice").await?;
    hub.wait_for(&conversation, |c| c.agent_id.is_some())
        .await?;
    let frame = json!({"type": "transfer", "conversation": conversation, "department": "Billing"});
    assert_eq!(
        refused_with(&mut sara, &frame).await?,
        None,
        "the transfer to Billing was refused"
    );
    visitor
        .recv_until(
            |f| matches!(f, ServerFrame::Message(m) if m.text == "transferred to the billing team"),
        )
        .await?;
    Ok(())
}
