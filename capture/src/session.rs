//! One capture run: load the sensor, drain the ring buffer, batch, rotate, finalize.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use needle_common::abi::{
    DnsWindows, EventKind, NetWindows, OpenWindows, ProfileEvent, ProfileSlot, ProfileState,
    SHAPE_PRIMARY,
};
use needle_common::schema::{Detail, Event, Process, SCHEMA_VERSION, TraceMetadata, WriteOptions};
use rustix::event::{PollFd, PollFlags, poll};
use std::os::fd::AsFd;

use crate::collapse::Windows;
use crate::counters::{Delta, Snapshot};
use crate::decode::{Decoder, Role};
use crate::enrich::{Enricher, Pending};
use crate::kernel::btf::{BtfError, KernelBtf};
use crate::kernel::clock::BootClock;
use crate::kernel::host::HostInfo;
use crate::kernel::tracefs::{TraceFs, TracefsError};
use crate::kernel::{OffsetsError, resolve_offsets};
use crate::loader::{self, LoadError, ProfileTableMap, ProfilesMap, SensorOptions};
use crate::output::{Job, OutputDir, OutputError, PARTIAL_SUFFIX, RowGroup, SegmentWriter, Worker};
use crate::probe_config::{PrefixError, ProbeSettings};
use crate::summary::Summary;

/// A validated capture configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Stop after this long (None: until SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// Output directory.
    pub output: PathBuf,
    /// Finalize a segment once it reaches this many bytes.
    pub rotate_size: u64,
    /// Finalize a segment after this long.
    pub rotate_interval: Duration,
    /// Parquet encoding.
    pub write: WriteOptions,
    /// Print a progress line this often.
    pub stats_interval: Option<Duration>,
    /// Hand a batch of rows to the writer once their estimated memory reaches this (see
    /// `--batch-mib`): with at most three batches alive, what bounds memory at any event rate.
    pub batch_bytes: usize,
    /// Ring buffer bytes per CPU.
    pub ring_bytes_per_cpu: u32,
    /// What the kernel programs record and skip.
    pub probe: ProbeSettings,
    /// Created once recording, removed at exit ([`crate::ready`]).
    pub ready_file: Option<PathBuf>,
    /// Where segments go under `output` (flat, or hive partitions by host and date).
    pub layout: crate::output::Layout,
    /// Upload finalized segments to object storage (`--ship`; [`crate::ship`]).
    pub ship: Option<crate::ship::ShipConfig>,
}

