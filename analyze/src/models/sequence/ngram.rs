//! n-gram frequency vectors with a one-class nearest-neighbour scorer: a trace becomes the
//! TF-IDF vector of its 1- to [`MAX_N`]-grams (term frequency = share of the trace's n-grams
//! of that length, so length neither rewards nor punishes; IDF over the normal traces), unit
//! length; its score is the cosine distance to the nearest normal training trace.
//!
//! This looks at *what* a trace does in bulk rather than at the order of each call: a process
//! that runs normal code paths in an abnormal mix (a brute-force loop, an extra phase) is far
//! from every normal trace even when each window of it is familiar.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::models::rng::hash_seq;

/// Longest n-gram.
pub const MAX_N: usize = 3;

/// The normal traces' vectors, with an inverted index for scoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NgramKnn {
    /// Normal traces fitted on.
    pub traces: usize,
    /// (n-gram hash, IDF) of every n-gram of the normal traces, sorted.
    pub idf: Vec<(u64, f32)>,
    /// IDF of an n-gram no normal trace has.
    pub unseen_idf: f32,
    /// Distinct normal vectors: (n-gram hash, weight), sorted by hash, unit length.
    pub vectors: Vec<Vec<(u64, f32)>>,
}

type Sparse = Vec<(u64, f32)>;

/// Share of each n-gram among the trace's n-grams of its length, sorted by n-gram hash.
fn term_frequencies(t: &[u32]) -> Sparse {
    let mut out: Sparse = Vec::new();
    let mut hashes: Vec<u64> = Vec::with_capacity(t.len());
    for n in 1..=MAX_N {
        if t.len() < n {
            break;
        }
        let count = (t.len() - n + 1) as f32;
        hashes.clear();
        hashes.extend(t.windows(n).map(hash_seq));
        hashes.sort_unstable();
        for run in hashes.chunk_by(|a, b| a == b) {
            // Summed one occurrence at a time, as a running count would.
            let f = run.iter().fold(0f32, |f, _| f + 1.0 / count);
            out.push((run[0], f));
        }
    }
    // n-grams of different lengths hash apart; should two collide, they are one term.
    out.sort_by_key(|e| e.0);
    out.dedup_by(|b, a| {
        let same = a.0 == b.0;
        if same {
            a.1 += b.1;
        }
        same
    });
    out
}

fn unit(mut v: Sparse) -> Sparse {
    let norm = v.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt();
    if norm > 0.0 {
        for e in &mut v {
            e.1 /= norm;
        }
    }
    v
}

impl NgramKnn {
    /// Fits on normal traces (empty ones are ignored).
    pub fn fit<'a>(traces: impl Iterator<Item = &'a [u32]>) -> NgramKnn {
        let tfs: Vec<Sparse> = traces
            .filter(|t| !t.is_empty())
            .map(term_frequencies)
            .collect();
        let mut df: HashMap<u64, u32> = HashMap::new();
        for tf in &tfs {
            for (g, _) in tf {
                *df.entry(*g).or_default() += 1;
            }
        }
        let n = tfs.len() as f32;
        let idf_of = |d: u32| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0;
        let mut idf: Vec<(u64, f32)> = df.into_iter().map(|(g, d)| (g, idf_of(d))).collect();
        idf.sort_unstable_by_key(|e| e.0);
        let mut m = NgramKnn {
            traces: tfs.len(),
            idf,
            unseen_idf: idf_of(0),
            vectors: Vec::new(),
        };
        let mut vectors: Vec<Sparse> = tfs.iter().map(|tf| m.weigh(tf)).collect();
        // Identical normal traces (threads of one program doing the same thing) are one
        // neighbour; sorting makes the file independent of input order.
        vectors.sort_by(|a, b| {
            a.iter()
                .map(|e| (e.0, e.1.to_bits()))
                .cmp(b.iter().map(|e| (e.0, e.1.to_bits())))
        });
        vectors.dedup();
        m.vectors = vectors;
        m
    }

    fn weigh(&self, tf: &[(u64, f32)]) -> Sparse {
        unit(
            tf.iter()
                .map(|&(g, f)| {
                    let idf = self
                        .idf
                        .binary_search_by_key(&g, |e| e.0)
                        .map_or(self.unseen_idf, |i| self.idf[i].1);
                    (g, f * idf)
                })
                .collect(),
        )
    }

    /// An inverted index over the normal vectors: n-gram → (vector, weight).
    pub fn index(&self) -> HashMap<u64, Vec<(u32, f32)>> {
        let mut index: HashMap<u64, Vec<(u32, f32)>> = HashMap::new();
        for (i, v) in self.vectors.iter().enumerate() {
            for &(g, w) in v {
                index.entry(g).or_default().push((i as u32, w));
            }
        }
        index
    }

    /// Cosine distance from `t` to its nearest normal trace, in `[0, 1]` (1 when the model
    /// has no normal trace or `t` is empty).
    pub fn score(&self, t: &[u32], index: &HashMap<u64, Vec<(u32, f32)>>) -> f64 {
        if t.is_empty() || self.vectors.is_empty() {
            return 1.0;
        }
        let v = self.weigh(&term_frequencies(t));
        let mut dots = vec![0f32; self.vectors.len()];
        for (g, w) in v {
            for &(i, x) in index.get(&g).map_or(&[][..], Vec::as_slice) {
                dots[i as usize] += w * x;
            }
        }
        let best = dots.iter().copied().fold(0f32, f32::max);
        f64::from((1.0 - best).clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_mix_is_near_and_a_new_mix_is_far() {
        let a: Vec<u32> = (0..300).map(|i| [3, 5, 7, 9][i % 4]).collect();
        let b: Vec<u32> = (0..300).map(|i| [1, 2, 3][i % 3]).collect();
        let m = NgramKnn::fit([a.as_slice(), b.as_slice(), a.as_slice()].into_iter());
        assert_eq!(
            (m.traces, m.vectors.len()),
            (3, 2),
            "duplicates are one neighbour"
        );
        let idx = m.index();
        // The same behaviour, shorter: length alone does not move it.
        assert!(
            m.score(&a[..120], &idx) < 0.01,
            "{}",
            m.score(&a[..120], &idx)
        );
        assert!(m.score(&b[..31], &idx) < 0.05);
        // Familiar calls in an order no normal trace has.
        let mixed: Vec<u32> = (0..300).map(|i| [3, 1, 9, 2, 7][i % 5]).collect();
        assert!(m.score(&mixed, &idx) > 0.5, "{}", m.score(&mixed, &idx));
        // A normal trace with a foreign burst is farther than the normal trace, nearer than
        // a foreign one.
        let mut burst = a[..120].to_vec();
        burst.splice(60..60, [40, 41, 42, 40, 41, 42]);
        let s = m.score(&burst, &idx);
        assert!(
            s > 0.002 && s > 10.0 * m.score(&a[..126], &idx) && s < m.score(&mixed, &idx),
            "{s}"
        );
        assert_eq!(m.score(&[], &idx), 1.0);
    }
}
