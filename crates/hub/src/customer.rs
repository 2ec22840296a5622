//! Who a visitor is to the site (issue 19): the customer's attributes, and conditions on
//! them.
//!
//! A visitor's attributes come from two places, merged here so that every user of them
//! (key-account priority, proactive triggers, bot answers, the console) sees the same
//! values:
//! - the site's **contact** with the visitor's verified `external_id` (the REST API v1
//!   and the CRM behind it: `/api/v1/contacts`);
//! - the **signed attributes** of the visitor's identity token (identity v2), which win
//!   over the contact's on the same key, as the page signed them most recently.
//!
//! An anonymous visitor has no attributes. [`Condition`] is one test on one attribute
//! (`lifetime_value > 5000`, `plan in [enterprise]`), decoded into a closed enum from the
//! site settings' JSON and evaluated without I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::AppState;

/// The customer's attributes: the contact's, then the signed identity's on top. Empty for
/// an anonymous visitor, an unknown one, or when the store cannot answer (attributes
/// only ever add service; they never refuse it).
pub async fn attributes(state: &AppState, visitor_id: &str) -> Map<String, Value> {
    let visitor = match state.store.visitor(visitor_id).await {
        Ok(Some(visitor)) => visitor,
        Ok(None) => return Map::new(),
        Err(err) => {
            tracing::warn!(visitor = visitor_id, error = %err, "attributes not read");
            return Map::new();
        }
    };
    let mut merged = Map::new();
    if let Some(external_id) = &visitor.external_id {
        match state
            .store
            .contact_by_external_id(&visitor.site_id, external_id)
            .await
        {
            Ok(Some(contact)) => merged.extend(contact.attributes),
            Ok(None) => {}
            Err(err) => tracing::warn!(visitor = visitor_id, error = %err, "contact not read"),
        }
    }
    if let Some(Value::Object(signed)) = visitor.attributes {
        merged.extend(signed);
    }
    merged
}

/// How a [`Condition`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (numbers by value, text exactly, booleans).
    Eq,
    /// Not equal; also true when the attribute is missing.
    Ne,
    /// Greater than (numbers, or text that is a number).
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// One of a list (`value` is an array).
    In,
    /// Present, whatever its value (`value` is ignored).
    Exists,
}

/// One test on one attribute, as site settings write it:
/// `{"attribute": "lifetime_value", "op": "gt", "value": 5000}` or
/// `{"attribute": "plan", "op": "in", "value": ["enterprise", "business"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub attribute: String,
    pub op: Op,
    #[serde(default)]
    pub value: Value,
}

impl Condition {
    /// Checks the condition's shape (for settings validation): a key of 1–64
    /// characters, a number for the ordering operators, an array of at most 100 scalars
    /// for `in`, a scalar for `eq`/`ne`.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.attribute.is_empty() || self.attribute.chars().count() > 64 {
            return Err("condition: attribute must be 1 to 64 characters");
        }
        match self.op {
            Op::Gt | Op::Ge | Op::Lt | Op::Le if number(&self.value).is_none() => {
                Err("condition: gt, ge, lt and le compare with a number")
            }
            Op::In => match &self.value {
                Value::Array(items) if items.len() <= 100 && items.iter().all(scalar) => Ok(()),
                _ => Err("condition: in takes a list of at most 100 texts or numbers"),
            },
            Op::Eq | Op::Ne if !scalar(&self.value) => {
                Err("condition: eq and ne compare with a text, number or boolean")
            }
            _ => Ok(()),
        }
    }

    /// Whether `attributes` satisfy the condition. A missing attribute satisfies only
    /// `ne`; text and numbers compare by value (`"5000"` equals `5000`).
    pub fn holds(&self, attributes: &Map<String, Value>) -> bool {
        let Some(actual) = attributes.get(&self.attribute) else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Exists => true,
            Op::Eq => same(actual, &self.value),
            Op::Ne => !same(actual, &self.value),
            Op::In => {
                matches!(&self.value, Value::Array(items) if items.iter().any(|item| same(actual, item)))
            }
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let (Some(actual), Some(wanted)) = (number(actual), number(&self.value)) else {
                    return false;
                };
                match self.op {
                    Op::Gt => actual > wanted,
                    Op::Ge => actual >= wanted,
                    Op::Lt => actual < wanted,
                    _ => actual <= wanted,
                }
            }
        }
    }
}

/// Whether every condition holds (an empty list always does).
pub fn all_hold(conditions: &[Condition], attributes: &Map<String, Value>) -> bool {
    conditions
        .iter()
        .all(|condition| condition.holds(attributes))
}

fn scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => x.trim() == y.trim(),
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(value: Value) -> Condition {
        serde_json::from_value(value).unwrap()
    }

    fn attrs(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn ordering_compares_numbers_and_numeric_text() {
        let rich = condition(json!({"attribute": "lifetime_value", "op": "gt", "value": 5000}));
        assert!(rich.holds(&attrs(json!({"lifetime_value": 7200}))));
        assert!(rich.holds(&attrs(json!({"lifetime_value": "5000.5"}))));
        assert!(!rich.holds(&attrs(json!({"lifetime_value": 5000}))));
        assert!(!rich.holds(&attrs(json!({"lifetime_value": "lots"}))));
        assert!(!rich.holds(&attrs(json!({}))));
    }

    #[test]
    fn in_and_eq_match_text_and_numbers_by_value() {
        let plan = condition(
            json!({"attribute": "plan", "op": "in", "value": ["enterprise", "business"]}),
        );
        assert!(plan.holds(&attrs(json!({"plan": "enterprise"}))));
        assert!(!plan.holds(&attrs(json!({"plan": "free"}))));
        let seats = condition(json!({"attribute": "seats", "op": "eq", "value": "3"}));
        assert!(seats.holds(&attrs(json!({"seats": 3}))));
        let not_free = condition(json!({"attribute": "plan", "op": "ne", "value": "free"}));
        assert!(not_free.holds(&attrs(json!({}))));
        assert!(!not_free.holds(&attrs(json!({"plan": "free"}))));
    }

    #[test]
    fn bad_shapes_are_refused_when_decoded_or_validated() {
        assert!(
            serde_json::from_value::<Condition>(json!({"attribute": "a", "op": "like"})).is_err()
        );
        assert!(
            serde_json::from_value::<Condition>(json!({"attribute": "a", "op": "eq", "x": 1}))
                .is_err()
        );
        assert!(
            condition(json!({"attribute": "a", "op": "gt", "value": "many"}))
                .validate()
                .is_err()
        );
        assert!(
            condition(json!({"attribute": "a", "op": "in", "value": "x"}))
                .validate()
                .is_err()
        );
        assert!(
            condition(json!({"attribute": "", "op": "exists"}))
                .validate()
                .is_err()
        );
        assert!(
            condition(json!({"attribute": "a", "op": "in", "value": [1, "b"]}))
                .validate()
                .is_ok()
        );
    }
}
