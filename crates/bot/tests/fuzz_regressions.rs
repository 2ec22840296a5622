//! Regression tests from fuzzing (`fuzz/`, targets `rules_load` and `normalise`; see
//! docs/fuzzing.md). Each crash the fuzzer found is here with its minimised input, next
//! to hand-written hostile inputs for the same entry points (`RuleSet::load`,
//! `normalize`, `detect_language`, `RuleSet::triage`): invalid UTF-8, deep nesting,
//! huge numbers, escaped lone surrogates, NUL, bidi and combining marks.

use salam_bot::{Lang, RuleError, RuleFile, RuleSet, TriageInput, detect_language, normalize};

fn load(files: &[(&str, &str)]) -> Result<RuleSet, Vec<RuleError>> {
    let files: Vec<RuleFile> = files
        .iter()
        .map(|(name, text)| RuleFile::new(*name, *text))
        .collect();
    RuleSet::load(&files)
}

/// The errors of loading one file, which must fail.
#[track_caller]
fn errors_of(text: &str) -> Vec<RuleError> {
    match load(&[("fuzz.toml", text)]) {
        Ok(_) => panic!("{text:?} loaded"),
        Err(errors) => {
            assert!(!errors.is_empty());
            errors
        }
    }
}

/// Asserts that loading `text` fails with an error at `line` whose reason contains
/// `reason_part`.
#[track_caller]
fn assert_error(text: &str, line: usize, reason_part: &str) {
    let errors = errors_of(text);
    assert!(
        errors
            .iter()
            .any(|error| error.line == line && error.reason.contains(reason_part)),
        "expected fuzz.toml:{line}: …{reason_part}…, got:\n{}",
        crate::util::join(&errors)
    );
}

/// A rule that loads, with `extra` appended to it (more keys of the same rule).
fn rule_with(extra: &str) -> String {
    format!(
        "[[rule]]\nid = \"r\"\nintent = \"i\"\n\
         label = {{ en = \"Topic\", ar = \"موضوع\", fa = \"موضوع\" }}\n\
         answer = {{ en = \"Yes\", ar = \"نعم\", fa = \"بله\" }}\n{extra}\n"
    )
}

// ---------------------------------------------------------------------------------------
// Crashes found by the fuzzer.

/// Fuzz crash (`rules_load`, minimised to `"\r"` and `"#\x02"`): toml has no message
/// for some syntax errors, so the loader reported `rules.toml:1: ` with an empty
/// reason. The reason now names the character.
#[test]
fn toml_errors_without_a_message_still_say_what_is_wrong() {
    for (text, line, character) in [
        ("\r", 1, "'\\r'"),
        ("#\u{2}", 1, "'\\u{2}'"),
        ("#d\u{3}", 1, "'\\u{3}'"),
        ("[x]\n\ry=1", 2, "'\\r'"),
        ("a = 1\n# fine\n# not \u{7f} fine", 3, "'\\u{7f}'"),
    ] {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
        let error = &errors[0];
        assert_eq!(error.line, line, "{text:?}: {error}");
        assert_eq!(
            error.reason,
            format!("invalid TOML: unexpected character {character}"),
            "{text:?}"
        );
    }
}

/// Fuzz crash (`normalise`, minimised from `g\0\0m\0\0ةة\x14هاي__`): gluing the plural
/// suffix to the word before made a run of three letters (`هه` + `هاي` → `هههاي`),
/// which a second normalisation collapsed: the output broke the documented "no run of
/// three equal letters" and `normalize` was not idempotent.
#[test]
fn gluing_an_affix_never_leaves_a_run_of_three() {
    for (text, expected) in [
        // `هه هاي` collapses to a detached `هاي`, which is glued to the `m` before it.
        ("g\0\0m\0\0ةة\u{14}هاي__", "g mهاي"),
        ("هه ها", "ها"),
        ("هه هاي", "هاي"),
        // The verbal prefix: `مي` + `يي` is `مييي`, which collapses to a detached
        // `مي` again, to be glued to the next word.
        ("مي يي x", "ميx"),
        ("نمی یی خوام", "نميخوام"),
    ] {
        assert_eq!(normalize(text), expected, "normalize({text:?})");
        assert_eq!(normalize(expected), expected, "normalize({expected:?})");
    }
}

