//! Typed, tolerant access to trace columns: the one reading layer of the feature scan, the
//! signature engine's fields, the syscall sequences and the HTML report's evidence.
//!
//! Strings arrive dictionary-encoded when the scan could keep Parquet's dictionaries (it asks
//! for that), plain otherwise; a missing nullable column reads as all-null (older files); a
//! column of another type is cast when Arrow can, or is an error naming it.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, ListArray, MapArray,
    StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use needle_common::schema::names as n;

use crate::classify::hash_str;

/// Why a batch's columns cannot be read (as features, rule fields or sequences).
#[derive(Debug, thiserror::Error)]
pub enum ColumnError {
    /// A column the features cannot do without is absent.
    #[error("required column `{0}` is missing")]
    MissingColumn(&'static str),
    /// A column has a type that cannot be read as the schema's.
    #[error("column `{column}` has type {found}: {message}")]
    ColumnType {
        /// Column name.
        column: &'static str,
        /// Type found in the file.
        found: String,
        /// Why it cannot be used.
        message: String,
    },
}

/// Columns the feature pass reads; everything else is skipped by the scan's projection.
pub const NEEDED: &[&str] = &[
    n::TIME,
    n::KIND,
    n::TGID,
    n::PPID,
    n::COMM,
    n::CGROUP_ID,
    n::EXE_PATH,
    n::CONTAINER_ID,
    n::WORKLOAD,
    n::PATH,
    n::PATH2,
    n::FLAGS,
    n::MODE,
    n::RET,
    n::DST_ADDR,
    n::DST_PORT,
    n::BYTES,
    n::DNS_NAME,
    n::DNS_RCODE,
    n::SYSCALL,
    n::SYSCALL_COUNTS,
    n::COUNT,
];

/// Context columns: the same value on every row of a workload, so the scan reads them from one
/// row group per workload (the first of each file, plus probes), not from every row group.
pub const CONTEXT: &[&str] = &[n::CONTAINER_NAME, n::IMAGE, n::POD, n::NAMESPACE, n::LABEL];

/// What a context probe reads: enough to key rows to workloads, and the context.
pub const PROBE: &[&str] = &[n::TIME, n::KIND, n::CGROUP_ID, n::CONTAINER_ID, n::WORKLOAD];

/// A string column: dictionary-encoded, plain, or absent.
pub enum StrCol {
    /// Dictionary keys into `values`.
    Dict {
        /// Row → index into `values`.
        keys: Int32Array,
        /// The distinct strings.
        values: StringArray,
    },
    /// One string per row.
    Plain(StringArray),
    /// Column absent from the file: every row null.
    Missing,
}

impl StrCol {
    pub(crate) fn from_batch(
        batch: &RecordBatch,
        name: &'static str,
    ) -> Result<StrCol, ColumnError> {
        let Some(a) = batch.column_by_name(name) else {
            return Ok(StrCol::Missing);
        };
        if let Some(d) = a.as_dictionary_opt::<Int32Type>()
            && let Some(values) = d.values().as_string_opt::<i32>()
        {
            return Ok(StrCol::Dict {
                keys: d.keys().clone(),
                values: values.clone(),
            });
        }
        let plain = cast_to(a, &DataType::Utf8, name)?;
        Ok(StrCol::Plain(plain.as_string::<i32>().clone()))
    }

    /// The string of `row`, if not null.
    #[inline]
    pub fn get(&self, row: usize) -> Option<&str> {
        match self {
            StrCol::Dict { keys, values } => {
                if keys.is_null(row) {
                    return None;
                }
                let k = usize::try_from(keys.value(row)).ok()?;
                (k < values.len() && values.is_valid(k)).then(|| values.value(k))
            }
            StrCol::Plain(a) => a.is_valid(row).then(|| a.value(row)),
            StrCol::Missing => None,
        }
    }

    /// The [`hash_str`] of the string of `row`, computed once per dictionary entry and batch
    /// (`cache` has one slot per entry, 0 = not computed yet).
    #[inline]
    pub fn hash(&self, row: usize, cache: &mut [u64]) -> Option<u64> {
        match self {
            StrCol::Dict { keys, values } => {
                if keys.is_null(row) {
                    return None;
                }
                let k = usize::try_from(keys.value(row)).ok()?;
                if k >= values.len() || values.is_null(k) {
                    return None;
                }
                let slot = cache.get_mut(k)?;
                if *slot == 0 {
                    *slot = hash_str(values.value(k));
                }
                Some(*slot)
            }
            _ => self.get(row).map(hash_str),
        }
    }

