//! The transcript a visitor asked for (the `transcript` frame): remembered, and sent
//! when the conversation closes (at once when it is closed already), in the visitor's
//! language, threaded like the conversation's other mails.

use super::hooks::{mail_thread, site_name};
use super::templates::{self, Line};
use crate::state::AppState;
use salam_bot::Lang;
use salam_protocol::{AuthorKind, ConversationState, ErrorCode, MessageKind};
use salam_store::{StoreError, TranscriptRequest};

/// Messages in a transcript at most.
const MAX_LINES: u32 = 1000;

/// Records the request; sends at once if the conversation is closed. The error is for
/// the visitor.
pub async fn request(
    state: &AppState,
    conversation: &str,
    email: &str,
    lang: Lang,
) -> Result<(), (ErrorCode, &'static str)> {
    if !state.email.enabled() {
        return Err((
            ErrorCode::BadField,
            "transcripts by e-mail are not available",
        ));
    }
    let unavailable = |err: StoreError| {
        tracing::warn!(error = %err, "transcript request not stored");
        (
            crate::conversation::store_code(&err),
            "the request could not be stored; try again later",
        )
    };
    let code = match lang {
        Lang::En => "en",
        Lang::Ar => "ar",
        Lang::Fa => "fa",
    };
    state
        .store
        .email_request_transcript(
            TranscriptRequest {
                conversation: conversation.to_owned(),
                email: email.to_owned(),
                lang: code.to_owned(),
            },
            crate::clock::now_ms(),
        )
        .await
        .map_err(unavailable)?;
    let closed = state
        .store
        .conversation(conversation)
        .await
        .map_err(unavailable)?
        .is_some_and(|found| found.state == ConversationState::Closed);
    if closed {
        // Through the hook queue, as a close would: one task sends mail.
        state.email.closed(conversation);
    }
    Ok(())
}

/// At close: sends the transcript if the visitor asked for one.
pub async fn on_closed(state: &AppState, conversation: &str) -> Result<(), StoreError> {
    let Some(request) = state.store.email_take_transcript(conversation).await? else {
        return Ok(());
    };
    let Some(found) = state.store.conversation(conversation).await? else {
        return Ok(());
    };
    let lang = templates::lang_of(Some(&request.lang));
    let you = match lang {
        Lang::En => "You",
        Lang::Ar => "أنت",
        Lang::Fa => "شما",
    };
    let lines: Vec<Line> = state
        .store
        .messages_after(conversation, 0, MAX_LINES)
        .await?
        .into_iter()
        .filter(|m| m.kind == MessageKind::Text)
        .map(|m| Line {
            author: match m.author.kind {
                AuthorKind::Visitor => you.to_owned(),
                _ => m.author.name.clone().unwrap_or_default(),
            },
            text: m.text,
        })
        .collect();
    let site = site_name(state, &found.site_id).await?;
    let rendered = templates::transcript(lang, &site, &lines);
    mail_thread(state, &found, request.email, rendered, true).await
}
