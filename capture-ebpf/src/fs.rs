//! Paths from the kernel (a `struct file`'s dentry and mount, walked up to the task's root) and
//! from user memory (read at syscall exit), written into a scratch [`CallEvent`].
//!
//! A kernel walk writes NUL-terminated components leaf first (`passwd\0etc\0`); user space
//! reverses them. It crosses mount points (`mount::mnt_mountpoint`) so `/proc/1/mem` comes out
//! whole, and stops at the task's `fs->root`, so a container's paths are the container's view.

use aya_ebpf::cty::c_void;
use aya_ebpf::helpers::bpf_probe_read_kernel;
use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_kernel_str, bpf_probe_read_user_str};
use needle_common::abi::{
    CALL_INODE, CALL_PATH_DEPTH, CALL_PATH_DETACHED, CALL_PATH_KERNEL, CALL_PATH_TRUNCATED,
    CallEvent, FILTER_COMPONENTS, FILTER_NAME_MAX, FILTER_TEXT_MAX,
};

use crate::maps::{CALL_SCRATCH, config, offsets};
use crate::task::{self, read};

/// Kernel walks write each component at an offset masked to this (plus at most
/// [`NAME_READ_MAX`] bytes), which keeps every write inside the path area for the verifier.
const WALK_MASK: usize = 1023;
/// Bytes read of one component (NAME_MAX + NUL).
const NAME_READ_MAX: u32 = 256;
/// Bytes read of a user path string into the path area.
pub const USER_PATH_MAX: u32 = 1024;

/// Where the root-most components of a walked path are in `data` (offset, length without NUL).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Top {
    pub off: [u32; FILTER_COMPONENTS],
    pub len: [u32; FILTER_COMPONENTS],
    pub depth: u32,
}

/// `current->files->fdt->fd[fd]`, or null. Only in `tp_btf` programs: the walk to the fd
/// array is direct loads through BTF-typed pointers; the array of `struct file *` is not typed
/// for the verifier, so its entry is a kernel read.
#[inline(always)]
pub fn fd_file(fd: i64) -> *const u8 {
    if fd < 0 {
        return core::ptr::null();
    }
    let off = offsets();
    let files: *const u8 = task::load(task::current_btf(), off.task_files);
    if files.is_null() {
        return core::ptr::null();
    }
    let fdt: *const u8 = task::load(files, off.files_fdt);
    if fdt.is_null() {
        return core::ptr::null();
    }
    let max: u32 = task::load(fdt, off.fdt_max_fds);
    if fd as u64 >= max as u64 {
        return core::ptr::null();
    }
    let array: u64 = task::load(fdt, off.fdt_fd);
    read::<*const u8>(array as *const u8, (fd as u32).wrapping_mul(8)).unwrap_or(core::ptr::null())
}

/// Writes the path of `file` into `ev` (kernel source) and its inode identity; returns where
/// its first components are, for the filters.
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
pub unsafe fn file_path(ev: *mut CallEvent, file: *const u8) -> Option<Top> {
    if file.is_null() {
        return None;
    }
    // SAFETY: as the caller guarantees.
    unsafe {
        if let Some((ino, dev)) = file_identity(file) {
            (*ev).ino = ino;
            (*ev).dev = dev;
            (*ev).flags |= CALL_INODE;
        }
        file_walk(ev, file)
    }
}

/// Writes the path of `file` into `ev` (kernel source), without its inode identity.
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
pub unsafe fn file_walk(ev: *mut CallEvent, file: *const u8) -> Option<Top> {
    if file.is_null() {
        return None;
    }
    let off = offsets();
    let dentry: *const u8 = read(file, off.file_dentry).ok()?;
    let vfsmnt: *const u8 = read(file, off.file_vfsmount).ok()?;
    // SAFETY: as the caller guarantees.
    Some(unsafe { walk(ev, dentry, vfsmnt) })
}

