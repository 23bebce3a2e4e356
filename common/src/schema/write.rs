//! Parquet writer settings shared by every program that writes traces.

use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::names;

/// How a trace file is encoded.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// zstd level (1–22). 3 is zstd's own default: fast, and most of the gain.
    pub zstd_level: i32,
    /// Rows per row group; each row group is sorted by time. 128 Ki rows is DuckDB's choice
    /// too (122 880): large enough that a column chunk's header and zstd frame are noise, small
    /// enough that a writer holding one row group in memory stays far below 256 MiB.
    pub row_group_rows: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            zstd_level: 3,
            row_group_rows: 128 * 1024,
        }
    }
}

/// Text columns that keep min/max statistics: the ones queries select row groups by.
const PRUNED_BY: &[&str] = &[
    names::HOST,
    names::KIND,
    names::WORKLOAD,
    names::CONTAINER_ID,
    names::NAMESPACE,
];

/// Writer properties for a trace file: zstd, dictionary-encoded strings, delta-encoded clocks,
/// and the given key-value metadata.
pub fn writer_properties(
    opts: &WriteOptions,
    metadata: Vec<(String, String)>,
) -> Result<WriterProperties, ParquetError> {
    let zstd = ZstdLevel::try_new(opts.zstd_level)?;
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(zstd))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_size(opts.row_group_rows)
        // Pages bounded by size (1 MiB) only, not by parquet's 20 000-row default: most columns
        // are sparse, and every page costs a reader a zstd context (−10–15% analyzer CPU).
        .set_data_page_row_count_limit(opts.row_group_rows)
        .set_created_by(format!("needle {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(
            metadata
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect(),
        ));
    // Min/max statistics of a text column cost a string comparison per row, and the
    // writer's time goes mostly to text columns. Keep them where readers prune row groups
    // (time, host, kind, workload, container); a path or argv spans everything in a
    // time-sorted row group anyway.
    for c in super::COLUMNS {
        let text = matches!(c.ty, super::ColumnType::Str | super::ColumnType::StrList);
        if text && !PRUNED_BY.contains(&c.name) {
            b = b.set_column_statistics_enabled(ColumnPath::from(c.name), EnabledStatistics::None);
        }
    }
    // Clocks grow almost monotonically within a sorted row group: deltas are tiny.
    for clock in [names::TIME, names::KTIME_NS] {
        let path = ColumnPath::from(clock);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    Ok(b.build())
}
