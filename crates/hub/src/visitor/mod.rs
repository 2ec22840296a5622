//! `/ws/visitor`: the widget's endpoint, one module per frame type.
//!
//! A visitor proves who they are with the signed token from an earlier `welcome`; the
//! hub refuses a token it did not sign, and a visitor can only ever touch conversations
//! whose `visitor_id` is theirs. A visitor connection follows its own conversations
//! (their full stream); nothing else reaches it.

mod close;
mod contact;
mod hello;
mod identify;
pub mod pages;
mod rate;
mod resume;
mod seen;
mod send;
mod transcript;
mod typing;

pub use hello::{ORIGIN_REFUSED, note_refused_origin, origin_allowed};

use crate::fanout::{Side, reason};
use crate::site::SiteSettings;
use crate::ws::{Endpoint, Flow, Link, Prologue};
use salam_protocol::{Author, AuthorKind, DecodeError, ErrorCode, VisitorFrame};
use salam_store::Site;
use std::collections::HashSet;
use tracing::Instrument;

/// The endpoint's state for one connection.
pub struct VisitorEndpoint {
    /// The `Origin` header of the upgrade request.
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    /// The client's address (shared rate limits).
    pub ip: std::net::IpAddr,
    session: Option<Session>,
}

/// What a greeted visitor connection knows.
pub(crate) struct Session {
    site: Site,
    settings: std::sync::Arc<SiteSettings>,
    /// The widget's locale (from `hello`).
    locale: Option<String>,
    /// A VIP (identified, on the site's list): skips the bot.
    vip: bool,
    visitor_id: String,
    /// Conversations known to be this visitor's (this connection follows them).
    owned: HashSet<String>,
    /// The open conversation a `send` without `conversation` goes to.
    current: Option<String>,
}

impl Session {
    fn author(&self) -> Author {
        Author {
            kind: AuthorKind::Visitor,
            id: Some(self.visitor_id.clone()),
            name: None,
        }
    }
}

impl VisitorEndpoint {
    pub fn new(
        origin: Option<String>,
        user_agent: Option<String>,
        ip: std::net::IpAddr,
    ) -> VisitorEndpoint {
        VisitorEndpoint {
            origin,
            user_agent,
            ip,
            session: None,
        }
    }
}

impl Endpoint for VisitorEndpoint {
    type Frame = VisitorFrame;
    const SIDE: Side = Side::Visitor;

    fn decode(text: &str) -> Result<VisitorFrame, DecodeError> {
        salam_protocol::decode_visitor(text)
    }

    fn prologue(frame: &VisitorFrame) -> Prologue {
        match frame {
            VisitorFrame::Hello { .. } => Prologue::Hello,
            VisitorFrame::Ping { nonce } => Prologue::Ping(*nonce),
            _ => Prologue::Other,
        }
    }

    fn client_id(frame: &VisitorFrame) -> Option<String> {
        match frame {
            VisitorFrame::Send { client_id, .. } => Some(client_id.clone()),
            _ => None,
        }
    }

    fn greeted(&self) -> bool {
        self.session.is_some()
    }

    async fn hello(&mut self, link: &mut Link, frame: VisitorFrame) -> Flow {
        let VisitorFrame::Hello {
            v,
            site,
            token,
            locale,
            page,
        } = frame
        else {
            return Flow::Continue;
        };
        // Boxed: the handshake's state would otherwise sit in every idle connection's
        // future.
        match Box::pin(hello::handle(self, link, v, site, token, locale, page)).await {
            Ok(session) => {
                self.session = Some(session);
                Flow::Continue
            }
            Err(flow) => flow,
        }
    }

