//! The workload-level model: robust scaling fitted on normal workloads, then four detectors
//! over the scaled vectors (isolation forest, PCA reconstruction error, Gaussian-mixture NLL in
//! the principal subspace, k-means distance), each calibrated against its own training scores
//! and averaged into one score.
//!
//! A detector's calibrated score is `ln(1 + max(0, (raw − median) / spread))` over the training
//! workloads' raw scores: 0 for a typical normal workload, growing slowly (so that one detector
//! that explodes on a rare but benign workload cannot outvote the others) and without bound
//! (so that workloads beyond anything seen in training still order among themselves).

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::detectors::{Gmm, KMeans, Pca};
use super::iforest::IsolationForest;
use super::scaler::{FeatureScale, median_of};
use crate::features::FeatureTable;
use crate::features::catalog::Direction;
use crate::rank::{Contribution, TOP_CONTRIBUTIONS};

/// Trees of the isolation forest.
const TREES: usize = 100;
/// Subsample each tree is grown on.
const SUBSAMPLE: usize = 256;

/// How one detector's raw scores are brought to a common scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Detector name.
    pub detector: String,
    /// Median raw score of the training workloads.
    pub center: f64,
    /// Spread of the training raw scores (floored).
    pub spread: f64,
}

impl Calibration {
    /// Fits the calibration of `detector` to training raw scores.
    pub fn fit_named(detector: &str, raw: &[f64]) -> Calibration {
        let center = median_of(raw);
        let dev: Vec<f64> = raw.iter().map(|r| (r - center).abs()).collect();
        let spread = (1.4826 * median_of(&dev))
            .max(0.05 * center.abs())
            .max(1e-6);
        Calibration {
            detector: detector.to_string(),
            center,
            spread,
        }
    }

    /// The calibrated score of a raw score.
    pub fn apply(&self, raw: f64) -> f64 {
        let z = (raw - self.center) / self.spread;
        if z.is_nan() { 0.0 } else { z.max(0.0).ln_1p() }
    }
}

/// The trained workload-level model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadModel {
    /// Scored features in vector order, with their scaler parameters.
    pub features: Vec<FeatureScale>,
    /// Isolation forest.
    pub iforest: IsolationForest,
    /// Principal subspace (none when training had too few workloads).
    pub pca: Option<Pca>,
    /// Mixture in the principal subspace.
    pub gmm: Option<Gmm>,
    /// k-means centroids.
    pub kmeans: Option<KMeans>,
    /// One calibration per detector that exists, in [`WorkloadModel::raw`] order.
    pub calibration: Vec<Calibration>,
}

