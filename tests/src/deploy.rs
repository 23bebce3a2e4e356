//! The Kubernetes manifest (`deploy/kubernetes/daemonset.yaml`) read back for tests: as JSON
//! (through the test venv's PyYAML), and translated into the `podman run` options that run the
//! capture image the way the DaemonSet's pod spec does (host PID and UTS namespaces, dropped and
//! added capabilities, seccomp, read-only root, memory limit, hostPath and emptyDir mounts).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::engine::{ENGINE_TIMEOUT, checked};

/// The manifest, relative to the workspace.
pub const DAEMONSET: &str = "deploy/kubernetes/daemonset.yaml";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// The Python of the test venv (`NEEDLE_PYTHON`, else `python3`).
pub fn python() -> PathBuf {
    std::env::var_os("NEEDLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// None when the Python has PyYAML and kubernetes-validate; otherwise why not.
pub fn validator_available() -> Option<String> {
    let mut cmd = Command::new(python());
    cmd.args(["-c", "import yaml, kubernetes_validate"]);
    checked(cmd, ENGINE_TIMEOUT).err().map(|e| {
        format!(
            "{} lacks PyYAML or kubernetes-validate (scripts/setup.sh installs them into target/py; set NEEDLE_PYTHON): {e}",
            python().display()
        )
    })
}

/// Every document of a YAML file, as JSON values.
pub fn yaml_documents(path: &Path) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new(python());
    cmd.args([
        "-c",
        "import json, sys, yaml\njson.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
    ])
    .arg(path);
    let text = checked(cmd, ENGINE_TIMEOUT)?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The DaemonSet document of the manifest.
pub fn daemonset() -> Result<Value, String> {
    yaml_documents(&workspace().join(DAEMONSET))?
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .ok_or_else(|| format!("{DAEMONSET}: no DaemonSet"))
}

/// `podman run` options (before the image) and the container's arguments (after it) for the
/// DaemonSet's first container. `host_path` maps a volume's hostPath (by volume name) to the
/// directory used here (the test's own trace directory, say); None keeps the manifest's.
pub fn podman_run_options(
    ds: &Value,
    host_path: impl Fn(&str, &str) -> Option<PathBuf>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    let mut opts = Vec::new();
    if pod["hostPID"] == true {
        opts.push("--pid=host".to_owned());
    }
    if pod["hostNetwork"] == true {
        // Kubernetes gives a host-network pod the node's UTS namespace too.
        opts.extend(["--network=host".to_owned(), "--uts=host".to_owned()]);
    }
    // Kubernetes runs containers in the host's cgroup namespace on cgroup v1 hosts.
    opts.push("--cgroupns=host".to_owned());
    if sc["privileged"] == true {
        opts.push("--privileged".to_owned());
    }
    for cap in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
        let cap = cap.as_str().ok_or("capability is not a string")?;
        opts.push(format!("--cap-drop={}", cap.to_lowercase()));
    }
    for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
        let cap = cap.as_str().ok_or("capability is not a string")?;
        opts.push(format!("--cap-add=CAP_{cap}"));
    }
    match sc["seccompProfile"]["type"].as_str() {
        Some("Unconfined") => opts.push("--security-opt=seccomp=unconfined".to_owned()),
        Some("RuntimeDefault") | None => {}
        Some(other) => return Err(format!("seccompProfile {other} is not translated")),
    }
    if sc["readOnlyRootFilesystem"] == true {
        opts.push("--read-only".to_owned());
    }
    if let Some(uid) = sc["runAsUser"].as_u64() {
        opts.push(format!("--user={uid}"));
    }
    if let Some(mem) = container["resources"]["limits"]["memory"].as_str() {
        let mib = mem
            .strip_suffix("Mi")
            .ok_or_else(|| format!("memory limit {mem:?} is not in Mi"))?;
        opts.push(format!("--memory={mib}m"));
    }
    let volumes = pod["volumes"].as_array().ok_or("no volumes")?;
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().ok_or("volumeMount without a name")?;
        let at = mount["mountPath"]
            .as_str()
            .ok_or("volumeMount without a path")?;
        let volume = volumes
            .iter()
            .find(|v| v["name"] == name)
            .ok_or_else(|| format!("volumeMount {name} has no volume"))?;
        let ro = mount["readOnly"] == true;
        if let Some(path) = volume["hostPath"]["path"].as_str() {
            let source = host_path(name, path).unwrap_or_else(|| PathBuf::from(path));
            if volume["hostPath"]["type"] == "DirectoryOrCreate" {
                std::fs::create_dir_all(&source)
                    .map_err(|e| format!("{}: {e}", source.display()))?;
            }
            let mode = if ro { "ro,rbind" } else { "rw,rbind" };
            opts.push(format!("--volume={}:{at}:{mode}", source.display()));
        } else if volume.get("emptyDir").is_some() {
            opts.push(format!("--tmpfs={at}:rw,size=1m"));
        } else {
            return Err(format!(
                "volume {name}: only hostPath and emptyDir are translated"
            ));
        }
    }
    let args = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            a.as_str()
                .map(str::to_owned)
                .ok_or("argument is not a string")
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((opts, args))
}
