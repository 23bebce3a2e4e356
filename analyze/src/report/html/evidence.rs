//! What the HTML report shows of the workloads it details — their timeline, process tree,
//! network destinations, DNS names and files written — and the event kinds over time of the
//! whole input, built from the rows the second read ([`super::reread`]) keeps.
//!
//! The rows of a workload come from many row groups, read in parallel. Each row group folds its
//! rows into a [`Gathered`] per workload, and the row groups' are merged in any order: every
//! "first" and "latest" is decided by a row's [`Seq`], its place in the input's time order, so
//! the result is the one folding every row in time order would give, in memory that grows with
//! the distinct processes, peers, names and files, not with the rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

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
    /// No events yet, over `[start_ns, end_ns]`.
    pub fn new(start_ns: i64, end_ns: i64) -> KindSeries {
        KindSeries {
            start_ns,
            end_ns: end_ns.max(start_ns),
            counts: BTreeMap::new(),
        }
    }

    /// Adds `n` events of `kind` at `t` (a row that closes a collapse window stands for more
    /// than one).
    pub fn add(&mut self, kind: &'static str, t: i64, n: u64) {
        let span = (self.end_ns - self.start_ns) as i128 + 1;
        let offset = (t.clamp(self.start_ns, self.end_ns) - self.start_ns) as i128;
        let b = ((offset * BUCKETS as i128) / span) as usize;
        let row = self.counts.entry(kind).or_insert_with(|| vec![0; BUCKETS]);
        if let Some(c) = row.get_mut(b.min(BUCKETS - 1)) {
            *c += n;
        }
    }

    /// Adds the counts of `other`, a series over the same span.
    pub fn merge(&mut self, other: KindSeries) {
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

/// A row's place in the input's time order: its time, then its row group's place in the
/// input, then its place in the row group (what a stable sort by time of all rows gives).
pub type Seq = (i64, u32, u32);

/// A value and the row it came from, for "the earliest" or "the latest" of many.
type At<T> = Option<(Seq, T)>;

/// Keeps `value` if it is earlier than what `slot` holds.
fn earliest<T>(slot: &mut At<T>, seq: Seq, value: T) {
    if slot.as_ref().is_none_or(|(s, _)| seq < *s) {
        *slot = Some((seq, value));
    }
}

/// Keeps `value` if it is later than what `slot` holds.
fn latest<T>(slot: &mut At<T>, seq: Seq, value: T) {
    if slot.as_ref().is_none_or(|(s, _)| seq > *s) {
        *slot = Some((seq, value));
    }
}

/// Keeps the earlier of two.
fn earlier<T>(a: At<T>, b: At<T>) -> At<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Keeps the later of two.
fn later<T>(a: At<T>, b: At<T>) -> At<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A process, as far as the rows folded so far say.
#[derive(Clone, Debug)]
struct Proc {
    /// Its first row: pid, ppid and command name as they were then.
    first: (Seq, u32, u32, Arc<str>),
    rows: u64,
    events: u64,
    parent: At<Arc<str>>,
    exe: At<Arc<str>>,
    sha256: At<Arc<str>>,
    user: At<Arc<str>>,
    /// The command name of its latest exec.
    exec_comm: At<Arc<str>>,
    argv: At<String>,
    exit: At<String>,
}

impl Proc {
    fn new(seq: Seq, e: &Sighting) -> Proc {
        Proc {
            first: (seq, e.tgid, e.ppid, e.comm.clone()),
            rows: 0,
            events: 0,
            parent: None,
            exe: None,
            sha256: None,
            user: None,
            exec_comm: None,
            argv: None,
            exit: None,
        }
    }

    fn merge(&mut self, o: Proc) {
        if o.first.0 < self.first.0 {
            self.first = o.first;
        }
        self.rows += o.rows;
        self.events += o.events;
        self.parent = earlier(self.parent.take(), o.parent);
        self.exe = later(self.exe.take(), o.exe);
        self.sha256 = later(self.sha256.take(), o.sha256);
        self.user = later(self.user.take(), o.user);
        self.exec_comm = later(self.exec_comm.take(), o.exec_comm);
        self.argv = later(self.argv.take(), o.argv);
        self.exit = later(self.exit.take(), o.exit);
    }
}

/// A peer, as far as the rows folded so far say.
#[derive(Clone, Debug)]
struct Peer {
    first: Seq,
    rows: u64,
    events: u64,
    bytes: u64,
    kinds: BTreeSet<&'static str>,
    /// Executables that talked to it, with their first row.
    exes: HashMap<Arc<str>, Seq>,
}

/// A DNS name, as far as the rows folded so far say.
#[derive(Clone, Debug)]
struct Name {
    first: Seq,
    rows: u64,
    queries: u64,
    responses: u64,
    answers: BTreeSet<String>,
    rcodes: BTreeSet<u8>,
}

/// A file written or changed, as far as the rows folded so far say.
#[derive(Clone, Debug)]
struct Written {
    first: Seq,
    rows: u64,
    kinds: BTreeSet<&'static str>,
}

/// One workload's rows folded, mergeable with another part of its rows in any order.
#[derive(Clone, Debug)]
pub struct Gathered {
    series: KindSeries,
    procs: HashMap<String, Proc>,
    peers: HashMap<(String, u16, String), Peer>,
    names: HashMap<String, Name>,
    files: HashMap<String, Written>,
}

/// Merges `from` into `into`, key by key.
pub(super) fn merge_map<K: std::hash::Hash + Eq, V>(
    into: &mut HashMap<K, V>,
    from: HashMap<K, V>,
    merge: impl Fn(&mut V, V),
) {
    for (k, v) in from {
        match into.entry(k) {
            std::collections::hash_map::Entry::Occupied(mut e) => merge(e.get_mut(), v),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
}

/// The [`CAP`] earliest of `items` (by their first row), and the rows of the others.
fn keep_earliest<K, V>(
    items: HashMap<K, V>,
    first: impl Fn(&V) -> Seq,
    rows: impl Fn(&V) -> u64,
) -> (Vec<(K, V)>, u64) {
    let mut all: Vec<(K, V)> = items.into_iter().collect();
    all.sort_by_key(|(_, v)| first(v));
    let dropped = all.iter().skip(CAP).map(|(_, v)| rows(v)).sum();
    all.truncate(CAP);
    (all, dropped)
}

impl Gathered {
    /// Nothing yet, for a workload analyzed over `[first_ns, last_ns]`.
    pub fn new(first_ns: i64, last_ns: i64) -> Gathered {
        Gathered {
            series: KindSeries::new(first_ns, last_ns),
            procs: HashMap::new(),
            peers: HashMap::new(),
            names: HashMap::new(),
            files: HashMap::new(),
        }
    }

    /// Adds the row `e`, at `seq` in the input's time order.
    pub fn add(&mut self, e: &Sighting, seq: Seq) {
        self.series.add(e.kind, e.time_ns, e.events);
        let id: std::borrow::Cow<'_, str> = match e.process_key.as_deref() {
            Some(key) => key.into(),
            None => format!("pid:{}", e.tgid).into(),
        };
        if !self.procs.contains_key(id.as_ref()) {
            self.procs.insert(id.to_string(), Proc::new(seq, e));
        }
        let Some(p) = self.procs.get_mut(id.as_ref()) else {
            return;
        };
        if seq < p.first.0 {
            p.first = (seq, e.tgid, e.ppid, e.comm.clone());
        }
        p.rows += 1;
        p.events += e.events;
        if e.process_key.is_some()
            && let Some(k) = &e.parent_key
        {
            earliest(&mut p.parent, seq, k.clone());
        }
        for (slot, value) in [(&mut p.exe, &e.exe), (&mut p.sha256, &e.sha256)] {
            if let Some(v) = value {
                latest(slot, seq, v.clone());
            }
        }
        if let Some(u) = e.user.as_ref().filter(|_| e.process_key.is_some()) {
            latest(&mut p.user, seq, u.clone());
        }
        match &e.what {
            What::Exec(argv) => {
                latest(&mut p.exec_comm, seq, e.comm.clone());
                if !argv.is_empty() {
                    latest(&mut p.argv, seq, argv.join(" "));
                }
            }
            What::Exit { code, signal } => {
                let exit = match (code, signal) {
                    (_, Some(s)) => format!("signal {s}"),
                    (Some(c), None) => format!("exit {c}"),
                    (None, None) => "exited".into(),
                };
                latest(&mut p.exit, seq, exit);
            }
            _ => {}
        }
        match &e.what {
            What::Peer {
                addr,
                port,
                protocol,
                bytes,
            } => {
                let d = self
                    .peers
                    .entry((addr.clone(), *port, protocol.clone()))
                    .or_insert_with(|| Peer {
                        first: seq,
                        rows: 0,
                        events: 0,
                        bytes: 0,
                        kinds: BTreeSet::new(),
                        exes: HashMap::new(),
                    });
                d.first = d.first.min(seq);
                d.rows += 1;
                d.events += e.events;
                d.bytes += bytes;
                d.kinds.insert(e.kind);
                let exe = e.exe.clone().unwrap_or_else(|| e.comm.clone());
                let at = d.exes.entry(exe).or_insert(seq);
                *at = (*at).min(seq);
            }
            What::Dns {
                name,
                response,
                rcode,
                answers,
            } => {
                let d = self.names.entry(name.clone()).or_insert_with(|| Name {
                    first: seq,
                    rows: 0,
                    queries: 0,
                    responses: 0,
                    answers: BTreeSet::new(),
                    rcodes: BTreeSet::new(),
                });
                d.first = d.first.min(seq);
                d.rows += 1;
                if *response {
                    d.responses += e.events;
                    d.rcodes.extend(*rcode);
                    d.answers.extend(answers.iter().take(16).cloned());
                } else {
                    d.queries += e.events;
                }
            }
            What::File(path) => {
                let f = self.files.entry(path.clone()).or_insert_with(|| Written {
                    first: seq,
                    rows: 0,
                    kinds: BTreeSet::new(),
                });
                f.first = f.first.min(seq);
                f.rows += 1;
                f.kinds.insert(e.kind);
            }
            What::Exec(_) | What::Exit { .. } | What::Other => {}
        }
    }

    /// Adds another part of the same workload's rows.
    pub fn merge(&mut self, other: Gathered) {
        self.series.merge(other.series);
        merge_map(&mut self.procs, other.procs, Proc::merge);
        merge_map(&mut self.peers, other.peers, |a, b| {
            a.first = a.first.min(b.first);
            a.rows += b.rows;
            a.events += b.events;
            a.bytes += b.bytes;
            a.kinds.extend(b.kinds);
            merge_map(&mut a.exes, b.exes, |x, y| *x = (*x).min(y));
        });
        merge_map(&mut self.names, other.names, |a, b| {
            a.first = a.first.min(b.first);
            a.rows += b.rows;
            a.queries += b.queries;
            a.responses += b.responses;
            a.answers.extend(b.answers);
            a.rcodes.extend(b.rcodes);
        });
        merge_map(&mut self.files, other.files, |a, b| {
            a.first = a.first.min(b.first);
            a.rows += b.rows;
            a.kinds.extend(b.kinds);
        });
    }

    /// What the report shows: at most [`CAP`] processes, peers, names and files each (the
    /// earliest; the rows of the others are counted as dropped), the processes linked to
    /// their parents.
    pub fn finish(self) -> WorkloadEvents {
        let mut w = WorkloadEvents {
            series: self.series,
            ..Default::default()
        };
        let (procs, dropped) = keep_earliest(self.procs, |p| p.first.0, |p| p.rows);
        w.dropped += dropped;
        for (id, p) in procs {
            let (seq, pid, ppid, comm) = p.first;
            let value = |at: At<Arc<str>>| at.map(|(_, v)| v.to_string());
            let node = ProcessNode {
                id: id.clone(),
                parent: value(p.parent),
                pid,
                ppid,
                comm: value(p.exec_comm).unwrap_or_else(|| comm.to_string()),
                exe: value(p.exe),
                argv: p.argv.map(|(_, v)| v),
                sha256: value(p.sha256),
                user: value(p.user),
                first_ns: seq.0,
                events: p.events,
                exit: p.exit.map(|(_, v)| v),
            };
            w.processes.insert(id, node);
        }
        let (peers, dropped) = keep_earliest(self.peers, |d| d.first, |d| d.rows);
        w.dropped += dropped;
        for (key, d) in peers {
            let mut exes: Vec<(Arc<str>, Seq)> = d.exes.into_iter().collect();
            exes.sort_by_key(|(_, s)| *s);
            let destination = Destination {
                kinds: d.kinds,
                count: d.events,
                bytes: d.bytes,
                exes: exes
                    .into_iter()
                    .take(8)
                    .map(|(e, _)| e.to_string())
                    .collect(),
                first_ns: d.first.0,
            };
            w.destinations.insert(key, destination);
        }
        let (names, dropped) = keep_earliest(self.names, |d| d.first, |d| d.rows);
        w.dropped += dropped;
        for (name, d) in names {
            let dns = DnsName {
                queries: d.queries,
                responses: d.responses,
                answers: d.answers,
                rcodes: d.rcodes,
                first_ns: d.first.0,
            };
            w.dns.insert(name, dns);
        }
        let (files, dropped) = keep_earliest(self.files, |f| f.first, |f| f.rows);
        w.dropped += dropped;
        w.files = files.into_iter().map(|(path, f)| (path, f.kinds)).collect();
        link_parents(&mut w);
        w
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
