use super::evidence::{Sighting, What, WorkloadEvents, fold, link_parents};
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
    let mut w = WorkloadEvents::default();
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
        fold(&mut w, &e);
    }
    link_parents(&mut w);
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
    let mut w = WorkloadEvents::default();
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
        fold(&mut w, &e);
    }
    let d = &w.destinations[&("198.51.100.4".to_string(), 443, "tcp".to_string())];
    assert_eq!(d.count, 6);
    assert_eq!(w.dns["example.org"].queries, 4);
    assert_eq!(w.processes["pid:10"].events, 10);
    let totals = w.series.totals();
    assert_eq!(totals, [("connect", 6), ("dns_query", 4)]);
}
