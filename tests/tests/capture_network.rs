//! End to end: connect and UDP send destinations recorded by the real `capture`, including a
//! race test — the recorded address must be the one the kernel used, not whatever the user
//! buffer held a moment earlier or later.

use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

use needle_common::schema::{Detail, Event, Net};
use needle_tests::capture::{Capture, stop_and_read};
use needle_tests::require_privileges;

fn net_rows(events: &[Event], tgid: u32, kind: &str) -> Vec<Net> {
    events
        .iter()
        .filter(|e| e.process.tgid == tgid)
        .filter_map(|e| match (&e.detail, kind) {
            (Detail::Connect(n), "connect") | (Detail::SendTo(n), "sendto") => Some((**n).clone()),
            _ => None,
        })
        .collect()
}

/// connect(2) on a fresh TCP socket to the sockaddr at `addr` (which another thread may be
/// rewriting); returns the peer port the kernel actually connected to.
fn racy_connect(addr: *const libc::sockaddr_in) -> Option<u16> {
    // SAFETY: plain socket calls on a socket we own; `addr` points to a live sockaddr_in.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let r = libc::connect(
            fd,
            addr.cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        let mut peer: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let ok = r == 0 && libc::getpeername(fd, (&raw mut peer).cast(), &mut len) == 0;
        libc::close(fd);
        ok.then(|| u16::from_be(peer.sin_port))
    }
}

#[test]
fn connects_and_udp_sends_are_recorded_with_the_kernels_address() {
    if !require_privileges("capture_network::connect_sendto") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    // Every connect a row of its own: the test compares them one by one.
    let cap = Capture::start(&out, &["--duration", "60s", "--collapse-window", "0"]);

    // A plain TCP connect and a UDP send to listeners of our own on loopback.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = listener.local_addr().unwrap().port();
    drop(std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap());
    let udp_server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp_server.local_addr().unwrap().port();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"needle", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 16];
    udp_server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(udp_server.recv(&mut buf).unwrap(), 6);

    // The race: two listeners; a thread flips the port in a shared sockaddr while we connect
    // through it, many times. Kernel copies the sockaddr once, at syscall entry.
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    // Accept and drop connections so the backlogs never fill (bounded by the stop flag).
    let accepting = Arc::new(AtomicBool::new(true));
    let acceptors: Vec<_> = [a, b]
        .into_iter()
        .map(|l| {
            let accepting = accepting.clone();
            l.set_nonblocking(true).unwrap();
            std::thread::spawn(move || {
                while accepting.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((s, _)) => drop(s),
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        })
        .collect();
    let port = Arc::new(AtomicU16::new(pa.to_be()));
    let sa = Box::new(libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: pa.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    });
    let sa_ptr = Box::into_raw(sa);
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, port) = (stop.clone(), port.clone());
        let addr = sa_ptr as usize;
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) && flips < 50_000_000 {
                let p = if flips.is_multiple_of(2) { pb } else { pa };
                // SAFETY: the sockaddr outlives this thread (freed after join); racing with
                // connect's read of it is the point of the test (a volatile store of a u16).
                unsafe {
                    std::ptr::write_volatile(
                        &raw mut (*(addr as *mut libc::sockaddr_in)).sin_port,
                        p.to_be(),
                    )
                };
                port.store(p, Ordering::Relaxed);
                flips += 1;
            }
        })
    };
    // Until both ports were hit at least 20 times (bounded: 5,000 attempts or 15 s); yielding so
    // the flipper runs even when the machine is busy with other tests.
    let mut actual = Vec::new();
    let began = std::time::Instant::now();
    let hits = |v: &[u16], p: u16| v.iter().filter(|x| **x == p).count();
    for attempt in 0..5_000 {
        if let Some(p) = racy_connect(sa_ptr) {
            actual.push(p);
        }
        if (hits(&actual, pa) >= 20 && hits(&actual, pb) >= 20)
            || began.elapsed() > Duration::from_secs(15)
        {
            break;
        }
        if attempt % 4 == 0 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    accepting.store(false, Ordering::Relaxed);
    for t in acceptors {
        t.join().unwrap();
    }
    // SAFETY: allocated above with Box::into_raw; the flipper has stopped.
    drop(unsafe { Box::from_raw(sa_ptr) });
    assert!(
        actual.contains(&pa) && actual.contains(&pb),
        "the race happened: both ports were used"
    );

    let (rec, _) = stop_and_read(vec![(cap, &out)]).remove(0);
    let events = rec.events;
    let me = std::process::id();

    let connects = net_rows(&events, me, "connect");
    let plain = connects
        .iter()
        .find(|n| n.dst_port == Some(tcp_port))
        .expect("connect to the listener recorded");
    assert_eq!(
        (
            plain.family.as_ref(),
            plain.protocol.as_ref(),
            plain.dst_addr.as_deref()
        ),
        ("inet", "tcp", Some("127.0.0.1"))
    );
    let sends = net_rows(&events, me, "sendto");
    let send = sends
        .iter()
        .find(|n| n.dst_port == Some(udp_port))
        .expect("UDP send recorded");
    assert_eq!(
        (
            send.family.as_ref(),
            send.protocol.as_ref(),
            send.dst_addr.as_deref()
        ),
        ("inet", "udp", Some("127.0.0.1"))
    );

    // Rows are time-ordered; the racy connects are the last ones to a or b, in order.
    let recorded: Vec<u16> = connects
        .iter()
        .filter_map(|n| n.dst_port)
        .filter(|p| *p == pa || *p == pb)
        .collect();
    assert!(
        recorded.len() >= actual.len(),
        "every connect recorded ({} < {})",
        recorded.len(),
        actual.len()
    );
    let tail = &recorded[recorded.len() - actual.len()..];
    // Connect attempts that failed are recorded too (the hook runs first), so compare only
    // when every attempt connected; otherwise compare the multiset.
    if recorded.len() == actual.len() {
        assert_eq!(
            tail,
            actual.as_slice(),
            "recorded destinations are the ones the kernel connected to"
        );
    } else {
        let count = |v: &[u16], p: u16| v.iter().filter(|x| **x == p).count();
        assert!(
            count(&recorded, pa) >= count(&actual, pa)
                && count(&recorded, pb) >= count(&actual, pb)
        );
    }
}

