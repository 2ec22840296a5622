//! `contact`: the visitor leaves contact details (the callback form, or the pre-chat
//! form); they become an offline request for the site's agents.

use super::{Session, clean, owns, refuse};
use crate::clock::now_ms;
use crate::conversation;
use crate::ws::{Flow, Link};
use salam_protocol::{ErrorCode, MessageKind};

/// What the form carried.
pub(super) struct Details {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
}

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    conversation: Option<String>,
    details: Details,
) -> Flow {
    contact(session, link, conversation, details).await;
    Flow::Continue
}

async fn contact(
    session: &mut Session,
    link: &Link,
    conversation: Option<String>,
    details: Details,
) {
    let Details {
        name,
        email,
        phone,
        message,
    } = details;
    let state = link.state.clone();
    if let Some(conversation) = &conversation
        && !owns(session, link, conversation).await
    {
        {
            refuse(link, None).await;
            return;
        }
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
    // One open request per visitor: a second `contact` updates it (and is not
    // confirmed again in the conversation).
    let created = match state.store.create_offline_request(request.clone()).await {
        Ok((id, created)) => {
            if created {
                crate::webhooks::events::offline_request(&state.webhooks, id, &request).await;
            }
            created
        }
        Err(err) => {
            return link
                .error(
                    conversation::store_code(&err),
                    conversation::store_message(&err),
                    None,
                )
                .await;
        }
    };
    if let Some(conversation) = conversation.filter(|_| created) {
        let lang = message_lang
            .or_else(|| session.locale.as_deref().and_then(salam_bot::Lang::parse))
            .unwrap_or(salam_bot::Lang::En);
        let rules = state.bot.for_site(&session.site, &session.settings);
        let text = rules.phrases(lang).contact_saved.clone();
        if let Err(err) = conversation::post(
            &state,
            &session.site.id,
            &conversation,
            MessageKind::Text,
            conversation::bot_author(&rules, lang),
            text,
        )
        .await
        {
            tracing::warn!(error = %err, "contact confirmation not stored");
        }
    }
}
