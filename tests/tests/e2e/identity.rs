//! Hostile review, issue 12 ("edges"), identity v2: `identify` carries a JWT signed
//! with the site's identity secret; only what it signs is verified; it expires; the
//! secret rotates with a grace period and is shown to admins only. Each test pins a
//! finding of the review and fails on the code before the fix.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use salam_e2e::{Client, TestHub, error_code, sign_identity as sign};
use salam_protocol::{ErrorCode, ServerFrame};
use serde_json::{Value, json};

fn now_secs() -> i64 {
    salam_hub::clock::now_ms() / 1000
}

/// A token for `sub` signed with `secret`, valid for an hour.
fn token_for(secret: &str, sub: &str) -> String {
    sign(secret, &json!({"sub": sub, "exp": now_secs() + 3600}))
}

/// Sends `identify` and returns the error code it got, if any.
async fn identify(client: &mut Client, frame: Value) -> anyhow::Result<Option<ErrorCode>> {
    client.send_json(&frame).await?;
    let answers = client.round_trip().await?;
    let codes: Vec<ErrorCode> = answers.iter().filter_map(error_code).collect();
    anyhow::ensure!(codes.len() <= 1, "{answers:?}");
    Ok(codes.first().copied())
}

/// The chat goes on after a refusal: a message is still acknowledged.
async fn still_chatting(client: &mut Client, client_id: &str) -> anyhow::Result<()> {
    client
        .send_json(&json!({"type": "send", "client_id": client_id, "text": "still here"}))
        .await?;
    let (frame, _) = client
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
        .await?;
    anyhow::ensure!(
        matches!(&frame, ServerFrame::Ack { client_id: acked, .. } if acked == client_id),
        "{frame:?}"
    );
    Ok(())
}

/// `GET /api/conversations/{id}` as the admin.
async fn details(hub: &TestHub, conversation: &str) -> anyhow::Result<Value> {
    let admin = hub.admin_token().await?;
    hub.get_ok(&admin, &format!("/api/conversations/{conversation}"))
        .await
}

/// Finding: "Name and e-mail are unsigned, yet the console shows them as identified."
/// Only the token's claims are verified; `name` and `email` beside it are kept as the
/// visitor's own.
#[tokio::test]
async fn only_signed_claims_are_shown_as_verified() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let secret = hub.site.identity_secret.clone();

    let (mut reza, conversation) = hub.visitor_says("hello").await?;
    let frame = json!({"type": "identify", "token": token_for(&secret, "customer-812"),
                       "name": "Reza Ahmadi", "email": "reza@example.com"});
    assert_eq!(identify(&mut reza, frame).await?, None);
    let shown = details(&hub, &conversation).await?;
    assert_eq!(shown["identified"], true, "{shown}");
    assert_eq!(shown["visitor"]["external_id"], "customer-812");
    assert_eq!(shown["visitor"]["name"], "Reza Ahmadi");
    assert_eq!(shown["visitor"]["email"], "reza@example.com");
    assert_eq!(
        shown["visitor"]["verified"],
        json!([]),
        "unsigned name and e-mail shown as verified: {shown}"
    );

    // Signed name and e-mail are verified, and win over what is sent beside them.
    let (mut mona, conversation) = hub.visitor_says("hi").await?;
    let token = sign(
        &secret,
        &json!({"sub": "customer-900", "name": "Mona", "email": "mona@example.com",
                "exp": now_secs() + 3600}),
    );
    let frame = json!({"type": "identify", "token": token, "name": "Eve",
                       "email": "eve@example.com"});
    assert_eq!(identify(&mut mona, frame).await?, None);
    let shown = details(&hub, &conversation).await?;
    assert_eq!(shown["identified"], true);
    assert_eq!(shown["visitor"]["name"], "Mona");
    assert_eq!(shown["visitor"]["email"], "mona@example.com");
    let mut verified: Vec<String> = serde_json::from_value(shown["visitor"]["verified"].clone())?;
    verified.sort();
    assert_eq!(verified, ["email", "name"]);
    Ok(())
}

/// The old form (`id` and `hash`, the hex HMAC-SHA256 of the id) never expired and
/// signed nothing but the id: it is refused now.
#[tokio::test]
async fn the_legacy_hash_form_is_refused() -> anyhow::Result<()> {
    use hmac::Mac;
    let hub = TestHub::start().await?;
    let id = "customer-812";
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(hub.site.identity_secret.as_bytes())?;
    mac.update(id.as_bytes());
    let hash: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let (mut visitor, conversation) = hub.visitor_says("hello").await?;
    let frame = json!({"type": "identify", "id": id, "name": "Reza Ahmadi",
                       "email": "reza@example.com", "hash": hash});
    assert_eq!(
        identify(&mut visitor, frame).await?,
        Some(ErrorCode::Unauthorized)
    );
    still_chatting(&mut visitor, "after-legacy").await?;
    let shown = details(&hub, &conversation).await?;
    assert_eq!(shown["identified"], false, "{shown}");
    assert!(shown["visitor"]["external_id"].is_null(), "{shown}");
    Ok(())
}

