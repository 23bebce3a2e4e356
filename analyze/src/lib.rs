//! needle's analyzer: many Parquet traces in, workloads ranked by suspicion out.
//!
//! Data flow:
//!
//! ```text
//!  FILES/DIRS/GLOBS ─► scan ─────────────► features ───────────► rank ─────────► report
//!   discover, check     one rayon task per   partial aggregates    peer-group      table, JSON,
//!   metadata, prune     row group, only the  per workload, merged  outlier score   CSV, Parquet
//!   row groups by time  needed columns       in any order          (+ models and
//!                                                                   signatures later)
//! ```
//!
//! * [`scan`] finds trace files (files, globs, directories and hive-partitioned trees),
//!   rejects what is not a needle trace this build can read, and runs the map step.
//! * [`features`] defines every feature once ([`features::catalog`]) and computes them as
//!   mergeable partial aggregates per workload ([`features::workload_key`] decides what a
//!   workload is).
//! * [`rank`] scores the merged feature table: a [`rank::Model`] (the baseline is robust
//!   peer-group outlier scoring) and [`rank::Signature`]s, combined into one ordering.
//! * [`signatures`] names known-bad behaviour (GuardDuty finding types) from rules and threat
//!   intel, evaluated in the same scan, with each finding's events and process lineage.
//! * [`report`] writes the result, escaping every attacker-controlled string.
//! * [`import`] converts other trace formats into needle traces.
//! * [`models`] trains, stores and applies the anomaly models (workload features and syscall
//!   sequences) that `analyze` ranks with; `train` and `eval` are its pipelines.
//! * [`partials`] writes the map step's aggregates as partial files (`analyze partials`) and
//!   reads them back, so that the map can run elsewhere (a Spark task, another host).
//! * [`feeds`] downloads public threat-intel feeds into intel files (`analyze intel update`).
//! * [`http`] is the HTTP client side both use.
//! * [`webhook`] posts findings to a webhook in Falco's alert shape (Falcosidekick).
//! * [`cli`] is the command line, validated into a [`cli::Command`] that [`run`] executes.
#![deny(missing_docs)]

pub mod cli;
pub mod features;
pub mod feeds;
pub mod http;
pub mod import;
pub mod models;
pub mod partials;
pub mod rank;
pub mod report;
pub mod scan;
pub mod signatures;
pub mod suppress;
pub mod webhook;

mod run;

pub use run::{Error, run};
