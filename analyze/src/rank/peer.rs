//! The unsupervised baseline: robust peer-group outlier scoring.
//!
//! Each scored feature is transformed (`ln(1 + x)` for heavy-tailed counts), then compared
//! with the same feature of every workload in the input: `z = (x − median) / scale`, where
//! `scale` is 1.4826·MAD (the normal-consistent median absolute deviation), floored so that
//! a feature almost every workload has at exactly the same value does not turn a tiny
//! difference into an infinite one. Only deviations in the suspicious direction count, each
//! clipped at [`Z_MAX`]; the score is the Euclidean norm of the clipped z-scores, and the
//! features with the largest z-scores are reported with their value and the peer median.

use super::{Contribution, Model, ModelScore};
use crate::features::FeatureTable;
use crate::features::catalog::{Direction, Scale};

/// Largest z-score one feature contributes.
pub const Z_MAX: f64 = 10.0;
/// How many contributing features are reported per workload.
pub const TOP_CONTRIBUTIONS: usize = 5;

/// Median of `v` (sorts it); 0 for empty.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn transform(x: f64, scale: Scale) -> f64 {
    let x = if x.is_finite() { x } else { 0.0 };
    match scale {
        Scale::Log => x.max(0.0).ln_1p(),
        Scale::Linear => x,
    }
}

/// Smallest scale a feature is measured with, in transformed units: a difference of one
/// event on a log-scaled count (ln 2 ≈ 0.69) is then worth about 2.8 standard deviations.
fn scale_floor(scale: Scale, median: f64) -> f64 {
    match scale {
        Scale::Log => 0.25,
        Scale::Linear => (0.1 * median.abs()).max(0.05),
    }
}

/// Robust z-scores of every workload against all the workloads of the input.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerOutlier;

/// Robust location and scale of one feature across the peers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerNorm {
    /// Median of the transformed values.
    pub median: f64,
    /// Scale used for z-scores (transformed units).
    pub scale: f64,
    /// Median of the raw values (reported as the peer norm).
    pub raw_median: f64,
}

/// The peer norm of column `c` of `table`.
pub fn peer_norm(table: &FeatureTable, c: usize) -> PeerNorm {
    let scale_kind = table.columns[c].def.scale;
    let mut raw: Vec<f64> = table.rows.iter().map(|r| r.values[c]).collect();
    let mut xs: Vec<f64> = raw.iter().map(|&x| transform(x, scale_kind)).collect();
    let med = median(&mut xs);
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&mut dev);
    PeerNorm {
        median: med,
        scale: (1.4826 * mad).max(scale_floor(scale_kind, med)),
        raw_median: median(&mut raw),
    }
}

impl Model for PeerOutlier {
    fn name(&self) -> &str {
        "peer-outlier"
    }

    fn score(&self, table: &FeatureTable) -> Vec<ModelScore> {
        let mut scores: Vec<ModelScore> =
            table.rows.iter().map(|_| ModelScore::default()).collect();
        let mut sums = vec![0.0f64; table.rows.len()];
        for (c, col) in table.columns.iter().enumerate() {
            let direction = col.def.direction;
            if direction == Direction::Unscored {
                continue;
            }
            let norm = peer_norm(table, c);
            for (i, row) in table.rows.iter().enumerate() {
                let value = row.values[c];
                let mut z = (transform(value, col.def.scale) - norm.median) / norm.scale;
                // An indicator (a binary run from /tmp, a shell spawned by a server, …) that no
                // peer shows at all is as unusual as anything can be: the scale floor, meant to
                // keep ordinary counts from exploding, must not damp it.
                if col.def.indicator
                    && norm.raw_median == 0.0
                    && norm.scale <= scale_floor(col.def.scale, norm.median)
                    && value > 0.0
                {
                    z = Z_MAX;
                }
                let z = match direction {
                    Direction::High => z.max(0.0),
                    Direction::Both => z.abs(),
                    Direction::Unscored => 0.0,
                }
                .min(Z_MAX);
                if z > 0.0 {
                    sums[i] += z * z;
                    scores[i].contributions.push(Contribution {
                        feature: col.name.clone(),
                        value,
                        peer_median: norm.raw_median,
                        z,
                    });
                }
            }
        }
        for (s, sum) in scores.iter_mut().zip(sums) {
            s.score = sum.sqrt();
            s.contributions
                .sort_by(|a, b| b.z.total_cmp(&a.z).then_with(|| a.feature.cmp(&b.feature)));
            s.contributions.truncate(TOP_CONTRIBUTIONS);
        }
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn transforms_tolerate_bad_values() {
        assert_eq!(transform(f64::NAN, Scale::Log), 0.0);
        assert_eq!(transform(-5.0, Scale::Log), 0.0);
        assert!((transform(1.0, Scale::Log) - 2f64.ln()).abs() < 1e-12);
    }
}
