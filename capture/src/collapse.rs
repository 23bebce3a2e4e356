//! User-space half of the kernel's collapse windows (`needle_common::abi::OpenWindows`,
//! `NetWindows` and `DnsWindows`).
//!
//! The kernel writes the first event of a window as a normal row that names its window, and
//! later only counts. This keeps each open window's first row (as decoded, before enrichment)
//! until the window closes; its count then becomes a copy of that row with `count` set and
//! the time of the last repeat, enriched and written like any other row. A network window's
//! count becomes up to two rows: the repeats that succeeded (`ret` 0) and the ones that failed
//! (`ret` the last errno); the ephemeral port of the first row is not repeated. A DNS window's
//! count becomes one row, the first message's without the client port.

use needle_common::abi::{
    DNS_WINDOW_BASE, DNS_WINDOWS, DnsWindow, DnsWindows, NET_WINDOW_BASE, NetWindows, OpenWindows,
    THREAD_WINDOWS, WINDOW_ROW,
};
use needle_common::schema::{Detail, Net};

use crate::decode::{Decoded, Role};
use crate::hashing::Map;
use crate::kernel::clock::BootClock;

/// Windows remembered at most; a thread's windows are forgotten when it exits, so this is only
/// reached if thread exits were lost (full ring buffer), and then everything is forgotten.
const MAX_WINDOWS: usize = 1 << 18;

/// What happened to collapsed counts (for the summary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollapseStats {
    /// Rows written for closed open windows.
    pub rows: u64,
    /// Opens those rows stand for.
    pub opens: u64,
    /// Rows written for closed network windows.
    pub net_rows: u64,
    /// Connects, UDP sends and accepts those rows stand for.
    pub connections: u64,
    /// Rows written for closed DNS windows.
    pub dns_rows: u64,
    /// DNS queries and answers those rows stand for.
    pub dns_messages: u64,
    /// Closed windows whose first row was never seen (lost in a full ring buffer): their
    /// counts could not be written.
    pub orphaned: u64,
}

/// A closed window's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Repeats.
    pub count: u32,
    /// Network windows: repeats that failed (part of `count`).
    pub failed: u32,
    /// Network windows: the errno of the last failed repeat.
    pub last_err: i32,
    /// Boot-time ns of the last repeat.
    pub last_ns: u64,
}

/// The first rows of the open windows, by thread id and window number.
#[derive(Default)]
pub struct Windows {
    first: Map<(u32, u32), Decoded>,
    /// Counts so far.
    pub stats: CollapseStats,
}

impl Windows {
    /// A decoded record; hands `out` the rows it stands for (the record itself for a plain
    /// row, copies of a window's first row for a closed window, nothing for a thread's end).
    pub fn route(&mut self, d: Decoded, clock: &BootClock, mut out: impl FnMut(Decoded)) {
        let tid = d.event.process.pid;
        match d.role {
            Role::Window(index) => {
                if self.first.len() >= MAX_WINDOWS {
                    self.first.clear();
                }
                let mut first = d.clone();
                first.role = Role::Row;
                self.first.insert((tid, index), first);
                out(Decoded {
                    role: Role::Row,
                    ..d
                })
            }
            Role::Repeat {
                index,
                count,
                failed,
                last_err,
                last_ns,
            } => {
                let closed = Closed {
                    count,
                    failed,
                    last_err,
                    last_ns,
                };
                self.closed(tid, index, closed, clock, out)
            }
            Role::ThreadDone => {
                for index in 0..THREAD_WINDOWS {
                    self.first.remove(&(tid, index));
                }
            }
            Role::Row | Role::Result => out(d),
        }
    }

