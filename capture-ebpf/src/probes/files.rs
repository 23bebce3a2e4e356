//! File events at syscall exit (tail-called from `sys_exit`).
//!
//! * open/creat/openat/openat2: a returned fd is looked up in the task's fd table and its path
//!   walked from the kernel's `struct file` (race-free); a failed open records the user string,
//!   read at exit. Read-only opens under the configured system prefixes, and a process's reads of
//!   its own `/proc/<pid>/…` (but `/proc/<pid>/environ`), are skipped here and counted. A
//!   write-open of `/proc/<pid>/mem` is a `proc_mem_write`. Repeats of an open the thread made within the collapse window are
//!   counted into that open's window before any path is walked (see `crate::collapse`).
//! * unlink/rmdir/rename/chmod/chown: the user strings at exit (the file may be gone); the
//!   fd-based forms (fchmod, fchown) walk the kernel path.
//! * memfd_create: the name; mmap with PROT_EXEC of a file: the file's kernel path.

use aya_ebpf::helpers::bpf_probe_read_user;
use aya_ebpf::macros::btf_tracepoint;
use aya_ebpf::programs::BtfTracePointContext;
use needle_common::abi::{
    CALL_PATH2, CALL_PATH2_MAX, CALL_PATH2_OFFSET, CallEvent, Counter, EventKind,
    FEATURE_FILE_FILTER, FEATURE_PROC_SELF_FILTER, WINDOW_FILE_FILTERED, WINDOW_PROC_SELF_FILTERED,
    WINDOW_ROW, nr,
};

use super::syscalls::Regs;
use crate::collapse::{self, Seen};
use crate::emit::{call_scratch, count_event, emit_call};
use crate::fs::{
    Top, USER_PATH_MAX, component_is, component_number, fd_file, file_key, file_path,
    matches_prefix, user_path_matches_prefix, user_string,
};
use crate::maps::config;
use crate::task;

const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_WRONLY: u64 = 1;
const AT_FDCWD: i64 = -100;
const PROT_EXEC: u64 = 4;
const MAP_ANONYMOUS: u64 = 0x20;

#[inline(always)]
fn read_only(flags: u64) -> bool {
    flags & O_ACCMODE == 0 && flags & (O_CREAT | O_TRUNC) == 0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_open(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    let Some(ev) = call_scratch(nr, ret) else {
        return 0;
    };
    let (dfd, path, flags, mode) = match nr {
        nr::OPEN => (AT_FDCWD, regs.arg(0), regs.arg(1), regs.arg(2)),
        nr::CREAT => (
            AT_FDCWD,
            regs.arg(0),
            O_CREAT | O_WRONLY | O_TRUNC,
            regs.arg(1),
        ),
        nr::OPENAT2 => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }, still in user memory.
            let how = regs.arg(2);
            // SAFETY: bpf_probe_read_user checks the address.
            let flags = unsafe { bpf_probe_read_user(how as *const u64) }.unwrap_or(0);
            let mode = unsafe { bpf_probe_read_user((how + 8) as *const u64) }.unwrap_or(0);
            (regs.arg(0) as i64, regs.arg(1), flags, mode)
        }
        _ => (regs.arg(0) as i64, regs.arg(1), regs.arg(2), regs.arg(3)),
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe {
        (*ev).args[0] = flags;
        (*ev).args[1] = mode;
        (*ev).args[2] = dfd as u64;
        let filter = config().features;
        if ret >= 0 {
            let file = fd_file(ret);
            // A repeat of an open this thread made a moment ago is only counted: no path walk.
            let window = match file_key(file) {
                Some((ino, sb)) => match collapse::seen(ino, sb, flags as u32) {
                    Seen::Counted => return 0,
                    Seen::New(w, index) => Some((w, index)),
                    Seen::Untracked => None,
                },
                None => None,
            };
            let settle = |state: u32| {
                if let Some((w, _)) = window {
                    collapse::opened(w, state);
                }
            };
            let Some(top) = file_path(ev, file) else {
                count_event(Counter::KernelReadError);
                return 0;
            };
            if let Some(pid) = proc_pid(ev, &top) {
                if top.depth >= 3
                    && component_is(ev, top.off[2], top.len[2], b"mem")
                    && !read_only(flags)
                {
                    // Always a row of its own: the window stays empty.
                    (*ev).args[3] = pid as u64;
                    emit_call(ev, EventKind::ProcMemWrite);
                    return 0;
                }
                // A process reading its own environment (`cat /proc/self/environ`) is how
                // secrets in it are harvested: never filtered.
                if filter & FEATURE_PROC_SELF_FILTER != 0
                    && read_only(flags)
                    && !(top.depth >= 3 && component_is(ev, top.off[2], top.len[2], b"environ"))
                    && task::current_ns_tgid().is_ok_and(|me| me == pid)
                {
                    settle(WINDOW_PROC_SELF_FILTERED);
                    count_event(Counter::ProcSelfFiltered);
                    return 0;
                }
            }
            if filter & FEATURE_FILE_FILTER != 0 && read_only(flags) && matches_prefix(ev, &top) {
                settle(WINDOW_FILE_FILTERED);
                count_event(Counter::FileFiltered);
                return 0;
            }
            if let Some((_, index)) = window {
                settle(WINDOW_ROW);
                (*ev).window = index + 1;
            }
        } else {
            let Some(len) = user_string(ev, 0, USER_PATH_MAX, path) else {
                return 0;
            };
            (*ev).path_len = len;
            if filter & FEATURE_FILE_FILTER != 0
                && read_only(flags)
                && user_path_matches_prefix(ev, len)
            {
                count_event(Counter::FileFiltered);
                return 0;
            }
        }
        emit_call(ev, EventKind::Open);
    }
    0
}

