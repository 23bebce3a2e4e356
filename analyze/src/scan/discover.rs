//! Input discovery: files, shell globs, directories searched recursively (which covers
//! hive-partitioned trees such as `traces/host=a/date=2026-11-23/*.parquet`).

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

fn walk(dir: &Path, out: &mut Vec<PathBuf>, problems: &mut Vec<ScanError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            problems.push(ScanError::Io {
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
            walk(&p, out, problems);
        } else if is_trace_name(&p) {
            out.push(p);
        }
    }
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands the command-line inputs into trace files, in a stable order, without duplicates.
/// A file named explicitly is taken whatever its name; directories and globs yield
/// `*.parquet` files. Inputs that match nothing or cannot be listed become problems.
pub fn discover(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<ScanError>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files, &mut problems);
            if files.len() == before {
                problems.push(ScanError::NoMatch {
                    input: input.clone(),
                });
            }
        } else if input.exists() {
            files.push(input.clone());
        } else if let Some(pattern) = input.to_str().filter(|s| has_glob_chars(s)) {
            let before = files.len();
            match glob::glob(pattern) {
                Ok(paths) => {
                    for p in paths.flatten() {
                        if p.is_dir() {
                            walk(&p, &mut files, &mut problems);
                        } else if is_trace_name(&p) {
                            files.push(p);
                        }
                    }
                }
                Err(e) => problems.push(ScanError::BadPattern {
                    pattern: pattern.to_string(),
                    message: e.to_string(),
                }),
            }
            if files.len() == before {
                problems.push(ScanError::NoMatch {
                    input: input.clone(),
                });
            }
        } else {
            problems.push(ScanError::Io {
                path: input.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|p| seen.insert(p.clone()));
    (files, problems)
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
