//! Retention, a visitor's export and erasure, the audit log (SQLite:
//! `crate::maintenance`), visitor events (`crate::visitor_events`), the customer
//! timeline (`crate::timeline`) and trigger counts (`crate::trigger_counts`).
//!
//! The same SQL as SQLite's, with these translations: visitors' `rowid` is `row_id`;
//! `COLLATE NOCASE` comparisons are `lower(…) = lower(…)` (and `email_failing.address`
//! is stored lower-cased); `json_extract` is `(data::jsonb ->> 'key')`; and where an
//! order of text ids must match SQLite's byte order (the timeline's exact cursor, a
//! visitor's conversations, the ids a selector finds) it says `COLLATE "C"`, whatever
//! the database's collation. PostgreSQL has no `secure_delete`: what is deleted is
//! left in dead tuples until `VACUUM` reclaims them.
//!
//! Deletions (a retention batch, a sweep step, an erasure) are writer jobs, each in its
//! savepoint of the writer's group-commit transaction, as in SQLite. An erasure first
//! locks the visitor's row, so a conversation another connection starts for them at the
//! same moment (the hub, while `salam visitor erase` runs beside it) either is seen (and
//! refuses the erasure) or fails for the visitor being gone.
//! An export reads in one `REPEATABLE READ` transaction: a consistent snapshot.

use super::rows::{
    CONVERSATION_SELECT, MESSAGE_COLUMNS, OFFLINE_REQUEST_COLUMNS, VISITOR_COLUMNS,
    conversation_from_row, message_from_row, offline_request_from_row, visitor_from_row,
};
use super::{PostgresStore, map_err};
use crate::maintenance::{ConversationRecord, RatingRecord};
use crate::timeline::{
    MAX_LINKED_VISITORS, MAX_PAGE, SESSION_GAP_MS, SESSION_SCAN, Source, TimelineRating,
    number_bound, session_start, text_bound,
};
use crate::trigger_counts::MAX_TRIGGERS_COUNTED;
use crate::visitor_events::MAX_EVENTS_PER_VISITOR;
use crate::*;
use pg::GenericClient;

// ------------------------------------------------------------------------ retention

/// Copies the report figures of a conversation into `report_facts` (before it is
/// deleted).
fn archive_conversation(
    client: &mut impl GenericClient,
    conversation: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            &format!(
                "INSERT INTO report_facts (site_id, created_hour, had_bot, deflected, handed_off, \
                 handoff_reason, first_response_ms, resolution_ms, score, unanswered, key_account) \
                 SELECT c.site_id, c.created_at - (c.created_at % 3600000), \
                 EXISTS (SELECT 1 FROM bot_turns b WHERE b.conversation_id = c.id), \
                 c.state = 'closed' AND c.handed_off_at IS NULL AND EXISTS (SELECT 1 FROM bot_turns b \
                     WHERE b.conversation_id = c.id AND b.decision = 'answer'), \
                 c.handed_off_at IS NOT NULL, c.handoff_reason, \
                 c.first_response_at - c.handed_off_at, c.closed_at - c.created_at, \
                 (SELECT r.score FROM ratings r WHERE r.conversation_id = c.id), \
                 (SELECT count(*) FROM bot_turns b WHERE b.conversation_id = c.id AND {}), \
                 c.key_account \
                 FROM conversations c WHERE c.id = $1",
                crate::sqlite::UNANSWERED_TURN
            ),
            &[&conversation],
        )
        .map_err(map_err)?;
    Ok(())
}

/// Deletes a conversation and everything that hangs off it, after archiving its report
/// facts (its e-mail rows go by `ON DELETE CASCADE`). Returns the number of messages
/// deleted.
fn delete_conversation(
    client: &mut impl GenericClient,
    conversation: &str,
) -> Result<u64, StoreError> {
    archive_conversation(client, conversation)?;
    let mut messages = 0;
    for (index, sql) in [
        "DELETE FROM messages WHERE conversation_id = $1",
        "DELETE FROM bot_turns WHERE conversation_id = $1",
        "DELETE FROM ratings WHERE conversation_id = $1",
        "DELETE FROM alerts WHERE conversation_id = $1",
        "DELETE FROM offline_requests WHERE conversation_id = $1",
        "DELETE FROM webhook_deliveries WHERE conversation_id = $1",
        "DELETE FROM conversations WHERE id = $1",
    ]
    .into_iter()
    .enumerate()
    {
        let deleted = client.execute(sql, &[&conversation]).map_err(map_err)?;
        if index == 0 {
            messages = deleted;
        }
    }
    Ok(messages)
}

