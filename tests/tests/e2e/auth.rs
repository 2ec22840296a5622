//! Identity: visitor tokens, origins, agent sessions.

use salam_e2e::{Client, Ended, SHOP_ORIGIN, TestHub, http_request, refused_with};
use salam_protocol::{ErrorCode, ServerFrame};
use serde_json::{Value, json};

fn error_code(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn a_forged_token_is_refused() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let visitor = hub.visitor(None).await?;
    let token = visitor.token.clone().expect("token");
    let (_, signature) = token.split_once('.').unwrap();
    for forged in [
        format!("v_someoneelse.{signature}"),
        "v_abc.AAAA".to_owned(),
        "garbage".to_owned(),
    ] {
        let mut client = Client::connect_visitor(hub.addr, Some(SHOP_ORIGIN)).await?;
        client
            .send_json(&json!({"type": "hello", "v": 1, "site": hub.site.key, "token": forged}))
            .await?;
        assert_eq!(
            error_code(&client.recv().await?),
            Some(ErrorCode::Unauthorized)
        );
        assert!(
            matches!(client.ended().await, Ended::Closed(Some(frame)) if u16::from(frame.code) == 1008)
        );
    }
    // The real token works and keeps the identity.
    let again = hub.visitor(Some(&token)).await?;
    assert_eq!(again.token.as_deref(), Some(token.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_visitor_cannot_touch_another_visitors_conversation() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut alice = hub.visitor(None).await?;
    alice
        .send_json(&json!({"type": "send", "client_id": "1", "text": "my secret order"}))
        .await?;
    let ServerFrame::Ack { conversation, .. } = alice.recv().await? else {
        panic!()
    };
    let mut mallory = hub.visitor(None).await?;
    for frame in [
        json!({"type": "resume", "conversation": conversation, "after": 0}),
        json!({"type": "send", "conversation": conversation, "client_id": "x", "text": "hi"}),
        json!({"type": "close", "conversation": conversation}),
        json!({"type": "typing", "conversation": conversation, "typing": true}),
    ] {
        mallory.send_json(&frame).await?;
        let reply = mallory.recv().await?;
        assert_eq!(error_code(&reply), Some(ErrorCode::Forbidden), "{frame}");
    }
    // Nothing of Alice's reached Mallory.
    mallory
        .expect_silence(std::time::Duration::from_millis(300))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_foreign_origin_is_refused() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    for origin in [Some("http://evil.test"), None] {
        let mut client = Client::connect_visitor(hub.addr, origin).await?;
        client
            .send_json(&json!({"type": "hello", "v": 1, "site": hub.site.key}))
            .await?;
        assert_eq!(
            error_code(&client.recv().await?),
            Some(ErrorCode::OriginNotAllowed)
        );
        assert!(
            matches!(client.ended().await, Ended::Closed(Some(frame)) if u16::from(frame.code) == 1008)
        );
    }
    // With ?site= the socket is upgraded, told why before any `hello`, and closed (1008).
    let mut refused = Client::connect(
        hub.addr,
        &format!("/ws/visitor?site={}", hub.site.key),
        Some(("Origin", "http://evil.test".into())),
    )
    .await?;
    match refused.recv().await? {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::OriginNotAllowed);
            assert_eq!(message, "chat is not enabled on this page");
        }
        other => panic!("expected origin_not_allowed, got {other:?}"),
    }
    assert!(matches!(
        refused.ended().await,
        Ended::Closed(Some(frame)) if u16::from(frame.code) == 1008 && frame.reason == "origin not allowed"
    ));
    // An unknown site key.
    let mut client = Client::connect_visitor(hub.addr, Some(SHOP_ORIGIN)).await?;
    client
        .send_json(&json!({"type": "hello", "v": 1, "site": "pk_nope"}))
        .await?;
    assert_eq!(
        error_code(&client.recv().await?),
        Some(ErrorCode::UnknownSite)
    );
    Ok(())
}

