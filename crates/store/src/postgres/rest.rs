//! The REST API's tables: API tokens, conversation pages, contacts (SQLite:
//! `crate::api_tokens`, `crate::api_pages`, `crate::contacts`) and webhooks
//! (`crate::webhooks`).
//!
//! Same statements, orders and errors as SQLite's, with three translations:
//!
//! - **Ids order byte-wise** (`COLLATE "C"`), as SQLite's `BINARY` does, whatever the
//!   database's collation: page cursors (`id > $n`) and `ORDER BY id` agree with
//!   SQLite's.
//! - **Case is ignored for ASCII only**, as SQLite's `NOCASE` and `LIKE` do: a contact
//!   search compares `ascii_lower(column)` (a `translate` of `A-Z`), so `É` and `é`
//!   differ as they do in SQLite, whatever the database's locale. The e-mail is also
//!   compared as `lower(email)`, which the `contacts_by_email` index serves (a locale's
//!   `lower` folds `A-Z` as well, so it keeps every row the ASCII comparison finds).
//! - **JSON** is read with `jsonb`: an attribute search looks up the top-level key
//!   (SQLite: the path `$."key"`), and an endpoint's events with `?`.
//!
//! A contact update locks its row (`FOR UPDATE`) before merging its attributes, so
//! updates from several hubs serialise instead of losing one another's changes.

use super::rows::{CONVERSATION_SELECT, MESSAGE_COLUMNS, conversation_from_row, message_from_row};
use super::{PostgresStore, map_err, storable_map, storable_option, storable_owned};
use crate::*;
use pg::types::ToSql;
use pg::{GenericClient, Row};
use serde_json::Value;

/// ASCII-only lower case of a SQL expression (SQLite's `NOCASE` and `LIKE`).
fn ascii_lower(expression: &str) -> String {
    format!("translate({expression}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

/// A limit as the BIGINT `LIMIT` takes.
fn limit_of(limit: u32) -> i64 {
    i64::from(limit)
}

// --- API tokens -----------------------------------------------------------------------

const TOKEN_COLUMNS: &str =
    "id, site_id, name, scope, created_by, created_at, last_used_at, revoked_at";

fn token_from_row(row: &Row) -> ApiToken {
    let scope: String = row.get(3);
    ApiToken {
        id: row.get(0),
        site_id: row.get(1),
        name: row.get(2),
        // The table's CHECK allows only the three scopes.
        scope: ApiScope::parse(&scope).unwrap_or(ApiScope::Read),
        created_by: row.get(4),
        created_at: row.get(5),
        last_used_at: row.get(6),
        revoked_at: row.get(7),
    }
}

pub(super) async fn create_api_token(
    store: &PostgresStore,
    token: NewApiToken,
) -> Result<ApiToken, StoreError> {
    let created = ApiToken {
        id: crate::sqlite::new_id("tok"),
        site_id: token.site_id,
        name: token.name,
        scope: token.scope,
        created_by: token.created_by,
        created_at: token.now,
        last_used_at: None,
        revoked_at: None,
    };
    let row = created.clone();
    let hash = token.token_hash;
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO api_tokens (id, site_id, name, scope, token_hash, created_by, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &row.id,
                        &row.site_id,
                        &row.name,
                        &row.scope.as_str(),
                        &hash,
                        &row.created_by,
                        &row.created_at,
                    ],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await?;
    Ok(created)
}

pub(super) async fn api_tokens(
    store: &PostgresStore,
    site_id: &str,
) -> Result<Vec<ApiToken>, StoreError> {
    let site_id = site_id.to_owned();
    store
        .read(move |client| {
            let rows = client
                .query(
                    &format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE site_id = $1 \
                         ORDER BY created_at DESC, id COLLATE \"C\""
                    ),
                    &[&site_id],
                )
                .map_err(map_err)?;
            Ok(rows.iter().map(token_from_row).collect())
        })
        .await
}

pub(super) async fn api_token_by_hash(
    store: &PostgresStore,
    token_hash: &str,
) -> Result<Option<ApiToken>, StoreError> {
    let token_hash = token_hash.to_owned();
    store
        .read(move |client| {
            let row = client
                .query_opt(
                    &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"),
                    &[&token_hash],
                )
                .map_err(map_err)?;
            Ok(row.as_ref().map(token_from_row))
        })
        .await
}

pub(super) async fn revoke_api_token(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let (site_id, id) = (site_id.to_owned(), id.to_owned());
    store
        .change_one(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $3) \
                     WHERE id = $1 AND site_id = $2",
            vec![Box::new(id), Box::new(site_id), Box::new(now)],
        )
        .await
}

