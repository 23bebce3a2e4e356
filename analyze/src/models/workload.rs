//! The workload-level model: each scored feature's normal range learned from the normal
//! training workloads as a tail probability ([`FeatureScale`]), a workload's features read
//! against it as surprises (`−log10 p`) and summed by family ([`family_sum`]) into one raw
//! score — which training then calibrates against held-out normal workloads like every other
//! part.
//!
//! In an environment unlike the training data many features of every workload are "new". At
//! ranking time the model therefore discounts, feature by feature, the surprise that is typical
//! *of the input*: each feature's median surprise over the input's workloads (when the input
//! has at least [`MIN_WORKLOADS_FOR_OFFSETS`] of them) is subtracted before the sum. What every
//! workload here does is the environment; what one workload does beyond it is the anomaly.

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::calibrate::family_sum;
use super::scaler::{FeatureScale, median_of};
use crate::calibrate::median;
use crate::features::FeatureTable;
use crate::features::catalog::Direction;
use crate::rank::{Contribution, TOP_CONTRIBUTIONS};

/// Raw scores of the workload-feature model's two parts (surprise units before calibration).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RawFeatures {
    /// What the workload does: every feature family but `late`.
    pub behaviour: f64,
    /// How it changed after its start-up: the `late.*` features.
    pub change: f64,
}

/// True for the features of the change part (`late.*`).
pub fn is_change(name: &str) -> bool {
    name.starts_with("late.")
}

/// Fewest workloads an input needs before its typical surprise per feature is discounted.
pub const MIN_WORKLOADS_FOR_OFFSETS: usize = 8;

/// How one detector's raw scores are brought to a common scale (kept for the model file's
/// part calibration).
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
    /// Scored features in vector order, with their normal ranges.
    pub features: Vec<FeatureScale>,
    /// Per feature, the surprise typical of the input being scored (see the module
    /// documentation); empty in a model file.
    #[serde(skip)]
    pub offsets: Vec<f64>,
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
    /// Fits the model on rows `train` of `table` (`_seed`: nothing here is random).
    pub fn fit(table: &FeatureTable, train: &[usize], _seed: u64) -> WorkloadModel {
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
        WorkloadModel {
            features,
            offsets: Vec::new(),
        }
    }

    /// The model with its syscall features (`syscall.<nr>` shares, `syscall.distinct`, the
    /// rate of `syscall` rows, `security.calls`, which counts security-relevant syscall
    /// numbers in the streams) not scored: for training data whose syscall sequences the
    /// sequence models score. (An imported trace's clock is synthetic, one call a microsecond:
    /// its syscall rate is its length, which must neither reward nor punish it.)
    pub fn leaving_syscalls_to_sequences(mut self) -> WorkloadModel {
        for f in &mut self.features {
            if f.name.starts_with("syscall.")
                || f.name == "rate.syscall"
                || f.name == "security.calls"
            {
                f.inert = true;
            }
        }
        self
    }

    /// Names of the detectors inside.
    pub fn detector_names(&self) -> Vec<&'static str> {
        vec!["feature-tails"]
    }

    /// The model with each feature's typical surprise over `rows` of the bound `table`
    /// discounted (none when there are fewer than [`MIN_WORKLOADS_FOR_OFFSETS`] rows).
    pub fn for_input(&self, table: &FeatureTable, binding: &Binding) -> WorkloadModel {
        let mut m = WorkloadModel {
            features: self.features.clone(),
            offsets: Vec::new(),
        };
        if table.rows.len() < MIN_WORKLOADS_FOR_OFFSETS {
            return m;
        }
        let per_row: Vec<Vec<f64>> = table
            .rows
            .iter()
            .map(|r| self.scaled(&r.values, binding))
            .collect();
        m.offsets = (0..self.features.len())
            .map(|f| {
                let mut v: Vec<f64> = per_row.iter().map(|r| r[f]).collect();
                median(&mut v)
            })
            .collect();
        m
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

    /// Each feature's surprise for one row, the input's typical surprise discounted.
    pub fn scaled(&self, values: &[f64], binding: &Binding) -> Vec<f64> {
        self.features
            .iter()
            .zip(binding)
            .enumerate()
            .map(|(i, (f, b))| {
                let s = f.apply(b.and_then(|c| values.get(c).copied()).unwrap_or(0.0));
                (s - self.offsets.get(i).copied().unwrap_or(0.0)).max(0.0)
            })
            .collect()
    }

    /// The raw scores of a row's surprises, summed by family: what the workload does (every
    /// family but `late`), and how its behaviour changed after start-up (the `late.*`
    /// features), calibrated as two parts.
    pub fn combined(&self, x: &[f64]) -> RawFeatures {
        RawFeatures {
            behaviour: self.sum(x, |late| !late),
            change: self.sum(x, |late| late),
        }
    }

    /// The part that comes from behaviour first seen after start-up (the `late.*` features).
    pub fn late(&self, x: &[f64]) -> f64 {
        self.sum(x, |late| late)
    }

    fn sum(&self, x: &[f64], keep: fn(bool) -> bool) -> f64 {
        family_sum(
            self.features
                .iter()
                .zip(x)
                .filter(|(f, _)| keep(is_change(&f.name)))
                .map(|(f, s)| (f.name.as_str(), *s)),
        )
    }

    /// The most surprising features, strongest first. Among features equally surprising,
    /// what no training workload ever showed comes first: "never seen in normal traffic" says
    /// more than "above its usual range".
    pub fn explain(&self, values: &[f64], binding: &Binding, x: &[f64]) -> Vec<Contribution> {
        let c: Vec<(bool, Contribution)> = self
            .features
            .iter()
            .zip(binding)
            .zip(x)
            .filter(|(_, s)| **s >= 0.05)
            .map(|((f, b), s)| {
                let value = b.and_then(|c| values.get(c).copied()).unwrap_or(0.0);
                let novel = f.raw_max == 0.0 && value > 0.0;
                let contribution = Contribution {
                    feature: f.name.clone(),
                    value,
                    peer_median: f.raw_median,
                    surprise: *s,
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
        b.surprise
            .total_cmp(&a.surprise)
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

    fn c(feature: &str, surprise: f64) -> Contribution {
        Contribution {
            feature: feature.to_string(),
            value: 1.0,
            peer_median: 0.0,
            surprise,
        }
    }

    #[test]
    fn novel_features_lead_among_ties() {
        let got = strongest(vec![
            (false, c("dns.name_entropy_max", 10.0)),
            (false, c("a.weaker", 3.0)),
            (true, c("exe.writable_path", 10.0)),
            (false, c("dns.name_len_max", 10.0)),
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
