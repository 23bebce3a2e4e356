//! Scores on one scale: a detector's raw score becomes the probability that a *normal*
//! workload (or trace) scores at least as high, read off scores of normal data that the
//! detector was not fitted on.
//!
//! Raw scores of different detectors mean different things (bits per call, a distance, a
//! count of foreign windows); their tail probabilities under normal data mean the same thing,
//! so they can be compared and combined. Within the calibration sample the probability is the
//! empirical one, `(1 + #{s ≥ x}) / (n + 1)` (the conformal p-value: never 0). Beyond the
//! sample's upper tail it continues as an exponential fitted to the top scores (peaks over a
//! threshold, shape 0; never above the empirical probability), so that two scores beyond
//! anything seen in calibration still order and do not tie at `1 / (n + 1)`.
//!
//! A score is reported as *surprise*, `−log10 p`: 0 for a typical normal score, 1 for a
//! one-in-ten tail, 3 for one in a thousand. [`sidak`] combines several calibrated parts into
//! one probability with a correction for having looked at several (the smallest of `m`
//! independent uniform p-values is not uniform).

use serde::{Deserialize, Serialize};

/// Largest surprise reported (p = 1e-300): keeps every score finite.
pub const MAX_SURPRISE: f64 = 300.0;

/// Fewest top scores the exponential tail is fitted on.
const MIN_TAIL: usize = 3;

/// One detector's calibration: its raw scores on normal data it was not fitted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TailCalibration {
    /// What is calibrated (a detector or part name).
    pub name: String,
    /// The calibration scores, sorted ascending.
    pub sorted: Vec<f64>,
    /// Threshold of the exponential tail: the largest calibration score below the tail.
    pub tail_from: f64,
    /// Number of calibration scores above [`TailCalibration::tail_from`].
    pub tail_count: usize,
    /// Mean excess of those scores over the threshold (the exponential's scale, floored).
    pub tail_scale: f64,
}

impl TailCalibration {
    /// Fits the calibration of `name` to raw scores of normal data (NaN scores are dropped).
    /// With no score at all every raw score has probability 1.
    pub fn fit(name: &str, scores: &[f64]) -> TailCalibration {
        TailCalibration::fit_floored(name, scores, 0.0)
    }

    /// Like [`TailCalibration::fit`], with the tail's scale at least `min_scale`: the
    /// resolution of the score (a count feature's tail must not decay faster than one more
    /// event is worth, however tightly the normal data bunch).
    pub fn fit_floored(name: &str, scores: &[f64], min_scale: f64) -> TailCalibration {
        let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| !s.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        // The top tenth, at least MIN_TAIL scores, never the whole sample.
        let k = (n / 10).max(MIN_TAIL).min(n.saturating_sub(1));
        let (tail_from, tail_count, tail_scale) = if k == 0 {
            (sorted.last().copied().unwrap_or(0.0), 0, 1.0)
        } else {
            let u = sorted[n - k - 1];
            let excess = sorted[n - k..].iter().map(|s| s - u).sum::<f64>() / k as f64;
            // Ties (a detector that scores most normal data 0) leave no excess: floor the
            // scale on the sample's spread (or, with no spread at all, on the score's
            // magnitude) so the tail still decays at a sane rate and keeps ordering.
            let spread = sorted[n - 1] - sorted[0];
            let floor = if spread > 0.0 {
                0.05 * spread
            } else {
                0.1 * u.abs().max(1.0)
            };
            (u, k, excess.max(floor).max(min_scale))
        };
        TailCalibration {
            name: name.to_string(),
            sorted,
            tail_from,
            tail_count,
            tail_scale,
        }
    }

    /// Calibration scores.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True when fitted on nothing.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Probability that a normal score is at least `x` (in `(0, 1]`; non-increasing in `x`).
    pub fn p_value(&self, x: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 || x.is_nan() {
            return 1.0;
        }
        let at_least = n - self.sorted.partition_point(|&s| s < x);
        let empirical = (1 + at_least) as f64 / (n + 1) as f64;
        if self.tail_count == 0 || x <= self.tail_from {
            return empirical;
        }
        let tail = (1 + self.tail_count) as f64 / (n + 1) as f64
            * (-(x - self.tail_from) / self.tail_scale).exp();
        // Where the top of the sample ties (most normal workloads at 0) the model of the tail
        // is looser than what was seen: nothing in the sample reached x.
        tail.min(empirical).clamp(10f64.powf(-MAX_SURPRISE), 1.0)
    }

    /// `−log10` of [`TailCalibration::p_value`]: 0 for typical normal scores, open-ended.
    pub fn surprise(&self, x: f64) -> f64 {
        surprise(self.p_value(x))
    }
}

/// Surprise (see [`surprise`]) a family's deviations must pass before they count towards a
/// workload's score: 1 = a one-in-ten deviation, which every workload has somewhere.
pub const FAMILY_FLOOR: f64 = 1.0;

