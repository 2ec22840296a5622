//! The retention sweep: each site's `retention_days` ([`SiteSettings`]) says how long
//! closed conversations are kept; the sweep deletes older ones, callbacks left before
//! the same cut-off, and then visitors not seen since who have nothing left.
//!
//! Key design decision: **one job function, run by whoever is told to.** [`sweep`] works
//! on a [`Store`] alone (no hub state), so the same code runs from the hub's timer
//! ([`spawn`], `retention.enabled`) and from `salam retention run`; with several hubs
//! on one database, one of them (or a timer on one machine) runs it. The sweep never
//! holds the writer for long: each batch is one writer job within
//! `retention.batch_conversations` / `batch_messages`, and it pauses `pause_ms` between
//! batches so the messages of live chats go first. Reports keep their figures: the
//! store copies each conversation's report facts before deleting it.

use crate::clock::now_ms;
use crate::config::RetentionConfig;
use crate::site::SiteSettings;
use crate::state::AppState;
use salam_store::{NewAudit, RetentionBatch, RetentionBudget, Store, StoreError};
use std::time::Duration;

/// A day, in milliseconds.
const DAY_MS: i64 = 24 * 3_600_000;

/// Visitors looked at per step of the visitor sweep.
const VISITOR_SCAN: u32 = 2000;

/// What one sweep deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Sites with a retention period.
    pub sites: u64,
    pub conversations: u64,
    pub messages: u64,
    pub offline_requests: u64,
    pub visitors: u64,
    /// Writer jobs it took.
    pub batches: u64,
}

/// The cut-off of each site with a retention period (site id, oldest kept time).
async fn cutoffs(store: &dyn Store, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(store
        .list_sites()
        .await?
        .into_iter()
        .filter_map(|site| {
            let days = SiteSettings::parse(&site.settings).retention_days?;
            // At least a day: a period of 0 would delete chats the moment they close.
            Some((site.id, now - i64::from(days.max(1)) * DAY_MS))
        })
        .collect())
}

/// One full sweep at time `now`: every site with a retention period, batch by batch,
/// then the visitors. Each site's deletions are recorded in the audit log (actor
/// `retention`).
pub async fn sweep(
    store: &dyn Store,
    config: &RetentionConfig,
    now: i64,
) -> Result<SweepReport, StoreError> {
    let cutoffs = cutoffs(store, now).await?;
    let budget = RetentionBudget {
        conversations: config.batch_conversations.max(1),
        messages: config.batch_messages.max(1),
    };
    let pause = Duration::from_millis(u64::from(config.pause_ms));
    let mut report = SweepReport {
        sites: cutoffs.len() as u64,
        ..SweepReport::default()
    };
    for (site_id, cutoff) in &cutoffs {
        let mut site_total = RetentionBatch::default();
        loop {
            let batch = store.retention_batch(site_id, *cutoff, budget).await?;
            report.batches += 1;
            site_total.conversations += batch.conversations;
            site_total.messages += batch.messages;
            site_total.offline_requests += batch.offline_requests;
            if !batch.more {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        report.conversations += site_total.conversations;
        report.messages += site_total.messages;
        report.offline_requests += site_total.offline_requests;
        if site_total.conversations + site_total.offline_requests > 0 {
            store
                .record_audit(NewAudit {
                    at: now,
                    actor: "retention".into(),
                    action: "retention.delete".into(),
                    subject: site_id.clone(),
                    detail: serde_json::json!({
                        "closed_before": cutoff,
                        "conversations": site_total.conversations,
                        "messages": site_total.messages,
                        "offline_requests": site_total.offline_requests,
                    })
                    .to_string(),
                })
                .await?;
        }
    }
    if !cutoffs.is_empty() {
        let mut after = 0;
        loop {
            let step = store.sweep_visitors(&cutoffs, after, VISITOR_SCAN).await?;
            report.batches += 1;
            report.visitors += step.deleted;
            match step.next {
                Some(next) => after = next,
                None => break,
            }
            tokio::time::sleep(pause).await;
        }
    }
    Ok(report)
}

/// Runs [`sweep`] in the background every `retention.interval_secs` (the first a
/// minute after the start, or sooner when the interval is shorter) until shutdown,
/// when `retention.enabled`.
pub fn spawn(state: AppState) {
    let config = state.config.retention.clone();
    if !config.enabled {
        return;
    }
    let every = Duration::from_secs(u64::from(config.interval_secs.max(1)));
    let first = every.min(Duration::from_secs(60));
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {}
            }
            // Once per cluster: on the routing owner.
            if !state.leads() {
                continue;
            }
            let run = sweep(&*state.store, &config, now_ms());
            // Stop between two batches when the hub shuts down.
            let report = tokio::select! {
                _ = shutdown.changed() => return,
                report = run => report,
            };
            match report {
                Ok(report)
                    if report.conversations + report.visitors + report.offline_requests > 0 =>
                {
                    tracing::info!(
                        conversations = report.conversations,
                        messages = report.messages,
                        offline_requests = report.offline_requests,
                        visitors = report.visitors,
                        batches = report.batches,
                        "retention sweep deleted old data"
                    );
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "retention sweep failed; it runs again later")
                }
            }
        }
    });
}
