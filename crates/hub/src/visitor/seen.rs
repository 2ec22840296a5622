//! `seen`: the visitor has seen everything up to a sequence number.

use super::{Session, owns, refuse};
use crate::fanout::Followers;
use crate::publish;
use crate::ws::{Flow, Link};
use salam_protocol::ServerFrame;

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    conversation: String,
    seq: u64,
) -> Flow {
    if !owns(session, link, &conversation).await {
        return refuse(link, None).await;
    }
    link.state.email.visitor_seen(&conversation, seq);
    publish::to_conversation(
        &*link.state.bus,
        &conversation,
        Followers::All,
        Some(link.connection),
        &ServerFrame::Seen {
            conversation: conversation.clone(),
            seq,
            by: session.author(),
        },
    );
    Flow::Continue
}
