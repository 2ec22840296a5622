//! Webhooks in the SQLite store (issue 17): endpoints per site and the durable outbox.
//!
//! The outbox is the truth. An event is fanned out to the site's subscribed, enabled
//! endpoints in **one writer job** ([`SqliteStore::webhook_enqueue`]), which writes one
//! row per (event, endpoint) holding the exact bytes that are later signed and sent.
//! The job goes through the group-commit writer like every other write, so it shares
//! its batch (and its commit) with whatever is being written at that moment and never
//! adds a commit of its own on a busy hub.
//!
//! A delivery is due when it is `pending` or `retrying`, its `next_attempt_at` has
//! passed, its endpoint is enabled, and no earlier row of the same endpoint and
//! conversation is still waiting: the events of one conversation reach an endpoint in
//! order (a later one waits until the earlier is delivered or dead).

use crate::sqlite::{MESSAGE_COLUMNS, SqliteStore, map_err, message_from_row};
use crate::{NewMessage, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};
use salam_protocol::{AuthorKind, Message, MessageKind};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The sites with an enabled endpoint, as the hub last told the store
/// ([`crate::Store::remember_webhook_sites`]). Read on the writer thread for every
/// message; a std lock, never held across an `.await`.
pub type WebhookSites = Arc<RwLock<HashSet<String>>>;

/// In a message's own transaction: a message that will be a `message.created` event
/// (a text or a note, not an event line or a system line) of a site with webhooks
/// leaves a mark in `webhook_pending`, which the outbox job of its event deletes (in
/// the outbox's transaction). A crash between the two commits leaves the mark, and the
/// hub emits the event at its next start ([`crate::Store::webhook_pending_messages`]):
/// a committed message's event is never lost. Sites without webhooks pay one look into
/// an in-memory set.
pub(crate) fn mark_pending(
    connection: &Connection,
    sites: &WebhookSites,
    site_id: &str,
    message: &NewMessage,
    seq: i64,
) -> Result<(), StoreError> {
    if message.kind == MessageKind::Event || message.author.kind == AuthorKind::System {
        return Ok(());
    }
    let marked = sites
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .contains(site_id);
    if marked {
        connection
            .prepare_cached(
                "INSERT OR IGNORE INTO webhook_pending (conversation_id, seq) VALUES (?1, ?2)",
            )
            .map_err(map_err)?
            .execute(params![message.conversation, seq])
            .map_err(map_err)?;
    }
    Ok(())
}

/// A webhook endpoint of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub site_id: String,
    pub url: String,
    /// Event types it is sent (`message.created`, ...).
    pub events: Vec<String>,
    /// Whether agents' internal notes are sent as `message.created`.
    pub include_notes: bool,
    pub enabled: bool,
    /// Signs every delivery.
    pub secret: String,
    /// After a rotation, the previous secret also signs until `previous_expires_at` (ms).
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<i64>,
    /// The agent who created it.
    pub created_by: String,
    pub created_at: i64,
    /// Failed attempts in a row, and when the first of them was (ms).
    pub consecutive_failures: u32,
    pub failing_since: Option<i64>,
    /// Why it was disabled by the hub (`None`: enabled, or disabled by an admin).
    pub disabled_reason: Option<String>,
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub site_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub include_notes: bool,
    pub secret: String,
    pub created_by: String,
    pub now: i64,
}

/// Changes to an endpoint (`None`: unchanged). Enabling it again clears its failures.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub include_notes: Option<bool>,
    pub enabled: Option<bool>,
}

/// One event to fan out to the site's endpoints.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    /// Stable id (`evt_…`), the same on every retry and redelivery.
    pub event_id: String,
    pub event_type: String,
    pub site_id: String,
    /// Events of one conversation are delivered to an endpoint in order: by `seq`
    /// (`None`: after every event with one), then in the order they were queued.
    pub conversation_id: Option<String>,
    pub seq: Option<u64>,
    /// An internal note: only endpoints with `include_notes` get it.
    pub note: bool,
    /// The exact bytes to sign and send.
    pub body: Vec<u8>,
    pub created_at: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not tried yet (or queued again by hand).
    Pending,
    /// Failed; tried again at `next_attempt_at`.
    Retrying,
    /// The endpoint answered 2xx.
    Delivered,
    /// Failed too often; no more attempts (unless redelivered by hand).
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    fn parse(text: &str) -> Option<DeliveryStatus> {
        Some(match text {
            "pending" => DeliveryStatus::Pending,
            "retrying" => DeliveryStatus::Retrying,
            "delivered" => DeliveryStatus::Delivered,
            "dead" => DeliveryStatus::Dead,
            _ => return None,
        })
    }
}

