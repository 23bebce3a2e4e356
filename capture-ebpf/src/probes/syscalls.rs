//! Syscall exit: one BTF tracepoint (`tp_btf/sys_exit`) for every syscall, kept short.
//!
//! It loads the syscall number from the saved `pt_regs` (a typed pointer, no helper call),
//! counts it in the thread's profile,
//! optionally emits one compact row per syscall (`--syscalls full`), and tail-calls the handler
//! registered for that number in [`HANDLERS`] (files, security-relevant calls, sockets). A number
//! without a handler costs one failed tail call. Handlers read the arguments from the same
//! `pt_regs` at exit, after the kernel used them.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use core::intrinsics::AtomicOrdering;
use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns};
use aya_ebpf::macros::btf_tracepoint;
use aya_ebpf::programs::BtfTracePointContext;
use needle_common::abi::{
    Counter, EventKind, FEATURE_FULL, FEATURE_PROFILE, PROFILE_SLOTS, PROFILE_TABLE_ENTRIES,
    ProfileEvent, ProfileState, SyscallEvent,
};

use crate::emit::{count_event, fill_header, output, reserve, submit};
use crate::maps::{
    HANDLERS, PROFILE_SCRATCH, PROFILE_TABLE, PROFILE_ZERO, PROFILES, config, offsets,
};

/// The syscall's saved registers and return value, as `sys_exit` gets them.
#[inline(always)]
pub fn exit_args(ctx: &BtfTracePointContext) -> (*const u8, i64) {
    (ctx.arg::<*const u8>(0), ctx.arg::<i64>(1))
}

/// The saved registers of the syscall that is returning, as the `tp_btf` argument gives them:
/// a BTF-typed `struct pt_regs *`, so each register is one guarded load at an offset the
/// verifier checks against the kernel's BTF (constant: the offsets are read-only), not a
/// `bpf_probe_read_kernel` call (~25 ns here).
pub struct Regs {
    base: *const u8,
}

impl Regs {
    /// The registers and return value of the syscall that is returning; `None` when the task
    /// is in a 32-bit (compat) syscall, whose numbers and argument registers are another
    /// table's: counted, never decoded as a 64-bit call.
    #[inline(always)]
    pub fn at_exit(ctx: &BtfTracePointContext) -> Option<(Regs, i64)> {
        let (regs, ret) = exit_args(ctx);
        if crate::task::in_compat_syscall() {
            crate::emit::count_event(needle_common::abi::Counter::CompatSyscall);
            return None;
        }
        if regs.is_null() {
            return None;
        }
        Some((Regs { base: regs }, ret))
    }

    /// The register at byte offset `off`.
    #[inline(always)]
    fn at(&self, off: u32) -> u64 {
        // SAFETY: see the type's docs; a faulting address reads as 0.
        unsafe { read_volatile(self.base.wrapping_add(off as usize) as *const u64) }
    }

    /// Syscall number (`orig_ax`).
    #[inline(always)]
    pub fn nr(&self) -> Option<u32> {
        syscall_nr(self.base)
    }

    /// Argument `i` (0..6).
    #[inline(always)]
    pub fn arg(&self, i: usize) -> u64 {
        match offsets().regs_args.get(i) {
            Some(o) => self.at(*o),
            None => 0,
        }
    }
}

/// Syscall number from the saved registers (`orig_ax`).
///
/// `regs` is the tracepoint's `struct pt_regs *`, which a `tp_btf` program may load from
/// directly: the verifier checks the (constant, read-only) offset against the kernel's BTF and
/// the JIT emits one guarded load instead of a `bpf_probe_read_kernel` call.
#[inline(always)]
pub fn syscall_nr(regs: *const u8) -> Option<u32> {
    let at = regs.wrapping_add(offsets().regs_nr as usize) as *const i64;
    // SAFETY: see above; a faulting address reads as 0 in the kernel's exception handler.
    let nr = unsafe { core::ptr::read_volatile(at) };
    if nr < 0 {
        return None;
    }
    Some(nr as u32)
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let (regs, ret) = exit_args(&ctx);
    let Some(nr) = syscall_nr(regs) else { return 0 };
    let pid_tgid = bpf_get_current_pid_tgid();
    let me = config().self_tgid;
    if me != 0 && (pid_tgid >> 32) as u32 == me {
        return 0;
    }
    let features = config().features;
    if features & FEATURE_PROFILE != 0 {
        profile_count(pid_tgid as u32, nr);
    }
    if features & FEATURE_FULL != 0 {
        emit_syscall(nr, ret);
    }
    if (nr as usize) < PROFILE_SLOTS {
        // SAFETY: the context is this program's own; a missing entry just returns.
        unsafe { HANDLERS.tail_call(&ctx, nr) };
    }
    0
}

#[inline(always)]
fn emit_syscall(nr: u32, ret: i64) {
    let Some(mut entry) = reserve::<SyscallEvent>(EventKind::Syscall) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points into our reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Syscall);
        (*ev).syscall = nr;
        (*ev)._pad = 0;
        (*ev).ret = ret;
    }
    submit(entry);
}

/// How often (in calls of one syscall number) a thread's profile interval is checked.
const PROFILE_CLOCK_EVERY: u32 = 256;

