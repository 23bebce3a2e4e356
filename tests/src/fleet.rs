//! Helpers of the fleet tests (`tests/tests/fleet_*.rs`): rewrite a trace with another codec or
//! another row-group split, run `analyze` and compare its JSON, build hive trees.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

/// Rewrites the trace `src` into `dst` with `compression`, keeping its needle metadata and
/// rows in order. `rows_per_group`: the size of each row group written (None: the source's
/// row groups, one for one).
pub fn rewrite(src: &Path, dst: &Path, compression: Compression, rows_per_group: Option<usize>) {
    let file = File::open(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet trace");
    let meta = builder.metadata().clone();
    let schema = builder.schema().clone();
    let kv: Vec<KeyValue> = meta
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k.key != "ARROW:schema")
        .collect();
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_key_value_metadata(Some(kv))
        .set_max_row_group_size(rows_per_group.unwrap_or(usize::MAX).max(1))
        .build();
    let out = File::create(dst).unwrap_or_else(|e| panic!("{}: {e}", dst.display()));
    let mut w = ArrowWriter::try_new(out, schema, Some(props)).expect("writer");
    for rg in 0..meta.num_row_groups() {
        let file = File::open(src).expect("reopen");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .with_row_groups(vec![rg])
            .build()
            .expect("row group");
        for batch in reader {
            w.write(&batch.expect("batch")).expect("write");
        }
        if rows_per_group.is_none() {
            w.flush().expect("flush row group");
        }
    }
    w.close().expect("close");
}

/// Runs `analyze ARGS --format json` in `dir` and returns stdout (panics with stderr on failure).
pub fn analyze_json(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(crate::binary("analyze"))
        .current_dir(dir)
        .args(args)
        .args(["--format", "json", "--no-progress"])
        .output()
        .expect("run analyze");
    assert!(
        out.status.success(),
        "analyze {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 JSON")
}

/// The JSON text without `inputs.files[].bytes_read`, the one figure that depends on how the
/// bytes are encoded (codec, row-group split) rather than on what they say.
pub fn without_bytes_read(text: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).expect("JSON");
    if let Some(files) = v["inputs"]["files"].as_array_mut() {
        for f in files {
            if let Some(o) = f.as_object_mut() {
                o.remove("bytes_read");
            }
        }
    }
    serde_json::to_string_pretty(&v).expect("JSON")
}

/// The JSON text with every object's keys sorted (serde_json's map is ordered by key).
pub fn sorted_json(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
    serde_json::to_string_pretty(&v).expect("JSON")
}

/// The workspace's datasets directory.
pub fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets")
}

/// The first `*.parquet` file of a dataset's `traces/` directory.
pub fn dataset_trace(name: &str) -> PathBuf {
    let dir = datasets().join(name).join("traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    files.into_iter().next().expect("a trace in the dataset")
}

/// Splits the rows of trace `src` into `dsts.len()` files of consecutive rows (in order),
/// each with the source's needle metadata; `host` replaces its `needle.host`. Each output
/// keeps row groups of at most `rows_per_group` rows.
pub fn split(src: &Path, dsts: &[PathBuf], host: Option<&str>, rows_per_group: usize) {
    let file = File::open(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet trace");
    let meta = builder.metadata().clone();
    let schema = builder.schema().clone();
    let total = meta.file_metadata().num_rows().max(0) as usize;
    let kv: Vec<KeyValue> = meta
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k.key != "ARROW:schema")
        .map(|k| match host {
            Some(h) if k.key == "needle.host" => {
                KeyValue::new(k.key, serde_json::to_string(h).expect("JSON string"))
            }
            _ => k,
        })
        .collect();
    let per = total.div_ceil(dsts.len().max(1)).max(1);
    let reader = builder.with_batch_size(1024).build().expect("reader");
    let mut writers: Vec<ArrowWriter<File>> = dsts
        .iter()
        .map(|d| {
            if let Some(parent) = d.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(Default::default()))
                .set_key_value_metadata(Some(kv.clone()))
                .set_max_row_group_size(rows_per_group.max(1))
                .build();
            let out = File::create(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            ArrowWriter::try_new(out, schema.clone(), Some(props)).expect("writer")
        })
        .collect();
    let mut at = 0usize;
    for batch in reader {
        let batch = batch.expect("batch");
        let mut offset = 0;
        while offset < batch.num_rows() {
            let part = (at / per).min(writers.len() - 1);
            let room = per - at % per;
            let n = room.min(batch.num_rows() - offset);
            writers[part].write(&batch.slice(offset, n)).expect("write");
            offset += n;
            at += n;
        }
    }
    for w in writers {
        w.close().expect("close");
    }
}

/// Runs `analyze ARGS` in `dir` (no format added) and returns stdout.
pub fn analyze_raw(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(crate::binary("analyze"))
        .current_dir(dir)
        .args(args)
        .arg("--no-progress")
        .output()
        .expect("run analyze");
    assert!(
        out.status.success(),
        "analyze {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `analyze partials INPUTS --out OUT` in `dir`.
pub fn partials(dir: &Path, inputs: &[&str], out: &str) {
    let mut args = vec!["partials"];
    args.extend_from_slice(inputs);
    args.extend_from_slice(&["--out", out]);
    analyze_raw(dir, &args);
}

/// A multi-host, multi-day hive tree under `root`: host=node-a and host=node-b over three
/// days, 8 files, from the demo and a lab run.
pub fn hive_tree(root: &Path) {
    let val = dataset_trace("lab-validation");
    let demo = dataset_trace("demo");
    let parts = |dir: &str, n: usize| -> Vec<PathBuf> {
        (0..n)
            .map(|i| root.join(dir).join(format!("seg-{i:05}.parquet")))
            .collect()
    };
    split(
        &val,
        &parts("host=node-a/date=2026-11-23", 3),
        Some("node-a"),
        5000,
    );
    split(
        &demo,
        &parts("host=node-a/date=2026-11-24", 1),
        Some("node-a"),
        5000,
    );
    split(
        &demo,
        &parts("host=node-b/date=2026-11-23", 2),
        Some("node-b"),
        5000,
    );
    split(
        &val,
        &parts("host=node-b/date=2026-11-25", 2),
        Some("node-b"),
        5000,
    );
}
