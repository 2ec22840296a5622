//! The second stage: when no rule reaches the threshold, the message is compared with
//! the pack's own examples.
//!
//! Every example (and counter-example) of every rule is normalised once, when the pack
//! is compiled, into a vector of character trigrams of its words (each word padded with
//! a space on both sides, so `order` gives ` or`, `ord`, `rde`, `der`, `er `), weighted
//! by TF-IDF over all examples so that trigrams every sentence has (` th`, `the`) count
//! little. The vectors go into an inverted index: trigram → (example, weight).
//! Similarity is the cosine of the message's vector and an example's.
//!
//! Character trigrams are robust to the typos, missing spaces and dialect spellings that
//! defeat whole-word patterns (`retrn polcy` shares ` po`, `pol`, `cy ` … with `return
//! policy`), while staying explainable: the decision names the rule whose example was
//! closest, and its score is that similarity.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::Lang;

/// A trigram of characters, packed (21 bits per char).
type Gram = u64;

/// Hashes a [`Gram`] with one multiply: the keys are already well-mixed integers, and
/// SipHash cost more than the rest of a lookup.
#[derive(Debug, Default)]
struct GramHasher(u64);

impl Hasher for GramHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type GramMap<V> = HashMap<Gram, V, BuildHasherDefault<GramHasher>>;

/// One example in the index.
#[derive(Debug)]
struct Entry {
    rule: u32,
    lang: Lang,
    counter: bool,
    /// Normalised text, to leave an example out when it is itself being checked.
    text: Box<str>,
    /// Euclidean norm of the TF-IDF vector.
    norm: f32,
}

/// The examples of a pack, indexed.
#[derive(Debug, Default)]
pub(crate) struct Similar {
    entries: Vec<Entry>,
    postings: GramMap<Posting>,
}

#[derive(Debug, Default)]
struct Posting {
    idf: f32,
    /// (entry, term frequency × idf)
    entries: Vec<(u32, f32)>,
}

/// The closest example of one rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Nearest {
    pub(crate) rule: usize,
    pub(crate) similarity: f32,
}

/// Examples to index, then [`SimilarBuilder::build`].
#[derive(Debug, Default)]
pub(crate) struct SimilarBuilder {
    examples: Vec<(u32, Lang, bool, String)>,
}

impl SimilarBuilder {
    /// Adds one example (`counter`: a counter-example) of rule `rule`, normalised.
    pub(crate) fn add(&mut self, rule: usize, lang: Lang, counter: bool, normalised: String) {
        if !normalised.is_empty() {
            self.examples.push((rule as u32, lang, counter, normalised));
        }
    }

    pub(crate) fn build(self) -> Similar {
        let n_docs = self.examples.len().max(1) as f32;
        let mut counts: Vec<Vec<(Gram, f32)>> = Vec::with_capacity(self.examples.len());
        let mut document_frequency: GramMap<u32> = GramMap::default();
        for (_, _, _, text) in &self.examples {
            let grams = gram_counts(text);
            for (gram, _) in &grams {
                *document_frequency.entry(*gram).or_insert(0) += 1;
            }
            counts.push(grams);
        }
        let mut similar = Similar::default();
        for (gram, frequency) in &document_frequency {
            similar.postings.insert(
                *gram,
                Posting {
                    idf: idf(n_docs, *frequency as f32),
                    entries: Vec::new(),
                },
            );
        }
        for (entry_idx, ((rule, lang, counter, text), grams)) in
            self.examples.into_iter().zip(counts).enumerate()
        {
            let mut squares = 0.0f32;
            for (gram, count) in grams {
                let Some(posting) = similar.postings.get_mut(&gram) else {
                    continue;
                };
                let weight = count * posting.idf;
                squares += weight * weight;
                posting.entries.push((entry_idx as u32, weight));
            }
            similar.entries.push(Entry {
                rule,
                lang,
                counter,
                text: text.into_boxed_str(),
                norm: squares.sqrt(),
            });
        }
        similar
    }
}

fn idf(n_docs: f32, frequency: f32) -> f32 {
    (1.0 + n_docs / frequency).ln()
}

