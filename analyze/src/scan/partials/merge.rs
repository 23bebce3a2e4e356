//! Reading partial files into a scan: check each against this run, merge them.

use std::collections::HashMap;
use std::path::PathBuf;

use rayon::prelude::*;

use super::{Header, PartialError, PartialFile, engine_digest, read};
use crate::features::TimeWindow;
use crate::scan::{FileSummary, ScanError, ScanOptions, Skipped, WorkloadStates, merge_states};

/// What the partial files of the input hold, merged.
pub struct Loaded {
    /// The window they were written for.
    pub window: TimeWindow,
    /// Aggregates per workload.
    pub partials: WorkloadStates,
    /// Rows analyzed.
    pub rows: u64,
    /// The trace files read into them.
    pub files: Vec<FileSummary>,
    /// Inputs their runs skipped.
    pub skipped: Vec<Skipped>,
    /// Trace path → the partial file it came from.
    pub sources: HashMap<String, PathBuf>,
    /// Partial files merged.
    pub count: usize,
}

/// Reads, checks and merges the partial files `paths` (None when there are none, or every one
/// was skipped). A file that cannot be read or merged is an error, or with `--skip-bad` goes
/// into `skipped`; a trace read into two of them is always an error.
pub fn load(
    paths: &[PathBuf],
    opts: &ScanOptions,
    skipped: &mut Vec<Skipped>,
) -> Result<Option<Loaded>, ScanError> {
    let read: Vec<(PathBuf, Result<PartialFile, PartialError>)> =
        paths.par_iter().map(|p| (p.clone(), read(p))).collect();
    let signatures = opts.signatures.as_deref().map(engine_digest);
    let mut run: Option<Header> = None;
    let mut loaded: Option<Loaded> = None;
    for (path, r) in read {
        let checked = r.and_then(|f| {
            let want =
                run.get_or_insert_with(|| Header::for_run(f.header.window(), signatures.clone()));
            match f.header.mismatch(want) {
                Some(why) => Err(PartialError::Mismatch {
                    path: path.clone(),
                    why,
                }),
                None => Ok(f),
            }
        });
        let f = match checked {
            Ok(f) => f,
            Err(e) if opts.skip_bad => {
                skipped.push(Skipped::from(&ScanError::from(e)));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let l = loaded.get_or_insert_with(|| Loaded {
            window: f.header.window(),
            partials: WorkloadStates::new(),
            rows: 0,
            files: Vec::new(),
            skipped: Vec::new(),
            sources: HashMap::new(),
            count: 0,
        });
        for file in &f.files {
            if let Some(first) = l.sources.insert(file.path.clone(), path.clone()) {
                return Err(PartialError::Duplicate {
                    path,
                    file: file.path.clone(),
                    first: first.display().to_string(),
                }
                .into());
            }
        }
        merge_states(&mut l.partials, f.partials);
        l.rows += f.rows;
        l.files.extend(f.files);
        l.skipped.extend(f.skipped);
        l.count += 1;
    }
    Ok(loaded)
}

/// Fails when a trace read here was also read into a partial file.
pub fn no_duplicates(
    read_here: &[FileSummary],
    sources: &HashMap<String, PathBuf>,
) -> Result<(), ScanError> {
    for f in read_here {
        if let Some(p) = sources.get(&f.path) {
            return Err(PartialError::Duplicate {
                path: p.clone(),
                file: f.path.clone(),
                first: "the traces given beside it".into(),
            }
            .into());
        }
    }
    Ok(())
}
