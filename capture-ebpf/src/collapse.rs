//! Collapse windows for repeated identical opens, for repeated connections to one peer and for
//! repeated DNS messages (see `needle_common::abi::OpenWindows`, `NetWindows`, `DnsWindows`).
//!
//! Only the thread itself touches its open and network windows (its own syscall exits, its own
//! connect hooks, its own exit), so their counts need no atomics. DNS windows are touched by the
//! packet hooks, which run for the socket's owner but not in its context — an answer arrives in
//! softirq on any CPU — so their counts are added atomically, and a window closed there is
//! sent with the owner's header. User space reads what is left only after the programs are
//! detached.

use core::intrinsics::AtomicOrdering;

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns};
use needle_common::abi::{
    Counter, DNS_WINDOW_BASE, DNS_WINDOWS, DnsWindow, DnsWindows, EventHeader, EventKind,
    NET_WINDOW_BASE, NET_WINDOWS, NetWindow, NetWindows, OPEN_WINDOWS, OpenWindow, OpenWindows,
    REPEAT_THREAD_DONE, RepeatEvent, SHAPE_REPEAT, WINDOW_EMPTY, WINDOW_FILE_FILTERED,
    WINDOW_PROC_SELF_FILTERED, WINDOW_ROW,
};

use crate::emit::{count_event, fill_header, reserve, submit};
use crate::maps::{
    DNS_WINDOWS_BY_TID, DNS_WINDOWS_ZERO, NET_WINDOWS_BY_TID, NET_WINDOWS_ZERO,
    OPEN_WINDOWS_BY_TID, WINDOWS_ZERO, config,
};

/// A connect that is still in progress (non-blocking): not a failure.
const EINPROGRESS: i64 = 115;

/// What the open handler does with an open.
pub enum Seen {
    /// Counted into an open window (as a repeat, or as filtered): nothing more to do.
    Counted,
    /// A new window: handle the open as usual, then say with [`opened`] what became of it.
    New(*mut OpenWindow, u32),
    /// Collapsing is off, or the thread has no windows (map full).
    Untracked,
}

