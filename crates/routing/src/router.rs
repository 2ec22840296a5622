//! The [`Router`] state machine: indexes, the drain loop and the timers.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::types::{
    AgentSpec, AgentView, ConversationState, Effect, Presence, QueuedChat, RequeueReason, Restore,
    RouterConfig, RoutingError, SitePolicy, Sites,
};

type AgentIndex = usize;
type ConversationKey = u64;

/// One queue: a department of a site.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct QueueId {
    site: String,
    department: String,
}

/// Place of a chat in a queue: priority desc, front requeues first, then FIFO.
/// `sequence` is unique across the router, so keys never tie, even across queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct QueueKey {
    priority: Reverse<i32>,
    /// 0 = requeued to the front of its priority class, 1 = normal.
    front_rank: u8,
    waiting_since: u64,
    sequence: u64,
}

impl QueueKey {
    fn with_priority(self, priority: i32) -> QueueKey {
        QueueKey {
            priority: Reverse(priority),
            ..self
        }
    }
}

/// load / capacity, compared as a fraction (cross-multiplied, exact).
#[derive(Clone, Copy, Debug)]
struct LoadRatio {
    load: u32,
    capacity: u32,
}

impl Ord for LoadRatio {
    fn cmp(&self, other: &Self) -> Ordering {
        let left = u64::from(self.load) * u64::from(other.capacity);
        let right = u64::from(other.load) * u64::from(self.capacity);
        left.cmp(&right)
    }
}
impl PartialOrd for LoadRatio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for LoadRatio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for LoadRatio {}

/// Order of preference among available agents: least loaded (relative to capacity),
/// then idle longest, then registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AvailabilityKey {
    load_ratio: LoadRatio,
    idle_since: u64,
    agent: AgentIndex,
}

#[derive(Clone, Debug)]
struct AgentRecord {
    id: String,
    departments: Vec<String>,
    sites: Sites,
    capacity_override: Option<u32>,
    /// The status in force (see [`Presence`]).
    presence: Presence,
    /// What the agent becomes on their first socket: the last Online or Away they chose.
    preferred: Presence,
    /// Open sockets (connection ids).
    sockets: BTreeSet<u64>,
    disconnected_since: Option<u64>,
    /// The deadline under which the running grace period sits in `grace_deadlines`
    /// (kept, not recomputed, because `reconfigure` may change `grace_ms` meanwhile).
    grace_deadline: Option<u64>,
    /// Last assignment, or when they last became Online.
    idle_since: u64,
    chats: BTreeSet<ConversationKey>,
    /// The queues this agent serves: their sites × (their departments + general).
    served: Vec<QueueId>,
    /// The key under which this agent sits in `available_agents` of every served queue,
    /// if it does.
    availability: Option<AvailabilityKey>,
    retired: bool,
}

#[derive(Clone, Debug)]
enum Status {
    Bot,
    Queued(QueueKey),
    Offered {
        agent: AgentIndex,
        deadline: u64,
        /// The place to return to if the offer lapses or is withdrawn.
        queue_key: QueueKey,
    },
    Assigned(AgentIndex),
    Closed,
}

#[derive(Clone, Debug)]
struct ConversationRecord {
    id: String,
    site: String,
    department: String,
    priority: i32,
    status: Status,
    /// Agents whose offer lapsed, skipped for this chat until the given time.
    skipped_agents: Vec<(AgentIndex, u64)>,
    /// The agent who just transferred it away: chosen only if nobody else is free.
    avoided_agent: Option<AgentIndex>,
    /// The agent to try first (a key account's owner), whenever they are free.
    preferred_agent: Option<AgentIndex>,
    /// Deadline of the running first-response clock, if any.
    response_deadline: Option<u64>,
    /// When its current agent got it (for handling times).
    assigned_at: Option<u64>,
}

