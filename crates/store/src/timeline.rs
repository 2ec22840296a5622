//! The customer timeline (issue 19): one history of a customer, newest first, for the
//! console beside a conversation.
//!
//! **Who the customer is.** A visitor the site identified (`identify` verified an
//! `external_id`) is one customer with every other visitor of the same site that
//! verified the same external id: their other browsers and devices (at most
//! [`MAX_LINKED_VISITORS`]), and with the e-mail channel's visitors known only by an
//! address (no external id) when a signed identity of the customer vouched for that
//! address (a mail that came before the customer identified anywhere). An anonymous
//! visitor is only themself. The link is computed when read, like a contact's visitors
//! ([`crate::contacts`]).
//!
//! **What is in it**, as a closed set of entry kinds ([`TimelineEntry`]): every
//! conversation of those visitors on every channel (chat or e-mail) with its state,
//! times, last text and rating; their offline (callback) requests; the proactive
//! messages shown to them, opened, replied to and turned into conversations; and the
//! pages of the **current session** of the visitor asked about: their page views since
//! the last gap of more than [`SESSION_GAP_MS`] (30 minutes) between two page views,
//! that is, their latest visit (still going on, or the last one if they left).
//!
//! **Bounded.** A page holds at most [`MAX_PAGE`] entries; [`TimelineCursor`] (the last
//! entry of a page) gives the next one, exact even when entries share a millisecond.
//! Every source is read with the same bound per visitor, then merged.

use crate::sqlite::{
    CONVERSATION_SELECT, OFFLINE_REQUEST_COLUMNS, SqliteStore, conversation_from_row, map_err,
    offline_request_from_row,
};
use crate::visitor_events::{VisitorEvent, VisitorEventKind, event_from_row};
use crate::{OfflineRequest, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use salam_protocol::ConversationSummary;
use serde::Serialize;

/// Visitors of one customer read at most (the oldest first).
pub const MAX_LINKED_VISITORS: usize = 100;
/// Entries in one page at most.
pub const MAX_PAGE: u32 = 200;
/// A gap between two page views longer than this starts a new session.
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;
/// Page views looked at to find where the current session began (a visitor keeps at
/// most [`crate::visitor_events::MAX_EVENTS_PER_VISITOR`] events anyway).
pub(crate) const SESSION_SCAN: u32 = 1000;

/// What to read.
#[derive(Debug, Clone)]
pub struct TimelineQuery {
    /// The visitor the console looks at (a conversation's visitor).
    pub visitor_id: String,
    /// Entries after this one (the `next` of the previous page); `None`: the newest.
    pub before: Option<TimelineCursor>,
    /// Entries at most (capped at [`MAX_PAGE`]).
    pub limit: u32,
}

/// A position in a timeline: the entry's time, its source and its id. Entries are
/// ordered by time, then source, then id, newest (largest) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineCursor {
    pub at: i64,
    pub(crate) source: Source,
    pub(crate) key: Key,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    Event = 0,
    OfflineRequest = 1,
    Conversation = 2,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Number(i64),
    Text(String),
}

impl TimelineCursor {
    /// The cursor as text: `AT.e.ID` (a visitor event), `AT.o.ID` (an offline request)
    /// or `AT.c.ID` (a conversation).
    pub fn encode(&self) -> String {
        let source = match self.source {
            Source::Event => "e",
            Source::OfflineRequest => "o",
            Source::Conversation => "c",
        };
        match &self.key {
            Key::Number(id) => format!("{}.{source}.{id}", self.at),
            Key::Text(id) => format!("{}.{source}.{id}", self.at),
        }
    }

    /// A cursor from [`TimelineCursor::encode`]; `None` when it is not one.
    pub fn decode(text: &str) -> Option<TimelineCursor> {
        let mut parts = text.splitn(3, '.');
        let at: i64 = parts.next()?.parse().ok()?;
        let source = parts.next()?;
        let id = parts.next()?;
        let (source, key) = match source {
            "e" => (Source::Event, Key::Number(id.parse().ok()?)),
            "o" => (Source::OfflineRequest, Key::Number(id.parse().ok()?)),
            "c" if !id.is_empty() && id.len() <= 64 => (Source::Conversation, Key::Text(id.into())),
            _ => return None,
        };
        Some(TimelineCursor { at, source, key })
    }
}

