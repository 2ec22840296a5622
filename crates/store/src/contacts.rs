//! Contacts of the REST API v1 (issue 17): a site's record of a customer (from a CRM,
//! say), with custom attributes, and a history of every attribute change (who, what,
//! when).
//!
//! **Link to visitors:** a contact with an `external_id` *is* every visitor of the same
//! site whose `identify` verified that external id (`visitors.external_id`); the link is
//! computed when read, so a visitor who identifies after the contact was created, or a
//! contact created after the visitor identified, are linked alike, with nothing to keep
//! in step.
//!
//! Validation of keys and values is the hub's; the store keeps what it is given.

use crate::StoreError;
use crate::sqlite::{SqliteStore, map_err, new_id};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

/// A contact.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Contact {
    pub id: String,
    pub site_id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub attributes: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The site's visitors who identified with `external_id`.
    pub visitor_ids: Vec<String>,
}

/// A contact to create.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub site_id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub attributes: Map<String, Value>,
    /// Who: `token:ID` or `agent:ID` (recorded with each attribute set).
    pub changed_by: String,
    pub now: i64,
}

/// Changes to a contact. `None`: unchanged; `Some(None)`: cleared. Attributes are
/// merged: a key with `null` is removed, any other value replaces the old one.
#[derive(Debug, Clone, Default)]
pub struct ContactUpdate {
    pub external_id: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub name: Option<Option<String>>,
    pub attributes: Map<String, Value>,
    pub changed_by: String,
    pub now: i64,
}

/// Which contacts to find (all given conditions must hold).
#[derive(Debug, Clone, Default)]
pub struct ContactSearch {
    /// Equal, ignoring case.
    pub email: Option<String>,
    /// Contained in the name, ignoring case.
    pub name: Option<String>,
    pub external_id: Option<String>,
    /// An attribute whose value, written as text (`"pro"`, `42`, `true`), is this.
    pub attribute: Option<(String, String)>,
    /// Contacts with ids after this one (the cursor of the previous page).
    pub after: Option<String>,
    pub limit: u32,
}

/// One change of one attribute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttributeChange {
    pub id: i64,
    pub key: String,
    /// `None`: the key was absent.
    pub old_value: Option<Value>,
    /// `None`: the key was removed.
    pub new_value: Option<Value>,
    pub changed_by: String,
    pub at: i64,
}

const CONTACT_COLUMNS: &str =
    "id, site_id, external_id, email, name, attributes, created_at, updated_at";

fn contact_from_row(row: &Row<'_>) -> rusqlite::Result<Contact> {
    let attributes: String = row.get(5)?;
    Ok(Contact {
        id: row.get(0)?,
        site_id: row.get(1)?,
        external_id: row.get(2)?,
        email: row.get(3)?,
        name: row.get(4)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        visitor_ids: Vec::new(),
    })
}

/// A row of `id, key, old_value, new_value, changed_by, at` from
/// `contact_attribute_changes`.
fn change_from_row(row: &Row<'_>) -> rusqlite::Result<AttributeChange> {
    let parse = |text: Option<String>| text.and_then(|text| serde_json::from_str(&text).ok());
    Ok(AttributeChange {
        id: row.get(0)?,
        key: row.get(1)?,
        old_value: parse(row.get(2)?),
        new_value: parse(row.get(3)?),
        changed_by: row.get(4)?,
        at: row.get(5)?,
    })
}

/// Fills in the visitors linked by external id.
fn with_visitors(connection: &Connection, mut contact: Contact) -> Result<Contact, StoreError> {
    if let Some(external_id) = &contact.external_id {
        let mut statement = connection
            .prepare_cached(
                "SELECT id FROM visitors WHERE site_id = ?1 AND external_id = ?2 \
                 ORDER BY first_seen LIMIT 100",
            )
            .map_err(map_err)?;
        contact.visitor_ids = statement
            .query_map(params![contact.site_id, external_id], |row| row.get(0))
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(map_err)?;
    }
    Ok(contact)
}

fn contact_by_id(
    connection: &Connection,
    site_id: &str,
    id: &str,
) -> Result<Option<Contact>, StoreError> {
    let found = connection
        .prepare_cached(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ?1 AND site_id = ?2"
        ))
        .map_err(map_err)?
        .query_row(params![id, site_id], contact_from_row)
        .optional()
        .map_err(map_err)?;
    found
        .map(|contact| with_visitors(connection, contact))
        .transpose()
}

