//! End to end: per-thread syscall profiles (on by default) and the full syscall stream
//! (`--syscalls full`) recorded by the real `capture`. A thread calls getppid exactly N times
//! and exits; its profile row counts them, and the full stream has exactly N getppid rows with
//! the parent's pid as the result. Both captures run at once over the same thread.

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
