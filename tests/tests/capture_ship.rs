//! `capture --ship` (issue 22, item 4), with the real capture (root, eBPF) and a local S3
//! server (moto on 127.0.0.1, behind a [`Gate`] that makes it unreachable at will while it
//! keeps its objects): finalized segments land under PREFIX/host=…/date=…/ with the bytes
//! capture wrote; while the store is unreachable they stay in the output directory (none is
//! deleted before the store has it) and go up once it is back, or on the next start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use needle_tests::capture::Capture;
use needle_tests::s3::{self, Gate, S3Server};
use needle_tests::{binary, read_trace, require, require_privileges, sha256sum};

const CREDS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "needle-test"),
    ("AWS_SECRET_ACCESS_KEY", "needle-test-secret"),
];

/// The two tests each run a capture that records the whole host: one at a time.
static ONE_CAPTURE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CAPTURE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn can_run(test: &str) -> bool {
    require_privileges(test) && require(test, s3::missing())
}

/// Finalized segments under `dir` (any depth), by relative path, with their sha256.
fn local_segments(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(root, &p, out);
            } else if name.ends_with(".parquet") && !name.starts_with('.') {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, sha256sum(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs short programs for `d` (events for capture to record).
fn load_for(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        // Without cargo's LD_LIBRARY_PATH each exec would probe its build directories.
        Command::new("/bin/true")
            .env_remove("LD_LIBRARY_PATH")
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loads until `done` holds (at most `limit`).
fn load_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "{what} within {limit:?}");
        load_for(Duration::from_millis(200));
    }
}

/// The object `key` written to a file and checked as a trace; returns its sha256 and the
/// expected `host=…/date=…` of its first event.
fn remote_segment(server: &S3Server, key: &str, tmp: &Path) -> (String, String) {
    let bytes = server
        .get(key)
        .unwrap_or_else(|| panic!("{key} not in the store"));
    let p: PathBuf = tmp.join("downloaded.parquet");
    std::fs::write(&p, bytes).unwrap();
    let t = read_trace(&p).unwrap_or_else(|e| panic!("{key}: {e}"));
    let date = Command::new("date")
        .args(["-u", "+%F", "-d"])
        .arg(format!(
            "@{}",
            t.metadata.start_time_ns.div_euclid(1_000_000_000)
        ))
        .output()
        .unwrap();
    let date = String::from_utf8(date.stdout).unwrap().trim().to_string();
    (
        sha256sum(&p),
        format!("host={}/date={date}", t.metadata.host),
    )
}

