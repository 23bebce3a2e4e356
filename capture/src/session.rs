//! One capture run: load the sensor, drain the ring buffer, batch, rotate, finalize.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use needle_common::abi::{
    DnsWindows, EventKind, NetWindows, OpenWindows, ProfileEvent, ProfileSlot, ProfileState,
    SHAPE_PRIMARY, SyscallEvent,
};
use needle_common::schema::{Detail, Event, Process, SCHEMA_VERSION, TraceMetadata, WriteOptions};
use rustix::event::{PollFd, PollFlags, poll};
use std::os::fd::AsFd;

use crate::collapse::Windows;
use crate::counters::{Delta, Snapshot};
use crate::decode::{Decoder, Role};
use crate::enrich::batch::{Batch, Call, Entry};
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

/// A pending row's memory beyond its kernel record's bytes: the row itself and the allocator's
/// share of its boxed detail and strings (for `Config::batch_bytes`).
const ROW_BYTES: usize = std::mem::size_of::<Pending>() + 64;
/// A call row's memory: the row and its place in the write order.
const CALL_BYTES: usize = std::mem::size_of::<Call>() + std::mem::size_of::<Entry>();

struct SegmentState {
    start_wall_ns: i64,
    start_at: Instant,
    counters_at_start: Snapshot,
    enrichment_misses: u64,
}

/// Runs a capture until `config.duration` passes or `stop` is set; returns the summary.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<Summary, CaptureError> {
    let mut session = Session::start(config)?;
    loop {
        let stopping = stop.load(Ordering::SeqCst) || session.is_over();
        session.drain(stopping);
        let now = Instant::now();
        session.read_counters(now, stopping);
        if !stopping {
            session.rotate_if_due(now);
        }
        session.report_progress(now);
        if stopping {
            return session.finish();
        }
    }
}

/// One capture from the programs' load to the last segment: [`Session::start`] loads and
/// attaches the sensor and starts the writer thread; the run loop drains the ring buffer into
/// row groups ([`Session::drain`]), turns lost-event counts into rows, rotates segments; and
/// [`Session::finish`] detaches, collects what the kernel still holds, finalizes and sums up.
pub struct Session<'c> {
    config: &'c Config,
    sensor: loader::Sensor,
    clock: BootClock,
    started: Instant,
    deadline: Option<Instant>,
    worker: Worker,
    base_meta: TraceMetadata,
    output_dir: PathBuf,
    _ready: Option<crate::ready::ReadyFile>,

    decoder: Decoder,
    windows: Windows,
    enricher: Enricher,
    /// The programs' run costs, read once nothing records any more.
    costs: Option<Vec<loader::ProgramCost>>,
    /// Rows of the row group being filled, and their estimated memory.
    pending: Batch,
    pending_bytes: usize,

    by_kind: BTreeMap<EventKind, u64>,
    decode_errors: u64,
    /// Connect results whose row was already written (its `ret` stays empty).
    unmatched_results: u64,
    first_counters: Snapshot,
    last_counters: Snapshot,
    last_counter_read: Instant,
    last_stats: Instant,
    segment: SegmentState,
    misses_at_segment_start: u64,
    /// Rows made at the end from live threads' syscall counts.
    live_profile_rows: u64,
    cpu_at_start: (Duration, Duration),
}

