use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::scan::{ScanOptions, scan};
use crate::signatures::Engine;

fn demo() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/demo/traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files.remove(0)
}

fn opts(engine: Option<Arc<Engine>>) -> ScanOptions {
    ScanOptions {
        signatures: engine,
        ..ScanOptions::default()
    }
}

/// The demo's aggregates with signatures, written to `dir/demo.npart`.
fn written(dir: &Path) -> (PathBuf, crate::scan::ScanOutput, Arc<Engine>) {
    let engine = Arc::new(Engine::load(&[], &[]).unwrap());
    let out = scan(&[demo()], &opts(Some(engine.clone()))).unwrap();
    let path = dir.join("demo.npart");
    let header = Header::for_run(out.window, Some(engine_digest(&engine)));
    write(&path, header, &out.inputs, &out.partials).unwrap();
    (path, out, engine)
}

#[test]
fn round_trip_keeps_every_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut out, _) = written(dir.path());
    let back = read(&path).unwrap();
    for p in out.partials.values_mut() {
        p.features.context_probe = None;
    }
    assert!(!out.partials.is_empty());
    assert!(
        out.partials.values().any(|p| !p.signatures.hits.is_empty()),
        "the demo has signature hits"
    );
    assert_eq!(back.partials, out.partials);
    assert_eq!(back.rows, out.inputs.rows);
    assert_eq!(back.files.len(), 1);
    assert_eq!(back.files[0].path, out.inputs.files[0].path);
    assert_eq!(back.header.workloads, out.partials.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Nothing left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn damaged_foreign_and_future_files_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = written(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let head_end = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    let with_version = |v: u32| {
        let text = String::from_utf8_lossy(&bytes[..head_end]).replace(
            &format!("\"format_version\":{FORMAT_VERSION}"),
            &format!("\"format_version\":{v}"),
        );
        let mut out = text.into_bytes();
        out.extend_from_slice(&bytes[head_end..]);
        out
    };
    let future = format!("format version 99, this build reads version {FORMAT_VERSION}");
    // Version 2 held the signature state inside the feature aggregates.
    let older = format!("format version 2, this build reads version {FORMAT_VERSION}");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "not a needle partial file"),
        (
            "parquet",
            b"PAR1....PAR1".to_vec(),
            "not a needle partial file",
        ),
        ("future", with_version(99), &future),
        ("older", with_version(2), &older),
        ("no header", b"needle-partials\n".to_vec(), "damaged"),
        ("truncated", bytes[..bytes.len() - 40].to_vec(), "damaged"),
        ("header only", bytes[..head_end].to_vec(), "damaged"),
        (
            "flipped",
            {
                let mut v = bytes.clone();
                let at = head_end + (v.len() - head_end) / 2;
                v[at] ^= 0x55;
                v
            },
            "damaged",
        ),
        (
            "trailing",
            {
                let mut v = bytes.clone();
                v.extend_from_slice(b"garbage");
                v
            },
            "damaged",
        ),
    ];
    for (name, content, want) in cases {
        let p = dir.path().join(format!("{}.npart", name.replace(' ', "-")));
        std::fs::write(&p, content).unwrap();
        let e = read(&p).err().unwrap_or_else(|| panic!("{name}: read"));
        let text = e.to_string();
        assert!(text.contains(want), "{name}: {text}");
        assert!(text.contains(&p.display().to_string()), "{name}: {text}");
        assert!(!text.contains('\n'), "{name}: one line: {text}");
    }
}

#[test]
fn a_partial_merges_only_into_a_run_like_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (path, direct, engine) = written(dir.path());
    // The same engine: merged as if read here.
    let merged = scan(std::slice::from_ref(&path), &opts(Some(engine))).unwrap();
    assert_eq!(merged.partial_files, 1);
    assert!(merged.traces.is_empty());
    assert_eq!(merged.inputs.rows, direct.inputs.rows);
    assert_eq!(
        crate::features::finalize(crate::scan::split(merged.partials).0).rows,
        crate::features::finalize(crate::scan::split(direct.partials).0).rows
    );
    // Without signatures, or with other intel: refused, naming the file.
    let e = scan(std::slice::from_ref(&path), &opts(None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("demo.npart") && e.contains("--no-signatures"),
        "{e}"
    );
    let intel = dir.path().join("intel");
    std::fs::create_dir(&intel).unwrap();
    std::fs::write(
        intel.join("x.txt"),
        "# kind: domains\n# source: test\n# version: 1\nextra.invalid\n",
    )
    .unwrap();
    let other = Arc::new(Engine::load(&[], &[intel]).unwrap());
    let e = scan(std::slice::from_ref(&path), &opts(Some(other)))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("signature rules and intel"), "{e}");
    // The same trace twice (beside its own partial) would count twice.
    let e = scan(
        &[path.clone(), demo()],
        &opts(Some(Arc::new(Engine::load(&[], &[]).unwrap()))),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("already read"), "{e}");
    // A window given when reading partials is refused.
    let mut o = opts(None);
    o.window.since = Some(crate::scan::TimeBound::At(0));
    let e = scan(&[path], &o).err().unwrap().to_string();
    assert!(e.contains("--since/--until"), "{e}");
}
