//! eBPF programs, one module per event family.

pub mod network;
pub mod process;