/// `/proc/<n>/…`: the pid `n` (as the opener's pid namespace spells it).
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
unsafe fn proc_pid(ev: *const CallEvent, top: &Top) -> Option<u32> {
    // SAFETY: as the caller guarantees.
    unsafe {
        if top.depth < 2 || !component_is(ev, top.off[0], top.len[0], b"proc") {
            return None;
        }
        component_number(ev, top.off[1], top.len[1])
    }
}

/// unlink, rmdir, rename, chmod, chown and their *at / f* forms.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_path(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    let Some(ev) = call_scratch(nr, ret) else {
        return 0;
    };
    let a = |i| regs.arg(i);
    // (kind, fd for a kernel path or -1, user path, user path2, args)
    let (kind, fd, path, path2, x, y, z) = match nr {
        nr::UNLINK | nr::RMDIR => (EventKind::Unlink, -1, a(0), 0, 0, 0, 0),
        nr::UNLINKAT => (EventKind::Unlink, -1, a(1), 0, a(2), a(0), 0),
        nr::RENAME => (EventKind::Rename, -1, a(0), a(1), 0, 0, 0),
        nr::RENAMEAT | nr::RENAMEAT2 => (EventKind::Rename, -1, a(1), a(3), a(4), a(0), 0),
        nr::CHMOD => (EventKind::Chmod, -1, a(0), 0, a(1), AT_FDCWD as u64, 0),
        nr::FCHMOD => (EventKind::Chmod, a(0) as i64, 0, 0, a(1), 0, 0),
        nr::FCHMODAT | nr::FCHMODAT2 => (EventKind::Chmod, -1, a(1), 0, a(2), a(0), 0),
        nr::CHOWN | nr::LCHOWN => (EventKind::Chown, -1, a(0), 0, a(1), a(2), 0),
        nr::FCHOWN => (EventKind::Chown, a(0) as i64, 0, 0, a(1), a(2), 0),
        nr::FCHOWNAT => (EventKind::Chown, -1, a(1), 0, a(2), a(3), a(0)),
        _ => return 0,
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe { path_call(ev, kind, fd, path, path2, [x, y, z]) };
    0
}

/// Fills and emits a path call: the kernel path of `fd` when it is ≥ 0, else the user string
/// `path` (read at exit); `path2` as the second path when non-null; `args` as `args[0..3]`.
///
/// # Safety
/// `ev` must come from [`call_scratch`].
#[inline(always)]
pub(super) unsafe fn path_call(
    ev: *mut CallEvent,
    kind: EventKind,
    fd: i64,
    path: u64,
    path2: u64,
    args: [u64; 3],
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        (*ev).args[0] = args[0];
        (*ev).args[1] = args[1];
        (*ev).args[2] = args[2];
        if fd >= 0 {
            if file_path(ev, fd_file(fd)).is_none() {
                count_event(Counter::KernelReadError);
            }
        } else if let Some(len) = user_string(ev, 0, USER_PATH_MAX, path) {
            (*ev).path_len = len;
        }
        if path2 != 0
            && let Some(len) = user_string(ev, CALL_PATH2_OFFSET, CALL_PATH2_MAX as u32, path2)
        {
            (*ev).path2_len = len;
            (*ev).flags |= CALL_PATH2;
        }
        emit_call(ev, kind);
    }
}

/// memfd_create and mmap with PROT_EXEC of a file.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_memory(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    if nr == nr::MMAP {
        let prot = regs.arg(2);
        let flags = regs.arg(3);
        let fd = regs.arg(4) as i64;
        // Failed mmaps return -errno (a value in the top 4095 of the address space).
        if prot & PROT_EXEC == 0
            || flags & MAP_ANONYMOUS != 0
            || fd < 0
            || (ret as u64) > (-4096i64) as u64
        {
            return 0;
        }
        let Some(ev) = call_scratch(nr, ret) else {
            return 0;
        };
        // SAFETY: `ev` is this CPU's scratch.
        unsafe {
            (*ev).args[0] = prot;
            (*ev).args[1] = flags;
            (*ev).args[2] = fd as u64;
            let Some(top) = file_path(ev, fd_file(fd)) else {
                count_event(Counter::KernelReadError);
                return 0;
            };
            if config().features & FEATURE_FILE_FILTER != 0 && matches_prefix(ev, &top) {
                count_event(Counter::FileFiltered);
                return 0;
            }
            emit_call(ev, EventKind::MmapExec);
        }
        return 0;
    }
    if nr == nr::MEMFD_CREATE {
        let Some(ev) = call_scratch(nr, ret) else {
            return 0;
        };
        // SAFETY: `ev` is this CPU's scratch.
        unsafe {
            (*ev).args[0] = regs.arg(1);
            if let Some(len) = user_string(ev, 0, 256, regs.arg(0)) {
                (*ev).path_len = len;
            }
            emit_call(ev, EventKind::MemfdCreate);
        }
    }
    0
}
