//! What an exec record says about the new image besides its path and argv: its fds 0–2
//! (classified from the inode's mode, a socket's family and type, a character device's major
//! number), its capabilities and its working directory — and the executable path made absolute
//! with that directory.

use needle_common::abi::{
    AF_INET, AF_INET6, CALL_PATH_DETACHED, CALL_PATH_TRUNCATED, EXEC_CAPS, EXEC_CWD, EXEC_CWD_MAX,
    EXEC_STDIO, ExecEvent, STDIO_INODE, STDIO_OPEN, STDIO_PATH, STDIO_PATH_MAX, STDIO_SOCKET,
    StdioFd,
};
use needle_common::schema::{ExecState, Fd, FdType};

use super::calls::kernel_path;
use super::ip_from_words;

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const S_IFREG: u16 = 0o100000;
const S_IFBLK: u16 = 0o060000;
const S_IFDIR: u16 = 0o040000;
const S_IFCHR: u16 = 0o020000;
const S_IFIFO: u16 = 0o010000;

/// Character devices that are terminals, by major number (kernel encoding: major << 20):
/// virtual consoles and serial lines (4), `/dev/tty`, `/dev/console`, `/dev/ptmx` (5), and the
/// Unix98 pseudo-terminal slaves (136–143) that `docker exec -t`, sshd and `script` allocate.
fn is_tty(rdev: u32) -> bool {
    matches!(rdev >> 20, 4 | 5 | 136..=143)
}

/// What the inode mode (and, for sockets, family and type) say the fd is.
fn fd_type(fd: &StdioFd) -> FdType {
    if fd.flags & STDIO_OPEN == 0 {
        return FdType::Closed;
    }
    if fd.flags & STDIO_INODE == 0 {
        return FdType::Other;
    }
    match fd.mode & S_IFMT {
        S_IFREG => FdType::File,
        S_IFDIR => FdType::Dir,
        S_IFIFO => FdType::Pipe,
        S_IFCHR if is_tty(fd.rdev) => FdType::Tty,
        S_IFCHR => FdType::Char,
        S_IFBLK => FdType::Block,
        S_IFSOCK if fd.flags & STDIO_SOCKET == 0 => FdType::Socket,
        S_IFSOCK => match (fd.family, fd.sock_type) {
            (AF_INET | AF_INET6, 1) => FdType::Tcp,
            (AF_INET | AF_INET6, 2) => FdType::Udp,
            (AF_INET | AF_INET6, 3) => FdType::Raw,
            (1, _) => FdType::Unix,
            _ => FdType::Socket,
        },
        _ => FdType::Other,
    }
}

/// A kernel path kept to `max` bytes: when it was cut there, the root-most component may be
/// partial and is dropped.
fn kept_path(raw: &[u8], len: usize, max: usize, mut flags: u32) -> String {
    let mut bytes = &raw[..len.min(max).min(raw.len())];
    if flags & CALL_PATH_TRUNCATED != 0 {
        let whole = bytes.iter().rposition(|&b| b == 0).map_or(0, |p| p + 1);
        bytes = &bytes[..whole];
        flags &= !CALL_PATH_DETACHED;
    }
    kernel_path(bytes, flags)
}

/// Standard fd `i` of an exec record.
fn stdio_fd(ev: &ExecEvent, i: usize) -> Fd {
    let raw = &ev.stdio[i];
    let kind = fd_type(raw);
    if kind == FdType::Closed {
        return Fd::closed();
    }
    let path = (raw.flags & STDIO_PATH != 0)
        .then(|| {
            kept_path(
                &ev.stdio_paths[i],
                usize::from(raw.path_len),
                STDIO_PATH_MAX,
                raw.path_flags,
            )
        })
        // An anonymous pipe's walk ends at pipefs's nameless root.
        .filter(|p| !p.is_empty());
    let inet = kind.is_inet() && raw.flags & STDIO_SOCKET != 0;
    let addr = inet.then(|| ip_from_words(raw.family, raw.addr[0], raw.addr[1]).to_string());
    Fd {
        kind,
        inode: (raw.flags & STDIO_INODE != 0).then_some(raw.ino),
        path,
        addr,
        port: inet.then_some((raw.ports >> 16) as u16),
    }
}

/// Standard fds and capabilities of an exec record, when the kernel read them.
pub(super) fn exec_state(ev: &ExecEvent) -> Option<Box<ExecState>> {
    let stdio = ev.flags & EXEC_STDIO != 0;
    let caps = ev.flags & EXEC_CAPS != 0;
    let cwd = ev.flags & EXEC_CWD != 0;
    if !stdio && !caps && !cwd {
        return None;
    }
    let fd = |i| stdio.then(|| stdio_fd(ev, i));
    Some(Box::new(ExecState {
        stdio: [fd(0), fd(1), fd(2)],
        cap_effective: caps.then_some(ev.cap_effective),
        cap_permitted: caps.then_some(ev.cap_permitted),
        cwd: cwd.then(|| kept_path(&ev.cwd, ev.cwd_len as usize, EXEC_CWD_MAX, ev.cwd_flags)),
    }))
}

