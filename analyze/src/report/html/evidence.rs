//! The second, filtered read behind the HTML report: every event of the workloads the report
//! details (their timeline, process tree, network destinations and DNS names), and the event
//! kinds over time of the whole input.
//!
//! The feature scan keeps aggregates, not events, so this reads the traces again. A Parquet row
//! filter decodes only the columns that key a row to its workload (plus `time` and `kind`) for
//! every row; the other columns are decoded only for the rows of the detailed workloads.
//! Only `analyze --report` pays for it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampNanosecondType, UInt64Type};
use arrow::error::ArrowError;
use needle_common::abi::EventKind;
use needle_common::schema::{Detail, Event, events_from_batch, names as n};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter};
use rayon::prelude::*;

use crate::features::{TimeWindow, workload_key};
use crate::scan::OpenTrace;

/// Buckets of a timeline.
pub const BUCKETS: usize = 60;
/// At most this many processes, destinations, DNS names and files are kept per workload.
pub const CAP: usize = 400;

/// Event counts per kind over `BUCKETS` equal slices of `[start_ns, end_ns]`.
#[derive(Clone, Debug, Default)]
pub struct KindSeries {
    /// First time covered.
    pub start_ns: i64,
    /// Last time covered.
    pub end_ns: i64,
    /// Counts per kind name.
    pub counts: BTreeMap<&'static str, Vec<u64>>,
}

impl KindSeries {
    fn new(start_ns: i64, end_ns: i64) -> KindSeries {
        KindSeries {
            start_ns,
            end_ns: end_ns.max(start_ns),
            counts: BTreeMap::new(),
        }
    }

    /// Adds `n` events of `kind` at `t` (an open row that closes a collapse window stands for
    /// more than one).
    fn add(&mut self, kind: &'static str, t: i64, n: u64) {
        let span = (self.end_ns - self.start_ns) as i128 + 1;
        let offset = (t.clamp(self.start_ns, self.end_ns) - self.start_ns) as i128;
        let b = ((offset * BUCKETS as i128) / span) as usize;
        let row = self.counts.entry(kind).or_insert_with(|| vec![0; BUCKETS]);
        if let Some(c) = row.get_mut(b.min(BUCKETS - 1)) {
            *c += n;
        }
    }

    fn merge(&mut self, other: KindSeries) {
        for (k, v) in other.counts {
            let row = self.counts.entry(k).or_insert_with(|| vec![0; BUCKETS]);
            row.iter_mut().zip(v).for_each(|(a, b)| *a += b);
        }
    }

    /// Total events per kind, most frequent first.
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        let mut t: Vec<(&'static str, u64)> = self
            .counts
            .iter()
            .map(|(k, v)| (*k, v.iter().sum()))
            .collect();
        t.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        t
    }
}

/// One process of a workload.
#[derive(Clone, Debug, Default)]
pub struct ProcessNode {
    /// Process key (`<tgid>@<start>`), or `pid:<tgid>` when the trace has none.
    pub id: String,
    /// The parent's id, when known.
    pub parent: Option<String>,
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Command name.
    pub comm: String,
    /// Executable.
    pub exe: Option<String>,
    /// argv of its last exec.
    pub argv: Option<String>,
    /// SHA-256 of the executable.
    pub sha256: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// First event.
    pub first_ns: i64,
    /// Events of the process.
    pub events: u64,
    /// Exit code or signal, when it ended.
    pub exit: Option<String>,
}

/// A network peer of a workload.
#[derive(Clone, Debug, Default)]
pub struct Destination {
    /// Events to or from it, by kind.
    pub kinds: BTreeSet<&'static str>,
    /// Events.
    pub count: u64,
    /// Bytes sent, when known.
    pub bytes: u64,
    /// Executables that talked to it.
    pub exes: BTreeSet<String>,
    /// First event.
    pub first_ns: i64,
}

/// A DNS name a workload asked for.
#[derive(Clone, Debug, Default)]
pub struct DnsName {
    /// Queries.
    pub queries: u64,
    /// Responses.
    pub responses: u64,
    /// Addresses in the answers.
    pub answers: BTreeSet<String>,
    /// Response codes seen.
    pub rcodes: BTreeSet<u8>,
    /// First event.
    pub first_ns: i64,
}

