//! From a visitor message to a [`Decision`].
//!
//! The message is normalised and, unless `[settings] spelling = false`, its unknown
//! words are corrected towards the pack's vocabulary (`crate::speller`). Then, in order
//! (scores are sums of matched pattern weights, see `bot-rules/README.md`; `threshold`
//! and friends come from [`crate::Settings`]):
//!
//! **Stage 1, the rules.**
//! 1. Built-in signals (`crate::signals`, unless `[settings] signals = false`) add to the
//!    pack's handoff rules: the person lexicon to the rule with reason `requested`, the
//!    frustration lexicons (anger, disappointment, overcharging, threats to leave), a
//!    shouted message and three or more `!` to the rule with reason `complaint`.
//!    Shouting and `!` do not count on small talk (`THANK YOU!!!`).
//! 2. A question asked again (compared with [`TriageContext::previous_questions`]) is
//!    handed off at once, reason [`HandoffReason::Repeated`], unless it is small talk.
//! 3. Small-talk rules (`background = true`) drop out when any other intent reaches the
//!    threshold, so "hi, where is my order?" is about the order.
//! 4. A complaint signal at or above the threshold hands off whatever else matched: when
//!    in doubt between an answer and a handoff for an angry visitor, hand off.
//! 5. A hand-off rule at or above the threshold wins (highest `priority` first, so a
//!    complaint beats a plain request for a person) unless an answer outscores it by
//!    more than `1 / handoff_dominance`. Requests for a human are never clarified away.
//! 6. Runner-up within `clarify_margin` of the top and also above the threshold:
//!    clarify, offering both (a miss), unless the follow-up step below resolves it.
//! 7. The top rule at or above the threshold answers.
//!
//! **Follow-ups.** Nothing answered, and [`TriageContext::previous_intent`] is set: the
//! message is scored behind the label of the previous intent (`"Delivery time" + "and
//! how much does it cost?"`), where only the message's own words may veto. It answers
//! when an intent gained from the message's words, or when the previous intent holds and
//! the message is an elliptical follow-up (`what about express?`, `و برای اکسپرس؟`).
//!
//! **Stage 2, the examples.** Still nothing at the threshold: the message is compared
//! with the pack's examples (`crate::similar`), small talk left out. The closest intent
//! answers when its similarity reaches `similarity_threshold` and the runner-up is more
//! than `similarity_margin` behind; a closer runner-up makes a clarifying question; a
//! handoff intent among the close ones hands off.
//!
//! **Weak frustration.** Before a clarifying question or stage 2, a message whose
//! frustration signals reach half the threshold (one `hint` of a lexicon such as
//! `excuses` or `ليش كذا`, or three `!`) but no more is handed off as a complaint:
//! nothing answered it, and a frustrated visitor should not get the fallback. Person
//! hints (`bot`) do not count here ("how old are you, bot?" is small talk).
//!
//! **The structural signal** (`crate::affect`, unless `[settings] signals = false`).
//! The lexicons above hold whole phrasings; this signal reads kinds of evidence, word by
//! word: a negation of service (`nobody`, `ولا رد`, `هیچکس`), a judgement (`joke`,
//! `حرام`, `زشت`), second-person blame (`you guys`, `…كم`, `خربتوا`, `کارتون`,
//! `نمیکنین`), waiting, a challenge (`why`, `ليش`, `چرا`), a problem (`broken`,
//! `ناقص`, `خراب`), the store's world (`order`, `المندوب`, `پیک`), intensifiers,
//! negations, `??`, and praise that opens a negative message (irony). A message whose
//! family weights reach 1.0 with two families, one of them negative, is *frustrated*;
//! a "who" word beside a word of talking (`who am I chatting with`, `في حدا بيحكي معي`)
//! *addresses a person*; a statement of six words or more about the store's world that
//! asks nothing (`the delivery guy threw my box over the fence`) *reports* a problem.
//! The decision uses it only where the rules are not confident:
//! - nothing answered (no rule, no follow-up, no weak frustration, and the second
//!   stage found no answer): frustrated or a report → complaint, addressed to a person →
//!   requested, [`Via::Affect`];
//! - a clarifying question (stage 1 or 2): only frustration of at least 2.0;
//! - small talk answered ("yo", "hellooo is any1 there or just a bot"): frustrated or
//!   addressed to a person hands off;
//! - a topic answered by one pattern (score below 1.25), or a message opened with
//!   irony ("thanks for charging my card and then cancelling my order"): frustration of
//!   at least 2.0 hands off. A topic answered more strongly keeps its answer: measured on
//!   the tuning set, letting frustration override it flipped right answers ("my parcel
//!   never arrived", `الطرد متاخر اسبوع`) and caught no complaint the lexicons missed.
//!
//! Otherwise a miss, answered with the fallback. On a miss, when
//! `consecutive_misses + 1 >= max_misses`, the bot hands off instead (reason `misses`).

