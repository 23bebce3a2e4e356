//! The finding-type table of `analyze/README.md`, rendered from the rules themselves so the
//! documentation cannot drift from what ships (a unit test compares the two).

use std::collections::{BTreeMap, BTreeSet};

use super::Rule;
use crate::finding::Severity;

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// One row per finding type: its severities (a finding takes the highest of the rules that
/// fired), rules, MITRE ATT&CK techniques and what triggers it.
pub fn finding_table(rules: &[Rule]) -> String {
    let mut by_type: BTreeMap<&str, Vec<&Rule>> = BTreeMap::new();
    for r in rules {
        if let Some(f) = r.finding.as_deref() {
            by_type.entry(f).or_default().push(r);
        }
    }
    let mut out = String::from(
        "| finding type | severity | rules | MITRE ATT&CK | what triggers it |\n|---|---|---|---|---|\n",
    );
    for (kind, mut rs) in by_type {
        rs.sort_by_key(|r| (std::cmp::Reverse(r.severity), r.id.clone()));
        let severities: BTreeSet<Severity> = rs.iter().map(|r| r.severity).collect();
        let severity = match (severities.first(), severities.last()) {
            (Some(lo), Some(hi)) if lo != hi => {
                format!("{}–{}", severity_name(*lo), severity_name(*hi))
            }
            (Some(s), _) => severity_name(*s).to_string(),
            _ => String::new(),
        };
        let ids: Vec<String> = rs
            .iter()
            .map(|r| {
                if severities.len() > 1 {
                    format!("`{}` ({})", r.id, severity_name(r.severity))
                } else {
                    format!("`{}`", r.id)
                }
            })
            .collect();
        let mitre: BTreeSet<&str> = rs
            .iter()
            .flat_map(|r| r.mitre.iter().map(String::as_str))
            .collect();
        let what: Vec<&str> = rs.iter().map(|r| r.summary.as_str()).collect();
        out.push_str(&format!(
            "| `{kind}` | {severity} | {} | {} | {} |\n",
            ids.join(", "),
            mitre.into_iter().collect::<Vec<_>>().join(", "),
            what.join("; ").replace('|', "\\|")
        ));
    }
    out
}
