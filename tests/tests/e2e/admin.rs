//! Admin endpoints: role checks, CSRF, agents, sites and snippet, canned responses,
//! departments.

use salam_e2e::{TestHub, http_request};
use serde_json::{Value, json};

async fn call(
    hub: &TestHub,
    method: &str,
    path: &str,
    auth: &[(&str, &str)],
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(auth);
    let response = http_request(hub.addr, method, path, &headers, &body.to_string()).await?;
    let parsed = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    Ok((response.status, parsed))
}

#[tokio::test]
async fn admins_manage_agents_sites_and_canned_responses() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin_token = hub.admin_token().await?;
    let bearer = format!("Bearer {admin_token}");
    let admin = [("authorization", bearer.as_str())];

    let (status, created) = call(&hub, "POST", "/api/admin/agents", &admin, json!({"email": "nadia@shop.test", "name": "Nadia", "capacity": 3, "departments": ["billing"], "site_ids": [hub.site.id]})).await?;
    assert_eq!(status, 201, "{created}");
    let password = created["password"]
        .as_str()
        .expect("generated password")
        .to_owned();
    let nadia_id = created["agent"]["id"].as_str().expect("id").to_owned();
    let (status, _) = call(
        &hub,
        "POST",
        "/api/admin/agents",
        &admin,
        json!({"email": "NADIA@shop.test", "name": "Again", "all_sites": true}),
    )
    .await?;
    assert_eq!(status, 409, "e-mails are unique");

    // Nadia signs in; an agent is refused admin actions.
    let (_, login) = call(
        &hub,
        "POST",
        "/api/login",
        &[],
        json!({"email": "nadia@shop.test", "password": password}),
    )
    .await?;
    let nadia_bearer = format!("Bearer {}", login["token"].as_str().expect("token"));
    let nadia = [("authorization", nadia_bearer.as_str())];
    let (status, _) = call(
        &hub,
        "POST",
        "/api/sites",
        &nadia,
        json!({"name": "X", "origins": ["https://x.test"]}),
    )
    .await?;
    assert_eq!(status, 403);
    let (status, _) = call(&hub, "GET", "/api/admin/agents", &nadia, Value::Null).await?;
    assert_eq!(status, 403);

    // A site with its embed snippet; bad origins are refused.
    let (status, _) = call(
        &hub,
        "POST",
        "/api/sites",
        &admin,
        json!({"name": "Bad", "origins": ["javascript:alert(1)"]}),
    )
    .await?;
    assert_eq!(status, 400);
    let (status, site) = call(
        &hub,
        "POST",
        "/api/sites",
        &admin,
        json!({"name": "Kitchen Shop", "origins": ["https://kitchen.test/"]}),
    )
    .await?;
    assert_eq!(status, 201);
    let key = site["site"]["key"].as_str().expect("key");
    assert!(
        site["snippet"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("data-site=\"{key}\""))
    );
    assert_eq!(site["site"]["origins"], json!(["https://kitchen.test"]));

    // Canned responses and departments belong to one site: Nadia, of the test shop,
    // sees the shop's and not the kitchen's.
    let kitchen = site["site"]["id"].as_str().expect("site id").to_owned();
    let (status, _) = call(
        &hub,
        "POST",
        "/api/canned",
        &admin,
        json!({"site_id": hub.site.id, "shortcut": "/hello", "text": "Hello! How can I help?"}),
    )
    .await?;
    assert_eq!(status, 201);
    let (status, _) = call(
        &hub,
        "POST",
        "/api/canned",
        &admin,
        json!({"site_id": kitchen, "shortcut": "/menu", "text": "Our menu is online."}),
    )
    .await?;
    assert_eq!(status, 201);
    let (status, _) = call(
        &hub,
        "POST",
        "/api/canned",
        &admin,
        json!({"shortcut": "/nosite", "text": "Which site?"}),
    )
    .await?;
    assert_eq!(status, 422, "a canned response names its site");
    let (_, canned) = call(&hub, "GET", "/api/canned", &nadia, Value::Null).await?;
    assert_eq!(
        canned["canned"].as_array().map(Vec::len),
        Some(1),
        "{canned}"
    );
    assert_eq!(canned["canned"][0]["shortcut"], "hello");
    let (status, _) = call(
        &hub,
        "GET",
        &format!("/api/canned?site={kitchen}"),
        &nadia,
        Value::Null,
    )
    .await?;
    assert_eq!(status, 404, "another site's list is not hers");
    for (site_id, name) in [
        (hub.site.id.as_str(), "Billing"),
        (kitchen.as_str(), "Chefs"),
    ] {
        let (status, _) = call(
            &hub,
            "POST",
            "/api/departments",
            &admin,
            json!({"site_id": site_id, "name": name}),
        )
        .await?;
        assert_eq!(status, 201);
    }
    let (_, departments) = call(&hub, "GET", "/api/departments", &nadia, Value::Null).await?;
    assert_eq!(
        departments["departments"],
        json!([{"site_id": hub.site.id, "name": "billing"}])
    );

    // Disabling an agent ends their sessions.
    let (status, patched) = call(
        &hub,
        "PATCH",
        &format!("/api/admin/agents/{nadia_id}"),
        &admin,
        json!({"disabled": true, "capacity": null}),
    )
    .await?;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["agent"]["capacity"], Value::Null);
    let (status, _) = call(&hub, "GET", "/api/me", &nadia, Value::Null).await?;
    assert_eq!(status, 401);

    // The cookie session needs the CSRF header for writes.
    let cookie = format!("salam_session={admin_token}");
    let (status, _) = call(
        &hub,
        "POST",
        "/api/departments",
        &[("cookie", cookie.as_str())],
        json!({"name": "x"}),
    )
    .await?;
    assert_eq!(status, 403);
    let (status, _) = call(
        &hub,
        "POST",
        "/api/departments",
        &[("cookie", cookie.as_str()), ("x-salam-csrf", "1")],
        json!({"site_id": hub.site.id, "name": "x"}),
    )
    .await?;
    assert_eq!(status, 201);
    Ok(())
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let page = http_request(hub.addr, "GET", "/console", &[], "").await?;
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let missing = http_request(hub.addr, "GET", "/console/nope.js", &[], "").await?;
    assert_eq!(missing.status, 404);
    Ok(())
}
