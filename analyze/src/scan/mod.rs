//! Finding and reading traces: discovery, validation, and the parallel feature map.
//!
//! Every file is opened and checked first (footer, needle metadata, schema version). Then each
//! kept row group is one rayon task that reads only the columns the features and signatures
//! need, with strings as dictionaries, into its own [`Task`]: one pass over the rows feeds the
//! feature accumulator and the signature engine side by side ([`feed`]), and each workload's
//! state is the two halves together ([`WorkloadState`]). Task results are merged per workload
//! as they finish. Memory is bounded by the workloads (and tasks in flight), not by the input size.
//! Partial files (`*.npart`, [`crate::scan::partials`]) among the inputs are read whole and merged
//! in: the map step already ran elsewhere.

mod discover;
pub mod feed;
pub mod object;
mod open;
pub mod partials;
mod summary;
mod workload;

use std::path::PathBuf;

use rayon::prelude::*;

pub use crate::timefmt::rfc3339;
pub use discover::{Discovered, discover, discover_inputs, is_partial_name};
pub use feed::Task;
pub use open::{Fetch, OpenTrace};
pub use summary::{FileSummary, InputSummary, Skipped, TimeSpan};
pub use workload::{SigStates, WorkloadState, WorkloadStates, merge_states, split};

use crate::features::{FeatureError, TimeWindow};

/// Why an input could not be read. Every variant names the file or input.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The file or directory cannot be opened or listed (missing, permission…).
    #[error("{}: {source}", path.display())]
    Io {
        /// The input.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An object-storage input that cannot be listed or read (unreachable store, missing
    /// bucket or object, denied credentials).
    #[error("{}: {message}", url.display())]
    Store {
        /// The `s3://` URL.
        url: PathBuf,
        /// What the store said (one line, no secrets).
        message: String,
    },
    /// A directory or glob that holds no trace file.
    #[error("{}: no trace files (*.parquet) found", input.display())]
    NoMatch {
        /// The input.
        input: PathBuf,
    },
    /// A glob pattern that cannot be parsed.
    #[error("bad pattern `{pattern}`: {message}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// Not a Parquet file, or a damaged one (empty, truncated, bad footer).
    #[error("{}: not a readable Parquet file: {message}", path.display())]
    NotParquet {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        message: String,
    },
    /// A Parquet file without needle metadata.
    #[error("{}: not a needle trace (Parquet without `needle.schema_version` metadata)", path.display())]
    NotATrace {
        /// The file.
        path: PathBuf,
    },
    /// Needle metadata this build cannot use (newer schema version, bad value).
    #[error("{}: {source}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: needle_common::schema::MetadataError,
    },
    /// Columns the analyzer needs are missing or mistyped.
    #[error("{}: unusable columns: {message}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Data pages that cannot be decoded (corruption inside the file).
    #[error("{}: row group {row_group}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Row group being read.
        row_group: usize,
        /// The decoder's complaint.
        message: String,
    },
    /// Nothing to analyze.
    #[error("no readable trace files in the input")]
    NothingToRead,
    /// A partial file that cannot be read or merged.
    #[error(transparent)]
    Partial(#[from] crate::scan::partials::PartialError),
    /// `--since`/`--until` given while reading partial files.
    #[error(
        "{}: --since/--until apply when partial files are written (`analyze partials --since …`), not when they are read",
        path.display()
    )]
    WindowOnPartials {
        /// The first partial file.
        path: PathBuf,
    },
}

impl From<(PathBuf, usize, FeatureError)> for ScanError {
    fn from((path, row_group, e): (PathBuf, usize, FeatureError)) -> Self {
        ScanError::Read {
            path,
            row_group,
            message: e.to_string(),
        }
    }
}

impl ScanError {
    /// The file or input the error is about, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ScanError::Io { path, .. }
            | ScanError::NotParquet { path, .. }
            | ScanError::NotATrace { path }
            | ScanError::Metadata { path, .. }
            | ScanError::Schema { path, .. }
            | ScanError::Read { path, .. } => Some(path),
            ScanError::NoMatch { input } => Some(input),
            ScanError::Store { url, .. } => Some(url),
            ScanError::Partial(e) => Some(e.path()),
            ScanError::WindowOnPartials { path } => Some(path),
            ScanError::BadPattern { .. } | ScanError::NothingToRead => None,
        }
    }
}

