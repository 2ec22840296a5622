use salam_bot::{RuleError, RuleFile, RuleSet};

fn load_errors(files: &[(&str, &str)]) -> Vec<RuleError> {
    let files: Vec<RuleFile> = files
        .iter()
        .map(|(name, text)| RuleFile::new(*name, *text))
        .collect();
    match RuleSet::load(&files) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

#[track_caller]
fn check_error(files: &[(&str, &str)], file: &str, line: usize, reason_part: &str) {
    let errors = load_errors(files);
    assert!(
        errors.iter().any(|error| error.file == file
            && error.line == line
            && error.reason.contains(reason_part)),
        "expected {file}:{line}: …{reason_part}…, got:\n{}",
        crate::util::join(&errors)
    );
}

const GOOD_RULE: &str = r#"
[[rule]]
id = "hello"
intent = "greeting"
label = { en = "Hello", ar = "مرحبا", fa = "سلام" }
answer = { en = "Hi", ar = "أهلا", fa = "سلام" }
match.en = ["hello"]
"#;

#[test]
fn a_good_rule_loads() {
    assert!(load_errors(&[("good.toml", GOOD_RULE)]).is_empty());
    let error = RuleError {
        file: "a.toml".into(),
        line: 3,
        reason: "bad thing".into(),
    };
    assert_eq!(error.to_string(), "a.toml:3: bad thing");
}

#[test]
fn toml_syntax_error_has_its_line() {
    let text = "[[rule]]\nid = \"a\"\nintent = \"b\"\nlabel = { en = \"x\" \n";
    check_error(&[("broken.toml", text)], "broken.toml", 4, "");
}

#[test]
fn bad_regex_is_located() {
    let text = format!("{GOOD_RULE}regex = [\n  'fine',\n  '(unclosed',\n]\n");
    let line = text
        .lines()
        .position(|line| line.contains("(unclosed"))
        .expect("line")
        + 1;
    check_error(&[("rx.toml", &text)], "rx.toml", line, "invalid regex");
}

#[test]
fn missing_answer_language() {
    let text = r#"
[[rule]]
id = "hello"
intent = "greeting"
label = { en = "Hello", ar = "مرحبا", fa = "سلام" }
match.en = ["hello"]

[rule.answer]
en = "Hi"
ar = "أهلا"
"#;
    let errors = load_errors(&[("answer.toml", text)]);
    assert!(
        errors
            .iter()
            .any(|error| error.reason.contains("answer is missing language(s): fa")),
        "{errors:?}"
    );
    let no_answer = GOOD_RULE.replace("answer = { en = \"Hi\", ar = \"أهلا\", fa = \"سلام\" }\n", "");
    check_error(
        &[("none.toml", &no_answer)],
        "none.toml",
        3,
        "has no answer",
    );
}

#[test]
fn duplicate_ids_across_files() {
    check_error(
        &[("one.toml", GOOD_RULE), ("two.toml", GOOD_RULE)],
        "two.toml",
        3,
        "duplicate rule id \"hello\" (first defined at one.toml:3)",
    );
}

#[test]
fn unknown_keys_and_bad_values() {
    let typo = GOOD_RULE.replace("match.en", "mach.en");
    check_error(&[("typo.toml", &typo)], "typo.toml", 7, "unknown field");
    let bad_action = format!("{GOOD_RULE}action = \"shout\"\n");
    check_error(
        &[("action.toml", &bad_action)],
        "action.toml",
        8,
        "action must be",
    );
    let bad_id = GOOD_RULE.replace("id = \"hello\"", "id = \"Hello World\"");
    check_error(&[("id.toml", &bad_id)], "id.toml", 3, "rule id");
    let empty_pattern = GOOD_RULE.replace("[\"hello\"]", "[\"hello\", \"?!\"]");
    check_error(
        &[("empty.toml", &empty_pattern)],
        "empty.toml",
        7,
        "empty after normalisation",
    );
    let unknown_follow_up = format!("{GOOD_RULE}follow_ups = [\"nowhere\"]\n");
    check_error(
        &[("follow.toml", &unknown_follow_up)],
        "follow.toml",
        8,
        "unknown intent",
    );
    let no_patterns = GOOD_RULE.replace("match.en = [\"hello\"]\n", "");
    check_error(
        &[("nopat.toml", &no_patterns)],
        "nopat.toml",
        3,
        "no patterns",
    );
}

#[test]
fn settings_and_phrases() {
    let settings =
        "[settings]\nthreshold = 2.0\nmax_misses = 5\n\n[phrases.en]\nfallback = \"Pardon?\"\n";
    let files = [
        RuleFile::new("good.toml", GOOD_RULE),
        RuleFile::new("_settings.toml", settings),
    ];
    let rules = RuleSet::load(&files).expect("loads");
    assert_eq!(rules.settings().threshold, 2.0);
    assert_eq!(rules.settings().max_misses, 5);
    assert_eq!(rules.phrases(salam_bot::Lang::En).fallback, "Pardon?");
    // Untouched phrases keep their built-in text.
    assert!(!rules.phrases(salam_bot::Lang::Ar).fallback.is_empty());

    let twice = [
        ("a.toml", "[settings]\nmax_misses = 1\n"),
        ("b.toml", "\n[settings]\nmax_misses = 2\n"),
    ];
    check_error(
        &twice,
        "b.toml",
        2,
        "[settings] already defined at a.toml:1",
    );
    let bad_offline = "[phrases.fa]\noffline = \"بعدا\"\n";
    check_error(&[("p.toml", bad_offline)], "p.toml", 1, "{when}");
}

#[test]
fn check_reports_failing_examples_at_their_line() {
    let text = format!(
        "{GOOD_RULE}\n[rule.examples]\nen = [\n  \"hello there\",\n  \"good evening\",\n]\n[rule.counter_examples]\nen = [\"hello\"]\n"
    );
    let errors = RuleSet::check(&[RuleFile::new("ex.toml", text.as_str())]);
    let example_line = text
        .lines()
        .position(|line| line.contains("good evening"))
        .expect("line")
        + 1;
    let counter_line = text
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|line| line.contains("[\"hello\"]"))
        .expect("line")
        + 1;
    assert!(
        errors
            .iter()
            .any(|error| error.line == example_line && error.reason.contains("good evening")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|error| error.line == counter_line && error.reason.contains("counter-example")),
        "{errors:?}"
    );
    assert!(
        !errors
            .iter()
            .any(|error| error.reason.contains("hello there")),
        "{errors:?}"
    );
}
