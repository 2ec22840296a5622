//! Outgoing mail: a bounded queue and one sending task; and the bounded channel on
//! which the rest of the hub tells e-mail what happened ([`Email::after_message`],
//! [`Email::visitor_seen`]; served by `email::hooks`). A leaf module: it knows the
//! configuration and the wire types, nothing of the hub's state.
//!
//! Callers (a handler, a timer) only [`Email::enqueue`]: a full queue is refused at once
//! (logged and counted), never waited on. The task sends each mail over SMTP
//! (`lettre`), trying again with a doubling pause (`smtp.attempts`, `smtp.retry_ms`);
//! a mail that never goes is logged with the server's answer and counted, and the
//! counts and the last error are in `GET /api/email/status` (admins).
//!
//! Only `smtp://HOST[:PORT]` is supported: the hub hands mail to a relay next to it
//! (a local MTA), which does TLS, authentication and delivery; see docs/email.md.

use crate::config::SmtpConfig;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use salam_protocol::{AuthorKind, Message, MessageKind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A mail to send.
#[derive(Debug, Clone)]
pub struct OutMail {
    pub to: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The reply address (`reply+TOKEN@DOMAIN`).
    pub reply_to: Option<String>,
    /// `Auto-Submitted: auto-generated` (a mail no person wrote just now).
    pub auto: bool,
    /// `Content-Language`.
    pub lang: &'static str,
}

/// What the rest of the hub tells e-mail.
#[derive(Debug, Clone)]
pub enum Hook {
    /// An agent's text was committed.
    AgentMessage { message: Box<Message> },
    /// The visitor has seen everything up to `seq`.
    Seen { conversation: String, seq: u64 },
    /// The conversation closed (a transcript may be due).
    Closed { conversation: String },
}

/// Why the `[smtp]` settings are refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpConfigError {
    #[error(
        "smtp.url {0:?} must be smtp://HOST[:PORT] (TLS and authentication belong to the relay)"
    )]
    Url(String),
    #[error("smtp.from {0:?} is not a mailbox such as \"Support <support@example.com>\"")]
    From(String),
}

/// Why a mail was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("no [smtp] url is configured")]
    Disabled,
    #[error("the mail queue is full")]
    Full,
}

/// Counts for the operator.
#[derive(Debug, Default)]
pub struct EmailStats {
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub refused: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

struct Relay {
    host: String,
    port: u16,
}

/// Outgoing mail of the hub (in [`crate::state::AppState`]).
pub struct Email {
    relay: Option<Relay>,
    pub from: Option<Mailbox>,
    sender: mpsc::Sender<OutMail>,
    receiver: Mutex<Option<mpsc::Receiver<OutMail>>>,
    pub stats: EmailStats,
    /// Why the settings were refused (reported by `email::spawn`).
    pub config_error: Option<SmtpConfigError>,
    /// What the rest of the hub tells e-mail (see `hooks`); bounded, never waited on.
    pub(crate) hooks: mpsc::Sender<Hook>,
    pub(crate) hook_receiver: Mutex<Option<mpsc::Receiver<Hook>>>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("enabled", &self.relay.is_some())
            .finish()
    }
}

