//! Resolver and metadata tests on fixture files (shaped like real runc, crun, OCI and Docker
//! files; `runc-state.json` and `config.json` were written by runc 1.1) in temporary trees.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::*;

const ID: &str = "3f4b1c2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";
const DOCKER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const POD_SLICE: &str = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_5f60_4a7b_8c9d_0e1f2a3b4c5d.slice";

const RUNC_STATE: &str = include_str!("testdata/runc-state.json");
const OCI_CONFIG: &str = include_str!("testdata/config.json");
const PRIVILEGED_CONFIG: &str = include_str!("testdata/privileged-config.json");
const CRUN_STATUS: &str = include_str!("testdata/crun-status.json");
const DOCKER_CONFIG: &str = include_str!("testdata/docker-config.v2.json");

/// A fake host: runtime dirs and a fake cgroup2 tree under one temporary directory.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        Host {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, contents).expect("write");
        path
    }
    fn roots(&self) -> RuntimeRoots {
        RuntimeRoots {
            state_dirs: vec![self.path("run/runc"), self.path("run/crun")],
            bundle_dirs: vec![self.path("run/containerd/task")],
            docker_dir: Some(self.path("var/lib/docker/containers")),
        }
    }
    /// Creates a cgroup directory and returns its id (inode).
    fn cgroup(&self, rel: &str) -> u64 {
        let path = self.path("cgroup").join(rel.trim_start_matches('/'));
        fs::create_dir_all(&path).expect("mkdir cgroup");
        fs::metadata(&path).expect("stat").ino()
    }
    fn resolver(&self) -> ContainerResolver {
        fs::create_dir_all(self.path("cgroup")).expect("mkdir");
        ContainerResolver::new(self.path("cgroup"), self.roots())
    }
    /// runc state + bundle for container `id`.
    fn runc_container(&self, id: &str) -> PathBuf {
        let bundle = self.path(&format!("bundles/{id}"));
        let state = RUNC_STATE.replace("@BUNDLE@", &bundle.to_string_lossy());
        self.write(&format!("run/runc/{id}/state.json"), &state);
        self.write(&format!("bundles/{id}/config.json"), OCI_CONFIG);
        bundle
    }
}

fn container(r: Resolution) -> Arc<ContainerInfo> {
    match r {
        Resolution::Container(info) => info,
        other => panic!("expected a container, got {other:?}"),
    }
}

#[test]
fn kubernetes_container_from_runc_state_and_bundle() {
    let host = Host::new();
    let bundle = host.runc_container(ID);
    let cgroup_id = host.cgroup(&format!("{POD_SLICE}/cri-containerd-{ID}.scope"));
    let mut resolver = host.resolver();
    let info = container(resolver.resolve(cgroup_id));

    let c = &info.container;
    assert_eq!(&*c.id, ID);
    assert_eq!(c.runtime.as_deref(), Some("containerd"));
    assert_eq!(c.name.as_deref(), Some("nginx"));
    assert_eq!(c.pod.as_deref(), Some("web-0"));
    assert_eq!(c.namespace.as_deref(), Some("shop"));
    assert_eq!(c.image.as_deref(), Some("docker.io/library/nginx:1.27"));
    let labels: serde_json::Value =
        serde_json::from_str(c.labels.as_deref().expect("labels")).expect("labels are JSON");
    assert_eq!(
        labels["io.kubernetes.pod.uid"],
        "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
    );
    assert!(
        labels.get("bundle").is_none(),
        "runc's bundle= label is not an annotation"
    );
    let keys: Vec<_> = labels
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "labels have sorted keys");

    assert_eq!(
        info.cgroup_path,
        format!("/{POD_SLICE}/cri-containerd-{ID}.scope")
    );
    assert_eq!(info.facts.init_pid, Some(3996));
    assert_eq!(
        info.facts.created_ns,
        rfc3339::parse_ns("2026-11-23T07:54:52.369985638Z")
    );
    assert!(info.facts.created_ns.is_some());
    assert_eq!(info.facts.bundle.as_deref(), Some(bundle.as_path()));
    assert_eq!(info.facts.rootfs, Some(bundle.join("rootfs")));
    assert_eq!(info.facts.hostname.as_deref(), Some("web-0"));
    assert_eq!(info.facts.privileged, Some(false));
    assert_eq!(info.facts.capabilities.len(), 3);
    assert_eq!(info.facts.host_mounts, ["/tmp/needle-hostdata"]);
    assert_eq!(info.facts.shared_namespaces, ["cgroup"]);

    let stats = resolver.stats();
    assert_eq!(
        (stats.misses, stats.rescans, stats.metadata_missing),
        (1, 1, 0)
    );
    assert_eq!(stats.metadata_errors, 0);
    // Cached: same Arc, no new walk, no new read.
    assert!(Arc::ptr_eq(&info, &container(resolver.resolve(cgroup_id))));
    assert_eq!(resolver.stats().hits, 1);
    assert_eq!(resolver.stats().rescans, 1);
}