/// `(count, ret)` of each row of thread `tid` that `pick` selects, in order.
fn counted(
    events: &[Event],
    tid: u32,
    pick: impl Fn(&Detail) -> Option<&Net>,
) -> Vec<(Option<u64>, Option<i64>)> {
    events
        .iter()
        .filter(|e| e.process.pid == tid)
        .filter_map(|e| pick(&e.detail))
        .map(|n| (n.count, n.ret))
        .collect()
}

#[test]
fn repeated_connections_to_one_peer_are_counted_in_the_kernel() {
    if !require_privileges("capture_network::collapse") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    // A window longer than the test: every repeat lands in its first window.
    let cap = Capture::start(&out, &["--duration", "60s", "--collapse-window", "30s"]);

    // 6 connects that succeed and, once the listener is gone, 4 that are refused — all from one
    // thread to one peer, in a thread that then exits (its windows close at its exit).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = std::thread::spawn(move || {
        // SAFETY: no preconditions.
        let tid = unsafe { libc::gettid() as u32 };
        for _ in 0..6 {
            drop(listener.accept().unwrap());
        }
        tid
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let connector = std::thread::spawn(move || {
        // SAFETY: no preconditions.
        let tid = unsafe { libc::gettid() as u32 };
        for _ in 0..6 {
            drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
        }
        // Refused only after the acceptor is done with the listener (it drops it on return).
        rx.recv().unwrap();
        let refused = (0..4)
            .filter(|_| std::net::TcpStream::connect(("127.0.0.1", port)).is_err())
            .count();
        (tid, refused)
    });
    let acceptor_tid = acceptor.join().unwrap();
    tx.send(()).unwrap();
    let (connector_tid, refused) = connector.join().unwrap();
    assert_eq!(refused, 4, "the port was closed");

    // 5 UDP sends from this thread, which outlives the capture: its window is read from the
    // kernel's map at the end.
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = server.local_addr().unwrap().port();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        client.send_to(b"ping", ("127.0.0.1", udp_port)).unwrap();
    }
    // SAFETY: no preconditions.
    let me = unsafe { libc::gettid() as u32 };

    let (rec, summary) = stop_and_read(vec![(cap, &out)]).pop().unwrap();
    let connects = counted(&rec.events, connector_tid, |d| match d {
        Detail::Connect(n) if n.dst_port == Some(port) => Some(n),
        _ => None,
    });
    assert_eq!(
        connects,
        vec![
            (None, Some(0)),
            (Some(5), Some(0)),
            (Some(4), Some(-libc::ECONNREFUSED as i64))
        ],
        "the first connect, then the successful repeats and the refused ones\n{summary}"
    );
    let accepts = counted(&rec.events, acceptor_tid, |d| match d {
        Detail::Accept(n) if n.src_port == Some(port) => Some(n),
        _ => None,
    });
    assert_eq!(accepts.len(), 2, "{accepts:?}\n{summary}");
    assert_eq!(
        accepts[1],
        (Some(5), None),
        "the repeats of the first accept"
    );
    let sends = counted(&rec.events, me, |d| match d {
        Detail::SendTo(n) if n.dst_port == Some(udp_port) => Some(n),
        _ => None,
    });
    assert_eq!(sends, vec![(None, None), (Some(4), None)], "{summary}");
    assert!(
        rec.counter("net_collapsed") >= 5 + 4 + 5 + 4,
        "the kernel counted the repeats: {:?}",
        rec.counters
    );
    assert!(summary.contains("collapsed connections"), "{summary}");
}
