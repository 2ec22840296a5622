//! Operations on conversations shared by both endpoints and the REST API: commit, then
//! acknowledge, then publish — always in that order.

use crate::fanout::{Audience, Event, Outbound};
use crate::state::{AppState, now_ms};
use crate::ws::Replier;
use salam_protocol::{
    Author, AuthorKind, ConversationState, ErrorCode, MessageKind, QuickReply, ServerFrame,
};
use salam_store::{Appended, Conversation, NewMessage, StoreError};
use std::sync::atomic::Ordering;

/// The client-visible code for a store failure (never the internal text).
pub fn store_code(err: &StoreError) -> ErrorCode {
    match err {
        StoreError::Unavailable(_) | StoreError::ShutDown => ErrorCode::StoreUnavailable,
        StoreError::Closed => ErrorCode::ConversationClosed,
        StoreError::NotFound => ErrorCode::NotFound,
        StoreError::Conflict(_) | StoreError::Corrupt(_) => ErrorCode::Internal,
    }
}

/// A short explanation to go with [`store_code`].
pub fn store_message(err: &StoreError) -> &'static str {
    match store_code(err) {
        ErrorCode::StoreUnavailable => {
            "the message could not be stored and was not acknowledged; resend it later with the same client_id"
        }
        ErrorCode::ConversationClosed => "the conversation is closed; start a new one",
        ErrorCode::NotFound => "no such conversation",
        _ => "internal error",
    }
}

/// Checks a message text against the hub's limits.
pub fn check_text(state: &AppState, text: &str) -> Result<(), (ErrorCode, String)> {
    if text.trim().is_empty() {
        return Err((ErrorCode::EmptyText, "the message text is empty".into()));
    }
    let max = state.config.limits.max_text_chars as usize;
    let n_chars = salam_protocol::text_len(text);
    if n_chars > max {
        return Err((
            ErrorCode::TextTooLong,
            format!("the message has {n_chars} characters; the limit is {max}"),
        ));
    }
    Ok(())
}

/// Checks a client id: 1 to 64 characters.
pub fn check_client_id(client_id: &str) -> Result<(), (ErrorCode, String)> {
    let n_chars = client_id.chars().count();
    if n_chars == 0 || n_chars > 64 {
        return Err((
            ErrorCode::BadField,
            "client_id must have 1 to 64 characters".into(),
        ));
    }
    Ok(())
}

/// Queues a client's message for commit. On failure the client is told (naming the
/// `client_id`) and `None` is returned.
pub async fn enqueue_from_client(
    replier: &Replier,
    new_message: NewMessage,
) -> Option<salam_store::PendingAppend> {
    let client_id = new_message.client_id.clone().unwrap_or_default();
    match replier.state.store.append_queued(new_message).await {
        Ok(pending) => Some(pending),
        Err(err) => {
            tracing::warn!(error = %err, "message not queued");
            replier
                .error(store_code(&err), store_message(&err), Some(client_id))
                .await;
            None
        }
    }
}

/// Waits for a queued message's commit, acknowledges it, then publishes it. A resend is
/// acknowledged again (with `duplicate: true`) and not published.
pub async fn finish_from_client(
    replier: &Replier,
    site_id: &str,
    client_id: String,
    pending: salam_store::PendingAppend,
) -> Option<Appended> {
    let state = &replier.state;
    match pending.await {
        Ok(appended) => {
            let ack = ServerFrame::Ack {
                client_id,
                conversation: appended.message.conversation.clone(),
                seq: appended.message.seq,
                duplicate: appended.duplicate,
            };
            // For a visitor the ack stands in for the message (not sent back to the
            // sender's connection); agents get their own messages too.
            let own = appended.message.author.kind == AuthorKind::Visitor;
            let item = if own {
                Outbound::Ack(Box::new(crate::fanout::OwnAck {
                    conversation: appended.message.conversation.clone(),
                    seq: appended.message.seq,
                    json: ack.to_json().into(),
                }))
            } else {
                Outbound::Frame(ack.to_json().into())
            };
            replier.mailbox.send(item).await;
            if appended.duplicate {
                state
                    .metrics
                    .messages_duplicate
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                state
                    .metrics
                    .messages_committed
                    .fetch_add(1, Ordering::Relaxed);
                // A visitor's own connection has the ack; its other tabs and the agents
                // get the message.
                let mut event = Event::message(site_id, appended.message.clone());
                if own {
                    event.skip_connection = Some(replier.mailbox.connection);
                }
                state.bus.publish(event);
            }
            Some(appended)
        }
        Err(err) => {
            tracing::warn!(error = %err, "message not stored");
            replier
                .error(store_code(&err), store_message(&err), Some(client_id))
                .await;
            None
        }
    }
}

