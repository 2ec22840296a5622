//! From a visitor message to a [`Decision`].
//!
//! The decision table, in order (scores are sums of matched pattern weights, see
//! `bot-rules/README.md`; `threshold` and friends come from [`crate::Settings`]):
//! 1. Small-talk rules (`background = true`) drop out when any other intent reaches the
//!    threshold, so "hi, where is my order?" is about the order.
//! 2. A hand-off rule at or above the threshold wins (highest `priority` first, so a
//!    complaint beats a plain request for a person) unless an answer outscores it by
//!    more than `1 / handoff_dominance`. Requests for a human are never clarified away.
//! 3. Nothing at the threshold: a miss, answered with the fallback.
//! 4. Runner-up within `clarify_margin` of the top and also above the threshold: a miss,
//!    answered with a clarifying question offering both.
//! 5. Otherwise the top rule answers.
//!
//! On a miss, when `consecutive_misses + 1 >= max_misses`, the bot hands off instead
//! (reason `misses`).

use crate::normalize::{detect_scores, normalize};
use crate::pack::{Action, Rule, RuleSet};
use crate::{Lang, MAX_INPUT_CHARS};

/// One visitor message to triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriageInput<'a> {
    /// The message as typed.
    pub text: &'a str,
    /// The conversation's language (from the page or the visitor's choice); when `None`
    /// the language is detected from the text.
    pub locale: Option<Lang>,
    /// How many bot turns in a row were misses (fallback or clarify) before this one;
    /// the hub counts them and resets on an answer.
    pub consecutive_misses: u32,
}

impl<'a> TriageInput<'a> {
    /// A first message (no misses yet).
    pub fn new(text: &'a str, locale: Option<Lang>) -> TriageInput<'a> {
        TriageInput {
            text,
            locale,
            consecutive_misses: 0,
        }
    }
}

/// A quick-reply button: show `label`, send `payload` as the visitor's next message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickReply {
    /// What the button shows.
    pub label: String,
    /// What the button sends (a text the bot triages like any other).
    pub payload: String,
}

/// Why a conversation is handed to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandoffReason {
    /// The visitor asked for a person.
    Requested,
    /// The visitor complained or is angry (raised priority).
    Complaint,
    /// The bot missed too many times in a row.
    Misses,
    /// A rule with `action = "handoff"` matched.
    RuleAction,
}

impl HandoffReason {
    /// `"requested"`, `"complaint"`, `"misses"` or `"rule_action"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Requested => "requested",
            HandoffReason::Complaint => "complaint",
            HandoffReason::Misses => "misses",
            HandoffReason::RuleAction => "rule_action",
        }
    }
}

/// What the bot does with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Reply with a rule's answer.
    Answer {
        rule_id: String,
        intent: String,
        lang: Lang,
        text: String,
        quick_replies: Vec<QuickReply>,
        link: Option<String>,
        score: f32,
    },
    /// Ask which of two close intents the visitor means.
    Clarify {
        lang: Lang,
        question: String,
        options: Vec<QuickReply>,
        /// The two close intents with their scores, best first.
        candidates: Vec<(String, f32)>,
    },
    /// Hand the conversation to a person.
    Handoff {
        rule_id: Option<String>,
        /// The matched intent, or `"none"` for a handoff after misses.
        intent: String,
        lang: Lang,
        department: Option<String>,
        reason: HandoffReason,
        priority: i32,
        text: String,
        score: f32,
    },
    /// The bot did not understand.
    Fallback {
        lang: Lang,
        text: String,
        quick_replies: Vec<QuickReply>,
        score: f32,
    },
}

