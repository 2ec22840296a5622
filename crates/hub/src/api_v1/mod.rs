//! The public REST API v1 (issue 17), for other systems: `/api/v1/…` with an API token
//! of one site (`Authorization: Bearer salam_…`).
//!
//! - [`ApiCaller<S>`]: the extractor of every v1 handler. It resolves the token to its
//!   site and scope, and demands the scope `S` ([`Read`], [`Write`] or [`AdminScope`]),
//!   so a handler cannot forget the check: 401 for a missing, unknown or revoked token,
//!   403 for a scope too small, 429 past the token's rate (`[api] rate_per_sec`,
//!   `burst`). Every object is looked up
//!   within the token's site; another site's id answers 404, like a missing one.
//! - [`Body<T>`]: a JSON body whose rejections are the API's JSON errors (400 bad JSON,
//!   415 no JSON content type, 413 too large, 422 a body that does not fit the schema).
//! - [`tokens`]: the console's endpoints that create, list and revoke tokens (session
//!   admins, with CSRF); [`conversations`], [`contacts`] and [`records`] (offline
//!   requests, reports, the token's site): the v1 handlers. Their OpenAPI document is
//!   generated from the handlers, and their routes assembled, in [`crate::openapi`].
//!
//! Messages are sent and conversations closed through [`crate::conversation`], exactly
//! as the WebSocket handlers do (commit, then answer, then fan-out and routing).

pub mod contacts;
pub mod conversations;
pub mod records;
pub mod tokens;

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::rate::TokenBucket;
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use salam_protocol::ErrorCode;
use salam_store::{ApiScope, ApiToken};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// What every API token starts with (so a leaked one is easy to recognise and scan for).
pub const TOKEN_PREFIX: &str = "salam_";
/// A token's `last_used_at` is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The error body of every API answer that is not a success (also for 404, 405 and the
/// framework's rejections).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `bad_json`,
    /// `bad_field`, `rate_limited`, `conversation_closed`, `empty_text`,
    /// `text_too_long`, `store_unavailable`, …
    pub error: String,
    /// A human explanation (not stable).
    pub message: String,
}

/// A scope a handler demands (a type, so the demand is in the handler's signature).
pub trait Scope: Send + Sync + 'static {
    const NEEDED: ApiScope;
}

/// Demands a `read` token (any token).
#[derive(Debug)]
pub struct Read;
/// Demands a `write` or `admin` token.
#[derive(Debug)]
pub struct Write;
/// Demands an `admin` token.
#[derive(Debug)]
pub struct AdminScope;

impl Scope for Read {
    const NEEDED: ApiScope = ApiScope::Read;
}
impl Scope for Write {
    const NEEDED: ApiScope = ApiScope::Write;
}
impl Scope for AdminScope {
    const NEEDED: ApiScope = ApiScope::Admin;
}

/// The caller of a v1 endpoint: a live token whose scope includes `S`.
#[derive(Debug)]
pub struct ApiCaller<S: Scope> {
    pub token: ApiToken,
    _scope: PhantomData<S>,
}

impl<S: Scope> ApiCaller<S> {
    /// The token's site: every object of the call belongs to it.
    pub fn site_id(&self) -> &str {
        &self.token.site_id
    }

    /// Who made a change, for histories: `token:ID`.
    pub fn who(&self) -> String {
        format!("token:{}", self.token.id)
    }
}

/// The SHA-256 of a token (base64url), which is what the store keeps.
pub fn token_hash(token: &str) -> String {
    crate::auth::session_hash(token)
}

/// A new token: [`TOKEN_PREFIX`] and 32 random bytes in base64url.
pub fn new_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "send a live API token: Authorization: Bearer salam_…",
    )
}

/// The rate buckets of tokens, by token id (bounded like [`crate::rate::SharedBuckets`]).
static BUCKETS: LazyLock<DashMap<String, TokenBucket>> = LazyLock::new(DashMap::new);
const MAX_BUCKETS: usize = 100_000;

/// Takes one request from the token's bucket (`[api] rate_per_sec`, `burst`).
fn within_rate(state: &AppState, token_id: &str, now: Instant) -> bool {
    if BUCKETS.len() >= MAX_BUCKETS && !BUCKETS.contains_key(token_id) {
        BUCKETS.clear();
    }
    let config = &state.config.api;
    BUCKETS
        .entry(token_id.to_owned())
        .or_insert_with(|| TokenBucket::new(config.rate_per_sec, config.burst.max(1), now))
        .take(now)
}

impl<S: Scope> FromRequestParts<AppState> for ApiCaller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ApiCaller<S>, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| token.starts_with(TOKEN_PREFIX) && token.len() <= 200)
            .ok_or_else(unauthorized)?;
        let found = state
            .store
            .api_token_by_hash(&token_hash(token))
            .await?
            .filter(|found| found.revoked_at.is_none())
            .ok_or_else(unauthorized)?;
        if !within_rate(state, &found.id, Instant::now()) {
            return Err(ApiError::too_many(
                "this token is over its request rate",
                Duration::from_secs(1),
            ));
        }
        if !found.scope.allows(S::NEEDED) {
            return Err(ApiError::forbidden(match S::NEEDED {
                ApiScope::Read => "this token cannot read",
                ApiScope::Write => "this token may only read; this needs a write token",
                ApiScope::Admin => "this needs an admin token",
            }));
        }
        let now = now_ms();
        if found
            .last_used_at
            .is_none_or(|last| now - last > TOUCH_EVERY_MS)
        {
            state.store.touch_api_token(&found.id, now).await?;
        }
        Ok(ApiCaller {
            token: found,
            _scope: PhantomData,
        })
    }
}

/// A JSON error with a message made at run time (the framework's rejections).
pub fn error_response(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            error: code.as_str().to_owned(),
            message,
        }),
    )
        .into_response()
}

/// A JSON request body, an object. Rejections are JSON errors: 400 `bad_json` (not
/// JSON), 415 `bad_json` (no `Content-Type: application/json`), 413 (too large), 422
/// `bad_field` (JSON that does not fit: not an object, a missing or unknown field, a
/// wrong type).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, Response> {
        match Json::<serde_json::Value>::from_request(request, state).await {
            // Bodies are objects (serde would also take a struct from an array).
            Ok(Json(value)) if !value.is_object() => Err(error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::BadField,
                "the body must be a JSON object".into(),
            )),
            Ok(Json(value)) => serde_json::from_value(value).map(Body).map_err(|err| {
                let message: String = err.to_string().chars().take(300).collect();
                error_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::BadField,
                    message,
                )
            }),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status {
                    StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::BadField,
                    StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::FrameTooLarge,
                    _ => ErrorCode::BadJson,
                };
                let message: String = rejection.body_text().chars().take(300).collect();
                Err(error_response(status, code, message))
            }
        }
    }
}

/// What a text field must contain somewhere: a character that is not blank in the
/// sense of [`crate::text::is_blank_char`] (whitespace, zero-width, bidi controls), so
/// that the document refuses what the handlers refuse as empty.
pub const VISIBLE_PATTERN: &str =
    "[^\\s\\u200B-\\u200F\\u2060\\uFEFF\\u180E\\u061C\\u202A-\\u202E\\u2066-\\u2069]";

/// 422 with a reason.
pub fn invalid(message: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::BadField,
        message,
    )
}

/// 409 with a code and a reason.
pub fn conflict(code: ErrorCode, message: &'static str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}
