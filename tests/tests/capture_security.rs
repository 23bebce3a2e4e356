//! End to end: security-relevant calls recorded by the real `capture` — ptrace, a write-open of
//! another process's /proc/<pid>/mem, process_vm_writev, init_module/finit_module (junk, never a
//! real module), set*id, capset, userfaultfd, mount (a failing one: no host mount), unshare and
//! setns (in a throwaway thread), bpf (recorded commands and the counted read-only ones), keyctl,
//! and the exec of a memfd-backed file (fileless).

use std::ffi::CString;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use needle_common::schema::{Detail, FilePath, PathSource};
use needle_tests::capture::{Capture, stop_and_read};
use needle_tests::require_privileges;

/// A raw syscall result as the kernel returns it: the value, or -errno.
fn ret(r: i64) -> i64 {
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        r
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn gettid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() as u32 }
}

fn is_security(d: &Detail) -> bool {
    matches!(
        d,
        Detail::Ptrace { .. }
            | Detail::ProcessVmWritev { .. }
            | Detail::ProcMemWrite { .. }
            | Detail::ModuleLoad { .. }
            | Detail::SetId { .. }
            | Detail::Capset { .. }
            | Detail::Userfaultfd { .. }
            | Detail::Mount { .. }
            | Detail::Unshare { .. }
            | Detail::Setns { .. }
            | Detail::Bpf { .. }
            | Detail::Keyctl { .. }
    )
}

