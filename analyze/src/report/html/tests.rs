use super::evidence::{Gathered, Sighting, What};
use super::view::tree_rows;
use crate::rank::{Finding, ProcessInfo};

fn ev(t: i64, tgid: u32, ppid: u32, exe: &str, key: Option<(&str, &str)>, what: What) -> Sighting {
    Sighting {
        time_ns: t,
        kind: match what {
            What::Exec(_) => "exec",
            What::Peer { .. } => "connect",
            What::Dns { .. } => "dns_query",
            _ => "open",
        },
        events: 1,
        tgid,
        ppid,
        comm: exe.rsplit('/').next().unwrap_or(exe).into(),
        process_key: key.map(|k| k.0.into()),
        parent_key: key.map(|k| k.1.into()),
        exe: Some(exe.into()),
        what,
        ..Default::default()
    }
}

#[test]
fn tree_links_parents_and_highlights_the_flagged_branch() {
    let mut g = Gathered::new(0, 10);
    let exec = || What::Exec(vec!["x".into(), "-y".into()]);
    for e in [
        ev(1, 10, 1, "/usr/sbin/nginx", None, exec()),
        // Keys from the trace link sh to nginx even though nginx has none: by ppid.
        ev(2, 20, 10, "/bin/sh", Some(("20@5", "10@1")), exec()),
        ev(3, 30, 20, "/tmp/x", Some(("30@6", "20@5")), exec()),
        ev(
            4,
            30,
            20,
            "/tmp/x",
            Some(("30@6", "20@5")),
            What::Peer {
                addr: "203.0.113.7".into(),
                port: 3333,
                protocol: "tcp".into(),
                bytes: 0,
            },
        ),
        ev(
            5,
            30,
            20,
            "/tmp/x",
            Some(("30@6", "20@5")),
            What::Dns {
                name: "pool.example".into(),
                response: false,
                rcode: None,
                answers: vec![],
            },
        ),
        ev(6, 11, 1, "/usr/bin/other", None, exec()),
    ] {
        g.add(&e, (e.time_ns, 0, 0));
    }
    let w = g.finish();
    assert_eq!(w.processes["pid:10"].argv.as_deref(), Some("x -y"));
    assert_eq!(w.destinations.len(), 1);
    assert_eq!(w.dns["pool.example"].queries, 1);
    let finding = Finding {
        process: Some(ProcessInfo {
            pid: 30,
            process_key: Some("30@6".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let rows = tree_rows(&w, &[finding]);
    let shape: Vec<(usize, &str, bool, bool)> = rows
        .iter()
        .map(|r| (r.depth, r.exe.as_deref().unwrap_or(""), r.flagged, r.branch))
        .collect();
    assert_eq!(
        shape,
        [
            (0, "/usr/sbin/nginx", false, true),
            (1, "/bin/sh", false, true),
            (2, "/tmp/x", true, false),
            (0, "/usr/bin/other", false, false)
        ]
    );
}

#[test]
fn a_row_that_closes_a_collapse_window_counts_every_event_it_stands_for() {
    let mut g = Gathered::new(0, 10);
    let peer = What::Peer {
        addr: "198.51.100.4".into(),
        port: 443,
        protocol: "tcp".into(),
        bytes: 0,
    };
    let query = What::Dns {
        name: "example.org".into(),
        response: false,
        rcode: None,
        answers: vec![],
    };
    // The window's first connect and query, then the rows that close the windows (capture
    // counted 5 more connects and 3 more queries into them).
    for (t, what, events) in [(1, &peer, 1), (2, &query, 1), (3, &peer, 5), (4, &query, 3)] {
        let mut e = ev(t, 10, 1, "/usr/bin/curl", None, what.clone());
        e.events = events;
        g.add(&e, (t, 0, 0));
    }
    let w = g.finish();
    let d = &w.destinations[&("198.51.100.4".to_string(), 443, "tcp".to_string())];
    assert_eq!(d.count, 6);
    assert_eq!(w.dns["example.org"].queries, 4);
    assert_eq!(w.processes["pid:10"].events, 10);
    let totals = w.series.totals();
    assert_eq!(totals, [("connect", 6), ("dns_query", 4)]);
}

/// Seeded rows of `procs` processes: execs, exits, peers, DNS, files, and plain rows.
fn rows(procs: u32, n: usize) -> Vec<Sighting> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    (0..n)
        .map(|i| {
            let tgid = 100 + next(u64::from(procs)) as u32;
            let key = format!("{tgid}@1");
            let parent = format!("{}@1", 100 + next(u64::from(procs)));
            let what = match next(6) {
                0 => What::Exec(vec![format!("/bin/x{}", next(3)), "-y".into()]),
                1 => What::Exit {
                    code: Some(next(3) as i32),
                    signal: None,
                },
                2 => What::Peer {
                    addr: format!("198.51.100.{}", next(500)),
                    port: 443,
                    protocol: "tcp".into(),
                    bytes: next(100),
                },
                3 => What::Dns {
                    name: format!("n{}.example", next(450)),
                    response: next(2) == 0,
                    rcode: Some(0),
                    answers: vec![format!("192.0.2.{}", next(4))],
                },
                4 => What::File(format!("/tmp/f{}", next(420))),
                _ => What::Other,
            };
            // Equal times on purpose: the order among them is the row's place.
            let t = (i / 3) as i64;
            let exe = format!("/usr/bin/e{}", next(12));
            let mut e = ev(t, tgid, 1, &exe, Some((&key, &parent)), what);
            e.events = 1 + next(3);
            e
        })
        .collect()
}

#[test]
fn parts_merged_in_any_order_equal_folding_every_row_in_time_order() {
    let all = rows(450, 6_000);
    let mut whole = Gathered::new(0, 2_000);
    for (i, e) in all.iter().enumerate() {
        whole.add(e, (e.time_ns, 0, i as u32));
    }
    let whole = whole.finish();
    // Three row groups: rows dealt round-robin, each row keeping its place.
    let mut parts: Vec<Gathered> = (0..3).map(|_| Gathered::new(0, 2_000)).collect();
    for (i, e) in all.iter().enumerate() {
        parts[i % 3].add(e, (e.time_ns, 0, i as u32));
    }
    let mut merged = parts.pop().unwrap();
    merged.merge(parts.remove(0));
    merged.merge(parts.remove(0));
    let merged = merged.finish();
    assert_eq!(format!("{whole:?}"), format!("{merged:?}"));
    // 450 processes, 500 peers, 450 names and 420 files: at most 400 of each are kept, the
    // earliest, and the others' rows are counted.
    assert_eq!(whole.processes.len(), 400);
    assert_eq!(whole.destinations.len(), 400);
    assert!(whole.dropped > 0);
}

#[test]
fn a_process_shows_its_first_row_and_its_latest_exec_exe_and_exit() {
    let mut g = Gathered::new(0, 10);
    let key = Some(("7@1", "1@1"));
    let mut first = ev(1, 7, 1, "/bin/sh", key, What::Other);
    first.parent_key = None;
    let exec = ev(
        2,
        7,
        1,
        "/tmp/miner",
        key,
        What::Exec(vec!["miner".into(), "-o".into()]),
    );
    let exit = ev(
        3,
        7,
        1,
        "/tmp/miner",
        key,
        What::Exit {
            code: None,
            signal: Some(9),
        },
    );
    let parent = ev(0, 1, 0, "/sbin/init", Some(("1@1", "0@0")), What::Other);
    // Folded out of order, as row groups arrive.
    g.add(&parent, (0, 0, 0));
    g.add(&exit, (3, 0, 0));
    g.add(&exec, (2, 0, 0));
    g.add(&first, (1, 0, 0));
    let w = g.finish();
    let p = &w.processes["7@1"];
    assert_eq!(p.first_ns, 1);
    assert_eq!(p.comm, "miner");
    assert_eq!(p.exe.as_deref(), Some("/tmp/miner"));
    assert_eq!(p.argv.as_deref(), Some("miner -o"));
    assert_eq!(p.exit.as_deref(), Some("signal 9"));
    // The first row had no parent key; the next one's counts.
    assert_eq!(p.parent.as_deref(), Some("1@1"));
    assert_eq!(p.events, 3);
}