/// Why a capture could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Not root and without the capabilities eBPF needs.
    #[error("{0}")]
    NotPrivileged(String),
    /// tracefs.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// BTF.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// A kernel-side filter setting that does not fit.
    #[error(transparent)]
    Filter(#[from] PrefixError),
    /// Offsets.
    #[error(transparent)]
    Offsets(#[from] OffsetsError),
    /// Loading programs.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The output directory.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// `--ship` cannot start.
    #[error(transparent)]
    Ship(#[from] crate::ship::ShipError),
    /// The --ready-file could not be created.
    #[error("creating the ready file {path}")]
    ReadyFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Writing failed mid-run; finalized segments are intact.
    #[error("writing traces failed: {message}{}", partial.as_ref().map(|p| format!(" (incomplete segment left as {p})")).unwrap_or_default())]
    Write {
        /// The writer's error.
        message: String,
        /// The segment left behind as `.partial`.
        partial: Option<String>,
        /// What was captured and finalized before the failure.
        summary: Box<Summary>,
    },
}

/// How often the counters are read (and losses turned into `lost` rows).
const COUNTER_PERIOD: Duration = Duration::from_secs(1);
/// Longest wait for the ring buffer before checking timers and the stop flag.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Rows per Arrow batch the writer thread builds and encodes from a row group (up to
/// `--row-group-rows`, sorted as a whole by the reader): the whole row group in Arrow form
/// (about 800 bytes a row) is never held at once.
pub const BATCH_ROWS: usize = 16 * 1024;

/// A pending row's memory beyond its kernel record's bytes: the row itself and the allocator's
/// share of its boxed detail and strings (for `Config::batch_bytes`).
const ROW_BYTES: usize = std::mem::size_of::<Pending>() + 64;

struct SegmentState {
    start_wall_ns: i64,
    start_at: Instant,
    counters_at_start: Snapshot,
    enrichment_misses: u64,
}

/// Runs a capture until `config.duration` passes or `stop` is set; returns the summary.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<Summary, CaptureError> {
    if let Some(why) = crate::privileges::missing() {
        return Err(CaptureError::NotPrivileged(why));
    }
    let host = HostInfo::read();
    let tracefs = TraceFs::open_or_mount()?;
    // The parsed kernel BTF is large and only needed for the offsets: dropped right here.
    let offsets = resolve_offsets(&KernelBtf::running()?, &tracefs)?;
    let dir = OutputDir::open_or_create(&config.output)?;
    // Hive partitions are two levels down (host=…/date=…/).
    let stale = match config.layout {
        crate::output::Layout::Flat => dir.files_ending_with(PARTIAL_SUFFIX),
        crate::output::Layout::Hive => dir.files_ending_with_below(PARTIAL_SUFFIX, 2),
    };
    for name in &stale {
        eprintln!(
            "capture: note: {} is an incomplete segment from an earlier run that did not finish (crash or kill -9); it is not a readable trace",
            dir.path().join(name).display()
        );
    }

    let ring_bytes = config.ring_bytes_per_cpu.saturating_mul(host.cpus as u32);
    let ring_bytes = ring_bytes
        .max(4096)
        .checked_next_power_of_two()
        .unwrap_or(1 << 31);
    let cgroup2_root = crate::enrich::container::ContainerResolver::detect_cgroup2_root();
    let mut sensor = loader::load(
        &tracefs,
        cgroup2_root.as_deref(),
        offsets,
        SensorOptions {
            ring_bytes,
            config: config
                .probe
                .probe_config(u64::from(ring_bytes / 8), std::process::id())?,
        },
    )?;
    // The counters' baseline is taken as soon as the programs run: what they filter or lose
    // before the first event is read still belongs to this recording.
    let first_counters = Snapshot::read(&sensor.counters);
    for p in sensor.programs.iter().filter(|p| !p.loaded) {
        eprintln!(
            "capture: warning: {} ({}) skipped: {}",
            p.name,
            p.hook,
            p.reason.as_deref().unwrap_or("?")
        );
    }

    let loaded = sensor.programs.iter().filter(|p| p.loaded).count();
    eprintln!(
        "capture: recording with {loaded}/{} programs into {} (ring buffer {} KiB)",
        sensor.programs.len(),
        config.output.display(),
        ring_bytes / 1024
    );
    let _ready = match &config.ready_file {
        Some(path) => Some(crate::ready::ReadyFile::create(path).map_err(|source| {
            CaptureError::ReadyFile {
                path: path.clone(),
                source,
            }
        })?),
        None => None,
    };
    let clock = BootClock::measure();
    let run_start_wall = BootClock::now_wall_ns();
    let started = Instant::now();
    let deadline = config.duration.map(|d| started + d);
    let writer = SegmentWriter::new(dir, &host.hostname, run_start_wall, config.write)
        .with_layout(config.layout);
    let output_dir = writer.dir().path().to_path_buf();
    // One row group may wait while the writer encodes the one before: the reader hands over a
    // full group without waiting, and at most three are alive (filling, waiting, encoding).
    // (Handing over only when the writer is idle keeps two alive, but stalls the reader long
    // enough to lose events at 700 K events/s.)
    let worker = Worker::spawn(writer, &host.hostname, 1, BATCH_ROWS);

    let base_meta = TraceMetadata {
        schema_version: SCHEMA_VERSION,
        host: host.hostname.clone(),
        kernel: host.kernel.clone(),
        writer: format!("capture {}", env!("CARGO_PKG_VERSION")),
        programs: sensor.programs.clone(),
        settings: config.probe.describe(),
        ..Default::default()
    };

    let mut decoder = Decoder::new(clock);
    let mut windows = Windows::default();
    let mut costs = None;
    // The /proc snapshot is taken after the programs are attached: a process that starts in
    // between is in the ring buffer and the snapshot both, never in neither.
    let mut enricher = Enricher::new();
    settle_allocator();
    let cpu_at_start = own_cpu_time();
    // Sized once: growing by doubling would briefly hold one and a half row groups.
    let mut pending: Vec<Pending> = Vec::with_capacity(config.write.row_group_rows.max(1) + 1024);
    let mut by_kind: BTreeMap<EventKind, u64> = BTreeMap::new();
    let mut decode_errors = 0u64;
    // Connect results whose row was already written (its `ret` stays empty).
    let mut unmatched_results = 0u64;
    let mut last_counters = first_counters.clone();
    let mut last_counter_read = Instant::now();
    let mut last_stats = Instant::now();
    let mut segment = SegmentState {
        start_wall_ns: run_start_wall,
        start_at: started,
        counters_at_start: first_counters.clone(),
        enrichment_misses: 0,
    };
    let mut misses_at_segment_start = 0u64;
    let row_group_rows = config.write.row_group_rows.max(1);
    let mut pending_bytes = 0usize;

    let finalize =
        |worker: &Worker, seg: &SegmentState, counters: &Snapshot, meta: &TraceMetadata| {
            let delta = counters.since(&seg.counters_at_start);
            worker.send(Job::Finalize(Box::new(segment_metadata(meta, seg, &delta))))
        };

    loop {
        let stopping = stop.load(Ordering::SeqCst)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || worker.failed();
        // Drain everything that is waiting (also on the way out: nothing in the buffer is left behind).
        {
            let fd = sensor.events.as_fd();
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let timeout = if stopping {
                Duration::ZERO
            } else {
                POLL_TIMEOUT
            };
            let ts = rustix::time::Timespec::try_from(timeout).ok();
            let _ = poll(&mut fds, ts.as_ref());
        }
        if stopping && costs.is_none() {
            // Nothing records after this point: what is in the ring buffer and in the
            // collapse windows is final.
            costs = Some(sensor.costs());
            sensor.detach();
        }
        while let Some(item) = sensor.events.next() {
            match decoder.decode(&item) {
                Ok(d) => windows.route(d, &clock, |decoded| {
                    if decoded.role == Role::Result {
                        if !crate::enrich::attach_result(decoded, &mut pending) {
                            unmatched_results += 1;
                        }
                    } else {
                        enricher.enrich(decoded, &mut pending)
                    }
                }),
                Err(_) => decode_errors += 1,
            }
            // A row's memory, estimated from its kernel record: the decoded strings and
            // payloads follow the record's size (context is shared per process and container).
            pending_bytes += ROW_BYTES + item.len();
            drop(item);
            if pending.len() >= row_group_rows || pending_bytes >= config.batch_bytes {
                flush(&worker, &mut pending, &mut enricher, &mut by_kind);
                pending_bytes = 0;
            }
        }
        enricher.tick(&mut pending, || {
            let k = BootClock::now_boot_ns();
            (clock.wall_ns(k), k)
        });

        let now = Instant::now();
        if now.duration_since(last_counter_read) >= COUNTER_PERIOD || stopping {
            let snap = Snapshot::read(&sensor.counters);
            let delta = snap.since(&last_counters);
            if delta.lost > 0 {
                // Make the loss visible in the data itself, at the time it was noticed.
                let ktime = BootClock::now_boot_ns();
                pending.push(Pending::done(lost_event(&clock, ktime, delta.lost)));
            }
            last_counters = snap;
            last_counter_read = now;
        }

        let open_bytes = worker.shared.open_bytes.load(Ordering::Relaxed);
        let rotate = now.duration_since(segment.start_at) >= config.rotate_interval
            || open_bytes >= config.rotate_size;
        segment.enrichment_misses = enricher.stats.cgroup_misses - misses_at_segment_start;
        if rotate && !stopping {
            flush(&worker, &mut pending, &mut enricher, &mut by_kind);
            pending_bytes = 0;
            finalize(&worker, &segment, &last_counters, &base_meta);
            misses_at_segment_start = enricher.stats.cgroup_misses;
            segment = SegmentState {
                start_wall_ns: BootClock::now_wall_ns(),
                start_at: now,
                counters_at_start: last_counters.clone(),
                enrichment_misses: 0,
            };
        }

        if let Some(every) = config.stats_interval
            && now.duration_since(last_stats) >= every
        {
            let total: u64 = by_kind.values().sum();
            let lost = last_counters.since(&first_counters).lost;
            let done = worker.shared.done_bytes.load(Ordering::Relaxed);
            eprintln!(
                "capture: {:>7.1}s  events {total}  ({:.0}/s)  lost {lost}  written {} bytes",
                started.elapsed().as_secs_f64(),
                total as f64 / started.elapsed().as_secs_f64().max(1e-9),
                done + open_bytes,
            );
            last_stats = now;
        }

        if stopping {
            break;
        }
    }

    // The collapse windows threads still hold: their counts become rows too.
    let open_windows: Vec<(u32, OpenWindows)> = read_per_thread(sensor.windows.as_ref());
    let net_windows: Vec<(u32, NetWindows)> = read_per_thread(sensor.net_windows.as_ref());
    let dns_windows: Vec<(u32, DnsWindows)> = read_per_thread(sensor.dns_windows.as_ref());
    windows.remaining(open_windows, net_windows, dns_windows, &clock, |d| {
        enricher.enrich(d, &mut pending)
    });
    // The syscall counts threads still alive hold since their last profile row: one row each,
    // stamped now, with the thread as the kernel saw it at the start of that interval.
    let at_end = BootClock::now_boot_ns();
    let live = live_profiles(sensor.profile_table.as_ref(), sensor.profiles.as_ref());
    let live_profile_rows = live.len() as u64;
    for state in live {
        let mut ev = ProfileEvent {
            header: state.header,
            since_ns: state.since_ns,
            counts: state.counts,
        };
        ev.header.kind = EventKind::SyscallProfile as u32;
        ev.header.shape = SHAPE_PRIMARY;
        ev.header.ktime_ns = at_end;
        match decoder.decode(bytemuck::bytes_of(&ev)) {
            Ok(d) => enricher.enrich(d, &mut pending),
            Err(_) => decode_errors += 1,
        }
    }
    let writer_failed = worker.failed();
    if !writer_failed {
        // Give hashes of the last executables a moment; rows never wait longer than this.
        enricher.drain_hashes(Duration::from_secs(2));
        segment.enrichment_misses = enricher.stats.cgroup_misses - misses_at_segment_start;
        flush(&worker, &mut pending, &mut enricher, &mut by_kind);
        finalize(&worker, &segment, &last_counters, &base_meta);
    }
    let error_text = worker.error_text();
    let outcome = worker.finish();
    let loss = last_counters.since(&first_counters);
    let summary = Summary {
        duration: started.elapsed(),
        by_kind,
        decode_errors,
        unmatched_results,
        live_profile_rows,
        costs: costs.unwrap_or_default(),
        collapse: windows.stats,
        lost: loss.lost,
        lost_per_cpu: loss.lost_per_cpu.clone(),
        lost_by_kind: loss.lost_by_kind.clone(),
        counters: loss.counters.clone(),
        programs: sensor.programs.clone(),
        output_dir,
        files: outcome.finished.clone(),
        cpu: {
            let (u, s) = own_cpu_time();
            (
                u.saturating_sub(cpu_at_start.0),
                s.saturating_sub(cpu_at_start.1),
            )
        },
        enrich: enricher.stats,
        ship: None,
        hashes: {
            use std::sync::atomic::Ordering::Relaxed;
            let h = enricher.hash_stats();
            [
                h.hashed.load(Relaxed),
                h.cached.load(Relaxed),
                h.unavailable.load(Relaxed),
                h.dropped.load(Relaxed),
            ]
        },
    };
    if let Some(e) = outcome.error {
        return Err(CaptureError::Write {
            message: error_text.unwrap_or_else(|| e.to_string()),
            partial: outcome.partial,
            summary: Box::new(summary),
        });
    }
    Ok(summary)
}

/// Start-up (BTF, loading, the /proc snapshot) is over: hand its garbage back to the kernel, then
/// keep what recording frees. Batches of many thousand rows are built and freed over and over;
/// by default glibc returns buffers that large to the kernel (`munmap`, heap trimming) and
/// every new batch faults them back in page by page: an eighth of capture's CPU under load.
fn settle_allocator() {
    const KEEP: libc::c_int = 1 << 30;
    // SAFETY: malloc_trim and mallopt only release free memory and adjust tunables.
    unsafe {
        libc::malloc_trim(0);
        libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP);
    }
}

