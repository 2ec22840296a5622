//! The Salam hub: one process that visitors' widgets and agents' consoles connect to.
//!
//! Key design decision: **commit, then acknowledge, then relay.** A frame from a client
//! is decoded into a closed enum ([`salam_protocol`]), checked, and — if it carries a
//! message — committed through the store's group-commit writer before the sender gets
//! its `ack` and before anyone else sees it. Delivery goes through a [`fanout::Bus`] by
//! subscription to per-connection bounded mailboxes; each connection's send task
//! restores sequence order and fills gaps from the store, so a client sees every
//! message once, in order, live or after `resume`.
//!
//! The parts, from the edge inwards:
//! - [`server`]: the accept loop (header-read timeout, TCP connections per address,
//!   the peer's address for [`extract::ClientIp`]); [`slots`]: the WebSocket slots
//!   (agents' reserve, sockets per address); [`throttle`] and [`rate`]: failed
//!   sign-ins, and write rates per visitor and per address;
//! - [`http`]: the axum router, the WebSocket upgrades and the pages (the console and
//!   the REST API compressed on the fly; [`assets`]: the widget precompressed at build
//!   time, chosen by `Accept-Encoding`); [`api`] (reads),
//!   [`admin`] (admin writes), [`account`] (sign-in, password) and [`operations`] (a
//!   visitor's data on request, the audit log) are the REST handlers, with identity
//!   and permission as extractors ([`extract`]) and one error type ([`error`]);
//! - [`api_v1`]: the REST API v1 for other systems (API tokens of one site with a scope,
//!   demanded by the `ApiCaller<S>` extractor), its routes and OpenAPI 3.1 document
//!   generated from the handlers in [`openapi`] (`/api/openapi.json`, `/api/docs`);
//! - [`ws`]: the connection loop shared by both endpoints (size, decode, rate, `ping`
//!   and handshake checks written once; ordered delivery, heartbeats, shutdown);
//! - [`visitor`] and [`agent`]: the two endpoints, one module per frame type;
//!   [`identity`]: the signed identity tokens of `identify`; [`text`]: the hygiene of
//!   everything people type;
//! - [`conversation`]: conversation operations shared by the endpoints, REST and timers
//!   (commit, ack, publish; hand-off and close as compare-and-set transitions);
//!   [`triage`]: the bot's turn; [`unanswered`]: the bot's unanswered questions grouped;
//!   [`rule_files`]: examples added to the rule files from the console;
//! - [`customer`]: who a visitor is to the site: the customer's attributes (contact and signed
//!   identity merged) and conditions on them (issue 19), the conditions themselves in
//!   [`conditions`] (pure, so site settings can hold them); [`key_accounts`]: per-site
//!   priority rules on those attributes (priority, skip the bot, department, owner
//!   first), applied at the hand-off by [`key_account_routing`] (issue 19);
//!   [`signed_contact`]: a verified identity's name, e-mail and attributes onto the
//!   site's contact, with history;
//!   [`bot_customer`]: the customer's `{name}` and `{key|fallback}` in bot answers;
//!   [`customer_api`]: the console's customer card and customer search;
//! - [`timeline`]: the customer timeline (issue 19): every conversation, offline request
//!   and proactive message of a customer across their identified devices, and the pages
//!   of the current session (recorded by [`visitor`]'s `hello`), for the console;
//! - [`trigger_rules`] and [`triggers`]: proactive triggers, their rules in the site
//!   settings (pure) and what the hub does with them: signed rules for the widget,
//!   reports, the conversation a reply starts (issue 19);
//! - [`authority`]: the one owner of agent authority (role, sites, sessions), which
//!   open sockets watch;
//! - [`routing`]: the routing actor (pure, no I/O), its executor and published views;
//! - [`publish`] and [`fanout`]: what is sent on which topic, and the registry of
//!   subscriptions;
//! - [`cluster`]: several hubs on one PostgreSQL database and a NATS bus (issue 13): the
//!   bus between hubs, one routing owner by lease and forwarding to it; [`peers`]: the
//!   notices between hubs and which hub runs the cluster-wide jobs (a leaf);
//! - [`webhooks`]: webhook events into the store's durable outbox, and the dispatcher
//!   that signs and delivers them (issue 17); [`webhook_admin`]: its admin REST API;
//! - [`retention`] (the retention sweep, a job one hub (the routing owner of a cluster)
//!   or `salam retention run` carries out) and [`privacy`] (a visitor's export and erasure, shared by the
//!   command line and REST): running the hub for years;
//! - [`email`] (issue 17): e-mail as a channel: templates, the SMTP listener for
//!   replies, threading, loop protection, the reply endpoint and the timers;
//!   [`mail_out`]: the bounded outgoing queue and its sending task (a leaf module);
//! - [`state`]: the one `Clone` handle; [`config`], [`site`], [`auth`], [`bot`],
//!   [`metrics`], [`clock`]; [`refused`]: the origins recently refused per site.

