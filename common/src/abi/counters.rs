//! Per-CPU counters the eBPF programs keep, so that nothing is dropped silently.
//!
//! One `PerCpuArray<u64>` holds them: slots `0..EVENT_KINDS.len()` count ring-buffer reserve
//! failures per event kind (events lost), the slots after them the other reasons an event
//! was not emitted.

use super::kind::EVENT_KINDS;

/// A counter slot beyond the per-kind loss slots.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// fork events skipped in the kernel because the child is a thread, not a process.
    ForkThreadFiltered = EVENT_KINDS.len() as u32,
    /// exit events skipped because the exiting task was not the last thread of its process.
    ExitThreadFiltered,
    /// exec events whose argv could not be read from the new image's memory.
    ExecArgvReadError,
    /// Reads of kernel structs that failed (e.g. an offset that does not fit this kernel).
    KernelReadError,
    /// File events skipped by the kernel-side path filter (read-only opens and executable
    /// mappings of system library paths).
    FileFiltered,
    /// Opens of a process's own `/proc/<pid>/…` files skipped in the kernel.
    ProcSelfFiltered,
    /// bpf(2) calls skipped because the command only reads or iterates (lookups, `*_GET_NEXT_ID`).
    BpfReadFiltered,
    /// Syscall profiles that could not start because the per-thread map was full.
    ProfileMapFull,
    /// Opens counted into a collapse window instead of written as a row of their own (each is
    /// in the `count` of the row that closes the window).
    OpenCollapsed,
    /// Opens or connections that could not be collapsed because a per-thread window map was
    /// full (they are written one row each).
    CollapseMapFull,
    /// 32-bit (compat) syscalls (int 0x80 or the ia32 entry on a 64-bit kernel) that reached a
    /// recording handler: their numbers and registers follow the ia32 table, so they are counted
    /// here instead of being decoded as the 64-bit call of the same number. (One whose 64-bit
    /// twin has no handler — a 32-bit open is 64-bit fstat — is not counted.)
    CompatSyscall,
    /// Connects, UDP sends and accepts counted into a network collapse window instead of
    /// written as a row of their own (each is in the `count` of a row that closes the window).
    NetCollapsed,
    /// DNS queries and answers counted into a DNS collapse window instead of written as a row
    /// of their own (each is in the `count` of the row that closes the window).
    DnsCollapsed,
}

impl Counter {
    /// Every non-loss counter, in slot order.
    pub const ALL: [Counter; 13] = [
        Counter::ForkThreadFiltered,
        Counter::ExitThreadFiltered,
        Counter::ExecArgvReadError,
        Counter::KernelReadError,
        Counter::FileFiltered,
        Counter::ProcSelfFiltered,
        Counter::BpfReadFiltered,
        Counter::ProfileMapFull,
        Counter::OpenCollapsed,
        Counter::CollapseMapFull,
        Counter::CompatSyscall,
        Counter::NetCollapsed,
        Counter::DnsCollapsed,
    ];

    /// Name used in summaries and file metadata.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::ForkThreadFiltered => "fork_thread_filtered",
            Counter::ExitThreadFiltered => "exit_thread_filtered",
            Counter::ExecArgvReadError => "exec_argv_read_error",
            Counter::KernelReadError => "kernel_read_error",
            Counter::FileFiltered => "file_filtered",
            Counter::ProcSelfFiltered => "proc_self_filtered",
            Counter::BpfReadFiltered => "bpf_read_filtered",
            Counter::ProfileMapFull => "profile_map_full",
            Counter::OpenCollapsed => "open_collapsed",
            Counter::CollapseMapFull => "collapse_map_full",
            Counter::CompatSyscall => "compat_syscall",
            Counter::NetCollapsed => "net_collapsed",
            Counter::DnsCollapsed => "dns_collapsed",
        }
    }
}

/// Size of the counters map.
pub const COUNTER_SLOTS: u32 = EVENT_KINDS.len() as u32 + Counter::ALL.len() as u32;
