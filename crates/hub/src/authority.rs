//! The one owner of agent authority: who an agent is, their role, their sites, whether
//! the account is enabled, and which of their sessions are live.
//!
//! Nothing about permissions is copied into a connection at `hello` and then trusted:
//! every agent socket holds a [`watch::Receiver`] of its agent's [`Grant`] and checks
//! each frame against the current one. Every change goes through here after it is
//! committed ([`Authority::agent_changed`], [`Authority::sites_changed`]): the grant is
//! reloaded from the store and published, so it reaches every open socket of that
//! agent at once (which closes or re-scopes itself), and routing is told.
//!
//! With several hubs, a change committed on one hub reaches the others as the same
//! call (a notification on the bus), since the store is where the truth is.

use crate::routing::{Command, Routing};
use salam_store::{Agent, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// What an agent may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub agent: Agent,
    /// The sites the agent works on now (every site for an admin or an "all sites"
    /// member), sorted.
    pub sites: Vec<String>,
    /// Live sessions: token hash → expiry (ms since the epoch).
    pub sessions: HashMap<String, i64>,
}

impl Grant {
    /// Whether the agent may see and act on `site_id`.
    pub fn can_access(&self, site_id: &str) -> bool {
        !self.agent.disabled
            && self
                .sites
                .binary_search_by(|s| s.as_str().cmp(site_id))
                .is_ok()
    }

    /// When `session` ends, if it is live.
    pub fn session_expiry(&self, session: &str) -> Option<i64> {
        (!self.agent.disabled)
            .then(|| self.sessions.get(session).copied())
            .flatten()
    }
}

/// See the module docs.
pub struct Authority {
    store: Arc<dyn Store>,
    routing: Routing,
    /// Grants of agents with open sockets. A std `Mutex` is fine: it is held only to
    /// look up or insert, never across an `.await`.
    grants: Mutex<HashMap<String, watch::Sender<Arc<Grant>>>>,
    /// Every site id, sorted.
    sites: RwLock<Arc<Vec<String>>>,
    /// Tells the other hubs of a cluster to reload what changed here.
    pub notifier: crate::peers::Notifier,
}

impl Authority {
    /// Loads the list of sites.
    pub async fn load(store: Arc<dyn Store>, routing: Routing) -> Result<Authority, StoreError> {
        let authority = Authority {
            store,
            routing,
            grants: Mutex::new(HashMap::new()),
            sites: RwLock::new(Arc::new(Vec::new())),
            notifier: crate::peers::Notifier::default(),
        };
        authority.reload_sites().await?;
        Ok(authority)
    }

    async fn reload_sites(&self) -> Result<(), StoreError> {
        let mut sites: Vec<String> = self
            .store
            .list_sites()
            .await?
            .into_iter()
            .map(|site| site.id)
            .collect();
        sites.sort();
        *self.sites.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
        Ok(())
    }

    /// Every site id, sorted.
    pub fn all_sites(&self) -> Arc<Vec<String>> {
        self.sites.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The sites `agent` works on now, sorted.
    pub fn sites_of(&self, agent: &Agent) -> Vec<String> {
        if agent.every_site() {
            return self.all_sites().to_vec();
        }
        let mut sites = agent.site_ids.clone();
        sites.sort();
        sites.dedup();
        sites
    }

    /// Reads an agent's grant from the store (`None`: no such agent).
    async fn read(&self, agent_id: &str) -> Result<Option<Grant>, StoreError> {
        let Some(agent) = self.store.agent_by_id(agent_id).await? else {
            return Ok(None);
        };
        let sessions = self
            .store
            .sessions_of_agent(agent_id, crate::clock::now_ms())
            .await?
            .into_iter()
            .map(|session| (session.token_hash, session.expires_at))
            .collect();
        Ok(Some(Grant {
            sites: self.sites_of(&agent),
            agent,
            sessions,
        }))
    }

    /// Subscribes to an agent's grant, freshly read from the store (a socket calls this
    /// when it opens). Routing hears the agent as read, so an account changed behind
    /// the hub's back (`salam agent add` on its database) is routed correctly.
    pub async fn watch(&self, agent_id: &str) -> Result<watch::Receiver<Arc<Grant>>, StoreError> {
        let grant = self.read(agent_id).await?.ok_or(StoreError::NotFound)?;
        self.routing
            .send(Command::Agent(Box::new(grant.agent.clone())))
            .await;
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let grant = Arc::new(grant);
        match grants.get(agent_id) {
            Some(sender) => {
                sender.send_if_modified(|current| {
                    let changed = **current != *grant;
                    if changed {
                        *current = grant.clone();
                    }
                    changed
                });
                Ok(sender.subscribe())
            }
            None => {
                let (sender, receiver) = watch::channel(grant);
                grants.insert(agent_id.to_owned(), sender);
                Ok(receiver)
            }
        }
    }

    /// An agent account changed in the store (role, sites, disabled, sessions, password,
    /// name, capacity, departments): every open socket of theirs sees the new grant,
    /// and routing is told.
    pub async fn agent_changed(&self, agent_id: &str) -> Result<(), StoreError> {
        self.reload_agent(agent_id).await?;
        self.notifier.agent_changed(agent_id);
        Ok(())
    }

    /// [`Authority::agent_changed`] on this hub only (another hub announced it).
    pub async fn reload_agent(&self, agent_id: &str) -> Result<(), StoreError> {
        let Some(grant) = self.read(agent_id).await? else {
            return Ok(());
        };
        let agent = grant.agent.clone();
        self.publish(agent_id, grant);
        self.routing.send(Command::Agent(Box::new(agent))).await;
        Ok(())
    }

    /// Sites were created: agents of every site work on them now.
    pub async fn sites_changed(&self) -> Result<(), StoreError> {
        self.reload_sites_here().await?;
        self.notifier.sites_changed();
        Ok(())
    }

    /// [`Authority::sites_changed`] on this hub only (another hub announced it).
    pub async fn reload_sites_here(&self) -> Result<(), StoreError> {
        self.reload_sites().await?;
        let watched: Vec<(String, Arc<Grant>)> = {
            let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
            grants
                .iter()
                .map(|(id, sender)| (id.clone(), sender.borrow().clone()))
                .collect()
        };
        for (agent_id, grant) in watched {
            let sites = self.sites_of(&grant.agent);
            if sites != grant.sites {
                let mut updated = (*grant).clone();
                updated.sites = sites;
                self.publish(&agent_id, updated);
            }
        }
        Ok(())
    }

    fn publish(&self, agent_id: &str, grant: Grant) {
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        // Forget the grants nobody watches any more.
        grants.retain(|_, sender| sender.receiver_count() > 0);
        if let Some(sender) = grants.get(agent_id) {
            sender.send_replace(Arc::new(grant));
        }
    }
}
