//! The output directory, opened once and used through its file descriptor.
//!
//! capture runs as root and writes where it is told, so it must not be tricked into writing
//! through a symlink: the directory itself is opened with `O_NOFOLLOW | O_DIRECTORY`, and files
//! are created relative to that descriptor with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// Why the output directory or a file in it could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The directory is a symlink (refused: capture never writes through one).
    #[error("output directory {0} is a symbolic link; refusing to write through it")]
    Symlink(PathBuf),
    /// The path exists and is not a directory.
    #[error("output path {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// An I/O error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl OutputError {
    fn io(path: impl Into<PathBuf>, e: impl Into<io::Error>) -> Self {
        OutputError::Io {
            path: path.into(),
            source: e.into(),
        }
    }

    /// True when the cause is a full disk or quota.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, OutputError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }
}

/// An open output directory.
pub struct OutputDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl OutputDir {
    /// Opens `path`, creating it (mode 0700, parents as needed) when missing.
    pub fn open_or_create(path: &Path) -> Result<OutputDir, OutputError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => return Err(OutputError::Symlink(path.into())),
            Ok(m) if !m.is_dir() => return Err(OutputError::NotADirectory(path.into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| OutputError::io(parent, e))?;
                }
                match rustix::fs::mkdir(path, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(OutputError::io(path, e)),
                }
            }
            Err(e) => return Err(OutputError::io(path, e)),
        }
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                OutputError::Symlink(path.into())
            }
            e => OutputError::io(path, e),
        })?;
        Ok(OutputDir {
            fd,
            path: path.into(),
        })
    }

    /// The directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a new file `name` (must not exist), mode 0600, never following a symlink.
    pub fn create_new(&self, name: &str) -> Result<File, OutputError> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| OutputError::io(self.path.join(name), e))?;
        Ok(File::from(fd))
    }

    /// Atomically renames `from` to `to` within the directory, then makes the rename durable.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), OutputError> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(|e| OutputError::io(self.path.join(to), e))?;
        rustix::fs::fsync(&self.fd).map_err(|e| OutputError::io(&self.path, e))
    }

    /// Names of files in the directory ending in `suffix` (e.g. partial segments of an earlier crash).
    pub fn files_ending_with(&self, suffix: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(suffix))
            .collect();
        names.sort();
        names
    }

    /// Opens the subdirectory `name` (one component), creating it (mode 0700) when missing;
    /// like the directory itself, never through a symlink.
    pub fn subdir(&self, name: &str) -> Result<OutputDir, OutputError> {
        let path = self.path.join(name);
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(OutputError::io(&path, e)),
        }
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                OutputError::Symlink(path.clone())
            }
            e => OutputError::io(&path, e),
        })?;
        Ok(OutputDir { fd, path })
    }

    /// Like [`OutputDir::files_ending_with`], also in subdirectories down to `depth` levels
    /// (the hive layout's `host=…/date=…/`), as paths relative to the directory; symlinked
    /// directories are not followed.
    pub fn files_ending_with_below(&self, suffix: &str, depth: usize) -> Vec<String> {
        fn walk(dir: &Path, rel: &str, suffix: &str, depth: usize, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.filter_map(Result::ok) {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                let path = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && depth > 0 {
                    walk(&e.path(), &path, suffix, depth - 1, out);
                } else if !is_dir && name.ends_with(suffix) {
                    out.push(path);
                }
            }
        }
        let mut names = Vec::new();
        walk(&self.path, "", suffix, depth, &mut names);
        names.sort();
        names
    }

    /// True when `name` exists in the directory (without following symlinks).
    pub fn exists(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_private_directory_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("a/b/traces");
        let dir = OutputDir::open_or_create(&out).unwrap();
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let mut f = dir.create_new("x.partial").unwrap();
        f.write_all(b"hi").unwrap();
        assert_eq!(
            std::fs::metadata(out.join("x.partial"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(
            dir.create_new("x.partial").is_err(),
            "O_EXCL: never reuse an existing name"
        );
        dir.rename("x.partial", "x.parquet").unwrap();
        assert!(dir.exists("x.parquet") && !dir.exists("x.partial"));
        let sub = dir
            .subdir("host=a")
            .unwrap()
            .subdir("date=2026-11-23")
            .unwrap();
        sub.create_new("y.partial").unwrap();
        assert_eq!(dir.files_ending_with(".partial"), Vec::<String>::new());
        assert_eq!(
            dir.files_ending_with_below(".partial", 2),
            ["host=a/date=2026-11-23/y.partial"]
        );
    }

    #[test]
    fn refuses_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            OutputDir::open_or_create(&link),
            Err(OutputError::Symlink(_))
        ));

        // A symlink planted at a file name inside the directory is not followed either.
        let dir = OutputDir::open_or_create(&real).unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, real.join("seg.partial")).unwrap();
        assert!(dir.create_new("seg.partial").is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn refuses_a_file_as_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, b"").unwrap();
        assert!(matches!(
            OutputDir::open_or_create(&f),
            Err(OutputError::NotADirectory(_))
        ));
    }
}
