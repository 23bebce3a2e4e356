//! Partial files (`*.npart`): the map step of the feature pass, written to disk so that
//! another machine (a Spark task, another host) can run it and `analyze` can merge the results.
//!
//! `analyze partials FILES… --out part.npart` scans its traces exactly as `analyze` does and
//! writes the merged state of each workload ([`WorkloadState`]: the feature aggregates with
//! their process tables and the workload's context already filled in, and the signature state
//! beside them) with the summary of the files read. `analyze` takes `*.npart` beside traces, merges everything per
//! workload and finishes as usual; merging is associative and commutative, so any split of the
//! input into partial files gives the same result as one run over all of it.
//!
//! Layout: a first line `needle-partials`, a second line holding the [`Header`] as JSON (the
//! format version, the string hash and its seed, the caps, the signature engine's digest, the
//! time window), then the body: [`postcard`] (serde, derived on every aggregate, so new fields
//! travel without a hand-written list) compressed with zstd, with zstd's content checksum.

mod digest;
mod header;
pub mod merge;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use digest::engine_digest;
pub use header::{Caps, FORMAT_VERSION, HashSpec, Header, MAGIC};

use crate::scan::{FileSummary, InputSummary, Skipped, WorkloadState, WorkloadStates};

/// zstd level of the body (partials are written once and read once: fast beats small).
const LEVEL: i32 = 3;
/// Largest body accepted once decompressed (a damaged or hostile file cannot exhaust memory).
const MAX_BODY: u64 = 64 << 30;
/// Longest header line read.
const MAX_HEADER: u64 = 64 << 10;

/// Why a partial file cannot be written or read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PartialError {
    /// The file cannot be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a partial file at all.
    #[error("{}: not a needle partial file (no `{MAGIC}` first line)", path.display())]
    NotPartial {
        /// The file.
        path: PathBuf,
    },
    /// A layout this build does not read.
    #[error("{}: partial file format version {found}, this build reads version {FORMAT_VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: String,
    },
    /// Truncated or corrupted.
    #[error("{}: damaged partial file: {message}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Made by a run this one cannot merge with.
    #[error("{}: cannot be merged into this run: {why}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        why: String,
    },
    /// The same trace was read into two inputs: it would count twice.
    #[error("{}: {file} was already read from {first}", path.display())]
    Duplicate {
        /// The partial file.
        path: PathBuf,
        /// The trace.
        file: String,
        /// Where it was read before.
        first: String,
    },
}

impl PartialError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PartialError::Io { path, .. }
            | PartialError::NotPartial { path }
            | PartialError::Version { path, .. }
            | PartialError::Damaged { path, .. }
            | PartialError::Mismatch { path, .. }
            | PartialError::Duplicate { path, .. } => path,
        }
    }
}

/// One trace file read into a partial (mirrors [`FileSummary`] in a fixed layout).
#[derive(Serialize, Deserialize)]
struct FileEntry {
    path: String,
    host: String,
    schema_version: u32,
    writer: String,
    rows: u64,
    events_lost: u64,
    row_groups_pruned: usize,
    bytes_read: u64,
    partial_read_error: Option<String>,
}

impl From<&FileSummary> for FileEntry {
    fn from(f: &FileSummary) -> Self {
        FileEntry {
            path: f.path.clone(),
            host: f.host.clone(),
            schema_version: f.schema_version,
            writer: f.writer.clone(),
            rows: f.rows,
            events_lost: f.events_lost,
            row_groups_pruned: f.row_groups_pruned,
            bytes_read: f.bytes_read,
            partial_read_error: f.partial_read_error.clone(),
        }
    }
}

impl From<FileEntry> for FileSummary {
    fn from(f: FileEntry) -> Self {
        FileSummary {
            path: f.path,
            host: f.host,
            schema_version: f.schema_version,
            writer: f.writer,
            rows: f.rows,
            events_lost: f.events_lost,
            row_groups_pruned: f.row_groups_pruned,
            bytes_read: f.bytes_read,
            partial_read_error: f.partial_read_error,
        }
    }
}

/// The body of a partial file.
#[derive(Serialize, Deserialize)]
struct Body {
    files: Vec<FileEntry>,
    /// (input, why) of the inputs skipped with `--skip-bad`.
    skipped: Vec<(String, String)>,
    rows: u64,
    /// Workloads by key, sorted.
    workloads: Vec<(String, WorkloadState)>,
}

