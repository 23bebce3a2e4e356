//! End to end: what an exec row says about the new image's fds 0–2 and capabilities, and the
//! socket-handling calls issue 27's rules need, recorded by the real `capture` from real
//! processes:
//!
//! * a downloader-like writer piped into a reader (`echo | cat`): the writer's stdout and the
//!   reader's stdin are the same pipe inode;
//! * a program whose stdin and stdout are a TCP connection (a reverse shell's shape): type
//!   `tcp`, the peer's address and port — and the `dup` rows of the child that put the socket on
//!   fds 0 and 1;
//! * stdin from a file (its kernel path), stdout and stderr one log file (`2>&1`), stdin from
//!   `/dev/null` (`char`), from a pseudo-terminal (`tty`), from a named FIFO (a pipe with a
//!   path), and closed;
//! * root's capabilities, and none after a switch to an unprivileged user;
//! * the working directory, and a relative executable (`./run-me`) made absolute with it;
//! * a packet socket and a raw ICMP socket created (recorded), a TCP socket (not).
//!
//! Loopback only; rows are found by the unique argv of each child and this process's pids.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use needle_common::schema::{Detail, Event, ExecState, Fd, FdType};
use needle_tests::capture::{Capture, Recorded, stop_and_read};
use needle_tests::require_privileges;

/// The exec row whose argv holds `marker`, and its state.
fn exec_of<'a>(rec: &'a Recorded, marker: &str) -> (&'a Event, &'a ExecState) {
    let e = rec
        .events
        .iter()
        .find(
            |e| matches!(&e.detail, Detail::Exec { argv, .. } if argv.iter().any(|a| a == marker)),
        )
        .unwrap_or_else(|| panic!("no exec row with {marker}"));
    let Detail::Exec {
        state: Some(state), ..
    } = &e.detail
    else {
        panic!("exec row of {marker} without fds: {e:?}")
    };
    (e, state)
}

fn fd(state: &ExecState, i: usize) -> &Fd {
    state.stdio[i]
        .as_ref()
        .unwrap_or_else(|| panic!("fd {i} not recorded: {state:?}"))
}

