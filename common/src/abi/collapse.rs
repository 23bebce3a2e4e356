//! Collapse windows: identical opens, and repeated connections to one peer, by one thread,
//! counted in the kernel instead of written one row each.
//!
//! A thread that opens the same file with the same flags again and again (a poller reading
//! `/proc/stat`, a loop re-reading its config) would otherwise cost a path walk and a row per
//! open. The open handler keeps a few windows per thread, keyed by the file's identity (device,
//! inode) and the open flags — the kernel's view, so a path swapped under the caller cannot
//! hide in a window. The first open of a window is recorded as usual; later identical opens
//! within `collapse_window_ns` only add to the window's count; when the window closes (the next
//! identical open after it, a new file taking its place, the thread's exit, or the end of the
//! capture) one [`RepeatEvent`] carries the count, and user space writes it as an `open` row
//! with `count` = the opens it stands for. Opens that the first one's path filters skipped are
//! counted as filtered, without the walk.
//!
//! Network windows ([`NetWindows`]) do the same for a thread's connects and UDP sends to one
//! peer (family, protocol, address, port) and its accepts on one local port from one remote
//! address: a client that reconnects to its backend for every request, or a server accepting
//! from one proxy, is one row and a count. The first connection of a window is written as
//! usual; repeats only count — the connect hook checks the window before it builds a record,
//! and the connect's exit, which would report the result, adds a failed repeat to the window's
//! `failed` count (`last_err` keeps its errno) instead. User space writes a closed window as up
//! to two rows: the repeats that succeeded (`ret` 0) and the ones that failed (`ret` the last
//! errno), each with `count` set. Ephemeral ports of repeats (a connect's local port, an
//! accept's remote port) are not kept.
//!
//! DNS windows ([`DnsWindows`]) collapse a thread's identical DNS messages over UDP: queries
//! with the same server (address, port) and the same message but for its transaction id —
//! question name, type and class, flags, additional records — and answers from the same
//! server with the same message but for its id: question, rcode and answer set. The message
//! is compared by a seeded 64-bit hash of its bytes after the id (and its length), so a
//! repeat is counted without a copy; TTLs are part of the hash, so a cached answer whose TTL
//! ticks down starts a new window. Every distinct name is a row of its own. The thread is the
//! socket's owner (the packet hooks do not run in the thread), windows are created by
//! queries only, and the count row has no client port (the repeats came from other ephemeral
//! ports) and the first message's id.

use super::EventHeader;

/// Windows kept per thread (replaced round-robin).
pub const OPEN_WINDOWS: usize = 4;

/// `OpenWindow::state`: unused.
pub const WINDOW_EMPTY: u32 = 0;
/// `OpenWindow::state`: the window's first open was written as a row; repeats are counted.
pub const WINDOW_ROW: u32 = 1;
/// `OpenWindow::state`: the first open was skipped by the path prefix filter; repeats count
/// as `file_filtered`.
pub const WINDOW_FILE_FILTERED: u32 = 2;
/// `OpenWindow::state`: the first open was a read of the process's own `/proc/<pid>/`;
/// repeats count as `proc_self_filtered`.
pub const WINDOW_PROC_SELF_FILTERED: u32 = 3;

/// Network windows kept per thread (replaced round-robin).
pub const NET_WINDOWS: usize = 4;

/// Window numbers a thread's records use: open windows are `0..OPEN_WINDOWS`, network windows
/// follow from here (`NET_WINDOW_BASE + index`). A row names its window as number + 1 (0: the
/// row opened no window).
pub const NET_WINDOW_BASE: u32 = OPEN_WINDOWS as u32;

/// DNS windows kept per thread for queries, and as many again for answers (each set replaced
/// round-robin).
pub const DNS_WINDOWS: usize = 4;

/// Number of a thread's first DNS query window: query windows are
/// `DNS_WINDOW_BASE..DNS_WINDOW_BASE + DNS_WINDOWS`, answer windows follow them.
pub const DNS_WINDOW_BASE: u32 = NET_WINDOW_BASE + NET_WINDOWS as u32;

/// Window numbers a thread has in all (open, network, DNS query, DNS answer).
pub const THREAD_WINDOWS: u32 = DNS_WINDOW_BASE + 2 * DNS_WINDOWS as u32;

/// `RepeatEvent::window` of the record a thread's exit sends last: every window of the thread
/// is closed (user space forgets them).
pub const REPEAT_THREAD_DONE: u32 = u32::MAX;

/// One window: which open it collapses and how many repeats it holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct OpenWindow {
    /// Inode of the file.
    pub ino: u64,
    /// Address of the file's superblock (a kernel pointer, compared, never followed): with
    /// `ino`, which file this is.
    pub sb: u64,
    /// Boot-time ns of the window's first open.
    pub first_ns: u64,
    /// Boot-time ns of the latest repeat.
    pub last_ns: u64,
    /// Open flags (low 32 bits).
    pub flags: u32,
    /// Repeats since the first open.
    pub count: u32,
    /// `WINDOW_*`.
    pub state: u32,
    /// Zero.
    pub _pad: u32,
}

