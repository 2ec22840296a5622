//! Routing with several hubs: one owner at a time, and every other hub forwards.
//!
//! Every hub runs the routing actor and executor ([`crate::routing`]), but only the
//! hub that holds the routing lease ([`salam_store::postgres::ClusterLease`]) feeds
//! it. The **front** (this module's task) stands between the hub's [`Routing`] handle
//! and its actor:
//!
//! - **As the owner**, commands go to the local actor; commands other hubs forward
//!   (`salam.routing.cmd`) are turned back into commands, and their answers (take,
//!   accept, transfer) go back to the asking hub. The actor's views are published
//!   locally and on `salam.routing.view`.
//! - **Not the owner**, commands are forwarded; a take, accept or transfer waits for
//!   the owner's answer (or fails with `NotAvailable` when no owner answers). The
//!   views are the owner's last.
//! - **Gaining ownership**: the actor forgets everything ([`Command::Reset`]), is
//!   rebuilt from the database ([`Command::Restore`]), then every hub is asked to
//!   announce its agent connections (`salam.routing.owner`) and this hub announces
//!   its own. Agents of a hub that died are not announced: routing counts their
//!   sockets as gone and their grace period runs.
//! - **Losing it** (the lease's session ended): the actor forgets everything and the
//!   hub forwards from then on.
//! - **Heartbeats**: every hub says it is alive on `salam.hub.alive` every
//!   [`HEARTBEAT`], with its incarnation and whether it owns routing. The owner counts
//!   a hub silent for [`HUB_SILENT_AFTER`] as dead, and a hub number back with a new
//!   incarnation as restarted: each agent socket it had announced is disconnected (the
//!   grace period applies). A hub that sees a new owner in the heartbeats announces its
//!   agents to it, in case it missed the owner's request.
//! - **A command that cannot be forwarded** (the bus is full or reconnecting) waits in
//!   a bounded buffer ([`RETRY_BUFFER`]) and is tried again at the next heartbeat.
//!
//! Commands that only change what the database already holds (a hand-off, a close)
//! may be lost while no hub owns routing; the next owner reads them from the database.

use super::commands::{self, Alive, Answer, Forwarded, Outgoing, WireView};
use super::envelope::{HUB_ALIVE, ROUTING_COMMANDS, ROUTING_OWNER, ROUTING_VIEW};
use crate::fanout::Registry;
use crate::routing::{Command, Routing, View};
use salam_bus::{Client, Message};
use salam_routing::RoutingError;
use salam_store::Store;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How often a hub says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A hub silent this long counts as dead.
pub const HUB_SILENT_AFTER: Duration = Duration::from_secs(3);
/// Views are published at most this often.
const VIEW_EVERY: Duration = Duration::from_millis(100);
/// Forwarded commands kept for another try at most (beyond, the oldest is dropped and
/// the next owner's rebuild from the database is what repairs routing).
pub const RETRY_BUFFER: usize = 4096;

/// The hub number a connection id belongs to.
pub fn hub_of(connection: u64) -> u16 {
    (connection >> 48) as u16
}

/// What the front needs.
pub struct Front {
    pub hub_number: u16,
    pub client: Client,
    pub owner: watch::Receiver<bool>,
    /// The local actor (fed only while this hub owns routing).
    pub actor: Routing,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub routing_config: crate::config::RoutingConfig,
    pub shutdown: watch::Receiver<bool>,
}

/// Starts the front; returns the hub's routing handle.
pub fn start(front: Front) -> Routing {
    let (sender, receiver) = mpsc::channel(crate::routing::FRONT_QUEUE);
    let (views_tx, views) = watch::channel(Arc::new(View::default()));
    tokio::spawn(run(front, receiver, views_tx));
    Routing::from_parts(sender, views)
}

/// The owner's record of other hubs: when each was last heard, and the agent sockets
/// it announced.
#[derive(Default)]
struct Hubs {
    seen: HashMap<u16, Instant>,
    incarnations: HashMap<u16, u64>,
    sockets: HashMap<u16, HashSet<(String, u64)>>,
}

