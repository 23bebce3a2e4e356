//! Merged partial aggregates into the feature table: one row per workload, one column per
//! feature of the catalog (syscall columns for the numbers seen in this input).

use std::collections::{BTreeSet, HashMap};

use needle_common::abi::{EVENT_KINDS, EventKind, Family};

use super::catalog::{
    FAMILIES, FIXED_OFFSET, FeatureDef, KINDS, RECUR_MINUTES, STARTUP_S, fixed_layout, id,
};
use super::partial::{Context, Partials, WorkloadPartial};

/// x86_64 numbers of the security-relevant syscalls counted in `security.calls`.
const SECURITY_SYSCALLS: &[u32] = &[
    101, // ptrace
    310, 311, // process_vm_readv, process_vm_writev
    175, 313, // init_module, finit_module
    105, 106, 113, 114, 117, 119, 122, 123, // set*id
    126, // capset
    323, // userfaultfd
    165, // mount
    272, // unshare
    308, // setns
    321, // bpf
    250, // keyctl
    319, // memfd_create
];

/// Event kinds counted in `security.calls`: the security family, and memfd_create (a file
/// kind: fileless execution starts there).
fn is_security_call(kind: EventKind) -> bool {
    kind.family() == Family::Security || kind == EventKind::MemfdCreate
}

/// One workload's row of the feature table.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadFeatures {
    /// Workload key (container id or host key).
    pub workload: String,
    /// Container context.
    pub context: Context,
    /// Hosts the workload was seen on.
    pub hosts: Vec<String>,
    /// First event (ns since the epoch).
    pub first_ns: i64,
    /// Last event (ns since the epoch).
    pub last_ns: i64,
    /// Values dropped because a per-workload set was full (features are lower bounds then).
    pub capped: u64,
    /// When behaviour not seen during start-up began, and where (see `late.*` features).
    pub change: Option<Change>,
    /// One value per column of [`FeatureTable::columns`].
    pub values: Vec<f64>,
}

/// The first behaviour of a workload not seen during its start-up (see
/// [`super::catalog::STARTUP_S`]): an executable first run, a destination first contacted, or
/// a name first queried after it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// When it began (ns since the epoch).
    #[serde(skip)]
    pub time_ns: i64,
    /// When it began (RFC 3339).
    pub began: String,
    /// What was new first: `executable`, `destination` or `domain`.
    pub first: &'static str,
    /// The process that did it.
    pub pid: u32,
    /// The root of the process subtree that carries it: its highest ancestor that itself
    /// appeared after start-up (the process itself when none did).
    pub subtree: u32,
    /// Things first seen after start-up (executables, destinations and names).
    pub new_after_startup: u64,
}

/// A column of the feature table.
#[derive(Clone, Debug)]
pub struct FeatureColumn {
    /// Feature name.
    pub name: String,
    /// Its definition in the catalog.
    pub def: &'static FeatureDef,
}

/// Features of every workload.
#[derive(Clone, Debug)]
pub struct FeatureTable {
    /// Columns, in order: `events.<kind>`, `rate.<kind>`, fixed features, `syscall.<nr>`.
    pub columns: Vec<FeatureColumn>,
    /// Rows, sorted by workload key.
    pub rows: Vec<WorkloadFeatures>,
}