use crate::affect;
use crate::matcher::RuleScore;
use crate::normalize::{detect_scores, normalize};
use crate::pack::{Action, Rule, RuleSet};
use crate::signals::{self, Target};
use crate::speller::Typing;
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

/// What the bot knows about the conversation before the message, for
/// [`RuleSet::triage_with_context`]. The default is a first message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TriageContext<'a> {
    /// The visitor's earlier messages in this conversation, as typed, most recent first
    /// (not the message being triaged). Only the first five are read; the same
    /// question asked again hands off.
    pub previous_questions: &'a [&'a str],
    /// The intent of the bot's last answer in this conversation
    /// ([`Decision::predicted_intent`] of an `Answer`), so that a follow-up such as
    /// "and how much does it cost?" resolves against it.
    pub previous_intent: Option<&'a str>,
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
    /// The visitor asked the same question again.
    Repeated,
}

impl HandoffReason {
    /// `"requested"`, `"complaint"`, `"misses"`, `"rule_action"` or `"repeated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Requested => "requested",
            HandoffReason::Complaint => "complaint",
            HandoffReason::Misses => "misses",
            HandoffReason::RuleAction => "rule_action",
            HandoffReason::Repeated => "repeated",
        }
    }
}

/// How a decision was reached, to explain it (the console, `salam rules try`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// The rules' patterns, on the message as typed (after normalisation).
    Rules,
    /// The rules' patterns, after correcting typos in the message.
    Spelling,
    /// The built-in signals: person and frustration lexicons, shouting, `!!!`, a
    /// repeated question.
    Signals,
    /// The structural signal (`crate::affect`): a message nothing answered confidently
    /// that reads as frustrated (families of cue words) or as addressed to a person.
    Affect,
    /// A follow-up, resolved against the previous intent of the conversation.
    FollowUp,
    /// No rule matched; the message is close to a rule's examples (second stage).
    Examples,
    /// Too many misses in a row.
    Misses,
}

