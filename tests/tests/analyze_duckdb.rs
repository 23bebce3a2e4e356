//! The SQL form of the features (bench/duckdb_features.py, run by DuckDB) and the native
//! `analyze features` agree on the same file. Runs when a Python with `duckdb` is available
//! (`NEEDLE_PYTHON`, else `python3`); otherwise prints a SKIP line.

mod analyze_support;

use std::collections::BTreeMap;
use std::path::Path;

use analyze_support::*;
use needle_common::schema::{Detail, Dns, FilePath, Net, PathSource};

fn read_csv(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let mut rows = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        let row: BTreeMap<String, String> = header
            .iter()
            .cloned()
            .zip(cells.iter().map(|c| c.to_string()))
            .collect();
        rows.insert(row["workload"].clone(), row);
    }
    rows
}

#[test]
fn sql_and_native_features_agree() {
    let Some(py) = needle_tests::duckdb::python() else {
        eprintln!(
            "SKIP sql_and_native_features_agree: no Python with duckdb (pip install duckdb, or set NEEDLE_PYTHON)"
        );
        if let Some(log) = std::env::var_os("NEEDLE_SKIP_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "sql_and_native_features_agree: no Python with duckdb");
            }
        }
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut ws = fleet(5, true);
    let extra = ws.last_mut().unwrap();
    let tmp = |p: &str| FilePath {
        path: p.into(),
        source: PathSource::Kernel,
    };
    extra
        .event(
            35,
            301,
            300,
            "xmrig",
            "/tmp/.x/xmrig",
            Detail::SyscallProfile {
                counts: vec![(0, 40), (101, 2), (1, 9)],
            },
        )
        .event(
            36,
            301,
            300,
            "xmrig",
            "/tmp/.x/xmrig",
            Detail::Rename {
                file: tmp("/tmp/a"),
                new_path: "/tmp/b".into(),
                ret: 0,
            },
        )
        .event(37, 302, 300, "b", "/tmp/b", exec())
        .event(38, 302, 300, "b", "/memfd:x (deleted)", exec())
        .event(
            39,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::Chmod {
                file: tmp("/tmp/c"),
                mode: 0o700,
                ret: 0,
            },
        )
        .event(
            39,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::SendTo(Box::new(Net {
                bytes: Some(99),
                ..net("198.51.100.1", 53)
            })),
        )
        .event(
            40,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::DnsResponse(Box::new(Dns {
                rcode: Some(3),
                ..dns("nx.example")
            })),
        )
        .event(
            40,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::DnsResponse(Box::new(Dns {
                rcode: Some(0),
                ..dns("ok.example")
            })),
        )
        .event(
            41,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::Ptrace {
                request: 16,
                target_pid: 1,
                ret: 0,
            },
        )
        // A collapse window: one open, then a row standing for 41 more (a write-open: file.writes).
        .event(
            42,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::Open {
                file: tmp("/tmp/log"),
                flags: 0o1101,
                mode: 0o644,
                ret: 3,
                count: None,
            },
        )
        .event(
            43,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::Open {
                file: tmp("/tmp/log"),
                flags: 0o1101,
                mode: 0o644,
                ret: 3,
                count: Some(41),
            },
        )
        // Network windows: a connect to an unusual port and its 9 repeats, accepts likewise.
        .event(
            44,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::Connect(Box::new(net("203.0.113.7", 4444))),
        )
        .event(
            45,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::Connect(Box::new(Net {
                count: Some(9),
                ret: Some(0),
                ..net("203.0.113.7", 4444)
            })),
        )
        .event(
            45,
            302,
            300,
            "b",
            "/tmp/b",
            Detail::Accept(Box::new(Net {
                count: Some(5),
                ..net("203.0.113.8", 0)
            })),
        );
    // The behaviour-class features: credential reads, log and history tampering (a compressor's
    // unlink of a log is not), a setuid bit, refused connections to several ports of one host,
    // a namespace change, a shell started beside a downloader, discovery commands.
    let ok_open = |p: &str, flags: u64| Detail::Open {
        file: tmp(p),
        flags,
        mode: 0o644,
        ret: 3,
        count: None,
    };
    extra
        .event(50, 303, 300, "cat", "/bin/cat", ok_open("/etc/shadow", 0))
        .event(
            50,
            303,
            300,
            "cat",
            "/bin/cat",
            ok_open("/root/.ssh/id_rsa", 0),
        )
        .event(
            51,
            303,
            300,
            "cat",
            "/bin/cat",
            ok_open("/proc/1/environ", 0),
        )
        .event(
            51,
            303,
            300,
            "cat",
            "/bin/cat",
            ok_open("/proc/303/environ", 0),
        )
        .event(
            51,
            303,
            300,
            "sh",
            "/bin/sh",
            Detail::Truncate {
                file: tmp("/var/log/wtmp"),
                length: 0,
                ret: 0,
            },
        )
        .event(
            51,
            303,
            300,
            "sh",
            "/bin/sh",
            ok_open("/var/log/syslog", 0o1001),
        )
        .event(51, 303, 300, "sh", "/bin/sh", ok_open("/etc/passwd", 0o1))
        .event(
            52,
            304,
            300,
            "rm",
            "/bin/rm",
            Detail::Unlink {
                file: tmp("/var/log/auth.log"),
                ret: 0,
            },
        )
        .event(
            52,
            305,
            300,
            "gzip",
            "/bin/gzip",
            Detail::Unlink {
                file: tmp("/var/log/app.log"),
                ret: 0,
            },
        )
        .event(
            52,
            305,
            300,
            "gzip",
            "/bin/gzip",
            Detail::Unlink {
                file: tmp("/var/log/app.log.2.gz"),
                ret: 0,
            },
        )
        .event(
            53,
            304,
            300,
            "mv",
            "/bin/mv",
            Detail::Rename {
                file: tmp("/root/.bash_history"),
                new_path: "/tmp/h".into(),
                ret: 0,
            },
        )
        .event(
            53,
            304,
            300,
            "chmod",
            "/bin/chmod",
            Detail::Chmod {
                file: tmp("/tmp/s"),
                mode: 0o4755,
                ret: 0,
            },
        )
        .event(54, 306, 300, "nsenter", "/usr/bin/nsenter", exec())
        .event(
            54,
            306,
            300,
            "nsenter",
            "/usr/bin/nsenter",
            Detail::Setns { flags: 0, ret: 0 },
        )
        .event(55, 307, 300, "wget", "/bin/wget", exec())
        .event(56, 308, 300, "sh", "/bin/sh", exec())
        .event(57, 309, 300, "id", "/usr/bin/id", exec())
        .event(57, 310, 300, "uname", "/bin/uname", exec());
    for port in [21u16, 22, 23, 25] {
        extra.event(
            58,
            311,
            300,
            "nc",
            "/bin/nc",
            Detail::Connect(Box::new(Net {
                ret: Some(-111),
                ..net("10.0.0.9", port)
            })),
        );
    }
    // A beacon that starts after start-up and lasts (late.recurring_*), and a one-off look.
    for k in 0..6 {
        extra
            .event(
                100 + 30 * k,
                312,
                300,
                "wget",
                "/bin/wget",
                Detail::DnsQuery(Box::new(dns("c2.example.net"))),
            )
            .event(
                100 + 30 * k,
                312,
                300,
                "wget",
                "/bin/wget",
                Detail::Connect(Box::new(net("198.51.100.9", 8443))),
            );
    }
    extra.event(
        110,
        313,
        300,
        "nc",
        "/bin/nc",
        Detail::Connect(Box::new(net("198.51.100.10", 22))),
    );
    // A job run from a fresh numbered directory: the same program at start-up and after it
    // (late.new_executables counts /builds/#/app once, and not as new).
    for (t, pid, dir) in [(8, 320, "1"), (120, 321, "2"), (150, 322, "37")] {
        let path = format!("/builds/{dir}/app");
        extra.event(t, pid, 300, "app", &path, exec());
    }
    let mut host = Workload::normal("h", "h", 3);
    for e in &mut host.events {
        e.container = None;
    }
    ws.push(host);
    let f = dir.path().join("t.parquet");
    write_trace(&f, &ws, |_| {});

    let native = dir.path().join("native.csv");
    let o = analyze(&["features", p(&f), "--out", p(&native)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sql = dir.path().join("sql.csv");
    needle_tests::duckdb::sql_features(&py, &f, &sql);

    let (n, s) = (read_csv(&native), read_csv(&sql));
    assert_eq!(
        n.keys().collect::<Vec<_>>(),
        s.keys().collect::<Vec<_>>(),
        "same workloads"
    );
    let mut compared = std::collections::BTreeSet::new();
    for (w, nrow) in &n {
        let srow = &s[w];
        for (col, sv) in srow {
            if col == "workload" {
                continue;
            }
            let nv = nrow
                .get(col)
                .unwrap_or_else(|| panic!("native table has no column {col}"));
            let (a, b): (f64, f64) = (
                nv.parse().unwrap(),
                sv.parse().unwrap_or_else(|_| panic!("{col}={sv:?}")),
            );
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                "{w} {col}: native {a} sql {b}"
            );
            compared.insert(col.clone());
        }
    }
    assert!(
        compared.len() >= 90,
        "only {} features compared",
        compared.len()
    );
    for must in [
        "file.written_then_executed",
        "exe.writable_path",
        "dns.name_entropy_mean",
        "syscall.101",
        "security.calls",
        "file.credential_reads",
        "file.log_tampering",
        "file.setid_bits",
        "net.ports_per_host_max",
        "net.hosts_per_port_max",
        "net.refused",
        "proc.namespace_changes",
        "proc.shell_beside_download",
        "proc.discovery_tools",
        "late.recurring_destinations",
        "late.recurring_domains",
    ] {
        assert!(compared.contains(must), "{must} not compared");
    }
}
