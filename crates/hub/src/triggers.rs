//! Proactive triggers (issue 19): per-site rules that show a message from the bot or a
//! named agent in a bubble above the launcher when the visitor's page meets their
//! conditions.
//!
//! The rules live in the site settings (`triggers`, edited in the console) and are
//! **evaluated in the widget** (`widget/loader/triggers.js`), so nothing about the
//! visitor's browsing leaves the page unless a trigger fires. The hub decides which
//! rules a page gets ([`for_widget`]): only enabled ones; none that must stay quiet now
//! (outside business hours, or written by an agent who is not online with a free slot,
//! or handing off with nobody to take it); and those with conditions on customer
//! attributes only for an identified visitor whose attributes meet them (evaluated here:
//! the CRM's data never reaches the page).
//!
//! Each rule sent is **signed** ([`sign`]: HMAC-SHA256 under the server secret over the
//! site, id, text, author and expiry), so what the widget reports back (`shown`,
//! `opened`: `POST /api/widget/{key}/trigger`) names a message this hub really sent,
//! and a forged report is refused. Reports are recorded as visitor events
//! (`salam_store::visitor_events`) and counted per trigger by `GET /api/triggers/report`.
//! The wire format is in docs/protocol.md ("Proactive triggers").

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use salam_protocol::{ErrorCode, Presence};
use salam_store::{NewVisitorEvent, Site, StoreError, VisitorEventKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;

use crate::clock::now_ms;
use crate::customer::Condition;
use crate::error::ApiError;
use crate::extract::{ClientIp, SignedIn};
use crate::rate::BucketKey;
use crate::site::SiteSettings;
use crate::state::AppState;
use crate::trigger_rules::{Refused, SIGNATURE_TTL_MS, SignedTrigger, Trigger, bot, sign};

/// Largest report body.
const MAX_BODY: usize = 4096;
/// Reports per client address: a sustained rate per second and a burst.
const REPORT_RATE: (u32, u32) = (2, 30);

/// The triggers a page of `site` gets now, signed: enabled, not quiet, and with
/// attribute conditions only when `attributes` (an identified visitor's) meet them.
pub fn for_widget(
    state: &AppState,
    site: &Site,
    settings: &SiteSettings,
    attributes: Option<&serde_json::Map<String, Value>>,
    now: i64,
) -> Vec<Value> {
    if settings.triggers.is_empty() {
        return Vec::new();
    }
    let open = settings.is_open(now);
    let view = state.routing.view().site(&site.id);
    let free = |agent: &salam_protocol::AgentStatus| {
        agent.presence == Presence::Online && agent.load < agent.capacity
    };
    let exp = now + SIGNATURE_TTL_MS;
    settings
        .triggers
        .iter()
        .filter(|t| t.enabled && (open || !t.only_when_open))
        .filter(|t| !t.handoff || view.agents.iter().any(free))
        .filter(|t| match attributes {
            _ if t.attributes.is_empty() => true,
            // Conditions that do not decode (stored before a check) never hold.
            Some(attributes) => conditions(t)
                .is_some_and(|conditions| crate::customer::all_hold(&conditions, attributes)),
            None => false,
        })
        .filter_map(|t| {
            let name = if t.from == "bot" {
                None
            } else {
                // Quiet while the named agent is offline, away or at capacity.
                let agent = view.agents.iter().find(|a| a.id == t.from && free(a))?;
                Some(agent.name.clone())
            };
            Some(json!({
                "id": t.id,
                "text": t.message,
                "author": t.from,
                "name": name,
                "when": t.when,
                "open": t.open,
                "per_visitor": t.per_visitor,
                "per_session": t.per_session,
                "exp": exp,
                "sig": sign(&state.secret, &site.id, &t.id, &t.message, &t.from, exp),
            }))
        })
        .collect()
}

/// A trigger's attribute conditions, decoded (`None` if one does not decode).
fn conditions(trigger: &Trigger) -> Option<Vec<Condition>> {
    trigger
        .attributes
        .iter()
        .map(|value| serde_json::from_value(value.clone()).ok())
        .collect()
}

/// Checks the triggers' attribute conditions as `customer::Condition`s (when the site
/// settings are saved, beside `SiteSettings::validate`).
pub fn check_attributes(triggers: &[Trigger]) -> Result<(), &'static str> {
    for trigger in triggers {
        let conditions = conditions(trigger).ok_or(
            "triggers: an attribute condition is {\"attribute\", \"op\", \"value\"} with op \
             eq, ne, gt, ge, lt, le, in or exists",
        )?;
        for condition in &conditions {
            condition.validate()?;
        }
    }
    Ok(())
}

