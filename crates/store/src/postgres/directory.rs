//! Settings, sites, departments, canned responses, agents and sessions, offline
//! requests, ratings, alerts, bot turns and the bot report (SQLite: `crate::sqlite`).
//!
//! Where PostgreSQL differs, the SQL keeps SQLite's answers:
//!
//! - Lists sorted by text (departments, canned shortcuts, agents by name, site ids)
//!   use `COLLATE "C"`: byte order, as SQLite's `BINARY`, whatever the server's locale.
//! - An agent's e-mail is found with `lower(email) = lower($1)` (the unique index is on
//!   `lower(email)`, SQLite's column is `COLLATE NOCASE`); a taken one is a unique
//!   violation, so [`StoreError::Conflict`].
//! - The bot report groups unanswered questions by `lower(trim(…) COLLATE "C")`:
//!   ASCII-only lower-casing, as SQLite's `lower()`.
//! - An offline request is updated first and inserted only when the visitor has no open
//!   one (`ON CONFLICT … DO NOTHING` on the one-open index), so two hubs racing for one
//!   visitor end with one open request, as one SQLite writer does.
//! - The facts of deleted conversations (`report_facts`) are read here for timings and
//!   the bot report, as `crate::maintenance` does for SQLite.

use super::rows::{OFFLINE_REQUEST_COLUMNS, SITE_COLUMNS, offline_request_from_row, site_from_row};
use super::{PostgresStore, map_err, now_ms, storable, storable_owned};
use crate::sqlite::new_id;
use crate::*;
use pg::GenericClient;

pub(super) async fn get_setting(
    store: &PostgresStore,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let key = key.to_owned();
    store
        .read(move |client| {
            Ok(client
                .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
                .map_err(map_err)?
                .map(|row| row.get(0)))
        })
        .await
}

pub(super) async fn set_setting_if_absent(
    store: &PostgresStore,
    key: &str,
    value: &str,
) -> Result<String, StoreError> {
    let (key, value) = (key.to_owned(), value.to_owned());
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &value],
                )
                .map_err(map_err)?;
            Ok(transaction
                .query_one("SELECT value FROM settings WHERE key = $1", &[&key])
                .map_err(map_err)?
                .get(0))
        })
        .await
}

// ------------------------------------------------------------------------ sites

pub(super) async fn create_site(
    store: &PostgresStore,
    name: &str,
    origins: &[String],
) -> Result<Site, StoreError> {
    let site = Site {
        id: new_id("s"),
        name: storable(name).into_owned(),
        key: new_id("pk"),
        origins: origins.iter().cloned().map(storable_owned).collect(),
        created_at: now_ms(),
        settings: "{}".into(),
        identity_secret: new_id("sk"),
        previous_identity_secret: None,
        identity_secret_rotated_at: None,
    };
    let row = site.clone();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO sites (id, name, key, origins, created_at, settings, identity_secret) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &row.id,
                        &row.name,
                        &row.key,
                        &serde_json::to_string(&row.origins).unwrap_or_default(),
                        &row.created_at,
                        &row.settings,
                        &row.identity_secret,
                    ],
                )
                .map_err(map_err)
        })
        .await?;
    Ok(site)
}

pub(super) async fn site_by_key(
    store: &PostgresStore,
    key: &str,
) -> Result<Option<Site>, StoreError> {
    let key = key.to_owned();
    store
        .read(move |client| {
            Ok(client
                .query_opt(
                    &format!("SELECT {SITE_COLUMNS} FROM sites WHERE key = $1"),
                    &[&key],
                )
                .map_err(map_err)?
                .map(|row| site_from_row(&row)))
        })
        .await
}

