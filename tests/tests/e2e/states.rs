//! Issue 15: the states visitors and agents live in, against a real `salam` process over
//! real sockets: system lines as codes, a page on a refused origin, one truthful state
//! when nobody can answer, what comes back after a reload, contact details in the
//! conversation.

use anyhow::{Context, Result, bail, ensure};
use salam_e2e::process::{Api, HubProcess, SiteInfo, agent_session, visitor_session};
use salam_e2e::{Client, Ended, SHOP_ORIGIN, WAIT, error_code};
use salam_protocol::{ConversationState, ErrorCode, EventCode, FormKind, ServerFrame};
use serde_json::{Value, json};
use std::time::Duration;

const CONFIG: &str = "[routing]\nauto_close_secs = 0\n";

/// A hub process with one site (bot off: visitors go straight to people).
async fn hub_with_site(settings: Value) -> Result<(tempfile::TempDir, HubProcess, Api, SiteInfo)> {
    let data = tempfile::tempdir()?;
    let hub = HubProcess::start(data.path(), CONFIG).await?;
    let admin = hub.admin().await?;
    let site = admin.create_site("States", SHOP_ORIGIN, settings).await?;
    Ok((data, hub, admin, site))
}

/// An agent of `site` signed in with a live console socket.
async fn online_agent(
    hub: &HubProcess,
    admin: &Api,
    site: &SiteInfo,
    name: &str,
) -> Result<Client> {
    Ok(agent_in(hub, admin, site, name, &[]).await?.0)
}

/// An agent of `site` serving `departments`, online (routing says so); with their id.
async fn agent_in(
    hub: &HubProcess,
    admin: &Api,
    site: &SiteInfo,
    name: &str,
    departments: &[&str],
) -> Result<(Client, String)> {
    let email = format!("{}@shop.test", name.to_lowercase());
    let password = "correct horse battery staple";
    let id = admin
        .create_agent(&email, password, std::slice::from_ref(&site.id), Some(1))
        .await?;
    if !departments.is_empty() {
        admin
            .json(
                "PATCH",
                &format!("/api/admin/agents/{id}"),
                Some(&json!({ "departments": departments })),
            )
            .await?;
    }
    let api = Api::login(hub.addr, &email, password).await?;
    let agent = agent_session(hub.addr, &api.token).await?;
    // Routing has them online once the site's agent list says so.
    wait_until("the agent online", || async {
        let agents = admin.get(&format!("/api/agents?site={}", site.id)).await?;
        Ok(agents["sites"][&site.id].as_array().is_some_and(|agents| {
            agents
                .iter()
                .any(|a| a["id"] == id.as_str() && a["presence"] == "online")
        }))
    })
    .await?;
    Ok((agent, id))
}

