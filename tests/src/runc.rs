//! Real containers for tests (and the scenario lab): runc + busybox-static, with the cgroup
//! layouts of Docker, containerd/CRI, CRI-O, podman and plain runc, and Kubernetes annotations.
//!
//! [`Container::start`] builds a bundle in a temporary directory (busybox and its applet
//! symlinks, `/etc/passwd`, `/etc/group`, extra files), edits `runc spec`'s `config.json` and
//! runs `runc run -d`. Dropping the [`Container`] — also while a test panics — kills and deletes
//! it, removes its bundle and the pod cgroup it made. Every wait is bounded.
//!
//! This machine has no systemd, so runc's systemd cgroup driver (`slice:prefix:name`) is not
//! usable; the systemd styles give runc, as a cgroupfs path, the exact path the systemd driver
//! would create (`/system.slice/docker-<id>.scope`), which is what the kernel and
//! `/proc/<pid>/cgroup` show on a systemd host.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// The busybox-static binary copied into every container.
pub const BUSYBOX: &str = "/bin/busybox";
/// Annotation naming the test process that owns a container (stale ones are swept).
pub const OWNER_ANNOTATION: &str = "io.needle.test.owner-pid";
/// Bound on every runc command.
const RUNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on [`Container::exec`].
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Serializes container start-up against cgroup clean-up in this process, so removing an empty
/// pod cgroup never races runc creating it.
static CGROUP_LOCK: Mutex<()> = Mutex::new(());

/// Which runtime's cgroup layout the container mimics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupStyle {
    /// Docker, cgroupfs driver: `/docker/<id>`.
    DockerCgroupfs,
    /// Docker, systemd driver (`system.slice:docker:<id>`): `/system.slice/docker-<id>.scope`.
    DockerSystemd,
    /// containerd CRI, systemd driver (`kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>`):
    /// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`.
    ContainerdSystemd,
    /// CRI-O, systemd driver (`…:crio:<id>`), in a burstable pod:
    /// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/crio-<id>.scope`.
    CriO,
    /// podman (rootful, systemd): `/machine.slice/libpod-<id>.scope`.
    Podman,
    /// Plain runc: `/<id>`.
    PlainRunc,
    /// Kubernetes with the cgroupfs driver: `/kubepods/besteffort/pod<uid>/<id>`.
    KubepodsCgroupfs,
    /// Any absolute cgroup path, used as given.
    Custom(String),
}

impl CgroupStyle {
    /// The cgroup path (as `/proc/<pid>/cgroup` shows it) for container `id` in pod `pod_uid`.
    pub fn cgroup_path(&self, id: &str, pod_uid: &str) -> String {
        let slice_uid = pod_uid.replace('-', "_");
        let pod = |qos: &str| {
            format!("/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{slice_uid}.slice")
        };
        match self {
            CgroupStyle::DockerCgroupfs => format!("/docker/{id}"),
            CgroupStyle::DockerSystemd => format!("/system.slice/docker-{id}.scope"),
            CgroupStyle::ContainerdSystemd => {
                format!("{}/cri-containerd-{id}.scope", pod("besteffort"))
            }
            CgroupStyle::CriO => format!("{}/crio-{id}.scope", pod("burstable")),
            CgroupStyle::Podman => format!("/machine.slice/libpod-{id}.scope"),
            CgroupStyle::PlainRunc => format!("/{id}"),
            CgroupStyle::KubepodsCgroupfs => format!("/kubepods/besteffort/pod{pod_uid}/{id}"),
            CgroupStyle::Custom(path) => path.clone(),
        }
    }

    /// Whether the style puts the container in a per-pod cgroup of its own (removed on drop).
    fn has_pod_cgroup(&self) -> bool {
        matches!(
            self,
            CgroupStyle::ContainerdSystemd | CgroupStyle::CriO | CgroupStyle::KubepodsCgroupfs
        )
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// Container id, 64 lowercase hex ([`random_container_id`]).
    pub id: String,
    /// cgroup layout.
    pub cgroup: CgroupStyle,
    /// OCI annotations (Kubernetes metadata: `io.kubernetes.pod.name`, …). The pod uid used in
    /// pod cgroup paths is `io.kubernetes.pod.uid` when given, else derived from the id.
    pub annotations: BTreeMap<String, String>,
    /// The init process (`/bin/sleep 3600` when empty). Call tools as `/bin/<tool>`.
    pub args: Vec<String>,
    /// Remove the network namespace so loopback listeners on the host are reachable.
    pub share_host_network: bool,
    /// Extra files: path in the rootfs, contents, mode (e.g. a custom `/etc/passwd`).
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Extra environment variables of the init process (`KEY=value`).
    pub env: Vec<String>,
    /// Bind mounts: host path (a file, directory or unix socket) → absolute path in the container.
    pub mounts: Vec<(PathBuf, String)>,
}

impl ContainerSpec {
    /// A spec with a fresh id, the given style, no annotations, and `/bin/sleep 3600`.
    pub fn new(cgroup: CgroupStyle) -> Self {
        ContainerSpec {
            id: random_container_id(),
            cgroup,
            annotations: BTreeMap::new(),
            args: Vec::new(),
            share_host_network: false,
            files: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
        }
    }

