//! Per-workload partial aggregates: computed over any slice of rows (a row group, a file),
//! merged associatively, finalized once into a feature vector.
//!
//! Every field is a count, a min/max, a sum or a set, so `merge(a, merge(b, c)) ==
//! merge(merge(a, b), c)` and the split of the input into files and row groups does not change
//! the result. Sets hold 64-bit hashes of the strings (never the attacker's strings
//! themselves) and are capped per workload; hitting a cap is counted in `capped`.
//!
//! Every type here derives serde, so a new field travels into partial files (`analyze
//! partials`, written by the scan stage) without a hand-written list.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::fasthash::{FastMap, FastSet};

use super::catalog::{KINDS, RECUR_MINUTES};

/// Largest syscall number kept in the histogram; larger ones count in `syscall_other`.
pub const MAX_SYSCALL_NR: usize = 1024;

/// Most entries one workload keeps in each set (processes, written or executed files,
/// addresses, names). Beyond it values are dropped and counted in [`WorkloadPartial::capped`].
pub const SET_CAP: usize = 200_000;

/// Most execs remembered per process (a process that execs more is unusual; the rest are
/// counted in [`WorkloadPartial::capped`]). Keeps the shell judgement linear.
pub const MAX_EXECS_PER_PROC: usize = 32;

/// Context of a container, taken from the rows that have it (per field, the smallest value
/// seen when rows disagree, so the merge order never decides).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Container name.
    pub name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Kubernetes pod.
    pub pod: Option<String>,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Ground-truth label (labelled datasets only).
    pub label: Option<String>,
}

impl Context {
    fn fill_from(&mut self, other: &Context) {
        for (mine, theirs) in [
            (&mut self.name, &other.name),
            (&mut self.image, &other.image),
            (&mut self.pod, &other.pod),
            (&mut self.namespace, &other.namespace),
            (&mut self.label, &other.label),
        ] {
            // Order-independent: the smallest value wins, so that any split of the input
            // into files, row groups and partial files gives the same context.
            if let Some(t) = theirs
                && mine.as_ref().is_none_or(|m| t < m)
            {
                *mine = Some(t.clone());
            }
        }
    }
}

/// What is known about one process of a workload (from its fork and exec rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcInfo {
    /// Parent tgid (0 when unknown).
    pub ppid: u32,
    /// Whether the parent was a shell when it forked this process (the child's `comm` on its
    /// fork row is the parent's).
    pub forked_by_shell: Option<bool>,
    /// Each exec: (time, the new image is a shell).
    pub execs: Vec<(i64, bool)>,
    /// Its first fork or exec row (ns), `i64::MAX` when unknown.
    pub seen_ns: i64,
}

impl Default for ProcInfo {
    fn default() -> Self {
        ProcInfo {
            ppid: 0,
            forked_by_shell: None,
            execs: Vec::new(),
            seen_ns: i64::MAX,
        }
    }
}

/// When something (an executable, a destination, a DNS name) was first seen in a workload,
/// and by which process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FirstSeen {
    /// Time (ns since the epoch).
    pub time: i64,
    /// The process (tgid).
    pub pid: u32,
}

/// Notes `key` first seen at `seen` (keeps the earliest; counts what a full map drops).
pub(crate) fn note_first(
    into: &mut FastMap<u64, FirstSeen>,
    key: u64,
    seen: FirstSeen,
    capped: &mut u64,
) {
    let len = into.len();
    match into.get_mut(&key) {
        Some(old) => *old = (*old).min(seen),
        None if len < SET_CAP => {
            into.insert(key, seen);
        }
        None => *capped += 1,
    }
}

/// The first few distinct clock minutes (ns / 60 s since the epoch) in which something (a
/// destination, a DNS name) was seen: the [`RECUR_MINUTES`] earliest are kept, which is all
/// `late.recurring_*` asks and keeps merging associative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minutes {
    earliest: [i64; RECUR_MINUTES],
    len: u8,
}

impl Minutes {
    /// Notes one sighting at `t` (ns since the epoch).
    pub fn add(&mut self, t: i64) {
        self.insert(t.div_euclid(60_000_000_000));
    }

