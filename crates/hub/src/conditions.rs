//! Conditions on a customer's attributes (issue 19): `lifetime_value > 5000`,
//! `plan in [enterprise]`. Pure (no I/O, no other module of the hub), so that settings
//! that hold conditions (key-account rules in [`crate::site`]) can name them without
//! depending on the hub's state; [`crate::customer`] re-exports them beside the
//! attributes they test. Decoded into a closed enum from the site settings' JSON and
//! evaluated without I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
