//! What the template shows, as plain serializable data: every string here is raw (unescaped);
//! the template escapes it where it is placed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::evidence::{Evidence, ProcessNode, WorkloadEvents};
use super::plots::{PlotError, kind_timeline, score_histogram};
use super::{ModelInfo, suspicious};
use crate::rank::{Contribution, Finding, Ranked};
use crate::report::{Report, fmt_value, short_id, top_features};
use crate::timefmt::rfc3339;

/// The whole page.
#[derive(Debug, Serialize)]
pub struct Page {
    summary: Summary,
    /// SVG of the score distribution (drawn by us: numbers only).
    score_svg: String,
    /// SVG of the events over time (drawn by us: numbers and kind names only).
    timeline_svg: String,
    kinds: Vec<(&'static str, u64)>,
    ranked: Vec<Row>,
    details: Vec<Detail>,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    files: Vec<FileRow>,
    rows: u64,
    first: Option<String>,
    last: Option<String>,
    seconds: Option<f64>,
    hosts: Vec<HostRow>,
    events_lost: u64,
    skipped: Vec<(String, String)>,
    workloads: usize,
    shown: usize,
    suspicious: usize,
    model: String,
    threshold: f64,
    threshold_finite: bool,
    generated_by: String,
}

#[derive(Debug, Serialize)]
struct FileRow {
    path: String,
    host: String,
    rows: u64,
    events_lost: u64,
}

#[derive(Debug, Serialize)]
struct HostRow {
    host: String,
    files: usize,
    events_lost: u64,
}

#[derive(Debug, Serialize)]
struct Row {
    rank: usize,
    score: f64,
    anomaly: f64,
    workload: String,
    short: String,
    name: Option<String>,
    image: Option<String>,
    namespace: Option<String>,
    label: Option<String>,
    findings: Vec<String>,
    severity: Option<String>,
    anchor: Option<String>,
    top_features: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Detail {
    anchor: String,
    rank: usize,
    score: f64,
    anomaly: f64,
    workload: String,
    name: Option<String>,
    image: Option<String>,
    pod: Option<String>,
    namespace: Option<String>,
    label: Option<String>,
    hosts: Vec<String>,
    first: String,
    last: String,
    findings: Vec<Finding>,
    features: Vec<FeatureRow>,
    timeline_svg: String,
    kinds: Vec<(&'static str, u64)>,
    tree: Vec<TreeRow>,
    destinations: Vec<DestRow>,
    dns: Vec<DnsRow>,
    files: Vec<(String, String)>,
    dropped: u64,
}

#[derive(Debug, Serialize)]
struct FeatureRow {
    feature: String,
    value: String,
    norm: String,
    z: f64,
    /// Width of the deviation bar, 0–100.
    bar: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct TreeRow {
    pub(super) depth: usize,
    pid: u32,
    comm: String,
    pub(super) exe: Option<String>,
    argv: Option<String>,
    sha256: Option<String>,
    user: Option<String>,
    start: String,
    events: u64,
    exit: Option<String>,
    /// A finding names this process.
    pub(super) flagged: bool,
    /// An ancestor or a descendant of a flagged process.
    pub(super) branch: bool,
}

#[derive(Debug, Serialize)]
struct DestRow {
    addr: String,
    port: u16,
    protocol: String,
    kinds: String,
    count: u64,
    bytes: u64,
    exes: Vec<String>,
    first: String,
}

#[derive(Debug, Serialize)]
struct DnsRow {
    name: String,
    queries: u64,
    responses: u64,
    answers: Vec<String>,
    rcodes: String,
    first: String,
}

fn feature_rows(contributions: &[Contribution]) -> Vec<FeatureRow> {
    contributions
        .iter()
        .map(|c| FeatureRow {
            feature: c.feature.clone(),
            value: fmt_value(c.value),
            norm: fmt_value(c.peer_median),
            z: c.surprise,
            // A bar full at a one-in-a-billion deviation.
            bar: (c.surprise / 9.0 * 100.0).clamp(0.0, 100.0),
        })
        .collect()
}

/// Processes named by the findings: their ids (process keys) and pids.
fn flagged_processes(findings: &[Finding]) -> (HashSet<String>, HashSet<u32>) {
    let mut keys = HashSet::new();
    let mut pids = HashSet::new();
    for f in findings {
        if let Some(p) = &f.process {
            pids.insert(p.pid);
            keys.extend(p.process_key.clone());
        }
        pids.extend(f.events.iter().map(|e| e.pid));
    }
    (keys, pids)
}

/// The process forest in depth-first order, children by start time.
pub(super) fn tree_rows(w: &WorkloadEvents, findings: &[Finding]) -> Vec<TreeRow> {
    let (keys, pids) = flagged_processes(findings);
    let nodes = &w.processes;
    let mut children: BTreeMap<&str, Vec<&ProcessNode>> = BTreeMap::new();
    let mut roots: Vec<&ProcessNode> = Vec::new();
    for p in nodes.values() {
        match p
            .parent
            .as_deref()
            .filter(|k| nodes.contains_key(*k) && *k != p.id)
        {
            Some(parent) => children.entry(parent).or_default().push(p),
            None => roots.push(p),
        }
    }
    let by_start = |v: &mut Vec<&ProcessNode>| {
        v.sort_by(|a, b| a.first_ns.cmp(&b.first_ns).then(a.id.cmp(&b.id)))
    };
    by_start(&mut roots);
    children.values_mut().for_each(by_start);
    let flagged: HashSet<&str> = nodes
        .values()
        .filter(|p| keys.contains(&p.id) || pids.contains(&p.pid))
        .map(|p| p.id.as_str())
        .collect();
    // Ancestors of flagged processes.
    let mut branch: HashSet<&str> = HashSet::new();
    for id in &flagged {
        let mut cur = nodes.get(*id).and_then(|p| p.parent.as_deref());
        let mut guard = 0;
        while let Some(k) = cur.filter(|k| nodes.contains_key(*k)) {
            if !branch.insert(k) || guard > nodes.len() {
                break;
            }
            guard += 1;
            cur = nodes.get(k).and_then(|p| p.parent.as_deref());
        }
    }
    let mut out = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<(&ProcessNode, usize, bool)> =
        roots.iter().rev().map(|p| (*p, 0, false)).collect();
    while let Some((p, depth, under_flagged)) = stack.pop() {
        if !seen.insert(p.id.as_str()) {
            continue;
        }
        let is_flagged = flagged.contains(p.id.as_str());
        out.push(TreeRow {
            depth,
            pid: p.pid,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
            argv: p.argv.clone(),
            sha256: p.sha256.clone(),
            user: p.user.clone(),
            start: rfc3339(p.first_ns),
            events: p.events,
            exit: p.exit.clone(),
            flagged: is_flagged,
            branch: !is_flagged && (under_flagged || branch.contains(p.id.as_str())),
        });
        if let Some(kids) = children.get(p.id.as_str()) {
            for k in kids.iter().rev() {
                stack.push((k, depth + 1, under_flagged || is_flagged));
            }
        }
    }
    out
}

fn detail(
    report: &Report<'_>,
    r: &Ranked,
    anchor: String,
    ev: Option<&WorkloadEvents>,
) -> Result<Option<Detail>, PlotError> {
    let Some(w) = report.table.rows.get(r.row) else {
        return Ok(None);
    };
    let empty = WorkloadEvents::default();
    let ev = ev.unwrap_or(&empty);
    let destinations = ev
        .destinations
        .iter()
        .map(|((addr, port, protocol), d)| DestRow {
            addr: addr.clone(),
            port: *port,
            protocol: protocol.clone(),
            kinds: d.kinds.iter().copied().collect::<Vec<_>>().join(", "),
            count: d.count,
            bytes: d.bytes,
            exes: d.exes.iter().cloned().collect(),
            first: rfc3339(d.first_ns),
        })
        .collect();
    let dns = ev
        .dns
        .iter()
        .map(|(name, d)| DnsRow {
            name: name.clone(),
            queries: d.queries,
            responses: d.responses,
            answers: d.answers.iter().cloned().collect(),
            rcodes: d
                .rcodes
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            first: rfc3339(d.first_ns),
        })
        .collect();
    let timeline_svg = if ev.series.counts.is_empty() {
        String::new()
    } else {
        kind_timeline(&ev.series, 760, 220)?
    };
    Ok(Some(Detail {
        anchor,
        rank: r.rank,
        score: r.score,
        anomaly: r.parts.anomaly,
        workload: w.workload.clone(),
        name: w.context.name.clone(),
        image: w.context.image.clone(),
        pod: w.context.pod.clone(),
        namespace: w.context.namespace.clone(),
        label: w.context.label.clone(),
        hosts: w.hosts.clone(),
        first: rfc3339(w.first_ns),
        last: rfc3339(w.last_ns),
        findings: r.findings.clone(),
        features: feature_rows(&r.contributions),
        timeline_svg,
        kinds: ev.series.totals(),
        tree: tree_rows(ev, &r.findings),
        destinations,
        dns,
        files: ev
            .files
            .iter()
            .map(|(p, k)| (p.clone(), k.iter().copied().collect::<Vec<_>>().join(", ")))
            .collect(),
        dropped: ev.dropped,
    }))
}

impl Page {
    /// Everything the template needs.
    pub fn build(
        report: &Report<'_>,
        model: &ModelInfo,
        evidence: &Evidence,
    ) -> Result<Page, PlotError> {
        let inputs = report.inputs;
        let detailed: HashSet<String> = suspicious(report, model)
            .into_iter()
            .map(|w| w.key)
            .collect();
        let mut anchors: HashMap<usize, String> = HashMap::new();
        let mut details = Vec::new();
        for r in report.ranked {
            let Some(w) = report.table.rows.get(r.row) else {
                continue;
            };
            if !detailed.contains(&w.workload) {
                continue;
            }
            let anchor = format!("w{}", r.rank);
            if let Some(d) = detail(
                report,
                r,
                anchor.clone(),
                evidence.workloads.get(&w.workload),
            )? {
                anchors.insert(r.row, anchor);
                details.push(d);
            }
        }
        let ranked: Vec<Row> = report
            .ranked
            .iter()
            .filter_map(|r| {
                let w = report.table.rows.get(r.row)?;
                Some(Row {
                    rank: r.rank,
                    score: r.score,
                    anomaly: r.parts.anomaly,
                    workload: w.workload.clone(),
                    short: short_id(&w.workload).to_string(),
                    name: w.context.pod.clone().or_else(|| w.context.name.clone()),
                    image: w.context.image.clone(),
                    namespace: w.context.namespace.clone(),
                    label: w.context.label.clone(),
                    findings: r
                        .findings
                        .iter()
                        .map(|f| f.kind.clone())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    severity: r
                        .findings
                        .iter()
                        .map(|f| f.severity)
                        .max()
                        .map(|s| format!("{s:?}").to_lowercase()),
                    anchor: anchors.get(&r.row).cloned(),
                    top_features: top_features(&r.contributions, 3),
                })
            })
            .collect();
        let mut hosts: BTreeMap<&str, HostRow> = BTreeMap::new();
        for f in &inputs.files {
            let h = hosts.entry(&f.host).or_insert_with(|| HostRow {
                host: f.host.clone(),
                files: 0,
                events_lost: 0,
            });
            h.files += 1;
            h.events_lost += f.events_lost;
        }
        let scores: Vec<f64> = report.ranked.iter().map(|r| r.parts.anomaly).collect();
        let summary = Summary {
            files: inputs
                .files
                .iter()
                .map(|f| FileRow {
                    path: f.path.clone(),
                    host: f.host.clone(),
                    rows: f.rows,
                    events_lost: f.events_lost,
                })
                .collect(),
            rows: inputs.rows,
            first: inputs.time_span.as_ref().map(|s| s.first.clone()),
            last: inputs.time_span.as_ref().map(|s| s.last.clone()),
            seconds: inputs.time_span.as_ref().map(|s| s.seconds),
            hosts: hosts.into_values().collect(),
            events_lost: inputs.events_lost,
            skipped: inputs
                .skipped
                .iter()
                .map(|s| (s.path.clone(), s.error.clone()))
                .collect(),
            workloads: report.table.rows.len(),
            shown: ranked.len(),
            suspicious: details.len(),
            model: model.name.clone(),
            threshold: model.threshold,
            threshold_finite: model.threshold.is_finite(),
            generated_by: format!("analyze {}", env!("CARGO_PKG_VERSION")),
        };
        let timeline_svg = if evidence.global.counts.is_empty() {
            String::new()
        } else {
            kind_timeline(&evidence.global, 1100, 300)?
        };
        Ok(Page {
            summary,
            score_svg: score_histogram(&scores, model.threshold)?,
            timeline_svg,
            kinds: evidence.global.totals(),
            ranked,
            details,
            errors: evidence.errors.clone(),
        })
    }
}