    fn insert(&mut self, minute: i64) {
        let n = self.count();
        let kept = &self.earliest[..n];
        if kept.contains(&minute) || (n == RECUR_MINUTES && minute > kept[n - 1]) {
            return;
        }
        let end = n.min(RECUR_MINUTES - 1);
        // (`min`: a partial file read back is input; its array may not be sorted.)
        let at = kept.partition_point(|&m| m < minute).min(end);
        self.earliest.copy_within(at..end, at + 1);
        self.earliest[at] = minute;
        self.len = (end + 1) as u8;
    }

    /// Folds `other` in.
    pub fn merge(&mut self, other: Minutes) {
        for &m in &other.earliest[..other.count()] {
            self.insert(m);
        }
    }

    /// Distinct minutes seen, at most [`RECUR_MINUTES`].
    pub fn count(&self) -> usize {
        usize::from(self.len).min(RECUR_MINUTES)
    }
}

/// Notes a sighting of `key` at `t` (counts what a full map drops).
pub(crate) fn note_minute(into: &mut FastMap<u64, Minutes>, key: u64, t: i64, capped: &mut u64) {
    let len = into.len();
    match into.get_mut(&key) {
        Some(m) => m.add(t),
        None if len < SET_CAP => into.entry(key).or_default().add(t),
        None => *capped += 1,
    }
}

/// A shell exec, judged at finalize time once every exec and fork is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellExec {
    /// Process that became a shell.
    pub tgid: u32,
    /// Its parent.
    pub ppid: u32,
    /// When.
    pub time: i64,
}

/// Mergeable aggregates of one workload over some rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadPartial {
    /// Container context.
    pub context: Context,
    /// Hosts the rows came from.
    pub hosts: BTreeSet<String>,
    /// Rows per event kind (index = `EventKind::slot`).
    #[serde(with = "kind_counts")]
    pub kind_counts: [u64; KINDS],
    /// Rows with a kind this build does not know.
    pub unknown_kinds: u64,
    /// Earliest event time (ns), `i64::MAX` when empty.
    pub first_ns: i64,
    /// Latest event time (ns), `i64::MIN` when empty.
    pub last_ns: i64,
    /// Hashes of executed paths.
    pub exes: FastSet<u64>,
    /// Execs from writable/temporary places.
    pub exe_writable: u64,
    /// Execs of memfds and deleted files.
    pub exe_fileless: u64,
    /// Processes by tgid.
    pub procs: FastMap<u32, ProcInfo>,
    /// Shell execs.
    pub shell_execs: Vec<ShellExec>,
    /// Opens with write intent.
    pub file_writes: u64,
    /// Path hash → first time it was written.
    pub written: FastMap<u64, i64>,
    /// Path hash → last time it was executed.
    pub executed: FastMap<u64, i64>,
    /// Hashes of remote addresses.
    pub remote_ips: FastSet<u64>,
    /// Remote ports of outbound traffic.
    pub remote_ports: FastSet<u32>,
    /// Outbound connections/sends to uncommon ports.
    pub unusual_ports: u64,
    /// connect + sendto.
    pub outbound: u64,
    /// accept.
    pub inbound: u64,
    /// sendto payload bytes.
    pub bytes_out: u64,
    /// Hashes of DNS query names.
    pub dns_names: FastSet<u64>,
    /// Executed paths (hash) → first exec.
    pub first_exe: FastMap<u64, FirstSeen>,
    /// Remote address:port (hash) → first connect or send.
    pub first_dst: FastMap<u64, FirstSeen>,
    /// DNS query names (hash) → first query.
    pub first_dns: FastMap<u64, FirstSeen>,
    /// Remote address:port (hash) → the first clock minutes it was contacted in.
    pub dst_minutes: FastMap<u64, Minutes>,
    /// DNS query names (hash) → the first clock minutes it was queried in.
    pub dns_minutes: FastMap<u64, Minutes>,
    /// Queries with a name (for the means below).
    pub dns_named: u64,
    /// Sum of first-label entropies of the rows added here (f64, in row order, as always).
    pub dns_entropy_rows: f64,
    /// Sum of the merged parts' row sums, in fixed point ([`ENTROPY_ONE`] = one bit): every
    /// such sum is an exact multiple of 2^-64, so this integer sum is exact and any merge
    /// order gives the same mean to the last bit (and one part gives its f64 sum unchanged).
    pub dns_entropy_sum: u128,
    /// Highest first-label entropy.
    pub dns_entropy_max: f64,
    /// Sum of name lengths.
    pub dns_len_sum: u64,
    /// Longest name.
    pub dns_len_max: u64,
    /// DNS responses with an rcode.
    pub dns_responses: u64,
    /// NXDOMAIN responses.
    pub dns_nxdomain: u64,
    /// Syscall histogram, index = syscall number (grown on demand, at most [`MAX_SYSCALL_NR`]).
    pub syscalls: Vec<u64>,
    /// Syscalls with a number ≥ [`MAX_SYSCALL_NR`].
    pub syscall_other: u64,
    /// Values dropped because a set reached [`SET_CAP`].
    pub capped: u64,
    /// A (file, row group) that holds rows of this workload, read without its context
    /// columns; the scan reads the context from there if no other task found it. An index
    /// into one run's files: partial files never carry it (the context is filled first).
    #[serde(skip)]
    pub context_probe: Option<(u32, u32)>,
    /// Aggregates of the behaviour-class features (see [`super::behaviour`]).
    pub behaviour: super::behaviour::BehaviourPartial,
}

