//! Typed events in, Arrow record batches out: how importers, examples and tests write traces
//! (capture writes row groups directly, [`super::TraceFileWriter`], from the same
//! `KindColumns` of a row; its tests read both back equal).

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder,
    PrimitiveBuilder, StringBuilder, TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::compute::{sort_to_indices, take_record_batch};
use arrow::datatypes::ArrowPrimitiveType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::event::{Detail, Dns, Event, ExecState, FilePath, Net};
use super::{COLUMNS, arrow_schema, names as n};

/// The kind-specific columns of one row, borrowed from its [`Detail`]; every field defaults to null.
#[derive(Default)]
pub(super) struct KindColumns<'a> {
    pub(super) path: Option<&'a str>,
    pub(super) path2: Option<&'a str>,
    pub(super) path_source: Option<&'static str>,
    pub(super) argv: Option<&'a [String]>,
    pub(super) truncated: Option<bool>,
    pub(super) exit_code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) flags: Option<u64>,
    pub(super) mode: Option<u32>,
    pub(super) op: Option<u32>,
    pub(super) target_pid: Option<u32>,
    pub(super) target_uid: Option<u32>,
    pub(super) target_gid: Option<u32>,
    pub(super) fstype: Option<&'a str>,
    pub(super) net: Option<&'a Net>,
    pub(super) dns: Option<&'a Dns>,
    pub(super) syscall: Option<u32>,
    pub(super) ret: Option<i64>,
    pub(super) syscall_counts: Option<&'a [(u32, u64)]>,
    pub(super) count: Option<u64>,
    pub(super) exec: Option<&'a ExecState>,
    pub(super) atime_ns: Option<i64>,
    pub(super) mtime_ns: Option<i64>,
    pub(super) length: Option<u64>,
}

impl<'a> KindColumns<'a> {
    fn file(file: &'a FilePath, ret: Option<i64>) -> Self {
        KindColumns {
            path: Some(&file.path),
            path_source: Some(file.source.name()),
            ret,
            ..Default::default()
        }
    }

    fn net(net: &'a Net) -> Self {
        KindColumns {
            net: Some(net),
            ret: net.ret,
            count: net.count,
            ..Default::default()
        }
    }

    fn dns(dns: &'a Dns) -> Self {
        KindColumns {
            dns: Some(dns),
            net: Some(&dns.net),
            count: dns.net.count,
            ..Default::default()
        }
    }