/// `smtp://HOST[:PORT]` → host and port (25 by default).
pub fn parse_url(url: &str) -> Result<(String, u16), SmtpConfigError> {
    let bad = || SmtpConfigError::Url(url.to_owned());
    let rest = url.strip_prefix("smtp://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['@', '/', '?', '#']) {
        return Err(bad());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host, port.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (rest, 25),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

impl Email {
    pub fn new(config: &SmtpConfig) -> Email {
        let (sender, receiver) = mpsc::channel(config.queue.max(1) as usize);
        let (hooks, hook_receiver) = mpsc::channel(config.queue.max(1) as usize * 4);
        let mut config_error = None;
        let relay = match config.url.as_deref().map(parse_url) {
            Some(Ok((host, port))) => Some(Relay { host, port }),
            Some(Err(err)) => {
                config_error = Some(err);
                None
            }
            None => None,
        };
        let from = match config.from.parse::<Mailbox>() {
            Ok(from) => Some(from),
            Err(_) => {
                config_error.get_or_insert(SmtpConfigError::From(config.from.clone()));
                None
            }
        };
        Email {
            relay,
            from,
            sender,
            receiver: Mutex::new(Some(receiver)),
            stats: EmailStats::default(),
            config_error,
            hooks,
            hook_receiver: Mutex::new(Some(hook_receiver)),
        }
    }

    /// Whether mail can be sent.
    pub fn enabled(&self) -> bool {
        self.relay.is_some() && self.from.is_some()
    }

    /// The domain of the sender's address (names Message-IDs).
    pub fn from_domain(&self) -> String {
        self.from
            .as_ref()
            .map(|from| from.email.domain().to_owned())
            .unwrap_or_else(|| "localhost".into())
    }

    fn hook(&self, hook: Hook) {
        if !self.enabled() {
            return;
        }
        if self.hooks.try_send(hook).is_err() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("e-mail hook queue full: an event was dropped");
        }
    }

    /// Called for every committed message, before it is published: an agent's text
    /// may go out by e-mail (never waits).
    pub fn after_message(&self, message: &Message) {
        if message.author.kind == AuthorKind::Agent && message.kind == MessageKind::Text {
            self.hook(Hook::AgentMessage {
                message: Box::new(message.clone()),
            });
        }
    }

    /// Called when the visitor says they have seen up to `seq` (never waits).
    pub fn visitor_seen(&self, conversation: &str, seq: u64) {
        self.hook(Hook::Seen {
            conversation: conversation.to_owned(),
            seq,
        });
    }

    /// Called when a conversation closed (never waits).
    pub fn closed(&self, conversation: &str) {
        self.hook(Hook::Closed {
            conversation: conversation.to_owned(),
        });
    }

    /// Queues a mail; never waits.
    pub fn enqueue(&self, mail: OutMail) -> Result<(), QueueError> {
        if !self.enabled() {
            return Err(QueueError::Disabled);
        }
        match self.sender.try_send(mail) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                let mail = match err {
                    mpsc::error::TrySendError::Full(mail)
                    | mpsc::error::TrySendError::Closed(mail) => mail,
                };
                tracing::warn!(to = %mail.to, subject = %mail.subject, "mail queue full: mail dropped");
                Err(QueueError::Full)
            }
        }
    }

    /// Starts the sending task (once).
    pub fn spawn_sender(
        self: &std::sync::Arc<Self>,
        config: &SmtpConfig,
        shutdown: watch::Receiver<bool>,
    ) {
        let Some(relay) = &self.relay else { return };
        let Some(mut receiver) = self.receiver.lock().ok().and_then(|mut slot| slot.take()) else {
            return;
        };
        let transport: AsyncSmtpTransport<Tokio1Executor> =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.clone())
                .port(relay.port)
                .timeout(Some(Duration::from_secs(30)))
                .build();
        let email = self.clone();
        let attempts = config.attempts.max(1);
        let retry = Duration::from_millis(u64::from(config.retry_ms.max(1)));
        tokio::spawn(async move {
            let mut shutdown = shutdown;
            loop {
                let mail = tokio::select! {
                    mail = receiver.recv() => match mail { Some(mail) => mail, None => return },
                    _ = shutdown.changed() => return,
                };
                email
                    .send_with_retries(&transport, mail, attempts, retry)
                    .await;
            }
        });
    }

    async fn send_with_retries(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        mail: OutMail,
        attempts: u32,
        retry: Duration,
    ) {
        let Some(from) = &self.from else { return };
        let message = match build(from, &mail) {
            Ok(message) => message,
            Err(reason) => {
                self.failed(&mail, &reason);
                return;
            }
        };
        let mut pause = retry;
        for attempt in 1..=attempts {
            match transport.send(message.clone()).await {
                Ok(_) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(to = %mail.to, message_id = %mail.message_id, "mail sent");
                    return;
                }
                Err(err) if attempt < attempts && !err.is_permanent() => {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(to = %mail.to, attempt, error = %err, "mail not sent; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(600));
                }
                Err(err) => {
                    self.failed(&mail, &err.to_string());
                    return;
                }
            }
        }
    }

    fn failed(&self, mail: &OutMail, reason: &str) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(to = %mail.to, message_id = %mail.message_id, error = %reason, "mail given up");
        if let Ok(mut last) = self.stats.last_error.lock() {
            *last = Some(format!("{}: {reason}", mail.to));
        }
    }
}

/// The MIME message of a mail: multipart/alternative (plain text, then HTML).
pub fn build(from: &Mailbox, mail: &OutMail) -> Result<lettre::Message, String> {
    let to = mail
        .to
        .parse()
        .map_err(|err| format!("bad recipient {:?}: {err}", mail.to))?;
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .to(Mailbox::new(mail.to_name.clone(), to))
        .subject(mail.subject.clone())
        .message_id(Some(format!("<{}>", mail.message_id)))
        .date_now();
    if let Some(reply_to) = &mail.reply_to {
        let reply_to = reply_to
            .parse()
            .map_err(|err| format!("bad reply address {reply_to:?}: {err}"))?;
        builder = builder.reply_to(Mailbox::new(None, reply_to));
    }
    if let Some(parent) = &mail.in_reply_to {
        builder = builder.in_reply_to(format!("<{parent}>"));
    }
    if !mail.references.is_empty() {
        let references: Vec<String> = mail.references.iter().map(|id| format!("<{id}>")).collect();
        builder = builder.references(references.join(" "));
    }
    if mail.auto {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ));
    }
    builder = builder.raw_header(HeaderValue::new(
        HeaderName::new_from_ascii_str("Content-Language"),
        mail.lang.into(),
    ));
    builder
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("smtp://127.0.0.1:2525"),
            Ok(("127.0.0.1".into(), 2525))
        );
        assert_eq!(parse_url("smtp://mx.local"), Ok(("mx.local".into(), 25)));
        assert_eq!(parse_url("smtp://[::1]:26"), Ok(("::1".into(), 26)));
        for bad in [
            "smtps://x:465",
            "http://x",
            "smtp://",
            "smtp://u:p@x:25",
            "smtp://x:port",
            "smtp://x:0",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
