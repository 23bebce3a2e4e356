//! The JSON contract: `{"workloads": [...], "inputs": {...}}` (see analyze/README.md).

use serde::Serialize;

use super::Report;
use crate::features::FeatureTable;
use crate::rank::{Contribution, Finding, Parts};
use crate::scan::InputSummary;
use crate::suppress::Suppressed;
use crate::timefmt::rfc3339;

/// One ranked workload.
#[derive(Debug, Serialize)]
pub struct WorkloadReport {
    /// Container id, or `host:<host>:cgroup-<id>`.
    pub workload: String,
    /// Container name.
    pub name: Option<String>,
    /// Image.
    pub image: Option<String>,
    /// Kubernetes pod.
    pub pod: Option<String>,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Ground-truth label, in labelled datasets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Higher = more suspicious; the sort key (`parts.findings + parts.anomaly`).
    pub score: f64,
    /// 1 = most suspicious.
    pub rank: usize,
    /// What the score is made of.
    pub parts: Parts,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Findings the user's suppression rules silenced (type and rule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Suppressed>,
    /// The features that drove the anomaly, with their value and the reference's median.
    pub features: Vec<Contribution>,
    /// The peer group the workload was compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_group: Option<String>,
    /// When behaviour not seen during its start-up began, and the process subtree that
    /// carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<crate::features::Change>,
    /// First event (RFC 3339).
    pub first_seen: String,
    /// Last event (RFC 3339).
    pub last_seen: String,
    /// Hosts the workload ran on.
    pub hosts: Vec<String>,
    /// Events the capture lost on those hosts while recording (the features may miss some).
    pub host_events_lost: u64,
    /// Values dropped because a per-workload set was full (distinct counts are lower bounds).
    #[serde(skip_serializing_if = "is_zero")]
    pub capped: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The whole JSON document.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// Ranked workloads, most suspicious first.
    pub workloads: Vec<WorkloadReport>,
    /// What was read.
    pub inputs: &'a InputSummary,
}

impl<'a> JsonReport<'a> {
    /// The document for `report`.
    pub fn new(report: &Report<'a>) -> JsonReport<'a> {
        let workloads = report
            .ranked
            .iter()
            .filter_map(|r| {
                let w = report.table.rows.get(r.row)?;
                Some(WorkloadReport {
                    workload: w.workload.clone(),
                    name: w.context.name.clone(),
                    image: w.context.image.clone(),
                    pod: w.context.pod.clone(),
                    namespace: w.context.namespace.clone(),
                    label: w.context.label.clone(),
                    score: r.score,
                    rank: r.rank,
                    parts: r.parts.clone(),
                    findings: r.findings.clone(),
                    suppressed: r.suppressed.clone(),
                    features: r.contributions.clone(),
                    peer_group: r.peer_group.clone(),
                    change: w.change.clone(),
                    first_seen: rfc3339(w.first_ns),
                    last_seen: rfc3339(w.last_ns),
                    hosts: w.hosts.clone(),
                    host_events_lost: report.inputs.events_lost_on(&w.hosts),
                    capped: w.capped,
                })
            })
            .collect();
        JsonReport {
            workloads,
            inputs: report.inputs,
        }
    }
}

/// The feature table as JSON: one object per workload with every feature by name.
pub fn features_json(table: &FeatureTable) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = table
        .rows
        .iter()
        .map(|w| {
            let features: serde_json::Map<String, serde_json::Value> = table
                .columns
                .iter()
                .zip(&w.values)
                .map(|(c, v)| (c.name.clone(), serde_json::json!(v)))
                .collect();
            serde_json::json!({
                "workload": w.workload,
                "name": w.context.name,
                "image": w.context.image,
                "pod": w.context.pod,
                "namespace": w.context.namespace,
                "label": w.context.label,
                "features": features,
            })
        })
        .collect();
    serde_json::json!({ "workloads": rows })
}
