//! `/ws/agent`: the console's endpoint. The socket is only opened for a valid session
//! (checked on the HTTP upgrade); an agent acts only on the sites their role allows.

use crate::fanout::{Audience, Outbound};
use crate::service;
use crate::state::now_ms;
use crate::ws::{Endpoint, Flow, Link, close_code};
use salam_protocol::{
    AgentFrame, ConversationState, ErrorCode, MessageKind, PROTOCOL_VERSION, Role, ServerFrame,
};
use salam_store::{Agent, AgentRole, Conversation, NewMessage};
use std::collections::HashMap;
use tracing::Instrument;

/// The endpoint's state for one connection.
pub struct AgentEndpoint {
    agent: Agent,
    greeted: bool,
    /// Sites this connection is subscribed to.
    sites: Vec<String>,
    /// Conversation id → site id, for conversations already checked.
    known: HashMap<String, String>,
}

impl AgentEndpoint {
    pub fn new(agent: Agent) -> AgentEndpoint {
        AgentEndpoint {
            agent,
            greeted: false,
            sites: Vec::new(),
            known: HashMap::new(),
        }
    }

    /// The sites this agent works on (admins: every site).
    async fn site_ids(&self, link: &Link) -> Result<Vec<String>, salam_store::StoreError> {
        if self.agent.role == AgentRole::Admin {
            Ok(link
                .state
                .store
                .list_sites()
                .await?
                .into_iter()
                .map(|site| site.id)
                .collect())
        } else {
            Ok(self.agent.site_ids.clone())
        }
    }

