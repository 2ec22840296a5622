//! The frames of protocol v1. Every enum is internally tagged by `type` with snake_case
//! names; optional fields may be omitted; unknown fields are ignored (so a newer client
//! can add a field without breaking an older hub).

use crate::ErrorCode;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// A conversation id, `c_` followed by random characters.
pub type ConversationId = String;
/// A client-generated message id, unique per sender and conversation (a UUID or any
/// string up to 64 characters). Resending a frame with the same id is safe.
pub type ClientId = String;

/// Where the visitor is (shown to agents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

/// Frames a visitor's widget sends on `/ws/visitor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorFrame {
    /// First frame on every connection. `site` is the site's public key (`data-site` of
    /// the script tag). `token` is the signed visitor token from an earlier `welcome`;
    /// without it (or with one the hub did not sign) the hub refuses or issues a new one.
    Hello {
        v: u32,
        site: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<PageInfo>,
    },
    /// Replays every message of `conversation` with a sequence above `after`, in order,
    /// then a `resumed` frame; live delivery continues after it without gap or duplicate.
    Resume {
        conversation: ConversationId,
        after: u64,
    },
    /// A message. Without `conversation` it goes to the visitor's open conversation, or
    /// starts one. The hub answers `ack` once the message is committed.
    Send {
        client_id: ClientId,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
    },
    /// The visitor started (`true`) or stopped (`false`) typing.
    Typing {
        conversation: ConversationId,
        typing: bool,
    },
    /// The visitor has seen everything up to `seq`.
    Seen {
        conversation: ConversationId,
        seq: u64,
    },
    /// The visitor ends the conversation.
    Close { conversation: ConversationId },
    /// The visitor rates a closed conversation (1 to 5, with an optional comment).
    Rate {
        conversation: ConversationId,
        score: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// The visitor asks for the conversation's transcript by e-mail (issue 17): it is
    /// sent when the conversation closes, at once if it is closed already. A later
    /// request replaces an earlier one.
    Transcript {
        conversation: ConversationId,
        email: String,
    },
    /// The visitor leaves contact details: the offline / callback form, or the pre-chat
    /// form. At least an e-mail or a phone number for a callback.
    Contact {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A logged-in customer, identified by the site's backend with a signed token
    /// (identity v2): a JWT signed with HS256 and the site's identity secret, whose
    /// claims are `sub` (the site's user id), `exp` (required) and optionally
    /// `name`, `email` and `attributes`. The claims are verified; `name` and `email`
    /// sent beside the token are kept but shown as unverified. A frame without a
    /// valid token is refused (`unauthorized`).
    Identify {
        #[serde(default)]
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    },
    /// Keep-alive; the hub answers `pong` with the same nonce.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
}

/// A form the hub asks the widget to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormKind {
    /// No agent can answer now: ask for an e-mail or phone number for a callback.
    Contact,
    /// The conversation ended: ask for a 1-to-5 rating and an optional comment.
    Rating,
}

/// Frames the console (or an API client) sends on `/ws/agent`. The socket is opened
/// with a session cookie or `Authorization: Bearer` token from `POST /api/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentFrame {
    /// First frame on every connection.
    Hello { v: u32 },
    /// Same as the visitor's `resume`, for any conversation of the agent's sites; it
    /// also *watches* the conversation: its live messages, typing and seen frames come
    /// to this connection until `unwatch` (an agent receives the full stream only of the
    /// conversations assigned to them and of those they watch; of the rest of their
    /// sites they get summaries: `conversation` and `activity` frames).
    Resume {
        conversation: ConversationId,
        after: u64,
    },
    /// Stops watching a conversation (the console closed it). Conversations assigned to
    /// the agent keep coming.
    Unwatch { conversation: ConversationId },
    /// A reply into `conversation` (`note: true` for an internal note that visitors
    /// never receive).
    Send {
        conversation: ConversationId,
        client_id: ClientId,
        text: String,
        #[serde(default, skip_serializing_if = "is_false")]
        note: bool,
    },
    /// The agent started or stopped typing.
    Typing {
        conversation: ConversationId,
        typing: bool,
    },
    /// The agent has seen everything up to `seq`.
    Seen {
        conversation: ConversationId,
        seq: u64,
    },
    /// The agent closes the conversation.
    Close { conversation: ConversationId },
    /// The agent switches between `online` (gets new chats) and `away` (keeps their
    /// chats, gets no new ones).
    Presence { presence: Presence },
    /// The agent takes an open conversation by hand: one with the bot (the bot goes
    /// silent), one in the queue, or another agent's (taking it over).
    Take { conversation: ConversationId },
    /// The agent accepts a conversation offered to them (when the hub asks agents to
    /// accept within a time limit).
    Accept { conversation: ConversationId },
    /// Hands a conversation to another agent or to a department, with a note for the
    /// next agent (stored as an internal note). The visitor is told.
    Transfer {
        conversation: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        department: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Keep-alive (also the agent's heartbeat).
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn yes() -> bool {
    true
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

/// An agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Away,
    Offline,
}

/// An agent as the console's live view shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub id: String,
    pub name: String,
    pub presence: Presence,
    /// Chats held now.
    pub load: u32,
    pub capacity: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<String>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Visitor,
    Agent,
    Bot,
    System,
}

/// The author of a message or the actor of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub kind: AuthorKind,
    /// Visitor or agent id; absent for the bot and the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name (an agent's name, a visitor's name once known, "Salam bot").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What kind of line in the history a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A chat message, seen by everyone in the conversation.
    #[default]
    Text,
    /// An internal note: only agents receive it.
    Note,
    /// A system event in the history ("conversation closed", "transferred to ...").
    Event,
}

