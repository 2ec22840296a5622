//! Salam storage.
//!
//! Key design decision: **one writer, many readers, and acknowledgement only after
//! commit.** Every write goes to a dedicated writer thread through a bounded queue. The
//! writer drains whatever is waiting (up to a batch limit), runs the jobs inside one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers each caller. So a
//! burst of N messages costs one commit and a caller never hears "ok" for something
//! that is not on disk. Most jobs run in their own `SAVEPOINT`, so a failing one cannot
//! spoil its neighbours; message appends (the hot path) run without one, and an append
//! that fails after writing rolls back the whole batch, whose callers all get a
//! retryable error (never a half-done job committed). Sequence numbers are assigned
//! inside that transaction, which makes them gap-free per conversation; a resend with
//! the same client id finds the committed row and returns it instead of writing another.
//!
//! Conversation states change only by **compare-and-set** ([`Store::transition`]: from
//! one of these states to that one, with its system line in the same transaction), so a
//! stale decision (an assignment racing a close) is refused, never applied over a newer
//! state.
//!
//! Reads run on a small pool of separate connections (SQLite WAL mode lets them proceed
//! while the writer commits).
//!
//! The hub talks to storage only through the [`Store`] trait, which has two backends:
//! [`SqliteStore`] (the embedded default) and [`PostgresStore`] ([`postgres`], issue 13:
//! the same writer-and-readers shape over a PostgreSQL server, chosen by a
//! `postgres://` store URL). One test suite (`tests/backends/`) runs every behaviour on
//! both.
//!
//! [`maintenance`] is what running it for years needs: online backups and restores of
//! the file, the retention sweep in small writer jobs, a visitor's export and erasure,
//! the audit log, and the anonymous report facts that keep reports whole after
//! conversations are deleted.
//!
//! [`timeline`] reads one customer's history for the console (issue 19): the
//! conversations, callbacks and proactive messages of every visitor of a site linked by
//! a verified external id, and the pages of the current session, newest first and paged
//! by an exact cursor.

pub mod api_pages;
pub mod api_tokens;
pub mod contacts;
pub mod email;
pub mod key_accounts;
pub mod maintenance;
pub mod postgres;
mod schema;
mod sqlite;
pub mod timeline;
pub mod trigger_counts;
pub mod visitor_events;
pub mod webhooks;
mod writer;

pub use api_pages::ConversationPage;
pub use api_tokens::{ApiScope, ApiToken, NewApiToken};
pub use contacts::{AttributeChange, Contact, ContactSearch, ContactUpdate, NewContact};
pub use email::{
    Channel, Direction, EmailEvent, EmailEventKind, EmailRecord, TranscriptRequest, UnseenDue,
};
pub use maintenance::{
    AuditEntry, AuditNote, DatabaseInfo, Erased, Erasure, MaintenanceError, NewAudit,
    RetentionBatch, RetentionBudget, VisitorRecord, VisitorSelector, VisitorSweep,
};
pub use postgres::{ClusterLease, HubClaim, PostgresOptions, PostgresStore};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use timeline::{
    Timeline, TimelineCursor, TimelineEntry, TimelineQuery, TimelineRating, TriggerEntry,
};
pub use trigger_counts::TriggerCount;
pub use visitor_events::{NewVisitorEvent, VisitorEvent, VisitorEventKind};
pub use webhooks::{
    AttemptOutcome, DeliveryStatus, DisablePolicy, DueDelivery, NewWebhookEndpoint, WebhookAttempt,
    WebhookDelivery, WebhookEndpoint, WebhookEndpointUpdate, WebhookEvent,
};

/// A webhook event queued for commit; resolves to the number of deliveries written
/// (one per subscribed endpoint) once committed.
pub type PendingWebhook =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, StoreError>> + Send>>;

use async_trait::async_trait;
use salam_protocol::{
    Author, AuthorKind, ConversationState, ConversationSummary, Message, MessageKind, PageInfo,
    Presence, Preview, QuickReply, SystemEvent,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// What can go wrong in storage. Callers map these to client error codes; the texts are
/// for logs, never for clients.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be written now (disk full, read-only, I/O error). Nothing was
    /// committed; the caller may retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (an e-mail already registered, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The object does not exist.
    #[error("not found")]
    NotFound,
    /// The conversation is closed and takes no more messages.
    #[error("conversation is closed")]
    Closed,
    /// The store is shutting down.
    #[error("store is shut down")]
    ShutDown,
    /// Data in the database is not what the code expects.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The conversation is no longer in the state the write expected (see
    /// [`NewMessage::only_in`]); nothing was written.
    #[error("conversation is now {0:?}")]
    StateChanged(ConversationState),
}

