//! Feature tests over traces written with the schema's own batch builder.

use std::sync::Arc;

use needle_common::schema::{
    Container, Detail, Dns, Event, FilePath, Net, PathSource, Process, TraceBatchBuilder,
};

use super::*;
use crate::columns::workload_key;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * S;

#[derive(Clone, Copy)]
pub(crate) struct Ev {
    pub container: Option<&'static str>,
    pub cgroup: u64,
    pub t: i64,
    pub tgid: u32,
    pub ppid: u32,
    pub comm: &'static str,
    pub exe: Option<&'static str>,
}

impl Ev {
    pub fn in_container(id: &'static str) -> Ev {
        Ev {
            container: Some(id),
            cgroup: 1,
            t: T0,
            tgid: 100,
            ppid: 1,
            comm: "app",
            exe: Some("/app"),
        }
    }
    pub fn at(self, secs: i64) -> Ev {
        Ev {
            t: T0 + secs * S,
            ..self
        }
    }
    pub fn proc(self, tgid: u32, ppid: u32, comm: &'static str) -> Ev {
        Ev {
            tgid,
            ppid,
            comm,
            ..self
        }
    }
    pub fn exe(self, exe: &'static str) -> Ev {
        Ev {
            exe: Some(exe),
            ..self
        }
    }
    pub fn with(&self, detail: Detail) -> Event {
        Event {
            time_ns: self.t,
            ktime_ns: self.t as u64,
            process: Process {
                pid: self.tgid,
                tgid: self.tgid,
                ppid: self.ppid,
                uid: 0,
                gid: 0,
                comm: self.comm.into(),
                cgroup_id: self.cgroup,
            },
            exe_path: self.exe.map(Into::into),
            exe_sha256: None,
            container: self.container.map(|id| {
                Arc::new(Container {
                    id: id.into(),
                    name: Some(format!("{id}-name").into()),
                    image: Some("img:1".into()),
                    ..Default::default()
                })
            }),
            workload: None,
            context: None,
            label: None,
            detail,
        }
    }
}

pub(crate) fn batch(events: &[Event]) -> arrow::record_batch::RecordBatch {
    let mut b = TraceBatchBuilder::new("node-1");
    events.iter().for_each(|e| b.push(e));
    b.finish()
}

pub(crate) fn table(events: &[Event]) -> FeatureTable {
    let mut acc = Accumulator::new("node-1", TimeWindow::default());
    acc.add_batch(&batch(events)).unwrap();
    finalize(acc.finish())
}

fn v(t: &FeatureTable, w: &str, name: &str) -> f64 {
    t.value(w, name)
        .unwrap_or_else(|| panic!("no {name} for {w}"))
}

pub(crate) fn exec() -> Detail {
    Detail::Exec {
        argv: vec![],
        truncated: false,
        state: None,
    }
}

fn file(p: &str) -> FilePath {
    FilePath {
        path: p.into(),
        source: PathSource::Kernel,
    }
}

pub(crate) fn net(addr: &str, port: u16, bytes: Option<u64>) -> Net {
    Net {
        family: "inet".into(),
        protocol: "tcp".into(),
        dst_addr: Some(addr.into()),
        dst_port: Some(port),
        bytes,
        ..Default::default()
    }
}

pub(crate) fn dns(name: &str, rcode: Option<u8>) -> Dns {
    Dns {
        name: name.into(),
        qtype: 1,
        rcode,
        ..Default::default()
    }
}

#[test]
fn workloads_are_containers_or_host_cgroups() {
    let host_proc = Ev {
        container: None,
        cgroup: 42,
        ..Ev::in_container("x")
    };
    let t = table(&[
        Ev::in_container("c1").with(Detail::Fork),
        host_proc.with(Detail::Fork),
        host_proc.with(Detail::Fork),
    ]);
    let keys: Vec<_> = t.rows.iter().map(|r| r.workload.as_str()).collect();
    assert_eq!(keys, ["c1", "host:node-1:cgroup-42"]);
    assert_eq!(v(&t, "host:node-1:cgroup-42", "events.fork"), 2.0);
    assert_eq!(t.rows[0].context.name.as_deref(), Some("c1-name"));
    assert_eq!(t.rows[0].hosts, ["node-1"]);
    assert_eq!(workload_key(Some(""), "h", 7), "host:h:cgroup-7");
}

