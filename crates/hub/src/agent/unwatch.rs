//! `unwatch`: the console closed a conversation; its stream stops unless it is
//! assigned to the agent.

use super::AgentEndpoint;
use crate::fanout::reason;
use crate::ws::{Flow, Link};

pub(super) async fn handle(
    _endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
) -> Flow {
    link.state
        .registry
        .unfollow(&conversation, link.connection, reason::WATCHING);
    Flow::Continue
}