/// Whether some enabled trigger has attribute conditions (the widget then asks for an
/// identified visitor's own list).
pub fn has_personal(settings: &SiteSettings) -> bool {
    settings
        .triggers
        .iter()
        .any(|t| t.enabled && !t.attributes.is_empty())
}

/// The routes: the widget's (public, CORS) and the report (agents).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/widget/{key}/trigger", post(report))
        .route("/api/widget/{key}/triggers", post(personal))
        .route("/api/triggers/report", get(counts))
}

fn cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Parses a widget's body: JSON sent as `text/plain` (so the browser sends no
/// preflight), at most 4 KB.
fn body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::FrameTooLarge,
            "the body is larger than 4 KB",
        ));
    }
    serde_json::from_str(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadJson,
            "the body is not a valid trigger report",
        )
    })
}

fn limited(state: &AppState, ip: ClientIp) -> Result<(), ApiError> {
    if state.buckets.take(
        BucketKey::Triggers(ip.0),
        REPORT_RATE.0,
        REPORT_RATE.1,
        Instant::now(),
    ) {
        Ok(())
    } else {
        Err(ApiError::too_many(
            "too many trigger reports from this address",
            std::time::Duration::from_secs(1),
        ))
    }
}

async fn site_of(state: &AppState, key: &str) -> Result<Site, ApiError> {
    state.store.site_by_key(key).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownSite,
            "no site has this key",
        )
    })
}

/// What the widget reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportEvent {
    Shown,
    Opened,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    event: ReportEvent,
    /// The visitor token, when the widget has one.
    #[serde(default)]
    visitor: Option<String>,
    trigger: SignedTrigger,
}

/// `POST /api/widget/{key}/trigger` (public, CORS): a trigger was shown or opened.
async fn report(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ip: ClientIp,
    text: String,
) -> Response {
    cors(match report_inner(&state, &key, ip, &text).await {
        Ok(recorded) => Json(json!({ "recorded": recorded })).into_response(),
        Err(err) => err.into_response(),
    })
}

