//! Events in, Parquet row groups out, without Arrow arrays in between: the writer capture's
//! writer thread uses.
//!
//! One pass over a row group's rows gathers every column (values, and definition levels as
//! runs); text columns are then written as dictionary pages of their own ([`super::text`]),
//! the others through parquet's column writer. The file is the one [`ArrowWriter`] writes from
//! [`super::TraceBatchBuilder`]'s batches — same Parquet schema, `ARROW:schema`, statistics,
//! zstd, dictionary-encoded text, delta-encoded clocks — as the tests below check by reading
//! both back.
//!
//! [`ArrowWriter`]: parquet::arrow::ArrowWriter

use std::io::Write;
use std::sync::Arc;

use parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use parquet::column::writer::ColumnWriterImpl;
use parquet::data_type::{BoolType, DataType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use super::builder::KindColumns;
use super::event::Event;
use super::text::{ChunkSettings, Runs, TextColumn};
use super::{COLUMNS, WriteOptions, arrow_schema, names as n, writer_properties};

/// A column of numbers or booleans being gathered.
struct Num<T> {
    values: Vec<T>,
    def: Runs,
}

impl<T: Copy> Num<T> {
    fn new() -> Self {
        Num {
            values: Vec::new(),
            def: Runs::default(),
        }
    }

    #[inline]
    fn req(&mut self, v: T) {
        self.values.push(v);
    }

    #[inline]
    fn opt(&mut self, v: Option<T>) {
        match v {
            Some(v) => {
                self.values.push(v);
                self.def.push(1);
            }
            None => self.def.push(0),
        }
    }

    /// Writes the gathered values through parquet's column writer.
    fn write<P: DataType<T = T>>(
        &self,
        w: &mut ColumnWriterImpl<'_, P>,
        levels: &mut Vec<i16>,
    ) -> Result<(), ParquetError> {
        if w.get_descriptor().max_def_level() == 0 {
            w.write_batch(&self.values, None, None)?;
        } else {
            levels.clear();
            self.def.expand(levels);
            w.write_batch(&self.values, Some(levels), None)?;
        }
        Ok(())
    }
}

/// The `syscall_counts` map: two leaf columns (keys, values) with repetition levels.
struct CountMap {
    keys: Vec<i32>,
    values: Vec<i64>,
    key_def: Runs,
    value_def: Runs,
    rep: Runs,
}

impl CountMap {
    fn new() -> Self {
        CountMap {
            keys: Vec::new(),
            values: Vec::new(),
            key_def: Runs::default(),
            value_def: Runs::default(),
            rep: Runs::default(),
        }
    }

    #[inline]
    fn push(&mut self, counts: Option<&[(u32, u64)]>) {
        match counts {
            None | Some([]) => {
                let level = i16::from(counts.is_some());
                self.key_def.push(level);
                self.value_def.push(level);
                self.rep.push(0);
            }
            Some(counts) => {
                for (i, &(nr, count)) in counts.iter().enumerate() {
                    self.keys.push(nr as i32);
                    self.values.push(count as i64);
                    self.key_def.push(2);
                    self.value_def.push(3);
                    self.rep.push(i16::from(i > 0));
                }
            }
        }
    }
}

/// The columns of one standard fd of exec rows.
struct Stdio<'a> {
    ty: TextColumn<'a>,
    inode: Num<i64>,
    path: TextColumn<'a>,
    addr: TextColumn<'a>,
    port: Num<i32>,
}

impl<'a> Stdio<'a> {
    fn new() -> Self {
        Stdio {
            ty: TextColumn::new(),
            inode: Num::new(),
            path: TextColumn::new(),
            addr: TextColumn::new(),
            port: Num::new(),
        }
    }

    #[inline]
    fn push(&mut self, fd: Option<&'a super::event::Fd>) {
        self.ty.push_shared(fd.map(|f| f.kind.name()));
        self.inode.opt(fd.and_then(|f| f.inode).map(|v| v as i64));
        self.path.push_owned(fd.and_then(|f| f.path.as_deref()));
        self.addr.push_owned(fd.and_then(|f| f.addr.as_deref()));
        self.port.opt(fd.and_then(|f| f.port).map(i32::from));
    }
}

