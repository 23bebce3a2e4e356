//! The kernel's per-CPU counters: events lost per kind, events filtered, read errors.

use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuArray};
use needle_common::abi::{Counter, EVENT_KINDS};

/// One reading of every counter, per CPU: `values[slot][cpu]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    values: Vec<Vec<u64>>,
}

/// The difference between two snapshots, in the shape file metadata wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Lost events, all kinds and CPUs.
    pub lost: u64,
    /// Lost events per CPU.
    pub lost_per_cpu: Vec<u64>,
    /// Lost events per kind name (only kinds with losses).
    pub lost_by_kind: BTreeMap<String, u64>,
    /// Other counters by name (only non-zero ones).
    pub counters: BTreeMap<String, u64>,
}

impl Snapshot {
    /// Reads every slot. A slot that cannot be read counts as zero (and is not fatal).
    pub fn read(map: &PerCpuArray<MapData, u64>) -> Snapshot {
        let slots = EVENT_KINDS.len() + Counter::ALL.len();
        let values = (0..slots as u32)
            .map(|slot| {
                map.get(&slot, 0)
                    .map(|v| v.iter().copied().collect())
                    .unwrap_or_default()
            })
            .collect();
        Snapshot { values }
    }

    /// A snapshot from raw values (tests).
    pub fn from_values(values: Vec<Vec<u64>>) -> Snapshot {
        Snapshot { values }
    }

    fn slot(&self, slot: usize) -> &[u64] {
        self.values.get(slot).map_or(&[], Vec::as_slice)
    }

    /// `self − earlier`, per slot and CPU (counters only grow; a reset reads as zero).
    pub fn since(&self, earlier: &Snapshot) -> Delta {
        let mut d = Delta::default();
        let diff = |slot: usize| -> Vec<u64> {
            let now = self.slot(slot);
            let then = earlier.slot(slot);
            now.iter()
                .enumerate()
                .map(|(cpu, v)| v.saturating_sub(then.get(cpu).copied().unwrap_or(0)))
                .collect()
        };
        for kind in EVENT_KINDS {
            let per_cpu = diff(kind.slot() as usize);
            if d.lost_per_cpu.len() < per_cpu.len() {
                d.lost_per_cpu.resize(per_cpu.len(), 0);
            }
            let total: u64 = per_cpu.iter().sum();
            for (cpu, v) in per_cpu.iter().enumerate() {
                d.lost_per_cpu[cpu] += v;
            }
            if total > 0 {
                d.lost_by_kind.insert(kind.name().to_string(), total);
            }
            d.lost += total;
        }
        for c in Counter::ALL {
            let total: u64 = diff(c as usize).iter().sum();
            if total > 0 {
                d.counters.insert(c.name().to_string(), total);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use needle_common::abi::EventKind;

    #[test]
    fn delta_splits_losses_by_kind_and_cpu() {
        let slots = EVENT_KINDS.len() + Counter::ALL.len();
        let mut before = vec![vec![0, 0]; slots];
        let mut after = before.clone();
        after[EventKind::Exec.slot() as usize] = vec![3, 1];
        after[EventKind::Exit.slot() as usize] = vec![0, 5];
        after[Counter::ForkThreadFiltered as usize] = vec![10, 10];
        before[Counter::ForkThreadFiltered as usize] = vec![4, 4];
        let d = Snapshot::from_values(after).since(&Snapshot::from_values(before));
        assert_eq!(d.lost, 9);
        assert_eq!(d.lost_per_cpu, vec![3, 6]);
        assert_eq!(d.lost_by_kind.get("exec"), Some(&4));
        assert_eq!(d.lost_by_kind.get("exit"), Some(&5));
        assert_eq!(d.counters.get("fork_thread_filtered"), Some(&12));
        assert!(!d.counters.contains_key("kernel_read_error"));
    }
}
