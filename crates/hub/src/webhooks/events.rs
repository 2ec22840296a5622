//! The webhook events and their payloads.
//!
//! Every body is `{"id", "type", "created_at", "site_id", "conversation_id", "seq",
//! "data"}`: `id` is the event's stable id (the same on every retry and redelivery, so
//! receivers drop duplicates), `created_at` is in milliseconds since the Unix epoch,
//! `seq` is the message's sequence number in its conversation or, for other events,
//! the conversation's last one when it happened (receivers order a conversation's
//! events by it).

use super::{Event, Webhooks};
use salam_protocol::{AuthorKind, ConversationState, Message, MessageKind};
use salam_store::{Alert, Conversation, OfflineRequest, WebhookEvent};
use serde_json::{Value, json};

/// The event types an endpoint subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ConversationCreated,
    ConversationQueued,
    ConversationAssigned,
    ConversationTransferred,
    ConversationClosed,
    MessageCreated,
    RatingCreated,
    OfflineRequestCreated,
    AlertCreated,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::ConversationCreated,
        EventType::ConversationQueued,
        EventType::ConversationAssigned,
        EventType::ConversationTransferred,
        EventType::ConversationClosed,
        EventType::MessageCreated,
        EventType::RatingCreated,
        EventType::OfflineRequestCreated,
        EventType::AlertCreated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversationCreated => "conversation.created",
            EventType::ConversationQueued => "conversation.queued",
            EventType::ConversationAssigned => "conversation.assigned",
            EventType::ConversationTransferred => "conversation.transferred",
            EventType::ConversationClosed => "conversation.closed",
            EventType::MessageCreated => "message.created",
            EventType::RatingCreated => "rating.created",
            EventType::OfflineRequestCreated => "offline_request.created",
            EventType::AlertCreated => "alert.created",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// The exact bytes of an event's body.
pub(super) fn body(queued: &WebhookEvent, event: &Event) -> Vec<u8> {
    let body = json!({
        "id": queued.event_id,
        "type": queued.event_type,
        "created_at": queued.created_at,
        "site_id": queued.site_id,
        "conversation_id": queued.conversation_id,
        "seq": event.seq,
        "data": event.data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn conversation_json(conversation: &Conversation) -> Value {
    json!({
        "id": conversation.id,
        "state": conversation.state,
        "visitor_id": conversation.visitor_id,
        "agent_id": conversation.agent_id,
        "agent_name": conversation.agent_name,
        "department": conversation.department,
        "priority": conversation.priority,
        "created_at": conversation.created_at,
        "last_seq": conversation.last_seq,
    })
}

/// `conversation.created`.
pub async fn created(webhooks: &Webhooks, conversation: &Conversation) {
    emit_conversation(webhooks, EventType::ConversationCreated, conversation, None).await;
}

/// A committed state change: `conversation.queued`, `.assigned`, `.transferred` or
/// `.closed` (`transferred`: the routing moved it to another agent or department).
/// `line` is the change's system line, if any.
pub async fn state_changed(
    webhooks: &Webhooks,
    conversation: &Conversation,
    line: Option<&Message>,
    transferred: bool,
) {
    let kind = match conversation.state {
        _ if transferred => EventType::ConversationTransferred,
        ConversationState::Queued => EventType::ConversationQueued,
        ConversationState::Assigned => EventType::ConversationAssigned,
        ConversationState::Closed => EventType::ConversationClosed,
        ConversationState::Bot => return,
    };
    emit_conversation(webhooks, kind, conversation, line).await;
}

async fn emit_conversation(
    webhooks: &Webhooks,
    kind: EventType,
    conversation: &Conversation,
    line: Option<&Message>,
) {
    let mut data = json!({ "conversation": conversation_json(conversation) });
    if let Some(line) = line {
        data["reason"] = json!(line.text);
        if let Some(event) = &line.event {
            data["event"] = serde_json::to_value(event).unwrap_or(Value::Null);
        }
    }
    webhooks
        .emit(Event {
            kind,
            site_id: conversation.site_id.clone(),
            conversation_id: Some(conversation.id.clone()),
            seq: Some(line.map_or(conversation.last_seq, |line| line.seq)),
            note: false,
            data,
        })
        .await;
}

/// `message.created` for a committed message of a visitor, an agent or the bot (a
/// note only reaches endpoints with `include_notes`; system lines are the state
/// events instead).
pub async fn message(webhooks: &Webhooks, site_id: &str, message: &Message) {
    if message.kind == MessageKind::Event || message.author.kind == AuthorKind::System {
        return;
    }
    webhooks
        .emit(Event {
            kind: EventType::MessageCreated,
            site_id: site_id.to_owned(),
            conversation_id: Some(message.conversation.clone()),
            seq: Some(message.seq),
            note: message.kind == MessageKind::Note,
            data: json!({ "message": message }),
        })
        .await;
}

/// `rating.created` (also when a visitor rates the same conversation again).
pub async fn rating(
    webhooks: &Webhooks,
    conversation: &Conversation,
    score: u8,
    comment: Option<&str>,
) {
    webhooks
        .emit(Event {
            kind: EventType::RatingCreated,
            site_id: conversation.site_id.clone(),
            conversation_id: Some(conversation.id.clone()),
            seq: Some(conversation.last_seq),
            note: false,
            data: json!({
                "rating": { "score": score, "comment": comment },
                "conversation": conversation_json(conversation),
            }),
        })
        .await;
}

/// `offline_request.created`.
pub async fn offline_request(webhooks: &Webhooks, id: i64, request: &OfflineRequest) {
    webhooks
        .emit(Event {
            kind: EventType::OfflineRequestCreated,
            site_id: request.site_id.clone(),
            conversation_id: request.conversation.clone(),
            seq: None,
            note: false,
            data: json!({
                "offline_request": {
                    "id": id,
                    "visitor_id": request.visitor_id,
                    "name": request.name,
                    "email": request.email,
                    "phone": request.phone,
                    "message": request.message,
                    "created_at": request.created_at,
                }
            }),
        })
        .await;
}

/// `alert.created`.
pub async fn alert(webhooks: &Webhooks, id: i64, alert: &Alert) {
    webhooks
        .emit(Event {
            kind: EventType::AlertCreated,
            site_id: alert.site_id.clone(),
            conversation_id: alert.conversation.clone(),
            seq: None,
            note: false,
            data: json!({
                "alert": {
                    "id": id,
                    "kind": alert.kind,
                    "detail": alert.detail,
                    "at": alert.at,
                }
            }),
        })
        .await;
}