/// One end of the time window, as the user gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBound {
    /// An absolute time, ns since the epoch.
    At(i64),
    /// This long before the end of the input (the latest event time of all files).
    BeforeEnd(std::time::Duration),
}

impl TimeBound {
    fn resolve(self, end: Option<i64>) -> Option<i64> {
        match self {
            TimeBound::At(t) => Some(t),
            TimeBound::BeforeEnd(d) => {
                end.map(|e| e.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
            }
        }
    }
}

/// `--since` / `--until` before they are resolved against the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowSpec {
    /// Keep rows at or after this time.
    pub since: Option<TimeBound>,
    /// Keep rows before this time.
    pub until: Option<TimeBound>,
}

impl WindowSpec {
    /// The absolute window, given the input's last event time.
    pub fn resolve(&self, end: Option<i64>) -> TimeWindow {
        TimeWindow {
            since: self.since.and_then(|b| b.resolve(end)),
            until: self.until.and_then(|b| b.resolve(end)),
        }
    }
}

/// How to scan.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Rows outside this window are ignored (whole row groups are skipped by statistics).
    pub window: WindowSpec,
    /// Go on past bad inputs, listing them in [`InputSummary::skipped`].
    pub skip_bad: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Signature engine to run in the same pass.
    pub signatures: Option<std::sync::Arc<crate::signatures::Engine>>,
}

/// What a scan produced.
pub struct ScanOutput {
    /// Merged state per workload (feature aggregates and signature state).
    pub partials: WorkloadStates,
    /// What was read.
    pub inputs: InputSummary,
    /// The time window, resolved against the input.
    pub window: TimeWindow,
    /// The trace files that were read here.
    pub traces: Vec<OpenTrace>,
    /// Partial files merged in (their traces are not in `traces`).
    pub partial_files: usize,
}

#[derive(Default)]
struct Reduced {
    partials: WorkloadStates,
    rows: u64,
    failed: Vec<(usize, ScanError)>,
}

impl Reduced {
    fn merge(mut self, other: Reduced) -> Reduced {
        merge_states(&mut self.partials, other.partials);
        self.rows += other.rows;
        self.failed.extend(other.failed);
        self
    }
}

/// Finds, checks and reads every input; returns the per-workload partial aggregates.
pub fn scan(inputs: &[PathBuf], opts: &ScanOptions) -> Result<ScanOutput, ScanError> {
    let found = discover_inputs(inputs);
    let mut skipped = Vec::new();
    for p in found.problems {
        if !opts.skip_bad {
            return Err(p);
        }
        skipped.push(Skipped::from(&p));
    }
    if let Some(first) = found.partials.first()
        && opts.window != WindowSpec::default()
    {
        return Err(ScanError::WindowOnPartials {
            path: first.clone(),
        });
    }
    let loaded = crate::scan::partials::merge::load(&found.partials, opts, &mut skipped)?;
    let traces = open_traces(&found.traces, opts, &mut skipped)?;
    if traces.is_empty() && loaded.is_none() {
        return Err(ScanError::NothingToRead);
    }
    // Partial files were written for a window: the traces read beside them get the same.
    let window = match &loaded {
        Some(l) => l.window,
        None => opts
            .window
            .resolve(traces.iter().filter_map(OpenTrace::end_ns).max()),
    };
    let (mut partials, mut rows, mut files) = map_traces(&traces, window, opts, &mut skipped)?;
    let partial_files = match loaded {
        Some(l) => {
            crate::scan::partials::merge::no_duplicates(&files, &l.sources)?;
            merge_states(&mut partials, l.partials);
            rows += l.rows;
            files.extend(l.files);
            skipped.extend(l.skipped);
            l.count
        }
        None => 0,
    };
    let inputs = InputSummary::from_files(files, &partials, rows, skipped);
    let (bytes, gets) = object::fetched();
    if gets > 0 {
        eprintln!("analyze: fetched {bytes} bytes from object storage in {gets} requests");
    }
    Ok(ScanOutput {
        partials,
        inputs,
        window,
        traces,
        partial_files,
    })
}

