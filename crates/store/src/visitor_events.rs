//! What a visitor did and was shown outside conversations (issue 19): the pages of their
//! sessions and the proactive messages (triggers) shown to them, opened, replied to and
//! turned into conversations. The customer timeline reads them beside the
//! conversations, and the trigger reports count them.
//!
//! Events belong to their visitor: erasing or sweeping the visitor deletes them (a
//! foreign key with `ON DELETE CASCADE`), and a visitor keeps at most
//! [`MAX_EVENTS_PER_VISITOR`] (the oldest go first), so a page left open and reloaded
//! cannot grow the table without bound.

use crate::StoreError;
use crate::sqlite::{SqliteStore, map_err};
use rusqlite::{Row, params};
use serde_json::Value;

/// Events kept per visitor; older ones are deleted as new ones come.
pub const MAX_EVENTS_PER_VISITOR: i64 = 1000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitorEventKind {
    /// A page of the site was opened with the widget on it (`data`: `url`, `title`).
    PageView,
    /// A proactive message was shown (`data`: `trigger`, its id, and `text`).
    TriggerShown,
    /// The visitor opened the panel from a proactive message.
    TriggerOpened,
    /// The visitor wrote after a proactive message.
    TriggerReplied,
    /// A conversation began from a proactive message.
    TriggerConverted,
}

