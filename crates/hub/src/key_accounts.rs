//! Key accounts first (issue 19): per-site priority rules on the customer's attributes,
//! next to the fixed VIP list.
//!
//! A site's settings hold `key_accounts`, a list of [`KeyAccountRule`]s evaluated in
//! order against [`customer::attributes`] (the contact's attributes and the signed
//! identity's); the first rule whose conditions all hold applies. An anonymous visitor
//! has no attributes and matches no rule (a rule needs at least one condition).
//!
//! What a match does, at the hand-off to people ([`crate::conversation::hand_off`],
//! whether the bot hands off or the chat skips it):
//! - the queue priority is raised by the rule's `priority` (on top of what the hand-off
//!   had: a VIP's `routing.vip_priority`, a bot rule's priority), so a key account waits
//!   ahead of everyone else who came earlier;
//! - `department`, when set, is where the chat waits (routing's usual fallback to the
//!   general queue applies when nobody of the site serves it);
//! - `owner` (an agent id or e-mail) is the routing's preferred agent: they get the chat
//!   first whenever they are online with a free seat for it
//!   ([`salam_routing::Router::enqueue_preferring`]), else normal routing;
//! - the conversation records the rule's name (`conversations.key_account`), and the
//!   reports give first-response times of key accounts apart from the rest;
//! - `skip_bot`: a new conversation goes straight to people, like a VIP's (hand-off
//!   reason `key_account`).
//!
//! Rules are read when a conversation is created (for `skip_bot`) and at its hand-off,
//! so a contact's attributes changed through the REST API count from the next chat on.
//! Attributes only ever add service: when they cannot be read, no rule matches.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::customer::{self, Condition};
use crate::error::ApiError;
use crate::site::SiteSettings;
use crate::state::AppState;

/// At most this many rules per site.
pub const MAX_RULES: usize = 50;
/// At most this many conditions per rule.
pub const MAX_CONDITIONS: usize = 20;
/// A rule raises the queue priority by 1 to this much.
pub const MAX_PRIORITY: i32 = 1000;

/// One key-account rule of a site:
/// `{"name": "Enterprise", "conditions": [{"attribute": "plan", "op": "in", "value":
/// ["enterprise"]}], "priority": 50, "skip_bot": true, "department": "accounts",
/// "owner": "sara@shop.example"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAccountRule {
    /// Shown in the console and recorded with the conversation (1–100 characters).
    pub name: String,
    /// All must hold; at least one.
    pub conditions: Vec<Condition>,
    /// How much the queue priority is raised (1 to [`MAX_PRIORITY`]).
    pub priority: i32,
    /// A new conversation goes straight to people.
    #[serde(default)]
    pub skip_bot: bool,
    /// The department the chat waits in (one of the site's departments).
    #[serde(default)]
    pub department: Option<String>,
    /// The account owner (an agent's id or e-mail), offered the chat first.
    #[serde(default)]
    pub owner: Option<String>,
}

// `Condition` holds JSON values, which are `Eq`; the site settings compare whole.
impl Eq for KeyAccountRule {}

impl KeyAccountRule {
    fn validate(&mut self) -> Result<(), &'static str> {
        self.name = crate::text::clean_text(self.name.trim());
        if self.name.is_empty() || self.name.chars().count() > 100 {
            return Err("key_accounts: a rule's name has 1 to 100 characters");
        }
        if self.conditions.is_empty() || self.conditions.len() > MAX_CONDITIONS {
            return Err("key_accounts: a rule has 1 to 20 conditions");
        }
        for condition in &self.conditions {
            condition.validate()?;
        }
        if !(1..=MAX_PRIORITY).contains(&self.priority) {
            return Err("key_accounts: priority is 1 to 1000");
        }
        for (field, limit, message) in [
            (
                &mut self.department,
                64,
                "key_accounts: department has 1 to 64 characters",
            ),
            (
                &mut self.owner,
                254,
                "key_accounts: owner is an agent's id or e-mail (at most 254 characters)",
            ),
        ] {
            if let Some(value) = field {
                let trimmed = value.trim().to_owned();
                if trimmed.is_empty() || trimmed.chars().count() > limit {
                    return Err(message);
                }
                *value = trimmed;
            }
        }
        Ok(())
    }
}

/// Checks a site's rules before they are stored (part of [`SiteSettings::validate`]).
pub fn validate(rules: &mut [KeyAccountRule]) -> Result<(), &'static str> {
    if rules.len() > MAX_RULES {
        return Err("key_accounts: at most 50 rules");
    }
    rules.iter_mut().try_for_each(KeyAccountRule::validate)
}

