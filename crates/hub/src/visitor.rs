//! `/ws/visitor`: the widget's endpoint.
//!
//! A visitor proves who they are with the signed token from an earlier `welcome`; the
//! hub refuses a token it did not sign, and a visitor can only ever touch conversations
//! whose `visitor_id` is theirs.

use crate::fanout::{Audience, Outbound};
use crate::service;
use crate::site::SiteSettings;
use crate::state::now_ms;
use crate::ws::{Endpoint, Flow, Link, close_code};
use salam_protocol::{
    Author, AuthorKind, ConversationState, ErrorCode, MessageKind, PROTOCOL_VERSION, Role,
    ServerFrame, VisitorFrame,
};
use salam_store::{Conversation, NewMessage, Site, VisitorUpdate};
use std::collections::HashSet;
use tracing::Instrument;

/// The endpoint's state for one connection.
pub struct VisitorEndpoint {
    /// The `Origin` header of the upgrade request.
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    session: Option<Session>,
}

struct Session {
    site: Site,
    settings: std::sync::Arc<SiteSettings>,
    /// The widget's locale (from `hello`).
    locale: Option<String>,
    /// A VIP (identified, on the site's list): skips the bot.
    vip: bool,
    visitor_id: String,
    /// Conversations known to be this visitor's.
    owned: HashSet<String>,
    /// The open conversation a `send` without `conversation` goes to.
    current: Option<String>,
}

impl Session {
    fn author(&self) -> Author {
        Author {
            kind: AuthorKind::Visitor,
            id: Some(self.visitor_id.clone()),
            name: None,
        }
    }
}

/// Whether `origin` may open a visitor socket for `site`.
pub fn origin_allowed(site: &Site, origin: Option<&str>, allow_any: bool) -> bool {
    site.origins.iter().any(|allowed| {
        (allowed == "*" && allow_any)
            || origin
                .is_some_and(|origin| origin.eq_ignore_ascii_case(allowed.trim_end_matches('/')))
    })
}

impl VisitorEndpoint {
    pub fn new(origin: Option<String>, user_agent: Option<String>) -> VisitorEndpoint {
        VisitorEndpoint {
            origin,
            user_agent,
            session: None,
        }
    }

    async fn hello(
        &mut self,
        link: &mut Link,
        v: u32,
        site_key: String,
        token: Option<String>,
        locale: Option<String>,
        page: Option<salam_protocol::PageInfo>,
    ) -> Flow {
        let state = link.state.clone();
        if v != PROTOCOL_VERSION {
            link.error(
                ErrorCode::UnsupportedVersion,
                &format!("this hub speaks protocol version {PROTOCOL_VERSION}"),
                None,
            )
            .await;
            return Flow::Close(close_code::POLICY, "unsupported version");
        }
        let site = match state.store.site_by_key(&site_key).await {
            Ok(Some(site)) => site,
            Ok(None) => {
                link.error(ErrorCode::UnknownSite, "no site has this key", None)
                    .await;
                return Flow::Close(close_code::POLICY, "unknown site");
            }
            Err(err) => {
                link.error(service::store_code(&err), "try again later", None)
                    .await;
                return Flow::Close(close_code::RECONNECT, "store unavailable");
            }
        };
        if !origin_allowed(
            &site,
            self.origin.as_deref(),
            state.config.auth.allow_any_origin,
        ) {
            link.error(
                ErrorCode::Forbidden,
                "this page's origin is not allowed for the site",
                None,
            )
            .await;
            return Flow::Close(close_code::POLICY, "origin not allowed");
        }
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
                    return Flow::Close(close_code::POLICY, "bad token");
                }
            },
            None => crate::auth::new_visitor_id(),
        };
        let update = VisitorUpdate {
            locale: locale.clone(),
            page,
            user_agent: self.user_agent.clone(),
        };
        if let Err(err) = state
            .store
            .touch_visitor(&visitor_id, &site.id, update, now_ms())
            .await
        {
            link.error(service::store_code(&err), "try again later", None)
                .await;
            return Flow::Close(close_code::RECONNECT, "store unavailable");
        }
        let conversations = match state
            .store
            .open_conversations_of_visitor(&site.id, &visitor_id)
            .await
        {
            Ok(conversations) => conversations,
            Err(err) => {
                link.error(service::store_code(&err), "try again later", None)
                    .await;
                return Flow::Close(close_code::RECONNECT, "store unavailable");
            }
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
        // `welcome` goes first; the subscriptions follow (see the agent endpoint).
        link.send(&ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            role: Role::Visitor,
            you: session.author(),
            token: Some(token),
            conversations: conversations.iter().map(|c| c.summary()).collect(),
            heartbeat_secs: state.config.websocket.heartbeat_secs,
            limits: state.wire_limits(),
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
                .subscribe_conversation(&conversation.id, link.mailbox.clone());
        }
        tracing::debug!(visitor = %session.visitor_id, site = %session.site.id, "visitor connected");
        self.session = Some(session);
        Flow::Continue
    }
}