/// CPU time used by this process so far (all threads): (user, system).
fn own_cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage fills the zeroed struct we pass; no other preconditions.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv =
        |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

/// What a per-thread map (collapse windows, overflow profiles) holds when the capture ends
/// (raw values, by thread id).
fn read_per_thread<V: bytemuck::Pod, const N: usize>(
    map: Option<&aya::maps::HashMap<aya::maps::MapData, u32, [u8; N]>>,
) -> Vec<(u32, V)> {
    map.map(|m| {
        m.iter()
            .filter_map(Result::ok)
            .map(|(tid, raw)| (tid, bytemuck::pod_read_unaligned(&raw)))
            .collect()
    })
    .unwrap_or_default()
}

/// The syscall profiles of threads alive when the capture ends, those that counted anything
/// since their last row: table entries with an owner, and the overflow map's entries.
fn live_profiles(table: Option<&ProfileTableMap>, hash: Option<&ProfilesMap>) -> Vec<ProfileState> {
    let from_table = table.into_iter().flat_map(|m| {
        m.iter()
            .filter_map(Result::ok)
            .map(|raw| bytemuck::pod_read_unaligned::<ProfileSlot>(&raw))
            .filter(|slot| slot.owner != 0)
            .map(|slot| slot.state)
    });
    let from_hash = read_per_thread::<ProfileState, _>(hash)
        .into_iter()
        .map(|(_, s)| s);
    from_table
        .chain(from_hash)
        .filter(|s| s.since_ns != 0 && s.counts.iter().any(|c| *c != 0))
        .collect()
}