pub(super) async fn site_by_id(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<Site>, StoreError> {
    let id = id.to_owned();
    store
        .read(move |client| {
            Ok(client
                .query_opt(
                    &format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = $1"),
                    &[&id],
                )
                .map_err(map_err)?
                .map(|row| site_from_row(&row)))
        })
        .await
}

pub(super) async fn list_sites(store: &PostgresStore) -> Result<Vec<Site>, StoreError> {
    store
        .read(|client| {
            Ok(client
                .query(
                    &format!(
                        "SELECT {SITE_COLUMNS} FROM sites ORDER BY created_at, id COLLATE \"C\""
                    ),
                    &[],
                )
                .map_err(map_err)?
                .iter()
                .map(site_from_row)
                .collect())
        })
        .await
}

pub(super) async fn update_site(
    store: &PostgresStore,
    id: &str,
    name: Option<&str>,
    origins: Option<&[String]>,
) -> Result<Site, StoreError> {
    let (id, name, origins) = (
        id.to_owned(),
        name.map(|name| storable(name).into_owned()),
        origins.map(|origins| {
            let origins: Vec<String> = origins.iter().cloned().map(storable_owned).collect();
            serde_json::to_string(&origins).unwrap_or_else(|_| "[]".into())
        }),
    );
    store
        .writer
        .write(move |transaction| {
            transaction
                .query_opt(
                    &format!(
                        "UPDATE sites SET name = coalesce($2, name), origins = coalesce($3, origins) \
                         WHERE id = $1 RETURNING {SITE_COLUMNS}"
                    ),
                    &[&id, &name, &origins],
                )
                .map_err(map_err)?
                .map(|row| site_from_row(&row))
                .ok_or(StoreError::NotFound)
        })
        .await
}

pub(super) async fn update_site_settings(
    store: &PostgresStore,
    site_id: &str,
    settings: &str,
) -> Result<(), StoreError> {
    let (site_id, settings) = (site_id.to_owned(), settings.to_owned());
    store
        .change_one(
            "UPDATE sites SET settings = $2 WHERE id = $1",
            vec![Box::new(site_id), Box::new(settings)],
        )
        .await
}

pub(super) async fn rotate_identity_secret(
    store: &PostgresStore,
    site_id: &str,
    secret: &str,
    now: i64,
) -> Result<Site, StoreError> {
    let (site_id, secret) = (site_id.to_owned(), secret.to_owned());
    store
        .writer
        .write(move |transaction| {
            transaction
                .query_opt(
                    &format!(
                        "UPDATE sites SET previous_identity_secret = identity_secret, \
                         identity_secret = $2, identity_secret_rotated_at = $3 WHERE id = $1 \
                         RETURNING {SITE_COLUMNS}"
                    ),
                    &[&site_id, &secret, &now],
                )
                .map_err(map_err)?
                .map(|row| site_from_row(&row))
                .ok_or(StoreError::NotFound)
        })
        .await
}

// ------------------------------------------------------- departments and canned

pub(super) async fn departments(
    store: &PostgresStore,
    site_ids: &[String],
) -> Result<Vec<Department>, StoreError> {
    let site_ids = site_ids.to_vec();
    store
        .read(move |client| {
            // Byte order, as SQLite's BINARY collation, whatever the database's locale.
            let statement = client
                .prepare(
                    "SELECT site_id, name FROM departments WHERE site_id = $1 \
                     ORDER BY name COLLATE \"C\"",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in &site_ids {
                for row in client.query(&statement, &[site_id]).map_err(map_err)? {
                    all.push(Department {
                        site_id: row.get(0),
                        name: row.get(1),
                    });
                }
            }
            Ok(all)
        })
        .await
}

pub(super) async fn add_department(
    store: &PostgresStore,
    site_id: &str,
    name: &str,
) -> Result<(), StoreError> {
    let (site_id, name) = (site_id.to_owned(), storable(name).into_owned());
    let now = now_ms();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO departments (site_id, name, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (site_id, name) DO NOTHING",
                    &[&site_id, &name, &now],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn remove_department(
    store: &PostgresStore,
    site_id: &str,
    name: &str,
) -> Result<(), StoreError> {
    let (site_id, name) = (site_id.to_owned(), storable(name).into_owned());
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "DELETE FROM departments WHERE site_id = $1 AND name = $2",
                    &[&site_id, &name],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn canned(
    store: &PostgresStore,
    site_ids: &[String],
) -> Result<Vec<Canned>, StoreError> {
    let site_ids = site_ids.to_vec();
    store
        .read(move |client| {
            let statement = client
                .prepare(
                    "SELECT id, site_id, shortcut, text FROM canned_responses WHERE site_id = $1 \
                     ORDER BY shortcut COLLATE \"C\"",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in &site_ids {
                for row in client.query(&statement, &[site_id]).map_err(map_err)? {
                    all.push(Canned {
                        id: row.get(0),
                        site_id: row.get(1),
                        shortcut: row.get(2),
                        text: row.get(3),
                    });
                }
            }
            Ok(all)
        })
        .await
}

pub(super) async fn add_canned(
    store: &PostgresStore,
    site_id: &str,
    shortcut: &str,
    text: &str,
) -> Result<Canned, StoreError> {
    let (site_id, shortcut, text) = (
        site_id.to_owned(),
        storable(shortcut).into_owned(),
        storable(text).into_owned(),
    );
    let now = now_ms();
    store
        .writer
        .write(move |transaction| {
            // A taken shortcut is a unique violation: `Conflict`, and the savepoint undoes
            // only this job.
            let id: i64 = transaction
                .query_one(
                    "INSERT INTO canned_responses (site_id, shortcut, text, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                    &[&site_id, &shortcut, &text, &now],
                )
                .map_err(map_err)?
                .get(0);
            Ok(Canned {
                id,
                site_id,
                shortcut,
                text,
            })
        })
        .await
}

pub(super) async fn remove_canned(store: &PostgresStore, id: i64) -> Result<(), StoreError> {
    store
        .change_one(
            "DELETE FROM canned_responses WHERE id = $1",
            vec![Box::new(id)],
        )
        .await
}

// ----------------------------------------------------------------------- agents

/// The columns [`agent_from_row`] reads, the agent's sites (in byte order, as SQLite's
/// `ORDER BY site_id`) as an array in the same row.
const AGENT_COLUMNS: &str = "id, email, name, role, disabled, password_hash, capacity, departments, \
     all_sites, presence, ARRAY(SELECT s.site_id FROM agent_sites s WHERE s.agent_id = agents.id \
     ORDER BY s.site_id COLLATE \"C\")";

/// An agent and its password hash.
fn agent_from_row(row: &pg::Row) -> Result<(Agent, String), StoreError> {
    let role: String = row.get(3);
    let role = AgentRole::parse(&role).ok_or_else(|| StoreError::Corrupt(role.clone()))?;
    Ok((
        Agent {
            id: row.get(0),
            email: row.get(1),
            name: row.get(2),
            role,
            site_ids: row.get(10),
            disabled: row.get(4),
            capacity: row
                .get::<_, Option<i64>>(6)
                .map(|capacity| capacity.clamp(0, u32::MAX as i64) as u32),
            departments: serde_json::from_str(&row.get::<_, String>(7)).unwrap_or_default(),
            all_sites: row.get(8),
            presence: match row.get::<_, String>(9).as_str() {
                "away" => Presence::Away,
                _ => Presence::Online,
            },
        },
        row.get(5),
    ))
}

/// The agent whose row matches `condition` (with `$1` bound to `value`).
fn agent_where(
    client: &mut impl GenericClient,
    condition: &str,
    value: &str,
) -> Result<Option<(Agent, String)>, StoreError> {
    client
        .query_opt(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE {condition}"),
            &[&value],
        )
        .map_err(map_err)?
        .map(|row| agent_from_row(&row))
        .transpose()
}

/// Gives an agent the sites `site_ids` (an unknown site is a `Conflict`).
fn insert_agent_sites(
    transaction: &mut pg::Transaction<'_>,
    id: &str,
    site_ids: &[String],
) -> Result<(), StoreError> {
    for site_id in site_ids {
        transaction
            .execute(
                "INSERT INTO agent_sites (agent_id, site_id) VALUES ($1, $2)",
                &[&id, site_id],
            )
            .map_err(map_err)?;
    }
    Ok(())
}

pub(super) async fn create_agent(
    store: &PostgresStore,
    agent: NewAgent,
) -> Result<Agent, StoreError> {
    let id = new_id("a");
    let created = Agent {
        id: id.clone(),
        email: agent.email.clone(),
        name: agent.name.clone(),
        role: agent.role,
        all_sites: agent.all_sites,
        site_ids: agent.site_ids.clone(),
        disabled: false,
        capacity: agent.capacity,
        departments: agent.departments.clone(),
        presence: Presence::Online,
    };
    let now = now_ms();
    store
        .writer
        .write(move |transaction| {
            // A taken e-mail (in any case: the unique index is on `lower(email)`) is a
            // unique violation, so `Conflict`.
            transaction
                .execute(
                    "INSERT INTO agents (id, email, name, role, password_hash, created_at, \
                     capacity, departments, all_sites) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &id,
                        &agent.email,
                        &agent.name,
                        &agent.role.as_str(),
                        &agent.password_hash,
                        &now,
                        &agent.capacity.map(i64::from),
                        &serde_json::to_string(&agent.departments).unwrap_or_else(|_| "[]".into()),
                        &agent.all_sites,
                    ],
                )
                .map_err(map_err)?;
            insert_agent_sites(transaction, &id, &agent.site_ids)
        })
        .await?;
    Ok(created)
}

pub(super) async fn count_agents(store: &PostgresStore) -> Result<u64, StoreError> {
    store
        .read(|client| {
            let count: i64 = client
                .query_one("SELECT count(*) FROM agents", &[])
                .map_err(map_err)?
                .get(0);
            Ok(count.max(0) as u64)
        })
        .await
}

pub(super) async fn agent_by_email(
    store: &PostgresStore,
    email: &str,
) -> Result<Option<(Agent, String)>, StoreError> {
    let email = email.trim().to_owned();
    store
        .read(move |client| agent_where(client, "lower(email) = lower($1)", &email))
        .await
}

pub(super) async fn agent_by_id(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<Agent>, StoreError> {
    let id = id.to_owned();
    store
        .read(move |client| Ok(agent_where(client, "id = $1", &id)?.map(|(agent, _)| agent)))
        .await
}

pub(super) async fn list_agents(store: &PostgresStore) -> Result<Vec<Agent>, StoreError> {
    store
        .read(|client| {
            client
                .query(
                    &format!(
                        "SELECT {AGENT_COLUMNS} FROM agents \
                         ORDER BY name COLLATE \"C\", id COLLATE \"C\""
                    ),
                    &[],
                )
                .map_err(map_err)?
                .iter()
                .map(|row| agent_from_row(row).map(|(agent, _)| agent))
                .collect()
        })
        .await
}

pub(super) async fn update_agent(
    store: &PostgresStore,
    id: &str,
    update: AgentUpdate,
) -> Result<Agent, StoreError> {
    let id = id.to_owned();
    store
        .writer
        .write(move |transaction| {
            if agent_where(transaction, "id = $1", &id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let execute = |transaction: &mut pg::Transaction<'_>,
                           sql: &str,
                           value: &(dyn pg::types::ToSql + Sync)| {
                transaction
                    .execute(sql, &[&id, value])
                    .map(|_| ())
                    .map_err(map_err)
            };
            if let Some(name) = &update.name {
                execute(
                    transaction,
                    "UPDATE agents SET name = $2 WHERE id = $1",
                    name,
                )?;
            }
            if let Some(role) = update.role {
                execute(
                    transaction,
                    "UPDATE agents SET role = $2 WHERE id = $1",
                    &role.as_str(),
                )?;
            }
            if let Some(capacity) = update.capacity {
                execute(
                    transaction,
                    "UPDATE agents SET capacity = $2 WHERE id = $1",
                    &capacity.map(i64::from),
                )?;
            }
            if let Some(departments) = &update.departments {
                let json = serde_json::to_string(departments).unwrap_or_else(|_| "[]".into());
                execute(
                    transaction,
                    "UPDATE agents SET departments = $2 WHERE id = $1",
                    &json,
                )?;
            }
            if let Some(disabled) = update.disabled {
                execute(
                    transaction,
                    "UPDATE agents SET disabled = $2 WHERE id = $1",
                    &disabled,
                )?;
                if disabled {
                    transaction
                        .execute("DELETE FROM sessions WHERE agent_id = $1", &[&id])
                        .map_err(map_err)?;
                }
            }
            if let Some(all_sites) = update.all_sites {
                execute(
                    transaction,
                    "UPDATE agents SET all_sites = $2 WHERE id = $1",
                    &all_sites,
                )?;
            }
            if let Some(site_ids) = &update.site_ids {
                transaction
                    .execute("DELETE FROM agent_sites WHERE agent_id = $1", &[&id])
                    .map_err(map_err)?;
                insert_agent_sites(transaction, &id, site_ids)?;
            }
            agent_where(transaction, "id = $1", &id)?
                .map(|(agent, _)| agent)
                .ok_or(StoreError::NotFound)
        })
        .await
}

pub(super) async fn password_hash(
    store: &PostgresStore,
    agent_id: &str,
) -> Result<Option<String>, StoreError> {
    let agent_id = agent_id.to_owned();
    store
        .read(move |client| {
            Ok(client
                .query_opt(
                    "SELECT password_hash FROM agents WHERE id = $1",
                    &[&agent_id],
                )
                .map_err(map_err)?
                .map(|row| row.get(0)))
        })
        .await
}

pub(super) async fn set_password_hash(
    store: &PostgresStore,
    agent_id: &str,
    hash: &str,
) -> Result<(), StoreError> {
    let (agent_id, hash) = (agent_id.to_owned(), hash.to_owned());
    store
        .change_one(
            "UPDATE agents SET password_hash = $2 WHERE id = $1",
            vec![Box::new(agent_id), Box::new(hash)],
        )
        .await
}

pub(super) async fn set_agent_presence(
    store: &PostgresStore,
    agent_id: &str,
    presence: Presence,
) -> Result<(), StoreError> {
    let agent_id = agent_id.to_owned();
    let presence = match presence {
        Presence::Away => "away",
        Presence::Online | Presence::Offline => "online",
    };
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "UPDATE agents SET presence = $2 WHERE id = $1",
                    &[&agent_id, &presence],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

// --------------------------------------------------------------------- sessions

pub(super) async fn create_session(
    store: &PostgresStore,
    token_hash: &str,
    agent_id: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    let (token_hash, agent_id) = (token_hash.to_owned(), agent_id.to_owned());
    let now = now_ms();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute("DELETE FROM sessions WHERE expires_at < $1", &[&now])
                .map_err(map_err)?;
            transaction
                .execute(
                    "INSERT INTO sessions (token_hash, agent_id, created_at, expires_at, last_seen) \
                     VALUES ($1, $2, $3, $4, $3)",
                    &[&token_hash, &agent_id, &now, &expires_at],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn session_agent(
    store: &PostgresStore,
    token_hash: &str,
    now: i64,
) -> Result<Option<SessionAgent>, StoreError> {
    let token_hash = token_hash.to_owned();
    store
        .read(move |client| {
            let Some(session) = client
                .query_opt(
                    "SELECT agent_id, expires_at, last_seen FROM sessions \
                     WHERE token_hash = $1 AND expires_at > $2",
                    &[&token_hash, &now],
                )
                .map_err(map_err)?
            else {
                return Ok(None);
            };
            let agent_id: String = session.get(0);
            Ok(agent_where(client, "id = $1", &agent_id)?
                .map(|(agent, _)| agent)
                .filter(|agent| !agent.disabled)
                .map(|agent| SessionAgent {
                    agent,
                    expires_at: session.get(1),
                    last_seen: session.get(2),
                }))
        })
        .await
}

pub(super) async fn touch_session(
    store: &PostgresStore,
    token_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    let token_hash = token_hash.to_owned();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "UPDATE sessions SET last_seen = $2 WHERE token_hash = $1",
                    &[&token_hash, &now],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn delete_session(
    store: &PostgresStore,
    token_hash: &str,
) -> Result<(), StoreError> {
    let token_hash = token_hash.to_owned();
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn sessions_of_agent(
    store: &PostgresStore,
    agent_id: &str,
    now: i64,
) -> Result<Vec<Session>, StoreError> {
    let agent_id = agent_id.to_owned();
    store
        .read(move |client| {
            // Oldest first (SQLite reads them in insertion order, through its index).
            Ok(client
                .query(
                    "SELECT token_hash, expires_at, last_seen FROM sessions \
                     WHERE agent_id = $1 AND expires_at > $2 \
                     ORDER BY created_at, token_hash COLLATE \"C\"",
                    &[&agent_id, &now],
                )
                .map_err(map_err)?
                .iter()
                .map(|row| Session {
                    token_hash: row.get(0),
                    expires_at: row.get(1),
                    last_seen: row.get(2),
                })
                .collect())
        })
        .await
}

pub(super) async fn delete_sessions_of_agent(
    store: &PostgresStore,
    agent_id: &str,
    keep: Option<&str>,
) -> Result<(), StoreError> {
    let (agent_id, keep) = (agent_id.to_owned(), keep.map(str::to_owned));
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "DELETE FROM sessions WHERE agent_id = $1 \
                     AND token_hash IS DISTINCT FROM $2::TEXT",
                    &[&agent_id, &keep],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

// ----------------------------------------------------------- offline requests

pub(super) async fn create_offline_request(
    store: &PostgresStore,
    request: OfflineRequest,
) -> Result<(i64, bool), StoreError> {
    store
        .writer
        .write(move |transaction| {
            // The details show on the visitor's record, so on the conversation too;
            // what a signed identity vouched for stays.
            transaction
                .execute(
                    "UPDATE visitors SET \
                     name = CASE WHEN $2::TEXT IS NOT NULL AND strpos(verified, '\"name\"') = 0 \
                                 THEN $2::TEXT ELSE name END, \
                     email = CASE WHEN $3::TEXT IS NOT NULL AND strpos(verified, '\"email\"') = 0 \
                                  THEN $3::TEXT ELSE email END, \
                     phone = coalesce($4::TEXT, phone) WHERE id = $1",
                    &[
                        &request.visitor_id,
                        &request.name,
                        &request.email,
                        &request.phone,
                    ],
                )
                .map_err(map_err)?;
            if let Some(conversation) = &request.conversation {
                transaction
                    .execute(
                        "UPDATE conversations SET contact_asked_at = NULL WHERE id = $1",
                        &[conversation],
                    )
                    .map_err(map_err)?;
            }
            // One open request per visitor: it takes the new details, and the new
            // message unless it already holds it. Updated first, inserted when there is
            // none; an insert another hub won meanwhile is waited for and updated.
            for _ in 0..2 {
                let updated = transaction
                    .query_opt(
                        "UPDATE offline_requests SET conversation_id = coalesce($3, conversation_id), \
                         name = coalesce($4, name), email = coalesce($5, email), \
                         phone = coalesce($6, phone), \
                         message = CASE WHEN $7::TEXT IS NULL OR strpos(message, $7::TEXT) > 0 \
                                        THEN message \
                                        WHEN message IS NULL THEN $7::TEXT \
                                        ELSE substr(message || E'\\n\\n' || $7::TEXT, 1, 8000) END, \
                         created_at = $8 \
                         WHERE site_id = $1 AND visitor_id = $2 AND done_at IS NULL RETURNING id",
                        &[
                            &request.site_id,
                            &request.visitor_id,
                            &request.conversation,
                            &request.name,
                            &request.email,
                            &request.phone,
                            &request.message,
                            &request.created_at,
                        ],
                    )
                    .map_err(map_err)?;
                if let Some(row) = updated {
                    return Ok((row.get(0), false));
                }
                let inserted = transaction
                    .query_opt(
                        "INSERT INTO offline_requests (site_id, visitor_id, conversation_id, name, \
                         email, phone, message, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (site_id, visitor_id) WHERE done_at IS NULL DO NOTHING \
                         RETURNING id",
                        &[
                            &request.site_id,
                            &request.visitor_id,
                            &request.conversation,
                            &request.name,
                            &request.email,
                            &request.phone,
                            &request.message,
                            &request.created_at,
                        ],
                    )
                    .map_err(map_err)?;
                if let Some(row) = inserted {
                    return Ok((row.get(0), true));
                }
            }
            Err(StoreError::Conflict(
                "the visitor's open offline request changed meanwhile".into(),
            ))
        })
        .await
}

pub(super) async fn offline_requests(
    store: &PostgresStore,
    site_ids: &[String],
    page: Page,
) -> Result<Vec<OfflineRequest>, StoreError> {
    let site_ids = site_ids.to_vec();
    store
        .read(move |client| {
            let statement = client
                .prepare(&format!(
                    "SELECT {OFFLINE_REQUEST_COLUMNS} FROM offline_requests WHERE site_id = $1 \
                     AND id < $2 ORDER BY id DESC LIMIT $3"
                ))
                .map_err(map_err)?;
            let before = page.before.unwrap_or(i64::MAX);
            let limit = i64::from(page.limit);
            let mut all = Vec::new();
            for site_id in &site_ids {
                for row in client
                    .query(&statement, &[site_id, &before, &limit])
                    .map_err(map_err)?
                {
                    all.push(offline_request_from_row(&row));
                }
            }
            all.sort_by_key(|request| std::cmp::Reverse(request.id));
            all.truncate(page.limit as usize);
            Ok(all)
        })
        .await
}

pub(super) async fn offline_request_done(
    store: &PostgresStore,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    store
        .change_one(
            "UPDATE offline_requests SET done_at = coalesce(done_at, $2) WHERE id = $1",
            vec![Box::new(id), Box::new(now)],
        )
        .await
}

// ---------------------------------------------------------------------- ratings

pub(super) async fn rate(
    store: &PostgresStore,
    conversation: &str,
    score: u8,
    comment: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let (conversation, comment) = (conversation.to_owned(), comment.map(str::to_owned));
    let score = i64::from(score);
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO ratings (conversation_id, score, comment, at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (conversation_id) DO UPDATE SET score = excluded.score, \
                     comment = excluded.comment, at = excluded.at",
                    &[&conversation, &score, &comment, &now],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn rating(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<(u8, Option<String>)>, StoreError> {
    let conversation = conversation.to_owned();
    store
        .read(move |client| {
            Ok(client
                .query_opt(
                    "SELECT score, comment FROM ratings WHERE conversation_id = $1",
                    &[&conversation],
                )
                .map_err(map_err)?
                .map(|row| (row.get::<_, i64>(0) as u8, row.get(1))))
        })
        .await
}

// ----------------------------------------------------------------------- alerts

pub(super) async fn create_alert(
    store: &PostgresStore,
    alert: Alert,
) -> Result<Option<i64>, StoreError> {
    store
        .writer
        .write(move |transaction| {
            // One alert per conversation and kind: a second one is dropped.
            Ok(transaction
                .query_opt(
                    "INSERT INTO alerts (site_id, conversation_id, kind, detail, at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
                    &[
                        &alert.site_id,
                        &alert.conversation,
                        &alert.kind,
                        &alert.detail,
                        &alert.at,
                    ],
                )
                .map_err(map_err)?
                .map(|row| row.get(0)))
        })
        .await
}

pub(super) async fn alerts(
    store: &PostgresStore,
    site_ids: &[String],
    page: Page,
) -> Result<Vec<Alert>, StoreError> {
    let site_ids = site_ids.to_vec();
    store
        .read(move |client| {
            let statement = client
                .prepare(
                    "SELECT id, site_id, conversation_id, kind, detail, at, acknowledged_at \
                     FROM alerts WHERE site_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                )
                .map_err(map_err)?;
            let before = page.before.unwrap_or(i64::MAX);
            let limit = i64::from(page.limit);
            let mut all = Vec::new();
            for site_id in &site_ids {
                for row in client
                    .query(&statement, &[site_id, &before, &limit])
                    .map_err(map_err)?
                {
                    all.push(Alert {
                        id: row.get(0),
                        site_id: row.get(1),
                        conversation: row.get(2),
                        kind: row.get(3),
                        detail: row.get(4),
                        at: row.get(5),
                        acknowledged_at: row.get(6),
                    });
                }
            }
            all.sort_by_key(|alert| std::cmp::Reverse(alert.id));
            all.truncate(page.limit as usize);
            Ok(all)
        })
        .await
}

pub(super) async fn acknowledge_alert(
    store: &PostgresStore,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    store
        .change_one(
            "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, $2) WHERE id = $1",
            vec![Box::new(id), Box::new(now)],
        )
        .await
}

// -------------------------------------------------------------- bot and reports

pub(super) async fn record_bot_turn(
    store: &PostgresStore,
    turn: BotTurn,
) -> Result<(), StoreError> {
    store
        .writer
        .write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO bot_turns (conversation_id, site_id, rule_id, intent, decision, \
                     score, lang, question, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &turn.conversation,
                        &turn.site_id,
                        &turn.rule_id,
                        &turn.intent,
                        &turn.decision,
                        &f64::from(turn.score),
                        &turn.lang,
                        &turn.question,
                        &turn.at,
                    ],
                )
                .map(|_| ())
                .map_err(map_err)
        })
        .await
}

pub(super) async fn recent_bot_turns(
    store: &PostgresStore,
    conversation: &str,
    n: u32,
) -> Result<Vec<RecentTurn>, StoreError> {
    let conversation = conversation.to_owned();
    let n = i64::from(n);
    store
        .read(move |client| {
            Ok(client
                .query(
                    "SELECT decision, intent, question FROM bot_turns WHERE conversation_id = $1 \
                     ORDER BY id DESC LIMIT $2",
                    &[&conversation, &n],
                )
                .map_err(map_err)?
                .iter()
                .map(|row| RecentTurn {
                    decision: row.get(0),
                    intent: row.get(1),
                    question: row.get(2),
                })
                .collect())
        })
        .await
}

pub(super) async fn timings(
    store: &PostgresStore,
    site_ids: &[String],
    from: i64,
    to: i64,
) -> Result<Vec<Timing>, StoreError> {
    let site_ids = site_ids.to_vec();
    store
        .read(move |client| {
            let statement = client
                .prepare(
                    "SELECT c.id, c.created_at, c.handed_off_at, c.first_response_at, c.closed_at, \
                     r.score FROM conversations c LEFT JOIN ratings r ON r.conversation_id = c.id \
                     WHERE c.site_id = $1 AND c.created_at >= $2 AND c.created_at < $3",
                )
                .map_err(map_err)?;
            let mut all = Vec::new();
            for site_id in &site_ids {
                for row in client
                    .query(&statement, &[site_id, &from, &to])
                    .map_err(map_err)?
                {
                    all.push(Timing {
                        conversation: row.get(0),
                        created_at: row.get(1),
                        handed_off_at: row.get(2),
                        first_response_at: row.get(3),
                        closed_at: row.get(4),
                        score: row.get::<_, Option<i64>>(5).map(|score| score as u8),
                    });
                }
                // Conversations the retention sweep or an erasure deleted.
                archived_timings(client, site_id, from, to, &mut all)?;
            }
            Ok(all)
        })
        .await
}

pub(super) async fn bot_report(
    store: &PostgresStore,
    site_ids: &[String],
    from: i64,
    to: i64,
) -> Result<BotReport, StoreError> {
    let site_ids = site_ids.to_vec();
    store
        .read(move |client| {
            let mut report = BotReport::default();
            let mut reasons: std::collections::BTreeMap<String, u64> = Default::default();
            let mut unanswered: std::collections::HashMap<String, u64> = Default::default();
            for site_id in &site_ids {
                let counts = client
                    .query_one(
                        "SELECT count(*), \
                         count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bot_turns b \
                             WHERE b.conversation_id = c.id)), \
                         count(*) FILTER (WHERE c.state = 'closed' AND c.handed_off_at IS NULL \
                             AND EXISTS (SELECT 1 FROM bot_turns b WHERE b.conversation_id = c.id \
                             AND b.decision = 'answer')) \
                         FROM conversations c \
                         WHERE c.site_id = $1 AND c.created_at >= $2 AND c.created_at < $3",
                        &[site_id, &from, &to],
                    )
                    .map_err(map_err)?;
                report.conversations += counts.get::<_, i64>(0) as u64;
                report.bot_conversations += counts.get::<_, i64>(1) as u64;
                report.deflected += counts.get::<_, i64>(2) as u64;
                for row in client
                    .query(
                        "SELECT handoff_reason, count(*) FROM conversations WHERE site_id = $1 \
                         AND handed_off_at IS NOT NULL AND created_at >= $2 AND created_at < $3 \
                         GROUP BY 1",
                        &[site_id, &from, &to],
                    )
                    .map_err(map_err)?
                {
                    let reason = row.get::<_, Option<String>>(0).unwrap_or_default();
                    *reasons.entry(reason).or_default() += row.get::<_, i64>(1) as u64;
                }
                // A miss, and the turn that handed off because the bot kept missing
                // (`misses`) or was asked the same again (`repeated`): the question
                // that made it give up is one it could not answer either. Lower-cased
                // as SQLite does (ASCII only: the "C" collation).
                for row in client
                    .query(
                        &format!(
                            "SELECT lower(trim(b.question) COLLATE \"C\"), count(*) FROM bot_turns b \
                             WHERE b.site_id = $1 AND b.at >= $2 AND b.at < $3 AND {} \
                             GROUP BY 1",
                            crate::sqlite::UNANSWERED_TURN
                        ),
                        &[site_id, &from, &to],
                    )
                    .map_err(map_err)?
                {
                    *unanswered.entry(row.get(0)).or_default() += row.get::<_, i64>(1) as u64;
                }
                // Conversations the retention sweep or an erasure deleted.
                add_archived_to_bot_report(client, site_id, from, to, &mut report, &mut reasons)?;
            }
            report.handoffs_by_reason = reasons.into_iter().collect();
            let mut unanswered: Vec<(String, u64)> = unanswered.into_iter().collect();
            unanswered.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            unanswered.truncate(50);
            report.unanswered = unanswered;
            Ok(report)
        })
        .await
}

/// Adds the facts of deleted conversations of `site_id` created in `[from, to)` to a
/// bot report (SQLite: `crate::maintenance::add_archived_to_bot_report`).
fn add_archived_to_bot_report(
    client: &mut pg::Client,
    site_id: &str,
    from: i64,
    to: i64,
    report: &mut BotReport,
    reasons: &mut std::collections::BTreeMap<String, u64>,
) -> Result<(), StoreError> {
    let counts = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE had_bot), count(*) FILTER (WHERE deflected) \
             FROM report_facts WHERE site_id = $1 AND created_hour >= $2 AND created_hour < $3",
            &[&site_id, &from, &to],
        )
        .map_err(map_err)?;
    report.conversations += counts.get::<_, i64>(0) as u64;
    report.bot_conversations += counts.get::<_, i64>(1) as u64;
    report.deflected += counts.get::<_, i64>(2) as u64;
    for row in client
        .query(
            "SELECT handoff_reason, count(*) FROM report_facts WHERE site_id = $1 \
             AND handed_off AND created_hour >= $2 AND created_hour < $3 GROUP BY 1",
            &[&site_id, &from, &to],
        )
        .map_err(map_err)?
    {
        let reason = row.get::<_, Option<String>>(0).unwrap_or_default();
        *reasons.entry(reason).or_default() += row.get::<_, i64>(1) as u64;
    }
    Ok(())
}

/// The timings of deleted conversations of `site_id` created in `[from, to)`, rebuilt
/// from their facts (SQLite: `crate::maintenance::archived_timings`): `conversation` is
/// empty, `created_at` is the hour, and the other times keep their distances from it.
fn archived_timings(
    client: &mut pg::Client,
    site_id: &str,
    from: i64,
    to: i64,
    timings: &mut Vec<Timing>,
) -> Result<(), StoreError> {
    for row in client
        .query(
            "SELECT created_hour, handed_off, first_response_ms, resolution_ms, score \
             FROM report_facts WHERE site_id = $1 AND created_hour >= $2 AND created_hour < $3",
            &[&site_id, &from, &to],
        )
        .map_err(map_err)?
    {
        let created_at: i64 = row.get(0);
        let handed_off: bool = row.get(1);
        timings.push(Timing {
            conversation: String::new(),
            created_at,
            handed_off_at: handed_off.then_some(created_at),
            first_response_at: row.get::<_, Option<i64>>(2).map(|ms| created_at + ms),
            closed_at: row.get::<_, Option<i64>>(3).map(|ms| created_at + ms),
            score: row.get::<_, Option<i64>>(4).map(|score| score as u8),
        });
    }
    Ok(())
}
