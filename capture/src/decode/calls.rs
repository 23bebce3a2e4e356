//! Records from syscall exit: [`CallEvent`] (files, security-relevant calls, socket state),
//! [`ProfileEvent`] and [`SyscallEvent`].

use std::borrow::Cow;

use needle_common::abi::{
    AF_INET, AF_INET6, CALL_FIXED, CALL_PATH_AREA, CALL_PATH_DETACHED, CALL_PATH_KERNEL,
    CALL_PATH_TRUNCATED, CALL_PATH2, CALL_PATH2_MAX, CALL_PATH2_OFFSET, CALL_PATH3, CALL_PATH3_MAX,
    CALL_PATH3_OFFSET, CALL_RESULT, CALL_SOCKET, CallEvent, EventKind, PROFILE_SLOTS, ProfileEvent,
    REPEAT_THREAD_DONE, RepeatEvent, SyscallEvent, UTIMES_ATIME_NOW, UTIMES_ATIME_OMIT,
    UTIMES_MTIME_NOW, UTIMES_MTIME_OMIT, UTIMES_UNREAD, nr,
};
use needle_common::schema::{Detail, FilePath, Net, PathSource};

use super::network::protocol_name;
use super::{DecodeError, Decoded, Decoder, Role, ip_from_words, pod, pod_prefix};

/// Marks the start of a path whose top could not be walked (deeper than the walk limit).
pub const ELIDED: &str = "…";

/// The fixed part and the strings of a call record (only the used prefix is sent).
struct Call {
    ev: CallEvent,
    /// Bytes of `ev.data` that were sent.
    len: usize,
}

impl Call {
    fn parse(bytes: &[u8]) -> Result<Call, DecodeError> {
        let (ev, n): (CallEvent, usize) = pod_prefix(bytes, CALL_FIXED, "call")?;
        Ok(Call {
            ev,
            len: n - CALL_FIXED,
        })
    }

    fn slice(&self, at: usize, len: usize, max: usize) -> &[u8] {
        let data = &self.ev.data[..self.len];
        let len = len.min(max);
        data.get(at..at + len)
            .or_else(|| data.get(at..))
            .unwrap_or(&[])
    }

    fn path(&self) -> Option<FilePath> {
        let raw = self.slice(0, self.ev.path_len as usize, CALL_PATH_AREA);
        if self.ev.flags & CALL_PATH_KERNEL != 0 {
            return Some(FilePath {
                path: kernel_path(raw, self.ev.flags),
                source: PathSource::Kernel,
            });
        }
        if raw.is_empty() {
            return None;
        }
        Some(FilePath {
            path: lossy(raw),
            source: PathSource::UserAtExit,
        })
    }

    fn path_or_empty(&self) -> FilePath {
        self.path().unwrap_or(FilePath {
            path: String::new(),
            source: PathSource::UserAtExit,
        })
    }

    fn path2(&self) -> String {
        if self.ev.flags & CALL_PATH2 == 0 {
            return String::new();
        }
        lossy(self.slice(
            CALL_PATH2_OFFSET,
            self.ev.path2_len as usize,
            CALL_PATH2_MAX,
        ))
    }

    fn path3(&self) -> String {
        if self.ev.flags & CALL_PATH3 == 0 {
            return String::new();
        }
        lossy(self.slice(
            CALL_PATH3_OFFSET,
            self.ev.path3_len as usize,
            CALL_PATH3_MAX,
        ))
    }

    fn arg(&self, i: usize) -> u64 {
        self.ev.args[i]
    }
}

fn lossy(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Components written leaf first (`passwd\0etc\0`) → `/etc/passwd`. A walk that stopped at a
/// pseudo filesystem's root gives a name without a leading slash (`pipe:[123]`, `memfd:x`); one
/// that hit the depth limit starts with [`ELIDED`].
pub fn kernel_path(raw: &[u8], flags: u32) -> String {
    let mut parts: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|c| !c.is_empty())
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    parts.reverse();
    let joined = parts.join("/");
    if flags & CALL_PATH_DETACHED != 0 {
        joined
    } else if flags & CALL_PATH_TRUNCATED != 0 {
        format!("{ELIDED}/{joined}")
    } else {
        format!("/{joined}")
    }
}

