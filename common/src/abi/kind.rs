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
    /// One syscall exit, in the full syscall stream (`--syscalls full`, or imported traces).
    Syscall = 501,
}

/// Every kind, in id order. Index `i` of this array is the kind's counter slot.
pub const EVENT_KINDS: [EventKind; 4] =
    [EventKind::Exec, EventKind::Fork, EventKind::Exit, EventKind::Syscall];

impl EventKind {
    /// Stable name used in the `kind` column of traces.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Syscall => "syscall",
        }
    }

    /// Dense index of this kind (its position in [`EVENT_KINDS`]); used for per-kind counters.
    pub const fn slot(self) -> u32 {
        match self {
            EventKind::Exec => 0,
            EventKind::Fork => 1,
            EventKind::Exit => 2,
            EventKind::Syscall => 3,
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

impl TryFrom<u32> for EventKind {
    type Error = UnknownEventKind;

    fn try_from(id: u32) -> Result<Self, Self::Error> {
        match id {
            1 => Ok(EventKind::Exec),
            2 => Ok(EventKind::Fork),
            3 => Ok(EventKind::Exit),
            501 => Ok(EventKind::Syscall),
            other => Err(UnknownEventKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_slots_are_dense() {
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
