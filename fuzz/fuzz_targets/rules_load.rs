//! Fuzz target `rules_load`: arbitrary text as a rule pack, through the API the hub uses
//! (`RuleSet::load`, and `RuleSet::check` as `salam rules check` does).
//!
//! The input is one file (`rules.toml`), or two split at the first NUL byte
//! (`_settings.toml`, then `rules.toml`), so cross-file checks (duplicate `[settings]`,
//! duplicate ids, quick replies to intents of the other file) are reached too. TOML
//! does not allow a raw NUL, so the split costs the fuzzer nothing.
//!
//! Checked, besides "never panics":
//! - errors are values: at least one on failure, each located at a real line of one of
//!   the given files, with a reason;
//! - a pack that loads triages a few fixed sentences: a finite score, the locale's
//!   language when one is given, and a rule that exists in the pack; also within a
//!   conversation (repeated question, follow-up), and compiled with a site's
//!   [`Identity`] over the pack's (placeholders and phrases), as a hub does per site.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salam_bot::{
    Decision, Identity, Lang, PhraseKey, RuleError, RuleFile, RuleSet, TriageContext,
    TriageInput,
};

/// Sentences triaged through every pack that loads.
const SENTENCES: &[&str] = &[
    "where is my order?",
    "and how much does it cost?",
    "WHERE IS MY ORDER!!!",
    "retrn polcy",
    "وين طلبي؟",
    "سفارشم کجاست؟",
    "I want to talk to a person",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = match text.split_once('\0') {
        Some((settings, rules)) => vec![
            RuleFile::new("_settings.toml", settings),
            RuleFile::new("rules.toml", rules),
        ],
        None => vec![RuleFile::new("rules.toml", text)],
    };
    // A site identity that defines the usual placeholders, so packs that use them load.
    let identity = Identity::new()
        .var("store_name", "Fuzz Store")
        .var_in(Lang::Ar, "store_name", "متجر")
        .var("site_url", "https://fuzz.example")
        .phrase(Lang::Fa, PhraseKey::BotName, "{store_name}");
    if let Ok(pack) = RuleSet::load_with(&files, &identity) {
        for sentence in SENTENCES {
            let decision = pack.triage_with_context(
                &TriageInput::new(sentence, None),
                &TriageContext {
                    previous_questions: &[sentence],
                    previous_intent: pack.rules().first().map(|rule| rule.intent.as_str()),
                },
            );
            check_decision(&pack, &decision, None);
        }
        for error in RuleSet::check_with(&files, &identity) {
            assert_located(&error, &files, true);
        }
    }
    match RuleSet::load(&files) {
        Err(errors) => {
            assert!(!errors.is_empty(), "load failed without an error");
            for error in &errors {
                assert_located(error, &files, false);
            }
        }
        Ok(pack) => {
            for sentence in SENTENCES {
                for locale in [None, Some(Lang::En), Some(Lang::Ar), Some(Lang::Fa)] {
                    let previous_intent = pack.rules().last().map(|rule| rule.intent.as_str());
                    let decision = pack.triage_with_context(
                        &TriageInput::new(sentence, locale),
                        &TriageContext {
                            previous_questions: &["and how much does it cost?", sentence],
                            previous_intent,
                        },
                    );
                    check_decision(&pack, &decision, locale);
                    for consecutive_misses in [0, 1, u32::MAX] {
                        let decision = pack.triage(&TriageInput {
                            text: sentence,
                            locale,
                            consecutive_misses,
                        });
                        check_decision(&pack, &decision, locale);
                    }
                }
            }
            // What `salam rules check` reports: the examples, labels and quick replies.
            for error in RuleSet::check(&files) {
                assert_located(&error, &files, true);
            }
        }
    }
});

/// An error names one of the files (or the built-in phrases, for `check`) and a line
/// inside it.
fn assert_located(error: &RuleError, files: &[RuleFile], builtin_allowed: bool) {
    assert!(
        !error.reason.is_empty(),
        "error without a reason: {error:?}"
    );
    assert!(error.line >= 1, "line 0: {error:?}");
    if builtin_allowed && error.file == "<built-in phrases>" {
        return;
    }
    let Some(file) = files.iter().find(|file| file.name == error.file) else {
        panic!("error names an unknown file: {error:?}");
    };
    let n_lines = file.text.matches('\n').count() + 1;
    assert!(
        error.line <= n_lines,
        "line {} of a {n_lines}-line file: {error:?}",
        error.line
    );
}

fn check_decision(pack: &RuleSet, decision: &Decision, locale: Option<Lang>) {
    assert!(
        decision.score().is_finite() && decision.score() >= 0.0,
        "score {} in {decision:?}",
        decision.score()
    );
    if let Some(locale) = locale {
        assert_eq!(decision.lang(), locale, "{decision:?}");
    }
    if let Some(rule_id) = decision.rule_id() {
        let rule = pack
            .rules()
            .iter()
            .find(|rule| rule.id == rule_id)
            .unwrap_or_else(|| panic!("decision names an unknown rule: {decision:?}"));
        assert_eq!(decision.predicted_intent(), rule.intent, "{decision:?}");
    }
}
