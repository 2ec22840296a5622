//! The routing actor: applies [`Command`]s to the pure router and turns its effects
//! into [`Work`] for the executor. No I/O: everything it needs comes in the commands.

use super::executor::{Batch, Work};
use super::{Command, QueueEntry, Reply, SiteView, Target, View};
use salam_protocol::{AgentStatus, ConversationState, Presence};
use salam_routing::{AgentSpec, Effect, Router, RouterConfig, RoutingError, Sites};
use salam_store::Agent;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Work items in one batch at most; a longer burst of commands is cut into several.
const MAX_BATCH: usize = 512;

pub struct Actor {
    router: Router,
    /// The router's settings (a [`Command::Reset`] starts a fresh router with them).
    config: RouterConfig,
    /// Agents' display names, for the views and "X joined the conversation".
    names: HashMap<String, String>,
    /// Work decided since the last batch was handed over.
    work: Vec<Work>,
    /// Sites whose views changed since the last batch.
    dirty: HashSet<String>,
    /// Every site's view changed (an agent of every site changed).
    all_dirty: bool,
    /// The queue place and wait last told to each waiting visitor (only changes are
    /// sent).
    told: HashMap<String, (u32, u64, bool, bool)>,
    /// Each site's `callback_after_secs` (absent: 600, the default).
    callback_after: HashMap<String, u64>,
    view: View,
    batches: mpsc::Sender<Batch>,
    views: watch::Sender<Arc<View>>,
}

/// Milliseconds since the Unix epoch: the router's clock, read here and passed in.
fn now() -> u64 {
    crate::clock::now_ms().max(0) as u64
}

fn spec(agent: &Agent) -> AgentSpec {
    AgentSpec {
        id: agent.id.clone(),
        sites: if agent.every_site() {
            Sites::All
        } else {
            Sites::Only(agent.site_ids.clone())
        },
        departments: agent.departments.iter().map(|d| d.to_lowercase()).collect(),
        capacity: agent.capacity,
    }
}

fn to_routing(presence: Presence) -> salam_routing::Presence {
    match presence {
        Presence::Online => salam_routing::Presence::Online,
        Presence::Away => salam_routing::Presence::Away,
        Presence::Offline => salam_routing::Presence::Offline,
    }
}

fn to_wire(presence: salam_routing::Presence) -> Presence {
    match presence {
        salam_routing::Presence::Online => Presence::Online,
        salam_routing::Presence::Away => Presence::Away,
        salam_routing::Presence::Offline => Presence::Offline,
    }
}

impl Actor {
    pub fn new(
        config: RouterConfig,
        batches: mpsc::Sender<Batch>,
        views: watch::Sender<Arc<View>>,
    ) -> Actor {
        Actor {
            router: Router::new(config.clone()),
            config,
            names: HashMap::new(),
            work: Vec::new(),
            dirty: HashSet::new(),
            all_dirty: false,
            told: HashMap::new(),
            callback_after: HashMap::new(),
            view: View::default(),
            batches,
            views,
        }
    }