    pub(super) fn of(detail: &'a Detail) -> Self {
        use Detail as D;
        let ret = |ret: &i64| KindColumns {
            ret: Some(*ret),
            ..Default::default()
        };
        match detail {
            D::Exec {
                argv,
                truncated,
                state,
            } => KindColumns {
                argv: Some(argv),
                truncated: Some(*truncated),
                exec: state.as_deref(),
                ..Default::default()
            },
            D::Fork | D::ContainerStart | D::ContainerStop => KindColumns::default(),
            D::Exit { code, signal } => KindColumns {
                exit_code: *code,
                signal: *signal,
                ..Default::default()
            },
            D::Open {
                file,
                flags,
                mode,
                ret,
                count,
            } => KindColumns {
                flags: Some(*flags),
                mode: Some(*mode),
                count: *count,
                ..KindColumns::file(file, Some(*ret))
            },
            D::Unlink { file, ret } => KindColumns::file(file, Some(*ret)),
            D::Rename {
                file,
                new_path,
                ret,
            } => KindColumns {
                path2: Some(new_path),
                ..KindColumns::file(file, Some(*ret))
            },
            D::Chmod { file, mode, ret } => KindColumns {
                mode: Some(*mode),
                ..KindColumns::file(file, Some(*ret))
            },
            D::Chown {
                file,
                uid,
                gid,
                ret,
            } => KindColumns {
                target_uid: Some(*uid),
                target_gid: Some(*gid),
                ..KindColumns::file(file, Some(*ret))
            },
            D::MemfdCreate { name, flags, ret } => KindColumns {
                path: Some(name),
                flags: Some(*flags),
                ret: Some(*ret),
                ..Default::default()
            },
            D::MmapExec { file, prot } => KindColumns {
                flags: Some(*prot),
                ..KindColumns::file(file, None)
            },
            D::Utimes {
                file,
                atime_ns,
                mtime_ns,
                flags,
                ret,
            } => KindColumns {
                atime_ns: *atime_ns,
                mtime_ns: *mtime_ns,
                flags: Some(*flags),
                ..KindColumns::file(file, Some(*ret))
            },
            D::Truncate { file, length, ret } => KindColumns {
                length: Some(*length),
                ..KindColumns::file(file, Some(*ret))
            },
            D::Link {
                file,
                new_path,
                ret,
            }
            | D::Symlink {
                file,
                new_path,
                ret,
            } => KindColumns {
                path2: Some(new_path),
                ..KindColumns::file(file, Some(*ret))
            },
            D::Mkdir { file, mode, ret } => KindColumns {
                mode: Some(*mode),
                ..KindColumns::file(file, Some(*ret))
            },
            D::Connect(net)
            | D::Accept(net)
            | D::Bind(net)
            | D::Listen(net)
            | D::SendTo(net)
            | D::Socket(net)
            | D::Dup(net) => KindColumns::net(net),
            D::DnsQuery(dns) | D::DnsResponse(dns) => KindColumns::dns(dns),
            D::Ptrace {
                request,
                target_pid,
                ret,
            } => KindColumns {
                op: Some(*request),
                target_pid: Some(*target_pid),
                ret: Some(*ret),
                ..Default::default()
            },
            D::ProcessVmWritev { target_pid, ret } => KindColumns {
                target_pid: Some(*target_pid),
                ret: Some(*ret),
                ..Default::default()
            },
            D::ProcMemWrite {
                file,
                target_pid,
                ret,
            } => KindColumns {
                target_pid: Some(*target_pid),
                ..KindColumns::file(file, Some(*ret))
            },
            D::ModuleLoad {
                file: Some(file),
                ret,
            } => KindColumns::file(file, Some(*ret)),
            D::ModuleLoad { file: None, ret: r } => ret(r),
            D::SetId { uid, gid, nr, ret } => KindColumns {
                target_uid: *uid,
                target_gid: *gid,
                syscall: Some(*nr),
                ret: Some(*ret),
                ..Default::default()
            },
            D::Capset { effective, ret } => KindColumns {
                flags: Some(*effective),
                ret: Some(*ret),
                ..Default::default()
            },
            D::Userfaultfd { flags, ret } | D::Unshare { flags, ret } | D::Setns { flags, ret } => {
                KindColumns {
                    flags: Some(*flags),
                    ret: Some(*ret),
                    ..Default::default()
                }
            }
            D::Mount {
                source,
                target,
                fstype,
                flags,
                ret,
            } => KindColumns {
                path: Some(source),
                path2: Some(target),
                fstype: Some(fstype),
                flags: Some(*flags),
                ret: Some(*ret),
                ..Default::default()
            },
            D::Bpf { cmd: op, ret } | D::Keyctl { op, ret } => KindColumns {
                op: Some(*op),
                ret: Some(*ret),
                ..Default::default()
            },
            D::SyscallProfile { counts } => KindColumns {
                syscall_counts: Some(counts),
                ..Default::default()
            },
            D::Syscall { nr, ret } => KindColumns {
                syscall: Some(*nr),
                ret: *ret,
                ..Default::default()
            },
            D::Lost { count } => KindColumns {
                count: Some(*count),
                ..Default::default()
            },
        }
    }
}

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
    exe_path: Sparse<StringBuilder>,
    exe_sha256: Sparse<StringBuilder>,
    container_id: Sparse<StringBuilder>,
    container_name: Sparse<StringBuilder>,
    image: Sparse<StringBuilder>,
    image_digest: Sparse<StringBuilder>,
    runtime: Sparse<StringBuilder>,
    pod: Sparse<StringBuilder>,
    namespace: Sparse<StringBuilder>,
    labels: Sparse<StringBuilder>,
    workload: Sparse<StringBuilder>,
    process_key: Sparse<StringBuilder>,
    parent_key: Sparse<StringBuilder>,
    ancestry: Sparse<ListBuilder<StringBuilder>>,
    user: Sparse<StringBuilder>,
    exe_new: Sparse<BooleanBuilder>,
    exe_writable: Sparse<BooleanBuilder>,
    exe_fileless: Sparse<BooleanBuilder>,
    path: Sparse<StringBuilder>,
    path2: Sparse<StringBuilder>,
    path_source: Sparse<StringBuilder>,
    argv: Sparse<ListBuilder<StringBuilder>>,
    truncated: Sparse<BooleanBuilder>,
    exit_code: Sparse<Int32Builder>,
    signal: Sparse<Int32Builder>,
    flags: Sparse<UInt64Builder>,
    mode: Sparse<UInt32Builder>,
    op: Sparse<UInt32Builder>,
    target_pid: Sparse<UInt32Builder>,
    target_uid: Sparse<UInt32Builder>,
    target_gid: Sparse<UInt32Builder>,
    fstype: Sparse<StringBuilder>,
    family: Sparse<StringBuilder>,
    protocol: Sparse<StringBuilder>,
    src_addr: Sparse<StringBuilder>,
    src_port: Sparse<UInt32Builder>,
    dst_addr: Sparse<StringBuilder>,
    dst_port: Sparse<UInt32Builder>,
    bytes: Sparse<UInt64Builder>,
    dns_name: Sparse<StringBuilder>,
    dns_type: Sparse<UInt32Builder>,
    dns_id: Sparse<UInt32Builder>,
    dns_rcode: Sparse<UInt32Builder>,
    dns_answers: Sparse<ListBuilder<StringBuilder>>,
    syscall: Sparse<UInt32Builder>,
    ret: Sparse<Int64Builder>,
    syscall_counts: MapBuilder<UInt32Builder, UInt64Builder>,
    count: Sparse<UInt64Builder>,
    label: Sparse<StringBuilder>,
    stdio: [StdioBuilders; 3],
    cap_effective: Sparse<UInt64Builder>,
    cap_permitted: Sparse<UInt64Builder>,
    atime_ns: Sparse<Int64Builder>,
    mtime_ns: Sparse<Int64Builder>,
    length: Sparse<UInt64Builder>,
    cwd: Sparse<StringBuilder>,
}

