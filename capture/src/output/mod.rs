//! Trace files on disk: a guarded output directory and rotating, crash-safe segments.

mod dir;
mod segment;
mod worker;

pub use dir::{OutputDir, OutputError};
pub use segment::{
    FinishedSegment, Layout, PARTIAL_SUFFIX, SegmentError, SegmentWriter, hive_dirs, segment_name,
};
pub use worker::{Job, RowGroup, Worker, WriterOutcome};
