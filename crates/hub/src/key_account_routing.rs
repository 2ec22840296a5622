//! Key-account rules ([`crate::key_accounts`]) applied to conversations (issue 19):
//! which rule a visitor matches now (from [`customer::attributes`]), where the hand-off
//! goes (priority, department, the owner as routing's preferred agent), what the
//! settings name checked against the store, and the reports' split.

use serde_json::Value;

use crate::customer;
use crate::key_accounts::{KeyAccountRule, first_match, split_first_response};
use crate::site::SiteSettings;
use crate::state::AppState;
use salam_store::StoreError;

/// The rule that applies to a visitor now, if any (no store read without rules).
pub async fn of_visitor(
    state: &AppState,
    settings: &SiteSettings,
    visitor_id: &str,
) -> Option<KeyAccountRule> {
    if settings.key_accounts.is_empty() {
        return None;
    }
    let attributes = customer::attributes(state, visitor_id).await;
    first_match(&settings.key_accounts, &attributes).cloned()
}

/// The owner's agent id, if they name an active agent (by id, or by e-mail when the
/// text has an `@`).
pub async fn owner_agent(state: &AppState, owner: &str) -> Option<String> {
    let found = if owner.contains('@') {
        state
            .store
            .agent_by_email(owner)
            .await
            .map(|found| found.map(|(agent, _)| agent))
    } else {
        state.store.agent_by_id(owner).await
    };
    match found {
        Ok(Some(agent)) if !agent.disabled => Some(agent.id),
        Ok(_) => {
            tracing::info!(owner, "key account owner is not an active agent");
            None
        }
        Err(err) => {
            tracing::warn!(owner, error = %err, "key account owner not read");
            None
        }
    }
}

/// Where a hand-off goes once the key-account rule (if any) is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub department: String,
    pub priority: i32,
    /// The owner's agent id, to try first.
    pub owner: Option<String>,
}

/// Applies `rule` to a hand-off to `department` at `priority`: the priority raised by
/// the rule's, its department if it names one, its owner resolved to an agent id.
pub async fn route(
    state: &AppState,
    rule: Option<&KeyAccountRule>,
    department: &str,
    priority: i32,
) -> Routed {
    let Some(rule) = rule else {
        return Routed {
            department: department.to_owned(),
            priority,
            owner: None,
        };
    };
    let owner = match &rule.owner {
        Some(owner) => owner_agent(state, owner).await,
        None => None,
    };
    Routed {
        department: rule
            .department
            .clone()
            .unwrap_or_else(|| department.to_owned()),
        priority: priority.saturating_add(rule.priority),
        owner,
    }
}

/// Checks what the settings name against the store (`PUT /api/sites/{id}/settings`):
/// each rule's department must be one of the site's departments and its owner an
/// active agent who works on the site. `Ok(Some(message))`: refused, and why.
pub async fn check_references(
    state: &AppState,
    site_id: &str,
    settings: &SiteSettings,
) -> Result<Option<&'static str>, StoreError> {
    if settings.key_accounts.is_empty() {
        return Ok(None);
    }
    let departments = state.store.departments(&[site_id.to_owned()]).await?;
    for rule in &settings.key_accounts {
        if let Some(department) = &rule.department
            && !departments.iter().any(|known| known.name == *department)
        {
            return Ok(Some(
                "key_accounts: department is not one of the site's departments",
            ));
        }
        if let Some(owner) = &rule.owner {
            let agent = if owner.contains('@') {
                state
                    .store
                    .agent_by_email(owner)
                    .await?
                    .map(|(agent, _)| agent)
            } else {
                state.store.agent_by_id(owner).await?
            };
            let works_here = agent.is_some_and(|agent| {
                !agent.disabled
                    && (agent.every_site() || agent.site_ids.iter().any(|id| id == site_id))
            });
            if !works_here {
                return Ok(Some(
                    "key_accounts: owner must be an active agent of the site (id or e-mail)",
                ));
            }
        }
    }
    Ok(None)
}

/// The report's `key_accounts` part for `site_ids` over `[from, to)`: see
/// [`split_first_response`].
pub async fn report(
    state: &AppState,
    site_ids: &[String],
    from: i64,
    to: i64,
    first_responses: &[i64],
    target_ms: i64,
) -> Result<Value, StoreError> {
    let key = state
        .store
        .key_account_first_responses(site_ids, from, to)
        .await?;
    Ok(split_first_response(first_responses, key, target_ms))
}
