//! Scoring and ordering workloads, most suspicious first.
//!
//! A workload's **score is its sort key**, the sum of two parts reported beside it:
//!
//! * `findings`: the weights of its signature findings ([`Severity::weight`], once per
//!   finding type), after the user's suppression rules ([`crate::suppress`]);
//! * `anomaly`: how unusual its behaviour is, in surprise units (`−log10` of a tail
//!   probability), from up to two [`Model`]s: the trained model (`model`: against the normal
//!   workloads it was trained on) and the peer groups ([`PeerGroups`], `peers`: against the
//!   workload's own peers in the input). The two parts answer one question against two
//!   references and combine by Fisher's method ([`fisher`]): one far tail still decides, and
//!   agreement counts — unusual against the training fleet *and* against its own peers
//!   outranks unusual against the training fleet alone (which a new kind of workload is).
//!
//! `time` reports how much of the anomaly comes from behaviour first seen after the
//! workload's start-up (the `late.*` features).
//!
//! A workload without any signature finding, among whose top features an indicator feature
//! (a binary from a writable place, a shell from a server, …) has a surprise of at least
//! [`INDICATOR_SURPRISE`], gets a medium `Execution:Runtime/AnomalousBehavior` finding when
//! its behaviour is extreme against every reference that can say so: with a trained model,
//! the model part reaches the model's threshold, and, when the workload has replicas (peers
//! of the same image or pod template), the peer part reaches [`ANOMALY_THRESHOLD`] too;
//! without one, the peer part reaches it against replicas. Differing from a namespace or a
//! whole fleet of unrelated workloads ranks a workload up but names nothing; being busier
//! than the peers ranks it higher but is no finding by itself; and an unusual workload is
//! not a named threat (medium).

mod peer;

use serde::Serialize;

pub use peer::{MIN_PEERS, PeerGroup, PeerGroups, feature_surprise, peer_groups, template_of};

use crate::calibrate::{fisher, surprise};
use crate::features::{FeatureTable, WorkloadFeatures};
pub use crate::finding::{EventEvidence, Evidence, Finding, ProcessInfo, Severity};
use crate::suppress::{Suppressed, Suppressions};
use crate::timefmt::rfc3339;

/// Anomaly (surprise units) from which a workload without signature findings may be reported
/// as anomalous; a trained model may ask for more.
pub const ANOMALY_THRESHOLD: f64 = 4.0;
/// Surprise from which an indicator feature (see `FeatureDef::indicator`) supports the
/// anomaly finding (a one-in-a-hundred deviation).
pub const INDICATOR_SURPRISE: f64 = 2.0;
/// Finding type of the learned-behaviour baseline (see DETECTIONS.md).
pub const ANOMALOUS_BEHAVIOR: &str = "Execution:Runtime/AnomalousBehavior";
/// How many contributing features are reported per workload.
pub const TOP_CONTRIBUTIONS: usize = 5;

/// One feature's part in a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contribution {
    /// Feature name.
    pub feature: String,
    /// The workload's value.
    pub value: f64,
    /// Median of the reference's values (the norm it was compared with: the peers, or the
    /// normal training workloads).
    pub peer_median: f64,
    /// How unusual the value is: `−log10` of its tail probability under the reference (for
    /// syscall n-grams: the model's surprisal in bits).
    pub surprise: f64,
}

/// A model's verdict on one workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelScore {
    /// Higher = more anomalous (surprise units).
    pub score: f64,
    /// The share of the score that comes from behaviour first seen after start-up.
    pub time: f64,
    /// The features that drove it, strongest first.
    pub contributions: Vec<Contribution>,
    /// What the workload was compared with (its peer group), when it says.
    pub basis: Option<String>,
    /// The reference is the workload's replicas (same image or pod template).
    pub replicas: bool,
    /// Nothing to compare with (a host workload without other hosts): no verdict.
    pub no_reference: bool,
}

/// Scores every workload of a feature table.
pub trait Model: Send + Sync {
    /// Short name, for reports.
    fn name(&self) -> &str;
    /// One score per row of `table`, in row order.
    fn score(&self, table: &FeatureTable) -> Vec<ModelScore>;
    /// Anomaly from which a workload may get the anomaly finding (with an indicator feature
    /// among its top deviations); trained models calibrate their own.
    fn anomaly_threshold(&self) -> f64 {
        ANOMALY_THRESHOLD
    }
}

/// Names findings for one workload.
pub trait Signature: Send + Sync {
    /// Short name, for reports.
    fn name(&self) -> &str;
    /// Findings for `workload` (a row of `table`).
    fn evaluate(&self, workload: &WorkloadFeatures, table: &FeatureTable) -> Vec<Finding>;
}

/// Findings computed in the scan (the signature engine's), handed to the ranker by workload
/// key.
pub struct ScanFindings(pub std::collections::HashMap<String, Vec<Finding>>);

impl Signature for ScanFindings {
    fn name(&self) -> &str {
        "signatures"
    }

    fn evaluate(&self, workload: &WorkloadFeatures, _: &FeatureTable) -> Vec<Finding> {
        self.0.get(&workload.workload).cloned().unwrap_or_default()
    }
}

/// The parts of a score.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Parts {
    /// Surprise against the trained model's normal workloads (None: no trained model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<f64>,
    /// Surprise against the workload's own peers in the input (None: peer groups off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<f64>,
    /// The two combined (Fisher): the anomaly part of the score.
    pub anomaly: f64,
    /// How much of the anomaly comes from behaviour first seen after start-up.
    pub time: f64,
    /// Signature finding weights.
    pub findings: f64,
}

