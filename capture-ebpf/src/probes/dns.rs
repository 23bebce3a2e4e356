//! DNS on the wire: `cgroup_skb` egress and ingress at the cgroup v2 root copy the payload of
//! packets to port 53 (queries, egress) and from port 53 (responses, ingress), UDP and TCP,
//! IPv4 and IPv6, into a [`DnsEvent`]. Parsing happens in user space — a bounded copy here is
//! cheaper and safer than a DNS parser under the verifier. The programs always let the packet
//! through.
//!
//! A UDP message identical to one its thread sent or got within the collapse window (same
//! server, same bytes but for the transaction id, compared by a seeded hash) is only counted
//! (see `crate::collapse::dns_seen`): a resolver loop costs one row per distinct message and a
//! count, not a 512-byte copy through the ring and a row per packet.

use aya_ebpf::EbpfContext;
use aya_ebpf::helpers::bpf_ktime_get_boot_ns;
use aya_ebpf::helpers::generated::{bpf_get_socket_cookie, bpf_skb_load_bytes};
use aya_ebpf::macros::cgroup_skb;
use aya_ebpf::programs::SkBuffContext;
use needle_common::abi::{
    AF_INET, AF_INET6, DNS_EGRESS, DNS_FIXED, DNS_INGRESS, DNS_PAYLOAD_MAX, EventKind,
    SHAPE_PRIMARY,
};

use crate::collapse::{self, DnsKey, NetSeen};
use crate::emit::output;
use crate::maps::{DNS_OWNERS, DNS_SCRATCH, config};

const PASS: i32 = 1;
const DNS_PORT: u16 = 53;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[cgroup_skb(egress)]
pub fn dns_egress(ctx: SkBuffContext) -> i32 {
    record(&ctx, DNS_EGRESS);
    PASS
}

#[cgroup_skb(ingress)]
pub fn dns_ingress(ctx: SkBuffContext) -> i32 {
    record(&ctx, DNS_INGRESS);
    PASS
}

/// The cheap first look, for every packet of every socket: can this be DNS at all? A socket
/// whose peer is port 53 (TCP, connected UDP) can; else only a UDP packet can (an unconnected
/// socket's destination is only in the packet). Reads the socket's fields from the context and
/// the protocol byte with direct packet access — no helper call.
#[inline(always)]
fn maybe_dns(ctx: &SkBuffContext) -> bool {
    let skb = ctx.skb.skb;
    // SAFETY: context fields, rewritten by the verifier into reads of the socket and packet.
    unsafe {
        // Network order in the upper half.
        if u16::from_be(((*skb).remote_port >> 16) as u16) == DNS_PORT {
            return true;
        }
        let data = (*skb).data as usize;
        let end = (*skb).data_end as usize;
        if data + 10 > end {
            // Headers not in the linear part: the full check decides.
            return true;
        }
        let protocol = match *(data as *const u8) >> 4 {
            4 => *((data + 9) as *const u8),
            6 => *((data + 6) as *const u8),
            _ => return false,
        };
        protocol == IPPROTO_UDP
    }
}

