//! `analyze eval`: detection metrics of a model on labelled workloads it was not trained on.
//!
//! Per workload: ROC AUC, average precision, precision@k and the rank of every attack, for the
//! combined model score, each part alone (workload features, change after start-up, the
//! sequence members combined and each member, calibrated) and the full ranking (models with signatures, High/Critical
//! findings first). With [`AttackUnit::File`], the attack workloads imported from one file
//! (`<file>#<pid>`) are one attack recording scored by its highest process, as the UNM datasets
//! are scored (an intrusion run also holds normal-looking processes of the program). Per
//! recording (the host intrusion-detection convention): with the threshold at the highest
//! score seen on held-out normal data (stored in the model), the detection rate, the false
//! alarms, the longest run of consecutive false alarms among the normal recordings in time
//! order, precision, recall and F1. A recording is one workload's trace.

use serde::Serialize;

use super::ModelFile;
use super::file::Scored;
use super::labels::Truth;
use super::metrics::{attack_ranks, average_precision, precision_at, roc_auc};
use super::rng::hash_str;
use super::sequence::MEMBERS;
use crate::escape::terminal;
use crate::features::FeatureTable;
use crate::rank::Ranked;

/// What one attack recording is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttackUnit {
    /// Each attack workload.
    #[default]
    Workload,
    /// The attack workloads of one imported file (`<file>#<pid>`), scored by the highest.
    File,
}

/// The file part of an imported `<file>#<pid>` workload key.
fn file_of(key: &str) -> &str {
    key.rsplit_once('#').map_or(key, |k| k.0)
}

/// Metrics of one scorer over the labelled workloads.
#[derive(Clone, Debug, Serialize)]
pub struct ScorerMetrics {
    /// What was scored.
    pub scorer: String,
    /// ROC AUC.
    pub roc_auc: Option<f64>,
    /// Average precision.
    pub average_precision: Option<f64>,
    /// Precision among the top k, k = number of attacks.
    pub precision_at_attacks: f64,
    /// Precision among the top 10.
    pub precision_at_10: f64,
    /// Rank of every attack workload among the labelled ones (1 = first).
    pub attack_ranks: Vec<usize>,
    /// Every attack ranks above every normal workload.
    pub attacks_first: bool,
}

/// Per-recording detection at the model's threshold.
#[derive(Clone, Debug, Serialize)]
pub struct Recordings {
    /// The threshold (highest combined score on held-out normal workloads).
    pub threshold: f64,
    /// Attack recordings scoring above it / attack recordings.
    pub detection_rate: f64,
    /// Normal recordings scoring above it.
    pub false_alarms: usize,
    /// Normal recordings.
    pub normal: usize,
    /// Longest run of consecutive false alarms among the normal recordings in time order.
    pub max_consecutive_false_alarms: usize,
    /// Precision.
    pub precision: f64,
    /// Recall (= detection rate).
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// One attack workload's place.
#[derive(Clone, Debug, Serialize)]
pub struct AttackRow {
    /// Workload key.
    pub workload: String,
    /// Container name.
    pub name: Option<String>,
    /// Rank in the full ranking (all workloads of the input).
    pub rank: usize,
    /// Combined model score.
    pub score: f64,
    /// Percentile against the normal training workloads.
    pub percentile: f64,
}

/// The evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The model.
    pub model: String,
    /// Normal workloads evaluated.
    pub normal: usize,
    /// Attack recordings evaluated (workloads, or files with [`AttackUnit::File`]).
    pub attack: usize,
    /// Workloads without a label (not evaluated).
    pub unlabelled: usize,
    /// Evaluated workloads the model was trained or calibrated on (should be 0).
    pub seen_in_training: usize,
    /// Per-workload metrics, one entry per scorer.
    pub workloads: Vec<ScorerMetrics>,
    /// Per-recording detection.
    pub recordings: Recordings,
    /// Every attack workload, by rank.
    pub attacks: Vec<AttackRow>,
}

