//! needle's eBPF programs. One module per event family under `probes/`; `emit` holds the one
//! path every record takes into the ring buffer (reserve, count losses, submit with batched
//! wake-ups); `task` reads kernel structs at offsets user space resolved from BTF.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `atomic_cxchg`, `atomic_xadd`: the BPF target's atomics have no compare_exchange or
// fetch_add (see probes/syscalls.rs, collapse.rs).
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod collapse;
#[cfg(target_arch = "bpf")]
mod emit;
#[cfg(target_arch = "bpf")]
mod fs;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod probes;
#[cfg(target_arch = "bpf")]
mod stdio;
#[cfg(target_arch = "bpf")]
mod task;

/// Built for the host (`cargo build --workspace`, clippy), the binary is an empty program: the
/// real object is only produced for the BPF target, by `capture/build.rs`.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