impl Decision {
    /// `"answer"`, `"clarify"`, `"handoff"` or `"fallback"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Answer { .. } => "answer",
            Decision::Clarify { .. } => "clarify",
            Decision::Handoff { .. } => "handoff",
            Decision::Fallback { .. } => "fallback",
        }
    }

    /// The intent for an answer or handoff, `"clarify"` or `"none"` otherwise.
    pub fn predicted_intent(&self) -> &str {
        match self {
            Decision::Answer { intent, .. } | Decision::Handoff { intent, .. } => intent,
            Decision::Clarify { .. } => "clarify",
            Decision::Fallback { .. } => "none",
        }
    }

    /// The score of the winning intent (for clarify: of the best candidate).
    pub fn score(&self) -> f32 {
        match self {
            Decision::Answer { score, .. }
            | Decision::Handoff { score, .. }
            | Decision::Fallback { score, .. } => *score,
            Decision::Clarify { candidates, .. } => {
                candidates.first().map_or(0.0, |(_, score)| *score)
            }
        }
    }

    /// The language of the reply.
    pub fn lang(&self) -> Lang {
        match self {
            Decision::Answer { lang, .. }
            | Decision::Clarify { lang, .. }
            | Decision::Handoff { lang, .. }
            | Decision::Fallback { lang, .. } => *lang,
        }
    }

    /// The rule that decided, if any.
    pub fn rule_id(&self) -> Option<&str> {
        match self {
            Decision::Answer { rule_id, .. } => Some(rule_id),
            Decision::Handoff { rule_id, .. } => rule_id.as_deref(),
            _ => None,
        }
    }

    /// Whether the hub should count this turn as a miss.
    pub fn is_miss(&self) -> bool {
        matches!(self, Decision::Clarify { .. } | Decision::Fallback { .. })
    }
}

/// The best rule of one intent.
#[derive(Debug, Clone, Copy)]
struct Candidate<'r> {
    rule: &'r Rule,
    score: f32,
}