/// Everything the report shows about one workload's events.
#[derive(Clone, Debug, Default)]
pub struct WorkloadEvents {
    /// Its events over time.
    pub series: KindSeries,
    /// Its processes by id.
    pub processes: BTreeMap<String, ProcessNode>,
    /// Peers by `(address, port, protocol)`.
    pub destinations: BTreeMap<(String, u16, String), Destination>,
    /// DNS names.
    pub dns: BTreeMap<String, DnsName>,
    /// Files written, created, renamed, chmod-ed or deleted: path → kinds.
    pub files: BTreeMap<String, BTreeSet<&'static str>>,
    /// Items not kept because a list was full.
    pub dropped: u64,
}

/// What the second read found.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Event kinds over time, every workload.
    pub global: KindSeries,
    /// Per detailed workload.
    pub workloads: HashMap<String, WorkloadEvents>,
    /// Files or row groups that could not be read again (the report says so).
    pub errors: Vec<String>,
}

/// A workload to detail: its key and the time range the scan analyzed.
pub struct Wanted {
    /// Workload key.
    pub key: String,
    /// First analyzed event.
    pub first_ns: i64,
    /// Last analyzed event.
    pub last_ns: i64,
}

fn str_at(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let col = batch.column_by_name(name)?;
    if col.is_null(row) {
        return None;
    }
    match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Some(col.as_string::<i64>().value(row).to_string()),
        _ => None,
    }
}

/// The workload key of every row of `batch` (the rule of the feature scan).
fn row_keys(batch: &RecordBatch, host: &str) -> Vec<String> {
    let workload_col = batch
        .column_by_name(n::WORKLOAD)
        .filter(|w| w.null_count() < w.len())
        .map(|_| n::WORKLOAD)
        .unwrap_or(n::CONTAINER_ID);
    let cgroups = batch
        .column_by_name(n::CGROUP_ID)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>().cloned());
    (0..batch.num_rows())
        .map(
            |row| match str_at(batch, workload_col, row).filter(|s| !s.is_empty()) {
                Some(id) => workload_key(Some(&id), host, 0),
                None => workload_key(
                    None,
                    host,
                    cgroups
                        .as_ref()
                        .filter(|c| !c.is_null(row))
                        .map_or(0, |c| c.value(row)),
                ),
            },
        )
        .collect()
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
    let tasks: Vec<(usize, usize)> = traces
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.row_groups_in(window).map(move |r| (i, r.index)))
        .collect();
    let parts: Vec<Result<RowGroupEvents, String>> = tasks
        .par_iter()
        .map(|&(i, rg)| {
            let trace = &traces[i];
            read_row_group(&trace.path, &trace.host, rg, window, span, &wanted_by_key)
                .map_err(|e| format!("{}: row group {rg}: {e}", trace.path.display()))
        })
        .collect();
    let mut out = Evidence {
        global: KindSeries::new(span.0, span.1),
        ..Default::default()
    };
    let mut per: HashMap<String, Vec<Event>> = HashMap::new();
    for p in parts {
        match p {
            Ok((global, events)) => {
                out.global.merge(global);
                for (k, mut v) in events {
                    per.entry(k).or_default().append(&mut v);
                }
            }
            Err(e) => out.errors.push(e),
        }
    }
    for w in wanted {
        let mut events = per.remove(&w.key).unwrap_or_default();
        events.sort_by_key(|e| e.time_ns);
        let mut we = WorkloadEvents {
            series: KindSeries::new(w.first_ns, w.last_ns),
            ..Default::default()
        };
        for e in &events {
            fold(&mut we, e);
        }
        link_parents(&mut we);
        out.workloads.insert(w.key.clone(), we);
    }
    out
}

type RowGroupEvents = (KindSeries, HashMap<String, Vec<Event>>);

