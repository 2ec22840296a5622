//! Pure text helpers for the view: link detection and avatar initials.
//!
//! Link detection only ever produces `http://` and `https://` links, so a message can
//! never smuggle a `javascript:` or `data:` URL into an `href`.

/// A piece of a message: plain text or a link to render as `<a>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// Splits `text` into plain text and http(s) links. A link starts with `http://` or
/// `https://` (any case) at the start or after a non-alphanumeric character, runs to
/// the next white space, and loses trailing punctuation (`.`, `,`, `)` and the like).
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut plain_start = 0;
    let mut cursor = 0;
    let lower = text.to_ascii_lowercase();
    while cursor < text.len() {
        let Some(found) = find_scheme(sub(&lower, cursor, lower.len())) else {
            break;
        };
        let start = cursor + found;
        let boundary = sub(text, 0, start)
            .chars()
            .next_back()
            // ASCII only: Unicode's alphabetic tables would cost kilobytes of WASM.
            .is_none_or(|before| !before.is_ascii_alphanumeric());
        let end = start
            + sub(text, start, text.len())
                .find(char::is_whitespace)
                .unwrap_or(text.len() - start);
        let mut link = sub(text, start, end);
        while let Some(last) = link.chars().next_back() {
            let unbalanced_paren =
                last == ')' && link.matches('(').count() < link.matches(')').count();
            if matches!(
                last,
                '.' | ',' | '!' | '?' | ';' | ':' | '\'' | '"' | '>' | ']'
            ) || unbalanced_paren
            {
                link = sub(link, 0, link.len() - last.len_utf8());
            } else {
                break;
            }
        }
        let scheme_len = if sub(&lower, start, lower.len()).starts_with("https://") {
            8
        } else {
            7
        };
        if !boundary || link.len() <= scheme_len {
            cursor = start + scheme_len;
            continue;
        }
        if plain_start < start {
            out.push(Segment::Text(sub(text, plain_start, start)));
        }
        out.push(Segment::Link(link));
        cursor = start + link.len();
        plain_start = cursor;
    }
    if plain_start < text.len() {
        out.push(Segment::Text(sub(text, plain_start, text.len())));
    }
    out
}

/// `text[start..end]`, or "" where that is not a slice of whole characters. Never
/// panics: without any panicking `str` index in the widget, the WASM carries none of
/// the formatting code behind that panic's message (~2 KB gzip).
pub fn sub(text: &str, start: usize, end: usize) -> &str {
    text.get(start..end).unwrap_or_default()
}

fn find_scheme(lower: &str) -> Option<usize> {
    // A byte scan rather than `str::find(&str)`: the two-way searcher costs ~2 KB of WASM.
    lower.char_indices().map(|(index, _)| index).find(|&index| {
        let rest = sub(lower, index, lower.len());
        rest.starts_with("http://") || rest.starts_with("https://")
    })
}

/// Up to two initials for an avatar: the first letter of the first two words.
pub fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|word| word.chars().find(|c| !c.is_ascii_punctuation()))
        .take(2)
        // ASCII only: full Unicode case tables would add kilobytes to the WASM for
        // a two-letter avatar (Arabic and Persian have no case anyway).
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::{Link, Text};

    fn check(input: &str, want: &[Segment<'_>]) {
        assert_eq!(segments(input), want, "{input}");
    }

    #[test]
    fn links_are_http_and_https_only() {
        check(
            "see https://a.example/x.",
            &[Text("see "), Link("https://a.example/x"), Text(".")],
        );
        check("HTTP://A.example", &[Link("HTTP://A.example")]);
        check("javascript:alert(1)", &[Text("javascript:alert(1)")]);
        check(
            "data:text/html,<b>x</b>",
            &[Text("data:text/html,<b>x</b>")],
        );
        check("xhttps://evil.example", &[Text("xhttps://evil.example")]);
        check("https://", &[Text("https://")]);
        check(
            "(https://a.example/wiki/X_(y)) ok",
            &[
                Text("("),
                Link("https://a.example/wiki/X_(y)"),
                Text(") ok"),
            ],
        );
        check(
            "a http://x.example b https://y.example",
            &[
                Text("a "),
                Link("http://x.example"),
                Text(" b "),
                Link("https://y.example"),
            ],
        );
        check(
            "رابط: https://a.example/ض",
            &[Text("رابط: "), Link("https://a.example/ض")],
        );
        check("", &[]);
    }

    #[test]
    fn initials_take_two_words() {
        assert_eq!(initials("Sara Karimi"), "SK");
        assert_eq!(initials("sara"), "S");
        assert_eq!(initials("  "), "");
        assert_eq!(initials("علی رضایی"), "عر");
        assert_eq!(initials("<img src=x>"), "IS");
    }
}