impl Endpoint for VisitorEndpoint {
    async fn on_text(&mut self, link: &mut Link, text: &str) -> Flow {
        let frame = match salam_protocol::decode_visitor(text) {
            Ok(frame) => frame,
            Err(err) => {
                link.error(err.code, &err.message, None).await;
                return Flow::Continue;
            }
        };
        if !link.allow() {
            let client_id = match &frame {
                VisitorFrame::Send { client_id, .. } => Some(client_id.clone()),
                _ => None,
            };
            link.error(
                ErrorCode::RateLimited,
                "too many frames; this one was dropped",
                client_id,
            )
            .await;
            return Flow::Continue;
        }
        match frame {
            VisitorFrame::Ping { nonce } => {
                link.send(&ServerFrame::Pong { nonce }).await;
                Flow::Continue
            }
            VisitorFrame::Hello {
                v,
                site,
                token,
                locale,
                page,
            } => {
                if self.session.is_some() {
                    link.error(ErrorCode::AlreadyGreeted, "hello was already sent", None)
                        .await;
                    return Flow::Continue;
                }
                // Boxed: the handshake's state would otherwise sit in every idle
                // connection's future.
                Box::pin(self.hello(link, v, site, token, locale, page)).await
            }
            other => {
                let Some(session) = self.session.as_mut() else {
                    link.error(
                        ErrorCode::HelloRequired,
                        "send hello before anything else",
                        None,
                    )
                    .await;
                    return Flow::Continue;
                };
                let span = tracing::debug_span!("visitor", visitor = %session.visitor_id);
                match other {
                    VisitorFrame::Send {
                        client_id,
                        text,
                        conversation,
                    } => {
                        Box::pin(
                            send(session, link, client_id, text, conversation).instrument(span),
                        )
                        .await
                    }
                    other => {
                        Box::pin(handle(session, link, other).instrument(span)).await;
                        Flow::Continue
                    }
                }
            }
        }
    }

    async fn on_close(&mut self, link: &Link) {
        if let Some(session) = &self.session {
            for conversation in &session.owned {
                link.state
                    .registry
                    .unsubscribe_conversation(conversation, link.connection);
            }
        }
    }
}

/// Whether `conversation` is this visitor's; learns it from the store on first use.
async fn owns(session: &mut Session, link: &Link, conversation: &str) -> bool {
    if session.owned.contains(conversation) {
        return true;
    }
    match link.state.store.conversation(conversation).await {
        Ok(Some(found))
            if found.visitor_id == session.visitor_id && found.site_id == session.site.id =>
        {
            session.owned.insert(found.id.clone());
            link.state
                .registry
                .subscribe_conversation(&found.id, link.mailbox.clone());
            true
        }
        _ => false,
    }
}

async fn refuse(link: &Link, client_id: Option<String>) {
    // The same answer for "not yours" and "does not exist": no probing of ids.
    link.error(
        ErrorCode::Forbidden,
        "not a conversation of this visitor",
        client_id,
    )
    .await;
}

