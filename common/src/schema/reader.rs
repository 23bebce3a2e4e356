//! Rows of a trace batch back into typed [`Event`]s.
//!
//! Tolerant of older files: a nullable column that is missing reads as null. A required
//! column that is missing, or a column of the wrong type, is an error naming the column.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Int32Array, Int64Array, ListArray, StringArray,
    TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow::record_batch::RecordBatch;

use super::event::{Container, Detail, Event, Process};
use super::names as n;
use crate::abi::EventKind;

/// Why a batch could not be read as trace events.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A column every trace has is absent.
    #[error("required column `{0}` is missing")]
    MissingColumn(&'static str),
    /// A column has another Arrow type than the schema says.
    #[error("column `{column}` has type {found}, expected {expected}")]
    WrongType {
        /// Column name.
        column: &'static str,
        /// Type found in the file.
        found: String,
        /// Type the schema declares.
        expected: String,
    },
    /// A row's `kind` is not a kind this build knows.
    #[error("row {row}: unknown event kind `{kind}`")]
    UnknownKind {
        /// Row index in the batch.
        row: usize,
        /// The kind found.
        kind: String,
    },
    /// A required value is null.
    #[error("row {row}: column `{column}` is null")]
    NullValue {
        /// Row index in the batch.
        row: usize,
        /// Column name.
        column: &'static str,
    },
}

struct Cols<'a> {
    batch: &'a RecordBatch,
}

impl<'a> Cols<'a> {
    fn get(&self, name: &'static str) -> Option<&'a dyn Array> {
        self.batch.column_by_name(name).map(|a| a.as_ref())
    }

    fn typed<T: 'static>(&self, name: &'static str, cast: impl Fn(&'a dyn Array) -> Option<&'a T>) -> Result<Option<&'a T>, ReadError> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => cast(a).map(Some).ok_or_else(|| ReadError::WrongType {
                column: name,
                found: a.data_type().to_string(),
                expected: super::column(name).map(|c| c.ty.data_type().to_string()).unwrap_or_default(),
            }),
        }
    }

    fn required<T: 'static>(&self, name: &'static str, cast: impl Fn(&'a dyn Array) -> Option<&'a T>) -> Result<&'a T, ReadError> {
        self.typed(name, cast)?.ok_or(ReadError::MissingColumn(name))
    }
}

fn u32s(a: &dyn Array) -> Option<&UInt32Array> {
    a.as_primitive_opt::<UInt32Type>()
}
fn u64s(a: &dyn Array) -> Option<&UInt64Array> {
    a.as_primitive_opt::<UInt64Type>()
}
fn i32s(a: &dyn Array) -> Option<&Int32Array> {
    a.as_primitive_opt::<Int32Type>()
}
fn i64s(a: &dyn Array) -> Option<&Int64Array> {
    a.as_primitive_opt::<Int64Type>()
}
fn strs(a: &dyn Array) -> Option<&StringArray> {
    a.as_string_opt::<i32>()
}
fn times(a: &dyn Array) -> Option<&TimestampNanosecondArray> {
    a.as_primitive_opt::<TimestampNanosecondType>()
}
fn bools(a: &dyn Array) -> Option<&BooleanArray> {
    a.as_boolean_opt()
}
fn lists(a: &dyn Array) -> Option<&ListArray> {
    a.as_list_opt::<i32>()
}

fn opt_str(a: Option<&StringArray>, row: usize) -> Option<Arc<str>> {
    a.filter(|a| a.is_valid(row)).map(|a| Arc::from(a.value(row)))
}

fn opt<T: arrow::datatypes::ArrowPrimitiveType>(
    a: Option<&arrow::array::PrimitiveArray<T>>,
    row: usize,
) -> Option<T::Native> {
    a.filter(|a| a.is_valid(row)).map(|a| a.value(row))
}

fn req<T: arrow::datatypes::ArrowPrimitiveType>(
    a: &arrow::array::PrimitiveArray<T>,
    row: usize,
    column: &'static str,
) -> Result<T::Native, ReadError> {
    if a.is_valid(row) { Ok(a.value(row)) } else { Err(ReadError::NullValue { row, column }) }
}

