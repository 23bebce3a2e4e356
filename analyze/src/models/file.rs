//! Model files (`models/*.model`): a header line, then zstd-compressed JSON of [`ModelFile`].
//!
//! Self-describing: the format and needle versions, the kinds of models inside, every feature
//! in vector order with its scaler parameters, the training summary and the SHA-256 of the
//! training data, the seed, and the threshold calibrated on held-out normal workloads. Nothing
//! in it depends on the time or the machine, so the same data and seed give the same bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::sequence::{SequenceModel, SequenceScore, Thread};
use super::workload::{Binding, Calibration, WorkloadModel};
use crate::rank::{Contribution, TOP_CONTRIBUTIONS};

/// First line of every model file.
pub const MAGIC: &[u8] = b"needle-model\n";
/// Version of the layout of [`ModelFile`] this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// zstd level (model files are small; smaller files diff and ship better).
const LEVEL: i32 = 19;

/// What the model was trained on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Normal workloads the models were fitted on.
    pub train_workloads: usize,
    /// Normal workloads held out to calibrate the threshold.
    pub validation_workloads: usize,
    /// Attack workloads in the input, left out of training.
    pub attack_workloads_excluded: usize,
    /// Events of the training and validation workloads.
    pub events: u64,
    /// Threads with syscall sequences among them.
    pub threads: usize,
    /// Syscalls in those sequences.
    pub syscalls: u64,
    /// SHA-256 of the training data (workload keys, feature values, sequences, split).
    pub sha256: String,
    /// Validation workloads scored by a model fitted without their group (training workloads
    /// of the same image), see [`super::train`].
    #[serde(default)]
    pub validation_group_held_out: usize,
    /// Stable hashes of the training and validation workload keys (sorted), so that `eval`
    /// can tell when test data overlaps training data.
    pub workload_hashes: Vec<u64>,
}

/// A trained model: the file's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// needle version of the writer.
    pub needle_version: String,
    /// Kinds of models inside (`isolation-forest`, `pca-reconstruction`, `gmm-nll`,
    /// `kmeans-distance`, `stide`, `markov`).
    pub kinds: Vec<String>,
    /// Seed of every random choice in training.
    pub seed: u64,
    /// What it was trained on.
    pub training: TrainingSummary,
    /// Combined score above which a workload is anomalous: the highest score of the held-out
    /// normal workloads (of the training workloads when too few were held out).
    pub threshold: f64,
    /// Calibration of each part (`features`, `sequences`) against the training workloads.
    pub parts: Vec<Calibration>,
    /// Combined scores of every normal workload (sorted): percentiles are read against them.
    pub normal_scores: Vec<f64>,
    /// The workload-level model.
    pub workload: Option<WorkloadModel>,
    /// The syscall-sequence models.
    pub sequence: Option<SequenceModel>,
}

/// A workload's scores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scored {
    /// Combined, calibrated score (0 = typical normal workload).
    pub score: f64,
    /// Share of normal training workloads scoring at most this.
    pub percentile: f64,
    /// Workload-feature part (calibrated), if the model has one.
    pub features: Option<f64>,
    /// Sequence part (calibrated), if the model and the workload have sequences.
    pub sequences: Option<f64>,
    /// Raw STIDE score, for evaluation.
    pub stide: Option<f64>,
    /// Top features (value, training median, z) and rarest n-grams.
    pub contributions: Vec<Contribution>,
}

