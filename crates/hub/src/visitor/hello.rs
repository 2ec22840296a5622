//! `hello`: the handshake. Checks the site key, the page's origin and the visitor
//! token, records the visit (and the page, [`super::pages`]), and answers `welcome`
//! with the visitor's open conversations, which the connection then follows.

use super::{Session, VisitorEndpoint};
use crate::clock::now_ms;
use crate::conversation;
use crate::fanout::{Outbound, reason};
use crate::site::SiteSettings;
use crate::ws::{Flow, Link, close_code};
use salam_protocol::{ErrorCode, PROTOCOL_VERSION, PageInfo, Role, ServerFrame, Team};
use salam_store::{Site, VisitorUpdate};
use std::collections::HashSet;

/// Whether `origin` may open a visitor socket for `site`.
pub fn origin_allowed(site: &Site, origin: Option<&str>, allow_any: bool) -> bool {
    site.origins.iter().any(|allowed| {
        (allowed == "*" && allow_any)
            || origin
                .is_some_and(|origin| origin.eq_ignore_ascii_case(allowed.trim_end_matches('/')))
    })
}

/// How long after it closed a conversation is still listed in `welcome`.
const RECENT_CLOSED_MS: i64 = 30 * 24 * 3600 * 1000;

/// What a refused page is told, as the `message` of `origin_not_allowed`.
pub const ORIGIN_REFUSED: &str = "chat is not enabled on this page";

/// Records that `site` refused `origin` (for its admins) and logs it, at most once per
/// site and origin in 10 minutes.
pub fn note_refused_origin(state: &crate::state::AppState, site: &Site, origin: Option<&str>) {
    let origin = origin.unwrap_or("null");
    if state.refused_origins.record(&site.id, origin, now_ms()) {
        tracing::warn!(
            site = %site.id,
            site_key = %site.key,
            origin = %origin.chars().take(200).collect::<String>(),
            "visitor socket refused: the page's origin is not allowed for the site \
             (add it to the site's origins to enable chat there)"
        );
    }
}

pub(super) async fn handle(
    endpoint: &VisitorEndpoint,
    link: &mut Link,
    v: u32,
    site_key: String,
    token: Option<String>,
    locale: Option<String>,
    page: Option<PageInfo>,
) -> Result<Session, Flow> {
    let state = link.state.clone();
    if v != PROTOCOL_VERSION {
        link.error(
            ErrorCode::UnsupportedVersion,
            &format!("this hub speaks protocol version {PROTOCOL_VERSION}"),
            None,
        )
        .await;
        return Err(Flow::Close(close_code::POLICY, "unsupported version"));
    }
    let site = match state.store.site_by_key(&site_key).await {
        Ok(Some(site)) => site,
        Ok(None) => {
            link.error(ErrorCode::UnknownSite, "no site has this key", None)
                .await;
            return Err(Flow::Close(close_code::POLICY, "unknown site"));
        }
        Err(err) => {
            link.error(conversation::store_code(&err), "try again later", None)
                .await;
            return Err(Flow::Close(close_code::RECONNECT, "store unavailable"));
        }
    };
    if !origin_allowed(
        &site,
        endpoint.origin.as_deref(),
        state.config.auth.allow_any_origin,
    ) {
        note_refused_origin(&state, &site, endpoint.origin.as_deref());
        link.error(ErrorCode::OriginNotAllowed, ORIGIN_REFUSED, None)
            .await;
        return Err(Flow::Close(close_code::POLICY, "origin not allowed"));
    }
    // Only a returning visitor (with a token) can have a conversation to list.
    let returning = token.is_some();
    let visitor_id = match token {
        Some(token) => match state.secret.verify_visitor_token(&site.id, &token) {
            Some(visitor_id) => visitor_id,
            None => {
                link.error(
                    ErrorCode::Unauthorized,
                    "the visitor token is not valid; connect without one to start afresh",
                    None,
                )
                .await;
                return Err(Flow::Close(close_code::POLICY, "bad token"));
            }
        },
        None => crate::auth::new_visitor_id(),
    };
    let update = VisitorUpdate {
        locale: locale.clone(),
        page: page.clone(),
        user_agent: endpoint.user_agent.clone(),
    };
    if let Err(err) = state
        .store
        .touch_visitor(&visitor_id, &site.id, update, now_ms())
        .await
    {
        link.error(conversation::store_code(&err), "try again later", None)
            .await;
        return Err(Flow::Close(close_code::RECONNECT, "store unavailable"));
    }
    let conversations = match state
        .store
        .open_conversations_of_visitor(&site.id, &visitor_id)
        .await
    {
        Ok(conversations) => conversations,
        Err(err) => {
            link.error(conversation::store_code(&err), "try again later", None)
                .await;
            return Err(Flow::Close(close_code::RECONNECT, "store unavailable"));
        }
    };
    // A returning visitor also sees their last closed conversation (read-only), when it
    // closed within 30 days and nothing open is newer.
    let recent_closed = if returning {
        state
            .store
            .recent_closed_conversation_of_visitor(
                &site.id,
                &visitor_id,
                now_ms() - RECENT_CLOSED_MS,
            )
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "recent closed conversation not read");
                None
            })
    } else {
        None
    };
    let mut session = Session {
        settings: std::sync::Arc::new(SiteSettings::parse(&site.settings)),
        site,
        locale,
        vip: false,
        visitor_id,
        owned: HashSet::new(),
        current: conversations.last().map(|c| c.id.clone()),
    };
    let token = state
        .secret
        .visitor_token(&session.site.id, &session.visitor_id);
    // `welcome` goes first; the subscriptions follow, so it is always the first frame,
    // and what is committed after the list was read reaches the client live or by
    // `resume` from the listed `last_seq`.
    link.send(&ServerFrame::Welcome {
        v: PROTOCOL_VERSION,
        role: Role::Visitor,
        you: session.author(),
        token: Some(token),
        conversations: recent_closed
            .iter()
            .chain(conversations.iter())
            .map(|c| {
                // A visitor's summary carries no agent-side figures.
                let mut summary = c.summary();
                summary.unread = 0;
                summary.preview = None;
                summary
            })
            .collect(),
        heartbeat_secs: state.config.websocket.heartbeat_secs,
        limits: state.wire_limits(),
        sites: Vec::new(),
        presence: None,
        team: Some(Team {
            online: state.routing.view().site(&session.site.id).anyone_online(),
        }),
    })
    .await;
    // Live messages of the listed conversations wait for their `resume`.
    link.push(Outbound::Hold(Box::new(
        conversations
            .iter()
            .map(|c| (c.id.clone(), c.last_seq))
            .collect(),
    )))
    .await;
    for conversation in &conversations {
        session.owned.insert(conversation.id.clone());
        state
            .registry
            .follow(&conversation.id, &link.mailbox, reason::OWNER);
    }
    // The page, for the customer timeline (after `welcome` and the subscriptions: it
    // never delays them).
    super::pages::record(&state, &session.site.id, &session.visitor_id, page.as_ref()).await;
    tracing::debug!(visitor = %session.visitor_id, site = %session.site.id, "visitor connected");
    Ok(session)
}
