//! Sign-in under attack (issue 12): throttling per account and per address, a bounded
//! number of password hashes, the same work for every account, the first admin's
//! address, the password policy, resets, idle sessions, `Secure` cookies and
//! `/metrics`.

use salam_e2e::process::{HubProcess, METRICS_TOKEN};
use salam_e2e::{AGENT_PASSWORD, AccountSetup, TestHub, http_request};
use salam_store::AgentRole;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// `POST /api/login` as if from `from` (the hub believes `X-Forwarded-For` from
/// loopback by default).
async fn login_from(
    addr: SocketAddr,
    from: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<salam_e2e::HttpResponse> {
    http_request(
        addr,
        "POST",
        "/api/login",
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", from),
        ],
        &json!({"email": email, "password": password}).to_string(),
    )
    .await
}

fn sara() -> AccountSetup<'static> {
    AccountSetup {
        name: "Sara",
        role: AgentRole::Agent,
        all_sites: true,
        sites: &[],
        capacity: None,
        departments: &[],
    }
}

/// A value of `/metrics` (with the token).
async fn metric(hub: &TestHub, name: &str) -> anyhow::Result<f64> {
    salam_e2e::process::metric(hub.addr, name).await
}

#[tokio::test]
async fn wrong_logins_are_throttled_per_account_and_per_address() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    hub.add_account(sara()).await?;
    // Five free failures for the account, from five addresses (so the addresses are
    // not what is throttled); the sixth blocks it.
    for index in 1..=6 {
        let response = login_from(
            hub.addr,
            &format!("10.0.0.{index}"),
            "sara@shop.test",
            "not the password",
        )
        .await?;
        assert_eq!(response.status, 401, "attempt {index}: {}", response.body);
    }
    // Now even the right password waits, told how long, from yet another address.
    let blocked = login_from(hub.addr, "10.0.0.99", "sara@shop.test", AGENT_PASSWORD).await?;
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    let wait: u64 = blocked
        .header("retry-after")
        .expect("Retry-After")
        .parse()?;
    assert!(wait >= 1);
    let body: Value = serde_json::from_str(&blocked.body)?;
    assert_eq!(body["error"], "rate_limited");

    // One address guessing many accounts: twenty free failures, then blocked, while
    // another address is not.
    for index in 0..21 {
        let response = login_from(
            hub.addr,
            "10.0.1.1",
            &format!("guess{index}@shop.test"),
            "password123",
        )
        .await?;
        assert_eq!(response.status, 401, "guess {index}");
    }
    let blocked = login_from(hub.addr, "10.0.1.1", "guess99@shop.test", "password123").await?;
    assert_eq!(blocked.status, 429);
    assert!(blocked.header("retry-after").is_some());
    let other = login_from(hub.addr, "10.0.1.2", "guess99@shop.test", "password123").await?;
    assert_eq!(other.status, 401, "another address is not blocked");
    assert!(metric(&hub, "salam_logins_throttled_total").await? >= 2.0);
    Ok(())
}

#[tokio::test]
async fn every_login_costs_one_hash_whatever_the_account() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, _) = hub.add_account(sara()).await?;
    let admin = hub.admin_token().await?;
    let (status, _) = hub
        .rest(
            &admin,
            "PATCH",
            &format!("/api/admin/agents/{sara_id}"),
            json!({"disabled": true}),
        )
        .await?;
    assert_eq!(status, 200);
    hub.add_account(AccountSetup {
        name: "Omid",
        ..sara()
    })
    .await?;
    // Unknown, disabled (with its right password) and active: one hash each, so the
    // time a login takes tells nothing about the account.
    for (from, email, password) in [
        ("10.1.0.1", "nobody@shop.test", "whatever123"),
        ("10.1.0.2", "sara@shop.test", AGENT_PASSWORD),
        ("10.1.0.3", "omid@shop.test", "wrong password"),
    ] {
        let before = metric(&hub, "salam_login_hashes_total").await?;
        let response = login_from(hub.addr, from, email, password).await?;
        assert_eq!(response.status, 401, "{email}");
        let after = metric(&hub, "salam_login_hashes_total").await?;
        assert_eq!(after - before, 1.0, "{email} hashed once");
    }
    Ok(())
}