/// One page of a customer's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// The visitor asked about.
    pub visitor_id: String,
    pub site_id: String,
    /// The site's user id, when the visitor is identified.
    pub external_id: Option<String>,
    /// Every visitor of this customer (the one asked about alone when anonymous).
    pub visitor_ids: Vec<String>,
    /// When the current session began (the first page view after the last gap of more
    /// than 30 minutes); `None` when the visitor has no page views.
    pub session_since: Option<i64>,
    /// Newest first.
    pub entries: Vec<TimelineEntry>,
    /// The cursor of the next page; `None` when this was the last one.
    #[serde(skip)]
    pub next: Option<TimelineCursor>,
}

/// A conversation's rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRating {
    pub score: u8,
    pub comment: Option<String>,
    pub at: i64,
}

/// A proactive message's event: which message (`trigger`, its id) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerEntry {
    pub at: i64,
    pub id: i64,
    pub visitor: String,
    pub trigger: Option<String>,
    pub text: Option<String>,
}

/// One entry of a timeline, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineEntry {
    /// A conversation (`at`: when it began), on any channel (`conversation.channel`).
    Conversation {
        at: i64,
        visitor: String,
        /// Boxed: a summary is large, and most entries are small.
        conversation: Box<ConversationSummary>,
        closed_at: Option<i64>,
        rating: Option<TimelineRating>,
    },
    /// Contact details left for a callback (`done_at`: when an agent dealt with it).
    OfflineRequest {
        at: i64,
        id: i64,
        visitor: String,
        conversation: Option<String>,
        name: Option<String>,
        email: Option<String>,
        phone: Option<String>,
        message: Option<String>,
        done_at: Option<i64>,
    },
    /// A page of the current session.
    PageView {
        at: i64,
        id: i64,
        visitor: String,
        url: Option<String>,
        title: Option<String>,
    },
    TriggerShown(TriggerEntry),
    TriggerOpened(TriggerEntry),
    TriggerReplied(TriggerEntry),
    TriggerConverted(TriggerEntry),
}

impl TimelineEntry {
    pub(crate) fn cursor(&self) -> TimelineCursor {
        let (at, source, key) = match self {
            TimelineEntry::Conversation {
                at, conversation, ..
            } => (
                *at,
                Source::Conversation,
                Key::Text(conversation.id.clone()),
            ),
            TimelineEntry::OfflineRequest { at, id, .. } => {
                (*at, Source::OfflineRequest, Key::Number(*id))
            }
            TimelineEntry::PageView { at, id, .. }
            | TimelineEntry::TriggerShown(TriggerEntry { at, id, .. })
            | TimelineEntry::TriggerOpened(TriggerEntry { at, id, .. })
            | TimelineEntry::TriggerReplied(TriggerEntry { at, id, .. })
            | TimelineEntry::TriggerConverted(TriggerEntry { at, id, .. }) => {
                (*at, Source::Event, Key::Number(*id))
            }
        };
        TimelineCursor { at, source, key }
    }

