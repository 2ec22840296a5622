//! The proactive trigger rules of a site (issue 19), as the site settings store them:
//! their shape (closed enums for the page conditions), their validation, and the
//! signature the hub puts on each rule it sends to a page. Pure: no I/O, no state, so
//! `site` can hold them. What is done with them (which rules a page gets, the reports,
//! the conversation a reply starts) is [`crate::triggers`]; the attribute conditions are
//! kept as JSON here and decoded into `customer::Condition` there (the customer module
//! reads the store, and `site` must not depend on it). The wire format is in
//! docs/protocol.md ("Proactive triggers").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Triggers a site may have.
pub const MAX_TRIGGERS: usize = 20;
/// Page conditions per trigger.
pub const MAX_CONDITIONS: usize = 8;
/// Characters of a trigger's message.
pub const MAX_TEXT: usize = 500;
/// How long a signed trigger may be reported after the hub sent it.
pub const SIGNATURE_TTL_MS: i64 = 12 * 3600 * 1000;

/// One proactive trigger, as the site settings store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// 1–40 characters of `a-z`, `0-9`, `-` and `_`, unique in the site.
    pub id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Conditions on the page, all of which must hold (1 to 8).
    pub when: Vec<When>,
    /// Conditions on the customer's attributes, all of which must hold (evaluated on
    /// the hub; a trigger with any is never sent to an anonymous visitor).
    /// Each is a `customer::Condition` (`{"attribute","op","value"}`), decoded and
    /// checked by `triggers::check_attributes` when the settings are saved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Value>,
    /// The message shown in the bubble (1–500 characters).
    pub message: String,
    /// `bot`, or the id of the agent the message is from.
    #[serde(default = "bot")]
    pub from: String,
    /// Open the panel as the bubble shows.
    #[serde(default)]
    pub open: bool,
    /// A reply goes to people at once, not the bot (for key accounts); the trigger stays
    /// quiet while no agent is online.
    #[serde(default)]
    pub handoff: bool,
    /// Times it may show to one visitor (this browser), 0 for no limit.
    #[serde(default = "one")]
    pub per_visitor: u32,
    /// Times it may show in one browser session (tab), 0 for no limit.
    #[serde(default = "one")]
    pub per_session: u32,
    /// Stay quiet outside the site's business hours.
    #[serde(default)]
    pub only_when_open: bool,
}

impl Eq for Trigger {}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
pub(crate) fn bot() -> String {
    "bot".into()
}

/// A condition on the page, evaluated by the widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum When {
    /// The page's address matches a glob: `*` stands for any characters, nothing else is
    /// special. A pattern starting with `/` matches the path and query
    /// (`/pricing*`), any other the whole address (`https://shop.example/*`).
    Url { pattern: String },
    /// The page has been open this many seconds (1–3600).
    TimeOnPage { seconds: u32 },
    /// The visitor scrolled this far down the page, in percent (1–100).
    Scroll { percent: u32 },
    /// The mouse leaves the window through its top edge (desktop only).
    ExitIntent,
    /// A first visit (`new`) or a later one (`returning`), as this browser remembers.
    Visitor { is: VisitorKind },
    /// The browser's language starts with this code (`ar`, `fa`, `en-GB`).
    Language { is: String },
    /// The page called `Salam.track(name)` with this name.
    Event { name: String },
}

/// New or returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitorKind {
    New,
    Returning,
}

