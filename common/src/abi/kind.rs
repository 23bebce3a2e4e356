//! The one list of event kinds. Ids are grouped in ranges per family and never reused.

/// What a ring-buffer record (and a trace row) describes.
///
/// Ranges: 1–99 process lifecycle, 100–199 files, 200–299 network, 300–399 DNS,
/// 400–499 security-relevant calls, 500–599 syscall profiles and streams,
/// 900–999 capture's own records.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A successful execve/execveat: the new image's path and argv.
    Exec = 1,
    /// A new process (not a thread) was created by fork/clone/vfork.
    Fork = 2,
    /// The last thread of a process exited.
    Exit = 3,
    /// open/openat/openat2 (path, flags, mode, fd or error).
    Open = 100,
    /// unlink/unlinkat/rmdir.
    Unlink = 101,
    /// rename/renameat/renameat2 (`path` → `path2`).
    Rename = 102,
    /// chmod/fchmod/fchmodat (`mode`).
    Chmod = 103,
    /// chown/fchown/lchown/fchownat (`target_uid`, `target_gid`).
    Chown = 104,
    /// memfd_create (`path` = the memfd name, `flags`).
    MemfdCreate = 105,
    /// mmap/mprotect with PROT_EXEC of a file-backed mapping.
    MmapExec = 106,
    /// utimensat/futimens/utimes/futimesat/utime: a file's access and modification times set
    /// (`atime_ns`/`mtime_ns` when given explicitly, `flags` says which were set to now).
    Utimes = 107,
    /// truncate/ftruncate (`length`).
    Truncate = 108,
    /// link/linkat: a hard link (`path` = the existing file, `path2` = the new name).
    Link = 109,
    /// symlink/symlinkat (`path` = the link's target text, `path2` = the new link).
    Symlink = 110,
    /// mkdir/mkdirat (`mode`).
    Mkdir = 111,
    /// connect (TCP or UDP), destination from the kernel's copy of the sockaddr.
    Connect = 200,
    /// accept/accept4 of an inbound connection.
    Accept = 201,
    /// bind.
    Bind = 202,
    /// listen.
    Listen = 203,
    /// sendto/sendmsg on an unconnected (UDP) socket: one row per destination.
    SendTo = 204,
    /// socket(2) of a packet socket (any type) or a raw inet socket; other sockets are not
    /// recorded (their connects, binds and accepts are).
    Socket = 205,
    /// dup/dup2/dup3 that made fd 0, 1 or 2 an inet socket (`ret` = that fd).
    Dup = 206,
    /// A DNS query seen on the wire (UDP/TCP port 53).
    DnsQuery = 300,
    /// A DNS response seen on the wire.
    DnsResponse = 301,
    /// ptrace (`op` = request, `target_pid`).
    Ptrace = 400,
    /// process_vm_writev into another process (`target_pid`).
    ProcessVmWritev = 401,
    /// A write to `/proc/<pid>/mem` (`target_pid`).
    ProcMemWrite = 402,
    /// init_module/finit_module.
    ModuleLoad = 403,
    /// setuid/setgid/setreuid/setresuid/setresgid (`target_uid`, `target_gid`).
    SetId = 404,
    /// capset.
    Capset = 405,
    /// userfaultfd.
    Userfaultfd = 406,
    /// mount (`path` = source, `path2` = target, `fstype`).
    Mount = 407,
    /// unshare (`flags`).
    Unshare = 408,
    /// setns (`flags` = nstype).
    Setns = 409,
    /// bpf (`op` = command).
    Bpf = 410,
    /// keyctl (`op` = operation).
    Keyctl = 411,
    /// Per-process syscall counts over an interval (and at exit).
    SyscallProfile = 500,
    /// One syscall exit, in the full syscall stream (`--syscalls full`, or imported traces).
    Syscall = 501,
    /// The first process of a new container was seen.
    ContainerStart = 600,
    /// A container's cgroup went away.
    ContainerStop = 601,
    /// Events the kernel could not deliver (`count`), recorded when the loss is noticed.
    Lost = 900,
}

/// A family of event kinds: one range of ids (see [`EventKind`]), declared once here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// 1–99: exec, fork, exit.
    Process,
    /// 100–199: file access and changes.
    File,
    /// 200–299: sockets and connections.
    Network,
    /// 300–399: DNS messages.
    Dns,
    /// 400–499: security-relevant calls (ptrace, module loads, set*id, mounts, namespaces…).
    Security,
    /// 500–599: syscall profiles and streams.
    Syscalls,
    /// 600–699: container lifecycle.
    Container,
    /// 900–999: capture's own records.
    Capture,
}

