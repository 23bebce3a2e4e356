//! OCSF Detection Finding records (class 2004, schema [`OCSF_VERSION`]): one per finding, as
//! newline-delimited JSON — what AWS Security Lake, Security Hub and most SIEMs ingest.
//!
//! Every record is built from typed structs and encoded by serde: attacker-controlled strings
//! (paths, argv, DNS names) are JSON-escaped, never spliced into text. A record's
//! `finding_info.uid` is a digest of the workload, the finding type, its rules and its
//! evidence events, so the same evidence gives the same uid in every run.

mod schema;

use std::collections::BTreeMap;
use std::io::Write;

use schema::*;
pub use schema::{DetectionFinding, FindingInfo};

use crate::rank::{
    ANOMALOUS_BEHAVIOR, Contribution, EventEvidence, Finding, ProcessInfo, Severity,
};
use crate::report::{FindingRef, Report, ReportError, findings_of, fmt_value};

/// The OCSF schema version the records follow.
pub const OCSF_VERSION: &str = "1.5.0";

/// What the records need besides the ranking: the model that scored and each rule's MITRE
/// ATT&CK techniques.
#[derive(Clone, Debug, Default)]
pub struct Analytics {
    /// Name of the model that scored (file name, or `peer-group baseline`).
    pub model: String,
    /// The model is a trained one (else the unsupervised peer-group baseline).
    pub trained: bool,
    /// Anomaly (surprise units) from which a workload counts as anomalous.
    pub threshold: f64,
    /// Rule id → MITRE ATT&CK technique ids.
    pub mitre: BTreeMap<String, Vec<String>>,
}

