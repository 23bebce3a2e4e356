//! Real containerd for tests: a `containerd` daemon started by the test with its root, state
//! and sockets in a temporary directory of its own (the CRI plugin off: `ctr` drives it), the
//! busybox image imported from an OCI archive built locally (no registry), and containers run
//! with `ctr -n k8s.io run` under the runc v2 shim.
//!
//! Dropping [`Containerd`] — also while a test panics — kills and deletes every task and
//! container it made (so the shims exit and runc's state in `/run/containerd/runc/k8s.io` goes),
//! removes the pod cgroups the test asked for, stops the daemon, unmounts what is left below its
//! directory and removes it. What a test killed by a timeout left (its daemon goes on running)
//! is swept by the next test that starts one ([`sweep_stale`]). Every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine::{
    ENGINE_TIMEOUT, checked, engine_available, find_tool, output, stale_dirs, unmount_below,
};

/// The image every container runs.
pub const IMAGE: &str = "localhost/needle-busybox:containerd";
/// The namespace kubelet's containers live in.
pub const NAMESPACE: &str = "k8s.io";

/// None when containerd can run here; otherwise why not.
pub fn containerd_available() -> Option<String> {
    engine_available(
        "containerd",
        &["containerd", "ctr", "containerd-shim-runc-v2", "tar"],
    )
}

/// A running containerd with private state.
pub struct Containerd {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    ctr: PathBuf,
    digest: String,
    /// cgroup directories (every hierarchy) to remove once the containers are gone.
    cgroups: Vec<PathBuf>,
}

/// A container to run.
pub struct Run<'a> {
    /// Container id.
    pub id: &'a str,
    /// `--cgroup` (None: containerd's default, `/k8s.io/<id>`).
    pub cgroup: Option<String>,
    /// `--label key=value` (container labels in containerd's store; ctr also copies them into
    /// the OCI annotations).
    pub labels: &'a [(&'a str, &'a str)],
    /// `--annotation key=value` (OCI annotations only).
    pub annotations: &'a [(&'a str, &'a str)],
    /// The command.
    pub args: &'a [&'a str],
}

impl Containerd {
    /// Starts the daemon (waiting at most 30 s for its socket) and imports [`IMAGE`].
    pub fn start() -> Result<Containerd, String> {
        if let Some(why) = containerd_available() {
            return Err(why);
        }
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale);
        let dir = tempfile::Builder::new()
            .prefix(&format!("needle-containerd-{}-", std::process::id()))
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let d = dir.path();
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("containerd.sock").display(),
            ),
        )
        .map_err(|e| format!("{}: {e}", config.display()))?;
        let log = std::fs::File::create(d.join("containerd.log"))
            .map_err(|e| format!("containerd.log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("containerd.log: {e}"))?;
        let daemon = Command::new(find_tool("containerd").ok_or("containerd is not installed")?)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn containerd: {e}"))?;
        let mut c = Containerd {
            ctr: find_tool("ctr").ok_or("ctr is not installed")?,
            dir,
            daemon: Some(daemon),
            digest: String::new(),
            cgroups: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.ctr(&["version"]).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "containerd did not answer within 30 s: {}",
                    c.log().lines().last().unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let archive = c.dir.path().join("image.tar");
        c.digest = crate::engine::oci_archive(c.dir.path(), IMAGE, &archive)?;
        c.ctr(&["image".as_ref(), "import".as_ref(), archive.as_os_str()])?;
        Ok(c)
    }

    /// The manifest digest of [`IMAGE`], as the test computed it when building the archive.
    pub fn image_digest(&self) -> &str {
        &self.digest
    }

    /// `ctr -n k8s.io run -d …`; returns once the task is running.
    pub fn run(&mut self, run: &Run<'_>) -> Result<(), String> {
        let mut args: Vec<String> = vec!["run".into(), "-d".into()];
        if let Some(cgroup) = &run.cgroup {
            args.push(format!("--cgroup={cgroup}"));
        }
        // runc removes the leaf; the levels above it (`/k8s.io`, a pod's) are removed on drop
        // when empty (a cgroup still in use refuses rmdir).
        let cgroup = run
            .cgroup
            .clone()
            .unwrap_or_else(|| format!("/{NAMESPACE}/{}", run.id));
        let mut path = Path::new(&cgroup);
        while let Some(parent) = path.parent().filter(|p| *p != Path::new("/")) {
            self.cgroups
                .extend(crate::runc::cgroup_dirs(&parent.to_string_lossy()));
            path = parent;
        }
        for (k, v) in run.labels {
            args.push(format!("--label={k}={v}"));
        }
        for (k, v) in run.annotations {
            args.push(format!("--annotation={k}={v}"));
        }
        args.push(IMAGE.into());
        args.push(run.id.into());
        args.extend(run.args.iter().map(|a| a.to_string()));
        self.ctr(&args)?;
        Ok(())
    }

    /// Host pid of a container's task.
    pub fn pid(&self, id: &str) -> Result<u32, String> {
        let list = self.ctr(&["task", "ls"])?;
        list.lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(id)).then(|| f.next()?.parse().ok())?
            })
            .ok_or_else(|| format!("no task {id} in {list:?}"))
    }

    /// The directory holding the daemon's root, state and sockets.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String, String> {
        checked(self.ctr_command(args), ENGINE_TIMEOUT)
    }

    fn ctr_command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        ctr_command(&self.ctr, self.dir.path(), args)
    }
}

