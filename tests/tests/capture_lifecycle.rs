//! End to end: the real `capture` binary, real eBPF programs, real processes, Parquet read back.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use needle_common::schema::{Detail, Event};
use needle_tests::capture::Capture;
use needle_tests::{Trace, binary, read_trace, require_privileges};

/// The tests here each start a system-wide capture, and two of them load the host on purpose
/// (rotation, a full disk). Run concurrently, that load lands in the exact test's capture: a CI
/// run lost 815 696 events there. One test at a time, as each test's claims are about its own
/// load.
static ONE_CAPTURE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CAPTURE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A program for the load loops, without the `LD_LIBRARY_PATH` cargo gives test binaries (every
/// build script's output directory): with it each exec of `/bin/true` probes ~100 directories for
/// `libc.so.6`, 100 opens instead of 5.
fn load_command(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_remove("LD_LIBRARY_PATH");
    c
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read output dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn all_events(traces: &[Trace]) -> Vec<&Event> {
    traces.iter().flat_map(|t| t.events.iter()).collect()
}

/// cgroup v2 id of this process: the inode number of its cgroup directory.
fn own_cgroup_id() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let line = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = line.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let root = mounts.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        post.starts_with("cgroup2 ")
            .then(|| pre.split(' ').nth(4).map(str::to_string))
            .flatten()
    })?;
    std::fs::metadata(format!("{root}{path}"))
        .ok()
        .map(|m| m.ino())
}

#[test]
fn exec_fork_exit_are_recorded_exactly_and_sigint_finalizes() {
    if !require_privileges("capture_lifecycle::exec_fork_exit") {
        return;
    }
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let mut cap = Capture::start(&out, &["--duration", "60s"]);

    let marker = format!(
        "needle-e2e-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let me = std::process::id();
    let t = Command::new("/bin/true")
        .arg(&marker)
        .arg("second arg")
        .status()
        .unwrap();
    assert!(t.success());
    let sh = Command::new("/bin/sh")
        .args(["-c", "exit 7"])
        .spawn()
        .unwrap();
    let sh_pid = sh.id();
    assert_eq!(sh.wait_with_output().unwrap().status.code(), Some(7));
    let killed = Command::new("/bin/sh")
        .args(["-c", "kill -9 $$"])
        .spawn()
        .unwrap();
    let killed_pid = killed.id();
    let _ = killed.wait_with_output();
    std::thread::sleep(Duration::from_millis(300));

    cap.signal(libc::SIGINT);
    let (code, summary) = cap.wait();
    assert_eq!(code, Some(0), "capture exits cleanly on SIGINT");
    assert!(
        summary.contains("capture summary"),
        "summary printed: {summary}"
    );
    assert!(
        summary.contains("events lost     0"),
        "no loss at this rate: {summary}"
    );

    let files = parquet_files(&out);
    assert!(!files.is_empty());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            name.ends_with(".parquet"),
            "only complete files after SIGINT, found {name}"
        );
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600,
            "{name} is private"
        );
    }
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let traces: Vec<Trace> = files
        .iter()
        .map(|f| read_trace(f).expect("trace readable"))
        .collect();
    let events = all_events(&traces);

    // exec of /bin/true with our marker: path from the kernel, argv from the new mm.
    let exec = events
        .iter()
        .find(
            |e| matches!(&e.detail, Detail::Exec { argv, .. } if argv.iter().any(|a| a == &marker)),
        )
        .expect("exec of /bin/true recorded");
    let Detail::Exec {
        argv, truncated, ..
    } = &exec.detail
    else {
        unreachable!()
    };
    assert_eq!(
        argv,
        &vec![
            "/bin/true".to_string(),
            marker.clone(),
            "second arg".to_string()
        ]
    );
    assert!(!truncated);
    assert_eq!(exec.exe_path.as_deref(), Some("/bin/true"));
    assert_eq!(exec.process.ppid, me, "parent is the test process");
    assert_eq!(&*exec.process.comm, "true");
    assert_eq!(exec.process.uid, 0);
    if let Some(cg) = own_cgroup_id() {
        assert_eq!(
            exec.process.cgroup_id, cg,
            "cgroup id is this test's cgroup v2 id"
        );
    }
    let true_pid = exec.process.tgid;
    // Its fork (row describes the child) and its exit with status 0.
    assert!(
        events.iter().any(|e| e.detail == Detail::Fork
            && e.process.tgid == true_pid
            && e.process.ppid == me),
        "fork of the /bin/true child recorded with ppid = test pid"
    );
    let exit = events
        .iter()
        .find(|e| matches!(e.detail, Detail::Exit { .. }) && e.process.tgid == true_pid)
        .expect("exit of /bin/true");
    assert_eq!(
        exit.detail,
        Detail::Exit {
            code: Some(0),
            signal: None
        }
    );
    assert!(exit.ktime_ns > exec.ktime_ns && exit.time_ns > exec.time_ns);

    // sh -c 'exit 7'
    let sh_exec = events
        .iter()
        .find(|e| e.process.tgid == sh_pid && matches!(&e.detail, Detail::Exec { .. }))
        .expect("exec of sh");
    assert!(
        matches!(&sh_exec.detail, Detail::Exec { argv, .. } if argv == &vec!["/bin/sh".to_string(), "-c".into(), "exit 7".into()])
    );
    let sh_exit = events
        .iter()
        .find(|e| e.process.tgid == sh_pid && matches!(e.detail, Detail::Exit { .. }))
        .expect("exit of sh");
    assert_eq!(
        sh_exit.detail,
        Detail::Exit {
            code: Some(7),
            signal: None
        }
    );
    let k_exit = events
        .iter()
        .find(|e| e.process.tgid == killed_pid && matches!(e.detail, Detail::Exit { .. }))
        .expect("exit of killed sh");
    assert_eq!(
        k_exit.detail,
        Detail::Exit {
            code: None,
            signal: Some(9)
        }
    );

    // Time-sorted within each row group.
    for t in &traces {
        for b in &t.batches {
            let events = needle_common::schema::events_from_batch(b).unwrap();
            assert!(
                events.windows(2).all(|w| w[0].ktime_ns <= w[1].ktime_ns),
                "row group sorted by time"
            );
        }
    }

    // Self-describing files.
    let m = &traces[0].metadata;
    assert_eq!(m.schema_version, needle_common::schema::SCHEMA_VERSION);
    assert!(!m.host.is_empty() && !m.kernel.is_empty());
    assert!(m.writer.starts_with("capture "));
    assert!(m.start_time_ns > 0 && m.end_time_ns >= m.start_time_ns);
    assert_eq!(m.events_lost, 0);
    for p in [
        "sched_process_exec",
        "sched_process_fork",
        "sched_process_exit",
    ] {
        assert!(
            m.programs.iter().any(|s| s.name == p && s.loaded),
            "{p} loaded: {:?}",
            m.programs
        );
    }
    let total: u64 = traces.iter().map(|t| t.metadata.events_written).sum();
    assert_eq!(
        total as usize,
        events.len(),
        "events_written metadata matches rows"
    );
}