impl Default for WorkloadPartial {
    fn default() -> Self {
        WorkloadPartial {
            context: Context::default(),
            hosts: BTreeSet::new(),
            kind_counts: [0; KINDS],
            unknown_kinds: 0,
            first_ns: i64::MAX,
            last_ns: i64::MIN,
            exes: FastSet::default(),
            exe_writable: 0,
            exe_fileless: 0,
            procs: FastMap::default(),
            shell_execs: Vec::new(),
            file_writes: 0,
            written: FastMap::default(),
            executed: FastMap::default(),
            remote_ips: FastSet::default(),
            remote_ports: FastSet::default(),
            unusual_ports: 0,
            outbound: 0,
            inbound: 0,
            bytes_out: 0,
            dns_names: FastSet::default(),
            first_exe: FastMap::default(),
            first_dst: FastMap::default(),
            first_dns: FastMap::default(),
            dst_minutes: FastMap::default(),
            dns_minutes: FastMap::default(),
            dns_named: 0,
            dns_entropy_rows: 0.0,
            dns_entropy_sum: 0,
            dns_entropy_max: 0.0,
            dns_len_sum: 0,
            dns_len_max: 0,
            dns_responses: 0,
            dns_nxdomain: 0,
            syscalls: Vec::new(),
            syscall_other: 0,
            capped: 0,
            context_probe: None,
            behaviour: Default::default(),
        }
    }
}

/// Inserts into a capped set; counts what is dropped.
pub(crate) fn insert_capped<T: std::hash::Hash + Eq>(set: &mut FastSet<T>, v: T, capped: &mut u64) {
    if set.len() < SET_CAP || set.contains(&v) {
        set.insert(v);
    } else {
        *capped += 1;
    }
}

fn merge_set<T: std::hash::Hash + Eq>(into: &mut FastSet<T>, from: FastSet<T>, capped: &mut u64) {
    for v in from {
        insert_capped(into, v, capped);
    }
}

fn merge_times(
    into: &mut FastMap<u64, i64>,
    from: FastMap<u64, i64>,
    keep: fn(i64, i64) -> i64,
    capped: &mut u64,
) {
    for (k, t) in from {
        let len = into.len();
        match into.get_mut(&k) {
            Some(old) => *old = keep(*old, t),
            None if len < SET_CAP => {
                into.insert(k, t);
            }
            None => *capped += 1,
        }
    }
}

