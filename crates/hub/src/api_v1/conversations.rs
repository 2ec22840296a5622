//! v1 conversations and messages: list (by state, updated since, with a cursor), read
//! one, list its messages, send a message as an agent of the site or as the bot, close.
//!
//! Sending goes through [`crate::conversation::post_message`] and closing through
//! [`crate::conversation::close`], the functions the WebSocket handlers use: the message
//! is committed before the answer, then fanned out to the visitor's widget and the
//! agents' consoles, and routing hears of it. A `client_id` makes a send idempotent: a
//! resend answers the stored message with `duplicate: true` and is not delivered again.

use super::{ApiCaller, Body, ErrorBody, Read, Write, conflict, invalid};
use crate::clock::now_ms;
use crate::conversation;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salam_protocol::{
    Author, AuthorKind, ConversationState, ErrorCode, EventCode, Message, MessageKind, SystemEvent,
};
use salam_store::{Conversation, ConversationPage, NewMessage, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A conversation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateV1 {
    /// The bot is answering.
    Bot,
    /// Waiting for an agent.
    Queued,
    /// An agent has it.
    Assigned,
    Closed,
}

impl From<ConversationState> for StateV1 {
    fn from(state: ConversationState) -> StateV1 {
        match state {
            ConversationState::Bot => StateV1::Bot,
            ConversationState::Queued => StateV1::Queued,
            ConversationState::Assigned => StateV1::Assigned,
            ConversationState::Closed => StateV1::Closed,
        }
    }
}

impl From<StateV1> for ConversationState {
    fn from(state: StateV1) -> ConversationState {
        match state {
            StateV1::Bot => ConversationState::Bot,
            StateV1::Queued => ConversationState::Queued,
            StateV1::Assigned => ConversationState::Assigned,
            StateV1::Closed => ConversationState::Closed,
        }
    }
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationV1 {
    pub id: String,
    pub state: StateV1,
    pub visitor_id: String,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub visitor_locale: Option<String>,
    /// The agent who has it (state `assigned`).
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    /// The department ("" for the general queue).
    pub department: String,
    pub priority: i32,
    /// The sequence number of its last message (0: none).
    pub last_seq: u64,
    /// Visitor messages no agent has read yet.
    pub unread: u32,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Conversation> for ConversationV1 {
    fn from(found: &Conversation) -> ConversationV1 {
        ConversationV1 {
            id: found.id.clone(),
            state: found.state.into(),
            visitor_id: found.visitor_id.clone(),
            visitor_name: found.visitor_name.clone(),
            visitor_email: found.visitor_email.clone(),
            visitor_locale: found.visitor_locale.clone(),
            agent_id: found.agent_id.clone(),
            agent_name: found.agent_name.clone(),
            department: found.department.clone(),
            priority: found.priority,
            last_seq: found.last_seq,
            unread: found.unread,
            created_at: found.created_at,
            updated_at: found.updated_at,
        }
    }
}

/// A page of conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationV1>,
    /// Pass as `cursor` for the next page; `null` when this page is the last.
    pub next_cursor: Option<String>,
}

/// One conversation, with its visitor's details and the contact linked to them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    pub conversation: ConversationV1,
    /// The site's user id of the visitor, when `identify` verified it.
    pub visitor_external_id: Option<String>,
    /// The contact whose `external_id` is the visitor's (see the contacts endpoints).
    pub contact_id: Option<String>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKindV1 {
    Visitor,
    Agent,
    Bot,
    System,
}

/// What a message is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKindV1 {
    Text,
    /// An internal note (agents only).
    Note,
    /// A system line (joined, transferred, closed, …).
    Event,
}

/// A message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageV1 {
    pub conversation_id: String,
    /// 1, 2, 3, … without gaps within the conversation.
    pub seq: u64,
    pub kind: MessageKindV1,
    pub author_kind: AuthorKindV1,
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    pub text: String,
    pub client_id: Option<String>,
    /// Commit time, milliseconds since the Unix epoch.
    pub at: i64,
}

