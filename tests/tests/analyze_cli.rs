//! End-to-end: the real `analyze` binary on traces written with the schema's own writer.

mod analyze_support;

use analyze_support::*;
use needle_common::schema::{Detail, Event};

#[test]
fn table_puts_the_attacked_container_first() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(&dir.path().join("a.parquet"), &fleet(12, true), |_| {});
    let o = analyze(&[p(dir.path())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let first = out.lines().nth(1).unwrap_or_default();
    assert!(first.starts_with("1 "), "{out}");
    assert!(
        first.contains(&cid(999)[..12]) && first.contains("web-evil"),
        "{out}"
    );
    assert!(
        first.contains("Impact:Runtime/CryptoMinerExecuted"),
        "{out}"
    );
    assert!(out.contains("13 of 13 workloads shown"), "{out}");
    // The models alone still rank it first; the default trained model (trained on few
    // workloads) only orders, the peer-group baseline names it as anomalous behaviour.
    let o = analyze(&[p(dir.path()), "--no-signatures"]);
    let out = stdout(&o);
    assert!(
        out.lines().nth(1).unwrap_or_default().contains("web-evil"),
        "{out}"
    );
    let o = analyze(&[p(dir.path()), "--no-signatures", "--no-model"]);
    let out = stdout(&o);
    assert!(
        out.lines()
            .nth(1)
            .unwrap_or_default()
            .contains("Execution:Runtime/AnomalousBehavior"),
        "{out}"
    );
}

#[test]
fn json_contract() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.parquet");
    write_trace(&f, &fleet(10, true), |m| {
        m.events_lost = 7;
    });
    let doc = analyze_json(&[p(&f)]);
    let ws = doc["workloads"].as_array().unwrap();
    assert_eq!(ws.len(), 11);
    let top = &ws[0];
    assert_eq!(top["workload"], cid(999));
    assert_eq!(top["rank"], 1);
    assert_eq!(top["name"], "web-evil");
    assert_eq!(top["image"], "shop/web:1.0");
    assert_eq!(top["namespace"], "prod");
    assert!(top["pod"].is_null());
    assert!(top["score"].as_f64().unwrap() > ws[1]["score"].as_f64().unwrap());
    assert_eq!(top["host_events_lost"], 7);
    let finding = &top["findings"][0];
    assert_eq!(finding["type"], "Impact:Runtime/CryptoMinerExecuted");
    assert_eq!(finding["process"]["exe"], "/tmp/.x/xmrig");
    for key in [
        "severity",
        "first_seen",
        "last_seen",
        "events",
        "rules",
        "process",
    ] {
        assert!(!finding[key].is_null(), "finding has no {key}");
    }
    let features: Vec<&str> = top["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    // The binary run from /tmp/.x is what no normal training workload ever did: it leads the
    // explanation (writing then executing a file is something installers do too).
    assert_eq!(features.first(), Some(&"exe.writable_path"), "{features:?}");
    assert!(
        top["features"][0]["peer_median"].is_number() && top["features"][0]["value"].is_number()
    );
    let inputs = &doc["inputs"];
    assert_eq!(inputs["files"].as_array().unwrap().len(), 1);
    assert_eq!(
        inputs["schema_versions"],
        serde_json::json!([needle_common::schema::SCHEMA_VERSION])
    );
    assert_eq!(inputs["events_lost"], 7);
    assert_eq!(inputs["events_lost_by_host"]["node-1"], 7);
    let rows = inputs["rows"].as_u64().unwrap();
    assert!(rows > 1000, "{rows}");
    assert_eq!(inputs["time_span"]["first"], "2027-01-15T08:00:00Z");
    assert!(inputs["skipped"].as_array().unwrap().is_empty());
}

#[test]
fn top_workload_and_time_window() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.parquet");
    write_trace(&f, &fleet(6, true), |_| {});
    let doc = analyze_json(&[p(&f), "--top", "2"]);
    assert_eq!(doc["workloads"].as_array().unwrap().len(), 2);

    let short = &cid(3)[..12];
    let doc = analyze_json(&[p(&f), "--workload", short]);
    let ws = doc["workloads"].as_array().unwrap();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0]["workload"], cid(3));
    assert!(
        ws[0]["rank"].as_u64().unwrap() > 1,
        "still ranked among all workloads"
    );
    let o = analyze(&[p(&f), "--workload", "nope"]);
    assert!(
        !o.status.success() && stderr(&o).contains("no such workload"),
        "{}",
        stderr(&o)
    );

    // The attack happens at 30–34 s; the window [0 s, 20 s) leaves it out.
    let doc = analyze_json(&[p(&f), "--until", "2027-01-15T08:00:20Z"]);
    assert_ne!(doc["workloads"][0]["workload"], cid(999));
    assert!(
        doc["workloads"][0]["findings"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A duration is relative to the end of the input (the last event, at 43 s): the last 20 s
    // hold the attack.
    let doc = analyze_json(&[p(&f), "--since", "20s"]);
    assert_eq!(doc["workloads"][0]["workload"], cid(999));
    assert_eq!(doc["inputs"]["time_span"]["first"], "2027-01-15T08:00:23Z");
    assert_eq!(doc["inputs"]["time_span"]["last"], "2027-01-15T08:00:43Z");
}

#[test]
fn directories_hive_trees_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    let all = fleet(6, true);
    for (i, chunk) in all.chunks(3).enumerate() {
        let part = dir.path().join(format!("host=node-{i}/date=2027-01-15"));
        std::fs::create_dir_all(&part).unwrap();
        write_trace(&part.join("seg-0.parquet"), chunk, |m| {
            m.host = format!("node-{i}")
        });
    }
    let doc = analyze_json(&[p(dir.path())]);
    assert_eq!(doc["inputs"]["files"].as_array().unwrap().len(), 3);
    assert_eq!(doc["workloads"].as_array().unwrap().len(), 7);
    assert_eq!(doc["workloads"][0]["workload"], cid(999));
    assert_eq!(doc["workloads"][0]["hosts"], serde_json::json!(["node-2"]));
    let pattern = format!("{}/host=node-[01]/*/*.parquet", p(dir.path()));
    let doc = analyze_json(&[&pattern]);
    assert_eq!(doc["inputs"]["files"].as_array().unwrap().len(), 2);
}