/// A row of the outbox: one event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub conversation_id: Option<String>,
    pub body: Vec<u8>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// The HTTP status of the last attempt (`None`: no answer).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

/// A due delivery with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<i64>,
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; try again at this time (ms).
    Retry(i64),
    /// Failed for the last time.
    Dead,
}

/// One attempt's result, to record.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub delivery_id: i64,
    pub endpoint_id: String,
    pub at: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
}

/// When an endpoint that keeps failing is disabled: at least `failures` failed
/// attempts in a row, spread over at least `over_ms`.
#[derive(Debug, Clone, Copy)]
pub struct DisablePolicy {
    pub failures: u32,
    pub over_ms: i64,
}

/// A waiting delivery `d` is the head of its (endpoint, conversation) line: no other
/// waiting delivery of the same endpoint and conversation comes before it (by `seq`,
/// a missing `seq` last, then by id).
const HEAD: &str = "(d.conversation_id IS NULL OR NOT EXISTS ( \
     SELECT 1 FROM webhook_deliveries p \
     WHERE p.endpoint_id = d.endpoint_id AND p.conversation_id = d.conversation_id \
     AND p.status IN ('pending', 'retrying') AND p.id <> d.id \
     AND (coalesce(p.seq, 9223372036854775807), p.id) \
         < (coalesce(d.seq, 9223372036854775807), d.id)))";

const ENDPOINT_COLUMNS: &str = "id, site_id, url, events, include_notes, enabled, secret, \
     previous_secret, previous_expires_at, created_by, created_at, consecutive_failures, \
     failing_since, disabled_reason";

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.event_id, d.event_type, \
     d.conversation_id, d.body, d.status, d.attempts, d.next_attempt_at, d.last_status, \
     d.last_error, d.last_duration_ms, d.last_attempt_at, d.delivered_at, d.created_at";

fn endpoint_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    let events: String = row.get(3)?;
    Ok(WebhookEndpoint {
        id: row.get(0)?,
        site_id: row.get(1)?,
        url: row.get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        include_notes: row.get(4)?,
        enabled: row.get(5)?,
        secret: row.get(6)?,
        previous_secret: row.get(7)?,
        previous_expires_at: row.get(8)?,
        created_by: row.get(9)?,
        created_at: row.get(10)?,
        consecutive_failures: row.get::<_, i64>(11)?.max(0) as u32,
        failing_since: row.get(12)?,
        disabled_reason: row.get(13)?,
    })
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookDelivery> {
    let status: String = row.get(6)?;
    Ok(WebhookDelivery {
        id: row.get(0)?,
        endpoint_id: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        conversation_id: row.get(4)?,
        body: row.get(5)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown delivery status {status:?}").into(),
            )
        })?,
        attempts: row.get::<_, i64>(7)?.max(0) as u32,
        next_attempt_at: row.get(8)?,
        last_status: row
            .get::<_, Option<i64>>(9)?
            .and_then(|code| u16::try_from(code).ok()),
        last_error: row.get(10)?,
        last_duration_ms: row.get(11)?,
        last_attempt_at: row.get(12)?,
        delivered_at: row.get(13)?,
        created_at: row.get(14)?,
    })
}

fn endpoint_in(connection: &Connection, id: &str) -> Result<WebhookEndpoint, StoreError> {
    connection
        .query_row(
            &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"),
            [id],
            endpoint_from_row,
        )
        .optional()
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)
}

fn events_json(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".into())
}

