//! `analyze intel update` end to end: the real binary fetches every feed from a server on
//! 127.0.0.1 serving samples of each published format (nothing is fetched from anywhere
//! else), writes intel files that `analyze --intel DIR` then uses, skips and counts bad lines,
//! and keeps a failing feed's previous files. Also: the GuardDuty C&C test domain that ships
//! raises its finding.

mod analyze_support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use analyze_support::*;
use needle_common::schema::Detail;

type Routes = Arc<Mutex<HashMap<String, (u16, String)>>>;

/// A static HTTP server on 127.0.0.1: path → (status, body); stopped and joined on drop.
struct Server {
    base: String,
    routes: Routes,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Routes = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (routes.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => serve(s, &r),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Server {
            base,
            routes,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, path: &str, status: u16, body: &str) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_string(), (status, body.to_string()));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, routes: &Routes) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, body) = routes
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or((404, "not found".into()));
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

// Samples of each feed's published format, with bad lines among them.
const URLHAUS: &str = "################################################################\n\
# abuse.ch URLhaus Host file                                   #\n\
# Last updated: 2026-12-05 23:00:00 (UTC)                      #\n\
################################################################\n\
#\n\
127.0.0.1\tdropper.bad-host.test\n\
127.0.0.1\tcdn.evil-payload.test\n\
127.0.0.1\tthis is not a host line\n\
garbage\n";
const THREATFOX: &str = r#"################################################################
# ThreatFox IOCs: recent additions - CSV format                #
# Last updated: 2026-12-05 23:00:00 UTC                        #
#                                                              #
# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","fk_malware","malware_alias","malware_printable","last_seen_utc","confidence_level","reference","tags","anonymous","reporter"
"2026-12-05 22:59:01", "1700001", "beacon.c2-operator.test", "domain", "botnet_cc", "elf.mirai", "None", "Mirai", "", "100", "None", "elf", "0", "r"
"2026-12-05 22:59:02", "1700002", "198.51.100.23:8443", "ip:port", "botnet_cc", "win.cobalt_strike", "None", "Cobalt Strike", "", "75", "None", "cs", "0", "r"
"2026-12-05 22:59:03", "1700003", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "sha256_hash", "payload", "elf.xorddos", "None", "XorDDoS", "", "100", "None", "x", "0", "r"
"2026-12-05 22:59:04", "1700004", "http://198.51.100.24/x.sh", "url", "payload_delivery", "elf.mirai", "None", "Mirai", "", "100", "None", "x", "0", "r"
"2026-12-05 22:59:05", "1700005", "not a domain!", "domain", "botnet_cc", "elf.mirai", "None", "Mirai", "", "100", "None", "x", "0", "r"
"#;
const FEODO: &str = "################################################################\n\
# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (recommended)  #\n\
################################################################\n\
#\n\
192.0.2.44\n\
192.0.2.45\n\
192.0.2.999\n\
# END 2 entries\n";
const BAZAAR: &str = "################################################################\n\
# MalwareBazaar recent malware samples (SHA256 hashes)         #\n\
################################################################\n\
#\n\
abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd\n\
nothex\n";
const ONIONOO: &str = r#"{"version":"8.0","build_revision":"x","relays_published":"2026-12-05 22:00:00","relays":[
{"n":"relayone","f":"0000000000000000000000000000000000000001","a":["198.51.100.31","[2001:db8::31]"],"r":true},
{"n":"relaytwo","f":"0000000000000000000000000000000000000002","a":["198.51.100.32"],"r":true},
{"n":"broken","f":"0000000000000000000000000000000000000003","a":["999.1.1.1"],"r":true}
],"bridges_published":"2026-12-05 22:00:00","bridges":[]}"#;
const EXITS: &str = "198.51.100.41\n198.51.100.42\nbad line\n";

fn serve_all(server: &Server) -> Vec<String> {
    for (path, body) in [
        ("/urlhaus", URLHAUS),
        ("/threatfox", THREATFOX),
        ("/feodo", FEODO),
        ("/bazaar", BAZAAR),
        ("/onionoo", ONIONOO),
        ("/exits", EXITS),
    ] {
        server.set(path, 200, body);
    }
    [
        ("urlhaus", "/urlhaus"),
        ("threatfox", "/threatfox"),
        ("feodo", "/feodo"),
        ("malwarebazaar", "/bazaar"),
        ("tor-relays", "/onionoo"),
        ("tor-exits", "/exits"),
    ]
    .iter()
    .flat_map(|(name, path)| {
        [
            "--source".to_string(),
            format!("{name}={}{path}", server.base),
        ]
    })
    .collect()
}

