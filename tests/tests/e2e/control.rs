//! The control plane through the real hub: live agent authority (revocation reaches
//! open sockets), capacity per agent across sites, sites created while agents are
//! online, take from the bot, presence across sessions, fan-out by subscription, and
//! state changes that never undo a close. Every "within a second" of the issue is
//! checked against a 3-second deadline (CI runs on two shared cores).

use salam_e2e::{AGENT_PASSWORD, AccountSetup, Client, Ended, TestHub};
use salam_protocol::{AuthorKind, ConversationState, ErrorCode, Presence, Role, ServerFrame};
use salam_store::AgentRole;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The deadline for a change to reach an open socket.
const WITHIN: Duration = Duration::from_secs(3);

/// Waits for the socket to close and returns its close code, within [`WITHIN`].
async fn closed_with(client: &mut Client) -> anyhow::Result<(u16, Duration)> {
    let started = Instant::now();
    let ended = tokio::time::timeout(WITHIN, client.ended())
        .await
        .map_err(|_| anyhow::anyhow!("the socket was still open after {WITHIN:?}"))?;
    match ended {
        Ended::Closed(Some(frame)) => Ok((u16::from(frame.code), started.elapsed())),
        other => anyhow::bail!("the socket ended without a close code: {other:?}"),
    }
}

async fn visitor_says(hub: &TestHub, text: &str) -> anyhow::Result<(Client, String)> {
    hub.visitor_says(text).await
}

/// An agent of the test site named `name` (e-mail `name@shop.test`): id and token.
async fn agent_named(
    hub: &TestHub,
    name: &str,
    capacity: Option<u32>,
) -> anyhow::Result<(String, String)> {
    hub.add_account(AccountSetup {
        name,
        capacity,
        ..AccountSetup::agent_of(&[&hub.site.id])
    })
    .await
}

/// A visitor of another site (its origin and key).
async fn visitor_of(hub: &TestHub, origin: &str, key: &str) -> anyhow::Result<Client> {
    let mut client = Client::connect_visitor(hub.addr, Some(origin)).await?;
    client
        .send_json(&json!({"type": "hello", "v": 1, "site": key}))
        .await?;
    let welcome = client.recv().await?;
    anyhow::ensure!(
        matches!(welcome, ServerFrame::Welcome { .. }),
        "{welcome:?}"
    );
    Ok(client)
}

async fn wait_for(
    hub: &TestHub,
    conversation: &str,
    want: impl Fn(&salam_store::Conversation) -> bool,
) -> anyhow::Result<salam_store::Conversation> {
    hub.wait_for(conversation, want).await
}

fn welcome_of(client: &Client) -> (Role, Vec<String>, Option<Presence>) {
    match &client.welcome {
        Some(ServerFrame::Welcome {
            role,
            sites,
            presence,
            ..
        }) => (*role, sites.clone(), *presence),
        _ => panic!("no welcome"),
    }
}

