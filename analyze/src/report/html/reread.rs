//! The second, filtered read behind the HTML report: the rows of the workloads the report
//! details, and the event kinds over time of the whole input.
//!
//! The feature scan keeps aggregates, not events, so this reads the traces again, through the
//! same column layer ([`crate::columns`]) and reader set-up ([`OpenTrace::read_columns`]) as
//! the scan, from files and objects alike. A Parquet row filter decodes only the columns that
//! key a row to its workload (plus `time`, `kind` and `count`) for every row; the other columns
//! are decoded only for the rows of the detailed workloads, and each such row is folded at
//! once ([`Gathered`]). Only `analyze --report` pays for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, BooleanArray, Int32Array, ListArray, RecordBatch, UInt32Array};
use arrow::error::ArrowError;
use needle_common::abi::EventKind;
use needle_common::schema::names as n;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use rayon::prelude::*;

use super::evidence::{Evidence, Gathered, KindSeries, Sighting, Wanted, What, merge_map};
use crate::columns::{
    ColumnError, Columns, NEEDED, StrCol, i32_col, list_at, list_col, opt, u32_col, workload_key,
};
use crate::features::TimeWindow;
use crate::scan::{OpenTrace, ScanError};

/// What the row filter reads for every row: enough to key it to its workload and count it.
const KEY_COLUMNS: &[&str] = &[
    n::TIME,
    n::KIND,
    n::WORKLOAD,
    n::CONTAINER_ID,
    n::CGROUP_ID,
    n::COUNT,
];

/// Columns the evidence reads beyond the feature columns ([`NEEDED`]), for the kept rows.
const EXTRA_COLUMNS: &[&str] = &[
    n::PROCESS_KEY,
    n::PARENT_KEY,
    n::EXE_SHA256,
    n::USER,
    n::ARGV,
    n::EXIT_CODE,
    n::SIGNAL,
    n::SRC_ADDR,
    n::SRC_PORT,
    n::PROTOCOL,
    n::DNS_ANSWERS,
];

/// The evidence columns of one batch that [`Columns`] does not hold.
struct Extra {
    container_id: StrCol,
    process_key: StrCol,
    parent_key: StrCol,
    sha256: StrCol,
    user: StrCol,
    argv: Option<ListArray>,
    exit_code: Option<Int32Array>,
    signal: Option<Int32Array>,
    src_addr: StrCol,
    src_port: Option<UInt32Array>,
    protocol: StrCol,
    dns_answers: Option<ListArray>,
}

impl Extra {
    fn new(batch: &RecordBatch) -> Result<Extra, ColumnError> {
        Ok(Extra {
            container_id: StrCol::from_batch(batch, n::CONTAINER_ID)?,
            process_key: StrCol::from_batch(batch, n::PROCESS_KEY)?,
            parent_key: StrCol::from_batch(batch, n::PARENT_KEY)?,
            sha256: StrCol::from_batch(batch, n::EXE_SHA256)?,
            user: StrCol::from_batch(batch, n::USER)?,
            argv: list_col(batch, n::ARGV)?,
            exit_code: i32_col(batch, n::EXIT_CODE)?,
            signal: i32_col(batch, n::SIGNAL)?,
            src_addr: StrCol::from_batch(batch, n::SRC_ADDR)?,
            src_port: u32_col(batch, n::SRC_PORT)?,
            protocol: StrCol::from_batch(batch, n::PROTOCOL)?,
            dns_answers: list_col(batch, n::DNS_ANSWERS)?,
        })
    }
}

/// One `Arc<str>` per distinct process string of a batch ([`StrCol::arc`]).
struct Shared {
    comm: Vec<Option<Arc<str>>>,
    process_key: Vec<Option<Arc<str>>>,
    parent_key: Vec<Option<Arc<str>>>,
    exe: Vec<Option<Arc<str>>>,
    sha256: Vec<Option<Arc<str>>>,
    user: Vec<Option<Arc<str>>>,
}

impl Shared {
    fn new(c: &Columns, x: &Extra) -> Shared {
        Shared {
            comm: c.comm.arc_cache(),
            process_key: x.process_key.arc_cache(),
            parent_key: x.parent_key.arc_cache(),
            exe: c.exe_path.arc_cache(),
            sha256: x.sha256.arc_cache(),
            user: x.user.arc_cache(),
        }
    }
}

