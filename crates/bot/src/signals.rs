//! Built-in signals that a visitor wants a person or is frustrated, beyond the pack's
//! own keywords.
//!
//! - Lexicons (`signals.toml` beside this file, in the rule-file pattern syntax):
//!   requests for a person (`real person`, `operator`, `are you a bot`), anger,
//!   disappointment, overcharging and threats to leave, in English, Arabic and its
//!   main dialects, and Persian. They are compiled into the pack's automaton as extra
//!   pseudo-rules, so they cost no second scan of the message.
//! - Shouting: a message in capitals, or a word said again in capitals (`a month. a
//!   MONTH.`; see [`is_shouting`]).
//! - Exclamation marks: three or more in one message.
//! - The same question asked again ([`repeats`]), from the conversation's earlier
//!   visitor messages in [`crate::TriageContext`].
//!
//! What the triage does with them is described in `crate::triage`.

use crate::similar::{dice, gram_counts};

/// The built-in lexicons.
pub(crate) const LEXICON: &str = include_str!("signals.toml");

/// The name under which lexicon errors are reported (they are bugs of this crate; a
/// test loads the lexicon).
pub(crate) const LEXICON_NAME: &str = "<built-in signals>";

/// Where a signal leads: the pack's handoff rule with this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A request for a person (reason `requested`).
    Requested,
    /// Frustration (reason `complaint`).
    Complaint,
}

/// One lexicon of `signals.toml`.
#[derive(Debug, Clone)]
pub(crate) struct Signal {
    /// The lexicon's name (`person`, `anger` …), for explanations.
    pub(crate) name: String,
    pub(crate) target: Target,
}

/// Weight of a shouted message (enough to hand off on its own).
pub(crate) const SHOUTING_WEIGHT: f32 = 1.0;
/// Weight of three or more exclamation marks (not enough on its own).
pub(crate) const EXCLAMATION_WEIGHT: f32 = 0.5;
/// Signals of at least this share of the threshold (one `hint` of a lexicon, or three
/// `!`) hand off a message that nothing else answers (no rule, no follow-up): its
/// visitor would otherwise get the fallback ("when in doubt, hand off").
pub(crate) const WEAK_SHARE: f32 = 0.5;
/// How many exclamation marks make [`EXCLAMATION_WEIGHT`].
pub(crate) const MIN_EXCLAMATIONS: usize = 3;

/// At least this many capital letters, in at least two words, make a shout.
const SHOUT_MIN_CAPITALS: usize = 8;
/// … and at least this share of the cased letters are capitals.
const SHOUT_MIN_SHARE: f32 = 0.8;

/// At most this many earlier questions are compared.
const MAX_PREVIOUS: usize = 5;
/// A repeat has at least this many words and characters (`ok`, `hi`, `yes` repeated
/// are not a question asked twice).
const REPEAT_MIN_WORDS: usize = 2;
const REPEAT_MIN_CHARS: usize = 8;
/// Dice coefficient of the two texts' character trigrams that counts as the same
/// question (a retyped question differs by a letter or a punctuation mark).
const REPEAT_MIN_DICE: f32 = 0.8;

/// Whether `text` (as typed) is shouted: at least eight capital letters in at least two
/// words, and at least 80 % of its cased letters capitals (`WHERE IS MY ORDER` is,
/// `I need help ASAP` is not), or a word of four letters or more said again in capitals
/// (`it's been a month. a MONTH.`).
pub(crate) fn is_shouting(text: &str) -> bool {
    is_shouted_text(text) || repeats_in_capitals(text)
}

/// At least this many letters make a word said again in capitals a shout (`ETA`, `DHL`
/// are not).
const SHOUT_REPEAT_MIN_LETTERS: usize = 4;

