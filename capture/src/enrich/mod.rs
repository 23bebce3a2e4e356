//! Enrichment: container, Kubernetes and process context added to every event in user space,
//! after decode and before write. It never blocks the event path: lookups are cached, slow work
//! (hashing executables) runs on a bounded worker pool whose results are read when a batch is
//! written, and every event that could not be enriched is counted.

pub mod batch;
pub mod container;
pub mod hash;
pub mod process;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use needle_common::abi::SyscallEvent;
use needle_common::schema::{Detail, Event, Process};

use crate::decode::{DecodeError, Decoded};
use crate::hashing::Map;
use batch::{Batch, Thread};
use container::{ContainerInfo, ContainerResolver, Resolution};
use hash::{DigestSlot, Hasher};
use process::{ExecFacts, Observation, ProcessTable};
use users::UserDb;

/// Rows searched, newest first, for the row a call result belongs to.
const RESULT_SEARCH: usize = 4096;

/// Completes the row a hook wrote before its call ran (an inet connect) with the call's result:
/// `ret`, and the local address the kernel chose. Records of one thread arrive in order, so the
/// newest connect row of that thread still waiting for a result is the one. Returns false when
/// no such row is pending (it was already written: its `ret` stays empty).
pub fn attach_result(result: Decoded, out: &mut [Pending]) -> bool {
    let Detail::Connect(r) = &result.event.detail else {
        return false;
    };
    let tid = result.event.process.pid;
    let n = out.len();
    for row in out[n.saturating_sub(RESULT_SEARCH)..].iter_mut().rev() {
        if row.event.process.pid != tid {
            continue;
        }
        if let Detail::Connect(net) = &mut row.event.detail
            && net.ret.is_none()
            && net.family == r.family
        {
            net.ret = r.ret;
            if r.src_port.is_some_and(|p| p != 0) {
                net.src_addr = r.src_addr.clone();
                net.src_port = r.src_port;
            }
            return true;
        }
    }
    false
}

/// An event waiting to be written. Two things may still improve before it is: the digest of
/// its executable (hashed off the event path) and its container's metadata (runtimes write
/// their state files only after the container's first processes ran).
pub struct Pending {
    /// The event.
    pub event: Event,
    /// Filled in by the hashing pool, read just before the row is written.
    pub digest: Option<Arc<DigestSlot>>,
    /// The container cgroup whose latest metadata the row takes when written.
    pub container_cgroup: Option<u64>,
    /// mtime of the executable an exec row ran, to decide `exe_new` once the container's start
    /// time is known.
    pub exe_mtime_sec: Option<i64>,
}

impl Pending {
    /// A row with nothing left to fill in.
    pub fn done(event: Event) -> Pending {
        Pending {
            event,
            digest: None,
            container_cgroup: None,
            exe_mtime_sec: None,
        }
    }
}

/// Counters of the enricher.
#[derive(Clone, Copy, Debug, Default)]
pub struct EnrichStats {
    /// Events enriched.
    pub events: u64,
    /// Events whose cgroup could not be resolved to a container or host unit.
    pub cgroup_misses: u64,
    /// Events whose process was not known (created from the event itself).
    pub process_misses: u64,
    /// Containers seen starting / stopping.
    pub containers_started: u64,
    /// Containers seen going away.
    pub containers_stopped: u64,
}

/// How often known containers are checked for removal.
const STOP_CHECK: Duration = Duration::from_secs(2);

/// Adds context to decoded events.
pub struct Enricher {
    containers: ContainerResolver,
    table: ProcessTable,
    hasher: Hasher,
    users: UserDb,
    /// Latest metadata of every container seen, by cgroup id (kept until its rows are written).
    live: Map<u64, Arc<ContainerInfo>>,
    /// Containers whose cgroup is gone, removed from `live` after the next flush.
    stopped: Vec<u64>,
    cgroup2_root: Option<PathBuf>,
    last_stop_check: Instant,
    /// Counters.
    pub stats: EnrichStats,
}

impl Enricher {
    /// An enricher using the standard runtime locations; reads the `/proc` snapshot.
    pub fn new() -> Enricher {
        let cgroup2_root = ContainerResolver::detect_cgroup2_root();
        let containers = ContainerResolver::new(
            cgroup2_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup")),
            Default::default(),
        );
        let mut table = ProcessTable::new(1 << 20);
        table.snapshot(Path::new("/proc"));
        Enricher {
            containers,
            table,
            hasher: Hasher::new(2, 4096),
            users: UserDb::default(),
            live: Map::default(),
            stopped: Vec::new(),
            cgroup2_root,
            last_stop_check: Instant::now(),
            stats: EnrichStats::default(),
        }
    }