#[tokio::test]
async fn a_login_flood_is_refused_not_queued() -> anyhow::Result<()> {
    // A real process, so its memory is its own: two hashes at once at most.
    let data = tempfile::tempdir()?;
    let hub = HubProcess::start(data.path(), "[auth]\nhash_concurrency = 2\n").await?;
    let before = hub.sample()?;
    let hashes_before = salam_e2e::process::metric(hub.addr, "salam_login_hashes_total").await?;
    // 200 at once, each from its own address and for its own unknown account: no
    // throttle applies, only the hashing cap.
    let attempts = (0..200).map(|index| {
        let addr = hub.addr;
        tokio::spawn(async move {
            login_from(
                addr,
                &format!("10.{}.{}.1", index / 250, index % 250),
                &format!("flood{index}@shop.test"),
                "flood password",
            )
            .await
        })
    });
    let health = http_request(hub.addr, "GET", "/healthz", &[], "");
    let (results, health) = tokio::join!(futures_util::future::join_all(attempts), health);
    assert_eq!(
        health?.status, 200,
        "the hub answers others during the flood"
    );
    let (mut refused, mut wrong) = (0u32, 0u32);
    for result in results {
        let response = result??;
        match response.status {
            401 => wrong += 1,
            429 => {
                refused += 1;
                assert_eq!(response.header("retry-after"), Some("1"));
            }
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    assert!(refused > 0, "no login was refused: {wrong} were hashed");
    let hashes =
        salam_e2e::process::metric(hub.addr, "salam_login_hashes_total").await? - hashes_before;
    assert_eq!(
        hashes,
        f64::from(wrong),
        "only the answered ones were hashed"
    );
    // Unbounded, 200 argon2 hashes of 19 MiB each took gigabytes; two at a time take
    // tens of megabytes.
    let after = hub.sample()?;
    let growth_mib = after.rss_kib.saturating_sub(before.rss_kib) / 1024;
    assert!(
        growth_mib < 400,
        "RSS grew {growth_mib} MiB ({} → {} KiB)",
        before.rss_kib,
        after.rss_kib
    );
    Ok(())
}

#[tokio::test]
async fn the_first_admin_is_not_a_known_address() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    assert_ne!(hub.admin_email, "admin@salam.local");
    assert!(
        hub.admin_email.starts_with("admin-") && hub.admin_email.ends_with("@salam.local"),
        "{}",
        hub.admin_email
    );
    let other = TestHub::start().await?;
    assert_ne!(other.admin_email, hub.admin_email, "random per hub");
    let chosen = TestHub::start_with(|config| {
        config.auth.first_admin_email = Some("boss@shop.test".into());
    })
    .await?;
    assert_eq!(chosen.admin_email, "boss@shop.test");
    chosen
        .login("boss@shop.test", &chosen.admin_password)
        .await?;
    let refused = TestHub::start_with(|config| {
        config.auth.first_admin_email = Some("@".into());
    })
    .await;
    assert!(
        refused.is_err(),
        "an invalid first admin address stops the start"
    );
    Ok(())
}

#[tokio::test]
async fn passwords_and_addresses_follow_the_policy() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let site = hub.site.id.clone();
    let add = |email: &str, password: &str| json!({"email": email, "name": "New", "password": password, "site_ids": [site]});
    for (email, password, why) in [
        ("@", "a long enough password", "an address of only @"),
        ("x@", "a long enough password", "no domain"),
        ("x@shop", "a long enough password", "a bare host"),
        ("x y@shop.test", "a long enough password", "a space"),
        ("new@shop.test", "        ", "eight spaces"),
        ("new@shop.test", "            ", "twelve spaces"),
        ("new@shop.test", "short", "five characters"),
        ("new@shop.test", "New@Shop.test", "the address itself"),
    ] {
        let (status, body) = hub
            .rest(&admin, "POST", "/api/admin/agents", add(email, password))
            .await?;
        assert_eq!(status, 400, "{why}: {body}");
    }
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            "/api/admin/agents",
            add("new@shop.test", "correct horse battery"),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    // The agent's own change follows the same policy.
    let token = hub.login("new@shop.test", "correct horse battery").await?;
    let (status, _) = hub
        .rest(
            &token,
            "POST",
            "/api/me/password",
            json!({"current": "correct horse battery", "new": "short"}),
        )
        .await?;
    assert_eq!(status, 400);

    // The command line too.
    let binary = salam_e2e::salam_binary()?;
    let data = tempfile::tempdir()?;
    let output = std::process::Command::new(&binary)
        .args(["agent", "add", "--email", "@", "--name", "X", "--data"])
        .arg(data.path())
        .output()?;
    assert!(!output.status.success(), "`--email @` was accepted");
    let mut child = std::process::Command::new(&binary)
        .args([
            "agent",
            "add",
            "--email",
            "x@shop.test",
            "--name",
            "X",
            "--password-stdin",
            "--data",
        ])
        .arg(data.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"        \n")?;
    }
    assert!(
        !child.wait_with_output()?.status.success(),
        "eight spaces were accepted"
    );
    Ok(())
}

