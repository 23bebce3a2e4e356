//! Output: the ranked workloads as a terminal table or JSON, the feature table as CSV or
//! Parquet, the HTML report ([`html`]), and the findings for a SIEM: OCSF Detection Findings
//! ([`ocsf`]) and Falco alerts ([`falco`]). Every attacker-controlled string is escaped for its
//! destination ([`escape`], the HTML template's auto-escaping, serde for JSON).

pub use crate::escape;
pub mod falco;
pub mod html;
mod json;
pub mod ocsf;
mod table;
mod tabular;

use std::io::Write;

pub use json::{JsonReport, WorkloadReport};

use crate::features::{FeatureTable, WorkloadFeatures};
use crate::rank::{Finding, Ranked};
use crate::scan::InputSummary;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Ranked workloads as an aligned table for a terminal.
    Table,
    /// Ranked workloads and the inputs summary as one JSON document.
    Json,
    /// The feature table (one row per workload), CSV.
    Csv,
    /// The feature table (one row per workload), Parquet.
    Parquet,
    /// Every finding as an OCSF Detection Finding (class 2004), one JSON object per line.
    Ocsf,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing failed (closed pipe, full disk).
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    /// JSON encoding failed.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Building or writing Parquet failed.
    #[error("writing Parquet: {0}")]
    Parquet(String),
    /// Rendering the HTML report failed.
    #[error("rendering the HTML report: {0}")]
    Html(String),
}

/// What a report shows: the feature table, the ranking (already filtered and cut to `--top`),
/// and what was read.
pub struct Report<'a> {
    /// All features.
    pub table: &'a FeatureTable,
    /// Workloads to show, in rank order.
    pub ranked: &'a [Ranked],
    /// The inputs.
    pub inputs: &'a InputSummary,
    /// The model and rules behind the findings (for OCSF records).
    pub analytics: &'a ocsf::Analytics,
}

/// One finding with its workload and ranking.
#[derive(Clone, Copy)]
pub struct FindingRef<'a> {
    /// The workload's features and context.
    pub workload: &'a WorkloadFeatures,
    /// Its place in the ranking.
    pub ranked: &'a Ranked,
    /// The finding.
    pub finding: &'a Finding,
}

/// Every finding of the report's workloads, in rank order, most severe first within one.
pub fn findings_of<'a>(report: &Report<'a>) -> Vec<FindingRef<'a>> {
    report
        .ranked
        .iter()
        .filter_map(|r| Some((report.table.rows.get(r.row)?, r)))
        .flat_map(|(w, r)| {
            r.findings.iter().map(move |f| FindingRef {
                workload: w,
                ranked: r,
                finding: f,
            })
        })
        .collect()
}

impl Report<'_> {
    /// Writes the report in `format` to `out`.
    pub fn write(&self, format: Format, out: &mut (dyn Write + Send)) -> Result<(), ReportError> {
        match format {
            Format::Table => table::write(self, out),
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, &JsonReport::new(self))?;
                writeln!(out)?;
                Ok(())
            }
            Format::Csv => tabular::write_csv(self.table, Some(self.ranked), out),
            Format::Parquet => tabular::write_parquet(self.table, Some(self.ranked), out),
            Format::Ocsf => ocsf::write(self, self.analytics, out),
        }
    }
}

/// Writes the bare feature table (every workload, no ranking) as CSV, Parquet or JSON.
pub fn write_features(
    table: &FeatureTable,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    match format {
        Format::Csv => tabular::write_csv(table, None, out),
        Format::Parquet => tabular::write_parquet(table, None, out),
        // The command line refuses `features --format table` and `ocsf`; JSON is the readable
        // fallback.
        Format::Json | Format::Table | Format::Ocsf => {
            serde_json::to_writer_pretty(&mut *out, &json::features_json(table))?;
            writeln!(out)?;
            Ok(())
        }
    }
}

/// Short form of a workload key: 12 characters of a 64-hex container id, else the key.
pub(crate) fn short_id(key: &str) -> &str {
    if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        &key[..12]
    } else {
        key
    }
}

/// A feature value as people read it: whole numbers without decimals, others to 3 places.
pub(crate) fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The strongest `n` contributions as `feature=value (norm)`.
pub(crate) fn top_features(contributions: &[crate::rank::Contribution], n: usize) -> Vec<String> {
    contributions
        .iter()
        .take(n)
        .map(|c| {
            format!(
                "{}={} ({})",
                c.feature,
                fmt_value(c.value),
                fmt_value(c.peer_median)
            )
        })
        .collect()
}
