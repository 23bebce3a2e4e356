//! The capture performance suite (`bench/capture.sh`) in its tiny configuration, so that it
//! cannot rot: every scenario runs for real (loops with every mode including bpftrace, redis,
//! the saturation ramp, bytes per kind on the lab traces) and prints its machine-readable lines.
//! No timing is asserted: the figures of a one-second run on a busy CI machine mean nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use needle_tests::{binary, require, require_privileges};

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_suite_runs_every_scenario_and_prints_its_lines() {
    if !require_privileges("bench_smoke") {
        return;
    }
    let missing: Vec<&str> = ["bpftrace", "redis-server", "redis-benchmark", "gcc"]
        .into_iter()
        .filter(|t| which::which(t).is_err())
        .collect();
    if !require(
        "bench_smoke",
        (!missing.is_empty())
            .then(|| format!("not installed: {missing:?} (scripts/setup.sh --bench)")),
    ) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("bench/capture.sh"))
        .arg("--smoke")
        .env("CAPTURE", binary("capture"))
        .current_dir(&root)
        .output()
        .expect("run bench/capture.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "suite failed\n{stdout}\n{stderr}");

    let bench: Vec<&str> = stdout.lines().filter(|l| l.starts_with("BENCH ")).collect();
    // Loops: every workload in every mode, each with a numeric ratio; capture's rows carry
    // its own counts.
    let mut seen = BTreeSet::new();
    for l in bench
        .iter()
        .filter(|l| field(l, "scenario") == Some("loops"))
    {
        let (w, m) = (field(l, "workload").unwrap(), field(l, "mode").unwrap());
        let ratio: f64 = field(l, "ratio")
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("{l}"));
        assert!(ratio > 0.0, "{l}");
        if m.starts_with("capture") {
            assert!(
                field(l, "lost").is_some_and(|v| v.parse::<u64>().is_ok()),
                "{l}"
            );
            assert!(
                field(l, "peak_rss_mib").is_some_and(|v| v.parse::<u64>().is_ok()),
                "{l}"
            );
        }
        seen.insert((w.to_string(), m.to_string()));
    }
    for w in ["exec", "open"] {
        for m in [
            "none",
            "capture",
            "capture-full",
            "bpftrace-count",
            "bpftrace-print",
        ] {
            assert!(
                seen.contains(&(w.to_string(), m.to_string())),
                "no loops line for {w}/{m}\n{stdout}"
            );
        }
    }
    // redis: SET and GET in every mode.
    let redis: Vec<&&str> = bench
        .iter()
        .filter(|l| field(l, "scenario") == Some("redis"))
        .collect();
    assert_eq!(redis.len(), 10, "{stdout}");
    assert!(
        redis.iter().all(|l| field(l, "requests_per_s")
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)),
        "{stdout}"
    );
    // Saturation: one line per rate, with events and losses counted.
    let sat: Vec<&&str> = bench
        .iter()
        .filter(|l| field(l, "scenario") == Some("saturation"))
        .collect();
    assert_eq!(sat.len(), 2, "{stdout}");
    for l in &sat {
        let events: u64 = field(l, "events_per_s")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{l}"));
        assert!(events > 0, "{l}");
        assert!(
            field(l, "lost").is_some_and(|v| v.parse::<u64>().is_ok()),
            "{l}"
        );
    }
    // Footprint: bytes per kind on the lab's traces, and the overall figure.
    let kinds: BTreeSet<&str> = bench
        .iter()
        .filter(|l| l.starts_with("BENCH suite=bytes"))
        .filter_map(|l| field(l, "kind"))
        .collect();
    for k in ["all", "exec", "open", "connect", "dns_query"] {
        assert!(kinds.contains(k), "no bytes line for {k}: {kinds:?}");
    }
    for s in ["loops", "redis", "saturation", "footprint"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("SUMMARY scenario={s}"))),
            "no summary for {s}\n{stdout}"
        );
    }
    println!("{stdout}");
}