/// A `sleep` child that is killed and reaped on drop (also when an assertion fails).
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn security_calls_are_recorded_exactly() {
    if !require_privileges("capture_security::security_calls") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let junk = dir.join("junk.ko");
    std::fs::write(&junk, b"needle: this is not a kernel module\n").unwrap();
    let out = dir.join("traces");
    let cap = Capture::start(&out, &["--duration", "60s"]);
    let me = std::process::id();
    let tid = gettid();
    let mut expected = Vec::new();

    // ptrace(PTRACE_SEIZE) of a child, and a write-open of its memory.
    let child = Sleeper(Command::new("sleep").arg("30").spawn().unwrap());
    let cpid = child.0.id();
    // SAFETY: seizing our own child; it is killed on drop.
    let r = ret(unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            cpid as libc::pid_t,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    });
    assert_eq!(r, 0);
    expected.push(Detail::Ptrace {
        request: libc::PTRACE_SEIZE,
        target_pid: cpid,
        ret: 0,
    });
    let mem = format!("/proc/{cpid}/mem");
    // SAFETY: a valid C string; the fd is closed below.
    let fd = ret(unsafe {
        libc::open(
            cstr(Path::new(&mem)).as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC,
        )
    } as i64);
    assert!(fd >= 0);
    // SAFETY: our fd.
    unsafe { libc::close(fd as i32) };
    expected.push(Detail::ProcMemWrite {
        file: FilePath {
            path: mem.clone(),
            source: PathSource::Kernel,
        },
        target_pid: cpid,
        ret: fd,
    });
    drop(child);

    // process_vm_writev into our own memory.
    let src = [7u8; 8];
    let mut dst = [0u8; 8];
    let local = libc::iovec {
        iov_base: src.as_ptr() as *mut _,
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: 8,
    };
    // SAFETY: both iovecs describe live local buffers.
    let r =
        ret(unsafe { libc::process_vm_writev(me as libc::pid_t, &local, 1, &remote, 1, 0) } as i64);
    assert_eq!((r, dst), (8, src));
    expected.push(Detail::ProcessVmWritev {
        target_pid: me,
        ret: 8,
    });

    // Module loading of junk: the kernel refuses it; the attempt is the event.
    let empty = CString::new("").unwrap();
    // SAFETY: a readable fd and valid strings; the kernel rejects the image.
    let jfd = unsafe { libc::open(cstr(&junk).as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(jfd >= 0);
    // SAFETY: as above.
    let r = ret(unsafe { libc::syscall(libc::SYS_finit_module, jfd, empty.as_ptr(), 0) });
    assert!(r < 0, "junk is not loadable");
    expected.push(Detail::ModuleLoad {
        file: Some(FilePath {
            path: junk.to_str().unwrap().into(),
            source: PathSource::Kernel,
        }),
        ret: r,
    });
    // SAFETY: our fd.
    unsafe { libc::close(jfd) };
    let image = b"needle: not an ELF image either";
    // SAFETY: a live buffer and its length.
    let r = ret(unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len(),
            empty.as_ptr(),
        )
    });
    assert!(r < 0);
    expected.push(Detail::ModuleLoad { file: None, ret: r });

    // set*id to the ids we already have (raw syscalls: glibc would repeat them on every thread).
    // SAFETY: no memory arguments; the ids do not change.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // SAFETY: as above.
    let r = ret(unsafe { libc::syscall(libc::SYS_setresuid, -1, euid, -1) });
    assert_eq!(r, 0);
    expected.push(Detail::SetId {
        uid: Some(euid),
        gid: None,
        nr: libc::SYS_setresuid as u32,
        ret: 0,
    });
    // SAFETY: as above.
    let r = ret(unsafe { libc::syscall(libc::SYS_setgid, egid) });
    assert_eq!(r, 0);
    expected.push(Detail::SetId {
        uid: None,
        gid: Some(egid),
        nr: libc::SYS_setgid as u32,
        ret: 0,
    });

    // capset of the capabilities we have.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [0u32; 6];
    // SAFETY: version-3 header and two data structs (6 u32).
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()),
            0
        );
        assert_eq!(
            libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()),
            0
        );
    }
    let effective = u64::from(data[0]) | (u64::from(data[3]) << 32);
    assert_ne!(effective, 0, "root has capabilities");
    expected.push(Detail::Capset { effective, ret: 0 });

    // userfaultfd.
    let uflags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
    // SAFETY: no memory arguments.
    let r = ret(unsafe { libc::syscall(libc::SYS_userfaultfd, uflags) });
    if r >= 0 {
        // SAFETY: our fd.
        unsafe { libc::close(r as i32) };
    }
    expected.push(Detail::Userfaultfd {
        flags: uflags,
        ret: r,
    });

    // A mount that cannot happen (the target does not exist): no host mount is made.
    let target = format!("/nonexistent-needle-{me}/mnt");
    let (msrc, mtarget, mtype) = (
        CString::new("needle-src").unwrap(),
        CString::new(target.clone()).unwrap(),
        CString::new("tmpfs").unwrap(),
    );
    let mflags = libc::MS_NOSUID | libc::MS_NODEV;
    // SAFETY: valid C strings; the call fails.
    let r = ret(unsafe {
        libc::mount(
            msrc.as_ptr(),
            mtarget.as_ptr(),
            mtype.as_ptr(),
            mflags,
            std::ptr::null(),
        )
    } as i64);
    assert_eq!(r, -i64::from(libc::ENOENT));
    expected.push(Detail::Mount {
        source: "needle-src".into(),
        target,
        fstype: "tmpfs".into(),
        flags: mflags,
        ret: r,
    });

    // bpf: a (bogus) program load is recorded; a map lookup is counted, not recorded.
    let attr = [0u8; 128];
    // SAFETY: a zeroed attr of the given size; the kernel rejects both.
    let (load, lookup) = unsafe {
        (
            ret(libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len())),
            ret(libc::syscall(libc::SYS_bpf, 1, attr.as_ptr(), attr.len())),
        )
    };
    assert!(load < 0 && lookup < 0);
    expected.push(Detail::Bpf { cmd: 5, ret: load });

    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, create = 0).
    // SAFETY: no memory arguments.
    let r = ret(unsafe { libc::syscall(libc::SYS_keyctl, 0, -2, 0) });
    expected.push(Detail::Keyctl { op: 0, ret: r });

    // unshare(CLONE_NEWUTS) and setns back into a UTS namespace, each in a throwaway thread.
    let unshare = std::thread::spawn(|| {
        // SAFETY: affects only this thread, which ends right after.
        let r = ret(unsafe { libc::unshare(libc::CLONE_NEWUTS) } as i64);
        (gettid(), r)
    })
    .join()
    .unwrap();
    assert_eq!(unshare.1, 0);
    let setns = std::thread::spawn(|| {
        let ns = std::fs::File::open("/proc/self/ns/uts").unwrap();
        // SAFETY: joining the namespace this thread is already in; the thread ends right after.
        let r = ret(
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWUTS) } as i64,
        );
        (gettid(), r)
    })
    .join()
    .unwrap();
    assert_eq!(setns.1, 0);

    // Exec of a memfd-backed copy of /bin/true (not close-on-exec: the child execs it by fd).
    let name = CString::new("needle-fileless").unwrap();
    // SAFETY: a valid C string; the fd becomes the File's.
    let mfd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(mfd >= 0);
    // SAFETY: a fresh fd we own.
    let mut memfile = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(mfd) };
    memfile
        .write_all(&std::fs::read("/bin/true").unwrap())
        .unwrap();
    let mut fileless = Command::new(format!("/proc/self/fd/{mfd}"))
        .spawn()
        .unwrap();
    let fileless_pid = fileless.id();
    assert!(fileless.wait().unwrap().success());
    drop(memfile);

    let (rec, _) = stop_and_read(vec![(cap, &out)]).remove(0);

    let got: Vec<Detail> = rec
        .of_thread(tid)
        .filter(|e| is_security(&e.detail))
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(
        got, expected,
        "this thread's security rows, exactly and in order"
    );
    assert!(
        !rec.of_thread(tid)
            .any(|e| matches!(&e.detail, Detail::Open { file, .. } if file.path == mem)),
        "the /proc/<pid>/mem write-open is a proc_mem_write row, not an open row"
    );
    assert!(
        !rec.of_thread(tid)
            .any(|e| matches!(e.detail, Detail::Bpf { cmd: 1, .. })),
        "the map lookup is not recorded"
    );

    let only = |t: u32| -> Vec<Detail> {
        rec.of_thread(t)
            .filter(|e| is_security(&e.detail))
            .map(|e| e.detail.clone())
            .collect()
    };
    assert_eq!(
        only(unshare.0),
        vec![Detail::Unshare {
            flags: libc::CLONE_NEWUTS as u64,
            ret: 0
        }]
    );
    assert_eq!(
        only(setns.0),
        vec![Detail::Setns {
            flags: libc::CLONE_NEWUTS as u64,
            ret: 0
        }]
    );

    let exec = rec
        .events
        .iter()
        .find(|e| e.process.tgid == fileless_pid && matches!(e.detail, Detail::Exec { .. }))
        .expect("the memfd exec recorded");
    let ctx = exec
        .context
        .as_ref()
        .expect("exec rows carry the process context");
    assert_eq!(ctx.exe_fileless, Some(true), "exe {:?}", exec.exe_path);
}

/// The filtered calls are counted from the moment capture says it is recording: 50 bpf map
/// lookups right after start are all in `bpf_read_filtered` (trace metadata and summary).
#[test]
fn filter_counters_start_when_recording_starts() {
    if !require_privileges("capture_security::filter_counters") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "60s"]);
    let attr = [0u8; 128];
    for _ in 0..50 {
        // SAFETY: a zeroed attr of the given size; the kernel rejects the lookup.
        let r = unsafe { libc::syscall(libc::SYS_bpf, 1, attr.as_ptr(), attr.len()) };
        assert!(r < 0);
    }
    let (rec, summary) = stop_and_read(vec![(cap, &out)]).remove(0);
    assert!(
        rec.counter("bpf_read_filtered") >= 50,
        "every lookup counted: {:?}\n{summary}",
        rec.counters
    );
}
