//! Customer placeholders in answers (issue 19): `{name}`, `{order_status|not known yet}`,
//! filled per conversation by the hub from what it knows of the customer.
//!
//! **Two kinds of placeholder, resolved in this order.**
//! 1. When the pack is compiled: a bare `{key}` is the site's identity (`{store_name}`,
//!    `{site_url}`: the site's `bot_identity`, then the pack's `[identity]`); a bare
//!    `{key}` that neither defines is a load error (a typo is caught), except `{name}`
//!    in an answer, which is left for the customer.
//! 2. When the answer is sent: [`fill_customer`] fills what is left: `{name}` and every
//!    `{key|fallback}` (a `|` always means the customer, even for a key the identity
//!    defines). The text after `|` (up to 100 characters, no braces or line breaks) is
//!    used when the customer has no value; `{key|}` means nothing.
//!
//! **A missing value without a fallback** is left out, and the sentence around it is
//! kept readable: a space before it goes when punctuation or another space follows
//! (`Hello {name}, welcome` → `Hello, welcome`; `Thanks, {name}!` → `Thanks!`), and at
//! the start of a line a comma after it goes too (`{name}, your order` → `your order`).
//!
//! **Values are text, never markup and never placeholders**: the text is scanned once,
//! so a value containing `{x}` stays literally `{x}`. Cleaning and capping the values
//! is the caller's job (the hub's text hygiene). Pure.

/// Characters of a fallback at most (longer: the braces stay literal text).
pub const MAX_FALLBACK_CHARS: usize = 100;
/// Characters of a key at most.
pub const MAX_KEY_CHARS: usize = 64;

/// One customer placeholder found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder<'t> {
    key: &'t str,
    /// `None`: bare `{key}`.
    fallback: Option<&'t str>,
    /// Bytes from the `{` to after the `}`.
    len: usize,
}

/// Parses a placeholder at the start of `text` (which starts with `{`).
fn parse(text: &str) -> Option<Placeholder<'_>> {
    let after = text.strip_prefix('{')?;
    let key_len = after
        .find(|ch: char| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'))
        .unwrap_or(after.len());
    let key = &after[..key_len];
    if key.is_empty() || key.len() > MAX_KEY_CHARS {
        return None;
    }
    let rest = &after[key_len..];
    if rest.starts_with('}') {
        return Some(Placeholder {
            key,
            fallback: None,
            len: 1 + key_len + 1,
        });
    }
    let fallback_and_more = rest.strip_prefix('|')?;
    let close = fallback_and_more.find(['}', '{', '\n', '\r'])?;
    if !fallback_and_more[close..].starts_with('}') {
        return None;
    }
    let fallback = &fallback_and_more[..close];
    if fallback.chars().count() > MAX_FALLBACK_CHARS {
        return None;
    }
    Some(Placeholder {
        key,
        fallback: Some(fallback),
        len: 1 + key_len + 1 + close + 1,
    })
}

/// Whether a placeholder is the customer's: `{name}` or any `{key|fallback}`.
fn is_customer(placeholder: &Placeholder<'_>) -> bool {
    placeholder.fallback.is_some() || placeholder.key == "name"
}

/// Whether `text` has a customer placeholder (so the hub looks the customer up only
/// for the answers that need it).
pub fn has_customer_placeholders(text: &str) -> bool {
    text.match_indices('{')
        .any(|(at, _)| parse(&text[at..]).is_some_and(|p| is_customer(&p)))
}

/// The key of the first `{key|fallback}` in `text`, if any: the pack's compiler refuses
/// them where only answers can have them (links, phrases).
pub fn first_fallback_placeholder(text: &str) -> Option<&str> {
    text.match_indices('{')
        .filter_map(|(at, _)| parse(&text[at..]))
        .find(|p| p.fallback.is_some())
        .map(|p| p.key)
}