pub(super) async fn retention_batch(
    store: &PostgresStore,
    site_id: &str,
    closed_before: i64,
    budget: RetentionBudget,
) -> Result<RetentionBatch, StoreError> {
    let site_id = site_id.to_owned();
    store
        .writer
        .write(move |transaction| {
            let per_batch = i64::from(budget.conversations.max(1));
            let candidates: Vec<(String, i64)> = transaction
                .query(
                    "SELECT id, last_seq FROM conversations WHERE site_id = $1 \
                     AND state = 'closed' AND closed_at < $2 ORDER BY closed_at, id LIMIT $3",
                    &[&site_id, &closed_before, &per_batch],
                )
                .map_err(map_err)?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            let full = candidates.len() as i64 >= per_batch;
            let mut batch = RetentionBatch::default();
            let mut planned_messages = 0_i64;
            for (conversation, last_seq) in candidates {
                if batch.conversations > 0
                    && planned_messages + last_seq > i64::from(budget.messages)
                {
                    batch.more = true;
                    break;
                }
                planned_messages += last_seq;
                batch.messages += delete_conversation(transaction, &conversation)?;
                batch.conversations += 1;
            }
            // Callbacks (contact details) left before the cut-off, whatever became of
            // them.
            batch.offline_requests = transaction
                .execute(
                    "DELETE FROM offline_requests WHERE id IN (SELECT id FROM offline_requests \
                     WHERE site_id = $1 AND created_at < $2 LIMIT $3)",
                    &[&site_id, &closed_before, &per_batch],
                )
                .map_err(map_err)?;
            batch.more |= full || batch.offline_requests >= per_batch as u64;
            Ok(batch)
        })
        .await
}

pub(super) async fn sweep_visitors(
    store: &PostgresStore,
    cutoffs: &[(String, i64)],
    after: i64,
    scan: u32,
) -> Result<VisitorSweep, StoreError> {
    let cutoffs = cutoffs.to_vec();
    store
        .writer
        .write(move |transaction| {
            let scan = i64::from(scan.max(1));
            let rows: Vec<(i64, String, String, i64)> = transaction
                .query(
                    "SELECT row_id, id, site_id, last_seen FROM visitors WHERE row_id > $1 \
                     ORDER BY row_id LIMIT $2",
                    &[&after, &scan],
                )
                .map_err(map_err)?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
                .collect();
            let mut sweep = VisitorSweep {
                deleted: 0,
                next: (rows.len() as i64 >= scan)
                    .then(|| rows.last().map(|row| row.0))
                    .flatten(),
            };
            for (_, visitor_id, site_id, last_seen) in rows {
                let Some((_, cutoff)) = cutoffs.iter().find(|(site, _)| *site == site_id) else {
                    continue;
                };
                if last_seen >= *cutoff {
                    continue;
                }
                // Its events go with it (`ON DELETE CASCADE`).
                sweep.deleted += transaction
                    .execute(
                        "DELETE FROM visitors WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM \
                         conversations c WHERE c.site_id = $2 AND c.visitor_id = $1) AND NOT \
                         EXISTS (SELECT 1 FROM offline_requests o WHERE o.visitor_id = $1)",
                        &[&visitor_id, &site_id],
                    )
                    .map_err(map_err)?;
            }
            Ok(sweep)
        })
        .await
}

// ------------------------------------------------------------- a visitor's data

