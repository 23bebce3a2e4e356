//! What fds 0, 1 and 2 of a new image are, read at `sched_process_exec` from the kernel's fd
//! table (`current->files->fdt->fd[0..3]`): the files the image inherited as the kernel holds
//! them, not what `/proc` says later (the process may have exited or replaced them by then).
//!
//! This is what tells a reverse shell (a shell whose stdin or stdout is a TCP socket) and
//! `curl … | sh` (the downloader's stdout pipe is the shell's stdin pipe: the same inode) from
//! a shell run by a terminal or a script. Per fd: the inode's mode, number and device number;
//! for a socket its family, type and endpoints; otherwise its kernel path (an anonymous pipe's
//! walk ends at once, at pipefs's root). The exec tracepoint is a classic tracepoint, so every
//! struct is read with `bpf_probe_read_kernel` (no BTF-typed loads there).
//!
//! One fd per program run: `sched_process_exec` tail-calls `sched_process_exec_stdio` (see
//! `probes::process`) once per fd. Three path walks in one program, each leaving its own
//! shape of state behind, took the verifier past its million instructions. The working
//! directory (`fs->pwd`) is walked by the exec program itself, its only walk.

use aya_ebpf::cty::c_void;
use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use needle_common::abi::{
    CALL_PATH_DETACHED, CALL_PATH_KERNEL, CALL_PATH_TRUNCATED, EXEC_CWD, EXEC_CWD_MAX, ExecEvent,
    STDIO_FDS, STDIO_INODE, STDIO_OPEN, STDIO_PATH, STDIO_PATH_MAX, STDIO_SOCKET, StdioFd,
};

use crate::emit::call_scratch;
use crate::fs::{cwd_walk, file_walk};
use crate::maps::offsets;
use crate::task::{self, endpoints, field, read, read_span, socket_of};

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const S_IFIFO: u16 = 0o010000;

/// Bytes of `struct inode` read at once for `i_mode`, `i_ino` and `i_rdev` (offsets 0, 64 and
/// 76 on x86_64).
const INODE_SPAN: usize = 80;

/// `current->files->fdt->fd[0..3]` (null where an fd is closed).
#[inline(always)]
pub fn std_files() -> Result<[u64; STDIO_FDS], i32> {
    let off = offsets();
    let files: *const u8 = read(task::current(), off.task_files)?;
    let fdt: *const u8 = read(files, off.files_fdt)?;
    // An fd table always has room for at least BITS_PER_LONG fds; checked all the same.
    if read::<u32>(fdt, off.fdt_max_fds)? < STDIO_FDS as u32 {
        return Err(-1);
    }
    let array: *const u8 = read(fdt, off.fdt_fd)?;
    read::<[u64; STDIO_FDS]>(array, 0)
}

