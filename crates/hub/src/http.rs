//! HTTP: the router, WebSocket upgrades, the REST API and the pages.

use crate::agent::AgentEndpoint;
use crate::state::{AppState, now_ms};
use crate::visitor::{VisitorEndpoint, origin_allowed};
use crate::ws::{self, Side};
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use salam_protocol::ErrorCode;
use salam_store::{Agent, StoreError};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "salam_session";
/// Cookie-authenticated state-changing requests must carry this header (a page on
/// another origin cannot set it without a CORS preflight, which the hub never grants).
pub const CSRF_HEADER: &str = "x-salam-csrf";

/// Builds the router. Tests call this directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(demo_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws/visitor", get(visitor_socket))
        .route("/ws/agent", get(agent_socket))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/conversations", get(crate::api::conversations))
        .route("/api/conversations/{id}", get(crate::api::conversation))
        .route("/api/conversations/{id}/messages", get(history))
        .route("/api/agents", get(crate::api::agents))
        .route("/api/queue", get(crate::api::queue))
        .route("/api/offline-requests", get(crate::api::offline_requests))
        .route("/api/alerts", get(crate::api::alerts))
        .route(
            "/api/sites",
            get(crate::api::sites).post(crate::admin::add_site),
        )
        .route(
            "/api/sites/{id}/settings",
            axum::routing::put(crate::api::put_site_settings),
        )
        .route("/api/rules", get(crate::api::rules))
        .route("/api/rules/try", post(crate::api::try_rules))
        .route("/api/rules/reload", post(crate::api::reload_rules))
        .route("/api/reports", get(crate::api::reports))
        .route("/api/widget/{key}", get(crate::api::widget_settings))
        .route(
            "/api/admin/agents",
            get(crate::admin::list_agents).post(crate::admin::add_agent),
        )
        .route(
            "/api/admin/agents/{id}",
            axum::routing::patch(crate::admin::patch_agent),
        )
        .route(
            "/api/departments",
            get(crate::admin::departments).post(crate::admin::add_department),
        )
        .route(
            "/api/departments/{name}",
            axum::routing::delete(crate::admin::remove_department),
        )
        .route(
            "/api/sites/{id}",
            axum::routing::patch(crate::admin::patch_site),
        )
        .route(
            "/api/canned",
            get(crate::admin::canned).post(crate::admin::add_canned),
        )
        .route(
            "/api/canned/{id}",
            axum::routing::delete(crate::admin::remove_canned),
        )
        .route(
            "/api/offline-requests/{id}/done",
            post(crate::admin::offline_request_done),
        )
        .route(
            "/api/alerts/{id}/ack",
            post(crate::admin::acknowledge_alert),
        )
        .route("/console", get(crate::assets::console_index))
        .route("/console/", get(crate::assets::console_index))
        .route("/console/{file}", get(crate::assets::console_asset))
        .route("/widget.js", get(crate::assets::loader))
        .route("/widget/{file}", get(crate::assets::file))
        .with_state(state)
}

/// An API error: an HTTP status and a stable code; causes are logged, never sent.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: &'static str) -> ApiError {
        ApiError {
            status,
            code,
            message,
        }
    }

    fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "sign in first",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        tracing::warn!(error = %err, "api request failed in the store");
        let code = crate::service::store_code(&err);
        let status = match code {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, code, "request failed")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code.as_str(), "message": self.message })),
        )
            .into_response()
    }
}

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Cookie,
    Bearer,
}

fn session_token(headers: &HeaderMap) -> Option<(String, Credential)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some((token.trim().to_owned(), Credential::Bearer));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| (token.to_owned(), Credential::Cookie))
}

/// The signed-in agent, from the session cookie or a bearer token.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Agent, String, Credential), ApiError> {
    let (token, credential) = session_token(headers).ok_or_else(ApiError::unauthorized)?;
    if token.is_empty() || token.len() > 200 {
        return Err(ApiError::unauthorized());
    }
    let hash = crate::auth::session_hash(&token);
    let agent = state
        .store
        .session_agent(&hash, now_ms())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok((agent, hash, credential))
}

/// CSRF check for state-changing requests made with the cookie.
pub fn check_csrf(
    method: &Method,
    credential: Credential,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if credential == Credential::Cookie
        && *method != Method::GET
        && headers.get(CSRF_HEADER).is_none()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "missing the x-salam-csrf header",
        ));
    }
    Ok(())
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.chars().take(512).collect())
}

/// Applies the per-connection buffer sizes and frame limits to an upgrade.
fn tune(state: &AppState, upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    let websocket = &state.config.websocket;
    let hard_max = state.config.limits.hard_max_frame_bytes as usize;
    upgrade
        .read_buffer_size(websocket.read_buffer as usize)
        .write_buffer_size(websocket.write_buffer as usize)
        // Back-pressure, not unbounded growth, when a client stops reading.
        .max_write_buffer_size((websocket.write_buffer as usize).max(64 * 1024) * 4)
        .max_message_size(hard_max)
        .max_frame_size(hard_max)
}

