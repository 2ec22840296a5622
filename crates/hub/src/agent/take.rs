//! `take`: the agent takes an open conversation by hand (from the bot, the queue, or
//! another agent). Answered once the assignment is committed; the bot is silent from
//! then on.

use super::{AgentEndpoint, routing_code};
use crate::ws::{Flow, Link};

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
) -> Flow {
    let Some(site_id) = endpoint.site_of(link, &conversation).await else {
        return AgentEndpoint::refuse(link, None).await;
    };
    let agent_id = endpoint.agent().id.clone();
    match link
        .state
        .routing
        .take(&agent_id, &site_id, &conversation)
        .await
    {
        Ok(()) => {
            endpoint.with_people.insert(conversation);
        }
        Err(err) => link.error(routing_code(err), &err.to_string(), None).await,
    }
    Flow::Continue
}