    async fn dispatch(&mut self, link: &mut Link, frame: VisitorFrame) -> Flow {
        let ip = self.ip;
        let Some(session) = self.session.as_mut() else {
            return Flow::Continue;
        };
        if writes(&frame) && !within_shared_limits(link, &session.visitor_id, ip) {
            link.error(
                ErrorCode::RateLimited,
                "too many messages from this visitor or address; this one was dropped",
                Self::client_id(&frame),
            )
            .await;
            return Flow::Continue;
        }
        let span = tracing::debug_span!("visitor", visitor = %session.visitor_id);
        async move {
            match frame {
                VisitorFrame::Hello { .. } | VisitorFrame::Ping { .. } => Flow::Continue,
                VisitorFrame::Send {
                    client_id,
                    text,
                    conversation,
                } => send::handle(session, link, client_id, text, conversation).await,
                VisitorFrame::Resume {
                    conversation,
                    after,
                } => resume::handle(session, link, conversation, after).await,
                VisitorFrame::Typing {
                    conversation,
                    typing,
                } => typing::handle(session, link, conversation, typing).await,
                VisitorFrame::Seen { conversation, seq } => {
                    seen::handle(session, link, conversation, seq).await
                }
                VisitorFrame::Close { conversation } => {
                    close::handle(session, link, conversation).await
                }
                VisitorFrame::Rate {
                    conversation,
                    score,
                    comment,
                } => rate::handle(session, link, conversation, score, comment).await,
                VisitorFrame::Contact {
                    conversation,
                    name,
                    email,
                    phone,
                    message,
                } => {
                    let details = contact::Details {
                        name,
                        email,
                        phone,
                        message,
                    };
                    contact::handle(session, link, conversation, details).await
                }
                VisitorFrame::Identify { token, name, email } => {
                    identify::handle(session, link, token, name, email).await
                }
                VisitorFrame::Transcript {
                    conversation,
                    email,
                } => transcript::handle(session, link, conversation, email).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn on_close(&mut self, _link: &Link) {
        // The connection loop drops every subscription of the connection.
    }
}

/// Frames that write something others see or keep: limited per visitor (across all
/// their sockets) and per address, besides the connection's own bucket.
fn writes(frame: &VisitorFrame) -> bool {
    matches!(
        frame,
        VisitorFrame::Send { .. }
            | VisitorFrame::Contact { .. }
            | VisitorFrame::Rate { .. }
            | VisitorFrame::Identify { .. }
            | VisitorFrame::Transcript { .. }
            | VisitorFrame::Close { .. }
    )
}

/// Takes a token from the visitor's bucket, then from the address's.
fn within_shared_limits(link: &Link, visitor_id: &str, ip: std::net::IpAddr) -> bool {
    use crate::rate::BucketKey;
    let limits = &link.state.config.limits;
    let now = std::time::Instant::now();
    let buckets = &link.state.buckets;
    buckets.take(
        BucketKey::Visitor(visitor_id.to_owned()),
        limits.visitor_rate_per_sec,
        limits.visitor_burst,
        now,
    ) && buckets.take(
        BucketKey::Ip(ip),
        limits.ip_rate_per_sec,
        limits.ip_burst,
        now,
    )
}

/// Whether `conversation` is this visitor's; learns it from the store on first use
/// (and follows it from then on).
async fn owns(session: &mut Session, link: &Link, conversation: &str) -> bool {
    if session.owned.contains(conversation) {
        return true;
    }
    match link.state.store.conversation(conversation).await {
        Ok(Some(found))
            if found.visitor_id == session.visitor_id && found.site_id == session.site.id =>
        {
            session.owned.insert(found.id.clone());
            link.state
                .registry
                .follow(&found.id, &link.mailbox, reason::OWNER);
            true
        }
        _ => false,
    }
}

/// The same answer for "not yours" and "does not exist": no probing of ids.
async fn refuse(link: &Link, client_id: Option<String>) -> Flow {
    link.error(
        ErrorCode::Forbidden,
        "not a conversation of this visitor",
        client_id,
    )
    .await;
    Flow::Continue
}

/// A one-line field from a visitor, cleaned ([`crate::text::clean_field`]).
fn clean(value: Option<String>, max: usize) -> Option<String> {
    crate::text::clean_field(value, max)
}
