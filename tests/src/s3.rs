//! A local S3 server for the object-storage tests: moto's server mode (`python -m moto.server`,
//! installed into the project venv by scripts/setup.sh) on 127.0.0.1 and a free port, with one
//! bucket. It is stopped when the [`S3Server`] is dropped, also when the test panics.
//!
//! The tests talk to it with plain HTTP (moto does not check signatures): create the
//! bucket, upload a tree, read an object back. `analyze` and `capture` talk to it through
//! `object_store` like to any S3-compatible store.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Pythons that may have moto: NEEDLE_PYTHON, the project venv, then `python3`.
fn pythons() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("NEEDLE_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python"));
    v.push(PathBuf::from("python3"));
    v
}

/// The first Python that imports moto's server (with its flask dependencies).
fn moto_python() -> Result<PathBuf, String> {
    for py in pythons() {
        let ok = Command::new(&py)
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(py);
        }
    }
    Err("no Python with moto[server] (scripts/setup.sh installs it into target/py)".into())
}

/// Why the local S3 server cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    moto_python().err()
}

/// A running moto server with one bucket.
pub struct S3Server {
    child: Option<Child>,
    python: PathBuf,
    port: u16,
    /// The bucket created at start.
    pub bucket: String,
}

/// An `Authorization` header moto takes as a signed request.
const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=needle-test/20261206/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n";

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl S3Server {
    /// Starts moto on a free port of 127.0.0.1 and creates `bucket` (panics if it cannot:
    /// call [`missing`] first).
    pub fn start(bucket: &str) -> S3Server {
        let python = moto_python().expect("moto");
        let mut s = S3Server {
            child: None,
            python,
            port: free_port(),
            bucket: bucket.to_string(),
        };
        s.resume();
        let (status, body) = s.request("PUT", &format!("/{bucket}"), &[]);
        assert!(status == 200, "create bucket {bucket}: {status} {body:?}");
        s
    }

    /// Starts the server again on the same port (after [`S3Server::stop`]); moto keeps no
    /// state across restarts, so the bucket is created again (empty).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("moto exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "moto not listening within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.request("HEAD", &format!("/{}", self.bucket), &[]).0 != 200 {
            let (status, body) = self.request("PUT", &format!("/{}", self.bucket), &[]);
            assert!(status == 200, "create bucket: {status} {body:?}");
        }
    }

    /// Stops the server (the port refuses connections until [`S3Server::resume`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `http://127.0.0.1:PORT`, for `--s3-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://BUCKET/KEY`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// One HTTP/1.0 request (signed for show: moto checks that a request is signed, not the
    /// signature, and refuses anonymous reads of private objects); returns the status and body.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n{AUTH}\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).expect("send");
        s.write_all(body).expect("send body");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read response");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("HTTP response head");
        let status = String::from_utf8_lossy(&raw[..split])
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        (status, raw[split + 4..].to_vec())
    }

    /// Stores `bytes` under `key`.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let (status, body) = self.request("PUT", &format!("/{}/{key}", self.bucket), bytes);
        assert!(
            status == 200,
            "put {key}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// The object `key`, if the store has it.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (status, body) = self.request("GET", &format!("/{}/{key}", self.bucket), &[]);
        (status == 200).then_some(body)
    }

    /// The keys under `prefix` (ListObjectsV2, first 1000).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self.request(
            "GET",
            &format!("/{}?list-type=2&prefix={prefix}", self.bucket),
            &[],
        );
        assert!(status == 200, "list: {status}");
        let text = String::from_utf8_lossy(&body);
        let mut keys: Vec<String> = text
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    /// Uploads every file under `dir` with its relative path under `prefix`.
    pub fn upload_dir(&self, dir: &Path, prefix: &str) {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).expect("read dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(dir, &mut files);
        for f in files {
            let rel = f.strip_prefix(dir).expect("under dir").to_string_lossy();
            self.put(
                &format!("{prefix}{rel}"),
                &std::fs::read(&f).expect("read file"),
            );
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP gate in front of the server: forwards 127.0.0.1:PORT to it while open; closed, it
/// cuts every connection and refuses new ones (accepts and drops them), so a client sees an
/// unreachable store while the server keeps its objects.
pub struct Gate {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Gate {
    /// A gate (open) in front of `server`.
    pub fn new(server: &S3Server) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind gate");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let upstream = server.port;
        let gate = Gate {
            port,
            open: Default::default(),
            done: Default::default(),
            conns: Default::default(),
        };
        gate.open.store(true, Ordering::SeqCst);
        let (open, done, conns) = (gate.open.clone(), gate.done.clone(), gate.conns.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if !open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                if let Ok(mut c) = conns.lock() {
                    c.extend([client.try_clone(), up.try_clone()].into_iter().flatten());
                }
                for (mut from, mut to) in [
                    (client.try_clone(), up.try_clone()),
                    (up.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        gate
    }

    /// `http://127.0.0.1:PORT` of the gate.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Opens or closes the gate (closing cuts the connections through it).
    pub fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
        if !open && let Ok(mut c) = self.conns.lock() {
            for s in c.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.set_open(false);
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
