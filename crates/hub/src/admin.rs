//! Admin endpoints: agent accounts, sites and their settings, departments, canned
//! responses, the bot's rules, and alerts. Every handler takes [`Admin`] (403 for an
//! agent; a cookie-authenticated write needs the CSRF header). Changes to agents and
//! sites go through the [`Authority`](crate::authority::Authority) and routing as soon
//! as they are committed, so open consoles and routing see them at once.

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::Admin;
use crate::site::SiteSettings;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use salam_protocol::ErrorCode;
use salam_store::{Agent, AgentRole, AgentUpdate, NewAgent, StoreError};
use serde::Deserialize;
use serde_json::json;

fn bad(message: &'static str) -> ApiError {
    ApiError::bad(message)
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
        "all_sites": agent.all_sites,
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

/// A name or other one-line field ([`crate::text::clean_field`]).
fn clean_name(name: &str, max: usize) -> Option<String> {
    crate::text::clean_field(Some(name.to_owned()), max)
}

/// Tells `"capacity": null` (clear) from a missing field (unchanged).
fn double_option<'de, D>(deserializer: D) -> Result<Option<Option<u32>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<u32>::deserialize(deserializer).map(Some)
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

/// A site as admins see it, with its identity secret and, after a rotation, until
/// when the previous one still verifies.
pub fn site_json(state: &AppState, site: &salam_store::Site) -> serde_json::Value {
    let grace_ms = i64::from(state.config.auth.identity_secret_grace_hours) * 3_600_000;
    let previous_valid_until = site
        .identity_secret_rotated_at
        .filter(|_| site.previous_identity_secret.is_some())
        .map(|at| at + grace_ms)
        .filter(|until| *until > now_ms());
    json!({
        "id": site.id,
        "name": site.name,
        "key": site.key,
        "origins": site.origins,
        "settings": crate::site::SiteSettings::parse(&site.settings),
        "identity_secret": site.identity_secret,
        "identity_secret_rotated_at": site.identity_secret_rotated_at,
        "previous_secret_valid_until": previous_valid_until,
    })
}

/// `POST /api/sites/{id}/identity-secret`: a new identity secret for the site. The old
/// one keeps verifying for `auth.identity_secret_grace_hours`, so pages open now
/// (and the site's backend, until it is redeployed with the new one) keep working.
pub async fn rotate_identity_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    known_site(&state, &id)?;
    let secret = format!("sk_{}", crate::auth::random_token(32));
    let site = state
        .store
        .rotate_identity_secret(&id, &secret, now_ms())
        .await?;
    Ok(Json(json!({ "site": site_json(&state, &site) })).into_response())
}

/// `GET /api/admin/agents`.
pub async fn list_agents(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
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
    /// Every site, including sites created later.
    #[serde(default)]
    all_sites: bool,
    site_ids: Option<Vec<String>>,
}

/// The sites named must exist.
async fn check_sites(state: &AppState, site_ids: &[String]) -> Result<(), ApiError> {
    let known = state.authority.all_sites();
    if site_ids
        .iter()
        .any(|site| known.binary_search(site).is_err())
    {
        return Err(bad("site_ids names a site that does not exist"));
    }
    Ok(())
}

/// The capacity a new agent gets without one of their own: the smallest default
/// capacity their sites set, if any (else the hub's applies).
async fn site_default_capacity(
    state: &AppState,
    site_ids: &[String],
) -> Result<Option<u32>, ApiError> {
    let mut capacity: Option<u32> = None;
    for site_id in site_ids {
        if let Some(site) = state.store.site_by_id(site_id).await?
            && let Some(site_capacity) = SiteSettings::parse(&site.settings).default_capacity
        {
            capacity = Some(capacity.map_or(site_capacity, |c| c.min(site_capacity)));
        }
    }
    Ok(capacity.map(|capacity| capacity.max(1)))
}

