//! The structural handoff signal (issue 16, fifth round): is a message that nothing
//! answers confidently the message of a frustrated visitor, or of one who wants a
//! person, even when no lexicon phrase says so?
//!
//! The lexicons of `signals.toml` hold whole phrasings ("what kind of service is this"),
//! and four rounds of blind batches showed that visitors' phrasings outrun them. This
//! signal looks at *kinds of evidence* instead, one word (or two or three) at a time,
//! from the cue table `affect.toml` beside this file:
//!
//! | family | weight | e.g. |
//! |---|---|---|
//! | `absence` | 1.0 | nobody, never, nada, `محد`, `ولا رد`, `هیچکس`; a negated word of replying (`مش … تردوا`) |
//! | `judgement` | 1.0 | joke, rude, regret…, `حرام`, `ياريت`, `زشت`, `بی مسئولیت…` |
//! | `blame` | 0.5 | you guys, your company, `انتو`, `…كم`, `خربتوا`, `شما`, `کارتون`, `نمیکنین` |
//! | `waiting` | 0.5 | again, still, weeks, `بقالي`, `كل مره`, `هنوز`, `هر بار` |
//! | `challenge` | 0.5 | why, how hard, are you even, `ليش`, `ولا ايه`, `هال…`, `چرا`, `بابا` |
//! | `problem` | 0.5 | broken, late, missing, `ناقص`, `متاخر…`, `خراب`, `دیر` |
//! | `service` | 0.5 | order, parcel, courier, refund, `المندوب`, `الطلب`, `پیک`, `سفارش` |
//! | `irony` | 0.5 | thanks, great, `شكرا`, `دستتون درد نکنه` in the first two words, only before something negative |
//! | `intensity` | 0.25 | so, even, `والله`, `بزاف`, `خیلی`, `اینقد` |
//! | `negation` | 0.25 | not, don't, `مش`, `ما`, `نمی…`, `نیست` |
//! | `punctuation` | 0.25 | a run of two or more `?`, `؟` or `!` |
//!
//! Each family counts once; the weights add up. A message is **frustrated** when the sum
//! reaches [`MIN_SCORE`] with at least [`MIN_FAMILIES`] families, one of them a
//! negative one (`absence`, `judgement`, `waiting`, `challenge`, `problem`): blame and
//! intensity alone ("do you really ship to Oman??") are not frustration. Second-person
//! blame in Arabic and Persian is also read from the word's form (a suffix `كم`/`كو`
//! "you", a verb of the second person plural `خربتوا`, `بتستهبلوا`, `کردین`, `نمیکنین`,
//! a possessive `تون`), in the message's language only. A glued Arabic `و` or article
//! and a Persian object `و` are undone before the look-ups (`وما حد`, `الغلط`, `نفرو`).
//!
//! A **report** is a statement of [`MIN_REPORT_WORDS`] words or more about the
//! store's world (`service`) that asks nothing ("the delivery guy threw my box over the
//! fence"): a visitor telling what went wrong.
//!
//! The **person structure** is a "who" word (someone, any1, `حدا`, `یکی`, `با کی`)
//! beside a word of talking or of being real (talk, chatting, bot, `بيحكي`, `جواب`,
//! `واقعی`): "who am I chatting with", `في حدا بيحكي معي`, "is any1 there or just a bot".
//!
//! `neutral` phrases are taken out first ("never mind", "no problem", "just browsing").
//! What the triage does with the result is in `crate::triage` ("The structural
//! signal"). One pass over the normalised words: per word, three hash look-ups for
//! phrases of one to three words and one per prefix for the stems.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::Lang;
use crate::normalize::normalize;

/// The cue table.
const TABLE: &str = include_str!("affect.toml");

/// A frustrated message reaches at least this sum of family weights …
pub(crate) const MIN_SCORE: f32 = 1.0;
/// … with at least this many families.
pub(crate) const MIN_FAMILIES: u32 = 2;

