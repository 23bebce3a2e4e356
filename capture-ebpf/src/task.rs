//! Reads of `task_struct` and `mm_struct` fields at offsets resolved from the running kernel's BTF.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};

use crate::maps::offsets;

/// An opaque kernel `task_struct *`.
pub type Task = *const u8;

/// The current task.
#[inline(always)]
pub fn current() -> Task {
    // SAFETY: no preconditions.
    unsafe { bpf_get_current_task() as Task }
}

/// The current task as a BTF-typed pointer (`bpf_get_current_task_btf`), for [`load`]. Only in
/// `tp_btf` programs.
#[inline(always)]
pub fn current_btf() -> Task {
    // SAFETY: no preconditions.
    unsafe { aya_ebpf::helpers::generated::bpf_get_current_task_btf() as Task }
}

/// Loads a `T` at `base + offset` directly, where `base` is a BTF-typed kernel pointer (a
/// `tp_btf` argument, [`current_btf`], or a pointer field loaded from one) and `offset` is a
/// field of [`offsets`] (read-only, so a constant to the verifier). The verifier checks the
/// access against the kernel's BTF and the JIT emits one load guarded by the exception table:
/// a bad address reads as 0. A `bpf_probe_read_kernel` costs ~25 ns here; this costs one load.
/// A pointer loaded this way stays BTF-typed, so it can be loaded from again, except a pointer
/// to a pointer (an array of `struct file *`), which the verifier types as a plain number.
#[inline(always)]
pub fn load<T>(base: *const u8, offset: u32) -> T {
    // SAFETY: see above; the kernel guards the load.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize) as *const T) }
}

/// Reads a `T` at `base + offset` from kernel memory.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an error, not a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T) }
}

/// Reads `N` bytes at `base + lo` in one call: several fields of one struct for the price of
/// one kernel read, taken out with [`field`]. `lo` is the smallest of their offsets.
#[inline(always)]
pub fn read_span<const N: usize>(base: *const u8, lo: u32) -> Result<[u8; N], i32> {
    read::<[u8; N]>(base, lo)
}

/// The `T` at struct offset `offset` of a span read from offset `lo`; a field outside the span
/// (a kernel laid out unlike the ones the span was sized for) is read on its own.
#[inline(always)]
pub fn field<T: Copy, const N: usize>(
    span: &Result<[u8; N], i32>,
    base: *const u8,
    lo: u32,
    offset: u32,
) -> Result<T, i32> {
    let rel = offset.wrapping_sub(lo) as usize;
    match span {
        Ok(bytes) if rel <= N && N - rel >= core::mem::size_of::<T>() => {
            // SAFETY: `rel + size_of::<T>()` lies inside `bytes` (checked above).
            Ok(unsafe { core::ptr::read_unaligned(bytes.as_ptr().add(rel) as *const T) })
        }
        Ok(_) => read::<T>(base, offset),
        Err(e) => Err(*e),
    }
}

/// `task->tgid`.
#[inline(always)]
pub fn tgid(task: Task) -> Result<u32, i32> {
    read::<u32>(task, offsets().task_tgid)
}

/// `task->pid`.
#[inline(always)]
pub fn pid(task: Task) -> Result<u32, i32> {
    read::<u32>(task, offsets().task_pid)
}

/// `task->real_parent` of the current task.
#[inline(always)]
pub fn current_parent() -> Result<Task, i32> {
    read(current(), offsets().task_real_parent)
}

/// Start time (boot clock, ns) of the process `task` belongs to: `group_leader->start_boottime`.
#[inline(always)]
pub fn process_start_ns(task: Task) -> Result<u64, i32> {
    let off = offsets();
    let leader: Task = read(task, off.task_group_leader)?;
    read::<u64>(leader, off.task_start_boottime)
}

/// `task->start_boottime` of a task that is its own group leader (a new process in fork).
#[inline(always)]
pub fn start_ns(task: Task) -> Result<u64, i32> {
    read::<u64>(task, offsets().task_start_boottime)
}

/// x86 `TS_COMPAT` in `thread_info.status`: the task is in a 32-bit syscall (int 0x80 or the
/// ia32 entry), whose numbers and argument registers are not the 64-bit table's.
const TS_COMPAT: u32 = 0x0002;

/// True while the current task executes a 32-bit syscall. Only in `tp_btf` programs.
#[inline(always)]
pub fn in_compat_syscall() -> bool {
    load::<u32>(current_btf(), offsets().task_ti_status) & TS_COMPAT != 0
}

/// `task->exit_code` of the current task.
#[inline(always)]
pub fn current_exit_code() -> Result<u32, i32> {
    read::<u32>(current(), offsets().task_exit_code)
}

/// Identity of the current task's executable, read from `mm->exe_file` (the file the kernel
/// actually mapped, not a path that could have been swapped since).
pub struct ExeIdentity {
    pub ino: u64,
    pub nlink: u32,
    pub dev: u32,
    pub size: u64,
    pub mtime_sec: Option<i64>,
    pub dname: *const u8,
}

#[inline(always)]
pub fn current_exe() -> Result<ExeIdentity, i32> {
    let off = offsets();
    let mm: *const u8 = read(current(), off.task_mm)?;
    let file: *const u8 = read(mm, off.mm_exe_file)?;
    let inode: *const u8 = read(file, off.file_inode)?;
    let dentry: *const u8 = read(file, off.file_dentry)?;
    let sb: *const u8 = read(inode, off.inode_sb)?;
    Ok(ExeIdentity {
        ino: read::<u64>(inode, off.inode_ino)?,
        nlink: read::<u32>(inode, off.inode_nlink)?,
        dev: read::<u32>(sb, off.sb_dev)?,
        size: read::<u64>(inode, off.inode_size)?,
        mtime_sec: if off.inode_mtime_sec == needle_common::abi::OFFSET_MISSING {
            None
        } else {
            read::<i64>(inode, off.inode_mtime_sec).ok()
        },
        dname: read::<*const u8>(dentry, off.dentry_name)?,
    })
}

