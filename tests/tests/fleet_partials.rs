//! Partial files (issue 22, item 1): `analyze A B` equals `analyze (partials A) (partials B)`
//! and `analyze (partials A B)`, byte for byte in `--format json`, and the feature tables
//! (`--format parquet`) are equal; the merge order, partials of partials, mixing traces with
//! partials, and the grouping of files into partial files never change the result. Another
//! physical split of the same rows (other row groups, other files) gives the same feature table
//! except the DNS entropy mean in its last bits: within one row group it is the row-order f64
//! sum, as it always was (the shipped model is trained on that), and parts are added exactly.

use std::path::{Path, PathBuf};

use needle_tests::fleet::{analyze_json, analyze_raw, dataset_trace, partials, split};

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    for (sub, set) in [("a", "demo"), ("b", "lab-validation")] {
        std::fs::create_dir(dir.join(sub)).unwrap();
        std::fs::copy(dataset_trace(set), dir.join(sub).join("trace.parquet")).unwrap();
    }
    (tmp, dir)
}

/// `analyze ARGS --format parquet`: the feature table with rank and score.
fn features_parquet(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = dir.join("features.parquet");
    let _ = std::fs::remove_file(&out);
    let mut a = args.to_vec();
    a.extend_from_slice(&["--format", "parquet", "--out", out.to_str().unwrap()]);
    analyze_raw(dir, &a);
    std::fs::read(&out).unwrap()
}

#[test]
fn partial_files_give_the_single_run_result() {
    let (_tmp, dir) = setup();
    let native = analyze_json(&dir, &["a/trace.parquet", "b/trace.parquet"]);
    let doc: serde_json::Value = serde_json::from_str(&native).unwrap();
    assert!(doc["workloads"].as_array().unwrap().len() > 3);

    partials(&dir, &["a/trace.parquet"], "a.npart");
    partials(&dir, &["b/trace.parquet"], "b.npart");
    partials(&dir, &["a/trace.parquet", "b/trace.parquet"], "ab.npart");
    partials(&dir, &["a.npart", "b.npart"], "merged.npart");
    let cases: [&[&str]; 6] = [
        &["a.npart", "b.npart"],
        &["b.npart", "a.npart"],
        &["ab.npart"],
        &["merged.npart"],
        &["a.npart", "b/trace.parquet"],
        &["b/trace.parquet", "a.npart"],
    ];
    for args in cases {
        let got = analyze_json(&dir, args);
        assert!(
            got == native,
            "analyze {args:?} differs from the single run"
        );
    }
    let table = features_parquet(&dir, &["a/trace.parquet", "b/trace.parquet"]);
    assert_eq!(
        features_parquet(&dir, &["a.npart", "b.npart"]),
        table,
        "feature tables differ"
    );
    // A directory of partial files is read like one of traces.
    std::fs::create_dir(dir.join("parts")).unwrap();
    std::fs::rename(dir.join("a.npart"), dir.join("parts/a.npart")).unwrap();
    std::fs::rename(dir.join("b.npart"), dir.join("parts/b.npart")).unwrap();
    assert!(analyze_json(&dir, &["parts"]) == native);
}

/// The two feature tables hold the same rows and values: exactly, except floats within a
/// relative 1e-12 (the last bits of a mean).
fn same_table(a: &[u8], b: &[u8], what: &str) {
    use arrow::array::{Array, Float64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let read = |bytes: &[u8]| -> Vec<arrow::record_batch::RecordBatch> {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (a, b) = (read(a), read(b));
    let a = arrow::compute::concat_batches(&a[0].schema(), &a).unwrap();
    let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
    assert_eq!(a.schema(), b.schema(), "{what}: schemas");
    assert_eq!(a.num_rows(), b.num_rows(), "{what}: rows");
    for (i, f) in a.schema().fields().iter().enumerate() {
        let (x, y) = (a.column(i), b.column(i));
        match (
            x.as_any().downcast_ref::<Float64Array>(),
            y.as_any().downcast_ref::<Float64Array>(),
        ) {
            (Some(x), Some(y)) => {
                for r in 0..x.len() {
                    let (p, q) = (x.value(r), y.value(r));
                    assert!(
                        p == q || (p - q).abs() <= 1e-12 * p.abs().max(q.abs()),
                        "{what}: {} row {r}: {p} vs {q}",
                        f.name()
                    );
                }
            }
            _ => assert_eq!(x.to_data(), y.to_data(), "{what}: column {}", f.name()),
        }
    }
}

#[test]
fn the_split_into_files_and_row_groups_never_changes_the_result() {
    let (_tmp, dir) = setup();
    let whole = features_parquet(&dir, &["b/trace.parquet"]);
    // Small row groups, then three files of consecutive rows with small row groups.
    split(
        &dir.join("b/trace.parquet"),
        &[dir.join("rg/trace.parquet")],
        None,
        3000,
    );
    same_table(
        &features_parquet(&dir, &["rg/trace.parquet"]),
        &whole,
        "row groups",
    );
    let parts: Vec<PathBuf> = (0..3)
        .map(|i| dir.join(format!("split/part-{i}.parquet")))
        .collect();
    split(&dir.join("b/trace.parquet"), &parts, None, 5000);
    let split_table = features_parquet(&dir, &["split"]);
    same_table(&split_table, &whole, "three files");
    let native = analyze_json(&dir, &["split"]);
    partials(&dir, &["split/part-0.parquet"], "p0.npart");
    partials(
        &dir,
        &["split/part-2.parquet", "split/part-1.parquet"],
        "p12.npart",
    );
    for args in [["p0.npart", "p12.npart"], ["p12.npart", "p0.npart"]] {
        assert!(
            analyze_json(&dir, &args) == native,
            "analyze {args:?} differs from analyze split/"
        );
    }
    assert_eq!(
        features_parquet(&dir, &["p12.npart", "p0.npart"]),
        split_table
    );
}

#[test]
fn bad_partial_files_are_one_line_naming_the_file() {
    let (_tmp, dir) = setup();
    partials(&dir, &["a/trace.parquet"], "a.npart");
    std::fs::write(dir.join("junk.npart"), b"not a partial").unwrap();
    let bytes = std::fs::read(dir.join("a.npart")).unwrap();
    std::fs::write(dir.join("cut.npart"), &bytes[..bytes.len() / 2]).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(needle_tests::binary("analyze"))
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    for (args, want) in [
        (vec!["junk.npart"], "junk.npart: not a needle partial file"),
        (vec!["cut.npart"], "cut.npart: damaged partial file"),
        (
            vec!["a.npart", "--no-signatures"],
            "a.npart: cannot be merged",
        ),
        (
            vec!["a.npart", "--since", "10m"],
            "a.npart: --since/--until apply",
        ),
        (vec!["a.npart", "a/trace.parquet"], "already read"),
        (vec!["a.npart", "--report", "r.html"], "give the traces"),
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // With --skip-bad the bad ones are listed and the good one is read.
    let o = run(&["a.npart", "junk.npart", "--skip-bad", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let skipped = doc["inputs"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("junk.npart"));
    // partials refuses a window relative to the end of its share of the input.
    let o = run(&[
        "partials",
        "a/trace.parquet",
        "--out",
        "x.npart",
        "--since",
        "5m",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("absolute times"));
}
