//! A local S3 server for the object-storage tests: moto's server mode (`python -m moto.server`,
//! installed into the project venv by scripts/setup.sh) on 127.0.0.1 and a free port, with one
//! bucket. It is stopped when the [`S3Server`] is dropped, also when the test panics.
//!
//! The tests talk to it with plain HTTP (moto does not check signatures by default): create
//! the bucket, upload a tree, read an object back. `analyze` and `capture` talk to it through
//! `object_store` like to any S3-compatible store.
//!
//! [`S3Server::start_enforcing`] starts it as S3 behaves: after a set-up it makes unsigned
//! (bucket, objects, IAM users with inline policies), every request must carry a valid
//! signature of a known key, and the key's user must be allowed the action. The tests then
//! list it through boto3 (moto's own dependency) with a user's keys.

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
    /// Checks signatures and policies ([`S3Server::start_enforcing`]): cannot be restarted.
    enforcing: bool,
    child: Option<Child>,
    python: PathBuf,
    port: u16,
    /// The bucket created at start.
    pub bucket: String,
}

/// The keys of a user of an enforcing server.
#[derive(Clone, Debug)]
pub struct Keys {
    /// `AWS_ACCESS_KEY_ID`.
    pub id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret: String,
}

/// `text` as one form value (RFC 3986 unreserved characters kept).
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

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
            enforcing: false,
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
        assert!(
            !self.enforcing,
            "an enforcing server loses its users on a restart"
        );
        self.spawn(None);
        if self.request("HEAD", &format!("/{}", self.bucket), &[]).0 != 200 {
            let (status, body) = self.request("PUT", &format!("/{}", self.bucket), &[]);
            assert!(status == 200, "create bucket: {status} {body:?}");
        }
    }

    /// Starts moto on this server's port and waits until it listens; with `free_actions`,
    /// it checks signatures and policies after that many requests.
    fn spawn(&mut self, free_actions: Option<usize>) {
        assert!(self.child.is_none(), "already running");
        let mut c = Command::new(&self.python);
        c.args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = free_actions {
            c.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        self.child = Some(c.spawn().expect("start moto"));
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
    }

    /// Starts moto as S3 checks requests. Unsigned, it creates `bucket`, stores `files`
    /// (key, bytes) and creates one IAM user per `(name, actions)` with an inline policy
    /// allowing those S3 actions on every resource; from then on every request needs a valid
    /// signature by a user allowed the action. Returns the server and each user's keys.
    pub fn start_enforcing(
        bucket: &str,
        files: &[(String, Vec<u8>)],
        users: &[(&str, &[&str])],
    ) -> (S3Server, Vec<Keys>) {
        let mut s = S3Server {
            enforcing: true,
            child: None,
            python: moto_python().expect("moto"),
            port: free_port(),
            bucket: bucket.to_string(),
        };
        // One request per bucket and file, three per user: moto counts the unsigned ones.
        s.spawn(Some(1 + files.len() + 3 * users.len()));
        let (status, body) = s.request("PUT", &format!("/{bucket}"), &[]);
        assert!(status == 200, "create bucket {bucket}: {status} {body:?}");
        for (key, bytes) in files {
            s.put(key, bytes);
        }
        let keys = users
            .iter()
            .map(|(name, actions)| s.create_user(name, actions))
            .collect();
        let (status, _) = s.request("GET", &format!("/{bucket}?list-type=2"), &[]);
        assert!(status == 403, "moto does not check signatures: {status}");
        (s, keys)
    }

    /// An IAM user allowed `actions` on every resource, and its new access key.
    fn create_user(&self, name: &str, actions: &[&str]) -> Keys {
        let quoted: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{}],"Resource":"*"}}]}}"#,
            quoted.join(",")
        );
        let form = |action: &str, extra: &str| {
            format!("Action={action}&UserName={name}&Version=2010-05-08{extra}")
        };
        let call = |body: String| {
            let (status, reply) = self.request_to("iam", "POST", "/", body.as_bytes());
            let reply = String::from_utf8_lossy(&reply).into_owned();
            assert!(status == 200, "IAM: {status} {reply}");
            reply
        };
        call(form("CreateUser", ""));
        let reply = call(form("CreateAccessKey", ""));
        let field = |tag: &str| {
            reply
                .split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|r| r.split(&format!("</{tag}>")).next())
                .unwrap_or_else(|| panic!("no {tag} in {reply}"))
                .to_string()
        };
        let keys = Keys {
            id: field("AccessKeyId"),
            secret: field("SecretAccessKey"),
        };
        call(form(
            "PutUserPolicy",
            &format!(
                "&PolicyName=needle-test&PolicyDocument={}",
                percent(&policy)
            ),
        ));
        keys
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
        self.request_to("s3", method, path, body)
    }

    /// [`S3Server::request`] to one of moto's services (`s3`, `iam`: moto routes by the
    /// signature's scope); a body to IAM is a form.
    fn request_to(&self, service: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let form = if service == "iam" {
            "Content-Type: application/x-www-form-urlencoded\r\n"
        } else {
            ""
        };
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n{form}Authorization: AWS4-HMAC-SHA256 Credential=needle-test/20261206/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n",
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
        for (key, bytes) in files_under(dir, prefix) {
            self.put(&key, &bytes);
        }
    }

    /// The keys under `prefix`, listed by boto3 signing as `user` (an enforcing server; moto
    /// refuses a signed listing whose prefix needs escaping, such as one with a `/`).
    pub fn keys_as(&self, user: &Keys, prefix: &str) -> Vec<String> {
        let out = self.boto3(
            user,
            "import sys\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):\n    for o in page.get('Contents', []):\n        print(o['Key'])",
            &[&self.bucket, prefix],
        );
        let mut keys: Vec<String> = String::from_utf8(out)
            .expect("UTF-8 keys")
            .lines()
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    /// Runs `script` with `s3`, a boto3 client of this server signing as `user`; its stdout.
    fn boto3(&self, user: &Keys, script: &str, args: &[&str]) -> Vec<u8> {
        let prelude = "import boto3, os\ns3 = boto3.client('s3', endpoint_url=os.environ['NEEDLE_S3'], region_name='us-east-1')\n";
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .args(args)
            .env("NEEDLE_S3", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", &user.id)
            .env("AWS_SECRET_ACCESS_KEY", &user.secret)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .expect("run boto3");
        assert!(
            out.status.success(),
            "boto3 as {}: {}",
            user.id,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// Every file under `dir` as (`prefix` + its path relative to `dir`, its bytes).
pub fn files_under(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
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
    files.sort();
    files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(dir).expect("under dir").to_string_lossy();
            (
                format!("{prefix}{rel}"),
                std::fs::read(f).expect("read file"),
            )
        })
        .collect()
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
