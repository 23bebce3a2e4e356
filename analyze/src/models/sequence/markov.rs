//! The stronger sequence model: a variable-order Markov model (contexts of up to [`ORDER`]
//! syscalls) with Witten–Bell interpolation, so that an unseen long context falls back on
//! shorter ones instead of scoring as impossible. A trace's score is the highest mean
//! surprisal (`−log2 P(call | context)`, bits) over any [`WINDOW`] consecutive calls: a few
//! foreign calls inserted into a long normal trace stand out against its smooth background,
//! and one odd call in an otherwise normal stretch (benign noise) does not.

use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::models::rng::hash_seq;

/// Longest context.
pub const ORDER: usize = 4;
/// Calls averaged in the scoring window.
pub const WINDOW: usize = 8;

/// Counts of n-grams and contexts from normal traces (sorted by hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Markov {
    /// Longest context.
    pub order: usize,
    /// Scoring window.
    pub window: usize,
    /// Calls seen in training.
    pub total: u64,
    /// Distinct syscall numbers seen in training.
    pub vocabulary: u32,
    /// (hash of context + call, count) for contexts of length 0..=order.
    pub grams: Vec<(u64, u32)>,
    /// (hash of context, occurrences as a context, distinct successors), lengths 1..=order.
    pub contexts: Vec<(u64, u32, u32)>,
}

/// One scored call: where, its context and surprisal.
#[derive(Clone, Debug, PartialEq)]
pub struct Surprise {
    /// Index of the call in the trace.
    pub at: usize,
    /// Surprisal in bits.
    pub bits: f64,
}

impl Markov {
    /// Counts every n-gram of the normal traces.
    pub fn fit<'a>(traces: impl Iterator<Item = &'a [u32]>) -> Markov {
        use std::collections::hash_map::Entry;
        let mut grams: HashMap<u64, u32> = HashMap::new();
        // context hash → (occurrences as a context, distinct successors)
        let mut ctx: HashMap<u64, (u32, u32)> = HashMap::new();
        let mut total = 0u64;
        let mut vocabulary = 0u32;
        for t in traces {
            total += t.len() as u64;
            for i in 0..t.len() {
                for k in 0..=ORDER.min(i) {
                    let new = match grams.entry(hash_seq(&t[i - k..=i])) {
                        Entry::Occupied(mut e) => {
                            *e.get_mut() = e.get().saturating_add(1);
                            false
                        }
                        Entry::Vacant(e) => {
                            e.insert(1);
                            true
                        }
                    };
                    if k == 0 {
                        vocabulary += u32::from(new);
                    } else {
                        let c = ctx.entry(hash_seq(&t[i - k..i])).or_default();
                        c.0 = c.0.saturating_add(1);
                        c.1 += u32::from(new);
                    }
                }
            }
        }
        let mut grams: Vec<(u64, u32)> = grams.into_iter().collect();
        grams.sort_unstable();
        let mut contexts: Vec<(u64, u32, u32)> =
            ctx.into_iter().map(|(h, (c, d))| (h, c, d)).collect();
        contexts.sort_unstable();
        Markov {
            order: ORDER,
            window: WINDOW,
            total,
            vocabulary,
            grams,
            contexts,
        }
    }

    /// Training count of the n-gram `s` (0 when never seen).
    pub fn count(&self, s: &[u32]) -> u32 {
        let h = hash_seq(s);
        self.grams
            .binary_search_by_key(&h, |g| g.0)
            .map(|i| self.grams[i].1)
            .unwrap_or(0)
    }

    fn context(&self, s: &[u32]) -> (u32, u32) {
        let h = hash_seq(s);
        self.contexts
            .binary_search_by_key(&h, |c| c.0)
            .map(|i| (self.contexts[i].1, self.contexts[i].2))
            .unwrap_or((0, 0))
    }

    /// `P(t[i] | up to `order` preceding calls)`, Witten–Bell interpolated down to an add-one
    /// unigram over the vocabulary plus one unseen symbol.
    pub fn probability(&self, t: &[u32], i: usize) -> f64 {
        let mut p = (f64::from(self.count(&t[i..=i])) + 1.0)
            / (self.total as f64 + f64::from(self.vocabulary) + 1.0);
        for k in 1..=self.order.min(i) {
            let (c_h, t_h) = self.context(&t[i - k..i]);
            if c_h == 0 {
                break; // no longer context was seen either
            }
            let c_hw = f64::from(self.count(&t[i - k..=i]));
            p = (c_hw + f64::from(t_h) * p) / (f64::from(c_h) + f64::from(t_h));
        }
        p
    }

    /// Surprisal of every call of `t`, bits.
    pub fn surprisals(&self, t: &[u32]) -> Vec<f64> {
        (0..t.len())
            .map(|i| -self.probability(t, i).max(1e-300).log2())
            .collect()
    }

    /// The highest mean surprisal over any window of the trace, and where that window starts.
    pub fn score_with_window(&self, t: &[u32]) -> (f64, usize) {
        let s = self.surprisals(t);
        if s.is_empty() {
            return (0.0, 0);
        }
        let w = self.window.clamp(1, s.len());
        let mut sum: f64 = s[..w].iter().sum();
        let (mut best, mut at) = (sum, 0);
        for i in w..s.len() {
            sum += s[i] - s[i - w];
            if sum > best {
                best = sum;
                at = i + 1 - w;
            }
        }
        (best / w as f64, at)
    }

    /// The trace's score (see the module documentation).
    pub fn score(&self, t: &[u32]) -> f64 {
        self.score_with_window(t).0
    }

    /// The most surprising calls of the highest-scoring window, most surprising first.
    pub fn rarest(&self, t: &[u32], n: usize) -> Vec<Surprise> {
        let (_, at) = self.score_with_window(t);
        let end = (at + self.window).min(t.len());
        let mut v: Vec<Surprise> = (at..end)
            .map(|i| Surprise {
                at: i,
                bits: -self.probability(t, i).max(1e-300).log2(),
            })
            .collect();
        v.sort_by(|a, b| b.bits.total_cmp(&a.bits).then(a.at.cmp(&b.at)));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_smoothed_and_sum_to_about_one() {
        let normal: Vec<u32> = (0..400).map(|i| [3, 5, 7, 9, 3, 5, 11][i % 7]).collect();
        let m = Markov::fit(std::iter::once(normal.as_slice()));
        assert_eq!(m.vocabulary, 5);
        let mut t = normal[..20].to_vec();
        let mut total = 0.0;
        for sym in [3, 5, 7, 9, 11, 99] {
            *t.last_mut().unwrap() = sym;
            total += m.probability(&t, 19);
        }
        assert!(total > 0.95 && total <= 1.0 + 1e-9, "{total}");
        assert!(m.probability(&normal, 10) > 0.9);
    }

    #[test]
    fn inserted_foreign_calls_score_higher() {
        let normal: Vec<u32> = (0..400).map(|i| [3, 5, 7, 9, 3, 5, 11][i % 7]).collect();
        let m = Markov::fit(std::iter::once(normal.as_slice()));
        let mut attack = normal[..100].to_vec();
        attack.splice(50..50, [9, 9, 3, 11, 7, 7, 5]);
        assert!(
            m.score(&attack) > 3.0 * m.score(&normal[..100]).max(0.1),
            "{} vs {}",
            m.score(&attack),
            m.score(&normal[..100])
        );
        let rare = m.rarest(&attack, 3);
        assert!(rare.iter().all(|r| (50..58).contains(&r.at)), "{rare:?}");
        assert_eq!(m.score(&[]), 0.0);
    }
}
