//! `seen`: the agent has read the conversation up to a sequence number: the visitor
//! sees it, and the conversation's unread count drops to 0 for every agent.

use super::AgentEndpoint;
use crate::fanout::Followers;
use crate::publish;
use crate::ws::{Flow, Link};
use salam_protocol::ServerFrame;

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
    seq: u64,
) -> Flow {
    if endpoint.site_of(link, &conversation).await.is_none() {
        return AgentEndpoint::refuse(link, None).await;
    }
    let state = &link.state;
    publish::to_conversation(
        &*state.bus,
        &conversation,
        Followers::All,
        Some(link.connection),
        &ServerFrame::Seen {
            conversation: conversation.clone(),
            seq,
            by: endpoint.agent().author(),
        },
    );
    match state.store.mark_read(&conversation).await {
        Ok(true) => {
            if let Ok(Some(found)) = state.store.conversation(&conversation).await {
                publish::summary(&*state.bus, &found);
            }
        }
        Ok(false) => {}
        Err(err) => tracing::warn!(%conversation, error = %err, "read mark not stored"),
    }
    Flow::Continue
}