/// Writes every pending event (with the digests ready by now) as one sorted batch.
fn flush(
    worker: &Worker,
    pending: &mut Vec<Pending>,
    enricher: &mut Enricher,
    by_kind: &mut BTreeMap<EventKind, u64>,
) {
    if pending.is_empty() {
        enricher.flushed();
        return;
    }
    // The rows are settled in place and the whole group goes to the writer in one move, with
    // the order to write them in (a row group is sorted by time): an event is a few hundred
    // bytes, and moving rows (a sort's merges, a copy per hand-over) was the reader's largest
    // cost. Indices are sorted instead, and only when the rows are out of order.
    for p in pending.iter_mut() {
        enricher.finish(p);
        *by_kind.entry(p.event.detail.kind()).or_default() += 1;
    }
    enricher.flushed();
    let capacity = pending.capacity();
    let rows = std::mem::replace(pending, Vec::with_capacity(capacity));
    worker.send(Job::Rows(RowGroup::by_time(rows)));
}

fn segment_metadata(base: &TraceMetadata, seg: &SegmentState, delta: &Delta) -> TraceMetadata {
    TraceMetadata {
        start_time_ns: seg.start_wall_ns,
        end_time_ns: BootClock::now_wall_ns(),
        events_lost: delta.lost,
        events_lost_per_cpu: delta.lost_per_cpu.clone(),
        events_lost_by_kind: delta.lost_by_kind.clone(),
        counters: delta.counters.clone(),
        enrichment_misses: seg.enrichment_misses,
        ..base.clone()
    }
}

fn lost_event(clock: &BootClock, ktime_ns: u64, count: u64) -> Event {
    let me = Process {
        pid: std::process::id(),
        tgid: std::process::id(),
        comm: "needle-capture".into(),
        ..Default::default()
    };
    Event::new(
        clock.wall_ns(ktime_ns),
        ktime_ns,
        me,
        Detail::Lost { count },
    )
}