    /// A hash cache for [`StrCol::hash`] over this batch.
    pub fn hash_cache(&self) -> Vec<u64> {
        vec![0; self.dict_len()]
    }

    /// The string of `row` as an `Arc<str>` made once per dictionary entry and batch
    /// (`cache` has one slot per entry, see [`StrCol::arc_cache`]), so rows that keep it share
    /// one allocation; plain columns allocate per row.
    pub fn arc(&self, row: usize, cache: &mut [Option<Arc<str>>]) -> Option<Arc<str>> {
        match self.key(row).and_then(|k| Some((k, cache.get_mut(k)?))) {
            Some((k, slot)) => {
                if slot.is_none() {
                    *slot = self.dict_value(k).map(Arc::from);
                }
                slot.clone()
            }
            None => self.get(row).map(Arc::from),
        }
    }

    /// An `Arc` cache for [`StrCol::arc`] over this batch.
    pub fn arc_cache(&self) -> Vec<Option<Arc<str>>> {
        vec![None; self.dict_len()]
    }

    /// The dictionary key of `row` (dictionary columns only, non-null rows only).
    #[inline]
    pub fn key(&self, row: usize) -> Option<usize> {
        match self {
            StrCol::Dict { keys, .. } if keys.is_valid(row) => {
                usize::try_from(keys.value(row)).ok()
            }
            _ => None,
        }
    }

    /// Number of dictionary entries (0 for plain columns).
    pub fn dict_len(&self) -> usize {
        match self {
            StrCol::Dict { values, .. } => values.len(),
            _ => 0,
        }
    }

    /// The dictionary entry `k`.
    pub fn dict_value(&self, k: usize) -> Option<&str> {
        match self {
            StrCol::Dict { values, .. } if k < values.len() && values.is_valid(k) => {
                Some(values.value(k))
            }
            _ => None,
        }
    }
}

fn cast_to(a: &ArrayRef, to: &DataType, name: &'static str) -> Result<ArrayRef, ColumnError> {
    if a.data_type() == to {
        return Ok(a.clone());
    }
    cast(a, to).map_err(|e| ColumnError::ColumnType {
        column: name,
        found: a.data_type().to_string(),
        message: e.to_string(),
    })
}

macro_rules! prim {
    ($fn:ident, $arr:ty, $dt:expr, $as:ident) => {
        pub(crate) fn $fn(
            batch: &RecordBatch,
            name: &'static str,
        ) -> Result<Option<$arr>, ColumnError> {
            match batch.column_by_name(name) {
                None => Ok(None),
                Some(a) => Ok(Some(cast_to(a, &$dt, name)?.$as().clone())),
            }
        }
    };
}

prim!(u32_col, UInt32Array, DataType::UInt32, as_primitive);
prim!(u64_col, UInt64Array, DataType::UInt64, as_primitive);
prim!(i64_col, Int64Array, DataType::Int64, as_primitive);
prim!(i32_col, Int32Array, DataType::Int32, as_primitive);

/// A list-of-strings column (`argv`, `ancestry`, `dns_answers`), or `None` when absent.
pub(crate) fn list_col(
    batch: &RecordBatch,
    name: &'static str,
) -> Result<Option<ListArray>, ColumnError> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(a) => match a.as_list_opt::<i32>() {
            Some(l) if l.values().as_string_opt::<i32>().is_some() => Ok(Some(l.clone())),
            _ => Err(ColumnError::ColumnType {
                column: name,
                found: a.data_type().to_string(),
                message: "expected a list of strings".into(),
            }),
        },
    }
}

/// A boolean column, or `None` when absent.
pub(crate) fn bool_col(
    batch: &RecordBatch,
    name: &'static str,
) -> Result<Option<BooleanArray>, ColumnError> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(a) => a
            .as_boolean_opt()
            .cloned()
            .map(Some)
            .ok_or_else(|| ColumnError::ColumnType {
                column: name,
                found: a.data_type().to_string(),
                message: "expected booleans".into(),
            }),
    }
}

