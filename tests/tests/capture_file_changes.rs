//! End to end: the file-tree and metadata changes recorded by the real `capture` for issue 27's
//! rules — link/linkat (an `O_TMPFILE` made visible through `AT_EMPTY_PATH`: the fd's kernel
//! path), symlink/symlinkat, mkdir/mkdirat, truncate/ftruncate, and every way to set a file's
//! times (utimensat with explicit, now and omitted times, futimens, and the raw utimes,
//! futimesat and utime syscalls, which glibc no longer calls itself) — each with its result.
//! Plus what the log-wiping and environment-harvesting rules need from opens: an open with
//! `O_TRUNC` shows it in `flags`, and a process's read of its own `/proc/<pid>/environ` is
//! recorded although its reads of its own `/proc/<pid>/status` are filtered.
//!
//! Every call is made by the test thread itself and the assertions keep to that thread's rows.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use needle_common::abi::{UTIMES_ATIME_NOW, UTIMES_MTIME_NOW, UTIMES_MTIME_OMIT};
use needle_common::schema::{Detail, FilePath, PathSource};
use needle_tests::capture::{Capture, stop_and_read};
use needle_tests::require_privileges;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn text(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A libc result as the kernel returns it: the value, or -errno.
fn ret(r: i64) -> i64 {
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        r
    }
}

fn user(p: &str) -> FilePath {
    FilePath {
        path: p.into(),
        source: PathSource::UserAtExit,
    }
}

fn kernel(p: &Path) -> FilePath {
    FilePath {
        path: text(p),
        source: PathSource::Kernel,
    }
}

const S: i64 = 1_000_000_000;

