//! What podman (rootful, 4.x) keeps about a container beyond its OCI bundle.
//!
//! The bundle podman hands the runtime is `<graphroot>/<driver>-containers/<id>/userdata`
//! (`/var/lib/containers/storage/overlay-containers/<id>/userdata` by default); from it:
//! - `<graphroot>/<driver>-containers/containers.json` (containers/storage): names, image id,
//!   and `metadata.image-name`;
//! - `<graphroot>/libpod/bolt_state.db` (libpod's state, bbolt): bucket `ctr/<id>`, key
//!   `config`, a JSON object with `name`, `labels`, `rootfsImageName`, `rootfsImageID`, `pod`;
//!   and `pod/<pod id>/config` with the pod's `name`;
//! - `<graphroot>/<driver>-images/images.json`: the image's manifest `digest`.
//!
//! Podman 4.8+ may keep its state in `libpod/db.sql` (SQLite) instead; then only what
//! `containers.json` and `images.json` give is found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::bolt::{BoltFile, Value};
use super::runtime::{EngineFacts, MetadataError, read_json};

/// `containers.json` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StorageContainer {
    id: String,
    names: Vec<String>,
    image: String,
    /// JSON text: `{"image-name": …, "name": …}`.
    metadata: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct StorageMetadata {
    image_name: Option<String>,
}

/// `images.json` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StorageImage {
    id: String,
    digest: Option<String>,
}

/// libpod's container config (the fields needle reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LibpodConfig {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    rootfs_image_name: Option<String>,
    #[serde(rename = "rootfsImageID")]
    rootfs_image_id: Option<String>,
    pod: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LibpodPod {
    name: Option<String>,
}

/// The storage root and driver of a podman bundle (`<graphroot>/<driver>-containers/<id>/userdata`).
pub fn storage_of_bundle(bundle: &Path, id: &str) -> Option<(PathBuf, String)> {
    if bundle.file_name()? != "userdata" {
        return None;
    }
    let container_dir = bundle.parent()?;
    if container_dir.file_name()? != id {
        return None;
    }
    let containers = container_dir.parent()?;
    let driver = containers
        .file_name()?
        .to_str()?
        .strip_suffix("-containers")?
        .to_owned();
    if driver.is_empty() || driver.contains('/') {
        return None;
    }
    Some((containers.parent()?.to_owned(), driver))
}

/// Everything podman's stores say about container `id` under `graphroot`; None when none of
/// them knows it. Files that exist but cannot be used are pushed onto `errors`.
pub fn read(
    graphroot: &Path,
    driver: &str,
    id: &str,
    errors: &mut Vec<MetadataError>,
) -> Option<EngineFacts> {
    let mut facts = EngineFacts::default();
    let mut found = false;
    let mut image_id = None;

    let containers_json = graphroot
        .join(format!("{driver}-containers"))
        .join("containers.json");
    let listed: Option<Vec<StorageContainer>> = keep(errors, read_json(&containers_json));
    if let Some(c) = listed.into_iter().flatten().find(|c| c.id == id) {
        found = true;
        facts.name = c.names.into_iter().next().filter(|n| !n.is_empty());
        let meta: StorageMetadata = serde_json::from_str(&c.metadata).unwrap_or_default();
        facts.image = meta.image_name.filter(|n| !n.is_empty());
        image_id = Some(c.image).filter(|i| !i.is_empty());
    }

    match libpod_config(graphroot, id) {
        Ok(Some((config, pod))) => {
            found = true;
            facts.name = config.name.filter(|n| !n.is_empty()).or(facts.name);
            facts.image = config
                .rootfs_image_name
                .filter(|n| !n.is_empty())
                .or(facts.image);
            image_id = config
                .rootfs_image_id
                .filter(|i| !i.is_empty())
                .or(image_id);
            facts.labels = config.labels.unwrap_or_default();
            facts.pod = pod;
        }
        Ok(None) => {}
        Err(e) => errors.push(e),
    }

    if let Some(image_id) = image_id {
        let images_json = graphroot
            .join(format!("{driver}-images"))
            .join("images.json");
        let images: Option<Vec<StorageImage>> = keep(errors, read_json(&images_json));
        facts.image_digest = images
            .into_iter()
            .flatten()
            .find(|i| i.id == image_id)
            .and_then(|i| i.digest)
            .filter(|d| d.starts_with("sha256:"));
    }
    found.then_some(facts)
}

