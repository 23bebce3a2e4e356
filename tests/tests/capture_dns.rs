//! End to end: DNS queries and responses seen on the wire by the real `capture` (cgroup_skb),
//! over UDP (connected socket, as nslookup does, and sendto) and TCP, to a resolver of the
//! test's own on a loopback address; the rows carry the querying process.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use needle_common::schema::{Detail, Dns, Event};
use needle_tests::capture::{Capture, trace_files};
use needle_tests::{read_trace, require_privileges};

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
    let mut cap = Capture::start(&out, &["--duration", "60s"]);

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

    std::thread::sleep(Duration::from_millis(300));
    cap.signal(libc::SIGINT);
    let (code, summary) = cap.wait();
    assert_eq!(code, Some(0), "{summary}");
    let events: Vec<Event> = trace_files(&out)
        .iter()
        .flat_map(|f| read_trace(f).unwrap().events)
        .collect();
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
                q.net.protocol.as_str(),
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