pub(super) async fn find_visitors(
    store: &PostgresStore,
    selector: &VisitorSelector,
) -> Result<Vec<String>, StoreError> {
    let selector = selector.clone();
    store
        .read(move |client| {
            let rows = match &selector {
                VisitorSelector::Id(id) => client.query(
                    "SELECT id FROM (SELECT id FROM visitors WHERE id = $1 \
                     UNION SELECT visitor_id FROM offline_requests WHERE visitor_id = $1) found \
                     ORDER BY id COLLATE \"C\"",
                    &[id],
                ),
                VisitorSelector::ExternalId {
                    external_id,
                    site_id,
                } => client.query(
                    "SELECT id FROM visitors WHERE external_id = $1 \
                     AND ($2::text IS NULL OR site_id = $2) ORDER BY id COLLATE \"C\"",
                    &[external_id, site_id],
                ),
                VisitorSelector::Email(email) => client.query(
                    "SELECT id FROM (SELECT id FROM visitors WHERE lower(email) = lower($1) \
                     UNION SELECT visitor_id FROM offline_requests \
                     WHERE lower(email) = lower($1)) found ORDER BY id COLLATE \"C\"",
                    &[&email.trim()],
                ),
            }
            .map_err(map_err)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
        .await
}

/// The ids of a visitor's conversations (through the site's visitor index), oldest
/// first.
fn conversations_of(
    client: &mut impl GenericClient,
    visitor_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query(
            "SELECT c.id FROM visitors v JOIN conversations c \
             ON c.site_id = v.site_id AND c.visitor_id = v.id \
             WHERE v.id = $1 ORDER BY c.created_at, c.id COLLATE \"C\"",
            &[&visitor_id],
        )
        .map_err(map_err)?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// A row of `id, site_id, visitor_id, kind, data, at` from `visitor_events` (`None`: a
/// kind this release does not know).
fn event_from_row(row: &pg::Row) -> Option<VisitorEvent> {
    let kind: String = row.get(3);
    let data: String = row.get(4);
    VisitorEventKind::parse(&kind).map(|kind| VisitorEvent {
        id: row.get(0),
        site_id: row.get(1),
        visitor_id: row.get(2),
        kind,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        at: row.get(5),
    })
}

/// Every event of a visitor, oldest first (their data export).
fn events_of_visitor(
    client: &mut impl GenericClient,
    visitor_id: &str,
) -> Result<Vec<VisitorEvent>, StoreError> {
    Ok(client
        .query(
            "SELECT id, site_id, visitor_id, kind, data, at FROM visitor_events \
             WHERE visitor_id = $1 ORDER BY id",
            &[&visitor_id],
        )
        .map_err(map_err)?
        .iter()
        .filter_map(event_from_row)
        .collect())
}

/// The site and verified external id of a visitor (`None`: no such visitor).
fn identity_of(
    client: &mut impl GenericClient,
    visitor_id: &str,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT site_id, external_id FROM visitors WHERE id = $1",
            &[&visitor_id],
        )
        .map_err(map_err)?
        .map(|row| (row.get(0), row.get(1))))
}

/// Everything stored about a visitor (`None`: nothing at all), as
/// `crate::maintenance::export_visitor`.
fn read_export(
    client: &mut impl GenericClient,
    visitor_id: &str,
) -> Result<Option<VisitorRecord>, StoreError> {
    let profile = client
        .query_opt(
            &format!("SELECT {VISITOR_COLUMNS} FROM visitors WHERE id = $1"),
            &[&visitor_id],
        )
        .map_err(map_err)?
        .map(|row| visitor_from_row(&row));
    let mut conversations = Vec::new();
    for id in conversations_of(client, visitor_id)? {
        let Some(row) = client
            .query_opt(
                "SELECT id, site_id, state, department, agent_id, created_at, updated_at, \
                 closed_at FROM conversations WHERE id = $1",
                &[&id],
            )
            .map_err(map_err)?
        else {
            continue;
        };
        let messages = client
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq"
                ),
                &[&id],
            )
            .map_err(map_err)?
            .iter()
            .map(message_from_row)
            .collect();
        let rating = client
            .query_opt(
                "SELECT score, comment, at FROM ratings WHERE conversation_id = $1",
                &[&id],
            )
            .map_err(map_err)?
            .map(|rating| RatingRecord {
                score: rating.get::<_, i64>(0).clamp(0, 255) as u8,
                comment: rating.get(1),
                at: rating.get(2),
            });
        conversations.push(ConversationRecord {
            id: row.get(0),
            site_id: row.get(1),
            state: row.get(2),
            department: row.get(3),
            agent_id: row.get(4),
            created_at: row.get(5),
            updated_at: row.get(6),
            closed_at: row.get(7),
            messages,
            rating,
        });
    }
    let offline_requests = client
        .query(
            &format!(
                "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests WHERE visitor_id = $1 \
                 ORDER BY id"
            ),
            &[&visitor_id],
        )
        .map_err(map_err)?
        .iter()
        .map(offline_request_from_row)
        .collect::<Vec<_>>();
    let events = events_of_visitor(client, visitor_id)?;
    let contact = super::rest::contact_of_visitor(client, visitor_id)?;
    if profile.is_none() && conversations.is_empty() && offline_requests.is_empty() {
        return Ok(None);
    }
    Ok(Some(VisitorRecord {
        visitor_id: visitor_id.to_owned(),
        profile,
        conversations,
        offline_requests,
        events,
        contact,
    }))
}

