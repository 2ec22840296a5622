//! `close`: the visitor ends a conversation.

use super::{Session, owns, refuse};
use crate::conversation;
use crate::ws::{Flow, Link};
use salam_protocol::{EventCode, SystemEvent};

pub(super) async fn handle(session: &mut Session, link: &mut Link, id: String) -> Flow {
    if !owns(session, link, &id).await {
        return refuse(link, None).await;
    }
    if let Err(err) = conversation::close(
        &link.state,
        &id,
        SystemEvent::new(EventCode::ClosedByVisitor, &[]),
    )
    .await
    {
        link.error(
            conversation::store_code(&err),
            conversation::store_message(&err),
            None,
        )
        .await;
        return Flow::Continue;
    }
    if session.current.as_deref() == Some(id.as_str()) {
        session.current = None;
    }
    Flow::Continue
}