impl ModelFile {
    /// Writes the model to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec(self).map_err(|e| ModelError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut bytes = MAGIC.to_vec();
        bytes.extend(zstd::bulk::compress(&json, LEVEL).map_err(io)?);
        std::fs::write(path, bytes).map_err(io)
    }

    /// Reads a model from `path`.
    pub fn load(path: &Path) -> Result<ModelFile, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ModelFile::from_bytes(path, &bytes)
    }

    /// Parses a model file's bytes (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<ModelFile, ModelError> {
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| ModelError::NotAModel {
                path: path.to_path_buf(),
            })?;
        let corrupt = |message: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let mut json = Vec::new();
        zstd::stream::copy_decode(body, &mut json)
            .map_err(|e| corrupt(format!("decompressing: {e}")))?;
        let version: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
        let found = version
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if found != u64::from(FORMAT_VERSION) {
            return Err(ModelError::Version {
                path: path.to_path_buf(),
                found,
            });
        }
        serde_json::from_value(version).map_err(|e| corrupt(e.to_string()))
    }

    /// Part scores combined: the highest calibrated part. Parts absent for a workload (no
    /// syscall sequences) do not count.
    fn combine(
        &self,
        features: Option<f64>,
        sequences: Option<f64>,
    ) -> (f64, Option<f64>, Option<f64>) {
        let cal = |name: &str, raw: Option<f64>| {
            raw.and_then(|r| {
                self.parts
                    .iter()
                    .find(|c| c.detector == name)
                    .map(|c| c.apply(r))
            })
        };
        let f = cal("features", features);
        let s = cal("sequences", sequences);
        (f.unwrap_or(0.0).max(s.unwrap_or(0.0)), f, s)
    }

    /// The raw part scores of one workload: features (a row of the bound table) and sequences.
    pub fn raw_parts(
        &self,
        values: Option<(&[f64], &Binding)>,
        threads: Option<&[Thread]>,
    ) -> (Option<f64>, Option<SequenceScore>) {
        let f = self
            .workload
            .as_ref()
            .zip(values)
            .map(|(m, (v, b))| m.combined(&m.scaled(v, b)));
        let s = self
            .sequence
            .as_ref()
            .zip(threads)
            .and_then(|(m, t)| m.score(t));
        (f, s)
    }

    /// Scores and explains one workload.
    pub fn score(&self, values: Option<(&[f64], &Binding)>, threads: Option<&[Thread]>) -> Scored {
        let (f, s) = self.raw_parts(values, threads);
        let (score, features, sequences) = self.combine(f, s.as_ref().map(|s| s.markov));
        let mut contributions = Vec::new();
        if let (Some(m), Some((v, b))) = (&self.workload, values) {
            contributions = m.explain(v, b, &m.scaled(v, b));
        }
        if let Some(s) = &s {
            // Rarest n-grams first when the sequences drive the score.
            if sequences.unwrap_or(0.0) >= features.unwrap_or(0.0) {
                let mut c = s.rarest.clone();
                c.extend(contributions);
                contributions = c;
            } else {
                contributions.extend(s.rarest.iter().cloned());
            }
            contributions.truncate(TOP_CONTRIBUTIONS + 3);
        }
        Scored {
            score,
            percentile: self.percentile(score),
            features,
            sequences,
            stide: s.map(|s| s.stide),
            contributions,
        }
    }

    /// Score from which the ranking may raise the anomaly finding: the threshold, or never
    /// when the model saw fewer than [`super::MIN_WORKLOADS_FOR_FINDINGS`] normal workloads.
    pub fn finding_threshold(&self) -> f64 {
        let seen = self.training.train_workloads + self.training.validation_workloads;
        if seen >= super::MIN_WORKLOADS_FOR_FINDINGS {
            self.threshold
        } else {
            f64::INFINITY
        }
    }

    /// Share of normal training workloads whose combined score is at most `score`.
    pub fn percentile(&self, score: f64) -> f64 {
        if self.normal_scores.is_empty() {
            return 0.0;
        }
        self.normal_scores.partition_point(|&s| s <= score) as f64 / self.normal_scores.len() as f64
    }

    /// Calibrates the parts on the training workloads' raw part scores and sets the
    /// threshold and the normal score distribution (used by training).
    pub fn calibrate(
        &mut self,
        train: &[(Option<f64>, Option<f64>)],
        validation: &[(Option<f64>, Option<f64>)],
    ) {
        self.parts.clear();
        for (name, pick) in [("features", 0usize), ("sequences", 1)] {
            let raw: Vec<f64> = train
                .iter()
                .filter_map(|p| if pick == 0 { p.0 } else { p.1 })
                .collect();
            if !raw.is_empty() {
                self.parts.push(Calibration::fit_named(name, &raw));
            }
        }
        let combined = |p: &(Option<f64>, Option<f64>)| self.combine(p.0, p.1).0;
        let val: Vec<f64> = validation.iter().map(combined).collect();
        let all: Vec<f64> = train
            .iter()
            .map(combined)
            .chain(val.iter().copied())
            .collect();
        let basis = if val.is_empty() { &all } else { &val };
        self.threshold = basis.iter().copied().fold(0.0, f64::max);
        let mut sorted = all;
        sorted.sort_by(f64::total_cmp);
        self.normal_scores = sorted;
    }
}