impl Hubs {
    fn note(&mut self, command: &Command) {
        match command {
            Command::Connected {
                agent_id,
                connection,
            } => {
                // An announcement is a sign of life too (the heartbeat may come later).
                self.seen
                    .entry(hub_of(*connection))
                    .or_insert_with(Instant::now);
                self.sockets
                    .entry(hub_of(*connection))
                    .or_default()
                    .insert((agent_id.clone(), *connection));
            }
            Command::Disconnected {
                agent_id,
                connection,
            } => {
                if let Some(sockets) = self.sockets.get_mut(&hub_of(*connection)) {
                    sockets.remove(&(agent_id.clone(), *connection));
                }
            }
            _ => {}
        }
    }

    /// A heartbeat: the hub is alive; with a new incarnation, the sockets it had
    /// announced before its restart are returned (gone).
    fn alive(&mut self, alive: Alive, now: Instant) -> Vec<(String, u64)> {
        self.seen.insert(alive.hub, now);
        match self.incarnations.insert(alive.hub, alive.incarnation) {
            Some(before) if before != alive.incarnation => {
                let gone: Vec<(String, u64)> = self
                    .sockets
                    .remove(&alive.hub)
                    .map(|sockets| sockets.into_iter().collect())
                    .unwrap_or_default();
                if !gone.is_empty() {
                    tracing::warn!(
                        hub = alive.hub,
                        sockets = gone.len(),
                        "a hub restarted: its earlier agent sockets count as closed"
                    );
                }
                gone
            }
            _ => Vec::new(),
        }
    }

    /// The sockets of hubs silent for too long (never this hub's own).
    fn expired(&mut self, me: u16, now: Instant) -> Vec<(String, u64)> {
        let dead: Vec<u16> = self
            .sockets
            .keys()
            .copied()
            .filter(|hub| {
                *hub != me
                    && self
                        .seen
                        .get(hub)
                        .is_none_or(|at| now.duration_since(*at) > HUB_SILENT_AFTER)
            })
            .collect();
        let mut gone = Vec::new();
        for hub in dead {
            if let Some(sockets) = self.sockets.remove(&hub) {
                tracing::warn!(
                    hub,
                    sockets = sockets.len(),
                    "a hub went silent: its agent sockets count as closed"
                );
                gone.extend(sockets);
            }
            self.seen.remove(&hub);
            self.incarnations.remove(&hub);
        }
        gone
    }
}

/// This run's incarnation (see [`Alive::incarnation`]).
fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

