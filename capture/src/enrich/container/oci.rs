//! The facts needle keeps from an OCI bundle's `config.json`: annotations, hostname, root
//! filesystem, bind mounts, capabilities and which namespaces are shared with the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The parts of an OCI runtime `config.json` that needle reads; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OciConfig {
    root: Option<Root>,
    hostname: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    mounts: Option<Vec<Mount>>,
    process: Option<Process>,
    linux: Option<Linux>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Root {
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Mount {
    source: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    options: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Process {
    capabilities: Option<Capabilities>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Capabilities {
    bounding: Option<Vec<String>>,
    effective: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Linux {
    namespaces: Option<Vec<Namespace>>,
    masked_paths: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Namespace {
    #[serde(rename = "type")]
    kind: String,
}

/// Namespaces a container normally gets; one missing from `linux.namespaces` is the host's.
const ISOLATING_NAMESPACES: [&str; 6] = ["pid", "network", "ipc", "uts", "mount", "cgroup"];

/// Linux has 41 capabilities (6.x); `--privileged` grants every one of them.
const ALL_CAPABILITIES: usize = 41;

impl OciConfig {
    /// OCI annotations (empty when none).
    pub fn annotations(&self) -> impl Iterator<Item = (&String, &String)> {
        self.annotations.iter().flatten()
    }

    /// The container's hostname.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref().filter(|h| !h.is_empty())
    }

    /// `root.path` resolved against the bundle (it may be relative to it).
    pub fn rootfs(&self, bundle: &Path) -> Option<PathBuf> {
        let path = self.root.as_ref()?.path.as_deref()?;
        Some(bundle.join(path))
    }

    /// Host sources of bind mounts (`type: bind` or a `bind`/`rbind` option).
    pub fn host_mounts(&self) -> Vec<String> {
        self.mounts
            .iter()
            .flatten()
            .filter(|m| {
                m.kind.as_deref() == Some("bind")
                    || m.options
                        .iter()
                        .flatten()
                        .any(|o| o == "bind" || o == "rbind")
            })
            .filter_map(|m| m.source.clone())
            .collect()
    }

    /// The bounding capability set (the effective set when no bounding set is given).
    pub fn capabilities(&self) -> Vec<String> {
        let caps = self.process.as_ref().and_then(|p| p.capabilities.as_ref());
        caps.and_then(|c| c.bounding.clone().or_else(|| c.effective.clone()))
            .unwrap_or_default()
    }

    /// Judgment: the container is privileged when it holds `CAP_SYS_ADMIN` and either nothing
    /// is masked (`linux.maskedPaths` empty) or it holds every capability. That is the shape of
    /// `docker run --privileged` and Kubernetes `privileged: true` (all capabilities, no masked
    /// `/proc` paths); a container given `CAP_SYS_ADMIN` alone keeps its masks and is reported
    /// through [`OciConfig::capabilities`] instead.
    pub fn privileged(&self) -> bool {
        let caps = self.capabilities();
        let sys_admin = caps.iter().any(|c| c == "CAP_SYS_ADMIN");
        let nothing_masked = self
            .linux
            .as_ref()
            .and_then(|l| l.masked_paths.as_ref())
            .is_none_or(Vec::is_empty);
        sys_admin && (nothing_masked || caps.len() >= ALL_CAPABILITIES)
    }

    /// Namespace types the container shares with the host (absent from `linux.namespaces`).
    /// A namespace joined by path (a Kubernetes pod's) is not counted as the host's.
    pub fn shared_namespaces(&self) -> Vec<String> {
        let Some(listed) = self.linux.as_ref().and_then(|l| l.namespaces.as_ref()) else {
            return Vec::new();
        };
        ISOLATING_NAMESPACES
            .iter()
            .filter(|ns| !listed.iter().any(|l| l.kind == **ns))
            .map(|ns| (*ns).to_owned())
            .collect()
    }
}
