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
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use salam_protocol::{ErrorCode, Presence};
use salam_store::{NewVisitorEvent, Site, StoreError, VisitorEventKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Instant;

use crate::clock::now_ms;
use crate::customer::Condition;
use crate::error::ApiError;
use crate::extract::{ClientIp, SignedIn};
use crate::rate::BucketKey;
use crate::site::SiteSettings;
use crate::state::AppState;

/// Triggers a site may have.
pub const MAX_TRIGGERS: usize = 20;
/// Page conditions per trigger.
pub const MAX_CONDITIONS: usize = 8;
/// Characters of a trigger's message.
pub const MAX_TEXT: usize = 500;
/// How long a signed trigger may be reported after the hub sent it.
pub const SIGNATURE_TTL_MS: i64 = 12 * 3600 * 1000;
/// Largest report body.
const MAX_BODY: usize = 4096;
/// Reports per client address: a sustained rate per second and a burst.
const REPORT_RATE: (u32, u32) = (2, 30);

/// One proactive trigger, as the site settings store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// 1–40 characters of `a-z`, `0-9`, `-` and `_`, unique in the site.
    pub id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Conditions on the page, all of which must hold (1 to 8).
    pub when: Vec<When>,
    /// Conditions on the customer's attributes, all of which must hold (evaluated on
    /// the hub; a trigger with any is never sent to an anonymous visitor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Condition>,
    /// The message shown in the bubble (1–500 characters).
    pub message: String,
    /// `bot`, or the id of the agent the message is from.
    #[serde(default = "bot")]
    pub from: String,
    /// Open the panel as the bubble shows.
    #[serde(default)]
    pub open: bool,
    /// A reply goes to people at once, not the bot (for key accounts); the trigger stays
    /// quiet while no agent is online.
    #[serde(default)]
    pub handoff: bool,
    /// Times it may show to one visitor (this browser), 0 for no limit.
    #[serde(default = "one")]
    pub per_visitor: u32,
    /// Times it may show in one browser session (tab), 0 for no limit.
    #[serde(default = "one")]
    pub per_session: u32,
    /// Stay quiet outside the site's business hours.
    #[serde(default)]
    pub only_when_open: bool,
}

impl Eq for Trigger {}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn bot() -> String {
    "bot".into()
}

/// A condition on the page, evaluated by the widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum When {
    /// The page's address matches a glob: `*` stands for any characters, nothing else is
    /// special. A pattern starting with `/` matches the path and query
    /// (`/pricing*`), any other the whole address (`https://shop.example/*`).
    Url { pattern: String },
    /// The page has been open this many seconds (1–3600).
    TimeOnPage { seconds: u32 },
    /// The visitor scrolled this far down the page, in percent (1–100).
    Scroll { percent: u32 },
    /// The mouse leaves the window through its top edge (desktop only).
    ExitIntent,
    /// A first visit (`new`) or a later one (`returning`), as this browser remembers.
    Visitor { is: VisitorKind },
    /// The browser's language starts with this code (`ar`, `fa`, `en-GB`).
    Language { is: String },
    /// The page called `Salam.track(name)` with this name.
    Event { name: String },
}

/// New or returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitorKind {
    New,
    Returning,
}

