//! The REST API the console reads: conversations, visitors, agents, the queue, the
//! bot's rules, offline requests, alerts and reports. Every handler takes the caller
//! as an extractor ([`SignedIn`] or [`Admin`]) and narrows to the sites the agent works
//! on now; another site's object answers 404, exactly like a missing one. Routing
//! views come from the published snapshot and never wait on the routing actor.

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::{Admin, SignedIn};
use crate::site::SiteSettings;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use salam_protocol::{ConversationState, ErrorCode};
use salam_store::{AgentRole, Conversation, ConversationFilter, Page};
use serde::Deserialize;
use serde_json::json;

fn not_found() -> ApiError {
    ApiError::not_found()
}

/// A conversation of one of the agent's sites (404 for another site's, like a missing
/// one: no probing of ids).
pub async fn visible_conversation(
    state: &AppState,
    me: &SignedIn,
    id: &str,
) -> Result<Conversation, ApiError> {
    let found = state.store.conversation(id).await?.ok_or_else(not_found)?;
    if !state.authority.sites_of(&me.agent).contains(&found.site_id) {
        return Err(not_found());
    }
    Ok(found)
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// `queued`, `mine`, `open` (default), `closed`, `bot`, `assigned`, `all`.
    state: Option<String>,
    /// Search in visitor name, e-mail and message text.
    q: Option<String>,
    site: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/conversations?state=queued|mine|open|closed|all&q=TEXT&site=ID` (`all`:
/// every state, closed included: the console's search across its tabs).
pub async fn conversations(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let site_ids = me.narrow(&state, query.site.as_ref())?;
    let mut filter = ConversationFilter {
        limit: query.limit.unwrap_or(200).min(500),
        query: query
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| q.chars().take(200).collect()),
        ..ConversationFilter::default()
    };
    match query.state.as_deref().unwrap_or("open") {
        "open" => {}
        "all" => filter.include_closed = true,
        "mine" => {
            filter.state = Some(ConversationState::Assigned);
            filter.agent_id = Some(me.agent.id.clone());
        }
        other => {
            filter.state = Some(ConversationState::parse(other).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadField,
                    "state must be queued, mine, open, closed, bot, assigned or all",
                )
            })?);
        }
    }
    let found = state.store.find_conversations(&site_ids, filter).await?;
    let summaries: Vec<_> = found.iter().map(|c| c.summary()).collect();
    Ok(Json(json!({ "conversations": summaries })).into_response())
}

/// `GET /api/conversations/{id}`: the summary, the visitor's details, their past
/// conversations, the rating, and the contact details they left (the contact form's
/// name, e-mail, phone and message; `null` if none).
pub async fn conversation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let found = visible_conversation(&state, &me, &id).await?;
    let visitor = state.store.visitor(&found.visitor_id).await?;
    let past: Vec<_> = state
        .store
        .conversations_of_visitor(&found.visitor_id)
        .await?
        .iter()
        .filter(|other| other.id != found.id)
        .map(|other| other.summary())
        .collect();
    let rating = state
        .store
        .rating(&id)
        .await?
        .map(|(score, comment)| json!({ "score": score, "comment": comment }));
    // What the visitor left in the contact form of this conversation.
    let contact = state
        .store
        .contact_of_conversation(&id)
        .await?
        .map(|request| {
            json!({
                "name": request.name,
                "email": request.email,
                "phone": request.phone,
                "message": request.message,
                "at": request.created_at,
            })
        });
    Ok(Json(json!({
        "conversation": found.summary(),
        "visitor": visitor,
        "contact": contact,
        "identified": visitor.as_ref().is_some_and(|v| v.external_id.is_some()),
        "past_conversations": past,
        "rating": rating,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    /// Messages after this sequence (oldest first)...
    #[serde(default)]
    after: u64,
    /// ...or the last `limit` before this one (a window that pages backwards).
    before: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/conversations/{id}/messages?after=SEQ|before=SEQ&limit=N`.
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let conversation = visible_conversation(&state, &me, &id).await?;
    let limit = query.limit.unwrap_or(500).clamp(1, 1000);
    let messages = match query.before {
        Some(before) => state.store.messages_before(&id, before, limit).await?,
        None => state.store.messages_after(&id, query.after, limit).await?,
    };
    Ok(Json(json!({
        "conversation": conversation.summary(),
        "messages": messages,
    }))
    .into_response())
}

/// One part of each accessible site's routing view, keyed by site id.
fn per_site(
    state: &AppState,
    me: &SignedIn,
    site: Option<&String>,
    part: fn(&crate::routing::SiteView) -> serde_json::Value,
) -> Result<Response, ApiError> {
    let view = state.routing.view();
    let mut sites = serde_json::Map::new();
    for site_id in me.narrow(state, site)? {
        let site_view = view.site(&site_id);
        sites.insert(site_id, part(&site_view));
    }
    Ok(Json(json!({ "sites": sites })).into_response())
}

/// `GET /api/agents?site=ID`: agents with presence and load, per site (load and
/// capacity count every site of the agent).
pub async fn agents(
    State(state): State<AppState>,
    Query(query): Query<SiteQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    per_site(&state, &me, query.site.as_ref(), |view| json!(view.agents))
}

