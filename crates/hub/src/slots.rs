//! Connection slots: what an open WebSocket holds until it closes.
//!
//! - Every socket holds one of `limits.max_connections` permits (the shutdown waits
//!   for all of them to come back).
//! - A visitor's socket also holds one of the visitors' permits: all of them but
//!   `limits.agent_reserved_connections`, so anonymous visitors can never take the
//!   slots agents need to answer them.
//! - A visitor's socket counts against its address: at most
//!   `limits.max_connections_per_ip` at once (HTTP 429 beyond).
//!
//! A [`Slot`] gives everything back when dropped.

use crate::state::AppState;
use std::net::IpAddr;
use tokio::sync::OwnedSemaphorePermit;

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The hub (or the visitors' share of it) is full: 503.
    Full,
    /// This address has its share open already: 429.
    PerAddress,
}

/// A held slot; see the module docs.
pub struct Slot {
    _total: OwnedSemaphorePermit,
    _visitor: Option<OwnedSemaphorePermit>,
    address: Option<(AppState, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((state, ip)) = self.address.take() {
            // Remove the entry at zero so the map only holds addresses with sockets.
            state.sockets_per_ip.remove_if_mut(&ip, |_, open| {
                *open = open.saturating_sub(1);
                *open == 0
            });
        }
    }
}

/// A slot for a visitor's socket from `ip`.
pub fn visitor(state: &AppState, ip: IpAddr) -> Result<Slot, Refusal> {
    let cap = state.config.limits.max_connections_per_ip.max(1);
    let total = state
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal::Full)?;
    let visitor = state
        .visitor_connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal::Full)?;
    {
        let mut open = state.sockets_per_ip.entry(ip).or_insert(0);
        if *open >= cap {
            return Err(Refusal::PerAddress);
        }
        *open += 1;
    }
    Ok(Slot {
        _total: total,
        _visitor: Some(visitor),
        address: Some((state.clone(), ip)),
    })
}

/// A slot for an agent's socket: any of the hub's permits, the reserved ones
/// included.
pub fn agent(state: &AppState) -> Result<Slot, Refusal> {
    let total = state
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal::Full)?;
    Ok(Slot {
        _total: total,
        _visitor: None,
        address: None,
    })
}
