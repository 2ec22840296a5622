//! Salam routing: which agent gets which chat, across every site of a hub.
//!
//! **Key design decision: a pure state machine, per agent.** A [`Router`] does no I/O,
//! reads no clock, starts no thread and never awaits. Time comes in as `now: u64`
//! milliseconds on every call that needs it, timers fire only inside [`Router::tick`],
//! and every mutating method returns the [`Effect`]s of that call (assign this chat,
//! requeue that one, the agent went offline) for the hub to execute. One router holds
//! every site: an agent has **one** capacity and **one** presence across all their
//! sites and sockets, and a site and a department are attributes of a conversation
//! that the policy matches against the agent. The hub owns the router inside a single
//! actor task that applies commands and hands the effects to an executor; being
//! deterministic, the router is cheap to property-test and to replay from a log.
//!
//! # Parts
//!
//! - [`types`]: [`RouterConfig`], [`SitePolicy`], [`AgentSpec`], [`Sites`],
//!   [`Presence`], [`ConversationState`], [`Effect`], [`RoutingError`], [`Restore`]
//!   and the owned query views.
//! - `router`: the [`Router`]: agent and conversation records, a queue per site and
//!   department, the drain loop and the timers.
//!
//! # Rules
//!
//! - **Sites.** An agent works on [`Sites::All`] (including sites registered later,
//!   with [`Router::set_site`] or by their first conversation) or on a list. A chat of a
//!   site goes only to an agent of that site; an agent who loses a site (or is retired,
//!   [`Router::retire_agent`]) gives its chats back to the queue.
//! - **Presence and sockets.** [`Router::agent_connected`] and
//!   [`Router::agent_disconnected`] count the agent's sockets (by connection id). On
//!   the first socket an agent comes back as what they last chose with
//!   [`Router::set_presence`] (Online unless they chose Away); when the last one closes
//!   the grace period starts ([`RouterConfig::grace_ms`]): they keep their chats but
//!   get none, and unless a socket opens in time [`Router::tick`] makes them Offline and
//!   returns their chats to the front of their queues. Every change of the shown
//!   presence is an [`Effect::PresenceChanged`].
//! - **Who may get a new chat:** an active agent of the chat's site who is Online, has
//!   a socket open and is below capacity (`AgentSpec::capacity`, else
//!   [`RouterConfig::default_capacity`], counted across all sites; offers count). Away
//!   keeps chats and gets none; Offline holds nothing.
//! - **Departments:** an agent serves the departments in their spec plus the general
//!   department ([`RouterConfig::general_department`], `""` by default), which everyone
//!   serves, on each of their sites. A hand-off ([`Router::enqueue`]) to a department
//!   that no agent of the site serves waits in the site's general queue instead, so a
//!   chat never waits for a team that does not exist; one to a served department whose
//!   agents are away waits for them. A transfer to an unserved department is refused.
//! - **Which agent:** least loaded relative to capacity (`load / capacity`, compared
//!   exactly), ties to the one idle longest (since their last assignment or since they
//!   last became Online), then registration order. A chat handed off with a preferred
//!   agent ([`Router::enqueue_preferring`], a key account's owner) goes to that agent
//!   whenever they are free for it, before anyone else; capacity and the other rules
//!   hold as for everyone.
//! - **Which chat:** per queue (site and department), priority descending, then chats
//!   returned by an agent who went offline (front of their priority class), then first
//!   come first served. Across queues that share free agents, the same order decides.
//! - **Backlog drains at once:** every call that can free capacity or make an agent
//!   available (close, transfer, presence change, connect, capacity raised, a new site,
//!   a tick) assigns waiting chats before it returns. After any call, no queued chat has
//!   an eligible free agent (save one whose offer for it just lapsed, see below).
//! - **By hand:** [`Router::take`] and [`Router::transfer_to_agent`] work from every
//!   open state, the bot's included, and assign directly.
//! - **Accept mode** ([`SitePolicy::accept_timeout_ms`]): automatic assignments are
//!   offers that must be [`accept`](Router::accept)ed before their deadline; a lapsed
//!   offer returns the chat to its old place and the agent is skipped for that chat for
//!   one more timeout.
//! - **First-response SLA** ([`SitePolicy::first_response_target_ms`]): the clock starts
//!   at hand-off and restarts on every requeue or transfer; it stops at
//!   [`Router::agent_responded`]. A breach raises the priority by
//!   [`RouterConfig::sla_priority_boost`] and yields [`Effect::SlaBreached`].
//! - **Expected wait:** see [`Router::queue_position`]; handling times (assignment to
//!   close) are kept per site.
//! - **Restart:** [`Router::restore`] rebuilds the state from what the database holds.
//!
//! # Architecture invariants
//!
//! - Every known conversation is in exactly one state: bot, queued (in exactly one
//!   queue), offered or assigned (in exactly one agent's chats), or closed.
//! - No agent holds more chats than their capacity through an automatic assignment,
//!   a take or a transfer, whatever the number of their sites.
//! - An assignment decision costs O(waiting queues × log n), never O(total chats):
//!   queues are ordered sets, and free agents sit in a per-queue ordered set keyed by
//!   (load ratio, idle since). An agent's load change costs O(queues they serve × log n).
//! - Unknown ids from the hub are errors ([`RoutingError`]), never panics; a refused call
//!   changes nothing.

mod router;
pub mod types;

pub use router::Router;
pub use types::{
    AgentSpec, AgentView, ConversationState, Effect, Presence, QueuedChat, RequeueReason, Restore,
    RestoredConversation, RouterConfig, RoutingError, SitePolicy, Sites,
};
