//! The compiled matcher: one Aho-Corasick automaton for all phrases of all rules, one
//! `RegexSet` for all regexes, and scoring.
//!
//! Patterns and text are both normalised (see [`crate::normalize`]), so words are
//! separated by exactly one ASCII space. A phrase hit counts only at word boundaries,
//! except for the affixes written down here:
//! - a pattern ending in `*` is a stem and may continue (`deliver*` → `delivery`);
//! - a pattern of three or more letters may take a plural suffix in English (`s`, `es`);
//! - an Arabic-script pattern of three or more letters may be preceded inside the word
//!   by a clitic or verbal prefix (`و ف ب ل ك س ال بال لل …`, Persian `می نمی ن`) and
//!   followed by a pronoun / plural / colloquial suffix (`ي ك ه ها نا كم هم ات ين ون`,
//!   Persian `م ت ش مون تون ها ام اش رو ست …`): `طلب` matches `وطلبي` and `سفارش`
//!   matches `سفارشم`;
//! - a pattern starting with `=` takes no affixes at all;
//! - an Arabic-script pattern whose last word ends in `ه` (a normalised ta marbuta `ة`,
//!   or a Persian final `ه`) also matches that word in the two forms it takes before a
//!   pronoun suffix: Arabic writes `ت` (`شحنه` → `شحنتي`, `طلبيه` → `طلبيتك`), colloquial
//!   Persian drops the `ه` (`بسته` → `بستم`, `مرسوله` → `مرسولتون`). Either form needs a
//!   suffix after it ([`TA_SUFFIXES`], [`DROPPED_HE_SUFFIXES`]), so a bare `شحنت` or
//!   `بست` stays another word; see [`Tail`].
//!
//! Short patterns never take affixes, which is what keeps `hi` out of `shipping`.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::Lang;
use crate::normalize::normalize;

/// Compiled size limit of one regex and of the whole set (the `regex` crate is
/// linear-time in the input; this bounds memory and compile time).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_SET_SIZE_LIMIT: usize = 32 << 20;

/// Weight of a phrase of one word; each further word adds [`EXTRA_WORD_WEIGHT`].
const PHRASE_WEIGHT: f32 = 1.0;
const EXTRA_WORD_WEIGHT: f32 = 0.25;
const MAX_PHRASE_WEIGHT: f32 = 2.0;
/// A hint alone is not enough to answer; two hints, or a hint and a phrase, are.
const HINT_WEIGHT: f32 = 0.5;
/// An `all` combination (one word from each group) is a little stronger than a phrase.
const COMBO_WEIGHT: f32 = 1.25;
const REGEX_WEIGHT: f32 = 1.0;

/// Affixes longer than this (in bytes) are never allowed, which bounds the work per hit.
const MAX_AFFIX_BYTES: usize = 12;

pub(crate) const ARABIC_PREFIXES: &[&str] = &[
    "و", "ف", "ب", "ل", "ك", "س", "ال", "وال", "فال", "بال", "كال", "لل", "ولل", "فلل", "وب", "ول",
    "فب", "فل", "وس", "مي", "نمي", "ن", "بي",
    // Arabic imperfect-verb and future prefixes: أ ي ت (ن is above), س+, dialect ح/ه/بـ.
    "ا", "ي", "ت", "سا", "سي", "ست", "سن", "وا", "وي", "فا", "ح", "ه", "بت", "بن", "با",
];

pub(crate) const ARABIC_SUFFIXES: &[&str] = &[
    "ي",
    "ك",
    "ه",
    "ها",
    "نا",
    "كم",
    "هم",
    "ني",
    "ات",
    "ين",
    "ون",
    "ان",
    "م",
    "ت",
    "ش",
    "مون",
    "تون",
    "شون",
    "مان",
    "تان",
    "شان",
    "هاي",
    "ام",
    "اش",
    "اي",
    "رو",
    "و",
    "يم",
    "يد",
    "ند",
    "هام",
    "هات",
    "هاش",
    "هامون",
    "هاتون",
    "تم",
    "وا",
    "ته",
    "تها",
    "تو",
    "شو",
    "مو",
    "ست",
    "اس",
    "يه",
    "يي",
    "تي",
    "كي",
    "ا",
];

const LATIN_SUFFIXES: &[&str] = &["s", "es"];

/// Pronoun suffixes after a ta marbuta written `ت` (Arabic): `شحنتي`, `طلبيتك`,
/// `شحنتكم`, Egyptian and Levantine `شنطتو`.
pub(crate) const TA_SUFFIXES: &[&str] =
    &["ي", "ك", "ه", "ها", "نا", "كم", "هم", "و", "كو", "ين", "كي"];

