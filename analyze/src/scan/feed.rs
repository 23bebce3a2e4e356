//! The map step's per-batch loop: each row of a scan task is read once and handed to the
//! feature accumulator and to the signature engine side by side; their states stay apart and
//! meet only in [`WorkloadState`].

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::workload::{WorkloadState, WorkloadStates};
use crate::columns::{ColumnError, Columns};
use crate::features::{Accumulator, TimeWindow};
use crate::signatures::{Engine, Row, SigColumns, SigPartial};

/// One scan task (a row group of a file): the features of its rows and, when an engine is
/// given, their signature state.
pub struct Task {
    features: Accumulator,
    signatures: Option<Signatures>,
}

/// The signature half of a task: the engine and one state per workload slot of the
/// accumulator (grown as slots appear).
struct Signatures {
    engine: Arc<Engine>,
    states: Vec<SigPartial>,
}

impl Task {
    /// A task over rows recorded on `host`, keeping rows inside `window`, running `engine`
    /// on them when given.
    pub fn new(host: &str, window: TimeWindow, engine: Option<Arc<Engine>>) -> Task {
        Task {
            features: Accumulator::new(host, window),
            signatures: engine.map(|engine| Signatures {
                engine,
                states: Vec::new(),
            }),
        }
    }

    /// Marks the rows as coming from row group `rg` of file `file`, read without context
    /// columns (see [`Accumulator::without_context`]).
    pub fn without_context(mut self, file: u32, rg: u32) -> Task {
        self.features = self.features.without_context(file, rg);
        self
    }

    /// True when signatures run on these rows (they read more columns).
    pub fn has_signatures(&self) -> bool {
        self.signatures.is_some()
    }

    /// Rows inside the time window so far.
    pub fn rows(&self) -> u64 {
        self.features.rows
    }

    /// Adds every row of `batch`, in one pass over its rows.
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), ColumnError> {
        let c = Columns::new(batch)?;
        let mut b = self.features.begin(&c);
        let Some(sig) = &mut self.signatures else {
            for row in 0..c.len {
                self.features.add_row(&mut b, &c, row);
            }
            return Ok(());
        };
        let s = SigColumns::new(batch)?;
        for row in 0..c.len {
            let Some(kept) = self.features.add_row(&mut b, &c, row) else {
                continue;
            };
            if sig.states.len() <= kept.slot {
                sig.states.resize_with(kept.slot + 1, SigPartial::default);
            }
            if let Some(state) = sig.states.get_mut(kept.slot) {
                sig.engine
                    .observe(&Row::new(&c, &s, row), kept.kind, kept.time, state);
            }
        }
        Ok(())
    }

    /// The task's state per workload.
    pub fn finish(self) -> WorkloadStates {
        let mut sigs = self
            .signatures
            .map(|s| s.states)
            .unwrap_or_default()
            .into_iter();
        self.features
            .into_slots()
            .map(|(key, features)| {
                let signatures = sigs.next().unwrap_or_default();
                (
                    key,
                    WorkloadState {
                        features,
                        signatures,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::scan::{ScanOptions, scan, split};

    fn demo() -> Vec<PathBuf> {
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/demo/traces")]
    }

    #[test]
    fn signatures_ride_beside_the_features_without_touching_them() {
        let engine = Arc::new(Engine::load(&[], &[]).unwrap());
        let with = scan(
            &demo(),
            &ScanOptions {
                signatures: Some(engine),
                ..Default::default()
            },
        )
        .unwrap();
        let without = scan(&demo(), &ScanOptions::default()).unwrap();
        let (features_with, sigs_with) = split(with.partials);
        let (features_without, sigs_without) = split(without.partials);
        assert_eq!(features_with, features_without);
        assert!(sigs_with.values().any(|s| !s.hits.is_empty()));
        assert!(sigs_without.values().all(|s| *s == SigPartial::default()));
        assert_eq!(
            sigs_with.keys().collect::<std::collections::BTreeSet<_>>(),
            features_with.keys().collect()
        );
    }
}