/// Fans an event out to the site's endpoints in the writer's transaction: the number
/// of deliveries written.
fn enqueue_in(connection: &Connection, event: &WebhookEvent) -> Result<usize, StoreError> {
    if event.event_type == "message.created"
        && let (Some(conversation), Some(seq)) = (&event.conversation_id, event.seq)
    {
        connection
            .prepare_cached("DELETE FROM webhook_pending WHERE conversation_id = ?1 AND seq = ?2")
            .map_err(map_err)?
            .execute(params![conversation, seq.min(i64::MAX as u64) as i64])
            .map_err(map_err)?;
    }
    let mut statement = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO webhook_deliveries (endpoint_id, event_id, event_type, \
             conversation_id, seq, body, status, attempts, next_attempt_at, created_at) \
             SELECT e.id, ?1, ?2, ?3, ?8, ?4, 'pending', 0, ?5, ?5 FROM webhook_endpoints e \
             WHERE e.site_id = ?6 AND e.enabled = 1 AND (?7 = 0 OR e.include_notes = 1) \
             AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE value = ?2) \
             ORDER BY e.id",
        )
        .map_err(map_err)?;
    statement
        .execute(params![
            event.event_id,
            event.event_type,
            event.conversation_id,
            event.body,
            event.created_at,
            event.site_id,
            event.note,
            event.seq.map(|seq| seq.min(i64::MAX as u64) as i64),
        ])
        .map_err(map_err)
}

/// Records an attempt; returns the endpoint if this attempt disabled it.
fn record_in(
    connection: &Connection,
    attempt: &WebhookAttempt,
    policy: DisablePolicy,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let (status, next, delivered_at) = match attempt.outcome {
        AttemptOutcome::Delivered => ("delivered", attempt.at, Some(attempt.at)),
        AttemptOutcome::Retry(next) => ("retrying", next, None),
        AttemptOutcome::Dead => ("dead", attempt.at, None),
    };
    connection
        .execute(
            "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1, \
             next_attempt_at = ?3, last_status = ?4, last_error = ?5, last_duration_ms = ?6, \
             last_attempt_at = ?7, delivered_at = coalesce(?8, delivered_at) WHERE id = ?1",
            params![
                attempt.delivery_id,
                status,
                next,
                attempt.status.map(i64::from),
                attempt.error,
                attempt.duration_ms,
                attempt.at,
                delivered_at,
            ],
        )
        .map_err(map_err)?;
    if attempt.outcome == AttemptOutcome::Delivered {
        connection
            .execute(
                "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL \
                 WHERE id = ?1",
                [&attempt.endpoint_id],
            )
            .map_err(map_err)?;
        return Ok(None);
    }
    connection
        .execute(
            "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, \
             failing_since = coalesce(failing_since, ?2) WHERE id = ?1",
            params![attempt.endpoint_id, attempt.at],
        )
        .map_err(map_err)?;
    let disabled = connection
        .execute(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?4 \
             WHERE id = ?1 AND enabled = 1 AND consecutive_failures >= ?2 \
             AND ?3 - failing_since >= ?5",
            params![
                attempt.endpoint_id,
                policy.failures.max(1),
                attempt.at,
                "failing",
                policy.over_ms.max(0),
            ],
        )
        .map_err(map_err)?;
    if disabled == 0 {
        return Ok(None);
    }
    endpoint_in(connection, &attempt.endpoint_id).map(Some)
}

