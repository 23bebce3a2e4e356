//! The Kubernetes manifest checked offline against the API schema of a pinned Kubernetes
//! version (kubernetes-validate ships the schemas; no cluster, no network), plus what the schema
//! cannot say: the readiness probe checks the file capture is told to create, and everything but
//! the traces and the ready file is mounted read-only.

use std::path::Path;
use std::process::Command;

use needle_tests::deploy::{self, DAEMONSET, python, validator_available, workspace};
use needle_tests::engine::{ENGINE_TIMEOUT, output};
use needle_tests::require;

/// The Kubernetes version the manifest is checked against.
const KUBERNETES: &str = "1.31.0";

/// Runs kubernetes-validate (strict: unknown fields are errors) on `file`; Ok(stdout) or
/// Err(what it printed).
fn validate(file: &Path) -> Result<String, String> {
    let mut cmd = Command::new(python());
    cmd.args([
        "-c",
        "import sys\nfrom kubernetes_validate.__main__ import main\nsys.exit(main())",
        "--strict",
        "--kubernetes-version",
        KUBERNETES,
    ])
    .arg(file);
    let out = output(cmd, ENGINE_TIMEOUT)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn daemonset_matches_the_kubernetes_api_schema() {
    if !require("deploy_manifest::schema", validator_available()) {
        return;
    }
    let manifest = workspace().join(DAEMONSET);
    let text = validate(&manifest).unwrap_or_else(|e| panic!("{DAEMONSET}: {e}"));
    assert!(
        text.contains("daemonset/needle-capture") && text.contains("namespace/needle"),
        "both resources checked: {text}"
    );

    // The check can fail: a misspelled field and a mistyped quantity are refused.
    let tmp = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(&manifest).unwrap();
    for (from, to, expect) in [
        (
            "readOnlyRootFilesystem",
            "readOnlyRootFileSystem",
            "readOnlyRootFileSystem",
        ),
        ("memory: 256Mi", "memory: [256]", "memory"),
        ("hostPID: true", "hostPID: \"yes\"", "hostPID"),
    ] {
        assert!(original.contains(from), "{from}");
        let bad = tmp.path().join("bad.yaml");
        std::fs::write(&bad, original.replacen(from, to, 1)).unwrap();
        let err = validate(&bad).expect_err(to);
        assert!(err.contains(expect), "{to}: {err}");
    }
}

#[test]
fn daemonset_probe_mounts_and_limits_hold_together() {
    if !require("deploy_manifest::semantics", validator_available()) {
        return;
    }
    let ds = deploy::daemonset().unwrap_or_else(|e| panic!("{e}"));
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(c["securityContext"]["privileged"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        c["resources"]["limits"]["memory"], "512Mi",
        "see the manifest's comment"
    );
    assert_eq!(c["resources"]["requests"]["memory"], "256Mi");

    let ready_arg = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--ready-file="))
        .expect("--ready-file in args");
    let probe: Vec<&str> = c["readinessProbe"]["exec"]["command"]
        .as_array()
        .expect("exec readiness probe")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(probe, ["/usr/bin/capture", "--check-ready", ready_arg]);

    let writable: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["readOnly"] != true)
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert_eq!(writable, ["/var/lib/needle/traces", "/run/needle"]);
    assert!(ready_arg.starts_with("/run/needle/"));
}
