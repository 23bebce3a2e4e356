//! Constant-time lookup in the models' hash-keyed tables.
//!
//! The tables are stored sorted by key (so a model file's bytes are reproducible), and a binary
//! search over a million entries costs about twenty cache misses. Scoring looks up every call
//! several times, so at load a [`Lookup`] builds an open-addressing index over the sorted table:
//! one slot per power of two at least twice the entries, each holding the position of its entry
//! plus one (0 = empty), linear probing. The keys are already mixed hashes; the slot is taken
//! from their high bits by a Fibonacci multiply, so nearby keys do not cluster.

use std::sync::OnceLock;

/// An index over a table sorted by `u64` key, built on first use.
#[derive(Default)]
pub struct Lookup {
    index: OnceLock<Index>,
}

struct Index {
    slots: Vec<u32>,
    shift: u32,
}

const FIB: u64 = 0x9E37_79B9_7F4A_7C15;

impl Index {
    fn build(keys: impl ExactSizeIterator<Item = u64>) -> Index {
        let want = (keys.len().max(1) * 2).next_power_of_two().max(16);
        let bits = want.trailing_zeros();
        let mask = want - 1;
        let shift = 64 - bits;
        let mut slots = vec![0u32; want];
        for (pos, k) in keys.enumerate() {
            let mut i = (k.wrapping_mul(FIB) >> shift) as usize;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            // Tables hold far fewer than 2^32 entries (a model file is bounded well below).
            slots[i] = pos as u32 + 1;
        }
        Index { slots, shift }
    }
}

impl Lookup {
    /// The entry of `table` (sorted by key, keys distinct) with key `key`.
    #[inline]
    pub fn get<T: Copy>(&self, table: &[(u64, T)], key: u64) -> Option<T> {
        self.position(table.len(), |i| table[i].0, key)
            .map(|i| table[i].1)
    }

    /// Whether `keys` (sorted, distinct) holds `key`.
    #[inline]
    pub fn contains(&self, keys: &[u64], key: u64) -> bool {
        self.position(keys.len(), |i| keys[i], key).is_some()
    }

    /// Where `key` is among `len` keys, `key_at(i)` being the i-th; the index is built from
    /// them on first use, so one `Lookup` serves one table.
    #[inline]
    fn position(&self, len: usize, key_at: impl Fn(usize) -> u64, key: u64) -> Option<usize> {
        let ix = self
            .index
            .get_or_init(|| Index::build((0..len).map(&key_at)));
        let mask = ix.slots.len() - 1;
        let mut i = (key.wrapping_mul(FIB) >> ix.shift) as usize;
        loop {
            let s = ix.slots[i] as usize;
            if s == 0 || s > len {
                return None;
            }
            if key_at(s - 1) == key {
                return Some(s - 1);
            }
            i = (i + 1) & mask;
        }
    }
}

impl Clone for Lookup {
    /// A clone rebuilds its index on first use (the table it indexes may be cloned apart).
    fn clone(&self) -> Lookup {
        Lookup::default()
    }
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup")
    }
}

impl PartialEq for Lookup {
    /// Derived data: two models are equal by their tables.
    fn eq(&self, _: &Lookup) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::rng::mix;

    #[test]
    fn finds_every_key_and_no_other() {
        let mut table: Vec<(u64, u32)> = (0..5000u64).map(|i| (mix(i * 3), i as u32)).collect();
        // Keys that collide in the low and high bits too.
        table.extend((1..64u64).map(|i| (i << 40, 9000 + i as u32)));
        table.sort_unstable_by_key(|e| e.0);
        let l = Lookup::default();
        for &(k, v) in &table {
            assert_eq!(l.get(&table, k), Some(v));
        }
        for i in 0..5000u64 {
            assert_eq!(l.get(&table, mix(i * 3 + 1)), None);
        }
        let keys: Vec<u64> = table.iter().map(|e| e.0).collect();
        let l = Lookup::default();
        assert!(keys.iter().all(|&k| l.contains(&keys, k)));
        assert!(!l.contains(&keys, mix(1)));
        let empty: Vec<(u64, u32)> = Vec::new();
        assert_eq!(Lookup::default().get(&empty, 7), None);
    }
}
