//! Process lifecycle: exec, fork, exit.
//!
//! * exec — `sched/sched_process_exec` fires after the new image is installed: the path comes
//!   from the tracepoint record (the kernel's copy) and argv from the new mm, which the kernel
//!   itself filled during exec; the new image's credentials (capabilities) and its fds 0–2
//!   (`crate::stdio`) from the task. Nothing is read from syscall-entry user pointers. The
//!   record is built in a per-CPU scratch: the fds are described by tail calls, one each.
//! * fork — `tp_btf/sched_process_fork` hands us both task_structs; threads are filtered here.
//! * exit — `sched/sched_process_exit` with `group_dead`, so one row per process, not per thread.

use aya_ebpf::EbpfContext;
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes};
use aya_ebpf::macros::{btf_tracepoint, tracepoint};
use aya_ebpf::programs::{BtfTracePointContext, TracePointContext};
use needle_common::abi::{
    Counter, EXE_IDENTITY, EXE_MTIME, EXEC_ARGS_MAX, EXEC_ARGS_TRUNCATED, EXEC_CAPS,
    EXEC_FILENAME_MAX, EXEC_FILENAME_TRUNCATED, EXEC_STDIO, EXIT_GROUP_DEAD, EventKind, ExecEvent,
    ExitEvent, ForkEvent, OFFSET_MISSING, STDIO_FDS,
};

use crate::emit::{count_event, fill_header, is_self, output, reserve, submit};
use crate::maps::{EXEC_SCRATCH, EXEC_TAIL, STDIO_PROGRESS, offsets};
use crate::{stdio, task};

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    if is_self() {
        return 0;
    }
    let Some(ev) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `ev` is this CPU's exec scratch, ours until it is sent.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Exec);
        fill_exec(&ctx, ev);
        stdio::fill_cwd(ev);
        // The standard fds, one per tail call; the last call sends the record.
        if let (Some(progress), Ok(files)) = (STDIO_PROGRESS.get_ptr_mut(0), stdio::std_files()) {
            (*progress).next = 0;
            (*progress).files = files;
            EXEC_TAIL.tail_call(&ctx, 0);
        }
        // Only reached when the fds could not be read or the tail call failed.
        count_event(Counter::KernelReadError);
        send_exec(ev);
    }
    0
}

/// Describes the next standard fd of the exec record being built, then calls itself for the
/// one after it, or sends the record after fd 2. Loaded into `EXEC_TAIL`, never attached.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec_stdio(ctx: TracePointContext) -> u32 {
    let (Some(ev), Some(progress)) = (EXEC_SCRATCH.get_ptr_mut(0), STDIO_PROGRESS.get_ptr_mut(0))
    else {
        return 0;
    };
    // SAFETY: both are this CPU's; the exec program filled them just before this chain.
    unsafe {
        let i = (*progress).next as usize;
        let files = (*progress).files;
        let Some(file) = files.get(i) else {
            // Not reached (the chain stops after fd 2); the record goes out all the same.
            send_exec(ev);
            return 0;
        };
        stdio::fill_fd(ev, i, *file as *const u8);
        // fds that share an earlier one's file (`2>&1`, a terminal on all three) are copies of
        // it: no second walk, no tail call.
        let mut next = i + 1;
        for _ in 0..STDIO_FDS {
            let Some(file) = files.get(next) else { break };
            let Some(earlier) = files.iter().take(next).position(|f| f == file) else {
                break;
            };
            stdio::copy_fd(ev, earlier, next);
            next += 1;
        }
        (*progress).next = next as u32;
        if next < STDIO_FDS {
            EXEC_TAIL.tail_call(&ctx, 0);
            count_event(Counter::KernelReadError);
        } else {
            (*ev).flags |= EXEC_STDIO;
        }
        send_exec(ev);
    }
    0
}

/// Sends the exec record built in this CPU's scratch.
///
/// # Safety
/// `ev` must be this CPU's exec scratch.
#[inline(always)]
unsafe fn send_exec(ev: *const ExecEvent) {
    // SAFETY: as the caller guarantees.
    let bytes =
        unsafe { core::slice::from_raw_parts(ev as *const u8, core::mem::size_of::<ExecEvent>()) };
    output(bytes, EventKind::Exec);
}

