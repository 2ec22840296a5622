//! A visitor's data on request: find them (by visitor id, the site's customer id or an
//! e-mail address), export everything stored about them as one JSON document, or erase
//! it. The same functions serve `salam visitor export|erase` and the console's admin
//! REST calls ([`crate::operations`]).
//!
//! Key design decision: **an erasure deletes, in one transaction with its audit entry.**
//! Conversations, messages (and so the last-message preview and what the console's
//! search reads), bot turns quoting the visitor, ratings with their comments, alerts
//! quoting those, callbacks and the profile are deleted, with SQLite's
//! `secure_delete` on, after each conversation's anonymous report facts are kept; the
//! audit log records who, when, which visitor id and how many rows, never the e-mail
//! used to find them. The hub logs ids only, never message text, names or e-mail
//! addresses, so its logs hold nothing to erase. An erasure refuses while one of the
//! visitor's conversations is open; the console closes them first.

use salam_store::{
    AuditNote, Erased, Erasure, NewAudit, Store, StoreError, VisitorRecord, VisitorSelector,
};
use serde::Serialize;

/// Why a request for a visitor's data could not be done.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// Not exactly one of visitor id, customer id and e-mail was given.
    #[error("name the visitor by exactly one of: visitor id, customer id, e-mail")]
    Selector,
    /// Nothing is stored for that visitor.
    #[error("no visitor matches")]
    NotFound,
    /// These conversations of the visitor are open; nothing was erased from them.
    #[error("the visitor has open conversations ({}); close them first", .0.join(", "))]
    Open(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds a selector from exactly one of `visitor`, `external_id` and `email`
/// (`site` narrows a customer id to one site).
pub fn selector(
    visitor: Option<String>,
    external_id: Option<String>,
    email: Option<String>,
    site: Option<String>,
) -> Result<VisitorSelector, PrivacyError> {
    let given =
        |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match (given(visitor), given(external_id), given(email)) {
        (Some(id), None, None) => Ok(VisitorSelector::Id(id)),
        (None, Some(external_id), None) => Ok(VisitorSelector::ExternalId {
            external_id,
            site_id: given(site),
        }),
        (None, None, Some(email)) if email.contains('@') => Ok(VisitorSelector::Email(email)),
        _ => Err(PrivacyError::Selector),
    }
}

/// The export document: everything stored about every visitor the selector matched.
#[derive(Debug, Clone, Serialize)]
pub struct VisitorExport {
    /// `salam-visitor-export/1`.
    pub format: &'static str,
    pub exported_at: i64,
    /// How they were found: `visitor_id`, `external_id` or `email`.
    pub selector: &'static str,
    pub visitors: Vec<VisitorRecord>,
}

/// Exports everything stored about the visitors `selector` matches, and records the
/// export in the audit log (one entry per visitor).
pub async fn export(
    store: &dyn Store,
    selector: &VisitorSelector,
    actor: &str,
    now: i64,
) -> Result<VisitorExport, PrivacyError> {
    let mut visitors = Vec::new();
    for visitor_id in store.find_visitors(selector).await? {
        if let Some(record) = store.export_visitor(&visitor_id).await? {
            visitors.push(record);
        }
    }
    if visitors.is_empty() {
        return Err(PrivacyError::NotFound);
    }
    for record in &visitors {
        store
            .record_audit(NewAudit {
                at: now,
                actor: actor.to_owned(),
                action: "visitor.export".into(),
                subject: record.visitor_id.clone(),
                detail: serde_json::json!({
                    "selector": selector.kind(),
                    "conversations": record.conversations.len(),
                    "offline_requests": record.offline_requests.len(),
                })
                .to_string(),
            })
            .await?;
    }
    Ok(VisitorExport {
        format: "salam-visitor-export/1",
        exported_at: now,
        selector: selector.kind(),
        visitors,
    })
}

/// What an erasure deleted, per visitor and in total.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErasureReport {
    pub visitors: Vec<ErasedVisitor>,
    pub total: Erased,
}

/// One erased visitor.
#[derive(Debug, Clone, Serialize)]
pub struct ErasedVisitor {
    pub visitor_id: String,
    pub erased: Erased,
}

/// Erases every visitor `selector` matches (see the module docs). Visitors with an
/// open conversation are left as they are and reported in [`PrivacyError::Open`]
/// after the others are erased; running it again once those are closed finishes the
/// job.
pub async fn erase(
    store: &dyn Store,
    selector: &VisitorSelector,
    actor: &str,
    now: i64,
) -> Result<ErasureReport, PrivacyError> {
    let visitor_ids = store.find_visitors(selector).await?;
    if visitor_ids.is_empty() {
        return Err(PrivacyError::NotFound);
    }
    let mut report = ErasureReport::default();
    let mut open = Vec::new();
    for visitor_id in visitor_ids {
        let note = AuditNote {
            actor: actor.to_owned(),
            selector: selector.kind(),
            at: now,
        };
        match store.erase_visitor(&visitor_id, note).await? {
            Erasure::Erased(erased) => {
                report.total.visitors += erased.visitors;
                report.total.conversations += erased.conversations;
                report.total.messages += erased.messages;
                report.total.offline_requests += erased.offline_requests;
                report.total.contacts += erased.contacts;
                report.visitors.push(ErasedVisitor { visitor_id, erased });
            }
            Erasure::Open(conversations) => open.extend(conversations),
        }
    }
    if !open.is_empty() {
        return Err(PrivacyError::Open(open));
    }
    Ok(report)
}