fn token_like(text: &str, max: usize, extra: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

impl When {
    fn validate(&self) -> Result<(), &'static str> {
        match self {
            When::Url { pattern }
                if pattern.is_empty()
                    || pattern.chars().count() > 200
                    || pattern.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                return Err("triggers: a url pattern is 1 to 200 characters without spaces");
            }
            When::TimeOnPage { seconds } if !(1..=3600).contains(seconds) => {
                return Err("triggers: time_on_page is 1 to 3600 seconds");
            }
            When::Scroll { percent } if !(1..=100).contains(percent) => {
                return Err("triggers: scroll is 1 to 100 percent");
            }
            When::Language { is } if !token_like(is, 12, b"-") => {
                return Err("triggers: language is a code such as ar or en-GB");
            }
            When::Event { name } if !token_like(name, 64, b"_-.:") => {
                return Err("triggers: an event name is 1 to 64 letters, digits, _ - . or :");
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks the site's triggers (from `SiteSettings::validate`), cleaning their texts.
pub fn validate(triggers: &mut [Trigger]) -> Result<(), &'static str> {
    if triggers.len() > MAX_TRIGGERS {
        return Err("triggers: at most 20");
    }
    let mut ids = std::collections::HashSet::new();
    for trigger in triggers.iter_mut() {
        if !token_like(&trigger.id, 40, b"-_") || trigger.id.bytes().any(|b| b.is_ascii_uppercase())
        {
            return Err("triggers: an id is 1 to 40 of a-z, 0-9, - and _");
        }
        if !ids.insert(trigger.id.clone()) {
            return Err("triggers: ids must be unique");
        }
        if trigger.when.is_empty() || trigger.when.len() > MAX_CONDITIONS {
            return Err("triggers: each has 1 to 8 page conditions");
        }
        for when in &trigger.when {
            when.validate()?;
        }
        if trigger.attributes.len() > MAX_CONDITIONS {
            return Err("triggers: at most 8 attribute conditions each");
        }
        if !trigger.attributes.iter().all(Value::is_object) {
            return Err("triggers: an attribute condition is {\"attribute\", \"op\", \"value\"}");
        }
        trigger.message = crate::text::clean_text(trigger.message.trim());
        if trigger.message.is_empty() || trigger.message.chars().count() > MAX_TEXT {
            return Err("triggers: a message is 1 to 500 characters");
        }
        if trigger.from != "bot" && !crate::auth::valid_id(&trigger.from, "a_") {
            return Err("triggers: from is bot or an agent's id");
        }
        if trigger.per_visitor > 100 || trigger.per_session > 100 {
            return Err("triggers: per_visitor and per_session are at most 100");
        }
    }
    Ok(())
}

/// What a signature covers: the site, the trigger's id, its text, its author (`bot` or
/// an agent id) and its expiry, as one JSON array (so no field can run into another).
fn signed_bytes(site_id: &str, id: &str, text: &str, author: &str, exp: i64) -> String {
    json!([site_id, id, text, author, exp]).to_string()
}

/// The signature of a trigger sent to a page (URL-safe base64 without padding).
pub fn sign(
    secret: &crate::auth::Secret,
    site_id: &str,
    id: &str,
    text: &str,
    author: &str,
    exp: i64,
) -> String {
    URL_SAFE_NO_PAD.encode(secret.sign("trigger", &signed_bytes(site_id, id, text, author, exp)))
}

/// A trigger as the widget sends it back: what the hub signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTrigger {
    pub id: String,
    pub text: String,
    pub author: String,
    pub exp: i64,
    pub sig: String,
}

/// Why a signed trigger is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    BadSignature,
    Expired,
}

