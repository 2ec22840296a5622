//! v1 contacts: a site's record of a customer, with custom attributes: create, read,
//! update (attributes merge; `null` removes a key), search, and the history of
//! attribute changes (who: the token; what: old and new value; when).
//!
//! A contact with an `external_id` is linked to the site's visitors who `identify`
//! with that id ([`salam_store::contacts`]): the contact lists their visitor ids and a
//! conversation of such a visitor names the contact.
//!
//! Attributes: keys of 1 to 64 of `a-z`, `0-9`, `_`; values a string (at most 1000
//! characters), a number or a boolean; at most 50 per contact.

use super::{ApiCaller, Body, ErrorBody, Read, Write, conflict, invalid};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salam_protocol::ErrorCode;
use salam_store::{AttributeChange, Contact, ContactSearch, ContactUpdate, NewContact, StoreError};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Attributes a contact has at most.
pub const MAX_ATTRIBUTES: usize = 50;
/// Characters of a string attribute at most.
pub const MAX_ATTRIBUTE_CHARS: usize = 1000;
pub const MAX_KEY_CHARS: usize = 64;
pub const ATTRIBUTE_KEY_PATTERN: &str = "^[a-z0-9_]{1,64}$";

/// An attribute's value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AttributeValue {
    Bool(bool),
    #[schema(value_type = f64)]
    Number(serde_json::Number),
    Text(String),
}

impl AttributeValue {
    fn into_json(self) -> Value {
        match self {
            AttributeValue::Bool(value) => Value::Bool(value),
            AttributeValue::Number(value) => Value::Number(value),
            AttributeValue::Text(value) => Value::String(value),
        }
    }
}

/// A contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactV1 {
    pub id: String,
    /// The site's user id (what `identify` verifies), unique within the site.
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = BTreeMap<String, AttributeValue>)]
    pub attributes: Map<String, Value>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    /// The site's visitors who identified with `external_id`.
    pub visitor_ids: Vec<String>,
}

impl From<Contact> for ContactV1 {
    fn from(contact: Contact) -> ContactV1 {
        ContactV1 {
            id: contact.id,
            external_id: contact.external_id,
            email: contact.email,
            name: contact.name,
            attributes: contact.attributes,
            created_at: contact.created_at,
            updated_at: contact.updated_at,
            visitor_ids: contact.visitor_ids,
        }
    }
}

