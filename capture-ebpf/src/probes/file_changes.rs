//! Changes to the file tree and to file metadata at syscall exit (tail-called from `sys_exit`),
//! the traces of tampering and staging that Falco's and GuardDuty's rules look for:
//!
//! * link/linkat (`path` = the existing file, `path2` = the new name; `linkat(fd, "", …,
//!   AT_EMPTY_PATH)` gives the fd's kernel path) and symlink/symlinkat (`path` = the target
//!   text, `path2` = the link): a link over `/etc/shadow`, a hard link that keeps a file alive;
//! * mkdir/mkdirat (`args[0]` = mode): hidden and binary directories;
//! * truncate (user path) / ftruncate (the fd's kernel path), `args[0]` = the new length: log
//!   wiping;
//! * utimensat/futimens (a null path or `AT_EMPTY_PATH`: the fd's kernel path), utimes,
//!   futimesat, utime: timestomping. `args[0]` = `UTIMES_*` bits, `args[1]`/`args[2]` = the
//!   access/modification time in ns when given explicitly. The times array is read from the
//!   caller's memory at exit (the kernel copied it at entry; a thread could change it in
//!   between, which the schema says).
//!
//! Paths given as strings are the user's, read at exit (the file may be gone), as for unlink.

use aya_ebpf::helpers::bpf_probe_read_user;
use aya_ebpf::macros::btf_tracepoint;
use aya_ebpf::programs::BtfTracePointContext;
use needle_common::abi::{
    EventKind, UTIMES_ATIME_NOW, UTIMES_ATIME_OMIT, UTIMES_MTIME_NOW, UTIMES_MTIME_OMIT,
    UTIMES_UNREAD, nr,
};

use super::files::path_call;
use super::syscalls::Regs;
use crate::emit::call_scratch;

const AT_FDCWD: u64 = -100i64 as u64;
const AT_EMPTY_PATH: u64 = 0x1000;
/// `timespec::tv_nsec` values of utimensat that are not times.
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;
const NS: i64 = 1_000_000_000;

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_file_change(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    let Some(ev) = call_scratch(nr, ret) else {
        return 0;
    };
    let a = |i| regs.arg(i);
    // The fd itself is the file when the path is empty and AT_EMPTY_PATH is set.
    let empty_path = |path: u64, flags: u64| {
        flags & AT_EMPTY_PATH != 0
            // SAFETY: bpf_probe_read_user checks the address.
            && unsafe { bpf_probe_read_user(path as *const u8) }.is_ok_and(|b| b == 0)
    };
    // (kind, fd for a kernel path or -1, user path, user path2, args)
    let (kind, fd, path, path2, args) = match nr {
        nr::LINK => (EventKind::Link, -1, a(0), a(1), [0, 0, 0]),
        nr::LINKAT => {
            let fd = if empty_path(a(1), a(4)) {
                a(0) as i64
            } else {
                -1
            };
            (EventKind::Link, fd, a(1), a(3), [a(4), a(0), a(2)])
        }
        nr::SYMLINK => (EventKind::Symlink, -1, a(0), a(1), [0, AT_FDCWD, 0]),
        nr::SYMLINKAT => (EventKind::Symlink, -1, a(0), a(2), [0, a(1), 0]),
        nr::MKDIR => (EventKind::Mkdir, -1, a(0), 0, [a(1), AT_FDCWD, 0]),
        nr::MKDIRAT => (EventKind::Mkdir, -1, a(1), 0, [a(2), a(0), 0]),
        nr::TRUNCATE => (EventKind::Truncate, -1, a(0), 0, [a(1), 0, 0]),
        nr::FTRUNCATE => (EventKind::Truncate, a(0) as i64, 0, 0, [a(1), 0, 0]),
        nr::UTIMENSAT | nr::FUTIMESAT | nr::UTIMES | nr::UTIME => {
            let (path, times, flags) = match nr {
                nr::UTIMENSAT => (a(1), a(2), a(3)),
                nr::FUTIMESAT => (a(1), a(2), 0),
                _ => (a(0), a(1), 0),
            };
            let at_fd = matches!(nr, nr::UTIMENSAT | nr::FUTIMESAT);
            // futimens(fd, …) is utimensat(fd, NULL, …).
            let fd = if at_fd && (path == 0 || empty_path(path, flags)) {
                a(0) as i64
            } else {
                -1
            };
            (EventKind::Utimes, fd, path, 0, utimes_args(nr, times))
        }
        _ => return 0,
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe { path_call(ev, kind, fd, path, path2, args) };
    0
}

/// `[UTIMES_* bits, atime ns, mtime ns]` from the caller's times argument (null: both now).
#[inline(always)]
fn utimes_args(nr: u32, times: u64) -> [u64; 3] {
    if times == 0 {
        return [UTIMES_ATIME_NOW | UTIMES_MTIME_NOW, 0, 0];
    }
    // utimensat: struct timespec[2]; utimes/futimesat: struct timeval[2]; utime: struct
    // utimbuf { actime, modtime } in seconds.
    let read = |i: u64| {
        // SAFETY: bpf_probe_read_user checks the address.
        unsafe { bpf_probe_read_user((times + 8 * i) as *const i64) }
    };
    let words = if nr == nr::UTIME {
        (read(0), Ok(0), read(1), Ok(0))
    } else {
        (read(0), read(1), read(2), read(3))
    };
    let (Ok(a_sec), Ok(a_frac), Ok(m_sec), Ok(m_frac)) = words else {
        return [UTIMES_UNREAD, 0, 0];
    };
    let mut bits = 0;
    let frac_ns = |frac: i64| {
        if nr == nr::UTIMENSAT {
            frac
        } else {
            frac * 1000
        }
    };
    let mut at = 0;
    let mut mt = 0;
    if nr == nr::UTIMENSAT && a_frac == UTIME_NOW {
        bits |= UTIMES_ATIME_NOW;
    } else if nr == nr::UTIMENSAT && a_frac == UTIME_OMIT {
        bits |= UTIMES_ATIME_OMIT;
    } else {
        at = a_sec.wrapping_mul(NS).wrapping_add(frac_ns(a_frac));
    }
    if nr == nr::UTIMENSAT && m_frac == UTIME_NOW {
        bits |= UTIMES_MTIME_NOW;
    } else if nr == nr::UTIMENSAT && m_frac == UTIME_OMIT {
        bits |= UTIMES_MTIME_OMIT;
    } else {
        mt = m_sec.wrapping_mul(NS).wrapping_add(frac_ns(m_frac));
    }
    [bits, at as u64, mt as u64]
}