fn read_row_group(
    path: &Path,
    host: &str,
    rg: usize,
    window: TimeWindow,
    span: (i64, i64),
    wanted: &Arc<HashMap<String, (i64, i64)>>,
) -> Result<RowGroupEvents, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let schema = builder.parquet_schema();
    let key_cols: Vec<usize> = schema
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            [
                n::TIME,
                n::KIND,
                n::WORKLOAD,
                n::CONTAINER_ID,
                n::CGROUP_ID,
                n::COUNT,
            ]
            .contains(&c.path().string().as_str())
        })
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::leaves(schema, key_cols);
    let global = Arc::new(Mutex::new(KindSeries::new(span.0, span.1)));
    let (g, w, h) = (global.clone(), wanted.clone(), host.to_string());
    let predicate = ArrowPredicateFn::new(
        mask,
        move |batch: RecordBatch| -> Result<BooleanArray, ArrowError> {
            let times = batch
                .column_by_name(n::TIME)
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                .ok_or_else(|| ArrowError::SchemaError("no `time` column".into()))?;
            let keys = row_keys(&batch, &h);
            let counts = batch
                .column_by_name(n::COUNT)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>());
            let mut g = g
                .lock()
                .map_err(|_| ArrowError::ComputeError("poisoned".into()))?;
            let keep = (0..batch.num_rows()).map(|row| {
                let t = times.value(row);
                if !window.contains(t) {
                    return false;
                }
                let kind = str_at(&batch, n::KIND, row).and_then(|k| EventKind::from_name(&k));
                let events = match (kind, counts) {
                    (
                        Some(
                            EventKind::Open
                            | EventKind::Connect
                            | EventKind::SendTo
                            | EventKind::Accept,
                        ),
                        Some(c),
                    ) if c.is_valid(row) => c.value(row),
                    _ => 1,
                };
                g.add(kind.map_or("unknown", EventKind::name), t, events);
                w.get(&keys[row])
                    .is_some_and(|&(first, last)| t >= first && t <= last)
            });
            Ok(keep.map(Some).collect())
        },
    );
    let reader = builder
        .with_row_groups(vec![rg])
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .build()
        .map_err(|e| e.to_string())?;
    let mut events: HashMap<String, Vec<Event>> = HashMap::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let keys = row_keys(&batch, host);
        let decoded = events_from_batch(&batch).map_err(|e| e.to_string())?;
        for (key, e) in keys.into_iter().zip(decoded) {
            let key = if wanted.contains_key(&key) {
                key
            } else {
                key_of_event(&e, host, wanted).unwrap_or(key)
            };
            events.entry(key).or_default().push(e);
        }
    }
    let global = std::mem::take(&mut *global.lock().map_err(|_| "poisoned".to_string())?);
    Ok((global, events))
}

/// A row the filter kept but whose batch-level key rule differs (a filtered batch may lack the
/// `workload` values the whole row group had): any of its possible keys that is wanted.
fn key_of_event(e: &Event, host: &str, wanted: &HashMap<String, (i64, i64)>) -> Option<String> {
    let candidates = [
        e.workload
            .as_deref()
            .filter(|w| !w.is_empty())
            .map(|w| workload_key(Some(w), host, 0)),
        e.container
            .as_ref()
            .map(|c| workload_key(Some(&c.id), host, 0)),
        Some(workload_key(None, host, e.process.cgroup_id)),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|k| wanted.contains_key(k))
}

