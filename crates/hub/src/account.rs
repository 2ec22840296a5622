//! The agent's own account: sign in, sign out, who am I, change the password. Every
//! change reaches the agent's open sockets through the
//! [`Authority`](crate::authority::Authority): signing out closes the sockets of that
//! session, a new password closes those of every other session.

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::{ClientIp, Https, SESSION_COOKIE, SignedIn};
use crate::state::AppState;
use crate::throttle::Key;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use salam_protocol::ErrorCode;
use salam_store::Agent;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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

/// Longest e-mail address and password read (a longer one is refused unhashed).
const MAX_EMAIL: usize = 254;
const MAX_PASSWORD: usize = 1024;

fn wrong_login() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "wrong e-mail or password",
    )
}

/// `POST /api/login`. In order, before any password is hashed:
///
/// 1. an address or account with too many recent failures is refused with 429 and
///    `Retry-After` ([`crate::throttle`]);
/// 2. when every hashing slot is busy (`auth.hash_concurrency`, about the core
///    count) the sign-in is refused with 429 and `Retry-After: 1`, so a flood can
///    neither grow memory (each argon2 hash takes ~19 MiB) nor slow other requests.
///
/// Then exactly one hash is verified whether the account exists, is disabled or is
/// active (a random one for an unknown e-mail), so timing tells nothing.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Https(https): Https,
    body: Option<Json<LoginRequest>>,
) -> Result<Response, ApiError> {
    let Json(request) =
        body.ok_or_else(|| ApiError::bad("send JSON {\"email\": ..., \"password\": ...}"))?;
    let email = request.email.trim().to_lowercase();
    if email.len() > MAX_EMAIL || request.password.len() > MAX_PASSWORD {
        return Err(wrong_login());
    }
    let auth = &state.config.auth;
    let now = Instant::now();
    let (address, account) = (Key::Ip(ip), Key::Account(email.clone()));
    let blocked = [
        state.throttle.check(&address, now),
        state.throttle.check(&account, now),
    ]
    .into_iter()
    .filter_map(Result::err)
    .max();
    if let Some(wait) = blocked {
        state
            .metrics
            .logins_throttled
            .fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::too_many(
            "too many failed sign-ins; wait before trying again",
            wait,
        ));
    }
    let Ok(permit) = state.hashing.clone().try_acquire_owned() else {
        state
            .metrics
            .logins_throttled
            .fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::too_many(
            "too many sign-ins at once; try again in a moment",
            Duration::from_secs(1),
        ));
    };
    let found = state.store.agent_by_email(&email).await?;
    state.metrics.login_hashes.fetch_add(1, Ordering::Relaxed);
    let password = request.password;
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let hash = found
            .as_ref()
            .map_or(dummy_hash(), |(_, hash)| hash.as_str());
        let matches = crate::auth::verify_password(&password, hash);
        found
            .map(|(agent, _)| agent)
            .filter(|agent| matches && !agent.disabled)
    })
    .await
    .ok()
    .flatten();
    let Some(agent) = verified else {
        state.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
        state
            .throttle
            .failed(address, auth.ip_free_failures, Instant::now());
        state
            .throttle
            .failed(account, auth.account_free_failures, Instant::now());
        return Err(wrong_login());
    };
    state.throttle.succeeded(&account);
    let token = crate::auth::random_token(32);
    let max_age_secs = auth.session_hours as i64 * 3600;
    let expires_at = now_ms() + max_age_secs * 1000;
    state
        .store
        .create_session(&crate::auth::session_hash(&token), &agent.id, expires_at)
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if https { "; Secure" } else { "" }
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
    Ok(response)
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

/// Checks a new password against the policy ([`crate::auth::password_problem`]).
pub fn check_password(password: &str, email: &str) -> Result<(), ApiError> {
    match crate::auth::password_problem(password, email) {
        Some(problem) => Err(ApiError::bad(problem)),
        None => Ok(()),
    }
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
    // Two hashes: in the hashing slots like a sign-in (waiting for one, not refused).
    let permit = state
        .hashing
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unauthorized())?;
    let hashed = tokio::task::spawn_blocking(move || {
        let _permit = permit;
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

/// Hashes a new password in one of the hashing slots (waiting for one: only admins
/// and the agent themselves get here). Returns the hash and the password.
pub async fn hash_new_password(
    state: &AppState,
    password: String,
) -> Result<(String, String), ApiError> {
    let failed = || {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "could not hash the password",
        )
    };
    let permit = state
        .hashing
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| failed())?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::auth::hash_password(&password).map(|hash| (hash, password))
    })
    .await
    .map_err(|_| failed())?
    .map_err(|_| failed())
}