    /// The pod uid (annotation, else derived from the id, UUID-shaped).
    pub fn pod_uid(&self) -> String {
        if let Some(uid) = self.annotations.get("io.kubernetes.pod.uid") {
            return uid.clone();
        }
        let h = self
            .id
            .get(..32)
            .unwrap_or("0000000000000000000000000000000");
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// A running container; dropping it kills and deletes it and removes its bundle.
pub struct Container {
    id: String,
    bundle: tempfile::TempDir,
    cgroup_path: String,
    init_pid: Option<u32>,
    /// Per-hierarchy cgroup directories runc made (from its state), for clean-up.
    cgroup_dirs: Vec<PathBuf>,
    remove_pod_cgroup: bool,
    execs: AtomicU32,
}

/// None when containers can run here; otherwise why not.
pub fn runc_available() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("runc containers need root".into());
    }
    if runc_path().is_none() {
        return Some("runc is not installed (scripts/setup.sh installs it)".into());
    }
    if !Path::new(BUSYBOX).is_file() {
        return Some(format!(
            "{BUSYBOX} is missing (busybox-static; scripts/setup.sh)"
        ));
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mountinfo.lines().any(|l| l.contains(" - cgroup2 ")) {
        return Some("cgroup2 is not mounted".into());
    }
    None
}

/// 64 lowercase hex characters from `/dev/urandom`.
pub fn random_container_id() -> String {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn runc_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
}

impl Container {
    /// Builds the bundle and runs the container detached; returns once its init is running.
    pub fn start(spec: ContainerSpec) -> Result<Container, String> {
        if let Some(why) = runc_available() {
            return Err(why);
        }
        if spec.id.len() != 64
            || !spec
                .id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(format!(
                "container id {:?} is not 64 lowercase hex",
                spec.id
            ));
        }
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);

        let bundle = tempfile::Builder::new()
            .prefix(&format!("needle-runc-{}-", std::process::id()))
            .tempdir()
            .map_err(|e| format!("bundle tempdir: {e}"))?;
        let mut container = Container {
            id: spec.id.clone(),
            bundle,
            cgroup_path: spec.cgroup.cgroup_path(&spec.id, &spec.pod_uid()),
            init_pid: None,
            cgroup_dirs: Vec::new(),
            remove_pod_cgroup: spec.cgroup.has_pod_cgroup()
                && !spec.annotations.contains_key("io.kubernetes.pod.uid"),
            execs: AtomicU32::new(0),
        };
        let dir = container.bundle.path().to_owned();
        build_rootfs(&dir.join("rootfs"), &spec.files)?;
        let config = dir.join("config.json");
        fs::write(&config, config_json(&spec, &container.cgroup_path))
            .map_err(|e| format!("{}: {e}", config.display()))?;

