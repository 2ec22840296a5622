//! Webhooks (issue 17): the admins' endpoints (session-authenticated, with the CSRF header for
//! cookies, through the [`Admin`] extractor):
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /api/sites/{site}/webhooks` | the site's endpoints (never their secrets) |
//! | `POST /api/sites/{site}/webhooks` | a new endpoint; its secret is in the answer, once |
//! | `PATCH /api/webhooks/{id}` | url, events, include_notes, enabled |
//! | `DELETE /api/webhooks/{id}` | deletes it and its deliveries |
//! | `POST /api/webhooks/{id}/rotate` | a new secret (shown once); the old one signs too for `webhooks.rotation_grace_secs` |
//! | `GET /api/webhooks/{id}/deliveries?before=ID&limit=N` | the delivery log, newest first |
//! | `POST /api/webhook-deliveries/{id}/redeliver` | sends a delivery again (same event id and body) |
//!
//! See docs/webhooks.md.

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::AppState;
use crate::webhooks::events::EventType;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use salam_store::{NewWebhookEndpoint, WebhookDelivery, WebhookEndpoint, WebhookEndpointUpdate};
use serde::Deserialize;
use serde_json::{Value, json};

/// The routes, merged into the hub's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/sites/{site}/webhooks",
            get(list_endpoints).post(create_endpoint),
        )
        .route(
            "/api/webhooks/{id}",
            patch(update_endpoint).delete(delete_endpoint),
        )
        .route("/api/webhooks/{id}/rotate", post(rotate_secret))
        .route("/api/webhooks/{id}/deliveries", get(list_deliveries))
        .route("/api/webhook-deliveries/{id}/redeliver", post(redeliver))
}

/// Longest URL accepted.
const MAX_URL: usize = 2000;

fn endpoint_json(endpoint: &WebhookEndpoint) -> Value {
    let rotating_until = endpoint
        .previous_expires_at
        .filter(|until| *until > now_ms() && endpoint.previous_secret.is_some());
    json!({
        "id": endpoint.id,
        "site_id": endpoint.site_id,
        "url": endpoint.url,
        "events": endpoint.events,
        "include_notes": endpoint.include_notes,
        "enabled": endpoint.enabled,
        "created_by": endpoint.created_by,
        "created_at": endpoint.created_at,
        "consecutive_failures": endpoint.consecutive_failures,
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret_valid_until": rotating_until,
    })
}

fn delivery_json(delivery: &WebhookDelivery) -> Value {
    json!({
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "conversation_id": delivery.conversation_id,
        "status": delivery.status.as_str(),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_duration_ms": delivery.last_duration_ms,
        "last_attempt_at": delivery.last_attempt_at,
        "delivered_at": delivery.delivered_at,
        "created_at": delivery.created_at,
        "body": String::from_utf8_lossy(&delivery.body),
    })
}

/// A webhook URL: `http` or `https`, a host, no credentials, no fragment.
pub fn check_url(url: &str) -> Result<String, ApiError> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL || url.chars().any(char::is_whitespace) {
        return Err(ApiError::bad("url must be an http or https URL"));
    }
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|_| ApiError::bad("url must be an http or https URL"))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        _ => return Err(ApiError::bad("url must start with http:// or https://")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| ApiError::bad("url must name a host"))?;
    if authority.as_str().contains('@') {
        return Err(ApiError::bad("url must not hold credentials"));
    }
    if authority.host().is_empty() {
        return Err(ApiError::bad("url must name a host"));
    }
    if url.contains('#') {
        return Err(ApiError::bad("url must not have a fragment"));
    }
    Ok(url.to_owned())
}

/// Event types, known and deduplicated, in the documented order.
fn check_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    let mut kinds = Vec::new();
    for event in events {
        let kind = EventType::parse(event.trim())
            .ok_or_else(|| ApiError::bad("unknown event type (see docs/webhooks.md)"))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(ApiError::bad("subscribe to at least one event type"));
    }
    Ok(EventType::ALL
        .into_iter()
        .filter(|kind| kinds.contains(kind))
        .map(|kind| kind.as_str().to_owned())
        .collect())
}

fn known_site(state: &AppState, site_id: &str) -> Result<(), ApiError> {
    if state
        .authority
        .all_sites()
        .iter()
        .any(|site| site == site_id)
    {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

async fn endpoint_of(state: &AppState, id: &str) -> Result<WebhookEndpoint, ApiError> {
    let endpoint = state
        .store
        .webhook_endpoint(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    known_site(state, &endpoint.site_id)?;
    Ok(endpoint)
}

async fn refresh(state: &AppState) {
    if let Err(err) = state.webhooks.refresh().await {
        tracing::warn!(error = %err, "webhook sites not reloaded");
    }
}

/// `GET /api/sites/{site}/webhooks`.
async fn list_endpoints(
    State(state): State<AppState>,
    Path(site): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    known_site(&state, &site)?;
    let endpoints: Vec<Value> = state
        .store
        .webhook_endpoints(&[site])
        .await?
        .iter()
        .map(endpoint_json)
        .collect();
    Ok(Json(json!({
        "endpoints": endpoints,
        "event_types": EventType::ALL.map(EventType::as_str),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    include_notes: bool,
}

/// `POST /api/sites/{site}/webhooks`: `{"url", "events", "include_notes"}`; answers
/// `{"endpoint", "secret"}` (the only time the secret is shown).
async fn create_endpoint(
    State(state): State<AppState>,
    Path(site): Path<String>,
    Admin(admin): Admin,
    body: Option<Json<NewEndpoint>>,
) -> Result<Response, ApiError> {
    known_site(&state, &site)?;
    let Json(request) =
        body.ok_or_else(|| ApiError::bad("send {\"url\", \"events\", \"include_notes\"} as JSON"))?;
    let url = check_url(&request.url)?;
    let events = check_events(&request.events)?;
    let secret = crate::webhooks::sign::new_secret();
    let endpoint = state
        .store
        .create_webhook_endpoint(NewWebhookEndpoint {
            site_id: site,
            url,
            events,
            include_notes: request.include_notes,
            secret: secret.clone(),
            created_by: admin.agent.id.clone(),
            now: now_ms(),
        })
        .await?;
    refresh(&state).await;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "endpoint": endpoint_json(&endpoint), "secret": secret })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointPatch {
    url: Option<String>,
    events: Option<Vec<String>>,
    include_notes: Option<bool>,
    enabled: Option<bool>,
}

/// `PATCH /api/webhooks/{id}`. Enabling an endpoint again clears its failures.
async fn update_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
    body: Option<Json<EndpointPatch>>,
) -> Result<Response, ApiError> {
    endpoint_of(&state, &id).await?;
    let Json(patch) = body.ok_or_else(|| ApiError::bad("send the changes as JSON"))?;
    let update = WebhookEndpointUpdate {
        url: patch.url.as_deref().map(check_url).transpose()?,
        events: patch.events.as_deref().map(check_events).transpose()?,
        include_notes: patch.include_notes,
        enabled: patch.enabled,
    };
    let endpoint = state.store.update_webhook_endpoint(&id, update).await?;
    refresh(&state).await;
    Ok(Json(json!({ "endpoint": endpoint_json(&endpoint) })).into_response())
}

/// `DELETE /api/webhooks/{id}`.
async fn delete_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    endpoint_of(&state, &id).await?;
    state.store.delete_webhook_endpoint(&id).await?;
    refresh(&state).await;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/webhooks/{id}/rotate`: `{"endpoint", "secret"}`.
