//! Operations on conversations shared by both endpoints, the REST API and the hub's
//! own timers: commit, then acknowledge, then publish — always in that order. State
//! changes are compare-and-set transitions in the store ([`salam_store::Transition`]),
//! so two decisions racing each other (a close and a hand-off) never undo each other.

use crate::clock::now_ms;
use crate::fanout::{Followers, Outbound, OwnAck};
use crate::publish;
use crate::site::SiteSettings;
use crate::state::AppState;
use crate::ws::Replier;
use salam_protocol::{
    Author, AuthorKind, ConversationState, ErrorCode, EventCode, MessageKind, ServerFrame,
    SystemEvent,
};
use salam_store::{Appended, Conversation, NewMessage, Site, StoreError, Transition, Transitioned};
use std::sync::atomic::Ordering;

/// The client-visible code for a store failure (never the internal text).
pub fn store_code(err: &StoreError) -> ErrorCode {
    match err {
        StoreError::Unavailable(_) | StoreError::ShutDown => ErrorCode::StoreUnavailable,
        StoreError::Closed => ErrorCode::ConversationClosed,
        StoreError::NotFound => ErrorCode::NotFound,
        StoreError::StateChanged(ConversationState::Closed) => ErrorCode::ConversationClosed,
        StoreError::Conflict(_) | StoreError::Corrupt(_) | StoreError::StateChanged(_) => {
            ErrorCode::Internal
        }
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

/// A message text cleaned ([`crate::text::clean_text`]: no spanning bidi controls,
/// no invisible ends) and checked against the hub's limits. A text of only
/// zero-width characters is empty.
pub fn checked_text(state: &AppState, text: &str) -> Result<String, (ErrorCode, String)> {
    let text = crate::text::clean_text(text);
    if text.is_empty() {
        return Err((ErrorCode::EmptyText, "the message text is empty".into()));
    }
    let max = state.config.limits.max_text_chars as usize;
    let n_chars = salam_protocol::text_len(&text);
    if n_chars > max {
        return Err((
            ErrorCode::TextTooLong,
            format!("the message has {n_chars} characters; the limit is {max}"),
        ));
    }
    Ok(text)
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

/// Waits for a queued message's commit, acknowledges it, then publishes it. The
/// sender's connection gets only the `ack`, which stands for the message (its other
/// connections, and everyone else following the conversation, get the message). A
/// resend is acknowledged again (with `duplicate: true`) and not published.
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
            replier
                .mailbox
                .send(Outbound::Ack(Box::new(OwnAck {
                    conversation: appended.message.conversation.clone(),
                    seq: appended.message.seq,
                    json: ack.to_json().into(),
                })))
                .await;
            if appended.duplicate {
                state
                    .metrics
                    .messages_duplicate
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                relay(state, site_id, &appended, Some(replier.mailbox.connection)).await;
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

/// Commits and publishes a message written by the hub itself (events, confirmations).
pub async fn post(
    state: &AppState,
    site_id: &str,
    conversation: &str,
    kind: MessageKind,
    author: Author,
    text: String,
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
            quick_replies: Vec::new(),
            rule: None,
            event: None,
            at: now_ms(),
            only_in: None,
        },
    )
    .await
}

/// Commits and publishes a system line outside a state change (a transfer to another
/// agent): its code and params, and their English rendering as its text.
pub async fn post_event(
    state: &AppState,
    site_id: &str,
    conversation: &str,
    event: SystemEvent,
) -> Result<Appended, StoreError> {
    post_message(
        state,
        site_id,
        NewMessage {
            conversation: conversation.to_owned(),
            kind: MessageKind::Event,
            author: system(),
            text: event.english(),
            client_id: None,
            quick_replies: Vec::new(),
            rule: None,
            event: Some(event),
            at: now_ms(),
            only_in: None,
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
    // A resend with a client id (the REST API's) was delivered the first time.
    if !appended.duplicate {
        relay(state, site_id, &appended, None).await;
    }
    Ok(appended)
}

/// Counts a committed message, publishes it (to all but `skip`, its sender) and emits
/// its `message.created` webhook event.
async fn relay(state: &AppState, site_id: &str, appended: &Appended, skip: Option<u64>) {
    state
        .metrics
        .messages_committed
        .fetch_add(1, Ordering::Relaxed);
    // Before anyone can see it (and say `seen`): e-mail hears of it first.
    state.email.after_message(&appended.message);
    publish::message(
        &*state.bus,
        site_id,
        appended.message.clone(),
        appended.unread,
        skip,
    );
    if !appended.duplicate {
        crate::webhooks::events::message(&state.webhooks, site_id, &appended.message).await;
    }
}

/// Creates a conversation and emits its `conversation.created` webhook event. Every
/// channel (the widget, the REST API, e-mail) creates conversations through here.
pub async fn create(
    state: &AppState,
    site_id: &str,
    visitor_id: &str,
    initial: ConversationState,
) -> Result<Conversation, StoreError> {
    let created = state
        .store
        .create_conversation(site_id, visitor_id, initial, now_ms())
        .await?;
    crate::webhooks::events::created(&state.webhooks, &created).await;
    Ok(created)
}

/// The system as an author.
pub fn system() -> Author {
    Author {
        kind: AuthorKind::System,
        id: None,
        name: None,
    }
}

/// The bot as an author, named by the site's rules in the conversation's language.
pub fn bot_author(rules: &salam_bot::RuleSet, lang: salam_bot::Lang) -> Author {
    Author {
        kind: AuthorKind::Bot,
        id: None,
        name: Some(rules.phrases(lang).bot_name.clone()),
    }
}

/// Applies a transition; when it applied, publishes its line, state and summary.
/// Returns the conversation as it is now and whether the change applied.
pub async fn transition(
    state: &AppState,
    change: Transition,
) -> Result<(Conversation, bool), StoreError> {
    match state.store.transition(change).await? {
        Transitioned::Applied {
            conversation,
            event,
        } => {
            crate::webhooks::events::state_changed(
                &state.webhooks,
                &conversation,
                event.as_deref(),
                false,
            )
            .await;
            let reason = event.as_ref().map(|line| line.text.clone());
            publish::state_changed(
                &*state.bus,
                &conversation,
                event.map(|line| *line),
                reason.as_deref(),
            );
            Ok((conversation, true))
        }
        Transitioned::Stale(conversation) => Ok((conversation, false)),
    }
}

/// Where a hand-off goes and why.
#[derive(Debug, Clone, Copy)]
pub struct HandOff<'a> {
    /// The department ("" for the general queue).
    pub department: &'a str,
    pub priority: i32,
    /// Recorded for reports (`requested`, `complaint`, `vip`, `direct`, …).
    pub reason: &'a str,
    /// The visitor's language, for the bot's line when nobody can answer now.
    pub lang: salam_bot::Lang,
}

/// Hands a conversation the bot has to people. If nobody can answer now (no agent of
/// the site online, inside business hours or not), the bot says so honestly, says when
/// to expect a reply (the next opening, outside business hours), and asks for contact details (the widget shows the contact
/// form). Nothing happens if the conversation has left the bot meanwhile (taken,
/// closed).
pub async fn hand_off(
    state: &AppState,
    site: &Site,
    settings: &SiteSettings,
    conversation: &Conversation,
    request: HandOff<'_>,
) -> Result<(), StoreError> {
    let HandOff {
        department,
        priority,
        reason,
        lang,
    } = request;
    // Key accounts first (issue 19): a matching rule raises the priority, may pick the
    // department and names an owner to try first.
    let key_account =
        crate::key_account_routing::of_visitor(state, settings, &conversation.visitor_id).await;
    let routed =
        crate::key_account_routing::route(state, key_account.as_ref(), department, priority).await;
    let (department, priority) = (routed.department.as_str(), routed.priority);
    let now = now_ms();
    let mut change = Transition::new(
        &conversation.id,
        &[ConversationState::Bot],
        ConversationState::Queued,
        now,
    );
    change.department = Some(department.to_owned());
    change.priority = Some(priority);
    change.handoff_reason = Some(reason.to_owned());
    change.event = Some(SystemEvent::new(EventCode::Queued, &[]));
    let (queued, applied) = transition(state, change).await?;
    if !applied {
        return Ok(());
    }
    // Only for reports: a failure here must not keep the chat from routing.
    if let Some(rule) = &key_account
        && let Err(err) = state.store.key_account_mark(&queued.id, &rule.name).await
    {
        tracing::warn!(conversation = %queued.id, error = %err, "key account not recorded");
    }
    state
        .routing
        .send(crate::routing::Command::HandOff {
            site_id: queued.site_id.clone(),
            conversation: queued.id.clone(),
            department: department.to_owned(),
            priority,
            preferred_agent: routed.owner,
        })
        .await;
    // Presence is the truth: routing gives the chat to an agent who is online, inside
    // business hours or not. The hours only say when to expect a reply otherwise.
    let anyone = state.routing.view().site(&queued.site_id).anyone_online();
    if !anyone {
        let rules = state.bot.for_site(site, settings);
        let phrases = rules.phrases(lang);
        let when = expected_reply(settings, now, lang);
        let text = format!("{}\n{}", phrases.offline_text(&when), phrases.ask_contact);
        post(
            state,
            &queued.site_id,
            &queued.id,
            MessageKind::Text,
            bot_author(&rules, lang),
            text,
        )
        .await?;
        // Remembered, so that a reload shows the form again until it is answered.
        state.store.set_contact_asked(&queued.id, now).await?;
        publish::to_conversation(
            &*state.bus,
            &queued.id,
            Followers::Visitors,
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
pub fn expected_reply(settings: &SiteSettings, now: i64, lang: salam_bot::Lang) -> String {
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

/// Closes an open conversation: records the event, tells routing (capacity frees up at
/// once) and asks the visitor for a rating. Returns `false` if it was closed already.
pub async fn close(
    state: &AppState,
    conversation: &str,
    reason: SystemEvent,
) -> Result<bool, StoreError> {
    let mut change = Transition::new(
        conversation,
        &[
            ConversationState::Bot,
            ConversationState::Queued,
            ConversationState::Assigned,
        ],
        ConversationState::Closed,
        now_ms(),
    );
    change.event = Some(reason);
    let (closed, applied) = transition(state, change).await?;
    if !applied {
        return Ok(false);
    }
    state
        .routing
        .send(crate::routing::Command::Closed {
            conversation: closed.id.clone(),
        })
        .await;
    state.email.closed(&closed.id);
    publish::to_conversation(
        &*state.bus,
        &closed.id,
        Followers::Visitors,
        None,
        &ServerFrame::Form {
            conversation: closed.id.clone(),
            form: salam_protocol::FormKind::Rating,
        },
    );
    Ok(true)
}
