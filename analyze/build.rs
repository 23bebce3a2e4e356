//! Embeds the shipped rules (`models/rules/*.toml`) and intel lists (`models/intel/*.txt`) into
//! the binary, so an installed `analyze` needs no files beside it. Files given with `--rules`
//! and `--intel` extend or override them at run time.

use std::fmt::Write as _;
use std::path::Path;

fn embed(out: &mut String, name: &str, dir: &Path, ext: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    // A missing or empty directory would ship a binary without rules or intel that still runs:
    // stop the build instead.
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    assert!(!files.is_empty(), "{}: no *.{ext} files", dir.display());
    files.sort();
    writeln!(out, "pub const {name}: &[(&str, &str)] = &[").unwrap();
    for f in files {
        let file_name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let abs = f.canonicalize().unwrap_or(f);
        writeln!(
            out,
            "    ({file_name:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
}

fn main() {
    // The manifest directory of this run, not of the build that compiled this script: cargo
    // reuses a compiled build script for an identical package elsewhere (another checkout with
    // the same target directory), and `env!` would point it at that checkout's files.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../models");
    let mut out = String::new();
    embed(&mut out, "RULES", &root.join("rules"), "toml");
    embed(&mut out, "INTEL", &root.join("intel"), "txt");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(dest, out).unwrap();
}
