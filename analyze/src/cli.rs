//! Command-line arguments (clap) and their validation into a [`Command`].
//!
//! Parsing only checks shapes; `TryFrom<Cli> for Command` checks meaning (a file list is
//! present, times parse, an output is given where a binary format would hit a terminal), so
//! the library never sees an invalid combination.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::import::{Label, TraceFormat};
use crate::models::eval::AttackUnit;
use crate::report::Format;
use crate::scan::{TimeBound, WindowSpec};

/// needle's analyzer: ranks the workloads recorded in needle traces, most suspicious first.
///
/// Examples:
///   analyze traces/                              rank every workload in a directory tree
///   analyze 'traces/host=*/date=2026-11-*'       hive-partitioned trees, quoted glob
///   analyze traces/*.parquet --format json --top 10
///   analyze features traces/ --out features.parquet
///   analyze partials 'traces/host=a/*' --out a.npart   the map step; then: analyze *.npart
///   analyze train datasets/lab-train --labels datasets/lab-train/labels.csv --out my.model
///   analyze eval datasets/lab-validation --model my.model --labels datasets/lab-validation/labels.csv
///   analyze import syscall-traces ADFA/Attack_Data_Master --label attack --out attack.parquet
///   analyze import syscall-traces unm/named/normal --format pid-call --label normal --out n.parquet
///   analyze intel update --dir intel/ && analyze traces/ --intel intel/
#[derive(Debug, Parser)]
#[command(
    name = "analyze",
    version,
    args_conflicts_with_subcommands = true,
    verbatim_doc_comment
)]
pub struct Cli {
    /// A subcommand; without one, rank the workloads of FILES.
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Ranking options (the default command).
    #[command(flatten)]
    pub rank: RankArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Write the per-workload feature table itself (no ranking).
    Features(FeaturesArgs),
    /// Convert other trace formats into needle traces.
    #[command(subcommand)]
    Import(ImportSub),
    /// Train anomaly models on the normal workloads of FILES and write a model file.
    Train(TrainArgs),
    /// Evaluate a model on labelled workloads: ROC AUC, average precision, precision@k, the
    /// rank of every attack, detection rate, false alarms and F1 at the model's threshold.
    Eval(EvalArgs),
    /// Threat-intel feeds.
    #[command(subcommand)]
    Intel(IntelSub),
    /// The map step alone: read FILES and write their merged per-workload aggregates (features,
    /// signature state, process tables, context) to a partial file; `analyze` merges partial
    /// files (`*.npart`) given beside or instead of traces and ranks as one run over all of
    /// them would. Give `analyze` the same --rules, --intel and --no-signatures.
    Partials(PartialsArgs),
}

/// `analyze partials`.
#[derive(Debug, Args)]
pub struct PartialsArgs {
    /// Inputs (traces, or partial files to merge into one) and time window (absolute times
    /// only: a duration before the end of this share of the input would differ per share).
    #[command(flatten)]
    pub input: InputArgs,
    /// The partial file to write (*.npart).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Add the threat-intel lists in DIR (as `analyze --intel`). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub intel: Vec<PathBuf>,
    /// Add the signature rules in DIR (as `analyze --rules`). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// No signature state (then rank with `analyze --no-signatures`).
    #[arg(long)]
    pub no_signatures: bool,
}

/// `analyze intel …`.
#[derive(Debug, Subcommand)]
pub enum IntelSub {
    /// Download the public feeds (abuse.ch URLhaus, ThreatFox, Feodo Tracker, MalwareBazaar;
    /// the Tor Project's relays and exits) and write them as intel files into DIR, one per
    /// feed and list, with source, licence and date; use them with `analyze --intel DIR`. A
    /// feed that fails keeps its previous files; the exit status says whether any failed.
    /// Set ABUSE_CH_AUTH_KEY to send an abuse.ch Auth-Key.
    Update(IntelUpdateArgs),
}