pub(super) async fn touch_api_token(
    store: &PostgresStore,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let id = id.to_owned();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
                    &[&id, &now],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await
}

// --- conversation pages ---------------------------------------------------------------

pub(super) async fn conversation_page(
    store: &PostgresStore,
    site_id: &str,
    page: ConversationPage,
) -> Result<Vec<Conversation>, StoreError> {
    let site_id = site_id.to_owned();
    store
        .read(move |client| {
            let sql = format!(
                "{CONVERSATION_SELECT} WHERE c.site_id = $1 \
                 AND ($2::TEXT IS NULL OR c.state = $2) \
                 AND ($3::BIGINT IS NULL OR c.updated_at >= $3) \
                 AND ($4::BIGINT IS NULL OR c.updated_at > $4 \
                      OR (c.updated_at = $4 AND c.id COLLATE \"C\" > $5::TEXT)) \
                 ORDER BY c.updated_at, c.id COLLATE \"C\" LIMIT $6"
            );
            let (after_at, after_id) = match page.after {
                Some((at, id)) => (Some(at), Some(id)),
                None => (None, None),
            };
            let state = page.state.map(ConversationState::as_str);
            let limit = limit_of(page.limit.max(1));
            let rows = client
                .query(
                    &sql,
                    &[
                        &site_id,
                        &state,
                        &page.updated_since,
                        &after_at,
                        &after_id,
                        &limit,
                    ],
                )
                .map_err(map_err)?;
            Ok(rows.iter().map(conversation_from_row).collect())
        })
        .await
}

// --- contacts -------------------------------------------------------------------------

const CONTACT_COLUMNS: &str =
    "id, site_id, external_id, email, name, attributes, created_at, updated_at";

fn contact_from_row(row: &Row) -> Contact {
    let attributes: String = row.get(5);
    Contact {
        id: row.get(0),
        site_id: row.get(1),
        external_id: row.get(2),
        email: row.get(3),
        name: row.get(4),
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        created_at: row.get(6),
        updated_at: row.get(7),
        visitor_ids: Vec::new(),
    }
}

/// A row of `id, key, old_value, new_value, changed_by, at` from
/// `contact_attribute_changes`.
fn change_from_row(row: &Row) -> AttributeChange {
    let parse = |text: Option<String>| text.and_then(|text| serde_json::from_str(&text).ok());
    AttributeChange {
        id: row.get(0),
        key: row.get(1),
        old_value: parse(row.get(2)),
        new_value: parse(row.get(3)),
        changed_by: row.get(4),
        at: row.get(5),
    }
}

/// Fills in the visitors linked by external id (the first seen first).
fn with_visitors(
    client: &mut impl GenericClient,
    mut contact: Contact,
) -> Result<Contact, StoreError> {
    if let Some(external_id) = &contact.external_id {
        contact.visitor_ids = client
            .query(
                "SELECT id FROM visitors WHERE site_id = $1 AND external_id = $2 \
                 ORDER BY first_seen, row_id LIMIT 100",
                &[&contact.site_id, external_id],
            )
            .map_err(map_err)?
            .iter()
            .map(|row| row.get(0))
            .collect();
    }
    Ok(contact)
}

/// The contact of the site, with its visitors; `lock` takes its row lock (in a write).
fn contact_by_id(
    client: &mut impl GenericClient,
    site_id: &str,
    id: &str,
    lock: bool,
) -> Result<Option<Contact>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let found = client
        .query_opt(
            &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1 AND site_id = $2{lock}"),
            &[&id, &site_id],
        )
        .map_err(map_err)?;
    found
        .as_ref()
        .map(|row| with_visitors(client, contact_from_row(row)))
        .transpose()
}

fn record_change(
    client: &mut impl GenericClient,
    contact_id: &str,
    key: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    changed_by: &str,
    at: i64,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO contact_attribute_changes (contact_id, key, old_value, new_value, \
             changed_by, at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &contact_id,
                &key,
                &old.map(Value::to_string),
                &new.map(Value::to_string),
                &changed_by,
                &at,
            ],
        )
        .map_err(map_err)?;
    Ok(())
}

