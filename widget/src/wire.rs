//! The frames the widget exchanges with the hub, encoded and decoded with [`crate::json`].
//!
//! These are the widget's view of protocol v1 (`salam-protocol`, `docs/protocol.md`):
//! only the frames and fields a visitor's widget uses, with the protocol's own enums
//! ([`ConversationState`], [`AuthorKind`], [`MessageKind`], [`FormKind`],
//! [`ErrorCode`]). The tests encode every [`Outgoing`] frame and check that
//! `salam_protocol::decode_visitor` reads exactly it back, and decode the protocol's
//! own serialisation of server frames, so this module cannot drift from the hub.

use crate::json::{Json, n, obj, os, s};
use salam_protocol::{AuthorKind, ConversationState, ErrorCode, FormKind, MessageKind};

/// A button under a bot answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickReply {
    pub label: String,
    pub payload: String,
}

/// One committed line of the conversation (a `message` frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub conversation: String,
    pub seq: u64,
    pub kind: MessageKind,
    pub author: AuthorKind,
    pub name: Option<String>,
    pub text: String,
    pub at: i64,
    pub client_id: Option<String>,
    pub quick_replies: Vec<QuickReply>,
    /// A system line's code and parameters (`kind: "event"`, from hubs since issue 15),
    /// rendered in the reader's language; `text` is the English fallback.
    pub event: Option<Event>,
}

/// The `event` of a system line: a code and its string parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub code: String,
    pub params: Vec<(String, String)>,
}

/// A conversation listed in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub state: ConversationState,
    pub updated_at: i64,
}

/// Where the visitor is (sent in `hello`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub url: Option<String>,
    pub title: Option<String>,
    pub referrer: Option<String>,
}

/// The server frames a widget acts on. Others (agent-only frames, `pong`, `seen`)
/// decode to `None` and are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Welcome {
        token: Option<String>,
        conversations: Vec<Summary>,
        max_text_chars: Option<u64>,
        /// `team.online`: whether an agent who could take this site's chats is online.
        team: Option<bool>,
    },
    Ack {
        client_id: String,
        conversation: String,
        seq: u64,
    },
    Message(Line),
    Typing {
        author: AuthorKind,
        name: Option<String>,
        typing: bool,
    },
    State {
        conversation: String,
        state: ConversationState,
    },
    Queue {
        conversation: String,
        position: u32,
        wait_secs: u64,
        /// `false` when nobody who could answer is online (absent: `true`).
        agents_online: bool,
        /// The hub suggests leaving contact details instead of waiting (absent: `false`).
        offer_callback: bool,
    },
    Form {
        conversation: String,
        form: FormKind,
    },
    Resumed {
        last_seq: u64,
    },
    Error {
        /// `None` for a code this widget does not know.
        code: Option<ErrorCode>,
        client_id: Option<String>,
    },
    /// `error` `origin_not_allowed`: the site does not allow this page's origin. Terminal.
    OriginNotAllowed,
}

/// The frames a widget sends on `/ws/visitor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Hello {
        site: String,
        token: Option<String>,
        locale: String,
        page: Page,
    },
    Resume {
        conversation: String,
        after: u64,
    },
    Send {
        client_id: String,
        text: String,
        conversation: Option<String>,
    },
    Typing {
        conversation: String,
        typing: bool,
    },
    Seen {
        conversation: String,
        seq: u64,
    },
    Rate {
        conversation: String,
        score: u8,
        comment: Option<String>,
    },
    Contact {
        conversation: Option<String>,
        name: Option<String>,
        email: Option<String>,
        phone: Option<String>,
        message: Option<String>,
    },
    Identify {
        token: String,
        name: Option<String>,
        email: Option<String>,
    },
}

impl Outgoing {
    /// The frame as JSON text.
    pub fn encode(&self) -> String {
        self.to_json().to_text()
    }

