//! Trace files on disk: a guarded output directory and rotating, crash-safe segments.

mod dir;
mod segment;
mod worker;

pub use dir::{OutputDir, OutputError};
pub use segment::{FinishedSegment, PARTIAL_SUFFIX, SegmentError, SegmentWriter, segment_name};
pub use worker::{Job, Worker, WriterOutcome};