pub(super) async fn export_visitor(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Option<VisitorRecord>, StoreError> {
    let visitor_id = visitor_id.to_owned();
    store
        .read(move |client| {
            // One read transaction: the export is a consistent snapshot.
            let mut transaction = client
                .build_transaction()
                .isolation_level(pg::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(map_err)?;
            let record = read_export(&mut transaction, &visitor_id)?;
            transaction.commit().map_err(map_err)?;
            Ok(record)
        })
        .await
}

/// Deletes what the e-mail channel keeps about a visitor's addresses (their events and
/// their failing mark), as `crate::email::erase_addresses`: before the profile and the
/// callbacks that hold the addresses are deleted.
fn erase_addresses(client: &mut impl GenericClient, visitor_id: &str) -> Result<(), StoreError> {
    const ADDRESSES: &str = "(SELECT lower(email) FROM visitors WHERE id = $1 \
         AND email IS NOT NULL UNION SELECT lower(email) FROM offline_requests \
         WHERE visitor_id = $1 AND email IS NOT NULL)";
    for sql in [
        format!("DELETE FROM email_events WHERE lower(address) IN {ADDRESSES}"),
        // Stored lower-cased.
        format!("DELETE FROM email_failing WHERE address IN {ADDRESSES}"),
    ] {
        client.execute(&sql, &[&visitor_id]).map_err(map_err)?;
    }
    Ok(())
}

pub(super) async fn erase_visitor(
    store: &PostgresStore,
    visitor_id: &str,
    note: AuditNote,
) -> Result<Erasure, StoreError> {
    let visitor_id = visitor_id.to_owned();
    store
        .writer
        .write(move |transaction| {
            // Conversations being created for the visitor (which lock the visitor's row
            // for their foreign key) commit first and are seen below; later ones wait,
            // then find the visitor gone.
            transaction
                .execute(
                    "SELECT 1 FROM visitors WHERE id = $1 FOR UPDATE",
                    &[&visitor_id],
                )
                .map_err(map_err)?;
            let open: Vec<String> = transaction
                .query(
                    "SELECT c.id FROM visitors v JOIN conversations c \
                     ON c.site_id = v.site_id AND c.visitor_id = v.id \
                     WHERE v.id = $1 AND c.state != 'closed' ORDER BY c.id COLLATE \"C\"",
                    &[&visitor_id],
                )
                .map_err(map_err)?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if !open.is_empty() {
                return Ok(Erasure::Open(open));
            }
            let mut erased = Erased::default();
            for conversation in conversations_of(transaction, &visitor_id)? {
                erased.messages += delete_conversation(transaction, &conversation)?;
                erased.conversations += 1;
            }
            erase_addresses(transaction, &visitor_id)?;
            erased.offline_requests = transaction
                .execute(
                    "DELETE FROM offline_requests WHERE visitor_id = $1",
                    &[&visitor_id],
                )
                .map_err(map_err)?;
            erased.contacts = super::rest::erase_contact_of_visitor(transaction, &visitor_id)?;
            // Their events go with them (`ON DELETE CASCADE`).
            erased.visitors = transaction
                .execute("DELETE FROM visitors WHERE id = $1", &[&visitor_id])
                .map_err(map_err)?;
            let detail = serde_json::json!({ "selector": note.selector, "erased": erased });
            insert_audit(
                transaction,
                &NewAudit {
                    at: note.at,
                    actor: note.actor.clone(),
                    action: "visitor.erase".into(),
                    subject: visitor_id.clone(),
                    detail: detail.to_string(),
                },
            )?;
            Ok(Erasure::Erased(erased))
        })
        .await
}

// ---------------------------------------------------------------------- audit log

fn insert_audit(client: &mut impl GenericClient, entry: &NewAudit) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO audit_log (at, actor, action, subject, detail) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &entry.at,
                &entry.actor,
                &entry.action,
                &entry.subject,
                &entry.detail,
            ],
        )
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn record_audit(store: &PostgresStore, entry: NewAudit) -> Result<(), StoreError> {
    store
        .writer
        .write(move |transaction| insert_audit(transaction, &entry))
        .await
}