/// The columns of one standard fd of exec rows (`std*_type`, `_inode`, `_path`, `_addr`,
/// `_port`).
struct StdioBuilders {
    ty: Sparse<StringBuilder>,
    inode: Sparse<UInt64Builder>,
    path: Sparse<StringBuilder>,
    addr: Sparse<StringBuilder>,
    port: Sparse<UInt32Builder>,
}

impl StdioBuilders {
    fn new() -> Self {
        StdioBuilders {
            ty: Sparse::new(StringBuilder::new()),
            inode: Sparse::new(UInt64Builder::new()),
            path: Sparse::new(StringBuilder::new()),
            addr: Sparse::new(StringBuilder::new()),
            port: Sparse::new(UInt32Builder::new()),
        }
    }

    fn push(&mut self, fd: Option<&super::event::Fd>) {
        self.ty.option(fd.map(|f| f.kind.name()));
        self.inode.option(fd.and_then(|f| f.inode));
        self.path.option(fd.and_then(|f| f.path.as_deref()));
        self.addr.option(fd.and_then(|f| f.addr.as_deref()));
        self.port.option(fd.and_then(|f| f.port).map(u32::from));
    }

    /// The arrays under the names of fd `i`'s columns.
    fn finish(&mut self, i: usize) -> [(&'static str, ArrayRef); 5] {
        let names = &n::STDIO[i];
        [
            (names.ty, self.ty.finish()),
            (names.inode, self.inode.finish()),
            (names.path, self.path.finish()),
            (names.addr, self.addr.finish()),
            (names.port, self.port.finish()),
        ]
    }
}

/// A column builder that holds nulls back and appends each run of them at once, when the
/// next value or the end of the batch comes: most columns are null on most rows (a syscall
/// row fills a dozen of sixty), and a run costs one call where a null per row costs a
/// validity bit (and an offset) each.
struct Sparse<B> {
    b: B,
    nulls: usize,
}

/// Builders that append a run of nulls in one call.
trait NullRun: ArrayBuilder {
    fn append_nulls(&mut self, n: usize);
}

impl NullRun for StringBuilder {
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n);
    }
}