/// The first rule whose conditions all hold for `attributes`.
pub fn first_match<'a>(
    rules: &'a [KeyAccountRule],
    attributes: &Map<String, Value>,
) -> Option<&'a KeyAccountRule> {
    rules.iter().find(|rule| {
        !rule.conditions.is_empty() && customer::all_hold(&rule.conditions, attributes)
    })
}

/// The rule that applies to a visitor now, if any (no store read without rules).
pub async fn of_visitor(
    state: &AppState,
    settings: &SiteSettings,
    visitor_id: &str,
) -> Option<KeyAccountRule> {
    if settings.key_accounts.is_empty() {
        return None;
    }
    let attributes = customer::attributes(state, visitor_id).await;
    first_match(&settings.key_accounts, &attributes).cloned()
}

/// The owner's agent id, if they name an active agent (by id, or by e-mail when the
/// text has an `@`).
pub async fn owner_agent(state: &AppState, owner: &str) -> Option<String> {
    let found = if owner.contains('@') {
        state
            .store
            .agent_by_email(owner)
            .await
            .map(|found| found.map(|(agent, _)| agent))
    } else {
        state.store.agent_by_id(owner).await
    };
    match found {
        Ok(Some(agent)) if !agent.disabled => Some(agent.id),
        Ok(_) => {
            tracing::info!(owner, "key account owner is not an active agent");
            None
        }
        Err(err) => {
            tracing::warn!(owner, error = %err, "key account owner not read");
            None
        }
    }
}

/// Where a hand-off goes once the key-account rule (if any) is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub department: String,
    pub priority: i32,
    /// The owner's agent id, to try first.
    pub owner: Option<String>,
}

/// Applies `rule` to a hand-off to `department` at `priority`: the priority raised by
/// the rule's, its department if it names one, its owner resolved to an agent id.
pub async fn route(
    state: &AppState,
    rule: Option<&KeyAccountRule>,
    department: &str,
    priority: i32,
) -> Routed {
    let Some(rule) = rule else {
        return Routed {
            department: department.to_owned(),
            priority,
            owner: None,
        };
    };
    let owner = match &rule.owner {
        Some(owner) => owner_agent(state, owner).await,
        None => None,
    };
    Routed {
        department: rule
            .department
            .clone()
            .unwrap_or_else(|| department.to_owned()),
        priority: priority.saturating_add(rule.priority),
        owner,
    }
}

/// Checks what the settings name against the store (`PUT /api/sites/{id}/settings`):
/// each rule's department must be one of the site's departments and its owner an
/// active agent who works on the site.
pub async fn check_references(
    state: &AppState,
    site_id: &str,
    settings: &SiteSettings,
) -> Result<(), ApiError> {
    if settings.key_accounts.is_empty() {
        return Ok(());
    }
    let departments = state.store.departments(&[site_id.to_owned()]).await?;
    for rule in &settings.key_accounts {
        if let Some(department) = &rule.department
            && !departments
                .iter()
                .any(|known| known.name == *department)
        {
            return Err(ApiError::bad(
                "key_accounts: department is not one of the site's departments",
            ));
        }
        if let Some(owner) = &rule.owner {
            let agent = if owner.contains('@') {
                state.store.agent_by_email(owner).await?.map(|(agent, _)| agent)
            } else {
                state.store.agent_by_id(owner).await?
            };
            let works_here = agent.is_some_and(|agent| {
                !agent.disabled
                    && (agent.every_site() || agent.site_ids.iter().any(|id| id == site_id))
            });
            if !works_here {
                return Err(ApiError::bad(
                    "key_accounts: owner must be an active agent of the site (id or e-mail)",
                ));
            }
        }
    }
    Ok(())
}

/// The report's `key_accounts` part: first-response times (median, p90, count, within
/// the target) of key accounts' conversations apart from the rest's.
pub async fn report(
    state: &AppState,
    site_ids: &[String],
    from: i64,
    to: i64,
    timings: &[salam_store::Timing],
    target_ms: i64,
) -> Result<Value, ApiError> {
    let marked: std::collections::HashSet<String> = state
        .store
        .key_account_conversations(site_ids, from, to)
        .await?
        .into_iter()
        .collect();
    Ok(split_first_response(timings, &marked, target_ms))
}