/// A button under a bot answer; pressing it sends `payload` as the visitor's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickReply {
    pub label: String,
    pub payload: String,
}

/// One committed line of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub conversation: ConversationId,
    /// Gap-free per conversation: 1, 2, 3, ... (a visitor does not receive notes, so
    /// the sequences a visitor sees may skip those numbers).
    pub seq: u64,
    #[serde(default)]
    pub kind: MessageKind,
    pub author: Author,
    pub text: String,
    /// Commit time, milliseconds since the Unix epoch.
    pub at: i64,
    /// The sender's client id, so a client recognises its own message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    /// Buttons offered under a bot answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<QuickReply>,
    /// For a bot line: the id of the rule that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a `kind: "event"` line written by a hub that knows codes: what happened, as a
    /// code with parameters, so that a client renders it in its reader's language
    /// (`text` stays the English rendering for clients that do not). Absent on older
    /// lines and on other kinds. A malformed `event` decodes as absent, so a client
    /// never fails on it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_event"
    )]
    pub event: Option<SystemEvent>,
}

/// The code of a system event line. The hub only ever writes the named codes; a code this
/// crate does not know (written by a newer hub) decodes as [`EventCode::Unknown`], and a
/// client shows the line's `text` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventCode {
    /// Handed to the queue: "waiting for a person". No params.
    Queued,
    /// An agent took the conversation. Params: `agent` (the agent's name).
    Joined,
    /// Transferred to another agent. Params: `agent`.
    TransferredToAgent,
    /// Transferred to a department's queue. Params: `department`.
    TransferredToDepartment,
    /// Back in the queue for the next available agent. No params.
    Requeued,
    /// Closed by an agent. Params: `agent`.
    ClosedByAgent,
    /// Closed by the visitor. No params.
    ClosedByVisitor,
    /// Closed after a time without activity. Params: `minutes`.
    ClosedIdle,
    /// Closed because the visitor's data was erased. No params.
    ClosedErased,
    /// A code this version does not know; render the line's `text`. Never written by the
    /// hub.
    #[serde(other)]
    Unknown,
}

impl EventCode {
    /// The stable snake_case name, as on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EventCode::Queued => "queued",
            EventCode::Joined => "joined",
            EventCode::TransferredToAgent => "transferred_to_agent",
            EventCode::TransferredToDepartment => "transferred_to_department",
            EventCode::Requeued => "requeued",
            EventCode::ClosedByAgent => "closed_by_agent",
            EventCode::ClosedByVisitor => "closed_by_visitor",
            EventCode::ClosedIdle => "closed_idle",
            EventCode::ClosedErased => "closed_erased",
            EventCode::Unknown => "unknown",
        }
    }

    /// Parses the name written by [`EventCode::as_str`]; any other name is
    /// [`EventCode::Unknown`].
    pub fn parse(name: &str) -> EventCode {
        match name {
            "queued" => EventCode::Queued,
            "joined" => EventCode::Joined,
            "transferred_to_agent" => EventCode::TransferredToAgent,
            "transferred_to_department" => EventCode::TransferredToDepartment,
            "requeued" => EventCode::Requeued,
            "closed_by_agent" => EventCode::ClosedByAgent,
            "closed_by_visitor" => EventCode::ClosedByVisitor,
            "closed_idle" => EventCode::ClosedIdle,
            "closed_erased" => EventCode::ClosedErased,
            _ => EventCode::Unknown,
        }
    }
}

