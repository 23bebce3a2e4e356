//! Ranking tests: a fleet of similar workloads and one that behaves like the story in
//! DETECTIONS.md must come out on top, with the right features named.

use needle_common::schema::{Detail, Event, FilePath, PathSource};

use super::*;
use crate::features::tests::{Ev, dns, exec, net, table};

const NAMES: [&str; 12] = [
    "w00", "w01", "w02", "w03", "w04", "w05", "w06", "w07", "w08", "w09", "w10", "w11",
];

fn normal(id: &'static str, i: i64) -> Vec<Event> {
    let c = Ev::in_container(id);
    let mut ev = vec![
        c.at(0)
            .proc(100, 1, "nginx")
            .exe("/usr/sbin/nginx")
            .with(exec()),
    ];
    for s in 0..(20 + i) {
        ev.push(
            c.at(s)
                .with(Detail::Accept(Box::new(net("10.1.0.1", 50000, None)))),
        );
        ev.push(
            c.at(s)
                .with(Detail::Connect(Box::new(net("10.2.0.1", 5432, None)))),
        );
        ev.push(c.at(s).with(Detail::Syscall { nr: 0, ret: None }));
        ev.push(c.at(s).with(Detail::Syscall { nr: 1, ret: None }));
    }
    ev.push(
        c.at(1)
            .with(Detail::DnsQuery(Box::new(dns("db.internal", None)))),
    );
    ev
}

fn attack(id: &'static str) -> Vec<Event> {
    let mut ev = normal(id, 3);
    let c = Ev::in_container(id);
    let tmp = FilePath {
        path: "/tmp/.x/xmrig".into(),
        source: PathSource::Kernel,
    };
    ev.extend([
        c.at(30).proc(300, 100, "nginx").with(Detail::Fork),
        c.at(30).proc(300, 100, "sh").exe("/bin/sh").with(exec()),
        c.at(31).proc(300, 100, "sh").with(Detail::Open {
            file: tmp,
            flags: 0o101,
            mode: 0o755,
            ret: 3,
            count: None,
        }),
        c.at(32)
            .proc(301, 300, "xmrig")
            .exe("/tmp/.x/xmrig")
            .with(exec()),
        c.at(33)
            .proc(301, 300, "xmrig")
            .with(Detail::DnsQuery(Box::new(dns(
                "x9qz7k2v.pool.example",
                None,
            )))),
        c.at(34)
            .proc(301, 300, "xmrig")
            .with(Detail::Connect(Box::new(net("203.0.113.7", 3333, None)))),
    ]);
    ev
}

#[test]
fn the_attacked_workload_ranks_first_and_says_why() {
    let mut events = Vec::new();
    for (i, id) in NAMES.iter().enumerate() {
        events.extend(normal(id, i as i64 % 4));
    }
    events.extend(attack("evil"));
    let t = table(&events);
    let ranked = Ranker::baseline().rank(&t);
    assert_eq!(ranked.len(), NAMES.len() + 1);
    let top = &ranked[0];
    assert_eq!(t.rows[top.row].workload, "evil");
    assert_eq!(top.rank, 1);
    assert!(top.score >= ANOMALY_THRESHOLD, "score {}", top.score);
    assert!(
        top.score > 2.0 * ranked[1].score,
        "{} vs {}",
        top.score,
        ranked[1].score
    );
    assert_eq!(top.findings[0].kind, ANOMALOUS_BEHAVIOR);
    let named: Vec<&str> = top
        .contributions
        .iter()
        .map(|c| c.feature.as_str())
        .collect();
    assert!(named.contains(&"file.written_then_executed"), "{named:?}");
    let wte = top
        .contributions
        .iter()
        .find(|c| c.feature == "file.written_then_executed")
        .unwrap();
    assert_eq!((wte.value, wte.peer_median), (1.0, 0.0));
    // Normal workloads: no finding.
    assert!(
        ranked[1..].iter().all(|r| r.findings.is_empty()),
        "false finding on a normal workload"
    );
}

struct AlwaysCritical;
impl Signature for AlwaysCritical {
    fn name(&self) -> &str {
        "test"
    }
    fn evaluate(&self, w: &WorkloadFeatures, _: &FeatureTable) -> Vec<Finding> {
        if w.workload != "w05" {
            return Vec::new();
        }
        vec![Finding {
            kind: "Test:Runtime/Fixture".into(),
            severity: Severity::Critical,
            first_seen: String::new(),
            last_seen: String::new(),
            ..Default::default()
        }]
    }
}

