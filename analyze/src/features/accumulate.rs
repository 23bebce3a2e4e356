//! The hot loop: rows of record batches into per-workload partial aggregates.
//!
//! One [`Accumulator`] per scan task (a row group of a file). Per batch, dictionary keys of
//! `kind` and `container_id` are resolved once, so the per-row work is a few array reads and
//! counter bumps; kind-specific work only touches the sparse columns of its own rows.

use std::collections::HashMap;

use super::fasthash::FastMap;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use needle_common::abi::{EVENT_KINDS, EventKind};

use super::behaviour::{PathClass, classify_path};
use super::catalog::COMMON_PORTS;
use super::classify::{
    entropy, first_label, hash_str, is_fileless, is_shell, is_writable_location, path_template,
};
use super::columns::{Columns, opt, workload_key};
use super::partial::{
    FirstSeen, MAX_EXECS_PER_PROC, Partials, SET_CAP, ShellExec, WorkloadPartial, insert_capped,
    note_first, note_minute,
};
use super::{FeatureError, TimeWindow};

const UNKNOWN: u8 = u8::MAX;
const NO_SLOT: u32 = u32::MAX;
/// Open flags that mean the file may be written: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC.
const WRITE_FLAGS: u64 = 0o1 | 0o2 | 0o100 | 0o1000;

/// Accumulates rows of one host's file into partial aggregates.
pub struct Accumulator {
    host: String,
    window: TimeWindow,
    slots: Vec<WorkloadPartial>,
    keys: Vec<String>,
    by_key: HashMap<String, u32>,
    by_cgroup: FastMap<u64, u32>,
    /// Where these rows come from, when the batches lack the context columns: new workloads
    /// remember it as their [`WorkloadPartial::context_probe`].
    probe: Option<(u32, u32)>,

    /// Rows inside the time window.
    pub rows: u64,
    /// Rows skipped because their time is null.
    pub rows_without_time: u64,
}

fn note_time(
    into: &mut FastMap<u64, i64>,
    key: u64,
    t: i64,
    keep: fn(i64, i64) -> i64,
    capped: &mut u64,
) {
    let len = into.len();
    match into.get_mut(&key) {
        Some(old) => *old = keep(*old, t),
        None if len < SET_CAP => {
            into.insert(key, t);
        }
        None => *capped += 1,
    }
}

impl Accumulator {
    /// An accumulator for rows recorded on `host`, keeping rows inside `window`.
    pub fn new(host: &str, window: TimeWindow) -> Self {
        Accumulator {
            host: host.to_string(),
            window,
            slots: Vec::new(),
            keys: Vec::new(),
            by_key: HashMap::new(),
            by_cgroup: FastMap::default(),
            probe: None,
            rows: 0,
            rows_without_time: 0,
        }
    }

    /// Marks the rows as coming from row group `rg` of file `file`, read without context
    /// columns.
    pub fn without_context(mut self, file: u32, rg: u32) -> Self {
        self.probe = Some((file, rg));
        self
    }

    fn new_slot(&mut self, key: String) -> u32 {
        let slot = self.slots.len() as u32;
        let mut p = WorkloadPartial {
            context_probe: self.probe,
            ..Default::default()
        };
        p.hosts.insert(self.host.clone());
        self.slots.push(p);
        self.by_key.insert(key.clone(), slot);
        self.keys.push(key);
        slot
    }

    fn slot_for_key(&mut self, key: String) -> u32 {
        match self.by_key.get(&key) {
            Some(&s) => s,
            None => self.new_slot(key),
        }
    }

    fn slot_of(&mut self, c: &Columns, row: usize, cid_slots: &mut [u32]) -> u32 {
        if let Some(k) = c.workload.key(row) {
            if let Some(&s) = cid_slots.get(k)
                && s != NO_SLOT
            {
                return s;
            }
            if let Some(id) = c.workload.dict_value(k).filter(|id| !id.is_empty()) {
                let s = self.slot_for_key(workload_key(Some(id), &self.host, 0));
                if let Some(slot) = cid_slots.get_mut(k) {
                    *slot = s;
                }
                return s;
            }
        } else if let Some(id) = c.workload.get(row).filter(|id| !id.is_empty()) {
            return self.slot_for_key(workload_key(Some(id), &self.host, 0));
        }
        let cgroup = opt(&c.cgroup_id, row).unwrap_or(0);
        if let Some(&s) = self.by_cgroup.get(&cgroup) {
            return s;
        }
        let s = self.slot_for_key(workload_key(None, &self.host, cgroup));
        self.by_cgroup.insert(cgroup, s);
        s
    }

