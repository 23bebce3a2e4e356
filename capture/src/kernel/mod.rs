//! What capture learns about the running kernel before loading anything: struct offsets from
//! BTF, tracepoint layouts from tracefs, the boot-time → wall-clock offset, host facts.

pub mod btf;
pub mod clock;
pub mod host;
pub mod tracefs;

use needle_common::abi::{KernelOffsets, OFFSET_MISSING, PT_REGS_WORDS};

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
    /// `struct pt_regs` is laid out unlike x86_64's (the handlers load registers from its
    /// first words).
    #[error("pt_regs.{0} lies beyond the {PT_REGS_WORDS} words of an x86_64 pt_regs")]
    RegsLayout(&'static str),
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
    // `a.b` then `b.c`: a member inside an embedded struct.
    let m2 = |s1: &'static str,
              m1: &'static str,
              s2: &'static str,
              m2: &'static str|
     -> Result<u32, OffsetsError> {
        narrow(m2, btf.member_offset(s1, m1)? + btf.member_offset(s2, m2)?)
    };
    let regs = |member: &'static str| -> Result<u32, OffsetsError> {
        let off = m("pt_regs", member)?;
        if off as usize + 8 > PT_REGS_WORDS * 8 {
            return Err(OffsetsError::RegsLayout(member));
        }
        Ok(off)
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
        inode_nlink: narrow(
            "i_nlink",
            btf.first_member_offset("inode", &["i_nlink", "__i_nlink"])?,
        )?,
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
        tp_exit_group_dead: exit
            .field("group_dead")
            .map_or(OFFSET_MISSING, |f| f.offset),
        regs_nr: regs("orig_ax")?,
        regs_args: [
            regs("di")?,
            regs("si")?,
            regs("dx")?,
            regs("r10")?,
            regs("r8")?,
            regs("r9")?,
        ],
        task_files: m("task_struct", "files")?,
        files_fdt: m("files_struct", "fdt")?,
        fdt_fd: m("fdtable", "fd")?,
        fdt_max_fds: m("fdtable", "max_fds")?,
        file_vfsmount: m2("file", "f_path", "path", "mnt")?,
        file_private_data: m("file", "private_data")?,
        dentry_parent: m("dentry", "d_parent")?,
        vfsmount_root: m("vfsmount", "mnt_root")?,
        mount_mnt: m("mount", "mnt")?,
        mount_parent: m("mount", "mnt_parent")?,
        mount_mountpoint: m("mount", "mnt_mountpoint")?,
        task_fs: m("task_struct", "fs")?,
        fs_root_mnt: m2("fs_struct", "root", "path", "mnt")?,
        fs_root_dentry: m2("fs_struct", "root", "path", "dentry")?,
        task_thread_pid: m("task_struct", "thread_pid")?,
        pid_level: m("pid", "level")?,
        pid_numbers: m2("pid", "numbers", "upid", "nr")?,
        upid_size: narrow("upid", btf.struct_size("upid")?)?,
        socket_sk: m("socket", "sk")?,
        socket_type: m("socket", "type")?,
        skc_family: m("sock_common", "skc_family")?,
        skc_num: m("sock_common", "skc_num")?,
        skc_dport: m("sock_common", "skc_dport")?,
        skc_rcv_saddr: m("sock_common", "skc_rcv_saddr")?,
        skc_daddr: m("sock_common", "skc_daddr")?,
        skc_v6_rcv_saddr: m("sock_common", "skc_v6_rcv_saddr")?,
        skc_v6_daddr: m("sock_common", "skc_v6_daddr")?,
        task_ti_status: m2("task_struct", "thread_info", "thread_info", "status")?,
        skc_cookie: m("sock_common", "skc_cookie")?,
        inode_mode: m("inode", "i_mode")?,
        inode_rdev: m("inode", "i_rdev")?,
        task_cred: m("task_struct", "cred")?,
        // kernel_cap_t: one u64 since 6.3, two u32 words (low first) before: the same 8 bytes.
        cred_cap_effective: m("cred", "cap_effective")?,
        cred_cap_permitted: m("cred", "cap_permitted")?,
        fs_pwd_mnt: m2("fs_struct", "pwd", "path", "mnt")?,
        fs_pwd_dentry: m2("fs_struct", "pwd", "path", "dentry")?,
        _pad: 0,
    })
}