/// Personal clitics after a Persian final `ه` dropped in colloquial writing: `بستم`
/// (`بسته‌ام`, my parcel), `مرسولت`, `هزینش`, `مغازتون`, with the object marker `و`
/// (`بستمو`, `شمارتونو`).
pub(crate) const DROPPED_HE_SUFFIXES: &[&str] = &[
    "م", "ت", "ش", "مون", "تون", "شون", "مو", "تو", "شو", "مونو", "تونو", "شونو",
];

/// Persian words ending in `ه` that are verbs (third person, colloquial), whose form
/// without `ه` plus a clitic is another verb, not a possessive: `بازه` (is open) /
/// `بازم` (again), `داره` / `دارم`. Words starting with `مي`/`نمي` and past
/// participles (`…ده`) are left out by rule; these by list.
const DROPPED_HE_EXCEPTIONS: &[&str] = &[
    "بازه",
    "داره",
    "نداره",
    "برسه",
    "نرسه",
    "باشه",
    "نباشه",
    "بشه",
    "نشه",
    "شه",
    "كنه",
    "بكنه",
    "نكنه",
    "بده",
    "نده",
    "بره",
    "نره",
    "مياد",
];

/// How the last word of a pattern may end in the text (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// As written.
    Written,
    /// A final `ه` written `ت`, followed by one of [`TA_SUFFIXES`].
    TaMarbuta,
    /// A final `ه` dropped, followed by one of [`DROPPED_HE_SUFFIXES`].
    DroppedHe,
}

/// The extra forms of a normalised pattern's last word (see [`Tail`]), for a pattern
/// that takes affixes, in `lang` (`None`: any language).
fn tail_variants(text: &str, lang: Option<Lang>) -> Vec<(String, Tail)> {
    let mut variants = Vec::new();
    let Some(stem) = text.strip_suffix('ه') else {
        return variants;
    };
    let last_word = text.rsplit(' ').next().unwrap_or(text);
    if last_word.chars().count() < 3 {
        return variants;
    }
    if lang != Some(Lang::Fa) {
        variants.push((format!("{stem}ت"), Tail::TaMarbuta));
    }
    let verb_like = last_word.starts_with("مي")
        || last_word.starts_with("نمي")
        || last_word.ends_with("ده")
        || DROPPED_HE_EXCEPTIONS.contains(&last_word);
    if lang != Some(Lang::Ar) && !verb_like {
        variants.push((stem.to_string(), Tail::DroppedHe));
    }
    variants
}

/// The kind of a pattern in a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TermKind {
    /// `match`: a phrase that identifies the intent.
    Phrase,
    /// `hint`: a supporting word.
    Hint,
    /// `not`: vetoes the rule.
    Not,
    /// One alternative of group `group` of the `all` combination `combo` of the rule.
    Group { combo: u32, group: u8, n_groups: u8 },
    /// `regex`, over normalised text.
    Regex,
}

/// A pattern as written in a rule, before compilation.
#[derive(Debug, Clone)]
pub(crate) struct TermSpec {
    pub(crate) rule: usize,
    pub(crate) kind: TermKind,
    pub(crate) lang: Option<Lang>,
    pub(crate) pattern: String,
    pub(crate) line: usize,
}

#[derive(Debug, Clone)]
struct Term {
    rule: u32,
    kind: TermKind,
    lang: Option<Lang>,
    weight: f32,
    affixes: bool,
    stem: bool,
    arabic_script: bool,
}

struct ParsedPattern {
    text: String,
    exact: bool,
    stem: bool,
}

fn parse_pattern(raw: &str) -> Result<ParsedPattern, String> {
    let mut body = raw.trim();
    let exact = body.starts_with('=');
    body = body.trim_start_matches('=');
    let stem = body.ends_with('*');
    body = body.trim_end_matches('*');
    if body.contains('*') {
        return Err(format!("pattern {raw:?}: `*` is only allowed at the end"));
    }
    let text = normalize(body);
    if text.is_empty() {
        return Err(format!("pattern {raw:?} is empty after normalisation"));
    }
    Ok(ParsedPattern { text, exact, stem })
}

/// The normalised words of a pattern (without `=` and `*`), for the speller's
/// vocabulary; `None` for a pattern that is not valid.
pub(crate) fn pattern_text(raw: &str) -> Option<String> {
    parse_pattern(raw).ok().map(|parsed| parsed.text)
}

pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Validates one pattern on its own, for located error messages.
pub(crate) fn check_pattern(term: &TermSpec) -> Result<(), String> {
    match term.kind {
        TermKind::Regex => compile_regex(&term.pattern)
            .map(|_| ())
            .map_err(|error| format!("invalid regex: {error}")),
        _ => parse_pattern(&term.pattern).map(|_| ()),
    }
}

/// The score of one rule for one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RuleScore {
    pub(crate) rule: usize,
    pub(crate) score: f32,
}

