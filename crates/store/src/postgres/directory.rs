//! Settings, sites, departments, canned responses, agents and sessions, offline
//! requests, ratings, alerts, bot turns and the bot report (SQLite: `crate::sqlite`).

use super::{PostgresStore, map_err};
use crate::*;

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

pub(super) async fn create_site(
    store: &PostgresStore,
    name: &str,
    origins: &[String],
) -> Result<Site, StoreError> {
    let _ = (store, name, origins);
    Err(super::unported("create_site"))
}

pub(super) async fn site_by_key(
    store: &PostgresStore,
    key: &str,
) -> Result<Option<Site>, StoreError> {
    let _ = (store, key);
    Err(super::unported("site_by_key"))
}

pub(super) async fn site_by_id(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<Site>, StoreError> {
    let _ = (store, id);
    Err(super::unported("site_by_id"))
}

pub(super) async fn list_sites(store: &PostgresStore) -> Result<Vec<Site>, StoreError> {
    let _ = store;
    Err(super::unported("list_sites"))
}

pub(super) async fn update_site(
    store: &PostgresStore,
    id: &str,
    name: Option<&str>,
    origins: Option<&[String]>,
) -> Result<Site, StoreError> {
    let _ = (store, id, name, origins);
    Err(super::unported("update_site"))
}

pub(super) async fn departments(
    store: &PostgresStore,
    site_ids: &[String],
) -> Result<Vec<Department>, StoreError> {
    let _ = (store, site_ids);
    Err(super::unported("departments"))
}

pub(super) async fn add_department(
    store: &PostgresStore,
    site_id: &str,
    name: &str,
) -> Result<(), StoreError> {
    let _ = (store, site_id, name);
    Err(super::unported("add_department"))
}

pub(super) async fn remove_department(
    store: &PostgresStore,
    site_id: &str,
    name: &str,
) -> Result<(), StoreError> {
    let _ = (store, site_id, name);
    Err(super::unported("remove_department"))
}

pub(super) async fn canned(
    store: &PostgresStore,
    site_ids: &[String],
) -> Result<Vec<Canned>, StoreError> {
    let _ = (store, site_ids);
    Err(super::unported("canned"))
}

pub(super) async fn add_canned(
    store: &PostgresStore,
    site_id: &str,
    shortcut: &str,
    text: &str,
) -> Result<Canned, StoreError> {
    let _ = (store, site_id, shortcut, text);
    Err(super::unported("add_canned"))
}

pub(super) async fn remove_canned(store: &PostgresStore, id: i64) -> Result<(), StoreError> {
    let _ = (store, id);
    Err(super::unported("remove_canned"))
}

pub(super) async fn rotate_identity_secret(
    store: &PostgresStore,
    site_id: &str,
    secret: &str,
    now: i64,
) -> Result<Site, StoreError> {
    let _ = (store, site_id, secret, now);
    Err(super::unported("rotate_identity_secret"))
}

pub(super) async fn offline_request_done(
    store: &PostgresStore,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, id, now);
    Err(super::unported("offline_request_done"))
}

pub(super) async fn acknowledge_alert(
    store: &PostgresStore,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, id, now);
    Err(super::unported("acknowledge_alert"))
}

pub(super) async fn create_agent(
    store: &PostgresStore,
    agent: NewAgent,
) -> Result<Agent, StoreError> {
    let _ = (store, agent);
    Err(super::unported("create_agent"))
}

pub(super) async fn count_agents(store: &PostgresStore) -> Result<u64, StoreError> {
    let _ = store;
    Err(super::unported("count_agents"))
}

pub(super) async fn agent_by_email(
    store: &PostgresStore,
    email: &str,
) -> Result<Option<(Agent, String)>, StoreError> {
    let _ = (store, email);
    Err(super::unported("agent_by_email"))
}

pub(super) async fn agent_by_id(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<Agent>, StoreError> {
    let _ = (store, id);
    Err(super::unported("agent_by_id"))
}

pub(super) async fn list_agents(store: &PostgresStore) -> Result<Vec<Agent>, StoreError> {
    let _ = store;
    Err(super::unported("list_agents"))
}

pub(super) async fn update_agent(
    store: &PostgresStore,
    id: &str,
    update: AgentUpdate,
) -> Result<Agent, StoreError> {
    let _ = (store, id, update);
    Err(super::unported("update_agent"))
}

pub(super) async fn create_session(
    store: &PostgresStore,
    token_hash: &str,
    agent_id: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    let _ = (store, token_hash, agent_id, expires_at);
    Err(super::unported("create_session"))
}

pub(super) async fn session_agent(
    store: &PostgresStore,
    token_hash: &str,
    now: i64,
) -> Result<Option<SessionAgent>, StoreError> {
    let _ = (store, token_hash, now);
    Err(super::unported("session_agent"))
}

pub(super) async fn touch_session(
    store: &PostgresStore,
    token_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, token_hash, now);
    Err(super::unported("touch_session"))
}