/// `syscall.<nr>` columns exist only for the numbers seen in an input: absent means 0.
pub fn is_syscall_share(name: &str) -> bool {
    name.strip_prefix("syscall.")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Columns of a family that grows with the data or the build: `syscall.<nr>` (one per number
/// seen) and the per-event-kind `events.<kind>` / `rate.<kind>` (event kinds are only ever
/// added). A model and a table may differ in these: a column the model lacks is ignored, a
/// column the table lacks reads as 0.
pub fn is_open_family(name: &str) -> bool {
    is_syscall_share(name)
        || (name.starts_with("events.") && name != "events.total")
        || name.starts_with("rate.")
}

/// Which table column feeds each model feature (None: a syscall share absent from the input).
pub type Binding = Vec<Option<usize>>;

impl WorkloadModel {
    /// Fits the model on rows `train` of `table`.
    pub fn fit(table: &FeatureTable, train: &[usize], seed: u64) -> WorkloadModel {
        let features: Vec<FeatureScale> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.def.direction != Direction::Unscored)
            .map(|(i, c)| {
                let xs: Vec<f64> = train.iter().map(|&r| table.rows[r].values[i]).collect();
                FeatureScale::fit(c.def, &c.name, &xs)
            })
            .collect();
        let mut m = WorkloadModel {
            features,
            iforest: IsolationForest::fit(&[], 0, 1, seed),
            pca: None,
            gmm: None,
            kmeans: None,
            calibration: Vec::new(),
        };
        let binding = m.bind(table).unwrap_or_default();
        let x: Vec<Vec<f64>> = train
            .iter()
            .map(|&r| m.scaled(&table.rows[r].values, &binding))
            .collect();
        m.iforest = IsolationForest::fit(&x, TREES, SUBSAMPLE, seed);
        m.pca = Pca::fit(&x);
        if let Some(pca) = &m.pca {
            let proj: Vec<Vec<f64>> = x.iter().map(|v| pca.project(v)).collect();
            m.gmm = Gmm::fit(&proj, if x.len() >= 40 { 2 } else { 1 }, seed);
        }
        m.kmeans = KMeans::fit(&x, (x.len() / 10).clamp(1, 4), seed);
        let raws: Vec<Vec<f64>> = x.iter().map(|v| m.raw(v)).collect();
        m.calibration = m
            .detector_names()
            .iter()
            .enumerate()
            .map(|(d, name)| {
                Calibration::fit_named(name, &raws.iter().map(|r| r[d]).collect::<Vec<_>>())
            })
            .collect();
        m
    }

    /// Names of the detectors that exist, in [`WorkloadModel::raw`] order.
    pub fn detector_names(&self) -> Vec<&'static str> {
        let mut v = vec!["isolation-forest"];
        if self.pca.is_some() {
            v.push("pca-reconstruction");
        }
        if self.gmm.is_some() {
            v.push("gmm-nll");
        }
        if self.kmeans.is_some() {
            v.push("kmeans-distance");
        }
        v
    }

    /// Maps the model's features onto the columns of `table`. Every feature the model was
    /// trained on must be in the table except syscall shares, and every scored feature of
    /// the table must be in the model except syscall shares (a build with other features
    /// needs a retrained model).
    pub fn bind(&self, table: &FeatureTable) -> Result<Binding, ModelError> {
        let binding: Binding = self
            .features
            .iter()
            .map(|f| table.column(&f.name))
            .collect();
        let missing: Vec<String> = self
            .features
            .iter()
            .zip(&binding)
            .filter(|(f, b)| b.is_none() && !is_open_family(&f.name))
            .map(|(f, _)| f.name.clone())
            .collect();
        let known: std::collections::HashSet<&str> =
            self.features.iter().map(|f| f.name.as_str()).collect();
        let unknown: Vec<String> = table
            .columns
            .iter()
            .filter(|c| {
                c.def.direction != Direction::Unscored
                    && !is_open_family(&c.name)
                    && !known.contains(c.name.as_str())
            })
            .map(|c| c.name.clone())
            .collect();
        if missing.is_empty() && unknown.is_empty() {
            Ok(binding)
        } else {
            Err(ModelError::FeatureMismatch { missing, unknown })
        }
    }

    /// The scaled vector of one row.
    pub fn scaled(&self, values: &[f64], binding: &Binding) -> Vec<f64> {
        self.features
            .iter()
            .zip(binding)
            .map(|(f, b)| f.apply(b.and_then(|c| values.get(c).copied()).unwrap_or(0.0)))
            .collect()
    }

    /// Raw detector scores of a scaled vector.
    pub fn raw(&self, x: &[f64]) -> Vec<f64> {
        let mut v = vec![self.iforest.score(x)];
        if let Some(p) = &self.pca {
            v.push(p.residual(x));
            if let Some(g) = &self.gmm {
                v.push(g.nll(&p.project(x)));
            }
        }
        if let Some(k) = &self.kmeans {
            v.push(k.distance(x));
        }
        v
    }

    /// The combined score of a scaled vector: the mean calibrated detector score.
    pub fn combined(&self, x: &[f64]) -> f64 {
        let raw = self.raw(x);
        if self.calibration.is_empty() {
            return 0.0;
        }
        raw.iter()
            .zip(&self.calibration)
            .map(|(r, c)| c.apply(*r))
            .sum::<f64>()
            / self.calibration.len() as f64
    }

    /// The features furthest from their training norm, strongest first. Among features at
    /// the same distance (many sit at the clip), what no training workload ever showed comes
    /// first: "never seen in normal traffic" says more than "far above its usual range".
    pub fn explain(&self, values: &[f64], binding: &Binding, x: &[f64]) -> Vec<Contribution> {
        let c: Vec<(bool, Contribution)> = self
            .features
            .iter()
            .zip(binding)
            .zip(x)
            .filter(|(_, z)| z.abs() >= 0.05)
            .map(|((f, b), z)| {
                let value = b.and_then(|c| values.get(c).copied()).unwrap_or(0.0);
                let novel = f.raw_max == 0.0 && value > 0.0;
                let contribution = Contribution {
                    feature: f.name.clone(),
                    value,
                    peer_median: f.raw_median,
                    z: *z,
                };
                (novel, contribution)
            })
            .collect();
        strongest(c)
    }
}

/// The [`TOP_CONTRIBUTIONS`] strongest contributions (each flagged novel or not): furthest
/// first, novel before known at the same distance, then by name so the order is stable.
fn strongest(mut c: Vec<(bool, Contribution)>) -> Vec<Contribution> {
    c.sort_by(|(novel_a, a), (novel_b, b)| {
        b.z.abs()
            .total_cmp(&a.z.abs())
            .then_with(|| novel_b.cmp(novel_a))
            .then_with(|| a.feature.cmp(&b.feature))
    });
    c.into_iter()
        .take(TOP_CONTRIBUTIONS)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod explain_tests {
    use super::*;

    fn c(feature: &str, z: f64) -> Contribution {
        Contribution {
            feature: feature.to_string(),
            value: 1.0,
            peer_median: 0.0,
            z,
        }
    }

    #[test]
    fn novel_features_lead_among_ties_at_the_clip() {
        let got = strongest(vec![
            (false, c("dns.name_entropy_max", 10.0)),
            (false, c("a.weaker", 3.0)),
            (true, c("exe.writable_path", 10.0)),
            (false, c("dns.name_len_max", -10.0)),
            (true, c("net.stronger_novel_below", 2.0)),
            (false, c("b.more", 1.0)),
            (false, c("c.dropped", 0.5)),
        ]);
        let names: Vec<&str> = got.iter().map(|c| c.feature.as_str()).collect();
        assert_eq!(
            names,
            [
                "exe.writable_path",
                "dns.name_entropy_max",
                "dns.name_len_max",
                "a.weaker",
                "net.stronger_novel_below"
            ]
        );
    }
}