impl Similar {
    /// For each rule with an example in `lang` (or in `other`, the other language of the
    /// same script, counting `other_weight` times), the similarity of its closest
    /// example to `normalised`, best first. A rule whose closest counter-example is at
    /// least as close as its closest example is left out. With `leave_out`, examples
    /// whose text equals `normalised` are ignored (for checking the examples themselves).
    pub(crate) fn nearest(
        &self,
        normalised: &str,
        lang: Lang,
        other: Option<(Lang, f32)>,
        leave_out: bool,
    ) -> Vec<Nearest> {
        if self.entries.is_empty() || normalised.is_empty() {
            return Vec::new();
        }
        let grams = gram_counts(normalised);
        // Trigrams no example has still make the message less like every example.
        let unseen_idf = idf(self.entries.len() as f32, 1.0);
        let mut query_squares = 0.0f32;
        // One slot per example: a few hundred floats, cheaper than a map.
        let mut dots = vec![0.0f32; self.entries.len()];
        for (gram, count) in &grams {
            match self.postings.get(gram) {
                Some(posting) => {
                    let weight = count * posting.idf;
                    query_squares += weight * weight;
                    for &(entry, entry_weight) in &posting.entries {
                        dots[entry as usize] += weight * entry_weight;
                    }
                }
                None => {
                    let weight = count * unseen_idf;
                    query_squares += weight * weight;
                }
            }
        }
        let query_norm = query_squares.sqrt();
        if query_norm == 0.0 {
            return Vec::new();
        }
        // rule → (best example, best counter-example)
        let mut by_rule: Vec<(u32, f32, f32)> = Vec::new();
        for (entry, dot) in self.entries.iter().zip(dots) {
            if dot <= 0.0 {
                continue;
            }
            let factor = if entry.lang == lang {
                1.0
            } else {
                match other {
                    Some((other_lang, weight)) if other_lang == entry.lang => weight,
                    _ => continue,
                }
            };
            if leave_out && &*entry.text == normalised {
                continue;
            }
            let similarity = factor * dot / (query_norm * entry.norm);
            let slot = match by_rule.iter().position(|(rule, _, _)| *rule == entry.rule) {
                Some(idx) => idx,
                None => {
                    by_rule.push((entry.rule, 0.0, 0.0));
                    by_rule.len() - 1
                }
            };
            let (_, best, best_counter) = &mut by_rule[slot];
            if entry.counter {
                *best_counter = best_counter.max(similarity);
            } else {
                *best = best.max(similarity);
            }
        }
        let mut nearest: Vec<Nearest> = by_rule
            .into_iter()
            .filter(|&(_, best, best_counter)| best > 0.0 && best > best_counter)
            .map(|(rule, similarity, _)| Nearest {
                rule: rule as usize,
                similarity,
            })
            .collect();
        nearest.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.rule.cmp(&b.rule))
        });
        nearest
    }
}

/// Character-trigram counts of a normalised text, each word padded with spaces, sorted
/// by trigram.
pub(crate) fn gram_counts(normalised: &str) -> Vec<(Gram, f32)> {
    let mut grams: Vec<Gram> = Vec::with_capacity(normalised.len() + 8);
    for word in normalised.split(' ').filter(|word| !word.is_empty()) {
        let mut window: [u32; 3] = [' ' as u32, ' ' as u32, ' ' as u32];
        let mut n_seen = 0usize;
        for ch in word.chars().chain(std::iter::once(' ')) {
            window = [window[1], window[2], ch as u32];
            n_seen += 1;
            // The first window is padding and one letter: not a trigram of the word.
            if n_seen >= 2 {
                grams.push(
                    (u64::from(window[0]) << 42)
                        | (u64::from(window[1]) << 21)
                        | u64::from(window[2]),
                );
            }
        }
    }
    grams.sort_unstable();
    let mut counts: Vec<(Gram, f32)> = Vec::with_capacity(grams.len());
    for gram in grams {
        match counts.last_mut() {
            Some((last, count)) if *last == gram => *count += 1.0,
            _ => counts.push((gram, 1.0)),
        }
    }
    counts
}

/// Dice coefficient of the trigram sets of two [`gram_counts`]: 1 for the same
/// trigrams, 0 for none in common.
pub(crate) fn dice(a: &[(Gram, f32)], b: &[(Gram, f32)]) -> f32 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    2.0 * shared as f32 / (a.len() + b.len()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(examples: &[(usize, &str)]) -> Similar {
        let mut builder = SimilarBuilder::default();
        for (rule, text) in examples {
            builder.add(*rule, Lang::En, false, crate::normalize(text));
        }
        builder.build()
    }

    #[test]
    fn trigrams_of_padded_words() {
        let grams = gram_counts("ab");
        // ` ab`, `ab `
        assert_eq!(grams.len(), 2, "{grams:?}");
        let grams = gram_counts("order");
        assert_eq!(grams.len(), 5);
    }

    #[test]
    fn closest_examples_first() {
        let similar = index(&[
            (0, "what is your return policy"),
            (0, "can I send it back"),
            (1, "where is my order"),
        ]);
        let nearest = similar.nearest("retrn polcy", Lang::En, None, false);
        assert_eq!(nearest[0].rule, 0, "{nearest:?}");
        let nearest = similar.nearest("wheres my oder", Lang::En, None, false);
        assert_eq!(nearest[0].rule, 1, "{nearest:?}");
        assert!(nearest[0].similarity > 0.3, "{nearest:?}");
        // Identical text: similarity 1; left out when asked.
        let exact = similar.nearest("where is my order", Lang::En, None, false);
        assert!((exact[0].similarity - 1.0).abs() < 1e-4, "{exact:?}");
        let left_out = similar.nearest("where is my order", Lang::En, None, true);
        assert!(
            left_out
                .iter()
                .all(|nearest| nearest.rule != 1 || nearest.similarity < 0.99)
        );
        // Another language: nothing.
        assert!(
            similar
                .nearest("where is my order", Lang::Ar, None, false)
                .is_empty()
        );
    }

    #[test]
    fn counter_examples_veto_their_rule() {
        let mut builder = SimilarBuilder::default();
        builder.add(0, Lang::En, false, crate::normalize("how long is delivery"));
        builder.add(0, Lang::En, true, crate::normalize("how much is delivery"));
        let similar = builder.build();
        assert!(
            similar
                .nearest("how much is delivery?", Lang::En, None, false)
                .is_empty()
        );
        assert!(
            !similar
                .nearest("how long is the delivery", Lang::En, None, false)
                .is_empty()
        );
    }
}
