//! Traces in object storage (issue 22, item 3): the multi-host hive tree of the fleet tests,
//! uploaded to a local S3 server (moto, started by the test on 127.0.0.1), read with
//! `analyze s3://…` gives the local read's `--format json` byte for byte (the URL prefix put
//! back to the local directory) and the same feature table; `analyze partials s3://…` too. An
//! unreachable endpoint, a missing bucket and a corrupt object are one line naming the URL.
//! Without moto the tests print SKIP (a failure in CI, where scripts/setup.sh installs it).

use std::path::Path;
use std::process::{Command, Output};

use needle_tests::fleet::{analyze_json, analyze_raw, hive_tree};
use needle_tests::s3::{self, S3Server};
use needle_tests::{binary, require};

/// `analyze ARGS --no-progress` in `dir` against `endpoint`, with test credentials (moto
/// accepts any unless it enforces) and no other AWS setting from the environment.
fn analyze(dir: &Path, endpoint: &str, args: &[&str]) -> Output {
    analyze_as(dir, endpoint, TEST_KEYS, args)
}

const TEST_KEYS: (&str, &str) = ("needle-test", "needle-test-secret");

/// [`analyze`] signing with `(key id, secret)`.
fn analyze_as(dir: &Path, endpoint: &str, (id, secret): (&str, &str), args: &[&str]) -> Output {
    let mut c = Command::new(binary("analyze"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir)
        .args(args)
        .args(["--s3-endpoint", endpoint, "--no-progress"])
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("HOME", dir)
        .output()
        .expect("run analyze")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8")
}

/// The one stderr line of a failed run.
fn one_line_error(o: Output) -> String {
    one_line_error_hiding(o, TEST_KEYS.1)
}

/// [`one_line_error`] of a run that signed with `secret`, which it must not print.
fn one_line_error_hiding(o: Output, secret: &str) -> String {
    assert!(!o.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line, got: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains(secret), "a secret printed: {err}");
    eprintln!("{err}");
    err
}

#[test]
fn the_tree_read_from_the_local_s3_server_equals_the_local_read() {
    if !require("fleet_s3::equal", s3::missing()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hive_tree(&dir.join("tree"));
    let server = S3Server::start("needle-fleet");
    server.upload_dir(&dir.join("tree"), "traces/tree/");
    let ep = server.endpoint();
    let prefix = server.url("traces/");

    let local = analyze_json(dir, &["tree"]);
    let remote = ok(analyze(
        dir,
        &ep,
        &[&server.url("traces/tree/"), "--format", "json"],
    ));
    assert!(remote.contains(&prefix), "inputs name the objects");
    assert!(
        remote.replace(&prefix, "") == local,
        "s3 read differs from the local read"
    );

    // Projection and pruning apply to objects: far fewer bytes than the objects hold.
    let doc: serde_json::Value = serde_json::from_str(&remote).unwrap();
    let files = doc["inputs"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 8);
    let read: u64 = files
        .iter()
        .map(|f| f["bytes_read"].as_u64().unwrap())
        .sum();
    let total: u64 = server
        .keys("traces/tree/")
        .iter()
        .map(|k| server.get(k).unwrap().len() as u64)
        .sum();
    assert!(read > 0 && read < total, "bytes read {read} of {total}");
    eprintln!("read {read} of {total} bytes from the store");

    // The feature tables are the same file.
    analyze_raw(
        dir,
        &["tree", "--format", "parquet", "--out", "local.parquet"],
    );
    ok(analyze(
        dir,
        &ep,
        &[
            &server.url("traces/tree/"),
            "--format",
            "parquet",
            "--out",
            "remote.parquet",
        ],
    ));
    assert!(
        std::fs::read(dir.join("local.parquet")).unwrap()
            == std::fs::read(dir.join("remote.parquet")).unwrap(),
        "feature tables differ"
    );

    // The HTML report reads the suspicious workloads' events again, from the objects: the
    // same report as the local one.
    analyze_raw(dir, &["tree", "--report", "local.html"]);
    ok(analyze(
        dir,
        &ep,
        &[&server.url("traces/tree/"), "--report", "remote.html"],
    ));
    let html = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let escaped = prefix.replace('/', "&#x2f;");
    assert!(
        html("remote.html").replace(&escaped, "") == html("local.html"),
        "the report over s3 differs from the local report"
    );

    // The map step over objects, and a partial file read back from the store.
    ok(analyze(
        dir,
        &ep,
        &[
            "partials",
            &server.url("traces/tree/host=node-a/"),
            "--out",
            "a.npart",
        ],
    ));
    ok(analyze(
        dir,
        &ep,
        &[
            "partials",
            &server.url("traces/tree/host=node-b/"),
            "--out",
            "b.npart",
        ],
    ));
    server.put(
        "parts/b.npart",
        &std::fs::read(dir.join("b.npart")).unwrap(),
    );
    let merged = ok(analyze(
        dir,
        &ep,
        &["a.npart", &server.url("parts/"), "--format", "json"],
    ));
    assert!(
        merged.replace(&prefix, "") == local,
        "partials from the store differ"
    );
}

#[test]
fn bad_endpoint_missing_bucket_and_corrupt_object_are_one_line_errors() {
    if !require("fleet_s3::errors", s3::missing()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = S3Server::start("needle-errors");
    let ep = server.endpoint();

    // Nothing listens there: the endpoint is refused, reported within seconds.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let url = server.url("traces/");
    let t = std::time::Instant::now();
    let err = one_line_error(analyze(dir, &closed, &[&url]));
    assert!(err.contains(&url), "{err}");
    assert!(t.elapsed().as_secs() < 60, "took {:?}", t.elapsed());

    let err = one_line_error(analyze(dir, &ep, &["s3://no-such-bucket/traces/"]));
    assert!(err.contains("s3://no-such-bucket/traces/"), "{err}");

    server.put("bad/seg-00000.parquet", b"not a parquet file at all");
    let bad = server.url("bad/seg-00000.parquet");
    let err = one_line_error(analyze(dir, &ep, &[&server.url("bad/")]));
    assert!(
        err.contains(&bad) && err.contains("not a readable Parquet file"),
        "{err}"
    );

    server.put("bad/x.npart", b"needle-partials\n{}\n");
    let err = one_line_error(analyze(dir, &ep, &[&server.url("bad/x.npart")]));
    assert!(err.contains(&server.url("bad/x.npart")), "{err}");

    let err = one_line_error(analyze(dir, &ep, &[&server.url("nothing/")]));
    assert!(err.contains("no trace files"), "{err}");

    let err = one_line_error(analyze(dir, &ep, &[&server.url("missing.parquet")]));
    assert!(err.contains(&server.url("missing.parquet")), "{err}");
}

#[test]
fn a_store_that_checks_signatures_serves_only_who_may_read() {
    if !require("fleet_s3::denied", s3::missing()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The demo traces at the bucket's root, not the hive tree under a prefix: moto checks a
    // signature against the request with its escapes decoded, so it refuses every signed
    // request for a `host=…/date=…` key or a listing with a prefix (boto3's too).
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/demo/traces");
    std::fs::create_dir(dir.join("demo")).unwrap();
    for e in std::fs::read_dir(&demo).unwrap().flatten() {
        std::fs::copy(e.path(), dir.join("demo").join(e.file_name())).unwrap();
    }
    let files = s3::files_under(&dir.join("demo"), "demo/");
    let (server, keys) = S3Server::start_enforcing(
        "needle-iam",
        &files,
        &[
            ("reader", &["s3:GetObject", "s3:ListBucket"]),
            ("getter", &["s3:GetObject"]),
        ],
    );
    let (reader, getter) = (&keys[0], &keys[1]);
    let ep = server.endpoint();
    let url = server.url("");

    // Requests signed as S3 signs them read the traces as the local read does.
    let local = analyze_json(dir, &["demo"]);
    let remote = ok(analyze_as(
        dir,
        &ep,
        (&reader.id, &reader.secret),
        &[&url, "--format", "json"],
    ));
    assert!(
        remote.replace(&url, "") == local,
        "signed s3 read differs from the local read"
    );

    // A wrong secret, an unknown key and a user without s3:ListBucket: one line each, naming
    // the URL and what the store said, never the secret.
    let wrong = "not-the-secret-0123456789";
    let err = one_line_error_hiding(analyze_as(dir, &ep, (&reader.id, wrong), &[&url]), wrong);
    assert!(
        err.contains(&url) && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
    let err = one_line_error(analyze(dir, &ep, &[&url]));
    assert!(
        err.contains(&url) && err.contains("InvalidAccessKeyId"),
        "{err}"
    );
    let err = one_line_error_hiding(
        analyze_as(dir, &ep, (&getter.id, &getter.secret), &[&url]),
        &getter.secret,
    );
    assert!(err.contains(&url) && err.contains("AccessDenied"), "{err}");
}
