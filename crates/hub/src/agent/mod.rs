//! `/ws/agent`: the console's endpoint, one module per frame type.
//!
//! The socket opens only for a valid session (checked on the HTTP upgrade). From then
//! on the connection holds a live [`Grant`] from the [`Authority`](crate::authority):
//! every frame is checked against the agent's role and sites *now*, and a change
//! reaches the connection at once ([`Endpoint::control`]): a session that ended
//! (signed out, expired, password changed, account disabled) closes the socket with
//! code 4001; a narrowed role or site list closes it with 4003 so the console
//! reconnects with the new scope; a site gained is subscribed in place.
//!
//! What the connection receives: summaries of every conversation of the agent's sites
//! (`conversation`, `activity`, `agents`), the full stream of the conversations
//! assigned to the agent and of those it watches (`resume` until `unwatch`), and the
//! agent's own events (offers, presence).

mod accept;
mod close;
mod hello;
mod presence;
mod resume;
mod seen;
mod send;
mod take;
mod transfer;
mod typing;
mod unwatch;

use crate::authority::Grant;
use crate::clock::now_ms;
use crate::fanout::Side;
use crate::ws::{Endpoint, Flow, Link, Prologue, close_code};
use salam_protocol::{AgentFrame, DecodeError, ErrorCode, ServerFrame};
use salam_routing::RoutingError;
use salam_store::AgentRole;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::Instrument;

/// How often a socket in use marks its session used.
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The endpoint's state for one connection.
pub struct AgentEndpoint {
    /// The grant this connection acts under (the latest seen).
    grant: Arc<Grant>,
    grants: watch::Receiver<Arc<Grant>>,
    /// The hash of the session the socket was opened with.
    session: String,
    /// When this socket last marked the session used (the idle timeout counts work
    /// done over the socket too).
    touched: std::time::Instant,
    greeted: bool,
    /// Sites whose summaries this connection receives.
    sites: Vec<String>,
    /// Conversation id → site id, for conversations already looked up.
    known: HashMap<String, String>,
    /// Conversations known to have left the bot (a reply into them takes nothing).
    with_people: HashSet<String>,
}

impl AgentEndpoint {
    pub fn new(grants: watch::Receiver<Arc<Grant>>, session: String) -> AgentEndpoint {
        let grant = grants.borrow().clone();
        AgentEndpoint {
            grant,
            grants,
            session,
            touched: std::time::Instant::now(),
            greeted: false,
            sites: Vec::new(),
            known: HashMap::new(),
            with_people: HashSet::new(),
        }
    }

    fn agent(&self) -> &salam_store::Agent {
        &self.grant.agent
    }

    /// The site of `conversation` if this agent may act on it now.
    async fn site_of(&mut self, link: &Link, conversation: &str) -> Option<String> {
        let site = match self.known.get(conversation) {
            Some(site) => site.clone(),
            None => match link.state.store.conversation(conversation).await {
                Ok(Some(found)) => {
                    self.known.insert(found.id, found.site_id.clone());
                    found.site_id
                }
                _ => return None,
            },
        };
        self.grant.can_access(&site).then_some(site)
    }

    /// Refuses a conversation of another site exactly like a missing one.
    async fn refuse(link: &Link, client_id: Option<String>) -> Flow {
        link.error(
            ErrorCode::Forbidden,
            "not a conversation of your sites",
            client_id,
        )
        .await;
        Flow::Continue
    }

    /// Subscribes to sites gained while connected and lists their open conversations.
    async fn gain_sites(&mut self, link: &Link, gained: Vec<String>) {
        let state = &link.state;
        for site_id in &gained {
            state.registry.subscribe_site(site_id, &link.mailbox);
        }
        self.sites.extend(gained.iter().cloned());
        match state.store.open_conversations_of_sites(&gained, 500).await {
            Ok(conversations) => {
                for conversation in conversations {
                    self.known
                        .insert(conversation.id.clone(), conversation.site_id.clone());
                    link.send(&ServerFrame::Conversation {
                        conversation: conversation.summary(),
                    })
                    .await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "conversations of a new site not read"),
        }
    }
}

/// The client-visible code for a refused routing request.
fn routing_code(err: RoutingError) -> ErrorCode {
    match err {
        RoutingError::UnknownAgent
        | RoutingError::UnknownConversation
        | RoutingError::UnservedDepartment => ErrorCode::NotFound,
        RoutingError::AlreadyClosed => ErrorCode::ConversationClosed,
        RoutingError::OverCapacity => ErrorCode::AtCapacity,
        _ => ErrorCode::Forbidden,
    }
}

impl Endpoint for AgentEndpoint {
    type Frame = AgentFrame;
    const SIDE: Side = Side::Agent;

