//! Real podman for tests: rootful podman 4 with its storage, run and tmp directories in a
//! temporary directory of the test's own (nothing touches `/var/lib/containers`), the `vfs`
//! driver, the runc runtime and the cgroupfs manager (this machine has no systemd, and crun
//! refuses its hybrid cgroup layout), `default_ulimits = []` (the sandbox refuses to raise
//! RLIMIT_NOFILE), no network (`--network none`: loopback only), and a busybox image imported
//! from a local tarball (no registry).
//!
//! Dropping [`Podman`] — also while a test panics — removes every container and pod it made
//! (`rm --force`, which kills them and deletes their runc state and cgroups), podman's empty
//! `/libpod_parent` cgroup, then its directory; what a test killed by a timeout left is swept
//! by the next one ([`sweep_stale`]). Every command is bounded.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::engine::{
    ENGINE_TIMEOUT, checked, engine_available, find_tool, output, stale_dirs, unmount_below,
};

/// The image every container runs.
pub const IMAGE: &str = "localhost/needle-busybox:podman";

/// None when podman can run here; otherwise why not.
pub fn podman_available() -> Option<String> {
    engine_available("podman", &["podman", "conmon", "tar"])
}

/// A podman with private storage.
pub struct Podman {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Podman {
    /// Writes the configuration and imports [`IMAGE`].
    pub fn new() -> Result<Podman, String> {
        if let Some(why) = podman_available() {
            return Err(why);
        }
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale);
        let dir = tempfile::Builder::new()
            .prefix(&format!("needle-podman-{}-", std::process::id()))
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let conf = dir.path().join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let podman = Podman {
            bin: find_tool("podman").ok_or("podman is not installed")?,
            dir,
        };
        let tar = podman.dir.path().join("rootfs.tar");
        crate::engine::rootfs_tar(podman.dir.path(), &tar, &[])?;
        podman.run(&["import".as_ref(), tar.as_os_str(), IMAGE.as_ref()])?;
        Ok(podman)
    }

    /// `podman <args>` with this instance's storage; its trimmed stdout, or an error with stderr.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String, String> {
        checked(self.command(args), ENGINE_TIMEOUT)
    }

    /// The manifest digest podman reports for [`IMAGE`].
    pub fn image_digest(&self) -> Result<String, String> {
        self.run(&["image", "inspect", "--format", "{{.Digest}}", IMAGE])
    }

    /// Host pid of a running container's init process.
    pub fn pid(&self, container: &str) -> Result<u32, String> {
        let pid = self.run(&["inspect", "--format", "{{.State.Pid}}", container])?;
        pid.parse()
            .map_err(|_| format!("podman inspect {container}: pid {pid:?}"))
    }

    /// The directory holding this instance's storage (`root/`), run root (`run/`) and tmp.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The global options that select this instance's storage, for buildah.
    pub fn storage_options(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            format!("--root={}", d.join("root").display()),
            format!("--runroot={}", d.join("run").display()),
            "--storage-driver=vfs".to_owned(),
        ]
    }

    fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        command(&self.bin, self.dir.path(), args)
    }
}

/// Removes what test processes that no longer exist left: their containers and pods (through
/// their own storage) and their directories.
pub fn sweep_stale() {
    let Some(bin) = find_tool("podman") else {
        return;
    };
    for dir in stale_dirs("needle-podman") {
        clean(&bin, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Removes every container and pod of the storage in `dir`, and what they left mounted.
fn clean(bin: &Path, dir: &Path) {
    for args in [
        &["rm", "--all", "--force", "--time", "0"][..],
        &["pod", "rm", "--all", "--force"][..],
    ] {
        if let Err(e) = output(command(bin, dir, args), ENGINE_TIMEOUT) {
            eprintln!("podman clean-up: {e}");
        }
    }
    unmount_below(dir);
    // podman's cgroupfs parent, when no other container uses it (rmdir refuses then).
    for cgroup in crate::runc::cgroup_dirs("/libpod_parent") {
        let _ = std::fs::remove_dir(cgroup);
    }
}

/// `podman <args>` on the storage in `dir`.
fn command<S: AsRef<std::ffi::OsStr>>(bin: &Path, d: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(bin);
    // conmon leaves files (an `oom` marker) in its working directory.
    cmd.current_dir(d)
        .env("CONTAINERS_CONF", d.join("containers.conf"))
        .arg("--root")
        .arg(d.join("root"))
        .arg("--runroot")
        .arg(d.join("run"))
        .arg("--tmpdir")
        .arg(d.join("tmp"))
        .args(["--storage-driver", "vfs", "--runtime", "runc"])
        .args(["--cgroup-manager", "cgroupfs"])
        .args(args);
    cmd
}

impl Drop for Podman {
    fn drop(&mut self) {
        clean(&self.bin, self.dir.path());
        // The TempDir removes storage, run and tmp directories.
    }
}

/// The cgroup path (as `/proc/<pid>/cgroup` shows it, the `0::` line) of process `pid`.
pub fn cgroup_of(pid: u32) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("cgroup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}
