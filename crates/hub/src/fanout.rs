//! Delivery fan-out by subscription: who receives which event.
//!
//! Every event is published on a [`Topic`]:
//! - a **conversation**: its full stream (messages, typing, seen, state changes). Its
//!   visitor's connections follow it, and so do the connections of the agent it is
//!   assigned to and of agents who watch it (opened it on their screen);
//! - a **site**: summaries for every agent of the site (`conversation`, `activity` and
//!   `agents` frames), or alerts for its admins;
//! - an **agent**: one agent's connections (offers, their own presence).
//!
//! The hub publishes to a [`Bus`]. The single-node bus ([`LocalBus`]) hands events
//! straight to this process's [`Registry`]; the registry knows which topics have local
//! subscribers ([`Registry::topics`], with a [`Registry::topics_changed`] wake-up),
//! which is the hook the bus between hubs ([`crate::cluster::bus`]) uses to subscribe
//! to a topic on the first local subscriber and unsubscribe after the last.
//!
//! Delivery never waits: each connection has a bounded queue, and a connection whose
//! queue is full is *kicked* (told to resync and closed) instead of slowing the
//! publisher or anyone else.

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use salam_protocol::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, mpsc};

/// What a connection's send task receives.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A frame already encoded as JSON (shared by every receiver).
    Frame(Utf8Bytes),
    /// A committed message: the send task keeps per-conversation order and fills gaps
    /// from the store, so receivers see every sequence once, in order.
    Message(Arc<Message>, Utf8Bytes),
    /// Replay `conversation` after `after`, then send `resumed`.
    Resume(Box<(String, u64)>),
    /// The ack of this connection's own message: it stands for the message, which this
    /// connection is not sent again. (Boxed, like `Resume`: every mailbox slot is as
    /// large as the largest variant, and idle connections pay for their slots.)
    Ack(Box<OwnAck>),
    /// Sent right after `welcome`, before the subscriptions: the conversations it
    /// listed, with their `last_seq`. Live messages of these wait for the client's
    /// `resume` (or a short deadline, then go on from the listed `last_seq`), so a
    /// resume never arrives behind live messages it then repeats.
    Hold(Box<Vec<(String, u64)>>),
    /// The bus between hubs may have missed messages of this conversation (its
    /// subscription was just taken, or the bus reconnected): read what was committed
    /// after the last message this connection delivered.
    Catchup(Arc<str>),
}

/// An acknowledged own message: its conversation and sequence, and the `ack` frame.
#[derive(Debug, Clone)]
pub struct OwnAck {
    pub conversation: String,
    pub seq: u64,
    pub json: Utf8Bytes,
}

/// Who on a conversation receives an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followers {
    /// The visitor's connections and the agents following it.
    All,
    /// Only the visitor's connections (queue positions, forms).
    Visitors,
    /// Only the agents following it.
    Agents,
}

/// Where an event goes.
#[derive(Debug, Clone)]
pub enum Topic {
    /// A conversation's followers.
    Conversation {
        conversation: Arc<str>,
        followers: Followers,
    },
    /// Every agent connection of a site (`admins`: only the admins'), except those that
    /// follow `skip_followers_of` (they have the full stream of that conversation).
    Site {
        site: Arc<str>,
        admins: bool,
        skip_followers_of: Option<Arc<str>>,
    },
    /// One agent's connections.
    Agent(Arc<str>),
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct Event {
    pub topic: Topic,
    /// The connection that caused it, which does not receive it back (typing).
    pub skip_connection: Option<u64>,
    pub payload: Outbound,
}

/// Publishes events. Implementations must not block.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, event: Event);
    /// Whether an event on `topic` would reach anyone, so a publisher can skip building
    /// it (a bus between hubs that cannot tell answers `true`).
    fn has_subscribers(&self, _topic: &Topic) -> bool {
        true
    }
    /// Every connection of `agent`, on any hub, follows `conversation` (assigned).
    fn attach_agent(&self, registry: &Registry, conversation: &str, agent: &str) {
        registry.attach_agent(conversation, agent);
    }
    /// The connections of `agent`, on any hub, stop following `conversation` unless
    /// they watch it.
    fn detach_agent(&self, registry: &Registry, conversation: &str, agent: &str) {
        registry.detach_agent(conversation, agent);
    }
}