    /// Window `index` of thread `tid` closed: its rows.
    fn closed(
        &mut self,
        tid: u32,
        index: u32,
        c: Closed,
        clock: &BootClock,
        mut out: impl FnMut(Decoded),
    ) {
        let Some(mut row) = self.first.remove(&(tid, index)) else {
            self.stats.orphaned += 1;
            return;
        };
        row.event.ktime_ns = c.last_ns;
        row.event.time_ns = clock.wall_ns(c.last_ns);
        let count = u64::from(c.count);
        let (net, connect) = match &mut row.event.detail {
            Detail::Open { count: n, .. } => {
                *n = Some(count);
                self.stats.rows += 1;
                self.stats.opens += count;
                return out(row);
            }
            Detail::DnsQuery(dns) | Detail::DnsResponse(dns) => {
                // The client's ephemeral port was the first message's own: a query leaves
                // from it to port 53, an answer arrives at it from port 53.
                if dns.net.dst_port == Some(53) {
                    dns.net.src_port = None;
                } else {
                    dns.net.dst_port = None;
                }
                dns.net.count = Some(count);
                self.stats.dns_rows += 1;
                self.stats.dns_messages += count;
                return out(row);
            }
            Detail::Connect(net) => (net, true),
            Detail::SendTo(net) => (net, false),
            Detail::Accept(net) => {
                // The remote port and the new fd were the first accept's own.
                net.dst_port = None;
                net.ret = None;
                (net, false)
            }
            _ => {
                self.stats.orphaned += 1;
                return;
            }
        };
        if connect {
            // The local port was the first connect's own (and is not known for the copy).
            net.src_addr = None;
            net.src_port = None;
        }
        let failed = u64::from(c.failed.min(c.count));
        let ok = count - failed;
        self.stats.connections += count;
        let failures = (connect && failed > 0).then(|| {
            let mut f = row.clone();
            set_net(&mut f, |n| {
                n.count = Some(failed);
                n.ret = Some(i64::from(c.last_err));
            });
            f
        });
        let ok = if connect { ok } else { count };
        if ok > 0 {
            set_net(&mut row, |n| {
                n.count = Some(ok);
                if connect {
                    n.ret = Some(0);
                }
            });
            self.stats.net_rows += 1;
            out(row);
        }
        if let Some(f) = failures {
            self.stats.net_rows += 1;
            out(f);
        }
    }

    /// The windows still open when the capture ends (read from the kernel's maps after the
    /// programs were detached): their rows.
    pub fn remaining(
        &mut self,
        open: impl IntoIterator<Item = (u32, OpenWindows)>,
        net: impl IntoIterator<Item = (u32, NetWindows)>,
        dns: impl IntoIterator<Item = (u32, DnsWindows)>,
        clock: &BootClock,
        mut out: impl FnMut(Decoded),
    ) {
        for (tid, ws) in open {
            for (index, w) in ws.windows.iter().enumerate() {
                if w.state == WINDOW_ROW && w.count != 0 {
                    let c = Closed {
                        count: w.count,
                        failed: 0,
                        last_err: 0,
                        last_ns: w.last_ns,
                    };
                    self.closed(tid, index as u32, c, clock, &mut out);
                }
            }
        }
        for (tid, ws) in net {
            for (index, w) in ws.windows.iter().enumerate() {
                if w.state == WINDOW_ROW && w.count != 0 {
                    let c = Closed {
                        count: w.count,
                        failed: w.failed,
                        last_err: w.last_err,
                        last_ns: w.last_ns,
                    };
                    self.closed(tid, NET_WINDOW_BASE + index as u32, c, clock, &mut out);
                }
            }
        }
        for (tid, ws) in dns {
            let all = ws.queries.iter().chain(&ws.answers);
            for (index, w) in all.enumerate() {
                if let Some(c) = dns_closed(w) {
                    self.closed(tid, DNS_WINDOW_BASE + index as u32, c, clock, &mut out);
                }
            }
        }
        self.first.clear();
    }
}

/// A DNS window left open at the end: its counts, if it holds repeats of a recorded message.
fn dns_closed(w: &DnsWindow) -> Option<Closed> {
    let count = u32::try_from(w.count).unwrap_or(u32::MAX);
    (w.state == WINDOW_ROW && count != 0).then_some(Closed {
        count,
        failed: 0,
        last_err: 0,
        last_ns: w.last_ns,
    })
}

const _: () = assert!(DNS_WINDOW_BASE + 2 * DNS_WINDOWS as u32 == THREAD_WINDOWS);