/// Looks up the open of file `(ino, sb)` (see `fs::file_key`) with `flags` among the current
/// thread's windows.
#[inline(always)]
pub fn seen(ino: u64, sb: u64, flags: u32) -> Seen {
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
            if w.ino != ino || w.sb != sb || w.flags != flags {
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
            sb,
            first_ns: now,
            last_ns: now,
            flags,
            count: 0,
            state: WINDOW_EMPTY,
            _pad: 0,
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
    let mut rows = false;
    if let Some(ws) = OPEN_WINDOWS_BY_TID.get_ptr_mut(tid) {
        // SAFETY: the exiting thread's own value.
        unsafe {
            for i in 0..OPEN_WINDOWS {
                let w = &mut (*ws).windows[i];
                rows |= w.state == WINDOW_ROW;
                close(w, i as u32);
            }
        }
        let _ = OPEN_WINDOWS_BY_TID.remove(tid);
    }
    if let Some(ws) = NET_WINDOWS_BY_TID.get_ptr_mut(tid) {
        // SAFETY: as above.
        unsafe {
            for i in 0..NET_WINDOWS {
                let w = &mut (*ws).windows[i];
                rows |= w.state == WINDOW_ROW;
                close_net(w, i as u32);
            }
        }
        let _ = NET_WINDOWS_BY_TID.remove(tid);
    }
    if let Some(ws) = DNS_WINDOWS_BY_TID.get_ptr_mut(tid) {
        // SAFETY: as above (an answer counted on another CPU meanwhile may be lost with the
        // window: the thread is gone).
        unsafe {
            for i in 0..DNS_WINDOWS {
                let w = &mut (*ws).queries[i];
                rows |= w.state == WINDOW_ROW;
                if let Some(r) = dns_repeat(w, EventKind::DnsQuery, DNS_WINDOW_BASE + i as u32) {
                    send(r.0, r.1, r.2, r.3, r.4, 0, 0);
                }
                let w = &mut (*ws).answers[i];
                rows |= w.state == WINDOW_ROW;
                let n = DNS_WINDOW_BASE + (DNS_WINDOWS + i) as u32;
                if let Some(r) = dns_repeat(w, EventKind::DnsResponse, n) {
                    send(r.0, r.1, r.2, r.3, r.4, 0, 0);
                }
            }
        }
        let _ = DNS_WINDOWS_BY_TID.remove(tid);
    }
    if rows {
        send(EventKind::Open, REPEAT_THREAD_DONE, 0, 0, 0, 0, 0);
    }
}

/// Sends window `index`'s count if it holds repeats of a recorded open.
#[inline(always)]
fn close(w: &mut OpenWindow, index: u32) {
    if w.state == WINDOW_ROW && w.count != 0 {
        send(EventKind::Open, index, w.count, w.first_ns, w.last_ns, 0, 0);
    }
    w.state = WINDOW_EMPTY;
    w.count = 0;
}

/// Sends network window `index`'s counts if it holds repeats of a recorded connection.
#[inline(always)]
fn close_net(w: &mut NetWindow, index: u32) {
    if w.state == WINDOW_ROW && w.count != 0 {
        let kind = match w.kind {
            k if k == EventKind::Accept as u32 => EventKind::Accept,
            k if k == EventKind::SendTo as u32 => EventKind::SendTo,
            _ => EventKind::Connect,
        };
        let window = NET_WINDOW_BASE + index;
        send(
            kind, window, w.count, w.first_ns, w.last_ns, w.failed, w.last_err,
        );
    }
    w.state = WINDOW_EMPTY;
    w.count = 0;
    w.failed = 0;
    w.last_err = 0;
}

/// Sends a window's count as a `kind` record (`failed`, `last_err`: a network window's failed
/// repeats and the errno of the last one).
#[inline(always)]
fn send(
    kind: EventKind,
    window: u32,
    count: u32,
    first_ns: u64,
    last_ns: u64,
    failed: u32,
    last_err: i32,
) {
    // A full ring loses the count: counted as a lost event of the window's kind.
    let Some(mut entry) = reserve::<RepeatEvent>(kind) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points into our reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, kind);
        (*ev).header.shape = SHAPE_REPEAT;
        (*ev).window = window;
        (*ev).count = count;
        (*ev).first_ns = first_ns;
        (*ev).last_ns = last_ns;
        (*ev).failed = failed;
        (*ev).last_err = last_err;
    }
    submit(entry);
}

/// A connection's identity for the network windows.
pub struct Peer {
    /// `connect`, `sendto` or `accept`.
    pub kind: EventKind,
    /// `AF_INET` / `AF_INET6`.
    pub family: u16,
    /// connect/sendto: the remote port; accept: the local port.
    pub port: u16,
    /// connect/sendto: the IP protocol; accept: the socket type.
    pub protocol: u32,
    /// The remote address, as two words.
    pub addr: [u64; 2],
}

/// What a connection hook or accept exit does with a connection.
pub enum NetSeen {
    /// Counted into a window: nothing more to do.
    Counted,
    /// Recorded as a row that opens the window numbered `n - 1` (put `n` in the row).
    New(u32),
    /// Collapsing is off, or the thread has no windows (map full): a row without a window.
    Untracked,
}