pub mod account;
pub mod admin;
pub mod agent;
pub mod api;
pub mod api_v1;
pub mod assets;
pub mod auth;
pub mod authority;
pub mod bot;
pub mod bot_customer;
pub mod clock;
pub mod cluster;
pub mod conditions;
pub mod config;
pub mod conversation;
pub mod customer;
pub mod customer_api;
pub mod email;
pub mod error;
pub mod extract;
pub mod fanout;
pub mod http;
pub mod identity;
pub mod key_account_routing;
pub mod key_accounts;
pub mod mail_out;
pub mod metrics;
pub mod openapi;
pub mod operations;
pub mod peers;
pub mod privacy;
pub mod publish;
pub mod rate;
pub mod refused;
pub mod retention;
pub mod routing;
pub mod rule_files;
pub mod server;
pub mod signed_contact;
pub mod site;
pub mod slots;
pub mod state;
pub mod text;
pub mod throttle;
pub mod timeline;
pub mod triage;
pub mod trigger_rules;
pub mod triggers;
pub mod unanswered;
pub mod visitor;
pub mod webhook_admin;
pub mod webhooks;
pub mod ws;

#[cfg(test)]
mod tests;

use crate::auth::Secret;
use crate::config::Config;
use crate::fanout::{LocalBus, Registry};
use crate::state::AppState;
use salam_protocol::{EventCode, SystemEvent};
use salam_store::{
    AgentRole, HubClaim, NewAgent, PostgresOptions, PostgresStore, Site, SqliteOptions,
    SqliteStore, Store, StoreError,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("the stored server secret is malformed")]
    Secret,
    #[error("cannot hash the admin password: {0}")]
    Hash(String),
    #[error("the bot's rules do not load:\n{0}")]
    Rules(String),
    #[error("the first admin's e-mail {0:?} is not a valid address")]
    AdminEmail(String),
    #[error("e-mail: {0}")]
    Email(String),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
}

/// What the first start created; the binary prints it once.
#[derive(Debug, Clone)]
pub struct FirstStart {
    pub site: Option<Site>,
    pub admin: Option<(String, String)>,
}

/// An opened hub, ready to serve.
pub struct Hub {
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    /// What this start created (the demo site, the admin's e-mail and password).
    pub first_start: FirstStart,
    /// On PostgreSQL without a bus: this hub alone serves the database while it runs.
    _claim: Option<HubClaim>,
}

/// How a hub is connected to others.
enum Serving {
    /// Alone (SQLite, or PostgreSQL claimed by this hub only).
    Alone(Option<HubClaim>),
    /// In a cluster (PostgreSQL and a bus).
    Cluster(Arc<cluster::Cluster>),
}

