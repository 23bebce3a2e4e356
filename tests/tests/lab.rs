//! The product's proof, end to end: a short scenario lab (8 benign containers, 3 attacked web
//! apps: the seed's command injection → miner chain with the pool's DNS lookup, a C2 beacon
//! walking a domain-generation algorithm, and a reverse shell) recorded by the real `capture`,
//! then the real `analyze` with the default model. Every attack container must rank above every
//! benign one, each attack must carry every finding its `labels.csv` row expects (with
//! evidence), the benign ones no finding at all (signature or model), and the attacks must
//! really have happened (the fake pool, resolver and controllers saw them). Root only (eBPF,
//! runc).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use needle_tests::runc::runc_available;
use needle_tests::{binary, missing_privileges, require};

#[test]
fn lab_attacks_outrank_every_benign_container_and_benign_ones_carry_no_finding() {
    if !require(
        "lab::attacks_outrank_benign",
        missing_privileges().or_else(runc_available),
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("lab");
    let manifest = run_lab(
        &out,
        &[
            "--seed",
            "11",
            "--benign",
            "8",
            "--attacks",
            "miner,c2-dga-beacon,reverse-shell",
            "--seconds",
            "30",
        ],
    );

    // The attacks happened: the injections were delivered and the fake internet saw the miner
    // speak Stratum, the beacon's lookups and the reverse shell connect.
    assert_eq!(manifest["injections_delivered"], 3, "{manifest}");
    assert_eq!(
        manifest["attacks_unconfirmed"],
        serde_json::json!([]),
        "{manifest}"
    );
    let activity = &manifest["activity"];
    assert!(
        activity["stratum.message"].as_u64().unwrap_or(0) > 0,
        "the miner never spoke Stratum: {activity}"
    );
    assert!(
        activity["dns.query"].as_u64().unwrap_or(0) > 0,
        "the fake resolver saw no query: {activity}"
    );
    assert!(
        activity
            .as_object()
            .is_some_and(|a| a.keys().any(|k| k.starts_with("reverse-shell:"))),
        "the reverse shell never connected: {activity}"
    );

    let labels = labels(&out);
    assert_eq!(labels.len(), 11);
    let json = rank_with_lab_suppressions(&out);
    let workloads = json["workloads"].as_array().expect("workloads");

    // Only the lab's containers are in the dataset.
    assert_eq!(
        workloads.len(),
        11,
        "the dataset holds exactly the lab's containers"
    );
    eprintln!("rank  score  label   scenario        findings");
    let mut worst_attack = 0;
    let mut best_benign = usize::MAX;
    let mut failures = Vec::new();
    for w in workloads {
        let id = w["workload"].as_str().expect("workload");
        let rank = w["rank"].as_u64().expect("rank") as usize;
        let Label {
            label,
            scenario,
            expected,
        } = labels
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not a lab container"));
        let findings: Vec<&serde_json::Value> = w["findings"]
            .as_array()
            .map(|f| f.iter().collect())
            .unwrap_or_default();
        let types: Vec<&str> = findings.iter().filter_map(|f| f["type"].as_str()).collect();
        eprintln!(
            "{rank:>4}  {:>5.1}  {label:<7} {scenario:<15} {types:?}",
            w["score"].as_f64().unwrap_or(0.0)
        );
        assert_eq!(
            w["label"].as_str(),
            Some(label.as_str()),
            "the trace's label column agrees with labels.csv"
        );
        if label == "attack" {
            worst_attack = worst_attack.max(rank);
            assert!(!expected.is_empty(), "attack {scenario} expects no finding");
            for want in expected {
                match findings.iter().find(|f| f["type"].as_str() == Some(want)) {
                    None => failures.push(format!("attack {scenario} ({id}) lacks {want}")),
                    // Signature findings carry the matching events.
                    Some(f) if f["events"].as_array().is_none_or(Vec::is_empty) => {
                        failures.push(format!("attack {scenario}: {want} has no evidence"))
                    }
                    Some(_) => {}
                }
            }
        } else {
            best_benign = best_benign.min(rank);
            for t in &types {
                failures.push(format!("benign {scenario} container {id} carries {t}"));
            }
        }
    }
    assert!(
        worst_attack < best_benign,
        "every attack must outrank every benign container (worst attack rank {worst_attack}, best benign rank {best_benign})"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Issue 21's check on a fresh run: benign types the default model was never trained on,
/// several of them doing what attacks do (an agent installing its plugin with `curl | sh`, a
/// service replacing its own tools while it runs, a CI runner building and running programs in
/// /tmp, a JIT mapping memory executable, a sidecar with many connections, log rotation, a key
/// backup, a many-port prober), and attacks no intel list names, delivered by command injection
/// and by `kubectl exec`. Every attack must still rank above every benign container, and each
/// must have happened.
#[test]
fn unseen_benign_types_and_stealth_attacks_keep_every_attack_first() {
    if !require(
        "lab::unseen_types",
        missing_privileges().or_else(runc_available),
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("lab");
    let manifest = run_lab(
        &out,
        &[
            "--seed",
            "23",
            "--benign",
            "9",
            "--benign-kinds",
            "web,startup-installer,pkg-update,ci-runner,jit-runtime,sidecar-proxy,log-rotate,key-backup,port-prober",
            "--attacks",
            // slow-beacon lives off the land: started by the container's own process, no new
            // binary, a domain in no list. It is found only by what changed after start-up — a
            // destination and a name that keep coming back in 3 distinct minutes — so the run
            // is long enough for the attacks (injected at 20–40 % of it) to come after the 60 s
            // start-up and for the beacon to recur. (This seed was looked at: at d30c283 its
            // lone CI runner outranked the beacon, 34.5 to 29.6, which b0bb2ba addressed; the
            // held-out figures are lab-holdout-4 and -5 in BENCHMARKS.md.)
            "masq-miner,setuid-backdoor,cred-harvest,slow-beacon",
            "--seconds",
            "300",
        ],
    );
    assert_eq!(
        manifest["attacks_unconfirmed"],
        serde_json::json!([]),
        "{manifest}"
    );
    let labels = labels(&out);
    assert_eq!(labels.len(), 13);
    let json = rank_with_lab_suppressions(&out);
    let (mut worst_attack, mut best_benign) = (0, usize::MAX);
    for w in json["workloads"].as_array().expect("workloads") {
        let id = w["workload"].as_str().expect("workload");
        let rank = w["rank"].as_u64().expect("rank") as usize;
        let Label {
            label, scenario, ..
        } = labels
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not a lab container"));
        eprintln!(
            "{rank:>4}  {:>6.1}  {label:<7} {scenario:<18} {}",
            w["score"].as_f64().unwrap_or(0.0),
            w["findings"]
        );
        if label == "attack" {
            worst_attack = worst_attack.max(rank);
        } else {
            best_benign = best_benign.min(rank);
        }
    }
    assert!(
        worst_attack < best_benign,
        "every attack must outrank every benign container (worst attack rank {worst_attack}, best benign rank {best_benign})"
    );
}

/// Issue 20, item 4: the sequence models on our own traces. Two lab runs recorded with
/// `capture --syscalls full` (every call of every thread, in order): `analyze train` fits the
/// sequence members on the first run's benign containers, and `analyze eval` on a second run
/// (another seed: other names, timings and parameters, attacks beside the benign containers)
/// must put the attacked containers' sequences above the benign ones — through the same code
/// that models the UNM traces.
#[test]
fn sequences_from_full_syscall_capture_train_and_rank_attacks_up() {
    if !require(
        "lab::sequences_full_syscalls",
        missing_privileges().or_else(runc_available),
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |seed: &str, attacks: &str, name: &str| {
        let out = dir.path().join(name);
        let args = ["--seed", seed, "--benign", "8", "--attacks", attacks];
        run_lab(
            &out,
            &[&args[..], &["--seconds", "30", "--syscalls", "full"]].concat(),
        );
        out
    };
    let train = run("31", "none", "train");
    let test = run("32", "miner,reverse-shell,fileless", "test");
    let model = dir.path().join("seq.model");
    let t = Command::new(binary("analyze"))
        .arg("train")
        .arg(train.join("traces"))
        .arg("--labels")
        .arg(train.join("labels.csv"))
        .arg("--out")
        .arg(&model)
        .arg("--no-progress")
        .output()
        .expect("analyze train");
    let log = String::from_utf8_lossy(&t.stderr);
    assert!(t.status.success(), "{log}");
    assert!(
        log.contains("markov") && !log.contains(" 0 syscalls"),
        "no sequences trained: {log}"
    );
    let e = Command::new(binary("analyze"))
        .arg("eval")
        .arg(test.join("traces"))
        .arg("--labels")
        .arg(test.join("labels.csv"))
        .arg("--model")
        .arg(&model)
        .args(["--no-progress", "--format", "json"])
        .output()
        .expect("analyze eval");
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&e.stdout).expect("eval json");
    let auc = |scorer: &str| {
        doc["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .find(|m| m["scorer"] == scorer)
            .and_then(|m| m["roc_auc"].as_f64())
            .unwrap_or_else(|| panic!("no {scorer} in {doc}"))
    };
    eprintln!(
        "sequences {:.3}, models {:.3}",
        auc("sequences (combined)"),
        auc("models (combined)")
    );
    assert_eq!(doc["attack"], 3, "{doc}");
    assert!(auc("sequences (combined)") >= 0.9, "{doc:#}");
    assert!(auc("models (combined)") >= 0.9, "{doc:#}");
}

/// Runs the lab binary with `args` into `out` (the capture built beside the tests), prints what
/// it printed, and returns its manifest (`lab-run.json`).
fn run_lab(out: &Path, args: &[&str]) -> serde_json::Value {
    let lab = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--capture")
        .arg(binary("capture"))
        .output()
        .expect("run lab");
    eprintln!("{}", String::from_utf8_lossy(&lab.stdout));
    assert!(
        lab.status.success(),
        "lab failed: {}",
        String::from_utf8_lossy(&lab.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("lab-run.json")).expect("lab-run.json"))
        .expect("json")
}

/// One row of the lab's `labels.csv` (workload,label,scenario,expected_findings,…).
struct Label {
    label: String,
    scenario: String,
    expected: Vec<String>,
}

fn labels(out: &Path) -> HashMap<String, Label> {
    std::fs::read_to_string(out.join("labels.csv"))
        .expect("labels.csv")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let label = Label {
                label: f[1].to_owned(),
                scenario: f[2].to_owned(),
                expected: f[3]
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            };
            (f[0].to_owned(), label)
        })
        .collect()
}

/// `analyze` on a lab dataset with the lab's suppression rules: its benign installers run what
/// they download (a new binary by definition), and the operator's rules say it is expected.
fn rank_with_lab_suppressions(out: &Path) -> serde_json::Value {
    let analyze = Command::new(binary("analyze"))
        .arg(out)
        .args(["--format", "json", "--no-progress", "--suppress"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../datasets/lab-suppressions.toml"
        ))
        .output()
        .expect("run analyze");
    assert!(
        analyze.status.success(),
        "{}",
        String::from_utf8_lossy(&analyze.stderr)
    );
    serde_json::from_slice(&analyze.stdout).expect("analyze json")
}