/// Regression (control plane): an agent who logged out, was disabled, lost a site or
/// was demoted kept an open socket with their old powers, indefinitely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_open_sockets() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.routing.grace_secs = 1).await?;
    let admin = hub.admin_token().await?;
    let other = hub
        .create_site("Other", &["http://other.test".to_owned()])
        .await?;
    hub.set_site_settings(r#"{"bot": false}"#).await?;

    // Logged out: the socket of that session closes with 4001.
    let (_, layla_token) = agent_named(&hub, "Layla", None).await?;
    let mut layla = hub.agent(&layla_token).await?;
    let (status, _) = hub
        .rest(&layla_token, "POST", "/api/logout", Value::Null)
        .await?;
    assert_eq!(status, 200);
    let (code, took) = closed_with(&mut layla).await?;
    assert_eq!(code, 4001, "logout ends the session's sockets");
    eprintln!("logout reached the socket in {took:?}");

    // Disabled: the socket closes, and the chat they held goes to someone else.
    let (omar_id, omar_token) = agent_named(&hub, "Omar", Some(3)).await?;
    let mut omar = hub.agent(&omar_token).await?;
    let (_visitor, chat) = visitor_says(&hub, "my order is late").await?;
    wait_for(&hub, &chat, |c| {
        c.agent_id.as_deref() == Some(omar_id.as_str())
    })
    .await?;
    let (status, body) = hub
        .rest(
            &admin,
            "PATCH",
            &format!("/api/admin/agents/{omar_id}"),
            json!({"disabled": true}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (code, took) = closed_with(&mut omar).await?;
    assert_eq!(code, 4001, "a disabled account's sockets close");
    eprintln!("disable reached the socket in {took:?}");
    let requeued = wait_for(&hub, &chat, |c| c.state == ConversationState::Queued).await?;
    assert_eq!(requeued.agent_id, None, "routing took the chat back");
    let refused = Client::connect_agent(hub.addr, &omar_token).await;
    assert!(salam_e2e::refused_with(&refused, 401));

    // A site removed: the socket closes with 4003 and the reconnect sees one site; a
    // conversation of the lost site is refused like a missing one.
    let (nadia_id, nadia_token) = hub
        .add_account(AccountSetup {
            name: "Nadia",
            ..AccountSetup::agent_of(&[&hub.site.id, &other.id])
        })
        .await?;
    let mut nadia = hub.agent(&nadia_token).await?;
    let (_, sites, _) = welcome_of(&nadia);
    assert_eq!(sites.len(), 2);
    let (status, _) = hub
        .rest(
            &admin,
            "PATCH",
            &format!("/api/admin/agents/{nadia_id}"),
            json!({"site_ids": [other.id]}),
        )
        .await?;
    assert_eq!(status, 200);
    let (frame, _) = nadia
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert!(
        matches!(
            frame,
            ServerFrame::Error {
                code: ErrorCode::AccessChanged,
                ..
            }
        ),
        "{frame:?}"
    );
    let (code, _) = closed_with(&mut nadia).await?;
    assert_eq!(code, 4003, "a narrowed scope makes the console reconnect");
    let mut nadia = hub.agent(&nadia_token).await?;
    assert_eq!(welcome_of(&nadia).1, vec![other.id.clone()]);
    nadia.watch(&chat, 0).await?;
    let (frame, _) = nadia
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert!(matches!(
        frame,
        ServerFrame::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    let (status, _) = hub
        .rest(
            &nadia_token,
            "GET",
            &format!("/api/conversations/{chat}"),
            Value::Null,
        )
        .await?;
    assert_eq!(status, 404, "the lost site's conversation reads as missing");

    // Demoted: the socket closes with 4003; the reconnect is an agent's, admin routes
    // answer 403, and alerts stop.
    let (boss_id, boss_token) = hub
        .add_account(AccountSetup {
            name: "Boss",
            role: AgentRole::Admin,
            ..AccountSetup::agent_of(&[&hub.site.id])
        })
        .await?;
    let mut boss = hub.agent(&boss_token).await?;
    assert_eq!(welcome_of(&boss).0, Role::Admin);
    let (status, _) = hub
        .rest(&boss_token, "GET", "/api/admin/agents", Value::Null)
        .await?;
    assert_eq!(status, 200);
    let (status, _) = hub
        .rest(
            &admin,
            "PATCH",
            &format!("/api/admin/agents/{boss_id}"),
            json!({"role": "agent"}),
        )
        .await?;
    assert_eq!(status, 200);
    let (code, _) = closed_with(&mut boss).await?;
    assert_eq!(code, 4003);
    let mut boss = hub.agent(&boss_token).await?;
    assert_eq!(welcome_of(&boss).0, Role::Agent);
    let (status, _) = hub
        .rest(&boss_token, "GET", "/api/admin/agents", Value::Null)
        .await?;
    assert_eq!(status, 403);
    // A low rating alerts the admins only.
    let (mut rater, rated) = visitor_says(&hub, "hello").await?;
    rater
        .send_json(&json!({"type": "close", "conversation": rated}))
        .await?;
    wait_for(&hub, &rated, |c| c.state == ConversationState::Closed).await?;
    rater
        .send_json(&json!({"type": "rate", "conversation": rated, "score": 1}))
        .await?;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while let Ok(frame) = tokio::time::timeout_at(deadline.into(), boss.recv()).await {
        assert!(
            !matches!(frame?, ServerFrame::Alert { .. }),
            "a demoted admin still gets alerts"
        );
    }
    Ok(())
}

/// A session that expires, and a password changed in another session, end the socket.
#[tokio::test]
async fn expiry_and_a_new_password_end_sessions() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, first_token) = agent_named(&hub, "Sara", None).await?;
    // A session that ends in 1.5 s.
    let short = "a-short-session-token";
    hub.state
        .store
        .create_session(
            &salam_hub::auth::session_hash(short),
            &sara_id,
            salam_hub::clock::now_ms() + 1500,
        )
        .await?;
    let mut expiring = hub.agent(short).await?;
    let (code, took) = closed_with(&mut expiring).await?;
    assert_eq!(code, 4001);
    assert!(
        took >= Duration::from_millis(1000),
        "closed early: {took:?}"
    );

    // Two consoles; the password changes in the first: the second closes.
    let second_token = hub.login("sara@shop.test", AGENT_PASSWORD).await?;
    let mut first = hub.agent(&first_token).await?;
    let mut second = hub.agent(&second_token).await?;
    let (status, body) = hub
        .rest(
            &first_token,
            "POST",
            "/api/me/password",
            json!({"current": "wrong password!", "new": "a brand new secret"}),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    let (status, body) = hub
        .rest(
            &first_token,
            "POST",
            "/api/me/password",
            json!({"current": AGENT_PASSWORD, "new": "short"}),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = hub
        .rest(
            &first_token,
            "POST",
            "/api/me/password",
            json!({"current": AGENT_PASSWORD, "new": "a brand new secret"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (code, _) = closed_with(&mut second).await?;
    assert_eq!(code, 4001);
    first
        .send_json(&json!({"type": "ping", "nonce": 7}))
        .await?;
    let (pong, _) = first
        .recv_until(|f| matches!(f, ServerFrame::Pong { .. }))
        .await?;
    assert!(
        matches!(pong, ServerFrame::Pong { nonce: Some(7) }),
        "this session stays"
    );
    assert!(
        hub.login("sara@shop.test", "a brand new secret")
            .await
            .is_ok()
    );
    Ok(())
}

/// Regression (control plane): capacity was counted per site, so an agent with
/// capacity 5 held 7 chats across two sites.
#[tokio::test]
async fn capacity_counts_every_site_of_the_agent() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let other = hub
        .create_site("Other", &["http://other.test".to_owned()])
        .await?;
    hub.state
        .store
        .update_site_settings(&other.id, r#"{"bot": false}"#)
        .await?;
    let (sara_id, sara_token) = hub
        .add_account(AccountSetup {
            name: "Sara",
            capacity: Some(2),
            ..AccountSetup::agent_of(&[&hub.site.id, &other.id])
        })
        .await?;
    let mut sara = hub.agent(&sara_token).await?;
    let (_a, first) = visitor_says(&hub, "one").await?;
    let mut b = visitor_of(&hub, "http://other.test", &other.key).await?;
    b.send_json(&json!({"type": "send", "client_id": "b1", "text": "two"}))
        .await?;
    let (ack, _) = b
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack {
        conversation: second,
        ..
    } = ack
    else {
        unreachable!()
    };
    let (_c, third) = visitor_says(&hub, "three").await?;
    let mine = |c: &salam_store::Conversation| c.agent_id.as_deref() == Some(sara_id.as_str());
    wait_for(&hub, &first, mine).await?;
    wait_for(&hub, &second, mine).await?;
    wait_for(&hub, &third, |c| c.state == ConversationState::Queued).await?;
    // Not by a take either.
    sara.send_json(&json!({"type": "take", "conversation": third}))
        .await?;
    let (frame, _) = sara
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert!(
        matches!(
            frame,
            ServerFrame::Error {
                code: ErrorCode::AtCapacity,
                ..
            }
        ),
        "{frame:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = hub.state.store.conversation(&third).await?.expect("stored");
    assert_eq!(still.state, ConversationState::Queued, "a third chat waits");
    let agents = hub
        .rest(&sara_token, "GET", "/api/agents", Value::Null)
        .await?
        .1;
    for site in [&hub.site.id, &other.id] {
        let listed = agents["sites"][site.as_str()]
            .as_array()
            .and_then(|listed| listed.iter().find(|agent| agent["id"] == sara_id.as_str()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (listed["load"].as_u64(), listed["capacity"].as_u64()),
            (Some(2), Some(2)),
            "{agents}"
        );
    }
    // Closing one frees the seat at once, whichever site it was on.
    sara.send_json(&json!({"type": "close", "conversation": second}))
        .await?;
    wait_for(&hub, &third, mine).await?;
    Ok(())
}

/// Regression (control plane): a site created while agents were online was invisible
/// to them: its visitors were told nobody was there, and its queue stayed empty until
/// the console was reloaded.
#[tokio::test]
async fn a_site_created_while_agents_are_online_is_served_at_once() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin_token = hub.admin_token().await?;
    let mut admin = hub.admin_agent().await?;
    let (status, created) = hub
        .rest(
            &admin_token,
            "POST",
            "/api/sites",
            json!({"name": "New Shop", "origins": ["http://new.test"]}),
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
    let (status, _) = hub
        .rest(
            &admin_token,
            "PUT",
            &format!("/api/sites/{site_id}/settings"),
            json!({"bot": false}),
        )
        .await?;
    assert_eq!(status, 200);
    let widget =
        salam_e2e::http_request(hub.addr, "GET", &format!("/api/widget/{key}"), &[], "").await?;
    let widget: Value = serde_json::from_str(&widget.body)?;
    assert_eq!(widget["agents_online"], true, "{widget}");
    let mut visitor = visitor_of(&hub, "http://new.test", &key).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "n1", "text": "hello new shop"}))
        .await?;
    let started = Instant::now();
    let (frame, skipped) = visitor
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
    let ServerFrame::State { conversation, .. } = frame else {
        unreachable!()
    };
    assert!(started.elapsed() < WITHIN, "took {:?}", started.elapsed());
    assert!(
        !skipped
            .iter()
            .any(|f| matches!(f, ServerFrame::Form { .. })),
        "the visitor was offered a callback although the admin is online: {skipped:?}"
    );
    // The admin's open console heard of it, with no reconnect.
    let (frame, _) = admin
        .recv_until(|f| matches!(f, ServerFrame::Conversation { conversation: c } if c.id == conversation && c.state == ConversationState::Assigned))
        .await?;
    assert!(matches!(frame, ServerFrame::Conversation { conversation: c } if c.site == site_id));
    Ok(())
}

/// Regression (control plane): `take` answered `not_found` while the bot had the
/// conversation, and an agent replying anyway did not stop the bot.
#[tokio::test]
async fn take_from_the_bot_and_the_bot_says_nothing_more() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    hub.set_site_settings(r#"{"bot": true}"#).await?;
    let (sara_id, sara_token) = agent_named(&hub, "Sara", None).await?;
    let mut sara = hub.agent(&sara_token).await?;
    for by_reply in [false, true] {
        let (mut visitor, chat) = visitor_says(&hub, "what are your opening hours?").await?;
        visitor
            .recv_until(
                |f| matches!(f, ServerFrame::Message(m) if m.author.kind == AuthorKind::Bot),
            )
            .await?;
        let found = hub.state.store.conversation(&chat).await?.expect("stored");
        assert_eq!(found.state, ConversationState::Bot);
        let started = Instant::now();
        if by_reply {
            // Replying in the bot's conversation takes it.
            sara.send_json(&json!({"type": "send", "conversation": chat, "client_id": "r1", "text": "Hi, I am Sara."}))
                .await?;
        } else {
            sara.send_json(&json!({"type": "take", "conversation": chat}))
                .await?;
        }
        let taken = wait_for(&hub, &chat, |c| c.state == ConversationState::Assigned).await?;
        assert_eq!(taken.agent_id.as_deref(), Some(sara_id.as_str()));
        assert!(started.elapsed() < WITHIN, "took {:?}", started.elapsed());
        visitor
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
        // The bot says nothing more, whatever the visitor asks.
        visitor
            .send_json(
                &json!({"type": "send", "client_id": "q2", "text": "and how do returns work?"}),
            )
            .await?;
        let deadline = Instant::now() + Duration::from_millis(1500);
        while let Ok(frame) = tokio::time::timeout_at(deadline.into(), visitor.recv()).await {
            if let ServerFrame::Message(message) = frame? {
                assert_ne!(
                    message.author.kind,
                    AuthorKind::Bot,
                    "the bot spoke after a take: {message:?}"
                );
            }
        }
        let history = hub.state.store.messages_after(&chat, 0, 100).await?;
        assert_eq!(
            history
                .iter()
                .filter(|m| m.author.kind == AuthorKind::Bot)
                .count(),
            1,
            "only the first answer is the bot's"
        );
    }
    Ok(())
}

/// Regression (control plane): "away" chosen in one session was not shown in the
/// agent's other open console.
#[tokio::test]
async fn presence_changed_in_one_session_shows_in_the_other() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (_, first_token) = agent_named(&hub, "Sara", None).await?;
    let second_token = hub.login("sara@shop.test", AGENT_PASSWORD).await?;
    let mut first = hub.agent(&first_token).await?;
    let mut second = hub.agent(&second_token).await?;
    assert_eq!(welcome_of(&second).2, Some(Presence::Online));
    first
        .send_json(&json!({"type": "presence", "presence": "away"}))
        .await?;
    let started = Instant::now();
    let (frame, _) = second
        .recv_until(|f| matches!(f, ServerFrame::Presence { .. }))
        .await?;
    assert!(matches!(
        frame,
        ServerFrame::Presence {
            presence: Presence::Away
        }
    ));
    assert!(started.elapsed() < WITHIN);
    // The sender's own console shows it too, and a console opened later starts away.
    first
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::Presence {
                    presence: Presence::Away
                }
            )
        })
        .await?;
    let third = hub.agent(&first_token).await?;
    assert_eq!(welcome_of(&third).2, Some(Presence::Away));
    // Away gets no new chat.
    let (_visitor, chat) = visitor_says(&hub, "anyone?").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = hub.state.store.conversation(&chat).await?.expect("stored");
    assert_eq!(found.state, ConversationState::Queued);
    // Back online in the other session: the chat comes at once.
    second
        .send_json(&json!({"type": "presence", "presence": "online"}))
        .await?;
    first
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::Presence {
                    presence: Presence::Online
                }
            )
        })
        .await?;
    wait_for(&hub, &chat, |c| c.state == ConversationState::Assigned).await?;
    Ok(())
}

