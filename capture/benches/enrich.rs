//! Enrichment throughput: events/s through `Enricher::enrich` + `finish` alone, on a synthetic
//! stream with a warm cache (the processes and cgroups are known), single-threaded.
//!
//!     cargo bench -p capture --bench enrich [-- EVENTS]
//!
//! The stream mimics a busy host: 2,000 live processes in this machine's real cgroups, each
//! event a fork/exec/exit/other-kind mix weighted like a real trace (most rows are not execs).

use std::sync::Arc;
use std::time::Instant;

use capture::decode::Decoded;
use capture::enrich::{Enricher, Pending};
use needle_common::schema::{Detail, Event, Process};

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let cgroup = own_cgroup_id();
    let mut enricher = Enricher::new();
    let comm: Arc<str> = "worker".into();
    let procs = 2_000u32;
    let base_pid = 3_000_000u32; // above pid_max: never collides with a real process
    let make = |i: usize, detail: Detail| Decoded {
        event: Event::new(
            i as i64,
            i as u64,
            Process {
                pid: base_pid + (i as u32 % procs),
                tgid: base_pid + (i as u32 % procs),
                ppid: 1,
                uid: 0,
                gid: 0,
                comm: comm.clone(),
                cgroup_id: cgroup,
            },
            detail,
        ),
        start_ns: 1_000_000_000 + u64::from(i as u32 % procs) * 10_000_000,
        parent_start_ns: 0,
        exe: None,
        role: capture::decode::Role::Row,
    };
    // Warm-up: every process forks once, so the table knows all of them.
    let mut out: Vec<Pending> = Vec::with_capacity(1 << 16);
    for i in 0..procs as usize {
        enricher.enrich(make(i, Detail::Fork), &mut out);
    }
    out.clear();

    let stream: Vec<Decoded> = (0..events)
        .map(|i| match i % 20 {
            0 => make(
                i,
                Detail::Exec {
                    argv: vec!["worker".into(), "--serve".into()],
                    truncated: false,
                    state: None,
                },
            ),
            1 => make(i, Detail::Fork),
            _ => make(
                i,
                Detail::Syscall {
                    nr: 0,
                    ret: Some(0),
                },
            ),
        })
        .collect();
    let start = Instant::now();
    let mut written = 0usize;
    for d in stream {
        enricher.enrich(d, &mut out);
        if out.len() >= 1 << 16 {
            for p in out.iter_mut() {
                enricher.finish(p, 1);
                written += p.event.process.pid as usize & 1;
            }
            out.clear();
            enricher.flushed();
        }
    }
    for p in out.iter_mut() {
        enricher.finish(p, 1);
        written += p.event.process.pid as usize & 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "BENCH suite=enrich events={events} secs={secs:.3} events_per_s={:.0} (single thread; {written} odd pids)",
        events as f64 / secs
    );
}

fn own_cgroup_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    let line = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path = line
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .to_string();
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        if let Ok(m) = std::fs::metadata(format!("{root}{path}")) {
            return m.ino();
        }
    }
    1
}
