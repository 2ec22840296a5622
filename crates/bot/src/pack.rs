//! The rule-pack file format, validation and the compiled [`RuleSet`].
//!
//! Files are deserialised with serde into `Raw*` structs whose located fields are
//! [`toml::Spanned`], so every error, syntactic or semantic, carries `file:line`.
//! Validated rules become public [`Rule`] values (the read-only view for the console);
//! their patterns go to the matcher as [`TermSpec`]s.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use crate::identity::{Identity, PhraseKey, fill};
use crate::matcher::{Matcher, TermKind, TermSpec};
use crate::signals::{LEXICON, LEXICON_NAME, Signal, Target};
use crate::similar::{Similar, SimilarBuilder};
use crate::speller::{Speller, VocabularyBuilder};
use crate::triage::{Decision, HandoffReason, Mode, TriageContext, TriageInput};
use crate::{Lang, RuleError, RuleFile};

/// A text in each supported language.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LangText {
    /// English.
    pub en: String,
    /// Arabic.
    pub ar: String,
    /// Persian.
    pub fa: String,
}

impl LangText {
    /// The text in `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Ar => &self.ar,
            Lang::Fa => &self.fa,
        }
    }

    fn get_mut(&mut self, lang: Lang) -> &mut String {
        match lang {
            Lang::En => &mut self.en,
            Lang::Ar => &mut self.ar,
            Lang::Fa => &mut self.fa,
        }
    }
}

/// What a rule does when it wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reply with the rule's answer.
    Answer,
    /// Hand the conversation to a person.
    Handoff,
}

/// A quick reply a rule offers: a button whose label is sent back as the visitor's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickReplySpec {
    /// The intent the button leads to (its label must triage there; `check` tests it).
    pub intent: String,
    /// Button label per language; also the payload.
    pub label: LangText,
}

/// A sentence a rule must (example) or must not (counter-example) win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Language of the sentence (the triage locale when it is checked).
    pub lang: Lang,
    /// The sentence.
    pub text: String,
    /// Line in the rule file.
    pub line: usize,
}

/// One compiled rule, as a read-only view (for the console and tools).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique id across the pack.
    pub id: String,
    /// The intent the rule recognises (several rules may share one).
    pub intent: String,
    /// File the rule came from.
    pub file: String,
    /// Line of the rule's `id` key.
    pub line: usize,
    /// Short topic name, used for quick replies and clarifying questions.
    pub label: LangText,
    /// The answer (required for `Action::Answer`; for handoffs it replaces the default
    /// handoff phrase).
    pub answer: Option<LangText>,
    /// Answer or hand off.
    pub action: Action,
    /// Why a handoff happens (derived from the intent unless `reason` is given).
    pub handoff_reason: HandoffReason,
    /// Department for handoffs.
    pub department: Option<String>,
    /// A link shown with the answer.
    pub link: Option<String>,
    /// Queue priority of a handoff; tie-breaker between equal scores.
    pub priority: i32,
    /// Small talk: only answers when no other intent reaches the threshold.
    pub background: bool,
    /// Intents offered as quick replies after the answer (labels of their rules).
    pub follow_ups: Vec<String>,
    /// Quick replies with their own labels.
    pub quick_replies: Vec<QuickReplySpec>,
    /// Sentences that must reach this rule.
    pub examples: Vec<Example>,
    /// Sentences that must not reach this rule.
    pub counter_examples: Vec<Example>,
}

/// Decision thresholds, from `[settings]` (built-in defaults otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Minimum intent score to answer (a single full keyword scores 1.0).
    pub threshold: f32,
    /// Clarify when the runner-up scores within this fraction of the top score.
    pub clarify_margin: f32,
    /// Hand off when `consecutive_misses + 1 >= max_misses` on a miss; 0 disables.
    pub max_misses: u32,
    /// Weight of an Arabic pattern on Persian text and vice versa (shared script).
    pub cross_language_weight: f32,
    /// A handoff intent above the threshold wins if it scores at least this fraction of
    /// the best answer's score.
    pub handoff_dominance: f32,
    /// Intents offered as quick replies on a fallback (besides "talk to a person").
    pub fallback_follow_ups: Vec<String>,
    /// Correct typos towards the pack's vocabulary before matching.
    pub spelling: bool,
    /// Built-in signals: person and frustration lexicons, shouting, `!!!`, a repeated
    /// question.
    pub signals: bool,
    /// Second stage: minimum similarity (0..1) of the message to a rule's example for
    /// that rule to answer when no rule matched; 0 turns the second stage off.
    pub similarity_threshold: f32,
    /// Second stage: the runner-up must be at least this much less similar, or the bot
    /// asks which of the two the visitor means.
    pub similarity_margin: f32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            threshold: 1.0,
            clarify_margin: 0.15,
            max_misses: 2,
            cross_language_weight: 0.7,
            handoff_dominance: 0.5,
            fallback_follow_ups: Vec::new(),
            spelling: true,
            signals: true,
            similarity_threshold: 0.55,
            similarity_margin: 0.08,
        }
    }
}

/// The fixed texts of the bot in one language (built in, overridable in `[phrases.xx]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrases {
    /// The bot's display name.
    pub bot_name: String,
    /// When the bot did not understand.
    pub fallback: String,
    /// Question before the clarifying quick replies.
    pub clarify: String,
    /// Said when handing off to a person.
    pub handoff: String,
    /// No agent online; contains `{when}` (see [`Phrases::offline_text`]).
    pub offline: String,
    /// Asks for an email or phone number to reply later.
    pub ask_contact: String,
    /// Confirms the contact details were saved.
    pub contact_saved: String,
    /// Label of the "talk to a person" quick reply (also its payload).
    pub talk_to_person: String,
}

impl Phrases {
    /// The offline text with `{when}` replaced (e.g. "Saturday at 9:00").
    pub fn offline_text(&self, when: &str) -> String {
        self.offline.replace("{when}", when)
    }