/// `path` made absolute against the working directory the kernel resolved it in (`./x` run in
/// `/dev/shm` is `/dev/shm/x`), lexically: `.` components dropped, `..` taking one off (the
/// directory is the kernel's own path, without symbolic links). Absolute paths, and a
/// directory that is not absolute (a cut or detached walk), leave it as it is.
pub(super) fn resolve(path: &str, cwd: Option<&str>) -> String {
    let Some(cwd) = cwd.filter(|c| c.starts_with('/') && !path.starts_with('/')) else {
        return path.to_string();
    };
    let mut parts: Vec<&str> = cwd.split('/').filter(|c| !c.is_empty()).collect();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Decoder;
    use crate::decode::tests::header;
    use crate::kernel::clock::BootClock;
    use bytemuck::Zeroable;
    use needle_common::abi::{CALL_PATH_KERNEL, EventKind};
    use needle_common::schema::Detail;

    #[test]
    fn exec_record_decodes_stdio_and_caps() {
        let mut ev = ExecEvent::zeroed();
        ev.header = header(EventKind::Exec);
        ev.flags = EXEC_STDIO | EXEC_CAPS;
        ev.cap_effective = 1 << 21;
        ev.cap_permitted = u64::from(u32::MAX);
        // fd 0: a TCP socket to 10.0.0.1:4444.
        ev.stdio[0] = StdioFd {
            flags: STDIO_OPEN | STDIO_INODE | STDIO_SOCKET,
            mode: S_IFSOCK | 0o777,
            family: AF_INET,
            sock_type: 1,
            ports: 40000 | (4444 << 16),
            ino: 881,
            addr: [u64::from(u32::from_ne_bytes([10, 0, 0, 1])), 0],
            ..StdioFd::zeroed()
        };
        // fd 1: an anonymous pipe (its walk ends at pipefs's nameless root).
        ev.stdio[1] = StdioFd {
            flags: STDIO_OPEN | STDIO_INODE | STDIO_PATH,
            path_flags: CALL_PATH_KERNEL | CALL_PATH_DETACHED,
            mode: S_IFIFO | 0o600,
            ino: 77,
            ..StdioFd::zeroed()
        };
        // fd 2: a log file whose path was cut at the limit mid-component.
        let long = b"err.log\0logs\0app\0var-but-this-is-cut";
        ev.stdio_paths[2][..long.len()].copy_from_slice(long);
        ev.stdio[2] = StdioFd {
            flags: STDIO_OPEN | STDIO_INODE | STDIO_PATH,
            path_flags: CALL_PATH_KERNEL | CALL_PATH_TRUNCATED,
            mode: S_IFREG | 0o644,
            path_len: long.len() as u16,
            ino: 12,
            ..StdioFd::zeroed()
        };
        let mut d = Decoder::new(BootClock::measure());
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        let Detail::Exec {
            state: Some(state), ..
        } = e.detail
        else {
            panic!("exec with state: {:?}", e.detail)
        };
        assert_eq!(
            state.stdio[0],
            Some(Fd {
                kind: FdType::Tcp,
                inode: Some(881),
                path: None,
                addr: Some("10.0.0.1".into()),
                port: Some(4444),
            })
        );
        assert_eq!(
            state.stdio[1],
            Some(Fd {
                kind: FdType::Pipe,
                inode: Some(77),
                path: None,
                addr: None,
                port: None,
            })
        );
        assert_eq!(
            state.stdio[2].as_ref().and_then(|f| f.path.as_deref()),
            Some("…/app/logs/err.log")
        );
        assert_eq!(state.cap_effective, Some(1 << 21));

        // Terminals, other devices, closed fds; nothing read: no state.
        let tty = |rdev| StdioFd {
            flags: STDIO_OPEN | STDIO_INODE,
            mode: S_IFCHR | 0o620,
            rdev,
            ..StdioFd::zeroed()
        };
        assert_eq!(fd_type(&tty((136 << 20) | 3)), FdType::Tty);
        assert_eq!(fd_type(&tty((1 << 20) | 3)), FdType::Char);
        assert_eq!(fd_type(&StdioFd::zeroed()), FdType::Closed);
        ev.flags = 0;
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        assert!(matches!(e.detail, Detail::Exec { state: None, .. }));
    }

    #[test]
    fn relative_executables_resolve_against_the_working_directory() {
        assert_eq!(resolve("./x", Some("/dev/shm")), "/dev/shm/x");
        assert_eq!(resolve("../bin/./y", Some("/tmp/a")), "/tmp/bin/y");
        assert_eq!(resolve("z", Some("/")), "/z");
        assert_eq!(resolve("/bin/sh", Some("/tmp")), "/bin/sh");
        assert_eq!(resolve("./x", None), "./x");
        assert_eq!(resolve("./x", Some("…/deep/dir")), "./x");

        let mut ev = ExecEvent::zeroed();
        ev.header = header(EventKind::Exec);
        let name = b"./miner";
        ev.filename[..name.len()].copy_from_slice(name);
        ev.filename_len = name.len() as u32;
        let cwd = b"shm\0dev\0";
        ev.cwd[..cwd.len()].copy_from_slice(cwd);
        ev.cwd_len = cwd.len() as u32;
        ev.cwd_flags = CALL_PATH_KERNEL;
        ev.flags = EXEC_CWD;
        let mut d = Decoder::new(BootClock::measure());
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        assert_eq!(e.exe_path.as_deref(), Some("/dev/shm/miner"));
        let Detail::Exec { state: Some(s), .. } = e.detail else {
            panic!("state")
        };
        assert_eq!(s.cwd.as_deref(), Some("/dev/shm"));
    }
}