impl Hub {
    /// Opens the data directory and database, applies migrations, and on first start
    /// creates the server secret, the demo site and an admin.
    pub async fn open(config: Config) -> Result<Hub, HubError> {
        std::fs::create_dir_all(&config.data).map_err(|source| HubError::DataDir {
            path: config.data.clone(),
            source,
        })?;
        let (store, serving) = open_serving_store(&config).await?;
        let secret = Secret::from_stored(
            &store
                .set_setting_if_absent("secret", &Secret::generate_stored())
                .await?,
        )
        .ok_or(HubError::Secret)?;
        let first_start = bootstrap(store.as_ref(), &config).await?;
        let registry = Arc::new(Registry::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (bus, bus_metrics): (Arc<dyn fanout::Bus>, _) = match &serving {
            Serving::Alone(_) => (Arc::new(LocalBus::new(registry.clone())), None),
            Serving::Cluster(cluster) => {
                let bus = cluster::bus::NatsBus::start(
                    registry.clone(),
                    cluster.client.clone(),
                    shutdown_rx.clone(),
                );
                let metrics = bus.metrics.clone();
                (Arc::new(bus), Some(metrics))
            }
        };
        let bot = Arc::new(bot::BotEngine::load(&config.bot.rules_dir).map_err(HubError::Rules)?);
        let (actor, routing_runner) = routing::channel();
        let webhooks = webhooks::Webhooks::load(store.clone()).await?;
        // Before anything is served: events a crash kept out of the outbox.
        webhooks.recover().await?;
        routing_runner.spawn(
            router_config(&config.routing),
            routing::executor::Executor {
                store: store.clone(),
                bus: bus.clone(),
                registry: registry.clone(),
                webhooks: webhooks.clone(),
            },
            shutdown_rx.clone(),
        );
        let routing = match &serving {
            Serving::Alone(_) => actor,
            Serving::Cluster(cluster) => cluster::routing::start(cluster::routing::Front {
                hub_number: cluster.hub_number,
                client: cluster.client.clone(),
                owner: cluster.owner.clone(),
                actor,
                store: store.clone(),
                registry: registry.clone(),
                routing_config: config.routing.clone(),
                shutdown: shutdown_rx.clone(),
            }),
        };
        let authority = Arc::new(authority::Authority::load(store.clone(), routing.clone()).await?);
        let (cluster, claim) = match serving {
            Serving::Alone(claim) => (None, claim),
            Serving::Cluster(cluster) => {
                authority
                    .notifier
                    .connect(cluster.client.clone(), cluster.hub_number);
                webhooks
                    .notifier()
                    .connect(cluster.client.clone(), cluster.hub_number);
                (Some(cluster), None)
            }
        };
        let poll = Duration::from_millis(config.bot.reload_poll_ms.max(100));
        let state = AppState::new(state::Parts {
            config,
            store,
            secret,
            registry,
            bus,
            shutdown: shutdown_rx.clone(),
            bot: bot.clone(),
            routing,
            authority,
            webhooks,
            cluster: cluster.clone(),
            bus_metrics,
        });
        bot.watch(poll, shutdown_rx);
        match &cluster {
            // The routing owner rebuilds routing when it takes over.
            Some(cluster) => {
                spawn_notices(state.clone(), cluster.client.clone(), cluster.hub_number)
            }
            None => restore_routing(&state).await?,
        }
        spawn_auto_close(state.clone());
        retention::spawn(state.clone());
        webhooks::dispatch::spawn(webhooks::dispatch::Dispatcher {
            store: state.store.clone(),
            bus: state.bus.clone(),
            webhooks: state.webhooks.clone(),
            config: state.config.webhooks.clone(),
            shutdown: state.shutdown.clone(),
            leadership: state.leadership(),
        });
        email::spawn(&state).await.map_err(HubError::Email)?;
        Ok(Hub {
            state,
            shutdown,
            first_start,
            _claim: claim,
        })
    }

    /// Serves until `signal` resolves, then shuts down gracefully: stop accepting, tell
    /// every client to reconnect (close code 1012), wait for connections to end, and
    /// flush pending commits.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let shutdown = self.shutdown;
        let router = http::app(state.clone());
        let limits = &state.config.limits;
        let server_limits = server::ServerLimits {
            header_timeout: Duration::from_secs(u64::from(limits.header_timeout_secs.max(1))),
            // Room for the REST calls of the address's sockets besides the sockets.
            tcp_per_ip: limits.max_connections_per_ip as usize + 64,
            trusted_proxies: state.config.auth.trusted_proxies.clone(),
        };
        if let Some(address) = state.config.metrics.listen {
            let metrics = TcpListener::bind(address).await?;
            tracing::info!(%address, "metrics listening");
            let mut stopped = state.shutdown.clone();
            tokio::spawn(server::serve(
                metrics,
                http::metrics_app(state.clone()),
                server_limits.clone(),
                async move {
                    let _ = stopped.changed().await;
                },
            ));
        }
        server::serve(listener, router, server_limits, async move {
            signal.await;
            tracing::info!("shutting down: closing client connections");
            let _ = shutdown.send(true);
        })
        .await?;
        // Upgraded sockets outlive the HTTP server: wait until every connection has
        // given back its permit (or a deadline passes).
        let all = state.config.limits.max_connections;
        let _ =
            tokio::time::timeout(Duration::from_secs(5), state.connections.acquire_many(all)).await;
        if let Err(err) = state.store.flush().await {
            tracing::warn!(error = %err, "final flush failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the store as configured: a PostgreSQL database for a `postgres://` URL
/// (`store.url`, `SALAM_DATABASE_URL`), else the SQLite file in the data directory.
/// Applies the migrations the database lacks.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config.store.url.as_deref() {
        Some(url) => Arc::new(open_postgres(config, url).await?),
        None => Arc::new(SqliteStore::open(
            &config.database_path(),
            SqliteOptions {
                synchronous_full: config.store.synchronous_full,
                queue: config.store.queue as usize,
                max_batch: config.store.max_batch as usize,
                ..SqliteOptions::default()
            },
        )?),
    })
}

/// The store a serving hub uses: [`open_store`]; on PostgreSQL with a bus, the hub
/// joins its cluster ([`cluster::Cluster::join`]); on PostgreSQL alone, the claim that
/// this hub alone serves the database (see [`PostgresStore::claim_single_hub`]).
async fn open_serving_store(config: &Config) -> Result<(Arc<dyn Store>, Serving), HubError> {
    match (config.store.url.as_deref(), config.bus.url.as_deref()) {
        (None, Some(_)) => Err(cluster::ClusterError::NeedsPostgres.into()),
        (Some(url), Some(bus)) => {
            let store = open_postgres(config, url).await?;
            let cluster =
                cluster::Cluster::join(&store, bus, config.cluster.hub_id.as_deref()).await?;
            Ok((Arc::new(store), Serving::Cluster(Arc::new(cluster))))
        }
        (Some(url), None) => {
            let store = open_postgres(config, url).await?;
            let claimer = store.clone();
            let claim = tokio::task::spawn_blocking(move || claimer.claim_single_hub())
                .await
                .map_err(|err| StoreError::Unavailable(format!("claim task failed: {err}")))??;
            Ok((Arc::new(store), Serving::Alone(Some(claim))))
        }
        (None, None) => Ok((open_store(config).await?, Serving::Alone(None))),
    }
}

async fn open_postgres(config: &Config, url: &str) -> Result<PostgresStore, StoreError> {
    let url = postgres_url(url)?.to_owned();
    let options = PostgresOptions {
        queue: config.store.queue as usize,
        max_batch: config.store.max_batch as usize,
        ..PostgresOptions::default()
    };
    tokio::task::spawn_blocking(move || PostgresStore::connect(&url, options))
        .await
        .map_err(|err| StoreError::Unavailable(format!("connect task failed: {err}")))?
}

/// `store.url` when it names PostgreSQL; any other scheme is refused, naming only the
/// scheme (the URL may hold a password).
fn postgres_url(url: &str) -> Result<&str, StoreError> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "postgres" | "postgresql" => Ok(url),
        _ => Err(StoreError::Unavailable(format!(
            "store.url must be a postgres:// URL (SQLite needs no URL: leave it out); got the scheme \"{scheme}\""
        ))),
    }
}