    fn builtin(lang: Lang) -> Phrases {
        let texts: [&str; 8] = match lang {
            Lang::En => [
                "Salam Assistant",
                "Sorry, I didn't quite get that. Could you rephrase it, pick a topic below, or talk to a person?",
                "Just to be sure, which of these do you mean?",
                "I'm connecting you with a person from our team. Please stay in this chat; they will reply here.",
                "All of our team are offline right now. You can expect a reply {when}.",
                "Leave your email or phone number and we'll get back to you as soon as we can.",
                "Thank you, we've saved your contact details and will get back to you soon.",
                "Talk to a person",
            ],
            Lang::Ar => [
                "مساعد سلام",
                "عذرًا، لم أفهم طلبك تمامًا. هل يمكنك إعادة صياغته، أو اختيار أحد المواضيع أدناه، أو التحدث مع أحد موظفينا؟",
                "للتأكد فقط، أيّ من هذه تقصد؟",
                "جارٍ تحويلك إلى أحد أعضاء فريقنا. يُرجى البقاء في هذه المحادثة، وسيتم الرد عليك هنا.",
                "جميع أعضاء فريقنا غير متصلين حاليًا. يمكنك توقّع الرد {when}.",
                "اترك بريدك الإلكتروني أو رقم هاتفك وسنتواصل معك في أقرب وقت ممكن.",
                "شكرًا لك، حفظنا بيانات التواصل الخاصة بك وسنعود إليك قريبًا.",
                "التحدث مع موظف",
            ],
            Lang::Fa => [
                "دستیار سلام",
                "ببخشید، متوجه منظورتان نشدم. لطفاً سؤال را به شکل دیگری بپرسید، یکی از موضوع‌های زیر را انتخاب کنید یا با یکی از همکاران ما صحبت کنید.",
                "برای اینکه مطمئن شوم، منظورتان کدام یک از این‌هاست؟",
                "در حال وصل کردن شما به یکی از همکارانمان هستم. لطفاً در همین گفتگو بمانید؛ پاسخ همین‌جا داده می‌شود.",
                "در حال حاضر همه همکاران ما آفلاین هستند. پاسخ را {when} دریافت خواهید کرد.",
                "لطفاً ایمیل یا شماره تلفن خود را بگذارید تا در اولین فرصت با شما تماس بگیریم.",
                "ممنون، اطلاعات تماس شما ثبت شد و به‌زودی با شما تماس می‌گیریم.",
                "صحبت با پشتیبان",
            ],
        };
        let [
            bot_name,
            fallback,
            clarify,
            handoff,
            offline,
            ask_contact,
            contact_saved,
            talk_to_person,
        ] = texts.map(str::to_string);
        Phrases {
            bot_name,
            fallback,
            clarify,
            handoff,
            offline,
            ask_contact,
            contact_saved,
            talk_to_person,
        }
    }
}

/// A compiled rule pack. Immutable, `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) matcher: Matcher,
    pub(crate) settings: Settings,
    pub(crate) phrases: [Phrases; 3],
    /// The built-in signals; signal `i` is the matcher's rule `rules.len() + i`.
    pub(crate) signals: Vec<Signal>,
    pub(crate) speller: Speller,
    pub(crate) similar: Similar,
    /// Where `[phrases]` came from, for `check` errors about phrases.
    phrases_origin: Option<(String, usize)>,
}

impl RuleSet {
    /// Parses, validates and compiles a pack. Does not run the examples (see
    /// [`RuleSet::check`]). All problems are reported, not only the first.
    pub fn load(files: &[RuleFile]) -> Result<RuleSet, Vec<RuleError>> {
        RuleSet::load_with(files, &Identity::default())
    }

    /// [`RuleSet::load`] with a site's identity over the pack's: its `{name}` values
    /// and phrases win (see [`Identity`]). Each call compiles an independent pack, so a
    /// hub keeps one `Arc<RuleSet>` per site.
    pub fn load_with(files: &[RuleFile], identity: &Identity) -> Result<RuleSet, Vec<RuleError>> {
        let mut loader = Loader::default();
        for file in files {
            loader.add_file(file);
        }
        loader.finish(identity)
    }

    /// Everything [`RuleSet::load`] reports, plus every example that does not reach its
    /// rule, every counter-example that does, and every quick-reply label that does not
    /// lead to its intent. Empty means the pack is good.
    ///
    /// An example is checked without itself in the second stage's memory (leave one
    /// out): it passes through the patterns, or through being close to the rule's other
    /// examples, never through being its own nearest example.
    pub fn check(files: &[RuleFile]) -> Vec<RuleError> {
        RuleSet::check_with(files, &Identity::default())
    }

    /// [`RuleSet::check`] with a site's identity (see [`RuleSet::load_with`]).
    pub fn check_with(files: &[RuleFile], identity: &Identity) -> Vec<RuleError> {
        match RuleSet::load_with(files, identity) {
            Err(errors) => errors,
            Ok(rule_set) => rule_set.run_checks(),
        }
    }

    /// Triage as `check` does it: no context, the example left out of the second stage.
    fn check_triage(&self, text: &str, lang: Lang) -> Decision {
        self.decide(
            &TriageInput::new(text, Some(lang)),
            &TriageContext::default(),
            Mode::Check,
        )
    }

    /// The message as the rules see it when typos were corrected (normalised, see
    /// [`crate::normalize`]), or `None` when nothing needed correcting or spelling is
    /// off. `lang` is the language of the text (detected when `None`), as in
    /// [`TriageInput::locale`]. For explanations: `salam rules try` shows it.
    pub fn spelling_correction(&self, text: &str, lang: Option<Lang>) -> Option<String> {
        if !self.settings.spelling {
            return None;
        }
        let text = crate::triage::bounded(text);
        let lang = lang
            .or_else(|| crate::detect_language(text))
            .unwrap_or(Lang::En);
        self.speller
            .correct(&normalize(text), crate::speller::Typing::of(text, lang))
    }