fn record_change(
    connection: &Connection,
    contact_id: &str,
    key: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    changed_by: &str,
    at: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO contact_attribute_changes (contact_id, key, old_value, new_value, \
             changed_by, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(map_err)?
        .execute(params![
            contact_id,
            key,
            old.map(Value::to_string),
            new.map(Value::to_string),
            changed_by,
            at
        ])
        .map_err(map_err)?;
    Ok(())
}

/// The site's contact with a visitor's verified external id and its history, for the
/// visitor's export (issue 19).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContactRecord {
    #[serde(flatten)]
    pub contact: Contact,
    pub changes: Vec<AttributeChange>,
}

/// [`ContactRecord`] of `visitor_id`, if they identified and their site has the contact.
pub(crate) fn contact_of_visitor(
    connection: &Connection,
    visitor_id: &str,
) -> Result<Option<ContactRecord>, StoreError> {
    let found: Option<(String, Option<String>)> = connection
        .prepare_cached("SELECT site_id, external_id FROM visitors WHERE id = ?1")
        .map_err(map_err)?
        .query_row([visitor_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(map_err)?;
    let Some((site_id, Some(external_id))) = found else {
        return Ok(None);
    };
    let contact = connection
        .prepare_cached(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = ?1 AND external_id = ?2"
        ))
        .map_err(map_err)?
        .query_row(params![site_id, external_id], contact_from_row)
        .optional()
        .map_err(map_err)?;
    let Some(contact) = contact else {
        return Ok(None);
    };
    let contact = with_visitors(connection, contact)?;
    let changes = connection
        .prepare_cached(
            "SELECT id, key, old_value, new_value, changed_by, at \
             FROM contact_attribute_changes WHERE contact_id = ?1 ORDER BY id",
        )
        .map_err(map_err)?
        .query_map([&contact.id], change_from_row)
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)?;
    Ok(Some(ContactRecord { contact, changes }))
}

