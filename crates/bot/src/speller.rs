//! Typo tolerance: visitor words that the pack does not know are corrected towards the
//! words of the pack's patterns before matching.
//!
//! The vocabulary is the pack's own, collected when the pack is compiled:
//! - *targets*: the words of `match`, `hint`, `all` and `not` patterns (and of the
//!   built-in signal lexicons), and the known words a stem pattern covers (`warranty`
//!   for `warrant*`), the only words a correction may produce;
//! - *known words*: the targets, plus every word of the examples, counter-examples,
//!   labels and answers, plus a dictionary of common English (`words_en.txt`, shared by
//!   all packs). A known word is never corrected: `shoes` stays `shoes` even though
//!   `shops` is one letter away, and `older` is not `order`.
//!
//! English (Latin script): a word of four or more letters within Damerau-Levenshtein
//! (optimal string alignment) distance 1 of a target, or 2 when both have eight or more
//! letters, becomes that target (`polcy` → `policy`, `comming` → `coming`, `shiping` →
//! `shipping`). Candidates come from a symmetric-delete index (every target with one
//! or two letters deleted), so a lookup costs a few dozen hash probes, not a scan of the
//! vocabulary. The first letter must stay (or swap with the second): typists rarely
//! miss it, and a word that differs there is more likely another word (`chips` is not
//! `ships`). Ties go to the target used by more patterns, then to the alphabetically
//! first, so corrections are deterministic. Frequent chat spellings are expanded first
//! (`u` → `you`, `pls` → `please`, `wen` → `when`). A word of three letters that is not
//! a word gets its missing letter back when exactly one target of four letters fits
//! (`tme` → `time`).
//!
//! Dialect words (`crate::dialect`) are folded before any of this, in Arabic and
//! Persian text, known or not.
//!
//! Arabic script: the normaliser already folds the orthographic variants (alef, hamza
//! seats, yeh, kaf, teh marbuta). What remains are letters a visitor *types* for
//! others, in one direction only:
//! - Persian typed on an Arabic keyboard, which has no پ چ ژ گ: ب for پ, ج for چ, ز for
//!   ژ, ك for گ (`كارانتي` → `گارانتي`). Only in Persian text with no Persian-only letter
//!   (a Persian keyboard misses none), and never in Arabic, where `بول` is a word.
//! - Arabic written as spoken: ظ and ض for each other, ت for ث (Egyptian and Levantine
//!   `تاني`), ز for ذ. Only in Arabic text.
//!
//! An unknown word whose letters, after removing the clitic prefixes and suffixes the
//! matcher allows, differ from exactly one target only by such pairs becomes that
//! target with the same affixes (`الظمان` → `الضمان`).
//!
//! Three slips of Arabic-script typing are undone as well, towards pattern words only:
//! in Persian a letter typed twice (`پسوورد` → `پسورد`, also behind affixes; never `ل`,
//! and never in Arabic, where `اللي` is not `الي`), in Arabic a final `ا`
//! typed for `ى` (`متا` → `متى`), and a preposition typed apart from its word: in
//! Arabic a lone `ب` is attached to the next word (`التوصيل ب كم` → `التوصيل بكم`), in
//! Persian chat a lone `ب` is `به`. Homophones such as س/ص or ق/غ
//! are not corrected, nor is a letter replaced by another: Arabic roots are short and
//! dense, so a one-letter neighbour of a pack word is usually another real word
//! (`النسبه` is not `النصبه`, `الرغم` is not `الرقم`; both were seen when this was
//! measured against a frequency list of Arabic and Persian words).
//!
//! Since the fourth round of issue 16, Arabic text also gets back one letter left out
//! of a pattern word, or loses one typed too many (`كلمه المرو` →
//! `كلمه المرور`, `متاخير` → `متاخر`), under stricter conditions than English: the word
//! and the pattern word both have five letters or more (a root and two more letters),
//! the matcher's affixes do not already explain the word (`والطلب`, `طلبيتي`), and
//! exactly one pattern word fits (`التويل` could be `التوصيل` or `التحويل`: none).
//! Candidates come from a delete index like the English one (every Arabic pattern word
//! of five letters or more with one letter deleted), so a lookup is one probe for a
//! letter left out and one per letter for a letter too many. Not in Persian, whose
//! colloquial forms are written words one letter from the formal ones.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use crate::Lang;
use crate::dialect::{Dialect, Script};
use crate::matcher::{ARABIC_PREFIXES, ARABIC_SUFFIXES};

/// Targets have at least this many letters; so have corrected words, except for
/// [`SHORT_LATIN_LETTERS`].
const MIN_LATIN_LETTERS: usize = 4;
/// A word this short is corrected only by one missing letter, towards a unique target
/// of [`MIN_LATIN_LETTERS`] (`tme` → `time`).
const SHORT_LATIN_LETTERS: usize = 3;
/// Both words at least this long: distance 2 is allowed.
const TWO_EDITS_LETTERS: usize = 8;
/// Longer words are left alone (they are not typos of pack words), which also bounds
/// the work per word.
const MAX_WORD_LETTERS: usize = 20;
/// Arabic-script stems shorter than this are not corrected.
const MIN_ARABIC_STEM_LETTERS: usize = 3;
/// An Arabic word and its target both have at least this many letters when a letter
/// left out or typed twice over is undone (`التوصل` → `التوصيل`, `متاخير` → `متاخر`):
/// shorter Arabic words are too often other words one letter away.
const ARABIC_EDIT_LETTERS: usize = 5;
/// At most this many words of a message are looked up, which bounds the work per
/// message (a 4,096-character message of unknown words).
const MAX_CORRECTIONS: usize = 32;

