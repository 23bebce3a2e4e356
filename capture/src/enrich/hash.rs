//! SHA-256 of executables, off the event path.
//!
//! A bounded pool of worker threads hashes files; results are cached by the file's identity
//! (device, inode, size, mtime — taken from the kernel's `mm->exe_file` at exec), so a binary
//! is hashed once however often it runs. Rows hold a [`DigestSlot`] and read it when their batch
//! is written; a row never waits for a hash. Every candidate file is opened and checked with
//! `fstat` against the kernel's identity before it is hashed, so a path that now names another
//! file is never attributed.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use sha2::{Digest, Sha256};

use crate::hashing::Map;

/// The identity of an executable file, as the kernel saw it at exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExeKey {
    /// Device, in user-space `st_dev` encoding.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime_sec: i64,
}

impl ExeKey {
    /// Converts the kernel's `s_dev` (`major << 20 | minor`) to user-space `st_dev`.
    pub fn user_dev(kernel_dev: u32) -> u64 {
        let major = kernel_dev >> 20;
        let minor = kernel_dev & 0xf_ffff;
        libc::makedev(major, minor)
    }
}

/// Where a digest will appear once computed (empty if the file could not be hashed).
pub type DigestSlot = OnceLock<Option<Arc<str>>>;

/// Counters of the hashing pool.
#[derive(Debug, Default)]
pub struct HashStats {
    /// Files hashed.
    pub hashed: AtomicU64,
    /// Requests served from the cache.
    pub cached: AtomicU64,
    /// Files that could not be opened or did not match the kernel's identity.
    pub unavailable: AtomicU64,
    /// Requests dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Files larger than the limit, not hashed.
    pub too_large: AtomicU64,
}

struct Job {
    key: ExeKey,
    candidates: Vec<PathBuf>,
    slot: Arc<DigestSlot>,
}

/// The hashing pool.
pub struct Hasher {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    cache: Map<ExeKey, Arc<DigestSlot>>,
    /// Shared counters.
    pub stats: Arc<HashStats>,
}

/// Files above this size are not hashed (counted as `too_large`).
pub const MAX_HASH_BYTES: u64 = 512 << 20;
/// Cache entries kept before the cache is reset.
const CACHE_MAX: usize = 1 << 16;

impl Hasher {
    /// Starts `threads` workers with room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Hasher {
        let (tx, rx) = bounded::<Job>(queue);
        let stats = Arc::new(HashStats::default());
        let workers = (0..threads.max(1))
            .filter_map(|i| {
                let (rx, stats) = (rx.clone(), stats.clone());
                std::thread::Builder::new()
                    .name(format!("needle-hash-{i}"))
                    .spawn(move || worker(rx, stats))
                    .ok()
            })
            .collect();
        Hasher {
            jobs: Some(tx),
            workers,
            cache: Map::default(),
            stats,
        }
    }

    /// The slot that will hold the digest of the file `key`, queueing it for hashing if it is
    /// new. `candidates` are paths to try, best first (e.g. `/proc/<pid>/exe`).
    pub fn request(&mut self, key: ExeKey, candidates: Vec<PathBuf>) -> Arc<DigestSlot> {
        if let Some(slot) = self.cache.get(&key) {
            self.stats.cached.fetch_add(1, Ordering::Relaxed);
            return slot.clone();
        }
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        let slot = Arc::new(DigestSlot::new());
        self.cache.insert(key, slot.clone());
        let job = Job {
            key,
            candidates,
            slot: slot.clone(),
        };
        if let Some(tx) = &self.jobs {
            match tx.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    let _ = job.slot.set(None);
                    self.cache.remove(&key);
                }
            }
        }
        slot
    }

    /// Waits (at most `limit`) until every queued job is done.
    pub fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.cache.values().any(|s| s.get().is_none()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(rx: Receiver<Job>, stats: Arc<HashStats>) {
    for job in rx {
        let digest = hash_first_match(&job.key, &job.candidates, &stats);
        let _ = job.slot.set(digest);
    }
}

fn hash_first_match(key: &ExeKey, candidates: &[PathBuf], stats: &HashStats) -> Option<Arc<str>> {
    if key.size > MAX_HASH_BYTES {
        stats.too_large.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    for path in candidates {
        let Ok(mut file) = File::open(path) else {
            continue;
        };
        let Ok(meta) = file.metadata() else { continue };
        if meta.ino() != key.ino || meta.dev() != key.dev {
            continue;
        }
        if let Some(d) = sha256(&mut file) {
            stats.hashed.fetch_add(1, Ordering::Relaxed);
            return Some(d.into());
        }
    }
    stats.unavailable.fetch_add(1, Ordering::Relaxed);
    None
}

/// Lowercase hex SHA-256 of everything readable from `r`.
pub fn sha256(r: &mut impl Read) -> Option<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(path: &std::path::Path) -> ExeKey {
        let m = std::fs::metadata(path).unwrap();
        ExeKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_sec: m.mtime(),
        }
    }

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256(&mut &b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashes_once_and_only_the_identified_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"abc").unwrap();
        std::fs::write(&b, b"other").unwrap();
        let mut h = Hasher::new(1, 8);
        // The first candidate is a different file (wrong inode): skipped, the second matches.
        let slot = h.request(key_of(&a), vec![b.clone(), a.clone()]);
        h.drain(Duration::from_secs(5));
        assert_eq!(
            slot.get().cloned().flatten().as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let again = h.request(key_of(&a), vec![a.clone()]);
        assert!(Arc::ptr_eq(&slot, &again));
        assert_eq!(h.stats.hashed.load(Ordering::Relaxed), 1);
        assert_eq!(h.stats.cached.load(Ordering::Relaxed), 1);

        // No candidate matches: an empty digest, counted.
        let mut k = key_of(&a);
        k.ino += 1_000_000;
        let none = h.request(k, vec![a]);
        h.drain(Duration::from_secs(5));
        assert_eq!(none.get(), Some(&None));
        assert_eq!(h.stats.unavailable.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn kernel_dev_encoding() {
        // 8:1 (sda1) is 0x800001 in the kernel's encoding.
        assert_eq!(ExeKey::user_dev((8 << 20) | 1), libc::makedev(8, 1));
    }
}
