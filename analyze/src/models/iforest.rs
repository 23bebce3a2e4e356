//! Isolation forest (Liu, Ting, Zhou 2008), small and seeded.
//!
//! Each tree is grown on a random subsample (without replacement) by splitting a random
//! feature at a uniform random value between its min and max in the node, until a node holds
//! one sample or the depth limit `ceil(log2(subsample))` is reached. Anomalies are isolated
//! near the root: the score is `2^(−E[h(x)] / c(ψ))`, where `h` is the path length (plus
//! `c(size)` for the samples left in a leaf) and `c(n)` the average path length of an
//! unsuccessful binary-search-tree lookup among `n` keys. Scores are in (0, 1], ≈ 0.5 for
//! ordinary points, near 1 for isolated ones.

use serde::{Deserialize, Serialize};

use super::rng::SplitMix64;

/// A node of a tree, stored in a flat vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// `x[feature] < value` goes to `left`, else `right` (indices into the tree).
    Split {
        /// Feature index.
        feature: u32,
        /// Split value.
        value: f64,
        /// Left child.
        left: u32,
        /// Right child.
        right: u32,
    },
    /// Samples that reached this leaf during training.
    Leaf {
        /// How many.
        size: u32,
    },
}

/// A trained forest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    /// Subsample size ψ each tree was grown on.
    pub subsample: usize,
    /// The trees.
    pub trees: Vec<Vec<Node>>,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` keys.
pub fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

fn grow(
    x: &[Vec<f64>],
    idx: &mut [usize],
    depth: usize,
    limit: usize,
    rng: &mut SplitMix64,
    tree: &mut Vec<Node>,
) -> u32 {
    let me = tree.len() as u32;
    if depth >= limit || idx.len() <= 1 {
        tree.push(Node::Leaf {
            size: idx.len() as u32,
        });
        return me;
    }
    let d = x[idx[0]].len();
    // Features that still vary in this node; a node of identical points is a leaf.
    let varying: Vec<(usize, f64, f64)> = (0..d)
        .filter_map(|f| {
            let (lo, hi) = idx
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
                    (lo.min(x[i][f]), hi.max(x[i][f]))
                });
            (hi > lo).then_some((f, lo, hi))
        })
        .collect();
    if varying.is_empty() {
        tree.push(Node::Leaf {
            size: idx.len() as u32,
        });
        return me;
    }
    let (feature, lo, hi) = varying[rng.below(varying.len())];
    let value = lo + rng.next_f64() * (hi - lo);
    let value = if value <= lo { (lo + hi) / 2.0 } else { value };
    tree.push(Node::Leaf { size: 0 }); // placeholder, replaced below
    let mut split = 0;
    for k in 0..idx.len() {
        if x[idx[k]][feature] < value {
            idx.swap(k, split);
            split += 1;
        }
    }
    let (l, r) = idx.split_at_mut(split);
    let left = grow(x, l, depth + 1, limit, rng, tree);
    let right = grow(x, r, depth + 1, limit, rng, tree);
    tree[me as usize] = Node::Split {
        feature: feature as u32,
        value,
        left,
        right,
    };
    me
}

impl IsolationForest {
    /// Grows `trees` trees on subsamples of at most `subsample` rows of `x`.
    pub fn fit(x: &[Vec<f64>], trees: usize, subsample: usize, seed: u64) -> IsolationForest {
        let mut rng = SplitMix64::new(seed);
        let psi = subsample.min(x.len()).max(1);
        let limit = (psi as f64).log2().ceil().max(1.0) as usize;
        let mut forest = Vec::with_capacity(trees);
        if x.is_empty() {
            return IsolationForest {
                subsample: psi,
                trees: forest,
            };
        }
        for _ in 0..trees {
            // Partial Fisher–Yates: the first psi entries are a uniform sample without replacement.
            let mut all: Vec<usize> = (0..x.len()).collect();
            for k in 0..psi {
                let j = k + rng.below(all.len() - k);
                all.swap(k, j);
            }
            let mut tree = Vec::new();
            grow(x, &mut all[..psi], 0, limit, &mut rng, &mut tree);
            forest.push(tree);
        }
        IsolationForest {
            subsample: psi,
            trees: forest,
        }
    }

    fn path_length(tree: &[Node], x: &[f64]) -> f64 {
        let mut at = 0usize;
        let mut depth = 0.0;
        // Bounded by the tree size even if a corrupt file made a cycle.
        for _ in 0..=tree.len() {
            match tree.get(at) {
                Some(Node::Split {
                    feature,
                    value,
                    left,
                    right,
                }) => {
                    let v = x.get(*feature as usize).copied().unwrap_or(0.0);
                    at = if v < *value {
                        *left as usize
                    } else {
                        *right as usize
                    };
                    depth += 1.0;
                }
                Some(Node::Leaf { size }) => return depth + c(*size as usize),
                None => return depth,
            }
        }
        depth
    }

    /// Anomaly score of `x` in (0, 1]; higher = easier to isolate.
    pub fn score(&self, x: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.5;
        }
        let mean = self
            .trees
            .iter()
            .map(|t| Self::path_length(t, x))
            .sum::<f64>()
            / self.trees.len() as f64;
        let norm = c(self.subsample).max(1.0);
        2f64.powf(-mean / norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|_| (0..4).map(|_| r.next_f64() * 2.0 - 1.0).collect())
            .collect()
    }

    #[test]
    fn planted_outliers_rank_first() {
        let mut x = cloud(200, 3);
        x.push(vec![6.0, 0.0, 0.0, 0.0]);
        x.push(vec![0.0, -5.0, 5.0, 0.0]);
        let f = IsolationForest::fit(&x, 100, 128, 42);
        let mut scores: Vec<(f64, usize)> =
            x.iter().enumerate().map(|(i, p)| (f.score(p), i)).collect();
        scores.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top: Vec<usize> = scores[..2].iter().map(|s| s.1).collect();
        assert!(
            top.contains(&200) && top.contains(&201),
            "{:?}",
            &scores[..5]
        );
        assert!(scores[0].0 > 0.6 && scores[100].0 < 0.55);
    }

    #[test]
    fn seeded_and_degenerate_inputs() {
        let x = cloud(50, 9);
        assert_eq!(
            IsolationForest::fit(&x, 10, 32, 1),
            IsolationForest::fit(&x, 10, 32, 1)
        );
        assert_ne!(
            IsolationForest::fit(&x, 10, 32, 1),
            IsolationForest::fit(&x, 10, 32, 2)
        );
        let same = vec![vec![1.0, 1.0]; 5];
        let f = IsolationForest::fit(&same, 5, 256, 0);
        assert!(f.score(&[1.0, 1.0]).is_finite());
        assert_eq!(IsolationForest::fit(&[], 5, 8, 0).score(&[0.0]), 0.5);
        assert!((c(2) - 1.0).abs() < 1e-12 && c(256) > 9.0);
    }
}