/// Applies the migrations the configured database lacks (`salam migrate`); returns
/// what it did, for the operator. Safe while hubs run and when several run it at once.
pub async fn migrate_store(config: &Config) -> Result<String, StoreError> {
    match config.store.url.as_deref() {
        Some(url) => {
            let url = postgres_url(url)?.to_owned();
            let version = tokio::task::spawn_blocking(move || PostgresStore::migrate(&url))
                .await
                .map_err(|err| StoreError::Unavailable(format!("migrate task failed: {err}")))??;
            Ok(format!("PostgreSQL database at schema version {version}"))
        }
        None => {
            open_store(config).await?.flush().await?;
            Ok(format!(
                "SQLite database {} at the current schema version",
                config.database_path().display()
            ))
        }
    }
}

/// First start: a demo site (if there is no site) and an admin (if there is no agent).
/// Several hubs may start at once on one new PostgreSQL database: the first to claim
/// the `first_start` setting does it, once for the whole cluster, and only that hub
/// prints the password.
async fn bootstrap(store: &dyn Store, config: &Config) -> Result<FirstStart, HubError> {
    let mut first_start = FirstStart {
        site: None,
        admin: None,
    };
    if !config.demo.enabled {
        return Ok(first_start);
    }
    let claim = auth::random_token(12);
    if store.set_setting_if_absent("first_start", &claim).await? != claim {
        return Ok(first_start);
    }
    let sites = store.list_sites().await?;
    if sites.is_empty() {
        let port = config.listen.port();
        let mut origins = vec![
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ];
        origins.extend(config.demo.origins.iter().cloned());
        first_start.site = Some(store.create_site("Demo Store", &origins).await?);
    }
    if store.count_agents().await? == 0 {
        let password = auth::generate_password();
        let hash = auth::hash_password(&password).map_err(|err| HubError::Hash(err.to_string()))?;
        // Never a fixed, guessable address: the one chosen at first start
        // (`--admin-email`, `SALAM_ADMIN_EMAIL`), else a random one, printed once.
        let email = match &config.auth.first_admin_email {
            Some(email) if auth::valid_email(email.trim()) => email.trim().to_owned(),
            Some(email) => return Err(HubError::AdminEmail(email.clone())),
            None => format!(
                "admin-{}@salam.local",
                auth::random_token(6)
                    .to_lowercase()
                    .replace(['-', '_'], "x")
            ),
        };
        store
            .create_agent(NewAgent {
                email: email.clone(),
                name: "Admin".into(),
                role: AgentRole::Admin,
                password_hash: hash,
                all_sites: true,
                site_ids: Vec::new(),
                capacity: None,
                departments: Vec::new(),
            })
            .await?;
        first_start.admin = Some((email, password));
    }
    Ok(first_start)
}

