//! Reading a container's metadata from where runtimes keep it on the host: the runc/crun state
//! (`<state dir>/<id>/state.json` or `status`), the OCI bundle's `config.json`, Docker's
//! `config.v2.json`, and the engines' own stores found from the bundle (podman's in
//! [`super::podman`], containerd's in [`super::containerd`]). Every file is optional,
//! size-bounded, opened without following a symlink in its last component, and parsed
//! leniently: what is missing stays `None`, what is broken is returned as an error for the
//! caller to count.

use std::collections::BTreeMap;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::bolt::BoltError;
use super::oci::OciConfig;
use super::path::{Runtime, is_container_id};
use super::{containerd, nofollow, podman, rfc3339};

/// Largest metadata file read (runc's state.json embeds the whole config: tens of KiB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Longest annotation or label value kept; longer ones are cut at a character boundary.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Where runtimes keep container state on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeRoots {
    /// runc/crun `--root` directories: `<dir>/<id>/state.json` (runc) or `<dir>/<id>/status` (crun).
    pub state_dirs: Vec<PathBuf>,
    /// Directories holding bundles named by id (`<dir>/<id>/config.json`, or
    /// `<dir>/<id>/userdata/config.json` for CRI-O and podman), used when the state names none.
    pub bundle_dirs: Vec<PathBuf>,
    /// Docker's containers directory (`<dir>/<id>/config.v2.json`).
    pub docker_dir: Option<PathBuf>,
}

impl Default for RuntimeRoots {
    fn default() -> Self {
        let paths = |list: &[&str]| list.iter().map(PathBuf::from).collect();
        RuntimeRoots {
            state_dirs: paths(&[
                "/run/runc",
                "/run/containerd/runc/k8s.io",
                "/run/containerd/runc/moby",
                "/run/containerd/runc/default",
                "/run/docker/runtime-runc/moby",
                "/run/crun",
            ]),
            bundle_dirs: paths(&[
                "/run/containerd/io.containerd.runtime.v2.task/k8s.io",
                "/run/containerd/io.containerd.runtime.v2.task/moby",
                "/run/containerd/io.containerd.runtime.v2.task/default",
                "/run/containers/storage/overlay-containers",
                "/var/lib/containers/storage/overlay-containers",
            ]),
            docker_dir: Some(PathBuf::from("/var/lib/docker/containers")),
        }
    }
}

/// A metadata file that exists but could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Reading failed (permissions, I/O).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("{path}: larger than {MAX_FILE_BYTES} bytes, not read")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not the JSON shape expected.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error (names line and column).
        source: serde_json::Error,
    },
    /// An engine's bbolt store that could not be read.
    #[error(transparent)]
    Bolt(#[from] BoltError),
}

/// What an engine's own store says about a container (beyond the OCI bundle).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EngineFacts {
    /// The engine's container name.
    pub name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Manifest digest of the image (`sha256:…`).
    pub image_digest: Option<String>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// The pod the engine groups it in (podman pods).
    pub pod: Option<String>,
}

/// What a container's runtime state and OCI config say about it (its engine's names aside).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeFacts {
    /// Creation time, ns since the epoch.
    pub created_ns: Option<i64>,
    /// Host pid of the container's init process.
    pub init_pid: Option<u32>,
    /// OCI bundle directory.
    pub bundle: Option<PathBuf>,
    /// Absolute host path of the root filesystem.
    pub rootfs: Option<PathBuf>,
    /// Hostname from the OCI config.
    pub hostname: Option<String>,
    /// Privileged by the OCI config's capabilities and masks (rule in `oci.rs`); None without
    /// an OCI config.
    pub privileged: Option<bool>,
    /// Bounding capabilities from the OCI config.
    pub capabilities: Vec<String>,
    /// Sources of bind mounts.
    pub host_mounts: Vec<String>,
    /// Namespace types shared with the host.
    pub shared_namespaces: Vec<String>,
}