/// `analyze intel update`.
#[derive(Debug, Args)]
pub struct IntelUpdateArgs {
    /// The directory of intel files (created when missing).
    #[arg(long, value_name = "DIR", default_value = "needle-intel")]
    pub dir: PathBuf,
    /// Fetch feed NAME from URL instead of its published address (a mirror). Repeatable.
    #[arg(long, value_name = "NAME=URL")]
    pub source: Vec<String>,
    /// Time limit of one download.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `analyze train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Inputs and time window.
    #[command(flatten)]
    pub input: InputArgs,
    /// The model file to write (e.g. models/default.model).
    #[arg(long, short, value_name = "MODEL")]
    pub out: PathBuf,
    /// Ground truth: a CSV file with `workload` and `label` (normal/attack) columns. Without
    /// it, the traces' `label` column is used; when nothing is labelled, every workload is
    /// taken as normal. Only normal workloads are trained on.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Seed of every random choice (validation split, isolation forest, k-means, GMM): the
    /// same data and seed give a byte-identical model file.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

/// `analyze eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Inputs and time window (labelled workloads the model was not trained on).
    #[command(flatten)]
    pub input: InputArgs,
    /// The model file [default: the built-in models/default.model].
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Ground truth: a CSV file with `workload` and `label` columns [default: the traces'
    /// `label` column].
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Output format: text (Markdown tables) or json.
    #[arg(long, value_enum, default_value_t = EvalFormat::Text)]
    pub format: EvalFormat,
    /// What one attack recording is: each attack workload, or the attack workloads imported
    /// from one `--format pid-call` file (`<file>#<pid>`), scored by the highest — how the
    /// UNM datasets are scored, since an intrusion run also holds normal-looking processes.
    #[arg(long, value_enum, default_value_t = AttackUnitArg::Workload)]
    pub attack_unit: AttackUnitArg,
    /// Suppression rules applied to the ranking's findings, as `analyze --suppress` does
    /// (the findings an operator expects in this fleet). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub suppress: Vec<PathBuf>,
}

/// `eval --attack-unit` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttackUnitArg {
    /// Each attack workload.
    Workload,
    /// The attack workloads of one imported file.
    File,
}

/// `eval --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvalFormat {
    /// Markdown tables.
    Text,
    /// One JSON document.
    Json,
}

/// Which model ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelChoice {
    /// The built-in default model.
    Default,
    /// A model file.
    File(PathBuf),
    /// The unsupervised peer-group baseline only.
    Baseline,
}

/// Options shared by every command that reads traces.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Trace files, directories (searched recursively for *.parquet, so hive-partitioned
    /// trees such as host=…/date=…/ work), quoted glob patterns, or objects in S3 or an
    /// S3-compatible store: s3://bucket/prefix/ (every *.parquet and *.npart under it).
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Endpoint of an S3-compatible store for s3:// inputs (http://127.0.0.1:9000); default
    /// AWS_ENDPOINT_URL, else AWS. Plain http is allowed only for an endpoint given so.
    /// Credentials come from the AWS environment variables or profile (~/.aws/credentials).
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Analyze only events at or after this time: an RFC 3339 UTC time
    /// (2026-11-23T08:00:00Z) or a duration before the end of the input (30m, 2h, 1day).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Analyze only events before this time: an RFC 3339 UTC time or a duration before the
    /// end of the input (`--until 10m` drops the last ten minutes).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Go on past unreadable, corrupt or foreign files and list them under `inputs.skipped`
    /// instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// Never draw a progress bar (one is drawn on stderr only when it is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// The default command: rank workloads.
