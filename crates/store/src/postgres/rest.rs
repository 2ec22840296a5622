//! The REST API's tables: API tokens, conversation pages, contacts (SQLite:
//! `crate::api_tokens`, `crate::api_pages`, `crate::contacts`) and webhooks
//! (`crate::webhooks`).

use super::PostgresStore;
use crate::*;

pub(super) async fn create_api_token(
    store: &PostgresStore,
    token: NewApiToken,
) -> Result<ApiToken, StoreError> {
    let _ = (store, token);
    Err(super::unported("create_api_token"))
}

pub(super) async fn api_tokens(
    store: &PostgresStore,
    site_id: &str,
) -> Result<Vec<ApiToken>, StoreError> {
    let _ = (store, site_id);
    Err(super::unported("api_tokens"))
}

pub(super) async fn api_token_by_hash(
    store: &PostgresStore,
    token_hash: &str,
) -> Result<Option<ApiToken>, StoreError> {
    let _ = (store, token_hash);
    Err(super::unported("api_token_by_hash"))
}

pub(super) async fn revoke_api_token(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, site_id, id, now);
    Err(super::unported("revoke_api_token"))
}

pub(super) async fn touch_api_token(
    store: &PostgresStore,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, id, now);
    Err(super::unported("touch_api_token"))
}

pub(super) async fn conversation_page(
    store: &PostgresStore,
    site_id: &str,
    page: ConversationPage,
) -> Result<Vec<Conversation>, StoreError> {
    let _ = (store, site_id, page);
    Err(super::unported("conversation_page"))
}

pub(super) async fn create_contact(
    store: &PostgresStore,
    contact: NewContact,
) -> Result<Contact, StoreError> {
    let _ = (store, contact);
    Err(super::unported("create_contact"))
}

pub(super) async fn update_contact(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
    update: ContactUpdate,
) -> Result<Contact, StoreError> {
    let _ = (store, site_id, id, update);
    Err(super::unported("update_contact"))
}

pub(super) async fn contact(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
) -> Result<Option<Contact>, StoreError> {
    let _ = (store, site_id, id);
    Err(super::unported("contact"))
}

pub(super) async fn contact_by_external_id(
    store: &PostgresStore,
    site_id: &str,
    external_id: &str,
) -> Result<Option<Contact>, StoreError> {
    let _ = (store, site_id, external_id);
    Err(super::unported("contact_by_external_id"))
}

pub(super) async fn find_contacts(
    store: &PostgresStore,
    site_id: &str,
    search: ContactSearch,
) -> Result<Vec<Contact>, StoreError> {
    let _ = (store, site_id, search);
    Err(super::unported("find_contacts"))
}

pub(super) async fn contact_changes(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
    limit: u32,
) -> Result<Vec<AttributeChange>, StoreError> {
    let _ = (store, site_id, id, limit);
    Err(super::unported("contact_changes"))
}

pub(super) async fn create_webhook_endpoint(
    store: &PostgresStore,
    endpoint: NewWebhookEndpoint,
) -> Result<WebhookEndpoint, StoreError> {
    let _ = (store, endpoint);
    Err(super::unported("create_webhook_endpoint"))
}

pub(super) async fn webhook_endpoints(
    store: &PostgresStore,
    site_ids: &[String],
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let _ = (store, site_ids);
    Err(super::unported("webhook_endpoints"))
}

pub(super) async fn webhook_endpoint(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let _ = (store, id);
    Err(super::unported("webhook_endpoint"))
}

pub(super) async fn update_webhook_endpoint(
    store: &PostgresStore,
    id: &str,
    update: WebhookEndpointUpdate,
) -> Result<WebhookEndpoint, StoreError> {
    let _ = (store, id, update);
    Err(super::unported("update_webhook_endpoint"))
}

pub(super) async fn delete_webhook_endpoint(
    store: &PostgresStore,
    id: &str,
) -> Result<(), StoreError> {
    let _ = (store, id);
    Err(super::unported("delete_webhook_endpoint"))
}

pub(super) async fn rotate_webhook_secret(
    store: &PostgresStore,
    id: &str,
    secret: &str,
    previous_expires_at: i64,
) -> Result<WebhookEndpoint, StoreError> {
    let _ = (store, id, secret, previous_expires_at);
    Err(super::unported("rotate_webhook_secret"))
}

pub(super) async fn webhook_sites(store: &PostgresStore) -> Result<Vec<String>, StoreError> {
    let _ = store;
    Err(super::unported("webhook_sites"))
}

pub(super) async fn webhook_pending_messages(
    store: &PostgresStore,
    limit: u32,
) -> Result<Vec<(String, Message)>, StoreError> {
    let _ = (store, limit);
    Err(super::unported("webhook_pending_messages"))
}

pub(super) async fn enqueue_webhook_event(
    store: &PostgresStore,
    event: WebhookEvent,
) -> Result<PendingWebhook, StoreError> {
    let _ = (store, event);
    Err(super::unported("enqueue_webhook_event"))
}

pub(super) async fn due_webhook_deliveries(
    store: &PostgresStore,
    now: i64,
    settle_ms: i64,
    limit: u32,
) -> Result<Vec<DueDelivery>, StoreError> {
    let _ = (store, now, settle_ms, limit);
    Err(super::unported("due_webhook_deliveries"))
}

pub(super) async fn next_webhook_due(
    store: &PostgresStore,
    settle_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let _ = (store, settle_ms);
    Err(super::unported("next_webhook_due"))
}

pub(super) async fn record_webhook_attempt(
    store: &PostgresStore,
    attempt: WebhookAttempt,
    policy: DisablePolicy,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let _ = (store, attempt, policy);
    Err(super::unported("record_webhook_attempt"))
}

pub(super) async fn webhook_deliveries(
    store: &PostgresStore,
    endpoint_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let _ = (store, endpoint_id, before, limit);
    Err(super::unported("webhook_deliveries"))
}

pub(super) async fn webhook_delivery(
    store: &PostgresStore,
    id: i64,
) -> Result<Option<WebhookDelivery>, StoreError> {
    let _ = (store, id);
    Err(super::unported("webhook_delivery"))
}

pub(super) async fn redeliver_webhook(
    store: &PostgresStore,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, id, now);
    Err(super::unported("redeliver_webhook"))
}