/// A workload's place in the ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    /// Row of the feature table.
    pub row: usize,
    /// 1 = most suspicious.
    pub rank: usize,
    /// The sort key: `parts.findings + parts.anomaly`.
    pub score: f64,
    /// What the score is made of.
    pub parts: Parts,
    /// Findings, most severe first (suppressed ones removed).
    pub findings: Vec<Finding>,
    /// Findings the user's suppression rules silenced.
    pub suppressed: Vec<Suppressed>,
    /// The features that drove the anomaly, strongest first.
    pub contributions: Vec<Contribution>,
    /// The peer group it was compared with.
    pub peer_group: Option<String>,
}

/// Models, signatures and suppressions, combined into one ordering.
#[derive(Default)]
pub struct Ranker {
    model: Option<Box<dyn Model>>,
    peers: Option<Box<dyn Model>>,
    signatures: Vec<Box<dyn Signature>>,
    suppressions: Suppressions,
}

impl Ranker {
    /// The peer groups alone (no trained model).
    pub fn baseline() -> Self {
        Ranker {
            peers: Some(Box::new(PeerGroups)),
            ..Ranker::default()
        }
    }

    /// A trained model and the peer groups.
    pub fn with_model(m: Box<dyn Model>) -> Self {
        Ranker {
            model: Some(m),
            ..Ranker::baseline()
        }
    }

    /// A trained model alone, no peer groups (for evaluating the model by itself).
    pub fn model_only(m: Box<dyn Model>) -> Self {
        Ranker {
            model: Some(m),
            ..Ranker::default()
        }
    }

    /// Adds a signature.
    pub fn with_signature(mut self, s: Box<dyn Signature>) -> Self {
        self.signatures.push(s);
        self
    }

    /// Applies the user's suppression rules to every finding.
    pub fn with_suppressions(mut self, s: Suppressions) -> Self {
        self.suppressions = s;
        self
    }

    /// Scores and orders every workload of `table`, most suspicious first (by score, then by
    /// workload key).
    pub fn rank(&self, table: &FeatureTable) -> Vec<Ranked> {
        let model = self
            .model
            .as_ref()
            .map(|m| (m.score(table), m.anomaly_threshold()));
        let peers = self.peers.as_ref().map(|m| m.score(table));
        let threshold = model
            .as_ref()
            .map_or(ANOMALY_THRESHOLD, |m| m.1.max(ANOMALY_THRESHOLD));
        let mut ranked: Vec<Ranked> = table
            .rows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let m = model.as_ref().and_then(|(s, _)| s.get(i));
                let p = peers
                    .as_ref()
                    .and_then(|s| s.get(i))
                    .filter(|s| !s.no_reference);
                let present: Vec<&ModelScore> = m.into_iter().chain(p).collect();
                let anomaly = if present.is_empty() {
                    0.0
                } else {
                    let ps: Vec<f64> = present
                        .iter()
                        .map(|s| 10f64.powf(-s.score.max(0.0)))
                        .collect();
                    surprise(fisher(&ps))
                };
                // The part that decided: its features and time share explain the anomaly.
                let lead = present
                    .iter()
                    .copied()
                    .max_by(|a, b| a.score.total_cmp(&b.score));
                let contributions = lead.map(|s| s.contributions.clone()).unwrap_or_default();
                let found: Vec<Finding> = self
                    .signatures
                    .iter()
                    .flat_map(|s| s.evaluate(w, table))
                    .collect();
                let (mut findings, mut suppressed) = self.suppressions.apply(w, found);
                let indicated = contributions.iter().any(|c| {
                    c.surprise >= INDICATOR_SURPRISE
                        && table
                            .column(&c.feature)
                            .is_some_and(|i| table.columns[i].def.indicator)
                });
                let extreme = match (m, p) {
                    (Some(m), Some(p)) if p.replicas => {
                        m.score >= threshold && p.score >= ANOMALY_THRESHOLD
                    }
                    (Some(m), _) => m.score >= threshold,
                    (None, Some(p)) => p.replicas && p.score >= ANOMALY_THRESHOLD,
                    (None, None) => false,
                };
                if findings.is_empty() && extreme && indicated {
                    let (kept, silenced) = self
                        .suppressions
                        .apply(w, vec![anomaly_finding(w, &contributions)]);
                    findings.extend(kept);
                    suppressed.extend(silenced);
                }
                findings.sort_by(|a, b| {
                    b.severity
                        .cmp(&a.severity)
                        .then_with(|| a.kind.cmp(&b.kind))
                });
                // (+ 0.0: an empty f64 sum is −0.0.)
                let points: f64 = findings.iter().map(|f| f.severity.weight()).sum::<f64>() + 0.0;
                let parts = Parts {
                    model: m.map(|s| s.score),
                    peers: p.map(|s| s.score),
                    anomaly,
                    time: lead.map_or(0.0, |s| s.time.max(0.0)),
                    findings: points,
                };
                Ranked {
                    row: i,
                    rank: 0,
                    score: points + anomaly,
                    parts,
                    findings,
                    suppressed,
                    contributions,
                    peer_group: p.and_then(|s| s.basis.clone()),
                }
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| table.rows[a.row].workload.cmp(&table.rows[b.row].workload))
        });
        for (i, r) in ranked.iter_mut().enumerate() {
            r.rank = i + 1;
        }
        ranked
    }
}

fn anomaly_finding(w: &WorkloadFeatures, contributions: &[Contribution]) -> Finding {
    Finding {
        kind: ANOMALOUS_BEHAVIOR.to_string(),
        severity: Severity::Medium,
        first_seen: rfc3339(w.first_ns),
        last_seen: rfc3339(w.last_ns),
        evidence: contributions
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
