//! `accept`: the agent accepts a conversation offered to them.

use super::{AgentEndpoint, routing_code};
use crate::ws::{Flow, Link};

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
) -> Flow {
    if endpoint.site_of(link, &conversation).await.is_none() {
        return AgentEndpoint::refuse(link, None).await;
    }
    let agent_id = endpoint.agent().id.clone();
    if let Err(err) = link.state.routing.accept(&agent_id, &conversation).await {
        link.error(routing_code(err), &err.to_string(), None).await;
    }
    Flow::Continue
}
