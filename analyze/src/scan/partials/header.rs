//! The header of a partial file: what must agree for two partials to merge.

use serde::{Deserialize, Serialize};

use crate::features::TimeWindow;
use crate::features::catalog::KINDS;
use crate::features::classify::{HASH_SEED, hash_str};

/// First line of every partial file.
pub const MAGIC: &str = "needle-partials";
/// Version of the layout this build reads and writes (3: each workload is its feature
/// aggregates followed by its signature state, no longer the signature state inside the
/// features).
pub const FORMAT_VERSION: u32 = 3;
/// The string hashed into [`HashSpec::probe`].
const PROBE_TEXT: &str = "needle partial hash probe";

/// The string hash the sets hold (a partial hashed otherwise cannot join this build's sets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashSpec {
    /// The hash function.
    pub function: String,
    /// Its seed.
    pub seed: u64,
    /// The hash of a fixed text: catches a changed function whatever its name says.
    pub probe: u64,
}

/// The caps the aggregates were kept under (values past them were dropped and counted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    /// Event kinds this build knows (the length of the kind histogram).
    pub event_kinds: usize,
    /// Entries per set and workload.
    pub set_cap: usize,
    /// Execs remembered per process.
    pub execs_per_process: usize,
    /// Syscall numbers kept in the histogram.
    pub syscall_numbers: usize,
    /// Signature hits kept per rule and workload.
    pub hits_per_rule: usize,
    /// Processes whose lineage signatures remember.
    pub signature_processes: usize,
    /// Threshold windows kept per rule and workload.
    pub threshold_buckets: usize,
    /// Evidence events per threshold window.
    pub threshold_samples: usize,
}

/// What a partial file says about itself (its second line, JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// needle version of the writer (for people; not checked).
    pub needle_version: String,
    /// The string hash.
    pub hash: HashSpec,
    /// The caps.
    pub caps: Caps,
    /// Digest of the signature rules and intel the hits were matched with (None: signatures
    /// were off).
    pub signatures: Option<String>,
    /// The time window rows were kept in (ns since the epoch; None: unbounded).
    pub since: Option<i64>,
    /// End of the window (exclusive).
    pub until: Option<i64>,
    /// Trace files read into it.
    pub files: usize,
    /// Workloads in it.
    pub workloads: usize,
}

impl Header {
    /// The header of a run of this build over `window` with signatures of digest `signatures`.
    pub fn for_run(window: TimeWindow, signatures: Option<String>) -> Header {
        use crate::features::partial_caps as c;
        Header {
            format_version: FORMAT_VERSION,
            needle_version: env!("CARGO_PKG_VERSION").to_string(),
            hash: HashSpec {
                function: "foldhash-quality".into(),
                seed: HASH_SEED,
                probe: hash_str(PROBE_TEXT),
            },
            caps: Caps {
                event_kinds: KINDS,
                set_cap: c::SET_CAP,
                execs_per_process: c::MAX_EXECS_PER_PROC,
                syscall_numbers: c::MAX_SYSCALL_NR,
                hits_per_rule: crate::signatures::MAX_HITS_PER_RULE,
                signature_processes: crate::signatures::MAX_PROCS,
                threshold_buckets: crate::signatures::threshold::MAX_BUCKETS_PER_RULE,
                threshold_samples: crate::signatures::threshold::MAX_SAMPLES,
            },
            signatures,
            since: window.since,
            until: window.until,
            files: 0,
            workloads: 0,
        }
    }

    /// The time window.
    pub fn window(&self) -> TimeWindow {
        TimeWindow {
            since: self.since,
            until: self.until,
        }
    }

    /// Why a partial with this header cannot merge into a run expecting `run`'s, if it cannot.
    pub fn mismatch(&self, run: &Header) -> Option<String> {
        if self.hash != run.hash {
            return Some(format!(
                "its sets are hashed with {} seed {:#x} (probe {:#x}), this build with {} seed {:#x} (probe {:#x})",
                self.hash.function,
                self.hash.seed,
                self.hash.probe,
                run.hash.function,
                run.hash.seed,
                run.hash.probe
            ));
        }
        if self.caps != run.caps {
            return Some(format!(
                "written under other caps ({:?}; this build: {:?})",
                self.caps, run.caps
            ));
        }
        if self.signatures != run.signatures {
            return Some(match (&self.signatures, &run.signatures) {
                (None, _) => {
                    "written without signatures (--no-signatures): give this run --no-signatures too"
                        .into()
                }
                (Some(_), None) => {
                    "written with signatures: drop --no-signatures, or write it with --no-signatures"
                        .into()
                }
                (Some(a), Some(b)) => format!(
                    "its signature rules and intel (digest {}) differ from this run's ({}): give both the same --rules and --intel",
                    short(a),
                    short(b)
                ),
            });
        }
        if self.window() != run.window() {
            return Some(format!(
                "written for the time window {} to {}, this run's is {} to {}",
                bound(self.since),
                bound(self.until),
                bound(run.since),
                bound(run.until)
            ));
        }
        None
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn bound(t: Option<i64>) -> String {
    t.map_or_else(|| "unbounded".into(), crate::scan::rfc3339)
}