/// Commits and publishes a message written by the hub itself (bot answers, events).
pub async fn post(
    state: &AppState,
    site_id: &str,
    conversation: &str,
    kind: MessageKind,
    author: Author,
    text: String,
    quick_replies: Vec<QuickReply>,
) -> Result<Appended, StoreError> {
    post_message(
        state,
        site_id,
        NewMessage {
            conversation: conversation.to_owned(),
            kind,
            author,
            text,
            client_id: None,
            quick_replies,
            rule: None,
            at: now_ms(),
        },
    )
    .await
}

/// Commits and publishes a message the hub built (a bot line with its rule, ...).
pub async fn post_message(
    state: &AppState,
    site_id: &str,
    message: NewMessage,
) -> Result<Appended, StoreError> {
    let appended = state.store.append(message).await?;
    state
        .metrics
        .messages_committed
        .fetch_add(1, Ordering::Relaxed);
    state
        .bus
        .publish(Event::message(site_id, appended.message.clone()));
    Ok(appended)
}

/// The system as an author.
pub fn system() -> Author {
    Author {
        kind: AuthorKind::System,
        id: None,
        name: None,
    }
}

/// Moves a conversation to a new state, records the event in its history and tells
/// everyone in it (and the site's agents).
pub async fn change_state(
    state: &AppState,
    conversation: &Conversation,
    new_state: ConversationState,
    agent_id: Option<&str>,
    reason: &str,
) -> Result<Conversation, StoreError> {
    let updated = state
        .store
        .set_conversation_state(&conversation.id, new_state, agent_id, now_ms())
        .await?;
    announce_state(state, &updated, reason).await?;
    Ok(updated)
}

/// Tells the site's agents that a conversation was created or changed.
pub fn announce(state: &AppState, conversation: &Conversation) {
    publish_frame(
        state,
        &conversation.site_id,
        None,
        Audience::Agents,
        None,
        &ServerFrame::Conversation {
            conversation: conversation.summary(),
        },
    );
}

/// Publishes an ephemeral frame (typing, seen, state).
pub fn publish_frame(
    state: &AppState,
    site_id: &str,
    conversation: Option<&str>,
    audience: Audience,
    skip_connection: Option<u64>,
    frame: &ServerFrame,
) {
    state.bus.publish(Event {
        site_id: site_id.into(),
        conversation: conversation.map(Into::into),
        audience,
        skip_connection,
        payload: Outbound::Frame(frame.to_json().into()),
    });
}

/// Posts the system line for a state the store already has, tells everyone in the
/// conversation, and updates the agents' lists.
pub async fn announce_state(
    state: &AppState,
    conversation: &Conversation,
    reason: &str,
) -> Result<(), StoreError> {
    post(
        state,
        &conversation.site_id,
        &conversation.id,
        MessageKind::Event,
        system(),
        reason.to_owned(),
        Vec::new(),
    )
    .await?;
    publish_frame(
        state,
        &conversation.site_id,
        Some(&conversation.id),
        Audience::Everyone,
        None,
        &ServerFrame::State {
            conversation: conversation.id.clone(),
            state: conversation.state,
            reason: Some(reason.to_owned()),
        },
    );
    announce(state, conversation);
    Ok(())
}

