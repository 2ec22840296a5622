//! E-mail as a channel (issue 17): what the store keeps for it.
//!
//! - a conversation's [`Channel`] (`chat` or `email`);
//! - the `Message-ID` of every mail sent or received for a conversation, so a reply's
//!   `In-Reply-To`/`References` finds its conversation (the signed reply address is
//!   tried first, by the hub);
//! - bounces and auto-replies received ([`EmailEvent`]), and the addresses that bounced;
//! - the agent replies a visitor has not seen yet, due to be sent in one e-mail.

use crate::StoreError;
use crate::sqlite::{SqliteStore, map_err};
use rusqlite::{OptionalExtension, params};

pub use salam_protocol::Channel;

/// Which way a mail went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// A mail of a conversation, by its `Message-ID` (without angle brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecord {
    pub message_id: String,
    pub conversation: String,
    pub direction: Direction,
    pub address: String,
    pub at: i64,
}

/// What arrived that is not a visitor's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailEventKind {
    /// A delivery failure report: the address is marked failing.
    Bounce,
    /// An automatic answer (out of office, list software, no-reply senders).
    AutoReply,
}

impl EmailEventKind {
    fn as_str(self) -> &'static str {
        match self {
            EmailEventKind::Bounce => "bounce",
            EmailEventKind::AutoReply => "auto_reply",
        }
    }
}

/// A bounce or an auto-reply, recorded (never appended to a conversation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EmailEvent {
    pub address: String,
    pub kind: EmailEventKind,
    pub detail: String,
    pub at: i64,
}

/// A conversation whose unseen agent replies are due to be mailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnseenDue {
    pub conversation: String,
    /// The first agent reply the visitor had not seen when it was scheduled.
    pub from_seq: u64,
}

/// A transcript a visitor asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptRequest {
    pub conversation: String,
    pub email: String,
    /// `en`, `ar` or `fa`.
    pub lang: String,
}

