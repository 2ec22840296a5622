//! E-mail as a channel (SQLite: `crate::email`).

use super::PostgresStore;
use crate::*;

pub(super) async fn email_set_channel(
    store: &PostgresStore,
    conversation: &str,
    channel: Channel,
) -> Result<(), StoreError> {
    let _ = (store, conversation, channel);
    Err(super::unported("email_set_channel"))
}

pub(super) async fn email_channel(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<Channel>, StoreError> {
    let _ = (store, conversation);
    Err(super::unported("email_channel"))
}

pub(super) async fn email_record_message(
    store: &PostgresStore,
    record: EmailRecord,
) -> Result<(), StoreError> {
    let _ = (store, record);
    Err(super::unported("email_record_message"))
}

pub(super) async fn email_thread_of(
    store: &PostgresStore,
    message_ids: Vec<String>,
) -> Result<Option<String>, StoreError> {
    let _ = (store, message_ids);
    Err(super::unported("email_thread_of"))
}

pub(super) async fn email_thread_ids(
    store: &PostgresStore,
    conversation: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let _ = (store, conversation, limit);
    Err(super::unported("email_thread_ids"))
}

pub(super) async fn email_record_event(
    store: &PostgresStore,
    event: EmailEvent,
) -> Result<(), StoreError> {
    let _ = (store, event);
    Err(super::unported("email_record_event"))
}

pub(super) async fn email_events(
    store: &PostgresStore,
    limit: u32,
) -> Result<Vec<EmailEvent>, StoreError> {
    let _ = (store, limit);
    Err(super::unported("email_events"))
}

pub(super) async fn email_failing(
    store: &PostgresStore,
    address: &str,
) -> Result<bool, StoreError> {
    let _ = (store, address);
    Err(super::unported("email_failing"))
}

pub(super) async fn email_visitor(
    store: &PostgresStore,
    site_id: &str,
    email: &str,
    name: Option<String>,
    new_id: &str,
    now: i64,
) -> Result<String, StoreError> {
    let _ = (store, site_id, email, name, new_id, now);
    Err(super::unported("email_visitor"))
}

pub(super) async fn email_schedule_unseen(
    store: &PostgresStore,
    conversation: &str,
    seq: u64,
    due_at: i64,
) -> Result<(), StoreError> {
    let _ = (store, conversation, seq, due_at);
    Err(super::unported("email_schedule_unseen"))
}

pub(super) async fn email_visitor_seen(
    store: &PostgresStore,
    conversation: &str,
    seq: u64,
) -> Result<(), StoreError> {
    let _ = (store, conversation, seq);
    Err(super::unported("email_visitor_seen"))
}

pub(super) async fn email_due_unseen(
    store: &PostgresStore,
    now: i64,
    limit: u32,
) -> Result<Vec<UnseenDue>, StoreError> {
    let _ = (store, now, limit);
    Err(super::unported("email_due_unseen"))
}

pub(super) async fn email_request_transcript(
    store: &PostgresStore,
    request: TranscriptRequest,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, request, now);
    Err(super::unported("email_request_transcript"))
}

pub(super) async fn email_take_transcript(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<TranscriptRequest>, StoreError> {
    let _ = (store, conversation);
    Err(super::unported("email_take_transcript"))
}

pub(super) async fn email_take_missed(
    store: &PostgresStore,
    queued_before: i64,
    now: i64,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let _ = (store, queued_before, now, limit);
    Err(super::unported("email_take_missed"))
}