/// One bit of entropy in [`WorkloadPartial::dns_entropy_sum`]'s fixed point (2^64: a
/// first-label entropy is at most 8 bits, so a sum of 2^60 names still fits).
pub const ENTROPY_ONE: f64 = 18_446_744_073_709_551_616.0;

/// `bits` in [`ENTROPY_ONE`] fixed point (exact for every sum of first-label entropies: a
/// non-zero one is at least ~0.1 bit, far above 2^-12, where f64 steps are multiples of 2^-64).
fn fixed_entropy(bits: f64) -> u128 {
    (bits.max(0.0) * ENTROPY_ONE).round() as u128
}

/// `[u64; KINDS]` as a sequence (serde derives arrays up to 32 elements only); a partial of
/// another number of event kinds is an error.
mod kind_counts {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::KINDS;

    pub fn serialize<S: Serializer>(v: &[u64; KINDS], s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; KINDS], D::Error> {
        let v = Vec::<u64>::deserialize(d)?;
        let n = v.len();
        v.try_into()
            .map_err(|_| D::Error::custom(format!("{n} event kinds, this build has {KINDS}")))
    }
}

impl WorkloadPartial {
    /// Notes a queried name's first-label entropy (bits per character).
    pub fn add_dns_entropy(&mut self, bits: f64) {
        self.dns_entropy_rows += bits;
        self.dns_entropy_max = self.dns_entropy_max.max(bits);
    }

    /// Moves the row sum into the exact merged sum.
    fn fold_dns_entropy(&mut self) {
        self.dns_entropy_sum = self
            .dns_entropy_sum
            .saturating_add(fixed_entropy(self.dns_entropy_rows));
        self.dns_entropy_rows = 0.0;
    }

    /// Mean first-label entropy of the named queries (0 without any).
    pub fn dns_entropy_mean(&self) -> f64 {
        if self.dns_named == 0 {
            return 0.0;
        }
        let sum = if self.dns_entropy_sum == 0 {
            self.dns_entropy_rows
        } else {
            self.dns_entropy_sum
                .saturating_add(fixed_entropy(self.dns_entropy_rows)) as f64
                / ENTROPY_ONE
        };
        sum / self.dns_named as f64
    }

    /// Adds `n` syscalls with number `nr` to the histogram.
    pub fn add_syscalls(&mut self, nr: u32, n: u64) {
        let i = nr as usize;
        if i >= MAX_SYSCALL_NR {
            self.syscall_other += n;
            return;
        }
        if self.syscalls.len() <= i {
            self.syscalls.resize(i + 1, 0);
        }
        self.syscalls[i] += n;
    }