impl<'c> Session<'c> {
    /// Checks privileges, resolves the kernel's offsets, opens the output directory, loads
    /// and attaches the programs, and starts the writer thread: recording from here on.
    pub fn start(config: &'c Config) -> Result<Session<'c>, CaptureError> {
        if let Some(why) = crate::privileges::missing() {
            return Err(CaptureError::NotPrivileged(why));
        }
        let host = HostInfo::read();
        let tracefs = TraceFs::open_or_mount()?;
        // The parsed kernel BTF is large and only needed for the offsets: dropped right here.
        let offsets = resolve_offsets(&KernelBtf::running()?, &tracefs)?;
        let dir = OutputDir::open_or_create(&config.output)?;
        note_stale_partials(&dir, config.layout);

        let ring_bytes = config.ring_bytes_per_cpu.saturating_mul(host.cpus as u32);
        let ring_bytes = ring_bytes
            .max(4096)
            .checked_next_power_of_two()
            .unwrap_or(1 << 31);
        let cgroup2_root = crate::enrich::container::ContainerResolver::detect_cgroup2_root();
        let sensor = loader::load(
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
        // The counters' baseline is taken as soon as the programs run: what they filter or
        // lose before the first event is read still belongs to this recording.
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
        let ready = match &config.ready_file {
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
        let writer = SegmentWriter::new(dir, &host.hostname, run_start_wall, config.write)
            .with_layout(config.layout);
        let output_dir = writer.dir().path().to_path_buf();
        // One row group may wait while the writer encodes the one before: the reader hands
        // over a full group without waiting, and at most three are alive (filling, waiting,
        // encoding). (Handing over only when the writer is idle keeps two alive, but stalls
        // the reader long enough to lose events at 700 K events/s.)
        let worker = Worker::spawn(writer, 1);
        let base_meta = TraceMetadata {
            schema_version: SCHEMA_VERSION,
            host: host.hostname.clone(),
            kernel: host.kernel.clone(),
            writer: format!("capture {}", env!("CARGO_PKG_VERSION")),
            programs: sensor.programs.clone(),
            settings: config.probe.describe(),
            ..Default::default()
        };
        // The /proc snapshot is taken after the programs are attached: a process that starts
        // in between is in the ring buffer and the snapshot both, never in neither.
        let enricher = Enricher::new();
        settle_allocator();
        Ok(Session {
            config,
            sensor,
            clock,
            started,
            deadline: config.duration.map(|d| started + d),
            worker,
            base_meta,
            output_dir,
            _ready: ready,
            decoder: Decoder::new(clock),
            windows: Windows::default(),
            enricher,
            costs: None,
            // Sized once: growing by doubling would briefly hold one and a half row groups.
            pending: Batch::with_capacity(config.write.row_group_rows.max(1) + 1024),
            pending_bytes: 0,
            by_kind: BTreeMap::new(),
            decode_errors: 0,
            unmatched_results: 0,
            last_counters: first_counters.clone(),
            segment: SegmentState {
                start_wall_ns: run_start_wall,
                start_at: started,
                counters_at_start: first_counters.clone(),
                enrichment_misses: 0,
            },
            first_counters,
            last_counter_read: Instant::now(),
            last_stats: Instant::now(),
            misses_at_segment_start: 0,
            live_profile_rows: 0,
            cpu_at_start: own_cpu_time(),
        })
    }

    /// The duration has passed, or the writer failed.
    pub fn is_over(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d) || self.worker.failed()
    }

    /// Waits for the ring buffer (not when `stopping`), then reads everything in it into the
    /// row group, handing the group to the writer whenever it is full. The first time
    /// `stopping` is set, the programs are detached before the last read: nothing in the
    /// buffer is left behind.
    pub fn drain(&mut self, stopping: bool) {
        {
            let fd = self.sensor.events.as_fd();
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let timeout = if stopping {
                Duration::ZERO
            } else {
                POLL_TIMEOUT
            };
            let ts = rustix::time::Timespec::try_from(timeout).ok();
            let _ = poll(&mut fds, ts.as_ref());
        }
        if stopping && self.costs.is_none() {
            // Nothing records after this point: what is in the ring buffer and in the
            // collapse windows is final.
            self.costs = Some(self.sensor.costs());
            self.sensor.detach();
        }
        let row_group_rows = self.config.write.row_group_rows.max(1);
        loop {
            let Some(item) = self.sensor.events.next() else {
                break;
            };
            if let Some(rec) = syscall_record(&item) {
                let decoder = &mut self.decoder;
                let time_ns = self.clock.wall_ns(rec.header.ktime_ns);
                if self
                    .enricher
                    .syscall(&rec, time_ns, &mut self.pending, || decoder.decode(&item))
                    .is_err()
                {
                    self.decode_errors += 1;
                }
                self.pending_bytes += CALL_BYTES;
            } else {
                let (pending, enricher) = (&mut self.pending.rows, &mut self.enricher);
                match self.decoder.decode(&item) {
                    Ok(d) => self.windows.route(d, &self.clock, |decoded| {
                        if decoded.role == Role::Result {
                            if !crate::enrich::attach_result(decoded, pending) {
                                self.unmatched_results += 1;
                            }
                        } else {
                            enricher.enrich(decoded, pending)
                        }
                    }),
                    Err(_) => self.decode_errors += 1,
                }
                // A row's memory, estimated from its kernel record: the decoded strings and
                // payloads follow the record's size (context is shared per process and
                // container).
                self.pending_bytes += ROW_BYTES + item.len();
            }
            drop(item);
            if self.pending.len() >= row_group_rows || self.pending_bytes >= self.config.batch_bytes
            {
                self.flush();
            }
        }
        let clock = self.clock;
        self.enricher.tick(&mut self.pending.rows, || {
            let k = BootClock::now_boot_ns();
            (clock.wall_ns(k), k)
        });
    }

    /// Reads the kernel's counters once a period (and when `stopping`); events lost since the
    /// last read become a `lost` row, so the loss is visible in the data, where it happened.
    pub fn read_counters(&mut self, now: Instant, stopping: bool) {
        if now.duration_since(self.last_counter_read) < COUNTER_PERIOD && !stopping {
            return;
        }
        let snap = Snapshot::read(&self.sensor.counters);
        let delta = snap.since(&self.last_counters);
        if delta.lost > 0 {
            let ktime = BootClock::now_boot_ns();
            self.pending
                .rows
                .push(Pending::done(lost_event(&self.clock, ktime, delta.lost)));
        }
        self.last_counters = snap;
        self.last_counter_read = now;
    }

    /// Finalizes the segment once it is `--rotate-interval` old or `--rotate-size` big, and
    /// starts the next.
    pub fn rotate_if_due(&mut self, now: Instant) {
        let open_bytes = self.worker.shared.open_bytes.load(Ordering::Relaxed);
        if now.duration_since(self.segment.start_at) < self.config.rotate_interval
            && open_bytes < self.config.rotate_size
        {
            return;
        }
        self.flush();
        self.finalize_segment();
        self.misses_at_segment_start = self.enricher.stats.cgroup_misses;
        self.segment = SegmentState {
            start_wall_ns: BootClock::now_wall_ns(),
            start_at: now,
            counters_at_start: self.last_counters.clone(),
            enrichment_misses: 0,
        };
    }

    /// The `--stats-interval` progress line, when one is due.
    pub fn report_progress(&mut self, now: Instant) {
        let Some(every) = self.config.stats_interval else {
            return;
        };
        if now.duration_since(self.last_stats) < every {
            return;
        }
        let total: u64 = self.by_kind.values().sum();
        let lost = self.last_counters.since(&self.first_counters).lost;
        let written = self.worker.shared.done_bytes.load(Ordering::Relaxed)
            + self.worker.shared.open_bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!(
            "capture: {secs:>7.1}s  events {total}  ({:.0}/s)  lost {lost}  written {written} bytes",
            total as f64 / secs.max(1e-9),
        );
        self.last_stats = now;
    }

    /// After the last [`Session::drain`] (with `stopping`): turns what the kernel still holds
    /// (open collapse windows, live threads' syscall counts) into rows, writes and finalizes
    /// the last segment, stops the writer, and sums the run up.
    pub fn finish(mut self) -> Result<Summary, CaptureError> {
        self.collect_what_the_kernel_holds();
        let writer_failed = self.worker.failed();
        if !writer_failed {
            // Give hashes of the last executables a moment; rows never wait longer than this.
            self.enricher.drain_hashes(Duration::from_secs(2));
            self.flush();
            self.finalize_segment();
        }
        let error_text = self.worker.error_text();
        let outcome = self.worker.finish();
        let loss = self.last_counters.since(&self.first_counters);
        let summary = Summary {
            duration: self.started.elapsed(),
            by_kind: self.by_kind,
            decode_errors: self.decode_errors,
            unmatched_results: self.unmatched_results,
            live_profile_rows: self.live_profile_rows,
            costs: self.costs.unwrap_or_default(),
            collapse: self.windows.stats,
            lost: loss.lost,
            lost_per_cpu: loss.lost_per_cpu.clone(),
            lost_by_kind: loss.lost_by_kind.clone(),
            counters: loss.counters.clone(),
            programs: self.sensor.programs.clone(),
            output_dir: self.output_dir,
            files: outcome.finished.clone(),
            cpu: {
                let (u, s) = own_cpu_time();
                (
                    u.saturating_sub(self.cpu_at_start.0),
                    s.saturating_sub(self.cpu_at_start.1),
                )
            },
            enrich: self.enricher.stats,
            ship: None,
            hashes: {
                use std::sync::atomic::Ordering::Relaxed;
                let h = self.enricher.hash_stats();
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

    /// The collapse windows threads still hold become rows (their counts), and so do the
    /// syscall counts of threads still alive since their last profile row: one row each,
    /// stamped now, with the thread as the kernel saw it at the start of that interval.
    fn collect_what_the_kernel_holds(&mut self) {
        let open_windows: Vec<(u32, OpenWindows)> = read_per_thread(self.sensor.windows.as_ref());
        let net_windows: Vec<(u32, NetWindows)> = read_per_thread(self.sensor.net_windows.as_ref());
        let dns_windows: Vec<(u32, DnsWindows)> = read_per_thread(self.sensor.dns_windows.as_ref());
        let (pending, enricher) = (&mut self.pending.rows, &mut self.enricher);
        self.windows
            .remaining(open_windows, net_windows, dns_windows, &self.clock, |d| {
                enricher.enrich(d, pending)
            });
        let at_end = BootClock::now_boot_ns();
        let live = live_profiles(
            self.sensor.profile_table.as_ref(),
            self.sensor.profiles.as_ref(),
        );
        self.live_profile_rows = live.len() as u64;
        for state in live {
            let mut ev = ProfileEvent {
                header: state.header,
                since_ns: state.since_ns,
                counts: state.counts,
            };
            ev.header.kind = EventKind::SyscallProfile as u32;
            ev.header.shape = SHAPE_PRIMARY;
            ev.header.ktime_ns = at_end;
            match self.decoder.decode(bytemuck::bytes_of(&ev)) {
                Ok(d) => self.enricher.enrich(d, &mut self.pending.rows),
                Err(_) => self.decode_errors += 1,
            }
        }
    }

    /// Hands the row group to the writer.
    fn flush(&mut self) {
        flush(
            &self.worker,
            &mut self.pending,
            &mut self.enricher,
            &mut self.by_kind,
        );
        self.pending_bytes = 0;
    }

    /// Asks the writer to finalize the open segment with this segment's metadata.
    fn finalize_segment(&mut self) {
        self.segment.enrichment_misses =
            self.enricher.stats.cgroup_misses - self.misses_at_segment_start;
        let delta = self.last_counters.since(&self.segment.counters_at_start);
        self.worker.send(Job::Finalize(Box::new(segment_metadata(
            &self.base_meta,
            &self.segment,
            &delta,
        ))));
    }
}

/// Says which incomplete segments an earlier run left (crash or kill -9); hive partitions are
/// two levels down (host=…/date=…/).
fn note_stale_partials(dir: &OutputDir, layout: crate::output::Layout) {
    let stale = match layout {
        crate::output::Layout::Flat => dir.files_ending_with(PARTIAL_SUFFIX),
        crate::output::Layout::Hive => dir.files_ending_with_below(PARTIAL_SUFFIX, 2),
    };
    for name in &stale {
        eprintln!(
            "capture: note: {} is an incomplete segment from an earlier run that did not finish (crash or kill -9); it is not a readable trace",
            dir.path().join(name).display()
        );
    }
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
    pending: &mut Batch,
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
    for p in pending.rows.iter_mut() {
        enricher.finish(p, 1);
        *by_kind.entry(p.event.detail.kind()).or_default() += 1;
    }
    for shared in pending.contexts.iter_mut() {
        enricher.finish(&mut shared.row, shared.uses);
    }
    if !pending.calls.is_empty() {
        *by_kind.entry(EventKind::Syscall).or_default() += pending.calls.len() as u64;
    }
    enricher.flushed();
    worker.send(Job::Rows(RowGroup::by_time(pending.take())));
}

/// A `syscall` record, read straight from the ring buffer (the one kind common enough to skip
/// decoding into an event).
fn syscall_record(item: &[u8]) -> Option<SyscallEvent> {
    // The kind is the header's first field: only a `syscall` record is copied out here (every
    // other record's header is read by the decoder).
    const _: () = assert!(std::mem::offset_of!(needle_common::abi::EventHeader, kind) == 0);
    let kind = u32::from_ne_bytes(item.get(..4)?.try_into().ok()?);
    if kind != EventKind::Syscall as u32 {
        return None;
    }
    let rec: SyscallEvent =
        bytemuck::try_pod_read_unaligned(item.get(..size_of::<SyscallEvent>())?).ok()?;
    (rec.header.shape == SHAPE_PRIMARY).then_some(rec)
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
