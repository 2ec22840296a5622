//! `typing`: the agent started or stopped typing.

use super::AgentEndpoint;
use crate::fanout::Followers;
use crate::publish;
use crate::ws::{Flow, Link};
use salam_protocol::ServerFrame;

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
    typing: bool,
) -> Flow {
    if endpoint.site_of(link, &conversation).await.is_none() {
        return AgentEndpoint::refuse(link, None).await;
    }
    publish::to_conversation(
        &*link.state.bus,
        &conversation,
        Followers::All,
        Some(link.connection),
        &ServerFrame::Typing {
            conversation: conversation.clone(),
            author: endpoint.agent().author(),
            typing,
        },
    );
    Flow::Continue
}
