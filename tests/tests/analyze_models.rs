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
/// any finding but those the lab's suppression rules expect (its installers' new binaries).
#[test]
fn default_model_ranks_every_lab_test_attack_first_and_flags_no_benign_container() {
    let test = repo().join("datasets/lab-validation");
    let out = Command::new(binary("analyze"))
        .arg("eval")
        .arg(&test)
        .arg("--labels")
        .arg(test.join("labels.csv"))
        .arg("--suppress")
        .arg(repo().join("datasets/lab-suppressions.toml"))
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
        // The lab's installers download a tool and run it: a new binary executed by
        // GuardDuty's definition, expected in this fleet and silenced by the operator's
        // suppression rules — every other benign finding would be a false alarm.
        let out = Command::new(binary("analyze"))
            .arg(&dir)
            .args(["--format", "json", "--no-progress", "--suppress"])
            .arg(repo().join("datasets/lab-suppressions.toml"))
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
                for s in wl["suppressed"].as_array().into_iter().flatten() {
                    assert_eq!(s["type"], "Execution:Runtime/NewBinaryExecuted", "{s}");
                }
            }
        }
    }
}

fn analyze(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(binary("analyze")).args(args).output().unwrap()
}

/// A real program end to end: UNM `ps` traces (`tests/fixtures/unm`) imported with
/// `--format pid-call`, trained on the first half of the normal processes, evaluated on the
/// rest and the two trojan runs (one attack recording per intrusion file). The sequence
/// members' combination must be at least its best member's AUC minus 0.01: calibrated members
/// combined must not lose what the best of them finds. The models' combination (with the
/// workload-feature part) is held to 0.9 only: here it is 0.944 against 1.000, one normal
/// process's feature vector being as far out as the trojans (an open problem of issue 20).
#[test]
fn unm_ps_imports_trains_and_the_combination_keeps_up_with_its_best_member() {
    let dir = tempfile::tempdir().unwrap();
    let src = repo().join("tests/fixtures/unm/ps");
    let text = std::fs::read_to_string(src.join("normal/ps-normal.int")).unwrap();
    let mut order: Vec<&str> = Vec::new();
    for line in text.lines() {
        let pid = line.split_whitespace().next().unwrap();
        if !order.contains(&pid) {
            order.push(pid);
        }
    }
    let train_pids = &order[..order.len().div_ceil(2)];
    let (mut train, mut test) = (String::new(), String::new());
    for line in text.lines() {
        let pid = line.split_whitespace().next().unwrap();
        let out = if train_pids.contains(&pid) {
            &mut train
        } else {
            &mut test
        };
        out.push_str(line);
        out.push('\n');
    }
    let p = |n: &str| dir.path().join(n);
    for (d, body) in [("train", &train), ("test", &test)] {
        std::fs::create_dir_all(p(d)).unwrap();
        std::fs::write(p(d).join("ps-normal.int"), body).unwrap();
    }
    let import = |d: PathBuf, label: &str, out: PathBuf| {
        let o = analyze(&[
            "import".as_ref(),
            "syscall-traces".as_ref(),
            d.as_os_str(),
            "--format".as_ref(),
            "pid-call".as_ref(),
            "--label".as_ref(),
            label.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let said = import(p("train"), "normal", p("train.parquet"));
    assert!(
        said.contains(&format!("imported {} traces", train_pids.len())),
        "{said}"
    );
    import(p("test"), "normal", p("test.parquet"));
    import(src.join("intrusion"), "attack", p("attack.parquet"));
    let o = analyze(&[
        "train".as_ref(),
        p("train.parquet").as_os_str(),
        "--out".as_ref(),
        p("ps.model").as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = analyze(&[
        "eval".as_ref(),
        p("test.parquet").as_os_str(),
        p("attack.parquet").as_os_str(),
        "--model".as_ref(),
        p("ps.model").as_os_str(),
        "--attack-unit".as_ref(),
        "file".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["attack"], 2, "two intrusion files, two recordings");
    assert_eq!(json["seen_in_training"], 0);
    let aucs: Vec<(String, f64)> = json["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["scorer"].as_str().unwrap().to_string(),
                m["roc_auc"].as_f64().unwrap(),
            )
        })
        .collect();
    eprintln!("{aucs:?}");
    let auc = |n: &str| aucs.iter().find(|a| a.0 == n).unwrap().1;
    let best = aucs
        .iter()
        .filter(|a| a.0.starts_with("sequences: ") || a.0 == "workload features")
        .map(|a| a.1)
        .fold(0.0, f64::max);
    assert_eq!(
        aucs.iter()
            .filter(|a| a.0.starts_with("sequences: "))
            .count(),
        6,
        "every member is reported: {aucs:?}"
    );
    let best_member = aucs
        .iter()
        .filter(|a| a.0.starts_with("sequences: "))
        .map(|a| a.1)
        .fold(0.0, f64::max);
    assert!(best >= 0.9, "{aucs:?}");
    assert!(
        auc("sequences (combined)") >= best_member - 0.01,
        "{aucs:?}"
    );
    assert!(auc("models (combined)") >= 0.9, "{aucs:?}");
}

/// Bad `PID SYSCALL` files are one-line errors naming the file and the line, and write
/// nothing.
#[test]
fn pid_call_import_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    let out = dir.path().join("out.parquet");
    for (body, line) in [
        ("10 5\n10 3\n11\n", 3),
        ("10 5 7\n", 1),
        ("10 read\n", 1),
        ("10 5\n-1 5\n", 2),
    ] {
        std::fs::write(traces.join("bad.int"), body).unwrap();
        let o = analyze(&[
            "import".as_ref(),
            "syscall-traces".as_ref(),
            traces.as_os_str(),
            "--format".as_ref(),
            "pid-call".as_ref(),
            "--label".as_ref(),
            "normal".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{body:?}");
        assert!(
            err.contains(&format!("bad.int:{line}: `"))
                && err.contains("PID SYSCALL")
                && err.lines().count() == 1,
            "{err}"
        );
        assert!(!out.exists());
    }
}
