//! `analyze train`: fit the models on the normal workloads of a feature table.
//!
//! Normal workloads (by label; every workload when nothing in the input is labelled) are
//! split by workload — never by event — into a training set (⅔) and a validation set (⅓,
//! chosen by a seeded hash of the workload key). The models are fitted on the training set;
//! the threshold is the highest combined score of the validation set.
//!
//! The sequence members are cross-fitted instead, since a language model gains from every
//! normal trace it sees: the normal workloads are cut into three folds by the same seeded hash
//! (fold 0 is the validation set); a model fitted on two folds scores the third, so every
//! normal workload gets a held-out raw score to calibrate on, and the language model's order
//! is the one whose held-out likelihood is best over the folds. The shipped sequence model is
//! then fitted on every normal workload.
//!
//! A validation workload is scored as a workload of a kind the model has never seen: when
//! training workloads share its group (its image without tag or digest: replicas of one
//! application), its workload-feature score comes from a model fitted on the training set
//! without that group. Scored by the final model, a validation replica of a trained
//! application looks like its twins and sets a threshold far below what a new benign
//! application scores; held out by group, the threshold measures how unusual a benign
//! workload the model has not seen can look.

use sha2::{Digest, Sha256};

use super::ModelError;
use super::file::RawParts;
use super::file::{FORMAT_VERSION, ModelFile, TrainingSummary};
use super::labels::Truth;
use super::rng::hash_str;
use super::sequence::markov::Markov;
use super::sequence::{MEMBERS, SequenceModel, Sequences, choose_order};
use super::workload::RawFeatures;
use super::workload::WorkloadModel;
use crate::features::FeatureTable;

/// What training decided, for the user.
#[derive(Clone, Debug, Default)]
pub struct TrainNotes {
    /// No workload was labelled: all were taken as normal.
    pub assumed_normal: bool,
    /// Workloads without a label (left out) when others are labelled.
    pub unlabelled: usize,
}

/// Folds of the sequence models' cross-fitting.
const FOLDS: u64 = 3;

/// The fold of workload `key` (fold 0 is the validation set).
fn fold_of(key: &str, seed: u64) -> u64 {
    hash_str(&format!("{seed}\u{0}{key}")) % FOLDS
}

/// True when workload `key` goes to the validation set.
pub fn is_validation(key: &str, seed: u64) -> bool {
    fold_of(key, seed) == 0
}

/// The calibration group of a workload: its image without tag or digest (replicas of one
/// application), else its container name, else the workload key itself.
pub fn group_of(w: &crate::features::WorkloadFeatures) -> String {
    if let Some(image) = w.context.image.as_deref().filter(|i| !i.is_empty()) {
        let image = image.split('@').next().unwrap_or(image);
        let repo = match image.rfind(':') {
            Some(colon) if !image[colon..].contains('/') => &image[..colon],
            _ => image,
        };
        return format!("image:{repo}");
    }
    match w.context.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => format!("name:{n}"),
        None => format!("workload:{}", w.workload),
    }
}

