//! End to end: socket state recorded by the real `capture` at syscall exit — bind, listen and
//! accept for TCP over IPv4 and IPv6 and for UDP (local and remote address and port from the
//! kernel's socket, the result), a failing bind, and bind/listen/connect/accept on a unix socket
//! (the path). Loopback only.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};

use needle_common::schema::{Detail, Net};
use needle_tests::capture::{Capture, stop_and_read};
use needle_tests::require_privileges;

fn net(
    family: &str,
    protocol: &str,
    src: Option<(&str, u16)>,
    dst: Option<(&str, u16)>,
    ret: i64,
) -> Net {
    Net {
        family: family.to_string().into(),
        protocol: protocol.to_string().into(),
        src_addr: src.map(|s| s.0.into()),
        src_port: src.map(|s| s.1),
        dst_addr: dst.map(|d| d.0.into()),
        dst_port: dst.map(|d| d.1),
        bytes: None,
        ret: Some(ret),
        count: None,
    }
}

fn unix(src: Option<&str>, dst: Option<&str>, ret: i64) -> Net {
    Net {
        family: "unix".into(),
        protocol: "stream".into(),
        src_addr: src.map(Into::into),
        dst_addr: dst.map(Into::into),
        ret: Some(ret),
        ..Net::default()
    }
}

#[test]
fn bind_listen_accept_and_unix_connect_are_recorded_exactly() {
    if !require_privileges("capture_sockets::bind_listen_accept") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "60s"]);
    // SAFETY: no preconditions.
    let tid = unsafe { libc::gettid() as u32 };
    let mut expected = Vec::new();

    // TCP over IPv4: bind + listen, a connect, the accept (remote = the client's port).
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let p4 = l4.local_addr().unwrap().port();
    expected.push(Detail::Bind(Box::new(net(
        "inet",
        "tcp",
        Some(("127.0.0.1", p4)),
        Some(("0.0.0.0", 0)),
        0,
    ))));
    expected.push(Detail::Listen(Box::new(net(
        "inet",
        "tcp",
        Some(("127.0.0.1", p4)),
        Some(("0.0.0.0", 0)),
        0,
    ))));
    let c4 = TcpStream::connect(("127.0.0.1", p4)).unwrap();
    let (s4, peer4) = l4.accept().unwrap();
    assert_eq!(peer4, c4.local_addr().unwrap());
    expected.push(Detail::Accept(Box::new(net(
        "inet",
        "tcp",
        Some(("127.0.0.1", p4)),
        Some(("127.0.0.1", peer4.port())),
        i64::from(s4.as_raw_fd()),
    ))));

    // UDP bind.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pu = u.local_addr().unwrap().port();
    expected.push(Detail::Bind(Box::new(net(
        "inet",
        "udp",
        Some(("127.0.0.1", pu)),
        Some(("0.0.0.0", 0)),
        0,
    ))));

    // A bind that fails: the port is taken.
    // SAFETY: a socket of our own, bound to a live sockaddr_in, closed below.
    let (fd, r) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: p4.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd,
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        (
            fd,
            if r < 0 {
                -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap())
            } else {
                0
            },
        )
    };
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    assert_eq!(r, -i64::from(libc::EADDRINUSE));
    // The socket stays unbound: the kernel's socket holds no address after the failure.
    expected.push(Detail::Bind(Box::new(net(
        "inet",
        "tcp",
        Some(("0.0.0.0", 0)),
        Some(("0.0.0.0", 0)),
        r,
    ))));

    // TCP over IPv6.
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let p6 = l6.local_addr().unwrap().port();
    expected.push(Detail::Bind(Box::new(net(
        "inet6",
        "tcp",
        Some(("::1", p6)),
        Some(("::", 0)),
        0,
    ))));
    expected.push(Detail::Listen(Box::new(net(
        "inet6",
        "tcp",
        Some(("::1", p6)),
        Some(("::", 0)),
        0,
    ))));
    let c6 = TcpStream::connect(("::1", p6)).unwrap();
    let (s6, peer6) = l6.accept().unwrap();
    assert_eq!(peer6, c6.local_addr().unwrap());
    expected.push(Detail::Accept(Box::new(net(
        "inet6",
        "tcp",
        Some(("::1", p6)),
        Some(("::1", peer6.port())),
        i64::from(s6.as_raw_fd()),
    ))));

    // A unix stream socket: bind (our path), listen, connect (the peer's path), accept.
    let path = tmp.path().join("needle.sock");
    let path_s = path.to_str().unwrap();
    let ul = UnixListener::bind(&path).unwrap();
    expected.push(Detail::Bind(Box::new(unix(Some(path_s), None, 0))));
    expected.push(Detail::Listen(Box::new(unix(None, None, 0))));
    let uc = UnixStream::connect(&path).unwrap();
    expected.push(Detail::Connect(Box::new(unix(None, Some(path_s), 0))));
    let (us, _) = ul.accept().unwrap();
    expected.push(Detail::Accept(Box::new(unix(
        None,
        None,
        i64::from(us.as_raw_fd()),
    ))));

    let (rec, _) = stop_and_read(vec![(cap, &out)]).remove(0);
    // Inet connects come from the cgroup sock_addr hook (capture_network tests them).
    let got: Vec<Detail> = rec
        .of_thread(tid)
        .filter(|e| match &e.detail {
            Detail::Bind(_) | Detail::Listen(_) | Detail::Accept(_) => true,
            Detail::Connect(n) => n.family == "unix",
            _ => false,
        })
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(
        got, expected,
        "this thread's socket rows, exactly and in order"
    );
    drop((c4, s4, u, c6, s6, uc, us));
}
