//! Offsets the eBPF programs need, resolved by user space at load time.
//!
//! Rust eBPF has no CO-RE relocations, so `capture` reads `/sys/kernel/btf/vmlinux` and the
//! tracefs `format` files of the running kernel and writes the result into the programs'
//! `OFFSETS` global before loading. Nothing here is hard-coded for a kernel version.

/// Marks a field this kernel does not have (e.g. `group_dead` on older `sched_process_exit`).
pub const OFFSET_MISSING: u32 = u32::MAX;

/// Byte offsets of kernel struct members and tracepoint fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct KernelOffsets {
    /// `task_struct::real_parent`
    pub task_real_parent: u32,
    /// `task_struct::tgid`
    pub task_tgid: u32,
    /// `task_struct::pid`
    pub task_pid: u32,
    /// `task_struct::mm`
    pub task_mm: u32,
    /// `task_struct::exit_code`
    pub task_exit_code: u32,
    /// `mm_struct::arg_start` (inside an anonymous struct on current kernels)
    pub mm_arg_start: u32,
    /// `mm_struct::arg_end`
    pub mm_arg_end: u32,
    /// `sched_process_exec`: the `__data_loc` word of `filename`
    pub tp_exec_filename: u32,
    /// `sched_process_exec`: `old_pid`
    pub tp_exec_old_pid: u32,
    /// `sched_process_exit`: `group_dead`, or [`OFFSET_MISSING`]
    pub tp_exit_group_dead: u32,
}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() % 8 == 0);
