//! A fast hasher for the aggregates' own keys: 64-bit string hashes (already uniform), ports,
//! process ids and cgroup ids. The std SipHash protects maps keyed by attacker-chosen data from
//! flooding; these keys are either hashes of such data (SipHash, in `classify::hash_str`) or
//! small integers, so a folded multiply is enough and several times faster.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Folded-multiply hasher for integer keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        let full = u128::from(self.0 ^ v) * u128::from(K);
        self.0 = (full as u64) ^ ((full >> 64) as u64);
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
}

/// A set keyed with [`FastHasher`].
pub type FastSet<T> = HashSet<T, BuildHasherDefault<FastHasher>>;
/// A map keyed with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_small_integers() {
        let hash = |v: u32| {
            let mut h = FastHasher::default();
            h.write_u32(v);
            h.finish()
        };
        let low: FastSet<u64> = (0..1000).map(|v| hash(v) & 0xfff).collect();
        let high: FastSet<u64> = (0..1000).map(|v| hash(v) >> 57).collect();
        assert!(low.len() > 700, "{}", low.len());
        assert_eq!(high.len(), 128);
    }
}
