//! E-mail as a channel (SQLite: `crate::email`).
//!
//! The same statements as SQLite's, with what several hubs sharing one database need:
//!
//! - `email_failing.address` is stored lower-cased and looked up with `lower($1)`
//!   (SQLite: `COLLATE NOCASE`); a visitor's address is matched on `lower(email)`.
//! - [`email_visitor`] takes a transaction-scoped advisory lock on the site and the
//!   lower-cased address before it looks, so two hubs receiving mail from one new
//!   address create one visitor, as SQLite's single writer does. (Two hubs' batches
//!   taking two such addresses in crossing order deadlock; the database refuses one
//!   job, answered [`StoreError::Unavailable`], and the inbound mail is answered 451
//!   for its sender to retry.)
//! - Taking due unseen batches skips rows another hub is taking (`SKIP LOCKED`), and
//!   taking missed conversations marks them with `ON CONFLICT DO NOTHING … RETURNING`,
//!   so each is taken by one hub only.
//! - Text from mail may hold U+0000, which PostgreSQL's `text` cannot: it is dropped
//!   from addresses, Message-IDs, names and transcript requests (consistently, so
//!   lookups still match), and a report ends at it, as SQLite's `substr` ends it.
//! - Ties are broken by id in binary order (`COLLATE "C"`, SQLite's order for text), so
//!   the order does not depend on the database's collation.

use super::{PostgresStore, map_err};
use crate::*;

/// The first key of [`email_visitor`]'s advisory locks (two-key form: its own space).
const EMAIL_VISITOR_LOCK: i32 = 0x6d_61_69_6c; // "mail"

/// An event kind's name in `email_events.kind` (SQLite's `EmailEventKind::as_str`).
fn kind_name(kind: EmailEventKind) -> &'static str {
    match kind {
        EmailEventKind::Bounce => "bounce",
        EmailEventKind::AutoReply => "auto_reply",
    }
}

// Addresses and message ids lose their U+0000 (see the policy in `super`).
use super::without_nul;

/// `text` up to its first U+0000: what SQLite's `substr` reads of it.
fn until_nul(text: &str) -> &str {
    text.split('\0').next().unwrap_or_default()
}

pub(super) async fn email_set_channel(
    store: &PostgresStore,
    conversation: &str,
    channel: Channel,
) -> Result<(), StoreError> {
    let conversation = conversation.to_owned();
    store
        .change_one(
            "UPDATE conversations SET channel = $2 WHERE id = $1",
            vec![Box::new(conversation), Box::new(channel.as_str())],
        )
        .await
}

