//! Write-path throughput, single-threaded, two ways over the same rows: enriched events → Arrow
//! batches (`TraceBatchBuilder`) → zstd Parquet (`ArrowWriter` with the trace's writer
//! settings), the two steps timed apart; and events → Parquet row groups directly
//! (`TraceFileWriter`, what capture's writer thread does).
//!
//!     cargo bench -p capture --bench write [-- EVENTS [MIX]]
//!
//! MIX is `open` (every row an open of one of a few files by a few processes: the open loop),
//! `syscall` (`--syscalls full` rows) or `host` (the default): a busy container host's mix —
//! opens of many paths, connects, DNS, execs with argv, profiles — by 2,000 processes in 200
//! containers, every row with full container and process context.

use std::sync::Arc;
use std::time::Instant;

use needle_common::schema::{
    Container, Detail, Dns, Event, FilePath, Net, PathSource, Process, ProcessContext,
    TraceBatchBuilder, TraceFileWriter, WriteOptions, arrow_schema, writer_properties,
};
use parquet::arrow::ArrowWriter;

/// Rows per Arrow batch on the Arrow path (what capture's writer thread built before it wrote
/// row groups itself).
const BATCH_ROWS: usize = 16 * 1024;

struct Proc {
    process: Process,
    exe: Arc<str>,
    sha: Arc<str>,
    container: Arc<Container>,
    workload: Arc<str>,
    context: Arc<ProcessContext>,
}

