//! Admin endpoints: agent accounts, departments, sites, canned responses, and the
//! follow-up of offline requests and alerts. Writes made with the cookie session need
//! the CSRF header; admin actions are refused to agents with 403.

use crate::api::accessible_sites;
use crate::http::{ApiError, authenticate, check_csrf};
use crate::state::{AppState, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use salam_protocol::ErrorCode;
use salam_store::{Agent, AgentRole, AgentUpdate, NewAgent, StoreError};
use serde::Deserialize;
use serde_json::json;

fn bad(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadField, message)
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "not found")
}

/// Authenticates a state-changing admin request.
async fn admin(state: &AppState, method: &Method, headers: &HeaderMap) -> Result<Agent, ApiError> {
    let (agent, _, credential) = authenticate(state, headers).await?;
    check_csrf(method, credential, headers)?;
    if agent.role != AgentRole::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "admins only",
        ));
    }
    Ok(agent)
}

fn agent_json(agent: &Agent) -> serde_json::Value {
    json!({
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "role": agent.role.as_str(),
        "capacity": agent.capacity,
        "departments": agent.departments,
        "disabled": agent.disabled,
        "site_ids": agent.site_ids,
    })
}

fn conflict(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(_) => {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::BadField, "already exists")
        }
        other => ApiError::from(other),
    }
}

fn clean_name(name: &str, max: usize) -> Option<String> {
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    (!name.is_empty()).then_some(name)
}

/// `GET /api/admin/agents`.
pub async fn list_agents(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    let agents: Vec<_> = state
        .store
        .list_agents()
        .await?
        .iter()
        .map(agent_json)
        .collect();
    Ok(Json(json!({ "agents": agents })).into_response())
}

#[derive(Deserialize)]
pub struct NewAgentRequest {
    email: String,
    name: String,
    #[serde(default)]
    role: Option<String>,
    password: Option<String>,
    capacity: Option<u32>,
    #[serde(default)]
    departments: Vec<String>,
    site_ids: Option<Vec<String>>,
}

/// `POST /api/admin/agents`.
pub async fn add_agent(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Option<Json<NewAgentRequest>>,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    let Json(request) = body.ok_or_else(|| bad("send the agent as JSON"))?;
    let email = request.email.trim().to_owned();
    if !email.contains('@') || email.len() > 254 {
        return Err(bad("a valid e-mail address is required"));
    }
    let name = clean_name(&request.name, 100).ok_or_else(|| bad("a name is required"))?;
    let role = AgentRole::parse(request.role.as_deref().unwrap_or("agent"))
        .ok_or_else(|| bad("role must be agent or admin"))?;
    let (password, generated) = match request.password {
        Some(password) if password.chars().count() >= 8 => (password, false),
        Some(_) => return Err(bad("the password needs at least 8 characters")),
        None => (crate::auth::generate_password(), true),
    };
    let hash = tokio::task::spawn_blocking(move || {
        crate::auth::hash_password(&password).map(|hash| (hash, password))
    })
    .await
    .map_err(|_| bad("could not hash the password"))?
    .map_err(|_| bad("could not hash the password"))?;
    let site_ids = match request.site_ids {
        Some(site_ids) => site_ids,
        None => state
            .store
            .list_sites()
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect(),
    };
    let agent = state
        .store
        .create_agent(NewAgent {
            email,
            name,
            role,
            password_hash: hash.0,
            site_ids,
            capacity: request.capacity,
            departments: request.departments,
        })
        .await
        .map_err(conflict)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "agent": agent_json(&agent),
            "password": generated.then_some(hash.1),
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct AgentPatch {
    name: Option<String>,
    role: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    capacity: Option<Option<u32>>,
    departments: Option<Vec<String>>,
    disabled: Option<bool>,
    site_ids: Option<Vec<String>>,
}

/// Tells `"capacity": null` (clear) from a missing field (unchanged).
fn double_option<'de, D>(deserializer: D) -> Result<Option<Option<u32>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<u32>::deserialize(deserializer).map(Some)
}

/// `PATCH /api/admin/agents/{id}`.
pub async fn patch_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Option<Json<AgentPatch>>,
) -> Result<Response, ApiError> {
    let me = admin(&state, &method, &headers).await?;
    let Json(patch) = body.ok_or_else(|| bad("send the changes as JSON"))?;
    let role = match patch.role.as_deref() {
        Some(role) => {
            Some(AgentRole::parse(role).ok_or_else(|| bad("role must be agent or admin"))?)
        }
        None => None,
    };
    if me.id == id && (patch.disabled == Some(true) || role == Some(AgentRole::Agent)) {
        return Err(bad("you cannot disable or demote yourself"));
    }
    let update = AgentUpdate {
        name: match patch.name {
            Some(name) => Some(clean_name(&name, 100).ok_or_else(|| bad("a name is required"))?),
            None => None,
        },
        role,
        capacity: patch.capacity,
        departments: patch.departments,
        disabled: patch.disabled,
        site_ids: patch.site_ids,
    };
    let agent = state.store.update_agent(&id, update).await?;
    Ok(Json(json!({ "agent": agent_json(&agent) })).into_response())
}

/// `GET /api/departments`.
pub async fn departments(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers).await?;
    Ok(Json(json!({ "departments": state.store.departments().await? })).into_response())
}

