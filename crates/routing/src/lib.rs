//! Salam routing: which agent gets which chat.
//!
//! **Key design decision: a pure state machine.** A [`Router`] does no I/O, reads no
//! clock, starts no thread and never awaits. Time comes in as `now: u64` milliseconds on
//! every call that needs it, timers fire only inside [`Router::tick`], and every mutating
//! method returns the [`Effect`]s of that call (send this frame, write that state) for the
//! hub to execute. The hub keeps one `Router` per site behind a `std::sync::Mutex`; no
//! call blocks, so the lock is never held across an `.await`. Being deterministic, the
//! router is cheap to property-test and to replay from a log.
//!
//! # Parts
//!
//! - [`types`]: [`RouterConfig`], [`AgentSpec`], [`Presence`], [`ConversationState`],
//!   [`Effect`], [`RoutingError`] and the owned query views.
//! - `router`: the [`Router`]: agent and conversation records, per-department indexes,
//!   the drain loop and the timers.
//!
//! # Rules
//!
//! - **Who may get a new chat:** an agent who is Online, connected (not in the
//!   disconnect grace period) and below capacity (`AgentSpec::capacity`, else
//!   [`RouterConfig::default_capacity`]; offers count). Away keeps chats and gets none;
//!   Offline holds nothing.
//! - **Departments:** an agent serves the departments in their spec plus the general
//!   department ([`RouterConfig::general_department`], `""` by default), which everyone
//!   serves. Department names are free-form; a department nobody serves simply waits.
//! - **Which agent:** least loaded relative to capacity (`load / capacity`, compared
//!   exactly), ties to the one idle longest (since their last assignment or since they
//!   last became Online), then registration order. Ratio rather than raw count so that a
//!   10-seat agent with 3 chats (30 %) goes before a 2-seat agent with 1 chat (50 %).
//! - **Which chat:** per department, priority descending, then chats returned by an agent
//!   who went offline (front of their priority class), then first come first served.
//!   Across departments that share free agents, the same order decides.
//! - **Backlog drains at once:** every call that can free capacity or make an agent
//!   available (close, transfer, presence change, reconnect, capacity raised, a tick)
//!   assigns waiting chats before it returns. After any call, no queued chat has an
//!   eligible free agent (save one whose offer for it just lapsed, see below).
//! - **Grace:** [`Router::agent_disconnected`] starts [`RouterConfig::grace_ms`]; the
//!   agent keeps their chats but gets none. [`Router::agent_reconnected`] within it
//!   changes nothing else; otherwise [`Router::tick`] makes them Offline and returns their
//!   chats to the front of their queues, reassigned at once if possible.
//! - **Accept mode** ([`RouterConfig::accept_timeout_ms`]): automatic assignments are
//!   offers that must be [`accept`](Router::accept)ed before their deadline; a lapsed
//!   offer returns the chat to its old place and the agent is skipped for that chat for
//!   one more timeout. Manual [`take`](Router::take) and
//!   [`transfer_to_agent`](Router::transfer_to_agent) assign directly.
//! - **First-response SLA** ([`RouterConfig::first_response_target_ms`]): the clock starts
//!   at hand-off and restarts on every requeue or transfer; it stops at
//!   [`Router::agent_responded`]. A breach raises the priority by
//!   [`RouterConfig::sla_priority_boost`] and yields [`Effect::SlaBreached`].
//! - **Expected wait:** see [`Router::queue_position`].
//!
//! # Architecture invariants
//!
//! - Every known conversation is in exactly one state: bot, queued (in exactly one
//!   department queue), offered or assigned (in exactly one agent's chats), or closed.
//! - An assignment decision costs O(departments × log n), never O(total chats): queues
//!   are ordered sets per department, and free agents sit in a per-department ordered
//!   set keyed by (load ratio, idle since).
//! - Unknown ids from the hub are errors ([`RoutingError`]), never panics; a refused call
//!   changes nothing.

mod router;
pub mod types;

pub use router::Router;
pub use types::{
    AgentSpec, AgentView, ConversationState, Effect, Presence, QueuedChat, RequeueReason,
    RouterConfig, RoutingError,
};
