//! What a received mail becomes.
//!
//! 1. It is parsed (`mail-parser`); a message without a sender is refused (550).
//! 2. Bounces and automatic answers are recognised ([`classify`]): they are recorded
//!    (a bounce marks the address failing), accepted (250, so no further bounce is
//!    made) and never become a message nor get an answer.
//! 3. Its conversation is found: the signed reply address first, then
//!    `In-Reply-To`/`References` against the Message-IDs the hub stored (only for
//!    mail from that conversation's visitor, so a forward never merges), and a mail
//!    matching neither (to `SITEKEY@DOMAIN`) starts a new e-mail conversation from
//!    its sender. A reply to a closed conversation opens a new one for the visitor.
//! 4. The quoted history is cut off, and the rest is posted as the visitor's message
//!    through `conversation::post_message` (commit, then live to the agents).

use super::smtp_server::{Envelope, Handler, Reply};
use super::thread::{self, Recipient};
use crate::clock::now_ms;
use crate::conversation;
use crate::state::AppState;
use async_trait::async_trait;
use mail_parser::{Message, MessageParser};
use salam_protocol::{Author, AuthorKind, ConversationState, EventCode, MessageKind, SystemEvent};
use salam_store::{
    Channel, Conversation, Direction, EmailEvent, EmailEventKind, EmailRecord, NewMessage,
    StoreError, Transition,
};

/// The hub as the SMTP server's handler.
pub struct Inbound {
    pub state: AppState,
}

#[async_trait]
impl Handler for Inbound {
    async fn recipient(&self, address: &str) -> Result<(), Reply> {
        let domain = &self.state.config.smtp_inbound.domain;
        match thread::recipient(&self.state.secret, domain, address) {
            Ok(Recipient::Conversation(_)) => Ok(()),
            Ok(Recipient::Site(key)) => match self.state.store.site_by_key(&key).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(Reply::new(550, "5.1.1 no such mailbox")),
                Err(_) => Err(Reply::new(451, "4.3.0 try again later")),
            },
            Err(thread::BadRecipient::OtherDomain) => Err(Reply::new(550, "5.7.1 relaying denied")),
            Err(_) => Err(Reply::new(550, "5.1.1 no such mailbox")),
        }
    }

    async fn deliver(&self, envelope: Envelope) -> Reply {
        match receive(&self.state, &envelope).await {
            Ok(outcome) => {
                tracing::info!(?outcome, from = %envelope.from, "mail received");
                Reply::new(250, "2.0.0 accepted")
            }
            Err(Refusal::Malformed(reason)) => {
                tracing::info!(reason, "mail refused");
                Reply::new(550, format!("5.6.0 {reason}"))
            }
            Err(Refusal::Store(err)) => {
                tracing::warn!(error = %err, "mail not stored");
                Reply::new(451, "4.3.0 cannot store the message now, try again later")
            }
        }
    }
}

/// What became of an accepted mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Appended to this conversation.
    Appended { conversation: String, seq: u64 },
    /// A bounce or an auto-reply: recorded only.
    Recorded(EmailEventKind),
    /// Nothing new in it (only quoted history).
    Empty,
}

/// Why a mail was refused.
#[derive(Debug)]
pub enum Refusal {
    Malformed(&'static str),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Refusal {
        Refusal::Store(err)
    }
}

fn header_text<'a>(message: &'a Message<'a>, name: &str) -> Option<String> {
    message
        .header_raw(name)
        .map(|raw| raw.trim().to_ascii_lowercase())
}

/// A local part of an address that only machines write from.
fn machine_sender(address: &str) -> Option<EmailEventKind> {
    let local = address.split('@').next().unwrap_or("").to_ascii_lowercase();
    match local.as_str() {
        "mailer-daemon" | "postmaster" => Some(EmailEventKind::Bounce),
        "no-reply" | "noreply" | "do-not-reply" | "donotreply" | "no_reply" | "bounce"
        | "bounces" => Some(EmailEventKind::AutoReply),
        _ if local.starts_with("bounce") || local.starts_with("noreply") => {
            Some(EmailEventKind::AutoReply)
        }
        _ => None,
    }
}

