//! The sequence language model: a variable-order Markov model over syscalls with interpolated
//! Kneser–Ney smoothing (Chen & Goodman 1998). `P(call | up to k preceding calls)` blends the
//! discounted counts of every context length down to a uniform floor, so an unseen long context
//! falls back on shorter ones instead of scoring as impossible, and lower orders count how many
//! distinct contexts a call follows (its continuation count) rather than how often it occurs.
//!
//! The order is not a constant: counts are kept up to [`MAX_ORDER`] and training picks the
//! order with the best likelihood of held-out *normal* traces ([`Markov::log_loss`]), a
//! criterion that needs no attack labels, then drops the longer n-grams.
//!
//! Context hashes are built from the most recent call backwards, so the hash of every context
//! length at one position costs one mix each.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::lookup::Lookup;
use crate::models::rng::mix;

/// Longest context kept while fitting (the order is chosen at most this).
pub const MAX_ORDER: usize = 8;

const CTX_SEED: u64 = 0x6a09_e667_f3bc_c908;
const GRAM_TAG: u64 = 0xbb67_ae85_84ca_a73b;

/// Hashes of the contexts of length 0..=k ending before `t[i]` (most recent call first).
fn context_hashes(t: &[u32], i: usize, k: usize, out: &mut Vec<u64>) {
    out.clear();
    let mut h = CTX_SEED;
    out.push(h);
    for j in 1..=k.min(i) {
        h = mix(h ^ u64::from(t[i - j]).wrapping_add(0x9E37_79B9));
        out.push(h);
    }
}

fn gram_hash(ctx: u64, call: u32) -> u64 {
    mix(ctx ^ GRAM_TAG ^ (u64::from(call) << 17))
}

/// Counts of one n-gram (context + call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Gram {
    /// Occurrences.
    pub count: u32,
    /// Distinct calls seen just before it (its continuation count).
    pub cont: u32,
}

/// Counts of one context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Occurrences followed by a call.
    pub count: u32,
    /// Distinct calls that followed it.
    pub types: u32,
    /// Sum of the continuation counts of its n-grams.
    pub cont: u32,
    /// Distinct calls with a non-zero continuation count after it.
    pub cont_types: u32,
}

/// The fitted model (tables sorted by hash, so the serialized bytes are reproducible).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Markov {
    /// Context length used.
    pub order: usize,
    /// Distinct syscall numbers seen in training.
    pub vocabulary: u32,
    /// Calls seen in training.
    pub total: u64,
    /// Discount of raw counts per context length (the highest order's distribution).
    pub discount: Vec<f64>,
    /// Discount of continuation counts per context length (the lower orders).
    pub discount_cont: Vec<f64>,
    /// (hash, counts) of every n-gram with a context of 0..=order calls.
    pub grams: Vec<(u64, Gram)>,
    /// (hash, counts) of every context of 0..=order calls.
    pub contexts: Vec<(u64, Context)>,
    /// Context length per gram and context entry, kept only while fitting.
    #[serde(skip)]
    levels: Option<(Vec<u8>, Vec<u8>)>,
    /// Constant-time indexes over `grams` and `contexts`, built on first use.
    #[serde(skip)]
    index: (Lookup, Lookup),
}

/// Kneser–Ney's discount from the counts of counts: `n1 / (n1 + 2 n2)`, kept in (0, 1).
fn discount(n1: u64, n2: u64) -> f64 {
    if n1 == 0 {
        return 0.5;
    }
    (n1 as f64 / (n1 as f64 + 2.0 * n2 as f64)).clamp(0.05, 0.95)
}