/// Clitic prefixes a dialect word may carry (`بشحال`, `الكوموند`, `وشوكت`).
const DIALECT_PREFIXES: &[&str] = &[
    "و", "ف", "ب", "ل", "ك", "ال", "وال", "فال", "بال", "لل", "ولل", "وب", "ول",
];
/// Pronoun suffixes a dialect word may carry (`ديالي`, `بتاعتي`, `اكونتي`).
const DIALECT_SUFFIXES: &[&str] = &[
    "ي", "ك", "ه", "ها", "نا", "كم", "هم", "و", "ش", "تي", "تك", "ته", "تها", "تنا", "تكم",
];

/// Frequent chat spellings of English, expanded before matching, sorted by the short
/// form for a binary search (a test checks the order).
const CHAT_EN: &[(&str, &str)] = &[
    ("2day", "today"),
    ("2moro", "tomorrow"),
    ("abt", "about"),
    ("acc", "account"),
    ("acct", "account"),
    ("addr", "address"),
    ("addy", "address"),
    ("amt", "amount"),
    ("asap", "as soon as possible"),
    ("b4", "before"),
    ("bc", "because"),
    ("bout", "about"),
    ("cncl", "cancel"),
    ("coz", "because"),
    ("cuz", "because"),
    ("deliv", "delivery"),
    ("dunno", "dont know"),
    ("gonna", "going to"),
    ("gotta", "got to"),
    ("helo", "hello"),
    ("heyy", "hey"),
    ("hii", "hi"),
    ("hr", "hour"),
    ("hrs", "hours"),
    ("hw", "how"),
    ("info", "information"),
    ("msg", "message"),
    ("n", "and"),
    ("num", "number"),
    ("pkg", "package"),
    ("pkge", "package"),
    ("pleas", "please"),
    ("pls", "please"),
    ("plse", "please"),
    ("plz", "please"),
    ("ppl", "people"),
    ("pw", "password"),
    ("pwd", "password"),
    ("qty", "quantity"),
    ("r", "are"),
    ("rfnd", "refund"),
    ("rn", "right now"),
    ("sb", "somebody"),
    ("smth", "something"),
    ("sth", "something"),
    ("thnx", "thanks"),
    ("tks", "thanks"),
    ("tmr", "tomorrow"),
    ("tmrow", "tomorrow"),
    ("tmrw", "tomorrow"),
    ("tnx", "thanks"),
    ("u", "you"),
    ("ur", "your"),
    ("urs", "yours"),
    ("wanna", "want to"),
    ("wat", "what"),
    ("wen", "when"),
    ("wer", "where"),
    ("whens", "when is"),
    ("whr", "where"),
    ("wht", "what"),
    ("wut", "what"),
    ("y", "why"),
    ("ya", "you"),
    ("yu", "you"),
];

/// English words of four or more letters that a visitor writes and a dictionary lacks:
/// contractions without their apostrophe (the normaliser drops it), British spellings,
/// and words of the web. Known, like the dictionary.
#[rustfmt::skip]
const EXTRA_EN: &[&str] = &[
    "aint", "arent", "couldnt", "didnt", "doesnt", "dont", "hadnt", "hasnt", "havent", "isnt",
    "mustnt", "neednt", "shouldnt", "wasnt", "werent", "wont", "wouldnt", "youre", "theyre",
    "thats", "theres", "heres", "youve", "weve", "theyve", "youll", "theyll", "shes", "yeah",
    "nope", "okay", "colour", "colours", "favourite", "centre", "cancelled", "cancelling",
    "travelled", "jewellery", "cheque", "email", "emails", "online", "website", "websites",
    "login", "logins", "apps", "smartphone", "laptop", "laptops", "iphone", "android",
    "google", "whatsapp", "instagram", "facebook", "amazon", "wifi", "english", "arabic",
    "persian", "france", "cafe", "cafes", "pricey", "stats", "docs", "posh", "bloke", "nerd",
    "nerds", "fest", "carbs", "centres", "centred", "gifs", "repost", "shit", "shits",
    "shitty", "piss", "fuck", "fucking", "damn", "crap", "crappy",
    // Three letters: abbreviations and chat words.
    "usd", "aed", "sar", "kwd", "egp", "eur", "gbp", "irr", "dhl", "ups", "sms", "idk", "omg",
    "lol", "btw", "tbh", "smh", "ikr", "bro", "nah", "yep", "atm", "pdf", "app", "pcs",
    "otp", "cod", "faq", "xxl", "yay", "wow", "ooh", "hmm", "huh", "meh", "aha", "fyi", "imo",
];

/// The words of `words_en.txt` (a dictionary of common English, see its header) and
/// [`EXTRA_EN`], shared by every pack: a real word is never "corrected" into a pack
/// word (`states` is not `status`, `older` is not `order`).
static ENGLISH_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("words_en.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .chain(EXTRA_EN.iter().copied())
        .collect()
});