/// All patterns of a pack, compiled.
#[derive(Debug)]
pub(crate) struct Matcher {
    automaton: Option<AhoCorasick>,
    /// For each automaton pattern, the terms that use it, and in which form.
    occurrences: Vec<Vec<(u32, Tail)>>,
    terms: Vec<Term>,
    regex_set: Option<RegexSet>,
    /// For each regex of the set, its term.
    regex_terms: Vec<u32>,
}

impl Matcher {
    /// Compiles `specs` (already validated one by one). Errors name the failing spec.
    pub(crate) fn compile(
        specs: &[TermSpec],
        n_rules: usize,
    ) -> Result<Matcher, Vec<(usize, String)>> {
        debug_assert!(specs.iter().all(|spec| spec.rule < n_rules));
        let mut errors = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut pattern_ids: HashMap<String, usize> = HashMap::new();
        let mut occurrences: Vec<Vec<(u32, Tail)>> = Vec::new();
        let mut regexes: Vec<&str> = Vec::new();
        let mut regex_terms = Vec::new();
        let mut terms = Vec::with_capacity(specs.len());
        for (spec_idx, spec) in specs.iter().enumerate() {
            let term_idx = terms.len() as u32;
            if spec.kind == TermKind::Regex {
                regexes.push(&spec.pattern);
                regex_terms.push(term_idx);
                terms.push(Term {
                    rule: spec.rule as u32,
                    kind: spec.kind,
                    lang: spec.lang,
                    weight: REGEX_WEIGHT,
                    affixes: false,
                    stem: false,
                    arabic_script: false,
                });
                continue;
            }
            let parsed = match parse_pattern(&spec.pattern) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    errors.push((spec_idx, reason));
                    continue;
                }
            };
            let n_words = parsed.text.split(' ').count();
            let weight = match spec.kind {
                TermKind::Phrase => (PHRASE_WEIGHT + EXTRA_WORD_WEIGHT * (n_words - 1) as f32)
                    .min(MAX_PHRASE_WEIGHT),
                TermKind::Hint => HINT_WEIGHT,
                _ => 0.0,
            };
            let arabic_script = parsed.text.chars().next().is_some_and(is_arabic_letter);
            let n_chars = parsed.text.chars().count();
            let affixes = !parsed.exact && n_chars >= 3;
            let mut forms = vec![(parsed.text.clone(), Tail::Written)];
            if affixes && arabic_script && !parsed.stem {
                forms.extend(tail_variants(&parsed.text, spec.lang));
            }
            for (form, tail) in forms {
                let pattern_id = *pattern_ids.entry(form.clone()).or_insert_with(|| {
                    patterns.push(form);
                    occurrences.push(Vec::new());
                    patterns.len() - 1
                });
                occurrences[pattern_id].push((term_idx, tail));
            }
            terms.push(Term {
                rule: spec.rule as u32,
                kind: spec.kind,
                lang: spec.lang,
                weight,
                affixes,
                stem: parsed.stem,
                arabic_script,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let automaton = if patterns.is_empty() {
            None
        } else {
            match AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(&patterns)
            {
                Ok(automaton) => Some(automaton),
                Err(error) => {
                    return Err(vec![(
                        0,
                        format!("cannot build the phrase automaton: {error}"),
                    )]);
                }
            }
        };
        let regex_set = if regexes.is_empty() {
            None
        } else {
            match RegexSetBuilder::new(&regexes)
                .size_limit(REGEX_SET_SIZE_LIMIT)
                .build()
            {
                Ok(set) => Some(set),
                Err(error) => {
                    let spec_idx = specs
                        .iter()
                        .position(|spec| spec.kind == TermKind::Regex)
                        .unwrap_or(0);
                    return Err(vec![(
                        spec_idx,
                        format!("cannot build the regex set: {error}"),
                    )]);
                }
            }
        };
        Ok(Matcher {
            automaton,
            occurrences,
            terms,
            regex_set,
            regex_terms,
        })
    }

    /// Scores every rule that has a hit in `text` (normalised). Vetoed rules (a `not`
    /// hit at or after byte `veto_from`) are left out. Patterns of another language than
    /// `text_lang` count `cross_language_weight` times their weight.
    ///
    /// `veto_from` is 0 for a visitor message. A follow-up is scored behind the label of
    /// the previous topic (`"Delivery time and how much?"`); only its own words may veto,
    /// or the topic's words would veto the very intent the follow-up asks about.
    pub(crate) fn score(
        &self,
        text: &str,
        text_lang: Option<Lang>,
        cross_language_weight: f32,
        veto_from: usize,
    ) -> Vec<RuleScore> {
        let mut hits: Vec<u32> = Vec::new();
        if let Some(automaton) = &self.automaton {
            for found in automaton.find_overlapping_iter(text) {
                let (start, end) = (found.start(), found.end());
                let prefix = word_prefix(text, start);
                let suffix = word_suffix(text, end);
                for &(term_idx, tail) in &self.occurrences[found.pattern().as_usize()] {
                    let term = &self.terms[term_idx as usize];
                    if (start >= veto_from || term.kind != TermKind::Not)
                        && boundary_ok(term, tail, prefix, suffix)
                    {
                        hits.push(term_idx);
                    }
                }
            }
        }
        if let Some(regex_set) = &self.regex_set {
            hits.extend(
                regex_set
                    .matches(text)
                    .iter()
                    .map(|idx| self.regex_terms[idx]),
            );
        }
        hits.sort_unstable();
        hits.dedup();

        let mut scores: Vec<(u32, f32, bool)> = Vec::new();
        // (rule, combo, group, n_groups, factor)
        let mut groups: Vec<(u32, u32, u8, u8, f32)> = Vec::new();
        for &term_idx in &hits {
            let term = &self.terms[term_idx as usize];
            let factor = match (term.lang, text_lang) {
                (Some(term_lang), Some(text_lang)) if term_lang != text_lang => {
                    cross_language_weight
                }
                _ => 1.0,
            };
            let entry_idx = match scores.iter().position(|(rule, _, _)| *rule == term.rule) {
                Some(idx) => idx,
                None => {
                    scores.push((term.rule, 0.0, false));
                    scores.len() - 1
                }
            };
            match term.kind {
                TermKind::Not => scores[entry_idx].2 = true,
                TermKind::Group {
                    combo,
                    group,
                    n_groups,
                } => {
                    groups.push((term.rule, combo, group, n_groups, factor));
                }
                _ => scores[entry_idx].1 += term.weight * factor,
            }
        }
        groups.sort_by(|a, b| {
            (a.0, a.1, a.2)
                .cmp(&(b.0, b.1, b.2))
                .then(b.4.total_cmp(&a.4))
        });
        groups.dedup_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2));
        let mut idx = 0;
        while idx < groups.len() {
            let (rule, combo, _, n_groups, _) = groups[idx];
            let mut end = idx;
            let mut factor: f32 = 1.0;
            while end < groups.len() && groups[end].0 == rule && groups[end].1 == combo {
                factor = factor.min(groups[end].4);
                end += 1;
            }
            if end - idx == usize::from(n_groups)
                && let Some(entry) = scores
                    .iter_mut()
                    .find(|(entry_rule, _, _)| *entry_rule == rule)
            {
                entry.1 += COMBO_WEIGHT * factor;
            }
            idx = end;
        }
        scores
            .into_iter()
            .filter(|&(_, score, vetoed)| !vetoed && score > 0.0)
            .map(|(rule, score, _)| RuleScore {
                rule: rule as usize,
                score,
            })
            .collect()
    }
}

