//! Network: where processes connect and send, from the cgroup sock_addr hooks attached at the
//! cgroup v2 root (so every container below it is covered).
//!
//! The hooks run with the kernel's copy of the sockaddr (race-free) before the connection is
//! made; they always return 1: needle observes, it never blocks a connection. Repeats to the
//! same peer within the collapse window are only counted (see `crate::collapse`).

use aya_ebpf::macros::cgroup_sock_addr;
use aya_ebpf::programs::SockAddrContext;
use needle_common::abi::{AF_INET, AF_INET6, EventHeader, EventKind, NetEvent};

use aya_ebpf::EbpfContext;
use aya_ebpf::helpers::generated::bpf_get_socket_cookie;

use crate::collapse::{self, NetSeen, Peer};
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
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the program's context, read with the 4-byte loads the verifier allows for
    // these fields.
    let (protocol, port, words) = unsafe {
        let words = if family == AF_INET {
            [(*sa).user_ip4, 0, 0, 0]
        } else {
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ]
        };
        ((*sa).protocol, u16::from_be((*sa).user_port as u16), words)
    };
    let dns = port == DNS_PORT;
    // The cookie names the socket: for the DNS owners, and for the connect's exit to find the
    // repeat it belongs to.
    // SAFETY: the program's own context.
    let cookie = if dns || kind == EventKind::Connect {
        unsafe { bpf_get_socket_cookie(ctx.as_ptr()) }
    } else {
        0
    };
    let peer = Peer {
        kind,
        family,
        port,
        protocol,
        addr: [
            words[0] as u64 | ((words[1] as u64) << 32),
            words[2] as u64 | ((words[3] as u64) << 32),
        ],
    };
    let window = match collapse::net_seen(&peer, cookie) {
        NetSeen::Counted => {
            if dns {
                remember_dns_owner(cookie, kind);
            }
            return;
        }
        NetSeen::New(n) => n,
        NetSeen::Untracked => 0,
    };
    let Some(mut entry) = reserve::<NetEvent>(kind) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points into our reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, kind);
        (*ev).family = family;
        (*ev).protocol = protocol;
        (*ev).dst_port = port;
        (*ev).window = window;
        (*ev)._pad = 0;
        for (i, w) in words.iter().enumerate() {
            let b = w.to_ne_bytes();
            (*ev).dst_addr[i * 4] = b[0];
            (*ev).dst_addr[i * 4 + 1] = b[1];
            (*ev).dst_addr[i * 4 + 2] = b[2];
            (*ev).dst_addr[i * 4 + 3] = b[3];
        }
        if dns {
            let _ = DNS_OWNERS.insert(cookie, (*ev).header, 0);
        }
    }
    submit(entry);
}

/// A socket that talks to port 53 without a row of its own (a repeat): its owner for the DNS
/// packet hooks all the same.
#[inline(always)]
fn remember_dns_owner(cookie: u64, kind: EventKind) {
    let mut h = core::mem::MaybeUninit::<EventHeader>::uninit();
    // SAFETY: `fill_header` writes every field of the header.
    unsafe {
        fill_header(h.as_mut_ptr(), kind);
        let _ = DNS_OWNERS.insert(cookie, h.assume_init_ref(), 0);
    }
}
