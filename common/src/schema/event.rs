//! The typed, user-space form of one trace row.

use std::sync::Arc;

use crate::abi::EventKind;

/// One event as written to (and read from) a trace: common fields plus a kind-specific [`Detail`].
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Wall-clock time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Boot-time clock, ns since boot.
    pub ktime_ns: u64,
    /// The task the event belongs to.
    pub process: Process,
    /// Path of the process's executable, when known.
    pub exe_path: Option<Arc<str>>,
    /// SHA-256 of the executable (lowercase hex), when known.
    pub exe_sha256: Option<Arc<str>>,
    /// Container context, when the task runs in a container (shared by all its rows).
    pub container: Option<Arc<Container>>,
    /// Ground-truth label (`normal`/`attack`), only in labelled datasets.
    pub label: Option<Arc<str>>,
    /// What happened.
    pub detail: Detail,
}

/// The task an event belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Process {
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Command name (lossily decoded; attacker-controlled).
    pub comm: Arc<str>,
    /// cgroup v2 id.
    pub cgroup_id: u64,
}

/// Container and Kubernetes context of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    /// Container id (64 hex characters for the common runtimes).
    pub id: Arc<str>,
    /// Container name.
    pub name: Option<Arc<str>>,
    /// Image reference.
    pub image: Option<Arc<str>>,
    /// Runtime that started it.
    pub runtime: Option<Arc<str>>,
    /// Kubernetes pod name.
    pub pod: Option<Arc<str>>,
    /// Kubernetes namespace.
    pub namespace: Option<Arc<str>>,
    /// Labels as a JSON object.
    pub labels: Option<Arc<str>>,
}

/// Kind-specific fields. The variant decides the row's `kind`.
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    /// A successful exec. `Event::exe_path` holds the executed path.
    Exec {
        /// argv of the new image.
        argv: Vec<String>,
        /// Path or argv was cut at the capture limit.
        truncated: bool,
    },
    /// A new process; the event's `process` is the child.
    Fork,
    /// A process ended.
    Exit {
        /// Exit status when it exited normally.
        code: Option<i32>,
        /// Signal number when a signal killed it.
        signal: Option<i32>,
    },
    /// One syscall exit.
    Syscall {
        /// Syscall number (x86_64).
        nr: u32,
        /// Return value, when known.
        ret: Option<i64>,
    },
}

impl Detail {
    /// The event kind this detail belongs to.
    pub fn kind(&self) -> EventKind {
        match self {
            Detail::Exec { .. } => EventKind::Exec,
            Detail::Fork => EventKind::Fork,
            Detail::Exit { .. } => EventKind::Exit,
            Detail::Syscall { .. } => EventKind::Syscall,
        }
    }
}

impl Detail {
    /// Splits a raw wait(2)-style exit code into (status, signal).
    pub fn exit_from_wait_status(raw: u32) -> Detail {
        let signal = (raw & 0x7f) as i32;
        if signal == 0 {
            Detail::Exit { code: Some(((raw >> 8) & 0xff) as i32), signal: None }
        } else {
            Detail::Exit { code: None, signal: Some(signal) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(Detail::exit_from_wait_status(7 << 8), Detail::Exit { code: Some(7), signal: None });
        assert_eq!(Detail::exit_from_wait_status(0), Detail::Exit { code: Some(0), signal: None });
        // SIGKILL, with the core-dump bit clear.
        assert_eq!(Detail::exit_from_wait_status(9), Detail::Exit { code: None, signal: Some(9) });
        // SIGSEGV with core dumped (0x80).
        assert_eq!(Detail::exit_from_wait_status(0x80 | 11), Detail::Exit { code: None, signal: Some(11) });
    }
}
