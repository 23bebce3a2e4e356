//! uid → user name, from the right `/etc/passwd`: the container's own for container tasks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest passwd file read.
const MAX_PASSWD_BYTES: u64 = 4 << 20;

/// Cached passwd databases, one per root filesystem.
#[derive(Default)]
pub struct UserDb {
    roots: HashMap<PathBuf, HashMap<u32, Arc<str>>>,
}

impl UserDb {
    /// Name of `uid` under `root` (`/` for the host), if that root's passwd names it.
    pub fn name(&mut self, root: &Path, uid: u32) -> Option<Arc<str>> {
        if !self.roots.contains_key(root) {
            if self.roots.len() > 4096 {
                self.roots.clear();
            }
            self.roots
                .insert(root.to_path_buf(), load(&root.join("etc/passwd")));
        }
        self.roots.get(root).and_then(|m| m.get(&uid)).cloned()
    }

    /// Forgets a root (its container went away).
    pub fn forget(&mut self, root: &Path) {
        self.roots.remove(root);
    }
}

fn load(path: &Path) -> HashMap<u32, Arc<str>> {
    use std::io::Read;
    let mut text = String::new();
    // Never follow a container's symlink out of its root: open without following the last link.
    let file = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    let Ok(fd) = file else { return HashMap::new() };
    let _ = std::fs::File::from(fd)
        .take(MAX_PASSWD_BYTES)
        .read_to_string(&mut text);
    parse(&text)
}

/// Parses passwd text (`name:x:uid:gid:…`); malformed lines are skipped.
pub fn parse(text: &str) -> HashMap<u32, Arc<str>> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if let Ok(uid) = uid.parse::<u32>() {
            m.entry(uid).or_insert_with(|| Arc::from(name));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up_per_root() {
        let m = parse(
            "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbroken\n:x:notanumber:\n",
        );
        assert_eq!(m.get(&33).map(|s| &**s), Some("www-data"));
        assert_eq!(m.len(), 2);

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "app:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        let mut db = UserDb::default();
        assert_eq!(db.name(dir.path(), 1000).as_deref(), Some("app"));
        assert_eq!(db.name(dir.path(), 0), None);
    }
}
