//! Dialect and colloquial words: a visitor's word that the pack's patterns do not use is
//! replaced by a word of the same meaning that they do use.
//!
//! Rule authors write their patterns in one or two spellings of a language; visitors
//! write in theirs. The question words, verbs of wanting and a few everyday nouns differ
//! the most between the dialects of Arabic and between written and spoken Persian, and
//! they carry much of the meaning of a short question (`شحال الشحن؟`, Maghrebi "how
//! much is shipping?", is `كم الشحن؟`). Each group below lists words that mean the same
//! thing in the contexts of a shop's chat, in normalised spelling (a test checks it).
//!
//! When a pack is compiled, every word of a group that is *not* a word of the pack's
//! patterns is mapped to the first word of its group that is (none: the word stays).
//! So a pack that writes `شحال` in a pattern keeps it, and a pack that uses neither word
//! is unaffected. At triage, the speller (`crate::speller`) looks each word up, also
//! behind the clitic prefixes and pronoun suffixes of Arabic (`بشحال` → `بكم`, `ديالي`
//! → `حقي`), before it tries typo corrections. `[settings] spelling = false` turns both
//! off; `salam rules try` shows the text the rules saw.
//!
//! Only words whose meaning does not depend on the dialect belong here: Egyptian `ايه`
//! ("what") is Levantine "yes", Gulf `ابا` is also a name, `هلا` is also a greeting;
//! they are left out.

use std::collections::{HashMap, HashSet};

/// Arabic: groups of words with one meaning across MSA, Gulf, Egyptian, Levantine, Iraqi
/// and Maghrebi Arabic (normalised: ى → ي, ة → ه, no hamza on alef).
const ARABIC: &[&[&str]] = &[
    // when
    &[
        "متي",
        "امتي",
        "ايمتي",
        "ايمته",
        "امته",
        "شوكت",
        "وقتاش",
        "فوقاش",
        "امتيه",
    ],
    // how much / how many
    &["كم", "قديش", "قداش", "اديش", "شحال", "شكد", "كام"],
    &["بكم", "بكام", "بقديش", "بقداش", "بشحال", "بشكد"],
    // how
    &["كيف", "ازاي", "كيفاش", "شلون", "اشلون"],
    // what
    &["ايش", "شو", "وش", "شنو", "شنهو", "اشنو", "واشنو"],
    // where
    &["وين", "فين", "اين", "فاين"],
    // why
    &["ليش", "لماذا", "ليه", "علاش", "لاش"],
    // I want
    &[
        "ابي", "ابغي", "ابغا", "اريد", "بدي", "عايز", "عاوز", "بغيت", "نبغي",
    ],
    // now
    &[
        "الان",
        "الحين",
        "دلوقتي",
        "هلق",
        "هسه",
        "هسا",
        "دابا",
        "توا",
        "دحين",
        "هالحين",
    ],
    // there is
    &["يوجد", "فيه", "كاين", "كاينه", "اكو"],
    // still
    &["لسه", "لسا", "لساتو", "مازال", "مازالت", "مزال", "مزالت"],
    // of, belonging to (`حقي`, `بتاعي`, `ديالي`, `تبعي`)
    &["حق", "بتاع", "تبع", "ديال", "تاع"],
    // the order (French `commande`)
    &["طلب", "اوردر", "طلبيه", "كوموند", "كوماند", "كومند"],
    // money
    &["فلوس", "دراهم", "بيزات", "مصاري", "مصريات"],
    // open (Maghrebi `حالين`)
    &["فاتحين", "حالين"],
    // cancel (colloquial, without the hamza: `بلغي` "I cancel")
    &["الغي", "لغي"],
    // closed, locked
    &["مقفل", "مقفول", "مسكر", "مغلق"],
    // tomorrow
    &["بكره", "بكرا", "غدا", "غدوه"],
    // give me
    &["اعطني", "عطني", "عطيني", "اديني"],
    // size
    &["مقاس", "قياس"],
    // place (Maghrebi `بلاصه`, French `place`)
    &["مكان", "بلاصه"],
    // product (Maghrebi `منتوج`)
    &["منتج", "منتوج"],
    // delivery (French `livraison`)
    &["توصيل", "ليفريزون", "ليفرازون"],
    &["التوصيل", "الليفريزون", "الليفرازون"],
    &["المنتج", "المنتوج"],
    // account (English)
    &["حساب", "اكونت", "اكاونت"],
];

/// Persian: colloquial and typed spellings of everyday words (normalised: ی → ي,
/// ک → ك).
const PERSIAN: &[&[&str]] = &[
    &["چقدر", "چقد"],
    &["كجاست", "كجاس", "كو"],
    &["چطوري", "چجوري", "چطور", "چگونه"],
    &["ميخوام", "ميخام", "ميخوايم"],
    &["نميخوام", "نميخام"],
    &["متشكرم", "مچكرم", "مچكريم"],
    &["اكانت", "اكانتم"],
];

/// Whether dialect folding applies to Arabic or to Persian text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Arabic,
    Persian,
}

/// The words of the built-in groups that a pack's patterns do not use, each with the
/// word of its group that they do use.
#[derive(Debug, Default)]
pub(crate) struct Dialect {
    arabic: HashMap<Box<str>, Box<str>>,
    persian: HashMap<Box<str>, Box<str>>,
}

impl Dialect {
    /// The mappings for a pack whose patterns use `pattern_words`.
    pub(crate) fn new(pattern_words: &HashSet<Box<str>>) -> Dialect {
        let build = |groups: &[&[&str]]| {
            let mut map = HashMap::new();
            for group in groups {
                let Some(canonical) = group.iter().find(|word| pattern_words.contains(**word))
                else {
                    continue;
                };
                for word in *group {
                    if pattern_words.contains(*word) {
                        continue;
                    }
                    map.entry((*word).into())
                        .or_insert_with(|| (*canonical).into());
                }
            }
            map
        };
        Dialect {
            arabic: build(ARABIC),
            persian: build(PERSIAN),
        }
    }

    /// The pack's word for `word` (a single normalised word, without affixes).
    pub(crate) fn get(&self, word: &str, script: Script) -> Option<&str> {
        let map = match script {
            Script::Arabic => &self.arabic,
            Script::Persian => &self.persian,
        };
        map.get(word).map(|canonical| &**canonical)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.arabic.is_empty() && self.persian.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_normalised_and_disjoint() {
        for groups in [ARABIC, PERSIAN] {
            let mut seen = HashSet::new();
            for group in groups {
                assert!(group.len() >= 2, "{group:?}");
                for word in *group {
                    assert_eq!(crate::normalize(word), *word, "{word}");
                    assert!(!word.contains(' '), "{word}: one word only");
                    assert!(seen.insert(*word), "{word} is listed twice");
                }
            }
        }
    }

    #[test]
    fn maps_to_the_packs_own_word() {
        let words: HashSet<Box<str>> = ["كم", "قديش", "ليش"].into_iter().map(Into::into).collect();
        let dialect = Dialect::new(&words);
        assert_eq!(dialect.get("شحال", Script::Arabic), Some("كم"));
        // A word the patterns use stays.
        assert_eq!(dialect.get("قديش", Script::Arabic), None);
        assert_eq!(dialect.get("علاش", Script::Arabic), Some("ليش"));
        // No word of the group in the pack: nothing to map to.
        assert_eq!(dialect.get("كيفاش", Script::Arabic), None);
        assert_eq!(dialect.get("شحال", Script::Persian), None);
    }
}
