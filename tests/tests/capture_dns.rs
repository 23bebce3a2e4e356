//! End to end: DNS queries and responses seen on the wire by the real `capture` (cgroup_skb),
//! over UDP (connected socket, as nslookup does, and sendto) and TCP, to a resolver of the
//! test's own on a loopback address; the rows carry the querying process.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use needle_common::schema::{Detail, Dns, Event};
use needle_tests::capture::{Capture, stop_and_read, write_events};
use needle_tests::{binary, require_privileges};

/// A query for `name` (type A) with transaction id `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The answer to `q`: QR set, one A record 127.0.0.9 through a compression pointer.
fn answer(q: &[u8]) -> Vec<u8> {
    let mut a = q.to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a[7] = 1;
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9]);
    a
}

fn dns_rows(events: &[Event], tgid: u32) -> Vec<(bool, Dns)> {
    events
        .iter()
        .filter(|e| e.process.tgid == tgid)
        .filter_map(|e| match &e.detail {
            Detail::DnsQuery(d) => Some((false, (**d).clone())),
            Detail::DnsResponse(d) => Some((true, (**d).clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn dns_queries_and_responses_are_recorded_with_their_process() {
    if !require_privileges("capture_dns::queries_and_responses") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "60s"]);

    // A resolver of our own on a loopback address of its own, port 53 (we are root).
    let ip = Ipv4Addr::new(127, 0, 53, 1 + (std::process::id() % 200) as u8);
    let server = UdpSocket::bind((ip, 53)).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let serve_one = |server: &UdpSocket| {
        let mut buf = [0u8; 512];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(&answer(&buf[..n]), from).unwrap();
    };

    // nslookup style: connect, send, recv.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.connect((ip, 53)).unwrap();
    client
        .send(&query(0x4e01, "pool.needle-test.example"))
        .unwrap();
    serve_one(&server);
    let mut buf = [0u8; 512];
    assert!(client.recv(&mut buf).unwrap() > 12);

    // Unconnected: sendto.
    let client2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    client2
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client2
        .send_to(&query(0x4e02, "c2.needle-test.example"), (ip, 53))
        .unwrap();
    serve_one(&server);
    assert!(client2.recv(&mut buf).unwrap() > 12);

    // TCP: two-byte length prefix.
    let listener = TcpListener::bind((ip, 53)).unwrap();
    let server_thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut q).unwrap();
        let a = answer(&q);
        let mut msg = (a.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(&a);
        s.write_all(&msg).unwrap();
    });
    let mut tcp = TcpStream::connect((ip, 53)).unwrap();
    let q = query(0x4e03, "tcp.needle-test.example");
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    tcp.write_all(&msg).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = [0u8; 2];
    tcp.read_exact(&mut reply).unwrap();
    let mut rest = vec![0u8; u16::from_be_bytes(reply) as usize];
    tcp.read_exact(&mut rest).unwrap();
    server_thread.join().unwrap();

    let (rec, summary) = stop_and_read(vec![(cap, &out)]).remove(0);
    let events = rec.events;
    let rows = dns_rows(&events, std::process::id());
    let find = |id: u16, response: bool| {
        rows.iter()
            .find(|(r, d)| *r == response && d.id == id)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| {
                panic!("dns id {id:#x} response={response} not recorded; rows: {rows:?}\n{summary}")
            })
    };
    let ip_s = ip.to_string();
    for (id, name, protocol) in [
        (0x4e01, "pool.needle-test.example", "udp"),
        (0x4e02, "c2.needle-test.example", "udp"),
        (0x4e03, "tcp.needle-test.example", "tcp"),
    ] {
        let q = find(id, false);
        assert_eq!(
            (q.name.as_str(), q.qtype, q.rcode),
            (name, 1, None),
            "query {id:#x}"
        );
        assert_eq!(
            (
                q.net.protocol.as_ref(),
                q.net.dst_addr.as_deref(),
                q.net.dst_port
            ),
            (protocol, Some(ip_s.as_str()), Some(53))
        );
        let r = find(id, true);
        assert_eq!(
            (r.name.as_str(), r.rcode, r.answers.clone()),
            (name, Some(0), vec!["127.0.0.9".to_string()]),
            "response {id:#x}"
        );
        assert_eq!(
            (r.net.src_addr.as_deref(), r.net.src_port),
            (Some(ip_s.as_str()), Some(53))
        );
    }
}

/// A resolver on `ip`:53 that answers every query until `stop`, counting the queries it got
/// and the answers it sent.
fn responder(ip: Ipv4Addr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    let server = UdpSocket::bind((ip, 53)).unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let (mut got, mut sent) = (0u64, 0u64);
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = server.recv_from(&mut buf) else {
                continue;
            };
            got += 1;
            if server.send_to(&answer(&buf[..n]), from).is_ok() {
                sent += 1;
            }
        }
        (got, sent)
    })
}

/// Resolves `name` `times` times over one connected socket (nslookup style), ids from `id`.
fn resolve(ip: Ipv4Addr, name: &str, id: u16, times: u16) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.connect((ip, 53)).unwrap();
    let mut buf = [0u8; 512];
    for i in 0..times {
        client.send(&query(id.wrapping_add(i), name)).unwrap();
        assert!(client.recv(&mut buf).unwrap() > 12, "no answer for {name}");
    }
}

fn read_csv(path: &Path) -> BTreeMap<String, BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let row = header
                .iter()
                .zip(&cells)
                .skip(1)
                .filter_map(|(h, c)| Some((h.to_string(), c.parse().ok()?)))
                .collect();
            (cells[0].to_string(), row)
        })
        .collect()
}