/// Cuts `text` to at most [`MAX_INPUT_CHARS`] characters.
fn bounded(text: &str) -> &str {
    match text.char_indices().nth(MAX_INPUT_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

impl RuleSet {
    /// Decides what to do with one visitor message. Never panics; time is linear in the
    /// (bounded) message length.
    pub fn triage(&self, input: &TriageInput<'_>) -> Decision {
        let text = bounded(input.text);
        let normalised = normalize(text);
        let detected = detect_scores(text, &normalised);
        let lang = input
            .locale
            .or(detected.map(|(lang, _)| lang))
            .unwrap_or(Lang::En);
        // Telling Arabic from Persian is the unreliable part of detection: inside the
        // Arabic script, trust the conversation's locale unless the text clearly says
        // otherwise.
        let text_lang = match (detected, input.locale) {
            (Some((detected, margin)), Some(locale))
                if detected.is_arabic_script() && locale.is_arabic_script() && margin < 2.0 =>
            {
                Some(locale)
            }
            (Some((detected, _)), _) => Some(detected),
            (None, locale) => locale,
        };
        let settings = &self.settings;
        let rule_scores =
            self.matcher
                .score(&normalised, text_lang, settings.cross_language_weight);

        // Best rule per intent.
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        for rule_score in rule_scores {
            let rule = &self.rules[rule_score.rule];
            let candidate = Candidate {
                rule,
                score: rule_score.score,
            };
            match candidates
                .iter_mut()
                .find(|other| other.rule.intent == rule.intent)
            {
                Some(other) => {
                    if better(&candidate, other) {
                        *other = candidate;
                    }
                }
                None => candidates.push(candidate),
            }
        }
        let threshold = settings.threshold;
        if candidates
            .iter()
            .any(|candidate| candidate.score >= threshold && !candidate.rule.background)
        {
            candidates.retain(|candidate| !candidate.rule.background);
        }
        candidates.sort_by(|a, b| {
            if better(a, b) {
                std::cmp::Ordering::Less
            } else if better(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        let top_score = candidates.first().map_or(0.0, |candidate| candidate.score);

        let handoff = candidates
            .iter()
            .filter(|candidate| {
                candidate.rule.action == Action::Handoff && candidate.score >= threshold
            })
            .max_by(|a, b| {
                (a.rule.priority, a.score)
                    .partial_cmp(&(b.rule.priority, b.score))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        if let Some(handoff) = handoff
            && handoff.score >= settings.handoff_dominance * top_score
        {
            return self.handoff(handoff, lang);
        }

        let Some(top) = candidates.first() else {
            return self.miss(input, lang, self.fallback(lang, 0.0));
        };
        if top.score < threshold {
            return self.miss(input, lang, self.fallback(lang, top.score));
        }
        if let Some(second) = candidates.get(1)
            && second.score >= threshold
            && second.score >= (1.0 - settings.clarify_margin) * top.score
        {
            return self.miss(input, lang, self.clarify(lang, top, second));
        }
        self.answer(top, lang)
    }

    fn talk_to_person(&self, lang: Lang) -> QuickReply {
        let label = self.phrases(lang).talk_to_person.clone();
        QuickReply {
            payload: label.clone(),
            label,
        }
    }

    fn intent_reply(&self, intent: &str, lang: Lang) -> Option<QuickReply> {
        let rule = self.rules.iter().find(|rule| rule.intent == intent)?;
        let label = rule.label.get(lang).to_string();
        Some(QuickReply {
            payload: label.clone(),
            label,
        })
    }

    fn answer(&self, candidate: &Candidate<'_>, lang: Lang) -> Decision {
        let rule = candidate.rule;
        let mut quick_replies: Vec<QuickReply> = rule
            .follow_ups
            .iter()
            .filter_map(|intent| self.intent_reply(intent, lang))
            .collect();
        quick_replies.extend(rule.quick_replies.iter().map(|reply| {
            let label = reply.label.get(lang).to_string();
            QuickReply {
                payload: label.clone(),
                label,
            }
        }));
        quick_replies.push(self.talk_to_person(lang));
        Decision::Answer {
            rule_id: rule.id.clone(),
            intent: rule.intent.clone(),
            lang,
            text: rule
                .answer
                .as_ref()
                .map_or_else(String::new, |answer| answer.get(lang).to_string()),
            quick_replies,
            link: rule.link.clone(),
            score: candidate.score,
        }
    }

    fn handoff(&self, candidate: &Candidate<'_>, lang: Lang) -> Decision {
        let rule = candidate.rule;
        Decision::Handoff {
            rule_id: Some(rule.id.clone()),
            intent: rule.intent.clone(),
            lang,
            department: rule.department.clone(),
            reason: rule.handoff_reason,
            priority: rule.priority,
            text: rule.answer.as_ref().map_or_else(
                || self.phrases(lang).handoff.clone(),
                |answer| answer.get(lang).to_string(),
            ),
            score: candidate.score,
        }
    }

    fn fallback(&self, lang: Lang, score: f32) -> Decision {
        let mut quick_replies: Vec<QuickReply> = self
            .settings
            .fallback_follow_ups
            .iter()
            .filter_map(|intent| self.intent_reply(intent, lang))
            .collect();
        quick_replies.push(self.talk_to_person(lang));
        Decision::Fallback {
            lang,
            text: self.phrases(lang).fallback.clone(),
            quick_replies,
            score,
        }
    }

    fn clarify(&self, lang: Lang, top: &Candidate<'_>, second: &Candidate<'_>) -> Decision {
        let mut options: Vec<QuickReply> = [top, second]
            .iter()
            .map(|candidate| {
                let label = candidate.rule.label.get(lang).to_string();
                QuickReply {
                    payload: label.clone(),
                    label,
                }
            })
            .collect();
        options.push(self.talk_to_person(lang));
        Decision::Clarify {
            lang,
            question: self.phrases(lang).clarify.clone(),
            options,
            candidates: vec![
                (top.rule.intent.clone(), top.score),
                (second.rule.intent.clone(), second.score),
            ],
        }
    }

    /// Turns a miss into a handoff once the visitor has been missed too often.
    fn miss(&self, input: &TriageInput<'_>, lang: Lang, decision: Decision) -> Decision {
        let max_misses = self.settings.max_misses;
        if max_misses > 0 && input.consecutive_misses.saturating_add(1) >= max_misses {
            return Decision::Handoff {
                rule_id: None,
                intent: "none".to_string(),
                lang,
                department: None,
                reason: HandoffReason::Misses,
                priority: 0,
                text: self.phrases(lang).handoff.clone(),
                score: decision.score(),
            };
        }
        decision
    }
}

/// Higher score first; on a tie, higher priority; then file order (stable sort).
fn better(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    a.score > b.score || (a.score == b.score && a.rule.priority > b.rule.priority)
}
