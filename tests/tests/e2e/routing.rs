//! Human handoff through the real hub: capacity, grace period, transfers, notes, CSAT,
//! queue positions, auto-close.

use salam_e2e::{Client, TestHub, http_request};
use salam_protocol::{AuthorKind, ConversationState, FormKind, MessageKind, ServerFrame};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

async fn visitor_says(hub: &TestHub, text: &str) -> anyhow::Result<(Client, String)> {
    hub.visitor_says(text).await
}

async fn wait_for_state(
    hub: &TestHub,
    conversation: &str,
    want: impl Fn(&salam_store::Conversation) -> bool,
) -> anyhow::Result<salam_store::Conversation> {
    hub.wait_for(conversation, want).await
}

async fn api(hub: &TestHub, token: &str, path: &str) -> anyhow::Result<Value> {
    let response = http_request(
        hub.addr,
        "GET",
        path,
        &[("authorization", &format!("Bearer {token}"))],
        "",
    )
    .await?;
    anyhow::ensure!(
        response.status == 200,
        "{path}: {} {}",
        response.status,
        response.body
    );
    Ok(serde_json::from_str(&response.body)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_visitors_ten_agents_with_drops() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.routing.grace_secs = 1;
        config.routing.default_capacity = 25;
    })
    .await?;
    let mut agents = Vec::new();
    for index in 0..10 {
        let (id, token) = hub
            .add_agent(&format!("Agent{index}"), Some(25), &[])
            .await?;
        let client = hub.agent(&token).await?;
        agents.push((id, token, Some(client)));
    }
    let mut visitors = Vec::new();
    for index in 0..200 {
        let (visitor, conversation) = visitor_says(&hub, &format!("question {index}")).await?;
        visitors.push((visitor, conversation));
        // Agents drop and come back while chats arrive: some inside the grace period,
        // some after it. (Regression: a reconnecting agent once got a routing event
        // ahead of its `welcome`; `hub.agent` insists on `welcome` first.)
        if index % 40 == 20 {
            let slot = index / 20 % agents.len();
            agents[slot].2 = None;
        }
        if index % 40 == 30 {
            let slot = (index - 10) / 20 % agents.len();
            let token = agents[slot].1.clone();
            agents[slot].2 = Some(hub.agent(&token).await?);
        }
    }
    // Let every dropped agent come back; wait out the grace periods.
    for agent in agents.iter_mut() {
        if agent.2.is_none() {
            agent.2 = Some(hub.agent(&agent.1).await?);
        }
    }
    let capacities: HashMap<String, usize> = agents.iter().map(|a| (a.0.clone(), 25)).collect();
    for (_, conversation) in &visitors {
        let found = wait_for_state(&hub, conversation, |c| {
            c.state == ConversationState::Assigned
        })
        .await?;
        assert!(capacities.contains_key(found.agent_id.as_deref().unwrap_or("")));
    }
    let mut load: HashMap<String, usize> = HashMap::new();
    for (_, conversation) in &visitors {
        let found = hub
            .state
            .store
            .conversation(conversation)
            .await?
            .expect("stored");
        *load.entry(found.agent_id.unwrap_or_default()).or_default() += 1;
        let messages = hub.state.store.messages_after(conversation, 0, 100).await?;
        let texts = messages
            .iter()
            .filter(|m| m.author.kind == AuthorKind::Visitor)
            .count();
        assert_eq!(texts, 1, "the visitor's message is stored once");
    }
    for (agent, n_chats) in &load {
        assert!(
            *n_chats <= 25,
            "{agent} holds {n_chats} chats, over capacity"
        );
    }
    let snapshot = api(&hub, &agents[0].1, "/api/agents").await?;
    for agent in snapshot["sites"][&hub.site.id]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        assert!(agent["load"].as_u64() <= agent["capacity"].as_u64());
    }
    Ok(())
}

