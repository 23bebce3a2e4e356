//! User-space half of the kernel's collapse windows (`needle_common::abi::OpenWindows`).
//!
//! The kernel writes the first open of a window as a normal row that names its window, and
//! later only counts. This keeps each open window's first row (as decoded, before enrichment)
//! until the window closes; its count then becomes a copy of that row with `count` set and
//! the time of the last repeat, enriched and written like any other row.

use needle_common::abi::{OPEN_WINDOWS, OpenWindows, WINDOW_ROW};
use needle_common::schema::Detail;

use crate::decode::{Decoded, Role};
use crate::hashing::Map;
use crate::kernel::clock::BootClock;

/// Windows remembered at most; a thread's windows are forgotten when it exits, so this is only
/// reached if thread exits were lost (full ring buffer), and then everything is forgotten.
const MAX_WINDOWS: usize = 1 << 18;

/// What happened to collapsed counts (for the summary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollapseStats {
    /// Rows written for closed windows.
    pub rows: u64,
    /// Opens those rows stand for.
    pub opens: u64,
    /// Closed windows whose first row was never seen (lost in a full ring buffer): their
    /// counts could not be written.
    pub orphaned: u64,
}

/// The first rows of the open windows, by thread id and window index.
#[derive(Default)]
pub struct Windows {
    first: Map<(u32, u32), Decoded>,
    /// Counts so far.
    pub stats: CollapseStats,
}

impl Windows {
    /// A decoded record; returns the rows it stands for (the record itself for a plain row, a
    /// copy of a window's first row for a closed window, nothing for a thread's end).
    pub fn route(&mut self, d: Decoded, clock: &BootClock) -> Option<Decoded> {
        let tid = d.event.process.pid;
        match d.role {
            Role::Window(index) => {
                if self.first.len() >= MAX_WINDOWS {
                    self.first.clear();
                }
                let mut first = d.clone();
                first.role = Role::Row;
                self.first.insert((tid, index), first);
                Some(Decoded {
                    role: Role::Row,
                    ..d
                })
            }
            Role::Repeat {
                index,
                count,
                last_ns,
            } => self.closed(tid, index, count, last_ns, clock),
            Role::ThreadDone => {
                for index in 0..OPEN_WINDOWS as u32 {
                    self.first.remove(&(tid, index));
                }
                None
            }
            Role::Row | Role::Result => Some(d),
        }
    }

    /// Window `index` of thread `tid` closed with `count` repeats, the last at `last_ns`.
    fn closed(
        &mut self,
        tid: u32,
        index: u32,
        count: u32,
        last_ns: u64,
        clock: &BootClock,
    ) -> Option<Decoded> {
        let Some(mut row) = self.first.remove(&(tid, index)) else {
            self.stats.orphaned += 1;
            return None;
        };
        if let Detail::Open { count: c, .. } = &mut row.event.detail {
            *c = Some(u64::from(count));
        }
        row.event.ktime_ns = last_ns;
        row.event.time_ns = clock.wall_ns(last_ns);
        self.stats.rows += 1;
        self.stats.opens += u64::from(count);
        Some(row)
    }

    /// The windows still open when the capture ends (read from the kernel's map after the
    /// programs were detached): their rows.
    pub fn remaining(
        &mut self,
        open: impl IntoIterator<Item = (u32, OpenWindows)>,
        clock: &BootClock,
    ) -> Vec<Decoded> {
        let mut rows = Vec::new();
        for (tid, ws) in open {
            for (index, w) in ws.windows.iter().enumerate() {
                if w.state == WINDOW_ROW && w.count != 0 {
                    rows.extend(self.closed(tid, index as u32, w.count, w.last_ns, clock));
                }
            }
        }
        self.first.clear();
        rows
    }
}

#[cfg(test)]
mod tests {
    use needle_common::abi::OpenWindow;
    use needle_common::schema::{Event, FilePath, PathSource, Process};

    use super::*;

    fn open(tid: u32, path: &str, role: Role, ktime: u64) -> Decoded {
        Decoded {
            event: Event::new(
                ktime as i64,
                ktime,
                Process {
                    pid: tid,
                    tgid: tid,
                    comm: "poller".into(),
                    ..Default::default()
                },
                Detail::Open {
                    file: FilePath {
                        path: path.into(),
                        source: PathSource::Kernel,
                    },
                    flags: 0,
                    mode: 0,
                    ret: 3,
                    count: None,
                },
            ),
            start_ns: 7,
            parent_start_ns: 1,
            exe: None,
            role,
        }
    }

    fn repeat(tid: u32, index: u32, count: u32, last_ns: u64) -> Decoded {
        Decoded {
            role: Role::Repeat {
                index,
                count,
                last_ns,
            },
            ..open(tid, "", Role::Row, last_ns + 50)
        }
    }

    fn count_of(d: &Decoded) -> Option<u64> {
        match d.event.detail {
            Detail::Open { count, .. } => count,
            _ => None,
        }
    }

    #[test]
    fn a_closed_window_is_its_first_row_with_the_count() {
        let clock = BootClock::measure();
        let mut w = Windows::default();
        let first = w
            .route(open(10, "/proc/stat", Role::Window(2), 100), &clock)
            .unwrap();
        assert_eq!((first.role, count_of(&first)), (Role::Row, None));
        let row = w.route(repeat(10, 2, 41, 900), &clock).unwrap();
        assert_eq!(count_of(&row), Some(41));
        assert_eq!(row.event.ktime_ns, 900);
        assert_eq!(row.event.time_ns, clock.wall_ns(900));
        assert!(
            matches!(&row.event.detail, Detail::Open { file, .. } if file.path == "/proc/stat")
        );
        assert_eq!((row.start_ns, row.role), (7, Role::Row));
        // The window is closed: a second count for it has no first row.
        assert!(w.route(repeat(10, 2, 1, 1000), &clock).is_none());
        assert_eq!(
            w.stats,
            CollapseStats {
                rows: 1,
                opens: 41,
                orphaned: 1
            }
        );
    }

    #[test]
    fn thread_end_forgets_and_the_end_of_capture_writes_what_is_left() {
        let clock = BootClock::measure();
        let mut w = Windows::default();
        w.route(open(10, "/a", Role::Window(0), 1), &clock);
        w.route(open(11, "/b", Role::Window(1), 2), &clock);
        let done = Decoded {
            role: Role::ThreadDone,
            ..open(10, "", Role::Row, 3)
        };
        assert!(w.route(done, &clock).is_none());
        let mut left = OpenWindows::default();
        left.windows[1] = OpenWindow {
            count: 5,
            last_ns: 40,
            state: WINDOW_ROW,
            ..Default::default()
        };
        let mut forgotten = OpenWindows::default();
        forgotten.windows[0] = OpenWindow {
            count: 2,
            state: WINDOW_ROW,
            ..Default::default()
        };
        let rows = w.remaining([(11, left), (10, forgotten)], &clock);
        assert_eq!(rows.len(), 1);
        assert_eq!(count_of(&rows[0]), Some(5));
        assert!(matches!(&rows[0].event.detail, Detail::Open { file, .. } if file.path == "/b"));
        assert_eq!(
            w.stats.orphaned, 1,
            "thread 10's window was forgotten at its end"
        );
    }
}