    /// Adds every row of `batch` (the features alone; the scan feeds each row to the
    /// signature engine too, through [`Accumulator::begin`] and [`Accumulator::add_row`]).
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), FeatureError> {
        let c = Columns::new(batch)?;
        let mut b = self.begin(&c);
        for row in 0..c.len {
            self.add_row(&mut b, &c, row);
        }
        Ok(())
    }

    /// The per-batch caches for the rows of `c`: each dictionary entry of `kind`, of the
    /// workload and of the hashed strings is resolved once per batch, not once per row.
    pub fn begin(&self, c: &Columns) -> BatchCaches {
        BatchCaches {
            cid_slots: vec![NO_SLOT; c.workload.dict_len()],
            kind_slots: (0..c.kind.dict_len())
                .map(|k| {
                    c.kind
                        .dict_value(k)
                        .and_then(EventKind::from_name)
                        .map_or(UNKNOWN, |k| k.slot() as u8)
                })
                .collect(),
            h: Hashes {
                exe: c.exe_path.hash_cache(),
                path: c.path.hash_cache(),
                path_class: vec![0; c.path.dict_len()],
                path2: c.path2.hash_cache(),
                dst: c.dst_addr.hash_cache(),
                dns: c.dns_name.hash_cache(),
            },
        }
    }

    /// Adds row `row` of `c` (with `b` from [`Accumulator::begin`] on the same columns); says
    /// where it went, or None for a row that is not kept (no time, outside the window) or of a
    /// kind this build does not know (counted in [`WorkloadPartial::unknown_kinds`]).
    #[inline]
    pub fn add_row(&mut self, b: &mut BatchCaches, c: &Columns, row: usize) -> Option<Kept> {
        if c.time.is_null(row) {
            self.rows_without_time += 1;
            return None;
        }
        let t = c.time.value(row);
        if !self.window.contains(t) {
            return None;
        }
        self.rows += 1;
        let slot = self.slot_of(c, row, &mut b.cid_slots) as usize;
        let kslot = match c.kind.key(row) {
            Some(k) => b.kind_slots.get(k).copied().unwrap_or(UNKNOWN),
            None => c
                .kind
                .get(row)
                .and_then(EventKind::from_name)
                .map_or(UNKNOWN, |k| k.slot() as u8),
        };
        let w = self.slots.get_mut(slot)?;
        w.first_ns = w.first_ns.min(t);
        w.last_ns = w.last_ns.max(t);
        if self.probe.is_none() && (w.context.name.is_none() || w.context.image.is_none()) {
            fill_context(w, c, row);
        }
        match EVENT_KINDS.get(kslot as usize) {
            Some(&kind) => {
                w.kind_counts[kslot as usize] += c.events(row, kind);
                add_row(w, kind, c, &mut b.h, row, t);
                Some(Kept {
                    slot,
                    kind,
                    time: t,
                })
            }
            None => {
                w.unknown_kinds += 1;
                None
            }
        }
    }

    /// The partial aggregates in slot order (the order [`Kept::slot`] counts in), with their
    /// workload keys.
    pub fn into_slots(self) -> impl Iterator<Item = (String, WorkloadPartial)> {
        self.keys.into_iter().zip(self.slots)
    }

    /// The partial aggregates, by workload key.
    pub fn finish(self) -> Partials {
        self.into_slots().collect()
    }
}

/// Where [`Accumulator::add_row`] put a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The workload's slot in this accumulator (its index in [`Accumulator::into_slots`]).
    pub slot: usize,
    /// The row's event kind.
    pub kind: EventKind,
    /// The row's time (ns since the epoch).
    pub time: i64,
}

/// Caches of one record batch (see [`Accumulator::begin`]).
pub struct BatchCaches {
    /// Workload dictionary entry → slot ([`NO_SLOT`] until seen).
    cid_slots: Vec<u32>,
    /// Kind dictionary entry → event-kind slot ([`UNKNOWN`] for a kind this build lacks).
    kind_slots: Vec<u8>,
    h: Hashes,
}

fn fill_context(w: &mut WorkloadPartial, c: &Columns, row: usize) {
    let ctx = &mut w.context;
    for (field, col) in [
        (&mut ctx.name, &c.container_name),
        (&mut ctx.image, &c.image),
        (&mut ctx.pod, &c.pod),
        (&mut ctx.namespace, &c.namespace),
        (&mut ctx.label, &c.label),
    ] {
        if field.is_none() {
            *field = col.get(row).map(str::to_string);
        }
    }
}

/// Per-batch caches of string hashes, one slot per dictionary entry.
struct Hashes {
    exe: Vec<u64>,
    path: Vec<u64>,
    /// Class of each `path` dictionary entry of the batch (0 = not looked up yet).
    path_class: Vec<PathClass>,

    path2: Vec<u64>,
    dst: Vec<u64>,
    dns: Vec<u64>,
}