#[tokio::test]
async fn the_grace_period_keeps_chats_and_expiry_requeues_them() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.routing.grace_secs = 2).await?;
    let (sara, sara_token) = hub.add_agent("Sara", Some(3), &[]).await?;
    let sara_socket = hub.agent(&sara_token).await?;
    let (_visitor, conversation) = visitor_says(&hub, "hello").await?;
    wait_for_state(&hub, &conversation, |c| {
        c.agent_id.as_deref() == Some(sara.as_str())
    })
    .await?;

    // Inside the grace period: Sara keeps the chat.
    drop(sara_socket);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sara_socket = hub.agent(&sara_token).await?;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let found = hub
        .state
        .store
        .conversation(&conversation)
        .await?
        .expect("stored");
    assert_eq!(found.agent_id.as_deref(), Some(sara.as_str()));
    assert_eq!(found.state, ConversationState::Assigned);

    // Outside it: the chat goes back to the queue and Omar, online, takes it.
    let (omar, omar_token) = hub.add_agent("Omar", Some(3), &[]).await?;
    let _omar_socket = hub.agent(&omar_token).await?;
    drop(sara_socket);
    let found = wait_for_state(&hub, &conversation, |c| {
        c.agent_id.as_deref() == Some(omar.as_str())
    })
    .await?;
    assert_eq!(found.state, ConversationState::Assigned);
    let history = hub
        .state
        .store
        .messages_after(&conversation, 0, 100)
        .await?;
    assert!(
        history.iter().any(|m| m.text == "hello"),
        "the history travels"
    );
    Ok(())
}

#[tokio::test]
async fn transfer_notes_queue_positions_and_satisfaction() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (_sara, sara_token) = hub.add_agent("Sara", Some(1), &[]).await?;
    let (omar, omar_token) = hub.add_agent("Omar", Some(1), &[]).await?;
    let mut sara = hub.agent(&sara_token).await?;
    let mut admin = hub.admin_agent().await?;
    admin
        .send_json(&json!({"type": "presence", "presence": "away"}))
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Sara takes the first chat; the next two wait and are told their place.
    let (mut first, first_id) = visitor_says(&hub, "my parcel is late").await?;
    wait_for_state(&hub, &first_id, |c| c.state == ConversationState::Assigned).await?;
    let (mut second, second_id) = visitor_says(&hub, "second").await?;
    let (frame, _) = second
        .recv_until(|f| matches!(f, ServerFrame::Queue { .. }))
        .await?;
    assert!(
        matches!(frame, ServerFrame::Queue { position: 1, .. }),
        "{frame:?}"
    );
    let (mut third, _third_id) = visitor_says(&hub, "third").await?;
    let (frame, _) = third
        .recv_until(|f| matches!(f, ServerFrame::Queue { .. }))
        .await?;
    assert!(
        matches!(frame, ServerFrame::Queue { position: 2, .. }),
        "{frame:?}"
    );

    // Omar comes online: the backlog drains at once, in order.
    let mut omar_socket = hub.agent(&omar_token).await?;
    wait_for_state(&hub, &second_id, |c| {
        c.agent_id.as_deref() == Some(omar.as_str())
    })
    .await?;
    let (frame, _) = third
        .recv_until(|f| matches!(f, ServerFrame::Queue { .. }))
        .await?;
    assert!(
        matches!(frame, ServerFrame::Queue { position: 1, .. }),
        "{frame:?}"
    );

    // Omar closes his chat, then Sara transfers hers to Omar with a note.
    omar_socket
        .send_json(&json!({"type": "close", "conversation": second_id}))
        .await?;
    let third_found =
        wait_for_state(&hub, &_third_id, |c| c.state == ConversationState::Assigned).await?;
    assert_eq!(
        third_found.agent_id.as_deref(),
        Some(omar.as_str()),
        "capacity freed drains the queue"
    );
    omar_socket
        .send_json(&json!({"type": "close", "conversation": _third_id}))
        .await?;
    wait_for_state(&hub, &_third_id, |c| c.state == ConversationState::Closed).await?;
    sara.send_json(&json!({"type": "transfer", "conversation": first_id, "agent": omar, "note": "customer is waiting since Monday"}))
        .await?;
    wait_for_state(&hub, &first_id, |c| {
        c.agent_id.as_deref() == Some(omar.as_str())
    })
    .await?;
    let (told, seen) = first
        .recv_until(
            |f| matches!(f, ServerFrame::Message(m) if m.text.starts_with("transferred to Omar")),
        )
        .await?;
    assert!(matches!(told, ServerFrame::Message(m) if m.kind == MessageKind::Event));
    assert!(
        !seen.iter().any(|f| matches!(f, ServerFrame::Message(m) if m.kind == MessageKind::Note || m.text.contains("Monday"))),
        "the note reached the visitor"
    );
    // Omar sees the whole history, note included.
    let history = api(
        &hub,
        &omar_token,
        &format!("/api/conversations/{first_id}/messages"),
    )
    .await?;
    let texts = history["messages"].to_string();
    assert!(
        texts.contains("my parcel is late") && texts.contains("customer is waiting since Monday")
    );

    // Omar closes; the visitor is asked for a rating and gives 2: stored, and an alert
    // reaches the admin live and is kept.
    omar_socket
        .send_json(&json!({"type": "close", "conversation": first_id}))
        .await?;
    let (form, _) = first
        .recv_until(|f| matches!(f, ServerFrame::Form { .. }))
        .await?;
    assert!(matches!(
        form,
        ServerFrame::Form {
            form: FormKind::Rating,
            ..
        }
    ));
    first
        .send_json(
            &json!({"type": "rate", "conversation": first_id, "score": 2, "comment": "too slow"}),
        )
        .await?;
    let (alert, _) = admin
        .recv_until(|f| matches!(f, ServerFrame::Alert { .. }))
        .await?;
    assert!(matches!(alert, ServerFrame::Alert { ref detail, .. } if detail.contains("too slow")));
    assert_eq!(
        hub.state.store.rating(&first_id).await?,
        Some((2, Some("too slow".into())))
    );
    let token = hub.admin_token().await?;
    let alerts = api(&hub, &token, "/api/alerts").await?;
    assert_eq!(alerts["alerts"][0]["kind"], "low_rating");
    // Agents may not read alerts (admin only).
    let refused = http_request(
        hub.addr,
        "GET",
        "/api/alerts",
        &[("authorization", &format!("Bearer {omar_token}"))],
        "",
    )
    .await?;
    assert_eq!(refused.status, 403);
    let report = api(&hub, &token, "/api/reports").await?;
    assert_eq!(report["satisfaction"]["distribution"][1], 1);
    assert!(report["first_response_ms"]["count"].as_u64().is_some());
    let _ = second.close().await;
    Ok(())
}

