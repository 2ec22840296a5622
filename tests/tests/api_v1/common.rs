//! A v1 client with an API token, and the set-up the tests share.

use anyhow::{Context, Result, ensure};
use salam_e2e::process::{Api, ORIGIN, World, visitor_session};
use salam_e2e::{Client, HttpResponse, http_request};
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// A caller of `/api/v1` with an API token.
#[derive(Debug, Clone)]
pub struct V1 {
    pub addr: SocketAddr,
    pub token: String,
}

impl V1 {
    /// Any request with a raw body (sent as JSON when not empty); the answer as it came.
    pub async fn raw(&self, method: &str, path: &str, body: &str) -> Result<HttpResponse> {
        let bearer = format!("Bearer {}", self.token);
        let mut headers = vec![("authorization", bearer.as_str())];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        http_request(self.addr, method, path, &headers, body).await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse> {
        let body = body.map(Value::to_string).unwrap_or_default();
        self.raw(method, path, &body).await
    }

    /// A request that must answer `status`, with a JSON body.
    pub async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let response = self.call(method, path, body).await?;
        ensure!(
            response.status == status,
            "{method} {path}: expected {status}, got {} {}",
            response.status,
            response.body
        );
        Ok(serde_json::from_str(&response.body).unwrap_or(Value::Null))
    }
}

/// Creates an API token of `site_id` through the console's endpoint (as an admin).
pub async fn create_token(admin: &Api, site_id: &str, scope: &str) -> Result<(String, String)> {
    let created = admin
        .json(
            "POST",
            &format!("/api/sites/{site_id}/tokens"),
            Some(&json!({"name": format!("{scope} token"), "scope": scope})),
        )
        .await?;
    let secret = created["secret"].as_str().context("secret")?.to_owned();
    let id = created["token"]["id"]
        .as_str()
        .context("token id")?
        .to_owned();
    ensure!(secret.starts_with("salam_"), "token {secret}");
    Ok((id, secret))
}

pub fn v1(world: &World, token: &str) -> V1 {
    V1 {
        addr: world.hub.addr,
        token: token.to_owned(),
    }
}

/// A visitor of the world's site who said `text`; their socket and conversation id.
pub async fn visitor_with_conversation(world: &World, text: &str) -> Result<(Client, String)> {
    let mut visitor = visitor_session(world.hub.addr, ORIGIN, &world.site.key, None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "v1", "text": text}))
        .await?;
    let (frame, _) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = frame else {
        unreachable!()
    };
    Ok((visitor, conversation))
}

/// The visitor leaves contact details in `conversation` (an offline request); its id.
pub async fn offline_request(
    world: &World,
    api: &V1,
    visitor: &mut Client,
    conversation: &str,
) -> Result<i64> {
    visitor
        .send_json(&json!({
            "type": "contact",
            "conversation": conversation,
            "name": "Rana",
            "email": "rana@example.test",
            "message": "Please call me back",
        }))
        .await?;
    let _ = world;
    salam_e2e::process::eventually(
        "the offline request",
        std::time::Duration::from_secs(20),
        || async {
            let listed = api
                .expect(200, "GET", "/api/v1/offline-requests", None)
                .await?;
            Ok(listed["requests"]
                .as_array()
                .and_then(|requests| {
                    requests
                        .iter()
                        .find(|r| r["conversation_id"] == conversation)
                })
                .and_then(|r| r["id"].as_i64()))
        },
    )
    .await
}
