//! Parquet's RLE / bit-packed hybrid encoding, fed with runs: definition and repetition levels
//! and dictionary indices arrive as (value, count) runs, so a column that is null on 100 000
//! rows costs one run, not 100 000 calls.

/// Bits needed for values up to `max` (0 for 0, as parquet-rs writes it).
pub(super) fn bit_width(max: u64) -> u8 {
    (64 - max.leading_zeros()) as u8
}

/// Encodes runs of `u32`s of `bw` bits in the hybrid encoding (no length prefix).
pub(super) struct Rle {
    bw: u8,
    out: Vec<u8>,
    /// Values waiting to be bit-packed (a multiple of 8 except at the tail).
    packed: Vec<u32>,
    run_value: u32,
    run_len: usize,
}

impl Rle {
    /// An encoder of `bw`-bit values.
    pub(super) fn new(bw: u8) -> Rle {
        Rle {
            bw,
            out: Vec::new(),
            packed: Vec::new(),
            run_value: 0,
            run_len: 0,
        }
    }

    /// Appends `n` copies of `v`.
    pub(super) fn put_run(&mut self, v: u32, n: usize) {
        if n == 0 {
            return;
        }
        if self.run_len > 0 && self.run_value == v {
            self.run_len += n;
            return;
        }
        self.end_run();
        self.run_value = v;
        self.run_len = n;
    }

    /// Appends one value.
    pub(super) fn put(&mut self, v: u32) {
        self.put_run(v, 1);
    }

    /// Moves the current run out: an RLE run when it is long enough once the bit-packed
    /// values before it are filled up to a group of 8, else into the bit-packed values.
    fn end_run(&mut self) {
        let (v, mut n) = (self.run_value, self.run_len);
        self.run_len = 0;
        if n < 8 {
            // Too short to be a run of 8 after filling a group: bit-packed, the common case of
            // dictionary indices that change from row to row.
            for _ in 0..n {
                self.packed.push(v);
            }
            return;
        }
        let partial = self.packed.len() % 8;
        if partial != 0 {
            let fill = (8 - partial).min(n);
            self.packed.extend(std::iter::repeat_n(v, fill));
            n -= fill;
        }
        if n >= 8 {
            self.flush_packed();
            self.varint((n as u64) << 1);
            let bytes = usize::from(self.bw).div_ceil(8);
            self.out.extend_from_slice(&v.to_le_bytes()[..bytes]);
        } else {
            self.packed.extend(std::iter::repeat_n(v, n));
        }
    }

    /// Writes the bit-packed values as one run (padded with zeros to a group of 8: only the
    /// tail of a page is ever padded, and readers stop at the page's value count).
    fn flush_packed(&mut self) {
        if self.packed.is_empty() {
            return;
        }
        let groups = self.packed.len().div_ceil(8);
        self.packed.resize(groups * 8, 0);
        self.varint(((groups as u64) << 1) | 1);
        // Four bytes out at a time: fewer than 32 bits wait before a value of at most 32 is
        // added, and whole groups of 8 values end on a byte boundary.
        let bw = u32::from(self.bw);
        let (mut acc, mut bits) = (0u64, 0u32);
        self.out
            .reserve(self.packed.len() * self.bw as usize / 8 + 4);
        for &x in &self.packed {
            acc |= u64::from(x) << bits;
            bits += bw;
            if bits >= 32 {
                self.out.extend_from_slice(&(acc as u32).to_le_bytes());
                acc >>= 32;
                bits -= 32;
            }
        }
        self.out
            .extend_from_slice(&acc.to_le_bytes()[..(bits / 8) as usize]);
        self.packed.clear();
    }

    fn varint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.out.push((x as u8) | 0x80);
            x >>= 7;
        }
        self.out.push(x as u8);
    }

    /// The encoded bytes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.end_run();
        self.flush_packed();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the hybrid encoding (the reference: the format's description).
    fn decode(bw: u8, mut b: &[u8], n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let varint = |b: &mut &[u8]| {
            let (mut x, mut s) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                x |= u64::from(byte & 0x7f) << s;
                s += 7;
                if byte < 0x80 {
                    return x;
                }
            }
        };
        while out.len() < n {
            let h = varint(&mut b);
            if h & 1 == 0 {
                let bytes = usize::from(bw).div_ceil(8);
                let mut v = [0u8; 4];
                v[..bytes].copy_from_slice(&b[..bytes]);
                b = &b[bytes..];
                out.extend(std::iter::repeat_n(
                    u32::from_le_bytes(v),
                    (h >> 1) as usize,
                ));
            } else {
                let count = (h >> 1) as usize * 8;
                let (mut acc, mut bits, mut i) = (0u64, 0u32, 0);
                for _ in 0..count {
                    while bits < u32::from(bw) {
                        acc |= u64::from(b[i]) << bits;
                        i += 1;
                        bits += 8;
                    }
                    let mask = if bw == 0 { 0 } else { u64::MAX >> (64 - bw) };
                    out.push((acc & mask) as u32);
                    acc >>= bw;
                    bits -= u32::from(bw);
                }
                b = &b[i..];
            }
        }
        out.truncate(n);
        out
    }

    #[test]
    fn runs_and_literals_round_trip() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for case in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let bw = (seed % 33) as u8;
            let max = if bw == 0 { 0 } else { (1u64 << bw) - 1 };
            let mut values = Vec::new();
            let mut rle = Rle::new(bw);
            let mut s = seed;
            for _ in 0..(case % 40) {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let v = ((s >> 33) % (max + 1)) as u32;
                let n = match (s >> 20) % 4 {
                    0 => 1,
                    1 => ((s >> 8) % 9) as usize,
                    2 => ((s >> 8) % 30) as usize,
                    _ => ((s >> 8) % 3000) as usize,
                };
                if (s >> 40).is_multiple_of(2) {
                    rle.put_run(v, n);
                } else {
                    for _ in 0..n {
                        rle.put(v);
                    }
                }
                values.extend(std::iter::repeat_n(v, n));
            }
            let bytes = rle.finish();
            assert_eq!(
                decode(bw, &bytes, values.len()),
                values,
                "case {case} bw {bw}"
            );
        }
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(3), 2);
        assert_eq!(bit_width(4), 3);
    }
}
