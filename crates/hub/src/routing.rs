//! Routing in the hub: one actor task owns every site's [`salam_routing::Router`].
//!
//! Connections send it commands through a bounded queue; it applies each to the pure
//! router with the current time and then carries out the returned effects (store
//! writes, frames to visitors and agents) *in order, before the next command*. So the
//! database and the clients always see routing decisions in the order they were made,
//! and no lock is ever held across an `.await`.

use crate::fanout::Audience;
use crate::service;
use crate::state::{AppState, now_ms};
use salam_protocol::{AgentStatus, ConversationState, Presence, ServerFrame};
use salam_routing::{AgentSpec, Effect, Router, RouterConfig, RoutingError};
use salam_store::Agent;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where a transfer goes.
#[derive(Debug, Clone)]
pub enum Target {
    Agent(String),
    Department(String),
}

/// What the routing actor can be asked.
pub enum Command {
    /// An agent socket greeted (presence online unless they chose away).
    Connected {
        agent: Agent,
        site_ids: Vec<String>,
    },
    /// An agent socket closed: the grace period starts when it was their last one.
    Disconnected {
        agent_id: String,
    },
    Presence {
        agent_id: String,
        presence: Presence,
    },
    /// A conversation was handed to people (it is `queued` in the store already).
    HandOff {
        site_id: String,
        conversation: String,
        department: String,
        priority: i32,
    },
    Closed {
        site_id: String,
        conversation: String,
    },
    Take {
        agent_id: String,
        site_id: String,
        conversation: String,
        reply: oneshot::Sender<Result<(), RoutingError>>,
    },
    Accept {
        agent_id: String,
        site_id: String,
        conversation: String,
        reply: oneshot::Sender<Result<(), RoutingError>>,
    },
    Transfer {
        site_id: String,
        conversation: String,
        to: Target,
        reply: oneshot::Sender<Result<(), RoutingError>>,
    },
    /// An agent answered in the conversation (stops the response-target clock).
    Responded {
        site_id: String,
        conversation: String,
    },
    /// A site's settings changed: its routing settings apply from now on.
    SiteSettingsChanged {
        site_id: String,
    },
    /// Re-attaches an assigned conversation after a restart.
    Restore {
        agent: Agent,
        site_id: String,
        conversation: String,
        department: String,
    },
    Snapshot {
        site_id: String,
        reply: oneshot::Sender<Snapshot>,
    },
    Tick,
}

/// A site's queue and agents, for the REST API and the bot's "is anyone there" check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    pub queue: Vec<QueueEntry>,
    pub agents: Vec<AgentStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueEntry {
    pub conversation: String,
    pub department: String,
    pub priority: i32,
    pub position: u32,
    pub waiting_since: u64,
    pub expected_wait_secs: u64,
}

impl Snapshot {
    /// Whether some agent is online (connected, not away) and could take a chat.
    pub fn anyone_online(&self) -> bool {
        self.agents
            .iter()
            .any(|agent| agent.presence == Presence::Online)
    }
}

/// Cheap handle to the actor.
#[derive(Clone)]
pub struct Routing {
    sender: mpsc::Sender<Command>,
}

impl Routing {
    /// Sends a command (waits if the queue is full; the actor never waits on callers).
    pub async fn send(&self, command: Command) {
        let _ = self.sender.send(command).await;
    }

