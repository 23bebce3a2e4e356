//! Typed events in, Arrow record batches out — the only code that writes trace columns.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::compute::{sort_to_indices, take_record_batch};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::event::{Detail, Dns, Event, FilePath, Net};
use super::{COLUMNS, arrow_schema, names as n};

/// The kind-specific columns of one row, borrowed from its [`Detail`]; every field defaults to null.
#[derive(Default)]
struct KindColumns<'a> {
    path: Option<&'a str>,
    path2: Option<&'a str>,
    path_source: Option<&'static str>,
    argv: Option<&'a [String]>,
    truncated: Option<bool>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    flags: Option<u64>,
    mode: Option<u32>,
    op: Option<u32>,
    target_pid: Option<u32>,
    target_uid: Option<u32>,
    target_gid: Option<u32>,
    fstype: Option<&'a str>,
    net: Option<&'a Net>,
    dns: Option<&'a Dns>,
    syscall: Option<u32>,
    ret: Option<i64>,
    syscall_counts: Option<&'a [(u32, u64)]>,
    count: Option<u64>,
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
            ..Default::default()
        }
    }

    fn of(detail: &'a Detail) -> Self {
        use Detail as D;
        let ret = |ret: &i64| KindColumns {
            ret: Some(*ret),
            ..Default::default()
        };
        match detail {
            D::Exec { argv, truncated } => KindColumns {
                argv: Some(argv),
                truncated: Some(*truncated),
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
            D::Connect(net) | D::Accept(net) | D::Bind(net) | D::Listen(net) | D::SendTo(net) => {
                KindColumns::net(net)
            }
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
    exe_path: StringBuilder,
    exe_sha256: StringBuilder,
    container_id: StringBuilder,
    container_name: StringBuilder,
    image: StringBuilder,
    runtime: StringBuilder,
    pod: StringBuilder,
    namespace: StringBuilder,
    labels: StringBuilder,
    workload: StringBuilder,
    process_key: StringBuilder,
    parent_key: StringBuilder,
    ancestry: ListBuilder<StringBuilder>,
    user: StringBuilder,
    exe_new: BooleanBuilder,
    exe_writable: BooleanBuilder,
    exe_fileless: BooleanBuilder,
    path: StringBuilder,
    path2: StringBuilder,
    path_source: StringBuilder,
    argv: ListBuilder<StringBuilder>,
    truncated: BooleanBuilder,
    exit_code: Int32Builder,
    signal: Int32Builder,
    flags: UInt64Builder,
    mode: UInt32Builder,
    op: UInt32Builder,
    target_pid: UInt32Builder,
    target_uid: UInt32Builder,
    target_gid: UInt32Builder,
    fstype: StringBuilder,
    family: StringBuilder,
    protocol: StringBuilder,
    src_addr: StringBuilder,
    src_port: UInt32Builder,
    dst_addr: StringBuilder,
    dst_port: UInt32Builder,
    bytes: UInt64Builder,
    dns_name: StringBuilder,
    dns_type: UInt32Builder,
    dns_id: UInt32Builder,
    dns_rcode: UInt32Builder,
    dns_answers: ListBuilder<StringBuilder>,
    syscall: UInt32Builder,
    ret: Int64Builder,
    syscall_counts: MapBuilder<UInt32Builder, UInt64Builder>,
    count: UInt64Builder,
    label: StringBuilder,
}

fn append_list(b: &mut ListBuilder<StringBuilder>, items: Option<&[String]>) {
    match items {
        Some(items) => {
            for s in items {
                b.values().append_value(s);
            }
            b.append(true);
        }
        None => b.append(false),
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
            exe_path: StringBuilder::new(),
            exe_sha256: StringBuilder::new(),
            container_id: StringBuilder::new(),
            container_name: StringBuilder::new(),
            image: StringBuilder::new(),
            runtime: StringBuilder::new(),
            pod: StringBuilder::new(),
            namespace: StringBuilder::new(),
            labels: StringBuilder::new(),
            workload: StringBuilder::new(),
            process_key: StringBuilder::new(),
            parent_key: StringBuilder::new(),
            ancestry: ListBuilder::new(StringBuilder::new()),
            user: StringBuilder::new(),
            exe_new: BooleanBuilder::new(),
            exe_writable: BooleanBuilder::new(),
            exe_fileless: BooleanBuilder::new(),
            path: StringBuilder::new(),
            path2: StringBuilder::new(),
            path_source: StringBuilder::new(),
            argv: ListBuilder::new(StringBuilder::new()),
            truncated: BooleanBuilder::new(),
            exit_code: Int32Builder::new(),
            signal: Int32Builder::new(),
            flags: UInt64Builder::new(),
            mode: UInt32Builder::new(),
            op: UInt32Builder::new(),
            target_pid: UInt32Builder::new(),
            target_uid: UInt32Builder::new(),
            target_gid: UInt32Builder::new(),
            fstype: StringBuilder::new(),
            family: StringBuilder::new(),
            protocol: StringBuilder::new(),
            src_addr: StringBuilder::new(),
            src_port: UInt32Builder::new(),
            dst_addr: StringBuilder::new(),
            dst_port: UInt32Builder::new(),
            bytes: UInt64Builder::new(),
            dns_name: StringBuilder::new(),
            dns_type: UInt32Builder::new(),
            dns_id: UInt32Builder::new(),
            dns_rcode: UInt32Builder::new(),
            dns_answers: ListBuilder::new(StringBuilder::new()),
            syscall: UInt32Builder::new(),
            ret: Int64Builder::new(),
            syscall_counts: MapBuilder::new(None, UInt32Builder::new(), UInt64Builder::new()),
            count: UInt64Builder::new(),
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
        self.container_name
            .append_option(c.and_then(|c| c.name.as_deref()));
        self.image.append_option(c.and_then(|c| c.image.as_deref()));
        self.runtime
            .append_option(c.and_then(|c| c.runtime.as_deref()));
        self.pod.append_option(c.and_then(|c| c.pod.as_deref()));
        self.namespace
            .append_option(c.and_then(|c| c.namespace.as_deref()));
        self.labels
            .append_option(c.and_then(|c| c.labels.as_deref()));
        self.label.append_option(ev.label.as_deref());
        self.workload.append_option(ev.workload.as_deref());
        let x = ev.context.as_deref();
        self.process_key.append_option(x.map(|x| &*x.key));
        self.parent_key
            .append_option(x.and_then(|x| x.parent_key.as_deref()));
        match x {
            Some(x) => {
                for a in &x.ancestry {
                    self.ancestry.values().append_value(a);
                }
                self.ancestry.append(true);
            }
            None => self.ancestry.append(false),
        }
        self.user.append_option(x.and_then(|x| x.user.as_deref()));
        self.exe_new.append_option(x.and_then(|x| x.exe_new));
        self.exe_writable
            .append_option(x.and_then(|x| x.exe_writable));
        self.exe_fileless
            .append_option(x.and_then(|x| x.exe_fileless));
        self.push_kind_columns(KindColumns::of(&ev.detail));
    }

    fn push_kind_columns(&mut self, k: KindColumns<'_>) {
        self.path.append_option(k.path);
        self.path2.append_option(k.path2);
        self.path_source.append_option(k.path_source);
        append_list(&mut self.argv, k.argv);
        self.truncated.append_option(k.truncated);
        self.exit_code.append_option(k.exit_code);
        self.signal.append_option(k.signal);
        self.flags.append_option(k.flags);
        self.mode.append_option(k.mode);
        self.op.append_option(k.op);
        self.target_pid.append_option(k.target_pid);
        self.target_uid.append_option(k.target_uid);
        self.target_gid.append_option(k.target_gid);
        self.fstype.append_option(k.fstype);
        let net = k.net;
        self.family.append_option(net.map(|n| n.family.as_str()));
        self.protocol
            .append_option(net.map(|n| n.protocol.as_str()));
        self.src_addr
            .append_option(net.and_then(|n| n.src_addr.as_deref()));
        self.src_port
            .append_option(net.and_then(|n| n.src_port).map(u32::from));
        self.dst_addr
            .append_option(net.and_then(|n| n.dst_addr.as_deref()));
        self.dst_port
            .append_option(net.and_then(|n| n.dst_port).map(u32::from));
        self.bytes.append_option(net.and_then(|n| n.bytes));
        let dns = k.dns;
        self.dns_name.append_option(dns.map(|d| d.name.as_str()));
        self.dns_type.append_option(dns.map(|d| u32::from(d.qtype)));
        self.dns_id.append_option(dns.map(|d| u32::from(d.id)));
        self.dns_rcode
            .append_option(dns.and_then(|d| d.rcode).map(u32::from));
        append_list(
            &mut self.dns_answers,
            dns.filter(|d| d.rcode.is_some())
                .map(|d| d.answers.as_slice()),
        );
        self.syscall.append_option(k.syscall);
        self.ret.append_option(k.ret);
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
        self.count.append_option(k.count);
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
            (n::EXE_PATH, Arc::new(self.exe_path.finish())),
            (n::EXE_SHA256, Arc::new(self.exe_sha256.finish())),
            (n::CONTAINER_ID, Arc::new(self.container_id.finish())),
            (n::CONTAINER_NAME, Arc::new(self.container_name.finish())),
            (n::IMAGE, Arc::new(self.image.finish())),
            (n::RUNTIME, Arc::new(self.runtime.finish())),
            (n::POD, Arc::new(self.pod.finish())),
            (n::NAMESPACE, Arc::new(self.namespace.finish())),
            (n::LABELS, Arc::new(self.labels.finish())),
            (n::WORKLOAD, Arc::new(self.workload.finish())),
            (n::PROCESS_KEY, Arc::new(self.process_key.finish())),
            (n::PARENT_KEY, Arc::new(self.parent_key.finish())),
            (n::ANCESTRY, Arc::new(self.ancestry.finish())),
            (n::USER, Arc::new(self.user.finish())),
            (n::EXE_NEW, Arc::new(self.exe_new.finish())),
            (n::EXE_WRITABLE, Arc::new(self.exe_writable.finish())),
            (n::EXE_FILELESS, Arc::new(self.exe_fileless.finish())),
            (n::PATH, Arc::new(self.path.finish())),
            (n::PATH2, Arc::new(self.path2.finish())),
            (n::PATH_SOURCE, Arc::new(self.path_source.finish())),
            (n::ARGV, Arc::new(self.argv.finish())),
            (n::TRUNCATED, Arc::new(self.truncated.finish())),
            (n::EXIT_CODE, Arc::new(self.exit_code.finish())),
            (n::SIGNAL, Arc::new(self.signal.finish())),
            (n::FLAGS, Arc::new(self.flags.finish())),
            (n::MODE, Arc::new(self.mode.finish())),
            (n::OP, Arc::new(self.op.finish())),
            (n::TARGET_PID, Arc::new(self.target_pid.finish())),
            (n::TARGET_UID, Arc::new(self.target_uid.finish())),
            (n::TARGET_GID, Arc::new(self.target_gid.finish())),
            (n::FSTYPE, Arc::new(self.fstype.finish())),
            (n::FAMILY, Arc::new(self.family.finish())),
            (n::PROTOCOL, Arc::new(self.protocol.finish())),
            (n::SRC_ADDR, Arc::new(self.src_addr.finish())),
            (n::SRC_PORT, Arc::new(self.src_port.finish())),
            (n::DST_ADDR, Arc::new(self.dst_addr.finish())),
            (n::DST_PORT, Arc::new(self.dst_port.finish())),
            (n::BYTES, Arc::new(self.bytes.finish())),
            (n::DNS_NAME, Arc::new(self.dns_name.finish())),
            (n::DNS_TYPE, Arc::new(self.dns_type.finish())),
            (n::DNS_ID, Arc::new(self.dns_id.finish())),
            (n::DNS_RCODE, Arc::new(self.dns_rcode.finish())),
            (n::DNS_ANSWERS, Arc::new(self.dns_answers.finish())),
            (n::SYSCALL, Arc::new(self.syscall.finish())),
            (n::RET, Arc::new(self.ret.finish())),
            (n::SYSCALL_COUNTS, Arc::new(self.syscall_counts.finish())),
            (n::COUNT, Arc::new(self.count.finish())),
            (n::LABEL, Arc::new(self.label.finish())),
        ];
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