#[test]
fn one_walk_serves_many_ids_and_storms_are_rate_limited() {
    let host = Host::new();
    let sshd = host.cgroup("system.slice/sshd.service");
    let session = host.cgroup("user.slice/user-0.slice/session-3.scope");
    let root = host.cgroup("");
    let docker = host.cgroup(&format!("docker/{DOCKER_ID}"));
    let mut resolver = host
        .resolver()
        .with_rescan_interval(Duration::from_secs(3600));

    assert_eq!(
        resolver.resolve(sshd),
        Resolution::Host("host:sshd.service".into())
    );
    assert_eq!(
        resolver.resolve(session),
        Resolution::Host("host:session-3.scope".into())
    );
    assert_eq!(resolver.resolve(root), Resolution::Host("host".into()));
    let info = container(resolver.resolve(docker));
    assert_eq!(info.container.runtime.as_deref(), Some("docker"));
    assert_eq!(
        resolver.stats().rescans,
        1,
        "one walk mapped every directory"
    );

    // A storm of unknown ids costs no walk within the interval.
    for id in 0..10_000u64 {
        assert_eq!(resolver.resolve(u64::MAX - id), Resolution::Unknown);
    }
    let stats = resolver.stats();
    assert_eq!((stats.rescans, stats.unknown), (1, 10_000));

    // A cgroup created after the walk is found once a walk is allowed again.
    let late = host.cgroup(ID);
    assert_eq!(resolver.resolve(late), Resolution::Unknown);
    resolver.rescan_interval = Duration::ZERO;
    let info = container(resolver.resolve(late));
    assert_eq!(info.container.runtime.as_deref(), Some("runc"));
    assert_eq!(resolver.stats().rescans, 2);
}

#[test]
fn missing_state_still_names_the_container_and_is_retried() {
    let host = Host::new();
    let cgroup_id = host.cgroup(&format!("machine.slice/libpod-{ID}.scope/container"));
    let mut resolver = host.resolver();
    resolver.metadata_retry = Duration::ZERO;
    let info = container(resolver.resolve(cgroup_id));
    assert_eq!(&*info.container.id, ID);
    assert_eq!(info.container.runtime.as_deref(), Some("podman"));
    assert_eq!(info.container.name, None);
    assert_eq!(
        (
            info.facts.init_pid,
            info.facts.privileged,
            info.facts.bundle.as_ref()
        ),
        (None, None, None)
    );
    assert_eq!(resolver.stats().metadata_missing, 1);

    // The runtime writes its state a moment later (crun here): the next lookup finds it.
    let bundle = host.path("bundles/podman");
    host.write(
        &format!("run/crun/{ID}/status"),
        &CRUN_STATUS
            .replace("@ID@", ID)
            .replace("@BUNDLE@", &bundle.to_string_lossy()),
    );
    host.write("bundles/podman/config.json", PRIVILEGED_CONFIG);
    let info = container(resolver.resolve(cgroup_id));
    assert_eq!(info.facts.init_pid, Some(5151));
    assert_eq!(
        info.facts.created_ns,
        rfc3339::parse_ns("2026-11-21T08:30:00.000000001Z")
    );
    assert_eq!(
        info.facts.rootfs.as_deref(),
        Some(Path::new("/var/lib/containers/storage/overlay/abc/merged"))
    );
    assert_eq!(info.facts.privileged, Some(true));
    assert_eq!(info.facts.host_mounts, ["/", "/run/docker.sock"]);
    assert_eq!(info.facts.shared_namespaces, ["pid", "cgroup"]);
    assert_eq!(info.facts.hostname, None);
    assert_eq!(resolver.stats().metadata_missing, 1);
}

#[test]
fn retries_are_bounded() {
    let host = Host::new();
    let cgroup_id = host.cgroup(ID);
    let mut resolver = host.resolver();
    resolver.metadata_retry = Duration::ZERO;
    for _ in 0..100 {
        container(resolver.resolve(cgroup_id));
    }
    // The first read plus METADATA_ATTEMPTS - 1 retries; then the answer is final.
    assert!(!resolver.resolved[&cgroup_id].provisional);
    assert_eq!(resolver.stats().metadata_missing, 1);
}