#[test]
fn links_directories_truncation_and_timestamps_are_recorded_exactly() {
    if !require_privileges("capture_file_changes::links_directories_truncation_and_timestamps") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let out = dir.join("traces");
    let log = dir.join("app.log");
    std::fs::write(&log, b"line one\nline two\n").unwrap();
    let cap = Capture::start(&out, &["--duration", "60s"]);
    // SAFETY: no preconditions.
    let tid = unsafe { libc::gettid() as u32 };
    let me = std::process::id();
    let (clog, cdir) = (cstr(&log), cstr(&dir));
    let mut expected = Vec::new();

    // SAFETY: valid C strings and buffers; every fd opened here is closed here.
    unsafe {
        // Hard links: by path, and an O_TMPFILE made visible by its fd.
        let hard = dir.join("hard.log");
        assert_eq!(libc::link(clog.as_ptr(), cstr(&hard).as_ptr()), 0);
        expected.push(Detail::Link {
            file: user(&text(&log)),
            new_path: text(&hard),
            ret: 0,
        });
        let r = ret(libc::link(clog.as_ptr(), cstr(&hard).as_ptr()) as i64);
        assert_eq!(r, -i64::from(libc::EEXIST));
        expected.push(Detail::Link {
            file: user(&text(&log)),
            new_path: text(&hard),
            ret: r,
        });
        let anon = libc::open(cdir.as_ptr(), libc::O_TMPFILE | libc::O_WRONLY, 0o600);
        assert!(anon >= 0, "{}", std::io::Error::last_os_error());
        let visible = dir.join("visible.bin");
        let empty = CString::new("").unwrap();
        assert_eq!(
            libc::linkat(
                anon,
                empty.as_ptr(),
                libc::AT_FDCWD,
                cstr(&visible).as_ptr(),
                libc::AT_EMPTY_PATH
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        libc::close(anon);
        expected.push(Detail::Link {
            // Checked apart below: the name the kernel gives an unlinked O_TMPFILE.
            file: kernel(&dir),
            new_path: text(&visible),
            ret: 0,
        });

        // Symbolic links: the target is text, recorded as given.
        let shadow_link = dir.join("shadow");
        let target = CString::new("/etc/shadow").unwrap();
        assert_eq!(
            libc::symlink(target.as_ptr(), cstr(&shadow_link).as_ptr()),
            0
        );
        expected.push(Detail::Symlink {
            file: user("/etc/shadow"),
            new_path: text(&shadow_link),
            ret: 0,
        });
        let dfd = libc::open(cdir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(dfd >= 0);
        let (rel_target, rel_link) = (
            CString::new("app.log").unwrap(),
            CString::new("rel").unwrap(),
        );
        assert_eq!(
            libc::symlinkat(rel_target.as_ptr(), dfd, rel_link.as_ptr()),
            0
        );
        expected.push(Detail::Symlink {
            file: user("app.log"),
            new_path: "rel".into(),
            ret: 0,
        });

        // Directories: a hidden one, again (EEXIST), and one relative to a directory fd.
        let hidden = dir.join(".cache");
        assert_eq!(libc::mkdir(cstr(&hidden).as_ptr(), 0o700), 0);
        expected.push(Detail::Mkdir {
            file: user(&text(&hidden)),
            mode: 0o700,
            ret: 0,
        });
        let r = ret(libc::mkdir(cstr(&hidden).as_ptr(), 0o755) as i64);
        assert_eq!(r, -i64::from(libc::EEXIST));
        expected.push(Detail::Mkdir {
            file: user(&text(&hidden)),
            mode: 0o755,
            ret: r,
        });
        let sub = CString::new("sub").unwrap();
        assert_eq!(libc::mkdirat(dfd, sub.as_ptr(), 0o750), 0);
        expected.push(Detail::Mkdir {
            file: user("sub"),
            mode: 0o750,
            ret: 0,
        });
        libc::close(dfd);

        // Truncation: by path, an open with O_TRUNC (in its flags), and through an fd (the
        // kernel's path).
        assert_eq!(libc::truncate(clog.as_ptr(), 5), 0);
        expected.push(Detail::Truncate {
            file: user(&text(&log)),
            length: 5,
            ret: 0,
        });
        let wipe = libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC;
        let fd = libc::open(clog.as_ptr(), wipe);
        assert!(fd >= 0);
        expected.push(Detail::Open {
            file: kernel(&log),
            flags: wipe as u64,
            mode: 0,
            ret: fd as i64,
            count: None,
        });
        assert_eq!(libc::ftruncate(fd, 0), 0);
        expected.push(Detail::Truncate {
            file: kernel(&log),
            length: 0,
            ret: 0,
        });

        // Times: explicit access time with the modification time left alone; both now (a null
        // array); futimens on the fd; the raw older syscalls with their own units.
        let times = [
            libc::timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 5,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        ];
        assert_eq!(
            libc::utimensat(libc::AT_FDCWD, clog.as_ptr(), times.as_ptr(), 0),
            0
        );
        expected.push(Detail::Utimes {
            file: user(&text(&log)),
            atime_ns: Some(1_000_000_000 * S + 5),
            mtime_ns: None,
            flags: UTIMES_MTIME_OMIT,
            ret: 0,
        });
        assert_eq!(
            libc::utimensat(libc::AT_FDCWD, clog.as_ptr(), std::ptr::null(), 0),
            0
        );
        expected.push(Detail::Utimes {
            file: user(&text(&log)),
            atime_ns: None,
            mtime_ns: None,
            flags: UTIMES_ATIME_NOW | UTIMES_MTIME_NOW,
            ret: 0,
        });
        let stamped = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            libc::timespec {
                tv_sec: 946_684_800, // 2000-01-01: a timestomped mtime
                tv_nsec: 0,
            },
        ];
        assert_eq!(libc::futimens(fd, stamped.as_ptr()), 0);
        expected.push(Detail::Utimes {
            file: kernel(&log),
            atime_ns: None,
            mtime_ns: Some(946_684_800 * S),
            flags: UTIMES_ATIME_NOW,
            ret: 0,
        });
        libc::close(fd);
        let tv = [
            libc::timeval {
                tv_sec: 100,
                tv_usec: 7,
            },
            libc::timeval {
                tv_sec: 200,
                tv_usec: 9,
            },
        ];
        assert_eq!(
            libc::syscall(libc::SYS_utimes, clog.as_ptr(), tv.as_ptr()),
            0
        );
        expected.push(Detail::Utimes {
            file: user(&text(&log)),
            atime_ns: Some(100 * S + 7_000),
            mtime_ns: Some(200 * S + 9_000),
            flags: 0,
            ret: 0,
        });
        assert_eq!(
            libc::syscall(
                libc::SYS_futimesat,
                libc::AT_FDCWD,
                clog.as_ptr(),
                std::ptr::null::<libc::timeval>()
            ),
            0
        );
        expected.push(Detail::Utimes {
            file: user(&text(&log)),
            atime_ns: None,
            mtime_ns: None,
            flags: UTIMES_ATIME_NOW | UTIMES_MTIME_NOW,
            ret: 0,
        });
        let buf = libc::utimbuf {
            actime: 300,
            modtime: 400,
        };
        assert_eq!(libc::syscall(libc::SYS_utime, clog.as_ptr(), &buf), 0);
        expected.push(Detail::Utimes {
            file: user(&text(&log)),
            atime_ns: Some(300 * S),
            mtime_ns: Some(400 * S),
            flags: 0,
            ret: 0,
        });
        let missing = dir.join("missing");
        let r = ret(
            libc::utimensat(libc::AT_FDCWD, cstr(&missing).as_ptr(), std::ptr::null(), 0) as i64,
        );
        assert_eq!(r, -i64::from(libc::ENOENT));
        expected.push(Detail::Utimes {
            file: user(&text(&missing)),
            atime_ns: None,
            mtime_ns: None,
            flags: UTIMES_ATIME_NOW | UTIMES_MTIME_NOW,
            ret: r,
        });

        // Reading one's own environment is recorded; one's own status is filtered.
        for own in ["/proc/self/environ", "/proc/self/status"] {
            let fd = libc::open(
                CString::new(own).unwrap().as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            assert!(fd >= 0);
            libc::close(fd);
        }
    }

    let runs = stop_and_read(vec![(cap, &out)]);
    let rec = &runs[0].0;
    let in_dir = |p: &str| p.starts_with(&text(&dir)) || !p.starts_with('/');
    let mine: Vec<Detail> = rec
        .of_thread(tid)
        .filter(|e| match &e.detail {
            Detail::Link { new_path, .. } | Detail::Symlink { new_path, .. } => in_dir(new_path),
            Detail::Mkdir { file, .. }
            | Detail::Truncate { file, .. }
            | Detail::Utimes { file, .. } => in_dir(&file.path),
            Detail::Open { file, .. } => file.path == text(&log),
            _ => false,
        })
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(mine.len(), expected.len(), "{mine:#?}");
    for (i, (got, want)) in mine.iter().zip(&expected).enumerate() {
        if i == tmpfile_link_index(&expected) {
            let Detail::Link {
                file,
                new_path,
                ret,
            } = got
            else {
                panic!("row {i}: {got:?}")
            };
            assert_eq!(
                (new_path.as_str(), *ret),
                (text(&dir.join("visible.bin")).as_str(), 0)
            );
            assert_eq!(file.source, PathSource::Kernel, "{file:?}");
            assert!(
                file.path.starts_with(&format!("{}/", dir.display())),
                "{file:?}"
            );
            continue;
        }
        assert_eq!(got, want, "row {i}");
    }

    let environ = format!("/proc/{me}/environ");
    let status = format!("/proc/{me}/status");
    let opened = |p: &str| {
        rec.of_thread(tid)
            .any(|e| matches!(&e.detail, Detail::Open { file, .. } if file.path == p))
    };
    assert!(opened(&environ), "{environ} recorded");
    assert!(!opened(&status), "{status} filtered");
    assert!(rec.counter("proc_self_filtered") > 0);
}

/// Where the `linkat(…, AT_EMPTY_PATH)` row is in `expected` (its file is the only kernel one
/// among the links).
fn tmpfile_link_index(expected: &[Detail]) -> usize {
    expected
        .iter()
        .position(|d| matches!(d, Detail::Link { file, .. } if file.source == PathSource::Kernel))
        .unwrap()
}