impl<T: ArrowPrimitiveType> NullRun for PrimitiveBuilder<T> {
    fn append_nulls(&mut self, n: usize) {
        PrimitiveBuilder::append_nulls(self, n);
    }
}

impl NullRun for BooleanBuilder {
    fn append_nulls(&mut self, n: usize) {
        BooleanBuilder::append_nulls(self, n);
    }
}

impl NullRun for ListBuilder<StringBuilder> {
    fn append_nulls(&mut self, n: usize) {
        ListBuilder::append_nulls(self, n);
    }
}

impl<B: NullRun> Sparse<B> {
    fn new(b: B) -> Self {
        Sparse { b, nulls: 0 }
    }

    /// The builder, with every held-back null appended.
    fn get(&mut self) -> &mut B {
        if self.nulls > 0 {
            self.b.append_nulls(self.nulls);
            self.nulls = 0;
        }
        &mut self.b
    }

    /// Appends `v`, or holds a null back.
    fn option<V>(&mut self, v: Option<V>)
    where
        B: AppendValue<V>,
    {
        match v {
            Some(v) => self.get().append(v),
            None => self.nulls += 1,
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.get().finish()
    }
}

/// Builders that take a value of type `V`.
trait AppendValue<V>: NullRun {
    fn append(&mut self, v: V);
}

impl<'a> AppendValue<&'a str> for StringBuilder {
    fn append(&mut self, v: &'a str) {
        self.append_value(v);
    }
}

impl<T: ArrowPrimitiveType> AppendValue<T::Native> for PrimitiveBuilder<T> {
    fn append(&mut self, v: T::Native) {
        self.append_value(v);
    }
}

impl AppendValue<bool> for BooleanBuilder {
    fn append(&mut self, v: bool) {
        self.append_value(v);
    }
}

impl Sparse<ListBuilder<StringBuilder>> {
    fn list<S: AsRef<str>>(&mut self, items: Option<&[S]>) {
        match items {
            Some(items) => {
                let b = self.get();
                for s in items {
                    b.values().append_value(s);
                }
                b.append(true);
            }
            None => self.nulls += 1,
        }
    }
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
            exe_path: Sparse::new(StringBuilder::new()),
            exe_sha256: Sparse::new(StringBuilder::new()),
            container_id: Sparse::new(StringBuilder::new()),
            container_name: Sparse::new(StringBuilder::new()),
            image: Sparse::new(StringBuilder::new()),
            image_digest: Sparse::new(StringBuilder::new()),
            runtime: Sparse::new(StringBuilder::new()),
            pod: Sparse::new(StringBuilder::new()),
            namespace: Sparse::new(StringBuilder::new()),
            labels: Sparse::new(StringBuilder::new()),
            workload: Sparse::new(StringBuilder::new()),
            process_key: Sparse::new(StringBuilder::new()),
            parent_key: Sparse::new(StringBuilder::new()),
            ancestry: Sparse::new(ListBuilder::new(StringBuilder::new())),
            user: Sparse::new(StringBuilder::new()),
            exe_new: Sparse::new(BooleanBuilder::new()),
            exe_writable: Sparse::new(BooleanBuilder::new()),
            exe_fileless: Sparse::new(BooleanBuilder::new()),
            path: Sparse::new(StringBuilder::new()),
            path2: Sparse::new(StringBuilder::new()),
            path_source: Sparse::new(StringBuilder::new()),
            argv: Sparse::new(ListBuilder::new(StringBuilder::new())),
            truncated: Sparse::new(BooleanBuilder::new()),
            exit_code: Sparse::new(Int32Builder::new()),
            signal: Sparse::new(Int32Builder::new()),
            flags: Sparse::new(UInt64Builder::new()),
            mode: Sparse::new(UInt32Builder::new()),
            op: Sparse::new(UInt32Builder::new()),
            target_pid: Sparse::new(UInt32Builder::new()),
            target_uid: Sparse::new(UInt32Builder::new()),
            target_gid: Sparse::new(UInt32Builder::new()),
            fstype: Sparse::new(StringBuilder::new()),
            family: Sparse::new(StringBuilder::new()),
            protocol: Sparse::new(StringBuilder::new()),
            src_addr: Sparse::new(StringBuilder::new()),
            src_port: Sparse::new(UInt32Builder::new()),
            dst_addr: Sparse::new(StringBuilder::new()),
            dst_port: Sparse::new(UInt32Builder::new()),
            bytes: Sparse::new(UInt64Builder::new()),
            dns_name: Sparse::new(StringBuilder::new()),
            dns_type: Sparse::new(UInt32Builder::new()),
            dns_id: Sparse::new(UInt32Builder::new()),
            dns_rcode: Sparse::new(UInt32Builder::new()),
            dns_answers: Sparse::new(ListBuilder::new(StringBuilder::new())),
            syscall: Sparse::new(UInt32Builder::new()),
            ret: Sparse::new(Int64Builder::new()),
            syscall_counts: MapBuilder::new(None, UInt32Builder::new(), UInt64Builder::new()),
            count: Sparse::new(UInt64Builder::new()),
            label: Sparse::new(StringBuilder::new()),
            stdio: [
                StdioBuilders::new(),
                StdioBuilders::new(),
                StdioBuilders::new(),
            ],
            cap_effective: Sparse::new(UInt64Builder::new()),
            cap_permitted: Sparse::new(UInt64Builder::new()),
            atime_ns: Sparse::new(Int64Builder::new()),
            mtime_ns: Sparse::new(Int64Builder::new()),
            length: Sparse::new(UInt64Builder::new()),
            cwd: Sparse::new(StringBuilder::new()),
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
        self.exe_path.option(ev.exe_path.as_deref());
        self.exe_sha256.option(ev.exe_sha256.as_deref());
        let c = ev.container.as_deref();
        self.container_id.option(c.map(|c| &*c.id));
        self.container_name
            .option(c.and_then(|c| c.name.as_deref()));
        self.image.option(c.and_then(|c| c.image.as_deref()));
        self.image_digest
            .option(c.and_then(|c| c.image_digest.as_deref()));
        self.runtime.option(c.and_then(|c| c.runtime.as_deref()));
        self.pod.option(c.and_then(|c| c.pod.as_deref()));
        self.namespace
            .option(c.and_then(|c| c.namespace.as_deref()));
        self.labels.option(c.and_then(|c| c.labels.as_deref()));
        self.label.option(ev.label.as_deref());
        self.workload.option(ev.workload.as_deref());
        let x = ev.context.as_deref();
        self.process_key.option(x.map(|x| &*x.key));
        self.parent_key
            .option(x.and_then(|x| x.parent_key.as_deref()));
        self.ancestry.list(x.map(|x| x.ancestry.as_slice()));
        self.user.option(x.and_then(|x| x.user.as_deref()));
        self.exe_new.option(x.and_then(|x| x.exe_new));
        self.exe_writable.option(x.and_then(|x| x.exe_writable));
        self.exe_fileless.option(x.and_then(|x| x.exe_fileless));
        self.push_kind_columns(KindColumns::of(&ev.detail));
    }

