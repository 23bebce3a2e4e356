//! What the map step keeps of one workload: its feature aggregates and its signature state,
//! side by side. Each half is merged and finished by its own module ([`crate::features`],
//! [`crate::signatures`]); this type only carries them together through the scan, the reduce
//! and partial files.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::features::{Partials, WorkloadPartial};
use crate::signatures::SigPartial;

/// One workload's mergeable state over some rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadState {
    /// The feature aggregates.
    pub features: WorkloadPartial,
    /// Signature hits and the process tree (empty when signatures are off).
    pub signatures: SigPartial,
}

impl WorkloadState {
    /// Folds `other` into `self`, each half by its own merge.
    pub fn merge(&mut self, other: WorkloadState) {
        self.features.merge(other.features);
        self.signatures.merge(other.signatures);
    }
}

/// Workload states by workload key.
pub type WorkloadStates = HashMap<String, WorkloadState>;

/// Signature states by workload key.
pub type SigStates = HashMap<String, SigPartial>;

/// Merges `from` into `into`, workload by workload.
pub fn merge_states(into: &mut WorkloadStates, from: WorkloadStates) {
    for (key, s) in from {
        match into.get_mut(&key) {
            Some(mine) => mine.merge(s),
            None => {
                into.insert(key, s);
            }
        }
    }
}

/// The two halves apart, for their own finishing steps: the feature aggregates (for
/// [`crate::features::finalize`]) and the signature states (for
/// [`crate::signatures::Engine::findings`]).
pub fn split(states: WorkloadStates) -> (Partials, SigStates) {
    let mut features = Partials::with_capacity(states.len());
    let mut signatures = SigStates::with_capacity(states.len());
    for (key, s) in states {
        signatures.insert(key.clone(), s.signatures);
        features.insert(key, s.features);
    }
    (features, signatures)
}
