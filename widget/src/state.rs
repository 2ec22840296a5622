//! The widget's state machine: pure, no I/O, no clock.
//!
//! The view feeds it [`Msg`]s (socket events, decoded frames, clicks, a one-second tick
//! carrying the time) and performs the [`Effect`]s it returns (send a frame, schedule a
//! reconnect, notify). Everything that decides what the visitor sees lives here, so it
//! is tested natively with `cargo test -p salam-widget`.
//!
//! Reliability rules kept here:
//! - `lines` holds committed messages, ordered by `seq`, never two with the same `seq`
//!   or `client_id`; `outbox` holds the visitor's messages not yet acknowledged, shown
//!   as pending after the committed ones.
//! - An outbox entry keeps its `client_id` for its whole life, so resending after a
//!   reconnect is idempotent at the hub.
//! - After every reconnect the widget resumes after the last `seq` it has.
//! - [`Msg::Reset`] (a site's logout) keeps nothing of the visitor: no token, lines,
//!   outbox or queued frames; the view then replaces the socket, so the next `hello`
//!   carries no token and the hub makes a new visitor.

use crate::i18n::{Key, Locale};
use crate::json::{Json, n, obj, os, s};
use crate::wire::{Incoming, Line, Outgoing, Page, QuickReply};
use salam_protocol::{AuthorKind, ConversationState, ErrorCode, FormKind, MessageKind};

/// First reconnect delay (before jitter).
pub const BACKOFF_BASE_MS: u32 = 500;
/// Longest reconnect delay (before jitter).
pub const BACKOFF_CAP_MS: u32 = 30_000;
/// An unacknowledged message is sent again after this long on the same connection
/// (it was rate limited or the store was unavailable).
pub const RESEND_AFTER_MS: i64 = 8_000;
/// A typing indicator without news disappears after this long.
pub const TYPING_TTL_MS: i64 = 8_000;
/// The visitor's `typing` frames are sent at most this often.
pub const TYPING_EVERY_MS: i64 = 3_000;
/// How many committed lines are kept in localStorage for an instant redraw on reload.
pub const KEEP_LINES: usize = 100;

/// The delay before reconnect attempt `attempt` (0-based): exponential from
/// [`BACKOFF_BASE_MS`], capped at [`BACKOFF_CAP_MS`], with "equal jitter" (half fixed,
/// half scaled by `random` in `0..1`) so that a hub restart does not get every widget
/// back in the same millisecond.
pub fn backoff_delay(attempt: u32, random: f64) -> u32 {
    let exponential = BACKOFF_BASE_MS
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP_MS);
    let half = exponential / 2;
    // The product is at most `half`, so the cast cannot overflow.
    half + (f64::from(exponential - half) * random.clamp(0.0, 1.0)) as u32
}

/// The site settings from `GET /api/widget/{key}`. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSettings {
    pub key: String,
    pub name: String,
    pub color: Option<String>,
    pub position: Option<String>,
    pub locale: Option<String>,
    /// Greeting by locale tag.
    pub greeting: Vec<(String, String)>,
    pub logo: Option<String>,
    pub prechat: bool,
    pub agents_online: bool,
}

impl Default for SiteSettings {
    fn default() -> SiteSettings {
        SiteSettings {
            key: String::new(),
            name: String::new(),
            color: None,
            position: None,
            locale: None,
            greeting: Vec::new(),
            logo: None,
            prechat: false,
            agents_online: true,
        }
    }
}