    fn push_kind_columns(&mut self, k: KindColumns<'_>) {
        self.path.option(k.path);
        self.path2.option(k.path2);
        self.path_source.option(k.path_source);
        self.argv.list(k.argv);
        self.truncated.option(k.truncated);
        self.exit_code.option(k.exit_code);
        self.signal.option(k.signal);
        self.flags.option(k.flags);
        self.mode.option(k.mode);
        self.op.option(k.op);
        self.target_pid.option(k.target_pid);
        self.target_uid.option(k.target_uid);
        self.target_gid.option(k.target_gid);
        self.fstype.option(k.fstype);
        let net = k.net;
        self.family.option(net.map(|n| &*n.family));
        self.protocol.option(net.map(|n| &*n.protocol));
        self.src_addr
            .option(net.and_then(|n| n.src_addr.as_deref()));
        self.src_port
            .option(net.and_then(|n| n.src_port).map(u32::from));
        self.dst_addr
            .option(net.and_then(|n| n.dst_addr.as_deref()));
        self.dst_port
            .option(net.and_then(|n| n.dst_port).map(u32::from));
        self.bytes.option(net.and_then(|n| n.bytes));
        let dns = k.dns;
        self.dns_name.option(dns.map(|d| d.name.as_str()));
        self.dns_type.option(dns.map(|d| u32::from(d.qtype)));
        self.dns_id.option(dns.map(|d| u32::from(d.id)));
        self.dns_rcode
            .option(dns.and_then(|d| d.rcode).map(u32::from));
        self.dns_answers.list(
            dns.filter(|d| d.rcode.is_some())
                .map(|d| d.answers.as_slice()),
        );
        self.syscall.option(k.syscall);
        self.ret.option(k.ret);
        match k.syscall_counts {
            Some(counts) => {
                for &(nr, count) in counts {
                    self.syscall_counts.keys().append_value(nr);
                    self.syscall_counts.values().append_value(count);
                }
                // Cannot fail: keys and values were appended in pairs.
                let _ = self.syscall_counts.append(true);
            }
            None => {
                let _ = self.syscall_counts.append(false);
            }
        }
        self.count.option(k.count);
        let exec = k.exec;
        for (i, b) in self.stdio.iter_mut().enumerate() {
            b.push(exec.and_then(|x| x.stdio[i].as_ref()));
        }
        self.cap_effective
            .option(exec.and_then(|x| x.cap_effective));
        self.cap_permitted
            .option(exec.and_then(|x| x.cap_permitted));
        self.atime_ns.option(k.atime_ns);
        self.mtime_ns.option(k.mtime_ns);
        self.length.option(k.length);
        self.cwd.option(exec.and_then(|x| x.cwd.as_deref()));
    }

