//! `close`: the agent ends a conversation.

use super::AgentEndpoint;
use crate::conversation;
use crate::ws::{Flow, Link};
use salam_protocol::{EventCode, SystemEvent};

pub(super) async fn handle(endpoint: &mut AgentEndpoint, link: &mut Link, id: String) -> Flow {
    if endpoint.site_of(link, &id).await.is_none() {
        return AgentEndpoint::refuse(link, None).await;
    }
    let reason = SystemEvent::new(
        EventCode::ClosedByAgent,
        &[("agent", &endpoint.agent().name)],
    );
    if let Err(err) = conversation::close(&link.state, &id, reason).await {
        link.error(
            conversation::store_code(&err),
            conversation::store_message(&err),
            None,
        )
        .await;
    }
    Flow::Continue
}
