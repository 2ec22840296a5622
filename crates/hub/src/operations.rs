//! Admin REST for running the hub: a visitor's data on request and the audit log.
//!
//! - `GET /api/admin/visitors/export?visitor=ID | external_id=ID[&site=SITE] | email=E`:
//!   everything stored about the matching visitors, as one JSON file (an attachment).
//! - `POST /api/admin/visitors/erase` with `{"visitor"|"external_id"|"email": …,
//!   "site": …}`: closes the visitors' open conversations (their agents and widgets see
//!   them close), then erases them (see [`crate::privacy`]); answers what was deleted.
//! - `GET /api/admin/audit?limit=N`: the newest entries of the audit log.
//!
//! Every handler takes [`Admin`]; both requests that act are written to the audit log
//! under `agent:ID (E-MAIL)`.

use crate::clock::now_ms;
use crate::conversation;
use crate::error::ApiError;
use crate::extract::{Admin, SignedIn};
use crate::privacy::{self, PrivacyError};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use salam_protocol::{ConversationState, ErrorCode};
use salam_store::Transition;
use serde::Deserialize;
use serde_json::json;

/// Who the visitor is: exactly one of `visitor`, `external_id` and `email`.
#[derive(Debug, Deserialize)]
pub struct VisitorQuery {
    visitor: Option<String>,
    external_id: Option<String>,
    email: Option<String>,
    /// Narrows `external_id` to one site.
    site: Option<String>,
}

impl VisitorQuery {
    fn selector(self) -> Result<salam_store::VisitorSelector, ApiError> {
        privacy::selector(self.visitor, self.external_id, self.email, self.site).map_err(api_error)
    }
}

fn actor(me: &SignedIn) -> String {
    format!("agent:{} ({})", me.agent.id, me.agent.email)
}

fn api_error(err: PrivacyError) -> ApiError {
    match err {
        PrivacyError::Selector => {
            ApiError::bad("name the visitor by exactly one of visitor, external_id, email")
        }
        PrivacyError::NotFound => ApiError::not_found(),
        PrivacyError::Open(_) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::BadField,
            "the visitor has open conversations",
        ),
        PrivacyError::Store(err) => ApiError::from(err),
    }
}

/// `GET /api/admin/visitors/export?…`.
pub async fn export_visitor(
    State(state): State<AppState>,
    Query(query): Query<VisitorQuery>,
    Admin(me): Admin,
) -> Result<Response, ApiError> {
    let selector = query.selector()?;
    let export = privacy::export(&*state.store, &selector, &actor(&me), now_ms())
        .await
        .map_err(api_error)?;
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"salam-visitor-export.json\"",
        )],
        Json(export),
    )
        .into_response())
}

/// Closes a conversation because its visitor's data is being erased: no rating form,
/// routing frees the agent's slot, followers see it close.
async fn close_for_erasure(state: &AppState, id: &str) -> Result<(), ApiError> {
    let mut change = Transition::new(
        id,
        &[
            ConversationState::Bot,
            ConversationState::Queued,
            ConversationState::Assigned,
        ],
        ConversationState::Closed,
        now_ms(),
    );
    change.event = Some(salam_protocol::SystemEvent::new(
        salam_protocol::EventCode::ClosedErased,
        &[],
    ));
    let (closed, applied) = conversation::transition(state, change).await?;
    if applied {
        state
            .routing
            .send(crate::routing::Command::Closed {
                conversation: closed.id,
            })
            .await;
    }
    Ok(())
}

/// `POST /api/admin/visitors/erase`.
pub async fn erase_visitor(
    State(state): State<AppState>,
    Admin(me): Admin,
    body: Option<Json<VisitorQuery>>,
) -> Result<Response, ApiError> {
    let Some(Json(query)) = body else {
        return Err(ApiError::bad(
            "send {\"visitor\"|\"external_id\"|\"email\": ...}",
        ));
    };
    let selector = query.selector()?;
    let actor = actor(&me);
    // A conversation may open between the close and the erasure; a few rounds settle it.
    let mut rounds = 0;
    loop {
        match privacy::erase(&*state.store, &selector, &actor, now_ms()).await {
            Ok(report) => return Ok(Json(json!({ "erased": report })).into_response()),
            Err(PrivacyError::Open(open)) if rounds < 3 => {
                rounds += 1;
                for id in open {
                    close_for_erasure(&state, &id).await?;
                }
            }
            Err(err) => return Err(api_error(err)),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
}

/// `GET /api/admin/audit?limit=N` (default 100, at most 1000).
pub async fn audit_log(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let entries: Vec<_> = state
        .store
        .audit_log(limit)
        .await?
        .into_iter()
        .map(|entry| {
            json!({
                "id": entry.id,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "subject": entry.subject,
                "detail": serde_json::from_str::<serde_json::Value>(&entry.detail)
                    .unwrap_or(serde_json::Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })).into_response())
}
