//! The public vocabulary of the router: configuration, inputs, effects, errors and views.

/// Site-level routing settings. Every field has a documented default (see [`Default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// Concurrent chats an agent may hold when their [`AgentSpec::capacity`] is `None`.
    /// Default 5.
    pub default_capacity: u32,
    /// How long a disconnected agent keeps their chats before becoming Offline.
    /// Default 60_000 ms.
    pub grace_ms: u64,
    /// `Some(ms)`: an assignment is first an offer that the agent must
    /// [`accept`](crate::Router::accept) within `ms`. `None` (default): assign directly.
    pub accept_timeout_ms: Option<u64>,
    /// First-response target: from hand-off (or requeue/transfer) to the first
    /// [`agent_responded`](crate::Router::agent_responded). `None` disables SLA tracking.
    /// Default `Some(60_000)`.
    pub first_response_target_ms: Option<u64>,
    /// Added to a conversation's priority when it breaches the first-response target.
    /// Default 10.
    pub sla_priority_boost: i32,
    /// How many recent handling times feed the expected-wait estimate. Default 50.
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
            accept_timeout_ms: None,
            first_response_target_ms: Some(60_000),
            sla_priority_boost: 10,
            handled_window: 50,
            default_handling_ms: 300_000,
            general_department: String::new(),
        }
    }
}

/// What the hub knows about an agent's seat: who, which departments, how many chats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSpec {
    pub id: String,
    /// Departments served besides the general one; duplicates are ignored.
    pub departments: Vec<String>,
    /// Per-agent capacity; `None` means [`RouterConfig::default_capacity`].
    pub capacity: Option<u32>,
}

/// The status an agent chose. A dropped socket is tracked separately (grace period),
/// see [`AgentView::disconnected_since`].
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
    /// Waiting in a department queue.
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
    /// The department's queue changed: push positions to visitors and the queue view to
    /// agents. Emitted at most once per department per call, at the end.
    QueueChanged { department: String },
    /// The conversation missed its first-response target; its priority is now `priority`.
    SlaBreached { conversation: String, priority: i32 },
    /// The agent is now Offline (grace ran out, or they said so).
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
    /// The agent is Away, Offline or disconnected.
    #[error("agent is not available")]
    NotAvailable,
    /// `take` needs a queued conversation.
    #[error("conversation is not queued")]
    NotQueued,
    /// The conversation is closed.
    #[error("conversation is already closed")]
    AlreadyClosed,
    /// `enqueue` on a conversation that is already queued, offered or assigned.
    #[error("conversation is already routed")]
    AlreadyRouted,
    /// A transfer of a conversation that is still with the bot.
    #[error("conversation is still with the bot")]
    NotRouted,
    /// `accept` of a conversation that is not offered to this agent.
    #[error("conversation is not offered to this agent")]
    NotOffered,
    /// `forget_closed` of a conversation that is not closed.
    #[error("conversation is not closed")]
    NotClosed,
}

/// One waiting chat, as shown to agents and used for visitor position updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedChat {
    pub conversation: String,
    pub department: String,
    pub priority: i32,
    /// When it joined this queue (hand-off, requeue or transfer time).
    pub waiting_since: u64,
    /// 1-based place within its department queue.
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
    /// Chats held, offers included.
    pub load: u32,
    /// Effective capacity (override or site default).
    pub capacity: u32,
    /// Declared departments, sorted (the general department is implicit).
    pub departments: Vec<String>,
}
