//! Pure parsing of cgroup v2 paths: which runtime and container id a path belongs to, and a
//! stable workload key for host (non-container) cgroups.
//!
//! Paths are the ones `/proc/<pid>/cgroup` shows after `0::` (relative to the cgroup2 root,
//! with a leading `/`). The last matching component wins, so a container nested in another
//! container is attributed to the innermost one.

/// The container runtime a cgroup path points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Docker (`/docker/<id>`, `docker-<id>.scope`).
    Docker,
    /// containerd's CRI plugin (`cri-containerd-<id>.scope`, `:cri-containerd:<id>`, and the
    /// cgroupfs-driver Kubernetes form `/kubepods/<qos>/pod<uid>/<id>`), and containerd's own
    /// default for the `k8s.io` namespace, `/k8s.io/<id>` (`ctr -n k8s.io run`, and CRI with
    /// no cgroup parent).
    Containerd,
    /// CRI-O (`crio-<id>.scope`, `crio-<id>`).
    CriO,
    /// podman (`libpod-<id>.scope` with the systemd manager, `/libpod_parent/libpod-<id>` with
    /// cgroupfs).
    Podman,
    /// Plain runc with a top-level cgroups path (`/<id>`).
    Runc,
}

impl Runtime {
    /// The name written into traces.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Runc => "runc",
        }
    }
}

/// Unit-name prefixes (systemd driver: `<prefix>-<id>.scope`; colon form `<slice>:<prefix>:<id>`).
/// `crio-conmon-<id>` and `libpod-conmon-<id>` are the runtimes' monitors, not containers: they
/// never match because `conmon-<id>` is not an id.
const PREFIXES: [(&str, Runtime); 4] = [
    ("docker", Runtime::Docker),
    ("cri-containerd", Runtime::Containerd),
    ("crio", Runtime::CriO),
    ("libpod", Runtime::Podman),
];

/// Container id (64 lowercase hex) and runtime found in a cgroup path, or None for host cgroups.
pub fn parse_cgroup_path(path: &str) -> Option<(Runtime, String)> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    components
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, c)| parse_component(c, &components[..i]))
        .map(|(runtime, id)| (runtime, id.to_owned()))
}

/// One path component; `ancestors` are the components above it (for bare ids).
fn parse_component<'a>(component: &'a str, ancestors: &[&str]) -> Option<(Runtime, &'a str)> {
    if is_container_id(component) {
        return bare_id_runtime(ancestors).map(|runtime| (runtime, component));
    }
    // `<slice>:<prefix>:<id>`: the systemd-driver cgroupsPath used literally as a directory
    // (seen with containerd/CRI on cgroupfs hosts and in kind).
    let mut colon = component.rsplitn(3, ':');
    if let (Some(id), Some(prefix), Some(_slice)) = (colon.next(), colon.next(), colon.next()) {
        return PREFIXES
            .iter()
            .find(|(p, _)| *p == prefix)
            .filter(|_| is_container_id(id))
            .map(|(_, runtime)| (*runtime, id));
    }
    for (prefix, runtime) in PREFIXES {
        let Some(rest) = component
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
        else {
            continue;
        };
        // systemd driver: `<prefix>-<id>.scope`; the cgroupfs drivers of CRI-O (`crio-<id>`)
        // and podman (`libpod-<id>`, under `/libpod_parent` or a pod's cgroup).
        let id = match rest.strip_suffix(".scope") {
            Some(id) => id,
            None if matches!(runtime, Runtime::CriO | Runtime::Podman) => rest,
            None => continue,
        };
        if is_container_id(id) {
            return Some((runtime, id));
        }
    }
    None
}