#[test]
fn host_processes_without_container_are_grouped_by_cgroup() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Workload::normal("x", "x", 5);
    for e in &mut w.events {
        e.container = None;
        e.process.cgroup_id = 4242;
    }
    let f = dir.path().join("h.parquet");
    write_trace(&f, &[w, Workload::normal(&cid(1), "c", 5)], |_| {});
    let doc = analyze_json(&[p(&f)]);
    let keys: Vec<&str> = doc["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workload"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"host:node-1:cgroup-4242"), "{keys:?}");
}

#[test]
fn attacker_strings_are_escaped_in_table_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = fleet(3, false);
    ws.push(Workload::normal(
        &cid(77),
        "\x1b]0;owned\x07\x1b[2J=HYPERLINK(\"http://x\")",
        3,
    ));
    ws.push(Workload::normal(&cid(78), "=cmd|' /C calc'!A0", 3));
    let f = dir.path().join("a.parquet");
    write_trace(&f, &ws, |_| {});
    let o = analyze(&[p(&f)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07),
        "raw control characters in the table"
    );
    assert!(stdout(&o).contains("\\x1b]0;owned\\x07"));

    let o = analyze(&[p(&f), "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = stdout(&o);
    assert!(
        csv.starts_with("rank,score,workload,name,image,pod,namespace,label,events.exec,"),
        "{csv}"
    );
    assert!(csv.contains(",'=cmd|' /C calc'!A0,"), "{csv}");
    for line in csv.lines() {
        for cell in line.split(',') {
            assert!(
                !cell.starts_with('=') && !cell.starts_with('@') && !cell.starts_with("\"="),
                "formula cell {cell:?}"
            );
        }
    }
}

#[test]
fn feature_table_and_parquet_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.parquet");
    write_trace(&f, &fleet(4, true), |_| {});
    let out = dir.path().join("features.parquet");
    let o = analyze(&["features", p(&f), "--out", p(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&out).unwrap(),
    )
    .unwrap();
    let schema = reader.schema().clone();
    for col in [
        "workload",
        "events.exec",
        "rate.connect",
        "exe.writable_path",
        "dns.nxdomain_ratio",
        "syscall.0",
        "security.calls",
    ] {
        assert!(schema.field_with_name(col).is_ok(), "no column {col}");
    }
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 5);

    let ranked = dir.path().join("ranked.parquet");
    let o = analyze(&[p(&f), "--format", "parquet", "--out", p(&ranked)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&ranked).unwrap(),
    )
    .unwrap();
    assert!(reader.schema().field_with_name("score").is_ok());

    let o = analyze(&["features", "--list"]);
    assert!(o.status.success() && stdout(&o).contains("| `net.unusual_ports` |"));
}