/// A visitor's erasure (in its transaction): the bounces, auto-replies and failing
/// marks of their addresses (their profile's and their contact requests') go too.
pub(crate) fn erase_addresses(
    connection: &rusqlite::Connection,
    visitor_id: &str,
) -> Result<(), StoreError> {
    const ADDRESSES: &str = "(SELECT email FROM visitors WHERE id = ?1 AND email IS NOT NULL \
         UNION SELECT email FROM offline_requests WHERE visitor_id = ?1 AND email IS NOT NULL)";
    for sql in [
        format!(
            "DELETE FROM email_events WHERE lower(address) IN (SELECT lower(email) FROM {ADDRESSES})"
        ),
        format!("DELETE FROM email_failing WHERE address IN {ADDRESSES}"),
    ] {
        connection.execute(&sql, [visitor_id]).map_err(map_err)?;
    }
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn email_request_transcript_impl(
        &self,
        request: TranscriptRequest,
        now: i64,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO email_transcripts (conversation_id, email, lang, at) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (conversation_id) DO UPDATE SET \
                         email = excluded.email, lang = excluded.lang, at = excluded.at",
                        params![request.conversation, request.email, request.lang, now],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn email_take_transcript_impl(
        &self,
        conversation: &str,
    ) -> Result<Option<TranscriptRequest>, StoreError> {
        let conversation = conversation.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .query_row(
                        "DELETE FROM email_transcripts WHERE conversation_id = ?1 \
                         RETURNING conversation_id, email, lang",
                        [conversation],
                        |row| {
                            Ok(TranscriptRequest {
                                conversation: row.get(0)?,
                                email: row.get(1)?,
                                lang: row.get(2)?,
                            })
                        },
                    )
                    .optional()
                    .map_err(map_err)
            })
            .await
    }

    pub(crate) async fn email_take_missed_impl(
        &self,
        queued_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.writer
            .write(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT c.id FROM conversations c WHERE c.state = 'queued' \
                         AND c.queued_at IS NOT NULL AND c.queued_at <= ?1 \
                         AND NOT EXISTS (SELECT 1 FROM email_missed m WHERE m.conversation_id = c.id) \
                         ORDER BY c.queued_at LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let ids = statement
                    .query_map(params![queued_before, limit], |row| row.get(0))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<Vec<String>>>()
                    .map_err(map_err)?;
                for id in &ids {
                    connection
                        .execute(
                            "INSERT OR IGNORE INTO email_missed (conversation_id, at) VALUES (?1, ?2)",
                            params![id, now],
                        )
                        .map_err(map_err)?;
                }
                Ok(ids)
            })
            .await
    }

    pub(crate) async fn email_set_channel_impl(
        &self,
        conversation: &str,
        channel: Channel,
    ) -> Result<(), StoreError> {
        let conversation = conversation.to_owned();
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE conversations SET channel = ?2 WHERE id = ?1",
                        params![conversation, channel.as_str()],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn email_channel_impl(
        &self,
        conversation: &str,
    ) -> Result<Option<Channel>, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            let name: Option<String> = connection
                .query_row(
                    "SELECT channel FROM conversations WHERE id = ?1",
                    [conversation],
                    |row| row.get(0),
                )
                .optional()
                .map_err(map_err)?;
            match name {
                None => Ok(None),
                Some(name) => Channel::parse(&name)
                    .map(Some)
                    .ok_or(StoreError::Corrupt(format!("channel {name:?}"))),
            }
        })
        .await
    }

    pub(crate) async fn email_record_message_impl(
        &self,
        record: EmailRecord,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT OR IGNORE INTO email_messages \
                         (message_id, conversation_id, direction, address, at) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            record.message_id,
                            record.conversation,
                            match record.direction {
                                Direction::In => "in",
                                Direction::Out => "out",
                            },
                            record.address,
                            record.at
                        ],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn email_thread_of_impl(
        &self,
        message_ids: Vec<String>,
    ) -> Result<Option<String>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT conversation_id FROM email_messages WHERE message_id = ?1")
                .map_err(map_err)?;
            // The last reference is the most recent mail of the thread.
            for id in message_ids.iter().rev() {
                let found: Option<String> = statement
                    .query_row([id], |row| row.get(0))
                    .optional()
                    .map_err(map_err)?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            Ok(None)
        })
        .await
    }

    pub(crate) async fn email_thread_ids_impl(
        &self,
        conversation: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let conversation = conversation.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT message_id FROM (SELECT message_id, at FROM email_messages \
                     WHERE conversation_id = ?1 ORDER BY at DESC, message_id LIMIT ?2) \
                     ORDER BY at, message_id",
                )
                .map_err(map_err)?;
            let ids = statement
                .query_map(params![conversation, limit], |row| row.get(0))
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(map_err)?;
            Ok(ids)
        })
        .await
    }

    pub(crate) async fn email_record_event_impl(
        &self,
        event: EmailEvent,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO email_events (address, kind, detail, at) \
                         VALUES (?1, ?2, substr(?3, 1, 2000), ?4)",
                        params![event.address, event.kind.as_str(), event.detail, event.at],
                    )
                    .map_err(map_err)?;
                if event.kind == EmailEventKind::Bounce {
                    connection
                        .execute(
                            "INSERT INTO email_failing (address, reason, at) \
                             VALUES (?1, substr(?2, 1, 500), ?3) \
                             ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, \
                             at = excluded.at",
                            params![event.address, event.detail, event.at],
                        )
                        .map_err(map_err)?;
                }
                // Bounded: the newest 10,000 events are kept.
                connection
                    .execute(
                        "DELETE FROM email_events WHERE id <= \
                         (SELECT max(id) - 10000 FROM email_events)",
                        [],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn email_events_impl(
        &self,
        limit: u32,
    ) -> Result<Vec<EmailEvent>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT address, kind, detail, at FROM email_events ORDER BY id DESC LIMIT ?1",
                )
                .map_err(map_err)?;
            let events = statement
                .query_map([limit], |row| {
                    let kind: String = row.get(1)?;
                    Ok(EmailEvent {
                        address: row.get(0)?,
                        kind: if kind == "bounce" {
                            EmailEventKind::Bounce
                        } else {
                            EmailEventKind::AutoReply
                        },
                        detail: row.get(2)?,
                        at: row.get(3)?,
                    })
                })
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(events)
        })
        .await
    }

    pub(crate) async fn email_failing_impl(&self, address: &str) -> Result<bool, StoreError> {
        let address = address.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT 1 FROM email_failing WHERE address = ?1",
                    [address],
                    |_| Ok(()),
                )
                .optional()
                .map(|found| found.is_some())
                .map_err(map_err)
        })
        .await
    }

    pub(crate) async fn email_visitor_impl(
        &self,
        site_id: &str,
        email: &str,
        name: Option<String>,
        new_id: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let (site_id, email, new_id) = (site_id.to_owned(), email.to_owned(), new_id.to_owned());
        self.writer
            .write(move |connection| {
                let found: Option<String> = connection
                    .query_row(
                        "SELECT id FROM visitors WHERE site_id = ?1 AND email = ?2 COLLATE NOCASE \
                         ORDER BY last_seen DESC LIMIT 1",
                        params![site_id, email],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(map_err)?;
                if let Some(id) = found {
                    connection
                        .execute(
                            "UPDATE visitors SET last_seen = ?2, name = coalesce(name, ?3) \
                             WHERE id = ?1",
                            params![id, now, name],
                        )
                        .map_err(map_err)?;
                    return Ok(id);
                }
                connection
                    .execute(
                        "INSERT INTO visitors (id, site_id, name, email, first_seen, last_seen) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![new_id, site_id, name, email, now],
                    )
                    .map_err(map_err)?;
                Ok(new_id)
            })
            .await
    }

    pub(crate) async fn email_schedule_unseen_impl(
        &self,
        conversation: &str,
        seq: u64,
        due_at: i64,
    ) -> Result<(), StoreError> {
        let conversation = conversation.to_owned();
        self.writer
            .write(move |connection| {
                // The first unseen reply and its deadline stay: later replies join the
                // batch already due.
                connection
                    .execute(
                        "INSERT OR IGNORE INTO email_unseen (conversation_id, from_seq, due_at) \
                         VALUES (?1, ?2, ?3)",
                        params![conversation, seq as i64, due_at],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn email_visitor_seen_impl(
        &self,
        conversation: &str,
        seq: u64,
    ) -> Result<(), StoreError> {
        let conversation = conversation.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM email_unseen WHERE conversation_id = ?1 AND from_seq <= ?2",
                        params![conversation, seq as i64],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn email_due_unseen_impl(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<UnseenDue>, StoreError> {
        self.writer
            .write(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "DELETE FROM email_unseen WHERE conversation_id IN \
                         (SELECT conversation_id FROM email_unseen WHERE due_at <= ?1 \
                          ORDER BY due_at LIMIT ?2) RETURNING conversation_id, from_seq, due_at",
                    )
                    .map_err(map_err)?;
                let mut due = statement
                    .query_map(params![now, limit], |row| {
                        Ok((
                            row.get::<_, i64>(2)?,
                            UnseenDue {
                                conversation: row.get(0)?,
                                from_seq: row.get::<_, i64>(1)?.max(0) as u64,
                            },
                        ))
                    })
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_err)?;
                // RETURNING follows no order: the oldest first.
                due.sort_by_key(|(due_at, _)| *due_at);
                Ok(due.into_iter().map(|(_, due)| due).collect())
            })
            .await
    }
}