/// `capture --output OUT --ship URL --s3-endpoint ENDPOINT --rotate-interval 1s EXTRA…`, with
/// the test's credentials, recording once it returns.
fn ship(out: &Path, url: &str, endpoint: &str, extra: &[&str]) -> Capture {
    let mut args = vec![
        "--ship",
        url,
        "--s3-endpoint",
        endpoint,
        "--rotate-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    Capture::spawn_env(&binary("capture"), out, &args, CREDS).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn segments_land_with_their_keys_and_bytes_and_wait_while_the_store_is_down() {
    if !can_run("capture_ship::midrun") {
        return;
    }
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let server = S3Server::start("needle-ship");
    let gate = Gate::new(&server);
    let mut cap = ship(
        &out,
        &server.url("fleet/"),
        &gate.endpoint(),
        &["--ship-drain", "30s"],
    );

    // Up: segments go up and leave the output directory.
    load_until(Duration::from_secs(30), "two segments shipped", || {
        server.keys("fleet/").len() >= 2
    });

    // Down: segments pile up locally, none is deleted, nothing new lands.
    gate.set_open(false);
    std::thread::sleep(Duration::from_millis(500));
    let shipped_before = server.keys("fleet/").len();
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    load_until(Duration::from_secs(30), "three segments waiting", || {
        let now = local_segments(&out);
        for (k, v) in &held {
            assert_eq!(
                now.get(k),
                Some(v),
                "{k} deleted or changed while the store was down"
            );
        }
        held = now;
        held.len() >= 3
    });
    // At most one upload was in flight when the gate closed.
    assert!(server.keys("fleet/").len() <= shipped_before + 1);

    // Back: the spool drains while capture records.
    gate.set_open(true);
    load_until(Duration::from_secs(90), "the spool drained", || {
        held.keys().all(|k| !out.join(k).exists())
    });
    cap.signal(libc::SIGINT);
    let (status, summary) = cap.wait_for(Duration::from_secs(60)).unwrap();
    assert_eq!(status, Some(0), "{summary}");
    assert!(summary.contains("shipped"), "{summary}");
    assert!(!summary.contains("waiting"), "{summary}");
    assert!(local_segments(&out).is_empty(), "all shipped: {summary}");

    // Every segment of the summary is in the store, under its host and date, with its bytes.
    let keys = server.keys("fleet/");
    let files: Vec<(&str, u64)> = summary
        .lines()
        .filter(|l| l.trim_start().starts_with('/') && l.ends_with(" bytes"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f[0].rsplit('/').next().unwrap();
            (name, f[f.len() - 2].parse().unwrap())
        })
        .collect();
    assert!(files.len() >= 6, "{summary}");
    assert_eq!(keys.len(), files.len(), "{keys:?}");
    for (name, bytes) in files {
        let key = keys
            .iter()
            .find(|k| k.ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} not shipped: {keys:?}"));
        let (sha, part) = remote_segment(&server, key, tmp.path());
        assert_eq!(*key, format!("fleet/{part}/{name}"));
        assert_eq!(server.get(key).unwrap().len() as u64, bytes, "{key}");
        if let Some(h) = held.get(name) {
            assert_eq!(&sha, h, "{key}: not the bytes capture wrote");
        }
    }
}

#[test]
fn leftovers_of_a_run_with_the_store_down_are_shipped_by_the_next_start() {
    if !can_run("capture_ship::leftovers") {
        return;
    }
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let server = S3Server::start("needle-spool");
    let gate = Gate::new(&server);
    gate.set_open(false);
    let (url, endpoint) = (server.url("spool"), gate.endpoint());
    let extra = |drain| {
        [
            "--layout",
            "hive",
            "--spool-mib",
            "0",
            "--ship-drain",
            drain,
        ]
    };
    let mut cap = ship(&out, &url, &endpoint, &extra("2s"));
    load_until(Duration::from_secs(30), "three segments", || {
        local_segments(&out).len() >= 3
    });
    cap.signal(libc::SIGINT);
    let (status, summary) = cap.wait_for(Duration::from_secs(60)).unwrap();
    assert_eq!(status, Some(0), "{summary}");
    let spooled = local_segments(&out);
    assert!(
        summary.contains(&format!("waiting         {} segments", spooled.len())),
        "{summary}"
    );
    assert!(summary.contains("went over --spool-mib"), "{summary}");
    assert!(server.keys("spool/").is_empty());

    // A leftover above the multipart threshold (8 MiB): bytes, not a trace, so it also goes
    // under this host and the file's date.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..20 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(out.join("needle-big.parquet"), &big).unwrap();
    let mut spooled = spooled;
    spooled.insert(
        "needle-big.parquet".into(),
        sha256sum(&out.join("needle-big.parquet")),
    );

    // The store is back: the next start ships the leftovers first.
    gate.set_open(true);
    let mut cap = ship(&out, &url, &endpoint, &extra("30s"));
    load_until(Duration::from_secs(60), "leftovers shipped", || {
        spooled.keys().all(|k| !out.join(k).exists())
    });
    cap.signal(libc::SIGINT);
    let (status, summary) = cap.wait_for(Duration::from_secs(60)).unwrap();
    assert_eq!(status, Some(0), "{summary}");
    let keys = server.keys("spool/");
    let big_key = keys
        .iter()
        .find(|k| k.ends_with("/needle-big.parquet"))
        .unwrap_or_else(|| panic!("the big leftover not shipped: {keys:?}"));
    assert!(big_key.starts_with("spool/host="), "{big_key}");
    assert!(
        server.get(big_key).unwrap() == big,
        "multipart upload changed the bytes"
    );
    for (rel, sha) in spooled.iter().filter(|(r, _)| r.starts_with("host=")) {
        let key = format!("spool/{rel}");
        assert!(keys.contains(&key), "{key} missing: {keys:?}");
        let (got, part) = remote_segment(&server, &key, tmp.path());
        assert_eq!(&got, sha, "{key}: other bytes");
        assert!(rel.starts_with(&part), "{rel} not under {part}");
    }
    assert!(local_segments(&out).is_empty(), "{summary}");
}

#[test]
fn a_store_that_refuses_the_keys_keeps_every_segment_and_says_why() {
    if !can_run("capture_ship::denied") {
        return;
    }
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    // A store that checks every request's keys: the test's keys are not among them.
    let (server, users) =
        S3Server::start_enforcing("needle-denied", &[], &[("auditor", &["s3:ListBucket"])]);
    let mut cap = ship(
        &out,
        &server.url("fleet/"),
        &server.endpoint(),
        &["--ship-drain", "2s"],
    );
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    load_until(Duration::from_secs(30), "three segments refused", || {
        let now = local_segments(&out);
        for (k, v) in &held {
            assert_eq!(now.get(k), Some(v), "{k} deleted or changed");
        }
        held = now;
        held.len() >= 3
    });
    cap.signal(libc::SIGINT);
    let stderr = cap.stderr_so_far();
    let (status, summary) = cap.wait_for(Duration::from_secs(60)).unwrap();
    assert_eq!(status, Some(0), "{summary}");

    // Said once, with the store's reason, never the secret; every segment kept.
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("shipping to"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("InvalidAccessKeyId"), "{stderr}");
    assert!(!stderr.contains(CREDS[1].1) && !summary.contains(CREDS[1].1));
    let kept = local_segments(&out);
    for (k, v) in &held {
        assert_eq!(kept.get(k), Some(v), "{k} deleted or changed: {summary}");
    }
    assert!(
        summary.contains(&format!("waiting         {} segments", kept.len())),
        "{summary}"
    );
    assert_eq!(server.keys_as(&users[0], ""), Vec::<String>::new());
}

#[test]
fn past_the_spool_bound_drop_oldest_deletes_and_counts_what_could_not_ship() {
    if !can_run("capture_ship::drop_oldest") {
        return;
    }
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let server = S3Server::start("needle-bound");
    let gate = Gate::new(&server);
    gate.set_open(false);
    // A bound of 0 MiB: every finalized segment the store cannot take goes.
    let mut cap = ship(
        &out,
        &server.url("fleet/"),
        &gate.endpoint(),
        &[
            "--spool-mib",
            "0",
            "--spool-full",
            "drop-oldest",
            "--ship-drain",
            "1s",
        ],
    );
    load_for(Duration::from_secs(5));
    cap.signal(libc::SIGINT);
    let stderr = cap.stderr_so_far();
    let (status, summary) = cap.wait_for(Duration::from_secs(60)).unwrap();
    assert_eq!(status, Some(0), "{summary}");
    assert!(stderr.contains("--spool-full drop-oldest"), "{stderr}");
    // The number after the first `marker` in the summary.
    let number_after = |marker: &str| -> u64 {
        summary
            .split(marker)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after {marker:?}: {summary}"))
    };
    assert!(number_after("dropped the ") >= 3, "{summary}");
    // Every event recorded was in a dropped segment, and each was counted from its footer
    // before it went.
    let recorded = number_after("\n  events ");
    let lost_events = number_after(" bytes, ");
    assert!(recorded > 0 && lost_events == recorded, "{summary}");
    assert!(!summary.contains("whose footer could be read"), "{summary}");
    assert!(local_segments(&out).is_empty(), "{summary}");
    assert!(server.keys("fleet/").is_empty());
}
