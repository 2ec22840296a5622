//! `salam-bot`: the rule-based triage bot of Salam, in English, Arabic and Persian.
//!
//! **Key design decision: the bot is data plus one pure function.** A rule pack (TOML
//! files, one per topic) is compiled once into an immutable [`RuleSet`]: every keyword
//! and phrase of every rule, and of the built-in signal lexicons, goes into a single
//! Aho-Corasick automaton and every regex into a single linear-time
//! [`regex::RegexSet`], both over *normalised* text. Triage is then one scan of the
//! visitor's normalised message, a weighted score per intent, and a small decision
//! table ([`RuleSet::triage`]); only when no rule matched does a second stage compare
//! the message with the pack's own examples. No I/O, clock, threads or mutable state:
//! the hub reads the files, counts misses and remembers the conversation
//! ([`TriageContext`]), so the bot is deterministic, cheap to share behind an `Arc`,
//! explainable (every [`Decision`] says [`Via`] which way it was reached), and every
//! example in the pack is a test.
//!
//! Parts and how they connect:
//! - [`normalize`]/[`detect_language`] (module `normalize`): one normalisation for
//!   patterns and visitor text (Unicode, Arabic letter and hamza variants, Persian ZWNJ,
//!   digits, repeated letters); script-based language detection.
//! - `speller`: typo tolerance towards the pack's own vocabulary (edit distance for
//!   English, with a dictionary of real words that are never "corrected"; letters typed
//!   for others in Arabic and Persian; chat spellings; a missing letter in three-letter
//!   English words), and `dialect`: Arabic dialect and colloquial Persian words folded
//!   into the word of the same meaning that the pack's patterns use (`شحال` → `كم`).
//! - `pack`: the TOML file format (serde with spans, so every error has `file:line`),
//!   validation, built-in [`Phrases`], settings, and the per-site [`Identity`]
//!   (`{store_name}` placeholders and phrase overrides, module `identity`).
//! - [`customer`]: the customer's placeholders in answers (`{name}`,
//!   `{order_status|not known yet}`), left by the compile and filled by the hub per
//!   conversation with [`customer::fill_customer`].
//! - `signals`: built-in lexicons of requests for a person and of frustration (en/ar/fa
//!   and dialects, `signals.toml`), shouting, `!!!`, a question asked twice.
//! - `affect`: the structural handoff signal (issue 16, fifth round): families of cue
//!   words (a negation of service, a judgement, second-person blame read also from
//!   Arabic and Persian word forms, waiting, a challenge, intensifiers, `??`) and the
//!   person structure ("who" beside "talk"), for messages that nothing answers
//!   confidently (`affect.toml`).
//! - `matcher`: the compiled automaton, word-boundary and clitic checks (a final `ه`
//!   written `ت` or dropped before a suffix), scoring.
//! - `similar`: the second stage, TF-IDF cosine over character trigrams of the examples.
//! - `triage`: [`TriageInput`] (+ [`TriageContext`]) → [`Decision`] (answer, clarify,
//!   hand off, fall back); follow-ups resolve against the previous intent.
//! - [`eval`]: accuracy of a pack on a TSV of labelled sentences, with a confusion table
//!   per language (`salam rules eval`).
//!
//! Several packs live side by side: each [`RuleSet::load_with`] compiles an independent
//! pack with its own identity, so a hub keeps one `Arc<RuleSet>` per site.
//!
//! The rule format is documented in `bot-rules/README.md`.

mod affect;
pub mod customer;
mod dialect;
mod identity;
mod matcher;
mod normalize;
mod pack;
mod signals;
mod similar;
mod speller;
mod triage;

pub mod eval;

pub use identity::{Identity, PhraseKey};
pub use normalize::{detect_language, normalize};
pub use pack::{Action, Example, LangText, Phrases, QuickReplySpec, Rule, RuleSet, Settings};
pub use triage::{Decision, HandoffReason, QuickReply, TriageContext, TriageInput, Via};

/// Visitor text longer than this many characters is cut before matching, so triage time
/// is bounded whatever a client sends.
pub const MAX_INPUT_CHARS: usize = 4096;

/// A language the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    /// English.
    En,
    /// Arabic (Modern Standard Arabic answers; dialect input).
    Ar,
    /// Persian (Farsi).
    Fa,
}

impl Lang {
    /// All supported languages, in a fixed order.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Ar, Lang::Fa];

    /// The ISO 639-1 code: `"en"`, `"ar"` or `"fa"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ar => "ar",
            Lang::Fa => "fa",
        }
    }

    /// Parses a language code or locale tag, ignoring case and region:
    /// `"ar"`, `"ar-EG"`, `"fa_IR"`, `"en-US"`, `"per"`, `"ara"`.
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag
            .trim()
            .split(['-', '_', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" | "eng" => Some(Lang::En),
            "ar" | "ara" => Some(Lang::Ar),
            "fa" | "fas" | "per" | "prs" => Some(Lang::Fa),
            _ => None,
        }
    }

    /// Whether the language is written in Arabic script.
    pub fn is_arabic_script(self) -> bool {
        matches!(self, Lang::Ar | Lang::Fa)
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule file given to [`RuleSet::load`]: the crate reads no files itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFile {
    /// File name, used in error messages (e.g. `shipping.toml`).
    pub name: String,
    /// The TOML contents.
    pub text: String,
}

impl RuleFile {
    /// Builds a rule file from a name and its contents.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> RuleFile {
        RuleFile {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// A problem in a rule pack, located at a line of a file. Displays as `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct RuleError {
    /// The [`RuleFile::name`] of the offending file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, lowercase, no trailing period.
    pub reason: String,
}
