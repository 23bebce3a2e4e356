//! Trained anomaly models: what normal workloads look like, learned from labelled traces.
//!
//! ```text
//!  train:  scan ─► features + syscall sequences ─► split normal workloads (train / validation)
//!          ─► workload model (per-feature tail probabilities, summed by family)
//!          ─► sequence models (STIDE, variable-order Markov) ─► calibrate ─► models/*.model
//!  rank:   model file + feature table + sequences ─► [`Scorer`] (a `rank::Model`)
//!  eval:   scores + labels ─► ROC AUC, AP, precision@k, attack ranks, detection rate, F1
//! ```
//!
//! * [`workload`]: the per-workload model over the feature table ([`scaler`]: each feature's
//!   normal range as a tail probability; [`calibrate`]: tail probabilities and their sums).
//! * [`sequence`]: per-thread syscall sequence models and the synthetic trace generator.
//! * [`file`]: the model file format; [`train`] and [`eval`] are the pipelines; [`labels`]
//!   reads ground truth; [`metrics`] computes detection metrics.

pub use crate::calibrate;
pub mod eval;
pub mod file;
pub mod labels;
pub mod metrics;
pub mod rng;
pub mod scaler;
pub mod sequence;
pub mod train;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;

pub use file::{ModelFile, Scored};

use crate::features::FeatureTable;
use crate::rank::{Model, ModelScore};
use sequence::Sequences;
use workload::Binding;

/// The default model, shipped in the repository's `models/` directory and built into the
/// binary; `analyze` uses it when no `--model` is given.
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../../models/default.model");
/// Normal workloads a model must have been trained on before its scores may raise the
/// `Execution:Runtime/AnomalousBehavior` finding: a narrower training set has not seen enough
/// benign variety (a container that mounts at start, one that resolves names) to call a
/// novelty suspicious, so its scores only order workloads.
pub const MIN_WORKLOADS_FOR_FINDINGS: usize = 20;

/// Name the default model is reported under.
pub const DEFAULT_MODEL_NAME: &str = "models/default.model (built in)";

/// Why a model cannot be used or made.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model's features are not the data's.
    #[error(
        "the model was trained on other features than this build computes (missing from the data: {}; not in the model: {}); retrain it with `analyze train`",
        list(missing),
        list(unknown)
    )]
    FeatureMismatch {
        /// Model features the data lacks.
        missing: Vec<String>,
        /// Data features the model lacks.
        unknown: Vec<String>,
    },
    /// A file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a model file.
    #[error("{}: not a needle model file (no `needle-model` header)", path.display())]
    NotAModel {
        /// The file.
        path: PathBuf,
    },
    /// A model file of another format version.
    #[error("{}: model format version {found}; this build reads version {}: retrain it with `analyze train`", path.display(), file::FORMAT_VERSION)]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u64,
    },
    /// A damaged model file.
    #[error("{}: damaged model file: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A labels file that cannot be used.
    #[error("{}: {message}", path.display())]
    Labels {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Nothing to train on.
    #[error("no normal workload to train on: {0}")]
    NoNormalWorkloads(String),
    /// Nothing labelled to evaluate.
    #[error("cannot evaluate: {0}")]
    NoLabels(String),
    /// Reading the traces failed.
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl ModelError {
    /// Names the model file in a feature-mismatch error.
    pub fn in_model(self, model: &str) -> ModelError {
        match self {
            ModelError::FeatureMismatch { missing, unknown } => ModelError::Corrupt {
                path: PathBuf::from(model),
                message: ModelError::FeatureMismatch { missing, unknown }.to_string(),
            },
            e => e,
        }
    }
}

/// A model file bound to one input: its features mapped to the table's columns, and the
/// input's syscall sequences. Plugs into [`crate::rank::Ranker`].
pub struct Scorer {
    model: Arc<ModelFile>,
    name: String,
    binding: Option<Binding>,
    sequences: Sequences,
}

impl Scorer {
    /// Binds `model` to `table` (an error when their features differ) and `sequences`.
    pub fn new(
        model: Arc<ModelFile>,
        name: &str,
        table: &FeatureTable,
        sequences: Sequences,
    ) -> Result<Scorer, ModelError> {
        let binding = model
            .workload
            .as_ref()
            .map(|w| w.bind(table))
            .transpose()
            .map_err(|e| e.in_model(name))?;
        // The input's typical surprise per feature is discounted (see `workload`).
        let model = match (&model.workload, &binding) {
            (Some(w), Some(b)) => {
                let mut m = (*model).clone();
                m.workload = Some(w.for_input(table, b));
                Arc::new(m)
            }
            _ => model,
        };
        Ok(Scorer {
            model,
            name: name.to_string(),
            binding,
            sequences,
        })
    }

    /// The model.
    pub fn model(&self) -> &ModelFile {
        &self.model
    }

    /// Scores every row of `table`.
    pub fn score_all(&self, table: &FeatureTable) -> Vec<Scored> {
        use rayon::prelude::*;
        table
            .rows
            .par_iter()
            .map(|r| {
                let values = self.binding.as_ref().map(|b| (r.values.as_slice(), b));
                self.model
                    .score(values, self.sequences.get(&r.workload).map(Vec::as_slice))
            })
            .collect()
    }
}

impl Model for Scorer {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, table: &FeatureTable) -> Vec<ModelScore> {
        let late: Vec<f64> = table
            .rows
            .iter()
            .map(|r| match (&self.model.workload, &self.binding) {
                (Some(m), Some(b)) => m.late(&m.scaled(&r.values, b)),
                _ => 0.0,
            })
            .collect();
        self.score_all(table)
            .into_iter()
            .zip(late)
            .map(|(s, time)| ModelScore {
                score: s.score,
                time,
                contributions: s.contributions,
                basis: None,
                replicas: false,
                no_reference: false,
            })
            .collect()
    }

    fn anomaly_threshold(&self) -> f64 {
        self.model.finding_threshold()
    }
}

impl Model for Arc<Scorer> {
    fn name(&self) -> &str {
        Scorer::name(self)
    }

    fn score(&self, table: &FeatureTable) -> Vec<ModelScore> {
        Model::score(self.as_ref(), table)
    }

    fn anomaly_threshold(&self) -> f64 {
        self.model.finding_threshold()
    }
}

#[cfg(test)]
mod tests;
