//! Command-line flags and their validation into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use needle_common::schema::WriteOptions;

use crate::probe_config::{DEFAULT_SKIP_PREFIXES, PrefixError, ProbeSettings, SyscallMode};
use crate::session::Config;

/// Record process activity on this host with eBPF and write it as zstd-compressed Parquet.
///
/// Runs until --duration passes or it receives SIGINT/SIGTERM, then finalizes the open segment
/// and prints a summary (events by kind, events lost, bytes written, files). Needs root.
#[derive(Debug, Parser)]
#[command(name = "capture", version, about, long_about)]
pub struct Args {
    /// How long to record (e.g. 30s, 10m, 1h). Without it, records until SIGINT/SIGTERM.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Directory for trace segments; created with mode 0700 if missing. Must not be a symlink.
    #[arg(long, short, default_value = "traces")]
    pub output: PathBuf,

    /// Where segments go under --output: `flat` (all in it) or `hive`
    /// (`host=<host>/date=<YYYY-MM-DD>/`, the UTC date of each segment's first event), the
    /// layout a fleet's object store and Spark expect.
    #[arg(long, value_enum, default_value_t = crate::output::Layout::Flat)]
    pub layout: crate::output::Layout,

    /// Start a new segment once the open one reaches this many MiB.
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    pub rotate_size: u64,

    /// Start a new segment after this long (e.g. 5m). A crash loses at most the open segment.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub rotate_interval: Duration,

    /// zstd compression level, 1 (fastest) to 22 (smallest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,

    /// Rows per Parquet row group (each row group is sorted by time). capture holds about one
    /// row group of rows in memory (~400 bytes a row; ~50 for a `syscall` row, which shares
    /// the rest with its thread's first one) while it fills, and the encoder's state for
    /// another: larger groups compress and scan slightly better, smaller ones cap memory.
    #[arg(long, default_value_t = needle_common::schema::WriteOptions::default().row_group_rows)]
    pub row_group_rows: usize,

    /// Memory bound of the rows waiting to be written, in MiB: a row group is handed to the
    /// writer when it reaches --row-group-rows or when its rows take about this much memory
    /// (estimated from the size of their kernel records), whichever comes first. At most three
    /// batches are alive at once (one filling, one queued, one being encoded), so this — with
    /// the ring buffer (--ring-kib-per-cpu × CPUs) — is what bounds capture's memory, whatever
    /// the event rate (measured with `--syscalls full` at saturation when a `syscall` row was a
    /// whole event: 24 MiB → 160–190 MiB peak RSS, 48 → 225–260; BENCHMARKS.md). Smaller
    /// batches cost a little compression on a busy host.
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub batch_mib: usize,

    /// Print a progress line to stderr this often (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub stats_interval: Option<Duration>,

    /// Ring buffer size per CPU in KiB (the total is rounded up to a power of two). It decides how
    /// long user space may fall behind before events are lost: with `--syscalls full` on a busy
    /// host, 16384 absorbs ~1 M events/s on 2 CPUs where 4096 loses above ~850 K (BENCHMARKS.md),
    /// at the cost of the ring's memory once written.
    #[arg(long, default_value_t = 4096, value_name = "KIB")]
    pub ring_kib_per_cpu: u32,

    /// Syscall recording: `off`; `profile` (per-thread syscall counts, one row per thread every
    /// --profile-interval and at thread exit); `full` (profiles plus one row per syscall exit, for
    /// sequence models — much larger traces).
    #[arg(long, value_enum, default_value_t = SyscallMode::Profile)]
    pub syscalls: SyscallMode,

    /// How often a running thread's syscall profile is written (e.g. 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub profile_interval: Duration,

    /// Also skip read-only opens and executable mappings under this absolute path prefix
    /// (at most 3 components of 16 bytes, 32 bytes in all; 8 prefixes in total). The kernel
    /// filters and counts them (`file_filtered` in the summary). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub skip_prefix: Vec<String>,

    /// Do not skip the default prefixes (shared libraries and loader caches: /lib/, /lib64/,
    /// /usr/lib/, /usr/lib64/, /etc/ld.so.cache, /usr/share/locale/, /usr/share/zoneinfo/) nor a
    /// process's read-only opens of its own /proc/<pid>/ files: record every open.
    #[arg(long)]
    pub no_default_filters: bool,