/// A visitor's message: checked, queued for commit, then (deferred) acknowledged,
/// delivered and answered by the bot or handed off.
async fn send(
    session: &mut Session,
    link: &mut Link,
    client_id: String,
    text: String,
    conversation: Option<String>,
) -> Flow {
    let state = link.state.clone();

    if let Err((code, message)) =
        service::check_client_id(&client_id).and(service::check_text(&state, &text))
    {
        link.error(code, &message, Some(client_id)).await;
        return Flow::Continue;
    }
    // A new conversation that skips the bot (VIP, or bot off) is handed off once
    // the first message is stored.
    let mut direct: Option<Conversation> = None;
    let conversation_id = match conversation {
        Some(conversation) => {
            if !owns(session, link, &conversation).await {
                refuse(link, Some(client_id)).await;
                return Flow::Continue;
            }
            conversation
        }
        None => match &session.current {
            Some(current) => current.clone(),
            None => {
                let initial = if session.settings.bot && !session.vip {
                    ConversationState::Bot
                } else {
                    ConversationState::Queued
                };
                let created = match state
                    .store
                    .create_conversation(&session.site.id, &session.visitor_id, initial, now_ms())
                    .await
                {
                    Ok(created) => created,
                    Err(err) => {
                        link.error(
                            service::store_code(&err),
                            service::store_message(&err),
                            Some(client_id),
                        )
                        .await;
                        return Flow::Continue;
                    }
                };
                session.owned.insert(created.id.clone());
                session.current = Some(created.id.clone());
                state
                    .registry
                    .subscribe_conversation(&created.id, link.mailbox.clone());
                service::announce(&state, &created);
                if initial == ConversationState::Queued {
                    direct = Some(created.clone());
                }
                created.id
            }
        },
    };
    let span = tracing::debug_span!("send", conversation = %conversation_id);
    let new_message = NewMessage {
        conversation: conversation_id,
        kind: MessageKind::Text,
        author: session.author(),
        text,
        client_id: Some(client_id),
        quick_replies: Vec::new(),
        rule: None,
        at: now_ms(),
    };
    let text = new_message.text.clone();
    let conversation_id = new_message.conversation.clone();
    let client_id = new_message.client_id.clone().unwrap_or_default();
    let replier = link.replier();
    let Some(pending) = service::enqueue_from_client(&replier, new_message).await else {
        return Flow::Continue;
    };
    // The rest waits for the commit; meanwhile the connection reads on, so pipelined
    // sends share a group commit.
    let site_id = session.site.id.clone();
    let settings = session.settings.clone();
    let locale = session.locale.clone();
    let vip = session.vip;
    Flow::Defer(Box::pin(
        async move {
            let state = &replier.state;
            let appended =
                service::finish_from_client(&replier, &site_id, client_id, pending).await;
            let Some(appended) = appended.filter(|appended| !appended.duplicate) else {
                return;
            };
            match direct {
                Some(created) => {
                    let (reason, priority) = if vip {
                        ("vip", state.config.routing.vip_priority)
                    } else {
                        ("direct", 0)
                    };
                    let lang = salam_bot::detect_language(&text)
                        .or_else(|| locale.as_deref().and_then(salam_bot::Lang::parse))
                        .unwrap_or(salam_bot::Lang::En);
                    if let Err(err) =
                        service::hand_off(state, &settings, &created, "", priority, reason, lang)
                            .await
                    {
                        tracing::warn!(error = %err, "handoff not stored");
                    }
                }
                // Only a conversation still with the bot is read again (relayed
                // messages cost no read).
                None if appended.state == ConversationState::Bot => {
                    run_bot(state, &settings, &conversation_id, &text, locale.as_deref()).await;
                }
                None => {}
            }
        }
        .instrument(span),
    ))
}

