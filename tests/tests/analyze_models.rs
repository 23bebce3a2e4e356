//! `analyze train` / `analyze eval` / `analyze --model` on the lab's and the demo's real captures.

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
    let train = repo().join("datasets/lab-train");
    let run = Command::new(binary("analyze"))
        .args(["train"])
        .arg(&train)
        .arg("--labels")
        .arg(train.join("labels.csv"))
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

/// Issue #8's targets, on the lab's held-out test set (another seed, no workload in common
/// with training): with the default model, ROC AUC ≥ 0.99 and every attack above every normal
/// workload, models alone and with signatures; no benign lab-validation or demo container carries
/// any finding.
#[test]
fn default_model_ranks_every_lab_test_attack_first_and_flags_no_benign_container() {
    let test = repo().join("datasets/lab-validation");
    let out = Command::new(binary("analyze"))
        .arg("eval")
        .arg(&test)
        .arg("--labels")
        .arg(test.join("labels.csv"))
        .args(["--format", "json", "--no-progress"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["seen_in_training"], 0, "{json}");
    assert_eq!(json["attack"], 8, "{json}");
    for scorer in ["models (combined)", "ranking (models + signatures)"] {
        let m = json["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["scorer"] == scorer)
            .unwrap_or_else(|| panic!("no {scorer} in {json}"));
        assert!(
            m["roc_auc"].as_f64().unwrap_or(0.0) >= 0.99,
            "{scorer}: {m}"
        );
        assert_eq!(m["attacks_first"], true, "{scorer}: {m}");
    }

    for dataset in ["datasets/lab-validation", "datasets/demo"] {
        let dir = repo().join(dataset);
        let labels = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
        let header: Vec<&str> = labels.lines().next().unwrap().split(',').collect();
        let (w, l) = (
            header.iter().position(|h| *h == "workload").unwrap(),
            header.iter().position(|h| *h == "label").unwrap(),
        );
        let normal: Vec<String> = labels
            .lines()
            .skip(1)
            .map(|r| r.split(',').collect::<Vec<_>>())
            .filter(|r| r[l] == "normal")
            .map(|r| r[w].to_owned())
            .collect();
        assert!(!normal.is_empty());
        let out = Command::new(binary("analyze"))
            .arg(&dir)
            .args(["--format", "json", "--no-progress"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for wl in json["workloads"].as_array().unwrap() {
            let id = wl["workload"].as_str().unwrap();
            if normal.iter().any(|n| n == id) {
                assert_eq!(
                    wl["findings"].as_array().map_or(0, Vec::len),
                    0,
                    "{dataset}: benign {id} carries findings: {}",
                    wl["findings"]
                );
            }
        }
    }
}
