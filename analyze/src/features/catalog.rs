//! The one list of features: name, unit, meaning, and how the peer-group baseline treats it.
//!
//! Families (`events.<kind>`, `rate.<kind>`, `syscall.<nr>`) are documented once here and
//! expand into one column per event kind / per syscall number seen. [`markdown_table`]
//! renders this list for `analyze features --list` and `analyze/README.md` (a unit test keeps
//! the README in step).

use needle_common::abi::EVENT_KINDS;

/// How an anomaly score reads a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Only values above the peer norm are suspicious.
    High,
    /// Values far from the norm either way are suspicious.
    Both,
    /// Context only; not scored.
    Unscored,
}

/// Transform applied before comparing a workload with its peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// `ln(1 + x)`: counts, rates and byte totals are heavy-tailed.
    Log,
    /// As is: ratios, means, depths.
    Linear,
}

/// One feature, or a family of features (`{kind}` / `{nr}` in the name).
#[derive(Clone, Copy, Debug)]
pub struct FeatureDef {
    /// Column name (a family has a `{kind}` or `{nr}` placeholder).
    pub name: &'static str,
    /// Unit of the value.
    pub unit: &'static str,
    /// What it measures.
    pub doc: &'static str,
    /// How the anomaly baseline reads it.
    pub direction: Direction,
    /// Transform before scoring.
    pub scale: Scale,
    /// An unusual value is suspicious in itself (a binary run from /tmp), not only unusual
    /// (a busy server forks more). Only indicators can raise the anomaly finding.
    pub indicator: bool,
}

const fn def(
    name: &'static str,
    unit: &'static str,
    direction: Direction,
    scale: Scale,
    doc: &'static str,
) -> FeatureDef {
    FeatureDef {
        name,
        unit,
        doc,
        direction,
        scale,
        indicator: false,
    }
}

/// An indicator feature (see [`FeatureDef::indicator`]).
const fn ind(
    name: &'static str,
    unit: &'static str,
    direction: Direction,
    scale: Scale,
    doc: &'static str,
) -> FeatureDef {
    FeatureDef {
        indicator: true,
        ..def(name, unit, direction, scale, doc)
    }
}

use Direction::{Both, High, Unscored};
use Scale::{Linear, Log};

/// Index of each fixed feature in a feature vector (after the per-kind families).
#[allow(missing_docs)]
pub mod id {
    pub const EVENTS_TOTAL: usize = 0;
    pub const LIFETIME: usize = 1;
    pub const EXE_DISTINCT: usize = 2;
    pub const EXE_WRITABLE: usize = 3;
    pub const EXE_FILELESS: usize = 4;
    pub const SHELL_FROM_NON_SHELL: usize = 5;
    pub const PROC_DISTINCT: usize = 6;
    pub const TREE_DEPTH: usize = 7;
    pub const FANOUT: usize = 8;
    pub const FILE_WRITES: usize = 9;
    pub const WRITTEN_THEN_EXECUTED: usize = 10;
    pub const REMOTE_IPS: usize = 11;
    pub const REMOTE_PORTS: usize = 12;
    pub const UNUSUAL_PORTS: usize = 13;
    pub const OUTBOUND: usize = 14;
    pub const INBOUND: usize = 15;
    pub const OUTBOUND_RATIO: usize = 16;
    pub const BYTES_OUT: usize = 17;
    pub const DNS_QUERIES: usize = 18;
    pub const DNS_DISTINCT: usize = 19;
    pub const DNS_ENTROPY_MEAN: usize = 20;
    pub const DNS_ENTROPY_MAX: usize = 21;
    pub const DNS_LEN_MEAN: usize = 22;
    pub const DNS_LEN_MAX: usize = 23;
    pub const DNS_NXDOMAIN_RATIO: usize = 24;
    pub const SYSCALL_TOTAL: usize = 25;
    pub const SYSCALL_DISTINCT: usize = 26;
    pub const SECURITY_CALLS: usize = 27;
    // The behaviour classes of the signatures (issue 27), see `features::behaviour`.
    pub const CREDENTIAL_READS: usize = 28;
    pub const LOG_TAMPERING: usize = 29;
    pub const SETID_BITS: usize = 30;
    pub const PORTS_PER_HOST: usize = 31;
    pub const HOSTS_PER_PORT: usize = 32;
    pub const REFUSED: usize = 33;
    pub const NAMESPACE_CHANGES: usize = 34;
    pub const SHELL_BESIDE_DOWNLOAD: usize = 35;
    pub const DISCOVERY_TOOLS: usize = 36;
    pub const LATE_EXES: usize = 37;
    pub const LATE_DESTINATIONS: usize = 38;
    pub const LATE_DOMAINS: usize = 39;
    pub const LATE_RECURRING_DESTINATIONS: usize = 40;
    pub const LATE_RECURRING_DOMAINS: usize = 41;
    pub const COUNT: usize = 42;
}