fn token_like(text: &str, max: usize, extra: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

impl When {
    fn validate(&self) -> Result<(), &'static str> {
        match self {
            When::Url { pattern }
                if pattern.is_empty()
                    || pattern.chars().count() > 200
                    || pattern.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                return Err("triggers: a url pattern is 1 to 200 characters without spaces");
            }
            When::TimeOnPage { seconds } if !(1..=3600).contains(seconds) => {
                return Err("triggers: time_on_page is 1 to 3600 seconds");
            }
            When::Scroll { percent } if !(1..=100).contains(percent) => {
                return Err("triggers: scroll is 1 to 100 percent");
            }
            When::Language { is } if !token_like(is, 12, b"-") => {
                return Err("triggers: language is a code such as ar or en-GB");
            }
            When::Event { name } if !token_like(name, 64, b"_-.:") => {
                return Err("triggers: an event name is 1 to 64 letters, digits, _ - . or :");
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks the site's triggers (from `SiteSettings::validate`), cleaning their texts.
pub fn validate(triggers: &mut [Trigger]) -> Result<(), &'static str> {
    if triggers.len() > MAX_TRIGGERS {
        return Err("triggers: at most 20");
    }
    let mut ids = std::collections::HashSet::new();
    for trigger in triggers.iter_mut() {
        if !token_like(&trigger.id, 40, b"-_") || trigger.id.bytes().any(|b| b.is_ascii_uppercase())
        {
            return Err("triggers: an id is 1 to 40 of a-z, 0-9, - and _");
        }
        if !ids.insert(trigger.id.clone()) {
            return Err("triggers: ids must be unique");
        }
        if trigger.when.is_empty() || trigger.when.len() > MAX_CONDITIONS {
            return Err("triggers: each has 1 to 8 page conditions");
        }
        for when in &trigger.when {
            when.validate()?;
        }
        if trigger.attributes.len() > MAX_CONDITIONS {
            return Err("triggers: at most 8 attribute conditions each");
        }
        for condition in &trigger.attributes {
            condition.validate()?;
        }
        trigger.message = crate::text::clean_text(trigger.message.trim());
        if trigger.message.is_empty() || trigger.message.chars().count() > MAX_TEXT {
            return Err("triggers: a message is 1 to 500 characters");
        }
        if trigger.from != "bot" && !crate::auth::valid_id(&trigger.from, "a_") {
            return Err("triggers: from is bot or an agent's id");
        }
        if trigger.per_visitor > 100 || trigger.per_session > 100 {
            return Err("triggers: per_visitor and per_session are at most 100");
        }
    }
    Ok(())
}

/// What a signature covers: the site, the trigger's id, its text, its author (`bot` or
/// an agent id) and its expiry, as one JSON array (so no field can run into another).
fn signed_bytes(site_id: &str, id: &str, text: &str, author: &str, exp: i64) -> String {
    json!([site_id, id, text, author, exp]).to_string()
}

/// The signature of a trigger sent to a page (URL-safe base64 without padding).
pub fn sign(
    secret: &crate::auth::Secret,
    site_id: &str,
    id: &str,
    text: &str,
    author: &str,
    exp: i64,
) -> String {
    URL_SAFE_NO_PAD.encode(secret.sign("trigger", &signed_bytes(site_id, id, text, author, exp)))
}

/// A trigger as the widget sends it back: what the hub signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTrigger {
    pub id: String,
    pub text: String,
    pub author: String,
    pub exp: i64,
    pub sig: String,
}

/// Why a signed trigger is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    BadSignature,
    Expired,
}

