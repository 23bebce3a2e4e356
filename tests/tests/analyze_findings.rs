//! Findings for a SIEM, end to end with the real `analyze` binary: OCSF Detection Findings
//! (`--format ocsf`, `--findings-out`), checked against the published OCSF schema (the
//! `pydantic-ocsf` package in the project's venv) and a golden file of the demo; Falco alerts
//! posted to a webhook (`--webhook`) received by a listener on 127.0.0.1 that applies
//! Falcosidekick's acceptance checks.

mod analyze_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use analyze_support::*;
use needle_common::schema::Detail;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/demo")
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ocsf/demo.ndjson")
}

/// A Python that has the OCSF models, or why there is none (a failure in CI).
fn python_with_ocsf(test: &str) -> Option<String> {
    let py = std::env::var("NEEDLE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import ocsf.v1_5_0.events"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    let why = format!(
        "{test}: no Python with pydantic-ocsf (scripts/setup.sh installs it into target/py; set NEEDLE_PYTHON)"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("SKIP {why}");
    if let Some(log) = std::env::var_os("NEEDLE_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{why}");
        }
    }
    None
}

/// Validates an NDJSON file with tests/py/ocsf_validate.py; returns its report.
fn validate(py: &str, file: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/ocsf_validate.py");
    let o = Command::new(py).arg(script).arg(file).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{} is not valid OCSF: {}{out}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// True when some string inside `v` contains `needle`.
fn holds(v: &serde_json::Value, needle: &str) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains(needle),
        serde_json::Value::Array(a) => a.iter().any(|x| holds(x, needle)),
        serde_json::Value::Object(o) => o.values().any(|x| holds(x, needle)),
        _ => false,
    }
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