/// The container's libpod config and its pod's name, from `libpod/bolt_state.db`.
fn libpod_config(
    graphroot: &Path,
    id: &str,
) -> Result<Option<(LibpodConfig, Option<String>)>, MetadataError> {
    let path = graphroot.join("libpod").join("bolt_state.db");
    let Some(db) = BoltFile::open(&path)? else {
        return Ok(None);
    };
    let json = |bucket: &[&[u8]]| -> Result<Option<Vec<u8>>, MetadataError> {
        let Some(b) = db.bucket(bucket)? else {
            return Ok(None);
        };
        Ok(match db.get(&b, b"config")? {
            Some(Value::Bytes(bytes)) => Some(bytes),
            _ => None,
        })
    };
    let Some(bytes) = json(&[b"ctr", id.as_bytes()])? else {
        return Ok(None);
    };
    let config: LibpodConfig =
        serde_json::from_slice(&bytes).map_err(|source| MetadataError::Json {
            path: path.clone(),
            source,
        })?;
    let pod = match config.pod.as_deref().filter(|p| !p.is_empty()) {
        Some(pod_id) => json(&[b"pod", pod_id.as_bytes()])?
            .and_then(|b| serde_json::from_slice::<LibpodPod>(&b).ok())
            .and_then(|p| p.name)
            .filter(|n| !n.is_empty()),
        None => None,
    };
    Ok(Some((config, pod)))
}

fn keep<T>(errors: &mut Vec<MetadataError>, read: Result<Option<T>, MetadataError>) -> Option<T> {
    read.unwrap_or_else(|e| {
        errors.push(e);
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TESTDATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/enrich/container/testdata/podman"
    );
    const WEB: &str = "6b804fba4255065e2ffdcb536f4b058496543b163fefa61a05f9e5fae98bd033";
    const CART: &str = "d1780f3f7b14f3392a728aac0bce07357d144be26a75a2c5f2bc18668f293d83";
    const DIGEST: &str = "sha256:5839e55d47296d76774d556dd15a06bc0262ab93affc9b19100509eb190a9f25";

    /// The fixture files laid out as podman lays them out (vfs driver).
    fn graphroot() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        for (dir, file) in [
            ("libpod", "bolt_state.db"),
            ("vfs-containers", "containers.json"),
            ("vfs-images", "images.json"),
        ] {
            std::fs::create_dir_all(p.join(dir)).unwrap();
            std::fs::copy(Path::new(TESTDATA).join(file), p.join(dir).join(file)).unwrap();
        }
        root
    }

    #[test]
    fn bundle_names_the_storage() {
        let b = PathBuf::from(format!(
            "/var/lib/containers/storage/overlay-containers/{WEB}/userdata"
        ));
        assert_eq!(
            storage_of_bundle(&b, WEB),
            Some((
                PathBuf::from("/var/lib/containers/storage"),
                "overlay".to_owned()
            ))
        );
        assert_eq!(storage_of_bundle(&b, CART), None, "another id");
        let other = PathBuf::from(format!("/run/containerd/x/k8s.io/{WEB}"));
        assert_eq!(storage_of_bundle(&other, WEB), None);
        let no_driver = PathBuf::from(format!("/s/-containers/{WEB}/userdata"));
        assert_eq!(storage_of_bundle(&no_driver, WEB), None);
    }

    #[test]
    fn name_image_digest_labels_and_pod() {
        let root = graphroot();
        let mut errors = Vec::new();
        let web = read(root.path(), "vfs", WEB, &mut errors).expect("known");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(web.name.as_deref(), Some("web1"));
        assert_eq!(web.image.as_deref(), Some("localhost/needle-busybox:test"));
        assert_eq!(web.image_digest.as_deref(), Some(DIGEST));
        assert_eq!(
            web.labels,
            BTreeMap::from([
                ("app".to_owned(), "shop".to_owned()),
                ("tier".to_owned(), "front".to_owned())
            ])
        );
        assert_eq!(web.pod, None);
        let cart = read(root.path(), "vfs", CART, &mut errors).expect("known");
        assert_eq!(cart.name.as_deref(), Some("cart"));
        assert_eq!(cart.pod.as_deref(), Some("shop-pod"));
        assert!(read(root.path(), "vfs", &"0".repeat(64), &mut errors).is_none());
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn without_the_bolt_file_storage_still_names_the_container() {
        let root = graphroot();
        std::fs::remove_file(root.path().join("libpod/bolt_state.db")).unwrap();
        let mut errors = Vec::new();
        let web = read(root.path(), "vfs", WEB, &mut errors).expect("known");
        assert_eq!(web.name.as_deref(), Some("web1"));
        assert_eq!(web.image_digest.as_deref(), Some(DIGEST));
        assert!(web.labels.is_empty());
    }

    #[test]
    fn broken_files_are_errors_naming_them() {
        let root = graphroot();
        std::fs::write(root.path().join("vfs-containers/containers.json"), "[{").unwrap();
        std::fs::write(root.path().join("libpod/bolt_state.db"), vec![7u8; 8192]).unwrap();
        let mut errors = Vec::new();
        assert!(read(root.path(), "vfs", WEB, &mut errors).is_none());
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("containers.json"), "{text:?}");
        assert!(text[1].contains("bolt_state.db"), "{text:?}");
    }
}