/// Whether a mail is a bounce or an automatic answer, and why.
pub fn classify(
    message: &Message<'_>,
    return_path: &str,
    sender: &str,
) -> Option<(EmailEventKind, String)> {
    if let Some(failed) = header_text(message, "X-Failed-Recipients") {
        return Some((
            EmailEventKind::Bounce,
            format!("X-Failed-Recipients: {failed}"),
        ));
    }
    let content_type = header_text(message, "Content-Type").unwrap_or_default();
    if content_type.starts_with("multipart/report") {
        return Some((
            EmailEventKind::Bounce,
            format!("Content-Type: {content_type}"),
        ));
    }
    if return_path.is_empty() {
        return Some((EmailEventKind::Bounce, "empty return path <>".into()));
    }
    if let Some(kind) = machine_sender(sender).or_else(|| machine_sender(return_path)) {
        return Some((kind, format!("sender {sender}")));
    }
    if let Some(value) = header_text(message, "Auto-Submitted")
        && value != "no"
    {
        return Some((
            EmailEventKind::AutoReply,
            format!("Auto-Submitted: {value}"),
        ));
    }
    if let Some(value) = header_text(message, "Precedence")
        && matches!(value.as_str(), "bulk" | "junk" | "list" | "auto_reply")
    {
        return Some((EmailEventKind::AutoReply, format!("Precedence: {value}")));
    }
    for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if message.header_raw(name).is_some() {
            return Some((EmailEventKind::AutoReply, name.to_owned()));
        }
    }
    None
}

/// The Message-IDs a mail refers to (`In-Reply-To`, then `References`), without
/// brackets.
fn referenced_ids(message: &Message<'_>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for value in [message.references(), message.in_reply_to()] {
        if let Some(list) = value.as_text_list() {
            for id in list {
                let id = id.trim().trim_start_matches('<').trim_end_matches('>');
                if !id.is_empty() && id.len() <= 250 && !ids.iter().any(|known| known == id) {
                    ids.push(id.to_owned());
                }
            }
        }
    }
    // `email_thread_of` tries the last first: In-Reply-To is the most direct.
    ids
}