#[test]
fn import_syscall_traces_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("adfa");
    std::fs::create_dir_all(src.join("Attack_1")).unwrap();
    std::fs::write(
        src.join("normal_1.txt"),
        "6 6 63 6 42 120 6 195 120 6 6 114 114 1 1 252 252 252 1 1 1 1\n",
    )
    .unwrap();
    std::fs::write(src.join("Attack_1/UAD-1.txt"), "3 3 \n 101 101 175\n").unwrap();
    let out = dir.path().join("imported.parquet");
    let o = analyze(&[
        "import",
        "syscall-traces",
        p(&src),
        "--label",
        "attack",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trace = needle_tests::read_trace(&out).unwrap();
    assert_eq!(
        trace.metadata.schema_version,
        needle_common::schema::SCHEMA_VERSION
    );
    assert_eq!(trace.events.len(), 27);
    let first: &Event = &trace.events[0];
    assert_eq!(
        first.container.as_ref().unwrap().id.as_ref(),
        "Attack_1/UAD-1.txt"
    );
    assert_eq!(first.label.as_deref(), Some("attack"));
    assert_eq!(first.detail, Detail::Syscall { nr: 3, ret: None });

    let doc = analyze_json(&[p(&out)]);
    let ws = doc["workloads"].as_array().unwrap();
    let keys: Vec<&str> = ws.iter().map(|w| w["workload"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.contains(&"Attack_1/UAD-1.txt") && keys.contains(&"normal_1.txt"),
        "{keys:?}"
    );
    assert!(ws.iter().all(|w| w["label"] == "attack"));

    std::fs::write(src.join("bad.txt"), "1 2 3\n4 five 6\n").unwrap();
    let o = analyze(&[
        "import",
        "syscall-traces",
        p(&src),
        "--label",
        "normal",
        "--out",
        p(&dir.path().join("x.parquet")),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.txt:2: `five` is not a syscall number"),
        "{err}"
    );
    assert!(
        !dir.path().join("x.parquet").exists(),
        "no output after a bad trace"
    );
}

#[test]
fn a_container_that_starts_in_a_later_row_group_still_gets_its_context() {
    // Context columns are read from the first row group of each file, and probed for
    // workloads that first appear later (the test writer makes 500-row row groups).
    let dir = tempfile::tempdir().unwrap();
    let mut ws = fleet(6, false);
    let mut late = Workload::new(&cid(500), "late-one");
    for s in 40..44 {
        late.event(s, 9, 1, "worker", "/usr/bin/worker", Detail::Fork);
    }
    ws.push(late);
    let f = dir.path().join("a.parquet");
    write_trace(&f, &ws, |_| {});
    let trace = needle_tests::read_trace(&f).unwrap();
    let first_row = trace
        .events
        .iter()
        .position(|e| e.container.as_ref().is_some_and(|c| *c.id == *cid(500)))
        .unwrap();
    assert!(
        first_row >= 500,
        "the late container must start after the first row group ({first_row})"
    );
    let doc = analyze_json(&[p(&f), "--workload", &cid(500)]);
    assert_eq!(doc["workloads"][0]["name"], "late-one");
    assert_eq!(doc["workloads"][0]["image"], "shop/web:1.0");
}
