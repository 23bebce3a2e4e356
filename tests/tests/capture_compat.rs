//! End to end: 32-bit syscalls (`int 0x80`) from a 64-bit process. Their numbers and argument
//! registers follow the ia32 table — 5 is open, 42 is pipe, 43 is times — so decoding them as
//! 64-bit calls would write garbage rows (a 32-bit pipe as a `connect`, a 32-bit times as an
//! `accept`). capture decodes none of them as 64-bit calls and counts those that reach a
//! recording handler (`compat_syscall`: here pipe and times, whose 64-bit twins have handlers;
//! a 32-bit open lands on 64-bit fstat, which has none, and is neither decoded nor counted —
//! a known gap); the 64-bit calls around them are recorded as always.

use std::ffi::CString;

use needle_common::schema::Detail;
use needle_tests::capture::{Capture, stop_and_read};
use needle_tests::require_privileges;

/// A 32-bit syscall through `int 0x80` (pointers must lie below 4 GiB).
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: i32;
    // SAFETY: the kernel's ia32 entry takes eax/ebx/ecx/edx and returns in eax; rbx is
    // reserved by LLVM, so its value is swapped in and out around the call.
    unsafe {
        std::arch::asm!(
            "xchg {a:r}, rbx",
            "int 0x80",
            "xchg {a:r}, rbx",
            a = inout(reg) u64::from(a) => _,
            inlateout("eax") nr as i32 => ret,
            in("ecx") b,
            in("edx") c,
        );
    }
    ret
}

/// Memory below 4 GiB (`MAP_32BIT`), for a path a 32-bit syscall can point at.
fn low_page() -> *mut u8 {
    // SAFETY: an anonymous private mapping; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
    assert!((p as usize) < 1 << 32);
    p.cast()
}

#[test]
fn compat_syscalls_are_counted_not_decoded_as_64_bit_calls() {
    if !require_privileges("capture_compat::compat_syscalls") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let target = dir.join("compat-target");
    std::fs::write(&target, b"x").unwrap();
    let out = dir.join("traces");
    let cap = Capture::start(&out, &["--duration", "60s", "--collapse-window", "0"]);

    // SAFETY: no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    // ia32 getpid (20) answers like the 64-bit one: the entry works on this kernel.
    assert_eq!(
        int80(20, 0, 0, 0),
        std::process::id() as i32,
        "int 0x80 unavailable (no IA32 emulation?)"
    );
    let page = low_page();
    let path = CString::new(target.to_str().unwrap()).unwrap();
    // SAFETY: the page is ours and larger than the path.
    unsafe {
        std::ptr::copy_nonoverlapping(
            path.as_ptr().cast::<u8>(),
            page,
            path.as_bytes_with_nul().len(),
        )
    };
    // ia32 open (5): a real open of the file, by a 32-bit syscall.
    let fd = int80(5, page as u32, libc::O_RDONLY as u32, 0);
    assert!(fd >= 0, "32-bit open: {fd}");
    // ia32 pipe (42) — 64-bit 42 is connect — and times (43) — 64-bit 43 is accept.
    let fds = page.wrapping_add(1024);
    assert_eq!(int80(42, fds as u32, 0, 0), 0, "32-bit pipe");
    let _ = int80(43, 0, 0, 0);
    // SAFETY: closing fds we own.
    unsafe {
        libc::close(fd);
        libc::close(*(fds as *const i32));
        libc::close(*(fds as *const i32).add(1));
    }
    // A 64-bit open of the same file right after: recorded as always.
    let c = CString::new(target.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; the fd is ours.
    let fd64 = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(fd64 >= 0);
    // SAFETY: ours.
    unsafe { libc::close(fd64) };

    let runs = stop_and_read(vec![(cap, &out)]);
    let r = &runs[0].0;
    let mine: Vec<&Detail> = r.of_thread(tid).map(|e| &e.detail).collect();
    let target_s = target.to_str().unwrap();
    let opens: Vec<&&Detail> = mine
        .iter()
        .filter(|d| matches!(d, Detail::Open { file, .. } if file.path == target_s))
        .collect();
    assert_eq!(opens.len(), 1, "only the 64-bit open is a row: {mine:?}");
    assert!(
        !mine
            .iter()
            .any(|d| matches!(d, Detail::Connect(_) | Detail::Accept(_))),
        "no 32-bit call decoded as a 64-bit connect/accept: {mine:?}"
    );
    assert!(
        r.counter("compat_syscall") >= 2,
        "pipe and times counted: {:?}",
        r.counters
    );
}
