//! Socket state at syscall exit (tail-called from `sys_exit`): accept/accept4 (the new
//! connection), bind and listen (the local address), and connect on unix sockets (the path;
//! inet connects come from the cgroup sock_addr hooks in `network`).
//!
//! Repeated inet accepts (same local port, same remote address) are counted into collapse
//! windows, and so are the results of connects the hooks counted as repeats.
//!
//! Addresses come from the kernel's `struct sock` after the call, not from user buffers:
//! `args[0]` = family | socket type << 16, `args[1]` = local port | remote port << 16,
//! `args[2..4]` = local address, `args[4..6]` = remote address (4 bytes for IPv4, 16 for IPv6).

use aya_ebpf::macros::btf_tracepoint;
use aya_ebpf::programs::BtfTracePointContext;
use needle_common::abi::{AF_INET, AF_INET6, CALL_RESULT, CALL_SOCKET, CallEvent, EventKind, nr};

use super::syscalls::Regs;
use crate::collapse::{self, NetSeen, Peer};
use crate::emit::{call_scratch, emit_call};
use crate::fs::{fd_file, user_string};
use crate::maps::offsets;
use crate::task::{field, read, read_span, socket_of};

const AF_UNIX: u16 = 1;
/// Bytes of `sun_path`.
const SUN_PATH_MAX: u32 = 108;

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_socket(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    let (kind, fd) = match nr {
        // A failed accept is mostly EAGAIN from an event loop: not an event.
        nr::ACCEPT | nr::ACCEPT4 if ret >= 0 => (EventKind::Accept, ret),
        nr::BIND => (EventKind::Bind, regs.arg(0) as i64),
        nr::LISTEN => (EventKind::Listen, regs.arg(0) as i64),
        nr::CONNECT => return connect_exit(&regs, ret),
        _ => return 0,
    };
    let Some(ev) = call_scratch(nr, ret) else {
        return 0;
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe {
        if !fill_socket(ev, fd) {
            return 0;
        }
        // An inet accept from the same remote address on the same local port as a moment ago
        // is only counted.
        let family = (*ev).args[0] as u16;
        if kind == EventKind::Accept && (family == AF_INET || family == AF_INET6) {
            let peer = Peer {
                kind,
                family,
                port: (*ev).args[1] as u16,
                protocol: ((*ev).args[0] >> 16) as u32,
                addr: [(*ev).args[4], (*ev).args[5]],
            };
            match collapse::net_seen(&peer, 0) {
                NetSeen::Counted => return 0,
                NetSeen::New(n) => (*ev).window = n,
                NetSeen::Untracked => {}
            }
        }
        // A unix socket bound to a path: the path, as the caller passed it.
        if nr == nr::BIND
            && (*ev).args[0] as u16 == AF_UNIX
            && let Some(len) = user_string(ev, 0, SUN_PATH_MAX, regs.arg(1) + 2)
        {
            (*ev).path_len = len;
        }
        emit_call(ev, kind);
    }
    0
}

/// connect(2) at exit. inet: the result (`ret`, local address) of the row the connect4/6 hook
/// already wrote, which user space completes ([`CALL_RESULT`]). unix: a row of its own, with
/// the path from the caller's sockaddr read at exit.
#[inline(always)]
fn connect_exit(regs: &Regs, ret: i64) -> i32 {
    // A connect the hook counted as a repeat: its result goes into the window.
    let fd = regs.arg(0) as i64;
    if collapse::connect_result(ret, || socket_cookie(fd)) {
        return 0;
    }
    let Some(ev) = call_scratch(nr::CONNECT, ret) else {
        return 0;
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe {
        if !fill_socket(ev, regs.arg(0) as i64) {
            return 0;
        }
        let family = (*ev).args[0] as u16;
        if family == AF_INET || family == AF_INET6 {
            (*ev).flags |= CALL_RESULT;
            emit_call(ev, EventKind::Connect);
            return 0;
        }
        if family != AF_UNIX {
            return 0;
        }
        let addr = regs.arg(1);
        match user_string(ev, 0, SUN_PATH_MAX, addr + 2) {
            Some(len) if len > 0 => (*ev).path_len = len,
            _ => {
                // Abstract socket: sun_path starts with NUL; keep the name after it.
                if let Some(len) = user_string(ev, 1, SUN_PATH_MAX - 1, addr + 3) {
                    (*ev).data[0] = b'@';
                    (*ev).path_len = len + 1;
                }
            }
        }
        emit_call(ev, EventKind::Connect);
    }
    0
}

/// The cookie of the socket behind `fd` (set once something asked for it, as the connect
/// hooks do).
#[inline(always)]
fn socket_cookie(fd: i64) -> Option<u64> {
    let file = fd_file(fd);
    if file.is_null() {
        return None;
    }
    let (sk, _) = socket_of(file).ok()?;
    read::<u64>(sk, offsets().skc_cookie).ok()
}

/// Bytes of `struct sock_common` read at once for the IPv4 addresses, the ports and the
/// family (offsets 0 to 18 on x86_64), and for the two IPv6 addresses (56 to 88).
const V4_SPAN: usize = 24;
const V6_SPAN: usize = 32;

/// Family, type, ports and addresses of the socket behind `fd`: two kernel reads for the
/// `struct sock` (three for IPv6), not one per field.
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
unsafe fn fill_socket(ev: *mut CallEvent, fd: i64) -> bool {
    let file = fd_file(fd);
    if file.is_null() {
        return false;
    }
    let Ok((sk, kind)) = socket_of(file) else {
        return false;
    };
    let off = offsets();
    let lo = off
        .skc_daddr
        .min(off.skc_rcv_saddr)
        .min(off.skc_dport)
        .min(off.skc_num)
        .min(off.skc_family);
    let span = read_span::<V4_SPAN>(sk, lo);
    let family = field::<u16, V4_SPAN>(&span, sk, lo, off.skc_family).unwrap_or(0);
    let sport = field::<u16, V4_SPAN>(&span, sk, lo, off.skc_num).unwrap_or(0);
    let dport = u16::from_be(field::<u16, V4_SPAN>(&span, sk, lo, off.skc_dport).unwrap_or(0));
    // SAFETY: as the caller guarantees.
    unsafe {
        (*ev).flags |= CALL_SOCKET;
        (*ev).args[0] = family as u64 | ((kind as u64) << 16);
        (*ev).args[1] = sport as u64 | ((dport as u64) << 16);
        if family == AF_INET {
            (*ev).args[2] =
                field::<u32, V4_SPAN>(&span, sk, lo, off.skc_rcv_saddr).unwrap_or(0) as u64;
            (*ev).args[4] = field::<u32, V4_SPAN>(&span, sk, lo, off.skc_daddr).unwrap_or(0) as u64;
        } else if family == AF_INET6 {
            let lo6 = off.skc_v6_rcv_saddr.min(off.skc_v6_daddr);
            let span6 = read_span::<V6_SPAN>(sk, lo6);
            let src =
                field::<[u64; 2], V6_SPAN>(&span6, sk, lo6, off.skc_v6_rcv_saddr).unwrap_or([0; 2]);
            let dst =
                field::<[u64; 2], V6_SPAN>(&span6, sk, lo6, off.skc_v6_daddr).unwrap_or([0; 2]);
            (*ev).args[2] = src[0];
            (*ev).args[3] = src[1];
            (*ev).args[4] = dst[0];
            (*ev).args[5] = dst[1];
        }
    }
    true
}
