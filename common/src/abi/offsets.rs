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
    /// `task_struct::group_leader`
    pub task_group_leader: u32,
    /// `task_struct::start_boottime` (what `/proc/<pid>/stat` reports as start time)
    pub task_start_boottime: u32,
    /// `mm_struct::exe_file`
    pub mm_exe_file: u32,
    /// `file::f_inode`
    pub file_inode: u32,
    /// `file::f_path` + `path::dentry`
    pub file_dentry: u32,
    /// `dentry::d_name` + `qstr::name`
    pub dentry_name: u32,
    /// `inode::i_ino`
    pub inode_ino: u32,
    /// `inode::i_nlink`
    pub inode_nlink: u32,
    /// `inode::i_size`
    pub inode_size: u32,
    /// `inode::i_mtime_sec` (or the older names), or [`OFFSET_MISSING`]
    pub inode_mtime_sec: u32,
    /// `inode::i_sb`
    pub inode_sb: u32,
    /// `super_block::s_dev`
    pub sb_dev: u32,
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

const _: () = assert!(core::mem::size_of::<KernelOffsets>().is_multiple_of(8));

impl KernelOffsets {
    /// All offsets zero: the value compiled into the eBPF object before user space fills it in.
    pub const fn zeroed() -> Self {
        KernelOffsets {
            task_real_parent: 0,
            task_tgid: 0,
            task_pid: 0,
            task_mm: 0,
            task_exit_code: 0,
            task_group_leader: 0,
            task_start_boottime: 0,
            mm_exe_file: 0,
            file_inode: 0,
            file_dentry: 0,
            dentry_name: 0,
            inode_ino: 0,
            inode_nlink: 0,
            inode_size: 0,
            inode_mtime_sec: OFFSET_MISSING,
            inode_sb: 0,
            sb_dev: 0,
            mm_arg_start: 0,
            mm_arg_end: 0,
            tp_exec_filename: 0,
            tp_exec_old_pid: 0,
            tp_exit_group_dead: OFFSET_MISSING,
        }
    }
}

/// Run-time settings of the eBPF programs, written by user space before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ProbeConfig {
    /// Wake the reader only when at least this many bytes are waiting in the ring buffer
    /// (the reader also polls on a timer). Batching wake-ups is what keeps the per-event cost low.
    pub wakeup_bytes: u64,
    /// Process id of capture itself: its own activity is not recorded.
    pub self_tgid: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

impl ProbeConfig {
    /// The value compiled into the object: wake on every event, filter nothing.
    pub const fn zeroed() -> Self {
        ProbeConfig {
            wakeup_bytes: 0,
            self_tgid: 0,
            _pad: 0,
        }
    }
}
