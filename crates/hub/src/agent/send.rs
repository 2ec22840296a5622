//! `send`: an agent's reply or internal note. Pipelined like a visitor's: queued for
//! commit, then (deferred) acknowledged and delivered. The first-response time is set
//! by the append itself. A reply into a conversation the bot still has takes it first
//! (answered once the assignment is committed), so the bot says nothing more.

use super::{AgentEndpoint, routing_code};
use crate::clock::now_ms;
use crate::conversation;
use crate::ws::{Flow, Link};
use salam_protocol::{ConversationState, ErrorCode, MessageKind};
use salam_store::NewMessage;

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
    client_id: String,
    text: String,
    note: bool,
) -> Flow {
    let state = link.state.clone();
    let Some(site_id) = endpoint.site_of(link, &conversation).await else {
        return AgentEndpoint::refuse(link, Some(client_id)).await;
    };
    let text = match conversation::check_client_id(&client_id)
        .and_then(|()| conversation::checked_text(&state, &text))
    {
        Ok(text) => text,
        Err((code, message)) => {
            link.error(code, &message, Some(client_id)).await;
            return Flow::Continue;
        }
    };
    if !note && !endpoint.with_people.contains(&conversation) {
        // Once a conversation has left the bot it never returns, so this read happens
        // once per conversation and connection.
        match state.store.conversation(&conversation).await {
            Ok(Some(found)) if found.state == ConversationState::Bot => {
                let agent_id = endpoint.agent().id.clone();
                if let Err(err) = state.routing.take(&agent_id, &site_id, &conversation).await {
                    link.error(
                        match routing_code(err) {
                            ErrorCode::NotFound => ErrorCode::Forbidden,
                            other => other,
                        },
                        &format!("the bot has this conversation and you cannot take it: {err}"),
                        Some(client_id),
                    )
                    .await;
                    return Flow::Continue;
                }
                endpoint.with_people.insert(conversation.clone());
            }
            Ok(Some(_)) => {
                endpoint.with_people.insert(conversation.clone());
            }
            Ok(None) => return AgentEndpoint::refuse(link, Some(client_id)).await,
            Err(err) => {
                link.error(
                    conversation::store_code(&err),
                    conversation::store_message(&err),
                    Some(client_id),
                )
                .await;
                return Flow::Continue;
            }
        }
    }
    let new_message = NewMessage {
        event: None,
        conversation: conversation.clone(),
        kind: if note {
            MessageKind::Note
        } else {
            MessageKind::Text
        },
        author: endpoint.agent().author(),
        text,
        client_id: Some(client_id.clone()),
        quick_replies: Vec::new(),
        rule: None,
        at: now_ms(),
        only_in: None,
    };
    let replier = link.replier();
    let Some(pending) = conversation::enqueue_from_client(&replier, new_message).await else {
        return Flow::Continue;
    };
    Flow::Defer(Box::pin(async move {
        let appended =
            conversation::finish_from_client(&replier, &site_id, client_id, pending).await;
        if !note && appended.is_some_and(|appended| !appended.duplicate) {
            replier
                .state
                .routing
                .send(crate::routing::Command::Responded { conversation })
                .await;
        }
    }))
}
