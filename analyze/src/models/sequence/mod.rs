//! Process-level models over syscall sequences ([`read`] cuts `syscall` rows into one
//! sequence per thread). Several detectors look at each thread, each from another angle:
//!
//! | member | raw score of a thread | catches |
//! |---|---|---|
//! | `markov` | mean surprisal per call under the [`markov`] language model (bits), over at least [`WINDOW`] calls | a process whose calls are improbable throughout |
//! | `markov-window` | the worst mean surprisal over [`WINDOW`] consecutive calls (a shorter thread padded with unsurprising calls) | a short foreign burst in a long normal run |
//! | `stide` | [`stide`]'s mismatch rate (windows of 6 absent from normal traces) | many foreign windows |
//! | `stide-lfc` | STIDE's locality frame count (mismatches within 20 windows) | a local cluster of foreign windows |
//! | `ngram-knn` | cosine distance of the 1–3-gram TF-IDF vector to the nearest normal trace ([`ngram`]) | familiar calls in an unfamiliar mix |
//! | `stide-late` | `ln(1 + n)`, `n` the distinct foreign windows of 6 the workload first made after its start-up (its first 60 s) — none of its start-up windows | new call patterns after start-up, where installers and init steps are over and injected code runs |
//!
//! A workload's raw score for a member is the highest of its threads (`stide-late`: over all
//! its threads at once — a window its start-up already made in any thread is not new).
//! `stide-late` is calibrated and reported but not combined ([`crate::models::file::REPORTED_ONLY`]). Raw scores mean
//! different things; training calibrates each on held-out normal workloads
//! ([`crate::models::calibrate`]) before they are combined (see [`crate::models::file`]).

mod lookup;
pub mod markov;
pub mod ngram;
pub mod read;
pub mod stide;
pub mod synth;
#[cfg(test)]
mod unm;

use std::collections::HashMap;
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rank::Contribution;

pub use read::{MAX_CALLS_PER_THREAD, Sequences, Thread, read_sequences};

use markov::Markov;
use ngram::NgramKnn;
use stide::Stide;

/// The members, in the order of [`SequenceScore::members`]. Models trained before a member
/// existed have no calibration for it and skip it, so new members go last.
pub const MEMBERS: [&str; 6] = [
    "markov",
    "markov-window",
    "stide",
    "stide-lfc",
    "ngram-knn",
    "stide-late",
];
/// The members scored per thread (the first ones of [`MEMBERS`]).
pub(crate) const THREAD_MEMBERS: usize = 5;
/// Calls averaged in `markov-window`.
pub const WINDOW: usize = 20;

/// The trained sequence models.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SequenceModel {
    /// The language model (`markov`, `markov-window`).
    pub markov: Markov,
    /// STIDE's normal windows (`stide`, `stide-lfc`).
    pub stide: Stide,
    /// n-gram frequency vectors (`ngram-knn`).
    pub knn: NgramKnn,
    /// Inverted index of `knn`, built on first use.
    #[serde(skip)]
    index: OnceLock<HashMap<u64, Vec<(u32, f32)>>>,
}

impl PartialEq for SequenceModel {
    fn eq(&self, o: &SequenceModel) -> bool {
        // The index is derived from `knn`.
        (&self.markov, &self.stide, &self.knn) == (&o.markov, &o.stide, &o.knn)
    }
}

/// A workload's sequence scores.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceScore {
    /// Raw score of each of [`MEMBERS`]: the highest of the workload's threads.
    pub members: Vec<f64>,
    /// The most surprising calls of the worst window of the thread that scored highest on
    /// `markov-window`.
    pub rarest: Vec<Contribution>,
}