/// The pack's vocabulary, indexed for corrections.
#[derive(Debug, Default)]
pub(crate) struct Speller {
    known: HashSet<Box<str>>,
    targets: Vec<Target>,
    /// Latin: every target and its one- and two-letter deletions → target indices.
    deletes: HashMap<Box<str>, Vec<u32>>,
    /// Arabic script: [`typing_key`] → the targets with that key.
    typing_keys: HashMap<Box<str>, Vec<u32>>,
    /// Arabic script: every target of [`ARABIC_EDIT_LETTERS`] letters or more with one
    /// letter deleted → target indices.
    arabic_deletes: HashMap<Box<str>, Vec<u32>>,
    /// Dialect words the patterns do not use → the word they use (`crate::dialect`).
    dialect: Dialect,
}

#[derive(Debug)]
struct Target {
    word: Box<str>,
    n_chars: usize,
    /// How many patterns use the word (tie-breaker).
    uses: u32,
}

/// Collects the vocabulary, then [`VocabularyBuilder::build`]s the [`Speller`].
#[derive(Debug, Default)]
pub(crate) struct VocabularyBuilder {
    known: HashSet<Box<str>>,
    targets: HashMap<Box<str>, u32>,
    /// The last words of stem patterns (`warrant*`).
    stems: HashSet<Box<str>>,
}

impl VocabularyBuilder {
    /// Adds the words of a normalised pattern as targets.
    pub(crate) fn add_pattern(&mut self, normalised: &str) {
        for word in normalised.split(' ').filter(|word| !word.is_empty()) {
            *self.targets.entry(word.into()).or_insert(0) += 1;
            self.known.insert(word.into());
        }
    }

    /// Adds a stem pattern (`warrant*`, normalised, without the `*`): its words are
    /// targets, and so are the known words its last word begins (`warranty` from the
    /// examples and answers), which the pattern matches.
    pub(crate) fn add_stem(&mut self, normalised: &str) {
        self.add_pattern(normalised);
        if let Some(last) = normalised.rsplit(' ').next() {
            self.stems.insert(last.into());
        }
    }

    /// Adds the words of a normalised text (example, label, answer) as known words.
    pub(crate) fn add_known(&mut self, normalised: &str) {
        for word in normalised.split(' ').filter(|word| !word.is_empty()) {
            if !self.known.contains(word) {
                self.known.insert(word.into());
            }
        }
    }

    pub(crate) fn build(self) -> Speller {
        // Read the dictionary now, once per process, so that no triage pays for it.
        LazyLock::force(&ENGLISH_WORDS);
        let pattern_words: HashSet<Box<str>> = self.targets.keys().cloned().collect();
        let mut targets = self.targets;
        for stem in &self.stems {
            if stem.len() < MIN_LATIN_LETTERS || !is_latin_word(stem) {
                continue;
            }
            for word in &self.known {
                if word.len() > stem.len() && word.starts_with(&**stem) {
                    targets.entry(word.clone()).or_insert(1);
                }
            }
        }
        let mut words: Vec<(Box<str>, u32)> = targets.into_iter().collect();
        // Deterministic indices whatever the hash order.
        words.sort();
        let mut speller = Speller {
            known: self.known,
            dialect: Dialect::new(&pattern_words),
            ..Speller::default()
        };
        for (word, uses) in words {
            let n_chars = word.chars().count();
            let idx = speller.targets.len() as u32;
            if is_latin_word(&word) {
                if !(MIN_LATIN_LETTERS..=MAX_WORD_LETTERS).contains(&n_chars) {
                    continue;
                }
                let depth = if n_chars >= TWO_EDITS_LETTERS { 2 } else { 1 };
                let deletes = &mut speller.deletes;
                for_each_deletion(&word, depth, |variant| {
                    let entry = deletes.entry(variant.into()).or_default();
                    if !entry.contains(&idx) {
                        entry.push(idx);
                    }
                });
            } else if is_arabic_word(&word) {
                if !(MIN_ARABIC_STEM_LETTERS..=MAX_WORD_LETTERS).contains(&n_chars) {
                    continue;
                }
                let key: Box<str> = typing_key(&word).into();
                speller.typing_keys.entry(key).or_default().push(idx);
                if n_chars >= ARABIC_EDIT_LETTERS {
                    let deletes = &mut speller.arabic_deletes;
                    for_each_char_deletion(&word, |variant| {
                        let entry = deletes.entry(variant.into()).or_default();
                        if !entry.contains(&idx) {
                            entry.push(idx);
                        }
                    });
                }
            } else {
                continue;
            }
            speller.targets.push(Target {
                word,
                n_chars,
                uses,
            });
        }
        speller
    }
}

impl Speller {
    /// The message with unknown words corrected, or `None` when nothing changed.
    /// `normalised` is the output of [`crate::normalize`]; `typing` tells which
    /// Arabic-script letter pairs apply.
    pub(crate) fn correct(&self, normalised: &str, typing: Typing) -> Option<String> {
        if self.targets.is_empty() && self.dialect.is_empty() {
            return None;
        }
        let script = match typing {
            Typing::Arabic => Some(Script::Arabic),
            Typing::Persian | Typing::PersianOnArabicKeyboard => Some(Script::Persian),
            Typing::Other => None,
        };
        let attached = script.and_then(|script| attach_detached_letters(normalised, script));
        let corrected = match attached {
            Some(text) => Some(self.correct_words(&text, typing, script).unwrap_or(text)),
            None => self.correct_words(normalised, typing, script),
        }?;
        // A correction is normalised text too: a word that changed or left can bring
        // together what normalisation joins (a Persian plural `های` after a word).
        let corrected = crate::normalize(&corrected);
        (corrected != normalised).then_some(corrected)
    }