/// [`crate::contacts::ContactRecord`] of `visitor_id`, if they identified and their
/// site has the contact: for a visitor's export (SQLite:
/// `crate::contacts::contact_of_visitor`), on the export's transaction.
pub(super) fn contact_of_visitor(
    client: &mut impl GenericClient,
    visitor_id: &str,
) -> Result<Option<crate::contacts::ContactRecord>, StoreError> {
    let Some((site_id, external_id)) = identity_of(client, visitor_id)? else {
        return Ok(None);
    };
    let found = client
        .query_opt(
            &format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = $1 AND external_id = $2"
            ),
            &[&site_id, &external_id],
        )
        .map_err(map_err)?;
    let Some(row) = found else {
        return Ok(None);
    };
    let contact = with_visitors(client, contact_from_row(&row))?;
    let changes = client
        .query(
            "SELECT id, key, old_value, new_value, changed_by, at \
             FROM contact_attribute_changes WHERE contact_id = $1 ORDER BY id",
            &[&contact.id],
        )
        .map_err(map_err)?
        .iter()
        .map(change_from_row)
        .collect();
    Ok(Some(crate::contacts::ContactRecord { contact, changes }))
}

/// Deletes the contact of the visitor's site with the visitor's verified external id,
/// and its history, inside an erasure's transaction (SQLite:
/// `crate::contacts::erase_contact_of_visitor`). How many contacts went (0 or 1).
pub(super) fn erase_contact_of_visitor(
    transaction: &mut impl GenericClient,
    visitor_id: &str,
) -> Result<u64, StoreError> {
    let Some((site_id, external_id)) = identity_of(transaction, visitor_id)? else {
        return Ok(0);
    };
    transaction
        .execute(
            "DELETE FROM contact_attribute_changes WHERE contact_id IN \
             (SELECT id FROM contacts WHERE site_id = $1 AND external_id = $2)",
            &[&site_id, &external_id],
        )
        .map_err(map_err)?;
    transaction
        .execute(
            "DELETE FROM contacts WHERE site_id = $1 AND external_id = $2",
            &[&site_id, &external_id],
        )
        .map_err(map_err)
}

/// A visitor's site and verified external id (`None`: no such visitor, or not
/// identified).
fn identity_of(
    client: &mut impl GenericClient,
    visitor_id: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let found = client
        .query_opt(
            "SELECT site_id, external_id FROM visitors WHERE id = $1",
            &[&visitor_id],
        )
        .map_err(map_err)?;
    Ok(found.and_then(|row| {
        let external_id: Option<String> = row.get(1);
        external_id.map(|external_id| (row.get(0), external_id))
    }))
}

pub(super) async fn create_contact(
    store: &PostgresStore,
    contact: NewContact,
) -> Result<Contact, StoreError> {
    let id = crate::sqlite::new_id("ct");
    let contact = NewContact {
        external_id: storable_option(contact.external_id),
        email: storable_option(contact.email),
        name: storable_option(contact.name),
        attributes: storable_map(contact.attributes),
        ..contact
    };
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO contacts (id, site_id, external_id, email, name, attributes, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                    &[
                        &id,
                        &contact.site_id,
                        &contact.external_id,
                        &contact.email,
                        &contact.name,
                        &Value::Object(contact.attributes.clone()).to_string(),
                        &contact.now,
                    ],
                )
                .map_err(map_err)?;
            for (key, value) in &contact.attributes {
                record_change(
                    transaction,
                    &id,
                    key,
                    None,
                    Some(value),
                    &contact.changed_by,
                    contact.now,
                )?;
            }
            contact_by_id(transaction, &contact.site_id, &id, false)?.ok_or(StoreError::NotFound)
        })
        .await
}

