//! Hostile review, issue 12 ("edges"), the wire: frames the WebSocket library cannot
//! hand over get the documented error and close code, framework errors are the API's
//! JSON. Each test pins a finding of the review and fails on the code before the fix.

use futures_util::SinkExt;
use salam_e2e::{Client, Ended, TestHub, error_code, http_request};
use salam_hub::config::Limits;
use salam_protocol::ErrorCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The next error frame has `code` (an agent's console gets presence and team
/// frames besides).
async fn next_error(client: &mut Client, code: ErrorCode) -> anyhow::Result<()> {
    let (frame, _) = client.recv_until(|f| error_code(f).is_some()).await?;
    anyhow::ensure!(
        error_code(&frame) == Some(code),
        "expected {code}, got {frame:?}"
    );
    Ok(())
}

/// The socket was closed by the hub with `code` (a close frame, not a dropped
/// connection).
async fn closed_with(client: &mut Client, code: u16) -> anyhow::Result<()> {
    match client.ended().await {
        Ended::Closed(Some(frame)) if u16::from(frame.code) == code => Ok(()),
        other => anyhow::bail!("expected close {code}, got {other:?}"),
    }
}

/// A `send` frame of about `bytes` bytes.
fn send_of(bytes: usize) -> String {
    format!(
        r#"{{"type":"send","client_id":"big","text":"{}"}}"#,
        "a".repeat(bytes)
    )
}

/// Finding: "An invalid-UTF-8 frame … drops the TCP connection instead of the
/// documented bad_json." The client is told `bad_json`, then the socket closes with
/// 1007 (the WebSocket library cannot read on after it).
#[tokio::test]
async fn a_text_frame_that_is_not_utf8_gets_bad_json_then_1007() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    for agent_side in [false, true] {
        let mut client = if agent_side {
            hub.admin_agent().await?
        } else {
            hub.visitor(None).await?
        };
        let payload = b"{\"type\":\"ping\",\"x\":\"\xff\xfe\xc3\x28\"}".to_vec();
        client
            .socket
            .send(WsMessage::Frame(Frame::message(
                payload,
                OpCode::Data(Data::Text),
                true,
            )))
            .await?;
        next_error(&mut client, ErrorCode::BadJson).await?;
        closed_with(&mut client, 1007).await?;
    }
    // The hub still serves.
    let mut again = hub.visitor(None).await?;
    again.round_trip().await?;
    Ok(())
}

/// Finding: "… or a frame over 1 MiB drops the TCP connection instead of the
/// documented … close 1009." A visitor's frame over the visitors' hard limit (128 KiB)
/// gets `frame_too_large` and close 1009; under it (but over 64 KiB) only the error.
#[tokio::test]
async fn a_visitor_frame_over_the_hard_limit_gets_frame_too_large_then_1009() -> anyhow::Result<()>
{
    let hub = TestHub::start().await?;
    let limits = Limits::default();
    assert_eq!(limits.visitor_hard_max_frame_bytes, 128 * 1024);
    let mut visitor = hub.visitor(None).await?;
    visitor.send_text(&send_of(100 * 1024)).await?;
    next_error(&mut visitor, ErrorCode::FrameTooLarge).await?;
    visitor.round_trip().await?;

    visitor.send_text(&send_of(200 * 1024)).await?;
    next_error(&mut visitor, ErrorCode::FrameTooLarge).await?;
    closed_with(&mut visitor, 1009).await?;
    let mut again = hub.visitor(None).await?;
    again.round_trip().await?;
    Ok(())
}

/// Agents may send larger frames before the socket is closed (1 MiB), but the soft
/// limit (64 KiB) still refuses the frame and keeps the socket.
#[tokio::test]
async fn an_agent_frame_over_the_soft_limit_is_refused_and_over_1_mib_closes() -> anyhow::Result<()>
{
    let hub = TestHub::start().await?;
    let limits = Limits::default();
    assert_eq!(limits.max_frame_bytes, 64 * 1024);
    assert_eq!(limits.hard_max_frame_bytes, 1024 * 1024);
    let mut agent = hub.admin_agent().await?;
    agent.send_text(&send_of(200 * 1024)).await?;
    next_error(&mut agent, ErrorCode::FrameTooLarge).await?;
    agent.round_trip().await?;

    agent.send_text(&send_of(1024 * 1024 + 1024)).await?;
    next_error(&mut agent, ErrorCode::FrameTooLarge).await?;
    closed_with(&mut agent, 1009).await?;
    let mut again = hub.admin_agent().await?;
    again.round_trip().await?;
    Ok(())
}

/// A request's answer is the API's JSON error: `status`, `Content-Type:
/// application/json`, and `{"error": code, "message": text}`.
pub(crate) fn assert_json_error(
    what: &str,
    response: &salam_e2e::HttpResponse,
    status: u16,
    code: Option<&str>,
) {
    assert_eq!(response.status, status, "{what}: {}", response.body);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content-type {content_type:?}, body {:?}",
        response.body
    );
    let body: Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|err| panic!("{what}: not JSON ({err}): {:?}", response.body));
    let error = body["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{what}: {body}");
    if let Some(code) = code {
        assert_eq!(error, code, "{what}: {body}");
    }
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

/// Finding: "Framework errors come back as text/plain, not the documented JSON."
#[tokio::test]
async fn framework_errors_are_json() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let bearer = format!("Bearer {admin}");
    let auth = ("authorization", bearer.as_str());
    let json_body = ("content-type", "application/json");

    let response = http_request(hub.addr, "GET", "/api/no-such-thing", &[auth], "").await?;
    assert_json_error("unknown path", &response, 404, Some("not_found"));
    let response = http_request(hub.addr, "GET", "/no-such-page", &[], "").await?;
    assert_json_error("unknown page", &response, 404, Some("not_found"));
    let response = http_request(hub.addr, "GET", "/api/login", &[], "").await?;
    assert_json_error("GET /api/login", &response, 405, Some("method_not_allowed"));
    let response = http_request(hub.addr, "DELETE", "/api/sites", &[auth], "").await?;
    assert_json_error(
        "DELETE /api/sites",
        &response,
        405,
        Some("method_not_allowed"),
    );
    let response = http_request(hub.addr, "POST", "/api/login", &[json_body], "{not json").await?;
    assert_json_error("malformed login", &response, 400, Some("bad_json"));
    let response = http_request(
        hub.addr,
        "POST",
        "/api/login",
        &[("content-type", "text/plain")],
        r#"{"email":"a@b.c","password":"x"}"#,
    )
    .await?;
    assert!(
        (400..500).contains(&response.status),
        "login as text/plain: {}",
        response.status
    );
    assert_json_error("login as text/plain", &response, response.status, None);
    let response = http_request(
        hub.addr,
        "PUT",
        &format!("/api/sites/{}/settings", hub.site.id),
        &[auth, json_body],
        r#"{"color": 5}"#,
    )
    .await?;
    assert!(
        (400..500).contains(&response.status),
        "settings of the wrong type: {}",
        response.status
    );
    assert_json_error(
        "settings of the wrong type",
        &response,
        response.status,
        None,
    );
    let response = http_request(hub.addr, "GET", "/api/reports?from=abc", &[auth], "").await?;
    assert_json_error("a query that does not parse", &response, 400, None);
    let response = http_request(
        hub.addr,
        "GET",
        "/api/conversations/c_x/messages?after=-1",
        &[auth],
        "",
    )
    .await?;
    assert_json_error("a negative sequence", &response, 400, None);
    Ok(())
}
