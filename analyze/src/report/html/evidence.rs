//! The second, filtered read behind the HTML report: every event of the workloads the report
//! details (their timeline, process tree, network destinations and DNS names), and the event
//! kinds over time of the whole input.
//!
//! The feature scan keeps aggregates, not events, so this reads the traces again. A Parquet row
//! filter decodes only the columns that key a row to its workload (plus `time` and `kind`) for
//! every row; the other columns are decoded only for the rows of the detailed workloads.
//! Only `analyze --report` pays for it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, BooleanArray, Int32Array, ListArray, RecordBatch, UInt32Array};
use arrow::error::ArrowError;
use needle_common::abi::EventKind;
use needle_common::schema::names as n;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use rayon::prelude::*;

use crate::columns::{
    ColumnError, Columns, NEEDED, StrCol, i32_col, list_at, list_col, opt, u32_col, workload_key,
};
use crate::features::TimeWindow;
use crate::scan::{OpenTrace, ScanError};

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

    /// Adds `n` events of `kind` at `t` (a row that closes a collapse window stands for more
    /// than one).
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

/// One event of a detailed workload as the report keeps it: what [`fold`] reads, owned (a
/// workload's events come from many row groups and are folded in time order).
#[derive(Clone, Debug, Default)]
pub struct Sighting {
    /// Event time.
    pub time_ns: i64,
    /// Event kind name (`unknown` for a kind this build does not know).
    pub kind: &'static str,
    /// Events the row stands for (a row that closes a collapse window stands for more).
    pub events: u64,
    /// Process id.
    pub tgid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Command name.
    pub comm: Arc<str>,
    /// Process key (`<tgid>@<start>`), when the trace has one.
    pub process_key: Option<Arc<str>>,
    /// The parent's process key.
    pub parent_key: Option<Arc<str>>,
    /// Executable.
    pub exe: Option<Arc<str>>,
    /// SHA-256 of the executable.
    pub sha256: Option<Arc<str>>,
    /// User name.
    pub user: Option<Arc<str>>,
    /// What the event says beyond its process (the process fields above are shared by the
    /// rows of a batch that carry them: a kept row costs its own fields only).
    pub what: What,
}