/// Removing a zero-width or bidi character can bring together two characters that NFKC
/// composes; the output must already be composed, or a second normalisation changes it.
#[test]
fn dropped_format_characters_do_not_leave_composable_pairs() {
    for (text, expected) in [
        // Hangul leading consonant and vowel, around a zero-width space and an RLM.
        ("\u{1100}\u{200B}\u{1161}", "\u{AC00}"),
        ("\u{1100}\u{200F}\u{1161}\u{200E}\u{11A8}", "\u{AC01}"),
    ] {
        assert_eq!(normalize(text), expected, "normalize({text:?})");
        assert_eq!(normalize(expected), expected);
    }
}

/// A spelling correction is normalised text: a word the speller takes away (here a
/// detached `ة`) can bring a word and a Persian plural `های` together, which
/// normalisation joins. Found by the `normalise` target (crash-229a9742…).
#[test]
fn a_spelling_correction_is_already_normalised() {
    let pack = crate::util::default_pack();
    let text = "]g]g\0\0m\0ة\u{14}هاي__";
    for locale in [None, Some(Lang::Ar), Some(Lang::Fa)] {
        if let Some(corrected) = pack.spelling_correction(text, locale) {
            assert_eq!(normalize(&corrected), corrected, "correction of {text:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hostile rule files.

#[test]
fn nul_bytes_in_rule_files() {
    // Escaped NUL: a string like any other, refused where ids must be plain.
    assert_error(
        "[[rule]]\nid = \"a\\u0000b\"\nintent = \"i\"\n",
        2,
        "must be 1-64 chars",
    );
    // A pattern that is only a NUL is empty once normalised.
    assert_error(
        &rule_with("match.en = [\"\\u0000\"]"),
        6,
        "empty after normalisation",
    );
    // A raw NUL is not TOML.
    assert_error("a = 1\nb = \"\0\"", 2, "");
    // A NUL inside a pattern separates words, like any other control character.
    let pack =
        load(&[("ok.toml", &rule_with("match.en = [\"order\\u0000status\"]"))]).expect("loads");
    let decision = pack.triage(&TriageInput::new("order status?", Some(Lang::En)));
    assert_eq!(decision.rule_id(), Some("r"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [200, 100_000] {
        let arrays = format!("x = {}{}", "[".repeat(depth), "]".repeat(depth));
        assert_error(&arrays, 1, "recursion limit");
        let tables = format!("x = {}1{}", "{a=".repeat(depth), "}".repeat(depth));
        assert_error(&tables, 1, "recursion limit");
    }
}

#[test]
fn huge_and_odd_numbers_are_errors() {
    assert_error(&rule_with("priority = 99999999999999999999"), 6, "");
    for (value, reason) in [
        ("nan", "setting threshold = NaN is outside"),
        ("inf", "setting threshold = inf is outside"),
        ("-inf", "setting threshold = -inf is outside"),
        ("1e39", "setting threshold = inf is outside"),
        ("0.0", "setting threshold = 0 is outside"),
    ] {
        assert_error(&format!("[settings]\nthreshold = {value}\n"), 1, reason);
    }
    assert_error("[settings]\nthreshold = 1e400\n", 2, "");
    assert_error("[settings]\nmax_misses = -1\n", 2, "");
    // The largest values in range load.
    let settings = "[settings]\nthreshold = 100.0\nmax_misses = 4294967295\n";
    let pack = load(&[
        ("s.toml", settings),
        ("r.toml", &rule_with("match.en = [\"x\"]")),
    ])
    .expect("loads");
    assert_eq!(pack.settings().max_misses, u32::MAX);
}

#[test]
fn escaped_lone_surrogates_are_errors() {
    for escape in ["\\uD800", "\\uDFFF", "\\U0000D800", "\\U00110000"] {
        let text = rule_with(&format!("match.en = [\"a{escape}b\"]"));
        assert_error(&text, 6, "");
    }
}

#[test]
fn bidi_and_combining_marks_in_patterns() {
    // Patterns of nothing but format characters, tatweel or diacritics are empty.
    for pattern in [
        "\\u200F\\u202E",
        "\\u2066\\u2069",
        "ـــ",
        "\\u064B\\u0651",
        "\\u0301\\u0301",
    ] {
        assert_error(
            &rule_with(&format!("match.any = [\"{pattern}\"]")),
            6,
            "empty after normalisation",
        );
    }
    // Marks inside a pattern vanish on both sides.
    let rule = rule_with("match.ar = [\"\\u200Fمَرحـبا\\u200E\"]\nmatch.en = [\"cafe\\u0301\"]");
    let pack = load(&[("marks.toml", &rule)]).expect("loads");
    for (text, lang) in [
        ("\u{202B}مرحبا\u{202C}", Lang::Ar),
        ("café", Lang::En),
        ("CAFE\u{0301}!", Lang::En),
    ] {
        let decision = pack.triage(&TriageInput::new(text, Some(lang)));
        assert_eq!(decision.rule_id(), Some("r"), "{text:?}");
    }
}

/// Found while reading the matcher for the fuzz target: an `all` entry of more than
/// eight groups loaded, but its group count was capped at eight, so it never matched.
/// It is now refused, at the line of the ninth group.
#[test]
fn all_entries_of_more_than_eight_groups_are_refused() {
    let groups = |n: usize| {
        (1..=n)
            .map(|idx| format!("\"w{idx}\""))
            .collect::<Vec<_>>()
            .join(",\n  ")
    };
    let nine = rule_with(&format!("all.en = [[\n  {}\n]]", groups(9)));
    assert_error(&nine, 15, "at most 8 groups");
    let eight = rule_with(&format!("all.en = [[\n  {}\n]]", groups(8)));
    let pack = load(&[("all.toml", &eight)]).expect("eight groups load");
    let decision = pack.triage(&TriageInput::new("w1 w2 w3 w4 w5 w6 w7 w8", Some(Lang::En)));
    assert_eq!(decision.rule_id(), Some("r"));
    let decision = pack.triage(&TriageInput::new("w1 w2 w3 w4 w5 w6 w7", Some(Lang::En)));
    assert_eq!(decision.rule_id(), None);
}

// ---------------------------------------------------------------------------------------
// Hostile visitor text.

#[test]
fn invalid_utf8_read_lossily_normalises_to_nothing_but_its_words() {
    let text = String::from_utf8_lossy(b"\xff\xfehello\xc0\x80world\xed\xa0\x80");
    assert_eq!(normalize(&text), "hello world");
    assert_eq!(detect_language(&text), Some(Lang::En));
    assert_eq!(normalize(&String::from_utf8_lossy(b"\xff\xfe\xfd")), "");
    assert_eq!(detect_language(&String::from_utf8_lossy(b"\xff\xfe")), None);
}

#[test]
fn nul_and_controls_separate_words() {
    assert_eq!(normalize("where\0is\0my\0order"), "where is my order");
    assert_eq!(normalize("\0\0\0"), "");
    assert_eq!(detect_language("\0\u{1}\u{7f}"), None);
}

#[test]
fn bidi_and_combining_marks_in_visitor_text() {
    for (text, expected) in [
        ("\u{202E}redro\u{202C}", "redro"),
        ("\u{2067}سلام\u{2069} \u{200F}", "سلام"),
        ("e\u{0301}\u{0301}\u{0301}", "é"),
        ("\u{0301}\u{0301}", ""),
        ("\u{064B}\u{064B}\u{064B}ب", "ب"),
        ("a\u{20DD}b", "a b"),
    ] {
        assert_eq!(normalize(text), expected, "normalize({text:?})");
    }
    // Only marks: no letters, no language.
    assert_eq!(detect_language("\u{200F}\u{202B}\u{0301}"), None);
}

#[test]
fn every_hostile_text_normalises_to_a_fixed_point() {
    let texts = [
        "\u{1100}\u{200B}\u{1161}",
        "g\0\0m\0\0ةة\u{14}هاي__",
        "مي يي مي يي",
        "İSTANBUL ǅ ﬃ ẞ",
        "\u{FDFA} \u{FC5E} ﻻ",
        "aaa\u{200B}aaa",
        "٠١٢۳۴۵ 𝟘𝟙",
    ];
    let pack = crate::util::default_pack();
    for text in texts {
        let once = normalize(text);
        assert_eq!(normalize(&once), once, "normalize({text:?})");
        assert!(!once.contains("  ") && !once.starts_with(' ') && !once.ends_with(' '));
        let decision = pack.triage(&TriageInput::new(text, None));
        assert!(decision.score().is_finite(), "{text:?}");
    }
}