    /// The process entry of `tgid`, created if new (None when the process table is full).
    pub fn proc_mut(&mut self, tgid: u32) -> Option<&mut ProcInfo> {
        if !self.procs.contains_key(&tgid) && self.procs.len() >= SET_CAP {
            self.capped += 1;
            return None;
        }
        Some(self.procs.entry(tgid).or_default())
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: WorkloadPartial) {
        self.context.fill_from(&other.context);
        self.hosts.extend(other.hosts);
        for (a, b) in self.kind_counts.iter_mut().zip(other.kind_counts) {
            *a += b;
        }
        self.unknown_kinds += other.unknown_kinds;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.capped += other.capped;
        let capped = &mut self.capped;
        merge_set(&mut self.exes, other.exes, capped);
        self.exe_writable += other.exe_writable;
        self.exe_fileless += other.exe_fileless;
        for (tgid, p) in other.procs {
            let len = self.procs.len();
            match self.procs.get_mut(&tgid) {
                Some(mine) => {
                    if mine.ppid == 0 {
                        mine.ppid = p.ppid;
                    }
                    mine.forked_by_shell = mine.forked_by_shell.or(p.forked_by_shell);
                    mine.seen_ns = mine.seen_ns.min(p.seen_ns);
                    for e in p.execs {
                        if mine.execs.len() < MAX_EXECS_PER_PROC {
                            mine.execs.push(e);
                        } else {
                            *capped += 1;
                        }
                    }
                }
                None if len < SET_CAP => {
                    self.procs.insert(tgid, p);
                }
                None => *capped += 1,
            }
        }
        for s in other.shell_execs {
            if self.shell_execs.len() < SET_CAP {
                self.shell_execs.push(s);
            } else {
                *capped += 1;
            }
        }
        self.context_probe = match (self.context_probe, other.context_probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.file_writes += other.file_writes;
        merge_times(&mut self.written, other.written, i64::min, capped);
        merge_times(&mut self.executed, other.executed, i64::max, capped);
        merge_set(&mut self.remote_ips, other.remote_ips, capped);
        merge_set(&mut self.remote_ports, other.remote_ports, capped);
        self.unusual_ports += other.unusual_ports;
        self.outbound += other.outbound;
        self.inbound += other.inbound;
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        merge_set(&mut self.dns_names, other.dns_names, capped);
        for (into, from) in [
            (&mut self.first_exe, other.first_exe),
            (&mut self.first_dst, other.first_dst),
            (&mut self.first_dns, other.first_dns),
        ] {
            for (k, seen) in from {
                note_first(into, k, seen, capped);
            }
        }
        for (into, from) in [
            (&mut self.dst_minutes, other.dst_minutes),
            (&mut self.dns_minutes, other.dns_minutes),
        ] {
            for (k, m) in from {
                let len = into.len();
                match into.get_mut(&k) {
                    Some(mine) => mine.merge(m),
                    None if len < SET_CAP => {
                        into.insert(k, m);
                    }
                    None => *capped += 1,
                }
            }
        }
        self.dns_named += other.dns_named;
        self.fold_dns_entropy();
        let mut other_sum = other.dns_entropy_sum;
        other_sum = other_sum.saturating_add(fixed_entropy(other.dns_entropy_rows));
        self.dns_entropy_sum = self.dns_entropy_sum.saturating_add(other_sum);
        self.dns_entropy_max = self.dns_entropy_max.max(other.dns_entropy_max);
        self.dns_len_sum += other.dns_len_sum;
        self.dns_len_max = self.dns_len_max.max(other.dns_len_max);
        self.dns_responses += other.dns_responses;
        self.dns_nxdomain += other.dns_nxdomain;
        if self.syscalls.len() < other.syscalls.len() {
            self.syscalls.resize(other.syscalls.len(), 0);
        }
        for (a, b) in self.syscalls.iter_mut().zip(other.syscalls) {
            *a += b;
        }
        self.syscall_other += other.syscall_other;
        self.behaviour.merge(other.behaviour);
    }
}

/// Partial aggregates of many workloads, keyed by workload key.
pub type Partials = HashMap<String, WorkloadPartial>;

/// Merges `from` into `into`, workload by workload.
pub fn merge_partials(into: &mut Partials, from: Partials) {
    for (key, p) in from {
        match into.get_mut(&key) {
            Some(mine) => mine.merge(p),
            None => {
                into.insert(key, p);
            }
        }
    }
}

#[cfg(test)]
mod minutes_tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn minutes_keep_the_earliest_distinct_and_merge_in_any_order() {
        let mut a = Minutes::default();
        for t in [5 * MIN + 3, 5 * MIN + 9, 7 * MIN, 2 * MIN, 9 * MIN, 1] {
            a.add(t);
        }
        assert_eq!(a.count(), RECUR_MINUTES);
        assert_eq!(&a.earliest[..], &[0, 2, 5][..RECUR_MINUTES]);
        let (mut x, mut y) = (Minutes::default(), Minutes::default());
        for t in [9 * MIN, 2 * MIN, 1] {
            x.add(t);
        }
        for t in [5 * MIN + 3, 7 * MIN, 5 * MIN + 9] {
            y.add(t);
        }
        let (mut xy, mut yx) = (x, y);
        xy.merge(y);
        yx.merge(x);
        assert_eq!(xy, a);
        assert_eq!(yx, a);
        let mut once = Minutes::default();
        once.add(-1);
        once.add(-2);
        assert_eq!(
            once.count(),
            1,
            "minutes before the epoch floor, not truncate"
        );
    }
}
