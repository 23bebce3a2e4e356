//! A text column chunk built from the rows themselves: the dictionary is keyed by the identity
//! of the strings the rows share (`Arc<str>`s interned per process and container, `&'static`
//! names), so a row's comm, executable or workload costs a pointer comparison, not a hash of
//! its bytes; the pages (PLAIN dictionary, RLE_DICTIONARY data page v2) are written here.

use std::collections::HashMap;

use bytes::Bytes;
use parquet::basic::{Encoding, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    ColumnChunkMetaData, LevelHistogram, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use super::rle::{Rle, bit_width};

type Fast = ahash::RandomState;

/// Runs of equal levels, in slot order.
#[derive(Default)]
pub(super) struct Runs {
    runs: Vec<(i16, u32)>,
}

impl Runs {
    #[inline]
    pub(super) fn push(&mut self, level: i16) {
        match self.runs.last_mut() {
            Some((l, n)) if *l == level => *n += 1,
            _ => self.runs.push((level, 1)),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (i16, usize)> + '_ {
        self.runs.iter().map(|&(l, n)| (l, n as usize))
    }

    /// The levels one by one, appended to `out`.
    pub(super) fn expand(&self, out: &mut Vec<i16>) {
        for (l, n) in self.iter() {
            out.extend(std::iter::repeat_n(l, n));
        }
    }

    fn encode(&self, max: i16) -> Vec<u8> {
        let mut rle = Rle::new(bit_width(max as u64));
        for (l, n) in self.iter() {
            rle.put_run(l as u32, n);
        }
        rle.finish()
    }
}

/// One text column (`Utf8`, or the items of a `List<Utf8>`) of a row group being gathered.
pub(super) struct TextColumn<'a> {
    /// Distinct values, in dictionary order.
    values: Vec<&'a str>,
    by_ptr: HashMap<(usize, usize), u32, Fast>,
    by_text: HashMap<&'a str, u32, Fast>,
    /// The previous value and its index: rows come in runs of one process.
    last: Option<(&'a str, u32)>,
    keys: Vec<u32>,
    def: Runs,
    rep: Runs,
    rows: usize,
}

impl<'a> TextColumn<'a> {
    pub(super) fn new() -> Self {
        TextColumn {
            values: Vec::new(),
            by_ptr: HashMap::default(),
            by_text: HashMap::default(),
            last: None,
            keys: Vec::new(),
            def: Runs::default(),
            rep: Runs::default(),
            rows: 0,
        }
    }

    /// The dictionary index of `s`, found by its address first (shared strings).
    #[inline]
    fn shared(&mut self, s: &'a str) -> u32 {
        if let Some((l, k)) = self.last
            && std::ptr::eq(l, s)
        {
            return k;
        }
        let id = (s.as_ptr() as usize, s.len());
        let k = match self.by_ptr.get(&id) {
            Some(&k) => k,
            None => {
                let k = self.by_content(s);
                self.by_ptr.insert(id, k);
                k
            }
        };
        self.last = Some((s, k));
        k
    }

    /// The dictionary index of `s`, found by its bytes (strings each row owns).
    #[inline]
    fn owned(&mut self, s: &'a str) -> u32 {
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

    /// One row of a `Utf8` column whose values are shared strings.
    #[inline]
    pub(super) fn push_shared(&mut self, v: Option<&'a str>) {
        self.rows += 1;
        match v {
            Some(s) => {
                let k = self.shared(s);
                self.keys.push(k);
                self.def.push(1);
            }
            None => self.def.push(0),
        }
    }

    /// One row of a `Utf8` column whose values each row owns.
    #[inline]
    pub(super) fn push_owned(&mut self, v: Option<&'a str>) {
        self.rows += 1;
        match v {
            Some(s) => {
                let k = self.owned(s);
                self.keys.push(k);
                self.def.push(1);
            }
            None => self.def.push(0),
        }
    }

    /// One row of a `List<Utf8>` column (items never null).
    #[inline]
    pub(super) fn push_list<S: AsRef<str> + 'a>(&mut self, items: Option<&'a [S]>, shared: bool) {
        self.rows += 1;
        match items {
            None => {
                self.def.push(0);
                self.rep.push(0);
            }
            Some([]) => {
                self.def.push(1);
                self.rep.push(0);
            }
            Some(items) => {
                for (i, s) in items.iter().enumerate() {
                    let s = s.as_ref();
                    let k = if shared {
                        self.shared(s)
                    } else {
                        self.owned(s)
                    };
                    self.keys.push(k);
                    self.def.push(3);
                    self.rep.push(i16::from(i > 0));
                }
            }
        }
    }

    /// Encodes the gathered rows as one column chunk: its bytes (offsets from 0) and metadata.
    pub(super) fn write_chunk(
        &self,
        descr: &ColumnDescPtr,
        settings: &ChunkSettings,
        zstd: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        let max_def = descr.max_def_level();
        let max_rep = descr.max_rep_level();
        let dict_bytes: usize = self.values.iter().map(|v| v.len() + 4).sum();
        let dictionary = dict_bytes < settings.dictionary_limit;
        let compress = |zstd: &mut zstd::bulk::Compressor<'static>, raw: &[u8]| {
            zstd.compress(raw)
                .map_err(|e| ParquetError::External(Box::new(e)))
        };

        // Values: dictionary indices, or the strings themselves when the dictionary would be
        // larger than a page (as parquet falls back).
        let mut values = Vec::new();
        let dict_page = if dictionary {
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
            let buf = compress(zstd, &plain)?;
            Some(CompressedPage::new(
                Page::DictionaryPage {
                    buf: buf.into(),
                    num_values: self.values.len() as u32,
                    encoding: Encoding::PLAIN,
                    is_sorted: false,
                },
                plain.len(),
            ))
        } else {
            for &k in &self.keys {
                let v = self.values[k as usize];
                values.extend_from_slice(&(v.len() as u32).to_le_bytes());
                values.extend_from_slice(v.as_bytes());
            }
            None
        };

        // Levels (uncompressed in a v2 page), then the values, compressed unless that grows them.
        let mut buf = Vec::new();
        let rep = if max_rep > 0 {
            self.rep.encode(max_rep)
        } else {
            Vec::new()
        };
        let def = if max_def > 0 {
            self.def.encode(max_def)
        } else {
            Vec::new()
        };
        buf.extend_from_slice(&rep);
        buf.extend_from_slice(&def);
        let uncompressed = rep.len() + def.len() + values.len();
        let packed = compress(zstd, &values)?;
        let is_compressed = packed.len() < uncompressed;
        buf.extend_from_slice(if is_compressed { &packed } else { &values });
        let slots = self.def.iter().map(|(_, n)| n).sum::<usize>();
        let present = self.keys.len();
        let data_encoding = if dictionary {
            Encoding::RLE_DICTIONARY
        } else {
            Encoding::PLAIN
        };
        let data_page = CompressedPage::new(
            Page::DataPageV2 {
                buf: buf.into(),
                num_values: slots as u32,
                encoding: data_encoding,
                num_nulls: (slots - present) as u32,
                num_rows: self.rows as u32,
                def_levels_byte_len: def.len() as u32,
                rep_levels_byte_len: rep.len() as u32,
                is_compressed,
                statistics: None,
            },
            uncompressed,
        );

        let mut sink = TrackedWrite::new(Vec::new());
        let mut pages = SerializedPageWriter::new(&mut sink);
        let mut encoding_stats = Vec::new();
        let (mut compressed_size, mut uncompressed_size, mut bytes_written) = (0, 0, 0);
        let mut dict_offset = None;
        if let Some(page) = dict_page {
            let spec = pages.write_page(page)?;
            dict_offset = Some(spec.offset as i64);
            compressed_size += spec.compressed_size;
            uncompressed_size += spec.uncompressed_size;
            bytes_written += spec.bytes_written;
            encoding_stats.push(PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            });
        }
        let spec = pages.write_page(data_page)?;
        compressed_size += spec.compressed_size;
        uncompressed_size += spec.uncompressed_size;
        bytes_written += spec.bytes_written;
        encoding_stats.push(PageEncodingStats {
            page_type: PageType::DATA_PAGE_V2,
            encoding: data_encoding,
            count: 1,
        });
        pages.close()?;

        let mut encodings = vec![Encoding::PLAIN, Encoding::RLE];
        if dictionary {
            encodings.push(Encoding::RLE_DICTIONARY);
        }
        let mut meta = ColumnChunkMetaData::builder(descr.clone())
            .set_compression(settings.compression)
            .set_encodings(encodings)
            .set_page_encoding_stats(encoding_stats)
            .set_total_compressed_size(compressed_size as i64)
            .set_total_uncompressed_size(uncompressed_size as i64)
            .set_num_values(slots as i64)
            .set_data_page_offset(spec.offset as i64)
            .set_dictionary_page_offset(dict_offset);
        let mut offsets = OffsetIndexBuilder::new();
        offsets.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        offsets.append_row_count(self.rows as i64);
        if settings.statistics {
            let text_bytes: i64 = self
                .keys
                .iter()
                .map(|&k| self.values[k as usize].len() as i64)
                .sum();
            meta = meta
                .set_statistics(self.statistics(slots - present, settings.truncate))
                .set_unencoded_byte_array_data_bytes(Some(text_bytes))
                .set_definition_level_histogram(histogram(&self.def, max_def))
                .set_repetition_level_histogram(histogram(&self.rep, max_rep));
            offsets.append_unencoded_byte_array_data_bytes(Some(text_bytes));
        }
        let close = ColumnCloseResult {
            bytes_written,
            rows_written: self.rows as u64,
            metadata: meta.build()?,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offsets.build()),
        };
        Ok((Bytes::from(sink.into_inner()?), close))
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

/// How many slots have each level (none for a column without levels).
fn histogram(runs: &Runs, max: i16) -> Option<LevelHistogram> {
    if max == 0 {
        return None;
    }
    let mut h = vec![0i64; max as usize + 1];
    for (l, n) in runs.iter() {
        if let Some(c) = h.get_mut(l as usize) {
            *c += n as i64;
        }
    }
    Some(LevelHistogram::from(h))
}

/// What a chunk needs from the writer properties.
pub(super) struct ChunkSettings {
    pub(super) compression: parquet::basic::Compression,
    pub(super) dictionary_limit: usize,
    pub(super) statistics: bool,
    pub(super) truncate: Option<usize>,
}