/// The strings of `row` in a list column (none when null or absent).
pub fn list_at(l: &Option<ListArray>, row: usize) -> Vec<&str> {
    let Some(l) = l.as_ref().filter(|l| l.is_valid(row)) else {
        return Vec::new();
    };
    let Some(values) = l.values().as_string_opt::<i32>() else {
        return Vec::new();
    };
    let offsets = l.value_offsets();
    let (start, end) = (
        offsets[row].max(0) as usize,
        offsets[row + 1].max(0) as usize,
    );
    (start..end.min(values.len()))
        .filter(|&i| values.is_valid(i))
        .map(|i| values.value(i))
        .collect()
}

/// The workload a row belongs to: the `workload` capture wrote (a container id, or a host key
/// such as `host:sshd.service`, qualified here with the host name) or, in traces without it,
/// the container id; else a key for the host's cgroup (`host:<host>:cgroup-<id>`), since cgroup
/// ids are only unique per host. This is the only place that decides what a workload is.
pub fn workload_key(workload: Option<&str>, host: &str, cgroup_id: u64) -> String {
    match workload {
        // capture's host keys (`host`, `host:sshd.service`) are per machine: name the machine.
        Some("host") => format!("host:{host}"),
        Some(w) if w.starts_with("host:") => format!("host:{host}:{}", &w["host:".len()..]),
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("host:{host}:cgroup-{cgroup_id}"),
    }
}

/// The columns of one batch that the features read.
pub struct Columns {
    /// Rows in the batch.
    pub len: usize,
    pub(crate) time: TimestampNanosecondArray,
    pub(crate) kind: StrCol,
    pub(crate) tgid: Option<UInt32Array>,
    /// Thread id (the kernel's pid).
    pub(crate) pid: Option<UInt32Array>,
    pub(crate) ppid: Option<UInt32Array>,
    pub(crate) comm: StrCol,
    pub(crate) cgroup_id: Option<UInt64Array>,
    pub(crate) exe_path: StrCol,
    pub(crate) workload: StrCol,
    pub(crate) container_name: StrCol,
    pub(crate) image: StrCol,
    pub(crate) pod: StrCol,
    pub(crate) namespace: StrCol,
    pub(crate) label: StrCol,
    pub(crate) path: StrCol,
    pub(crate) path2: StrCol,
    pub(crate) flags: Option<UInt64Array>,
    pub(crate) mode: Option<UInt32Array>,
    pub(crate) ret: Option<Int64Array>,
    pub(crate) dst_addr: StrCol,
    pub(crate) dst_port: Option<UInt32Array>,
    pub(crate) bytes: Option<UInt64Array>,
    pub(crate) dns_name: StrCol,
    pub(crate) dns_rcode: Option<UInt32Array>,
    pub(crate) syscall: Option<UInt32Array>,
    pub(crate) syscall_counts: Option<MapArray>,
    /// `count`: on `open` rows, the opens a collapse window stands for (see [`Columns::opens`]).
    pub(crate) count: Option<UInt64Array>,
}

/// Value of a nullable primitive column at `row`.
#[inline]
pub fn opt<T: arrow::datatypes::ArrowPrimitiveType>(
    a: &Option<arrow::array::PrimitiveArray<T>>,
    row: usize,
) -> Option<T::Native> {
    a.as_ref().filter(|a| a.is_valid(row)).map(|a| a.value(row))
}

