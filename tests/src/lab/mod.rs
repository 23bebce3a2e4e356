//! The scenario lab: real benign and attack workloads in real runc containers, recorded by the
//! real `capture`, written as a labelled dataset (`traces/*.parquet` + `labels.csv`).
//!
//! One run: start the fake internet on a loopback address of its own, start `capture`, start
//! the containers ([`scenario`]), send the injections on schedule, stop the containers, stop
//! capture, then keep only the lab's containers' rows (capture records the whole host and has
//! no workload filter), fill the `label` column and write the dataset. Everything the run
//! started is stopped and removed on return, also on error and on SIGINT/SIGTERM (the caller's
//! `stop` flag).

pub mod lookalike;
pub mod net;
pub mod rng;
pub mod scenario;
pub mod stealth;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use needle_common::schema::{TraceMetadata, WriteOptions, names, writer_properties};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::capture::{Capture, trace_files};
use crate::runc::{CgroupStyle, Container, ContainerSpec};
use net::{FakeInternet, HttpSite, Service};
use rng::Rng;
use scenario::{ATTACKS, BENIGN, Ctx, Injection, Listener, Net, Plan};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of every parameter.
    pub seed: u64,
    /// Number of benign containers.
    pub benign: usize,
    /// Benign scenario types they cycle through (names from [`BENIGN`] and
    /// [`lookalike::LOOKALIKE`]).
    pub benign_kinds: Vec<String>,
    /// Attack scenarios to run, one container each (names from [`ATTACKS`] and
    /// [`stealth::STEALTH`]).
    pub attacks: Vec<String>,
    /// How long the workloads run (the recording is a few seconds longer).
    pub seconds: u64,
    /// Dataset directory (`traces/`, `labels.csv`, `lab-run.json` are replaced).
    pub out: PathBuf,
    /// The capture binary.
    pub capture: PathBuf,
    /// More arguments for capture (e.g. `--syscalls full`, to record the syscall sequences the
    /// sequence models train on).
    pub capture_args: Vec<String>,
}

/// One container of a finished run.
#[derive(Clone, Debug)]
pub struct Ran {
    /// Container id (the workload key).
    pub id: String,
    /// What it ran.
    pub plan: Plan,
    /// Whether its injection was delivered (attacks).
    pub injected: bool,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The containers.
    pub containers: Vec<Ran>,
    /// Rows kept in the dataset, and rows capture wrote in total.
    pub rows: u64,
    /// Rows capture recorded for the whole host.
    pub raw_rows: u64,
    /// Bytes of the dataset's trace files.
    pub bytes: u64,
    /// Wall-clock seconds of the recording.
    pub recorded_s: f64,
    /// What the fake internet saw.
    pub activity: BTreeMap<String, u64>,
    /// capture's summary (stdout).
    pub capture_summary: String,
    /// Attacks whose server saw nothing (the attack did not really happen).
    pub unconfirmed: Vec<String>,
}

/// The fake-internet activity key prefix that proves an attack reached its server (None for
/// attacks that need no server: kmod-load).
fn proof_of(kind: &str, net: &Net) -> Option<String> {
    match kind {
        "miner" => Some("stratum.message".into()),
        "c2-dga-beacon" | "fileless" => Some(format!("http:{}", net.c2)),
        "reverse-shell" => Some("reverse-shell:".into()),
        "tor-client" => Some("tor-or:".into()),
        "cred-discovery" => Some(format!("http:{}", net.drop)),
        "docker-socket" => Some("docker.".into()),
        "masq-miner" => Some("stratum.message".into()),
        "slow-beacon" => Some(format!("http:{}", net.c2)),
        "curl-pipe-sh" | "cred-harvest" => Some(format!("http:{}", net.drop)),
        _ => None,
    }
}

/// Names accepted by `--attacks`: the classic attacks, then the stealth ones.
pub fn attack_names() -> Vec<&'static str> {
    ATTACKS
        .iter()
        .chain(stealth::STEALTH)
        .map(|(k, _)| *k)
        .collect()
}

