//! Bad input gets a documented 4xx JSON error, never a 5xx or a panic.

use crate::common::{create_token, v1, visitor_with_conversation};
use serde_json::{Value, json};

#[tokio::test]
async fn bad_input_is_refused_with_documented_errors() -> anyhow::Result<()> {
    let world = salam_e2e::process::World::start("").await?;
    let (_visitor, conversation) = visitor_with_conversation(&world, "hi").await?;
    let (_, token) = create_token(&world.admin, &world.site.id, "admin").await?;
    let api = v1(&world, &token);
    let send = format!("/api/v1/conversations/{conversation}/messages");
    let contact = api
        .expect(
            201,
            "POST",
            "/api/v1/contacts",
            Some(&json!({"name": "Sara"})),
        )
        .await?;
    let contact_path = format!("/api/v1/contacts/{}", contact["id"].as_str().unwrap());

    let too_many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", &send, "{not json".into(), 400, "bad_json"),
        (
            "POST",
            &send,
            json!({"sender": {"type": "bot"}, "text": "x", "extra": 1}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            &send,
            json!({"sender": {"type": "robot"}, "text": "x"}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            &send,
            json!({"sender": {"type": "bot"}, "text": 5}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            &send,
            json!({"sender": {"type": "bot"}, "text": "\u{200b} "}).to_string(),
            422,
            "empty_text",
        ),
        (
            "POST",
            &send,
            json!({"sender": {"type": "bot"}, "text": "x".repeat(20_000)}).to_string(),
            422,
            "text_too_long",
        ),
        (
            "POST",
            &send,
            json!({"sender": {"type": "bot"}, "text": "x", "client_id": ""}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            &send,
            json!({"sender": {"type": "bot", "note": true}, "text": "x"}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            &send,
            json!({"sender": {"type": "agent", "agent_id": "a_nobody"}, "text": "x"}).to_string(),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/contacts",
            json!({"attributes": {"Bad Key": 1}}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            "/api/v1/contacts",
            json!({"attributes": {"nested": {"a": 1}}}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            "/api/v1/contacts",
            json!({"attributes": {"long": "x".repeat(1001)}}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            "/api/v1/contacts",
            json!({"attributes": too_many}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            "/api/v1/contacts",
            json!({"email": "not an address"}).to_string(),
            422,
            "bad_field",
        ),
        (
            "POST",
            "/api/v1/contacts",
            json!({"nickname": "x"}).to_string(),
            422,
            "bad_field",
        ),
        (
            "PATCH",
            &contact_path,
            json!({"attributes": too_many}).to_string(),
            409,
            "bad_field",
        ),
        ("PATCH", &contact_path, "[]".into(), 422, "bad_field"),
        (
            "GET",
            "/api/v1/conversations?limit=0",
            String::new(),
            400,
            "bad_field",
        ),
        (
            "GET",
            "/api/v1/conversations?limit=abc",
            String::new(),
            400,
            "bad_field",
        ),
        (
            "GET",
            "/api/v1/conversations?state=sleeping",
            String::new(),
            400,
            "bad_field",
        ),
        (
            "GET",
            "/api/v1/conversations?cursor=nonsense",
            String::new(),
            400,
            "bad_field",
        ),
        (
            "GET",
            "/api/v1/contacts?attribute=plan",
            String::new(),
            400,
            "bad_field",
        ),
        (
            "GET",
            "/api/v1/reports?from=-1",
            String::new(),
            400,
            "bad_field",
        ),
        (
            "POST",
            "/api/v1/offline-requests/abc/done",
            String::new(),
            400,
            "bad_field",
        ),
        (
            "POST",
            "/api/v1/offline-requests/999/done",
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/contacts/ct_missing",
            String::new(),
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/api/v1/contacts",
            String::new(),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let response = api.raw(method, path, &body).await?;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(
            response.status, status,
            "{method} {path} {shown}: {}",
            response.body
        );
        let error: Value = serde_json::from_str(&response.body).map_err(|err| {
            anyhow::anyhow!("{method} {path}: not JSON ({err}): {}", response.body)
        })?;
        assert_eq!(error["error"], code, "{method} {path} {shown}: {error}");
        assert!(error["message"].is_string(), "{error}");
    }
    // A body without a JSON content type: 415.
    let bearer = format!("Bearer {token}");
    let plain = salam_e2e::http_request(
        world.hub.addr,
        "POST",
        "/api/v1/contacts",
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "text/plain"),
        ],
        "{}",
    )
    .await?;
    assert_eq!(plain.status, 415, "{}", plain.body);
    // Nothing of the refused contacts was stored.
    let all = api.expect(200, "GET", "/api/v1/contacts", None).await?;
    assert_eq!(all["contacts"].as_array().unwrap().len(), 1, "{all}");
    world.assert_no_panic()
}
