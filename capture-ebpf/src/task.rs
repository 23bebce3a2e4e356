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

/// Reads a `T` at `base + offset` from kernel memory.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an error, not a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T) }
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

/// `task->real_parent->tgid` of the current task.
#[inline(always)]
pub fn current_ppid() -> Result<u32, i32> {
    let parent: Task = read(current(), offsets().task_real_parent)?;
    tgid(parent)
}

/// `task->exit_code` of the current task.
#[inline(always)]
pub fn current_exit_code() -> Result<u32, i32> {
    read::<u32>(current(), offsets().task_exit_code)
}

/// `[mm->arg_start, mm->arg_end)` of the current task: the argv the kernel wrote at exec.
#[inline(always)]
pub fn current_args() -> Result<(u64, u64), i32> {
    let off = offsets();
    let mm: *const u8 = read(current(), off.task_mm)?;
    if mm.is_null() {
        return Err(-1);
    }
    Ok((read::<u64>(mm, off.mm_arg_start)?, read::<u64>(mm, off.mm_arg_end)?))
}
