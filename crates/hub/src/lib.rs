//! The Salam hub: one process that visitors' widgets and agents' consoles connect to.
//!
//! Key design decision: **commit, then acknowledge, then relay.** A frame from a client
//! is decoded into a closed enum ([`salam_protocol`]), checked, and — if it carries a
//! message — committed through the store's group-commit writer before the sender gets
//! its `ack` and before anyone else sees it. Delivery goes through a [`fanout::Bus`] to
//! per-connection bounded mailboxes; each connection's send task restores sequence
//! order and fills gaps from the store, so a client sees every message once, in order,
//! live or after `resume`.
//!
//! The parts:
//! - [`config`]: typed settings with documented defaults (file → env → flags);
//! - [`auth`]: signed visitor tokens, argon2id passwords, session tokens;
//! - [`http`]: the axum router, upgrades, REST API and pages;
//! - [`ws`]: the connection loop shared by both endpoints (size and rate checks,
//!   ordered delivery, heartbeats, shutdown);
//! - [`visitor`] and [`agent`]: the two endpoints' frame handlers;
//! - [`service`]: conversation operations shared by the endpoints;
//! - [`fanout`]: the delivery bus and the registry of connections;
//! - [`metrics`]: counters for `/metrics`.

pub mod admin;
pub mod agent;
pub mod api;
pub mod assets;
pub mod auth;
pub mod bot;
pub mod config;
pub mod fanout;
pub mod http;
pub mod metrics;
pub mod routing;
pub mod service;
pub mod site;
pub mod state;
pub mod visitor;
pub mod ws;

use crate::auth::Secret;
use crate::config::Config;
use crate::fanout::{LocalBus, Registry};
use crate::state::AppState;
use salam_store::{AgentRole, NewAgent, Site, SqliteOptions, SqliteStore, Store, StoreError};
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
}

impl Hub {
    /// Opens the data directory and database, applies migrations, and on first start
    /// creates the server secret, the demo site and an admin.
    pub async fn open(config: Config) -> Result<Hub, HubError> {
        std::fs::create_dir_all(&config.data).map_err(|source| HubError::DataDir {
            path: config.data.clone(),
            source,
        })?;
        let store = open_store(&config)?;
        let secret = Secret::from_stored(
            &store
                .set_setting_if_absent("secret", &Secret::generate_stored())
                .await?,
        )
        .ok_or(HubError::Secret)?;
        let first_start = bootstrap(&store, &config).await?;
        let registry = Arc::new(Registry::default());
        let bus = Arc::new(LocalBus::new(registry.clone()));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let bot = Arc::new(bot::BotEngine::load(&config.bot.rules_dir).map_err(HubError::Rules)?);
        let (routing, routing_runner) = routing::channel();
        let routing_config = config.routing.clone();
        let poll = Duration::from_millis(config.bot.reload_poll_ms.max(100));
        let state = AppState::new(state::Parts {
            config,
            store: Arc::new(store),
            secret,
            registry,
            bus,
            shutdown: shutdown_rx.clone(),
            bot: bot.clone(),
            routing,
        });
        routing_runner.spawn(state.clone(), routing_config);
        bot.watch(poll, shutdown_rx);
        restore_routing(&state).await?;
        spawn_auto_close(state.clone());
        Ok(Hub {
            state,
            shutdown,
            first_start,
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
        // TCP_NODELAY: chat frames are small, and Nagle's algorithm holding one back
        // until the peer's delayed ACK (40 ms on Linux) was the p99 at 5k messages/s.
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
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

/// Opens the SQLite store as configured.
pub fn open_store(config: &Config) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(
        &config.database_path(),
        SqliteOptions {
            synchronous_full: config.store.synchronous_full,
            queue: config.store.queue as usize,
            max_batch: config.store.max_batch as usize,
            ..SqliteOptions::default()
        },
    )
}

/// First start: a demo site (if there is no site) and an admin (if there is no agent).
async fn bootstrap(store: &SqliteStore, config: &Config) -> Result<FirstStart, HubError> {
    let mut first_start = FirstStart {
        site: None,
        admin: None,
    };
    if !config.demo.enabled {
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
        let site_ids = store
            .list_sites()
            .await?
            .into_iter()
            .map(|site| site.id)
            .collect();
        let email = "admin@salam.local".to_owned();
        store
            .create_agent(NewAgent {
                email: email.clone(),
                name: "Admin".into(),
                role: AgentRole::Admin,
                password_hash: hash,
                site_ids,
                capacity: None,
                departments: Vec::new(),
            })
            .await?;
        first_start.admin = Some((email, password));
    }
    Ok(first_start)
}

/// After a restart: queued conversations go back in their queues, and assigned ones to
/// their agents (who get the grace period to reconnect).
async fn restore_routing(state: &AppState) -> Result<(), HubError> {
    use salam_protocol::ConversationState;
    for conversation in state
        .store
        .conversations_in_state(ConversationState::Assigned)
        .await?
    {
        let Some(agent_id) = &conversation.agent_id else {
            continue;
        };
        if let Some(agent) = state.store.agent_by_id(agent_id).await? {
            state
                .routing
                .send(routing::Command::Restore {
                    agent,
                    site_id: conversation.site_id.clone(),
                    conversation: conversation.id.clone(),
                    department: conversation.department.clone(),
                })
                .await;
        }
    }
    for conversation in state
        .store
        .conversations_in_state(ConversationState::Queued)
        .await?
    {
        state
            .routing
            .send(routing::Command::HandOff {
                site_id: conversation.site_id.clone(),
                conversation: conversation.id.clone(),
                department: conversation.department.clone(),
                priority: conversation.priority,
            })
            .await;
    }
    Ok(())
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
            let before = state::now_ms() - idle_ms;
            let idle = match state.store.idle_conversations(before, 200).await {
                Ok(idle) => idle,
                Err(err) => {
                    tracing::warn!(error = %err, "auto-close scan failed");
                    continue;
                }
            };
            for conversation in idle {
                let reason = format!(
                    "closed after {} minutes without activity",
                    seconds.div_ceil(60)
                );
                if let Err(err) = service::close(
                    &state,
                    &conversation,
                    conversation.agent_id.as_deref(),
                    &reason,
                )
                .await
                {
                    tracing::warn!(conversation = %conversation.id, error = %err, "auto-close failed");
                }
            }
        }
    });
}