impl From<&Message> for MessageV1 {
    fn from(message: &Message) -> MessageV1 {
        MessageV1 {
            conversation_id: message.conversation.clone(),
            seq: message.seq,
            kind: match message.kind {
                MessageKind::Text => MessageKindV1::Text,
                MessageKind::Note => MessageKindV1::Note,
                MessageKind::Event => MessageKindV1::Event,
            },
            author_kind: match message.author.kind {
                AuthorKind::Visitor => AuthorKindV1::Visitor,
                AuthorKind::Agent => AuthorKindV1::Agent,
                AuthorKind::Bot => AuthorKindV1::Bot,
                AuthorKind::System => AuthorKindV1::System,
            },
            author_id: message.author.id.clone(),
            author_name: message.author.name.clone(),
            text: message.text.clone(),
            client_id: message.client_id.clone(),
            at: message.at,
        }
    }
}

/// Messages of a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageV1>,
}

/// What a send answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sent {
    pub message: MessageV1,
    /// True when this `client_id` had been sent before: nothing new was stored or
    /// delivered; `message` is the one stored then.
    pub duplicate: bool,
}

/// Who sends a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sender {
    /// An agent of the site (not disabled). Into a conversation the bot still has, the
    /// agent takes it first (they must be online with room). With `note: true`, an
    /// internal note, seen by agents only.
    Agent {
        agent_id: String,
        #[serde(default)]
        note: bool,
    },
    /// The site's bot, under its name in the visitor's language.
    Bot {},
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub sender: Sender,
    /// 1 to `limits.max_text_chars` characters (after cleaning).
    pub text: String,
    /// An idempotency key (1 to 64 characters): a resend with the same key (and
    /// sender) stores and delivers nothing new.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub client_id: Option<String>,
}

/// A close.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// The agent the close line names (an agent of the site); without it the token's
    /// name.
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// What a close answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Closed {
    /// False when it was closed already (nothing changed).
    pub closed: bool,
    pub conversation: ConversationV1,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only conversations in this state.
    state: Option<StateV1>,
    /// Only conversations updated at or after this time (ms since the Unix epoch).
    #[param(minimum = 0)]
    updated_since: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,15}\\.[A-Za-z0-9_]{1,64}$")]
    cursor: Option<String>,
    /// Conversations per page (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageParams {
    /// Messages after this sequence number (default 0: from the first).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Messages per page (default 200).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A conversation of the caller's site (404 for another site's, like a missing one).
pub async fn of_site(state: &AppState, site_id: &str, id: &str) -> Result<Conversation, ApiError> {
    match state.store.conversation(id).await? {
        Some(found) if found.site_id == site_id => Ok(found),
        _ => Err(ApiError::not_found()),
    }
}

fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, id) = cursor.split_once('.')?;
    let at: i64 = at.parse().ok()?;
    (!id.is_empty() && id.len() <= 64).then(|| (at, id.to_owned()))
}

fn bad_query(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadField, message)
}

/// Lists the site's conversations, oldest change first.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    operation_id = "list_conversations",
    tag = "conversations",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationList),
        (status = 400, description = "A query parameter is malformed", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit must be 1 to 500"));
    }
    if params.updated_since.is_some_and(|since| since < 0) {
        return Err(bad_query("updated_since must be 0 or more"));
    }
    let after = match params.cursor.as_deref() {
        Some(cursor) => Some(parse_cursor(cursor).ok_or_else(|| bad_query("unknown cursor"))?),
        None => None,
    };
    let found = state
        .store
        .conversation_page(
            caller.site_id(),
            ConversationPage {
                state: params.state.map(Into::into),
                updated_since: params.updated_since,
                after,
                limit,
            },
        )
        .await?;
    let next_cursor = (found.len() as u32 >= limit)
        .then(|| {
            found
                .last()
                .map(|last| format!("{}.{}", last.updated_at, last.id))
        })
        .flatten();
    Ok(Json(ConversationList {
        conversations: found.iter().map(ConversationV1::from).collect(),
        next_cursor,
    })
    .into_response())
}