/// The routing settings of the hub.
pub fn router_config(hub: &config::RoutingConfig) -> salam_routing::RouterConfig {
    salam_routing::RouterConfig {
        default_capacity: hub.default_capacity.max(1),
        grace_ms: hub.grace_secs as u64 * 1000,
        default_policy: site::SiteSettings::default().routing_policy(hub),
        sla_priority_boost: hub.sla_priority_boost,
        ..salam_routing::RouterConfig::default()
    }
}

/// After a start: routing is rebuilt from the database (sites and their policies,
/// agents and the status they chose, queued and assigned conversations). Agents with
/// assigned chats get the grace period to reconnect.
async fn restore_routing(state: &AppState) -> Result<(), HubError> {
    let restore = restore_of(state.store.as_ref(), &state.config.routing).await?;
    state
        .routing
        .send(routing::Command::Restore(Box::new(restore)))
        .await;
    Ok(())
}

/// What routing is rebuilt from: sites and their policies, agents and the status they
/// chose, queued and assigned conversations.
pub(crate) async fn restore_of(
    store: &dyn Store,
    routing_config: &config::RoutingConfig,
) -> Result<routing::Restore, StoreError> {
    use salam_protocol::ConversationState;
    let sites = store
        .list_sites()
        .await?
        .into_iter()
        .map(|site| {
            let settings = site::SiteSettings::parse(&site.settings);
            let policy = settings.routing_policy(routing_config);
            (site.id, policy, u64::from(settings.callback_after_secs))
        })
        .collect();
    let agents = store.list_agents().await?;
    let mut conversations = store
        .conversations_in_state(ConversationState::Assigned)
        .await?;
    conversations.extend(
        store
            .conversations_in_state(ConversationState::Queued)
            .await?,
    );
    Ok(routing::Restore {
        sites,
        agents,
        conversations,
    })
}

