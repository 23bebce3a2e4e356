//! Ring-buffer records → typed [`Event`]s.
//!
//! The top-level [`Decoder::decode`] only routes on the kind; each family decodes its own
//! records in its own module. The match lists every kind (no `_` arm), so adding a kind to the
//! ABI without deciding how it is decoded does not compile.

mod calls;
mod dns;
mod exec_state;
mod network;
mod process;

pub use calls::{ELIDED, kernel_path};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytemuck::Pod;
use needle_common::abi::{
    AF_INET, AF_INET6, COMM_LEN, EventHeader, EventKind, Family, SHAPE_CALL, SHAPE_REPEAT,
    UnknownEventKind,
};
use needle_common::schema::{Detail, Event, Process};

use crate::hashing::Map;
use crate::kernel::clock::BootClock;

/// A record that could not be decoded. Counted and reported; never fatal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the struct its kind announces.
    #[error("{what} record of {len} bytes, expected at least {need}")]
    Short {
        /// Struct name.
        what: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A kind id this build does not know.
    #[error(transparent)]
    UnknownKind(#[from] UnknownEventKind),
    /// A DNS packet whose message could not be parsed.
    #[error("DNS message: {0}")]
    Dns(String),
    /// A kind that the kernel programs never emit (produced in user space, or not yet captured).
    #[error("event kind {0:?} is not emitted by the kernel programs")]
    NotFromKernel(EventKind),
}

/// Copies a `T` out of the front of `bytes` (ring-buffer records need not be aligned for `T`).
pub(crate) fn pod<T: Pod>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    bytes
        .get(..need)
        .map(bytemuck::pod_read_unaligned)
        .ok_or(DecodeError::Short {
            what,
            len: bytes.len(),
            need,
        })
}

/// Copies a record sent only as far as its variable tail is used (at least `fixed` bytes) into
/// a zero-filled `T`; also returns how many bytes were received.
pub(crate) fn pod_prefix<T: Pod>(
    bytes: &[u8],
    fixed: usize,
    what: &'static str,
) -> Result<(T, usize), DecodeError> {
    if bytes.len() < fixed {
        return Err(DecodeError::Short {
            what,
            len: bytes.len(),
            need: fixed,
        });
    }
    let mut value = T::zeroed();
    let n = bytes.len().min(std::mem::size_of::<T>());
    bytemuck::bytes_of_mut(&mut value)[..n].copy_from_slice(&bytes[..n]);
    Ok((value, n))
}

/// Text from a NUL-terminated or length-bounded kernel buffer, invalid UTF-8 replaced.
pub(crate) fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The executable's identity as the kernel saw it at exec (`mm->exe_file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelExe {
    /// Device (user-space encoding), inode, size, mtime.
    pub key: crate::enrich::hash::ExeKey,
    /// Link count: 0 for a deleted file or a memfd.
    pub nlink: u32,
    /// Dentry name (`memfd:<name>` for memfds).
    pub dname: String,
    /// False when the kernel could not read the mtime (the key's mtime is then 0).
    pub has_mtime: bool,
}

impl KernelExe {
    /// Deleted or memfd-backed.
    pub fn fileless(&self) -> bool {
        self.nlink == 0 || self.dname.starts_with("memfd:")
    }
}

/// A decoded record: the event plus what enrichment needs from the kernel record.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The event.
    pub event: Event,
    /// Process start (boot ns), `group_leader->start_boottime`.
    pub start_ns: u64,
    /// Parent process start (boot ns).
    pub parent_start_ns: u64,
    /// Executable identity, for exec records.
    pub exe: Option<KernelExe>,
    /// What the record is to the rows around it.
    pub role: Role,
}

/// How a decoded record becomes rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A row of its own.
    Row,
    /// A row of its own that opened collapse window `index` of its thread: later identical
    /// opens or connections are counted into it (see [`crate::collapse`]).
    Window(u32),
    /// Not a row of its own: the result of the call whose row a hook wrote before the call
    /// ran (an inet connect's `ret` and local address), see [`crate::enrich::attach_result`].
    Result,
    /// Not a row of its own: window `index` of the thread closed with `count` repeats, the last
    /// at `last_ns` (boot clock); written as a copy of the window's first row with the count.
    Repeat {
        /// The window.
        index: u32,
        /// Repeats it collapsed.
        count: u32,
        /// Network windows: repeats that failed (part of `count`).
        failed: u32,
        /// Network windows: the errno (negative) of the last failed repeat.
        last_err: i32,
        /// Boot-time ns of the last one.
        last_ns: u64,
    },
    /// Not a row: the thread exited, its windows are gone.
    ThreadDone,
}

