//! Fuzz target `normalise`: arbitrary UTF-8 into `salam_bot::normalize`,
//! `salam_bot::detect_language` and, through the default pack of `bot-rules/`, into
//! `RuleSet::triage` (what the hub does with every visitor message).
//!
//! Checked, besides "never panics", the output shape `normalize` documents:
//! - words separated by single ASCII spaces, no leading or trailing space;
//! - every other character alphanumeric, none of the characters it removes or maps
//!   (diacritics, tatweel, format characters, apostrophes, alef/hamza/yeh/kaf/teh
//!   marbuta variants, Persian and Arabic-Indic digits);
//! - no run of three or more equal letters;
//! - idempotence (`crates/bot/tests/normalize.rs` relies on it): normalising the output
//!   again changes nothing.
//!
//! `detect_language` answers `None` exactly when the text has no letter; triage gives a
//! finite score in the locale's language, also within a conversation (the text as an
//! earlier question, a previous intent, so the repeated-question and follow-up paths
//! run); the spelling correction is itself normalised text.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use salam_bot::{
    Lang, MAX_INPUT_CHARS, RuleFile, RuleSet, TriageContext, TriageInput, detect_language,
    normalize,
};

/// The default pack, read once from `bot-rules/` beside the fuzz crate.
static PACK: LazyLock<RuleSet> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bot-rules");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("bot-rules directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let files: Vec<RuleFile> = paths
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            RuleFile::new(name, std::fs::read_to_string(path).expect("rule file"))
        })
        .collect();
    RuleSet::load(&files).expect("the default pack loads")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let once = normalize(text);
    check_shape(&once, text);
    let twice = normalize(&once);
    assert_eq!(twice, once, "not idempotent on {text:?}");

    let has_letter = text.chars().take(MAX_INPUT_CHARS).any(char::is_alphabetic);
    assert_eq!(
        detect_language(text).is_some(),
        has_letter,
        "detect_language({text:?})"
    );

    for locale in [None, Some(Lang::Ar), Some(Lang::Fa)] {
        let decision = PACK.triage(&TriageInput::new(text, locale));
        assert!(decision.score().is_finite(), "{decision:?}");
        if let Some(locale) = locale {
            assert_eq!(decision.lang(), locale);
        }
        let in_context = PACK.triage_with_context(
            &TriageInput::new(text, locale),
            &TriageContext {
                previous_questions: &[text, "where is my order"],
                previous_intent: Some("shipping_time"),
            },
        );
        assert!(in_context.score().is_finite(), "{in_context:?}");
        if let Some(corrected) = PACK.spelling_correction(text, locale) {
            assert_eq!(normalize(&corrected), corrected, "correction of {text:?}");
        }
        let _ = PACK.signals_in(text, locale);
    }
});

fn check_shape(out: &str, input: &str) {
    assert!(
        !out.starts_with(' ') && !out.ends_with(' ') && !out.contains("  "),
        "spacing of {out:?} from {input:?}"
    );
    let mut previous = (' ', 0usize);
    for ch in out.chars() {
        assert!(
            ch == ' ' || ch.is_alphanumeric(),
            "{ch:?} in {out:?} from {input:?}"
        );
        assert!(!removed_or_mapped(ch), "{ch:?} in {out:?} from {input:?}");
        previous = if ch == previous.0 {
            (ch, previous.1 + 1)
        } else {
            (ch, 1)
        };
        assert!(
            previous.1 < 3 || !ch.is_alphabetic(),
            "run of {ch:?} in {out:?} from {input:?}"
        );
    }
}

/// Characters that `normalize` documents as dropped or replaced.
fn removed_or_mapped(ch: char) -> bool {
    matches!(ch,
        '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0610}'..='\u{061A}' | '\u{06D6}'..='\u{06ED}'
        | '\u{0640}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{0300}'..='\u{036F}'
        | '\'' | '\u{2018}' | '\u{2019}' | '\u{02BC}' | '`' | '\u{00B4}'
        | 'أ' | 'إ' | 'آ' | 'ٱ' | 'ؤ' | 'ئ' | 'ء' | 'ى' | 'ی' | 'ې' | 'ۍ' | 'ک' | 'ڪ' | 'ة' | 'ۀ' | 'ە'
        | '\u{06F0}'..='\u{06F9}' | '\u{0660}'..='\u{0669}')
}
