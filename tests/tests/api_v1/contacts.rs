//! Contacts with custom attributes: create, update (merge, null deletes), search, the
//! history of changes, and the link to a visitor who identifies.

use crate::common::{create_token, v1};
use serde_json::json;

#[tokio::test]
async fn contacts_are_created_updated_searched_with_an_attribute_history() -> anyhow::Result<()> {
    let world = salam_e2e::process::World::start("").await?;
    let (token_id, token) = create_token(&world.admin, &world.site.id, "write").await?;
    let api = v1(&world, &token);
    let created = api
        .expect(
            201,
            "POST",
            "/api/v1/contacts",
            Some(&json!({
                "external_id": "crm-42",
                "email": "Layla@Example.test",
                "name": "Layla Haddad",
                "attributes": {"plan": "pro", "seats": 12, "vip": true},
            })),
        )
        .await?;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["attributes"],
        json!({"plan": "pro", "seats": 12, "vip": true})
    );
    // The same external id twice: 409.
    let taken = api
        .expect(
            409,
            "POST",
            "/api/v1/contacts",
            Some(&json!({"external_id": "crm-42"})),
        )
        .await?;
    assert_eq!(taken["error"], "bad_field");
    api.expect(
        201,
        "POST",
        "/api/v1/contacts",
        Some(&json!({"name": "Omar", "attributes": {"plan": "free"}})),
    )
    .await?;

    // Merge: change one, remove one (null), add one, keep the rest.
    let updated = api
        .expect(
            200,
            "PATCH",
            &format!("/api/v1/contacts/{id}"),
            Some(&json!({"attributes": {"plan": "enterprise", "vip": null, "region": "gcc"}})),
        )
        .await?;
    assert_eq!(
        updated["attributes"],
        json!({"plan": "enterprise", "seats": 12, "region": "gcc"})
    );
    assert_eq!(updated["name"], "Layla Haddad");
    let read = api
        .expect(200, "GET", &format!("/api/v1/contacts/{id}"), None)
        .await?;
    assert_eq!(read["attributes"], updated["attributes"]);

    // Search: by e-mail (any case), name part, external id, attribute.
    for query in [
        "email=layla@example.test",
        "name=haddad",
        "external_id=crm-42",
        "attribute=plan:enterprise",
        "attribute=seats:12",
    ] {
        let found = api
            .expect(200, "GET", &format!("/api/v1/contacts?{query}"), None)
            .await?;
        let ids: Vec<&str> = found["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id.as_str()], "{query}: {found}");
    }
    let free = api
        .expect(200, "GET", "/api/v1/contacts?attribute=plan:free", None)
        .await?;
    assert_eq!(free["contacts"][0]["name"], "Omar");
    let none = api
        .expect(200, "GET", "/api/v1/contacts?attribute=vip:true", None)
        .await?;
    assert_eq!(none["contacts"].as_array().unwrap().len(), 0, "{none}");

    // The history: who, what, when.
    let changes = api
        .expect(200, "GET", &format!("/api/v1/contacts/{id}/changes"), None)
        .await?;
    let changes = changes["changes"].as_array().unwrap().clone();
    let who = format!("token:{token_id}");
    assert!(
        changes
            .iter()
            .all(|c| c["changed_by"] == who.as_str() && c["at"].is_i64())
    );
    let summary: Vec<(String, serde_json::Value, serde_json::Value)> = changes
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["old_value"].clone(),
                c["new_value"].clone(),
            )
        })
        .collect();
    assert!(
        summary.contains(&("plan".into(), json!(null), json!("pro"))),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("plan".into(), json!("pro"), json!("enterprise"))),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("vip".into(), json!(true), json!(null))),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("region".into(), json!(null), json!("gcc"))),
        "{summary:?}"
    );
    assert_eq!(summary.len(), 6, "{summary:?}");
    world.assert_no_panic()
}

#[tokio::test]
async fn a_visitor_who_identifies_with_a_contacts_external_id_is_that_contact() -> anyhow::Result<()>
{
    let world = salam_e2e::process::World::start("").await?;
    let (mut visitor, conversation) =
        crate::common::visitor_with_conversation(&world, "hello").await?;
    let sites = world.admin.get("/api/sites").await?;
    let secret = sites["sites"]
        .as_array()
        .and_then(|sites| sites.iter().find(|s| s["id"] == world.site.id.as_str()))
        .and_then(|site| site["identity_secret"].as_str())
        .expect("the admin sees the identity secret")
        .to_owned();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let token = salam_e2e::sign_identity(&secret, &json!({"sub": "crm-77", "exp": exp}));
    visitor
        .send_json(&json!({"type": "identify", "token": token}))
        .await?;
    let answers = visitor.round_trip().await?;
    assert!(
        !answers
            .iter()
            .any(|frame| salam_e2e::error_code(frame).is_some()),
        "{answers:?}"
    );

    let (_, api_token) = create_token(&world.admin, &world.site.id, "write").await?;
    let api = v1(&world, &api_token);
    // The verified identity made the contact (issue 19): creating it again is a
    // conflict; the CRM finds it by external id and completes it.
    let taken = api
        .expect(
            409,
            "POST",
            "/api/v1/contacts",
            Some(&json!({"external_id": "crm-77", "name": "Karim"})),
        )
        .await?;
    assert_eq!(taken["error"], "bad_field");
    let found = api
        .expect(200, "GET", "/api/v1/contacts?external_id=crm-77", None)
        .await?;
    let id = found["contacts"][0]["id"].as_str().unwrap().to_owned();
    let contact = api
        .expect(
            200,
            "PATCH",
            &format!("/api/v1/contacts/{id}"),
            Some(&json!({"name": "Karim"})),
        )
        .await?;
    assert_eq!(contact["name"], "Karim");
    let detail = api
        .expect(
            200,
            "GET",
            &format!("/api/v1/conversations/{conversation}"),
            None,
        )
        .await?;
    assert_eq!(detail["visitor_external_id"], "crm-77");
    assert_eq!(detail["contact_id"], contact["id"]);
    let visitor_id = detail["conversation"]["visitor_id"].as_str().unwrap();
    let read = api
        .expect(
            200,
            "GET",
            &format!("/api/v1/contacts/{}", contact["id"].as_str().unwrap()),
            None,
        )
        .await?;
    assert_eq!(read["visitor_ids"], json!([visitor_id]));
    world.assert_no_panic()
}
