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
    /// `pt_regs::orig_ax` (the syscall number at syscall exit)
    pub regs_nr: u32,
    /// `pt_regs` members holding syscall arguments 0..6 (`di`, `si`, `dx`, `r10`, `r8`, `r9`)
    pub regs_args: [u32; 6],
    /// `task_struct::files`
    pub task_files: u32,
    /// `files_struct::fdt`
    pub files_fdt: u32,
    /// `fdtable::fd`
    pub fdt_fd: u32,
    /// `fdtable::max_fds`
    pub fdt_max_fds: u32,
    /// `file::f_path` + `path::mnt`
    pub file_vfsmount: u32,
    /// `file::private_data` (a `struct socket *` for sockets)
    pub file_private_data: u32,
    /// `dentry::d_parent`
    pub dentry_parent: u32,
    /// `vfsmount::mnt_root`
    pub vfsmount_root: u32,
    /// `mount::mnt` (the embedded `vfsmount`)
    pub mount_mnt: u32,
    /// `mount::mnt_parent`
    pub mount_parent: u32,
    /// `mount::mnt_mountpoint`
    pub mount_mountpoint: u32,
    /// `task_struct::fs`
    pub task_fs: u32,
    /// `fs_struct::root` + `path::mnt`
    pub fs_root_mnt: u32,
    /// `fs_struct::root` + `path::dentry`
    pub fs_root_dentry: u32,
    /// `task_struct::thread_pid`
    pub task_thread_pid: u32,
    /// `pid::level`
    pub pid_level: u32,
    /// `pid::numbers` + `upid::nr`
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`
    pub upid_size: u32,
    /// `socket::sk`
    pub socket_sk: u32,
    /// `socket::type`
    pub socket_type: u32,
    /// `sock_common::skc_family`
    pub skc_family: u32,
    /// `sock_common::skc_num` (local port, host order)
    pub skc_num: u32,
    /// `sock_common::skc_dport` (remote port, network order)
    pub skc_dport: u32,
    /// `sock_common::skc_rcv_saddr`
    pub skc_rcv_saddr: u32,
    /// `sock_common::skc_daddr`
    pub skc_daddr: u32,
    /// `sock_common::skc_v6_rcv_saddr`
    pub skc_v6_rcv_saddr: u32,
    /// `sock_common::skc_v6_daddr`
    pub skc_v6_daddr: u32,
    /// `task_struct::thread_info` + `thread_info::status` (x86: `TS_COMPAT` during a 32-bit
    /// syscall)
    pub task_ti_status: u32,
    /// `sock_common::skc_cookie` (the socket cookie, once something asked for it)
    pub skc_cookie: u32,
    /// `inode::i_mode`
    pub inode_mode: u32,
    /// `inode::i_rdev`
    pub inode_rdev: u32,
    /// `task_struct::cred` (the credentials the task acts with)
    pub task_cred: u32,
    /// `cred::cap_effective`
    pub cred_cap_effective: u32,
    /// `cred::cap_permitted`
    pub cred_cap_permitted: u32,
    /// `fs_struct::pwd` + `path::mnt`
    pub fs_pwd_mnt: u32,
    /// `fs_struct::pwd` + `path::dentry`
    pub fs_pwd_dentry: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
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
            regs_nr: 0,
            regs_args: [0; 6],
            task_files: 0,
            files_fdt: 0,
            fdt_fd: 0,
            fdt_max_fds: 0,
            file_vfsmount: 0,
            file_private_data: 0,
            dentry_parent: 0,
            vfsmount_root: 0,
            mount_mnt: 0,
            mount_parent: 0,
            mount_mountpoint: 0,
            task_fs: 0,
            fs_root_mnt: 0,
            fs_root_dentry: 0,
            task_thread_pid: 0,
            pid_level: 0,
            pid_numbers: 0,
            upid_size: 0,
            socket_sk: 0,
            socket_type: 0,
            skc_family: 0,
            skc_num: 0,
            skc_dport: 0,
            skc_rcv_saddr: 0,
            skc_daddr: 0,
            skc_v6_rcv_saddr: 0,
            skc_v6_daddr: 0,
            task_ti_status: 0,
            skc_cookie: 0,
            inode_mode: 0,
            inode_rdev: 0,
            task_cred: 0,
            cred_cap_effective: 0,
            cred_cap_permitted: 0,
            fs_pwd_mnt: 0,
            fs_pwd_dentry: 0,
            _pad: 0,
        }
    }
}

/// Prefixes of the kernel-side path filter.
pub const FILTER_PREFIXES: usize = 8;
/// Components of one prefix.
pub const FILTER_COMPONENTS: usize = 3;
/// Bytes of one prefix component.
pub const FILTER_NAME_MAX: usize = 16;
/// Bytes of a prefix's text form (compared with user strings of failed opens).
pub const FILTER_TEXT_MAX: usize = 32;

/// One path prefix the kernel skips for read-only opens and executable mappings, e.g.
/// `/usr/lib`: components `usr`, `lib`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct PathPrefix {
    /// Components used (0: empty slot).
    pub depth: u32,
    /// Length of each component.
    pub lens: [u32; FILTER_COMPONENTS],
    /// Components, NUL-padded.
    pub names: [[u8; FILTER_NAME_MAX]; FILTER_COMPONENTS],
    /// The prefix as text with a trailing slash (`/usr/lib/`), NUL-padded.
    pub text: [u8; FILTER_TEXT_MAX],
    /// Bytes of `text`.
    pub text_len: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

impl PathPrefix {
    /// An unused slot.
    pub const fn empty() -> Self {
        PathPrefix {
            depth: 0,
            lens: [0; FILTER_COMPONENTS],
            names: [[0; FILTER_NAME_MAX]; FILTER_COMPONENTS],
            text: [0; FILTER_TEXT_MAX],
            text_len: 0,
            _pad: 0,
        }
    }
}

/// 8-byte words of the saved registers (`struct pt_regs`, x86_64) the syscall-exit handlers
/// load from; every `regs_*` offset lies inside them.
pub const PT_REGS_WORDS: usize = 21;

/// `ProbeConfig::features`: count syscalls per thread and emit profiles.
pub const FEATURE_PROFILE: u32 = 1 << 0;
/// `ProbeConfig::features`: emit one record per syscall exit.
pub const FEATURE_FULL: u32 = 1 << 1;
/// `ProbeConfig::features`: skip read-only opens / exec mappings under the filter prefixes.
pub const FEATURE_FILE_FILTER: u32 = 1 << 2;
/// `ProbeConfig::features`: skip opens of the process's own `/proc/<pid>/…` files.
pub const FEATURE_PROC_SELF_FILTER: u32 = 1 << 3;

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
    /// `FEATURE_*` bits.
    pub features: u32,
    /// Emit a thread's syscall profile once this many ns passed since its first count.
    pub profile_interval_ns: u64,
    /// Collapse identical opens, and connections to one peer, by one thread within this many
    /// ns into one counted row (0: every open and connection is a row of its own); likewise
    /// identical DNS queries and answers. See [`super::OpenWindows`], [`super::NetWindows`]
    /// and [`super::DnsWindows`].
    pub collapse_window_ns: u64,
    /// Seed of the DNS message hash that keys [`super::DnsWindows`]: random per run, so that a
    /// workload cannot craft a name whose hash collides with another's to hide it in that
    /// name's count.
    pub dns_hash_seed: u64,
    /// Kernel-side path filter.
    pub prefixes: [PathPrefix; FILTER_PREFIXES],
}

impl ProbeConfig {
    /// The value compiled into the object: wake on every event, filter nothing, no profiles.
    pub const fn zeroed() -> Self {
        ProbeConfig {
            wakeup_bytes: 0,
            self_tgid: 0,
            features: 0,
            profile_interval_ns: 0,
            collapse_window_ns: 0,
            dns_hash_seed: 0,
            prefixes: [PathPrefix::empty(); FILTER_PREFIXES],
        }
    }
}