impl SignedTrigger {
    /// Checks the signature (in constant time) and the expiry.
    pub fn verify(
        &self,
        secret: &crate::auth::Secret,
        site_id: &str,
        now: i64,
    ) -> Result<(), Refused> {
        let expected = secret.sign(
            "trigger",
            &signed_bytes(site_id, &self.id, &self.text, &self.author, self.exp),
        );
        let given = URL_SAFE_NO_PAD
            .decode(self.sig.as_bytes())
            .map_err(|_| Refused::BadSignature)?;
        if !crate::auth::same(&expected, &given) {
            return Err(Refused::BadSignature);
        }
        if self.exp < now {
            return Err(Refused::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(json: Value) -> Result<Vec<Trigger>, &'static str> {
        let mut triggers: Vec<Trigger> =
            serde_json::from_value(json).map_err(|_| "does not decode")?;
        validate(&mut triggers)?;
        Ok(triggers)
    }

    #[test]
    fn a_full_trigger_decodes_with_its_defaults() {
        let triggers = trigger(json!([{
            "id": "pricing",
            "when": [
                {"kind": "url", "pattern": "/pricing*"},
                {"kind": "time_on_page", "seconds": 20},
                {"kind": "scroll", "percent": 50},
                {"kind": "exit_intent"},
                {"kind": "visitor", "is": "returning"},
                {"kind": "language", "is": "ar"},
                {"kind": "event", "name": "checkout_failed"}
            ],
            "attributes": [{"attribute": "plan", "op": "eq", "value": "enterprise"}],
            "message": "  Questions about plans?\u{202E} ",
            "from": "a_sara1"
        }]))
        .unwrap();
        let t = &triggers[0];
        assert!(t.enabled);
        assert_eq!((t.per_visitor, t.per_session), (1, 1));
        assert_eq!(t.when.len(), 7);
        assert!(!t.message.contains('\u{202E}'), "bidi controls are cleaned");
        assert_eq!(t.message.trim(), t.message);
    }

    #[test]
    fn bad_triggers_are_refused_with_a_reason() {
        let base = |patch: Value| {
            let mut t = json!({"id": "t1", "when": [{"kind": "exit_intent"}], "message": "Hi"});
            if let (Value::Object(t), Value::Object(patch)) = (&mut t, patch) {
                t.extend(patch);
            }
            trigger(json!([t]))
        };
        assert!(base(json!({})).is_ok());
        assert!(base(json!({"when": [{"kind": "regex", "pattern": ".*"}]})).is_err());
        assert!(base(json!({"when": []})).is_err());
        assert!(base(json!({"when": [{"kind": "url", "pattern": "/a b"}]})).is_err());
        assert!(base(json!({"when": [{"kind": "time_on_page", "seconds": 0}]})).is_err());
        assert!(base(json!({"when": [{"kind": "scroll", "percent": 101}]})).is_err());
        assert!(base(json!({"when": [{"kind": "visitor", "is": "old"}]})).is_err());
        assert!(base(json!({"when": [{"kind": "event", "name": "a b"}]})).is_err());
        assert!(base(json!({"id": "Bad Id"})).is_err());
        assert!(base(json!({"message": "   "})).is_err());
        assert!(base(json!({"message": "x".repeat(501)})).is_err());
        assert!(base(json!({"from": "someone"})).is_err());
        assert!(base(json!({"per_visitor": 1000})).is_err());
        assert!(base(json!({"colour": "red"})).is_err(), "unknown fields");
        assert!(base(json!({"attributes": ["plan"]})).is_err());
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"id": format!("t{i}"), "when": [{"kind": "exit_intent"}], "message": "Hi"}))
            .collect();
        assert!(trigger(Value::Array(many)).is_err());
        let twice = json!({"id": "same", "when": [{"kind": "exit_intent"}], "message": "Hi"});
        assert!(trigger(json!([twice, twice])).is_err());
    }

    #[test]
    fn a_signature_covers_site_id_text_author_and_expiry() {
        let secret = crate::auth::Secret::from_stored(&crate::auth::Secret::generate_stored())
            .expect("secret");
        let sig = sign(&secret, "s_1", "pricing", "Hi", "bot", 1000);
        let signed = |id: &str, text: &str, author: &str, exp: i64, sig: &str| SignedTrigger {
            id: id.into(),
            text: text.into(),
            author: author.into(),
            exp,
            sig: sig.into(),
        };
        assert_eq!(
            signed("pricing", "Hi", "bot", 1000, &sig).verify(&secret, "s_1", 999),
            Ok(())
        );
        for forged in [
            signed("pricing", "Hi!", "bot", 1000, &sig),
            signed("other", "Hi", "bot", 1000, &sig),
            signed("pricing", "Hi", "a_boss", 1000, &sig),
            signed("pricing", "Hi", "bot", 5000, &sig),
            signed("pricing", "Hi", "bot", 1000, "not-base64!"),
        ] {
            assert_eq!(
                forged.verify(&secret, "s_1", 999),
                Err(Refused::BadSignature)
            );
        }
        assert_eq!(
            signed("pricing", "Hi", "bot", 1000, &sig).verify(&secret, "s_2", 999),
            Err(Refused::BadSignature),
            "another site"
        );
        assert_eq!(
            signed("pricing", "Hi", "bot", 1000, &sig).verify(&secret, "s_1", 1001),
            Err(Refused::Expired)
        );
    }

    /// The rule example of docs/protocol.md ("Proactive triggers") is a valid trigger.
    #[test]
    fn the_documented_rule_decodes_and_validates() {
        let doc = include_str!("../../../docs/protocol.md");
        let section = &doc[doc
            .find("### The rule, as the site settings store it")
            .expect("section")..];
        let body = &section[section.find("```jsonc\n").expect("example") + 9..];
        let example = &body[..body.find("```").expect("end of example")];
        let mut triggers: Vec<Trigger> =
            vec![serde_json::from_str(example).expect("the documented rule decodes")];
        assert_eq!(validate(&mut triggers), Ok(()));
        assert_eq!(triggers[0].when.len(), 2);
    }
}