/// A site: one website that embeds the widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    pub name: String,
    /// The public key used in the script tag (`data-site`).
    pub key: String,
    /// Origins allowed to open `/ws/visitor` (`https://shop.example`); `*` allows any.
    pub origins: Vec<String>,
    /// The site's settings as JSON (the hub owns their meaning: colour, greeting,
    /// business hours, ...).
    pub settings: String,
    /// The secret the site's backend uses to sign identities (`identify`).
    pub identity_secret: String,
    /// The secret before the last rotation, and when that happened: it still verifies
    /// for a grace period.
    pub previous_identity_secret: Option<String>,
    pub identity_secret_rotated_at: Option<i64>,
    pub created_at: i64,
}

/// A bot turn, recorded for reports (deflection rate, unanswered questions).
#[derive(Debug, Clone)]
pub struct BotTurn {
    pub conversation: String,
    pub site_id: String,
    pub rule_id: Option<String>,
    pub intent: String,
    /// `answer`, `clarify`, `handoff` or `fallback`.
    pub decision: &'static str,
    pub score: f32,
    pub lang: String,
    pub question: String,
    pub at: i64,
}

/// One earlier bot turn of a conversation, as the next turn's context needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentTurn {
    /// `answer`, `clarify`, `handoff` or `fallback`.
    pub decision: String,
    /// The intent answered or handed off, `clarify` or `none`.
    pub intent: String,
    /// The visitor's text.
    pub question: String,
}

/// Contact details a visitor left for a callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OfflineRequest {
    pub id: i64,
    pub site_id: String,
    pub visitor_id: String,
    pub conversation: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// An alert for a site's admins (a low satisfaction score, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    pub id: i64,
    pub site_id: String,
    pub conversation: Option<String>,
    pub kind: String,
    pub detail: String,
    pub at: i64,
    /// When an admin acknowledged it (`None`: still open); ignored by `create_alert`.
    pub acknowledged_at: Option<i64>,
}

/// Changes to an agent account (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub role: Option<AgentRole>,
    /// `Some(None)` clears the capacity (the hub's default applies).
    pub capacity: Option<Option<u32>>,
    pub departments: Option<Vec<String>>,
    /// `true` deletes every session of the agent too.
    pub disabled: Option<bool>,
    pub all_sites: Option<bool>,
    pub site_ids: Option<Vec<String>>,
}

/// A canned response agents insert with `/shortcut`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Canned {
    pub id: i64,
    pub site_id: String,
    pub shortcut: String,
    pub text: String,
}

/// Which conversations to list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this state (`None`: open ones, that is, all but closed, unless
    /// `include_closed`).
    pub state: Option<ConversationState>,
    /// With `state: None`, closed ones too (a search across every tab).
    pub include_closed: bool,
    /// Only conversations assigned to this agent.
    pub agent_id: Option<String>,
    /// Visitor name, e-mail or message text containing this (case-insensitive).
    pub query: Option<String>,
    pub limit: u32,
}

/// A visitor as agents see them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Visitor {
    pub id: String,
    pub site_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The site's user id when `identify` verified it.
    pub external_id: Option<String>,
    /// Which of `name` and `email` a signed identity vouched for (the others came from
    /// the visitor, unverified).
    pub verified: Vec<String>,
    /// Signed custom attributes (a JSON object), from an identity token.
    pub attributes: Option<serde_json::Value>,
    pub locale: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Response-time figures of one conversation (for reports).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Timing {
    pub conversation: String,
    pub created_at: i64,
    pub handed_off_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub score: Option<u8>,
}

/// What the bot report counts over a time range.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BotReport {
    /// Conversations created in the range.
    pub conversations: u64,
    /// Of those, conversations where the bot took at least one turn.
    pub bot_conversations: u64,
    /// Of those, conversations never handed to a person (settled by the bot).
    pub deflected: u64,
    /// Handoffs by reason (requested, complaint, misses, rule_action, vip).
    pub handoffs_by_reason: Vec<(String, u64)>,
    /// Questions the bot could not answer (fallback or clarify), most frequent first.
    pub unanswered: Vec<(String, u64)>,
}

/// An agent's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRole {
    Agent,
    Admin,
}

impl AgentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentRole::Agent => "agent",
            AgentRole::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<AgentRole> {
        match name {
            "agent" => Some(AgentRole::Agent),
            "admin" => Some(AgentRole::Admin),
            _ => None,
        }
    }
}

/// An agent account (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: AgentRole,
    /// Works on every site, including sites created later (admins always do).
    pub all_sites: bool,
    /// Sites this agent works on when not [`Agent::all_sites`].
    pub site_ids: Vec<String>,
    pub disabled: bool,
    /// Concurrent chats at most, across all their sites (`None`: the hub's default).
    pub capacity: Option<u32>,
    /// Departments this agent serves (every agent also serves the general queue).
    pub departments: Vec<String>,
    /// The status the agent chose last: `Online` or `Away` (what they are when they
    /// next connect).
    pub presence: Presence,
}

