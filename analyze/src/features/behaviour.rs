//! Features of the behaviour classes the signatures name (issue 27): credential harvesting,
//! log and history tampering, setuid/setgid bits, port scans and sweeps, refused connections,
//! namespace changes, a shell started beside a downloader (`download | sh`), discovery
//! commands. The signatures name these when a definition is met; the features let the models
//! weigh them by degree where no rule fires (two credential files read instead of three, a scan
//! of eight ports instead of sixteen), in the same map/merge/finish shape as every aggregate.
//!
//! The judgements are fixed here, not read from the intel lists: a trained model's inputs must
//! not change with a user's `--intel`. `bench/duckdb_features.py` states them again in SQL
//! (the same patterns), and `tests/tests/analyze_duckdb.rs` checks the two agree.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use super::classify::{basename, hash_str};
use super::fasthash::{FastMap, FastSet};
use super::partial::{SET_CAP, ShellExec, insert_capped};

/// Credential stores (as `models/intel/credential_files.txt` ships them): account files, SSH
/// keys, cloud CLI and container client credentials, git/netrc/database passwords,
/// service-account tokens, other processes' environments.
pub const CREDENTIAL_FILES: &[&str] = &[
    r"^/etc/(shadow|gshadow|passwd|master\.passwd|security/opasswd)-?$",
    r"^/etc/sudoers(\.d/.*)?$",
    r"^/(root|home/[^/]+)/\.ssh(/.*)?$",
    r"^/etc/ssh/ssh_host_[a-z0-9]+_key$",
    r"/id_(rsa|dsa|ecdsa|ed25519)(_sk)?$",
    r"/\.aws/(credentials|config)$",
    r"/\.config/gcloud/(credentials\.db|access_tokens\.db|application_default_credentials\.json|legacy_credentials/.*)$",
    r"/\.azure/(accessTokens\.json|msal_token_cache\.(json|bin)|azureProfile\.json)$",
    r"/\.docker/config\.json$",
    r"/\.kube/config$",
    r"/\.git-credentials$",
    r"/\.netrc$",
    r"/\.pgpass$",
    r"/\.my\.cnf$",
    r"^/(var/)?run/secrets/(kubernetes\.io|eks\.amazonaws\.com)/serviceaccount/token$",
    r"^/(var/)?run/secrets/.*token$",
    r"^/proc/[0-9]+/environ$",
];

/// Live logs and login records (the `log-tampering` rule's paths).
pub const LOG_FILE: &str = r"^/var/log/|^/(var/)?run/utmp$|(^|/)(syslog|messages|auth\.log|secure|kern\.log|cron|user\.log|dpkg\.log|last\.log|yum\.log|access_log|error_log|mysql\.log|mysqld\.log)$";
/// Rotated archives of a log: not live logs.
pub const LOG_ARCHIVE: &str = r"\.([0-9]+|gz|bz2|xz|zst|lz4|z|old|bak)$|[-.][0-9]{8,10}(\.gz)?$";
/// Shell history files (the `history-tampering` rule's paths).
pub const HISTORY_FILE: &str = r"(_history|/\.history|fish_history|fish_read_history)$";
/// Compressors: their unlink of a log follows writing its archive.
pub const COMPRESSORS: &[&str] = &[
    "gzip", "pigz", "bzip2", "pbzip2", "xz", "pixz", "zstd", "lz4", "compress", "lzma",
];
/// Downloaders whose output a pipe can hand to a shell.
pub const DOWNLOADERS: &[&str] = &["wget", "curl", "fetch", "aria2c", "tftp"];
/// Programs that enter or create namespaces.
pub const NAMESPACE_TOOLS: &[&str] = &["nsenter", "unshare"];
/// Discovery commands (as `models/intel/discovery_tools.txt` ships them).
pub const DISCOVERY_TOOLS: &[&str] = &[
    "id",
    "whoami",
    "groups",
    "getent",
    "who",
    "w",
    "users",
    "last",
    "lastlog",
    "hostname",
    "hostnamectl",
    "uname",
    "ifconfig",
    "ip",
    "netstat",
    "ss",
    "arp",
    "route",
    "iptables",
    "lsmod",
    "lsns",
    "capsh",
    "getcap",
    "getenforce",
    "sestatus",
    "aa-status",
    "systemd-detect-virt",
    "virt-what",
    "dmidecode",
];
/// How far apart a downloader and a shell started by one parent may start to count as the two
/// ends of a pipe.
pub const PIPE_WINDOW_NS: i64 = 5_000_000_000;
/// errno of a refused connection (ECONNREFUSED), negated as the `ret` column holds it.
pub const REFUSED: i64 = -111;
/// Open flags: O_WRONLY, O_TRUNC.
const O_WRONLY: u64 = 0o1;
const O_TRUNC: u64 = 0o1000;

