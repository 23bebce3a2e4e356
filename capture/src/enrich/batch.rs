//! The rows of the row group being collected.
//!
//! Most rows are kept whole, as [`Pending`] events. `syscall` rows (`--syscalls full`, up to
//! millions a second) are kept as a [`Call`]: their time, number and result, and the index of
//! the row they share everything else with — the first syscall row of their thread in this
//! batch, enriched in full. A call row is 40 bytes with no reference counts to touch, where an
//! event is a few hundred bytes holding half a dozen `Arc`s that the reader clones and the
//! writer drops.

use needle_common::abi::{COMM_LEN, EventHeader};
use needle_common::schema::Row;

use super::Pending;
use crate::hashing::Map;

/// A `syscall` row, told by the context row it shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// Wall-clock time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Boot-time clock.
    pub ktime_ns: u64,
    /// Return value.
    pub ret: i64,
    /// Syscall number.
    pub nr: u32,
    /// Index into [`Batch::contexts`].
    pub context: u32,
    /// How many of [`Batch::rows`] arrived before it: with the calls' own order this is the
    /// batch's arrival order.
    pub after: u32,
}

/// What a record's header says about its thread: everything but the kind, CPU, time and shape.
/// Two records of a thread with the same identity (and no change in the process table
/// between them) get the same context columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thread {
    cgroup_id: u64,
    ids: [u32; 5],
    start_ns: u64,
    parent_start_ns: u64,
    comm: [u8; COMM_LEN],
}

impl Thread {
    /// The identity in `h`.
    pub fn of(h: &EventHeader) -> Thread {
        Thread {
            cgroup_id: h.cgroup_id,
            ids: [h.pid, h.tgid, h.ppid, h.uid, h.gid],
            start_ns: h.start_ns,
            parent_start_ns: h.parent_start_ns,
            comm: h.comm,
        }
    }
}

/// A row whose context call rows share.
pub struct Shared {
    /// The row (itself a `syscall` row, the first of its thread in the batch).
    pub row: Pending,
    /// The identity it was enriched for.
    pub thread: Thread,
    /// How many call rows it stands in for (itself included).
    pub uses: u64,
    /// The process table's generation when the context was last known to be current.
    pub generation: u64,
}

/// An entry of the arrival or write order: an index into [`Batch::rows`], or with [`CALL`]
/// set, into [`Batch::calls`].
pub type Entry = u32;

/// The bit of an [`Entry`] that names a call row.
pub const CALL: Entry = 1 << 31;

/// The rows of one row group, as they are collected.
#[derive(Default)]
pub struct Batch {
    /// Rows kept whole, in arrival order.
    pub rows: Vec<Pending>,
    /// Call rows, in arrival order.
    pub calls: Vec<Call>,
    /// The rows call rows share their context with.
    pub contexts: Vec<Shared>,
    /// The context of each thread's call rows in this batch, by thread id.
    threads: Map<u32, u32>,
    /// The last thread looked up and its context (records come in runs of one CPU's).
    last: Option<(u32, u32)>,
}