/// Milliseconds since the epoch of an RFC 3339 time (None when it does not parse).
pub(crate) fn rfc3339_ms(s: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// A finding's id: a digest of what identifies its evidence, the same in every run.
pub fn finding_uid(workload: &str, f: &Finding) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        "needle-finding-1",
        workload,
        &f.kind,
        &f.rules.join(","),
        &f.first_seen,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for e in &f.events {
        h.update(format!(
            "{}|{}|{}|{}",
            e.time_ns,
            e.kind,
            e.pid,
            e.exe.as_deref().unwrap_or("")
        ));
        for (k, v) in &e.fields {
            h.update(k.as_bytes());
            h.update([1]);
            h.update(v.as_bytes());
            h.update([1]);
        }
        h.update([0]);
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn file(path: &str, sha256: Option<&str>) -> File {
    File {
        name: basename(path),
        path: path.to_string(),
        type_id: 1,
        hashes: sha256
            .map(|v| Fingerprint {
                algorithm_id: 3,
                algorithm: "SHA-256",
                value: v.to_string(),
            })
            .into_iter()
            .collect(),
    }
}

fn process(p: &ProcessInfo) -> Process {
    Process {
        pid: p.pid,
        uid: p.process_key.clone(),
        name: p.exe.as_deref().map(basename),
        cmd_line: p.argv.clone(),
        file: p.exe.as_deref().map(|e| file(e, p.sha256.as_deref())),
        user: p.uid.map(|u| User {
            uid: u.to_string(),
            name: p.user.clone(),
        }),
        ancestry: p
            .ancestry
            .iter()
            .map(|a| ProcessEntity {
                name: basename(a),
                path: a.clone(),
            })
            .collect(),
    }
}

fn event_evidence(e: &EventEvidence) -> Evidences {
    let get = |k: &str| e.fields.get(k).filter(|v| !v.is_empty());
    let mut data = e.fields.clone();
    data.insert("time".into(), e.time.clone());
    data.insert("kind".into(), e.kind.clone());
    let dst = (get("dst_addr").is_some() || get("dst_port").is_some()).then(|| Endpoint {
        ip: get("dst_addr").cloned(),
        port: get("dst_port").and_then(|p| p.parse().ok()),
    });
    Evidences {
        name: Some(e.kind.clone()),
        process: Some(Process {
            pid: e.pid,
            name: e.exe.as_deref().map(basename),
            file: e.exe.as_deref().map(|x| file(x, None)),
            cmd_line: get("argv").cloned(),
            ..Process::default()
        }),
        file: get("path").map(|p| file(p, None)),
        dst_endpoint: dst,
        query: get("dns_name").map(|h| DnsQuery {
            hostname: h.clone(),
        }),
        data,
        ..Evidences::default()
    }
}

fn attacks(f: &Finding, a: &Analytics) -> Vec<Attack> {
    let mut ids: Vec<&str> = f
        .rules
        .iter()
        .filter_map(|r| a.mitre.get(r))
        .flatten()
        .map(String::as_str)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| match id.split_once('.') {
            Some((t, _)) => Attack {
                technique: Technique { uid: t.to_string() },
                sub_technique: Some(Technique {
                    uid: id.to_string(),
                }),
            },
            None => Attack {
                technique: Technique {
                    uid: id.to_string(),
                },
                sub_technique: None,
            },
        })
        .collect()
}

fn anomaly_analysis(workload: &str, contributions: &[Contribution]) -> Vec<AnomalyAnalysis> {
    if contributions.is_empty() {
        return Vec::new();
    }
    let fmt = fmt_value;
    vec![AnomalyAnalysis {
        analysis_targets: vec![AnalysisTarget {
            name: workload.to_string(),
            kind: "workload",
        }],
        anomalies: contributions
            .iter()
            .map(|c| Observed {
                observation_parameter: c.feature.clone(),
                observation_type: format!("surprise {}", fmt(c.surprise)),
                observations: vec![Observation {
                    value: fmt(c.value),
                }],
            })
            .collect(),
        baselines: contributions
            .iter()
            .map(|c| Observed {
                observation_parameter: c.feature.clone(),
                observation_type: "reference median".into(),
                observations: vec![Observation {
                    value: fmt(c.peer_median),
                }],
            })
            .collect(),
    }]
}

fn analytic(f: &Finding, a: &Analytics) -> (Analytic, Vec<Analytic>) {
    let rule = |id: &String| Analytic {
        name: id.clone(),
        uid: id.clone(),
        type_id: 1,
        kind: "Rule",
    };
    match f.rules.split_first() {
        Some((first, rest)) => (rule(first), rest.iter().map(rule).collect()),
        None => {
            let (type_id, kind) = if a.trained {
                (4, "Learning (ML/DL)")
            } else {
                (3, "Statistical")
            };
            let analytic = Analytic {
                name: a.model.clone(),
                uid: a.model.clone(),
                type_id,
                kind,
            };
            (analytic, Vec::new())
        }
    }
}

/// The record of one finding.
pub fn record(fr: &FindingRef<'_>, a: &Analytics) -> DetectionFinding {
    let FindingRef {
        workload: w,
        ranked: r,
        finding: f,
    } = *fr;
    let first = rfc3339_ms(&f.first_seen).unwrap_or(w.first_ns / 1_000_000);
    let last = rfc3339_ms(&f.last_seen).unwrap_or(w.last_ns / 1_000_000);
    let (severity_id, severity_name) = severity(f.severity);
    let model_finding = f.kind == ANOMALOUS_BEHAVIOR && f.rules.is_empty();
    let (confidence_id, confidence) = if model_finding {
        (1, "Low")
    } else {
        (3, "High")
    };
    let uid = finding_uid(&w.workload, f);
    let (analytic, related_analytics) = analytic(f, a);
    let ctx = &w.context;
    let container_host = w.hosts.first().cloned();
    let is_container = !w.workload.starts_with("host:");
    let mut resources = vec![Resource {
        kind: if is_container {
            "container"
        } else {
            "host_process_group"
        },
        uid: Some(w.workload.clone()),
        name: ctx.name.clone(),
        namespace: ctx.namespace.clone(),
        hostname: container_host,
    }];
    if let Some(pod) = &ctx.pod {
        resources.push(Resource {
            kind: "pod",
            name: Some(pod.clone()),
            namespace: ctx.namespace.clone(),
            ..Resource::default()
        });
    }
    if let Some(image) = &ctx.image {
        resources.push(Resource {
            kind: "container_image",
            name: Some(image.clone()),
            ..Resource::default()
        });
    }
    for host in &w.hosts {
        resources.push(Resource {
            kind: "host",
            name: Some(host.clone()),
            hostname: Some(host.clone()),
            ..Resource::default()
        });
    }
    let container = is_container.then(|| Container {
        uid: w.workload.clone(),
        name: ctx.name.clone(),
        image: ctx.image.as_ref().map(|i| Image {
            uid: i.clone(),
            name: i.clone(),
        }),
    });
    let mut evidences = Vec::new();
    evidences.push(Evidences {
        name: Some(
            if f.process.is_some() {
                "process"
            } else {
                "workload"
            }
            .into(),
        ),
        process: f.process.as_ref().map(process),
        container,
        data: f
            .evidence
            .iter()
            .map(|e| {
                let v = e.value.map(fmt_value).unwrap_or_default();
                (e.what.clone(), v)
            })
            .collect(),
        ..Evidences::default()
    });
    evidences.extend(f.events.iter().map(event_evidence));
    let message = f.summary.clone().unwrap_or_else(|| {
        if model_finding {
            format!(
                "behaviour far from the reference (anomaly {} ≥ threshold {})",
                fmt_value(r.parts.anomaly),
                fmt_value(a.threshold)
            )
        } else {
            f.kind.clone()
        }
    });
    DetectionFinding {
        activity_id: 1,
        activity_name: "Create",
        category_uid: 2,
        category_name: "Findings",
        class_uid: 2004,
        class_name: "Detection Finding",
        type_uid: 200_401,
        type_name: "Detection Finding: Create",
        time: last,
        start_time: first,
        end_time: last,
        severity_id,
        severity: severity_name,
        status_id: 1,
        status: "New",
        confidence_id,
        confidence,
        is_alert: true,
        message: message.clone(),
        count: (f.occurrences > 0).then_some(f.occurrences),
        metadata: Metadata {
            version: OCSF_VERSION,
            product: Product {
                name: "needle",
                vendor_name: "needle",
                version: env!("CARGO_PKG_VERSION"),
                feature: Feature { name: "analyze" },
            },
            uid: uid.clone(),
        },
        finding_info: FindingInfo {
            uid,
            title: f.kind.clone(),
            types: vec![f.kind.clone()],
            desc: Some(message),
            first_seen_time: first,
            last_seen_time: last,
            analytic,
            related_analytics,
            attacks: attacks(f, a),
            data_sources: vec!["needle trace (eBPF)"],
        },
        resources,
        evidences,
        anomaly_analyses: anomaly_analysis(&w.workload, &r.contributions),
        unmapped: Unmapped {
            workload: w.workload.clone(),
            rank: r.rank,
            score: r.score,
            parts: r.parts.clone(),
            peer_group: r.peer_group.clone(),
            model: a.model.clone(),
            threshold: a.threshold,
        },
    }
}

/// Every finding of `report`, one record each, in rank order.
pub fn records(report: &Report<'_>, a: &Analytics) -> Vec<DetectionFinding> {
    findings_of(report).iter().map(|f| record(f, a)).collect()
}

/// Writes every finding of `report` as one JSON line each.
pub fn write(
    report: &Report<'_>,
    a: &Analytics,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    for r in records(report, a) {
        serde_json::to_writer(&mut *out, &r)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(time_ns: i64) -> Finding {
        Finding {
            kind: "Impact:Runtime/CryptoMinerExecuted".into(),
            first_seen: crate::timefmt::rfc3339(time_ns),
            last_seen: crate::timefmt::rfc3339(time_ns),
            rules: vec!["miner-executed".into()],
            events: vec![EventEvidence {
                time: crate::timefmt::rfc3339(time_ns),
                time_ns,
                kind: "exec".into(),
                pid: 7,
                exe: Some("/tmp/xmrig".into()),
                fields: [("argv".to_string(), "xmrig -o pool:3333".to_string())].into(),
            }],
            ..Finding::default()
        }
    }

    #[test]
    fn uid_follows_the_evidence() {
        let t = 1_800_000_000_123_456_789;
        let a = finding_uid("w", &finding(t));
        assert_eq!(a, finding_uid("w", &finding(t)));
        assert_eq!(a.len(), 32);
        assert_ne!(a, finding_uid("w", &finding(t + 1)));
        assert_ne!(a, finding_uid("v", &finding(t)));
        let mut other = finding(t);
        other.events[0]
            .fields
            .insert("argv".into(), "xmrig -o pool:4444".into());
        assert_ne!(a, finding_uid("w", &other));
    }

    #[test]
    fn times_are_epoch_milliseconds() {
        assert_eq!(
            rfc3339_ms("2027-01-15T08:00:00.5Z"),
            Some(1_800_000_000_500)
        );
        assert_eq!(rfc3339_ms("not a time"), None);
    }
}
