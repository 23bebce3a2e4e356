//! The writer thread: Parquet encoding and zstd run beside the ring-buffer reader, so neither
//! a big flush nor a slow disk stalls decoding (the bounded channel applies back-pressure
//! instead).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use needle_common::schema::TraceMetadata;

use crate::enrich::batch::{Batch, Entry};

use super::segment::{FinishedSegment, SegmentError, SegmentWriter};

/// One row group's rows as the reader collected them (settled, in arrival order) and the order
/// they are written in (by time). Rows are a few hundred bytes each: the reader sorts entries,
/// never moves a row, and the batch goes to the writer whole.
pub struct RowGroup {
    /// The rows.
    pub batch: Batch,
    /// Every row of `batch` once, in write order.
    pub order: Vec<Entry>,
}

impl RowGroup {
    /// `batch` to be written by time (the kernel's boot clock); rows of the same time keep
    /// their arrival order, as a stable sort of the rows themselves would.
    pub fn by_time(batch: Batch) -> RowGroup {
        let order = time_order(&batch);
        RowGroup { batch, order }
    }
}

/// The entries of `batch` sorted by time, ties in arrival order. Records arrive nearly in
/// order (per-CPU batches of one ring buffer): the common case is one check, no sort.
fn time_order(batch: &Batch) -> Vec<Entry> {
    let arrival: Vec<Entry> = batch.arrival().collect();
    let sorted = arrival
        .windows(2)
        .all(|w| batch.ktime(w[0]) <= batch.ktime(w[1]));
    if sorted {
        return arrival;
    }
    // The arrival order is a few sorted runs (one per CPU's share of the ring buffer): the
    // stable sort merges runs it finds. (time, arrival) pairs are distinct, so any sort of them
    // gives the stable order.
    let mut keys: Vec<(u64, u32)> = arrival
        .iter()
        .enumerate()
        .map(|(i, &e)| (batch.ktime(e), i as u32))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, i)| arrival[i as usize]).collect()
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
    writer.write(group.order.iter().filter_map(|&e| group.batch.row(e)))
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
    use needle_common::abi::EventHeader;
    use needle_common::schema::{
        Detail, Event, Net, Process, Row, TraceBatchBuilder, TraceMetadata, WriteOptions,
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::super::dir::OutputDir;
    use super::*;
    use crate::enrich::Pending;
    use crate::enrich::batch::{CALL, Thread};

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
    /// with ties (several rows of one time: their arrival order must be kept). `syscall` rows
    /// are call rows, as capture keeps them: the first of a process is the context of the rest.
    fn batch(rng: &mut Rng, n: usize, shuffled: bool) -> Batch {
        let comms: [Arc<str>; 3] = ["bash".into(), "curl".into(), "x".into()];
        let mut b = Batch::default();
        for i in 0..n {
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
            let tid = process.tgid;
            let mut event = Event::new(ktime as i64 * 10, ktime, process, detail);
            event.workload = Some("host".into());
            let Detail::Syscall { nr, ret: Some(ret) } = event.detail else {
                b.rows.push(Pending::done(event));
                continue;
            };
            let mut h: EventHeader = bytemuck::Zeroable::zeroed();
            h.pid = tid;
            let thread = Thread::of(&h);
            match b.context_of(tid, &thread) {
                Some((c, shared)) => {
                    shared.uses += 1;
                    b.push_call(event.time_ns, ktime, nr, ret, c);
                }
                None => b.push_context(tid, thread, Pending::done(event), 0, (nr, ret)),
            }
        }
        b
    }

    /// The straightforward path: every row as a whole event (a call row is its context's
    /// event with its own time, number and result), stably sorted by time, pushed one by one.
    fn straightforward(b: &Batch) -> RecordBatch {
        let mut events: Vec<Event> = b
            .arrival()
            .map(|e| b.row(e).expect("an entry of the batch").to_event())
            .collect();
        events.sort_by_key(|e| e.ktime_ns);
        let mut rb = TraceBatchBuilder::new("node-1");
        for e in &events {
            rb.push(e);
        }
        rb.finish()
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
                let b = batch(&mut rng, n, shuffled);
                let want = straightforward(&b);
                let mut arrival: Vec<Entry> = b.arrival().collect();
                let group = RowGroup::by_time(b);
                let mut sorted_order = group.order.clone();
                sorted_order.sort_unstable();
                arrival.sort_unstable();
                assert_eq!(sorted_order, arrival, "a permutation");
                assert_eq!(arrival.len(), n, "every row once");
                if n >= 100 {
                    assert!(
                        group.batch.calls.len() > group.batch.contexts.len(),
                        "call rows share contexts"
                    );
                }
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
        let mut b = batch(&mut rng, 50, false);
        let arrival: Vec<Entry> = b.arrival().collect();
        for (i, &e) in arrival.iter().enumerate() {
            let ktime = 5_000 + i as u64 / 4;
            match b.row(e) {
                Some(Row::Event(_)) => b.rows[e as usize].event.ktime_ns = ktime,
                _ => b.calls[(e & !CALL) as usize].ktime_ns = ktime,
            }
        }
        let group = RowGroup::by_time(b);
        assert_eq!(group.order, arrival);
    }
}
