//! The process table: who each process is, which executable it runs, and its ancestry.
//!
//! Built from a `/proc` snapshot at start, then kept current from fork/exec/exit events. Keys
//! come from the kernel (`tgid` + `group_leader->start_boottime`, in clock ticks, exactly what
//! `/proc/<pid>/stat` reports), so rows of different captures and a reused pid never mix.

use std::path::Path;
use std::sync::Arc;

use needle_common::abi::EventKind;
use needle_common::schema::ProcessContext;

use super::hash::DigestSlot;

use crate::hashing::Map;

/// Ancestors kept per process.
pub const MAX_ANCESTRY: usize = 8;

/// What an exec tells the table about the new image.
pub struct ExecFacts {
    /// Path of the executed file.
    pub path: Arc<str>,
    /// Deleted or memfd-backed (from the kernel's inode link count and dentry name).
    pub fileless: bool,
    /// Modification time of the file, seconds (from the kernel's inode).
    pub mtime_sec: Option<i64>,
    /// Where its digest will appear.
    pub digest: Option<Arc<DigestSlot>>,
}

/// One event's view of its process.
pub struct Observation<'a> {
    /// Event kind.
    pub kind: EventKind,
    /// Process id.
    pub tgid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// cgroup id.
    pub cgroup_id: u64,
    /// Command name.
    pub comm: &'a Arc<str>,
    /// Process start (boot ns), from the kernel.
    pub start_ns: u64,
    /// Parent start (boot ns), from the kernel.
    pub parent_start_ns: u64,
    /// For exec events.
    pub exec: Option<ExecFacts>,
    /// True when the task runs in a container (ancestry stops at the container boundary).
    pub in_container: bool,
    /// When the container started (wall ns), to tell new executables from the image's own.
    pub container_started_ns: Option<i64>,
    /// User name of the task's uid, when resolvable.
    pub user: Option<Arc<str>>,
}

/// What the table says about an event's process.
#[derive(Clone)]
pub struct ProcView {
    /// Identity, lineage and flags.
    pub context: Arc<ProcessContext>,
    /// Executable path, when known.
    pub exe_path: Option<Arc<str>>,
    /// Executable digest slot, when requested.
    pub digest: Option<Arc<DigestSlot>>,
}

#[derive(Clone)]
struct Proc {
    start_ns: u64,
    cgroup_id: u64,
    comm: Arc<str>,
    view: ProcView,
}

/// Counters of the table.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableStats {
    /// Events whose process was not in the table (created from the event itself).
    pub misses: u64,
    /// Entries replaced because a pid was reused.
    pub pid_reuse: u64,
    /// Processes read from the /proc snapshot.
    pub snapshot: u64,
}

/// The process table.
pub struct ProcessTable {
    procs: Map<u32, Proc>,
    tick_ns: u64,
    cap: usize,
    /// Changes to `procs` so far: an entry added, replaced, given a new view or removed.
    changes: u64,
    /// Counters.
    pub stats: TableStats,
}

pub use needle_common::paths::is_writable_location;

/// True when a file last modified at `mtime_sec` (seconds) changed after `started_ns` (wall ns):
/// what `exe_new` means.
pub fn modified_after(mtime_sec: i64, started_ns: i64) -> bool {
    i128::from(mtime_sec) * 1_000_000_000 > i128::from(started_ns)
}