/// Adds `e` to `w`.
pub fn fold(w: &mut WorkloadEvents, e: &Event) {
    let events = match e.detail {
        Detail::Open { count: Some(c), .. } => c,
        _ => 1,
    };
    let kind = e.detail.kind().name();
    w.series.add(kind, e.time_ns, events);
    let id = e
        .context
        .as_ref()
        .map_or_else(|| format!("pid:{}", e.process.tgid), |c| c.key.to_string());
    let full = w.processes.len() >= CAP && !w.processes.contains_key(&id);
    if full {
        w.dropped += 1;
    } else {
        let node = w
            .processes
            .entry(id.clone())
            .or_insert_with(|| ProcessNode {
                id: id.clone(),
                pid: e.process.tgid,
                ppid: e.process.ppid,
                comm: e.process.comm.to_string(),
                first_ns: e.time_ns,
                ..Default::default()
            });
        node.events += 1;
        if node.parent.is_none() {
            node.parent = e
                .context
                .as_ref()
                .and_then(|c| c.parent_key.as_deref().map(str::to_string));
        }
        if let Some(x) = &e.exe_path {
            node.exe = Some(x.to_string());
        }
        if let Some(s) = &e.exe_sha256 {
            node.sha256 = Some(s.to_string());
        }
        if let Some(u) = e.context.as_ref().and_then(|c| c.user.as_deref()) {
            node.user = Some(u.to_string());
        }
        match &e.detail {
            Detail::Exec { argv, .. } => {
                node.comm = e.process.comm.to_string();
                if !argv.is_empty() {
                    node.argv = Some(argv.join(" "));
                }
            }
            Detail::Exit { code, signal } => {
                node.exit = Some(match (code, signal) {
                    (_, Some(s)) => format!("signal {s}"),
                    (Some(c), None) => format!("exit {c}"),
                    (None, None) => "exited".into(),
                });
            }
            _ => {}
        }
    }
    let exe = e.exe_path.as_deref().unwrap_or(&e.process.comm).to_string();
    match &e.detail {
        Detail::Connect(net) | Detail::Accept(net) | Detail::SendTo(net) => {
            let (addr, port) = match &e.detail {
                Detail::Accept(_) => (net.src_addr.clone(), net.src_port),
                _ => (net.dst_addr.clone(), net.dst_port),
            };
            let Some(addr) = addr else { return };
            let key = (addr, port.unwrap_or(0), net.protocol.clone());
            if w.destinations.len() >= CAP && !w.destinations.contains_key(&key) {
                w.dropped += 1;
                return;
            }
            let d = w.destinations.entry(key).or_insert_with(|| Destination {
                first_ns: e.time_ns,
                ..Default::default()
            });
            d.count += 1;
            d.kinds.insert(kind);
            d.bytes += net.bytes.unwrap_or(0);
            if d.exes.len() < 8 {
                d.exes.insert(exe);
            }
        }
        Detail::DnsQuery(dns) | Detail::DnsResponse(dns) => {
            if w.dns.len() >= CAP && !w.dns.contains_key(&dns.name) {
                w.dropped += 1;
                return;
            }
            let d = w.dns.entry(dns.name.clone()).or_insert_with(|| DnsName {
                first_ns: e.time_ns,
                ..Default::default()
            });
            if matches!(e.detail, Detail::DnsQuery(_)) {
                d.queries += 1;
            } else {
                d.responses += 1;
                d.rcodes.extend(dns.rcode);
                for a in dns.answers.iter().take(16) {
                    d.answers.insert(a.clone());
                }
            }
        }
        _ => {
            let path = match &e.detail {
                Detail::Open { file, flags, .. } if flags & 0o3 != 0 || flags & 0o100 != 0 => {
                    Some(file.path.clone())
                }
                Detail::Unlink { file, .. }
                | Detail::Chmod { file, .. }
                | Detail::Chown { file, .. } => Some(file.path.clone()),
                Detail::Rename { new_path, .. } => Some(new_path.clone()),
                _ => None,
            };
            if let Some(p) = path {
                if w.files.len() >= CAP && !w.files.contains_key(&p) {
                    w.dropped += 1;
                    return;
                }
                w.files.entry(p).or_default().insert(kind);
            }
        }
    }
}

/// Links processes without a parent key to the latest earlier process with their `ppid`.
pub fn link_parents(w: &mut WorkloadEvents) {
    let by_pid: HashMap<u32, Vec<(i64, String)>> =
        w.processes.values().fold(HashMap::new(), |mut m, p| {
            m.entry(p.pid).or_default().push((p.first_ns, p.id.clone()));
            m
        });
    let ids: HashSet<String> = w.processes.keys().cloned().collect();
    for p in w.processes.values_mut() {
        if p.parent.as_ref().is_some_and(|k| ids.contains(k)) {
            continue;
        }
        p.parent = by_pid
            .get(&p.ppid)
            .and_then(|v| {
                v.iter()
                    .filter(|(t, id)| *t <= p.first_ns && *id != p.id)
                    .max_by_key(|(t, _)| *t)
            })
            .map(|(_, id)| id.clone());
    }
}
