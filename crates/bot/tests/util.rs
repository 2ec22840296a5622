use std::path::{Path, PathBuf};

use salam_bot::{RuleFile, RuleSet};

pub fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bot-rules")
}

/// The `*.toml` files of the default pack, sorted by name.
pub fn default_files() -> Vec<RuleFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(rules_dir())
        .expect("bot-rules directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            RuleFile::new(name, std::fs::read_to_string(&path).expect("rule file"))
        })
        .collect()
}

pub fn default_pack() -> RuleSet {
    match RuleSet::load(&default_files()) {
        Ok(rules) => rules,
        Err(errors) => panic!("default pack does not load:\n{}", join(&errors)),
    }
}

pub fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A one-file pack from TOML text.
pub fn pack(text: &str) -> RuleSet {
    match RuleSet::load(&[RuleFile::new("test.toml", text)]) {
        Ok(rules) => rules,
        Err(errors) => panic!("test pack does not load:\n{}", join(&errors)),
    }
}
