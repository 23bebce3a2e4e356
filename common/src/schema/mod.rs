//! The trace file format: one wide `events` table in zstd Parquet.
//!
//! Every column is declared once in [`COLUMNS`] with its Arrow type and meaning. Columns common
//! to all events come first; kind-specific columns are nullable and null where they do not
//! apply (nulls cost nothing in Parquet), so one scan answers every question.
//!
//! Compatibility: readers accept any file whose `needle.schema_version` is at most
//! [`SCHEMA_VERSION`]. New columns may be added without a version bump (readers treat a
//! missing column as all-null); renaming or retyping a column, or adding an event kind (an
//! older reader cannot decode its rows), bumps the version, so that an older reader refuses
//! the whole file up front with the version it needs.
//!
//! Versions: 1 — the first layout; 2 — kinds `utimes`, `truncate`, `link`, `symlink`,
//! `mkdir`, `socket`, `dup`; exec rows' standard fds (`std*_*`), capabilities and working
//! directory (`cwd`); columns `atime_ns`, `mtime_ns`, `length`.

mod builder;
mod chunks;
mod event;
mod levels;
mod metadata;
mod num;
mod page;
mod reader;
mod rle;
mod text;
mod write;

pub use builder::TraceBatchBuilder;
pub use chunks::{Row, TraceFileWriter};
pub use event::{
    Container, Detail, Dns, Event, ExecState, Fd, FdType, FilePath, Net, PathSource, Process,
    ProcessContext,
};
pub use metadata::{KEY_PREFIX, MetadataError, ProgramStatus, TraceMetadata};
pub use reader::{ReadError, count_map, events_from_batch};
pub use write::{WriteOptions, writer_properties};

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Version of the column layout written by this build.
pub const SCHEMA_VERSION: u32 = 2;

/// Arrow type of a column, in the few shapes the trace uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Wall-clock time, nanoseconds since the Unix epoch, UTC.
    TimestampNs,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Boolean.
    Bool,
    /// UTF-8 text (bytes that are not UTF-8 are replaced, see [`Event`]).
    Str,
    /// A list of UTF-8 strings.
    StrList,
    /// A map from syscall number (u32) to count (u64).
    CountMap,
}

impl ColumnType {
    /// The Arrow data type of this column type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::TimestampNs => {
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
            }
            ColumnType::U64 => DataType::UInt64,
            ColumnType::U32 => DataType::UInt32,
            ColumnType::I32 => DataType::Int32,
            ColumnType::I64 => DataType::Int64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Str => DataType::Utf8,
            ColumnType::StrList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            ColumnType::CountMap => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(
                        vec![
                            Field::new("keys", DataType::UInt32, false),
                            Field::new("values", DataType::UInt64, true),
                        ]
                        .into(),
                    ),
                    false,
                )),
                false,
            ),
        }
    }
}

/// One column of the `events` table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Arrow type.
    pub ty: ColumnType,
    /// Whether rows may be null.
    pub nullable: bool,
    /// Which event kinds fill it (`"all"` for common columns).
    pub kinds: &'static str,
    /// What it holds, with its unit.
    pub doc: &'static str,
}

const fn col(
    name: &'static str,
    ty: ColumnType,
    nullable: bool,
    kinds: &'static str,
    doc: &'static str,
) -> Column {
    Column {
        name,
        ty,
        nullable,
        kinds,
        doc,
    }
}

use ColumnType::*;

