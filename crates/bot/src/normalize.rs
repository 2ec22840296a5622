//! Text normalisation and language detection.
//!
//! One function, [`normalize`], is applied to rule patterns when a pack is loaded and to
//! every visitor message, so both sides always meet in the same form. The output is a
//! sequence of words separated by single ASCII spaces, with no leading or trailing space;
//! the matcher relies on that to check word boundaries with one byte comparison.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc, is_nfkc_quick};

use crate::Lang;

/// Normalises `text` for matching.
///
/// Steps, in order: Unicode NFKC (folds Arabic presentation forms and full-width Latin),
/// lowercase, removal of Arabic diacritics (U+064B..U+065F, U+0670, Quranic marks) and
/// tatweel, alef variants (أ إ آ ٱ) to ا, hamza seats ؤ to و and ئ to ي, a lone ء
/// dropped, ى and Persian ی to Arabic ي, Persian ک to Arabic ك, ة and ۀ to ه, Persian
/// and Arabic-Indic digits to ASCII, apostrophes dropped
/// (`what's` = `whats`), zero-width and bidi format characters dropped, every other
/// non-alphanumeric character (punctuation incl. ؟ ، ؛, symbols, emoji) to a space,
/// runs of three or more equal letters to one (`سلااام` → `سلام`, `heyyy` → `hey`;
/// a run of two stays so `good` keeps working), and whitespace collapsed.
///
/// The zero-width non-joiner is *removed* rather than turned into a space: Persian
/// writers type `می‌خوام` (ZWNJ), `میخوام` (nothing) or `می خوام` (space). Removing it
/// makes the first two identical; the third is handled by gluing the detached verbal
/// prefix `می`/`نمی` to the next word and the plural suffix `ها`/`های` to the previous
/// one, the two places where the space variant is common.
///
/// Normalising the output again changes nothing (`normalize(&normalize(x)) ==
/// normalize(x)`), so text that is already normalised, such as a pattern written in its
/// normalised spelling, meets itself.
pub fn normalize(text: &str) -> String {
    let mut mapped = map_chars(text);
    // Dropping a character can bring together two that NFKC composes (a Hangul leading
    // consonant and its vowel on either side of a zero-width space): map again until
    // NFKC has nothing left to do. Arabic, Persian and Latin text is NFKC after one
    // round, so this costs one scan; the bound only guards against surprises.
    for _ in 0..4 {
        if mapped.chars().all(is_plain) || is_nfkc(&mapped) {
            break;
        }
        mapped = map_chars(&mapped);
    }
    let (mut out, mut glued) = join_words(&collapse_runs(&mapped));
    // Gluing a detached affix can make a new run (`هه هاي` → `هههاي`), and collapsing
    // that run can leave a new detached affix (`مي يي x` → `مييي x` → `مي x`): repeat
    // until neither has anything to do. Each round that changes the text shortens it.
    while glued {
        let (again, glued_again) = join_words(&collapse_runs(&out));
        if again == out {
            break;
        }
        (out, glued) = (again, glued_again);
    }
    out
}

/// NFKC, lowercase and [`push_mapped`] over every character of `text`.
fn map_chars(text: &str) -> String {
    let mut mapped = String::with_capacity(text.len());
    // Most messages are NFKC already. Plain text (see `is_plain`) is known to be, and
    // needs no lowercasing table either; otherwise the quick check answers from a
    // table. The full NFKC iterator costs several times more than the rest of the
    // normalisation, and the tables more than the plain-character test.
    if text.chars().all(is_plain) {
        for original in text.chars() {
            push_mapped(&mut mapped, original.to_ascii_lowercase());
        }
    } else if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        for original in text.chars() {
            push_lowercase(&mut mapped, original);
        }
    } else {
        for original in text.nfkc() {
            push_lowercase(&mut mapped, original);
        }
    }
    mapped
}

fn push_lowercase(out: &mut String, ch: char) {
    if ch.is_ascii() {
        push_mapped(out, ch.to_ascii_lowercase());
    } else {
        for lower in ch.to_lowercase() {
            push_mapped(out, lower);
        }
    }
}

/// ASCII, and the Arabic-script letters, digits and punctuation of everyday Arabic and
/// Persian: each is NFKC on its own, has no case and starts no composition, so a text
/// made only of them is NFKC as it stands (a test checks every one against the Unicode
/// tables). Combining marks, and the letters with compatibility decompositions
/// (U+0675..U+0678), are not plain.
fn is_plain(ch: char) -> bool {
    ch.is_ascii()
        || is_plain_arabic_letter(ch)
        || matches!(ch, '\u{0660}'..='\u{0669}' | '\u{06F0}'..='\u{06F9}' | '،' | '؛' | '؟' | '\u{200C}')
}