    /// The built-in signals that fire on `text`, by name: the lexicons of
    /// `signals.toml` (`person`, `anger`, `disappointment`, `overcharge`, `leaving`),
    /// `shouting` and `exclamations`, and the families of the structural signal as
    /// `affect:<family>` (`affect:absence`, `affect:blame` …, `affect:person`; see
    /// `bot-rules/README.md`). For explanations (`salam rules try`); empty when
    /// `[settings] signals = false`. A repeated question needs the conversation and is
    /// not reported here.
    pub fn signals_in(&self, text: &str, lang: Option<Lang>) -> Vec<&str> {
        if !self.settings.signals {
            return Vec::new();
        }
        let text = crate::triage::bounded(text);
        let lang = lang
            .or_else(|| crate::detect_language(text))
            .unwrap_or(Lang::En);
        let normalised = normalize(text);
        let corrected = self
            .speller
            .correct(&normalised, crate::speller::Typing::of(text, lang));
        let scores = self.matcher.score(
            corrected.as_deref().unwrap_or(&normalised),
            Some(lang),
            self.settings.cross_language_weight,
            0,
        );
        let mut names: Vec<&str> = scores
            .iter()
            .filter_map(|score| score.rule.checked_sub(self.rules.len()))
            .filter_map(|idx| self.signals.get(idx))
            .map(|signal| signal.name.as_str())
            .collect();
        if crate::signals::is_shouting(text) {
            names.push("shouting");
        }
        if crate::signals::exclamations(text) >= crate::signals::MIN_EXCLAMATIONS {
            names.push("exclamations");
        }
        let affect = crate::affect::read(text, &normalised, lang);
        for family in affect.names() {
            names.push(crate::affect::explained(family));
        }
        if affect.person {
            names.push("affect:person");
        }
        names
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The decision settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The fixed bot texts in `lang`.
    pub fn phrases(&self, lang: Lang) -> &Phrases {
        &self.phrases[lang_index(lang)]
    }

    fn run_checks(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        let error_at = |rule: &Rule, line: usize, reason: String| RuleError {
            file: rule.file.clone(),
            line,
            reason,
        };
        for rule in &self.rules {
            for example in &rule.examples {
                let decision = self.check_triage(&example.text, example.lang);
                if decision.rule_id() != Some(rule.id.as_str()) {
                    errors.push(error_at(
                        rule,
                        example.line,
                        format!(
                            "example {:?} ({}) should reach rule {:?} but got {}",
                            example.text,
                            example.lang,
                            rule.id,
                            describe(&decision)
                        ),
                    ));
                }
            }
            for example in &rule.counter_examples {
                let decision = self.check_triage(&example.text, example.lang);
                if decision.rule_id() == Some(rule.id.as_str()) {
                    errors.push(error_at(
                        rule,
                        example.line,
                        format!(
                            "counter-example {:?} ({}) must not reach rule {:?}",
                            example.text, example.lang, rule.id
                        ),
                    ));
                }
            }
            for lang in Lang::ALL {
                let label = rule.label.get(lang);
                let decision = self.triage(&TriageInput::new(label, Some(lang)));
                if decision.predicted_intent() != rule.intent {
                    errors.push(error_at(
                        rule,
                        rule.line,
                        format!(
                            "label {label:?} ({lang}) of rule {:?} should lead to intent {:?} but got {}",
                            rule.id,
                            rule.intent,
                            describe(&decision)
                        ),
                    ));
                }
                for reply in &rule.quick_replies {
                    let label = reply.label.get(lang);
                    let decision = self.triage(&TriageInput::new(label, Some(lang)));
                    if decision.predicted_intent() != reply.intent {
                        errors.push(error_at(
                            rule,
                            rule.line,
                            format!(
                                "quick reply {label:?} ({lang}) should lead to intent {:?} but got {}",
                                reply.intent,
                                describe(&decision)
                            ),
                        ));
                    }
                }
            }
        }
        if self.rules.iter().any(|rule| rule.action == Action::Handoff) {
            for lang in Lang::ALL {
                let label = &self.phrases(lang).talk_to_person;
                let decision = self.triage(&TriageInput::new(label, Some(lang)));
                if decision.kind() != "handoff" {
                    let (file, line) = self
                        .phrases_origin
                        .clone()
                        .unwrap_or_else(|| ("<built-in phrases>".to_string(), 1));
                    errors.push(RuleError {
                        file,
                        line,
                        reason: format!(
                            "talk-to-a-person label {label:?} ({lang}) should hand off but got {}",
                            describe(&decision)
                        ),
                    });
                }
            }
        }
        errors
    }
}

fn describe(decision: &Decision) -> String {
    match decision.rule_id() {
        Some(rule_id) => format!(
            "{} via rule {rule_id:?} (score {:.2})",
            decision.kind(),
            decision.score()
        ),
        None => match decision {
            Decision::Clarify { candidates, .. } => format!("clarify between {candidates:?}"),
            _ => format!("{} (score {:.2})", decision.kind(), decision.score()),
        },
    }
}

pub(crate) fn lang_index(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Ar => 1,
        Lang::Fa => 2,
    }
}

// ---------------------------------------------------------------------------------------
// Raw file format (serde).

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
    // Not `Spanned`: toml 0.8 cannot span a table split over several headers
    // (`[phrases.en]`, `[phrases.ar]`); the loader finds the header line instead.
    #[serde(default)]
    settings: Option<RawSettings>,
    #[serde(default)]
    phrases: Option<RawPhrasesByLang>,
    // Not `Spanned`, for the same reason as `phrases`.
    #[serde(default)]
    identity: Option<BTreeMap<String, RawVar>>,
}

/// A value of `[identity]`: one text, or one per language.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawVar {
    Text(String),
    PerLang(RawLangText),
}

