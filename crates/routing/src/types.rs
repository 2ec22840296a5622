//! The public vocabulary of the router: configuration, inputs, effects, errors and views.

/// Hub-wide routing settings. Every field has a documented default (see [`Default`]).
/// Per-site overrides of the accept timeout and the first-response target are given
/// with [`Router::set_site`](crate::Router::set_site) as a [`SitePolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// Concurrent chats an agent may hold, across all their sites, when their
    /// [`AgentSpec::capacity`] is `None`. Default 5.
    pub default_capacity: u32,
    /// How long an agent whose last socket closed keeps their chats before becoming
    /// Offline. Default 60_000 ms.
    pub grace_ms: u64,
    /// The policy of a site that [`Router::set_site`](crate::Router::set_site) was not
    /// called for. Default: assign directly, first-response target 60 s.
    pub default_policy: SitePolicy,
    /// Added to a conversation's priority when it breaches the first-response target.
    /// Default 10.
    pub sla_priority_boost: i32,
    /// How many recent handling times per site feed its expected-wait estimate.
    /// Default 50.
    pub handled_window: usize,
    /// Handling time assumed before any has been recorded. Default 300_000 ms (5 min).
    pub default_handling_ms: u64,
    /// The general department. Every agent serves it in addition to their own
    /// departments. Default `""`.
    pub general_department: String,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            default_capacity: 5,
            grace_ms: 60_000,
            default_policy: SitePolicy::default(),
            sla_priority_boost: 10,
            handled_window: 50,
            default_handling_ms: 300_000,
            general_department: String::new(),
        }
    }
}

/// What a site may set for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SitePolicy {
    /// `Some(ms)`: an automatic assignment is first an offer that the agent must
    /// [`accept`](crate::Router::accept) within `ms`. `None` (default): assign directly.
    pub accept_timeout_ms: Option<u64>,
    /// First-response target: from hand-off (or requeue/transfer) to the first
    /// [`agent_responded`](crate::Router::agent_responded). `None` disables SLA
    /// tracking. Default `Some(60_000)`.
    pub first_response_target_ms: Option<u64>,
}

impl Default for SitePolicy {
    fn default() -> Self {
        SitePolicy {
            accept_timeout_ms: None,
            first_response_target_ms: Some(60_000),
        }
    }
}

/// The sites an agent works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sites {
    /// Every site, including sites registered later.
    All,
    /// These sites only (duplicates are ignored).
    Only(Vec<String>),
}

impl Sites {
    /// Whether `site` is one of them.
    pub fn includes(&self, site: &str) -> bool {
        match self {
            Sites::All => true,
            Sites::Only(sites) => sites.iter().any(|own| own == site),
        }
    }
}

/// What the hub knows about an agent's seat: who, which sites and departments, how many
/// chats at once across all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSpec {
    pub id: String,
    pub sites: Sites,
    /// Departments served besides the general one, on every site of the agent;
    /// duplicates are ignored.
    pub departments: Vec<String>,
    /// Per-agent capacity across all sites; `None` means
    /// [`RouterConfig::default_capacity`].
    pub capacity: Option<u32>,
}

/// An agent's status. While at least one socket of the agent is open it is the status
/// they chose (Online or Away, or Offline if they said so); with no socket it is
/// Offline once the grace period is over (see [`AgentView::disconnected_since`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Presence {
    /// Takes new chats.
    Online,
    /// Keeps current chats, gets no new ones.
    Away,
    /// Holds nothing.
    Offline,
}

/// Where one conversation is. Exactly one of these at any time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversationState {
    /// Still with the bot.
    Bot,
    /// Waiting in a department queue of its site.
    Queued { department: String },
    /// Assigned, pending the agent's acceptance (accept mode only). Counts against the
    /// agent's capacity like an assignment.
    Offered { agent: String, deadline: u64 },
    /// Held by an agent.
    Assigned { agent: String },
    /// Finished.
    Closed,
}

/// Why a conversation went back to a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequeueReason {
    /// The agent's disconnect grace period ran out; requeued at the front of its priority.
    GraceExpired,
    /// The agent set themselves Offline; requeued at the front of its priority.
    AgentWentOffline,
    /// The agent no longer works on the conversation's site, or their account was
    /// retired (disabled); requeued at the front of its priority.
    AccessRevoked,
    /// A pending offer was withdrawn because the agent went Away or lost the connection;
    /// the chat keeps its old place in the queue.
    OfferWithdrawn,
    /// Transferred to a department; joins the back of its priority class.
    TransferredToDepartment,
}