/// The Arabic-script letters among [`is_plain`] characters.
fn is_plain_arabic_letter(ch: char) -> bool {
    matches!(ch, '\u{0621}'..='\u{063F}' | '\u{0641}'..='\u{064A}' | '\u{066E}'..='\u{066F}'
        | '\u{0671}'..='\u{0674}' | '\u{0679}'..='\u{06D3}' | '\u{06D5}')
}

/// Maps one lowercase character into `out`, dropping or replacing it as documented on
/// [`normalize`].
fn push_mapped(out: &mut String, ch: char) {
    let code = ch as u32;
    let replacement = match ch {
        // Arabic diacritics (tashkeel, incl. maddah and hamza marks), superscript alef,
        // small high marks, tatweel.
        '\u{064B}'..='\u{065F}'
        | '\u{0670}'
        | '\u{0610}'..='\u{061A}'
        | '\u{06D6}'..='\u{06ED}' => {
            return;
        }
        '\u{0640}' => return,
        // Zero-width and bidi format characters, soft hyphen, BOM, Arabic letter mark.
        '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
        | '\u{00AD}'
        | '\u{061C}'
        | '\u{180E}' => return,
        // Combining Latin diacritics left over after NFKC (e.g. from lowercasing İ).
        '\u{0300}'..='\u{036F}' => return,
        '\'' | '\u{2018}' | '\u{2019}' | '\u{02BC}' | '`' | '\u{00B4}' => return,
        // A lone hamza is often left out in chat (`شيء` / `شي`).
        'ء' => return,
        'أ' | 'إ' | 'آ' | 'ٱ' => 'ا',
        // Hamza seats: visitors write them with or without the hamza (`سؤال` / `سوال`).
        'ؤ' => 'و',
        'ئ' => 'ي',
        'ى' | 'ی' | 'ې' | 'ۍ' => 'ي',
        'ک' | 'ڪ' => 'ك',
        'ة' | 'ۀ' | 'ە' => 'ه',
        '\u{06F0}'..='\u{06F9}' => char::from(b'0' + (code - 0x06F0) as u8),
        '\u{0660}'..='\u{0669}' => char::from(b'0' + (code - 0x0660) as u8),
        // A plain letter is alphanumeric; the test is the cheaper one.
        other if is_plain_arabic_letter(other) || other.is_alphanumeric() => other,
        _ => ' ',
    };
    if replacement == ' ' {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    } else {
        out.push(replacement);
    }
}

/// Collapses runs of three or more identical letters to one letter. Digits are left
/// alone (`1000` is a number, not an emphasis).
fn collapse_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        let mut run_len = 1;
        while chars.next_if_eq(&ch).is_some() {
            run_len += 1;
        }
        if run_len >= 3 && ch.is_alphabetic() {
            out.push(ch);
        } else {
            for _ in 0..run_len {
                out.push(ch);
            }
        }
    }
    out
}

/// Glues detached Persian affixes (see [`normalize`]) and trims the final space. Also
/// tells whether it glued anything.
fn join_words(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut glue_next = false;
    let mut glued = false;
    for word in text.split(' ').filter(|word| !word.is_empty()) {
        let is_plural_suffix = matches!(word, "ها" | "هاي");
        if !out.is_empty() {
            if glue_next || is_plural_suffix {
                glued = true;
            } else {
                out.push(' ');
            }
        }
        out.push_str(word);
        glue_next = matches!(word, "مي" | "نمي");
    }
    (out, glued)
}

