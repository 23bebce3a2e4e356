//! Spark runs the map step (issue 22, item 2): `scripts/spark/needle_partials.py` under real
//! Spark (local mode, `local[2]`) over a multi-host, multi-day hive tree, with 1, 2 and 7
//! partitions and the file list shuffled, then `analyze OUT/`, gives `analyze TREE`'s
//! `--format json` byte for byte (and its feature table). Needs Java 17 and pyspark, which
//! scripts/setup.sh installs; without them the test is skipped with a SKIP line (a failure in
//! CI, where they must be there).

use std::path::{Path, PathBuf};
use std::process::Command;

use needle_tests::fleet::{analyze_json, analyze_raw, hive_tree};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The project's venv python (scripts/setup.sh), or NEEDLE_PYTHON.
fn python() -> PathBuf {
    std::env::var_os("NEEDLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/py/bin/python"))
}

/// Why Spark cannot run here, if it cannot.
fn spark_missing() -> Option<String> {
    let java = Command::new("java").arg("-version").output();
    if !java.is_ok_and(|o| o.status.success()) {
        return Some("no java (scripts/setup.sh installs openjdk-17-jre-headless)".into());
    }
    let py = python();
    let import = Command::new(&py).args(["-c", "import pyspark"]).output();
    if !import.is_ok_and(|o| o.status.success()) {
        return Some(format!(
            "{}: cannot import pyspark (scripts/setup.sh installs it)",
            py.display()
        ));
    }
    None
}

fn spark_partials(dir: &Path, out: &str, partitions: usize, seed: u64) {
    let py = python();
    let bin = py.parent().expect("venv bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(bin.join("spark-submit"))
        .current_dir(dir)
        .env("PATH", path)
        .env("PYSPARK_PYTHON", &py)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("SPARK_LOCAL_DIRS", dir.join("spark-tmp"))
        .args([
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.driver.bindAddress=127.0.0.1",
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--files",
        ])
        .arg(needle_tests::binary("analyze"))
        .arg(workspace().join("scripts/spark/needle_partials.py"))
        .args(["tree", "--out", out, "--partitions"])
        .arg(partitions.to_string())
        .arg("--shuffle-seed")
        .arg(seed.to_string())
        .output()
        .expect("spark-submit");
    assert!(
        o.status.success(),
        "spark-submit failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let n = std::fs::read_dir(dir.join(out))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "npart"))
        })
        .count();
    assert_eq!(n, partitions.min(8), "one partial file per non-empty task");
}

fn features(dir: &Path, input: &str) -> Vec<u8> {
    let out = dir.join(format!("{input}.features.parquet"));
    analyze_raw(
        dir,
        &[input, "--format", "parquet", "--out", out.to_str().unwrap()],
    );
    std::fs::read(out).unwrap()
}

#[test]
fn spark_local_gives_the_native_result_for_any_partitioning() {
    if !needle_tests::require("fleet_spark", spark_missing()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hive_tree(&dir.join("tree"));
    let native = analyze_json(dir, &["tree"]);
    let doc: serde_json::Value = serde_json::from_str(&native).unwrap();
    assert_eq!(doc["inputs"]["files"].as_array().unwrap().len(), 8);
    let table = features(dir, "tree");
    for (partitions, seed) in [(1, 11), (2, 22), (7, 77)] {
        let out = format!("parts-{partitions}");
        spark_partials(dir, &out, partitions, seed);
        let got = analyze_json(dir, &[&out]);
        assert!(
            got == native,
            "Spark with {partitions} partitions differs from analyze tree/"
        );
        if partitions == 7 {
            assert_eq!(features(dir, &out), table, "feature tables differ");
        }
        eprintln!("{partitions} partitions: same JSON as native");
    }
    // A second run into a directory that already holds partial files is refused.
    let py = python();
    let bin = py.parent().unwrap();
    let o = Command::new(&py)
        .current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .arg(workspace().join("scripts/spark/needle_partials.py"))
        .args(["tree", "--out", "parts-1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds partial files"));
}
