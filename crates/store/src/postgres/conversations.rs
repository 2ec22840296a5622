//! Visitors, conversations, compare-and-set transitions and the message log (SQLite:
//! `crate::sqlite`), key-account marks (SQLite: `crate::key_accounts`).
//!
//! The hot path is [`append_in`], which runs unguarded (no savepoint) in the writer's
//! batch: PostgreSQL aborts the whole transaction on a failed statement, so it checks
//! everything it can refuse (`NotFound`, `Closed`, `StateChanged`) before it writes, and
//! writes nothing that can fail. Its order of statements is what keeps sequences
//! gap-free across hubs:
//!
//! 1. `UPDATE conversations SET last_seq = last_seq + 1 … RETURNING` takes the
//!    conversation's row lock and the next number, and only when the message may be
//!    written (state, `only_in`). Another hub appending to the same conversation waits
//!    here until its batch commits, then numbers after it.
//! 2. One statement inserts the message (`ON CONFLICT … DO NOTHING` on the client-id
//!    index), moves the summary and leaves the webhook mark, all only if the row was
//!    new. A resend, from this hub or another, conflicts with the committed original
//!    (visible, since the lock was taken after its commit): the number is given back and
//!    the original returned.
//!
//! Queries run with their parameter types given (`query_typed`: one round trip, no
//! prepared statement to lose on a reconnect). Ties in orderings by id compare bytes
//! (`COLLATE "C"`), as SQLite does.

use super::rows::{
    CONVERSATION_SELECT, MESSAGE_COLUMNS, OFFLINE_REQUEST_COLUMNS, VISITOR_COLUMNS,
    conversation_from_row, message_from_row, offline_request_from_row, visitor_from_row,
};
use super::writer::prepared;
use super::{PostgresStore, map_err};
use crate::sqlite::{author_kind_name, kind_name, new_id};
use crate::webhooks::WebhookSites;
use crate::*;
use pg::GenericClient;
use pg::types::{ToSql, Type};

/// A query parameter with its type.
type Param<'a> = (&'a (dyn ToSql + Sync), Type);

// Texts from outside are made storable (U+0000: see the policy in `super`).
use super::{storable, storable_option, storable_owned};

/// Every text of a message, made storable (see [`storable`]).
fn storable_message(mut message: NewMessage) -> NewMessage {
    message.conversation = storable_owned(message.conversation);
    message.text = storable_owned(message.text);
    message.author.id = storable_option(message.author.id);
    message.author.name = storable_option(message.author.name);
    message.client_id = storable_option(message.client_id);
    message.rule = storable_option(message.rule);
    message
}

fn limit_of(limit: u32) -> i64 {
    i64::from(limit)
}

fn seq_of(seq: u64) -> i64 {
    seq.min(i64::MAX as u64) as i64
}

fn state_of(name: &str) -> ConversationState {
    ConversationState::parse(name).unwrap_or(ConversationState::Closed)
}

