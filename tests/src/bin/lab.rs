//! `lab`: runs the scenario lab and writes a labelled dataset (see datasets/README.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};
use clap::Parser;
use needle_tests::lab::{self, Config};

/// Run real benign and attack workloads in runc containers while the real `capture` records
/// them, and write a labelled dataset: DIR/traces/*.parquet (only the lab's containers' rows,
/// `label` filled), DIR/labels.csv and DIR/lab-run.json. Needs root (eBPF, runc). All network
/// traffic goes to the lab's own listeners on one 127.0.0.0/8 address. Ctrl-C stops the
/// containers, capture and listeners and writes nothing.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A named dataset: lab-train (seed 1, 48 benign of the classic types, no attacks, 180 s),
    /// lab-validation (seed 2, 40 classic benign, every classic attack, 180 s) or lab-holdout
    /// (seed 7, 44 benign of the classic and look-alike types, every stealth attack, 300 s),
    /// written to datasets/<preset>. Other flags given explicitly override the preset.
    #[arg(long)]
    preset: Option<String>,
    /// Seed of every parameter (names, ports, paths, timings, which containers are attacked).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of benign containers (scenario types cycle in a seeded order).
    #[arg(long)]
    benign: Option<usize>,
    /// Benign scenario types, comma-separated: `classic` (the 12 types of lab-train),
    /// `lookalike` (benign types that look suspicious: startup-installer, pkg-update,
    /// ci-runner, jit-runtime, sidecar-proxy, log-rotate, key-backup, port-prober,
    /// admin-debug), `all`, or names.
    #[arg(long)]
    benign_kinds: Option<String>,
    /// Attack scenarios, comma-separated: `all` (the classic ones: miner, c2-dga-beacon,
    /// reverse-shell, tor-client, fileless, cred-discovery, docker-socket, kmod-load),
    /// `stealth` (no intel hit: masq-miner, slow-beacon, curl-pipe-sh, cred-harvest,
    /// escape-attempt, port-scan, log-tamper, setuid-backdoor), `none`, or names.
    #[arg(long)]
    attacks: Option<String>,
    /// Seconds the workloads run.
    #[arg(long)]
    seconds: Option<u64>,
    /// Output directory.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// The capture binary (default: `capture` next to this binary).
    #[arg(long)]
    capture: Option<PathBuf>,
    /// What capture records of plain syscalls: `profile` (per-thread counts, capture's default)
    /// or `full` (every call, in order: the sequences `analyze train` fits its sequence models
    /// on).
    #[arg(long, default_value = "profile", value_parser = ["profile", "full"])]
    syscalls: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (seed, benign, kinds, attacks, seconds) = match args.preset.as_deref() {
        None => (1, 8, "classic", "miner", 60),
        Some("lab-train") => (1, 48, "classic", "none", 180),
        Some("lab-validation") => (2, 40, "classic", "all", 180),
        Some("lab-holdout") => (7, 44, "all", "stealth", 300),
        Some(other) => bail!("unknown preset {other:?} (lab-train, lab-validation, lab-holdout)"),
    };
    let out = args
        .preset
        .as_ref()
        .map(|p| PathBuf::from("datasets").join(p));
    let attacks = args.attacks.unwrap_or(attacks.to_owned());
    let attacks: Vec<String> = match attacks.as_str() {
        "none" | "" => Vec::new(),
        "all" => lab::scenario::ATTACKS
            .iter()
            .map(|(k, _)| k.to_string())
            .collect(),
        "stealth" => lab::stealth::STEALTH
            .iter()
            .map(|(k, _)| k.to_string())
            .collect(),
        list => list.split(',').map(|s| s.trim().to_owned()).collect(),
    };
    let kinds = args.benign_kinds.unwrap_or(kinds.to_owned());
    let benign_kinds: Vec<String> = match kinds.as_str() {
        "classic" => lab::scenario::BENIGN
            .iter()
            .map(|k| k.to_string())
            .collect(),
        "lookalike" => lab::lookalike::LOOKALIKE
            .iter()
            .map(|k| k.to_string())
            .collect(),
        "all" => lab::benign_names().into_iter().map(String::from).collect(),
        list => list.split(',').map(|s| s.trim().to_owned()).collect(),
    };
    let Some(out) = args.out.or(out) else {
        bail!("--out DIR is needed without --preset")
    };
    let capture = match args.capture {
        Some(c) => c,
        None => std::env::current_exe()
            .context("current_exe")?
            .parent()
            .map(|d| d.join("capture"))
            .context("no directory for the lab binary")?,
    };
    let cfg = Config {
        seed: args.seed.unwrap_or(seed),
        benign: args.benign.unwrap_or(benign),
        benign_kinds,
        attacks,
        seconds: args.seconds.unwrap_or(seconds),
        out,
        capture,
        capture_args: vec!["--syscalls".into(), args.syscalls],
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("install signal handler")?;
    }
    let o = lab::run(&cfg, &stop)
        .map_err(anyhow::Error::msg)
        .context("lab")?;
    let attacks = o
        .containers
        .iter()
        .filter(|r| r.plan.label == "attack")
        .count();
    println!(
        "{}: {} containers ({} attack), {:.0} s recorded, {} rows kept of {} ({} host rows dropped), {:.2} MB, {:.1} bytes/row",
        cfg.out.display(),
        o.containers.len(),
        attacks,
        o.recorded_s,
        o.rows,
        o.raw_rows,
        o.raw_rows - o.rows,
        o.bytes as f64 / 1e6,
        o.bytes as f64 / o.rows.max(1) as f64
    );
    println!("fake internet: {:?}", o.activity);
    for r in o.containers.iter().filter(|r| r.plan.label == "attack") {
        println!(
            "attack {} {} injected={}",
            &r.id[..12],
            r.plan.scenario,
            r.injected
        );
    }
    if !o.unconfirmed.is_empty() {
        bail!(
            "attacks that never reached their server (the dataset is written, but check it): {:?}",
            o.unconfirmed
        );
    }
    Ok(())
}
