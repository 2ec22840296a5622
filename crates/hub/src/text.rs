//! Text hygiene for everything people type: messages, notes, names, comments.
//!
//! - **Bidi controls that span text are stripped**: the embeddings and overrides
//!   (U+202A–U+202E) and the isolates (U+2066–U+2069). One U+202E in a name reverses
//!   what follows it on the agent's screen ("Trojan source"). The marks that do not
//!   span (LRM U+200E, RLM U+200F, ALM U+061C) stay: Arabic and Persian text uses them.
//! - **Zero-width characters count as whitespace**: a text made only of them (and
//!   spaces) is empty, and they are trimmed from the ends. Inside text they stay: the
//!   zero-width non-joiner (U+200C) is part of Persian spelling (`می‌خواهم`) and the
//!   joiner (U+200D) of emoji.
//! - **U+0000 becomes U+FFFD** (the replacement character): a NUL means nothing in a
//!   chat, and PostgreSQL's `TEXT` cannot hold one, so both backends store (and relay)
//!   the same text.
//! - **One-line fields** (names, shortcuts, departments) also lose control
//!   characters, line breaks included.
//!
//! Pure functions; the callers apply their own length limits afterwards.

/// Bidi controls that open an embedding, override or isolate.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: zero-width space, non-joiner, joiner, word joiner,
/// the byte-order mark, the Mongolian vowel separator, and the bidi marks.
pub fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}' | '\u{061C}'
    )
}

/// Whitespace in the sense of this module: Unicode whitespace or zero-width.
pub fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || is_zero_width(c) || is_bidi_control(c)
}

/// Whether `text` shows nothing at all.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(is_blank_char)
}

/// A message or note: spanning bidi controls stripped, NUL replaced by U+FFFD, invisible
/// ends trimmed (line breaks inside are kept). Empty when nothing visible is left.
pub fn clean_text(text: &str) -> String {
    let text = stripped(text);
    if !text.contains('\0') {
        return text;
    }
    text.replace('\0', "\u{FFFD}")
}

/// Spanning bidi controls stripped and invisible ends trimmed; empty when nothing
/// visible is left.
fn stripped(text: &str) -> String {
    if is_blank(text) {
        return String::new();
    }
    let stripped: String = text.chars().filter(|c| !is_bidi_control(*c)).collect();
    stripped.trim_matches(is_blank_char).to_owned()
}

/// A one-line field: like [`clean_text`], and control characters (line breaks and NUL
/// included) become spaces.
pub fn clean_line(text: &str) -> String {
    let text = stripped(text);
    if !text.chars().any(char::is_control) {
        return text;
    }
    let spaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.trim_matches(is_blank_char).to_owned()
}

/// An optional one-line field cut to `max` characters; `None` when nothing is left.
pub fn clean_field(value: Option<String>, max: usize) -> Option<String> {
    let value = clean_line(&value?);
    let cut: String = value.chars().take(max).collect();
    let cut = cut.trim_end_matches(is_blank_char).to_owned();
    (!cut.is_empty()).then_some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_isolates_are_stripped() {
        assert_eq!(clean_text("abc\u{202E}fdp.exe"), "abcfdp.exe");
        assert_eq!(clean_line("\u{2067}Ali\u{2069}"), "Ali");
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2066}', '\u{2068}',
        ] {
            assert_eq!(clean_text(&format!("a{c}b")), "ab");
        }
    }

    #[test]
    fn nul_becomes_the_replacement_character() {
        assert_eq!(clean_text("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(clean_text("\0"), "\u{FFFD}");
        // One-line fields make every control character a space, NUL included.
        assert_eq!(clean_line("a\0b"), "a b");
    }

    #[test]
    fn zero_width_only_is_empty() {
        assert_eq!(clean_text("\u{200B}\u{200C}\u{200D}\u{FEFF} \u{2060}"), "");
        assert!(is_blank("\u{200B}\n\u{200B}"));
        assert_eq!(clean_field(Some("\u{200B}\u{200B}".into()), 10), None);
        assert!(!is_blank("a\u{200B}"));
    }

    #[test]
    fn persian_non_joiner_and_emoji_joiner_stay_inside() {
        // می‌خواهم: "I want", with a zero-width non-joiner inside the word.
        let persian = "می\u{200C}خواهم";
        assert_eq!(clean_text(persian), persian);
        let family = "👩\u{200D}👩\u{200D}👧";
        assert_eq!(clean_text(family), family);
        // Right-to-left marks stay inside Arabic text.
        let arabic = "مرحبا\u{200F} 123";
        assert_eq!(clean_text(arabic), arabic);
    }

    #[test]
    fn ends_are_trimmed_and_lines_kept_in_messages() {
        assert_eq!(clean_text("\u{200B} hello\nworld \u{FEFF}"), "hello\nworld");
        assert_eq!(clean_line(" sales\nteam\t"), "sales team");
    }

    #[test]
    fn fields_are_cut_by_characters() {
        assert_eq!(clean_field(Some("سلام دنیا".into()), 4), Some("سلام".into()));
        assert_eq!(clean_field(None, 4), None);
    }
}
