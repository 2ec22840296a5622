//! Random operation sequences against a small site (4 agents, 3 departments, 12
//! conversations), with every routing invariant checked after every step.
//!
//! The test keeps a small model of what the rules say about queue order (priority,
//! front flag, waiting-since and arrival sequence of every chat) and of lapsed-offer
//! skips, built only from the operations and the effects returned, and checks the
//! router against it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use salam_routing::{
    AgentSpec, AgentView, ConversationState, Effect, Presence, QueuedChat, RequeueReason, Router,
    RouterConfig,
};

const AGENTS: [&str; 4] = ["a0", "a1", "a2", "a3"];
const DEPARTMENTS: [&str; 3] = ["", "d1", "d2"];
const CONVERSATIONS: [&str; 12] = [
    "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11",
];

#[derive(Clone, Debug)]
enum Op {
    UpsertAgent {
        agent: usize,
        departments: Vec<usize>,
        capacity: Option<u32>,
    },
    SetPresence {
        agent: usize,
        presence: Presence,
    },
    Disconnect {
        agent: usize,
    },
    Reconnect {
        agent: usize,
    },
    StartBot {
        conversation: usize,
    },
    Enqueue {
        conversation: usize,
        department: usize,
        priority: i32,
    },
    Close {
        conversation: usize,
    },
    TransferToAgent {
        conversation: usize,
        agent: usize,
    },
    TransferToDepartment {
        conversation: usize,
        department: usize,
    },
    Take {
        agent: usize,
        conversation: usize,
    },
    /// Accept by the agent the chat is offered to (if any), else by `agent`.
    Accept {
        agent: usize,
        conversation: usize,
    },
    RaisePriority {
        conversation: usize,
        priority: i32,
    },
    Responded {
        conversation: usize,
    },
    Advance {
        ms: u64,
    },
    RecordHandled {
        ms: u64,
    },
}

fn presence_strategy() -> impl Strategy<Value = Presence> {
    prop_oneof![
        3 => Just(Presence::Online),
        1 => Just(Presence::Away),
        1 => Just(Presence::Offline),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let agent = 0..AGENTS.len();
    let conversation = 0..CONVERSATIONS.len();
    let department = 0..DEPARTMENTS.len();
    prop_oneof![
        2 => (agent.clone(), proptest::collection::vec(1..DEPARTMENTS.len(), 0..3), proptest::option::of(0u32..4))
            .prop_map(|(agent, departments, capacity)| Op::UpsertAgent { agent, departments, capacity }),
        3 => (agent.clone(), presence_strategy()).prop_map(|(agent, presence)| Op::SetPresence { agent, presence }),
        1 => agent.clone().prop_map(|agent| Op::Disconnect { agent }),
        1 => agent.clone().prop_map(|agent| Op::Reconnect { agent }),
        1 => conversation.clone().prop_map(|conversation| Op::StartBot { conversation }),
        5 => (conversation.clone(), department.clone(), -1i32..3)
            .prop_map(|(conversation, department, priority)| Op::Enqueue { conversation, department, priority }),
        2 => conversation.clone().prop_map(|conversation| Op::Close { conversation }),
        1 => (conversation.clone(), agent.clone()).prop_map(|(conversation, agent)| Op::TransferToAgent { conversation, agent }),
        1 => (conversation.clone(), department.clone())
            .prop_map(|(conversation, department)| Op::TransferToDepartment { conversation, department }),
        1 => (agent.clone(), conversation.clone()).prop_map(|(agent, conversation)| Op::Take { agent, conversation }),
        2 => (agent.clone(), conversation.clone()).prop_map(|(agent, conversation)| Op::Accept { agent, conversation }),
        1 => (conversation.clone(), -1i32..20).prop_map(|(conversation, priority)| Op::RaisePriority { conversation, priority }),
        1 => conversation.prop_map(|conversation| Op::Responded { conversation }),
        3 => prop_oneof![0u64..2_000, 0u64..90_000].prop_map(|ms| Op::Advance { ms }),
        1 => (0u64..600_000).prop_map(|ms| Op::RecordHandled { ms }),
    ]
}

fn config_strategy() -> impl Strategy<Value = RouterConfig> {
    (
        0u32..4,
        prop_oneof![Just(0u64), 1_000u64..120_000],
        proptest::option::of(500u64..20_000),
        proptest::option::of(1_000u64..100_000),
        0i32..10,
    )
        .prop_map(
            |(default_capacity, grace_ms, accept_timeout_ms, first_response_target_ms, boost)| {
                RouterConfig {
                    default_capacity,
                    grace_ms,
                    accept_timeout_ms,
                    first_response_target_ms,
                    sla_priority_boost: boost,
                    handled_window: 5,
                    ..RouterConfig::default()
                }
            },
        )
}

/// What the rules say a chat's queue place is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModelPlace {
    front: bool,
    waiting_since: u64,
    sequence: u64,
}