#[tokio::test]
async fn an_admin_resets_a_password_and_every_session_ends() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, sara_token) = hub.add_account(sara()).await?;
    let admin = hub.admin_token().await?;
    let path = format!("/api/admin/agents/{sara_id}/password");
    let (status, _) = hub.rest(&sara_token, "POST", &path, Value::Null).await?;
    assert_eq!(status, 403, "agents cannot reset passwords");
    let mut socket = salam_e2e::Client::connect_agent(hub.addr, &sara_token).await?;
    socket.send_json(&json!({"type": "hello", "v": 1})).await?;
    socket
        .recv_until(|frame| matches!(frame, salam_protocol::ServerFrame::Welcome { .. }))
        .await?;
    let (status, body) = hub.rest(&admin, "POST", &path, Value::Null).await?;
    assert_eq!(status, 200, "{body}");
    let password = body["password"]
        .as_str()
        .expect("a new password")
        .to_owned();
    // Her session is over, her open console closes, the old password is refused.
    let (status, _) = hub.rest(&sara_token, "GET", "/api/me", Value::Null).await?;
    assert_eq!(status, 401);
    assert!(matches!(
        socket.ended().await,
        salam_e2e::Ended::Closed(Some(frame)) if u16::from(frame.code) == 4001
    ));
    assert!(hub.login("sara@shop.test", AGENT_PASSWORD).await.is_err());
    hub.login("sara@shop.test", &password).await?;
    // An admin may also set one, within the policy.
    let (status, _) = hub
        .rest(&admin, "POST", &path, json!({"password": "tiny"}))
        .await?;
    assert_eq!(status, 400);
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            &path,
            json!({"password": "a chosen passphrase"}),
        )
        .await?;
    assert_eq!((status, body["password"].clone()), (200, Value::Null));
    hub.login("sara@shop.test", "a chosen passphrase").await?;
    Ok(())
}

#[tokio::test]
async fn sessions_end_when_idle() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (_, idle) = hub.add_account(sara()).await?;
    let (_, busy) = hub
        .add_account(AccountSetup {
            name: "Omid",
            ..sara()
        })
        .await?;
    let now = salam_hub::clock::now_ms();
    let idle_hours = i64::from(hub.state.config.auth.session_idle_hours);
    let hash = salam_hub::auth::session_hash(&idle);
    // Last used longer ago than the idle timeout (the session is still unexpired).
    hub.state
        .store
        .touch_session(&hash, now - (idle_hours + 1) * 3_600_000)
        .await?;
    let (status, _) = hub.rest(&idle, "GET", "/api/me", Value::Null).await?;
    assert_eq!(status, 401);
    assert!(
        hub.state.store.session_agent(&hash, now).await?.is_none(),
        "the idle session is gone"
    );
    // Used within the timeout: still signed in.
    hub.state
        .store
        .touch_session(
            &salam_hub::auth::session_hash(&busy),
            now - (idle_hours - 1) * 3_600_000,
        )
        .await?;
    let (status, _) = hub.rest(&busy, "GET", "/api/me", Value::Null).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_tls_proxy() -> anyhow::Result<()> {
    let cookie_of = |response: &salam_e2e::HttpResponse| {
        response.header("set-cookie").unwrap_or_default().to_owned()
    };
    let login = |hub: &TestHub, proto: Option<&'static str>| {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(proto) = proto {
            headers.push(("x-forwarded-proto", proto));
        }
        let body = json!({"email": hub.admin_email, "password": hub.admin_password}).to_string();
        let addr = hub.addr;
        async move { http_request(addr, "POST", "/api/login", &headers, &body).await }
    };
    let hub = TestHub::start().await?;
    let behind_tls = login(&hub, Some("https")).await?;
    assert_eq!(behind_tls.status, 200);
    assert!(
        cookie_of(&behind_tls).contains("; Secure"),
        "{}",
        cookie_of(&behind_tls)
    );
    let plain = login(&hub, None).await?;
    assert!(
        !cookie_of(&plain).contains("Secure"),
        "{}",
        cookie_of(&plain)
    );
    // Only a trusted proxy is believed.
    let untrusted = TestHub::start_with(|config| config.auth.trusted_proxies.clear()).await?;
    let forged = login(&untrusted, Some("https")).await?;
    assert_eq!(forged.status, 200);
    assert!(
        !cookie_of(&forged).contains("Secure"),
        "{}",
        cookie_of(&forged)
    );
    Ok(())
}

#[tokio::test]
async fn metrics_need_a_token_or_their_own_address() -> anyhow::Result<()> {
    // No token configured: the main address has no /metrics at all.
    let port = salam_e2e::process::free_port()?;
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let hub = TestHub::start_with(|config| {
        config.metrics.token = None;
        config.metrics.listen = Some(listen);
    })
    .await?;
    let outsider = http_request(hub.addr, "GET", "/metrics", &[], "").await?;
    assert_eq!(outsider.status, 404);
    assert!(!outsider.body.contains("salam_"));
    let guessed = format!("Bearer {METRICS_TOKEN}");
    let guess = http_request(
        hub.addr,
        "GET",
        "/metrics",
        &[("authorization", guessed.as_str())],
        "",
    )
    .await?;
    assert_eq!(guess.status, 404);
    // The separate address (for the monitoring network) serves them.
    let mut served = None;
    for _ in 0..50 {
        if let Ok(response) = http_request(listen, "GET", "/metrics", &[], "").await {
            served = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let served = served.expect("the metrics address answers");
    assert_eq!(served.status, 200);
    assert!(served.body.contains("salam_connections"));
    Ok(())
}