/// The fixed features, in vector order (indices in [`id`]).
pub const FIXED: [FeatureDef; id::COUNT] = [
    def(
        "events.total",
        "events",
        Unscored,
        Log,
        "events of the workload in the scanned time window (a row closing a collapse window counts the opens it stands for)",
    ),
    def(
        "lifetime_s",
        "seconds",
        Unscored,
        Linear,
        "time between the workload's first and last event",
    ),
    def(
        "exe.distinct",
        "executables",
        High,
        Log,
        "distinct executable paths run (exec events)",
    ),
    ind(
        "exe.writable_path",
        "execs",
        High,
        Log,
        "execs of a binary under /tmp, /dev/shm, /var/tmp, a hidden dot directory, a memfd or a deleted file",
    ),
    ind(
        "exe.fileless",
        "execs",
        High,
        Log,
        "execs of a memfd (`memfd:`) or of a deleted file (`(deleted)`)",
    ),
    ind(
        "proc.shell_from_non_shell",
        "execs",
        High,
        Log,
        "shells (sh, bash, dash, zsh, …) started by a parent that is not a shell",
    ),
    def(
        "proc.distinct",
        "processes",
        High,
        Log,
        "distinct processes (tgids) seen forking or executing",
    ),
    def(
        "proc.tree_depth",
        "levels",
        High,
        Linear,
        "deepest parent→child chain among the workload's processes",
    ),
    def(
        "proc.fanout_max",
        "children",
        High,
        Log,
        "most children started by one process",
    ),
    def(
        "file.writes",
        "opens",
        High,
        Log,
        "opens with write intent (O_WRONLY, O_RDWR, O_CREAT or O_TRUNC)",
    ),
    ind(
        "file.written_then_executed",
        "files",
        High,
        Log,
        "distinct files written, created, renamed into place or made executable, then executed",
    ),
    def(
        "net.remote_ips",
        "addresses",
        High,
        Log,
        "distinct remote addresses connected to, sent to or accepted from",
    ),
    def(
        "net.remote_ports",
        "ports",
        High,
        Log,
        "distinct remote ports of outbound connections and sends",
    ),
    ind(
        "net.unusual_ports",
        "connections",
        High,
        Log,
        "outbound connections/sends to a port outside the common service list (see `COMMON_PORTS`)",
    ),
    def(
        "net.outbound",
        "connections",
        High,
        Log,
        "connect and sendto events",
    ),
    def(
        "net.inbound",
        "connections",
        Both,
        Log,
        "accepted connections",
    ),
    def(
        "net.outbound_ratio",
        "fraction",
        High,
        Linear,
        "outbound / (outbound + inbound); 0 when there is no traffic (scored one-sided: less outbound than peers is not suspicious)",
    ),
    def(
        "net.bytes_out",
        "bytes",
        High,
        Log,
        "payload bytes sent with sendto, where known",
    ),
    def(
        "dns.queries",
        "queries",
        High,
        Log,
        "DNS queries seen on the wire",
    ),
    def(
        "dns.distinct_names",
        "names",
        High,
        Log,
        "distinct DNS query names",
    ),
    ind(
        "dns.name_entropy_mean",
        "bits/char",
        High,
        Linear,
        "mean Shannon entropy of the first label of queried names",
    ),
    ind(
        "dns.name_entropy_max",
        "bits/char",
        High,
        Linear,
        "highest Shannon entropy of a first label",
    ),
    def(
        "dns.name_len_mean",
        "characters",
        High,
        Linear,
        "mean length of queried names",
    ),
    def(
        "dns.name_len_max",
        "characters",
        High,
        Linear,
        "longest queried name",
    ),
    ind(
        "dns.nxdomain_ratio",
        "fraction",
        High,
        Linear,
        "DNS responses with NXDOMAIN / DNS responses",
    ),
    def(
        "syscall.total",
        "syscalls",
        Unscored,
        Log,
        "syscalls counted, from the full stream (`syscall` rows) and profiles (`syscall_profile` maps)",
    ),
    def(
        "syscall.distinct",
        "syscall numbers",
        Both,
        Linear,
        "distinct syscall numbers used",
    ),
    ind(
        "security.calls",
        "calls",
        High,
        Log,
        "security-relevant calls: ptrace, process_vm_writev, /proc/<pid>/mem writes, module loads, set*id, capset, userfaultfd, mount, unshare, setns, bpf, keyctl, memfd_create (events, plus the same syscalls in syscall streams and profiles)",
    ),
    // The behaviour classes the signatures name (issue 27), by degree (`features::behaviour`).
    ind(
        "file.credential_reads",
        "files",
        High,
        Log,
        "distinct credential stores opened for reading: account files, SSH keys and directories, cloud and container client credentials, git/netrc/database passwords, service-account tokens, other processes' /proc/<pid>/environ (not a process's own)",
    ),
    ind(
        "file.log_tampering",
        "events",
        High,
        Log,
        "live logs (/var/log, login records, system log names; not rotated archives) unlinked — except by a compressor replacing them with their archive —, truncated (truncate/ftruncate) or opened with O_TRUNC; shell history files unlinked, renamed or truncated",
    ),
    ind(
        "file.setid_bits",
        "calls",
        High,
        Log,
        "chmod calls giving a file the setuid or setgid bit",
    ),
    ind(
        "net.ports_per_host_max",
        "ports",
        High,
        Log,
        "most distinct ports connected to on one remote address (a port scan)",
    ),
    def(
        "net.hosts_per_port_max",
        "addresses",
        High,
        Log,
        "most distinct remote addresses connected to on one port (a sweep, or a client of many replicas)",
    ),
    def(
        "net.refused",
        "connections",
        High,
        Log,
        "connection attempts refused (ECONNREFUSED): closed ports probed, or a service down",
    ),
    ind(
        "proc.namespace_changes",
        "calls",
        High,
        Log,
        "setns and unshare calls that succeeded outside the container runtime, and nsenter/unshare execs",
    ),
    ind(
        "proc.shell_beside_download",
        "execs",
        High,
        Log,
        "shells started by the same parent as a downloader (wget, curl…) within 5 s of it: the two ends of `download | sh`",
    ),
    def(
        "proc.discovery_tools",
        "commands",
        High,
        Linear,
        "distinct discovery commands run (id, whoami, uname, hostname, ifconfig, ip, netstat, lsmod, getenforce…)",
    ),
    ind(
        "late.new_executables",
        "executables",
        High,
        Log,
        "distinct executables first run after the workload's start-up (its first `STARTUP_S` seconds in the input): programs its start-up never ran (by path, each run of digits as one placeholder: `/builds/17/app` and `/builds/18/app` are one program)",
    ),
    def(
        "late.new_destinations",
        "destinations",
        High,
        Log,
        "distinct remote address:port pairs first connected or sent to after start-up",
    ),
    def(
        "late.new_domains",
        "names",
        High,
        Log,
        "distinct DNS names first queried after start-up",
    ),
    ind(
        "late.recurring_destinations",
        "destinations",
        High,
        Log,
        "remote address:port pairs first contacted after start-up and contacted again in at least `RECUR_MINUTES` distinct clock minutes: a new destination the workload keeps returning to (a beacon, a new command channel), not a one-off look",
    ),
    ind(
        "late.recurring_domains",
        "names",
        High,
        Log,
        "DNS names first queried after start-up and queried in at least `RECUR_MINUTES` distinct clock minutes",
    ),
];

