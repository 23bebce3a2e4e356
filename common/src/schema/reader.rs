//! Rows of a trace batch back into typed [`Event`]s.
//!
//! Tolerant of older files: a nullable column that is missing reads as null. A required
//! column that is missing, or a column of the wrong type, is an error naming the column.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Int32Array, Int64Array, ListArray, MapArray, StringArray,
    TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow::record_batch::RecordBatch;

use super::event::{
    Container, Detail, Dns, Event, ExecState, Fd, FdType, FilePath, Net, PathSource, Process,
    ProcessContext,
};
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

    fn typed<T: 'static>(
        &self,
        name: &'static str,
        cast: impl Fn(&'a dyn Array) -> Option<&'a T>,
    ) -> Result<Option<&'a T>, ReadError> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => cast(a).map(Some).ok_or_else(|| ReadError::WrongType {
                column: name,
                found: a.data_type().to_string(),
                expected: super::column(name)
                    .map(|c| c.ty.data_type().to_string())
                    .unwrap_or_default(),
            }),
        }
    }

    fn required<T: 'static>(
        &self,
        name: &'static str,
        cast: impl Fn(&'a dyn Array) -> Option<&'a T>,
    ) -> Result<&'a T, ReadError> {
        self.typed(name, cast)?
            .ok_or(ReadError::MissingColumn(name))
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
/// A list of strings (a list of anything else is the wrong type, not a panic later).
fn lists(a: &dyn Array) -> Option<&ListArray> {
    a.as_list_opt::<i32>()
        .filter(|l| l.values().as_string_opt::<i32>().is_some())
}

fn req<T: arrow::datatypes::ArrowPrimitiveType>(
    a: &arrow::array::PrimitiveArray<T>,
    row: usize,
    column: &'static str,
) -> Result<T::Native, ReadError> {
    if a.is_valid(row) {
        Ok(a.value(row))
    } else {
        Err(ReadError::NullValue { row, column })
    }
}

/// `a` as the `syscall_counts` map (`u32` syscall number → `u64` count); None for any other
/// type, inner types included, so a reader never meets a key or value it cannot take.
pub fn count_map(a: &dyn Array) -> Option<&MapArray> {
    a.as_map_opt().filter(|m| {
        m.keys().as_primitive_opt::<UInt32Type>().is_some()
            && m.values().as_primitive_opt::<UInt64Type>().is_some()
    })
}

/// Typed access to one batch's columns; missing nullable columns read as null.
struct Row<'a> {
    row: usize,
    s: &'a std::collections::HashMap<&'static str, &'a StringArray>,
    u32: &'a std::collections::HashMap<&'static str, &'a UInt32Array>,
    u64: &'a std::collections::HashMap<&'static str, &'a UInt64Array>,
    i64: &'a std::collections::HashMap<&'static str, &'a Int64Array>,
    i32: &'a std::collections::HashMap<&'static str, &'a Int32Array>,
    lists: &'a std::collections::HashMap<&'static str, &'a ListArray>,
    truncated: Option<&'a BooleanArray>,
}

