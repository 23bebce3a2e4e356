use which::which;

/// Rebuild when bpf-linker changes (e.g. after `scripts/setup.sh` installed a new one).
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found ({err}); run scripts/setup.sh"),
    }
}
