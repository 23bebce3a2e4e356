//! One column chunk written here, not by parquet's column writer: an optional PLAIN dictionary
//! page and one data page v2 (levels as RLE runs, the values compressed), with the chunk
//! metadata, statistics, level histograms and offset index parquet's writer would give it.
//! [`super::text`] and [`super::num`] encode the values; the page layout is theirs in common.

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::statistics::Statistics;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use super::levels::Levels;

/// What a chunk needs from the writer properties.
pub(super) struct ChunkSettings {
    pub(super) compression: Compression,
    pub(super) dictionary_limit: usize,
    pub(super) statistics: bool,
    pub(super) truncate: Option<usize>,
}

/// A column chunk's encoded parts.
pub(super) struct Chunk<'l> {
    /// The dictionary, PLAIN-encoded, and how many entries it has.
    pub(super) dictionary: Option<(Vec<u8>, u32)>,
    /// The values present, encoded.
    pub(super) values: Vec<u8>,
    /// How `values` are encoded.
    pub(super) encoding: Encoding,
    /// How many values are present (slots at the maximum definition level).
    pub(super) present: usize,
    pub(super) levels: &'l Levels,
    /// Chunk statistics, when the column keeps them (the histograms come with them).
    pub(super) statistics: Option<Statistics>,
    /// Bytes of text before encoding (text columns with statistics).
    pub(super) text_bytes: Option<i64>,
}

/// Compresses `raw` as the chunk's codec (zstd: the only one trace files use).
pub(super) fn compress(
    zstd: &mut zstd::bulk::Compressor<'static>,
    raw: &[u8],
) -> Result<Vec<u8>, ParquetError> {
    zstd.compress(raw)
        .map_err(|e| ParquetError::External(Box::new(e)))
}

impl Chunk<'_> {
    /// The chunk's bytes (offsets from 0) and metadata, ready for
    /// [`parquet::file::writer::SerializedRowGroupWriter::append_column`].
    pub(super) fn write(
        self,
        descr: &ColumnDescPtr,
        settings: &ChunkSettings,
        zstd: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        let max_def = descr.max_def_level();
        let max_rep = descr.max_rep_level();
        let rows = self.levels.rows();
        let dict_page = match &self.dictionary {
            Some((plain, n)) => Some(CompressedPage::new(
                Page::DictionaryPage {
                    buf: compress(zstd, plain)?.into(),
                    num_values: *n,
                    encoding: Encoding::PLAIN,
                    is_sorted: false,
                },
                plain.len(),
            )),
            None => None,
        };

        // Levels (uncompressed in a v2 page), then the values, compressed unless that grows them.
        let rep = if max_rep > 0 {
            self.levels.rep.encode(max_rep)
        } else {
            Vec::new()
        };
        let def = if max_def > 0 {
            self.levels.def.encode(max_def)
        } else {
            Vec::new()
        };
        let mut buf = Vec::with_capacity(rep.len() + def.len() + self.values.len());
        buf.extend_from_slice(&rep);
        buf.extend_from_slice(&def);
        let uncompressed = rep.len() + def.len() + self.values.len();
        let packed = compress(zstd, &self.values)?;
        let is_compressed = packed.len() < uncompressed;
        buf.extend_from_slice(if is_compressed { &packed } else { &self.values });
        let slots = self.levels.def.len();
        let data_page = CompressedPage::new(
            Page::DataPageV2 {
                buf: buf.into(),
                num_values: slots as u32,
                encoding: self.encoding,
                num_nulls: (slots - self.present) as u32,
                num_rows: rows as u32,
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
        let mut encodings = vec![Encoding::RLE, self.encoding];
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
            encodings.push(Encoding::PLAIN);
        }
        let spec = pages.write_page(data_page)?;
        compressed_size += spec.compressed_size;
        uncompressed_size += spec.uncompressed_size;
        bytes_written += spec.bytes_written;
        encoding_stats.push(PageEncodingStats {
            page_type: PageType::DATA_PAGE_V2,
            encoding: self.encoding,
            count: 1,
        });
        pages.close()?;

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
        offsets.append_row_count(rows as i64);
        if let Some(statistics) = self.statistics {
            meta = meta
                .set_statistics(statistics)
                .set_unencoded_byte_array_data_bytes(self.text_bytes)
                .set_definition_level_histogram(self.levels.def.histogram(max_def))
                .set_repetition_level_histogram(self.levels.rep.histogram(max_rep));
            offsets.append_unencoded_byte_array_data_bytes(self.text_bytes);
        }
        let close = ColumnCloseResult {
            bytes_written,
            rows_written: rows as u64,
            metadata: meta.build()?,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offsets.build()),
        };
        Ok((Bytes::from(sink.into_inner()?), close))
    }
}