    /// Applies commands until every handle is dropped. After each command that leaves
    /// the queue empty (or fills a batch), the work goes to the executor and the views
    /// are published: a storm of commands costs one view, not one per command.
    pub async fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        while let Some(command) = receiver.recv().await {
            self.handle(command);
            if receiver.is_empty() || self.work.len() >= MAX_BATCH {
                self.flush().await;
            }
        }
    }

    /// Applies one command to the router (no I/O, no waiting).
    pub fn handle(&mut self, command: Command) {
        let now = now();
        match command {
            Command::Agent(agent) => {
                self.names.insert(agent.id.clone(), agent.name.clone());
                let effects = if agent.disabled {
                    self.router.retire_agent(&agent.id, now).unwrap_or_default()
                } else {
                    self.router.upsert_agent(spec(&agent), now)
                };
                self.mark_agent(&agent.id);
                self.absorb(effects, None);
            }
            Command::Connected {
                agent_id,
                connection,
            } => {
                let effects = self.router.agent_connected(&agent_id, connection, now);
                self.mark_agent(&agent_id);
                self.absorb(effects.unwrap_or_default(), None);
            }
            Command::Disconnected {
                agent_id,
                connection,
            } => {
                let effects = self.router.agent_disconnected(&agent_id, connection, now);
                self.mark_agent(&agent_id);
                self.absorb(effects.unwrap_or_default(), None);
            }
            Command::Presence { agent_id, presence } => {
                let effects = self
                    .router
                    .set_presence(&agent_id, to_routing(presence), now);
                self.mark_agent(&agent_id);
                self.absorb(effects.unwrap_or_default(), None);
            }
            Command::Site {
                site_id,
                policy,
                callback_after_secs,
            } => {
                self.callback_after
                    .insert(site_id.clone(), callback_after_secs);
                let effects = self.router.set_site(&site_id, policy, now);
                self.dirty.insert(site_id);
                // Agents of every site serve it now.
                self.all_dirty = true;
                self.absorb(effects, None);
            }
            Command::HandOff {
                site_id,
                conversation,
                department,
                priority,
                preferred_agent,
            } => {
                match self.router.enqueue_preferring(
                    &conversation,
                    &site_id,
                    &department,
                    priority,
                    preferred_agent.as_deref(),
                    now,
                ) {
                    Ok(effects) => self.absorb(effects, None),
                    Err(err) => tracing::warn!(%conversation, error = %err, "hand-off refused"),
                }
                self.dirty.insert(site_id);
            }
            Command::Closed { conversation } => self.close(&conversation, now),
            Command::Reconcile {
                conversation,
                state,
            } => {
                if state == ConversationState::Closed {
                    self.close(&conversation, now);
                }
            }
            Command::Take {
                agent_id,
                site_id,
                conversation,
                reply,
            } => {
                let before = self.holder(&conversation);
                let result = self.router.take(&agent_id, &conversation, &site_id, now);
                self.dirty.insert(site_id);
                self.answer(result, before, &conversation, reply);
            }
            Command::Accept {
                agent_id,
                conversation,
                reply,
            } => {
                if let Some(site) = self.router.conversation_site(&conversation) {
                    self.dirty.insert(site.to_owned());
                }
                let result = self.router.accept(&agent_id, &conversation, now);
                self.answer(result, None, &conversation, reply);
            }
            Command::Transfer {
                site_id,
                conversation,
                to,
                reply,
            } => {
                let before = self.holder(&conversation);
                let result = match &to {
                    Target::Agent(agent) => {
                        self.router
                            .transfer_to_agent(&conversation, &site_id, agent, now)
                    }
                    Target::Department(department) => {
                        self.router
                            .transfer_to_department(&conversation, &site_id, department, now)
                    }
                };
                self.dirty.insert(site_id);
                self.answer(result, before, &conversation, reply);
            }
            Command::Responded { conversation } => {
                let _ = self.router.agent_responded(&conversation, now);
            }
            Command::Restore(restore) => {
                for (site_id, policy, callback_after_secs) in restore.sites {
                    self.callback_after
                        .insert(site_id.clone(), callback_after_secs);
                    let effects = self.router.set_site(&site_id, policy, now);
                    self.absorb(effects, None);
                }
                for agent in &restore.agents {
                    self.names.insert(agent.id.clone(), agent.name.clone());
                }
                let restored = salam_routing::Restore {
                    agents: restore
                        .agents
                        .iter()
                        .filter(|agent| !agent.disabled)
                        .map(|agent| (spec(agent), to_routing(agent.presence)))
                        .collect(),
                    conversations: restore
                        .conversations
                        .iter()
                        .filter(|c| {
                            matches!(
                                c.state,
                                ConversationState::Queued | ConversationState::Assigned
                            )
                        })
                        .map(|c| salam_routing::RestoredConversation {
                            id: c.id.clone(),
                            site: c.site_id.clone(),
                            department: c.department.clone(),
                            priority: c.priority,
                            since: c.queued_at.unwrap_or(c.updated_at).max(0) as u64,
                            agent: (c.state == ConversationState::Assigned)
                                .then(|| c.agent_id.clone())
                                .flatten(),
                        })
                        .collect(),
                };
                let effects = self.router.restore(restored, now);
                self.all_dirty = true;
                self.absorb(effects, None);
            }
            Command::Reset => {
                let Actor {
                    config,
                    batches,
                    views,
                    ..
                } = self;
                let fresh = Actor::new(config.clone(), batches.clone(), views.clone());
                *self = fresh;
                self.all_dirty = true;
            }
            Command::Tick => {
                let effects = self.router.tick(now);
                if !effects.is_empty() {
                    self.all_dirty = true;
                }
                self.absorb(effects, None);
            }
        }
    }

    fn close(&mut self, conversation: &str, now: u64) {
        if let Some(site) = self.router.conversation_site(conversation) {
            self.dirty.insert(site.to_owned());
        }
        let effects = self.router.close(conversation, now).unwrap_or_default();
        let _ = self.router.forget_closed(conversation);
        self.told.remove(conversation);
        self.absorb(effects, None);
    }

    /// The agent holding (or offered) a conversation now.
    fn holder(&self, conversation: &str) -> Option<String> {
        match self.router.conversation_state(conversation) {
            Some(salam_routing::ConversationState::Assigned { agent })
            | Some(salam_routing::ConversationState::Offered { agent, .. }) => Some(agent),
            _ => None,
        }
    }

    /// Answers a request: a refusal at once; an assignment once the executor committed
    /// it; anything else (a transfer to a department, a no-op) once the batch is done.
    fn answer(
        &mut self,
        result: Result<Vec<Effect>, RoutingError>,
        before: Option<String>,
        conversation: &str,
        reply: Reply,
    ) {
        match result {
            Ok(effects) => {
                self.absorb(effects, Some((conversation.to_owned(), before)));
                self.work.push(Work::Reply {
                    conversation: conversation.to_owned(),
                    reply,
                });
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Marks the sites whose agent lists show this agent.
    fn mark_agent(&mut self, agent_id: &str) {
        match self.router.agent(agent_id).map(|view| view.sites) {
            Some(Sites::All) | None => self.all_dirty = true,
            Some(Sites::Only(sites)) => self.dirty.extend(sites),
        }
    }

    /// Turns the router's effects into work. `manual` names the conversation of a take
    /// or transfer and who held it before, so the executor can detach them.
    fn absorb(&mut self, effects: Vec<Effect>, manual: Option<(String, Option<String>)>) {
        for effect in effects {
            match effect {
                Effect::Assigned {
                    conversation,
                    agent,
                } => {
                    let from_agent = match &manual {
                        Some((manual, before)) if *manual == conversation => {
                            before.clone().filter(|before| *before != agent)
                        }
                        _ => None,
                    };
                    if let Some(site) = self.router.conversation_site(&conversation) {
                        self.dirty.insert(site.to_owned());
                    }
                    self.told.remove(&conversation);
                    let name = self
                        .names
                        .get(&agent)
                        .cloned()
                        .unwrap_or_else(|| "an agent".into());
                    self.mark_agent(&agent);
                    self.work.push(Work::Assigned {
                        conversation,
                        agent,
                        name,
                        from_agent,
                    });
                }
                Effect::Offered {
                    conversation,
                    agent,
                    deadline,
                } => {
                    self.mark_agent(&agent);
                    self.work.push(Work::Offered {
                        conversation,
                        agent,
                        deadline,
                    });
                }
                Effect::Requeued {
                    conversation,
                    department,
                    from_agent,
                    reason,
                } => {
                    if let Some(agent) = &from_agent {
                        self.mark_agent(agent);
                    }
                    self.work.push(Work::Requeued {
                        conversation,
                        department,
                        from_agent,
                        reason,
                    });
                }
                Effect::SlaBreached {
                    conversation,
                    priority,
                } => {
                    self.work.push(Work::Priority {
                        conversation,
                        priority,
                    });
                }
                Effect::PresenceChanged { agent, presence } => {
                    self.mark_agent(&agent);
                    self.work.push(Work::Presence {
                        agent,
                        presence: to_wire(presence),
                    });
                }
                Effect::QueueChanged { site, .. } => {
                    self.dirty.insert(site);
                }
                Effect::Queued { .. }
                | Effect::OfferExpired { .. }
                | Effect::AgentOffline { .. } => {}
            }
        }
    }

    /// Rebuilds the views of the changed sites, publishes them, and hands the batch to
    /// the executor with the frames the views imply (agent lists, queue places that
    /// changed).
    pub async fn flush(&mut self) {
        let sites: Vec<String> = if self.all_dirty {
            let mut sites = self.router.sites();
            sites.extend(self.dirty.drain());
            sites.sort();
            sites.dedup();
            sites
        } else {
            self.dirty.drain().collect()
        };
        self.all_dirty = false;
        self.dirty.clear();
        let mut agent_lists = Vec::new();
        let mut places = Vec::new();
        for site in sites {
            let view = Arc::new(self.site_view(&site));
            for entry in &view.queue {
                let place = (
                    entry.position,
                    entry.expected_wait_secs,
                    entry.agents_online,
                    entry.offer_callback,
                );
                if self.told.get(&entry.conversation) != Some(&place) {
                    self.told.insert(entry.conversation.clone(), place);
                    places.push(entry.clone());
                }
            }
            let changed = self
                .view
                .sites
                .get(&site)
                .is_none_or(|before| before.agents != view.agents);
            if changed {
                agent_lists.push((site.clone(), view.agents.clone()));
            }
            self.view.sites.insert(site, view);
        }
        self.view.agents = self
            .router
            .agents()
            .into_iter()
            .map(|agent| (agent.id.clone(), self.status(&agent)))
            .collect();
        self.views.send_replace(Arc::new(View {
            sites: self.view.sites.clone(),
            agents: self.view.agents.clone(),
        }));
        let work = std::mem::take(&mut self.work);
        if work.is_empty() && agent_lists.is_empty() && places.is_empty() {
            return;
        }
        let batch = Batch {
            work,
            agent_lists,
            places,
        };
        // Waits only when the executor is a whole queue of batches behind: the bound
        // that keeps a stalled store from growing memory without limit.
        let _ = self.batches.send(batch).await;
    }

    fn status(&self, agent: &salam_routing::AgentView) -> AgentStatus {
        AgentStatus {
            id: agent.id.clone(),
            name: self.names.get(&agent.id).cloned().unwrap_or_default(),
            presence: match agent.presence {
                salam_routing::Presence::Online if agent.sockets == 0 => Presence::Away,
                other => to_wire(other),
            },
            load: agent.load,
            capacity: agent.capacity,
            departments: agent.departments.iter().map(|d| d.to_lowercase()).collect(),
        }
    }

    fn site_view(&self, site: &str) -> SiteView {
        let agents: Vec<AgentStatus> = self
            .router
            .site_agents(site)
            .iter()
            .map(|agent| self.status(agent))
            .collect();
        let agents_online = agents
            .iter()
            .any(|agent| agent.presence == Presence::Online);
        let callback_after = self.callback_after.get(site).copied().unwrap_or(600);
        let queue = self
            .router
            .queue_snapshot(Some(site))
            .into_iter()
            .map(|chat| {
                let expected_wait_secs = chat.expected_wait_ms.div_ceil(1000);
                QueueEntry {
                    conversation: chat.conversation,
                    department: chat.department,
                    priority: chat.priority,
                    position: chat.position,
                    waiting_since: chat.waiting_since,
                    expected_wait_secs,
                    agents_online,
                    offer_callback: !agents_online
                        || (callback_after > 0 && expected_wait_secs >= callback_after),
                }
            })
            .collect();
        SiteView { queue, agents }
    }
}