/// Most path classes a scan thread remembers.
const MAX_PATH_CLASSES: usize = 200_000;

thread_local! {
    /// Classes of the paths this scan thread has seen, by path hash: the regexes of
    /// [`classify_path`] run once per distinct path and thread, not once per row group (a
    /// memo of a pure function — results do not depend on it).
    static PATH_CLASSES: std::cell::RefCell<FastMap<u64, PathClass>> =
        std::cell::RefCell::new(FastMap::default());
}

/// The class of the row's `path`: looked up once per dictionary entry and batch.
fn path_class(c: &Columns, row: usize, h: &mut Hashes) -> Option<PathClass> {
    let key = c.path.key(row);
    if let Some(&class) = key.and_then(|k| h.path_class.get(k)).filter(|&&c| c != 0) {
        return Some(class);
    }
    let hash = c.path.hash(row, &mut h.path)?;
    let class = PATH_CLASSES.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(&class) = m.get(&hash) {
            return Some(class);
        }
        let class = classify_path(c.path.get(row)?);
        if m.len() < MAX_PATH_CLASSES {
            m.insert(hash, class);
        }
        Some(class)
    })?;
    if let Some(slot) = key.and_then(|k| h.path_class.get_mut(k)) {
        *slot = class;
    }
    Some(class)
}