/// Applies the other hubs' notices here until the hub stops.
fn spawn_notices(state: AppState, client: salam_bus::Client, hub_number: u16) {
    tokio::spawn(async move {
        let mut notices = match client.subscribe(peers::NOTICE).await {
            Ok(notices) => notices,
            Err(err) => {
                tracing::error!(error = %err, "cannot hear the other hubs' notices");
                return;
            }
        };
        let mut shutdown = state.shutdown.clone();
        loop {
            let message = tokio::select! {
                _ = shutdown.changed() => return,
                message = notices.next() => message,
            };
            let Some(message) = message else { return };
            let notice: peers::Notice = match serde_json::from_slice(&message.payload) {
                Ok(notice) => notice,
                Err(err) => {
                    tracing::warn!(error = %err, "an unreadable notice");
                    continue;
                }
            };
            let result = match notice {
                peers::Notice::Agent { from, .. }
                | peers::Notice::Sites { from }
                | peers::Notice::Webhooks { from }
                    if from == hub_number =>
                {
                    Ok(())
                }
                peers::Notice::Agent { agent_id, .. } => {
                    state.authority.reload_agent(&agent_id).await
                }
                peers::Notice::Sites { .. } => state.authority.reload_sites_here().await,
                peers::Notice::Webhooks { .. } => state.webhooks.refresh_here().await,
            };
            if let Err(err) = result {
                tracing::warn!(error = %err, "a notice could not be applied");
            }
        }
    });
}

/// Closes conversations idle for longer than `routing.auto_close_secs`.
fn spawn_auto_close(state: AppState) {
    let seconds = state.config.routing.auto_close_secs;
    if seconds == 0 {
        return;
    }
    let idle_ms = seconds as i64 * 1000;
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let every = Duration::from_millis((idle_ms as u64 / 10).clamp(500, 60_000));
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {}
            }
            // Once per cluster: on the routing owner.
            if !state.leads() {
                continue;
            }
            let before = clock::now_ms() - idle_ms;
            let idle = match state.store.idle_conversations(before, 200).await {
                Ok(idle) => idle,
                Err(err) => {
                    tracing::warn!(error = %err, "auto-close scan failed");
                    continue;
                }
            };
            let minutes = seconds.div_ceil(60).to_string();
            let reason = SystemEvent::new(EventCode::ClosedIdle, &[("minutes", &minutes)]);
            for idle in idle {
                if let Err(err) = conversation::close(&state, &idle.id, reason.clone()).await {
                    tracing::warn!(conversation = %idle.id, error = %err, "auto-close failed");
                }
            }
        }
    });
}