/// Most tasks share a few command names; interning them saves an allocation per row.
const COMM_CACHE_MAX: usize = 4096;
/// Peers repeat too (a resolver, a service's backends): their text is formatted once.
const ADDR_CACHE_MAX: usize = 4096;

/// Decodes records; holds the clock conversion and small caches.
pub struct Decoder {
    clock: BootClock,
    comms: Map<[u8; COMM_LEN], Arc<str>>,
    addrs: Map<IpAddr, String>,
}

/// `key`'s value in `cache`, made by `make` and kept the first time; the cache is emptied
/// when it holds `max` (the decoder's caches of command names and addresses).
fn kept<K: std::hash::Hash + Eq, V: Clone>(
    cache: &mut Map<K, V>,
    max: usize,
    key: K,
    make: impl FnOnce(&K) -> V,
) -> V {
    if let Some(v) = cache.get(&key) {
        return v.clone();
    }
    let v = make(&key);
    if cache.len() >= max {
        cache.clear();
    }
    cache.insert(key, v.clone());
    v
}

/// An IP address from the 16 bytes a record holds (`AF_INET`: the first 4), in network order.
pub(crate) fn ip_from_bytes(family: u16, raw: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
        _ => None,
    }
}

/// An IP address from the two native-endian words a hook stored it in (`AF_INET`: the low 32
/// bits of the first; anything else is taken as IPv6).
pub(crate) fn ip_from_words(family: u16, a: u64, b: u64) -> IpAddr {
    if family == AF_INET {
        return IpAddr::V4(Ipv4Addr::from((a as u32).to_ne_bytes()));
    }
    let mut o = [0u8; 16];
    o[..8].copy_from_slice(&a.to_ne_bytes());
    o[8..].copy_from_slice(&b.to_ne_bytes());
    IpAddr::V6(Ipv6Addr::from(o))
}

impl Decoder {
    /// A decoder converting boot-time stamps with `clock`.
    pub fn new(clock: BootClock) -> Self {
        Decoder {
            clock,
            comms: Map::default(),
            addrs: Map::default(),
        }
    }

    /// The text of an address (`127.0.0.1`, `::1`), formatted once per distinct address.
    pub(crate) fn ip_text(&mut self, ip: IpAddr) -> String {
        kept(&mut self.addrs, ADDR_CACHE_MAX, ip, IpAddr::to_string)
    }