impl Agent {
    /// Whether this agent works on every site (an admin, or an explicit "all sites"
    /// membership).
    pub fn every_site(&self) -> bool {
        self.role == AgentRole::Admin || self.all_sites
    }

    /// Whether this agent may see the data of `site_id`.
    pub fn can_access(&self, site_id: &str) -> bool {
        self.every_site() || self.site_ids.iter().any(|id| id == site_id)
    }

    /// The agent as the author of a message.
    pub fn author(&self) -> Author {
        Author {
            kind: AuthorKind::Agent,
            id: Some(self.id.clone()),
            name: Some(self.name.clone()),
        }
    }
}

/// A new agent account.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub role: AgentRole,
    pub password_hash: String,
    /// Every site, including sites created later.
    pub all_sites: bool,
    pub site_ids: Vec<String>,
    pub capacity: Option<u32>,
    pub departments: Vec<String>,
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: String,
    pub site_id: String,
    pub visitor_id: String,
    pub visitor_name: Option<String>,
    /// The visitor's e-mail and locale, which name an anonymous visitor in the inbox.
    pub visitor_email: Option<String>,
    pub visitor_locale: Option<String>,
    pub state: ConversationState,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub last_seq: u64,
    pub department: String,
    pub priority: i32,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it last joined a queue.
    pub queued_at: Option<i64>,
    /// Visitor messages since an agent last read the conversation or replied.
    pub unread: u32,
    /// The last text or note (its author and first characters).
    pub preview: Option<Preview>,
    /// `chat` or `email` (issue 17).
    pub channel: salam_protocol::Channel,
}

impl Conversation {
    /// The wire summary of this conversation.
    pub fn summary(&self) -> ConversationSummary {
        ConversationSummary {
            id: self.id.clone(),
            site: self.site_id.clone(),
            state: self.state,
            unread: self.unread,
            preview: self.preview.clone(),
            last_seq: self.last_seq,
            visitor: Author {
                kind: AuthorKind::Visitor,
                id: Some(self.visitor_id.clone()),
                name: self.visitor_name.clone(),
            },
            visitor_email: self.visitor_email.clone(),
            visitor_locale: self.visitor_locale.clone(),
            agent: self.agent_id.as_ref().map(|id| Author {
                kind: AuthorKind::Agent,
                id: Some(id.clone()),
                name: self.agent_name.clone(),
            }),
            department: self.department.clone(),
            priority: self.priority,
            created_at: self.created_at,
            updated_at: self.updated_at,
            channel: Some(self.channel),
        }
    }
}

/// A message to append to a conversation.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation: String,
    pub kind: MessageKind,
    pub author: Author,
    pub text: String,
    /// The sender's client id; with it, a resend is recognised and not stored twice.
    pub client_id: Option<String>,
    pub quick_replies: Vec<QuickReply>,
    /// For a bot line: the rule that produced it.
    pub rule: Option<String>,
    /// For an event line: its code and params (`text` is its English rendering).
    pub event: Option<SystemEvent>,
    pub at: i64,
    /// Append only while the conversation is in this state (a bot line only while the
    /// bot has the conversation); otherwise [`StoreError::StateChanged`].
    pub only_in: Option<ConversationState>,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The committed message (the original one for a duplicate).
    pub message: Message,
    /// True when the client id had already been committed: nothing new was written.
    pub duplicate: bool,
    /// The conversation's state when the message was appended (read in the same
    /// transaction), so callers need not read the conversation again.
    pub state: ConversationState,
    /// The conversation's unread count after this message.
    pub unread: u32,
}

/// A compare-and-set change of a conversation's state: applied only if the
/// conversation is in one of `from`, together with its system line.
#[derive(Debug, Clone)]
pub struct Transition {
    pub conversation: String,
    pub from: Vec<ConversationState>,
    pub to: ConversationState,
    /// The agent for `assigned` (cleared for any other state).
    pub agent_id: Option<String>,
    /// A new department (`None`: unchanged).
    pub department: Option<String>,
    /// A new priority (`None`: unchanged).
    pub priority: Option<i32>,
    /// Why people got the conversation, recorded once for reports (to `queued` or
    /// `assigned`: `requested`, `vip`, `taken`, ...).
    pub handoff_reason: Option<String>,
    /// The system line recorded in the history with the change (its `text` is the
    /// event's English rendering).
    pub event: Option<SystemEvent>,
    pub at: i64,
}

impl Transition {
    /// A change of `conversation` from any of `from` to `to`, nothing else.
    pub fn new(
        conversation: &str,
        from: &[ConversationState],
        to: ConversationState,
        at: i64,
    ) -> Transition {
        Transition {
            conversation: conversation.to_owned(),
            from: from.to_vec(),
            to,
            agent_id: None,
            department: None,
            priority: None,
            handoff_reason: None,
            event: None,
            at,
        }
    }
}

