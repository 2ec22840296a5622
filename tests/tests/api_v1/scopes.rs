//! Token scopes, revocation and site isolation.

use crate::common::{create_token, v1, visitor_with_conversation};
use salam_e2e::process::{ORIGIN, World, visitor_session};
use serde_json::{Value, json};

#[tokio::test]
async fn a_read_token_reads_but_cannot_write_and_only_admin_tokens_list_tokens()
-> anyhow::Result<()> {
    let world = World::start("").await?;
    let (_visitor, conversation) = visitor_with_conversation(&world, "hello").await?;
    let (_, read) = create_token(&world.admin, &world.site.id, "read").await?;
    let (_, write) = create_token(&world.admin, &world.site.id, "write").await?;
    let (_, admin) = create_token(&world.admin, &world.site.id, "admin").await?;
    let (read, write, admin) = (v1(&world, &read), v1(&world, &write), v1(&world, &admin));

    let site = read.expect(200, "GET", "/api/v1/site", None).await?;
    assert_eq!(
        (site["id"].as_str(), site["scope"].as_str()),
        (Some(world.site.id.as_str()), Some("read"))
    );
    read.expect(
        200,
        "GET",
        &format!("/api/v1/conversations/{conversation}"),
        None,
    )
    .await?;
    let send = json!({"sender": {"type": "bot"}, "text": "from the bot"});
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let refused = read.expect(403, "POST", &path, Some(&send)).await?;
    assert_eq!(refused["error"], "forbidden");
    read.expect(
        403,
        "POST",
        &format!("/api/v1/conversations/{conversation}/close"),
        None,
    )
    .await?;
    read.expect(403, "POST", "/api/v1/contacts", Some(&json!({"name": "X"})))
        .await?;
    // Nothing was written by the refused calls.
    let messages = read.expect(200, "GET", &path, None).await?;
    assert!(
        !messages["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "from the bot"),
        "{messages}"
    );
    // A write token writes; an admin token too (admin ⊇ write ⊇ read).
    write.expect(201, "POST", &path, Some(&send)).await?;
    admin
        .expect(
            201,
            "POST",
            &path,
            Some(&json!({"sender": {"type": "bot"}, "text": "again"})),
        )
        .await?;
    // Only admin tokens list the site's tokens; secrets are never listed.
    write.expect(403, "GET", "/api/v1/tokens", None).await?;
    let tokens = admin.expect(200, "GET", "/api/v1/tokens", None).await?;
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 3);
    assert!(!tokens.to_string().contains("salam_"), "{tokens}");
    world.assert_no_panic()
}

#[tokio::test]
async fn a_revoked_missing_or_unknown_token_is_refused_with_401() -> anyhow::Result<()> {
    let world = World::start("").await?;
    let (id, secret) = create_token(&world.admin, &world.site.id, "admin").await?;
    let caller = v1(&world, &secret);
    caller
        .expect(200, "GET", "/api/v1/conversations", None)
        .await?;
    // The console shows its last use, never its secret.
    let listed = world
        .admin
        .get(&format!("/api/sites/{}/tokens", world.site.id))
        .await?;
    let token = &listed["tokens"][0];
    assert_eq!(token["id"], id.as_str());
    assert!(token["last_used_at"].is_i64(), "{listed}");
    assert!(!listed.to_string().contains(&secret));

    world
        .admin
        .json(
            "DELETE",
            &format!("/api/sites/{}/tokens/{id}", world.site.id),
            None,
        )
        .await?;
    let refused = caller
        .expect(401, "GET", "/api/v1/conversations", None)
        .await?;
    assert_eq!(refused["error"], "unauthorized");
    let listed = world
        .admin
        .get(&format!("/api/sites/{}/tokens", world.site.id))
        .await?;
    assert!(listed["tokens"][0]["revoked_at"].is_i64(), "{listed}");

    v1(&world, "salam_not-a-token")
        .expect(401, "GET", "/api/v1/conversations", None)
        .await?;
    // A console session token is not an API token.
    v1(&world, &world.admin.token)
        .expect(401, "GET", "/api/v1/conversations", None)
        .await?;
    let none = salam_e2e::http_request(world.hub.addr, "GET", "/api/v1/site", &[], "").await?;
    assert_eq!(none.status, 401, "{}", none.body);
    let body: Value = serde_json::from_str(&none.body)?;
    assert_eq!(body["error"], "unauthorized");
    world.assert_no_panic()
}