pub(super) async fn update_contact(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
    update: ContactUpdate,
) -> Result<Contact, StoreError> {
    let (site_id, id) = (site_id.to_owned(), id.to_owned());
    let update = ContactUpdate {
        external_id: update.external_id.map(storable_option),
        email: update.email.map(storable_option),
        name: update.name.map(storable_option),
        attributes: storable_map(update.attributes),
        ..update
    };
    store
        .writer
        .write(move |transaction| {
            let mut contact =
                contact_by_id(transaction, &site_id, &id, true)?.ok_or(StoreError::NotFound)?;
            for (key, value) in &update.attributes {
                let old = contact.attributes.get(key).cloned();
                let new = (!value.is_null()).then(|| value.clone());
                if old == new {
                    continue;
                }
                record_change(
                    transaction,
                    &id,
                    key,
                    old.as_ref(),
                    new.as_ref(),
                    &update.changed_by,
                    update.now,
                )?;
                match new {
                    Some(new) => contact.attributes.insert(key.clone(), new),
                    None => contact.attributes.remove(key),
                };
            }
            if let Some(external_id) = update.external_id {
                contact.external_id = external_id;
            }
            if let Some(email) = update.email {
                contact.email = email;
            }
            if let Some(name) = update.name {
                contact.name = name;
            }
            transaction
                .execute(
                    "UPDATE contacts SET external_id = $3, email = $4, name = $5, \
                     attributes = $6, updated_at = $7 WHERE id = $1 AND site_id = $2",
                    &[
                        &id,
                        &site_id,
                        &contact.external_id,
                        &contact.email,
                        &contact.name,
                        &Value::Object(contact.attributes).to_string(),
                        &update.now,
                    ],
                )
                .map_err(map_err)?;
            contact_by_id(transaction, &site_id, &id, false)?.ok_or(StoreError::NotFound)
        })
        .await
}

pub(super) async fn contact(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
) -> Result<Option<Contact>, StoreError> {
    let (site_id, id) = (site_id.to_owned(), id.to_owned());
    store
        .read(move |client| contact_by_id(client, &site_id, &id, false))
        .await
}

pub(super) async fn contact_by_external_id(
    store: &PostgresStore,
    site_id: &str,
    external_id: &str,
) -> Result<Option<Contact>, StoreError> {
    let (site_id, external_id) = (site_id.to_owned(), storable_owned(external_id.to_owned()));
    store
        .read(move |client| {
            let found = client
                .query_opt(
                    &format!(
                        "SELECT {CONTACT_COLUMNS} FROM contacts \
                         WHERE site_id = $1 AND external_id = $2"
                    ),
                    &[&site_id, &external_id],
                )
                .map_err(map_err)?;
            found
                .as_ref()
                .map(|row| with_visitors(client, contact_from_row(row)))
                .transpose()
        })
        .await
}

pub(super) async fn find_contacts(
    store: &PostgresStore,
    site_id: &str,
    search: ContactSearch,
) -> Result<Vec<Contact>, StoreError> {
    let site_id = site_id.to_owned();
    let search = ContactSearch {
        email: storable_option(search.email),
        name: storable_option(search.name),
        external_id: storable_option(search.external_id),
        attribute: search
            .attribute
            .map(|(key, value)| (storable_owned(key), storable_owned(value))),
        ..search
    };
    store
        .read(move |client| {
            // Each condition is written so that a NULL parameter turns it off. The
            // attribute's value matches as SQLite's `json_type`/`json_extract` do: a
            // string by its text, a number by its value (as a double), a boolean by
            // `true`/`false`.
            let sql = format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = $1 \
                 AND ($2::TEXT IS NULL OR (lower(email) = lower($2) AND {email} = $3)) \
                 AND ($4::TEXT IS NULL OR {name} LIKE $4 ESCAPE '\\') \
                 AND ($5::TEXT IS NULL OR external_id = $5) \
                 AND ($6::TEXT IS NULL \
                      OR (jsonb_typeof(attributes::jsonb -> $6) = 'string' \
                          AND (attributes::jsonb ->> $6) = $7::TEXT) \
                      OR CASE WHEN jsonb_typeof(attributes::jsonb -> $6) = 'number' \
                          THEN (attributes::jsonb ->> $6)::DOUBLE PRECISION \
                          = $8::DOUBLE PRECISION END \
                      OR (jsonb_typeof(attributes::jsonb -> $6) = 'boolean' \
                          AND (attributes::jsonb ->> $6) = $9::TEXT)) \
                 AND ($10::TEXT IS NULL OR id COLLATE \"C\" > $10) \
                 ORDER BY id COLLATE \"C\" LIMIT $11",
                email = ascii_lower("email"),
                name = ascii_lower("name"),
            );
            let email_folded = search.email.as_deref().map(str::to_ascii_lowercase);
            let pattern = search.name.as_ref().map(|name| {
                let escaped = name
                    .to_ascii_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                format!("%{escaped}%")
            });
            let (key, text, number, boolean) = match &search.attribute {
                Some((key, value)) => (
                    Some(key.clone()),
                    Some(value.clone()),
                    value.parse::<f64>().ok().filter(|n| n.is_finite()),
                    matches!(value.as_str(), "true" | "false").then(|| value.clone()),
                ),
                None => (None, None, None, None),
            };
            let limit = limit_of(search.limit.max(1));
            let params: [&(dyn ToSql + Sync); 11] = [
                &site_id,
                &search.email,
                &email_folded,
                &pattern,
                &search.external_id,
                &key,
                &text,
                &number,
                &boolean,
                &search.after,
                &limit,
            ];
            let rows = client.query(&sql, &params).map_err(map_err)?;
            rows.iter()
                .map(|row| with_visitors(client, contact_from_row(row)))
                .collect()
        })
        .await
}