impl Via {
    /// `"rules"`, `"spelling"`, `"signals"`, `"affect"`, `"follow_up"`, `"examples"` or
    /// `"misses"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Rules => "rules",
            Via::Spelling => "spelling",
            Via::Signals => "signals",
            Via::Affect => "affect",
            Via::FollowUp => "follow_up",
            Via::Examples => "examples",
            Via::Misses => "misses",
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
        via: Via,
    },
    /// Ask which of two close intents the visitor means.
    Clarify {
        lang: Lang,
        question: String,
        options: Vec<QuickReply>,
        /// The two close intents with their scores, best first.
        candidates: Vec<(String, f32)>,
        via: Via,
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
        via: Via,
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

    /// How the decision was reached (`None` for a fallback).
    pub fn via(&self) -> Option<Via> {
        match self {
            Decision::Answer { via, .. }
            | Decision::Clarify { via, .. }
            | Decision::Handoff { via, .. } => Some(*via),
            Decision::Fallback { .. } => None,
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
    /// The part of `score` that built-in signals contributed.
    signal: f32,
}

/// What the decision table makes of the candidates.
#[derive(Debug, Clone, Copy)]
enum Outcome<'r> {
    Handoff(Candidate<'r>),
    Answer(Candidate<'r>),
    Clarify(Candidate<'r>, Candidate<'r>),
    /// Nothing at the threshold; the best score.
    Miss(f32),
}

/// Cuts `text` to at most [`MAX_INPUT_CHARS`] characters.
pub(crate) fn bounded(text: &str) -> &str {
    match text.char_indices().nth(MAX_INPUT_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// Whether the example being checked is left out of the second stage (see
/// [`RuleSet::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A visitor message.
    Live,
    /// An example of the pack: it must not be its own nearest example.
    Check,
}

/// At most this many words follow a follow-up marker for the previous intent to be
/// answered again without new evidence (`what about express?`).
const ELLIPTICAL_MAX_WORDS: usize = 3;
/// A follow-up without a marker has at most this many words (`how much?`).
const UNMARKED_FOLLOW_UP_MAX_WORDS: usize = 5;
/// A follow-up with a marker has at most this many words.
const MARKED_FOLLOW_UP_MAX_WORDS: usize = 10;

/// Words that open a follow-up, in their normalised spelling (a test checks it).
const FOLLOW_UP_MARKERS: &[&str] = &[
    // English
    "and what about",
    "and how about",
    "what about",
    "how about",
    "and for",
    "and",
    "also",
    "same for",
    "same question for",
    "what if",
    "ok and",
    "okay and",
    "so what about",
    "then what about",
    "plus",
    // Arabic
    "و",
    "وماذا عن",
    "ماذا عن",
    "وايش عن",
    "ايش عن",
    "وشو عن",
    "شو عن",
    "وش عن",
    "طيب و",
    "طيب",
    "طب و",
    "طب",
    "وبالنسبه",
    "بالنسبه",
    "وكمان",
    "كمان",
    "ايضا",
    "وعن",
    "وماذا",
    "وبخصوص",
    "بخصوص",
    "طيب بالنسبه",
    // Persian
    "پس",
    "در مورد",
    "درباره",
    "راجع به",
    "اونوقت",
    "اون وقت",
    "همينطور",
    "براي",
    "واسه",
    "خب",
    "خب و",
    "و براي",
    "و در مورد",
    "و واسه",
];

/// Arabic question words that the conjunction `و` is glued to in a follow-up (`وكم؟`,
/// `وبكم؟`, `ومتى؟`).
const GLUED_AND_WORDS: &[&str] = &[
    "كم", "بكم", "بكام", "متي", "امتي", "كيف", "اذا", "لو", "هل", "ايش", "شو", "ماذا", "وين",
    "اين", "فين", "قديش", "كام",
];

/// Persian words that end an elliptical question (`اکسپرس چی؟`, "what about express?").
const TRAILING_MARKERS: &[&str] = &["چي", "چطور", "چطوره", "چي ميشه", "چه طور"];

impl RuleSet {
    /// Decides what to do with one visitor message, knowing nothing of the conversation
    /// before it ([`TriageContext::default`]). Never panics; time is linear in the
    /// (bounded) message length.
    pub fn triage(&self, input: &TriageInput<'_>) -> Decision {
        self.decide(input, &TriageContext::default(), Mode::Live)
    }

    /// [`RuleSet::triage`] within a conversation: a question asked again hands off, and
    /// a follow-up ("and how much does it cost?") resolves against the previous intent.
    pub fn triage_with_context(
        &self,
        input: &TriageInput<'_>,
        context: &TriageContext<'_>,
    ) -> Decision {
        self.decide(input, context, Mode::Live)
    }

    pub(crate) fn decide(
        &self,
        input: &TriageInput<'_>,
        context: &TriageContext<'_>,
        mode: Mode,
    ) -> Decision {
        let text = bounded(input.text);
        let normalised = normalize(text);
        let detected = detect_scores(text, &normalised);
        let lang = input
            .locale
            .or(detected.map(|(lang, _)| lang))
            .unwrap_or(Lang::En);
        // Telling Arabic from Persian is the unreliable part of detection: inside the
        // Arabic script, trust the conversation's locale unless the text clearly says
        // otherwise: one frequent word of the other language is not enough (Persian
        // `ده`, "ten", is Egyptian `ده`, "this").
        let text_lang = match (detected, input.locale) {
            (Some((detected, margin)), Some(locale))
                if detected.is_arabic_script() && locale.is_arabic_script() && margin <= 2.0 =>
            {
                Some(locale)
            }
            (Some((detected, _)), _) => Some(detected),
            (None, locale) => locale,
        };
        let settings = &self.settings;
        let corrected = if settings.spelling {
            self.speller
                .correct(&normalised, Typing::of(text, text_lang.unwrap_or(lang)))
        } else {
            None
        };
        let matched = corrected.as_deref().unwrap_or(&normalised);
        let via_rules = if corrected.is_some() {
            Via::Spelling
        } else {
            Via::Rules
        };
        let scores = self
            .matcher
            .score(matched, text_lang, settings.cross_language_weight, 0);
        let mut candidates = self.candidates(&scores);
        // Signals too weak to hand off on their own (a hint, `!!!`): they decide only
        // when nothing answers (step 8 of the module docs).
        let mut weak_signal: Option<(Target, f32)> = None;

        if settings.signals {
            let threshold = settings.threshold;
            let small_talk = candidates
                .iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .is_some_and(|best| best.rule.background && best.score >= threshold);
            let (mut complaint, person) = self.signal_scores(&scores);
            if !small_talk {
                if signals::is_shouting(text) {
                    complaint += signals::SHOUTING_WEIGHT;
                }
                if signals::exclamations(text) >= signals::MIN_EXCLAMATIONS {
                    complaint += signals::EXCLAMATION_WEIGHT;
                }
            }
            self.add_signal(&mut candidates, Target::Complaint, complaint);
            self.add_signal(&mut candidates, Target::Requested, person);
            let weak = signals::WEAK_SHARE * threshold;
            if complaint >= weak {
                weak_signal = Some((Target::Complaint, complaint));
            }
            if !small_talk
                && complaint < threshold
                && signals::repeats(&normalised, context.previous_questions)
            {
                return self.repeated(lang);
            }
        }

        let outcome = self.table(&mut candidates);
        // The structural signal, read once, for the steps below that need it.
        let affect = (settings.signals && !matches!(outcome, Outcome::Handoff(_)))
            .then(|| affect::read(text, &normalised, text_lang.unwrap_or(lang)));
        if let (Outcome::Answer(candidate), Some(affect)) = (outcome, affect)
            && let Some(decision) = self.affect_over_answer(&candidate, &affect, lang)
        {
            return decision;
        }
        let top_score = match outcome {
            Outcome::Handoff(candidate) => {
                let via = if candidate.signal >= candidate.score {
                    Via::Signals
                } else {
                    via_rules
                };
                return self.handoff(&candidate, lang, via);
            }
            Outcome::Answer(candidate) => return self.answer(&candidate, lang, via_rules),
            Outcome::Clarify(top, _) => top.score,
            Outcome::Miss(score) => score,
        };
        if let Some(decision) = self.follow_up(matched, lang, text_lang, context) {
            return decision;
        }
        if let Some(decision) =
            weak_signal.and_then(|(target, score)| self.weak_signal_handoff(target, score, lang))
        {
            return decision;
        }
        let affect_handoff = affect.and_then(|affect| self.affect_handoff(&affect, lang));
        if let Outcome::Clarify(top, second) = outcome {
            // Two topics matched: only strong frustration outweighs them.
            if let Some(decision) = affect_handoff
                && affect.is_some_and(|affect| affect.score >= affect::STRONG_SCORE)
            {
                return decision;
            }
            return self.miss(input, lang, self.clarify(lang, &top, &second, via_rules));
        }
        // An answer of the second stage (the examples) stands; then the structural signal.
        let strong = affect.is_some_and(|affect| affect.score >= affect::STRONG_SCORE);
        match self.second_stage(&normalised, lang, mode) {
            Some(decision @ Decision::Clarify { .. }) => match affect_handoff {
                Some(handoff) if strong => handoff,
                _ => self.miss(input, lang, decision),
            },
            Some(decision) if decision.is_miss() => self.miss(input, lang, decision),
            Some(decision) => decision,
            None => match affect_handoff {
                Some(decision) => decision,
                None => self.miss(input, lang, self.fallback(lang, top_score)),
            },
        }
    }

    /// A handoff on frustration signals below the threshold, for a message that no rule
    /// answered and no follow-up resolved: a miss would leave a frustrated visitor with
    /// a canned reply ("when in doubt, hand off"). (Person hints such as `bot` are not
    /// enough: "how old are you, bot?" is small talk.)
    fn weak_signal_handoff(&self, target: Target, score: f32, lang: Lang) -> Option<Decision> {
        let rule = self.signal_rule(target)?;
        let candidate = Candidate {
            rule,
            score,
            signal: score,
        };
        Some(self.handoff(&candidate, lang, Via::Signals))
    }

    /// The structural signal on a message that nothing answered confidently: a
    /// frustrated message is handed off as a complaint, one addressed to a person as a
    /// request (see `crate::affect`).
    fn affect_handoff(&self, affect: &affect::Affect, lang: Lang) -> Option<Decision> {
        let (target, score) = if affect.is_frustrated() {
            (Target::Complaint, affect.score)
        } else if affect.person {
            (Target::Requested, self.settings.threshold)
        } else if affect.report {
            (Target::Complaint, affect.score)
        } else {
            return None;
        };
        let rule = self.signal_rule(target)?;
        let candidate = Candidate {
            rule,
            score,
            signal: score,
        };
        Some(self.handoff(&candidate, lang, Via::Affect))
    }

    /// The structural signal over an answer: small talk ("yo", "hellooo") does not
    /// keep a frustrated visitor or one who asks for a person from a handoff, and an
    /// answer that only one pattern carried gives way to strong frustration.
    fn affect_over_answer(
        &self,
        answer: &Candidate<'_>,
        affect: &affect::Affect,
        lang: Lang,
    ) -> Option<Decision> {
        let strong = affect.score >= affect::STRONG_SCORE;
        if answer.rule.background && (affect.is_frustrated() || affect.person) {
            return self.affect_handoff(affect, lang);
        }
        if strong && (affect.is_ironic() || answer.score < affect::WEAK_ANSWER) {
            return self.affect_handoff(affect, lang);
        }
        None
    }

    /// The best rule of each intent among `scores` (built-in signals left out).
    fn candidates<'r>(&'r self, scores: &[RuleScore]) -> Vec<Candidate<'r>> {
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        for rule_score in scores {
            let Some(rule) = self.rules.get(rule_score.rule) else {
                continue;
            };
            let candidate = Candidate {
                rule,
                score: rule_score.score,
                signal: 0.0,
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
        candidates
    }

    /// The summed scores of the complaint and person lexicons.
    fn signal_scores(&self, scores: &[RuleScore]) -> (f32, f32) {
        let mut complaint = 0.0;
        let mut person = 0.0;
        for rule_score in scores {
            let Some(signal) = rule_score
                .rule
                .checked_sub(self.rules.len())
                .and_then(|idx| self.signals.get(idx))
            else {
                continue;
            };
            match signal.target {
                Target::Complaint => complaint += rule_score.score,
                Target::Requested => person += rule_score.score,
            }
        }
        (complaint, person)
    }

    /// The pack's handoff rule for a signal: the highest-priority handoff rule with the
    /// matching reason.
    fn signal_rule(&self, target: Target) -> Option<&Rule> {
        let reason = match target {
            Target::Complaint => HandoffReason::Complaint,
            Target::Requested => HandoffReason::Requested,
        };
        self.rules
            .iter()
            .filter(|rule| rule.action == Action::Handoff && rule.handoff_reason == reason)
            .max_by_key(|rule| rule.priority)
    }

    fn add_signal<'r>(&'r self, candidates: &mut Vec<Candidate<'r>>, target: Target, score: f32) {
        if score <= 0.0 {
            return;
        }
        let Some(rule) = self.signal_rule(target) else {
            return;
        };
        match candidates
            .iter_mut()
            .find(|candidate| candidate.rule.intent == rule.intent)
        {
            Some(candidate) => {
                candidate.signal = score;
                if score > candidate.score {
                    candidate.score = score;
                    candidate.rule = rule;
                }
            }
            None => candidates.push(Candidate {
                rule,
                score,
                signal: score,
            }),
        }
    }

    /// The decision table of stage 1 (steps 3 to 7 of the module docs).
    fn table<'r>(&self, candidates: &mut Vec<Candidate<'r>>) -> Outcome<'r> {
        let settings = &self.settings;
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
        if let Some(angry) = candidates.iter().find(|candidate| {
            candidate.signal >= threshold
                && candidate.rule.handoff_reason == HandoffReason::Complaint
        }) {
            return Outcome::Handoff(*angry);
        }
        // A handoff is weighed against the best answer only: between handoff rules the
        // priority decides (a complaint before a plain request for a person).
        let top_answer = candidates
            .iter()
            .filter(|candidate| candidate.rule.action != Action::Handoff)
            .map(|candidate| candidate.score)
            .fold(0.0_f32, f32::max);
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
            && handoff.score >= settings.handoff_dominance * top_answer
        {
            return Outcome::Handoff(*handoff);
        }
        let Some(top) = candidates.first() else {
            return Outcome::Miss(0.0);
        };
        if top.score < threshold {
            return Outcome::Miss(top.score);
        }
        if let Some(second) = candidates.get(1)
            && second.score >= threshold
            && second.score >= (1.0 - settings.clarify_margin) * top.score
        {
            return Outcome::Clarify(*top, *second);
        }
        Outcome::Answer(*top)
    }

    /// A follow-up resolved against the previous intent (see the module docs).
    fn follow_up(
        &self,
        matched: &str,
        lang: Lang,
        text_lang: Option<Lang>,
        context: &TriageContext<'_>,
    ) -> Option<Decision> {
        let previous = context.previous_intent?;
        let n_words = matched.split(' ').filter(|word| !word.is_empty()).count();
        let marker_words = follow_up_marker(matched);
        let max_words = if marker_words.is_some() {
            MARKED_FOLLOW_UP_MAX_WORDS
        } else {
            UNMARKED_FOLLOW_UP_MAX_WORDS
        };
        if n_words == 0 || n_words > max_words {
            return None;
        }
        let topic = self
            .rules
            .iter()
            .find(|rule| rule.intent == previous && rule.action == Action::Answer)?;
        let label = normalize(topic.label.get(lang));
        let combined = format!("{label} {matched}");
        let cross = self.settings.cross_language_weight;
        let scores = self
            .matcher
            .score(&combined, text_lang, cross, label.len() + 1);
        let mut candidates = self.candidates(&scores);
        candidates.retain(|candidate| {
            candidate.rule.action == Action::Answer && !candidate.rule.background
        });
        // The intents the message's own words added to: what it asks about.
        let on_label = self.candidates(&self.matcher.score(&label, text_lang, cross, 0));
        let gained = |candidate: &Candidate<'_>| {
            let before = on_label
                .iter()
                .find(|other| other.rule.intent == candidate.rule.intent)
                .map_or(0.0, |other| other.score);
            candidate.score > before + 1e-3
        };
        let mut gainers: Vec<Candidate<'_>> = candidates
            .iter()
            .copied()
            .filter(|candidate| gained(candidate))
            .collect();
        if !gainers.is_empty() {
            return match self.table(&mut gainers) {
                Outcome::Answer(winner) => Some(self.answer(&winner, lang, Via::FollowUp)),
                _ => None,
            };
        }
        // Nothing new, but an elliptical follow-up: the same topic again.
        let elliptical = marker_words.is_some_and(|n_after| n_after <= ELLIPTICAL_MAX_WORDS);
        if !elliptical {
            return None;
        }
        match self.table(&mut candidates) {
            Outcome::Answer(winner) if winner.rule.intent == previous => {
                Some(self.answer(&winner, lang, Via::FollowUp))
            }
            _ => None,
        }
    }

    /// The second stage: the closest examples (see the module docs).
    fn second_stage(&self, normalised: &str, lang: Lang, mode: Mode) -> Option<Decision> {
        let settings = &self.settings;
        let threshold = settings.similarity_threshold;
        if threshold <= 0.0 {
            return None;
        }
        let other = match lang {
            Lang::En => None,
            Lang::Ar => Some((Lang::Fa, settings.cross_language_weight)),
            Lang::Fa => Some((Lang::Ar, settings.cross_language_weight)),
        };
        // Small talk answers from its patterns only: short greetings are close to any
        // short message that shares a word with them (`عليكم`).
        let nearest: Vec<_> = self
            .similar
            .nearest(normalised, lang, other, mode == Mode::Check)
            .into_iter()
            .filter(|nearest| !self.rules[nearest.rule].background)
            .collect();
        let to_candidate = |rule: usize, similarity: f32| Candidate {
            rule: &self.rules[rule],
            score: similarity,
            signal: 0.0,
        };
        let top = nearest.first()?;
        if top.similarity < threshold {
            return None;
        }
        let top_intent = &self.rules[top.rule].intent;
        let close = |similarity: f32| similarity + settings.similarity_margin > top.similarity;
        // Best first; each intent once.
        let mut intents: Vec<&str> = vec![top_intent];
        let mut runner_up = None;
        for other in &nearest[1..] {
            let intent = self.rules[other.rule].intent.as_str();
            if intents.contains(&intent) {
                continue;
            }
            intents.push(intent);
            if !close(other.similarity) {
                break;
            }
            let rule = &self.rules[other.rule];
            if rule.action == Action::Handoff && other.similarity >= threshold {
                // When in doubt between an answer and a handoff, hand off.
                return Some(self.handoff(
                    &to_candidate(other.rule, other.similarity),
                    lang,
                    Via::Examples,
                ));
            }
            if runner_up.is_none() {
                runner_up = Some(*other);
            }
        }
        let best = to_candidate(top.rule, top.similarity);
        if best.rule.action == Action::Handoff {
            return Some(self.handoff(&best, lang, Via::Examples));
        }
        match runner_up {
            Some(second) => Some(self.clarify(
                lang,
                &best,
                &to_candidate(second.rule, second.similarity),
                Via::Examples,
            )),
            None => Some(self.answer(&best, lang, Via::Examples)),
        }
    }

    /// A question asked again: to a person.
    fn repeated(&self, lang: Lang) -> Decision {
        match self
            .signal_rule(Target::Requested)
            .or_else(|| self.signal_rule(Target::Complaint))
        {
            Some(rule) => {
                let mut decision = self.handoff(
                    &Candidate {
                        rule,
                        score: self.settings.threshold,
                        signal: self.settings.threshold,
                    },
                    lang,
                    Via::Signals,
                );
                if let Decision::Handoff { reason, .. } = &mut decision {
                    *reason = HandoffReason::Repeated;
                }
                decision
            }
            None => Decision::Handoff {
                rule_id: None,
                intent: "none".to_string(),
                lang,
                department: None,
                reason: HandoffReason::Repeated,
                priority: 0,
                text: self.phrases(lang).handoff.clone(),
                score: self.settings.threshold,
                via: Via::Signals,
            },
        }
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

    fn answer(&self, candidate: &Candidate<'_>, lang: Lang, via: Via) -> Decision {
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
            via,
        }
    }

    fn handoff(&self, candidate: &Candidate<'_>, lang: Lang, via: Via) -> Decision {
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
            via,
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

    fn clarify(
        &self,
        lang: Lang,
        top: &Candidate<'_>,
        second: &Candidate<'_>,
        via: Via,
    ) -> Decision {
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
            via,
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
                via: Via::Misses,
            };
        }
        decision
    }
}

