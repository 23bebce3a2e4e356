//! Process-level models over syscall sequences: `syscall` rows (capture's `--syscalls full`
//! streams, or traces written by `analyze import syscall-traces`) are cut into one sequence
//! per thread, in time order. [`stide`] is the classic baseline, [`markov`] the model the
//! ranking uses; a workload's sequence score is the highest score of its threads.

pub mod markov;
pub mod stide;
pub mod synth;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, TimeUnit, UInt32Type, UInt64Type};
use arrow::record_batch::RecordBatch;
use needle_common::schema::names as n;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::features::{TimeWindow, workload_key};
use crate::rank::Contribution;
use crate::scan::{OpenTrace, ScanError, discover};

use markov::Markov;
use stide::Stide;

/// Most calls kept per thread (the first ones, in time order); longer streams are cut.
pub const MAX_CALLS_PER_THREAD: usize = 1_000_000;

/// One thread's syscalls, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thread {
    /// Thread id (kernel pid).
    pub tid: u32,
    /// Syscall numbers.
    pub calls: Vec<u32>,
}

/// Syscall sequences per workload key.
pub type Sequences = BTreeMap<String, Vec<Thread>>;

type Raw = BTreeMap<(String, u32), Vec<(i64, u64, u32)>>;

/// Dictionary keys per row and the distinct strings.
type DictColumn = (Vec<Option<usize>>, Vec<String>);

fn dict_strings(batch: &RecordBatch, name: &str) -> Result<Option<DictColumn>, String> {
    let Some(a) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let d = cast(
        a,
        &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
    )
    .map_err(|e| format!("column `{name}`: {e}"))?;
    let d = d.as_dictionary::<Int32Type>();
    let values: Vec<String> = d
        .values()
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect();
    let keys = d
        .keys()
        .iter()
        .map(|k| k.and_then(|k| usize::try_from(k).ok()))
        .collect();
    Ok(Some((keys, values)))
}

fn read_batch(
    batch: &RecordBatch,
    host: &str,
    window: TimeWindow,
    base: u64,
    out: &mut Raw,
) -> Result<(), String> {
    let Some((kind_keys, kind_values)) = dict_strings(batch, n::KIND)? else {
        return Err("no `kind` column".into());
    };
    let Some(syscall_kind) = kind_values.iter().position(|k| k == "syscall") else {
        return Ok(());
    };
    let col = |name: &str, ty: DataType| -> Result<Option<arrow::array::ArrayRef>, String> {
        batch
            .column_by_name(name)
            .map(|a| cast(a, &ty).map_err(|e| format!("column `{name}`: {e}")))
            .transpose()
    };
    let time =
        col(n::TIME, DataType::Timestamp(TimeUnit::Nanosecond, None))?.ok_or("no `time` column")?;
    let time = time.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
    let Some(nr) = col(n::SYSCALL, DataType::UInt32)? else {
        return Ok(());
    };
    let nr = nr.as_primitive::<UInt32Type>();
    let pid = col(n::PID, DataType::UInt32)?;
    let pid = pid.as_ref().map(|p| p.as_primitive::<UInt32Type>());
    let cgroup = col(n::CGROUP_ID, DataType::UInt64)?;
    let cgroup = cgroup.as_ref().map(|c| c.as_primitive::<UInt64Type>());
    let workload = dict_strings(batch, n::WORKLOAD)?;
    let container = dict_strings(batch, n::CONTAINER_ID)?;
    let s = |c: &Option<DictColumn>, row: usize| -> Option<String> {
        let (keys, values) = c.as_ref()?;
        keys[row]
            .and_then(|k| values.get(k))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    for (row, kind) in kind_keys.iter().enumerate() {
        if *kind != Some(syscall_kind) || nr.is_null(row) || time.is_null(row) {
            continue;
        }
        let t = time.value(row);
        if !window.contains(t) {
            continue;
        }
        let w = s(&workload, row).or_else(|| s(&container, row));
        let cg = cgroup
            .filter(|c| c.is_valid(row))
            .map_or(0, |c| c.value(row));
        let key = workload_key(w.as_deref(), host, cg);
        let tid = pid.filter(|p| p.is_valid(row)).map_or(0, |p| p.value(row));
        out.entry((key, tid))
            .or_default()
            .push((t, base + row as u64, nr.value(row)));
    }
    Ok(())
}

/// Reads the syscall sequences of every thread in `files` (the inputs the feature scan
/// already accepted; unreadable files are skipped when `skip_bad`).
pub fn read_sequences(
    files: &[std::path::PathBuf],
    window: crate::scan::WindowSpec,
    skip_bad: bool,
) -> Result<Sequences, ScanError> {
    let (paths, problems) = discover(files);
    if let (Some(p), false) = (problems.into_iter().next(), skip_bad) {
        return Err(p);
    }
    let mut traces = Vec::new();
    for p in &paths {
        match OpenTrace::open(p) {
            Ok(t) => traces.push(t),
            Err(e) if !skip_bad => return Err(e),
            Err(_) => {}
        }
    }
    let window = window.resolve(traces.iter().filter_map(OpenTrace::end_ns).max());
    let tasks: Vec<(usize, usize)> = traces
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.row_groups_in(window).map(move |r| (i, r.index)))
        .collect();
    let cols = [
        n::TIME,
        n::KIND,
        n::PID,
        n::CGROUP_ID,
        n::WORKLOAD,
        n::CONTAINER_ID,
        n::SYSCALL,
    ];
    let parts: Vec<Result<Raw, ScanError>> = tasks
        .par_iter()
        .map(|&(i, rg)| {
            let trace = &traces[i];
            let mut raw = Raw::new();
            let mut offset = 0u64;
            // (file, row group, row) orders rows of equal time deterministically.
            let base = ((i as u64) << 40) | ((rg as u64) << 24);
            trace.read_columns(rg, &cols, &mut |b| {
                let r = read_batch(b, &trace.host, window, base + offset, &mut raw);
                offset += b.num_rows() as u64;
                r
            })?;
            Ok(raw)
        })
        .collect();
    let mut merged = Raw::new();
    for p in parts {
        match p {
            Ok(raw) => {
                for (k, mut v) in raw {
                    merged.entry(k).or_default().append(&mut v);
                }
            }
            Err(e) if !skip_bad => return Err(e),
            Err(_) => {}
        }
    }
    let mut out = Sequences::new();
    for ((key, tid), mut rows) in merged {
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        rows.truncate(MAX_CALLS_PER_THREAD);
        out.entry(key).or_default().push(Thread {
            tid,
            calls: rows.into_iter().map(|r| r.2).collect(),
        });
    }
    Ok(out)
}

