//! What a scan read: the `inputs` object of the JSON report.

use std::collections::{BTreeMap, BTreeSet};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::WorkloadStates;
use super::{OpenTrace, ScanError};
use crate::features::TimeWindow;
use crate::timefmt::rfc3339;

/// One file that was read.
#[derive(Clone, Debug, Serialize)]
pub struct FileSummary {
    /// The file.
    pub path: String,
    /// Host that recorded it.
    pub host: String,
    /// Its schema version.
    pub schema_version: u32,
    /// Program that wrote it.
    pub writer: String,
    /// Rows in the file (all row groups).
    pub rows: u64,
    /// Events the capture lost while recording it (from its metadata).
    pub events_lost: u64,
    /// Row groups skipped by the time window.
    pub row_groups_pruned: usize,
    /// Compressed bytes of the column chunks read (projected columns of the kept row groups;
    /// [`super::OpenTrace::bytes_read`]), alike for a local file and an object.
    pub bytes_read: u64,
    /// Set when part of the file could not be decoded (only with `--skip-bad`; the file is
    /// also listed in `skipped`, and its readable row groups were used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_read_error: Option<String>,
}

/// An input that was skipped (`--skip-bad`).
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// The file or input.
    pub path: String,
    /// Why.
    pub error: String,
}

impl From<&ScanError> for Skipped {
    fn from(e: &ScanError) -> Self {
        Skipped {
            path: e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            error: e.to_string(),
        }
    }
}

/// First and last event time of the rows analyzed.
#[derive(Clone, Debug, Serialize)]
pub struct TimeSpan {
    /// RFC 3339 time of the first event.
    pub first: String,
    /// RFC 3339 time of the last event.
    pub last: String,
    /// Seconds between them.
    pub seconds: f64,
}

/// The `inputs` object: what was read, from where, and what the capture lost.
#[derive(Clone, Debug, Serialize)]
pub struct InputSummary {
    /// Files read.
    pub files: Vec<FileSummary>,
    /// Rows analyzed (inside the time window).
    pub rows: u64,
    /// Time span of the analyzed rows (absent when no row was analyzed).
    pub time_span: Option<TimeSpan>,
    /// Schema versions of the files read.
    pub schema_versions: Vec<u32>,
    /// Events lost during capture, all files.
    pub events_lost: u64,
    /// Events lost during capture, per host.
    pub events_lost_by_host: BTreeMap<String, u64>,
    /// Inputs skipped (`--skip-bad`).
    pub skipped: Vec<Skipped>,
}

/// The summary of each trace read (`failed`: the files, by index, part of which could not be
/// decoded).
pub(super) fn file_summaries(
    traces: &[OpenTrace],
    window: TimeWindow,
    signatures: bool,
    failed: &BTreeMap<usize, ScanError>,
) -> Vec<FileSummary> {
    traces
        .iter()
        .enumerate()
        .map(|(i, t)| FileSummary {
            path: t.path.display().to_string(),
            host: t.host.clone(),
            schema_version: t.metadata.schema_version,
            writer: t.metadata.writer.clone(),
            rows: t.row_groups.iter().map(|r| r.rows).sum(),
            events_lost: t.metadata.events_lost,
            row_groups_pruned: t.row_groups.len() - t.row_groups_in(window).count(),
            bytes_read: t.bytes_read(window, signatures),
            partial_read_error: failed.get(&i).map(|e| e.to_string()),
        })
        .collect()
}

impl InputSummary {
    /// The summary of `files` (read here or by the runs that wrote partial files), whose
    /// merged aggregates are `partials`. Files and skipped inputs are listed by path (in
    /// directory-walk order), so any split of the input lists them alike.
    pub fn from_files(
        mut files: Vec<FileSummary>,
        partials: &WorkloadStates,
        rows: u64,
        mut skipped: Vec<Skipped>,
    ) -> InputSummary {
        files.sort_by(|a, b| std::path::Path::new(&a.path).cmp(std::path::Path::new(&b.path)));
        skipped.sort_by(|a, b| {
            (std::path::Path::new(&a.path), &a.error)
                .cmp(&(std::path::Path::new(&b.path), &b.error))
        });
        let mut events_lost_by_host = BTreeMap::new();
        for f in &files {
            *events_lost_by_host.entry(f.host.clone()).or_insert(0) += f.events_lost;
        }
        let first = partials
            .values()
            .map(|p| p.features.first_ns)
            .min()
            .filter(|&t| t != i64::MAX);
        let last = partials
            .values()
            .map(|p| p.features.last_ns)
            .max()
            .filter(|&t| t != i64::MIN);
        let time_span = first.zip(last).map(|(f, l)| TimeSpan {
            first: rfc3339(f),
            last: rfc3339(l),
            seconds: (l - f) as f64 / 1e9,
        });
        let schema_versions: BTreeSet<u32> = files.iter().map(|f| f.schema_version).collect();
        InputSummary {
            events_lost: files.iter().map(|f| f.events_lost).sum(),
            files,
            rows,
            time_span,
            schema_versions: schema_versions.into_iter().collect(),
            events_lost_by_host,
            skipped,
        }
    }

    /// Events lost on any of `hosts` (a workload's hosts), from the files' metadata.
    pub fn events_lost_on(&self, hosts: &[String]) -> u64 {
        hosts
            .iter()
            .filter_map(|h| self.events_lost_by_host.get(h))
            .sum()
    }
}

/// A progress bar over rows on stderr, drawn only when asked and stderr is a terminal.
pub(super) fn progress_bar(enabled: bool, rows: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(rows), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} scanning [{bar:30}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
