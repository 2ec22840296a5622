//! The agent's own account: sign in, sign out, who am I, change the password. Every
//! change reaches the agent's open sockets through the
//! [`Authority`](crate::authority::Authority): signing out closes the sockets of that
//! session, a new password closes those of every other session.

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::{SESSION_COOKIE, SignedIn};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use salam_protocol::ErrorCode;
use salam_store::Agent;
use serde::Deserialize;
use serde_json::json;

/// The agent as `/api/login` and `/api/me` show them.
pub fn agent_json(agent: &Agent, sites: &[String]) -> serde_json::Value {
    json!({
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "role": agent.role.as_str(),
        "all_sites": agent.all_sites,
        "site_ids": sites,
        "presence": agent.presence,
    })
}

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// `POST /api/login`.
pub async fn login(State(state): State<AppState>, body: Option<Json<LoginRequest>>) -> Response {
    let Some(Json(request)) = body else {
        return ApiError::bad("send JSON {\"email\": ..., \"password\": ...}").into_response();
    };
    let found = match state.store.agent_by_email(&request.email).await {
        Ok(found) => found,
        Err(err) => return ApiError::from(err).into_response(),
    };
    // Hashing runs on the blocking pool: argon2 is deliberately slow.
    let password = request.password;
    let verified = tokio::task::spawn_blocking(move || match found {
        Some((agent, hash))
            if !agent.disabled && crate::auth::verify_password(&password, &hash) =>
        {
            Some(agent)
        }
        Some(_) => None,
        None => {
            // Spend the same time for an unknown e-mail, so timing does not tell.
            let _ = crate::auth::verify_password(&password, dummy_hash());
            None
        }
    })
    .await
    .ok()
    .flatten();
    let Some(agent) = verified else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "wrong e-mail or password",
        )
        .into_response();
    };
    let token = crate::auth::random_token(32);
    let max_age_secs = state.config.auth.session_hours as i64 * 3600;
    let expires_at = now_ms() + max_age_secs * 1000;
    if let Err(err) = state
        .store
        .create_session(&crate::auth::session_hash(&token), &agent.id, expires_at)
        .await
    {
        return ApiError::from(err).into_response();
    }
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if state.config.auth.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    let sites = state.authority.sites_of(&agent);
    let mut response = Json(json!({
        "token": token,
        "expires_at": expires_at,
        "agent": agent_json(&agent, &sites),
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// An argon2id hash of a random password, to equalise login timing.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        crate::auth::hash_password(&crate::auth::generate_password()).unwrap_or_default()
    })
}

fn clear_cookie(response: &mut Response) {
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("salam_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
}

/// `POST /api/logout`: ends this session; its open sockets close (code 4001).
pub async fn logout(State(state): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    state.store.delete_session(&me.session).await?;
    state.authority.agent_changed(&me.agent.id).await?;
    let mut response = Json(json!({ "ok": true })).into_response();
    clear_cookie(&mut response);
    Ok(response)
}

/// `GET /api/me`.
pub async fn me(State(state): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    let sites = me.sites(&state);
    Ok(Json(agent_json(&me.agent, &sites)).into_response())
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// Checks a new password: at least 10 characters, not only spaces, not the e-mail.
pub fn check_password(password: &str, email: &str) -> Result<(), ApiError> {
    if password.chars().count() < 10 || password.trim().is_empty() {
        return Err(ApiError::bad("the password needs at least 10 characters"));
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(ApiError::bad("the password cannot be the e-mail address"));
    }
    Ok(())
}

/// `POST /api/me/password` `{"current", "new"}`: every other session of the agent ends
/// (their sockets close); this one stays.
pub async fn change_password(
    State(state): State<AppState>,
    me: SignedIn,
    body: Option<Json<PasswordChange>>,
) -> Result<Response, ApiError> {
    let Json(request) = body.ok_or_else(|| ApiError::bad("send {\"current\", \"new\"}"))?;
    check_password(&request.new, &me.agent.email)?;
    let stored = state
        .store
        .password_hash(&me.agent.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let (current, new) = (request.current, request.new);
    let hashed = tokio::task::spawn_blocking(move || {
        if !crate::auth::verify_password(&current, &stored) {
            return None;
        }
        crate::auth::hash_password(&new).ok()
    })
    .await
    .ok()
    .flatten();
    let Some(hash) = hashed else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "the current password is wrong",
        ));
    };
    state.store.set_password_hash(&me.agent.id, &hash).await?;
    state
        .store
        .delete_sessions_of_agent(&me.agent.id, Some(&me.session))
        .await?;
    state.authority.agent_changed(&me.agent.id).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}
