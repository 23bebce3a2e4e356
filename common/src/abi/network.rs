//! Network records: destinations of connect/sendmsg as the cgroup sock_addr hooks see them.

use super::EventHeader;

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// A connect (TCP or UDP) or an unconnected UDP send, from `cgroup/connect{4,6}` or
/// `cgroup/sendmsg{4,6}`. The address is the kernel's copy of the caller's sockaddr, taken
/// after it left user memory, so a thread that rewrites its buffer cannot change what is recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NetEvent {
    /// Common header; `kind` is `Connect` or `SendTo`.
    pub header: EventHeader,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Destination port, host byte order.
    pub dst_port: u16,
    /// `IPPROTO_TCP` (6), `IPPROTO_UDP` (17), …
    pub protocol: u32,
    /// Destination address: 4 bytes for IPv4 (network order), 16 for IPv6.
    pub dst_addr: [u8; 16],
    /// The collapse window the row opened, as window number + 1 (0: none).
    pub window: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<NetEvent>().is_multiple_of(8));

/// Bytes of a DNS message kept from a packet (the classic UDP limit; longer messages are cut and
/// the parser keeps the records that are complete).
pub const DNS_PAYLOAD_MAX: usize = 512;
/// `DnsEvent::direction`: leaving the host's sockets (a query).
pub const DNS_EGRESS: u8 = 0;
/// `DnsEvent::direction`: arriving at a socket (a response).
pub const DNS_INGRESS: u8 = 1;

/// A DNS packet to or from port 53, copied by `cgroup_skb` at the cgroup v2 root: queries on
/// egress, responses on ingress. The message itself is parsed in user space (bounded, tested
/// on malformed input). The process is the socket's owner as the sock_addr hooks saw it at
/// connect/sendmsg time (found by socket cookie); `header.pid` is 0 when it is unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct DnsEvent {
    /// Common header; `kind` is `DnsQuery` (egress) or `DnsResponse` (ingress) — user space
    /// decides from the message's QR bit.
    pub header: EventHeader,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `IPPROTO_UDP` or `IPPROTO_TCP`.
    pub protocol: u8,
    /// [`DNS_EGRESS`] or [`DNS_INGRESS`].
    pub direction: u8,
    /// Source port, host order.
    pub src_port: u16,
    /// Destination port, host order.
    pub dst_port: u16,
    /// Source address (4 bytes for IPv4).
    pub src_addr: [u8; 16],
    /// Destination address.
    pub dst_addr: [u8; 16],
    /// Bytes of the L4 payload in the packet.
    pub payload_len: u32,
    /// Bytes of it copied into `payload`.
    pub captured: u32,
    /// The DNS collapse window the row opened, as window number + 1 (0: none); see
    /// [`super::DnsWindows`].
    pub window: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// The DNS message (TCP: with its 2-byte length prefix).
    pub payload: [u8; DNS_PAYLOAD_MAX],
}

/// Bytes of a [`DnsEvent`] before `payload`.
pub const DNS_FIXED: usize = core::mem::size_of::<DnsEvent>() - DNS_PAYLOAD_MAX;

const _: () = assert!(core::mem::size_of::<DnsEvent>().is_multiple_of(8));
// The kernel hashes the payload as aligned 8-byte words.
const _: () = assert!(DNS_FIXED.is_multiple_of(8));
