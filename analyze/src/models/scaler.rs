//! Each scored feature of the trained model: its normal range, learned from the training
//! workloads as a tail probability. A value is transformed like the peer baseline does
//! (`ln(1 + x)` for heavy-tailed counts), then read against the training values in its
//! suspicious direction ([`TailCalibration`]: empirical inside the training range, an
//! exponential tail beyond it whose scale is at least the feature's resolution), and reported
//! as surprise (`−log10 p`). Nothing is clipped: a value twice as far beyond anything seen in
//! training is more surprising, so two different anomalies get different scores.

use serde::{Deserialize, Serialize};

use super::calibrate::{TailCalibration, surprise};
use crate::calibrate::median;
use crate::features::catalog::resolution;
use crate::features::catalog::{Direction, FeatureDef, Scale};

/// How one feature is read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureScale {
    /// Feature name (a column of the feature table).
    pub name: String,
    /// `ln(1 + x)` before comparing.
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
    /// Highest raw training value.
    pub raw_max: f64,
    /// Upper tail of the transformed training values.
    pub upper: TailCalibration,
    /// Lower tail (negated values), for features scored both ways.
    pub lower: Option<TailCalibration>,
}

/// Median of a copy of `v`.
pub fn median_of(v: &[f64]) -> f64 {
    median(&mut v.to_vec())
}

impl FeatureScale {
    /// Fits the scale of feature `name` to the training values `xs`.
    pub fn fit(def: &FeatureDef, name: &str, xs: &[f64]) -> FeatureScale {
        let inert = matches!(def.unit, "fraction" | "bits/char" | "characters")
            && xs.iter().all(|&x| x == 0.0 || !x.is_finite());
        let log = def.scale == Scale::Log;
        let t: Vec<f64> = xs.iter().map(|&x| transform(x, log)).collect();
        let floor = resolution(def, median_of(&t));
        let lower = (def.direction == Direction::Both).then(|| {
            let neg: Vec<f64> = t.iter().map(|x| -x).collect();
            TailCalibration::fit_floored(name, &neg, floor)
        });
        FeatureScale {
            name: name.to_string(),
            log,
            one_sided: def.direction == Direction::High,
            indicator: def.indicator,
            inert,
            raw_median: median_of(xs),
            raw_max: xs
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(0.0, f64::max),
            upper: TailCalibration::fit_floored(name, &t, floor),
            lower,
        }
    }

    /// The surprise of raw value `x` (0 when it is within the normal range).
    pub fn apply(&self, x: f64) -> f64 {
        if self.inert {
            return 0.0;
        }
        let t = transform(x, self.log);
        match &self.lower {
            Some(lower) if !self.one_sided => {
                surprise((2.0 * self.upper.p_value(t).min(lower.p_value(-t))).min(1.0))
            }
            _ => self.upper.surprise(t),
        }
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
    fn one_sided_and_graded_beyond_training() {
        let s = FeatureScale::fit(&FAMILIES[1], "rate.exec", &[1.0, 2.0, 3.0, 2.0, 1000.0]);
        assert_eq!(s.raw_median, 2.0);
        assert!(s.apply(2.0) < 0.5);
        assert_eq!(s.apply(0.0), 0.0, "less than the norm is not suspicious");
        // Beyond the training range the surprise keeps growing: no clip, no tie.
        assert!(s.apply(1e6) > s.apply(1e4) && s.apply(1e4) > s.apply(1000.0));
        assert!(s.apply(1e12).is_finite());
        let both = FeatureScale::fit(&FAMILIES[2], "syscall.3", &[0.5, 0.5, 0.5, 0.55]);
        assert!(both.apply(0.0) > 1.0, "{}", both.apply(0.0));
        assert!(both.apply(0.5) < 0.5);
    }

    #[test]
    fn novelty_of_counts_and_of_means() {
        let ind = FeatureScale::fit(def("exe.writable_path"), "exe.writable_path", &[0.0; 30]);
        // Never seen in 30 training workloads: beyond the empirical 1/31, graded by count.
        assert!(ind.apply(1.0) > (31f64).log10(), "{}", ind.apply(1.0));
        assert!(ind.apply(10.0) > ind.apply(1.0) + 1.0);
        assert_eq!(ind.apply(f64::NAN), 0.0);
        let some = FeatureScale::fit(
            def("file.written_then_executed"),
            "file.written_then_executed",
            &[0.0, 0.0, 0.0, 1.0],
        );
        assert!(
            some.apply(1.0) < ind.apply(1.0),
            "an indicator some normal workloads show is less surprising than one never seen"
        );
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
        assert!(seen.apply(4.5) > 1.0);
    }
}