    /// [`Speller::correct`] word by word.
    fn correct_words(
        &self,
        normalised: &str,
        typing: Typing,
        script: Option<Script>,
    ) -> Option<String> {
        let mut out: Option<String> = None;
        let mut n_lookups = 0usize;
        let mut copied_until = 0usize;
        let mut offset = 0usize;
        for word in normalised.split(' ') {
            let start = offset;
            offset += word.len() + 1;
            if word.is_empty() {
                continue;
            }
            // Chat spellings first: they are what the patterns' spelling stands for, even
            // when a pattern happens to contain one.
            let chat = CHAT_EN
                .binary_search_by(|(short, _)| (*short).cmp(word))
                .ok()
                .map(|idx| CHAT_EN[idx]);
            // Dialect words next, known or not: an example that uses one must not stop
            // it from meeting the patterns.
            let dialect = match (chat, script) {
                (None, Some(script)) => self.dialect_word(word, script),
                _ => None,
            };
            if chat.is_none() && dialect.is_none() && self.known.contains(word) {
                continue;
            }
            if n_lookups >= MAX_CORRECTIONS {
                break;
            }
            n_lookups += 1;
            let replacement = if let Some((_, expansion)) = chat {
                Some((*expansion).to_string())
            } else if dialect.is_some() {
                dialect
            } else if ENGLISH_WORDS.contains(word) {
                None
            } else if is_latin_word(word) {
                self.correct_latin(word)
            } else if is_arabic_word(word) {
                self.correct_arabic(word, typing)
                    .or_else(|| self.correct_arabic_slip(word, typing))
                    .or_else(|| self.correct_arabic_letter(word, typing))
            } else {
                None
            };
            if let Some(replacement) = replacement {
                let buffer = out.get_or_insert_with(|| String::with_capacity(normalised.len() + 8));
                buffer.push_str(&normalised[copied_until..start]);
                buffer.push_str(&replacement);
                copied_until = start + word.len();
            }
        }
        let mut buffer = out?;
        buffer.push_str(&normalised[copied_until..]);
        Some(buffer)
    }

    /// The pack's word for a dialect word (see `crate::dialect`), keeping the Arabic
    /// clitics around it.
    fn dialect_word(&self, word: &str, script: Script) -> Option<String> {
        if self.dialect.is_empty() || !is_arabic_word(word) {
            return None;
        }
        if let Some(canonical) = self.dialect.get(word, script) {
            return Some(canonical.to_string());
        }
        // A word the pack knows is not split into clitics and a dialect word (`قديش`
        // is not `قدي` + `ش`).
        if script != Script::Arabic || self.known.contains(word) {
            return None;
        }
        for prefix in std::iter::once("").chain(DIALECT_PREFIXES.iter().copied()) {
            let Some(rest) = word.strip_prefix(prefix) else {
                continue;
            };
            for suffix in std::iter::once("").chain(DIALECT_SUFFIXES.iter().copied()) {
                if prefix.is_empty() && suffix.is_empty() {
                    continue;
                }
                let Some(stem) = rest.strip_suffix(suffix) else {
                    continue;
                };
                if stem.chars().count() < MIN_ARABIC_STEM_LETTERS {
                    continue;
                }
                if let Some(canonical) = self.dialect.get(stem, script) {
                    return Some(format!("{prefix}{canonical}{suffix}"));
                }
            }
        }
        None
    }

    fn correct_latin(&self, word: &str) -> Option<String> {
        let n_chars = word.len();
        if n_chars == SHORT_LATIN_LETTERS {
            return self.restore_letter(word).map(str::to_string);
        }
        if !(MIN_LATIN_LETTERS..=MAX_WORD_LETTERS).contains(&n_chars) {
            return None;
        }
        if let Some(target) = self.nearest_latin(word) {
            return Some(target.to_string());
        }
        // A plural of a typo (`refnds`): correct the singular, keep the `s`.
        let singular = word.strip_suffix('s')?;
        if singular.len() < MIN_LATIN_LETTERS
            || self.known.contains(singular)
            || ENGLISH_WORDS.contains(singular)
        {
            return None;
        }
        self.nearest_latin(singular)
            .map(|target| format!("{target}s"))
    }

    /// The only target of [`MIN_LATIN_LETTERS`] letters that `word` (three letters, not
    /// a word of the dictionary) is with one letter left out, keeping the first letter:
    /// `tme` → `time`. Two candidates (`shp`: `ship`, `shop`) make it a guess: none.
    fn restore_letter(&self, word: &str) -> Option<&str> {
        let indices = self.deletes.get(word)?;
        let first = word.as_bytes()[0];
        let mut found = indices
            .iter()
            .map(|idx| &self.targets[*idx as usize])
            .filter(|target| {
                target.n_chars == MIN_LATIN_LETTERS && target.word.as_bytes()[0] == first
            });
        match (found.next(), found.next()) {
            (Some(target), None) => Some(&target.word),
            _ => None,
        }
    }