/// The families, in the order of their bits.
pub(crate) const FAMILIES: [&str; 11] = [
    "absence",
    "judgement",
    "blame",
    "waiting",
    "challenge",
    "intensity",
    "negation",
    "problem",
    "service",
    "irony",
    "punctuation",
];
const ABSENCE: u16 = 1 << 0;
const JUDGEMENT: u16 = 1 << 1;
const BLAME: u16 = 1 << 2;
const WAITING: u16 = 1 << 3;
const CHALLENGE: u16 = 1 << 4;
const NEGATION: u16 = 1 << 6;
const PROBLEM: u16 = 1 << 7;
const SERVICE: u16 = 1 << 8;
const IRONY: u16 = 1 << 9;
const PUNCTUATION: u16 = 1 << 10;
/// Irony is praise or thanks at the start of a message (`thanks for …`, `great, …`,
/// `دستتون درد نکنه`) that something negative follows; praise alone is not counted.
const IRONY_WEIGHT: f32 = 0.5;
/// Praise counts as irony within this many first words.
const IRONY_OPENING_WORDS: usize = 2;
/// The bits of the families.
const FAMILY_BITS: u16 = (1 << FAMILIES.len()) - 1;
/// The families that say something is wrong (blame, intensity, negation, the service and
/// punctuation only colour a message).
const NEGATIVE: u16 = ABSENCE | JUDGEMENT | WAITING | CHALLENGE | PROBLEM;
const WHO: u16 = 1 << 12;
const TALK: u16 = 1 << 13;
const NEUTRAL: u16 = 1 << 14;
const REPLY: u16 = 1 << 15;
/// `affect:<family>`, the name [`crate::RuleSet::signals_in`] gives a family.
pub(crate) fn explained(family: &str) -> &'static str {
    match family {
        "absence" => "affect:absence",
        "judgement" => "affect:judgement",
        "blame" => "affect:blame",
        "waiting" => "affect:waiting",
        "challenge" => "affect:challenge",
        "intensity" => "affect:intensity",
        "negation" => "affect:negation",
        "problem" => "affect:problem",
        "service" => "affect:service",
        "irony" => "affect:irony",
        _ => "affect:punctuation",
    }
}

/// An answer scoring below this (one pattern, a little more) gives way to frustration
/// of at least [`STRONG_SCORE`], and so does a clarifying question between two topics
/// (see `crate::triage`).
pub(crate) const WEAK_ANSWER: f32 = 1.25;
/// Frustration strong enough to outweigh a weak answer.
pub(crate) const STRONG_SCORE: f32 = 2.0;
/// A report (see [`Affect::report`]) has at least this many words: "package" or "my
/// parcel has not come" is a question about an order put short, "the delivery guy threw
/// my box over the fence" tells what happened.
pub(crate) const MIN_REPORT_WORDS: usize = 6;
/// The weight of a run of `??` or `!!`.
const PUNCTUATION_WEIGHT: f32 = 0.25;
/// Phrases have at most this many words.
const MAX_PHRASE_WORDS: usize = 3;

/// What the structural signal found in one message.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Affect {
    /// The families present, one bit each in [`FAMILIES`] order.
    pub(crate) families: u16,
    /// The sum of their weights.
    pub(crate) score: f32,
    /// A "who" word beside a word of talking or of being real.
    pub(crate) person: bool,
    /// A statement about the store's world (the `service` family, no question):
    /// "the delivery guy threw my box over the fence".
    pub(crate) report: bool,
}

impl Affect {
    /// Whether the message reads as frustrated (see the module docs).
    pub(crate) fn is_frustrated(&self) -> bool {
        self.score >= MIN_SCORE
            && self.families.count_ones() >= MIN_FAMILIES
            && self.families & NEGATIVE != 0
    }

    /// Whether praise opens a negative message (`thanks for charging me twice`).
    pub(crate) fn is_ironic(&self) -> bool {
        self.families & IRONY != 0
    }