/// An instruction for the hub. Every mutating [`Router`](crate::Router) method returns
/// the effects of that call, in the order they happened; the hub executes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The agent now holds the conversation.
    Assigned { conversation: String, agent: String },
    /// The agent must accept the conversation before `deadline` (accept mode).
    Offered {
        conversation: String,
        agent: String,
        deadline: u64,
    },
    /// The agent let the offer lapse; the chat is back in the queue (and probably
    /// offered to someone else later in the same effect list).
    OfferExpired { conversation: String, agent: String },
    /// A new hand-off is waiting in a queue (not emitted if it was assigned at once).
    /// `department` is where it waits: the general department when nobody on the site
    /// serves the department it was handed to.
    Queued {
        conversation: String,
        department: String,
    },
    /// A conversation went back to a queue; `from_agent` held it before, if anyone.
    Requeued {
        conversation: String,
        department: String,
        from_agent: Option<String>,
        reason: RequeueReason,
    },
    /// A queue changed: push positions to its visitors and the queue view to agents.
    /// Emitted at most once per queue per call, at the end.
    QueueChanged { site: String, department: String },
    /// The conversation missed its first-response target; its priority is now `priority`.
    SlaBreached { conversation: String, priority: i32 },
    /// The agent's presence (as [`AgentView::presence`] shows it) changed.
    PresenceChanged { agent: String, presence: Presence },
    /// The agent is now Offline (grace ran out, they said so, or they were retired).
    AgentOffline { agent: String },
}

/// Why the router refused a call. Nothing changed when an error is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RoutingError {
    /// No agent with that id was registered with [`upsert_agent`](crate::Router::upsert_agent).
    #[error("unknown agent")]
    UnknownAgent,
    /// No conversation with that id is known to the router.
    #[error("unknown conversation")]
    UnknownConversation,
    /// The agent already holds as many chats as their capacity.
    #[error("agent is at capacity")]
    OverCapacity,
    /// The agent is Away, Offline, disconnected or retired.
    #[error("agent is not available")]
    NotAvailable,
    /// The agent does not work on the conversation's site.
    #[error("agent does not work on this site")]
    NotOnSite,
    /// The conversation belongs to another site than the one given.
    #[error("conversation belongs to another site")]
    WrongSite,
    /// The conversation is closed.
    #[error("conversation is already closed")]
    AlreadyClosed,
    /// `enqueue` on a conversation that is already queued, offered or assigned.
    #[error("conversation is already routed")]
    AlreadyRouted,
    /// `accept` of a conversation that is not offered to this agent.
    #[error("conversation is not offered to this agent")]
    NotOffered,
    /// `forget_closed` of a conversation that is not closed.
    #[error("conversation is not closed")]
    NotClosed,
    /// A transfer to a department that no agent of the site serves.
    #[error("no agent of this site serves that department")]
    UnservedDepartment,
}

/// One waiting chat, as shown to agents and used for visitor position updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedChat {
    pub conversation: String,
    pub site: String,
    pub department: String,
    pub priority: i32,
    /// When it joined this queue (hand-off, requeue or transfer time).
    pub waiting_since: u64,
    /// 1-based place within its queue (its site and department).
    pub position: u32,
    /// See [`Router::queue_position`](crate::Router::queue_position) for the formula.
    pub expected_wait_ms: u64,
    /// Requeued because its agent went offline: ahead of others of its priority.
    pub requeued_to_front: bool,
}

/// One agent, as shown in the console's team view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentView {
    pub id: String,
    pub presence: Presence,
    /// `Some(t)` while in the disconnect grace period that started at `t`.
    pub disconnected_since: Option<u64>,
    /// Open sockets of the agent.
    pub sockets: u32,
    /// Chats held across all sites, offers included.
    pub load: u32,
    /// Effective capacity across all sites (override or default).
    pub capacity: u32,
    /// Declared departments, sorted (the general department is implicit).
    pub departments: Vec<String>,
    pub sites: Sites,
    /// Retired (disabled): holds nothing and takes nothing until registered again.
    pub retired: bool,
}

impl AgentView {
    /// Whether this agent may get a new chat now: Online, connected, below capacity.
    pub fn can_take_new_chat(&self) -> bool {
        self.presence == Presence::Online
            && self.sockets > 0
            && !self.retired
            && self.load < self.capacity
    }
}

/// What [`Router::restore`](crate::Router::restore) rebuilds the router from after a
/// restart: the agents with the status they chose, and the open routed conversations.
#[derive(Clone, Debug, Default)]
pub struct Restore {
    /// Every active agent and the status they chose last (Online or Away).
    pub agents: Vec<(AgentSpec, Presence)>,
    /// Conversations that were queued or assigned when the hub stopped.
    pub conversations: Vec<RestoredConversation>,
}

/// One open routed conversation, as the database has it.
#[derive(Clone, Debug)]
pub struct RestoredConversation {
    pub id: String,
    pub site: String,
    pub department: String,
    pub priority: i32,
    /// When it joined its queue (for queued ones) or was assigned.
    pub since: u64,
    /// The agent holding it; `None` for a queued one.
    pub agent: Option<String>,
}
