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
    let m = |strukt: &'static str, member: &'static str| -> Result<u32, OffsetsError> {
        narrow(member, btf.member_offset(strukt, member)?)
    };
    Ok(KernelOffsets {
        task_real_parent: m("task_struct", "real_parent")?,
        task_tgid: m("task_struct", "tgid")?,
        task_pid: m("task_struct", "pid")?,
        task_mm: m("task_struct", "mm")?,
        task_exit_code: m("task_struct", "exit_code")?,
        task_group_leader: m("task_struct", "group_leader")?,
        task_start_boottime: m("task_struct", "start_boottime")?,
        mm_arg_start: m("mm_struct", "arg_start")?,
        mm_arg_end: m("mm_struct", "arg_end")?,
        mm_exe_file: m("mm_struct", "exe_file")?,
        file_inode: m("file", "f_inode")?,
        file_dentry: narrow(
            "file.f_path.dentry",
            btf.member_offset("file", "f_path")? + btf.member_offset("path", "dentry")?,
        )?,
        dentry_name: narrow(
            "dentry.d_name.name",
            btf.member_offset("dentry", "d_name")? + btf.member_offset("qstr", "name")?,
        )?,
        inode_ino: m("inode", "i_ino")?,
        inode_nlink: narrow("i_nlink", btf.first_member_offset("inode", &["i_nlink", "__i_nlink"])?)?,
        inode_size: m("inode", "i_size")?,
        // Renamed across versions; tv_sec leads timespec64 in the older layouts.
        inode_mtime_sec: btf
            .first_member_offset("inode", &["i_mtime_sec", "__i_mtime", "i_mtime"])
            .ok()
            .and_then(|o| u32::try_from(o).ok())
            .unwrap_or(OFFSET_MISSING),
        inode_sb: m("inode", "i_sb")?,
        sb_dev: m("super_block", "s_dev")?,
        tp_exec_filename: exec.require("filename")?.offset,
        tp_exec_old_pid: exec.require("old_pid")?.offset,
        tp_exit_group_dead: exit.field("group_dead").map_or(OFFSET_MISSING, |f| f.offset),
    })
}
