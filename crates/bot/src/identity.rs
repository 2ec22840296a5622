//! Per-site identity: the values of a pack's `{name}` placeholders and overrides of its
//! fixed phrases.
//!
//! A pack names its identity in `[identity]` (any key: `store_name`, `site_url`,
//! `phone` …), as one text for all languages or one per language, and writes
//! `{store_name}` in answers, links and phrases. Placeholders are filled when the pack
//! is compiled, so triage pays nothing for them. A site that uses a pack made for
//! another (the demo pack, a shared template) passes an [`Identity`] to
//! [`crate::RuleSet::load_with`]: its values win over the pack's, and its phrases over
//! the pack's `[phrases]`.
//!
//! `{when}` is not a placeholder of the identity: [`crate::Phrases::offline_text`]
//! fills it at run time.

use std::collections::BTreeMap;

use crate::Lang;
use crate::pack::{Phrases, lang_index};

/// A fixed phrase of the bot (the fields of [`Phrases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhraseKey {
    /// [`Phrases::bot_name`].
    BotName,
    /// [`Phrases::fallback`].
    Fallback,
    /// [`Phrases::clarify`].
    Clarify,
    /// [`Phrases::handoff`].
    Handoff,
    /// [`Phrases::offline`] (must keep `{when}`).
    Offline,
    /// [`Phrases::ask_contact`].
    AskContact,
    /// [`Phrases::contact_saved`].
    ContactSaved,
    /// [`Phrases::talk_to_person`] (must still hand off; `check` verifies it).
    TalkToPerson,
}

impl PhraseKey {
    /// Every phrase, in the order of [`Phrases`]' fields.
    pub const ALL: [PhraseKey; 8] = [
        PhraseKey::BotName,
        PhraseKey::Fallback,
        PhraseKey::Clarify,
        PhraseKey::Handoff,
        PhraseKey::Offline,
        PhraseKey::AskContact,
        PhraseKey::ContactSaved,
        PhraseKey::TalkToPerson,
    ];

    /// The key as written in `[phrases.xx]`: `"bot_name"`, `"fallback"` …
    pub fn as_str(self) -> &'static str {
        match self {
            PhraseKey::BotName => "bot_name",
            PhraseKey::Fallback => "fallback",
            PhraseKey::Clarify => "clarify",
            PhraseKey::Handoff => "handoff",
            PhraseKey::Offline => "offline",
            PhraseKey::AskContact => "ask_contact",
            PhraseKey::ContactSaved => "contact_saved",
            PhraseKey::TalkToPerson => "talk_to_person",
        }
    }

    /// Parses [`PhraseKey::as_str`].
    pub fn parse(key: &str) -> Option<PhraseKey> {
        PhraseKey::ALL
            .into_iter()
            .find(|phrase| phrase.as_str() == key)
    }

    pub(crate) fn field(self, phrases: &mut Phrases) -> &mut String {
        match self {
            PhraseKey::BotName => &mut phrases.bot_name,
            PhraseKey::Fallback => &mut phrases.fallback,
            PhraseKey::Clarify => &mut phrases.clarify,
            PhraseKey::Handoff => &mut phrases.handoff,
            PhraseKey::Offline => &mut phrases.offline,
            PhraseKey::AskContact => &mut phrases.ask_contact,
            PhraseKey::ContactSaved => &mut phrases.contact_saved,
            PhraseKey::TalkToPerson => &mut phrases.talk_to_person,
        }
    }
}

/// A site's identity, applied over a pack by [`crate::RuleSet::load_with`]. Built with
/// the methods below; the default changes nothing.
///
/// ```
/// use salam_bot::{Identity, Lang, PhraseKey};
/// let acme = Identity::new()
///     .var("site_url", "https://acme.example")
///     .var("store_name", "Acme")
///     .var_in(Lang::Ar, "store_name", "أكمي")
///     .phrase(Lang::En, PhraseKey::BotName, "Acme helper");
/// assert_eq!(acme.value(Lang::Ar, "store_name"), Some("أكمي"));
/// assert_eq!(acme.value(Lang::Fa, "store_name"), Some("Acme"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// name → (value for every language, value per language)
    vars: BTreeMap<String, (Option<String>, [Option<String>; 3])>,
    phrases: BTreeMap<(usize, PhraseKey), String>,
}