pub(super) async fn audit_log(
    store: &PostgresStore,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    store
        .read(move |client| {
            Ok(client
                .query(
                    "SELECT id, at, actor, action, subject, detail FROM audit_log \
                     ORDER BY id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .map_err(map_err)?
                .iter()
                .map(|row| AuditEntry {
                    id: row.get(0),
                    at: row.get(1),
                    actor: row.get(2),
                    action: row.get(3),
                    subject: row.get(4),
                    detail: row.get(5),
                })
                .collect())
        })
        .await
}

// ------------------------------------------------------------------ visitor events

pub(super) async fn record_visitor_event(
    store: &PostgresStore,
    event: NewVisitorEvent,
) -> Result<(), StoreError> {
    store
        .writer
        .write(move |transaction| {
            let inserted = transaction
                .query_opt(
                    "INSERT INTO visitor_events (site_id, visitor_id, kind, data, at) \
                     SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint WHERE EXISTS \
                     (SELECT 1 FROM visitors WHERE id = $2 AND site_id = $1) RETURNING id",
                    &[
                        &event.site_id,
                        &event.visitor_id,
                        &event.kind.as_str(),
                        &event.data.to_string(),
                        &event.at,
                    ],
                )
                .map_err(map_err)?;
            let Some(inserted) = inserted else {
                return Err(StoreError::NotFound);
            };
            // Every 64th event, trim the visitor's oldest beyond the cap.
            if inserted.get::<_, i64>(0) % 64 == 0 {
                transaction
                    .execute(
                        "DELETE FROM visitor_events WHERE visitor_id = $1 AND id <= \
                         (SELECT id FROM visitor_events WHERE visitor_id = $1 \
                          ORDER BY id DESC LIMIT 1 OFFSET $2)",
                        &[&event.visitor_id, &MAX_EVENTS_PER_VISITOR],
                    )
                    .map_err(map_err)?;
            }
            Ok(())
        })
        .await
}

pub(super) async fn visitor_events(
    store: &PostgresStore,
    visitor_ids: Vec<String>,
    limit: u32,
) -> Result<Vec<VisitorEvent>, StoreError> {
    store
        .read(move |client| {
            let statement = client
                .prepare(
                    "SELECT id, site_id, visitor_id, kind, data, at FROM visitor_events \
                     WHERE visitor_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .map_err(map_err)?;
            let mut events = Vec::new();
            for visitor_id in visitor_ids.iter().take(100) {
                let rows = client
                    .query(&statement, &[visitor_id, &i64::from(limit)])
                    .map_err(map_err)?;
                events.extend(rows.iter().filter_map(event_from_row));
            }
            events.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
            events.truncate(limit as usize);
            Ok(events)
        })
        .await
}

// ------------------------------------------------------------------------ timeline

/// When the conversation closed, and its rating.
fn conversation_extras(
    client: &mut impl GenericClient,
    id: &str,
) -> Result<(Option<i64>, Option<TimelineRating>), StoreError> {
    let Some(row) = client
        .query_opt(
            "SELECT c.closed_at, r.score, r.comment, r.at FROM conversations c \
             LEFT JOIN ratings r ON r.conversation_id = c.id WHERE c.id = $1",
            &[&id],
        )
        .map_err(map_err)?
    else {
        return Ok((None, None));
    };
    let rating = row.get::<_, Option<i64>>(1).map(|score| TimelineRating {
        score: score.clamp(0, 5) as u8,
        comment: row.get(2),
        at: row.get::<_, Option<i64>>(3).unwrap_or_default(),
    });
    Ok((row.get(0), rating))
}

/// One page of a customer's timeline, as `crate::timeline::read_timeline`.
fn read_timeline(
    client: &mut impl GenericClient,
    query: TimelineQuery,
) -> Result<Option<Timeline>, StoreError> {
    let Some((site_id, external_id)) = identity_of(client, &query.visitor_id)? else {
        return Ok(None);
    };
    let mut visitor_ids = vec![query.visitor_id.clone()];
    if let Some(external_id) = &external_id {
        // The visitors that verified the same external id: the customer's other
        // browsers and devices.
        let same_user = "SELECT id FROM visitors WHERE site_id = $1 AND external_id = $2 \
                         ORDER BY first_seen, id COLLATE \"C\" LIMIT $3";
        // The e-mail channel's visitors known only by an address are the customer's
        // when a signed identity of theirs vouched for that address.
        let signed_address = "SELECT m.id FROM visitors v JOIN visitors m \
             ON m.site_id = v.site_id AND lower(m.email) = lower(v.email) \
             WHERE v.site_id = $1 AND v.external_id = $2 AND v.email IS NOT NULL \
             AND strpos(v.verified, '\"email\"') > 0 AND m.external_id IS NULL \
             GROUP BY m.id ORDER BY m.id COLLATE \"C\" LIMIT $3";
        for sql in [same_user, signed_address] {
            let linked = client
                .query(sql, &[&site_id, external_id, &(MAX_LINKED_VISITORS as i64)])
                .map_err(map_err)?;
            for row in linked {
                let id: String = row.get(0);
                if !visitor_ids.contains(&id) && visitor_ids.len() < MAX_LINKED_VISITORS {
                    visitor_ids.push(id);
                }
            }
        }
    }

    // The current session of the visitor asked about.
    let page_times: Vec<i64> = client
        .query(
            "SELECT at FROM visitor_events WHERE visitor_id = $1 AND kind = 'page_view' \
             ORDER BY at DESC, id DESC LIMIT $2",
            &[&query.visitor_id, &i64::from(SESSION_SCAN)],
        )
        .map_err(map_err)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let session_since = session_start(&page_times, SESSION_GAP_MS);

    let limit = query.limit.clamp(1, MAX_PAGE);
    // One more than a page, to know whether another page follows.
    let fetch = i64::from(limit) + 1;
    let cursor = query.before.as_ref();
    let mut entries = Vec::new();

    // Text ids compare byte by byte, as in SQLite and in the cursor's order.
    let (conversation_at, conversation_key) = text_bound(cursor);
    let conversation_sql = format!(
        "{CONVERSATION_SELECT} WHERE c.site_id = $1 AND c.visitor_id = $2 \
         AND (c.created_at < $3 OR (c.created_at = $3 AND c.id COLLATE \"C\" < $4)) \
         ORDER BY c.created_at DESC, c.id COLLATE \"C\" DESC LIMIT $5"
    );
    let (request_at, request_key) = number_bound(cursor, Source::OfflineRequest);
    let request_sql = format!(
        "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests WHERE visitor_id = $1 \
         AND site_id = $2 AND (created_at < $3 OR (created_at = $3 AND id < $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    let (event_at, event_key) = number_bound(cursor, Source::Event);
    let event_sql = "SELECT id, site_id, visitor_id, kind, data, at FROM visitor_events \
         WHERE visitor_id = $1 AND (kind <> 'page_view' OR at >= $2) \
         AND (at < $3 OR (at = $3 AND id < $4)) \
         ORDER BY at DESC, id DESC LIMIT $5";
    for visitor_id in &visitor_ids {
        let conversations: Vec<Conversation> = client
            .query(
                &conversation_sql,
                &[
                    &site_id,
                    visitor_id,
                    &conversation_at,
                    &conversation_key,
                    &fetch,
                ],
            )
            .map_err(map_err)?
            .iter()
            .map(conversation_from_row)
            .collect();
        for conversation in conversations {
            let (closed_at, rating) = conversation_extras(client, &conversation.id)?;
            entries.push(TimelineEntry::Conversation {
                at: conversation.created_at,
                visitor: conversation.visitor_id.clone(),
                conversation: Box::new(conversation.summary()),
                closed_at,
                rating,
            });
        }
        let requests = client
            .query(
                &request_sql,
                &[visitor_id, &site_id, &request_at, &request_key, &fetch],
            )
            .map_err(map_err)?;
        entries.extend(
            requests
                .iter()
                .map(|row| TimelineEntry::from_request(offline_request_from_row(row))),
        );
        // Proactive messages of every visitor; pages only of the current session of the
        // visitor asked about.
        let session = if *visitor_id == query.visitor_id {
            session_since.unwrap_or(i64::MAX)
        } else {
            i64::MAX
        };
        let events = client
            .query(
                event_sql,
                &[visitor_id, &session, &event_at, &event_key, &fetch],
            )
            .map_err(map_err)?;
        entries.extend(
            events
                .iter()
                .filter_map(event_from_row)
                .map(TimelineEntry::from_event),
        );
    }
    entries.sort_by_cached_key(|entry| {
        let cursor = entry.cursor();
        std::cmp::Reverse((cursor.at, cursor.source, cursor.key))
    });
    let next = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(TimelineEntry::cursor)
    } else {
        None
    };
    Ok(Some(Timeline {
        visitor_id: query.visitor_id,
        site_id,
        external_id,
        visitor_ids,
        session_since,
        entries,
        next,
    }))
}

pub(super) async fn customer_timeline(
    store: &PostgresStore,
    query: TimelineQuery,
) -> Result<Option<Timeline>, StoreError> {
    store.read(move |client| read_timeline(client, query)).await
}

// ------------------------------------------------------------------ trigger counts

pub(super) async fn trigger_counts(
    store: &PostgresStore,
    site_id: &str,
    since: i64,
    until: i64,
) -> Result<Vec<TriggerCount>, StoreError> {
    let site_id = site_id.to_owned();
    store
        .read(move |client| {
            let rows = client
                .query(
                    // The CASE keeps the JSON of other events (pages, whose titles the
                    // visitor's browser sends) from ever being parsed here.
                    "SELECT trigger, kind, count(*) FROM (SELECT kind, CASE WHEN kind \
                     LIKE 'trigger_%' THEN data::jsonb ->> 'trigger' END AS trigger \
                     FROM visitor_events WHERE site_id = $1 AND kind LIKE 'trigger_%' \
                     AND at >= $2 AND at < $3) events WHERE trigger IS NOT NULL \
                     GROUP BY trigger, kind ORDER BY trigger COLLATE \"C\", kind COLLATE \"C\" \
                     LIMIT $4",
                    &[&site_id, &since, &until, &(MAX_TRIGGERS_COUNTED * 4)],
                )
                .map_err(map_err)?;
            Ok(rows
                .iter()
                .filter_map(|row| {
                    let kind: String = row.get(1);
                    VisitorEventKind::parse(&kind).map(|kind| TriggerCount {
                        trigger: row.get(0),
                        kind,
                        count: row.get(2),
                    })
                })
                .collect())
        })
        .await
}
