//! The [`Router`] state machine: indexes, the drain loop and the timers.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::types::{
    AgentSpec, AgentView, ConversationState, Effect, Presence, QueuedChat, RequeueReason,
    RouterConfig, RoutingError,
};

type AgentIndex = usize;
type ConversationKey = u64;

/// Place of a chat in a queue: priority desc, front requeues first, then FIFO.
/// `sequence` is unique across the router, so keys never tie, even across departments.
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
    /// `departments` plus the general one, sorted and deduplicated.
    served_departments: Vec<String>,
    capacity_override: Option<u32>,
    presence: Presence,
    disconnected_since: Option<u64>,
    /// Last assignment, or when they last became Online.
    idle_since: u64,
    chats: BTreeSet<ConversationKey>,
    /// The key under which this agent sits in `available_agents` of every served
    /// department, if it does.
    availability: Option<AvailabilityKey>,
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
    department: String,
    priority: i32,
    status: Status,
    /// Agents whose offer lapsed, skipped for this chat until the given time.
    skipped_agents: Vec<(AgentIndex, u64)>,
    /// The agent who just transferred it away: chosen only if nobody else is free.
    avoided_agent: Option<AgentIndex>,
    /// Deadline of the running first-response clock, if any.
    response_deadline: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct DepartmentRecord {
    queue: BTreeSet<(QueueKey, ConversationKey)>,
    available_agents: BTreeSet<AvailabilityKey>,
    serving_agents: BTreeSet<AgentIndex>,
}

/// Routing state of one site. See the crate docs for the rules.
#[derive(Clone, Debug)]
pub struct Router {
    config: RouterConfig,
    agents: Vec<AgentRecord>,
    agent_indexes: HashMap<String, AgentIndex>,
    conversations: HashMap<ConversationKey, ConversationRecord>,
    conversation_keys: HashMap<String, ConversationKey>,
    next_conversation_key: ConversationKey,
    next_queue_sequence: u64,
    departments: BTreeMap<String, DepartmentRecord>,
    grace_deadlines: BTreeSet<(u64, AgentIndex)>,
    offer_deadlines: BTreeSet<(u64, ConversationKey)>,
    response_deadlines: BTreeSet<(u64, ConversationKey)>,
    recent_handling_ms: VecDeque<u64>,
    recent_handling_sum: u128,
}

/// Effects of one call, plus the departments whose queue it touched.
struct CallEffects {
    effects: Vec<Effect>,
    touched_departments: BTreeSet<String>,
}

impl CallEffects {
    fn new() -> Self {
        CallEffects {
            effects: Vec::new(),
            touched_departments: BTreeSet::new(),
        }
    }

