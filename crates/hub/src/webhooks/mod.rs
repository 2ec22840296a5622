//! Webhooks per site (issue 17): signed HTTP callbacks, delivered at least once from a
//! durable outbox in the store. See docs/webhooks.md.
//!
//! - [`events`]: the event types and their payloads, emitted where things happen for
//!   everyone (conversation.rs, the routing executor, ratings, offline requests,
//!   alerts), never in a WebSocket frame handler.
//! - [`Webhooks::emit`]: queues an event's fan-out as one job of the store's writer,
//!   right after the commit of what caused it; it waits only for room in the writer's
//!   queue, never for HTTP. A bounded wake-up (a [`tokio::sync::Notify`]) tells the
//!   dispatcher once the rows are committed; the table is the truth.
//! - [`Webhooks::recover`]: at start, `message.created` for the messages a crash left
//!   marked (the store marks a message of a site with webhooks in its own transaction
//!   until its event is in the outbox), so no committed message's event is lost.
//! - [`dispatch`]: the task that delivers due rows, with retries, ordering per
//!   conversation and endpoint, bounded concurrency and automatic disabling.
//! - [`sign`]: the `Salam-Signature` header.
//!
//! The admins' REST endpoints are in [`crate::webhook_admin`] (above the state and the
//! extractors; this module stays below them, so routing and the conversation
//! operations can emit events).

pub mod dispatch;
pub mod events;
pub mod sign;

use crate::clock::now_ms;
use events::EventType;
use salam_store::{Store, StoreError, WebhookEvent};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// The hub's webhook handle: cheap to clone.
#[derive(Clone)]
pub struct Webhooks(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    /// Sites with at least one enabled endpoint: events of other sites are not even
    /// queued (most sites have none, and the message path pays nothing for them).
    /// Refreshed after every change to endpoints. A std lock, never held across an
    /// `.await`.
    sites: RwLock<HashSet<String>>,
    /// Wakes the dispatcher (a stored permit at most: bounded).
    wake: Notify,
    /// Tells the other hubs of a cluster to refresh too.
    notifier: crate::peers::Notifier,
}

/// Marked messages emitted at one start at most (a crash leaves the few of one
/// writer batch; more wait for the next start).
const RECOVER_AT_START: u32 = 10_000;

/// An event about to be emitted.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub site_id: String,
    pub conversation_id: Option<String>,
    /// The message's sequence number, or the conversation's last one.
    pub seq: Option<u64>,
    /// An internal note (only endpoints with `include_notes` get it).
    pub note: bool,
    pub data: serde_json::Value,
}

impl Webhooks {
    /// Loads which sites have endpoints.
    pub async fn load(store: Arc<dyn Store>) -> Result<Webhooks, StoreError> {
        let webhooks = Webhooks(Arc::new(Inner {
            store,
            sites: RwLock::new(HashSet::new()),
            wake: Notify::new(),
            notifier: crate::peers::Notifier::default(),
        }));
        webhooks.refresh_here().await?;
        Ok(webhooks)
    }

    /// Reloads which sites have an enabled endpoint (after any change to endpoints),
    /// here and on the other hubs of a cluster.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        self.refresh_here().await?;
        self.0.notifier.webhooks_changed();
        Ok(())
    }

    /// The notices to the other hubs (connected once the bus is up).
    pub fn notifier(&self) -> &crate::peers::Notifier {
        &self.0.notifier
    }

    /// [`Webhooks::refresh`] on this hub only (another hub announced it).
    pub async fn refresh_here(&self) -> Result<(), StoreError> {
        let listed = self.0.store.webhook_sites().await?;
        // The store marks these sites' messages until their events are in the outbox.
        self.0.store.remember_webhook_sites(&listed);
        let sites: HashSet<String> = listed.into_iter().collect();
        *self.0.sites.write().unwrap_or_else(|e| e.into_inner()) = sites;
        self.wake();
        Ok(())
    }

    fn active(&self, site_id: &str) -> bool {
        self.0
            .sites
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(site_id)
    }

    /// At start: emits `message.created` for the committed messages whose event a
    /// crash kept out of the outbox (the store's marks; see `salam_store::webhooks`).
    /// Returns how many were emitted.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let pending = self
            .0
            .store
            .webhook_pending_messages(RECOVER_AT_START)
            .await?;
        let count = pending.len();
        for (site_id, message) in &pending {
            events::message(self, site_id, message).await;
        }
        if count > 0 {
            tracing::warn!(
                events = count,
                "message.created events a crash kept out of the webhook outbox were queued again"
            );
        }
        Ok(count)
    }

    /// Tells the dispatcher to look at the outbox now.
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.0.wake.notified().await;
    }

    /// Queues an event for the site's endpoints, after the commit of what caused it.
    /// Waits only for room in the store's writer queue (like a message does); the
    /// fan-out is committed with the writer's next batch. Never fails the caller: a
    /// failure is logged (the cause is committed; see "Durability" in docs/webhooks.md).
    pub async fn emit(&self, event: Event) {
        if !self.active(&event.site_id) {
            return;
        }
        let kind = event.kind;
        let queued = WebhookEvent {
            event_id: format!("evt_{}", crate::auth::random_token(18)),
            event_type: kind.as_str().to_owned(),
            site_id: event.site_id.clone(),
            conversation_id: event.conversation_id.clone(),
            seq: event.seq,
            note: event.note,
            body: Vec::new(),
            created_at: now_ms(),
        };
        let body = events::body(&queued, &event);
        let queued = WebhookEvent { body, ..queued };
        match self.0.store.enqueue_webhook_event(queued).await {
            Ok(pending) => {
                let webhooks = self.clone();
                tokio::spawn(async move {
                    match pending.await {
                        Ok(0) => {}
                        Ok(_) => webhooks.wake(),
                        Err(err) => {
                            tracing::warn!(error = %err, event = kind.as_str(), "webhook event not stored")
                        }
                    }
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, event = kind.as_str(), "webhook event not queued")
            }
        }
    }
}