static CREDENTIALS: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(CREDENTIAL_FILES).unwrap_or_else(|_| RegexSet::empty()));
static LOGS: LazyLock<Option<[Regex; 3]>> = LazyLock::new(|| {
    Some([
        Regex::new(LOG_FILE).ok()?,
        Regex::new(LOG_ARCHIVE).ok()?,
        Regex::new(HISTORY_FILE).ok()?,
    ])
});

/// What a path is, as bits: see [`classify_path`].
pub type PathClass = u8;
/// A credential store.
pub const CREDENTIAL: PathClass = 1;
/// A live log (not a rotated archive) or a shell history file.
pub const LOG_OR_HISTORY: PathClass = 2;
/// A shell history file.
pub const HISTORY: PathClass = 4;
/// Set on every classified path, so a cache can tell "nothing" from "not computed yet".
pub const CLASSIFIED: PathClass = 128;

/// The classes of `path` (regexes run once per distinct path and batch through the caller's
/// cache: most rows are opens, and their paths repeat).
pub fn classify_path(path: &str) -> PathClass {
    let mut class = CLASSIFIED;
    if CREDENTIALS.is_match(path) {
        class |= CREDENTIAL;
    }
    if let Some([log, archive, history]) = LOGS.as_ref() {
        if history.is_match(path) {
            class |= HISTORY | LOG_OR_HISTORY;
        } else if log.is_match(path) && !archive.is_match(path) {
            class |= LOG_OR_HISTORY;
        }
    }
    class
}

/// Mergeable aggregates behind the behaviour features.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BehaviourPartial {
    /// Hashes of credential files read.
    pub credential_reads: FastSet<u64>,
    /// Live logs and histories deleted, renamed away (histories) or truncated.
    pub log_tampering: u64,
    /// chmod calls setting setuid or setgid.
    pub setid_bits: u64,
    /// (remote address hash, port) pairs connected to.
    pub endpoints: FastSet<(u64, u32)>,
    /// Connections refused.
    pub refused: u64,
    /// setns/unshare calls that succeeded (outside the runtime), and nsenter/unshare execs.
    pub namespace_changes: u64,
    /// Downloader execs: (tgid, parent, time).
    pub downloads: Vec<ShellExec>,
    /// Hashes of the discovery commands run.
    pub discovery_tools: FastSet<u64>,
    /// Values dropped at a cap.
    pub capped: u64,
}

impl BehaviourPartial {
    /// A successful open of a path of class `class` with `flags`, standing for `times` opens;
    /// `path` gives its hash (asked only for credential stores).
    pub fn open(
        &mut self,
        class: PathClass,
        flags: u64,
        times: u64,
        path: impl FnOnce() -> Option<u64>,
    ) {
        if flags & O_WRONLY == 0
            && class & CREDENTIAL != 0
            && let Some(path) = path()
        {
            insert_capped(&mut self.credential_reads, path, &mut self.capped);
        }
        if flags & O_TRUNC != 0 && class & LOG_OR_HISTORY != 0 {
            self.log_tampering += times;
        }
    }

    /// A successful unlink (or, `truncate`, a truncate) of a path of class `class` by `exe`.
    pub fn unlink_or_truncate(&mut self, truncate: bool, class: PathClass, exe: Option<&str>) {
        let compressor = exe.is_some_and(|e| COMPRESSORS.contains(&basename(e)));
        // A compressor's unlink of a log follows writing its archive; a history has no archive.
        let archived = compressor && !truncate && class & HISTORY == 0;
        if class & LOG_OR_HISTORY != 0 && !archived {
            self.log_tampering += 1;
        }
    }

    /// A successful rename of a path of class `class` (its old name).
    pub fn rename(&mut self, class: PathClass) {
        if class & HISTORY != 0 {
            self.log_tampering += 1;
        }
    }

    /// A chmod to `mode`.
    pub fn chmod(&mut self, mode: u32) {
        self.setid_bits += u64::from(mode & 0o6000 != 0);
    }

    /// A connect to `addr` (hash) and `port` with result `ret`, standing for `times` attempts.
    pub fn connect(&mut self, addr: Option<u64>, port: u32, ret: Option<i64>, times: u64) {
        if ret == Some(REFUSED) {
            self.refused += times;
        }
        if let Some(addr) = addr.filter(|_| port != 0) {
            insert_capped(&mut self.endpoints, (addr, port), &mut self.capped);
        }
    }

    /// A successful setns/unshare by a process named `comm` (the runtime's own are left out).
    pub fn namespace_call(&mut self, comm: Option<&str>) {
        if !comm.is_some_and(|c| c.starts_with("runc")) {
            self.namespace_changes += 1;
        }
    }

