//! Network: where processes connect and send, from the cgroup sock_addr hooks attached at the
//! cgroup v2 root (so every container below it is covered).
//!
//! The hooks run with the kernel's copy of the sockaddr (race-free) before the connection is
//! made; they always return 1: needle observes, it never blocks a connection.

use aya_ebpf::macros::cgroup_sock_addr;
use aya_ebpf::programs::SockAddrContext;
use needle_common::abi::{AF_INET, AF_INET6, EventKind, NetEvent};

use aya_ebpf::EbpfContext;
use aya_ebpf::helpers::generated::bpf_get_socket_cookie;

use crate::emit::{fill_header, is_self, reserve, submit};
use crate::maps::DNS_OWNERS;

/// DNS port: sockets that send there are remembered for the packet hooks in `dns`.
const DNS_PORT: u16 = 53;

/// Allow the operation (a sock_addr program's verdict).
const ALLOW: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    record(&ctx, EventKind::Connect, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    record(&ctx, EventKind::Connect, AF_INET6);
    ALLOW
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    record(&ctx, EventKind::SendTo, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    record(&ctx, EventKind::SendTo, AF_INET6);
    ALLOW
}

#[inline(always)]
fn record(ctx: &SockAddrContext, kind: EventKind, family: u16) {
    if is_self() {
        return;
    }
    let Some(mut entry) = reserve::<NetEvent>(kind) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let sa = ctx.sock_addr;
    // SAFETY: `ev` points into our reservation; `sa` is the program's context, read with the
    // 4-byte loads the verifier allows for these fields.
    unsafe {
        fill_header(&raw mut (*ev).header, kind);
        (*ev).family = family;
        (*ev).protocol = (*sa).protocol;
        (*ev).dst_port = u16::from_be((*sa).user_port as u16);
        (*ev).dst_addr = [0; 16];
        if family == AF_INET {
            let ip = (*sa).user_ip4.to_ne_bytes();
            (*ev).dst_addr[0] = ip[0];
            (*ev).dst_addr[1] = ip[1];
            (*ev).dst_addr[2] = ip[2];
            (*ev).dst_addr[3] = ip[3];
        } else {
            let words = [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ];
            for (i, w) in words.iter().enumerate() {
                let b = w.to_ne_bytes();
                (*ev).dst_addr[i * 4] = b[0];
                (*ev).dst_addr[i * 4 + 1] = b[1];
                (*ev).dst_addr[i * 4 + 2] = b[2];
                (*ev).dst_addr[i * 4 + 3] = b[3];
            }
        }
        if (*ev).dst_port == DNS_PORT {
            let cookie = bpf_get_socket_cookie(ctx.as_ptr());
            let _ = DNS_OWNERS.insert(cookie, (*ev).header, 0);
        }
    }
    submit(entry);
}
