//! Collapse windows for repeated identical opens (see `needle_common::abi::OpenWindows`).
//!
//! Only the thread itself touches its windows (its own syscall exits, its own exit), so the
//! counts need no atomics; user space reads what is left only after the programs are detached.

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns};
use needle_common::abi::{
    Counter, EventKind, OPEN_WINDOWS, OpenWindow, OpenWindows, REPEAT_THREAD_DONE, RepeatEvent,
    SHAPE_REPEAT, WINDOW_EMPTY, WINDOW_FILE_FILTERED, WINDOW_PROC_SELF_FILTERED, WINDOW_ROW,
};

use crate::emit::{count_event, fill_header, reserve, submit};
use crate::maps::{OPEN_WINDOWS_BY_TID, WINDOWS_ZERO, config};

/// What the open handler does with an open.
pub enum Seen {
    /// Counted into an open window (as a repeat, or as filtered): nothing more to do.
    Counted,
    /// A new window: handle the open as usual, then say with [`opened`] what became of it.
    New(*mut OpenWindow, u32),
    /// Collapsing is off, or the thread has no windows (map full).
    Untracked,
}

/// Looks up the open of file `(dev, ino)` with `flags` among the current thread's windows.
#[inline(always)]
pub fn seen(ino: u64, dev: u32, flags: u32) -> Seen {
    let window_ns = config().collapse_window_ns;
    if window_ns == 0 {
        return Seen::Untracked;
    }
    let Some(ws) = windows() else {
        return Seen::Untracked;
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let mut reuse = OPEN_WINDOWS;
    // SAFETY: the current thread's own map value (see the module docs).
    unsafe {
        for i in 0..OPEN_WINDOWS {
            let w = &mut (*ws).windows[i];
            if w.state == WINDOW_EMPTY {
                if reuse == OPEN_WINDOWS {
                    reuse = i;
                }
                continue;
            }
            if w.ino != ino || w.dev != dev || w.flags != flags {
                continue;
            }
            if now.wrapping_sub(w.first_ns) < window_ns {
                match w.state {
                    WINDOW_FILE_FILTERED => count_event(Counter::FileFiltered),
                    WINDOW_PROC_SELF_FILTERED => count_event(Counter::ProcSelfFiltered),
                    _ => {
                        w.count = w.count.wrapping_add(1);
                        w.last_ns = now;
                        count_event(Counter::OpenCollapsed);
                    }
                }
                return Seen::Counted;
            }
            // The same open after its window: close it and start the next one in its place.
            reuse = i;
            break;
        }
        if reuse >= OPEN_WINDOWS {
            reuse = ((*ws).next as usize) & (OPEN_WINDOWS - 1);
            (*ws).next = (*ws).next.wrapping_add(1);
        }
        let w = &mut (*ws).windows[reuse];
        close(w, reuse as u32);
        *w = OpenWindow {
            ino,
            first_ns: now,
            last_ns: now,
            dev,
            flags,
            count: 0,
            state: WINDOW_EMPTY,
        };
        Seen::New(w as *mut OpenWindow, reuse as u32)
    }
}

/// Records what the handler did with the open that started window `w`: `state` is
/// [`WINDOW_ROW`] when it was written as a row, a `WINDOW_*_FILTERED` state when a filter
/// skipped it, and [`WINDOW_EMPTY`] when the window should not collect repeats (an open that is
/// always recorded, such as a write-open of `/proc/<pid>/mem`).
///
/// # Safety
/// `w` must come from [`seen`] in the same program run.
#[inline(always)]
pub unsafe fn opened(w: *mut OpenWindow, state: u32) {
    // SAFETY: as the caller guarantees.
    unsafe { (*w).state = state }
}

/// The current thread exits: closes its windows, tells user space it is done, drops them.
#[inline(always)]
pub fn thread_exit() {
    if config().collapse_window_ns == 0 {
        return;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(ws) = OPEN_WINDOWS_BY_TID.get_ptr_mut(tid) else {
        return;
    };
    let mut rows = false;
    // SAFETY: the exiting thread's own value.
    unsafe {
        for i in 0..OPEN_WINDOWS {
            let w = &mut (*ws).windows[i];
            rows |= w.state == WINDOW_ROW;
            close(w, i as u32);
        }
    }
    if rows {
        send(REPEAT_THREAD_DONE, 0, 0, 0);
    }
    let _ = OPEN_WINDOWS_BY_TID.remove(tid);
}

/// Sends window `index`'s count if it holds repeats of a recorded open.
#[inline(always)]
fn close(w: &mut OpenWindow, index: u32) {
    if w.state == WINDOW_ROW && w.count != 0 {
        send(index, w.count, w.first_ns, w.last_ns);
    }
    w.state = WINDOW_EMPTY;
    w.count = 0;
}

#[inline(always)]
fn send(window: u32, count: u32, first_ns: u64, last_ns: u64) {
    // A full ring loses the count: counted as a lost `open`.
    let Some(mut entry) = reserve::<RepeatEvent>(EventKind::Open) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points into our reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Open);
        (*ev).header.shape = SHAPE_REPEAT;
        (*ev).window = window;
        (*ev).count = count;
        (*ev).first_ns = first_ns;
        (*ev).last_ns = last_ns;
    }
    submit(entry);
}

/// The current thread's windows, created on its first collapsible open.
#[inline(always)]
fn windows() -> Option<*mut OpenWindows> {
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(p) = OPEN_WINDOWS_BY_TID.get_ptr_mut(tid) {
        return Some(p);
    }
    let zero = WINDOWS_ZERO.get(0)?;
    if OPEN_WINDOWS_BY_TID
        .insert(tid, zero, BPF_NOEXIST as u64)
        .is_err()
    {
        count_event(Counter::CollapseMapFull);
        return None;
    }
    OPEN_WINDOWS_BY_TID.get_ptr_mut(tid)
}
