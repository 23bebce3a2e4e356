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
    /// Benign scenario types, comma-separated names and groups: `classic` (the 12 types of
    /// lab-train), `lookalike` (benign types that look suspicious: startup-installer,
    /// pkg-update, ci-runner, jit-runtime, sidecar-proxy, log-rotate, key-backup, port-prober,
    /// admin-debug), `all`.
    #[arg(long)]
    benign_kinds: Option<String>,
    /// Attack scenarios, comma-separated names and groups (`all,stealth` is every one): `all`
    /// (the classic ones: miner, c2-dga-beacon, reverse-shell, tor-client, fileless,
    /// cred-discovery, docker-socket, kmod-load), `stealth` (no intel hit: masq-miner,
    /// slow-beacon, curl-pipe-sh, cred-harvest, escape-attempt, port-scan, log-tamper,
    /// setuid-backdoor), `none`.
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
    let classic_attacks: Vec<&str> = lab::scenario::ATTACKS.iter().map(|(k, _)| *k).collect();
    let stealth: Vec<&str> = lab::stealth::STEALTH.iter().map(|(k, _)| *k).collect();
    let attacks = expand(
        &attacks,
        &[
            ("all", &classic_attacks),
            ("stealth", &stealth),
            ("none", &[]),
        ],
    );
    let kinds = args.benign_kinds.unwrap_or(kinds.to_owned());
    let all_benign = lab::benign_names();
    let benign_kinds = expand(
        &kinds,
        &[
            ("classic", lab::scenario::BENIGN),
            ("lookalike", lab::lookalike::LOOKALIKE),
            ("all", &all_benign),
        ],
    );
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

/// A comma-separated list of names and group names (`all,stealth`), each group replaced by its
/// members, every name once, in order.
fn expand(list: &str, groups: &[(&str, &[&str])]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let members = groups
            .iter()
            .find(|(g, _)| *g == item)
            .map_or_else(|| vec![item], |(_, m)| m.to_vec());
        for m in members {
            if !out.iter().any(|o| o == m) {
                out.push(m.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn groups_and_names_combine() {
        let groups: &[(&str, &[&str])] =
            &[("all", &["a", "b"]), ("stealth", &["c"]), ("none", &[])];
        assert_eq!(expand("all,stealth", groups), ["a", "b", "c"]);
        assert_eq!(expand("b, x,all", groups), ["b", "x", "a"]);
        assert!(expand("none", groups).is_empty());
        assert!(expand("", groups).is_empty());
    }
}
