//! End to end: per-thread syscall profiles (on by default) and the full syscall stream
//! (`--syscalls full`) recorded by the real `capture`. A thread calls getppid exactly N times
//! and exits; its profile row counts them, and the full stream has exactly N getppid rows with
//! the parent's pid as the result. Both captures run at once over the same thread. A shell that
//! execs another program of the same name shows that every full-stream row carries its
//! process's context as it was at that moment: the executable before the exec, the new one
//! after, though nothing in the kernel's record of the call (ids, command name) changed.

use needle_common::schema::Detail;
use needle_tests::capture::{Capture, Recorded, stop_and_read};
use needle_tests::require_privileges;

const N: u64 = 1000;
const GETPPID: u32 = libc::SYS_getppid as u32;

#[test]
fn profiles_count_and_full_mode_records_every_syscall() {
    if !require_privileges("capture_syscalls::profiles_and_full") {
        return;
    }
    assert_eq!(GETPPID, 110);
    let tmp = tempfile::tempdir().unwrap();
    let (out_profile, out_full) = (tmp.path().join("profile"), tmp.path().join("full"));
    let cap_profile = Capture::start(&out_profile, &["--duration", "60s"]);
    let cap_full = Capture::start(&out_full, &["--duration", "60s", "--syscalls", "full"]);

    // SAFETY: no preconditions.
    let ppid = i64::from(unsafe { libc::getppid() });
    let tid = std::thread::spawn(|| {
        for _ in 0..N {
            // SAFETY: no arguments; the raw syscall (no libc caching).
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        // SAFETY: no preconditions.
        unsafe { libc::gettid() as u32 }
    })
    .join()
    .unwrap();
    // `true` under the shell's own name: the exec leaves the command name as it was.
    let other_sh = tmp.path().join("sh");
    std::fs::copy("/bin/true", &other_sh).unwrap();
    let other_sh = other_sh.to_str().unwrap().to_string();
    let shell = std::process::Command::new("/bin/sh")
        .args(["-c", &format!("cd /; exec {other_sh}")])
        .spawn()
        .unwrap();
    let shell_pid = shell.id();
    assert!(shell.wait_with_output().unwrap().status.success());

    let runs: Vec<Recorded> =
        stop_and_read(vec![(cap_profile, &out_profile), (cap_full, &out_full)])
            .into_iter()
            .map(|(rec, _)| rec)
            .collect();

    for (run, name) in runs.iter().zip(["profile", "full"]) {
        let profiles: Vec<&Vec<(u32, u64)>> = run
            .of_thread(tid)
            .filter_map(|e| match &e.detail {
                Detail::SyscallProfile { counts } => Some(counts),
                _ => None,
            })
            .collect();
        assert_eq!(profiles.len(), 1, "{name}: one profile row at thread exit");
        let counts = profiles[0];
        assert!(
            counts.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: sorted by number: {counts:?}"
        );
        let c = counts
            .iter()
            .find(|(nr, _)| *nr == GETPPID)
            .map(|(_, c)| *c)
            .unwrap_or(0);
        // The runtime may call getppid itself, rarely.
        assert!(
            (N..N + 100).contains(&c),
            "{name}: getppid counted {c} times, called {N}"
        );
    }

    let (profile, full) = (&runs[0], &runs[1]);
    assert!(
        !profile
            .events
            .iter()
            .any(|e| matches!(e.detail, Detail::Syscall { .. })),
        "no per-syscall rows by default"
    );
    let rows: Vec<Option<i64>> = full
        .of_thread(tid)
        .filter_map(|e| match e.detail {
            Detail::Syscall { nr, ret } if nr == GETPPID => Some(ret),
            _ => None,
        })
        .collect();
    assert!(
        rows.iter().all(|r| *r == Some(ppid)),
        "getppid returned the parent's pid"
    );
    // The shell's rows: each syscall row has the executable of the latest exec before it
    // (the shell's, then the copy of true's), and one process key throughout.
    let mut shell_rows: Vec<&needle_common::schema::Event> = full
        .events
        .iter()
        .filter(|e| e.process.tgid == shell_pid)
        .collect();
    shell_rows.sort_by_key(|e| e.ktime_ns);
    let mut exe: Option<&str> = None;
    let (mut execs, mut calls) = (0, 0);
    for e in &shell_rows {
        match e.detail {
            Detail::Exec { .. } => {
                exe = e.exe_path.as_deref();
                execs += 1;
            }
            Detail::Syscall { .. } if exe.is_some() => {
                assert_eq!(e.exe_path.as_deref(), exe, "a syscall row's executable");
                assert_eq!(
                    e.context.as_ref().map(|c| c.key.clone()),
                    shell_rows[0].context.as_ref().map(|c| c.key.clone()),
                    "one process key"
                );
                calls += 1;
            }
            _ => {}
        }
    }
    assert_eq!(execs, 2, "the shell's exec and the copy's");
    assert_eq!(exe, Some(other_sh.as_str()));
    assert!(calls > 10, "{calls} syscall rows after the shell's exec");

    let lost = full.lost_by_kind.get("syscall").copied().unwrap_or(0);
    if lost == 0 {
        assert_eq!(rows.len() as u64, N, "one row per getppid call");
    } else {
        // A busy machine can overflow the ring; then capture says how many it lost.
        eprintln!(
            "capture_syscalls: {lost} syscall rows lost (counted); {} of {N} recorded",
            rows.len()
        );
        assert!(rows.len() as u64 <= N && rows.len() as u64 + lost >= N);
    }
}

/// Live threads beyond the kernel's direct-mapped profile table: more threads than it has
/// entries are alive at once, so some share an entry's index with a live owner and count in
/// the hash map instead. Half of them exit before the capture stops (their profile rows come
/// from the kernel at exit), half are still alive when it stops (theirs are read from the
/// table and the hash map at the end). Every thread's profile still holds exactly its own calls.
#[test]
fn profiles_stay_exact_with_more_live_threads_than_table_entries() {
    if !require_privileges("capture_syscalls::profiles_beyond_the_table") {
        return;
    }
    use std::sync::{Arc, Barrier, mpsc};
    const THREADS: usize = needle_common::abi::PROFILE_TABLE_ENTRIES as usize + 200;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("profile");
    // A profile row is ~2 KiB and every thread sends one as it exits, all at once: a ring
    // that holds them all keeps the test about counting, not about the reader's speed.
    let cap = Capture::start(&out, &["--duration", "120s", "--ring-kib-per-cpu", "16384"]);

    // Every thread calls getppid its own number of times, then waits until all have: the
    // table's entries are all held while the last ones count. Odd threads then stay alive
    // until the capture has stopped.
    let calls = |i: usize| 20 + (i % 17) as u64;
    let stays = |i: usize| i % 2 == 1;
    let counted = Arc::new(Barrier::new(THREADS));
    let release = Arc::new(Barrier::new(THREADS / 2 + 1));
    let (tx, rx) = mpsc::channel::<(usize, u32)>();
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (counted, release, tx) = (Arc::clone(&counted), Arc::clone(&release), tx.clone());
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    for _ in 0..calls(i) {
                        // SAFETY: no arguments; the raw syscall.
                        unsafe { libc::syscall(libc::SYS_getppid) };
                    }
                    counted.wait();
                    // SAFETY: no preconditions.
                    let _ = tx.send((i, unsafe { libc::gettid() as u32 }));
                    if stays(i) {
                        release.wait();
                    }
                })
                .expect("spawn a thread")
        })
        .collect();
    drop(tx);
    let mut tids = vec![0u32; THREADS];
    for (i, tid) in rx.iter().take(THREADS) {
        tids[i] = tid;
    }
    let (leaving, staying): (Vec<_>, Vec<_>) = handles
        .into_iter()
        .enumerate()
        .partition(|(i, _)| !stays(*i));
    for (_, h) in leaving {
        h.join().unwrap();
    }

    let (run, stderr) = stop_and_read(vec![(cap, &out)]).pop().unwrap();
    release.wait();
    for (_, h) in staying {
        h.join().unwrap();
    }
    let live_rows: u64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("syscall profiles of ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(
        live_rows >= (THREADS / 2) as u64,
        "the summary names at least the {} threads still alive at the end: {live_rows}\n{stderr}",
        THREADS / 2
    );
    let mut by_tid: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    for e in &run.events {
        if let Detail::SyscallProfile { counts } = &e.detail {
            let c = counts
                .iter()
                .find(|(nr, _)| *nr == GETPPID)
                .map_or(0, |(_, c)| *c);
            *by_tid.entry(e.process.pid).or_default() += c;
        }
    }
    let lost: u64 = run.lost_by_kind.values().sum();
    assert_eq!(
        lost, 0,
        "no event lost on this run (ring overflow would explain a miss)"
    );
    assert_eq!(
        run.counters.get("profile_map_full").copied().unwrap_or(0),
        0
    );
    let wrong: Vec<(usize, u32, u64)> = tids
        .iter()
        .enumerate()
        .filter_map(|(i, tid)| {
            let got = by_tid.get(tid).copied().unwrap_or(0);
            (got != calls(i)).then_some((i, *tid, got))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {THREADS} threads counted wrong (index, tid, counted), first: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}