/// Higher score first; on a tie, higher priority; then file order (stable sort).
fn better(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    a.score > b.score || (a.score == b.score && a.rule.priority > b.rule.priority)
}

/// If `normalised` is a follow-up by its form, the number of words after its marker.
fn follow_up_marker(normalised: &str) -> Option<usize> {
    let n_words = normalised.split(' ').count();
    let opening = FOLLOW_UP_MARKERS
        .iter()
        .filter(|marker| {
            normalised
                .strip_prefix(**marker)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .max_by_key(|marker| marker.len());
    if let Some(marker) = opening {
        return Some(n_words - marker.split(' ').count());
    }
    let first = normalised.split(' ').next().unwrap_or("");
    if let Some(glued) = first.strip_prefix('و')
        && GLUED_AND_WORDS.contains(&glued)
    {
        return Some(n_words);
    }
    for marker in TRAILING_MARKERS {
        if let Some(rest) = normalised.strip_suffix(marker)
            && rest.ends_with(' ')
        {
            return Some(n_words - marker.split(' ').count());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_normalised() {
        for marker in FOLLOW_UP_MARKERS
            .iter()
            .chain(GLUED_AND_WORDS)
            .chain(TRAILING_MARKERS)
        {
            assert_eq!(normalize(marker), *marker);
        }
    }

    #[test]
    fn follow_up_markers() {
        let words_after = |text: &str| follow_up_marker(&normalize(text));
        assert_eq!(words_after("and how much does it cost?"), Some(5));
        assert_eq!(words_after("what about express?"), Some(1));
        assert_eq!(words_after("And for returns?"), Some(1));
        assert_eq!(words_after("وكم سعره؟"), Some(2));
        assert_eq!(words_after("طيب والاكسبرس؟"), Some(1));
        assert_eq!(words_after("و برای اکسپرس؟"), Some(1));
        assert_eq!(words_after("اکسپرس چی؟"), Some(1));
        assert_eq!(words_after("where is my order"), None);
        assert_eq!(words_after("android"), None);
        assert_eq!(words_after("وين طلبي"), None);
    }
}