#[derive(Debug, Args)]
pub struct RankArgs {
    /// Inputs and time window.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format: table (ranked workloads), json (ranked workloads and inputs summary),
    /// csv or parquet (the feature table with rank and score), ocsf (every finding as an OCSF
    /// 1.5.0 Detection Finding, one JSON object per line).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write every finding, of every workload (--top and --workload do not apply), as
    /// OCSF Detection Findings (NDJSON) to FILE; `-` for stdout when --out takes the main
    /// output.
    #[arg(long, value_name = "FILE|-")]
    pub findings_out: Option<PathBuf>,
    /// Also POST every finding, of every workload, to URL in Falco's alert shape (what
    /// Falcosidekick takes), one request each; a finding is retried up to 5 times with
    /// backoff, and one that cannot be delivered is an error (exit status 1).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Show only the N most suspicious workloads [default: 25 for the table, all otherwise].
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Show only this workload (full id, or a unique prefix such as a 12-character short
    /// id); it is still scored against every workload of the input.
    #[arg(long, value_name = "ID")]
    pub workload: Option<String>,
    /// Write to this file instead of stdout (required for parquet when stdout is a terminal).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Add the threat-intel lists in DIR (*.txt, see analyze/README.md): a list with a shipped
    /// name extends it (or replaces it, with a `# mode: replace` header), a new name adds a
    /// list. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub intel: Vec<PathBuf>,
    /// Add the signature rules in DIR (*.toml): a rule with a shipped id replaces it, and
    /// `enabled = false` turns it off. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Rank by the models alone: no signature rules.
    #[arg(long)]
    pub no_signatures: bool,
    /// Silence the findings these suppression rules describe (TOML, see analyze/README.md
    /// "Suppression rules"): they add nothing to the score and are counted in every output.
    /// Repeatable.
    #[arg(long, value_name = "FILE")]
    pub suppress: Vec<PathBuf>,
    /// Do not compare workloads with their peers in the input (the trained model alone).
    #[arg(long)]
    pub no_peers: bool,
    /// Score with this trained model [default: the built-in models/default.model].
    #[arg(long, value_name = "MODEL", conflicts_with = "no_model")]
    pub model: Option<PathBuf>,
    /// Score with the unsupervised peer-group baseline instead of a trained model.
    #[arg(long)]
    pub no_model: bool,
    /// Also write a self-contained HTML report to FILE (one file, no network needed to open
    /// it): summary, every workload ranked, and for each suspicious one its findings with
    /// evidence, timeline, process tree, network peers, DNS names and the features behind its
    /// score. Reads the suspicious workloads' events a second time; --top and --workload
    /// apply to the normal output only.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `analyze features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Inputs and time window.
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write the feature table.
    #[arg(long, short, value_name = "FILE", required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// Format of the table [default: from the --out extension: .csv, .json, else parquet].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print the documented list of features (Markdown) and exit.
    #[arg(long)]
    pub list: bool,
}

/// `analyze import …`.
#[derive(Debug, Subcommand)]
pub enum ImportSub {
    /// Syscall-number traces (the classic host intrusion-detection datasets) into one needle
    /// trace. `--format plain`: one trace per file, whitespace-separated numbers, one workload
    /// per file, the workload id being the file's path relative to DIR. `--format pid-call`:
    /// `PID SYSCALL` lines (the UNM datasets), one workload per file and process, id
    /// `<path relative to DIR>#<pid>`.
    SyscallTraces(ImportArgs),
}

/// `analyze import syscall-traces`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Directory of trace files (searched recursively; hidden files are skipped).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Ground truth of every trace in DIR, written into the `label` column.
    #[arg(long, value_enum)]
    pub label: LabelArg,
    /// The needle trace to write.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Layout of the trace files.
    #[arg(long, value_enum, default_value_t = ImportFormatArg::Plain)]
    pub format: ImportFormatArg,
}

/// `import syscall-traces --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportFormatArg {
    /// One trace per file: whitespace-separated syscall numbers.
    Plain,
    /// `PID SYSCALL` lines: one trace per file and process.
    PidCall,
}

/// `--label` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LabelArg {
    /// Normal behaviour.
    Normal,
    /// Attack behaviour.
    Attack,
}