async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    endpoint_of(&state, &id).await?;
    let secret = crate::webhooks::sign::new_secret();
    let grace_ms = (state.config.webhooks.rotation_grace_secs as i64).saturating_mul(1000);
    let endpoint = state
        .store
        .rotate_webhook_secret(&id, &secret, now_ms().saturating_add(grace_ms))
        .await?;
    Ok(Json(json!({ "endpoint": endpoint_json(&endpoint), "secret": secret })).into_response())
}

#[derive(Deserialize)]
struct DeliveryPage {
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/webhooks/{id}/deliveries?before=ID&limit=N` (at most 200, 50 by default).
async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<DeliveryPage>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    endpoint_of(&state, &id).await?;
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let deliveries: Vec<Value> = state
        .store
        .webhook_deliveries(&id, page.before, limit)
        .await?
        .iter()
        .map(delivery_json)
        .collect();
    Ok(Json(json!({ "deliveries": deliveries })).into_response())
}

/// `POST /api/webhook-deliveries/{id}/redeliver`: queued again now, with the same
/// event id and body (also a delivered or dead one).
async fn redeliver(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let delivery = state
        .store
        .webhook_delivery(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    endpoint_of(&state, &delivery.endpoint_id).await?;
    state.store.redeliver_webhook(id, now_ms()).await?;
    state.webhooks.wake();
    let delivery = state
        .store
        .webhook_delivery(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({ "delivery": delivery_json(&delivery) })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        assert!(check_url("https://hooks.example/salam").is_ok());
        assert!(check_url("http://127.0.0.1:9000/in?x=1").is_ok());
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "https:///nohost",
            "https://example.com/a b",
            "example.com/hook",
            "https://example.com/#frag",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn events_are_known_and_deduplicated() {
        let events = check_events(&[
            "message.created".into(),
            "conversation.created".into(),
            "message.created".into(),
        ])
        .expect("known");
        assert_eq!(events, ["conversation.created", "message.created"]);
        assert!(check_events(&["message.deleted".into()]).is_err());
        assert!(check_events(&[]).is_err());
    }
}