async fn report_inner(
    state: &AppState,
    key: &str,
    ip: ClientIp,
    text: &str,
) -> Result<bool, ApiError> {
    limited(state, ip)?;
    let report: Report = body(text)?;
    let site = site_of(state, key).await?;
    match report.trigger.verify(&state.secret, &site.id, now_ms()) {
        Ok(()) => {}
        Err(Refused::BadSignature) => {
            return Err(ApiError::forbidden("the trigger's signature is not valid"));
        }
        Err(Refused::Expired) => return Err(ApiError::forbidden("the trigger has expired")),
    }
    let Some(token) = report.visitor else {
        return Ok(false);
    };
    let Some(visitor_id) = state.secret.verify_visitor_token(&site.id, &token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "the visitor token is not valid",
        ));
    };
    let kind = match report.event {
        ReportEvent::Shown => VisitorEventKind::TriggerShown,
        ReportEvent::Opened => VisitorEventKind::TriggerOpened,
    };
    let event = NewVisitorEvent {
        site_id: site.id.clone(),
        visitor_id,
        kind,
        data: json!({
            "trigger": report.trigger.id,
            "text": report.trigger.text,
            "author": report.trigger.author,
        }),
        at: now_ms(),
    };
    match state.store.record_visitor_event(event).await {
        Ok(()) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonalRequest {
    visitor: String,
}

/// `POST /api/widget/{key}/triggers` (public, CORS): the triggers for an identified
/// visitor, those with attribute conditions included when the visitor's attributes meet
/// them. The body is `{"visitor": TOKEN}`; an unknown token gets the anonymous list.
async fn personal(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ip: ClientIp,
    text: String,
) -> Response {
    cors(match personal_inner(&state, &key, ip, &text).await {
        Ok(triggers) => Json(json!({ "triggers": triggers })).into_response(),
        Err(err) => err.into_response(),
    })
}

async fn personal_inner(
    state: &AppState,
    key: &str,
    ip: ClientIp,
    text: &str,
) -> Result<Vec<Value>, ApiError> {
    limited(state, ip)?;
    let request: PersonalRequest = body(text)?;
    let site = site_of(state, key).await?;
    let settings = SiteSettings::parse(&site.settings);
    let attributes = match state
        .secret
        .verify_visitor_token(&site.id, &request.visitor)
    {
        Some(visitor_id) => Some(crate::customer::attributes(state, &visitor_id).await),
        None => None,
    };
    Ok(for_widget(
        state,
        &site,
        &settings,
        attributes.as_ref(),
        now_ms(),
    ))
}

#[derive(Deserialize)]
struct CountsQuery {
    site: String,
    /// From (ms since the epoch, inclusive); default 30 days ago.
    from: Option<i64>,
    /// To (exclusive); default now.
    to: Option<i64>,
}

/// `GET /api/triggers/report?site=ID&from=MS&to=MS` (agents of the site): per trigger,
/// how often it was shown, opened, replied to and converted in the period.
async fn counts(
    State(state): State<AppState>,
    Query(query): Query<CountsQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let site_id = me
        .narrow(&state, Some(&query.site))?
        .pop()
        .ok_or_else(ApiError::not_found)?;
    let site = state
        .store
        .site_by_id(&site_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let to = query.to.unwrap_or_else(now_ms);
    let from = query.from.unwrap_or(to - 30 * 24 * 3600 * 1000);
    if from > to {
        return Err(ApiError::bad("from must not be after to"));
    }
    let settings = SiteSettings::parse(&site.settings);
    let counted = state.store.trigger_counts(&site.id, from, to).await?;
    Ok(Json(json!({
        "site": site.id,
        "from": from,
        "to": to,
        "triggers": report_rows(&settings.triggers, &counted),
    }))
    .into_response())
}

/// One row per configured trigger (zeros included), then any counted trigger no longer
/// configured.
pub fn report_rows(triggers: &[Trigger], counted: &[salam_store::TriggerCount]) -> Vec<Value> {
    let mut ids: Vec<&str> = triggers.iter().map(|t| t.id.as_str()).collect();
    for count in counted {
        if !ids.contains(&count.trigger.as_str()) {
            ids.push(&count.trigger);
        }
    }
    ids.into_iter()
        .map(|id| {
            let of = |kind| {
                counted
                    .iter()
                    .filter(|c| c.trigger == id && c.kind == kind)
                    .map(|c| c.count)
                    .sum::<i64>()
            };
            json!({
                "id": id,
                "configured": triggers.iter().any(|t| t.id == id),
                "shown": of(VisitorEventKind::TriggerShown),
                "opened": of(VisitorEventKind::TriggerOpened),
                "replied": of(VisitorEventKind::TriggerReplied),
                "converted": of(VisitorEventKind::TriggerConverted),
            })
        })
        .collect()
}

/// A new conversation of the widget: when its visitor opened a trigger's bubble
/// ([`opened`]), starts it with the trigger's message ([`start_with`]) and says whether
/// to hand it to people at once (the trigger's `handoff`). Never fails the visitor's
/// message: a store error is logged and the conversation goes on as usual.
pub async fn begin(
    state: &AppState,
    site: &Site,
    settings: &SiteSettings,
    locale: Option<&str>,
    conversation: &salam_store::Conversation,
) -> bool {
    if settings.triggers.is_empty() {
        return false;
    }
    let Some(opener) = opened(state, settings, &conversation.visitor_id, now_ms()).await else {
        return false;
    };
    let lang = locale
        .and_then(salam_bot::Lang::parse)
        .unwrap_or(salam_bot::Lang::En);
    match start_with(state, site, settings, conversation, &opener, lang).await {
        Ok(()) => opener.handoff,
        Err(err) => {
            tracing::warn!(conversation = %conversation.id, error = %err, "trigger opener not stored");
            false
        }
    }
}

/// How long after opening a trigger's bubble the visitor's first message still starts
/// the conversation with the trigger's message.
pub const OPENED_WINDOW_MS: i64 = 30 * 60 * 1000;

/// The trigger a new conversation starts with: the one whose bubble the visitor opened
/// last (reported with a valid signature, so its text and author are the hub's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opener {
    pub trigger: String,
    pub text: String,
    /// `bot` or an agent id.
    pub author: String,
    /// Hand the conversation to people at once (the trigger's `handoff`, as the site
    /// settings say now).
    pub handoff: bool,
}

/// The trigger the visitor opened within [`OPENED_WINDOW_MS`], unless a conversation
/// already came of it (a `trigger_converted` event since).
pub async fn opened(
    state: &AppState,
    settings: &SiteSettings,
    visitor_id: &str,
    now: i64,
) -> Option<Opener> {
    let events = match state
        .store
        .visitor_events(vec![visitor_id.to_owned()], 50)
        .await
    {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!(visitor = visitor_id, error = %err, "trigger events not read");
            return None;
        }
    };
    // Newest first: the last opened bubble, unless converted since.
    for event in events {
        match event.kind {
            VisitorEventKind::TriggerConverted => return None,
            VisitorEventKind::TriggerOpened if now - event.at <= OPENED_WINDOW_MS => {
                let field = |name: &str| event.data[name].as_str().map(str::to_owned);
                let trigger = field("trigger")?;
                let handoff = settings
                    .triggers
                    .iter()
                    .any(|t| t.id == trigger && t.handoff);
                return Some(Opener {
                    text: field("text")?,
                    author: field("author").unwrap_or_else(bot),
                    trigger,
                    handoff,
                });
            }
            VisitorEventKind::TriggerOpened => return None,
            _ => {}
        }
    }
    None
}