/// Everything the host told us about one container.
#[derive(Debug, Default)]
pub struct Metadata {
    /// OCI annotations, runtime labels and Docker labels, merged (later sources win).
    pub annotations: BTreeMap<String, String>,
    /// The engine's container name (Docker's without the leading `/`, podman's).
    pub name: Option<String>,
    /// The engine's image reference.
    pub image: Option<String>,
    /// Manifest digest of the image, where the engine records it.
    pub image_digest: Option<String>,
    /// The engine's pod (podman); Kubernetes pods come from annotations and labels.
    pub pod: Option<String>,
    /// What the runtime's state and the OCI config say.
    pub facts: RuntimeFacts,
    /// Whether any runtime state or config was found at all.
    pub found: bool,
}

/// runc's libcontainer `state.json`, or the OCI state form (`runc state`, crun's `status`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct State {
    init_process_pid: Option<u32>,
    pid: Option<u32>,
    created: Option<String>,
    bundle: Option<String>,
    rootfs: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    config: Option<LibcontainerConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LibcontainerConfig {
    rootfs: Option<String>,
    /// `key=value` strings: the OCI annotations plus `bundle=<dir>`.
    labels: Option<Vec<String>>,
}

/// The parts of Docker's `config.v2.json` needle reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerContainer {
    name: Option<String>,
    created: Option<String>,
    config: Option<DockerConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerConfig {
    image: Option<String>,
    hostname: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

/// Reads everything known about container `id`; files that exist but cannot be used are
/// returned as errors beside whatever else was found. Never panics on file contents.
pub fn read_metadata(
    roots: &RuntimeRoots,
    runtime: Runtime,
    id: &str,
) -> (Metadata, Vec<MetadataError>) {
    let mut meta = Metadata::default();
    let mut errors = Vec::new();
    if !is_container_id(id) {
        return (meta, errors);
    }
    let state: Option<State> = roots.state_dirs.iter().find_map(|dir| {
        let dir = dir.join(id);
        keep(&mut errors, read_json(&dir.join("state.json")))
            .or_else(|| keep(&mut errors, read_json(&dir.join("status"))))
    });
    if let Some(state) = state {
        meta.found = true;
        apply_state(&mut meta, state);
    }

    let config_path = |bundle: &Path| bundle.join("config.json");
    let bundle_candidates: Vec<PathBuf> = match &meta.facts.bundle {
        Some(b) => vec![b.clone()],
        None => roots
            .bundle_dirs
            .iter()
            .flat_map(|d| [d.join(id), d.join(id).join("userdata")])
            .collect(),
    };
    let oci = bundle_candidates.into_iter().find_map(|bundle| {
        keep(&mut errors, read_json::<OciConfig>(&config_path(&bundle))).map(|c| (bundle, c))
    });
    if let Some((bundle, config)) = oci {
        meta.found = true;
        for (k, v) in config.annotations() {
            meta.annotations
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        meta.facts.hostname = config.hostname().map(str::to_owned);
        meta.facts.rootfs = meta.facts.rootfs.take().or_else(|| config.rootfs(&bundle));
        meta.facts.privileged = Some(config.privileged());
        meta.facts.capabilities = config.capabilities();
        meta.facts.host_mounts = config.host_mounts();
        meta.facts.shared_namespaces = config.shared_namespaces();
        meta.facts.bundle = Some(bundle);
    }
    if let Some(engine) = engine_facts(&meta, runtime, id, &mut errors) {
        meta.found = true;
        meta.name = engine.name;
        meta.image = engine.image;
        meta.image_digest = engine.image_digest;
        meta.pod = engine.pod;
        // The engine's labels over the OCI annotations, like Docker's below.
        meta.annotations.extend(engine.labels);
    }

    if let Some(docker_dir) = &roots.docker_dir
        && let Some(docker) = keep(
            &mut errors,
            read_json::<DockerContainer>(&docker_dir.join(id).join("config.v2.json")),
        )
    {
        meta.found = true;
        apply_docker(&mut meta, docker);
    }
    for value in meta.annotations.values_mut() {
        truncate(value);
    }
    (meta, errors)
}

/// The engine's own store, found from the bundle: podman's (also recognised by the
/// `io.container.manager=libpod` annotation podman sets), containerd's.
fn engine_facts(
    meta: &Metadata,
    runtime: Runtime,
    id: &str,
    errors: &mut Vec<MetadataError>,
) -> Option<EngineFacts> {
    let bundle = meta.facts.bundle.as_deref()?;
    let libpod = meta
        .annotations
        .get("io.container.manager")
        .map(String::as_str)
        == Some("libpod");
    if runtime == Runtime::Podman || libpod {
        let (graphroot, driver) = podman::storage_of_bundle(bundle, id)?;
        return podman::read(&graphroot, &driver, id, errors);
    }
    if runtime == Runtime::Containerd {
        let (namespace, root) = containerd::namespace_and_root(bundle, id)?;
        return containerd::read(&root, &namespace, id).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
    }
    None
}

/// The value of a read that may fail; a failure is recorded in `errors`.
fn keep<T>(errors: &mut Vec<MetadataError>, read: Result<Option<T>, MetadataError>) -> Option<T> {
    read.unwrap_or_else(|e| {
        errors.push(e);
        None
    })
}

fn apply_state(meta: &mut Metadata, state: State) {
    meta.facts.init_pid = state.init_process_pid.or(state.pid).filter(|p| *p > 0);
    meta.facts.created_ns = state.created.as_deref().and_then(rfc3339::parse_ns);
    let config = state.config.unwrap_or_default();
    meta.facts.rootfs = config.rootfs.or(state.rootfs).map(PathBuf::from);
    let mut bundle = state.bundle;
    for label in config.labels.into_iter().flatten() {
        let Some((k, v)) = label.split_once('=') else {
            continue;
        };
        if k == "bundle" {
            bundle.get_or_insert_with(|| v.to_owned());
        } else {
            meta.annotations.insert(k.to_owned(), v.to_owned());
        }
    }
    meta.annotations
        .extend(state.annotations.unwrap_or_default());
    meta.facts.bundle = bundle.filter(|b| !b.is_empty()).map(PathBuf::from);
}

fn apply_docker(meta: &mut Metadata, docker: DockerContainer) {
    meta.name = docker
        .name
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| !n.is_empty());
    if meta.facts.created_ns.is_none() {
        meta.facts.created_ns = docker.created.as_deref().and_then(rfc3339::parse_ns);
    }
    let config = docker.config.unwrap_or_default();
    meta.image = config.image.filter(|i| !i.is_empty());
    if meta.facts.hostname.is_none() {
        meta.facts.hostname = config.hostname.filter(|h| !h.is_empty());
    }
    meta.annotations.extend(config.labels.unwrap_or_default());
}

/// Reads and parses a JSON file; Ok(None) when it does not exist (or is not a file). A symlink
/// in the last component is refused (`ELOOP`), never followed.
pub(super) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, MetadataError> {
    let Some(file) = nofollow::open(path).map_err(|source| MetadataError::Read {
        path: path.into(),
        source,
    })?
    else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| MetadataError::Read {
            path: path.into(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(MetadataError::TooLarge { path: path.into() });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| MetadataError::Json {
            path: path.into(),
            source,
        })
}

/// Cuts `value` to at most [`MAX_VALUE_BYTES`] on a character boundary.
fn truncate(value: &mut String) {
    if value.len() > MAX_VALUE_BYTES {
        let cut = (0..=MAX_VALUE_BYTES)
            .rev()
            .find(|i| value.is_char_boundary(*i))
            .unwrap_or(0);
        value.truncate(cut);
    }
}
