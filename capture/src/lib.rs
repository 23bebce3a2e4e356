//! needle's host sensor.
//!
//! Data flows one way: [`kernel`] learns the running kernel (BTF offsets, tracepoint layouts,
//! clocks) → [`loader`] probes, loads and attaches the eBPF programs of `capture-ebpf`, each on
//! its own so one failure only skips that program → [`session`] drains the ring buffer,
//! [`decode`]s records into typed events ([`collapse`] turns the kernel's counts of repeated
//! opens into rows), enriches them and hands time-sorted row groups (`syscall` rows kept as a
//! few numbers sharing their thread's context, [`enrich::batch`]) →
//! [`output`], which writes their columns straight into rotating zstd Parquet segments on a
//! separate thread (`needle_common::schema::TraceFileWriter`), renamed into
//! place only when complete. Kernel counters ([`counters`]) account for every event that was
//! lost or filtered, and land in each file's metadata and the run's [`summary`]. With
//! `--ship`, [`ship`] uploads finalized segments from the output directory on a thread of its
//! own, beside the recording.
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
pub mod ship;
pub mod summary;

pub use session::{CaptureError, Config};
pub use summary::Summary;

/// Runs a capture ([`session::run`]), shipping finalized segments beside it when configured.
pub fn run(
    config: &Config,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Summary, CaptureError> {
    // A symlinked output directory is refused by the session: ship nothing from behind it.
    let symlinked = std::fs::symlink_metadata(&config.output).is_ok_and(|m| m.is_symlink());
    let shipper = match &config.ship {
        Some(s) if !symlinked => Some(ship::Shipper::start(
            s,
            &config.output,
            &kernel::host::HostInfo::read().hostname,
        )?),
        _ => None,
    };
    let result = session::run(config, stop);
    let Some(shipper) = shipper else {
        return result;
    };
    // The run did not record: ship no longer than an upload already under way takes.
    let drain = match (&result, &config.ship) {
        (Ok(_) | Err(CaptureError::Write { .. }), Some(s)) => s.drain,
        _ => std::time::Duration::ZERO,
    };
    let report = shipper.finish(drain);
    match result {
        Ok(mut summary) => {
            summary.ship = Some(report);
            Ok(summary)
        }
        Err(CaptureError::Write {
            message,
            partial,
            mut summary,
        }) => {
            summary.ship = Some(report);
            Err(CaptureError::Write {
                message,
                partial,
                summary,
            })
        }
        Err(e) => Err(e),
    }
}
