//! Scoring and ordering workloads, most suspicious first.
//!
//! Two kinds of sources plug in here:
//! * a [`Model`] scores every row of the feature table (higher = more anomalous) and says which
//!   features drove each score; the baseline is [`PeerOutlier`], trained models
//!   (`crate::models::Scorer`) calibrate their own threshold;
//! * a [`Signature`] names findings for one workload (known-bad behaviour, threat intel).
//!
//! Order: workloads with a High or Critical finding first; within each tier, the highest model
//! score first. The reported score is that model score plus a weight per signature finding
//! ([`Severity::weight`]). A workload whose model score reaches the model's threshold
//! ([`ANOMALY_THRESHOLD`] for the baseline) without
//! any signature finding, and among whose top features an indicator feature (a binary from a
//! writable place, a shell from a server, …) deviates by at least [`INDICATOR_Z`], gets an
//! `Execution:Runtime/AnomalousBehavior` finding: being busier than the peers ranks a workload
//! higher but is no finding by itself.

mod peer;

use serde::Serialize;

pub use peer::{PeerNorm, PeerOutlier, TOP_CONTRIBUTIONS, Z_MAX, peer_norm};

use crate::features::{FeatureTable, WorkloadFeatures};
use crate::scan::rfc3339;

/// Model score from which a workload without signature findings is reported as anomalous.
pub const ANOMALY_THRESHOLD: f64 = 8.0;
/// Robust z-score from which an indicator feature (see `FeatureDef::indicator`) supports the
/// anomaly finding.
pub const INDICATOR_Z: f64 = 3.0;
/// Finding type of the learned-behaviour baseline (see DETECTIONS.md).
pub const ANOMALOUS_BEHAVIOR: &str = "Execution:Runtime/AnomalousBehavior";

/// One feature's part in a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contribution {
    /// Feature name.
    pub feature: String,
    /// The workload's value.
    pub value: f64,
    /// Median of the peers' values (the norm it was compared with).
    pub peer_median: f64,
    /// Robust z-score (clipped).
    pub z: f64,
}

/// A model's verdict on one workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelScore {
    /// Higher = more anomalous.
    pub score: f64,
    /// The features that drove it, strongest first.
    pub contributions: Vec<Contribution>,
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    #[default]
    Low,
    /// Suspicious.
    Medium,
    /// Likely malicious.
    High,
    /// Known-bad.
    Critical,
}

impl Severity {
    /// Points a finding of this severity adds to a workload's score.
    pub fn weight(self) -> f64 {
        match self {
            Severity::Low => 5.0,
            Severity::Medium => 10.0,
            Severity::High => 20.0,
            Severity::Critical => 40.0,
        }
    }
}

/// One piece of evidence behind a finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    /// What was seen (a feature name, or an event description).
    pub what: String,
    /// Its value, when numeric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The peer norm it was compared with, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_median: Option<f64>,
}

/// The process a finding is about.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Stable process key (`<tgid>@<start ticks>`), when the trace has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_key: Option<String>,
    /// Executable path.
    pub exe: Option<String>,
    /// argv of its (last) exec, when seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<String>,
    /// SHA-256 of the executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Real user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Executables of the ancestors, parent first.
    pub ancestry: Vec<String>,
}

/// One event behind a finding: when, what, which process, and its key fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EventEvidence {
    /// Event time (RFC 3339).
    pub time: String,
    /// Event time, ns since the epoch (for ordering).
    #[serde(skip)]
    pub time_ns: i64,
    /// Event kind.
    pub kind: String,
    /// Process id.
    pub pid: u32,
    /// Executable of the process.
    pub exe: Option<String>,
    /// Kind-specific fields (argv, path, mode, address, port, DNS name…).
    pub fields: std::collections::BTreeMap<String, String>,
}

/// A named finding (GuardDuty Runtime Monitoring type names).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Finding {
    /// Finding type, e.g. `Execution:Runtime/AnomalousBehavior`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Severity.
    pub severity: Severity,
    /// Time of the first evidence (RFC 3339).
    pub first_seen: String,
    /// Time of the last evidence (RFC 3339).
    pub last_seen: String,
    /// What supports it (features and their peer norms, for model findings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Signature rules that raised it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// One line saying what was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The process that did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
    /// The events that matched, in time order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventEvidence>,
    /// How many times the rules matched in this workload.
    #[serde(skip_serializing_if = "is_zero")]
    pub occurrences: u64,
    /// Related events of the same process lineage (ancestors and descendants), in time order:
    /// the story around the finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<EventEvidence>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Scores every workload of a feature table.
pub trait Model: Send + Sync {
    /// Short name, for reports.
    fn name(&self) -> &str;
    /// One score per row of `table`, in row order.
    fn score(&self, table: &FeatureTable) -> Vec<ModelScore>;
    /// Score from which a workload may get the anomaly finding (with an indicator feature
    /// among its top deviations); trained models calibrate their own.
    fn anomaly_threshold(&self) -> f64 {
        ANOMALY_THRESHOLD
    }
    /// Score from which that finding is `high` (and so ranks in the top tier).
    fn anomaly_high_from(&self) -> f64 {
        2.0 * ANOMALY_THRESHOLD
    }
}

