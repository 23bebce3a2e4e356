//! Importers: other trace formats into needle traces.
//!
//! `syscall-traces`: the formats of the classic host intrusion-detection datasets.
//!
//! * [`TraceFormat::Plain`] — one trace per file, whitespace-separated syscall numbers (ADFA-LD
//!   and its successors). Each file becomes one workload whose `container_id` is the file's
//!   path relative to the directory (so the workload key is that path).
//! * [`TraceFormat::PidCall`] — `PID SYSCALL` lines, the processes of one run interleaved (the
//!   UNM datasets). Each process of each file becomes one workload, `<path>#<pid>`, whose
//!   thread id is the pid: a process is the unit those datasets are scored by.
//!
//! Every workload gets one `syscall` row per number, the `label` column set, and a synthetic
//! clock (1 µs per syscall from 2000-01-01T00:00:00Z, in file order) since the formats have
//! no times.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use needle_common::schema::{
    Container, Detail, Event, Process, SCHEMA_VERSION, TraceBatchBuilder, TraceMetadata,
    WriteOptions, arrow_schema, writer_properties,
};
use parquet::arrow::ArrowWriter;

use crate::escape::terminal;

/// Host name written into imported traces.
pub const IMPORT_HOST: &str = "imported";
/// Time of the first imported syscall: 2000-01-01T00:00:00Z.
pub const IMPORT_EPOCH_NS: i64 = 946_684_800 * 1_000_000_000;
/// Synthetic time between two imported syscalls.
pub const IMPORT_STEP_NS: i64 = 1_000;

/// Ground truth of imported traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// Normal behaviour.
    Normal,
    /// An attack.
    Attack,
}

impl Label {
    /// Value of the `label` column.
    pub fn name(self) -> &'static str {
        match self {
            Label::Normal => "normal",
            Label::Attack => "attack",
        }
    }
}

/// Layout of the trace files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceFormat {
    /// One trace per file: whitespace-separated syscall numbers.
    #[default]
    Plain,
    /// `PID SYSCALL` lines: one trace per file and process.
    PidCall,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file or directory cannot be read, or the output cannot be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A token that is not a syscall number.
    #[error("{}:{line}: `{token}` is not a syscall number (expected whitespace-separated non-negative integers)", path.display())]
    BadToken {
        /// The trace file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The token (escaped, shortened).
        token: String,
    },
    /// A `PID SYSCALL` line that is not two numbers.
    #[error("{}:{line}: `{text}` is not a `PID SYSCALL` line (expected two non-negative integers)", path.display())]
    BadLine {
        /// The trace file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The line (escaped, shortened).
        text: String,
    },
    /// The directory holds no trace file.
    #[error("{}: no trace files found", dir.display())]
    NoTraces {
        /// The directory.
        dir: PathBuf,
    },
    /// Encoding the output failed.
    #[error("{}: writing the trace: {message}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// What an import wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Traces (workloads) written.
    pub traces: usize,
    /// Syscall rows written.
    pub syscalls: u64,
    /// Files that held no syscall (no rows, so no workload).
    pub empty: Vec<String>,
}

fn list(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let io = |source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).map_err(|source| ImportError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            list(&p, out)?;
        } else if meta.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses one trace file into syscall numbers.
pub fn parse_trace(path: &Path, text: &[u8]) -> Result<Vec<u32>, ImportError> {
    let mut nrs = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        for token in line.split_whitespace() {
            let nr = token.parse::<u32>().map_err(|_| ImportError::BadToken {
                path: path.to_path_buf(),
                line: i + 1,
                token: terminal(token, 40),
            })?;
            nrs.push(nr);
        }
    }
    Ok(nrs)
}

/// Parses one `PID SYSCALL` file into its processes' syscall numbers, processes in order of
/// first appearance. Blank lines are skipped.
pub fn parse_pid_calls(path: &Path, text: &[u8]) -> Result<Vec<(u32, Vec<u32>)>, ImportError> {
    let mut procs: Vec<(u32, Vec<u32>)> = Vec::new();
    let mut index: std::collections::HashMap<u32, usize> = Default::default();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let mut tokens = line.split_whitespace();
        let (pid, nr) = match (tokens.next(), tokens.next(), tokens.next()) {
            (None, _, _) => continue,
            (Some(p), Some(c), None) => (p.parse::<u32>(), c.parse::<u32>()),
            _ => (Ok(0), "-".parse::<u32>()),
        };
        let (Ok(pid), Ok(nr)) = (pid, nr) else {
            return Err(ImportError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                text: terminal(line.trim(), 60),
            });
        };
        let k = *index.entry(pid).or_insert_with(|| {
            procs.push((pid, Vec::new()));
            procs.len() - 1
        });
        procs[k].1.push(nr);
    }
    Ok(procs)
}

/// One imported trace: its workload id, thread id and calls.
struct Imported {
    id: String,
    tid: Option<u32>,
    calls: Vec<u32>,
}

