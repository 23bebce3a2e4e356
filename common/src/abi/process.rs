//! Process lifecycle records: exec, fork, exit.

use super::EventHeader;

/// Bytes kept of the executed file's path.
pub const EXEC_FILENAME_MAX: usize = 512;
/// Bytes kept of the new image's argv (NUL-separated, as in `/proc/<pid>/cmdline`).
pub const EXEC_ARGS_MAX: usize = 1024;

/// `ExecEvent::flags`: the path was longer than [`EXEC_FILENAME_MAX`].
pub const EXEC_FILENAME_TRUNCATED: u32 = 1 << 0;
/// `ExecEvent::flags`: argv was longer than [`EXEC_ARGS_MAX`].
pub const EXEC_ARGS_TRUNCATED: u32 = 1 << 1;

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
    /// Path of the executed file as the kernel resolved it.
    pub filename: [u8; EXEC_FILENAME_MAX],
    /// NUL-separated argv.
    pub args: [u8; EXEC_ARGS_MAX],
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

const _: () = assert!(core::mem::size_of::<ExecEvent>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<ForkEvent>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<ExitEvent>().is_multiple_of(8));