/// A contact to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    /// 1 to 128 characters, unique within the site.
    #[schema(min_length = 1, max_length = 128)]
    pub external_id: Option<String>,
    /// An e-mail address (at most 254 characters).
    #[schema(min_length = 3, max_length = 254, pattern = "^[^@\\s]+@[^@\\s]+$")]
    pub email: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Keys of 1 to 64 of `a-z`, `0-9`, `_`; at most 50.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Changes to a contact: absent fields stay; `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 3, max_length = 254, pattern = "^[^@\\s]+@[^@\\s]+$")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    pub name: Option<Option<String>>,
    /// Merged into the contact's attributes: a value sets the key, `null` removes it.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, AttributeValue>)]
    pub attributes: BTreeMap<String, Option<AttributeValue>>,
}

/// A page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactList {
    pub contacts: Vec<ContactV1>,
    /// Pass as `cursor` for the next page; `null` when this page is the last.
    pub next_cursor: Option<String>,
}

/// One change of one attribute.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttributeChangeV1 {
    pub id: i64,
    pub key: String,
    /// `null`: the key was absent.
    #[schema(value_type = Option<AttributeValue>)]
    pub old_value: Option<Value>,
    /// `null`: the key was removed.
    #[schema(value_type = Option<AttributeValue>)]
    pub new_value: Option<Value>,
    /// `token:ID` (an API token), `agent:ID`, or `identity` (a verified identity token,
    /// issue 19).
    pub changed_by: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

impl From<AttributeChange> for AttributeChangeV1 {
    fn from(change: AttributeChange) -> AttributeChangeV1 {
        AttributeChangeV1 {
            id: change.id,
            key: change.key,
            old_value: change.old_value,
            new_value: change.new_value,
            changed_by: change.changed_by,
            at: change.at,
        }
    }
}

/// The history of a contact's attributes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeList {
    pub changes: Vec<AttributeChangeV1>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Equal, ignoring case.
    email: Option<String>,
    /// Contained in the name, ignoring case.
    name: Option<String>,
    external_id: Option<String>,
    /// `KEY:VALUE`: contacts whose attribute `KEY`, written as text (`pro`, `42`,
    /// `true`), is `VALUE` (for example `plan:pro`).
    #[param(pattern = "^[a-z0-9_]{1,64}:")]
    attribute: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Contacts per page (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_value(value: &AttributeValue) -> Result<(), ApiError> {
    match value {
        AttributeValue::Text(text) if text.chars().count() > MAX_ATTRIBUTE_CHARS => {
            Err(invalid("a string attribute has at most 1000 characters"))
        }
        _ => Ok(()),
    }
}

/// A name: cleaned ([`crate::text::clean_text`]); 1 to 200 visible characters.
fn clean_name(value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = crate::text::clean_text(&value);
    if value.is_empty() || value.chars().count() > 200 {
        return Err(invalid("name must have 1 to 200 characters, not all blank"));
    }
    Ok(Some(value))
}

/// An external id, kept as given: 1 to 128 characters.
fn check_external_id(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if value.is_empty() || value.chars().count() > 128 => {
            Err(invalid("external_id must have 1 to 128 characters"))
        }
        other => Ok(other),
    }
}

/// An e-mail address, kept as given: `local@domain` without whitespace, at most 254
/// characters (the document's pattern says the same).
fn check_email(value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(email) = value else {
        return Ok(None);
    };
    let email = email.trim_end().to_owned();
    let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !email.chars().any(char::is_whitespace);
    if !well_formed || email.chars().count() > 254 {
        return Err(invalid(
            "email must be an address (local@domain, at most 254 characters)",
        ));
    }
    Ok(Some(email))
}

fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(_) => conflict(
            ErrorCode::BadField,
            "another contact of this site has this external_id",
        ),
        StoreError::NotFound => ApiError::not_found(),
        other => ApiError::from(other),
    }
}

/// Creates a contact.
#[utoipa::path(
    post,
    path = "/api/v1/contacts",
    operation_id = "create_contact",
    tag = "contacts",
    request_body = CreateContact,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = ContactV1),
        (status = 409, description = "Another contact of the site has this external_id", body = ErrorBody),
        (status = 422, description = "A field or attribute is invalid", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller<Write>,
    Body(request): Body<CreateContact>,
) -> Result<Response, ApiError> {
    let external_id = check_external_id(request.external_id)?;
    let email = check_email(request.email)?;
    let name = clean_name(request.name)?;
    if request.attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid("a contact has at most 50 attributes"));
    }
    let mut attributes = Map::new();
    for (key, value) in request.attributes {
        if !valid_key(&key) {
            return Err(invalid("attribute keys are 1 to 64 of a-z, 0-9 and _"));
        }
        check_value(&value)?;
        attributes.insert(key, value.into_json());
    }
    let contact = state
        .store
        .create_contact(NewContact {
            site_id: caller.site_id().to_owned(),
            external_id,
            email,
            name,
            attributes,
            changed_by: caller.who(),
            now: now_ms(),
        })
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(ContactV1::from(contact))).into_response())
}

/// Reads a contact.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}",
    operation_id = "get_contact",
    tag = "contacts",
    params(("id" = String, Path, description = "The contact's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The contact", body = ContactV1),
        (status = 404, description = "No such contact in this site", body = ErrorBody),
    )
)]
pub async fn read(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let contact = state
        .store
        .contact(caller.site_id(), &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(ContactV1::from(contact)).into_response())
}

/// Updates a contact: absent fields stay, `null` clears one; attributes merge (`null`
/// removes a key). Each attribute change is recorded in its history.
#[utoipa::path(
    patch,
    path = "/api/v1/contacts/{id}",
    operation_id = "update_contact",
    tag = "contacts",
    params(("id" = String, Path, description = "The contact's id")),
    request_body = UpdateContact,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The contact as it is now", body = ContactV1),
        (status = 404, description = "No such contact in this site", body = ErrorBody),
        (status = 409, description = "Another contact of the site has this external_id, or the contact would have more than 50 attributes", body = ErrorBody),
        (status = 422, description = "A field or attribute is invalid", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: ApiCaller<Write>,
    Path(id): Path<String>,
    Body(request): Body<UpdateContact>,
) -> Result<Response, ApiError> {
    let current = state
        .store
        .contact(caller.site_id(), &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let external_id = request.external_id.map(check_external_id).transpose()?;
    let email = request.email.map(check_email).transpose()?;
    let name = request.name.map(clean_name).transpose()?;
    let mut attributes = Map::new();
    let mut keys: std::collections::BTreeSet<&String> = current.attributes.keys().collect();
    for (key, value) in &request.attributes {
        if !valid_key(key) {
            return Err(invalid("attribute keys are 1 to 64 of a-z, 0-9 and _"));
        }
        match value {
            Some(value) => {
                check_value(value)?;
                keys.insert(key);
            }
            None => {
                keys.remove(key);
            }
        }
    }
    if keys.len() > MAX_ATTRIBUTES {
        return Err(conflict(
            ErrorCode::BadField,
            "the contact would have more than 50 attributes",
        ));
    }
    for (key, value) in request.attributes {
        attributes.insert(
            key,
            value.map(AttributeValue::into_json).unwrap_or(Value::Null),
        );
    }
    let contact = state
        .store
        .update_contact(
            caller.site_id(),
            &id,
            ContactUpdate {
                external_id,
                email,
                name,
                attributes,
                changed_by: caller.who(),
                now: now_ms(),
            },
        )
        .await
        .map_err(store_error)?;
    Ok(Json(ContactV1::from(contact)).into_response())
}

fn bad_query(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadField, message)
}

/// Searches the site's contacts (every condition given must hold), by id.
#[utoipa::path(
    get,
    path = "/api/v1/contacts",
    operation_id = "search_contacts",
    tag = "contacts",
    params(SearchParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of contacts", body = ContactList),
        (status = 400, description = "A query parameter is malformed", body = ErrorBody),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit must be 1 to 500"));
    }
    let attribute = match params
        .attribute
        .as_deref()
        .map(|given| given.split_once(':'))
    {
        None => None,
        Some(Some((key, value))) if valid_key(key) => Some((key.to_owned(), value.to_owned())),
        Some(_) => {
            return Err(bad_query(
                "attribute is KEY:VALUE, KEY 1 to 64 of a-z, 0-9 and _",
            ));
        }
    };
    let found = state
        .store
        .find_contacts(
            caller.site_id(),
            ContactSearch {
                email: params.email,
                name: params.name.map(|name| name.chars().take(200).collect()),
                external_id: params.external_id,
                attribute,
                after: params.cursor,
                limit,
            },
        )
        .await?;
    let next_cursor = (found.len() as u32 >= limit)
        .then(|| found.last().map(|last| last.id.clone()))
        .flatten();
    Ok(Json(ContactList {
        contacts: found.into_iter().map(ContactV1::from).collect(),
        next_cursor,
    })
    .into_response())
}

/// The history of a contact's attributes, oldest first (at most 1000 changes).
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}/changes",
    operation_id = "list_contact_changes",
    tag = "contacts",
    params(("id" = String, Path, description = "The contact's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changes", body = ChangeList),
        (status = 404, description = "No such contact in this site", body = ErrorBody),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .store
        .contact(caller.site_id(), &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let changes = state
        .store
        .contact_changes(caller.site_id(), &id, 1000)
        .await?;
    Ok(Json(ChangeList {
        changes: changes.into_iter().map(AttributeChangeV1::from).collect(),
    })
    .into_response())
}
