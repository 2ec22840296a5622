//! Several hubs (issue 13): one PostgreSQL database, one NATS server, any hub serves
//! any visitor or agent. See docs/deploy.md, "Running several hubs".
//!
//! - [`envelope`]: what travels on the bus, on which subject (pure).
//! - [`bus`]: [`bus::NatsBus`], the [`crate::fanout::Bus`] between hubs: local
//!   delivery at once, NATS for the others, subscriptions that follow the registry.
//! - [`commands`]: routing commands, answers and views as they travel (pure).
//! - [`routing`]: the routing front: one owner hub (the PostgreSQL routing lease),
//!   every other hub forwards; takeover, re-announcement, heartbeats.
//! - This file: joining ([`Cluster::join`]) and the cluster's metrics. Who leads the
//!   cluster-wide jobs and the "reload this" notices between hubs are in
//!   [`crate::peers`], below the modules that use them.
//!
//! What each hub keeps in memory and how it stays true across hubs:
//! - agent authority ([`crate::authority`]): a change is committed, then announced
//!   (`salam.notice`, [`crate::peers::Notifier`]); every other hub reloads the agent or
//!   the site list;
//! - the sites with webhooks ([`crate::webhooks`]): the same, after endpoint changes;
//! - routing state: only the owner has it; the others have its views.
//!
//! Cluster-wide jobs run on the routing owner only: auto-close, retention, webhook
//! delivery, the e-mail timers (unseen replies, missed chats), and routing's own timers
//! (grace periods, offers, first-response targets). Bot rules are files each hub
//! watches: hubs of a cluster point `bot.rules_dir` at the same directory (a shared
//! path), so an edit (also one made from the console) reaches every hub.

pub mod bus;
pub mod commands;
pub mod envelope;
pub mod routing;

use salam_bus::Client;
use salam_store::{ClusterLease, PostgresStore, StoreError};
use tokio::sync::watch;