/// Issue 25: one name resolved 1 000 times and 200 distinct names. Repeats are collapsed in the
/// kernel into counted rows; every distinct name keeps a row of its own, and the counts add up
/// to every query and answer the responder saw — whether the window closed at the thread's exit
/// (the repeating thread ends) or was left open when capture stopped (the distinct names'
/// thread lives on). The native features and the DuckDB SQL agree on the rows.
#[test]
fn repeated_dns_is_collapsed_and_every_name_is_kept() {
    if !require_privileges("capture_dns::repeated_dns_is_collapsed") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "120s"]);

    let ip = Ipv4Addr::new(127, 0, 54, 1 + (std::process::id() % 200) as u8);
    let stop = Arc::new(AtomicBool::new(false));
    let server = responder(ip, stop.clone());
    let repeated = "same.needle-test.example";
    std::thread::spawn(move || resolve(ip, repeated, 0x1000, 1000))
        .join()
        .unwrap();
    let distinct: Vec<String> = (0..200)
        .map(|i| format!("n{i}.distinct.needle-test.example"))
        .collect();
    for (i, name) in distinct.iter().enumerate() {
        resolve(ip, name, 0x8000 + i as u16, 1);
    }
    // A few more repeats from this thread, left in an open window at the end.
    resolve(ip, repeated, 0x9000, 20);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (got, sent) = server.join().unwrap();
    assert_eq!(
        (got, sent),
        (1220, 1220),
        "the responder answered every query"
    );

    let (rec, summary) = stop_and_read(vec![(cap, out.as_path())]).remove(0);
    let me = std::process::id();
    let ip_s = ip.to_string();
    // This process's messages to and from this test's resolver (others capture on the host).
    let ours: Vec<&Event> = rec
        .events
        .iter()
        .filter(|e| e.process.tgid == me)
        .filter(|e| match &e.detail {
            Detail::DnsQuery(d) => d.net.dst_addr.as_deref() == Some(ip_s.as_str()),
            Detail::DnsResponse(d) => d.net.src_addr.as_deref() == Some(ip_s.as_str()),
            _ => false,
        })
        .collect();
    let (mut queries, mut answers) = (0u64, 0u64);
    let (mut q_names, mut a_names) = (BTreeSet::new(), BTreeSet::new());
    let mut repeated_rows = 0;
    for e in &ours {
        let (d, response) = match &e.detail {
            Detail::DnsQuery(d) => (d, false),
            Detail::DnsResponse(d) => (d, true),
            _ => unreachable!(),
        };
        let n = d.net.count.unwrap_or(1);
        if response {
            answers += n;
            a_names.insert(d.name.clone());
            assert_eq!(d.rcode, Some(0));
        } else {
            queries += n;
            q_names.insert(d.name.clone());
        }
        if d.name == repeated {
            repeated_rows += 1;
            if d.net.count.is_some() {
                // A count row has no client port: the repeats came from other ones.
                let client = if response {
                    d.net.dst_port
                } else {
                    d.net.src_port
                };
                assert_eq!(client, None, "{d:?}");
            }
        }
    }
    let context = format!("{} rows\n{summary}", ours.len());
    assert_eq!(q_names.len(), 201, "every distinct name queried: {context}");
    assert_eq!(
        a_names.len(),
        201,
        "every distinct name answered: {context}"
    );
    assert!(q_names.contains(repeated) && distinct.iter().all(|n| q_names.contains(n)));
    assert_eq!(queries, got, "query counts add up: {context}");
    assert_eq!(answers, sent, "answer counts add up: {context}");
    // 1 020 queries and as many answers of one name: a row and a count per collapse window
    // (1 s), not a row each.
    assert!(
        repeated_rows <= 40,
        "{repeated_rows} rows for {repeated}: {context}"
    );
    assert!(rec.counter("dns_collapsed") >= 1900, "{:?}", rec.counters);

    features_agree(tmp.path(), &ours);
}

/// `analyze features` and the DuckDB SQL (bench/duckdb_features.py) on the rows given.
fn features_agree(dir: &Path, rows: &[&Event]) {
    let Some(py) = needle_tests::duckdb::python() else {
        eprintln!(
            "SKIP repeated_dns_is_collapsed (features): no Python with duckdb (scripts/setup.sh, or set NEEDLE_PYTHON)"
        );
        return;
    };
    let f = dir.join("ours.parquet");
    write_events(&f, rows).unwrap();
    let native = dir.join("native.csv");
    let o = Command::new(binary("analyze"))
        .args(["features"])
        .arg(&f)
        .arg("--out")
        .arg(&native)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sql = dir.join("sql.csv");
    needle_tests::duckdb::sql_features(&py, &f, &sql);
    let (n, s) = (read_csv(&native), read_csv(&sql));
    // One workload (this process; the two name a host workload differently — the SQL does not
    // know capture's cgroup naming — so the rows are paired, not the keys).
    assert_eq!((n.len(), s.len()), (1, 1), "{n:?}\n{s:?}");
    let (nrow, srow) = (&n.values().next().unwrap(), &s.values().next().unwrap());
    for (col, b) in srow.iter() {
        let a = nrow[col];
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(1.0),
            "{col}: native {a} sql {b}"
        );
    }
    assert!(srow.len() >= 90, "only {} features compared", srow.len());
    for (col, want) in [
        ("dns.queries", 1220.0),
        ("dns.distinct_names", 201.0),
        ("dns.nxdomain_ratio", 0.0),
    ] {
        assert_eq!((nrow[col], srow[col]), (want, want), "{col}");
    }
}
