//! Security-relevant calls at syscall exit (tail-called from `sys_exit`): ptrace,
//! process_vm_writev, module loading, uid/gid and capability changes, userfaultfd, mount,
//! unshare/setns, bpf and keyctl. Each records its deciding arguments and the result.
//!
//! Module loading has a program of its own: `finit_module` walks the module file's kernel
//! path, and that walk beside the other calls' branches took the verifier past its limit of a
//! million instructions (the whole program was then refused).
//!
//! `args` per call (the decoder reads them the same way):
//! ptrace: request, pid · process_vm_writev: pid · init_module: image length ·
//! finit_module: flags (+ the module file's kernel path) · set*id: the call's id arguments ·
//! capset: effective set · userfaultfd/unshare: flags · setns: fd, nstype · bpf/keyctl: command ·
//! mount: flags (+ source, target, fstype strings).

use aya_ebpf::helpers::bpf_probe_read_user;
use aya_ebpf::macros::btf_tracepoint;
use aya_ebpf::programs::BtfTracePointContext;
use needle_common::abi::{
    CALL_PATH2, CALL_PATH2_MAX, CALL_PATH2_OFFSET, CALL_PATH3, CALL_PATH3_MAX, CALL_PATH3_OFFSET,
    Counter, EventKind, nr,
};

use super::syscalls::Regs;
use crate::emit::{call_scratch, count_event, emit_call};
use crate::fs::{USER_PATH_MAX, fd_file, file_path, user_string};

/// bpf(2) commands that create or attach something; the rest (lookups, iteration, info
/// queries) are frequent and harmless, and are counted instead of recorded.
#[inline(always)]
fn bpf_cmd_recorded(cmd: u64) -> bool {
    // MAP_CREATE 0, PROG_LOAD 5, PROG_ATTACH 8, RAW_TRACEPOINT_OPEN 17, BTF_LOAD 18, LINK_CREATE 28
    matches!(cmd, 0 | 5 | 8 | 17 | 18 | 28)
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_security(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    let a = |i| regs.arg(i);
    let kind = match nr {
        nr::PTRACE => EventKind::Ptrace,
        nr::PROCESS_VM_WRITEV => EventKind::ProcessVmWritev,
        nr::SETUID
        | nr::SETGID
        | nr::SETREUID
        | nr::SETREGID
        | nr::SETRESUID
        | nr::SETRESGID
        | nr::SETFSUID
        | nr::SETFSGID => EventKind::SetId,
        nr::CAPSET => EventKind::Capset,
        nr::USERFAULTFD => EventKind::Userfaultfd,
        nr::MOUNT => EventKind::Mount,
        nr::UNSHARE => EventKind::Unshare,
        nr::SETNS => EventKind::Setns,
        nr::BPF => {
            if !bpf_cmd_recorded(a(0)) {
                count_event(Counter::BpfReadFiltered);
                return 0;
            }
            EventKind::Bpf
        }
        nr::KEYCTL => EventKind::Keyctl,
        _ => return 0,
    };
    let Some(ev) = call_scratch(nr, ret) else {
        return 0;
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe {
        (*ev).args[0] = a(0);
        (*ev).args[1] = a(1);
        (*ev).args[2] = a(2);
        match nr {
            nr::CAPSET => {
                // struct __user_cap_data_struct { u32 effective, permitted, inheritable; }[2]
                let data = a(1);
                let lo = bpf_probe_read_user(data as *const u32).unwrap_or(0) as u64;
                let hi = bpf_probe_read_user((data + 12) as *const u32).unwrap_or(0) as u64;
                (*ev).args[0] = lo | (hi << 32);
            }
            nr::MOUNT => {
                (*ev).args[0] = a(3);
                if let Some(len) = user_string(ev, 0, USER_PATH_MAX, a(0)) {
                    (*ev).path_len = len;
                }
                if let Some(len) = user_string(ev, CALL_PATH2_OFFSET, CALL_PATH2_MAX as u32, a(1)) {
                    (*ev).path2_len = len;
                    (*ev).flags |= CALL_PATH2;
                }
                if let Some(len) = user_string(ev, CALL_PATH3_OFFSET, CALL_PATH3_MAX as u32, a(2)) {
                    (*ev).path3_len = len;
                    (*ev).flags |= CALL_PATH3;
                }
            }
            _ => {}
        }
        emit_call(ev, kind);
    }
    0
}

/// init_module (the image length) and finit_module (its flags and the module file's kernel path).
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_module(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    if nr != nr::INIT_MODULE && nr != nr::FINIT_MODULE {
        return 0;
    }
    let Some(ev) = call_scratch(nr, ret) else {
        return 0;
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe {
        if nr == nr::INIT_MODULE {
            (*ev).args[0] = regs.arg(1);
        } else {
            (*ev).args[0] = regs.arg(2);
            let _ = file_path(ev, fd_file(regs.arg(0) as i64));
        }
        emit_call(ev, EventKind::ModuleLoad);
    }
    0
}