#[tokio::test]
async fn the_queue_and_lists_are_served_by_state() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (_id, token) = hub.add_agent("Sara", Some(1), &[]).await?;
    let (_visitor, waiting) = visitor_says(&hub, "Please call me, my name is Reza").await?;
    wait_for_state(&hub, &waiting, |c| c.state == ConversationState::Queued).await?;
    let queued = api(&hub, &token, "/api/conversations?state=queued").await?;
    assert_eq!(queued["conversations"][0]["id"], waiting.as_str());
    // The store says "queued" a moment before the routing actor has the chat.
    let mut queue = Value::Null;
    for _ in 0..300 {
        queue = api(&hub, &token, "/api/queue").await?;
        if queue["sites"][&hub.site.id][0]["conversation"] == waiting.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        queue["sites"][&hub.site.id][0]["conversation"],
        waiting.as_str()
    );
    assert_eq!(queue["sites"][&hub.site.id][0]["position"], 1);
    let found = api(&hub, &token, "/api/conversations?q=reza").await?;
    assert_eq!(found["conversations"][0]["id"], waiting.as_str());
    let none = api(&hub, &token, "/api/conversations?q=nobody-says-this").await?;
    assert_eq!(none["conversations"].as_array().map(Vec::len), Some(0));
    // Taking it by hand.
    let mut sara = hub.agent(&token).await?;
    wait_for_state(&hub, &waiting, |c| c.state == ConversationState::Assigned).await?;
    let mine = api(&hub, &token, "/api/conversations?state=mine").await?;
    assert_eq!(mine["conversations"][0]["id"], waiting.as_str());
    let detail = api(&hub, &token, &format!("/api/conversations/{waiting}")).await?;
    assert_eq!(
        detail["visitor"]["id"],
        detail["conversation"]["visitor"]["id"]
    );
    sara.send_json(&json!({"type": "take", "conversation": "c_doesnotexist"}))
        .await?;
    let (error, _) = sara
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert!(matches!(error, ServerFrame::Error { .. }));
    Ok(())
}

#[tokio::test]
async fn idle_conversations_are_closed_automatically() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.routing.auto_close_secs = 2).await?;
    let (mut visitor, conversation) = visitor_says(&hub, "anyone?").await?;
    let (form, _) = visitor
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::Form {
                    form: FormKind::Rating,
                    ..
                }
            )
        })
        .await?;
    assert!(matches!(form, ServerFrame::Form { .. }));
    let found = hub
        .state
        .store
        .conversation(&conversation)
        .await?
        .expect("stored");
    assert_eq!(found.state, ConversationState::Closed);
    let history = hub
        .state
        .store
        .messages_after(&conversation, 0, 100)
        .await?;
    assert!(history.iter().any(|m| m.text.contains("without activity")));

    let kept_hub = TestHub::start_with(|config| config.routing.auto_close_secs = 0).await?;
    let (_kept_visitor, kept) = visitor_says(&kept_hub, "still here").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kept = kept_hub
        .state
        .store
        .conversation(&kept)
        .await?
        .expect("stored");
    assert_ne!(
        kept.state,
        ConversationState::Closed,
        "0 turns auto-close off"
    );
    Ok(())
}