/// Every column of a row group being gathered, typed as parquet stores it (unsigned
/// integers as their signed bit patterns, as parquet-rs does).
struct Gather<'a> {
    time: Num<i64>,
    ktime_ns: Num<i64>,
    host: TextColumn<'a>,
    kind: TextColumn<'a>,
    pid: Num<i32>,
    tgid: Num<i32>,
    ppid: Num<i32>,
    uid: Num<i32>,
    gid: Num<i32>,
    comm: TextColumn<'a>,
    cgroup_id: Num<i64>,
    exe_path: TextColumn<'a>,
    exe_sha256: TextColumn<'a>,
    container_id: TextColumn<'a>,
    container_name: TextColumn<'a>,
    image: TextColumn<'a>,
    image_digest: TextColumn<'a>,
    runtime: TextColumn<'a>,
    pod: TextColumn<'a>,
    namespace: TextColumn<'a>,
    labels: TextColumn<'a>,
    workload: TextColumn<'a>,
    process_key: TextColumn<'a>,
    parent_key: TextColumn<'a>,
    ancestry: TextColumn<'a>,
    user: TextColumn<'a>,
    exe_new: Num<bool>,
    exe_writable: Num<bool>,
    exe_fileless: Num<bool>,
    path: TextColumn<'a>,
    path2: TextColumn<'a>,
    path_source: TextColumn<'a>,
    argv: TextColumn<'a>,
    truncated: Num<bool>,
    exit_code: Num<i32>,
    signal: Num<i32>,
    flags: Num<i64>,
    mode: Num<i32>,
    op: Num<i32>,
    target_pid: Num<i32>,
    target_uid: Num<i32>,
    target_gid: Num<i32>,
    fstype: TextColumn<'a>,
    family: TextColumn<'a>,
    protocol: TextColumn<'a>,
    src_addr: TextColumn<'a>,
    src_port: Num<i32>,
    dst_addr: TextColumn<'a>,
    dst_port: Num<i32>,
    bytes: Num<i64>,
    dns_name: TextColumn<'a>,
    dns_type: Num<i32>,
    dns_id: Num<i32>,
    dns_rcode: Num<i32>,
    dns_answers: TextColumn<'a>,
    syscall: Num<i32>,
    ret: Num<i64>,
    syscall_counts: CountMap,
    count: Num<i64>,
    label: TextColumn<'a>,
    stdio: [Stdio<'a>; 3],
    cap_effective: Num<i64>,
    cap_permitted: Num<i64>,
    atime_ns: Num<i64>,
    mtime_ns: Num<i64>,
    length: Num<i64>,
    cwd: TextColumn<'a>,
}

