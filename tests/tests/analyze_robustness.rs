//! End-to-end: bad inputs give a clear error naming the file (exit non-zero), or with
//! `--skip-bad` are listed in `inputs.skipped` while the good files are analyzed. Never a panic.

mod analyze_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use analyze_support::*;
use arrow::array::{ArrayRef, Int32Array};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// Writes a good trace and returns its path.
fn good(dir: &Path) -> PathBuf {
    let f = dir.join("good.parquet");
    write_trace(&f, &fleet(3, true), |_| {});
    f
}

/// Checks both behaviours for one bad file: error naming it and the problem; skipped with
/// `--skip-bad`.
fn check_bad(bad: &Path, problem: &str) {
    let dir = bad.parent().unwrap();
    let good = good(dir);
    let o = analyze(&[p(&good), p(bad)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}: {err}", bad.display());
    assert!(err.contains(p(bad)), "error does not name the file: {err}");
    assert!(
        err.contains(problem),
        "error does not say {problem:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let doc = analyze_json(&[p(&good), p(bad), "--skip-bad"]);
    let skipped = doc["inputs"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["path"], p(bad));
    assert!(skipped[0]["error"].as_str().unwrap().contains(problem));
    assert_eq!(
        doc["workloads"][0]["workload"],
        cid(999),
        "good files are still analyzed"
    );
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty.parquet");
    std::fs::write(&f, b"").unwrap();
    check_bad(&f, "not a readable Parquet file");
}

#[test]
fn not_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.parquet");
    std::fs::write(&f, "this is a text file, not a trace\n".repeat(10)).unwrap();
    check_bad(&f, "not a readable Parquet file");
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.bin");
    write_trace(&whole, &fleet(2, false), |_| {});
    let bytes = std::fs::read(&whole).unwrap();
    let f = dir.path().join("truncated.parquet");
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    check_bad(&f, "not a readable Parquet file");
}

#[test]
fn corrupt_data_pages() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.bin");
    write_trace(&whole, &fleet(4, false), |_| {});
    let mut bytes = std::fs::read(&whole).unwrap();
    // Keep the magic and the footer, scramble the column chunks in between.
    let footer_len =
        u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap()) as usize;
    let data_end = bytes.len() - 8 - footer_len;
    for (i, b) in bytes[4..data_end].iter_mut().enumerate() {
        *b ^= 0x5a ^ (i as u8);
    }
    let f = dir.path().join("corrupt.parquet");
    std::fs::write(&f, &bytes).unwrap();
    check_bad(&f, "row group");
}

#[test]
fn foreign_parquet_without_needle_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pandas.parquet");
    let col: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3]));
    let batch = RecordBatch::try_from_iter([("x", col)]).unwrap();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&f).unwrap(),
        batch.schema(),
        Some(WriterProperties::default()),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    check_bad(&f, "not a needle trace");
}

#[test]
fn future_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("future.parquet");
    write_trace(&f, &fleet(2, false), |m| m.schema_version = 99);
    check_bad(&f, "schema version 99 is newer");
}

#[test]
fn unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = dir.path().join("secret.parquet");
    write_trace(&f, &fleet(2, false), |_| {});
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    let good = good(dir.path());
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Root reads anything: drop to nobody for this run (setpriv, util-linux).
    let root = unsafe { libc::geteuid() } == 0;
    let run = |extra: &[&str]| {
        let bin = needle_tests::binary("analyze");
        let mut cmd = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(bin);
            c
        } else {
            std::process::Command::new(bin)
        };
        cmd.args([p(&good), p(&f)])
            .args(extra)
            .output()
            .expect("run analyze")
    };
    let o = run(&[]);
    let err = stderr(&o);
    if root && err.contains("setpriv") {
        eprintln!("SKIP unreadable_file: cannot drop privileges here ({err})");
        return;
    }
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(p(&f)) && err.contains("Permission denied"),
        "{err}"
    );
    let o = run(&["--skip-bad", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["inputs"]["skipped"][0]["path"], p(&f));
}

