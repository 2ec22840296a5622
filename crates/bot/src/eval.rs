//! Accuracy of a rule pack on labelled sentences: the pure core of `salam rules eval`.
//!
//! Input is a TSV, one sentence per line: `lang<TAB>expected<TAB>text`, where `expected`
//! is an intent or `none` (the bot must not answer). Empty lines and lines starting with
//! `#` are skipped. Each sentence is triaged with its language as the locale and no
//! previous misses.
//!
//! A sentence is correct when the predicted intent equals the expected one, or when
//! `none` is expected and the bot did not answer (fallback or clarify). Two error kinds
//! are counted apart because they matter more than plain misses:
//! - a *wrong answer* is a confident answer or handoff for another intent than expected
//!   (including any answer when `none` is expected): the visitor gets a wrong reply;
//! - a *missed handoff* is a `human_agent` or `complaint` sentence that was not handed
//!   off: a person asked for help and did not get it.
//!
//! Every incorrect sentence also counts in a confusion table per language (expected
//! intent → predicted intent, `clarify` or `none`), printed by `salam rules eval`
//! ([`EvalReport::confusion_summary`]).

use crate::triage::TriageInput;
use crate::{Lang, RuleSet};

/// Counts for one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LangAccuracy {
    /// The language.
    pub lang: Lang,
    /// Sentences in that language.
    pub total: usize,
    /// Correctly triaged sentences.
    pub correct: usize,
    /// Wrong answers (see the module docs).
    pub wrong: usize,
    /// Missed handoffs.
    pub missed_handoffs: usize,
}

impl LangAccuracy {
    /// `correct / total`, or 1.0 for no sentences.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.total, 1.0)
    }

    /// `wrong / total`, or 0.0 for no sentences.
    pub fn wrong_answer_rate(&self) -> f64 {
        ratio(self.wrong, self.total, 0.0)
    }
}

/// How often sentences of one expected intent got another prediction, in one language.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Confusion {
    /// The language.
    pub lang: Lang,
    /// The intent the sentences should reach (or `none`).
    pub expected: String,
    /// What they got instead: an intent, `clarify` or `none` (fallback).
    pub predicted: String,
    /// How many sentences.
    pub count: usize,
}

/// The result of [`run`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    /// One line per sentence: `lang<TAB>expected<TAB>predicted<TAB>text`.
    pub lines: Vec<String>,
    /// Per language, in `Lang::ALL` order.
    pub per_lang: Vec<LangAccuracy>,
    /// All sentences.
    pub total: usize,
    /// All correct sentences.
    pub correct: usize,
    /// Output lines of the wrong answers (see the module docs).
    pub wrong_answers: Vec<String>,
    /// Output lines of the missed handoffs.
    pub missed_handoffs: Vec<String>,
    /// Output lines of the other misses (fallback/clarify where an intent was expected).
    pub misses: Vec<String>,
    /// Input lines that could not be read, as `line N: reason`.
    pub invalid_lines: Vec<String>,
    /// Every (language, expected, predicted) pair of the incorrect sentences, with its
    /// count: which intents are taken for which. Sorted by language, then most frequent.
    pub confusions: Vec<Confusion>,
}

impl EvalReport {
    /// Overall accuracy.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.total, 1.0)
    }

    /// Accuracy for one language (1.0 when it has no sentences).
    pub fn lang_accuracy(&self, lang: Lang) -> f64 {
        self.per_lang
            .iter()
            .find(|entry| entry.lang == lang)
            .map_or(1.0, LangAccuracy::accuracy)
    }

    /// Share of sentences that got a wrong answer.
    pub fn wrong_answer_rate(&self) -> f64 {
        ratio(self.wrong_answers.len(), self.total, 0.0)
    }

    /// A multi-line human summary (for stderr).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let percent = |value: f64| value * 100.0;
        out.push_str(&format!(
            "accuracy: {:.1}% ({}/{})\n",
            percent(self.accuracy()),
            self.correct,
            self.total
        ));
        for entry in &self.per_lang {
            out.push_str(&format!(
                "  {}: {:.1}% ({}/{}), wrong answers {:.1}% ({}), missed handoffs {}\n",
                entry.lang,
                percent(entry.accuracy()),
                entry.correct,
                entry.total,
                percent(entry.wrong_answer_rate()),
                entry.wrong,
                entry.missed_handoffs
            ));
        }
        out.push_str(&format!(
            "wrong answers: {} ({:.1}%)\n",
            self.wrong_answers.len(),
            percent(self.wrong_answer_rate())
        ));
        for line in &self.wrong_answers {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!(
            "missed handoffs: {}\n",
            self.missed_handoffs.len()
        ));
        for line in &self.missed_handoffs {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!("other misses: {}\n", self.misses.len()));
        for line in &self.misses {
            out.push_str(&format!("  {line}\n"));
        }
        if !self.invalid_lines.is_empty() {
            out.push_str(&format!("invalid lines: {}\n", self.invalid_lines.len()));
            for line in &self.invalid_lines {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }
}

