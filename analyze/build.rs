//! Embeds the shipped rules (`models/rules/*.toml`) and intel lists (`models/intel/*.txt`) into
//! the binary, so an installed `analyze` needs no files beside it. Files given with `--rules`
//! and `--intel` extend or override them at run time.

use std::fmt::Write as _;
use std::path::Path;

fn embed(out: &mut String, name: &str, dir: &Path, ext: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default();
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut out = String::new();
    embed(&mut out, "RULES", &root.join("rules"), "toml");
    embed(&mut out, "INTEL", &root.join("intel"), "txt");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(dest, out).unwrap();
}
