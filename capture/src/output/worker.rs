//! The writer thread: sorting, Arrow building, Parquet encoding and zstd run beside the
//! ring-buffer reader, so neither a big flush nor a slow disk stalls decoding (the bounded
//! channel applies back-pressure instead).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use needle_common::schema::{TraceBatchBuilder, TraceMetadata};

use crate::enrich::Pending;

use super::segment::{FinishedSegment, SegmentError, SegmentWriter};

/// A request to the writer thread.
pub enum Job {
    /// One row group's rows, in the order given (the reader sorts them by time and settles
    /// them before it hands them over).
    Rows(Vec<Pending>),
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

/// Writes `rows` as one row group, built and encoded `batch_rows` at a time.
fn write_row_group(
    writer: &mut SegmentWriter,
    builder: &mut TraceBatchBuilder,
    rows: &[Pending],
    batch_rows: usize,
) -> Result<(), SegmentError> {
    if rows.is_empty() {
        return Ok(());
    }
    for chunk in rows.chunks(batch_rows.max(1)) {
        for p in chunk {
            builder.push(&p.event);
        }
        writer.write(&builder.finish())?;
    }
    writer.end_row_group()
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
    /// Starts the thread; at most `queue` jobs wait at once. A row group is built and encoded
    /// in Arrow batches of `batch_rows` rows.
    pub fn spawn(mut writer: SegmentWriter, host: &str, queue: usize, batch_rows: usize) -> Worker {
        let (tx, rx) = bounded::<Job>(queue);
        let shared = Arc::new(Shared::default());
        let error_text = Arc::new(Mutex::new(None));
        let (sh, et) = (shared.clone(), error_text.clone());
        let mut builder = TraceBatchBuilder::new(host);
        let handle = std::thread::Builder::new()
            .name("needle-writer".into())
            .spawn(move || {
                let mut error = None;
                for job in rx {
                    let result = match job {
                        Job::Rows(rows) => {
                            write_row_group(&mut writer, &mut builder, &rows, batch_rows)
                        }
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
