//! Syscall exit: one raw tracepoint for every syscall, kept short.
//!
//! It reads the syscall number from the saved `pt_regs`, counts it in the thread's profile,
//! optionally emits one compact row per syscall (`--syscalls full`), and tail-calls the handler
//! registered for that number in [`HANDLERS`] (files, security-relevant calls, sockets). A number
//! without a handler costs one failed tail call. Handlers read the arguments from the same
//! `pt_regs` at exit, after the kernel used them.

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns};
use aya_ebpf::macros::raw_tracepoint;
use aya_ebpf::programs::RawTracePointContext;
use needle_common::abi::{
    Counter, EventKind, FEATURE_FULL, FEATURE_PROFILE, PROFILE_SLOTS, PT_REGS_WORDS, ProfileEvent,
    ProfileState, SyscallEvent,
};

use crate::emit::{count_event, fill_header, output, reserve, submit};
use crate::maps::{
    HANDLERS, PROFILE_SCRATCH, PROFILE_ZERO, PROFILES, REGS_SCRATCH, config, offsets,
};
use crate::task::read;

/// The syscall's saved registers and return value, as `sys_exit` gets them.
#[inline(always)]
pub fn exit_args(ctx: &RawTracePointContext) -> (*const u8, i64) {
    (ctx.arg::<*const u8>(0), ctx.arg::<i64>(1))
}

/// A handler's copy of the saved registers, read in one go into this CPU's scratch (too large
/// for the eBPF stack): one helper call instead of one per argument.
pub struct Regs {
    words: *const [u64; PT_REGS_WORDS],
}

impl Regs {
    /// The registers and return value of the syscall that is returning; `None` when the
    /// registers cannot be read, or when the task is in a 32-bit (compat) syscall, whose numbers
    /// and argument registers are another table's: counted, never decoded as a 64-bit call.
    #[inline(always)]
    pub fn at_exit(ctx: &RawTracePointContext) -> Option<(Regs, i64)> {
        let (regs, ret) = exit_args(ctx);
        if crate::task::in_compat_syscall() {
            crate::emit::count_event(needle_common::abi::Counter::CompatSyscall);
            return None;
        }
        let words = REGS_SCRATCH.get_ptr_mut(0)?;
        let size = core::mem::size_of::<[u64; PT_REGS_WORDS]>() as u32;
        // SAFETY: the scratch is this CPU's and as large as `size`; the helper checks `regs`.
        if unsafe { bpf_probe_read_kernel(words as *mut _, size, regs as *const _) } < 0 {
            return None;
        }
        Some((Regs { words }, ret))
    }

    /// The register at byte offset `off`.
    #[inline(always)]
    fn at(&self, off: u32) -> u64 {
        // SAFETY: this CPU's scratch, filled in `at_exit` during this program run.
        unsafe { (*self.words).get((off / 8) as usize).copied().unwrap_or(0) }
    }

    /// Syscall number (`orig_ax`).
    #[inline(always)]
    pub fn nr(&self) -> Option<u32> {
        let nr = self.at(offsets().regs_nr) as i64;
        (nr >= 0).then_some(nr as u32)
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
#[inline(always)]
pub fn syscall_nr(regs: *const u8) -> Option<u32> {
    let nr = read::<i64>(regs, offsets().regs_nr).ok()?;
    if nr < 0 {
        return None;
    }
    Some(nr as u32)
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
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
    let state = match PROFILES.get_ptr_mut(tid) {
        Some(p) => p,
        None => {
            let Some(zero) = PROFILE_ZERO.get(0) else {
                return;
            };
            if PROFILES.insert(tid, zero, BPF_NOEXIST as u64).is_err() {
                count_event(Counter::ProfileMapFull);
                return;
            }
            let Some(p) = PROFILES.get_ptr_mut(tid) else {
                return;
            };
            p
        }
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

/// Emits the current thread's profile and resets it.
///
/// # Safety
/// `state` must be the current thread's `PROFILES` value.
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

/// Emits and forgets the profile of the current thread, which is exiting.
#[inline(always)]
pub fn flush_profile() {
    if config().features & FEATURE_PROFILE == 0 {
        return;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
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
