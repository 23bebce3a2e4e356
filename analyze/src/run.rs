//! Executing a validated [`Command`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{Command, EvalFormat, InputConfig, ModelChoice, Rank, SignatureConfig, Sink};
use crate::features::{FeatureTable, TimeWindow, catalog, finalize};
use crate::import::{ImportError, import_syscall_traces};
use crate::import::{Label, TraceFormat};
use crate::models::eval::AttackUnit;
use crate::models::labels::{read_labels, truths};
use crate::models::sequence::{Sequences, read_sequences};
use crate::models::{DEFAULT_MODEL, DEFAULT_MODEL_NAME, ModelError, ModelFile, Scorer};
use crate::rank::ScanFindings;
use crate::rank::{ANOMALY_THRESHOLD, Model as _, Ranked, Ranker};
use crate::report::Format;
use crate::report::html::{self, ModelInfo};
use crate::report::ocsf::Analytics;
use crate::report::{Report, ReportError, write_features};
use crate::scan::{InputSummary, OpenTrace, ScanError, ScanOptions, scan};
use crate::signatures::Engine;
use crate::suppress::{SuppressError, Suppressions};

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
    /// Suppression rules cannot be loaded.
    #[error(transparent)]
    Suppress(#[from] SuppressError),
    /// Importing failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A model cannot be loaded, trained or used.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The output file cannot be created.
    #[error("{}: {source}", path.display())]
    Output {
        /// The output.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Threat-intel feeds could not be updated.
    #[error(transparent)]
    Feeds(#[from] crate::feeds::FeedError),
    /// Findings could not be delivered to the webhook.
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    /// A partial file cannot be written.
    #[error(transparent)]
    Partial(#[from] crate::scan::partials::PartialError),
    /// What was asked needs the traces' events, and partial files were given.
    #[error("{0}: give the traces, not partial files (*.npart)")]
    NeedsTraces(&'static str),
    /// `--workload` matches no workload, or more than one.
    #[error("--workload {id:?}: {problem}")]
    Workload {
        /// What was asked for.
        id: String,
        /// No match, or which ones matched.
        problem: String,
    },
}

fn features_of(input: &InputConfig) -> Result<(FeatureTable, InputSummary, usize), Error> {
    let s = scan_inputs(input, None)?;
    Ok((s.table, s.inputs, s.partial_files))
}

/// What one scan of the inputs gave.
struct Scanned {
    table: FeatureTable,
    inputs: InputSummary,
    findings: Option<ScanFindings>,
    /// The files read and the resolved window, for a second read (`--report`).
    traces: Vec<OpenTrace>,
    window: TimeWindow,
    /// Partial files merged in (their events cannot be read again).
    partial_files: usize,
}

/// Scans the inputs once: features, and signature findings when an engine is given.
fn scan_inputs(input: &InputConfig, engine: Option<Arc<Engine>>) -> Result<Scanned, Error> {
    let opts = ScanOptions {
        window: input.window,
        skip_bad: input.skip_bad,
        progress: input.progress,
        signatures: engine.clone(),
    };
    crate::scan::object::configure(input.store.clone());
    let out = scan(&input.files, &opts)?;
    let (features, signatures) = crate::scan::split(out.partials);
    let findings = engine.map(|e| ScanFindings(e.findings(&signatures)));
    Ok(Scanned {
        table: finalize(features),
        inputs: out.inputs,
        findings,
        traces: out.traces,
        window: out.window,
        partial_files: out.partial_files,
    })
}

/// Writes the HTML report of `ranked` (every workload, in rank order) to `path`.
fn write_html_report(
    path: &Path,
    s: &Scanned,
    ranked: &[Ranked],
    model: &ModelInfo,
    analytics: &Analytics,
) -> Result<(), Error> {
    let report = Report {
        table: &s.table,
        ranked,
        inputs: &s.inputs,
        analytics,
    };
    let wanted = html::suspicious(&report, model);
    let first = s.table.rows.iter().map(|r| r.first_ns).min().unwrap_or(0);
    let last = s
        .table
        .rows
        .iter()
        .map(|r| r.last_ns)
        .max()
        .unwrap_or(first);
    let evidence = html::collect(&s.traces, s.window, (first, last), &wanted);
    let mut w = open_output(Some(path))?;
    html::write(&report, model, &evidence, &mut *w)?;
    flush(w)
}

/// The model a command scores with (None: the peer-group baseline), and its name.
fn load_model(choice: &ModelChoice) -> Result<Option<(Arc<ModelFile>, String)>, Error> {
    Ok(match choice {
        ModelChoice::Baseline => None,
        ModelChoice::Default => Some((
            Arc::new(ModelFile::from_bytes(
                Path::new(DEFAULT_MODEL_NAME),
                DEFAULT_MODEL,
            )?),
            DEFAULT_MODEL_NAME.to_string(),
        )),
        ModelChoice::File(p) => Some((Arc::new(ModelFile::load(p)?), p.display().to_string())),
    })
}

/// The input's syscall sequences, read only when `wanted` and some workload has `syscall` rows.
fn sequences_of(
    input: &InputConfig,
    table: &FeatureTable,
    wanted: bool,
    partial_files: usize,
) -> Result<Sequences, Error> {
    let has = table
        .column("events.syscall")
        .is_some_and(|c| table.rows.iter().any(|r| r.values[c] > 0.0));
    if !wanted || !has {
        return Ok(Sequences::new());
    }
    if partial_files > 0 {
        return Err(Error::NeedsTraces(
            "syscall-sequence models read every syscall in order",
        ));
    }
    Ok(read_sequences(&input.files, input.window, input.skip_bad)?)
}

/// A model bound to the input.
fn scorer(
    input: &InputConfig,
    table: &FeatureTable,
    model: Arc<ModelFile>,
    name: &str,
    partial_files: usize,
) -> Result<Arc<Scorer>, Error> {
    let sequences = sequences_of(input, table, model.sequence.is_some(), partial_files)?;
    Ok(Arc::new(Scorer::new(model, name, table, sequences)?))
}

/// The ranking every command uses: the trained model and the peer groups (either may be
/// off), the signatures and the user's suppressions.
fn ranker(
    scorer: Option<Arc<Scorer>>,
    peers: bool,
    findings: Option<ScanFindings>,
    suppressions: Suppressions,
) -> Ranker {
    let mut ranker = match (scorer, peers) {
        (Some(s), true) => Ranker::with_model(Box::new(s)),
        (Some(s), false) => Ranker::model_only(Box::new(s)),
        (None, _) => Ranker::baseline(),
    };
    if let Some(f) = findings {
        ranker = ranker.with_signature(Box::new(f));
    }
    ranker.with_suppressions(suppressions)
}

/// The signature engine the flags ask for (None with `--no-signatures`).
fn signature_engine(signatures: &SignatureConfig) -> Result<Option<Arc<Engine>>, Error> {
    Ok(if signatures.enabled {
        Some(Arc::new(Engine::load(
            &signatures.rules,
            &signatures.intel,
        )?))
    } else {
        None
    })
}

fn open_output(out: Option<&Path>) -> Result<Box<dyn Write + Send>, Error> {
    match out {
        Some(p) => {
            let f = File::create(p).map_err(|source| Error::Output {
                path: p.to_path_buf(),
                source,
            })?;
            Ok(Box::new(BufWriter::new(f)))
        }
        None => Ok(Box::new(BufWriter::new(std::io::stdout()))),
    }
}

fn select_workload(
    table: &FeatureTable,
    ranked: Vec<Ranked>,
    id: &str,
) -> Result<Vec<Ranked>, Error> {
    let exact: Vec<Ranked> = ranked
        .iter()
        .filter(|r| table.rows[r.row].workload == id)
        .cloned()
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let prefixed: Vec<Ranked> = ranked
        .into_iter()
        .filter(|r| table.rows[r.row].workload.starts_with(id))
        .collect();
    match prefixed.len() {
        1 => Ok(prefixed),
        0 => Err(Error::Workload {
            id: id.to_string(),
            problem: "no such workload in the input".into(),
        }),
        n => Err(Error::Workload {
            id: id.to_string(),
            problem: format!("{n} workloads start with it; give more of the id"),
        }),
    }
}

fn flush(mut w: Box<dyn Write + Send>) -> Result<(), Error> {
    w.flush().map_err(ReportError::from)?;
    Ok(())
}

/// Runs `command`, writing its output where the command says.
pub fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Rank(r) => rank(r),
        Command::Partials {
            input,
            out,
            signatures,
        } => partials(&input, &out, &signatures),
        Command::Features { input, format, out } => features(&input, format, &out),
        Command::Train {
            input,
            out,
            labels,
            seed,
        } => train(&input, &out, labels.as_deref(), seed),
        Command::Eval {
            input,
            model,
            labels,
            format,
            attack_unit,
            suppress,
        } => eval(
            &input,
            &model,
            labels.as_deref(),
            format,
            attack_unit,
            &suppress,
        ),
        Command::IntelUpdate(opts) => intel_update(&opts),
        Command::ListFeatures => {
            print!("{}", catalog::markdown_table());
            Ok(())
        }
        Command::ImportSyscallTraces {
            dir,
            label,
            format,
            out,
        } => import(&dir, label, format, &out),
    }
}

/// `analyze FILES…`: scan, score, rank, and write the report and the findings.
fn rank(r: Rank) -> Result<(), Error> {
    let Rank {
        input,
        format,
        top,
        workload,
        out,
        signatures,
        model,
        peers,
        report,
        findings_out,
        webhook,
    } = r;
    let suppressions = Suppressions::load(&signatures.suppress)?;
    let engine = signature_engine(&signatures)?;
    let mitre = engine.as_deref().map(mitre_of).unwrap_or_default();
    let mut scanned = scan_inputs(&input, engine)?;
    if report.is_some() && scanned.partial_files > 0 {
        return Err(Error::NeedsTraces(
            "--report reads the suspicious workloads' events again",
        ));
    }
    let table = &scanned.table;
    let scorer = match load_model(&model)? {
        Some((m, name)) => Some(scorer(&input, table, m, &name, scanned.partial_files)?),
        None => None,
    };
    let (model_info, analytics) = describe_model(scorer.as_deref(), mitre);
    let mut ranked = ranker(scorer, peers, scanned.findings.take(), suppressions).rank(table);
    if let Some(path) = &report {
        write_html_report(path, &scanned, &ranked, &model_info, &analytics)?;
    }
    let (table, inputs) = (&scanned.table, &scanned.inputs);
    let every = Report {
        table,
        ranked: &ranked,
        inputs,
        analytics: &analytics,
    };
    if let Some(sink) = &findings_out {
        let path = match sink {
            Sink::Stdout => None,
            Sink::File(p) => Some(p.as_path()),
        };
        let mut w = open_output(path)?;
        crate::report::ocsf::write(&every, &analytics, &mut *w)?;
        flush(w)?;
    }
    // Built now, from every workload; posted once the main output is written.
    let alerts: Vec<crate::report::falco::Alert> = match &webhook {
        Some(_) => crate::report::findings_of(&every)
            .iter()
            .map(|f| crate::report::falco::alert(f, &analytics))
            .collect(),
        None => Vec::new(),
    };
    if let Some(id) = &workload {
        ranked = select_workload(table, ranked, id)?;
    }
    if let Some(n) = top {
        ranked.truncate(n);
    }
    let mut w = open_output(out.as_deref())?;
    Report {
        table,
        ranked: &ranked,
        inputs,
        analytics: &analytics,
    }
    .write(format, &mut *w)?;
    flush(w)?;
    if let Some(url) = &webhook {
        let d = crate::webhook::deliver(url, &alerts, crate::webhook::Policy::default())?;
        eprintln!(
            "webhook: {} findings delivered to {} ({} attempts retried)",
            d.findings,
            crate::http::redact(url),
            d.retries
        );
    }
    Ok(())
}

/// Each rule's MITRE ATT&CK techniques, by rule id (for OCSF's `attacks`).
fn mitre_of(engine: &Engine) -> std::collections::BTreeMap<String, Vec<String>> {
    engine
        .rules()
        .iter()
        .map(|r| (r.id.clone(), r.mitre.clone()))
        .collect()
}

/// What scored (the trained model, or the peer-group baseline without one), for the HTML
/// report and for OCSF's analytic.
fn describe_model(
    scorer: Option<&Scorer>,
    mitre: std::collections::BTreeMap<String, Vec<String>>,
) -> (ModelInfo, Analytics) {
    let info = match scorer {
        Some(s) => ModelInfo {
            name: s.name().to_string(),
            threshold: s.anomaly_threshold(),
        },
        None => ModelInfo {
            name: "peer-group baseline".into(),
            threshold: ANOMALY_THRESHOLD,
        },
    };
    let analytics = Analytics {
        model: info.name.clone(),
        trained: scorer.is_some(),
        threshold: info.threshold,
        mitre,
    };
    (info, analytics)
}

/// `analyze partials FILES… --out P`: the merged per-workload partials of the inputs.
fn partials(input: &InputConfig, out: &Path, signatures: &SignatureConfig) -> Result<(), Error> {
    let engine = signature_engine(signatures)?;
    let digest = engine.as_deref().map(crate::scan::partials::engine_digest);
    let opts = ScanOptions {
        window: input.window,
        skip_bad: input.skip_bad,
        progress: input.progress,
        signatures: engine,
    };
    crate::scan::object::configure(input.store.clone());
    let s = scan(&input.files, &opts)?;
    let header = crate::scan::partials::Header::for_run(s.window, digest);
    crate::scan::partials::write(out, header, &s.inputs, &s.partials)?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {}: {} workloads from {} trace files ({} rows), {bytes} bytes",
        out.display(),
        s.partials.len(),
        s.inputs.files.len(),
        s.inputs.rows
    );
    for k in &s.inputs.skipped {
        eprintln!(
            "skipped {}: {}",
            crate::report::escape::terminal(&k.path, 200),
            crate::report::escape::terminal(&k.error, 300)
        );
    }
    Ok(())
}

/// `analyze features FILES… --out F`: the feature table.
fn features(input: &InputConfig, format: Format, out: &Path) -> Result<(), Error> {
    let (table, inputs, _) = features_of(input)?;
    let mut w = open_output(Some(out))?;
    write_features(&table, format, &mut *w)?;
    flush(w)?;
    for s in &inputs.skipped {
        eprintln!(
            "skipped {}: {}",
            crate::report::escape::terminal(&s.path, 200),
            crate::report::escape::terminal(&s.error, 300)
        );
    }
    Ok(())
}

/// `analyze train FILES… --out M`: fit and save a model.
fn train(input: &InputConfig, out: &Path, labels: Option<&Path>, seed: u64) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let labels = labels.map(read_labels).transpose()?;
    let (table, _, partial_files) = features_of(input)?;
    let sequences = sequences_of(input, &table, true, partial_files)?;
    let truths = truths(&table, labels.as_ref());
    let (model, notes) =
        crate::models::train::fit(&table, &sequences, &truths, seed, input.progress)?;
    model.save(out)?;
    if notes.assumed_normal {
        eprintln!(
            "note: no workload is labelled: all {} were taken as normal",
            table.rows.len()
        );
    }
    if notes.unlabelled > 0 {
        eprintln!(
            "note: {} workloads without a label were left out",
            notes.unlabelled
        );
    }
    let t = &model.training;
    eprintln!(
        "trained {} on {} normal workloads ({} held out for the threshold; {} attack workloads left out; {} threads, {} syscalls) in {:.1}s: threshold {:.3}, wrote {}",
        model.kinds.join(", "),
        t.train_workloads,
        t.validation_workloads,
        t.attack_workloads_excluded,
        t.threads,
        t.syscalls,
        started.elapsed().as_secs_f64(),
        model.threshold,
        out.display()
    );
    Ok(())
}

