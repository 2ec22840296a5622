//! `resume`: replays one of the visitor's conversations after a sequence number.

use super::{Session, owns, refuse};
use crate::fanout::Outbound;
use crate::ws::{Flow, Link};

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    conversation: String,
    after: u64,
) -> Flow {
    if !owns(session, link, &conversation).await {
        return refuse(link, None).await;
    }
    link.push(Outbound::Resume(Box::new((conversation, after))))
        .await;
    Flow::Continue
}