#[tokio::test]
async fn a_token_of_site_a_cannot_see_or_touch_site_b() -> anyhow::Result<()> {
    let world = World::start("").await?;
    let site_b = world
        .admin
        .create_site("Other Shop", ORIGIN, json!({"bot": false}))
        .await?;
    let mut visitor_b = visitor_session(world.hub.addr, ORIGIN, &site_b.key, None).await?;
    visitor_b
        .send_json(&json!({"type": "send", "client_id": "b1", "text": "in B"}))
        .await?;
    let (frame, _) = visitor_b
        .recv_until(|frame| matches!(frame, salam_protocol::ServerFrame::Ack { .. }))
        .await?;
    let salam_protocol::ServerFrame::Ack {
        conversation: in_b, ..
    } = frame
    else {
        unreachable!()
    };
    let (_, token_a) = create_token(&world.admin, &world.site.id, "admin").await?;
    let a = v1(&world, &token_a);
    a.expect(404, "GET", &format!("/api/v1/conversations/{in_b}"), None)
        .await?;
    a.expect(
        404,
        "GET",
        &format!("/api/v1/conversations/{in_b}/messages"),
        None,
    )
    .await?;
    a.expect(
        404,
        "POST",
        &format!("/api/v1/conversations/{in_b}/messages"),
        Some(&json!({"sender": {"type": "bot"}, "text": "sneaky"})),
    )
    .await?;
    a.expect(
        404,
        "POST",
        &format!("/api/v1/conversations/{in_b}/close"),
        None,
    )
    .await?;
    let listed = a
        .expect(200, "GET", "/api/v1/conversations?limit=500", None)
        .await?;
    assert!(!listed.to_string().contains(&in_b), "{listed}");
    // A contact of B is not A's either.
    let (_, token_b) = create_token(&world.admin, &site_b.id, "write").await?;
    let contact = v1(&world, &token_b)
        .expect(
            201,
            "POST",
            "/api/v1/contacts",
            Some(&json!({"name": "B's"})),
        )
        .await?;
    let contact_id = contact["id"].as_str().unwrap();
    a.expect(404, "GET", &format!("/api/v1/contacts/{contact_id}"), None)
        .await?;
    a.expect(
        404,
        "PATCH",
        &format!("/api/v1/contacts/{contact_id}"),
        Some(&json!({"name": "mine"})),
    )
    .await?;
    // And the B conversation is untouched.
    let b_messages = v1(&world, &token_b)
        .expect(
            200,
            "GET",
            &format!("/api/v1/conversations/{in_b}/messages"),
            None,
        )
        .await?;
    assert!(!b_messages.to_string().contains("sneaky"));
    world.assert_no_panic()
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_others_do_not() -> anyhow::Result<()> {
    // No refill at all: each token has exactly its burst.
    let world = World::start("[api]\nrate_per_sec = 0\nburst = 2\n").await?;
    let (_, first) = create_token(&world.admin, &world.site.id, "read").await?;
    let (_, second) = create_token(&world.admin, &world.site.id, "read").await?;
    let first = v1(&world, &first);
    first.expect(200, "GET", "/api/v1/site", None).await?;
    first.expect(200, "GET", "/api/v1/site", None).await?;
    let limited = first.call("GET", "/api/v1/site", None).await?;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.header("retry-after").is_some());
    let body: Value = serde_json::from_str(&limited.body)?;
    assert_eq!(body["error"], "rate_limited");
    // The bucket is the token's own.
    v1(&world, &second)
        .expect(200, "GET", "/api/v1/site", None)
        .await?;
    world.assert_no_panic()
}
