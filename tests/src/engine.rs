//! What the real-engine harnesses ([`crate::podman`], [`crate::containerd`]) share: bounded
//! commands with their output, the busybox image built locally (no registry), and which
//! tools are installed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::runc::{BUSYBOX, build_rootfs, run_bounded};

/// Bound on every engine command.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` (bounded by `timeout`) with stdout and stderr captured through files, so that a
/// daemon it leaves behind holding a pipe cannot block the test.
pub fn output(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let file = |p: &Path| fs::File::create(p).map_err(|err| format!("{}: {err}", p.display()));
    cmd.stdin(Stdio::null()).stdout(file(&o)?).stderr(file(&e)?);
    let status = run_bounded(cmd, timeout).map_err(|err| format!("{what}: {err}"))?;
    Ok(Output {
        status,
        stdout: fs::read(&o).unwrap_or_default(),
        stderr: fs::read(&e).unwrap_or_default(),
    })
}

/// Like [`output`], and the command must succeed; returns its trimmed stdout.
pub fn checked(cmd: Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out = output(cmd, timeout)?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The first of `names` found in `PATH` or the usual system directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// None when every tool is installed and the machine can run containers; otherwise why not.
pub fn engine_available(engine: &str, tools: &[&str]) -> Option<String> {
    if let Some(why) = crate::runc::runc_available() {
        return Some(why);
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{engine} needs {} (scripts/setup.sh installs them)",
            missing.join(", ")
        )
    })
}

/// A busybox rootfs (as the runc harness builds it, plus the files given) packed as a tar
/// archive at `tar`, with entries relative to the root (`./bin/busybox`, …).
pub fn rootfs_tar(work: &Path, tar: &Path, files: &[(String, Vec<u8>, u32)]) -> Result<(), String> {
    if !Path::new(BUSYBOX).is_file() {
        return Err(format!("{BUSYBOX} is missing"));
    }
    let rootfs = work.join("rootfs");
    build_rootfs(&rootfs, files)?;
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(&rootfs).arg("-cf").arg(tar).arg(".");
    checked(cmd, ENGINE_TIMEOUT).map(drop)
}

/// An OCI image archive (`oci-layout`, `index.json`, `blobs/sha256/…`) of the busybox rootfs,
/// named `reference`; returns its manifest digest (`sha256:…`), computed here independently of
/// any engine.
pub fn oci_archive(work: &Path, reference: &str, archive: &Path) -> Result<String, String> {
    let layout = work.join("oci");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
    let layer = work.join("layer.tar");
    rootfs_tar(work, &layer, &[])?;
    let blob = |path: &Path| -> Result<(String, u64), String> {
        let digest = crate::sha256sum(path);
        if digest.len() != 64 {
            return Err(format!("sha256sum {}: no digest", path.display()));
        }
        let size = fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        fs::copy(path, blobs.join(&digest)).map_err(|e| format!("{digest}: {e}"))?;
        Ok((digest, size))
    };
    let (layer_digest, layer_size) = blob(&layer)?;
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let p = work.join(name);
        fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    };
    let config = write(
        "config.json",
        &format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_digest}"]}}}}"#
        ),
    )?;
    let (config_digest, config_size) = blob(&config)?;
    let manifest = write(
        "manifest.json",
        &format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_digest}","size":{layer_size}}}]}}"#
        ),
    )?;
    let (manifest_digest, manifest_size) = blob(&manifest)?;
    fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_digest}","size":{manifest_size},"annotations":{{"io.containerd.image.name":"{reference}","org.opencontainers.image.ref.name":"{reference}"}},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        ),
    )
    .map_err(|e| format!("index.json: {e}"))?;
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(|e| format!("oci-layout: {e}"))?;
    let mut cmd = Command::new("tar");
    cmd.arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(archive)
        .args(["oci-layout", "index.json", "blobs"]);
    checked(cmd, ENGINE_TIMEOUT)?;
    Ok(format!("sha256:{manifest_digest}"))
}

/// Directories `<tmp>/<prefix>-<pid>-…` left by test processes that no longer exist (a test
/// binary killed by a timeout cannot run its destructors).
pub fn stale_dirs(prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(|e| e.path())
        .collect()
}

/// Unmounts every mount at or below `dir` (deepest first, lazily), so that removing a test's
/// engine state never walks into a container's root filesystem.
pub fn unmount_below(dir: &Path) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH never blocks.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