    /// Enriches one decoded record; pushes it (preceded by a `container_start` row when it is
    /// the first event of a container) onto `out`.
    pub fn enrich(&mut self, d: Decoded, out: &mut Vec<Pending>) {
        let Decoded {
            mut event,
            start_ns,
            parent_start_ns,
            exe,
            role: _,
        } = d;
        self.stats.events += 1;
        let cgroup_id = event.process.cgroup_id;
        let (container, workload) = match self.containers.resolve(cgroup_id) {
            Resolution::Container(info) => {
                let workload: Arc<str> = info.container.id.clone();
                if self.live.insert(cgroup_id, info.clone()).is_none() {
                    self.stats.containers_started += 1;
                    let mut start = event.clone();
                    start.detail = Detail::ContainerStart;
                    start.workload = Some(workload.clone());
                    out.push(Pending {
                        event: start,
                        digest: None,
                        container_cgroup: Some(cgroup_id),
                        exe_mtime_sec: None,
                    });
                }
                (Some(info), Some(workload))
            }
            Resolution::Host(key) => (None, Some(key)),
            // A cgroup created a moment ago may not be found until the next rescan: tried
            // again when the row is written (`finish`), counted as a miss only if still unknown.
            Resolution::Unknown => (None, None),
        };
        let root: &Path = container
            .as_ref()
            .and_then(|c| c.facts.rootfs.as_deref())
            .unwrap_or(Path::new("/"));
        // The passwd lookup only when the table will use it (new process, or none known yet).
        let user = self
            .table
            .needs_user(event.detail.kind(), event.process.tgid, start_ns)
            .then(|| self.users.name(root, event.process.uid))
            .flatten();
        // `exe_new` is about containers (created or modified after the container started): a
        // host task's row never uses it, unless its cgroup is not known yet.
        let may_be_container = container.is_some() || workload.is_none();
        // The executed path's own mtime decides `exe_new`: for a script the kernel's exe_file is
        // the interpreter, not the (possibly just downloaded) script. Looked up through the
        // process's root, then the container's rootfs; the kernel's inode is the fallback.
        let exe_mtime_sec = match (&event.detail, event.exe_path.as_deref()) {
            (Detail::Exec { .. }, Some(path)) if may_be_container => {
                let rel = path.trim_start_matches('/');
                [
                    PathBuf::from(format!("/proc/{}/root/{rel}", event.process.tgid)),
                    root.join(rel),
                ]
                .iter()
                .find_map(|p| std::fs::metadata(p).ok())
                .map(|m| std::os::unix::fs::MetadataExt::mtime(&m))
                .or_else(|| {
                    exe.as_ref()
                        .filter(|k| k.has_mtime)
                        .map(|k| k.key.mtime_sec)
                })
            }
            _ => None,
        };
        let exec = match (&event.detail, &exe) {
            (Detail::Exec { .. }, _) => {
                let path: Arc<str> = event.exe_path.clone().unwrap_or_else(|| "".into());
                let digest = exe.as_ref().map(|k| {
                    let mut candidates =
                        vec![PathBuf::from(format!("/proc/{}/exe", event.process.tgid))];
                    let rel = path.trim_start_matches('/');
                    candidates.push(PathBuf::from(format!(
                        "/proc/{}/root/{rel}",
                        event.process.tgid
                    )));
                    candidates.push(root.join(rel));
                    self.hasher.request(k.key, candidates)
                });
                Some(ExecFacts {
                    path,
                    fileless: exe.as_ref().is_some_and(|k| k.fileless()),
                    mtime_sec: exe_mtime_sec,
                    digest,
                })
            }
            _ => None,
        };
        let misses_before = self.table.stats.misses;
        let view = self.table.observe(Observation {
            kind: event.detail.kind(),
            tgid: event.process.tgid,
            ppid: event.process.ppid,
            cgroup_id,
            comm: &event.process.comm,
            start_ns,
            parent_start_ns,
            exec,
            in_container: container.is_some(),
            container_started_ns: container.as_ref().and_then(|c| c.facts.created_ns),
            user,
        });
        if self.table.stats.misses > misses_before {
            self.stats.process_misses += 1;
        }
        event.container = container.map(|c| c.container.clone());
        event.workload = workload;
        if event.exe_path.is_none() {
            event.exe_path = view.exe_path.clone();
        }
        event.context = Some(view.context);
        let container_cgroup = may_be_container.then_some(cgroup_id);
        out.push(Pending {
            event,
            digest: view.digest,
            container_cgroup,
            exe_mtime_sec,
        });
    }