/// A partial file, read.
pub struct PartialFile {
    /// Its header.
    pub header: Header,
    /// The trace files read into it.
    pub files: Vec<FileSummary>,
    /// Inputs its run skipped (`--skip-bad`).
    pub skipped: Vec<Skipped>,
    /// Rows analyzed.
    pub rows: u64,
    /// The state of each workload.
    pub partials: WorkloadStates,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PartialError + '_ {
    move |source| PartialError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `partials` and the summary of the files read (`inputs`) to `path`, under `header`
/// (its counts are filled in here). Written beside `path` under a dot-name, mode 0600, and
/// renamed over it when complete.
pub fn write(
    path: &Path,
    mut header: Header,
    inputs: &InputSummary,
    partials: &WorkloadStates,
) -> Result<(), PartialError> {
    let mut workloads: Vec<(String, WorkloadState)> = partials
        .iter()
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect();
    workloads.sort_by(|a, b| a.0.cmp(&b.0));
    header.files = inputs.files.len();
    header.workloads = workloads.len();
    let body = Body {
        files: inputs.files.iter().map(FileEntry::from).collect(),
        skipped: inputs
            .skipped
            .iter()
            .map(|s| (s.path.clone(), s.error.clone()))
            .collect(),
        rows: inputs.rows,
        workloads,
    };
    let damaged = |message: String| PartialError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let encoded = postcard::to_stdvec(&body).map_err(|e| damaged(e.to_string()))?;
    let head = serde_json::to_string(&header).map_err(|e| damaged(e.to_string()))?;

    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("partial.npart");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = open_private(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        writeln!(w, "{MAGIC}")?;
        writeln!(w, "{head}")?;
        let mut z = zstd::Encoder::new(w, LEVEL)?;
        z.include_checksum(true)?;
        z.write_all(&encoded)?;
        let w = z.finish()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

/// Creates `path` readable by its owner only (partials hold what the traces hold).
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn read_line(r: &mut impl BufRead, path: &Path) -> Result<Option<String>, PartialError> {
    let mut buf = Vec::new();
    r.take(MAX_HEADER)
        .read_until(b'\n', &mut buf)
        .map_err(io(path))?;
    if buf.last() != Some(&b'\n') {
        return Ok(None);
    }
    buf.pop();
    Ok(String::from_utf8(buf).ok())
}

/// Reads the header of `path` (the first two lines), checking the magic and the version.
fn read_head(r: &mut impl BufRead, path: &Path) -> Result<Header, PartialError> {
    if read_line(r, path)?.as_deref() != Some(MAGIC) {
        return Err(PartialError::NotPartial {
            path: path.to_path_buf(),
        });
    }
    let damaged = |message: String| PartialError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let line = read_line(r, path)?.ok_or_else(|| damaged("no header line".into()))?;
    // The version first, so that a future layout is named as such, not as a missing field.
    let value: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| damaged(format!("header: {e}")))?;
    match value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(PartialError::Version {
                path: path.to_path_buf(),
                found: v.to_string(),
            });
        }
        None => {
            return Err(PartialError::Version {
                path: path.to_path_buf(),
                found: "unknown".into(),
            });
        }
    }
    serde_json::from_value(value).map_err(|e| damaged(format!("header: {e}")))
}

/// Reads the partial file at `path`.
pub fn read(path: &Path) -> Result<PartialFile, PartialError> {
    if crate::scan::object::is_url(path) {
        let bytes = crate::scan::object::Object::open(path)
            .and_then(|o| o.bytes())
            .map_err(|e| PartialError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(match e {
                    crate::scan::ScanError::Store { message, .. } => message,
                    other => other.to_string(),
                }),
            })?;
        return read_from(std::io::Cursor::new(bytes), path);
    }
    let file = std::fs::File::open(path).map_err(io(path))?;
    read_from(BufReader::new(file), path)
}

fn read_from(mut r: impl BufRead, path: &Path) -> Result<PartialFile, PartialError> {
    let header = read_head(&mut r, path)?;
    let damaged = |message: String| PartialError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let mut bytes = Vec::new();
    zstd::Decoder::with_buffer(r)
        .map_err(io(path))?
        .take(MAX_BODY)
        .read_to_end(&mut bytes)
        .map_err(|e| damaged(format!("body: {e}")))?;
    let (body, rest): (Body, &[u8]) =
        postcard::take_from_bytes(&bytes).map_err(|e| damaged(format!("body: {e}")))?;
    if !rest.is_empty() {
        return Err(damaged(format!("{} bytes after the body", rest.len())));
    }
    if body.files.len() != header.files || body.workloads.len() != header.workloads {
        return Err(damaged(format!(
            "the header counts {} files and {} workloads, the body holds {} and {}",
            header.files,
            header.workloads,
            body.files.len(),
            body.workloads.len()
        )));
    }
    let mut partials = WorkloadStates::with_capacity(body.workloads.len());
    for (key, p) in body.workloads {
        if partials.insert(key.clone(), p).is_some() {
            return Err(damaged(format!("workload {key:?} twice")));
        }
    }
    Ok(PartialFile {
        header,
        files: body.files.into_iter().map(FileSummary::from).collect(),
        skipped: body
            .skipped
            .into_iter()
            .map(|(path, error)| Skipped { path, error })
            .collect(),
        rows: body.rows,
        partials,
    })
}

#[cfg(test)]
mod tests;
