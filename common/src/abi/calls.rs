//! Records of syscalls seen at syscall exit: file operations, security-relevant calls, socket
//! state (accept/bind/listen), per-thread syscall profiles and the optional full syscall stream.
//!
//! One raw tracepoint on `sys_exit` reads the syscall number and arguments from the saved
//! `pt_regs` and tail-calls a handler per syscall number. Arguments are read *at exit*, after
//! the kernel has used them; where a path can be taken from the kernel (`struct file` behind an
//! fd, walked through dentries and mounts) it is, and [`CALL_PATH_KERNEL`] says so.

use super::EventHeader;

/// x86_64 syscall numbers the handlers know (the `syscall` column uses the same table).
pub mod nr {
    #![allow(missing_docs)]
    pub const READ: u32 = 0;
    pub const OPEN: u32 = 2;
    pub const MMAP: u32 = 9;
    pub const DUP: u32 = 32;
    pub const DUP2: u32 = 33;
    pub const SOCKET: u32 = 41;
    pub const CONNECT: u32 = 42;
    pub const ACCEPT: u32 = 43;
    pub const BIND: u32 = 49;
    pub const LISTEN: u32 = 50;
    pub const EXECVE: u32 = 59;
    pub const EXIT: u32 = 60;
    pub const TRUNCATE: u32 = 76;
    pub const FTRUNCATE: u32 = 77;
    pub const RENAME: u32 = 82;
    pub const MKDIR: u32 = 83;
    pub const RMDIR: u32 = 84;
    pub const CREAT: u32 = 85;
    pub const LINK: u32 = 86;
    pub const UNLINK: u32 = 87;
    pub const SYMLINK: u32 = 88;
    pub const CHMOD: u32 = 90;
    pub const FCHMOD: u32 = 91;
    pub const CHOWN: u32 = 92;
    pub const FCHOWN: u32 = 93;
    pub const LCHOWN: u32 = 94;
    pub const PTRACE: u32 = 101;
    pub const SETUID: u32 = 105;
    pub const SETGID: u32 = 106;
    pub const SETREUID: u32 = 113;
    pub const SETREGID: u32 = 114;
    pub const SETRESUID: u32 = 117;
    pub const SETRESGID: u32 = 119;
    pub const SETFSUID: u32 = 122;
    pub const SETFSGID: u32 = 123;
    pub const CAPSET: u32 = 126;
    pub const UTIME: u32 = 132;
    pub const MOUNT: u32 = 165;
    pub const INIT_MODULE: u32 = 175;
    pub const UTIMES: u32 = 235;
    pub const KEYCTL: u32 = 250;
    pub const OPENAT: u32 = 257;
    pub const MKDIRAT: u32 = 258;
    pub const FCHOWNAT: u32 = 260;
    pub const FUTIMESAT: u32 = 261;
    pub const UNLINKAT: u32 = 263;
    pub const RENAMEAT: u32 = 264;
    pub const LINKAT: u32 = 265;
    pub const SYMLINKAT: u32 = 266;
    pub const FCHMODAT: u32 = 268;
    pub const UNSHARE: u32 = 272;
    pub const UTIMENSAT: u32 = 280;
    pub const ACCEPT4: u32 = 288;
    pub const DUP3: u32 = 292;
    pub const SETNS: u32 = 308;
    pub const PROCESS_VM_WRITEV: u32 = 311;
    pub const FINIT_MODULE: u32 = 313;
    pub const RENAMEAT2: u32 = 316;
    pub const MEMFD_CREATE: u32 = 319;
    pub const BPF: u32 = 321;
    pub const EXECVEAT: u32 = 322;
    pub const USERFAULTFD: u32 = 323;
    pub const OPENAT2: u32 = 437;
    pub const FCHMODAT2: u32 = 452;
}

/// Slots of a syscall profile: numbers at or above it are counted in the last slot.
pub const PROFILE_SLOTS: usize = 512;

/// Bytes of [`CallEvent::data`] for the first path (a kernel walk writes at most 1023 + 256).
pub const CALL_PATH_AREA: usize = 1280;
/// Offset of the second path (rename's new name, mount's target) in [`CallEvent::data`].
pub const CALL_PATH2_OFFSET: usize = CALL_PATH_AREA;
/// Bytes kept of the second path.
pub const CALL_PATH2_MAX: usize = 256;
/// Offset of the third string (mount's filesystem type).
pub const CALL_PATH3_OFFSET: usize = CALL_PATH2_OFFSET + CALL_PATH2_MAX;
/// Bytes kept of the third string.
pub const CALL_PATH3_MAX: usize = 32;
/// Size of [`CallEvent::data`].
pub const CALL_DATA_MAX: usize = CALL_PATH3_OFFSET + CALL_PATH3_MAX;
/// Components a kernel path walk follows before it gives up (the path is then marked truncated).
pub const CALL_PATH_DEPTH: usize = 40;

/// `path` was walked from the kernel's `struct file`: NUL-terminated components, leaf first.
pub const CALL_PATH_KERNEL: u32 = 1 << 0;
/// `path` (or path2) was cut: too deep, too long, or unreadable in part.
pub const CALL_PATH_TRUNCATED: u32 = 1 << 1;
/// `dev` and `ino` identify the file.
pub const CALL_INODE: u32 = 1 << 2;
/// `path2` holds a string.
pub const CALL_PATH2: u32 = 1 << 3;
/// `path3` holds a string.
pub const CALL_PATH3: u32 = 1 << 4;
/// The path walk stopped at a filesystem root that is not the task's root (a pseudo
/// filesystem such as pipefs, or a file of another mount namespace).
pub const CALL_PATH_DETACHED: u32 = 1 << 5;
/// The socket fields (`args[0..3]` of accept/bind/listen) were read from the kernel socket.
pub const CALL_SOCKET: u32 = 1 << 6;
/// The result of a call whose row came from a hook before the call ran (an inet connect): user
/// space attaches `ret` and the local address to that row instead of writing a new one.
pub const CALL_RESULT: u32 = 1 << 7;

