//! The end-of-run summary.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use needle_common::abi::EventKind;
use needle_common::schema::ProgramStatus;

use crate::output::FinishedSegment;

/// What a capture run did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Wall time of the run.
    pub duration: Duration,
    /// Events written, per kind.
    pub by_kind: BTreeMap<EventKind, u64>,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Kernel time per program (when `kernel.bpf_stats_enabled` is on).
    pub costs: Vec<crate::loader::ProgramCost>,
    /// Connect results that arrived after their row was written (that row's `ret` is empty).
    pub unmatched_results: u64,
    /// Syscall profile rows written at the end for threads still alive (their counts since
    /// their last row).
    pub live_profile_rows: u64,
    /// Collapsed opens: rows written for closed windows, the opens they stand for, and counts
    /// whose window's first row was lost.
    pub collapse: crate::collapse::CollapseStats,
    /// Events the kernel could not deliver.
    pub lost: u64,
    /// The same per CPU.
    pub lost_per_cpu: Vec<u64>,
    /// The same per kind.
    pub lost_by_kind: BTreeMap<String, u64>,
    /// Other kernel counters (filtered, read errors).
    pub counters: BTreeMap<String, u64>,
    /// What loaded.
    pub programs: Vec<ProgramStatus>,
    /// Where files went.
    pub output_dir: PathBuf,
    /// Finalized files.
    pub files: Vec<FinishedSegment>,
    /// Enrichment counters.
    pub enrich: crate::enrich::EnrichStats,
    /// Executable hashing: hashed, served from cache, unavailable, dropped (queue full).
    pub hashes: [u64; 4],
    /// CPU time capture used while recording (user, system), all threads; start-up (BTF
    /// parsing, program verification) excluded.
    pub cpu: (Duration, Duration),
    /// What `--ship` uploaded and what still waits in the output directory.
    pub ship: Option<crate::ship::ShipReport>,
}

impl Summary {
    /// Events written, all kinds.
    pub fn events(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// Bytes written, all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.as_secs_f64();
        let events = self.events();
        writeln!(f, "capture summary")?;
        writeln!(f, "  duration        {secs:.1} s")?;
        writeln!(
            f,
            "  events          {events} ({:.0}/s)",
            events as f64 / secs.max(1e-9)
        )?;
        for (kind, n) in &self.by_kind {
            writeln!(f, "    {:<17} {n}", kind.name())?;
        }
        let per_cpu: Vec<String> = self.lost_per_cpu.iter().map(u64::to_string).collect();
        writeln!(
            f,
            "  events lost     {} (per CPU: {})",
            self.lost,
            if per_cpu.is_empty() {
                "-".into()
            } else {
                per_cpu.join(" ")
            }
        )?;
        for (kind, n) in &self.lost_by_kind {
            writeln!(f, "    {kind:<17} {n}")?;
        }
        if self.unmatched_results > 0 {
            writeln!(
                f,
                "  connect results {} arrived after their row was written (ret left empty)",
                self.unmatched_results
            )?;
        }
        if self.live_profile_rows > 0 {
            writeln!(
                f,
                "  syscall profiles of {} live threads written at the end",
                self.live_profile_rows
            )?;
        }
        if self.decode_errors > 0 {
            writeln!(f, "  decode errors   {}", self.decode_errors)?;
        }
        let c = &self.collapse;
        if c.rows > 0 {
            writeln!(
                f,
                "  collapsed opens {} in {} counted rows",
                c.opens, c.rows
            )?;
        }
        if c.net_rows > 0 {
            writeln!(
                f,
                "  collapsed connections {} in {} counted rows",
                c.connections, c.net_rows
            )?;
        }
        if c.dns_rows > 0 {
            writeln!(
                f,
                "  collapsed DNS messages {} in {} counted rows",
                c.dns_messages, c.dns_rows
            )?;
        }
        if c.orphaned > 0 {
            writeln!(
                f,
                "  collapse counts lost with their window's first row {}",
                c.orphaned
            )?;
        }
        for (name, n) in &self.counters {
            writeln!(f, "  {name:<22}{n}")?;
        }
        let e = &self.enrich;
        writeln!(
            f,
            "  context         {} containers started, {} stopped; {} events without workload, {} processes not in the table",
            e.containers_started, e.containers_stopped, e.cgroup_misses, e.process_misses
        )?;
        let [hashed, cached, unavailable, dropped] = self.hashes;
        writeln!(
            f,
            "  exe sha256      {hashed} hashed, {cached} from cache, {unavailable} unavailable, {dropped} dropped"
        )?;
        let bytes = self.bytes();
        let per_event = if events > 0 {
            format!("{:.1}", bytes as f64 / events as f64)
        } else {
            "-".into()
        };
        writeln!(f, "  bytes written   {bytes} ({per_event} bytes/event)")?;
        writeln!(f, "  files           {}", self.files.len())?;
        for file in &self.files {
            writeln!(
                f,
                "    {}  {} rows  {} bytes",
                self.output_dir.join(&file.name).display(),
                file.rows,
                file.bytes
            )?;
        }
        if let Some(s) = &self.ship {
            writeln!(
                f,
                "  shipped         {} segments ({} bytes) to {}",
                s.shipped, s.shipped_bytes, s.url
            )?;
            if s.waiting > 0 {
                writeln!(
                    f,
                    "  waiting         {} segments ({} bytes) in {}, shipped by the next start{}",
                    s.waiting,
                    s.waiting_bytes,
                    self.output_dir.display(),
                    s.last_error
                        .as_deref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                )?;
            }
        }
        if let Some(s) = self.ship.as_ref().filter(|s| s.spool_full) {
            if s.dropped > 0 {
                writeln!(
                    f,
                    "  spool           went over --spool-mib while the store was unreachable: dropped the {} oldest unshipped segments ({} bytes, {} events{}; --spool-full drop-oldest)",
                    s.dropped,
                    s.dropped_bytes,
                    s.dropped_events,
                    match s.dropped_uncounted {
                        0 => String::new(),
                        n => format!(" in the {} whose footer could be read", s.dropped - n),
                    }
                )?;
            } else {
                writeln!(
                    f,
                    "  spool           went over --spool-mib while the store was unreachable (every segment kept)"
                )?;
            }
        }
        let (user, sys) = self.cpu;
        let cpu = user + sys;
        let per_million = if events > 0 {
            format!("{:.2}", cpu.as_secs_f64() / events as f64 * 1e6)
        } else {
            "-".into()
        };
        writeln!(
            f,
            "  cpu (recording) {:.2} s user, {:.2} s system ({per_million} s per million events)",
            user.as_secs_f64(),
            sys.as_secs_f64()
        )?;
        let loaded = self.programs.iter().filter(|p| p.loaded).count();
        writeln!(
            f,
            "  programs        {loaded} loaded, {} skipped",
            self.programs.len() - loaded
        )?;
        for p in self.programs.iter().filter(|p| !p.loaded) {
            writeln!(
                f,
                "    skipped {} ({}): {}",
                p.name,
                p.hook,
                p.reason.as_deref().unwrap_or("?")
            )?;
        }
        if !self.costs.is_empty() {
            writeln!(f, "  kernel time     (kernel.bpf_stats_enabled)")?;
            for c in &self.costs {
                writeln!(
                    f,
                    "    {:<18} {:>12} runs {:>9.1} ns/run {:>9.3} s",
                    c.name,
                    c.runs,
                    c.ns as f64 / c.runs as f64,
                    c.ns as f64 / 1e9
                )?;
            }
        }
        Ok(())
    }
}
