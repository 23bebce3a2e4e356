//! Findings as Falco alerts: the JSON shape Falco posts to Falcosidekick (`rule`, `priority`,
//! `output`, `output_fields`, `time`, `source`, `tags`, `hostname`), so every output
//! Falcosidekick has (Slack, Loki, Elasticsearch, a SIEM…) takes needle's findings as they are.
//!
//! Field names follow Falco's where one exists (`container.id`, `k8s.pod.name`,
//! `proc.cmdline`…); needle's own are under `needle.`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::FindingRef;
use super::escape::terminal;
use super::ocsf::{Analytics, finding_uid};
use crate::finding::Severity;

/// The `source` of every alert.
pub const SOURCE: &str = "needle";

/// One Falco alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// One line for people (control characters removed).
    pub output: String,
    /// Falco priority: `Critical`, `Error`, `Warning` or `Notice`.
    pub priority: &'static str,
    /// The rule: the GuardDuty-style finding type.
    pub rule: String,
    /// When the finding's last evidence happened (RFC 3339, ns).
    pub time: String,
    /// Always [`SOURCE`].
    pub source: &'static str,
    /// The finding type, severity and MITRE ATT&CK techniques.
    pub tags: Vec<String>,
    /// The host(s) the workload ran on.
    pub hostname: String,
    /// The finding's context and evidence, by field name.
    pub output_fields: BTreeMap<String, Value>,
}

/// An `output_fields` value: Falco sends strings and numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
}

fn priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
    }
}

/// The alert of one finding.
pub fn alert(fr: &FindingRef<'_>, a: &Analytics) -> Alert {
    let FindingRef {
        workload: w,
        ranked: r,
        finding: f,
    } = *fr;
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let mut text = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            fields.insert(k.to_string(), Value::Text(v.clone()));
        }
    };
    if !w.workload.starts_with("host:") {
        text("container.id", Some(&w.workload));
    }
    text("container.name", w.context.name.as_ref());
    text("container.image", w.context.image.as_ref());
    text("k8s.pod.name", w.context.pod.as_ref());
    text("k8s.ns.name", w.context.namespace.as_ref());
    if let Some(p) = &f.process {
        text("proc.exepath", p.exe.as_ref());
        text("proc.cmdline", p.argv.as_ref());
        text("proc.sha256", p.sha256.as_ref());
        text("user.name", p.user.as_ref());
        fields.insert("proc.pid".into(), Value::Int(i64::from(p.pid)));
        if let Some(uid) = p.uid {
            fields.insert("user.uid".into(), Value::Int(i64::from(uid)));
        }
        if !p.ancestry.is_empty() {
            fields.insert("proc.aexepath".into(), Value::Text(p.ancestry.join(" < ")));
        }
    }
    let uid = finding_uid(&w.workload, f);
    let severity = format!("{:?}", f.severity).to_ascii_lowercase();
    for (k, v) in [
        ("needle.finding", f.kind.clone()),
        ("needle.uid", uid),
        ("needle.workload", w.workload.clone()),
        ("needle.severity", severity.clone()),
        ("needle.first_seen", f.first_seen.clone()),
        ("needle.last_seen", f.last_seen.clone()),
        ("needle.model", a.model.clone()),
    ] {
        fields.insert(k.into(), Value::Text(v));
    }
    if !f.rules.is_empty() {
        fields.insert("needle.rules".into(), Value::Text(f.rules.join(",")));
    }
    fields.insert("needle.rank".into(), Value::Int(r.rank as i64));
    fields.insert("needle.score".into(), Value::Float(r.score));
    fields.insert("needle.anomaly".into(), Value::Float(r.parts.anomaly));
    let mut tags = vec![SOURCE.to_string(), f.kind.clone(), severity];
    tags.extend(
        f.rules
            .iter()
            .filter_map(|id| a.mitre.get(id))
            .flatten()
            .cloned(),
    );
    tags.sort();
    tags.dedup();
    let who = w
        .context
        .name
        .as_deref()
        .unwrap_or(super::short_id(&w.workload));
    let what = f.summary.as_deref().unwrap_or(&f.kind);
    let proc = f
        .process
        .as_ref()
        .and_then(|p| p.exe.as_deref())
        .map(|e| format!(" proc={e}"))
        .unwrap_or_default();
    let output = format!(
        "{} {}: {what} (finding={} workload={who}{proc})",
        f.last_seen,
        priority(f.severity),
        f.kind
    );
    Alert {
        output: terminal(&output, 500),
        priority: priority(f.severity),
        rule: f.kind.clone(),
        time: f.last_seen.clone(),
        source: SOURCE,
        tags,
        hostname: w.hosts.join(","),
        output_fields: fields,
    }
}