/// Decodes every row of `batch` into an [`Event`].
pub fn events_from_batch(batch: &RecordBatch) -> Result<Vec<Event>, ReadError> {
    let c = Cols { batch };
    let time = c.required(n::TIME, times)?;
    let ktime = c.required(n::KTIME_NS, u64s)?;
    let kind = c.required(n::KIND, strs)?;
    let pid = c.required(n::PID, u32s)?;
    let tgid = c.required(n::TGID, u32s)?;
    let ppid = c.required(n::PPID, u32s)?;
    let uid = c.required(n::UID, u32s)?;
    let gid = c.required(n::GID, u32s)?;
    let comm = c.required(n::COMM, strs)?;
    let cgroup = c.required(n::CGROUP_ID, u64s)?;
    let exe_path = c.typed(n::EXE_PATH, strs)?;
    let exe_sha = c.typed(n::EXE_SHA256, strs)?;
    let cid = c.typed(n::CONTAINER_ID, strs)?;
    let cname = c.typed(n::CONTAINER_NAME, strs)?;
    let image = c.typed(n::IMAGE, strs)?;
    let runtime = c.typed(n::RUNTIME, strs)?;
    let pod = c.typed(n::POD, strs)?;
    let ns = c.typed(n::NAMESPACE, strs)?;
    let labels = c.typed(n::LABELS, strs)?;
    let argv = c.typed(n::ARGV, lists)?;
    let truncated = c.typed(n::TRUNCATED, bools)?;
    let exit_code = c.typed(n::EXIT_CODE, i32s)?;
    let signal = c.typed(n::SIGNAL, i32s)?;
    let syscall = c.typed(n::SYSCALL, u32s)?;
    let ret = c.typed(n::RET, i64s)?;
    let label = c.typed(n::LABEL, strs)?;

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let kind_name = if kind.is_valid(row) { kind.value(row) } else { "" };
        let detail = match EventKind::from_name(kind_name) {
            Some(EventKind::Exec) => Detail::Exec {
                argv: argv
                    .filter(|a| a.is_valid(row))
                    .map(|a| {
                        let v = a.value(row);
                        let s = v.as_string::<i32>();
                        (0..s.len()).map(|i| s.value(i).to_string()).collect()
                    })
                    .unwrap_or_default(),
                truncated: truncated.filter(|a| a.is_valid(row)).map(|a| a.value(row)).unwrap_or(false),
            },
            Some(EventKind::Fork) => Detail::Fork,
            Some(EventKind::Exit) => Detail::Exit { code: opt(exit_code, row), signal: opt(signal, row) },
            Some(EventKind::Syscall) => Detail::Syscall {
                nr: syscall
                    .filter(|a| a.is_valid(row))
                    .map(|a| a.value(row))
                    .ok_or(ReadError::NullValue { row, column: n::SYSCALL })?,
                ret: opt(ret, row),
            },
            None => return Err(ReadError::UnknownKind { row, kind: kind_name.to_string() }),
        };
        let container = opt_str(cid, row).map(|id| {
            Arc::new(Container {
                id,
                name: opt_str(cname, row),
                image: opt_str(image, row),
                runtime: opt_str(runtime, row),
                pod: opt_str(pod, row),
                namespace: opt_str(ns, row),
                labels: opt_str(labels, row),
            })
        });
        out.push(Event {
            time_ns: req(time, row, n::TIME)?,
            ktime_ns: req(ktime, row, n::KTIME_NS)?,
            process: Process {
                pid: req(pid, row, n::PID)?,
                tgid: req(tgid, row, n::TGID)?,
                ppid: req(ppid, row, n::PPID)?,
                uid: req(uid, row, n::UID)?,
                gid: req(gid, row, n::GID)?,
                comm: Arc::from(if comm.is_valid(row) { comm.value(row) } else { "" }),
                cgroup_id: req(cgroup, row, n::CGROUP_ID)?,
            },
            exe_path: opt_str(exe_path, row),
            exe_sha256: opt_str(exe_sha, row),
            container,
            label: opt_str(label, row),
            detail,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{arrow_schema, writer_properties, TraceBatchBuilder, TraceMetadata, WriteOptions};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;

    fn sample_events() -> Vec<Event> {
        let process = Process { pid: 10, tgid: 10, ppid: 1, uid: 0, gid: 0, comm: "sh".into(), cgroup_id: 77 };
        let container = Arc::new(Container {
            id: "ab".repeat(32).into(),
            name: Some("web".into()),
            image: Some("nginx:1".into()),
            runtime: Some("containerd".into()),
            pod: Some("web-0".into()),
            namespace: Some("prod".into()),
            labels: Some("{\"app\":\"web\"}".into()),
        });
        let base = Event {
            time_ns: 1_700_000_000_000_000_000,
            ktime_ns: 5,
            process,
            exe_path: Some("/bin/sh".into()),
            exe_sha256: None,
            container: Some(container),
            label: None,
            detail: Detail::Fork,
        };
        vec![
            Event { ktime_ns: 9, detail: Detail::Exec { argv: vec!["sh".into(), "-c".into(), "exit 7".into()], truncated: false }, ..base.clone() },
            Event { ktime_ns: 3, container: None, exe_path: None, ..base.clone() },
            Event { ktime_ns: 12, detail: Detail::Exit { code: Some(7), signal: None }, ..base.clone() },
            Event { ktime_ns: 13, label: Some("attack".into()), detail: Detail::Syscall { nr: 59, ret: Some(-2) }, ..base },
        ]
    }

    #[test]
    fn events_survive_a_parquet_round_trip_sorted_by_time() {
        let events = sample_events();
        let mut b = TraceBatchBuilder::new("node-1");
        events.iter().for_each(|e| b.push(e));
        assert_eq!(b.len(), 4);
        let batch = b.finish_sorted().unwrap();
        assert!(b.is_empty());

        let meta = TraceMetadata { schema_version: 1, host: "node-1".into(), ..Default::default() };
        let props = writer_properties(&WriteOptions::default(), meta.to_key_values()).unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, arrow_schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();

        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf)).unwrap();
        let kv = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
        let back_meta = TraceMetadata::from_key_values(kv.iter().map(|k| (k.key.as_str(), k.value.as_deref()))).unwrap();
        assert_eq!(back_meta.host, "node-1");
        let mut rows = Vec::new();
        for batch in reader.build().unwrap() {
            rows.extend(events_from_batch(&batch.unwrap()).unwrap());
        }
        let mut expected = events;
        expected.sort_by_key(|e| e.ktime_ns);
        assert_eq!(rows, expected);
    }

    #[test]
    fn missing_optional_columns_read_as_null_and_missing_required_ones_fail() {
        let mut b = TraceBatchBuilder::new("h");
        sample_events().iter().for_each(|e| b.push(e));
        let batch = b.finish();
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| arrow_schema().field(i).name() != "labels")
            .collect();
        let older = batch.project(&keep).unwrap();
        let rows = events_from_batch(&older).unwrap();
        assert_eq!(rows[0].container.as_ref().unwrap().labels, None);

        let no_pid: Vec<usize> = (0..batch.num_columns()).filter(|&i| arrow_schema().field(i).name() != "pid").collect();
        let err = events_from_batch(&batch.project(&no_pid).unwrap()).unwrap_err();
        assert!(matches!(err, ReadError::MissingColumn("pid")), "{err}");
    }
}