/// Why the arguments do not make a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No input given.
    #[error("no input: give trace files or directories (see --help)")]
    NoInput,
    /// A `--since`/`--until` value that is neither a time nor a duration.
    #[error(
        "--{flag} {value:?}: expected an RFC 3339 UTC time (2026-11-23T08:00:00Z) or a duration (30m, 2h)"
    )]
    BadTime {
        /// The flag.
        flag: &'static str,
        /// The value.
        value: String,
    },
    /// Binary output to a terminal.
    #[error("refusing to write Parquet to a terminal: use --out FILE or redirect stdout")]
    ParquetToTerminal,
    /// `--top 0`.
    #[error("--top must be at least 1")]
    ZeroTop,
    /// `features --format table` or `ocsf`.
    #[error("the feature table is written as csv, json or parquet")]
    FeaturesAsTable,
    /// A bad `intel update --source`.
    #[error(transparent)]
    Feed(#[from] crate::feeds::FeedError),
    /// A `--webhook` that is not an http(s) URL.
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    /// `partials --since 30m`.
    #[error(
        "--{0}: analyze partials takes absolute times (RFC 3339 UTC): a duration before the end of one share of the input would differ per share"
    )]
    RelativeWindow(&'static str),
    /// `--findings-out -` while stdout carries the main output.
    #[error("--findings-out -: stdout already carries the --format output; give --out FILE too")]
    StdoutTwice,
}

/// Where a second output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Standard output (`-`).
    Stdout,
    /// A file.
    File(PathBuf),
}

/// Validated input settings.
#[derive(Clone, Debug)]
pub struct InputConfig {
    /// Files, directories and globs.
    pub files: Vec<PathBuf>,
    /// Time window.
    pub window: WindowSpec,
    /// `--skip-bad`.
    pub skip_bad: bool,
    /// Draw a progress bar (stderr is a terminal and not `--no-progress`).
    pub progress: bool,
    /// How `s3://` inputs are reached.
    pub store: crate::scan::object::StoreConfig,
}

/// Where signature rules and intel come from.
#[derive(Clone, Debug, Default)]
pub struct SignatureConfig {
    /// Run signatures at all.
    pub enabled: bool,
    /// Extra rule directories.
    pub rules: Vec<PathBuf>,
    /// Extra intel directories.
    pub intel: Vec<PathBuf>,
    /// Suppression rule files.
    pub suppress: Vec<PathBuf>,
}

/// `analyze FILES…`: rank workloads and report them.
#[derive(Clone, Debug)]
pub struct Rank {
    /// Inputs.
    pub input: InputConfig,
    /// Output format.
    pub format: Format,
    /// How many workloads to show (None = all).
    pub top: Option<usize>,
    /// Only this workload.
    pub workload: Option<String>,
    /// Output file (None = stdout).
    pub out: Option<PathBuf>,
    /// Signature rules and intel.
    pub signatures: SignatureConfig,
    /// The model that scores.
    pub model: ModelChoice,
    /// Compare workloads with their peers.
    pub peers: bool,
    /// Also write the HTML report here.
    pub report: Option<PathBuf>,
    /// Also write every finding as OCSF NDJSON here.
    pub findings_out: Option<Sink>,
    /// Also post every finding to this webhook.
    pub webhook: Option<String>,
}

/// What to do, validated.
#[derive(Clone, Debug)]
pub enum Command {
    /// Rank workloads and report them.
    Rank(Rank),
    /// Train a model.
    Train {
        /// Inputs.
        input: InputConfig,
        /// Model file to write.
        out: PathBuf,
        /// Labels file.
        labels: Option<PathBuf>,
        /// Seed.
        seed: u64,
    },
    /// Evaluate a model.
    Eval {
        /// Inputs.
        input: InputConfig,
        /// The model.
        model: ModelChoice,
        /// Labels file.
        labels: Option<PathBuf>,
        /// Output format.
        format: EvalFormat,
        /// What one attack recording is.
        attack_unit: AttackUnit,
        /// Suppression rule files.
        suppress: Vec<PathBuf>,
    },
    /// Write the feature table.
    Features {
        /// Inputs.
        input: InputConfig,
        /// Output format.
        format: Format,
        /// Output file.
        out: PathBuf,
    },
    /// Write a partial file.
    Partials {
        /// Inputs.
        input: InputConfig,
        /// The partial file.
        out: PathBuf,
        /// Signature rules and intel (suppressions do not apply).
        signatures: SignatureConfig,
    },
    /// Print the feature documentation.
    ListFeatures,
    /// Update the threat-intel files from the public feeds.
    IntelUpdate(crate::feeds::Options),
    /// Import syscall-number traces.
    ImportSyscallTraces {
        /// Source directory.
        dir: PathBuf,
        /// Label of every trace.
        label: Label,
        /// Layout of the trace files.
        format: TraceFormat,
        /// Output trace.
        out: PathBuf,
    },
}

