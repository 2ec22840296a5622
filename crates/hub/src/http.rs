//! HTTP: the router, the WebSocket upgrades and the pages. The REST handlers live in
//! [`crate::api`] (reads), [`crate::admin`] (admin writes), [`crate::account`]
//! (the agent's own account) and [`crate::operations`] (a visitor's data, the audit
//! log); identity and permission are extractors ([`crate::extract`]).

use crate::agent::AgentEndpoint;
use crate::error::ApiError;
use crate::extract::{ClientIp, Credential, Https, SignedIn};
use crate::fanout::Side;
use crate::slots;
use crate::state::AppState;
use crate::visitor::{VisitorEndpoint, origin_allowed};
use crate::ws;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use salam_protocol::ErrorCode;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Responses of the console and the REST API smaller than this go uncompressed: a few
/// hundred bytes gain little and cost a compressor's set-up.
pub const COMPRESS_MIN_BYTES: u16 = 1024;

/// Builds the router. Tests call this directly.
///
/// Two groups of routes: the console's files and the REST API are compressed on the fly
/// (brotli or gzip, whichever `Accept-Encoding` prefers, above [`COMPRESS_MIN_BYTES`]);
/// the rest is not: the WebSocket upgrades, `/healthz`, `/metrics`, the demo page and
/// the widget, whose files are compressed once at build time ([`crate::assets`]).
pub fn app(state: AppState) -> Router {
    use crate::assets;
    Router::new()
        .route("/", get(demo_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws/visitor", get(visitor_socket))
        .route("/ws/agent", get(agent_socket))
        .route("/widget.js", get(assets::loader))
        .route("/widget/{file}", get(assets::file))
        .merge(compressed_routes())
        // The REST API v1 with its OpenAPI document, and the console's API tokens.
        .merge(crate::openapi::router())
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// The console and the REST API, behind the compression layer. The JSON error mapping
/// runs inside it too, so an error's body is rewritten before it is compressed, never
/// after (the outer mapping then finds JSON and leaves it alone).
fn compressed_routes() -> Router<AppState> {
    use crate::{account, admin, api, assets};
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    use tower_http::compression::{CompressionLayer, CompressionLevel};
    let when = SizeAbove::new(COMPRESS_MIN_BYTES)
        .and(NotForContentType::IMAGES)
        .and(not_informational);
    let compression = CompressionLayer::new()
        .br(true)
        .gzip(true)
        .no_deflate()
        .no_zstd()
        // Brotli 4 and gzip 6: fast enough to run per response.
        .quality(CompressionLevel::Default)
        .compress_when(when);
    Router::new()
        .route("/api/login", post(account::login))
        .route("/api/logout", post(account::logout))
        .route("/api/me", get(account::me))
        .route("/api/me/password", post(account::change_password))
        .route("/api/conversations", get(api::conversations))
        .route("/api/conversations/{id}", get(api::conversation))
        .route("/api/conversations/{id}/messages", get(api::history))
        .route("/api/agents", get(api::agents))
        .route("/api/queue", get(api::queue))
        .route("/api/offline-requests", get(api::offline_requests))
        .route("/api/alerts", get(api::alerts))
        .route("/api/sites", get(api::sites).post(admin::add_site))
        .route("/api/sites/{id}", patch(admin::patch_site))
        .route("/api/sites/{id}/settings", put(admin::put_site_settings))
        .route(
            "/api/sites/{id}/refused-origins",
            get(admin::refused_origins),
        )
        .route("/api/rules", get(api::rules))
        .route("/api/rules/try", post(api::try_rules))
        .route("/api/rules/reload", post(admin::reload_rules))
        .route("/api/rules/examples", post(admin::add_example))
        .route("/api/reports", get(api::reports))
        .route("/api/widget/{key}", get(api::widget_settings))
        .route(
            "/api/admin/agents",
            get(admin::list_agents).post(admin::add_agent),
        )
        .route("/api/admin/agents/{id}", patch(admin::patch_agent))
        .route(
            "/api/admin/agents/{id}/password",
            post(admin::reset_password),
        )
        .route(
            "/api/sites/{id}/identity-secret",
            post(admin::rotate_identity_secret),
        )
        .route(
            "/api/departments",
            get(api::departments).post(admin::add_department),
        )
        .route("/api/departments/{name}", delete(admin::remove_department))
        .route("/api/canned", get(api::canned).post(admin::add_canned))
        .route("/api/canned/{id}", delete(admin::remove_canned))
        .route(
            "/api/offline-requests/{id}/done",
            post(api::offline_request_done),
        )
        .route("/api/alerts/{id}/ack", post(admin::acknowledge_alert))
        .route("/console", get(assets::console_index))
        .route("/console/", get(assets::console_index))
        .route("/console/{file}", get(assets::console_asset))
        // Operations: a visitor's data on request, the audit log (crate::operations).
        .route(
            "/api/admin/visitors/export",
            get(crate::operations::export_visitor),
        )
        .route(
            "/api/admin/visitors/erase",
            post(crate::operations::erase_visitor),
        )
        .route("/api/admin/audit", get(crate::operations::audit_log))
        // Webhooks (issue 17).
        .merge(crate::webhook_admin::routes())
        // E-mail as a channel (issue 17).
        .merge(crate::email::routes())
        // The customer card and customer search (issue 19).
        .merge(crate::customer_api::routes())
        // The customer timeline (issue 19).
        .merge(crate::timeline::routes())
        // Proactive triggers (issue 19).
        .merge(crate::triggers::routes())
        .layer(axum::middleware::map_response(json_errors))
        .layer(compression)
}

/// Never compress an informational answer: a `101 Switching Protocols` belongs to the
/// WebSocket that follows it. (No upgrade is routed through the compression layer, but
/// this stays true if one ever is.)
fn not_informational(
    status: StatusCode,
    _: axum::http::Version,
    _: &HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    !status.is_informational()
}

/// Errors answered by the framework rather than a handler (an unknown path, a wrong
/// method, a body or query that does not parse) come as `text/plain`; this turns
/// them into the API's JSON error (`{"error": CODE, "message": TEXT}`), as
/// `docs/protocol.md` documents for every error.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::BadJson,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::FrameTooLarge,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Overloaded,
        status if status.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadField,
    };
    let body = axum::body::to_bytes(response.into_body(), 2048)
        .await
        .unwrap_or_default();
    let message: String = String::from_utf8_lossy(&body).chars().take(300).collect();
    let code = if code == ErrorCode::BadField && message.contains("JSON") {
        ErrorCode::BadJson
    } else {
        code
    };
    let message = if message.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        message
    };
    let mut json = (
        status,
        Json(json!({ "error": code.as_str(), "message": message })),
    )
        .into_response();
    if let Some(retry_after) = retry_after {
        json.headers_mut().insert(header::RETRY_AFTER, retry_after);
    }
    json
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.chars().take(512).collect())
}

