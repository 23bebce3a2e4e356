//! Helpers for needle's end-to-end tests: find the real binaries, decide whether a privileged
//! test can run here, and read traces back.
//!
//! Privileged tests (root, eBPF, runc) call [`require_privileges`]. When the machine truly
//! cannot run them they print a `SKIP` line and record it in `$NEEDLE_SKIP_LOG`, which
//! `scripts/test.sh` reports at the end — a skip is never silent. With `NEEDLE_REQUIRE_PRIVILEGED=1`
//! (set by CI, which runs as root) a test that cannot run fails instead of skipping.

pub mod capture;
pub mod containerd;
pub mod deploy;
pub mod duckdb;
pub mod engine;
pub mod fleet;
pub mod lab;
pub mod podman;
pub mod runc;
pub mod s3;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use needle_common::schema::{Event, TraceMetadata, events_from_batch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Path of a workspace binary (`capture`, `analyze`), built by `cargo build` before the tests.
///
/// `NEEDLE_BIN_DIR` overrides the directory; otherwise the binary is looked up next to the
/// test executable's `deps/` directory (the cargo target profile directory).
pub fn binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("NEEDLE_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build --workspace`), or set NEEDLE_BIN_DIR",
        path.display()
    );
    path
}

/// Why a privileged test cannot run here, if it cannot.
pub fn missing_privileges() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (eBPF and runc)".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    None
}

/// Returns true when the calling test may run; otherwise records a skip (or panics in CI).
pub fn require_privileges(test: &str) -> bool {
    require(test, missing_privileges())
}

/// Like [`require_privileges`] for any precondition: `why_not` is None when the test can run.
pub fn require(test: &str, why_not: Option<String>) -> bool {
    let Some(reason) = why_not else { return true };
    if std::env::var("NEEDLE_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run here ({reason}) but NEEDLE_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("SKIP {test}: {reason}");
    if let Some(log) = std::env::var_os("NEEDLE_SKIP_LOG")
        && let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log)
    {
        let _ = writeln!(f, "{test}: {reason}");
    }
    false
}

/// `sha256sum` of a file, as the coreutils tool prints it (the independent reference for the
/// digests capture computes).
pub fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A trace file read back: its metadata and every row as a typed event.
pub struct Trace {
    /// The `needle.*` metadata.
    pub metadata: TraceMetadata,
    /// All rows, in file order.
    pub events: Vec<Event>,
    /// The raw batches (for column-level assertions).
    pub batches: Vec<RecordBatch>,
}

/// Reads a trace file completely.
pub fn read_trace(path: &Path) -> Result<Trace, String> {
    let file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let metadata =
        TraceMetadata::from_key_values(kv.iter().map(|k| (k.key.as_str(), k.value.as_deref())))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events = Vec::new();
    let mut batches = Vec::new();
    for batch in builder
        .build()
        .map_err(|e| format!("{}: {e}", path.display()))?
    {
        let batch = batch.map_err(|e| format!("{}: {e}", path.display()))?;
        events.extend(events_from_batch(&batch).map_err(|e| format!("{}: {e}", path.display()))?);
        batches.push(batch);
    }
    Ok(Trace {
        metadata,
        events,
        batches,
    })
}