#[test]
fn ocsf_of_the_demo_matches_its_golden_file_is_stable_and_valid() {
    let o = analyze(&[p(&demo()), "--format", "ocsf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    if std::env::var_os("NEEDLE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden().parent().unwrap()).unwrap();
        std::fs::write(golden(), &out).unwrap();
    }
    let want =
        std::fs::read_to_string(golden()).expect("golden file (NEEDLE_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        out,
        want,
        "OCSF of the demo differs from {} (NEEDLE_UPDATE_GOLDEN=1 rewrites it)",
        golden().display()
    );
    // The same evidence, the same ids: a second run gives the same bytes.
    let again = analyze(&[p(&demo()), "--format", "ocsf"]);
    assert_eq!(stdout(&again), out);
    let records = lines(&out);
    assert!(records.len() >= 2, "{out}");
    let miner = records
        .iter()
        .find(|r| r["finding_info"]["title"] == "Impact:Runtime/CryptoMinerExecuted")
        .expect("the demo's miner");
    assert_eq!(miner["class_uid"], 2004);
    assert_eq!(miner["metadata"]["version"], "1.5.0");
    assert_eq!(miner["metadata"]["product"]["name"], "needle");
    let container = &miner["resources"][0];
    assert_eq!(container["type"], "container");
    assert_eq!(container["name"], "web-3");
    assert!(
        miner["evidences"][0]["process"]["file"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/tmp/")
    );
    assert!(
        !miner["anomaly_analyses"][0]["anomalies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let uids: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| r["finding_info"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), records.len(), "uids are unique");
    if let Some(py) =
        python_with_ocsf("ocsf_of_the_demo_matches_its_golden_file_is_stable_and_valid")
    {
        let report = validate(&py, &golden());
        assert!(
            report.contains(&format!("{} records valid", records.len())),
            "{report}"
        );
    }
}

#[test]
fn attacker_strings_stay_inside_their_json_strings() {
    let evil = "x\"}\n{\"class_uid\":1}\u{1b}[31m\\</script>\u{202e}";
    let mut w = Workload::attacked(&cid(999), "web-\"evil\"\n", 42);
    w.event(
        35,
        301,
        300,
        "xmrig",
        "/tmp/.x/xmrig",
        Detail::Exec {
            argv: vec!["/tmp/.x/xmrig".into(), "-o".into(), evil.into()],
            truncated: false,
            state: None,
        },
    );
    let mut workloads = fleet(8, false);
    workloads.push(w);
    let dir = tempfile::tempdir().unwrap();
    write_trace(&dir.path().join("a.parquet"), &workloads, |_| {});
    let o = analyze(&[p(dir.path()), "--format", "ocsf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let records = lines(&out);
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r["class_uid"], 2004, "{r}");
        assert_eq!(r["resources"][0]["name"], "web-\"evil\"\n");
    }
    // The argv comes back whole, byte for byte, as a JSON string value.
    assert!(records.iter().any(|r| holds(r, evil)), "{out}");
    if let Some(py) = python_with_ocsf("attacker_strings_stay_inside_their_json_strings") {
        let f = dir.path().join("f.ndjson");
        std::fs::write(&f, &out).unwrap();
        validate(&py, &f);
    }
}

#[test]
fn a_workload_without_signature_hits_is_a_finding_when_its_anomaly_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(&dir.path().join("a.parquet"), &fleet(12, true), |_| {});
    let o = analyze(&[
        p(dir.path()),
        "--no-signatures",
        "--no-model",
        "--format",
        "ocsf",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = lines(&stdout(&o));
    let anomaly = records
        .iter()
        .find(|r| r["finding_info"]["title"] == "Execution:Runtime/AnomalousBehavior")
        .unwrap_or_else(|| panic!("no anomaly finding: {records:?}"));
    assert_eq!(anomaly["resources"][0]["uid"], cid(999));
    assert_eq!(anomaly["finding_info"]["analytic"]["type"], "Statistical");
    assert_eq!(anomaly["confidence"], "Low");
    let analysis = &anomaly["anomaly_analyses"][0];
    assert!(!analysis["anomalies"].as_array().unwrap().is_empty());
    assert_eq!(
        analysis["anomalies"].as_array().unwrap().len(),
        analysis["baselines"].as_array().unwrap().len()
    );
    assert!(
        anomaly["unmapped"]["parts"]["anomaly"].as_f64().unwrap()
            >= anomaly["unmapped"]["threshold"].as_f64().unwrap()
    );
    if let Some(py) =
        python_with_ocsf("a_workload_without_signature_hits_is_a_finding_when_its_anomaly_is_named")
    {
        let f = dir.path().join("f.ndjson");
        std::fs::write(&f, stdout(&o)).unwrap();
        validate(&py, &f);
    }
}

#[test]
fn findings_out_carries_every_finding_beside_the_main_output() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(&dir.path().join("a.parquet"), &fleet(10, true), |_| {});
    let (json, nd) = (dir.path().join("r.json"), dir.path().join("f.ndjson"));
    let o = analyze(&[
        p(dir.path()),
        "--format",
        "json",
        "--top",
        "1",
        "--out",
        p(&json),
        "--findings-out",
        p(&nd),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let shown: usize = doc["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["findings"].as_array().unwrap().len())
        .sum();
    let records = lines(&std::fs::read_to_string(&nd).unwrap());
    assert!(
        shown > 0 && records.len() >= shown,
        "{shown} {}",
        records.len()
    );
    // `-` is stdout, when --out takes the main output; both on stdout is refused.
    let o = analyze(&[p(dir.path()), "--out", p(&json), "--findings-out", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&stdout(&o)).len(), records.len());
    let o = analyze(&[p(dir.path()), "--findings-out", "-"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--findings-out -"), "{}", stderr(&o));
    // An unwritable destination is one line naming it.
    let o = analyze(&[p(dir.path()), "--findings-out", "/nonexistent/dir/f.ndjson"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("/nonexistent/dir/f.ndjson") && err.lines().count() == 1,
        "{err}"
    );
}

/// A webhook receiver on 127.0.0.1 that applies Falcosidekick's own acceptance checks
/// (`FalcoPayload.Check`: a known priority, a rule, a non-zero time, non-empty output_fields)
/// and answers `fail_status` (503 unless set) to the first `fail_first` requests. Stopped and
/// joined on drop.
struct Sidekick {
    url: String,
    accepted: Arc<Mutex<Vec<serde_json::Value>>>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Falcosidekick's check of one alert (types.FalcoPayload.Check), or why it fails.
fn sidekick_check(body: &[u8]) -> Result<serde_json::Value, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let priority = v["priority"].as_str().unwrap_or("").to_ascii_lowercase();
    let known = [
        "emergency",
        "alert",
        "critical",
        "error",
        "warning",
        "notice",
        "informational",
        "info",
        "debug",
    ];
    if !known.contains(&priority.as_str()) {
        return Err(format!("priority {:?}", v["priority"]));
    }
    if v["rule"].as_str().unwrap_or("").is_empty() {
        return Err("no rule".into());
    }
    // Go's time.Time takes RFC 3339; IsZero is year 1.
    let time = v["time"].as_str().unwrap_or("");
    let b = time.as_bytes();
    let rfc3339 = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && (time.ends_with('Z') || time[19..].contains(['+', '-']));
    if !rfc3339 || time.starts_with("0001-") {
        return Err(format!("time {time:?}"));
    }
    if v["output_fields"].as_object().is_none_or(|o| o.is_empty()) {
        return Err("no output_fields".into());
    }
    Ok(v)
}

impl Sidekick {
    fn start(fail_first: usize) -> Sidekick {
        Sidekick::failing_with(fail_first, "503 Service Unavailable")
    }

    fn failing_with(fail_first: usize, fail_status: &'static str) -> Sidekick {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, req, st) = (accepted.clone(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let n = req.fetch_add(1, Ordering::SeqCst);
                        serve(stream, (n < fail_first).then_some(fail_status), &acc);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Sidekick {
            url,
            accepted,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sidekick {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP/1.1 request and answers it (then closes the connection).
fn serve(
    mut stream: TcpStream,
    fail: Option<&'static str>,
    accepted: &Mutex<Vec<serde_json::Value>>,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_end..head_end + length];
    let status = if let Some(status) = fail {
        status
    } else if !head.starts_with("post ") || !head.contains("content-type: application/json") {
        "405 Method Not Allowed"
    } else {
        match sidekick_check(body) {
            Ok(v) => {
                accepted.lock().unwrap().push(v);
                "200 OK"
            }
            Err(_) => "400 Bad Request",
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn the_sidekick_checks_refuse_what_falcosidekick_refuses() {
    let good = br#"{"priority":"Error","rule":"r","time":"2026-11-23T15:12:34.5Z","output_fields":{"a":1}}"#;
    assert!(sidekick_check(good).is_ok());
    for bad in [
        r#"{"priority":"Severe","rule":"r","time":"2026-11-23T15:12:34Z","output_fields":{"a":1}}"#,
        r#"{"priority":"Error","rule":"","time":"2026-11-23T15:12:34Z","output_fields":{"a":1}}"#,
        r#"{"priority":"Error","rule":"r","time":"0001-01-01T00:00:00Z","output_fields":{"a":1}}"#,
        r#"{"priority":"Error","rule":"r","time":"2026-11-23T15:12:34Z","output_fields":{}}"#,
    ] {
        assert!(sidekick_check(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn webhook_gets_every_finding_exactly_once_through_two_failures() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(&dir.path().join("a.parquet"), &fleet(10, true), |_| {});
    let sidekick = Sidekick::start(2);
    let nd = dir.path().join("f.ndjson");
    let o = analyze(&[
        p(dir.path()),
        "--top",
        "1",
        "--findings-out",
        p(&nd),
        "--webhook",
        &sidekick.url,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = lines(&std::fs::read_to_string(&nd).unwrap());
    let accepted = sidekick.accepted.lock().unwrap().clone();
    assert!(!records.is_empty());
    assert_eq!(accepted.len(), records.len(), "{accepted:?}");
    assert_eq!(sidekick.requests.load(Ordering::SeqCst), records.len() + 2);
    let sent: BTreeSet<&str> = accepted
        .iter()
        .map(|a| a["output_fields"]["needle.uid"].as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = records
        .iter()
        .map(|r| r["finding_info"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(sent, want, "each finding once, none missing");
    let miner = accepted
        .iter()
        .find(|a| a["rule"] == "Impact:Runtime/CryptoMinerExecuted")
        .unwrap();
    assert_eq!(miner["source"], "needle");
    assert_eq!(miner["hostname"], "node-1");
    assert_eq!(miner["output_fields"]["container.name"], "web-evil");
    assert_eq!(miner["output_fields"]["proc.exepath"], "/tmp/.x/xmrig");
    assert!(stderr(&o).contains(&format!("{} findings delivered", records.len())));
}

#[test]
fn webhook_that_never_accepts_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(&dir.path().join("a.parquet"), &fleet(6, true), |_| {});
    let sidekick = Sidekick::start(usize::MAX);
    let o = analyze(&[p(dir.path()), "--webhook", &sidekick.url]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&sidekick.url)
            && err.contains("not delivered after 5 attempt(s): HTTP 503")
            && err.contains("0 of "),
        "{err}"
    );
    assert_eq!(sidekick.requests.load(Ordering::SeqCst), 5);
    assert!(sidekick.accepted.lock().unwrap().is_empty());
    // A refusal (a status other than 408, 429 or 5xx) is final: one request, no retry.
    let refusing = Sidekick::failing_with(usize::MAX, "400 Bad Request");
    let o = analyze(&[p(dir.path()), "--webhook", &refusing.url]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("after 1 attempt(s): refused (HTTP 400)"),
        "{err}"
    );
    assert_eq!(refusing.requests.load(Ordering::SeqCst), 1);
    drop(refusing);
    // Nobody listening: the same, naming the connection failure.
    let url = sidekick.url.clone();
    drop(sidekick);
    let o = analyze(&[p(dir.path()), "--webhook", &url]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&url) && err.contains("not delivered"), "{err}");
}
