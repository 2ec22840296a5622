//! The customer for agents (issue 19): the card beside a conversation, and the search
//! of the customers (contacts) of the agent's sites. Both are the console's REST
//! routes: a signed-in agent ([`SignedIn`]), narrowed to the sites they work on now;
//! another site's conversation answers 404 like a missing one.
//!
//! - `GET /api/conversations/{id}/customer`: who the visitor of the conversation is:
//!   name and e-mail with where each comes from (`signed`: the site's identity token
//!   vouched for it; `contact`: the site's contact record; `visitor`: typed by the
//!   visitor, unverified), the external id, the contact's id, and the attributes
//!   ([`crate::customer::attributes`]: the contact's, the signed identity's on top),
//!   each with its source.
//! - `GET /api/customers?q=TEXT&site=ID&limit=N`: contacts whose name contains `TEXT`,
//!   or whose e-mail or external id is `TEXT`; `q=KEY=VALUE` finds those whose
//!   attribute `KEY`, written as text, is `VALUE` (`plan=pro`, `vip=true`). Every site
//!   of the agent, or the one given.

use crate::api::visible_conversation;
use crate::error::ApiError;
use crate::extract::SignedIn;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use salam_protocol::ErrorCode;
use salam_store::{Contact, ContactSearch};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Customers one search answers at most.
pub const MAX_RESULTS: u32 = 100;
/// Characters of a search text at most.
const MAX_QUERY_CHARS: usize = 200;

pub fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/api/conversations/{id}/customer", get(card))
        .route("/api/customers", get(search))
}

/// A field with where its value came from.
fn sourced(value: Option<&String>, source: &str) -> Value {
    match value {
        Some(value) => json!({ "value": value, "source": source }),
        None => Value::Null,
    }
}