/// `GET /api/queue?site=ID`: the queue, in order, with expected waits.
pub async fn queue(
    State(state): State<AppState>,
    Query(query): Query<SiteQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    per_site(&state, &me, query.site.as_ref(), |view| json!(view.queue))
}

/// `GET /api/departments?site=ID`: the departments of the agent's sites (or of one).
pub async fn departments(
    State(state): State<AppState>,
    Query(query): Query<SiteQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let site_ids = me.narrow(&state, query.site.as_ref())?;
    let departments = state.store.departments(&site_ids).await?;
    Ok(Json(json!({ "departments": departments })).into_response())
}

/// `GET /api/canned?site=ID`: the canned responses of the agent's sites (or of one).
pub async fn canned(
    State(state): State<AppState>,
    Query(query): Query<SiteQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let site_ids = me.narrow(&state, query.site.as_ref())?;
    let canned = state.store.canned(&site_ids).await?;
    Ok(Json(json!({ "canned": canned })).into_response())
}

/// `?before=ID&limit=N` of a paginated list (newest first).
#[derive(Deserialize)]
pub struct PageQuery {
    site: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// Items per page by default, and at most.
pub const PAGE_DEFAULT: u32 = 100;
pub const PAGE_MAX: u32 = 500;

impl PageQuery {
    fn page(&self) -> Page {
        Page {
            before: self.before,
            limit: self.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX),
        }
    }
}

/// A page of a list as JSON: `{name: [...], "next_before": id | null}`
/// (`next_before` is the `before` of the next page, when there may be one).
fn paged<T: serde::Serialize>(
    name: &str,
    items: Vec<T>,
    page: Page,
    id: fn(&T) -> i64,
) -> Response {
    let next_before = (items.len() as u32 >= page.limit)
        .then(|| items.last().map(id))
        .flatten();
    let mut body = serde_json::Map::new();
    body.insert(name.to_owned(), json!(items));
    body.insert("next_before".to_owned(), json!(next_before));
    Json(serde_json::Value::Object(body)).into_response()
}

