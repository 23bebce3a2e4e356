//! What a finding is: its type, severity, evidence, the process and events behind it — the
//! types the signature engine, the suppression rules, the ranking and the reports share, in a
//! module of their own so that data flows one way between them.

use serde::Serialize;

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