fn is_arabic_letter(ch: char) -> bool {
    matches!(ch, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}')
}

/// The part of the word before `start`, or `None` if it is longer than any affix.
fn word_prefix(text: &str, start: usize) -> Option<&str> {
    let mut low = start.saturating_sub(MAX_AFFIX_BYTES);
    while !text.is_char_boundary(low) {
        low += 1;
    }
    let window = &text[low..start];
    match window.rfind(' ') {
        Some(space) => Some(&window[space + 1..]),
        None if low == 0 => Some(window),
        None => None,
    }
}

/// The part of the word after `end`, or `None` if it is longer than any affix.
fn word_suffix(text: &str, end: usize) -> Option<&str> {
    let mut high = (end + MAX_AFFIX_BYTES).min(text.len());
    while !text.is_char_boundary(high) {
        high -= 1;
    }
    let window = &text[end..high];
    match window.find(' ') {
        Some(space) => Some(&window[..space]),
        None if high == text.len() => Some(window),
        None => None,
    }
}

fn boundary_ok(term: &Term, tail: Tail, prefix: Option<&str>, suffix: Option<&str>) -> bool {
    let left_ok = match prefix {
        Some("") => true,
        Some(prefix) => term.affixes && term.arabic_script && ARABIC_PREFIXES.contains(&prefix),
        None => false,
    };
    if !left_ok {
        return false;
    }
    match tail {
        Tail::Written => {}
        Tail::TaMarbuta => return suffix.is_some_and(|suffix| TA_SUFFIXES.contains(&suffix)),
        Tail::DroppedHe => {
            return suffix.is_some_and(|suffix| DROPPED_HE_SUFFIXES.contains(&suffix));
        }
    }
    if term.stem {
        return true;
    }
    match suffix {
        Some("") => true,
        Some(suffix) if term.affixes => {
            let allowed = if term.arabic_script {
                ARABIC_SUFFIXES
            } else {
                LATIN_SUFFIXES
            };
            allowed.contains(&suffix)
        }
        _ => false,
    }
}
