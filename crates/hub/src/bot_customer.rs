//! The customer in the bot's answers (issue 19): `{name}` and `{key|fallback}` filled
//! per conversation, just before the answer is posted ([`crate::triage`]).
//!
//! Order of resolution: the site's identity placeholders (`{store_name}`, `{site_url}`,
//! … from `bot_identity`, then the pack's `[identity]`) were filled when the pack was
//! compiled for the site ([`crate::bot`]); what is left for the customer is `{name}` and
//! every `{key|fallback}` ([`salam_bot::customer`], which also says how a missing value
//! without a fallback is left out).
//!
//! The customer's values:
//! - `name`: the contact's name, then the visitor's (signed, or given by the visitor in
//!   the widget: it is shown only back to them and their agents), then an attribute
//!   `name`;
//! - any other key: the customer's attributes ([`crate::customer::attributes`]: the
//!   contact's, with the signed identity's on top).
//!
//! Values are plain text: cleaned as a one-line field ([`crate::text::clean_line`]: no
//! bidi overrides, no control characters), cut to [`MAX_VALUE_CHARS`], numbers and
//! booleans written as JSON writes them; never expanded again. An anonymous visitor has
//! none, so every placeholder falls back.

use crate::state::AppState;
use serde_json::{Map, Value};

/// Characters of one filled value at most.
pub const MAX_VALUE_CHARS: usize = 100;

/// A value as answer text: cleaned, capped; `None` when nothing is left.
pub fn value_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    crate::text::clean_field(Some(text), MAX_VALUE_CHARS)
}

/// Fills `text` from what is known of the customer (`name`, `attributes`). Pure.
pub fn fill_with(text: &str, name: Option<&str>, attributes: &Map<String, Value>) -> String {
    salam_bot::customer::fill_customer(text, |key| {
        let from_name = (key == "name")
            .then(|| name.and_then(|name| value_text(&Value::String(name.to_owned()))))
            .flatten();
        from_name.or_else(|| attributes.get(key).and_then(value_text))
    })
}

/// The customer's name: the contact's, then the visitor's.
async fn name(state: &AppState, visitor_id: &str) -> Option<String> {
    let visitor = state.store.visitor(visitor_id).await.ok().flatten()?;
    if let Some(external_id) = &visitor.external_id
        && let Ok(Some(contact)) = state
            .store
            .contact_by_external_id(&visitor.site_id, external_id)
            .await
        && contact.name.is_some()
    {
        return contact.name;
    }
    visitor.name
}

/// Fills the customer placeholders of a bot answer for `visitor_id`. Reads the store
/// only when the answer has one.
pub async fn fill(state: &AppState, visitor_id: &str, text: String) -> String {
    if !salam_bot::customer::has_customer_placeholders(&text) {
        return text;
    }
    let name = name(state, visitor_id).await;
    let attributes = crate::customer::attributes(state, visitor_id).await;
    fill_with(&text, name.as_deref(), &attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_clean_short_text() {
        let attributes = json!({
            "order_status": "shipped\u{202E}gnp.exe",
            "seats": 3,
            "vip": true,
            "long": "x".repeat(500),
            "two_lines": "a\nb",
        });
        let attributes = attributes.as_object().unwrap();
        assert_eq!(
            fill_with(
                "Hi {name|there}: {order_status|?} {seats|} {vip|} {missing|none}",
                Some("Mona"),
                attributes
            ),
            "Hi Mona: shippedgnp.exe 3 true none"
        );
        assert_eq!(
            fill_with("{long|}", None, attributes).chars().count(),
            MAX_VALUE_CHARS
        );
        assert_eq!(fill_with("{two_lines|}", None, attributes), "a b");
        assert_eq!(
            fill_with("Hello {name|there}!", None, &Map::new()),
            "Hello there!"
        );
        // A name made only of invisible characters is no name.
        assert_eq!(
            fill_with("Hello {name|there}!", Some("\u{200B} "), &Map::new()),
            "Hello there!"
        );
        assert_eq!(
            fill_with("[{name}]", Some("{store_name} {x|y}"), &Map::new()),
            "[{store_name} {x|y}]"
        );
    }
}
