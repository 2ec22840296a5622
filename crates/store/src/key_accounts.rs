//! Key accounts (issue 19): which conversations were a key account's at their
//! hand-off (`conversations.key_account`, the matching rule's name), for reports that
//! give their first-response times apart from the rest.
//!
//! The mark is copied into the report facts with the rest of a conversation's figures
//! when the retention sweep or an erasure deletes it, so the split survives.

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

    pub(crate) async fn key_account_first_responses_impl(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let site_ids = site_ids.to_vec();
        self.read(move |connection| {
            // The same ranges as the reports' timings: conversations by their creation,
            // report facts by their creation hour.
            let mut live = connection
                .prepare_cached(
                    "SELECT first_response_at - handed_off_at FROM conversations \
                     WHERE site_id = ?1 AND created_at >= ?2 AND created_at < ?3 \
                     AND key_account IS NOT NULL AND first_response_at IS NOT NULL \
                     AND handed_off_at IS NOT NULL",
                )
                .map_err(map_err)?;
            let mut archived = connection
                .prepare_cached(
                    "SELECT first_response_ms FROM report_facts WHERE site_id = ?1 \
                     AND created_hour >= ?2 AND created_hour < ?3 \
                     AND key_account IS NOT NULL AND first_response_ms IS NOT NULL",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in site_ids {
                for statement in [&mut live, &mut archived] {
                    let rows = statement
                        .query_map(params![site_id, from, to], |row| row.get(0))
                        .map_err(map_err)?;
                    for row in rows {
                        all.push(row.map_err(map_err)?);
                    }
                }
            }
            Ok(all)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        Author, AuthorKind, ConversationState, MessageKind, NewMessage, SqliteOptions, SqliteStore,
        Store, StoreError, Transition, VisitorUpdate,
    };
    async fn handed_off_and_answered(store: &SqliteStore, conversation: &str, at: i64) {
        let mut change = Transition::new(
            conversation,
            &[ConversationState::Bot],
            ConversationState::Queued,
            at,
        );
        change.department = Some(String::new());
        store.transition(change).await.unwrap();
        store
            .append(NewMessage {
                event: None,
                conversation: conversation.to_owned(),
                kind: MessageKind::Text,
                author: Author {
                    kind: AuthorKind::Agent,
                    id: Some("a1".into()),
                    name: None,
                },
                text: "hello".into(),
                client_id: None,
                quick_replies: Vec::new(),
                rule: None,
                at: at + 700,
                only_in: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn key_accounts_first_responses_per_site_and_range_deleted_ones_included() {
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
        let mut ids = Vec::new();
        for (site_id, visitor, at) in [
            (&site.id, "v1", 100),
            (&site.id, "v2", 110),
            (&other.id, "v3", 120),
        ] {
            let created = store
                .create_conversation(site_id, visitor, ConversationState::Bot, at)
                .await
                .unwrap();
            handed_off_and_answered(&store, &created.id, at).await;
            ids.push(created.id);
        }
        store.key_account_mark(&ids[0], "Enterprise").await.unwrap();
        store.key_account_mark(&ids[2], "Gold").await.unwrap();
        assert!(matches!(
            store.key_account_mark("nope", "Gold").await,
            Err(StoreError::NotFound)
        ));
        let sites = [site.id.clone()];
        assert_eq!(
            store
                .key_account_first_responses(&sites, 0, 1000)
                .await
                .unwrap(),
            vec![700]
        );
        // Closed and deleted by the retention sweep: the facts keep the mark.
        for id in &ids[..2] {
            let change = Transition::new(
                id,
                &[ConversationState::Queued],
                ConversationState::Closed,
                200,
            );
            store.transition(change).await.unwrap();
        }
        let budget = crate::RetentionBudget {
            conversations: 10,
            messages: 1000,
        };
        let batch = store
            .retention_batch(&site.id, 10_000, budget)
            .await
            .unwrap();
        assert_eq!(batch.conversations, 2);
        assert!(store.conversation(&ids[0]).await.unwrap().is_none());
        assert_eq!(
            store
                .key_account_first_responses(&sites, 0, 1000)
                .await
                .unwrap(),
            vec![700],
            "the deleted key account still counts"
        );
        assert!(
            store
                .key_account_first_responses(&sites, 101, 1000)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
