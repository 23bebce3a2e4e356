//! Process lifecycle records: exec, fork, exit.

use super::EventHeader;

/// Bytes kept of the executed file's path.
pub const EXEC_FILENAME_MAX: usize = 512;
/// Bytes kept of the new image's argv (NUL-separated, as in `/proc/<pid>/cmdline`).
pub const EXEC_ARGS_MAX: usize = 1024;

/// Bytes kept of the executable's dentry name.
pub const EXE_DNAME_MAX: usize = 32;
/// `ExecEvent::exe_flags`: `exe_ino`, `exe_dev`, `exe_nlink`, `exe_size`, `exe_dname` were read.
pub const EXE_IDENTITY: u32 = 1 << 0;
/// `ExecEvent::exe_flags`: `exe_mtime_sec` was read.
pub const EXE_MTIME: u32 = 1 << 1;

/// `ExecEvent::flags`: the path was longer than [`EXEC_FILENAME_MAX`].
pub const EXEC_FILENAME_TRUNCATED: u32 = 1 << 0;
/// `ExecEvent::flags`: argv was longer than [`EXEC_ARGS_MAX`].
pub const EXEC_ARGS_TRUNCATED: u32 = 1 << 1;
/// `ExecEvent::flags`: `cap_effective` and `cap_permitted` were read.
pub const EXEC_CAPS: u32 = 1 << 2;
/// `ExecEvent::flags`: `stdio` was read from the task's fd table.
pub const EXEC_STDIO: u32 = 1 << 3;
/// `ExecEvent::flags`: `cwd` was walked from the task's `fs->pwd`.
pub const EXEC_CWD: u32 = 1 << 4;
/// Bytes kept of the working directory (leaf-first components, as a call's `path`).
pub const EXEC_CWD_MAX: usize = 256;

/// The standard fds an exec row describes: 0, 1 and 2.
pub const STDIO_FDS: usize = 3;
/// Bytes kept of a standard fd's kernel path (leaf-first components, as a call's `path`).
pub const STDIO_PATH_MAX: usize = 256;

/// `StdioFd::flags`: the fd is open (the fd table holds a `struct file` for it).
pub const STDIO_OPEN: u32 = 1 << 0;
/// `StdioFd::flags`: `mode`, `ino` and `rdev` were read from the file's inode.
pub const STDIO_INODE: u32 = 1 << 1;
/// `StdioFd::flags`: `family`, `sock_type`, `ports` and `addr` were read from the socket.
pub const STDIO_SOCKET: u32 = 1 << 2;
/// `StdioFd::flags`: the path was walked; `path_flags` holds its `CALL_PATH_*` bits.
pub const STDIO_PATH: u32 = 1 << 3;

/// What one standard fd of a new image is, read from the task's fd table at
/// `sched_process_exec` (the files the new image inherited, as the kernel holds them).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct StdioFd {
    /// `STDIO_*` bits.
    pub flags: u32,
    /// `CALL_PATH_*` bits of the path walk (kernel, truncated, detached).
    pub path_flags: u32,
    /// `inode::i_mode` (file type and permission bits).
    pub mode: u16,
    /// Socket family (`AF_*`) of a socket.
    pub family: u16,
    /// Socket type (`SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_RAW` 3, …) of a socket.
    pub sock_type: u16,
    /// Bytes of this fd's path in `ExecEvent::stdio_paths`.
    pub path_len: u16,
    /// Device number of a character or block device (kernel encoding: major << 20 | minor).
    pub rdev: u32,
    /// Local port | remote port << 16 (host order) of an inet socket.
    pub ports: u32,
    /// Inode number (a pipe's or socket's inode tells its two ends' holders apart).
    pub ino: u64,
    /// Remote address of an inet socket: 4 bytes for IPv4, 16 for IPv6.
    pub addr: [u64; 2],
}

/// `sched_process_exec`, after the new image is in place.
///
/// The path comes from the tracepoint (the kernel's copy); argv is read from the new
/// `mm`'s `arg_start..arg_end`, which the kernel itself wrote during exec — no user pointer
/// from syscall entry is trusted.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ExecEvent {
    /// Common header; `kind` is `Exec`.
    pub header: EventHeader,
    /// Thread id that called exec (differs from `tgid` when a non-leader thread execs).
    pub old_pid: u32,
    /// `EXEC_*_TRUNCATED` bits.
    pub flags: u32,
    /// Valid bytes in `filename` (without the NUL).
    pub filename_len: u32,
    /// Valid bytes in `args`.
    pub args_len: u32,
    /// `EXE_*` bits: which of the identity fields below are valid.
    pub exe_flags: u32,
    /// Link count of the executable's inode (0: deleted or memfd).
    pub exe_nlink: u32,
    /// Device of the executable's filesystem (kernel encoding: major << 20 | minor).
    pub exe_dev: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Inode number of the executable (`mm->exe_file->f_inode->i_ino`).
    pub exe_ino: u64,
    /// Size of the executable in bytes.
    pub exe_size: u64,
    /// Last modification of the executable, seconds since the epoch.
    pub exe_mtime_sec: i64,
    /// Name of the executable's dentry (`memfd:<name>` for memfd files), NUL-padded.
    pub exe_dname: [u8; EXE_DNAME_MAX],
    /// Effective capabilities of the new image (`cred->cap_effective`), when [`EXEC_CAPS`].
    pub cap_effective: u64,
    /// Permitted capabilities of the new image (`cred->cap_permitted`), when [`EXEC_CAPS`].
    pub cap_permitted: u64,
    /// fds 0, 1, 2 of the new image, when [`EXEC_STDIO`].
    pub stdio: [StdioFd; STDIO_FDS],
    /// `CALL_PATH_*` bits of the working directory's walk, when [`EXEC_CWD`].
    pub cwd_flags: u32,
    /// Bytes of `cwd`.
    pub cwd_len: u32,
    /// Path of the executed file as the kernel resolved it.
    pub filename: [u8; EXEC_FILENAME_MAX],
    /// NUL-separated argv.
    pub args: [u8; EXEC_ARGS_MAX],
    /// Kernel paths of fds 0, 1, 2 (not for sockets), leaf-first components as in a
    /// `CallEvent`'s path; `StdioFd::path_len` bytes each.
    pub stdio_paths: [[u8; STDIO_PATH_MAX]; STDIO_FDS],
    /// The working directory (what a relative executable path was resolved against), leaf-first
    /// components as in a `CallEvent`'s path.
    pub cwd: [u8; EXEC_CWD_MAX],
}

/// `sched_process_fork` for a new process. The header describes the child
/// (`pid`/`tgid` = child, `ppid` = the parent's tgid); comm, uid and cgroup are inherited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ForkEvent {
    /// Common header; `kind` is `Fork`.
    pub header: EventHeader,
    /// Thread id of the parent thread that forked.
    pub parent_pid: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

/// `ExitEvent::flags`: this was the last thread of the process.
pub const EXIT_GROUP_DEAD: u32 = 1 << 0;

/// `sched_process_exit` of the last thread of a process.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ExitEvent {
    /// Common header; `kind` is `Exit`.
    pub header: EventHeader,
    /// `task_struct::exit_code` in wait(2) status form: `(status << 8) | signal`.
    pub exit_code: u32,
    /// `EXIT_*` bits.
    pub flags: u32,
}

const _: () = assert!(core::mem::size_of::<StdioFd>() == 48);
const _: () = assert!(core::mem::size_of::<ExecEvent>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<ForkEvent>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<ExitEvent>().is_multiple_of(8));
