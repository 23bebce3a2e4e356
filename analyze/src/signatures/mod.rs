//! Signatures with threat intel: known-bad behaviour named as GuardDuty Runtime Monitoring
//! findings, with the events that prove it.
//!
//! Rules are TOML files ([`rule`], shipped in `models/rules/`, embedded at build time, extended
//! with `--rules DIR`); intel lists are text files ([`intel`], `models/intel/`, `--intel DIR`).
//!
//! Evaluation rides the scan (no extra pass over the input): the scan hands each row to
//! [`Engine::observe`] beside the feature accumulator, and keeps each workload's
//! [`SigPartial`] beside its feature aggregates; this module knows nothing of the features.
//! * map — for every row, the conditions registered for its event kind are tested; a match
//!   becomes a [`Hit`] (the event's key fields, the process, the values later steps join on)
//!   in the workload's [`SigPartial`], together with the process tree (process key → parent)
//!   and each process's last exec. Hits are sparse and capped per rule and workload;
//! * reduce — partials merge like every other aggregate;
//! * finish — per workload, single-event rules become findings, sequences are joined in time
//!   order within a process lineage, thresholds count distinct values (counted per time
//!   bucket in the map step, [`threshold`]), and every finding gets the related events of its
//!   lineage as its evidence chain ([`correlate`]).

mod correlate;
mod dga;
pub mod docs;
pub mod fields;
pub mod intel;
mod matcher;
pub mod rule;
pub mod threshold;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use needle_common::abi::{EVENT_KINDS, EventKind, Family};

use crate::classify::hash_str;
use crate::fasthash::FastMap;
use crate::finding::Finding;

pub use correlate::findings_for;
pub use fields::{EXTRA_COLUMNS, Row, SigColumns};
pub use intel::Intel;
pub use rule::Rule;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Most hits kept per rule and workload (the earliest ones).
pub const MAX_HITS_PER_RULE: usize = 64;
/// Most processes whose parent and last exec are remembered per workload.
pub const MAX_PROCS: usize = 100_000;
/// Longest argv text kept per process.
const MAX_ARGV: usize = 512;