    /// An exec of `exe` by `tgid` (parent `ppid`) at `time`.
    pub fn exec(&mut self, exe: &str, tgid: u32, ppid: u32, time: i64) {
        let name = basename(exe);
        if NAMESPACE_TOOLS.contains(&name) {
            self.namespace_changes += 1;
        }
        if DOWNLOADERS.contains(&name) {
            if self.downloads.len() < SET_CAP {
                self.downloads.push(ShellExec { tgid, ppid, time });
            } else {
                self.capped += 1;
            }
        }
        if DISCOVERY_TOOLS.contains(&name) {
            insert_capped(&mut self.discovery_tools, hash_str(name), &mut self.capped);
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: BehaviourPartial) {
        self.capped += other.capped;
        for v in other.credential_reads {
            insert_capped(&mut self.credential_reads, v, &mut self.capped);
        }
        self.log_tampering += other.log_tampering;
        self.setid_bits += other.setid_bits;
        for e in other.endpoints {
            insert_capped(&mut self.endpoints, e, &mut self.capped);
        }
        self.refused += other.refused;
        self.namespace_changes += other.namespace_changes;
        for d in other.downloads {
            if self.downloads.len() < SET_CAP {
                self.downloads.push(d);
            } else {
                self.capped += 1;
            }
        }
        for v in other.discovery_tools {
            insert_capped(&mut self.discovery_tools, v, &mut self.capped);
        }
    }

    /// Most distinct ports connected to on one address, most distinct addresses on one port.
    pub fn scan_breadth(&self) -> (u64, u64) {
        let mut ports_of: FastMap<u64, u64> = FastMap::default();
        let mut hosts_of: FastMap<u32, u64> = FastMap::default();
        for &(addr, port) in &self.endpoints {
            *ports_of.entry(addr).or_default() += 1;
            *hosts_of.entry(port).or_default() += 1;
        }
        (
            ports_of.into_values().max().unwrap_or(0),
            hosts_of.into_values().max().unwrap_or(0),
        )
    }

    /// Shell execs started by the same parent as a downloader, within [`PIPE_WINDOW_NS`] of it:
    /// the two ends of `download | sh`.
    pub fn shells_beside_downloads(&self, shells: &[ShellExec]) -> u64 {
        let mut by_parent: FastMap<u32, Vec<&ShellExec>> = FastMap::default();
        for d in &self.downloads {
            by_parent.entry(d.ppid).or_default().push(d);
        }
        shells
            .iter()
            .filter(|s| {
                by_parent.get(&s.ppid).is_some_and(|ds| {
                    ds.iter()
                        .any(|d| d.tgid != s.tgid && (d.time - s.time).abs() <= PIPE_WINDOW_NS)
                })
            })
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judgements() {
        for p in [
            "/etc/shadow",
            "/root/.ssh/id_ed25519",
            "/home/app/.ssh",
            "/run/secrets/kubernetes.io/serviceaccount/token",
            "/proc/42/environ",
            "/srv/.aws/credentials",
        ] {
            assert_eq!(classify_path(p), CLASSIFIED | CREDENTIAL, "{p}");
        }
        for p in [
            "/etc/hosts",
            "/proc/self/environ",
            "/root/.sshrc",
            "/etc/group",
            "/tmp/x.log",
            "/var/log/app.log.3.gz",
        ] {
            assert_eq!(classify_path(p), CLASSIFIED, "{p}");
        }
        assert_eq!(
            classify_path("/var/log/auth.log"),
            CLASSIFIED | LOG_OR_HISTORY
        );
        assert_eq!(
            classify_path("/root/.ash_history"),
            CLASSIFIED | LOG_OR_HISTORY | HISTORY
        );
    }

    #[test]
    fn scans_pipes_and_merging() {
        let mut a = BehaviourPartial::default();
        let mut b = BehaviourPartial::default();
        for port in 1..=10 {
            a.connect(Some(7), port, Some(REFUSED), 1);
        }
        for host in 100..120 {
            b.connect(Some(host), 443, Some(0), 2);
        }
        b.connect(Some(7), 10, None, 1);
        a.merge(b);
        assert_eq!(a.scan_breadth(), (10, 20));
        assert_eq!(a.refused, 10);
        a.exec("/usr/bin/wget", 11, 10, 1_000_000_000);
        let shells = [
            ShellExec {
                tgid: 12,
                ppid: 10,
                time: 2_000_000_000,
            },
            ShellExec {
                tgid: 13,
                ppid: 10,
                time: 9_000_000_000,
            },
            ShellExec {
                tgid: 14,
                ppid: 99,
                time: 1_000_000_000,
            },
        ];
        assert_eq!(a.shells_beside_downloads(&shells), 1);
        let mut c = BehaviourPartial::default();
        let (log, history) = (
            classify_path("/var/log/nginx/access.log"),
            classify_path("/root/.bash_history"),
        );
        c.unlink_or_truncate(false, log, Some("/bin/gzip"));
        c.unlink_or_truncate(false, log, Some("/bin/rm"));
        c.unlink_or_truncate(false, history, Some("/bin/gzip"));
        c.unlink_or_truncate(true, log, Some("/bin/gzip"));
        c.open(log, 0o1001, 3, || Some(1));
        c.open(log, 0o2001, 3, || Some(1));
        assert_eq!(c.log_tampering, 6);
    }
}
