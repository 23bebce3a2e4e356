//! Finding cgroup paths by id: the cgroup2 id of a cgroup is the inode number of its directory,
//! so one bounded walk of the tree maps every id to its path. And where cgroup2 is mounted.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Deepest directory visited below the root.
pub const MAX_DEPTH: usize = 16;
/// Most directories visited in one walk (a bound on time and memory).
pub const MAX_DIRS: usize = 200_000;

/// Maps the inode number of every directory under `root` (itself included) to its path relative
/// to `root`, with a leading `/` (the form of `/proc/<pid>/cgroup`). Unreadable directories and
/// symlinks are skipped; depth and size are bounded.
pub fn cgroup_paths(root: &Path) -> HashMap<u64, String> {
    let mut paths = HashMap::new();
    let Ok(meta) = fs::metadata(root) else {
        return paths;
    };
    paths.insert(meta.ino(), "/".to_owned());
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_owned(), String::new(), 0)];
    while let Some((dir, rel, depth)) = stack.pop() {
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // DirEntry::file_type does not follow symlinks; cgroupfs has none, a fake tree might.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if paths.len() >= MAX_DIRS {
                return paths;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let child_rel = format!("{rel}/{name}");
            // st_ino, not readdir's d_ino: they differ on some filesystems (overlayfs).
            let Ok(meta) = entry.metadata() else { continue };
            paths.insert(meta.ino(), child_rel.clone());
            stack.push((entry.path(), child_rel, depth + 1));
        }
    }
    paths
}

/// The mount point of the cgroup2 filesystem in a `/proc/<pid>/mountinfo` text, preferring a
/// mount of the hierarchy's root. Octal escapes (`\040` for a space) are decoded.
pub fn cgroup2_root_from_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    let mut fallback = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.get(dash + 1) != Some(&"cgroup2") || dash < 5 {
            continue;
        }
        let mount_point = PathBuf::from(unescape(fields[4]));
        if fields[3] == "/" {
            return Some(mount_point);
        }
        fallback.get_or_insert(mount_point);
    }
    fallback
}

/// Decodes mountinfo's `\ooo` escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