#[tokio::test]
async fn an_offer_not_accepted_in_time_passes_to_the_next_agent() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.routing.accept_timeout_secs = 1).await?;
    let (sara, sara_token) = hub.add_agent("Sara", Some(2), &[]).await?;
    let (omar, omar_token) = hub.add_agent("Omar", Some(2), &[]).await?;
    let mut sara_socket = hub.agent(&sara_token).await?;
    let mut omar_socket = hub.agent(&omar_token).await?;
    let (_visitor, conversation) = visitor_says(&hub, "hello?").await?;
    // The first offer goes to one of them; nobody accepts, so it passes to the other.
    let (first, _) = sara_socket
        .recv_until(|f| matches!(f, ServerFrame::Offer { .. }))
        .await?;
    let ServerFrame::Offer {
        agent: first_agent, ..
    } = first
    else {
        unreachable!()
    };
    let (second_agent, second_socket) = if first_agent == sara {
        (omar.clone(), &mut omar_socket)
    } else {
        (sara.clone(), &mut sara_socket)
    };
    let (second, _) = second_socket
        .recv_until(|f| matches!(f, ServerFrame::Offer { agent, .. } if *agent == second_agent))
        .await?;
    assert!(matches!(second, ServerFrame::Offer { .. }));
    let found = hub
        .state
        .store
        .conversation(&conversation)
        .await?
        .expect("stored");
    assert_eq!(
        found.state,
        ConversationState::Queued,
        "an offer is not an assignment"
    );
    second_socket
        .send_json(&json!({"type": "accept", "conversation": conversation}))
        .await?;
    wait_for_state(&hub, &conversation, |c| {
        c.state == ConversationState::Assigned
            && c.agent_id.as_deref() == Some(second_agent.as_str())
    })
    .await?;
    Ok(())
}

/// A site's default capacity sets the capacity of an agent created for it (capacity is
/// one number per agent across all their sites); raising the agent's capacity drains
/// the queue at once, with no reconnect.
#[tokio::test]
async fn a_sites_default_capacity_sets_new_agents_and_raising_it_drains_the_queue()
-> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let call = |method: &'static str, path: String, body: Value| {
        let admin = admin.clone();
        let hub = &hub;
        async move {
            let response = http_request(
                hub.addr,
                method,
                &path,
                &[
                    ("authorization", &format!("Bearer {admin}")),
                    ("content-type", "application/json"),
                ],
                &body.to_string(),
            )
            .await?;
            anyhow::ensure!(response.status < 300, "{path}: {}", response.body);
            anyhow::Ok(serde_json::from_str::<Value>(&response.body)?)
        }
    };
    let settings = format!("/api/sites/{}/settings", hub.site.id);
    call(
        "PUT",
        settings,
        json!({"bot": false, "default_capacity": 1}),
    )
    .await?;
    let created = call(
        "POST",
        "/api/admin/agents".into(),
        json!({"email": "sara@shop.test", "name": "Sara", "password": "correct horse battery",
               "site_ids": [hub.site.id]}),
    )
    .await?;
    assert_eq!(created["agent"]["capacity"], 1, "{created}");
    let sara = created["agent"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let login = http_request(
        hub.addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        &json!({"email": "sara@shop.test", "password": "correct horse battery"}).to_string(),
    )
    .await?;
    let token: Value = serde_json::from_str(&login.body)?;
    let _sara_socket = hub
        .agent(token["token"].as_str().unwrap_or_default())
        .await?;
    let (_first, first) = visitor_says(&hub, "first").await?;
    wait_for_state(&hub, &first, |c| {
        c.agent_id.as_deref() == Some(sara.as_str())
    })
    .await?;
    let (_second, second) = visitor_says(&hub, "second").await?;
    wait_for_state(&hub, &second, |c| c.state == ConversationState::Queued).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = hub
        .state
        .store
        .conversation(&second)
        .await?
        .expect("stored");
    assert_eq!(
        still.state,
        ConversationState::Queued,
        "the capacity of 1 holds"
    );
    call(
        "PATCH",
        format!("/api/admin/agents/{sara}"),
        json!({"capacity": 2}),
    )
    .await?;
    wait_for_state(&hub, &second, |c| {
        c.agent_id.as_deref() == Some(sara.as_str())
    })
    .await?;
    Ok(())
}
