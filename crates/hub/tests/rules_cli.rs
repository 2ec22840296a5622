//! `salam rules` run as a person runs it after installing the binary: from a directory
//! with no `bot-rules/` in it (issue 15, point 13). The real binary, a real temporary
//! directory.

use std::path::Path;
use std::process::{Command, Output};

fn salam(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salam"))
        .args(args)
        .current_dir(dir)
        // The environment must not point the binary elsewhere.
        .env_remove("SALAM_CONFIG")
        .env_remove("SALAM_DATA")
        .output()
        .expect("the salam binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn rules_commands_outside_the_repository_use_the_built_in_pack() {
    let empty = tempfile::tempdir().unwrap();
    assert!(!empty.path().join("bot-rules").exists());

    let tried = salam(empty.path(), &["rules", "try", "where is my order"]);
    assert!(tried.status.success(), "{}", text(&tried.stderr));
    let stdout = text(&tried.stdout);
    assert!(stdout.contains("decision:   answer"), "{stdout}");
    assert!(stdout.contains("intent:     order_tracking"), "{stdout}");
    assert!(
        text(&tried.stderr).contains("the pack built into the binary"),
        "the fallback is said: {}",
        text(&tried.stderr)
    );

    // In Arabic too, and `check` lints the built-in pack.
    let tried = salam(empty.path(), &["rules", "try", "--lang", "ar", "وين طلبي"]);
    assert!(tried.status.success(), "{}", text(&tried.stderr));
    assert!(
        text(&tried.stdout).contains("language:   ar"),
        "{}",
        text(&tried.stdout)
    );
    let checked = salam(empty.path(), &["rules", "check"]);
    assert!(checked.status.success(), "{}", text(&checked.stdout));
    assert!(
        text(&checked.stdout).starts_with("ok: "),
        "{}",
        text(&checked.stdout)
    );

    // A directory named on the command line must exist: a typo is an error, not a
    // silent switch to another pack.
    let named = salam(
        empty.path(),
        &["rules", "try", "--rules", "my-rules", "hello"],
    );
    assert_eq!(named.status.code(), Some(1));
    assert!(
        text(&named.stderr).contains("cannot read the rule directory my-rules"),
        "{}",
        text(&named.stderr)
    );

    // A `bot-rules/` directory where the command runs is used, as the hub uses it.
    let own = empty.path().join("bot-rules");
    std::fs::create_dir(&own).unwrap();
    std::fs::write(
        own.join("shop.toml"),
        r#"[[rule]]
id = "gift_cards"
intent = "gift_cards"
label = { en = "Gift cards", ar = "بطاقات الهدايا", fa = "کارت هدیه" }

[rule.answer]
en = "Yes, we sell gift cards."
ar = "نعم، نبيع بطاقات الهدايا."
fa = "بله، کارت هدیه داریم."

[rule.match]
en = ["gift card"]
ar = ["بطاقه هدايا"]
fa = ["کارت هدیه"]
"#,
    )
    .unwrap();
    let tried = salam(empty.path(), &["rules", "try", "do you have a gift card"]);
    assert!(tried.status.success(), "{}", text(&tried.stderr));
    let stdout = text(&tried.stdout);
    assert!(stdout.contains("rule:       gift_cards"), "{stdout}");
    assert!(!text(&tried.stderr).contains("built into the binary"));
}