    async fn hello(&mut self, link: &mut Link, v: u32) -> Flow {
        if v != PROTOCOL_VERSION {
            link.error(
                ErrorCode::UnsupportedVersion,
                &format!("this hub speaks protocol version {PROTOCOL_VERSION}"),
                None,
            )
            .await;
            return Flow::Close(close_code::POLICY, "unsupported version");
        }
        let state = link.state.clone();
        let loaded = match self.site_ids(link).await {
            Ok(site_ids) => state
                .store
                .open_conversations_of_sites(&site_ids, 500)
                .await
                .map(|conversations| (site_ids, conversations)),
            Err(err) => Err(err),
        };
        let (site_ids, conversations) = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                link.error(service::store_code(&err), "try again later", None)
                    .await;
                return Flow::Close(close_code::RECONNECT, "store unavailable");
            }
        };
        for conversation in &conversations {
            self.known
                .insert(conversation.id.clone(), conversation.site_id.clone());
        }
        // `welcome` is queued before the subscriptions, so it is always the first frame;
        // what is committed after the list was read reaches the client live or by
        // `resume` from the listed `last_seq`.
        link.send(&ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            role: match self.agent.role {
                AgentRole::Admin => Role::Admin,
                AgentRole::Agent => Role::Agent,
            },
            you: self.agent.author(),
            token: None,
            conversations: conversations.iter().map(Conversation::summary).collect(),
            heartbeat_secs: state.config.websocket.heartbeat_secs,
            limits: state.wire_limits(),
        })
        .await;
        // Live messages of the listed conversations wait for their `resume`.
        link.push(Outbound::Hold(Box::new(
            conversations
                .iter()
                .map(|c| (c.id.clone(), c.last_seq))
                .collect(),
        )))
        .await;
        for site_id in &site_ids {
            state.registry.subscribe_site(site_id, link.mailbox.clone());
        }
        state
            .routing
            .send(crate::routing::Command::Connected {
                agent: self.agent.clone(),
                site_ids: site_ids.clone(),
            })
            .await;
        self.sites = site_ids;
        self.greeted = true;
        Flow::Continue
    }

    /// The site of `conversation` if this agent may act on it.
    async fn site_of(&mut self, link: &Link, conversation: &str) -> Option<String> {
        if let Some(site_id) = self.known.get(conversation) {
            return Some(site_id.clone());
        }
        match link.state.store.conversation(conversation).await {
            Ok(Some(found)) if self.agent.can_access(&found.site_id) => {
                self.known.insert(found.id, found.site_id.clone());
                Some(found.site_id)
            }
            _ => None,
        }
    }

    async fn handle(&mut self, link: &mut Link, frame: AgentFrame) {
        let state = link.state.clone();
        let conversation = match &frame {
            AgentFrame::Hello { .. } | AgentFrame::Ping { .. } => return,
            AgentFrame::Presence { presence } => {
                state
                    .routing
                    .send(crate::routing::Command::Presence {
                        agent_id: self.agent.id.clone(),
                        presence: *presence,
                    })
                    .await;
                return;
            }
            AgentFrame::Resume { conversation, .. }
            | AgentFrame::Send { conversation, .. }
            | AgentFrame::Typing { conversation, .. }
            | AgentFrame::Seen { conversation, .. }
            | AgentFrame::Take { conversation }
            | AgentFrame::Accept { conversation }
            | AgentFrame::Transfer { conversation, .. }
            | AgentFrame::Close { conversation } => conversation.clone(),
        };
        let client_id = match &frame {
            AgentFrame::Send { client_id, .. } => Some(client_id.clone()),
            _ => None,
        };
        let Some(site_id) = self.site_of(link, &conversation).await else {
            link.error(
                ErrorCode::Forbidden,
                "not a conversation of your sites",
                client_id,
            )
            .await;
            return;
        };
        match frame {
            AgentFrame::Hello { .. } | AgentFrame::Ping { .. } | AgentFrame::Presence { .. } => {}
            AgentFrame::Take { .. } => {
                if let Err(err) = state
                    .routing
                    .take(&self.agent.id, &site_id, &conversation)
                    .await
                {
                    link.error(routing_code(err), &err.to_string(), None).await;
                }
            }
            AgentFrame::Accept { .. } => {
                if let Err(err) = state
                    .routing
                    .accept(&self.agent.id, &site_id, &conversation)
                    .await
                {
                    link.error(routing_code(err), &err.to_string(), None).await;
                }
            }
            AgentFrame::Transfer {
                agent,
                department,
                note,
                ..
            } => {
                self.transfer(link, &site_id, conversation, agent, department, note)
                    .await;
            }
            AgentFrame::Resume { after, .. } => {
                link.push(Outbound::Resume(Box::new((conversation, after))))
                    .await;
            }
            AgentFrame::Send {
                client_id,
                text,
                note,
                ..
            } => {
                if let Err((code, message)) =
                    service::check_client_id(&client_id).and(service::check_text(&state, &text))
                {
                    link.error(code, &message, Some(client_id)).await;
                    return;
                }
                let new_message = NewMessage {
                    conversation: conversation.clone(),
                    kind: if note {
                        MessageKind::Note
                    } else {
                        MessageKind::Text
                    },
                    author: self.agent.author(),
                    text,
                    client_id: Some(client_id.clone()),
                    quick_replies: Vec::new(),
                    rule: None,
                    at: now_ms(),
                };
                let replier = link.replier();
                let Some(pending) = service::enqueue_from_client(&replier, new_message).await
                else {
                    return;
                };
                let appended =
                    service::finish_from_client(&replier, &site_id, client_id, pending).await;
                if !note && appended.is_some_and(|appended| !appended.duplicate) {
                    let _ = state
                        .store
                        .record_first_response(&conversation, now_ms())
                        .await;
                    state
                        .routing
                        .send(crate::routing::Command::Responded {
                            site_id: site_id.clone(),
                            conversation: conversation.clone(),
                        })
                        .await;
                }
            }
            AgentFrame::Typing { typing, .. } => {
                service::publish_frame(
                    &state,
                    &site_id,
                    Some(&conversation),
                    Audience::Everyone,
                    Some(link.connection),
                    &ServerFrame::Typing {
                        conversation: conversation.clone(),
                        author: self.agent.author(),
                        typing,
                    },
                );
            }
            AgentFrame::Seen { seq, .. } => {
                service::publish_frame(
                    &state,
                    &site_id,
                    Some(&conversation),
                    Audience::Everyone,
                    Some(link.connection),
                    &ServerFrame::Seen {
                        conversation: conversation.clone(),
                        seq,
                        by: self.agent.author(),
                    },
                );
            }
            AgentFrame::Close { .. } => {
                let found = match state.store.conversation(&conversation).await {
                    Ok(Some(found)) => found,
                    Ok(None) => {
                        return link
                            .error(ErrorCode::NotFound, "no such conversation", None)
                            .await;
                    }
                    Err(err) => {
                        return link
                            .error(
                                service::store_code(&err),
                                service::store_message(&err),
                                None,
                            )
                            .await;
                    }
                };
                if found.state == ConversationState::Closed {
                    return;
                }
                let reason = format!("closed by {}", self.agent.name);
                if let Err(err) =
                    service::close(&state, &found, found.agent_id.as_deref(), &reason).await
                {
                    link.error(
                        service::store_code(&err),
                        service::store_message(&err),
                        None,
                    )
                    .await;
                }
            }
        }
    }
}