/// Mean of the worst `w` consecutive values, and where that run starts. A sequence shorter
/// than `w` counts as padded with zeros: a thread of three calls is not a window of twenty
/// calls, and its mean would let a handful of context-free first calls outscore every long
/// thread (a workload's raw score is its highest thread's).
pub fn worst_window(s: &[f64], w: usize) -> (f64, usize) {
    let w = w.max(1);
    if s.len() < w {
        return (s.iter().sum::<f64>() / w as f64, 0);
    }
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

impl SequenceModel {
    /// Fits every member on normal threads; the language model uses contexts of `order` calls
    /// (see [`choose_order`]).
    pub fn fit(threads: &[&[u32]], order: usize) -> SequenceModel {
        let mut markov = Markov::fit(threads.iter().copied());
        markov.set_order(order);
        SequenceModel::with_markov(markov, threads)
    }

    /// The model around an already fitted language model.
    pub fn with_markov(markov: Markov, threads: &[&[u32]]) -> SequenceModel {
        SequenceModel {
            markov,
            stide: Stide::fit(threads.iter().copied(), stide::N),
            knn: NgramKnn::fit(threads.iter().copied()),
            index: OnceLock::new(),
        }
    }

    /// Raw member scores of one thread, and its surprisals.
    pub fn score_thread(&self, t: &[u32]) -> (Vec<f64>, Vec<f64>) {
        let s = self.markov.surprisals(t);
        // Per call, over at least a window's worth of calls (see `worst_window`).
        let mean = s.iter().sum::<f64>() / s.len().max(WINDOW) as f64;
        let st = self.stide.score(t);
        let index = self.index.get_or_init(|| self.knn.index());
        let members = vec![
            mean,
            worst_window(&s, WINDOW).0,
            st.rate,
            st.lfc,
            self.knn.score(t, index),
        ];
        (members, s)
    }

    /// Scores one workload's threads (None when it has none).
    pub fn score(&self, threads: &[Thread]) -> Option<SequenceScore> {
        let scored: Vec<(Vec<f64>, Vec<f64>, &Thread)> = threads
            .par_iter()
            .filter(|t| !t.calls.is_empty())
            .map(|t| {
                let (m, s) = self.score_thread(&t.calls);
                (m, s, t)
            })
            .collect();
        if scored.is_empty() {
            return None;
        }
        let mut members: Vec<f64> = (0..THREAD_MEMBERS)
            .map(|d| scored.iter().map(|s| s.0[d]).fold(f64::MIN, f64::max))
            .collect();
        members.push(self.late_windows(threads));
        let worst = scored
            .iter()
            .max_by(|a, b| a.0[1].total_cmp(&b.0[1]).then(b.2.tid.cmp(&a.2.tid)))?;
        Some(SequenceScore {
            members,
            rarest: self.rarest(worst.2, &worst.1),
        })
    }

    /// `stide-late`'s raw score: `ln(1 + n)`, `n` the distinct foreign windows that end after
    /// the workload's start-up and that none of its threads made during it.
    fn late_windows(&self, threads: &[Thread]) -> f64 {
        let mut early = std::collections::HashSet::new();
        let mut late = std::collections::HashSet::new();
        for t in threads {
            for (i, h) in self.stide.foreign(&t.calls) {
                if i + self.stide.n.min(t.calls.len()) <= t.startup {
                    early.insert(h);
                } else {
                    late.insert(h);
                }
            }
        }
        (late.difference(&early).count() as f64).ln_1p()
    }

    /// The three most surprising calls of the worst window of `thread`.
    fn rarest(&self, thread: &Thread, s: &[f64]) -> Vec<Contribution> {
        let t = &thread.calls;
        let (_, at) = worst_window(s, WINDOW);
        let mut v: Vec<usize> = (at..(at + WINDOW).min(t.len())).collect();
        v.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        v.truncate(3);
        v.into_iter()
            .map(|i| {
                let gram = &t[i.saturating_sub(self.markov.order)..=i];
                let names: Vec<String> = gram.iter().map(u32::to_string).collect();
                Contribution {
                    feature: format!(
                        "syscalls {} (thread {}, call {i})",
                        names.join(" "),
                        thread.tid
                    ),
                    value: gram.len() as f64,
                    peer_median: 0.0,
                    surprise: s[i],
                }
            })
            .collect()
    }
}

/// The language model's order with the lowest total surprisal of held-out normal threads,
/// over folds of (model fitted on the other threads at [`markov::MAX_ORDER`], held-out
/// threads); 3 when no fold has held-out threads.
pub fn choose_order(folds: &[(&Markov, &[&[u32]])]) -> usize {
    let mut bits = [0.0; markov::MAX_ORDER + 1];
    let mut any = false;
    for &(m, held) in folds {
        if held.is_empty() {
            continue;
        }
        let (b, _) = m.log_loss(held.iter().copied());
        for (x, y) in bits.iter_mut().zip(b) {
            *x += y;
        }
        any = true;
    }
    if !any {
        return 3;
    }
    (1..bits.len())
        .min_by(|&a, &b| bits[a].total_cmp(&bits[b]))
        .unwrap_or(3)
}

#[cfg(test)]
mod tests {
    use super::synth::{SynthConfig, generate};
    use super::*;
    use crate::models::metrics::roc_auc;

    /// AUC of every member, trained on half the normal traces, tested on the rest and the
    /// attacks.
    pub(crate) fn synthetic_aucs(cfg: &SynthConfig) -> Vec<f64> {
        let s = generate(cfg);
        let half = s.normal.len() / 2;
        let train: Vec<&[u32]> = s.normal[..half].iter().map(Vec::as_slice).collect();
        let m = SequenceModel::fit(&train, 4);
        let test: Vec<(Vec<f64>, bool)> = s.normal[half..]
            .iter()
            .map(|t| (t, false))
            .chain(s.attack.iter().map(|t| (t, true)))
            .map(|(t, a)| (m.score_thread(t).0, a))
            .collect();
        (0..THREAD_MEMBERS)
            .map(|d| {
                let v: Vec<(f64, bool)> = test.iter().map(|(s, a)| (s[d], *a)).collect();
                roc_auc(&v).unwrap()
            })
            .collect()
    }

    #[test]
    fn members_separate_synthetic_attacks() {
        let cfg = SynthConfig {
            normal: 240,
            attack: 60,
            ..SynthConfig::default()
        };
        assert_eq!(generate(&cfg), generate(&cfg), "seeded");
        let aucs = synthetic_aucs(&cfg);
        eprintln!("synthetic AUC per member {MEMBERS:?}: {aucs:.3?}");
        // The synthetic set did not predict real programs (UNM is the development data, see
        // `unm.rs`); this only checks that the burst detector sees its bursts.
        assert!(aucs[1] >= 0.9, "markov-window AUC {aucs:?}");
    }

    #[test]
    fn a_foreign_burst_raises_the_workload_and_is_explained() {
        let normal: Vec<Vec<u32>> = (0..6)
            .map(|k| {
                (0..300 + 20 * k)
                    .map(|i| [3, 5, 7, 9, 3, 5, 11][i % 7])
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = normal.iter().map(Vec::as_slice).collect();
        let m = SequenceModel::fit(&refs, 3);
        let thread = |calls: Vec<u32>| Thread {
            tid: 7,
            calls,
            startup: 0,
        };
        let quiet = m.score(&[thread(normal[0][..150].to_vec())]).unwrap();
        let mut attack = normal[0][..150].to_vec();
        attack.splice(70..70, [59, 2, 59, 2]);
        let loud = m
            .score(&[thread(normal[1][..50].to_vec()), thread(attack)])
            .unwrap();
        for (d, name) in MEMBERS.iter().enumerate() {
            assert!(
                loud.members[d] > quiet.members[d],
                "{name}: {loud:?} vs {quiet:?}"
            );
        }
        assert!(
            loud.rarest[0].feature.contains("(thread 7, call 7"),
            "{:?}",
            loud.rarest
        );
        assert!(m.score(&[]).is_none() && m.score(&[thread(vec![])]).is_none());
    }

    #[test]
    fn stide_late_counts_foreign_windows_first_made_after_start_up() {
        let normal: Vec<u32> = (0..400).map(|i| [3, 5, 7, 9][i % 4]).collect();
        let m = SequenceModel::fit(&[normal.as_slice()], 3);
        let late = |calls: Vec<u32>, startup: usize| {
            m.score(&[Thread {
                tid: 1,
                calls,
                startup,
            }])
            .unwrap()
            .members[5]
        };
        let mut burst = normal[..100].to_vec();
        burst.splice(80..80, [59, 2, 59]);
        // The same foreign burst: during start-up (an installer) it is nothing new; after it,
        // its 3 + 6 − 1 = 8 windows are.
        assert_eq!(late(burst.clone(), 100), 0.0);
        assert_eq!(late(burst.clone(), 50), 8f64.ln_1p());
        assert_eq!(late(normal[..100].to_vec(), 0), 0.0, "known windows only");
        // A burst the start-up already made, repeated later by another thread, is not new.
        let again = m
            .score(&[
                Thread {
                    tid: 1,
                    calls: burst.clone(),
                    startup: 100,
                },
                Thread {
                    tid: 2,
                    calls: burst,
                    startup: 0,
                },
            ])
            .unwrap();
        assert_eq!(again.members[5], 0.0);
    }

    #[test]
    fn the_order_is_chosen_on_held_out_threads() {
        let t: Vec<u32> = (0..2000).map(|i| [1, 2, 1, 3, 1, 2, 1, 4][i % 8]).collect();
        let (a, b) = t.split_at(1000);
        let (ma, mb) = (Markov::fit([a].into_iter()), Markov::fit([b].into_iter()));
        let order = choose_order(&[(&ma, &[b]), (&mb, &[a])]);
        // Order 3 determines the next call of this cycle; longer adds nothing.
        assert!((3..=markov::MAX_ORDER).contains(&order), "{order}");
        assert_eq!(choose_order(&[(&ma, &[])]), 3);
    }

    #[test]
    #[ignore = "benchmark: 1000 traces, run with --release -- --ignored --nocapture"]
    fn synthetic_benchmark() {
        let cfg = SynthConfig::default();
        let s = generate(&cfg);
        let threads: Vec<&[u32]> = s.normal.iter().map(Vec::as_slice).collect();
        let calls: usize = threads.iter().map(|t| t.len()).sum();
        let t1 = std::time::Instant::now();
        let m = SequenceModel::fit(&threads, 4);
        let fit = t1.elapsed();
        // Scoring, one core: every member of every attack and normal trace.
        let test: Vec<&[u32]> = s
            .attack
            .iter()
            .chain(&s.normal)
            .map(Vec::as_slice)
            .collect();
        let scored: usize = test.iter().map(|t| t.len()).sum();
        let t2 = std::time::Instant::now();
        let sum: f64 = test.iter().map(|t| m.score_thread(t).0[0]).sum();
        let score = t2.elapsed();
        eprintln!(
            "fit on {} traces ({calls} calls) {fit:?}; scored {scored} calls in {score:?} \
             ({:.2} M calls/s on one core; checksum {sum:.3}); AUC per member {MEMBERS:?}: {:.3?}",
            threads.len(),
            scored as f64 / score.as_secs_f64() / 1e6,
            synthetic_aucs(&cfg)
        );
    }
}