impl Markov {
    /// Counts every n-gram of `traces` up to [`MAX_ORDER`] calls of context.
    pub fn fit<'a>(traces: impl Iterator<Item = &'a [u32]>) -> Markov {
        use std::collections::hash_map::Entry;
        let mut grams: HashMap<u64, (Gram, u8)> = HashMap::new();
        let mut ctx: HashMap<u64, (Context, u8)> = HashMap::new();
        let mut total = 0u64;
        let mut hs = Vec::with_capacity(MAX_ORDER + 1);
        for t in traces {
            total += t.len() as u64;
            for i in 0..t.len() {
                context_hashes(t, i, MAX_ORDER, &mut hs);
                let mut longer_new = false;
                // Longest context first: whether the n-gram one call longer was new decides
                // whether this one gained a distinct left neighbour.
                for k in (0..hs.len()).rev() {
                    let g = gram_hash(hs[k], t[i]);
                    let new = match grams.entry(g) {
                        Entry::Occupied(mut e) => {
                            e.get_mut().0.count = e.get().0.count.saturating_add(1);
                            false
                        }
                        Entry::Vacant(e) => {
                            e.insert((Gram { count: 1, cont: 0 }, k as u8));
                            true
                        }
                    };
                    let c = &mut ctx.entry(hs[k]).or_insert((Context::default(), k as u8)).0;
                    c.count = c.count.saturating_add(1);
                    c.types += u32::from(new);
                    if longer_new {
                        let gram = &mut grams.get_mut(&g).expect("inserted above").0;
                        gram.cont += 1;
                        let c = &mut ctx.get_mut(&hs[k]).expect("inserted above").0;
                        c.cont += 1;
                        c.cont_types += u32::from(gram.cont == 1);
                    }
                    longer_new = new;
                }
            }
        }
        let mut g: Vec<(u64, (Gram, u8))> = grams.into_iter().collect();
        g.sort_unstable_by_key(|e| e.0);
        let mut c: Vec<(u64, (Context, u8))> = ctx.into_iter().collect();
        c.sort_unstable_by_key(|e| e.0);
        let vocabulary = g.iter().filter(|e| e.1.1 == 0).count() as u32;
        let mut m = Markov {
            order: MAX_ORDER,
            vocabulary,
            total,
            discount: Vec::new(),
            discount_cont: Vec::new(),
            grams: g.iter().map(|e| (e.0, e.1.0)).collect(),
            contexts: c.iter().map(|e| (e.0, e.1.0)).collect(),
            levels: Some((
                g.iter().map(|e| e.1.1).collect(),
                c.iter().map(|e| e.1.1).collect(),
            )),
            index: Default::default(),
        };
        m.set_discounts();
        m
    }

    fn set_discounts(&mut self) {
        let levels = self.levels.as_ref().map(|l| l.0.as_slice());
        let mut n = vec![[0u64; 4]; self.order + 1];
        for (i, (_, g)) in self.grams.iter().enumerate() {
            let k = levels.map_or(0, |l| usize::from(l[i]));
            if k > self.order {
                continue;
            }
            for (slot, v) in [(0, g.count), (2, g.cont)] {
                if v == 1 || v == 2 {
                    n[k][slot + v as usize - 1] += 1;
                }
            }
        }
        self.discount = n.iter().map(|c| discount(c[0], c[1])).collect();
        self.discount_cont = n.iter().map(|c| discount(c[2], c[3])).collect();
    }

    /// Keeps contexts of at most `order` calls (and drops the fitting-only levels).
    pub fn truncate(&mut self, order: usize) {
        let order = order.min(self.order);
        if let Some((gl, cl)) = self.levels.take() {
            let mut i = 0;
            self.grams.retain(|_| {
                i += 1;
                usize::from(gl[i - 1]) <= order
            });
            let mut i = 0;
            self.contexts.retain(|_| {
                i += 1;
                usize::from(cl[i - 1]) <= order
            });
        }
        self.order = order;
        self.index = Default::default();
        self.discount.truncate(order + 1);
        self.discount_cont.truncate(order + 1);
    }

    /// `P(t[i] | up to `order` preceding calls)` with contexts of at most `order` calls.
    fn probability_at(&self, t: &[u32], i: usize, order: usize, hs: &mut Vec<u64>) -> f64 {
        context_hashes(t, i, order.min(self.order), hs);
        let mut p = 1.0 / (f64::from(self.vocabulary) + 1.0);
        let top = hs.len() - 1;
        for (k, &h) in hs.iter().enumerate() {
            let Some(c) = self.index.1.get(&self.contexts, h) else {
                break; // no longer context was seen either
            };
            let g = self
                .index
                .0
                .get(&self.grams, gram_hash(h, t[i]))
                .unwrap_or_default();
            // The highest order uses raw counts; lower ones continuation counts, unless the
            // longer context never occurred with a left neighbour (trace starts).
            let (num, den, types, d) = if k == top || c.cont == 0 {
                (g.count, c.count, c.types, self.discount[k])
            } else {
                (g.cont, c.cont, c.cont_types, self.discount_cont[k])
            };
            if den == 0 {
                break;
            }
            let den = f64::from(den);
            p = (f64::from(num) - d).max(0.0) / den + d * f64::from(types) / den * p;
        }
        p
    }

    /// `P(t[i] | up to `order` preceding calls)`.
    pub fn probability(&self, t: &[u32], i: usize) -> f64 {
        self.probability_at(t, i, self.order, &mut Vec::with_capacity(self.order + 1))
    }

    /// Surprisal of every call of `t`, bits.
    pub fn surprisals(&self, t: &[u32]) -> Vec<f64> {
        let mut hs = Vec::with_capacity(self.order + 1);
        (0..t.len())
            .map(|i| -self.probability_at(t, i, self.order, &mut hs).log2())
            .collect()
    }

    /// Total surprisal (bits) of `traces` and their call count for each order `0..=order`:
    /// the held-out criterion that picks the order.
    pub fn log_loss<'a>(&self, traces: impl Iterator<Item = &'a [u32]>) -> (Vec<f64>, u64) {
        let mut bits = vec![0.0; self.order + 1];
        let mut calls = 0;
        let mut hs = Vec::with_capacity(self.order + 1);
        for t in traces {
            calls += t.len() as u64;
            for i in 0..t.len() {
                for (o, b) in bits.iter_mut().enumerate() {
                    *b -= self.probability_at(t, i, o, &mut hs).log2();
                }
            }
        }
        (bits, calls)
    }

    /// Uses contexts of at most `order` calls from now on (the discounts of each context
    /// length do not depend on the order) and drops the longer n-grams.
    pub fn set_order(&mut self, order: usize) {
        self.truncate(order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(n: usize) -> Vec<u32> {
        (0..n).map(|i| [3, 5, 7, 9, 3, 5, 11][i % 7]).collect()
    }

    #[test]
    fn probabilities_are_smoothed_and_sum_to_one() {
        let normal = cycle(400);
        let m = Markov::fit(std::iter::once(normal.as_slice()));
        assert_eq!(m.vocabulary, 5);
        for order in [0, 1, 3, 6] {
            let mut t = normal[..20].to_vec();
            let mut total = 0.0;
            // Every seen call plus unseen ones: the unseen share is one symbol's worth.
            for sym in [3, 5, 7, 9, 11, 99] {
                *t.last_mut().unwrap() = sym;
                total += m.probability_at(&t, 19, order, &mut Vec::new());
            }
            assert!((total - 1.0).abs() < 1e-9, "order {order}: {total}");
        }
        assert!(m.probability(&normal, 10) > 0.9);
    }

    #[test]
    fn held_out_loss_prefers_the_order_the_data_has() {
        // Each call depends on the two before it: order 2 explains held-out data, order 0
        // does not, and longer contexts add nothing.
        let mut rng = crate::models::rng::SplitMix64::new(5);
        let draw = |rng: &mut crate::models::rng::SplitMix64| {
            let mut t = vec![1u32, 2];
            for _ in 0..3000 {
                let (a, b) = (t[t.len() - 2], t[t.len() - 1]);
                let next = if rng.below(10) == 0 {
                    rng.below(6) as u32
                } else {
                    (a * 3 + b) % 6
                };
                t.push(next);
            }
            t
        };
        let train = draw(&mut rng);
        let held = draw(&mut rng);
        let m = Markov::fit(std::iter::once(train.as_slice()));
        let (bits, calls) = m.log_loss(std::iter::once(held.as_slice()));
        assert_eq!(calls, held.len() as u64);
        let best = (0..bits.len())
            .min_by(|&a, &b| bits[a].total_cmp(&bits[b]))
            .unwrap();
        assert!(bits[0] > 1.5 * bits[2], "{bits:?}");
        assert!((2..=4).contains(&best), "{bits:?}");
    }

    #[test]
    fn foreign_calls_are_surprising_and_truncation_keeps_scores() {
        let normal = cycle(400);
        let mut m = Markov::fit(std::iter::once(normal.as_slice()));
        m.set_order(3);
        let mut attack = normal[..100].to_vec();
        attack.splice(50..50, [9, 9, 3, 11, 7, 7, 5]);
        let s = m.surprisals(&attack);
        let normal_max = m
            .surprisals(&normal[..100])
            .iter()
            .skip(4)
            .fold(0.0f64, |a, &b| a.max(b));
        assert!(s[50..58].iter().any(|&b| b > 4.0 + normal_max), "{s:?}");
        let bytes = serde_json::to_vec(&m).unwrap();
        let back: Markov = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.surprisals(&attack), s);
        assert!(back.grams.len() < Markov::fit(std::iter::once(normal.as_slice())).grams.len());
    }
}
