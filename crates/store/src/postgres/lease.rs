//! Several hubs on one database (issue 13): each hub's number in the cluster, and the
//! one routing owner.
//!
//! Both are PostgreSQL session advisory locks held on a connection of the hub's own
//! ([`PostgresStore::join_cluster`]), so they end with the hub's session: a killed hub's
//! locks are released by the server as soon as its connection drops.
//!
//! - **The hub number** (1‥=4095): the first of the number locks nobody holds. It
//!   qualifies the hub's connection ids, so no two live hubs share one.
//! - **The routing lease**: one lock, tried every [`LEASE_EVERY`] by every hub that does
//!   not hold it. Its holder runs routing and the cluster-wide jobs. The watcher checks
//!   its session at the same pace: when the session is lost (the server restarted, the
//!   network failed), the hub stops being the owner at once, connects again, and
//!   competes again.
//!
//! A hub that lost its session may still believe it owns routing for up to one check
//! ([`LEASE_EVERY`]) while another hub has already taken over. Every state change is
//! a compare-and-set in the store, so a stale decision is refused there, never applied.

use super::{PostgresStore, connect, map_err};
use crate::StoreError;
use pg::Client;
use std::time::Duration;
use tokio::sync::watch;

/// How often a hub checks its lease session and tries to take the routing lease.
pub const LEASE_EVERY: Duration = Duration::from_millis(500);

/// The routing lease's advisory lock key ("salam" and 3).
const ROUTING_LOCK: i64 = 0x73_61_6c_61_6d_03;
/// Hub numbers are the advisory locks `NUMBER_BASE + n`.
const NUMBER_BASE: i64 = 0x7361_6c61_6d00_0000;
/// Hub numbers go from 1 to this.
pub const MAX_HUB_NUMBER: u16 = 4095;

/// A hub's membership of the cluster: its number and whether it owns routing now.
/// Dropping it ends the lease's session (and with it both locks).
pub struct ClusterLease {
    /// This hub's number, unique among live hubs.
    pub hub_number: u16,
    /// `true` while this hub holds the routing lease.
    pub owner: watch::Receiver<bool>,
    _stop: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for ClusterLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLease")
            .field("hub_number", &self.hub_number)
            .field("owner", &*self.owner.borrow())
            .finish()
    }
}

fn try_lock(client: &mut Client, key: i64) -> Result<bool, StoreError> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .map_err(map_err)?
        .get(0))
}

/// Takes the first free hub number (or `wanted` when it is free).
fn claim_number(client: &mut Client, wanted: Option<u16>) -> Result<Option<u16>, StoreError> {
    if let Some(number) = wanted
        && try_lock(client, NUMBER_BASE + i64::from(number))?
    {
        return Ok(Some(number));
    }
    for number in 1..=MAX_HUB_NUMBER {
        if try_lock(client, NUMBER_BASE + i64::from(number))? {
            return Ok(Some(number));
        }
    }
    Ok(None)
}

impl PostgresStore {
    /// Joins the cluster of hubs that share this database: takes a hub number and
    /// starts competing for the routing lease (see the module docs). Blocking: call it
    /// from a blocking task.
    pub fn join_cluster(&self) -> Result<ClusterLease, StoreError> {
        let mut config = self.readers.config.clone();
        let name = format!(
            "{}-cluster-lease",
            config.get_application_name().unwrap_or("salam")
        );
        config.application_name(&name);
        let mut client = connect(&config)?;
        let hub_number = claim_number(&mut client, None)?.ok_or_else(|| {
            StoreError::Conflict(format!(
                "every hub number (1 to {MAX_HUB_NUMBER}) is taken by a live hub"
            ))
        })?;
        let (owner_tx, owner) = watch::channel(false);
        let (stop, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("salam-pg-lease".into())
            .spawn(move || watch_lease(client, config, hub_number, owner_tx, stopped))
            .map_err(|err| StoreError::Unavailable(format!("cannot watch the lease: {err}")))?;
        Ok(ClusterLease {
            hub_number,
            owner,
            _stop: stop,
        })
    }
}

/// The lease's thread: see the module docs.
fn watch_lease(
    client: Client,
    config: pg::Config,
    hub_number: u16,
    owner: watch::Sender<bool>,
    stop: std::sync::mpsc::Receiver<()>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut client = Some(client);
    let mut first = true;
    loop {
        if !first {
            match stop.recv_timeout(LEASE_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => break,
            }
        }
        first = false;
        let alive = client
            .as_mut()
            .is_some_and(|client| client.is_valid(LEASE_EVERY).is_ok());
        if !alive {
            if *owner.borrow() {
                tracing::warn!("the routing lease's database session was lost: not the owner");
            }
            owner.send_replace(false);
            client = None;
            match connect(&config) {
                Ok(mut fresh) => match claim_number(&mut fresh, Some(hub_number)) {
                    Ok(Some(number)) if number == hub_number => client = Some(fresh),
                    Ok(_) => {
                        tracing::error!(
                            hub_number,
                            "this hub's number was taken by another hub while its session \
                             was lost; connection ids may collide until one of them restarts"
                        );
                        client = Some(fresh);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot take the hub number again yet");
                        continue;
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, "the cluster lease cannot reconnect yet");
                    continue;
                }
            }
        }
        if *owner.borrow() {
            continue;
        }
        let Some(session) = client.as_mut() else {
            continue;
        };
        match try_lock(session, ROUTING_LOCK) {
            Ok(true) => {
                tracing::info!(hub_number, "this hub now owns routing");
                owner.send_replace(true);
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "cannot try the routing lease"),
        }
    }
    owner.send_replace(false);
    // Closing the session releases both locks.
    drop(client);
}