#[test]
fn exec_rows_describe_stdio_and_capabilities_and_socket_moves_are_recorded() {
    if !require_privileges("capture_stdio::exec_rows_describe_stdio") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let input = dir.join("payload.sh");
    std::fs::write(&input, b"exit 0\n").unwrap();
    let out = dir.join("traces");
    let cap = Capture::start(&out, &["--duration", "60s"]);
    let me = std::process::id();
    let mark = |what: &str| format!("needle-stdio-{what}-{me}");

    // A pipe from a writer to a reader.
    let mut writer = Command::new("/bin/echo")
        .arg(mark("writer"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = writer.stdout.take().unwrap();
    Command::new("/bin/cat")
        .arg("-")
        .arg(mark("reader"))
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    writer.wait().unwrap();

    // stdin and stdout a TCP connection to 127.0.0.1:<port>.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    let conn_out = conn.try_clone().unwrap();
    let shell = Command::new("/bin/sh")
        .args(["-c", "read line; echo \"$line\"", &mark("shell")])
        .stdin(Stdio::from(OwnedFd::from(conn)))
        .stdout(Stdio::from(OwnedFd::from(conn_out)))
        .spawn()
        .unwrap();
    peer.write_all(b"hello\n").unwrap();
    let mut echoed = [0u8; 6];
    peer.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"hello\n");
    let shell_pid = shell.id();
    let _ = { shell }.wait();

    // stdin from a file, /dev/null, a pseudo-terminal, closed.
    let run = |cmd: &mut Command| {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd.status().unwrap();
    };
    let log = std::fs::File::create(dir.join("out.log")).unwrap();
    let log2 = log.try_clone().unwrap();
    Command::new("/bin/cat")
        .arg(mark("file"))
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(log)
        .stderr(log2) // 2>&1: the same file, described once and copied
        .status()
        .unwrap();
    run(Command::new("/bin/true")
        .arg(mark("null"))
        .stdin(Stdio::null()));
    let (mut master, mut slave) = (0, 0);
    // SAFETY: out-parameters for two fds, which we own afterwards.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned these fds to us.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: ttyname of a valid fd; the result is copied at once.
    let pts = unsafe { std::ffi::CStr::from_ptr(libc::ttyname(slave.as_raw_fd())) }
        .to_string_lossy()
        .into_owned();
    run(Command::new("/bin/true")
        .arg(mark("tty"))
        .stdin(Stdio::from(slave)));
    drop(master);
    let mut closed = Command::new("/bin/true");
    closed.arg(mark("closed"));
    // SAFETY: close(2) in the child between fork and exec.
    unsafe {
        closed.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    run(&mut closed);
    // An unprivileged image: no capabilities.
    run(Command::new("/bin/true")
        .arg(mark("nobody"))
        .uid(65534)
        .gid(65534));

    // A named FIFO (the classic `mkfifo /tmp/f; … < /tmp/f` reverse shell): a pipe, with a path.
    let fifo = dir.join("f");
    let cfifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(cfifo.as_ptr(), 0o600) }, 0);
    // Read-write: opening a FIFO for reading alone waits for a writer.
    let fifo_end = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    run(Command::new("/bin/true").arg(mark("fifo")).stdin(fifo_end));

    // A relative executable, run from its directory: exe_path is made absolute with the cwd.
    let local = dir.join("run-me");
    std::fs::copy("/bin/true", &local).unwrap();
    run(Command::new("./run-me")
        .arg(mark("relative"))
        .current_dir(&dir));

    // Sockets: a packet socket and a raw ICMP socket (recorded), a TCP one (not).
    // SAFETY: plain socket(2) calls; the fds are closed at once.
    let (packet, icmp, tcp) = unsafe {
        let eth_p_all = (libc::ETH_P_ALL as u16).to_be() as i32;
        let p = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, eth_p_all);
        let i = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        let t = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        (p, i, t)
    };
    assert!(packet >= 0 && icmp >= 0 && tcp >= 0);
    // SAFETY: our fds.
    unsafe {
        libc::close(packet);
        libc::close(icmp);
        libc::close(tcp);
    }

    let runs = stop_and_read(vec![(cap, &out)]);
    let rec = &runs[0].0;

    let (_, w) = exec_of(rec, &mark("writer"));
    let (_, r) = exec_of(rec, &mark("reader"));
    assert_eq!(fd(w, 1).kind, FdType::Pipe);
    assert_eq!(fd(r, 0).kind, FdType::Pipe);
    assert!(fd(w, 1).inode.is_some());
    assert_eq!(
        fd(w, 1).inode,
        fd(r, 0).inode,
        "one pipe: writer {w:?}, reader {r:?}"
    );
    assert_eq!(fd(r, 0).path, None, "an anonymous pipe has no path");

    let (sh, s) = exec_of(rec, &mark("shell"));
    for i in [0, 1] {
        let f = fd(s, i);
        assert_eq!(
            (f.kind, f.addr.as_deref(), f.port),
            (FdType::Tcp, Some("127.0.0.1"), Some(port)),
            "fd {i}: {f:?}"
        );
    }
    assert_ne!(fd(s, 0).inode, fd(w, 1).inode);
    // The child put the connection on fds 0 and 1 before exec.
    let dups: Vec<i64> = rec
        .events
        .iter()
        .filter(|e| e.process.tgid == sh.process.tgid)
        .filter_map(|e| match &e.detail {
            Detail::Dup(n) if n.dst_port == Some(port) && n.protocol == "tcp" => n.ret,
            _ => None,
        })
        .collect();
    assert_eq!(sh.process.tgid, shell_pid);
    assert!(dups.contains(&0) && dups.contains(&1), "dup rows: {dups:?}");

    let (_, f) = exec_of(rec, &mark("file"));
    assert_eq!(
        (fd(f, 0).kind, fd(f, 0).path.as_deref()),
        (FdType::File, input.to_str())
    );
    let out_log = dir.join("out.log");
    assert_eq!(
        (fd(f, 1).kind, fd(f, 1).path.as_deref()),
        (FdType::File, out_log.to_str())
    );
    assert_eq!(fd(f, 2), fd(f, 1));
    assert_ne!(fd(f, 1).inode, fd(f, 0).inode);
    let (_, n) = exec_of(rec, &mark("null"));
    assert_eq!(
        (fd(n, 0).kind, fd(n, 0).path.as_deref()),
        (FdType::Char, Some("/dev/null"))
    );
    let (_, t) = exec_of(rec, &mark("tty"));
    assert_eq!(
        (fd(t, 0).kind, fd(t, 0).path.as_deref()),
        (FdType::Tty, Some(pts.as_str()))
    );
    let (_, c) = exec_of(rec, &mark("closed"));
    assert_eq!(fd(c, 0), &Fd::closed());
    assert_eq!(fd(c, 1).kind, FdType::Char);

    let (_, ff) = exec_of(rec, &mark("fifo"));
    assert_eq!(
        (fd(ff, 0).kind, fd(ff, 0).path.as_deref()),
        (FdType::Pipe, fifo.to_str())
    );

    let (rel, rs) = exec_of(rec, &mark("relative"));
    assert_eq!(rel.exe_path.as_deref(), local.to_str());
    assert_eq!(rs.cwd.as_deref(), dir.to_str());

    // CAP_SYS_ADMIN (21) for root; nothing for nobody.
    let root_caps = n.cap_effective.expect("caps recorded");
    assert_ne!(root_caps & (1 << 21), 0, "{root_caps:#x}");
    assert_eq!(n.cap_permitted, Some(root_caps));
    let (_, nobody) = exec_of(rec, &mark("nobody"));
    assert_eq!(
        (nobody.cap_effective, nobody.cap_permitted),
        (Some(0), Some(0))
    );

    // SAFETY: no preconditions.
    let tid = unsafe { libc::gettid() as u32 };
    let sockets: Vec<(String, String, Option<i64>)> = rec
        .of_thread(tid)
        .filter_map(|e| match &e.detail {
            Detail::Socket(n) => Some((n.family.to_string(), n.protocol.to_string(), n.ret)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sockets,
        vec![
            ("packet".into(), "raw".into(), Some(i64::from(packet))),
            ("inet".into(), "icmp".into(), Some(i64::from(icmp))),
        ]
    );
}

/// In a container, a file's path is the container's view (the walk stops at the task's root),
/// and a pipe between two of its processes joins as on the host.
#[test]
fn stdio_inside_a_runc_container() {
    use needle_tests::runc::{CgroupStyle, Container, ContainerSpec, runc_available};
    if !require_privileges("capture_stdio::inside_a_container")
        || !needle_tests::require("capture_stdio::inside_a_container", runc_available())
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "60s"]);
    let mut spec = ContainerSpec::new(CgroupStyle::ContainerdSystemd);
    spec.args = vec![
        "/bin/sh".into(),
        "-c".into(),
        "/bin/sleep 1; /bin/true in-container-file < /bin/busybox; \
         /bin/echo in-container-writer | /bin/cat - in-container-reader; /bin/sleep 60"
            .into(),
    ];
    let container = Container::start(spec).expect("start container");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let id = container.id().to_string();
    let runs = stop_and_read(vec![(cap, &out)]);
    drop(container);
    let rec = &runs[0].0;

    let (e, f) = exec_of(rec, "in-container-file");
    assert_eq!(e.container.as_ref().map(|c| &*c.id), Some(id.as_str()));
    assert_eq!(
        (fd(f, 0).kind, fd(f, 0).path.as_deref()),
        (FdType::File, Some("/bin/busybox")),
        "the container's view of its own file"
    );
    let (_, w) = exec_of(rec, "in-container-writer");
    let (_, r) = exec_of(rec, "in-container-reader");
    assert_eq!((fd(w, 1).kind, fd(r, 0).kind), (FdType::Pipe, FdType::Pipe));
    assert_eq!(fd(w, 1).inode, fd(r, 0).inode);
}
