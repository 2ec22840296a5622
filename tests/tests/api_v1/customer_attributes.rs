//! Customer attributes (issue 19): a verified identity lands on the site's contact with
//! its history (`changed_by = "identity"`, only real changes), and agents read the
//! customer card and search customers through the console's routes, each within their
//! own sites.

use crate::common::{V1, create_token, v1, visitor_with_conversation};
use anyhow::{Context, Result, ensure};
use salam_e2e::Client;
use salam_e2e::process::{Api, World};
use serde_json::{Value, json};

async fn identity_secret(world: &World) -> Result<String> {
    let sites = world.admin.get("/api/sites").await?;
    sites["sites"]
        .as_array()
        .and_then(|sites| sites.iter().find(|s| s["id"] == world.site.id.as_str()))
        .and_then(|site| site["identity_secret"].as_str())
        .map(str::to_owned)
        .context("the admin sees the identity secret")
}

fn token(secret: &str, claims: Value) -> Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let mut claims = claims;
    claims["exp"] = json!(exp);
    Ok(salam_e2e::sign_identity(secret, &claims))
}

/// Sends `identify` with a signed token; fails on any error frame.
async fn identify(visitor: &mut Client, token: String) -> Result<()> {
    visitor
        .send_json(&json!({"type": "identify", "token": token}))
        .await?;
    let answers = visitor.round_trip().await?;
    ensure!(
        !answers
            .iter()
            .any(|frame| salam_e2e::error_code(frame).is_some()),
        "identify refused: {answers:?}"
    );
    Ok(())
}

async fn contact_of(api: &V1, external_id: &str) -> Result<Value> {
    let found = api
        .expect(
            200,
            "GET",
            &format!("/api/v1/contacts?external_id={external_id}"),
            None,
        )
        .await?;
    let contacts = found["contacts"].as_array().context("contacts")?;
    ensure!(contacts.len() == 1, "one contact {external_id}: {found}");
    Ok(contacts[0].clone())
}