    /// The names of the families present.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        FAMILIES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.families & (1 << bit) != 0)
            .map(|(_, name)| *name)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTable {
    family: Vec<RawFamily>,
    praise: RawWords,
    neutral: RawWords,
    person: RawPerson,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    name: String,
    weight: f32,
    #[serde(flatten)]
    words: RawWords,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWords {
    #[serde(default)]
    en: Vec<String>,
    #[serde(default)]
    ar: Vec<String>,
    #[serde(default)]
    fa: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    who: RawWords,
    talk: RawWords,
    reply: RawWords,
}

/// The compiled cue table: for each normalised phrase (or stem), the bits it sets in
/// each language (`Lang::ALL` order).
struct Cues {
    phrases: HashMap<String, [u16; 3]>,
    /// The first words of the phrases (to undo a glued `و`, "and").
    first_words: std::collections::HashSet<String>,
    stems: HashMap<String, [u16; 3]>,
    weights: [f32; FAMILIES.len()],
}

static CUES: LazyLock<Cues> = LazyLock::new(|| Cues::build(TABLE));

impl Cues {
    /// Builds the table. The table is part of the crate: a malformed one is a bug that
    /// the unit tests catch; were one shipped, the signal would find nothing rather than
    /// fail a triage.
    fn build(text: &str) -> Cues {
        let raw: RawTable = toml::from_str(text).unwrap_or_default();
        let mut cues = Cues {
            phrases: HashMap::new(),
            first_words: std::collections::HashSet::new(),
            stems: HashMap::new(),
            weights: [0.0; FAMILIES.len()],
        };
        for family in &raw.family {
            let Some(bit) = FAMILIES.iter().position(|name| *name == family.name) else {
                continue;
            };
            cues.weights[bit] = family.weight;
            cues.add(&family.words, 1 << bit);
        }
        cues.weights[FAMILIES.len() - 1] = PUNCTUATION_WEIGHT;
        cues.weights[FAMILIES.len() - 2] = IRONY_WEIGHT;
        cues.add(&raw.praise, IRONY);
        cues.add(&raw.neutral, NEUTRAL);
        cues.add(&raw.person.who, WHO);
        cues.add(&raw.person.talk, TALK);
        cues.add(&raw.person.reply, REPLY);
        cues.first_words = cues
            .phrases
            .keys()
            .chain(cues.stems.keys())
            .filter_map(|phrase| phrase.split(' ').next())
            .map(str::to_string)
            .collect();
        cues
    }

    /// Whether `word` is a cue word or begins a cue phrase or stem.
    fn knows(&self, word: &str) -> bool {
        self.first_words.contains(word)
            || word
                .char_indices()
                .skip(2)
                .any(|(end, _)| self.stems.contains_key(&word[..end]))
    }

    /// `normalised` with the clitics that hide a cue undone: Arabic `و` ("and") glued
    /// to the next word (`وما حد` → `و ما حد`) and the article (`الغلط` → `غلط`), Persian `و` (the object marker `رو`
    /// shortened) glued to the previous one (`یه نفرو` → `یه نفر`). Borrowed when there
    /// is nothing to undo.
    fn unglue<'t>(&self, normalised: &'t str, lang: Lang) -> std::borrow::Cow<'t, str> {
        let split = |word: &str| -> Option<String> {
            if word.chars().count() < 3 || self.knows(word) {
                return None;
            }
            match lang {
                Lang::Ar => match word.strip_prefix('و') {
                    Some(rest) if self.knows(rest) => Some(format!("و {rest}")),
                    _ => word
                        .strip_prefix("ال")
                        .filter(|rest| self.knows(rest))
                        .map(str::to_string),
                },
                Lang::Fa => word
                    .strip_suffix('و')
                    .filter(|rest| self.knows(rest))
                    .map(str::to_string),
                Lang::En => None,
            }
        };
        if lang == Lang::En || !normalised.split(' ').any(|word| split(word).is_some()) {
            return std::borrow::Cow::Borrowed(normalised);
        }
        let words: Vec<String> = normalised
            .split(' ')
            .map(|word| split(word).unwrap_or_else(|| word.to_string()))
            .collect();
        std::borrow::Cow::Owned(words.join(" "))
    }

