//! Edits to the bot's rule files from the console: a visitor's question added to a
//! rule's `examples` (which teach the bot's second stage, see `bot-rules/README.md`).
//!
//! The file is edited in place with `toml_edit`, so its comments and layout stay; it is
//! written to a temporary file and renamed over the old one, and the caller reloads the
//! rules (the hot reload would pick the change up too). Only rules read from a
//! directory can be edited: the pack built into the binary cannot.

use std::path::{Path, PathBuf};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// Why an example was not added.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The hub runs the pack built into the binary (`bot.rules_dir` does not exist).
    #[error("the rules are built into the binary; set bot.rules_dir to a directory")]
    NoDirectory,
    /// No file defines a rule with this id.
    #[error("no rule has the id {0}")]
    UnknownRule(String),
    /// A rule file is not valid TOML (the loader reports where).
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml_edit::TomlError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an addition did: the file, and its text before (to put back if the pack no
/// longer loads).
#[derive(Debug)]
pub struct Added {
    pub path: PathBuf,
    pub before: String,
    /// False when the rule already had this example (nothing was written).
    pub written: bool,
}

/// Adds `text` to the `lang` examples of the rule `rule_id` in `dir`.
pub fn add_example(
    dir: Option<&Path>,
    rule_id: &str,
    lang: &str,
    text: &str,
) -> Result<Added, EditError> {
    let dir = dir.ok_or(EditError::NoDirectory)?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| EditError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let before = std::fs::read_to_string(&path).map_err(|source| EditError::Io {
            path: path.clone(),
            source,
        })?;
        let mut document: DocumentMut = before.parse().map_err(|source| EditError::Parse {
            path: path.clone(),
            source,
        })?;
        let Some(rule) = find_rule(&mut document, rule_id) else {
            continue;
        };
        let examples = rule
            .entry("examples")
            .or_insert_with(|| Item::Table(Table::new()));
        let Some(examples) = examples.as_table_like_mut() else {
            continue;
        };
        let list = examples
            .entry(lang)
            .or_insert(Item::Value(Value::Array(Array::new())));
        let Some(list) = list.as_array_mut() else {
            continue;
        };
        if list.iter().any(|item| item.as_str() == Some(text)) {
            return Ok(Added {
                path,
                before,
                written: false,
            });
        }
        list.push(text);
        write_atomically(&path, &document.to_string())?;
        return Ok(Added {
            path,
            before,
            written: true,
        });
    }
    Err(EditError::UnknownRule(rule_id.to_owned()))
}

/// The `[[rule]]` table with `id = rule_id`.
fn find_rule<'a>(document: &'a mut DocumentMut, rule_id: &str) -> Option<&'a mut Table> {
    document
        .get_mut("rule")?
        .as_array_of_tables_mut()?
        .iter_mut()
        .find(|rule| rule.get("id").and_then(Item::as_str) == Some(rule_id))
}

/// Writes `text` next to `path` and renames it over `path`.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), EditError> {
    let io = |source| EditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension("toml.saving");
    std::fs::write(&temporary, text).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_is_added_in_place_and_comments_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.toml");
        let text = "# Shop rules.\n\n[[rule]]\nid = \"gifts\"\nintent = \"gifts\"\n\n[rule.answer]\nen = \"Yes.\"\n\n[rule.match]\nen = [\"gift card\"] # the main phrase\n\n[[rule]]\nid = \"hours\"\nintent = \"hours\"\n\n[rule.answer]\nen = \"9 to 5.\"\n\n[rule.examples]\nen = [\"when do you open\"]\n";
        std::fs::write(&path, text).unwrap();
        let added = add_example(Some(dir.path()), "gifts", "ar", "هل عندكم بطاقات هدايا").unwrap();
        assert!(added.written);
        assert_eq!(added.before, text);
        let added = add_example(Some(dir.path()), "hours", "en", "are you open on friday").unwrap();
        assert!(added.written);
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.starts_with("# Shop rules."), "{now}");
        assert!(now.contains("# the main phrase"), "{now}");
        let parsed: toml::Value = toml::from_str(&now).unwrap();
        let rules = parsed["rule"].as_array().unwrap();
        assert_eq!(
            rules[0]["examples"]["ar"][0].as_str(),
            Some("هل عندكم بطاقات هدايا")
        );
        assert_eq!(
            rules[1]["examples"]["en"][1].as_str(),
            Some("are you open on friday")
        );
        // Twice is once.
        assert!(
            !add_example(Some(dir.path()), "hours", "en", "are you open on friday")
                .unwrap()
                .written
        );
        assert!(matches!(
            add_example(Some(dir.path()), "nope", "en", "x"),
            Err(EditError::UnknownRule(_))
        ));
        assert!(matches!(
            add_example(None, "hours", "en", "x"),
            Err(EditError::NoDirectory)
        ));
    }
}