async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The visitor sends `text` and gets the conversation id from its ack.
async fn say(visitor: &mut Client, text: &str) -> Result<String> {
    visitor
        .send_json(&json!({"type": "send", "client_id": text, "text": text}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!()
    };
    Ok(conversation)
}

fn event_of(frame: &ServerFrame) -> Option<(EventCode, Value)> {
    match frame {
        ServerFrame::Message(message) => message.event.as_ref().map(|event| {
            (
                event.code,
                serde_json::to_value(&event.params).unwrap_or_default(),
            )
        }),
        _ => None,
    }
}

/// Frames after `resume` up to the `pong` of a ping sent after it: the replay, `resumed`
/// and whatever the hub queued right behind it.
async fn resume_and_collect(visitor: &mut Client, conversation: &str) -> Result<Vec<ServerFrame>> {
    visitor
        .send_json(&json!({"type": "resume", "conversation": conversation, "after": 0}))
        .await?;
    visitor
        .send_json(&json!({"type": "ping", "nonce": 15}))
        .await?;
    let (_, frames) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Pong { nonce: Some(15) }))
        .await?;
    Ok(frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_lines_carry_codes_live_in_replays_and_over_rest() -> Result<()> {
    let (_data, hub, admin, site) = hub_with_site(json!({"bot": false})).await?;
    let mut sara = online_agent(&hub, &admin, &site, "Sara").await?;
    let mut visitor = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    let conversation = say(&mut visitor, "where is my parcel").await?;
    let (joined, _) = visitor
        .recv_until(|f| matches!(event_of(f), Some((EventCode::Joined, _))))
        .await?;
    let (_, params) = event_of(&joined).context("joined")?;
    ensure!(params == json!({"agent": "sara"}), "{params}");
    let ServerFrame::Message(line) = &joined else {
        unreachable!()
    };
    ensure!(line.text == "sara joined the conversation", "{line:?}");
    // The agent closes it: the visitor gets the code with the agent's name.
    sara.recv_until(|f| matches!(f, ServerFrame::Message(m) if m.conversation == conversation))
        .await?;
    sara.send_json(&json!({"type": "close", "conversation": conversation}))
        .await?;
    let (closed, _) = visitor
        .recv_until(|f| matches!(event_of(f), Some((EventCode::ClosedByAgent, _))))
        .await?;
    ensure!(
        event_of(&closed).map(|(_, params)| params) == Some(json!({"agent": "sara"})),
        "{closed:?}"
    );
    // REST history: the same codes, stored with the lines.
    let history = admin.history(&conversation).await?;
    let codes: Vec<&str> = history
        .iter()
        .filter(|m| m["kind"] == "event")
        .map(|m| m["event"]["code"].as_str().unwrap_or("none"))
        .collect();
    ensure!(
        codes.contains(&"joined") && codes.contains(&"closed_by_agent"),
        "{history:?}"
    );
    ensure!(
        history
            .iter()
            .filter(|m| m["kind"] == "event")
            .all(|m| m["event"]["code"].is_string()),
        "every event line has a code: {history:?}"
    );
    // A replay after a reload carries them too.
    let token = visitor.token.clone().context("token")?;
    visitor.close().await;
    let mut again = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, Some(&token)).await?;
    let replay = resume_and_collect(&mut again, &conversation).await?;
    let replayed: Vec<EventCode> = replay
        .iter()
        .filter_map(event_of)
        .map(|(code, _)| code)
        .collect();
    ensure!(
        replayed.contains(&EventCode::Joined) && replayed.contains(&EventCode::ClosedByAgent),
        "{replay:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_told_logged_and_listed() -> Result<()> {
    let (_data, hub, admin, site) = hub_with_site(json!({"bot": false})).await?;
    let evil = "http://127.0.0.1:5555";
    // With ?site=: upgraded, told, closed with 1008; three times.
    for _ in 0..3 {
        let mut refused = Client::connect(
            hub.addr,
            &format!("/ws/visitor?site={}", site.key),
            Some(("Origin", evil.to_owned())),
        )
        .await?;
        let frame = refused.recv().await?;
        match &frame {
            ServerFrame::Error { code, message, .. } => {
                ensure!(*code == ErrorCode::OriginNotAllowed, "{frame:?}");
                ensure!(message == "chat is not enabled on this page", "{frame:?}");
            }
            other => bail!("expected origin_not_allowed, got {other:?}"),
        }
        match refused.ended().await {
            Ended::Closed(Some(close)) if u16::from(close.code) == 1008 => {}
            other => bail!("expected close 1008, got {other:?}"),
        }
    }
    // Without ?site=: the same at hello, from another origin.
    let other = "http://other.test";
    let mut at_hello = Client::connect_visitor(hub.addr, Some(other)).await?;
    at_hello
        .send_json(&json!({"type": "hello", "v": 1, "site": site.key}))
        .await?;
    ensure!(error_code(&at_hello.recv().await?) == Some(ErrorCode::OriginNotAllowed));
    // An unknown site key records nothing (and is refused before the upgrade).
    let unknown = Client::connect(
        hub.addr,
        "/ws/visitor?site=pk_nope",
        Some(("Origin", "http://flood.test".to_owned())),
    )
    .await;
    ensure!(unknown.is_err(), "an unknown site key was upgraded");
    // The site's admins see them, newest first, with counts.
    let listed = admin
        .get(&format!("/api/sites/{}/refused-origins", site.id))
        .await?;
    let origins = listed["origins"].as_array().context("origins")?;
    ensure!(origins.len() == 2, "{listed}");
    ensure!(
        origins[0]["origin"] == other && origins[0]["count"] == 1,
        "{listed}"
    );
    ensure!(
        origins[1]["origin"] == evil && origins[1]["count"] == 3,
        "{listed}"
    );
    ensure!(
        origins[1]["first_seen"].as_i64() <= origins[1]["last_seen"].as_i64(),
        "{listed}"
    );
    // One warning per site and origin, naming both.
    let log = hub.log_tail(500);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("visitor socket refused") && line.contains(evil))
        .collect();
    ensure!(warnings.len() == 1, "{log}");
    ensure!(warnings[0].contains(&site.id), "{log}");
    // An agent who is not an admin may not read them.
    admin
        .create_agent(
            "omar@shop.test",
            "correct horse battery staple",
            std::slice::from_ref(&site.id),
            None,
        )
        .await?;
    let omar = Api::login(hub.addr, "omar@shop.test", "correct horse battery staple").await?;
    let refused = omar
        .call(
            "GET",
            &format!("/api/sites/{}/refused-origins", site.id),
            None,
        )
        .await?;
    ensure!(refused.status == 403, "{}", refused.body);
    // Allowing it: the site's origins updated; it leaves the list and chat works there.
    admin
        .json(
            "PATCH",
            &format!("/api/sites/{}", site.id),
            Some(&json!({"origins": [SHOP_ORIGIN, evil]})),
        )
        .await?;
    let listed = admin
        .get(&format!("/api/sites/{}/refused-origins", site.id))
        .await?;
    ensure!(
        listed["origins"]
            .as_array()
            .is_some_and(|o| o.len() == 1 && o[0]["origin"] == other),
        "{listed}"
    );
    visitor_session(hub.addr, evil, &site.key, None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_online_is_one_state_with_a_callback_offer() -> Result<()> {
    let (_data, hub, admin, site) = hub_with_site(json!({"bot": false})).await?;
    let mut visitor = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    match &visitor.welcome {
        Some(ServerFrame::Welcome { team, .. }) => {
            ensure!(team.is_some_and(|team| !team.online), "{team:?}")
        }
        other => bail!("{other:?}"),
    }
    let conversation = say(&mut visitor, "anyone there?").await?;
    let (queue, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Queue { .. }))
        .await?;
    ensure!(
        matches!(
            queue,
            ServerFrame::Queue {
                agents_online: false,
                offer_callback: true,
                ..
            }
        ),
        "{queue:?}"
    );
    // An agent comes online: the next visitor is told so.
    let _sara = online_agent(&hub, &admin, &site, "Sara").await?;
    let second = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    match &second.welcome {
        Some(ServerFrame::Welcome { team, .. }) => {
            ensure!(team.is_some_and(|team| team.online), "{team:?}")
        }
        other => bail!("{other:?}"),
    }
    let _ = conversation;
    Ok(())
}

/// Outside business hours an online agent still gets the chat (routing follows
/// presence), so everything the visitor is told follows presence too: the team is
/// online, and the bot does not say it is offline nor ask for contact details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_business_hours_an_online_agent_answers_and_the_visitor_is_told_so() -> Result<()> {
    // Open on no day: always outside business hours.
    let (_data, hub, admin, site) = hub_with_site(json!({
        "bot": true,
        "business_hours": {"utc_offset_minutes": 0, "open": {}},
    }))
    .await?;
    let _sara = online_agent(&hub, &admin, &site, "Sara").await?;
    // The widget's settings say the same: closed by the hours, yet someone is there.
    let config = admin.get(&format!("/api/widget/{}", site.key)).await?;
    ensure!(
        config["open"] == false && config["agents_online"] == true,
        "{config}"
    );
    let mut visitor = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    match &visitor.welcome {
        Some(ServerFrame::Welcome { team, .. }) => {
            ensure!(team.is_some_and(|team| team.online), "{team:?}")
        }
        other => bail!("{other:?}"),
    }
    say(&mut visitor, "I want to talk to a person please").await?;
    let (joined, before) = visitor
        .recv_until(|f| matches!(event_of(f), Some((EventCode::Joined, _))))
        .await?;
    ensure!(
        joined_by(&joined).is_some_and(|name| name.eq_ignore_ascii_case("sara")),
        "{joined:?}"
    );
    // The hand-off's own lines (the bot's, a form) may follow the agent's arrival:
    // everything up to the answer to a later ping.
    visitor
        .send_json(&json!({"type": "ping", "nonce": 7}))
        .await?;
    let (_, after) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Pong { nonce: Some(7) }))
        .await?;
    ensure!(
        !before.iter().chain(&after).any(|f| matches!(
            f,
            ServerFrame::Form {
                form: FormKind::Contact,
                ..
            } | ServerFrame::Queue {
                agents_online: false,
                ..
            }
        )),
        "told nobody can answer while Sara is online: {before:?}"
    );
    Ok(())
}