    fn to_json(&self) -> Json {
        match self {
            Outgoing::Hello {
                site,
                token,
                locale,
                page,
            } => obj([
                ("type", s("hello")),
                ("v", n(salam_protocol::PROTOCOL_VERSION.into())),
                ("site", s(site)),
                ("token", os(token)),
                ("locale", s(locale)),
                (
                    "page",
                    Some(obj([
                        ("url", os(&page.url)),
                        ("title", os(&page.title)),
                        ("referrer", os(&page.referrer)),
                    ])),
                ),
            ]),
            Outgoing::Resume {
                conversation,
                after,
            } => obj([
                ("type", s("resume")),
                ("conversation", s(conversation)),
                ("after", n(*after)),
            ]),
            Outgoing::Send {
                client_id,
                text,
                conversation,
            } => obj([
                ("type", s("send")),
                ("client_id", s(client_id)),
                ("text", s(text)),
                ("conversation", os(conversation)),
            ]),
            Outgoing::Typing {
                conversation,
                typing,
            } => obj([
                ("type", s("typing")),
                ("conversation", s(conversation)),
                ("typing", Some(Json::Bool(*typing))),
            ]),
            Outgoing::Seen { conversation, seq } => obj([
                ("type", s("seen")),
                ("conversation", s(conversation)),
                ("seq", n(*seq)),
            ]),
            Outgoing::Rate {
                conversation,
                score,
                comment,
            } => obj([
                ("type", s("rate")),
                ("conversation", s(conversation)),
                ("score", n((*score).into())),
                ("comment", os(comment)),
            ]),
            Outgoing::Contact {
                conversation,
                name,
                email,
                phone,
                message,
            } => obj([
                ("type", s("contact")),
                ("conversation", os(conversation)),
                ("name", os(name)),
                ("email", os(email)),
                ("phone", os(phone)),
                ("message", os(message)),
            ]),
            Outgoing::Identify { token, name, email } => obj([
                ("type", s("identify")),
                ("token", s(token)),
                ("name", os(name)),
                ("email", os(email)),
            ]),
        }
    }
}

fn author_kind(name: &str) -> Option<AuthorKind> {
    Some(match name {
        "visitor" => AuthorKind::Visitor,
        "agent" => AuthorKind::Agent,
        "bot" => AuthorKind::Bot,
        "system" => AuthorKind::System,
        _ => return None,
    })
}

/// The stable error codes a widget reacts to.
const CODES: [ErrorCode; 20] = [
    ErrorCode::BadJson,
    ErrorCode::UnknownType,
    ErrorCode::BadField,
    ErrorCode::BinaryUnsupported,
    ErrorCode::TextTooLong,
    ErrorCode::EmptyText,
    ErrorCode::FrameTooLarge,
    ErrorCode::RateLimited,
    ErrorCode::UnsupportedVersion,
    ErrorCode::HelloRequired,
    ErrorCode::AlreadyGreeted,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::UnknownSite,
    ErrorCode::NotFound,
    ErrorCode::ConversationClosed,
    ErrorCode::StoreUnavailable,
    ErrorCode::Resync,
    ErrorCode::Overloaded,
    ErrorCode::Internal,
];