/// Script of a letter, for [`detect_language`].
fn is_arabic_script(ch: char) -> bool {
    matches!(ch, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{08A0}'..='\u{08FF}'
        | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
}

/// Words (already normalised) that are frequent in Persian and rare in Arabic, sorted by
/// bytes for a binary search (a test checks the order).
const PERSIAN_WORDS: &[&str] = &[
    "اره",
    "از",
    "است",
    "الان",
    "با",
    "بايد",
    "بخير",
    "بدم",
    "براي",
    "بله",
    "بگيد",
    "تا",
    "خيلي",
    "دارم",
    "داره",
    "داريد",
    "دارين",
    "را",
    "رو",
    "سفارشم",
    "شد",
    "شده",
    "شما",
    "كجا",
    "كجاست",
    "كرد",
    "كردم",
    "كنم",
    "كنيد",
    "كنين",
    "كه",
    "كي",
    "مرسي",
    "ممنون",
    "ميخوام",
    "ميشه",
    "ميكنه",
    "نمي",
    "نه",
    "نيست",
    "هست",
    "هم",
    "ولي",
    "يه",
    "چطور",
    "چطوري",
    "چقدر",
    "چند",
    "چه",
    "چي",
];

/// Words (already normalised) that are frequent in Arabic and rare in Persian, sorted by
/// bytes.
const ARABIC_WORDS: &[&str] = &[
    "ابغي",
    "اذا",
    "اريد",
    "الان",
    "التي",
    "الذي",
    "الي",
    "امتي",
    "انا",
    "انتم",
    "او",
    "ايش",
    "ايضا",
    "بدي",
    "حتي",
    "ده",
    "ذلك",
    "شكرا",
    "شلون",
    "شو",
    "عايز",
    "علي",
    "عن",
    "في",
    "فين",
    "قد",
    "كان",
    "كم",
    "كيف",
    "لا",
    "لقد",
    "لكم",
    "لم",
    "لماذا",
    "لن",
    "لو",
    "لي",
    "ليش",
    "ما",
    "ماذا",
    "متي",
    "مش",
    "مع",
    "منذ",
    "نحن",
    "هذا",
    "هذه",
    "هل",
    "هو",
    "هي",
    "وين",
    "يمكن",
    "يمكنني",
];

/// Detects the language of `text` from its letters.
///
/// Latin letters mean English; Arabic-script text is Persian when Persian-only letters
/// (پ چ ژ گ ک ی) and frequent Persian words outweigh Arabic-only letters (ة ى أ إ ؤ,
/// diacritics), the article `ال` and frequent Arabic words; otherwise Arabic. Returns
/// `None` when the text has no letters (emoji, digits, punctuation only). It looks at the
/// raw text, because normalisation erases the ی/ي and ک/ك distinctions it relies on.
pub fn detect_language(text: &str) -> Option<Lang> {
    detect_scores(text, &normalize(text)).map(|(lang, _)| lang)
}

/// [`detect_language`] with a confidence margin: for Arabic-script text the difference
/// between the Persian and Arabic evidence (a distinctive letter counts 1, a frequent
/// word 2); for English, infinity. `normalised` is `normalize(text)`, which the caller
/// has anyway.
pub(crate) fn detect_scores(text: &str, normalised: &str) -> Option<(Lang, f32)> {
    let mut n_latin = 0usize;
    let mut n_arabic = 0usize;
    let mut fa_score = 0.0f32;
    let mut ar_score = 0.0f32;
    for ch in text.chars().take(crate::MAX_INPUT_CHARS) {
        if is_arabic_script(ch) {
            if ch.is_alphabetic() {
                n_arabic += 1;
            }
            match ch {
                'پ' | 'چ' | 'ژ' | 'گ' | 'ک' | 'ی' | 'ۀ' => fa_score += 1.0,
                'ة' | 'ى' | 'أ' | 'إ' | 'ؤ' => ar_score += 1.0,
                'ي' | 'ك' => ar_score += 0.25,
                '\u{064B}'..='\u{0652}' => ar_score += 0.5,
                _ => {}
            }
        } else if ch.is_alphabetic() {
            n_latin += 1;
        }
    }
    if n_latin == 0 && n_arabic == 0 {
        return None;
    }
    if n_latin > n_arabic {
        return Some((Lang::En, f32::INFINITY));
    }
    for word in normalised.split(' ') {
        if PERSIAN_WORDS.binary_search(&word).is_ok() {
            fa_score += 2.0;
        }
        if ARABIC_WORDS.binary_search(&word).is_ok() {
            ar_score += 2.0;
        }
        if word.starts_with("ال") && word.chars().count() >= 4 && word != "الان" {
            ar_score += 1.0;
        }
    }
    let lang = if fa_score > ar_score {
        Lang::Fa
    } else {
        Lang::Ar
    };
    Some((lang, (fa_score - ar_score).abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_characters_are_nfkc_caseless_and_start_no_composition() {
        let plain: Vec<char> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|ch| is_plain(*ch))
            .collect();
        for &ch in &plain {
            let code = ch as u32;
            if ch.is_ascii() {
                continue;
            }
            assert_eq!(
                is_nfkc_quick(std::iter::once(ch)),
                IsNormalized::Yes,
                "U+{code:04X}"
            );
            assert!(ch.to_lowercase().eq(std::iter::once(ch)), "U+{code:04X}");
            if is_plain_arabic_letter(ch) {
                assert!(ch.is_alphabetic(), "U+{code:04X}");
            }
            // No two plain characters compose, in either order.
            for &next in &plain {
                let pair: String = [ch, next].into_iter().collect();
                assert!(
                    pair.nfkc().eq(pair.chars()),
                    "U+{code:04X} U+{:04X}",
                    next as u32
                );
            }
        }
    }

    #[test]
    fn word_lists_are_sorted_and_normalised() {
        for list in [PERSIAN_WORDS, ARABIC_WORDS] {
            assert!(list.windows(2).all(|pair| pair[0] < pair[1]), "{list:?}");
            for word in list {
                assert_eq!(normalize(word), *word);
            }
        }
    }
}
