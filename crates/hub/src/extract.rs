//! Identity and permission as axum extractors, so a handler states what it needs in its
//! signature and cannot forget a check:
//!
//! - [`SignedIn`]: the agent of a live session (session cookie or `Authorization:
//!   Bearer`), as the store has them *now*. On a state-changing method made with the
//!   cookie it also requires the CSRF header ([`CsrfChecked`]).
//! - [`Admin`]: a [`SignedIn`] agent whose role is admin (403 otherwise).
//! - [`CsrfChecked`]: a cookie-authenticated state-changing request carries
//!   `x-salam-csrf` (a page on another origin cannot set it without a CORS preflight,
//!   which the hub never grants).
//!
//! Site scope is data, not a type: handlers narrow with [`SignedIn::sites`] and answer
//! another site's object with 404, exactly like a missing one.

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use salam_store::{Agent, AgentRole};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "salam_session";
/// Cookie-authenticated state-changing requests must carry this header.
pub const CSRF_HEADER: &str = "x-salam-csrf";

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Cookie,
    Bearer,
}

/// The session token of a request and how it came.
pub fn session_token(headers: &HeaderMap) -> Option<(String, Credential)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some((token.trim().to_owned(), Credential::Bearer));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| (token.to_owned(), Credential::Cookie))
}

/// The signed-in agent of a request.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub agent: Agent,
    /// The SHA-256 of the session token (what the store keeps).
    pub session: String,
    pub credential: Credential,
    /// When the session expires (ms since the epoch).
    pub expires_at: i64,
}

impl SignedIn {
    /// Reads the session from the headers and the store.
    pub async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<SignedIn, ApiError> {
        let (token, credential) = session_token(headers).ok_or_else(ApiError::unauthorized)?;
        if token.is_empty() || token.len() > 200 {
            return Err(ApiError::unauthorized());
        }
        let session = crate::auth::session_hash(&token);
        let (agent, expires_at) = state
            .store
            .session_agent(&session, now_ms())
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(SignedIn {
            agent,
            session,
            credential,
            expires_at,
        })
    }

    /// The sites this agent works on now (admins and "all sites" members: every site).
    pub fn sites(&self, state: &AppState) -> Vec<String> {
        state.authority.sites_of(&self.agent)
    }

    /// Narrows to one site when `site` is given (404 when it is not one of theirs).
    pub fn narrow(&self, state: &AppState, site: Option<&String>) -> Result<Vec<String>, ApiError> {
        let sites = self.sites(state);
        match site {
            Some(site) if sites.contains(site) => Ok(vec![site.clone()]),
            Some(_) => Err(ApiError::not_found()),
            None => Ok(sites),
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<SignedIn, ApiError> {
        let signed_in = SignedIn::from_headers(state, &parts.headers).await?;
        CsrfChecked::check(&parts.method, signed_in.credential, &parts.headers)?;
        Ok(signed_in)
    }
}

/// An admin.
#[derive(Debug, Clone)]
pub struct Admin(pub SignedIn);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let signed_in = SignedIn::from_request_parts(parts, state).await?;
        if signed_in.agent.role != AgentRole::Admin {
            return Err(ApiError::forbidden("admins only"));
        }
        Ok(Admin(signed_in))
    }
}

/// The CSRF check of a state-changing request made with the session cookie.
#[derive(Debug, Clone, Copy)]
pub struct CsrfChecked;

impl CsrfChecked {
    /// Passes safe methods, bearer tokens, and cookie requests with the header.
    pub fn check(
        method: &Method,
        credential: Credential,
        headers: &HeaderMap,
    ) -> Result<CsrfChecked, ApiError> {
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if credential == Credential::Cookie && !safe && headers.get(CSRF_HEADER).is_none() {
            return Err(ApiError::forbidden("missing the x-salam-csrf header"));
        }
        Ok(CsrfChecked)
    }
}

impl FromRequestParts<AppState> for CsrfChecked {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<CsrfChecked, ApiError> {
        let credential = session_token(&parts.headers)
            .map(|(_, credential)| credential)
            .unwrap_or(Credential::Bearer);
        CsrfChecked::check(&parts.method, credential, &parts.headers)
    }
}
