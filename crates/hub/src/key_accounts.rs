//! Key accounts first (issue 19): per-site priority rules on the customer's attributes,
//! next to the fixed VIP list. This module holds the rules as the site settings store
//! them (decoded closed, validated) and the pure parts (which rule matches, the
//! report's split); [`crate::key_account_routing`] applies them to conversations.
//!
//! A site's settings hold `key_accounts`, a list of [`KeyAccountRule`]s evaluated in
//! order against the customer's attributes (the contact's and the signed identity's,
//! [`crate::customer::attributes`]); the first rule whose conditions all hold applies.
//! An anonymous visitor has no attributes and matches no rule (a rule needs at least
//! one condition).
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
//! Attributes only ever add service: when they cannot be read, no rule matches. The
//! raised priority and the department are stored with the conversation; the owner
//! preference lives in the router only, so a chat still waiting when the hub restarts
//! is routed as usual (at its raised priority) afterwards.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::conditions::{Condition, all_hold};

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

/// Checks a site's rules before they are stored (part of the site settings' `validate`).
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
    rules
        .iter()
        .find(|rule| !rule.conditions.is_empty() && all_hold(&rule.conditions, attributes))
}

/// The report's `key_accounts` part: first-response times (median, p90, count, within
/// the target) of the key accounts' conversations apart from the rest's. `all` are the
/// report's first-response times (every conversation, deleted ones included) and
/// `key` the key accounts' among them; the rest are `all` without `key`, value by value
/// (so deleted conversations, whose facts keep only figures, split as well).
pub fn split_first_response(all: &[i64], mut key: Vec<i64>, target_ms: i64) -> Value {
    key.sort_unstable();
    let mut sorted = all.to_vec();
    sorted.sort_unstable();
    // Take each key account's time out of the rest once (both sorted).
    let mut rest = Vec::with_capacity(sorted.len());
    let mut keys = key.iter().peekable();
    for time in sorted {
        while keys.next_if(|&&k| k < time).is_some() {}
        if keys.next_if(|&&k| k == time).is_none() {
            rest.push(time);
        }
    }
    let figures = |times: Vec<i64>| {
        serde_json::json!({
            "median": percentile(&times, 0.5),
            "p90": percentile(&times, 0.9),
            "count": times.len(),
            "within_target": times.iter().filter(|ms| **ms <= target_ms).count(),
        })
    };
    serde_json::json!({
        "first_response_ms": figures(key),
        "others_first_response_ms": figures(rest),
    })
}

/// Nearest rank, as the rest of the reports compute it.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
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
        // Everyone's times (1000 twice: one a key account's, one another's) and the
        // key accounts'.
        let all = [90_000, 1_000, 3_000, 1_000];
        let split = split_first_response(&all, vec![3_000, 1_000], 60_000);
        assert_eq!(
            split,
            json!({
                "first_response_ms": {"median": 1000, "p90": 3000, "count": 2, "within_target": 2},
                "others_first_response_ms":
                    {"median": 1000, "p90": 90000, "count": 2, "within_target": 1},
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
