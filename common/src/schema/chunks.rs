//! Events in, Parquet row groups out, without Arrow arrays in between: the writer capture's
//! writer thread uses.
//!
//! One pass over a row group's rows gathers the columns each row fills (values, and
//! definition levels as runs; a column a row leaves null hears of that row only when it next
//! gets a value, [`super::levels`]); every column but the clocks is then written as a column
//! chunk of its own — text in [`super::text`], numbers and booleans in [`super::num`] — and
//! the clocks through parquet's DELTA_BINARY_PACKED encoder. The file is the one
//! [`ArrowWriter`] writes from [`super::TraceBatchBuilder`]'s batches — same Parquet schema,
//! `ARROW:schema`, statistics, zstd, dictionary-encoded text and integers, delta-encoded
//! clocks — as the tests below check by reading both back.
//!
//! [`ArrowWriter`]: parquet::arrow::ArrowWriter

use std::io::Write;
use std::sync::Arc;

use parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use parquet::data_type::Int64Type;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use super::builder::KindColumns;
use super::event::{Event, Fd};
use super::num::{CountMap, Num};
use super::page::ChunkSettings;
use super::text::TextColumn;
use super::{COLUMNS, WriteOptions, arrow_schema, names as n, writer_properties};
use crate::abi::EventKind;

/// One row as the writer takes it.
#[derive(Clone, Copy, Debug)]
pub enum Row<'a> {
    /// An event.
    Event(&'a Event),
    /// A `syscall` row told apart from the event it shares its context with: capture keeps
    /// its busiest kind as these few numbers, not as an [`Event`] each.
    Syscall {
        /// Wall-clock time, ns since the Unix epoch.
        time_ns: i64,
        /// Boot-time clock.
        ktime_ns: u64,
        /// Syscall number.
        nr: u32,
        /// Return value, when known.
        ret: Option<i64>,
        /// Whose row it is: every column but the times, `kind`, `syscall` and `ret` is this
        /// event's (its own kind-specific columns are not used).
        context: &'a Event,
    },
}

impl<'a> Row<'a> {
    /// The row as a whole event: what a reader of the file gets back.
    pub fn to_event(&self) -> Event {
        match *self {
            Row::Event(e) => e.clone(),
            Row::Syscall {
                time_ns,
                ktime_ns,
                nr,
                ret,
                context,
            } => Event {
                time_ns,
                ktime_ns,
                detail: super::Detail::Syscall { nr, ret },
                ..context.clone()
            },
        }
    }

    /// The row's wall-clock time.
    pub fn time_ns(&self) -> i64 {
        match self {
            Row::Event(e) => e.time_ns,
            Row::Syscall { time_ns, .. } => *time_ns,
        }
    }
}

impl<'a> From<&'a Event> for Row<'a> {
    fn from(e: &'a Event) -> Row<'a> {
        Row::Event(e)
    }
}

/// The columns of one standard fd of exec rows.
#[derive(Default)]
struct Stdio<'a> {
    ty: TextColumn<'a>,
    inode: Num<i64>,
    path: TextColumn<'a>,
    addr: TextColumn<'a>,
    port: Num<i32>,
}

impl<'a> Stdio<'a> {
    #[inline]
    fn set(&mut self, row: usize, fd: &'a Fd) {
        self.ty.shared(row, fd.kind.name());
        self.inode.opt(row, fd.inode.map(|v| v as i64));
        if let Some(p) = fd.path.as_deref() {
            self.path.owned(row, p);
        }
        if let Some(a) = fd.addr.as_deref() {
            self.addr.owned(row, a);
        }
        self.port.opt(row, fd.port.map(i32::from));
    }
}