    fn add(&mut self, words: &RawWords, bits: u16) {
        for (lang, list) in [
            (None, &words.en),
            (Some(1), &words.ar),
            (Some(2), &words.fa),
        ] {
            for word in list {
                let (word, stem) = match word.strip_suffix('*') {
                    Some(stem) => (stem, true),
                    None => (word.as_str(), false),
                };
                let key = normalize(word);
                if key.is_empty() {
                    continue;
                }
                let map = if stem {
                    &mut self.stems
                } else {
                    &mut self.phrases
                };
                let entry = map.entry(key).or_insert([0; 3]);
                match lang {
                    // English cues count in any language (visitors mix them in).
                    None => entry.iter_mut().for_each(|slot| *slot |= bits),
                    Some(idx) => entry[idx] |= bits,
                }
            }
        }
    }
}

/// Reads the structural signal of a message: `text` as typed (for punctuation),
/// `normalised` its [`normalize`]d form, `lang` the message's language.
pub(crate) fn read(text: &str, normalised: &str, lang: Lang) -> Affect {
    let cues = &*CUES;
    let idx = lang as usize;
    let unglued = cues.unglue(normalised, lang);
    let normalised: &str = &unglued;
    // Word spans: the normalised text is words separated by single spaces.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (pos, byte) in normalised.bytes().enumerate() {
        if byte == b' ' {
            spans.push((start, pos));
            start = pos + 1;
        }
    }
    if start < normalised.len() {
        spans.push((start, normalised.len()));
    }
    let mut bits = 0u16;
    let mut i = 0;
    'words: while i < spans.len() {
        // A neutral phrase (longest first) is skipped whole.
        for n in (1..=MAX_PHRASE_WORDS).rev() {
            if i + n > spans.len() {
                continue;
            }
            let phrase = &normalised[spans[i].0..spans[i + n - 1].1];
            if cues
                .phrases
                .get(phrase)
                .is_some_and(|entry| entry[idx] & NEUTRAL != 0)
            {
                i += n;
                continue 'words;
            }
        }
        for n in 1..=MAX_PHRASE_WORDS.min(spans.len() - i) {
            let phrase = &normalised[spans[i].0..spans[i + n - 1].1];
            if let Some(entry) = cues.phrases.get(phrase) {
                let mut found = entry[idx] & !NEUTRAL;
                if i >= IRONY_OPENING_WORDS {
                    found &= !IRONY;
                }
                bits |= found;
            }
        }
        let word = &normalised[spans[i].0..spans[i].1];
        // Stems, of one word or of two (`بی مسئولیت*` reaches into the second word).
        for n in 1..=2.min(spans.len() - i) {
            let last = spans[i + n - 1];
            let phrase = &normalised[spans[i].0..last.1];
            let last_start = last.0 - spans[i].0;
            for (end, _) in phrase[last_start..].char_indices().skip(2) {
                if let Some(entry) = cues.stems.get(&phrase[..last_start + end]) {
                    bits |= entry[idx];
                }
            }
            if let Some(entry) = cues.stems.get(phrase) {
                bits |= entry[idx];
            }
        }
        if second_person(word, lang) {
            bits |= BLAME;
        }
        // Arabic `هال…` ("this …" said with indignation: `ايش هالبطء`, `شو هالخدمه`).
        if lang == Lang::Ar && word.starts_with("هال") && word.chars().count() >= 5 {
            bits |= CHALLENGE;
            // … after "what": `ايش هالخدمه`, "what kind of service is this".
            if i > 0
                && ["ايش", "شو", "وش", "ايه", "اش"]
                    .contains(&&normalised[spans[i - 1].0..spans[i - 1].1])
            {
                bits |= JUDGEMENT;
            }
        }
        i += 1;
    }
    if has_punctuation_run(text) {
        bits |= PUNCTUATION;
    }
    // A negated word of talking is no answer (`مش هاين عليكم تردوا`, "you don't reply").
    if bits & NEGATION != 0 && bits & REPLY != 0 {
        bits |= ABSENCE;
    }
    if bits & NEGATIVE == 0 {
        bits &= !IRONY;
    }
    let families = bits & FAMILY_BITS;
    let score = (0..FAMILIES.len())
        .filter(|bit| families & (1 << bit) != 0)
        .map(|bit| cues.weights[bit])
        .sum();
    Affect {
        families,
        score,
        person: bits & WHO != 0 && bits & TALK != 0,
        report: families & SERVICE != 0
            && spans.len() >= MIN_REPORT_WORDS
            && !is_question(text, normalised),
    }
}

