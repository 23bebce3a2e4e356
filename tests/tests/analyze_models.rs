//! `analyze train` / `analyze eval` / `analyze --model` on the demo's real capture.

use std::path::{Path, PathBuf};
use std::process::Command;

use needle_tests::binary;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped default model is what `analyze train` makes from its documented command: the
/// README's retraining command, with the same seed, gives the same bytes.
#[test]
fn train_reproduces_the_shipped_default_model_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("default.model");
    let demo = repo().join("datasets/demo");
    let run = Command::new(binary("analyze"))
        .args(["train"])
        .arg(&demo)
        .arg("--labels")
        .arg(demo.join("labels.csv"))
        .args(["--seed", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let shipped = std::fs::read(repo().join("models/default.model")).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == shipped,
        "models/default.model is stale: retrain it with the command in analyze/README.md (## Trained models)"
    );
}

#[test]
fn eval_reports_metrics_and_bad_models_are_clear_errors() {
    let demo = repo().join("datasets/demo");
    let out = Command::new(binary("analyze"))
        .arg("eval")
        .arg(&demo)
        .arg("--labels")
        .arg(demo.join("labels.csv"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["attack"], 1);
    assert_eq!(json["workloads"][0]["scorer"], "models (combined)");
    assert!(json["workloads"][0]["roc_auc"].as_f64().is_some());
    assert_eq!(json["attacks"][0]["rank"], 1);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.model");
    std::fs::write(&bad, "not a model").unwrap();
    let out = Command::new(binary("analyze"))
        .arg(&demo)
        .arg("--model")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.model: not a needle model file"), "{err}");
}