/// The transform a feature is compared in.
pub fn transform(x: f64, scale: Scale) -> f64 {
    let x = if x.is_finite() { x } else { 0.0 };
    match scale {
        Scale::Log => x.max(0.0).ln_1p(),
        Scale::Linear => x,
    }
}

/// Smallest tail scale of a feature, in transformed units: its resolution. On log-scaled
/// counts one event against none (ln 2 ≈ 0.69) is worth e^(−0.69/0.25) ≈ 1/16 of the first
/// step beyond the reference — for an indicator (a binary from /tmp, a shell from a server),
/// rare by nature, e^(−0.69/0.1) ≈ 1/1000. Linear features by their unit: a fraction moves in
/// twentieths, an entropy in half bits, a name length in a few characters, a count (commands,
/// levels, syscall numbers) in ones: the events of one workload are not independent draws (one
/// script runs fifty commands), so one more of them is never worth more than a factor of e.
/// Counts of indicator events are log-scaled (the first one is what matters; more of them add
/// by orders of magnitude).
pub fn resolution(def: &FeatureDef, median: f64) -> f64 {
    match (def.scale, def.unit) {
        (Scale::Log, _) if def.indicator => 0.1,
        (Scale::Log, _) => 0.25,
        (Scale::Linear, "fraction") => 0.05,
        (Scale::Linear, "bits/char") => 0.5,
        (Scale::Linear, "characters") => 4.0,
        (Scale::Linear, unit) if is_count(unit) => 1.0,
        (Scale::Linear, _) => (0.1 * median.abs()).max(0.05),
    }
}

