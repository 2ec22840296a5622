//! Key accounts (issue 19): which conversations were a key account's at their
//! hand-off (`conversations.key_account`, the matching rule's name), for reports that
//! give their first-response times apart from the rest.
//!
//! The mark lives on the conversation row, so it goes when the conversation is deleted
//! (retention, erasure); the archived report facts keep no split.

use crate::StoreError;
use crate::sqlite::{SqliteStore, map_err};
use rusqlite::params;

impl SqliteStore {
    pub(crate) async fn key_account_mark_impl(
        &self,
        conversation: &str,
        rule: &str,
    ) -> Result<(), StoreError> {
        let (conversation, rule) = (conversation.to_owned(), rule.to_owned());
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE conversations SET key_account = ?2 WHERE id = ?1",
                        params![conversation, rule],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn key_account_conversations_impl(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<String>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT id FROM conversations WHERE site_id = ?1 AND created_at >= ?2 \
                     AND created_at < ?3 AND key_account IS NOT NULL",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in site_ids {
                let rows = statement
                    .query_map(params![site_id, from, to], |row| row.get(0))
                    .map_err(map_err)?;
                for row in rows {
                    all.push(row.map_err(map_err)?);
                }
            }
            Ok(all)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConversationState, SqliteOptions, SqliteStore, Store, StoreError, VisitorUpdate};

    #[tokio::test]
    async fn marked_conversations_are_listed_per_site_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other = store.create_site("Other", &["*".into()]).await.unwrap();
        for (visitor, site_id) in [("v1", &site.id), ("v2", &site.id), ("v3", &other.id)] {
            store
                .touch_visitor(visitor, site_id, VisitorUpdate::default(), 1)
                .await
                .unwrap();
        }
        let key = store
            .create_conversation(&site.id, "v1", ConversationState::Bot, 100)
            .await
            .unwrap();
        store
            .create_conversation(&site.id, "v2", ConversationState::Bot, 110)
            .await
            .unwrap();
        let elsewhere = store
            .create_conversation(&other.id, "v3", ConversationState::Bot, 120)
            .await
            .unwrap();
        store.key_account_mark(&key.id, "Enterprise").await.unwrap();
        store.key_account_mark(&elsewhere.id, "Gold").await.unwrap();
        assert!(matches!(
            store.key_account_mark("nope", "Gold").await,
            Err(StoreError::NotFound)
        ));
        let sites = [site.id.clone()];
        assert_eq!(
            store
                .key_account_conversations(&sites, 0, 1000)
                .await
                .unwrap(),
            vec![key.id.clone()]
        );
        assert!(
            store
                .key_account_conversations(&sites, 101, 1000)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