#[derive(Deserialize)]
pub struct NameRequest {
    name: String,
}

/// `POST /api/departments`.
pub async fn add_department(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Option<Json<NameRequest>>,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    let Json(request) = body.ok_or_else(|| bad("send {\"name\": ...}"))?;
    let name = clean_name(&request.name, 60)
        .map(|name| name.to_lowercase())
        .ok_or_else(|| bad("a name is required"))?;
    state.store.add_department(&name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))).into_response())
}

/// `DELETE /api/departments/{name}`.
pub async fn remove_department(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    state.store.remove_department(&name).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

#[derive(Deserialize)]
pub struct SiteRequest {
    name: Option<String>,
    origins: Option<Vec<String>>,
}

/// `*`, or `http(s)://host[:port]` with nothing after the host.
pub fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.trim_end_matches('/');
    !host.is_empty() && !host.contains(['/', ' ', '?', '#', '<', '>', '"'])
}

fn clean_origins(origins: Vec<String>) -> Result<Vec<String>, ApiError> {
    let origins: Vec<String> = origins
        .into_iter()
        .map(|origin| origin.trim().trim_end_matches('/').to_owned())
        .filter(|origin| !origin.is_empty())
        .collect();
    if origins.iter().any(|origin| !valid_origin(origin)) {
        return Err(bad("origins look like https://shop.example, or *"));
    }
    Ok(origins)
}

fn snippet(headers: &HeaderMap, key: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.contains(['"', '<', '>', ' ']))
        .unwrap_or("localhost:8080");
    format!("<script src=\"http://{host}/widget.js\" data-site=\"{key}\" async></script>")
}

fn site_json(site: &salam_store::Site) -> serde_json::Value {
    json!({
        "id": site.id,
        "name": site.name,
        "key": site.key,
        "origins": site.origins,
        "settings": crate::site::SiteSettings::parse(&site.settings),
        "identity_secret": site.identity_secret,
    })
}

/// `POST /api/sites`.
pub async fn add_site(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Option<Json<SiteRequest>>,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    let Json(request) = body.ok_or_else(|| bad("send {\"name\", \"origins\"}"))?;
    let name = clean_name(request.name.as_deref().unwrap_or(""), 100)
        .ok_or_else(|| bad("a name is required"))?;
    let origins = clean_origins(request.origins.unwrap_or_default())?;
    if origins.is_empty() {
        return Err(bad("at least one origin is required"));
    }
    let site = state.store.create_site(&name, &origins).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "site": site_json(&site), "snippet": snippet(&headers, &site.key) })),
    )
        .into_response())
}

/// `PATCH /api/sites/{id}`.
pub async fn patch_site(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Option<Json<SiteRequest>>,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    let Json(request) = body.ok_or_else(|| bad("send the changes as JSON"))?;
    let name = match request.name {
        Some(name) => Some(clean_name(&name, 100).ok_or_else(|| bad("a name is required"))?),
        None => None,
    };
    let origins = request.origins.map(clean_origins).transpose()?;
    let site = state
        .store
        .update_site(&id, name.as_deref(), origins.as_deref())
        .await?;
    Ok(
        Json(json!({ "site": site_json(&site), "snippet": snippet(&headers, &site.key) }))
            .into_response(),
    )
}

/// `GET /api/canned`.
pub async fn canned(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers).await?;
    Ok(Json(json!({ "canned": state.store.canned().await? })).into_response())
}

#[derive(Deserialize)]
pub struct CannedRequest {
    shortcut: String,
    text: String,
}

/// `POST /api/canned`.
pub async fn add_canned(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Option<Json<CannedRequest>>,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    let Json(request) = body.ok_or_else(|| bad("send {\"shortcut\", \"text\"}"))?;
    let shortcut = clean_name(request.shortcut.trim_start_matches('/'), 40)
        .ok_or_else(|| bad("a shortcut is required"))?;
    if request.text.trim().is_empty() || request.text.chars().count() > 4000 {
        return Err(bad("the text must have 1 to 4000 characters"));
    }
    let created = state
        .store
        .add_canned(&shortcut, request.text.trim())
        .await
        .map_err(conflict)?;
    Ok((StatusCode::CREATED, Json(json!({ "canned": created }))).into_response())
}

/// `DELETE /api/canned/{id}`.
pub async fn remove_canned(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&state, &method, &headers).await?;
    state.store.remove_canned(id).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// `POST /api/offline-requests/{id}/done`.
pub async fn offline_request_done(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (agent, _, credential) = authenticate(&state, &headers).await?;
    check_csrf(&method, credential, &headers)?;
    let site_ids = accessible_sites(&state, &agent).await?;
    let visible = state.store.offline_requests(&site_ids).await?;
    if !visible.iter().any(|request| request.id == id) {
        return Err(not_found());
    }
    state.store.offline_request_done(id, now_ms()).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// `POST /api/alerts/{id}/ack`.
pub async fn acknowledge_alert(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let agent = admin(&state, &method, &headers).await?;
    let site_ids = accessible_sites(&state, &agent).await?;
    let visible = state.store.alerts(&site_ids).await?;
    if !visible.iter().any(|alert| alert.id == id) {
        return Err(not_found());
    }
    state.store.acknowledge_alert(id, now_ms()).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}
