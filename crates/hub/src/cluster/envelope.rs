//! What travels on the bus between hubs, and on which subject (pure: no I/O).
//!
//! A bus message is one header line of JSON, a newline, then the body: for frames and
//! messages, the frame exactly as clients receive it (encoded once, by the publishing
//! hub). Subjects:
//!
//! | subject | what |
//! |---|---|
//! | `salam.c.<conversation>` | a conversation's stream (frames and messages) |
//! | `salam.s.<site>` | a site's summaries and alerts |
//! | `salam.a.<agent>` | one agent's events, and "follow / stop following this chat" |
//! | `salam.routing.cmd` | routing commands, to the routing owner |
//! | `salam.routing.view` | the owner's routing views |
//! | `salam.routing.owner` | a new owner asks every hub to announce its agents |
//! | `salam.hub.alive` | each hub's heartbeat |
//! | `salam.notice` | "reload this": an agent, the sites, the webhooks |
//!
//! Ids become subject tokens as they are when made of `A-Z a-z 0-9 - _`, and as `x`
//! plus their hex otherwise, so no id can reach another subject.

use crate::fanout::{Event, Followers, Outbound, Topic, TopicKind};
use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const ROUTING_COMMANDS: &str = "salam.routing.cmd";
pub const ROUTING_VIEW: &str = "salam.routing.view";
pub const ROUTING_OWNER: &str = "salam.routing.owner";
pub const HUB_ALIVE: &str = "salam.hub.alive";
pub use crate::peers::NOTICE;