/// `GET /api/conversations/{id}/customer`: the customer card.
pub async fn card(
    State(state): State<AppState>,
    Path(id): Path<String>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let conversation = visible_conversation(&state, &me, &id).await?;
    let visitor = state.store.visitor(&conversation.visitor_id).await?;
    let contact = match visitor.as_ref().and_then(|v| v.external_id.as_ref()) {
        Some(external_id) => {
            state
                .store
                .contact_by_external_id(&conversation.site_id, external_id)
                .await?
        }
        None => None,
    };
    let verified: BTreeSet<&str> = visitor
        .as_ref()
        .map(|v| v.verified.iter().map(String::as_str).collect())
        .unwrap_or_default();
    // Signed first, then the contact record, then what the visitor typed.
    let pick = |field: &str, of_visitor: Option<&String>, of_contact: Option<&String>| {
        if verified.contains(field) && of_visitor.is_some() {
            sourced(of_visitor, "signed")
        } else if of_contact.is_some() {
            sourced(of_contact, "contact")
        } else {
            sourced(of_visitor, "visitor")
        }
    };
    let name = pick(
        "name",
        visitor.as_ref().and_then(|v| v.name.as_ref()),
        contact.as_ref().and_then(|c| c.name.as_ref()),
    );
    let email = pick(
        "email",
        visitor.as_ref().and_then(|v| v.email.as_ref()),
        contact.as_ref().and_then(|c| c.email.as_ref()),
    );
    let signed_keys: BTreeSet<String> = match visitor.as_ref().and_then(|v| v.attributes.as_ref()) {
        Some(Value::Object(signed)) => signed.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let attributes: Vec<Value> = crate::customer::attributes(&state, &conversation.visitor_id)
        .await
        .into_iter()
        .map(|(key, value)| {
            let source = if signed_keys.contains(&key) {
                "signed"
            } else {
                "contact"
            };
            json!({ "key": key, "value": value, "source": source })
        })
        .collect();
    Ok(Json(json!({
        "conversation_id": conversation.id,
        "site_id": conversation.site_id,
        "visitor_id": conversation.visitor_id,
        "identified": visitor.as_ref().is_some_and(|v| v.external_id.is_some()),
        "external_id": visitor.as_ref().and_then(|v| v.external_id.clone()),
        "name": name,
        "email": email,
        "contact_id": contact.as_ref().map(|c| c.id.clone()),
        "attributes": attributes,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    site: Option<String>,
    limit: Option<u32>,
}

/// What a search text asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// Everyone (the first customers by id).
    All,
    /// `KEY=VALUE`: an attribute's value as text.
    Attribute(String, String),
    /// A name part, or an exact e-mail or external id.
    Text(String),
}

fn parse_query(q: Option<&str>) -> Wanted {
    let q: String = q
        .unwrap_or("")
        .trim()
        .chars()
        .take(MAX_QUERY_CHARS)
        .collect();
    if q.is_empty() {
        return Wanted::All;
    }
    if let Some((key, value)) = q.split_once('=') {
        let key = key.trim();
        let valid = (1..=64).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            return Wanted::Attribute(key.to_owned(), value.trim().to_owned());
        }
    }
    Wanted::Text(q)
}

fn customer_json(contact: Contact, site_name: &str) -> Value {
    json!({
        "id": contact.id,
        "site_id": contact.site_id,
        "site_name": site_name,
        "external_id": contact.external_id,
        "name": contact.name,
        "email": contact.email,
        "attributes": contact.attributes,
        "visitor_ids": contact.visitor_ids,
        "updated_at": contact.updated_at,
    })
}

/// `GET /api/customers?q=TEXT|KEY=VALUE&site=ID&limit=N`: customers of the agent's sites.
pub async fn search(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
    me: SignedIn,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadField,
            "limit must be 1 to 100",
        ));
    }
    let sites = me.narrow(&state, query.site.as_ref())?;
    let wanted = parse_query(query.q.as_deref());
    let searches: Vec<ContactSearch> = match &wanted {
        Wanted::All => vec![ContactSearch::default()],
        Wanted::Attribute(key, value) => vec![ContactSearch {
            attribute: Some((key.clone(), value.clone())),
            ..ContactSearch::default()
        }],
        Wanted::Text(text) => {
            let mut searches = vec![
                ContactSearch {
                    name: Some(text.clone()),
                    ..ContactSearch::default()
                },
                ContactSearch {
                    external_id: Some(text.clone()),
                    ..ContactSearch::default()
                },
            ];
            if text.contains('@') {
                searches.push(ContactSearch {
                    email: Some(text.clone()),
                    ..ContactSearch::default()
                });
            }
            searches
        }
    };
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    'sites: for site_id in sites {
        let site_name = match state.store.site_by_id(&site_id).await? {
            Some(site) => site.name,
            None => continue,
        };
        for search in &searches {
            let left = limit - found.len() as u32;
            let contacts = state
                .store
                .find_contacts(
                    &site_id,
                    ContactSearch {
                        limit: left,
                        ..search.clone()
                    },
                )
                .await?;
            for contact in contacts {
                if seen.insert(contact.id.clone()) {
                    found.push(customer_json(contact, &site_name));
                    if found.len() as u32 >= limit {
                        break 'sites;
                    }
                }
            }
        }
    }
    Ok(Json(json!({ "customers": found })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_text_is_an_attribute_test_or_text() {
        assert_eq!(parse_query(None), Wanted::All);
        assert_eq!(parse_query(Some("  ")), Wanted::All);
        assert_eq!(
            parse_query(Some("plan=pro")),
            Wanted::Attribute("plan".into(), "pro".into())
        );
        assert_eq!(
            parse_query(Some("order_status = shipped ")),
            Wanted::Attribute("order_status".into(), "shipped".into())
        );
        assert_eq!(
            parse_query(Some("Mona Haddad")),
            Wanted::Text("Mona Haddad".into())
        );
        // Not a key: text.
        assert_eq!(parse_query(Some("a b=c")), Wanted::Text("a b=c".into()));
        assert_eq!(parse_query(Some("=x")), Wanted::Text("=x".into()));
    }
}