impl ProcessTable {
    /// An empty table; `cap` bounds its size.
    pub fn new(cap: usize) -> ProcessTable {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as u64 } else { 100 };
        ProcessTable {
            procs: Map::default(),
            tick_ns: 1_000_000_000 / hz,
            cap,
            changes: 0,
            stats: TableStats::default(),
        }
    }

    /// Number of processes known.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The key of process `tgid` started at `start_ns` (boot clock).
    pub fn key(&self, tgid: u32, start_ns: u64) -> Arc<str> {
        format!("{tgid}@{}", start_ns / self.tick_ns).into()
    }

    fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(self.tick_ns)
    }

    /// Loads every process under `proc_root` (normally `/proc`). Processes that vanish midway
    /// are skipped.
    pub fn snapshot(&mut self, proc_root: &Path) {
        let Ok(dir) = std::fs::read_dir(proc_root) else {
            return;
        };
        // (tgid, ppid, start ticks, comm, exe)
        type Found = (u32, u32, u64, Arc<str>, Option<Arc<str>>);
        let mut found: Vec<Found> = Vec::new();
        for entry in dir.filter_map(Result::ok) {
            let Some(tgid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((comm, ppid, start_ticks)) = parse_stat(&stat) else {
                continue;
            };
            let exe = std::fs::read_link(entry.path().join("exe"))
                .ok()
                .map(|p| Arc::from(p.to_string_lossy().as_ref()));
            found.push((tgid, ppid, start_ticks, comm.into(), exe));
        }
        // Parents before children, so ancestry can be built in one pass.
        found.sort_by_key(|f| f.2);
        for (tgid, ppid, start_ticks, comm, exe) in found {
            let start_ns = self.ticks_to_ns(start_ticks);
            let parent_start_ns = self.procs.get(&ppid).map_or(0, |p| p.start_ns);
            let key = self.key(tgid, start_ns);
            let (parent_key, ancestry) = self.lineage(ppid, parent_start_ns, None);
            let writable = exe.as_deref().map(is_writable_location);
            let fileless = exe.as_deref().map(needle_common::paths::is_fileless);
            let context = Arc::new(ProcessContext {
                key,
                parent_key,
                ancestry,
                user: None,
                exe_new: None,
                exe_writable: writable,
                exe_fileless: fileless,
            });
            let view = ProcView {
                context,
                exe_path: exe,
                digest: None,
            };
            self.changes += 1;
            self.procs.insert(
                tgid,
                Proc {
                    start_ns,
                    cgroup_id: 0,
                    comm,
                    view,
                },
            );
            self.stats.snapshot += 1;
        }
    }

    /// Parent key and ancestry for a child of (`ppid`, `parent_start_ns`); `boundary` is the
    /// child's cgroup when it runs in a container (ancestors outside it are not included).
    fn lineage(
        &self,
        ppid: u32,
        parent_start_ns: u64,
        boundary: Option<u64>,
    ) -> (Option<Arc<str>>, Vec<Arc<str>>) {
        if ppid == 0 {
            return (None, Vec::new());
        }
        match self.procs.get(&ppid) {
            Some(p)
                if parent_start_ns == 0
                    || p.start_ns / self.tick_ns == parent_start_ns / self.tick_ns =>
            {
                let key = Some(p.view.context.key.clone());
                if boundary.is_some_and(|cg| p.cgroup_id != 0 && p.cgroup_id != cg) {
                    return (key, Vec::new());
                }
                let label = p.view.exe_path.clone().unwrap_or_else(|| p.comm.clone());
                let mut ancestry = Vec::with_capacity(MAX_ANCESTRY);
                ancestry.push(label);
                ancestry.extend(
                    p.view
                        .context
                        .ancestry
                        .iter()
                        .take(MAX_ANCESTRY - 1)
                        .cloned(),
                );
                (key, ancestry)
            }
            _ => (
                (parent_start_ns != 0).then(|| self.key(ppid, parent_start_ns)),
                Vec::new(),
            ),
        }
    }

    /// True when [`ProcessTable::observe`] would use `Observation::user` for this event: the
    /// event creates a process context (fork, or a process the table does not know) or the
    /// known context has no user yet. Lets the caller skip the passwd lookup otherwise.
    pub fn needs_user(&self, kind: EventKind, tgid: u32, start_ns: u64) -> bool {
        if kind == EventKind::Fork {
            return true;
        }
        match self.procs.get(&tgid) {
            Some(p) if p.start_ns / self.tick_ns == start_ns / self.tick_ns => {
                p.view.context.user.is_none()
            }
            _ => true,
        }
    }

    /// Counts every change to the table: while it stays the same, so does every process's view.
    pub fn generation(&self) -> u64 {
        self.changes
    }

    /// True when `context` is still the table's context of process `tgid` started at
    /// `start_ns`: an event of that process would get it again.
    pub fn holds(&self, context: Option<&Arc<ProcessContext>>, tgid: u32, start_ns: u64) -> bool {
        match (self.procs.get(&tgid), context) {
            (Some(p), Some(c)) => {
                p.start_ns / self.tick_ns == start_ns / self.tick_ns
                    && Arc::ptr_eq(&p.view.context, c)
            }
            _ => false,
        }
    }

    /// Updates the table with one event and returns the event's process view.
    pub fn observe(&mut self, o: Observation<'_>) -> ProcView {
        let boundary = o.in_container.then_some(o.cgroup_id);
        let known = self
            .procs
            .get(&o.tgid)
            .filter(|p| p.start_ns / self.tick_ns == o.start_ns / self.tick_ns)
            .is_some();
        let view = match o.kind {
            EventKind::Fork => {
                // The row describes the child: it runs its parent's image until it execs.
                let (parent_key, ancestry) = self.lineage(o.ppid, o.parent_start_ns, boundary);
                let parent = self.procs.get(&o.ppid).map(|p| p.view.clone());
                let context = Arc::new(ProcessContext {
                    key: self.key(o.tgid, o.start_ns),
                    parent_key,
                    ancestry,
                    user: o.user.clone(),
                    exe_new: parent.as_ref().and_then(|p| p.context.exe_new),
                    exe_writable: parent.as_ref().and_then(|p| p.context.exe_writable),
                    exe_fileless: parent.as_ref().and_then(|p| p.context.exe_fileless),
                });
                let view = ProcView {
                    context,
                    exe_path: parent.as_ref().and_then(|p| p.exe_path.clone()),
                    digest: parent.and_then(|p| p.digest),
                };
                self.insert(o.tgid, o.start_ns, o.cgroup_id, o.comm, view.clone());
                view
            }
            _ if !known => {
                self.stats.misses += 1;
                if self.procs.contains_key(&o.tgid) {
                    self.stats.pid_reuse += 1;
                }
                let (parent_key, ancestry) = self.lineage(o.ppid, o.parent_start_ns, boundary);
                let exe_path = if o.exec.is_none() {
                    std::fs::read_link(format!("/proc/{}/exe", o.tgid))
                        .ok()
                        .map(|p| Arc::from(p.to_string_lossy().as_ref()))
                } else {
                    None
                };
                let context = Arc::new(ProcessContext {
                    key: self.key(o.tgid, o.start_ns),
                    parent_key,
                    ancestry,
                    user: o.user.clone(),
                    exe_new: None,
                    exe_writable: exe_path.as_deref().map(is_writable_location),
                    exe_fileless: None,
                });
                let view = ProcView {
                    context,
                    exe_path,
                    digest: None,
                };
                self.insert(o.tgid, o.start_ns, o.cgroup_id, o.comm, view.clone());
                view
            }
            _ => {
                let p = self.procs.get_mut(&o.tgid).expect("known above");
                if p.cgroup_id == 0 {
                    p.cgroup_id = o.cgroup_id;
                }
                if p.view.context.user.is_none() && o.user.is_some() {
                    let mut c = (*p.view.context).clone();
                    c.user = o.user.clone();
                    p.view.context = Arc::new(c);
                    self.changes += 1;
                }
                p.view.clone()
            }
        };
        let view = match o.exec {
            Some(exec) => self
                .apply_exec(o.tgid, o.comm, exec, o.container_started_ns)
                .unwrap_or(view),
            None => view,
        };
        if o.kind == EventKind::Exit {
            self.procs.remove(&o.tgid);
            self.changes += 1;
        }
        view
    }

    fn apply_exec(
        &mut self,
        tgid: u32,
        comm: &Arc<str>,
        exec: ExecFacts,
        started_ns: Option<i64>,
    ) -> Option<ProcView> {
        let p = self.procs.get_mut(&tgid)?;
        let mut c = (*p.view.context).clone();
        c.exe_writable = Some(is_writable_location(&exec.path));
        c.exe_fileless = Some(
            exec.fileless
                || exec.path.starts_with("/dev/fd/")
                || exec.path.starts_with("/proc/self/fd/"),
        );
        c.exe_new = match (exec.mtime_sec, started_ns) {
            (Some(m), Some(s)) => Some(modified_after(m, s)),
            _ => None,
        };
        p.comm = comm.clone();
        self.changes += 1;
        p.view = ProcView {
            context: Arc::new(c),
            exe_path: Some(exec.path),
            digest: exec.digest,
        };
        Some(p.view.clone())
    }

    fn insert(
        &mut self,
        tgid: u32,
        start_ns: u64,
        cgroup_id: u64,
        comm: &Arc<str>,
        view: ProcView,
    ) {
        if self.procs.len() >= self.cap && !self.procs.contains_key(&tgid) {
            // Exit events keep the table small; only lost exits let it grow. Drop the dead.
            self.procs
                .retain(|pid, _| Path::new(&format!("/proc/{pid}")).exists());
        }
        self.changes += 1;
        self.procs.insert(
            tgid,
            Proc {
                start_ns,
                cgroup_id,
                comm: comm.clone(),
                view,
            },
        );
    }
}