/// Runtime of a component that is a bare id, decided by where it sits.
fn bare_id_runtime(ancestors: &[&str]) -> Option<Runtime> {
    match ancestors {
        [] => Some(Runtime::Runc),
        [.., "docker"] => Some(Runtime::Docker),
        // containerd's default cgroup, `/<namespace>/<id>`, for its Kubernetes namespace.
        ["k8s.io"] => Some(Runtime::Containerd),
        // Amazon ECS (Docker, cgroupfs): `/ecs/<task id>/<id>`.
        [.., "ecs", _task] => Some(Runtime::Docker),
        // cgroupfs-driver Kubernetes: `/kubepods/<qos>/pod<uid>/<id>` or `/kubepods/pod<uid>/<id>`.
        // The path alone cannot tell containerd from dockershim; containerd is today's default.
        [.., pod] if pod.starts_with("pod") && ancestors.contains(&"kubepods") => {
            Some(Runtime::Containerd)
        }
        _ => None,
    }
}

/// Exactly 64 lowercase hexadecimal characters.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A stable workload key for a host (non-container) cgroup path: the innermost systemd unit
/// (`host:sshd.service`, `host:session-3.scope`, `host:user@0.service`) or `host`.
///
/// A unit's own `init.scope` (the user manager's process) is attributed to its enclosing unit.
pub fn host_workload_key(path: &str) -> String {
    let units: Vec<&str> = path
        .split('/')
        .filter(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .collect();
    let unit = match units.as_slice() {
        [] => return "host".to_owned(),
        [.., parent, "init.scope"] => parent,
        [.., last] => last,
    };
    format!("host:{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4b1c2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parsed(path: &str) -> Option<(Runtime, String)> {
        parse_cgroup_path(path)
    }

    #[test]
    fn every_layout_of_issue_5() {
        let pod = "kubepods-besteffort-pod1b2c3d4e_5f60_4a7b_8c9d_0e1f2a3b4c5d.slice";
        let cases = [
            (format!("/docker/{ID}"), Runtime::Docker),
            (format!("/system.slice/docker-{ID}.scope"), Runtime::Docker),
            (
                format!("/system.slice/cri-containerd-{ID}.scope"),
                Runtime::Containerd,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/{pod}/cri-containerd-{ID}.scope"
                ),
                Runtime::Containerd,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda.slice/crio-{ID}.scope"
                ),
                Runtime::CriO,
            ),
            (
                format!("/kubepods.slice/kubepods-podb.slice/docker-{ID}.scope"),
                Runtime::Docker,
            ),
            (format!("/{pod}:cri-containerd:{ID}"), Runtime::Containerd),
            (
                format!("/kubelet.slice/kubelet-kubepods.slice/{pod}:cri-containerd:{ID}"),
                Runtime::Containerd,
            ),
            (format!("/system.slice:docker:{ID}"), Runtime::Docker),
            (format!("/x.slice:crio:{ID}"), Runtime::CriO),
            (
                format!("/kubepods/burstable/pod1234-ab/{ID}"),
                Runtime::Containerd,
            ),
            (
                format!("/kubepods/besteffort/pod1234-ab/{ID}"),
                Runtime::Containerd,
            ),
            (format!("/kubepods/pod1234-ab/{ID}"), Runtime::Containerd),
            (
                format!("/kubelet/kubepods/pod1234-ab/{ID}"),
                Runtime::Containerd,
            ),
            (
                format!("/kubepods/besteffort/pod1234/crio-{ID}"),
                Runtime::CriO,
            ),
            (format!("/machine.slice/libpod-{ID}.scope"), Runtime::Podman),
            (
                format!("/machine.slice/libpod-{ID}.scope/container"),
                Runtime::Podman,
            ),
            (format!("/libpod_parent/libpod-{ID}"), Runtime::Podman),
            (format!("/libpod_parent/{ID2}/libpod-{ID}"), Runtime::Podman),
            (format!("/k8s.io/{ID}"), Runtime::Containerd),
            (
                format!("/ecs/0a1b2c3d4e5f60718293a4b5c6d7e8f9/{ID}"),
                Runtime::Docker,
            ),
            (format!("/{ID}"), Runtime::Runc),
            (format!("/{ID}/"), Runtime::Runc),
        ];
        for (path, runtime) in cases {
            assert_eq!(parsed(&path), Some((runtime, ID.to_owned())), "{path}");
        }
    }

    #[test]
    fn last_matching_component_wins() {
        assert_eq!(
            parsed(&format!("/docker/{ID}/docker/{ID2}")),
            Some((Runtime::Docker, ID2.to_owned()))
        );
        assert_eq!(
            parsed(&format!(
                "/system.slice/docker-{ID}.scope/libpod-{ID2}.scope/sub"
            )),
            Some((Runtime::Podman, ID2.to_owned()))
        );
        // A sub-cgroup the container made for itself still belongs to it.
        assert_eq!(
            parsed(&format!("/system.slice/docker-{ID}.scope/init")),
            Some((Runtime::Docker, ID.to_owned()))
        );
    }

    #[test]
    fn near_misses_do_not_match() {
        let short = &ID[..63];
        let long = format!("{ID}a");
        let upper = ID.to_uppercase();
        let misses = [
            String::new(),
            "/".to_owned(),
            "/init.scope".to_owned(),
            "/system.slice/docker.service".to_owned(),
            "/system.slice/containerd.service".to_owned(),
            "/user.slice/user-1000.slice/session-3.scope".to_owned(),
            format!("/user.slice/user-{ID}.slice"),
            format!("/user.slice/{ID}"),
            format!("/docker/{short}"),
            format!("/docker/{long}"),
            format!("/docker/{upper}"),
            format!("/{short}"),
            format!("/{long}"),
            format!("/system.slice/docker-{ID}.scope.bak"),
            format!("/system.slice/docker-{short}.scope"),
            format!("/system.slice/docker-{long}.scope"),
            format!("/system.slice/docker-{upper}.scope"),
            format!("/system.slice/docker-{ID}"),
            format!("/system.slice/xdocker-{ID}.scope"),
            format!("/system.slice/docker_{ID}.scope"),
            format!("/kubepods.slice/kubepods-podx.slice/crio-conmon-{ID}.scope"),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/libpod_parent/libpod-conmon-{ID}"),
            format!("/libpod_parent/{ID}"),
            format!("/libpod_parent/libpod-{ID}x"),
            format!("/moby/k8s.io/{ID}"),
            format!("/k8s.io/x/{ID}"),
            format!("/kubepods/besteffort/notapod/{ID}"),
            format!("/other/{ID}"),
            format!("/x.slice:unknown:{ID}"),
            format!("/x.slice:docker:{short}"),
            format!("/x.slice:docker:{ID}:extra"),
        ];
        for path in misses {
            assert_eq!(parsed(&path), None, "{path:?} must not match");
        }
    }

    #[test]
    fn runtime_names() {
        let names: Vec<_> = [
            Runtime::Docker,
            Runtime::Containerd,
            Runtime::CriO,
            Runtime::Podman,
            Runtime::Runc,
        ]
        .map(Runtime::name)
        .into();
        assert_eq!(names, ["docker", "containerd", "cri-o", "podman", "runc"]);
    }

    #[test]
    fn host_keys() {
        let cases = [
            ("/system.slice/sshd.service", "host:sshd.service"),
            (
                "/user.slice/user-0.slice/session-3.scope",
                "host:session-3.scope",
            ),
            (
                "/user.slice/user-0.slice/user@0.service/init.scope",
                "host:user@0.service",
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.scope",
                "host:app-foo.scope",
            ),
            (
                "/system.slice/getty@tty1.service",
                "host:getty@tty1.service",
            ),
            ("/init.scope", "host:init.scope"),
            ("/", "host"),
            ("", "host"),
            ("/system.slice", "host"),
            ("/process_api/96f7", "host"),
        ];
        for (path, key) in cases {
            assert_eq!(host_workload_key(path), key, "{path}");
        }
    }
}