/// A system event: its code and its parameters (names and values are strings; numbers
/// such as `minutes` are written in ASCII digits, for the client to localise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemEvent {
    pub code: EventCode,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl SystemEvent {
    /// An event with its params.
    pub fn new(code: EventCode, params: &[(&str, &str)]) -> SystemEvent {
        SystemEvent {
            code,
            params: params
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }
}

impl SystemEvent {
    /// The English line for this event: what the hub writes as the message's `text`,
    /// and what a client shows for a code it does not know.
    pub fn english(&self) -> String {
        let param = |name: &str| self.params.get(name).map(String::as_str).unwrap_or("");
        match self.code {
            EventCode::Queued => "waiting for a person".into(),
            EventCode::Joined => format!("{} joined the conversation", param("agent")),
            EventCode::TransferredToAgent => format!("transferred to {}", param("agent")),
            EventCode::TransferredToDepartment => {
                format!("transferred to the {} team", param("department"))
            }
            EventCode::Requeued => "back in the queue for the next available agent".into(),
            EventCode::ClosedByAgent => format!("closed by {}", param("agent")),
            EventCode::ClosedByVisitor => "closed by the visitor".into(),
            EventCode::ClosedIdle => {
                format!("closed after {} minutes without activity", param("minutes"))
            }
            EventCode::ClosedErased => "closed: the visitor's data was erased".into(),
            EventCode::Unknown => String::new(),
        }
    }
}

/// Decodes `event` so that nothing in it can fail the whole message: a value that is not
/// a well-formed event is treated as absent (the client shows `text`).
fn lenient_event<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SystemEvent>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// The one state every conversation is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// The bot is answering.
    Bot,
    /// Waiting for an agent.
    Queued,
    /// An agent has it.
    Assigned,
    /// Ended.
    Closed,
}

impl ConversationState {
    /// The stable snake_case name, as on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Bot => "bot",
            ConversationState::Queued => "queued",
            ConversationState::Assigned => "assigned",
            ConversationState::Closed => "closed",
        }
    }

    /// Parses the name written by [`ConversationState::as_str`].
    pub fn parse(name: &str) -> Option<ConversationState> {
        Some(match name {
            "bot" => ConversationState::Bot,
            "queued" => ConversationState::Queued,
            "assigned" => ConversationState::Assigned,
            "closed" => ConversationState::Closed,
            _ => return None,
        })
    }
}

/// The last text or note of a conversation, as its summary shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// Who wrote it.
    pub author: AuthorKind,
    /// The first characters of the text (at most 140).
    pub text: String,
    /// Commit time, milliseconds since the Unix epoch.
    pub at: i64,
}

impl Preview {
    /// The longest preview, in characters.
    pub const MAX_CHARS: usize = 140;

    /// The preview of a message text: its first [`Preview::MAX_CHARS`] characters.
    pub fn of(author: AuthorKind, text: &str, at: i64) -> Preview {
        Preview {
            author,
            text: text.chars().take(Preview::MAX_CHARS).collect(),
            at,
        }
    }
}

/// A conversation as listed to its visitor or to agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: ConversationId,
    /// The site's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub site: String,
    pub state: ConversationState,
    /// Agents: visitor messages since an agent last read the conversation or replied.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub unread: u32,
    /// Agents: the last text or note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
    /// The highest sequence committed so far (0 when empty).
    pub last_seq: u64,
    /// The visitor (for agents; the visitor's own entry for a visitor).
    pub visitor: Author,
    /// Agents: the e-mail the visitor gave (identity or contact form), so an inbox can
    /// name a visitor who gave no name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_email: Option<String>,
    /// Agents: the visitor's locale (`ar`, `fa-IR`, ...), the last resort for naming them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_locale: Option<String>,
    /// The assigned agent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Author>,
    /// The department it was handed to ("" for the general queue).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub department: String,
    /// Higher is served first (complaints, VIPs and missed response targets raise it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    /// How the conversation reaches its visitor (absent from older hubs: `chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
}

/// How a conversation reaches its visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The widget.
    Chat,
    /// E-mail: agent messages go out by e-mail, replies come back in.
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Chat => "chat",
            Channel::Email => "email",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        match name {
            "chat" => Some(Channel::Chat),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// The team behind a site, as a visitor's `welcome` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Whether any agent who could take this site's chats is online now (presence
    /// `online`, connected).
    pub online: bool,
}