async fn run(
    mut front: Front,
    mut commands: mpsc::Receiver<Command>,
    views: watch::Sender<Arc<View>>,
) {
    let mut owner = false;
    let mut hubs = Hubs::default();
    let me = incarnation();
    // The owner as the heartbeats tell it (hub number and incarnation).
    let mut known_owner: Option<(u16, u64)> = None;
    let mut retry: VecDeque<Forwarded> = VecDeque::new();
    // Subscriptions every hub keeps.
    let (Ok(mut announce), Ok(mut alive), Ok(mut remote_views)) = (
        front.client.subscribe(ROUTING_OWNER).await,
        front.client.subscribe(HUB_ALIVE).await,
        front.client.subscribe(ROUTING_VIEW).await,
    ) else {
        tracing::error!("cannot subscribe to the routing subjects: routing is not served");
        return;
    };
    // Forwarded commands: only while this hub is the owner.
    let mut forwarded: Option<salam_bus::Subscription> = None;
    let mut actor_views = front.actor.views();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_view_sent = Instant::now() - VIEW_EVERY;
    let mut view_pending = false;
    let mut shutdown = front.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = front.owner.changed() => {
                if changed.is_err() {
                    return;
                }
                let now_owner = *front.owner.borrow_and_update();
                if now_owner == owner {
                    continue;
                }
                owner = now_owner;
                front.actor.send(Command::Reset).await;
                hubs = Hubs::default();
                if owner {
                    forwarded = front.client.subscribe(ROUTING_COMMANDS).await.ok();
                    take_over(&front).await;
                } else {
                    forwarded = None;
                    tracing::warn!("this hub no longer owns routing: forwarding to the owner");
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return };
                if owner {
                    hubs.note(&command);
                    front.actor.send(command).await;
                } else {
                    forward(&front, command, &mut retry).await;
                }
            }
            message = next(&mut forwarded) => {
                let Some(message) = message else {
                    forwarded = None;
                    continue;
                };
                if owner {
                    serve(&front, &mut hubs, message).await;
                }
            }
            message = announce.next() => {
                if message.is_some() && !owner {
                    announce_agents(&front, &mut retry).await;
                }
            }
            message = alive.next() => {
                let Some(message) = message else { continue };
                let Ok(heard) = serde_json::from_slice::<Alive>(&message.payload) else {
                    continue;
                };
                if owner {
                    for (agent_id, connection) in hubs.alive(heard, Instant::now()) {
                        front.actor.send(Command::Disconnected { agent_id, connection }).await;
                    }
                } else if heard.owner && known_owner != Some((heard.hub, heard.incarnation)) {
                    let first = known_owner.is_none();
                    known_owner = Some((heard.hub, heard.incarnation));
                    // The owner's request to announce may have been missed (the first
                    // heartbeat after this hub started is covered by its own start).
                    if !first {
                        announce_agents(&front, &mut retry).await;
                    }
                }
            }
            message = remote_views.next() => {
                if let Some(message) = message
                    && !owner
                {
                    match serde_json::from_slice::<WireView>(&message.payload) {
                        Ok(view) => {
                            views.send_replace(Arc::new(view.into_view()));
                        }
                        Err(err) => tracing::warn!(error = %err, "an unreadable routing view"),
                    }
                }
            }
            changed = actor_views.changed() => {
                if changed.is_err() {
                    return;
                }
                if owner {
                    let view = actor_views.borrow_and_update().clone();
                    views.send_replace(view);
                    view_pending = true;
                }
            }
            _ = heartbeat.tick() => {
                let alive = Alive { hub: front.hub_number, incarnation: me, owner };
                let alive = serde_json::to_vec(&alive).unwrap_or_default();
                let _ = front.client.publish(HUB_ALIVE, alive.into());
                if owner {
                    retry.clear();
                } else {
                    for _ in 0..retry.len() {
                        let Some(forwarded) = retry.pop_front() else { break };
                        publish(&front, forwarded, &mut retry);
                    }
                }
                if owner {
                    for (agent_id, connection) in hubs.expired(front.hub_number, Instant::now()) {
                        front.actor.send(Command::Disconnected { agent_id, connection }).await;
                    }
                }
            }
        }
        if owner && view_pending && last_view_sent.elapsed() >= VIEW_EVERY {
            view_pending = false;
            last_view_sent = Instant::now();
            let view = WireView::of(&views.borrow());
            if let Ok(bytes) = serde_json::to_vec(&view)
                && let Err(err) = front.client.publish(ROUTING_VIEW, bytes.into())
            {
                tracing::warn!(error = %err, "the routing view was not published");
            }
        }
    }
}

async fn next(subscription: &mut Option<salam_bus::Subscription>) -> Option<Message> {
    match subscription {
        Some(subscription) => subscription.next().await,
        None => std::future::pending().await,
    }
}

