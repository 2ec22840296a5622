//! Missed chats: a conversation that waited in the queue `smtp.missed_chat_after_secs`
//! with nobody taking it (which includes every contact request left while nobody was
//! online) is told to the agents of its site by e-mail, batched: one mail per agent
//! and site per check, each conversation told once.

use super::templates::{self, Missed};
use crate::clock::now_ms;
use crate::mail_out::OutMail;
use crate::state::AppState;
use salam_protocol::{AuthorKind, MessageKind};
use salam_store::StoreError;
use std::collections::BTreeMap;
use std::time::Duration;

/// Conversations taken per check at most.
const BATCH: u32 = 200;

pub fn spawn(state: AppState) {
    let after = state.config.smtp.missed_chat_after_secs;
    if after == 0 {
        return;
    }
    let tick = Duration::from_millis((u64::from(after) * 250).clamp(500, 60_000));
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            // Once per cluster: on the routing owner.
            if !state.leads() {
                continue;
            }
            if let Err(err) = check(&state, after).await {
                tracing::warn!(error = %err, "missed chats not mailed");
            }
        }
    });
}

async fn check(state: &AppState, after_secs: u32) -> Result<(), StoreError> {
    let now = now_ms();
    let ids = state
        .store
        .email_take_missed(now - i64::from(after_secs) * 1000, now, BATCH)
        .await?;
    if ids.is_empty() {
        return Ok(());
    }
    let mut by_site: BTreeMap<String, Vec<Missed>> = BTreeMap::new();
    for id in ids {
        let Some(found) = state.store.conversation(&id).await? else {
            continue;
        };
        let visitor = found
            .visitor_name
            .clone()
            .or(found.visitor_email.clone())
            .unwrap_or_else(|| found.visitor_id.clone());
        // What the visitor last wrote (the last line may be the bot's).
        let preview = state
            .store
            .messages_before(&id, found.last_seq + 1, 20)
            .await?
            .into_iter()
            .rev()
            .find(|m| m.author.kind == AuthorKind::Visitor && m.kind == MessageKind::Text)
            .map(|m| m.text.chars().take(200).collect())
            .unwrap_or_default();
        by_site
            .entry(found.site_id.clone())
            .or_default()
            .push(Missed { visitor, preview });
    }
    let agents = state.store.list_agents().await?;
    for (site_id, missed) in by_site {
        let site = super::hooks::site_name(state, &site_id).await?;
        let rendered = templates::missed_chats(salam_bot::Lang::En, &site, &missed);
        for agent in agents.iter().filter(|agent| {
            !agent.disabled
                && (agent.all_sites
                    || agent.role == salam_store::AgentRole::Admin
                    || agent.site_ids.contains(&site_id))
        }) {
            let mail = OutMail {
                to: agent.email.clone(),
                to_name: Some(agent.name.clone()),
                subject: rendered.subject.clone(),
                text: rendered.text.clone(),
                html: rendered.html.clone(),
                message_id: format!(
                    "missed.{}@{}",
                    crate::auth::random_token(12),
                    state.email.from_domain()
                ),
                in_reply_to: None,
                references: Vec::new(),
                reply_to: None,
                auto: true,
                lang: rendered.lang,
            };
            if let Err(err) = state.email.enqueue(mail) {
                tracing::warn!(error = %err, agent = %agent.id, "missed-chats mail not queued");
            }
        }
    }
    Ok(())
}