/// What became of a [`Transition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transitioned {
    /// Applied: the conversation as it is now, and its committed system line.
    Applied {
        conversation: Conversation,
        /// Boxed: a message is large, and a stale answer carries none.
        event: Option<Box<Message>>,
    },
    /// Refused: the conversation was not in a `from` state; it is as given.
    Stale(Conversation),
}

/// A live session of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session token.
    pub token_hash: String,
    pub expires_at: i64,
    /// Last used (kept to the nearest few minutes).
    pub last_seen: i64,
}

/// The agent of a live session, and the session's times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAgent {
    pub agent: Agent,
    pub expires_at: i64,
    pub last_seen: i64,
}

/// A department of a site.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Department {
    pub site_id: String,
    pub name: String,
}

/// What a verified `identify` records about a visitor.
#[derive(Debug, Clone, Default)]
pub struct IdentityUpdate {
    /// The site's user id.
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Which of `name` and `email` the site signed.
    pub verified: Vec<String>,
    /// Signed custom attributes (a JSON object).
    pub attributes: Option<serde_json::Value>,
}

/// A page of a list: at most `limit` items with ids below `before` (newest first).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub before: Option<i64>,
    pub limit: u32,
}

impl Page {
    /// The page holding exactly the item `id`, if the list has it (the first item
    /// below `id + 1`).
    pub fn at(id: i64) -> Page {
        Page {
            before: id.checked_add(1),
            limit: 1,
        }
    }
}

/// What the hub records about a visitor.
#[derive(Debug, Clone, Default)]
pub struct VisitorUpdate {
    pub locale: Option<String>,
    pub page: Option<PageInfo>,
    pub user_agent: Option<String>,
}

/// A transition queued for commit; resolves once it is committed (or failed).
pub type PendingTransition =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Transitioned, StoreError>> + Send>>;

/// A message queued for commit; resolves once it is committed (or failed).
pub struct PendingAppend(
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Appended, StoreError>> + Send>>,
);

impl PendingAppend {
    pub fn new(
        future: impl std::future::Future<Output = Result<Appended, StoreError>> + Send + 'static,
    ) -> PendingAppend {
        PendingAppend(Box::pin(future))
    }
}

impl std::future::Future for PendingAppend {
    type Output = Result<Appended, StoreError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(context)
    }
}

impl std::fmt::Debug for PendingAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingAppend")
    }
}

/// Counters the store keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Committed batches.
    pub batches: AtomicU64,
    /// Jobs committed in those batches (so `jobs / batches` is the mean batch size).
    pub jobs: AtomicU64,
    /// Sum of commit latencies, microseconds (batch start to commit done).
    pub commit_micros: AtomicU64,
    /// Batches whose commit failed.
    pub failed_batches: AtomicU64,
    /// Batches run again whole after the database aborted them for a deadlock or a
    /// serialization failure with another hub's writer (PostgreSQL only; each retry
    /// counts once).
    pub retried_batches: AtomicU64,
    /// Histogram of batch sizes: 1, 2-4, 5-16, 17-64, 65+.
    pub batch_size_buckets: [AtomicU64; 5],
}