/// The built-in lexicons file (`signals.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLexicon {
    signal: Vec<RawSignal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    name: String,
    handoff: String,
    #[serde(default, rename = "match")]
    phrases: RawTerms,
    #[serde(default)]
    hint: RawTerms,
    #[serde(default)]
    all: RawGroups,
    #[serde(default)]
    not: RawTerms,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    threshold: Option<f32>,
    clarify_margin: Option<f32>,
    max_misses: Option<u32>,
    cross_language_weight: Option<f32>,
    handoff_dominance: Option<f32>,
    #[serde(default)]
    fallback_follow_ups: Vec<Spanned<String>>,
    spelling: Option<bool>,
    signals: Option<bool>,
    similarity_threshold: Option<f32>,
    similarity_margin: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhrasesByLang {
    en: Option<RawPhrases>,
    ar: Option<RawPhrases>,
    fa: Option<RawPhrases>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhrases {
    bot_name: Option<String>,
    fallback: Option<String>,
    clarify: Option<String>,
    handoff: Option<String>,
    offline: Option<String>,
    ask_contact: Option<String>,
    contact_saved: Option<String>,
    talk_to_person: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    intent: Spanned<String>,
    label: Option<Spanned<RawLangText>>,
    answer: Option<Spanned<RawLangText>>,
    action: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
    department: Option<String>,
    link: Option<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    background: bool,
    #[serde(default)]
    follow_ups: Vec<Spanned<String>>,
    #[serde(default)]
    quick_replies: Vec<Spanned<RawQuickReply>>,
    #[serde(default, rename = "match")]
    phrases: RawTerms,
    #[serde(default)]
    hint: RawTerms,
    #[serde(default)]
    all: RawGroups,
    #[serde(default)]
    not: RawTerms,
    #[serde(default)]
    regex: Vec<Spanned<String>>,
    #[serde(default)]
    examples: RawTerms,
    #[serde(default)]
    counter_examples: RawTerms,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLangText {
    en: Option<String>,
    ar: Option<String>,
    fa: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuickReply {
    intent: String,
    en: Option<String>,
    ar: Option<String>,
    fa: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerms {
    #[serde(default)]
    en: Vec<Spanned<String>>,
    #[serde(default)]
    ar: Vec<Spanned<String>>,
    #[serde(default)]
    fa: Vec<Spanned<String>>,
    #[serde(default)]
    any: Vec<Spanned<String>>,
}

impl RawTerms {
    fn by_lang(&self) -> [(Option<Lang>, &[Spanned<String>]); 4] {
        [
            (Some(Lang::En), &self.en),
            (Some(Lang::Ar), &self.ar),
            (Some(Lang::Fa), &self.fa),
            (None, &self.any),
        ]
    }

    fn is_empty(&self) -> bool {
        self.by_lang().iter().all(|(_, terms)| terms.is_empty())
    }
}

type RawGroup = Vec<Spanned<String>>;

/// The pattern lists of one rule or built-in signal, borrowed from the raw file.
struct Patterns<'a> {
    phrases: &'a RawTerms,
    hint: &'a RawTerms,
    all: &'a RawGroups,
    not: &'a RawTerms,
    regex: &'a [Spanned<String>],
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroups {
    #[serde(default)]
    en: Vec<RawGroup>,
    #[serde(default)]
    ar: Vec<RawGroup>,
    #[serde(default)]
    fa: Vec<RawGroup>,
    #[serde(default)]
    any: Vec<RawGroup>,
}

impl RawGroups {
    fn by_lang(&self) -> [(Option<Lang>, &[RawGroup]); 4] {
        [
            (Some(Lang::En), &self.en),
            (Some(Lang::Ar), &self.ar),
            (Some(Lang::Fa), &self.fa),
            (None, &self.any),
        ]
    }
}

// ---------------------------------------------------------------------------------------
// Loading.

/// Most groups in one `all` entry.
const MAX_ALL_GROUPS: usize = 8;

/// Longest accepted regex pattern, in bytes (with the compiled size limit below, this
/// keeps pack compilation and matching bounded).
const MAX_REGEX_LEN: usize = 500;

#[derive(Default)]
struct Loader {
    errors: Vec<RuleError>,
    rules: Vec<Rule>,
    terms: Vec<TermSpec>,
    settings: Settings,
    settings_origin: Option<(String, usize)>,
    fallback_follow_ups: Vec<(String, usize, String)>,
    phrases_origin: Option<(String, usize)>,
    phrases: Option<[Phrases; 3]>,
    /// (file, line, target intent) of every follow-up reference, checked at the end.
    references: Vec<(String, usize, String)>,
    /// `[identity]`: name → (value for every language, per language).
    identity: BTreeMap<String, (Option<String>, [Option<String>; 3])>,
    identity_origin: Option<(String, usize)>,
}

/// A rule file with an index of its line starts, so locating a span is a binary search
/// (scanning from the start for every span made large packs quadratic).
struct Source<'a> {
    name: String,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    fn new(file: &'a RuleFile) -> Source<'a> {
        let line_starts = std::iter::once(0)
            .chain(file.text.match_indices('\n').map(|(idx, _)| idx + 1))
            .collect();
        Source {
            name: file.name.clone(),
            text: &file.text,
            line_starts,
        }
    }

    /// 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .max(1)
    }
}

/// Byte offset of the first line starting with `header` (e.g. `[phrases`), or 0.
fn header_offset(text: &str, header: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(header) {
            return offset;
        }
        offset += line.len();
    }
    0
}

fn valid_var(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_-.".contains(&byte)
        })
}

impl Loader {
    fn error(&mut self, file: &Source<'_>, offset: usize, reason: impl Into<String>) {
        self.errors.push(RuleError {
            file: file.name.clone(),
            line: file.line(offset),
            reason: reason.into(),
        });
    }

    fn add_file(&mut self, file: &RuleFile) {
        let file = &Source::new(file);
        let raw: RawFile = match toml::from_str(file.text) {
            Ok(raw) => raw,
            Err(error) => {
                let offset = error.span().map_or(0, |span| span.start);
                let message = match error.message().trim() {
                    // toml 0.8 has no message for some syntax errors (a control character
                    // in a comment, a lone carriage return): name the character instead.
                    // Found by fuzzing (crates/bot/tests/fuzz_regressions.rs).
                    "" => match file.text.get(offset..).and_then(|rest| rest.chars().next()) {
                        Some(ch) => format!("invalid TOML: unexpected character {ch:?}"),
                        None => "invalid TOML".to_string(),
                    },
                    message => message.to_string(),
                };
                self.error(file, offset, message);
                return;
            }
        };
        if let Some(settings) = &raw.settings {
            self.add_settings(file, settings);
        }
        if let Some(phrases) = &raw.phrases {
            self.add_phrases(file, phrases);
        }
        if let Some(identity) = &raw.identity {
            self.add_identity(file, identity);
        }
        for rule in &raw.rule {
            self.add_rule(file, rule);
        }
    }

