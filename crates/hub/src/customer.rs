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

// The conditions live in a module of their own, with no dependency on the hub's state,
// so that site settings can hold them without an import cycle.
pub use crate::conditions::{Condition, Op, all_hold};

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