impl SiteSettings {
    /// Reads the JSON of `GET /api/widget/{key}`; missing or odd fields keep defaults.
    pub fn parse(text: &str) -> SiteSettings {
        let Some(value) = Json::parse(text) else {
            return SiteSettings::default();
        };
        let greeting = match value.get("greeting") {
            Some(Json::Obj(members)) => members
                .iter()
                .filter_map(|(locale, text)| match text {
                    Json::Str(text) => Some((locale.clone(), text.clone())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        SiteSettings {
            key: value.string("key").unwrap_or_default(),
            name: value.string("name").unwrap_or_default(),
            color: value.string("color"),
            position: value.string("position"),
            locale: value.string("locale"),
            greeting,
            logo: value.string("logo"),
            prechat: value.bool("prechat").unwrap_or(false),
            agents_online: value.bool("agents_online").unwrap_or(true),
        }
    }

    /// Whether the launcher sits on the left: the site's side, mirrored for
    /// right-to-left locales.
    pub fn left(&self, locale: Locale) -> bool {
        let left = self.position.as_deref() == Some("left");
        left != locale.rtl()
    }

    /// The greeting in `locale`, else in English, else none.
    pub fn greeting(&self, locale: Locale) -> Option<&str> {
        let find = |tag: &str| {
            self.greeting
                .iter()
                .find(|(key, text)| key == tag && !text.trim().is_empty())
                .map(|(_, text)| text.as_str())
        };
        find(locale.tag()).or_else(|| find("en"))
    }
}

/// The state of the socket, as the visitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Opening the socket or waiting for `welcome`.
    Connecting,
    /// Greeted: frames flow.
    Online,
    /// Lost; a reconnect is scheduled.
    Reconnecting,
    /// The hub refused this site: no point retrying.
    Refused,
    /// The site does not allow this page's origin (`origin_not_allowed`): chat is not
    /// available on this page, and retrying will not change that.
    NotAllowed,
}

/// The one line under the header that says where the visitor stands. Exactly one of
/// these shows, so the header, the banner and the forms never contradict each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Banner {
    None,
    /// Chat is not enabled on this page (`origin_not_allowed`).
    NotHere,
    /// The conversation is closed; the visitor may start a new one.
    Ended,
    /// Nobody who could answer is online: leave your details (no queue position).
    Offline,
    /// Waiting for a person: place and expected wait; `callback` when the hub offers
    /// to call or write back instead of a long wait.
    Queue {
        position: u32,
        wait_secs: u64,
        callback: bool,
    },
}

/// A message typed by the visitor and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub client_id: String,
    pub text: String,
    /// When it was last sent on the current connection (`None`: not yet).
    pub sent_at: Option<i64>,
    /// The hub rejected it for good (too long, empty).
    pub failed: bool,
}

/// A form the widget shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Prechat,
    Contact,
    ContactThanks,
    Rating,
    RatingThanks,
}

/// Something the view tells the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// The socket opened: greet.
    SocketOpen {
        page: Page,
    },
    /// The socket closed or failed; `random` in `0..1` jitters the retry.
    SocketClosed {
        random: f64,
    },
    /// A frame from the hub, at `now` (ms since the epoch).
    Frame {
        frame: Incoming,
        now: i64,
    },
    Open,
    Close,
    Toggle,
    /// The visitor sends `text` (typed, a quick reply, "talk to a person", or
    /// `Salam.send`), with a fresh client id.
    Send {
        text: String,
        client_id: String,
    },
    /// The visitor typed in the compose box.
    Typed {
        now: i64,
    },
    Identify {
        token: String,
        name: Option<String>,
        email: Option<String>,
    },
    /// The site's visitor logged out (`Salam.reset()`): forget them and start over as a
    /// new anonymous visitor on a new connection.
    Reset,
    SetLocale(Locale),
    SubmitContact {
        name: String,
        email: String,
        phone: String,
        message: String,
    },
    SubmitRating {
        score: u8,
        comment: String,
    },
    SubmitPrechat {
        name: String,
        email: String,
    },
    /// The visitor asked for the offline form.
    ShowContactForm,
    /// "Start a new conversation" under a closed one: leave it (it is not shown again
    /// after a reload) and start afresh.
    StartNew,
    DismissForm,
    /// Once a second.
    Tick {
        now: i64,
    },
}

/// Events of the JS API (`Salam.on(name, callback)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiEvent {
    Open,
    Close,
    /// An agent's or the bot's message arrived.
    Message {
        text: String,
        author: AuthorKind,
        name: Option<String>,
    },
    Unread(u32),
}

impl ApiEvent {
    pub fn name(&self) -> &'static str {
        match self {
            ApiEvent::Open => "open",
            ApiEvent::Close => "close",
            ApiEvent::Message { .. } => "message",
            ApiEvent::Unread(_) => "unread",
        }
    }
}