#[derive(Default)]
struct Model {
    now: u64,
    accept_timeout_ms: Option<u64>,
    known: BTreeSet<String>,
    priority: HashMap<String, i32>,
    department: HashMap<String, String>,
    place: HashMap<String, ModelPlace>,
    /// (conversation, agent, skipped until)
    skips: Vec<(String, String, u64)>,
    next_sequence: u64,
}

impl Model {
    fn fresh_place(&mut self, conversation: &str, front: bool) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.place.insert(
            conversation.to_owned(),
            ModelPlace {
                front,
                waiting_since: self.now,
                sequence,
            },
        );
    }

    /// Ordering key of a chat per the documented rule; smaller goes first.
    fn order_key(&self, conversation: &str) -> (Reverse<i32>, bool, u64, u64) {
        let priority = self.priority.get(conversation).copied().unwrap_or(0);
        let place = self.place.get(conversation).copied().unwrap_or(ModelPlace {
            front: false,
            waiting_since: 0,
            sequence: u64::MAX,
        });
        (
            Reverse(priority),
            !place.front,
            place.waiting_since,
            place.sequence,
        )
    }

    fn skipped(&self, conversation: &str, agent: &str) -> bool {
        self.skips
            .iter()
            .any(|(c, a, until)| c == conversation && a == agent && self.now < *until)
    }

    fn absorb_effects(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Requeued {
                    conversation,
                    department,
                    reason,
                    ..
                } => {
                    self.department
                        .insert(conversation.clone(), department.clone());
                    match reason {
                        RequeueReason::GraceExpired | RequeueReason::AgentWentOffline => {
                            self.fresh_place(conversation, true);
                        }
                        RequeueReason::TransferredToDepartment => {
                            self.fresh_place(conversation, false);
                        }
                        RequeueReason::OfferWithdrawn => {}
                    }
                }
                Effect::SlaBreached {
                    conversation,
                    priority,
                } => {
                    self.priority.insert(conversation.clone(), *priority);
                }
                Effect::OfferExpired {
                    conversation,
                    agent,
                } => {
                    let until = self.now.saturating_add(self.accept_timeout_ms.unwrap_or(0));
                    self.skips
                        .push((conversation.clone(), agent.clone(), until));
                }
                _ => {}
            }
        }
    }
}

/// Everything observable, to check that a refused call changes nothing.
#[derive(Debug, PartialEq)]
struct Observation {
    agents: Vec<AgentView>,
    queue: Vec<QueuedChat>,
    states: Vec<Option<ConversationState>>,
    chats: Vec<Option<Vec<String>>>,
}

fn observe(router: &Router) -> Observation {
    Observation {
        agents: router.agents(),
        queue: router.queue_snapshot(None),
        states: CONVERSATIONS
            .iter()
            .map(|c| router.conversation_state(c))
            .collect(),
        chats: AGENTS.iter().map(|a| router.agent_chats(a)).collect(),
    }
}

fn serves(agent: &AgentView, department: &str) -> bool {
    department.is_empty() || agent.departments.iter().any(|d| d == department)
}

fn can_take_new_chat(agent: &AgentView) -> bool {
    agent.presence == Presence::Online
        && agent.disconnected_since.is_none()
        && agent.load < agent.capacity
}