/// The family of a feature: its name up to the first `.` (`exe`, `net`, `dns`, `syscall`,
/// `events`…). Features of one family measure related things (a new executable moves
/// `exe.distinct` and `exe.writable_path` together) and are not independent evidence. The
/// change after start-up (`late.*`) is grouped by what changed, as the other families are:
/// new executables (`late.exe`), destinations (`late.net`) and DNS names (`late.dns`) — a
/// destination that keeps coming back moves `late.new_destinations` and
/// `late.recurring_destinations` together, but says nothing about the executables.
pub fn family(feature: &str) -> &str {
    if let Some(change) = feature.strip_prefix("late.") {
        return match change.rsplit('_').next() {
            Some("executables") => "late.exe",
            Some("destinations") => "late.net",
            Some("domains") => "late.dns",
            _ => "late",
        };
    }
    feature.split('.').next().unwrap_or(feature)
}

/// Per-feature surprises (`(feature name, surprise)`) summed into one workload score: within a
/// family the largest counts fully, the next half, the next a quarter, … (related features
/// confirm each other but are not independent evidence); across families each family's score
/// beyond [`FAMILY_FLOOR`] adds up, so two independent anomalies outrank one and the many
/// one-in-ten deviations of any ordinary workload add nothing. The result is in surprise units
/// (a single family at 6 contributes 5).
pub fn family_sum<'a>(surprises: impl IntoIterator<Item = (&'a str, f64)>) -> f64 {
    let mut by_family: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for (name, s) in surprises {
        if s.is_finite() && s > 0.0 {
            by_family.entry(family(name)).or_default().push(s);
        }
    }
    by_family
        .into_values()
        .map(|mut v| {
            v.sort_by(|a, b| b.total_cmp(a));
            let within: f64 = v
                .iter()
                .take(16)
                .enumerate()
                .map(|(i, s)| s / f64::from(1u32 << i))
                .sum();
            (within - FAMILY_FLOOR).max(0.0)
        })
        .sum::<f64>()
        + 0.0 // an empty f64 sum is −0.0
}