/// An id as one subject token (see the module docs).
pub fn token(id: &str) -> String {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        id.to_owned()
    } else {
        let mut out = String::with_capacity(1 + id.len() * 2);
        out.push('x');
        for b in id.bytes() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// The subject of a topic.
pub fn subject(kind: TopicKind, id: &str) -> String {
    let prefix = match kind {
        TopicKind::Conversation => "salam.c.",
        TopicKind::Site => "salam.s.",
        TopicKind::Agent => "salam.a.",
    };
    let mut subject = String::with_capacity(prefix.len() + id.len());
    subject.push_str(prefix);
    subject.push_str(&token(id));
    subject
}

/// The subject an event is published on.
pub fn subject_of(topic: &Topic) -> String {
    match topic {
        Topic::Conversation { conversation, .. } => subject(TopicKind::Conversation, conversation),
        Topic::Site { site, .. } => subject(TopicKind::Site, site),
        Topic::Agent(agent) => subject(TopicKind::Agent, agent),
    }
}

/// Where an event goes, as the header says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
enum WireTopic {
    Conversation {
        id: String,
        followers: WireFollowers,
    },
    Site {
        id: String,
        admins: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip_followers_of: Option<String>,
    },
    Agent {
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireFollowers {
    All,
    Visitors,
    Agents,
}

/// The header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Head {
    /// A frame for the topic's connections.
    Frame {
        #[serde(flatten)]
        topic: WireTopic,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip: Option<u64>,
    },
    /// A committed message (the body is its `message` frame).
    Message {
        #[serde(flatten)]
        topic: WireTopic,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip: Option<u64>,
    },
    /// The agent's connections follow the conversation (assigned).
    Attach { conversation: String, agent: String },
    /// The agent's connections stop following it (unless they watch it).
    Detach { conversation: String, agent: String },
}

/// How every `message` frame the hub encodes begins.
const MESSAGE_FRAME: &str = "{\"type\":\"message\",";

/// What a received bus message asks of this hub.
#[derive(Debug)]
pub enum Inbound {
    Deliver(Event),
    Attach { conversation: String, agent: String },
    Detach { conversation: String, agent: String },
}

/// Why a bus message was not understood.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("no header line")]
    NoHeader,
    #[error("invalid header: {0}")]
    Header(#[from] serde_json::Error),
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("a message's body is not a message frame")]
    NotAMessage,
}

fn wire_topic(topic: &Topic) -> WireTopic {
    match topic {
        Topic::Conversation {
            conversation,
            followers,
        } => WireTopic::Conversation {
            id: conversation.to_string(),
            followers: match followers {
                Followers::All => WireFollowers::All,
                Followers::Visitors => WireFollowers::Visitors,
                Followers::Agents => WireFollowers::Agents,
            },
        },
        Topic::Site {
            site,
            admins,
            skip_followers_of,
        } => WireTopic::Site {
            id: site.to_string(),
            admins: *admins,
            skip_followers_of: skip_followers_of.as_ref().map(|c| c.to_string()),
        },
        Topic::Agent(agent) => WireTopic::Agent {
            id: agent.to_string(),
        },
    }
}

fn topic_of(wire: WireTopic) -> Topic {
    match wire {
        WireTopic::Conversation { id, followers } => Topic::Conversation {
            conversation: id.into(),
            followers: match followers {
                WireFollowers::All => Followers::All,
                WireFollowers::Visitors => Followers::Visitors,
                WireFollowers::Agents => Followers::Agents,
            },
        },
        WireTopic::Site {
            id,
            admins,
            skip_followers_of,
        } => Topic::Site {
            site: id.into(),
            admins,
            skip_followers_of: skip_followers_of.map(Into::into),
        },
        WireTopic::Agent { id } => Topic::Agent(id.into()),
    }
}

fn join(head: &Head, body: &[u8]) -> Bytes {
    let head = serde_json::to_vec(head).unwrap_or_default();
    let mut out = BytesMut::with_capacity(head.len() + 1 + body.len());
    out.put_slice(&head);
    out.put_u8(b'\n');
    out.put_slice(body);
    out.freeze()
}

/// The bus message of an event, or `None` for what never leaves its hub (acks,
/// resumes, holds and catch-ups concern one local connection).
pub fn encode(event: &Event) -> Option<Bytes> {
    let topic = wire_topic(&event.topic);
    let skip = event.skip_connection;
    match &event.payload {
        Outbound::Frame(json) => Some(join(&Head::Frame { topic, skip }, json.as_bytes())),
        Outbound::Message(_, json) => Some(join(&Head::Message { topic, skip }, json.as_bytes())),
        Outbound::Resume(_) | Outbound::Ack(_) | Outbound::Hold(_) | Outbound::Catchup(_) => None,
    }
}

/// The bus message that makes `agent`'s connections follow (or stop following)
/// `conversation`.
pub fn encode_follow(conversation: &str, agent: &str, follow: bool) -> Bytes {
    let (conversation, agent) = (conversation.to_owned(), agent.to_owned());
    let head = if follow {
        Head::Attach {
            conversation,
            agent,
        }
    } else {
        Head::Detach {
            conversation,
            agent,
        }
    };
    join(&head, &[])
}

/// Reads a bus message.
pub fn decode(payload: &[u8]) -> Result<Inbound, EnvelopeError> {
    let split = payload
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(EnvelopeError::NoHeader)?;
    let head: Head = serde_json::from_slice(&payload[..split])?;
    let body = &payload[split + 1..];
    let text = || -> Result<Utf8Bytes, EnvelopeError> {
        let text = std::str::from_utf8(body).map_err(|_| EnvelopeError::NotUtf8)?;
        Ok(Utf8Bytes::from(text.to_owned()))
    };
    Ok(match head {
        Head::Frame { topic, skip } => Inbound::Deliver(Event {
            topic: topic_of(topic),
            skip_connection: skip,
            payload: Outbound::Frame(text()?),
        }),
        Head::Message { topic, skip } => {
            let json = text()?;
            // The body is a `message` frame: the message's fields under `"type":
            // "message"`, first (as the hub writes it). Read as the message itself, so
            // the hub carries no decoder of every server frame (binary size).
            if !json.as_str().starts_with(MESSAGE_FRAME) {
                return Err(EnvelopeError::NotAMessage);
            }
            let message = serde_json::from_str::<salam_protocol::Message>(json.as_str())
                .map_err(|_| EnvelopeError::NotAMessage)?;
            Inbound::Deliver(Event {
                topic: topic_of(topic),
                skip_connection: skip,
                payload: Outbound::Message(Arc::new(message), json),
            })
        }
        Head::Attach {
            conversation,
            agent,
        } => Inbound::Attach {
            conversation,
            agent,
        },
        Head::Detach {
            conversation,
            agent,
        } => Inbound::Detach {
            conversation,
            agent,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use salam_protocol::ServerFrame;

    #[test]
    fn tokens_keep_plain_ids_and_hex_the_rest() {
        assert_eq!(token("c_1-A"), "c_1-A");
        assert_eq!(token("a.b"), "x612e62");
        assert_eq!(token("*"), "x2a");
        assert_eq!(token(">"), "x3e");
        assert_eq!(token(""), "x");
        assert_eq!(subject(TopicKind::Site, "s 1"), "salam.s.x732031");
        assert_ne!(token("x61"), token("a"));
    }

    #[test]
    fn a_site_frame_round_trips() {
        let event = Event {
            topic: Topic::Site {
                site: "s1".into(),
                admins: true,
                skip_followers_of: Some("c9".into()),
            },
            skip_connection: Some(7 << 48 | 3),
            payload: Outbound::Frame("{\"type\":\"pong\"}".into()),
        };
        let bytes = encode(&event).expect("a frame travels");
        let Inbound::Deliver(back) = decode(&bytes).expect("decodes") else {
            panic!("not a delivery");
        };
        assert_eq!(back.skip_connection, event.skip_connection);
        assert!(matches!(
            back.topic,
            Topic::Site { ref site, admins: true, skip_followers_of: Some(ref c) }
                if &**site == "s1" && &**c == "c9"
        ));
        assert!(
            matches!(back.payload, Outbound::Frame(ref json) if json.as_str() == "{\"type\":\"pong\"}")
        );
    }

    #[test]
    fn a_message_round_trips_with_its_frame_untouched() {
        let message = salam_protocol::Message {
            conversation: "c1".into(),
            seq: 42,
            ..serde_json::from_value(serde_json::json!({
                "conversation": "c1", "seq": 42, "id": "m", "text": "سلام\n\"x\"",
                "author": {"kind": "visitor"}, "at": 1, "kind": "text"
            }))
            .expect("a message")
        };
        let json: Utf8Bytes = ServerFrame::Message(message.clone()).to_json().into();
        let event = Event {
            topic: Topic::Conversation {
                conversation: "c1".into(),
                followers: Followers::Agents,
            },
            skip_connection: None,
            payload: Outbound::Message(Arc::new(message.clone()), json.clone()),
        };
        let bytes = encode(&event).expect("a message travels");
        let Inbound::Deliver(back) = decode(&bytes).expect("decodes") else {
            panic!("not a delivery");
        };
        let Outbound::Message(got, got_json) = back.payload else {
            panic!("not a message");
        };
        assert_eq!(*got, message);
        assert_eq!(got_json, json);
    }

    #[test]
    fn local_only_payloads_do_not_travel_and_follows_do() {
        let event = Event {
            topic: Topic::Agent("a1".into()),
            skip_connection: None,
            payload: Outbound::Catchup("c1".into()),
        };
        assert!(encode(&event).is_none());
        let follow = encode_follow("c1", "a1", true);
        assert!(
            matches!(decode(&follow), Ok(Inbound::Attach { ref conversation, ref agent }) if conversation == "c1" && agent == "a1")
        );
        let unfollow = encode_follow("c1", "a1", false);
        assert!(matches!(decode(&unfollow), Ok(Inbound::Detach { .. })));
    }

    #[test]
    fn hostile_payloads_are_errors_not_panics() {
        for payload in [
            &b""[..],
            b"no newline",
            b"{}\n",
            b"{\"k\":\"frame\"}\n",
            b"{\"k\":\"message\",\"to\":\"agent\",\"id\":\"a\"}\n{\"type\":\"pong\"}",
            b"{\"k\":\"frame\",\"to\":\"agent\",\"id\":\"a\"}\n\xff\xfe",
            b"\xff\n",
        ] {
            assert!(decode(payload).is_err(), "{payload:?}");
        }
    }
}
