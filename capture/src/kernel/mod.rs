//! What capture learns about the running kernel before loading anything: struct offsets from
//! BTF, tracepoint layouts from tracefs, the boot-time → wall-clock offset, host facts.

pub mod btf;
pub mod clock;
pub mod host;
pub mod tracefs;

use needle_common::abi::{KernelOffsets, OFFSET_MISSING};

use btf::{BtfError, KernelBtf};
use tracefs::{TraceFs, TracefsError};

/// Why the offsets the programs need could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    /// From BTF.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// From tracefs.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// An offset does not fit the 32-bit global.
    #[error("offset of {0} does not fit in 32 bits")]
    TooLarge(&'static str),
}

fn narrow(name: &'static str, v: u64) -> Result<u32, OffsetsError> {
    u32::try_from(v).map_err(|_| OffsetsError::TooLarge(name))
}

/// Resolves every offset in [`KernelOffsets`] for the running kernel.
pub fn resolve_offsets(btf: &KernelBtf, tracefs: &TraceFs) -> Result<KernelOffsets, OffsetsError> {
    let exec = tracefs.format("sched", "sched_process_exec")?;
    let exit = tracefs.format("sched", "sched_process_exit")?;
    Ok(KernelOffsets {
        task_real_parent: narrow(
            "task_struct.real_parent",
            btf.member_offset("task_struct", "real_parent")?,
        )?,
        task_tgid: narrow(
            "task_struct.tgid",
            btf.member_offset("task_struct", "tgid")?,
        )?,
        task_pid: narrow("task_struct.pid", btf.member_offset("task_struct", "pid")?)?,
        task_mm: narrow("task_struct.mm", btf.member_offset("task_struct", "mm")?)?,
        task_exit_code: narrow(
            "task_struct.exit_code",
            btf.member_offset("task_struct", "exit_code")?,
        )?,
        mm_arg_start: narrow(
            "mm_struct.arg_start",
            btf.member_offset("mm_struct", "arg_start")?,
        )?,
        mm_arg_end: narrow(
            "mm_struct.arg_end",
            btf.member_offset("mm_struct", "arg_end")?,
        )?,
        tp_exec_filename: exec.require("filename")?.offset,
        tp_exec_old_pid: exec.require("old_pid")?.offset,
        tp_exit_group_dead: exit
            .field("group_dead")
            .map_or(OFFSET_MISSING, |f| f.offset),
    })
}