/// Deletes the contact of the visitor's site with the visitor's verified external id, and
/// its history, inside an erasure's transaction (issue 19: a verified identity creates
/// a contact, so erasing the person erases it too). How many contacts went (0 or 1).
pub(crate) fn erase_contact_of_visitor(
    connection: &Connection,
    visitor_id: &str,
) -> Result<u64, StoreError> {
    let found: Option<(String, Option<String>)> = connection
        .prepare_cached("SELECT site_id, external_id FROM visitors WHERE id = ?1")
        .map_err(map_err)?
        .query_row([visitor_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(map_err)?;
    let Some((site_id, Some(external_id))) = found else {
        return Ok(0);
    };
    connection
        .prepare_cached(
            "DELETE FROM contact_attribute_changes WHERE contact_id IN \
             (SELECT id FROM contacts WHERE site_id = ?1 AND external_id = ?2)",
        )
        .map_err(map_err)?
        .execute(params![site_id, external_id])
        .map_err(map_err)?;
    let deleted = connection
        .prepare_cached("DELETE FROM contacts WHERE site_id = ?1 AND external_id = ?2")
        .map_err(map_err)?
        .execute(params![site_id, external_id])
        .map_err(map_err)?;
    Ok(deleted as u64)
}

impl SqliteStore {
    pub(crate) async fn create_contact_impl(
        &self,
        contact: NewContact,
    ) -> Result<Contact, StoreError> {
        let id = new_id("ct");
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO contacts (id, site_id, external_id, email, name, attributes, \
                         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                        params![
                            id,
                            contact.site_id,
                            contact.external_id,
                            contact.email,
                            contact.name,
                            Value::Object(contact.attributes.clone()).to_string(),
                            contact.now
                        ],
                    )
                    .map_err(map_err)?;
                for (key, value) in &contact.attributes {
                    record_change(
                        connection,
                        &id,
                        key,
                        None,
                        Some(value),
                        &contact.changed_by,
                        contact.now,
                    )?;
                }
                contact_by_id(connection, &contact.site_id, &id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    pub(crate) async fn update_contact_impl(
        &self,
        site_id: &str,
        id: &str,
        update: ContactUpdate,
    ) -> Result<Contact, StoreError> {
        let (site_id, id) = (site_id.to_owned(), id.to_owned());
        self.writer
            .write(move |connection| {
                let mut contact =
                    contact_by_id(connection, &site_id, &id)?.ok_or(StoreError::NotFound)?;
                for (key, value) in &update.attributes {
                    let old = contact.attributes.get(key).cloned();
                    let new = (!value.is_null()).then(|| value.clone());
                    if old == new {
                        continue;
                    }
                    record_change(
                        connection,
                        &id,
                        key,
                        old.as_ref(),
                        new.as_ref(),
                        &update.changed_by,
                        update.now,
                    )?;
                    match new {
                        Some(new) => contact.attributes.insert(key.clone(), new),
                        None => contact.attributes.remove(key),
                    };
                }
                if let Some(external_id) = update.external_id {
                    contact.external_id = external_id;
                }
                if let Some(email) = update.email {
                    contact.email = email;
                }
                if let Some(name) = update.name {
                    contact.name = name;
                }
                connection
                    .execute(
                        "UPDATE contacts SET external_id = ?3, email = ?4, name = ?5, \
                         attributes = ?6, updated_at = ?7 WHERE id = ?1 AND site_id = ?2",
                        params![
                            id,
                            site_id,
                            contact.external_id,
                            contact.email,
                            contact.name,
                            Value::Object(contact.attributes).to_string(),
                            update.now
                        ],
                    )
                    .map_err(map_err)?;
                contact_by_id(connection, &site_id, &id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    pub(crate) async fn contact_impl(
        &self,
        site_id: &str,
        id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        let (site_id, id) = (site_id.to_owned(), id.to_owned());
        self.read(move |connection| contact_by_id(connection, &site_id, &id))
            .await
    }

    pub(crate) async fn find_contacts_impl(
        &self,
        site_id: &str,
        search: ContactSearch,
    ) -> Result<Vec<Contact>, StoreError> {
        let site_id = site_id.to_owned();
        self.read(move |connection| {
            // Each condition is written so that a NULL parameter turns it off.
            let sql = format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = ?1 \
                 AND (?2 IS NULL OR email = ?2 COLLATE NOCASE) \
                 AND (?3 IS NULL OR name LIKE ?3 ESCAPE '\\') \
                 AND (?4 IS NULL OR external_id = ?4) \
                 AND (?5 IS NULL OR \
                      (json_type(attributes, ?5) = 'text' AND json_extract(attributes, ?5) = ?6) \
                      OR (json_type(attributes, ?5) IN ('integer', 'real') \
                          AND json_extract(attributes, ?5) = ?7) \
                      OR json_type(attributes, ?5) = ?8) \
                 AND (?9 IS NULL OR id > ?9) \
                 ORDER BY id LIMIT ?10"
            );
            let pattern = search.name.as_ref().map(|name| {
                let escaped = name
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                format!("%{escaped}%")
            });
            // The hub lets only `[a-z0-9_]` keys through; quoted, a key of digits is a key too.
            let (path, text, number, boolean) = match &search.attribute {
                Some((key, value)) => (
                    Some(format!("$.\"{key}\"")),
                    Some(value.clone()),
                    value.parse::<f64>().ok().filter(|n| n.is_finite()),
                    matches!(value.as_str(), "true" | "false").then(|| value.clone()),
                ),
                None => (None, None, None, None),
            };
            let mut statement = connection.prepare_cached(&sql).map_err(map_err)?;
            let found = statement
                .query_map(
                    params![
                        site_id,
                        search.email,
                        pattern,
                        search.external_id,
                        path,
                        text,
                        number,
                        boolean,
                        search.after,
                        search.limit.max(1)
                    ],
                    contact_from_row,
                )
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            found
                .into_iter()
                .map(|contact| with_visitors(connection, contact))
                .collect()
        })
        .await
    }

    pub(crate) async fn contact_by_external_id_impl(
        &self,
        site_id: &str,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        let (site_id, external_id) = (site_id.to_owned(), external_id.to_owned());
        self.read(move |connection| {
            let found = connection
                .prepare_cached(&format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = ?1 AND external_id = ?2"
                ))
                .map_err(map_err)?
                .query_row(params![site_id, external_id], contact_from_row)
                .optional()
                .map_err(map_err)?;
            found
                .map(|contact| with_visitors(connection, contact))
                .transpose()
        })
        .await
    }

    pub(crate) async fn contact_changes_impl(
        &self,
        site_id: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<AttributeChange>, StoreError> {
        let (site_id, id) = (site_id.to_owned(), id.to_owned());
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT h.id, h.key, h.old_value, h.new_value, h.changed_by, h.at \
                     FROM contact_attribute_changes h JOIN contacts c ON c.id = h.contact_id \
                     WHERE h.contact_id = ?1 AND c.site_id = ?2 ORDER BY h.id LIMIT ?3",
                )
                .map_err(map_err)?;
            let rows = statement
                .query_map(params![id, site_id, limit.max(1)], change_from_row)
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdentityUpdate, SqliteOptions, Store, VisitorUpdate};
    use serde_json::json;

    fn attributes(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[tokio::test]
    async fn updates_merge_attributes_record_each_change_and_stay_in_their_site() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let site = store.create_site("Shop", &["*".into()]).await.unwrap();
        let other = store.create_site("Other", &["*".into()]).await.unwrap();
        let created = store
            .create_contact(NewContact {
                site_id: site.id.clone(),
                external_id: Some("u1".into()),
                email: Some("a@b.test".into()),
                name: None,
                attributes: attributes(json!({"plan": "pro", "seats": 3})),
                changed_by: "token:t1".into(),
                now: 10,
            })
            .await
            .unwrap();
        // The same external id again in the site: a conflict; in another site: fine.
        let again = NewContact {
            site_id: site.id.clone(),
            external_id: Some("u1".into()),
            email: None,
            name: None,
            attributes: Map::new(),
            changed_by: "token:t1".into(),
            now: 11,
        };
        assert!(matches!(
            store.create_contact(again.clone()).await,
            Err(StoreError::Conflict(_))
        ));
        store
            .create_contact(NewContact {
                site_id: other.id.clone(),
                ..again
            })
            .await
            .unwrap();

        let updated = store
            .update_contact(
                &site.id,
                &created.id,
                ContactUpdate {
                    name: Some(Some("Ann".into())),
                    email: Some(None),
                    attributes: attributes(json!({"plan": "team", "seats": null, "vip": true})),
                    changed_by: "agent:a1".into(),
                    now: 20,
                    ..ContactUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            Value::Object(updated.attributes),
            json!({"plan": "team", "vip": true})
        );
        assert_eq!(
            (updated.name.as_deref(), updated.email),
            (Some("Ann"), None)
        );
        assert_eq!(updated.updated_at, 20);
        let changes = store
            .contact_changes(&site.id, &created.id, 100)
            .await
            .unwrap();
        let seen: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    c.old_value.clone(),
                    c.new_value.clone(),
                    c.changed_by.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("plan", None, Some(json!("pro")), "token:t1"),
                ("seats", None, Some(json!(3)), "token:t1"),
                ("plan", Some(json!("pro")), Some(json!("team")), "agent:a1"),
                ("seats", Some(json!(3)), None, "agent:a1"),
                ("vip", None, Some(json!(true)), "agent:a1"),
            ]
        );
        // Another site sees nothing of it.
        assert_eq!(store.contact(&other.id, &created.id).await.unwrap(), None);
        assert!(matches!(
            store
                .update_contact(&other.id, &created.id, ContactUpdate::default())
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(
            store
                .contact_changes(&other.id, &created.id, 100)
                .await
                .unwrap()
                .is_empty()
        );

        // Search by an attribute's value as text, and the link to an identified visitor.
        let search = |attribute: (&str, &str)| ContactSearch {
            attribute: Some((attribute.0.into(), attribute.1.into())),
            limit: 10,
            ..ContactSearch::default()
        };
        for (key, value, hits) in [
            ("plan", "team", 1),
            ("vip", "true", 1),
            ("vip", "false", 0),
            ("plan", "pro", 0),
            ("404", "x", 0),
        ] {
            let found = store
                .find_contacts(&site.id, search((key, value)))
                .await
                .unwrap();
            assert_eq!(found.len(), hits, "{key}={value}");
        }
        store
            .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
            .await
            .unwrap();
        store
            .identify_visitor(
                "v_1",
                IdentityUpdate {
                    external_id: "u1".into(),
                    name: None,
                    email: None,
                    verified: Vec::new(),
                    attributes: None,
                },
            )
            .await
            .unwrap();
        let linked = store.contact(&site.id, &created.id).await.unwrap().unwrap();
        assert_eq!(linked.visitor_ids, ["v_1"]);
        let by_external = store
            .contact_by_external_id(&site.id, "u1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_external.id, created.id);
    }
}