#[test]
fn counts_rates_and_lifetime() {
    let c = Ev::in_container("c");
    let t = table(&[
        c.at(0).with(Detail::Fork),
        c.at(5).with(exec()),
        c.at(10).with(Detail::Exit {
            code: Some(0),
            signal: None,
        }),
    ]);
    assert_eq!(v(&t, "c", "events.total"), 3.0);
    assert_eq!(v(&t, "c", "lifetime_s"), 10.0);
    assert_eq!(v(&t, "c", "events.exec"), 1.0);
    assert!((v(&t, "c", "rate.fork") - 0.1).abs() < 1e-12);
}

#[test]
fn executables_and_shells() {
    let c = Ev::in_container("c");
    let t = table(&[
        // nginx forks a child that becomes a shell: suspicious.
        c.at(1).proc(200, 100, "nginx").with(Detail::Fork),
        c.at(2).proc(200, 100, "sh").exe("/bin/sh").with(exec()),
        // that shell forks a child that becomes a shell: ordinary.
        c.at(3).proc(300, 200, "sh").with(Detail::Fork),
        c.at(4).proc(300, 200, "bash").exe("/bin/bash").with(exec()),
        // a binary from /tmp, a memfd and a deleted file.
        c.at(5)
            .proc(400, 300, "x")
            .exe("/tmp/.x/miner")
            .with(exec()),
        c.at(6)
            .proc(401, 300, "x")
            .exe("/memfd:a (deleted)")
            .with(exec()),
        c.at(7)
            .proc(402, 300, "x")
            .exe("/tmp/.x/miner")
            .with(exec()),
    ]);
    assert_eq!(v(&t, "c", "proc.shell_from_non_shell"), 1.0);
    assert_eq!(v(&t, "c", "exe.distinct"), 4.0);
    assert_eq!(v(&t, "c", "exe.writable_path"), 3.0);
    assert_eq!(v(&t, "c", "exe.fileless"), 1.0);
    assert_eq!(v(&t, "c", "proc.distinct"), 5.0);
    // 100 → 200 → 300 → 400: four levels among known processes (200, 300, 4xx).
    assert_eq!(v(&t, "c", "proc.tree_depth"), 3.0);
    assert_eq!(v(&t, "c", "proc.fanout_max"), 3.0);
}

#[test]
fn shell_exec_chain_judges_the_previous_image() {
    let c = Ev::in_container("c");
    let t = table(&[
        c.at(1)
            .proc(200, 1, "python")
            .exe("/usr/bin/python3")
            .with(exec()),
        c.at(2).proc(200, 1, "sh").exe("/bin/sh").with(exec()),
    ]);
    assert_eq!(v(&t, "c", "proc.shell_from_non_shell"), 1.0);
}

#[test]
fn files_written_then_executed() {
    let c = Ev::in_container("c");
    let create = |p: &str| Detail::Open {
        file: file(p),
        flags: 0o101,
        mode: 0o755,
        ret: 3,
        count: None,
    };
    let t = table(&[
        c.at(1).with(create("/tmp/a")),
        c.at(2).exe("/tmp/a").with(exec()),
        // executed before it was written: not counted.
        c.at(3).exe("/tmp/b").with(exec()),
        c.at(4).with(create("/tmp/b")),
        // renamed into place, then executed.
        c.at(5).with(Detail::Rename {
            file: file("/tmp/c.part"),
            new_path: "/usr/local/bin/c".into(),
            ret: 0,
        }),
        c.at(6).exe("/usr/local/bin/c").with(exec()),
        // made executable, then executed.
        c.at(7).with(Detail::Chmod {
            file: file("/opt/d"),
            mode: 0o755,
            ret: 0,
        }),
        c.at(8).exe("/opt/d").with(exec()),
        // a read-only open and a failed write do not count.
        c.at(9).with(Detail::Open {
            file: file("/etc/passwd"),
            flags: 0,
            mode: 0,
            ret: 3,
            count: None,
        }),
        c.at(9).with(Detail::Open {
            file: file("/etc/shadow"),
            flags: 0o1,
            mode: 0,
            ret: -13,
            count: None,
        }),
    ]);
    assert_eq!(v(&t, "c", "file.written_then_executed"), 3.0);
    assert_eq!(v(&t, "c", "file.writes"), 2.0);
}

