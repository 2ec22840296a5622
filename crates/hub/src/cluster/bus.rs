//! The bus between hubs ([`NatsBus`]): events reach this hub's connections at once and
//! the other hubs' through NATS.
//!
//! - **Publishing** delivers to the local registry, then publishes the event already
//!   encoded ([`super::envelope`]) on its topic's subject, without waiting: a full or
//!   disconnected bus drops it (counted). Delivery between hubs is at most once; the
//!   store is the truth, and each connection's send task fills gaps from it.
//! - **Subscribing** follows the registry: a hub subscribes to the subject of every
//!   topic that has a local subscriber, and unsubscribes after the last one leaves.
//!   A reconciler task compares the two whenever the registry says its topics changed
//!   ([`crate::fanout::Registry::topics_changed`]).
//! - **No message is missed for long.** A message published on another hub between a
//!   connection's store read and this hub's subscription, or while the bus was
//!   reconnecting, would be lost; so once new conversation subscriptions are confirmed
//!   by the server (and after every reconnection, for all of them), their local
//!   followers are told to catch up from the store ([`crate::fanout::Outbound::Catchup`]).
//! - The client never receives its own publishes (NATS `echo: false`), so nothing is
//!   delivered twice on the publishing hub.

use super::envelope::{self, Inbound};
use crate::fanout::{Bus, Event, Registry, TopicKind};
use salam_bus::{Client, Message, SubscriptionHandle};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Received bus messages waiting for delivery at most (beyond, they are dropped and
/// counted by the client; the store fills the gaps).
const INBOUND_QUEUE: usize = 16_384;
/// The reconciler waits this long after a change, so a burst costs one pass.
const SETTLE: Duration = Duration::from_millis(5);

/// Counters of the bus between hubs, for `/metrics`.
#[derive(Default)]
pub struct BusMetrics {
    /// Events this hub could not publish (the bus was full or disconnected).
    pub publish_dropped: AtomicU64,
    /// Received bus messages that could not be read.
    pub undecodable: AtomicU64,
    /// Subjects this hub is subscribed to now.
    pub subscriptions: AtomicU64,
}

/// See the module docs.
pub struct NatsBus {
    registry: Arc<Registry>,
    client: Client,
    pub metrics: Arc<BusMetrics>,
}

impl NatsBus {
    /// Starts the bus: the reconciler and the delivery task run until `shutdown`.
    pub fn start(
        registry: Arc<Registry>,
        client: Client,
        shutdown: watch::Receiver<bool>,
    ) -> NatsBus {
        let metrics = Arc::new(BusMetrics::default());
        let (sender, receiver) = mpsc::channel(INBOUND_QUEUE);
        tokio::spawn(deliver(registry.clone(), receiver, metrics.clone()));
        tokio::spawn(reconcile(
            registry.clone(),
            client.clone(),
            sender,
            metrics.clone(),
            shutdown,
        ));
        NatsBus {
            registry,
            client,
            metrics,
        }
    }

    fn send(&self, subject: &str, payload: bytes::Bytes) {
        if self.client.publish(subject, payload).is_err() {
            self.metrics.publish_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Bus for NatsBus {
    fn publish(&self, event: Event) {
        self.registry.deliver(&event);
        if let Some(payload) = envelope::encode(&event) {
            self.send(&envelope::subject_of(&event.topic), payload);
        }
    }

    fn attach_agent(&self, registry: &Registry, conversation: &str, agent: &str) {
        registry.attach_agent(conversation, agent);
        self.send(
            &envelope::subject(TopicKind::Agent, agent),
            envelope::encode_follow(conversation, agent, true),
        );
    }

    fn detach_agent(&self, registry: &Registry, conversation: &str, agent: &str) {
        registry.detach_agent(conversation, agent);
        self.send(
            &envelope::subject(TopicKind::Agent, agent),
            envelope::encode_follow(conversation, agent, false),
        );
    }
}

/// Hands received bus messages to the local registry.
async fn deliver(
    registry: Arc<Registry>,
    mut receiver: mpsc::Receiver<Message>,
    metrics: Arc<BusMetrics>,
) {
    while let Some(message) = receiver.recv().await {
        match envelope::decode(&message.payload) {
            Ok(Inbound::Deliver(event)) => registry.deliver(&event),
            Ok(Inbound::Attach {
                conversation,
                agent,
            }) => {
                registry.attach_agent(&conversation, &agent);
                // What was committed before this hub's connections followed it.
                registry.catch_up(&conversation.into());
            }
            Ok(Inbound::Detach {
                conversation,
                agent,
            }) => registry.detach_agent(&conversation, &agent),
            Err(err) => {
                metrics.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subject = %message.subject, error = %err, "an unreadable bus message");
            }
        }
    }
}

/// Keeps this hub subscribed to exactly the subjects of its local topics.
async fn reconcile(
    registry: Arc<Registry>,
    client: Client,
    sender: mpsc::Sender<Message>,
    metrics: Arc<BusMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut current: HashMap<(TopicKind, Arc<str>), SubscriptionHandle> = HashMap::new();
    let mut reconnects = client.stats().reconnects;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            () = registry.topics_changed.notified() => {}
            _ = check.tick() => {}
        }
        tokio::time::sleep(SETTLE).await;
        let wanted: HashMap<(TopicKind, Arc<str>), ()> = registry
            .topics()
            .into_iter()
            .map(|topic| (topic, ()))
            .collect();
        current.retain(|topic, _| wanted.contains_key(topic));
        let mut fresh = Vec::new();
        for topic in wanted.into_keys() {
            if current.contains_key(&topic) {
                continue;
            }
            let subject = envelope::subject(topic.0, &topic.1);
            match client.subscribe_into(&subject, sender.clone()) {
                Ok(handle) => {
                    current.insert(topic.clone(), handle);
                    fresh.push(topic);
                }
                Err(err) => {
                    tracing::warn!(%subject, error = %err, "cannot subscribe yet");
                }
            }
        }
        metrics
            .subscriptions
            .store(current.len() as u64, Ordering::Relaxed);
        let now = client.stats().reconnects;
        let reconnected = now != reconnects;
        if fresh.is_empty() && !reconnected {
            continue;
        }
        if client.flush().await.is_err() {
            // Not confirmed: the next pass (or reconnection) catches up.
            continue;
        }
        reconnects = now;
        let catch_up: Vec<Arc<str>> = if reconnected {
            current
                .keys()
                .filter(|(kind, _)| *kind == TopicKind::Conversation)
                .map(|(_, id)| id.clone())
                .collect()
        } else {
            fresh
                .into_iter()
                .filter(|(kind, _)| *kind == TopicKind::Conversation)
                .map(|(_, id)| id)
                .collect()
        };
        for conversation in catch_up {
            registry.catch_up(&conversation);
        }
    }
}