/// Median of `v` (sorts it); 0 for empty.
pub fn median(v: &mut [f64]) -> f64 {
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

/// `−log10 p`, capped at [`MAX_SURPRISE`].
pub fn surprise(p: f64) -> f64 {
    // (+ 0.0: −log10 1 is −0.0.)
    (-p.max(10f64.powf(-MAX_SURPRISE)).log10()).clamp(0.0, MAX_SURPRISE) + 0.0
}

/// The Šidák-corrected smallest of `ps`: the probability that the smallest of `ps.len()`
/// independent uniform p-values is at most the smallest observed. One part far in its tail
/// decides; looking at more parts costs a little. 1 when `ps` is empty.
pub fn sidak(ps: &[f64]) -> f64 {
    let Some(min) = ps.iter().copied().filter(|p| !p.is_nan()).reduce(f64::min) else {
        return 1.0;
    };
    let m = ps.len() as f64;
    // 1 − (1 − p)^m, computed without cancellation for small p.
    let p = min.clamp(0.0, 1.0);
    (-(m * (-p).ln_1p()).exp_m1()).clamp(p, 1.0)
}

/// Fisher's combination of `ps`: the probability that `−2 Σ ln p` of `ps.len()` independent
/// uniform p-values is at least the observed (the χ² tail with `2·len` degrees of freedom,
/// computed in log space so tiny p-values do not underflow). Every part's evidence adds up:
/// several parts moderately in their tails outweigh one. 1 when `ps` is empty.
pub fn fisher(ps: &[f64]) -> f64 {
    let ps: Vec<f64> = ps.iter().copied().filter(|p| !p.is_nan()).collect();
    if ps.is_empty() {
        return 1.0;
    }
    let floor = 10f64.powf(-MAX_SURPRISE);
    // x/2 = −Σ ln p; P(χ²_{2k} ≥ x) = e^{−x/2} Σ_{j<k} (x/2)^j / j!.
    let half: f64 = ps.iter().map(|p| -p.clamp(floor, 1.0).ln()).sum();
    let (mut term, mut sum) = (0.0f64, f64::NEG_INFINITY); // logs
    for j in 0..ps.len() {
        if j > 0 {
            term += half.ln() - (j as f64).ln();
        }
        sum = log_add(sum, term);
    }
    (sum - half).exp().clamp(floor, 1.0)
}

/// `ln(e^a + e^b)`.
fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_damp_related_features_and_add_independent_ones() {
        // One strong deviation.
        let one = family_sum([("exe.writable_path", 6.0)]);
        assert!((one - 5.0).abs() < 1e-12);
        // The same anomaly seen by a related feature adds half, not all.
        let related = family_sum([("exe.writable_path", 6.0), ("exe.distinct", 6.0)]);
        assert!((related - 8.0).abs() < 1e-12, "{related}");
        // An independent anomaly of another family adds fully.
        let two = family_sum([("exe.writable_path", 6.0), ("net.unusual_ports", 6.0)]);
        assert!((two - 10.0).abs() < 1e-12 && two > related);
        // Ordinary one-in-ten deviations everywhere add nothing.
        let noise = family_sum([
            ("exe.distinct", 0.9),
            ("net.outbound", 0.7),
            ("dns.queries", 1.0),
        ]);
        assert_eq!(noise, 0.0);
        assert_eq!(family_sum([("x", f64::NAN), ("y", -1.0)]), 0.0);
        assert_eq!(family("syscall.59"), "syscall");
        assert_eq!(family("lifetime_s"), "lifetime_s");
        assert_eq!(family("late.new_destinations"), "late.net");
        assert_eq!(family("late.recurring_destinations"), "late.net");
        assert_eq!(family("late.recurring_domains"), "late.dns");
        assert_eq!(family("late.new_executables"), "late.exe");
    }

    #[test]
    fn empirical_inside_the_sample_exponential_beyond_it() {
        let scores: Vec<f64> = (1..=99).map(f64::from).collect();
        let c = TailCalibration::fit("d", &scores);
        // Half the sample scores at least 50: p ≈ 0.5.
        assert!((c.p_value(50.0) - 51.0 / 100.0).abs() < 1e-12);
        assert_eq!(c.p_value(-5.0), 1.0);
        // Beyond the sample the probability keeps falling: no tie at 1/(n+1).
        let (a, b) = (c.p_value(120.0), c.p_value(200.0));
        assert!(a < 1.0 / 100.0 && b < a && b > 0.0, "{a} {b}");
        // Continuous where the tail starts, and non-increasing everywhere.
        let at = c.tail_from;
        assert!((c.p_value(at + 1e-9) - c.p_value(at + 1e-6)).abs() < 1e-6);
        let mut last = 1.0;
        for i in 0..4000 {
            let p = c.p_value(f64::from(i) * 0.1 - 10.0);
            assert!(p <= last + 1e-15, "at {i}: {p} > {last}");
            last = p;
        }
        assert!(c.surprise(50.0) < 0.3 && c.surprise(200.0) > 3.0);
    }

    #[test]
    fn ties_and_tiny_samples_stay_finite_and_ordered() {
        let zeros = vec![0.0; 40];
        let c = TailCalibration::fit("zeros", &zeros);
        assert_eq!(c.p_value(0.0), 1.0);
        assert!(c.p_value(0.5) > c.p_value(1.0) && c.p_value(1.0) > 0.0);
        assert!(c.surprise(1e9).is_finite() && c.surprise(1e9) <= MAX_SURPRISE);
        let empty = TailCalibration::fit("none", &[]);
        assert_eq!(empty.p_value(3.0), 1.0);
        let one = TailCalibration::fit("one", &[2.0]);
        assert_eq!(one.p_value(1.0), 1.0);
        assert_eq!(one.p_value(3.0), 0.5);
        assert!(TailCalibration::fit("nan", &[f64::NAN, 1.0]).len() == 1);
    }

    #[test]
    fn fisher_adds_evidence_up() {
        assert_eq!(fisher(&[]), 1.0);
        assert!((fisher(&[0.2]) - 0.2).abs() < 1e-12);
        // Two parts at 0.05: x = −2 ln 0.0025 ≈ 11.98 on 4 df → p = 0.0025 (1 − ln 0.0025).
        let two = fisher(&[0.05, 0.05]);
        let want = 0.0025 * (1.0 - 0.0025f64.ln());
        assert!((two - want).abs() < 1e-12, "{two} vs {want}");
        assert!(fisher(&[0.05, 0.05, 0.05]) < fisher(&[0.01, 0.9, 0.9]));
        assert!(fisher(&[1.0, 1.0]) == 1.0 && fisher(&[1e-280, 1e-280]) > 0.0);
        assert!(fisher(&[0.01, 0.5]) < fisher(&[0.02, 0.5]));
    }

    #[test]
    fn sidak_corrects_for_the_number_of_parts() {
        assert_eq!(sidak(&[]), 1.0);
        assert!((sidak(&[0.01]) - 0.01).abs() < 1e-15);
        let two = sidak(&[0.01, 0.5]);
        assert!((two - (1.0 - 0.99f64.powi(2))).abs() < 1e-12, "{two}");
        // Tiny p-values do not vanish through cancellation.
        let tiny = sidak(&[1e-200, 0.3, 0.9]);
        assert!((tiny / 3e-200 - 1.0).abs() < 1e-9, "{tiny}");
        assert!(sidak(&[1.0, 1.0]) <= 1.0);
    }
}