pub(super) async fn contact_changes(
    store: &PostgresStore,
    site_id: &str,
    id: &str,
    limit: u32,
) -> Result<Vec<AttributeChange>, StoreError> {
    let (site_id, id) = (site_id.to_owned(), id.to_owned());
    store
        .read(move |client| {
            let rows = client
                .query(
                    "SELECT h.id, h.key, h.old_value, h.new_value, h.changed_by, h.at \
                     FROM contact_attribute_changes h JOIN contacts c ON c.id = h.contact_id \
                     WHERE h.contact_id = $1 AND c.site_id = $2 ORDER BY h.id LIMIT $3",
                    &[&id, &site_id, &limit_of(limit.max(1))],
                )
                .map_err(map_err)?;
            Ok(rows.iter().map(change_from_row).collect())
        })
        .await
}

// --- webhooks -------------------------------------------------------------------------

/// A waiting delivery `d` is the head of its (endpoint, conversation) line: no other
/// waiting delivery of the same endpoint and conversation comes before it (by `seq`,
/// a missing `seq` last, then by id). As SQLite's `crate::webhooks` `HEAD`.
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

fn endpoint_from_row(row: &Row) -> WebhookEndpoint {
    let events: String = row.get(3);
    WebhookEndpoint {
        id: row.get(0),
        site_id: row.get(1),
        url: row.get(2),
        events: serde_json::from_str(&events).unwrap_or_default(),
        include_notes: row.get(4),
        enabled: row.get(5),
        secret: row.get(6),
        previous_secret: row.get(7),
        previous_expires_at: row.get(8),
        created_by: row.get(9),
        created_at: row.get(10),
        consecutive_failures: row.get::<_, i64>(11).clamp(0, u32::MAX as i64) as u32,
        failing_since: row.get(12),
        disabled_reason: row.get(13),
    }
}

fn delivery_from_row(row: &Row) -> Result<WebhookDelivery, StoreError> {
    let status: String = row.get(6);
    let status = match status.as_str() {
        "pending" => DeliveryStatus::Pending,
        "retrying" => DeliveryStatus::Retrying,
        "delivered" => DeliveryStatus::Delivered,
        "dead" => DeliveryStatus::Dead,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "unknown delivery status {status:?}"
            )));
        }
    };
    Ok(WebhookDelivery {
        id: row.get(0),
        endpoint_id: row.get(1),
        event_id: row.get(2),
        event_type: row.get(3),
        conversation_id: row.get(4),
        body: row.get(5),
        status,
        attempts: row.get::<_, i64>(7).clamp(0, u32::MAX as i64) as u32,
        next_attempt_at: row.get(8),
        last_status: row
            .get::<_, Option<i64>>(9)
            .and_then(|code| u16::try_from(code).ok()),
        last_error: row.get(10),
        last_duration_ms: row.get(11),
        last_attempt_at: row.get(12),
        delivered_at: row.get(13),
        created_at: row.get(14),
    })
}

fn endpoint_in(client: &mut impl GenericClient, id: &str) -> Result<WebhookEndpoint, StoreError> {
    client
        .query_opt(
            &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"),
            &[&id],
        )
        .map_err(map_err)?
        .as_ref()
        .map(endpoint_from_row)
        .ok_or(StoreError::NotFound)
}

fn events_json(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".into())
}

/// A sequence number as the BIGINT column holds it.
fn seq_of(seq: u64) -> i64 {
    seq.min(i64::MAX as u64) as i64
}

