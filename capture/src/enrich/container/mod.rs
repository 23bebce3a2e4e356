//! Who is this cgroup? Turns the cgroup v2 id the kernel put in an event into container context
//! (runtime, id, name, image, pod, namespace, labels, rootfs, privileges) or a host workload key.
//!
//! [`ContainerResolver::resolve`] is cached per cgroup id. On a miss it finds the id's path by
//! walking the cgroup2 tree (directory inode == cgroup id; one walk maps every directory, and
//! walks are rate-limited so a storm of unknown ids stays cheap), parses the path
//! ([`parse_cgroup_path`]) and reads the runtime's metadata once per container id
//! ([`runtime::read_metadata`]).

mod bolt;
mod containerd;
mod nofollow;
mod oci;
mod path;
mod podman;
mod rfc3339;
pub mod runtime;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use needle_common::schema::Container;

use crate::hashing::Map;

pub use path::{Runtime, host_workload_key, is_container_id, parse_cgroup_path};
pub use runtime::{MetadataError, RuntimeFacts, RuntimeRoots};
pub use walk::cgroup2_root_from_mountinfo;

/// Default minimum time between two walks of the cgroup2 tree.
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_millis(200);

/// How often metadata that was not found yet (a container seen before its runtime wrote its
/// state) is looked for again, and how many times.
const METADATA_RETRY: Duration = Duration::from_millis(500);
const METADATA_ATTEMPTS: u32 = 5;

/// Everything known about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The trace columns: id, name, image, runtime, pod, namespace, labels (JSON object text).
    pub container: Arc<Container>,
    /// cgroup path relative to the cgroup2 root (as `/proc/<pid>/cgroup` shows it) where the
    /// container was first seen (a container may have sub-cgroups, e.g. podman's `/container`).
    pub cgroup_path: String,
    /// What the runtime's state and the OCI config say: creation time, init pid, bundle,
    /// rootfs, hostname, privileges, mounts and shared namespaces.
    pub facts: RuntimeFacts,
}

/// What a cgroup id belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// A container.
    Container(Arc<ContainerInfo>),
    /// A host cgroup, with its workload key ([`host_workload_key`]).
    Host(Arc<str>),
    /// The id is not (yet) in the cgroup2 tree.
    Unknown,
}

/// Counters for the capture summary and file metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that were not cached.
    pub misses: u64,
    /// Lookups that ended as [`Resolution::Unknown`].
    pub unknown: u64,
    /// Walks of the cgroup2 tree.
    pub rescans: u64,
    /// Containers for which no runtime state or config was found (context left empty).
    pub metadata_missing: u64,
    /// Metadata files that existed but could not be read or parsed.
    pub metadata_errors: u64,
}

/// A cached answer; `provisional` when its container's metadata is to be looked for again.
struct Cached {
    resolution: Resolution,
    provisional: bool,
}

/// A cached container, and whether its metadata should be looked for again.
struct Known {
    info: Arc<ContainerInfo>,
    runtime: Runtime,
    retry: Option<(Instant, u32)>,
}

/// Resolves cgroup ids to containers or host workloads, with caches.
pub struct ContainerResolver {
    cgroup2_root: PathBuf,
    roots: RuntimeRoots,
    rescan_interval: Duration,
    metadata_retry: Duration,
    last_walk: Option<Instant>,
    /// cgroup id → path, from the last walk.
    paths: HashMap<u64, String>,
    /// cgroup id → answer.
    resolved: Map<u64, Cached>,
    /// container id → metadata, read once per container.
    containers: HashMap<String, Known>,
    stats: ResolverStats,
}

impl ContainerResolver {
    /// A resolver over the cgroup2 tree mounted at `cgroup2_root`.
    pub fn new(cgroup2_root: PathBuf, runtime_roots: RuntimeRoots) -> Self {
        ContainerResolver {
            cgroup2_root,
            roots: runtime_roots,
            rescan_interval: DEFAULT_RESCAN_INTERVAL,
            metadata_retry: METADATA_RETRY,
            last_walk: None,
            paths: HashMap::new(),
            resolved: Map::default(),
            containers: HashMap::new(),
            stats: ResolverStats::default(),
        }
    }

    /// Sets the minimum time between two walks of the cgroup2 tree.
    pub fn with_rescan_interval(mut self, interval: Duration) -> Self {
        self.rescan_interval = interval;
        self
    }

