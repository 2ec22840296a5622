//! What a hub tells the other hubs of its cluster, and whether it leads the
//! cluster-wide jobs (issue 13). A leaf: the modules that hold state other hubs must
//! hear about (authority, webhooks) and the jobs use it without depending on
//! [`crate::cluster`].
//!
//! - [`Notifier`]: "reload this" ([`Notice`]) on `salam.notice`, after a change is
//!   committed: an agent, the site list, the sites with webhooks. Nothing is sent for a
//!   single hub.
//! - [`Leadership`]: whether this hub runs the cluster-wide jobs now (always for a single
//!   hub; the routing owner in a cluster).

use salam_bus::Client;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// The subject of notices.
pub const NOTICE: &str = "salam.notice";

/// "Reload this" from the hub that changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    Agent { agent_id: String, from: u16 },
    Sites { from: u16 },
    Webhooks { from: u16 },
}

/// Whether this hub runs the cluster-wide jobs now: always for a single hub; for
/// several, while it owns routing.
#[derive(Clone, Default)]
pub struct Leadership(Option<watch::Receiver<bool>>);

impl Leadership {
    pub fn of(owner: watch::Receiver<bool>) -> Leadership {
        Leadership(Some(owner))
    }

    pub fn leads(&self) -> bool {
        self.0.as_ref().is_none_or(|owner| *owner.borrow())
    }
}

/// Sends "reload this" notices to the other hubs (nothing for a single hub). Set once
/// the bus is up.
#[derive(Clone, Default)]
pub struct Notifier(Arc<OnceLock<(Client, u16)>>);

impl Notifier {
    pub fn connect(&self, client: Client, hub_number: u16) {
        let _ = self.0.set((client, hub_number));
    }

    fn send(&self, notice: impl FnOnce(u16) -> Notice) {
        if let Some((client, hub)) = self.0.get() {
            let notice = notice(*hub);
            match serde_json::to_vec(&notice) {
                Ok(bytes) => {
                    if let Err(err) = client.publish(NOTICE, bytes.into()) {
                        tracing::warn!(error = %err, ?notice, "a notice to the other hubs was lost");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "a notice cannot be encoded"),
            }
        }
    }

    pub fn agent_changed(&self, agent_id: &str) {
        self.send(|from| Notice::Agent {
            agent_id: agent_id.to_owned(),
            from,
        });
    }

    pub fn sites_changed(&self) {
        self.send(|from| Notice::Sites { from });
    }

    pub fn webhooks_changed(&self) {
        self.send(|from| Notice::Webhooks { from });
    }
}