/// Who the connection belongs to, told in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Visitor,
    Agent,
    Admin,
}

/// The hub's limits, told in `welcome` so that clients can check before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_text_chars: u32,
    pub max_frame_bytes: u32,
    /// Frames per second allowed in steady state (token bucket refill rate).
    pub rate_per_sec: u32,
    /// Frames allowed in a burst (token bucket size).
    pub burst: u32,
}

/// Frames the hub sends, on both endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to `hello`. For a visitor, `token` is the signed visitor token to keep
    /// (localStorage) and present next time; `conversations` lists the caller's open
    /// conversations (a visitor's own, plus their most recent closed one when it closed
    /// within the last 30 days and no open one is newer; for agents, their site's open
    /// ones).
    Welcome {
        v: u32,
        role: Role,
        you: Author,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        conversations: Vec<ConversationSummary>,
        /// The hub pings idle connections; a client should ping at least this often.
        heartbeat_secs: u32,
        limits: Limits,
        /// Agents: the ids of the sites they work on now.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sites: Vec<String>,
        /// Agents: their presence now (the same in every open console of theirs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        presence: Option<Presence>,
        /// Visitors: whether anyone can answer now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<Team>,
    },
    /// The message with `client_id` is committed as `seq` of `conversation`.
    /// `duplicate` is true when this `client_id` had already been committed: nothing
    /// new was stored or delivered.
    Ack {
        client_id: ClientId,
        conversation: ConversationId,
        seq: u64,
        #[serde(default)]
        duplicate: bool,
    },
    /// A committed message (live, or replayed after `resume`).
    Message(Message),
    /// Someone started or stopped typing.
    Typing {
        conversation: ConversationId,
        author: Author,
        typing: bool,
    },
    /// Someone has seen everything up to `seq`.
    Seen {
        conversation: ConversationId,
        seq: u64,
        by: Author,
    },
    /// The conversation moved to another state.
    State {
        conversation: ConversationId,
        state: ConversationState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Agents: a conversation of their sites was created or changed state.
    Conversation { conversation: ConversationSummary },
    /// Agents: a message was committed in a conversation of their sites (the summary's
    /// preview and unread count moved). Sent for every message, also of conversations
    /// whose full stream the connection does not receive.
    Activity {
        conversation: ConversationId,
        site: String,
        last_seq: u64,
        preview: Preview,
        unread: u32,
    },
    /// Agents: their own presence changed (in this console or another of theirs).
    Presence { presence: Presence },
    /// The replay asked for by `resume` is complete; `last_seq` is the last sequence
    /// replayed (or the caller's `after` when there was nothing newer).
    Resumed {
        conversation: ConversationId,
        last_seq: u64,
    },
    /// Visitors: their place in the queue for a person and the expected wait, sent on
    /// every change.
    Queue {
        conversation: ConversationId,
        /// 1 is next.
        position: u32,
        /// Expected wait in seconds (estimated from recent handling times).
        wait_secs: u64,
        /// Whether any agent who could take the conversation is online (true when
        /// absent, from an older hub). When false, `position` and `wait_secs` mean
        /// little: show the offline state instead.
        #[serde(default = "yes")]
        agents_online: bool,
        /// Offer to leave contact details for a call or e-mail back: nobody is online, or
        /// the expected wait is at least the site's `callback_after_secs`.
        #[serde(default, skip_serializing_if = "is_false")]
        offer_callback: bool,
    },
    /// Visitors: show a form (contact details for a callback, or a rating).
    Form {
        conversation: ConversationId,
        form: FormKind,
    },
    /// Agents: `conversation` is offered to `agent` (sent to that agent's consoles),
    /// who must `accept` it before `deadline` (milliseconds since the epoch) or it
    /// passes to the next agent.
    Offer {
        conversation: ConversationId,
        agent: String,
        deadline: i64,
    },
    /// Agents: the agents of one of their sites with presence and load (load and
    /// capacity count every site of the agent), on every change.
    Agents {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        site: String,
        agents: Vec<AgentStatus>,
    },
    /// Admins: an alert (a satisfaction score of 1 or 2, ...).
    Alert {
        id: i64,
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        detail: String,
        at: i64,
    },
    /// Something went wrong. `client_id` names the `send` that failed, if any: that
    /// message was not stored and may be resent.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
}
