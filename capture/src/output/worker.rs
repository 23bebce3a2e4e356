//! The writer thread: Parquet encoding and zstd run beside the ring-buffer reader, so neither
//! a big flush nor a slow disk stalls decoding (the bounded channel applies back-pressure
//! instead).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use needle_common::schema::TraceMetadata;

use crate::enrich::Pending;

use super::segment::{FinishedSegment, SegmentError, SegmentWriter};

/// One row group's rows as the reader collected them (settled, in arrival order) and the order
/// they are written in (by time). Rows are a few hundred bytes each: the reader sorts indices,
/// never moves a row, and the vector goes to the writer whole.
pub struct RowGroup {
    /// The rows, in arrival order.
    pub rows: Vec<Pending>,
    /// Indices into `rows`, in write order; each index once.
    pub order: Vec<usize>,
}

impl RowGroup {
    /// `rows` to be written by time (the kernel's boot clock); rows of the same time keep
    /// their arrival order, as a stable sort of the rows themselves would.
    pub fn by_time(rows: Vec<Pending>) -> RowGroup {
        let order = time_order(&rows);
        RowGroup { rows, order }
    }
}

/// Indices of `rows` sorted by `ktime_ns`, ties in index order. Records arrive nearly in
/// order (per-CPU batches of one ring buffer): the common case is one check, no sort.
fn time_order(rows: &[Pending]) -> Vec<usize> {
    let sorted = rows
        .windows(2)
        .all(|w| w[0].event.ktime_ns <= w[1].event.ktime_ns);
    if sorted {
        return (0..rows.len()).collect();
    }
    // (time, index) pairs are distinct, so an unstable sort gives the stable order.
    let mut keys: Vec<(u64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, p)| (p.event.ktime_ns, i))
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|(_, i)| i).collect()
}

/// A request to the writer thread.
pub enum Job {
    /// One row group.
    Rows(RowGroup),
    /// Finalize the open segment with this metadata.
    Finalize(Box<TraceMetadata>),
}

/// State the writer shares with the reader.
#[derive(Default)]
pub struct Shared {
    /// Bytes in the open segment.
    pub open_bytes: AtomicU64,
    /// Bytes in finalized segments.
    pub done_bytes: AtomicU64,
    /// Set when the writer hit an error and stopped.
    pub failed: AtomicBool,
}

/// What the writer thread leaves behind.
pub struct WriterOutcome {
    /// Segments completed.
    pub finished: Vec<FinishedSegment>,
    /// The first error, if writing failed.
    pub error: Option<SegmentError>,
    /// Name of the segment left partial by the error.
    pub partial: Option<String>,
}

/// Writes `group`'s rows in its order: one row group (more if it is longer than a row group).
fn write_row_group(writer: &mut SegmentWriter, group: &RowGroup) -> Result<(), SegmentError> {
    writer.write(
        group
            .order
            .iter()
            .filter_map(|&i| group.rows.get(i))
            .map(|p| &p.event),
    )
}

/// Handle to the running writer thread.
pub struct Worker {
    jobs: Option<Sender<Job>>,
    handle: Option<JoinHandle<WriterOutcome>>,
    /// Progress shared with the reader.
    pub shared: Arc<Shared>,
    error_text: Arc<Mutex<Option<String>>>,
}

impl Worker {
    /// Starts the thread; at most `queue` jobs wait at once.
    pub fn spawn(mut writer: SegmentWriter, queue: usize) -> Worker {
        let (tx, rx) = bounded::<Job>(queue);
        let shared = Arc::new(Shared::default());
        let error_text = Arc::new(Mutex::new(None));
        let (sh, et) = (shared.clone(), error_text.clone());
        let handle = std::thread::Builder::new()
            .name("needle-writer".into())
            .spawn(move || {
                let mut error = None;
                for job in rx {
                    let result = match job {
                        Job::Rows(group) => write_row_group(&mut writer, &group),
                        Job::Finalize(meta) => writer.finalize(*meta).map(|seg| {
                            sh.done_bytes.fetch_add(seg.bytes, Ordering::Relaxed);
                        }),
                    };
                    sh.open_bytes.store(writer.open_bytes(), Ordering::Relaxed);
                    if let Err(e) = result {
                        if let Ok(mut t) = et.lock() {
                            *t = Some(e.to_string());
                        }
                        sh.failed.store(true, Ordering::SeqCst);
                        error = Some(e);
                        break;
                    }
                }
                WriterOutcome {
                    finished: writer.finished().to_vec(),
                    partial: error.as_ref().and(writer.open_partial_name()),
                    error,
                }
            })
            .expect("spawn writer thread");
        Worker {
            jobs: Some(tx),
            handle: Some(handle),
            shared,
            error_text,
        }
    }

