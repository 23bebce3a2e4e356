//! Synthetic trace generator for `bench/analyze.sh`: many containers on several hosts, a
//! realistic mix of event kinds and cardinalities, written with the schema's own writer.
//!
//!   cargo run --release -p analyze --example synth -- --events 50000000 --workloads 1000 \
//!       --files 8 --out target/bench/synth
//!
//! One file per host (`host=node-<i>/seg-0.parquet`, a hive-style tree), one hour of events
//! each, sorted by time, 256 Ki rows per row group (capture's default). Deterministic.
//! `--page-rows N` (experiment) overrides the writer's data page row limit (20000 is parquet's
//! default, which needle's writer lifts; use it to measure what that costs a reader).

use std::path::PathBuf;
use std::sync::Arc;

use needle_common::schema::{
    Container, Detail, Dns, Event, FilePath, Net, PathSource, Process, SCHEMA_VERSION,
    TraceBatchBuilder, TraceMetadata, WriteOptions, arrow_schema, writer_properties,
};
use parquet::arrow::ArrowWriter;
use rayon::prelude::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Skewed pick in `0..n`: low indices are much more frequent (a few hot values).
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as u64 % n.max(1)
    }
}

struct Proc {
    tgid: u32,
    comm: Arc<str>,
    exe: Arc<str>,
}

struct Workload {
    container: Arc<Container>,
    cgroup: u64,
    procs: Vec<Proc>,
}

const EXES: &[&str] = &[
    "/usr/sbin/nginx",
    "/usr/bin/python3",
    "/usr/local/bin/node",
    "/usr/bin/java",
    "/usr/sbin/postgres",
    "/usr/bin/redis-server",
    "/bin/sh",
    "/bin/bash",
    "/usr/bin/curl",
    "/usr/local/bin/app",
    "/usr/bin/ruby",
    "/usr/sbin/sshd",
    "/usr/bin/perl",
    "/opt/app/bin/server",
    "/usr/bin/envoy",
    "/usr/bin/gunicorn",
];
const COMMON_SYSCALLS: &[u32] = &[
    0, 1, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 20, 21, 23, 39, 41, 42, 44, 45, 47, 56, 59,
    60, 61, 62, 72, 89, 202, 228, 230, 231, 232, 257, 262, 270, 281, 291, 318,
];
const PORTS: &[u16] = &[443, 443, 443, 5432, 6379, 80, 53, 8080, 9092, 27017];

fn hex_id(i: usize) -> String {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    (0..4).map(|_| format!("{:016x}", r.next())).collect()
}

fn workloads(n: usize) -> Vec<Workload> {
    (0..n)
        .map(|i| {
            let mut r = Rng(1 + i as u64 * 7919);
            let image = format!(
                "registry.example/team-{}/svc-{}:{}",
                i % 20,
                i % 200,
                1 + i % 7
            );
            let container = Arc::new(Container {
                id: hex_id(i).into(),
                name: Some(format!("svc-{}-{}", i % 200, i).into()),
                image: Some(image.into()),
                image_digest: None,
                runtime: Some("containerd".into()),
                pod: Some(format!("svc-{}-{:05x}", i % 200, r.below(1 << 20)).into()),
                namespace: Some(format!("ns-{}", i % 20).into()),
                labels: None,
            });
            let procs = (0..(5 + r.below(16)))
                .map(|p| {
                    let exe = EXES[(i + p as usize * 3) % EXES.len()];
                    Proc {
                        tgid: 1000 + p as u32 * 17,
                        comm: exe.rsplit('/').next().unwrap_or(exe).into(),
                        exe: exe.into(),
                    }
                })
                .collect();
            Workload {
                container,
                cgroup: 10_000 + i as u64,
                procs,
            }
        })
        .collect()
}

fn net(r: &mut Rng) -> Net {
    let port = if r.below(100) == 0 {
        1024 + r.below(60_000) as u16
    } else {
        PORTS[r.below(PORTS.len() as u64) as usize]
    };
    let a = r.skewed(5000);
    Net {
        family: "inet".into(),
        protocol: "tcp".into(),
        src_addr: Some("10.0.0.2".into()),
        src_port: Some(30_000 + r.below(30_000) as u16),
        dst_addr: Some(format!(
            "10.{}.{}.{}",
            a / 65536 % 256,
            a / 256 % 256,
            a % 256
        )),
        dst_port: Some(port),
        bytes: None,
        ret: Some(0),
        count: None,
    }
}

fn dns(r: &mut Rng, response: bool) -> Dns {
    let n = r.skewed(3000);
    Dns {
        name: format!("svc-{}.ns-{}.svc.cluster.local", n, n % 20),
        qtype: if r.below(2) == 0 { 1 } else { 28 },
        id: r.below(65536) as u16,
        rcode: response.then(|| if r.below(20) == 0 { 3 } else { 0 }),
        answers: if response {
            vec!["10.1.2.3".into()]
        } else {
            vec![]
        },
        net: Net {
            family: "inet".into(),
            protocol: "udp".into(),
            dst_addr: Some("10.96.0.10".into()),
            dst_port: Some(53),
            ..Default::default()
        },
    }
}

fn file(r: &mut Rng) -> FilePath {
    let n = r.skewed(20_000);
    let path = match n % 4 {
        0 => format!("/usr/lib/x86_64-linux-gnu/lib{n}.so.1"),
        1 => format!("/var/www/html/page{n}.html"),
        2 => format!("/tmp/sess_{n}"),
        _ => format!("/etc/app/conf.d/{n}.yaml"),
    };
    FilePath {
        path,
        source: PathSource::Kernel,
    }
}