    fn nearest_latin(&self, word: &str) -> Option<&str> {
        let n_chars = word.len();
        let depth = if n_chars >= TWO_EDITS_LETTERS { 2 } else { 1 };
        let first = word.as_bytes()[0];
        // Smallest key wins: distance, then more uses, then the word itself.
        let mut best: Option<(usize, std::cmp::Reverse<u32>, &str)> = None;
        let mut seen: Vec<u32> = Vec::new();
        for_each_deletion(word, depth, |variant| {
            let Some(indices) = self.deletes.get(variant) else {
                return;
            };
            for &idx in indices {
                if seen.contains(&idx) {
                    continue;
                }
                seen.push(idx);
                let target = &self.targets[idx as usize];
                let allowed = if n_chars >= TWO_EDITS_LETTERS && target.n_chars >= TWO_EDITS_LETTERS
                {
                    2
                } else {
                    1
                };
                let target_bytes = target.word.as_bytes();
                // Typists rarely get the first letter wrong; a word that differs there
                // (`chips`, `ships`) is more likely another word than a typo.
                let same_start = target_bytes[0] == first
                    || (word.len() >= 2
                        && target_bytes.len() >= 2
                        && target_bytes[0] == word.as_bytes()[1]
                        && target_bytes[1] == first);
                if !same_start {
                    continue;
                }
                let distance = osa_distance(word.as_bytes(), target_bytes);
                if distance == 0 || distance > allowed {
                    continue;
                }
                let key = (distance, std::cmp::Reverse(target.uses), &*target.word);
                if best.as_ref().is_none_or(|current| key < *current) {
                    best = Some(key);
                }
            }
        });
        best.map(|(_, _, word)| word)
    }

    fn correct_arabic(&self, word: &str, typing: Typing) -> Option<String> {
        let pairs: &[(char, char)] = match typing {
            Typing::Arabic => ARABIC_TYPED_FOR,
            Typing::PersianOnArabicKeyboard => PERSIAN_TYPED_FOR,
            Typing::Persian | Typing::Other => return None,
        };
        // Longest stem first: the fewest affixes explain the word best.
        let mut splits: Vec<(&str, &str, &str)> = Vec::new();
        for prefix in std::iter::once("").chain(ARABIC_PREFIXES.iter().copied()) {
            let Some(rest) = word.strip_prefix(prefix) else {
                continue;
            };
            for suffix in std::iter::once("").chain(ARABIC_SUFFIXES.iter().copied()) {
                let Some(stem) = rest.strip_suffix(suffix) else {
                    continue;
                };
                if stem.chars().count() >= MIN_ARABIC_STEM_LETTERS {
                    splits.push((prefix, stem, suffix));
                }
            }
        }
        splits.sort_by_key(|(prefix, _, suffix)| prefix.len() + suffix.len());
        for (prefix, stem, suffix) in splits {
            if self.known.contains(stem) {
                // The matcher's affixes already explain the word.
                return None;
            }
            let Some(indices) = self.typing_keys.get(typing_key(stem).as_str()) else {
                continue;
            };
            let mut meant = indices
                .iter()
                .map(|idx| &self.targets[*idx as usize].word)
                .filter(|target| {
                    stem.chars()
                        .zip(target.chars())
                        .all(|(typed, wanted)| typed == wanted || pairs.contains(&(typed, wanted)))
                });
            // Exactly one target: two would make the correction a guess.
            if let (Some(target), None) = (meant.next(), meant.next()) {
                return Some(format!("{prefix}{target}{suffix}"));
            }
        }
        None
    }
}

impl Speller {
    /// Slips of Arabic-script typing that are not letter pairs: in Persian a letter typed
    /// twice (`پسوورد` → `پسورد`; not `ل`), and, in Arabic, a final `ا` typed for
    /// `ى` (`متا` → `متى`, normalised `متي`). The result must be a pattern word (or a
    /// dialect word of one), or, for a doubled letter, explained by the matcher's
    /// affixes around a pattern word (`پسووردم`).
    fn correct_arabic_slip(&self, word: &str, typing: Typing) -> Option<String> {
        let n_chars = word.chars().count();
        if !(MIN_ARABIC_STEM_LETTERS..=MAX_WORD_LETTERS).contains(&n_chars) {
            return None;
        }
        let script = match typing {
            Typing::Arabic => Script::Arabic,
            Typing::Persian | Typing::PersianOnArabicKeyboard => Script::Persian,
            Typing::Other => return None,
        };
        // A doubled letter is a slip in Persian only, and never `لل`: Arabic writes
        // `اللي` ("that"), `الله`, `للبيع`, whose single-letter forms are other words
        // (`الي`, "automatic").
        let mut collapsed = String::with_capacity(word.len());
        let mut previous = None;
        for ch in word.chars() {
            if previous != Some(ch) || ch == 'ل' {
                collapsed.push(ch);
            }
            previous = Some(ch);
        }
        if script == Script::Persian
            && collapsed.len() < word.len()
            && collapsed.chars().count() >= MIN_ARABIC_STEM_LETTERS
            && (self.is_target(&collapsed) || self.has_target_stem(&collapsed))
        {
            return Some(collapsed);
        }
        if script == Script::Arabic
            && let Some(stem) = word.strip_suffix('ا')
        {
            let candidate = format!("{stem}ي");
            if let Some(folded) = self.dialect_word(&candidate, script) {
                return Some(folded);
            }
            if self.is_target(&candidate) {
                return Some(candidate);
            }
        }
        None
    }