/// `[mm->arg_start, mm->arg_end)` of the current task: the argv the kernel wrote at exec.
#[inline(always)]
pub fn current_args() -> Result<(u64, u64), i32> {
    let off = offsets();
    let mm: *const u8 = read(current(), off.task_mm)?;
    if mm.is_null() {
        return Err(-1);
    }
    Ok((
        read::<u64>(mm, off.mm_arg_start)?,
        read::<u64>(mm, off.mm_arg_end)?,
    ))
}

/// The current process's id as its own pid namespace sees it (what its `/proc/self` names):
/// `group_leader->thread_pid->numbers[level].nr`.
#[inline(always)]
pub fn current_ns_tgid() -> Result<u32, i32> {
    let off = offsets();
    let leader: Task = read(current(), off.task_group_leader)?;
    let pid: *const u8 = read(leader, off.task_thread_pid)?;
    let level = read::<u32>(pid, off.pid_level)?;
    if level > 32 {
        return Err(-1);
    }
    read::<u32>(
        pid,
        off.pid_numbers
            .wrapping_add(level.wrapping_mul(off.upid_size)),
    )
}

/// Bytes of `struct socket` read at once for its `type` and `sk` (offsets 4 and 24 on x86_64).
const SOCKET_SPAN: usize = 32;

/// The `struct sock *` behind a socket file (`file->private_data->sk`) and the socket's type.
#[inline(always)]
pub fn socket_of(file: *const u8) -> Result<(*const u8, u16), i32> {
    let off = offsets();
    let socket: *const u8 = read(file, off.file_private_data)?;
    let lo = off.socket_sk.min(off.socket_type);
    let span = read_span::<SOCKET_SPAN>(socket, lo);
    let sk: *const u8 = field(&span, socket, lo, off.socket_sk)?;
    let kind = field::<u16, SOCKET_SPAN>(&span, socket, lo, off.socket_type)?;
    Ok((sk, kind))
}

/// Bytes of `struct sock_common` read at once for the IPv4 addresses, the ports and the
/// family (offsets 0 to 18 on x86_64), and for the two IPv6 addresses (56 to 88).
const V4_SPAN: usize = 24;
const V6_SPAN: usize = 32;

/// The endpoints of a socket, from its `struct sock_common`.
pub struct Endpoints {
    pub family: u16,
    /// Local port, host order.
    pub sport: u16,
    /// Remote port, host order.
    pub dport: u16,
    /// Local address (IPv4: the low 4 bytes of the first word).
    pub saddr: [u64; 2],
    /// Remote address.
    pub daddr: [u64; 2],
}

/// Family, ports and addresses of `sk`: two kernel reads (three for IPv6), not one per field.
#[inline(always)]
pub fn endpoints(sk: *const u8) -> Endpoints {
    let off = offsets();
    let lo = off
        .skc_daddr
        .min(off.skc_rcv_saddr)
        .min(off.skc_dport)
        .min(off.skc_num)
        .min(off.skc_family);
    let span = read_span::<V4_SPAN>(sk, lo);
    let family = field::<u16, V4_SPAN>(&span, sk, lo, off.skc_family).unwrap_or(0);
    let mut e = Endpoints {
        family,
        sport: field::<u16, V4_SPAN>(&span, sk, lo, off.skc_num).unwrap_or(0),
        dport: u16::from_be(field::<u16, V4_SPAN>(&span, sk, lo, off.skc_dport).unwrap_or(0)),
        saddr: [0; 2],
        daddr: [0; 2],
    };
    if family == needle_common::abi::AF_INET {
        e.saddr[0] = field::<u32, V4_SPAN>(&span, sk, lo, off.skc_rcv_saddr).unwrap_or(0) as u64;
        e.daddr[0] = field::<u32, V4_SPAN>(&span, sk, lo, off.skc_daddr).unwrap_or(0) as u64;
    } else if family == needle_common::abi::AF_INET6 {
        let lo6 = off.skc_v6_rcv_saddr.min(off.skc_v6_daddr);
        let span6 = read_span::<V6_SPAN>(sk, lo6);
        e.saddr =
            field::<[u64; 2], V6_SPAN>(&span6, sk, lo6, off.skc_v6_rcv_saddr).unwrap_or([0; 2]);
        e.daddr = field::<[u64; 2], V6_SPAN>(&span6, sk, lo6, off.skc_v6_daddr).unwrap_or([0; 2]);
    }
    e
}

/// Bytes of `struct cred` read at once for `cap_permitted` and `cap_effective` (adjacent).
const CAPS_SPAN: usize = 16;

/// Effective and permitted capabilities of the current task (`current->cred`).
#[inline(always)]
pub fn current_caps() -> Result<(u64, u64), i32> {
    let off = offsets();
    let cred: *const u8 = read(current(), off.task_cred)?;
    let lo = off.cred_cap_effective.min(off.cred_cap_permitted);
    let span = read_span::<CAPS_SPAN>(cred, lo);
    Ok((
        field::<u64, CAPS_SPAN>(&span, cred, lo, off.cred_cap_effective)?,
        field::<u64, CAPS_SPAN>(&span, cred, lo, off.cred_cap_permitted)?,
    ))
}