async fn handle(session: &mut Session, link: &mut Link, frame: VisitorFrame) {
    let state = link.state.clone();
    match frame {
        // Dispatched before this function.
        VisitorFrame::Hello { .. } | VisitorFrame::Ping { .. } | VisitorFrame::Send { .. } => {}
        VisitorFrame::Rate {
            conversation,
            score,
            comment,
        } => rate(session, link, conversation, score, comment).await,
        VisitorFrame::Contact {
            conversation,
            name,
            email,
            phone,
            message,
        } => {
            contact(session, link, conversation, name, email, phone, message).await;
        }
        VisitorFrame::Identify {
            id,
            name,
            email,
            hash,
        } => identify(session, link, id, name, email, hash).await,
        VisitorFrame::Resume {
            conversation,
            after,
        } => {
            if !owns(session, link, &conversation).await {
                refuse(link, None).await;
                return;
            }
            link.push(Outbound::Resume(Box::new((conversation, after))))
                .await;
        }
        VisitorFrame::Typing {
            conversation,
            typing,
        } => {
            if !owns(session, link, &conversation).await {
                refuse(link, None).await;
                return;
            }
            service::publish_frame(
                &state,
                &session.site.id,
                Some(&conversation),
                Audience::Everyone,
                Some(link.connection),
                &ServerFrame::Typing {
                    conversation: conversation.clone(),
                    author: session.author(),
                    typing,
                },
            );
        }
        VisitorFrame::Seen { conversation, seq } => {
            if !owns(session, link, &conversation).await {
                refuse(link, None).await;
                return;
            }
            service::publish_frame(
                &state,
                &session.site.id,
                Some(&conversation),
                Audience::Everyone,
                Some(link.connection),
                &ServerFrame::Seen {
                    conversation: conversation.clone(),
                    seq,
                    by: session.author(),
                },
            );
        }
        VisitorFrame::Close { conversation } => {
            if !owns(session, link, &conversation).await {
                refuse(link, None).await;
                return;
            }
            let found = match state.store.conversation(&conversation).await {
                Ok(Some(found)) => found,
                Ok(None) => return refuse(link, None).await,
                Err(err) => {
                    return link
                        .error(
                            service::store_code(&err),
                            service::store_message(&err),
                            None,
                        )
                        .await;
                }
            };
            if found.state == ConversationState::Closed {
                return;
            }
            if let Err(err) = service::close(
                &state,
                &found,
                found.agent_id.as_deref(),
                "closed by the visitor",
            )
            .await
            {
                link.error(
                    service::store_code(&err),
                    service::store_message(&err),
                    None,
                )
                .await;
                return;
            }
            if session.current.as_deref() == Some(conversation.as_str()) {
                session.current = None;
            }
        }
    }
}

/// Runs the bot when the conversation is still in the bot's hands.
async fn run_bot(
    state: &crate::state::AppState,
    settings: &SiteSettings,
    conversation: &str,
    text: &str,
    locale: Option<&str>,
) {
    let found: Conversation = match state.store.conversation(conversation).await {
        Ok(Some(found)) if found.state == ConversationState::Bot => found,
        _ => return,
    };
    if let Err(err) = service::bot_turn(state, settings, &found, text, locale).await {
        tracing::warn!(%conversation, error = %err, "bot turn failed");
    }
}

async fn rate(
    session: &mut Session,
    link: &Link,
    conversation: String,
    score: u8,
    comment: Option<String>,
) {
    let state = link.state.clone();
    if !owns(session, link, &conversation).await {
        return refuse(link, None).await;
    }
    if !(1..=5).contains(&score) {
        return link
            .error(ErrorCode::BadField, "score must be 1 to 5", None)
            .await;
    }
    let comment: Option<String> = comment
        .map(|comment| comment.trim().chars().take(1000).collect::<String>())
        .filter(|comment| !comment.is_empty());
    let found = match state.store.conversation(&conversation).await {
        Ok(Some(found)) => found,
        _ => return refuse(link, None).await,
    };
    if found.state != ConversationState::Closed {
        return link
            .error(
                ErrorCode::BadField,
                "a conversation is rated once it is closed",
                None,
            )
            .await;
    }
    if let Err(err) = state
        .store
        .rate(&conversation, score, comment.as_deref(), now_ms())
        .await
    {
        return link
            .error(
                service::store_code(&err),
                service::store_message(&err),
                None,
            )
            .await;
    }
    if score <= 2 {
        let detail = match &comment {
            Some(comment) => format!("rated {score}/5: {comment}"),
            None => format!("rated {score}/5"),
        };
        let alert = salam_store::Alert {
            id: 0,
            site_id: session.site.id.clone(),
            conversation: Some(conversation.clone()),
            kind: "low_rating".into(),
            detail: detail.clone(),
            at: now_ms(),
        };
        match state.store.create_alert(alert).await {
            Ok(id) => service::publish_frame(
                &state,
                &session.site.id,
                None,
                Audience::Admins,
                None,
                &ServerFrame::Alert {
                    id,
                    kind: "low_rating".into(),
                    conversation: Some(conversation.clone()),
                    detail,
                    at: now_ms(),
                },
            ),
            Err(err) => tracing::warn!(error = %err, "alert not stored"),
        }
    }
    service::announce(&state, &found);
}