/// Arabic words that end like "you" (`كم`) but are not.
const NOT_SECOND_PERSON_AR: &[&str] = &["تحكم", "الحكم", "يحكم", "محكمه", "تراكم", "حكم"];
/// Persian words that end like "your" (`تون`) but are not.
const NOT_SECOND_PERSON_FA: &[&str] = &["زيتون", "ستون", "بتون", "تلفون"];

/// Second-person blame read from a word's form, in the message's language: Arabic
/// `…كم`/`…كو` ("you", "your": `عليكم`, `منكو`), a verb of the second person plural
/// (`خربتوا`, `بتستهبلوا`, `تحترموا`); Persian `…تون` ("your": `کارتون`, `قولتون`) and
/// verbs of the second person plural (`نمیکنین`, `کردین`, `هستین`).
fn second_person(word: &str, lang: Lang) -> bool {
    let n_chars = word.chars().count();
    match lang {
        Lang::En => false,
        Lang::Ar => {
            if n_chars < 4 || NOT_SECOND_PERSON_AR.contains(&word) {
                return false;
            }
            word.ends_with("كم")
                || word.ends_with("كو")
                || (n_chars >= 5 && word.ends_with("توا"))
                || (n_chars >= 5
                    && (word.starts_with('ت') || word.starts_with("بت"))
                    && word.ends_with("وا"))
        }
        Lang::Fa => {
            if n_chars < 4 || NOT_SECOND_PERSON_FA.contains(&word) {
                return false;
            }
            (n_chars >= 5
                && ["تون", "تونم", "تونه", "تونو"]
                    .iter()
                    .any(|end| word.ends_with(end)))
                || ((word.starts_with("مي") || word.starts_with("نمي"))
                    && (word.ends_with("ين") || word.ends_with("يد")))
                || ["دين", "ديد", "تين", "تيد"]
                    .iter()
                    .any(|suffix| word.ends_with(suffix))
        }
    }
}

/// Words that open a question (normalised).
const QUESTION_WORDS: &[&str] = &[
    "can",
    "could",
    "how",
    "what",
    "whats",
    "when",
    "where",
    "wheres",
    "which",
    "who",
    "do",
    "does",
    "is",
    "are",
    "will",
    "would",
    "may",
    "should",
    "if",
    "any",
    "hw",
    "wat",
    "wen",
    "r",
    "pls",
    "please",
    "i want",
    "i need",
    "id like",
    "hi",
    "hello",
    "hey",
    "هل",
    "كيف",
    "متي",
    "امتي",
    "وين",
    "فين",
    "ايش",
    "شو",
    "وش",
    "ممكن",
    "اقدر",
    "كم",
    "بكم",
    "قديش",
    "ابي",
    "ابغي",
    "بدي",
    "عايز",
    "اريد",
    "لو",
    "اذا",
    "چطور",
    "چطوري",
    "كجا",
    "ايا",
    "ميشه",
    "ميتونم",
    "چند",
    "چه",
    "كي",
    "چي",
    "ميخوام",
    "اگه",
    "اگر",
    "سلام",
    "مرحبا",
];