fn conversations_where(
    client: &mut impl GenericClient,
    condition: &str,
    params: &[Param<'_>],
) -> Result<Vec<Conversation>, StoreError> {
    let sql = format!("{CONVERSATION_SELECT} {condition}");
    Ok(client
        .query_typed(&sql, params)
        .map_err(map_err)?
        .iter()
        .map(conversation_from_row)
        .collect())
}

fn conversation_by_id(
    client: &mut impl GenericClient,
    id: &str,
) -> Result<Option<Conversation>, StoreError> {
    Ok(conversations_where(client, "WHERE c.id = $1", &[(&id, Type::TEXT)])?.pop())
}

pub(super) async fn touch_visitor(
    store: &PostgresStore,
    visitor_id: &str,
    site_id: &str,
    update: VisitorUpdate,
    now: i64,
) -> Result<(), StoreError> {
    let (visitor_id, site_id) = (
        storable_owned(visitor_id.into()),
        storable_owned(site_id.into()),
    );
    store
        .writer
        .write(move |transaction| {
            let page = update.page.unwrap_or_default();
            let (locale, user_agent) = (
                storable_option(update.locale),
                storable_option(update.user_agent),
            );
            let (url, title, referrer) = (
                storable_option(page.url),
                storable_option(page.title),
                storable_option(page.referrer),
            );
            transaction
                .execute_typed(
                    "INSERT INTO visitors (id, site_id, locale, page_url, page_title, referrer, \
                     user_agent, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                     ON CONFLICT (id) DO UPDATE SET \
                     locale = coalesce(excluded.locale, visitors.locale), \
                     page_url = coalesce(excluded.page_url, visitors.page_url), \
                     page_title = coalesce(excluded.page_title, visitors.page_title), \
                     referrer = coalesce(excluded.referrer, visitors.referrer), \
                     user_agent = coalesce(excluded.user_agent, visitors.user_agent), \
                     last_seen = excluded.last_seen",
                    &[
                        (&visitor_id, Type::TEXT),
                        (&site_id, Type::TEXT),
                        (&locale, Type::TEXT),
                        (&url, Type::TEXT),
                        (&title, Type::TEXT),
                        (&referrer, Type::TEXT),
                        (&user_agent, Type::TEXT),
                        (&now, Type::INT8),
                    ],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn identify_visitor(
    store: &PostgresStore,
    visitor_id: &str,
    identity: IdentityUpdate,
) -> Result<(), StoreError> {
    let visitor_id = storable_owned(visitor_id.into());
    store
        .writer
        .write(move |transaction| {
            let verified = storable_owned(
                serde_json::to_string(&identity.verified).unwrap_or_else(|_| "[]".into()),
            );
            let attributes = identity
                .attributes
                .as_ref()
                .and_then(|attributes| serde_json::to_string(attributes).ok());
            let external_id = storable_owned(identity.external_id);
            let (name, email) = (
                storable_option(identity.name),
                storable_option(identity.email),
            );
            let changed = transaction
                .execute_typed(
                    "UPDATE visitors SET external_id = $2, name = coalesce($3, name), \
                     email = coalesce($4, email), verified = $5, \
                     attributes = coalesce($6, attributes) WHERE id = $1",
                    &[
                        (&visitor_id, Type::TEXT),
                        (&external_id, Type::TEXT),
                        (&name, Type::TEXT),
                        (&email, Type::TEXT),
                        (&verified, Type::TEXT),
                        (&attributes, Type::TEXT),
                    ],
                )
                .map_err(map_err)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
}

pub(super) async fn visitor_external_id(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Option<String>, StoreError> {
    let visitor_id = storable_owned(visitor_id.into());
    store
        .read(move |client| {
            Ok(client
                .query_typed_opt(
                    "SELECT external_id FROM visitors WHERE id = $1",
                    &[(&visitor_id, Type::TEXT)],
                )
                .map_err(map_err)?
                .and_then(|row| row.get::<_, Option<String>>(0)))
        })
        .await
}

pub(super) async fn create_conversation(
    store: &PostgresStore,
    site_id: &str,
    visitor_id: &str,
    state: ConversationState,
    now: i64,
) -> Result<Conversation, StoreError> {
    let id = new_id("c");
    let (site_id, visitor_id) = (
        storable_owned(site_id.into()),
        storable_owned(visitor_id.into()),
    );
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute_typed(
                    "INSERT INTO conversations (id, site_id, visitor_id, state, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    &[
                        (&id, Type::TEXT),
                        (&site_id, Type::TEXT),
                        (&visitor_id, Type::TEXT),
                        (&state.as_str(), Type::TEXT),
                        (&now, Type::INT8),
                    ],
                )
                .map_err(map_err)?;
            conversation_by_id(transaction, &id)?.ok_or(StoreError::NotFound)
        })
        .await
}

pub(super) async fn conversation(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<Conversation>, StoreError> {
    let id = storable_owned(id.into());
    store
        .read(move |client| conversation_by_id(client, &id))
        .await
}

pub(super) async fn open_conversations_of_visitor(
    store: &PostgresStore,
    site_id: &str,
    visitor_id: &str,
) -> Result<Vec<Conversation>, StoreError> {
    let (site_id, visitor_id) = (
        storable_owned(site_id.into()),
        storable_owned(visitor_id.into()),
    );
    store
        .read(move |client| {
            conversations_where(
                client,
                "WHERE c.site_id = $1 AND c.visitor_id = $2 AND c.state <> 'closed' \
                 ORDER BY c.created_at, c.id COLLATE \"C\"",
                &[(&site_id, Type::TEXT), (&visitor_id, Type::TEXT)],
            )
        })
        .await
}

pub(super) async fn recent_closed_conversation_of_visitor(
    store: &PostgresStore,
    site_id: &str,
    visitor_id: &str,
    since: i64,
) -> Result<Option<Conversation>, StoreError> {
    let (site_id, visitor_id) = (
        storable_owned(site_id.into()),
        storable_owned(visitor_id.into()),
    );
    store
        .read(move |client| {
            Ok(conversations_where(
                client,
                "WHERE c.site_id = $1 AND c.visitor_id = $2 \
                 AND c.state = 'closed' AND c.closed_at >= $3 \
                 AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.site_id = $1 \
                     AND o.visitor_id = $2 AND o.state <> 'closed' \
                     AND o.created_at > c.created_at) \
                 ORDER BY c.closed_at DESC, c.id COLLATE \"C\" DESC LIMIT 1",
                &[
                    (&site_id, Type::TEXT),
                    (&visitor_id, Type::TEXT),
                    (&since, Type::INT8),
                ],
            )?
            .pop())
        })
        .await
}

pub(super) async fn set_contact_asked(
    store: &PostgresStore,
    conversation: &str,
    at: i64,
) -> Result<(), StoreError> {
    let conversation = storable_owned(conversation.into());
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute_typed(
                    "UPDATE conversations SET contact_asked_at = $2 WHERE id = $1",
                    &[(&conversation, Type::TEXT), (&at, Type::INT8)],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await
}

pub(super) async fn contact_pending(
    store: &PostgresStore,
    conversation: &str,
) -> Result<bool, StoreError> {
    let conversation = storable_owned(conversation.into());
    store
        .read(move |client| {
            Ok(client
                .query_typed_opt(
                    "SELECT contact_asked_at IS NOT NULL FROM conversations WHERE id = $1",
                    &[(&conversation, Type::TEXT)],
                )
                .map_err(map_err)?
                .is_some_and(|row| row.get::<_, bool>(0)))
        })
        .await
}

pub(super) async fn contact_of_conversation(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<OfflineRequest>, StoreError> {
    let conversation = storable_owned(conversation.into());
    store
        .read(move |client| {
            let sql = format!(
                "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests \
                 WHERE conversation_id = $1 ORDER BY id DESC LIMIT 1"
            );
            Ok(client
                .query_typed_opt(&sql, &[(&conversation, Type::TEXT)])
                .map_err(map_err)?
                .as_ref()
                .map(offline_request_from_row))
        })
        .await
}

pub(super) async fn open_conversations_of_sites(
    store: &PostgresStore,
    site_ids: &[String],
    limit: u32,
) -> Result<Vec<Conversation>, StoreError> {
    let site_ids: Vec<String> = site_ids
        .iter()
        .map(|id| storable_owned(id.clone()))
        .collect();
    store
        .read(move |client| {
            // Site by site, as SQLite does: each site's newest, then the newest of all.
            let mut all = Vec::new();
            for site_id in site_ids {
                all.extend(conversations_where(
                    client,
                    "WHERE c.site_id = $1 AND c.state <> 'closed' \
                     ORDER BY c.updated_at DESC LIMIT $2",
                    &[(&site_id, Type::TEXT), (&limit_of(limit), Type::INT8)],
                )?);
            }
            all.sort_by_key(|conversation: &Conversation| {
                std::cmp::Reverse(conversation.updated_at)
            });
            all.truncate(limit as usize);
            Ok(all)
        })
        .await
}

pub(super) async fn transition(
    store: &PostgresStore,
    transition: Transition,
) -> Result<Transitioned, StoreError> {
    store
        .writer
        .write_on(
            storable_owned(transition.conversation.clone()),
            move |transaction| transition_in(transaction, transition),
        )
        .await
}

pub(super) async fn transition_queued(
    store: &PostgresStore,
    transition: Transition,
) -> Result<PendingTransition, StoreError> {
    let answer = store
        .writer
        .enqueue_on(
            storable_owned(transition.conversation.clone()),
            move |transaction| transition_in(transaction, transition),
        )
        .await?;
    Ok(Box::pin(async move {
        answer.await.map_err(|_| StoreError::ShutDown)?
    }))
}

/// The body of `transition`, run (in a savepoint) inside the writer's transaction. The
/// compare-and-set is the `WHERE state = ANY(…)`: of two hubs changing one conversation
/// at once, the second waits for the first's row lock, then finds the state it expected
/// gone and changes nothing.
fn transition_in(
    transaction: &mut pg::Transaction<'_>,
    change: Transition,
) -> Result<Transitioned, StoreError> {
    let conversation = storable_owned(change.conversation);
    let to = change.to.as_str();
    let agent_id = (change.to == ConversationState::Assigned)
        .then_some(change.agent_id)
        .flatten()
        .map(storable_owned);
    let department = storable_option(change.department);
    let priority = change.priority.map(i64::from);
    let handoff_reason = storable_option(change.handoff_reason);
    let from: Vec<&str> = change.from.iter().map(|state| state.as_str()).collect();
    let changed = transaction
        .execute_typed(
            "UPDATE conversations SET state = $2, agent_id = $3, updated_at = $4, \
             department = coalesce($5, department), priority = coalesce($6, priority), \
             queued_at = CASE WHEN $2 = 'queued' THEN $4 ELSE queued_at END, \
             handed_off_at = CASE WHEN $2 IN ('queued', 'assigned') \
                 THEN coalesce(handed_off_at, $4) ELSE handed_off_at END, \
             handoff_reason = CASE WHEN $2 IN ('queued', 'assigned') \
                 THEN coalesce(handoff_reason, $7) ELSE handoff_reason END, \
             closed_at = CASE WHEN $2 = 'closed' THEN $4 ELSE closed_at END \
             WHERE id = $1 AND state = ANY($8)",
            &[
                (&conversation, Type::TEXT),
                (&to, Type::TEXT),
                (&agent_id, Type::TEXT),
                (&change.at, Type::INT8),
                (&department, Type::TEXT),
                (&priority, Type::INT8),
                (&handoff_reason, Type::TEXT),
                (&from, Type::TEXT_ARRAY),
            ],
        )
        .map_err(map_err)?;
    if changed == 0 {
        return conversation_by_id(transaction, &conversation)?
            .map(Transitioned::Stale)
            .ok_or(StoreError::NotFound);
    }
    let event = match change.event {
        Some(event) => Some(
            append_in(
                transaction,
                NewMessage {
                    conversation: conversation.clone(),
                    kind: MessageKind::Event,
                    author: Author {
                        kind: AuthorKind::System,
                        id: None,
                        name: None,
                    },
                    text: storable_owned(event.english()),
                    client_id: None,
                    quick_replies: Vec::new(),
                    rule: None,
                    at: change.at,
                    only_in: None,
                    event: Some(event),
                },
                None,
            )?
            .message,
        ),
        None => None,
    };
    let conversation =
        conversation_by_id(transaction, &conversation)?.ok_or(StoreError::NotFound)?;
    Ok(Transitioned::Applied {
        conversation,
        event: event.map(Box::new),
    })
}

pub(super) async fn mark_read(store: &PostgresStore, id: &str) -> Result<bool, StoreError> {
    let id = storable_owned(id.into());
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute_typed(
                    "UPDATE conversations SET unread = 0 WHERE id = $1 AND unread <> 0",
                    &[(&id, Type::TEXT)],
                )
                .map(|changed| changed > 0)
                .map_err(map_err)
        })
        .await
}

pub(super) async fn set_priority(
    store: &PostgresStore,
    id: &str,
    priority: i32,
) -> Result<(), StoreError> {
    let id = storable_owned(id.into());
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute_typed(
                    "UPDATE conversations SET priority = $2 WHERE id = $1",
                    &[(&id, Type::TEXT), (&i64::from(priority), Type::INT8)],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn idle_conversations(
    store: &PostgresStore,
    before: i64,
    limit: u32,
) -> Result<Vec<Conversation>, StoreError> {
    store
        .read(move |client| {
            conversations_where(
                client,
                "WHERE c.state <> 'closed' AND c.updated_at < $1 \
                 ORDER BY c.updated_at LIMIT $2",
                &[(&before, Type::INT8), (&limit_of(limit), Type::INT8)],
            )
        })
        .await
}

pub(super) async fn conversations_in_state(
    store: &PostgresStore,
    state: ConversationState,
) -> Result<Vec<Conversation>, StoreError> {
    store
        .read(move |client| {
            conversations_where(
                client,
                "WHERE c.state = $1 ORDER BY c.updated_at, c.id COLLATE \"C\"",
                &[(&state.as_str(), Type::TEXT)],
            )
        })
        .await
}

pub(super) async fn find_conversations(
    store: &PostgresStore,
    site_ids: &[String],
    filter: ConversationFilter,
) -> Result<Vec<Conversation>, StoreError> {
    let site_ids: Vec<String> = site_ids
        .iter()
        .map(|id| storable_owned(id.clone()))
        .collect();
    store
        .read(move |client| {
            let mut condition = String::from("WHERE c.site_id = $1");
            match filter.state {
                Some(state) => condition.push_str(&format!(" AND c.state = '{}'", state.as_str())),
                None if filter.include_closed => {}
                None => condition.push_str(" AND c.state <> 'closed'"),
            }
            if filter.agent_id.is_some() {
                condition.push_str(" AND c.agent_id = $2");
            } else {
                condition.push_str(" AND $2::text IS NULL");
            }
            // SQLite's LIKE ignores the case of ASCII letters; ILIKE ignores it for
            // every letter.
            if filter.query.is_some() {
                condition.push_str(
                    " AND (v.name ILIKE $3 ESCAPE '\\' OR v.email ILIKE $3 ESCAPE '\\' OR EXISTS \
                     (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
                     AND m.kind <> 'event' AND m.text ILIKE $3 ESCAPE '\\'))",
                );
            } else {
                condition.push_str(" AND $3::text IS NULL");
            }
            condition.push_str(" ORDER BY c.updated_at DESC LIMIT $4");
            let pattern = filter.query.as_ref().map(|query| {
                let escaped = storable(query)
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                format!("%{escaped}%")
            });
            let agent_id = filter.agent_id.clone().map(storable_owned);
            let limit = limit_of(filter.limit.max(1));
            let mut all = Vec::new();
            for site_id in site_ids {
                all.extend(conversations_where(
                    client,
                    &condition,
                    &[
                        (&site_id, Type::TEXT),
                        (&agent_id, Type::TEXT),
                        (&pattern, Type::TEXT),
                        (&limit, Type::INT8),
                    ],
                )?);
            }
            all.sort_by_key(|conversation: &Conversation| {
                std::cmp::Reverse(conversation.updated_at)
            });
            all.truncate(filter.limit.max(1) as usize);
            Ok(all)
        })
        .await
}

pub(super) async fn visitor(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Option<Visitor>, StoreError> {
    let visitor_id = storable_owned(visitor_id.into());
    store
        .read(move |client| {
            Ok(client
                .query_typed_opt(
                    &format!("SELECT {VISITOR_COLUMNS} FROM visitors WHERE id = $1"),
                    &[(&visitor_id, Type::TEXT)],
                )
                .map_err(map_err)?
                .as_ref()
                .map(visitor_from_row))
        })
        .await
}

pub(super) async fn conversations_of_visitor(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Vec<Conversation>, StoreError> {
    let visitor_id = storable_owned(visitor_id.into());
    store
        .read(move |client| {
            conversations_where(
                client,
                "WHERE c.visitor_id = $1 ORDER BY c.created_at DESC LIMIT 50",
                &[(&visitor_id, Type::TEXT)],
            )
        })
        .await
}

pub(super) async fn append(
    store: &PostgresStore,
    message: NewMessage,
) -> Result<Appended, StoreError> {
    let marks = store.webhook_sites.clone();
    let message = storable_message(message);
    store
        .writer
        .write_on(message.conversation.clone(), move |transaction| {
            append_in(transaction, message, Some(&marks))
        })
        .await
}

pub(super) async fn append_queued(
    store: &PostgresStore,
    message: NewMessage,
) -> Result<PendingAppend, StoreError> {
    let marks = store.webhook_sites.clone();
    let message = storable_message(message);
    let answer = store
        .writer
        .enqueue_unguarded(message.conversation.clone(), move |transaction| {
            append_in(transaction, message, Some(&marks))
        })
        .await?;
    Ok(PendingAppend::new(async move {
        answer.await.map_err(|_| StoreError::ShutDown)?
    }))
}

/// The body of `append`, run inside the writer's transaction, unguarded for
/// `append_queued` (see the module documentation for its order of statements).
/// `marks`: the sites whose messages leave a `webhook_pending` mark (see
/// [`crate::webhooks`]); `None` for event lines, which never become `message.created`.
/// The message's texts are already [`storable`].
fn append_in(
    transaction: &mut pg::Transaction<'_>,
    message: NewMessage,
    marks: Option<&WebhookSites>,
) -> Result<Appended, StoreError> {
    let kind = kind_name(message.kind);
    let author_kind = author_kind_name(message.author.kind);
    let author_id = message.author.id.as_deref().unwrap_or("");
    let only_in = message.only_in.map(ConversationState::as_str);
    // Two rounds at most: a refusal read after a first refused UPDATE holds the row
    // lock, so when the state allows the message by then, the second UPDATE takes it.
    let mut locked = false;
    let (conversation_state, seq, site_id) = loop {
        let next = prepared(
            transaction,
            "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 \
             AND (state <> 'closed' OR $2 = 'event') AND ($3::text IS NULL OR state = $3) \
             RETURNING state, last_seq, site_id",
            &[Type::TEXT, Type::TEXT, Type::TEXT],
        )
        .and_then(|statement| {
            transaction
                .query_opt(&statement, &[&message.conversation, &kind, &only_in])
                .map_err(map_err)
        })?;
        if let Some(row) = next {
            break (
                state_of(&row.get::<_, String>(0)),
                row.get::<_, i64>(1),
                row.get::<_, String>(2),
            );
        }
        // Refused: say why, in SQLite's order, having written nothing.
        let state = transaction
            .query_typed_opt(
                "SELECT state FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
                &[(&message.conversation, Type::TEXT)],
            )
            .map_err(map_err)?
            .map(|row| state_of(&row.get::<_, String>(0)))
            .ok_or(StoreError::NotFound)?;
        if let Some(required) = message.only_in
            && required != state
        {
            return Err(StoreError::StateChanged(state));
        }
        if state == ConversationState::Closed && message.kind != MessageKind::Event {
            // A resend of a message committed before the close is answered with it.
            if let Some(client_id) = &message.client_id
                && let Some(found) = original(transaction, &message, client_id, state)?
            {
                return Ok(found);
            }
            return Err(StoreError::Closed);
        }
        if locked {
            return Err(StoreError::StateChanged(state));
        }
        locked = true;
    };
    let quick_replies = if message.quick_replies.is_empty() {
        None
    } else {
        serde_json::to_string(&message.quick_replies).ok()
    };
    let event_json = message
        .event
        .as_ref()
        .and_then(|event| serde_json::to_string(event).ok());
    let preview: Option<String> = (message.kind != MessageKind::Event)
        .then(|| message.text.chars().take(Preview::MAX_CHARS).collect());
    let mark = marks.is_some_and(|marks| marks_message(marks, &site_id, &message));
    // The unique index on the client id is the duplicate check; the summary (the preview
    // of texts and notes, the unread count a visitor's text raises and an agent's reply
    // clears, the first response after a hand-off) and the webhook mark move only with
    // a new row.
    let statement = prepared(
        transaction,
        "WITH inserted AS (\
             INSERT INTO messages (conversation_id, seq, kind, author_kind, author_id, \
             author_name, text, at, client_id, quick_replies, rule, event) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (conversation_id, author_kind, author_id, client_id) \
             WHERE client_id IS NOT NULL DO NOTHING RETURNING seq), \
         marked AS (\
             INSERT INTO webhook_pending (conversation_id, seq) \
             SELECT $1, seq FROM inserted WHERE $14 ON CONFLICT DO NOTHING) \
         UPDATE conversations SET updated_at = $8, \
         unread = CASE WHEN $4 = 'visitor' AND $3 = 'text' THEN unread + 1 \
                       WHEN $4 = 'agent' AND $3 = 'text' THEN 0 ELSE unread END, \
         preview = coalesce($13, preview), \
         preview_author = CASE WHEN $13 IS NULL THEN preview_author ELSE $4 END, \
         preview_at = CASE WHEN $13 IS NULL THEN preview_at ELSE $8 END, \
         first_response_at = CASE WHEN $4 = 'agent' AND $3 = 'text' \
             AND handed_off_at IS NOT NULL THEN coalesce(first_response_at, $8) \
             ELSE first_response_at END \
         WHERE id = $1 AND EXISTS (SELECT 1 FROM inserted) RETURNING unread",
        &[
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
        ],
    )?;
    let unread = transaction
        .query_opt(
            &statement,
            &[
                &message.conversation,
                &seq,
                &kind,
                &author_kind,
                &author_id,
                &message.author.name,
                &message.text,
                &message.at,
                &message.client_id,
                &quick_replies,
                &message.rule,
                &event_json,
                &preview,
                &mark,
            ],
        )
        .map_err(map_err)?
        .map(|row| row.get::<_, i64>(0));
    let Some(unread) = unread else {
        // A resend: give the number back and answer with the committed original.
        transaction
            .execute_typed(
                "UPDATE conversations SET last_seq = last_seq - 1 WHERE id = $1",
                &[(&message.conversation, Type::TEXT)],
            )
            .map_err(map_err)?;
        let client_id = message.client_id.as_deref().unwrap_or("");
        return original(transaction, &message, client_id, conversation_state)?.ok_or_else(|| {
            StoreError::Corrupt("a conflicting message could not be read back".into())
        });
    };
    Ok(Appended {
        message: Message {
            conversation: message.conversation,
            seq: seq.max(0) as u64,
            kind: message.kind,
            author: message.author,
            text: message.text,
            at: message.at,
            client_id: message.client_id,
            quick_replies: message.quick_replies,
            rule: message.rule,
            event: message.event,
        },
        state: conversation_state,
        duplicate: false,
        unread: unread.clamp(0, u32::MAX as i64) as u32,
    })
}

/// Whether a message leaves a `webhook_pending` mark (SQLite:
/// `crate::webhooks::mark_pending`): a text or a note, not a system line, of a site
/// with webhooks.
fn marks_message(marks: &WebhookSites, site_id: &str, message: &NewMessage) -> bool {
    if message.kind == MessageKind::Event || message.author.kind == AuthorKind::System {
        return false;
    }
    marks
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .contains(site_id)
}

/// The committed message with `message`'s author and `client_id`, as a duplicate.
fn original(
    transaction: &mut pg::Transaction<'_>,
    message: &NewMessage,
    client_id: &str,
    state: ConversationState,
) -> Result<Option<Appended>, StoreError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 \
         AND author_kind = $2 AND author_id = $3 AND client_id = $4"
    );
    let found = transaction
        .query_typed_opt(
            &sql,
            &[
                (&message.conversation, Type::TEXT),
                (&author_kind_name(message.author.kind), Type::TEXT),
                (&message.author.id.as_deref().unwrap_or(""), Type::TEXT),
                (&client_id, Type::TEXT),
            ],
        )
        .map_err(map_err)?;
    Ok(found.map(|row| Appended {
        message: message_from_row(&row),
        duplicate: true,
        state,
        unread: 0,
    }))
}

pub(super) async fn messages_after(
    store: &PostgresStore,
    conversation: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    let conversation = storable_owned(conversation.into());
    store
        .read(move |client| {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3"
            );
            Ok(client
                .query_typed(
                    &sql,
                    &[
                        (&conversation, Type::TEXT),
                        (&seq_of(after), Type::INT8),
                        (&limit_of(limit), Type::INT8),
                    ],
                )
                .map_err(map_err)?
                .iter()
                .map(message_from_row)
                .collect())
        })
        .await
}

pub(super) async fn messages_before(
    store: &PostgresStore,
    conversation: &str,
    before: u64,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    let conversation = storable_owned(conversation.into());
    store
        .read(move |client| {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq < $2 \
                 ORDER BY seq DESC LIMIT $3"
            );
            let mut rows: Vec<Message> = client
                .query_typed(
                    &sql,
                    &[
                        (&conversation, Type::TEXT),
                        (&seq_of(before), Type::INT8),
                        (&limit_of(limit), Type::INT8),
                    ],
                )
                .map_err(map_err)?
                .iter()
                .map(message_from_row)
                .collect();
            rows.reverse();
            Ok(rows)
        })
        .await
}

pub(super) async fn key_account_mark(
    store: &PostgresStore,
    conversation: &str,
    rule: &str,
) -> Result<(), StoreError> {
    let (conversation, rule) = (
        storable_owned(conversation.into()),
        storable_owned(rule.into()),
    );
    store
        .writer
        .write(move |transaction| {
            let changed = transaction
                .execute_typed(
                    "UPDATE conversations SET key_account = $2 WHERE id = $1",
                    &[(&conversation, Type::TEXT), (&rule, Type::TEXT)],
                )
                .map_err(map_err)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
}

pub(super) async fn key_account_first_responses(
    store: &PostgresStore,
    site_ids: &[String],
    from: i64,
    to: i64,
) -> Result<Vec<i64>, StoreError> {
    let site_ids: Vec<String> = site_ids
        .iter()
        .map(|id| storable_owned(id.clone()))
        .collect();
    store
        .read(move |client| {
            // The same ranges as the reports' timings: conversations by their creation,
            // report facts by their creation hour.
            const LIVE: &str = "SELECT first_response_at - handed_off_at FROM conversations \
                 WHERE site_id = $1 AND created_at >= $2 AND created_at < $3 \
                 AND key_account IS NOT NULL AND first_response_at IS NOT NULL \
                 AND handed_off_at IS NOT NULL";
            const ARCHIVED: &str = "SELECT first_response_ms FROM report_facts WHERE site_id = $1 \
                 AND created_hour >= $2 AND created_hour < $3 \
                 AND key_account IS NOT NULL AND first_response_ms IS NOT NULL";
            let mut all = Vec::new();
            for site_id in site_ids {
                for sql in [LIVE, ARCHIVED] {
                    let rows = client
                        .query_typed(
                            sql,
                            &[
                                (&site_id, Type::TEXT),
                                (&from, Type::INT8),
                                (&to, Type::INT8),
                            ],
                        )
                        .map_err(map_err)?;
                    all.extend(rows.iter().map(|row| row.get::<_, i64>(0)));
                }
            }
            Ok(all)
        })
        .await
}