/// `POST /api/admin/agents`. Sites are never granted by accident: name them
/// (`site_ids`) or ask for every site (`all_sites: true`).
pub async fn add_agent(
    State(state): State<AppState>,
    _admin: Admin,
    body: Option<Json<NewAgentRequest>>,
) -> Result<Response, ApiError> {
    let Json(request) = body.ok_or_else(|| bad("send the agent as JSON"))?;
    let email = request.email.trim().to_owned();
    if !crate::auth::valid_email(&email) {
        return Err(bad("a valid e-mail address is required"));
    }
    let name = clean_name(&request.name, 100).ok_or_else(|| bad("a name is required"))?;
    let role = AgentRole::parse(request.role.as_deref().unwrap_or("agent"))
        .ok_or_else(|| bad("role must be agent or admin"))?;
    let site_ids = match (request.all_sites, request.site_ids) {
        (true, None) => Vec::new(),
        (false, Some(site_ids)) => {
            check_sites(&state, &site_ids).await?;
            site_ids
        }
        (true, Some(_)) => return Err(bad("give either site_ids or all_sites, not both")),
        (false, None) => {
            return Err(bad(
                "say which sites the agent works on: site_ids, or all_sites: true",
            ));
        }
    };
    let capacity = match request.capacity {
        Some(capacity) => Some(capacity),
        None => site_default_capacity(&state, &site_ids).await?,
    };
    let (password, generated) = match request.password {
        Some(password) => {
            crate::account::check_password(&password, &email)?;
            (password, false)
        }
        None => (crate::auth::generate_password(), true),
    };
    let hash = crate::account::hash_new_password(&state, password).await?;
    let agent = state
        .store
        .create_agent(NewAgent {
            email,
            name,
            role,
            password_hash: hash.0,
            all_sites: request.all_sites,
            site_ids,
            capacity,
            departments: clean_departments(request.departments)?,
        })
        .await
        .map_err(conflict)?;
    state.authority.agent_changed(&agent.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "agent": agent_json(&agent),
            "password": generated.then_some(hash.1),
        })),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct PasswordReset {
    /// A password to set; without one a random one is made and answered once.
    password: Option<String>,
}

/// `POST /api/admin/agents/{id}/password`: an admin resets an agent's password. Every
/// session of the agent ends (their consoles close with 4001 and ask them to sign
/// in); the new password is answered once when the hub made it.
pub async fn reset_password(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // No body (or an empty one): the hub makes the password.
    let request: PasswordReset = if body.iter().all(u8::is_ascii_whitespace) {
        PasswordReset::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| bad("send {\"password\": ...} or nothing"))?
    };
    let agent = state
        .store
        .agent_by_id(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (password, generated) = match request.password {
        Some(password) => {
            crate::account::check_password(&password, &agent.email)?;
            (password, false)
        }
        None => (crate::auth::generate_password(), true),
    };
    let (hash, password) = crate::account::hash_new_password(&state, password).await?;
    state.store.set_password_hash(&agent.id, &hash).await?;
    state
        .store
        .delete_sessions_of_agent(&agent.id, None)
        .await?;
    state.authority.agent_changed(&agent.id).await?;
    Ok(Json(json!({
        "ok": true,
        "password": generated.then_some(password),
    }))
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
    all_sites: Option<bool>,
    site_ids: Option<Vec<String>>,
}

/// `PATCH /api/admin/agents/{id}`: takes effect on the agent's open consoles and in
/// routing at once (a disabled agent's sockets close; a narrowed role or site list
/// makes them reconnect with the new scope).
pub async fn patch_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Admin(me): Admin,
    body: Option<Json<AgentPatch>>,
) -> Result<Response, ApiError> {
    let Json(patch) = body.ok_or_else(|| bad("send the changes as JSON"))?;
    let role = match patch.role.as_deref() {
        Some(role) => {
            Some(AgentRole::parse(role).ok_or_else(|| bad("role must be agent or admin"))?)
        }
        None => None,
    };
    if me.agent.id == id && (patch.disabled == Some(true) || role == Some(AgentRole::Agent)) {
        return Err(bad("you cannot disable or demote yourself"));
    }
    if let Some(site_ids) = &patch.site_ids {
        check_sites(&state, site_ids).await?;
    }
    let update = AgentUpdate {
        name: match patch.name {
            Some(name) => Some(clean_name(&name, 100).ok_or_else(|| bad("a name is required"))?),
            None => None,
        },
        role,
        capacity: patch.capacity,
        departments: patch.departments.map(clean_departments).transpose()?,
        disabled: patch.disabled,
        all_sites: patch.all_sites,
        site_ids: patch.site_ids,
    };
    let agent = state.store.update_agent(&id, update).await?;
    state.authority.agent_changed(&agent.id).await?;
    Ok(Json(json!({ "agent": agent_json(&agent) })).into_response())
}

#[derive(Deserialize)]
pub struct DepartmentRequest {
    site_id: String,
    name: String,
}

/// A department's name: lower case, at most 60 characters, no controls or bidi
/// controls (it appears in the system line a visitor sees after a transfer).
pub fn clean_department(name: &str) -> Option<String> {
    clean_name(name, 60).map(|name| name.to_lowercase())
}

/// The departments an agent serves, spelled as sites store theirs ([`clean_department`]),
/// so that "Billing" on an agent matches the site's "billing"; duplicates dropped.
fn clean_departments(names: Vec<String>) -> Result<Vec<String>, ApiError> {
    if names.len() > 50 {
        return Err(bad("at most 50 departments"));
    }
    let mut cleaned = Vec::with_capacity(names.len());
    for name in names {
        let name = clean_department(&name).ok_or_else(|| bad("a department needs a name"))?;
        if !cleaned.contains(&name) {
            cleaned.push(name);
        }
    }
    Ok(cleaned)
}