#[test]
fn docker_config_v2() {
    let host = Host::new();
    host.write(
        &format!("var/lib/docker/containers/{DOCKER_ID}/config.v2.json"),
        DOCKER_CONFIG,
    );
    let cgroup_id = host.cgroup(&format!("system.slice/docker-{DOCKER_ID}.scope"));
    let info = container(host.resolver().resolve(cgroup_id));
    let c = &info.container;
    assert_eq!(c.name.as_deref(), Some("quirky_web"));
    assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(c.runtime.as_deref(), Some("docker"));
    assert_eq!(c.pod, None);
    assert_eq!(
        c.labels.as_deref(),
        Some(
            r#"{"com.example.team":"web","maintainer":"NGINX Docker Maintainers <docker-maint@nginx.com>"}"#
        )
    );
    assert_eq!(
        info.facts.created_ns,
        rfc3339::parse_ns("2026-11-20T10:00:00.5Z")
    );
    assert_eq!(info.facts.hostname.as_deref(), Some("0123456789ab"));
    assert_eq!(info.facts.privileged, None, "no OCI config found");
}

#[test]
fn bundle_found_by_id_when_there_is_no_state() {
    let host = Host::new();
    host.write(&format!("run/containerd/task/{ID}/config.json"), OCI_CONFIG);
    let (meta, errors) = runtime::read_metadata(&host.roots(), Runtime::Containerd, ID);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(meta.found);
    assert_eq!(
        meta.facts.bundle,
        Some(host.path(&format!("run/containerd/task/{ID}")))
    );
    assert_eq!(meta.annotations["io.kubernetes.container.name"], "nginx");
}

#[test]
fn broken_files_are_counted_not_fatal() {
    let host = Host::new();
    host.write(
        &format!("run/runc/{ID}/state.json"),
        "{\"init_process_pid\": \"nope\"",
    );
    host.write(&format!("run/crun/{ID}/status"), "\u{0}\u{ff}garbage");
    let big = format!(
        "{{\"Name\": \"/{}\"}}",
        "x".repeat(runtime::MAX_FILE_BYTES as usize)
    );
    host.write(
        &format!("var/lib/docker/containers/{ID}/config.v2.json"),
        &big,
    );
    let (meta, errors) = runtime::read_metadata(&host.roots(), Runtime::Containerd, ID);
    assert!(!meta.found);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(matches!(errors[0], MetadataError::Json { .. }));
    assert!(matches!(errors[2], MetadataError::TooLarge { .. }));
    assert!(
        errors[0].to_string().contains("state.json"),
        "{}",
        errors[0]
    );

    let cgroup_id = host.cgroup(&format!("docker/{ID}"));
    let mut resolver = host.resolver();
    let info = container(resolver.resolve(cgroup_id));
    assert_eq!(info.container.runtime.as_deref(), Some("docker"));
    assert_eq!(resolver.stats().metadata_errors, 3);
    assert_eq!(resolver.stats().metadata_missing, 1);
}

#[test]
fn long_annotation_values_are_cut_on_a_char_boundary() {
    let host = Host::new();
    let long = "é".repeat(runtime::MAX_VALUE_BYTES);
    let config =
        serde_json::json!({ "annotations": { "big": long, "io.kubernetes.pod.name": "p" } });
    host.write(
        &format!("run/containerd/task/{ID}/config.json"),
        &config.to_string(),
    );
    let (meta, _) = runtime::read_metadata(&host.roots(), Runtime::Containerd, ID);
    assert_eq!(meta.annotations["big"].len(), runtime::MAX_VALUE_BYTES);
    assert_eq!(meta.annotations["io.kubernetes.pod.name"], "p");
}

#[test]
fn ids_are_validated_before_touching_paths() {
    let host = Host::new();
    host.write("run/runc/../../etc/state.json", "{}");
    let (meta, errors) = runtime::read_metadata(&host.roots(), Runtime::Runc, "../../etc");
    assert!(!meta.found && errors.is_empty());
}

#[test]
fn forget_drops_the_cgroup_and_its_unused_container() {
    let host = Host::new();
    host.runc_container(ID);
    let a = host.cgroup(ID);
    let b = host.cgroup(&format!("{ID}/sub"));
    let mut resolver = host.resolver();
    let first = container(resolver.resolve(a));
    assert!(
        Arc::ptr_eq(&first, &container(resolver.resolve(b))),
        "one read per container"
    );
    resolver.forget(a);
    assert!(resolver.containers.contains_key(ID), "still used by {b}");
    resolver.forget(b);
    assert!(resolver.containers.is_empty() && resolver.resolved.is_empty());
}