/// Every kind, in id order. Index `i` of this array is the kind's counter slot.
pub const EVENT_KINDS: [EventKind; 41] = [
    EventKind::Exec,
    EventKind::Fork,
    EventKind::Exit,
    EventKind::Open,
    EventKind::Unlink,
    EventKind::Rename,
    EventKind::Chmod,
    EventKind::Chown,
    EventKind::MemfdCreate,
    EventKind::MmapExec,
    EventKind::Utimes,
    EventKind::Truncate,
    EventKind::Link,
    EventKind::Symlink,
    EventKind::Mkdir,
    EventKind::Connect,
    EventKind::Accept,
    EventKind::Bind,
    EventKind::Listen,
    EventKind::SendTo,
    EventKind::Socket,
    EventKind::Dup,
    EventKind::DnsQuery,
    EventKind::DnsResponse,
    EventKind::Ptrace,
    EventKind::ProcessVmWritev,
    EventKind::ProcMemWrite,
    EventKind::ModuleLoad,
    EventKind::SetId,
    EventKind::Capset,
    EventKind::Userfaultfd,
    EventKind::Mount,
    EventKind::Unshare,
    EventKind::Setns,
    EventKind::Bpf,
    EventKind::Keyctl,
    EventKind::SyscallProfile,
    EventKind::Syscall,
    EventKind::ContainerStart,
    EventKind::ContainerStop,
    EventKind::Lost,
];

impl EventKind {
    /// Stable name used in the `kind` column of traces.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Open => "open",
            EventKind::Unlink => "unlink",
            EventKind::Rename => "rename",
            EventKind::Chmod => "chmod",
            EventKind::Chown => "chown",
            EventKind::MemfdCreate => "memfd_create",
            EventKind::MmapExec => "mmap_exec",
            EventKind::Utimes => "utimes",
            EventKind::Truncate => "truncate",
            EventKind::Link => "link",
            EventKind::Symlink => "symlink",
            EventKind::Mkdir => "mkdir",
            EventKind::Connect => "connect",
            EventKind::Accept => "accept",
            EventKind::Bind => "bind",
            EventKind::Listen => "listen",
            EventKind::SendTo => "sendto",
            EventKind::Socket => "socket",
            EventKind::Dup => "dup",
            EventKind::DnsQuery => "dns_query",
            EventKind::DnsResponse => "dns_response",
            EventKind::Ptrace => "ptrace",
            EventKind::ProcessVmWritev => "process_vm_writev",
            EventKind::ProcMemWrite => "proc_mem_write",
            EventKind::ModuleLoad => "module_load",
            EventKind::SetId => "setid",
            EventKind::Capset => "capset",
            EventKind::Userfaultfd => "userfaultfd",
            EventKind::Mount => "mount",
            EventKind::Unshare => "unshare",
            EventKind::Setns => "setns",
            EventKind::Bpf => "bpf",
            EventKind::Keyctl => "keyctl",
            EventKind::SyscallProfile => "syscall_profile",
            EventKind::Syscall => "syscall",
            EventKind::ContainerStart => "container_start",
            EventKind::ContainerStop => "container_stop",
            EventKind::Lost => "lost",
        }
    }

    /// The family of this kind: the hundred its id is in.
    pub const fn family(self) -> Family {
        match self as u32 / 100 {
            0 => Family::Process,
            1 => Family::File,
            2 => Family::Network,
            3 => Family::Dns,
            4 => Family::Security,
            5 => Family::Syscalls,
            6 => Family::Container,
            _ => Family::Capture,
        }
    }

    /// Whether a row of this kind may close one of capture's collapse windows and then stand
    /// for `count` events (the `count` column; `lost` rows use it for lost events instead).
    pub const fn collapses(self) -> bool {
        matches!(
            self,
            EventKind::Open
                | EventKind::Connect
                | EventKind::SendTo
                | EventKind::Accept
                | EventKind::DnsQuery
                | EventKind::DnsResponse
        )
    }

    /// Dense index of this kind (its position in [`EVENT_KINDS`]); used for per-kind counters.
    pub const fn slot(self) -> u32 {
        match self {
            EventKind::Exec => 0,
            EventKind::Fork => 1,
            EventKind::Exit => 2,
            EventKind::Open => 3,
            EventKind::Unlink => 4,
            EventKind::Rename => 5,
            EventKind::Chmod => 6,
            EventKind::Chown => 7,
            EventKind::MemfdCreate => 8,
            EventKind::MmapExec => 9,
            EventKind::Utimes => 10,
            EventKind::Truncate => 11,
            EventKind::Link => 12,
            EventKind::Symlink => 13,
            EventKind::Mkdir => 14,
            EventKind::Connect => 15,
            EventKind::Accept => 16,
            EventKind::Bind => 17,
            EventKind::Listen => 18,
            EventKind::SendTo => 19,
            EventKind::Socket => 20,
            EventKind::Dup => 21,
            EventKind::DnsQuery => 22,
            EventKind::DnsResponse => 23,
            EventKind::Ptrace => 24,
            EventKind::ProcessVmWritev => 25,
            EventKind::ProcMemWrite => 26,
            EventKind::ModuleLoad => 27,
            EventKind::SetId => 28,
            EventKind::Capset => 29,
            EventKind::Userfaultfd => 30,
            EventKind::Mount => 31,
            EventKind::Unshare => 32,
            EventKind::Setns => 33,
            EventKind::Bpf => 34,
            EventKind::Keyctl => 35,
            EventKind::SyscallProfile => 36,
            EventKind::Syscall => 37,
            EventKind::ContainerStart => 38,
            EventKind::ContainerStop => 39,
            EventKind::Lost => 40,
        }
    }

    /// The kind whose [`EventKind::name`] is `name`.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EVENT_KINDS.iter().copied().find(|k| k.name() == name)
    }
}