    fn add_settings(&mut self, file: &Source<'_>, raw: &RawSettings) {
        let offset = header_offset(file.text, "[settings");
        if let Some((other_file, other_line)) = &self.settings_origin {
            let reason = format!("[settings] already defined at {other_file}:{other_line}");
            self.error(file, offset, reason);
            return;
        }
        self.settings_origin = Some((file.name.clone(), file.line(offset)));
        let defaults = Settings::default();
        let fraction = |value: Option<f32>, default: f32| value.unwrap_or(default);
        self.settings = Settings {
            threshold: fraction(raw.threshold, defaults.threshold),
            clarify_margin: fraction(raw.clarify_margin, defaults.clarify_margin),
            max_misses: raw.max_misses.unwrap_or(defaults.max_misses),
            cross_language_weight: fraction(
                raw.cross_language_weight,
                defaults.cross_language_weight,
            ),
            handoff_dominance: fraction(raw.handoff_dominance, defaults.handoff_dominance),
            fallback_follow_ups: raw
                .fallback_follow_ups
                .iter()
                .map(|intent| intent.get_ref().clone())
                .collect(),
            spelling: raw.spelling.unwrap_or(defaults.spelling),
            signals: raw.signals.unwrap_or(defaults.signals),
            similarity_threshold: fraction(raw.similarity_threshold, defaults.similarity_threshold),
            similarity_margin: fraction(raw.similarity_margin, defaults.similarity_margin),
        };
        let numbers = [
            ("threshold", self.settings.threshold, 0.01, 100.0),
            ("clarify_margin", self.settings.clarify_margin, 0.0, 1.0),
            (
                "cross_language_weight",
                self.settings.cross_language_weight,
                0.0,
                1.0,
            ),
            (
                "handoff_dominance",
                self.settings.handoff_dominance,
                0.0,
                10.0,
            ),
            (
                "similarity_threshold",
                self.settings.similarity_threshold,
                0.0,
                1.0,
            ),
            (
                "similarity_margin",
                self.settings.similarity_margin,
                0.0,
                1.0,
            ),
        ];
        for (name, value, low, high) in numbers {
            if !(low..=high).contains(&value) {
                self.error(
                    file,
                    offset,
                    format!("setting {name} = {value} is outside {low}..={high}"),
                );
            }
        }
        for intent in &raw.fallback_follow_ups {
            let line = file.line(intent.span().start);
            self.fallback_follow_ups
                .push((file.name.clone(), line, intent.get_ref().clone()));
        }
    }

    fn add_identity(&mut self, file: &Source<'_>, raw: &BTreeMap<String, RawVar>) {
        let offset = header_offset(file.text, "[identity");
        if let Some((other_file, other_line)) = &self.identity_origin {
            let reason = format!("[identity] already defined at {other_file}:{other_line}");
            self.error(file, offset, reason);
            return;
        }
        self.identity_origin = Some((file.name.clone(), file.line(offset)));
        for (name, value) in raw {
            if !valid_var(name) {
                self.error(
                    file,
                    offset,
                    format!("identity name {name:?} must be 1-64 chars of a-z 0-9 _"),
                );
                continue;
            }
            let entry = match value {
                RawVar::Text(text) => (Some(text.clone()), [None, None, None]),
                RawVar::PerLang(texts) => {
                    let per_lang = [texts.en.clone(), texts.ar.clone(), texts.fa.clone()];
                    if per_lang.iter().any(Option::is_none) {
                        self.error(
                            file,
                            offset,
                            format!("identity {name:?} needs en, ar and fa (or one text)"),
                        );
                        continue;
                    }
                    (None, per_lang)
                }
            };
            self.identity.insert(name.clone(), entry);
        }
    }

    /// The value of `{name}` in `lang`: the site's identity first, then the pack's.
    fn var<'v>(&'v self, identity: &'v Identity, lang: Lang, name: &str) -> Option<&'v str> {
        identity.value(lang, name).or_else(|| {
            let (all, per_lang) = self.identity.get(name)?;
            per_lang[lang_index(lang)].as_deref().or(all.as_deref())
        })
    }

    /// Fills the placeholders of answers, links and phrases; applies the site's phrases.
    fn apply_identity(&mut self, identity: &Identity) {
        let mut errors = Vec::new();
        let mut rules = std::mem::take(&mut self.rules);
        for rule in &mut rules {
            let mut unknown = |name: String| {
                errors.push(RuleError {
                    file: rule.file.clone(),
                    line: rule.line,
                    reason: format!(
                        "rule {:?} uses {{{name}}}, which [identity] does not define",
                        rule.id
                    ),
                });
            };
            if let Some(answer) = &mut rule.answer {
                for lang in Lang::ALL {
                    let text = answer.get_mut(lang);
                    match fill(text, |name| self.var(identity, lang, name), true) {
                        Ok(filled) => *text = filled,
                        Err(name) => unknown(name),
                    }
                }
            }
            if let Some(link) = &mut rule.link {
                // Links are the same in every language: English values.
                match fill(link, |name| self.var(identity, Lang::En, name), false) {
                    Ok(filled) => *link = filled,
                    Err(name) => unknown(name),
                }
                if let Some(key) = crate::customer::first_fallback_placeholder(link) {
                    let reason = format!(
                        "rule {:?}: a link cannot use the customer's {{{key}|…}} (answers only)",
                        rule.id
                    );
                    errors.push(RuleError {
                        file: rule.file.clone(),
                        line: rule.line,
                        reason,
                    });
                }
            }
        }
        self.rules = rules;
        let mut phrases = self
            .phrases
            .take()
            .unwrap_or_else(|| Lang::ALL.map(Phrases::builtin));
        let (file, line) = self
            .phrases_origin
            .clone()
            .unwrap_or_else(|| ("<built-in phrases>".to_string(), 1));
        for lang in Lang::ALL {
            let phrases = &mut phrases[lang_index(lang)];
            for (key, text) in identity.phrases_in(lang) {
                text.clone_into(key.field(phrases));
            }
            for key in PhraseKey::ALL {
                let text = key.field(phrases);
                if let Some(customer_key) = crate::customer::first_fallback_placeholder(text) {
                    errors.push(RuleError {
                        file: file.clone(),
                        line,
                        reason: format!(
                            "phrase `{}` ({lang}) cannot use the customer's {{{customer_key}|…}} (answers only)",
                            key.as_str()
                        ),
                    });
                }
                match fill(text, |name| self.var(identity, lang, name), false) {
                    Ok(filled) => *text = filled,
                    Err(name) => errors.push(RuleError {
                        file: file.clone(),
                        line,
                        reason: format!(
                            "phrase `{}` ({lang}) uses {{{name}}}, which [identity] does not define",
                            key.as_str()
                        ),
                    }),
                }
            }
            if !phrases.offline.contains("{when}") {
                errors.push(RuleError {
                    file: file.clone(),
                    line,
                    reason: format!(
                        "phrase `offline` ({lang}) must contain the {{when}} placeholder"
                    ),
                });
            }
            if normalize(&phrases.talk_to_person).is_empty() {
                errors.push(RuleError {
                    file: file.clone(),
                    line,
                    reason: format!("phrase `talk_to_person` ({lang}) must not be empty"),
                });
            }
        }
        self.phrases = Some(phrases);
        self.errors.extend(errors);
    }