    /// Where cgroup2 is mounted, from `/proc/self/mountinfo` (`/sys/fs/cgroup/unified` on hybrid
    /// hosts, `/sys/fs/cgroup` on pure v2 ones).
    pub fn detect_cgroup2_root() -> Option<PathBuf> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        cgroup2_root_from_mountinfo(&text)
    }

    /// What `cgroup_id` belongs to. Cached; a miss may walk the cgroup2 tree (rate-limited).
    pub fn resolve(&mut self, cgroup_id: u64) -> Resolution {
        if let Some(cached) = self.resolved.get(&cgroup_id) {
            self.stats.hits += 1;
            if !cached.provisional {
                return cached.resolution.clone();
            }
            if let Resolution::Container(info) = &cached.resolution {
                let id = info.container.id.clone();
                return self.retry_metadata(&id);
            }
        }
        self.stats.misses += 1;
        if !self.paths.contains_key(&cgroup_id) && self.may_walk() {
            self.walk();
        }
        let Some(path) = self.paths.get(&cgroup_id).cloned() else {
            self.stats.unknown += 1;
            return Resolution::Unknown;
        };
        let (resolution, provisional) = match parse_cgroup_path(&path) {
            Some((runtime, id)) => {
                let known = self.container(runtime, &id, &path);
                (
                    Resolution::Container(known.info.clone()),
                    known.retry.is_some(),
                )
            }
            None => (Resolution::Host(host_workload_key(&path).into()), false),
        };
        let cached = Cached {
            resolution: resolution.clone(),
            provisional,
        };
        self.resolved.insert(cgroup_id, cached);
        resolution
    }

    /// Drops what is cached for a cgroup that went away (and its container, if no other
    /// cgroup refers to it).
    pub fn forget(&mut self, cgroup_id: u64) {
        self.paths.remove(&cgroup_id);
        if let Some(Cached {
            resolution: Resolution::Container(info),
            ..
        }) = self.resolved.remove(&cgroup_id)
        {
            let still_used = self.resolved.values().any(|c| {
                matches!(&c.resolution, Resolution::Container(other) if other.container.id == info.container.id)
            });
            if !still_used {
                self.containers.remove(&*info.container.id);
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ResolverStats {
        self.stats
    }

    fn may_walk(&self) -> bool {
        self.last_walk
            .is_none_or(|t| t.elapsed() >= self.rescan_interval)
    }

    fn walk(&mut self) {
        self.stats.rescans += 1;
        self.last_walk = Some(Instant::now());
        self.paths = walk::cgroup_paths(&self.cgroup2_root);
    }

    /// The cached container `id`, reading its metadata on first sight.
    fn container(&mut self, runtime: Runtime, id: &str, cgroup_path: &str) -> &Known {
        if self.containers.contains_key(id) {
            return &self.containers[id];
        }
        self.read(runtime, id, cgroup_path, 1)
    }

    /// Reads metadata (attempt number `attempt`) and caches the result.
    fn read(&mut self, runtime: Runtime, id: &str, cgroup_path: &str, attempt: u32) -> &Known {
        let (meta, errors) = runtime::read_metadata(&self.roots, runtime, id);
        self.stats.metadata_errors += errors.len() as u64;
        let retry = if meta.found {
            None
        } else {
            if attempt == 1 {
                self.stats.metadata_missing += 1;
            }
            (attempt < METADATA_ATTEMPTS).then(|| (Instant::now() + self.metadata_retry, attempt))
        };
        let info = Arc::new(container_info(runtime, id, cgroup_path, meta));
        self.containers
            .entry(id.to_owned())
            .insert_entry(Known {
                info,
                runtime,
                retry,
            })
            .into_mut()
    }

    /// A cached container whose metadata was missing: looks again when it is time to.
    fn retry_metadata(&mut self, id: &str) -> Resolution {
        let Some(known) = self.containers.get(id) else {
            return Resolution::Unknown;
        };
        let (runtime, path) = (known.runtime, known.info.cgroup_path.clone());
        match known.retry {
            Some((at, attempt)) if Instant::now() >= at => {
                let known = self.read(runtime, id, &path, attempt + 1);
                let (info, provisional) = (known.info.clone(), known.retry.is_some());
                // Every cgroup of this container shares the new context.
                for cached in self.resolved.values_mut() {
                    if matches!(&cached.resolution, Resolution::Container(old) if *old.container.id == *id)
                    {
                        cached.resolution = Resolution::Container(info.clone());
                        cached.provisional = provisional;
                    }
                }
                Resolution::Container(info)
            }
            _ => Resolution::Container(known.info.clone()),
        }
    }
}

/// Annotation keys, most specific first (CRI-O and Kubernetes labels, then containerd's CRI).
const POD_NAME: [&str; 2] = ["io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"];
const POD_NAMESPACE: [&str; 2] = [
    "io.kubernetes.pod.namespace",
    "io.kubernetes.cri.sandbox-namespace",
];
const CONTAINER_NAME: [&str; 2] = [
    "io.kubernetes.container.name",
    "io.kubernetes.cri.container-name",
];
const IMAGE: [&str; 3] = [
    "io.kubernetes.cri.image-name",
    "io.kubernetes.cri-o.ImageName",
    "org.opencontainers.image.ref.name",
];

/// Builds the trace context from what was read. The pod uid
/// (`io.kubernetes.pod.uid`) travels in the labels.
fn container_info(
    runtime: Runtime,
    id: &str,
    cgroup_path: &str,
    meta: runtime::Metadata,
) -> ContainerInfo {
    let first = |keys: &[&str]| -> Option<Arc<str>> {
        keys.iter()
            .find_map(|k| meta.annotations.get(*k))
            .filter(|v| !v.is_empty())
            .map(|v| Arc::from(v.as_str()))
    };
    let labels = labels_json(&meta.annotations);
    let container = Container {
        id: id.into(),
        name: first(&CONTAINER_NAME).or_else(|| meta.name.as_deref().map(Arc::from)),
        image: first(&IMAGE).or_else(|| meta.image.as_deref().map(Arc::from)),
        image_digest: meta.image_digest.as_deref().map(Arc::from),
        runtime: Some(runtime.name().into()),
        pod: first(&POD_NAME).or_else(|| meta.pod.as_deref().map(Arc::from)),
        namespace: first(&POD_NAMESPACE),
        labels,
    };
    ContainerInfo {
        container: Arc::new(container),
        cgroup_path: cgroup_path.to_owned(),
        facts: meta.facts,
    }
}

/// Annotations and labels as a JSON object with sorted keys; None when there are none.
fn labels_json(annotations: &BTreeMap<String, String>) -> Option<Arc<str>> {
    if annotations.is_empty() {
        return None;
    }
    serde_json::to_string(annotations).ok().map(Arc::from)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_runc;
