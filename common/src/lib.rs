//! The contract between needle's three programs.
//!
//! * [`abi`] is what the eBPF programs (`capture-ebpf`) write into the ring buffer and what
//!   `capture` decodes: `#[repr(C)]` structs with explicit padding, one [`abi::EventKind`] enum
//!   whose ids are never reused, and the globals user space fills in at load time (kernel struct
//!   offsets resolved from BTF, tracepoint field offsets from tracefs). It is `no_std`.
//! * `schema` (feature `user`) is the Parquet trace format: every column's name, Arrow type and
//!   meaning, the schema version, the file metadata keys, and a typed writer that turns
//!   [`schema::Event`]s into Arrow record batches. `capture`, `analyze` and its importers all
//!   write and read traces through it, so a column is declared exactly once.
#![cfg_attr(not(feature = "user"), no_std)]
#![deny(missing_docs)]

pub mod abi;
#[cfg(feature = "user")]
pub mod dns;
pub mod paths;
#[cfg(feature = "user")]
pub mod schema;
#[cfg(feature = "store")]
pub mod store;
