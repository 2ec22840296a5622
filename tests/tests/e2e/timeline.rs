//! Issue 19, the customer timeline: `GET /api/visitors/{id}/timeline` through a real
//! hub. An identified customer comes back on another device (a new visitor id, the same
//! signed user id): the timeline of their new conversation holds the earlier one with
//! its rating, their callback request and the pages of the current session; an
//! anonymous visitor's holds only their own; another site's agent gets 404.

use anyhow::{Context, Result, ensure};
use salam_e2e::{AccountSetup, Client, SHOP_ORIGIN, TestHub, sign_identity};
use salam_protocol::{ConversationState, ServerFrame};
use serde_json::{Value, json};

/// A visitor greeted from `url` (as the widget's `hello` names its page), coming back
/// with `token` if given.
async fn visitor_on(hub: &TestHub, token: Option<&str>, url: &str, title: &str) -> Result<Client> {
    let mut client = Client::connect_visitor(hub.addr, Some(SHOP_ORIGIN)).await?;
    let mut hello = json!({"type": "hello", "v": 1, "site": hub.site.key,
                           "page": {"url": url, "title": title}});
    if let Some(token) = token {
        hello["token"] = json!(token);
    }
    client.send_json(&hello).await?;
    let welcome = client.recv().await?;
    let ServerFrame::Welcome { token, .. } = &welcome else {
        anyhow::bail!("expected welcome, got {welcome:?}");
    };
    client.token = token.clone();
    client.welcome = Some(welcome);
    Ok(client)
}

/// Identifies the visitor as the site's user `sub`, signed with the site's secret.
async fn identify(hub: &TestHub, client: &mut Client, sub: &str) -> Result<()> {
    let exp = salam_hub::clock::now_ms() / 1000 + 3600;
    let token = sign_identity(&hub.site.identity_secret, &json!({"sub": sub, "exp": exp}));
    client
        .send_json(&json!({"type": "identify", "token": token}))
        .await?;
    let answers = client.round_trip().await?;
    ensure!(
        !answers
            .iter()
            .any(|frame| matches!(frame, ServerFrame::Error { .. })),
        "identify refused: {answers:?}"
    );
    Ok(())
}

/// Sends `text` and returns the conversation it went to.
async fn says(client: &mut Client, client_id: &str, text: &str) -> Result<String> {
    client
        .send_json(&json!({"type": "send", "client_id": client_id, "text": text}))
        .await?;
    let (ack, _) = client
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    match ack {
        ServerFrame::Ack { conversation, .. } => Ok(conversation),
        _ => unreachable!("only an ack is awaited"),
    }
}

async fn timeline(hub: &TestHub, token: &str, visitor: &str) -> Result<Value> {
    hub.get_ok(token, &format!("/api/visitors/{visitor}/timeline"))
        .await
}