    pub async fn snapshot(&self, site_id: &str) -> Snapshot {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Snapshot {
            site_id: site_id.to_owned(),
            reply,
        })
        .await;
        answer.await.unwrap_or_default()
    }

    /// Sends a command that carries a reply channel and waits for the answer.
    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<(), RoutingError>>) -> Command,
    ) -> Result<(), RoutingError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await;
        answer
            .await
            .unwrap_or(Err(RoutingError::UnknownConversation))
    }

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

    pub async fn accept(
        &self,
        agent_id: &str,
        site_id: &str,
        conversation: &str,
    ) -> Result<(), RoutingError> {
        self.ask(|reply| Command::Accept {
            agent_id: agent_id.to_owned(),
            site_id: site_id.to_owned(),
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

/// The routing configuration of the hub (`[routing]` in the config file).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Concurrent chats per agent unless the agent has their own capacity.
    pub default_capacity: u32,
    /// Seconds an agent keeps their chats after their socket drops.
    pub grace_secs: u32,
    /// First-response target in seconds; a chat past it gets its priority raised.
    pub first_response_target_secs: u32,
    /// How much a missed target raises the priority.
    pub sla_priority_boost: i32,
    /// Priority of a VIP visitor's conversation.
    pub vip_priority: i32,
    /// Close a conversation after this many seconds without a message (0: never).
    pub auto_close_secs: u32,
    /// When set, an agent must accept a chat within this many seconds or it passes to
    /// the next agent (0: chats are assigned directly).
    pub accept_timeout_secs: u32,
}

impl Default for RoutingConfig {
    fn default() -> RoutingConfig {
        RoutingConfig {
            default_capacity: 5,
            grace_secs: 60,
            first_response_target_secs: 60,
            sla_priority_boost: 10,
            vip_priority: 20,
            auto_close_secs: 30 * 60,
            accept_timeout_secs: 0,
        }
    }
}

struct Actor {
    state: AppState,
    config: RoutingConfig,
    routers: HashMap<String, Router>,
    /// Open agent sockets per agent.
    sockets: HashMap<String, u32>,
    /// Agents by id (name, sites) as last seen.
    agents: HashMap<String, Agent>,
    /// When each assigned conversation was assigned (for handling times).
    assigned_at: HashMap<String, u64>,
    /// Sites whose live views (agents, queue positions) changed since they were last
    /// pushed. Pushed once the command queue is empty: a storm of 500 reconnects costs
    /// one `agents` frame per site, not one per command to every agent (quadratic).
    dirty: HashMap<String, bool>,
}

/// The actor's queue; the actor itself starts once the shared state exists.
pub fn channel() -> (Routing, RoutingRunner) {
    let (sender, receiver) = mpsc::channel(4096);
    (
        Routing {
            sender: sender.clone(),
        },
        RoutingRunner {
            receiver,
            ticker: sender,
        },
    )
}

/// The not-yet-started actor.
pub struct RoutingRunner {
    receiver: mpsc::Receiver<Command>,
    ticker: mpsc::Sender<Command>,
}

impl RoutingRunner {
    pub fn spawn(self, state: AppState, config: RoutingConfig) {
        let RoutingRunner {
            mut receiver,
            ticker,
        } = self;
        // Time-driven work (grace expiry, response targets) runs on a one-second tick.
        let mut shutdown = state.shutdown.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
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
        tokio::spawn(async move {
            let mut actor = Actor {
                state,
                config,
                routers: HashMap::new(),
                sockets: HashMap::new(),
                agents: HashMap::new(),
                assigned_at: HashMap::new(),
                dirty: HashMap::new(),
            };
            while let Some(command) = receiver.recv().await {
                actor.handle(command).await;
                if receiver.is_empty() {
                    actor.push_views();
                }
            }
        });
    }
}

fn to_routing_presence(presence: Presence) -> salam_routing::Presence {
    match presence {
        Presence::Online => salam_routing::Presence::Online,
        Presence::Away => salam_routing::Presence::Away,
        Presence::Offline => salam_routing::Presence::Offline,
    }
}

/// The routing settings of one site: the hub's, with the site's own overrides.
fn router_config(hub: &RoutingConfig, site: &crate::site::SiteSettings) -> RouterConfig {
    let capacity = site.default_capacity.unwrap_or(hub.default_capacity).max(1);
    let target_secs = site
        .first_response_target_secs
        .unwrap_or(hub.first_response_target_secs);
    let accept_secs = site.accept_timeout_secs.unwrap_or(hub.accept_timeout_secs);
    RouterConfig {
        default_capacity: capacity,
        grace_ms: hub.grace_secs as u64 * 1000,
        accept_timeout_ms: (accept_secs > 0).then_some(accept_secs as u64 * 1000),
        first_response_target_ms: (target_secs > 0).then_some(target_secs as u64 * 1000),
        sla_priority_boost: hub.sla_priority_boost,
        ..RouterConfig::default()
    }
}

impl Command {
    /// The site a command is about, if it is about one.
    fn site(&self) -> Option<&str> {
        match self {
            Command::HandOff { site_id, .. }
            | Command::Closed { site_id, .. }
            | Command::Take { site_id, .. }
            | Command::Accept { site_id, .. }
            | Command::Transfer { site_id, .. }
            | Command::Responded { site_id, .. }
            | Command::Restore { site_id, .. }
            | Command::SiteSettingsChanged { site_id }
            | Command::Snapshot { site_id, .. } => Some(site_id),
            Command::Connected { .. }
            | Command::Disconnected { .. }
            | Command::Presence { .. }
            | Command::Tick => None,
        }
    }
}

impl Actor {
    /// The site's settings as stored (defaults when unreadable).
    async fn site_settings(&self, site_id: &str) -> crate::site::SiteSettings {
        match self.state.store.site_by_id(site_id).await {
            Ok(Some(site)) => crate::site::SiteSettings::parse(&site.settings),
            _ => crate::site::SiteSettings::default(),
        }
    }

    /// Creates the site's router with its settings if it does not exist yet.
    async fn ensure_router(&mut self, site_id: &str) {
        if !self.routers.contains_key(site_id) {
            let settings = self.site_settings(site_id).await;
            let config = router_config(&self.config, &settings);
            self.routers.insert(site_id.to_owned(), Router::new(config));
        }
    }

    /// The site's router (created by [`Actor::ensure_router`] before any command about
    /// the site; the hub's defaults otherwise).
    fn router(&mut self, site_id: &str) -> &mut Router {
        let config = &self.config;
        self.routers.entry(site_id.to_owned()).or_insert_with(|| {
            Router::new(router_config(config, &crate::site::SiteSettings::default()))
        })
    }

    fn spec(agent: &Agent) -> AgentSpec {
        AgentSpec {
            id: agent.id.clone(),
            departments: agent.departments.clone(),
            capacity: agent.capacity,
        }
    }

    async fn handle(&mut self, command: Command) {
        let now = now_ms().max(0) as u64;
        if let Some(site_id) = command.site() {
            let site_id = site_id.to_owned();
            self.ensure_router(&site_id).await;
        }
        if let Command::Connected { site_ids, .. } = &command {
            for site_id in site_ids.clone() {
                self.ensure_router(&site_id).await;
            }
        }
        match command {
            Command::SiteSettingsChanged { site_id } => {
                let settings = self.site_settings(&site_id).await;
                let config = router_config(&self.config, &settings);
                let effects = self.router(&site_id).reconfigure(config, now);
                self.apply(&site_id, effects).await;
            }
            Command::Connected { agent, site_ids } => {
                let count = self.sockets.entry(agent.id.clone()).or_insert(0);
                *count += 1;
                let first_socket = *count == 1;
                self.agents.insert(agent.id.clone(), agent.clone());
                for site_id in site_ids {
                    let router = self.router(&site_id);
                    let mut effects = router.upsert_agent(Self::spec(&agent), now);
                    if first_socket {
                        effects
                            .extend(router.agent_reconnected(&agent.id, now).unwrap_or_default());
                        let online = router
                            .agents()
                            .iter()
                            .find(|view| view.id == agent.id)
                            .is_some_and(|view| view.presence != salam_routing::Presence::Offline);
                        if !online {
                            effects.extend(
                                router
                                    .set_presence(&agent.id, salam_routing::Presence::Online, now)
                                    .unwrap_or_default(),
                            );
                        }
                    }
                    self.apply(&site_id, effects).await;
                }
            }
            Command::Disconnected { agent_id } => {
                let remaining = self.sockets.get_mut(&agent_id).map(|count| {
                    *count = count.saturating_sub(1);
                    *count
                });
                if remaining == Some(0) {
                    self.sockets.remove(&agent_id);
                    let sites: Vec<String> = self.routers.keys().cloned().collect();
                    for site_id in sites {
                        let effects = self
                            .router(&site_id)
                            .agent_disconnected(&agent_id, now)
                            .unwrap_or_default();
                        self.apply(&site_id, effects).await;
                    }
                }
            }
            Command::Presence { agent_id, presence } => {
                let sites: Vec<String> = self.routers.keys().cloned().collect();
                for site_id in sites {
                    let effects = self
                        .router(&site_id)
                        .set_presence(&agent_id, to_routing_presence(presence), now)
                        .unwrap_or_default();
                    self.apply(&site_id, effects).await;
                }
            }
            Command::HandOff {
                site_id,
                conversation,
                department,
                priority,
            } => {
                // A department nobody on the site serves goes to the general queue, so a
                // chat never waits for a team that does not exist.
                let router = self.router(&site_id);
                let served = router
                    .agents()
                    .iter()
                    .any(|agent| agent.departments.contains(&department));
                let department = if served { department } else { String::new() };
                let effects = router.enqueue(&conversation, &department, priority, now);
                match effects {
                    Ok(effects) => self.apply(&site_id, effects).await,
                    Err(err) => tracing::warn!(%conversation, error = %err, "enqueue refused"),
                }
            }
            Command::Closed {
                site_id,
                conversation,
            } => {
                if let Some(assigned) = self.assigned_at.remove(&conversation) {
                    self.router(&site_id)
                        .record_handled(now.saturating_sub(assigned));
                }
                let router = self.router(&site_id);
                let effects = router.close(&conversation, now).unwrap_or_default();
                let _ = router.forget_closed(&conversation);
                self.apply(&site_id, effects).await;
            }
            Command::Take {
                agent_id,
                site_id,
                conversation,
                reply,
            } => {
                let result = self.router(&site_id).take(&agent_id, &conversation, now);
                self.answer(&site_id, result, reply).await;
            }
            Command::Accept {
                agent_id,
                site_id,
                conversation,
                reply,
            } => {
                let result = self.router(&site_id).accept(&agent_id, &conversation, now);
                self.answer(&site_id, result, reply).await;
            }
            Command::Transfer {
                site_id,
                conversation,
                to,
                reply,
            } => {
                let router = self.router(&site_id);
                let result = match &to {
                    Target::Agent(agent) => router.transfer_to_agent(&conversation, agent, now),
                    Target::Department(department) => {
                        router.transfer_to_department(&conversation, department, now)
                    }
                };
                self.answer(&site_id, result, reply).await;
            }
            Command::Responded {
                site_id,
                conversation,
            } => {
                let effects = self
                    .router(&site_id)
                    .agent_responded(&conversation, now)
                    .unwrap_or_default();
                self.apply(&site_id, effects).await;
            }
            Command::Restore {
                agent,
                site_id,
                conversation,
                department,
            } => {
                // The agent counts as having just disconnected: they get their chats back
                // if they return within the grace period, else the chats are requeued.
                self.agents.insert(agent.id.clone(), agent.clone());
                let router = self.router(&site_id);
                router.upsert_agent(Self::spec(&agent), now);
                let _ = router.set_presence(&agent.id, salam_routing::Presence::Online, now);
                let _ = router.enqueue(&conversation, &department, 0, now);
                let _ = router.take(&agent.id, &conversation, now);
                let effects = router
                    .agent_disconnected(&agent.id, now)
                    .unwrap_or_default();
                self.assigned_at.insert(conversation, now);
                self.apply(&site_id, effects).await;
            }
            Command::Snapshot { site_id, reply } => {
                let snapshot = self.snapshot(&site_id);
                let _ = reply.send(snapshot);
            }
            Command::Tick => {
                let sites: Vec<String> = self.routers.keys().cloned().collect();
                for site_id in sites {
                    let effects = self.router(&site_id).tick(now);
                    if !effects.is_empty() {
                        self.apply(&site_id, effects).await;
                    }
                }
            }
        }
    }

    /// Answers a request and carries out its effects.
    async fn answer(
        &mut self,
        site_id: &str,
        result: Result<Vec<Effect>, RoutingError>,
        reply: oneshot::Sender<Result<(), RoutingError>>,
    ) {
        match result {
            Ok(effects) => {
                let _ = reply.send(Ok(()));
                self.apply(site_id, effects).await;
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    fn snapshot(&mut self, site_id: &str) -> Snapshot {
        self.router(site_id);
        let Some(router) = self.routers.get(site_id) else {
            return Snapshot {
                queue: Vec::new(),
                agents: Vec::new(),
            };
        };
        let agents_by_id = &self.agents;
        let queue = router
            .queue_snapshot(None)
            .into_iter()
            .map(|chat| QueueEntry {
                conversation: chat.conversation,
                department: chat.department,
                priority: chat.priority,
                position: chat.position,
                waiting_since: chat.waiting_since,
                expected_wait_secs: chat.expected_wait_ms.div_ceil(1000),
            })
            .collect();
        let agents = router
            .agents()
            .into_iter()
            .map(|view| AgentStatus {
                name: agents_by_id
                    .get(&view.id)
                    .map(|agent| agent.name.clone())
                    .unwrap_or_default(),
                presence: match view.presence {
                    salam_routing::Presence::Online if view.disconnected_since.is_some() => {
                        Presence::Away
                    }
                    salam_routing::Presence::Online => Presence::Online,
                    salam_routing::Presence::Away => Presence::Away,
                    salam_routing::Presence::Offline => Presence::Offline,
                },
                id: view.id,
                load: view.load,
                capacity: view.capacity,
                departments: view.departments,
            })
            .collect();
        Snapshot { queue, agents }
    }

    /// Carries out effects in order, then pushes the live views.
    async fn apply(&mut self, site_id: &str, effects: Vec<Effect>) {
        let state = self.state.clone();
        let mut queues_changed = false;
        for effect in effects {
            match effect {
                Effect::Assigned {
                    conversation,
                    agent,
                } => {
                    self.assigned_at
                        .insert(conversation.clone(), now_ms().max(0) as u64);
                    let name = self
                        .agents
                        .get(&agent)
                        .map(|agent| agent.name.clone())
                        .unwrap_or_else(|| "an agent".into());
                    if let Ok(Some(found)) = state.store.conversation(&conversation).await
                        && let Err(err) = service::change_state(
                            &state,
                            &found,
                            ConversationState::Assigned,
                            Some(&agent),
                            &format!("{name} joined the conversation"),
                        )
                        .await
                    {
                        tracing::warn!(%conversation, error = %err, "assignment not stored");
                    }
                }
                Effect::Requeued {
                    conversation,
                    department,
                    ..
                } => {
                    self.assigned_at.remove(&conversation);
                    if let Ok(Some(found)) = state.store.conversation(&conversation).await {
                        let requeued = state
                            .store
                            .hand_off(
                                &conversation,
                                &department,
                                found.priority,
                                "requeued",
                                now_ms(),
                            )
                            .await;
                        if requeued.is_ok() {
                            let _ = service::change_state(
                                &state,
                                &found,
                                ConversationState::Queued,
                                None,
                                "back in the queue for the next available agent",
                            )
                            .await;
                        }
                    }
                    queues_changed = true;
                }
                Effect::SlaBreached {
                    conversation,
                    priority,
                } => {
                    let _ = state.store.set_priority(&conversation, priority).await;
                    if let Ok(Some(found)) = state.store.conversation(&conversation).await {
                        service::announce(&state, &found);
                    }
                    queues_changed = true;
                }
                Effect::Queued { .. } | Effect::QueueChanged { .. } => queues_changed = true,
                Effect::Offered {
                    conversation,
                    agent,
                    deadline,
                } => {
                    service::publish_frame(
                        &state,
                        site_id,
                        None,
                        Audience::Agents,
                        None,
                        &ServerFrame::Offer {
                            conversation,
                            agent,
                            deadline: deadline as i64,
                        },
                    );
                }
                Effect::OfferExpired { .. } | Effect::AgentOffline { .. } => {}
            }
        }
        let queues = self.dirty.entry(site_id.to_owned()).or_insert(false);
        *queues |= queues_changed;
    }

    /// Pushes the live views of the sites changed since the last push.
    fn push_views(&mut self) {
        let state = self.state.clone();
        for (site_id, queues_changed) in std::mem::take(&mut self.dirty) {
            let site_id = site_id.as_str();
            let snapshot = self.snapshot(site_id);
            if queues_changed {
                for entry in &snapshot.queue {
                    service::publish_frame(
                        &state,
                        site_id,
                        Some(&entry.conversation),
                        Audience::Visitor,
                        None,
                        &ServerFrame::Queue {
                            conversation: entry.conversation.clone(),
                            position: entry.position,
                            wait_secs: entry.expected_wait_secs,
                        },
                    );
                }
            }
            service::publish_frame(
                &state,
                site_id,
                None,
                Audience::Agents,
                None,
                &ServerFrame::Agents {
                    agents: snapshot.agents,
                },
            );
        }
    }
}