/// A kind id that this build does not know: a kernel/user version mismatch or a corrupt record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownEventKind(pub u32);

impl core::fmt::Display for UnknownEventKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown event kind id {}", self.0)
    }
}

impl core::error::Error for UnknownEventKind {}

impl TryFrom<u32> for EventKind {
    type Error = UnknownEventKind;

    fn try_from(id: u32) -> Result<Self, Self::Error> {
        Ok(match id {
            1 => EventKind::Exec,
            2 => EventKind::Fork,
            3 => EventKind::Exit,
            100 => EventKind::Open,
            101 => EventKind::Unlink,
            102 => EventKind::Rename,
            103 => EventKind::Chmod,
            104 => EventKind::Chown,
            105 => EventKind::MemfdCreate,
            106 => EventKind::MmapExec,
            107 => EventKind::Utimes,
            108 => EventKind::Truncate,
            109 => EventKind::Link,
            110 => EventKind::Symlink,
            111 => EventKind::Mkdir,
            200 => EventKind::Connect,
            201 => EventKind::Accept,
            202 => EventKind::Bind,
            203 => EventKind::Listen,
            204 => EventKind::SendTo,
            205 => EventKind::Socket,
            206 => EventKind::Dup,
            300 => EventKind::DnsQuery,
            301 => EventKind::DnsResponse,
            400 => EventKind::Ptrace,
            401 => EventKind::ProcessVmWritev,
            402 => EventKind::ProcMemWrite,
            403 => EventKind::ModuleLoad,
            404 => EventKind::SetId,
            405 => EventKind::Capset,
            406 => EventKind::Userfaultfd,
            407 => EventKind::Mount,
            408 => EventKind::Unshare,
            409 => EventKind::Setns,
            410 => EventKind::Bpf,
            411 => EventKind::Keyctl,
            500 => EventKind::SyscallProfile,
            501 => EventKind::Syscall,
            600 => EventKind::ContainerStart,
            601 => EventKind::ContainerStop,
            900 => EventKind::Lost,
            other => return Err(UnknownEventKind(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_the_id_ranges() {
        use super::Family as F;
        for k in EVENT_KINDS {
            let want = match k {
                EventKind::Exec | EventKind::Fork | EventKind::Exit => F::Process,
                EventKind::DnsQuery | EventKind::DnsResponse => F::Dns,
                EventKind::SyscallProfile | EventKind::Syscall => F::Syscalls,
                EventKind::ContainerStart | EventKind::ContainerStop => F::Container,
                EventKind::Lost => F::Capture,
                _ => k.family(),
            };
            assert_eq!(k.family(), want, "{k:?}");
        }
        assert_eq!(EventKind::MemfdCreate.family(), F::File);
        assert_eq!(EventKind::Dup.family(), F::Network);
        assert_eq!(EventKind::Keyctl.family(), F::Security);
        let security = EVENT_KINDS
            .iter()
            .filter(|k| k.family() == F::Security)
            .count();
        assert_eq!(security, 12);
    }

    #[test]
    fn ids_round_trip_and_slots_are_dense() {
        assert!(
            EVENT_KINDS
                .windows(2)
                .all(|w| (w[0] as u32) < (w[1] as u32)),
            "EVENT_KINDS not in id order"
        );
        for (i, kind) in EVENT_KINDS.iter().enumerate() {
            assert_eq!(EventKind::try_from(*kind as u32), Ok(*kind));
            assert_eq!(kind.slot() as usize, i);
            assert_eq!(EventKind::from_name(kind.name()), Some(*kind));
        }
    }

    #[test]
    fn unknown_ids_are_errors() {
        assert_eq!(EventKind::try_from(0), Err(UnknownEventKind(0)));
        assert_eq!(EventKind::try_from(4242), Err(UnknownEventKind(4242)));
    }
}
