//! Sending and closing through the REST API reach the visitor's socket, as the
//! console's do.

use crate::common::{create_token, v1, visitor_with_conversation};
use salam_protocol::{AuthorKind, ConversationState, ServerFrame};
use serde_json::json;

#[tokio::test]
async fn an_agent_message_sent_by_rest_reaches_the_visitor_once_per_client_id() -> anyhow::Result<()>
{
    let world = salam_e2e::process::World::start("").await?;
    let agent_id = world
        .admin
        .create_agent(
            "ana@shop.test",
            "a-long-password-1",
            std::slice::from_ref(&world.site.id),
            None,
        )
        .await?;
    let (mut visitor, conversation) =
        visitor_with_conversation(&world, "where is my parcel?").await?;
    let (_, token) = create_token(&world.admin, &world.site.id, "write").await?;
    let api = v1(&world, &token);
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let send = json!({
        "sender": {"type": "agent", "agent_id": agent_id},
        "text": "It left the warehouse today.",
        "client_id": "crm-1",
    });
    let first = api.expect(201, "POST", &path, Some(&send)).await?;
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["message"]["author_id"], agent_id.as_str());
    let seq = first["message"]["seq"].as_u64().unwrap();

    let (frame, _) = visitor
        .recv_until(
            |frame| matches!(frame, ServerFrame::Message(m) if m.author.kind == AuthorKind::Agent),
        )
        .await?;
    let ServerFrame::Message(message) = frame else {
        unreachable!()
    };
    assert_eq!(message.text, "It left the warehouse today.");
    assert_eq!(message.seq, seq);

    // The same client_id again: answered with the stored message, not stored or sent again.
    let again = api.expect(201, "POST", &path, Some(&send)).await?;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message"]["seq"].as_u64(), Some(seq));
    let next = json!({
        "sender": {"type": "agent", "agent_id": agent_id},
        "text": "Anything else?",
        "client_id": "crm-2",
    });
    api.expect(201, "POST", &path, Some(&next)).await?;
    // The next message the visitor gets is the new one: the resend was not delivered.
    let (frame, _) = visitor
        .recv_until(
            |frame| matches!(frame, ServerFrame::Message(m) if m.author.kind == AuthorKind::Agent),
        )
        .await?;
    let ServerFrame::Message(message) = frame else {
        unreachable!()
    };
    assert_eq!(message.text, "Anything else?");
    let history = world.admin.history(&conversation).await?;
    salam_e2e::process::check_history(&conversation, &history)?;
    assert_eq!(
        history.iter().filter(|m| m["client_id"] == "crm-1").count(),
        1
    );
    // The messages endpoint pages with `after`.
    let after = api
        .expect(200, "GET", &format!("{path}?after={seq}&limit=1"), None)
        .await?;
    assert_eq!(after["messages"][0]["text"], "Anything else?");

    // An agent of no site of this token, a disabled one, or nobody: 404.
    api.expect(
        404,
        "POST",
        &path,
        Some(&json!({"sender": {"type": "agent", "agent_id": "a_nobody"}, "text": "x"})),
    )
    .await?;
    world.assert_no_panic()
}

