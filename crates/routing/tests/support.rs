use salam_routing::{AgentSpec, Effect, Presence, Router, RouterConfig};

pub fn config() -> RouterConfig {
    RouterConfig {
        default_capacity: 2,
        first_response_target_ms: None,
        ..RouterConfig::default()
    }
}

pub fn spec(id: &str, departments: &[&str], capacity: Option<u32>) -> AgentSpec {
    AgentSpec {
        id: id.to_owned(),
        departments: departments.iter().map(|d| (*d).to_owned()).collect(),
        capacity,
    }
}

/// Registers an agent and sets them Online; returns the effects of going online.
pub fn add_online(
    router: &mut Router,
    id: &str,
    departments: &[&str],
    capacity: Option<u32>,
    now: u64,
) -> Vec<Effect> {
    router.upsert_agent(spec(id, departments, capacity), now);
    router
        .set_presence(id, Presence::Online, now)
        .expect("agent was just registered")
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

/// `(conversation, agent)` pairs as owned strings, for comparisons.
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(conversation, agent)| ((*conversation).to_owned(), (*agent).to_owned()))
        .collect()
}

pub fn queue_order(router: &Router, department: &str) -> Vec<String> {
    router
        .queue_snapshot(Some(department))
        .into_iter()
        .map(|chat| chat.conversation)
        .collect()
}