    /// Count repeats into one row: when a thread opens the same file (same device and inode,
    /// as the kernel resolved it) with the same flags, connects or sends to the same peer
    /// (protocol, address, port), or accepts on the same local port from the same remote
    /// address, or sends or gets the same DNS message over UDP (same server; same bytes but for
    /// the transaction id: name, type, and for answers rcode and answer set) again within this
    /// long of the first time, the kernel only counts it; the row that closes the window
    /// carries the count (`count` column; connects: one row for the repeats that succeeded and
    /// one for those that failed), so every event is accounted for, and every distinct DNS name
    /// keeps a row of its own. `0` writes every open, connection and DNS message as a row.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub collapse_window: Duration,

    /// Create this file (holding capture's pid) once every program is attached and recording
    /// has started; it is removed when capture exits. A readiness signal for orchestrators.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,

    /// Upload each finalized segment to S3 or an S3-compatible store, under
    /// PREFIX/host=…/date=…/, and delete the local copy once the store has it. While the store
    /// is unreachable segments wait in --output and are retried; the next start ships leftovers.
    /// Credentials: the AWS environment variables (AWS_ACCESS_KEY_ID, …) or instance roles.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub ship: Option<String>,

    /// Endpoint of an S3-compatible store for --ship (http://127.0.0.1:9000); default
    /// AWS_ENDPOINT_URL, else AWS. Plain http is allowed only for an endpoint given so.
    #[arg(long, value_name = "URL", requires = "ship")]
    pub s3_endpoint: Option<String>,

    /// With --ship: the unshipped segments' bound. Past it capture warns (stderr and summary)
    /// and does what --spool-full says.
    #[arg(long, default_value_t = 1024, value_name = "MIB", requires = "ship")]
    pub spool_mib: u64,

    /// With --ship, past --spool-mib: `keep` every segment and go on recording (nothing is
    /// deleted that the store lacks; the disk is the bound: a full disk stops the capture
    /// cleanly), or `drop-oldest`: delete the oldest unshipped segments to stay under
    /// --spool-mib and count them in the summary (the node's disk stays bounded, the oldest
    /// events are lost).
    #[arg(long, value_enum, default_value_t = crate::ship::SpoolFull::Keep, requires = "ship")]
    pub spool_full: crate::ship::SpoolFull,

    /// With --ship: at exit, wait this long for the last uploads; what is left is shipped by
    /// the next start.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s", requires = "ship")]
    pub ship_drain: Duration,

    /// Record nothing: exit 0 if PATH is a --ready-file naming a running capture, 1 otherwise
    /// (an exec readiness probe for images without a shell).
    #[arg(long, value_name = "PATH", exclusive = true)]
    pub check_ready: Option<PathBuf>,
}

/// A flag value that makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// Zero or absurd sizes.
    #[error("--{flag} must be {what}")]
    Range {
        /// The flag.
        flag: &'static str,
        /// The allowed range.
        what: &'static str,
    },
    /// A --ship URL that is not s3://bucket/prefix.
    #[error("--ship {0}")]
    Ship(String),
    /// A --skip-prefix the kernel filter cannot hold.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
}

impl TryFrom<Args> for Config {
    type Error = ArgsError;

