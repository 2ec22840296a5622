//! The console's endpoints for API tokens (session admins; CSRF on writes, as every
//! console write):
//!
//! - `POST /api/sites/{id}/tokens` `{"name": "CRM sync", "scope": "read"|"write"|"admin"}`
//!   → 201 `{"token": {…}, "secret": "salam_…"}`: the secret is shown this once; only
//!   its SHA-256 is stored.
//! - `GET /api/sites/{id}/tokens` → `{"tokens": [{id, name, scope, created_at,
//!   created_by, last_used_at, revoked_at}]}` (revoked ones too, newest first).
//! - `DELETE /api/sites/{id}/tokens/{token_id}` → `{"ok": true}`: revoked at once (the
//!   next call with it answers 401).

use super::{Body, new_token, token_hash};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salam_store::{ApiScope, ApiToken, NewApiToken};
use serde::Deserialize;
use serde_json::json;

/// Tokens a site may have, revoked ones included (a bound on the list).
pub const MAX_TOKENS_PER_SITE: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScopeName {
    Read,
    Write,
    Admin,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scope: ScopeName,
}

pub fn token_json(token: &ApiToken) -> serde_json::Value {
    json!({
        "id": token.id,
        "site_id": token.site_id,
        "name": token.name,
        "scope": token.scope.as_str(),
        "created_by": token.created_by,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    })
}

fn own_site(state: &AppState, admin: &Admin, site_id: &String) -> Result<(), ApiError> {
    admin.0.narrow(state, Some(site_id)).map(|_| ())
}

/// `POST /api/sites/{id}/tokens`.
pub async fn create(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    admin: Admin,
    Body(request): Body<NewToken>,
) -> Result<Response, ApiError> {
    own_site(&state, &admin, &site_id)?;
    let name = crate::text::clean_text(&request.name);
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(super::invalid("name must have 1 to 100 characters"));
    }
    if state.store.api_tokens(&site_id).await?.len() >= MAX_TOKENS_PER_SITE {
        return Err(super::conflict(
            salam_protocol::ErrorCode::BadField,
            "this site has too many tokens",
        ));
    }
    let secret = new_token();
    let token = state
        .store
        .create_api_token(NewApiToken {
            site_id,
            name: name.to_owned(),
            scope: match request.scope {
                ScopeName::Read => ApiScope::Read,
                ScopeName::Write => ApiScope::Write,
                ScopeName::Admin => ApiScope::Admin,
            },
            token_hash: token_hash(&secret),
            created_by: Some(admin.0.agent.id.clone()),
            now: now_ms(),
        })
        .await?;
    tracing::info!(token = %token.id, site = %token.site_id, scope = token.scope.as_str(), "api token created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token_json(&token), "secret": secret })),
    )
        .into_response())
}

/// `GET /api/sites/{id}/tokens`.
pub async fn list(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    admin: Admin,
) -> Result<Response, ApiError> {
    own_site(&state, &admin, &site_id)?;
    let tokens: Vec<_> = state
        .store
        .api_tokens(&site_id)
        .await?
        .iter()
        .map(token_json)
        .collect();
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

/// `DELETE /api/sites/{id}/tokens/{token_id}`.
pub async fn revoke(
    State(state): State<AppState>,
    Path((site_id, token_id)): Path<(String, String)>,
    admin: Admin,
) -> Result<Response, ApiError> {
    own_site(&state, &admin, &site_id)?;
    state
        .store
        .revoke_api_token(&site_id, &token_id, now_ms())
        .await?;
    tracing::info!(token = %token_id, site = %site_id, "api token revoked");
    Ok(Json(json!({ "ok": true })).into_response())
}
