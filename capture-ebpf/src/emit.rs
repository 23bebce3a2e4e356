//! The one way a record enters the ring buffer.

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_uid_gid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
};
use aya_ebpf::maps::ring_buf::RingBufEntry;
use needle_common::abi::{
    CALL_FIXED, CALL_PATH2, CALL_PATH2_OFFSET, CALL_PATH3, CALL_PATH3_OFFSET, CallEvent, Counter,
    EventHeader, EventKind, SHAPE_CALL, SHAPE_PRIMARY,
};

use crate::maps::{CALL_SCRATCH, COUNTERS, EVENTS, config};
use crate::task;

/// Adds one to a per-CPU counter slot.
#[inline(always)]
pub fn count(slot: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
        unsafe { *p += 1 }
    }
}

/// Adds one to a named counter.
#[inline(always)]
pub fn count_event(counter: Counter) {
    count(counter as u32)
}

/// Reserves room for a `T`; a full ring buffer is counted as a lost event of `kind`.
#[inline(always)]
pub fn reserve<T: 'static>(kind: EventKind) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(kind.slot());
    }
    entry
}

/// Wake-up flag for a record about to be committed: wake the reader only once enough bytes wait.
#[inline(always)]
fn wakeup_flags() -> u64 {
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    (if waiting >= config().wakeup_bytes {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }) as u64
}

/// Submits a record, waking the reader only once enough bytes are waiting.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    entry.submit(wakeup_flags());
}

/// Copies the first `len` bytes of a record built elsewhere (a per-CPU scratch) into the ring;
/// a full ring is counted as a lost event of `kind`.
#[inline(always)]
pub fn output(bytes: &[u8], kind: EventKind) {
    if EVENTS.output::<[u8]>(bytes, wakeup_flags()).is_err() {
        count(kind.slot());
    }
}

/// This CPU's scratch [`CallEvent`], with the fixed part reset for syscall `nr` returning `ret`.
#[inline(always)]
pub fn call_scratch(nr: u32, ret: i64) -> Option<*mut CallEvent> {
    let ev = CALL_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU map value, ours while the program runs.
    unsafe {
        (*ev).syscall = nr;
        (*ev).flags = 0;
        (*ev).ret = ret;
        (*ev).args = [0; 6];
        (*ev).dev = 0;
        (*ev).path_len = 0;
        (*ev).path2_len = 0;
        (*ev).path3_len = 0;
        (*ev).depth = 0;
        (*ev).window = 0;
        (*ev).ino = 0;
    }
    Some(ev)
}

/// Fills the header of a scratch [`CallEvent`] as `kind` and sends its used prefix.
///
/// # Safety
/// `ev` must come from [`call_scratch`].
#[inline(always)]
pub unsafe fn emit_call(ev: *mut CallEvent, kind: EventKind) {
    // SAFETY: the caller passes our scratch.
    unsafe {
        fill_header(&raw mut (*ev).header, kind);
        (*ev).header.shape = SHAPE_CALL;
        let flags = (*ev).flags;
        let used = if flags & CALL_PATH3 != 0 {
            CALL_PATH3_OFFSET + (*ev).path3_len as usize
        } else if flags & CALL_PATH2 != 0 {
            CALL_PATH2_OFFSET + (*ev).path2_len as usize
        } else {
            (*ev).path_len as usize
        };
        let max = core::mem::size_of::<CallEvent>();
        let mut len = CALL_FIXED + used;
        if len > max {
            len = max;
        }
        output(core::slice::from_raw_parts(ev as *const u8, len), kind);
    }
}

/// Fills the common header from the current task.
///
/// # Safety
/// `h` must point to writable memory for an `EventHeader` (a ring-buffer reservation).
#[inline(always)]
pub unsafe fn fill_header(h: *mut EventHeader, kind: EventKind) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: the caller guarantees `h` is writable; helpers have no preconditions.
    unsafe {
        (*h).kind = kind as u32;
        (*h).cpu = bpf_get_smp_processor_id();
        (*h).ktime_ns = bpf_ktime_get_boot_ns();
        (*h).cgroup_id = bpf_get_current_cgroup_id();
        (*h).pid = pid_tgid as u32;
        (*h).tgid = (pid_tgid >> 32) as u32;
        let me = task::current();
        (*h).start_ns = task::process_start_ns(me).unwrap_or(0);
        match task::current_parent() {
            Ok(parent) => {
                (*h).ppid = task::tgid(parent).unwrap_or(0);
                (*h).parent_start_ns = task::process_start_ns(parent).unwrap_or(0);
            }
            Err(_) => {
                count_event(Counter::KernelReadError);
                (*h).ppid = 0;
                (*h).parent_start_ns = 0;
            }
        }
        (*h).uid = uid_gid as u32;
        (*h).gid = (uid_gid >> 32) as u32;
        (*h).shape = SHAPE_PRIMARY;
        (*h).comm = bpf_get_current_comm().unwrap_or([0; 16]);
    }
}

/// True when the current task belongs to capture itself (its own I/O is not recorded).
#[inline(always)]
pub fn is_self() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let me = config().self_tgid;
    me != 0 && tgid == me
}