impl Identity {
    /// An identity that overrides nothing.
    pub fn new() -> Identity {
        Identity::default()
    }

    /// Sets the placeholder `{name}` in every language (a per-language value set with
    /// [`Identity::var_in`] wins).
    pub fn var(mut self, name: &str, value: &str) -> Identity {
        self.vars.entry(name.to_string()).or_default().0 = Some(value.to_string());
        self
    }

    /// Sets the placeholder `{name}` in one language.
    pub fn var_in(mut self, lang: Lang, name: &str, value: &str) -> Identity {
        self.vars.entry(name.to_string()).or_default().1[lang_index(lang)] =
            Some(value.to_string());
        self
    }

    /// Replaces one fixed phrase in one language (placeholders are filled in it too).
    pub fn phrase(mut self, lang: Lang, key: PhraseKey, text: &str) -> Identity {
        self.phrases
            .insert((lang_index(lang), key), text.to_string());
        self
    }

    /// The value of `{name}` in `lang`, if this identity sets it.
    pub fn value(&self, lang: Lang, name: &str) -> Option<&str> {
        let (all, per_lang) = self.vars.get(name)?;
        per_lang[lang_index(lang)].as_deref().or(all.as_deref())
    }

    /// The phrase overrides in `lang`.
    pub(crate) fn phrases_in(&self, lang: Lang) -> impl Iterator<Item = (PhraseKey, &str)> {
        let wanted = lang_index(lang);
        self.phrases
            .iter()
            .filter(move |((idx, _), _)| *idx == wanted)
            .map(|((_, key), text)| (*key, text.as_str()))
    }
}

/// Fills the `{name}` placeholders of `text` with `lookup`. Text in braces that is not
/// a name (`{ }`, `{Hello world}`, a customer's `{key|fallback}`) and `{when}` stay as
/// they are; so does `{name}` without a value when `customer` is set (an answer: the
/// customer's name, filled at run time, [`crate::customer`]). Errors name the first
/// placeholder without a value.
pub(crate) fn fill<'v>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
    customer: bool,
) -> Result<String, String> {
    if !text.contains('{') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|ch: char| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if name.is_empty() || !after[name_len..].starts_with('}') || name == "when" {
            out.push('{');
            rest = after;
            continue;
        }
        match lookup(name) {
            Some(value) => out.push_str(value),
            None if customer && name == "name" => out.push_str("{name}"),
            None => return Err(name.to_string()),
        }
        rest = &after[name_len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let lookup = |name: &str| match name {
            "store_name" => Some("Acme"),
            "site_url" => Some("https://acme.example"),
            _ => None,
        };
        assert_eq!(
            fill("Welcome to {store_name}! {site_url}/help", lookup, false).as_deref(),
            Ok("Welcome to Acme! https://acme.example/help")
        );
        assert_eq!(fill("plain", lookup, false).as_deref(), Ok("plain"));
        assert_eq!(
            fill("a reply {when}, {not a name} {}", lookup, false).as_deref(),
            Ok("a reply {when}, {not a name} {}")
        );
        assert_eq!(fill("{phone}", lookup, false), Err("phone".to_string()));
        assert_eq!(
            fill("{store_name", lookup, false).as_deref(),
            Ok("{store_name")
        );
        // The customer's placeholders stay for run time, in answers only.
        assert_eq!(
            fill("Hi {name}, {name|you} at {store_name}", lookup, true).as_deref(),
            Ok("Hi {name}, {name|you} at Acme")
        );
        assert_eq!(fill("Hi {name}", lookup, false), Err("name".to_string()));
    }

    #[test]
    fn phrase_keys_round_trip() {
        for key in PhraseKey::ALL {
            assert_eq!(PhraseKey::parse(key.as_str()), Some(key));
        }
        assert_eq!(PhraseKey::parse("nope"), None);
    }
}