/// Parses a `--since`/`--until` value.
pub fn parse_time(flag: &'static str, value: &str) -> Result<TimeBound, CliError> {
    let bad = || CliError::BadTime {
        flag,
        value: value.to_string(),
    };
    if let Ok(d) = humantime::parse_duration(value) {
        return Ok(TimeBound::BeforeEnd(d));
    }
    let t = humantime::parse_rfc3339_weak(value).map_err(|_| bad())?;
    let d: Duration = t.duration_since(UNIX_EPOCH).map_err(|_| bad())?;
    Ok(TimeBound::At(
        i64::try_from(d.as_nanos()).map_err(|_| bad())?,
    ))
}

impl TryFrom<InputArgs> for InputConfig {
    type Error = CliError;

    fn try_from(a: InputArgs) -> Result<Self, CliError> {
        if a.files.is_empty() {
            return Err(CliError::NoInput);
        }
        let window = WindowSpec {
            since: a
                .since
                .as_deref()
                .map(|v| parse_time("since", v))
                .transpose()?,
            until: a
                .until
                .as_deref()
                .map(|v| parse_time("until", v))
                .transpose()?,
        };
        Ok(InputConfig {
            files: a.files,
            window,
            skip_bad: a.skip_bad,
            progress: !a.no_progress && std::io::stderr().is_terminal(),
            store: crate::scan::object::StoreConfig {
                endpoint: a.s3_endpoint,
            },
        })
    }
}

fn format_from_extension(out: &std::path::Path) -> Format {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        _ => Format::Parquet,
    }
}

impl TryFrom<Cli> for Command {
    type Error = CliError;