/// Names findings for one workload.
pub trait Signature: Send + Sync {
    /// Short name, for reports.
    fn name(&self) -> &str;
    /// Findings for `workload` (a row of `table`).
    fn evaluate(&self, workload: &WorkloadFeatures, table: &FeatureTable) -> Vec<Finding>;
}

/// A workload's place in the ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    /// Row of the feature table.
    pub row: usize,
    /// 1 = most suspicious.
    pub rank: usize,
    /// Combined score: the model score plus the signature points.
    pub score: f64,
    /// The model score alone (orders workloads within a tier).
    pub anomaly: f64,
    /// 1 when the workload has a High or Critical finding (ranked before all others), else 0.
    pub tier: u8,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// The features that drove the model score.
    pub contributions: Vec<Contribution>,
}

/// Models and signatures, combined into one ordering.
pub struct Ranker {
    models: Vec<Box<dyn Model>>,
    signatures: Vec<Box<dyn Signature>>,
}

impl Default for Ranker {
    fn default() -> Self {
        Ranker::baseline()
    }
}

impl Ranker {
    /// The unsupervised baseline alone.
    pub fn baseline() -> Self {
        Ranker {
            models: vec![Box::new(PeerOutlier)],
            signatures: Vec::new(),
        }
    }

    /// These models and no signature (yet).
    pub fn with_models(models: Vec<Box<dyn Model>>) -> Self {
        Ranker {
            models,
            signatures: Vec::new(),
        }
    }

    /// Adds a model.
    pub fn with_model(mut self, m: Box<dyn Model>) -> Self {
        self.models.push(m);
        self
    }

    /// Adds a signature.
    pub fn with_signature(mut self, s: Box<dyn Signature>) -> Self {
        self.signatures.push(s);
        self
    }

    /// Scores and orders every workload of `table`, most suspicious first: workloads with a
    /// High or Critical finding before the others; within each tier, by model score (then by
    /// signature points).
    pub fn rank(&self, table: &FeatureTable) -> Vec<Ranked> {
        let model_scores: Vec<(Vec<ModelScore>, f64, f64)> = self
            .models
            .iter()
            .map(|m| (m.score(table), m.anomaly_threshold(), m.anomaly_high_from()))
            .collect();
        let mut ranked: Vec<Ranked> = table
            .rows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let (best, threshold, high_from) = model_scores
                    .iter()
                    .filter_map(|(s, t, h)| s.get(i).map(|s| (s, *t, *h)))
                    .max_by(|a, b| a.0.score.total_cmp(&b.0.score))
                    .map(|(s, t, h)| (s.clone(), t, h))
                    .unwrap_or((
                        ModelScore::default(),
                        ANOMALY_THRESHOLD,
                        2.0 * ANOMALY_THRESHOLD,
                    ));
                let mut findings: Vec<Finding> = self
                    .signatures
                    .iter()
                    .flat_map(|s| s.evaluate(w, table))
                    .collect();
                let signature_points: f64 = findings.iter().map(|f| f.severity.weight()).sum();
                let indicated = best.contributions.iter().any(|c| {
                    c.z >= INDICATOR_Z
                        && table
                            .column(&c.feature)
                            .is_some_and(|i| table.columns[i].def.indicator)
                });
                if findings.is_empty() && best.score >= threshold && best.score > 0.0 && indicated {
                    findings.push(anomaly_finding(w, &best, high_from));
                }
                findings.sort_by(|a, b| {
                    b.severity
                        .cmp(&a.severity)
                        .then_with(|| a.kind.cmp(&b.kind))
                });
                let tier = u8::from(findings.iter().any(|f| f.severity >= Severity::High));
                Ranked {
                    row: i,
                    rank: 0,
                    score: best.score + signature_points,
                    anomaly: best.score,
                    tier,
                    findings,
                    contributions: best.contributions,
                }
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.tier
                .cmp(&a.tier)
                .then_with(|| b.anomaly.total_cmp(&a.anomaly))
                .then_with(|| b.score.total_cmp(&a.score))
                .then_with(|| table.rows[a.row].workload.cmp(&table.rows[b.row].workload))
        });
        for (i, r) in ranked.iter_mut().enumerate() {
            r.rank = i + 1;
        }
        ranked
    }
}

fn anomaly_finding(w: &WorkloadFeatures, s: &ModelScore, high_from: f64) -> Finding {
    let severity = if s.score >= high_from {
        Severity::High
    } else {
        Severity::Medium
    };
    Finding {
        kind: ANOMALOUS_BEHAVIOR.to_string(),
        severity,
        first_seen: rfc3339(w.first_ns),
        last_seen: rfc3339(w.last_ns),
        evidence: s
            .contributions
            .iter()
            .map(|c| Evidence {
                what: c.feature.clone(),
                value: Some(c.value),
                peer_median: Some(c.peer_median),
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