    /// A `syscall` record, `rec`, becomes a call row of `batch`. It shares the context of its
    /// thread's first syscall row in the batch when nothing about the thread changed since
    /// (same identity in the record's header, same process context in the table), which is
    /// every row but the first in a loop of calls. Otherwise the record is decoded
    /// (`decode`) and enriched in full, and becomes the context of the rows that follow.
    pub fn syscall(
        &mut self,
        rec: &SyscallEvent,
        time_ns: i64,
        batch: &mut Batch,
        decode: impl FnOnce() -> Result<Decoded, DecodeError>,
    ) -> Result<(), DecodeError> {
        let h = &rec.header;
        let thread = Thread::of(h);
        let generation = self.table.generation();
        if let Some((i, shared)) = batch.context_of(h.pid, &thread)
            && (shared.generation == generation
                || self
                    .table
                    .holds(shared.row.event.context.as_ref(), h.tgid, h.start_ns))
        {
            shared.generation = generation;
            shared.uses += 1;
            self.stats.events += 1;
            batch.push_call(time_ns, h.ktime_ns, rec.syscall, rec.ret, i);
            return Ok(());
        }
        let d = decode()?;
        self.enrich(d, &mut batch.rows);
        // `enrich` pushes the row itself last (after a container's first row, if any).
        if let Some(row) = batch.rows.pop() {
            let generation = self.table.generation();
            batch.push_context(h.pid, thread, row, generation, (rec.syscall, rec.ret));
        }
        Ok(())
    }

    /// Settles the row as it is written, in place: its executable's digest if ready, and its
    /// container's latest metadata. `rows` is how many rows it stands for (a context of call
    /// rows stands for all of them).
    pub fn finish(&mut self, p: &mut Pending, rows: u64) {
        let event = &mut p.event;
        if event.exe_sha256.is_none() {
            event.exe_sha256 = p.digest.take().and_then(|d| d.get().cloned().flatten());
        }
        if event.workload.is_none()
            && let Some(cg) = p.container_cgroup
        {
            let resolution = match self.live.get(&cg) {
                Some(info) => Resolution::Container(info.clone()),
                None => self.containers.resolve(cg),
            };
            match resolution {
                Resolution::Container(info) => {
                    event.workload = Some(info.container.id.clone());
                    event.container = Some(info.container.clone());
                }
                Resolution::Host(key) => event.workload = Some(key),
                Resolution::Unknown => self.stats.cgroup_misses += rows,
            }
        }
        if let Some(info) = p.container_cgroup.and_then(|cg| self.live.get(&cg)) {
            event.container = Some(info.container.clone());
            // An exec that ran before the runtime wrote its state: decide `exe_new` now.
            if let (Some(m), Some(started), Some(ctx)) =
                (p.exe_mtime_sec, info.facts.created_ns, &event.context)
                && ctx.exe_new.is_none()
            {
                let mut c = (**ctx).clone();
                c.exe_new = Some(process::modified_after(m, started));
                event.context = Some(Arc::new(c));
            }
        }
    }

    /// Called after a flush: containers that stopped no longer need their metadata kept.
    pub fn flushed(&mut self) {
        for id in self.stopped.drain(..) {
            self.live.remove(&id);
        }
    }

    /// Periodic work: emits `container_stop` rows for containers whose cgroup is gone.
    /// `now_event` builds the row's time fields.
    pub fn tick(&mut self, out: &mut Vec<Pending>, stamp: impl Fn() -> (i64, u64)) {
        if self.last_stop_check.elapsed() < STOP_CHECK {
            return;
        }
        self.last_stop_check = Instant::now();
        let Some(root) = self.cgroup2_root.clone() else {
            return;
        };
        let gone: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, info)| !root.join(info.cgroup_path.trim_start_matches('/')).exists())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            let Some(info) = self.live.get(&id).cloned() else {
                continue;
            };
            if self.stopped.contains(&id) {
                continue;
            }
            self.stopped.push(id);
            self.containers.forget(id);
            if let Some(r) = &info.facts.rootfs {
                self.users.forget(r);
            }
            self.stats.containers_stopped += 1;
            let (time_ns, ktime_ns) = stamp();
            out.push(Pending {
                event: Event {
                    container: Some(info.container.clone()),
                    workload: Some(info.container.id.clone()),
                    ..Event::new(
                        time_ns,
                        ktime_ns,
                        Process {
                            cgroup_id: id,
                            comm: "".into(),
                            ..Default::default()
                        },
                        Detail::ContainerStop,
                    )
                },
                digest: None,
                container_cgroup: Some(id),
                exe_mtime_sec: None,
            });
        }
    }

    /// Waits (bounded) for outstanding hashes, before the last batch is written.
    pub fn drain_hashes(&self, limit: Duration) {
        self.hasher.drain(limit);
    }

    /// Hashing counters.
    pub fn hash_stats(&self) -> &hash::HashStats {
        &self.hasher.stats
    }
}

