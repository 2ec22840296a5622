//! Triages sentences with the default pack and explains each decision:
//! `cargo run -p salam-bot --example try -- LANG 'sentence' ['sentence' …]`.
//! A development aid; the hub's `salam rules try` is the real command.

use std::path::Path;

use salam_bot::{Lang, RuleFile, RuleSet, TriageInput, normalize};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bot-rules");
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .expect("read bot-rules")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    entries.sort();
    let files: Vec<RuleFile> = entries
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            RuleFile::new(name, std::fs::read_to_string(path).expect("read rule file"))
        })
        .collect();
    let rules = match RuleSet::load(&files) {
        Ok(rules) => rules,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            std::process::exit(1);
        }
    };
    let mut args = std::env::args().skip(1);
    let lang = args.next().and_then(|tag| Lang::parse(&tag));
    for text in args {
        let decision = rules.triage(&TriageInput::new(&text, lang));
        println!("{text}");
        println!("  normalised: {}", normalize(&text));
        if let Some(corrected) = rules.spelling_correction(&text, lang) {
            println!("  corrected:  {corrected}");
        }
        let signals = rules.signals_in(&text, lang);
        if !signals.is_empty() {
            println!("  signals:    {signals:?}");
        }
        println!(
            "  decision:   {} {} ({:.2}, via {:?})",
            decision.kind(),
            decision.predicted_intent(),
            decision.score(),
            decision.via()
        );
        if let salam_bot::Decision::Clarify { candidates, .. } = &decision {
            println!("  candidates: {candidates:?}");
        }
    }
}