impl VisitorEventKind {
    /// Every kind, in the order above.
    pub const ALL: [VisitorEventKind; 5] = [
        VisitorEventKind::PageView,
        VisitorEventKind::TriggerShown,
        VisitorEventKind::TriggerOpened,
        VisitorEventKind::TriggerReplied,
        VisitorEventKind::TriggerConverted,
    ];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            VisitorEventKind::PageView => "page_view",
            VisitorEventKind::TriggerShown => "trigger_shown",
            VisitorEventKind::TriggerOpened => "trigger_opened",
            VisitorEventKind::TriggerReplied => "trigger_replied",
            VisitorEventKind::TriggerConverted => "trigger_converted",
        }
    }

    /// The kind of a stored name.
    pub fn parse(name: &str) -> Option<VisitorEventKind> {
        VisitorEventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewVisitorEvent {
    pub site_id: String,
    pub visitor_id: String,
    pub kind: VisitorEventKind,
    /// A JSON object; what it holds depends on the kind.
    pub data: Value,
    pub at: i64,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VisitorEvent {
    pub id: i64,
    pub site_id: String,
    pub visitor_id: String,
    pub kind: VisitorEventKind,
    pub data: Value,
    pub at: i64,
}

pub(crate) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Option<VisitorEvent>> {
    let kind: String = row.get(3)?;
    let data: String = row.get(4)?;
    Ok(VisitorEventKind::parse(&kind).map(|kind| VisitorEvent {
        id: row.get(0).unwrap_or_default(),
        site_id: row.get(1).unwrap_or_default(),
        visitor_id: row.get(2).unwrap_or_default(),
        kind,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        at: row.get(5).unwrap_or_default(),
    }))
}

impl SqliteStore {
    pub(crate) async fn record_visitor_event_impl(
        &self,
        event: NewVisitorEvent,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let inserted = connection
                    .prepare_cached(
                        "INSERT INTO visitor_events (site_id, visitor_id, kind, data, at) \
                         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS \
                         (SELECT 1 FROM visitors WHERE id = ?2 AND site_id = ?1)",
                    )
                    .map_err(map_err)?
                    .execute(params![
                        event.site_id,
                        event.visitor_id,
                        event.kind.as_str(),
                        event.data.to_string(),
                        event.at
                    ])
                    .map_err(map_err)?;
                if inserted == 0 {
                    return Err(StoreError::NotFound);
                }
                // Every 64th event, trim the visitor's oldest beyond the cap.
                if connection.last_insert_rowid() % 64 == 0 {
                    connection
                        .prepare_cached(
                            "DELETE FROM visitor_events WHERE visitor_id = ?1 AND id <= \
                             (SELECT id FROM visitor_events WHERE visitor_id = ?1 \
                              ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                        )
                        .map_err(map_err)?
                        .execute(params![event.visitor_id, MAX_EVENTS_PER_VISITOR])
                        .map_err(map_err)?;
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn visitor_events_impl(
        &self,
        visitor_ids: Vec<String>,
        limit: u32,
    ) -> Result<Vec<VisitorEvent>, StoreError> {
        self.read(move |connection| {
            let mut events = Vec::new();
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, site_id, visitor_id, kind, data, at FROM visitor_events \
                     WHERE visitor_id = ?1 ORDER BY id DESC LIMIT ?2",
                )
                .map_err(map_err)?;
            for visitor_id in visitor_ids.iter().take(100) {
                let rows = statement
                    .query_map(params![visitor_id, limit], event_from_row)
                    .map_err(map_err)?;
                for row in rows {
                    events.extend(row.map_err(map_err)?);
                }
            }
            events.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
            events.truncate(limit as usize);
            Ok(events)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuditNote, SqliteOptions, Store, VisitorUpdate};
    use serde_json::json;

    fn event(site: &str, visitor: &str, kind: VisitorEventKind, at: i64) -> NewVisitorEvent {
        NewVisitorEvent {
            site_id: site.into(),
            visitor_id: visitor.into(),
            kind,
            data: json!({"url": format!("https://shop.test/p/{at}")}),
            at,
        }
    }

    #[tokio::test]
    async fn events_are_kept_per_visitor_newest_first_capped_and_erased_with_the_visitor() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other = store.create_site("Other", &["*".into()]).await.unwrap();
        for visitor in ["v_1", "v_2"] {
            store
                .touch_visitor(visitor, &site.id, VisitorUpdate::default(), 1)
                .await
                .unwrap();
        }
        store
            .record_visitor_event(event(&site.id, "v_1", VisitorEventKind::PageView, 10))
            .await
            .unwrap();
        store
            .record_visitor_event(event(&site.id, "v_2", VisitorEventKind::TriggerShown, 20))
            .await
            .unwrap();
        // Another site's visitor id, or an unknown visitor, records nothing.
        let refused = store
            .record_visitor_event(event(&other.id, "v_1", VisitorEventKind::PageView, 30))
            .await;
        assert!(matches!(refused, Err(StoreError::NotFound)));

        let events = store
            .visitor_events(vec!["v_1".into(), "v_2".into()], 10)
            .await
            .unwrap();
        let kinds: Vec<_> = events
            .iter()
            .map(|e| (e.visitor_id.as_str(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("v_2", VisitorEventKind::TriggerShown),
                ("v_1", VisitorEventKind::PageView)
            ]
        );
        assert_eq!(events[1].data["url"], "https://shop.test/p/10");

        // The cap: a visitor keeps at most MAX_EVENTS_PER_VISITOR.
        for at in 0..(MAX_EVENTS_PER_VISITOR + 200) {
            store
                .record_visitor_event(event(&site.id, "v_1", VisitorEventKind::PageView, 100 + at))
                .await
                .unwrap();
        }
        let kept = store
            .visitor_events(vec!["v_1".into()], 5000)
            .await
            .unwrap();
        assert!(
            kept.len() as i64 <= MAX_EVENTS_PER_VISITOR + 64,
            "{}",
            kept.len()
        );
        assert!(kept.len() as i64 >= MAX_EVENTS_PER_VISITOR);
        assert_eq!(kept[0].at, 100 + MAX_EVENTS_PER_VISITOR + 199);

        // Erasing the visitor erases their events.
        let note = AuditNote {
            actor: "cli:test".into(),
            selector: "visitor_id",
            at: 5,
        };
        store.erase_visitor("v_1", note).await.unwrap();
        assert!(
            store
                .visitor_events(vec!["v_1".into()], 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .visitor_events(vec!["v_2".into()], 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in VisitorEventKind::ALL {
            assert_eq!(VisitorEventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(VisitorEventKind::parse("click"), None);
    }
}
