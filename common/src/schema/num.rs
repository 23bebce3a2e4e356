//! Number and boolean column chunks built from the rows themselves: integers as a PLAIN
//! dictionary page and an RLE_DICTIONARY data page, booleans RLE-encoded — the encodings
//! parquet's column writer picks for them under the trace's writer settings, without its
//! per-value work (a definition level per row, a hash per value, statistics per value).

use std::collections::HashMap;
use std::hash::Hash;

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnDescPtr;

use super::levels::Levels;
use super::page::{Chunk, ChunkSettings};
use super::rle::{Rle, bit_width};

type Fast = ahash::RandomState;

/// One number or boolean column of a row group being gathered, typed as parquet stores it
/// (unsigned integers as their signed bit patterns, as parquet-rs does).
#[derive(Default)]
pub(super) struct Num<T> {
    pub(super) values: Vec<T>,
    levels: Levels,
}

impl<T: Copy> Num<T> {
    /// Row `row` has `v`.
    #[inline]
    pub(super) fn set(&mut self, row: usize, v: T) {
        self.levels.row(row, false);
        self.levels.def.push(1);
        self.values.push(v);
    }

    /// Row `row` has `v`, if it is there.
    #[inline]
    pub(super) fn opt(&mut self, row: usize, v: Option<T>) {
        if let Some(v) = v {
            self.set(row, v);
        }
    }

    /// Row `row` has `items`, the entries of a map's keys or values leaf at definition level
    /// `def` (none: an empty map).
    #[inline]
    fn entries(&mut self, row: usize, items: impl ExactSizeIterator<Item = T>, def: i16) {
        self.levels.row(row, true);
        let n = items.len();
        if n == 0 {
            self.levels.def.push(1);
            self.levels.rep.push(0);
        } else {
            self.values.extend(items);
            self.levels.def.push_run(def, n);
            self.levels.rep.push(0);
            self.levels.rep.push_run(1, n - 1);
        }
    }
}

/// Integers as parquet stores them.
pub(super) trait Int: Copy + Eq + Hash + Ord {
    /// Appends the PLAIN encoding of `self`.
    fn plain(self, out: &mut Vec<u8>);
    /// The bits as an unsigned number (the order of unsigned logical types).
    fn unsigned(self) -> u64;
    /// Chunk statistics of this physical type.
    fn statistics(stats: ValueStatistics<Self>) -> Statistics;
}

impl Int for i32 {
    fn plain(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn unsigned(self) -> u64 {
        u64::from(self as u32)
    }
    fn statistics(stats: ValueStatistics<i32>) -> Statistics {
        Statistics::Int32(stats)
    }
}

impl Int for i64 {
    fn plain(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn unsigned(self) -> u64 {
        self as u64
    }
    fn statistics(stats: ValueStatistics<i64>) -> Statistics {
        Statistics::Int64(stats)
    }
}

impl<T: Int> Num<T> {
    /// Encodes the gathered rows of a row group of `rows` rows as one column chunk: a
    /// dictionary of the distinct values, or the values PLAIN when the dictionary would be
    /// larger than a page (parquet would switch the rest of the chunk to DELTA_BINARY_PACKED).
    pub(super) fn write_ints(
        &mut self,
        rows: usize,
        descr: &ColumnDescPtr,
        settings: &ChunkSettings,
        zstd: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        self.levels.finish(rows, descr.max_rep_level() > 0);
        let size = std::mem::size_of::<T>();
        let mut distinct: Vec<T> = Vec::new();
        let mut index: HashMap<T, u32, Fast> = HashMap::default();
        let mut keys = Vec::with_capacity(self.values.len());
        let mut last = None;
        for &v in &self.values {
            let k = match last {
                Some((l, k)) if l == v => k,
                _ => {
                    let next = distinct.len() as u32;
                    let k = *index.entry(v).or_insert(next);
                    if k == next {
                        distinct.push(v);
                    }
                    last = Some((v, k));
                    k
                }
            };
            keys.push(k);
        }
        let mut values = Vec::new();
        let dictionary = if distinct.len() * size < settings.dictionary_limit {
            let mut plain = Vec::with_capacity(distinct.len() * size);
            distinct.iter().for_each(|v| v.plain(&mut plain));
            let bw = bit_width(distinct.len().saturating_sub(1) as u64);
            values.push(bw);
            let mut rle = Rle::new(bw);
            keys.iter().for_each(|&k| rle.put(k));
            values.extend_from_slice(&rle.finish());
            Some((plain, distinct.len() as u32))
        } else {
            values.reserve(self.values.len() * size);
            self.values.iter().for_each(|v| v.plain(&mut values));
            None
        };
        let encoding = if dictionary.is_some() {
            Encoding::RLE_DICTIONARY
        } else {
            Encoding::PLAIN
        };
        let statistics = settings.statistics.then(|| {
            let signed = descr.sort_order().is_signed();
            let (min, max) = if signed {
                (distinct.iter().min(), distinct.iter().max())
            } else {
                (
                    distinct.iter().min_by_key(|v| v.unsigned()),
                    distinct.iter().max_by_key(|v| v.unsigned()),
                )
            };
            let nulls = (self.levels.def.len() - self.values.len()) as u64;
            T::statistics(
                ValueStatistics::new(min.copied(), max.copied(), None, Some(nulls), false)
                    .with_backwards_compatible_min_max(signed),
            )
        });
        Chunk {
            dictionary,
            values,
            encoding,
            present: self.values.len(),
            levels: &self.levels,
            statistics,
            text_bytes: None,
        }
        .write(descr, settings, zstd)
    }
}

impl Num<bool> {
    /// Encodes the gathered rows of a row group of `rows` rows as one column chunk, the values
    /// RLE-encoded (1 bit, after their byte length), as parquet writes booleans in v2 pages.
    pub(super) fn write_bools(
        &mut self,
        rows: usize,
        descr: &ColumnDescPtr,
        settings: &ChunkSettings,
        zstd: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        self.levels.finish(rows, false);
        let mut rle = Rle::new(1);
        self.values.iter().for_each(|&v| rle.put(u32::from(v)));
        let rle = rle.finish();
        let mut values = Vec::with_capacity(4 + rle.len());
        values.extend_from_slice(&(rle.len() as u32).to_le_bytes());
        values.extend_from_slice(&rle);
        let statistics = settings.statistics.then(|| {
            let nulls = (self.levels.def.len() - self.values.len()) as u64;
            let min = self.values.iter().min().copied();
            let max = self.values.iter().max().copied();
            Statistics::Boolean(
                ValueStatistics::new(min, max, None, Some(nulls), false)
                    .with_backwards_compatible_min_max(descr.sort_order().is_signed()),
            )
        });
        Chunk {
            dictionary: None,
            values,
            encoding: Encoding::RLE,
            present: self.values.len(),
            levels: &self.levels,
            statistics,
            text_bytes: None,
        }
        .write(descr, settings, zstd)
    }
}

/// The `syscall_counts` map: two leaf columns (keys, values) with repetition levels.
#[derive(Default)]
pub(super) struct CountMap {
    pub(super) keys: Num<i32>,
    pub(super) values: Num<i64>,
}

impl CountMap {
    /// Row `row` has `counts` (syscall number → count; empty: an empty map).
    #[inline]
    pub(super) fn set(&mut self, row: usize, counts: &[(u32, u64)]) {
        // keys: map (1), entries (2), required key; values: nullable, so one level more.
        self.keys
            .entries(row, counts.iter().map(|&(nr, _)| nr as i32), 2);
        self.values
            .entries(row, counts.iter().map(|&(_, c)| c as i64), 3);
    }
}