/// A token with the header and claims as given and no signature (`alg: none`).
fn unsigned(header: Value, claims: Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// Finding: "A hash never expires." A token needs an `exp` that has not passed (a
/// minute of clock difference aside) and is at most 30 days ahead; `alg: none`, a
/// changed claim and another key are refused; the chat goes on after each refusal.
#[tokio::test]
async fn expired_endless_unsigned_and_tampered_tokens_are_refused() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let secret = hub.site.identity_secret.clone();
    let now = now_secs();
    let tampered = {
        let genuine = sign(&secret, &json!({"sub": "customer-1", "exp": now + 3600}));
        let parts: Vec<&str> = genuine.split('.').collect();
        let forged_claims =
            URL_SAFE_NO_PAD.encode(json!({"sub": "admin", "exp": now + 3600}).to_string());
        format!("{}.{forged_claims}.{}", parts[0], parts[2])
    };
    let refused = [
        (
            "expired two minutes ago",
            sign(&secret, &json!({"sub": "customer-1", "exp": now - 120})),
        ),
        (
            "expired a year ago",
            sign(
                &secret,
                &json!({"sub": "customer-1", "exp": now - 365 * 86_400}),
            ),
        ),
        (
            "31 days ahead",
            sign(
                &secret,
                &json!({"sub": "customer-1", "exp": now + 31 * 86_400}),
            ),
        ),
        ("no exp", sign(&secret, &json!({"sub": "customer-1"}))),
        ("no sub", sign(&secret, &json!({"exp": now + 3600}))),
        (
            "alg none",
            unsigned(
                json!({"alg": "none", "typ": "JWT"}),
                json!({"sub": "customer-1", "exp": now + 3600}),
            ),
        ),
        ("a changed claim", tampered),
        (
            "another key",
            sign(
                "not-the-site-secret",
                &json!({"sub": "customer-1", "exp": now + 3600}),
            ),
        ),
        ("empty", String::new()),
    ];
    let (mut visitor, conversation) = hub.visitor_says("hello").await?;
    for (index, (what, token)) in refused.iter().enumerate() {
        let frame = json!({"type": "identify", "token": token, "name": "Mallory"});
        assert_eq!(
            identify(&mut visitor, frame).await?,
            Some(ErrorCode::Unauthorized),
            "{what}"
        );
        still_chatting(&mut visitor, &format!("after-{index}")).await?;
    }
    let shown = details(&hub, &conversation).await?;
    assert_eq!(shown["identified"], false, "{shown}");
    assert!(shown["visitor"]["name"].is_null(), "{shown}");
    // Thirty seconds late is within the clock leeway; a valid token identifies.
    let late = sign(&secret, &json!({"sub": "customer-1", "exp": now - 30}));
    let frame = json!({"type": "identify", "token": late});
    assert_eq!(identify(&mut visitor, frame).await?, None);
    assert_eq!(details(&hub, &conversation).await?["identified"], true);
    Ok(())
}

/// `POST /api/sites/{id}/identity-secret` as `token`.
async fn rotate(hub: &TestHub, token: &str) -> anyhow::Result<(u16, Value)> {
    hub.rest(
        token,
        "POST",
        &format!("/api/sites/{}/identity-secret", hub.site.id),
        Value::Null,
    )
    .await
}

/// The test site as `GET /api/sites` shows it to `token`.
async fn listed_site(hub: &TestHub, token: &str) -> anyhow::Result<Value> {
    let listed = hub.get_ok(token, "/api/sites").await?;
    listed["sites"]
        .as_array()
        .and_then(|sites| sites.iter().find(|site| site["id"] == hub.site.id.as_str()))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the test site is not listed: {listed}"))
}

/// A new visitor identifies with `token`; the error code, if any.
async fn new_visitor_identifies(hub: &TestHub, token: String) -> anyhow::Result<Option<ErrorCode>> {
    let mut visitor = hub.visitor(None).await?;
    identify(&mut visitor, json!({"type": "identify", "token": token})).await
}

