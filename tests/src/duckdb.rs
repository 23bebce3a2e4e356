//! The DuckDB cross-check of analyze's features: `bench/duckdb_features.py` computes the same
//! feature table in SQL from a trace, for tests to compare with `analyze features`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python with the `duckdb` module: `$NEEDLE_PYTHON` (set by `scripts/test.sh` to the
/// project's venv), else the venv under `target/py`, else `python3`; None when none has it.
pub fn python() -> Option<String> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python");
    let candidates = match std::env::var("NEEDLE_PYTHON") {
        Ok(py) => vec![py],
        Err(_) => vec![venv.to_string_lossy().into_owned(), "python3".into()],
    };
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import duckdb"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Writes the SQL feature table of `trace` to `out` (CSV) with `py`; panics with the script's
/// stderr when it fails.
pub fn sql_features(py: &str, trace: &Path, out: &Path) {
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/duckdb_features.py");
    let o = Command::new(py)
        .arg(script)
        .arg(trace)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run bench/duckdb_features.py");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