    fn try_from(cli: Cli) -> Result<Self, CliError> {
        match cli.command {
            Some(Sub::Features(f)) if f.list => Ok(Command::ListFeatures),
            Some(Sub::Features(f)) => {
                let out = f.out.ok_or(CliError::NoInput)?;
                let format = f.format.unwrap_or_else(|| format_from_extension(&out));
                if matches!(format, Format::Table | Format::Ocsf) {
                    return Err(CliError::FeaturesAsTable);
                }
                Ok(Command::Features {
                    input: f.input.try_into()?,
                    format,
                    out,
                })
            }
            Some(Sub::Partials(p)) => {
                let input: InputConfig = p.input.try_into()?;
                for (flag, bound) in [("since", input.window.since), ("until", input.window.until)]
                {
                    if matches!(bound, Some(TimeBound::BeforeEnd(_))) {
                        return Err(CliError::RelativeWindow(flag));
                    }
                }
                Ok(Command::Partials {
                    input,
                    out: p.out,
                    signatures: SignatureConfig {
                        enabled: !p.no_signatures,
                        rules: p.rules,
                        intel: p.intel,
                        suppress: Vec::new(),
                    },
                })
            }
            Some(Sub::Train(t)) => Ok(Command::Train {
                input: t.input.try_into()?,
                out: t.out,
                labels: t.labels,
                seed: t.seed,
            }),
            Some(Sub::Eval(e)) => Ok(Command::Eval {
                input: e.input.try_into()?,
                model: e.model.map_or(ModelChoice::Default, ModelChoice::File),
                labels: e.labels,
                format: e.format,
                attack_unit: match e.attack_unit {
                    AttackUnitArg::Workload => AttackUnit::Workload,
                    AttackUnitArg::File => AttackUnit::File,
                },
                suppress: e.suppress,
            }),
            Some(Sub::Intel(IntelSub::Update(u))) => {
                Ok(Command::IntelUpdate(crate::feeds::Options {
                    dir: u.dir,
                    sources: crate::feeds::parse_sources(&u.source)?,
                    timeout: u.timeout,
                }))
            }
            Some(Sub::Import(ImportSub::SyscallTraces(a))) => Ok(Command::ImportSyscallTraces {
                dir: a.dir,
                label: match a.label {
                    LabelArg::Normal => Label::Normal,
                    LabelArg::Attack => Label::Attack,
                },
                format: match a.format {
                    ImportFormatArg::Plain => TraceFormat::Plain,
                    ImportFormatArg::PidCall => TraceFormat::PidCall,
                },
                out: a.out,
            }),
            None => {
                let r = cli.rank;
                if r.top == Some(0) {
                    return Err(CliError::ZeroTop);
                }
                if r.format == Format::Parquet && r.out.is_none() && std::io::stdout().is_terminal()
                {
                    return Err(CliError::ParquetToTerminal);
                }
                let findings_out = r.findings_out.map(|p| {
                    if p.as_os_str() == "-" {
                        Sink::Stdout
                    } else {
                        Sink::File(p)
                    }
                });
                if findings_out == Some(Sink::Stdout) && r.out.is_none() {
                    return Err(CliError::StdoutTwice);
                }
                if let Some(url) = &r.webhook {
                    crate::webhook::check_url(url)?;
                }
                let top = r
                    .top
                    .or((r.format == Format::Table && r.workload.is_none()).then_some(25));
                let signatures = SignatureConfig {
                    enabled: !r.no_signatures,
                    rules: r.rules,
                    intel: r.intel,
                    suppress: r.suppress,
                };
                let model = match (r.model, r.no_model) {
                    (_, true) => ModelChoice::Baseline,
                    (Some(p), false) => ModelChoice::File(p),
                    (None, false) => ModelChoice::Default,
                };
                Ok(Command::Rank(Rank {
                    input: r.input.try_into()?,
                    format: r.format,
                    top,
                    workload: r.workload,
                    out: r.out,
                    signatures,
                    model,
                    peers: !r.no_peers,
                    report: r.report,
                    findings_out,
                    webhook: r.webhook,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let cli = Cli::try_parse_from(std::iter::once("analyze").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Command::try_from(cli).map_err(|e| e.to_string())
    }

    #[test]
    fn default_command_ranks() {
        let Ok(Command::Rank(Rank {
            input, format, top, ..
        })) = parse(&[
            "a.parquet",
            "dir",
            "--since",
            "30m",
            "--until",
            "2026-11-23T08:00:00Z",
        ])
        else {
            panic!()
        };
        assert_eq!(input.files.len(), 2);
        assert_eq!(format, Format::Table);
        assert_eq!(top, Some(25));
        assert_eq!(
            input.window.since,
            Some(TimeBound::BeforeEnd(Duration::from_secs(1800)))
        );
        assert_eq!(
            input.window.until,
            Some(TimeBound::At(1_795_420_800 * 1_000_000_000))
        );
        let Ok(Command::Rank(Rank { top, .. })) = parse(&["a", "--format", "json"]) else {
            panic!()
        };
        assert_eq!(top, None);
    }

    #[test]
    fn subcommands_and_errors() {
        assert!(matches!(
            parse(&["features", "x", "--out", "f.csv"]),
            Ok(Command::Features {
                format: Format::Csv,
                ..
            })
        ));
        assert!(matches!(
            parse(&["features", "--list"]),
            Ok(Command::ListFeatures)
        ));
        assert!(matches!(
            parse(&[
                "import",
                "syscall-traces",
                "d",
                "--label",
                "attack",
                "--out",
                "o.parquet"
            ]),
            Ok(Command::ImportSyscallTraces {
                label: Label::Attack,
                format: TraceFormat::Plain,
                ..
            })
        ));
        assert!(matches!(
            parse(&[
                "import",
                "syscall-traces",
                "unm/named",
                "--label",
                "normal",
                "--format",
                "pid-call",
                "--out",
                "o.parquet"
            ]),
            Ok(Command::ImportSyscallTraces {
                format: TraceFormat::PidCall,
                ..
            })
        ));
        assert!(parse(&[]).unwrap_err().contains("no input"));
        assert!(
            parse(&["x", "--since", "yesterday-ish"])
                .unwrap_err()
                .contains("--since")
        );
        assert!(parse(&["x", "--top", "0"]).is_err());
        assert!(
            parse(&["features", "x", "--out", "f", "--format", "table"])
                .unwrap_err()
                .contains("csv, json or parquet")
        );
        assert!(
            parse(&[
                "import",
                "syscall-traces",
                "d",
                "--label",
                "maybe",
                "--out",
                "o"
            ])
            .is_err()
        );
        assert!(matches!(
            parse(&["train", "d", "--out", "m.model", "--seed", "7"]),
            Ok(Command::Train { seed: 7, .. })
        ));
        assert!(parse(&["train", "d"]).is_err(), "--out is required");
        assert!(matches!(
            parse(&[
                "partials",
                "d",
                "--out",
                "p.npart",
                "--since",
                "2026-11-23T08:00:00Z"
            ]),
            Ok(Command::Partials { .. })
        ));
        assert!(
            parse(&["partials", "d", "--out", "p.npart", "--since", "30m"])
                .unwrap_err()
                .contains("absolute times")
        );
        assert!(parse(&["partials", "d"]).is_err(), "--out is required");
        assert!(matches!(
            parse(&["eval", "d", "--format", "json"]),
            Ok(Command::Eval {
                model: ModelChoice::Default,
                format: EvalFormat::Json,
                ..
            })
        ));
        assert!(matches!(
            parse(&["x", "--no-model"]),
            Ok(Command::Rank(Rank {
                model: ModelChoice::Baseline,
                ..
            }))
        ));
        assert!(matches!(
            parse(&["x", "--model", "m"]),
            Ok(Command::Rank(Rank {
                model: ModelChoice::File(_),
                ..
            }))
        ));
        assert!(parse(&["x", "--model", "m", "--no-model"]).is_err());
        assert!(matches!(
            parse(&["x", "--format", "ocsf", "--findings-out", "f.ndjson"]),
            Ok(Command::Rank(Rank {
                format: Format::Ocsf,
                findings_out: Some(Sink::File(_)),
                ..
            }))
        ));
        assert!(matches!(
            parse(&["x", "--out", "o.json", "--findings-out", "-"]),
            Ok(Command::Rank(Rank {
                findings_out: Some(Sink::Stdout),
                ..
            }))
        ));
        assert!(
            parse(&["x", "--findings-out", "-"])
                .unwrap_err()
                .contains("stdout already")
        );
        assert!(parse(&["features", "x", "--out", "f", "--format", "ocsf"]).is_err());
        let Ok(Command::IntelUpdate(o)) = parse(&[
            "intel",
            "update",
            "--dir",
            "i",
            "--source",
            "feodo=http://127.0.0.1:8/f",
        ]) else {
            panic!()
        };
        assert_eq!((o.dir.to_str(), o.sources.len()), (Some("i"), 1));
        assert!(
            parse(&["intel", "update", "--source", "nope=http://h/"])
                .unwrap_err()
                .contains("unknown feed")
        );
        assert!(matches!(
            parse(&["x", "--webhook", "http://127.0.0.1:2801/"]),
            Ok(Command::Rank(Rank {
                webhook: Some(_),
                ..
            }))
        ));
        assert!(
            parse(&["x", "--webhook", "127.0.0.1:2801"])
                .unwrap_err()
                .contains("--webhook 127.0.0.1:2801")
        );
    }
}