/// The sighting of `row`.
fn sighting(c: &Columns, x: &Extra, shared: &mut Shared, row: usize) -> Sighting {
    let kind = c.kind.get(row).and_then(EventKind::from_name);
    let port = |p: Option<u32>| p.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    let peer = |addr: Option<&str>, port: u16| {
        addr.map_or(What::Other, |addr| What::Peer {
            addr: addr.to_string(),
            port,
            protocol: x.protocol.get(row).unwrap_or_default().to_string(),
            bytes: opt(&c.bytes, row).unwrap_or(0),
        })
    };
    let path = || c.path.get(row).unwrap_or_default().to_string();
    let written = |flags: u64| flags & 0o3 != 0 || flags & 0o100 != 0;
    let what = match kind {
        Some(EventKind::Exec) => What::Exec(
            list_at(&x.argv, row)
                .into_iter()
                .map(str::to_string)
                .collect(),
        ),
        Some(EventKind::Exit) => What::Exit {
            code: opt(&x.exit_code, row),
            signal: opt(&x.signal, row),
        },
        Some(EventKind::Connect | EventKind::SendTo) => {
            peer(c.dst_addr.get(row), port(opt(&c.dst_port, row)))
        }
        Some(EventKind::Accept) => peer(x.src_addr.get(row), port(opt(&x.src_port, row))),
        Some(k @ (EventKind::DnsQuery | EventKind::DnsResponse)) => What::Dns {
            name: c.dns_name.get(row).unwrap_or_default().to_string(),
            response: k == EventKind::DnsResponse,
            rcode: opt(&c.dns_rcode, row).and_then(|v| u8::try_from(v).ok()),
            answers: list_at(&x.dns_answers, row)
                .into_iter()
                .map(str::to_string)
                .collect(),
        },
        Some(EventKind::Open) if written(opt(&c.flags, row).unwrap_or(0)) => What::File(path()),
        Some(EventKind::Unlink | EventKind::Chmod | EventKind::Chown) => What::File(path()),
        Some(EventKind::Rename) => What::File(c.path2.get(row).unwrap_or_default().to_string()),
        _ => What::Other,
    };
    Sighting {
        time_ns: c.time.value(row),
        kind: kind.map_or("unknown", EventKind::name),
        events: kind.map_or(1, |k| c.events(row, k)),
        tgid: opt(&c.tgid, row).unwrap_or(0),
        ppid: opt(&c.ppid, row).unwrap_or(0),
        comm: c
            .comm
            .arc(row, &mut shared.comm)
            .unwrap_or_else(|| "".into()),
        process_key: x.process_key.arc(row, &mut shared.process_key),
        parent_key: x.parent_key.arc(row, &mut shared.parent_key),
        exe: c.exe_path.arc(row, &mut shared.exe),
        sha256: x.sha256.arc(row, &mut shared.sha256),
        user: x.user.arc(row, &mut shared.user),
        what,
    }
}

/// Reads the events of `wanted` from `traces`, and the kinds over time of everything inside
/// `window` (`span` is the input's first and last analyzed event).
pub fn collect(
    traces: &[OpenTrace],
    window: TimeWindow,
    span: (i64, i64),
    wanted: &[Wanted],
) -> Evidence {
    let wanted_by_key: Arc<HashMap<String, (i64, i64)>> = Arc::new(
        wanted
            .iter()
            .map(|w| (w.key.clone(), (w.first_ns, w.last_ns)))
            .collect(),
    );
    let tasks: Vec<(&OpenTrace, usize)> = traces
        .iter()
        .flat_map(|t| t.row_groups_in(window).map(move |r| (t, r.index)))
        .collect();
    let parts: Vec<Result<RowGroupEvents, ScanError>> = tasks
        .par_iter()
        .enumerate()
        .map(|(task, &(trace, rg))| {
            let task = u32::try_from(task).unwrap_or(u32::MAX);
            read_row_group(trace, rg, task, window, span, &wanted_by_key)
        })
        .collect();
    let mut out = Evidence {
        global: KindSeries::new(span.0, span.1),
        ..Default::default()
    };
    let mut per: HashMap<String, Gathered> = HashMap::new();
    for p in parts {
        match p {
            Ok((global, events)) => {
                out.global.merge(global);
                merge_map(&mut per, events, Gathered::merge);
            }
            Err(e) => out.errors.push(e.to_string()),
        }
    }
    for w in wanted {
        let gathered = per
            .remove(&w.key)
            .unwrap_or_else(|| Gathered::new(w.first_ns, w.last_ns));
        out.workloads.insert(w.key.clone(), gathered.finish());
    }
    out
}