/// The site exists (admins see every site).
fn known_site(state: &AppState, site_id: &str) -> Result<(), ApiError> {
    if state
        .authority
        .all_sites()
        .binary_search_by(|site| site.as_str().cmp(site_id))
        .is_err()
    {
        return Err(ApiError::not_found());
    }
    Ok(())
}

/// `POST /api/departments` `{"site_id", "name"}`: a department of one site.
pub async fn add_department(
    State(state): State<AppState>,
    _admin: Admin,
    body: Option<Json<DepartmentRequest>>,
) -> Result<Response, ApiError> {
    let Json(request) = body.ok_or_else(|| bad("send {\"site_id\": ..., \"name\": ...}"))?;
    known_site(&state, &request.site_id)?;
    let name = clean_department(&request.name).ok_or_else(|| bad("a name is required"))?;
    state.store.add_department(&request.site_id, &name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "site_id": request.site_id, "name": name })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct SiteParam {
    site: Option<String>,
}

/// `DELETE /api/departments/{name}?site=ID`.
pub async fn remove_department(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<SiteParam>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let site_id = query.site.ok_or_else(|| bad("say which site: ?site=ID"))?;
    known_site(&state, &site_id)?;
    state.store.remove_department(&site_id, &name).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

#[derive(Deserialize)]
pub struct SiteRequest {
    name: Option<String>,
    origins: Option<Vec<String>>,
}

/// `POST /api/sites`: agents of every site (and admins) work on it at once, with no
/// reconnect.
pub async fn add_site(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    body: Option<Json<SiteRequest>>,
) -> Result<Response, ApiError> {
    let Json(request) = body.ok_or_else(|| bad("send {\"name\", \"origins\"}"))?;
    let name = clean_name(request.name.as_deref().unwrap_or(""), 100)
        .ok_or_else(|| bad("a name is required"))?;
    let origins = clean_origins(request.origins.unwrap_or_default())?;
    if origins.is_empty() {
        return Err(bad("at least one origin is required"));
    }
    let created = state.store.create_site(&name, &origins).await?;
    // The bot speaks for the new site (its name and origin), never for the demo store.
    let settings =
        serde_json::to_string(&SiteSettings::for_new_site()).unwrap_or_else(|_| "{}".into());
    state
        .store
        .update_site_settings(&created.id, &settings)
        .await?;
    let site = state
        .store
        .site_by_id(&created.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    announce_site(&state, &site).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "site": site_json(&state, &site), "snippet": snippet(&headers, &site.key) })),
    )
        .into_response())
}

/// A site was created or its settings changed: routing applies its policy, and the
/// authority gives it to agents of every site.
pub async fn announce_site(state: &AppState, site: &salam_store::Site) -> Result<(), StoreError> {
    let settings = SiteSettings::parse(&site.settings);
    state
        .routing
        .send(crate::routing::Command::Site {
            site_id: site.id.clone(),
            policy: settings.routing_policy(&state.config.routing),
            callback_after_secs: u64::from(settings.callback_after_secs),
        })
        .await;
    state.authority.sites_changed().await
}

/// `PATCH /api/sites/{id}`.
pub async fn patch_site(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
    headers: HeaderMap,
    body: Option<Json<SiteRequest>>,
) -> Result<Response, ApiError> {
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
        Json(json!({ "site": site_json(&state, &site), "snippet": snippet(&headers, &site.key) }))
            .into_response(),
    )
}

