//! needle's host sensor.
//!
//! Data flows one way: [`kernel`] learns the running kernel (BTF offsets, tracepoint layouts,
//! clocks) → [`loader`] probes, loads and attaches the eBPF programs of `capture-ebpf`, each on
//! its own so one failure only skips that program → [`session`] drains the ring buffer,
//! [`decode`]s records into typed events ([`collapse`] turns the kernel's counts of repeated
//! opens into rows), enriches them and hands time-sorted row groups →
//! [`output`], which builds Arrow batches and writes them on a separate thread into rotating
//! zstd Parquet segments, renamed into
//! place only when complete. Kernel counters ([`counters`]) account for every event that was
//! lost or filtered, and land in each file's metadata and the run's [`summary`].
#![deny(missing_docs)]

pub mod cli;
pub mod collapse;
pub mod counters;
pub mod decode;
pub mod enrich;
pub mod hashing;
pub mod kernel;
pub mod loader;
pub mod output;
pub mod privileges;
pub mod probe_config;
pub mod ready;
pub mod session;
pub mod summary;

pub use session::{CaptureError, Config, run};
pub use summary::Summary;