/// A borrowed column of [`Gather`], by how it is written.
enum Col<'g, 'a> {
    Text(&'g mut TextColumn<'a>),
    I32(&'g mut Num<i32>),
    I64(&'g mut Num<i64>),
    Bool(&'g mut Num<bool>),
    /// A clock: DELTA_BINARY_PACKED through parquet's own encoder.
    Clock(&'g mut Num<i64>),
    Map(&'g mut CountMap),
}

/// Declares [`Gather`], one accumulator per column, and lists them with their names: the one
/// place a column of the writer is named.
macro_rules! gather {
    ($($field:ident: $kind:ident($ty:ty) = $name:expr,)*) => {
        /// Every column of a row group being gathered.
        #[derive(Default)]
        struct Gather<'a> {
            $($field: $ty,)*
            stdio: [Stdio<'a>; 3],
        }

        impl<'a> Gather<'a> {
            /// The columns with their names, in no particular order.
            fn named(&mut self) -> Vec<(&'static str, Col<'_, 'a>)> {
                let mut named = vec![$(($name, Col::$kind(&mut self.$field)),)*];
                for (s, names) in self.stdio.iter_mut().zip(&n::STDIO) {
                    named.extend([
                        (names.ty, Col::Text(&mut s.ty)),
                        (names.inode, Col::I64(&mut s.inode)),
                        (names.path, Col::Text(&mut s.path)),
                        (names.addr, Col::Text(&mut s.addr)),
                        (names.port, Col::I32(&mut s.port)),
                    ]);
                }
                named
            }
        }
    };
}

gather! {
    time: Clock(Num<i64>) = n::TIME,
    ktime_ns: Clock(Num<i64>) = n::KTIME_NS,
    host: Text(TextColumn<'a>) = n::HOST,
    kind: Text(TextColumn<'a>) = n::KIND,
    pid: I32(Num<i32>) = n::PID,
    tgid: I32(Num<i32>) = n::TGID,
    ppid: I32(Num<i32>) = n::PPID,
    uid: I32(Num<i32>) = n::UID,
    gid: I32(Num<i32>) = n::GID,
    comm: Text(TextColumn<'a>) = n::COMM,
    cgroup_id: I64(Num<i64>) = n::CGROUP_ID,
    exe_path: Text(TextColumn<'a>) = n::EXE_PATH,
    exe_sha256: Text(TextColumn<'a>) = n::EXE_SHA256,
    container_id: Text(TextColumn<'a>) = n::CONTAINER_ID,
    container_name: Text(TextColumn<'a>) = n::CONTAINER_NAME,
    image: Text(TextColumn<'a>) = n::IMAGE,
    image_digest: Text(TextColumn<'a>) = n::IMAGE_DIGEST,
    runtime: Text(TextColumn<'a>) = n::RUNTIME,
    pod: Text(TextColumn<'a>) = n::POD,
    namespace: Text(TextColumn<'a>) = n::NAMESPACE,
    labels: Text(TextColumn<'a>) = n::LABELS,
    workload: Text(TextColumn<'a>) = n::WORKLOAD,
    process_key: Text(TextColumn<'a>) = n::PROCESS_KEY,
    parent_key: Text(TextColumn<'a>) = n::PARENT_KEY,
    ancestry: Text(TextColumn<'a>) = n::ANCESTRY,
    user: Text(TextColumn<'a>) = n::USER,
    exe_new: Bool(Num<bool>) = n::EXE_NEW,
    exe_writable: Bool(Num<bool>) = n::EXE_WRITABLE,
    exe_fileless: Bool(Num<bool>) = n::EXE_FILELESS,
    path: Text(TextColumn<'a>) = n::PATH,
    path2: Text(TextColumn<'a>) = n::PATH2,
    path_source: Text(TextColumn<'a>) = n::PATH_SOURCE,
    argv: Text(TextColumn<'a>) = n::ARGV,
    truncated: Bool(Num<bool>) = n::TRUNCATED,
    exit_code: I32(Num<i32>) = n::EXIT_CODE,
    signal: I32(Num<i32>) = n::SIGNAL,
    flags: I64(Num<i64>) = n::FLAGS,
    mode: I32(Num<i32>) = n::MODE,
    op: I32(Num<i32>) = n::OP,
    target_pid: I32(Num<i32>) = n::TARGET_PID,
    target_uid: I32(Num<i32>) = n::TARGET_UID,
    target_gid: I32(Num<i32>) = n::TARGET_GID,
    fstype: Text(TextColumn<'a>) = n::FSTYPE,
    family: Text(TextColumn<'a>) = n::FAMILY,
    protocol: Text(TextColumn<'a>) = n::PROTOCOL,
    src_addr: Text(TextColumn<'a>) = n::SRC_ADDR,
    src_port: I32(Num<i32>) = n::SRC_PORT,
    dst_addr: Text(TextColumn<'a>) = n::DST_ADDR,
    dst_port: I32(Num<i32>) = n::DST_PORT,
    bytes: I64(Num<i64>) = n::BYTES,
    dns_name: Text(TextColumn<'a>) = n::DNS_NAME,
    dns_type: I32(Num<i32>) = n::DNS_TYPE,
    dns_id: I32(Num<i32>) = n::DNS_ID,
    dns_rcode: I32(Num<i32>) = n::DNS_RCODE,
    dns_answers: Text(TextColumn<'a>) = n::DNS_ANSWERS,
    syscall: I32(Num<i32>) = n::SYSCALL,
    ret: I64(Num<i64>) = n::RET,
    syscall_counts: Map(CountMap) = n::SYSCALL_COUNTS,
    count: I64(Num<i64>) = n::COUNT,
    label: Text(TextColumn<'a>) = n::LABEL,
    cap_effective: I64(Num<i64>) = n::CAP_EFFECTIVE,
    cap_permitted: I64(Num<i64>) = n::CAP_PERMITTED,
    atime_ns: I64(Num<i64>) = n::ATIME_NS,
    mtime_ns: I64(Num<i64>) = n::MTIME_NS,
    length: I64(Num<i64>) = n::LENGTH,
    cwd: Text(TextColumn<'a>) = n::CWD,
}

fn u(v: Option<u32>) -> Option<i32> {
    v.map(|v| v as i32)
}

fn u64s(v: Option<u64>) -> Option<i64> {
    v.map(|v| v as i64)
}

/// `f(row, value)` when the value is there: a column hears only of rows that fill it.
macro_rules! fill {
    ($col:expr, $method:ident, $row:expr, $v:expr) => {
        if let Some(v) = $v {
            $col.$method($row, v);
        }
    };
}

impl<'a> Gather<'a> {
    /// Appends one row as row `row` (the same columns [`super::TraceBatchBuilder::push`]
    /// fills): only the columns the row has a value for hear of it.
    fn push(&mut self, row: usize, host: &'a str, r: Row<'a>) {
        match r {
            Row::Event(ev) => {
                self.push_context(row, host, ev.time_ns, ev.ktime_ns, ev);
                self.kind.shared(row, ev.detail.kind().name());
                self.push_kind_columns(row, KindColumns::of(&ev.detail));
            }
            Row::Syscall {
                time_ns,
                ktime_ns,
                nr,
                ret,
                context,
            } => {
                self.push_context(row, host, time_ns, ktime_ns, context);
                self.kind.shared(row, EventKind::Syscall.name());
                self.syscall.set(row, nr as i32);
                self.ret.opt(row, ret);
            }
        }
    }

    /// The columns every row has but `kind` (times, host, process, executable, container,
    /// workload, process context): the times given, the rest from `ev`.
    #[inline]
    fn push_context(
        &mut self,
        row: usize,
        host: &'a str,
        time_ns: i64,
        ktime_ns: u64,
        ev: &'a Event,
    ) {
        self.time.set(row, time_ns);
        self.ktime_ns.set(row, ktime_ns as i64);
        self.host.shared(row, host);
        let p = &ev.process;
        self.pid.set(row, p.pid as i32);
        self.tgid.set(row, p.tgid as i32);
        self.ppid.set(row, p.ppid as i32);
        self.uid.set(row, p.uid as i32);
        self.gid.set(row, p.gid as i32);
        self.comm.shared(row, &p.comm);
        self.cgroup_id.set(row, p.cgroup_id as i64);
        fill!(self.exe_path, shared, row, ev.exe_path.as_deref());
        fill!(self.exe_sha256, shared, row, ev.exe_sha256.as_deref());
        if let Some(c) = ev.container.as_deref() {
            self.container_id.shared(row, &c.id);
            fill!(self.container_name, shared, row, c.name.as_deref());
            fill!(self.image, shared, row, c.image.as_deref());
            fill!(self.image_digest, shared, row, c.image_digest.as_deref());
            fill!(self.runtime, shared, row, c.runtime.as_deref());
            fill!(self.pod, shared, row, c.pod.as_deref());
            fill!(self.namespace, shared, row, c.namespace.as_deref());
            fill!(self.labels, shared, row, c.labels.as_deref());
        }
        fill!(self.label, shared, row, ev.label.as_deref());
        fill!(self.workload, shared, row, ev.workload.as_deref());
        if let Some(x) = ev.context.as_deref() {
            self.process_key.shared(row, &x.key);
            fill!(self.parent_key, shared, row, x.parent_key.as_deref());
            self.ancestry.shared_list(row, &x.ancestry);
            fill!(self.user, shared, row, x.user.as_deref());
            self.exe_new.opt(row, x.exe_new);
            self.exe_writable.opt(row, x.exe_writable);
            self.exe_fileless.opt(row, x.exe_fileless);
        }
    }

    fn push_kind_columns(&mut self, row: usize, k: KindColumns<'a>) {
        fill!(self.path, owned, row, k.path);
        fill!(self.path2, owned, row, k.path2);
        fill!(self.path_source, shared, row, k.path_source);
        fill!(self.argv, owned_list, row, k.argv);
        self.truncated.opt(row, k.truncated);
        self.exit_code.opt(row, k.exit_code);
        self.signal.opt(row, k.signal);
        self.flags.opt(row, u64s(k.flags));
        self.mode.opt(row, u(k.mode));
        self.op.opt(row, u(k.op));
        self.target_pid.opt(row, u(k.target_pid));
        self.target_uid.opt(row, u(k.target_uid));
        self.target_gid.opt(row, u(k.target_gid));
        fill!(self.fstype, owned, row, k.fstype);
        if let Some(net) = k.net {
            self.family.owned(row, &net.family);
            self.protocol.owned(row, &net.protocol);
            fill!(self.src_addr, owned, row, net.src_addr.as_deref());
            self.src_port.opt(row, net.src_port.map(i32::from));
            fill!(self.dst_addr, owned, row, net.dst_addr.as_deref());
            self.dst_port.opt(row, net.dst_port.map(i32::from));
            self.bytes.opt(row, u64s(net.bytes));
        }
        if let Some(dns) = k.dns {
            self.dns_name.owned(row, &dns.name);
            self.dns_type.set(row, i32::from(dns.qtype));
            self.dns_id.set(row, i32::from(dns.id));
            if let Some(rcode) = dns.rcode {
                self.dns_rcode.set(row, i32::from(rcode));
                self.dns_answers.owned_list(row, &dns.answers);
            }
        }
        self.syscall.opt(row, u(k.syscall));
        self.ret.opt(row, k.ret);
        fill!(self.syscall_counts, set, row, k.syscall_counts);
        self.count.opt(row, u64s(k.count));
        if let Some(exec) = k.exec {
            for (s, fd) in self.stdio.iter_mut().zip(&exec.stdio) {
                fill!(s, set, row, fd.as_ref());
            }
            self.cap_effective.opt(row, u64s(exec.cap_effective));
            self.cap_permitted.opt(row, u64s(exec.cap_permitted));
            fill!(self.cwd, owned, row, exec.cwd.as_deref());
        }
        self.atime_ns.opt(row, k.atime_ns);
        self.mtime_ns.opt(row, k.mtime_ns);
        self.length.opt(row, u64s(k.length));
    }

    /// The columns in [`COLUMNS`] order.
    fn columns(&mut self) -> Vec<Col<'_, 'a>> {
        let mut named = self.named();
        // A column without an accumulator is a bug in this file, caught by the tests.
        COLUMNS
            .iter()
            .map(|c| {
                let i = named
                    .iter()
                    .position(|(name, _)| *name == c.name)
                    .expect("every column has an accumulator");
                named.swap_remove(i).1
            })
            .collect()
    }
}

/// Writes events into one trace file, row group by row group.
pub struct TraceFileWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    host: Arc<str>,
    row_group_rows: usize,
    leaves: Vec<ColumnDescPtr>,
    settings: Vec<ChunkSettings>,
    zstd: zstd::bulk::Compressor<'static>,
}

impl<W: Write + Send> TraceFileWriter<W> {
    /// A trace file written into `out`, every row carrying `host`.
    pub fn try_new(out: W, host: &str, opts: &WriteOptions) -> Result<Self, ParquetError> {
        let schema = arrow_schema();
        let mut props = writer_properties(opts, Vec::new())?;
        add_encoded_arrow_schema_to_metadata(&schema, &mut props);
        let descr: SchemaDescriptor = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&schema)?;
        let settings = chunk_settings(&descr, &props);
        let leaves = descr.columns().to_vec();
        let zstd = zstd::bulk::Compressor::new(opts.zstd_level)
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        let file = SerializedFileWriter::new(out, descr.root_schema_ptr(), Arc::new(props))?;
        Ok(TraceFileWriter {
            file,
            host: host.into(),
            row_group_rows: opts.row_group_rows.max(1),
            leaves,
            settings,
            zstd,
        })
    }

    /// Writes `rows`, in this order, as row groups of at most the configured size; returns
    /// how many rows that was.
    pub fn write<'a, R: Into<Row<'a>>>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<usize, ParquetError> {
        let host = self.host.clone();
        let mut gather = Gather::default();
        let (mut n, mut total) = (0, 0);
        for r in rows {
            gather.push(n, &host, r.into());
            n += 1;
            total += 1;
            if n == self.row_group_rows {
                self.write_row_group(&mut gather, n)?;
                gather = Gather::default();
                n = 0;
            }
        }
        if n > 0 {
            self.write_row_group(&mut gather, n)?;
        }
        Ok(total)
    }

    fn write_row_group(
        &mut self,
        gather: &mut Gather<'_>,
        rows: usize,
    ) -> Result<(), ParquetError> {
        let mut rg = self.file.next_row_group()?;
        let mut leaves = self.leaves.iter().zip(&self.settings);
        let mut leaf = || {
            leaves
                .next()
                .ok_or_else(|| ParquetError::General("more columns than the schema".into()))
        };
        let zstd = &mut self.zstd;
        for col in gather.columns() {
            let chunks = match col {
                Col::Text(t) => {
                    let (descr, settings) = leaf()?;
                    vec![t.write_chunk(rows, descr, settings, zstd)?]
                }
                Col::I32(c) => {
                    let (descr, settings) = leaf()?;
                    vec![c.write_ints(rows, descr, settings, zstd)?]
                }
                Col::I64(c) => {
                    let (descr, settings) = leaf()?;
                    vec![c.write_ints(rows, descr, settings, zstd)?]
                }
                Col::Bool(c) => {
                    let (descr, settings) = leaf()?;
                    vec![c.write_bools(rows, descr, settings, zstd)?]
                }
                Col::Map(m) => {
                    let (keys, key_settings) = leaf()?;
                    let (values, value_settings) = leaf()?;
                    vec![
                        m.keys.write_ints(rows, keys, key_settings, zstd)?,
                        m.values.write_ints(rows, values, value_settings, zstd)?,
                    ]
                }
                Col::Clock(c) => {
                    // Parquet's delta encoder: a clock is required, so no levels to go through.
                    leaf()?;
                    let mut w = rg.next_column()?.ok_or_else(|| {
                        ParquetError::General("more columns than the schema".into())
                    })?;
                    w.typed::<Int64Type>().write_batch(&c.values, None, None)?;
                    w.close()?;
                    continue;
                }
            };
            for (bytes, close) in chunks {
                rg.append_column(&bytes, close)?;
            }
        }
        rg.close()?;
        Ok(())
    }

    /// Adds a key-value pair to the footer.
    pub fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.file.append_key_value_metadata(kv);
    }

    /// Bytes written to `out` so far.
    pub fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// Writes the footer and returns `out`.
    pub fn into_inner(self) -> Result<W, ParquetError> {
        self.file.into_inner()
    }
}

/// How each leaf column (in schema order) is written, when it is written here.
fn chunk_settings(descr: &SchemaDescriptor, props: &WriterProperties) -> Vec<ChunkSettings> {
    descr
        .columns()
        .iter()
        .map(|c| ChunkSettings {
            compression: props.compression(c.path()),
            dictionary_limit: props.column_dictionary_page_size_limit(c.path()),
            statistics: props.statistics_enabled(c.path()) != EnabledStatistics::None,
            truncate: props.statistics_truncate_length(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