/// A uid/gid argument; `-1` means "unchanged".
fn id(v: u64) -> Option<u32> {
    let v = v as u32;
    (v != u32::MAX).then_some(v)
}

/// Name of a socket family in the `family` column.
pub(crate) fn family_name(family: u16) -> &'static str {
    match family {
        AF_INET => "inet",
        AF_INET6 => "inet6",
        1 => "unix",
        16 => "netlink",
        17 => "packet",
        _ => "unknown",
    }
}

/// A `socket` record: `args[0]` = family | type << 16, `args[1]` = the protocol argument.
fn created_socket(c: &Call) -> Net {
    let family = c.arg(0) as u16;
    // SOCK_NONBLOCK and SOCK_CLOEXEC ride in the type argument's high bits.
    let sock_type = ((c.arg(0) >> 16) as u16) & 0xf;
    let protocol = match family {
        AF_INET | AF_INET6 if sock_type == 3 => protocol_name(c.arg(1) as u32),
        AF_INET | AF_INET6 => inet_protocol(sock_type),
        17 => match sock_type {
            3 => "raw".into(),
            2 => "dgram".into(),
            other => format!("type{other}").into(),
        },
        _ => format!("type{sock_type}").into(),
    };
    Net {
        family: family_name(family).into(),
        protocol,
        ret: Some(c.ev.ret),
        ..Net::default()
    }
}

/// A time of a `utimes` record, when it was given explicitly.
fn explicit_time(bits: u64, now: u64, omit: u64, ns: u64) -> Option<i64> {
    (bits & (now | omit | UTIMES_UNREAD) == 0).then_some(ns as i64)
}

/// Family, protocol, addresses and ports of a socket record.
fn socket_net(d: &mut Decoder, c: &Call) -> Net {
    let family = c.arg(0) as u16;
    let sock_type = (c.arg(0) >> 16) as u16;
    let ports = c.arg(1);
    let (sport, dport) = (ports as u16, (ports >> 16) as u16);
    let mut ip = |a: u64, b: u64| Some(d.ip_text(ip_from_words(family, a, b)));
    let (protocol, src, dst) = match family {
        AF_INET | AF_INET6 => (
            inet_protocol(sock_type),
            ip(c.arg(2), c.arg(3)),
            ip(c.arg(4), c.arg(5)),
        ),
        1 => (unix_protocol(sock_type), None, None),
        _ => (Cow::Borrowed(""), None, None),
    };
    let fam = family_name(family);
    let socket = c.ev.flags & CALL_SOCKET != 0;
    let inet = matches!(family, AF_INET | AF_INET6);
    Net {
        family: fam.into(),
        protocol,
        src_addr: src,
        src_port: (socket && inet).then_some(sport),
        dst_addr: dst,
        dst_port: (socket && inet).then_some(dport),
        bytes: None,
        ret: Some(c.ev.ret),
        count: None,
    }
}

pub(crate) fn inet_protocol(sock_type: u16) -> Cow<'static, str> {
    match sock_type {
        1 => protocol_name(6),
        2 => protocol_name(17),
        3 => protocol_name(255),
        other => format!("type{other}").into(),
    }
}

fn unix_protocol(sock_type: u16) -> Cow<'static, str> {
    match sock_type {
        1 => "stream".into(),
        2 => "dgram".into(),
        5 => "seqpacket".into(),
        other => format!("type{other}").into(),
    }
}