    fn try_from(a: Args) -> Result<Config, ArgsError> {
        if a.rotate_size == 0 {
            return Err(ArgsError::Range {
                flag: "rotate-size",
                what: "at least 1 MiB",
            });
        }
        if a.rotate_interval < Duration::from_secs(1) {
            return Err(ArgsError::Range {
                flag: "rotate-interval",
                what: "at least 1s",
            });
        }
        if a.row_group_rows == 0 || a.row_group_rows > 16 << 20 {
            return Err(ArgsError::Range {
                flag: "row-group-rows",
                what: "between 1 and 16777216",
            });
        }
        if !(1..=4096).contains(&a.batch_mib) {
            return Err(ArgsError::Range {
                flag: "batch-mib",
                what: "between 1 and 4096",
            });
        }
        if !(4..=1 << 20).contains(&a.ring_kib_per_cpu) {
            return Err(ArgsError::Range {
                flag: "ring-kib-per-cpu",
                what: "between 4 and 1048576",
            });
        }
        if a.duration.is_some_and(|d| d.is_zero()) {
            return Err(ArgsError::Range {
                flag: "duration",
                what: "longer than zero",
            });
        }
        if a.profile_interval < Duration::from_secs(1) {
            return Err(ArgsError::Range {
                flag: "profile-interval",
                what: "at least 1s",
            });
        }
        let mut skip_prefixes: Vec<String> = if a.no_default_filters {
            Vec::new()
        } else {
            DEFAULT_SKIP_PREFIXES
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        skip_prefixes.extend(a.skip_prefix);
        let probe = ProbeSettings {
            syscalls: a.syscalls,
            profile_interval: a.profile_interval,
            skip_prefixes,
            skip_proc_self: !a.no_default_filters,
            collapse_window: a.collapse_window,
        };
        probe.validate()?;
        let ship = match a.ship {
            Some(url) => {
                let (bucket, prefix) =
                    crate::ship::ShipConfig::parse(&url).map_err(ArgsError::Ship)?;
                Some(crate::ship::ShipConfig {
                    bucket,
                    prefix,
                    endpoint: a.s3_endpoint,
                    spool_bytes: a.spool_mib.saturating_mul(1 << 20),
                    when_full: a.spool_full,
                    drain: a.ship_drain,
                })
            }
            None => None,
        };
        Ok(Config {
            duration: a.duration,
            output: a.output,
            rotate_size: a.rotate_size.saturating_mul(1 << 20),
            rotate_interval: a.rotate_interval,
            write: WriteOptions {
                zstd_level: a.zstd_level,
                row_group_rows: a.row_group_rows,
            },
            stats_interval: a.stats_interval,
            batch_bytes: a.batch_mib << 20,
            ring_bytes_per_cpu: a.ring_kib_per_cpu * 1024,
            probe,
            ready_file: a.ready_file,
            layout: a.layout,
            ship,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let a = Args::try_parse_from(std::iter::once("capture").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::try_from(a).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse(&["--duration", "30s"]).unwrap().duration,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse(&["--duration", "10m"]).unwrap().duration,
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            parse(&["--duration", "1h"]).unwrap().duration,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse(&[]).unwrap().duration, None);
        assert!(parse(&["--duration", "soon"]).is_err());
        assert!(parse(&["--duration", "0s"]).is_err());
    }

    #[test]
    fn the_batch_memory_bound_is_in_mib_and_bounded() {
        assert_eq!(parse(&[]).unwrap().batch_bytes, 32 << 20);
        assert_eq!(parse(&["--batch-mib", "8"]).unwrap().batch_bytes, 8 << 20);
        assert!(parse(&["--batch-mib", "0"]).is_err());
        assert!(parse(&["--batch-mib", "5000"]).is_err());
    }

    #[test]
    fn filters_and_syscall_mode() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.probe, ProbeSettings::default());
        let c = parse(&[
            "--syscalls",
            "full",
            "--no-default-filters",
            "--skip-prefix",
            "/opt/app/",
        ])
        .unwrap();
        assert_eq!(c.probe.syscalls, SyscallMode::Full);
        assert_eq!(c.probe.skip_prefixes, vec!["/opt/app/".to_string()]);
        assert!(!c.probe.skip_proc_self);
        assert!(parse(&["--skip-prefix", "relative/"]).is_err());
        // Seven defaults plus two is one too many for the kernel's eight slots.
        assert!(
            parse(&["--skip-prefix", "/a/", "--skip-prefix", "/b/"])
                .unwrap_err()
                .contains("at most 8")
        );
        assert!(parse(&["--syscalls", "some"]).is_err());
    }

    #[test]
    fn sizes_are_validated() {
        assert_eq!(parse(&["--rotate-size", "2"]).unwrap().rotate_size, 2 << 20);
        assert!(parse(&["--rotate-size", "0"]).is_err());
        assert!(parse(&["--zstd-level", "23"]).is_err());
        assert!(parse(&["--rotate-interval", "10ms"]).is_err());
    }

    #[test]
    fn ship_takes_an_s3_url() {
        let c = parse(&["--ship", "s3://b/fleet/", "--spool-mib", "2"]).unwrap();
        let s = c.ship.unwrap();
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("b", "fleet"));
        assert_eq!(s.spool_bytes, 2 << 20);
        assert_eq!(s.when_full, crate::ship::SpoolFull::Keep);
        let c = parse(&["--ship", "s3://b/", "--spool-full", "drop-oldest"]).unwrap();
        assert_eq!(
            c.ship.unwrap().when_full,
            crate::ship::SpoolFull::DropOldest
        );
        assert!(parse(&[]).unwrap().ship.is_none());
        assert!(
            parse(&["--ship", "/tmp/x"])
                .unwrap_err()
                .contains("--ship /tmp/x")
        );
        assert!(parse(&["--s3-endpoint", "http://127.0.0.1:1"]).is_err());
    }
}