pub(super) async fn email_channel(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<Channel>, StoreError> {
    let conversation = conversation.to_owned();
    store
        .read(move |client| {
            let name: Option<String> = client
                .query_opt(
                    "SELECT channel FROM conversations WHERE id = $1",
                    &[&conversation],
                )
                .map_err(map_err)?
                .map(|row| row.get(0));
            match name {
                None => Ok(None),
                Some(name) => Channel::parse(&name)
                    .map(Some)
                    .ok_or(StoreError::Corrupt(format!("channel {name:?}"))),
            }
        })
        .await
}

pub(super) async fn email_record_message(
    store: &PostgresStore,
    record: EmailRecord,
) -> Result<(), StoreError> {
    store
        .writer
        .write(move |transaction| {
            let direction = match record.direction {
                Direction::In => "in",
                Direction::Out => "out",
            };
            transaction
                .execute(
                    "INSERT INTO email_messages \
                     (message_id, conversation_id, direction, address, at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
                    &[
                        &without_nul(&record.message_id),
                        &record.conversation,
                        &direction,
                        &without_nul(&record.address),
                        &record.at,
                    ],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await
}

pub(super) async fn email_thread_of(
    store: &PostgresStore,
    message_ids: Vec<String>,
) -> Result<Option<String>, StoreError> {
    let message_ids: Vec<String> = message_ids.iter().map(|id| without_nul(id)).collect();
    store
        .read(move |client| {
            // The last reference is the most recent mail of the thread.
            Ok(client
                .query_opt(
                    "SELECT m.conversation_id \
                     FROM unnest($1::text[]) WITH ORDINALITY AS wanted (message_id, n) \
                     JOIN email_messages m ON m.message_id = wanted.message_id \
                     ORDER BY wanted.n DESC LIMIT 1",
                    &[&message_ids],
                )
                .map_err(map_err)?
                .map(|row| row.get(0)))
        })
        .await
}

pub(super) async fn email_thread_ids(
    store: &PostgresStore,
    conversation: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let conversation = conversation.to_owned();
    store
        .read(move |client| {
            let rows = client
                .query(
                    "SELECT message_id FROM (SELECT message_id, at FROM email_messages \
                     WHERE conversation_id = $1 ORDER BY at DESC, message_id COLLATE \"C\" \
                     LIMIT $2) AS newest ORDER BY at, message_id COLLATE \"C\"",
                    &[&conversation, &i64::from(limit)],
                )
                .map_err(map_err)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
        .await
}

pub(super) async fn email_record_event(
    store: &PostgresStore,
    event: EmailEvent,
) -> Result<(), StoreError> {
    let address = without_nul(&event.address);
    let detail = until_nul(&event.detail).to_owned();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO email_events (address, kind, detail, at) \
                     VALUES ($1, $2, substr($3::text, 1, 2000), $4)",
                    &[&address, &kind_name(event.kind), &detail, &event.at],
                )
                .map_err(map_err)?;
            if event.kind == EmailEventKind::Bounce {
                transaction
                    .execute(
                        "INSERT INTO email_failing (address, reason, at) \
                         VALUES (lower($1::text), substr($2::text, 1, 500), $3) \
                         ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, \
                         at = excluded.at",
                        &[&address, &detail, &event.at],
                    )
                    .map_err(map_err)?;
            }
            // Bounded: the newest 10,000 events are kept.
            transaction
                .execute(
                    "DELETE FROM email_events WHERE id <= \
                     (SELECT max(id) - 10000 FROM email_events)",
                    &[],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await
}

pub(super) async fn email_events(
    store: &PostgresStore,
    limit: u32,
) -> Result<Vec<EmailEvent>, StoreError> {
    store
        .read(move |client| {
            let rows = client
                .query(
                    "SELECT address, kind, detail, at FROM email_events ORDER BY id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .map_err(map_err)?;
            Ok(rows
                .iter()
                .map(|row| {
                    let kind: String = row.get(1);
                    EmailEvent {
                        address: row.get(0),
                        kind: if kind == "bounce" {
                            EmailEventKind::Bounce
                        } else {
                            EmailEventKind::AutoReply
                        },
                        detail: row.get(2),
                        at: row.get(3),
                    }
                })
                .collect())
        })
        .await
}

pub(super) async fn email_failing(
    store: &PostgresStore,
    address: &str,
) -> Result<bool, StoreError> {
    let address = without_nul(address);
    store
        .read(move |client| {
            Ok(client
                .query_opt(
                    "SELECT 1 FROM email_failing WHERE address = lower($1::text)",
                    &[&address],
                )
                .map_err(map_err)?
                .is_some())
        })
        .await
}

pub(super) async fn email_visitor(
    store: &PostgresStore,
    site_id: &str,
    email: &str,
    name: Option<String>,
    new_id: &str,
    now: i64,
) -> Result<String, StoreError> {
    let (site_id, email, new_id) = (site_id.to_owned(), without_nul(email), new_id.to_owned());
    let name = name.map(|name| without_nul(&name));
    store
        .writer
        .write(move |transaction| {
            // Held until the writer's transaction commits: another hub looking for the
            // same address waits, then finds the visitor created here.
            transaction
                .execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2::text || ' ' || lower($3::text)))",
                    &[&EMAIL_VISITOR_LOCK, &site_id, &email],
                )
                .map_err(map_err)?;
            let found: Option<String> = transaction
                .query_opt(
                    "SELECT id FROM visitors WHERE site_id = $1 AND lower(email) = lower($2::text) \
                     ORDER BY last_seen DESC LIMIT 1",
                    &[&site_id, &email],
                )
                .map_err(map_err)?
                .map(|row| row.get(0));
            if let Some(id) = found {
                transaction
                    .execute(
                        "UPDATE visitors SET last_seen = $2, name = coalesce(name, $3) \
                         WHERE id = $1",
                        &[&id, &now, &name],
                    )
                    .map_err(map_err)?;
                return Ok(id);
            }
            transaction
                .execute(
                    "INSERT INTO visitors (id, site_id, name, email, first_seen, last_seen) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                    &[&new_id, &site_id, &name, &email, &now],
                )
                .map_err(map_err)?;
            Ok(new_id)
        })
        .await
}

pub(super) async fn email_schedule_unseen(
    store: &PostgresStore,
    conversation: &str,
    seq: u64,
    due_at: i64,
) -> Result<(), StoreError> {
    let conversation = conversation.to_owned();
    store
        .writer
        .write(move |transaction| {
            // The first unseen reply and its deadline stay: later replies join the
            // batch already due.
            transaction
                .execute(
                    "INSERT INTO email_unseen (conversation_id, from_seq, due_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (conversation_id) DO NOTHING",
                    &[&conversation, &(seq as i64), &due_at],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await
}

pub(super) async fn email_visitor_seen(
    store: &PostgresStore,
    conversation: &str,
    seq: u64,
) -> Result<(), StoreError> {
    let conversation = conversation.to_owned();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "DELETE FROM email_unseen WHERE conversation_id = $1 AND from_seq <= $2",
                    &[&conversation, &(seq as i64)],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await
}

pub(super) async fn email_due_unseen(
    store: &PostgresStore,
    now: i64,
    limit: u32,
) -> Result<Vec<UnseenDue>, StoreError> {
    store
        .writer
        .write(move |transaction| {
            // SKIP LOCKED: a batch another hub is taking is that hub's.
            let rows = transaction
                .query(
                    "DELETE FROM email_unseen WHERE conversation_id IN \
                     (SELECT conversation_id FROM email_unseen WHERE due_at <= $1 \
                      ORDER BY due_at, conversation_id COLLATE \"C\" LIMIT $2 \
                      FOR UPDATE SKIP LOCKED) \
                     RETURNING conversation_id, from_seq, due_at",
                    &[&now, &i64::from(limit)],
                )
                .map_err(map_err)?;
            let mut due: Vec<(i64, UnseenDue)> = rows
                .iter()
                .map(|row| {
                    (
                        row.get::<_, i64>(2),
                        UnseenDue {
                            conversation: row.get(0),
                            from_seq: row.get::<_, i64>(1).max(0) as u64,
                        },
                    )
                })
                .collect();
            // RETURNING follows no order: the oldest first.
            due.sort_by(|(a_at, a), (b_at, b)| {
                a_at.cmp(b_at)
                    .then_with(|| a.conversation.cmp(&b.conversation))
            });
            Ok(due.into_iter().map(|(_, due)| due).collect())
        })
        .await
}

pub(super) async fn email_request_transcript(
    store: &PostgresStore,
    request: TranscriptRequest,
    now: i64,
) -> Result<(), StoreError> {
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO email_transcripts (conversation_id, email, lang, at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id) DO UPDATE SET \
                     email = excluded.email, lang = excluded.lang, at = excluded.at",
                    &[
                        &request.conversation,
                        &without_nul(&request.email),
                        &without_nul(&request.lang),
                        &now,
                    ],
                )
                .map_err(map_err)?;
            Ok(())
        })
        .await
}

pub(super) async fn email_take_transcript(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<TranscriptRequest>, StoreError> {
    let conversation = conversation.to_owned();
    store
        .writer
        .write(move |transaction| {
            Ok(transaction
                .query_opt(
                    "DELETE FROM email_transcripts WHERE conversation_id = $1 \
                     RETURNING conversation_id, email, lang",
                    &[&conversation],
                )
                .map_err(map_err)?
                .map(|row| TranscriptRequest {
                    conversation: row.get(0),
                    email: row.get(1),
                    lang: row.get(2),
                }))
        })
        .await
}

pub(super) async fn email_take_missed(
    store: &PostgresStore,
    queued_before: i64,
    now: i64,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    store
        .writer
        .write(move |transaction| {
            // A conversation another hub marks at the same time is that hub's: its
            // insert waits for the other's commit, then does nothing and returns nothing.
            let rows = transaction
                .query(
                    "WITH picked AS (SELECT c.id, c.queued_at FROM conversations c \
                     WHERE c.state = 'queued' AND c.queued_at IS NOT NULL AND c.queued_at <= $1 \
                     AND NOT EXISTS (SELECT 1 FROM email_missed m WHERE m.conversation_id = c.id) \
                     ORDER BY c.queued_at, c.id COLLATE \"C\" LIMIT $2), \
                     told AS (INSERT INTO email_missed (conversation_id, at) \
                     SELECT id, $3::bigint FROM picked ON CONFLICT (conversation_id) DO NOTHING \
                     RETURNING conversation_id) \
                     SELECT picked.id FROM picked JOIN told ON told.conversation_id = picked.id \
                     ORDER BY picked.queued_at, picked.id COLLATE \"C\"",
                    &[&queued_before, &i64::from(limit), &now],
                )
                .map_err(map_err)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
        .await
}
