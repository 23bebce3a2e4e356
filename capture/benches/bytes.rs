//! Bytes per event on disk, per event kind and overall, for real traces: every row of the
//! given traces is read back and re-encoded with the trace writer's own settings, once per
//! kind and once for all rows together. A kind's cost is marginal — the size of a file of all
//! its rows, less that of a file of its first row only (the footer and column metadata, which
//! a real trace pays once for all kinds), over the rows after the first. The traces' own files
//! are measured as they are, too.
//!
//!     cargo bench -p capture --bench bytes -- datasets/lab-validation [more dirs or files]
//!
//! (relative paths are taken from the workspace root)

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use needle_common::schema::{
    Event, TraceBatchBuilder, WriteOptions, arrow_schema, events_from_batch, writer_properties,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn parquet_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            parquet_files(&e, out);
        }
    } else if p.extension().is_some_and(|x| x == "parquet") {
        out.push(p.to_path_buf());
    }
}

/// Size of `events` written as one trace file with the writer's settings.
fn encoded_bytes(events: &[&Event]) -> u64 {
    let opts = WriteOptions::default();
    let props = writer_properties(&opts, Vec::new()).expect("writer properties");
    let mut writer = ArrowWriter::try_new(Vec::new(), arrow_schema(), Some(props)).expect("writer");
    let mut builder = TraceBatchBuilder::new("");
    for chunk in events.chunks(opts.row_group_rows) {
        for e in chunk {
            builder.push(e);
        }
        writer.write(&builder.finish()).expect("write");
        writer.flush().expect("row group");
    }
    writer.into_inner().expect("close").len() as u64
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    // cargo runs benches in the package directory: relative paths are the workspace's.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for a in if args.is_empty() {
        vec!["datasets/lab-validation".to_string()]
    } else {
        args
    } {
        parquet_files(&workspace.join(&a), &mut files);
    }
    let mut events: Vec<Event> = Vec::new();
    let mut on_disk = 0u64;
    for f in &files {
        on_disk += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let file = File::open(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for batch in reader {
            let batch = batch.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            events.extend(
                events_from_batch(&batch).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
            );
        }
    }
    assert!(!events.is_empty(), "no rows in {files:?}");
    let mut by_kind: BTreeMap<&'static str, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_kind.entry(e.detail.kind().name()).or_default().push(e);
    }
    println!("{:<16} {:>9} {:>12}", "kind", "rows", "bytes/event");
    for (kind, rows) in by_kind.iter().filter(|(_, rows)| rows.len() > 1) {
        let marginal = encoded_bytes(rows).saturating_sub(encoded_bytes(&rows[..1]));
        let per_event = marginal as f64 / (rows.len() - 1) as f64;
        println!("{kind:<16} {:>9} {per_event:>12.1}", rows.len());
        println!(
            "BENCH suite=bytes kind={kind} rows={} bytes_per_event={per_event:.1}",
            rows.len()
        );
    }
    let all: Vec<&Event> = events.iter().collect();
    let together = encoded_bytes(&all);
    let n = events.len() as f64;
    println!(
        "BENCH suite=bytes kind=all rows={} bytes_per_event={:.1} files={} file_bytes_per_event={:.1}",
        events.len(),
        together as f64 / n,
        files.len(),
        on_disk as f64 / n
    );
}
