//! Socket state at syscall exit (tail-called from `sys_exit`): accept/accept4 (the new
//! connection), bind and listen (the local address), and connect on unix sockets (the path;
//! inet connects come from the cgroup sock_addr hooks in `network`). A second program records
//! the creation of packet and raw inet sockets (sniffing, spoofing, hand-made packets) and the
//! dup/dup2/dup3 calls that make fd 0, 1 or 2 an inet socket (a shell's stdio handed to a
//! connection: Falco's "Redirect STDOUT/STDIN to Network Connection"); both are rare, and
//! filtered here, so that the handler the connect and accept loops take stays as it was.
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
use crate::task::{endpoints, read, socket_of};

const AF_UNIX: u16 = 1;
const AF_PACKET: u64 = 17;
const SOCK_RAW: u64 = 3;
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
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

/// socket(2) of a packet or raw inet socket; dup/dup2/dup3 that made fd 0–2 an inet socket.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_socket_fd(ctx: BtfTracePointContext) -> i32 {
    let Some((regs, ret)) = Regs::at_exit(&ctx) else {
        return 0;
    };
    let Some(nr) = regs.nr() else { return 0 };
    if nr == nr::SOCKET {
        let (domain, kind) = (regs.arg(0), regs.arg(1));
        let inet = domain == AF_INET as u64 || domain == AF_INET6 as u64;
        // SOCK_NONBLOCK and SOCK_CLOEXEC ride in the type's high bits.
        if domain != AF_PACKET && !(inet && kind & 0xf == SOCK_RAW) {
            return 0;
        }
        let Some(ev) = call_scratch(nr, ret) else {
            return 0;
        };
        // SAFETY: `ev` is this CPU's scratch.
        unsafe {
            (*ev).args[0] = (domain & 0xffff) | ((kind & 0xffff) << 16);
            (*ev).args[1] = regs.arg(2);
            emit_call(ev, EventKind::Socket);
        }
        return 0;
    }
    // dup2(fd, fd) changes nothing; a failed call returns -errno.
    if !(0..=2).contains(&ret) || (nr != nr::DUP && regs.arg(0) == regs.arg(1)) {
        return 0;
    }
    let file = fd_file(ret);
    let Ok(inode) = read::<*const u8>(file, offsets().file_inode) else {
        return 0;
    };
    // Only a socket's private_data is a `struct socket`.
    if read::<u16>(inode, offsets().inode_mode).map_or(true, |m| m & S_IFMT != S_IFSOCK) {
        return 0;
    }
    let Some(ev) = call_scratch(nr, ret) else {
        return 0;
    };
    // SAFETY: `ev` is this CPU's scratch.
    unsafe {
        if !fill_socket(ev, ret) {
            return 0;
        }
        let family = (*ev).args[0] as u16;
        if family == AF_INET || family == AF_INET6 {
            emit_call(ev, EventKind::Dup);
        }
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

/// Family, type, ports and addresses of the socket behind `fd`.
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
    let e = endpoints(sk);
    // SAFETY: as the caller guarantees.
    unsafe {
        (*ev).flags |= CALL_SOCKET;
        (*ev).args[0] = e.family as u64 | ((kind as u64) << 16);
        (*ev).args[1] = e.sport as u64 | ((e.dport as u64) << 16);
        (*ev).args[2] = e.saddr[0];
        (*ev).args[3] = e.saddr[1];
        (*ev).args[4] = e.daddr[0];
        (*ev).args[5] = e.daddr[1];
    }
    true
}