/// Something the view must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Frame(Outgoing),
    Reconnect {
        after_ms: u32,
    },
    /// A new message while the panel is closed: sound and title notice.
    Notify,
    Emit(ApiEvent),
    FocusPanel,
    FocusLauncher,
    /// After [`Msg::Reset`]: drop the socket at once (nothing more may arrive for the
    /// old visitor), empty the compose box, and connect again.
    Restart,
}

/// What survives a reload (one localStorage entry per site).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub token: Option<String>,
    pub conversation: Option<String>,
    pub last_seq: u64,
    pub lines: Vec<Line>,
    pub outbox: Vec<Pending>,
    pub prechat_done: bool,
    pub rated: Option<String>,
    /// The closed conversation the visitor left with "start a new conversation".
    pub left: Option<String>,
}

impl Stored {
    /// Reads what [`Stored::to_text`] wrote; anything unreadable is a fresh start.
    pub fn parse(text: &str) -> Stored {
        let Some(value) = Json::parse(text) else {
            return Stored::default();
        };
        Stored {
            token: value.string("token"),
            conversation: value.string("conversation"),
            last_seq: value.uint("last_seq").unwrap_or(0),
            lines: value
                .arr("lines")
                .iter()
                .filter_map(Line::from_json)
                .collect(),
            outbox: value
                .arr("outbox")
                .iter()
                .filter_map(|pending| {
                    Some(Pending {
                        client_id: pending.string("client_id")?,
                        text: pending.string("text")?,
                        sent_at: None,
                        failed: pending.bool("failed").unwrap_or(false),
                    })
                })
                .collect(),
            prechat_done: value.bool("prechat_done").unwrap_or(false),
            rated: value.string("rated"),
            left: value.string("left"),
        }
    }

    pub fn to_text(&self) -> String {
        let outbox = self
            .outbox
            .iter()
            .map(|pending| {
                obj([
                    ("client_id", s(&pending.client_id)),
                    ("text", s(&pending.text)),
                    ("failed", Some(Json::Bool(pending.failed))),
                ])
            })
            .collect();
        obj([
            ("token", os(&self.token)),
            ("conversation", os(&self.conversation)),
            ("last_seq", n(self.last_seq)),
            (
                "lines",
                Some(Json::Arr(self.lines.iter().map(Line::to_json).collect())),
            ),
            ("outbox", Some(Json::Arr(outbox))),
            ("prechat_done", Some(Json::Bool(self.prechat_done))),
            ("rated", os(&self.rated)),
            ("left", os(&self.left)),
        ])
        .to_text()
    }
}

/// The whole widget state.
#[derive(Debug, Clone)]
pub struct State {
    pub site: String,
    pub locale: Locale,
    pub settings: SiteSettings,
    pub open: bool,
    pub connection: Connection,
    attempt: u32,
    pub token: Option<String>,
    pub conversation: Option<String>,
    pub conversation_state: Option<ConversationState>,
    pub last_seq: u64,
    pub lines: Vec<Line>,
    pub outbox: Vec<Pending>,
    /// Who is typing, until when.
    pub typing: Option<(String, i64)>,
    /// Place in the queue and expected wait in seconds.
    pub queue: Option<(u32, u64)>,
    /// Whether anyone who could answer is online: `welcome`'s `team`, then every
    /// `queue` frame's `agents_online`; before either, the site settings'.
    pub team: Option<bool>,
    /// The last `queue` frame offered a callback instead of the wait.
    pub offer_callback: bool,
    /// A closed conversation shown after a reload: history only, no composer.
    pub read_only: bool,
    left: Option<String>,
    pub form: Option<Form>,
    /// The contact form was submitted without an e-mail or phone.
    pub form_error: bool,
    pub unread: u32,
    prechat_done: bool,
    rated: Option<String>,
    /// Frames other than messages waiting for a connection (identify, rate, contact).
    later: Vec<Outgoing>,
    seen_sent: u64,
    /// Replaying a conversation from its start (history this page never showed): those
    /// lines are not news, so they neither count as unread nor beep.
    replaying_history: bool,
    typing_sent_at: i64,
    max_text_chars: usize,
}