/// Kind-specific work for one row. Every kind is listed, so a new kind is a compile error here.
fn add_row(
    w: &mut WorkloadPartial,
    kind: EventKind,
    c: &Columns,
    h: &mut Hashes,
    row: usize,
    t: i64,
) {
    use EventKind as K;
    match kind {
        K::Exec => {
            let tgid = opt(&c.tgid, row).unwrap_or(0);
            let ppid = opt(&c.ppid, row).unwrap_or(0);
            let exe = c.exe_path.get(row);
            let shell = exe.or_else(|| c.comm.get(row)).is_some_and(is_shell);
            if let Some(path) = exe {
                let hash = c
                    .exe_path
                    .hash(row, &mut h.exe)
                    .unwrap_or_else(|| hash_str(path));
                insert_capped(&mut w.exes, hash, &mut w.capped);
                let seen = FirstSeen { time: t, pid: tgid };
                let program = match path_template(path) {
                    std::borrow::Cow::Borrowed(_) => hash,
                    std::borrow::Cow::Owned(template) => hash_str(&template),
                };
                note_first(&mut w.first_exe, program, seen, &mut w.capped);
                w.exe_writable += u64::from(is_writable_location(path));
                w.exe_fileless += u64::from(is_fileless(path));
                w.behaviour.exec(path, tgid, ppid, t);
                note_time(&mut w.executed, hash, t, i64::max, &mut w.capped);
            }
            if let Some(p) = w.proc_mut(tgid) {
                p.seen_ns = p.seen_ns.min(t);
                if p.ppid == 0 {
                    p.ppid = ppid;
                }
                if p.execs.len() < MAX_EXECS_PER_PROC {
                    p.execs.push((t, shell));
                } else {
                    w.capped += 1;
                }
            }
            if shell && w.shell_execs.len() < SET_CAP {
                w.shell_execs.push(ShellExec {
                    tgid,
                    ppid,
                    time: t,
                });
            }
        }
        K::Fork => {
            let tgid = opt(&c.tgid, row).unwrap_or(0);
            let ppid = opt(&c.ppid, row).unwrap_or(0);
            let by_shell = c.comm.get(row).map(is_shell);
            if let Some(p) = w.proc_mut(tgid) {
                p.ppid = ppid;
                p.forked_by_shell = by_shell;
                p.seen_ns = p.seen_ns.min(t);
            }
        }
        K::Open => {
            let flags = opt(&c.flags, row).unwrap_or(0);
            let ok = opt(&c.ret, row).is_none_or(|r| r >= 0);
            if let (true, Some(class)) = (ok, path_class(c, row, h)) {
                w.behaviour.open(class, flags, c.times(row), || {
                    // A process reading its own /proc/<pid>/environ reads no one's secrets.
                    let own = c
                        .path
                        .get(row)
                        .and_then(|p| p.strip_prefix("/proc/"))
                        .and_then(|p| p.split('/').next())
                        .and_then(|p| p.parse::<u32>().ok())
                        .is_some_and(|p| Some(p) == opt(&c.tgid, row));
                    if own {
                        None
                    } else {
                        c.path.hash(row, &mut h.path)
                    }
                });
            }
            if flags & WRITE_FLAGS != 0 && ok {
                w.file_writes += c.times(row);
                if let Some(p) = c.path.hash(row, &mut h.path) {
                    note_time(&mut w.written, p, t, i64::min, &mut w.capped);
                }
            }
        }
        K::Rename => {
            if let (true, Some(class)) = (
                opt(&c.ret, row).is_none_or(|r| r >= 0),
                path_class(c, row, h),
            ) {
                w.behaviour.rename(class);
            }
            if let Some(p) = c.path2.hash(row, &mut h.path2) {
                note_time(&mut w.written, p, t, i64::min, &mut w.capped);
            }
        }
        K::Chmod => {
            if let (true, Some(mode)) = (opt(&c.ret, row).is_none_or(|r| r >= 0), opt(&c.mode, row))
            {
                w.behaviour.chmod(mode);
            }
            if opt(&c.mode, row).is_some_and(|m| m & 0o111 != 0)
                && let Some(p) = c.path.hash(row, &mut h.path)
            {
                note_time(&mut w.written, p, t, i64::min, &mut w.capped);
            }
        }
        K::Connect | K::SendTo => {
            let times = c.times(row);
            w.outbound += times;
            if kind == K::Connect {
                let addr = c.dst_addr.hash(row, &mut h.dst);
                let port = opt(&c.dst_port, row).unwrap_or(0);
                w.behaviour.connect(addr, port, opt(&c.ret, row), times);
            }
            if let Some(port) = opt(&c.dst_port, row).filter(|&p| p != 0) {
                if let Some(addr) = c.dst_addr.hash(row, &mut h.dst) {
                    insert_capped(&mut w.remote_ips, addr, &mut w.capped);
                    let seen = FirstSeen {
                        time: t,
                        pid: opt(&c.tgid, row).unwrap_or(0),
                    };
                    let dst =
                        addr.rotate_left(17) ^ u64::from(port).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    note_first(&mut w.first_dst, dst, seen, &mut w.capped);
                    note_minute(&mut w.dst_minutes, dst, t, &mut w.capped);
                }
                insert_capped(&mut w.remote_ports, port, &mut w.capped);
                let common = u16::try_from(port).is_ok_and(|p| COMMON_PORTS.contains(&p));
                w.unusual_ports += if common { 0 } else { times };
            }
            w.bytes_out = w.bytes_out.saturating_add(opt(&c.bytes, row).unwrap_or(0));
        }
        K::Accept => {
            w.inbound += c.times(row);
            if let Some(addr) = c.dst_addr.hash(row, &mut h.dst) {
                insert_capped(&mut w.remote_ips, addr, &mut w.capped);
            }
        }
        K::DnsQuery => {
            if let (Some(name), Some(hash)) =
                (c.dns_name.get(row), c.dns_name.hash(row, &mut h.dns))
            {
                insert_capped(&mut w.dns_names, hash, &mut w.capped);
                let seen = FirstSeen {
                    time: t,
                    pid: opt(&c.tgid, row).unwrap_or(0),
                };
                note_first(&mut w.first_dns, hash, seen, &mut w.capped);
                note_minute(&mut w.dns_minutes, hash, t, &mut w.capped);
                let e = entropy(first_label(name));
                w.dns_named += 1;
                w.add_dns_entropy(e);
                w.dns_len_sum += name.len() as u64;
                w.dns_len_max = w.dns_len_max.max(name.len() as u64);
            }
        }
        K::DnsResponse => {
            // A row may stand for several identical answers (capture's DNS collapse windows);
            // the per-name features above count names, not messages.
            if let Some(rcode) = opt(&c.dns_rcode, row) {
                let times = c.times(row);
                w.dns_responses += times;
                w.dns_nxdomain += if rcode == 3 { times } else { 0 };
            }
        }
        K::SyscallProfile => {
            for (nr, n) in c.profile(row) {
                w.add_syscalls(nr, n);
            }
        }
        K::Syscall => {
            if let Some(nr) = opt(&c.syscall, row) {
                w.add_syscalls(nr, 1);
            }
        }
        K::Unlink | K::Truncate => {
            if let (true, Some(class)) = (
                opt(&c.ret, row).is_none_or(|r| r >= 0),
                path_class(c, row, h),
            ) {
                w.behaviour
                    .unlink_or_truncate(kind == K::Truncate, class, c.exe_path.get(row));
            }
        }
        K::Unshare | K::Setns => {
            if opt(&c.ret, row) == Some(0) {
                w.behaviour.namespace_call(c.comm.get(row));
            }
        }
        K::Exit | K::Chown | K::MemfdCreate | K::MmapExec | K::Bind | K::Listen => {}
        K::Utimes | K::Link | K::Symlink | K::Mkdir | K::Socket | K::Dup => {}
        K::Ptrace | K::ProcessVmWritev | K::ProcMemWrite | K::ModuleLoad | K::SetId | K::Capset => {
        }
        K::Userfaultfd | K::Mount | K::Bpf | K::Keyctl => {}
        K::ContainerStart | K::ContainerStop | K::Lost => {}
    }
}
