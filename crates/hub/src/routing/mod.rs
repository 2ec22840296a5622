//! Routing in the hub: an actor that owns the one [`salam_routing::Router`] of every
//! site, and an executor that carries out what it decides.
//!
//! - **The actor** ([`actor`]) takes [`Command`]s from a bounded queue, applies each to
//!   the pure router with the current time and turns the resulting effects into work
//!   for the executor. It does no I/O and never waits on the store: everything it needs
//!   (agents, sites and their policies, conversations) comes in the commands. Once its
//!   queue is empty it hands the executor one batch and publishes a fresh [`View`].
//! - **The executor** ([`executor`]) applies each batch in order: state changes in the
//!   store by compare-and-set (`from → to`, with their system line, in one transaction),
//!   so a stale decision (an assignment racing a close) is refused, never applied over
//!   a newer state; then the frames. A refused change goes back to the actor as a
//!   [`Command::Reconcile`], so the router forgets a chat the database closed.
//! - **Views** (queues, agents, who is online) are published snapshots
//!   (`tokio::sync::watch`): `/api/agents`, `/api/queue`, `/api/widget/{key}` and the
//!   bot's "is anyone there" read them without waiting on the actor.
//!
//! Take, accept and transfer are answered once their assignment is committed.

pub mod actor;
pub mod executor;

use salam_protocol::{AgentStatus, ConversationState, Presence};
use salam_routing::{RoutingError, SitePolicy};
use salam_store::{Agent, Conversation};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Where a transfer goes.
#[derive(Debug, Clone)]
pub enum Target {
    Agent(String),
    Department(String),
}

/// The answer to a take, accept or transfer.
pub type Reply = oneshot::Sender<Result<(), RoutingError>>;

/// What the routing actor can be told.
pub enum Command {
    /// An agent account was created or changed (sites, capacity, departments, role,
    /// disabled), as the store has it now.
    Agent(Box<Agent>),
    /// An agent socket greeted.
    Connected { agent_id: String, connection: u64 },
    /// An agent socket closed.
    Disconnected { agent_id: String, connection: u64 },
    /// The agent chose a status (in any of their consoles).
    Presence {
        agent_id: String,
        presence: Presence,
    },
    /// A site was created or its routing settings changed.
    Site {
        site_id: String,
        policy: SitePolicy,
        /// The site's `callback_after_secs` (0: offer a callback only when nobody is
        /// online).
        callback_after_secs: u64,
    },
    /// A conversation was handed to people (it is `queued` in the store already).
    HandOff {
        site_id: String,
        conversation: String,
        department: String,
        priority: i32,
        /// An agent to try first (a key account's owner, issue 19).
        preferred_agent: Option<String>,
    },
    /// A conversation was closed in the store.
    Closed { conversation: String },
    Take {
        agent_id: String,
        site_id: String,
        conversation: String,
        reply: Reply,
    },
    Accept {
        agent_id: String,
        conversation: String,
        reply: Reply,
    },
    Transfer {
        site_id: String,
        conversation: String,
        to: Target,
        reply: Reply,
    },
    /// An agent answered in the conversation (stops the response-target clock).
    Responded { conversation: String },
    /// The executor found the conversation in another state than the router thought
    /// (the store is the truth: a closed one is closed).
    Reconcile {
        conversation: String,
        state: ConversationState,
    },
    /// After a start: what the database holds.
    Restore(Box<Restore>),
    /// Timers (grace periods, offers, response targets); sent every second.
    Tick,
    /// Forget everything (several hubs: this hub gained or lost routing ownership; a
    /// [`Command::Restore`] follows when it gained it).
    Reset,
}

/// What the router is rebuilt from at start.
#[derive(Default)]
pub struct Restore {
    /// Each site's policy and `callback_after_secs`.
    pub sites: Vec<(String, SitePolicy, u64)>,
    pub agents: Vec<Agent>,
    /// Queued and assigned conversations.
    pub conversations: Vec<Conversation>,
}

/// The live routing views, published after every batch of commands.
#[derive(Debug, Default)]
pub struct View {
    pub sites: HashMap<String, Arc<SiteView>>,
    /// Every known agent's status (presence, load across all sites).
    pub agents: HashMap<String, AgentStatus>,
}

impl View {
    /// One site's view (empty for a site routing has not heard of yet).
    pub fn site(&self, site_id: &str) -> Arc<SiteView> {
        self.sites.get(site_id).cloned().unwrap_or_default()
    }
}

/// A site's queue and agents, for the REST API and the bot's "is anyone there" check.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SiteView {
    pub queue: Vec<QueueEntry>,
    pub agents: Vec<AgentStatus>,
}