impl ConversationRecord {
    fn queue_id(&self) -> QueueId {
        QueueId {
            site: self.site.clone(),
            department: self.department.clone(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct QueueRecord {
    queue: BTreeSet<(QueueKey, ConversationKey)>,
    available_agents: BTreeSet<AvailabilityKey>,
    serving_agents: BTreeSet<AgentIndex>,
}

#[derive(Clone, Debug)]
struct SiteRecord {
    /// `None` until [`Router::set_site`]: the site follows `config.default_policy`,
    /// whatever it is at the time.
    policy: Option<SitePolicy>,
    recent_handling_ms: VecDeque<u64>,
    recent_handling_sum: u128,
}

/// Routing state of every site. See the crate docs for the rules.
#[derive(Clone, Debug)]
pub struct Router {
    config: RouterConfig,
    agents: Vec<AgentRecord>,
    agent_indexes: HashMap<String, AgentIndex>,
    conversations: HashMap<ConversationKey, ConversationRecord>,
    conversation_keys: HashMap<String, ConversationKey>,
    next_conversation_key: ConversationKey,
    next_queue_sequence: u64,
    queues: BTreeMap<QueueId, QueueRecord>,
    /// Queues with at least one waiting chat (the drain loop looks only at these).
    waiting: BTreeSet<QueueId>,
    sites: BTreeMap<String, SiteRecord>,
    grace_deadlines: BTreeSet<(u64, AgentIndex)>,
    offer_deadlines: BTreeSet<(u64, ConversationKey)>,
    response_deadlines: BTreeSet<(u64, ConversationKey)>,
}

/// Effects of one call, plus the queues whose content it touched.
struct CallEffects {
    effects: Vec<Effect>,
    touched_queues: BTreeSet<QueueId>,
}

impl CallEffects {
    fn new() -> Self {
        CallEffects {
            effects: Vec::new(),
            touched_queues: BTreeSet::new(),
        }
    }

    fn finish(mut self) -> Vec<Effect> {
        for queue in self.touched_queues {
            self.effects.push(Effect::QueueChanged {
                site: queue.site,
                department: queue.department,
            });
        }
        self.effects
    }
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            config,
            agents: Vec::new(),
            agent_indexes: HashMap::new(),
            conversations: HashMap::new(),
            conversation_keys: HashMap::new(),
            next_conversation_key: 0,
            next_queue_sequence: 0,
            queues: BTreeMap::new(),
            waiting: BTreeSet::new(),
            sites: BTreeMap::new(),
            grace_deadlines: BTreeSet::new(),
            offer_deadlines: BTreeSet::new(),
            response_deadlines: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Replaces the hub-wide settings (default capacity, grace period, default site
    /// policy, ...); the general department stays as it was. Agents are re-indexed under
    /// the new default capacity, so a raised capacity drains the backlog at once. Timers
    /// already running keep their deadlines.
    pub fn reconfigure(&mut self, mut config: RouterConfig, now: u64) -> Vec<Effect> {
        let mut call = CallEffects::new();
        config.general_department = self.config.general_department.clone();
        for agent_index in 0..self.agents.len() {
            self.unindex_agent(agent_index);
        }
        self.config = config;
        for agent_index in 0..self.agents.len() {
            self.index_agent(agent_index);
        }
        self.drain(now, &mut call);
        call.finish()
    }

    // ----- sites ----------------------------------------------------------------------

    /// Registers a site or changes its policy. Agents who work on every site serve a
    /// new site at once (its backlog, if any, drains). A policy change applies to offers
    /// and response clocks started from now on.
    pub fn set_site(&mut self, site: &str, policy: SitePolicy, now: u64) -> Vec<Effect> {
        let mut call = CallEffects::new();
        self.ensure_site(site);
        if let Some(record) = self.sites.get_mut(site) {
            record.policy = Some(policy);
        }
        self.drain(now, &mut call);
        call.finish()
    }

    /// The sites known to the router, sorted.
    pub fn sites(&self) -> Vec<String> {
        self.sites.keys().cloned().collect()
    }

    // ----- agents -------------------------------------------------------------------

    /// Registers an agent (starting Offline, preferring Online) or updates their sites,
    /// departments and capacity; a retired agent is active again. Chats already held
    /// are kept even if the capacity drops below the load or a department is removed,
    /// but chats on a site the agent no longer works on go back to the front of their
    /// queue ([`RequeueReason::AccessRevoked`]). Raised capacity drains the backlog.
    pub fn upsert_agent(&mut self, spec: AgentSpec, now: u64) -> Vec<Effect> {
        let mut call = CallEffects::new();
        let mut departments = spec.departments;
        departments.sort();
        departments.dedup();
        let sites = match spec.sites {
            Sites::All => Sites::All,
            Sites::Only(mut sites) => {
                sites.sort();
                sites.dedup();
                for site in &sites {
                    self.ensure_site(site);
                }
                Sites::Only(sites)
            }
        };
        let agent_index = match self.agent_indexes.get(&spec.id) {
            Some(&agent_index) => {
                let agent = &mut self.agents[agent_index];
                agent.departments = departments;
                agent.sites = sites;
                agent.capacity_override = spec.capacity;
                agent.retired = false;
                agent_index
            }
            None => {
                let agent_index = self.agents.len();
                self.agents.push(AgentRecord {
                    id: spec.id.clone(),
                    departments,
                    sites,
                    capacity_override: spec.capacity,
                    presence: Presence::Offline,
                    preferred: Presence::Online,
                    sockets: BTreeSet::new(),
                    disconnected_since: None,
                    grace_deadline: None,
                    idle_since: now,
                    chats: BTreeSet::new(),
                    served: Vec::new(),
                    availability: None,
                    retired: false,
                });
                self.agent_indexes.insert(spec.id, agent_index);
                agent_index
            }
        };
        self.reindex_served(agent_index);
        self.requeue_off_site_chats(agent_index, now, &mut call);
        self.drain(now, &mut call);
        call.finish()
    }

    /// Retires an agent (a disabled account): they go Offline at once, their sockets
    /// are forgotten and their chats go back to the front of their queues. They take
    /// nothing until [`upsert_agent`](Self::upsert_agent) registers them again.
    pub fn retire_agent(&mut self, agent: &str, now: u64) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let mut call = CallEffects::new();
        self.go_offline(agent_index, RequeueReason::AccessRevoked, now, &mut call);
        self.unindex_agent(agent_index);
        let record = &mut self.agents[agent_index];
        record.sockets.clear();
        record.retired = true;
        self.reindex_served(agent_index);
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// Sets the status the agent chooses. Online or Away is also remembered as what the
    /// agent becomes on their next first socket; while they have no socket it changes
    /// only that. Online drains the backlog; Away keeps chats but withdraws pending
    /// offers; Offline returns every chat to the front of its queue.
    pub fn set_presence(
        &mut self,
        agent: &str,
        presence: Presence,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let mut call = CallEffects::new();
        if presence != Presence::Offline {
            self.agents[agent_index].preferred = presence;
        }
        let record = &self.agents[agent_index];
        if record.retired || (record.sockets.is_empty() && presence != Presence::Offline) {
            return Ok(call.finish());
        }
        match presence {
            Presence::Online | Presence::Away => {
                self.choose(agent_index, presence, now, &mut call);
            }
            Presence::Offline => {
                self.go_offline(agent_index, RequeueReason::AgentWentOffline, now, &mut call);
            }
        }
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// A socket of the agent opened. On their first socket they come back: a grace
    /// period ends with nothing else changed, and an Offline agent becomes what they
    /// last chose (Online unless they chose Away). Refused for a retired agent.
    pub fn agent_connected(
        &mut self,
        agent: &str,
        connection: u64,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        if self.agents[agent_index].retired {
            return Err(RoutingError::NotAvailable);
        }
        let mut call = CallEffects::new();
        self.unindex_agent(agent_index);
        let record = &mut self.agents[agent_index];
        let first = record.sockets.is_empty();
        record.sockets.insert(connection);
        self.index_agent(agent_index);
        if first {
            if self.agents[agent_index].disconnected_since.is_some() {
                self.end_grace(agent_index);
            } else if self.agents[agent_index].presence == Presence::Offline {
                let preferred = self.agents[agent_index].preferred;
                self.choose(agent_index, preferred, now, &mut call);
            }
        }
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// A socket of the agent closed. When it was their last, they keep their chats but
    /// get no new ones, and pending offers are withdrawn; if no socket opens within
    /// [`RouterConfig::grace_ms`], [`tick`](Self::tick) makes them Offline. An Offline
    /// agent simply has one socket less. A connection the router does not know (one
    /// already forgotten by [`retire_agent`](Self::retire_agent)) changes nothing.
    pub fn agent_disconnected(
        &mut self,
        agent: &str,
        connection: u64,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let mut call = CallEffects::new();
        if !self.agents[agent_index].sockets.remove(&connection) {
            return Ok(call.finish());
        }
        let record = &self.agents[agent_index];
        if !record.sockets.is_empty() {
            return Ok(call.finish());
        }
        self.unindex_agent(agent_index);
        if self.agents[agent_index].presence != Presence::Offline {
            self.start_grace(agent_index, now);
            self.withdraw_offers(agent_index, &mut call);
        }
        self.index_agent(agent_index);
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    // ----- conversations --------------------------------------------------------------

    /// Records a conversation of `site` that is with the bot, so it can later be taken,
    /// transferred or handed off. No effect if the conversation is already known.
    pub fn start_bot_conversation(&mut self, conversation: &str, site: &str) -> Vec<Effect> {
        if !self.conversation_keys.contains_key(conversation) {
            self.ensure_site(site);
            self.insert_conversation(conversation, site, String::new(), 0, Status::Bot);
        }
        Vec::new()
    }

    /// Hands a conversation of `site` to humans (from the bot, or directly for a VIP):
    /// it joins the queue of `department` on its site, or the site's general queue when
    /// no agent of the site serves `department` (a chat never waits for a team that does
    /// not exist), and is assigned at once if an agent is free. The first-response clock
    /// starts now.
    pub fn enqueue(
        &mut self,
        conversation: &str,
        site: &str,
        department: &str,
        priority: i32,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        self.enqueue_preferring(conversation, site, department, priority, None, now)
    }

    /// [`enqueue`](Router::enqueue) with an agent to try first (a key account's owner):
    /// whenever the chat is assigned automatically and `preferred` is free for it
    /// (Online, connected, below capacity, serving its queue, not skipped after a lapsed
    /// offer), they get it; otherwise the usual "which agent" rule applies. Which chat
    /// goes first is unchanged. An unknown `preferred` id is ignored (normal routing).
    /// The preference lasts until a transfer to a department.
    pub fn enqueue_preferring(
        &mut self,
        conversation: &str,
        site: &str,
        department: &str,
        priority: i32,
        preferred: Option<&str>,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = match self.conversation_keys.get(conversation) {
            Some(&key) => match self.conversations.get(&key) {
                Some(record) if record.site != site => return Err(RoutingError::WrongSite),
                Some(record) => match record.status {
                    Status::Bot => key,
                    Status::Closed => return Err(RoutingError::AlreadyClosed),
                    _ => return Err(RoutingError::AlreadyRouted),
                },
                None => return Err(RoutingError::UnknownConversation),
            },
            None => {
                self.ensure_site(site);
                self.insert_conversation(conversation, site, String::new(), priority, Status::Bot)
            }
        };
        let department = if self.is_served(site, department) {
            department.to_owned()
        } else {
            self.config.general_department.clone()
        };
        let mut call = CallEffects::new();
        let preferred_agent = preferred.and_then(|id| self.agent_indexes.get(id).copied());
        if let Some(record) = self.conversations.get_mut(&conversation_key) {
            record.department = department;
            record.priority = priority;
            record.preferred_agent = preferred_agent;
        }
        let queue_key = self.fresh_queue_key(priority, false, now);
        self.put_in_queue(conversation_key, queue_key, &mut call);
        self.restart_response_clock(conversation_key, now);
        self.drain(now, &mut call);
        let mut effects = call.finish();
        if let Some(record) = self.conversations.get(&conversation_key)
            && matches!(record.status, Status::Queued(_))
        {
            effects.insert(
                0,
                Effect::Queued {
                    conversation: record.id.clone(),
                    department: record.department.clone(),
                },
            );
        }
        Ok(effects)
    }

    /// Ends a conversation wherever it is; freed capacity drains the backlog at once.
    /// The agent's handling time (from assignment to now) feeds the site's expected-wait
    /// estimate.
    pub fn close(&mut self, conversation: &str, now: u64) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        let mut call = CallEffects::new();
        if let Some(record) = self.conversations.get(&conversation_key)
            && let Some(assigned_at) = record.assigned_at
        {
            let site = record.site.clone();
            self.record_handled(&site, now.saturating_sub(assigned_at));
        }
        self.detach(conversation_key, &mut call);
        self.stop_response_clock(conversation_key);
        if let Some(record) = self.conversations.get_mut(&conversation_key) {
            record.status = Status::Closed;
            record.skipped_agents.clear();
            record.avoided_agent = None;
        }
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// Drops the record of a closed conversation (after the hub archived it), so a
    /// long-running router does not grow without bound.
    pub fn forget_closed(&mut self, conversation: &str) -> Result<(), RoutingError> {
        let conversation_key = self.conversation_key(conversation)?;
        match self.conversations.get(&conversation_key).map(|r| &r.status) {
            Some(Status::Closed) => {
                self.conversations.remove(&conversation_key);
                self.conversation_keys.remove(conversation);
                Ok(())
            }
            Some(_) => Err(RoutingError::NotClosed),
            None => Err(RoutingError::UnknownConversation),
        }
    }

    /// Transfers an open conversation of `site` (with the bot, queued, offered or
    /// assigned) to a named agent, who gets it directly (no offer, whatever the accept
    /// mode): the sending agent chose them. Department membership is not required, but
    /// the agent must work on the site. The target must be Online, connected and below
    /// capacity; otherwise the call is refused and nothing changes (the chat stays where
    /// it was, so it is never parked with an absent agent). A transfer to the current
    /// holder is a no-op. The first-response clock restarts.
    pub fn transfer_to_agent(
        &mut self,
        conversation: &str,
        site: &str,
        agent: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let known = self.find_open_conversation(conversation, site)?;
        if let Some(conversation_key) = known
            && self.holder(conversation_key) == Some(agent_index)
        {
            return Ok(Vec::new());
        }
        self.check_can_take_new_chat(agent_index, site)?;
        let conversation_key = match known {
            Some(conversation_key) => conversation_key,
            None => self.record_bot_conversation(conversation, site),
        };
        let mut call = CallEffects::new();
        self.detach(conversation_key, &mut call);
        self.restart_response_clock(conversation_key, now);
        self.hand_over(conversation_key, agent_index, false, now, &mut call);
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// Moves an open conversation of `site` (with the bot, queued, offered or assigned)
    /// to the back of its priority class in the site's `department` (priority kept).
    /// The agent who held it is chosen again only if no other agent of that department
    /// is free. Refused when no agent of the site serves `department`. The
    /// first-response clock restarts.
    pub fn transfer_to_department(
        &mut self,
        conversation: &str,
        site: &str,
        department: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        if !self.is_served(site, department) {
            return Err(RoutingError::UnservedDepartment);
        }
        let conversation_key = self.open_conversation_key(conversation, site)?;
        let from_agent = match self.status(conversation_key)? {
            Status::Assigned(holder) | Status::Offered { agent: holder, .. } => Some(*holder),
            _ => None,
        };
        let mut call = CallEffects::new();
        self.detach(conversation_key, &mut call);
        let priority = match self.conversations.get_mut(&conversation_key) {
            Some(record) => {
                record.department = department.to_owned();
                record.avoided_agent = from_agent;
                record.preferred_agent = None;
                record.priority
            }
            None => return Err(RoutingError::UnknownConversation),
        };
        let queue_key = self.fresh_queue_key(priority, false, now);
        self.put_in_queue(conversation_key, queue_key, &mut call);
        self.restart_response_clock(conversation_key, now);
        call.effects.push(Effect::Requeued {
            conversation: conversation.to_owned(),
            department: department.to_owned(),
            from_agent: from_agent.map(|index| self.agents[index].id.clone()),
            reason: RequeueReason::TransferredToDepartment,
        });
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// An agent takes an open conversation of `site` by hand: one with the bot, one
    /// waiting in any queue of the site, or one another agent holds (taking it over).
    /// An agent with a free seat never sees a waiting chat of their own departments
    /// (the drain assigns those at once), so manual takes are how agents help busy or
    /// unstaffed departments and step in before the bot hands off. Refused if the agent
    /// does not work on the site, is not Online and connected, or is at capacity.
    /// Always a direct assignment, even in accept mode. Taking one's own chat is a
    /// no-op.
    pub fn take(
        &mut self,
        agent: &str,
        conversation: &str,
        site: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let known = self.find_open_conversation(conversation, site)?;
        if let Some(conversation_key) = known
            && self.holder(conversation_key) == Some(agent_index)
        {
            return Ok(Vec::new());
        }
        self.check_can_take_new_chat(agent_index, site)?;
        let conversation_key = match known {
            Some(conversation_key) => conversation_key,
            None => self.record_bot_conversation(conversation, site),
        };
        let mut call = CallEffects::new();
        self.detach(conversation_key, &mut call);
        self.hand_over(conversation_key, agent_index, false, now, &mut call);
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// The agent accepts a pending offer; it becomes an assignment. Offers lapse only in
    /// [`tick`](Self::tick), so an accept that arrives after the deadline but before the
    /// tick that would expire it still counts.
    pub fn accept(
        &mut self,
        agent: &str,
        conversation: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        let agent_index = self.agent_index(agent)?;
        let deadline = match self.status(conversation_key)? {
            Status::Offered {
                agent: holder,
                deadline,
                ..
            } if *holder == agent_index => *deadline,
            _ => return Err(RoutingError::NotOffered),
        };
        self.offer_deadlines.remove(&(deadline, conversation_key));
        if let Some(record) = self.conversations.get_mut(&conversation_key) {
            record.status = Status::Assigned(agent_index);
            record.assigned_at = Some(now);
        }
        Ok(vec![Effect::Assigned {
            conversation: conversation.to_owned(),
            agent: agent.to_owned(),
        }])
    }

    /// Raises a conversation's priority (a lower value is ignored: priorities only go
    /// up). A queued chat moves up in its queue.
    pub fn raise_priority(
        &mut self,
        conversation: &str,
        new_priority: i32,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        let mut call = CallEffects::new();
        self.set_priority(conversation_key, new_priority, &mut call);
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// An agent answered: stops the first-response clock.
    pub fn agent_responded(
        &mut self,
        conversation: &str,
        _now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        self.stop_response_clock(conversation_key);
        Ok(Vec::new())
    }

    /// Fires every timer due at `now`, in this order: disconnect grace periods (agent
    /// Offline, chats to the front of their queues), offer deadlines (chat back in its
    /// place, agent skipped for it for one more accept timeout), first-response breaches
    /// (priority raised by [`RouterConfig::sla_priority_boost`]); then drains. A timer is
    /// due when `deadline <= now`.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        let mut call = CallEffects::new();
        while let Some(&(deadline, agent_index)) = self.grace_deadlines.first() {
            if deadline > now {
                break;
            }
            self.go_offline(agent_index, RequeueReason::GraceExpired, now, &mut call);
        }
        while let Some(&(deadline, conversation_key)) = self.offer_deadlines.first() {
            if deadline > now {
                break;
            }
            self.offer_lapsed(conversation_key, now, &mut call);
        }
        while let Some(&(deadline, conversation_key)) = self.response_deadlines.first() {
            if deadline > now {
                break;
            }
            self.response_deadlines
                .remove(&(deadline, conversation_key));
            let boost = self.config.sla_priority_boost;
            let Some(record) = self.conversations.get_mut(&conversation_key) else {
                continue;
            };
            record.response_deadline = None;
            let raised = record.priority.saturating_add(boost);
            let conversation = record.id.clone();
            self.set_priority(conversation_key, raised, &mut call);
            call.effects.push(Effect::SlaBreached {
                conversation,
                priority: raised,
            });
        }
        self.drain(now, &mut call);
        call.finish()
    }

    /// Rebuilds the routing state after a restart, on top of whatever is registered:
    /// the agents (each Offline, remembering the status they chose), then the
    /// conversations in the order they joined their queue or agent. A conversation
    /// whose agent is known, active and works on its site goes back to that agent, who
    /// counts as having just disconnected: the grace period starts now, so the agent
    /// keeps their chats if they come back in time and the chats are requeued
    /// otherwise. Every other conversation waits in its queue, where it first joined.
    /// First-response clocks of queued chats start now.
    pub fn restore(&mut self, restore: Restore, now: u64) -> Vec<Effect> {
        let mut call = CallEffects::new();
        for (spec, preferred) in restore.agents {
            let id = spec.id.clone();
            call.effects.extend(self.upsert_agent(spec, now));
            if let Ok(agent_index) = self.agent_index(&id)
                && preferred != Presence::Offline
            {
                self.agents[agent_index].preferred = preferred;
            }
        }
        let mut conversations = restore.conversations;
        conversations
            .sort_by(|left, right| left.since.cmp(&right.since).then(left.id.cmp(&right.id)));
        let mut holders = BTreeSet::new();
        for restored in conversations {
            if self.conversation_keys.contains_key(&restored.id) {
                continue;
            }
            self.ensure_site(&restored.site);
            let conversation_key = self.insert_conversation(
                &restored.id,
                &restored.site,
                restored.department.clone(),
                restored.priority,
                Status::Bot,
            );
            let holder = restored
                .agent
                .as_deref()
                .and_then(|agent| self.agent_indexes.get(agent).copied())
                .filter(|&index| {
                    let agent = &self.agents[index];
                    !agent.retired && agent.sites.includes(&restored.site)
                });
            match holder {
                Some(agent_index) => {
                    if let Some(record) = self.conversations.get_mut(&conversation_key) {
                        record.status = Status::Assigned(agent_index);
                        record.assigned_at = Some(restored.since);
                    }
                    self.unindex_agent(agent_index);
                    self.agents[agent_index].chats.insert(conversation_key);
                    self.index_agent(agent_index);
                    holders.insert(agent_index);
                }
                None => {
                    let sequence = self.next_queue_sequence;
                    self.next_queue_sequence += 1;
                    let queue_key = QueueKey {
                        priority: Reverse(restored.priority),
                        front_rank: 1,
                        waiting_since: restored.since,
                        sequence,
                    };
                    self.put_in_queue(conversation_key, queue_key, &mut call);
                    self.restart_response_clock(conversation_key, now);
                }
            }
        }
        for agent_index in holders {
            if !self.agents[agent_index].sockets.is_empty()
                || self.agents[agent_index].disconnected_since.is_some()
            {
                continue;
            }
            self.unindex_agent(agent_index);
            let preferred = self.agents[agent_index].preferred;
            self.set_presence_field(agent_index, preferred, &mut call);
            self.start_grace(agent_index, now);
            self.index_agent(agent_index);
        }
        self.drain(now, &mut call);
        call.finish()
    }

    // ----- queries --------------------------------------------------------------------

    pub fn conversation_state(&self, conversation: &str) -> Option<ConversationState> {
        let key = self.conversation_keys.get(conversation)?;
        let record = self.conversations.get(key)?;
        Some(match &record.status {
            Status::Bot => ConversationState::Bot,
            Status::Queued(_) => ConversationState::Queued {
                department: record.department.clone(),
            },
            Status::Offered {
                agent, deadline, ..
            } => ConversationState::Offered {
                agent: self.agents[*agent].id.clone(),
                deadline: *deadline,
            },
            Status::Assigned(agent) => ConversationState::Assigned {
                agent: self.agents[*agent].id.clone(),
            },
            Status::Closed => ConversationState::Closed,
        })
    }

    /// The site of a known conversation.
    pub fn conversation_site(&self, conversation: &str) -> Option<&str> {
        let key = self.conversation_keys.get(conversation)?;
        self.conversations
            .get(key)
            .map(|record| record.site.as_str())
    }

    /// Conversations held by the agent (offers included), oldest first.
    pub fn agent_chats(&self, agent: &str) -> Option<Vec<String>> {
        let agent_index = *self.agent_indexes.get(agent)?;
        Some(
            self.agents[agent_index]
                .chats
                .iter()
                .filter_map(|key| self.conversations.get(key))
                .map(|record| record.id.clone())
                .collect(),
        )
    }

    /// One agent.
    pub fn agent(&self, agent: &str) -> Option<AgentView> {
        let agent_index = *self.agent_indexes.get(agent)?;
        Some(self.view_of(&self.agents[agent_index]))
    }

    /// Every registered agent, sorted by id.
    pub fn agents(&self) -> Vec<AgentView> {
        let mut views: Vec<AgentView> = self
            .agents
            .iter()
            .map(|agent| self.view_of(agent))
            .collect();
        views.sort_by(|left, right| left.id.cmp(&right.id));
        views
    }

    /// The active agents who work on `site`, sorted by id.
    pub fn site_agents(&self, site: &str) -> Vec<AgentView> {
        let mut views: Vec<AgentView> = self
            .agents
            .iter()
            .filter(|agent| !agent.retired && agent.sites.includes(site))
            .map(|agent| self.view_of(agent))
            .collect();
        views.sort_by(|left, right| left.id.cmp(&right.id));
        views
    }

    /// Waiting chats of one site (`Some`) or of every site, by site, then department
    /// name, each queue in order. O(queue length): the hub should call this once per
    /// batch of [`Effect::QueueChanged`] rather than `queue_position` per visitor.
    pub fn queue_snapshot(&self, site: Option<&str>) -> Vec<QueuedChat> {
        let mut snapshot = Vec::new();
        for queue_id in &self.waiting {
            if site.is_some_and(|site| site != queue_id.site) {
                continue;
            }
            let Some(record) = self.queues.get(queue_id) else {
                continue;
            };
            let slots = self.online_slots(record);
            for (index, (key, conversation_key)) in record.queue.iter().enumerate() {
                let Some(conversation) = self.conversations.get(conversation_key) else {
                    continue;
                };
                let position = u32::try_from(index + 1).unwrap_or(u32::MAX);
                snapshot.push(QueuedChat {
                    conversation: conversation.id.clone(),
                    site: queue_id.site.clone(),
                    department: queue_id.department.clone(),
                    priority: conversation.priority,
                    waiting_since: key.waiting_since,
                    position,
                    expected_wait_ms: self.expected_wait(&queue_id.site, position, slots),
                    requeued_to_front: key.front_rank == 0,
                });
            }
        }
        snapshot
    }

    /// `(1-based position in its queue, expected wait in ms)` for a queued chat, `None`
    /// otherwise. Expected wait = `ceil(position × H / S)` where `H` is the mean of the
    /// site's recent handling times ([`RouterConfig::default_handling_ms`] before any is
    /// recorded) and `S` the concurrent slots of the queue: the summed capacity of its
    /// Online, connected agents, at least 1. In words: when every slot is busy, one
    /// frees up every `H / S` ms on average (agents shared with other sites make this
    /// optimistic). O(position).
    pub fn queue_position(&self, conversation: &str) -> Option<(u32, u64)> {
        let key = self.conversation_keys.get(conversation)?;
        let record = self.conversations.get(key)?;
        let Status::Queued(queue_key) = &record.status else {
            return None;
        };
        let queue = self.queues.get(&record.queue_id())?;
        let ahead = queue.queue.range(..(*queue_key, *key)).count();
        let position = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
        Some((
            position,
            self.expected_wait(&record.site, position, self.online_slots(queue)),
        ))
    }

    // ----- internals: lookups ---------------------------------------------------------

    fn view_of(&self, agent: &AgentRecord) -> AgentView {
        AgentView {
            id: agent.id.clone(),
            presence: agent.presence,
            disconnected_since: agent.disconnected_since,
            sockets: u32::try_from(agent.sockets.len()).unwrap_or(u32::MAX),
            load: chat_count(agent),
            capacity: self.capacity_of(agent),
            departments: agent.departments.clone(),
            sites: agent.sites.clone(),
            retired: agent.retired,
        }
    }

    fn agent_index(&self, agent: &str) -> Result<AgentIndex, RoutingError> {
        self.agent_indexes
            .get(agent)
            .copied()
            .ok_or(RoutingError::UnknownAgent)
    }

    fn conversation_key(&self, conversation: &str) -> Result<ConversationKey, RoutingError> {
        self.conversation_keys
            .get(conversation)
            .copied()
            .ok_or(RoutingError::UnknownConversation)
    }

    /// The key of a known conversation that is not closed.
    fn live_conversation_key(&self, conversation: &str) -> Result<ConversationKey, RoutingError> {
        let key = self.conversation_key(conversation)?;
        match self.status(key)? {
            Status::Closed => Err(RoutingError::AlreadyClosed),
            _ => Ok(key),
        }
    }

    /// The key of an open conversation of `site`; an unknown one is recorded as being
    /// with the bot (the hub tells the router about a conversation only once people are
    /// involved).
    fn open_conversation_key(
        &mut self,
        conversation: &str,
        site: &str,
    ) -> Result<ConversationKey, RoutingError> {
        match self.find_open_conversation(conversation, site)? {
            Some(key) => Ok(key),
            None => Ok(self.record_bot_conversation(conversation, site)),
        }
    }

    /// The key of a known open conversation of `site`, `None` for an unknown one.
    /// Changes nothing, so a caller can still refuse before recording it.
    fn find_open_conversation(
        &self,
        conversation: &str,
        site: &str,
    ) -> Result<Option<ConversationKey>, RoutingError> {
        let Some(&key) = self.conversation_keys.get(conversation) else {
            return Ok(None);
        };
        let record = self
            .conversations
            .get(&key)
            .ok_or(RoutingError::UnknownConversation)?;
        if record.site != site {
            return Err(RoutingError::WrongSite);
        }
        if matches!(record.status, Status::Closed) {
            return Err(RoutingError::AlreadyClosed);
        }
        Ok(Some(key))
    }

    fn record_bot_conversation(&mut self, conversation: &str, site: &str) -> ConversationKey {
        self.ensure_site(site);
        self.insert_conversation(conversation, site, String::new(), 0, Status::Bot)
    }

    /// The agent a conversation is offered or assigned to.
    fn holder(&self, conversation_key: ConversationKey) -> Option<AgentIndex> {
        match self.conversations.get(&conversation_key)?.status {
            Status::Assigned(agent) | Status::Offered { agent, .. } => Some(agent),
            _ => None,
        }
    }

    fn status(&self, conversation_key: ConversationKey) -> Result<&Status, RoutingError> {
        self.conversations
            .get(&conversation_key)
            .map(|record| &record.status)
            .ok_or(RoutingError::UnknownConversation)
    }

    fn capacity_of(&self, agent: &AgentRecord) -> u32 {
        agent
            .capacity_override
            .unwrap_or(self.config.default_capacity)
    }

    fn check_can_take_new_chat(
        &self,
        agent_index: AgentIndex,
        site: &str,
    ) -> Result<(), RoutingError> {
        let agent = &self.agents[agent_index];
        if !agent.sites.includes(site) {
            return Err(RoutingError::NotOnSite);
        }
        if agent.retired || agent.presence != Presence::Online || agent.sockets.is_empty() {
            return Err(RoutingError::NotAvailable);
        }
        if chat_count(agent) >= self.capacity_of(agent) {
            return Err(RoutingError::OverCapacity);
        }
        Ok(())
    }

    /// Whether some active agent of `site` serves `department` (whatever their status).
    fn is_served(&self, site: &str, department: &str) -> bool {
        if department == self.config.general_department {
            return true;
        }
        if !self.sites.contains_key(site) {
            // Not registered yet, so no queue of it exists; agents of every site will
            // serve it once it is.
            return self.agents.iter().any(|agent| {
                !agent.retired
                    && agent.sites == Sites::All
                    && agent
                        .departments
                        .binary_search_by(|own| own.as_str().cmp(department))
                        .is_ok()
            });
        }
        let queue_id = QueueId {
            site: site.to_owned(),
            department: department.to_owned(),
        };
        self.queues
            .get(&queue_id)
            .is_some_and(|queue| !queue.serving_agents.is_empty())
    }

    fn online_slots(&self, queue: &QueueRecord) -> u64 {
        queue
            .serving_agents
            .iter()
            .map(|&index| &self.agents[index])
            .filter(|agent| agent.presence == Presence::Online && !agent.sockets.is_empty())
            .map(|agent| u64::from(self.capacity_of(agent)))
            .sum::<u64>()
            .max(1)
    }

    fn expected_wait(&self, site: &str, position: u32, slots: u64) -> u64 {
        let mean_handling = self
            .sites
            .get(site)
            .and_then(|record| {
                record
                    .recent_handling_sum
                    .checked_div(record.recent_handling_ms.len() as u128)
            })
            .unwrap_or(u128::from(self.config.default_handling_ms));
        let total = u128::from(position) * mean_handling;
        let slots = u128::from(slots.max(1));
        u64::try_from(total.div_ceil(slots)).unwrap_or(u64::MAX)
    }

    fn policy(&self, site: &str) -> SitePolicy {
        self.sites
            .get(site)
            .and_then(|record| record.policy)
            .unwrap_or(self.config.default_policy)
    }

    /// Feeds one finished chat's handling time into its site's expected-wait estimate
    /// (a ring of the last [`RouterConfig::handled_window`] values).
    fn record_handled(&mut self, site: &str, duration_ms: u64) {
        let window = self.config.handled_window;
        let Some(record) = self.sites.get_mut(site) else {
            return;
        };
        if window == 0 {
            return;
        }
        while record.recent_handling_ms.len() >= window {
            if let Some(oldest) = record.recent_handling_ms.pop_front() {
                record.recent_handling_sum -= u128::from(oldest);
            }
        }
        record.recent_handling_ms.push_back(duration_ms);
        record.recent_handling_sum += u128::from(duration_ms);
    }

    // ----- internals: sites and served queues ----------------------------------------

    /// Registers `site` with the default policy if it is new; agents of every site then
    /// serve it.
    fn ensure_site(&mut self, site: &str) {
        if self.sites.contains_key(site) {
            return;
        }
        self.sites.insert(
            site.to_owned(),
            SiteRecord {
                policy: None,
                recent_handling_ms: VecDeque::new(),
                recent_handling_sum: 0,
            },
        );
        let everywhere: Vec<AgentIndex> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(_, agent)| agent.sites == Sites::All)
            .map(|(index, _)| index)
            .collect();
        for agent_index in everywhere {
            self.reindex_served(agent_index);
        }
    }

    /// Recomputes the queues the agent serves (their sites × departments) and re-indexes
    /// them there.
    fn reindex_served(&mut self, agent_index: AgentIndex) {
        self.unindex_agent(agent_index);
        for queue_id in std::mem::take(&mut self.agents[agent_index].served) {
            if let Some(queue) = self.queues.get_mut(&queue_id) {
                queue.serving_agents.remove(&agent_index);
            }
        }
        let agent = &self.agents[agent_index];
        let sites: Vec<String> = if agent.retired {
            Vec::new()
        } else {
            match &agent.sites {
                Sites::All => self.sites.keys().cloned().collect(),
                Sites::Only(sites) => sites.clone(),
            }
        };
        let mut departments = agent.departments.clone();
        departments.push(self.config.general_department.clone());
        departments.sort();
        departments.dedup();
        let mut served = Vec::with_capacity(sites.len() * departments.len());
        for site in &sites {
            for department in &departments {
                served.push(QueueId {
                    site: site.clone(),
                    department: department.clone(),
                });
            }
        }
        for queue_id in &served {
            self.queues
                .entry(queue_id.clone())
                .or_default()
                .serving_agents
                .insert(agent_index);
        }
        self.agents[agent_index].served = served;
        self.index_agent(agent_index);
    }

    /// Chats the agent holds on sites they no longer work on go back to their queues.
    fn requeue_off_site_chats(
        &mut self,
        agent_index: AgentIndex,
        now: u64,
        call: &mut CallEffects,
    ) {
        let off_site: Vec<ConversationKey> = self.agents[agent_index]
            .chats
            .iter()
            .copied()
            .filter(|key| {
                self.conversations
                    .get(key)
                    .is_some_and(|record| !self.agents[agent_index].sites.includes(&record.site))
            })
            .collect();
        for conversation_key in off_site {
            self.requeue_to_front(
                conversation_key,
                agent_index,
                RequeueReason::AccessRevoked,
                now,
                call,
            );
        }
    }

    // ----- internals: agent index -------------------------------------------------------

    /// Removes the agent from every `available_agents` set. Call before changing
    /// anything that the availability key or eligibility depends on.
    fn unindex_agent(&mut self, agent_index: AgentIndex) {
        let agent = &mut self.agents[agent_index];
        if let Some(key) = agent.availability.take() {
            for queue_id in &agent.served {
                if let Some(queue) = self.queues.get_mut(queue_id) {
                    queue.available_agents.remove(&key);
                }
            }
        }
    }

    /// Puts the agent back in `available_agents` of their queues if they can take a new
    /// chat: Online, connected, below capacity.
    fn index_agent(&mut self, agent_index: AgentIndex) {
        let capacity = self.capacity_of(&self.agents[agent_index]);
        let agent = &mut self.agents[agent_index];
        debug_assert!(agent.availability.is_none());
        let load = chat_count(agent);
        if agent.retired
            || agent.presence != Presence::Online
            || agent.sockets.is_empty()
            || load >= capacity
        {
            return;
        }
        let key = AvailabilityKey {
            load_ratio: LoadRatio { load, capacity },
            idle_since: agent.idle_since,
            agent: agent_index,
        };
        agent.availability = Some(key);
        for queue_id in &agent.served {
            self.queues
                .entry(queue_id.clone())
                .or_default()
                .available_agents
                .insert(key);
        }
    }

    /// Sets the presence field, emitting [`Effect::PresenceChanged`] when it changes.
    /// The caller re-indexes.
    fn set_presence_field(
        &mut self,
        agent_index: AgentIndex,
        presence: Presence,
        call: &mut CallEffects,
    ) {
        let agent = &mut self.agents[agent_index];
        if agent.presence != presence {
            agent.presence = presence;
            call.effects.push(Effect::PresenceChanged {
                agent: agent.id.clone(),
                presence,
            });
        }
    }

    /// Online or Away while connected (ends a grace period).
    fn choose(
        &mut self,
        agent_index: AgentIndex,
        presence: Presence,
        now: u64,
        call: &mut CallEffects,
    ) {
        self.end_grace(agent_index);
        self.unindex_agent(agent_index);
        let previous = self.agents[agent_index].presence;
        if presence == Presence::Online && previous != Presence::Online {
            self.agents[agent_index].idle_since = now;
        }
        self.set_presence_field(agent_index, presence, call);
        if presence == Presence::Away {
            self.withdraw_offers(agent_index, call);
        }
        self.index_agent(agent_index);
    }

    /// Starts the grace period (the caller has unindexed the agent).
    fn start_grace(&mut self, agent_index: AgentIndex, now: u64) {
        let deadline = now.saturating_add(self.config.grace_ms);
        let agent = &mut self.agents[agent_index];
        agent.disconnected_since = Some(now);
        agent.grace_deadline = Some(deadline);
        self.grace_deadlines.insert((deadline, agent_index));
    }

    fn end_grace(&mut self, agent_index: AgentIndex) {
        if self.agents[agent_index].disconnected_since.is_some() {
            self.unindex_agent(agent_index);
            let agent = &mut self.agents[agent_index];
            agent.disconnected_since = None;
            if let Some(deadline) = agent.grace_deadline.take() {
                self.grace_deadlines.remove(&(deadline, agent_index));
            }
            self.index_agent(agent_index);
        }
    }

    /// Offline: every chat back to the front of its queue, in the order the router first
    /// saw the conversations (their keys), which is not always the order the agent got
    /// them.
    fn go_offline(
        &mut self,
        agent_index: AgentIndex,
        reason: RequeueReason,
        now: u64,
        call: &mut CallEffects,
    ) {
        self.end_grace(agent_index);
        self.unindex_agent(agent_index);
        let was_offline = self.agents[agent_index].presence == Presence::Offline;
        self.set_presence_field(agent_index, Presence::Offline, call);
        let chats: Vec<ConversationKey> = self.agents[agent_index].chats.iter().copied().collect();
        for conversation_key in chats {
            self.requeue_to_front(conversation_key, agent_index, reason, now, call);
        }
        if !was_offline {
            call.effects.push(Effect::AgentOffline {
                agent: self.agents[agent_index].id.clone(),
            });
        }
        self.index_agent(agent_index);
    }

    /// Takes a chat away from its agent and puts it at the front of its priority class.
    fn requeue_to_front(
        &mut self,
        conversation_key: ConversationKey,
        agent_index: AgentIndex,
        reason: RequeueReason,
        now: u64,
        call: &mut CallEffects,
    ) {
        self.detach(conversation_key, call);
        let Some(record) = self.conversations.get(&conversation_key) else {
            return;
        };
        let priority = record.priority;
        let queue_key = self.fresh_queue_key(priority, true, now);
        self.put_in_queue(conversation_key, queue_key, call);
        self.restart_response_clock(conversation_key, now);
        self.push_requeued(conversation_key, Some(agent_index), reason, call);
    }

    /// Pending offers of an agent who can no longer accept go back to their old place.
    fn withdraw_offers(&mut self, agent_index: AgentIndex, call: &mut CallEffects) {
        let offered: Vec<(ConversationKey, QueueKey)> = self.agents[agent_index]
            .chats
            .iter()
            .filter_map(|key| match self.conversations.get(key).map(|r| &r.status) {
                Some(Status::Offered { queue_key, .. }) => Some((*key, *queue_key)),
                _ => None,
            })
            .collect();
        for (conversation_key, queue_key) in offered {
            self.detach(conversation_key, call);
            let priority = self
                .conversations
                .get(&conversation_key)
                .map_or(0, |record| record.priority);
            self.put_in_queue(conversation_key, queue_key.with_priority(priority), call);
            self.push_requeued(
                conversation_key,
                Some(agent_index),
                RequeueReason::OfferWithdrawn,
                call,
            );
        }
    }

    fn offer_lapsed(
        &mut self,
        conversation_key: ConversationKey,
        now: u64,
        call: &mut CallEffects,
    ) {
        let Some((agent_index, queue_key, site)) = self
            .conversations
            .get(&conversation_key)
            .and_then(|record| match record.status {
                Status::Offered {
                    agent, queue_key, ..
                } => Some((agent, queue_key, record.site.clone())),
                _ => None,
            })
        else {
            // Cannot happen (deadlines are removed with their offer); drop the stale entry.
            self.offer_deadlines
                .retain(|&(_, key)| key != conversation_key);
            return;
        };
        self.detach(conversation_key, call);
        let timeout = self.policy(&site).accept_timeout_ms.unwrap_or(0);
        let skip_until = now.saturating_add(timeout);
        let Some(record) = self.conversations.get_mut(&conversation_key) else {
            return;
        };
        record.skipped_agents.retain(|&(_, until)| until > now);
        record.skipped_agents.push((agent_index, skip_until));
        let priority = record.priority;
        let conversation = record.id.clone();
        self.put_in_queue(conversation_key, queue_key.with_priority(priority), call);
        call.effects.push(Effect::OfferExpired {
            conversation,
            agent: self.agents[agent_index].id.clone(),
        });
    }

    // ----- internals: conversations -----------------------------------------------------

    fn insert_conversation(
        &mut self,
        conversation: &str,
        site: &str,
        department: String,
        priority: i32,
        status: Status,
    ) -> ConversationKey {
        let key = self.next_conversation_key;
        self.next_conversation_key += 1;
        self.conversation_keys.insert(conversation.to_owned(), key);
        self.conversations.insert(
            key,
            ConversationRecord {
                id: conversation.to_owned(),
                site: site.to_owned(),
                department,
                priority,
                status,
                skipped_agents: Vec::new(),
                avoided_agent: None,
                preferred_agent: None,
                response_deadline: None,
                assigned_at: None,
            },
        );
        key
    }

    fn fresh_queue_key(&mut self, priority: i32, to_front: bool, now: u64) -> QueueKey {
        let sequence = self.next_queue_sequence;
        self.next_queue_sequence += 1;
        QueueKey {
            priority: Reverse(priority),
            front_rank: if to_front { 0 } else { 1 },
            waiting_since: now,
            sequence,
        }
    }

    fn put_in_queue(
        &mut self,
        conversation_key: ConversationKey,
        queue_key: QueueKey,
        call: &mut CallEffects,
    ) {
        let Some(record) = self.conversations.get_mut(&conversation_key) else {
            return;
        };
        record.status = Status::Queued(queue_key);
        let queue_id = record.queue_id();
        self.queues
            .entry(queue_id.clone())
            .or_default()
            .queue
            .insert((queue_key, conversation_key));
        self.waiting.insert(queue_id.clone());
        call.touched_queues.insert(queue_id);
    }

    /// Takes the conversation out of its queue or away from its agent (freeing
    /// capacity). The status is left for the caller to set.
    fn detach(&mut self, conversation_key: ConversationKey, call: &mut CallEffects) {
        let Some(record) = self.conversations.get_mut(&conversation_key) else {
            return;
        };
        record.assigned_at = None;
        let queue_id = record.queue_id();
        match record.status {
            Status::Queued(queue_key) => {
                if let Some(queue) = self.queues.get_mut(&queue_id) {
                    queue.queue.remove(&(queue_key, conversation_key));
                    if queue.queue.is_empty() {
                        self.waiting.remove(&queue_id);
                    }
                }
                call.touched_queues.insert(queue_id);
            }
            Status::Offered {
                agent, deadline, ..
            } => {
                self.offer_deadlines.remove(&(deadline, conversation_key));
                self.release_from_agent(agent, conversation_key);
            }
            Status::Assigned(agent) => self.release_from_agent(agent, conversation_key),
            Status::Bot | Status::Closed => {}
        }
    }

    fn release_from_agent(&mut self, agent_index: AgentIndex, conversation_key: ConversationKey) {
        self.unindex_agent(agent_index);
        self.agents[agent_index].chats.remove(&conversation_key);
        self.index_agent(agent_index);
    }

    /// Gives a detached conversation to an agent: an offer if `offer_allowed`, accept
    /// mode is on for its site and the chat comes from a queue; else an assignment.
    fn hand_over(
        &mut self,
        conversation_key: ConversationKey,
        agent_index: AgentIndex,
        offer_allowed: bool,
        now: u64,
        call: &mut CallEffects,
    ) {
        let Some(site) = self
            .conversations
            .get(&conversation_key)
            .map(|record| record.site.clone())
        else {
            return;
        };
        let accept_timeout = self.policy(&site).accept_timeout_ms;
        let Some(record) = self.conversations.get_mut(&conversation_key) else {
            return;
        };
        let previous_key = match record.status {
            Status::Queued(key) => Some(key),
            _ => None,
        };
        record.avoided_agent = None;
        let agent_id = self.agents[agent_index].id.clone();
        let offer = match (offer_allowed, accept_timeout, previous_key) {
            (true, Some(timeout), Some(queue_key)) => {
                Some((now.saturating_add(timeout), queue_key))
            }
            _ => None,
        };
        match offer {
            Some((deadline, queue_key)) => {
                record.status = Status::Offered {
                    agent: agent_index,
                    deadline,
                    queue_key,
                };
                self.offer_deadlines.insert((deadline, conversation_key));
                call.effects.push(Effect::Offered {
                    conversation: record.id.clone(),
                    agent: agent_id,
                    deadline,
                });
            }
            None => {
                record.status = Status::Assigned(agent_index);
                record.assigned_at = Some(now);
                call.effects.push(Effect::Assigned {
                    conversation: record.id.clone(),
                    agent: agent_id,
                });
            }
        }
        self.unindex_agent(agent_index);
        let agent = &mut self.agents[agent_index];
        agent.chats.insert(conversation_key);
        agent.idle_since = now;
        self.index_agent(agent_index);
    }

    fn set_priority(
        &mut self,
        conversation_key: ConversationKey,
        new_priority: i32,
        call: &mut CallEffects,
    ) {
        let Some(record) = self.conversations.get_mut(&conversation_key) else {
            return;
        };
        if new_priority <= record.priority {
            return;
        }
        record.priority = new_priority;
        if let Status::Queued(old_key) = record.status {
            let new_key = old_key.with_priority(new_priority);
            record.status = Status::Queued(new_key);
            let queue_id = record.queue_id();
            if let Some(queue) = self.queues.get_mut(&queue_id) {
                queue.queue.remove(&(old_key, conversation_key));
                queue.queue.insert((new_key, conversation_key));
            }
            call.touched_queues.insert(queue_id);
        }
    }

    fn restart_response_clock(&mut self, conversation_key: ConversationKey, now: u64) {
        self.stop_response_clock(conversation_key);
        let Some(site) = self
            .conversations
            .get(&conversation_key)
            .map(|record| record.site.clone())
        else {
            return;
        };
        let Some(target) = self.policy(&site).first_response_target_ms else {
            return;
        };
        if let Some(record) = self.conversations.get_mut(&conversation_key) {
            let deadline = now.saturating_add(target);
            record.response_deadline = Some(deadline);
            self.response_deadlines.insert((deadline, conversation_key));
        }
    }

    fn stop_response_clock(&mut self, conversation_key: ConversationKey) {
        if let Some(record) = self.conversations.get_mut(&conversation_key)
            && let Some(deadline) = record.response_deadline.take()
        {
            self.response_deadlines
                .remove(&(deadline, conversation_key));
        }
    }

    fn push_requeued(
        &self,
        conversation_key: ConversationKey,
        from_agent: Option<AgentIndex>,
        reason: RequeueReason,
        call: &mut CallEffects,
    ) {
        if let Some(record) = self.conversations.get(&conversation_key) {
            call.effects.push(Effect::Requeued {
                conversation: record.id.clone(),
                department: record.department.clone(),
                from_agent: from_agent.map(|index| self.agents[index].id.clone()),
                reason,
            });
        }
    }

    // ----- internals: the drain loop ------------------------------------------------------

    /// Assigns queued chats until no queue has both a waiting chat and a free agent who
    /// may take it. Each round takes the globally first chat (priority, front, FIFO)
    /// among queue heads that have an eligible agent, and gives it to the best such
    /// agent. Cost per assignment: O(waiting queues × log n) plus the chats skipped
    /// because their only free agents let an offer for them lapse.
    fn drain(&mut self, now: u64, call: &mut CallEffects) {
        loop {
            let mut best: Option<(QueueKey, ConversationKey, AgentIndex)> = None;
            for queue_id in &self.waiting {
                let Some(queue) = self.queues.get(queue_id) else {
                    continue;
                };
                if queue.available_agents.is_empty() {
                    continue;
                }
                for &(queue_key, conversation_key) in &queue.queue {
                    if best.is_some_and(|(best_key, _, _)| best_key <= queue_key) {
                        break;
                    }
                    let Some(conversation) = self.conversations.get(&conversation_key) else {
                        continue;
                    };
                    let preferred = conversation
                        .preferred_agent
                        .and_then(|index| self.agents[index].availability);
                    if let Some(agent_index) =
                        pick_agent(conversation, &queue.available_agents, preferred, now)
                    {
                        best = Some((queue_key, conversation_key, agent_index));
                        break;
                    }
                }
            }
            let Some((_, conversation_key, agent_index)) = best else {
                break;
            };
            // `detach` leaves `Status::Queued` in place, so `hand_over` can remember the
            // queue key in case the offer lapses.
            self.detach(conversation_key, call);
            self.hand_over(conversation_key, agent_index, true, now, call);
        }
    }
}

fn chat_count(agent: &AgentRecord) -> u32 {
    u32::try_from(agent.chats.len()).unwrap_or(u32::MAX)
}

/// The best available agent for this chat: its preferred agent (`preferred`, their
/// availability key) if they are available for its queue and not skipped; else the
/// first in availability order who is not skipped (lapsed offer, still within its skip
/// window); the avoided agent (who just transferred it away) only if no one else
/// qualifies.
fn pick_agent(
    conversation: &ConversationRecord,
    available_agents: &BTreeSet<AvailabilityKey>,
    preferred: Option<AvailabilityKey>,
    now: u64,
) -> Option<AgentIndex> {
    let skipped = |agent_index: AgentIndex| {
        conversation
            .skipped_agents
            .iter()
            .any(|&(skipped_agent, until)| skipped_agent == agent_index && now < until)
    };
    if let Some(key) = preferred
        && available_agents.contains(&key)
        && !skipped(key.agent)
    {
        return Some(key.agent);
    }
    let mut fallback = None;
    for key in available_agents {
        let agent_index = key.agent;
        if skipped(agent_index) {
            continue;
        }
        if conversation.avoided_agent == Some(agent_index) {
            if fallback.is_none() {
                fallback = Some(agent_index);
            }
            continue;
        }
        return Some(agent_index);
    }
    fallback
}
