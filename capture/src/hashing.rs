//! The hash maps on the event path. Every event goes through several lookups (process table,
//! cgroup, command name); std's SipHash made hashing a fifth of the reader's time. ahash is
//! several times faster and, seeded at random per run, keeps keys that a traced program
//! controls (a command name, a pid it forks towards) from being turned into collisions.

/// A `HashMap` with ahash's randomly seeded hasher.
pub type Map<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