/// Whether a message asks something (a `?` or `؟`, or a question word first) rather
/// than reports something.
fn is_question(text: &str, normalised: &str) -> bool {
    if text.contains(['?', '؟']) {
        return true;
    }
    QUESTION_WORDS.iter().any(|word| {
        normalised
            .strip_prefix(word)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

/// Whether `text` has two or more `?`, `؟` or `!` in a row (`??`, `?!`, `؟؟`).
fn has_punctuation_run(text: &str) -> bool {
    let mut run = 0;
    for ch in text.chars().take(crate::MAX_INPUT_CHARS) {
        if matches!(ch, '?' | '؟' | '!' | '！' | '？') {
            run += 1;
            if run >= 2 {
                return true;
            }
        } else if !ch.is_whitespace() {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_in(lang: Lang, text: &str) -> Affect {
        read(text, &normalize(text), lang)
    }

    #[test]
    fn the_table_builds_and_every_family_has_cues_in_every_language() {
        let raw: RawTable = toml::from_str(TABLE).expect("valid");
        for family in &raw.family {
            assert!(FAMILIES.contains(&family.name.as_str()), "{}", family.name);
            let words = &family.words;
            assert!(
                !words.en.is_empty() && !words.ar.is_empty() && !words.fa.is_empty(),
                "{}",
                family.name
            );
        }
        assert_eq!(
            raw.family.len(),
            FAMILIES.len() - 2,
            "all but irony and punctuation"
        );
        assert!(!CUES.phrases.is_empty());
    }

    #[test]
    fn frustration_by_families() {
        for (lang, text) in [
            (
                Lang::En,
                "why does nobody at your company ever follow through",
            ),
            (Lang::En, "r u guys even trying??"),
            (Lang::En, "smh 3 weeks and nada"),
            (Lang::Ar, "يا ريت ما طلبت منكم"),
            (Lang::Ar, "بقالي شهر بجري وراكم"),
            (Lang::Fa, "ببخشیدا ولی این کارتون خیلی زشت بود"),
            (Lang::Fa, "هیچکس اینجا کارشو بلد نیست"),
        ] {
            let affect = read_in(lang, text);
            assert!(
                affect.is_frustrated(),
                "{text}: {:?}",
                affect.names().collect::<Vec<_>>()
            );
        }
        for (lang, text) in [
            (Lang::En, "are you married?"),
            (Lang::En, "never mind"),
            (Lang::En, "why is the sky blue"),
            (Lang::En, "do you really ship to oman??"),
            (Lang::Ar, "شو رأيك بالسياسة"),
            (Lang::Fa, "نظرت درباره هوش مصنوعی چیه؟"),
            (Lang::Fa, "نه دیگه سوالی ندارم، مرسی"),
        ] {
            let affect = read_in(lang, text);
            assert!(
                !affect.is_frustrated(),
                "{text}: {:?}",
                affect.names().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn second_person_by_form() {
        assert!(second_person("عليكم", Lang::Ar));
        assert!(second_person("خربتوا", Lang::Ar));
        assert!(second_person("بتستهبلوا", Lang::Ar));
        assert!(!second_person("بكم", Lang::Ar));
        assert!(!second_person("تحكم", Lang::Ar));
        assert!(second_person(&normalize("نمیکنین"), Lang::Fa));
        assert!(second_person(&normalize("قولتون"), Lang::Fa));
        assert!(!second_person(&normalize("زیتون"), Lang::Fa));
        assert!(!second_person(&normalize("بهترین"), Lang::Fa));
        // Persian `کمکم` ("help me") is not Arabic "you".
        assert!(!second_person(&normalize("کمکم"), Lang::Fa));
    }

    #[test]
    fn person_structure() {
        assert!(read_in(Lang::En, "who exactly am i chatting with right now").person);
        assert!(read_in(Lang::En, "hellooo is any1 there or just a bot").person);
        assert!(read_in(Lang::Ar, "في حدا بيحكي معي هون؟").person);
        assert!(read_in(Lang::Fa, "الان دارم با کی چت میکنم؟").person);
        assert!(!read_in(Lang::En, "hey, anyone here?").person);
        assert!(!read_in(Lang::En, "who won the world cup in 2010").person);
        assert!(!read_in(Lang::En, "is this real leather").person);
    }

    #[test]
    fn punctuation_runs() {
        assert!(has_punctuation_run("why??"));
        assert!(has_punctuation_run("چرا ؟ ؟"));
        assert!(has_punctuation_run("what?!"));
        assert!(!has_punctuation_run("where? when?"));
    }
}
