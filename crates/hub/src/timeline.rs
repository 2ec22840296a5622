//! The customer timeline (issue 19): `GET /api/visitors/{id}/timeline`, one history of
//! a customer for the console's "Customer history" beside a conversation.
//!
//! The store reads it ([`salam_store::timeline`]): every conversation (chat and e-mail)
//! of every visitor linked to this one by a verified external id (the customer's other
//! browsers and devices), their offline requests and proactive messages, and the pages
//! of this visitor's current session (since the last gap of 30 minutes between page
//! views), newest first, a page at a time. Pages are recorded by
//! [`crate::visitor`]'s `hello` (one per page load).
//!
//! Only agents of the visitor's site read it ([`SignedIn`], narrowed to the sites the
//! agent works on now); another site's visitor answers 404 like a missing one.

use crate::error::ApiError;
use crate::extract::SignedIn;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use salam_store::{TimelineCursor, TimelineQuery};
use serde::Deserialize;
use serde_json::{Value, json};

/// Entries of a page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;

/// The timeline's route, merged into the hub's router ([`crate::http`]).
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/visitors/{id}/timeline", get(timeline))
}

#[derive(Deserialize)]
pub struct TimelineParams {
    /// Entries at most (1 to 200; default 50).
    limit: Option<u32>,
    /// The `next` of the previous page.
    before: Option<String>,
}

/// `GET /api/visitors/{id}/timeline?limit=N&before=CURSOR`.
async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<TimelineParams>,
    me: SignedIn,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=salam_store::timeline::MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad("limit must be between 1 and 200"));
    }
    let before = match params.before.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            TimelineCursor::decode(text)
                .ok_or_else(|| ApiError::bad("before must be the next of an earlier page"))?,
        ),
    };
    // The visitor's site first: nothing of another site's customer is read.
    let visitor = state
        .store
        .visitor(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !state
        .authority
        .sites_of(&me.agent)
        .contains(&visitor.site_id)
    {
        return Err(ApiError::not_found());
    }
    let timeline = state
        .store
        .customer_timeline(TimelineQuery {
            visitor_id: id,
            before,
            limit,
        })
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({
        "visitor": timeline.visitor_id,
        "site": timeline.site_id,
        "identified": timeline.external_id.is_some(),
        "external_id": timeline.external_id,
        "visitors": timeline.visitor_ids,
        "session": {
            "since": timeline.session_since,
            "gap_secs": salam_store::timeline::SESSION_GAP_MS / 1000,
        },
        "entries": timeline.entries,
        "next": timeline.next.map(|cursor| cursor.encode()),
    })))
}
