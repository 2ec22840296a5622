use salam_routing::{
    AgentSpec, ConversationState, Effect, Presence, RequeueReason, Router, RouterConfig,
    SitePolicy, Sites,
};

/// The site of the single-site tests.
pub const SITE: &str = "web";
/// The connection id that [`add_online`] opens for its agent.
pub const SOCKET: u64 = 1;
/// Direct assignment, no first-response tracking: the quietest policy.
pub const QUIET: SitePolicy = SitePolicy {
    accept_timeout_ms: None,
    first_response_target_ms: None,
};

pub fn config() -> RouterConfig {
    RouterConfig {
        default_capacity: 2,
        default_policy: QUIET,
        ..RouterConfig::default()
    }
}

/// [`config`] with accept mode on every site.
pub fn accept_mode(accept_timeout_ms: u64) -> RouterConfig {
    RouterConfig {
        default_policy: SitePolicy {
            accept_timeout_ms: Some(accept_timeout_ms),
            ..QUIET
        },
        ..config()
    }
}

/// [`config`] with a first-response target on every site.
pub fn sla(first_response_target_ms: u64) -> RouterConfig {
    RouterConfig {
        default_policy: SitePolicy {
            first_response_target_ms: Some(first_response_target_ms),
            ..QUIET
        },
        ..config()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// An agent of every site.
pub fn spec(id: &str, departments: &[&str], capacity: Option<u32>) -> AgentSpec {
    AgentSpec {
        id: id.to_owned(),
        sites: Sites::All,
        departments: strings(departments),
        capacity,
    }
}

/// An agent of the given sites only.
pub fn spec_on(id: &str, sites: &[&str], departments: &[&str], capacity: Option<u32>) -> AgentSpec {
    AgentSpec {
        sites: Sites::Only(strings(sites)),
        ..spec(id, departments, capacity)
    }
}

/// Registers an agent and opens their socket [`SOCKET`], which brings them Online;
/// returns the effects of connecting.
pub fn connect(router: &mut Router, spec: AgentSpec, now: u64) -> Vec<Effect> {
    let id = spec.id.clone();
    router.upsert_agent(spec, now);
    router
        .agent_connected(&id, SOCKET, now)
        .expect("agent was just registered")
}

/// [`connect`] for an agent of every site.
pub fn add_online(
    router: &mut Router,
    id: &str,
    departments: &[&str],
    capacity: Option<u32>,
    now: u64,
) -> Vec<Effect> {
    connect(router, spec(id, departments, capacity), now)
}

/// Registers an agent who is never connected, so that `departments` count as served
/// (an enqueue to a department nobody serves waits in the general queue instead).
pub fn register_offline(router: &mut Router, id: &str, departments: &[&str]) {
    router.upsert_agent(spec(id, departments, None), 0);
}

/// `(conversation, agent)` of every `Assigned` effect, in order.
pub fn assignments(effects: &[Effect]) -> Vec<(String, String)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Assigned {
                conversation,
                agent,
            } => Some((conversation.clone(), agent.clone())),
            _ => None,
        })
        .collect()
}

/// `(conversation, from_agent, reason)` of every `Requeued` effect, in order.
pub fn requeues(effects: &[Effect]) -> Vec<(String, Option<String>, RequeueReason)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Requeued {
                conversation,
                from_agent,
                reason,
                ..
            } => Some((conversation.clone(), from_agent.clone(), *reason)),
            _ => None,
        })
        .collect()
}

/// `(agent, presence)` of every `PresenceChanged` effect, in order.
pub fn presence_changes(effects: &[Effect]) -> Vec<(String, Presence)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::PresenceChanged { agent, presence } => Some((agent.clone(), *presence)),
            _ => None,
        })
        .collect()
}

/// `(conversation, agent)` pairs as owned strings, for comparisons.
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(conversation, agent)| ((*conversation).to_owned(), (*agent).to_owned()))
        .collect()
}

/// The waiting chats of one queue of [`SITE`], in order.
pub fn queue_order(router: &Router, department: &str) -> Vec<String> {
    site_queue_order(router, SITE, department)
}

/// The waiting chats of one queue, in order.
pub fn site_queue_order(router: &Router, site: &str, department: &str) -> Vec<String> {
    router
        .queue_snapshot(Some(site))
        .into_iter()
        .filter(|chat| chat.department == department)
        .map(|chat| chat.conversation)
        .collect()
}

pub fn state(router: &Router, conversation: &str) -> Option<ConversationState> {
    router.conversation_state(conversation)
}

pub fn assigned_to(agent: &str) -> Option<ConversationState> {
    Some(ConversationState::Assigned {
        agent: agent.to_owned(),
    })
}

pub fn queued_in(department: &str) -> Option<ConversationState> {
    Some(ConversationState::Queued {
        department: department.to_owned(),
    })
}