    pub(crate) fn from_event(event: VisitorEvent) -> TimelineEntry {
        let text = |name: &str| match &event.data[name] {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        let trigger = || TriggerEntry {
            at: event.at,
            id: event.id,
            visitor: event.visitor_id.clone(),
            trigger: text("trigger"),
            text: text("text"),
        };
        match event.kind {
            VisitorEventKind::PageView => TimelineEntry::PageView {
                at: event.at,
                id: event.id,
                visitor: event.visitor_id.clone(),
                url: text("url"),
                title: text("title"),
            },
            VisitorEventKind::TriggerShown => TimelineEntry::TriggerShown(trigger()),
            VisitorEventKind::TriggerOpened => TimelineEntry::TriggerOpened(trigger()),
            VisitorEventKind::TriggerReplied => TimelineEntry::TriggerReplied(trigger()),
            VisitorEventKind::TriggerConverted => TimelineEntry::TriggerConverted(trigger()),
        }
    }

    pub(crate) fn from_request(request: OfflineRequest) -> TimelineEntry {
        TimelineEntry::OfflineRequest {
            at: request.created_at,
            id: request.id,
            visitor: request.visitor_id,
            conversation: request.conversation,
            name: request.name,
            email: request.email,
            phone: request.phone,
            message: request.message,
            done_at: request.done_at,
        }
    }
}

/// Where the current session began: walking the page views from the newest (times
/// newest first), the first one after a gap longer than `gap`. `None` without any.
pub fn session_start(times_newest_first: &[i64], gap: i64) -> Option<i64> {
    let mut start = *times_newest_first.first()?;
    for &earlier in &times_newest_first[1..] {
        if start - earlier > gap {
            break;
        }
        start = earlier;
    }
    Some(start)
}

/// The SQL bounds of one source for a cursor: rows with `at < ?A OR (at = ?A AND id <
/// ?K)`. Before the cursor's source in the order, its whole millisecond counts; after
/// it, none of it.
pub(crate) fn number_bound(cursor: Option<&TimelineCursor>, source: Source) -> (i64, i64) {
    match cursor {
        None => (i64::MAX, i64::MAX),
        Some(cursor) => match (source.cmp(&cursor.source), &cursor.key) {
            (std::cmp::Ordering::Less, _) => (cursor.at, i64::MAX),
            (std::cmp::Ordering::Equal, Key::Number(id)) => (cursor.at, *id),
            _ => (cursor.at, i64::MIN),
        },
    }
}

/// [`number_bound`] for conversations, whose ids are text.
pub(crate) fn text_bound(cursor: Option<&TimelineCursor>) -> (i64, String) {
    // Above every id (ids are ASCII).
    const TOP: &str = "\u{10FFFF}";
    match cursor {
        None => (i64::MAX, TOP.into()),
        Some(cursor) => match &cursor.key {
            Key::Text(id) if cursor.source == Source::Conversation => (cursor.at, id.clone()),
            // Every other source comes before conversations in the order.
            _ => (cursor.at, String::new()),
        },
    }
}

fn read_timeline(
    connection: &Connection,
    query: TimelineQuery,
) -> Result<Option<Timeline>, StoreError> {
    let visitor: Option<(String, Option<String>)> = connection
        .prepare_cached("SELECT site_id, external_id FROM visitors WHERE id = ?1")
        .map_err(map_err)?
        .query_row([&query.visitor_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(map_err)?;
    let Some((site_id, external_id)) = visitor else {
        return Ok(None);
    };
    let mut visitor_ids = vec![query.visitor_id.clone()];
    if let Some(external_id) = &external_id {
        // The visitors that verified the same external id: the customer's other
        // browsers and devices.
        let same_user = "SELECT id FROM visitors WHERE site_id = ?1 AND external_id = ?2 \
                         ORDER BY first_seen, id LIMIT ?3";
        // The e-mail channel's visitors known only by an address (a mail that came
        // before the customer identified anywhere) are the customer's when a signed
        // identity of theirs vouched for that address.
        let signed_address = "SELECT DISTINCT m.id FROM visitors v JOIN visitors m \
             ON m.site_id = v.site_id AND m.email = v.email COLLATE NOCASE \
             WHERE v.site_id = ?1 AND v.external_id = ?2 AND v.email IS NOT NULL \
             AND instr(v.verified, '\"email\"') > 0 AND m.external_id IS NULL \
             ORDER BY m.id LIMIT ?3";
        for sql in [same_user, signed_address] {
            let mut statement = connection.prepare_cached(sql).map_err(map_err)?;
            let linked = statement
                .query_map(
                    params![site_id, external_id, MAX_LINKED_VISITORS as i64],
                    |row| row.get::<_, String>(0),
                )
                .map_err(map_err)?;
            for id in linked {
                let id = id.map_err(map_err)?;
                if !visitor_ids.contains(&id) && visitor_ids.len() < MAX_LINKED_VISITORS {
                    visitor_ids.push(id);
                }
            }
        }
    }

    // The current session of the visitor asked about.
    let page_times: Vec<i64> = connection
        .prepare_cached(
            "SELECT at FROM visitor_events WHERE visitor_id = ?1 AND kind = 'page_view' \
             ORDER BY at DESC, id DESC LIMIT ?2",
        )
        .map_err(map_err)?
        .query_map(params![query.visitor_id, SESSION_SCAN], |row| row.get(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_err)?;
    let session_since = session_start(&page_times, SESSION_GAP_MS);

    let limit = query.limit.clamp(1, MAX_PAGE);
    // One more than a page, to know whether another page follows.
    let fetch = i64::from(limit) + 1;
    let cursor = query.before.as_ref();
    let mut entries = Vec::new();

    let (conversation_at, conversation_key) = text_bound(cursor);
    let conversation_sql = format!(
        "{CONVERSATION_SELECT} WHERE c.site_id = ?1 AND c.visitor_id = ?2 \
         AND (c.created_at < ?3 OR (c.created_at = ?3 AND c.id < ?4)) \
         ORDER BY c.created_at DESC, c.id DESC LIMIT ?5"
    );
    let (request_at, request_key) = number_bound(cursor, Source::OfflineRequest);
    let request_sql = format!(
        "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests WHERE visitor_id = ?1 \
         AND site_id = ?2 AND (created_at < ?3 OR (created_at = ?3 AND id < ?4)) \
         ORDER BY created_at DESC, id DESC LIMIT ?5"
    );
    let (event_at, event_key) = number_bound(cursor, Source::Event);
    for visitor_id in &visitor_ids {
        let conversations = connection
            .prepare_cached(&conversation_sql)
            .map_err(map_err)?
            .query_map(
                params![
                    site_id,
                    visitor_id,
                    conversation_at,
                    conversation_key,
                    fetch
                ],
                conversation_from_row,
            )
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?;
        for conversation in conversations {
            let (closed_at, rating) = conversation_extras(connection, &conversation.id)?;
            entries.push(TimelineEntry::Conversation {
                at: conversation.created_at,
                visitor: conversation.visitor_id.clone(),
                conversation: Box::new(conversation.summary()),
                closed_at,
                rating,
            });
        }
        let requests = connection
            .prepare_cached(&request_sql)
            .map_err(map_err)?
            .query_map(
                params![visitor_id, site_id, request_at, request_key, fetch],
                offline_request_from_row,
            )
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?;
        entries.extend(requests.into_iter().map(TimelineEntry::from_request));
        // Proactive messages of every visitor; pages only of the current session of the
        // visitor asked about.
        let session = if *visitor_id == query.visitor_id {
            session_since.unwrap_or(i64::MAX)
        } else {
            i64::MAX
        };
        let events = connection
            .prepare_cached(
                "SELECT id, site_id, visitor_id, kind, data, at FROM visitor_events \
                 WHERE visitor_id = ?1 AND (kind <> 'page_view' OR at >= ?2) \
                 AND (at < ?3 OR (at = ?3 AND id < ?4)) \
                 ORDER BY at DESC, id DESC LIMIT ?5",
            )
            .map_err(map_err)?
            .query_map(
                params![visitor_id, session, event_at, event_key, fetch],
                event_from_row,
            )
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?;
        entries.extend(events.into_iter().flatten().map(TimelineEntry::from_event));
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

/// When the conversation closed, and its rating.
fn conversation_extras(
    connection: &Connection,
    id: &str,
) -> Result<(Option<i64>, Option<TimelineRating>), StoreError> {
    connection
        .prepare_cached(
            "SELECT c.closed_at, r.score, r.comment, r.at FROM conversations c \
             LEFT JOIN ratings r ON r.conversation_id = c.id WHERE c.id = ?1",
        )
        .map_err(map_err)?
        .query_row([id], |row| {
            let closed_at: Option<i64> = row.get(0)?;
            let rating = match row.get::<_, Option<i64>>(1)? {
                Some(score) => Some(TimelineRating {
                    score: score.clamp(0, 5) as u8,
                    comment: row.get(2)?,
                    at: row.get::<_, Option<i64>>(3)?.unwrap_or_default(),
                }),
                None => None,
            };
            Ok((closed_at, rating))
        })
        .optional()
        .map_err(map_err)
        .map(Option::unwrap_or_default)
}

/// Every event of a visitor, oldest first (their data export).
pub(crate) fn events_of_visitor(
    connection: &Connection,
    visitor_id: &str,
) -> Result<Vec<VisitorEvent>, StoreError> {
    let events = connection
        .prepare_cached(
            "SELECT id, site_id, visitor_id, kind, data, at FROM visitor_events \
             WHERE visitor_id = ?1 ORDER BY id",
        )
        .map_err(map_err)?
        .query_map([visitor_id], event_from_row)
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)?;
    Ok(events.into_iter().flatten().collect())
}

impl SqliteStore {
    pub(crate) async fn customer_timeline_impl(
        &self,
        query: TimelineQuery,
    ) -> Result<Option<Timeline>, StoreError> {
        self.read(move |connection| read_timeline(connection, query))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        IdentityUpdate, NewVisitorEvent, OfflineRequest, SqliteOptions, Store, Transition,
        VisitorUpdate,
    };
    use salam_protocol::ConversationState;
    use serde_json::json;

    fn kinds(timeline: &Timeline) -> Vec<String> {
        timeline
            .entries
            .iter()
            .map(|entry| {
                let value = serde_json::to_value(entry).unwrap();
                let kind = value["kind"].as_str().unwrap().to_owned();
                let what = match entry {
                    TimelineEntry::Conversation { conversation, .. } => conversation.id.clone(),
                    TimelineEntry::PageView { url, .. } => url.clone().unwrap_or_default(),
                    TimelineEntry::OfflineRequest { message, .. } => {
                        message.clone().unwrap_or_default()
                    }
                    TimelineEntry::TriggerShown(trigger) => {
                        trigger.text.clone().unwrap_or_default()
                    }
                    _ => String::new(),
                };
                format!("{kind}:{what}")
            })
            .collect()
    }

    async fn identify(store: &SqliteStore, visitor: &str, external_id: &str) {
        store
            .identify_visitor(
                visitor,
                IdentityUpdate {
                    external_id: external_id.into(),
                    ..IdentityUpdate::default()
                },
            )
            .await
            .unwrap();
    }

    async fn page(store: &SqliteStore, site: &str, visitor: &str, url: &str, at: i64) {
        store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.into(),
                visitor_id: visitor.into(),
                kind: VisitorEventKind::PageView,
                data: json!({"url": url, "title": "T"}),
                at,
            })
            .await
            .unwrap();
    }

    fn query(visitor: &str, limit: u32, before: Option<TimelineCursor>) -> TimelineQuery {
        TimelineQuery {
            visitor_id: visitor.into(),
            before,
            limit,
        }
    }

    #[tokio::test]
    async fn one_customer_across_devices_with_the_current_session_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other = store.create_site("Other", &["*".into()]).await.unwrap();
        let minute = 60_000;
        for (visitor, site_id) in [
            ("v_phone", &site.id),
            ("v_laptop", &site.id),
            ("v_anon", &site.id),
            ("v_elsewhere", &other.id),
        ] {
            store
                .touch_visitor(visitor, site_id, VisitorUpdate::default(), 1)
                .await
                .unwrap();
        }
        identify(&store, "v_phone", "customer-7").await;
        identify(&store, "v_laptop", "customer-7").await;
        // The same user id on another site is another customer.
        identify(&store, "v_elsewhere", "customer-7").await;

        // Earlier, on the phone: a conversation, closed and rated, and a callback.
        let first = store
            .create_conversation(
                &site.id,
                "v_phone",
                ConversationState::Assigned,
                10 * minute,
            )
            .await
            .unwrap();
        store
            .transition(Transition::new(
                &first.id,
                &[ConversationState::Assigned],
                ConversationState::Closed,
                20 * minute,
            ))
            .await
            .unwrap();
        store
            .rate(&first.id, 5, Some("quick"), 21 * minute)
            .await
            .unwrap();
        store
            .create_offline_request(OfflineRequest {
                id: 0,
                site_id: site.id.clone(),
                visitor_id: "v_phone".into(),
                conversation: None,
                name: Some("Layla".into()),
                email: Some("layla@example.com".into()),
                phone: None,
                message: Some("call me".into()),
                created_at: 22 * minute,
                done_at: None,
            })
            .await
            .unwrap();
        page(&store, &site.id, "v_phone", "/phone-page", 9 * minute).await;
        store
            .record_visitor_event(NewVisitorEvent {
                site_id: site.id.clone(),
                visitor_id: "v_phone".into(),
                kind: VisitorEventKind::TriggerShown,
                data: json!({"trigger": "t1", "text": "Need help?"}),
                at: 9 * minute + 1,
            })
            .await
            .unwrap();
        let elsewhere = store
            .create_conversation(
                &other.id,
                "v_elsewhere",
                ConversationState::Bot,
                30 * minute,
            )
            .await
            .unwrap();

        // Now, on the laptop: an old visit, then (after a gap) the current session.
        page(&store, &site.id, "v_laptop", "/old-visit", 40 * minute).await;
        page(&store, &site.id, "v_laptop", "/home", 100 * minute).await;
        page(&store, &site.id, "v_laptop", "/pricing", 120 * minute).await;
        let second = store
            .create_conversation(&site.id, "v_laptop", ConversationState::Bot, 125 * minute)
            .await
            .unwrap();

        // The earlier one went on by e-mail.
        store
            .email_set_channel(&first.id, crate::Channel::Email)
            .await
            .unwrap();
        let timeline = store
            .customer_timeline(query("v_laptop", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(timeline.external_id.as_deref(), Some("customer-7"));
        assert_eq!(timeline.visitor_ids, ["v_laptop", "v_phone"]);
        assert_eq!(timeline.session_since, Some(100 * minute));
        assert_eq!(
            kinds(&timeline),
            [
                format!("conversation:{}", second.id),
                "page_view:/pricing".into(),
                "page_view:/home".into(),
                "offline_request:call me".into(),
                format!("conversation:{}", first.id),
                "trigger_shown:Need help?".into(),
            ]
        );
        assert!(timeline.next.is_none());
        let TimelineEntry::Conversation {
            closed_at, rating, ..
        } = &timeline.entries[4]
        else {
            panic!("{:?}", timeline.entries[4]);
        };
        assert_eq!(*closed_at, Some(20 * minute));
        let TimelineEntry::Conversation { conversation, .. } = &timeline.entries[4] else {
            unreachable!("matched above");
        };
        assert_eq!(conversation.channel, Some(crate::Channel::Email));
        assert_eq!(rating.as_ref().map(|r| r.score), Some(5));
        assert!(
            !kinds(&timeline).contains(&format!("conversation:{}", elsewhere.id)),
            "another site's customer is another customer"
        );

        // An anonymous visitor's timeline holds only their own.
        page(&store, &site.id, "v_anon", "/anon", 50 * minute).await;
        let anon = store
            .customer_timeline(query("v_anon", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(anon.visitor_ids, ["v_anon"]);
        assert_eq!(kinds(&anon), ["page_view:/anon"]);
        assert!(
            store
                .customer_timeline(query("v_nobody", 50, None))
                .await
                .unwrap()
                .is_none()
        );

        // Pages of two entries: the same entries, in the same order, each once.
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .customer_timeline(query("v_laptop", 2, before))
                .await
                .unwrap()
                .unwrap();
            assert!(page.entries.len() <= 2);
            paged.extend(kinds(&page));
            match page.next {
                Some(next) => {
                    let text = next.encode();
                    before = Some(TimelineCursor::decode(&text).unwrap());
                    assert_eq!(before.as_ref(), Some(&next));
                }
                None => break,
            }
        }
        assert_eq!(paged, kinds(&timeline));
    }

    #[tokio::test]
    async fn entries_sharing_a_millisecond_page_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        let mut all = Vec::new();
        for n in 0..3 {
            page(&store, &site.id, "v_1", &format!("/p{n}"), 1000).await;
            let conversation = store
                .create_conversation(&site.id, "v_1", ConversationState::Bot, 1000)
                .await
                .unwrap();
            all.push(conversation.id);
        }
        let whole = store
            .customer_timeline(query("v_1", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(whole.entries.len(), 6);
        for size in 1..=5 {
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = store
                    .customer_timeline(query("v_1", size, before))
                    .await
                    .unwrap()
                    .unwrap();
                paged.extend(kinds(&page));
                match page.next {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
            assert_eq!(paged, kinds(&whole), "pages of {size}");
        }
    }

    #[test]
    fn the_current_session_starts_after_the_last_long_gap() {
        let minute = 60_000;
        let gap = SESSION_GAP_MS;
        assert_eq!(session_start(&[], gap), None);
        assert_eq!(session_start(&[5 * minute], gap), Some(5 * minute));
        // 100, 80, 60 are one session (gaps of 20 minutes); 20 is before a 40-minute gap.
        let times = [100 * minute, 80 * minute, 60 * minute, 20 * minute];
        assert_eq!(session_start(&times, gap), Some(60 * minute));
        // Exactly 30 minutes is still the same session.
        assert_eq!(session_start(&[30 * minute, 0], gap), Some(0));
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        for text in ["1000.e.5", "1000.o.7", "-3.c.c_abc.def"] {
            let cursor = TimelineCursor::decode(text).unwrap();
            assert_eq!(cursor.encode(), text);
        }
        for bad in ["", "x.e.1", "1.e.x", "1.q.1", "1.c.", "1000", "1.e"] {
            assert!(TimelineCursor::decode(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_visitors_export_holds_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        page(&store, &site.id, "v_1", "/a", 10).await;
        page(&store, &site.id, "v_1", "/b", 20).await;
        let exported = store.export_visitor("v_1").await.unwrap().unwrap();
        let urls: Vec<_> = exported
            .events
            .iter()
            .map(|event| (event.kind, event.data["url"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            urls,
            [
                (VisitorEventKind::PageView, "/a".to_owned()),
                (VisitorEventKind::PageView, "/b".to_owned())
            ]
        );
        let json = serde_json::to_value(&exported).unwrap();
        assert_eq!(json["events"][1]["data"]["url"], "/b");
    }

    /// A mail that came before the customer identified anywhere is theirs once a signed
    /// identity vouches for its address; an address the visitor only typed links nothing.
    #[tokio::test]
    async fn an_earlier_mail_is_linked_by_a_signed_address_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        // A mail from layla@ and one from omar@, before anyone identified.
        let mut mails = Vec::new();
        for (address, id) in [
            ("Layla@Example.com", "v_mail_l"),
            ("omar@example.com", "v_mail_o"),
        ] {
            let visitor = store
                .email_visitor(&site.id, address, None, id, 1)
                .await
                .unwrap();
            let conversation = store
                .create_conversation(&site.id, &visitor, ConversationState::Queued, 2)
                .await
                .unwrap();
            store
                .email_set_channel(&conversation.id, crate::Channel::Email)
                .await
                .unwrap();
            mails.push((visitor, conversation.id));
        }
        for visitor in ["v_signed", "v_typed"] {
            store
                .touch_visitor(visitor, &site.id, VisitorUpdate::default(), 3)
                .await
                .unwrap();
        }
        // The site signed Layla's address; Omar's visitor only typed his.
        for (visitor, user, email, verified) in [
            (
                "v_signed",
                "customer-l",
                "layla@example.com",
                vec!["email".to_owned()],
            ),
            ("v_typed", "customer-o", "omar@example.com", Vec::new()),
        ] {
            store
                .identify_visitor(
                    visitor,
                    IdentityUpdate {
                        external_id: user.into(),
                        email: Some(email.into()),
                        verified,
                        ..IdentityUpdate::default()
                    },
                )
                .await
                .unwrap();
        }
        let layla = store
            .customer_timeline(query("v_signed", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            layla.visitor_ids,
            ["v_signed".to_owned(), mails[0].0.clone()]
        );
        assert_eq!(kinds(&layla), [format!("conversation:{}", mails[0].1)]);
        let omar = store
            .customer_timeline(query("v_typed", 50, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(omar.visitor_ids, ["v_typed"]);
        assert!(omar.entries.is_empty(), "{:?}", kinds(&omar));
    }
}