    /// In Arabic text, one letter left out of a pattern word or typed in addition to it
    /// (`التوصل` → `التوصيل`, `المرو` → `المرور`, `متاخير` → `متاخر`), when the word
    /// and the pattern word have [`ARABIC_EDIT_LETTERS`] letters or more, the matcher's
    /// affixes do not already explain the word, and exactly one pattern word fits.
    /// Persian is left out: its colloquial forms are written words one letter from the
    /// formal ones (`میخوام`), which the patterns list themselves.
    fn correct_arabic_letter(&self, word: &str, typing: Typing) -> Option<String> {
        if typing != Typing::Arabic || self.arabic_deletes.is_empty() {
            return None;
        }
        let n_chars = word.chars().count();
        if !(ARABIC_EDIT_LETTERS..=MAX_WORD_LETTERS).contains(&n_chars)
            || self.has_target_stem(word)
        {
            return None;
        }
        let mut found: Option<u32> = None;
        let mut ambiguous = false;
        let mut consider = |idx: u32| match found {
            None => found = Some(idx),
            Some(previous) if previous != idx => ambiguous = true,
            Some(_) => {}
        };
        // A letter left out: the word is a pattern word with one letter deleted.
        if let Some(indices) = self.arabic_deletes.get(word) {
            for idx in indices {
                if self.targets[*idx as usize].n_chars == n_chars + 1 {
                    consider(*idx);
                }
            }
        }
        // A letter too many: the word with one letter deleted is a pattern word.
        if n_chars > ARABIC_EDIT_LETTERS {
            for_each_char_deletion(word, |variant| {
                if let Some(indices) = self.typing_keys.get(typing_key(variant).as_str()) {
                    for idx in indices {
                        if &*self.targets[*idx as usize].word == variant {
                            consider(*idx);
                        }
                    }
                }
            });
        }
        if ambiguous {
            return None;
        }
        found.map(|idx| self.targets[idx as usize].word.to_string())
    }

    /// Whether `word` is a word of the pack's patterns (Arabic script).
    fn is_target(&self, word: &str) -> bool {
        self.typing_keys
            .get(typing_key(word).as_str())
            .is_some_and(|indices| {
                indices
                    .iter()
                    .any(|idx| &*self.targets[*idx as usize].word == word)
            })
    }

    /// Whether `word` is a pattern word behind the clitics the matcher allows.
    fn has_target_stem(&self, word: &str) -> bool {
        std::iter::once("")
            .chain(ARABIC_PREFIXES.iter().copied())
            .filter_map(|prefix| word.strip_prefix(prefix))
            .any(|rest| {
                std::iter::once("")
                    .chain(ARABIC_SUFFIXES.iter().copied())
                    .filter_map(|suffix| rest.strip_suffix(suffix))
                    .any(|stem| {
                        stem.chars().count() >= MIN_ARABIC_STEM_LETTERS && self.is_target(stem)
                    })
            })
    }
}

/// A preposition typed apart from its word: in Arabic a lone `ب` is attached to the
/// next word (`التوصيل ب كم` → `التوصيل بكم`); in Persian chat a lone `ب` is `به`
/// (`ب من بگید`). `None` when there is none.
fn attach_detached_letters(normalised: &str, script: Script) -> Option<String> {
    let detached = normalised == "ب"
        || normalised.starts_with("ب ")
        || normalised.contains(" ب ")
        || normalised.ends_with(" ب");
    if !detached {
        return None;
    }
    let words: Vec<&str> = normalised.split(' ').collect();
    let mut out = String::with_capacity(normalised.len() + 4);
    let mut glue = false;
    for (idx, word) in words.iter().enumerate() {
        let next_is_arabic = words
            .get(idx + 1)
            .is_some_and(|next| !next.is_empty() && is_arabic_word(next));
        if *word == "ب" && next_is_arabic {
            match script {
                Script::Arabic => {
                    if !out.is_empty() && !glue {
                        out.push(' ');
                    }
                    out.push('ب');
                    glue = true;
                    continue;
                }
                Script::Persian => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str("به");
                    continue;
                }
            }
        }
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        glue = false;
        out.push_str(word);
    }
    (out != normalised).then_some(out)
}

/// How a message was typed, which decides the Arabic-script letter pairs a correction
/// may undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Typing {
    /// Arabic text.
    Arabic,
    /// Persian text with no Persian-only letter (پ چ ژ گ ک ی): an Arabic keyboard.
    PersianOnArabicKeyboard,
    /// Persian text typed on a Persian keyboard: no letter is missing.
    Persian,
    /// Anything else (Latin script).
    Other,
}

impl Typing {
    /// How `text` (as typed, before normalisation, which folds ک and ی) in `lang` was
    /// typed.
    pub(crate) fn of(text: &str, lang: Lang) -> Typing {
        match lang {
            Lang::En => Typing::Other,
            Lang::Ar => Typing::Arabic,
            Lang::Fa if text.contains(['پ', 'چ', 'ژ', 'گ', 'ک', 'ی', 'ۀ']) => {
                Typing::Persian
            }
            Lang::Fa => Typing::PersianOnArabicKeyboard,
        }
    }
}

/// (typed, meant) letter pairs in Arabic text (see the module docs).
const ARABIC_TYPED_FOR: &[(char, char)] = &[('ظ', 'ض'), ('ض', 'ظ'), ('ت', 'ث'), ('ز', 'ذ')];
/// (typed, meant) letter pairs in Persian text: an Arabic keyboard.
const PERSIAN_TYPED_FOR: &[(char, char)] = &[('ب', 'پ'), ('ج', 'چ'), ('ز', 'ژ'), ('ك', 'گ')];