    /// Emits the pending rows in arrival order and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let mut built: Vec<(&'static str, ArrayRef)> = vec![
            (n::TIME, Arc::new(self.time.finish())),
            (n::KTIME_NS, Arc::new(self.ktime_ns.finish())),
            (n::HOST, Arc::new(self.host_col.finish())),
            (n::KIND, Arc::new(self.kind.finish())),
            (n::PID, Arc::new(self.pid.finish())),
            (n::TGID, Arc::new(self.tgid.finish())),
            (n::PPID, Arc::new(self.ppid.finish())),
            (n::UID, Arc::new(self.uid.finish())),
            (n::GID, Arc::new(self.gid.finish())),
            (n::COMM, Arc::new(self.comm.finish())),
            (n::CGROUP_ID, Arc::new(self.cgroup_id.finish())),
            (n::EXE_PATH, self.exe_path.finish()),
            (n::EXE_SHA256, self.exe_sha256.finish()),
            (n::CONTAINER_ID, self.container_id.finish()),
            (n::CONTAINER_NAME, self.container_name.finish()),
            (n::IMAGE, self.image.finish()),
            (n::IMAGE_DIGEST, self.image_digest.finish()),
            (n::RUNTIME, self.runtime.finish()),
            (n::POD, self.pod.finish()),
            (n::NAMESPACE, self.namespace.finish()),
            (n::LABELS, self.labels.finish()),
            (n::WORKLOAD, self.workload.finish()),
            (n::PROCESS_KEY, self.process_key.finish()),
            (n::PARENT_KEY, self.parent_key.finish()),
            (n::ANCESTRY, self.ancestry.finish()),
            (n::USER, self.user.finish()),
            (n::EXE_NEW, self.exe_new.finish()),
            (n::EXE_WRITABLE, self.exe_writable.finish()),
            (n::EXE_FILELESS, self.exe_fileless.finish()),
            (n::PATH, self.path.finish()),
            (n::PATH2, self.path2.finish()),
            (n::PATH_SOURCE, self.path_source.finish()),
            (n::ARGV, self.argv.finish()),
            (n::TRUNCATED, self.truncated.finish()),
            (n::EXIT_CODE, self.exit_code.finish()),
            (n::SIGNAL, self.signal.finish()),
            (n::FLAGS, self.flags.finish()),
            (n::MODE, self.mode.finish()),
            (n::OP, self.op.finish()),
            (n::TARGET_PID, self.target_pid.finish()),
            (n::TARGET_UID, self.target_uid.finish()),
            (n::TARGET_GID, self.target_gid.finish()),
            (n::FSTYPE, self.fstype.finish()),
            (n::FAMILY, self.family.finish()),
            (n::PROTOCOL, self.protocol.finish()),
            (n::SRC_ADDR, self.src_addr.finish()),
            (n::SRC_PORT, self.src_port.finish()),
            (n::DST_ADDR, self.dst_addr.finish()),
            (n::DST_PORT, self.dst_port.finish()),
            (n::BYTES, self.bytes.finish()),
            (n::DNS_NAME, self.dns_name.finish()),
            (n::DNS_TYPE, self.dns_type.finish()),
            (n::DNS_ID, self.dns_id.finish()),
            (n::DNS_RCODE, self.dns_rcode.finish()),
            (n::DNS_ANSWERS, self.dns_answers.finish()),
            (n::SYSCALL, self.syscall.finish()),
            (n::RET, self.ret.finish()),
            (n::SYSCALL_COUNTS, Arc::new(self.syscall_counts.finish())),
            (n::COUNT, self.count.finish()),
            (n::LABEL, self.label.finish()),
            (n::CAP_EFFECTIVE, self.cap_effective.finish()),
            (n::CAP_PERMITTED, self.cap_permitted.finish()),
            (n::ATIME_NS, self.atime_ns.finish()),
            (n::MTIME_NS, self.mtime_ns.finish()),
            (n::LENGTH, self.length.finish()),
            (n::CWD, self.cwd.finish()),
        ];
        for (i, b) in self.stdio.iter_mut().enumerate() {
            built.extend(b.finish(i));
        }
        // Put the arrays in COLUMNS order; a column without a builder is a bug in this file,
        // caught by the unit tests (RecordBatch::try_new checks every type).
        let columns: Vec<ArrayRef> = COLUMNS
            .iter()
            .map(|c| {
                let i = built
                    .iter()
                    .position(|(name, _)| *name == c.name)
                    .expect("every column has a builder");
                built.swap_remove(i).1
            })
            .collect();
        RecordBatch::try_new(arrow_schema(), columns).expect("builder columns match COLUMNS")
    }

    /// Emits the pending rows sorted by the kernel's boot-time clock.
    pub fn finish_sorted(&mut self) -> Result<RecordBatch, ArrowError> {
        let batch = self.finish();
        let Some(ktime) = batch.column_by_name(n::KTIME_NS) else {
            return Ok(batch);
        };
        let order = sort_to_indices(ktime, None, None)?;
        take_record_batch(&batch, &order)
    }
}