#[test]
fn network_features() {
    let c = Ev::in_container("c");
    let t = table(&[
        c.with(Detail::Connect(Box::new(net("10.0.0.1", 3333, None)))),
        c.with(Detail::Connect(Box::new(net("10.0.0.1", 443, None)))),
        c.with(Detail::SendTo(Box::new(net("10.0.0.2", 443, Some(100))))),
        c.with(Detail::SendTo(Box::new(net("10.0.0.2", 443, Some(50))))),
        c.with(Detail::Accept(Box::new(net("10.9.9.9", 40000, None)))),
    ]);
    assert_eq!(v(&t, "c", "net.remote_ips"), 3.0);
    assert_eq!(v(&t, "c", "net.remote_ports"), 2.0);
    assert_eq!(v(&t, "c", "net.unusual_ports"), 1.0);
    assert_eq!(v(&t, "c", "net.outbound"), 4.0);
    assert_eq!(v(&t, "c", "net.inbound"), 1.0);
    assert_eq!(v(&t, "c", "net.outbound_ratio"), 0.8);
    assert_eq!(v(&t, "c", "net.bytes_out"), 150.0);
}

#[test]
fn dns_features() {
    let c = Ev::in_container("c");
    let t = table(&[
        c.with(Detail::DnsQuery(Box::new(dns("aaaa.example.com", None)))),
        c.with(Detail::DnsQuery(Box::new(dns("ab.example.com", None)))),
        c.with(Detail::DnsQuery(Box::new(dns("ab.example.com", None)))),
        c.with(Detail::DnsResponse(Box::new(dns(
            "ab.example.com",
            Some(0),
        )))),
        c.with(Detail::DnsResponse(Box::new(dns("x.example.com", Some(3))))),
    ]);
    assert_eq!(v(&t, "c", "dns.queries"), 3.0);
    assert_eq!(v(&t, "c", "dns.distinct_names"), 2.0);
    assert!((v(&t, "c", "dns.name_entropy_mean") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(v(&t, "c", "dns.name_entropy_max"), 1.0);
    assert_eq!(v(&t, "c", "dns.name_len_max"), 16.0);
    assert!((v(&t, "c", "dns.name_len_mean") - 44.0 / 3.0).abs() < 1e-9);
    assert_eq!(v(&t, "c", "dns.nxdomain_ratio"), 0.5);
}

#[test]
fn dns_rows_weigh_by_their_count() {
    // Capture's DNS collapse windows: a row with `count` stands for that many more messages
    // like it; per-name features still count names.
    let counted = |name: &str, rcode: Option<u8>, n: u64| {
        let mut d = dns(name, rcode);
        d.net.count = Some(n);
        d
    };
    let c = Ev::in_container("c");
    let t = table(&[
        c.with(Detail::DnsQuery(Box::new(dns("ab.example.com", None)))),
        c.with(Detail::DnsQuery(Box::new(counted(
            "ab.example.com",
            None,
            9,
        )))),
        c.with(Detail::DnsQuery(Box::new(dns("x.example.com", None)))),
        c.with(Detail::DnsResponse(Box::new(dns(
            "ab.example.com",
            Some(0),
        )))),
        c.with(Detail::DnsResponse(Box::new(counted(
            "ab.example.com",
            Some(0),
            9,
        )))),
        c.with(Detail::DnsResponse(Box::new(counted(
            "x.example.com",
            Some(3),
            4,
        )))),
    ]);
    assert_eq!(v(&t, "c", "dns.queries"), 11.0);
    assert_eq!(v(&t, "c", "dns.distinct_names"), 2.0);
    assert_eq!(v(&t, "c", "dns.nxdomain_ratio"), 4.0 / 14.0);
}

#[test]
fn syscall_histogram_and_security_calls() {
    let c = Ev::in_container("c");
    let t = table(&[
        c.with(Detail::Syscall { nr: 0, ret: None }),
        c.with(Detail::Syscall { nr: 101, ret: None }),
        c.with(Detail::SyscallProfile {
            counts: vec![(0, 5), (1, 3)],
        }),
        c.with(Detail::Syscall {
            nr: 99_999,
            ret: None,
        }),
        c.with(Detail::Ptrace {
            request: 16,
            target_pid: 1,
            ret: 0,
        }),
        c.with(Detail::Mount {
            source: "/".into(),
            target: "/mnt".into(),
            fstype: "ext4".into(),
            flags: 0,
            ret: 0,
        }),
    ]);
    assert_eq!(v(&t, "c", "syscall.total"), 11.0);
    assert_eq!(v(&t, "c", "syscall.0"), 6.0 / 11.0);
    assert_eq!(v(&t, "c", "syscall.1"), 3.0 / 11.0);
    assert_eq!(v(&t, "c", "syscall.distinct"), 4.0);
    // ptrace syscall + ptrace event + mount event.
    assert_eq!(v(&t, "c", "security.calls"), 3.0);
}

#[test]
fn merging_partials_does_not_depend_on_the_split() {
    let c = Ev::in_container("c");
    let events = vec![
        c.at(1).proc(200, 100, "nginx").with(Detail::Fork),
        c.at(2).proc(200, 100, "sh").exe("/bin/sh").with(exec()),
        c.at(3).with(Detail::Open {
            file: file("/tmp/a"),
            flags: 0o101,
            mode: 0o755,
            ret: 3,
            count: None,
        }),
        c.at(4).exe("/tmp/a").with(exec()),
        c.at(5)
            .with(Detail::Connect(Box::new(net("10.0.0.1", 3333, None)))),
        c.at(6)
            .with(Detail::DnsQuery(Box::new(dns("q.example", None)))),
        c.at(7).with(Detail::SyscallProfile {
            counts: vec![(0, 5), (1, 3)],
        }),
        Ev {
            container: None,
            cgroup: 9,
            ..Ev::in_container("x")
        }
        .at(8)
        .with(Detail::Fork),
    ];
    let whole = table(&events);
    for split in 1..events.len() {
        let mut merged = Partials::new();
        // Later rows first: merge order must not matter either.
        for part in [&events[split..], &events[..split]] {
            let mut acc = Accumulator::new("node-1", TimeWindow::default());
            acc.add_batch(&batch(part)).unwrap();
            merge_partials(&mut merged, acc.finish());
        }
        let t = finalize(merged);
        assert_eq!(t.rows, whole.rows, "split at {split}");
    }
}

#[test]
fn time_window_keeps_only_rows_inside() {
    let c = Ev::in_container("c");
    let events: Vec<Event> = (0..10).map(|s| c.at(s).with(Detail::Fork)).collect();
    let mut acc = Accumulator::new(
        "h",
        TimeWindow {
            since: Some(T0 + 2 * S),
            until: Some(T0 + 5 * S),
        },
    );
    acc.add_batch(&batch(&events)).unwrap();
    assert_eq!(acc.rows, 3);
    let t = finalize(acc.finish());
    assert_eq!(v(&t, "c", "events.fork"), 3.0);
}

#[test]
fn older_files_without_optional_columns_still_get_features() {
    let c = Ev::in_container("c");
    let full = batch(&[
        c.with(exec()),
        c.with(Detail::DnsQuery(Box::new(dns("a.b", None)))),
    ]);
    let schema = full.schema();
    let keep: Vec<usize> = (0..full.num_columns())
        .filter(|&i| {
            !["dns_name", "exe_path", "syscall_counts", "container_name"]
                .contains(&schema.field(i).name().as_str())
        })
        .collect();
    let mut acc = Accumulator::new("h", TimeWindow::default());
    acc.add_batch(&full.project(&keep).unwrap()).unwrap();
    let t = finalize(acc.finish());
    assert_eq!(v(&t, "c", "dns.queries"), 1.0);
    assert_eq!(v(&t, "c", "dns.distinct_names"), 0.0);

    let no_kind: Vec<usize> = (0..full.num_columns())
        .filter(|&i| schema.field(i).name() != "kind")
        .collect();
    let err = Accumulator::new("h", TimeWindow::default())
        .add_batch(&full.project(&no_kind).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("`kind`"), "{err}");
}

#[test]
fn capture_host_keys_are_qualified_with_the_host() {
    assert_eq!(workload_key(Some("host"), "node-1", 9), "host:node-1");
    assert_eq!(
        workload_key(Some("host:sshd.service"), "node-1", 9),
        "host:node-1:sshd.service"
    );
    assert_eq!(workload_key(Some("ab12"), "node-1", 9), "ab12");
}

/// What a workload first does after its start-up counts in `late.*`, and the change says when
/// it began and which subtree carries it; the same things during start-up do not.
#[test]
fn behaviour_first_seen_after_start_up_is_late() {
    let c = Ev::in_container("svc");
    let startup = catalog::STARTUP_S;
    let mut ev = vec![
        c.at(0).proc(100, 1, "sh").exe("/bin/sh").with(exec()),
        c.at(5).proc(101, 100, "wget").exe("/bin/wget").with(exec()),
        c.at(6)
            .proc(101, 100, "wget")
            .with(Detail::Connect(Box::new(net("10.0.0.1", 80, None)))),
        c.at(7)
            .proc(101, 100, "wget")
            .with(Detail::DnsQuery(Box::new(dns("mirror.example", None)))),
    ];
    // After start-up: the same tool again (not new), then a new subtree: 200 forks 300,
    // which runs a binary it never ran before, resolves a new name and connects somewhere new.
    let late = startup + 30;
    ev.extend([
        c.at(late)
            .proc(102, 100, "wget")
            .exe("/bin/wget")
            .with(exec()),
        c.at(late + 1).proc(200, 100, "sh").with(Detail::Fork),
        c.at(late + 2).proc(300, 200, "sh").with(Detail::Fork),
        c.at(late + 3)
            .proc(300, 200, "x")
            .exe("/tmp/.x/x")
            .with(exec()),
        c.at(late + 4)
            .proc(300, 200, "x")
            .with(Detail::DnsQuery(Box::new(dns("pool.example", None)))),
        c.at(late + 5)
            .proc(300, 200, "x")
            .with(Detail::Connect(Box::new(net("10.9.9.9", 4444, None)))),
        c.at(late + 6)
            .proc(300, 200, "x")
            .with(Detail::Connect(Box::new(net("10.0.0.1", 80, None)))),
    ]);
    let t = table(&ev);
    let v = |name: &str| t.value("svc", name).unwrap_or(f64::NAN);
    assert_eq!(v("late.new_executables"), 1.0, "only /tmp/.x/x is new");
    assert_eq!(
        v("late.new_destinations"),
        1.0,
        "10.0.0.1:80 was seen at start-up"
    );
    assert_eq!(v("late.new_domains"), 1.0);
    let change = t.rows[0].change.clone().expect("a change");
    assert_eq!(change.first, "executable");
    assert_eq!(change.pid, 300);
    assert_eq!(
        change.subtree, 200,
        "the subtree that appeared after start-up"
    );
    assert_eq!(change.time_ns, T0 + (late + 3) * S);
    assert_eq!(change.new_after_startup, 3);

    // The same behaviour within start-up: nothing is late.
    let early: Vec<Event> = ev
        .iter()
        .cloned()
        .map(|mut e| {
            if e.time_ns > T0 + startup * S {
                e.time_ns -= (startup - 10) * S;
            }
            e
        })
        .collect();
    let t = table(&early);
    assert_eq!(t.value("svc", "late.new_executables"), Some(0.0));
    assert!(t.rows[0].change.is_none());
}

/// A destination or name first seen after start-up recurs when it is seen in at least
/// `RECUR_MINUTES` distinct clock minutes; a burst within a minute or two, or a destination the
/// start-up already used, does not; and the count does not depend on how rows are split.
#[test]
fn late_destinations_and_names_that_keep_coming_back_recur() {
    let c = Ev::in_container("svc");
    let startup = catalog::STARTUP_S;
    let connect = |at: i64, ip: &str, port: u16| {
        c.at(at)
            .proc(100, 1, "wget")
            .with(Detail::Connect(Box::new(net(ip, port, None))))
    };
    let query = |at: i64, name: &str| {
        c.at(at)
            .proc(100, 1, "wget")
            .with(Detail::DnsQuery(Box::new(dns(name, None))))
    };
    // Seen at start-up, then every 20 s: not new, so not a recurring *late* destination.
    let mut ev = vec![connect(1, "10.0.0.1", 9091), query(1, "metrics.svc")];
    // A beacon from after start-up, every 15 s for 3 minutes.
    for k in 0..12 {
        let at = startup + 30 + 15 * k;
        ev.push(connect(at, "10.0.0.1", 9091));
        ev.push(connect(at, "10.6.6.6", 8443));
        ev.push(query(at, "c2.example"));
    }
    // A look around after start-up: three connections within 20 s.
    for k in 0..3 {
        ev.push(connect(startup + 40 + 10 * k, "10.7.7.7", 443));
        ev.push(query(startup + 40 + 10 * k, "once.example"));
    }
    let t = table(&ev);
    let v = |t: &FeatureTable, name: &str| t.value("svc", name).unwrap_or(f64::NAN);
    assert_eq!(v(&t, "late.new_destinations"), 2.0);
    assert_eq!(v(&t, "late.recurring_destinations"), 1.0, "only the beacon");
    assert_eq!(v(&t, "late.new_domains"), 2.0);
    assert_eq!(v(&t, "late.recurring_domains"), 1.0);
    // Every split of the rows into two partials gives the same values.
    for cut in [1, ev.len() / 3, ev.len() / 2, ev.len() - 1] {
        let mut merged = Partials::new();
        for part in [&ev[cut..], &ev[..cut]] {
            let mut acc = Accumulator::new("node-1", TimeWindow::default());
            acc.add_batch(&batch(part)).unwrap();
            merge_partials(&mut merged, acc.finish());
        }
        let split = finalize(merged);
        for name in ["late.recurring_destinations", "late.recurring_domains"] {
            assert_eq!(v(&split, name), v(&t, name), "{name} split at {cut}");
        }
    }
}

#[test]
fn a_program_run_from_a_fresh_numbered_directory_per_job_is_not_new() {
    let c = Ev::in_container("ci");
    let late = catalog::STARTUP_S + 30;
    let run =
        |t: i64, pid: u32, path: &'static str| c.at(t).proc(pid, 1, "app").exe(path).with(exec());
    let ev = vec![
        run(5, 100, "/builds/1/bin/app"),
        run(late, 101, "/builds/2/bin/app"),
        run(late + 10, 102, "/builds/31/bin/app"),
        run(late + 20, 103, "/builds/x/bin/app"),
    ];
    let t = table(&ev);
    assert_eq!(
        t.value("ci", "late.new_executables"),
        Some(1.0),
        "/builds/#/bin/app ran at start-up; /builds/x/bin/app did not"
    );
    assert_eq!(
        t.value("ci", "exe.distinct"),
        Some(4.0),
        "four files all the same"
    );
}