/// `args[0]` of a `utimes` record: the access time was set to the current time.
pub const UTIMES_ATIME_NOW: u64 = 1 << 0;
/// `args[0]` of a `utimes` record: the access time was left unchanged (`UTIME_OMIT`).
pub const UTIMES_ATIME_OMIT: u64 = 1 << 1;
/// `args[0]` of a `utimes` record: the modification time was set to the current time.
pub const UTIMES_MTIME_NOW: u64 = 1 << 2;
/// `args[0]` of a `utimes` record: the modification time was left unchanged (`UTIME_OMIT`).
pub const UTIMES_MTIME_OMIT: u64 = 1 << 3;
/// `args[0]` of a `utimes` record: the times array could not be read from the caller's
/// memory (at syscall exit); neither time is known.
pub const UTIMES_UNREAD: u64 = 1 << 4;

/// One syscall of the file, security or socket families, read at syscall exit.
///
/// `kind` (in the header) says what it is; `syscall` which call produced it. The meaning of
/// `args` depends on the syscall and is documented on the decoder; strings live in `data`:
/// `path` at 0 (`path_len` bytes), `path2` at [`CALL_PATH2_OFFSET`], `path3` at
/// [`CALL_PATH3_OFFSET`]. Only the used prefix of the record is sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct CallEvent {
    /// Common header.
    pub header: EventHeader,
    /// Syscall number (x86_64).
    pub syscall: u32,
    /// `CALL_*` bits.
    pub flags: u32,
    /// Return value: fd, 0, or -errno.
    pub ret: i64,
    /// Syscall-specific values (flags, mode, ids, socket addresses).
    pub args: [u64; 6],
    /// Device of the file (kernel encoding) when [`CALL_INODE`].
    pub dev: u32,
    /// Bytes of `path` in `data`.
    pub path_len: u16,
    /// Bytes of `path2`.
    pub path2_len: u16,
    /// Bytes of `path3`.
    pub path3_len: u16,
    /// Components in a kernel path.
    pub depth: u16,
    /// The collapse window the row opened, as window number + 1 (0: none; see
    /// `needle_common::abi::NET_WINDOW_BASE`).
    pub window: u32,
    /// Inode number when [`CALL_INODE`].
    pub ino: u64,
    /// Strings, see above.
    pub data: [u8; CALL_DATA_MAX],
}

/// Bytes of a [`CallEvent`] before `data`.
pub const CALL_FIXED: usize = core::mem::size_of::<CallEvent>() - CALL_DATA_MAX;

/// Per-thread syscall counts, emitted every profile interval and when the thread exits.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ProfileEvent {
    /// Common header; `kind` is `SyscallProfile`.
    pub header: EventHeader,
    /// Boot-time ns of the first syscall counted.
    pub since_ns: u64,
    /// Calls per syscall number since `since_ns`.
    pub counts: [u32; PROFILE_SLOTS],
}

/// Entries of the kernel's direct-mapped profile table (`PROFILE_TABLE`): a thread counts in
/// entry `tid & (PROFILE_TABLE_ENTRIES - 1)` when it is free, else in the `PROFILES` hash map.
/// A power of two; 4096 entries of [`ProfileState`] (plus an owner word) are ~8 MiB.
pub const PROFILE_TABLE_ENTRIES: u32 = 4096;

/// What the kernel keeps per thread for its profile (the value of the `PROFILES` map, and of
/// `PROFILE_TABLE` after the owner word).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ProfileState {
    /// The thread as of its first syscall counted since the last emission (filled then, with
    /// `kind` `SyscallProfile`): the header of the row user space writes for the counts a live
    /// thread still holds when the capture ends. Rows the kernel emits take a fresh header.
    pub header: EventHeader,
    /// Boot-time ns of the first syscall counted since the last emission (0: none yet).
    pub since_ns: u64,
    /// Counts since then.
    pub counts: [u32; PROFILE_SLOTS],
}

// A live thread's state becomes a `ProfileEvent` as it is: same fields, same places.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<ProfileState>() == size_of::<ProfileEvent>());
    assert!(offset_of!(ProfileState, header) == offset_of!(ProfileEvent, header));
    assert!(offset_of!(ProfileState, since_ns) == offset_of!(ProfileEvent, since_ns));
    assert!(offset_of!(ProfileState, counts) == offset_of!(ProfileEvent, counts));
    assert!(size_of::<ProfileSlot>() == 8 + size_of::<ProfileState>());
    assert!(offset_of!(ProfileSlot, state) == 8);
};

/// An entry of the kernel's direct-mapped profile table (`PROFILE_TABLE`): a thread's
/// [`ProfileState`], tagged with the thread that owns it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ProfileSlot {
    /// The owning thread id; 0 while the entry is free. 64 bits: the BPF target's atomics are.
    pub owner: u64,
    /// The owner's counts.
    pub state: ProfileState,
}

/// One syscall exit in the full stream (`--syscalls full`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct SyscallEvent {
    /// Common header; `kind` is `Syscall`.
    pub header: EventHeader,
    /// Syscall number.
    pub syscall: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Return value.
    pub ret: i64,
}

const _: () = assert!(core::mem::size_of::<CallEvent>().is_multiple_of(8));
const _: () = assert!(CALL_FIXED.is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<ProfileEvent>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<SyscallEvent>().is_multiple_of(8));