#[inline(always)]
fn record(ctx: &SkBuffContext, direction: u8) {
    if !maybe_dns(ctx) {
        return;
    }
    let Ok(first) = ctx.load::<u8>(0) else { return };
    let (family, protocol, l4) = match first >> 4 {
        4 => {
            let Ok(proto) = ctx.load::<u8>(9) else { return };
            (AF_INET, proto, ((first & 0x0f) as usize) * 4)
        }
        6 => {
            // Extension headers are not followed: DNS packets do not carry them in practice.
            let Ok(next) = ctx.load::<u8>(6) else { return };
            (AF_INET6, next, 40)
        }
        _ => return,
    };
    if protocol != IPPROTO_UDP && protocol != IPPROTO_TCP {
        return;
    }
    let Ok(sport) = ctx.load::<u16>(l4) else {
        return;
    };
    let Ok(dport) = ctx.load::<u16>(l4 + 2) else {
        return;
    };
    let (sport, dport) = (u16::from_be(sport), u16::from_be(dport));
    // Queries leave towards port 53; responses arrive from it.
    let wanted = if direction == DNS_EGRESS {
        dport == DNS_PORT
    } else {
        sport == DNS_PORT
    };
    if !wanted {
        return;
    }
    let payload_at = if protocol == IPPROTO_UDP {
        l4 + 8
    } else {
        let Ok(off) = ctx.load::<u8>(l4 + 12) else {
            return;
        };
        l4 + ((off >> 4) as usize) * 4
    };
    let total = ctx.len() as usize;
    if payload_at >= total {
        return; // a bare TCP segment (handshake, ACK)
    }
    let payload_len = total - payload_at;
    let Some(ev) = DNS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `ev` is this CPU's scratch; the copy length is bounded by the payload array.
    unsafe {
        let cookie = bpf_get_socket_cookie(ctx.as_ptr());
        match DNS_OWNERS.get(cookie) {
            Some(h) => (*ev).header = *h,
            None => {
                (*ev).header = core::mem::zeroed();
                (*ev).header.cgroup_id =
                    aya_ebpf::helpers::generated::bpf_skb_cgroup_id(ctx.as_ptr() as *mut _);
            }
        }
        (*ev).header.kind = if direction == DNS_EGRESS {
            EventKind::DnsQuery
        } else {
            EventKind::DnsResponse
        } as u32;
        (*ev).header.shape = SHAPE_PRIMARY;
        (*ev).header.ktime_ns = bpf_ktime_get_boot_ns();
        (*ev).header.cpu = aya_ebpf::helpers::bpf_get_smp_processor_id();
        (*ev).family = family;
        (*ev).protocol = protocol;
        (*ev).direction = direction;
        (*ev).src_port = sport;
        (*ev).dst_port = dport;
        (*ev).src_addr = [0; 16];
        (*ev).dst_addr = [0; 16];
        if family == AF_INET {
            let src = ctx.load::<[u8; 4]>(12).unwrap_or([0; 4]);
            let dst = ctx.load::<[u8; 4]>(16).unwrap_or([0; 4]);
            core::ptr::write_unaligned(&raw mut (*ev).src_addr as *mut [u8; 4], src);
            core::ptr::write_unaligned(&raw mut (*ev).dst_addr as *mut [u8; 4], dst);
        } else {
            (*ev).src_addr = ctx.load::<[u8; 16]>(8).unwrap_or([0; 16]);
            (*ev).dst_addr = ctx.load::<[u8; 16]>(24).unwrap_or([0; 16]);
        }
        (*ev).payload_len = payload_len as u32;
        (*ev).captured = 0;
        let n = if payload_len > DNS_PAYLOAD_MAX {
            DNS_PAYLOAD_MAX
        } else {
            payload_len
        };
        // 1..=512 in a form the verifier can see (payload_len >= 1 was checked above).
        let n = (n.wrapping_sub(1) & (DNS_PAYLOAD_MAX - 1)) + 1;
        let kind = if direction == DNS_EGRESS {
            EventKind::DnsQuery
        } else {
            EventKind::DnsResponse
        };
        if bpf_skb_load_bytes(
            ctx.as_ptr(),
            payload_at as u32,
            &raw mut (*ev).payload as *mut _,
            n as u32,
        ) < 0
        {
            return;
        }
        (*ev).captured = n as u32;
        (*ev).window = 0;
        (*ev)._pad = 0;
        if protocol == IPPROTO_UDP {
            // The server: the destination of a query, the source of an answer.
            let (server, port) = if direction == DNS_EGRESS {
                (&raw const (*ev).dst_addr, dport)
            } else {
                (&raw const (*ev).src_addr, sport)
            };
            let server = core::ptr::read_unaligned(server as *const [u64; 2]);
            let key = DnsKey {
                hash: message_hash(ev, n),
                addr: server,
                port,
                len: n as u16,
                family,
            };
            match collapse::dns_seen(&(*ev).header, direction == DNS_INGRESS, &key) {
                NetSeen::Counted => return,
                NetSeen::New(window) => (*ev).window = window,
                NetSeen::Untracked => {}
            }
        }
        output(
            core::slice::from_raw_parts(ev as *const u8, DNS_FIXED + n),
            kind,
        );
    }
}

/// Seeded hash of the first `n` (1..=512) copied bytes of the message but its transaction id
/// (bytes 0 and 1), read as aligned 8-byte words (`DNS_FIXED` is a multiple of 8; bytes past
/// `n` are stale scratch and masked off).
///
/// # Safety
/// `ev` is this CPU's scratch record.
#[inline(always)]
unsafe fn message_hash(ev: *const needle_common::abi::DnsEvent, n: usize) -> u64 {
    const MUL: u64 = 0x9E37_79B9_7F4A_7C15;
    // SAFETY: as the caller guarantees.
    let words = unsafe { (&raw const (*ev).payload) as *const u64 };
    let mut h = config().dns_hash_seed ^ (n as u64).wrapping_mul(MUL);
    for i in 0..DNS_PAYLOAD_MAX / 8 {
        let at = i * 8;
        if at >= n {
            break;
        }
        // SAFETY: `i < 64`: within the payload array.
        let mut w = unsafe { *words.add(i) };
        let left = n - at;
        if left < 8 {
            w &= (1u64 << (left * 8)) - 1;
        }
        if i == 0 {
            // Little-endian load: the id is the low 16 bits.
            w &= !0xffff;
        }
        h = (h ^ w).wrapping_mul(MUL);
        h ^= h >> 29;
    }
    h
}
