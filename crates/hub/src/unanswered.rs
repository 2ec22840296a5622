//! The bot's unanswered questions, grouped: visitors ask the same thing in many
//! spellings, and a rule author wants one line per thing, most asked first.
//!
//! Two questions belong together when their normalised texts (the bot's own
//! normalisation: case, diacritics, Arabic and Persian letter variants, repeated
//! letters) share most of their character trigrams (Dice coefficient ≥
//! [`SIMILAR`]). Greedy, most frequent first, so each group is named by its most asked
//! question. O(questions × groups), run on the report's few hundred questions at most.

use std::collections::BTreeSet;

/// How alike two questions must be to share a group (Dice coefficient of trigrams).
pub const SIMILAR: f64 = 0.5;

/// One group of unanswered questions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cluster {
    /// The most asked question of the group.
    pub text: String,
    /// Its language as the bot detects it (`en`, `ar`, `fa`), if it tells.
    pub lang: Option<&'static str>,
    /// Times asked, all questions of the group together.
    pub total: u64,
    /// The questions, most asked first, with their counts.
    pub questions: Vec<(String, u64)>,
}

fn trigrams(text: &str) -> BTreeSet<[char; 3]> {
    let padded: Vec<char> = format!(" {} ", salam_bot::normalize(text))
        .chars()
        .collect();
    padded
        .windows(3)
        .map(|window| [window[0], window[1], window[2]])
        .collect()
}

fn dice(left: &BTreeSet<[char; 3]>, right: &BTreeSet<[char; 3]>) -> f64 {
    if left.is_empty() && right.is_empty() {
        return 1.0;
    }
    let shared = left.intersection(right).count();
    2.0 * shared as f64 / (left.len() + right.len()) as f64
}

/// Groups `(question, times asked)` pairs; the biggest group first.
pub fn cluster(questions: &[(String, u64)]) -> Vec<Cluster> {
    let mut sorted: Vec<&(String, u64)> = questions.iter().collect();
    sorted.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(&right.0)));
    let mut groups: Vec<(BTreeSet<[char; 3]>, Cluster)> = Vec::new();
    for (question, count) in sorted {
        let grams = trigrams(question);
        match groups
            .iter_mut()
            .find(|(representative, _)| dice(representative, &grams) >= SIMILAR)
        {
            Some((_, group)) => {
                group.total += count;
                group.questions.push((question.clone(), *count));
            }
            None => groups.push((
                grams,
                Cluster {
                    text: question.clone(),
                    lang: salam_bot::detect_language(question).map(|lang| lang.as_str()),
                    total: *count,
                    questions: vec![(question.clone(), *count)],
                },
            )),
        }
    }
    let mut clusters: Vec<Cluster> = groups.into_iter().map(|(_, group)| group).collect();
    clusters.sort_by(|left, right| {
        right
            .total
            .cmp(&left.total)
            .then(left.text.cmp(&right.text))
    });
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs
            .iter()
            .map(|(text, n)| ((*text).to_owned(), *n))
            .collect()
    }

    #[test]
    fn spellings_of_one_question_group_and_others_stay_apart() {
        let clusters = cluster(&asked(&[
            ("do you sell gift cards?", 3),
            ("Do you sell giftcards", 2),
            ("do u sell gift cards??", 1),
            ("can I pay in instalments", 4),
            ("هل تبيعون بطاقات هدايا؟", 1),
            ("هل تبيعون بطاقات الهدايا", 1),
        ]));
        let view: Vec<(&str, u64, usize)> = clusters
            .iter()
            .map(|c| (c.text.as_str(), c.total, c.questions.len()))
            .collect();
        assert_eq!(
            view,
            vec![
                ("do you sell gift cards?", 6, 3),
                ("can I pay in instalments", 4, 1),
                // Equal counts: the first in text order names the group.
                ("هل تبيعون بطاقات الهدايا", 2, 2),
            ]
        );
        assert_eq!(clusters[2].lang, Some("ar"));
        assert!(cluster(&[]).is_empty());
    }
}
