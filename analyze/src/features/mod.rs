//! Per-workload behavioural features as mergeable partial aggregates.
//!
//! Map: an [`Accumulator`] turns the rows of one scan task (a file's row group) into
//! [`Partials`]; the scan hands it each row ([`Accumulator::add_row`]) and the signature engine
//! the same row beside it, so this module knows nothing of signatures. Reduce:
//! [`merge_partials`] folds them per workload, in any order. Finish: [`finalize`] turns the merged aggregates into a [`FeatureTable`]. Features are listed and
//! documented once, in [`catalog`].

mod accumulate;
pub mod behaviour;
pub mod catalog;
pub use crate::classify;
pub(crate) use crate::columns;
pub(crate) use crate::fasthash;
mod finalize;
mod partial;

pub use accumulate::{Accumulator, BatchCaches, Kept};
pub use columns::{CONTEXT as CONTEXT_COLUMNS, NEEDED as NEEDED_COLUMNS, PROBE as PROBE_COLUMNS};
pub use finalize::{Change, FeatureColumn, FeatureTable, WorkloadFeatures, finalize};
pub use partial::{Context, Partials, WorkloadPartial, merge_partials};

pub use crate::columns::ColumnError as FeatureError;

/// The caps the aggregates are kept under (recorded in partial files).
pub mod partial_caps {
    pub use super::partial::{MAX_EXECS_PER_PROC, MAX_SYSCALL_NR, SET_CAP};
}

/// A half-open time window `[since, until)`, ns since the epoch; `None` is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// Earliest time kept.
    pub since: Option<i64>,
    /// First time no longer kept.
    pub until: Option<i64>,
}

impl TimeWindow {
    /// True when `t` is inside the window.
    #[inline]
    pub fn contains(&self, t: i64) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// True when some time in `[min, max]` may be inside the window.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.since.is_none_or(|s| max >= s) && self.until.is_none_or(|u| min < u)
    }
}

#[cfg(test)]
pub(crate) mod tests;