/// Fans an event out to the site's endpoints in the writer's transaction: the number
/// of deliveries written.
fn enqueue_in(
    transaction: &mut pg::Transaction<'_>,
    event: &WebhookEvent,
) -> Result<usize, StoreError> {
    if event.event_type == "message.created"
        && let (Some(conversation), Some(seq)) = (&event.conversation_id, event.seq)
    {
        transaction
            .execute(
                "DELETE FROM webhook_pending WHERE conversation_id = $1 AND seq = $2",
                &[conversation, &seq_of(seq)],
            )
            .map_err(map_err)?;
    }
    let written = transaction
        .execute(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, \
             conversation_id, seq, body, status, attempts, next_attempt_at, created_at) \
             SELECT e.id, $1::TEXT, $2::TEXT, $3::TEXT, $8::BIGINT, $4::BYTEA, 'pending', 0, \
             $5::BIGINT, $5 FROM webhook_endpoints e \
             WHERE e.site_id = $6 AND e.enabled AND (NOT $7 OR e.include_notes) \
             AND e.events::jsonb ? $2 \
             ORDER BY e.id COLLATE \"C\" \
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            &[
                &event.event_id,
                &event.event_type,
                &event.conversation_id,
                &event.body,
                &event.created_at,
                &event.site_id,
                &event.note,
                &event.seq.map(seq_of),
            ],
        )
        .map_err(map_err)?;
    Ok(written as usize)
}

/// Records an attempt; returns the endpoint if this attempt disabled it.
fn record_in(
    transaction: &mut pg::Transaction<'_>,
    attempt: &WebhookAttempt,
    policy: DisablePolicy,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let (status, next, delivered_at) = match attempt.outcome {
        AttemptOutcome::Delivered => ("delivered", attempt.at, Some(attempt.at)),
        AttemptOutcome::Retry(next) => ("retrying", next, None),
        AttemptOutcome::Dead => ("dead", attempt.at, None),
    };
    transaction
        .execute(
            "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, \
             next_attempt_at = $3, last_status = $4, last_error = $5, last_duration_ms = $6, \
             last_attempt_at = $7, delivered_at = coalesce($8, delivered_at) WHERE id = $1",
            &[
                &attempt.delivery_id,
                &status,
                &next,
                &attempt.status.map(i64::from),
                &attempt.error,
                &attempt.duration_ms,
                &attempt.at,
                &delivered_at,
            ],
        )
        .map_err(map_err)?;
    if attempt.outcome == AttemptOutcome::Delivered {
        transaction
            .execute(
                "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL \
                 WHERE id = $1",
                &[&attempt.endpoint_id],
            )
            .map_err(map_err)?;
        return Ok(None);
    }
    transaction
        .execute(
            "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, \
             failing_since = coalesce(failing_since, $2) WHERE id = $1",
            &[&attempt.endpoint_id, &attempt.at],
        )
        .map_err(map_err)?;
    let disabled = transaction
        .query_opt(
            &format!(
                "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $4 \
                 WHERE id = $1 AND enabled AND consecutive_failures >= $2 \
                 AND $3 - failing_since >= $5 RETURNING {ENDPOINT_COLUMNS}"
            ),
            &[
                &attempt.endpoint_id,
                &i64::from(policy.failures.max(1)),
                &attempt.at,
                &"failing",
                &policy.over_ms.max(0),
            ],
        )
        .map_err(map_err)?;
    Ok(disabled.as_ref().map(endpoint_from_row))
}

pub(super) async fn create_webhook_endpoint(
    store: &PostgresStore,
    endpoint: NewWebhookEndpoint,
) -> Result<WebhookEndpoint, StoreError> {
    let id = crate::sqlite::new_id("wh");
    store
        .writer
        .write(move |transaction| {
            let row = transaction
                .query_one(
                    &format!(
                        "INSERT INTO webhook_endpoints (id, site_id, url, events, \
                         include_notes, enabled, secret, created_by, created_at) \
                         VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $8) \
                         RETURNING {ENDPOINT_COLUMNS}"
                    ),
                    &[
                        &id,
                        &endpoint.site_id,
                        &endpoint.url,
                        &events_json(&endpoint.events),
                        &endpoint.include_notes,
                        &endpoint.secret,
                        &endpoint.created_by,
                        &endpoint.now,
                    ],
                )
                .map_err(map_err)?;
            Ok(endpoint_from_row(&row))
        })
        .await
}

