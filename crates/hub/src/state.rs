//! The one shared state handle.

use crate::auth::Secret;
use crate::config::Config;
use crate::fanout::{Bus, Registry};
use crate::metrics::Metrics;
use salam_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, watch};

/// Cheap to clone: every handler gets one. Methods return owned data; nothing here is
/// locked across an `.await`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub secret: Secret,
    pub registry: Arc<Registry>,
    pub bus: Arc<dyn Bus>,
    pub metrics: Metrics,
    /// The bot's rules (swappable at run time).
    pub bot: Arc<crate::bot::BotEngine>,
    /// The routing actor and its published views.
    pub routing: crate::routing::Routing,
    /// The owner of agent authority (roles, sites, sessions).
    pub authority: Arc<crate::authority::Authority>,
    /// One permit per open WebSocket: bounds connections.
    pub connections: Arc<Semaphore>,
    /// Visitors' share of `connections` (the rest is kept for agents).
    pub visitor_connections: Arc<Semaphore>,
    /// Open WebSockets per client address.
    pub sockets_per_ip: dashmap::DashMap<std::net::IpAddr, u32>,
    /// Password hashes computed at once (each costs about 19 MiB of memory).
    pub hashing: Arc<Semaphore>,
    /// Wrong logins per account and address.
    pub throttle: crate::throttle::Throttle,
    /// Message rate buckets shared by a visitor's sockets and by an address's visitors.
    pub buckets: crate::rate::SharedBuckets,
    /// Flips to `true` when the hub shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The origins recently refused per site (bounded), for the site's admins.
    pub refused_origins: crate::refused::RefusedOrigins,
    /// Webhooks (issue 17): emits events into the outbox, wakes the dispatcher.
    pub webhooks: crate::webhooks::Webhooks,
    /// Outgoing mail and e-mail's hooks (issue 17).
    pub email: Arc<crate::mail_out::Email>,
    /// Several hubs: this hub's membership (absent for a single hub).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Several hubs: the bus's counters.
    pub bus_metrics: Option<Arc<crate::cluster::bus::BusMetrics>>,
    next_connection: AtomicU64,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What a hub's state is made of.
pub struct Parts {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub secret: Secret,
    pub registry: Arc<Registry>,
    pub bus: Arc<dyn Bus>,
    pub shutdown: watch::Receiver<bool>,
    pub bot: Arc<crate::bot::BotEngine>,
    pub routing: crate::routing::Routing,
    pub authority: Arc<crate::authority::Authority>,
    pub webhooks: crate::webhooks::Webhooks,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub bus_metrics: Option<Arc<crate::cluster::bus::BusMetrics>>,
}

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        let permits = parts.config.limits.max_connections as usize;
        // Agents keep their reserve, but never more than half the hub (a small
        // `max_connections` must not lock visitors out).
        let reserved = (parts.config.limits.agent_reserved_connections as usize).min(permits / 2);
        let visitor_permits = permits - reserved;
        let hashing = match parts.config.auth.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n as usize,
        };
        let email = Arc::new(crate::mail_out::Email::new(&parts.config.smtp));
        AppState(Arc::new(Shared {
            config: parts.config,
            store: parts.store,
            secret: parts.secret,
            registry: parts.registry,
            bus: parts.bus,
            metrics: Metrics::default(),
            bot: parts.bot,
            routing: parts.routing,
            authority: parts.authority,
            connections: Arc::new(Semaphore::new(permits)),
            visitor_connections: Arc::new(Semaphore::new(visitor_permits)),
            sockets_per_ip: dashmap::DashMap::new(),
            hashing: Arc::new(Semaphore::new(hashing)),
            throttle: crate::throttle::Throttle::default(),
            buckets: crate::rate::SharedBuckets::default(),
            shutdown: parts.shutdown,
            refused_origins: crate::refused::RefusedOrigins::default(),
            webhooks: parts.webhooks,
            email,
            next_connection: AtomicU64::new(
                parts
                    .cluster
                    .as_ref()
                    .map_or(1, |cluster| cluster.first_connection_id()),
            ),
            cluster: parts.cluster,
            bus_metrics: parts.bus_metrics,
        }))
    }

    /// Whether this hub runs the cluster-wide jobs now (always, for a single hub).
    pub fn leads(&self) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|cluster| cluster.is_owner())
    }

    /// [`AppState::leads`] as a handle for tasks that outlive a borrow.
    pub fn leadership(&self) -> crate::peers::Leadership {
        self.cluster
            .as_ref()
            .map(|cluster| crate::peers::Leadership::of(cluster.owner.clone()))
            .unwrap_or_default()
    }

    /// A connection number unique across live hubs (a hub's number in the top bits).
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// The hub's limits as told to clients.
    pub fn wire_limits(&self) -> salam_protocol::Limits {
        let limits = &self.config.limits;
        salam_protocol::Limits {
            max_text_chars: limits.max_text_chars,
            max_frame_bytes: limits.max_frame_bytes,
            rate_per_sec: limits.rate_per_sec,
            burst: limits.burst,
        }
    }
}
