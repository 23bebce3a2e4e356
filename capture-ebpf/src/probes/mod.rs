//! eBPF programs, one module per event family.

pub mod process;
