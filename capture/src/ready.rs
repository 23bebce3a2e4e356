//! The readiness signal for orchestrators: `--ready-file PATH` is created (holding capture's pid)
//! once every program is attached and recording has started, and removed when capture exits;
//! `capture --check-ready PATH` — an exec readiness probe in an image with no shell — succeeds
//! only while that file exists and names a live capture process.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Why capture is not ready.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    /// The file is absent or unreadable: capture has not started recording, or exited.
    #[error("{path}: not ready")]
    Missing {
        /// The ready file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file does not hold a pid.
    #[error("{path}: not a capture ready file")]
    Malformed {
        /// The ready file.
        path: PathBuf,
    },
    /// The process it names is gone (capture was killed before it could remove the file).
    #[error("{path}: capture (pid {pid}) is not running")]
    Stale {
        /// The ready file.
        path: PathBuf,
        /// The pid it names.
        pid: u32,
    },
}

/// The ready file of a running capture; removed on drop.
pub struct ReadyFile {
    path: PathBuf,
}

impl ReadyFile {
    /// Creates (or replaces) `path` with this process's pid, written to a temporary name and
    /// renamed, so a probe never reads half a file. Never follows a symlink at `path`.
    pub fn create(path: &Path) -> io::Result<ReadyFile> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        let mut f = fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        writeln!(f, "{}", std::process::id())?;
        fs::rename(&tmp, path)?;
        Ok(ReadyFile { path: path.into() })
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Ok when `path` is a ready file naming a live process.
pub fn check(path: &Path) -> Result<(), ReadyError> {
    let text = fs::read_to_string(path).map_err(|source| ReadyError::Missing {
        path: path.into(),
        source,
    })?;
    let pid: u32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ReadyError::Malformed { path: path.into() })?;
    if !Path::new("/proc").join(pid.to_string()).exists() {
        return Err(ReadyError::Stale {
            path: path.into(),
            pid,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_while_the_file_lives_and_names_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        assert!(matches!(check(&path), Err(ReadyError::Missing { .. })));
        let ready = ReadyFile::create(&path).unwrap();
        check(&path).unwrap();
        drop(ready);
        assert!(!path.exists(), "removed at exit");
        fs::write(&path, "not a pid\n").unwrap();
        let err = check(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a capture ready file"),
            "{err}"
        );
        fs::write(&path, format!("{}\n", u32::MAX - 1)).unwrap();
        assert!(matches!(check(&path), Err(ReadyError::Stale { .. })));
    }
}