/// One event's detail, drawn from the kind mix (per mille).
fn detail(r: &mut Rng) -> Detail {
    let x = r.below(1000);
    match x {
        0..300 => Detail::Syscall {
            nr: COMMON_SYSCALLS[r.skewed(COMMON_SYSCALLS.len() as u64) as usize],
            ret: Some(0),
        },
        300..600 => {
            let write = r.below(10) == 0;
            Detail::Open {
                file: file(r),
                flags: if write { 0o101 } else { 0 },
                mode: 0o644,
                ret: 3,
                count: None,
            }
        }
        600..680 => Detail::Connect(Box::new(net(r))),
        680..730 => Detail::Accept(Box::new(net(r))),
        730..770 => Detail::SendTo(Box::new(Net {
            bytes: Some(64 + r.below(1400)),
            protocol: "udp".into(),
            ..net(r)
        })),
        770..800 => Detail::DnsQuery(Box::new(dns(r, false))),
        800..830 => Detail::DnsResponse(Box::new(dns(r, true))),
        830..850 => Detail::Exec {
            argv: vec!["app".into(), "--serve".into()],
            truncated: false,
            state: None,
        },
        850..870 => Detail::Fork,
        870..895 => Detail::Exit {
            code: Some(0),
            signal: None,
        },
        895..925 => Detail::MmapExec {
            file: file(r),
            prot: 5,
        },
        925..935 => Detail::Unlink {
            file: file(r),
            ret: 0,
        },
        935..945 => Detail::Rename {
            file: file(r),
            new_path: file(r).path,
            ret: 0,
        },
        945..955 => Detail::Chmod {
            file: file(r),
            mode: 0o644,
            ret: 0,
        },
        955..995 => {
            let k = 10 + r.below(10) as usize;
            let mut counts: Vec<(u32, u64)> = (0..k)
                .map(|i| {
                    (
                        COMMON_SYSCALLS[i * 2 % COMMON_SYSCALLS.len()],
                        1 + r.below(500),
                    )
                })
                .collect();
            counts.sort_unstable();
            counts.dedup_by_key(|c| c.0);
            Detail::SyscallProfile { counts }
        }
        995..997 => Detail::SetId {
            uid: Some(1000),
            gid: None,
            nr: 105,
            ret: 0,
        },
        997..998 => Detail::MemfdCreate {
            name: "jit".into(),
            flags: 1,
            ret: 5,
        },
        998..999 => Detail::Unshare {
            flags: 0x2000_0000,
            ret: 0,
        },
        _ => Detail::Ptrace {
            request: 0,
            target_pid: 1,
            ret: -1,
        },
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = arg(&args, "--events", 1_000_000);
    let n_workloads: usize = arg(&args, "--workloads", 100);
    let files: usize = arg(&args, "--files", 4).max(1);
    let out: PathBuf = arg(&args, "--out", PathBuf::from("target/bench/synth"));
    let page_rows: Option<usize> = args
        .iter()
        .any(|a| a == "--page-rows")
        .then(|| arg(&args, "--page-rows", usize::MAX));
    let all = workloads(n_workloads);
    let per_file = events / files as u64;
    const T0: i64 = 1_800_000_000 * 1_000_000_000;
    const HOUR: i64 = 3_600_000_000_000;
    (0..files).into_par_iter().for_each(|f| {
        let host = format!("node-{f}");
        let mine: Vec<&Workload> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % files == f)
            .map(|(_, w)| w)
            .collect();
        if mine.is_empty() {
            return;
        }
        let dir = out.join(format!("host={host}"));
        std::fs::create_dir_all(&dir).expect("create output directory");
        let opts = WriteOptions::default();
        let step = HOUR / per_file.max(1) as i64;
        let meta = TraceMetadata {
            schema_version: SCHEMA_VERSION,
            host: host.clone(),
            kernel: "6.18.0".into(),
            writer: "synth".into(),
            start_time_ns: T0,
            end_time_ns: T0 + per_file as i64 * step,
            events_written: per_file,
            ..Default::default()
        };
        let mut props = writer_properties(&opts, meta.to_key_values()).expect("writer properties");
        if let Some(rows) = page_rows {
            // Experiment only: another page row limit than needle's writer uses.
            props = props
                .into_builder()
                .set_data_page_row_count_limit(rows)
                .build();
        }
        let tmp = dir.join(".seg-0.parquet.tmp");
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(&tmp).expect("create"),
            arrow_schema(),
            Some(props),
        )
        .expect("writer");
        let mut b = TraceBatchBuilder::new(&host);
        let mut r = Rng(0xdead_beef ^ ((f as u64 + 1) * 0x1234_5678_9abc));
        for i in 0..per_file {
            let wl = mine[r.skewed(mine.len() as u64) as usize];
            let p = &wl.procs[r.skewed(wl.procs.len() as u64) as usize];
            let t = T0 + i as i64 * step;
            b.push(&Event {
                time_ns: t,
                ktime_ns: (t - T0) as u64,
                process: Process {
                    pid: p.tgid,
                    tgid: p.tgid,
                    ppid: 1,
                    uid: 0,
                    gid: 0,
                    comm: p.comm.clone(),
                    cgroup_id: wl.cgroup,
                },
                exe_path: Some(p.exe.clone()),
                exe_sha256: None,
                container: Some(wl.container.clone()),
                workload: None,
                context: None,
                label: None,
                detail: detail(&mut r),
            });
            if b.len() >= opts.row_group_rows {
                w.write(&b.finish()).expect("write");
            }
        }
        if !b.is_empty() {
            w.write(&b.finish()).expect("write");
        }
        w.close().expect("close");
        std::fs::rename(&tmp, dir.join("seg-0.parquet")).expect("rename");
    });
    eprintln!(
        "wrote {} events over {} workloads into {} files under {}",
        per_file * files as u64,
        n_workloads,
        files,
        out.display()
    );
}