fn clean(value: Option<String>, max: usize) -> Option<String> {
    value
        .map(|value| {
            value
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(max)
                .collect::<String>()
        })
        .filter(|value| !value.is_empty())
}

#[allow(clippy::too_many_arguments)]
async fn contact(
    session: &mut Session,
    link: &Link,
    conversation: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    message: Option<String>,
) {
    let state = link.state.clone();
    if let Some(conversation) = &conversation
        && !owns(session, link, conversation).await
    {
        return refuse(link, None).await;
    }
    let (name, email, phone, message) = (
        clean(name, 100),
        clean(email, 254),
        clean(phone, 32),
        clean(message, state.config.limits.max_text_chars as usize),
    );
    let email_ok = email.as_deref().is_none_or(|email| {
        email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
    });
    let phone_ok = phone.as_deref().is_none_or(|phone| {
        phone.chars().filter(char::is_ascii_digit).count() >= 6
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    });
    if (email.is_none() && phone.is_none()) || !email_ok || !phone_ok {
        return link
            .error(
                ErrorCode::BadField,
                "leave a valid e-mail address or phone number",
                None,
            )
            .await;
    }
    let message_lang = message.as_deref().and_then(salam_bot::detect_language);
    let request = salam_store::OfflineRequest {
        id: 0,
        site_id: session.site.id.clone(),
        visitor_id: session.visitor_id.clone(),
        conversation: conversation.clone(),
        name: name.clone(),
        email: email.clone(),
        phone,
        message,
        created_at: now_ms(),
        done_at: None,
    };
    if let Err(err) = state.store.create_offline_request(request).await {
        return link
            .error(
                service::store_code(&err),
                service::store_message(&err),
                None,
            )
            .await;
    }
    if let Some(conversation) = conversation {
        let lang = message_lang
            .or_else(|| session.locale.as_deref().and_then(salam_bot::Lang::parse))
            .unwrap_or(salam_bot::Lang::En);
        let text = state.bot.current().phrases(lang).contact_saved.clone();
        if let Err(err) = service::post(
            &state,
            &session.site.id,
            &conversation,
            MessageKind::Text,
            service::bot_author(&state, lang),
            text,
            Vec::new(),
        )
        .await
        {
            tracing::warn!(error = %err, "contact confirmation not stored");
        }
    }
}

/// The hex HMAC-SHA256 of `id` with the site's identity secret, as the site's backend
/// computes it.
pub fn identity_hash(identity_secret: &str, id: &str) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(identity_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn identify(
    session: &mut Session,
    link: &Link,
    id: String,
    name: Option<String>,
    email: Option<String>,
    hash: String,
) {
    let expected = identity_hash(&session.site.identity_secret, &id);
    let matches = expected.len() == hash.len()
        && expected
            .bytes()
            .zip(hash.to_ascii_lowercase().bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if id.is_empty() || id.len() > 200 || !matches {
        return link
            .error(
                ErrorCode::Unauthorized,
                "the identity is not signed by the site",
                None,
            )
            .await;
    }
    let (name, email) = (clean(name, 100), clean(email, 254));
    if let Err(err) = link
        .state
        .store
        .identify_visitor(&session.visitor_id, &id, name.as_deref(), email.as_deref())
        .await
    {
        return link
            .error(
                service::store_code(&err),
                service::store_message(&err),
                None,
            )
            .await;
    }
    session.vip = session.settings.vip_user_ids.contains(&id);
}