pub(super) fn call(d: &mut Decoder, bytes: &[u8], kind: EventKind) -> Result<Decoded, DecodeError> {
    let c = Call::parse(bytes)?;
    let ret = c.ev.ret;
    let detail = match kind {
        EventKind::Open => Detail::Open {
            file: c.path_or_empty(),
            flags: c.arg(0),
            mode: c.arg(1) as u32,
            ret,
            count: None,
        },
        EventKind::ProcMemWrite => Detail::ProcMemWrite {
            file: c.path_or_empty(),
            target_pid: c.arg(3) as u32,
            ret,
        },
        EventKind::Unlink => Detail::Unlink {
            file: c.path_or_empty(),
            ret,
        },
        EventKind::Rename => Detail::Rename {
            file: c.path_or_empty(),
            new_path: c.path2(),
            ret,
        },
        EventKind::Chmod => Detail::Chmod {
            file: c.path_or_empty(),
            mode: c.arg(0) as u32,
            ret,
        },
        EventKind::Chown => Detail::Chown {
            file: c.path_or_empty(),
            uid: c.arg(0) as u32,
            gid: c.arg(1) as u32,
            ret,
        },
        EventKind::MemfdCreate => Detail::MemfdCreate {
            name: c.path().map(|p| p.path).unwrap_or_default(),
            flags: c.arg(0),
            ret,
        },
        EventKind::MmapExec => Detail::MmapExec {
            file: c.path_or_empty(),
            prot: c.arg(0),
        },
        EventKind::Utimes => {
            let bits = c.arg(0);
            Detail::Utimes {
                file: c.path_or_empty(),
                atime_ns: explicit_time(bits, UTIMES_ATIME_NOW, UTIMES_ATIME_OMIT, c.arg(1)),
                mtime_ns: explicit_time(bits, UTIMES_MTIME_NOW, UTIMES_MTIME_OMIT, c.arg(2)),
                flags: bits,
                ret,
            }
        }
        EventKind::Truncate => Detail::Truncate {
            file: c.path_or_empty(),
            length: c.arg(0),
            ret,
        },
        EventKind::Link => Detail::Link {
            file: c.path_or_empty(),
            new_path: c.path2(),
            ret,
        },
        EventKind::Symlink => Detail::Symlink {
            file: c.path_or_empty(),
            new_path: c.path2(),
            ret,
        },
        EventKind::Mkdir => Detail::Mkdir {
            file: c.path_or_empty(),
            mode: c.arg(0) as u32,
            ret,
        },
        EventKind::Socket => Detail::Socket(Box::new(created_socket(&c))),
        EventKind::Dup => Detail::Dup(Box::new(socket_net(d, &c))),
        EventKind::Ptrace => Detail::Ptrace {
            request: c.arg(0) as u32,
            target_pid: c.arg(1) as u32,
            ret,
        },
        EventKind::ProcessVmWritev => Detail::ProcessVmWritev {
            target_pid: c.arg(0) as u32,
            ret,
        },
        EventKind::ModuleLoad => Detail::ModuleLoad {
            file: c.path(),
            ret,
        },
        EventKind::SetId => {
            let (uid, gid) = match c.ev.syscall {
                nr::SETUID | nr::SETFSUID => (id(c.arg(0)), None),
                nr::SETGID | nr::SETFSGID => (None, id(c.arg(0))),
                // The effective id is what changes privileges.
                nr::SETREUID | nr::SETRESUID => (id(c.arg(1)).or(id(c.arg(0))), None),
                nr::SETREGID | nr::SETRESGID => (None, id(c.arg(1)).or(id(c.arg(0)))),
                _ => (None, None),
            };
            Detail::SetId {
                uid,
                gid,
                nr: c.ev.syscall,
                ret,
            }
        }
        EventKind::Capset => Detail::Capset {
            effective: c.arg(0),
            ret,
        },
        EventKind::Userfaultfd => Detail::Userfaultfd {
            flags: c.arg(0),
            ret,
        },
        EventKind::Mount => Detail::Mount {
            source: c.path().map(|p| p.path).unwrap_or_default(),
            target: c.path2(),
            fstype: c.path3(),
            flags: c.arg(0),
            ret,
        },
        EventKind::Unshare => Detail::Unshare {
            flags: c.arg(0),
            ret,
        },
        EventKind::Setns => Detail::Setns {
            flags: c.arg(1),
            ret,
        },
        EventKind::Bpf => Detail::Bpf {
            cmd: c.arg(0) as u32,
            ret,
        },
        EventKind::Keyctl => Detail::Keyctl {
            op: c.arg(0) as u32,
            ret,
        },
        EventKind::Accept => Detail::Accept(Box::new(socket_net(d, &c))),
        EventKind::Bind | EventKind::Listen | EventKind::Connect => {
            let mut net = socket_net(d, &c);
            // Unix sockets: the path (bind: our name, connect: the peer's).
            if net.family == "unix"
                && let Some(p) = c.path()
            {
                if kind == EventKind::Bind {
                    net.src_addr = Some(p.path);
                } else {
                    net.dst_addr = Some(p.path);
                }
            }
            match kind {
                EventKind::Bind => Detail::Bind(Box::new(net)),
                EventKind::Listen => Detail::Listen(Box::new(net)),
                _ => Detail::Connect(Box::new(net)),
            }
        }
        other => return Err(DecodeError::NotFromKernel(other)),
    };
    let mut decoded = d.decoded(&c.ev.header, detail);
    if c.ev.flags & CALL_RESULT != 0 {
        decoded.role = Role::Result;
    } else if let Some(index) = c.ev.window.checked_sub(1) {
        decoded.role = Role::Window(index);
    }
    Ok(decoded)
}

