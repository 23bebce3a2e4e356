//! Opening one trace file: footer, needle metadata, schema hint, row-group plan.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use futures_util::StreamExt as _;
use needle_common::schema::{MetadataError, TraceMetadata, names};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowFilter,
};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::statistics::Statistics;

use super::ScanError;
use super::Task;
use crate::features::{CONTEXT_COLUMNS, NEEDED_COLUMNS, PROBE_COLUMNS, TimeWindow};

/// Rows per record batch handed to the feature accumulator.
/// As large as capture's row groups: each batch re-exports the column dictionaries, so fewer,
/// larger batches copy less; memory stays bounded by this many rows per task.
const BATCH_ROWS: usize = 64 * 1024;

/// A trace file whose footer and metadata are valid.
#[derive(Clone)]
pub struct OpenTrace {
    /// The file, or the `s3://` URL of the object.
    pub path: PathBuf,
    /// The object, when the trace is in object storage.
    object: Option<super::object::Object>,
    /// Its `needle.*` metadata.
    pub metadata: TraceMetadata,
    /// Host of its rows (metadata, else the host column's statistics, else `unknown`).
    pub host: String,
    reader_meta: ArrowReaderMetadata,
    /// Projections for [`Fetch::Features`], [`Fetch::FeaturesAndContext`], [`Fetch::Context`],
    /// then the first two again with the signature columns.
    projections: [ProjectionMask; 5],
    /// Every row group: index, rows, min and max `time` when the statistics say.
    pub row_groups: Vec<RowGroup>,
}

/// Which columns a read fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// The feature columns.
    Features,
    /// The feature columns and the workload context (name, image, pod, namespace, label).
    FeaturesAndContext,
    /// Only what keys rows to workloads, and the context.
    Context,
}