/// Takes an accepted message.
pub async fn receive(state: &AppState, envelope: &Envelope) -> Result<Outcome, Refusal> {
    let message = MessageParser::default()
        .parse(&envelope.data)
        .ok_or(Refusal::Malformed("the message cannot be parsed"))?;
    let from = message
        .from()
        .and_then(|from| from.first())
        .ok_or(Refusal::Malformed("the message has no From address"))?;
    let sender = from
        .address()
        .filter(|address| address.contains('@') && address.len() <= 254)
        .ok_or(Refusal::Malformed("the From address is not an address"))?
        .to_ascii_lowercase();
    let sender_name = from
        .name()
        .map(|name| name.chars().take(100).collect::<String>());
    let now = now_ms();
    let recipients: Vec<Recipient> = envelope
        .recipients
        .iter()
        .filter_map(|address| {
            thread::recipient(&state.secret, &state.config.smtp_inbound.domain, address).ok()
        })
        .collect();
    let by_token = recipients.iter().find_map(|recipient| match recipient {
        Recipient::Conversation(id) => Some(id.clone()),
        Recipient::Site(_) => None,
    });

    if let Some((kind, detail)) = classify(&message, &envelope.from, &sender) {
        // The address that failed: the header's, else the visitor of the conversation.
        let mut address = sender.clone();
        if kind == EmailEventKind::Bounce {
            if let Some(failed) = message.header_raw("X-Failed-Recipients") {
                address = failed.trim().to_ascii_lowercase();
            } else if let Some(id) = &by_token
                && let Some(found) = state.store.conversation(id).await?
                && let Some(email) = found.visitor_email
            {
                address = email.to_ascii_lowercase();
            }
        }
        tracing::info!(%address, ?kind, %detail, "automatic mail recorded, not answered");
        state
            .store
            .email_record_event(EmailEvent {
                address,
                kind,
                detail,
                at: now,
            })
            .await?;
        return Ok(Outcome::Recorded(kind));
    }

    // Which conversation: the signed address, then the Message-IDs, else a new one.
    let mut found: Option<Conversation> = None;
    if let Some(id) = &by_token {
        found = state.store.conversation(id).await?;
    }
    if found.is_none() {
        let ids = referenced_ids(&message);
        if !ids.is_empty()
            && let Some(id) = state.store.email_thread_of(ids).await?
        {
            // A Message-ID is no secret (it travels in every copy and forward): it
            // threads only mail from the conversation's own visitor, never merges
            // someone else's mail into it.
            found = state.store.conversation(&id).await?.filter(|conversation| {
                conversation
                    .visitor_email
                    .as_deref()
                    .is_some_and(|email| email.eq_ignore_ascii_case(&sender))
            });
        }
    }
    let (site_id, visitor_id, open) = match &found {
        Some(conversation) => (
            conversation.site_id.clone(),
            conversation.visitor_id.clone(),
            (conversation.state != ConversationState::Closed).then(|| conversation.id.clone()),
        ),
        None => {
            let key = recipients
                .iter()
                .find_map(|recipient| match recipient {
                    Recipient::Site(key) => Some(key.clone()),
                    Recipient::Conversation(_) => None,
                })
                .ok_or(Refusal::Malformed(
                    "no recipient names a conversation or a site",
                ))?;
            let site = state
                .store
                .site_by_key(&key)
                .await?
                .ok_or(Refusal::Malformed("no such site"))?;
            let visitor = state
                .store
                .email_visitor(
                    &site.id,
                    &sender,
                    sender_name.clone(),
                    &crate::auth::new_visitor_id(),
                    now,
                )
                .await?;
            (site.id, visitor, None)
        }
    };

    let body = message
        .body_text(0)
        .map(|text| text.into_owned())
        .unwrap_or_default();
    let text = thread::strip_quoted(&body);
    let text = match conversation::checked_text(state, &text) {
        Ok(text) => text,
        Err((salam_protocol::ErrorCode::TextTooLong, _)) => {
            let max = state.config.limits.max_text_chars as usize;
            crate::text::clean_text(&text.chars().take(max).collect::<String>())
        }
        Err(_) => return Ok(Outcome::Empty),
    };

    let author = Author {
        kind: AuthorKind::Visitor,
        id: Some(visitor_id.clone()),
        name: sender_name.clone(),
    };
    let mut target = match open {
        Some(id) => id,
        None => {
            open_email_conversation(state, &site_id, &visitor_id)
                .await?
                .id
        }
    };
    let mut attempt = 0;
    let appended = loop {
        let result = conversation::post_message(
            state,
            &site_id,
            NewMessage {
                conversation: target.clone(),
                kind: MessageKind::Text,
                author: author.clone(),
                text: text.clone(),
                client_id: None,
                quick_replies: Vec::new(),
                rule: None,
                event: None,
                at: now_ms(),
                only_in: None,
            },
        )
        .await;
        match result {
            Ok(appended) => break appended,
            // Closed meanwhile: the reply opens a new conversation.
            Err(StoreError::Closed | StoreError::StateChanged(ConversationState::Closed))
                if attempt == 0 =>
            {
                attempt += 1;
                target = open_email_conversation(state, &site_id, &visitor_id)
                    .await?
                    .id;
            }
            Err(err) => return Err(err.into()),
        }
    };
    if let Some(id) = message.message_id()
        && id.len() <= 250
    {
        state
            .store
            .email_record_message(EmailRecord {
                message_id: id.to_owned(),
                conversation: target.clone(),
                direction: Direction::In,
                address: sender.clone(),
                at: now,
            })
            .await?;
    }
    Ok(Outcome::Appended {
        conversation: target,
        seq: appended.message.seq,
    })
}

/// A new conversation of a visitor on the e-mail channel, queued for people (routing
/// gives it to an agent as any other).
pub async fn open_email_conversation(
    state: &AppState,
    site_id: &str,
    visitor_id: &str,
) -> Result<Conversation, StoreError> {
    let now = now_ms();
    // Through `conversation::create`, so `conversation.created` reaches the webhooks.
    let created = conversation::create(state, site_id, visitor_id, ConversationState::Bot).await?;
    state
        .store
        .email_set_channel(&created.id, Channel::Email)
        .await?;
    crate::publish::summary(&*state.bus, &created);
    let mut change = Transition::new(
        &created.id,
        &[ConversationState::Bot],
        ConversationState::Queued,
        now,
    );
    change.department = Some(String::new());
    change.priority = Some(0);
    change.handoff_reason = Some("email".to_owned());
    change.event = Some(SystemEvent::new(EventCode::Queued, &[]));
    let (queued, applied) = conversation::transition(state, change).await?;
    if applied {
        state
            .routing
            .send(crate::routing::Command::HandOff {
                site_id: queued.site_id.clone(),
                conversation: queued.id.clone(),
                department: String::new(),
                priority: 0,
                preferred_agent: None,
            })
            .await;
    }
    Ok(queued)
}