fn apply(router: &mut Router, model: &mut Model, op: &Op) -> Result<Vec<Effect>, String> {
    let now = model.now;
    let result = match op {
        Op::UpsertAgent {
            agent,
            departments,
            capacity,
        } => Ok(router.upsert_agent(
            AgentSpec {
                id: AGENTS[*agent].to_owned(),
                departments: departments
                    .iter()
                    .map(|d| DEPARTMENTS[*d].to_owned())
                    .collect(),
                capacity: *capacity,
            },
            now,
        )),
        Op::SetPresence { agent, presence } => router.set_presence(AGENTS[*agent], *presence, now),
        Op::Disconnect { agent } => router.agent_disconnected(AGENTS[*agent], now),
        Op::Reconnect { agent } => router.agent_reconnected(AGENTS[*agent], now),
        Op::StartBot { conversation } => {
            let effects = router.start_bot_conversation(CONVERSATIONS[*conversation]);
            model.known.insert(CONVERSATIONS[*conversation].to_owned());
            Ok(effects)
        }
        Op::Enqueue {
            conversation,
            department,
            priority,
        } => {
            let id = CONVERSATIONS[*conversation];
            let result = router.enqueue(id, DEPARTMENTS[*department], *priority, now);
            if result.is_ok() {
                model.known.insert(id.to_owned());
                model.priority.insert(id.to_owned(), *priority);
                model
                    .department
                    .insert(id.to_owned(), DEPARTMENTS[*department].to_owned());
                model.fresh_place(id, false);
            }
            result
        }
        Op::Close { conversation } => router.close(CONVERSATIONS[*conversation], now),
        Op::TransferToAgent {
            conversation,
            agent,
        } => router.transfer_to_agent(CONVERSATIONS[*conversation], AGENTS[*agent], now),
        Op::TransferToDepartment {
            conversation,
            department,
        } => router.transfer_to_department(
            CONVERSATIONS[*conversation],
            DEPARTMENTS[*department],
            now,
        ),
        Op::Take {
            agent,
            conversation,
        } => router.take(AGENTS[*agent], CONVERSATIONS[*conversation], now),
        Op::Accept {
            agent,
            conversation,
        } => {
            let id = CONVERSATIONS[*conversation];
            let accepting = match router.conversation_state(id) {
                Some(ConversationState::Offered { agent, .. }) => agent,
                _ => AGENTS[*agent].to_owned(),
            };
            router.accept(&accepting, id, now)
        }
        Op::RaisePriority {
            conversation,
            priority,
        } => {
            let id = CONVERSATIONS[*conversation];
            let result = router.raise_priority(id, *priority, now);
            if result.is_ok()
                && let Some(current) = model.priority.get_mut(id)
            {
                *current = (*current).max(*priority);
            }
            result
        }
        Op::Responded { conversation } => router.agent_responded(CONVERSATIONS[*conversation], now),
        Op::Advance { ms } => {
            model.now += ms;
            Ok(router.tick(model.now))
        }
        Op::RecordHandled { ms } => {
            router.record_handled(*ms);
            Ok(Vec::new())
        }
    };
    result.map_err(|error| error.to_string())
}

/// Conversations that the operation itself handed to a named agent (exempt from the
/// queue-order check, which is about automatic assignment).
fn manual_target(op: &Op) -> Option<&'static str> {
    match op {
        Op::Take { conversation, .. } | Op::TransferToAgent { conversation, .. } => {
            Some(CONVERSATIONS[*conversation])
        }
        _ => None,
    }
}

