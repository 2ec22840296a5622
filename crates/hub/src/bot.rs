//! The bot in the hub: loads the rule pack, reloads it on change, and compiles it once
//! per site with the site's identity (the triage flow itself is [`crate::triage`]).
//!
//! The rules live in `bot-rules/` (config `bot.rules_dir`); when that directory does not
//! exist the pack embedded at build time is used, so an installed binary still has a
//! bot. A reload that fails keeps the rules in force and reports `file:line: reason`.
//!
//! **One pack, many sites.** The pack's answers, links and phrases name the store
//! through `{placeholders}` (`{store_name}`, `{site_url}`, `{email}`, …). A site whose
//! settings carry a `bot_identity` gets the pack compiled with its own values
//! ([`BotEngine::for_site`]): its name and first origin unless it says otherwise, and
//! nothing of the pack's own `[identity]` (the demo store's). A site without one (the
//! demo site) gets the pack as written. Sites created through the API or the CLI get an
//! identity of their own. Per-site compiles are cached until the next reload.

use crate::site::{IdentityText, SiteSettings};
use salam_bot::{Identity, Lang, RuleFile, RuleSet};
use salam_store::Site;
use std::collections::{BTreeMap, HashMap};
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
    /// The files the rules in force were compiled from (to compile them per site).
    files: RwLock<Arc<Vec<RuleFile>>>,
    /// Per site: the identity it was compiled with and the result, for the rules in force.
    /// A std `Mutex` is fine: it is held only to look up or insert, never across an
    /// `.await` (a compile happens outside it).
    per_site: Mutex<HashMap<String, (String, Arc<RuleSet>)>>,
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
            files: RwLock::new(Arc::new(files)),
            per_site: Mutex::new(HashMap::new()),
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

    /// The rules for one site: the pack compiled with the site's identity (see the
    /// module docs), or the pack as written for a site without one.
    pub fn for_site(&self, site: &Site, settings: &SiteSettings) -> Arc<RuleSet> {
        let Some(identity) = &settings.bot_identity else {
            return self.current();
        };
        let key = site_identity_key(site, identity);
        if let Some((compiled_for, rules)) = self
            .per_site
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&site.id)
            && *compiled_for == key
        {
            return rules.clone();
        }
        let files = self.files.read().unwrap_or_else(|p| p.into_inner()).clone();
        let rules = match RuleSet::load_with(&files, &site_identity(site, identity)) {
            Ok(rules) => Arc::new(rules),
            Err(errors) => {
                // Cannot happen for a pack that loaded (an identity only fills values);
                // the pack as written is better than no bot.
                tracing::warn!(site = %site.id, "the pack does not compile for the site:\n{}", format_errors(&errors));
                return self.current();
            }
        };
        self.per_site
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(site.id.clone(), (key, rules.clone()));
        rules
    }

    /// The directory the rules come from (`None`: the pack built into the binary).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
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
            .and_then(|files| {
                RuleSet::load(&files)
                    .map(|rules| (files, rules))
                    .map_err(|errors| format_errors(&errors))
            });
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = fingerprint(dir);
        match result {
            Ok((files, rules)) => {
                let n_rules = rules.rules().len();
                *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
                *self.files.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(files);
                self.per_site
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
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

/// The placeholders of the default pack; a site that does not set one gets it empty
/// (never the demo store's value).
const PLACEHOLDERS: [&str; 7] = [
    "store_name",
    "site_url",
    "email",
    "phone",
    "whatsapp",
    "social_handle",
    "address",
];

/// A site's identity for the pack: its own values; its name and first origin for
/// `{store_name}` and `{site_url}` unless it sets them; every other placeholder of the
/// pack empty unless it sets it.
pub fn site_identity(site: &Site, identity: &BTreeMap<String, IdentityText>) -> Identity {
    let origin = site
        .origins
        .iter()
        .find(|origin| origin.as_str() != "*")
        .cloned()
        .unwrap_or_default();
    let mut built = Identity::new();
    for name in PLACEHOLDERS {
        let derived = match name {
            "store_name" => site.name.as_str(),
            "site_url" => origin.as_str(),
            _ => "",
        };
        built = built.var(name, derived);
    }
    for (name, value) in identity {
        built = match value {
            IdentityText::All(text) => built.var(name, text),
            IdentityText::PerLanguage { en, ar, fa } => {
                let mut per = built;
                for (lang, text) in [(Lang::En, en), (Lang::Ar, ar), (Lang::Fa, fa)] {
                    if let Some(text) = text {
                        per = per.var_in(lang, name, text);
                    }
                }
                per
            }
        };
    }
    built
}

/// What a site's compile depends on, to tell when it is stale.
fn site_identity_key(site: &Site, identity: &BTreeMap<String, IdentityText>) -> String {
    format!(
        "{}\u{0}{}\u{0}{}",
        site.name,
        site.origins.join(" "),
        serde_json::to_string(identity).unwrap_or_default()
    )
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
