#![no_std]
// This file exists so that `capture` can name this crate as a build-dependency; the eBPF
// object itself is the binary target in `main.rs`, built by `capture/build.rs` via aya-build.