pub(super) async fn webhook_endpoints(
    store: &PostgresStore,
    site_ids: &[String],
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let site_ids = site_ids.to_vec();
    store
        .read(move |client| {
            // One site after another, in the order given (as SQLite's).
            let statement = client
                .prepare(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE site_id = $1 \
                     ORDER BY created_at, id COLLATE \"C\""
                ))
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site in &site_ids {
                let rows = client.query(&statement, &[site]).map_err(map_err)?;
                all.extend(rows.iter().map(endpoint_from_row));
            }
            Ok(all)
        })
        .await
}

pub(super) async fn webhook_endpoint(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let id = id.to_owned();
    store
        .read(move |client| match endpoint_in(client, &id) {
            Ok(found) => Ok(Some(found)),
            Err(StoreError::NotFound) => Ok(None),
            Err(err) => Err(err),
        })
        .await
}

pub(super) async fn update_webhook_endpoint(
    store: &PostgresStore,
    id: &str,
    update: WebhookEndpointUpdate,
) -> Result<WebhookEndpoint, StoreError> {
    let id = id.to_owned();
    store
        .writer
        .write(move |transaction| {
            // Enabling or disabling (even to the same state) clears the failures.
            let events = update.events.as_deref().map(events_json);
            let row = transaction
                .query_opt(
                    &format!(
                        "UPDATE webhook_endpoints SET url = coalesce($2, url), \
                         events = coalesce($3, events), \
                         include_notes = coalesce($4, include_notes), \
                         enabled = coalesce($5, enabled), \
                         consecutive_failures = CASE WHEN $5::BOOLEAN IS NULL \
                             THEN consecutive_failures ELSE 0 END, \
                         failing_since = CASE WHEN $5::BOOLEAN IS NULL \
                             THEN failing_since END, \
                         disabled_reason = CASE WHEN $5::BOOLEAN IS NULL \
                             THEN disabled_reason END \
                         WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
                    ),
                    &[
                        &id,
                        &update.url,
                        &events,
                        &update.include_notes,
                        &update.enabled,
                    ],
                )
                .map_err(map_err)?;
            row.as_ref()
                .map(endpoint_from_row)
                .ok_or(StoreError::NotFound)
        })
        .await
}

pub(super) async fn delete_webhook_endpoint(
    store: &PostgresStore,
    id: &str,
) -> Result<(), StoreError> {
    let id = id.to_owned();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
                    &[&id],
                )
                .map_err(map_err)?;
            let deleted = transaction
                .execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])
                .map_err(map_err)?;
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
}

pub(super) async fn rotate_webhook_secret(
    store: &PostgresStore,
    id: &str,
    secret: &str,
    previous_expires_at: i64,
) -> Result<WebhookEndpoint, StoreError> {
    let (id, secret) = (id.to_owned(), secret.to_owned());
    store
        .writer
        .write(move |transaction| {
            let row = transaction
                .query_opt(
                    &format!(
                        "UPDATE webhook_endpoints SET previous_secret = secret, \
                         previous_expires_at = $3, secret = $2 WHERE id = $1 \
                         RETURNING {ENDPOINT_COLUMNS}"
                    ),
                    &[&id, &secret, &previous_expires_at],
                )
                .map_err(map_err)?;
            row.as_ref()
                .map(endpoint_from_row)
                .ok_or(StoreError::NotFound)
        })
        .await
}

pub(super) async fn webhook_sites(store: &PostgresStore) -> Result<Vec<String>, StoreError> {
    store
        .read(|client| {
            let rows = client
                .query(
                    "SELECT DISTINCT site_id COLLATE \"C\" FROM webhook_endpoints \
                     WHERE enabled ORDER BY 1",
                    &[],
                )
                .map_err(map_err)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
        .await
}

pub(super) async fn webhook_pending_messages(
    store: &PostgresStore,
    limit: u32,
) -> Result<Vec<(String, Message)>, StoreError> {
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "DELETE FROM webhook_pending WHERE NOT EXISTS (SELECT 1 FROM messages m \
                     WHERE m.conversation_id = webhook_pending.conversation_id \
                     AND m.seq = webhook_pending.seq)",
                    &[],
                )
                .map_err(map_err)?;
            // The message's columns first (as `message_from_row` reads them), then its
            // site.
            let columns = MESSAGE_COLUMNS
                .split(',')
                .map(|column| format!("m.{}", column.trim()))
                .collect::<Vec<_>>();
            let site_index = columns.len();
            let rows = transaction
                .query(
                    &format!(
                        "SELECT {}, c.site_id FROM webhook_pending p \
                         JOIN messages m ON m.conversation_id = p.conversation_id \
                             AND m.seq = p.seq \
                         JOIN conversations c ON c.id = p.conversation_id \
                         ORDER BY p.conversation_id COLLATE \"C\", p.seq LIMIT $1",
                        columns.join(", ")
                    ),
                    &[&limit_of(limit)],
                )
                .map_err(map_err)?;
            Ok(rows
                .iter()
                .map(|row| (row.get::<_, String>(site_index), message_from_row(row)))
                .collect())
        })
        .await
}

