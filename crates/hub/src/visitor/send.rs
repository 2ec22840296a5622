//! `send`: a visitor's message. Checked, queued for commit, then (deferred, so the
//! connection reads on and pipelined sends share a group commit) acknowledged,
//! delivered, and answered by the bot or handed to people.

use super::{Session, owns, refuse};
use crate::clock::now_ms;
use crate::conversation;
use crate::fanout::reason;
use crate::ws::{Flow, Link};
use salam_protocol::{ConversationState, MessageKind};
use salam_store::{Conversation, NewMessage};
use tracing::Instrument;

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    client_id: String,
    text: String,
    conversation: Option<String>,
) -> Flow {
    let state = link.state.clone();
    let text = match conversation::check_client_id(&client_id)
        .and_then(|()| conversation::checked_text(&state, &text))
    {
        Ok(text) => text,
        Err((code, message)) => {
            link.error(code, &message, Some(client_id)).await;
            return Flow::Continue;
        }
    };
    // A new conversation that skips the bot (VIP, key account, or bot off) is handed off once the
    // first message is stored.
    // The flag: skipped because of a key-account rule.
    let mut direct: Option<(Conversation, bool)> = None;
    let conversation_id = match conversation {
        Some(conversation) => {
            if !owns(session, link, &conversation).await {
                return refuse(link, Some(client_id)).await;
            }
            conversation
        }
        None => match &session.current {
            Some(current) => current.clone(),
            None => {
                let created = match conversation::create(
                    &state,
                    &session.site.id,
                    &session.visitor_id,
                    ConversationState::Bot,
                )
                .await
                {
                    Ok(created) => created,
                    Err(err) => {
                        link.error(
                            conversation::store_code(&err),
                            conversation::store_message(&err),
                            Some(client_id),
                        )
                        .await;
                        return Flow::Continue;
                    }
                };
                session.owned.insert(created.id.clone());
                session.current = Some(created.id.clone());
                state
                    .registry
                    .follow(&created.id, &link.mailbox, reason::OWNER);
                crate::publish::summary(&*state.bus, &created);
                // Opened from a proactive message (issue 19): it is the first line.
                let handoff = crate::triggers::begin(
                    &state,
                    &session.site,
                    &session.settings,
                    session.locale.as_deref(),
                    &created,
                )
                .await;
                if !session.settings.bot || session.vip || handoff {
                    direct = Some((created.clone(), false));
                } else if crate::key_account_routing::of_visitor(
                    &state,
                    &session.settings,
                    &session.visitor_id,
                )
                .await
                .is_some_and(|rule| rule.skip_bot)
                {
                    // A key account whose rule skips the bot (issue 19).
                    direct = Some((created.clone(), true));
                }
                created.id
            }
        },
    };
    let span = tracing::debug_span!("send", conversation = %conversation_id);
    let new_message = NewMessage {
        event: None,
        conversation: conversation_id,
        kind: MessageKind::Text,
        author: session.author(),
        text,
        client_id: Some(client_id),
        quick_replies: Vec::new(),
        rule: None,
        at: now_ms(),
        only_in: None,
    };
    let text = new_message.text.clone();
    let conversation_id = new_message.conversation.clone();
    let client_id = new_message.client_id.clone().unwrap_or_default();
    let replier = link.replier();
    let Some(pending) = conversation::enqueue_from_client(&replier, new_message).await else {
        return Flow::Continue;
    };
    // The rest waits for the commit; meanwhile the connection reads on.
    let site = session.site.clone();
    let site_id = site.id.clone();
    let settings = session.settings.clone();
    let locale = session.locale.clone();
    let vip = session.vip;
    Flow::Defer(Box::pin(
        async move {
            let state = &replier.state;
            let appended =
                conversation::finish_from_client(&replier, &site_id, client_id, pending).await;
            let Some(appended) = appended.filter(|appended| !appended.duplicate) else {
                return;
            };
            match direct {
                Some((created, key_account)) => {
                    let (reason, priority) = if vip {
                        ("vip", state.config.routing.vip_priority)
                    } else if key_account {
                        ("key_account", 0)
                    } else {
                        ("direct", 0)
                    };
                    let lang = salam_bot::detect_language(&text)
                        .or_else(|| locale.as_deref().and_then(salam_bot::Lang::parse))
                        .unwrap_or(salam_bot::Lang::En);
                    let request = conversation::HandOff {
                        department: "",
                        priority,
                        reason,
                        lang,
                    };
                    if let Err(err) =
                        conversation::hand_off(state, &site, &settings, &created, request).await
                    {
                        tracing::warn!(error = %err, "handoff not stored");
                    }
                }
                // Only a conversation still with the bot is read again (relayed
                // messages cost no read).
                None if appended.state == ConversationState::Bot && settings.bot && !vip => {
                    crate::triage::run_bot(
                        state,
                        &site,
                        &settings,
                        &conversation_id,
                        &text,
                        locale.as_deref(),
                    )
                    .await;
                }
                None => {}
            }
        }
        .instrument(span),
    ))
}
