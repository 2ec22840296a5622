//! Conversation pages of the REST API v1 (issue 17): one site's conversations in the
//! order they last changed (oldest change first), so that a client that syncs with
//! `updated_since` and follows the cursor sees each change once.

use crate::sqlite::{CONVERSATION_SELECT, SqliteStore, conversation_from_row, map_err};
use crate::{Conversation, StoreError};
use rusqlite::params;
use salam_protocol::ConversationState;

/// Which conversations of a site, a page at a time.
#[derive(Debug, Clone, Default)]
pub struct ConversationPage {
    /// Only this state (`None`: every state).
    pub state: Option<ConversationState>,
    /// Only conversations updated at or after this time (ms since the epoch).
    pub updated_since: Option<i64>,
    /// After this `(updated_at, id)` (the last of the previous page).
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

impl SqliteStore {
    pub(crate) async fn conversation_page_impl(
        &self,
        site_id: &str,
        page: ConversationPage,
    ) -> Result<Vec<Conversation>, StoreError> {
        let site_id = site_id.to_owned();
        self.read(move |connection| {
            let sql = format!(
                "{CONVERSATION_SELECT} WHERE c.site_id = ?1 \
                 AND (?2 IS NULL OR c.state = ?2) \
                 AND (?3 IS NULL OR c.updated_at >= ?3) \
                 AND (?4 IS NULL OR c.updated_at > ?4 OR (c.updated_at = ?4 AND c.id > ?5)) \
                 ORDER BY c.updated_at, c.id LIMIT ?6"
            );
            let (after_at, after_id) = match page.after {
                Some((at, id)) => (Some(at), Some(id)),
                None => (None, None),
            };
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let rows = statement
                .query_map(
                    params![
                        site_id,
                        page.state.map(ConversationState::as_str),
                        page.updated_since,
                        after_at,
                        after_id,
                        page.limit.max(1)
                    ],
                    conversation_from_row,
                )
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }
}
