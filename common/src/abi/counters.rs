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
}

impl Counter {
    /// Every non-loss counter, in slot order.
    pub const ALL: [Counter; 4] = [
        Counter::ForkThreadFiltered,
        Counter::ExitThreadFiltered,
        Counter::ExecArgvReadError,
        Counter::KernelReadError,
    ];

    /// Name used in summaries and file metadata.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::ForkThreadFiltered => "fork_thread_filtered",
            Counter::ExitThreadFiltered => "exit_thread_filtered",
            Counter::ExecArgvReadError => "exec_argv_read_error",
            Counter::KernelReadError => "kernel_read_error",
        }
    }
}

/// Size of the counters map.
pub const COUNTER_SLOTS: u32 = EVENT_KINDS.len() as u32 + Counter::ALL.len() as u32;