/// [`report`] without the store: `marked` are the key accounts' conversation ids.
pub fn split_first_response(
    timings: &[salam_store::Timing],
    marked: &std::collections::HashSet<String>,
    target_ms: i64,
) -> Value {
    let (mut key, mut rest) = (Vec::new(), Vec::new());
    for timing in timings {
        let (Some(answered), Some(handed_off)) = (timing.first_response_at, timing.handed_off_at)
        else {
            continue;
        };
        let waited = answered.saturating_sub(handed_off);
        if marked.contains(&timing.conversation) {
            key.push(waited);
        } else {
            rest.push(waited);
        }
    }
    let figures = |mut times: Vec<i64>| {
        times.sort_unstable();
        serde_json::json!({
            "median": crate::api::percentile(&times, 0.5),
            "p90": crate::api::percentile(&times, 0.9),
            "count": times.len(),
            "within_target": times.iter().filter(|ms| **ms <= target_ms).count(),
        })
    };
    serde_json::json!({
        "first_response_ms": figures(key),
        "others_first_response_ms": figures(rest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> Vec<KeyAccountRule> {
        serde_json::from_value(value).unwrap()
    }

    fn attrs(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_first_matching_rule_applies() {
        let rules = rules(json!([
            {"name": "Big spender", "priority": 40, "conditions": [
                {"attribute": "lifetime_value", "op": "gt", "value": 5000}]},
            {"name": "Enterprise", "priority": 20, "skip_bot": true, "conditions": [
                {"attribute": "plan", "op": "in", "value": ["enterprise"]}]},
        ]));
        let both = attrs(json!({"plan": "enterprise", "lifetime_value": 9000}));
        assert_eq!(first_match(&rules, &both).unwrap().name, "Big spender");
        let plan = attrs(json!({"plan": "enterprise", "lifetime_value": 10}));
        assert_eq!(first_match(&rules, &plan).unwrap().name, "Enterprise");
        assert!(first_match(&rules, &attrs(json!({"plan": "free"}))).is_none());
        assert!(first_match(&rules, &Map::new()).is_none(), "anonymous");
    }

    #[test]
    fn reports_split_first_responses_of_key_accounts_from_the_rest() {
        let timing = |id: &str, handed_off: Option<i64>, answered: Option<i64>| {
            salam_store::Timing {
                conversation: id.into(),
                created_at: 0,
                handed_off_at: handed_off,
                first_response_at: answered,
                closed_at: None,
                score: None,
            }
        };
        let timings = [
            timing("k1", Some(100), Some(1_100)),
            timing("k2", Some(100), Some(3_100)),
            timing("k3", Some(100), None),
            timing("o1", Some(0), Some(90_000)),
            timing("o2", None, None),
        ];
        let marked = ["k1", "k2", "k3"].map(String::from).into_iter().collect();
        let split = split_first_response(&timings, &marked, 60_000);
        assert_eq!(
            split,
            json!({
                "first_response_ms": {"median": 1000, "p90": 3000, "count": 2, "within_target": 2},
                "others_first_response_ms":
                    {"median": 90000, "p90": 90000, "count": 1, "within_target": 0},
            })
        );
    }

    #[test]
    fn rules_are_decoded_closed_and_validated() {
        let good = json!({"name": " Enterprise ", "priority": 5, "owner": " a@b.example ",
            "conditions": [{"attribute": "plan", "op": "eq", "value": "enterprise"}]});
        let mut parsed = rules(json!([good.clone()]));
        assert_eq!(validate(&mut parsed), Ok(()));
        assert_eq!(parsed[0].name, "Enterprise");
        assert_eq!(parsed[0].owner.as_deref(), Some("a@b.example"));
        let with = |key: &str, value: Value| {
            let mut rule = good.clone();
            rule[key] = value;
            rule
        };
        for bad in [
            with("priority", json!(0)),
            with("priority", json!(1001)),
            with("conditions", json!([])),
            with("name", json!("  ")),
            with("department", json!("")),
            with(
                "conditions",
                json!([{"attribute": "x", "op": "gt", "value": "lots"}]),
            ),
        ] {
            let mut parsed = rules(json!([bad]));
            assert!(validate(&mut parsed).is_err(), "{parsed:?}");
        }
        for undecodable in [
            with("colour", json!("red")),
            with("priority", json!("high")),
            with("conditions", json!([{"attribute": "x", "op": "like"}])),
        ] {
            assert!(serde_json::from_value::<Vec<KeyAccountRule>>(json!([undecodable])).is_err());
        }
        let mut many = rules(Value::Array(vec![good; MAX_RULES + 1]));
        assert!(validate(&mut many).is_err());
    }
}