fn update(dir: &Path, sources: &[String]) -> std::process::Output {
    let mut args = vec!["intel", "update", "--dir", p(dir), "--timeout", "10s"];
    args.extend(sources.iter().map(String::as_str));
    analyze(&args)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn intel_update_parses_every_feed_format_and_analyze_uses_the_result() {
    let server = Server::start();
    let sources = serve_all(&server);
    let dir = tempfile::tempdir().unwrap();
    let intel = dir.path().join("intel");
    let o = update(&intel, &sources);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for (file, entries, skipped) in [
        ("urlhaus--malicious_domains.txt", 2, 2),
        ("threatfox--c2_domains.txt", 1, 1),
        ("threatfox--c2_addresses.txt", 1, 1),
        ("threatfox--bad_hashes.txt", 1, 1),
        ("feodo--c2_addresses.txt", 2, 1),
        ("malwarebazaar--bad_hashes.txt", 1, 1),
        ("tor-relays--tor_relay_addresses.txt", 3, 1),
        ("tor-exits--tor_relay_addresses.txt", 2, 1),
    ] {
        let text = read(&intel.join(file));
        assert!(
            text.contains(&format!(
                "# entries: {entries}; feed lines skipped: {skipped};"
            )),
            "{file}:\n{text}"
        );
        assert!(
            text.contains("# source: ") && text.contains(&server.base),
            "{file}:\n{text}"
        );
        assert!(
            text.contains("# licence: ") && text.contains("# version: 20"),
            "{file}:\n{text}"
        );
        assert!(
            err.contains(&format!(
                "{entries} entries → {}",
                intel.join(file).display()
            )),
            "{err}"
        );
    }
    assert!(read(&intel.join("threatfox--c2_addresses.txt")).contains("\n198.51.100.23\n"));
    assert!(read(&intel.join("tor-relays--tor_relay_addresses.txt")).contains("\n2001:db8::31\n"));

    // The files are what `--intel DIR` reads: a workload that meets the feeds' entries is named.
    let mut w = Workload::normal(&cid(999), "web-evil", 40);
    w.event(
        30,
        300,
        100,
        "curl",
        "/usr/bin/curl",
        Detail::DnsQuery(Box::new(dns("x.dropper.bad-host.test"))),
    )
    .event(
        31,
        300,
        100,
        "curl",
        "/usr/bin/curl",
        Detail::Connect(Box::new(net("192.0.2.45", 443))),
    )
    .event(
        32,
        300,
        100,
        "curl",
        "/usr/bin/curl",
        Detail::Connect(Box::new(net("198.51.100.32", 443))),
    );
    let mut workloads = fleet(6, false);
    workloads.push(w);
    write_trace(&dir.path().join("t.parquet"), &workloads, |_| {});
    let types = |intel: Option<&Path>| -> Vec<String> {
        let trace = dir.path().join("t.parquet");
        let mut args = vec![p(&trace)];
        if let Some(i) = intel {
            args.extend(["--intel", p(i)]);
        }
        let doc = analyze_json(&args);
        doc["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["workload"] == cid(999))
            .flat_map(|x| x["findings"].as_array().unwrap().clone())
            .map(|f| f["type"].as_str().unwrap().to_string())
            .collect()
    };
    let before = types(None);
    let after = types(Some(&intel));
    for t in [
        "Impact:Runtime/MaliciousDomainRequest.Reputation",
        "Backdoor:Runtime/C&CActivity.B",
        "UnauthorizedAccess:Runtime/TorClient",
    ] {
        assert!(
            !before.contains(&t.to_string()),
            "{t} without the feeds: {before:?}"
        );
        assert!(after.contains(&t.to_string()), "{t} missing: {after:?}");
    }
}

#[test]
fn a_failing_feed_keeps_its_previous_files_and_fails_the_update() {
    let server = Server::start();
    let sources = serve_all(&server);
    let dir = tempfile::tempdir().unwrap();
    let o = update(dir.path(), &sources);
    assert!(o.status.success(), "{}", stderr(&o));
    let threatfox = dir.path().join("threatfox--c2_domains.txt");
    let feodo = dir.path().join("feodo--c2_addresses.txt");
    let (tf_before, feodo_before) = (read(&threatfox), read(&feodo));
    // ThreatFox answers 503, URLhaus an HTML error page with status 200, Feodo has a new entry.
    server.set("/threatfox", 503, "down");
    server.set("/urlhaus", 200, "<html><body>rate limited</body></html>\n");
    server.set("/feodo", 200, "192.0.2.46\n");
    let urlhaus = dir.path().join("urlhaus--malicious_domains.txt");
    let urlhaus_before = read(&urlhaus);
    let o = update(dir.path(), &sources);
    assert!(!o.status.success());
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("2 of 6 feeds failed (urlhaus, threatfox)")
            && last.contains("previous files are kept"),
        "{err}"
    );
    assert!(
        err.contains("threatfox: FAILED: ") && err.contains("HTTP 503"),
        "{err}"
    );
    assert!(
        err.contains("urlhaus: FAILED: ") && err.contains("no entries"),
        "{err}"
    );
    assert_eq!(read(&threatfox), tf_before);
    assert_eq!(read(&urlhaus), urlhaus_before);
    let feodo_after = read(&feodo);
    assert_ne!(feodo_after, feodo_before);
    assert!(feodo_after.contains("\n192.0.2.46\n") && !feodo_after.contains("192.0.2.44"));
    // No temporary file is left behind.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let name = e.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with('.'), "{name:?}");
    }
    // A bad --source is one line naming it, before anything is fetched.
    let o = analyze(&[
        "intel",
        "update",
        "--dir",
        p(dir.path()),
        "--source",
        "nosuch=http://127.0.0.1:9/",
    ]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("--source nosuch"), "{}", stderr(&o));
}

#[test]
fn the_guardduty_test_domain_raises_the_c2_finding_as_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Workload::normal(&cid(999), "tester", 40);
    w.event(
        30,
        300,
        100,
        "dig",
        "/usr/bin/dig",
        Detail::DnsQuery(Box::new(dns("GuardDutyC2ActivityB.com"))),
    );
    let mut workloads = fleet(5, false);
    workloads.push(w);
    write_trace(&dir.path().join("t.parquet"), &workloads, |_| {});
    let doc = analyze_json(&[p(dir.path())]);
    let top = &doc["workloads"][0];
    assert_eq!(top["workload"], cid(999));
    assert!(
        top["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["type"] == "Backdoor:Runtime/C&CActivity.B!DNS"),
        "{top}"
    );
}
