//! v1 offline requests (list, mark done), reports (the console's figures for the
//! token's site and a period), the token's own site, and (admin tokens) the site's
//! tokens.

use super::{AdminScope, ApiCaller, ErrorBody, Read, Write};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salam_protocol::ErrorCode;
use salam_store::{OfflineRequest, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

fn bad_query(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadField, message)
}

/// Contact details a visitor left for a callback.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineRequestV1 {
    pub id: i64,
    pub visitor_id: String,
    /// The conversation it was left in, if any.
    pub conversation_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it was marked done (`null`: still to follow up).
    pub done_at: Option<i64>,
}

impl From<OfflineRequest> for OfflineRequestV1 {
    fn from(request: OfflineRequest) -> OfflineRequestV1 {
        OfflineRequestV1 {
            id: request.id,
            visitor_id: request.visitor_id,
            conversation_id: request.conversation,
            name: request.name,
            email: request.email,
            phone: request.phone,
            message: request.message,
            created_at: request.created_at,
            done_at: request.done_at,
        }
    }
}

/// A page of offline requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineRequestList {
    pub requests: Vec<OfflineRequestV1>,
    /// Pass as `before` for the next page; `null` when this page is the last.
    pub next_before: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OfflineParams {
    /// Requests with ids below this one (the `next_before` of the previous page).
    #[param(minimum = 1)]
    before: Option<i64>,
    /// Requests per page (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// Lists the site's offline requests (callbacks), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/offline-requests",
    operation_id = "list_offline_requests",
    tag = "offline requests",
    params(OfflineParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of offline requests", body = OfflineRequestList),
        (status = 400, description = "A query parameter is malformed", body = ErrorBody),
    )
)]
pub async fn offline_requests(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Query(params): Query<OfflineParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit must be 1 to 500"));
    }
    if params.before.is_some_and(|before| before < 1) {
        return Err(bad_query("before must be 1 or more"));
    }
    let page = Page {
        before: params.before,
        limit,
    };
    let found = state
        .store
        .offline_requests(&[caller.site_id().to_owned()], page)
        .await?;
    let next_before = (found.len() as u32 >= limit)
        .then(|| found.last().map(|last| last.id))
        .flatten();
    Ok(Json(OfflineRequestList {
        requests: found.into_iter().map(OfflineRequestV1::from).collect(),
        next_before,
    })
    .into_response())
}

/// Marks an offline request done (again: no change).
#[utoipa::path(
    post,
    path = "/api/v1/offline-requests/{id}/done",
    operation_id = "mark_offline_request_done",
    tag = "offline requests",
    params(("id" = i64, Path, description = "The request's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request as it is now", body = OfflineRequestV1),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 404, description = "No such request in this site", body = ErrorBody),
    )
)]
pub async fn offline_request_done(
    State(state): State<AppState>,
    caller: ApiCaller<Write>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let site = [caller.site_id().to_owned()];
    let visible = state.store.offline_requests(&site, Page::at(id)).await?;
    if !visible.iter().any(|request| request.id == id) {
        return Err(ApiError::not_found());
    }
    state.store.offline_request_done(id, now_ms()).await?;
    let now = state
        .store
        .offline_requests(&site, Page::at(id))
        .await?
        .into_iter()
        .find(|request| request.id == id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(OfflineRequestV1::from(now)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// The period's start, ms since the Unix epoch (default: 30 days before `to`).
    #[param(minimum = 0)]
    from: Option<i64>,
    /// The period's end, ms since the Unix epoch (default: now).
    #[param(minimum = 0)]
    to: Option<i64>,
}

/// The site's report over a period (the console's figures).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportV1 {
    pub from: i64,
    pub to: i64,
    /// Conversations created in the period.
    pub conversations: u64,
    /// Of those, conversations the bot took part in.
    pub bot_conversations: u64,
    /// Of those, conversations never handed to a person.
    pub deflected: u64,
    pub deflection_rate: Option<f64>,
    /// `[[reason, count], …]`.
    pub handoffs_by_reason: serde_json::Value,
    /// `{median, p90, count, target_ms, within_target}` (ms).
    pub first_response_ms: serde_json::Value,
    /// `{median, p90, count}` (ms).
    pub resolution_ms: serde_json::Value,
    /// First responses of key accounts apart from the rest (issue 19):
    /// `{first_response_ms: {median, p90, count, within_target},
    /// others_first_response_ms: {…}}` (ms).
    pub key_accounts: serde_json::Value,
    /// `{average, count, distribution: [n1, …, n5]}`.
    pub satisfaction: serde_json::Value,
    /// The questions the bot could not answer, grouped.
    pub unanswered_clusters: serde_json::Value,
    /// `[[question, count], …]`, most frequent first.
    pub unanswered: serde_json::Value,
}

/// The site's report for a period.
#[utoipa::path(
    get,
    path = "/api/v1/reports",
    operation_id = "get_report",
    tag = "reports",
    params(ReportParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The figures", body = ReportV1),
        (status = 400, description = "A negative time", body = ErrorBody),
    )
)]
pub async fn reports(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    let to = params.to.unwrap_or_else(now_ms);
    let from = params
        .from
        .unwrap_or_else(|| to.saturating_sub(30 * 24 * 3_600_000).max(0));
    // A period whose start is after its end is empty (its figures are zeros).
    if from < 0 || to < 0 {
        return Err(bad_query("from and to are times in ms since the epoch"));
    }
    let figures =
        crate::api::report_figures(&state, &[caller.site_id().to_owned()], from, to).await?;
    Ok(Json(figures).into_response())
}