/// Counts syscall `nr` for the current thread `tid`; emits the profile when its interval is over.
#[inline(always)]
fn profile_count(tid: u32, nr: u32) {
    let Some(state) = profile_state(tid) else {
        count_event(Counter::ProfileMapFull);
        return;
    };
    let slot = if (nr as usize) < PROFILE_SLOTS {
        nr as usize
    } else {
        PROFILE_SLOTS - 1
    };
    // SAFETY: the map value belongs to this thread: only it counts into it, and its exit flushes it.
    unsafe {
        if (*state).since_ns == 0 {
            (*state).since_ns = bpf_ktime_get_boot_ns();
            // Once an interval: who counts here, for a thread still alive at the end.
            fill_header(&raw mut (*state).header, EventKind::SyscallProfile);
        }
        let Some(c) = (*state).counts.get_mut(slot) else {
            return;
        };
        *c = c.wrapping_add(1);
        // The clock is read only every PROFILE_CLOCK_EVERY calls of one number: a busy thread's
        // profile goes out within that many calls after its interval; a quiet one at its exit.
        if *c & (PROFILE_CLOCK_EVERY - 1) != 0 {
            return;
        }
        let interval = config().profile_interval_ns;
        if interval != 0 && bpf_ktime_get_boot_ns().wrapping_sub((*state).since_ns) >= interval {
            emit_profile(state);
        }
    }
}

/// The profile of thread `tid`: its [`PROFILE_TABLE`] entry when it holds it; else its
/// [`PROFILES`] entry when it has one; else the table entry when that is free (taken with a
/// compare-and-swap: two CPUs never share it); else a new [`PROFILES`] entry. A thread counts
/// in one place for its whole life.
#[inline(always)]
fn profile_state(tid: u32) -> Option<*mut ProfileState> {
    let slot = PROFILE_TABLE.get_ptr_mut(tid & (PROFILE_TABLE_ENTRIES - 1));
    if let Some(slot) = slot {
        // SAFETY: an entry of an array map: valid and aligned. The owner field changes only by
        // compare-and-swap (taken) or by its owner (given back); an aligned 8-byte load sees
        // either whole value.
        if unsafe { read_volatile(&raw const (*slot).owner) } == u64::from(tid) {
            // SAFETY: as above; the entry is ours.
            return Some(unsafe { &raw mut (*slot).state });
        }
    }
    if let Some(p) = PROFILES.get_ptr_mut(tid) {
        return Some(p);
    }
    if let Some(slot) = slot {
        // SAFETY: as above. (The BPF target has no `compare_exchange` on its atomics: the
        // intrinsic is the one compare-and-swap instruction, BPF_CMPXCHG.)
        let (_, taken) = unsafe {
            core::intrinsics::atomic_cxchg::<
                u64,
                { AtomicOrdering::Acquire },
                { AtomicOrdering::Relaxed },
            >(&raw mut (*slot).owner, 0, u64::from(tid))
        };
        if taken {
            // SAFETY: the entry is ours now; its previous owner left it zeroed.
            return Some(unsafe { &raw mut (*slot).state });
        }
    }
    let zero = PROFILE_ZERO.get(0)?;
    if PROFILES.insert(tid, zero, BPF_NOEXIST as u64).is_err() {
        return None;
    }
    PROFILES.get_ptr_mut(tid)
}

/// Emits the current thread's profile and resets it.
///
/// # Safety
/// `state` must be the current thread's profile.
#[inline(always)]
pub unsafe fn emit_profile(state: *mut ProfileState) {
    let Some(ev) = PROFILE_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let Some(zero) = PROFILE_ZERO.get_ptr(0) else {
        return;
    };
    let counts = core::mem::size_of::<[u32; PROFILE_SLOTS]>() as u32;
    // SAFETY: `ev` is this CPU's scratch, `state` the thread's value, `zero` a zeroed value.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::SyscallProfile);
        (*ev).since_ns = (*state).since_ns;
        if bpf_probe_read_kernel(
            (*ev).counts.as_mut_ptr() as *mut _,
            counts,
            (*state).counts.as_ptr() as *const _,
        ) < 0
        {
            return;
        }
        output(
            core::slice::from_raw_parts(ev as *const u8, core::mem::size_of::<ProfileEvent>()),
            EventKind::SyscallProfile,
        );
        (*state).since_ns = 0;
        bpf_probe_read_kernel(
            (*state).counts.as_mut_ptr() as *mut _,
            counts,
            (*zero).counts.as_ptr() as *const _,
        );
    }
}

/// Emits and forgets the profile of the current thread, which is exiting: its table entry is
/// left zeroed and free for the next thread of that index.
#[inline(always)]
pub fn flush_profile() {
    if config().features & FEATURE_PROFILE == 0 {
        return;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(slot) = PROFILE_TABLE.get_ptr_mut(tid & (PROFILE_TABLE_ENTRIES - 1)) {
        // SAFETY: an array entry (see `profile_state`).
        let owner = unsafe { &raw mut (*slot).owner };
        if unsafe { read_volatile(owner) } == u64::from(tid) {
            // SAFETY: the exiting thread's own entry.
            unsafe {
                let state = &raw mut (*slot).state;
                if (*state).since_ns != 0 {
                    emit_profile(state);
                }
            }
            // SAFETY: as above. The counts were zeroed first (behind a helper call, which the
            // compiler does not move this store across).
            unsafe { write_volatile(owner, 0) };
            return;
        }
    }
    if let Some(state) = PROFILES.get_ptr_mut(tid) {
        // SAFETY: the exiting thread's own value.
        unsafe {
            if (*state).since_ns != 0 {
                emit_profile(state);
            }
        }
        let _ = PROFILES.remove(tid);
    }
}
