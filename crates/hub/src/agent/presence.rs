//! `presence`: the agent chooses online or away (or offline). The choice is kept for
//! the agent (every console of theirs shows it, and they come back as it), and routing
//! applies it.

use super::AgentEndpoint;
use crate::ws::{Flow, Link};
use salam_protocol::Presence;

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    presence: Presence,
) -> Flow {
    let state = &link.state;
    let agent_id = endpoint.agent().id.clone();
    if presence != Presence::Offline
        && let Err(err) = state.store.set_agent_presence(&agent_id, presence).await
    {
        tracing::warn!(error = %err, "presence choice not stored");
    }
    state
        .routing
        .send(crate::routing::Command::Presence { agent_id, presence })
        .await;
    Flow::Continue
}