/// Imports every trace file under `dir` into the needle trace `out`.
pub fn import_syscall_traces(
    dir: &Path,
    label: Label,
    format: TraceFormat,
    out: &Path,
) -> Result<ImportSummary, ImportError> {
    let mut files = Vec::new();
    list(dir, &mut files)?;
    if files.is_empty() {
        return Err(ImportError::NoTraces {
            dir: dir.to_path_buf(),
        });
    }
    let write_err = |e: &dyn std::fmt::Display| ImportError::Write {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    // Parse everything first: a bad file must not leave a half-written output behind.
    let mut traces = Vec::with_capacity(files.len());
    for f in &files {
        let text = std::fs::read(f).map_err(|source| ImportError::Io {
            path: f.clone(),
            source,
        })?;
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        match format {
            TraceFormat::Plain => traces.push(Imported {
                calls: parse_trace(f, &text)?,
                id: rel,
                tid: None,
            }),
            TraceFormat::PidCall => {
                let procs = parse_pid_calls(f, &text)?;
                if procs.is_empty() {
                    traces.push(Imported {
                        id: rel.clone(),
                        tid: None,
                        calls: Vec::new(),
                    });
                }
                traces.extend(procs.into_iter().map(|(pid, calls)| Imported {
                    id: format!("{rel}#{pid}"),
                    tid: Some(pid),
                    calls,
                }));
            }
        }
    }
    let rows: u64 = traces.iter().map(|t| t.calls.len() as u64).sum();
    let metadata = TraceMetadata {
        schema_version: SCHEMA_VERSION,
        host: IMPORT_HOST.into(),
        writer: format!("analyze import {}", env!("CARGO_PKG_VERSION")),
        start_time_ns: IMPORT_EPOCH_NS,
        end_time_ns: IMPORT_EPOCH_NS + (rows as i64).saturating_sub(1).max(0) * IMPORT_STEP_NS,
        events_written: rows,
        ..Default::default()
    };
    let opts = WriteOptions::default();
    let props = writer_properties(&opts, metadata.to_key_values()).map_err(|e| write_err(&e))?;
    let tmp = out.with_file_name(format!(
        ".{}.tmp",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("import")
    ));
    let file = File::create(&tmp).map_err(|source| ImportError::Io {
        path: tmp.clone(),
        source,
    })?;
    let mut writer =
        ArrowWriter::try_new(file, arrow_schema(), Some(props)).map_err(|e| write_err(&e))?;
    let mut builder = TraceBatchBuilder::new(IMPORT_HOST);
    let label: Arc<str> = label.name().into();
    let mut summary = ImportSummary::default();
    let mut seq: i64 = 0;
    for (i, t) in traces.iter().enumerate() {
        let (rel, nrs) = (&t.id, &t.calls);
        if nrs.is_empty() {
            summary.empty.push(rel.clone());
            continue;
        }
        summary.traces += 1;
        let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let file = rel
            .rsplit_once('#')
            .filter(|_| t.tid.is_some())
            .map_or(rel.as_str(), |r| r.0);
        let name = Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let comm: String = name.chars().take(15).collect();
        let pid = t.tid.unwrap_or(id);
        let process = Process {
            pid,
            tgid: pid,
            ppid: 0,
            uid: 0,
            gid: 0,
            comm: comm.into(),
            cgroup_id: u64::from(id),
        };
        let container = Arc::new(Container {
            id: rel.as_str().into(),
            ..Default::default()
        });
        for &nr in nrs {
            builder.push(&Event {
                time_ns: IMPORT_EPOCH_NS + seq * IMPORT_STEP_NS,
                ktime_ns: seq as u64,
                process: process.clone(),
                exe_path: None,
                exe_sha256: None,
                container: Some(container.clone()),
                workload: None,
                context: None,
                label: Some(label.clone()),
                detail: Detail::Syscall { nr, ret: None },
            });
            seq += 1;
            summary.syscalls += 1;
            if builder.len() >= opts.row_group_rows {
                writer.write(&builder.finish()).map_err(|e| write_err(&e))?;
            }
        }
    }
    if !builder.is_empty() {
        writer.write(&builder.finish()).map_err(|e| write_err(&e))?;
    }
    writer.close().map_err(|e| write_err(&e))?;
    std::fs::rename(&tmp, out).map_err(|source| ImportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_bad_lines() {
        let p = Path::new("t/x.txt");
        assert_eq!(
            parse_trace(p, b"6 6 63\n 5  3\t9\n\n").unwrap(),
            vec![6, 6, 63, 5, 3, 9]
        );
        let err = parse_trace(p, b"1 2\n3 abc 4\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "t/x.txt:2: `abc` is not a syscall number (expected whitespace-separated non-negative integers)"
        );
        let err = parse_trace(p, b"-1").unwrap_err().to_string();
        assert!(err.contains(":1:"), "{err}");
        let err = parse_trace(p, b"1 \x1b[31m").unwrap_err().to_string();
        assert!(!err.contains('\x1b'), "{err}");
    }

    #[test]
    fn pid_call_lines_and_bad_lines() {
        let p = Path::new("unm/x.int");
        assert_eq!(
            parse_pid_calls(p, b"551 2\n552 4\n\n551 66\r\n  552\t5 \n").unwrap(),
            vec![(551, vec![2, 66]), (552, vec![4, 5])]
        );
        assert!(parse_pid_calls(p, b"").unwrap().is_empty());
        for (bad, line) in [
            (&b"1 2\n3\n"[..], 2),
            (b"1 2 3\n", 1),
            (b"1 2\n1 2\n-4 5\n", 3),
            (b"x 5", 1),
            (b"1 5\n7 \x1b[31m", 2),
        ] {
            let err = parse_pid_calls(p, bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("unm/x.int:{line}: `"))
                    && err.ends_with(
                        "is not a `PID SYSCALL` line (expected two non-negative integers)"
                    )
                    && !err.contains('\x1b'),
                "{err}"
            );
        }
    }
}