/// A thread's windows (the value of the kernel's per-thread map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct OpenWindows {
    /// The windows.
    pub windows: [OpenWindow; OPEN_WINDOWS],
    /// Round-robin position for the next replacement.
    pub next: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

/// One network window: which peer it collapses and how many repeats it holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NetWindow {
    /// Remote address as the kernel holds it (IPv4: the first 4 bytes in network order), read
    /// as two native words (the eBPF side compares words, not bytes).
    pub addr: [u64; 2],
    /// Boot-time ns of the window's first connection.
    pub first_ns: u64,
    /// Boot-time ns of the latest repeat.
    pub last_ns: u64,
    /// [`super::EventKind`] id: `connect`, `sendto` or `accept`.
    pub kind: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// connect/sendto: the remote port; accept: the local port.
    pub port: u16,
    /// connect/sendto: the IP protocol; accept: the socket type.
    pub protocol: u32,
    /// Repeats since the first connection.
    pub count: u32,
    /// Repeats whose connect failed (counted in `count` too).
    pub failed: u32,
    /// The errno (negative) of the latest failed repeat.
    pub last_err: i32,
    /// [`WINDOW_EMPTY`] or [`WINDOW_ROW`].
    pub state: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

/// A thread's network windows (the value of the kernel's per-thread map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NetWindows {
    /// The windows.
    pub windows: [NetWindow; NET_WINDOWS],
    /// Round-robin position for the next replacement.
    pub next: u32,
    /// A connect the hook counted as a repeat, waiting for its syscall exit: window index + 1
    /// (0: none). The exit adds a failure to that window instead of reporting a result.
    pub pending: u32,
    /// Socket cookie of the pending connect (the exit only takes a result of the same socket:
    /// a hook without a connect exit — io_uring, TCP Fast Open — leaves no stale claim).
    pub pending_cookie: u64,
}

/// One DNS window: which message it collapses and how many repeats it holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct DnsWindow {
    /// Seeded hash of the message after its transaction id.
    pub hash: u64,
    /// The server's address (IPv4: the first 4 bytes), as two native words.
    pub addr: [u64; 2],
    /// Boot-time ns of the window's first message.
    pub first_ns: u64,
    /// Boot-time ns of the latest repeat.
    pub last_ns: u64,
    /// Repeats since the first message (added atomically, as a 64-bit word — the eBPF
    /// target has no 32-bit atomics in Rust: answers arrive on any CPU).
    pub count: u64,
    /// [`WINDOW_EMPTY`] or [`WINDOW_ROW`].
    pub state: u32,
    /// The server's port.
    pub port: u16,
    /// Bytes of the message copied (part of the identity).
    pub len: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Explicit padding; always zero.
    pub _pad: u16,
    /// Explicit padding; always zero.
    pub _pad2: u32,
}

/// A thread's DNS windows (the value of the kernel's per-thread map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct DnsWindows {
    /// Query windows (numbers `DNS_WINDOW_BASE + i`).
    pub queries: [DnsWindow; DNS_WINDOWS],
    /// Answer windows (numbers `DNS_WINDOW_BASE + DNS_WINDOWS + i`).
    pub answers: [DnsWindow; DNS_WINDOWS],
    /// Round-robin position of the next query window replaced.
    pub next_query: u32,
    /// Round-robin position of the next answer window replaced.
    pub next_answer: u32,
}

/// A closed window's count (shape [`super::SHAPE_REPEAT`]; `kind` is the window's kind).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct RepeatEvent {
    /// Common header (the thread whose window it was).
    pub header: EventHeader,
    /// Number of the window (what the first row named), or [`REPEAT_THREAD_DONE`].
    pub window: u32,
    /// Repeats the window collapsed.
    pub count: u32,
    /// Boot-time ns of the window's first event.
    pub first_ns: u64,
    /// Boot-time ns of its last repeat.
    pub last_ns: u64,
    /// Network windows: repeats that failed (included in `count`).
    pub failed: u32,
    /// Network windows: the errno (negative) of the last failed repeat.
    pub last_err: i32,
}

const _: () = assert!(core::mem::size_of::<OpenWindow>() == 48);
const _: () = assert!(core::mem::size_of::<OpenWindows>() == 200);
const _: () = assert!(core::mem::size_of::<NetWindow>() == 64);
const _: () = assert!(core::mem::size_of::<NetWindows>() == 272);
const _: () = assert!(core::mem::size_of::<DnsWindow>() == 64);
const _: () = assert!(core::mem::size_of::<DnsWindows>() == 520);
const _: () = assert!(core::mem::size_of::<RepeatEvent>().is_multiple_of(8));
