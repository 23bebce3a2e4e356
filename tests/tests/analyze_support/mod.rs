//! Shared helpers of the `analyze_*` end-to-end tests: write traces with the schema's own
//! writer, run the real `analyze` binary.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use needle_common::schema::{
    Container, Detail, Dns, Event, FilePath, Net, PathSource, Process, SCHEMA_VERSION,
    TraceBatchBuilder, TraceMetadata, WriteOptions, arrow_schema, writer_properties,
};
use parquet::arrow::ArrowWriter;

pub const S: i64 = 1_000_000_000;
pub const T0: i64 = 1_800_000_000 * S;

/// Events of one container, built fluently.
#[derive(Clone)]
pub struct Workload {
    pub id: String,
    pub name: String,
    pub events: Vec<Event>,
}

impl Workload {
    pub fn new(id: &str, name: &str) -> Workload {
        Workload {
            id: id.into(),
            name: name.into(),
            events: Vec::new(),
        }
    }

    pub fn event(
        &mut self,
        secs: i64,
        tgid: u32,
        ppid: u32,
        comm: &str,
        exe: &str,
        detail: Detail,
    ) -> &mut Self {
        self.events.push(Event {
            time_ns: T0 + secs * S,
            ktime_ns: (secs * S) as u64,
            process: Process {
                pid: tgid,
                tgid,
                ppid,
                uid: 0,
                gid: 0,
                comm: comm.into(),
                cgroup_id: 7,
            },
            exe_path: Some(exe.into()),
            exe_sha256: None,
            container: Some(Arc::new(Container {
                id: self.id.as_str().into(),
                name: Some(self.name.as_str().into()),
                image: Some("shop/web:1.0".into()),
                pod: None,
                namespace: Some("prod".into()),
                ..Default::default()
            })),
            workload: None,
            context: None,
            label: None,
            detail,
        });
        self
    }

    /// A web server's ordinary day: accepts, database connections, syscalls, one DNS query.
    pub fn normal(id: &str, name: &str, secs: i64) -> Workload {
        let mut w = Workload::new(id, name);
        w.event(0, 100, 1, "nginx", "/usr/sbin/nginx", exec());
        for s in 0..secs {
            w.event(
                s,
                100,
                1,
                "nginx",
                "/usr/sbin/nginx",
                Detail::Accept(Box::new(net("10.1.0.1", 50000))),
            );
            w.event(
                s,
                100,
                1,
                "nginx",
                "/usr/sbin/nginx",
                Detail::Connect(Box::new(net("10.2.0.1", 5432))),
            );
            w.event(
                s,
                100,
                1,
                "nginx",
                "/usr/sbin/nginx",
                Detail::Syscall { nr: 0, ret: None },
            );
        }
        w.event(
            1,
            100,
            1,
            "nginx",
            "/usr/sbin/nginx",
            Detail::DnsQuery(Box::new(dns("db.internal"))),
        );
        w
    }

    /// The story of DETECTIONS.md: a shell from the web server, a miner dropped in /tmp,
    /// a pool name resolved, a connection to port 3333.
    pub fn attacked(id: &str, name: &str, secs: i64) -> Workload {
        let mut w = Workload::normal(id, name, secs);
        let tmp = FilePath {
            path: "/tmp/.x/xmrig".into(),
            source: PathSource::Kernel,
        };
        w.event(30, 300, 100, "nginx", "/usr/sbin/nginx", Detail::Fork)
            .event(30, 300, 100, "sh", "/bin/sh", exec())
            .event(
                31,
                300,
                100,
                "sh",
                "/bin/sh",
                Detail::Open {
                    file: tmp,
                    flags: 0o101,
                    mode: 0o755,
                    ret: 3,
                    count: None,
                },
            )
            .event(32, 301, 300, "xmrig", "/tmp/.x/xmrig", exec())
            .event(
                33,
                301,
                300,
                "xmrig",
                "/tmp/.x/xmrig",
                Detail::DnsQuery(Box::new(dns("x9qz7k2v.pool.example"))),
            )
            .event(
                34,
                301,
                300,
                "xmrig",
                "/tmp/.x/xmrig",
                Detail::Connect(Box::new(net("203.0.113.7", 3333))),
            );
        w
    }
}

pub fn exec() -> Detail {
    Detail::Exec {
        argv: vec![],
        truncated: false,
        state: None,
    }
}

pub fn net(addr: &str, port: u16) -> Net {
    Net {
        family: "inet".into(),
        protocol: "tcp".into(),
        dst_addr: Some(addr.into()),
        dst_port: Some(port),
        ..Default::default()
    }
}

pub fn dns(name: &str) -> Dns {
    Dns {
        name: name.into(),
        qtype: 1,
        ..Default::default()
    }
}

/// Container id number `i` (64 hex characters).
pub fn cid(i: usize) -> String {
    format!("{i:04x}").repeat(16)
}

/// Writes `workloads` into one trace file, with `metadata` tweaks applied.
pub fn write_trace(path: &Path, workloads: &[Workload], tweak: impl FnOnce(&mut TraceMetadata)) {
    let mut meta = TraceMetadata {
        schema_version: SCHEMA_VERSION,
        host: "node-1".into(),
        writer: "test".into(),
        ..Default::default()
    };
    tweak(&mut meta);
    let props = writer_properties(
        &WriteOptions {
            row_group_rows: 500,
            ..Default::default()
        },
        meta.to_key_values(),
    )
    .unwrap();
    let mut events: Vec<&Event> = workloads.iter().flat_map(|w| &w.events).collect();
    events.sort_by_key(|e| e.time_ns);
    let mut b = TraceBatchBuilder::new(&meta.host);
    events.iter().for_each(|e| b.push(e));
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, arrow_schema(), Some(props)).unwrap();
    w.write(&b.finish()).unwrap();
    w.close().unwrap();
}

/// A fleet: `n` normal containers and, if `attack`, one attacked container (id `cid(999)`).
pub fn fleet(n: usize, attack: bool) -> Vec<Workload> {
    let mut v: Vec<Workload> = (0..n)
        .map(|i| Workload::normal(&cid(i), &format!("web-{i}"), 40 + (i as i64 % 5)))
        .collect();
    if attack {
        v.push(Workload::attacked(&cid(999), "web-evil", 42));
    }
    v
}

/// Runs `analyze` with `args`.
pub fn analyze(args: &[&str]) -> Output {
    Command::new(needle_tests::binary("analyze"))
        .args(args)
        .output()
        .expect("run analyze")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `analyze … --format json`, expects success, returns the document.
pub fn analyze_json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let o = analyze(&all);
    assert!(o.status.success(), "analyze {all:?} failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(&o)))
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}