/// Regression (control plane): every message of every conversation went to every agent
/// of the site. An agent now gets the full stream of their own and watched
/// conversations, and summaries (`activity`) of the rest.
#[tokio::test]
async fn agents_get_summaries_of_others_conversations_and_streams_of_their_own()
-> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, sara_token) = agent_named(&hub, "Sara", None).await?;
    let mut sara = hub.agent(&sara_token).await?;
    let (mut visitor, chat) = visitor_says(&hub, "first").await?;
    wait_for(&hub, &chat, |c| {
        c.agent_id.as_deref() == Some(sara_id.as_str())
    })
    .await?;
    // Omar, online later (the chat is Sara's), is away so he takes nothing.
    let (_, omar_token) = agent_named(&hub, "Omar", None).await?;
    let mut omar = hub.agent(&omar_token).await?;
    omar.send_json(&json!({"type": "presence", "presence": "away"}))
        .await?;
    omar.recv_until(|f| {
        matches!(
            f,
            ServerFrame::Presence {
                presence: Presence::Away
            }
        )
    })
    .await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "v2", "text": "second"}))
        .await?;
    let (frame, _) = sara
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.text == "second"))
        .await?;
    assert!(
        matches!(frame, ServerFrame::Message(_)),
        "the assignee gets the stream"
    );
    let (frame, skipped) = omar
        .recv_until(|f| matches!(f, ServerFrame::Activity { .. }))
        .await?;
    let ServerFrame::Activity {
        conversation,
        preview,
        unread,
        ..
    } = frame
    else {
        unreachable!()
    };
    assert_eq!(
        (conversation.as_str(), preview.text.as_str()),
        (chat.as_str(), "second")
    );
    assert!(unread >= 1);
    assert!(
        !skipped.iter().any(|f| matches!(f, ServerFrame::Message(_))),
        "Omar got a message of a conversation he does not follow: {skipped:?}"
    );
    // Watching it (opening it in the console) brings the stream; unwatching stops it.
    omar.watch(&chat, 0).await?;
    omar.recv_until(|f| matches!(f, ServerFrame::Resumed { .. }))
        .await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "v3", "text": "third"}))
        .await?;
    omar.recv_until(|f| matches!(f, ServerFrame::Message(m) if m.text == "third"))
        .await?;
    omar.send_json(&json!({"type": "unwatch", "conversation": chat}))
        .await?;
    // (The unwatch is handled before the next frame the visitor sends is delivered.)
    omar.send_json(&json!({"type": "ping", "nonce": 1})).await?;
    omar.recv_until(|f| matches!(f, ServerFrame::Pong { .. }))
        .await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "v4", "text": "fourth"}))
        .await?;
    let (_, skipped) = omar
        .recv_until(
            |f| matches!(f, ServerFrame::Activity { preview, .. } if preview.text == "fourth"),
        )
        .await?;
    assert!(!skipped.iter().any(|f| matches!(f, ServerFrame::Message(_))));
    // Sara's own replies come back only as acks, in order (how many commits they
    // share depends on the machine's load: the benchmarks measure that).
    for index in 0..20 {
        sara.send_json(&json!({"type": "send", "conversation": chat, "client_id": format!("s{index}"), "text": format!("reply {index}")}))
            .await?;
    }
    let mut acks = Vec::new();
    while acks.len() < 20 {
        match sara.recv().await? {
            ServerFrame::Ack { client_id, .. } => acks.push(client_id),
            ServerFrame::Message(m) => {
                assert!(
                    m.author.kind != AuthorKind::Agent,
                    "Sara got her own reply back: {m:?}"
                )
            }
            _ => {}
        }
    }
    assert_eq!(
        acks,
        (0..20).map(|i| format!("s{i}")).collect::<Vec<_>>(),
        "acks in order"
    );
    let found = hub.state.store.conversation(&chat).await?.expect("stored");
    assert_eq!(found.unread, 0, "a reply reads the conversation");
    Ok(())
}

