//! Visitors, conversations, compare-and-set transitions and the message log (SQLite:
//! `crate::sqlite`), key-account marks (SQLite: `crate::key_accounts`).

use super::PostgresStore;
use crate::*;

pub(super) async fn touch_visitor(
    store: &PostgresStore,
    visitor_id: &str,
    site_id: &str,
    update: VisitorUpdate,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, visitor_id, site_id, update, now);
    Err(super::unported("touch_visitor"))
}

pub(super) async fn identify_visitor(
    store: &PostgresStore,
    visitor_id: &str,
    identity: IdentityUpdate,
) -> Result<(), StoreError> {
    let _ = (store, visitor_id, identity);
    Err(super::unported("identify_visitor"))
}

pub(super) async fn visitor_external_id(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Option<String>, StoreError> {
    let _ = (store, visitor_id);
    Err(super::unported("visitor_external_id"))
}

pub(super) async fn create_conversation(
    store: &PostgresStore,
    site_id: &str,
    visitor_id: &str,
    state: ConversationState,
    now: i64,
) -> Result<Conversation, StoreError> {
    let _ = (store, site_id, visitor_id, state, now);
    Err(super::unported("create_conversation"))
}

pub(super) async fn conversation(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<Conversation>, StoreError> {
    let _ = (store, id);
    Err(super::unported("conversation"))
}

pub(super) async fn open_conversations_of_visitor(
    store: &PostgresStore,
    site_id: &str,
    visitor_id: &str,
) -> Result<Vec<Conversation>, StoreError> {
    let _ = (store, site_id, visitor_id);
    Err(super::unported("open_conversations_of_visitor"))
}

pub(super) async fn recent_closed_conversation_of_visitor(
    store: &PostgresStore,
    site_id: &str,
    visitor_id: &str,
    since: i64,
) -> Result<Option<Conversation>, StoreError> {
    let _ = (store, site_id, visitor_id, since);
    Err(super::unported("recent_closed_conversation_of_visitor"))
}

pub(super) async fn set_contact_asked(
    store: &PostgresStore,
    conversation: &str,
    at: i64,
) -> Result<(), StoreError> {
    let _ = (store, conversation, at);
    Err(super::unported("set_contact_asked"))
}

pub(super) async fn contact_pending(
    store: &PostgresStore,
    conversation: &str,
) -> Result<bool, StoreError> {
    let _ = (store, conversation);
    Err(super::unported("contact_pending"))
}

pub(super) async fn contact_of_conversation(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<OfflineRequest>, StoreError> {
    let _ = (store, conversation);
    Err(super::unported("contact_of_conversation"))
}

pub(super) async fn open_conversations_of_sites(
    store: &PostgresStore,
    site_ids: &[String],
    limit: u32,
) -> Result<Vec<Conversation>, StoreError> {
    let _ = (store, site_ids, limit);
    Err(super::unported("open_conversations_of_sites"))
}

pub(super) async fn transition(
    store: &PostgresStore,
    transition: Transition,
) -> Result<Transitioned, StoreError> {
    let _ = (store, transition);
    Err(super::unported("transition"))
}

pub(super) async fn transition_queued(
    store: &PostgresStore,
    transition: Transition,
) -> Result<PendingTransition, StoreError> {
    let _ = (store, transition);
    Err(super::unported("transition_queued"))
}

pub(super) async fn mark_read(store: &PostgresStore, id: &str) -> Result<bool, StoreError> {
    let _ = (store, id);
    Err(super::unported("mark_read"))
}

pub(super) async fn set_priority(
    store: &PostgresStore,
    id: &str,
    priority: i32,
) -> Result<(), StoreError> {
    let _ = (store, id, priority);
    Err(super::unported("set_priority"))
}

pub(super) async fn idle_conversations(
    store: &PostgresStore,
    before: i64,
    limit: u32,
) -> Result<Vec<Conversation>, StoreError> {
    let _ = (store, before, limit);
    Err(super::unported("idle_conversations"))
}

pub(super) async fn conversations_in_state(
    store: &PostgresStore,
    state: ConversationState,
) -> Result<Vec<Conversation>, StoreError> {
    let _ = (store, state);
    Err(super::unported("conversations_in_state"))
}

pub(super) async fn find_conversations(
    store: &PostgresStore,
    site_ids: &[String],
    filter: ConversationFilter,
) -> Result<Vec<Conversation>, StoreError> {
    let _ = (store, site_ids, filter);
    Err(super::unported("find_conversations"))
}

pub(super) async fn visitor(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Option<Visitor>, StoreError> {
    let _ = (store, visitor_id);
    Err(super::unported("visitor"))
}

pub(super) async fn conversations_of_visitor(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Vec<Conversation>, StoreError> {
    let _ = (store, visitor_id);
    Err(super::unported("conversations_of_visitor"))
}

pub(super) async fn append(
    store: &PostgresStore,
    message: NewMessage,
) -> Result<Appended, StoreError> {
    let _ = (store, message);
    Err(super::unported("append"))
}

pub(super) async fn append_queued(
    store: &PostgresStore,
    message: NewMessage,
) -> Result<PendingAppend, StoreError> {
    let _ = (store, message);
    Err(super::unported("append_queued"))
}

pub(super) async fn messages_after(
    store: &PostgresStore,
    conversation: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    let _ = (store, conversation, after, limit);
    Err(super::unported("messages_after"))
}

pub(super) async fn messages_before(
    store: &PostgresStore,
    conversation: &str,
    before: u64,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    let _ = (store, conversation, before, limit);
    Err(super::unported("messages_before"))
}

pub(super) async fn key_account_mark(
    store: &PostgresStore,
    conversation: &str,
    rule: &str,
) -> Result<(), StoreError> {
    let _ = (store, conversation, rule);
    Err(super::unported("key_account_mark"))
}

pub(super) async fn key_account_first_responses(
    store: &PostgresStore,
    site_ids: &[String],
    from: i64,
    to: i64,
) -> Result<Vec<i64>, StoreError> {
    let _ = (store, site_ids, from, to);
    Err(super::unported("key_account_first_responses"))
}
