//! `transfer`: hands a conversation to another agent of its site or to a department
//! of its site (one the site has: `/api/departments`), with an optional note for the next agent (an internal note). The
//! visitor is told. Answered once the new assignment is committed.

use super::{AgentEndpoint, routing_code};
use crate::conversation;
use crate::routing::Target;
use crate::ws::{Flow, Link};
use salam_protocol::{ErrorCode, EventCode, MessageKind, SystemEvent};

/// Where the agent wants the conversation to go.
pub(super) struct Request {
    pub agent: Option<String>,
    pub department: Option<String>,
    pub note: Option<String>,
}

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
    request: Request,
) -> Flow {
    let Some(site_id) = endpoint.site_of(link, &conversation).await else {
        return AgentEndpoint::refuse(link, None).await;
    };
    let state = link.state.clone();
    let (target, told) = match (request.agent, request.department) {
        (Some(agent_id), None) => {
            let name = match state.store.agent_by_id(&agent_id).await {
                Ok(Some(agent)) if agent.can_access(&site_id) && !agent.disabled => agent.name,
                _ => {
                    link.error(ErrorCode::NotFound, "no such agent on this site", None)
                        .await;
                    return Flow::Continue;
                }
            };
            (
                Target::Agent(agent_id),
                Some(SystemEvent::new(
                    EventCode::TransferredToAgent,
                    &[("agent", &name)],
                )),
            )
        }
        // Only a department of the site: its name appears in the line the visitor
        // sees. The executor records "transferred to the … team" with the requeue.
        (None, Some(department)) => {
            let known = match crate::admin::clean_department(&department) {
                Some(name) => match state
                    .store
                    .departments(std::slice::from_ref(&site_id))
                    .await
                {
                    Ok(departments) => departments.into_iter().find(|d| d.name == name),
                    Err(err) => {
                        link.error(
                            conversation::store_code(&err),
                            conversation::store_message(&err),
                            None,
                        )
                        .await;
                        return Flow::Continue;
                    }
                },
                None => None,
            };
            let Some(known) = known else {
                link.error(ErrorCode::NotFound, "no such department on this site", None)
                    .await;
                return Flow::Continue;
            };
            (Target::Department(known.name), None)
        }
        _ => {
            link.error(
                ErrorCode::BadField,
                "name either an agent or a department",
                None,
            )
            .await;
            return Flow::Continue;
        }
    };
    if let Some(note) = request.note.filter(|note| !crate::text::is_blank(note)) {
        let note = match conversation::checked_text(&state, &note) {
            Ok(note) => note,
            Err((code, message)) => {
                link.error(code, &message, None).await;
                return Flow::Continue;
            }
        };
        if let Err(err) = conversation::post(
            &state,
            &site_id,
            &conversation,
            MessageKind::Note,
            endpoint.agent().author(),
            note,
        )
        .await
        {
            link.error(
                conversation::store_code(&err),
                conversation::store_message(&err),
                None,
            )
            .await;
            return Flow::Continue;
        }
    }
    match state
        .routing
        .transfer(&site_id, &conversation, target)
        .await
    {
        Ok(()) => {
            if let Some(told) = told
                && let Err(err) =
                    conversation::post_event(&state, &site_id, &conversation, told).await
            {
                tracing::warn!(error = %err, "transfer event not stored");
            }
        }
        Err(err) => link.error(routing_code(err), &err.to_string(), None).await,
    }
    Flow::Continue
}