/// Applies the per-connection buffer sizes and frame limits to an upgrade. Visitors
/// get a lower hard limit than agents: an anonymous socket may never pin a large
/// unfinished frame.
fn tune(state: &AppState, upgrade: WebSocketUpgrade, side: Side) -> WebSocketUpgrade {
    let websocket = &state.config.websocket;
    let limits = &state.config.limits;
    let hard_max = match side {
        Side::Visitor => limits
            .visitor_hard_max_frame_bytes
            .min(limits.hard_max_frame_bytes),
        Side::Agent => limits.hard_max_frame_bytes,
    } as usize;
    upgrade
        .read_buffer_size(websocket.read_buffer as usize)
        .write_buffer_size(websocket.write_buffer as usize)
        // Back-pressure, not unbounded growth, when a client stops reading.
        .max_write_buffer_size((websocket.write_buffer as usize).max(64 * 1024) * 4)
        .max_message_size(hard_max)
        .max_frame_size(hard_max)
}

/// The answer to an upgrade that got no slot.
fn refused(state: &AppState, refusal: slots::Refusal) -> Response {
    state
        .metrics
        .connections_refused
        .fetch_add(1, Ordering::Relaxed);
    match refusal {
        slots::Refusal::Full => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the hub is at its connection limit",
        )
        .into_response(),
        slots::Refusal::PerAddress => ApiError::too_many(
            "too many connections from this address",
            std::time::Duration::from_secs(5),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
struct VisitorQuery {
    site: Option<String>,
}

async fn visitor_socket(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<VisitorQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = header_string(&headers, header::ORIGIN);
    // With `?site=KEY` the origin is checked before `hello`: a refused page still gets
    // the socket (within the slot limits), then `origin_not_allowed` and close 1008, so
    // that the widget can say why instead of reconnecting. It is checked again at
    // `hello` in every case.
    let mut origin_refused = false;
    if let Some(key) = &query.site {
        match state.store.site_by_key(key).await {
            Ok(Some(site))
                if origin_allowed(&site, origin.as_deref(), state.config.auth.allow_any_origin) => {
            }
            Ok(Some(site)) => {
                crate::visitor::note_refused_origin(&state, &site, origin.as_deref());
                origin_refused = true;
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
    let slot = match slots::visitor(&state, ip) {
        Ok(slot) => slot,
        Err(refusal) => return refused(&state, refusal),
    };
    if origin_refused {
        return tune(&state, upgrade, Side::Visitor).on_upgrade(move |socket| async move {
            ws::refuse(
                socket,
                ErrorCode::OriginNotAllowed,
                crate::visitor::ORIGIN_REFUSED,
                "origin not allowed",
            )
            .await;
            drop(slot);
        });
    }
    let user_agent = header_string(&headers, header::USER_AGENT);
    let connection = state.next_connection_id();
    tune(&state, upgrade, Side::Visitor).on_upgrade(move |socket| async move {
        let span = tracing::info_span!("ws", kind = "visitor", connection);
        state
            .metrics
            .visitor_connections
            .fetch_add(1, Ordering::Relaxed);
        let endpoint = VisitorEndpoint::new(origin, user_agent, ip);
        tracing::Instrument::instrument(ws::run(state.clone(), socket, connection, endpoint), span)
            .await;
        state
            .metrics
            .visitor_connections
            .fetch_sub(1, Ordering::Relaxed);
        drop(slot);
    })
}

/// Whether an agent socket's `Origin` is the hub's own (the console's page) or a
/// configured console origin. Any other page, of another port of the same host or of
/// a site the hub serves, would otherwise ride on the agent's cookie.
fn console_origin_allowed(state: &AppState, https: bool, headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    if state
        .config
        .auth
        .console_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let own = |scheme: &str| origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"));
    // Known HTTPS: only https. Otherwise a TLS proxy may not be a trusted one, so
    // either scheme of exactly this host and port.
    own("https") || (!https && own("http"))
}

async fn agent_socket(
    State(state): State<AppState>,
    Https(https): Https,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let me = match SignedIn::from_headers(&state, &headers).await {
        Ok(me) => me,
        Err(err) => return err.into_response(),
    };
    // A browser sends the cookie to any page's WebSocket; only a bearer token (which
    // no page can attach) is trusted without a matching Origin.
    if me.credential == Credential::Cookie && !console_origin_allowed(&state, https, &headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this origin may not open the agent console's socket",
        )
        .into_response();
    }
    let grants = match state.authority.watch(&me.agent.id).await {
        Ok(grants) => grants,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let slot = match slots::agent(&state) {
        Ok(slot) => slot,
        Err(refusal) => return refused(&state, refusal),
    };
    let connection = state.next_connection_id();
    tune(&state, upgrade, Side::Agent).on_upgrade(move |socket| async move {
        let span = tracing::info_span!("ws", kind = "agent", connection, agent = %me.agent.id);
        state
            .metrics
            .agent_connections
            .fetch_add(1, Ordering::Relaxed);
        tracing::Instrument::instrument(
            ws::run(
                state.clone(),
                socket,
                connection,
                AgentEndpoint::new(grants, me.session),
            ),
            span,
        )
        .await;
        state
            .metrics
            .agent_connections
            .fetch_sub(1, Ordering::Relaxed);
        drop(slot);
    })
}

/// `GET /healthz`: whether the database answers a read now, and which one it is; with
/// several hubs, also whether the bus is connected, the hub's id and whether it owns
/// routing. 503 when the database or the bus is unreachable.
async fn healthz(State(state): State<AppState>) -> Response {
    let database = match state.config.store.url {
        Some(_) => "postgresql",
        None => "sqlite",
    };
    let database_ok = match state.store.get_setting("secret").await {
        Ok(_) => true,
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            false
        }
    };
    let mut body = json!({ "database": database });
    let mut ok = database_ok;
    if let Some(cluster) = &state.cluster {
        let bus_ok = cluster.client.is_connected();
        ok &= bus_ok;
        body["bus"] = json!(if bus_ok { "ok" } else { "unavailable" });
        body["hub"] = json!(cluster.hub_id);
        body["routing_owner"] = json!(cluster.is_owner());
    }
    if !database_ok {
        body["database_status"] = json!("unavailable");
    }
    body["status"] = json!(if ok { "ok" } else { "unavailable" });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The router of `metrics.listen`: `/metrics` only, without a token.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

/// `GET /metrics` on the main address: only with the configured token (404 without
/// one: an outsider learns nothing, not even that there is something to guess).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.config.metrics.token.as_deref() else {
        return ApiError::not_found().into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !crate::auth::same(given.trim().as_bytes(), expected.as_bytes()) {
        return ApiError::unauthorized().into_response();
    }
    metrics_text(State(state)).await
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render(
        state.store.metrics(),
        state.registry.kicks.load(Ordering::Relaxed),
    );
    if let Some(cluster) = &state.cluster {
        body.push_str(&crate::cluster::metrics_text(
            cluster,
            state.bus_metrics.as_deref(),
        ));
        body = crate::cluster::label_with_hub(&body, &cluster.hub_id);
    }
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