impl StoreMetrics {
    pub(crate) fn record_batch(&self, size: usize, micros: u64, ok: bool) {
        if !ok {
            self.failed_batches.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(size as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        let bucket = match size {
            0..=1 => 0,
            2..=4 => 1,
            5..=16 => 2,
            17..=64 => 3,
            _ => 4,
        };
        self.batch_size_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the hub stores. Implementations must commit a write durably before its
/// future resolves with `Ok`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- key/value settings (the server secret) ---
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError>;

    // --- sites ---
    async fn create_site(&self, name: &str, origins: &[String]) -> Result<Site, StoreError>;
    async fn site_by_key(&self, key: &str) -> Result<Option<Site>, StoreError>;
    async fn site_by_id(&self, id: &str) -> Result<Option<Site>, StoreError>;
    async fn list_sites(&self) -> Result<Vec<Site>, StoreError>;
    async fn update_site(
        &self,
        id: &str,
        name: Option<&str>,
        origins: Option<&[String]>,
    ) -> Result<Site, StoreError>;
    /// The departments of the given sites.
    async fn departments(&self, site_ids: &[String]) -> Result<Vec<Department>, StoreError>;
    async fn add_department(&self, site_id: &str, name: &str) -> Result<(), StoreError>;
    async fn remove_department(&self, site_id: &str, name: &str) -> Result<(), StoreError>;
    /// The canned responses of the given sites.
    async fn canned(&self, site_ids: &[String]) -> Result<Vec<Canned>, StoreError>;
    async fn add_canned(
        &self,
        site_id: &str,
        shortcut: &str,
        text: &str,
    ) -> Result<Canned, StoreError>;
    async fn remove_canned(&self, id: i64) -> Result<(), StoreError>;
    /// Replaces the site's identity secret with `secret`; the old one is kept (it
    /// verifies for a grace period).
    async fn rotate_identity_secret(
        &self,
        site_id: &str,
        secret: &str,
        now: i64,
    ) -> Result<Site, StoreError>;
    /// Marks an offline request followed up.
    async fn offline_request_done(&self, id: i64, now: i64) -> Result<(), StoreError>;
    async fn acknowledge_alert(&self, id: i64, now: i64) -> Result<(), StoreError>;

    // --- agents and sessions ---
    async fn create_agent(&self, agent: NewAgent) -> Result<Agent, StoreError>;
    async fn count_agents(&self) -> Result<u64, StoreError>;
    /// The agent and their password hash.
    async fn agent_by_email(&self, email: &str) -> Result<Option<(Agent, String)>, StoreError>;
    async fn agent_by_id(&self, id: &str) -> Result<Option<Agent>, StoreError>;
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError>;
    async fn update_agent(&self, id: &str, update: AgentUpdate) -> Result<Agent, StoreError>;
    async fn create_session(
        &self,
        token_hash: &str,
        agent_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// The agent of an unexpired session of an enabled account, with the session's
    /// times (the caller applies the idle timeout with `last_seen`).
    async fn session_agent(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionAgent>, StoreError>;
    /// Marks a session used now.
    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// The unexpired sessions of an agent.
    async fn sessions_of_agent(&self, agent_id: &str, now: i64)
    -> Result<Vec<Session>, StoreError>;
    /// Deletes every session of the agent but `keep`.
    async fn delete_sessions_of_agent(
        &self,
        agent_id: &str,
        keep: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The agent's password hash.
    async fn password_hash(&self, agent_id: &str) -> Result<Option<String>, StoreError>;
    async fn set_password_hash(&self, agent_id: &str, hash: &str) -> Result<(), StoreError>;
    /// Remembers the status the agent chose (`Online` or `Away`).
    async fn set_agent_presence(
        &self,
        agent_id: &str,
        presence: Presence,
    ) -> Result<(), StoreError>;

    // --- visitors and conversations ---
    async fn touch_visitor(
        &self,
        visitor_id: &str,
        site_id: &str,
        update: VisitorUpdate,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Records a verified identity (from `identify`).
    async fn identify_visitor(
        &self,
        visitor_id: &str,
        identity: IdentityUpdate,
    ) -> Result<(), StoreError>;
    /// The visitor's external id (the site's user id), once identified.
    async fn visitor_external_id(&self, visitor_id: &str) -> Result<Option<String>, StoreError>;
    async fn update_site_settings(&self, site_id: &str, settings: &str) -> Result<(), StoreError>;

    async fn create_conversation(
        &self,
        site_id: &str,
        visitor_id: &str,
        state: ConversationState,
        now: i64,
    ) -> Result<Conversation, StoreError>;
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;
    /// Open (not closed) conversations of one visitor, oldest first.
    async fn open_conversations_of_visitor(
        &self,
        site_id: &str,
        visitor_id: &str,
    ) -> Result<Vec<Conversation>, StoreError>;
    /// The visitor's most recently closed conversation, if it closed at `since` or
    /// later and no open conversation of theirs is newer.
    async fn recent_closed_conversation_of_visitor(
        &self,
        site_id: &str,
        visitor_id: &str,
        since: i64,
    ) -> Result<Option<Conversation>, StoreError>;
    /// Remembers that the contact form was asked for in the conversation (until the
    /// visitor leaves details in it).
    async fn set_contact_asked(&self, conversation: &str, at: i64) -> Result<(), StoreError>;
    /// Whether the contact form was asked for in the conversation and not answered.
    async fn contact_pending(&self, conversation: &str) -> Result<bool, StoreError>;
    /// The contact details left in a conversation (its visitor's request), if any.
    async fn contact_of_conversation(
        &self,
        conversation: &str,
    ) -> Result<Option<OfflineRequest>, StoreError>;
    /// Open conversations of the given sites, most recently updated first.
    async fn open_conversations_of_sites(
        &self,
        site_ids: &[String],
        limit: u32,
    ) -> Result<Vec<Conversation>, StoreError>;
    /// Changes a conversation's state by compare-and-set, with its system line, in one
    /// transaction. The first time it goes to `queued` or `assigned` is kept as the
    /// hand-off time for reports; a hand-off to people also clears nothing else.
    async fn transition(&self, transition: Transition) -> Result<Transitioned, StoreError>;
    /// Queues a transition and returns as soon as it is queued (see
    /// [`Store::append_queued`]): transitions and appends queued one after another are
    /// committed in that order.
    async fn transition_queued(
        &self,
        transition: Transition,
    ) -> Result<PendingTransition, StoreError>;
    /// Marks a conversation read by an agent: its unread count drops to 0. Returns
    /// whether it was not 0.
    async fn mark_read(&self, id: &str) -> Result<bool, StoreError>;

    /// Sets a conversation's priority (a missed response target raises it).
    async fn set_priority(&self, id: &str, priority: i32) -> Result<(), StoreError>;
    /// Open conversations with no activity since `before` (for auto-close).
    async fn idle_conversations(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Conversation>, StoreError>;
    /// Conversations in one state across all sites (used to restore routing on start).
    async fn conversations_in_state(
        &self,
        state: ConversationState,
    ) -> Result<Vec<Conversation>, StoreError>;

    /// Conversations of the given sites matching `filter`, most recently updated first.
    async fn find_conversations(
        &self,
        site_ids: &[String],
        filter: ConversationFilter,
    ) -> Result<Vec<Conversation>, StoreError>;
    async fn visitor(&self, visitor_id: &str) -> Result<Option<Visitor>, StoreError>;
    /// The visitor's other conversations, newest first.
    async fn conversations_of_visitor(
        &self,
        visitor_id: &str,
    ) -> Result<Vec<Conversation>, StoreError>;
    /// Timings of conversations created in a range (for response-time reports).
    async fn timings(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<Timing>, StoreError>;

    // --- bot, offline requests, ratings, alerts, reports ---
    async fn record_bot_turn(&self, turn: BotTurn) -> Result<(), StoreError>;
    /// The last `n` bot turns of a conversation, newest first.
    async fn recent_bot_turns(
        &self,
        conversation: &str,
        n: u32,
    ) -> Result<Vec<RecentTurn>, StoreError>;
    /// Records a visitor's contact details, or updates their open request (one open
    /// request per visitor: new details replace old ones, a message not already in
    /// it is appended, up to 8,000 characters). Returns its id and whether it is new.
    /// In the same transaction the visitor's record takes the name, e-mail and phone
    /// given (a name or e-mail a signed identity vouched for is kept), and the
    /// conversation's contact form counts as answered.
    async fn create_offline_request(
        &self,
        request: OfflineRequest,
    ) -> Result<(i64, bool), StoreError>;
    /// Offline requests of the given sites, newest first, a page at a time.
    async fn offline_requests(
        &self,
        site_ids: &[String],
        page: Page,
    ) -> Result<Vec<OfflineRequest>, StoreError>;
    /// Stores (or replaces) the rating of a conversation.
    async fn rate(
        &self,
        conversation: &str,
        score: u8,
        comment: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn rating(&self, conversation: &str) -> Result<Option<(u8, Option<String>)>, StoreError>;
    /// Records an alert; `None` when the conversation already has one of that kind
    /// (one alert per conversation and kind).
    async fn create_alert(&self, alert: Alert) -> Result<Option<i64>, StoreError>;
    /// Alerts of the given sites, newest first, a page at a time.
    async fn alerts(&self, site_ids: &[String], page: Page) -> Result<Vec<Alert>, StoreError>;
    async fn bot_report(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<BotReport, StoreError>;

    // --- messages ---
    /// Commits a message with the conversation's next sequence number, or returns the
    /// committed original when `client_id` was seen before from the same author. The
    /// conversation's summary moves with it in the same statement: the preview, the
    /// unread count (a visitor's text adds one, an agent's reply clears it) and, for the
    /// first agent reply after a hand-off, the first-response time.
    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError>;
    /// Queues a message for commit and returns as soon as it is queued; the handle
    /// resolves when it is committed. Messages queued one after another are committed in
    /// that order, so a client may have several in flight without reordering.
    async fn append_queued(&self, message: NewMessage) -> Result<PendingAppend, StoreError>;
    /// Messages with `seq > after`, in order, at most `limit`.
    async fn messages_after(
        &self,
        conversation: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;
    /// The last `limit` messages with `seq < before`, in order.
    async fn messages_before(
        &self,
        conversation: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Waits until every write queued so far is committed (used at shutdown).
    async fn flush(&self) -> Result<(), StoreError>;
    /// Counters for `/metrics`.
    fn metrics(&self) -> &StoreMetrics;

    // --- operations: retention, a visitor's data on request, the audit log ---
    // (see [`maintenance`]; backups and restores work on the file, so they are
    // functions there, not methods)

    /// One retention batch of a site, as one writer job: deletes the oldest
    /// conversations closed before `closed_before` (within `budget`), with everything
    /// that hangs off them, after copying their report figures into the anonymous
    /// report facts; and callbacks left before it. Reports keep their figures.
    async fn retention_batch(
        &self,
        site_id: &str,
        closed_before: i64,
        budget: RetentionBudget,
    ) -> Result<RetentionBatch, StoreError>;
    /// One bounded step of the sweep of visitors: of the next `scan` visitors after
    /// rowid `after`, deletes those of a site in `cutoffs` (site id, cut-off) last seen
    /// before its cut-off that have no conversation and no callback left.
    async fn sweep_visitors(
        &self,
        cutoffs: &[(String, i64)],
        after: i64,
        scan: u32,
    ) -> Result<VisitorSweep, StoreError>;
    /// The ids of the visitors a selector matches.
    async fn find_visitors(&self, selector: &VisitorSelector) -> Result<Vec<String>, StoreError>;
    /// Everything stored about a visitor, read in one transaction (`None`: nothing).
    async fn export_visitor(&self, visitor_id: &str) -> Result<Option<VisitorRecord>, StoreError>;
    /// Erases a visitor (conversations, messages, bot turns, previews, ratings, alerts,
    /// callbacks, profile) and records it in the audit log, in one transaction; refuses
    /// while one of their conversations is open.
    async fn erase_visitor(&self, visitor_id: &str, note: AuditNote)
    -> Result<Erasure, StoreError>;
    async fn record_audit(&self, entry: NewAudit) -> Result<(), StoreError>;
    /// The newest `limit` entries of the audit log, newest first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    // --- REST API v1 (issue 17) ---
    /// Stores an API token (its hash only).
    async fn create_api_token(&self, token: NewApiToken) -> Result<ApiToken, StoreError>;
    /// A site's tokens, revoked ones too, newest first.
    async fn api_tokens(&self, site_id: &str) -> Result<Vec<ApiToken>, StoreError>;
    /// The token with this SHA-256, revoked or not.
    async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Revokes a token of the site ([`StoreError::NotFound`] for another site's).
    async fn revoke_api_token(&self, site_id: &str, id: &str, now: i64) -> Result<(), StoreError>;
    async fn touch_api_token(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// A page of a site's conversations, oldest change first ([`ConversationPage`]).
    async fn conversation_page(
        &self,
        site_id: &str,
        page: ConversationPage,
    ) -> Result<Vec<Conversation>, StoreError>;
    /// Creates a contact ([`StoreError::Conflict`] for a taken external id).
    async fn create_contact(&self, contact: NewContact) -> Result<Contact, StoreError>;
    /// Updates a contact of the site, recording each attribute change.
    async fn update_contact(
        &self,
        site_id: &str,
        id: &str,
        update: ContactUpdate,
    ) -> Result<Contact, StoreError>;
    async fn contact(&self, site_id: &str, id: &str) -> Result<Option<Contact>, StoreError>;
    async fn contact_by_external_id(
        &self,
        site_id: &str,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError>;
    /// Contacts of a site matching `search`, by id.
    async fn find_contacts(
        &self,
        site_id: &str,
        search: ContactSearch,
    ) -> Result<Vec<Contact>, StoreError>;
    /// The attribute changes of a contact of the site, oldest first.
    async fn contact_changes(
        &self,
        site_id: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<AttributeChange>, StoreError>;
    // --- webhooks (issue 17) ---
    async fn create_webhook_endpoint(
        &self,
        endpoint: NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint, StoreError>;
    /// The endpoints of the given sites, oldest first.
    async fn webhook_endpoints(
        &self,
        site_ids: &[String],
    ) -> Result<Vec<WebhookEndpoint>, StoreError>;
    async fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError>;
    async fn update_webhook_endpoint(
        &self,
        id: &str,
        update: WebhookEndpointUpdate,
    ) -> Result<WebhookEndpoint, StoreError>;
    /// Deletes an endpoint with its deliveries.
    async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), StoreError>;
    /// A new current secret; the old one signs too until `previous_expires_at` (ms).
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_expires_at: i64,
    ) -> Result<WebhookEndpoint, StoreError>;
    /// The sites that have an enabled endpoint.
    async fn webhook_sites(&self) -> Result<Vec<String>, StoreError>;
    /// The sites with an enabled endpoint, as the hub knows them: their messages leave
    /// a mark in their own transaction until their `message.created` is in the outbox.
    fn remember_webhook_sites(&self, sites: &[String]);
    /// Committed messages whose `message.created` never reached the outbox (a crash
    /// between the two commits), with their site, at most `limit`, in order.
    async fn webhook_pending_messages(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, Message)>, StoreError>;
    /// Queues an event's fan-out (one delivery per subscribed, enabled endpoint of its
    /// site) for the writer's next batch and returns once it is queued.
    async fn enqueue_webhook_event(
        &self,
        event: WebhookEvent,
    ) -> Result<PendingWebhook, StoreError>;
    /// Deliveries due at `now` (and queued at least `settle_ms` ago) whose conversation
    /// has no earlier one waiting for the same endpoint, soonest first.
    async fn due_webhook_deliveries(
        &self,
        now: i64,
        settle_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// When the next waiting delivery of an enabled endpoint is due.
    async fn next_webhook_due(&self, settle_ms: i64) -> Result<Option<i64>, StoreError>;
    /// Records an attempt and the endpoint's failures; returns the endpoint when this
    /// attempt disabled it (`policy`).
    async fn record_webhook_attempt(
        &self,
        attempt: WebhookAttempt,
        policy: DisablePolicy,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// An endpoint's deliveries, newest first, `before` an id.
    async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    async fn webhook_delivery(&self, id: i64) -> Result<Option<WebhookDelivery>, StoreError>;
    /// Queues a delivery again, same event id and body, due at `now`.
    async fn redeliver_webhook(&self, id: i64, now: i64) -> Result<(), StoreError>;
    // --- e-mail (issue 17) ---
    /// Sets how a conversation reaches its visitor.
    async fn email_set_channel(
        &self,
        conversation: &str,
        channel: Channel,
    ) -> Result<(), StoreError>;
    /// A conversation's channel (`None`: no such conversation).
    async fn email_channel(&self, conversation: &str) -> Result<Option<Channel>, StoreError>;
    /// Remembers a mail's `Message-ID` for threading (a known id is kept as it was).
    async fn email_record_message(&self, record: EmailRecord) -> Result<(), StoreError>;
    /// The conversation of the newest of these `Message-ID`s that is known.
    async fn email_thread_of(&self, message_ids: Vec<String>)
    -> Result<Option<String>, StoreError>;
    /// The newest `limit` `Message-ID`s of a conversation, oldest first (`References`).
    async fn email_thread_ids(
        &self,
        conversation: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Records a bounce or an auto-reply; a bounce marks its address failing.
    async fn email_record_event(&self, event: EmailEvent) -> Result<(), StoreError>;
    /// The newest bounces and auto-replies, newest first.
    async fn email_events(&self, limit: u32) -> Result<Vec<EmailEvent>, StoreError>;
    /// Whether mail to this address bounced.
    async fn email_failing(&self, address: &str) -> Result<bool, StoreError>;
    /// The visitor of a site with this e-mail (the most recent), or a new one with
    /// `new_id`.
    async fn email_visitor(
        &self,
        site_id: &str,
        email: &str,
        name: Option<String>,
        new_id: &str,
        now: i64,
    ) -> Result<String, StoreError>;
    /// Schedules the mail of unseen agent replies from `seq` at `due_at` (kept if one
    /// is already scheduled).
    async fn email_schedule_unseen(
        &self,
        conversation: &str,
        seq: u64,
        due_at: i64,
    ) -> Result<(), StoreError>;
    /// The visitor has seen everything up to `seq`: a scheduled mail is dropped.
    async fn email_visitor_seen(&self, conversation: &str, seq: u64) -> Result<(), StoreError>;
    /// Takes the scheduled mails due at `now` (at most `limit`), the oldest first.
    async fn email_due_unseen(&self, now: i64, limit: u32) -> Result<Vec<UnseenDue>, StoreError>;
    /// Remembers the visitor's request for a transcript (replacing an earlier one).
    async fn email_request_transcript(
        &self,
        request: TranscriptRequest,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Takes the transcript request of a conversation, if any.
    async fn email_take_transcript(
        &self,
        conversation: &str,
    ) -> Result<Option<TranscriptRequest>, StoreError>;
    /// Takes the conversations queued at `queued_before` or earlier whose agents were
    /// not told yet, and marks them told (at most `limit`, oldest first).
    async fn email_take_missed(
        &self,
        queued_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    // --- visitor events (issue 19): pages and proactive messages ---
    /// Records an event of a visitor of the site; [`StoreError::NotFound`] when the
    /// visitor is not the site's.
    async fn record_visitor_event(&self, event: NewVisitorEvent) -> Result<(), StoreError>;
    /// The newest events of these visitors (at most 100 visitors), newest first.
    async fn visitor_events(
        &self,
        visitor_ids: Vec<String>,
        limit: u32,
    ) -> Result<Vec<VisitorEvent>, StoreError>;
    // --- customer timeline (issue 19) ---
    /// One page of the customer's history as the console shows it beside a
    /// conversation ([`timeline`]): the conversations, offline requests and proactive
    /// messages of every visitor linked to `query.visitor_id` by a verified external
    /// id, and the pages of that visitor's current session, newest first. `None` for
    /// an unknown visitor.
    async fn customer_timeline(&self, query: TimelineQuery)
    -> Result<Option<Timeline>, StoreError>;

    // --- key accounts (issue 19) ---
    /// Records that a conversation is a key account's: the name of the rule that
    /// matched at its hand-off.
    async fn key_account_mark(&self, conversation: &str, rule: &str) -> Result<(), StoreError>;
    /// The first-response times (ms from hand-off to the first agent text) of the key
    /// accounts' conversations of `site_ids` created in `[from, to)`, deleted ones
    /// included (from their report facts), unordered.
    async fn key_account_first_responses(
        &self,
        site_ids: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<i64>, StoreError>;
    // --- proactive triggers (issue 19) ---
    /// How often each trigger of the site was shown, opened, replied to and converted
    /// from `since` (inclusive) to `until` (exclusive), ms since the epoch.
    async fn trigger_counts(
        &self,
        site_id: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<TriggerCount>, StoreError>;
}