        let _lock = CGROUP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let out = file(&dir.join("init.out"))?;
        let err = file(&dir.join("init.err"))?;
        let mut run = runc();
        run.args(["run", "-d", "--bundle"]).arg(&dir).arg(&spec.id);
        run.stdin(Stdio::null()).stdout(out).stderr(err);
        let status = run_bounded(run, RUNC_TIMEOUT)?;
        if !status.success() {
            let log = fs::read_to_string(dir.join("init.err")).unwrap_or_default();
            return Err(format!("runc run {}: {status}: {}", spec.id, log.trim()));
        }
        let state = container.state()?;
        container.init_pid = json_field(&state, "pid")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p > 0);
        container.cgroup_dirs = cgroup_dirs(&container.cgroup_path);
        Ok(container)
    }

    /// Runs `args` in the container (`runc exec`), bounded by [`EXEC_TIMEOUT`].
    pub fn exec(&self, args: &[&str]) -> Result<Output, String> {
        self.exec_timeout(args, EXEC_TIMEOUT)
    }

    /// Like [`Container::exec`] with an explicit bound; the process is killed when it is hit.
    /// Output goes through files, so a background child holding stdout cannot block the test.
    pub fn exec_timeout(&self, args: &[&str], timeout: Duration) -> Result<Output, String> {
        let n = self.execs.fetch_add(1, Ordering::Relaxed);
        let (out_path, err_path) = (
            self.bundle().join(format!("exec{n}.out")),
            self.bundle().join(format!("exec{n}.err")),
        );
        let mut cmd = runc();
        cmd.arg("exec").arg(&self.id).args(args);
        cmd.stdin(Stdio::null())
            .stdout(file(&out_path)?)
            .stderr(file(&err_path)?);
        let status =
            run_bounded(cmd, timeout).map_err(|e| format!("exec {args:?} in {}: {e}", self.id))?;
        let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        Ok(Output {
            status,
            stdout: read(&out_path)?,
            stderr: read(&err_path)?,
        })
    }

    /// Starts `args` in the container and returns without waiting for it (`runc exec -d`):
    /// a command typed into a running container (`kubectl exec`) that goes on by itself.
    pub fn exec_detached(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = runc();
        cmd.args(["exec", "-d", &self.id])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = run_bounded(cmd, RUNC_TIMEOUT)
            .map_err(|e| format!("exec -d {args:?} in {}: {e}", self.id))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("exec -d {args:?} in {}: {status}", self.id))
        }
    }

    /// Container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the container's init process.
    pub fn init_pid(&self) -> Option<u32> {
        self.init_pid
    }

    /// Bundle directory (`config.json`, `rootfs/`, the init's `init.out`/`init.err`).
    pub fn bundle(&self) -> &Path {
        self.bundle.path()
    }

    /// Host path of the root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// The cgroup path the container's processes are in (as `/proc/<pid>/cgroup` shows it).
    pub fn cgroup_path(&self) -> &str {
        &self.cgroup_path
    }

    /// What the init process wrote to stdout so far.
    pub fn init_stdout(&self) -> String {
        fs::read_to_string(self.bundle().join("init.out")).unwrap_or_default()
    }

    /// Waits until the init process has exited (bounded).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "container {} still running after {timeout:?}",
                    self.id
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `runc state` (JSON text).
    pub fn state(&self) -> Result<String, String> {
        let out = runc_output(&["state", &self.id])?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("runc state {}: {}", self.id, err.trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the init process has exited (gone or a zombie: this machine's pid 1 reaps late).
    fn exited(&self) -> Result<bool, String> {
        let Some(pid) = self.init_pid else {
            return Ok(json_field(&self.state()?, "status") == Some("stopped"));
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return Ok(true);
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        Ok(matches!(state, Some("Z" | "X") | None))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = runc_output(&["kill", &self.id, "KILL"]);
        // `delete --force` kills what is left and removes the state; retry while runc races
        // the dying init.
        for _ in 0..20 {
            match runc_output(&["delete", "--force", &self.id]) {
                Ok(out) if out.status.success() => break,
                _ if !runc_list().contains(&self.id) => break,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        if self.remove_pod_cgroup {
            let _lock = CGROUP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            for leaf in &self.cgroup_dirs {
                let _ = fs::remove_dir(leaf);
                if let Some(pod) = leaf.parent() {
                    let _ = fs::remove_dir(pod);
                }
            }
        }
        // The TempDir removes the bundle.
    }
}

/// Kills and deletes containers left by test processes that no longer exist (a test binary
/// killed by a timeout cannot run its destructors). Bundles are named `needle-runc-<owner pid>-…`.
pub fn sweep_stale() {
    let Ok(out) = runc_output(&["list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(id), Some(bundle)) = (fields.first(), fields.get(3)) else {
            continue;
        };
        let Some(owner) = bundle
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_prefix("needle-runc-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() {
            let _ = runc_output(&["delete", "--force", id]);
            let _ = fs::remove_dir_all(bundle);
        }
    }
}

/// Ids of the containers `runc list` knows.
pub fn runc_list() -> Vec<String> {
    runc_output(&["list", "-q"])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn runc() -> Command {
    Command::new(runc_path().unwrap_or_else(|| PathBuf::from("runc")))
}

/// A runc command's output, bounded by [`RUNC_TIMEOUT`].
fn runc_output(args: &[&str]) -> Result<Output, String> {
    let mut cmd = runc();
    cmd.args(args).stdin(Stdio::null());
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdout(file(&o)?).stderr(file(&e)?);
    let status = run_bounded(cmd, RUNC_TIMEOUT).map_err(|err| format!("runc {args:?}: {err}"))?;
    Ok(Output {
        status,
        stdout: fs::read(&o).unwrap_or_default(),
        stderr: fs::read(&e).unwrap_or_default(),
    })
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run_bounded(
    mut cmd: Command,
    timeout: Duration,
) -> Result<std::process::ExitStatus, String> {
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {timeout:?}"));
            }
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

fn file(path: &Path) -> Result<fs::File, String> {
    fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// rootfs: busybox, one symlink per applet in /bin, /etc/passwd and /etc/group (static
/// busybox's `ps`, `id`, `ls -l` crash without them), /tmp, and the caller's files.
pub fn build_rootfs(rootfs: &Path, files: &[(String, Vec<u8>, u32)]) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("rootfs {what}: {e}");
    for dir in ["bin", "etc", "tmp", "root", "proc", "dev", "sys"] {
        fs::create_dir_all(rootfs.join(dir)).map_err(|e| io(dir, e))?;
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))
        .map_err(|e| io("tmp", e))?;
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).map_err(|e| io(BUSYBOX, e))?;
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|e| io("busybox --list", e))?;
    let applets = String::from_utf8_lossy(&list.stdout);
    for applet in applets
        .lines()
        .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox")
    {
        symlink("busybox", rootfs.join("bin").join(applet)).map_err(|e| io(applet, e))?;
    }
    let base = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ];
    for (path, text) in base {
        fs::write(rootfs.join(path), text).map_err(|e| io(path, e))?;
    }
    for (path, contents, mode) in files {
        let rel = Path::new(path.trim_start_matches('/'));
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!("file path {path:?} must stay inside the rootfs"));
        }
        let dest = rootfs.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io(path, e))?;
        }
        let _ = fs::remove_file(&dest);
        fs::write(&dest, contents).map_err(|e| io(path, e))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(*mode)).map_err(|e| io(path, e))?;
    }
    Ok(())
}

