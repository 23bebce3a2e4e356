//! STIDE (Forrest, Hofmeyr, Somayaji, Longstaff 1996; Warrender, Forrest, Pearlmutter 1999):
//! the set of length-n windows of normal traces. A trace is scored as its authors did, two
//! ways: the *mismatch rate* (the share of its windows absent from the normal set: the same
//! for a short and a long trace of the same behaviour) and the *locality frame count* (the
//! most mismatches within any [`FRAME`] consecutive windows, divided by the frame: a burst of
//! foreign windows, as a short exploit leaves in a long normal run).

use serde::{Deserialize, Serialize};

use super::lookup::Lookup;
use crate::models::rng::hash_seq;

/// Window length (the classic n = 6).
pub const N: usize = 6;
/// Locality frame.
pub const FRAME: usize = 20;

/// The normal database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stide {
    /// Window length.
    pub n: usize,
    /// Sorted hashes of every normal window.
    pub windows: Vec<u64>,
    /// Constant-time index over `windows`, built on first use.
    #[serde(skip)]
    index: Lookup,
}

/// A trace's two STIDE scores.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StideScore {
    /// Share of windows never seen in normal traces.
    pub rate: f64,
    /// Locality frame count over [`FRAME`], in `[0, 1]`.
    pub lfc: f64,
}

fn windows(t: &[u32], n: usize) -> impl Iterator<Item = u64> + '_ {
    // A trace shorter than n is one (short) window.
    let count = if t.len() < n {
        usize::from(!t.is_empty())
    } else {
        t.len() - n + 1
    };
    (0..count).map(move |i| hash_seq(&t[i..(i + n).min(t.len())]))
}

impl Stide {
    /// Builds the database of windows of length `n` from normal traces.
    pub fn fit<'a>(traces: impl Iterator<Item = &'a [u32]>, n: usize) -> Stide {
        let n = n.max(1);
        let mut w: Vec<u64> = traces
            .flat_map(|t| windows(t, n).collect::<Vec<_>>())
            .collect();
        w.sort_unstable();
        w.dedup();
        Stide {
            n,
            windows: w,
            index: Lookup::default(),
        }
    }

    /// The windows of `t` that never occurred in normal traces: (index of the window's first
    /// call, hash of the window).
    pub fn foreign<'a>(&'a self, t: &'a [u32]) -> impl Iterator<Item = (usize, u64)> + 'a {
        windows(t, self.n)
            .enumerate()
            .filter(|&(_, h)| !self.index.contains(&self.windows, h))
    }

    /// True for each window of `t` that never occurred in normal traces.
    pub fn mismatches(&self, t: &[u32]) -> Vec<bool> {
        windows(t, self.n)
            .map(|h| !self.index.contains(&self.windows, h))
            .collect()
    }

    /// The scores of one trace (0 for an empty one).
    pub fn score(&self, t: &[u32]) -> StideScore {
        let m = self.mismatches(t);
        if m.is_empty() {
            return StideScore::default();
        }
        let mut in_frame = 0usize;
        let mut lfc = 0usize;
        for i in 0..m.len() {
            in_frame += usize::from(m[i]);
            if i >= FRAME {
                in_frame -= usize::from(m[i - FRAME]);
            }
            lfc = lfc.max(in_frame);
        }
        StideScore {
            rate: m.iter().filter(|&&x| x).count() as f64 / m.len() as f64,
            lfc: lfc as f64 / FRAME as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_window_is_caught_and_a_normal_one_is_not() {
        let normal: Vec<u32> = (0..200).map(|i| [3, 5, 7, 9][i % 4]).collect();
        let s = Stide::fit(std::iter::once(normal.as_slice()), N);
        assert_eq!(s.windows.len(), 4);
        assert_eq!(s.score(&normal[..50]), StideScore::default());
        let mut attack = normal[..60].to_vec();
        attack.splice(30..30, [59, 59, 2]);
        let a = s.score(&attack);
        // Three inserted calls touch 3 + n − 1 = 8 windows, all within one frame.
        assert_eq!(a.lfc, 8.0 / FRAME as f64);
        assert!((a.rate - 8.0 / 58.0).abs() < 1e-12, "{a:?}");
        // The rate does not grow with the normal calls around the burst; the frame count
        // does not shrink with them.
        let mut longer = normal[..160].to_vec();
        longer.splice(80..80, [59, 59, 2]);
        assert_eq!(s.score(&longer).lfc, a.lfc);
        assert!(s.score(&longer).rate < a.rate);
        assert!(s.score(&[1, 2]).rate > 0.0 && s.score(&[]).rate == 0.0);
        // A window shape seen in training but never at this length: n matters.
        let s3 = Stide::fit(std::iter::once(normal.as_slice()), 3);
        assert_eq!(s3.score(&[3, 5, 7, 9, 3]).rate, 0.0);
        assert_eq!(s3.score(&[3, 5, 9]).rate, 1.0);
    }
}
