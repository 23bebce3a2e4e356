//! Kernel/user ABI: what the eBPF programs emit and the globals they read.
//!
//! Every record in the ring buffer starts with an [`EventHeader`]; its `kind` says which
//! struct follows. Structs are `#[repr(C)]`, sizes are multiples of 8 (the ring buffer's
//! alignment) and padding is spelled out, so the layout is the same on both sides; with the
//! `user` feature, `bytemuck::Pod` proves at compile time that no byte is implicit padding.

mod calls;
mod collapse;
mod counters;
mod kind;
mod network;
mod offsets;
mod process;

pub use calls::{
    CALL_DATA_MAX, CALL_FIXED, CALL_INODE, CALL_PATH_AREA, CALL_PATH_DEPTH, CALL_PATH_DETACHED,
    CALL_PATH_KERNEL, CALL_PATH_TRUNCATED, CALL_PATH2, CALL_PATH2_MAX, CALL_PATH2_OFFSET,
    CALL_PATH3, CALL_PATH3_MAX, CALL_PATH3_OFFSET, CALL_RESULT, CALL_SOCKET, CallEvent,
    PROFILE_SLOTS, PROFILE_TABLE_ENTRIES, ProfileEvent, ProfileSlot, ProfileState, SyscallEvent,
    UTIMES_ATIME_NOW, UTIMES_ATIME_OMIT, UTIMES_MTIME_NOW, UTIMES_MTIME_OMIT, UTIMES_UNREAD, nr,
};
pub use collapse::{
    DNS_WINDOW_BASE, DNS_WINDOWS, DnsWindow, DnsWindows, NET_WINDOW_BASE, NET_WINDOWS, NetWindow,
    NetWindows, OPEN_WINDOWS, OpenWindow, OpenWindows, REPEAT_THREAD_DONE, RepeatEvent,
    THREAD_WINDOWS, WINDOW_EMPTY, WINDOW_FILE_FILTERED, WINDOW_PROC_SELF_FILTERED, WINDOW_ROW,
};
pub use counters::{COUNTER_SLOTS, Counter};
pub use kind::{EVENT_KINDS, EventKind, Family, UnknownEventKind};
pub use network::{
    AF_INET, AF_INET6, DNS_EGRESS, DNS_FIXED, DNS_INGRESS, DNS_PAYLOAD_MAX, DnsEvent, NetEvent,
};
pub use offsets::{
    FEATURE_FILE_FILTER, FEATURE_FULL, FEATURE_PROC_SELF_FILTER, FEATURE_PROFILE,
    FILTER_COMPONENTS, FILTER_NAME_MAX, FILTER_PREFIXES, FILTER_TEXT_MAX, KernelOffsets,
    OFFSET_MISSING, PT_REGS_WORDS, PathPrefix, ProbeConfig,
};
pub use process::{
    EXE_DNAME_MAX, EXE_IDENTITY, EXE_MTIME, EXEC_ARGS_MAX, EXEC_ARGS_TRUNCATED, EXEC_CAPS,
    EXEC_CWD, EXEC_CWD_MAX, EXEC_FILENAME_MAX, EXEC_FILENAME_TRUNCATED, EXEC_STDIO,
    EXIT_GROUP_DEAD, ExecEvent, ExitEvent, ForkEvent, STDIO_FDS, STDIO_INODE, STDIO_OPEN,
    STDIO_PATH, STDIO_PATH_MAX, STDIO_SOCKET, StdioFd,
};

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;

/// `EventHeader::shape`: the kind's own record struct.
pub const SHAPE_PRIMARY: u32 = 0;
/// `EventHeader::shape`: a [`CallEvent`].
pub const SHAPE_CALL: u32 = 1;
/// `EventHeader::shape`: a [`RepeatEvent`] (the count of a closed collapse window).
pub const SHAPE_REPEAT: u32 = 2;

/// The first bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct EventHeader {
    /// An [`EventKind`] id.
    pub kind: u32,
    /// CPU the event was recorded on.
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, including suspend.
    pub ktime_ns: u64,
    /// cgroup v2 id of the task (`bpf_get_current_cgroup_id`); tells containers apart.
    pub cgroup_id: u64,
    /// Thread id (kernel `pid`).
    pub pid: u32,
    /// Process id (kernel `tgid`).
    pub tgid: u32,
    /// Process id of the parent (`real_parent->tgid`).
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Which struct follows for this kind: [`SHAPE_PRIMARY`], or [`SHAPE_CALL`] for a
    /// [`CallEvent`] (kinds such as `connect` come from a hook and from syscall exit).
    pub shape: u32,
    /// Start time (boot clock, ns) of the process (`group_leader->start_boottime`): with `tgid`
    /// it names the process uniquely, even across pid reuse.
    pub start_ns: u64,
    /// Start time of the parent process (`real_parent->group_leader->start_boottime`).
    pub parent_start_ns: u64,
    /// `task_struct::comm`, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

const _: () = assert!(core::mem::size_of::<EventHeader>() == 80);