/// Writes the current task's working directory into `ev` (kernel source).
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
pub unsafe fn cwd_walk(ev: *mut CallEvent) -> Option<Top> {
    let off = offsets();
    let fs: *const u8 = read(task::current(), off.task_fs).ok()?;
    let dentry: *const u8 = read(fs, off.fs_pwd_dentry).ok()?;
    let vfsmnt: *const u8 = read(fs, off.fs_pwd_mnt).ok()?;
    // SAFETY: as the caller guarantees.
    Some(unsafe { walk(ev, dentry, vfsmnt) })
}

/// Bytes of `struct inode` read at once for `i_sb` and `i_ino` (offsets 40 and 64 on x86_64).
const INODE_SPAN: usize = 32;

/// `file->f_inode` and, from one read of the inode, its `i_ino` and `i_sb`.
#[inline(always)]
fn inode_of(file: *const u8) -> Option<(u64, *const u8)> {
    if file.is_null() {
        return None;
    }
    let off = offsets();
    let inode: *const u8 = read(file, off.file_inode).ok()?;
    let lo = off.inode_ino.min(off.inode_sb);
    let span = task::read_span::<INODE_SPAN>(inode, lo);
    let ino = task::field::<u64, INODE_SPAN>(&span, inode, lo, off.inode_ino).ok()?;
    let sb: *const u8 = task::field(&span, inode, lo, off.inode_sb).ok()?;
    Some((ino, sb))
}

/// Inode number and device of `file`, as its row shows them.
#[inline(always)]
pub fn file_identity(file: *const u8) -> Option<(u64, u32)> {
    let (ino, sb) = inode_of(file)?;
    Some((ino, read::<u32>(sb, offsets().sb_dev).unwrap_or(0)))
}

/// What tells one file from another for the collapse windows: the inode number and the
/// superblock's address (one per mounted filesystem, as the device number is; one read fewer).
#[inline(always)]
pub fn file_key(file: *const u8) -> Option<(u64, u64)> {
    let (ino, sb) = inode_of(file)?;
    Some((ino, sb as u64))
}

/// State of a path walk, shared with the [`walk_step`] callback of `bpf_loop` (the verifier
/// checks the callback once instead of every unrolled iteration).
#[repr(C)]
struct WalkState {
    dentry: *const u8,
    vfsmnt: *const u8,
    root_dentry: *const u8,
    root_mnt: *const u8,
    pos: u64,
    top: Top,
    /// 1: reached the root (or a detached root); the path is complete.
    done: u32,
    /// `CALL_PATH_DETACHED` when the walk ended at a pseudo filesystem's root.
    detached: u32,
}

/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
unsafe fn walk(ev: *mut CallEvent, dentry: *const u8, vfsmnt: *const u8) -> Top {
    let off = offsets();
    let me = task::current();
    let fs: *const u8 = read(me, off.task_fs).unwrap_or(core::ptr::null());
    let mut st = WalkState {
        dentry,
        vfsmnt,
        root_mnt: read(fs, off.fs_root_mnt).unwrap_or(core::ptr::null()),
        root_dentry: read(fs, off.fs_root_dentry).unwrap_or(core::ptr::null()),
        pos: 0,
        top: Top::default(),
        done: 0,
        detached: 0,
    };
    // SAFETY: the callback only touches `st` and this CPU's scratch.
    unsafe {
        bpf_loop(
            CALL_PATH_DEPTH as u32,
            walk_step as *mut c_void,
            &raw mut st as *mut c_void,
            0,
        );
        let mut flags = CALL_PATH_KERNEL | st.detached;
        if st.done == 0 {
            flags |= CALL_PATH_TRUNCATED;
        }
        (*ev).flags |= flags;
        (*ev).path_len = (st.pos & 0x7ff) as u16;
        (*ev).depth = st.top.depth as u16;
    }
    st.top
}

