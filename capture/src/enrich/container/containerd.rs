//! What containerd (1.x, runtime v2 shims) keeps about a container beyond its OCI bundle.
//!
//! The bundle is `<state>/io.containerd.runtime.v2.task/<namespace>/<id>` (`/run/containerd/…`
//! by default); its `work` symlink points to the same path under containerd's root
//! (`/var/lib/containerd`), whose `io.containerd.metadata.v1.bolt/meta.db` (bbolt) holds, under
//! `v1/<namespace>/containers/<id>`: `labels` (a bucket; kubelet's `io.kubernetes.*` labels for
//! CRI containers) and `image` (the reference), and under `v1/<namespace>/images/<reference>/target`
//! the image's `digest`. The link is only read as text (never followed), and must end with the
//! bundle's own namespace and id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bolt::{BoltFile, Value};
use super::runtime::{EngineFacts, MetadataError};

/// Directory of task bundles under containerd's state and root directories.
const TASK_DIR: &str = "io.containerd.runtime.v2.task";
/// containerd's root when the bundle does not say.
pub const DEFAULT_ROOT: &str = "/var/lib/containerd";
/// Most labels kept from the metadata store.
const MAX_LABELS: usize = 256;

/// The namespace and containerd root of a bundle `<state>/io.containerd.runtime.v2.task/<ns>/<id>`.
pub fn namespace_and_root(bundle: &Path, id: &str) -> Option<(String, PathBuf)> {
    if bundle.file_name()? != id {
        return None;
    }
    let ns_dir = bundle.parent()?;
    if ns_dir.parent()?.file_name()? != TASK_DIR {
        return None;
    }
    let namespace = ns_dir.file_name()?.to_str()?.to_owned();
    let root = std::fs::read_link(bundle.join("work"))
        .ok()
        .filter(|work| work.is_absolute())
        .filter(|work| work.ends_with(Path::new(TASK_DIR).join(&namespace).join(id)))
        .and_then(|work| work.ancestors().nth(3).map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    Some((namespace, root))
}

/// Labels, image and image digest of container `id` in `namespace`, from `meta.db` under `root`;
/// Ok(None) when the store or the container is not there.
pub fn read(root: &Path, namespace: &str, id: &str) -> Result<Option<EngineFacts>, MetadataError> {
    let path = root.join("io.containerd.metadata.v1.bolt").join("meta.db");
    let Some(db) = BoltFile::open(&path)? else {
        return Ok(None);
    };
    let ns = namespace.as_bytes();
    let Some(container) = db.bucket(&[b"v1", ns, b"containers", id.as_bytes()])? else {
        return Ok(None);
    };
    let text = |v: Option<Value>| match v {
        Some(Value::Bytes(b)) => String::from_utf8(b).ok().filter(|s| !s.is_empty()),
        _ => None,
    };
    let mut facts = EngineFacts {
        image: text(db.get(&container, b"image")?),
        ..EngineFacts::default()
    };
    if let Some(Value::Bucket(labels)) = db.get(&container, b"labels")? {
        facts.labels = db
            .entries(&labels)?
            .into_iter()
            .take(MAX_LABELS)
            .filter_map(|(k, v)| Some((String::from_utf8(k).ok()?, text(Some(v))?)))
            .collect::<BTreeMap<_, _>>();
    }
    if let Some(image) = &facts.image
        && let Some(target) = db.bucket(&[b"v1", ns, b"images", image.as_bytes(), b"target"])?
    {
        facts.image_digest = text(db.get(&target, b"digest")?).filter(|d| d.starts_with("sha256:"));
    }
    Ok(Some(facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TESTDATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/enrich/container/testdata/containerd"
    );
    const API: &str = "b0546faa4c07974aca03633ed49f4ae31e6a9000880c2c00fba823e0d11b8d55";

    #[test]
    fn labels_image_and_digest_from_the_real_store() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("io.containerd.metadata.v1.bolt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(Path::new(TESTDATA).join("meta.db"), dir.join("meta.db")).unwrap();
        let facts = read(root.path(), "k8s.io", API).unwrap().expect("known");
        assert_eq!(
            facts.image.as_deref(),
            Some("localhost/needle-busybox:test")
        );
        assert_eq!(
            facts.image_digest.as_deref(),
            Some("sha256:88b465fe38f5a34479352001622938a352142bb374ddb5d70a12088065ae7472")
        );
        assert_eq!(
            facts
                .labels
                .get("io.kubernetes.pod.namespace")
                .map(String::as_str),
            Some("shop")
        );
        assert_eq!(
            facts
                .labels
                .get("io.kubernetes.container.name")
                .map(String::as_str),
            Some("api")
        );
        assert!(read(root.path(), "default", API).unwrap().is_none());
        assert!(
            read(root.path(), "k8s.io", &"0".repeat(64))
                .unwrap()
                .is_none()
        );
        assert!(
            read(&root.path().join("absent"), "k8s.io", API)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_bundle_names_namespace_and_root() {
        let state = tempfile::tempdir().unwrap();
        let bundle = state.path().join(TASK_DIR).join("k8s.io").join(API);
        std::fs::create_dir_all(&bundle).unwrap();
        assert_eq!(
            namespace_and_root(&bundle, API),
            Some(("k8s.io".to_owned(), PathBuf::from(DEFAULT_ROOT)))
        );
        let work = Path::new("/srv/ctrd")
            .join(TASK_DIR)
            .join("k8s.io")
            .join(API);
        std::os::unix::fs::symlink(&work, bundle.join("work")).unwrap();
        assert_eq!(
            namespace_and_root(&bundle, API),
            Some(("k8s.io".to_owned(), PathBuf::from("/srv/ctrd")))
        );
        // A link naming another container is not trusted.
        let other = state
            .path()
            .join(TASK_DIR)
            .join("k8s.io")
            .join("b".repeat(64));
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&work, other.join("work")).unwrap();
        assert_eq!(
            namespace_and_root(&other, &"b".repeat(64)),
            Some(("k8s.io".to_owned(), PathBuf::from(DEFAULT_ROOT)))
        );
        assert_eq!(namespace_and_root(Path::new("/run/runc/x"), "x"), None);
    }
}