    fn finish(mut self) -> Vec<Effect> {
        for department in self.touched_departments {
            self.effects.push(Effect::QueueChanged { department });
        }
        self.effects
    }
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        let mut departments = BTreeMap::new();
        departments.insert(
            config.general_department.clone(),
            DepartmentRecord::default(),
        );
        Router {
            config,
            agents: Vec::new(),
            agent_indexes: HashMap::new(),
            conversations: HashMap::new(),
            conversation_keys: HashMap::new(),
            next_conversation_key: 0,
            next_queue_sequence: 0,
            departments,
            grace_deadlines: BTreeSet::new(),
            offer_deadlines: BTreeSet::new(),
            response_deadlines: BTreeSet::new(),
            recent_handling_ms: VecDeque::new(),
            recent_handling_sum: 0,
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Replaces the settings later decisions use (default capacity, grace period,
    /// accept timeout, response target, ...); the general department stays as it was.
    /// Agents are re-indexed under the new default capacity, so a raised capacity
    /// drains the backlog at once. Timers already running keep their deadlines.
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

    // ----- agents -------------------------------------------------------------------

    /// Registers an agent (starting Offline) or updates their departments and capacity.
    /// Chats already held are kept even if the capacity drops below the load or a
    /// department is removed; raised capacity drains the backlog at once.
    pub fn upsert_agent(&mut self, spec: AgentSpec, now: u64) -> Vec<Effect> {
        let mut call = CallEffects::new();
        let mut departments = spec.departments;
        departments.sort();
        departments.dedup();
        let mut served_departments = departments.clone();
        served_departments.push(self.config.general_department.clone());
        served_departments.sort();
        served_departments.dedup();

        let agent_index = match self.agent_indexes.get(&spec.id) {
            Some(&agent_index) => {
                self.unindex_agent(agent_index);
                for department in &self.agents[agent_index].served_departments {
                    if let Some(record) = self.departments.get_mut(department) {
                        record.serving_agents.remove(&agent_index);
                    }
                }
                let agent = &mut self.agents[agent_index];
                agent.departments = departments;
                agent.served_departments = served_departments;
                agent.capacity_override = spec.capacity;
                agent_index
            }
            None => {
                let agent_index = self.agents.len();
                self.agents.push(AgentRecord {
                    id: spec.id.clone(),
                    departments,
                    served_departments,
                    capacity_override: spec.capacity,
                    presence: Presence::Offline,
                    disconnected_since: None,
                    idle_since: now,
                    chats: BTreeSet::new(),
                    availability: None,
                });
                self.agent_indexes.insert(spec.id, agent_index);
                agent_index
            }
        };
        for department in &self.agents[agent_index].served_departments {
            self.departments
                .entry(department.clone())
                .or_default()
                .serving_agents
                .insert(agent_index);
        }
        self.index_agent(agent_index);
        self.drain(now, &mut call);
        call.finish()
    }

    /// Sets the status the agent chose. Also ends a disconnect grace period (the agent
    /// is evidently back). Online drains the backlog; Away keeps chats but withdraws
    /// pending offers; Offline returns every chat to the front of its queue.
    pub fn set_presence(
        &mut self,
        agent: &str,
        presence: Presence,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let mut call = CallEffects::new();
        self.end_grace(agent_index);
        let previous = self.agents[agent_index].presence;
        match presence {
            Presence::Online => {
                self.unindex_agent(agent_index);
                let record = &mut self.agents[agent_index];
                if previous != Presence::Online {
                    record.idle_since = now;
                }
                record.presence = Presence::Online;
                self.index_agent(agent_index);
            }
            Presence::Away => {
                self.unindex_agent(agent_index);
                self.agents[agent_index].presence = Presence::Away;
                self.withdraw_offers(agent_index, &mut call);
                self.index_agent(agent_index);
            }
            Presence::Offline => {
                self.go_offline(agent_index, RequeueReason::AgentWentOffline, now, &mut call);
            }
        }
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// The agent's socket dropped. They keep their chats but get no new ones; pending
    /// offers are withdrawn. If [`agent_reconnected`](Self::agent_reconnected) does not
    /// come within [`RouterConfig::grace_ms`], [`tick`](Self::tick) makes them Offline.
    /// No effect for an Offline agent or one already in grace.
    pub fn agent_disconnected(
        &mut self,
        agent: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let mut call = CallEffects::new();
        let record = &self.agents[agent_index];
        if record.presence == Presence::Offline || record.disconnected_since.is_some() {
            return Ok(call.finish());
        }
        self.unindex_agent(agent_index);
        self.agents[agent_index].disconnected_since = Some(now);
        self.grace_deadlines
            .insert((now.saturating_add(self.config.grace_ms), agent_index));
        self.withdraw_offers(agent_index, &mut call);
        self.index_agent(agent_index);
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// The agent's socket is back within the grace period: nothing changes except that
    /// they can get new chats again. No effect if they were not in grace.
    pub fn agent_reconnected(
        &mut self,
        agent: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let agent_index = self.agent_index(agent)?;
        let mut call = CallEffects::new();
        if self.agents[agent_index].disconnected_since.is_some() {
            self.end_grace(agent_index);
            self.drain(now, &mut call);
        }
        Ok(call.finish())
    }

    // ----- conversations --------------------------------------------------------------

    /// Records a conversation that is with the bot, so its state can be queried and it
    /// can later be handed off. No effect if the conversation is already known.
    pub fn start_bot_conversation(&mut self, conversation: &str) -> Vec<Effect> {
        if !self.conversation_keys.contains_key(conversation) {
            self.insert_conversation(conversation, String::new(), 0, Status::Bot);
        }
        Vec::new()
    }

    /// Hands a conversation to humans (from the bot, or directly for a VIP): it joins
    /// `department`'s queue and is assigned at once if an agent is free. The
    /// first-response clock starts now.
    pub fn enqueue(
        &mut self,
        conversation: &str,
        department: &str,
        priority: i32,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = match self.conversation_keys.get(conversation) {
            Some(&key) => match self.conversations.get(&key).map(|record| &record.status) {
                Some(Status::Bot) => key,
                Some(Status::Closed) => return Err(RoutingError::AlreadyClosed),
                Some(_) => return Err(RoutingError::AlreadyRouted),
                None => return Err(RoutingError::UnknownConversation),
            },
            None => self.insert_conversation(conversation, String::new(), priority, Status::Bot),
        };
        let mut call = CallEffects::new();
        if let Some(record) = self.conversations.get_mut(&conversation_key) {
            record.department = department.to_owned();
            record.priority = priority;
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
    pub fn close(&mut self, conversation: &str, now: u64) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        let mut call = CallEffects::new();
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

    /// Transfers a queued, offered or assigned conversation to a named agent, who gets it
    /// directly (no offer, whatever the accept mode): the sending agent chose them.
    /// Department membership is not required. The target must be Online, connected and
    /// below capacity; otherwise the call is refused and nothing changes (the chat stays
    /// where it was, so it is never parked with an absent agent). A transfer to the
    /// current holder is a no-op. The first-response clock restarts.
    pub fn transfer_to_agent(
        &mut self,
        conversation: &str,
        agent: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        let agent_index = self.agent_index(agent)?;
        match self.status(conversation_key)? {
            Status::Bot => return Err(RoutingError::NotRouted),
            Status::Assigned(holder) | Status::Offered { agent: holder, .. }
                if *holder == agent_index =>
            {
                return Ok(Vec::new());
            }
            _ => {}
        }
        self.check_can_take_new_chat(agent_index)?;
        let mut call = CallEffects::new();
        self.detach(conversation_key, &mut call);
        self.restart_response_clock(conversation_key, now);
        self.hand_over(conversation_key, agent_index, false, now, &mut call);
        self.drain(now, &mut call);
        Ok(call.finish())
    }

    /// Moves a queued, offered or assigned conversation to the back of its priority class
    /// in `department` (priority kept). The agent who held it is chosen again only if no
    /// other agent of that department is free. The first-response clock restarts.
    pub fn transfer_to_department(
        &mut self,
        conversation: &str,
        department: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        let from_agent = match self.status(conversation_key)? {
            Status::Bot => return Err(RoutingError::NotRouted),
            Status::Assigned(holder) | Status::Offered { agent: holder, .. } => Some(*holder),
            _ => None,
        };
        let mut call = CallEffects::new();
        self.detach(conversation_key, &mut call);
        let priority = match self.conversations.get_mut(&conversation_key) {
            Some(record) => {
                record.department = department.to_owned();
                record.avoided_agent = from_agent;
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

    /// An agent picks a queued chat by hand, wherever it is in the queue and whichever
    /// department it waits in (an agent with a free seat never sees a waiting chat of
    /// their own departments: the drain assigns those at once, so manual takes are how
    /// agents help busy or unstaffed departments; who may see which queue is the hub's
    /// authorisation business). Refused if the agent is not Online and connected, or is
    /// at capacity. Always a direct assignment, even in accept mode.
    pub fn take(
        &mut self,
        agent: &str,
        conversation: &str,
        now: u64,
    ) -> Result<Vec<Effect>, RoutingError> {
        let conversation_key = self.live_conversation_key(conversation)?;
        let agent_index = self.agent_index(agent)?;
        if !matches!(self.status(conversation_key)?, Status::Queued(_)) {
            return Err(RoutingError::NotQueued);
        }
        self.check_can_take_new_chat(agent_index)?;
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
        _now: u64,
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

    /// Feeds one finished chat's handling time into the expected-wait estimate (a ring of
    /// the last [`RouterConfig::handled_window`] values).
    pub fn record_handled(&mut self, duration_ms: u64) {
        if self.config.handled_window == 0 {
            return;
        }
        while self.recent_handling_ms.len() >= self.config.handled_window {
            if let Some(oldest) = self.recent_handling_ms.pop_front() {
                self.recent_handling_sum -= u128::from(oldest);
            }
        }
        self.recent_handling_ms.push_back(duration_ms);
        self.recent_handling_sum += u128::from(duration_ms);
    }

    /// Fires every timer due at `now`, in this order: disconnect grace periods (agent
    /// Offline, chats to the front of their queues), offer deadlines (chat back in its
    /// place, agent skipped for it for one more `accept_timeout_ms`), first-response
    /// breaches (priority raised by [`RouterConfig::sla_priority_boost`]); then drains.
    /// A timer is due when `deadline <= now`.
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

    /// Every registered agent, sorted by id.
    pub fn agents(&self) -> Vec<AgentView> {
        let mut views: Vec<AgentView> = self
            .agents
            .iter()
            .map(|agent| AgentView {
                id: agent.id.clone(),
                presence: agent.presence,
                disconnected_since: agent.disconnected_since,
                load: chat_count(agent),
                capacity: self.capacity_of(agent),
                departments: agent.departments.clone(),
            })
            .collect();
        views.sort_by(|left, right| left.id.cmp(&right.id));
        views
    }

    /// Waiting chats of one department in queue order, or of all departments (sorted by
    /// department name, each in queue order) for `None`. O(queue length): the hub should
    /// call this once per [`Effect::QueueChanged`] rather than `queue_position` per
    /// visitor.
    pub fn queue_snapshot(&self, department: Option<&str>) -> Vec<QueuedChat> {
        let mut snapshot = Vec::new();
        let mut push_department = |name: &str, record: &DepartmentRecord| {
            let slots = self.online_slots(record);
            for (index, (key, conversation_key)) in record.queue.iter().enumerate() {
                let Some(conversation) = self.conversations.get(conversation_key) else {
                    continue;
                };
                let position = u32::try_from(index + 1).unwrap_or(u32::MAX);
                snapshot.push(QueuedChat {
                    conversation: conversation.id.clone(),
                    department: name.to_owned(),
                    priority: conversation.priority,
                    waiting_since: key.waiting_since,
                    position,
                    expected_wait_ms: self.expected_wait(position, slots),
                    requeued_to_front: key.front_rank == 0,
                });
            }
        };
        match department {
            Some(name) => {
                if let Some(record) = self.departments.get(name) {
                    push_department(name, record);
                }
            }
            None => {
                for (name, record) in &self.departments {
                    push_department(name, record);
                }
            }
        }
        snapshot
    }

    /// `(1-based position in its department queue, expected wait in ms)` for a queued
    /// chat, `None` otherwise. Expected wait = `ceil(position × H / S)` where `H` is the
    /// mean of the recent handling times ([`RouterConfig::default_handling_ms`] before
    /// any is recorded) and `S` the concurrent slots of the department: the summed
    /// capacity of its Online, connected agents, at least 1. In words: when every slot
    /// is busy, one frees up every `H / S` ms on average. O(position).
    pub fn queue_position(&self, conversation: &str) -> Option<(u32, u64)> {
        let key = self.conversation_keys.get(conversation)?;
        let record = self.conversations.get(key)?;
        let Status::Queued(queue_key) = &record.status else {
            return None;
        };
        let department = self.departments.get(&record.department)?;
        let ahead = department.queue.range(..(*queue_key, *key)).count();
        let position = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
        Some((
            position,
            self.expected_wait(position, self.online_slots(department)),
        ))
    }

    // ----- internals: lookups ---------------------------------------------------------

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

    fn check_can_take_new_chat(&self, agent_index: AgentIndex) -> Result<(), RoutingError> {
        let agent = &self.agents[agent_index];
        if agent.presence != Presence::Online || agent.disconnected_since.is_some() {
            return Err(RoutingError::NotAvailable);
        }
        if chat_count(agent) >= self.capacity_of(agent) {
            return Err(RoutingError::OverCapacity);
        }
        Ok(())
    }

    fn online_slots(&self, department: &DepartmentRecord) -> u64 {
        department
            .serving_agents
            .iter()
            .map(|&index| &self.agents[index])
            .filter(|agent| {
                agent.presence == Presence::Online && agent.disconnected_since.is_none()
            })
            .map(|agent| u64::from(self.capacity_of(agent)))
            .sum::<u64>()
            .max(1)
    }

    fn expected_wait(&self, position: u32, slots: u64) -> u64 {
        let count = self.recent_handling_ms.len() as u128;
        let mean_handling = self
            .recent_handling_sum
            .checked_div(count)
            .unwrap_or(u128::from(self.config.default_handling_ms));
        let total = u128::from(position) * mean_handling;
        let slots = u128::from(slots.max(1));
        u64::try_from(total.div_ceil(slots)).unwrap_or(u64::MAX)
    }

    // ----- internals: agent index -------------------------------------------------------

    /// Removes the agent from every `available_agents` set. Call before changing
    /// anything that the availability key or eligibility depends on.
    fn unindex_agent(&mut self, agent_index: AgentIndex) {
        let agent = &mut self.agents[agent_index];
        if let Some(key) = agent.availability.take() {
            for department in &agent.served_departments {
                if let Some(record) = self.departments.get_mut(department) {
                    record.available_agents.remove(&key);
                }
            }
        }
    }

    /// Puts the agent back in `available_agents` of their departments if they can take a
    /// new chat: Online, connected, below capacity.
    fn index_agent(&mut self, agent_index: AgentIndex) {
        let capacity = self.capacity_of(&self.agents[agent_index]);
        let agent = &mut self.agents[agent_index];
        debug_assert!(agent.availability.is_none());
        let load = chat_count(agent);
        if agent.presence != Presence::Online
            || agent.disconnected_since.is_some()
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
        for department in &agent.served_departments {
            self.departments
                .entry(department.clone())
                .or_default()
                .available_agents
                .insert(key);
        }
    }

    fn end_grace(&mut self, agent_index: AgentIndex) {
        if let Some(since) = self.agents[agent_index].disconnected_since {
            self.unindex_agent(agent_index);
            self.grace_deadlines
                .remove(&(since.saturating_add(self.config.grace_ms), agent_index));
            self.agents[agent_index].disconnected_since = None;
            self.index_agent(agent_index);
        }
    }

    /// Offline: every chat back to the front of its queue, in the order the agent got
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
        self.agents[agent_index].presence = Presence::Offline;
        let chats: Vec<ConversationKey> = self.agents[agent_index].chats.iter().copied().collect();
        for conversation_key in chats {
            self.detach(conversation_key, call);
            let Some(record) = self.conversations.get(&conversation_key) else {
                continue;
            };
            let priority = record.priority;
            let queue_key = self.fresh_queue_key(priority, true, now);
            self.put_in_queue(conversation_key, queue_key, call);
            self.restart_response_clock(conversation_key, now);
            self.push_requeued(conversation_key, Some(agent_index), reason, call);
        }
        if !was_offline {
            call.effects.push(Effect::AgentOffline {
                agent: self.agents[agent_index].id.clone(),
            });
        }
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
        let Some(Status::Offered {
            agent: agent_index,
            queue_key,
            ..
        }) = self
            .conversations
            .get(&conversation_key)
            .map(|r| r.status.clone())
        else {
            // Cannot happen (deadlines are removed with their offer); drop the stale entry.
            self.offer_deadlines
                .retain(|&(_, key)| key != conversation_key);
            return;
        };
        self.detach(conversation_key, call);
        let skip_until = now.saturating_add(self.config.accept_timeout_ms.unwrap_or(0));
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
                department,
                priority,
                status,
                skipped_agents: Vec::new(),
                avoided_agent: None,
                response_deadline: None,
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
        self.departments
            .entry(record.department.clone())
            .or_default()
            .queue
            .insert((queue_key, conversation_key));
        call.touched_departments.insert(record.department.clone());
    }

    /// Takes the conversation out of its queue or away from its agent (freeing
    /// capacity). The status is left for the caller to set.
    fn detach(&mut self, conversation_key: ConversationKey, call: &mut CallEffects) {
        let Some(record) = self.conversations.get(&conversation_key) else {
            return;
        };
        match record.status {
            Status::Queued(queue_key) => {
                if let Some(department) = self.departments.get_mut(&record.department) {
                    department.queue.remove(&(queue_key, conversation_key));
                }
                call.touched_departments.insert(record.department.clone());
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
    /// mode is on and the chat comes from a queue; else an assignment.
    fn hand_over(
        &mut self,
        conversation_key: ConversationKey,
        agent_index: AgentIndex,
        offer_allowed: bool,
        now: u64,
        call: &mut CallEffects,
    ) {
        let Some(record) = self.conversations.get_mut(&conversation_key) else {
            return;
        };
        let previous_key = match record.status {
            Status::Queued(key) => Some(key),
            _ => None,
        };
        record.avoided_agent = None;
        let agent_id = self.agents[agent_index].id.clone();
        let offer = match (offer_allowed, self.config.accept_timeout_ms, previous_key) {
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
            if let Some(department) = self.departments.get_mut(&record.department) {
                department.queue.remove(&(old_key, conversation_key));
                department.queue.insert((new_key, conversation_key));
            }
            call.touched_departments.insert(record.department.clone());
        }
    }

    fn restart_response_clock(&mut self, conversation_key: ConversationKey, now: u64) {
        self.stop_response_clock(conversation_key);
        let Some(target) = self.config.first_response_target_ms else {
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

    /// Assigns queued chats until no department has both a waiting chat and a free agent
    /// who may take it. Each round takes the globally first chat (priority, front,
    /// FIFO) among department heads that have an eligible agent, and gives it to the best
    /// such agent. Cost per assignment: O(departments × log n) plus the chats skipped
    /// because their only free agents let an offer for them lapse.
    fn drain(&mut self, now: u64, call: &mut CallEffects) {
        loop {
            let mut best: Option<(QueueKey, ConversationKey, AgentIndex)> = None;
            for department in self.departments.values() {
                if department.queue.is_empty() || department.available_agents.is_empty() {
                    continue;
                }
                for &(queue_key, conversation_key) in &department.queue {
                    if best.is_some_and(|(best_key, _, _)| best_key <= queue_key) {
                        break;
                    }
                    let Some(conversation) = self.conversations.get(&conversation_key) else {
                        continue;
                    };
                    if let Some(agent_index) =
                        pick_agent(conversation, &department.available_agents, now)
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

/// The best available agent for this chat: the first in availability order who is not
/// skipped (lapsed offer, still within its skip window); the avoided agent (who just
/// transferred it away) only if no one else qualifies.
fn pick_agent(
    conversation: &ConversationRecord,
    available_agents: &BTreeSet<AvailabilityKey>,
    now: u64,
) -> Option<AgentIndex> {
    let mut fallback = None;
    for key in available_agents {
        let agent_index = key.agent;
        let skipped = conversation
            .skipped_agents
            .iter()
            .any(|&(skipped_agent, until)| skipped_agent == agent_index && now < until);
        if skipped {
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