/// One step up the tree: 0 = go on, 1 = stop.
extern "C" fn walk_step(_index: u64, ctx: *mut c_void) -> i64 {
    let st = ctx as *mut WalkState;
    let off = offsets();
    let Some(ev) = CALL_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: `ctx` is the caller's `WalkState`; writes into the scratch stay inside `data`.
    unsafe {
        let dentry = (*st).dentry;
        let vfsmnt = (*st).vfsmnt;
        if dentry == (*st).root_dentry && vfsmnt == (*st).root_mnt {
            (*st).done = 1;
            return 1;
        }
        let Ok(mnt_root) = read::<*const u8>(vfsmnt, off.vfsmount_root) else {
            return 1;
        };
        let Ok(parent) = read::<*const u8>(dentry, off.dentry_parent) else {
            return 1;
        };
        if dentry == mnt_root || dentry == parent {
            // At the root of a mount: continue from where it is mounted.
            let mnt = vfsmnt.wrapping_sub(off.mount_mnt as usize);
            let Ok(mnt_parent) = read::<*const u8>(mnt, off.mount_parent) else {
                return 1;
            };
            if mnt_parent == mnt || dentry != mnt_root {
                (*st).detached = CALL_PATH_DETACHED;
                (*st).done = 1;
                return 1;
            }
            let Ok(mountpoint) = read::<*const u8>(mnt, off.mount_mountpoint) else {
                return 1;
            };
            (*st).dentry = mountpoint;
            (*st).vfsmnt = mnt_parent.wrapping_add(off.mount_mnt as usize);
            return 0;
        }
        let Ok(name) = read::<*const u8>(dentry, off.dentry_name) else {
            return 1;
        };
        let at = ((*st).pos as usize) & WALK_MASK;
        let n = bpf_probe_read_kernel_str(
            (*ev).data.as_mut_ptr().add(at) as *mut _,
            NAME_READ_MAX,
            name as *const _,
        );
        if n <= 0 {
            return 1;
        }
        let top = &mut (*st).top;
        top.off[2] = top.off[1];
        top.len[2] = top.len[1];
        top.off[1] = top.off[0];
        top.len[1] = top.len[0];
        top.off[0] = at as u32;
        top.len[0] = (n - 1) as u32;
        top.depth += 1;
        (*st).pos = (at + n as usize) as u64;
        if at + n as usize > WALK_MASK {
            return 1;
        }
        (*st).dentry = parent;
    }
    0
}

/// Reads a user string at `src` into `data[at..at + max]`; returns its length without the NUL.
///
/// # Safety
/// `ev` must be this CPU's scratch event and `at + max` within `data`.
#[inline(always)]
pub unsafe fn user_string(ev: *mut CallEvent, at: usize, max: u32, src: u64) -> Option<u16> {
    if src == 0 {
        return None;
    }
    // SAFETY: as the caller guarantees.
    let n = unsafe {
        bpf_probe_read_user_str(
            (*ev).data.as_mut_ptr().add(at) as *mut _,
            max,
            src as *const _,
        )
    };
    if n <= 0 {
        return None;
    }
    if n as u32 == max {
        // SAFETY: as above.
        unsafe { (*ev).flags |= CALL_PATH_TRUNCATED };
    }
    Some((n - 1) as u16)
}

/// `data[off..off + len]` equals `lit`.
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
pub unsafe fn component_is(ev: *const CallEvent, off: u32, len: u32, lit: &[u8]) -> bool {
    if len as usize != lit.len() {
        return false;
    }
    for (i, want) in lit.iter().enumerate() {
        // SAFETY: as the caller guarantees.
        if unsafe { byte_at(ev, off, i) } != *want {
            return false;
        }
    }
    true
}

/// `data[(off & WALK_MASK) + i]`: component offsets come from a walk and stay below the mask,
/// and `i` is at most a name's length, so the read stays inside `data` by construction.
///
/// # Safety
/// `ev` must be this CPU's scratch event and `i` < 256.
#[inline(always)]
unsafe fn byte_at(ev: *const CallEvent, off: u32, i: usize) -> u8 {
    let at = (off as usize & WALK_MASK) + (i & 0xff);
    // SAFETY: `at` < 1023 + 256 < CALL_DATA_MAX.
    unsafe { *(*ev).data.as_ptr().add(at) }
}

