//! STIDE (Forrest, Hofmeyr, Somayaji, Longstaff 1996; Warrender et al. 1999): the set of
//! length-n windows of normal traces. A trace's score is its locality frame count — the most
//! windows absent from the normal set within any frame of [`FRAME`] consecutive windows —
//! divided by the frame, plus a hundredth of the overall mismatch rate to break ties.

use serde::{Deserialize, Serialize};

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
    /// Builds the database from normal traces.
    pub fn fit<'a>(traces: impl Iterator<Item = &'a [u32]>) -> Stide {
        let mut w: Vec<u64> = traces
            .flat_map(|t| windows(t, N).collect::<Vec<_>>())
            .collect();
        w.sort_unstable();
        w.dedup();
        Stide { n: N, windows: w }
    }

    /// True for each window of `t` that never occurred in normal traces.
    pub fn mismatches(&self, t: &[u32]) -> Vec<bool> {
        windows(t, self.n)
            .map(|h| self.windows.binary_search(&h).is_err())
            .collect()
    }

    /// The score of one trace.
    pub fn score(&self, t: &[u32]) -> f64 {
        let m = self.mismatches(t);
        if m.is_empty() {
            return 0.0;
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
        let rate = m.iter().filter(|&&x| x).count() as f64 / m.len() as f64;
        lfc as f64 / FRAME as f64 + 0.01 * rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_windows_count() {
        let normal: Vec<u32> = (0..200).map(|i| [3, 5, 7, 9][i % 4]).collect();
        let s = Stide::fit(std::iter::once(normal.as_slice()));
        assert_eq!(s.windows.len(), 4);
        assert_eq!(s.score(&normal[..50]), 0.0);
        let mut attack = normal[..60].to_vec();
        attack.splice(30..30, [59, 59, 2]);
        assert!(s.score(&attack) >= 0.4, "{}", s.score(&attack));
        assert!(s.score(&[1, 2]) > 0.0 && s.score(&[]) == 0.0);
    }
}