/// Column names, for readers that want to refer to one without a string literal.
pub mod names {
    #![allow(missing_docs)]
    pub const TIME: &str = "time";
    pub const KTIME_NS: &str = "ktime_ns";
    pub const HOST: &str = "host";
    pub const KIND: &str = "kind";
    pub const PID: &str = "pid";
    pub const TGID: &str = "tgid";
    pub const PPID: &str = "ppid";
    pub const UID: &str = "uid";
    pub const GID: &str = "gid";
    pub const COMM: &str = "comm";
    pub const CGROUP_ID: &str = "cgroup_id";
    pub const EXE_PATH: &str = "exe_path";
    pub const EXE_SHA256: &str = "exe_sha256";
    pub const CONTAINER_ID: &str = "container_id";
    pub const CONTAINER_NAME: &str = "container_name";
    pub const IMAGE: &str = "image";
    pub const IMAGE_DIGEST: &str = "image_digest";
    pub const RUNTIME: &str = "runtime";
    pub const POD: &str = "pod";
    pub const NAMESPACE: &str = "namespace";
    pub const LABELS: &str = "labels";
    pub const WORKLOAD: &str = "workload";
    pub const PROCESS_KEY: &str = "process_key";
    pub const PARENT_KEY: &str = "parent_key";
    pub const ANCESTRY: &str = "ancestry";
    pub const USER: &str = "user";
    pub const EXE_NEW: &str = "exe_new";
    pub const EXE_WRITABLE: &str = "exe_writable";
    pub const EXE_FILELESS: &str = "exe_fileless";
    pub const PATH: &str = "path";
    pub const PATH2: &str = "path2";
    pub const PATH_SOURCE: &str = "path_source";
    pub const ARGV: &str = "argv";
    pub const TRUNCATED: &str = "truncated";
    pub const EXIT_CODE: &str = "exit_code";
    pub const SIGNAL: &str = "signal";
    pub const FLAGS: &str = "flags";
    pub const MODE: &str = "mode";
    pub const OP: &str = "op";
    pub const TARGET_PID: &str = "target_pid";
    pub const TARGET_UID: &str = "target_uid";
    pub const TARGET_GID: &str = "target_gid";
    pub const FSTYPE: &str = "fstype";
    pub const FAMILY: &str = "family";
    pub const PROTOCOL: &str = "protocol";
    pub const SRC_ADDR: &str = "src_addr";
    pub const SRC_PORT: &str = "src_port";
    pub const DST_ADDR: &str = "dst_addr";
    pub const DST_PORT: &str = "dst_port";
    pub const BYTES: &str = "bytes";
    pub const DNS_NAME: &str = "dns_name";
    pub const DNS_TYPE: &str = "dns_type";
    pub const DNS_ID: &str = "dns_id";
    pub const DNS_RCODE: &str = "dns_rcode";
    pub const DNS_ANSWERS: &str = "dns_answers";
    pub const SYSCALL: &str = "syscall";
    pub const RET: &str = "ret";
    pub const SYSCALL_COUNTS: &str = "syscall_counts";
    pub const COUNT: &str = "count";
    pub const LABEL: &str = "label";
    pub const STDIN_TYPE: &str = "stdin_type";
    pub const STDIN_INODE: &str = "stdin_inode";
    pub const STDIN_PATH: &str = "stdin_path";
    pub const STDIN_ADDR: &str = "stdin_addr";
    pub const STDIN_PORT: &str = "stdin_port";
    pub const STDOUT_TYPE: &str = "stdout_type";
    pub const STDOUT_INODE: &str = "stdout_inode";
    pub const STDOUT_PATH: &str = "stdout_path";
    pub const STDOUT_ADDR: &str = "stdout_addr";
    pub const STDOUT_PORT: &str = "stdout_port";
    pub const STDERR_TYPE: &str = "stderr_type";
    pub const STDERR_INODE: &str = "stderr_inode";
    pub const STDERR_PATH: &str = "stderr_path";
    pub const STDERR_ADDR: &str = "stderr_addr";
    pub const STDERR_PORT: &str = "stderr_port";
    pub const CAP_EFFECTIVE: &str = "cap_effective";
    pub const CAP_PERMITTED: &str = "cap_permitted";
    pub const ATIME_NS: &str = "atime_ns";
    pub const MTIME_NS: &str = "mtime_ns";
    pub const LENGTH: &str = "length";
    pub const CWD: &str = "cwd";