/// The word with each pair of [`ARABIC_TYPED_FOR`] and [`PERSIAN_TYPED_FOR`] folded to
/// one letter: words that a typed-for letter can turn into each other share a key.
fn typing_key(word: &str) -> String {
    word.chars()
        .map(|ch| match ch {
            'ظ' => 'ض',
            'ث' => 'ت',
            'ذ' | 'ژ' => 'ز',
            'پ' => 'ب',
            'چ' => 'ج',
            'گ' => 'ك',
            other => other,
        })
        .collect()
}

fn is_latin_word(word: &str) -> bool {
    word.bytes().all(|byte| byte.is_ascii_lowercase())
}

fn is_arabic_word(word: &str) -> bool {
    word.chars()
        .all(|ch| matches!(ch, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}'))
}

/// Calls `visit` with `word` and every string made from it by deleting up to `depth`
/// characters (ASCII words, `depth` 1 or 2). Variants may repeat; one buffer serves
/// them all, so a lookup allocates nothing per variant.
fn for_each_deletion(word: &str, depth: usize, mut visit: impl FnMut(&str)) {
    let bytes = word.as_bytes();
    let mut buffer = String::with_capacity(bytes.len());
    visit(word);
    for first in 0..bytes.len() {
        buffer.clear();
        buffer.push_str(&word[..first]);
        buffer.push_str(&word[first + 1..]);
        visit(&buffer);
        if depth < 2 {
            continue;
        }
        // Second deletions after the first keep each pair once.
        for second in first..bytes.len() - 1 {
            buffer.clear();
            buffer.push_str(&word[..first]);
            buffer.push_str(&word[first + 1..second + 1]);
            buffer.push_str(&word[second + 2..]);
            visit(&buffer);
        }
    }
}

/// Calls `visit` with every string made from `word` by deleting one character (any
/// script; a string may come twice, from a letter written twice).
fn for_each_char_deletion(word: &str, mut visit: impl FnMut(&str)) {
    let mut buffer = String::with_capacity(word.len());
    for (start, ch) in word.char_indices() {
        buffer.clear();
        buffer.push_str(&word[..start]);
        buffer.push_str(&word[start + ch.len_utf8()..]);
        visit(&buffer);
    }
}

/// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a
/// substring) over bytes; the words are ASCII.
fn osa_distance(a: &[u8], b: &[u8]) -> usize {
    let width = b.len() + 1;
    let mut rows = vec![0usize; (a.len() + 1) * width];
    for (j, cell) in rows.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut value = (rows[(i - 1) * width + j] + 1)
                .min(rows[i * width + j - 1] + 1)
                .min(rows[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                value = value.min(rows[(i - 2) * width + j - 2] + 1);
            }
            rows[i * width + j] = value;
        }
    }
    rows[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(patterns: &[&str], known: &[&str]) -> Speller {
        let mut builder = VocabularyBuilder::default();
        for pattern in patterns {
            builder.add_pattern(&crate::normalize(pattern));
        }
        for text in known {
            builder.add_known(&crate::normalize(text));
        }
        builder.build()
    }

    #[test]
    fn distances() {
        for (a, b, expected) in [
            ("polcy", "policy", 1),
            ("recieve", "receive", 1),
            ("teh", "the", 1),
            ("kitten", "sitting", 3),
            ("", "abc", 3),
            ("same", "same", 0),
        ] {
            assert_eq!(
                osa_distance(a.as_bytes(), b.as_bytes()),
                expected,
                "{a} {b}"
            );
        }
    }

    #[test]
    fn corrects_towards_pattern_words_only() {
        let speller = build(
            &["return policy", "delivery time", "shops", "order"],
            &["my shoes do not fit"],
        );
        assert_eq!(
            speller.correct("retrn polcy", Typing::Other).as_deref(),
            Some("return policy")
        );
        assert_eq!(
            speller.correct("delivry tiem", Typing::Other).as_deref(),
            Some("delivery time")
        );
        // Known words stay, short words stay, nothing to do is `None`.
        assert_eq!(speller.correct("my shoes", Typing::Other), None);
        assert_eq!(
            speller.correct("ordr", Typing::Other),
            Some("order".to_string())
        );
        assert_eq!(speller.correct("odr", Typing::Other), None);
        assert_eq!(speller.correct("return policy", Typing::Other), None);
        // Chat spellings.
        assert_eq!(
            speller.correct("wen r u open", Typing::Other).as_deref(),
            Some("when are you open")
        );
    }

    #[test]
    fn two_edits_for_long_words() {
        let speller = build(&["availability"], &[]);
        assert_eq!(
            speller.correct("avalability", Typing::Other).as_deref(),
            Some("availability")
        );
        assert_eq!(
            speller.correct("avalabilty", Typing::Other).as_deref(),
            Some("availability")
        );
        assert_eq!(speller.correct("avlbility", Typing::Other), None);
    }

    #[test]
    fn arabic_letters_typed_for_others() {
        let speller = build(&["ضمان", "ثاني", "مرتجع"], &["زمان"]);
        let ar = |text: &str| speller.correct(&crate::normalize(text), Typing::Arabic);
        assert_eq!(ar("الظمان").as_deref(), Some("الضمان"));
        assert_eq!(ar("ظمانكم").as_deref(), Some("ضمانكم"));
        assert_eq!(ar("تاني").as_deref(), Some("ثاني"));
        // One direction only: ث is never typed for ت.
        let reverse = build(&["تاني"], &[]);
        assert_eq!(reverse.correct("ثاني", Typing::Arabic), None);
        // Known (with or without affixes): untouched; ز is not a typo of ض.
        assert_eq!(ar("زمان"), None);
        assert_eq!(ar("بالضمان"), None);
        assert_eq!(ar("زمانكم"), None);
        // Persian pairs only in Persian.
        let persian = build(&["گارانتی", "پول"], &[]);
        let fa = |text: &str| persian.correct(&crate::normalize(text), Typing::of(text, Lang::Fa));
        assert_eq!(
            fa("كارانتي").as_deref(),
            Some(crate::normalize("گارانتی").as_str())
        );
        assert_eq!(fa("بولم").as_deref(), Some("پولم"));
        // Typed on a Persian keyboard (ی, ک): ک was meant.
        assert_eq!(fa("کارانتی"), None);
        assert_eq!(persian.correct("بول", Typing::Arabic), None);
        assert_eq!(persian.correct("بول", Typing::Other), None);
    }

    #[test]
    fn arabic_letter_left_out_or_typed_twice_over() {
        let speller = build(&["كلمه المرور", "متاخر", "التوصيل", "التحويل"], &["المحل"]);
        let ar = |text: &str| speller.correct(&crate::normalize(text), Typing::Arabic);
        // A letter left out of a pattern word, or one too many.
        assert_eq!(ar("نسيت كلمه المرو").as_deref(), Some("نسيت كلمه المرور"));
        assert_eq!(ar("طلبي متاخير").as_deref(), Some("طلبي متاخر"));
        // Known words, short words and Persian stay.
        assert_eq!(ar("المحل"), None);
        assert_eq!(ar("متاخ"), None);
        let fa = speller.correct(&crate::normalize("متاخير"), Typing::Persian);
        assert_eq!(fa, None);
        // Two pattern words one letter away: a guess, so nothing.
        assert_eq!(ar("التويل"), None);
    }

    #[test]
    fn arabic_script_slips() {
        let speller = build(&["متي", "پسورد", "بكم", "الغي"], &["انا"]);
        let ar = |text: &str| speller.correct(&crate::normalize(text), Typing::Arabic);
        let fa = |text: &str| speller.correct(&crate::normalize(text), Typing::of(text, Lang::Fa));
        // A final ا typed for ى, in Arabic only, towards a pattern word.
        assert_eq!(ar("متا يوصل").as_deref(), Some("متي يوصل"));
        assert_eq!(ar("انا"), None);
        assert_eq!(ar("هنا"), None);
        // A letter typed twice, also behind affixes.
        assert_eq!(
            fa("پسوورد").as_deref(),
            Some(crate::normalize("پسورد").as_str())
        );
        assert_eq!(
            fa("پسووردم").as_deref(),
            Some(crate::normalize("پسوردم").as_str())
        );
        // Never in Arabic, never `لل`: `اللي` ("that") is not `الي` ("automatic").
        let arabic = build(&["الي"], &[]);
        assert_eq!(arabic.correct("اللي", Typing::Arabic), None);
        assert_eq!(arabic.correct("اللي", Typing::Persian), None);
        // A detached ب: attached in Arabic, `به` in Persian.
        assert_eq!(ar("التوصيل ب كم").as_deref(), Some("التوصيل بكم"));
        assert_eq!(ar("ب كم").as_deref(), Some("بكم"));
        assert_eq!(ar("حرف ب"), None);
        assert_eq!(
            fa("ب من بگید").as_deref(),
            Some(crate::normalize("به من بگید").as_str())
        );
    }

    #[test]
    fn ambiguous_corrections_are_left_alone() {
        // ت typed for ث, or ز typed for ذ: no guess.
        let speller = build(&["ثاز", "تاذ"], &[]);
        assert_eq!(speller.correct("تاز", Typing::Arabic), None);
        let speller = build(&["ضمان", "ضمات"], &[]);
        assert_eq!(
            speller.correct("ظمان", Typing::Arabic).as_deref(),
            Some("ضمان")
        );
    }

    #[test]
    fn chat_spellings_are_sorted_and_normalised() {
        assert!(CHAT_EN.windows(2).all(|pair| pair[0].0 < pair[1].0));
        for (short, long) in CHAT_EN {
            assert_eq!(crate::normalize(short), *short);
            assert_eq!(crate::normalize(long), *long);
        }
    }

    #[test]
    fn deletions_cover_every_pair() {
        let mut variants = Vec::new();
        for_each_deletion("abcd", 2, |variant| variants.push(variant.to_string()));
        variants.sort();
        variants.dedup();
        let expected = [
            "ab", "abc", "abcd", "abd", "ac", "acd", "ad", "bc", "bcd", "bd", "cd",
        ];
        assert_eq!(variants, expected);
    }

    #[test]
    fn work_is_bounded() {
        let speller = build(&["delivery"], &[]);
        let long = "xyzzyq ".repeat(1000);
        assert_eq!(speller.correct(long.trim(), Typing::Other), None);
    }
}
