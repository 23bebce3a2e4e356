//! The README's first command: `analyze datasets/demo` must put the attacked container first,
//! and name no finding on the benign ones. The demo is a real capture (scripts/make-demo.sh).

use std::process::Command;

use needle_tests::binary;

#[test]
fn demo_attack_container_ranks_first_and_benign_ones_carry_no_finding() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/demo");
    let labels =
        std::fs::read_to_string(root.join("labels.csv")).expect("datasets/demo/labels.csv");
    let attack: Vec<String> = labels
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(2) == Some(&"attack")).then(|| f[0].to_string())
        })
        .collect();
    assert_eq!(attack.len(), 1, "the demo has one attacked container");
    let out = Command::new(binary("analyze"))
        .arg(&root)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let workloads = json["workloads"].as_array().unwrap();
    let ranked: Vec<(String, usize)> = workloads
        .iter()
        .map(|w| {
            (
                w["workload"].as_str().unwrap().to_string(),
                w["findings"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    eprintln!("ranks: {ranked:?}");
    assert_eq!(ranked[0].0, attack[0], "the attacked container ranks first");
    assert!(ranked[0].1 > 0, "and carries a finding");
    // Named precisely by the signatures: a binary dropped after start, run as a miner.
    let types: Vec<&str> = workloads[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    for want in [
        "Impact:Runtime/CryptoMinerExecuted",
        "Execution:Runtime/NewBinaryExecuted",
    ] {
        assert!(types.contains(&want), "{want} missing from {types:?}");
    }
    let miner = workloads[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "Impact:Runtime/CryptoMinerExecuted")
        .unwrap();
    assert_eq!(miner["process"]["exe"], "/tmp/.x/kworker");
    let chain: Vec<String> = miner["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["exe"].as_str().unwrap_or("")
            )
        })
        .collect();
    for step in [
        "exec /bin/wget",
        "connect /bin/wget",
        "exec /bin/chmod",
        "exec /tmp/.x/kworker",
        "connect /bin/nc",
    ] {
        assert!(
            chain.iter().any(|c| c == step),
            "{step} missing from the evidence chain {chain:?}"
        );
    }
    for (w, findings) in &ranked[1..] {
        assert_eq!(*findings, 0, "benign workload {w} carries no finding");
    }
}