impl Batch {
    /// An empty batch with room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Batch {
        Batch {
            rows: Vec::with_capacity(rows),
            calls: Vec::with_capacity(rows),
            ..Default::default()
        }
    }

    /// Rows in the batch (call rows included).
    pub fn len(&self) -> usize {
        self.rows.len() + self.calls.len()
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.calls.is_empty()
    }

    /// The batch, leaving an empty one with the same room behind.
    pub fn take(&mut self) -> Batch {
        let next = Batch::with_capacity(self.rows.capacity().max(self.calls.capacity()));
        std::mem::replace(self, next)
    }

    /// The context thread `tid` with identity `thread` shares in this batch, if it has one.
    pub fn context_of(&mut self, tid: u32, thread: &Thread) -> Option<(u32, &mut Shared)> {
        let i = match self.last {
            Some((t, i)) if t == tid => i,
            _ => {
                let &i = self.threads.get(&tid)?;
                self.last = Some((tid, i));
                i
            }
        };
        let shared = self.contexts.get_mut(i as usize)?;
        (shared.thread == *thread).then_some((i, shared))
    }

    /// Adds a call row of context `context`.
    pub fn push_call(&mut self, time_ns: i64, ktime_ns: u64, nr: u32, ret: i64, context: u32) {
        self.calls.push(Call {
            time_ns,
            ktime_ns,
            ret,
            nr,
            context,
            after: self.rows.len() as u32,
        });
    }

    /// Makes `row` (a `syscall` row of thread `tid`, just enriched when the process table was
    /// at `generation`) the context of the thread's call rows, and adds it as the first of them.
    pub fn push_context(
        &mut self,
        tid: u32,
        thread: Thread,
        row: Pending,
        generation: u64,
        call: (u32, i64),
    ) {
        let (time_ns, ktime_ns) = (row.event.time_ns, row.event.ktime_ns);
        let i = self.contexts.len() as u32;
        self.contexts.push(Shared {
            row,
            thread,
            uses: 1,
            generation,
        });
        self.threads.insert(tid, i);
        self.last = Some((tid, i));
        let (nr, ret) = call;
        self.push_call(time_ns, ktime_ns, nr, ret, i);
    }

    /// The rows in arrival order.
    pub fn arrival(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut calls = self.calls.iter().enumerate().peekable();
        let mut rows = 0..self.rows.len() as u32;
        std::iter::from_fn(move || match calls.peek() {
            Some((j, c)) if c.after <= rows.start => {
                let j = *j as u32;
                calls.next();
                Some(j | CALL)
            }
            _ => rows
                .next()
                .or_else(|| calls.next().map(|(j, _)| j as u32 | CALL)),
        })
    }

    /// Boot-clock time of an entry.
    pub fn ktime(&self, e: Entry) -> u64 {
        if e & CALL != 0 {
            self.calls
                .get((e & !CALL) as usize)
                .map_or(0, |c| c.ktime_ns)
        } else {
            self.rows.get(e as usize).map_or(0, |p| p.event.ktime_ns)
        }
    }

    /// An entry as the writer takes it.
    pub fn row(&self, e: Entry) -> Option<Row<'_>> {
        if e & CALL == 0 {
            return self.rows.get(e as usize).map(|p| Row::Event(&p.event));
        }
        let c = self.calls.get((e & !CALL) as usize)?;
        let context = &self.contexts.get(c.context as usize)?.row.event;
        Some(Row::Syscall {
            time_ns: c.time_ns,
            ktime_ns: c.ktime_ns,
            nr: c.nr,
            ret: Some(c.ret),
            context,
        })
    }
}

#[cfg(test)]
mod tests {
    use needle_common::schema::{Detail, Event, Process};

    use super::*;

    fn row(ktime: u64) -> Pending {
        Pending::done(Event::new(
            ktime as i64,
            ktime,
            Process::default(),
            Detail::Fork,
        ))
    }

    #[test]
    fn arrival_interleaves_rows_and_calls_as_they_came() {
        let mut b = Batch::default();
        let t = Thread::of(&bytemuck::Zeroable::zeroed());
        b.push_context(7, t, row(1), 0, (39, 0)); // call 0
        b.rows.push(row(2)); // row 0
        b.rows.push(row(3)); // row 1
        b.push_call(4, 4, 39, 0, 0); // call 1
        b.push_call(5, 5, 39, 0, 0); // call 2
        b.rows.push(row(6)); // row 2
        let got: Vec<Entry> = b.arrival().collect();
        assert_eq!(got, vec![CALL, 0, 1, 1 | CALL, 2 | CALL, 2]);
        let times: Vec<u64> = got.iter().map(|&e| b.ktime(e)).collect();
        assert_eq!(times, vec![1, 2, 3, 4, 5, 6]);
        assert!(b.context_of(7, &t).is_some());
        let mut other: EventHeader = bytemuck::Zeroable::zeroed();
        other.uid = 1;
        assert!(
            b.context_of(7, &Thread::of(&other)).is_none(),
            "another identity"
        );
        assert!(b.context_of(8, &t).is_none(), "another thread");
        assert_eq!(b.len(), 6);
        let taken = b.take();
        assert_eq!(taken.len(), 6);
        assert!(b.is_empty() && b.context_of(7, &t).is_none());
    }
}
