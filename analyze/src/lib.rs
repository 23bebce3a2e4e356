//! needle's analyzer: many Parquet traces in, workloads ranked by suspicion out.
//!
//! Data flow:
//!
//! ```text
//!  FILES/DIRS/GLOBS ─► scan ──────────────► features, signatures ─► rank ──────────────► report
//!   discover, check     one rayon task per    partial aggregates and  trained models,    table, JSON,
//!   metadata, prune     row group, only the   rule state per workload peer groups and    CSV, Parquet,
//!   row groups by time  needed columns        merged in any order     findings: one      OCSF, HTML
//!                                                                     score, one order
//! ```
//!
//! * [`scan`] finds trace files (files, globs, directories and hive-partitioned trees),
//!   rejects what is not a needle trace this build can read, and runs the map step.
//! * [`features`] defines every feature once ([`features::catalog`]) and computes them as
//!   mergeable partial aggregates per workload ([`columns::workload_key`] decides what a
//!   workload is).
//! * [`signatures`] names known-bad behaviour (GuardDuty finding types) from rules and threat
//!   intel, evaluated in the same scan, with each finding's events and process lineage.
//! * [`rank`] scores the merged feature table: a trained [`rank::Model`], the peer groups of
//!   the input and the [`rank::Signature`]s, combined into one score that is the order.
//! * [`suppress`] applies the user's suppression rules to findings.
//! * [`report`] writes the result, escaping every attacker-controlled string.
//! * [`import`] converts other trace formats into needle traces.
//! * [`models`] trains, stores and applies the anomaly models (workload features and syscall
//!   sequences) that `analyze` ranks with; `train` and `eval` are its pipelines.
//! * [`scan::partials`] writes the map step's aggregates as partial files (`analyze
//!   partials`) and reads them back, so that the map can run elsewhere (a Spark task, another
//!   host).
//! * Shared leaves, depending on no other stage: [`finding`] (what a finding is),
//!   [`calibrate`] (tail probabilities and their combination), [`timefmt`] (times as shown),
//!   [`escape`] (attacker-controlled text made safe for each output).
//! * [`feeds`] downloads public threat-intel feeds into intel files (`analyze intel update`).
//! * [`http`] is the HTTP client side both use.
//! * [`webhook`] posts findings to a webhook in Falco's alert shape (Falcosidekick).
//! * [`cli`] is the command line, validated into a [`cli::Command`] that [`run`] executes.
#![deny(missing_docs)]

pub mod calibrate;
pub mod classify;
pub mod cli;
pub mod columns;
pub mod escape;
pub mod fasthash;
pub mod features;
pub mod feeds;
pub mod finding;
pub mod http;
pub mod import;
pub mod models;
pub mod rank;
pub mod report;
pub mod scan;
pub mod signatures;
pub mod suppress;
pub mod timefmt;
pub mod webhook;

mod run;

pub use run::{Error, run};