    fn decode(text: &str) -> Result<AgentFrame, DecodeError> {
        salam_protocol::decode_agent(text)
    }

    fn prologue(frame: &AgentFrame) -> Prologue {
        match frame {
            AgentFrame::Hello { .. } => Prologue::Hello,
            AgentFrame::Ping { nonce } => Prologue::Ping(*nonce),
            _ => Prologue::Other,
        }
    }

    fn client_id(frame: &AgentFrame) -> Option<String> {
        match frame {
            AgentFrame::Send { client_id, .. } => Some(client_id.clone()),
            _ => None,
        }
    }

    fn greeted(&self) -> bool {
        self.greeted
    }

    fn is_admin(&self) -> bool {
        self.agent().role == AgentRole::Admin
    }

    async fn hello(&mut self, link: &mut Link, frame: AgentFrame) -> Flow {
        let AgentFrame::Hello { v } = frame else {
            return Flow::Continue;
        };
        Box::pin(hello::handle(self, link, v)).await
    }

    async fn dispatch(&mut self, link: &mut Link, frame: AgentFrame) -> Flow {
        if self.touched.elapsed() > TOUCH_EVERY {
            self.touched = std::time::Instant::now();
            let (store, session) = (link.state.store.clone(), self.session.clone());
            tokio::spawn(async move {
                if let Err(err) = store.touch_session(&session, now_ms()).await {
                    tracing::debug!(error = %err, "session not touched");
                }
            });
        }
        let span = tracing::debug_span!("agent", agent = %self.agent().id);
        async move {
            match frame {
                AgentFrame::Hello { .. } | AgentFrame::Ping { .. } => Flow::Continue,
                AgentFrame::Presence { presence } => presence::handle(self, link, presence).await,
                AgentFrame::Send {
                    conversation,
                    client_id,
                    text,
                    note,
                } => send::handle(self, link, conversation, client_id, text, note).await,
                AgentFrame::Resume {
                    conversation,
                    after,
                } => resume::handle(self, link, conversation, after).await,
                AgentFrame::Unwatch { conversation } => {
                    unwatch::handle(self, link, conversation).await
                }
                AgentFrame::Typing {
                    conversation,
                    typing,
                } => typing::handle(self, link, conversation, typing).await,
                AgentFrame::Seen { conversation, seq } => {
                    seen::handle(self, link, conversation, seq).await
                }
                AgentFrame::Take { conversation } => take::handle(self, link, conversation).await,
                AgentFrame::Accept { conversation } => {
                    accept::handle(self, link, conversation).await
                }
                AgentFrame::Transfer {
                    conversation,
                    agent,
                    department,
                    note,
                } => {
                    let to = transfer::Request {
                        agent,
                        department,
                        note,
                    };
                    transfer::handle(self, link, conversation, to).await
                }
                AgentFrame::Close { conversation } => close::handle(self, link, conversation).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn control(&mut self) {
        let expiry = self
            .grant
            .session_expiry(&self.session)
            .unwrap_or_else(now_ms);
        let left = std::time::Duration::from_millis((expiry - now_ms()).max(0) as u64);
        let deadline = tokio::time::Instant::now() + left;
        tokio::select! {
            changed = self.grants.changed() => {
                if changed.is_err() {
                    // The authority never drops a watched grant; if it did, wait for
                    // the session's end only.
                    tokio::time::sleep_until(deadline).await;
                }
            }
            () = tokio::time::sleep_until(deadline) => {}
        }
    }

    async fn on_control(&mut self, link: &mut Link) -> Flow {
        let grant = self.grants.borrow_and_update().clone();
        let live = grant
            .session_expiry(&self.session)
            .is_some_and(|expiry| expiry > now_ms());
        if !live {
            link.error(
                ErrorCode::Unauthorized,
                "your session ended; sign in again",
                None,
            )
            .await;
            return Flow::Close(close_code::SESSION_ENDED, "session ended");
        }
        let narrowed = grant.agent.role != self.grant.agent.role
            || self.sites.iter().any(|site| !grant.can_access(site));
        if narrowed {
            link.error(
                ErrorCode::AccessChanged,
                "your role or sites changed; reconnect",
                None,
            )
            .await;
            return Flow::Close(close_code::ACCESS_CHANGED, "access changed");
        }
        let gained: Vec<String> = grant
            .sites
            .iter()
            .filter(|site| !self.sites.contains(site))
            .cloned()
            .collect();
        self.grant = grant;
        if !gained.is_empty() {
            self.gain_sites(link, gained).await;
        }
        Flow::Continue
    }

    async fn on_close(&mut self, link: &Link) {
        if self.greeted {
            link.state
                .routing
                .send(crate::routing::Command::Disconnected {
                    agent_id: self.agent().id.clone(),
                    connection: link.connection,
                })
                .await;
        }
    }
}