    /// Compiles the built-in lexicons as pseudo-rules after the pack's rules.
    fn add_signals(&mut self) -> Vec<Signal> {
        let file = RuleFile::new(LEXICON_NAME, LEXICON);
        let source = Source::new(&file);
        let raw: RawLexicon = match toml::from_str(LEXICON) {
            Ok(raw) => raw,
            Err(error) => {
                let offset = error.span().map_or(0, |span| span.start);
                self.error(&source, offset, error.message().to_string());
                return Vec::new();
            }
        };
        let mut signals = Vec::new();
        for raw_signal in &raw.signal {
            let target = match raw_signal.handoff.as_str() {
                "requested" => Target::Requested,
                "complaint" => Target::Complaint,
                other => {
                    self.error(&source, 0, format!("signal handoff {other:?}"));
                    continue;
                }
            };
            let patterns = Patterns {
                phrases: &raw_signal.phrases,
                hint: &raw_signal.hint,
                all: &raw_signal.all,
                not: &raw_signal.not,
                regex: &[],
            };
            let rule_idx = self.rules.len() + signals.len();
            let (terms, _) = self.collect_terms(&source, rule_idx, &patterns, 0);
            self.terms.extend(terms);
            signals.push(Signal {
                name: raw_signal.name.clone(),
                target,
            });
        }
        signals
    }

    fn add_phrases(&mut self, file: &Source<'_>, raw: &RawPhrasesByLang) {
        let offset = header_offset(file.text, "[phrases");
        if let Some((other_file, other_line)) = &self.phrases_origin {
            let reason = format!("[phrases] already defined at {other_file}:{other_line}");
            self.error(file, offset, reason);
            return;
        }
        self.phrases_origin = Some((file.name.clone(), file.line(offset)));
        let merged = Lang::ALL.map(|lang| {
            let mut base = Phrases::builtin(lang);
            let overrides = match lang {
                Lang::En => &raw.en,
                Lang::Ar => &raw.ar,
                Lang::Fa => &raw.fa,
            };
            if let Some(overrides) = overrides {
                let pairs = [
                    (&mut base.bot_name, &overrides.bot_name),
                    (&mut base.fallback, &overrides.fallback),
                    (&mut base.clarify, &overrides.clarify),
                    (&mut base.handoff, &overrides.handoff),
                    (&mut base.offline, &overrides.offline),
                    (&mut base.ask_contact, &overrides.ask_contact),
                    (&mut base.contact_saved, &overrides.contact_saved),
                    (&mut base.talk_to_person, &overrides.talk_to_person),
                ];
                for (target, value) in pairs {
                    if let Some(value) = value {
                        value.clone_into(target);
                    }
                }
            }
            base
        });
        // `offline` and `talk_to_person` are checked once placeholders are filled
        // (`apply_identity`).
        self.phrases = Some(merged);
    }

    fn lang_text(
        &mut self,
        file: &Source<'_>,
        what: &str,
        raw: &Spanned<RawLangText>,
    ) -> Option<LangText> {
        let offset = raw.span().start;
        let inner = raw.get_ref();
        let mut missing = Vec::new();
        for (lang, value) in [
            (Lang::En, &inner.en),
            (Lang::Ar, &inner.ar),
            (Lang::Fa, &inner.fa),
        ] {
            if value.as_deref().is_none_or(|text| text.trim().is_empty()) {
                missing.push(lang.as_str());
            }
        }
        if !missing.is_empty() {
            self.error(
                file,
                offset,
                format!("{what} is missing language(s): {}", missing.join(", ")),
            );
            return None;
        }
        Some(LangText {
            en: inner.en.clone().unwrap_or_default(),
            ar: inner.ar.clone().unwrap_or_default(),
            fa: inner.fa.clone().unwrap_or_default(),
        })
    }