/// Fills the customer placeholders of `text` with `lookup` (the customer's value of a
/// key, already cleaned; `None` or empty when there is none), then the fallback, then
/// nothing (see the module docs). Everything else stays as it is.
pub fn fill_customer(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    if !text.contains('{') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let at = &rest[open..];
        let Some(placeholder) = parse(at).filter(is_customer) else {
            out.push('{');
            rest = &at[1..];
            continue;
        };
        rest = &at[placeholder.len..];
        let value = lookup(placeholder.key)
            .filter(|value| !value.is_empty())
            .or_else(|| placeholder.fallback.map(str::to_string))
            .unwrap_or_default();
        if !value.is_empty() {
            out.push_str(&value);
            continue;
        }
        // Nothing to say: keep the sentence readable.
        let next = rest.chars().next();
        let line_start = out.is_empty() || out.ends_with('\n');
        if out.ends_with(' ') && next.is_none_or(|c| c.is_whitespace() || ",.!?;:،؛؟)".contains(c))
        {
            let mut trimmed = out.trim_end_matches(' ').len();
            // `Thanks, {name}!` → `Thanks!`: a comma left before punctuation goes too.
            if next.is_none_or(|c| !c.is_whitespace()) {
                trimmed = out[..trimmed].trim_end_matches([',', '،']).len();
            }
            out.truncate(trimmed);
        } else if line_start {
            rest = rest.trim_start_matches([',', '،']).trim_start_matches(' ');
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(name: Option<&str>) -> impl Fn(&str) -> Option<String> + '_ {
        move |key| match key {
            "name" => name.map(str::to_string),
            "order_status" => Some("shipped".to_string()),
            "tricky" => Some("{name} {order_status|x}".to_string()),
            _ => None,
        }
    }

    #[test]
    fn values_then_fallbacks_then_nothing() {
        let cases = [
            ("Hello {name|there}!", Some("Mona"), "Hello Mona!"),
            ("Hello {name|there}!", None, "Hello there!"),
            ("Hello {name}, welcome", Some("Mona"), "Hello Mona, welcome"),
            ("Hello {name}, welcome", None, "Hello, welcome"),
            ("Thanks {name}!", None, "Thanks!"),
            ("You're welcome, {name}!", None, "You're welcome!"),
            (
                "You're welcome, {name}!",
                Some("Mona"),
                "You're welcome, Mona!",
            ),
            ("Hi, {name}", None, "Hi"),
            ("Thanks {name} for waiting", None, "Thanks for waiting"),
            ("{name}, your order", None, "your order"),
            ("{name}، سفارش", None, "سفارش"),
            (
                "Your order is {order_status|unknown}.",
                None,
                "Your order is shipped.",
            ),
            ("Plan: {plan|}.", None, "Plan:."),
            ("مرحبا {name|عزيزي}!", None, "مرحبا عزيزي!"),
        ];
        for (text, name, expected) in cases {
            assert_eq!(fill_customer(text, customer(name)), expected, "{text}");
        }
    }

    #[test]
    fn values_are_never_expanded_again() {
        assert_eq!(
            fill_customer("[{tricky|}]", customer(Some("Mona"))),
            "[{name} {order_status|x}]"
        );
    }

    #[test]
    fn other_braces_stay_as_written() {
        let lookup = customer(Some("Mona"));
        for text in [
            "{store_name}",
            "{when}",
            "{ }",
            "{Name}",
            "{name",
            "{name|no end",
            "{name|a{b}",
            "{name|two\nlines}",
            "{}",
            "{|x}",
        ] {
            assert_eq!(fill_customer(text, &lookup), text, "{text}");
        }
        let long = format!("{{name|{}}}", "a".repeat(MAX_FALLBACK_CHARS + 1));
        assert_eq!(fill_customer(&long, &lookup), long);
    }

    #[test]
    fn detection() {
        assert!(has_customer_placeholders("Hi {name}"));
        assert!(has_customer_placeholders("{order_status|?}"));
        assert!(!has_customer_placeholders("Hi {store_name} {when}"));
        assert_eq!(first_fallback_placeholder("a {plan|free}"), Some("plan"));
        assert_eq!(first_fallback_placeholder("a {name} {x}"), None);
    }
}