/// The bot as an author, named in the conversation's language.
pub fn bot_author(state: &AppState, lang: salam_bot::Lang) -> Author {
    Author {
        kind: AuthorKind::Bot,
        id: None,
        name: Some(state.bot.current().phrases(lang).bot_name.clone()),
    }
}

fn quick_replies(replies: Vec<salam_bot::QuickReply>) -> Vec<QuickReply> {
    replies
        .into_iter()
        .map(|reply| QuickReply {
            label: reply.label,
            payload: reply.payload,
        })
        .collect()
}

/// Runs one bot turn on a visitor's message in a conversation in the `bot` state:
/// triage, record the turn, then answer, clarify, fall back or hand off.
pub async fn bot_turn(
    state: &AppState,
    settings: &crate::site::SiteSettings,
    conversation: &Conversation,
    text: &str,
    ui_locale: Option<&str>,
) -> Result<salam_bot::Lang, StoreError> {
    use salam_bot::{Decision, Lang, TriageInput};
    let recent = state
        .store
        .recent_bot_decisions(&conversation.id, 10)
        .await?;
    let consecutive_misses = recent
        .iter()
        .take_while(|decision| matches!(decision.as_str(), "fallback" | "clarify"))
        .count() as u32;
    // The visitor's own language wins; the widget's locale decides only when the text
    // tells nothing (emoji, digits).
    let locale = match salam_bot::detect_language(text) {
        Some(_) => None,
        None => ui_locale.and_then(Lang::parse),
    };
    let rules = state.bot.current();
    let decision = rules.triage(&TriageInput {
        text,
        locale,
        consecutive_misses,
    });
    let lang = decision.lang();
    let rule = decision.rule_id().map(str::to_owned);
    state
        .store
        .record_bot_turn(salam_store::BotTurn {
            conversation: conversation.id.clone(),
            site_id: conversation.site_id.clone(),
            rule_id: decision.rule_id().map(str::to_owned),
            intent: decision.predicted_intent().to_owned(),
            decision: decision.kind(),
            score: decision.score(),
            lang: lang.as_str().to_owned(),
            question: text.chars().take(500).collect(),
            at: now_ms(),
        })
        .await?;
    tracing::debug!(conversation = %conversation.id, decision = decision.kind(), intent = decision.predicted_intent(), "bot turn");
    let author = bot_author(state, lang);
    let (reply, replies) = match decision {
        Decision::Answer {
            text,
            quick_replies: replies,
            link,
            ..
        } => {
            let text = match link {
                Some(link) => format!("{text}\n{link}"),
                None => text,
            };
            (text, quick_replies(replies))
        }
        Decision::Clarify {
            question, options, ..
        } => (question, quick_replies(options)),
        Decision::Fallback {
            text,
            quick_replies: replies,
            ..
        } => (text, quick_replies(replies)),
        Decision::Handoff {
            department,
            reason,
            priority,
            text,
            ..
        } => {
            post_bot(state, conversation, author, text, Vec::new(), rule).await?;
            hand_off(
                state,
                settings,
                conversation,
                department.as_deref().unwrap_or(""),
                priority,
                reason.as_str(),
                lang,
            )
            .await?;
            return Ok(lang);
        }
    };
    post_bot(state, conversation, author, reply, replies, rule).await?;
    Ok(lang)
}

/// Commits and publishes a bot line, naming the rule that produced it.
async fn post_bot(
    state: &AppState,
    conversation: &Conversation,
    author: Author,
    text: String,
    quick_replies: Vec<QuickReply>,
    rule: Option<String>,
) -> Result<Appended, StoreError> {
    post_message(
        state,
        &conversation.site_id,
        NewMessage {
            conversation: conversation.id.clone(),
            kind: MessageKind::Text,
            author,
            text,
            client_id: None,
            quick_replies,
            rule,
            at: now_ms(),
        },
    )
    .await
}