impl SqliteStore {
    pub(crate) async fn webhook_create(
        &self,
        new: NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint, StoreError> {
        let id = crate::sqlite::new_id("wh");
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO webhook_endpoints (id, site_id, url, events, include_notes, \
                         enabled, secret, created_by, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8)",
                        params![
                            id,
                            new.site_id,
                            new.url,
                            events_json(&new.events),
                            new.include_notes,
                            new.secret,
                            new.created_by,
                            new.now,
                        ],
                    )
                    .map_err(map_err)?;
                endpoint_in(connection, &id)
            })
            .await
    }

    pub(crate) async fn webhook_list(
        &self,
        site_ids: &[String],
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE site_id = ?1 \
                     ORDER BY created_at, id"
                ))
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site in &site_ids {
                let rows = statement
                    .query_map([site], endpoint_from_row)
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            Ok(all)
        })
        .await
    }

    pub(crate) async fn webhook_get(
        &self,
        id: &str,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| match endpoint_in(connection, &id) {
            Ok(found) => Ok(Some(found)),
            Err(StoreError::NotFound) => Ok(None),
            Err(err) => Err(err),
        })
        .await
    }

    pub(crate) async fn webhook_update(
        &self,
        id: &str,
        update: WebhookEndpointUpdate,
    ) -> Result<WebhookEndpoint, StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                endpoint_in(connection, &id)?;
                if let Some(url) = &update.url {
                    connection
                        .execute(
                            "UPDATE webhook_endpoints SET url = ?2 WHERE id = ?1",
                            params![id, url],
                        )
                        .map_err(map_err)?;
                }
                if let Some(events) = &update.events {
                    connection
                        .execute(
                            "UPDATE webhook_endpoints SET events = ?2 WHERE id = ?1",
                            params![id, events_json(events)],
                        )
                        .map_err(map_err)?;
                }
                if let Some(notes) = update.include_notes {
                    connection
                        .execute(
                            "UPDATE webhook_endpoints SET include_notes = ?2 WHERE id = ?1",
                            params![id, notes],
                        )
                        .map_err(map_err)?;
                }
                if let Some(enabled) = update.enabled {
                    connection
                        .execute(
                            "UPDATE webhook_endpoints SET enabled = ?2, consecutive_failures = 0, \
                             failing_since = NULL, disabled_reason = NULL WHERE id = ?1",
                            params![id, enabled],
                        )
                        .map_err(map_err)?;
                }
                endpoint_in(connection, &id)
            })
            .await
    }

    pub(crate) async fn webhook_delete(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
                        [&id],
                    )
                    .map_err(map_err)?;
                let deleted = connection
                    .execute("DELETE FROM webhook_endpoints WHERE id = ?1", [&id])
                    .map_err(map_err)?;
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn webhook_rotate(
        &self,
        id: &str,
        secret: &str,
        previous_expires_at: i64,
    ) -> Result<WebhookEndpoint, StoreError> {
        let (id, secret) = (id.to_owned(), secret.to_owned());
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE webhook_endpoints SET previous_secret = secret, \
                         previous_expires_at = ?3, secret = ?2 WHERE id = ?1",
                        params![id, secret, previous_expires_at],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                endpoint_in(connection, &id)
            })
            .await
    }

    pub(crate) async fn webhook_sites(&self) -> Result<Vec<String>, StoreError> {
        self.read(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT DISTINCT site_id FROM webhook_endpoints WHERE enabled = 1 \
                     ORDER BY site_id",
                )
                .map_err(map_err)?;
            statement
                .query_map([], |row| row.get(0))
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(map_err)
        })
        .await
    }

    pub(crate) async fn webhook_enqueue(
        &self,
        event: WebhookEvent,
    ) -> Result<crate::PendingWebhook, StoreError> {
        let answer = self
            .writer
            .enqueue(move |connection| enqueue_in(connection, &event))
            .await?;
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::ShutDown)?
        }))
    }

    pub(crate) fn webhook_remember_sites(&self, sites: &[String]) {
        *self
            .webhook_sites
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = sites.iter().cloned().collect();
    }

    /// The messages whose `message.created` a crash kept out of the outbox (their
    /// marks), with their site, in order; marks of messages erased since are dropped.
    pub(crate) async fn webhook_pending(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, Message)>, StoreError> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM webhook_pending WHERE NOT EXISTS (SELECT 1 FROM messages m \
                         WHERE m.conversation_id = webhook_pending.conversation_id \
                         AND m.seq = webhook_pending.seq)",
                        [],
                    )
                    .map_err(map_err)?;
                // The message's columns first (as `message_from_row` reads them), then
                // its site.
                let columns = MESSAGE_COLUMNS
                    .split(',')
                    .map(|column| format!("m.{}", column.trim()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let site_index = columns.split(", ").count();
                let mut statement = connection
                    .prepare(&format!(
                        "SELECT {columns}, c.site_id FROM webhook_pending p \
                         JOIN messages m ON m.conversation_id = p.conversation_id AND m.seq = p.seq \
                         JOIN conversations c ON c.id = p.conversation_id \
                         ORDER BY p.conversation_id, p.seq LIMIT ?1"
                    ))
                    .map_err(map_err)?;
                let rows = statement
                    .query_map([limit], |row| {
                        Ok((row.get::<_, String>(site_index)?, message_from_row(row)?))
                    })
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_err)?;
                Ok(rows)
            })
            .await
    }

    pub(crate) async fn webhook_due(
        &self,
        now: i64,
        settle_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS}, e.url, e.secret, e.previous_secret, \
                     e.previous_expires_at FROM webhook_deliveries d \
                     JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                     WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?1 \
                     AND d.created_at <= ?1 - ?3 AND e.enabled = 1 AND {HEAD} \
                     ORDER BY d.next_attempt_at, d.id LIMIT ?2"
                ))
                .map_err(map_err)?;
            statement
                .query_map(params![now, limit, settle_ms.max(0)], |row| {
                    Ok(DueDelivery {
                        delivery: delivery_from_row(row)?,
                        url: row.get(15)?,
                        secret: row.get(16)?,
                        previous_secret: row.get(17)?,
                        previous_expires_at: row.get(18)?,
                    })
                })
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)
        })
        .await
    }

    pub(crate) async fn webhook_next_due(&self, settle_ms: i64) -> Result<Option<i64>, StoreError> {
        self.read(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT min(max(d.next_attempt_at, d.created_at + ?1)) \
                         FROM webhook_deliveries d \
                         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                         WHERE d.status IN ('pending', 'retrying') AND e.enabled = 1 AND {HEAD}"
                    ),
                    [settle_ms.max(0)],
                    |row| row.get(0),
                )
                .map_err(map_err)
        })
        .await
    }

    pub(crate) async fn webhook_record(
        &self,
        attempt: WebhookAttempt,
        policy: DisablePolicy,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.writer
            .write(move |connection| record_in(connection, &attempt, policy))
            .await
    }

    pub(crate) async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let endpoint_id = endpoint_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
                     WHERE d.endpoint_id = ?1 AND d.id < ?2 ORDER BY d.id DESC LIMIT ?3"
                ))
                .map_err(map_err)?;
            statement
                .query_map(
                    params![endpoint_id, before.unwrap_or(i64::MAX), limit],
                    delivery_from_row,
                )
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)
        })
        .await
    }

    pub(crate) async fn webhook_delivery(
        &self,
        id: i64,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = ?1"),
                    [id],
                    delivery_from_row,
                )
                .optional()
                .map_err(map_err)
        })
        .await
    }

    pub(crate) async fn webhook_redeliver(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?2 \
                         WHERE id = ?1",
                        params![id, now],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteOptions, Store};

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("w.db"), SqliteOptions::default()).expect("open");
        (dir, store)
    }

    /// A message of a site with webhooks is marked in its own transaction until its
    /// `message.created` is in the outbox; other sites' messages are not marked.
    #[tokio::test]
    async fn a_message_is_marked_until_its_event_is_in_the_outbox() {
        let (_dir, store) = store().await;
        let site = store
            .create_site("Shop", &["*".into()])
            .await
            .expect("site");
        store
            .touch_visitor("v_1", &site.id, crate::VisitorUpdate::default(), 1)
            .await
            .expect("visitor");
        let conversation = store
            .create_conversation(&site.id, "v_1", salam_protocol::ConversationState::Bot, 1)
            .await
            .expect("conversation");
        let text = |body: &str| NewMessage {
            conversation: conversation.id.clone(),
            kind: MessageKind::Text,
            author: salam_protocol::Author {
                kind: AuthorKind::Visitor,
                id: Some("v_1".into()),
                name: None,
            },
            text: body.into(),
            client_id: None,
            quick_replies: Vec::new(),
            rule: None,
            event: None,
            at: 2,
            only_in: None,
        };
        let pending = || async { store.webhook_pending_messages(10).await.expect("pending") };
        store
            .append(text("before any endpoint"))
            .await
            .expect("append");
        assert!(pending().await.is_empty());
        store.remember_webhook_sites(std::slice::from_ref(&site.id));
        let marked = store.append(text("marked")).await.expect("append").message;
        assert_eq!(pending().await, [(site.id.clone(), marked.clone())]);
        let mut queued = event(
            "evt_m",
            "message.created",
            Some(&conversation.id),
            Some(marked.seq),
        );
        queued.site_id = site.id.clone();
        emit(&store, queued).await;
        assert!(pending().await.is_empty(), "the outbox job leaves the mark");
        store.remember_webhook_sites(&[]);
        store
            .append(text("no longer marked"))
            .await
            .expect("append");
        assert!(pending().await.is_empty());
    }

    async fn endpoint(store: &SqliteStore, events: &[&str], notes: bool) -> WebhookEndpoint {
        store
            .create_webhook_endpoint(NewWebhookEndpoint {
                site_id: "s_1".into(),
                url: "https://hooks.example/".into(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                include_notes: notes,
                secret: "whsec_test".into(),
                created_by: "a_1".into(),
                now: 1,
            })
            .await
            .expect("endpoint")
    }

    fn event(id: &str, kind: &str, conversation: Option<&str>, seq: Option<u64>) -> WebhookEvent {
        WebhookEvent {
            event_id: id.into(),
            event_type: kind.into(),
            site_id: "s_1".into(),
            conversation_id: conversation.map(str::to_owned),
            seq,
            note: false,
            body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
            created_at: 10,
        }
    }

    async fn emit(store: &SqliteStore, event: WebhookEvent) -> usize {
        store
            .enqueue_webhook_event(event)
            .await
            .expect("queued")
            .await
            .expect("committed")
    }

    async fn due_ids(store: &SqliteStore, now: i64) -> Vec<String> {
        store
            .due_webhook_deliveries(now, 0, 100)
            .await
            .expect("due")
            .into_iter()
            .map(|due| due.delivery.event_id)
            .collect()
    }

    fn attempt(due: &DueDelivery, at: i64, outcome: AttemptOutcome) -> WebhookAttempt {
        WebhookAttempt {
            delivery_id: due.delivery.id,
            endpoint_id: due.delivery.endpoint_id.clone(),
            at,
            status: Some(500),
            error: Some("HTTP 500".into()),
            duration_ms: 3,
            outcome,
        }
    }

    const NEVER: DisablePolicy = DisablePolicy {
        failures: 1000,
        over_ms: 0,
    };

    #[tokio::test]
    async fn an_event_reaches_the_subscribed_enabled_endpoints_and_notes_only_those_that_ask() {
        let (_dir, store) = store().await;
        let messages = endpoint(&store, &["message.created"], false).await;
        let with_notes = endpoint(&store, &["message.created"], true).await;
        let other = endpoint(&store, &["conversation.closed"], true).await;
        assert_eq!(
            emit(&store, event("e1", "message.created", Some("c"), Some(1))).await,
            2
        );
        let mut note = event("e2", "message.created", Some("c"), Some(2));
        note.note = true;
        assert_eq!(emit(&store, note).await, 1);
        // Another site's event reaches nobody here.
        let mut elsewhere = event("e3", "message.created", None, None);
        elsewhere.site_id = "s_2".into();
        assert_eq!(emit(&store, elsewhere).await, 0);
        store
            .update_webhook_endpoint(
                &messages.id,
                WebhookEndpointUpdate {
                    enabled: Some(false),
                    ..WebhookEndpointUpdate::default()
                },
            )
            .await
            .expect("disabled");
        assert_eq!(
            emit(&store, event("e4", "message.created", Some("d"), Some(1))).await,
            1
        );
        let log = store
            .webhook_deliveries(&with_notes.id, None, 10)
            .await
            .expect("log");
        assert_eq!(log.len(), 3);
        assert!(
            store
                .webhook_deliveries(&other.id, None, 10)
                .await
                .expect("log")
                .is_empty()
        );
        assert_eq!(store.webhook_sites().await.expect("sites"), ["s_1"]);
    }

    #[tokio::test]
    async fn a_conversation_goes_out_by_seq_and_a_failing_event_holds_the_next() {
        let (_dir, store) = store().await;
        endpoint(&store, &["message.created"], false).await;
        // Queued out of order: seq 2 before seq 1 (two tasks racing).
        emit(
            &store,
            event("second", "message.created", Some("c"), Some(2)),
        )
        .await;
        emit(
            &store,
            event("first", "message.created", Some("c"), Some(1)),
        )
        .await;
        emit(
            &store,
            event("other", "message.created", Some("d"), Some(7)),
        )
        .await;
        // Not subscribed: nothing queued.
        assert_eq!(
            emit(&store, event("loose", "alert.created", None, None)).await,
            0
        );
        let mut due = due_ids(&store, 100).await;
        due.sort();
        assert_eq!(due, ["first", "other"], "one head per conversation");
        let head = store
            .due_webhook_deliveries(100, 0, 100)
            .await
            .expect("due")
            .into_iter()
            .find(|due| due.delivery.event_id == "first")
            .expect("first is due");
        // It fails: it is retried later, and "second" still waits behind it.
        store
            .record_webhook_attempt(attempt(&head, 100, AttemptOutcome::Retry(500)), NEVER)
            .await
            .expect("recorded");
        assert_eq!(due_ids(&store, 200).await, ["other"]);
        // ("other" is due since 10; the held "second" does not count.)
        assert_eq!(store.next_webhook_due(0).await.expect("next"), Some(10));
        let mut due = due_ids(&store, 500).await;
        due.sort();
        assert_eq!(due, ["first", "other"]);
        // Delivered: now "second" goes.
        let mut delivered = attempt(&head, 600, AttemptOutcome::Delivered);
        delivered.status = Some(200);
        store
            .record_webhook_attempt(delivered, NEVER)
            .await
            .expect("recorded");
        let mut due = due_ids(&store, 600).await;
        due.sort();
        assert_eq!(due, ["other", "second"]);
        let row = store
            .webhook_delivery(head.delivery.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.status, DeliveryStatus::Delivered);
        assert_eq!(row.attempts, 2);
        assert_eq!(row.delivered_at, Some(600));
        // A redelivery queues the same row again.
        store
            .redeliver_webhook(head.delivery.id, 700)
            .await
            .expect("redeliver");
        let again = store
            .webhook_delivery(head.delivery.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(again.status, DeliveryStatus::Pending);
        assert_eq!(again.body, row.body);
        // The settle window keeps a just-queued event back.
        assert!(
            store
                .due_webhook_deliveries(20, 100, 10)
                .await
                .expect("due")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_endpoint_failing_often_enough_for_long_enough_is_disabled_once() {
        let (_dir, store) = store().await;
        let hook = endpoint(&store, &["alert.created"], false).await;
        for n in 0..4 {
            emit(&store, event(&format!("e{n}"), "alert.created", None, None)).await;
        }
        let policy = DisablePolicy {
            failures: 3,
            over_ms: 1000,
        };
        let due = store.due_webhook_deliveries(100, 0, 10).await.expect("due");
        assert_eq!(due.len(), 4);
        // Three failures within 1 s: not yet (too short a time).
        for (n, delivery) in due.iter().take(3).enumerate() {
            let disabled = store
                .record_webhook_attempt(
                    attempt(delivery, 100 + n as i64, AttemptOutcome::Retry(10_000)),
                    policy,
                )
                .await
                .expect("recorded");
            assert!(disabled.is_none());
        }
        // The fourth, after more than a second of failing: disabled, once.
        let disabled = store
            .record_webhook_attempt(attempt(&due[3], 1200, AttemptOutcome::Dead), policy)
            .await
            .expect("recorded")
            .expect("disabled now");
        assert!(!disabled.enabled);
        assert_eq!(disabled.consecutive_failures, 4);
        assert_eq!(disabled.disabled_reason.as_deref(), Some("failing"));
        assert!(store.webhook_sites().await.expect("sites").is_empty());
        assert!(
            due_ids(&store, 20_000).await.is_empty(),
            "a disabled endpoint gets nothing"
        );
        // Enabling it clears the count; its waiting deliveries go again.
        let enabled = store
            .update_webhook_endpoint(
                &hook.id,
                WebhookEndpointUpdate {
                    enabled: Some(true),
                    ..WebhookEndpointUpdate::default()
                },
            )
            .await
            .expect("enabled");
        assert_eq!(enabled.consecutive_failures, 0);
        assert_eq!(due_ids(&store, 20_000).await.len(), 3);
        // Rotation keeps the previous secret until the given time.
        let rotated = store
            .rotate_webhook_secret(&hook.id, "whsec_new", 99)
            .await
            .expect("rotated");
        assert_eq!(rotated.secret, "whsec_new");
        assert_eq!(rotated.previous_secret.as_deref(), Some("whsec_test"));
        assert_eq!(rotated.previous_expires_at, Some(99));
        store
            .delete_webhook_endpoint(&hook.id)
            .await
            .expect("deleted");
        assert!(
            store
                .webhook_endpoint(&hook.id)
                .await
                .expect("read")
                .is_none()
        );
        assert!(matches!(
            store.delete_webhook_endpoint(&hook.id).await,
            Err(StoreError::NotFound)
        ));
    }
}
