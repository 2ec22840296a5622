//! Where the hub tells e-mail what happened, and what e-mail does about it.
//!
//! - `Email::after_message` (crate::mail_out; called for every committed message): an
//!   agent's text on an e-mail conversation goes out by e-mail; on a chat whose
//!   visitor gave an address, it schedules the unseen-replies mail
//!   (`smtp.unseen_reply_after_secs`).
//! - `Email::visitor_seen` (the widget's `seen`): drops a scheduled mail.
//! - Both only `try_send` to one bounded channel served by one task here, so no
//!   handler and no routing decision waits for e-mail.
//! - A timer sends the due unseen-replies mails, a few at a time.
//! - [`routes`]: `POST /api/offline-requests/{id}/reply` (an agent answers a contact
//!   request by e-mail) and `GET /api/email/status` (admins).

use super::inbound::{Inbound, open_email_conversation};
use super::smtp_server;
use super::templates::{self, Line};
use crate::clock::now_ms;
use crate::conversation;
use crate::error::ApiError;
use crate::extract::{Admin, SignedIn};
use crate::mail_out::{Hook, OutMail};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use salam_protocol::{Author, AuthorKind, ConversationState, ErrorCode, MessageKind};
use salam_store::Page;
use salam_store::{Channel, Conversation, Direction, EmailRecord, NewMessage};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Starts e-mail: the sender, the hook task, the unseen timer and the SMTP listener.
/// Fails on bad `[smtp]` settings or when the listener cannot bind.
pub async fn spawn(state: &AppState) -> Result<(), String> {
    if let Some(err) = &state.email.config_error {
        return Err(err.to_string());
    }
    let email = state.email.clone();
    email.spawn_sender(&state.config.smtp, state.shutdown.clone());
    if email.enabled()
        && let Some(mut hooks) = email
            .hook_receiver
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
    {
        let task_state = state.clone();
        tokio::spawn(async move {
            let mut shutdown = task_state.shutdown.clone();
            loop {
                let hook = tokio::select! {
                    hook = hooks.recv() => match hook { Some(hook) => hook, None => return },
                    _ = shutdown.changed() => return,
                };
                if let Err(err) = handle(&task_state, hook).await {
                    tracing::warn!(error = %err, "e-mail hook failed");
                }
            }
        });
        spawn_unseen_timer(state.clone());
        super::missed::spawn(state.clone());
    }
    let inbound = &state.config.smtp_inbound;
    if let Some(address) = inbound.listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|err| format!("smtp_inbound.listen {address}: {err}"))?;
        tracing::info!(%address, domain = %inbound.domain, "smtp listening for replies");
        let limits = smtp_server::Limits {
            domain: inbound.domain.clone(),
            max_message_bytes: inbound.max_message_bytes as usize,
            max_recipients: inbound.max_recipients.max(1) as usize,
            max_connections: inbound.max_connections.max(1) as usize,
            timeout: Duration::from_secs(u64::from(inbound.timeout_secs.max(1))),
        };
        tokio::spawn(smtp_server::serve(
            listener,
            Arc::new(Inbound {
                state: state.clone(),
            }),
            limits,
            state.shutdown.clone(),
        ));
    }
    Ok(())
}

async fn handle(state: &AppState, hook: Hook) -> Result<(), salam_store::StoreError> {
    match hook {
        Hook::Seen { conversation, seq } => {
            state.store.email_visitor_seen(&conversation, seq).await
        }
        Hook::Closed { conversation } => super::transcript::on_closed(state, &conversation).await,
        Hook::AgentMessage { message } => {
            let Some(conversation) = state.store.conversation(&message.conversation).await? else {
                return Ok(());
            };
            match state.store.email_channel(&conversation.id).await? {
                Some(Channel::Email) => {
                    let line = Line {
                        author: message.author.name.clone().unwrap_or_default(),
                        text: message.text.clone(),
                    };
                    send_to_visitor(state, &conversation, &[line], Kind::Reply).await
                }
                Some(Channel::Chat) if conversation.visitor_email.is_some() => {
                    let after = state.config.smtp.unseen_reply_after_secs;
                    let due = now_ms() + i64::from(after) * 1000;
                    state
                        .store
                        .email_schedule_unseen(&conversation.id, message.seq, due)
                        .await
                }
                _ => Ok(()),
            }
        }
    }
}