pub(super) async fn delete_session(
    store: &PostgresStore,
    token_hash: &str,
) -> Result<(), StoreError> {
    let _ = (store, token_hash);
    Err(super::unported("delete_session"))
}

pub(super) async fn sessions_of_agent(
    store: &PostgresStore,
    agent_id: &str,
    now: i64,
) -> Result<Vec<Session>, StoreError> {
    let _ = (store, agent_id, now);
    Err(super::unported("sessions_of_agent"))
}

pub(super) async fn delete_sessions_of_agent(
    store: &PostgresStore,
    agent_id: &str,
    keep: Option<&str>,
) -> Result<(), StoreError> {
    let _ = (store, agent_id, keep);
    Err(super::unported("delete_sessions_of_agent"))
}

pub(super) async fn password_hash(
    store: &PostgresStore,
    agent_id: &str,
) -> Result<Option<String>, StoreError> {
    let _ = (store, agent_id);
    Err(super::unported("password_hash"))
}

pub(super) async fn set_password_hash(
    store: &PostgresStore,
    agent_id: &str,
    hash: &str,
) -> Result<(), StoreError> {
    let _ = (store, agent_id, hash);
    Err(super::unported("set_password_hash"))
}

pub(super) async fn set_agent_presence(
    store: &PostgresStore,
    agent_id: &str,
    presence: Presence,
) -> Result<(), StoreError> {
    let _ = (store, agent_id, presence);
    Err(super::unported("set_agent_presence"))
}

pub(super) async fn update_site_settings(
    store: &PostgresStore,
    site_id: &str,
    settings: &str,
) -> Result<(), StoreError> {
    let _ = (store, site_id, settings);
    Err(super::unported("update_site_settings"))
}

pub(super) async fn timings(
    store: &PostgresStore,
    site_ids: &[String],
    from: i64,
    to: i64,
) -> Result<Vec<Timing>, StoreError> {
    let _ = (store, site_ids, from, to);
    Err(super::unported("timings"))
}

pub(super) async fn record_bot_turn(
    store: &PostgresStore,
    turn: BotTurn,
) -> Result<(), StoreError> {
    let _ = (store, turn);
    Err(super::unported("record_bot_turn"))
}

pub(super) async fn recent_bot_turns(
    store: &PostgresStore,
    conversation: &str,
    n: u32,
) -> Result<Vec<RecentTurn>, StoreError> {
    let _ = (store, conversation, n);
    Err(super::unported("recent_bot_turns"))
}

pub(super) async fn create_offline_request(
    store: &PostgresStore,
    request: OfflineRequest,
) -> Result<(i64, bool), StoreError> {
    let _ = (store, request);
    Err(super::unported("create_offline_request"))
}

pub(super) async fn offline_requests(
    store: &PostgresStore,
    site_ids: &[String],
    page: Page,
) -> Result<Vec<OfflineRequest>, StoreError> {
    let _ = (store, site_ids, page);
    Err(super::unported("offline_requests"))
}

pub(super) async fn rate(
    store: &PostgresStore,
    conversation: &str,
    score: u8,
    comment: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let _ = (store, conversation, score, comment, now);
    Err(super::unported("rate"))
}

pub(super) async fn rating(
    store: &PostgresStore,
    conversation: &str,
) -> Result<Option<(u8, Option<String>)>, StoreError> {
    let _ = (store, conversation);
    Err(super::unported("rating"))
}

pub(super) async fn create_alert(
    store: &PostgresStore,
    alert: Alert,
) -> Result<Option<i64>, StoreError> {
    let _ = (store, alert);
    Err(super::unported("create_alert"))
}

pub(super) async fn alerts(
    store: &PostgresStore,
    site_ids: &[String],
    page: Page,
) -> Result<Vec<Alert>, StoreError> {
    let _ = (store, site_ids, page);
    Err(super::unported("alerts"))
}

pub(super) async fn bot_report(
    store: &PostgresStore,
    site_ids: &[String],
    from: i64,
    to: i64,
) -> Result<BotReport, StoreError> {
    let _ = (store, site_ids, from, to);
    Err(super::unported("bot_report"))
}
