//! Robust scaling fitted on the training workloads: each feature is transformed like the
//! peer baseline does (`ln(1 + x)` for heavy-tailed counts), centred on the training median
//! and divided by the training spread (1.4826·MAD, floored), then read in its suspicious
//! direction only (a less busy workload than any in training is not suspicious) and clipped.

use serde::{Deserialize, Serialize};

use crate::features::catalog::{Direction, FeatureDef, Scale};

/// Largest absolute scaled value: one feature cannot dominate every distance.
pub const CLIP: f64 = 10.0;

/// How one feature is scaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureScale {
    /// Feature name (a column of the feature table).
    pub name: String,
    /// `ln(1 + x)` before scaling.
    pub log: bool,
    /// Only values above the norm count (else both ways).
    pub one_sided: bool,
    /// An indicator feature (see the catalog).
    pub indicator: bool,
    /// A ratio or mean (not a count) that was 0 in every training workload: the training set
    /// says nothing about its normal range (e.g. DNS name entropy when no training workload
    /// used DNS), so it is not scored.
    pub inert: bool,
    /// Training median of the raw values (the norm shown in explanations).
    pub raw_median: f64,
    /// Highest raw training value: an indicator that no training workload ever showed is
    /// novel (see [`FeatureScale::apply`]).
    #[serde(default)]
    pub raw_max: f64,
    /// Training median of the transformed values.
    pub center: f64,
    /// Spread of the transformed values.
    pub scale: f64,
}

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

/// Median of a copy of `v`.
pub fn median_of(v: &[f64]) -> f64 {
    median(&mut v.to_vec())
}

impl FeatureScale {
    /// Fits the scale of feature `name` to the training values `xs`.
    pub fn fit(def: &FeatureDef, name: &str, xs: &[f64]) -> FeatureScale {
        let (direction, scale, indicator) = (def.direction, def.scale, def.indicator);
        let inert = matches!(def.unit, "fraction" | "bits/char" | "characters")
            && xs.iter().all(|&x| x == 0.0 || !x.is_finite());
        let log = scale == Scale::Log;
        let mut t: Vec<f64> = xs.iter().map(|&x| transform(x, log)).collect();
        let center = median(&mut t);
        let mut dev: Vec<f64> = t.iter().map(|x| (x - center).abs()).collect();
        let mad = median(&mut dev);
        let floor = if log {
            0.25
        } else {
            (0.1 * center.abs()).max(0.05)
        };
        FeatureScale {
            name: name.to_string(),
            log,
            one_sided: direction == Direction::High,
            indicator,
            inert,
            raw_median: median_of(xs),
            raw_max: xs
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(0.0, f64::max),
            center,
            scale: (1.4826 * mad).max(floor),
        }
    }

    /// The scaled value of `x`: a robust z-score, one-sided where the feature is, clipped.
    pub fn apply(&self, x: f64) -> f64 {
        if self.inert {
            return 0.0;
        }
        let mut z = (transform(x, self.log) - self.center) / self.scale;
        // An indicator no training workload ever showed (a binary run from /tmp) is as
        // unusual as anything can be: the floor meant for ordinary counts must not damp it.
        // One that some benign workloads show (an installer runs what it wrote) is scored
        // like any other count.
        if self.indicator && self.raw_max == 0.0 && x > 0.0 && self.center == 0.0 {
            z = z.max(CLIP);
        }
        if self.one_sided {
            z = z.max(0.0);
        }
        z.clamp(-CLIP, CLIP)
    }
}

fn transform(x: f64, log: bool) -> f64 {
    let x = if x.is_finite() { x } else { 0.0 };
    if log { x.max(0.0).ln_1p() } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::catalog::{FAMILIES, FIXED};

    fn def(name: &str) -> &'static FeatureDef {
        FIXED.iter().find(|d| d.name == name).unwrap()
    }

    #[test]
    fn robust_one_sided_and_clipped() {
        let s = FeatureScale::fit(&FAMILIES[1], "rate.exec", &[1.0, 2.0, 3.0, 2.0, 1000.0]);
        assert_eq!(s.raw_median, 2.0);
        assert!(s.apply(2.0).abs() < 1e-9);
        assert_eq!(s.apply(0.0), 0.0, "less than the norm is not suspicious");
        assert!(s.apply(20.0) > 2.0);
        assert_eq!(s.apply(1e12), CLIP);
        let both = FeatureScale::fit(&FAMILIES[2], "syscall.3", &[0.5, 0.5, 0.5]);
        assert!(both.apply(0.0) < -2.0);
    }

    #[test]
    fn novelty_of_counts_and_of_means() {
        let ind = FeatureScale::fit(def("exe.writable_path"), "exe.writable_path", &[0.0, 0.0]);
        assert_eq!(
            ind.apply(1.0),
            CLIP,
            "a count indicator never seen in training is maximal"
        );
        assert_eq!(ind.apply(f64::NAN), 0.0);
        let some = FeatureScale::fit(
            def("file.written_then_executed"),
            "file.written_then_executed",
            &[0.0, 0.0, 0.0, 1.0],
        );
        // Small enough that the count's own z stays below the clip: the novelty rule would
        // lift it to CLIP.
        let x = 0.25;
        let z = some.apply(x);
        assert_eq!(some.raw_max, 1.0);
        assert!(
            z > 0.0
                && z < CLIP
                && (z - (transform(x, some.log) - some.center) / some.scale).abs() < 1e-9,
            "an indicator some normal workloads show is scored as a count, not as novel: {z}"
        );
        assert_eq!(ind.apply(x), CLIP, "while one never seen is novel");
        let entropy = FeatureScale::fit(
            def("dns.name_entropy_mean"),
            "dns.name_entropy_mean",
            &[0.0, 0.0],
        );
        assert_eq!(
            entropy.apply(3.2),
            0.0,
            "no norm for a mean that training never saw"
        );
        let seen = FeatureScale::fit(
            def("dns.name_entropy_mean"),
            "dns.name_entropy_mean",
            &[2.5, 2.7, 2.6],
        );
        assert!(seen.apply(4.5) > 3.0);
    }
}
