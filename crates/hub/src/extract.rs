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
//! - [`ClientIp`]: the client's address: the peer's, or for a trusted proxy
//!   (`auth.trusted_proxies`) the last untrusted one of `X-Forwarded-For`.
//!
//! A session ends when it expires (`auth.session_hours`) or when it has not been used
//! for `auth.session_idle_hours`.
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
use std::net::{IpAddr, Ipv4Addr};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "salam_session";
/// A session's last use is written at most this often (a console polls, and a write
/// per request would be wasted).
const TOUCH_EVERY_MS: i64 = 5 * 60 * 1000;
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
        let now = now_ms();
        let found = state
            .store
            .session_agent(&session, now)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let idle_ms = i64::from(state.config.auth.session_idle_hours.max(1)) * 3_600_000;
        if now - found.last_seen > idle_ms {
            // Idle too long: the session ends, as if signed out.
            state.store.delete_session(&session).await?;
            return Err(ApiError::unauthorized());
        }
        if now - found.last_seen > TOUCH_EVERY_MS {
            state.store.touch_session(&session, now).await?;
        }
        Ok(SignedIn {
            agent: found.agent,
            session,
            credential,
            expires_at: found.expires_at,
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

/// The client's address (see the module docs); `0.0.0.0` when the router is called
/// without a server (in-process tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// From a request's parts.
    pub fn of(state: &AppState, parts: &Parts) -> ClientIp {
        ClientIp(client_ip(state, &parts.extensions, &parts.headers))
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ClientIp, std::convert::Infallible> {
        Ok(ClientIp::of(state, parts))
    }
}

/// Whether the request came over HTTPS ([`is_https`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Https(pub bool);

impl FromRequestParts<AppState> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Https, std::convert::Infallible> {
        Ok(Https(is_https(state, &parts.extensions, &parts.headers)))
    }
}

fn trusted(state: &AppState, ip: IpAddr) -> bool {
    state
        .config
        .auth
        .trusted_proxies
        .iter()
        .any(|proxy| proxy.contains(ip))
}

/// The client's address: the peer, or behind trusted proxies the last address of
/// `X-Forwarded-For` that is not one of them.
pub fn client_ip(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> IpAddr {
    let Some(peer) = crate::server::peer(extensions).map(|addr| addr.ip()) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    if !trusted(state, peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .copied()
        .find(|ip| !trusted(state, *ip))
        .unwrap_or(peer)
}

/// Whether the request came over HTTPS: `auth.secure_cookie` forces it; otherwise
/// `X-Forwarded-Proto: https` from a trusted proxy says so.
pub fn is_https(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> bool {
    if state.config.auth.secure_cookie {
        return true;
    }
    let from_proxy = crate::server::peer(extensions).is_some_and(|addr| trusted(state, addr.ip()));
    from_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}
