//! `hello`: the handshake. Lists the open conversations of the agent's sites in
//! `welcome`, then subscribes the connection to their summaries, to the agent's own
//! events and to the full stream of the conversations assigned to them, and tells
//! routing a socket of the agent is open.

use super::AgentEndpoint;
use crate::conversation;
use crate::fanout::{Outbound, reason};
use crate::ws::{Flow, Link, close_code};
use salam_protocol::{ConversationState, ErrorCode, PROTOCOL_VERSION, Presence, Role, ServerFrame};
use salam_store::{AgentRole, Conversation};

pub(super) async fn handle(endpoint: &mut AgentEndpoint, link: &mut Link, v: u32) -> Flow {
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
    let grant = endpoint.grants.borrow_and_update().clone();
    endpoint.grant = grant.clone();
    let agent = &grant.agent;
    let site_ids = grant.sites.clone();
    let conversations = match state
        .store
        .open_conversations_of_sites(&site_ids, 500)
        .await
    {
        Ok(conversations) => conversations,
        Err(err) => {
            link.error(conversation::store_code(&err), "try again later", None)
                .await;
            return Flow::Close(close_code::RECONNECT, "store unavailable");
        }
    };
    for conversation in &conversations {
        endpoint
            .known
            .insert(conversation.id.clone(), conversation.site_id.clone());
    }
    let mine: Vec<&Conversation> = conversations
        .iter()
        .filter(|c| {
            c.state == ConversationState::Assigned && c.agent_id.as_deref() == Some(&agent.id)
        })
        .collect();
    // The presence routing shows, or the one they chose when routing has them offline
    // (this socket is about to bring them back).
    let presence = state
        .routing
        .view()
        .agents
        .get(&agent.id)
        .map(|status| status.presence)
        .filter(|presence| *presence != Presence::Offline)
        .unwrap_or(agent.presence);
    // `welcome` is queued before the subscriptions, so it is always the first frame;
    // what is committed after the list was read reaches the client live or by `resume`
    // from the listed `last_seq`.
    link.send(&ServerFrame::Welcome {
        v: PROTOCOL_VERSION,
        role: match agent.role {
            AgentRole::Admin => Role::Admin,
            AgentRole::Agent => Role::Agent,
        },
        you: agent.author(),
        token: None,
        conversations: conversations.iter().map(Conversation::summary).collect(),
        heartbeat_secs: state.config.websocket.heartbeat_secs,
        limits: state.wire_limits(),
        sites: site_ids.clone(),
        presence: Some(presence),
        team: None,
    })
    .await;
    // Live messages of the conversations it follows wait for their `resume`.
    link.push(Outbound::Hold(Box::new(
        mine.iter().map(|c| (c.id.clone(), c.last_seq)).collect(),
    )))
    .await;
    state.registry.register_agent(&agent.id, &link.mailbox);
    for site_id in &site_ids {
        state.registry.subscribe_site(site_id, &link.mailbox);
    }
    for conversation in &mine {
        endpoint.with_people.insert(conversation.id.clone());
        state
            .registry
            .follow(&conversation.id, &link.mailbox, reason::ASSIGNED);
    }
    state
        .routing
        .send(crate::routing::Command::Connected {
            agent_id: agent.id.clone(),
            connection: link.connection,
        })
        .await;
    endpoint.sites = site_ids;
    endpoint.greeted = true;
    Flow::Continue
}