impl State {
    pub fn new(site: String, locale: Locale, settings: SiteSettings, stored: Stored) -> State {
        State {
            site,
            locale,
            settings,
            open: false,
            connection: Connection::Connecting,
            attempt: 0,
            token: stored.token,
            conversation: stored.conversation,
            conversation_state: None,
            last_seq: stored.last_seq,
            lines: stored.lines,
            outbox: stored.outbox,
            typing: None,
            queue: None,
            team: None,
            offer_callback: false,
            read_only: false,
            left: stored.left,
            form: None,
            form_error: false,
            unread: 0,
            prechat_done: stored.prechat_done,
            rated: stored.rated,
            later: Vec::new(),
            seen_sent: 0,
            replaying_history: false,
            typing_sent_at: i64::MIN / 2,
            max_text_chars: salam_protocol::DEFAULT_MAX_TEXT_CHARS,
        }
    }

    /// What to keep in localStorage.
    pub fn stored(&self) -> Stored {
        let skip = self.lines.len().saturating_sub(KEEP_LINES);
        Stored {
            token: self.token.clone(),
            conversation: self.conversation.clone(),
            last_seq: self.last_seq,
            lines: self.lines[skip..].to_vec(),
            outbox: self.outbox.clone(),
            prechat_done: self.prechat_done,
            rated: self.rated.clone(),
            left: self.left.clone(),
        }
    }

    /// Whether anyone who could answer is online now.
    pub fn team_online(&self) -> bool {
        self.team.unwrap_or(self.settings.agents_online)
    }

    /// Whether the visitor can write (chat is available here and the conversation on
    /// screen is not a closed one shown read-only).
    pub fn can_write(&self) -> bool {
        !matches!(
            self.connection,
            Connection::Refused | Connection::NotAllowed
        ) && !self.read_only
    }

    /// The header's status line and its class (the dot's colour): the connection, and
    /// once connected, whether anyone is there to answer.
    pub fn status(&self) -> (Key, &'static str) {
        match self.connection {
            Connection::Connecting => (Key::Connecting, "st c"),
            Connection::Online if self.team_online() => (Key::Online, "st on"),
            Connection::Online => (Key::Offline, "st aw"),
            Connection::Reconnecting => (Key::Reconnecting, "st off"),
            Connection::Refused | Connection::NotAllowed => (Key::Unavailable, "st off"),
        }
    }

    /// The banner under the header (see [`Banner`]).
    pub fn banner(&self) -> Banner {
        if self.connection == Connection::NotAllowed {
            return Banner::NotHere;
        }
        if self.conversation_state == Some(ConversationState::Closed) {
            return Banner::Ended;
        }
        if !self.team_online() {
            return Banner::Offline;
        }
        match self.queue {
            Some((position, wait_secs)) => Banner::Queue {
                position,
                wait_secs,
                callback: self.offer_callback,
            },
            None => Banner::None,
        }
    }

    /// Whether the panel's own "talk to a person" button shows: only while the bot
    /// answers (or before the first message), and not when a quick reply already
    /// offers the same.
    pub fn show_talk(&self) -> bool {
        let talk = self.locale.text(Key::TalkToPerson);
        self.can_write()
            && matches!(self.conversation_state, None | Some(ConversationState::Bot))
            && !self.quick_replies().iter().any(|reply| reply.label == talk)
    }

    /// The form to show now, if any (the pre-chat form before the first message when
    /// the site asks for it).
    pub fn visible_form(&self) -> Option<Form> {
        self.form.or_else(|| {
            (self.settings.prechat
                && !self.prechat_done
                && self.lines.is_empty()
                && self.outbox.is_empty())
            .then_some(Form::Prechat)
        })
    }

    /// Quick replies to offer: those of the last line, if it is the bot's and the
    /// conversation is still open.
    pub fn quick_replies(&self) -> &[QuickReply] {
        match self.lines.last() {
            Some(last)
                if last.author == AuthorKind::Bot
                    && self.outbox.is_empty()
                    && self.conversation_state != Some(ConversationState::Closed) =>
            {
                &last.quick_replies
            }
            _ => &[],
        }
    }