/// Which mail to a visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reply,
    Unseen,
}

/// Mails `lines` to the conversation's visitor, threaded and with the reply address.
async fn send_to_visitor(
    state: &AppState,
    conversation: &Conversation,
    lines: &[Line],
    kind: Kind,
) -> Result<(), salam_store::StoreError> {
    let Some(to) = conversation.visitor_email.clone() else {
        return Ok(());
    };
    let site = site_name(state, &conversation.site_id).await?;
    let text: String = lines.iter().map(|line| line.text.as_str()).collect();
    let lang = conversation
        .visitor_locale
        .as_deref()
        .map(|locale| templates::lang_of(Some(locale)))
        .or_else(|| salam_bot::detect_language(&text))
        .unwrap_or(salam_bot::Lang::En);
    let rendered = match kind {
        Kind::Reply => templates::agent_reply(lang, &site, lines),
        Kind::Unseen => templates::unseen_replies(lang, &site, lines),
    };
    mail_thread(state, conversation, to, rendered, kind == Kind::Unseen).await
}

/// A site's name, for the mails' subjects.
pub(super) async fn site_name(
    state: &AppState,
    site_id: &str,
) -> Result<String, salam_store::StoreError> {
    Ok(state
        .store
        .site_by_id(site_id)
        .await?
        .map(|site| site.name)
        .unwrap_or_default())
}

/// Queues a mail of a conversation to `to`: a new Message-ID (stored), threaded under
/// the conversation's earlier mails, with the signed reply address when the hub takes
/// replies. An address that bounced gets nothing.
pub(super) async fn mail_thread(
    state: &AppState,
    conversation: &Conversation,
    to: String,
    rendered: templates::Rendered,
    auto: bool,
) -> Result<(), salam_store::StoreError> {
    if state.store.email_failing(&to).await? {
        tracing::info!(%to, "not mailed: the address bounced before");
        return Ok(());
    }
    let references = state.store.email_thread_ids(&conversation.id, 20).await?;
    let domain = state.email.from_domain();
    let message_id = format!(
        "{}.{}@{domain}",
        conversation.id,
        crate::auth::random_token(12)
    );
    state
        .store
        .email_record_message(EmailRecord {
            message_id: message_id.clone(),
            conversation: conversation.id.clone(),
            direction: Direction::Out,
            address: to.clone(),
            at: now_ms(),
        })
        .await?;
    let reply_to = state.config.smtp_inbound.listen.map(|_| {
        super::thread::reply_address(
            &state.secret,
            &conversation.id,
            &state.config.smtp_inbound.domain,
        )
    });
    let mail = OutMail {
        to,
        to_name: conversation.visitor_name.clone(),
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        message_id,
        in_reply_to: references.last().cloned(),
        references,
        reply_to,
        auto,
        lang: rendered.lang,
    };
    if let Err(err) = state.email.enqueue(mail) {
        tracing::warn!(error = %err, conversation = %conversation.id, "mail not queued");
    }
    Ok(())
}

fn spawn_unseen_timer(state: AppState) {
    let after = state.config.smtp.unseen_reply_after_secs.max(1);
    // Checks a few times per delay, at most once a second.
    let tick = Duration::from_millis((u64::from(after) * 250).clamp(200, 1000));
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            // Once per cluster: on the routing owner.
            if !state.leads() {
                continue;
            }
            if let Err(err) = send_due_unseen(&state).await {
                tracing::warn!(error = %err, "unseen replies not mailed");
            }
        }
    });
}