/// The single-node bus: delivers in this process.
pub struct LocalBus {
    registry: Arc<Registry>,
}

impl LocalBus {
    pub fn new(registry: Arc<Registry>) -> LocalBus {
        LocalBus { registry }
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: Event) {
        self.registry.deliver(&event);
    }

    fn has_subscribers(&self, topic: &Topic) -> bool {
        self.registry.has_subscribers(topic)
    }
}

/// Which side a connection is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Visitor,
    Agent,
}

/// A connection's mailbox as the registry sees it.
#[derive(Clone)]
pub struct Mailbox {
    pub connection: u64,
    /// Items are boxed: a tokio channel allocates its slots 32 at a time, and every
    /// idle connection pays for them (8 bytes a slot instead of 48).
    pub sender: mpsc::Sender<Box<Outbound>>,
    /// Notified when the mailbox overflowed: the connection must resync.
    pub kick: Arc<Notify>,
    /// An admin's connection (receives alerts).
    pub admin: bool,
    pub side: Side,
}

impl Mailbox {
    /// Queues without waiting; a full queue kicks the connection.
    pub fn offer(&self, item: Outbound) {
        match self.sender.try_send(Box::new(item)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.kick.notify_one(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues, waiting for room (the connection's own replies).
    pub async fn send(&self, item: Outbound) {
        let _ = self.sender.send(Box::new(item)).await;
    }
}

/// Why an agent connection follows a conversation (a bit set; it stops following when
/// no reason is left).
pub mod reason {
    /// The visitor's own conversation.
    pub const OWNER: u8 = 1;
    /// Assigned to the connection's agent.
    pub const ASSIGNED: u8 = 2;
    /// Opened on the agent's screen (`resume` until `unwatch`).
    pub const WATCHING: u8 = 4;
}

#[derive(Clone)]
struct Follower {
    mailbox: Mailbox,
    reasons: u8,
}

/// What one connection is subscribed to, for cleanup.
#[derive(Default)]
struct Subscriptions {
    conversations: Vec<Arc<str>>,
    sites: Vec<Arc<str>>,
    agent: Option<Arc<str>>,
}

/// The subscriptions of this process's connections.
#[derive(Default)]
pub struct Registry {
    conversations: DashMap<Arc<str>, Vec<Follower>>,
    sites: DashMap<Arc<str>, Vec<Mailbox>>,
    agents: DashMap<Arc<str>, Vec<Mailbox>>,
    connections: DashMap<u64, Subscriptions>,
    /// Events dropped because a receiver was too slow.
    pub kicks: AtomicU64,
    /// Notified when a topic may have gained its first or lost its last local
    /// subscriber (a bus between hubs subscribes accordingly).
    pub topics_changed: Notify,
}

/// A kind of topic, as [`Registry::topics`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicKind {
    Conversation,
    Site,
    Agent,
}

impl Registry {
    /// `mailbox` follows `conversation` for `why` (a [`reason`] bit).
    pub fn follow(&self, conversation: &str, mailbox: &Mailbox, why: u8) {
        let key: Arc<str> = conversation.into();
        let mut entry = self.conversations.entry(key.clone()).or_default();
        match entry
            .iter_mut()
            .find(|follower| follower.mailbox.connection == mailbox.connection)
        {
            Some(follower) => follower.reasons |= why,
            None => {
                entry.push(Follower {
                    mailbox: mailbox.clone(),
                    reasons: why,
                });
                drop(entry);
                self.connections
                    .entry(mailbox.connection)
                    .or_default()
                    .conversations
                    .push(key);
                self.topics_changed.notify_one();
            }
        }
    }

    /// Drops reason `why` of `connection` on `conversation`; it stops following when no
    /// reason is left.
    pub fn unfollow(&self, conversation: &str, connection: u64, why: u8) {
        let mut gone = false;
        let now_empty = match self.conversations.get_mut(conversation) {
            Some(mut entry) => {
                entry.retain_mut(|follower| {
                    if follower.mailbox.connection == connection {
                        follower.reasons &= !why;
                        gone = follower.reasons == 0;
                        !gone
                    } else {
                        true
                    }
                });
                entry.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.conversations
                .remove_if(conversation, |_, entry| entry.is_empty());
            self.topics_changed.notify_one();
        }
        if gone && let Some(mut subscriptions) = self.connections.get_mut(&connection) {
            subscriptions
                .conversations
                .retain(|followed| &**followed != conversation);
        }
    }

    /// Whether `connection` follows `conversation` for reason `why`.
    pub fn follows(&self, conversation: &str, connection: u64, why: u8) -> bool {
        self.conversations.get(conversation).is_some_and(|entry| {
            entry.iter().any(|follower| {
                follower.mailbox.connection == connection && follower.reasons & why != 0
            })
        })
    }

    /// Every connection of `agent` follows `conversation` (it was assigned to them).
    pub fn attach_agent(&self, conversation: &str, agent: &str) {
        let mailboxes: Vec<Mailbox> = self
            .agents
            .get(agent)
            .map(|entry| entry.clone())
            .unwrap_or_default();
        for mailbox in &mailboxes {
            self.follow(conversation, mailbox, reason::ASSIGNED);
        }
    }

    /// The connections of `agent` stop following `conversation` unless they watch it.
    pub fn detach_agent(&self, conversation: &str, agent: &str) {
        let connections: Vec<u64> = self
            .agents
            .get(agent)
            .map(|entry| entry.iter().map(|mailbox| mailbox.connection).collect())
            .unwrap_or_default();
        for connection in connections {
            self.unfollow(conversation, connection, reason::ASSIGNED);
        }
    }

    /// An agent connection: receives `agent`'s own events.
    pub fn register_agent(&self, agent: &str, mailbox: &Mailbox) {
        let key: Arc<str> = agent.into();
        let mut entry = self.agents.entry(key.clone()).or_default();
        if !entry.iter().any(|m| m.connection == mailbox.connection) {
            entry.push(mailbox.clone());
        }
        drop(entry);
        self.connections
            .entry(mailbox.connection)
            .or_default()
            .agent = Some(key);
        self.topics_changed.notify_one();
    }

    pub fn subscribe_site(&self, site_id: &str, mailbox: &Mailbox) {
        let key: Arc<str> = site_id.into();
        let mut entry = self.sites.entry(key.clone()).or_default();
        if entry.iter().any(|m| m.connection == mailbox.connection) {
            return;
        }
        entry.push(mailbox.clone());
        drop(entry);
        self.connections
            .entry(mailbox.connection)
            .or_default()
            .sites
            .push(key);
        self.topics_changed.notify_one();
    }

    pub fn unsubscribe_site(&self, site_id: &str, connection: u64) {
        Self::remove(&self.sites, site_id, connection);
        if let Some(mut subscriptions) = self.connections.get_mut(&connection) {
            subscriptions.sites.retain(|site| &**site != site_id);
        }
    }

    /// Whether an event on `topic` would reach a connection of this process.
    pub fn has_subscribers(&self, topic: &Topic) -> bool {
        match topic {
            Topic::Conversation { conversation, .. } => {
                self.conversations.contains_key(conversation)
            }
            Topic::Agent(agent) => self.agents.contains_key(agent),
            Topic::Site {
                site,
                admins,
                skip_followers_of,
            } => {
                let Some(entry) = self.sites.get(site) else {
                    return false;
                };
                let followers: Vec<u64> = match skip_followers_of {
                    Some(conversation) => self
                        .conversations
                        .get(conversation)
                        .map(|entry| entry.iter().map(|f| f.mailbox.connection).collect())
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                entry.iter().any(|mailbox| {
                    (!*admins || mailbox.admin) && !followers.contains(&mailbox.connection)
                })
            }
        }
    }

    /// Removes a closed connection from everything it subscribed to.
    pub fn drop_connection(&self, connection: u64) {
        let Some((_, subscriptions)) = self.connections.remove(&connection) else {
            return;
        };
        for conversation in &subscriptions.conversations {
            let now_empty = match self.conversations.get_mut(conversation) {
                Some(mut entry) => {
                    entry.retain(|follower| follower.mailbox.connection != connection);
                    entry.is_empty()
                }
                None => false,
            };
            if now_empty {
                self.conversations
                    .remove_if(conversation, |_, entry| entry.is_empty());
            }
        }
        for site in &subscriptions.sites {
            Self::remove(&self.sites, site, connection);
        }
        if let Some(agent) = &subscriptions.agent {
            Self::remove(&self.agents, agent, connection);
        }
        self.topics_changed.notify_one();
    }

    /// Every topic with a local subscriber now.
    pub fn topics(&self) -> Vec<(TopicKind, Arc<str>)> {
        let mut topics =
            Vec::with_capacity(self.conversations.len() + self.sites.len() + self.agents.len());
        topics.extend(
            self.conversations
                .iter()
                .map(|entry| (TopicKind::Conversation, entry.key().clone())),
        );
        topics.extend(
            self.sites
                .iter()
                .map(|entry| (TopicKind::Site, entry.key().clone())),
        );
        topics.extend(
            self.agents
                .iter()
                .map(|entry| (TopicKind::Agent, entry.key().clone())),
        );
        topics
    }

    /// Tells every local follower of `conversation` to read what it may have missed.
    pub fn catch_up(&self, conversation: &Arc<str>) {
        if let Some(entry) = self.conversations.get(conversation) {
            for follower in entry.iter() {
                follower
                    .mailbox
                    .offer(Outbound::Catchup(conversation.clone()));
            }
        }
    }

    /// The agents with a connection here.
    pub fn agent_connections(&self) -> Vec<(Arc<str>, u64)> {
        self.agents
            .iter()
            .flat_map(|entry| {
                let agent = entry.key().clone();
                entry
                    .iter()
                    .map(|mailbox| (agent.clone(), mailbox.connection))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn remove(map: &DashMap<Arc<str>, Vec<Mailbox>>, key: &str, connection: u64) {
        let now_empty = match map.get_mut(key) {
            Some(mut entry) => {
                entry.retain(|m| m.connection != connection);
                entry.is_empty()
            }
            None => false,
        };
        if now_empty {
            map.remove_if(key, |_, entry| entry.is_empty());
        }
    }

    fn offer(&self, mailbox: &Mailbox, event: &Event) {
        if Some(mailbox.connection) == event.skip_connection {
            return;
        }
        if mailbox.sender.capacity() == 0 {
            self.kicks.fetch_add(1, Ordering::Relaxed);
        }
        mailbox.offer(event.payload.clone());
    }

    /// Hands `event` to every subscribed mailbox allowed to see it. Never waits; the
    /// map guards are dropped before returning and never held across an await.
    pub fn deliver(&self, event: &Event) {
        match &event.topic {
            Topic::Conversation {
                conversation,
                followers,
            } => {
                if let Some(entry) = self.conversations.get(conversation) {
                    for follower in entry.iter() {
                        let wanted = match followers {
                            Followers::All => true,
                            Followers::Visitors => follower.mailbox.side == Side::Visitor,
                            Followers::Agents => follower.mailbox.side == Side::Agent,
                        };
                        if wanted {
                            self.offer(&follower.mailbox, event);
                        }
                    }
                }
            }
            Topic::Site {
                site,
                admins,
                skip_followers_of,
            } => {
                let Some(entry) = self.sites.get(site) else {
                    return;
                };
                let followers: Vec<u64> = match skip_followers_of {
                    Some(conversation) => self
                        .conversations
                        .get(conversation)
                        .map(|entry| entry.iter().map(|f| f.mailbox.connection).collect())
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                for mailbox in entry.iter() {
                    if (*admins && !mailbox.admin) || followers.contains(&mailbox.connection) {
                        continue;
                    }
                    self.offer(mailbox, event);
                }
            }
            Topic::Agent(agent) => {
                if let Some(entry) = self.agents.get(agent) {
                    for mailbox in entry.iter() {
                        self.offer(mailbox, event);
                    }
                }
            }
        }
    }
}
