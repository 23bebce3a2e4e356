//! Enrichment: container, Kubernetes and process context added to every event in user space,
//! after decode and before write. It never blocks the event path: lookups are cached, slow work
//! (hashing executables) runs on a bounded worker pool, and misses are counted.

pub mod container;