/// Applies `f` to a network row's endpoints.
fn set_net(d: &mut Decoded, f: impl FnOnce(&mut Net)) {
    if let Detail::Connect(n) | Detail::SendTo(n) | Detail::Accept(n) = &mut d.event.detail {
        f(n)
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
                failed: 0,
                last_err: 0,
                last_ns,
            },
            ..open(tid, "", Role::Row, last_ns + 50)
        }
    }

    /// Routes `d`, returning the rows it stands for.
    fn route(w: &mut Windows, d: Decoded, clock: &BootClock) -> Vec<Decoded> {
        let mut rows = Vec::new();
        w.route(d, clock, |r| rows.push(r));
        rows
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
        let first = route(&mut w, open(10, "/proc/stat", Role::Window(2), 100), &clock)
            .pop()
            .unwrap();
        assert_eq!((first.role, count_of(&first)), (Role::Row, None));
        let row = route(&mut w, repeat(10, 2, 41, 900), &clock).pop().unwrap();
        assert_eq!(count_of(&row), Some(41));
        assert_eq!(row.event.ktime_ns, 900);
        assert_eq!(row.event.time_ns, clock.wall_ns(900));
        assert!(
            matches!(&row.event.detail, Detail::Open { file, .. } if file.path == "/proc/stat")
        );
        assert_eq!((row.start_ns, row.role), (7, Role::Row));
        // The window is closed: a second count for it has no first row.
        assert!(route(&mut w, repeat(10, 2, 1, 1000), &clock).is_empty());
        assert_eq!(
            w.stats,
            CollapseStats {
                rows: 1,
                opens: 41,
                orphaned: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn thread_end_forgets_and_the_end_of_capture_writes_what_is_left() {
        let clock = BootClock::measure();
        let mut w = Windows::default();
        route(&mut w, open(10, "/a", Role::Window(0), 1), &clock);
        route(&mut w, open(11, "/b", Role::Window(1), 2), &clock);
        let done = Decoded {
            role: Role::ThreadDone,
            ..open(10, "", Role::Row, 3)
        };
        assert!(route(&mut w, done, &clock).is_empty());
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
        let mut rows = Vec::new();
        w.remaining([(11, left), (10, forgotten)], [], [], &clock, |r| {
            rows.push(r)
        });
        assert_eq!(rows.len(), 1);
        assert_eq!(count_of(&rows[0]), Some(5));
        assert!(matches!(&rows[0].event.detail, Detail::Open { file, .. } if file.path == "/b"));
        assert_eq!(
            w.stats.orphaned, 1,
            "thread 10's window was forgotten at its end"
        );
    }

    fn connect(tid: u32, kind: &str, port: u16, role: Role, ktime: u64) -> Decoded {
        let net = Net {
            family: "inet".into(),
            protocol: "tcp".into(),
            src_addr: Some("127.0.0.1".into()),
            src_port: Some(40001),
            dst_addr: Some("127.0.0.9".into()),
            dst_port: Some(port),
            ret: Some(0),
            ..Default::default()
        };
        let detail = match kind {
            "accept" => Detail::Accept(Box::new(net)),
            "sendto" => Detail::SendTo(Box::new(Net { ret: None, ..net })),
            _ => Detail::Connect(Box::new(net)),
        };
        Decoded {
            event: Event {
                detail,
                ..open(tid, "", Role::Row, ktime).event
            },
            role,
            ..open(tid, "", Role::Row, ktime)
        }
    }

    fn net_repeat(tid: u32, index: u32, count: u32, failed: u32, last_err: i32) -> Decoded {
        Decoded {
            role: Role::Repeat {
                index,
                count,
                failed,
                last_err,
                last_ns: 5000,
            },
            ..open(tid, "", Role::Row, 5050)
        }
    }

    fn net_of(d: &Decoded) -> &Net {
        match &d.event.detail {
            Detail::Connect(n) | Detail::Accept(n) | Detail::SendTo(n) => n,
            other => panic!("not a network row: {other:?}"),
        }
    }

    #[test]
    fn a_connect_window_closes_as_a_row_for_successes_and_one_for_failures() {
        let clock = BootClock::measure();
        let mut w = Windows::default();
        let base = NET_WINDOW_BASE;
        // Open window 2 and network window 2 of the same thread do not mix.
        route(&mut w, open(10, "/etc/hosts", Role::Window(2), 1), &clock);
        route(
            &mut w,
            connect(10, "connect", 3333, Role::Window(base + 2), 2),
            &clock,
        );
        let rows = route(&mut w, net_repeat(10, base + 2, 9, 4, -111), &clock);
        assert_eq!(rows.len(), 2);
        let (ok, failed) = (net_of(&rows[0]), net_of(&rows[1]));
        assert_eq!((ok.count, ok.ret), (Some(5), Some(0)));
        assert_eq!((failed.count, failed.ret), (Some(4), Some(-111)));
        for n in [ok, failed] {
            assert_eq!(
                (n.dst_addr.as_deref(), n.dst_port),
                (Some("127.0.0.9"), Some(3333))
            );
            assert_eq!(
                (n.src_addr.as_deref(), n.src_port),
                (None, None),
                "ephemeral port"
            );
        }
        assert_eq!(rows[0].event.ktime_ns, 5000);
        // Every repeat failed: one row.
        route(
            &mut w,
            connect(10, "connect", 4444, Role::Window(base), 6000),
            &clock,
        );
        let rows = route(&mut w, net_repeat(10, base, 3, 3, -113), &clock);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (net_of(&rows[0]).count, net_of(&rows[0]).ret),
            (Some(3), Some(-113))
        );
        assert_eq!(
            (w.stats.net_rows, w.stats.connections, w.stats.rows),
            (3, 12, 0)
        );
        // The open window is still there.
        assert_eq!(route(&mut w, repeat(10, 2, 1, 7000), &clock).len(), 1);
    }

    fn dns(tid: u32, name: &str, response: bool, role: Role, ktime: u64) -> Decoded {
        let (src, dst) = if response {
            (Some(53), Some(40001))
        } else {
            (Some(40001), Some(53))
        };
        let d = Box::new(needle_common::schema::Dns {
            name: name.into(),
            qtype: 1,
            rcode: response.then_some(3),
            net: Net {
                src_port: src,
                dst_port: dst,
                ..Default::default()
            },
            ..Default::default()
        });
        let detail = if response {
            Detail::DnsResponse(d)
        } else {
            Detail::DnsQuery(d)
        };
        let base = open(tid, "", Role::Row, ktime);
        Decoded {
            event: Event {
                detail,
                ..base.event
            },
            role,
            ..base
        }
    }

    #[test]
    fn dns_windows_close_as_one_counted_row_without_the_client_port() {
        let clock = BootClock::measure();
        let mut w = Windows::default();
        let (q, a) = (DNS_WINDOW_BASE, DNS_WINDOW_BASE + DNS_WINDOWS as u32);
        route(
            &mut w,
            dns(30, "x.example", false, Role::Window(q + 1), 1),
            &clock,
        );
        route(
            &mut w,
            dns(30, "x.example", true, Role::Window(a + 1), 2),
            &clock,
        );
        let rows = route(&mut w, net_repeat(30, q + 1, 99, 0, 0), &clock);
        let Detail::DnsQuery(d) = &rows[0].event.detail else {
            panic!("{rows:?}")
        };
        assert_eq!(
            (d.net.count, d.net.src_port, d.net.dst_port),
            (Some(99), None, Some(53))
        );
        assert_eq!(d.name, "x.example");
        // The answer window is still open at the end.
        let mut left = DnsWindows::default();
        left.answers[1] = DnsWindow {
            count: 7,
            last_ns: 90,
            state: WINDOW_ROW,
            ..Default::default()
        };
        let mut rows = Vec::new();
        w.remaining([], [], [(30, left)], &clock, |r| rows.push(r));
        let Detail::DnsResponse(d) = &rows[0].event.detail else {
            panic!("{rows:?}")
        };
        assert_eq!(
            (d.net.count, d.net.src_port, d.net.dst_port),
            (Some(7), Some(53), None)
        );
        assert_eq!(d.rcode, Some(3));
        assert_eq!((w.stats.dns_rows, w.stats.dns_messages), (2, 106));
    }

    #[test]
    fn accept_and_sendto_windows_keep_the_local_side_and_count_every_repeat() {
        let clock = BootClock::measure();
        let mut w = Windows::default();
        let base = NET_WINDOW_BASE;
        route(
            &mut w,
            connect(20, "accept", 80, Role::Window(base + 1), 1),
            &clock,
        );
        route(
            &mut w,
            connect(20, "sendto", 53, Role::Window(base + 3), 2),
            &clock,
        );
        let rows = route(&mut w, net_repeat(20, base + 1, 7, 0, 0), &clock);
        let a = net_of(&rows[0]);
        assert_eq!((a.count, a.ret, a.dst_port), (Some(7), None, None));
        assert_eq!(
            (a.src_addr.as_deref(), a.src_port),
            (Some("127.0.0.1"), Some(40001))
        );
        assert_eq!(a.dst_addr.as_deref(), Some("127.0.0.9"));
        let mut left = NetWindows::default();
        left.windows[3] = needle_common::abi::NetWindow {
            count: 2,
            last_ns: 80,
            state: WINDOW_ROW,
            ..Default::default()
        };
        let mut rows = Vec::new();
        w.remaining([], [(20, left)], [], &clock, |r| rows.push(r));
        assert_eq!(rows.len(), 1);
        let s = net_of(&rows[0]);
        assert_eq!((s.count, s.ret, s.dst_port), (Some(2), None, Some(53)));
        assert!(matches!(rows[0].event.detail, Detail::SendTo(_)));
    }
}