async fn send_due_unseen(state: &AppState) -> Result<(), salam_store::StoreError> {
    for due in state.store.email_due_unseen(now_ms(), 50).await? {
        let Some(conversation) = state.store.conversation(&due.conversation).await? else {
            continue;
        };
        let messages = state
            .store
            .messages_after(&conversation.id, due.from_seq.saturating_sub(1), 200)
            .await?;
        let lines: Vec<Line> = messages
            .iter()
            .filter(|m| m.author.kind == AuthorKind::Agent && m.kind == MessageKind::Text)
            .map(|m| Line {
                author: m.author.name.clone().unwrap_or_default(),
                text: m.text.clone(),
            })
            .collect();
        if !lines.is_empty() {
            send_to_visitor(state, &conversation, &lines, Kind::Unseen).await?;
        }
    }
    Ok(())
}

/// The e-mail routes (one `.merge` in `http.rs`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/offline-requests/{id}/reply", post(reply))
        .route("/api/email/status", get(status))
}

#[derive(Deserialize)]
pub struct ReplyBody {
    text: String,
}

/// `POST /api/offline-requests/{id}/reply {"text"}`: answers a contact request by
/// e-mail. The answer is an agent message of an e-mail conversation (the request's
/// own conversation while it is open, else a new one), so the visitor's reply comes
/// back to it; the request is marked done.
async fn reply(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    me: SignedIn,
    Json(body): Json<ReplyBody>,
) -> Result<Json<Value>, ApiError> {
    if !state.email.enabled() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::BadField,
            "e-mail is not configured ([smtp] url)",
        ));
    }
    let request = state
        .store
        .offline_requests(&me.sites(&state), Page::at(id))
        .await?
        .into_iter()
        .find(|request| request.id == id)
        .ok_or_else(ApiError::not_found)?;
    if request.email.is_none() {
        return Err(ApiError::bad("the request has no e-mail address"));
    }
    let text = conversation::checked_text(&state, &body.text)
        .map_err(|_| ApiError::bad("the text is empty or too long"))?;
    let open = match &request.conversation {
        Some(id) => state
            .store
            .conversation(id)
            .await?
            .filter(|found| found.state != ConversationState::Closed),
        None => None,
    };
    let target = match open {
        Some(found) => {
            state
                .store
                .email_set_channel(&found.id, Channel::Email)
                .await?;
            found.id
        }
        None => {
            open_email_conversation(&state, &request.site_id, &request.visitor_id)
                .await?
                .id
        }
    };
    let appended = conversation::post_message(
        &state,
        &request.site_id,
        NewMessage {
            conversation: target.clone(),
            kind: MessageKind::Text,
            author: Author {
                kind: AuthorKind::Agent,
                id: Some(me.agent.id.clone()),
                name: Some(me.agent.name.clone()),
            },
            text,
            client_id: None,
            quick_replies: Vec::new(),
            rule: None,
            event: None,
            at: now_ms(),
            only_in: None,
        },
    )
    .await?;
    state.store.offline_request_done(id, now_ms()).await?;
    // The consoles learn the channel (a chat that became an e-mail conversation).
    if let Some(now) = state.store.conversation(&target).await? {
        crate::publish::summary(&*state.bus, &now);
    }
    Ok(Json(json!({
        "conversation": target,
        "seq": appended.message.seq,
        "channel": "email",
    })))
}

/// `GET /api/email/status` (admins): mails queued, sent, retried, given up and
/// refused, the last failure, and the newest bounces and auto-replies.
async fn status(State(state): State<AppState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let stats = &state.email.stats;
    let events = state.store.email_events(50).await?;
    let last_error = stats.last_error.lock().ok().and_then(|last| last.clone());
    Ok(Json(json!({
        "enabled": state.email.enabled(),
        "inbound": state.config.smtp_inbound.listen.is_some(),
        "queued": stats.queued.load(Ordering::Relaxed),
        "sent": stats.sent.load(Ordering::Relaxed),
        "retried": stats.retried.load(Ordering::Relaxed),
        "failed": stats.failed.load(Ordering::Relaxed),
        "refused": stats.refused.load(Ordering::Relaxed),
        "last_error": last_error,
        "events": events,
    })))
}