fn overloaded(state: &AppState) -> Response {
    state
        .metrics
        .connections_refused
        .fetch_add(1, Ordering::Relaxed);
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Overloaded,
        "the hub is at its connection limit",
    )
    .into_response()
}

#[derive(Deserialize)]
struct VisitorQuery {
    site: Option<String>,
}

async fn visitor_socket(
    State(state): State<AppState>,
    Query(query): Query<VisitorQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = header_string(&headers, header::ORIGIN);
    // With `?site=KEY` the origin is checked before the upgrade (HTTP 403); it is
    // checked again at `hello` in every case.
    if let Some(key) = &query.site {
        match state.store.site_by_key(key).await {
            Ok(Some(site))
                if origin_allowed(&site, origin.as_deref(), state.config.auth.allow_any_origin) => {
            }
            Ok(Some(_)) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "this origin is not allowed for the site",
                )
                .into_response();
            }
            Ok(None) => {
                return ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::UnknownSite,
                    "unknown site",
                )
                .into_response();
            }
            Err(err) => return ApiError::from(err).into_response(),
        }
    }
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return overloaded(&state);
    };
    let user_agent = header_string(&headers, header::USER_AGENT);
    let connection = state.next_connection_id();
    tune(&state, upgrade).on_upgrade(move |socket| async move {
        let span = tracing::info_span!("ws", kind = "visitor", connection);
        state
            .metrics
            .visitor_connections
            .fetch_add(1, Ordering::Relaxed);
        let endpoint = VisitorEndpoint::new(origin, user_agent);
        tracing::Instrument::instrument(
            ws::run(state.clone(), socket, Side::Visitor, connection, endpoint),
            span,
        )
        .await;
        state
            .metrics
            .visitor_connections
            .fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    })
}

async fn agent_socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let agent = match authenticate(&state, &headers).await {
        Ok((agent, _, _)) => agent,
        Err(err) => return err.into_response(),
    };
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return overloaded(&state);
    };
    let connection = state.next_connection_id();
    tune(&state, upgrade).on_upgrade(move |socket| async move {
        let span = tracing::info_span!("ws", kind = "agent", connection, agent = %agent.id);
        state
            .metrics
            .agent_connections
            .fetch_add(1, Ordering::Relaxed);
        tracing::Instrument::instrument(
            ws::run(
                state.clone(),
                socket,
                Side::Agent,
                connection,
                AgentEndpoint::new(agent),
            ),
            span,
        )
        .await;
        state
            .metrics
            .agent_connections
            .fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    })
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

fn agent_json(agent: &Agent) -> serde_json::Value {
    json!({
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "role": agent.role.as_str(),
        "site_ids": agent.site_ids,
    })
}

async fn login(State(state): State<AppState>, body: Option<Json<LoginRequest>>) -> Response {
    let Some(Json(request)) = body else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadField,
            "send JSON {\"email\": ..., \"password\": ...}",
        )
        .into_response();
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
    let mut response = Json(json!({
        "token": token,
        "expires_at": expires_at,
        "agent": agent_json(&agent),
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

async fn logout(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, hash, credential) = authenticate(&state, &headers).await?;
    check_csrf(&method, credential, &headers)?;
    state.store.delete_session(&hash).await?;
    let mut response = Json(json!({ "ok": true })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("salam_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (agent, _, _) = authenticate(&state, &headers).await?;
    Ok(Json(agent_json(&agent)).into_response())
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (agent, _, _) = authenticate(&state, &headers).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such conversation",
        )
    };
    let conversation = state.store.conversation(&id).await?.ok_or_else(not_found)?;
    if !agent.can_access(&conversation.site_id) {
        // Same answer as for a missing one: no probing of other sites' ids.
        return Err(not_found());
    }
    let messages = state
        .store
        .messages_after(&id, query.after, query.limit.unwrap_or(500).min(1000))
        .await?;
    Ok(Json(json!({
        "conversation": conversation.summary(),
        "messages": messages,
    }))
    .into_response())
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.get_setting("secret").await {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(
        state.store.metrics(),
        state.registry.kicks.load(Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn demo_page(State(state): State<AppState>) -> Response {
    let site = match state.store.list_sites().await {
        Ok(sites) => sites.into_iter().next(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    let key = site.map(|site| site.key).unwrap_or_default();
    let embed = if crate::assets::widget_built() {
        format!(
            "<script src=\"/widget.js\" data-site=\"{}\" async></script>",
            html_escape(&key)
        )
    } else {
        String::from(
            "<p class=\"note\"><strong>The chat widget is not built into this binary.</strong> \
             Build it with <code>bash scripts/build-widget.sh</code> and rebuild the hub.</p>",
        )
    };
    let page = DEMO_PAGE
        .replace("{SITE_KEY}", &html_escape(&key))
        .replace("{WIDGET}", &embed);
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data: https:",
        )],
        Html(page),
    )
        .into_response()
}

/// Escapes text for HTML.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

const DEMO_PAGE: &str = include_str!("demo.html");
