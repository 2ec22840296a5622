//! Pure text helpers for the view: link detection, avatar initials, colour contrast.
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
        let Some(found) = find_scheme(&lower[cursor..]) else {
            break;
        };
        let start = cursor + found;
        let boundary = text[..start]
            .chars()
            .next_back()
            .is_none_or(|before| !before.is_alphanumeric());
        let end = start
            + text[start..]
                .find(char::is_whitespace)
                .unwrap_or(text.len() - start);
        let mut link = &text[start..end];
        while let Some(last) = link.chars().next_back() {
            let unbalanced_paren = last == ')' && link.matches('(').count() < link.matches(')').count();
            if matches!(last, '.' | ',' | '!' | '?' | ';' | ':' | '\'' | '"' | '>' | ']')
                || unbalanced_paren
            {
                link = &link[..link.len() - last.len_utf8()];
            } else {
                break;
            }
        }
        let scheme_len = if lower[start..].starts_with("https://") { 8 } else { 7 };
        if !boundary || link.len() <= scheme_len {
            cursor = start + scheme_len;
            continue;
        }
        if plain_start < start {
            out.push(Segment::Text(&text[plain_start..start]));
        }
        out.push(Segment::Link(link));
        cursor = start + link.len();
        plain_start = cursor;
    }
    if plain_start < text.len() {
        out.push(Segment::Text(&text[plain_start..]));
    }
    out
}

fn find_scheme(lower: &str) -> Option<usize> {
    let http = lower.find("http://");
    let https = lower.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Up to two initials for an avatar: the first letter of the first two words.
pub fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        // ASCII only: full Unicode case tables would add kilobytes to the WASM for
        // a two-letter avatar (Arabic and Persian have no case anyway).
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Parses `#rgb` or `#rrggbb`.
pub fn parse_hex_color(color: &str) -> Option<[u8; 3]> {
    let hex = color.trim().strip_prefix('#')?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        3 => {
            let digit = |i: usize| u8::from_str_radix(&hex[i..=i], 16).ok().map(|d| d * 17);
            Some([digit(0)?, digit(1)?, digit(2)?])
        }
        6 => {
            let pair = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
            Some([pair(0)?, pair(2)?, pair(4)?])
        }
        _ => None,
    }
}

/// WCAG 2 relative luminance.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

/// WCAG 2 contrast ratio between two colours (1 to 21).
pub fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (light, dark) = if la > lb { (la, lb) } else { (lb, la) };
    (light + 0.05) / (dark + 0.05)
}

/// The default brand colour (teal 700: 5.5:1 against white).
pub const DEFAULT_COLOR: &str = "#0f766e";

/// The brand colour to use and the text colour on it. A site colour that is not a
/// plain hex colour falls back to the default; the text is white when that meets WCAG
/// AA better than black, else black, so any brand colour stays readable.
pub fn brand_colors(site_color: Option<&str>) -> (String, &'static str) {
    let (color, rgb) = match site_color.and_then(|c| parse_hex_color(c).map(|rgb| (c, rgb))) {
        Some((color, rgb)) => (color.trim().to_owned(), rgb),
        None => (DEFAULT_COLOR.to_owned(), [0x0f, 0x76, 0x6e]),
    };
    // Against white or black, one of the two always reaches at least 4.58:1.
    let on = if contrast(rgb, [255, 255, 255]) >= contrast(rgb, [0, 0, 0]) {
        "#ffffff"
    } else {
        "#000000"
    };
    (color, on)
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
        check("see https://a.example/x.", &[Text("see "), Link("https://a.example/x"), Text(".")]);
        check("HTTP://A.example", &[Link("HTTP://A.example")]);
        check("javascript:alert(1)", &[Text("javascript:alert(1)")]);
        check("data:text/html,<b>x</b>", &[Text("data:text/html,<b>x</b>")]);
        check("xhttps://evil.example", &[Text("xhttps://evil.example")]);
        check("https://", &[Text("https://")]);
        check(
            "(https://a.example/wiki/X_(y)) ok",
            &[Text("("), Link("https://a.example/wiki/X_(y)"), Text(") ok")],
        );
        check(
            "a http://x.example b https://y.example",
            &[Text("a "), Link("http://x.example"), Text(" b "), Link("https://y.example")],
        );
        check("رابط: https://a.example/ض", &[Text("رابط: "), Link("https://a.example/ض")]);
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

    #[test]
    fn brand_text_meets_wcag_aa() {
        assert_eq!(brand_colors(None), ("#0f766e".into(), "#ffffff"));
        assert_eq!(brand_colors(Some("#fde047")), ("#fde047".into(), "#000000"));
        assert_eq!(brand_colors(Some("#000")), ("#000".into(), "#ffffff"));
        assert_eq!(brand_colors(Some("red; x: y")).0, DEFAULT_COLOR);
        for color in ["#0f766e", "#fde047", "#22c55e", "#1d4ed8", "#777777", "#888888"] {
            let (color, on) = brand_colors(Some(color));
            let ratio = contrast(
                parse_hex_color(&color).unwrap(),
                parse_hex_color(on).unwrap(),
            );
            assert!(ratio >= 4.5, "{color} on {on}: {ratio}");
        }
    }
}