impl Row<'_> {
    fn str(&self, c: &'static str) -> Option<String> {
        self.s
            .get(c)
            .filter(|a| a.is_valid(self.row))
            .map(|a| a.value(self.row).to_string())
    }
    fn u32(&self, c: &'static str) -> Option<u32> {
        self.u32
            .get(c)
            .filter(|a| a.is_valid(self.row))
            .map(|a| a.value(self.row))
    }
    fn u64(&self, c: &'static str) -> Option<u64> {
        self.u64
            .get(c)
            .filter(|a| a.is_valid(self.row))
            .map(|a| a.value(self.row))
    }
    fn i32(&self, c: &'static str) -> Option<i32> {
        self.i32
            .get(c)
            .filter(|a| a.is_valid(self.row))
            .map(|a| a.value(self.row))
    }
    fn i64(&self, c: &'static str) -> Option<i64> {
        self.i64
            .get(c)
            .filter(|a| a.is_valid(self.row))
            .map(|a| a.value(self.row))
    }
    fn ret(&self) -> Option<i64> {
        self.i64(n::RET)
    }
    fn list(&self, c: &'static str) -> Option<Vec<String>> {
        self.lists.get(c).filter(|a| a.is_valid(self.row)).map(|a| {
            let v = a.value(self.row);
            // `lists` admitted only lists of strings.
            v.as_string_opt::<i32>()
                .map(|s| (0..s.len()).map(|i| s.value(i).to_string()).collect())
                .unwrap_or_default()
        })
    }
    fn file(&self) -> FilePath {
        FilePath {
            path: self.str(n::PATH).unwrap_or_default(),
            source: self
                .str(n::PATH_SOURCE)
                .and_then(|s| PathSource::from_name(&s))
                .unwrap_or(PathSource::UserAtExit),
        }
    }
    fn net(&self) -> Net {
        Net {
            family: self.str(n::FAMILY).unwrap_or_default().into(),
            protocol: self.str(n::PROTOCOL).unwrap_or_default().into(),
            src_addr: self.str(n::SRC_ADDR),
            src_port: self.u32(n::SRC_PORT).and_then(|p| u16::try_from(p).ok()),
            dst_addr: self.str(n::DST_ADDR),
            dst_port: self.u32(n::DST_PORT).and_then(|p| u16::try_from(p).ok()),
            bytes: self.u64(n::BYTES),
            ret: self.ret(),
            count: self.u64(n::COUNT),
        }
    }
    /// fd `i` of an exec row; `None` when its type column is null (not recorded).
    fn fd(&self, i: usize) -> Option<Fd> {
        let names = &n::STDIO[i];
        let ty = self.str(names.ty)?;
        Some(Fd {
            kind: FdType::from_name(&ty).unwrap_or(FdType::Other),
            inode: self.u64(names.inode),
            path: self.str(names.path),
            addr: self.str(names.addr),
            port: self.u32(names.port).and_then(|p| u16::try_from(p).ok()),
        })
    }
    fn exec_state(&self) -> Option<Box<ExecState>> {
        let state = ExecState {
            stdio: [self.fd(0), self.fd(1), self.fd(2)],
            cap_effective: self.u64(n::CAP_EFFECTIVE),
            cap_permitted: self.u64(n::CAP_PERMITTED),
            cwd: self.str(n::CWD),
        };
        let recorded = state.stdio.iter().any(Option::is_some)
            || state.cap_effective.is_some()
            || state.cap_permitted.is_some()
            || state.cwd.is_some();
        recorded.then(|| Box::new(state))
    }
    fn dns(&self) -> Dns {
        let mut net = self.net();
        net.ret = None;
        Dns {
            name: self.str(n::DNS_NAME).unwrap_or_default(),
            qtype: self
                .u32(n::DNS_TYPE)
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(0),
            id: self
                .u32(n::DNS_ID)
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(0),
            rcode: self.u32(n::DNS_RCODE).and_then(|v| u8::try_from(v).ok()),
            answers: self.list(n::DNS_ANSWERS).unwrap_or_default(),
            net,
        }
    }
}

