//! Collapse windows: identical opens by one thread, counted in the kernel instead of written
//! one row each.
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

/// `CallEvent::args` slot in which an open row names the window it opened (index + 1; 0: the
/// open was not collapsible, or collapsing is off).
pub const CALL_ARG_WINDOW: usize = 4;

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
    /// Boot-time ns of the window's first open.
    pub first_ns: u64,
    /// Boot-time ns of the latest repeat.
    pub last_ns: u64,
    /// Device of the file (kernel encoding).
    pub dev: u32,
    /// Open flags (low 32 bits).
    pub flags: u32,
    /// Repeats since the first open.
    pub count: u32,
    /// `WINDOW_*`.
    pub state: u32,
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

/// A closed window's count (`kind` `open`, shape [`super::SHAPE_REPEAT`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct RepeatEvent {
    /// Common header (the thread whose window it was).
    pub header: EventHeader,
    /// Index of the window (what the first open's row named), or [`REPEAT_THREAD_DONE`].
    pub window: u32,
    /// Repeats the window collapsed.
    pub count: u32,
    /// Boot-time ns of the window's first open.
    pub first_ns: u64,
    /// Boot-time ns of its last repeat.
    pub last_ns: u64,
}

const _: () = assert!(core::mem::size_of::<OpenWindow>() == 40);
const _: () = assert!(core::mem::size_of::<OpenWindows>() == 168);
const _: () = assert!(core::mem::size_of::<RepeatEvent>().is_multiple_of(8));
