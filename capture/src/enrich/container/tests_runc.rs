//! The resolver against a real runc container on this host (root only; says SKIP otherwise):
//! the kernel's cgroup id is the directory's inode, and runc's own state and bundle are read.

use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::*;

/// Deletes the container however the test ends.
struct Guard<'a>(&'a str);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", self.0])
            .status();
    }
}

/// The kernel's id for a cgroup2 directory: its file handle (what `bpf_get_current_cgroup_id`
/// returns for tasks in it).
fn kernel_cgroup_id(dir: &Path) -> Option<u64> {
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        id: [u8; 128],
    }
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut handle = Handle {
        bytes: 128,
        kind: 0,
        id: [0; 128],
    };
    let mut mount_id = 0;
    // SAFETY: `handle` is a file_handle header followed by 128 bytes, as `bytes` says.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            path.as_ptr(),
            (&raw mut handle).cast(),
            &mut mount_id,
            0,
        )
    };
    (rc == 0 && handle.bytes == 8)
        .then(|| u64::from_ne_bytes(handle.id[..8].try_into().unwrap_or_default()))
}

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root");
    }
    if !Path::new("/bin/busybox").exists()
        || Command::new("runc").arg("--version").output().is_err()
    {
        return Some("runc or busybox-static missing (scripts/setup.sh)");
    }
    None
}

#[test]
fn resolves_a_real_runc_container() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP resolves_a_real_runc_container: {why}");
        return;
    }
    let Some(root) = ContainerResolver::detect_cgroup2_root() else {
        eprintln!("SKIP resolves_a_real_runc_container: no cgroup2 mount");
        return;
    };
    let id: String = fs::read("/proc/sys/kernel/random/uuid")
        .map(|u| {
            u.iter()
                .filter(|b| b.is_ascii_hexdigit())
                .map(|b| *b as char)
                .collect()
        })
        .expect("uuid");
    let id = format!("{id}{id}");
    assert!(is_container_id(&id), "{id}");

    let dir = tempfile::tempdir().expect("tempdir");
    let (bundle, hostdata) = (dir.path().join("bundle"), dir.path().join("hostdata"));
    fs::create_dir_all(bundle.join("rootfs/bin")).expect("mkdir");
    fs::create_dir_all(&hostdata).expect("mkdir");
    fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/sleep")).expect("symlink");
    let mut config: serde_json::Value =
        serde_json::from_str(include_str!("testdata/config.json")).expect("fixture");
    let cgroup_path = format!("/system.slice/docker-{id}.scope");
    config["process"]["args"] = serde_json::json!(["/bin/sleep", "60"]);
    config["linux"]["cgroupsPath"] = cgroup_path.clone().into();
    for mount in config["mounts"].as_array_mut().expect("mounts") {
        if mount["type"] == "bind" {
            mount["source"] = hostdata.to_string_lossy().as_ref().into();
        }
    }
    fs::write(bundle.join("config.json"), config.to_string()).expect("config.json");

    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let _guard = Guard(&id);
    let status = Command::new("runc")
        .args(["run", "-d", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runc run");
    assert!(status.success(), "runc run: {status}");

    let cgroup_dir = root.join(cgroup_path.trim_start_matches('/'));
    let cgroup_id = fs::metadata(&cgroup_dir).expect("container cgroup").ino();
    let kernel_id = kernel_cgroup_id(&cgroup_dir).expect("cgroup2 file handle");
    assert_eq!(kernel_id, cgroup_id, "cgroup id is the directory inode");
    let procs = fs::read_to_string(cgroup_dir.join("cgroup.procs")).expect("cgroup.procs");
    let init: u32 = procs
        .lines()
        .next()
        .and_then(|l| l.parse().ok())
        .expect("init pid");

    let mut resolver = ContainerResolver::new(root, RuntimeRoots::default());
    let Resolution::Container(info) = resolver.resolve(cgroup_id) else {
        panic!("not resolved as a container");
    };
    let c = &info.container;
    assert_eq!(&*c.id, id);
    assert_eq!(c.runtime.as_deref(), Some("docker"));
    assert_eq!(c.name.as_deref(), Some("nginx"));
    assert_eq!(c.pod.as_deref(), Some("web-0"));
    assert_eq!(c.namespace.as_deref(), Some("shop"));
    assert_eq!(info.cgroup_path, cgroup_path);
    assert_eq!(info.facts.init_pid, Some(init));
    assert_eq!(info.facts.bundle.as_deref(), Some(bundle.as_path()));
    assert_eq!(info.facts.rootfs, Some(bundle.join("rootfs")));
    assert_eq!(info.facts.host_mounts, [hostdata.to_string_lossy()]);
    assert_eq!(info.facts.privileged, Some(false));
    let created = info.facts.created_ns.expect("created");
    assert!(
        created >= before - 1_000_000_000 && created < before + 60_000_000_000,
        "{created} vs {before}"
    );
    assert_eq!(resolver.stats().metadata_errors, 0);
}
