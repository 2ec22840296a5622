//! `rate`: the visitor rates a closed conversation; a low score alerts the site's
//! admins.

use super::{Session, owns, refuse};
use crate::clock::now_ms;
use crate::conversation;
use crate::publish;
use crate::ws::{Flow, Link};
use salam_protocol::{ConversationState, ErrorCode, ServerFrame};

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    conversation: String,
    score: u8,
    comment: Option<String>,
) -> Flow {
    rate(session, link, conversation, score, comment).await;
    Flow::Continue
}

async fn rate(
    session: &mut Session,
    link: &Link,
    conversation: String,
    score: u8,
    comment: Option<String>,
) {
    let state = link.state.clone();
    if !owns(session, link, &conversation).await {
        {
            refuse(link, None).await;
            return;
        }
    }
    if !(1..=5).contains(&score) {
        return link
            .error(ErrorCode::BadField, "score must be 1 to 5", None)
            .await;
    }
    let comment: Option<String> = comment
        .map(|comment| {
            crate::text::clean_text(&comment)
                .chars()
                .take(1000)
                .collect::<String>()
        })
        .filter(|comment| !comment.is_empty());
    let found = match state.store.conversation(&conversation).await {
        Ok(Some(found)) => found,
        _ => {
            refuse(link, None).await;
            return;
        }
    };
    if found.state != ConversationState::Closed {
        return link
            .error(
                ErrorCode::BadField,
                "a conversation is rated once it is closed",
                None,
            )
            .await;
    }
    if let Err(err) = state
        .store
        .rate(&conversation, score, comment.as_deref(), now_ms())
        .await
    {
        return link
            .error(
                conversation::store_code(&err),
                conversation::store_message(&err),
                None,
            )
            .await;
    }
    crate::webhooks::events::rating(&state.webhooks, &found, score, comment.as_deref()).await;
    if score <= 2 {
        let detail = match &comment {
            Some(comment) => format!("rated {score}/5: {comment}"),
            None => format!("rated {score}/5"),
        };
        let alert = salam_store::Alert {
            id: 0,
            site_id: session.site.id.clone(),
            conversation: Some(conversation.clone()),
            kind: "low_rating".into(),
            detail: detail.clone(),
            at: now_ms(),
            acknowledged_at: None,
        };
        // One alert per conversation: rating it again changes the rating, not the
        // number of alerts.
        match state.store.create_alert(alert.clone()).await {
            Ok(None) => {}
            Ok(Some(id)) => {
                publish::to_admins(
                    &*state.bus,
                    &session.site.id,
                    &ServerFrame::Alert {
                        id,
                        kind: "low_rating".into(),
                        conversation: Some(conversation.clone()),
                        detail,
                        at: now_ms(),
                    },
                );
                crate::webhooks::events::alert(&state.webhooks, id, &alert).await;
            }
            Err(err) => tracing::warn!(error = %err, "alert not stored"),
        }
    }
    publish::summary(&*state.bus, &found);
}