/// The client-visible code for a refused routing request.
fn routing_code(err: salam_routing::RoutingError) -> ErrorCode {
    use salam_routing::RoutingError;
    match err {
        RoutingError::UnknownAgent | RoutingError::UnknownConversation => ErrorCode::NotFound,
        RoutingError::AlreadyClosed => ErrorCode::ConversationClosed,
        _ => ErrorCode::Forbidden,
    }
}

impl AgentEndpoint {
    /// Transfers to an agent or a department; the note travels as an internal note and
    /// the visitor is told.
    async fn transfer(
        &mut self,
        link: &mut Link,
        site_id: &str,
        conversation: String,
        agent: Option<String>,
        department: Option<String>,
        note: Option<String>,
    ) {
        let state = link.state.clone();
        let (target, told) = match (agent, department) {
            (Some(agent_id), None) => {
                let name = match state.store.agent_by_id(&agent_id).await {
                    Ok(Some(agent)) if agent.can_access(site_id) && !agent.disabled => agent.name,
                    _ => {
                        return link
                            .error(ErrorCode::NotFound, "no such agent on this site", None)
                            .await;
                    }
                };
                (
                    crate::routing::Target::Agent(agent_id),
                    format!("transferred to {name}"),
                )
            }
            (None, Some(department)) => {
                let told = format!("transferred to the {department} team");
                (crate::routing::Target::Department(department), told)
            }
            _ => {
                return link
                    .error(
                        ErrorCode::BadField,
                        "name either an agent or a department",
                        None,
                    )
                    .await;
            }
        };
        if let Some(note) = note.filter(|note| !note.trim().is_empty()) {
            if let Err((code, message)) = service::check_text(&state, &note) {
                return link.error(code, &message, None).await;
            }
            if let Err(err) = service::post(
                &state,
                site_id,
                &conversation,
                MessageKind::Note,
                self.agent.author(),
                note,
                Vec::new(),
            )
            .await
            {
                return link
                    .error(
                        service::store_code(&err),
                        service::store_message(&err),
                        None,
                    )
                    .await;
            }
        }
        match state.routing.transfer(site_id, &conversation, target).await {
            Ok(()) => {
                if let Err(err) = service::post(
                    &state,
                    site_id,
                    &conversation,
                    MessageKind::Event,
                    service::system(),
                    told,
                    Vec::new(),
                )
                .await
                {
                    tracing::warn!(error = %err, "transfer event not stored");
                }
            }
            Err(err) => link.error(routing_code(err), &err.to_string(), None).await,
        }
    }
}

impl Endpoint for AgentEndpoint {
    fn is_admin(&self) -> bool {
        self.agent.role == AgentRole::Admin
    }

    async fn on_text(&mut self, link: &mut Link, text: &str) -> Flow {
        let frame = match salam_protocol::decode_agent(text) {
            Ok(frame) => frame,
            Err(err) => {
                link.error(err.code, &err.message, None).await;
                return Flow::Continue;
            }
        };
        if !link.allow() {
            let client_id = match &frame {
                AgentFrame::Send { client_id, .. } => Some(client_id.clone()),
                _ => None,
            };
            link.error(
                ErrorCode::RateLimited,
                "too many frames; this one was dropped",
                client_id,
            )
            .await;
            return Flow::Continue;
        }
        match frame {
            AgentFrame::Ping { nonce } => {
                link.send(&ServerFrame::Pong { nonce }).await;
                Flow::Continue
            }
            AgentFrame::Hello { v } => {
                if self.greeted {
                    link.error(ErrorCode::AlreadyGreeted, "hello was already sent", None)
                        .await;
                    return Flow::Continue;
                }
                Box::pin(self.hello(link, v)).await
            }
            other if !self.greeted => {
                let _ = other;
                link.error(
                    ErrorCode::HelloRequired,
                    "send hello before anything else",
                    None,
                )
                .await;
                Flow::Continue
            }
            other => {
                let span = tracing::debug_span!("agent", agent = %self.agent.id);
                Box::pin(self.handle(link, other).instrument(span)).await;
                Flow::Continue
            }
        }
    }

    async fn on_close(&mut self, link: &Link) {
        if self.greeted {
            link.state
                .routing
                .send(crate::routing::Command::Disconnected {
                    agent_id: self.agent.id.clone(),
                })
                .await;
        }
        for site_id in &self.sites {
            link.state
                .registry
                .unsubscribe_site(site_id, link.connection);
        }
    }
}