    fn add_rule(&mut self, file: &Source<'_>, raw: &RawRule) {
        let n_errors_before = self.errors.len();
        let id = raw.id.get_ref().clone();
        let id_offset = raw.id.span().start;
        let intent = raw.intent.get_ref().clone();
        if !valid_id(&id) {
            self.error(
                file,
                id_offset,
                format!("rule id {id:?} must be 1-64 chars of a-z 0-9 _ - ."),
            );
        }
        if !valid_id(&intent) {
            let offset = raw.intent.span().start;
            self.error(
                file,
                offset,
                format!("intent {intent:?} must be 1-64 chars of a-z 0-9 _ - ."),
            );
        }
        if let Some(previous) = self.rules.iter().find(|rule| rule.id == id) {
            let reason = format!(
                "duplicate rule id {id:?} (first defined at {}:{})",
                previous.file, previous.line
            );
            self.error(file, id_offset, reason);
        }
        let action = match raw
            .action
            .as_ref()
            .map(|action| (action.get_ref().as_str(), action.span().start))
        {
            None | Some(("answer", _)) => Action::Answer,
            Some(("handoff", _)) => Action::Handoff,
            Some((other, offset)) => {
                self.error(
                    file,
                    offset,
                    format!("action must be \"answer\" or \"handoff\", not {other:?}"),
                );
                Action::Answer
            }
        };
        let default_reason = match intent.as_str() {
            "human_agent" => HandoffReason::Requested,
            "complaint" => HandoffReason::Complaint,
            _ => HandoffReason::RuleAction,
        };
        let handoff_reason = match raw.reason.as_ref() {
            None => default_reason,
            Some(reason) => match reason.get_ref().as_str() {
                "requested" => HandoffReason::Requested,
                "complaint" => HandoffReason::Complaint,
                "rule_action" => HandoffReason::RuleAction,
                other => {
                    let reason_text = format!(
                        "reason must be requested, complaint or rule_action, not {other:?}"
                    );
                    self.error(file, reason.span().start, reason_text);
                    default_reason
                }
            },
        };
        let label = match &raw.label {
            Some(label) => self.lang_text(file, "label", label),
            None => {
                self.error(
                    file,
                    id_offset,
                    format!("rule {id:?} has no label (en, ar, fa)"),
                );
                None
            }
        };
        let answer = match &raw.answer {
            Some(answer) => self.lang_text(file, "answer", answer),
            None if action == Action::Answer => {
                self.error(
                    file,
                    id_offset,
                    format!("rule {id:?} has no answer (en, ar, fa)"),
                );
                None
            }
            None => None,
        };
        let mut quick_replies = Vec::new();
        for reply in &raw.quick_replies {
            let offset = reply.span().start;
            let inner = reply.get_ref();
            let spanned = Spanned::new(
                reply.span(),
                RawLangText {
                    en: inner.en.clone(),
                    ar: inner.ar.clone(),
                    fa: inner.fa.clone(),
                },
            );
            if let Some(label) = self.lang_text(file, "quick reply", &spanned) {
                quick_replies.push(QuickReplySpec {
                    intent: inner.intent.clone(),
                    label,
                });
                self.references
                    .push((file.name.clone(), file.line(offset), inner.intent.clone()));
            }
        }
        for follow_up in &raw.follow_ups {
            let line = file.line(follow_up.span().start);
            self.references
                .push((file.name.clone(), line, follow_up.get_ref().clone()));
        }

        // Patterns.
        let rule_idx = self.rules.len();
        let patterns = Patterns {
            phrases: &raw.phrases,
            hint: &raw.hint,
            all: &raw.all,
            not: &raw.not,
            regex: &raw.regex,
        };
        let (terms, n_positive) = self.collect_terms(file, rule_idx, &patterns, id_offset);
        if n_positive == 0 {
            self.error(
                file,
                id_offset,
                format!("rule {id:?} has no patterns (match, hint, all or regex)"),
            );
        }
        let examples = collect_examples(file, &raw.examples);
        let counter_examples = collect_examples(file, &raw.counter_examples);
        if raw.examples.is_empty() {
            // Not an error: generated packs may have none. The default pack's test
            // asserts every rule has examples.
        }

        if self.errors.len() != n_errors_before {
            return;
        }
        let (Some(label), answer) = (label, answer) else {
            return;
        };
        self.terms.extend(terms);
        self.rules.push(Rule {
            id,
            intent,
            file: file.name.clone(),
            line: file.line(id_offset),
            label,
            answer,
            action,
            handoff_reason,
            department: raw.department.clone(),
            link: raw.link.clone(),
            priority: raw.priority,
            background: raw.background,
            follow_ups: raw.follow_ups.iter().map(|f| f.get_ref().clone()).collect(),
            quick_replies,
            examples,
            counter_examples,
        });
    }

    /// Turns the patterns of one rule (or built-in signal) into term specs for the
    /// matcher, reporting located errors. Returns the specs and the number of positive
    /// patterns (all but `not`).
    fn collect_terms(
        &mut self,
        file: &Source<'_>,
        rule_idx: usize,
        patterns: &Patterns<'_>,
        id_offset: usize,
    ) -> (Vec<TermSpec>, usize) {
        let mut terms = Vec::new();
        let mut n_positive = 0usize;
        for (kind, list) in [
            (TermKind::Phrase, patterns.phrases),
            (TermKind::Hint, patterns.hint),
            (TermKind::Not, patterns.not),
        ] {
            for (lang, patterns) in list.by_lang() {
                for pattern in patterns {
                    if kind != TermKind::Not {
                        n_positive += 1;
                    }
                    terms.push(TermSpec {
                        rule: rule_idx,
                        kind,
                        lang,
                        pattern: pattern.get_ref().clone(),
                        line: file.line(pattern.span().start),
                    });
                }
            }
        }
        let mut n_combos = 0u32;
        for (lang, groups) in patterns.all.by_lang() {
            for group_list in groups {
                if group_list.len() < 2 {
                    let offset = group_list
                        .first()
                        .map_or(id_offset, |term| term.span().start);
                    self.error(
                        file,
                        offset,
                        "an `all` entry needs at least two groups of words",
                    );
                    continue;
                }
                if group_list.len() > MAX_ALL_GROUPS {
                    // Longer entries used to load and then never match (the matcher's
                    // group count was capped at 8).
                    self.error(
                        file,
                        group_list[MAX_ALL_GROUPS].span().start,
                        format!("an `all` entry has at most {MAX_ALL_GROUPS} groups of words"),
                    );
                    continue;
                }
                n_positive += 1;
                for (group_idx, group) in group_list.iter().enumerate() {
                    // A group is a string of alternatives separated by `|`.
                    for alternative in group.get_ref().split('|') {
                        terms.push(TermSpec {
                            rule: rule_idx,
                            kind: TermKind::Group {
                                combo: n_combos,
                                group: group_idx as u8,
                                n_groups: group_list.len() as u8,
                            },
                            lang,
                            pattern: alternative.to_string(),
                            line: file.line(group.span().start),
                        });
                    }
                }
                n_combos += 1;
            }
        }
        for regex in patterns.regex {
            n_positive += 1;
            let line = file.line(regex.span().start);
            let pattern = regex.get_ref();
            if pattern.len() > MAX_REGEX_LEN {
                self.errors.push(RuleError {
                    file: file.name.clone(),
                    line,
                    reason: format!("regex is longer than {MAX_REGEX_LEN} bytes"),
                });
                continue;
            }
            if let Err(error) = crate::matcher::compile_regex(pattern) {
                self.errors.push(RuleError {
                    file: file.name.clone(),
                    line,
                    reason: format!("invalid regex {pattern:?}: {}", first_line(&error)),
                });
                continue;
            }
            terms.push(TermSpec {
                rule: rule_idx,
                kind: TermKind::Regex,
                lang: None,
                pattern: pattern.clone(),
                line,
            });
        }
        for term in &terms {
            if let Err(reason) = crate::matcher::check_pattern(term) {
                self.errors.push(RuleError {
                    file: file.name.clone(),
                    line: term.line,
                    reason,
                });
            }
        }
        (terms, n_positive)
    }