/// `GET /api/sites/{id}/refused-origins`: the origins whose pages were refused a chat
/// recently (the last 20, newest first, kept in memory since the hub started); one
/// allowed since is left out. Allowing one is `PATCH /api/sites/{id}` with it added to
/// `origins`.
pub async fn refused_origins(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let site = state
        .store
        .site_by_id(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let allow_any = state.config.auth.allow_any_origin;
    let origins = state.refused_origins.list(&site.id, |origin| {
        !crate::visitor::origin_allowed(&site, Some(origin), allow_any)
    });
    Ok(Json(json!({ "origins": origins })).into_response())
}

/// `PUT /api/sites/{id}/settings`: replaces the site's settings; routing settings
/// apply at once.
pub async fn put_site_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
    body: Option<Json<SiteSettings>>,
) -> Result<Response, ApiError> {
    let Some(Json(mut settings)) = body else {
        return Err(bad("send the settings as JSON"));
    };
    settings.validate().map_err(bad)?;
    // Proactive triggers' attribute conditions (issue 19).
    crate::triggers::check_attributes(&settings.triggers).map_err(bad)?;
    state
        .store
        .site_by_id(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if let Some(refused) =
        crate::key_account_routing::check_references(&state, &id, &settings).await?
    {
        return Err(bad(refused));
    }
    let json = serde_json::to_string(&settings).unwrap_or_else(|_| "{}".into());
    state.store.update_site_settings(&id, &json).await?;
    state
        .routing
        .send(crate::routing::Command::Site {
            site_id: id.clone(),
            policy: settings.routing_policy(&state.config.routing),
            callback_after_secs: u64::from(settings.callback_after_secs),
        })
        .await;
    Ok(Json(json!({ "settings": settings })).into_response())
}

/// `POST /api/rules/reload`: reloads the rule files now.
pub async fn reload_rules(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    Ok(match state.bot.reload() {
        Ok(n_rules) => Json(json!({ "ok": true, "rules": n_rules })).into_response(),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "ok": false, "errors": errors.lines().collect::<Vec<_>>() })),
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
pub struct ExampleRequest {
    /// The rule's id.
    rule: String,
    /// `en`, `ar` or `fa`.
    lang: String,
    text: String,
}

/// `POST /api/rules/examples` `{"rule", "lang", "text"}`: adds a visitor's question to
/// a rule's examples in its file (it teaches the bot's second stage) and reloads the
/// rules. If the pack no longer loads, the file is put back and the errors answered
/// with 422.
pub async fn add_example(
    State(state): State<AppState>,
    _admin: Admin,
    body: Option<Json<ExampleRequest>>,
) -> Result<Response, ApiError> {
    let Json(request) = body.ok_or_else(|| bad("send {\"rule\", \"lang\", \"text\"}"))?;
    if salam_bot::Lang::parse(&request.lang).is_none() {
        return Err(bad("lang must be en, ar or fa"));
    }
    let text: String = request
        .text
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect();
    if text.is_empty() {
        return Err(bad("the example is empty"));
    }
    let added =
        crate::rule_files::add_example(state.bot.dir(), &request.rule, &request.lang, &text)
            .map_err(|err| match err {
                crate::rule_files::EditError::NoDirectory => ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::BadField,
                    "the rules are built into the binary; set bot.rules_dir to a directory",
                ),
                crate::rule_files::EditError::UnknownRule(_) => ApiError::not_found(),
                other => {
                    tracing::warn!(error = %other, "example not added");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::Internal,
                        "the rule file could not be edited",
                    )
                }
            })?;
    match state.bot.reload() {
        Ok(n_rules) => Ok(Json(json!({
            "ok": true,
            "added": added.written,
            "file": added.path.file_name().map(|name| name.to_string_lossy().into_owned()),
            "rules": n_rules,
        }))
        .into_response()),
        Err(errors) => {
            if let Err(err) = crate::rule_files::write_atomically(&added.path, &added.before) {
                tracing::error!(error = %err, "a rule file could not be put back");
            }
            let _ = state.bot.reload();
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "ok": false, "errors": errors.lines().collect::<Vec<_>>() })),
            )
                .into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct CannedRequest {
    site_id: String,
    shortcut: String,
    text: String,
}

/// `POST /api/canned` `{"site_id", "shortcut", "text"}`: a canned response of one site.
pub async fn add_canned(
    State(state): State<AppState>,
    _admin: Admin,
    body: Option<Json<CannedRequest>>,
) -> Result<Response, ApiError> {
    let Json(request) = body.ok_or_else(|| bad("send {\"site_id\", \"shortcut\", \"text\"}"))?;
    known_site(&state, &request.site_id)?;
    let shortcut = clean_name(request.shortcut.trim_start_matches('/'), 40)
        .ok_or_else(|| bad("a shortcut is required"))?;
    let text = crate::text::clean_text(&request.text);
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(bad("the text must have 1 to 4000 characters"));
    }
    let created = state
        .store
        .add_canned(&request.site_id, &shortcut, &text)
        .await
        .map_err(conflict)?;
    Ok((StatusCode::CREATED, Json(json!({ "canned": created }))).into_response())
}

/// `DELETE /api/canned/{id}`.
pub async fn remove_canned(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    state.store.remove_canned(id).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// `POST /api/alerts/{id}/ack`.
pub async fn acknowledge_alert(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Admin(me): Admin,
) -> Result<Response, ApiError> {
    let visible = state
        .store
        .alerts(&me.sites(&state), salam_store::Page::at(id))
        .await?;
    if !visible.iter().any(|alert| alert.id == id) {
        return Err(ApiError::not_found());
    }
    state.store.acknowledge_alert(id, now_ms()).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}
