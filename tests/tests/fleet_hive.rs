//! `capture --layout hive` (issue 22): the real capture writes each segment under
//! `host=<host>/date=<UTC date of its first event>/`, and `analyze` reads the tree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use needle_tests::capture::Capture;
use needle_tests::{binary, read_trace, require_privileges};

fn segments(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            segments(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

fn utc_date(ns: i64) -> String {
    let o = Command::new("date")
        .args(["-u", "+%F", "-d"])
        .arg(format!("@{}", ns.div_euclid(1_000_000_000)))
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn capture_writes_host_and_date_partitions_that_analyze_reads() {
    if !require_privileges("fleet_hive::capture_layout_hive") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let mut cap = Capture::start(&out, &["--layout", "hive", "--rotate-interval", "1s"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        Command::new("/bin/true").status().unwrap();
        let mut found = Vec::new();
        segments(&out, &mut found);
        if found.len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no segment within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    cap.signal(libc::SIGINT);
    let (status, summary) = cap.wait();
    assert_eq!(status, Some(0), "{summary}");
    let mut files = Vec::new();
    segments(&out, &mut files);
    assert!(files.len() >= 2);
    for f in &files {
        let t = read_trace(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let rel = f.strip_prefix(&out).unwrap();
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        assert_eq!(parts.len(), 3, "{}", rel.display());
        let host: String = t
            .metadata
            .host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        assert_eq!(parts[0], format!("host={host}"));
        let first = t
            .events
            .iter()
            .map(|e| e.time_ns)
            .min()
            .unwrap_or(t.metadata.start_time_ns);
        assert_eq!(
            parts[1],
            format!("date={}", utc_date(first)),
            "{}",
            rel.display()
        );
    }
    let o = Command::new(binary("analyze"))
        .arg(&out)
        .args(["--format", "json", "--no-progress"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        doc["inputs"]["files"].as_array().unwrap().len(),
        files.len()
    );
}
