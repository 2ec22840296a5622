//! Rows to values, shared by the PostgreSQL areas: the same columns (and the same
//! constants' names) as the SQLite backend's mappers in `crate::sqlite`, read with the
//! PostgreSQL types of [`super::schema`] (`BIGINT` as `i64`, flags as `bool`).

use crate::sqlite::author_kind_from;
use crate::*;
use pg::Row;

pub(crate) const SITE_COLUMNS: &str = "id, name, key, origins, created_at, settings, identity_secret, \
     previous_identity_secret, identity_secret_rotated_at";

pub(crate) fn site_from_row(row: &Row) -> Site {
    let origins: String = row.get(3);
    Site {
        id: row.get(0),
        name: row.get(1),
        key: row.get(2),
        origins: serde_json::from_str(&origins).unwrap_or_default(),
        created_at: row.get(4),
        settings: row.get(5),
        identity_secret: row.get(6),
        previous_identity_secret: row.get(7),
        identity_secret_rotated_at: row.get(8),
    }
}

/// The columns [`conversation_from_row`] reads; append `WHERE …` with `c.` names.
pub(crate) const CONVERSATION_SELECT: &str = "SELECT c.id, c.site_id, c.visitor_id, v.name, c.state, \
     c.agent_id, a.name, c.last_seq, c.created_at, c.updated_at, c.department, c.priority, \
     c.queued_at, c.unread, c.preview, c.preview_author, c.preview_at, v.email, v.locale, \
     c.channel \
     FROM conversations c LEFT JOIN visitors v ON v.id = c.visitor_id \
     LEFT JOIN agents a ON a.id = c.agent_id";

pub(crate) fn conversation_from_row(row: &Row) -> Conversation {
    let state: String = row.get(4);
    Conversation {
        id: row.get(0),
        site_id: row.get(1),
        visitor_id: row.get(2),
        visitor_name: row.get(3),
        visitor_email: row.get(17),
        visitor_locale: row.get(18),
        state: ConversationState::parse(&state).unwrap_or(ConversationState::Closed),
        agent_id: row.get(5),
        agent_name: row.get(6),
        last_seq: row.get::<_, i64>(7).max(0) as u64,
        created_at: row.get(8),
        updated_at: row.get(9),
        department: row.get(10),
        priority: row
            .get::<_, i64>(11)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        queued_at: row.get(12),
        unread: row.get::<_, i64>(13).clamp(0, u32::MAX as i64) as u32,
        preview: match (
            row.get::<_, Option<String>>(14),
            row.get::<_, Option<String>>(15),
        ) {
            (Some(text), Some(author)) => Some(Preview {
                author: author_kind_from(&author),
                text,
                at: row.get::<_, Option<i64>>(16).unwrap_or(0),
            }),
            _ => None,
        },
        channel: salam_protocol::Channel::parse(&row.get::<_, String>(19))
            .unwrap_or(salam_protocol::Channel::Chat),
    }
}

pub(crate) const MESSAGE_COLUMNS: &str = "conversation_id, seq, kind, author_kind, author_id, author_name, text, \
     at, client_id, quick_replies, rule, event";

pub(crate) fn message_from_row(row: &Row) -> Message {
    let kind: String = row.get(2);
    let author_kind: String = row.get(3);
    let author_id: String = row.get(4);
    let quick_replies: Option<String> = row.get(9);
    Message {
        conversation: row.get(0),
        seq: row.get::<_, i64>(1).max(0) as u64,
        kind: match kind.as_str() {
            "note" => MessageKind::Note,
            "event" => MessageKind::Event,
            _ => MessageKind::Text,
        },
        author: Author {
            kind: author_kind_from(&author_kind),
            id: (!author_id.is_empty()).then_some(author_id),
            name: row.get(5),
        },
        text: row.get(6),
        at: row.get(7),
        client_id: row.get(8),
        quick_replies: quick_replies
            .and_then(|json| serde_json::from_str::<Vec<QuickReply>>(&json).ok())
            .unwrap_or_default(),
        rule: row.get(10),
        event: row
            .get::<_, Option<String>>(11)
            .and_then(|json| serde_json::from_str::<SystemEvent>(&json).ok()),
    }
}

pub(crate) const VISITOR_COLUMNS: &str = "id, site_id, name, email, phone, external_id, locale, \
     page_url, page_title, referrer, user_agent, first_seen, last_seen, verified, attributes";

pub(crate) fn visitor_from_row(row: &Row) -> Visitor {
    Visitor {
        id: row.get(0),
        site_id: row.get(1),
        name: row.get(2),
        email: row.get(3),
        phone: row.get(4),
        external_id: row.get(5),
        locale: row.get(6),
        page_url: row.get(7),
        page_title: row.get(8),
        referrer: row.get(9),
        user_agent: row.get(10),
        first_seen: row.get(11),
        last_seen: row.get(12),
        verified: serde_json::from_str(&row.get::<_, String>(13)).unwrap_or_default(),
        attributes: row
            .get::<_, Option<String>>(14)
            .and_then(|json| serde_json::from_str(&json).ok()),
    }
}

pub(crate) const OFFLINE_REQUEST_COLUMNS: &str =
    "id, site_id, visitor_id, conversation_id, name, email, phone, message, created_at, done_at";

pub(crate) fn offline_request_from_row(row: &Row) -> OfflineRequest {
    OfflineRequest {
        id: row.get(0),
        site_id: row.get(1),
        visitor_id: row.get(2),
        conversation: row.get(3),
        name: row.get(4),
        email: row.get(5),
        phone: row.get(6),
        message: row.get(7),
        created_at: row.get(8),
        done_at: row.get(9),
    }
}
