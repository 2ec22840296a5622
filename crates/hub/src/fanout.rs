//! Delivery fan-out: who receives which event.
//!
//! The hub publishes every event to a [`Bus`]. The single-node bus ([`LocalBus`]) hands
//! it straight to this process's [`Registry`] of connections; a multi-hub deployment
//! would put Redis or NATS behind the same trait and have every hub's registry deliver
//! what arrives. Connections subscribe to conversations (visitors) or to sites (agents).
//!
//! Delivery never waits: each connection has a bounded queue, and a connection whose
//! queue is full is *kicked* (told to resync and closed) instead of slowing the
//! publisher or anyone else.

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use salam_protocol::{Message, MessageKind};
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
}

/// An acknowledged own message: its conversation and sequence, and the `ack` frame.
#[derive(Debug, Clone)]
pub struct OwnAck {
    pub conversation: String,
    pub seq: u64,
    pub json: Utf8Bytes,
}

/// Who may receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The conversation's visitor connections and the site's agents.
    Everyone,
    /// Only agents (internal notes, queue updates).
    Agents,
    /// Only the visitor's connections.
    Visitor,
    /// Only the site's admins (alerts).
    Admins,
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct Event {
    pub site_id: Arc<str>,
    pub conversation: Option<Arc<str>>,
    pub audience: Audience,
    /// The connection that caused it, which does not receive it back (typing).
    pub skip_connection: Option<u64>,
    pub payload: Outbound,
}

impl Event {
    /// A committed message, to everyone who may see it.
    pub fn message(site_id: &str, message: Message) -> Event {
        let audience = if message.kind == MessageKind::Note {
            Audience::Agents
        } else {
            Audience::Everyone
        };
        let json: Utf8Bytes = salam_protocol::ServerFrame::Message(message.clone())
            .to_json()
            .into();
        Event {
            site_id: site_id.into(),
            conversation: Some(message.conversation.as_str().into()),
            audience,
            skip_connection: None,
            payload: Outbound::Message(Arc::new(message), json),
        }
    }
}

/// Publishes events. Implementations must not block.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, event: Event);
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
    /// An admin's connection (receives `Audience::Admins`).
    pub admin: bool,
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

/// The connections of this process, by conversation (visitors) and by site (agents).
#[derive(Default)]
pub struct Registry {
    conversations: DashMap<Arc<str>, Vec<Mailbox>>,
    sites: DashMap<Arc<str>, Vec<Mailbox>>,
    /// Events dropped because a receiver was too slow.
    pub kicks: AtomicU64,
}

impl Registry {
    pub fn subscribe_conversation(&self, conversation: &str, mailbox: Mailbox) {
        let mut entry = self.conversations.entry(conversation.into()).or_default();
        if !entry.iter().any(|m| m.connection == mailbox.connection) {
            entry.push(mailbox);
        }
    }

    pub fn subscribe_site(&self, site_id: &str, mailbox: Mailbox) {
        let mut entry = self.sites.entry(site_id.into()).or_default();
        if !entry.iter().any(|m| m.connection == mailbox.connection) {
            entry.push(mailbox);
        }
    }

    pub fn unsubscribe_conversation(&self, conversation: &str, connection: u64) {
        Self::remove(&self.conversations, conversation, connection);
    }

    pub fn unsubscribe_site(&self, site_id: &str, connection: u64) {
        Self::remove(&self.sites, site_id, connection);
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

    /// Hands `event` to every subscribed mailbox allowed to see it. Never waits; the
    /// map guard is dropped before returning and never held across an await.
    pub fn deliver(&self, event: &Event) {
        let offer = |mailboxes: &Vec<Mailbox>| {
            for mailbox in mailboxes {
                if Some(mailbox.connection) == event.skip_connection
                    || (event.audience == Audience::Admins && !mailbox.admin)
                {
                    continue;
                }
                if mailbox.sender.capacity() == 0 {
                    self.kicks.fetch_add(1, Ordering::Relaxed);
                }
                mailbox.offer(event.payload.clone());
            }
        };
        if !matches!(event.audience, Audience::Agents | Audience::Admins)
            && let Some(conversation) = &event.conversation
            && let Some(mailboxes) = self.conversations.get(conversation)
        {
            offer(&mailboxes);
        }
        if event.audience != Audience::Visitor
            && let Some(mailboxes) = self.sites.get(&event.site_id)
        {
            offer(&mailboxes);
        }
    }
}
