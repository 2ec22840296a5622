//! The REST API's error: an HTTP status and a stable code; causes are logged, never
//! sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salam_protocol::ErrorCode;
use salam_store::StoreError;
use serde_json::json;

/// An API error, answered as `{"error": CODE, "message": TEXT}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: &'static str,
    /// Seconds, sent as `Retry-After` (429 and 503).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: &'static str) -> ApiError {
        ApiError {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    /// 429 `rate_limited` with `Retry-After` (whole seconds, at least 1).
    pub fn too_many(message: &'static str, retry_after: std::time::Duration) -> ApiError {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                message,
            )
        }
    }

    /// 401: no valid session.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "sign in first",
        )
    }

    /// 404, also for another site's object (no probing of ids).
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "not found")
    }

    /// 400 with a reason.
    pub fn bad(message: &'static str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadField, message)
    }

    /// 403: an admin action for an agent, or a missing CSRF header.
    pub fn forbidden(message: &'static str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        tracing::warn!(error = %err, "api request failed in the store");
        let code = crate::conversation::store_code(&err);
        let status = match code {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, code, "request failed")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.code.as_str(), "message": self.message })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