/// Names accepted as benign types: the classic ones, then the look-alikes.
pub fn benign_names() -> Vec<&'static str> {
    BENIGN.iter().chain(lookalike::LOOKALIKE).copied().collect()
}

/// The plan of one container: a classic or look-alike benign type, or a classic or stealth
/// attack (the names were checked by [`run`]).
fn plan_of(rng: &mut Rng, ctx: &Ctx, kind: &str, attack: bool, ip: Ipv4Addr) -> Plan {
    match (
        attack,
        BENIGN.contains(&kind),
        ATTACKS.iter().any(|(k, _)| *k == kind),
    ) {
        (true, _, true) => scenario::attack(rng, ctx, kind, ip),
        (true, _, false) => stealth::attack(rng, ctx, kind, ip)
            .unwrap_or_else(|| scenario::attack(rng, ctx, kind, ip)),
        (false, true, _) => scenario::benign(rng, ctx, kind, ip),
        (false, false, _) => lookalike::benign(rng, ctx, kind, ip)
            .unwrap_or_else(|| scenario::benign(rng, ctx, kind, ip)),
    }
}

/// Runs the lab. `stop` (set by a signal handler) ends it early: then nothing is written and
/// the error says so.
pub fn run(cfg: &Config, stop: &AtomicBool) -> Result<Outcome, String> {
    for a in &cfg.attacks {
        if !attack_names().contains(&a.as_str()) {
            return Err(format!(
                "unknown attack {a:?} (known: {})",
                attack_names().join(", ")
            ));
        }
    }
    for b in &cfg.benign_kinds {
        if !benign_names().contains(&b.as_str()) {
            return Err(format!(
                "unknown benign type {b:?} (known: {})",
                benign_names().join(", ")
            ));
        }
    }
    if cfg.benign_kinds.is_empty() && cfg.benign > 0 {
        return Err("no benign scenario types to run".into());
    }
    if let Some(why) = crate::runc::runc_available() {
        return Err(why);
    }
    if !cfg.capture.is_file() {
        return Err(format!(
            "capture binary {} not found (build it: cargo build --release -p capture; or pass --capture)",
            cfg.capture.display()
        ));
    }
    let work = tempfile::Builder::new()
        .prefix("needle-lab-")
        .tempdir()
        .map_err(|e| format!("work directory: {e}"))?;
    let mut rng = Rng::new(cfg.seed, 0);

    // The fake internet, on a loopback address no other lab run uses.
    let mut internet = FakeInternet::new();
    let mut chosen = None;
    let pid = std::process::id();
    for attempt in 0..20u32 {
        let addr = Ipv4Addr::new(
            127,
            100 + ((pid + attempt) % 100) as u8,
            (cfg.seed % 250) as u8 + 1,
            1,
        );
        if internet.dns(SocketAddr::from((addr, 53)), addr).is_ok() {
            chosen = Some(addr);
            break;
        }
    }
    let addr =
        chosen.ok_or("no free loopback address for the lab's DNS resolver (127.1xx.*.1:53)")?;
    let net = Net::new(addr, &mut rng);

    // The implant (static C, for what busybox cannot do: memfd exec, unix-socket HTTP).
    let implant = build_implant(work.path());
    if let Err(e) = &implant {
        eprintln!(
            "lab: no implant tool ({e}); fileless uses a deleted file, docker-socket only busybox"
        );
    }
    let implant_url = format!("/{}/{}", rng.hex(4), rng.hex(6));
    let busybox_url = format!("/{}/{}", rng.hex(4), rng.hex(6));

    // Plans: kinds in a seeded order (web and a client first, so clients have targets).
    let mut rest: Vec<&str> = cfg
        .benign_kinds
        .iter()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "web" | "web-client"))
        .collect();
    for i in (1..rest.len()).rev() {
        rest.swap(i, rng.range(0, i as u64) as usize);
    }
    let order: Vec<&str> = ["web", "web-client"]
        .into_iter()
        .filter(|k| cfg.benign_kinds.iter().any(|b| b == k))
        .chain(rest)
        .collect();
    let mut kinds: Vec<(String, bool)> = (0..cfg.benign)
        .map(|i| (order[i % order.len()].to_owned(), false))
        .collect();
    for a in &cfg.attacks {
        let at = rng.range(0, kinds.len() as u64) as usize;
        kinds.insert(at, (a.clone(), true));
    }
    if kinds.len() > 240 {
        return Err(format!(
            "{} containers: the lab runs at most 240",
            kinds.len()
        ));
    }
    let [_, b, c, _] = addr.octets();
    let ips: Vec<Ipv4Addr> = (0..kinds.len())
        .map(|i| Ipv4Addr::new(127, b, c, 10 + i as u8))
        .collect();
    let web_targets: Vec<Ipv4Addr> = kinds
        .iter()
        .zip(&ips)
        .filter(|((k, attack), _)| *attack || k == "web")
        .map(|(_, ip)| *ip)
        .collect();
    let ctx = Ctx {
        net: &net,
        seconds: cfg.seconds,
        web_targets: &web_targets,
        busybox_url: &busybox_url,
        implant_url: implant.as_ref().ok().map(|_| implant_url.as_str()),
        implant: implant.as_ref().ok().map(Vec::as_slice),
    };
    let plans: Vec<Plan> = kinds
        .iter()
        .zip(&ips)
        .map(|((k, attack), ip)| plan_of(&mut rng, &ctx, k, *attack, *ip))
        .collect();

    // What the fake internet serves.
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for p in &plans {
        files.extend(p.serve.iter().cloned());
    }
    files.insert(
        busybox_url.clone(),
        fs::read(crate::runc::BUSYBOX).map_err(|e| format!("{}: {e}", crate::runc::BUSYBOX))?,
    );
    if let Ok(bytes) = &implant {
        files.insert(implant_url.clone(), bytes.clone());
    }
    files.insert(
        "/repo/x86_64/APKINDEX".into(),
        b"C:Q1abc\nP:jq\nV:1.7-r0\n".to_vec(),
    );
    files.insert(
        "/computeMetadata/v1/instance/service-accounts/default/token".into(),
        format!(
            "{{\"access_token\":\"ya29.{}\",\"expires_in\":3599}}",
            rng.hex(32)
        )
        .into_bytes(),
    );
    files.insert(
        "/tor/status-vote/current/consensus".into(),
        b"network-status-version 3\nvote-status consensus\n".to_vec(),
    );
    let site = Arc::new(HttpSite::new(files, Vec::new()));
    let c2 = Arc::new(HttpSite::new(
        HashMap::new(),
        [
            "id",
            "uname -a",
            "hostname",
            "cat /etc/os-release",
            "sleep 1",
            "ls /",
        ]
        .map(String::from)
        .to_vec(),
    ));
    let shell_cmds = [
        "id",
        "uname -a",
        "cat /etc/passwd",
        "ls -la /",
        "ps",
        "cat /proc/self/environ",
    ]
    .map(String::from)
    .to_vec();
    let services = [
        (net.http, Service::Http(site.clone())),
        (net.pool, Service::Stratum),
        (net.c2, Service::Http(c2.clone())),
        (net.revshell, Service::ReverseShell(shell_cmds)),
        (net.tor_or, Service::TorOr),
        (net.tor_dir, Service::Http(site.clone())),
        (net.drop, Service::Http(site.clone())),
        (net.db, Service::Sink(b"N".to_vec())),
        (net.cache, Service::Sink(b"+PONG\r\n".to_vec())),
        (net.logs, Service::Http(site.clone())),
        (net.metrics, Service::Http(site.clone())),
    ];
    let mut ports: Vec<u16> = Vec::new();
    for (port, service) in services {
        ports.push(port);
        internet
            .tcp(SocketAddr::from((addr, port)), service)
            .map_err(|e| format!("listen on {addr}:{port}: {e}"))?;
    }
    // Listeners only some scenarios talk to (a private pool on a port of its own).
    for &(port, what) in plans.iter().flat_map(|p| &p.listen) {
        if ports.contains(&port) {
            continue;
        }
        ports.push(port);
        let service = match what {
            Listener::Stratum => Service::Stratum,
            Listener::C2 => Service::Http(c2.clone()),
            Listener::Http => Service::Http(site.clone()),
        };
        internet
            .tcp(SocketAddr::from((addr, port)), service)
            .map_err(|e| format!("listen on {addr}:{port}: {e}"))?;
    }
    let docker_sock = work.path().join("docker.sock");
    internet
        .docker_socket(&docker_sock)
        .map_err(|e| format!("{}: {e}", docker_sock.display()))?;

    // Record.
    let raw = work.path().join("raw");
    let mut capture_args = vec!["--rotate-interval", "1h", "--rotate-size", "1024"];
    capture_args.extend(cfg.capture_args.iter().map(String::as_str));
    let mut capture = Capture::spawn(&cfg.capture, &raw, &capture_args)?;
    let started = Instant::now();
    eprintln!(
        "lab: seed {}, {} containers ({} attacks), {} s, fake internet on {addr}",
        cfg.seed,
        plans.len(),
        cfg.attacks.len(),
        cfg.seconds
    );

    // The last field: None until the injection is due, then whether it was delivered.
    let mut containers: Vec<(Container, Plan, Instant, Option<bool>)> = Vec::new();
    let styles = [
        CgroupStyle::DockerSystemd,
        CgroupStyle::ContainerdSystemd,
        CgroupStyle::CriO,
        CgroupStyle::DockerCgroupfs,
        CgroupStyle::KubepodsCgroupfs,
    ];
    let result = (|| -> Result<(), String> {
        for p in &plans {
            if stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            let mut spec = ContainerSpec::new(rng.pick(&styles).clone());
            spec.annotations = [
                ("io.kubernetes.pod.name", p.pod.clone()),
                ("io.kubernetes.pod.namespace", p.namespace.clone()),
                ("io.kubernetes.container.name", p.name.clone()),
                ("io.kubernetes.cri.image-name", p.image.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            spec.args = vec!["/bin/sh".into(), "-c".into(), p.script.clone()];
            spec.share_host_network = true;
            spec.files = p.files.clone();
            spec.files.push(("/etc/resolv.conf".into(), format!("nameserver {addr}\nsearch {}.svc.cluster.local svc.cluster.local cluster.local\n", p.namespace).into_bytes(), 0o644));
            spec.env = p.env.clone();
            if p.docker_sock {
                spec.mounts
                    .push((docker_sock.clone(), "/var/run/docker.sock".into()));
            }
            let c =
                Container::start(spec).map_err(|e| format!("{} ({}): {e}", p.name, p.scenario))?;
            containers.push((c, p.clone(), Instant::now(), None));
        }
        let end = started + Duration::from_secs(cfg.seconds);
        let mut next_status = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            for (c, p, t0, done) in containers.iter_mut() {
                let Some((at, how)) = &p.injection else {
                    continue;
                };
                if done.is_some() || t0.elapsed() < Duration::from_secs(*at) {
                    continue;
                }
                match how {
                    Injection::Http(target) => {
                        let Some(ip) = p.web_addr else { continue };
                        *done = Some(true);
                        let target = target.clone();
                        // The attacker's request; the response comes when the CGI finishes.
                        std::thread::spawn(move || {
                            let _ = http_get(SocketAddr::from((ip, scenario::WEB_PORT)), &target);
                        });
                    }
                    Injection::Exec(cmd) => {
                        let sent = c.exec_detached(&["/bin/sh", "-c", cmd]);
                        if let Err(e) = &sent {
                            eprintln!("lab: {} ({}): {e}", p.name, p.scenario);
                        }
                        *done = Some(sent.is_ok());
                    }
                }
            }
            if Instant::now() >= next_status {
                eprintln!(
                    "lab: {:>4} s of {}: {:?}",
                    started.elapsed().as_secs(),
                    cfg.seconds,
                    internet.activity.snapshot()
                );
                next_status += Duration::from_secs(10);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })();

    let ran: Vec<Ran> = containers
        .iter()
        .map(|(c, p, _, injected)| Ran {
            id: c.id().to_owned(),
            plan: p.clone(),
            injected: *injected == Some(true),
        })
        .collect();
    // Stop the containers while capture still records (container_stop, exits), then capture.
    drop(containers);
    std::thread::sleep(Duration::from_secs(2));
    capture.signal(libc::SIGINT);
    let recorded_s = started.elapsed().as_secs_f64();
    let (_, capture_summary) = capture.wait_for(Duration::from_secs(120))?;
    let activity = internet.activity.snapshot();
    drop(internet);
    result?;
    let unconfirmed: Vec<String> = cfg
        .attacks
        .iter()
        .filter(|a| proof_of(a, &net).is_some_and(|p| !activity.keys().any(|k| k.starts_with(&p))))
        .cloned()
        .collect();

    // The dataset: only the lab's workloads, labelled.
    let labels: HashMap<String, &'static str> =
        ran.iter().map(|r| (r.id.clone(), r.plan.label)).collect();
    let traces = cfg.out.join("traces");
    if traces.exists() {
        for f in trace_files(&traces) {
            fs::remove_file(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        }
    }
    fs::create_dir_all(&traces).map_err(|e| format!("{}: {e}", traces.display()))?;
    let (mut rows, mut raw_rows, mut bytes) = (0, 0, 0);
    for f in trace_files(&raw) {
        let dst = traces.join(f.file_name().unwrap_or_default());
        let (kept, total) = filter_trace(&f, &dst, &labels)?;
        rows += kept;
        raw_rows += total;
        if kept > 0 {
            bytes += fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
        }
    }
    write_labels(&cfg.out.join("labels.csv"), &ran)?;
    let outcome = Outcome {
        containers: ran,
        rows,
        raw_rows,
        bytes,
        recorded_s,
        activity,
        capture_summary,
        unconfirmed,
    };
    write_manifest(&cfg.out.join("lab-run.json"), cfg, &net, &outcome)?;
    Ok(outcome)
}

/// Sends `GET target` to `addr` and reads the answer (bounded).
fn http_get(addr: SocketAddr, target: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {target} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: Mozilla/5.0\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.take(1 << 20).read_to_end(&mut out)?;
    Ok(out)
}

/// Compiles the implant (`implant.c`) statically with the system C compiler.
fn build_implant(dir: &Path) -> Result<Vec<u8>, String> {
    let src = dir.join("implant.c");
    let bin = dir.join("implant");
    fs::write(&src, include_str!("implant.c")).map_err(|e| format!("{}: {e}", src.display()))?;
    let out = std::process::Command::new("cc")
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc -static failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))
}

/// Copies the rows of `labels`' workloads from `src` to `dst` with the `label` column filled;
/// returns (rows kept, rows read). Writes nothing when no row is kept.
pub fn filter_trace(
    src: &Path,
    dst: &Path,
    labels: &HashMap<String, &str>,
) -> Result<(u64, u64), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", src.display());
    let file = fs::File::open(src).map_err(|e| err(&e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(&e))?;
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let mut metadata =
        TraceMetadata::from_key_values(kv.iter().map(|k| (k.key.as_str(), k.value.as_deref())))
            .map_err(|e| err(&e))?;
    let schema = builder.schema().clone();
    let workload_idx = schema.index_of(names::WORKLOAD).map_err(|e| err(&e))?;
    let label_idx = schema.index_of(names::LABEL).map_err(|e| err(&e))?;
    let (mut kept, mut read) = (0u64, 0u64);
    let mut batches: Vec<RecordBatch> = Vec::new();
    for batch in builder.build().map_err(|e| err(&e))? {
        let batch = batch.map_err(|e| err(&e))?;
        read += batch.num_rows() as u64;
        let workload = batch
            .column(workload_idx)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| err(&"workload column is not a string column"))?;
        let mask: BooleanArray = workload
            .iter()
            .map(|w| Some(w.is_some_and(|w| labels.contains_key(w))))
            .collect();
        let filtered = filter_record_batch(&batch, &mask).map_err(|e| err(&e))?;
        if filtered.num_rows() == 0 {
            continue;
        }
        let workload = filtered
            .column(workload_idx)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| err(&"workload column is not a string column"))?;
        let label: StringArray = workload
            .iter()
            .map(|w| w.and_then(|w| labels.get(w).copied()))
            .collect();
        let mut columns = filtered.columns().to_vec();
        columns[label_idx] = Arc::new(label) as Arc<dyn Array>;
        kept += filtered.num_rows() as u64;
        batches.push(RecordBatch::try_new(filtered.schema(), columns).map_err(|e| err(&e))?);
    }
    if kept == 0 {
        return Ok((0, read));
    }
    metadata.events_written = kept;
    let props = writer_properties(&WriteOptions::default(), metadata.to_key_values())
        .map_err(|e| err(&e))?;
    let out = fs::File::create(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    let mut writer = ArrowWriter::try_new(out, schema, Some(props))
        .map_err(|e| format!("{}: {e}", dst.display()))?;
    for b in &batches {
        writer
            .write(b)
            .map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    writer
        .close()
        .map_err(|e| format!("{}: {e}", dst.display()))?;
    Ok((kept, read))
}

/// A CSV cell (RFC 4180 quoting; formula-looking cells get a leading `'`).
fn csv(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `labels.csv`: workload,label,scenario,expected_findings (`;`-separated),name,pod,namespace,image.
fn write_labels(path: &Path, ran: &[Ran]) -> Result<(), String> {
    let mut text =
        String::from("workload,label,scenario,expected_findings,name,pod,namespace,image\n");
    for r in ran {
        let p = &r.plan;
        let cells = [
            r.id.as_str(),
            p.label,
            &p.scenario,
            &p.expected.join(";"),
            &p.name,
            &p.pod,
            &p.namespace,
            &p.image,
        ];
        text.push_str(&cells.iter().map(|c| csv(c)).collect::<Vec<_>>().join(","));
        text.push('\n');
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_manifest(path: &Path, cfg: &Config, net: &Net, o: &Outcome) -> Result<(), String> {
    let value = serde_json::json!({
        "seed": cfg.seed,
        "benign": cfg.benign,
        "benign_kinds": cfg.benign_kinds,
        "attacks": cfg.attacks,
        "seconds": cfg.seconds,
        "recorded_seconds": (o.recorded_s * 10.0).round() / 10.0,
        "rows": o.rows,
        "host_rows_dropped": o.raw_rows - o.rows,
        "trace_bytes": o.bytes,
        "fake_internet": {
            "http": net.http, "pool": net.pool, "c2": net.c2, "reverse_shell": net.revshell,
            "tor_or": net.tor_or, "tor_dir": net.tor_dir, "drop": net.drop,
            "db": net.db, "cache": net.cache, "logs": net.logs, "metrics": net.metrics,
        },
        "activity": o.activity,
        "injections_delivered": o.containers.iter().filter(|r| r.injected).count(),
        "attacks_unconfirmed": o.unconfirmed,
    });
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("=cmd()"), "'=cmd()");
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }
}