/// Why rules or intel cannot be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A file or directory cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A rule file is invalid.
    #[error("{file}: {message}")]
    Rule {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// An intel file is invalid.
    #[error("{file}: line {line}: {message}")]
    Intel {
        /// The file.
        file: String,
        /// Line number (0 = the file as a whole).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Compiled rules and intel, indexed by event kind.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    /// Per event-kind slot: (rule, condition) pairs to test.
    by_kind: Vec<Vec<(u16, u8)>>,
    intel: Intel,
}

impl Engine {
    /// The shipped rules and intel, extended by the rule and intel directories given.
    pub fn load(rule_dirs: &[PathBuf], intel_dirs: &[PathBuf]) -> Result<Engine, SignatureError> {
        let mut intel = Intel::shipped()?;
        for d in intel_dirs {
            intel.add_dir(d)?;
        }
        let mut files: Vec<(String, String)> = embedded::RULES
            .iter()
            .map(|(f, t)| (format!("models/rules/{f}"), t.to_string()))
            .collect();
        for d in rule_dirs {
            for p in intel::text_files(d, "toml")? {
                let text = std::fs::read_to_string(&p).map_err(|source| SignatureError::Io {
                    path: p.clone(),
                    source,
                })?;
                files.push((p.display().to_string(), text));
            }
        }
        let mut by_id: BTreeMap<String, Option<Rule>> = BTreeMap::new();
        for (file, text) in &files {
            let parsed = rule::parse(file, text)?;
            let compiled = if parsed.enabled {
                Some(Rule::compile(file, &parsed, &intel)?)
            } else {
                None
            };
            by_id.insert(parsed.id.clone(), compiled);
        }
        Ok(Engine::new(by_id.into_values().flatten().collect(), intel))
    }

    fn new(rules: Vec<Rule>, intel: Intel) -> Engine {
        let mut by_kind = vec![Vec::new(); EVENT_KINDS.len()];
        for (ri, r) in rules.iter().enumerate() {
            for (ci, c) in r.conds.iter().enumerate() {
                for k in &c.kinds {
                    by_kind[k.slot() as usize].push((ri as u16, ci as u8));
                }
            }
        }
        Engine {
            rules,
            by_kind,
            intel,
        }
    }

    /// The rules, in id order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The intel lists.
    pub fn intel(&self) -> &Intel {
        &self.intel
    }

    /// Tests one row (map step) and records what matched into `into`.
    pub fn observe(&self, row: &Row<'_>, kind: EventKind, time: i64, into: &mut SigPartial) {
        // Hashing the process key costs: only for rows that need it (exec, fork, hits).
        let mut proc = None;
        let mut proc_of =
            || *proc.get_or_insert_with(|| proc_hash(row.process_key(), row.pid_uid().0));
        if matches!(kind, EventKind::Exec | EventKind::Fork) {
            let ppid = crate::columns::opt(&row.c.ppid, row.row).unwrap_or(0);
            into.note_process(
                proc_of(),
                proc_hash(row.parent_key(), ppid),
                (kind == EventKind::Exec).then_some((time, row)),
            );
        }
        let Some(candidates) = self.by_kind.get(kind.slot() as usize) else {
            return;
        };
        let mut event: Option<Arc<HitEvent>> = None;
        for &(ri, ci) in candidates {
            let Some(rule) = self.rules.get(ri as usize) else {
                continue;
            };
            let Some(cond) = rule.conds.get(ci as usize) else {
                continue;
            };
            if !cond.matches(row, kind) {
                continue;
            }
            if let Some(t) = &rule.threshold {
                // Counted, not kept as a hit: only the earliest values of each bucket matter.
                let Some(value) = row.get(t.field).text_hash() else {
                    continue;
                };
                let group = match t.group {
                    Some(g) => match row.get(g).text_hash() {
                        Some(v) => v,
                        None => continue,
                    },
                    None => 0,
                };
                if into.thresholds.count(ri, t, group, value, time) {
                    let proc = proc_of();
                    if event.is_none() {
                        into.note_hit_process(row, kind, proc);
                    }
                    let hit = make_hit(row, kind, time, (ri, ci), proc, cond, &mut event);
                    into.thresholds.keep(ri, t, group, value, hit);
                }
                continue;
            }
            let kept = into.per_rule.entry(ri).or_insert(0);
            if *kept as usize >= MAX_HITS_PER_RULE {
                into.dropped += 1;
                continue;
            }
            *kept += 1;
            let proc = proc_of();
            if event.is_none() {
                into.note_hit_process(row, kind, proc);
            }
            let hit = make_hit(row, kind, time, (ri, ci), proc, cond, &mut event);
            into.hits.push(hit);
        }
    }

    /// Findings of every workload, from each workload's signature state (by workload key).
    pub fn findings<'a>(
        &self,
        states: impl IntoIterator<Item = (&'a String, &'a SigPartial)>,
    ) -> HashMap<String, Vec<Finding>> {
        states
            .into_iter()
            .map(|(k, sig)| (k.clone(), findings_for(self, sig)))
            .filter(|(_, f)| !f.is_empty())
            .collect()
    }
}

/// Key of a process: its process key, else (older or imported traces) its pid.
fn proc_hash(key: Option<&str>, pid: u32) -> u64 {
    match key {
        Some(k) if !k.is_empty() => hash_str(k),
        _ => hash_str(&format!("pid:{pid}")),
    }
}