/// # Safety
/// `ev` must point to this CPU's exec scratch.
#[inline(always)]
unsafe fn fill_exec(ctx: &TracePointContext, ev: *mut ExecEvent) {
    let off = offsets();
    // SAFETY: reads of the tracepoint record at offsets taken from its tracefs format.
    unsafe {
        (*ev).old_pid = ctx
            .read_at::<u32>(off.tp_exec_old_pid as usize)
            .unwrap_or(0);
        (*ev).flags = 0;
        (*ev).filename_len = 0;
        (*ev).args_len = 0;

        // `__data_loc char[] filename`: low 16 bits = offset in the record, high 16 = length with NUL.
        if let Ok(loc) = ctx.read_at::<u32>(off.tp_exec_filename as usize) {
            let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
            if let Ok(s) = bpf_probe_read_kernel_str_bytes(src, &mut (*ev).filename) {
                (*ev).filename_len = s.len() as u32;
            }
            if (loc >> 16) as usize > EXEC_FILENAME_MAX {
                (*ev).flags |= EXEC_FILENAME_TRUNCATED;
            }
        }

        (*ev).exe_flags = 0;
        (*ev)._pad = 0;
        if let Ok(exe) = task::current_exe() {
            (*ev).exe_ino = exe.ino;
            (*ev).exe_nlink = exe.nlink;
            (*ev).exe_dev = exe.dev;
            (*ev).exe_size = exe.size;
            (*ev).exe_flags = EXE_IDENTITY;
            if let Some(m) = exe.mtime_sec {
                (*ev).exe_mtime_sec = m;
                (*ev).exe_flags |= EXE_MTIME;
            }
            if bpf_probe_read_kernel_str_bytes(exe.dname, &mut (*ev).exe_dname).is_err() {
                (*ev).exe_dname[0] = 0;
            }
        } else {
            count_event(Counter::KernelReadError);
        }

        match task::current_caps() {
            Ok((effective, permitted)) => {
                (*ev).cap_effective = effective;
                (*ev).cap_permitted = permitted;
                (*ev).flags |= EXEC_CAPS;
            }
            Err(_) => count_event(Counter::KernelReadError),
        }
        match task::current_args() {
            Ok((start, end)) if end > start => {
                let total = end - start;
                let n = if total > EXEC_ARGS_MAX as u64 {
                    EXEC_ARGS_MAX as u64
                } else {
                    total
                };
                if total > EXEC_ARGS_MAX as u64 {
                    (*ev).flags |= EXEC_ARGS_TRUNCATED;
                }
                let dst = (*ev).args.as_mut_ptr() as *mut core::ffi::c_void;
                if bpf_probe_read_user(dst, n as u32, start as *const core::ffi::c_void) == 0 {
                    (*ev).args_len = n as u32;
                } else {
                    count_event(Counter::ExecArgvReadError);
                }
            }
            Ok(_) => {}
            Err(_) => count_event(Counter::ExecArgvReadError),
        }
    }
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let child: task::Task = ctx.arg(1);
    let (Ok(child_pid), Ok(child_tgid)) = (task::pid(child), task::tgid(child)) else {
        count_event(Counter::KernelReadError);
        return 0;
    };
    if child_pid != child_tgid {
        count_event(Counter::ForkThreadFiltered);
        return 0;
    }
    if is_self() {
        return 0;
    }
    let Some(mut entry) = reserve::<ForkEvent>(EventKind::Fork) else {
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let parent = bpf_get_current_pid_tgid();
    // SAFETY: `ev` points into our reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Fork);
        // The row describes the child: it inherits comm, credentials and cgroup from us.
        (*ev).header.pid = child_pid;
        (*ev).header.tgid = child_tgid;
        (*ev).header.ppid = (parent >> 32) as u32;
        // The child is its own group leader: its start time names it; the parent's is ours.
        (*ev).header.parent_start_ns = (*ev).header.start_ns;
        (*ev).header.start_ns = task::start_ns(child).unwrap_or(0);
        (*ev).parent_pid = parent as u32;
        (*ev)._pad = 0;
    }
    submit(entry);
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    // Every exiting thread hands in its syscall profile and its collapsed opens (it makes no
    // syscall after this).
    if !is_self() {
        super::syscalls::flush_profile();
        crate::collapse::thread_exit();
    }
    let off = offsets();
    let pid_tgid = bpf_get_current_pid_tgid();
    let last_thread = if off.tp_exit_group_dead != OFFSET_MISSING {
        // SAFETY: offset from the tracepoint's format file.
        unsafe { ctx.read_at::<u8>(off.tp_exit_group_dead as usize) }.unwrap_or(0) != 0
    } else {
        // Older kernels: approximate with the thread-group leader.
        pid_tgid as u32 == (pid_tgid >> 32) as u32
    };
    if !last_thread {
        count_event(Counter::ExitThreadFiltered);
        return 0;
    }
    if is_self() {
        return 0;
    }
    let Some(mut entry) = reserve::<ExitEvent>(EventKind::Exit) else {
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points into our reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Exit);
        (*ev).exit_code = task::current_exit_code().unwrap_or_else(|_| {
            count_event(Counter::KernelReadError);
            0
        });
        (*ev).flags = EXIT_GROUP_DEAD;
    }
    submit(entry);
    0
}
