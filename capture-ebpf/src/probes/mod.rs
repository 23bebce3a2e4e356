//! eBPF programs, one module per event family.

pub mod dns;
pub mod file_changes;
pub mod files;
pub mod network;
pub mod process;
pub mod security;
pub mod sockets;
pub mod syscalls;