fn joined_by(frame: &ServerFrame) -> Option<String> {
    event_of(frame).and_then(|(_, params)| params["agent"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_offers_a_callback_past_the_sites_threshold() -> Result<()> {
    let (_data, hub, admin, site) = hub_with_site(json!({"bot": false})).await?;
    // The setting is checked like the others.
    let refused = admin
        .call(
            "PUT",
            &format!("/api/sites/{}/settings", site.id),
            Some(&json!({"bot": false, "callback_after_secs": 100000})),
        )
        .await?;
    ensure!(
        refused.status == 400 && refused.body.contains("callback_after_secs"),
        "{}",
        refused.body
    );
    let settings = admin.get("/api/sites").await?;
    let mine = settings["sites"]
        .as_array()
        .and_then(|sites| sites.iter().find(|s| s["id"] == site.id.as_str()))
        .context("the site")?;
    ensure!(
        mine["settings"]["callback_after_secs"] == 600,
        "default 600: {mine}"
    );
    // Sara (capacity 1) is busy with a first chat; the second waits about the default
    // handling time (minutes): under 600 s no offer, with a 60 s threshold an offer.
    let _sara = online_agent(&hub, &admin, &site, "Sara").await?;
    let mut first = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    say(&mut first, "first").await?;
    first
        .recv_until(|f| matches!(event_of(f), Some((EventCode::Joined, _))))
        .await?;
    let mut second = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    say(&mut second, "second").await?;
    let (queue, _) = second
        .recv_until(|f| matches!(f, ServerFrame::Queue { .. }))
        .await?;
    let ServerFrame::Queue {
        wait_secs,
        agents_online,
        offer_callback,
        ..
    } = queue
    else {
        unreachable!()
    };
    ensure!(agents_online, "{queue:?}");
    ensure!((60..600).contains(&wait_secs), "{queue:?}");
    ensure!(!offer_callback, "{queue:?}");
    admin
        .json(
            "PUT",
            &format!("/api/sites/{}/settings", site.id),
            Some(&json!({"bot": false, "callback_after_secs": 60})),
        )
        .await?;
    let (queue, _) = second
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::Queue {
                    offer_callback: true,
                    ..
                }
            )
        })
        .await?;
    ensure!(
        matches!(
            queue,
            ServerFrame::Queue {
                agents_online: true,
                ..
            }
        ),
        "{queue:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reload_the_queue_form_and_last_closed_conversation_come_back() -> Result<()> {
    let (_data, hub, admin, site) = hub_with_site(json!({"bot": false})).await?;
    let mut visitor = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    let conversation = say(&mut visitor, "hello?").await?;
    visitor
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::Form {
                    form: FormKind::Contact,
                    ..
                }
            )
        })
        .await?;
    let token = visitor.token.clone().context("token")?;
    visitor.close().await;

    // Reload: right after `resumed`, the queue place and the unanswered contact form.
    let mut again = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, Some(&token)).await?;
    let frames = resume_and_collect(&mut again, &conversation).await?;
    let resumed = frames
        .iter()
        .position(|f| matches!(f, ServerFrame::Resumed { .. }))
        .context("resumed")?;
    let after: Vec<&ServerFrame> = frames[resumed + 1..].iter().collect();
    ensure!(
        matches!(
            after.first(),
            Some(ServerFrame::Queue {
                position: 1,
                agents_online: false,
                ..
            })
        ),
        "{frames:?}"
    );
    ensure!(
        after.iter().any(|f| matches!(
            f,
            ServerFrame::Form {
                form: FormKind::Contact,
                ..
            }
        )),
        "{frames:?}"
    );

    // The visitor answers it: the details land on the conversation's visitor record.
    again
        .send_json(&json!({"type": "contact", "conversation": conversation, "name": "Layla Haddad", "email": "layla@example.com", "phone": "+971 50 123 4567", "message": "call me after 5"}))
        .await?;
    wait_until("the contact details on the conversation", || async {
        let found = admin
            .get(&format!("/api/conversations/{conversation}"))
            .await?;
        Ok(found["contact"]["email"] == "layla@example.com")
    })
    .await?;
    let found = admin
        .get(&format!("/api/conversations/{conversation}"))
        .await?;
    ensure!(found["visitor"]["name"] == "Layla Haddad", "{found}");
    ensure!(found["visitor"]["email"] == "layla@example.com", "{found}");
    ensure!(found["visitor"]["phone"] == "+971 50 123 4567", "{found}");
    ensure!(found["contact"]["message"] == "call me after 5", "{found}");
    ensure!(
        found["conversation"]["visitor"]["name"] == "Layla Haddad",
        "{found}"
    );
    let listed = admin.open_conversations(&site.id).await?;
    ensure!(
        listed
            .iter()
            .any(|c| c["id"] == conversation.as_str() && c["visitor"]["name"] == "Layla Haddad"),
        "{listed:?}"
    );
    again.close().await;
    // Answered: a reload no longer asks for it.
    let mut third = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, Some(&token)).await?;
    let frames = resume_and_collect(&mut third, &conversation).await?;
    ensure!(
        !frames.iter().any(|f| matches!(f, ServerFrame::Form { .. })),
        "{frames:?}"
    );

    // The visitor closes it; the next visit lists it, closed, and may replay it.
    third
        .send_json(&json!({"type": "close", "conversation": conversation}))
        .await?;
    third
        .recv_until(|f| matches!(event_of(f), Some((EventCode::ClosedByVisitor, _))))
        .await?;
    third.close().await;
    let mut back = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, Some(&token)).await?;
    match &back.welcome {
        Some(ServerFrame::Welcome { conversations, .. }) => ensure!(
            conversations
                .iter()
                .any(|c| c.id == conversation && c.state == ConversationState::Closed),
            "{conversations:?}"
        ),
        other => bail!("{other:?}"),
    }
    let replay = resume_and_collect(&mut back, &conversation).await?;
    ensure!(
        replay
            .iter()
            .any(|f| matches!(f, ServerFrame::Message(m) if m.text == "hello?")),
        "{replay:?}"
    );
    ensure!(
        replay
            .iter()
            .any(|f| matches!(f, ServerFrame::Resumed { .. })),
        "{replay:?}"
    );
    // A new conversation replaces it in the list once it is open.
    let newer = say(&mut back, "a new question").await?;
    back.close().await;
    let last = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, Some(&token)).await?;
    match &last.welcome {
        Some(ServerFrame::Welcome { conversations, .. }) => ensure!(
            conversations.len() == 1 && conversations[0].id == newer,
            "{conversations:?}"
        ),
        other => bail!("{other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_and_idle_closes_are_codes_too() -> Result<()> {
    let data = tempfile::tempdir()?;
    let hub = HubProcess::start(data.path(), "[routing]\nauto_close_secs = 5\n").await?;
    let admin = hub.admin().await?;
    let site = admin
        .create_site("Transfers", SHOP_ORIGIN, json!({"bot": false}))
        .await?;
    admin
        .json(
            "POST",
            "/api/departments",
            Some(&json!({"site_id": site.id, "name": "billing"})),
        )
        .await?;
    // Sara (who serves billing too) gets the chat; Omar comes online after.
    let (mut sara, _) = agent_in(&hub, &admin, &site, "Sara", &["billing"]).await?;
    // Omar signs in now (password hashing is slow on a busy machine) and connects
    // later, so the conversation does not sit idle meanwhile.
    let omar_id = admin
        .create_agent(
            "omar@shop.test",
            "correct horse battery staple",
            std::slice::from_ref(&site.id),
            Some(1),
        )
        .await?;
    let omar_api = Api::login(hub.addr, "omar@shop.test", "correct horse battery staple").await?;
    let mut visitor = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    let conversation = say(&mut visitor, "my invoice is wrong").await?;
    visitor
        .recv_until(|f| matches!(event_of(f), Some((EventCode::Joined, _))))
        .await?;
    let mut omar = agent_session(hub.addr, &omar_api.token).await?;
    wait_until("Omar online", || async {
        let agents = admin.get(&format!("/api/agents?site={}", site.id)).await?;
        Ok(agents["sites"][&site.id].as_array().is_some_and(|agents| {
            agents
                .iter()
                .any(|a| a["id"] == omar_id.as_str() && a["presence"] == "online")
        }))
    })
    .await?;
    sara.send_json(&json!({"type": "transfer", "conversation": conversation, "agent": omar_id}))
        .await?;
    let (line, _) = visitor
        .recv_until(|f| matches!(event_of(f), Some((EventCode::TransferredToAgent, _))))
        .await?;
    ensure!(
        event_of(&line).map(|(_, params)| params) == Some(json!({"agent": "omar"})),
        "{line:?}"
    );
    omar.recv_until(|f| matches!(f, ServerFrame::Message(m) if m.conversation == conversation))
        .await
        .context("omar gets the conversation")?;
    omar.send_json(
        &json!({"type": "transfer", "conversation": conversation, "department": "billing"}),
    )
    .await?;
    let (line, _) = visitor
        .recv_until(|f| matches!(event_of(f), Some((EventCode::TransferredToDepartment, _))))
        .await
        .context("to billing")?;
    ensure!(
        event_of(&line).map(|(_, params)| params) == Some(json!({"department": "billing"})),
        "{line:?}"
    );
    let ServerFrame::Message(message) = &line else {
        unreachable!()
    };
    ensure!(
        message.text == "transferred to the billing team",
        "{message:?}"
    );
    // Left alone, it is closed for inactivity, with the minutes as a param.
    let (line, _) = visitor
        .recv_until(|f| matches!(event_of(f), Some((EventCode::ClosedIdle, _))))
        .await
        .context("idle close")?;
    ensure!(
        event_of(&line).map(|(_, params)| params) == Some(json!({"minutes": "1"})),
        "{line:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_details_show_on_the_conversation_but_never_over_a_verified_name() -> Result<()> {
    let (_data, hub, admin, site) = hub_with_site(json!({"bot": false})).await?;
    let sites = admin.get("/api/sites").await?;
    let secret = sites["sites"]
        .as_array()
        .and_then(|sites| sites.iter().find(|s| s["id"] == site.id.as_str()))
        .and_then(|s| s["identity_secret"].as_str())
        .context("identity secret")?
        .to_owned();
    let mut visitor = visitor_session(hub.addr, SHOP_ORIGIN, &site.key, None).await?;
    let conversation = say(&mut visitor, "hello").await?;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let token = salam_e2e::sign_identity(
        &secret,
        &json!({"sub": "customer-7", "name": "Mona Verified", "exp": exp}),
    );
    visitor
        .send_json(&json!({"type": "identify", "token": token}))
        .await?;
    wait_until("the identity", || async {
        let found = admin
            .get(&format!("/api/conversations/{conversation}"))
            .await?;
        Ok(found["identified"] == true)
    })
    .await?;
    visitor
        .send_json(&json!({"type": "contact", "conversation": conversation, "name": "Someone Else", "email": "mona@example.com"}))
        .await?;
    wait_until("the contact on the conversation", || async {
        let found = admin
            .get(&format!("/api/conversations/{conversation}"))
            .await?;
        Ok(found["contact"]["name"] == "Someone Else")
    })
    .await?;
    let found = admin
        .get(&format!("/api/conversations/{conversation}"))
        .await?;
    ensure!(found["visitor"]["name"] == "Mona Verified", "{found}");
    ensure!(found["visitor"]["email"] == "mona@example.com", "{found}");
    ensure!(
        found["conversation"]["visitor"]["name"] == "Mona Verified",
        "{found}"
    );
    Ok(())
}
