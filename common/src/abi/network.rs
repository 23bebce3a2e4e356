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
}

const _: () = assert!(core::mem::size_of::<NetEvent>().is_multiple_of(8));
