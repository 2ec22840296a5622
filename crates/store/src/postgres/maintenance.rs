//! Retention, a visitor's export and erasure, the audit log (SQLite:
//! `crate::maintenance`), visitor events, the customer timeline and trigger counts.

use super::PostgresStore;
use crate::*;

pub(super) async fn retention_batch(
    store: &PostgresStore,
    site_id: &str,
    closed_before: i64,
    budget: RetentionBudget,
) -> Result<RetentionBatch, StoreError> {
    let _ = (store, site_id, closed_before, budget);
    Err(super::unported("retention_batch"))
}

pub(super) async fn sweep_visitors(
    store: &PostgresStore,
    cutoffs: &[(String, i64)],
    after: i64,
    scan: u32,
) -> Result<VisitorSweep, StoreError> {
    let _ = (store, cutoffs, after, scan);
    Err(super::unported("sweep_visitors"))
}

pub(super) async fn find_visitors(
    store: &PostgresStore,
    selector: &VisitorSelector,
) -> Result<Vec<String>, StoreError> {
    let _ = (store, selector);
    Err(super::unported("find_visitors"))
}

pub(super) async fn export_visitor(
    store: &PostgresStore,
    visitor_id: &str,
) -> Result<Option<VisitorRecord>, StoreError> {
    let _ = (store, visitor_id);
    Err(super::unported("export_visitor"))
}

pub(super) async fn erase_visitor(
    store: &PostgresStore,
    visitor_id: &str,
    note: AuditNote,
) -> Result<Erasure, StoreError> {
    let _ = (store, visitor_id, note);
    Err(super::unported("erase_visitor"))
}

pub(super) async fn record_audit(store: &PostgresStore, entry: NewAudit) -> Result<(), StoreError> {
    let _ = (store, entry);
    Err(super::unported("record_audit"))
}

pub(super) async fn audit_log(
    store: &PostgresStore,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let _ = (store, limit);
    Err(super::unported("audit_log"))
}

pub(super) async fn record_visitor_event(
    store: &PostgresStore,
    event: NewVisitorEvent,
) -> Result<(), StoreError> {
    let _ = (store, event);
    Err(super::unported("record_visitor_event"))
}

pub(super) async fn visitor_events(
    store: &PostgresStore,
    visitor_ids: Vec<String>,
    limit: u32,
) -> Result<Vec<VisitorEvent>, StoreError> {
    let _ = (store, visitor_ids, limit);
    Err(super::unported("visitor_events"))
}

pub(super) async fn customer_timeline(
    store: &PostgresStore,
    query: TimelineQuery,
) -> Result<Option<Timeline>, StoreError> {
    let _ = (store, query);
    Err(super::unported("customer_timeline"))
}

pub(super) async fn trigger_counts(
    store: &PostgresStore,
    site_id: &str,
    since: i64,
    until: i64,
) -> Result<Vec<TriggerCount>, StoreError> {
    let _ = (store, site_id, since, until);
    Err(super::unported("trigger_counts"))
}
