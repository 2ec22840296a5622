//! `typing`: the visitor started or stopped typing; the agents following the
//! conversation (and the visitor's other tabs) see it.

use super::{Session, owns, refuse};
use crate::fanout::Followers;
use crate::publish;
use crate::ws::{Flow, Link};
use salam_protocol::ServerFrame;

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    conversation: String,
    typing: bool,
) -> Flow {
    if !owns(session, link, &conversation).await {
        return refuse(link, None).await;
    }
    publish::to_conversation(
        &*link.state.bus,
        &conversation,
        Followers::All,
        Some(link.connection),
        &ServerFrame::Typing {
            conversation: conversation.clone(),
            author: session.author(),
            typing,
        },
    );
    Flow::Continue
}