#[test]
fn kill_9_leaves_complete_segments_and_one_clearly_partial_file() {
    if !require_privileges("capture_lifecycle::kill_9") {
        return;
    }
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let mut cap = Capture::start(&out, &["--rotate-interval", "1s"]);
    // Activity so segments have rows; wait until at least two segments were finalized.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        load_command("/bin/true").status().unwrap();
        let done = parquet_files(&out)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count();
        if done >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no rotation within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    cap.signal(libc::SIGKILL);
    let _ = cap.wait();
    let files = parquet_files(&out);
    let partial: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".parquet.partial"))
        .collect();
    assert!(
        partial.len() <= 1,
        "at most the open segment is partial: {partial:?}"
    );
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
    {
        let t = read_trace(f)
            .unwrap_or_else(|e| panic!("finalized segment unreadable after kill -9: {e}"));
        assert_eq!(t.metadata.events_written as usize, t.events.len());
    }

    // The next run in the same directory points out the leftover.
    if !partial.is_empty() {
        let run = Command::new(binary("capture"))
            .args(["--duration", "1s", "--output"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            err.contains("incomplete segment from an earlier run"),
            "{err}"
        );
    }
}

#[test]
fn refuses_a_symlinked_output_directory() {
    if !require_privileges("capture_lifecycle::symlink") {
        return;
    }
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = Command::new(binary("capture"))
        .args(["--duration", "1s", "--output"])
        .arg(&link)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn unprivileged_user_gets_a_clear_error() {
    if !require_privileges("capture_lifecycle::unprivileged") {
        return;
    }
    let _serial = one_at_a_time();
    let setpriv = Path::new("/usr/bin/setpriv");
    if !needle_tests::require(
        "capture_lifecycle::unprivileged",
        (!setpriv.exists()).then(|| "setpriv (util-linux) not installed".into()),
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(binary("capture"))
        .args(["--duration", "1s", "--output"])
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("root") || err.contains("not permitted") || err.contains("Permission denied"),
        "clear error: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_full_disk_stops_capture_with_a_clear_error_and_complete_files() {
    if !require_privileges("capture_lifecycle::disk_full") {
        return;
    }
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    // A 4 MiB tmpfs of our own: room for the first segments (a second of a busy machine with
    // every event family on is more than 256 KiB, and more than 1 MiB while this binary's
    // other tests load the host — a clean-clone CI run filled a 1 MiB disk inside the first
    // segment), full within some seconds of the load below.
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let out = mnt.join("traces");
    let mut cap = Capture::start(&out, &["--rotate-interval", "1s", "--duration", "150s"]);
    // Bounded load: at most 150 s of execs with long argv, until capture gives up (~35 s on a
    // quiet machine).
    let deadline = Instant::now() + Duration::from_secs(150);
    while Instant::now() < deadline && !cap.exited() {
        for _ in 0..50 {
            load_command("/bin/true")
                .arg("x".repeat(1000))
                .arg(format!("{:?}", Instant::now()))
                .status()
                .unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let err = cap.stderr_so_far();
    let (code, summary) = cap.wait();
    assert_ne!(
        code,
        Some(0),
        "capture must fail when the disk is full; summary:\n{summary}"
    );
    assert!(
        err.contains("No space left") || err.contains("disk"),
        "the error says the disk is full: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let finalized: Vec<PathBuf> = parquet_files(&out)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(
        !finalized.is_empty(),
        "segments finalized before the disk filled are kept"
    );
    for f in &finalized {
        read_trace(f).unwrap_or_else(|e| panic!("finalized file unreadable after disk full: {e}"));
    }
}
