//! End to end: file events recorded by the real `capture` — open (kernel path on success, the
//! user string and -errno on failure), chmod/fchmod, chown, rename, unlink, memfd_create, mmap
//! with PROT_EXEC — and the kernel-side filters (default prefixes, a process's own /proc files,
//! --skip-prefix, --no-default-filters). Plus the race test: a thread flips the path buffer
//! while another opens through it; the recorded path must be the file the kernel opened.
//!
//! Two captures run at once over the same actions: one with the default filters and a
//! --skip-prefix, one with --no-default-filters.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use needle_common::schema::{Detail, Event, FilePath, PathSource};
use needle_tests::capture::{Capture, Recorded, stop_and_read};
use needle_tests::require_privileges;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A libc result as the kernel returns it: the value, or -errno.
fn ret(r: i64) -> i64 {
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        r
    }
}

fn open(p: &Path, flags: i32, mode: u32) -> i64 {
    // SAFETY: a valid C string; the fd (if any) is ours.
    ret(unsafe { libc::open(cstr(p).as_ptr(), flags, mode) } as i64)
}

fn close(fd: i64) {
    // SAFETY: closing an fd we opened.
    unsafe { libc::close(fd as i32) };
}

fn kernel(p: &Path) -> FilePath {
    FilePath {
        path: p.to_str().unwrap().to_string(),
        source: PathSource::Kernel,
    }
}

fn user(p: &Path) -> FilePath {
    FilePath {
        path: p.to_str().unwrap().to_string(),
        source: PathSource::UserAtExit,
    }
}

/// The file path of a file-event row.
fn file_of(d: &Detail) -> Option<&str> {
    match d {
        Detail::Open { file, .. }
        | Detail::Unlink { file, .. }
        | Detail::Rename { file, .. }
        | Detail::Chmod { file, .. }
        | Detail::Chown { file, .. }
        | Detail::MmapExec { file, .. } => Some(&file.path),
        _ => None,
    }
}

fn gettid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() as u32 }
}

