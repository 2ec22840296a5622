//! What the hub tells clients about committed changes, and on which topic: the one
//! place that turns store results into frames on the [`Bus`]. Everything here runs
//! after a commit and never waits.

use crate::fanout::{Bus, Event, Followers, Outbound, Topic};
use axum::extract::ws::Utf8Bytes;
use salam_protocol::{Message, MessageKind, Preview, ServerFrame};
use salam_store::Conversation;
use std::sync::Arc;

/// A frame to a conversation's followers (`skip`: the connection that caused it).
pub fn to_conversation(
    bus: &dyn Bus,
    conversation: &str,
    followers: Followers,
    skip: Option<u64>,
    frame: &ServerFrame,
) {
    bus.publish(Event {
        topic: Topic::Conversation {
            conversation: conversation.into(),
            followers,
        },
        skip_connection: skip,
        payload: Outbound::Frame(frame.to_json().into()),
    });
}

/// A summary frame to every agent of a site.
pub fn to_site(bus: &dyn Bus, site: &str, frame: &ServerFrame) {
    bus.publish(Event {
        topic: Topic::Site {
            site: site.into(),
            admins: false,
            skip_followers_of: None,
        },
        skip_connection: None,
        payload: Outbound::Frame(frame.to_json().into()),
    });
}

/// A frame to the admins of a site (alerts).
pub fn to_admins(bus: &dyn Bus, site: &str, frame: &ServerFrame) {
    bus.publish(Event {
        topic: Topic::Site {
            site: site.into(),
            admins: true,
            skip_followers_of: None,
        },
        skip_connection: None,
        payload: Outbound::Frame(frame.to_json().into()),
    });
}

/// A frame to one agent's connections.
pub fn to_agent(bus: &dyn Bus, agent: &str, frame: &ServerFrame) {
    bus.publish(Event {
        topic: Topic::Agent(agent.into()),
        skip_connection: None,
        payload: Outbound::Frame(frame.to_json().into()),
    });
}

/// A committed message: the full message to the conversation's followers (but
/// `skip`, the sender's connection, which has its `ack`), and to the rest of the
/// site's agents an `activity` frame with the new preview and unread count (not for
/// system lines, which come with a state change and its summary).
pub fn message(bus: &dyn Bus, site: &str, message: Message, unread: u32, skip: Option<u64>) {
    let conversation: Arc<str> = message.conversation.as_str().into();
    let summary_topic = Topic::Site {
        site: site.into(),
        admins: false,
        skip_followers_of: Some(conversation.clone()),
    };
    // Built only when some agent not following the conversation would get it.
    let activity = (message.kind != MessageKind::Event && bus.has_subscribers(&summary_topic))
        .then(|| ServerFrame::Activity {
            conversation: message.conversation.clone(),
            site: site.to_owned(),
            last_seq: message.seq,
            preview: Preview::of(message.author.kind, &message.text, message.at),
            unread,
        });
    let json: Utf8Bytes = ServerFrame::Message(message.clone()).to_json().into();
    bus.publish(Event {
        topic: Topic::Conversation {
            conversation: conversation.clone(),
            followers: Followers::All,
        },
        skip_connection: skip,
        payload: Outbound::Message(Arc::new(message), json),
    });
    if let Some(activity) = activity {
        bus.publish(Event {
            topic: summary_topic,
            skip_connection: skip,
            payload: Outbound::Frame(activity.to_json().into()),
        });
    }
}

/// A conversation created or changed: its summary to the site's agents.
pub fn summary(bus: &dyn Bus, conversation: &Conversation) {
    to_site(
        bus,
        &conversation.site_id,
        &ServerFrame::Conversation {
            conversation: conversation.summary(),
        },
    );
}

/// A committed state change: its system line and the `state` frame to the
/// conversation's followers, and the new summary to the site's agents.
pub fn state_changed(
    bus: &dyn Bus,
    conversation: &Conversation,
    event: Option<Message>,
    reason: Option<&str>,
) {
    if let Some(event) = event {
        message(bus, &conversation.site_id, event, conversation.unread, None);
    }
    to_conversation(
        bus,
        &conversation.id,
        Followers::All,
        None,
        &ServerFrame::State {
            conversation: conversation.id.clone(),
            state: conversation.state,
            reason: reason.map(str::to_owned),
        },
    );
    summary(bus, conversation);
}