/// One row group of a trace.
#[derive(Clone, Copy, Debug)]
pub struct RowGroup {
    /// Index in the file.
    pub index: usize,
    /// Rows.
    pub rows: u64,
    /// Min and max of the `time` column, from the statistics.
    pub time: Option<(i64, i64)>,
}

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> ScanError {
    ScanError::NotParquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads strings as dictionaries: Parquet already stores them so, and keeping the
/// dictionary lets the features resolve each distinct value once per batch.
fn dictionary_hint(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Min and max of the `time` column in one row group, when the statistics say.
fn time_range(
    meta: &ArrowReaderMetadata,
    rg: usize,
    time_col: Option<usize>,
) -> Option<(i64, i64)> {
    let col = meta.metadata().row_group(rg).column(time_col?);
    match col.statistics()? {
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

impl OpenTrace {
    /// Opens `path` and checks it is a needle trace this build reads.
    pub fn open(path: &Path) -> Result<OpenTrace, ScanError> {
        guard(path, None, || OpenTrace::open_inner(path))
    }

    fn open_inner(path: &Path) -> Result<OpenTrace, ScanError> {
        let (plain, object) = if super::object::is_url(path) {
            let object = super::object::Object::open(path)?;
            let mut reader = object.reader();
            let plain = super::object::block_on(
                path,
                ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()),
            )?
            .map_err(|e| parquet_err(path, e))?;
            (plain, Some(object))
        } else {
            let file = File::open(path).map_err(|source| ScanError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let plain = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
                .map_err(|e| parquet_err(path, e))?;
            (plain, None)
        };
        let kv = plain
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        let metadata =
            TraceMetadata::from_key_values(kv.iter().map(|k| (k.key.as_str(), k.value.as_deref())))
                .map_err(|source| match source {
                    MetadataError::NotATrace => ScanError::NotATrace {
                        path: path.to_path_buf(),
                    },
                    other => ScanError::Metadata {
                        path: path.to_path_buf(),
                        source: other,
                    },
                })?;
        let schema = plain.schema().clone();
        if schema.field_with_name(names::TIME).is_err()
            || schema.field_with_name(names::KIND).is_err()
        {
            return Err(ScanError::Schema {
                path: path.to_path_buf(),
                message: "no `time` or `kind` column".into(),
            });
        }
        let hint = Arc::new(dictionary_hint(&schema));
        let reader_meta = ArrowReaderMetadata::try_new(
            plain.metadata().clone(),
            ArrowReaderOptions::new().with_schema(hint),
        )
        .map_err(|e| ScanError::Schema {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mask = |names: &[&[&str]]| {
            let roots = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| names.iter().any(|set| set.contains(&f.name().as_str())))
                .map(|(i, _)| i);
            ProjectionMask::roots(reader_meta.metadata().file_metadata().schema_descr(), roots)
        };
        let projections = [
            mask(&[NEEDED_COLUMNS]),
            mask(&[NEEDED_COLUMNS, CONTEXT_COLUMNS]),
            mask(&[PROBE_COLUMNS, CONTEXT_COLUMNS]),
            mask(&[NEEDED_COLUMNS, crate::signatures::EXTRA_COLUMNS]),
            mask(&[
                NEEDED_COLUMNS,
                crate::signatures::EXTRA_COLUMNS,
                CONTEXT_COLUMNS,
            ]),
        ];
        let time_col = reader_meta
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == names::TIME);
        let row_groups = (0..reader_meta.metadata().num_row_groups())
            .map(|index| RowGroup {
                index,
                rows: reader_meta.metadata().row_group(index).num_rows().max(0) as u64,
                time: time_range(&reader_meta, index, time_col),
            })
            .collect();
        let host = if metadata.host.is_empty() {
            "unknown".to_string()
        } else {
            metadata.host.clone()
        };
        Ok(OpenTrace {
            path: path.to_path_buf(),
            object,
            metadata,
            host,
            reader_meta,
            projections,
            row_groups,
        })
    }

    /// The latest event time the file claims (row-group statistics, else its metadata).
    pub fn end_ns(&self) -> Option<i64> {
        let stats = self
            .row_groups
            .iter()
            .filter_map(|r| r.time.map(|t| t.1))
            .max();
        stats.or((self.metadata.end_time_ns > 0).then_some(self.metadata.end_time_ns))
    }

    /// Compressed bytes of the column chunks the map step reads from this file in `window`:
    /// the projected columns of the kept row groups (the first with the context columns, all
    /// with the signature columns when `signatures`), the same whether the file is local or an
    /// object — what projection and row-group pruning leave to fetch. The footer and the rare
    /// context probes of later row groups are not counted.
    pub fn bytes_read(&self, window: TimeWindow, signatures: bool) -> u64 {
        let extra = if signatures { 3 } else { 0 };
        self.row_groups_in(window)
            .enumerate()
            .map(|(n, r)| {
                let fetch = if n == 0 {
                    Fetch::FeaturesAndContext
                } else {
                    Fetch::Features
                };
                let mask = &self.projections[fetch as usize + extra];
                let rg = self.reader_meta.metadata().row_group(r.index);
                (0..rg.num_columns())
                    .filter(|&c| mask.leaf_included(c))
                    .map(|c| rg.column(c).byte_range().1)
                    .sum::<u64>()
            })
            .sum()
    }

    /// Row groups that may hold rows inside `window` (by their `time` statistics).
    pub fn row_groups_in(&self, window: TimeWindow) -> impl Iterator<Item = &RowGroup> {
        self.row_groups
            .iter()
            .filter(move |r| r.time.is_none_or(|(min, max)| window.overlaps(min, max)))
    }

    /// Reads the `fetch` columns of one row group into `task`.
    pub fn read_row_group(
        &self,
        rg: usize,
        fetch: Fetch,
        task: &mut Task,
    ) -> Result<(), ScanError> {
        guard(&self.path, Some(rg), || {
            self.read_row_group_inner(rg, fetch, task)
        })
    }

    fn read_row_group_inner(
        &self,
        rg: usize,
        fetch: Fetch,
        task: &mut Task,
    ) -> Result<(), ScanError> {
        let mask = self.projections[fetch as usize
            + if task.has_signatures() && fetch != Fetch::Context {
                3
            } else {
                0
            }]
        .clone();
        self.batches(rg, mask, None, &mut |batch| {
            task.add_batch(batch).map_err(|e| e.to_string())
        })
    }

    /// Reads the `mask` columns of row group `rg` from the file or the object, handing each
    /// record batch to `each`: only those column chunks are fetched, and with a `filter` only
    /// the rows it keeps are decoded beyond the filter's own columns.
    fn batches(
        &self,
        rg: usize,
        mask: ProjectionMask,
        filter: Option<RowFilter>,
        each: &mut dyn FnMut(&arrow::record_batch::RecordBatch) -> Result<(), String>,
    ) -> Result<(), ScanError> {
        let read_err = |e: &dyn std::fmt::Display| ScanError::Read {
            path: self.path.clone(),
            row_group: rg,
            message: e.to_string(),
        };
        if let Some(object) = &self.object {
            let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
                object.reader(),
                self.reader_meta.clone(),
            )
            .with_projection(mask)
            .with_row_groups(vec![rg])
            .with_batch_size(BATCH_ROWS);
            if let Some(filter) = filter {
                builder = builder.with_row_filter(filter);
            }
            let mut stream = builder.build().map_err(|e| read_err(&e))?;
            return super::object::block_on(&self.path, async {
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|e| read_err(&e))?;
                    each(&batch).map_err(|e| read_err(&e))?;
                }
                Ok(())
            })?;
        }
        let file = File::open(&self.path).map_err(|source| ScanError::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.reader_meta.clone())
                .with_projection(mask)
                .with_row_groups(vec![rg])
                .with_batch_size(BATCH_ROWS);
        if let Some(filter) = filter {
            builder = builder.with_row_filter(filter);
        }
        let reader = builder.build().map_err(|e| read_err(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| read_err(&e))?;
            each(&batch).map_err(|e| read_err(&e))?;
        }
        Ok(())
    }
}

impl OpenTrace {
    /// The projection of the named columns (those the file has), for [`OpenTrace::read_columns`]
    /// and for the predicates of a [`RowFilter`].
    pub fn mask(&self, columns: &[&str]) -> ProjectionMask {
        let roots = self
            .reader_meta
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| columns.contains(&f.name().as_str()))
            .map(|(i, _)| i);
        ProjectionMask::roots(
            self.reader_meta.metadata().file_metadata().schema_descr(),
            roots,
        )
    }

    /// Reads the named columns (those the file has) of row group `rg`, only the rows `filter`
    /// keeps when there is one, handing each record batch to `each`; for passes other than the
    /// feature map (syscall sequences, the report's evidence). Strings arrive as dictionaries
    /// (see [`crate::columns::StrCol`]).
    pub fn read_columns(
        &self,
        rg: usize,
        columns: &[&str],
        filter: Option<RowFilter>,
        each: &mut dyn FnMut(&arrow::record_batch::RecordBatch) -> Result<(), String>,
    ) -> Result<(), ScanError> {
        guard(&self.path, Some(rg), || {
            self.batches(rg, self.mask(columns), filter, each)
        })
    }
}

thread_local! {
    /// Whether this thread is inside [`guard`], whose panics are reported as errors.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays silent for panics [`guard`] turns into errors — the
/// user sees one line naming the file, not a panic message and a backtrace above it — and
/// reports every other panic as before.
fn quiet_guarded_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs a decoder step, turning a panic inside the Parquet/Arrow decoders (malformed input
/// they do not expect) into an error naming the file, so one bad file cannot abort the scan.
fn guard<T>(
    path: &Path,
    row_group: Option<usize>,
    f: impl FnOnce() -> Result<T, ScanError>,
) -> Result<T, ScanError> {
    quiet_guarded_panics();
    let outer = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        let message = format!("decoder failed: {what}");
        Err(match row_group {
            Some(row_group) => ScanError::Read {
                path: path.to_path_buf(),
                row_group,
                message,
            },
            None => ScanError::NotParquet {
                path: path.to_path_buf(),
                message,
            },
        })
    })
}