/// Units that count things (events, files, processes…): their values move in whole steps.
fn is_count(unit: &str) -> bool {
    matches!(
        unit,
        "files" | "calls" | "execs" | "commands" | "levels" | "syscall numbers"
    )
}

/// Seconds after a workload's first event in the input that count as its start-up: installers
/// and init steps run then; what is first seen later is a change of behaviour (`late.*`).
pub const STARTUP_S: i64 = 60;

/// Distinct clock minutes (UTC, epoch-aligned) in which a destination or name first seen after
/// start-up must be contacted to count as recurring (`late.recurring_*`): it spans more than a
/// minute of the workload's life, as a beacon or a new command channel does and a one-off look
/// (an operator's debugging session, a single download) mostly does not.
pub const RECUR_MINUTES: usize = 3;

/// Families that expand per event kind or per syscall number.
pub const FAMILIES: [FeatureDef; 3] = [
    def(
        "events.{kind}",
        "events",
        Unscored,
        Log,
        "events of one kind (`{kind}` is an event kind name: exec, connect, dns_query, …; opens collapsed by capture count one each); scored through its rate",
    ),
    def(
        "rate.{kind}",
        "events/s",
        High,
        Log,
        "events of one kind per second of the workload's lifetime (lifetime floored at 1 s)",
    ),
    def(
        "syscall.{nr}",
        "fraction",
        Both,
        Linear,
        "share of syscall number `{nr}` (x86_64) in the workload's syscall histogram; one column per number seen in the input",
    ),
];

/// Remote ports that are ordinary for outbound traffic; others count in `net.unusual_ports`.
pub const COMMON_PORTS: &[u16] = &[
    20, 21, 22, 25, 53, 80, 110, 123, 143, 389, 443, 465, 587, 636, 853, 993, 995, 1433, 2379,
    3306, 5432, 5671, 5672, 6379, 6443, 8080, 8443, 9092, 9200, 9300, 10250, 11211, 27017,
];

/// Number of per-kind columns of each family (one per event kind).
pub const KINDS: usize = EVENT_KINDS.len();

/// Offset of the fixed features in a vector: after `events.<kind>` and `rate.<kind>`.
pub const FIXED_OFFSET: usize = 2 * KINDS;

/// Name, definition of the column at `index` of a vector with the fixed layout
/// (`events.<kind>` ×34, `rate.<kind>` ×34, fixed features). Syscall columns come after.
pub fn fixed_layout() -> Vec<(String, &'static FeatureDef)> {
    let mut out = Vec::with_capacity(FIXED_OFFSET + FIXED.len());
    for k in EVENT_KINDS {
        out.push((format!("events.{}", k.name()), &FAMILIES[0]));
    }
    for k in EVENT_KINDS {
        out.push((format!("rate.{}", k.name()), &FAMILIES[1]));
    }
    for f in &FIXED {
        out.push((f.name.to_string(), f));
    }
    out
}

/// The feature documentation as a Markdown table (for `--list` and the README).
pub fn markdown_table() -> String {
    let mut s =
        String::from("| feature | unit | meaning | scored | indicator |\n|---|---|---|---|---|\n");
    for f in FAMILIES
        .iter()
        .take(2)
        .chain(FIXED.iter())
        .chain(FAMILIES.iter().skip(2))
    {
        let scored = match f.direction {
            High => "high",
            Both => "both ways",
            Unscored => "no",
        };
        let indicator = if f.indicator { "yes" } else { "" };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            f.name, f.unit, f.doc, scored, indicator
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let layout = fixed_layout();
        let mut seen = std::collections::HashSet::new();
        for (name, def) in &layout {
            assert!(seen.insert(name.clone()), "duplicate feature {name}");
            assert!(!def.doc.is_empty() && !def.unit.is_empty());
        }
        assert_eq!(layout.len(), FIXED_OFFSET + id::COUNT);
        assert_eq!(
            layout[FIXED_OFFSET + id::SECURITY_CALLS].0,
            "security.calls"
        );
        assert_eq!(
            layout[FIXED_OFFSET + id::DNS_NXDOMAIN_RATIO].0,
            "dns.nxdomain_ratio"
        );
    }

    #[test]
    fn readme_documents_every_feature() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "analyze/README.md's feature table is stale: paste the output of `analyze features --list`"
        );
    }
}