/// This hub now owns routing: rebuild from the database, then hear every hub's agents.
async fn take_over(front: &Front) {
    let started = Instant::now();
    let restore = loop {
        match crate::restore_of(front.store.as_ref(), &front.routing_config).await {
            Ok(restore) => break restore,
            Err(err) => {
                tracing::warn!(error = %err, "routing cannot be rebuilt yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !*front.owner.borrow() {
                    return;
                }
            }
        }
    };
    front.actor.send(Command::Restore(Box::new(restore))).await;
    if let Err(err) = front.client.publish(ROUTING_OWNER, bytes::Bytes::new()) {
        tracing::warn!(error = %err, "cannot ask the hubs to announce their agents");
    }
    for (agent_id, connection) in front.registry.agent_connections() {
        front
            .actor
            .send(Command::Connected {
                agent_id: agent_id.to_string(),
                connection,
            })
            .await;
    }
    tracing::info!(
        hub = front.hub_number,
        ms = started.elapsed().as_millis() as u64,
        "routing rebuilt from the database"
    );
}

/// Tells the owner about every agent socket of this hub.
async fn announce_agents(front: &Front, retry: &mut VecDeque<Forwarded>) {
    for (agent_id, connection) in front.registry.agent_connections() {
        forward(
            front,
            Command::Connected {
                agent_id: agent_id.to_string(),
                connection,
            },
            retry,
        )
        .await;
    }
}

/// Publishes a command for the owner; one the bus cannot take now waits in `retry`.
fn publish(front: &Front, forwarded: Forwarded, retry: &mut VecDeque<Forwarded>) {
    match serde_json::to_vec(&forwarded) {
        Ok(bytes) => {
            if let Err(err) = front.client.publish(ROUTING_COMMANDS, bytes.into()) {
                tracing::warn!(error = %err, "a routing command was not forwarded yet");
                if retry.len() >= RETRY_BUFFER {
                    retry.pop_front();
                }
                retry.push_back(forwarded);
            }
        }
        Err(err) => tracing::warn!(error = %err, "a routing command cannot be encoded"),
    }
}

/// Sends a command to the owner.
async fn forward(front: &Front, command: Command, retry: &mut VecDeque<Forwarded>) {
    match commands::outgoing(command) {
        Outgoing::Local => {}
        Outgoing::Tell(forwarded) => publish(front, forwarded, retry),
        Outgoing::AgentChanged(agent_id) => {
            publish(front, Forwarded::AgentChanged { agent_id }, retry);
        }
        Outgoing::Ask(forwarded, reply) => {
            let client = front.client.clone();
            tokio::spawn(async move {
                let result = match serde_json::to_vec(&forwarded) {
                    Ok(bytes) => match client.request(ROUTING_COMMANDS, bytes.into()).await {
                        Ok(answer) => serde_json::from_slice::<Answer>(&answer.payload)
                            .map(|answer| answer.result())
                            .unwrap_or(Err(RoutingError::NotAvailable)),
                        Err(err) => {
                            tracing::warn!(error = %err, "the routing owner did not answer");
                            Err(RoutingError::NotAvailable)
                        }
                    },
                    Err(_) => Err(RoutingError::NotAvailable),
                };
                let _ = reply.send(result);
            });
        }
    }
}

/// The owner applies a command another hub forwarded.
async fn serve(front: &Front, hubs: &mut Hubs, message: Message) {
    let forwarded: Forwarded = match serde_json::from_slice(&message.payload) {
        Ok(forwarded) => forwarded,
        Err(err) => {
            tracing::warn!(error = %err, "an unreadable forwarded routing command");
            return;
        }
    };
    if let Forwarded::AgentChanged { agent_id } = &forwarded {
        match front.store.agent_by_id(agent_id).await {
            Ok(Some(agent)) => front.actor.send(Command::Agent(Box::new(agent))).await,
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "a changed agent cannot be read"),
        }
        return;
    }
    let reply = if commands::asks(&forwarded) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let client = front.client.clone();
        tokio::spawn(async move {
            let result = answer.await.unwrap_or(Err(RoutingError::NotAvailable));
            if let Ok(bytes) = serde_json::to_vec(&Answer::of(result)) {
                let _ = client.respond(&message, bytes.into());
            }
        });
        Some(reply)
    } else {
        None
    };
    if let Some(command) = commands::incoming(forwarded, reply) {
        hubs.note(&command);
        front.actor.send(command).await;
    }
}