/// Fits a model on the normal workloads of `table` (rows) and `sequences`.
pub fn fit(
    table: &FeatureTable,
    sequences: &Sequences,
    truths: &[Option<Truth>],
    seed: u64,
    progress: bool,
) -> Result<(ModelFile, TrainNotes), ModelError> {
    let mut notes = TrainNotes::default();
    let labelled = truths.iter().any(Option::is_some);
    notes.assumed_normal = !labelled;
    notes.unlabelled = if labelled {
        truths.iter().filter(|t| t.is_none()).count()
    } else {
        0
    };
    let normal: Vec<usize> = (0..table.rows.len())
        .filter(|&i| !labelled || truths[i] == Some(Truth::Normal))
        .collect();
    if normal.is_empty() {
        return Err(ModelError::NoNormalWorkloads(format!(
            "{} workloads in the input, none labelled normal",
            table.rows.len()
        )));
    }
    let attacks = truths.iter().filter(|t| **t == Some(Truth::Attack)).count();
    let (mut train, mut val): (Vec<usize>, Vec<usize>) = normal
        .iter()
        .partition(|&&i| !is_validation(&table.rows[i].workload, seed));
    // Too few to hold any out: calibrate in-sample (the summary says so).
    if train.len() < 3 || normal.len() < 4 {
        train = normal.clone();
        val.clear();
    }
    let bar = progress_steps(progress, 3, "training");
    bar.set_message("workload model");
    // Where the normal workloads have syscall sequences, the sequence members model syscall
    // use (their n-gram kNN includes the unigram histogram): the feature part leaves its
    // syscall features to them, so one kind of evidence counts once.
    let with_sequences = normal.iter().any(|&i| {
        sequences
            .get(&table.rows[i].workload)
            .is_some_and(|t| t.iter().any(|t| !t.calls.is_empty()))
    });
    let fit_workload = |rows: &[usize]| {
        let m = WorkloadModel::fit(table, rows, seed);
        if with_sequences {
            m.leaving_syscalls_to_sequences()
        } else {
            m
        }
    };
    let workload = fit_workload(&train);
    bar.inc(1);
    bar.set_message("sequence models");
    let threads_of = |rows: &[usize]| {
        rows.iter()
            .filter_map(|&i| sequences.get(&table.rows[i].workload))
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
    };
    let (sequence, held_out_members) = fit_sequences(table, sequences, &normal, seed);
    bar.inc(1);
    bar.set_message("calibration");
    let mut kinds: Vec<String> = workload
        .detector_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    if sequence.is_some() {
        kinds.extend(MEMBERS.iter().map(|m| m.to_string()));
    }
    let all_threads = threads_of(&normal);
    let mut model = ModelFile {
        format_version: FORMAT_VERSION,
        needle_version: env!("CARGO_PKG_VERSION").to_string(),
        kinds,
        seed,
        training: TrainingSummary {
            train_workloads: train.len(),
            validation_workloads: val.len(),
            attack_workloads_excluded: attacks,
            events: normal
                .iter()
                .map(|&i| {
                    table
                        .column("events.total")
                        .map_or(0.0, |c| table.rows[i].values[c]) as u64
                })
                .sum(),
            threads: all_threads.len(),
            syscalls: all_threads.iter().map(|t| t.calls.len() as u64).sum(),
            sha256: digest(table, sequences, &train, &val),
            validation_group_held_out: 0,
            workload_hashes: {
                let mut h: Vec<u64> = normal
                    .iter()
                    .map(|&i| hash_str(&table.rows[i].workload))
                    .collect();
                h.sort_unstable();
                h
            },
        },
        threshold: 0.0,
        parts: Vec::new(),
        normal_scores: Vec::new(),
        workload: Some(workload),
        sequence,
    };
    let binding = model.workload.as_ref().map(|w| w.bind(table)).transpose()?;
    // Feature scores of the model itself; sequence scores held out (cross-fitted).
    let parts = |rows: &[usize]| -> Vec<RawParts> {
        rows.iter()
            .map(|&i| {
                let r = &table.rows[i];
                let (f, _) =
                    model.raw_parts(binding.as_ref().map(|b| (r.values.as_slice(), b)), None);
                (f, held_out_members.get(&i).cloned())
            })
            .collect()
    };
    let (tp, mut vp) = (parts(&train), parts(&val));
    // Validation workloads whose group is in the training set: their feature score from a
    // model fitted without that group.
    let mut held_out: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (k, &i) in val.iter().enumerate() {
        held_out
            .entry(group_of(&table.rows[i]))
            .or_default()
            .push(k);
    }
    let mut regrouped = 0;
    for (group, members) in &held_out {
        let rest: Vec<usize> = train
            .iter()
            .copied()
            .filter(|&i| group_of(&table.rows[i]) != *group)
            .collect();
        if rest.len() == train.len() || rest.len() < 3 {
            continue;
        }
        let fold = fit_workload(&rest);
        let fold_binding = fold.bind(table)?;
        for &k in members {
            let v = &table.rows[val[k]].values;
            vp[k].0 = Some(fold.combined(&fold.scaled(v, &fold_binding)));
            regrouped += 1;
        }
    }
    model.training.validation_group_held_out = regrouped;
    // The feature part is calibrated on held-out scores of every normal workload, as the
    // sequence members are: the validation fold's (above), and the other folds' from a model
    // fitted without them — a third of the normal workloads is too few a sample for a tail
    // (in-sample scores when nothing was held out).
    let basis = if vp.is_empty() { &tp } else { &vp };
    let mut features: Vec<RawFeatures> = basis.iter().filter_map(|p| p.0).collect();
    if !vp.is_empty() && binding.is_some() {
        for f in 1..FOLDS {
            let (held, fit): (Vec<usize>, Vec<usize>) = normal
                .iter()
                .partition(|&&i| fold_of(&table.rows[i].workload, seed) == f);
            if held.is_empty() || fit.len() < 3 {
                continue;
            }
            let fold = fit_workload(&fit);
            let fold_binding = fold.bind(table)?;
            features.extend(
                held.iter()
                    .map(|&i| fold.combined(&fold.scaled(&table.rows[i].values, &fold_binding))),
            );
        }
    }
    let members: Vec<Vec<f64>> = held_out_members.values().cloned().collect();
    let all: Vec<RawParts> = tp.iter().chain(&vp).cloned().collect();
    model.calibrate(&features, &members, basis, &all);
    bar.inc(1);
    bar.finish_and_clear();
    Ok((model, notes))
}