    /// Queues a job; false when the writer has stopped (its error is in the outcome).
    pub fn send(&self, job: Job) -> bool {
        match &self.jobs {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    /// True when writing failed.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// The writer's error text, if it failed.
    pub fn error_text(&self) -> Option<String> {
        self.error_text.lock().ok().and_then(|t| t.clone())
    }

    /// Waits for every queued job and returns the outcome.
    pub fn finish(mut self) -> WriterOutcome {
        drop(self.jobs.take());
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            _ => WriterOutcome {
                finished: Vec::new(),
                error: None,
                partial: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::compute::concat_batches;
    use arrow::record_batch::RecordBatch;
    use needle_common::schema::{
        Detail, Event, Net, Process, TraceBatchBuilder, TraceMetadata, WriteOptions,
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::super::dir::OutputDir;
    use super::*;

    /// A small deterministic generator (xorshift), so the property runs without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Rows of a few kinds and shared strings, in a nearly sorted or shuffled time order
    /// with ties (several rows of one time: their arrival order must be kept).
    fn rows(rng: &mut Rng, n: usize, shuffled: bool) -> Vec<Pending> {
        let comms: [Arc<str>; 3] = ["bash".into(), "curl".into(), "x".into()];
        (0..n)
            .map(|i| {
                let r = rng.next();
                let ktime = if shuffled {
                    1_000 + r % (n as u64 / 2 + 1)
                } else {
                    1_000 + i as u64 / 3 + u64::from(r.is_multiple_of(7))
                };
                let detail = match r % 4 {
                    0 => Detail::Syscall {
                        nr: (r >> 8) as u32 % 400,
                        ret: Some(i as i64),
                    },
                    1 => Detail::SendTo(Box::new(Net {
                        family: "inet".into(),
                        protocol: "udp".into(),
                        dst_addr: Some(format!("127.0.0.{}", r % 5)),
                        dst_port: Some(53),
                        ..Default::default()
                    })),
                    2 => Detail::Exit {
                        code: Some(i as i32),
                        signal: None,
                    },
                    _ => Detail::Fork,
                };
                let process = Process {
                    pid: i as u32,
                    tgid: (r % 9) as u32,
                    comm: comms[(r % 3) as usize].clone(),
                    ..Default::default()
                };
                let mut event = Event::new(ktime as i64 * 10, ktime, process, detail);
                event.workload = Some("host".into());
                Pending::done(event)
            })
            .collect()
    }

    /// The straightforward path: the rows themselves stably sorted by time, pushed one by one.
    fn straightforward(rows: &[Pending]) -> RecordBatch {
        let mut events: Vec<&Event> = rows.iter().map(|p| &p.event).collect();
        events.sort_by_key(|e| e.ktime_ns);
        let mut b = TraceBatchBuilder::new("node-1");
        for e in events {
            b.push(e);
        }
        b.finish()
    }

    /// `group` written as capture writes it (small row groups, to cross their boundaries),
    /// read back.
    fn written(group: &RowGroup) -> (RecordBatch, usize) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = OutputDir::open_or_create(tmp.path()).expect("output dir");
        let opts = WriteOptions {
            row_group_rows: 128,
            ..Default::default()
        };
        let mut w = SegmentWriter::new(dir, "node-1", 0, opts);
        write_row_group(&mut w, group).expect("write");
        let seg = w.finalize(TraceMetadata::default()).expect("finalize");
        let file = std::fs::File::open(tmp.path().join(&seg.name)).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
        let groups = reader.metadata().num_row_groups();
        let schema = reader.schema().clone();
        let batches: Vec<RecordBatch> = reader
            .build()
            .expect("reader")
            .map(|b| b.expect("batch"))
            .collect();
        (
            concat_batches(&schema, &batches).expect("same schema"),
            groups,
        )
    }

    #[test]
    fn indexed_row_groups_write_the_same_rows_as_sorted_rows() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in [0, 1, 7, 100, 1000, 999] {
            for shuffled in [false, true] {
                let rows = rows(&mut rng, n, shuffled);
                let want = straightforward(&rows);
                let group = RowGroup::by_time(rows);
                let mut sorted_order = group.order.clone();
                sorted_order.sort_unstable();
                assert_eq!(sorted_order, (0..n).collect::<Vec<_>>(), "a permutation");
                let (got, groups) = written(&group);
                assert_eq!(groups, n.div_ceil(128), "{n} rows");
                assert_eq!(got.num_rows(), n);
                for (i, c) in want.schema().fields().iter().enumerate() {
                    assert_eq!(
                        got.column(i),
                        want.column(i),
                        "{n} rows, shuffled {shuffled}: {}",
                        c.name()
                    );
                }
            }
        }
    }

    #[test]
    fn rows_in_order_are_not_sorted_again() {
        let mut rng = Rng(7);
        let mut rows = rows(&mut rng, 50, false);
        for (i, p) in rows.iter_mut().enumerate() {
            p.event.ktime_ns = 5_000 + i as u64 / 4;
        }
        let group = RowGroup::by_time(rows);
        assert_eq!(group.order, (0..50).collect::<Vec<_>>());
    }
}
