//! Executing a validated [`Command`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{Command, InputConfig};
use crate::features::{catalog, finalize, FeatureTable};
use crate::import::{import_syscall_traces, ImportError};
use crate::rank::{Ranked, Ranker};
use crate::report::{write_features, Report, ReportError};
use crate::scan::{scan, InputSummary, ScanError, ScanOptions};
use crate::signatures::{Engine, ScanFindings};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the inputs failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// Writing the report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Rules or intel cannot be loaded.
    #[error(transparent)]
    Signatures(#[from] crate::signatures::SignatureError),
    /// Importing failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The output file cannot be created.
    #[error("{}: {source}", path.display())]
    Output {
        /// The output.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--workload` matches no workload, or more than one.
    #[error("--workload {id:?}: {problem}")]
    Workload {
        /// What was asked for.
        id: String,
        /// No match, or which ones matched.
        problem: String,
    },
}

fn features_of(input: &InputConfig) -> Result<(FeatureTable, InputSummary), Error> {
    let (table, inputs, _) = scan_inputs(input, None)?;
    Ok((table, inputs))
}

/// Scans the inputs once: features, and signature findings when an engine is given.
fn scan_inputs(input: &InputConfig, engine: Option<Arc<Engine>>) -> Result<(FeatureTable, InputSummary, Option<ScanFindings>), Error> {
    let opts = ScanOptions { window: input.window, skip_bad: input.skip_bad, progress: input.progress, signatures: engine.clone() };
    let out = scan(&input.files, &opts)?;
    let findings = engine.map(|e| ScanFindings(e.findings(&out.partials)));
    Ok((finalize(out.partials), out.inputs, findings))
}

fn open_output(out: Option<&Path>) -> Result<Box<dyn Write + Send>, Error> {
    match out {
        Some(p) => {
            let f = File::create(p).map_err(|source| Error::Output { path: p.to_path_buf(), source })?;
            Ok(Box::new(BufWriter::new(f)))
        }
        None => Ok(Box::new(BufWriter::new(std::io::stdout()))),
    }
}

fn select_workload(table: &FeatureTable, ranked: Vec<Ranked>, id: &str) -> Result<Vec<Ranked>, Error> {
    let exact: Vec<Ranked> = ranked.iter().filter(|r| table.rows[r.row].workload == id).cloned().collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let prefixed: Vec<Ranked> = ranked.into_iter().filter(|r| table.rows[r.row].workload.starts_with(id)).collect();
    match prefixed.len() {
        1 => Ok(prefixed),
        0 => Err(Error::Workload { id: id.to_string(), problem: "no such workload in the input".into() }),
        n => Err(Error::Workload { id: id.to_string(), problem: format!("{n} workloads start with it; give more of the id") }),
    }
}

fn flush(mut w: Box<dyn Write + Send>) -> Result<(), Error> {
    w.flush().map_err(ReportError::from)?;
    Ok(())
}

/// Runs `command`, writing its output where the command says.
pub fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Rank { input, format, top, workload, out, signatures } => {
            let engine = if signatures.enabled { Some(Arc::new(Engine::load(&signatures.rules, &signatures.intel)?)) } else { None };
            let (table, inputs, findings) = scan_inputs(&input, engine)?;
            let mut ranker = Ranker::baseline();
            if let Some(f) = findings {
                ranker = ranker.with_signature(Box::new(f));
            }
            let mut ranked = ranker.rank(&table);
            if let Some(id) = &workload {
                ranked = select_workload(&table, ranked, id)?;
            }
            if let Some(n) = top {
                ranked.truncate(n);
            }
            let mut w = open_output(out.as_deref())?;
            Report { table: &table, ranked: &ranked, inputs: &inputs }.write(format, &mut *w)?;
            flush(w)
        }
        Command::Features { input, format, out } => {
            let (table, inputs) = features_of(&input)?;
            let mut w = open_output(Some(&out))?;
            write_features(&table, format, &mut *w)?;
            flush(w)?;
            for s in &inputs.skipped {
                eprintln!("skipped {}: {}", crate::report::escape::terminal(&s.path, 200), crate::report::escape::terminal(&s.error, 300));
            }
            Ok(())
        }
        Command::ListFeatures => {
            print!("{}", catalog::markdown_table());
            Ok(())
        }
        Command::ImportSyscallTraces { dir, label, out } => {
            let s = import_syscall_traces(&dir, label, &out)?;
            eprintln!("imported {} traces ({} syscalls) into {}", s.traces, s.syscalls, out.display());
            for e in &s.empty {
                eprintln!("note: {} holds no syscall; no workload written for it", crate::report::escape::terminal(e, 200));
            }
            Ok(())
        }
    }
}