/// Reads one conversation.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}",
    operation_id = "get_conversation",
    tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation", body = ConversationDetail),
        (status = 404, description = "No such conversation in this site", body = ErrorBody),
    )
)]
pub async fn read(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = of_site(&state, caller.site_id(), &id).await?;
    let external_id = state.store.visitor_external_id(&found.visitor_id).await?;
    let contact_id = match &external_id {
        Some(external_id) => state
            .store
            .contact_by_external_id(caller.site_id(), external_id)
            .await?
            .map(|contact| contact.id),
        None => None,
    };
    Ok(Json(ConversationDetail {
        conversation: ConversationV1::from(&found),
        visitor_external_id: external_id,
        contact_id,
    })
    .into_response())
}

/// Lists a conversation's messages, oldest first (notes included).
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/messages",
    operation_id = "list_messages",
    tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id"), MessageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Messages after `after`", body = MessageList),
        (status = 400, description = "A query parameter is malformed", body = ErrorBody),
        (status = 404, description = "No such conversation in this site", body = ErrorBody),
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Path(id): Path<String>,
    Query(params): Query<MessageParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(bad_query("limit must be 1 to 1000"));
    }
    let after = params.after.unwrap_or(0);
    if after < 0 {
        return Err(bad_query("after must be 0 or more"));
    }
    of_site(&state, caller.site_id(), &id).await?;
    let found = state.store.messages_after(&id, after as u64, limit).await?;
    Ok(Json(MessageList {
        messages: found.iter().map(MessageV1::from).collect(),
    })
    .into_response())
}

/// An agent of the site, not disabled (404 otherwise, like any object the site does
/// not have).
async fn site_agent(
    state: &AppState,
    site_id: &str,
    agent_id: &str,
) -> Result<salam_store::Agent, ApiError> {
    match state.store.agent_by_id(agent_id).await? {
        Some(agent) if !agent.disabled && agent.can_access(site_id) => Ok(agent),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such agent in this site",
        )),
    }
}

fn store_error(err: StoreError) -> ApiError {
    match conversation::store_code(&err) {
        ErrorCode::ConversationClosed => conflict(
            ErrorCode::ConversationClosed,
            "the conversation is closed; it takes no more messages",
        ),
        _ => ApiError::from(err),
    }
}

