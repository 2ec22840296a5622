//! Text normalisation and language detection.
//!
//! One function, [`normalize`], is applied to rule patterns when a pack is loaded and to
//! every visitor message, so both sides always meet in the same form. The output is a
//! sequence of words separated by single ASCII spaces, with no leading or trailing space;
//! the matcher relies on that to check word boundaries with one byte comparison.

use unicode_normalization::{UnicodeNormalization, is_nfkc};

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
    // round, so this costs one quick check; the bound only guards against surprises.
    for _ in 0..4 {
        if is_nfkc(&mapped) {
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
    for original in text.nfkc() {
        for lower in original.to_lowercase() {
            push_mapped(&mut mapped, lower);
        }
    }
    mapped
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
        other if other.is_alphanumeric() => other,
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
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut idx = 0;
    while idx < chars.len() {
        let ch = chars[idx];
        let mut run_end = idx + 1;
        while run_end < chars.len() && chars[run_end] == ch {
            run_end += 1;
        }
        let run_len = run_end - idx;
        if run_len >= 3 && ch.is_alphabetic() {
            out.push(ch);
        } else {
            for _ in 0..run_len {
                out.push(ch);
            }
        }
        idx = run_end;
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

/// Words (already normalised) that are frequent in Persian and rare in Arabic.
const PERSIAN_WORDS: &[&str] = &[
    "است",
    "را",
    "رو",
    "كه",
    "چه",
    "چي",
    "هست",
    "نيست",
    "دارم",
    "داريد",
    "داره",
    "دارين",
    "ميخوام",
    "ميشه",
    "كنم",
    "كنيد",
    "كنين",
    "براي",
    "با",
    "از",
    "تا",
    "هم",
    "يه",
    "شما",
    "خيلي",
    "ممنون",
    "مرسي",
    "چطور",
    "چطوري",
    "كجا",
    "كجاست",
    "كي",
    "چند",
    "چقدر",
    "نه",
    "اره",
    "بله",
    "الان",
    "ولي",
    "بايد",
    "نمي",
    "شده",
    "شد",
    "كرد",
    "كردم",
    "بدم",
    "بگيد",
    "ميكنه",
    "سفارشم",
    "بخير",
];

/// Words (already normalised) that are frequent in Arabic and rare in Persian.
const ARABIC_WORDS: &[&str] = &[
    "في",
    "علي",
    "الي",
    "هل",
    "هذا",
    "هذه",
    "لا",
    "كيف",
    "متي",
    "ماذا",
    "لماذا",
    "لم",
    "لن",
    "عن",
    "مع",
    "التي",
    "الذي",
    "ذلك",
    "انا",
    "نحن",
    "انتم",
    "لقد",
    "قد",
    "كان",
    "يمكن",
    "يمكنني",
    "اريد",
    "هو",
    "هي",
    "او",
    "ايضا",
    "شكرا",
    "وين",
    "فين",
    "شلون",
    "ايش",
    "ابغي",
    "عايز",
    "بدي",
    "امتي",
    "ليش",
    "شو",
    "مش",
    "ده",
    "لو",
    "اذا",
    "ما",
    "كم",
    "لي",
    "لكم",
    "منذ",
    "حتي",
    "الان",
];

/// Detects the language of `text` from its letters.
///
/// Latin letters mean English; Arabic-script text is Persian when Persian-only letters
/// (پ چ ژ گ ک ی) and frequent Persian words outweigh Arabic-only letters (ة ى أ إ ؤ,
/// diacritics), the article `ال` and frequent Arabic words; otherwise Arabic. Returns
/// `None` when the text has no letters (emoji, digits, punctuation only). It looks at the
/// raw text, because normalisation erases the ی/ي and ک/ك distinctions it relies on.
pub fn detect_language(text: &str) -> Option<Lang> {
    detect_scores(text).map(|(lang, _)| lang)
}

/// [`detect_language`] with a confidence margin: for Arabic-script text the difference
/// between the Persian and Arabic evidence (a distinctive letter counts 1, a frequent
/// word 2); for English, infinity.
pub(crate) fn detect_scores(text: &str) -> Option<(Lang, f32)> {
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
    let normalised = normalize(text);
    for word in normalised.split(' ') {
        if PERSIAN_WORDS.contains(&word) {
            fa_score += 2.0;
        }
        if ARABIC_WORDS.contains(&word) {
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