impl SiteView {
    /// Whether some agent of the site is online (connected, not away) and could take a
    /// chat.
    pub fn anyone_online(&self) -> bool {
        self.agents
            .iter()
            .any(|agent| agent.presence == Presence::Online)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueEntry {
    pub conversation: String,
    pub department: String,
    pub priority: i32,
    pub position: u32,
    pub waiting_since: u64,
    pub expected_wait_secs: u64,
    /// Whether an agent who could take it is online now.
    pub agents_online: bool,
    /// Whether to offer the visitor a callback: nobody is online, or the expected
    /// wait is at least the site's `callback_after_secs` (when that is not 0).
    pub offer_callback: bool,
}

/// Cheap handle to the actor and its views.
#[derive(Clone)]
pub struct Routing {
    sender: mpsc::Sender<Command>,
    views: watch::Receiver<Arc<View>>,
}

impl Routing {
    /// Sends a command (waits if the queue is full; the actor never waits on callers).
    pub async fn send(&self, command: Command) {
        let _ = self.sender.send(command).await;
    }

    /// The views as last published; never waits.
    pub fn view(&self) -> Arc<View> {
        self.views.borrow().clone()
    }

    /// A receiver of every new view (tests and the console's live view wait on it).
    pub fn views(&self) -> watch::Receiver<Arc<View>> {
        self.views.clone()
    }

    /// Sends a command that carries a reply channel and waits for the answer.
    async fn ask(&self, command: impl FnOnce(Reply) -> Command) -> Result<(), RoutingError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await;
        answer
            .await
            .unwrap_or(Err(RoutingError::UnknownConversation))
    }

    /// The agent takes the conversation; answered once the assignment is committed.
    pub async fn take(
        &self,
        agent_id: &str,
        site_id: &str,
        conversation: &str,
    ) -> Result<(), RoutingError> {
        self.ask(|reply| Command::Take {
            agent_id: agent_id.to_owned(),
            site_id: site_id.to_owned(),
            conversation: conversation.to_owned(),
            reply,
        })
        .await
    }

    pub async fn accept(&self, agent_id: &str, conversation: &str) -> Result<(), RoutingError> {
        self.ask(|reply| Command::Accept {
            agent_id: agent_id.to_owned(),
            conversation: conversation.to_owned(),
            reply,
        })
        .await
    }

    pub async fn transfer(
        &self,
        site_id: &str,
        conversation: &str,
        to: Target,
    ) -> Result<(), RoutingError> {
        self.ask(|reply| Command::Transfer {
            site_id: site_id.to_owned(),
            conversation: conversation.to_owned(),
            to,
            reply,
        })
        .await
    }
}

/// The bound of the actor's command queue.
const COMMAND_QUEUE: usize = 4096;
/// The bound of the queue of batches from the actor to the executor.
const BATCH_QUEUE: usize = 64;

impl Routing {
    /// A handle whose commands go to `sender` and whose views come from `views` (several
    /// hubs: the cluster's routing front, [`crate::cluster::routing`]).
    pub fn from_parts(sender: mpsc::Sender<Command>, views: watch::Receiver<Arc<View>>) -> Routing {
        Routing { sender, views }
    }
}

/// The bound of the cluster front's queue (the same as the actor's).
pub const FRONT_QUEUE: usize = COMMAND_QUEUE;

/// The actor's queue and views; the actor and the executor start once the shared
/// parts exist ([`RoutingRunner::spawn`]).
pub fn channel() -> (Routing, RoutingRunner) {
    let (sender, receiver) = mpsc::channel(COMMAND_QUEUE);
    let (views_tx, views) = watch::channel(Arc::new(View::default()));
    (
        Routing {
            sender: sender.clone(),
            views,
        },
        RoutingRunner {
            receiver,
            sender,
            views: views_tx,
        },
    )
}

/// The not-yet-started actor.
pub struct RoutingRunner {
    receiver: mpsc::Receiver<Command>,
    sender: mpsc::Sender<Command>,
    views: watch::Sender<Arc<View>>,
}

impl RoutingRunner {
    /// Starts the actor, the executor and the one-second tick.
    pub fn spawn(
        self,
        config: salam_routing::RouterConfig,
        executor: executor::Executor,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let RoutingRunner {
            receiver,
            sender,
            views,
        } = self;
        let (batches_tx, batches) = mpsc::channel(BATCH_QUEUE);
        let ticker = sender.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = interval.tick() => {
                        if ticker.try_send(Command::Tick).is_err() && ticker.is_closed() {
                            return;
                        }
                    }
                }
            }
        });
        tokio::spawn(executor.run(batches, sender));
        tokio::spawn(actor::Actor::new(config, batches_tx, views).run(receiver));
    }
}
