//! `resume`: replays a conversation after a sequence number and *watches* it: its full
//! stream comes to this connection until `unwatch`.

use super::AgentEndpoint;
use crate::fanout::{Outbound, reason};
use crate::ws::{Flow, Link};

pub(super) async fn handle(
    endpoint: &mut AgentEndpoint,
    link: &mut Link,
    conversation: String,
    after: u64,
) -> Flow {
    if endpoint.site_of(link, &conversation).await.is_none() {
        return AgentEndpoint::refuse(link, None).await;
    }
    link.state
        .registry
        .follow(&conversation, &link.mailbox, reason::WATCHING);
    link.push(Outbound::Resume(Box::new((conversation, after))))
        .await;
    Flow::Continue
}