/// Removes what test processes that no longer exist left: every task and container of their
/// daemon (still running: it outlives a killed test), the daemon, mounts and directories.
pub fn sweep_stale() {
    let Some(ctr) = find_tool("ctr") else {
        return;
    };
    for dir in stale_dirs("needle-containerd") {
        let config = dir.join("config.toml");
        let daemon = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.split(|b| *b == 0)
                        .any(|arg| arg == config.as_os_str().as_encoded_bytes())
                })
            });
        remove_all(&ctr, &dir);
        if let Some(pid) = daemon {
            // SAFETY: a plain signal to the daemon a dead test process started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        unmount_below(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `ctr --address <dir>/containerd.sock --namespace k8s.io <args>`.
fn ctr_command<S: AsRef<std::ffi::OsStr>>(ctr: &Path, dir: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(ctr);
    cmd.arg("--address")
        .arg(dir.join("containerd.sock"))
        .args(["--namespace", NAMESPACE])
        .args(args);
    cmd
}

/// Kills and deletes every task and container of the daemon in `dir` (so the shims exit and
/// runc's state goes).
fn remove_all(ctr: &Path, dir: &Path) {
    let list = |what: &str| -> Vec<String> {
        output(
            ctr_command(ctr, dir, &[what, "ls", "--quiet"]),
            Duration::from_secs(20),
        )
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    let quiet = |args: &[&str]| {
        let _ = output(ctr_command(ctr, dir, args), Duration::from_secs(20));
    };
    for id in list("task") {
        quiet(&["task", "kill", "--signal", "SIGKILL", &id]);
    }
    for id in list("task") {
        // `task rm --force` waits for the kill; retried briefly while the task dies.
        for _ in 0..20 {
            let gone = output(
                ctr_command(ctr, dir, &["task", "rm", "--force", &id]),
                Duration::from_secs(20),
            )
            .is_ok_and(|o| {
                o.status.success() || String::from_utf8_lossy(&o.stderr).contains("not found")
            });
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for id in list("container") {
        quiet(&["container", "rm", &id]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        remove_all(&self.ctr, self.dir.path());
        if let Some(mut daemon) = self.daemon.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // Deepest first: the pod's slices and directories, once their containers are gone.
        self.cgroups
            .sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for dir in &self.cgroups {
            let _ = std::fs::remove_dir(dir);
        }
        unmount_below(self.dir.path());
        // The TempDir removes root, state and sockets.
    }
}