/// The capitals half of [`is_shouting`].
fn is_shouted_text(text: &str) -> bool {
    let mut n_upper = 0usize;
    let mut n_lower = 0usize;
    let mut shouted_words = 0usize;
    for word in text.split_whitespace().take(crate::MAX_INPUT_CHARS) {
        let upper_in_word = word.chars().filter(|ch| ch.is_uppercase()).count();
        n_upper += upper_in_word;
        n_lower += word.chars().filter(|ch| ch.is_lowercase()).count();
        if upper_in_word >= 2 {
            shouted_words += 1;
        }
    }
    n_upper >= SHOUT_MIN_CAPITALS
        && shouted_words >= 2
        && n_upper as f32 >= SHOUT_MIN_SHARE * (n_upper + n_lower) as f32
}

/// Whether a word of [`SHOUT_REPEAT_MIN_LETTERS`] letters or more comes again in
/// capitals after the message has had it in small letters (`a month. a MONTH`). Linear:
/// the small-letter words go into a set only when a word in capitals is there.
fn repeats_in_capitals(text: &str) -> bool {
    let letters = |word: &str| -> String { word.chars().filter(|ch| ch.is_alphabetic()).collect() };
    let is_capitals = |word: &str| {
        word.chars().count() >= SHOUT_REPEAT_MIN_LETTERS && word.chars().all(char::is_uppercase)
    };
    let words = || {
        text.split_whitespace()
            .take(crate::MAX_INPUT_CHARS)
            .map(letters)
    };
    if !words().any(|word| is_capitals(&word)) {
        return false;
    }
    let mut seen = std::collections::HashSet::new();
    for word in words() {
        if word.chars().count() < SHOUT_REPEAT_MIN_LETTERS {
            continue;
        }
        if is_capitals(&word) {
            if seen.contains(&word.to_lowercase()) {
                return true;
            }
        } else if word.chars().all(char::is_lowercase) {
            seen.insert(word);
        }
    }
    false
}

/// The number of exclamation marks in `text` (ASCII and full-width).
pub(crate) fn exclamations(text: &str) -> usize {
    text.chars()
        .take(crate::MAX_INPUT_CHARS)
        .filter(|ch| matches!(ch, '!' | '！' | '¡'))
        .count()
}

/// Whether `normalised` asks again one of the `previous` visitor messages (as typed,
/// most recent first; only the first few are read).
pub(crate) fn repeats(normalised: &str, previous: &[&str]) -> bool {
    if previous.is_empty()
        || normalised.split(' ').count() < REPEAT_MIN_WORDS
        || normalised.chars().count() < REPEAT_MIN_CHARS
    {
        return false;
    }
    let grams = gram_counts(normalised);
    previous.iter().take(MAX_PREVIOUS).any(|earlier| {
        let earlier = crate::normalize(crate::triage::bounded(earlier));
        if earlier == normalised {
            return true;
        }
        dice(&grams, &gram_counts(&earlier)) >= REPEAT_MIN_DICE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shouting() {
        assert!(is_shouting("WHERE IS MY ORDER"));
        assert!(is_shouting("WHY IS NOBODY ANSWERING ME??"));
        assert!(!is_shouting("I need help ASAP"));
        assert!(!is_shouting("where is my order"));
        assert!(!is_shouting("OK"));
        assert!(!is_shouting("DHL"));
        // A word said again in capitals; not a word in capitals alone, nor a short one.
        assert!(is_shouting("its been a month. a MONTH."));
        assert!(!is_shouting("my order from DHL, dhl says delivered"));
        assert!(!is_shouting("I need a REFUND"));
        assert!(!is_shouting("Month after MONTHS"));
        assert!(!is_shouting("وين طلبي"));
    }

    #[test]
    fn repeated_questions() {
        let normalised = crate::normalize("where is my order?");
        assert!(repeats(&normalised, &["Where is my order"]));
        assert!(repeats(&normalised, &["hello", "where is my order!!"]));
        assert!(repeats(&normalised, &["where is my ordr"]));
        assert!(!repeats(&normalised, &["how do I return it"]));
        assert!(!repeats(&normalised, &[]));
        // Too short to be a question asked twice.
        assert!(!repeats("hi", &["hi"]));
    }

    #[test]
    fn exclamation_marks() {
        assert_eq!(exclamations("why!!! again!"), 4);
        assert_eq!(exclamations("ok"), 0);
    }
}