impl EvalReport {
    /// The confusions per language, one line each (`expected → predicted: count`),
    /// for `salam rules eval`. Empty when every sentence was right.
    pub fn confusion_summary(&self) -> String {
        let mut out = String::new();
        for lang in Lang::ALL {
            let confusions: Vec<&Confusion> = self
                .confusions
                .iter()
                .filter(|confusion| confusion.lang == lang)
                .collect();
            if confusions.is_empty() {
                continue;
            }
            out.push_str(&format!("confusions ({lang}): expected → predicted\n"));
            for confusion in confusions {
                out.push_str(&format!(
                    "  {} → {}: {}\n",
                    confusion.expected, confusion.predicted, confusion.count
                ));
            }
        }
        out
    }
}

fn ratio(numerator: usize, denominator: usize, empty: f64) -> f64 {
    if denominator == 0 {
        empty
    } else {
        numerator as f64 / denominator as f64
    }
}

const HANDOFF_INTENTS: [&str; 2] = ["human_agent", "complaint"];

/// Triages every sentence of `tsv` with `rules` and scores the result.
pub fn run(rules: &RuleSet, tsv: &str) -> EvalReport {
    let mut report = EvalReport {
        per_lang: Lang::ALL
            .iter()
            .map(|&lang| LangAccuracy {
                lang,
                total: 0,
                correct: 0,
                wrong: 0,
                missed_handoffs: 0,
            })
            .collect(),
        ..EvalReport::default()
    };
    for (line_idx, line) in tsv.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(lang_field), Some(expected), Some(text)) =
            (fields.next(), fields.next(), fields.next())
        else {
            report.invalid_lines.push(format!(
                "line {}: expected lang<TAB>intent<TAB>text",
                line_idx + 1
            ));
            continue;
        };
        let Some(lang) = Lang::parse(lang_field) else {
            report.invalid_lines.push(format!(
                "line {}: unknown language {lang_field:?}",
                line_idx + 1
            ));
            continue;
        };
        let expected = expected.trim();
        let decision = rules.triage(&TriageInput::new(text, Some(lang)));
        let predicted = decision.predicted_intent();
        let output = format!("{lang}\t{expected}\t{predicted}\t{text}");
        let declined = predicted == "none" || predicted == "clarify";
        let correct = predicted == expected || (expected == "none" && declined);
        let wrong = !correct && !declined;
        let missed_handoff = HANDOFF_INTENTS.contains(&expected) && decision.kind() != "handoff";
        report.total += 1;
        if let Some(entry) = report.per_lang.iter_mut().find(|entry| entry.lang == lang) {
            entry.total += 1;
            entry.correct += usize::from(correct);
            entry.wrong += usize::from(wrong);
            entry.missed_handoffs += usize::from(missed_handoff);
        }
        if correct {
            report.correct += 1;
        } else {
            count_confusion(&mut report.confusions, lang, expected, predicted);
        }
        if wrong {
            report.wrong_answers.push(output.clone());
        }
        if missed_handoff {
            report.missed_handoffs.push(output.clone());
        } else if !correct && declined {
            report.misses.push(output.clone());
        }
        report.lines.push(output);
    }
    report.confusions.sort_by(|a, b| {
        (
            a.lang,
            std::cmp::Reverse(a.count),
            &a.expected,
            &a.predicted,
        )
            .cmp(&(
                b.lang,
                std::cmp::Reverse(b.count),
                &b.expected,
                &b.predicted,
            ))
    });
    report
}

fn count_confusion(confusions: &mut Vec<Confusion>, lang: Lang, expected: &str, predicted: &str) {
    match confusions.iter_mut().find(|confusion| {
        confusion.lang == lang && confusion.expected == expected && confusion.predicted == predicted
    }) {
        Some(confusion) => confusion.count += 1,
        None => confusions.push(Confusion {
            lang,
            expected: expected.to_string(),
            predicted: predicted.to_string(),
            count: 1,
        }),
    }
}