impl FeatureTable {
    /// Index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The value of feature `name` for the workload `workload`.
    pub fn value(&self, workload: &str, name: &str) -> Option<f64> {
        let c = self.column(name)?;
        self.rows
            .iter()
            .find(|r| r.workload == workload)
            .and_then(|r| r.values.get(c).copied())
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Counts shells started by something that is not a shell: the image the process had before
/// (an exec chain), else its parent's image when it forked, else the parent's last image
/// before the shell started. Unknown spawners are not counted.
fn shells_from_non_shells(p: &WorkloadPartial) -> u64 {
    let spawner_is_shell = |tgid: u32, ppid: u32, t: i64| -> Option<bool> {
        let own = p.procs.get(&tgid);
        if let Some(prev) = own.and_then(|o| o.execs.iter().filter(|e| e.0 < t).max_by_key(|e| e.0))
        {
            return Some(prev.1);
        }
        if let Some(by_shell) = own.and_then(|o| o.forked_by_shell) {
            return Some(by_shell);
        }
        let parent = p.procs.get(&ppid)?;
        parent
            .execs
            .iter()
            .filter(|e| e.0 <= t)
            .max_by_key(|e| e.0)
            .map(|e| e.1)
    };
    p.shell_execs
        .iter()
        .filter(|s| spawner_is_shell(s.tgid, s.ppid, s.time) == Some(false))
        .count() as u64
}

/// Deepest ancestry chain and largest fan-out in the workload's process table.
fn tree_shape(p: &WorkloadPartial) -> (u64, u64) {
    let mut children: HashMap<u32, u64> = HashMap::new();
    for info in p.procs.values() {
        if info.ppid != 0 {
            *children.entry(info.ppid).or_default() += 1;
        }
    }
    let fanout = children.values().copied().max().unwrap_or(0);
    let mut depth_of: HashMap<u32, u64> = HashMap::new();
    let mut max_depth = 0;
    for &start in p.procs.keys() {
        // Walk up until a known depth, a process outside the table, or a cycle (bad data).
        let mut chain = Vec::new();
        let mut cur = start;
        let mut base = 0;
        while let Some(info) = p.procs.get(&cur) {
            if let Some(&d) = depth_of.get(&cur) {
                base = d;
                break;
            }
            if chain.contains(&cur) || chain.len() > 4096 {
                break;
            }
            chain.push(cur);
            if info.ppid == 0 || info.ppid == cur {
                break;
            }
            cur = info.ppid;
        }
        for (i, pid) in chain.iter().rev().enumerate() {
            depth_of.insert(*pid, base + i as u64 + 1);
        }
        max_depth = max_depth.max(depth_of.get(&start).copied().unwrap_or(0));
    }
    (max_depth, fanout)
}

fn fixed_values(p: &WorkloadPartial) -> Vec<f64> {
    let mut v = vec![0.0; FIXED_OFFSET + id::COUNT];
    let lifetime_s = if p.last_ns >= p.first_ns {
        (p.last_ns - p.first_ns) as f64 / 1e9
    } else {
        0.0
    };
    for k in 0..KINDS {
        v[k] = p.kind_counts[k] as f64;
        v[KINDS + k] = p.kind_counts[k] as f64 / lifetime_s.max(1.0);
    }
    let f = &mut v[FIXED_OFFSET..];
    let total: u64 = p.kind_counts.iter().sum::<u64>() + p.unknown_kinds;
    let (depth, fanout) = tree_shape(p);
    let written_then_executed = p
        .executed
        .iter()
        .filter(|(h, exec_t)| p.written.get(h).is_some_and(|w| w <= exec_t))
        .count();
    let syscalls: u64 = p.syscalls.iter().sum::<u64>() + p.syscall_other;
    let security_syscalls: u64 = SECURITY_SYSCALLS
        .iter()
        .filter_map(|&nr| p.syscalls.get(nr as usize))
        .sum();
    let security_events: u64 = EVENT_KINDS
        .iter()
        .filter(|&&k| is_security_call(k))
        .map(|k| p.kind_counts[k.slot() as usize])
        .sum();
    f[id::EVENTS_TOTAL] = total as f64;
    f[id::LIFETIME] = lifetime_s;
    f[id::EXE_DISTINCT] = p.exes.len() as f64;
    f[id::EXE_WRITABLE] = p.exe_writable as f64;
    f[id::EXE_FILELESS] = p.exe_fileless as f64;
    f[id::SHELL_FROM_NON_SHELL] = shells_from_non_shells(p) as f64;
    f[id::PROC_DISTINCT] = p.procs.len() as f64;
    f[id::TREE_DEPTH] = depth as f64;
    f[id::FANOUT] = fanout as f64;
    f[id::FILE_WRITES] = p.file_writes as f64;
    f[id::WRITTEN_THEN_EXECUTED] = written_then_executed as f64;
    f[id::REMOTE_IPS] = p.remote_ips.len() as f64;
    f[id::REMOTE_PORTS] = p.remote_ports.len() as f64;
    f[id::UNUSUAL_PORTS] = p.unusual_ports as f64;
    f[id::OUTBOUND] = p.outbound as f64;
    f[id::INBOUND] = p.inbound as f64;
    f[id::OUTBOUND_RATIO] = ratio(p.outbound, p.outbound + p.inbound);
    f[id::BYTES_OUT] = p.bytes_out as f64;
    f[id::DNS_QUERIES] = p.kind_counts[EventKind::DnsQuery.slot() as usize] as f64;
    f[id::DNS_DISTINCT] = p.dns_names.len() as f64;
    f[id::DNS_ENTROPY_MEAN] = p.dns_entropy_mean();
    f[id::DNS_ENTROPY_MAX] = p.dns_entropy_max;
    f[id::DNS_LEN_MEAN] = ratio(p.dns_len_sum, p.dns_named);
    f[id::DNS_LEN_MAX] = p.dns_len_max as f64;
    f[id::DNS_NXDOMAIN_RATIO] = ratio(p.dns_nxdomain, p.dns_responses);
    f[id::SYSCALL_TOTAL] = syscalls as f64;
    f[id::SYSCALL_DISTINCT] =
        (p.syscalls.iter().filter(|&&c| c > 0).count() + usize::from(p.syscall_other > 0)) as f64;
    f[id::SECURITY_CALLS] = (security_syscalls + security_events) as f64;
    let b = &p.behaviour;
    let (ports_per_host, hosts_per_port) = b.scan_breadth();
    f[id::CREDENTIAL_READS] = b.credential_reads.len() as f64;
    f[id::LOG_TAMPERING] = b.log_tampering as f64;
    f[id::SETID_BITS] = b.setid_bits as f64;
    f[id::PORTS_PER_HOST] = ports_per_host as f64;
    f[id::HOSTS_PER_PORT] = hosts_per_port as f64;
    f[id::REFUSED] = b.refused as f64;
    f[id::NAMESPACE_CHANGES] = b.namespace_changes as f64;
    f[id::SHELL_BESIDE_DOWNLOAD] = b.shells_beside_downloads(&p.shell_execs) as f64;
    f[id::DISCOVERY_TOOLS] = b.discovery_tools.len() as f64;
    let [exes, dsts, names] = late_counts(p);
    f[id::LATE_EXES] = exes as f64;
    f[id::LATE_DESTINATIONS] = dsts as f64;
    f[id::LATE_DOMAINS] = names as f64;
    let [dsts, names] = late_recurring(p);
    f[id::LATE_RECURRING_DESTINATIONS] = dsts as f64;
    f[id::LATE_RECURRING_DOMAINS] = names as f64;
    v
}

/// End of a workload's start-up (ns).
fn startup_end(p: &WorkloadPartial) -> i64 {
    p.first_ns.saturating_add(STARTUP_S * 1_000_000_000)
}

/// Things first seen after start-up, per family (executables, destinations, names).
fn late_counts(p: &WorkloadPartial) -> [u64; 3] {
    let cut = startup_end(p);
    [&p.first_exe, &p.first_dst, &p.first_dns]
        .map(|m| m.values().filter(|s| s.time > cut).count() as u64)
}

/// Destinations and names first seen after start-up and seen in at least
/// [`RECUR_MINUTES`] distinct clock minutes.
fn late_recurring(p: &WorkloadPartial) -> [u64; 2] {
    let cut = startup_end(p);
    [
        (&p.first_dst, &p.dst_minutes),
        (&p.first_dns, &p.dns_minutes),
    ]
    .map(|(first, minutes)| {
        first
            .iter()
            .filter(|(k, s)| {
                s.time > cut && minutes.get(k).is_some_and(|m| m.count() >= RECUR_MINUTES)
            })
            .count() as u64
    })
}

/// The first behaviour not seen during start-up, and the subtree that carries it.
fn change_of(p: &WorkloadPartial) -> Option<Change> {
    let cut = startup_end(p);
    let (seen, first) = [
        (&p.first_exe, "executable"),
        (&p.first_dst, "destination"),
        (&p.first_dns, "domain"),
    ]
    .into_iter()
    .flat_map(|(m, what)| m.values().filter(|s| s.time > cut).map(move |s| (*s, what)))
    .min_by_key(|(s, what)| (*s, *what))?;
    // Walk up while the parent also appeared after start-up (bounded: bad data may loop).
    let mut subtree = seen.pid;
    for _ in 0..4096 {
        let Some(parent) = p.procs.get(&subtree).map(|i| i.ppid).filter(|&pp| pp != 0) else {
            break;
        };
        match p.procs.get(&parent) {
            Some(info) if info.seen_ns > cut && info.seen_ns != i64::MAX && parent != subtree => {
                subtree = parent;
            }
            _ => break,
        }
    }
    Some(Change {
        time_ns: seen.time,
        began: crate::timefmt::rfc3339(seen.time),
        first,
        pid: seen.pid,
        subtree,
        new_after_startup: late_counts(p).iter().sum(),
    })
}

/// Finalizes merged partials into the feature table.
pub fn finalize(partials: Partials) -> FeatureTable {
    let syscall_nrs: BTreeSet<usize> = partials
        .values()
        .flat_map(|p| {
            p.syscalls
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(nr, _)| nr)
        })
        .collect();
    let mut columns: Vec<FeatureColumn> = fixed_layout()
        .into_iter()
        .map(|(name, def)| FeatureColumn { name, def })
        .collect();
    columns.extend(syscall_nrs.iter().map(|nr| FeatureColumn {
        name: format!("syscall.{nr}"),
        def: &FAMILIES[2],
    }));
    let mut rows: Vec<WorkloadFeatures> = partials
        .into_iter()
        .map(|(workload, p)| {
            let mut values = fixed_values(&p);
            let total: u64 = p.syscalls.iter().sum::<u64>() + p.syscall_other;
            values.extend(
                syscall_nrs
                    .iter()
                    .map(|&nr| ratio(p.syscalls.get(nr).copied().unwrap_or(0), total)),
            );
            let change = change_of(&p);
            WorkloadFeatures {
                workload,
                hosts: p.hosts.iter().cloned().collect(),
                change,
                context: p.context,
                first_ns: p.first_ns,
                last_ns: p.last_ns,
                capped: p.capped + p.behaviour.capped,
                values,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.workload.cmp(&b.workload));
    FeatureTable { columns, rows }
}