/// Fits the sequence models on the threads of the `normal` rows: the language model's order
/// and the held-out raw member scores of every normal workload with threads (by row) come
/// from [`FOLDS`]-fold cross-fitting, the returned model from all of them.
fn fit_sequences(
    table: &FeatureTable,
    sequences: &Sequences,
    normal: &[usize],
    seed: u64,
) -> (
    Option<SequenceModel>,
    std::collections::BTreeMap<usize, Vec<f64>>,
) {
    let rows: Vec<(usize, u64, Vec<&[u32]>)> = normal
        .iter()
        .filter_map(|&i| {
            let key = &table.rows[i].workload;
            let t: Vec<&[u32]> = sequences
                .get(key)?
                .iter()
                .map(|t| t.calls.as_slice())
                .filter(|c| !c.is_empty())
                .collect();
            (!t.is_empty()).then(|| (i, fold_of(key, seed), t))
        })
        .collect();
    let mut held = std::collections::BTreeMap::new();
    if rows.is_empty() {
        return (None, held);
    }
    let threads = |keep: &dyn Fn(u64) -> bool| -> Vec<&[u32]> {
        rows.iter()
            .filter(|r| keep(r.1))
            .flat_map(|r| r.2.iter().copied())
            .collect()
    };
    // (threads to fit on, held-out threads) per fold.
    type Fold<'a> = (Vec<&'a [u32]>, Vec<&'a [u32]>);
    let folds: Vec<Fold> = (0..FOLDS)
        .map(|f| (threads(&|g| g != f), threads(&|g| g == f)))
        .collect();
    let markovs: Vec<Option<Markov>> = folds
        .iter()
        .map(|(fit, _)| (!fit.is_empty()).then(|| Markov::fit(fit.iter().copied())))
        .collect();
    let order = choose_order(
        &folds
            .iter()
            .zip(&markovs)
            .filter_map(|((_, h), m)| m.as_ref().map(|m| (m, h.as_slice())))
            .collect::<Vec<_>>(),
    );
    let all = threads(&|_| true);
    let model = SequenceModel::fit(&all, order);
    for (f, ((fit, _), markov)) in folds.iter().zip(markovs).enumerate() {
        // A fold with nothing to fit on (a tiny input) is scored in-sample.
        let fold_model = markov.map(|mut m| {
            m.set_order(order);
            SequenceModel::with_markov(m, fit)
        });
        let m = fold_model.as_ref().unwrap_or(&model);
        for r in rows.iter().filter(|r| r.1 == f as u64) {
            if let Some(s) = m.score(&sequences[&table.rows[r.0].workload]) {
                held.insert(r.0, s.members);
            }
        }
    }
    (Some(model), held)
}

/// A step counter on stderr (only when it is a terminal and `enabled`).
pub fn progress_steps(enabled: bool, steps: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(steps),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {what} [{{bar:20}}] {{pos}}/{{len}} {{msg}} ({{elapsed}})"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// SHA-256 over what the model was fitted and calibrated on, in a fixed order.
fn digest(table: &FeatureTable, sequences: &Sequences, train: &[usize], val: &[usize]) -> String {
    let mut h = Sha256::new();
    for c in &table.columns {
        h.update(c.name.as_bytes());
        h.update([0]);
    }
    for (set, rows) in [(b'T', train), (b'V', val)] {
        for &i in rows {
            let r = &table.rows[i];
            h.update([set]);
            h.update(r.workload.as_bytes());
            h.update([0]);
            for v in &r.values {
                h.update(v.to_bits().to_le_bytes());
            }
            for t in sequences.get(&r.workload).into_iter().flatten() {
                h.update(t.tid.to_le_bytes());
                h.update((t.calls.len() as u64).to_le_bytes());
                for c in &t.calls {
                    h.update(c.to_le_bytes());
                }
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