/// The trained sequence models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceModel {
    /// STIDE baseline (reported by `analyze eval`).
    pub stide: Stide,
    /// The model that scores workloads.
    pub markov: Markov,
}

/// A workload's sequence scores.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceScore {
    /// Highest Markov score of its threads (bits per call).
    pub markov: f64,
    /// Highest STIDE score of its threads.
    pub stide: f64,
    /// The rarest n-grams of the highest-scoring thread.
    pub rarest: Vec<Contribution>,
}

impl SequenceModel {
    /// Fits both models on the threads of the training workloads.
    pub fn fit<'a>(threads: impl Iterator<Item = &'a Thread> + Clone) -> SequenceModel {
        SequenceModel {
            stide: Stide::fit(threads.clone().map(|t| t.calls.as_slice())),
            markov: Markov::fit(threads.map(|t| t.calls.as_slice())),
        }
    }

    /// Scores one workload's threads (None when it has none).
    pub fn score(&self, threads: &[Thread]) -> Option<SequenceScore> {
        let scored: Vec<(f64, f64, &Thread)> = threads
            .par_iter()
            .filter(|t| !t.calls.is_empty())
            .map(|t| (self.markov.score(&t.calls), self.stide.score(&t.calls), t))
            .collect();
        let best = scored
            .iter()
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.2.tid.cmp(&a.2.tid)))?;
        let stide = scored.iter().map(|s| s.1).fold(0.0, f64::max);
        let t = &best.2.calls;
        let rarest = self
            .markov
            .rarest(t, 3)
            .into_iter()
            .map(|s| {
                let from = s.at.saturating_sub(self.markov.order);
                let gram = &t[from..=s.at];
                let names: Vec<String> = gram.iter().map(u32::to_string).collect();
                Contribution {
                    feature: format!(
                        "syscalls {} (thread {}, call {})",
                        names.join(" "),
                        best.2.tid,
                        s.at
                    ),
                    value: gram.len() as f64,
                    peer_median: f64::from(self.markov.count(gram)),
                    surprise: s.bits,
                }
            })
            .collect();
        Some(SequenceScore {
            markov: best.0,
            stide,
            rarest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::synth::{SynthConfig, generate};
    use super::*;
    use crate::models::metrics::roc_auc;

    /// AUCs of (STIDE, Markov) trained on half the normal traces, tested on the rest and the
    /// attacks.
    pub(crate) fn synthetic_aucs(cfg: &SynthConfig) -> (f64, f64) {
        let s = generate(cfg);
        let half = s.normal.len() / 2;
        let train: Vec<Thread> = s.normal[..half]
            .iter()
            .map(|c| Thread {
                tid: 1,
                calls: c.clone(),
            })
            .collect();
        let m = SequenceModel::fit(train.iter());
        let test: Vec<(&Vec<u32>, bool)> = s.normal[half..]
            .iter()
            .map(|t| (t, false))
            .chain(s.attack.iter().map(|t| (t, true)))
            .collect();
        let st: Vec<(f64, bool)> = test.iter().map(|(t, a)| (m.stide.score(t), *a)).collect();
        let mk: Vec<(f64, bool)> = test.iter().map(|(t, a)| (m.markov.score(t), *a)).collect();
        (roc_auc(&st).unwrap(), roc_auc(&mk).unwrap())
    }

    #[test]
    fn markov_beats_stide_and_reaches_the_target_on_synthetic_traces() {
        let cfg = SynthConfig {
            normal: 240,
            attack: 60,
            ..SynthConfig::default()
        };
        assert_eq!(generate(&cfg), generate(&cfg), "seeded");
        let (stide, markov) = synthetic_aucs(&cfg);
        eprintln!("synthetic AUC: STIDE {stide:.3}, Markov {markov:.3}");
        assert!(markov >= 0.95, "Markov AUC {markov}");
        assert!(markov >= stide);
    }

    #[test]
    #[ignore = "benchmark: 1000 traces, run with --release -- --ignored --nocapture"]
    fn synthetic_benchmark() {
        let cfg = SynthConfig::default();
        let t0 = std::time::Instant::now();
        let s = generate(&cfg);
        let threads: Vec<Thread> = s
            .normal
            .iter()
            .map(|c| Thread {
                tid: 1,
                calls: c.clone(),
            })
            .collect();
        let calls: usize = threads.iter().map(|t| t.calls.len()).sum();
        let t1 = std::time::Instant::now();
        let _ = SequenceModel::fit(threads.iter());
        let fit = t1.elapsed();
        let (stide, markov) = synthetic_aucs(&cfg);
        eprintln!(
            "generate {:?}; fit on {} traces ({calls} calls) {fit:?}; AUC STIDE {stide:.3} Markov {markov:.3}",
            t1 - t0,
            threads.len()
        );
    }
}
