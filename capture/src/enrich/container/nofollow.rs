//! Opening an engine's state file as root: containers can write into the directories these
//! files live in, so a symlink in the last component is refused (`ELOOP`), never followed.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Opens `path` for reading without following a symlink in its last component; `Ok(None)`
/// when it (or a directory on the way) does not exist.
pub(super) fn open(path: &Path) -> io::Result<Option<File>> {
    match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_refused_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(open(&real).unwrap().is_some());
        assert!(open(&link).is_err(), "followed a symlink");
        assert!(open(&dir.path().join("absent")).unwrap().is_none());
        assert!(open(&real.join("below-a-file")).unwrap().is_none());
    }
}