#[tokio::test]
async fn a_close_by_rest_is_seen_by_the_visitor_and_the_list_pages_by_cursor() -> anyhow::Result<()>
{
    let world = salam_e2e::process::World::start("").await?;
    let (mut visitor, conversation) = visitor_with_conversation(&world, "bye").await?;
    let (_other, second) = visitor_with_conversation(&world, "another").await?;
    let (_, token) = create_token(&world.admin, &world.site.id, "write").await?;
    let api = v1(&world, &token);

    // Two conversations, one per page, in the order they changed.
    let first_page = api
        .expect(200, "GET", "/api/v1/conversations?limit=1", None)
        .await?;
    let cursor = first_page["next_cursor"].as_str().unwrap().to_owned();
    let second_page = api
        .expect(
            200,
            "GET",
            &format!("/api/v1/conversations?limit=1&cursor={cursor}"),
            None,
        )
        .await?;
    let mut seen = vec![
        first_page["conversations"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        second_page["conversations"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    seen.sort();
    let mut expected = vec![conversation.clone(), second.clone()];
    expected.sort();
    assert_eq!(seen, expected);

    let closed = api
        .expect(
            200,
            "POST",
            &format!("/api/v1/conversations/{conversation}/close"),
            None,
        )
        .await?;
    assert_eq!(closed["closed"], true);
    assert_eq!(closed["conversation"]["state"], "closed");
    let (frame, _) = visitor
        .recv_until(|frame| {
            matches!(
                frame,
                ServerFrame::State {
                    state: ConversationState::Closed,
                    ..
                }
            )
        })
        .await?;
    assert!(matches!(frame, ServerFrame::State { conversation: c, .. } if c == conversation));
    // Closing again changes nothing; sending into it is refused with 409.
    let again = api
        .expect(
            200,
            "POST",
            &format!("/api/v1/conversations/{conversation}/close"),
            None,
        )
        .await?;
    assert_eq!(again["closed"], false);
    let refused = api
        .expect(
            409,
            "POST",
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&json!({"sender": {"type": "bot"}, "text": "hello?"})),
        )
        .await?;
    assert_eq!(refused["error"], "conversation_closed");
    // Filters: closed ones only.
    let closed_only = api
        .expect(200, "GET", "/api/v1/conversations?state=closed", None)
        .await?;
    let ids: Vec<&str> = closed_only["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [conversation.as_str()]);
    world.assert_no_panic()
}

#[tokio::test]
async fn the_bot_can_speak_through_rest() -> anyhow::Result<()> {
    let world = salam_e2e::process::World::start("").await?;
    let (mut visitor, conversation) = visitor_with_conversation(&world, "hi").await?;
    let (_, token) = create_token(&world.admin, &world.site.id, "write").await?;
    let sent = v1(&world, &token)
        .expect(
            201,
            "POST",
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&json!({"sender": {"type": "bot"}, "text": "Your order shipped."})),
        )
        .await?;
    assert_eq!(sent["message"]["author_kind"], "bot");
    let (frame, _) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Message(m) if m.author.kind == AuthorKind::Bot && m.text == "Your order shipped."))
        .await?;
    assert!(matches!(frame, ServerFrame::Message(_)));
    world.assert_no_panic()
}

#[tokio::test]
async fn offline_requests_are_listed_and_marked_done_and_reports_count_the_site()
-> anyhow::Result<()> {
    let world = salam_e2e::process::World::start("").await?;
    let (mut visitor, conversation) = visitor_with_conversation(&world, "call me").await?;
    let (_, read) = create_token(&world.admin, &world.site.id, "read").await?;
    let (_, write) = create_token(&world.admin, &world.site.id, "write").await?;
    let (read, write) = (v1(&world, &read), v1(&world, &write));
    let id = crate::common::offline_request(&world, &read, &mut visitor, &conversation).await?;
    let listed = read
        .expect(200, "GET", "/api/v1/offline-requests", None)
        .await?;
    let request = &listed["requests"][0];
    assert_eq!(
        (request["name"].as_str(), request["done_at"].is_null()),
        (Some("Rana"), true)
    );
    read.expect(
        403,
        "POST",
        &format!("/api/v1/offline-requests/{id}/done"),
        None,
    )
    .await?;
    let done = write
        .expect(
            200,
            "POST",
            &format!("/api/v1/offline-requests/{id}/done"),
            None,
        )
        .await?;
    assert!(done["done_at"].is_i64(), "{done}");
    let report = read.expect(200, "GET", "/api/v1/reports", None).await?;
    assert_eq!(report["conversations"], 1, "{report}");
    let empty = read
        .expect(200, "GET", "/api/v1/reports?from=0&to=1", None)
        .await?;
    assert_eq!(empty["conversations"], 0, "{empty}");
    world.assert_no_panic()
}