/// (comm, ppid, starttime ticks) from `/proc/<pid>/stat`. The comm is in parentheses and may
/// itself contain `)` and spaces, so fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] = state (field 3), so field N is rest[N - 3].
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs<'a>(
        kind: EventKind,
        tgid: u32,
        ppid: u32,
        start: u64,
        pstart: u64,
        comm: &'a Arc<str>,
    ) -> Observation<'a> {
        Observation {
            kind,
            tgid,
            ppid,
            cgroup_id: 9,
            comm,
            start_ns: start,
            parent_start_ns: pstart,
            exec: None,
            in_container: true,
            container_started_ns: Some(1_000_000_000_000),
            user: None,
        }
    }

    fn exec(path: &str, mtime: i64) -> Option<ExecFacts> {
        Some(ExecFacts {
            path: path.into(),
            fileless: false,
            mtime_sec: Some(mtime),
            digest: None,
        })
    }

    #[test]
    fn stat_parsing_survives_hostile_comm() {
        let s = "42 (a) b) (c) S 7 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10 18446744073709551615";
        assert_eq!(parse_stat(s), Some(("a) b) (c".to_string(), 7, 12345)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn fork_exec_chain_builds_ancestry_keys_and_flags() {
        let mut t = ProcessTable::new(1000);
        let tick = t.tick_ns;
        let (sh, web, miner): (Arc<str>, Arc<str>, Arc<str>) =
            ("sh".into(), "web".into(), "xmr".into());
        // web server (pid 10) is known from an exec; it forks a shell (20) that execs /bin/sh,
        // which forks 30 that execs a file downloaded to /tmp after the container started.
        let mut o = obs(EventKind::Fork, 10, 1, 100 * tick, 0, &web);
        o.in_container = true;
        t.observe(o);
        let mut o = obs(EventKind::Exec, 10, 1, 100 * tick, 0, &web);
        o.exec = exec("/app/server", 10);
        t.observe(o);
        t.observe(obs(EventKind::Fork, 20, 10, 200 * tick, 100 * tick, &web));
        let mut o = obs(EventKind::Exec, 20, 10, 200 * tick, 100 * tick, &sh);
        o.exec = exec("/bin/sh", 10);
        let v = t.observe(o);
        assert_eq!(&*v.context.key, "20@200");
        assert_eq!(v.context.parent_key.as_deref(), Some("10@100"));
        assert_eq!(v.context.ancestry, vec![Arc::<str>::from("/app/server")]);
        assert_eq!(v.context.exe_new, Some(false));
        t.observe(obs(EventKind::Fork, 30, 20, 300 * tick, 200 * tick, &sh));
        let mut o = obs(EventKind::Exec, 30, 20, 300 * tick, 200 * tick, &miner);
        o.exec = exec("/tmp/.x/xmr", 2_000);
        let v = t.observe(o);
        assert_eq!(
            v.context.ancestry,
            vec![Arc::<str>::from("/bin/sh"), Arc::from("/app/server")]
        );
        assert_eq!(
            (
                v.context.exe_new,
                v.context.exe_writable,
                v.context.exe_fileless
            ),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!(v.exe_path.as_deref(), Some("/tmp/.x/xmr"));
        // A later event of the same process reuses the view; exit removes it.
        let later = t.observe(obs(EventKind::Exit, 30, 20, 300 * tick, 200 * tick, &miner));
        assert_eq!(later.exe_path.as_deref(), Some("/tmp/.x/xmr"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn pid_reuse_is_not_confused_with_the_old_process() {
        let mut t = ProcessTable::new(1000);
        let tick = t.tick_ns;
        let c: Arc<str> = "a".into();
        t.observe(obs(EventKind::Fork, 50, 1, 10 * tick, 0, &c));
        let v = t.observe(obs(EventKind::Exec, 50, 1, 99 * tick, 0, &c));
        assert_eq!(&*v.context.key, "50@99");
        assert_eq!(t.stats.pid_reuse, 1);
    }

    #[test]
    fn ancestry_stops_at_the_container_boundary() {
        let mut t = ProcessTable::new(1000);
        let tick = t.tick_ns;
        let c: Arc<str> = "shim".into();
        let mut o = obs(EventKind::Fork, 5, 1, tick, 0, &c);
        o.cgroup_id = 1; // host cgroup
        o.in_container = false;
        t.observe(o);
        let v = t.observe(obs(EventKind::Fork, 6, 5, 2 * tick, tick, &c));
        assert!(
            v.context.ancestry.is_empty(),
            "the shim outside the container is not an ancestor inside it"
        );
        assert_eq!(v.context.parent_key.as_deref(), Some("5@1"));
    }

    #[test]
    fn snapshot_reads_this_process() {
        let mut t = ProcessTable::new(1 << 20);
        t.snapshot(Path::new("/proc"));
        assert!(t.stats.snapshot > 0);
        assert!(t.procs.contains_key(&std::process::id()));
    }
}