/// Regression (control plane): an assignment racing a visitor's close could reopen the
/// closed conversation (an unconditional UPDATE). Visitors close the moment they send,
/// while an agent comes online: every conversation ends closed and the agent holds
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_racing_an_assignment_is_never_undone() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, sara_token) = agent_named(&hub, "Sara", Some(100)).await?;
    let mut chats = Vec::new();
    let mut sara = None;
    for index in 0..40 {
        let mut visitor = hub.visitor(None).await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "x", "text": format!("q{index}")}))
            .await?;
        let (ack, _) = visitor
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
            .await?;
        let ServerFrame::Ack { conversation, .. } = ack else {
            unreachable!()
        };
        visitor
            .send_json(&json!({"type": "close", "conversation": conversation}))
            .await?;
        chats.push((visitor, conversation));
        if index == 10 {
            sara = Some(hub.agent(&sara_token).await?);
        }
    }
    for (_, chat) in &chats {
        wait_for(&hub, chat, |c| c.state == ConversationState::Closed).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (_, chat) in &chats {
        let found = hub.state.store.conversation(chat).await?.expect("stored");
        assert_eq!(
            found.state,
            ConversationState::Closed,
            "{chat} was reopened"
        );
    }
    let view = hub.state.routing.view();
    let load = view.agents.get(&sara_id).map(|status| status.load);
    assert_eq!(load, Some(0), "routing holds no closed chat");
    drop(sara);
    Ok(())
}