fn detail(kind: EventKind, r: &Row<'_>, counts: Option<&MapArray>) -> Result<Detail, ReadError> {
    use EventKind as K;
    let ret = || r.ret().unwrap_or(0);
    let flags = || r.u64(n::FLAGS).unwrap_or(0);
    Ok(match kind {
        K::Exec => Detail::Exec {
            argv: r.list(n::ARGV).unwrap_or_default(),
            truncated: r
                .truncated
                .filter(|a| a.is_valid(r.row))
                .is_some_and(|a| a.value(r.row)),
            state: r.exec_state(),
        },
        K::Fork => Detail::Fork,
        K::Exit => Detail::Exit {
            code: r.i32(n::EXIT_CODE),
            signal: r.i32(n::SIGNAL),
        },
        K::Open => Detail::Open {
            file: r.file(),
            flags: flags(),
            mode: r.u32(n::MODE).unwrap_or(0),
            ret: ret(),
            count: r.u64(n::COUNT),
        },
        K::Unlink => Detail::Unlink {
            file: r.file(),
            ret: ret(),
        },
        K::Rename => Detail::Rename {
            file: r.file(),
            new_path: r.str(n::PATH2).unwrap_or_default(),
            ret: ret(),
        },
        K::Chmod => Detail::Chmod {
            file: r.file(),
            mode: r.u32(n::MODE).unwrap_or(0),
            ret: ret(),
        },
        K::Chown => Detail::Chown {
            file: r.file(),
            uid: r.u32(n::TARGET_UID).unwrap_or(u32::MAX),
            gid: r.u32(n::TARGET_GID).unwrap_or(u32::MAX),
            ret: ret(),
        },
        K::MemfdCreate => Detail::MemfdCreate {
            name: r.str(n::PATH).unwrap_or_default(),
            flags: flags(),
            ret: ret(),
        },
        K::MmapExec => Detail::MmapExec {
            file: r.file(),
            prot: flags(),
        },
        K::Utimes => Detail::Utimes {
            file: r.file(),
            atime_ns: r.i64(n::ATIME_NS),
            mtime_ns: r.i64(n::MTIME_NS),
            flags: flags(),
            ret: ret(),
        },
        K::Truncate => Detail::Truncate {
            file: r.file(),
            length: r.u64(n::LENGTH).unwrap_or(0),
            ret: ret(),
        },
        K::Link => Detail::Link {
            file: r.file(),
            new_path: r.str(n::PATH2).unwrap_or_default(),
            ret: ret(),
        },
        K::Symlink => Detail::Symlink {
            file: r.file(),
            new_path: r.str(n::PATH2).unwrap_or_default(),
            ret: ret(),
        },
        K::Mkdir => Detail::Mkdir {
            file: r.file(),
            mode: r.u32(n::MODE).unwrap_or(0),
            ret: ret(),
        },
        K::Socket => Detail::Socket(Box::new(r.net())),
        K::Dup => Detail::Dup(Box::new(r.net())),
        K::Connect => Detail::Connect(Box::new(r.net())),
        K::Accept => Detail::Accept(Box::new(r.net())),
        K::Bind => Detail::Bind(Box::new(r.net())),
        K::Listen => Detail::Listen(Box::new(r.net())),
        K::SendTo => Detail::SendTo(Box::new(r.net())),
        K::DnsQuery => Detail::DnsQuery(Box::new(r.dns())),
        K::DnsResponse => Detail::DnsResponse(Box::new(r.dns())),
        K::Ptrace => Detail::Ptrace {
            request: r.u32(n::OP).unwrap_or(0),
            target_pid: r.u32(n::TARGET_PID).unwrap_or(0),
            ret: ret(),
        },
        K::ProcessVmWritev => Detail::ProcessVmWritev {
            target_pid: r.u32(n::TARGET_PID).unwrap_or(0),
            ret: ret(),
        },
        K::ProcMemWrite => Detail::ProcMemWrite {
            file: r.file(),
            target_pid: r.u32(n::TARGET_PID).unwrap_or(0),
            ret: ret(),
        },
        K::ModuleLoad => Detail::ModuleLoad {
            file: r.str(n::PATH).map(|_| r.file()),
            ret: ret(),
        },
        K::SetId => Detail::SetId {
            uid: r.u32(n::TARGET_UID),
            gid: r.u32(n::TARGET_GID),
            nr: r.u32(n::SYSCALL).unwrap_or(0),
            ret: ret(),
        },
        K::Capset => Detail::Capset {
            effective: flags(),
            ret: ret(),
        },
        K::Userfaultfd => Detail::Userfaultfd {
            flags: flags(),
            ret: ret(),
        },
        K::Mount => Detail::Mount {
            source: r.str(n::PATH).unwrap_or_default(),
            target: r.str(n::PATH2).unwrap_or_default(),
            fstype: r.str(n::FSTYPE).unwrap_or_default(),
            flags: flags(),
            ret: ret(),
        },
        K::Unshare => Detail::Unshare {
            flags: flags(),
            ret: ret(),
        },
        K::Setns => Detail::Setns {
            flags: flags(),
            ret: ret(),
        },
        K::Bpf => Detail::Bpf {
            cmd: r.u32(n::OP).unwrap_or(0),
            ret: ret(),
        },
        K::Keyctl => Detail::Keyctl {
            op: r.u32(n::OP).unwrap_or(0),
            ret: ret(),
        },
        K::SyscallProfile => Detail::SyscallProfile {
            counts: counts
                .filter(|m| m.is_valid(r.row))
                .map(|m| {
                    let entries = m.value(r.row);
                    // `count_map` admitted only u32 → u64 maps.
                    let keys = entries.column(0).as_primitive_opt::<UInt32Type>();
                    let values = entries.column(1).as_primitive_opt::<UInt64Type>();
                    keys.zip(values)
                        .map(|(keys, values)| {
                            keys.iter()
                                .zip(values.iter())
                                .map(|(k, v)| (k.unwrap_or(0), v.unwrap_or(0)))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
        },
        K::Syscall => Detail::Syscall {
            nr: r.u32(n::SYSCALL).ok_or(ReadError::NullValue {
                row: r.row,
                column: n::SYSCALL,
            })?,
            ret: r.ret(),
        },
        K::ContainerStart => Detail::ContainerStart,
        K::ContainerStop => Detail::ContainerStop,
        K::Lost => Detail::Lost {
            count: r.u64(n::COUNT).unwrap_or(0),
        },
    })
}

/// Decodes every row of `batch` into an [`Event`].
pub fn events_from_batch(batch: &RecordBatch) -> Result<Vec<Event>, ReadError> {
    use std::collections::HashMap;
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

    let mut s = HashMap::new();
    let mut u32m = HashMap::new();
    let mut u64m = HashMap::new();
    let mut i32m = HashMap::new();
    let mut i64m = HashMap::new();
    let mut lists_m = HashMap::new();
    for col in super::COLUMNS {
        use super::ColumnType as T;
        match col.ty {
            T::Str => {
                if let Some(a) = c.typed(col.name, strs)? {
                    s.insert(col.name, a);
                }
            }
            T::U32 => {
                if let Some(a) = c.typed(col.name, u32s)? {
                    u32m.insert(col.name, a);
                }
            }
            T::U64 => {
                if let Some(a) = c.typed(col.name, u64s)? {
                    u64m.insert(col.name, a);
                }
            }
            T::I32 => {
                if let Some(a) = c.typed(col.name, i32s)? {
                    i32m.insert(col.name, a);
                }
            }
            T::I64 => {
                if let Some(a) = c.typed(col.name, i64s)? {
                    i64m.insert(col.name, a);
                }
            }
            T::StrList => {
                if let Some(a) = c.typed(col.name, lists)? {
                    lists_m.insert(col.name, a);
                }
            }
            T::TimestampNs | T::Bool | T::CountMap => {}
        }
    }
    let truncated = c.typed(n::TRUNCATED, bools)?;
    let exe_new = c.typed(n::EXE_NEW, bools)?;
    let exe_writable = c.typed(n::EXE_WRITABLE, bools)?;
    let exe_fileless = c.typed(n::EXE_FILELESS, bools)?;
    let flag =
        |a: Option<&BooleanArray>, row: usize| a.filter(|a| a.is_valid(row)).map(|a| a.value(row));
    let counts = c.typed(n::SYSCALL_COUNTS, count_map)?;

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let r = Row {
            row,
            s: &s,
            u32: &u32m,
            u64: &u64m,
            i64: &i64m,
            i32: &i32m,
            lists: &lists_m,
            truncated,
        };
        let kind_name = if kind.is_valid(row) {
            kind.value(row)
        } else {
            ""
        };
        let Some(k) = EventKind::from_name(kind_name) else {
            return Err(ReadError::UnknownKind {
                row,
                kind: kind_name.to_string(),
            });
        };
        let detail = detail(k, &r, counts)?;
        let container = r.str(n::CONTAINER_ID).map(|id| {
            Arc::new(Container {
                id: id.into(),
                name: r.str(n::CONTAINER_NAME).map(Into::into),
                image: r.str(n::IMAGE).map(Into::into),
                image_digest: r.str(n::IMAGE_DIGEST).map(Into::into),
                runtime: r.str(n::RUNTIME).map(Into::into),
                pod: r.str(n::POD).map(Into::into),
                namespace: r.str(n::NAMESPACE).map(Into::into),
                labels: r.str(n::LABELS).map(Into::into),
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
                comm: Arc::from(if comm.is_valid(row) {
                    comm.value(row)
                } else {
                    ""
                }),
                cgroup_id: req(cgroup, row, n::CGROUP_ID)?,
            },
            workload: r.str(n::WORKLOAD).map(Into::into),
            context: r.str(n::PROCESS_KEY).map(|key| {
                Arc::new(ProcessContext {
                    key: key.into(),
                    parent_key: r.str(n::PARENT_KEY).map(Into::into),
                    ancestry: r
                        .list(n::ANCESTRY)
                        .unwrap_or_default()
                        .into_iter()
                        .map(Into::into)
                        .collect(),
                    user: r.str(n::USER).map(Into::into),
                    exe_new: flag(exe_new, row),
                    exe_writable: flag(exe_writable, row),
                    exe_fileless: flag(exe_fileless, row),
                })
            }),
            exe_path: r.str(n::EXE_PATH).map(Into::into),
            exe_sha256: r.str(n::EXE_SHA256).map(Into::into),
            container,
            label: r.str(n::LABEL).map(Into::into),
            detail,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{
        TraceBatchBuilder, TraceMetadata, WriteOptions, arrow_schema, writer_properties,
    };
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn sample_events() -> Vec<Event> {
        let process = Process {
            pid: 10,
            tgid: 10,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: "sh".into(),
            cgroup_id: 77,
        };
        let container = Arc::new(Container {
            id: "ab".repeat(32).into(),
            name: Some("web".into()),
            image: Some("nginx:1".into()),
            image_digest: Some(format!("sha256:{}", "0f".repeat(32)).into()),
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
            workload: Some("ab".repeat(32).into()),
            context: Some(Arc::new(ProcessContext {
                key: "10@123".into(),
                parent_key: Some("1@2".into()),
                ancestry: vec!["/usr/bin/containerd-shim".into()],
                user: Some("root".into()),
                exe_new: Some(false),
                exe_writable: Some(true),
                exe_fileless: None,
            })),
            label: None,
            detail: Detail::Fork,
        };
        vec![
            Event {
                ktime_ns: 9,
                detail: Detail::Exec {
                    argv: vec!["sh".into(), "-c".into(), "exit 7".into()],
                    truncated: false,
                    state: None,
                },
                ..base.clone()
            },
            Event {
                ktime_ns: 3,
                container: None,
                exe_path: None,
                ..base.clone()
            },
            Event {
                ktime_ns: 12,
                detail: Detail::Exit {
                    code: Some(7),
                    signal: None,
                },
                ..base.clone()
            },
            Event {
                ktime_ns: 13,
                label: Some("attack".into()),
                detail: Detail::Syscall {
                    nr: 59,
                    ret: Some(-2),
                },
                ..base
            },
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

        let meta = TraceMetadata {
            schema_version: 1,
            host: "node-1".into(),
            ..Default::default()
        };
        let props = writer_properties(&WriteOptions::default(), meta.to_key_values()).unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, arrow_schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();

        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf)).unwrap();
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        let back_meta =
            TraceMetadata::from_key_values(kv.iter().map(|k| (k.key.as_str(), k.value.as_deref())))
                .unwrap();
        assert_eq!(back_meta.host, "node-1");
        let mut rows = Vec::new();
        for batch in reader.build().unwrap() {
            rows.extend(events_from_batch(&batch.unwrap()).unwrap());
        }
        let mut expected = events;
        expected.sort_by_key(|e| e.ktime_ns);
        assert_eq!(rows, expected);
    }

    fn every_kind() -> Vec<Detail> {
        let file = FilePath {
            path: "/tmp/x".into(),
            source: PathSource::Kernel,
        };
        let net = Net {
            family: "inet".into(),
            protocol: "tcp".into(),
            src_addr: Some("127.0.0.1".into()),
            src_port: Some(40000),
            dst_addr: Some("127.0.0.2".into()),
            dst_port: Some(3333),
            bytes: Some(12),
            ret: Some(0),
            count: Some(4),
        };
        let dns = Dns {
            name: "pool.example".into(),
            qtype: 1,
            id: 7,
            rcode: Some(3),
            answers: vec!["127.0.0.9".into()],
            net: Net {
                ret: None,
                count: None,
                ..net.clone()
            },
        };
        vec![
            Detail::Exec {
                argv: vec!["a".into()],
                truncated: true,
                state: None,
            },
            Detail::Exec {
                argv: vec!["sh".into(), "-i".into()],
                truncated: false,
                state: Some(Box::new(ExecState {
                    stdio: [
                        Some(Fd {
                            kind: FdType::Tcp,
                            inode: Some(881),
                            path: None,
                            addr: Some("10.0.0.1".into()),
                            port: Some(4444),
                        }),
                        Some(Fd {
                            kind: FdType::Pipe,
                            inode: Some(77),
                            path: None,
                            addr: None,
                            port: None,
                        }),
                        Some(Fd {
                            kind: FdType::File,
                            inode: Some(12),
                            path: Some("/var/log/x".into()),
                            addr: None,
                            port: None,
                        }),
                    ],
                    cap_effective: Some(1 << 21),
                    cap_permitted: Some(u64::from(u32::MAX)),
                    cwd: Some("/dev/shm".into()),
                })),
            },
            Detail::Exec {
                argv: vec![],
                truncated: false,
                state: Some(Box::new(ExecState {
                    stdio: [Some(Fd::closed()), None, None],
                    cap_effective: None,
                    cap_permitted: None,
                    cwd: None,
                })),
            },
            Detail::Fork,
            Detail::Exit {
                code: None,
                signal: Some(9),
            },
            Detail::Open {
                file: file.clone(),
                flags: 0o101,
                mode: 0o600,
                ret: 3,
                count: None,
            },
            Detail::Open {
                file: file.clone(),
                flags: 0,
                mode: 0,
                ret: 4,
                count: Some(41),
            },
            Detail::Unlink {
                file: file.clone(),
                ret: -2,
            },
            Detail::Rename {
                file: file.clone(),
                new_path: "/tmp/y".into(),
                ret: 0,
            },
            Detail::Chmod {
                file: file.clone(),
                mode: 0o755,
                ret: 0,
            },
            Detail::Chown {
                file: file.clone(),
                uid: 0,
                gid: 0,
                ret: 0,
            },
            Detail::MemfdCreate {
                name: "x".into(),
                flags: 1,
                ret: 4,
            },
            Detail::MmapExec {
                file: FilePath {
                    source: PathSource::UserAtExit,
                    ..file.clone()
                },
                prot: 5,
            },
            Detail::Utimes {
                file: file.clone(),
                atime_ns: None,
                mtime_ns: Some(-86_400_000_000_000),
                flags: 2,
                ret: 0,
            },
            Detail::Truncate {
                file: file.clone(),
                length: 0,
                ret: 0,
            },
            Detail::Link {
                file: file.clone(),
                new_path: "/tmp/l".into(),
                ret: 0,
            },
            Detail::Symlink {
                file: FilePath {
                    path: "/etc/shadow".into(),
                    source: PathSource::UserAtExit,
                },
                new_path: "/tmp/s".into(),
                ret: -17,
            },
            Detail::Mkdir {
                file: file.clone(),
                mode: 0o700,
                ret: 0,
            },
            Detail::Socket(Box::new(Net {
                family: "packet".into(),
                protocol: "raw".into(),
                ret: Some(3),
                ..Net::default()
            })),
            Detail::Dup(Box::new(Net {
                ret: Some(0),
                count: None,
                bytes: None,
                ..net.clone()
            })),
            Detail::Connect(Box::new(net.clone())),
            Detail::Accept(Box::new(net.clone())),
            Detail::Bind(Box::new(net.clone())),
            Detail::Listen(Box::new(net.clone())),
            Detail::SendTo(Box::new(net.clone())),
            Detail::DnsQuery(Box::new(Dns {
                rcode: None,
                answers: vec![],
                ..dns.clone()
            })),
            Detail::DnsResponse(Box::new(dns)),
            Detail::Ptrace {
                request: 16,
                target_pid: 5,
                ret: 0,
            },
            Detail::ProcessVmWritev {
                target_pid: 5,
                ret: 10,
            },
            Detail::ProcMemWrite {
                file: file.clone(),
                target_pid: 5,
                ret: 10,
            },
            Detail::ModuleLoad {
                file: Some(file.clone()),
                ret: -1,
            },
            Detail::ModuleLoad {
                file: None,
                ret: -1,
            },
            Detail::SetId {
                uid: Some(0),
                gid: None,
                nr: 105,
                ret: 0,
            },
            Detail::Capset {
                effective: 1 << 21,
                ret: 0,
            },
            Detail::Userfaultfd { flags: 0, ret: 5 },
            Detail::Mount {
                source: "/".into(),
                target: "/mnt".into(),
                fstype: "ext4".into(),
                flags: 0,
                ret: 0,
            },
            Detail::Unshare {
                flags: 0x10000000,
                ret: 0,
            },
            Detail::Setns { flags: 0, ret: 0 },
            Detail::Bpf { cmd: 5, ret: 3 },
            Detail::Keyctl { op: 0, ret: 0 },
            Detail::SyscallProfile {
                counts: vec![(0, 10), (59, 1)],
            },
            Detail::Syscall { nr: 1, ret: None },
            Detail::ContainerStart,
            Detail::ContainerStop,
            Detail::Lost { count: 3 },
        ]
    }

    /// `base` once with every kind's sample detail.
    fn with_every_kind(base: &Event) -> Vec<Event> {
        every_kind()
            .into_iter()
            .map(|detail| Event {
                detail,
                ..base.clone()
            })
            .collect()
    }

    #[test]
    fn every_kind_round_trips() {
        let kinds: std::collections::BTreeSet<_> = every_kind().iter().map(|d| d.kind()).collect();
        assert_eq!(
            kinds.len(),
            crate::abi::EVENT_KINDS.len(),
            "a kind has no sample"
        );
        // Rows outside containers: most context columns null.
        let events = with_every_kind(&sample_events()[1]);
        let mut b = TraceBatchBuilder::new("h");
        events.iter().for_each(|e| b.push(e));
        assert_eq!(events_from_batch(&b.finish()).unwrap(), events);
    }

    #[test]
    fn a_reused_builder_starts_each_batch_clean() {
        // The builder holds runs of nulls back until a value or the batch's end: a batch that
        // ends in nulls must not leak them into the next, in either order of kinds.
        let events = with_every_kind(&sample_events()[0]);
        let reversed: Vec<Event> = events.iter().rev().cloned().collect();
        let mut b = TraceBatchBuilder::new("h");
        for batch in [&events, &reversed, &events[..1].to_vec(), &reversed] {
            batch.iter().for_each(|e| b.push(e));
            let built = b.finish();
            assert_eq!(built.num_rows(), batch.len());
            assert_eq!(&events_from_batch(&built).unwrap(), batch);
        }
    }

    #[test]
    fn lists_and_maps_of_other_inner_types_are_wrong_types_not_panics() {
        use arrow::array::{
            ArrayRef, ListBuilder, MapBuilder, StringBuilder, UInt32Builder, UInt64Builder,
        };
        let events = with_every_kind(&sample_events()[0]);
        let mut b = TraceBatchBuilder::new("h");
        events.iter().for_each(|e| b.push(e));
        let batch = b.finish();
        let rows = batch.num_rows();
        let numbers: ArrayRef = {
            let mut l = ListBuilder::new(UInt32Builder::new());
            for r in 0..rows {
                l.values().append_value(r as u32);
                l.append(true);
            }
            std::sync::Arc::new(l.finish())
        };
        let string_keys: ArrayRef = {
            let mut m = MapBuilder::new(None, StringBuilder::new(), UInt64Builder::new());
            for _ in 0..rows {
                m.keys().append_value("read");
                m.values().append_value(3);
                m.append(true).unwrap();
            }
            std::sync::Arc::new(m.finish())
        };
        for (column, array) in [
            (n::ARGV, &numbers),
            (n::DNS_ANSWERS, &numbers),
            (n::SYSCALL_COUNTS, &string_keys),
        ] {
            let i = batch.schema().index_of(column).unwrap();
            let mut fields: Vec<arrow::datatypes::Field> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields[i] = arrow::datatypes::Field::new(column, array.data_type().clone(), true);
            let mut columns = batch.columns().to_vec();
            columns[i] = array.clone();
            let bad = RecordBatch::try_new(
                std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
                columns,
            )
            .unwrap();
            match events_from_batch(&bad) {
                Err(ReadError::WrongType { column: c, .. }) => assert_eq!(c, column),
                other => panic!("{column}: {other:?}"),
            }
        }
    }

    #[test]
    fn version_1_files_read_without_the_columns_version_2_added() {
        // A version-1 writer had none of these columns: exec rows read without a state.
        let added: Vec<&str> = crate::schema::names::STDIO
            .iter()
            .flat_map(|f| [f.ty, f.inode, f.path, f.addr, f.port])
            .chain([
                n::CAP_EFFECTIVE,
                n::CAP_PERMITTED,
                n::ATIME_NS,
                n::MTIME_NS,
                n::LENGTH,
                n::CWD,
            ])
            .collect();
        let events = with_every_kind(&sample_events()[0]);
        let mut b = TraceBatchBuilder::new("h");
        events.iter().for_each(|e| b.push(e));
        let batch = b.finish();
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| !added.contains(&arrow_schema().field(i).name().as_str()))
            .collect();
        assert_eq!(keep.len(), batch.num_columns() - added.len());
        let v1 = events_from_batch(&batch.project(&keep).unwrap()).unwrap();
        let execs: Vec<&Detail> = v1
            .iter()
            .map(|e| &e.detail)
            .filter(|d| matches!(d, Detail::Exec { .. }))
            .collect();
        assert_eq!(execs.len(), 3);
        assert!(
            execs
                .iter()
                .all(|d| matches!(d, Detail::Exec { state: None, .. }))
        );
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

        let no_pid: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| arrow_schema().field(i).name() != "pid")
            .collect();
        let err = events_from_batch(&batch.project(&no_pid).unwrap()).unwrap_err();
        assert!(matches!(err, ReadError::MissingColumn("pid")), "{err}");
    }
}