impl Columns {
    /// Typed views of `batch`'s columns; `time` and `kind` are required.
    pub fn new(batch: &RecordBatch) -> Result<Columns, ColumnError> {
        let time_type = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let time = batch
            .column_by_name(n::TIME)
            .ok_or(ColumnError::MissingColumn(n::TIME))?;
        let time = match time.as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>() {
            Some(t) => t.clone(),
            None => cast_to(time, &time_type, n::TIME)?.as_primitive().clone(),
        };
        let kind = StrCol::from_batch(batch, n::KIND)?;
        if matches!(kind, StrCol::Missing) {
            return Err(ColumnError::MissingColumn(n::KIND));
        }
        let syscall_counts = match batch.column_by_name(n::SYSCALL_COUNTS) {
            None => None,
            Some(a) => Some(
                needle_common::schema::count_map(a)
                    .cloned()
                    .ok_or_else(|| ColumnError::ColumnType {
                        column: n::SYSCALL_COUNTS,
                        found: a.data_type().to_string(),
                        message: "expected a map of syscall number to count".into(),
                    })?,
            ),
        };
        Ok(Columns {
            len: batch.num_rows(),
            time,
            kind,
            tgid: u32_col(batch, n::TGID)?,
            pid: u32_col(batch, n::PID)?,
            ppid: u32_col(batch, n::PPID)?,
            comm: StrCol::from_batch(batch, n::COMM)?,
            cgroup_id: u64_col(batch, n::CGROUP_ID)?,
            exe_path: StrCol::from_batch(batch, n::EXE_PATH)?,
            // capture writes the workload key itself (container id, or `host:<unit>`); older
            // traces and imported ones only have the container id.
            workload: match batch.column_by_name(n::WORKLOAD) {
                Some(w) if w.null_count() < w.len() => StrCol::from_batch(batch, n::WORKLOAD)?,
                _ => StrCol::from_batch(batch, n::CONTAINER_ID)?,
            },
            container_name: StrCol::from_batch(batch, n::CONTAINER_NAME)?,
            image: StrCol::from_batch(batch, n::IMAGE)?,
            pod: StrCol::from_batch(batch, n::POD)?,
            namespace: StrCol::from_batch(batch, n::NAMESPACE)?,
            label: StrCol::from_batch(batch, n::LABEL)?,
            path: StrCol::from_batch(batch, n::PATH)?,
            path2: StrCol::from_batch(batch, n::PATH2)?,
            flags: u64_col(batch, n::FLAGS)?,
            mode: u32_col(batch, n::MODE)?,
            ret: i64_col(batch, n::RET)?,
            dst_addr: StrCol::from_batch(batch, n::DST_ADDR)?,
            dst_port: u32_col(batch, n::DST_PORT)?,
            bytes: u64_col(batch, n::BYTES)?,
            dns_name: StrCol::from_batch(batch, n::DNS_NAME)?,
            dns_rcode: u32_col(batch, n::DNS_RCODE)?,
            syscall: u32_col(batch, n::SYSCALL)?,
            syscall_counts,
            count: u64_col(batch, n::COUNT)?,
        })
    }

    /// The workload `row` belongs to on `host` ([`workload_key`]'s rule).
    pub fn workload_key(&self, row: usize, host: &str) -> String {
        workload_key(
            self.workload.get(row),
            host,
            opt(&self.cgroup_id, row).unwrap_or(0),
        )
    }

    /// Events an `open`, `connect`, `sendto` or `accept` row stands for: 1, or the count of a
    /// row that closes a collapse window (capture counted that many repeats into it).
    #[inline]
    pub fn times(&self, row: usize) -> u64 {
        opt(&self.count, row).unwrap_or(1)
    }

    /// Events a row of `kind` stands for: [`Columns::times`] for the kinds capture collapses
    /// ([`needle_common::abi::EventKind::collapses`]), 1 for the others.
    #[inline]
    pub fn events(&self, row: usize, kind: needle_common::abi::EventKind) -> u64 {
        if kind.collapses() { self.times(row) } else { 1 }
    }

    /// The `(syscall, count)` pairs of a `syscall_profile` row.
    pub fn profile(&self, row: usize) -> impl Iterator<Item = (u32, u64)> + '_ {
        let entries = self
            .syscall_counts
            .as_ref()
            .filter(|m| m.is_valid(row))
            .map(|m| {
                let start = m.value_offsets()[row] as usize;
                let end = m.value_offsets()[row + 1] as usize;
                (m, start, end)
            });
        let (keys, values) = match entries {
            Some((m, _, _)) => (
                m.keys().as_primitive_opt::<arrow::datatypes::UInt32Type>(),
                m.values()
                    .as_primitive_opt::<arrow::datatypes::UInt64Type>(),
            ),
            None => (None, None),
        };
        let range = entries.map(|(_, s, e)| s..e).unwrap_or(0..0);
        range.filter_map(move |i| {
            let (k, v) = (keys?, values?);
            (i < k.len() && k.is_valid(i) && v.is_valid(i)).then(|| (k.value(i), v.value(i)))
        })
    }
}