/// The count of a closed collapse window (or the end of a thread's windows).
pub(super) fn repeat(d: &mut Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ev: RepeatEvent = pod(bytes, "repeat")?;
    // The detail is a placeholder: the row is the window's first row, copied with the count.
    let mut decoded = d.decoded(&ev.header, Detail::Fork);
    decoded.role = if ev.window == REPEAT_THREAD_DONE {
        Role::ThreadDone
    } else {
        Role::Repeat {
            index: ev.window,
            count: ev.count,
            failed: ev.failed,
            last_err: ev.last_err,
            last_ns: ev.last_ns,
        }
    };
    Ok(decoded)
}

pub(super) fn profile(d: &mut Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ev: ProfileEvent = pod(bytes, "syscall_profile")?;
    let counts: Vec<(u32, u64)> = ev
        .counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 0)
        .map(|(nr, c)| (nr.min(PROFILE_SLOTS - 1) as u32, u64::from(*c)))
        .collect();
    Ok(d.decoded(&ev.header, Detail::SyscallProfile { counts }))
}

pub(super) fn syscall(d: &mut Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ev: SyscallEvent = pod(bytes, "syscall")?;
    Ok(d.decoded(
        &ev.header,
        Detail::Syscall {
            nr: ev.syscall,
            ret: Some(ev.ret),
        },
    ))
}