/// `kind:what` of each entry, newest first.
fn entries(timeline: &Value) -> Vec<String> {
    timeline["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let what = match entry["kind"].as_str().unwrap_or_default() {
                "conversation" => entry["conversation"]["id"].clone(),
                "page_view" => entry["url"].clone(),
                "offline_request" => entry["message"].clone(),
                _ => entry["text"].clone(),
            };
            format!(
                "{}:{}",
                entry["kind"].as_str().unwrap_or("?"),
                what.as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_customer_on_another_device_brings_their_history() -> Result<()> {
    let hub = TestHub::start().await?;
    let (_, sara) = hub.add_agent("Sara", None, &[]).await?;

    // Monday, on the phone: the customer signs in, asks, leaves a number, closes and
    // rates the chat.
    let mut phone = visitor_on(&hub, None, "https://shop.test/orders/77", "Order 77").await?;
    identify(&hub, &mut phone, "customer-77").await?;
    let first = says(&mut phone, "p-1", "Where is my order 77?").await?;
    // Nobody is online: the hand-off's notice comes first, then the form is filled (so
    // the confirmation is the conversation's last text, whatever the hand-off's pace).
    phone
        .recv_until(|frame| {
            matches!(frame, ServerFrame::Message(m)
                if m.author.kind == salam_protocol::AuthorKind::Bot && m.text.contains("offline"))
        })
        .await?;
    phone
        .send_json(&json!({"type": "contact", "conversation": first,
                           "email": "layla@example.com", "message": "Call me after 5"}))
        .await?;
    phone.round_trip().await?;
    phone
        .send_json(&json!({"type": "close", "conversation": first}))
        .await?;
    hub.wait_for(&first, |c| c.state == ConversationState::Closed)
        .await?;
    phone
        .send_json(&json!({"type": "rate", "conversation": first, "score": 4,
                           "comment": "helpful"}))
        .await?;
    phone.round_trip().await?;
    let phone_id = phone.you().context("the phone's visitor id")?;
    phone.close().await;
    // A proactive message was shown to the phone (recorded as the triggers record it).
    hub.state
        .store
        .record_visitor_event(salam_store::NewVisitorEvent {
            site_id: hub.site.id.clone(),
            visitor_id: phone_id.clone(),
            kind: salam_store::VisitorEventKind::TriggerShown,
            data: json!({"trigger": "t_shipping", "text": "Questions about shipping?"}),
            at: salam_hub::clock::now_ms(),
        })
        .await?;

    // Today, on the laptop: another browser, so a new visitor id, identified as the
    // same customer. Two pages; a reconnect on the second page records it once.
    let home = visitor_on(&hub, None, "https://shop.test/", "Home").await?;
    let laptop_token = home.token.clone().context("the laptop's token")?;
    let laptop_id = home.you().context("the laptop's visitor id")?;
    ensure!(laptop_id != phone_id);
    home.close().await;
    let again = visitor_on(
        &hub,
        Some(&laptop_token),
        "https://shop.test/pricing",
        "Pricing",
    )
    .await?;
    again.close().await;
    let mut laptop = visitor_on(
        &hub,
        Some(&laptop_token),
        "https://shop.test/pricing",
        "Pricing",
    )
    .await?;
    identify(&hub, &mut laptop, "customer-77").await?;
    let second = says(&mut laptop, "l-1", "Hello again, about order 77").await?;

    let shown = timeline(&hub, &sara, &laptop_id).await?;
    ensure!(shown["identified"] == true, "{shown}");
    ensure!(shown["visitors"] == json!([laptop_id, phone_id]), "{shown}");
    let listed = entries(&shown);
    let mut expected = vec![
        format!("conversation:{second}"),
        "page_view:https://shop.test/pricing".to_owned(),
        "page_view:https://shop.test/".to_owned(),
        "trigger_shown:Questions about shipping?".to_owned(),
        "offline_request:Call me after 5".to_owned(),
        format!("conversation:{first}"),
    ];
    let mut sorted = listed.clone();
    sorted.sort();
    expected.sort();
    ensure!(sorted == expected, "{listed:#?}\n{shown:#}");
    // Newest first (steps a millisecond apart may share it, so by time only).
    let times: Vec<i64> = shown["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["at"].as_i64())
        .collect();
    ensure!(times.windows(2).all(|pair| pair[0] >= pair[1]), "{times:?}");
    let entry = |wanted: &str| {
        shown["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(&listed)
            .find(|(_, name)| *name == wanted)
            .map(|(entry, _)| entry.clone())
            .with_context(|| format!("no {wanted}"))
    };
    ensure!(entry("trigger_shown:Questions about shipping?")?["trigger"] == "t_shipping");
    let earlier = &entry(&format!("conversation:{first}"))?;
    ensure!(earlier["visitor"] == phone_id.as_str(), "{earlier}");
    ensure!(earlier["conversation"]["channel"] == "chat", "{earlier}");
    ensure!(earlier["conversation"]["state"] == "closed", "{earlier}");
    ensure!(earlier["closed_at"].as_i64().is_some(), "{earlier}");
    ensure!(earlier["rating"]["score"] == 4, "{earlier}");
    ensure!(earlier["rating"]["comment"] == "helpful", "{earlier}");
    // Its last text (here the line confirming the contact details).
    ensure!(
        earlier["conversation"]["preview"]["text"]
            .as_str()
            .is_some_and(|text| text.contains("contact details")),
        "{earlier}"
    );
    ensure!(entry("page_view:https://shop.test/pricing")?["title"] == "Pricing");
    ensure!(shown["next"].is_null(), "{shown}");

    // The phone's timeline is the same customer's: both conversations; its own pages.
    let from_phone = entries(&timeline(&hub, &sara, &phone_id).await?);
    ensure!(
        from_phone.contains(&format!("conversation:{second}"))
            && from_phone.contains(&"page_view:https://shop.test/orders/77".to_owned())
            && !from_phone.contains(&"page_view:https://shop.test/pricing".to_owned()),
        "{from_phone:#?}"
    );

    // A page at a time: two entries, then the rest from `next`, nothing twice.
    let page = hub
        .get_ok(
            &sara,
            &format!("/api/visitors/{laptop_id}/timeline?limit=2"),
        )
        .await?;
    ensure!(entries(&page) == listed[..2], "{page}");
    let next = page["next"].as_str().context("a next page")?;
    let rest = hub
        .get_ok(
            &sara,
            &format!("/api/visitors/{laptop_id}/timeline?limit=10&before={next}"),
        )
        .await?;
    ensure!(entries(&rest) == listed[2..], "{rest}");
    for bad in ["limit=0", "limit=201", "before=nonsense"] {
        let (status, body) = hub
            .rest(
                &sara,
                "GET",
                &format!("/api/visitors/{laptop_id}/timeline?{bad}"),
                Value::Null,
            )
            .await?;
        ensure!(status == 400, "{bad}: {status} {body}");
    }

    // An anonymous visitor's timeline holds only their own.
    let mut stranger = visitor_on(&hub, None, "https://shop.test/faq", "FAQ").await?;
    let theirs = says(&mut stranger, "s-1", "Just looking").await?;
    let stranger_id = stranger.you().context("the stranger's id")?;
    let shown = timeline(&hub, &sara, &stranger_id).await?;
    ensure!(shown["identified"] == false, "{shown}");
    ensure!(
        entries(&shown)
            == [
                format!("conversation:{theirs}"),
                "page_view:https://shop.test/faq".to_owned()
            ],
        "{shown:#}"
    );

    // Another site's agent: 404, like a visitor that does not exist; signed out: 401.
    let other = hub
        .create_site("Other Shop", &["http://other.test".to_owned()])
        .await?;
    let (_, omar) = hub
        .add_account(AccountSetup {
            name: "Omar",
            ..AccountSetup::agent_of(&[other.id.as_str()])
        })
        .await?;
    for (token, visitor, status) in [
        (omar.as_str(), laptop_id.as_str(), 404),
        (sara.as_str(), "v_nobody", 404),
        ("not-a-session", laptop_id.as_str(), 401),
    ] {
        let (answered, body) = hub
            .rest(
                token,
                "GET",
                &format!("/api/visitors/{visitor}/timeline"),
                Value::Null,
            )
            .await?;
        ensure!(
            answered == status,
            "{visitor}: {answered}, not {status}: {body}"
        );
    }

    // The person's data export holds their pages too.
    let admin = hub.admin_token().await?;
    let exported = hub
        .get_ok(
            &admin,
            &format!("/api/admin/visitors/export?visitor={laptop_id}"),
        )
        .await?;
    let urls: Vec<&str> = exported["visitors"][0]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["data"]["url"].as_str())
        .collect();
    ensure!(
        urls == ["https://shop.test/", "https://shop.test/pricing"],
        "{exported:#}"
    );
    Ok(())
}
