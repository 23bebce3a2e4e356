use anyhow::Context as _;

/// Builds `capture-ebpf` for the BPF target (nightly + bpf-linker, see scripts/setup.sh) and
/// leaves the object in OUT_DIR, where `loader.rs` embeds it.
fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root_dir = format!("{manifest_dir}/../capture-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "capture-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs (run scripts/setup.sh to install the toolchain)")
}