/// `analyze eval FILES… --model M`: the model's and the ranking's figures on labelled data.
fn eval(
    input: &InputConfig,
    model: &ModelChoice,
    labels: Option<&Path>,
    format: EvalFormat,
    attack_unit: AttackUnit,
    suppress: &[PathBuf],
) -> Result<(), Error> {
    let labels = labels.map(read_labels).transpose()?;
    // The shipped signature rules and intel: the ranking is evaluated with them, the
    // model scores without.
    let engine = Some(Arc::new(Engine::load(&[], &[])?));
    let Scanned {
        table,
        findings,
        partial_files,
        ..
    } = scan_inputs(input, engine)?;
    let Some((m, name)) = load_model(model)? else {
        return Err(ModelError::NoLabels("eval needs a trained model".into()).into());
    };
    let s = scorer(input, &table, m.clone(), &name, partial_files)?;
    let scored = s.score_all(&table);
    let suppressions = Suppressions::load(suppress)?;
    let ranked = ranker(Some(s), true, findings, suppressions).rank(&table);
    let truths = truths(&table, labels.as_ref());
    let report =
        crate::models::eval::evaluate(&name, &m, &table, &scored, &ranked, &truths, attack_unit)?;
    let mut w = open_output(None)?;
    match format {
        EvalFormat::Text => w
            .write_all(report.text().as_bytes())
            .map_err(ReportError::from)?,
        EvalFormat::Json => {
            serde_json::to_writer_pretty(&mut w, &report)
                .map_err(|e| ReportError::from(std::io::Error::other(e)))?;
            w.write_all(b"\n").map_err(ReportError::from)?;
        }
    }
    flush(w)
}