/// `POST /api/offline-requests/{id}/done`.
pub async fn offline_request_done(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let visible = state
        .store
        .offline_requests(&me.sites(&state), Page::at(id))
        .await?;
    if !visible.iter().any(|request| request.id == id) {
        return Err(not_found());
    }
    state.store.offline_request_done(id, now_ms()).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

#[derive(Deserialize)]
pub struct SiteQuery {
    site: Option<String>,
}

/// `GET /api/offline-requests?site&before&limit`: callbacks to follow up, newest
/// first, a page at a time.
pub async fn offline_requests(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let site_ids = me.narrow(&state, query.site.as_ref())?;
    let page = query.page();
    let requests = state.store.offline_requests(&site_ids, page).await?;
    Ok(paged("requests", requests, page, |request| request.id))
}

/// `GET /api/alerts?site&before&limit` (admins): low-satisfaction alerts, newest
/// first, a page at a time, each with `acknowledged_at` (`null` while open).
pub async fn alerts(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    Admin(me): Admin,
) -> Result<Response, ApiError> {
    let site_ids = me.narrow(&state, query.site.as_ref())?;
    let page = query.page();
    let alerts = state.store.alerts(&site_ids, page).await?;
    Ok(paged("alerts", alerts, page, |alert| alert.id))
}

/// `GET /api/sites` (admins: all; agents: theirs).
pub async fn sites(State(state): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    let agent = &me.agent;
    let sites: Vec<_> = state
        .store
        .list_sites()
        .await?
        .into_iter()
        .filter(|site| agent.can_access(&site.id))
        .map(|site| {
            if agent.role == AgentRole::Admin {
                return crate::admin::site_json(&state, &site);
            }
            json!({
                "id": site.id,
                "name": site.name,
                "key": site.key,
                "origins": site.origins,
                "settings": SiteSettings::parse(&site.settings),
            })
        })
        .collect();
    Ok(Json(json!({ "sites": sites })).into_response())
}

/// `GET /api/rules`: the rules in force (read-only) and the last reload error.
pub async fn rules(State(state): State<AppState>, _me: SignedIn) -> Result<Response, ApiError> {
    let rules = state.bot.current();
    let listed: Vec<_> = rules
        .rules()
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "intent": rule.intent,
                "file": rule.file,
            })
        })
        .collect();
    let last_error = state
        .bot
        .last_error
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Json(json!({
        "source": state.bot.source(),
        "rules": listed,
        "last_error": last_error,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct TryRequest {
    text: String,
    lang: Option<String>,
}

/// `POST /api/rules/try`: what the bot would decide for a sentence.
pub async fn try_rules(
    State(state): State<AppState>,
    _me: SignedIn,
    body: Option<Json<TryRequest>>,
) -> Result<Response, ApiError> {
    let Some(Json(request)) = body else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadField,
            "send {\"text\": ...}",
        ));
    };
    let text: String = request.text.chars().take(4000).collect();
    Ok(Json(crate::bot::explain(
        &state.bot.current(),
        &text,
        request.lang.as_deref(),
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct RangeQuery {
    /// Milliseconds since the epoch (default: 30 days ago).
    from: Option<i64>,
    /// Milliseconds since the epoch (default: now).
    to: Option<i64>,
    site: Option<String>,
}

fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// `GET /api/reports?from=MS&to=MS&site=ID`: conversations, deflection, handoffs by
/// reason, first response and resolution times (median, p90), satisfaction, and the
/// questions the bot could not answer.
pub async fn reports(
    State(state): State<AppState>,
    Query(query): Query<RangeQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let site_ids = me.narrow(&state, query.site.as_ref())?;
    let to = query.to.unwrap_or_else(now_ms);
    let from = match query.from {
        Some(from) => from,
        None => to
            .checked_sub(30 * 24 * 3_600_000)
            .ok_or_else(|| ApiError::bad("to is out of range"))?,
    };
    if from < 0 || to < 0 || from > to {
        return Err(ApiError::bad(
            "from and to are times in ms since the epoch, with from <= to",
        ));
    }
    Ok(Json(report_figures(&state, &site_ids, from, to).await?).into_response())
}

/// The report of `site_ids` over `[from, to]` (shared with the REST API v1).
pub async fn report_figures(
    state: &AppState,
    site_ids: &[String],
    from: i64,
    to: i64,
) -> Result<serde_json::Value, ApiError> {
    let bot = state.store.bot_report(site_ids, from, to).await?;
    let timings = state.store.timings(site_ids, from, to).await?;
    let mut first_response: Vec<i64> = timings
        .iter()
        .filter_map(|t| Some(t.first_response_at?.saturating_sub(t.handed_off_at?)))
        .collect();
    let mut resolution: Vec<i64> = timings
        .iter()
        .filter_map(|t| Some(t.closed_at?.saturating_sub(t.created_at)))
        .collect();
    first_response.sort_unstable();
    resolution.sort_unstable();
    let scores: Vec<u8> = timings.iter().filter_map(|t| t.score).collect();
    let mut distribution = [0u64; 5];
    for score in &scores {
        distribution[(*score as usize).clamp(1, 5) - 1] += 1;
    }
    let average = (!scores.is_empty())
        .then(|| scores.iter().map(|s| *s as f64).sum::<f64>() / scores.len() as f64);
    let target_ms = state.config.routing.first_response_target_secs as i64 * 1000;
    let within_target = first_response.iter().filter(|ms| **ms <= target_ms).count();
    let deflection =
        (bot.bot_conversations > 0).then(|| bot.deflected as f64 / bot.bot_conversations as f64);
    Ok(json!({
        "from": from,
        "to": to,
        "conversations": bot.conversations,
        "bot_conversations": bot.bot_conversations,
        "deflected": bot.deflected,
        "deflection_rate": deflection,
        "handoffs_by_reason": bot.handoffs_by_reason,
        "first_response_ms": {
            "median": percentile(&first_response, 0.5),
            "p90": percentile(&first_response, 0.9),
            "count": first_response.len(),
            "target_ms": target_ms,
            "within_target": within_target,
        },
        "key_accounts": crate::key_account_routing::report(state, site_ids, from, to, &first_response, target_ms).await?,
        "resolution_ms": {
            "median": percentile(&resolution, 0.5),
            "p90": percentile(&resolution, 0.9),
            "count": resolution.len(),
        },
        "satisfaction": {
            "average": average,
            "count": scores.len(),
            "distribution": distribution,
        },
        "unanswered_clusters": crate::unanswered::cluster(&bot.unanswered),
        "unanswered": bot.unanswered,
    }))
}

/// `GET /api/widget/{key}` (public, CORS): what the widget needs to draw itself.
pub async fn widget_settings(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    let cors = [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    let site = match state.store.site_by_key(&key).await {
        Ok(Some(site)) => site,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                cors,
                Json(json!({ "error": "unknown_site" })),
            )
                .into_response();
        }
        Err(err) => return ApiError::from(err).into_response(),
    };
    let settings = SiteSettings::parse(&site.settings);
    let open = settings.is_open(now_ms());
    // From the published routing view: never waits on the routing actor.
    // Presence, not the hours: an online agent gets the chat at any time (`open`
    // says whether it is within business hours).
    let online = state.routing.view().site(&site.id).anyone_online();
    (
        cors,
        [(header::CACHE_CONTROL, "no-cache")],
        Json(json!({
            "key": site.key,
            "name": site.name,
            "color": settings.color,
            "position": settings.position,
            "locale": settings.locale,
            "greeting": settings.greeting,
            "logo": settings.logo,
            "business_hours": settings.business_hours,
            "open": open,
            "prechat": settings.prechat,
            "agents_online": online,
            // Proactive triggers (issue 19): the signed rules for an anonymous page.
            "triggers": crate::triggers::for_widget(&state, &site, &settings, None, now_ms()),
            "personal_triggers": crate::triggers::has_personal(&settings),
        })),
    )
        .into_response()
}