/// Looks up `peer` among the current thread's network windows: a repeat within the window is
/// counted; anything else takes a window (closing the one it replaces). A connect that is
/// counted is left pending, with its socket's `cookie`, for [`connect_result`].
#[inline(always)]
pub fn net_seen(peer: &Peer, cookie: u64) -> NetSeen {
    let window_ns = config().collapse_window_ns;
    if window_ns == 0 {
        return NetSeen::Untracked;
    }
    let Some(ws) = net_windows() else {
        return NetSeen::Untracked;
    };
    let kind = peer.kind as u32;
    let connect = peer.kind == EventKind::Connect;
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let mut reuse = NET_WINDOWS;
    // SAFETY: the current thread's own map value (see the module docs).
    unsafe {
        if connect {
            (*ws).pending = 0;
        }
        for i in 0..NET_WINDOWS {
            let w = &mut (*ws).windows[i];
            if w.state == WINDOW_EMPTY {
                if reuse == NET_WINDOWS {
                    reuse = i;
                }
                continue;
            }
            if w.kind != kind
                || w.port != peer.port
                || w.family != peer.family
                || w.protocol != peer.protocol
                || w.addr[0] != peer.addr[0]
                || w.addr[1] != peer.addr[1]
            {
                continue;
            }
            if now.wrapping_sub(w.first_ns) < window_ns {
                w.count = w.count.wrapping_add(1);
                w.last_ns = now;
                count_event(Counter::NetCollapsed);
                if connect {
                    (*ws).pending = i as u32 + 1;
                    (*ws).pending_cookie = cookie;
                }
                return NetSeen::Counted;
            }
            reuse = i;
            break;
        }
        if reuse >= NET_WINDOWS {
            reuse = ((*ws).next as usize) & (NET_WINDOWS - 1);
            (*ws).next = (*ws).next.wrapping_add(1);
        }
        let w = &mut (*ws).windows[reuse];
        close_net(w, reuse as u32);
        *w = NetWindow {
            addr: peer.addr,
            first_ns: now,
            last_ns: now,
            kind,
            family: peer.family,
            port: peer.port,
            protocol: peer.protocol,
            count: 0,
            failed: 0,
            last_err: 0,
            state: WINDOW_ROW,
            _pad: 0,
        };
        NetSeen::New(NET_WINDOW_BASE + reuse as u32 + 1)
    }
}

/// True when the current thread has a connect counted as a repeat whose result this is: the
/// exit then adds a failure to that window (`ret` < 0, other than `EINPROGRESS`) instead of
/// reporting a result. `cookie` reads the socket's cookie; it is only called when a connect is
/// pending.
#[inline(always)]
pub fn connect_result(ret: i64, cookie: impl FnOnce() -> Option<u64>) -> bool {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(ws) = NET_WINDOWS_BY_TID.get_ptr_mut(tid) else {
        return false;
    };
    // SAFETY: the current thread's own map value.
    unsafe {
        let pending = (*ws).pending;
        if pending == 0 {
            return false;
        }
        (*ws).pending = 0;
        if cookie() != Some((*ws).pending_cookie) {
            return false;
        }
        if ret < 0 && ret != -EINPROGRESS {
            let i = (pending - 1) as usize;
            if i < NET_WINDOWS {
                let w = &mut (*ws).windows[i];
                w.failed = w.failed.wrapping_add(1);
                w.last_err = ret as i32;
            }
        }
    }
    true
}

