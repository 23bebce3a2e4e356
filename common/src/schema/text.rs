//! A text column chunk built from the rows themselves: the dictionary is keyed by the identity
//! of the strings the rows share (`Arc<str>`s interned per process and container, `&'static`
//! names), so a row's comm, executable or workload costs a pointer comparison, not a hash of
//! its bytes; the pages (PLAIN dictionary, RLE_DICTIONARY data page v2) are written by
//! [`super::page`].

use std::collections::HashMap;

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnDescPtr;

use super::levels::Levels;
use super::page::{Chunk, ChunkSettings};
use super::rle::{Rle, bit_width};

type Fast = ahash::RandomState;

/// Slots of [`TextColumn::recent`].
const RECENT: usize = 8;

/// One text column (`Utf8`, or the items of a `List<Utf8>`) of a row group being gathered.
#[derive(Default)]
pub(super) struct TextColumn<'a> {
    /// Distinct values, in dictionary order.
    values: Vec<&'a str>,
    by_ptr: HashMap<(usize, usize), u32, Fast>,
    by_text: HashMap<&'a str, u32, Fast>,
    /// The previous value the rows own and its index: rows come in runs of one process.
    last: Option<(&'a str, u32)>,
    /// Shared strings seen lately (address, length, index), by address: the rows of a few
    /// processes interleave, and a miss here costs a hash lookup.
    recent: [(usize, usize, u32); RECENT],
    /// The previous list of shared strings (address, length) and where its keys start.
    last_list: Option<(usize, usize, usize)>,
    keys: Vec<u32>,
    levels: Levels,
}

impl<'a> TextColumn<'a> {
    /// The dictionary index of `s`, found by its address first (shared strings).
    #[inline]
    fn shared_key(&mut self, s: &'a str) -> u32 {
        let (ptr, len) = (s.as_ptr() as usize, s.len());
        // Allocations are 16-byte aligned: the bits above those pick the slot.
        let slot = (ptr >> 4) % RECENT;
        if let Some(&(p, l, k)) = self.recent.get(slot)
            && (p, l) == (ptr, len)
        {
            return k;
        }
        let k = match self.by_ptr.get(&(ptr, len)) {
            Some(&k) => k,
            None => {
                let k = self.by_content(s);
                self.by_ptr.insert((ptr, len), k);
                k
            }
        };
        if let Some(r) = self.recent.get_mut(slot) {
            *r = (ptr, len, k);
        }
        k
    }

    /// The dictionary index of `s`, found by its bytes (strings each row owns).
    #[inline]
    fn owned_key(&mut self, s: &'a str) -> u32 {
        if let Some((l, k)) = self.last
            && l == s
        {
            return k;
        }
        let k = self.by_content(s);
        self.last = Some((s, k));
        k
    }

    fn by_content(&mut self, s: &'a str) -> u32 {
        let next = self.values.len() as u32;
        let k = *self.by_text.entry(s).or_insert(next);
        if k == next {
            self.values.push(s);
        }
        k
    }

    /// Row `row` of a `Utf8` column has `s`, a shared string.
    #[inline]
    pub(super) fn shared(&mut self, row: usize, s: &'a str) {
        let k = self.shared_key(s);
        self.levels.row(row, false);
        self.levels.def.push(1);
        self.keys.push(k);
    }

    /// Row `row` of a `Utf8` column has `s`, a string the row owns.
    #[inline]
    pub(super) fn owned(&mut self, row: usize, s: &'a str) {
        let k = self.owned_key(s);
        self.levels.row(row, false);
        self.levels.def.push(1);
        self.keys.push(k);
    }