    /// Decodes one ring-buffer record.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Decoded, DecodeError> {
        let header: EventHeader = pod(bytes, "header")?;
        let kind = EventKind::try_from(header.kind)?;
        use EventKind as K;
        match kind {
            K::Exec => process::exec(self, bytes),
            K::Fork => process::fork(self, bytes),
            K::Exit => process::exit(self, bytes),
            _ if kind.collapses() && header.shape == SHAPE_REPEAT => calls::repeat(self, bytes),
            K::Connect if header.shape == SHAPE_CALL => calls::call(self, bytes, kind),
            K::Connect | K::SendTo => network::net(self, bytes, kind),
            K::SyscallProfile => calls::profile(self, bytes),
            K::Syscall => calls::syscall(self, bytes),
            K::DnsQuery | K::DnsResponse => dns::dns(self, bytes),
            K::ContainerStart | K::ContainerStop | K::Lost => Err(DecodeError::NotFromKernel(kind)),
            // Every other file, network and security kind is one call record: its family,
            // declared in common, says so (a new kind there is decoded without a list here).
            _ => match kind.family() {
                Family::File | Family::Network | Family::Security => calls::call(self, bytes, kind),
                _ => Err(DecodeError::NotFromKernel(kind)),
            },
        }
    }

    fn comm(&mut self, raw: [u8; COMM_LEN]) -> Arc<str> {
        kept(&mut self.comms, COMM_CACHE_MAX, raw, |raw| text(raw).into())
    }

    /// A decoded record with the header's common fields and `detail`.
    pub(crate) fn decoded(&mut self, h: &EventHeader, detail: Detail) -> Decoded {
        Decoded {
            event: self.event(h, detail),
            start_ns: h.start_ns,
            parent_start_ns: h.parent_start_ns,
            exe: None,
            role: Role::Row,
        }
    }

    /// An event with the header's common fields and `detail`.
    pub(crate) fn event(&mut self, h: &EventHeader, detail: Detail) -> Event {
        let process = Process {
            pid: h.pid,
            tgid: h.tgid,
            ppid: h.ppid,
            uid: h.uid,
            gid: h.gid,
            comm: self.comm(h.comm),
            cgroup_id: h.cgroup_id,
        };
        Event::new(self.clock.wall_ns(h.ktime_ns), h.ktime_ns, process, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn header(kind: EventKind) -> EventHeader {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"bash");
        EventHeader {
            kind: kind as u32,
            cpu: 1,
            ktime_ns: 1_000,
            cgroup_id: 42,
            pid: 11,
            tgid: 10,
            ppid: 1,
            uid: 1000,
            gid: 100,
            shape: 0,
            start_ns: 500,
            parent_start_ns: 5,
            comm,
        }
    }

    #[test]
    fn rejects_short_unknown_and_user_space_kinds() {
        let mut d = Decoder::new(BootClock::measure());
        assert!(matches!(
            d.decode(&[0u8; 10]),
            Err(DecodeError::Short { what: "header", .. })
        ));
        let mut h = header(EventKind::Exec);
        h.kind = 9999;
        assert_eq!(
            d.decode(bytemuck::bytes_of(&h)),
            Err(DecodeError::UnknownKind(UnknownEventKind(9999)))
        );
        let h = header(EventKind::ContainerStart);
        assert_eq!(
            d.decode(bytemuck::bytes_of(&h)),
            Err(DecodeError::NotFromKernel(EventKind::ContainerStart))
        );
        let h = header(EventKind::Exec);
        assert!(matches!(
            d.decode(bytemuck::bytes_of(&h)),
            Err(DecodeError::Short { what: "exec", .. })
        ));
    }

    #[test]
    fn addresses_read_the_same_from_bytes_and_words_and_are_formatted_once() {
        let mut d = Decoder::new(BootClock::measure());
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&[10, 1, 2, 3]);
        let v4 = ip_from_bytes(AF_INET, &raw).expect("inet");
        let word = u64::from(u32::from_ne_bytes([10, 1, 2, 3]));
        assert_eq!(ip_from_words(AF_INET, word, 0), v4);
        assert_eq!(d.ip_text(v4), "10.1.2.3");
        assert_eq!(d.ip_text(v4), "10.1.2.3", "again, from the cache");
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let o = v6.octets();
        let (a, b) = (
            u64::from_ne_bytes(o[..8].try_into().expect("8 bytes")),
            u64::from_ne_bytes(o[8..].try_into().expect("8 bytes")),
        );
        assert_eq!(ip_from_bytes(AF_INET6, &o), Some(IpAddr::V6(v6)));
        assert_eq!(ip_from_words(AF_INET6, a, b), IpAddr::V6(v6));
        assert_eq!(d.ip_text(IpAddr::V6(v6)), "2001:db8::1");
        assert_eq!(
            ip_from_bytes(1, &o),
            None,
            "a unix socket has no IP address"
        );
        for i in 0..=ADDR_CACHE_MAX as u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            assert_eq!(d.ip_text(ip), ip.to_string());
        }
        assert!(d.addrs.len() <= ADDR_CACHE_MAX, "the cache is bounded");
    }

    #[test]
    fn comm_is_interned_and_lossy() {
        let mut d = Decoder::new(BootClock::measure());
        let mut raw = [0u8; COMM_LEN];
        raw[..3].copy_from_slice(&[b'a', 0xff, b'b']);
        let a = d.comm(raw);
        let b = d.comm(raw);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "a\u{fffd}b");
    }
}
