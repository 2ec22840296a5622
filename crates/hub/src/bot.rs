//! The bot in the hub: loads the rule pack, reloads it on change, and runs the triage
//! flow for conversations in the `bot` state.
//!
//! The rules live in `bot-rules/` (config `bot.rules_dir`); when that directory does not
//! exist the pack embedded at build time is used, so an installed binary still has a
//! bot. A reload that fails keeps the rules in force and reports `file:line: reason`.

use salam_bot::{RuleFile, RuleSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// Reads every `*.toml` file of `dir`, sorted by name.
pub fn read_rule_files(dir: &Path) -> std::io::Result<Vec<RuleFile>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(RuleFile::new(name, text))
        })
        .collect()
}

/// The rule pack embedded at build time.
pub fn embedded_rule_files() -> Vec<RuleFile> {
    crate::assets::DEFAULT_RULES
        .iter()
        .map(|(name, text)| RuleFile::new(*name, *text))
        .collect()
}

/// Formats loader errors one per line, `file:line: reason`.
pub fn format_errors(errors: &[salam_bot::RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rules in force, swappable at run time.
pub struct BotEngine {
    rules: RwLock<Arc<RuleSet>>,
    /// The directory the rules come from (`None`: the embedded pack).
    dir: Option<PathBuf>,
    /// Modification times seen at the last load, to notice changes.
    seen: Mutex<Vec<(PathBuf, Option<SystemTime>)>>,
    /// The last reload error, shown in the console.
    pub last_error: RwLock<Option<String>>,
}

impl BotEngine {
    /// Loads from `dir` when it exists, else the embedded pack.
    pub fn load(dir: &Path) -> Result<BotEngine, String> {
        let (files, dir) = if dir.is_dir() {
            let files = read_rule_files(dir)
                .map_err(|err| format!("cannot read {}: {err}", dir.display()))?;
            (files, Some(dir.to_path_buf()))
        } else {
            (embedded_rule_files(), None)
        };
        let rules = RuleSet::load(&files).map_err(|errors| format_errors(&errors))?;
        let engine = BotEngine {
            rules: RwLock::new(Arc::new(rules)),
            seen: Mutex::new(dir.as_deref().map(fingerprint).unwrap_or_default()),
            dir,
            last_error: RwLock::new(None),
        };
        Ok(engine)
    }

    /// The rules in force (the lock is held only to clone the `Arc`).
    pub fn current(&self) -> Arc<RuleSet> {
        self.rules
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Where the rules come from, for display.
    pub fn source(&self) -> String {
        match &self.dir {
            Some(dir) => dir.display().to_string(),
            None => "the pack embedded in the binary".into(),
        }
    }

    /// Reloads from the directory. On error the rules in force stay.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(dir) = &self.dir else {
            return Ok(self.current().rules().len());
        };
        let result = read_rule_files(dir)
            .map_err(|err| format!("cannot read {}: {err}", dir.display()))
            .and_then(|files| RuleSet::load(&files).map_err(|errors| format_errors(&errors)));
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = fingerprint(dir);
        match result {
            Ok(rules) => {
                let n_rules = rules.rules().len();
                *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
                *self.last_error.write().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!(rules = n_rules, dir = %dir.display(), "bot rules reloaded");
                Ok(n_rules)
            }
            Err(errors) => {
                tracing::error!(
                    "bot rules not reloaded; the previous rules stay in force:\n{errors}"
                );
                *self.last_error.write().unwrap_or_else(|p| p.into_inner()) = Some(errors.clone());
                Err(errors)
            }
        }
    }

    /// Whether a rule file changed since the last load.
    fn changed(&self) -> bool {
        match &self.dir {
            Some(dir) => *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != fingerprint(dir),
            None => false,
        }
    }

    /// Polls the rule directory and reloads on change; reloads on SIGHUP too
    /// (`systemctl reload`). The SIGHUP handler is installed before this returns, so
    /// once the hub listens a SIGHUP reloads the rules and never ends the process
    /// (SIGHUP's default action).
    pub fn watch(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                #[cfg(unix)]
                let hangup_recv = async {
                    match hangup.as_mut() {
                        Some(signal) => {
                            signal.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup_recv = std::future::pending::<()>();
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = hangup_recv => {
                        tracing::info!("SIGHUP: reloading the bot's rules");
                        let _ = self.reload();
                    }
                    _ = ticker.tick() => {
                        if self.changed() {
                            let _ = self.reload();
                        }
                    }
                }
            }
        });
    }
}

fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut entries: Vec<(PathBuf, Option<SystemTime>)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
                .map(|path| {
                    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                    (path, modified)
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

/// What the bot would do with `text`, for `salam rules try` and the console's "try a
/// sentence" box.
pub fn explain(rules: &RuleSet, text: &str, lang: Option<&str>) -> serde_json::Value {
    use salam_bot::{Decision, Lang, TriageInput};
    let locale = lang.and_then(Lang::parse);
    let decision = rules.triage(&TriageInput::new(text, locale));
    let (reply, quick_replies, department, reason) = match &decision {
        Decision::Answer {
            text,
            quick_replies,
            link,
            ..
        } => (
            match link {
                Some(link) => format!("{text}\n{link}"),
                None => text.clone(),
            },
            quick_replies.iter().map(|q| q.label.clone()).collect(),
            None,
            None,
        ),
        Decision::Clarify {
            question, options, ..
        } => (
            question.clone(),
            options.iter().map(|q| q.label.clone()).collect(),
            None,
            None,
        ),
        Decision::Handoff {
            text,
            department,
            reason,
            ..
        } => (
            text.clone(),
            Vec::new(),
            department.clone(),
            Some(reason.as_str()),
        ),
        Decision::Fallback {
            text,
            quick_replies,
            ..
        } => (
            text.clone(),
            quick_replies.iter().map(|q| q.label.clone()).collect(),
            None,
            None,
        ),
    };
    serde_json::json!({
        "text": text,
        "normalized": salam_bot::normalize(text),
        "detected_lang": salam_bot::detect_language(text).map(Lang::as_str),
        "lang": decision.lang().as_str(),
        "decision": decision.kind(),
        "intent": decision.predicted_intent(),
        "rule": decision.rule_id(),
        "score": decision.score(),
        "reply": reply,
        "quick_replies": quick_replies,
        "department": department,
        "handoff_reason": reason,
    })
}