/// Why a hub could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `bus.url` without `store.url`: hubs must share a PostgreSQL database.
    #[error(
        "bus.url (SALAM_BUS_URL) needs store.url (SALAM_DATABASE_URL): hubs share a PostgreSQL database"
    )]
    NeedsPostgres,
    /// The hub id is not letters, digits, `-` and `_` (at most 32).
    #[error("cluster.hub_id {0:?} must be 1 to 32 letters, digits, '-' or '_'")]
    HubId(String),
    #[error("cannot join the cluster: {0}")]
    Lease(#[source] StoreError),
    #[error("cannot connect to the bus: {0}")]
    Bus(#[source] salam_bus::BusError),
}

/// This hub's membership: its number and name, the bus client, the routing lease.
pub struct Cluster {
    pub hub_number: u16,
    pub hub_id: String,
    pub client: Client,
    pub owner: watch::Receiver<bool>,
    _lease: ClusterLease,
}

impl Cluster {
    /// Takes a hub number and competes for routing (PostgreSQL), then connects to the
    /// bus.
    pub async fn join(
        store: &PostgresStore,
        bus_url: &str,
        hub_id: Option<&str>,
    ) -> Result<Cluster, ClusterError> {
        if let Some(id) = hub_id
            && !valid_hub_id(id)
        {
            return Err(ClusterError::HubId(id.to_owned()));
        }
        let joining = store.clone();
        let lease = tokio::task::spawn_blocking(move || joining.join_cluster())
            .await
            .map_err(|err| ClusterError::Lease(StoreError::Unavailable(err.to_string())))?
            .map_err(ClusterError::Lease)?;
        let hub_id = hub_id.map_or_else(|| format!("hub-{}", lease.hub_number), str::to_owned);
        let client = Client::connect(salam_bus::Options {
            url: bus_url.to_owned(),
            name: format!("salam {hub_id}"),
            ..salam_bus::Options::default()
        })
        .await
        .map_err(ClusterError::Bus)?;
        tracing::info!(hub = %hub_id, number = lease.hub_number, "joined the cluster");
        Ok(Cluster {
            hub_number: lease.hub_number,
            hub_id,
            client,
            owner: lease.owner.clone(),
            _lease: lease,
        })
    }

    /// Whether this hub owns routing now.
    pub fn is_owner(&self) -> bool {
        *self.owner.borrow()
    }

    /// The first connection id of this hub: its number in the top 16 bits, so
    /// connection ids are unique across live hubs.
    pub fn first_connection_id(&self) -> u64 {
        (u64::from(self.hub_number) << 48) + 1
    }
}

fn valid_hub_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cluster's own metrics (before [`label_with_hub`]).
pub fn metrics_text(cluster: &Cluster, bus: Option<&bus::BusMetrics>) -> String {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let stats = cluster.client.stats();
    let mut out = String::new();
    let mut gauge = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    gauge(
        "salam_cluster_routing_owner",
        "gauge",
        "1 while this hub owns routing and runs the cluster-wide jobs.",
        u64::from(cluster.is_owner()),
    );
    gauge(
        "salam_bus_connected",
        "gauge",
        "1 while the bus (NATS) is connected.",
        u64::from(cluster.client.is_connected()),
    );
    gauge(
        "salam_bus_published_total",
        "counter",
        "Bus messages queued for sending.",
        stats.published,
    );
    gauge(
        "salam_bus_publish_dropped_total",
        "counter",
        "Bus messages dropped because the bus was full or disconnected.",
        stats.dropped_outbound,
    );
    gauge(
        "salam_bus_received_total",
        "counter",
        "Bus messages received.",
        stats.received,
    );
    gauge(
        "salam_bus_receive_dropped_total",
        "counter",
        "Received bus messages dropped because this hub was too slow.",
        stats.dropped_inbound,
    );
    gauge(
        "salam_bus_reconnects_total",
        "counter",
        "Reconnections to the bus.",
        stats.reconnects,
    );
    if let Some(bus) = bus {
        gauge(
            "salam_bus_subscriptions",
            "gauge",
            "Subjects this hub is subscribed to for its connections.",
            bus.subscriptions.load(Ordering::Relaxed),
        );
        gauge(
            "salam_bus_undecodable_total",
            "counter",
            "Received bus messages that could not be read.",
            bus.undecodable.load(Ordering::Relaxed),
        );
    }
    out
}

/// Adds `hub="ID"` to every sample of a Prometheus text exposition (`ID` is a plain
/// token: `cluster.hub_id` is checked at start).
pub fn label_with_hub(text: &str, hub_id: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.lines().count() * (hub_id.len() + 8));
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            out.push_str(line);
        } else {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let (name, rest) = line.split_at(name_end);
            out.push_str(name);
            match rest.strip_prefix('{') {
                Some(labels) if labels.starts_with('}') => {
                    out.push_str(&format!("{{hub=\"{hub_id}\""));
                    out.push_str(labels);
                }
                Some(labels) => {
                    out.push_str(&format!("{{hub=\"{hub_id}\","));
                    out.push_str(labels);
                }
                None => {
                    out.push_str(&format!("{{hub=\"{hub_id}\"}}"));
                    out.push_str(rest);
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_sample_gets_the_hub_label() {
        let text = "# HELP a x\n# TYPE a gauge\na 1\nb{kind=\"v\"} 2\nc{} 3\n";
        assert_eq!(
            super::label_with_hub(text, "hub1"),
            "# HELP a x\n# TYPE a gauge\na{hub=\"hub1\"} 1\nb{hub=\"hub1\",kind=\"v\"} 2\nc{hub=\"hub1\"} 3\n"
        );
    }

    use super::*;

    #[test]
    fn hub_ids_are_plain_tokens() {
        assert!(valid_hub_id("hub1"));
        assert!(valid_hub_id("eu-west_2"));
        assert!(!valid_hub_id(""));
        assert!(!valid_hub_id("a.b"));
        assert!(!valid_hub_id("hub 1"));
        assert!(!valid_hub_id(&"x".repeat(33)));
    }
}
