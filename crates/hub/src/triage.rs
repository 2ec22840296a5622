//! One bot turn: a visitor's message in a conversation the bot still has is triaged,
//! recorded, and answered, clarified, fallen back on or handed to people.
//!
//! The bot stays silent once a person has the conversation: it runs only for a
//! message appended in the `bot` state, and its lines are appended only while the
//! conversation is still in that state (a take that lands during the turn wins).

use crate::clock::now_ms;
use crate::conversation::{HandOff, bot_author, hand_off, post_message};
use crate::site::SiteSettings;
use crate::state::AppState;
use salam_protocol::{Author, ConversationState, MessageKind, QuickReply};
use salam_store::{Appended, Conversation, NewMessage, Site, StoreError};

fn quick_replies(replies: Vec<salam_bot::QuickReply>) -> Vec<QuickReply> {
    replies
        .into_iter()
        .map(|reply| QuickReply {
            label: reply.label,
            payload: reply.payload,
        })
        .collect()
}

/// Runs the bot when the conversation is still in the bot's hands.
pub async fn run_bot(
    state: &AppState,
    site: &Site,
    settings: &SiteSettings,
    conversation: &str,
    text: &str,
    locale: Option<&str>,
) {
    let found: Conversation = match state.store.conversation(conversation).await {
        Ok(Some(found)) if found.state == ConversationState::Bot => found,
        _ => return,
    };
    match bot_turn(state, site, settings, &found, text, locale).await {
        Ok(_) | Err(StoreError::StateChanged(_)) => {}
        Err(err) => tracing::warn!(%conversation, error = %err, "bot turn failed"),
    }
}

/// Runs one bot turn on a visitor's message in a conversation in the `bot` state:
/// triage (with the conversation's context: the visitor's earlier questions and the
/// bot's last answer), record the turn, then answer, clarify, fall back or hand off.
/// The rules are the site's ([`crate::bot::BotEngine::for_site`]).
pub async fn bot_turn(
    state: &AppState,
    site: &Site,
    settings: &SiteSettings,
    conversation: &Conversation,
    text: &str,
    ui_locale: Option<&str>,
) -> Result<salam_bot::Lang, StoreError> {
    use salam_bot::{Decision, Lang, TriageContext, TriageInput};
    let recent = state.store.recent_bot_turns(&conversation.id, 10).await?;
    let consecutive_misses = recent
        .iter()
        .take_while(|turn| matches!(turn.decision.as_str(), "fallback" | "clarify"))
        .count() as u32;
    let previous_questions: Vec<&str> = recent
        .iter()
        .take(5)
        .map(|turn| turn.question.as_str())
        .collect();
    let previous_intent = recent
        .first()
        .filter(|turn| turn.decision == "answer")
        .map(|turn| turn.intent.as_str());
    // The visitor's own language wins; the widget's locale decides only when the text
    // tells nothing (emoji, digits).
    let locale = match salam_bot::detect_language(text) {
        Some(_) => None,
        None => ui_locale.and_then(Lang::parse),
    };
    let rules = state.bot.for_site(site, settings);
    let decision = rules.triage_with_context(
        &TriageInput {
            text,
            locale,
            consecutive_misses,
        },
        &TriageContext {
            previous_questions: &previous_questions,
            previous_intent,
        },
    );
    let lang = decision.lang();
    let rule = decision.rule_id().map(str::to_owned);
    state
        .store
        .record_bot_turn(salam_store::BotTurn {
            conversation: conversation.id.clone(),
            site_id: conversation.site_id.clone(),
            rule_id: decision.rule_id().map(str::to_owned),
            intent: decision.predicted_intent().to_owned(),
            decision: decision.kind(),
            score: decision.score(),
            lang: lang.as_str().to_owned(),
            question: text.chars().take(500).collect(),
            at: now_ms(),
        })
        .await?;
    tracing::debug!(conversation = %conversation.id, decision = decision.kind(), intent = decision.predicted_intent(), "bot turn");
    let author = bot_author(&rules, lang);
    let (reply, replies) = match decision {
        Decision::Answer {
            text,
            quick_replies: replies,
            link,
            ..
        } => {
            // The customer's `{name}` and `{key|fallback}` (issue 19).
            let text = crate::bot_customer::fill(state, &conversation.visitor_id, text).await;
            let text = match link {
                Some(link) => format!("{text}\n{link}"),
                None => text,
            };
            (text, quick_replies(replies))
        }
        Decision::Clarify {
            question, options, ..
        } => (question, quick_replies(options)),
        Decision::Fallback {
            text,
            quick_replies: replies,
            ..
        } => (text, quick_replies(replies)),
        Decision::Handoff {
            department,
            reason,
            priority,
            text,
            ..
        } => {
            post_bot(state, conversation, author, text, Vec::new(), rule).await?;
            let request = HandOff {
                department: department.as_deref().unwrap_or(""),
                priority,
                reason: reason.as_str(),
                lang,
            };
            hand_off(state, site, settings, conversation, request).await?;
            return Ok(lang);
        }
    };
    post_bot(state, conversation, author, reply, replies, rule).await?;
    Ok(lang)
}

/// Commits and publishes a bot line (only while the bot has the conversation), naming
/// the rule that produced it.
async fn post_bot(
    state: &AppState,
    conversation: &Conversation,
    author: Author,
    text: String,
    quick_replies: Vec<QuickReply>,
    rule: Option<String>,
) -> Result<Appended, StoreError> {
    post_message(
        state,
        &conversation.site_id,
        NewMessage {
            event: None,
            conversation: conversation.id.clone(),
            kind: MessageKind::Text,
            author,
            text,
            client_id: None,
            quick_replies,
            rule,
            at: now_ms(),
            only_in: Some(ConversationState::Bot),
        },
    )
    .await
}