#[test]
fn file_events_filters_and_the_path_race() {
    if !require_privileges("capture_files::file_events") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let skipped_dir = dir.join("skipped");
    std::fs::create_dir(&skipped_dir).unwrap();
    let skipped = skipped_dir.join("quiet.txt");
    std::fs::write(&skipped, b"quiet").unwrap();
    let (a, b) = (dir.join("race-a"), dir.join("race-b"));
    std::fs::write(&a, b"file a").unwrap();
    std::fs::write(&b, b"file b, longer").unwrap();
    let os_release = Path::new("/usr/lib/os-release");
    assert_eq!(
        os_release.canonicalize().unwrap(),
        os_release,
        "a regular file under /usr/lib/"
    );

    let out_default = dir.join("traces-default");
    let out_all = dir.join("traces-all");
    let skip = format!("{}/", skipped_dir.display());
    let cap_default = Capture::start(&out_default, &["--duration", "60s", "--skip-prefix", &skip]);
    let cap_all = Capture::start(
        &out_all,
        &[
            "--duration",
            "60s",
            "--no-default-filters",
            "--collapse-window",
            "0",
        ],
    );

    let me = std::process::id();
    let tid = gettid();
    let created = dir.join("created.txt");
    let renamed = dir.join("renamed.txt");
    let missing = dir.join("missing.txt");
    let mut expected = Vec::new();

    // Create, write, fchmod (kernel path of the fd), close.
    let create_flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC;
    let fd = open(&created, create_flags, 0o640);
    assert!(fd >= 0);
    expected.push(Detail::Open {
        file: kernel(&created),
        flags: create_flags as u64,
        mode: 0o640,
        ret: fd,
        count: None,
    });
    // SAFETY: writing a local buffer to our fd; fchmod of our fd.
    unsafe {
        assert_eq!(
            libc::write(fd as i32, [0x90u8; 4096].as_ptr().cast(), 4096),
            4096
        );
        assert_eq!(libc::fchmod(fd as i32, 0o600), 0);
    }
    expected.push(Detail::Chmod {
        file: kernel(&created),
        mode: 0o600,
        ret: 0,
    });
    close(fd);

    // A failed open keeps the user's string.
    let ro = libc::O_RDONLY | libc::O_CLOEXEC;
    let e = open(&missing, ro, 0);
    assert_eq!(e, -i64::from(libc::ENOENT));
    expected.push(Detail::Open {
        file: user(&missing),
        flags: ro as u64,
        mode: 0,
        ret: e,
        count: None,
    });

    // Filtered by default, recorded with --no-default-filters.
    let fd = open(os_release, ro, 0);
    assert!(fd >= 0);
    close(fd);
    let own_status = Path::new("/proc/self/status");
    let fd = open(own_status, ro, 0);
    assert!(fd >= 0);
    close(fd);
    let own_status = format!("/proc/{me}/status");
    // Filtered by --skip-prefix (only in the default run, which has it).
    let fd = open(&skipped, ro, 0);
    assert!(fd >= 0);
    close(fd);

    // chmod (+x) and chown by path; a failing chmod.
    let cpath = cstr(&created);
    // SAFETY: valid C strings.
    unsafe {
        assert_eq!(libc::chmod(cpath.as_ptr(), 0o755), 0);
        expected.push(Detail::Chmod {
            file: user(&created),
            mode: 0o755,
            ret: 0,
        });
        assert_eq!(libc::chown(cpath.as_ptr(), 1234, 4321), 0);
        expected.push(Detail::Chown {
            file: user(&created),
            uid: 1234,
            gid: 4321,
            ret: 0,
        });
        let r = ret(libc::chmod(cstr(&missing).as_ptr(), 0o700) as i64);
        assert_eq!(r, -i64::from(libc::ENOENT));
        expected.push(Detail::Chmod {
            file: user(&missing),
            mode: 0o700,
            ret: r,
        });
    }

    // An executable mapping of the file.
    let fd = open(&created, ro, 0);
    assert!(fd >= 0);
    expected.push(Detail::Open {
        file: kernel(&created),
        flags: ro as u64,
        mode: 0,
        ret: fd,
        count: None,
    });
    let prot = libc::PROT_READ | libc::PROT_EXEC;
    // SAFETY: a private mapping of our own file, unmapped right away.
    unsafe {
        let m = libc::mmap(
            std::ptr::null_mut(),
            4096,
            prot,
            libc::MAP_PRIVATE,
            fd as i32,
            0,
        );
        assert_ne!(m, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        libc::munmap(m, 4096);
    }
    expected.push(Detail::MmapExec {
        file: kernel(&created),
        prot: prot as u64,
    });
    close(fd);

    // rename, unlink, a failing unlink.
    // SAFETY: valid C strings.
    unsafe {
        assert_eq!(libc::rename(cpath.as_ptr(), cstr(&renamed).as_ptr()), 0);
        expected.push(Detail::Rename {
            file: user(&created),
            new_path: renamed.to_str().unwrap().into(),
            ret: 0,
        });
        assert_eq!(libc::unlink(cstr(&renamed).as_ptr()), 0);
        expected.push(Detail::Unlink {
            file: user(&renamed),
            ret: 0,
        });
        let r = ret(libc::unlink(cpath.as_ptr()) as i64);
        assert_eq!(r, -i64::from(libc::ENOENT));
        expected.push(Detail::Unlink {
            file: user(&created),
            ret: r,
        });
    }

    // memfd_create.
    let name = format!("needle-files-{me}");
    let mflags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let cname = CString::new(name.clone()).unwrap();
    // SAFETY: a valid C string; the fd is ours.
    let mfd = ret(unsafe { libc::memfd_create(cname.as_ptr(), mflags) } as i64);
    assert!(mfd >= 0);
    close(mfd);

    // The race: one thread flips the last byte of a path between `a` and `b`, another opens
    // through it and records (by inode) which file it actually got.
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let (ino_a, ino_b) = (ino(&a), ino(&b));
    let buf: &'static mut [u8] = Box::leak(cstr(&a).into_bytes_with_nul().into_boxed_slice());
    let flip_at = buf.len() - 2; // the 'a' of race-a
    let addr = buf.as_mut_ptr() as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) && flips < 50_000_000 {
                let c = if flips.is_multiple_of(2) { b'b' } else { b'a' };
                // SAFETY: the buffer is leaked (lives forever); racing with open's read of it is
                // the point (a volatile single-byte store: the name is always race-a or race-b).
                unsafe { std::ptr::write_volatile((addr as *mut u8).add(flip_at), c) };
                flips += 1;
            }
        })
    };
    let opener = std::thread::spawn(move || {
        let mut actual = Vec::new();
        let began = Instant::now();
        let hits = |v: &[bool], x: bool| v.iter().filter(|y| **y == x).count();
        for attempt in 0..5_000 {
            // SAFETY: the buffer always holds a NUL-terminated name; fstat into a local.
            let got = unsafe {
                let fd = libc::open(
                    addr as *const libc::c_char,
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                assert!(fd >= 0, "{}", std::io::Error::last_os_error());
                let mut st: libc::stat = std::mem::zeroed();
                assert_eq!(libc::fstat(fd, &mut st), 0);
                libc::close(fd);
                st.st_ino
            };
            assert!(got == ino_a || got == ino_b);
            actual.push(got == ino_b);
            if (hits(&actual, false) >= 20 && hits(&actual, true) >= 20)
                || began.elapsed() > Duration::from_secs(10)
            {
                break;
            }
            if attempt % 4 == 0 {
                std::thread::yield_now();
            }
        }
        (gettid(), actual)
    });
    let (opener_tid, actual) = opener.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(
        actual.contains(&true) && actual.contains(&false),
        "the race happened: both files were opened"
    );

    let runs = stop_and_read(vec![(cap_default, &out_default), (cap_all, &out_all)]);
    let (def, all) = (&runs[0].0, &runs[1].0);
    let dir_s = format!("{}/", dir.display());
    let mine = |r: &Recorded| -> Vec<Detail> {
        r.of_thread(tid)
            .filter(|e| {
                file_of(&e.detail).is_some_and(|p| p.starts_with(&dir_s) && !p.starts_with(&skip))
            })
            .map(|e| e.detail.clone())
            .collect()
    };
    assert_eq!(
        mine(def),
        expected,
        "the file rows of this thread, exactly and in order (default filters)"
    );
    assert_eq!(
        mine(all),
        expected,
        "the file rows of this thread, exactly and in order (--no-default-filters)"
    );
    let memfd = |r: &Recorded| -> Vec<Detail> {
        r.of_thread(tid)
            .filter(|e| matches!(e.detail, Detail::MemfdCreate { .. }))
            .map(|e| e.detail.clone())
            .collect()
    };
    let memfd_row = Detail::MemfdCreate {
        name: name.clone(),
        flags: u64::from(mflags),
        ret: mfd,
    };
    assert_eq!(memfd(def), vec![memfd_row.clone()]);
    assert_eq!(memfd(all), vec![memfd_row]);

    // The filters: absent and counted by default, present without them.
    let opened = |r: &Recorded, path: &str| -> Vec<Event> {
        r.of_thread(tid)
            .filter(|e| matches!(&e.detail, Detail::Open { file, .. } if file.path == path))
            .cloned()
            .collect()
    };
    let skipped_s = skipped.to_str().unwrap();
    for path in ["/usr/lib/os-release", own_status.as_str(), skipped_s] {
        assert!(
            opened(def, path).is_empty(),
            "{path} is filtered by default"
        );
    }
    assert!(
        def.counter("file_filtered") >= 2,
        "default prefix and --skip-prefix counted: {:?}",
        def.counters
    );
    assert!(
        def.counter("proc_self_filtered") >= 1,
        "own /proc read counted: {:?}",
        def.counters
    );
    for path in ["/usr/lib/os-release", own_status.as_str(), skipped_s] {
        let rows = opened(all, path);
        assert_eq!(
            rows.len(),
            1,
            "{path} recorded once with --no-default-filters"
        );
        let Detail::Open {
            file,
            flags,
            mode,
            ret,
            count: None,
        } = &rows[0].detail
        else {
            unreachable!()
        };
        assert_eq!(
            (file.source, *flags, *mode),
            (PathSource::Kernel, ro as u64, 0)
        );
        assert!(*ret >= 0);
    }
    assert_eq!(all.counter("file_filtered"), 0, "{:?}", all.counters);
    assert_eq!(all.counter("proc_self_filtered"), 0, "{:?}", all.counters);

    // The race: the opener's recorded paths are the files it actually got, in order
    // (--collapse-window 0: every open is a row).
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let racy = |r: &Recorded| -> Vec<(bool, Option<u64>)> {
        r.of_thread(opener_tid)
            .filter_map(|e| match &e.detail {
                Detail::Open {
                    file, ret, count, ..
                } if *ret >= 0 && (file.path == a_s || file.path == b_s) => {
                    assert_eq!(file.source, PathSource::Kernel);
                    Some((file.path == b_s, *count))
                }
                _ => None,
            })
            .collect()
    };
    {
        let r = all;
        let recorded: Vec<bool> = racy(r)
            .into_iter()
            .map(|(is_b, count)| {
                assert_eq!(count, None, "no collapsing with --collapse-window 0");
                is_b
            })
            .collect();
        assert_eq!(
            recorded.len(),
            actual.len(),
            "every racy open recorded (losses: {:?})",
            r.lost_by_kind
        );
        assert_eq!(
            recorded, actual,
            "recorded paths are the files the kernel opened"
        );
    }
    // By default repeats are collapsed in the kernel, keyed by the inode it opened: each
    // file's rows and counts add up to exactly the opens that got that file.
    let rows = racy(def);
    let opens_of = |b: bool| -> u64 {
        rows.iter()
            .filter(|(is_b, _)| *is_b == b)
            .map(|(_, count)| count.unwrap_or(1))
            .sum()
    };
    let actual_of = |b: bool| actual.iter().filter(|x| **x == b).count() as u64;
    assert_eq!(
        (opens_of(false), opens_of(true)),
        (actual_of(false), actual_of(true)),
        "every racy open accounted for, by the file the kernel opened: {rows:?} (losses: {:?})",
        def.lost_by_kind
    );
    let collapsed: u64 = rows.iter().filter_map(|(_, c)| *c).sum();
    assert!(
        rows.len() < actual.len() && collapsed > 0,
        "repeats were collapsed: {} rows for {} opens",
        rows.len(),
        actual.len()
    );
    assert!(
        def.counter("open_collapsed") >= collapsed,
        "{:?}",
        def.counters
    );
}
