//! The reader against files the real engines wrote (podman 4.3's `bolt_state.db` with two
//! containers and a pod, containerd 1.6's `meta.db` with one container and its image), and
//! against every one-byte corruption of them.

use super::*;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/enrich/container/testdata");
const PODMAN_WEB: &str = "6b804fba4255065e2ffdcb536f4b058496543b163fefa61a05f9e5fae98bd033";
const CONTAINERD_API: &str = "b0546faa4c07974aca03633ed49f4ae31e6a9000880c2c00fba823e0d11b8d55";

fn open(rel: &str) -> BoltFile {
    BoltFile::open(&Path::new(TESTDATA).join(rel))
        .expect("readable")
        .expect("exists")
}

fn bytes(v: Option<Value>) -> Vec<u8> {
    match v {
        Some(Value::Bytes(b)) => b,
        other => panic!("expected bytes, got {other:?}"),
    }
}

#[test]
fn podman_container_config_is_found_by_id() {
    let db = open("podman/bolt_state.db");
    let ctr = db
        .bucket(&[b"ctr", PODMAN_WEB.as_bytes()])
        .unwrap()
        .expect("ctr/<id> bucket");
    let config = bytes(db.get(&ctr, b"config").unwrap());
    let json: serde_json::Value = serde_json::from_slice(&config).expect("JSON config");
    assert_eq!(json["name"], "web1");
    assert_eq!(json["labels"]["app"], "shop");
    assert_eq!(json["rootfsImageName"], "localhost/needle-busybox:test");
    assert!(db.bucket(&[b"ctr", &[b'0'; 64]]).unwrap().is_none());
    assert!(db.get(&ctr, b"no-such-key").unwrap().is_none());
}

#[test]
fn containerd_labels_and_image_target() {
    let db = open("containerd/meta.db");
    let ctr = db
        .bucket(&[b"v1", b"k8s.io", b"containers", CONTAINERD_API.as_bytes()])
        .unwrap()
        .expect("container bucket");
    assert_eq!(
        bytes(db.get(&ctr, b"image").unwrap()),
        b"localhost/needle-busybox:test"
    );
    let Some(Value::Bucket(labels)) = db.get(&ctr, b"labels").unwrap() else {
        panic!("labels bucket")
    };
    let labels: Vec<(String, String)> = db
        .entries(&labels)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k).unwrap(),
                String::from_utf8(bytes(Some(v))).unwrap(),
            )
        })
        .collect();
    assert!(labels.contains(&("io.kubernetes.pod.name".into(), "api-0".into())));
    assert!(labels.contains(&("io.kubernetes.pod.namespace".into(), "shop".into())));
    let target = db
        .bucket(&[
            b"v1",
            b"k8s.io",
            b"images",
            b"localhost/needle-busybox:test",
            b"target",
        ])
        .unwrap()
        .expect("image target");
    assert_eq!(
        bytes(db.get(&target, b"digest").unwrap()),
        b"sha256:88b465fe38f5a34479352001622938a352142bb374ddb5d70a12088065ae7472"
    );
}

#[test]
fn missing_file_is_none_and_other_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        BoltFile::open(&dir.path().join("absent.db"))
            .unwrap()
            .is_none()
    );
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 9000]).unwrap();
    let err = BoltFile::open(&junk).err().expect("junk is refused");
    assert!(err.to_string().contains("junk.db"), "{err}");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert!(BoltFile::open(&empty).is_err());
}

#[test]
fn a_symlink_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("meta.db");
    std::os::unix::fs::symlink(Path::new(TESTDATA).join("containerd/meta.db"), &link).unwrap();
    let err = BoltFile::open(&link).err().expect("symlink refused");
    assert!(matches!(err, BoltError::Read { .. }), "{err}");
}

/// Every byte of the file changed (one at a time): the reader answers or errs, never panics
/// or loops. Lookups that still succeed must be well-formed.
#[test]
fn every_one_byte_corruption_is_survived() {
    let original = std::fs::read(Path::new(TESTDATA).join("containerd/meta.db")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    // Only pages that hold data: the zero-filled tail pages would take long and teach nothing.
    let used = original
        .chunks(4096)
        .rposition(|p| p.iter().any(|b| *b != 0))
        .map_or(0, |i| (i + 1) * 4096);
    for at in (0..used).step_by(31) {
        let mut bad = original.clone();
        bad[at] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let Ok(Some(db)) = BoltFile::open(&path) else {
            continue;
        };
        if let Ok(Some(c)) =
            db.bucket(&[b"v1", b"k8s.io", b"containers", CONTAINERD_API.as_bytes()])
        {
            let _ = db.get(&c, b"image");
            if let Ok(Some(Value::Bucket(l))) = db.get(&c, b"labels") {
                let _ = db.entries(&l);
            }
        }
    }
}