fn check_invariants(
    router: &Router,
    model: &Model,
    op: &Op,
    before: &Observation,
    after: &Observation,
) {
    let agents_after: BTreeMap<&str, &AgentView> =
        after.agents.iter().map(|a| (a.id.as_str(), a)).collect();
    let load_before: HashMap<&str, u32> = before
        .agents
        .iter()
        .map(|a| (a.id.as_str(), a.load))
        .collect();

    // Holders and queue entries: each conversation in at most one place.
    let mut holder: HashMap<String, String> = HashMap::new();
    let mut new_chats: Vec<(String, String)> = Vec::new();
    for (index, agent) in AGENTS.iter().enumerate() {
        let chats_after = after.chats[index].clone().unwrap_or_default();
        let chats_before: BTreeSet<String> = before.chats[index]
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for conversation in chats_after {
            assert!(
                holder
                    .insert(conversation.clone(), (*agent).to_owned())
                    .is_none(),
                "{conversation} held by two agents"
            );
            if !chats_before.contains(&conversation) {
                new_chats.push((conversation, (*agent).to_owned()));
            }
        }
    }
    let mut queued: HashMap<String, QueuedChat> = HashMap::new();
    for chat in &after.queue {
        assert!(
            !holder.contains_key(&chat.conversation),
            "{} both queued and held",
            chat.conversation
        );
        assert!(
            queued
                .insert(chat.conversation.clone(), chat.clone())
                .is_none(),
            "{} queued twice",
            chat.conversation
        );
    }

    // Exactly one state per known conversation, matching where it is found.
    for conversation in CONVERSATIONS {
        let state = router.conversation_state(conversation);
        if !model.known.contains(conversation) {
            assert_eq!(state, None, "{conversation} unknown to the model");
            assert!(!holder.contains_key(conversation) && !queued.contains_key(conversation));
            continue;
        }
        match state {
            None => panic!("{conversation} was dropped"),
            Some(ConversationState::Bot) | Some(ConversationState::Closed) => {
                assert!(
                    !holder.contains_key(conversation) && !queued.contains_key(conversation),
                    "{conversation} is bot/closed but found in a queue or with an agent"
                );
            }
            Some(ConversationState::Queued { department }) => {
                let chat = queued
                    .get(conversation)
                    .unwrap_or_else(|| panic!("{conversation} queued but not in any queue"));
                assert_eq!(chat.department, department);
                assert_eq!(model.department.get(conversation), Some(&department));
            }
            Some(ConversationState::Offered { agent, .. })
            | Some(ConversationState::Assigned { agent }) => {
                assert_eq!(
                    holder.get(conversation),
                    Some(&agent),
                    "{conversation} state says {agent}"
                );
            }
        }
    }

    // Capacity, and no new chat for anyone unavailable.
    for agent in &after.agents {
        let before = load_before.get(agent.id.as_str()).copied().unwrap_or(0);
        assert!(
            agent.load <= agent.capacity.max(before),
            "{} grew to {} over capacity {}",
            agent.id,
            agent.load,
            agent.capacity
        );
    }
    for (conversation, agent) in &new_chats {
        let view = agents_after[agent.as_str()];
        assert!(
            view.presence == Presence::Online && view.disconnected_since.is_none(),
            "{conversation} given to unavailable {view:?}"
        );
        assert!(
            view.load <= view.capacity,
            "{conversation} given to full {view:?}"
        );
    }

    // No queued chat is left waiting while an eligible agent is free.
    for chat in &after.queue {
        for agent in &after.agents {
            assert!(
                !(can_take_new_chat(agent)
                    && serves(agent, &chat.department)
                    && !model.skipped(&chat.conversation, &agent.id)),
                "{} waits in {:?} while {agent:?} is free",
                chat.conversation,
                chat.department
            );
        }
    }

    // Queue order is exactly the rule: priority, front, waiting since, arrival.
    for department in DEPARTMENTS {
        let snapshot: Vec<&QueuedChat> = after
            .queue
            .iter()
            .filter(|chat| chat.department == department)
            .collect();
        for (index, chat) in snapshot.iter().enumerate() {
            let place = model.place.get(&chat.conversation).copied();
            assert_eq!(chat.position as usize, index + 1);
            assert_eq!(
                Some(chat.priority),
                model.priority.get(&chat.conversation).copied(),
                "{} priority",
                chat.conversation
            );
            assert_eq!(
                place.map(|p| (p.front, p.waiting_since)),
                Some((chat.requeued_to_front, chat.waiting_since)),
                "{} place",
                chat.conversation
            );
        }
        for pair in snapshot.windows(2) {
            assert!(
                model.order_key(&pair[0].conversation) < model.order_key(&pair[1].conversation),
                "queue {department:?} out of order: {pair:?}"
            );
        }
    }

    // First come, first served: a chat given out automatically never overtakes a chat
    // of its department that should go first and is still waiting, unless that agent
    // is skipped for the waiting chat (lapsed offer).
    let manual = manual_target(op);
    for (conversation, agent) in &new_chats {
        if Some(conversation.as_str()) == manual {
            continue;
        }
        let department = model
            .department
            .get(conversation)
            .cloned()
            .unwrap_or_default();
        let given_key = model.order_key(conversation);
        for chat in after.queue.iter().filter(|c| c.department == department) {
            assert!(
                model.order_key(&chat.conversation) > given_key
                    || model.skipped(&chat.conversation, agent),
                "{conversation} went to {agent} ahead of waiting {}",
                chat.conversation
            );
        }
    }
}

fn run(config: RouterConfig, ops: &[Op]) {
    let mut model = Model {
        accept_timeout_ms: config.accept_timeout_ms,
        ..Model::default()
    };
    let mut router = Router::new(config);
    for op in ops {
        let before = observe(&router);
        let result = apply(&mut router, &mut model, op);
        let after = observe(&router);
        match result {
            Ok(effects) => model.absorb_effects(&effects),
            Err(error) => assert_eq!(before, after, "refused {op:?} ({error}) changed state"),
        }
        check_invariants(&router, &model, op, &before, &after);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn routing_invariants_hold_after_every_step(
        config in config_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..60),
    ) {
        run(config, &ops);
    }
}
