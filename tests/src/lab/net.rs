//! The lab's fake internet, all on one loopback address of 127.0.0.0/8 (plus one unix socket):
//! a DNS resolver that answers every A query with that address, HTTP (artifact repository,
//! package mirror, log collector, attacker payloads, C2 beacon endpoint, fake cloud metadata),
//! a Stratum mining pool, Tor OR/Dir ports, a reverse-shell controller, plain TCP back ends and
//! a Docker Engine API socket. Every loop is bounded: listeners poll a stop flag, connections
//! have read timeouts and a deadline. Std only.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one connection may stay open.
const CONN_DEADLINE: Duration = Duration::from_secs(90);
/// Read timeout of a connection (also how often it checks the stop flag).
const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest request head or body the HTTP server reads.
const MAX_HTTP: usize = 16 << 20;

/// What a TCP port speaks.
#[derive(Clone, Debug)]
pub enum Service {
    /// HTTP/1.0 with the given site.
    Http(Arc<HttpSite>),
    /// A Stratum (JSON-RPC over TCP) mining pool.
    Stratum,
    /// A Tor OR port: reads the client's handshake bytes, answers with a few bytes.
    TorOr,
    /// A reverse-shell controller: sends these commands one by one, reads what comes back.
    ReverseShell(Vec<String>),
    /// A back end (database, cache…): reads, answers with the banner, until the client closes.
    Sink(Vec<u8>),
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Http(_) => "http",
            Service::Stratum => "stratum",
            Service::TorOr => "tor-or",
            Service::ReverseShell(_) => "reverse-shell",
            Service::Sink(_) => "tcp",
        }
    }
}

/// Files served by GET, and the commands the C2 hands out on `/b/…`.
#[derive(Clone, Debug, Default)]
pub struct HttpSite {
    /// Path (without query) → body.
    pub files: HashMap<String, Vec<u8>>,
    /// Answers of the beacon endpoint (`GET /b/<anything>`), in turn.
    pub beacon_commands: Vec<String>,
    next_beacon: Arc<AtomicUsize>,
}