/// A hit of condition `at` (rule, condition) on `row`, sharing the row's event with the other
/// hits of the same row.
fn make_hit(
    row: &Row<'_>,
    kind: EventKind,
    time: i64,
    at: (u16, u8),
    proc: u64,
    cond: &rule::Cond,
    event: &mut Option<Arc<HitEvent>>,
) -> Hit {
    let ev = event
        .get_or_insert_with(|| Arc::new(HitEvent::from_row(row, kind, time)))
        .clone();
    let carried = cond
        .carried()
        .iter()
        .map(|(var, f)| (var.clone(), row.get(*f).text_hashes()))
        .collect();
    Hit {
        rule: at.0,
        cond: at.1,
        time,
        proc,
        carried,
        event: ev,
    }
}

/// The event of a hit: enough to show it and to describe its process.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HitEvent {
    /// Time, ns.
    pub time: i64,
    /// Kind.
    #[serde(with = "fields::serde_kind")]
    pub kind: EventKind,
    /// Process id.
    pub pid: u32,
    /// Process key.
    pub process_key: Option<String>,
    /// Executable.
    pub exe: Option<String>,
    /// Its SHA-256.
    pub sha256: Option<String>,
    /// Real uid.
    pub uid: Option<u32>,
    /// User name.
    pub user: Option<String>,
    /// Ancestry, parent first.
    pub ancestry: Vec<String>,
    /// Key fields of the kind.
    #[serde(with = "fields::serde_named")]
    pub fields: Vec<(&'static str, String)>,
}

/// Fields shown as evidence, per event kind.
fn key_fields(kind: EventKind) -> &'static [fields::Field] {
    use EventKind as K;
    use fields::Field as F;
    const SECURITY: &[fields::Field] = &[
        F::Op,
        F::TargetPid,
        F::TargetUid,
        F::TargetGid,
        F::Path,
        F::Path2,
        F::Fstype,
        F::Flags,
        F::Ret,
    ];
    if kind.family() == Family::Security {
        return SECURITY;
    }
    match kind {
        K::Exec => &[F::Argv, F::ExeNew, F::ExeWritable, F::ExeFileless],
        K::Fork
        | K::Exit
        | K::ContainerStart
        | K::ContainerStop
        | K::Lost
        | K::SyscallProfile
        | K::Syscall => &[],
        K::Open
        | K::Unlink
        | K::Rename
        | K::Chmod
        | K::Chown
        | K::MemfdCreate
        | K::MmapExec
        | K::Link
        | K::Symlink
        | K::Mkdir => &[F::Path, F::Path2, F::Flags, F::Mode, F::Ret],
        K::Utimes => &[F::Path, F::AtimeNs, F::MtimeNs, F::Flags, F::Ret],
        K::Truncate => &[F::Path, F::Length, F::Ret],
        K::Connect | K::Accept | K::Bind | K::Listen | K::SendTo => {
            &[F::Protocol, F::DstAddr, F::DstPort, F::SrcPort, F::Ret]
        }
        K::Socket | K::Dup => &[F::Family, F::Protocol, F::DstAddr, F::DstPort, F::Ret],
        K::DnsQuery | K::DnsResponse => &[
            F::DnsName,
            F::DnsType,
            F::DnsRcode,
            F::DnsAnswers,
            F::DstAddr,
        ],
        // Every other family is listed above; a new security kind needs nothing here.
        _ => SECURITY,
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl HitEvent {
    fn from_row(row: &Row<'_>, kind: EventKind, time: i64) -> HitEvent {
        use fields::{Field as F, Val};
        let (pid, uid) = row.pid_uid();
        let text = |f| row.get(f).text();
        let fields = key_fields(kind)
            .iter()
            .filter_map(|&f| {
                let v = match (f, row.get(f)) {
                    (F::Flags | F::Mode, Val::Num(n)) => format!("0o{n:o}"),
                    (_, v) => v.text()?,
                };
                Some((f.name(), cut(&v, MAX_ARGV)))
            })
            .collect();
        HitEvent {
            time,
            kind,
            pid,
            process_key: row.process_key().map(str::to_string),
            exe: text(F::Exe),
            sha256: text(F::Sha256),
            uid,
            user: text(F::User),
            ancestry: row.ancestry().iter().map(|s| s.to_string()).collect(),
            fields,
        }
    }
}

/// One matched condition.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// Rule index.
    pub rule: u16,
    /// Condition (alternative or step) index.
    pub cond: u8,
    /// Event time, ns.
    pub time: i64,
    /// Process (hash of its key).
    pub proc: u64,
    /// Values carried for joins: (variable, hashes of its values).
    pub carried: Vec<(Arc<str>, Vec<u64>)>,
    /// The event.
    pub event: Arc<HitEvent>,
}