/// Describes fd `i` (held as `file`) in `ev.stdio[i]` and `ev.stdio_paths[i]`.
///
/// # Safety
/// `ev` must point to this CPU's exec scratch.
#[inline(always)]
pub unsafe fn fill_fd(ev: *mut ExecEvent, i: usize, file: *const u8) {
    // SAFETY: as the caller guarantees.
    let (fd, path) = unsafe {
        let Some(fd) = (*ev).stdio.get_mut(i) else {
            return;
        };
        let Some(path) = (*ev).stdio_paths.get_mut(i) else {
            return;
        };
        (fd as *mut StdioFd, path.as_mut_ptr())
    };
    // SAFETY: `fd` points into the reservation; every field is written before it is read.
    unsafe {
        *fd = StdioFd {
            flags: 0,
            path_flags: 0,
            mode: 0,
            family: 0,
            sock_type: 0,
            path_len: 0,
            rdev: 0,
            ports: 0,
            ino: 0,
            addr: [0; 2],
        };
        if file.is_null() {
            return;
        }
        (*fd).flags = STDIO_OPEN;
        let off = offsets();
        let Ok(inode) = read::<*const u8>(file, off.file_inode) else {
            return;
        };
        let lo = off.inode_mode.min(off.inode_ino).min(off.inode_rdev);
        let span = read_span::<INODE_SPAN>(inode, lo);
        let (Ok(mode), Ok(ino)) = (
            field::<u16, INODE_SPAN>(&span, inode, lo, off.inode_mode),
            field::<u64, INODE_SPAN>(&span, inode, lo, off.inode_ino),
        ) else {
            return;
        };
        (*fd).mode = mode;
        (*fd).ino = ino;
        (*fd).rdev = field::<u32, INODE_SPAN>(&span, inode, lo, off.inode_rdev).unwrap_or(0);
        (*fd).flags |= STDIO_INODE;
        if mode & S_IFMT == S_IFSOCK {
            if let Ok((sk, kind)) = socket_of(file) {
                let e = endpoints(sk);
                (*fd).family = e.family;
                (*fd).sock_type = kind;
                (*fd).ports = e.sport as u32 | ((e.dport as u32) << 16);
                (*fd).addr = e.daddr;
                (*fd).flags |= STDIO_SOCKET;
            }
            return;
        }
        // An anonymous pipe's dentry is a pseudo one, its own parent: it has no path to walk
        // (a named FIFO has a parent directory, and a path).
        if mode & S_IFMT == S_IFIFO {
            let dentry = read::<*const u8>(file, off.file_dentry);
            let parent = dentry.and_then(|d| read::<*const u8>(d, off.dentry_parent));
            if let (Ok(d), Ok(p)) = (dentry, parent)
                && d == p
            {
                return;
            }
        }
        // The walk writes into this CPU's call scratch (as a call's path: leaf first); the
        // first STDIO_PATH_MAX bytes of it are kept.
        let Some(scratch) = call_scratch(0, 0) else {
            return;
        };
        if file_walk(scratch, file).is_none() {
            return;
        }
        let len = (*scratch).path_len as usize;
        let mut flags =
            (*scratch).flags & (CALL_PATH_KERNEL | CALL_PATH_TRUNCATED | CALL_PATH_DETACHED);
        let kept = if len > STDIO_PATH_MAX {
            flags |= CALL_PATH_TRUNCATED;
            STDIO_PATH_MAX
        } else {
            len
        };
        if bpf_probe_read_kernel(
            path as *mut c_void,
            STDIO_PATH_MAX as u32,
            (*scratch).data.as_ptr() as *const c_void,
        ) < 0
        {
            return;
        }
        (*fd).path_len = kept as u16;
        (*fd).path_flags = flags;
        (*fd).flags |= STDIO_PATH;
    }
}

/// Makes fd `to` a copy of fd `from` (the same `struct file`).
///
/// # Safety
/// `ev` must point to this CPU's exec scratch.
#[inline(always)]
pub unsafe fn copy_fd(ev: *mut ExecEvent, from: usize, to: usize) {
    // SAFETY: as the caller guarantees; indices are checked.
    unsafe {
        let (Some(src), Some(src_path)) = ((*ev).stdio.get(from), (*ev).stdio_paths.get(from))
        else {
            return;
        };
        let (src, src_path) = (*src, src_path.as_ptr());
        let (Some(dst), Some(dst_path)) = ((*ev).stdio.get_mut(to), (*ev).stdio_paths.get_mut(to))
        else {
            return;
        };
        *dst = src;
        if src.flags & STDIO_PATH != 0
            && bpf_probe_read_kernel(
                dst_path.as_mut_ptr() as *mut c_void,
                STDIO_PATH_MAX as u32,
                src_path as *const c_void,
            ) < 0
        {
            dst.flags &= !STDIO_PATH;
        }
    }
}

/// Walks the task's working directory into `ev.cwd`.
///
/// # Safety
/// `ev` must point to this CPU's exec scratch.
#[inline(always)]
pub unsafe fn fill_cwd(ev: *mut ExecEvent) {
    // SAFETY: as the caller guarantees; the walk writes this CPU's call scratch.
    unsafe {
        let Some(scratch) = call_scratch(0, 0) else {
            return;
        };
        if cwd_walk(scratch).is_none() {
            return;
        }
        let len = (*scratch).path_len as usize;
        let mut flags =
            (*scratch).flags & (CALL_PATH_KERNEL | CALL_PATH_TRUNCATED | CALL_PATH_DETACHED);
        let kept = if len > EXEC_CWD_MAX {
            flags |= CALL_PATH_TRUNCATED;
            EXEC_CWD_MAX
        } else {
            len
        };
        if bpf_probe_read_kernel(
            (*ev).cwd.as_mut_ptr() as *mut c_void,
            EXEC_CWD_MAX as u32,
            (*scratch).data.as_ptr() as *const c_void,
        ) < 0
        {
            return;
        }
        (*ev).cwd_len = kept as u32;
        (*ev).cwd_flags = flags;
        (*ev).flags |= EXEC_CWD;
    }
}