impl HttpSite {
    /// A site with these files and beacon answers.
    pub fn new(files: HashMap<String, Vec<u8>>, beacon_commands: Vec<String>) -> HttpSite {
        HttpSite {
            files,
            beacon_commands,
            next_beacon: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// (status, body) for a request.
    fn respond(&self, method: &str, target: &str) -> (u16, Vec<u8>) {
        let path = target.split('?').next().unwrap_or(target);
        if method == "POST" || method == "PUT" {
            return (200, b"{\"ok\":true}\n".to_vec());
        }
        if path.starts_with("/b/") && !self.beacon_commands.is_empty() {
            let i = self.next_beacon.fetch_add(1, Ordering::Relaxed);
            let cmd = &self.beacon_commands[i % self.beacon_commands.len()];
            return (200, format!("{cmd}\n").into_bytes());
        }
        match self.files.get(path) {
            Some(body) => (200, body.clone()),
            None => (404, b"not found\n".to_vec()),
        }
    }
}

/// What the fake internet saw, by service (connections, DNS queries, HTTP requests).
#[derive(Clone, Debug, Default)]
pub struct Activity(Arc<Mutex<BTreeMap<String, u64>>>);

impl Activity {
    /// Counts one `what`.
    pub fn note(&self, what: impl Into<String>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(what.into()).or_default() += 1;
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The running listeners; dropping this stops them (threads joined, socket file removed).
pub struct FakeInternet {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    unix_socket: Option<PathBuf>,
    /// What they saw.
    pub activity: Activity,
}

impl FakeInternet {
    /// Nothing listening yet.
    pub fn new() -> FakeInternet {
        FakeInternet {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            unix_socket: None,
            activity: Activity::default(),
        }
    }

    /// A DNS resolver on `addr` (UDP) answering every A query with `answer`.
    pub fn dns(&mut self, addr: SocketAddr, answer: Ipv4Addr) -> io::Result<()> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(READ_TIMEOUT))?;
        let (stop, activity) = (self.stop.clone(), self.activity.clone());
        self.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = dns_answer(&buf[..n], answer) {
                    activity.note("dns.query");
                    let _ = socket.send_to(&reply, peer);
                }
            }
        }));
        Ok(())
    }

    /// A TCP listener on `addr` speaking `service`.
    pub fn tcp(&mut self, addr: SocketAddr, service: Service) -> io::Result<()> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let (stop, activity) = (self.stop.clone(), self.activity.clone());
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        activity.note(format!("{}:{}", service.name(), addr.port()));
                        let (service, stop, activity) =
                            (service.clone(), stop.clone(), activity.clone());
                        std::thread::spawn(move || {
                            let _ = serve_conn(stream, &service, &stop, &activity);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
        Ok(())
    }

    /// A fake Docker Engine API on the unix socket `path` (created here, removed on drop).
    pub fn docker_socket(&mut self, path: &Path) -> io::Result<()> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        self.unix_socket = Some(path.to_owned());
        let (stop, activity) = (self.stop.clone(), self.activity.clone());
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        activity.note("docker.sock");
                        let activity = activity.clone();
                        std::thread::spawn(move || {
                            let _ = serve_docker(stream, &activity);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
        Ok(())
    }
}

impl Default for FakeInternet {
    fn default() -> Self {
        FakeInternet::new()
    }
}

impl Drop for FakeInternet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(path) = self.unix_socket.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn serve_conn(
    mut stream: TcpStream,
    service: &Service,
    stop: &AtomicBool,
    activity: &Activity,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let deadline = Instant::now() + CONN_DEADLINE;
    let alive = || !stop.load(Ordering::Relaxed) && Instant::now() < deadline;
    match service {
        Service::Http(site) => {
            let Some((method, target, body_len)) = read_http_head(&mut stream, &alive)? else {
                return Ok(());
            };
            discard(&mut stream, body_len, &alive)?;
            activity.note(format!("http.{method}"));
            let (status, body) = site.respond(&method, &target);
            let reason = if status == 200 { "OK" } else { "Not Found" };
            write!(
                stream,
                "HTTP/1.0 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        Service::Stratum => {
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut line = String::new();
            while alive() {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        activity.note("stratum.message");
                        stream.write_all(stratum_reply(&line).as_bytes())?;
                    }
                    Err(e) if is_timeout(&e) => continue,
                    Err(_) => break,
                }
            }
        }
        Service::TorOr => {
            let mut buf = [0u8; 4096];
            while alive() {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    // A TLS alert: "handshake failure" — a real OR port would start TLS here.
                    Ok(_) => stream.write_all(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])?,
                    Err(e) if is_timeout(&e) => continue,
                    Err(_) => break,
                }
            }
        }
        Service::ReverseShell(commands) => {
            let mut buf = [0u8; 8192];
            for cmd in commands {
                stream.write_all(cmd.as_bytes())?;
                stream.write_all(b"\n")?;
                // Let the command run and read what it prints (bounded).
                let until = Instant::now() + Duration::from_millis(1500);
                while alive() && Instant::now() < until {
                    match stream.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => activity.note(format!("reverse-shell.bytes+{}", n.min(1))),
                        Err(e) if is_timeout(&e) => continue,
                        Err(_) => return Ok(()),
                    }
                }
            }
            stream.write_all(b"exit\n")?;
        }
        Service::Sink(banner) => {
            let mut buf = [0u8; 4096];
            stream.write_all(banner)?;
            while alive() {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => stream.write_all(banner)?,
                    Err(e) if is_timeout(&e) => continue,
                    Err(_) => break,
                }
            }
        }
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads an HTTP request head: (method, target, content length). None when the client left.
fn read_http_head(
    stream: &mut impl Read,
    alive: &dyn Fn() -> bool,
) -> io::Result<Option<(String, String, usize)>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while alive()
        && head.len() < 64 * 1024
        && !head.ends_with(b"\r\n\r\n")
        && !head.ends_with(b"\n\n")
    {
        match stream.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => head.push(byte[0]),
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or("/").to_owned();
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0usize);
    Ok(Some((method, target, length.min(MAX_HTTP))))
}

