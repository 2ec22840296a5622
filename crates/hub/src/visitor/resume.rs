//! `resume`: replays one of the visitor's conversations after a sequence number (a
//! closed one of theirs too, read-only). Right after its `resumed` come the states a
//! reloaded widget must show at once: the queue place of a queued conversation, and the
//! contact form when it was asked for and not answered yet (while it waits).

use super::{Session, owns, refuse};
use crate::fanout::Outbound;
use crate::ws::{Flow, Link};
use salam_protocol::{ConversationState, FormKind, ServerFrame};

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    conversation: String,
    after: u64,
) -> Flow {
    if !owns(session, link, &conversation).await {
        return refuse(link, None).await;
    }
    link.push(Outbound::Resume(Box::new((conversation.clone(), after))))
        .await;
    // Queued after the replay on the same connection, so they follow its `resumed`.
    let state = link.state.clone();
    let Ok(Some(found)) = state.store.conversation(&conversation).await else {
        return Flow::Continue;
    };
    if found.state == ConversationState::Queued
        && let Some(place) = state
            .routing
            .view()
            .site(&found.site_id)
            .queue
            .iter()
            .find(|entry| entry.conversation == conversation)
    {
        link.send(&ServerFrame::Queue {
            conversation: conversation.clone(),
            position: place.position,
            wait_secs: place.expected_wait_secs,
            agents_online: place.agents_online,
            offer_callback: place.offer_callback,
        })
        .await;
    }
    // Only while it waits: once an agent has it, the form is moot.
    if found.state == ConversationState::Queued
        && state
            .store
            .contact_pending(&conversation)
            .await
            .unwrap_or(false)
    {
        link.send(&ServerFrame::Form {
            conversation,
            form: FormKind::Contact,
        })
        .await;
    }
    Flow::Continue
}