#[tokio::test]
async fn wildcard_origin_needs_the_development_switch() -> anyhow::Result<()> {
    for allow in [false, true] {
        let hub = TestHub::start_with(|config| config.auth.allow_any_origin = allow).await?;
        let site = hub.state.store.create_site("Dev", &["*".into()]).await?;
        let mut client = Client::connect_visitor(hub.addr, Some("http://anything.test")).await?;
        client
            .send_json(&json!({"type": "hello", "v": 1, "site": site.key}))
            .await?;
        let reply = client.recv().await?;
        assert_eq!(
            matches!(reply, ServerFrame::Welcome { .. }),
            allow,
            "{reply:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_agent_socket_needs_a_session() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let refused = Client::connect(hub.addr, "/ws/agent", None).await;
    assert!(refused_with(&refused, 401));
    let refused = Client::connect_agent(hub.addr, "not-a-session").await;
    assert!(refused_with(&refused, 401));
    let token = hub.admin_token().await?;
    assert!(Client::connect_agent(hub.addr, &token).await.is_ok());
    // A cookie works too, from the console's own page.
    let cookie = || ("Cookie", format!("salam_session={token}"));
    let own = Client::connect_with(
        hub.addr,
        "/ws/agent",
        &[cookie(), ("Origin", format!("http://{}", hub.addr))],
    )
    .await;
    assert!(own.is_ok());
    Ok(())
}

#[tokio::test]
async fn login_logout_and_csrf() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let wrong = http_request(
        hub.addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        &json!({"email": hub.admin_email, "password": "wrong"}).to_string(),
    )
    .await?;
    assert_eq!(wrong.status, 401);
    let login = http_request(
        hub.addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        &json!({"email": hub.admin_email, "password": hub.admin_password}).to_string(),
    )
    .await?;
    assert_eq!(login.status, 200);
    let cookie = login.header("set-cookie").expect("cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token: Value = serde_json::from_str(&login.body)?;
    let token = token["token"].as_str().unwrap().to_owned();
    let cookie_header = format!("salam_session={token}");
    let me = http_request(
        hub.addr,
        "GET",
        "/api/me",
        &[("cookie", &cookie_header)],
        "",
    )
    .await?;
    assert_eq!(me.status, 200);
    assert!(me.body.contains("\"role\":\"admin\""));
    // Logout with the cookie but without the CSRF header is refused.
    let refused = http_request(
        hub.addr,
        "POST",
        "/api/logout",
        &[("cookie", &cookie_header)],
        "",
    )
    .await?;
    assert_eq!(refused.status, 403);
    let out = http_request(
        hub.addr,
        "POST",
        "/api/logout",
        &[("cookie", &cookie_header), ("x-salam-csrf", "1")],
        "",
    )
    .await?;
    assert_eq!(out.status, 200);
    let me = http_request(
        hub.addr,
        "GET",
        "/api/me",
        &[("cookie", &cookie_header)],
        "",
    )
    .await?;
    assert_eq!(me.status, 401, "the session is gone");
    Ok(())
}

#[tokio::test]
async fn an_agent_of_one_site_cannot_read_another() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let other = hub
        .state
        .store
        .create_site("Other", &["http://other.test".into()])
        .await?;
    salam_hub::admin::announce_site(&hub.state, &other).await?;
    let hash = salam_hub::auth::hash_password("password123")?;
    hub.state
        .store
        .create_agent(salam_store::NewAgent {
            email: "sara@other.test".into(),
            name: "Sara".into(),
            role: salam_store::AgentRole::Agent,
            password_hash: hash,
            all_sites: false,
            site_ids: vec![other.id.clone()],
            capacity: None,
            departments: Vec::new(),
        })
        .await?;
    // A visitor of the test shop starts a conversation.
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "hi"}))
        .await?;
    let ServerFrame::Ack { conversation, .. } = visitor.recv().await? else {
        panic!()
    };
    let login = http_request(
        hub.addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        &json!({"email": "sara@other.test", "password": "password123"}).to_string(),
    )
    .await?;
    let token: Value = serde_json::from_str(&login.body)?;
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let history = http_request(
        hub.addr,
        "GET",
        &format!("/api/conversations/{conversation}/messages"),
        &[("authorization", &bearer)],
        "",
    )
    .await?;
    assert_eq!(history.status, 404);
    let list = http_request(
        hub.addr,
        "GET",
        "/api/conversations",
        &[("authorization", &bearer)],
        "",
    )
    .await?;
    assert!(!list.body.contains(&conversation));
    let mut agent = Client::connect_agent(hub.addr, token["token"].as_str().unwrap()).await?;
    agent.send_json(&json!({"type": "hello", "v": 1})).await?;
    agent.recv().await?;
    agent
        .send_json(
            &json!({"type": "send", "conversation": conversation, "client_id": "z", "text": "hi"}),
        )
        .await?;
    let (refused, seen) = agent
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    assert_eq!(error_code(&refused), Some(ErrorCode::Forbidden));
    assert!(
        !seen
            .iter()
            .any(|f| matches!(f, ServerFrame::Message(m) if m.conversation == conversation)),
        "another site's message leaked"
    );
    Ok(())
}