/// Hands a conversation to people. If nobody can answer now (outside business hours,
/// or no agent online), the bot says so honestly, says when to expect a reply, and
/// asks for contact details (the widget shows the contact form).
pub async fn hand_off(
    state: &AppState,
    settings: &crate::site::SiteSettings,
    conversation: &Conversation,
    department: &str,
    priority: i32,
    reason: &str,
    lang: salam_bot::Lang,
) -> Result<(), StoreError> {
    let now = now_ms();
    let queued = state
        .store
        .hand_off(&conversation.id, department, priority, reason, now)
        .await?;
    announce_state(state, &queued, "waiting for a person").await?;
    state
        .routing
        .send(crate::routing::Command::HandOff {
            site_id: queued.site_id.clone(),
            conversation: queued.id.clone(),
            department: department.to_owned(),
            priority,
        })
        .await;
    let open = settings.is_open(now);
    let anyone = open
        && state
            .routing
            .snapshot(&queued.site_id)
            .await
            .anyone_online();
    if !anyone {
        let rules = state.bot.current();
        let phrases = rules.phrases(lang);
        let when = expected_reply(settings, now, lang);
        let text = format!("{}\n{}", phrases.offline_text(&when), phrases.ask_contact);
        post(
            state,
            &queued.site_id,
            &queued.id,
            MessageKind::Text,
            bot_author(state, lang),
            text,
            Vec::new(),
        )
        .await?;
        publish_frame(
            state,
            &queued.site_id,
            Some(&queued.id),
            Audience::Visitor,
            None,
            &ServerFrame::Form {
                conversation: queued.id.clone(),
                form: salam_protocol::FormKind::Contact,
            },
        );
    }
    Ok(())
}

/// When a reply can be expected, in the visitor's language.
pub fn expected_reply(
    settings: &crate::site::SiteSettings,
    now: i64,
    lang: salam_bot::Lang,
) -> String {
    use salam_bot::Lang;
    const DAYS: [[&str; 7]; 3] = [
        [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ],
        [
            "الاثنين",
            "الثلاثاء",
            "الأربعاء",
            "الخميس",
            "الجمعة",
            "السبت",
            "الأحد",
        ],
        [
            "دوشنبه",
            "سه‌شنبه",
            "چهارشنبه",
            "پنجشنبه",
            "جمعه",
            "شنبه",
            "یکشنبه",
        ],
    ];
    let index = match lang {
        Lang::En => 0,
        Lang::Ar => 1,
        Lang::Fa => 2,
    };
    let opening = settings
        .business_hours
        .as_ref()
        .filter(|hours| !hours.is_open(now))
        .and_then(|hours| hours.next_opening(now));
    match (opening, lang) {
        (Some((day, time)), Lang::En) => format!("{} at {time}", DAYS[index][day]),
        (Some((day, time)), Lang::Ar) => format!("{} الساعة {time}", DAYS[index][day]),
        (Some((day, time)), Lang::Fa) => format!("{} ساعت {time}", DAYS[index][day]),
        (None, Lang::En) => "within a few hours".into(),
        (None, Lang::Ar) => "خلال ساعات قليلة".into(),
        (None, Lang::Fa) => "ظرف چند ساعت".into(),
    }
}

/// Closes a conversation: records the event, tells routing (capacity frees up at once)
/// and asks the visitor for a rating.
pub async fn close(
    state: &AppState,
    conversation: &Conversation,
    agent_id: Option<&str>,
    reason: &str,
) -> Result<(), StoreError> {
    let closed = change_state(
        state,
        conversation,
        ConversationState::Closed,
        agent_id,
        reason,
    )
    .await?;
    state
        .routing
        .send(crate::routing::Command::Closed {
            site_id: closed.site_id.clone(),
            conversation: closed.id.clone(),
        })
        .await;
    publish_frame(
        state,
        &closed.site_id,
        Some(&closed.id),
        Audience::Visitor,
        None,
        &ServerFrame::Form {
            conversation: closed.id.clone(),
            form: salam_protocol::FormKind::Rating,
        },
    );
    Ok(())
}