impl SignedTrigger {
    /// Checks the signature (in constant time) and the expiry.
    pub fn verify(
        &self,
        secret: &crate::auth::Secret,
        site_id: &str,
        now: i64,
    ) -> Result<(), Refused> {
        let expected = secret.sign(
            "trigger",
            &signed_bytes(site_id, &self.id, &self.text, &self.author, self.exp),
        );
        let given = URL_SAFE_NO_PAD
            .decode(self.sig.as_bytes())
            .map_err(|_| Refused::BadSignature)?;
        if !crate::auth::same(&expected, &given) {
            return Err(Refused::BadSignature);
        }
        if self.exp < now {
            return Err(Refused::Expired);
        }
        Ok(())
    }
}

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
            Some(attributes) => crate::customer::all_hold(&t.attributes, attributes),
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
        validate(&mut triggers)?;
        Ok(triggers)
    }

    #[test]
    fn a_full_trigger_decodes_with_its_defaults() {
        let triggers = trigger(json!([{
            "id": "pricing",
            "when": [
                {"kind": "url", "pattern": "/pricing*"},
                {"kind": "time_on_page", "seconds": 20},
                {"kind": "scroll", "percent": 50},
                {"kind": "exit_intent"},
                {"kind": "visitor", "is": "returning"},
                {"kind": "language", "is": "ar"},
                {"kind": "event", "name": "checkout_failed"}
            ],
            "attributes": [{"attribute": "plan", "op": "eq", "value": "enterprise"}],
            "message": "  Questions about plans?\u{202E} ",
            "from": "a_sara1"
        }]))
        .unwrap();
        let t = &triggers[0];
        assert!(t.enabled);
        assert_eq!((t.per_visitor, t.per_session), (1, 1));
        assert_eq!(t.when.len(), 7);
        assert!(!t.message.contains('\u{202E}'), "bidi controls are cleaned");
        assert_eq!(t.message.trim(), t.message);
    }

    #[test]
    fn bad_triggers_are_refused_with_a_reason() {
        let base = |patch: Value| {
            let mut t = json!({"id": "t1", "when": [{"kind": "exit_intent"}], "message": "Hi"});
            if let (Value::Object(t), Value::Object(patch)) = (&mut t, patch) {
                t.extend(patch);
            }
            trigger(json!([t]))
        };
        assert!(base(json!({})).is_ok());
        assert!(base(json!({"when": [{"kind": "regex", "pattern": ".*"}]})).is_err());
        assert!(base(json!({"when": []})).is_err());
        assert!(base(json!({"when": [{"kind": "url", "pattern": "/a b"}]})).is_err());
        assert!(base(json!({"when": [{"kind": "time_on_page", "seconds": 0}]})).is_err());
        assert!(base(json!({"when": [{"kind": "scroll", "percent": 101}]})).is_err());
        assert!(base(json!({"when": [{"kind": "visitor", "is": "old"}]})).is_err());
        assert!(base(json!({"when": [{"kind": "event", "name": "a b"}]})).is_err());
        assert!(base(json!({"id": "Bad Id"})).is_err());
        assert!(base(json!({"message": "   "})).is_err());
        assert!(base(json!({"message": "x".repeat(501)})).is_err());
        assert!(base(json!({"from": "someone"})).is_err());
        assert!(base(json!({"per_visitor": 1000})).is_err());
        assert!(base(json!({"colour": "red"})).is_err(), "unknown fields");
        assert!(
            base(json!({"attributes": [{"attribute": "ltv", "op": "gt", "value": "x"}]})).is_err()
        );
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"id": format!("t{i}"), "when": [{"kind": "exit_intent"}], "message": "Hi"}))
            .collect();
        assert!(trigger(Value::Array(many)).is_err());
        let twice = json!({"id": "same", "when": [{"kind": "exit_intent"}], "message": "Hi"});
        assert!(trigger(json!([twice, twice])).is_err());
    }

    #[test]
    fn a_signature_covers_site_id_text_author_and_expiry() {
        let secret = crate::auth::Secret::from_stored(&crate::auth::Secret::generate_stored())
            .expect("secret");
        let sig = sign(&secret, "s_1", "pricing", "Hi", "bot", 1000);
        let signed = |id: &str, text: &str, author: &str, exp: i64, sig: &str| SignedTrigger {
            id: id.into(),
            text: text.into(),
            author: author.into(),
            exp,
            sig: sig.into(),
        };
        assert_eq!(
            signed("pricing", "Hi", "bot", 1000, &sig).verify(&secret, "s_1", 999),
            Ok(())
        );
        for forged in [
            signed("pricing", "Hi!", "bot", 1000, &sig),
            signed("other", "Hi", "bot", 1000, &sig),
            signed("pricing", "Hi", "a_boss", 1000, &sig),
            signed("pricing", "Hi", "bot", 5000, &sig),
            signed("pricing", "Hi", "bot", 1000, "not-base64!"),
        ] {
            assert_eq!(
                forged.verify(&secret, "s_1", 999),
                Err(Refused::BadSignature)
            );
        }
        assert_eq!(
            signed("pricing", "Hi", "bot", 1000, &sig).verify(&secret, "s_2", 999),
            Err(Refused::BadSignature),
            "another site"
        );
        assert_eq!(
            signed("pricing", "Hi", "bot", 1000, &sig).verify(&secret, "s_1", 1001),
            Err(Refused::Expired)
        );
    }

    /// The rule example of docs/protocol.md ("Proactive triggers") is a valid trigger.
    #[test]
    fn the_documented_rule_decodes_and_validates() {
        let doc = include_str!("../../../docs/protocol.md");
        let section = &doc[doc
            .find("### The rule, as the site settings store it")
            .expect("section")..];
        let body = &section[section.find("```jsonc\n").expect("example") + 9..];
        let example = &body[..body.find("```").expect("end of example")];
        let mut triggers: Vec<Trigger> =
            vec![serde_json::from_str(example).expect("the documented rule decodes")];
        assert_eq!(validate(&mut triggers), Ok(()));
        assert_eq!(triggers[0].when.len(), 2);
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
