//! Input discovery: files, shell globs, directories searched recursively (which covers
//! hive-partitioned trees such as `traces/host=a/date=2026-11-23/*.parquet`). Partial files
//! (`*.npart`, written by `analyze partials`) are found the same way and kept apart. An
//! `s3://bucket/prefix` input lists every object under the prefix ([`super::object`]).

use std::path::{Path, PathBuf};

use super::ScanError;

/// True for a file that a directory walk should read: `*.parquet`, not hidden (capture
/// writes a segment under a temporary dot-name and renames it when complete).
fn is_trace_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && name.to_ascii_lowercase().ends_with(".parquet")
}

/// True for a partial file (`*.npart`, not hidden: written under a dot-name, then renamed).
pub fn is_partial_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && name.to_ascii_lowercase().ends_with(".npart")
}

/// What the inputs name: trace files and partial files, each in a stable order.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Trace files.
    pub traces: Vec<PathBuf>,
    /// Partial files (`*.npart`).
    pub partials: Vec<PathBuf>,
    /// Inputs that match nothing or cannot be listed.
    pub problems: Vec<ScanError>,
}

impl Discovered {
    fn found(&self) -> usize {
        self.traces.len() + self.partials.len()
    }

    fn push(&mut self, p: PathBuf) {
        if is_partial_name(&p) {
            self.partials.push(p);
        } else {
            self.traces.push(p);
        }
    }
}

fn walk(dir: &Path, out: &mut Discovered) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            out.problems.push(ScanError::Io {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        // Do not follow symlinked directories: a loop would never end.
        let is_dir = std::fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            walk(&p, out);
        } else if is_trace_name(&p) || is_partial_name(&p) {
            out.push(p);
        }
    }
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands the command-line inputs into trace files, in a stable order, without duplicates.
/// A file named explicitly is taken whatever its name; directories and globs yield
/// `*.parquet` files. Inputs that match nothing or cannot be listed become problems. Partial
/// files are left out (see [`discover_inputs`]).
pub fn discover(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<ScanError>) {
    let d = discover_inputs(inputs);
    (d.traces, d.problems)
}

/// Like [`discover`], and also the partial files: a file named explicitly that ends in
/// `.npart`, and `*.npart` files in directories and globs.
pub fn discover_inputs(inputs: &[PathBuf]) -> Discovered {
    let mut out = Discovered::default();
    for input in inputs {
        if super::object::is_url(input) {
            if is_trace_name(input) || is_partial_name(input) {
                // An object named explicitly: opening it says whether it is there.
                out.push(input.clone());
                continue;
            }
            match super::object::list(input, |p| is_trace_name(p) || is_partial_name(p)) {
                Ok(found) if found.is_empty() => out.problems.push(ScanError::NoMatch {
                    input: input.clone(),
                }),
                Ok(found) => found.into_iter().for_each(|p| out.push(p)),
                Err(e) => out.problems.push(e),
            }
        } else if input.is_dir() {
            let before = out.found();
            walk(input, &mut out);
            if out.found() == before {
                out.problems.push(ScanError::NoMatch {
                    input: input.clone(),
                });
            }
        } else if input.exists() {
            out.push(input.clone());
        } else if let Some(pattern) = input.to_str().filter(|s| has_glob_chars(s)) {
            let before = out.found();
            match glob::glob(pattern) {
                Ok(paths) => {
                    for p in paths.flatten() {
                        if p.is_dir() {
                            walk(&p, &mut out);
                        } else if is_trace_name(&p) || is_partial_name(&p) {
                            out.push(p);
                        }
                    }
                }
                Err(e) => out.problems.push(ScanError::BadPattern {
                    pattern: pattern.to_string(),
                    message: e.to_string(),
                }),
            }
            if out.found() == before {
                out.problems.push(ScanError::NoMatch {
                    input: input.clone(),
                });
            }
        } else {
            out.problems.push(ScanError::Io {
                path: input.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.traces.retain(|p| seen.insert(p.clone()));
    out.partials.retain(|p| seen.insert(p.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_hive_trees_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in [
            "host=a/date=2026-11-23/0.parquet",
            "host=b/date=2026-11-23/1.parquet",
            "host=b/.2.parquet",
            "notes.txt",
            "top.parquet",
        ] {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"").unwrap();
        }
        let (files, problems) = discover(&[root.to_path_buf()]);
        assert!(problems.is_empty());
        let rel: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            rel,
            [
                "host=a/date=2026-11-23/0.parquet",
                "host=b/date=2026-11-23/1.parquet",
                "top.parquet"
            ]
        );

        let pattern = root.join("host=*").join("*").join("*.parquet");
        let (globbed, problems) =
            discover(&[pattern, root.join("top.parquet"), root.join("notes.txt")]);
        assert!(problems.is_empty());
        assert_eq!(globbed.len(), 4, "{globbed:?}");

        let (none, problems) =
            discover(&[root.join("missing.parquet"), root.join("nothing-*.parquet")]);
        assert!(none.is_empty());
        assert_eq!(problems.len(), 2);
        assert!(problems[0].to_string().contains("missing.parquet"));
    }
}