#[test]
fn signature_findings_add_to_the_score_and_replace_the_anomaly_finding() {
    let mut events = Vec::new();
    for (i, id) in NAMES.iter().enumerate() {
        events.extend(normal(id, i as i64 % 4));
    }
    let t = table(&events);
    let ranked = Ranker::baseline()
        .with_signature(Box::new(AlwaysCritical))
        .rank(&t);
    assert_eq!(t.rows[ranked[0].row].workload, "w05");
    assert_eq!(ranked[0].findings.len(), 1);
    assert!(ranked[0].score >= Severity::Critical.weight());
}

#[test]
fn one_workload_or_identical_ones_score_zero() {
    let t = table(&normal("solo", 0));
    let r = Ranker::baseline().rank(&t);
    assert_eq!(r[0].score, 0.0);
    assert!(r[0].findings.is_empty());
}

#[test]
fn a_busy_workload_ranks_high_but_gets_no_finding() {
    let mut events = Vec::new();
    for (i, id) in NAMES.iter().enumerate() {
        events.extend(normal(id, i as i64 % 4));
    }
    // Forks hundreds of children, talks to many databases: unusual volume, nothing suspicious.
    let c = Ev::in_container("busy");
    for k in 0..300u32 {
        events.push(c.at(1).proc(1000 + k, 100, "nginx").with(Detail::Fork));
        events.push(c.at(2).with(Detail::Connect(Box::new(net(
            &format!("10.3.{}.{}", k / 200, k % 200),
            5432,
            None,
        )))));
    }
    let t = table(&events);
    let ranked = Ranker::baseline().rank(&t);
    assert_eq!(t.rows[ranked[0].row].workload, "busy");
    assert!(ranked[0].score >= ANOMALY_THRESHOLD, "{}", ranked[0].score);
    assert!(ranked[0].findings.is_empty(), "{:?}", ranked[0].findings);
}

/// Peers are the workload's replicas: a fleet of two applications that differ wildly from
/// each other (a busy API, quiet workers) leaves every ordinary replica near zero, and the one
/// worker that does what its twins never do ranks first and is named — with no trained model.
#[test]
fn a_replica_that_differs_from_its_twins_ranks_first_among_unlike_applications() {
    use std::sync::Arc;
    let mut events = Vec::new();
    let image = |events: &mut Vec<Event>, id: &str, img: &str| {
        for e in events.iter_mut() {
            if let Some(c) = &e.container
                && &*c.id == id
            {
                let mut c = (**c).clone();
                c.image = Some(img.into());
                e.container = Some(Arc::new(c));
            }
        }
    };
    for (i, id) in ["api-1", "api-2", "api-3", "api-4"].into_iter().enumerate() {
        let c = Ev::in_container(id);
        let mut ev = normal(id, i as i64);
        for k in 0..200u32 {
            ev.push(c.at(2).proc(2000 + k, 100, "api").with(Detail::Fork));
            ev.push(
                c.at(3)
                    .with(Detail::Accept(Box::new(net("10.1.0.9", 40000, None)))),
            );
        }
        image(&mut ev, id, "shop/api:2");
        events.extend(ev);
    }
    for (i, id) in ["worker-1", "worker-2", "worker-3", "odd-worker"]
        .into_iter()
        .enumerate()
    {
        let mut ev = if id == "odd-worker" {
            attack(id)
        } else {
            normal(id, i as i64)
        };
        image(&mut ev, id, "shop/worker:7");
        events.extend(ev);
    }
    let t = table(&events);
    let ranked = Ranker::baseline().rank(&t);
    let order: Vec<&str> = ranked
        .iter()
        .map(|r| t.rows[r.row].workload.as_str())
        .collect();
    assert_eq!(order[0], "odd-worker", "{order:?}");
    assert_eq!(
        ranked[0].peer_group.as_deref(),
        Some("image:shop/worker (3 peers)")
    );
    assert_eq!(ranked[0].findings[0].kind, ANOMALOUS_BEHAVIOR);
    for r in &ranked[1..] {
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert!(r.score < ranked[0].score / 2.0, "{order:?}: {}", r.score);
    }
}