impl Line {
    /// Reads a `message` frame (or a stored line).
    pub fn from_json(value: &Json) -> Option<Line> {
        let author = value.get("author")?;
        Some(Line {
            conversation: value.string("conversation")?,
            seq: value.uint("seq")?,
            kind: match value.str("kind").unwrap_or("text") {
                "text" => MessageKind::Text,
                "note" => MessageKind::Note,
                "event" => MessageKind::Event,
                _ => return None,
            },
            author: author_kind(author.str("kind")?)?,
            name: author.string("name"),
            text: value.string("text")?,
            at: value.int("at").unwrap_or(0),
            client_id: value.string("client_id"),
            quick_replies: value
                .arr("quick_replies")
                .iter()
                .filter_map(|reply| {
                    Some(QuickReply {
                        label: reply.string("label")?,
                        payload: reply.string("payload")?,
                    })
                })
                .collect(),
            event: value.get("event").and_then(|event| {
                Some(Event {
                    code: event.string("code")?,
                    params: match event.get("params") {
                        Some(Json::Obj(members)) => members
                            .iter()
                            .filter_map(|(key, value)| match value {
                                Json::Str(text) => Some((key.clone(), text.clone())),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    },
                })
            }),
        })
    }

    /// The line as a `message`-shaped JSON object (for localStorage).
    pub fn to_json(&self) -> Json {
        let author = match self.author {
            AuthorKind::Visitor => "visitor",
            AuthorKind::Agent => "agent",
            AuthorKind::Bot => "bot",
            AuthorKind::System => "system",
        };
        let kind = match self.kind {
            MessageKind::Text => "text",
            MessageKind::Note => "note",
            MessageKind::Event => "event",
        };
        let replies = self
            .quick_replies
            .iter()
            .map(|reply| obj([("label", s(&reply.label)), ("payload", s(&reply.payload))]))
            .collect();
        obj([
            ("conversation", s(&self.conversation)),
            ("seq", n(self.seq)),
            ("kind", s(kind)),
            (
                "author",
                Some(obj([("kind", s(author)), ("name", os(&self.name))])),
            ),
            ("text", s(&self.text)),
            ("at", Some(Json::Int(self.at))),
            ("client_id", os(&self.client_id)),
            ("quick_replies", Some(Json::Arr(replies))),
            (
                "event",
                self.event.as_ref().map(|event| {
                    Json::Obj(vec![
                        ("code".to_owned(), Json::Str(event.code.clone())),
                        (
                            "params".to_owned(),
                            Json::Obj(
                                event
                                    .params
                                    .iter()
                                    .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
                                    .collect(),
                            ),
                        ),
                    ])
                }),
            ),
        ])
    }
}

/// Decodes a server frame; `None` for frames a widget ignores or cannot read.
pub fn decode(text: &str) -> Option<Incoming> {
    let value = Json::parse(text)?;
    let conversation = || value.string("conversation");
    Some(match value.str("type")? {
        "welcome" => Incoming::Welcome {
            token: value.string("token"),
            conversations: value
                .arr("conversations")
                .iter()
                .filter_map(|summary| {
                    Some(Summary {
                        id: summary.string("id")?,
                        state: ConversationState::parse(summary.str("state")?)?,
                        updated_at: summary.int("updated_at").unwrap_or(0),
                    })
                })
                .collect(),
            max_text_chars: value.get("limits").and_then(|l| l.uint("max_text_chars")),
            team: value.get("team").and_then(|team| team.bool("online")),
        },
        "ack" => Incoming::Ack {
            client_id: value.string("client_id")?,
            conversation: conversation()?,
            seq: value.uint("seq")?,
        },
        "message" => Incoming::Message(Line::from_json(&value)?),
        "typing" => {
            let author = value.get("author")?;
            Incoming::Typing {
                author: author_kind(author.str("kind")?)?,
                name: author.string("name"),
                typing: value.bool("typing")?,
            }
        }
        "state" => Incoming::State {
            conversation: conversation()?,
            state: ConversationState::parse(value.str("state")?)?,
        },
        "queue" => Incoming::Queue {
            conversation: conversation()?,
            position: u32::try_from(value.uint("position")?).ok()?,
            wait_secs: value.uint("wait_secs")?,
            agents_online: value.bool("agents_online").unwrap_or(true),
            offer_callback: value.bool("offer_callback").unwrap_or(false),
        },
        "form" => Incoming::Form {
            conversation: conversation()?,
            form: match value.str("form")? {
                "contact" => FormKind::Contact,
                "rating" => FormKind::Rating,
                _ => return None,
            },
        },
        "resumed" => Incoming::Resumed {
            last_seq: value.uint("last_seq")?,
        },
        "error" if value.str("code") == Some("origin_not_allowed") => Incoming::OriginNotAllowed,
        "error" => {
            let code = value.str("code")?;
            Incoming::Error {
                code: CODES.into_iter().find(|known| known.as_str() == code),
                client_id: value.string("client_id"),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