/// The `config.json` of `runc spec` (runc 1.1), with: args, terminal off, a writable root, the
/// cgroups path, annotations (plus the owner pid, for [`sweep_stale`]) and optionally no network
/// namespace. Written directly because this crate's library has no JSON dependency.
fn config_json(spec: &ContainerSpec, cgroup_path: &str) -> String {
    let list = |items: &[String]| {
        items
            .iter()
            .map(|s| json_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let args = if spec.args.is_empty() {
        vec!["/bin/sleep".to_owned(), "3600".to_owned()]
    } else {
        spec.args.clone()
    };
    let mut annotations = spec.annotations.clone();
    annotations.insert(OWNER_ANNOTATION.to_owned(), std::process::id().to_string());
    let annotations = annotations
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let namespaces = ["pid", "network", "ipc", "uts", "mount"]
        .iter()
        .filter(|ns| !(spec.share_host_network && **ns == "network"))
        .map(|ns| format!(r#"{{"type": "{ns}"}}"#))
        .collect::<Vec<_>>()
        .join(", ");
    let caps = r#"["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]"#;
    let env = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=xterm",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(spec.env.iter().cloned())
    .collect::<Vec<_>>();
    let mounts = spec
        .mounts
        .iter()
        .map(|(source, destination)| {
            format!(
                r#",
    {{"destination": {}, "type": "bind", "source": {}, "options": ["rbind", "rw"]}}"#,
                json_str(destination),
                json_str(&source.to_string_lossy())
            )
        })
        .collect::<String>();
    format!(
        r#"{{
  "ociVersion": "1.0.2-dev",
  "process": {{
    "terminal": false,
    "user": {{"uid": 0, "gid": 0}},
    "args": [{args}],
    "env": [{env}],
    "cwd": "/",
    "capabilities": {{"bounding": {caps}, "effective": {caps}, "permitted": {caps}, "ambient": {caps}}},
    "rlimits": [{{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}}],
    "noNewPrivileges": true
  }},
  "root": {{"path": "rootfs", "readonly": false}},
  "hostname": {hostname},
  "annotations": {{{annotations}}},
  "mounts": [
    {{"destination": "/proc", "type": "proc", "source": "proc"}},
    {{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}},
    {{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}},
    {{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}},
    {{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}},
    {{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}},
    {{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}}{mounts}
  ],
  "linux": {{
    "cgroupsPath": {cgroups},
    "resources": {{"devices": [{{"allow": false, "access": "rwm"}}]}},
    "namespaces": [{namespaces}],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }}
}}
"#,
        args = list(&args),
        env = list(&env),
        hostname = json_str(&spec.id[..12]),
        cgroups = json_str(cgroup_path),
    )
}

/// The raw value of `"key": value` in runc's JSON output (a number, or a string's contents).
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\":");
    let rest = json[json.find(&needle)? + needle.len()..].trim_start();
    match rest.strip_prefix('"') {
        Some(string) => string.split('"').next(),
        None => rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .filter(|n| !n.is_empty()),
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The directories of `cgroup_path` in every mounted cgroup hierarchy (v1 controllers and v2).
pub fn cgroup_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let fstype = *fields.get(dash + 1)?;
            let mount_point = *fields.get(4)?;
            (matches!(fstype, "cgroup" | "cgroup2") && *fields.get(3)? == "/")
                .then(|| Path::new(mount_point).join(cgroup_path.trim_start_matches('/')))
        })
        .collect()
}