/// Finding: "The identity secret cannot be rotated, and the console does not show it."
/// Admins see and rotate it; agents see no secret and may not rotate; the old secret
/// keeps verifying for the grace period (24 hours by default).
#[tokio::test]
async fn admins_rotate_the_identity_secret_with_a_grace_period() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let old_secret = hub.site.identity_secret.clone();
    let admin = hub.admin_token().await?;
    let (_, agent) = hub.add_agent("Sara", None, &[]).await?;

    let shown = listed_site(&hub, &admin).await?;
    assert_eq!(shown["identity_secret"], old_secret.as_str(), "{shown}");
    assert!(shown["previous_secret_valid_until"].is_null(), "{shown}");
    let agents_view = hub.rest(&agent, "GET", "/api/sites", Value::Null).await?;
    assert_eq!(agents_view.0, 200);
    assert!(
        !agents_view.1.to_string().contains(&old_secret),
        "an agent sees the secret: {}",
        agents_view.1
    );

    let (status, refused) = rotate(&hub, &agent).await?;
    assert_eq!(status, 403, "an agent rotated the secret: {refused}");
    assert_eq!(refused["error"], "forbidden");
    assert_eq!(
        listed_site(&hub, &admin).await?["identity_secret"],
        old_secret.as_str()
    );

    let rotated_at = salam_hub::clock::now_ms();
    let (status, rotated) = rotate(&hub, &admin).await?;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["site"]["identity_secret"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    assert_ne!(new_secret, old_secret);
    let shown = listed_site(&hub, &admin).await?;
    assert_eq!(shown["identity_secret"], new_secret.as_str());
    let grace_ms = 24 * 3_600_000;
    let valid_until = shown["previous_secret_valid_until"]
        .as_i64()
        .expect("the old secret's end of grace");
    assert!(
        valid_until >= rotated_at + grace_ms
            && valid_until <= salam_hub::clock::now_ms() + grace_ms,
        "{valid_until} for a rotation at {rotated_at}"
    );
    let agents_view = hub.rest(&agent, "GET", "/api/sites", Value::Null).await?;
    let agents_view = agents_view.1.to_string();
    assert!(
        !agents_view.contains(&new_secret) && !agents_view.contains(&old_secret),
        "an agent sees a secret: {agents_view}"
    );

    // Pages opened now: the old secret within its grace period, and the new one.
    assert_eq!(
        new_visitor_identifies(&hub, token_for(&old_secret, "customer-1")).await?,
        None
    );
    assert_eq!(
        new_visitor_identifies(&hub, token_for(&new_secret, "customer-2")).await?,
        None
    );
    assert_eq!(
        new_visitor_identifies(&hub, token_for("sk_guess", "customer-3")).await?,
        Some(ErrorCode::Unauthorized)
    );
    Ok(())
}

/// Without a grace period the old secret stops verifying at once.
#[tokio::test]
async fn without_grace_the_old_secret_is_refused_at_once() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.auth.identity_secret_grace_hours = 0).await?;
    let (old_secret, new_secret) = rotate_without_grace(&hub).await?;
    assert_eq!(
        new_visitor_identifies(&hub, token_for(&old_secret, "customer-1")).await?,
        Some(ErrorCode::Unauthorized)
    );
    assert_eq!(
        new_visitor_identifies(&hub, token_for(&new_secret, "customer-2")).await?,
        None
    );
    Ok(())
}

/// A page that was open when the secret was rotated: its socket must verify with the
/// secrets in force now, not those of its `hello` (the site's backend signs with the
/// new secret as soon as it is redeployed; a leaked old secret must stop working
/// everywhere once its grace period is over).
#[tokio::test]
async fn a_socket_opened_before_a_rotation_verifies_with_the_new_secret() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.auth.identity_secret_grace_hours = 0).await?;
    let mut open_page = hub.visitor(None).await?;
    let (old_secret, new_secret) = rotate_without_grace(&hub).await?;
    let with_new = json!({"type": "identify", "token": token_for(&new_secret, "customer-1")});
    assert_eq!(
        identify(&mut open_page, with_new).await?,
        None,
        "a token signed with the new secret is refused on a socket opened before the rotation"
    );
    let with_old = json!({"type": "identify", "token": token_for(&old_secret, "customer-1")});
    assert_eq!(
        identify(&mut open_page, with_old).await?,
        Some(ErrorCode::Unauthorized),
        "the old secret, past its grace period, still verifies on a socket opened before the rotation"
    );
    Ok(())
}

/// Rotates the site's identity secret on a hub without grace: (old, new).
async fn rotate_without_grace(hub: &TestHub) -> anyhow::Result<(String, String)> {
    let old_secret = hub.site.identity_secret.clone();
    let admin = hub.admin_token().await?;
    let (status, rotated) = rotate(hub, &admin).await?;
    assert_eq!(status, 200, "{rotated}");
    assert!(
        rotated["site"]["previous_secret_valid_until"].is_null(),
        "no grace, yet: {rotated}"
    );
    let new_secret = rotated["site"]["identity_secret"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    Ok((old_secret, new_secret))
}