    fn finish(mut self, identity: &Identity) -> Result<RuleSet, Vec<RuleError>> {
        let intents: BTreeSet<&str> = self.rules.iter().map(|rule| rule.intent.as_str()).collect();
        let mut dangling = Vec::new();
        for (file, line, intent) in self.references.iter().chain(&self.fallback_follow_ups) {
            if !intents.contains(intent.as_str()) {
                dangling.push(RuleError {
                    file: file.clone(),
                    line: *line,
                    reason: format!("quick reply refers to unknown intent {intent:?}"),
                });
            }
        }
        self.errors.extend(dangling);
        self.apply_identity(identity);
        let signals = if self.settings.signals {
            self.add_signals()
        } else {
            Vec::new()
        };
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        // Rules that failed validation were skipped, so the rule indices in `terms` are
        // dense. File names for compile errors come from the rules.
        let files: BTreeMap<usize, String> = self
            .rules
            .iter()
            .enumerate()
            .map(|(idx, rule)| (idx, rule.file.clone()))
            .collect();
        let n_rules = self.rules.len() + signals.len();
        let matcher = Matcher::compile(&self.terms, n_rules).map_err(|failures| {
            failures
                .into_iter()
                .map(|(term_idx, reason)| {
                    let term = &self.terms[term_idx];
                    RuleError {
                        file: files
                            .get(&term.rule)
                            .cloned()
                            .unwrap_or_else(|| LEXICON_NAME.to_string()),
                        line: term.line,
                        reason,
                    }
                })
                .collect::<Vec<_>>()
        })?;
        let phrases = self
            .phrases
            .unwrap_or_else(|| Lang::ALL.map(Phrases::builtin));
        let speller = vocabulary(&self.terms, &self.rules, &phrases);
        let mut similar = SimilarBuilder::default();
        for (rule_idx, rule) in self.rules.iter().enumerate() {
            for (examples, counter) in [(&rule.examples, false), (&rule.counter_examples, true)] {
                for example in examples {
                    similar.add(rule_idx, example.lang, counter, normalize(&example.text));
                }
            }
        }
        Ok(RuleSet {
            rules: self.rules,
            matcher,
            settings: self.settings,
            phrases,
            signals,
            speller,
            similar: similar.build(),
            phrases_origin: self.phrases_origin,
        })
    }
}

/// The speller's vocabulary: pattern words as targets; examples, labels, answers and
/// phrases as known words.
fn vocabulary(terms: &[TermSpec], rules: &[Rule], phrases: &[Phrases; 3]) -> Speller {
    let mut builder = VocabularyBuilder::default();
    for term in terms {
        if term.kind == TermKind::Regex {
            continue;
        }
        if let Some(text) = crate::matcher::pattern_text(&term.pattern) {
            if term.pattern.trim_end().ends_with('*') {
                builder.add_stem(&text);
            } else {
                builder.add_pattern(&text);
            }
        }
    }
    for rule in rules {
        for example in rule.examples.iter().chain(&rule.counter_examples) {
            builder.add_known(&normalize(&example.text));
        }
        for lang in Lang::ALL {
            builder.add_known(&normalize(rule.label.get(lang)));
            if let Some(answer) = &rule.answer {
                builder.add_known(&normalize(answer.get(lang)));
            }
        }
    }
    for phrases in phrases {
        for text in [
            &phrases.fallback,
            &phrases.clarify,
            &phrases.handoff,
            &phrases.talk_to_person,
        ] {
            builder.add_known(&normalize(text));
        }
    }
    builder.build()
}

fn first_line(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find(|line| line.starts_with("error:"))
        .map_or_else(
            || text.lines().next().unwrap_or("").to_string(),
            |line| line.trim_start_matches("error:").trim().to_string(),
        )
}

fn collect_examples(file: &Source<'_>, raw: &RawTerms) -> Vec<Example> {
    let mut examples = Vec::new();
    for (lang, sentences) in raw.by_lang() {
        for sentence in sentences {
            // Language-neutral examples are checked in every language.
            let langs: Vec<Lang> = lang.map_or_else(|| Lang::ALL.to_vec(), |lang| vec![lang]);
            for lang in langs {
                examples.push(Example {
                    lang,
                    text: sentence.get_ref().clone(),
                    line: file.line(sentence.span().start),
                });
            }
        }
    }
    examples
}

use crate::normalize::normalize;

#[cfg(test)]
mod tests {
    use super::Source;
    use crate::RuleFile;

    #[test]
    fn lines_of_offsets() {
        let file = RuleFile::new("a.toml", "one\ntwo\n\nfour");
        let source = Source::new(&file);
        for (offset, line) in [
            (0, 1),
            (2, 1),
            (3, 1),
            (4, 2),
            (8, 3),
            (9, 4),
            (13, 4),
            (99, 4),
        ] {
            assert_eq!(source.line(offset), line, "offset {offset}");
        }
    }
}