pub(super) async fn enqueue_webhook_event(
    store: &PostgresStore,
    event: WebhookEvent,
) -> Result<PendingWebhook, StoreError> {
    let answer = store
        .writer
        .enqueue(move |transaction| enqueue_in(transaction, &event))
        .await?;
    Ok(Box::pin(async move {
        answer.await.map_err(|_| StoreError::ShutDown)?
    }))
}

pub(super) async fn due_webhook_deliveries(
    store: &PostgresStore,
    now: i64,
    settle_ms: i64,
    limit: u32,
) -> Result<Vec<DueDelivery>, StoreError> {
    store
        .read(move |client| {
            let rows = client
                .query(
                    &format!(
                        "SELECT {DELIVERY_COLUMNS}, e.url, e.secret, e.previous_secret, \
                         e.previous_expires_at FROM webhook_deliveries d \
                         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                         WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= $1 \
                         AND d.created_at <= $1 - $3 AND e.enabled AND {HEAD} \
                         ORDER BY d.next_attempt_at, d.id LIMIT $2"
                    ),
                    &[&now, &limit_of(limit), &settle_ms.max(0)],
                )
                .map_err(map_err)?;
            rows.iter()
                .map(|row| {
                    Ok(DueDelivery {
                        delivery: delivery_from_row(row)?,
                        url: row.get(15),
                        secret: row.get(16),
                        previous_secret: row.get(17),
                        previous_expires_at: row.get(18),
                    })
                })
                .collect()
        })
        .await
}

pub(super) async fn next_webhook_due(
    store: &PostgresStore,
    settle_ms: i64,
) -> Result<Option<i64>, StoreError> {
    store
        .read(move |client| {
            let row = client
                .query_one(
                    &format!(
                        "SELECT min(greatest(d.next_attempt_at, d.created_at + $1)) \
                         FROM webhook_deliveries d \
                         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                         WHERE d.status IN ('pending', 'retrying') AND e.enabled AND {HEAD}"
                    ),
                    &[&settle_ms.max(0)],
                )
                .map_err(map_err)?;
            Ok(row.get(0))
        })
        .await
}

pub(super) async fn record_webhook_attempt(
    store: &PostgresStore,
    attempt: WebhookAttempt,
    policy: DisablePolicy,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    store
        .writer
        .write(move |transaction| record_in(transaction, &attempt, policy))
        .await
}

pub(super) async fn webhook_deliveries(
    store: &PostgresStore,
    endpoint_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let endpoint_id = endpoint_id.to_owned();
    store
        .read(move |client| {
            let rows = client
                .query(
                    &format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
                         WHERE d.endpoint_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3"
                    ),
                    &[&endpoint_id, &before.unwrap_or(i64::MAX), &limit_of(limit)],
                )
                .map_err(map_err)?;
            rows.iter().map(delivery_from_row).collect()
        })
        .await
}

pub(super) async fn webhook_delivery(
    store: &PostgresStore,
    id: i64,
) -> Result<Option<WebhookDelivery>, StoreError> {
    store
        .read(move |client| {
            client
                .query_opt(
                    &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = $1"),
                    &[&id],
                )
                .map_err(map_err)?
                .as_ref()
                .map(delivery_from_row)
                .transpose()
        })
        .await
}

pub(super) async fn redeliver_webhook(
    store: &PostgresStore,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    store
        .change_one(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2 \
                     WHERE id = $1",
            vec![Box::new(id), Box::new(now)],
        )
        .await
}