/// Sends a message as an agent of the site or as the bot.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/messages",
    operation_id = "send_message",
    tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = SendMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and delivered (or, with `duplicate`, stored before)", body = Sent),
        (status = 404, description = "No such conversation, or no such agent, in this site", body = ErrorBody),
        (status = 409, description = "The conversation is closed, or the agent cannot take it from the bot", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong: an empty or too long text, a bad client_id", body = ErrorBody),
    )
)]
pub async fn send(
    State(state): State<AppState>,
    caller: ApiCaller<Write>,
    Path(id): Path<String>,
    Body(request): Body<SendMessage>,
) -> Result<Response, ApiError> {
    let found = of_site(&state, caller.site_id(), &id).await?;
    let text = conversation::checked_text(&state, &request.text).map_err(|(code, _)| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            match code {
                ErrorCode::EmptyText => "the text is empty",
                _ => "the text is longer than the hub's limit (limits.max_text_chars)",
            },
        )
    })?;
    if let Some(client_id) = &request.client_id {
        conversation::check_client_id(client_id)
            .map_err(|_| invalid("client_id must have 1 to 64 characters"))?;
    }
    if found.state == ConversationState::Closed {
        return Err(store_error(StoreError::Closed));
    }
    let note = matches!(request.sender, Sender::Agent { note: true, .. });
    let (author, agent_id) = match &request.sender {
        Sender::Agent { agent_id, .. } => {
            let agent = site_agent(&state, caller.site_id(), agent_id).await?;
            (agent.author(), Some(agent.id))
        }
        Sender::Bot {} => (bot_author(&state, &found).await?, None),
    };
    // An agent's reply into a conversation the bot still has takes it first, as in the
    // console (so the bot says nothing more).
    if let Some(agent_id) = &agent_id
        && !note
        && found.state == ConversationState::Bot
        && let Err(err) = state
            .routing
            .take(agent_id, &found.site_id, &found.id)
            .await
    {
        tracing::info!(error = %err, conversation = %found.id, "api send: the agent cannot take it");
        return Err(conflict(
            ErrorCode::Forbidden,
            "the bot has this conversation and the agent cannot take it (offline or at capacity)",
        ));
    }
    let appended = conversation::post_message(
        &state,
        &found.site_id,
        NewMessage {
            conversation: found.id.clone(),
            kind: if note {
                MessageKind::Note
            } else {
                MessageKind::Text
            },
            author,
            text,
            client_id: request.client_id.clone(),
            quick_replies: Vec::new(),
            rule: None,
            event: None,
            at: now_ms(),
            only_in: None,
        },
    )
    .await
    .map_err(store_error)?;
    if agent_id.is_some() && !note && !appended.duplicate {
        state
            .routing
            .send(crate::routing::Command::Responded {
                conversation: found.id.clone(),
            })
            .await;
    }
    Ok((
        StatusCode::CREATED,
        Json(Sent {
            message: MessageV1::from(&appended.message),
            duplicate: appended.duplicate,
        }),
    )
        .into_response())
}

/// The bot of the conversation's site, named in the visitor's language.
async fn bot_author(state: &AppState, found: &Conversation) -> Result<Author, ApiError> {
    let site = state
        .store
        .site_by_id(&found.site_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let settings = crate::site::SiteSettings::parse(&site.settings);
    let rules = state.bot.for_site(&site, &settings);
    let lang = found
        .visitor_locale
        .as_deref()
        .and_then(salam_bot::Lang::parse)
        .unwrap_or(salam_bot::Lang::En);
    Ok(conversation::bot_author(&rules, lang))
}

/// Closes a conversation (the visitor sees it closed and is asked for a rating).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/close",
    operation_id = "close_conversation",
    tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body(content = Option<CloseRequest>, description = "Optional: the agent to name"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Closed now, or closed already (`closed: false`)", body = Closed),
        (status = 404, description = "No such conversation, or no such agent, in this site", body = ErrorBody),
    )
)]
pub async fn close(
    State(state): State<AppState>,
    caller: ApiCaller<Write>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let found = of_site(&state, caller.site_id(), &id).await?;
    // The body is optional: none, or `null`, is `{}`.
    let request: CloseRequest = if body.trim_ascii().is_empty() {
        CloseRequest::default()
    } else {
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadJson,
                "the body is not JSON",
            )
        })?;
        match value {
            serde_json::Value::Null => CloseRequest::default(),
            value @ serde_json::Value::Object(_) => serde_json::from_value(value)
                .map_err(|_| invalid("the body does not fit CloseRequest"))?,
            _ => return Err(invalid("the body must be a JSON object")),
        }
    };
    let name = match &request.agent_id {
        Some(agent_id) => site_agent(&state, caller.site_id(), agent_id).await?.name,
        None => caller.token.name.clone(),
    };
    let reason = SystemEvent::new(EventCode::ClosedByAgent, &[("agent", &name)]);
    let closed = conversation::close(&state, &found.id, reason)
        .await
        .map_err(store_error)?;
    let now = of_site(&state, caller.site_id(), &id).await?;
    Ok(Json(Closed {
        closed,
        conversation: ConversationV1::from(&now),
    })
    .into_response())
}