/// The part of an event the report shows beyond its process.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum What {
    /// Nothing the report shows.
    #[default]
    Other,
    /// An exec, with its argv.
    Exec(Vec<String>),
    /// The process ended.
    Exit {
        /// Exit code.
        code: Option<i32>,
        /// Killing signal.
        signal: Option<i32>,
    },
    /// A network peer: the destination of a connect or send, the source of an accept.
    Peer {
        /// Address.
        addr: String,
        /// Port (0 when unknown).
        port: u16,
        /// Protocol.
        protocol: String,
        /// Bytes sent, when known.
        bytes: u64,
    },
    /// A DNS query or response.
    Dns {
        /// Queried name.
        name: String,
        /// A response, not a query.
        response: bool,
        /// Response code.
        rcode: Option<u8>,
        /// Addresses in the answer.
        answers: Vec<String>,
    },
    /// A file written, created, renamed (its new path), chmod-ed, chown-ed or deleted.
    File(String),
}

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
        .map(|&(trace, rg)| read_row_group(trace, rg, window, span, &wanted_by_key))
        .collect();
    let mut out = Evidence {
        global: KindSeries::new(span.0, span.1),
        ..Default::default()
    };
    let mut per: HashMap<String, Vec<Sighting>> = HashMap::new();
    for p in parts {
        match p {
            Ok((global, events)) => {
                out.global.merge(global);
                for (k, mut v) in events {
                    per.entry(k).or_default().append(&mut v);
                }
            }
            Err(e) => out.errors.push(e.to_string()),
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

type RowGroupEvents = (KindSeries, HashMap<String, Vec<Sighting>>);

fn arrow_err(e: ColumnError) -> ArrowError {
    ArrowError::SchemaError(e.to_string())
}

/// One row group: the filter counts every row in `window` into the kinds over time and keeps
/// the rows of wanted workloads inside their analyzed range, whose other columns are then read.
fn read_row_group(
    trace: &OpenTrace,
    rg: usize,
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
    let mut events: HashMap<String, Vec<Sighting>> = HashMap::new();
    let filter = RowFilter::new(vec![Box::new(predicate)]);
    trace.read_columns(rg, &columns, Some(filter), &mut |batch| {
        let c = Columns::new(batch).map_err(|e| e.to_string())?;
        let x = Extra::new(batch).map_err(|e| e.to_string())?;
        let mut shared = Shared::new(&c, &x);
        for row in 0..c.len {
            let key = key_of(&c, &x, row, &trace.host, wanted);
            let sighting = sighting(&c, &x, &mut shared, row);
            events.entry(key).or_default().push(sighting);
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

/// Adds `e` to `w`.
pub fn fold(w: &mut WorkloadEvents, e: &Sighting) {
    w.series.add(e.kind, e.time_ns, e.events);
    let id = e
        .process_key
        .as_deref()
        .map_or_else(|| format!("pid:{}", e.tgid), str::to_string);
    let full = w.processes.len() >= CAP && !w.processes.contains_key(&id);
    if full {
        w.dropped += 1;
    } else {
        let node = w
            .processes
            .entry(id.clone())
            .or_insert_with(|| ProcessNode {
                id: id.clone(),
                pid: e.tgid,
                ppid: e.ppid,
                comm: e.comm.to_string(),
                first_ns: e.time_ns,
                ..Default::default()
            });
        node.events += e.events;
        if node.parent.is_none() && e.process_key.is_some() {
            node.parent = e.parent_key.as_deref().map(str::to_string);
        }
        set(&mut node.exe, e.exe.as_deref());
        set(&mut node.sha256, e.sha256.as_deref());
        set(
            &mut node.user,
            e.user.as_deref().filter(|_| e.process_key.is_some()),
        );
        match &e.what {
            What::Exec(argv) => {
                node.comm = e.comm.to_string();
                if !argv.is_empty() {
                    node.argv = Some(argv.join(" "));
                }
            }
            What::Exit { code, signal } => {
                node.exit = Some(match (code, signal) {
                    (_, Some(s)) => format!("signal {s}"),
                    (Some(c), None) => format!("exit {c}"),
                    (None, None) => "exited".into(),
                });
            }
            _ => {}
        }
    }
    match &e.what {
        What::Peer {
            addr,
            port,
            protocol,
            bytes,
        } => {
            let key = (addr.clone(), *port, protocol.clone());
            if w.destinations.len() >= CAP && !w.destinations.contains_key(&key) {
                w.dropped += 1;
                return;
            }
            let d = w.destinations.entry(key).or_insert_with(|| Destination {
                first_ns: e.time_ns,
                ..Default::default()
            });
            d.count += e.events;
            d.kinds.insert(e.kind);
            d.bytes += bytes;
            let exe = e.exe.as_deref().unwrap_or(&e.comm);
            if d.exes.len() < 8 && !d.exes.contains(exe) {
                d.exes.insert(exe.to_string());
            }
        }
        What::Dns {
            name,
            response,
            rcode,
            answers,
        } => {
            if w.dns.len() >= CAP && !w.dns.contains_key(name) {
                w.dropped += 1;
                return;
            }
            let d = w.dns.entry(name.clone()).or_insert_with(|| DnsName {
                first_ns: e.time_ns,
                ..Default::default()
            });
            if *response {
                d.responses += e.events;
                d.rcodes.extend(*rcode);
                for a in answers.iter().take(16) {
                    d.answers.insert(a.clone());
                }
            } else {
                d.queries += e.events;
            }
        }
        What::File(path) => {
            if w.files.len() >= CAP && !w.files.contains_key(path) {
                w.dropped += 1;
                return;
            }
            w.files.entry(path.clone()).or_default().insert(e.kind);
        }
        What::Exec(_) | What::Exit { .. } | What::Other => {}
    }
}

/// Keeps the latest known value: `to` becomes `value` when there is one (allocating only when
/// it changes).
fn set(to: &mut Option<String>, value: Option<&str>) {
    if let Some(v) = value
        && to.as_deref() != Some(v)
    {
        *to = Some(v.to_string());
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