/// Header of a record, for tests.
#[cfg(test)]
pub(crate) fn call_bytes(
    h: needle_common::abi::EventHeader,
    syscall: u32,
    flags: u32,
    ret: i64,
    args: [u64; 6],
    path: &[u8],
    path2: &[u8],
) -> Vec<u8> {
    use bytemuck::Zeroable;
    let mut ev = CallEvent::zeroed();
    ev.header = h;
    ev.header.shape = needle_common::abi::SHAPE_CALL;
    ev.syscall = syscall;
    ev.flags = flags;
    ev.ret = ret;
    ev.args = args;
    ev.path_len = path.len() as u16;
    ev.data[..path.len()].copy_from_slice(path);
    let mut used = path.len();
    if !path2.is_empty() {
        ev.flags |= CALL_PATH2;
        ev.path2_len = path2.len() as u16;
        ev.data[CALL_PATH2_OFFSET..CALL_PATH2_OFFSET + path2.len()].copy_from_slice(path2);
        used = CALL_PATH2_OFFSET + path2.len();
    }
    bytemuck::bytes_of(&ev)[..CALL_FIXED + used].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::header;
    use crate::kernel::clock::BootClock;

    #[test]
    fn kernel_paths_are_reversed_and_marked() {
        assert_eq!(
            kernel_path(b"passwd\0etc\0", CALL_PATH_KERNEL),
            "/etc/passwd"
        );
        assert_eq!(kernel_path(b"", CALL_PATH_KERNEL), "/");
        assert_eq!(
            kernel_path(b"memfd:x\0", CALL_PATH_KERNEL | CALL_PATH_DETACHED),
            "memfd:x"
        );
        assert_eq!(
            kernel_path(b"c\0b\0", CALL_PATH_KERNEL | CALL_PATH_TRUNCATED),
            "…/b/c"
        );
        assert_eq!(kernel_path(b"a\xff\0", CALL_PATH_KERNEL), "/a\u{fffd}");
    }

    #[test]
    fn open_rename_and_short_records() {
        let mut d = Decoder::new(BootClock::measure());
        let bytes = call_bytes(
            header(EventKind::Open),
            nr::OPENAT,
            CALL_PATH_KERNEL,
            3,
            [0o1101, 0o644, 0, 0, 0, 0],
            b"x\0tmp\0",
            b"",
        );
        let e = d.decode(&bytes).unwrap().event;
        assert_eq!(
            e.detail,
            Detail::Open {
                file: FilePath {
                    path: "/tmp/x".into(),
                    source: PathSource::Kernel
                },
                flags: 0o1101,
                mode: 0o644,
                ret: 3,
                count: None
            }
        );
        let bytes = call_bytes(
            header(EventKind::Rename),
            nr::RENAME,
            0,
            -2,
            [0; 6],
            b"/a",
            b"/b",
        );
        let e = d.decode(&bytes).unwrap().event;
        assert_eq!(
            e.detail,
            Detail::Rename {
                file: FilePath {
                    path: "/a".into(),
                    source: PathSource::UserAtExit
                },
                new_path: "/b".into(),
                ret: -2
            }
        );
        assert!(matches!(
            d.decode(&bytes[..CALL_FIXED - 1]),
            Err(DecodeError::Short { what: "call", .. })
        ));
    }

    #[test]
    fn setid_takes_the_effective_id_and_minus_one_is_unchanged() {
        let mut d = Decoder::new(BootClock::measure());
        let bytes = call_bytes(
            header(EventKind::SetId),
            nr::SETRESUID,
            0,
            0,
            [u32::MAX as u64, 0, u32::MAX as u64, 0, 0, 0],
            b"",
            b"",
        );
        let e = d.decode(&bytes).unwrap().event;
        assert_eq!(
            e.detail,
            Detail::SetId {
                uid: Some(0),
                gid: None,
                nr: nr::SETRESUID,
                ret: 0
            }
        );
    }

    #[test]
    fn sockets_decode_both_families() {
        let mut d = Decoder::new(BootClock::measure());
        let lo = u32::from_ne_bytes([127, 0, 0, 1]) as u64;
        let bytes = call_bytes(
            header(EventKind::Accept),
            nr::ACCEPT4,
            CALL_SOCKET,
            5,
            [2 | (1 << 16), 8080 | (40000 << 16), lo, 0, lo, 0],
            b"",
            b"",
        );
        let Detail::Accept(n) = d.decode(&bytes).unwrap().event.detail else {
            panic!("accept")
        };
        assert_eq!(
            (
                n.family.as_ref(),
                n.protocol.as_ref(),
                n.src_addr.as_deref(),
                n.src_port,
                n.dst_addr.as_deref(),
                n.dst_port
            ),
            (
                "inet",
                "tcp",
                Some("127.0.0.1"),
                Some(8080),
                Some("127.0.0.1"),
                Some(40000)
            )
        );
        let bytes = call_bytes(
            header(EventKind::Connect),
            nr::CONNECT,
            CALL_SOCKET,
            0,
            [1 | (1 << 16), 0, 0, 0, 0, 0],
            b"/var/run/docker.sock",
            b"",
        );
        let Detail::Connect(n) = d.decode(&bytes).unwrap().event.detail else {
            panic!("connect")
        };
        assert_eq!(
            (
                n.family.as_ref(),
                n.protocol.as_ref(),
                n.dst_addr.as_deref()
            ),
            ("unix", "stream", Some("/var/run/docker.sock"))
        );
    }
}