/// Starts `conversation` with the opener: its message as the first line, from the bot
/// (named by the site's rules) or the agent, then the `trigger_replied` and
/// `trigger_converted` events.
pub async fn start_with(
    state: &AppState,
    site: &Site,
    settings: &SiteSettings,
    conversation: &salam_store::Conversation,
    opener: &Opener,
    lang: salam_bot::Lang,
) -> Result<(), StoreError> {
    let author = if opener.author == "bot" {
        crate::conversation::bot_author(&state.bot.for_site(site, settings), lang)
    } else {
        let name = state
            .store
            .agent_by_id(&opener.author)
            .await?
            .map(|agent| agent.name);
        salam_protocol::Author {
            kind: salam_protocol::AuthorKind::Agent,
            id: Some(opener.author.clone()),
            name,
        }
    };
    crate::conversation::post(
        state,
        &site.id,
        &conversation.id,
        salam_protocol::MessageKind::Text,
        author,
        opener.text.clone(),
    )
    .await?;
    for kind in [
        VisitorEventKind::TriggerReplied,
        VisitorEventKind::TriggerConverted,
    ] {
        state
            .store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.id.clone(),
                visitor_id: conversation.visitor_id.clone(),
                kind,
                data: json!({
                    "trigger": opener.trigger,
                    "text": opener.text,
                    "conversation": conversation.id,
                }),
                at: now_ms(),
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(json: Value) -> Result<Vec<Trigger>, &'static str> {
        let mut triggers: Vec<Trigger> =
            serde_json::from_value(json).map_err(|_| "does not decode")?;
        crate::trigger_rules::validate(&mut triggers)?;
        check_attributes(&triggers)?;
        Ok(triggers)
    }

    #[test]
    fn attribute_conditions_are_decoded_and_checked() {
        let with = |attributes: Value| {
            trigger(
                json!([{"id": "t", "when": [{"kind": "exit_intent"}], "message": "Hi",
                            "attributes": attributes}]),
            )
        };
        assert!(with(json!([{"attribute": "plan", "op": "eq", "value": "enterprise"}])).is_ok());
        assert!(with(json!([{"attribute": "ltv", "op": "gt", "value": "x"}])).is_err());
        assert!(with(json!([{"attribute": "plan", "op": "like", "value": "e"}])).is_err());
        assert!(with(json!([{"attribute": "plan", "op": "eq", "value": 1, "extra": 2}])).is_err());
    }

    #[test]
    fn report_rows_list_configured_triggers_with_zeros() {
        let triggers = trigger(json!([
            {"id": "a", "when": [{"kind": "exit_intent"}], "message": "Hi"},
            {"id": "b", "when": [{"kind": "exit_intent"}], "message": "Hi"}
        ]))
        .unwrap();
        let counted = vec![
            salam_store::TriggerCount {
                trigger: "a".into(),
                kind: VisitorEventKind::TriggerShown,
                count: 3,
            },
            salam_store::TriggerCount {
                trigger: "gone".into(),
                kind: VisitorEventKind::TriggerOpened,
                count: 1,
            },
        ];
        let rows = report_rows(&triggers, &counted);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["shown"], 3);
        assert_eq!(rows[1]["shown"], 0);
        assert_eq!(rows[2]["id"], "gone");
        assert_eq!(rows[2]["configured"], false);
        assert_eq!(rows[2]["opened"], 1);
    }
}
