//! Runs the default pack on a TSV: `cargo run -p salam-bot --example eval -- [file.tsv]`.
//! A development aid; the hub's `salam rules eval` is the real command.

use std::path::Path;

use salam_bot::{RuleFile, RuleSet, eval};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bot-rules");
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .expect("read bot-rules")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("read rule file");
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        files.push(RuleFile::new(name, text));
    }
    let errors = RuleSet::check(&files);
    for error in &errors {
        eprintln!("check: {error}");
    }
    let rules = match RuleSet::load(&files) {
        Ok(rules) => rules,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            std::process::exit(1);
        }
    };
    let tsv_path = std::env::args()
        .nth(1)
        .map_or_else(|| root.join("eval/dev.tsv"), Into::into);
    let tsv = std::fs::read_to_string(tsv_path).expect("read tsv");
    let report = eval::run(&rules, &tsv);
    eprintln!("{}", report.summary());
    eprint!("{}", report.confusion_summary());
}