#[test]
fn missing_inputs_and_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&[p(&dir.path().join("nope.parquet"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nope.parquet: no such file"),
        "{}",
        stderr(&o)
    );
    let o = analyze(&[p(dir.path())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no trace files"), "{}", stderr(&o));
    // Everything bad, even with --skip-bad: nothing to analyze is an error.
    let o = analyze(&[p(dir.path()), "--skip-bad"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no readable trace files"),
        "{}",
        stderr(&o)
    );
}

/// xorshift64: the mutation test's only source of randomness (its seed is fixed).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// One damaged copy of `bytes`: the `case`-th of a seeded run of bit flips, truncations,
/// spliced blocks (a block of the file written over another place: pages, headers and the
/// footer mixed up) and inserted blocks (every offset after them shifted).
fn damaged(bytes: &[u8], case: usize, seed: &mut u64) -> (&'static str, Vec<u8>) {
    let mut b = bytes.to_vec();
    let len = b.len();
    match case % 4 {
        0 => {
            for _ in 0..(1 + case % 7) {
                let at = next(seed) as usize % len;
                b[at] ^= (next(seed) >> 32) as u8 | 1;
            }
            ("bit flips", b)
        }
        1 => {
            b.truncate(next(seed) as usize % len);
            ("truncation", b)
        }
        2 => {
            let n = 1 + next(seed) as usize % 512.min(len);
            let from = next(seed) as usize % (len - n + 1);
            let to = next(seed) as usize % (len - n + 1);
            let block = bytes[from..from + n].to_vec();
            b[to..to + n].copy_from_slice(&block);
            ("spliced block", b)
        }
        _ => {
            let n = 1 + next(seed) as usize % 256.min(len);
            let from = next(seed) as usize % (len - n + 1);
            let at = next(seed) as usize % len;
            let block = bytes[from..from + n].to_vec();
            b.splice(at..at, block);
            ("inserted block", b)
        }
    }
}

/// Runs analyze with a bound on its time: a hang is a failure, not a stuck test.
fn analyze_bounded(args: &[&str], limit: std::time::Duration) -> Option<std::process::Output> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(needle_tests::binary("analyze"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run analyze");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn damaged_bytes_never_crash_the_analyzer() {
    // Seeded damage of four kinds at many places (footer, metadata, pages), also through
    // --report (which reads evidence rows outside the scan): every run must end with success
    // or one clean error line naming the file (exit 1), never a crash (101), a signal, a panic
    // message or a hang.
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.bin");
    write_trace(&whole, &fleet(3, true), |_| {});
    let bytes = std::fs::read(&whole).unwrap();
    let report = dir.path().join("report.html");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut outcomes = std::collections::BTreeMap::new();
    for case in 0..192 {
        let (what, b) = damaged(&bytes, case, &mut seed);
        let f = dir.path().join(format!("damaged-{case}.parquet"));
        std::fs::write(&f, &b).unwrap();
        let mut args = vec![p(&f), "--format", "json"];
        if case % 3 == 0 {
            args.extend(["--report", p(&report)]);
        }
        let o = analyze_bounded(&args, std::time::Duration::from_secs(120))
            .unwrap_or_else(|| panic!("case {case} ({what}): analyze did not finish in 120 s"));
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "case {case} ({what}): {:?} {}",
            o.status,
            stderr(&o)
        );
        // A decoder's panic inside the scan's guard is one clean line, not a panic message
        // and a backtrace above it.
        assert!(
            !stderr(&o).contains("panicked") && stderr(&o).trim_end().lines().count() <= 1,
            "case {case} ({what}): {}",
            stderr(&o)
        );
        if o.status.code() == Some(1) {
            assert!(
                stderr(&o).contains(p(&f)),
                "case {case} ({what}): error does not name the file: {}",
                stderr(&o)
            );
        }
        *outcomes
            .entry((what, o.status.code() == Some(0)))
            .or_insert(0) += 1;
    }
    // Every kind of damage was tried, and some of it was caught as an error.
    eprintln!("{outcomes:?}");
    for what in ["bit flips", "truncation", "spliced block", "inserted block"] {
        let n: usize = outcomes
            .iter()
            .filter(|((w, _), _)| *w == what)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(n, 48, "{what}");
    }
    assert!(outcomes.iter().any(|((_, ok), _)| !ok), "{outcomes:?}");
}

#[test]
fn older_files_missing_optional_columns_still_get_features() {
    use needle_common::schema::{
        TraceBatchBuilder, TraceMetadata, WriteOptions, writer_properties,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut b = TraceBatchBuilder::new("node-1");
    for w in fleet(4, true) {
        w.events.iter().for_each(|e| b.push(e));
    }
    let full = b.finish_sorted().unwrap();
    let schema = full.schema();
    let dropped = [
        "dns_name",
        "syscall_counts",
        "container_name",
        "labels",
        "label",
        "path2",
    ];
    let keep: Vec<usize> = (0..full.num_columns())
        .filter(|&i| !dropped.contains(&schema.field(i).name().as_str()))
        .collect();
    let older = full.project(&keep).unwrap();
    let meta = TraceMetadata {
        schema_version: 1,
        host: "node-1".into(),
        ..Default::default()
    };
    let props = writer_properties(&WriteOptions::default(), meta.to_key_values()).unwrap();
    let f = dir.path().join("older.parquet");
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&f).unwrap(),
        older.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&older).unwrap();
    w.close().unwrap();
    let doc = analyze_json(&[p(&f)]);
    let top = &doc["workloads"][0];
    assert_eq!(top["workload"], cid(999));
    assert!(top["name"].is_null(), "no container_name column, no name");
    assert_eq!(top["image"], "shop/web:1.0");
}

/// Rewrites the trace at `from` into `to` with `column` replaced by `array` (same rows), keeping
/// the needle metadata: a file whose column has another type than the schema says.
fn with_column(from: &Path, to: &Path, column: &str, array: impl Fn(usize) -> ArrayRef) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(from).unwrap()).unwrap();
    let kv: Vec<_> = b
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| kv.key != "ARROW:schema")
        .collect();
    let batches: Vec<RecordBatch> = b.build().unwrap().map(Result::unwrap).collect();
    let swap = |batch: &RecordBatch| {
        let fields = batch.schema().fields().iter().cloned().collect::<Vec<_>>();
        let i = batch.schema().index_of(column).unwrap();
        let mut columns = batch.columns().to_vec();
        columns[i] = array(batch.num_rows());
        let mut fields: Vec<arrow::datatypes::Field> =
            fields.iter().map(|f| f.as_ref().clone()).collect();
        fields[i] = arrow::datatypes::Field::new(column, columns[i].data_type().clone(), true);
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap()
    };
    let swapped: Vec<RecordBatch> = batches.iter().map(swap).collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(to).unwrap(),
        swapped[0].schema(),
        Some(props),
    )
    .unwrap();
    for s in &swapped {
        w.write(s).unwrap();
    }
    w.close().unwrap();
}

