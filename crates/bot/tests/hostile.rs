use proptest::prelude::*;
use salam_bot::{Lang, RuleSet, TriageContext, TriageInput};

use crate::util::default_pack;

fn hostile_inputs() -> Vec<String> {
    let mut inputs: Vec<String> = [
        "",
        " ",
        "\u{0000}\u{0001}\u{001B}[31m",
        "😀😀😀🎉🔥",
        "\u{202E}redro ym si erehw\u{202C}",
        "\u{200F}\u{200E}\u{2067}\u{2069}\u{061C}",
        "(((a+)+)+",
        "\\",
        "[",
        "(?:x|y)*$^.*+?{}",
        "مرحبا hello سلام ۱۲۳ ١٢٣ 123",
        "ـــــــــ",
        "\u{064B}\u{064C}\u{064D}",
        "\u{FDFA}\u{FDFB}",
        "ﷺ ﷻ ﻻ",
        "\u{10FFFF}\u{FFFD}",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    inputs.push("a".repeat(4000));
    inputs.push("where is my order ".repeat(250));
    inputs.push("ههه".repeat(2000));
    inputs.push("hi".repeat(5000));
    inputs.push(
        (0..4000)
            .map(|idx| char::from_u32(0x0600 + (idx % 256)).unwrap_or('x'))
            .collect(),
    );
    inputs.push(
        (0..4000)
            .map(|idx| char::from_u32(0x20 + (idx * 7919) % 0x3000).unwrap_or(' '))
            .collect(),
    );
    inputs
}

/// Every hostile input gets a decision in every locale. How fast is a benchmark's
/// question, not a test's (`benches/triage.rs` times the speller's worst case, 4,000
/// characters of unknown words; the input is cut at `MAX_INPUT_CHARS`).
#[test]
fn hostile_input_always_gets_a_decision() {
    let rules = default_pack();
    for text in hostile_inputs() {
        for locale in [None, Some(Lang::En), Some(Lang::Ar), Some(Lang::Fa)] {
            for misses in [0, 1, u32::MAX] {
                let decision = rules.triage(&TriageInput {
                    text: &text,
                    locale,
                    consecutive_misses: misses,
                });
                assert!(!decision.kind().is_empty());
                assert!(decision.score().is_finite());
            }
        }
    }
}

#[test]
fn emoji_only_falls_back() {
    let rules = default_pack();
    let decision = rules.triage(&TriageInput::new("🙂🙂", None));
    assert_eq!(decision.kind(), "fallback");
    assert_eq!(decision.lang(), Lang::En);
}

fn rules() -> &'static RuleSet {
    static RULES: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    RULES.get_or_init(default_pack)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn triage_never_panics(text in "\\PC{0,300}", misses in 0u32..5, locale in 0usize..4) {
        let locale = [None, Some(Lang::En), Some(Lang::Ar), Some(Lang::Fa)][locale];
        let decision = rules().triage(&TriageInput { text: &text, locale, consecutive_misses: misses });
        prop_assert!(decision.score().is_finite());
    }

    #[test]
    fn triage_never_panics_on_any_chars(text in any::<String>()) {
        let _ = rules().triage(&TriageInput::new(&text, None));
        let normalised = salam_bot::normalize(&text);
        prop_assert!(!normalised.starts_with(' ') && !normalised.ends_with(' '));
        prop_assert!(!normalised.contains("  "));
    }

    #[test]
    fn arabic_script_text_never_panics(text in "[\\u{0600}-\\u{06FF}\\u{200C}\\u{200F} ]{0,200}") {
        let _ = rules().triage(&TriageInput::new(&text, Some(Lang::Fa)));
    }

    #[test]
    fn context_corrections_and_signals_never_panic(
        text in "\\PC{0,200}",
        earlier in "\\PC{0,80}",
        locale in 0usize..4,
    ) {
        let locale = [None, Some(Lang::En), Some(Lang::Ar), Some(Lang::Fa)][locale];
        let decision = rules().triage_with_context(
            &TriageInput::new(&text, locale),
            &TriageContext {
                previous_questions: &[earlier.as_str(), text.as_str()],
                previous_intent: Some("shipping_time"),
            },
        );
        prop_assert!(decision.score().is_finite());
        // A correction is normalised text (a fixed point of `normalize`).
        if let Some(corrected) = rules().spelling_correction(&text, locale) {
            prop_assert_eq!(salam_bot::normalize(&corrected), corrected);
        }
        let _ = rules().signals_in(&text, locale);
    }
}