type RowGroupEvents = (KindSeries, HashMap<String, Gathered>);

fn arrow_err(e: ColumnError) -> ArrowError {
    ArrowError::SchemaError(e.to_string())
}

/// One row group: the filter counts every row in `window` into the kinds over time and keeps
/// the rows of wanted workloads inside their analyzed range, whose other columns are then read.
fn read_row_group(
    trace: &OpenTrace,
    rg: usize,
    task: u32,
    window: TimeWindow,
    span: (i64, i64),
    wanted: &Arc<HashMap<String, (i64, i64)>>,
) -> Result<RowGroupEvents, ScanError> {
    let global = Arc::new(Mutex::new(KindSeries::new(span.0, span.1)));
    let (g, w, host) = (global.clone(), wanted.clone(), trace.host.clone());
    let predicate = ArrowPredicateFn::new(
        trace.mask(KEY_COLUMNS),
        move |batch: RecordBatch| -> Result<BooleanArray, ArrowError> {
            let c = Columns::new(&batch).map_err(arrow_err)?;
            let mut g = g
                .lock()
                .map_err(|_| ArrowError::ComputeError("poisoned".into()))?;
            let keep = (0..c.len).map(|row| {
                let t = c.time.value(row);
                if c.time.is_null(row) || !window.contains(t) {
                    return false;
                }
                let kind = c.kind.get(row).and_then(EventKind::from_name);
                let events = kind.map_or(1, |k| c.events(row, k));
                g.add(kind.map_or("unknown", EventKind::name), t, events);
                w.get(&c.workload_key(row, &host))
                    .is_some_and(|&(first, last)| t >= first && t <= last)
            });
            Ok(keep.map(Some).collect())
        },
    );
    let columns: Vec<&str> = NEEDED.iter().chain(EXTRA_COLUMNS).copied().collect();
    let mut events: HashMap<String, Gathered> = HashMap::new();
    let mut next_row: u32 = 0;
    let filter = RowFilter::new(vec![Box::new(predicate)]);
    trace.read_columns(rg, &columns, Some(filter), &mut |batch| {
        let c = Columns::new(batch).map_err(|e| e.to_string())?;
        let x = Extra::new(batch).map_err(|e| e.to_string())?;
        let mut shared = Shared::new(&c, &x);
        for row in 0..c.len {
            let key = key_of(&c, &x, row, &trace.host, wanted);
            let e = sighting(&c, &x, &mut shared, row);
            events
                .entry(key)
                .or_insert_with_key(|key| {
                    let (first, last) = wanted.get(key).copied().unwrap_or((e.time_ns, e.time_ns));
                    Gathered::new(first, last)
                })
                .add(&e, (e.time_ns, task, next_row));
            next_row = next_row.saturating_add(1);
        }
        Ok(())
    })?;
    let global = std::mem::take(&mut *global.lock().map_err(|_| ScanError::Read {
        path: trace.path.clone(),
        row_group: rg,
        message: "poisoned".into(),
    })?);
    Ok((global, events))
}

/// The workload of a row the filter kept: its key by the scan's rule, or — when a filtered batch
/// lacks the `workload` values the whole row group had, so the rule reads another column — any
/// of its possible keys that is wanted.
fn key_of(
    c: &Columns,
    x: &Extra,
    row: usize,
    host: &str,
    wanted: &HashMap<String, (i64, i64)>,
) -> String {
    let key = c.workload_key(row, host);
    if wanted.contains_key(&key) {
        return key;
    }
    let candidates = [c.workload.get(row), x.container_id.get(row)]
        .into_iter()
        .flatten()
        .filter(|w| !w.is_empty())
        .map(|w| workload_key(Some(w), host, 0))
        .chain([workload_key(
            None,
            host,
            opt(&c.cgroup_id, row).unwrap_or(0),
        )]);
    candidates
        .into_iter()
        .find(|k| wanted.contains_key(k))
        .unwrap_or(key)
}