    /// Row `row` of a `List<Utf8>` column (items never null) has `items`, shared strings: the
    /// same list as the previous row's (a process's ancestry) costs one comparison.
    #[inline]
    pub(super) fn shared_list<S: AsRef<str> + 'a>(&mut self, row: usize, items: &'a [S]) {
        let id = (items.as_ptr() as usize, items.len());
        if let Some((ptr, len, start)) = self.last_list
            && (ptr, len) == id
            && !items.is_empty()
        {
            self.list_levels(row, len);
            let again = self.keys.len();
            self.keys.extend_from_within(start..start + len);
            self.last_list = Some((ptr, len, again));
            return;
        }
        self.last_list = Some((id.0, id.1, self.keys.len()));
        for s in items {
            let k = self.shared_key(s.as_ref());
            self.keys.push(k);
        }
        self.list_levels(row, items.len());
    }

    /// Row `row` of a `List<Utf8>` column (items never null) has `items`, strings it owns.
    #[inline]
    pub(super) fn owned_list<S: AsRef<str> + 'a>(&mut self, row: usize, items: &'a [S]) {
        for s in items {
            let k = self.owned_key(s.as_ref());
            self.keys.push(k);
        }
        self.list_levels(row, items.len());
    }

    /// The levels of a list of `n` items (an empty list when 0) in row `row`.
    #[inline]
    fn list_levels(&mut self, row: usize, n: usize) {
        self.levels.row(row, true);
        if n == 0 {
            self.levels.def.push(1);
            self.levels.rep.push(0);
        } else {
            self.levels.def.push_run(3, n);
            self.levels.rep.push(0);
            self.levels.rep.push_run(1, n - 1);
        }
    }

    /// Encodes the gathered rows of a row group of `rows` rows as one column chunk: its bytes
    /// (offsets from 0) and metadata.
    pub(super) fn write_chunk(
        &mut self,
        rows: usize,
        descr: &ColumnDescPtr,
        settings: &ChunkSettings,
        zstd: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        self.levels.finish(rows, descr.max_rep_level() > 0);
        let dict_bytes: usize = self.values.iter().map(|v| v.len() + 4).sum();
        // Values: dictionary indices, or the strings themselves when the dictionary would be
        // larger than a page (as parquet falls back).
        let mut values = Vec::new();
        let dictionary = if dict_bytes < settings.dictionary_limit {
            let mut plain = Vec::with_capacity(dict_bytes);
            for v in &self.values {
                plain.extend_from_slice(&(v.len() as u32).to_le_bytes());
                plain.extend_from_slice(v.as_bytes());
            }
            let bw = bit_width(self.values.len().saturating_sub(1) as u64);
            values.push(bw);
            let mut rle = Rle::new(bw);
            for &k in &self.keys {
                rle.put(k);
            }
            values.extend_from_slice(&rle.finish());
            Some((plain, self.values.len() as u32))
        } else {
            for &k in &self.keys {
                let v = self.values[k as usize];
                values.extend_from_slice(&(v.len() as u32).to_le_bytes());
                values.extend_from_slice(v.as_bytes());
            }
            None
        };
        let encoding = if dictionary.is_some() {
            Encoding::RLE_DICTIONARY
        } else {
            Encoding::PLAIN
        };
        let present = self.keys.len();
        let (statistics, text_bytes) = if settings.statistics {
            let nulls = self.levels.def.len() - present;
            let text_bytes: i64 = self
                .keys
                .iter()
                .map(|&k| self.values[k as usize].len() as i64)
                .sum();
            (
                Some(self.statistics(nulls, settings.truncate)),
                Some(text_bytes),
            )
        } else {
            (None, None)
        };
        Chunk {
            dictionary,
            values,
            encoding,
            present,
            levels: &self.levels,
            statistics,
            text_bytes,
        }
        .write(descr, settings, zstd)
    }

    /// Chunk statistics: min and max over the values present (every dictionary entry is),
    /// compared as bytes, the min cut at `truncate` bytes (on a character boundary) as parquet
    /// does. A longer max is kept whole: exact, and as valid a bound.
    fn statistics(&self, nulls: usize, truncate: Option<usize>) -> Statistics {
        let min = self
            .values
            .iter()
            .min_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let max = self
            .values
            .iter()
            .max_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let (min, min_exact) = match (min, truncate) {
            (Some(m), Some(l)) if m.len() > l => {
                let mut end = l;
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                (Some(&m[..end]), false)
            }
            (m, _) => (m.copied(), true),
        };
        let stats = ValueStatistics::new(
            min.map(|m| ByteArray::from(m.as_bytes().to_vec())),
            max.map(|m| ByteArray::from(m.as_bytes().to_vec())),
            None,
            Some(nulls as u64),
            false,
        )
        .with_backwards_compatible_min_max(false);
        let stats = if min.is_some() {
            stats.with_min_is_exact(min_exact)
        } else {
            stats
        };
        Statistics::ByteArray(stats)
    }
}