fn discard(stream: &mut impl Read, mut n: usize, alive: &dyn Fn() -> bool) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    while n > 0 && alive() {
        match stream.read(&mut buf[..n.min(16 * 1024)]) {
            Ok(0) => break,
            Ok(k) => n -= k,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The pool's answer to one Stratum line (JSON-RPC; only the method name matters here).
fn stratum_reply(line: &str) -> String {
    let id = line
        .split("\"id\"")
        .nth(1)
        .and_then(|rest| rest.trim_start_matches([' ', ':']).split([',', '}']).next())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() < 20 && v.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("1");
    if line.contains("mining.subscribe") {
        format!(
            "{{\"id\":{id},\"result\":[[[\"mining.notify\",\"ae6812eb4cd7735a302a8a9dd95cf71f\"]],\"08000002\",4],\"error\":null}}\n"
        )
    } else if line.contains("login") || line.contains("mining.authorize") {
        format!(
            "{{\"id\":{id},\"result\":true,\"error\":null}}\n{{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"bf\",\"4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000\",\"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008\",\"072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000\",[],\"00000002\",\"1c2ac4af\",\"504e86b9\",false]}}\n"
        )
    } else {
        format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n")
    }
}

/// A fake Docker Engine API: every request gets a plausible JSON answer.
fn serve_docker(mut stream: UnixStream, activity: &Activity) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let alive = || Instant::now() < deadline;
    while let Some((method, target, body_len)) = read_http_head(&mut stream, &alive)? {
        discard(&mut stream, body_len, &alive)?;
        activity.note(format!("docker.{method}"));
        let body = if target.contains("/containers/json") {
            r#"[{"Id":"4f66ad9a0b2e","Image":"registry.local/shop/web:2.3","State":"running"}]"#
        } else if target.contains("/containers/create") {
            r#"{"Id":"e90e34656806","Warnings":[]}"#
        } else if target.contains("/version") {
            r#"{"Version":"24.0.7","ApiVersion":"1.43"}"#
        } else {
            "{}"
        };
        let status = if target.contains("/start") {
            "204 No Content"
        } else {
            "200 OK"
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: 1.43\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}

/// The answer to a DNS query: the question echoed, and for an A question one answer with
/// `addr` (TTL 30 s); other types get an empty NOERROR. None for anything that is not a
/// well-formed single-question query.
pub fn dns_answer(query: &[u8], addr: Ipv4Addr) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if qdcount != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    loop {
        let len = *query.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question_end = i + 4;
    if query.len() < question_end {
        return None;
    }
    let answers = u16::from(qtype == 1);
    let mut reply = Vec::with_capacity(question_end + 16);
    reply.extend_from_slice(&query[..2]);
    // QR, opcode 0, RD copied, RA; rcode 0.
    reply.push(0x80 | (query[2] & 0x01));
    reply.push(0x80);
    reply.extend_from_slice(&[0, 1]);
    reply.extend_from_slice(&answers.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..question_end]);
    if qtype == 1 {
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
        reply.extend_from_slice(&addr.octets());
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn a_query_gets_the_loopback_answer() {
        let q = query("pool.example.org", 1);
        let r = dns_answer(&q, Ipv4Addr::new(127, 1, 2, 3)).expect("answer");
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(&r[6..8], &[0, 1], "one answer");
        assert_eq!(&r[r.len() - 4..], &[127, 1, 2, 3]);
        assert_eq!(&r[12..q.len()], &q[12..]);
    }

    #[test]
    fn aaaa_query_gets_no_answer_and_garbage_gets_nothing() {
        let r = dns_answer(&query("x.test", 28), Ipv4Addr::LOCALHOST).expect("answer");
        assert_eq!(&r[6..8], &[0, 0]);
        assert!(dns_answer(&[1, 2, 3], Ipv4Addr::LOCALHOST).is_none());
        let mut truncated = query("abc.test", 1);
        truncated.truncate(15);
        assert!(dns_answer(&truncated, Ipv4Addr::LOCALHOST).is_none());
        let mut bad_label = query("abc.test", 1);
        bad_label[12] = 200;
        assert!(dns_answer(&bad_label, Ipv4Addr::LOCALHOST).is_none());
        let mut response = query("abc.test", 1);
        response[2] |= 0x80;
        assert!(dns_answer(&response, Ipv4Addr::LOCALHOST).is_none());
    }

    #[test]
    fn stratum_replies_follow_the_method() {
        assert!(
            stratum_reply(r#"{"id":7,"method":"mining.subscribe","params":[]}"#)
                .starts_with(r#"{"id":7,"result":[["#)
        );
        assert!(stratum_reply(r#"{"id": 2, "method":"login"}"#).contains("mining.notify"));
        assert!(stratum_reply("garbage").starts_with(r#"{"id":1,"result":true"#));
    }

    #[test]
    fn http_site_serves_files_beacons_and_accepts_posts() {
        let mut files = HashMap::new();
        files.insert("/a".to_owned(), b"A".to_vec());
        let site = HttpSite::new(files, vec!["id".into(), "sleep 5".into()]);
        assert_eq!(site.respond("GET", "/a?x=1"), (200, b"A".to_vec()));
        assert_eq!(site.respond("GET", "/missing").0, 404);
        assert_eq!(site.respond("POST", "/upload").0, 200);
        assert_eq!(site.respond("GET", "/b/1").1, b"id\n");
        assert_eq!(site.respond("GET", "/b/1").1, b"sleep 5\n");
    }
}
