//! Counts of the proactive-message events (issue 19, `crate::visitor_events`) per
//! trigger over a period, for the trigger reports: how often each trigger was shown,
//! opened, replied to and turned into a conversation.

use crate::StoreError;
use crate::sqlite::{SqliteStore, map_err};
use crate::visitor_events::VisitorEventKind;
use rusqlite::params;

/// One trigger's count of one kind of event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TriggerCount {
    /// The trigger's id (`data.trigger` of the events).
    pub trigger: String,
    pub kind: VisitorEventKind,
    pub count: i64,
}

/// Triggers counted at most per report.
pub const MAX_TRIGGERS_COUNTED: i64 = 500;

impl SqliteStore {
    pub(crate) async fn trigger_counts_impl(
        &self,
        site_id: String,
        since: i64,
        until: i64,
    ) -> Result<Vec<TriggerCount>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT json_extract(data, '$.trigger') AS trigger, kind, COUNT(*) \
                     FROM visitor_events WHERE site_id = ?1 AND kind LIKE 'trigger_%' \
                     AND at >= ?2 AND at < ?3 AND trigger IS NOT NULL \
                     GROUP BY trigger, kind ORDER BY trigger, kind LIMIT ?4",
                )
                .map_err(map_err)?;
            let rows = statement
                .query_map(
                    params![site_id, since, until, MAX_TRIGGERS_COUNTED * 4],
                    |row| {
                        let trigger: String = row.get(0)?;
                        let kind: String = row.get(1)?;
                        let count: i64 = row.get(2)?;
                        Ok(VisitorEventKind::parse(&kind).map(|kind| TriggerCount {
                            trigger,
                            kind,
                            count,
                        }))
                    },
                )
                .map_err(map_err)?;
            let mut counts = Vec::new();
            for row in rows {
                counts.extend(row.map_err(map_err)?);
            }
            Ok(counts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::visitor_events::{NewVisitorEvent, VisitorEventKind};
    use crate::{SqliteOptions, SqliteStore, Store, VisitorUpdate};
    use serde_json::json;

    #[tokio::test]
    async fn counts_per_trigger_and_kind_within_the_period_and_the_site() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other = store.create_site("Other", &["*".into()]).await.unwrap();
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        store
            .touch_visitor("v_2", &other.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        let record = |site: &str, visitor: &str, kind, trigger: &str, at| NewVisitorEvent {
            site_id: site.into(),
            visitor_id: visitor.into(),
            kind,
            data: json!({"trigger": trigger, "text": "Hi"}),
            at,
        };
        for (kind, trigger, at) in [
            (VisitorEventKind::TriggerShown, "pricing", 10),
            (VisitorEventKind::TriggerShown, "pricing", 20),
            (VisitorEventKind::TriggerOpened, "pricing", 21),
            (VisitorEventKind::TriggerShown, "exit", 30),
            (VisitorEventKind::TriggerShown, "pricing", 500),
        ] {
            store
                .record_visitor_event(record(&site.id, "v_1", kind, trigger, at))
                .await
                .unwrap();
        }
        store
            .record_visitor_event(record(
                &other.id,
                "v_2",
                VisitorEventKind::TriggerShown,
                "pricing",
                15,
            ))
            .await
            .unwrap();
        let counts = store.trigger_counts(&site.id, 0, 100).await.unwrap();
        let got: Vec<(&str, VisitorEventKind, i64)> = counts
            .iter()
            .map(|c| (c.trigger.as_str(), c.kind, c.count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("exit", VisitorEventKind::TriggerShown, 1),
                ("pricing", VisitorEventKind::TriggerOpened, 1),
                ("pricing", VisitorEventKind::TriggerShown, 2),
            ]
        );
    }
}