/// `analyze intel update`: fetch the public feeds, keeping the previous files of a feed that
/// fails.
fn intel_update(opts: &crate::feeds::Options) -> Result<(), Error> {
    let (reports, failure) = match crate::feeds::update(opts) {
        Ok(r) => (r, None),
        Err((r, e)) => (r, Some(e)),
    };
    for r in &reports {
        let url = crate::report::escape::terminal(&r.url, 200);
        match &r.outcome {
            Ok(files) => {
                for (path, n) in files {
                    eprintln!(
                        "{}: {n} entries → {} ({} lines skipped, {} records of other kinds)",
                        r.name,
                        path.display(),
                        r.skipped,
                        r.ignored
                    );
                }
            }
            Err(why) => eprintln!(
                "{}: FAILED: {url}: {}; previous files kept",
                r.name,
                crate::report::escape::terminal(why, 300)
            ),
        }
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// `analyze import syscall-traces DIR --out F`.
fn import(dir: &Path, label: Label, format: TraceFormat, out: &Path) -> Result<(), Error> {
    let s = import_syscall_traces(dir, label, format, out)?;
    eprintln!(
        "imported {} traces ({} syscalls) into {}",
        s.traces,
        s.syscalls,
        out.display()
    );
    for e in &s.empty {
        eprintln!(
            "note: {} holds no syscall; no workload written for it",
            crate::report::escape::terminal(e, 200)
        );
    }
    Ok(())
}