    /// Who is typing now, if anyone.
    pub fn typing_name(&self) -> Option<&str> {
        self.typing.as_ref().map(|(name, _)| name.as_str())
    }

    fn online(&self) -> bool {
        self.connection == Connection::Online
    }

    /// The conversation to address a new message to: none once it is closed (the hub
    /// then starts a new one).
    fn target(&self) -> Option<String> {
        match self.conversation_state {
            Some(ConversationState::Closed) => None,
            _ => self.conversation.clone(),
        }
    }

    /// Applies `msg` and returns what the view must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let mut effects = Vec::new();
        match msg {
            Msg::SocketOpen { page } => {
                self.connection = Connection::Connecting;
                effects.push(Effect::Frame(Outgoing::Hello {
                    site: self.site.clone(),
                    token: self.token.clone(),
                    locale: self.locale.tag().to_owned(),
                    page,
                }));
            }
            Msg::SocketClosed { random } => {
                if !matches!(
                    self.connection,
                    Connection::Refused | Connection::NotAllowed
                ) {
                    self.connection = Connection::Reconnecting;
                    let after_ms = backoff_delay(self.attempt, random);
                    self.attempt = self.attempt.saturating_add(1);
                    effects.push(Effect::Reconnect { after_ms });
                }
                for outgoing in &mut self.outbox {
                    outgoing.sent_at = None;
                }
                self.typing = None;
            }
            Msg::Frame { frame, now } => self.on_frame(frame, now, &mut effects),
            Msg::Open => self.set_open(true, &mut effects),
            Msg::Close => self.set_open(false, &mut effects),
            Msg::Toggle => self.set_open(!self.open, &mut effects),
            Msg::Send { text, client_id } => {
                let text = text.trim();
                // Only a text longer in bytes than the limit can be too long in characters.
                let too_long =
                    text.len() > self.max_text_chars && text.chars().count() > self.max_text_chars;
                if text.is_empty() || too_long {
                    return effects;
                }
                if matches!(self.form, Some(Form::RatingThanks | Form::ContactThanks)) {
                    self.form = None;
                }
                if self.conversation_state == Some(ConversationState::Closed) {
                    self.form = None;
                }
                self.read_only = false;
                self.outbox.push(Pending {
                    client_id,
                    text: text.to_owned(),
                    sent_at: None,
                    failed: false,
                });
                self.flush_outbox(0, &mut effects);
            }
            Msg::Typed { now } => {
                if let Some(conversation) = self.target()
                    && self.online()
                    && now - self.typing_sent_at >= TYPING_EVERY_MS
                {
                    self.typing_sent_at = now;
                    effects.push(Effect::Frame(Outgoing::Typing {
                        conversation,
                        typing: true,
                    }));
                }
            }
            Msg::Identify { token, name, email } => {
                self.send_later(Outgoing::Identify { token, name, email }, &mut effects)
            }
            Msg::Reset => {
                if self.unread > 0 {
                    effects.push(Effect::Emit(ApiEvent::Unread(0)));
                }
                // Built afresh rather than field by field, so that nothing of the old
                // visitor (a field added later included) can survive. Only what
                // belongs to the page or the hub stays: the panel's state and the
                // hub's text limit (the site, locale and settings are passed on).
                *self = State {
                    open: self.open,
                    max_text_chars: self.max_text_chars,
                    ..State::new(
                        std::mem::take(&mut self.site),
                        self.locale,
                        std::mem::take(&mut self.settings),
                        Stored::default(),
                    )
                };
                effects.push(Effect::Restart);
            }
            Msg::SetLocale(locale) => self.locale = locale,
            Msg::SubmitContact {
                name,
                email,
                phone,
                message,
            } => {
                let (email, phone) = (non_empty(email), non_empty(phone));
                if email.is_none() && phone.is_none() {
                    self.form_error = true;
                    return effects;
                }
                self.form_error = false;
                self.form = Some(Form::ContactThanks);
                self.send_later(
                    Outgoing::Contact {
                        conversation: self.target(),
                        name: non_empty(name),
                        email,
                        phone,
                        message: non_empty(message),
                    },
                    &mut effects,
                );
            }
            Msg::SubmitRating { score, comment } => {
                let Some(conversation) = self.conversation.clone() else {
                    self.form = None;
                    return effects;
                };
                self.rated = Some(conversation.clone());
                self.form = Some(Form::RatingThanks);
                self.send_later(
                    Outgoing::Rate {
                        conversation,
                        score: score.clamp(1, 5),
                        comment: non_empty(comment),
                    },
                    &mut effects,
                );
            }
            Msg::SubmitPrechat { name, email } => {
                self.prechat_done = true;
                let (name, email) = (non_empty(name), non_empty(email));
                if name.is_some() || email.is_some() {
                    self.send_later(
                        Outgoing::Contact {
                            conversation: self.target(),
                            name,
                            email,
                            phone: None,
                            message: None,
                        },
                        &mut effects,
                    );
                }
            }
            Msg::StartNew => {
                self.left = self.conversation.take();
                self.conversation_state = None;
                self.lines.clear();
                self.last_seq = 0;
                self.seen_sent = 0;
                self.queue = None;
                self.offer_callback = false;
                self.form = None;
                self.read_only = false;
                effects.push(Effect::FocusPanel);
            }
            Msg::ShowContactForm => {
                self.form = Some(Form::Contact);
                self.form_error = false;
            }
            Msg::DismissForm => {
                if self.visible_form() == Some(Form::Prechat) {
                    self.prechat_done = true;
                }
                self.form = None;
                self.form_error = false;
            }
            Msg::Tick { now } => {
                if self.typing.as_ref().is_some_and(|(_, until)| *until <= now) {
                    self.typing = None;
                }
                if self.online() {
                    for outgoing in &mut self.outbox {
                        if outgoing
                            .sent_at
                            .is_some_and(|at| now - at >= RESEND_AFTER_MS)
                        {
                            outgoing.sent_at = None;
                        }
                    }
                    self.flush_outbox(now, &mut effects);
                }
            }
        }
        effects
    }

    fn set_open(&mut self, open: bool, effects: &mut Vec<Effect>) {
        if self.open == open {
            return;
        }
        self.open = open;
        if open {
            effects.push(Effect::Emit(ApiEvent::Open));
            effects.push(Effect::FocusPanel);
            if self.unread > 0 {
                self.unread = 0;
                effects.push(Effect::Emit(ApiEvent::Unread(0)));
            }
            self.send_seen(effects);
        } else {
            effects.push(Effect::Emit(ApiEvent::Close));
            effects.push(Effect::FocusLauncher);
        }
    }

    fn send_seen(&mut self, effects: &mut Vec<Effect>) {
        if let Some(conversation) = self.conversation.clone()
            && self.open
            && self.online()
            && self.last_seq > self.seen_sent
        {
            self.seen_sent = self.last_seq;
            effects.push(Effect::Frame(Outgoing::Seen {
                conversation,
                seq: self.last_seq,
            }));
        }
    }

    /// Sends the outbox entries not sent on this connection yet, in order.
    fn flush_outbox(&mut self, now: i64, effects: &mut Vec<Effect>) {
        if !self.online() {
            return;
        }
        let conversation = self.target();
        for outgoing in &mut self.outbox {
            if outgoing.sent_at.is_none() && !outgoing.failed {
                outgoing.sent_at = Some(now);
                effects.push(Effect::Frame(Outgoing::Send {
                    client_id: outgoing.client_id.clone(),
                    text: outgoing.text.clone(),
                    conversation: conversation.clone(),
                }));
            }
        }
    }

    fn send_later(&mut self, frame: Outgoing, effects: &mut Vec<Effect>) {
        if self.online() {
            effects.push(Effect::Frame(frame));
        } else {
            self.later.push(frame);
        }
    }

    /// Makes `conversation` the current one; the lines of another conversation go.
    fn adopt(&mut self, conversation: &str) {
        if self.conversation.as_deref() != Some(conversation) {
            self.conversation = Some(conversation.to_owned());
            self.conversation_state = None;
            self.lines.clear();
            self.last_seq = 0;
            self.seen_sent = 0;
            self.queue = None;
            self.offer_callback = false;
            if matches!(self.form, Some(Form::Rating | Form::RatingThanks)) {
                self.form = None;
            }
        }
    }

    /// Inserts a committed line in `seq` order, unless it is already there.
    fn insert_line(&mut self, message: Line) -> bool {
        if let Some(client_id) = &message.client_id {
            self.outbox
                .retain(|outgoing| &outgoing.client_id != client_id);
        }
        self.last_seq = self.last_seq.max(message.seq);
        let duplicate = self.lines.iter().any(|line| {
            line.seq == message.seq
                || (message.client_id.is_some() && line.client_id == message.client_id)
        });
        if duplicate {
            return false;
        }
        let at = self.lines.partition_point(|line| line.seq < message.seq);
        self.lines.insert(at, message);
        true
    }

    fn on_frame(&mut self, frame: Incoming, now: i64, effects: &mut Vec<Effect>) {
        match frame {
            Incoming::Welcome {
                token,
                conversations,
                max_text_chars,
                team,
            } => {
                self.connection = Connection::Online;
                if team.is_some() {
                    self.team = team;
                }
                self.attempt = 0;
                if let Some(max) = max_text_chars.and_then(|max| usize::try_from(max).ok()) {
                    self.max_text_chars = max;
                }
                if token.is_some() {
                    self.token = token;
                }
                // A closed conversation the visitor left with "start a new conversation"
                // is not shown again.
                let conversations: Vec<_> = conversations
                    .into_iter()
                    .filter(|c| {
                        c.state != ConversationState::Closed || self.left.as_ref() != Some(&c.id)
                    })
                    .collect();
                let known = self
                    .conversation
                    .as_ref()
                    .and_then(|id| conversations.iter().find(|c| &c.id == id));
                let chosen = known.or_else(|| conversations.iter().max_by_key(|c| c.updated_at));
                match chosen {
                    Some(summary) => {
                        let id = summary.id.clone();
                        self.adopt(&id);
                        self.conversation_state = Some(summary.state);
                        // A returning visitor's last, closed conversation: its history,
                        // read-only, with "start a new conversation".
                        self.read_only = summary.state == ConversationState::Closed;
                        self.replaying_history = self.last_seq == 0;
                        effects.push(Effect::Frame(Outgoing::Resume {
                            conversation: id,
                            after: self.last_seq,
                        }));
                    }
                    None => {
                        // Our conversation ended while we were away.
                        self.conversation = None;
                        self.conversation_state = None;
                        self.lines.clear();
                        self.last_seq = 0;
                        self.queue = None;
                    }
                }
                for frame in std::mem::take(&mut self.later) {
                    effects.push(Effect::Frame(frame));
                }
                self.flush_outbox(now, effects);
            }
            Incoming::Ack {
                client_id,
                conversation,
                seq,
            } => {
                self.adopt(&conversation);
                if let Some(index) = self
                    .outbox
                    .iter()
                    .position(|outgoing| outgoing.client_id == client_id)
                {
                    let outgoing = self.outbox.remove(index);
                    self.insert_line(Line {
                        conversation: conversation.clone(),
                        seq,
                        kind: MessageKind::Text,
                        author: AuthorKind::Visitor,
                        name: None,
                        text: outgoing.text,
                        at: now,
                        client_id: Some(client_id),
                        quick_replies: Vec::new(),
                        event: None,
                    });
                }
                if self
                    .conversation_state
                    .is_none_or(|s| s == ConversationState::Closed)
                {
                    self.conversation_state = Some(ConversationState::Queued);
                }
                self.send_seen(effects);
            }
            Incoming::Message(message) => {
                if message.kind == MessageKind::Note {
                    return;
                }
                if self.conversation.as_deref() != Some(message.conversation.as_str()) {
                    self.adopt(&message.conversation.clone());
                }
                let incoming = matches!(message.author, AuthorKind::Agent | AuthorKind::Bot)
                    && message.kind == MessageKind::Text;
                let event = ApiEvent::Message {
                    text: message.text.clone(),
                    author: message.author,
                    name: message.name.clone(),
                };
                if self.typing.is_some() && incoming {
                    self.typing = None;
                }
                if !self.insert_line(message) || !incoming {
                    return;
                }
                effects.push(Effect::Emit(event));
                if self.open {
                    self.send_seen(effects);
                } else if !self.replaying_history {
                    self.unread += 1;
                    effects.push(Effect::Notify);
                    effects.push(Effect::Emit(ApiEvent::Unread(self.unread)));
                }
            }
            Incoming::Typing {
                author,
                name,
                typing,
            } => {
                if author == AuthorKind::Visitor {
                    return;
                }
                self.typing = typing.then(|| (name.unwrap_or_default(), now + TYPING_TTL_MS));
            }
            Incoming::State {
                conversation,
                state,
            } => {
                if self.conversation.as_deref() != Some(conversation.as_str()) {
                    return;
                }
                self.conversation_state = Some(state);
                if state != ConversationState::Queued {
                    self.queue = None;
                }
                if state == ConversationState::Closed {
                    self.typing = None;
                    if self.rated.as_deref() != Some(conversation.as_str()) {
                        self.form = Some(Form::Rating);
                    }
                }
            }
            Incoming::Queue {
                conversation,
                position,
                wait_secs,
                agents_online,
                offer_callback,
            } => {
                if self.conversation.as_deref() == Some(conversation.as_str()) {
                    self.queue = Some((position, wait_secs));
                    self.team = Some(agents_online);
                    self.offer_callback = offer_callback;
                }
            }
            Incoming::OriginNotAllowed => {
                self.connection = Connection::NotAllowed;
                // Nothing can be sent from this page: say so rather than "Sending…".
                for outgoing in &mut self.outbox {
                    outgoing.failed = true;
                }
            }
            Incoming::Form { conversation, form } => match form {
                FormKind::Contact => {
                    self.form = Some(Form::Contact);
                    self.form_error = false;
                }
                FormKind::Rating => {
                    if self.rated.as_deref() != Some(conversation.as_str()) {
                        self.form = Some(Form::Rating);
                    }
                }
            },
            Incoming::Resumed { last_seq } => {
                self.replaying_history = false;
                self.last_seq = self.last_seq.max(last_seq);
                self.send_seen(effects);
            }
            // A code newer than this widget is ignored: a message it names is resent later.
            Incoming::Error { code, client_id } => {
                if let Some(code) = code {
                    self.on_error(code, client_id, now, effects);
                }
            }
        }
    }

    fn on_error(
        &mut self,
        code: ErrorCode,
        client_id: Option<String>,
        now: i64,
        effects: &mut Vec<Effect>,
    ) {
        let outgoing = client_id.and_then(|client_id| {
            self.outbox
                .iter_mut()
                .find(|outgoing| outgoing.client_id == client_id)
        });
        match (code, outgoing) {
            // Before `welcome` it is our token the hub refuses (its secret changed): start
            // afresh. Once greeted it can only be a badly signed `identify`: the visitor
            // keeps chatting, anonymously.
            (ErrorCode::Unauthorized, _) if self.connection != Connection::Online => {
                self.token = None;
                self.conversation = None;
                self.lines.clear();
                self.last_seq = 0;
            }
            (ErrorCode::UnknownSite | ErrorCode::Forbidden, None) => {
                self.connection = Connection::Refused;
            }
            (ErrorCode::ConversationClosed, Some(outgoing)) => {
                // Resend at once: without a conversation it starts a new one.
                outgoing.sent_at = None;
                self.conversation_state = Some(ConversationState::Closed);
                self.flush_outbox(now, effects);
            }
            (
                ErrorCode::TextTooLong
                | ErrorCode::EmptyText
                | ErrorCode::BadField
                | ErrorCode::FrameTooLarge
                | ErrorCode::Forbidden,
                Some(outgoing),
            ) => outgoing.failed = true,
            // Rate limited, store unavailable, …: the tick resends it later.
            _ => {}
        }
    }
}

fn non_empty(text: String) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests;