fn metrics(scorer: &str, v: &[(f64, bool)]) -> ScorerMetrics {
    let attacks = v.iter().filter(|s| s.1).count();
    let min_attack = v
        .iter()
        .filter(|s| s.1)
        .map(|s| s.0)
        .fold(f64::INFINITY, f64::min);
    let max_normal = v
        .iter()
        .filter(|s| !s.1)
        .map(|s| s.0)
        .fold(f64::NEG_INFINITY, f64::max);
    ScorerMetrics {
        scorer: scorer.to_string(),
        roc_auc: roc_auc(v),
        average_precision: average_precision(v),
        precision_at_attacks: precision_at(v, attacks),
        precision_at_10: precision_at(v, 10),
        attack_ranks: attack_ranks(v),
        attacks_first: attacks > 0 && min_attack > max_normal,
    }
}

/// Evaluates `scored` (one per row of `table`) and the full ranking against `truths`.
pub fn evaluate(
    model_name: &str,
    model: &ModelFile,
    table: &FeatureTable,
    scored: &[Scored],
    ranked: &[Ranked],
    truths: &[Option<Truth>],
    unit: AttackUnit,
) -> Result<EvalReport, super::ModelError> {
    let labelled_rows: Vec<(usize, bool)> = truths
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (i, t == Truth::Attack)))
        .collect();
    // Recordings: each normal workload; each attack workload or file. A recording's row is
    // its highest-scoring member's (first of its rows here; scores take the maximum below).
    let mut groups: Vec<(Vec<usize>, bool)> = Vec::new();
    let mut by_file: std::collections::BTreeMap<&str, usize> = Default::default();
    for &(i, a) in &labelled_rows {
        if a && unit == AttackUnit::File {
            let k = *by_file
                .entry(file_of(&table.rows[i].workload))
                .or_insert_with(|| {
                    groups.push((Vec::new(), true));
                    groups.len() - 1
                });
            groups[k].0.push(i);
        } else {
            groups.push((vec![i], a));
        }
    }
    let best = |g: &[usize], f: &dyn Fn(usize) -> f64| -> usize {
        g.iter()
            .copied()
            .max_by(|&a, &b| f(a).total_cmp(&f(b)).then(b.cmp(&a)))
            .unwrap_or(0)
    };
    let labelled: Vec<(usize, bool)> = groups
        .iter()
        .map(|(g, a)| (best(g, &|i| scored[i].score), *a))
        .collect();
    let attack = labelled.iter().filter(|l| l.1).count();
    let normal = labelled.len() - attack;
    if attack == 0 || normal == 0 {
        return Err(super::ModelError::NoLabels(format!(
            "{normal} normal and {attack} attack workloads labelled among {} (give --labels, or traces with a label column); both are needed",
            table.rows.len()
        )));
    }
    // Each scorer takes each recording's highest member on its own score.
    let col = |f: &dyn Fn(usize) -> Option<f64>| -> Vec<(f64, bool)> {
        groups
            .iter()
            .map(|(g, a)| {
                let v = g
                    .iter()
                    .map(|&i| f(i).unwrap_or(0.0))
                    .fold(f64::NEG_INFINITY, f64::max);
                (v, *a)
            })
            .collect()
    };
    let mut workloads = vec![metrics(
        "models (combined)",
        &col(&|i| Some(scored[i].score)),
    )];
    if scored.iter().any(|s| s.features.is_some()) {
        workloads.push(metrics("workload features", &col(&|i| scored[i].features)));
    }
    if scored.iter().any(|s| s.change.is_some()) {
        workloads.push(metrics(
            "change after start-up",
            &col(&|i| scored[i].change),
        ));
    }
    if scored.iter().any(|s| s.sequences.is_some()) {
        workloads.push(metrics(
            "sequences (combined)",
            &col(&|i| scored[i].sequences),
        ));
        for (d, name) in MEMBERS.iter().enumerate() {
            workloads.push(metrics(
                &format!("sequences: {name}"),
                &col(&|i| scored[i].members.get(d).copied()),
            ));
        }
    }
    let mut rank_of = vec![0usize; table.rows.len()];
    for r in ranked {
        rank_of[r.row] = r.rank;
    }
    let n = table.rows.len() as f64;
    let parts: Vec<Option<&crate::rank::Parts>> = {
        let mut v = vec![None; table.rows.len()];
        for r in ranked {
            v[r.row] = Some(&r.parts);
        }
        v
    };
    if parts.iter().flatten().any(|p| p.peers.is_some()) {
        workloads.push(metrics(
            "peers (input's own peer groups)",
            &col(&|i| parts[i].and_then(|p| p.peers)),
        ));
    }
    workloads.push(metrics(
        "anomaly (models + peers, no signatures)",
        &col(&|i| parts[i].map(|p| p.anomaly)),
    ));
    workloads.push(metrics(
        "ranking (models + signatures)",
        &col(&|i| Some(n - rank_of[i] as f64)),
    ));

    let above = |i: usize| scored[i].score > model.threshold;
    let tp = labelled.iter().filter(|&&(i, a)| a && above(i)).count();
    let fp = labelled.iter().filter(|&&(i, a)| !a && above(i)).count();
    let mut normals: Vec<usize> = labelled.iter().filter(|l| !l.1).map(|l| l.0).collect();
    normals.sort_by_key(|&i| (table.rows[i].first_ns, i));
    let (mut run, mut max_run) = (0, 0);
    for &i in &normals {
        run = if above(i) { run + 1 } else { 0 };
        max_run = max_run.max(run);
    }
    let recall = tp as f64 / attack as f64;
    let precision = if tp + fp == 0 {
        0.0
    } else {
        tp as f64 / (tp + fp) as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let mut attacks: Vec<AttackRow> = labelled
        .iter()
        .filter(|l| l.1)
        .map(|&(i, _)| AttackRow {
            workload: table.rows[i].workload.clone(),
            name: table.rows[i].context.name.clone(),
            rank: rank_of[i],
            score: scored[i].score,
            percentile: scored[i].percentile,
        })
        .collect();
    attacks.sort_by_key(|a| a.rank);
    let seen = labelled_rows
        .iter()
        .filter(|&&(i, _)| {
            model
                .training
                .workload_hashes
                .binary_search(&hash_str(&table.rows[i].workload))
                .is_ok()
        })
        .count();
    Ok(EvalReport {
        model: model_name.to_string(),
        normal,
        attack,
        unlabelled: table.rows.len() - labelled_rows.len(),
        seen_in_training: seen,
        workloads,
        recordings: Recordings {
            threshold: model.threshold,
            detection_rate: recall,
            false_alarms: fp,
            normal,
            max_consecutive_false_alarms: max_run,
            precision,
            recall,
            f1,
        },
        attacks,
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

impl EvalReport {
    /// The report as text (Markdown tables).
    pub fn text(&self) -> String {
        let mut s = format!(
            "model {}: {} normal and {} attack workloads ({} unlabelled, {} seen in training)\n\n",
            terminal(&self.model, 200),
            self.normal,
            self.attack,
            self.unlabelled,
            self.seen_in_training
        );
        s.push_str("| scorer | ROC AUC | AP | P@attacks | P@10 | attacks first | attack ranks |\n|---|---|---|---|---|---|---|\n");
        for m in &self.workloads {
            let mut ranks: Vec<String> = m
                .attack_ranks
                .iter()
                .take(20)
                .map(usize::to_string)
                .collect();
            if m.attack_ranks.len() > 20 {
                ranks.push(format!(
                    "… ({} more; all in --format json)",
                    m.attack_ranks.len() - 20
                ));
            }
            s.push_str(&format!(
                "| {} | {} | {} | {:.3} | {:.3} | {} | {} |\n",
                m.scorer,
                opt(m.roc_auc),
                opt(m.average_precision),
                m.precision_at_attacks,
                m.precision_at_10,
                if m.attacks_first { "yes" } else { "no" },
                ranks.join(" ")
            ));
        }
        let r = &self.recordings;
        s.push_str(&format!(
            "\nper recording, threshold {:.3} (max on held-out normal): detection rate {:.3}, false alarms {}/{}, max consecutive false alarms {}, precision {:.3}, recall {:.3}, F1 {:.3}\n\n",
            r.threshold, r.detection_rate, r.false_alarms, r.normal, r.max_consecutive_false_alarms, r.precision, r.recall, r.f1
        ));
        s.push_str(
            "| rank | attack workload | name | score | percentile |\n|---|---|---|---|---|\n",
        );
        for a in self.attacks.iter().take(50) {
            s.push_str(&format!(
                "| {} | {} | {} | {:.3} | {:.3} |\n",
                a.rank,
                terminal(&a.workload, 80),
                terminal(a.name.as_deref().unwrap_or(""), 40),
                a.score,
                a.percentile
            ));
        }
        if self.attacks.len() > 50 {
            s.push_str(&format!(
                "\n({} more attack workloads in --format json)\n",
                self.attacks.len() - 50
            ));
        }
        s
    }
}