fn processes(n: u32, containers: u32) -> Vec<Proc> {
    let boxes: Vec<Arc<Container>> = (0..containers)
        .map(|c| {
            Arc::new(Container {
                id: format!("{:064x}", 0xc0ffee_u64 * u64::from(c + 1)).into(),
                name: Some(format!("app-{c}").into()),
                image: Some(format!("registry.example/team{}/app:{}", c % 20, c % 7).into()),
                image_digest: Some(format!("sha256:{:064x}", u64::from(c % 140)).into()),
                runtime: Some("runc".into()),
                pod: Some(format!("app-{c}-7d9f8c-x2x{c}").into()),
                namespace: Some(format!("ns-{}", c % 10).into()),
                labels: Some(format!(r#"{{"app":"app-{c}","tier":"web"}}"#).into()),
            })
        })
        .collect();
    let comms = [
        "nginx",
        "python3",
        "sh",
        "java",
        "node",
        "postgres",
        "redis-server",
        "curl",
    ];
    (0..n)
        .map(|i| {
            let container = boxes[(i % containers) as usize].clone();
            let comm = comms[(i % comms.len() as u32) as usize];
            Proc {
                process: Process {
                    pid: 10_000 + i,
                    tgid: 10_000 + i,
                    ppid: 9_000 + i / 4,
                    uid: i % 3 * 1000,
                    gid: i % 3 * 1000,
                    comm: comm.into(),
                    cgroup_id: 5_000 + u64::from(i % containers),
                },
                exe: format!("/usr/bin/{comm}").into(),
                sha: format!("{:064x}", 0xdead_beef_u64 * u64::from(i % 64 + 1)).into(),
                workload: container.id.clone(),
                container,
                context: Arc::new(ProcessContext {
                    key: format!("{}@{}", 10_000 + i, 4_242 + i).into(),
                    parent_key: Some(format!("{}@{}", 9_000 + i / 4, 4_000 + i / 4).into()),
                    ancestry: vec!["/bin/sh".into(), "/usr/bin/containerd-shim".into()],
                    user: Some(if i % 3 == 0 { "root" } else { "app" }.into()),
                    exe_new: Some(false),
                    exe_writable: Some(false),
                    exe_fileless: Some(false),
                }),
            }
        })
        .collect()
}

fn event(p: &Proc, i: usize, detail: Detail) -> Event {
    let mut e = Event::new(
        1_800_000_000_000_000_000 + i as i64 * 1_000,
        1_000_000 + i as u64 * 1_000,
        p.process.clone(),
        detail,
    );
    e.exe_path = Some(p.exe.clone());
    e.exe_sha256 = Some(p.sha.clone());
    e.container = Some(p.container.clone());
    e.workload = Some(p.workload.clone());
    e.context = Some(p.context.clone());
    e
}

fn open(path: String, i: usize) -> Detail {
    Detail::Open {
        file: FilePath {
            path,
            source: PathSource::Kernel,
        },
        flags: 0o100000,
        mode: 0,
        ret: 3 + (i % 5) as i64,
        count: None,
    }
}

fn stream(events: usize, mix: &str) -> Vec<Event> {
    match mix {
        "open" => {
            let procs = processes(4, 2);
            let files = ["/etc/hostname", "/etc/hosts", "/proc/self/stat"];
            (0..events)
                .map(|i| event(&procs[i % 4], i, open(files[i / 7 % 3].to_string(), i)))
                .collect()
        }
        "syscall" => {
            let procs = processes(8, 4);
            (0..events)
                .map(|i| {
                    let detail = Detail::Syscall {
                        nr: [0u32, 1, 3, 257, 110][i % 5],
                        ret: Some((i % 100) as i64),
                    };
                    event(&procs[i / 64 % 8], i, detail)
                })
                .collect()
        }
        _ => {
            let procs = processes(2_000, 200);
            (0..events)
                .map(|i| {
                    let p = &procs[(i * 7919) % procs.len()];
                    let detail = match i % 20 {
                        0 => Detail::Exec {
                            argv: vec![
                                p.exe.to_string(),
                                "--port".into(),
                                format!("{}", 8000 + i % 50),
                            ],
                            truncated: false,
                            state: None,
                        },
                        1 => Detail::Fork,
                        2 => Detail::Exit {
                            code: Some(0),
                            signal: None,
                        },
                        3..=5 => Detail::Connect(Box::new(Net {
                            family: "inet".into(),
                            protocol: "tcp".into(),
                            src_addr: Some("10.0.0.7".into()),
                            src_port: Some(30_000 + (i % 20_000) as u16),
                            dst_addr: Some(format!("10.1.{}.{}", i % 7, i % 250)),
                            dst_port: Some([443u16, 5432, 6379][i % 3]),
                            bytes: None,
                            ret: Some(0),
                            count: None,
                        })),
                        6 => Detail::DnsQuery(Box::new(Dns {
                            name: format!("svc-{}.ns-{}.svc.cluster.local", i % 300, i % 10),
                            qtype: 1,
                            id: (i % 65_536) as u16,
                            rcode: None,
                            answers: Vec::new(),
                            net: Net {
                                family: "inet".into(),
                                protocol: "udp".into(),
                                dst_addr: Some("10.96.0.10".into()),
                                dst_port: Some(53),
                                ..Default::default()
                            },
                        })),
                        7 => Detail::SyscallProfile {
                            counts: vec![(0, 120), (1, 80), (3, 40), (257, 44), (232, 900)],
                        },
                        _ => open(
                            format!("/srv/app/data/{}/part-{}.dat", i % 97, i % 2_000),
                            i,
                        ),
                    };
                    event(p, i, detail)
                })
                .collect()
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let events: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mix = args.next().unwrap_or_else(|| "host".to_string());
    let rows_per_group = WriteOptions::default().row_group_rows;
    let input = stream(events, &mix);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.parquet");
    let file = std::fs::File::create(&path).expect("create bench file");
    let props = writer_properties(&WriteOptions::default(), Vec::new()).expect("writer properties");
    let mut writer = ArrowWriter::try_new(file, arrow_schema(), Some(props)).expect("writer");
    // As capture's writer thread does: a row group's rows sorted by the kernel clock, built in
    // batches by one builder, each batch encoded and dropped before the next is built (so the
    // build reuses warm memory, as it does in capture).
    let mut builder = TraceBatchBuilder::new("node-1");
    let (mut build_secs, mut encode_secs, mut arrow_bytes) = (0.0, 0.0, 0usize);
    for group in input.chunks(rows_per_group) {
        let mut rows: Vec<&Event> = group.iter().collect();
        rows.sort_by_key(|e| e.ktime_ns);
        for chunk in rows.chunks(BATCH_ROWS) {
            let start = Instant::now();
            for e in chunk {
                builder.push(e);
            }
            let batch = builder.finish();
            build_secs += start.elapsed().as_secs_f64();
            arrow_bytes += batch.get_array_memory_size();
            let start = Instant::now();
            writer.write(&batch).expect("write batch");
            drop(batch);
            encode_secs += start.elapsed().as_secs_f64();
        }
        let start = Instant::now();
        writer.flush().expect("end row group");
        encode_secs += start.elapsed().as_secs_f64();
    }
    let start = Instant::now();
    writer.close().expect("close");
    encode_secs += start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let direct_path = dir.path().join("direct.parquet");
    let file = std::fs::File::create(&direct_path).expect("create bench file");
    let mut writer =
        TraceFileWriter::try_new(file, "node-1", &WriteOptions::default()).expect("writer");
    let mut direct_secs = 0.0;
    for group in input.chunks(rows_per_group) {
        let mut rows: Vec<&Event> = group.iter().collect();
        rows.sort_by_key(|e| e.ktime_ns);
        let start = Instant::now();
        writer.write(rows).expect("write row group");
        direct_secs += start.elapsed().as_secs_f64();
    }
    let start = Instant::now();
    writer.into_inner().expect("close");
    direct_secs += start.elapsed().as_secs_f64();
    drop(input);
    let direct_bytes = std::fs::metadata(&direct_path)
        .map(|m| m.len())
        .unwrap_or(0);
    let rate = |secs: f64| events as f64 / secs;
    println!(
        "BENCH suite=write mix={mix} events={events} build_events_per_s={:.0} encode_events_per_s={:.0} both_events_per_s={:.0} bytes_per_event={:.1} arrow_bytes_per_row={:.0} direct_events_per_s={:.0} direct_bytes_per_event={:.1}",
        rate(build_secs),
        rate(encode_secs),
        rate(build_secs + encode_secs),
        bytes as f64 / events as f64,
        arrow_bytes as f64 / events as f64,
        rate(direct_secs),
        direct_bytes as f64 / events as f64
    );
}