/// A borrowed column of [`Gather`], by kind of writer.
enum Col<'g, 'a> {
    Text(&'g TextColumn<'a>),
    I32(&'g Num<i32>),
    I64(&'g Num<i64>),
    Bool(&'g Num<bool>),
    Map(&'g CountMap),
}

fn u(v: Option<u32>) -> Option<i32> {
    v.map(|v| v as i32)
}

fn u64s(v: Option<u64>) -> Option<i64> {
    v.map(|v| v as i64)
}

impl<'a> Gather<'a> {
    fn new() -> Self {
        let t = || TextColumn::new();
        Gather {
            time: Num::new(),
            ktime_ns: Num::new(),
            host: t(),
            kind: t(),
            pid: Num::new(),
            tgid: Num::new(),
            ppid: Num::new(),
            uid: Num::new(),
            gid: Num::new(),
            comm: t(),
            cgroup_id: Num::new(),
            exe_path: t(),
            exe_sha256: t(),
            container_id: t(),
            container_name: t(),
            image: t(),
            image_digest: t(),
            runtime: t(),
            pod: t(),
            namespace: t(),
            labels: t(),
            workload: t(),
            process_key: t(),
            parent_key: t(),
            ancestry: TextColumn::new(),
            user: t(),
            exe_new: Num::new(),
            exe_writable: Num::new(),
            exe_fileless: Num::new(),
            path: t(),
            path2: t(),
            path_source: t(),
            argv: TextColumn::new(),
            truncated: Num::new(),
            exit_code: Num::new(),
            signal: Num::new(),
            flags: Num::new(),
            mode: Num::new(),
            op: Num::new(),
            target_pid: Num::new(),
            target_uid: Num::new(),
            target_gid: Num::new(),
            fstype: t(),
            family: t(),
            protocol: t(),
            src_addr: t(),
            src_port: Num::new(),
            dst_addr: t(),
            dst_port: Num::new(),
            bytes: Num::new(),
            dns_name: t(),
            dns_type: Num::new(),
            dns_id: Num::new(),
            dns_rcode: Num::new(),
            dns_answers: TextColumn::new(),
            syscall: Num::new(),
            ret: Num::new(),
            syscall_counts: CountMap::new(),
            count: Num::new(),
            label: t(),
            stdio: [Stdio::new(), Stdio::new(), Stdio::new()],
            cap_effective: Num::new(),
            cap_permitted: Num::new(),
            atime_ns: Num::new(),
            mtime_ns: Num::new(),
            length: Num::new(),
            cwd: t(),
        }
    }

    /// Appends one event as one row (the same columns [`super::TraceBatchBuilder::push`] fills).
    fn push(&mut self, host: &'a str, ev: &'a Event) {
        self.time.req(ev.time_ns);
        self.ktime_ns.req(ev.ktime_ns as i64);
        self.host.push_shared(Some(host));
        self.kind.push_shared(Some(ev.detail.kind().name()));
        let p = &ev.process;
        self.pid.req(p.pid as i32);
        self.tgid.req(p.tgid as i32);
        self.ppid.req(p.ppid as i32);
        self.uid.req(p.uid as i32);
        self.gid.req(p.gid as i32);
        self.comm.push_shared(Some(&p.comm));
        self.cgroup_id.req(p.cgroup_id as i64);
        self.exe_path.push_shared(ev.exe_path.as_deref());
        self.exe_sha256.push_shared(ev.exe_sha256.as_deref());
        let c = ev.container.as_deref();
        self.container_id.push_shared(c.map(|c| &*c.id));
        self.container_name
            .push_shared(c.and_then(|c| c.name.as_deref()));
        self.image.push_shared(c.and_then(|c| c.image.as_deref()));
        self.image_digest
            .push_shared(c.and_then(|c| c.image_digest.as_deref()));
        self.runtime
            .push_shared(c.and_then(|c| c.runtime.as_deref()));
        self.pod.push_shared(c.and_then(|c| c.pod.as_deref()));
        self.namespace
            .push_shared(c.and_then(|c| c.namespace.as_deref()));
        self.labels.push_shared(c.and_then(|c| c.labels.as_deref()));
        self.label.push_shared(ev.label.as_deref());
        self.workload.push_shared(ev.workload.as_deref());
        let x = ev.context.as_deref();
        self.process_key.push_shared(x.map(|x| &*x.key));
        self.parent_key
            .push_shared(x.and_then(|x| x.parent_key.as_deref()));
        self.ancestry
            .push_list(x.map(|x| x.ancestry.as_slice()), true);
        self.user.push_shared(x.and_then(|x| x.user.as_deref()));
        self.exe_new.opt(x.and_then(|x| x.exe_new));
        self.exe_writable.opt(x.and_then(|x| x.exe_writable));
        self.exe_fileless.opt(x.and_then(|x| x.exe_fileless));
        self.push_kind_columns(KindColumns::of(&ev.detail));
    }

    fn push_kind_columns(&mut self, k: KindColumns<'a>) {
        self.path.push_owned(k.path);
        self.path2.push_owned(k.path2);
        self.path_source.push_shared(k.path_source);
        self.argv.push_list(k.argv, false);
        self.truncated.opt(k.truncated);
        self.exit_code.opt(k.exit_code);
        self.signal.opt(k.signal);
        self.flags.opt(u64s(k.flags));
        self.mode.opt(u(k.mode));
        self.op.opt(u(k.op));
        self.target_pid.opt(u(k.target_pid));
        self.target_uid.opt(u(k.target_uid));
        self.target_gid.opt(u(k.target_gid));
        self.fstype.push_owned(k.fstype);
        let net = k.net;
        self.family.push_owned(net.map(|n| n.family.as_str()));
        self.protocol.push_owned(net.map(|n| n.protocol.as_str()));
        self.src_addr
            .push_owned(net.and_then(|n| n.src_addr.as_deref()));
        self.src_port
            .opt(net.and_then(|n| n.src_port).map(i32::from));
        self.dst_addr
            .push_owned(net.and_then(|n| n.dst_addr.as_deref()));
        self.dst_port
            .opt(net.and_then(|n| n.dst_port).map(i32::from));
        self.bytes.opt(u64s(net.and_then(|n| n.bytes)));
        let dns = k.dns;
        self.dns_name.push_owned(dns.map(|d| d.name.as_str()));
        self.dns_type.opt(dns.map(|d| i32::from(d.qtype)));
        self.dns_id.opt(dns.map(|d| i32::from(d.id)));
        self.dns_rcode.opt(dns.and_then(|d| d.rcode).map(i32::from));
        self.dns_answers.push_list(
            dns.filter(|d| d.rcode.is_some())
                .map(|d| d.answers.as_slice()),
            false,
        );
        self.syscall.opt(u(k.syscall));
        self.ret.opt(k.ret);
        self.syscall_counts.push(k.syscall_counts);
        self.count.opt(u64s(k.count));
        let exec = k.exec;
        for (i, s) in self.stdio.iter_mut().enumerate() {
            s.push(exec.and_then(|x| x.stdio[i].as_ref()));
        }
        self.cap_effective
            .opt(u64s(exec.and_then(|x| x.cap_effective)));
        self.cap_permitted
            .opt(u64s(exec.and_then(|x| x.cap_permitted)));
        self.atime_ns.opt(k.atime_ns);
        self.mtime_ns.opt(k.mtime_ns);
        self.length.opt(u64s(k.length));
        self.cwd.push_owned(exec.and_then(|x| x.cwd.as_deref()));
    }

    /// The columns in [`COLUMNS`] order.
    fn columns(&self) -> Vec<Col<'_, 'a>> {
        use Col::*;
        let mut named: Vec<(&'static str, Col<'_, 'a>)> = vec![
            (n::TIME, I64(&self.time)),
            (n::KTIME_NS, I64(&self.ktime_ns)),
            (n::HOST, Text(&self.host)),
            (n::KIND, Text(&self.kind)),
            (n::PID, I32(&self.pid)),
            (n::TGID, I32(&self.tgid)),
            (n::PPID, I32(&self.ppid)),
            (n::UID, I32(&self.uid)),
            (n::GID, I32(&self.gid)),
            (n::COMM, Text(&self.comm)),
            (n::CGROUP_ID, I64(&self.cgroup_id)),
            (n::EXE_PATH, Text(&self.exe_path)),
            (n::EXE_SHA256, Text(&self.exe_sha256)),
            (n::CONTAINER_ID, Text(&self.container_id)),
            (n::CONTAINER_NAME, Text(&self.container_name)),
            (n::IMAGE, Text(&self.image)),
            (n::IMAGE_DIGEST, Text(&self.image_digest)),
            (n::RUNTIME, Text(&self.runtime)),
            (n::POD, Text(&self.pod)),
            (n::NAMESPACE, Text(&self.namespace)),
            (n::LABELS, Text(&self.labels)),
            (n::WORKLOAD, Text(&self.workload)),
            (n::PROCESS_KEY, Text(&self.process_key)),
            (n::PARENT_KEY, Text(&self.parent_key)),
            (n::ANCESTRY, Text(&self.ancestry)),
            (n::USER, Text(&self.user)),
            (n::EXE_NEW, Bool(&self.exe_new)),
            (n::EXE_WRITABLE, Bool(&self.exe_writable)),
            (n::EXE_FILELESS, Bool(&self.exe_fileless)),
            (n::PATH, Text(&self.path)),
            (n::PATH2, Text(&self.path2)),
            (n::PATH_SOURCE, Text(&self.path_source)),
            (n::ARGV, Text(&self.argv)),
            (n::TRUNCATED, Bool(&self.truncated)),
            (n::EXIT_CODE, I32(&self.exit_code)),
            (n::SIGNAL, I32(&self.signal)),
            (n::FLAGS, I64(&self.flags)),
            (n::MODE, I32(&self.mode)),
            (n::OP, I32(&self.op)),
            (n::TARGET_PID, I32(&self.target_pid)),
            (n::TARGET_UID, I32(&self.target_uid)),
            (n::TARGET_GID, I32(&self.target_gid)),
            (n::FSTYPE, Text(&self.fstype)),
            (n::FAMILY, Text(&self.family)),
            (n::PROTOCOL, Text(&self.protocol)),
            (n::SRC_ADDR, Text(&self.src_addr)),
            (n::SRC_PORT, I32(&self.src_port)),
            (n::DST_ADDR, Text(&self.dst_addr)),
            (n::DST_PORT, I32(&self.dst_port)),
            (n::BYTES, I64(&self.bytes)),
            (n::DNS_NAME, Text(&self.dns_name)),
            (n::DNS_TYPE, I32(&self.dns_type)),
            (n::DNS_ID, I32(&self.dns_id)),
            (n::DNS_RCODE, I32(&self.dns_rcode)),
            (n::DNS_ANSWERS, Text(&self.dns_answers)),
            (n::SYSCALL, I32(&self.syscall)),
            (n::RET, I64(&self.ret)),
            (n::SYSCALL_COUNTS, Map(&self.syscall_counts)),
            (n::COUNT, I64(&self.count)),
            (n::LABEL, Text(&self.label)),
            (n::CAP_EFFECTIVE, I64(&self.cap_effective)),
            (n::CAP_PERMITTED, I64(&self.cap_permitted)),
            (n::ATIME_NS, I64(&self.atime_ns)),
            (n::MTIME_NS, I64(&self.mtime_ns)),
            (n::LENGTH, I64(&self.length)),
            (n::CWD, Text(&self.cwd)),
        ];
        for (i, s) in self.stdio.iter().enumerate() {
            let names = &n::STDIO[i];
            named.extend([
                (names.ty, Text(&s.ty)),
                (names.inode, I64(&s.inode)),
                (names.path, Text(&s.path)),
                (names.addr, Text(&s.addr)),
                (names.port, I32(&s.port)),
            ]);
        }
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
    levels: Vec<i16>,
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
            levels: Vec::new(),
        })
    }

    /// Writes `rows`, in this order, as row groups of at most the configured size; returns
    /// how many rows that was.
    pub fn write<'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a Event>,
    ) -> Result<usize, ParquetError> {
        let host = self.host.clone();
        let mut gather = Gather::new();
        let (mut n, mut total) = (0, 0);
        for ev in rows {
            gather.push(&host, ev);
            n += 1;
            total += 1;
            if n == self.row_group_rows {
                self.write_row_group(&gather)?;
                gather = Gather::new();
                n = 0;
            }
        }
        if n > 0 {
            self.write_row_group(&gather)?;
        }
        Ok(total)
    }

    fn write_row_group(&mut self, gather: &Gather<'_>) -> Result<(), ParquetError> {
        let mut rg = self.file.next_row_group()?;
        let mut leaf = 0;
        for col in gather.columns() {
            match col {
                Col::Text(t) => {
                    let (Some(descr), Some(settings)) =
                        (self.leaves.get(leaf), self.settings.get(leaf))
                    else {
                        return Err(ParquetError::General("more columns than the schema".into()));
                    };
                    let (bytes, close) = t.write_chunk(descr, settings, &mut self.zstd)?;
                    rg.append_column(&bytes, close)?;
                }
                Col::I32(c) => write_num::<Int32Type, _>(&mut rg, c, &mut self.levels)?,
                Col::I64(c) => write_num::<Int64Type, _>(&mut rg, c, &mut self.levels)?,
                Col::Bool(c) => write_num::<BoolType, _>(&mut rg, c, &mut self.levels)?,
                Col::Map(m) => {
                    leaf += 1;
                    let mut rep = Vec::new();
                    m.rep.expand(&mut rep);
                    for (def, values) in [
                        (&m.key_def, Leaf::I32(&m.keys)),
                        (&m.value_def, Leaf::I64(&m.values)),
                    ] {
                        self.levels.clear();
                        def.expand(&mut self.levels);
                        let mut w = next(&mut rg)?;
                        match values {
                            Leaf::I32(v) => {
                                w.typed::<Int32Type>().write_batch(
                                    v,
                                    Some(&self.levels),
                                    Some(&rep),
                                )?;
                            }
                            Leaf::I64(v) => {
                                w.typed::<Int64Type>().write_batch(
                                    v,
                                    Some(&self.levels),
                                    Some(&rep),
                                )?;
                            }
                        }
                        w.close()?;
                    }
                }
            }
            leaf += 1;
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

enum Leaf<'g> {
    I32(&'g [i32]),
    I64(&'g [i64]),
}

fn next<'b, W: Write + Send>(
    rg: &'b mut SerializedRowGroupWriter<'_, W>,
) -> Result<parquet::file::writer::SerializedColumnWriter<'b>, ParquetError> {
    rg.next_column()?
        .ok_or_else(|| ParquetError::General("more columns than the schema".into()))
}

fn write_num<P: DataType, W: Write + Send>(
    rg: &mut SerializedRowGroupWriter<'_, W>,
    c: &Num<P::T>,
    levels: &mut Vec<i16>,
) -> Result<(), ParquetError>
where
    P::T: Copy,
{
    let mut w = next(rg)?;
    c.write(w.typed::<P>(), levels)?;
    w.close()
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