    /// The columns of one standard fd of an exec row.
    pub struct StdioNames {
        pub ty: &'static str,
        pub inode: &'static str,
        pub path: &'static str,
        pub addr: &'static str,
        pub port: &'static str,
    }

    /// The columns of fds 0, 1, 2, in fd order.
    pub const STDIO: [StdioNames; 3] = [
        StdioNames {
            ty: STDIN_TYPE,
            inode: STDIN_INODE,
            path: STDIN_PATH,
            addr: STDIN_ADDR,
            port: STDIN_PORT,
        },
        StdioNames {
            ty: STDOUT_TYPE,
            inode: STDOUT_INODE,
            path: STDOUT_PATH,
            addr: STDOUT_ADDR,
            port: STDOUT_PORT,
        },
        StdioNames {
            ty: STDERR_TYPE,
            inode: STDERR_INODE,
            path: STDERR_PATH,
            addr: STDERR_ADDR,
            port: STDERR_PORT,
        },
    ];
}

/// Every column, in file order.
#[rustfmt::skip]
pub const COLUMNS: &[Column] = &[
    col(names::TIME, TimestampNs, false, "all", "wall-clock time of the event (UTC, ns)"),
    col(names::KTIME_NS, U64, false, "all", "boot-time clock of the event (ns since boot, as the kernel saw it)"),
    col(names::HOST, Str, false, "all", "host name of the machine that recorded the event"),
    col(names::KIND, Str, false, "all", "event kind: exec, fork, exit, … (see EventKind)"),
    col(names::PID, U32, false, "all", "thread id (kernel pid); for fork, the child's"),
    col(names::TGID, U32, false, "all", "process id (kernel tgid); for fork, the child's"),
    col(names::PPID, U32, false, "all", "parent process id (real_parent's tgid)"),
    col(names::UID, U32, false, "all", "real user id"),
    col(names::GID, U32, false, "all", "real group id"),
    col(names::COMM, Str, false, "all", "task command name (16 bytes at most; attacker-controlled)"),
    col(names::CGROUP_ID, U64, false, "all", "cgroup v2 id of the task"),
    col(names::EXE_PATH, Str, true, "exec; all once enriched", "path of the process's executable"),
    col(names::EXE_SHA256, Str, true, "enriched", "SHA-256 of the executable, lowercase hex"),
    col(names::CONTAINER_ID, Str, true, "enriched", "container id (64 hex) of the task's cgroup"),
    col(names::CONTAINER_NAME, Str, true, "enriched", "container name from the runtime"),
    col(names::IMAGE, Str, true, "enriched", "container image reference"),
    col(names::IMAGE_DIGEST, Str, true, "enriched", "content digest (`sha256:…`) of the image's manifest as the engine recorded it (podman, containerd)"),
    col(names::RUNTIME, Str, true, "enriched", "container runtime (docker, containerd, cri-o, podman, runc)"),
    col(names::POD, Str, true, "enriched", "Kubernetes pod name"),
    col(names::NAMESPACE, Str, true, "enriched", "Kubernetes namespace"),
    col(names::LABELS, Str, true, "enriched", "container/pod labels as a JSON object"),
    col(names::WORKLOAD, Str, true, "enriched", "workload key: the container id, or `host:<systemd unit>` / `host` for host tasks"),
    col(names::PROCESS_KEY, Str, true, "enriched", "stable process key `<tgid>@<start ticks since boot>` (survives pid reuse)"),
    col(names::PARENT_KEY, Str, true, "enriched", "process key of the parent"),
    col(names::ANCESTRY, StrList, true, "enriched", "executables (or comm) of the ancestors, parent first, up to the container init / pid 1 (at most 8)"),
    col(names::USER, Str, true, "enriched", "user name of uid, resolved in the container's /etc/passwd"),
    col(names::EXE_NEW, Bool, true, "enriched", "executable created or modified after its container started"),
    col(names::EXE_WRITABLE, Bool, true, "enriched", "executable in a writable/temporary location (/tmp, /dev/shm, /var/tmp, /run, hidden dir)"),
    col(names::EXE_FILELESS, Bool, true, "enriched", "executable is a memfd or a deleted file"),
    col(names::PATH, Str, true, "file events, proc_mem_write, module_load", "path operated on (attacker-controlled); for memfd_create the memfd name; for mount the source; for link the existing file; for symlink the link's target text"),
    col(names::PATH2, Str, true, "rename, mount, link, symlink", "second path: rename's new path, mount's target, the new link of link and symlink"),
    col(names::PATH_SOURCE, Str, true, "file events", "where `path` came from: `kernel` (walked from the kernel's struct file/dentry) or `user_at_exit` (user string read at syscall exit)"),
    col(names::ARGV, StrList, true, "exec", "argv of the new image (read from the new mm after exec)"),
    col(names::TRUNCATED, Bool, true, "exec", "true when path or argv was cut at the capture limit"),
    col(names::EXIT_CODE, I32, true, "exit", "exit status (0-255) when the process exited normally"),
    col(names::SIGNAL, I32, true, "exit", "signal number when the process was killed by a signal"),
    col(names::FLAGS, U64, true, "open, memfd_create, mmap_exec, mount, unshare, setns, userfaultfd, capset, utimes", "flags argument: O_*, MFD_*, PROT_*, MS_*, CLONE_*; capset: effective set; utimes: 1 atime set to now, 2 atime left unchanged, 4 mtime set to now, 8 mtime left unchanged, 16 the times could not be read (a time with none of its bits was set explicitly: see atime_ns/mtime_ns)"),
    col(names::MODE, U32, true, "open, chmod, mkdir", "file mode bits"),
    col(names::OP, U32, true, "ptrace, bpf, keyctl", "request/command/operation number"),
    col(names::TARGET_PID, U32, true, "ptrace, process_vm_writev, proc_mem_write", "process acted upon"),
    col(names::TARGET_UID, U32, true, "setid, chown", "user id requested"),
    col(names::TARGET_GID, U32, true, "setid, chown", "group id requested"),
    col(names::FSTYPE, Str, true, "mount", "filesystem type"),
    col(names::FAMILY, Str, true, "network, dns", "socket family: inet, inet6, unix, packet, netlink"),
    col(names::PROTOCOL, Str, true, "network, dns", "tcp, udp, raw (or the IP protocol of a raw inet socket: icmp, …); stream/dgram for unix sockets; raw/dgram for packet sockets"),
    col(names::SRC_ADDR, Str, true, "network, dns", "local address"),
    col(names::SRC_PORT, U32, true, "network, dns", "local port"),
    col(names::DST_ADDR, Str, true, "network, dns", "remote address, or unix socket path"),
    col(names::DST_PORT, U32, true, "network, dns", "remote port"),
    col(names::BYTES, U64, true, "sendto", "payload bytes"),
    col(names::DNS_NAME, Str, true, "dns", "question name (attacker-controlled)"),
    col(names::DNS_TYPE, U32, true, "dns", "question type: 1 A, 28 AAAA, 16 TXT, …"),
    col(names::DNS_ID, U32, true, "dns", "transaction id"),
    col(names::DNS_RCODE, U32, true, "dns_response", "response code: 0 NOERROR, 3 NXDOMAIN, …"),
    col(names::DNS_ANSWERS, StrList, true, "dns_response", "addresses in the answer section"),
    col(names::SYSCALL, U32, true, "syscall, setid", "syscall number (x86_64 table)"),
    col(names::RET, I64, true, "syscall and most call events", "return value (fd, byte count, 0, or negative errno); dup: the standard fd (0, 1, 2) that became a socket"),
    col(names::SYSCALL_COUNTS, CountMap, true, "syscall_profile", "syscall number → count over the profile interval"),
    col(names::COUNT, U64, true, "lost, open, connect, accept, sendto, dns_query, dns_response", "lost: number of events lost; open: the row closes a collapse window and stands for this many more identical opens (same thread, file, flags) after the window's first row; connect, sendto: this many more to the same peer (same thread, protocol, address, port) with this ret class (0: succeeded or in progress; the last errno: failed); accept: this many more on the same local port from the same remote address; dns_query, dns_response: this many more identical UDP messages (same thread and server, same bytes but for the transaction id: name, type, flags, and for answers rcode and answer set) — count as sum(coalesce(count, 1))"),
    col(names::LABEL, Str, true, "imported, lab datasets", "ground-truth label of the workload (normal/attack), when known"),
    col(names::STDIN_TYPE, Str, true, "exec", "what fd 0 of the new image is: closed, file, dir, pipe, tty, char, block, tcp, udp, raw, unix, socket, other (read from the task's fd table at exec)"),
    col(names::STDIN_INODE, U64, true, "exec", "inode of fd 0: a pipe's or socket's is shared by the processes holding its ends (join a writer's stdout_inode with a reader's stdin_inode)"),
    col(names::STDIN_PATH, Str, true, "exec", "kernel path of fd 0 when it is a file, directory, device or named FIFO (attacker-controlled)"),
    col(names::STDIN_ADDR, Str, true, "exec", "remote address of fd 0 when it is an inet socket"),
    col(names::STDIN_PORT, U32, true, "exec", "remote port of fd 0 when it is an inet socket"),
    col(names::STDOUT_TYPE, Str, true, "exec", "what fd 1 of the new image is (as stdin_type)"),
    col(names::STDOUT_INODE, U64, true, "exec", "inode of fd 1 (as stdin_inode)"),
    col(names::STDOUT_PATH, Str, true, "exec", "kernel path of fd 1 (as stdin_path)"),
    col(names::STDOUT_ADDR, Str, true, "exec", "remote address of fd 1 when it is an inet socket"),
    col(names::STDOUT_PORT, U32, true, "exec", "remote port of fd 1 when it is an inet socket"),
    col(names::STDERR_TYPE, Str, true, "exec", "what fd 2 of the new image is (as stdin_type)"),
    col(names::STDERR_INODE, U64, true, "exec", "inode of fd 2 (as stdin_inode)"),
    col(names::STDERR_PATH, Str, true, "exec", "kernel path of fd 2 (as stdin_path)"),
    col(names::STDERR_ADDR, Str, true, "exec", "remote address of fd 2 when it is an inet socket"),
    col(names::STDERR_PORT, U32, true, "exec", "remote port of fd 2 when it is an inet socket"),
    col(names::CAP_EFFECTIVE, U64, true, "exec", "effective capabilities of the new image (bit n = capability n: 21 CAP_SYS_ADMIN, 16 CAP_SYS_MODULE, …)"),
    col(names::CAP_PERMITTED, U64, true, "exec", "permitted capabilities of the new image"),
    col(names::ATIME_NS, I64, true, "utimes", "access time set explicitly (ns since the epoch; null: set to now or unchanged, see flags). Read from the caller's memory at syscall exit"),
    col(names::MTIME_NS, I64, true, "utimes", "modification time set explicitly (ns since the epoch; null: set to now or unchanged, see flags). Read from the caller's memory at syscall exit"),
    col(names::LENGTH, U64, true, "truncate", "length the file was truncated (or extended) to, in bytes"),
    col(names::CWD, Str, true, "exec", "working directory of the new image (kernel path, walked at exec; a relative executable path is resolved against it into exe_path)"),
];

/// The Arrow schema of the `events` table (shared, built once).
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(
                COLUMNS
                    .iter()
                    .map(|c| Field::new(c.name, c.ty.data_type(), c.nullable))
                    .collect::<Vec<_>>(),
            ))
        })
        .clone()
}

/// The column called `name`, if the schema has one.
pub fn column(name: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for c in COLUMNS {
            assert!(seen.insert(c.name), "duplicate column {}", c.name);
            assert!(!c.doc.is_empty());
        }
        assert_eq!(arrow_schema().fields().len(), COLUMNS.len());
    }
}