/// `(key, old, new, changed_by)` of a contact's history.
async fn history(api: &V1, contact: &Value) -> Result<Vec<(String, Value, Value, String)>> {
    let id = contact["id"].as_str().context("id")?;
    let changes = api
        .expect(200, "GET", &format!("/api/v1/contacts/{id}/changes"), None)
        .await?;
    Ok(changes["changes"]
        .as_array()
        .context("changes")?
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap_or_default().to_owned(),
                c["old_value"].clone(),
                c["new_value"].clone(),
                c["changed_by"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

fn change(key: &str, old: Value, new: Value, by: &str) -> (String, Value, Value, String) {
    (key.to_owned(), old, new, by.to_owned())
}

#[tokio::test]
async fn a_verified_identity_is_recorded_on_the_contact_with_its_history() -> Result<()> {
    let world = World::start("").await?;
    let secret = identity_secret(&world).await?;
    let (token_id, api_token) = create_token(&world.admin, &world.site.id, "write").await?;
    let api = v1(&world, &api_token);
    let crm = format!("token:{token_id}");

    // No contact yet: identify creates one with what the token signed (a key a contact
    // cannot hold is left off), and each attribute is in its history.
    let (mut visitor, _) = visitor_with_conversation(&world, "hello").await?;
    let claims = json!({"sub": "crm-new", "name": "Mona Haddad", "email": "mona@shop.test",
                        "attributes": {"plan": "pro", "seats": 3, "Bad Key": "x"}});
    identify(&mut visitor, token(&secret, claims.clone())?).await?;
    let contact = contact_of(&api, "crm-new").await?;
    assert_eq!(contact["name"], "Mona Haddad");
    assert_eq!(contact["email"], "mona@shop.test");
    assert_eq!(contact["attributes"], json!({"plan": "pro", "seats": 3}));
    assert_eq!(contact["visitor_ids"].as_array().map(Vec::len), Some(1));
    let first = vec![
        change("plan", json!(null), json!("pro"), "identity"),
        change("seats", json!(null), json!(3), "identity"),
    ];
    assert_eq!(history(&api, &contact).await?, first);

    // The same token again (another page load, another tab): nothing changes, no row.
    let (mut again, _) = visitor_with_conversation(&world, "hi again").await?;
    identify(&mut again, token(&secret, claims)?).await?;
    assert_eq!(history(&api, &contact).await?, first);

    // A changed value: one row, old and new.
    identify(
        &mut again,
        token(
            &secret,
            json!({"sub": "crm-new", "name": "Mona H.", "attributes": {"plan": "enterprise", "seats": 3}}),
        )?,
    )
    .await?;
    let contact = contact_of(&api, "crm-new").await?;
    // The contact's name was set; a later signed name does not overwrite it.
    assert_eq!(contact["name"], "Mona Haddad");
    let mut expected = first.clone();
    expected.push(change(
        "plan",
        json!("pro"),
        json!("enterprise"),
        "identity",
    ));
    assert_eq!(history(&api, &contact).await?, expected);

    // A contact the CRM created: its name stays, its attributes are merged.
    api.expect(
        201,
        "POST",
        "/api/v1/contacts",
        Some(&json!({"external_id": "crm-old", "name": "Karim (CRM)",
                     "attributes": {"tier": "gold"}})),
    )
    .await?;
    let (mut karim, _) = visitor_with_conversation(&world, "salam").await?;
    identify(
        &mut karim,
        token(
            &secret,
            json!({"sub": "crm-old", "name": "Karim", "email": "karim@shop.test",
                   "attributes": {"tier": "gold", "order_status": "shipped"}}),
        )?,
    )
    .await?;
    let contact = contact_of(&api, "crm-old").await?;
    assert_eq!(contact["name"], "Karim (CRM)");
    assert_eq!(
        contact["email"], "karim@shop.test",
        "an empty e-mail is filled"
    );
    assert_eq!(
        contact["attributes"],
        json!({"tier": "gold", "order_status": "shipped"})
    );
    assert_eq!(
        history(&api, &contact).await?,
        [
            change("tier", json!(null), json!("gold"), &crm),
            change("order_status", json!(null), json!("shipped"), "identity"),
        ]
    );
    world.assert_no_panic()
}

#[tokio::test]
async fn agents_see_the_customer_card_and_search_customers_of_their_sites_only() -> Result<()> {
    let world = World::start("").await?;
    let secret = identity_secret(&world).await?;
    let (_, api_token) = create_token(&world.admin, &world.site.id, "write").await?;
    let api = v1(&world, &api_token);
    let other = world
        .admin
        .create_site(
            "Other Shop",
            salam_e2e::process::ORIGIN,
            json!({"bot": false}),
        )
        .await?;
    world
        .admin
        .create_agent(
            "here@shop.test",
            "agent-password-1",
            std::slice::from_ref(&world.site.id),
            None,
        )
        .await?;
    world
        .admin
        .create_agent(
            "there@shop.test",
            "agent-password-1",
            std::slice::from_ref(&other.id),
            None,
        )
        .await?;
    let here = Api::login(world.hub.addr, "here@shop.test", "agent-password-1").await?;
    let there = Api::login(world.hub.addr, "there@shop.test", "agent-password-1").await?;

    // The CRM sets one attribute through REST, the page signs another.
    api.expect(
        201,
        "POST",
        "/api/v1/contacts",
        Some(&json!({"external_id": "crm-9", "attributes": {"order_status": "packed"}})),
    )
    .await?;
    let (mut visitor, conversation) = visitor_with_conversation(&world, "hello").await?;
    identify(
        &mut visitor,
        token(
            &secret,
            json!({"sub": "crm-9", "name": "Layla", "email": "layla@shop.test",
                   "attributes": {"plan": "enterprise"}}),
        )?,
    )
    .await?;

    let card = here
        .get(&format!("/api/conversations/{conversation}/customer"))
        .await?;
    assert_eq!(card["identified"], true);
    assert_eq!(card["external_id"], "crm-9");
    assert_eq!(card["name"], json!({"value": "Layla", "source": "signed"}));
    assert_eq!(
        card["email"],
        json!({"value": "layla@shop.test", "source": "signed"})
    );
    assert!(card["contact_id"].is_string(), "{card}");
    assert_eq!(
        card["attributes"],
        json!([
            {"key": "order_status", "value": "packed", "source": "contact"},
            {"key": "plan", "value": "enterprise", "source": "signed"},
        ])
    );
    // Another site's agent: 404, as for a conversation that does not exist.
    let refused = there
        .call(
            "GET",
            &format!("/api/conversations/{conversation}/customer"),
            None,
        )
        .await?;
    assert_eq!(refused.status, 404, "{}", refused.body);
    let anonymous = here
        .call("GET", "/api/conversations/nope/customer", None)
        .await?;
    assert_eq!(anonymous.status, 404);

    // Search by name part, e-mail, external id and attribute=value.
    for q in [
        "layl",
        "layla@shop.test",
        "crm-9",
        "plan=enterprise",
        "order_status=packed",
    ] {
        let path = format!("/api/customers?q={}", q.replace('@', "%40"));
        let found = here.get(&path).await?;
        let customers = found["customers"].as_array().context("customers")?;
        assert_eq!(customers.len(), 1, "{q}: {found}");
        assert_eq!(customers[0]["external_id"], "crm-9", "{q}");
        assert_eq!(customers[0]["name"], "Layla", "{q}");
        // The other site's agent finds nothing.
        let theirs = there.get(&path).await?;
        assert_eq!(theirs["customers"], json!([]), "{q}: {theirs}");
    }
    let none = here.get("/api/customers?q=plan=free").await?;
    assert_eq!(none["customers"], json!([]));
    // Narrowed to another site than theirs: 404.
    let narrowed = here
        .call("GET", &format!("/api/customers?site={}", other.id), None)
        .await?;
    assert_eq!(narrowed.status, 404);
    let unsigned =
        salam_e2e::http_request(world.hub.addr, "GET", "/api/customers", &[], "").await?;
    assert_eq!(unsigned.status, 401);
    world.assert_no_panic()
}