/// The current thread's network windows, created on its first connection.
#[inline(always)]
fn net_windows() -> Option<*mut NetWindows> {
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(p) = NET_WINDOWS_BY_TID.get_ptr_mut(tid) {
        return Some(p);
    }
    let zero = NET_WINDOWS_ZERO.get(0)?;
    if NET_WINDOWS_BY_TID
        .insert(tid, zero, BPF_NOEXIST as u64)
        .is_err()
    {
        count_event(Counter::CollapseMapFull);
        return None;
    }
    NET_WINDOWS_BY_TID.get_ptr_mut(tid)
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

/// A DNS message's identity for the DNS windows (see `needle_common::abi::DnsWindows`).
pub struct DnsKey {
    /// Seeded hash of the message after its transaction id.
    pub hash: u64,
    /// The server's address, as two words.
    pub addr: [u64; 2],
    /// The server's port.
    pub port: u16,
    /// Bytes of the message copied.
    pub len: u16,
    /// `AF_INET` / `AF_INET6`.
    pub family: u16,
}

/// Looks up a UDP DNS message of the socket owner `owner` among its thread's DNS windows
/// (`answer`: the answer windows, which only exist once the thread queried): a repeat within
/// the window is counted; anything else takes a window, closing the one it replaces.
#[inline(always)]
pub fn dns_seen(owner: &EventHeader, answer: bool, key: &DnsKey) -> NetSeen {
    let window_ns = config().collapse_window_ns;
    let tid = owner.pid;
    if window_ns == 0 || tid == 0 {
        return NetSeen::Untracked;
    }
    let ws = if answer {
        DNS_WINDOWS_BY_TID.get_ptr_mut(tid)
    } else {
        dns_windows(tid)
    };
    let Some(ws) = ws else {
        return NetSeen::Untracked;
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: a live map value; concurrent hooks on other CPUs only add to counts atomically
    // or, rarely, replace a window (its count may then be lost, never misattributed).
    unsafe {
        let (set, next, base, kind) = if answer {
            (
                &mut (*ws).answers,
                &mut (*ws).next_answer,
                DNS_WINDOW_BASE + DNS_WINDOWS as u32,
                EventKind::DnsResponse,
            )
        } else {
            (
                &mut (*ws).queries,
                &mut (*ws).next_query,
                DNS_WINDOW_BASE,
                EventKind::DnsQuery,
            )
        };
        let mut reuse = DNS_WINDOWS;
        for (i, w) in set.iter_mut().enumerate() {
            if w.state == WINDOW_EMPTY {
                if reuse == DNS_WINDOWS {
                    reuse = i;
                }
                continue;
            }
            if w.hash != key.hash
                || w.len != key.len
                || w.port != key.port
                || w.family != key.family
                || w.addr[0] != key.addr[0]
                || w.addr[1] != key.addr[1]
            {
                continue;
            }
            if now.wrapping_sub(w.first_ns) < window_ns {
                // The one atomic add instruction (the BPF target's atomic types have no
                // `fetch_add`; the result is unused, so this is BPF_ADD, not BPF_FETCH).
                core::intrinsics::atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut w.count,
                    1,
                );
                w.last_ns = now;
                count_event(Counter::DnsCollapsed);
                return NetSeen::Counted;
            }
            reuse = i;
            break;
        }
        if reuse >= DNS_WINDOWS {
            reuse = (*next as usize) & (DNS_WINDOWS - 1);
            *next = next.wrapping_add(1);
        }
        let w = &mut set[reuse];
        let number = base + reuse as u32;
        if let Some((kind, window, count, first_ns, last_ns)) = dns_repeat(w, kind, number) {
            send_as(owner, kind, window, count, first_ns, last_ns);
        }
        *w = DnsWindow {
            hash: key.hash,
            addr: key.addr,
            first_ns: now,
            last_ns: now,
            count: 0,
            state: WINDOW_ROW,
            port: key.port,
            len: key.len,
            family: key.family,
            _pad: 0,
            _pad2: 0,
        };
        NetSeen::New(number + 1)
    }
}

/// Empties DNS window `w` (number `window`); its count to send, if it holds repeats of a
/// recorded message: `(kind, window, count, first_ns, last_ns)`.
#[inline(always)]
fn dns_repeat(
    w: &mut DnsWindow,
    kind: EventKind,
    window: u32,
) -> Option<(EventKind, u32, u32, u64, u64)> {
    let count = w.count.min(u32::MAX as u64) as u32;
    let out = (w.state == WINDOW_ROW && count != 0)
        .then_some((kind, window, count, w.first_ns, w.last_ns));
    w.state = WINDOW_EMPTY;
    w.count = 0;
    out
}

/// Sends a DNS window's count for the socket owner `owner` (the packet hooks do not run in
/// the owner's context, so the header is the owner's, not the current task's).
#[inline(always)]
fn send_as(
    owner: &EventHeader,
    kind: EventKind,
    window: u32,
    count: u32,
    first_ns: u64,
    last_ns: u64,
) {
    let Some(mut entry) = reserve::<RepeatEvent>(kind) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points into our reservation.
    unsafe {
        (*ev).header = *owner;
        (*ev).header.kind = kind as u32;
        (*ev).header.shape = SHAPE_REPEAT;
        (*ev).header.ktime_ns = bpf_ktime_get_boot_ns();
        (*ev).window = window;
        (*ev).count = count;
        (*ev).first_ns = first_ns;
        (*ev).last_ns = last_ns;
        (*ev).failed = 0;
        (*ev).last_err = 0;
    }
    submit(entry);
}

/// Thread `tid`'s DNS windows, created on its first query.
#[inline(always)]
fn dns_windows(tid: u32) -> Option<*mut DnsWindows> {
    if let Some(p) = DNS_WINDOWS_BY_TID.get_ptr_mut(tid) {
        return Some(p);
    }
    let zero = DNS_WINDOWS_ZERO.get(0)?;
    if DNS_WINDOWS_BY_TID
        .insert(tid, zero, BPF_NOEXIST as u64)
        .is_err()
    {
        count_event(Counter::CollapseMapFull);
        return None;
    }
    DNS_WINDOWS_BY_TID.get_ptr_mut(tid)
}