/// Opens and checks every trace file (in parallel).
fn open_traces(
    files: &[PathBuf],
    opts: &ScanOptions,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<OpenTrace>, ScanError> {
    let opened: Vec<Result<OpenTrace, ScanError>> =
        files.par_iter().map(|f| OpenTrace::open(f)).collect();
    let mut traces = Vec::new();
    for r in opened {
        match r {
            Ok(t) => traces.push(t),
            Err(e) if opts.skip_bad => skipped.push(Skipped::from(&e)),
            Err(e) => return Err(e),
        }
    }
    Ok(traces)
}

/// The map step over the traces: per-workload aggregates, rows analyzed, and each file's
/// summary.
fn map_traces(
    traces: &[OpenTrace],
    window: TimeWindow,
    opts: &ScanOptions,
    skipped: &mut Vec<Skipped>,
) -> Result<(WorkloadStates, u64, Vec<FileSummary>), ScanError> {
    // The first kept row group of each file also reads the context columns; workloads that
    // first appear later get theirs from a probe afterwards (see `fill_missing_context`).
    let tasks: Vec<(usize, usize, u64, Fetch)> = traces
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            t.row_groups_in(window).enumerate().map(move |(n, r)| {
                (
                    i,
                    r.index,
                    r.rows,
                    if n == 0 {
                        Fetch::FeaturesAndContext
                    } else {
                        Fetch::Features
                    },
                )
            })
        })
        .collect();
    let bar = summary::progress_bar(opts.progress, tasks.iter().map(|t| t.2).sum());
    let mut reduced = tasks
        .par_iter()
        .fold(Reduced::default, |mut acc, &(i, rg, rows, fetch)| {
            let trace = &traces[i];
            let mut task = Task::new(&trace.host, window, opts.signatures.clone());
            if fetch == Fetch::Features {
                task = task.without_context(i as u32, rg as u32);
            }
            match trace.read_row_group(rg, fetch, &mut task) {
                Ok(()) => {
                    acc.rows += task.rows();
                    merge_states(&mut acc.partials, task.finish());
                }
                Err(e) => acc.failed.push((i, e)),
            }
            bar.inc(rows);
            acc
        })
        .reduce(Reduced::default, Reduced::merge);
    bar.finish_and_clear();
    let probe_failures = fill_missing_context(traces, window, &mut reduced.partials);
    reduced.failed.extend(probe_failures);
    let mut failed_files = std::collections::BTreeMap::new();
    for (i, e) in reduced.failed {
        if !opts.skip_bad {
            return Err(e);
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = failed_files.entry(i) {
            skipped.push(Skipped::from(&e));
            slot.insert(e);
        }
    }
    let files = summary::file_summaries(traces, window, opts.signatures.is_some(), &failed_files);
    Ok((reduced.partials, reduced.rows, files))
}

/// Reads the context columns of the row groups that workloads without context were first seen
/// in (each such row group once), and fills those workloads' context.
fn fill_missing_context(
    traces: &[OpenTrace],
    window: TimeWindow,
    partials: &mut WorkloadStates,
) -> Vec<(usize, ScanError)> {
    let mut probes: std::collections::BTreeSet<(u32, u32)> = std::collections::BTreeSet::new();
    for p in partials.values() {
        if p.features.context == crate::features::Context::default()
            && let Some(probe) = p.features.context_probe
        {
            probes.insert(probe);
        }
    }
    let found: Vec<Result<WorkloadStates, (usize, ScanError)>> = probes
        .into_par_iter()
        .filter_map(|(file, rg)| {
            let trace = traces.get(file as usize)?;
            let mut task = Task::new(&trace.host, window, None);
            Some(
                match trace.read_row_group(rg as usize, Fetch::Context, &mut task) {
                    Ok(()) => Ok(task.finish()),
                    Err(e) => Err((file as usize, e)),
                },
            )
        })
        .collect();
    let mut failures = Vec::new();
    for r in found {
        match r {
            Ok(found) => {
                for (key, p) in found {
                    if let Some(mine) = partials.get_mut(&key)
                        && mine.features.context == crate::features::Context::default()
                    {
                        mine.features.context = p.features.context;
                    }
                }
            }
            Err(e) => failures.push(e),
        }
    }
    failures
}