#[test]
fn walk_maps_inodes_to_paths_with_bounded_depth() {
    let host = Host::new();
    let root = host.path("cgroup");
    let mut deep = root.clone();
    for i in 0..walk::MAX_DEPTH + 4 {
        deep.push(format!("d{i}"));
    }
    fs::create_dir_all(&deep).expect("mkdir");
    fs::create_dir_all(root.join("a b/c")).expect("mkdir");
    fs::write(root.join("a b/file"), "not a dir").expect("write");
    std::os::unix::fs::symlink(&root, root.join("loop")).expect("symlink");

    let paths = walk::cgroup_paths(&root);
    let ino = |p: &Path| fs::metadata(p).expect("stat").ino();
    assert_eq!(paths[&ino(&root)], "/");
    assert_eq!(paths[&ino(&root.join("a b/c"))], "/a b/c");
    assert!(
        !paths
            .values()
            .any(|p| p.contains("file") || p.contains("loop"))
    );
    let mut dir = root.clone();
    for i in 0..walk::MAX_DEPTH + 4 {
        dir.push(format!("d{i}"));
        let found = paths.get(&ino(&dir));
        if i < walk::MAX_DEPTH {
            assert_eq!(
                found.map(|p| p.matches('/').count()),
                Some(i + 1),
                "depth {i}"
            );
        } else {
            assert_eq!(found, None, "depth {i} is below the bound");
        }
    }
    assert!(walk::cgroup_paths(&host.path("missing")).is_empty());
}

#[test]
fn cgroup2_mount_point_from_mountinfo() {
    let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    assert_eq!(
        cgroup2_root_from_mountinfo(hybrid),
        Some("/sys/fs/cgroup/unified".into())
    );
    let pure = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        cgroup2_root_from_mountinfo(pure),
        Some("/sys/fs/cgroup".into())
    );
    let nested = "50 40 0:30 /kubepods /host\\040cg rw - cgroup2 cgroup2 rw\n\
                  51 40 0:30 / /mnt/cg rw - cgroup2 cgroup2 rw\n";
    assert_eq!(cgroup2_root_from_mountinfo(nested), Some("/mnt/cg".into()));
    let only_nested = "50 40 0:30 /kubepods /host\\040cg rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        cgroup2_root_from_mountinfo(only_nested),
        Some("/host cg".into())
    );
    assert_eq!(cgroup2_root_from_mountinfo("garbage\n - cgroup2\n"), None);
    assert_eq!(cgroup2_root_from_mountinfo(""), None);
}

/// On a real host: our own cgroup id resolves through the real cgroup2 tree.
#[test]
fn resolves_this_process_on_the_real_cgroup2_tree() {
    let Some(root) = ContainerResolver::detect_cgroup2_root() else {
        eprintln!("SKIP: no cgroup2 mount here");
        return;
    };
    let own = fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup2 line");
    let id = fs::metadata(root.join(path.trim_start_matches('/')))
        .expect("stat own cgroup")
        .ino();
    let mut resolver = ContainerResolver::new(root, RuntimeRoots::default());
    let expected = match parse_cgroup_path(path) {
        Some((_, cid)) => cid,
        None => {
            assert_eq!(
                resolver.resolve(id),
                Resolution::Host(host_workload_key(path).into())
            );
            return;
        }
    };
    assert_eq!(&*container(resolver.resolve(id)).container.id, expected);
}

/// Throughput of cached lookups (the event path). `cargo test --release -p capture --lib
/// hit_path_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "measurement; run with --release"]
fn hit_path_throughput() {
    let host = Host::new();
    host.runc_container(ID);
    let ids: Vec<u64> = (0..64)
        .map(|i| host.cgroup(&format!("{ID}/sub{i}")))
        .chain((0..64).map(|i| host.cgroup(&format!("system.slice/unit{i}.service"))))
        .collect();
    let mut resolver = host.resolver();
    let n = 10_000_000u64;
    let start = Instant::now();
    let mut containers = 0u64;
    for i in 0..n {
        let id = ids[(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) as usize];
        containers += u64::from(matches!(resolver.resolve(id), Resolution::Container(_)));
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{:.1} M lookups/s ({containers} containers)",
        n as f64 / secs / 1e6
    );
    assert_eq!(resolver.stats().misses, 128);
}