/// The number spelled by `data[off..off + len]` (decimal, at most 10 digits).
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
pub unsafe fn component_number(ev: *const CallEvent, off: u32, len: u32) -> Option<u32> {
    if len == 0 || len > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for i in 0..10u32 {
        if i >= len {
            break;
        }
        // SAFETY: as the caller guarantees.
        let b = unsafe { byte_at(ev, off, i as usize) };
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u64;
    }
    u32::try_from(v).ok()
}

/// Bits of word `word` (8 bytes each) that belong to a string of `len` bytes.
#[inline(always)]
fn word_mask(len: u32, word: u32) -> u64 {
    let lo = word * 8;
    if len <= lo {
        0
    } else if len >= lo + 8 {
        u64::MAX
    } else {
        (1u64 << ((len - lo) * 8)) - 1
    }
}

/// 16 bytes of `data` from a component offset, as two little-endian words.
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
unsafe fn words16(ev: *const CallEvent, off: u32) -> [u64; 2] {
    let at = off as usize & WALK_MASK;
    // SAFETY: at + 16 < CALL_DATA_MAX; probe_read copies without alignment needs.
    unsafe { bpf_probe_read_kernel((*ev).data.as_ptr().add(at) as *const [u64; 2]) }
        .unwrap_or([0; 2])
}

/// The walked path starts with one of the configured prefixes. Compared a word at a time:
/// byte loops over a config struct defeat the verifier's bounds tracking.
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
pub unsafe fn matches_prefix(ev: *const CallEvent, top: &Top) -> bool {
    let cfg = config();
    // SAFETY: as the caller guarantees.
    let comps = unsafe {
        [
            words16(ev, top.off[0]),
            words16(ev, top.off[1]),
            words16(ev, top.off[2]),
        ]
    };
    for prefix in cfg.prefixes.iter() {
        let depth = prefix.depth;
        if depth == 0 || depth as usize > FILTER_COMPONENTS || top.depth < depth {
            continue;
        }
        let mut all = true;
        for (c, have) in comps.iter().enumerate() {
            if c as u32 >= depth {
                break;
            }
            let len = prefix.lens[c];
            if len != top.len[c] || len as usize > FILTER_NAME_MAX {
                all = false;
                break;
            }
            let name = prefix.names[c];
            let want = [le_word(&name, 0), le_word(&name, 8)];
            if (have[0] ^ want[0]) & word_mask(len, 0) != 0
                || (have[1] ^ want[1]) & word_mask(len, 1) != 0
            {
                all = false;
                break;
            }
        }
        if all {
            return true;
        }
    }
    false
}

/// The little-endian word of `b[at..at + 8]`.
#[inline(always)]
fn le_word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes([
        b[at],
        b[at + 1],
        b[at + 2],
        b[at + 3],
        b[at + 4],
        b[at + 5],
        b[at + 6],
        b[at + 7],
    ])
}

/// The user path in `data[..len]` starts with one of the configured prefixes' text form.
///
/// # Safety
/// `ev` must be this CPU's scratch event.
#[inline(always)]
pub unsafe fn user_path_matches_prefix(ev: *const CallEvent, len: u16) -> bool {
    let cfg = config();
    // SAFETY: as the caller guarantees; the first 32 bytes of `data` are always inside it.
    let have =
        unsafe { bpf_probe_read_kernel((*ev).data.as_ptr() as *const [u64; 4]) }.unwrap_or([0; 4]);
    for prefix in cfg.prefixes.iter() {
        let n = prefix.text_len;
        if prefix.depth == 0 || n == 0 || n as usize > FILTER_TEXT_MAX || n > len as u32 {
            continue;
        }
        let t = &prefix.text;
        let mut all = true;
        for (w, word) in have.iter().enumerate() {
            let want = le_word(t, w * 8);
            if (word ^ want) & word_mask(n, w as u32) != 0 {
                all = false;
                break;
            }
        }
        if all {
            return true;
        }
    }
    false
}
