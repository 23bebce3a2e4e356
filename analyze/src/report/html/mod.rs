//! `analyze --report FILE`: one self-contained HTML page (inline CSS, JS and SVG; nothing is
//! fetched when it is opened) for triage in a browser.
//!
//! The page is rendered by minijinja from `report.html` with HTML auto-escaping on for every
//! value: trace strings (comm, argv, paths, DNS names, container names) are data, never
//! markup. Charts are SVG drawn by plotters ([`plots`]) from numbers and kind names only. A
//! Content-Security-Policy allows no script but the page's own (by hash), so even a value that
//! slipped through could not run.
//!
//! The model, the findings and the ranking come from the normal pipeline; the timelines,
//! process trees and network peers of the detailed workloads come from a second, filtered
//! read of the traces ([`reread`]), folded per workload ([`evidence`]).

pub mod evidence;
pub mod plots;
pub mod reread;
mod view;

use std::io::Write;

use base64::Engine as _;
use minijinja::{AutoEscape, Environment};
use sha2::{Digest, Sha256};

pub use evidence::{Evidence, Wanted};
pub use reread::collect;
pub use view::Page;

use super::escape::terminal;
use super::{Report, ReportError};

/// Longest string shown (argv can be long; a page should stay readable).
const MAX_CHARS: usize = 2000;

const TEMPLATE: &str = include_str!("report.html");
const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// At most this many workloads get a detail section.
pub const MAX_DETAILED: usize = 15;

/// The model the ranking used, for the summary and the score chart.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Its name (file name, or `peer-group baseline`).
    pub name: String,
    /// Score from which a workload counts as anomalous.
    pub threshold: f64,
}

/// The workloads worth a detail section: those with a finding or a model score at the
/// threshold, in rank order, at most [`MAX_DETAILED`].
pub fn suspicious(report: &Report<'_>, model: &ModelInfo) -> Vec<Wanted> {
    report
        .ranked
        .iter()
        .filter(|r| !r.findings.is_empty() || r.parts.anomaly >= model.threshold)
        .take(MAX_DETAILED)
        .filter_map(|r| report.table.rows.get(r.row))
        .map(|w| Wanted {
            key: w.workload.clone(),
            first_ns: w.first_ns,
            last_ns: w.last_ns,
        })
        .collect()
}

/// Renders the page.
pub fn render(
    report: &Report<'_>,
    model: &ModelInfo,
    evidence: &Evidence,
) -> Result<String, ReportError> {
    let page =
        Page::build(report, model, evidence).map_err(|e| ReportError::Html(e.to_string()))?;
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // Strings from traces: control characters, ANSI sequences and bidirectional overrides
    // become visible escapes (`\x1b`, `\u{202e}`) before the HTML escaping, and very long
    // values are cut.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(s) if !value.is_safe() => {
            minijinja::escape_formatter(out, state, &minijinja::Value::from(terminal(s, MAX_CHARS)))
        }
        _ => minijinja::escape_formatter(out, state, value),
    });
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| ReportError::Html(format!("{e:#}")))?;
    let tmpl = env
        .get_template("report.html")
        .map_err(|e| ReportError::Html(format!("{e:#}")))?;
    tmpl.render(minijinja::context! { page => minijinja::Value::from(minijinja::value::Serde(&page)), style => STYLE, script => SCRIPT, script_hash => hash })
        .map_err(|e| ReportError::Html(format!("{e:#}")))
}

/// Renders the page into `out`.
pub fn write(
    report: &Report<'_>,
    model: &ModelInfo,
    evidence: &Evidence,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    out.write_all(render(report, model, evidence)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests;