/// The token's site and scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteV1 {
    pub id: String,
    pub name: String,
    /// The widget's site key.
    pub key: String,
    /// The token's name and scope.
    pub token_name: String,
    pub scope: ScopeV1,
}

/// What a token may do: `read` ⊂ `write` ⊂ `admin`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeV1 {
    Read,
    Write,
    Admin,
}

impl From<salam_store::ApiScope> for ScopeV1 {
    fn from(scope: salam_store::ApiScope) -> ScopeV1 {
        match scope {
            salam_store::ApiScope::Read => ScopeV1::Read,
            salam_store::ApiScope::Write => ScopeV1::Write,
            salam_store::ApiScope::Admin => ScopeV1::Admin,
        }
    }
}

/// Which site this token is of, and its scope.
#[utoipa::path(
    get,
    path = "/api/v1/site",
    operation_id = "get_site",
    tag = "site",
    security(("bearer" = [])),
    responses((status = 200, description = "The token's site", body = SiteV1))
)]
pub async fn site(
    State(state): State<AppState>,
    caller: ApiCaller<Read>,
) -> Result<Response, ApiError> {
    let site = state
        .store
        .site_by_id(caller.site_id())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(SiteV1 {
        id: site.id,
        name: site.name,
        key: site.key,
        token_name: caller.token.name.clone(),
        scope: caller.token.scope.into(),
    })
    .into_response())
}

/// An API token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenV1 {
    pub id: String,
    pub name: String,
    pub scope: ScopeV1,
    /// The agent who created it.
    pub created_by: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// `null` while it is live.
    pub revoked_at: Option<i64>,
}

/// The site's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenV1>,
}

/// The site's API tokens, revoked ones too (admin tokens only).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    operation_id = "list_tokens",
    tag = "site",
    security(("bearer" = [])),
    responses((status = 200, description = "The site's tokens, newest first", body = TokenList))
)]
pub async fn tokens(
    State(state): State<AppState>,
    caller: ApiCaller<AdminScope>,
) -> Result<Response, ApiError> {
    let tokens = state
        .store
        .api_tokens(caller.site_id())
        .await?
        .into_iter()
        .map(|token| TokenV1 {
            id: token.id,
            name: token.name,
            scope: token.scope.into(),
            created_by: token.created_by,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
            revoked_at: token.revoked_at,
        })
        .collect();
    Ok(Json(TokenList { tokens }).into_response())
}
