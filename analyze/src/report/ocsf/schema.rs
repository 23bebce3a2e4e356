//! The OCSF objects a Detection Finding record is made of: typed, so serde encodes every
//! string (attacker-controlled ones included) and nothing is spliced into JSON by hand. Field
//! names are OCSF 1.5.0 attribute names; `type` is spelt `kind` here.

use std::collections::BTreeMap;

use serde::Serialize;

/// One Detection Finding.
#[derive(Debug, Serialize)]
pub struct DetectionFinding {
    pub(crate) activity_id: u8,
    pub(crate) activity_name: &'static str,
    pub(crate) category_uid: u8,
    pub(crate) category_name: &'static str,
    pub(crate) class_uid: u32,
    pub(crate) class_name: &'static str,
    pub(crate) type_uid: u32,
    pub(crate) type_name: &'static str,
    /// When the finding's last evidence happened (ms since the epoch): a re-run over the same
    /// traces gives the same record.
    pub(crate) time: i64,
    pub(crate) start_time: i64,
    pub(crate) end_time: i64,
    pub(crate) severity_id: u8,
    pub(crate) severity: &'static str,
    pub(crate) status_id: u8,
    pub(crate) status: &'static str,
    pub(crate) confidence_id: u8,
    pub(crate) confidence: &'static str,
    pub(crate) is_alert: bool,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) count: Option<u64>,
    pub(crate) metadata: Metadata,
    /// The finding itself.
    pub finding_info: FindingInfo,
    pub(crate) resources: Vec<Resource>,
    pub(crate) evidences: Vec<Evidences>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) anomaly_analyses: Vec<AnomalyAnalysis>,
    pub(crate) unmapped: Unmapped,
}

#[derive(Debug, Serialize)]
pub(crate) struct Metadata {
    pub(crate) version: &'static str,
    pub(crate) product: Product,
    pub(crate) uid: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Product {
    pub(crate) name: &'static str,
    pub(crate) vendor_name: &'static str,
    pub(crate) version: &'static str,
    pub(crate) feature: Feature,
}

#[derive(Debug, Serialize)]
pub(crate) struct Feature {
    pub(crate) name: &'static str,
}

/// `finding_info`.
#[derive(Debug, Serialize)]
pub struct FindingInfo {
    /// Stable id: the same evidence gives the same uid.
    pub uid: String,
    /// The GuardDuty-style finding type.
    pub title: String,
    pub(crate) types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) desc: Option<String>,
    pub(crate) first_seen_time: i64,
    pub(crate) last_seen_time: i64,
    pub(crate) analytic: Analytic,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) related_analytics: Vec<Analytic>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) attacks: Vec<Attack>,
    pub(crate) data_sources: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Analytic {
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) type_id: u8,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct Attack {
    pub(crate) technique: Technique,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sub_technique: Option<Technique>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Technique {
    pub(crate) uid: String,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Resource {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hostname: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Evidences {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) process: Option<Process>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<File>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dst_endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) query: Option<DnsQuery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) container: Option<Container>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) data: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cmd_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<File>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<User>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) ancestry: Vec<ProcessEntity>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProcessEntity {
    pub(crate) name: String,
    pub(crate) path: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct User {
    pub(crate) uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct File {
    pub(crate) name: String,
    pub(crate) path: String,
    /// 1 = Regular File (OCSF's file type enum).
    pub(crate) type_id: u8,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) hashes: Vec<Fingerprint>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Fingerprint {
    /// 3 = SHA-256.
    pub(crate) algorithm_id: u8,
    pub(crate) algorithm: &'static str,
    pub(crate) value: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DnsQuery {
    pub(crate) hostname: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Container {
    pub(crate) uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<Image>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Image {
    pub(crate) uid: String,
    pub(crate) name: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct AnomalyAnalysis {
    pub(crate) analysis_targets: Vec<AnalysisTarget>,
    pub(crate) anomalies: Vec<Observed>,
    pub(crate) baselines: Vec<Observed>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AnalysisTarget {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
}

/// An `anomaly` or a `baseline` object (same shape).
#[derive(Debug, Serialize)]
pub(crate) struct Observed {
    pub(crate) observation_parameter: String,
    pub(crate) observation_type: String,
    pub(crate) observations: Vec<Observation>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Observation {
    pub(crate) value: String,
}

/// needle's own fields (OCSF's `unmapped`).
#[derive(Debug, Serialize)]
pub(crate) struct Unmapped {
    pub(crate) workload: String,
    pub(crate) rank: usize,
    pub(crate) score: f64,
    pub(crate) parts: crate::rank::Parts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) peer_group: Option<String>,
    pub(crate) model: String,
    pub(crate) threshold: f64,
}
