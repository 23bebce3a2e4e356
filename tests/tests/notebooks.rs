//! The notebooks in notebooks/ run top to bottom on the shipped datasets (nbconvert --execute
//! in the project's venv, with the `analyze` binary of this build): a failing cell fails the
//! test. Without a Python that has nbconvert it prints a SKIP line, except in CI, where it fails.

use std::path::Path;
use std::process::Command;

use needle_tests::binary;

fn python_with_nbconvert() -> Option<String> {
    let py = std::env::var("NEEDLE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import nbconvert, ipykernel, polars, matplotlib"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

#[test]
fn notebooks_execute_top_to_bottom() {
    let Some(py) = python_with_nbconvert() else {
        let why = "no Python with nbconvert, ipykernel, polars and matplotlib (scripts/setup.sh installs them)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIP notebooks_execute_top_to_bottom: {why}");
        if let Some(log) = std::env::var_os("NEEDLE_SKIP_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "notebooks_execute_top_to_bottom: {why}");
            }
        }
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks");
    let mut notebooks: Vec<_> = std::fs::read_dir(&dir)
        .expect("notebooks/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    notebooks.sort();
    assert_eq!(
        notebooks.len(),
        3,
        "explore, features, train/eval: {notebooks:?}"
    );
    let out = tempfile::tempdir().unwrap();
    for nb in &notebooks {
        let o = Command::new(&py)
            .args([
                "-m",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--ExecutePreprocessor.timeout=300",
                "--output-dir",
            ])
            .arg(out.path())
            .arg(nb)
            .current_dir(&dir)
            .env("NEEDLE_ANALYZE", binary("analyze"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{} failed:\n{}",
            nb.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let name = nb.file_name().unwrap();
        let executed = std::fs::read_to_string(out.path().join(name)).unwrap();
        assert!(
            executed.contains("image/png"),
            "{} drew no figure",
            nb.display()
        );
    }
}
