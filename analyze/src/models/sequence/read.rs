//! Reading syscall sequences: `syscall` rows (capture's `--syscalls full` streams, or traces
//! written by `analyze import syscall-traces`) cut into one sequence per thread, in time order.

use std::collections::BTreeMap;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use needle_common::schema::names as n;
use rayon::prelude::*;

use crate::columns::{Columns, StrCol, opt};
use crate::features::TimeWindow;
use crate::features::catalog::STARTUP_S;
use crate::scan::{OpenTrace, ScanError, discover};

/// Most calls kept per thread (the first ones, in time order); longer streams are cut.
pub const MAX_CALLS_PER_THREAD: usize = 1_000_000;

/// One thread's syscalls, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thread {
    /// Thread id (kernel pid).
    pub tid: u32,
    /// Syscall numbers.
    pub calls: Vec<u32>,
    /// How many of the first `calls` fell in the workload's start-up: its first
    /// [`STARTUP_S`] seconds, from its first syscall in the input.
    pub startup: usize,
}

/// Syscall sequences per workload key.
pub type Sequences = BTreeMap<String, Vec<Thread>>;

type Raw = BTreeMap<(String, u32), Vec<(i64, u64, u32)>>;

fn read_batch(
    batch: &RecordBatch,
    host: &str,
    window: TimeWindow,
    base: u64,
    out: &mut Raw,
) -> Result<(), String> {
    let c = Columns::new(batch).map_err(|e| e.to_string())?;
    let Some(nr) = c.syscall.as_ref() else {
        return Ok(());
    };
    // A dictionary-encoded `kind` says once per batch whether it holds syscall rows, and which
    // key they have (as the old reader did); plain strings are compared row by row.
    let syscall_key = match &c.kind {
        StrCol::Dict { .. } => {
            match (0..c.kind.dict_len()).find(|&k| c.kind.dict_value(k) == Some("syscall")) {
                Some(k) => Some(k),
                None => return Ok(()),
            }
        }
        _ => None,
    };
    let is_syscall = |row: usize| match syscall_key {
        Some(k) => c.kind.key(row) == Some(k),
        None => c.kind.get(row) == Some("syscall"),
    };
    for row in 0..c.len {
        if !is_syscall(row) || nr.is_null(row) || c.time.is_null(row) {
            continue;
        }
        let t = c.time.value(row);
        if !window.contains(t) {
            continue;
        }
        let key = c.workload_key(row, host);
        let tid = opt(&c.pid, row).unwrap_or(0);
        out.entry((key, tid))
            .or_default()
            .push((t, base + row as u64, nr.value(row)));
    }
    Ok(())
}

/// Reads the syscall sequences of every thread in `files` (the inputs the feature scan
/// already accepted; unreadable files are skipped when `skip_bad`).
pub fn read_sequences(
    files: &[std::path::PathBuf],
    window: crate::scan::WindowSpec,
    skip_bad: bool,
) -> Result<Sequences, ScanError> {
    let (paths, problems) = discover(files);
    if let (Some(p), false) = (problems.into_iter().next(), skip_bad) {
        return Err(p);
    }
    let mut traces = Vec::new();
    for p in &paths {
        match OpenTrace::open(p) {
            Ok(t) => traces.push(t),
            Err(e) if !skip_bad => return Err(e),
            Err(_) => {}
        }
    }
    let window = window.resolve(traces.iter().filter_map(OpenTrace::end_ns).max());
    let tasks: Vec<(usize, usize)> = traces
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.row_groups_in(window).map(move |r| (i, r.index)))
        .collect();
    let cols = [
        n::TIME,
        n::KIND,
        n::PID,
        n::CGROUP_ID,
        n::WORKLOAD,
        n::CONTAINER_ID,
        n::SYSCALL,
    ];
    let parts: Vec<Result<Raw, ScanError>> = tasks
        .par_iter()
        .map(|&(i, rg)| {
            let trace = &traces[i];
            let mut raw = Raw::new();
            let mut offset = 0u64;
            // (file, row group, row) orders rows of equal time deterministically.
            let base = ((i as u64) << 40) | ((rg as u64) << 24);
            trace.read_columns(rg, &cols, None, &mut |b| {
                let r = read_batch(b, &trace.host, window, base + offset, &mut raw);
                offset += b.num_rows() as u64;
                r
            })?;
            Ok(raw)
        })
        .collect();
    let mut merged = Raw::new();
    for p in parts {
        match p {
            Ok(raw) => {
                for (k, mut v) in raw {
                    merged.entry(k).or_default().append(&mut v);
                }
            }
            Err(e) if !skip_bad => return Err(e),
            Err(_) => {}
        }
    }
    // Each workload's start-up ends STARTUP_S after its first syscall (of any thread).
    let mut startup_end: BTreeMap<String, i64> = BTreeMap::new();
    for ((key, _), rows) in &merged {
        let Some(end) = rows
            .iter()
            .map(|r| r.0)
            .min()
            .map(|t| t.saturating_add(STARTUP_S * 1_000_000_000))
        else {
            continue;
        };
        match startup_end.get_mut(key) {
            Some(e) => *e = (*e).min(end),
            None => {
                startup_end.insert(key.clone(), end);
            }
        }
    }
    let mut out = Sequences::new();
    for ((key, tid), mut rows) in merged {
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        rows.truncate(MAX_CALLS_PER_THREAD);
        let end = startup_end.get(&key).copied().unwrap_or(i64::MIN);
        out.entry(key).or_default().push(Thread {
            tid,
            startup: rows.partition_point(|r| r.0 < end),
            calls: rows.into_iter().map(|r| r.2).collect(),
        });
    }
    Ok(out)
}