#[test]
fn wrong_inner_types_are_named_not_panicked_on() {
    // A list of numbers where the schema says a list of strings, a map of strings where it says
    // syscall number → count: in the ranking and in the HTML report (which reads evidence rows
    // back), one line naming the file and the column, never a panic.
    use arrow::array::{ListBuilder, MapBuilder, StringBuilder, UInt32Builder};
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.bin");
    write_trace(&whole, &fleet(3, true), |_| {});
    let numbers = |rows: usize| -> ArrayRef {
        let mut l = ListBuilder::new(UInt32Builder::new());
        for r in 0..rows {
            l.values().append_value(r as u32);
            l.append(true);
        }
        Arc::new(l.finish())
    };
    let strings = |rows: usize| -> ArrayRef {
        let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for _ in 0..rows {
            m.keys().append_value("read");
            m.values().append_value("many");
            m.append(true).unwrap();
        }
        Arc::new(m.finish())
    };
    let cases: [(&str, &dyn Fn(usize) -> ArrayRef); 3] = [
        ("argv", &numbers),
        ("dns_answers", &numbers),
        ("syscall_counts", &strings),
    ];
    for (column, array) in cases {
        let f = dir.path().join(format!("inner-{column}.parquet"));
        with_column(&whole, &f, column, array);
        let html = dir.path().join(format!("inner-{column}.html"));
        for args in [vec![p(&f)], vec![p(&f), "--report", p(&html)]] {
            let o = analyze(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{column} {args:?}: {err}");
            assert!(
                err.contains(p(&f)) && err.contains(column),
                "{column}: {err}"
            );
            assert!(!err.contains("panicked"), "{column}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{column}: {err}");
        }
    }
}