/// A process's last exec: time, argv.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecInfo {
    /// When.
    pub time: i64,
    /// argv, joined.
    pub argv: String,
}

/// Signature state of one workload over some rows; merges like the feature aggregates.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SigPartial {
    /// Matched conditions.
    pub hits: Vec<Hit>,
    per_rule: FastMap<u16, u32>,
    /// Hits not kept (cap reached).
    pub dropped: u64,
    /// Distinct-count threshold state.
    pub thresholds: threshold::ThresholdState,
    /// Process → parent.
    pub parents: FastMap<u64, u64>,
    /// Process → its last exec.
    pub execs: FastMap<u64, ExecInfo>,
}

impl SigPartial {
    /// Hits of processes whose exec or fork was not seen still join their lineage.
    fn note_hit_process(&mut self, row: &Row<'_>, kind: EventKind, proc: u64) {
        if !matches!(kind, EventKind::Exec | EventKind::Fork) {
            let ppid = crate::columns::opt(&row.c.ppid, row.row).unwrap_or(0);
            self.note_process(proc, proc_hash(row.parent_key(), ppid), None);
        }
    }

    fn note_process(&mut self, proc: u64, parent: u64, exec: Option<(i64, &Row<'_>)>) {
        if self.parents.len() < MAX_PROCS || self.parents.contains_key(&proc) {
            if proc != parent {
                self.parents.insert(proc, parent);
            }
        } else {
            self.dropped += 1;
        }
        if let Some((time, row)) = exec
            && (self.execs.len() < MAX_PROCS || self.execs.contains_key(&proc))
            && self.execs.get(&proc).is_none_or(|e| e.time <= time)
        {
            self.execs.insert(
                proc,
                ExecInfo {
                    time,
                    argv: cut(&row.argv().join(" "), MAX_ARGV),
                },
            );
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: SigPartial) {
        self.dropped += other.dropped;
        self.thresholds.merge(other.thresholds);
        for (p, parent) in other.parents {
            if self.parents.len() < MAX_PROCS || self.parents.contains_key(&p) {
                self.parents.insert(p, parent);
            }
        }
        for (p, e) in other.execs {
            if self.execs.get(&p).is_none_or(|mine| mine.time <= e.time)
                && (self.execs.len() < MAX_PROCS || self.execs.contains_key(&p))
            {
                self.execs.insert(p, e);
            }
        }
        self.hits.extend(other.hits);
        for (r, n) in other.per_rule {
            *self.per_rule.entry(r).or_insert(0) += n;
        }
        if self
            .per_rule
            .values()
            .any(|&n| n as usize > MAX_HITS_PER_RULE)
        {
            // Keep the earliest hits of each rule.
            self.hits.sort_by_key(|h| (h.rule, h.time));
            let mut kept: FastMap<u16, u32> = FastMap::default();
            let before = self.hits.len();
            self.hits.retain(|h| {
                let n = kept.entry(h.rule).or_insert(0);
                *n += 1;
                *n as usize <= MAX_HITS_PER_RULE
            });
            self.dropped += (before - self.hits.len()) as u64;
            self.per_rule = kept
                .into_iter()
                .map(|(r, n)| (r, n.min(MAX_HITS_PER_RULE as u32)))
                .collect();
        }
    }
}