impl Default for Enricher {
    fn default() -> Self {
        Enricher::new()
    }
}

#[cfg(test)]
mod tests {
    use needle_common::abi::{EventKind, SHAPE_PRIMARY};

    use super::*;
    use crate::decode::{Decoder, Role};
    use crate::kernel::clock::BootClock;

    /// A process no machine runs (above pid_max).
    const TGID: u32 = 4_000_001;

    fn record(tid: u32, uid: u32, ktime_ns: u64) -> SyscallEvent {
        let mut rec: SyscallEvent = bytemuck::Zeroable::zeroed();
        let h = &mut rec.header;
        h.kind = EventKind::Syscall as u32;
        h.shape = SHAPE_PRIMARY;
        h.ktime_ns = ktime_ns;
        (h.pid, h.tgid, h.ppid, h.uid) = (tid, TGID, 1, uid);
        h.start_ns = 5_000_000_000;
        h.comm[..4].copy_from_slice(b"loop");
        rec.syscall = 39;
        rec.ret = ktime_ns as i64;
        rec
    }

    fn syscall(e: &mut Enricher, d: &mut Decoder, rec: &SyscallEvent, batch: &mut Batch) {
        e.syscall(rec, rec.header.ktime_ns as i64, batch, || {
            d.decode(bytemuck::bytes_of(rec))
        })
        .expect("a syscall record");
    }

    #[test]
    fn call_rows_share_a_context_until_the_thread_or_its_process_changes() {
        let mut e = Enricher::new();
        let mut d = Decoder::new(BootClock::measure());
        let mut batch = Batch::default();
        for t in 0..3 {
            syscall(&mut e, &mut d, &record(TGID, 0, 10 + t), &mut batch);
        }
        assert_eq!((batch.calls.len(), batch.contexts.len()), (3, 1));
        assert_eq!(batch.contexts[0].uses, 3);
        // Another thread of the process: its own context.
        syscall(&mut e, &mut d, &record(TGID + 1, 0, 20), &mut batch);
        assert_eq!(batch.contexts.len(), 2);
        // The thread's identity changes (setuid): a new context.
        syscall(&mut e, &mut d, &record(TGID, 1000, 30), &mut batch);
        assert_eq!(batch.contexts.len(), 3);
        // The process table's context of the process changes (here: the pid is seen forking
        // anew, as after pid reuse or a lost exit): the next row takes the new context.
        let mut fork = d
            .decode(bytemuck::bytes_of(&record(TGID, 1000, 40)))
            .expect("decoded");
        fork.event.detail = Detail::Fork;
        fork.role = Role::Row;
        e.enrich(fork, &mut batch.rows);
        syscall(&mut e, &mut d, &record(TGID, 1000, 50), &mut batch);
        assert_eq!(batch.contexts.len(), 4);
        let (old, new) = (&batch.contexts[2].row.event, &batch.contexts[3].row.event);
        assert!(!Arc::ptr_eq(
            old.context.as_ref().expect("context"),
            new.context.as_ref().expect("context")
        ));
        syscall(&mut e, &mut d, &record(TGID, 1000, 60), &mut batch);
        assert_eq!((batch.calls.len(), batch.contexts.len()), (7, 4));
        assert_eq!(e.stats.events, 8, "every row counted, the fork's too");
        // Rows in arrival order: the fork row between the fifth and sixth call rows.
        let order: Vec<u64> = batch.arrival().map(|x| batch.ktime(x)).collect();
        assert_eq!(order, vec![10, 11, 12, 20, 30, 40, 50, 60]);
        // Each call row is told with its own time, number and result.
        for c in &batch.calls {
            assert_eq!((c.nr, c.ret), (39, c.ktime_ns as i64));
        }
    }
}
