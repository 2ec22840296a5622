//! A verified identity onto the site's contact (issue 19): when `identify` verifies a
//! token, the contact with its `sub` as `external_id` gets what the token signed, so the
//! customer's record (REST `/api/v1/contacts`, the console's customer card and search)
//! holds the signed attributes beside those a CRM set through the API.
//!
//! - No contact with that external id: one is created with the signed name, e-mail and
//!   attributes.
//! - A contact: the signed name and e-mail fill it only where it has none (what a CRM
//!   wrote is not overwritten by a page); the signed attributes are merged in (a key the
//!   token signs with another value replaces the contact's).
//! - Each attribute that changes is recorded in the contact's history with
//!   `changed_by = "identity"`; when nothing changes nothing is written (a page that
//!   identifies on every load leaves no trail of identical rows).
//!
//! Signed attributes the contact cannot hold are left off the contact (they still reach
//! the visitor row and [`crate::customer::attributes`]): keys that are not 1 to 64 of
//! `a-z`, `0-9`, `_`, texts over 1,000 characters, and new keys past the contact's 50.
//!
//! Only the signed values: a name or e-mail sent beside the token is the visitor's own
//! claim and stays on the visitor. A failure is logged and never refuses the identity.

use crate::clock::now_ms;
use crate::state::AppState;
use salam_store::{ContactUpdate, NewContact, StoreError};
use serde_json::{Map, Value};

/// Who the history names for changes from a verified identity.
pub const CHANGED_BY: &str = "identity";
/// Attributes a contact has at most (as the REST API allows).
const MAX_CONTACT_ATTRIBUTES: usize = 50;
/// Characters of a text attribute at most (as the REST API allows).
const MAX_TEXT_CHARS: usize = 1000;

/// What a verified token says of the customer (values already cleaned).
#[derive(Debug, Clone, Default)]
pub struct Signed {
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub attributes: Option<Value>,
}

fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The signed attributes a contact can hold.
fn storable(attributes: Option<Value>) -> Map<String, Value> {
    let Some(Value::Object(attributes)) = attributes else {
        return Map::new();
    };
    attributes
        .into_iter()
        .filter(|(key, value)| {
            valid_key(key)
                && match value {
                    Value::String(text) => text.chars().count() <= MAX_TEXT_CHARS,
                    Value::Number(_) | Value::Bool(_) => true,
                    _ => false,
                }
        })
        .take(MAX_CONTACT_ATTRIBUTES)
        .collect()
}

/// Records `signed` on the site's contact (see the module docs).
pub async fn record(state: &AppState, site_id: &str, signed: Signed) {
    if let Err(err) = apply(state, site_id, signed).await {
        tracing::warn!(site = site_id, error = %err, "the signed identity was not recorded on the contact");
    }
}

async fn apply(state: &AppState, site_id: &str, signed: Signed) -> Result<(), StoreError> {
    let attributes = storable(signed.attributes.clone());
    // Twice at most: a contact created by another tab between the read and the create
    // (a conflict on the external id) is then updated.
    for _ in 0..2 {
        let existing = state
            .store
            .contact_by_external_id(site_id, &signed.external_id)
            .await?;
        let Some(contact) = existing else {
            let created = state
                .store
                .create_contact(NewContact {
                    site_id: site_id.to_owned(),
                    external_id: Some(signed.external_id.clone()),
                    email: signed.email.clone(),
                    name: signed.name.clone(),
                    attributes: attributes.clone(),
                    changed_by: CHANGED_BY.to_owned(),
                    now: now_ms(),
                })
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(err) => return Err(err),
            }
        };
        let mut room = MAX_CONTACT_ATTRIBUTES.saturating_sub(contact.attributes.len());
        let mut changed = Map::new();
        for (key, value) in &attributes {
            match contact.attributes.get(key) {
                Some(old) if old == value => {}
                Some(_) => {
                    changed.insert(key.clone(), value.clone());
                }
                None if room > 0 => {
                    room -= 1;
                    changed.insert(key.clone(), value.clone());
                }
                None => {}
            }
        }
        let name = (contact.name.is_none() && signed.name.is_some()).then(|| signed.name.clone());
        let email =
            (contact.email.is_none() && signed.email.is_some()).then(|| signed.email.clone());
        if changed.is_empty() && name.is_none() && email.is_none() {
            return Ok(());
        }
        state
            .store
            .update_contact(
                site_id,
                &contact.id,
                ContactUpdate {
                    external_id: None,
                    email,
                    name,
                    attributes: changed,
                    changed_by: CHANGED_BY.to_owned(),
                    now: now_ms(),
                },
            )
            .await?;
        return Ok(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_a_contact_can_hold_is_stored() {
        let kept = storable(Some(json!({
            "plan": "pro",
            "seats": 3,
            "vip": true,
            "Bad Key": "x",
            "nested": {"a": 1},
            "essay": "a".repeat(MAX_TEXT_CHARS + 1),
        })));
        assert_eq!(
            Value::Object(kept),
            json!({"plan": "pro", "seats": 3, "vip": true})
        );
        assert!(storable(None).is_empty());
        assert!(storable(Some(json!("text"))).is_empty());
    }
}
