//! Shipping finalized segments to object storage (`capture --ship s3://bucket/prefix`).
//!
//! A thread of its own watches the output directory: every finalized segment there (a visible
//! `*.parquet`; the writer renames a segment into place only when it is complete) is uploaded
//! under `PREFIX/host=…/date=…/NAME` (the host and the UTC date of its first event, from its own
//! metadata), multipart when large, checked with a HEAD, and only then deleted locally. The
//! recording path never waits for the network: it only writes files, as without `--ship`.
//!
//! When the store is unreachable the segments stay where they are — the output directory is
//! the spool — and uploads are retried with backoff (1 s doubling to 30 s). Segments left by an
//! earlier run (the store was down when it stopped) are shipped first on the next start.
//! `--spool-mib` bounds the spool *before the alarm*: past it capture says so once, on stderr
//! and in the summary, and goes on recording while keeping every segment. Deleting the oldest
//! unshipped segments, or stopping the recording, would both lose events; keeping everything
//! loses nothing until the disk is full, which the writer already handles (it stops cleanly and
//! says so), so that is the least lossy choice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use needle_common::schema::TraceMetadata;
use object_store::path::Path as Key;
use object_store::{ObjectStore, WriteMultipart};

/// Segments larger than this go up as multipart uploads, in parts of this size.
const PART_BYTES: usize = 8 << 20;
/// Longest wait between two attempts while the store is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the output directory is looked at for new segments.
const POLL: Duration = Duration::from_millis(500);

/// Where and how to ship.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipConfig {
    /// The bucket, from `s3://bucket/prefix`.
    pub bucket: String,
    /// The key prefix (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// An S3-compatible endpoint (`--s3-endpoint`, else `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Unshipped bytes past which capture warns (`--spool-mib`).
    pub spool_bytes: u64,
    /// What happens past `spool_bytes` (`--spool-full`).
    pub when_full: SpoolFull,
    /// How long the end of the run waits for the last uploads.
    pub drain: Duration,
}

impl ShipConfig {
    /// Parses `s3://bucket/prefix`.
    pub fn parse(url: &str) -> Result<(String, String), String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url}: not an s3://bucket/prefix URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url}: no bucket (s3://bucket/prefix)"));
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// What capture does once unshipped segments pass `--spool-mib`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpoolFull {
    /// Keep every segment (the disk is the bound).
    Keep,
    /// Delete the oldest unshipped segments to stay under the bound, and count them.
    DropOldest,
}

/// Why shipping cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The store cannot be configured (bad endpoint, bad credentials settings).
    #[error("--ship {url}: {message}")]
    Store {
        /// The destination.
        url: String,
        /// Why.
        message: String,
    },
}

/// What shipping did, for the summary.
#[derive(Clone, Debug, Default)]
pub struct ShipReport {
    /// The destination.
    pub url: String,
    /// Segments uploaded (and deleted locally).
    pub shipped: u64,
    /// Their bytes.
    pub shipped_bytes: u64,
    /// Segments still in the output directory, waiting for the next start.
    pub waiting: u64,
    /// Their bytes.
    pub waiting_bytes: u64,
    /// The spool went past `--spool-mib`.
    pub spool_full: bool,
    /// Unshipped segments deleted to stay under `--spool-mib` (`--spool-full drop-oldest`).
    pub dropped: u64,
    /// Their bytes.
    pub dropped_bytes: u64,
    /// The events in them (rows, from each one's Parquet footer, read before deleting it).
    pub dropped_events: u64,
    /// Dropped segments whose footer could not be read: their events are not in
    /// `dropped_events`.
    pub dropped_uncounted: u64,
    /// The last upload error, if the store was unreachable at the end.
    pub last_error: Option<String>,
}

/// The running shipper thread.
pub struct Shipper {
    finish: Sender<Instant>,
    handle: JoinHandle<ShipReport>,
}

fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn build_store(config: &ShipConfig) -> Result<Arc<dyn ObjectStore>, String> {
    let store = needle_common::store::s3(
        &config.bucket,
        config.endpoint.as_deref(),
        Duration::from_secs(120),
    )
    .map_err(one_line)?;
    Ok(Arc::new(store))
}

/// The rows of a finalized segment, from its Parquet footer; `None` when it cannot be read.
/// Opened without following a symlink: the spool is capture's own directory.
fn rows_in(path: &Path) -> Option<u64> {
    use parquet::file::reader::FileReader as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).ok()?;
    u64::try_from(reader.metadata().file_metadata().num_rows()).ok()
}

/// Finalized segments in `dir` (two levels deep for the hive layout), as relative paths with
/// their sizes, oldest name first.
fn finalized(dir: &Path) -> Vec<(String, u64)> {
    fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<(String, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if meta.is_dir() && depth > 0 {
                walk(&e.path(), &rel, depth - 1, out);
            } else if meta.is_file() && name.ends_with(".parquet") {
                out.push((rel, meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", 2, &mut out);
    out.sort_by(|a, b| {
        let name = |p: &str| p.rsplit('/').next().unwrap_or("").to_string();
        name(&a.0).cmp(&name(&b.0)).then(a.0.cmp(&b.0))
    });
    out
}

/// `host=…/date=…/NAME` of a segment: its path when it is already in the hive layout, else
/// from its metadata (host, first event), else this host and the file's age.
fn partition_key(dir: &Path, rel: &str, host: &str) -> String {
    if rel.starts_with("host=") {
        return rel.to_string();
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let meta = std::fs::File::open(dir.join(rel)).ok().and_then(|f| {
        let md = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&f)
            .ok()?;
        let kv = md.file_metadata().key_value_metadata()?.clone();
        TraceMetadata::from_key_values(kv.iter().map(|k| (k.key.as_str(), k.value.as_deref()))).ok()
    });
    let (h, t) = match meta {
        Some(m) if !m.host.is_empty() => (m.host, m.start_time_ns),
        _ => (host.to_string(), 0),
    };
    let t = if t > 0 {
        t
    } else {
        std::fs::metadata(dir.join(rel))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64)
    };
    let [hd, dd] = crate::output::hive_dirs(&h, t);
    format!("{hd}/{dd}/{name}")
}

/// Uploads one file under `key` and checks the store has all of it. A large file is read and
/// sent a part at a time (at most four parts in flight), so memory stays bounded by the parts.
async fn upload(store: &dyn ObjectStore, path: &Path, key: &Key) -> Result<u64, String> {
    use std::io::Read as _;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let refused = |e: object_store::Error| format!("{key}: {}", needle_common::store::describe(&e));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size <= PART_BYTES as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).map_err(io)?;
        store.put(key, bytes.into()).await.map_err(refused)?;
    } else {
        let up = store.put_multipart(key).await.map_err(refused)?;
        let mut w = WriteMultipart::new_with_chunk_size(up, PART_BYTES);
        let mut part = vec![0u8; PART_BYTES];
        loop {
            let n = match read_full(&mut file, &mut part) {
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(io(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = w.wait_for_capacity(4).await {
                let _ = w.abort().await;
                return Err(refused(e));
            }
            w.write(&part[..n]);
        }
        w.finish().await.map_err(refused)?;
    }
    let head = store.head(key).await.map_err(refused)?;
    if head.size != size {
        return Err(format!(
            "{key}: the store holds {} bytes, the segment {size}",
            head.size
        ));
    }
    Ok(size)
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read as _;
    let mut at = 0;
    while at < buf.len() {
        match file.read(&mut buf[at..])? {
            0 => break,
            n => at += n,
        }
    }
    Ok(at)
}

struct Run {
    config: ShipConfig,
    dir: PathBuf,
    host: String,
    store: Arc<dyn ObjectStore>,
    report: ShipReport,
    warned_down: bool,
}

impl Run {
    /// One pass over the directory: ship what is there, oldest first, until one fails.
    fn pass(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        let pending = self.bound_spool();
        for (rel, _) in pending {
            let part = partition_key(&self.dir, &rel, &self.host);
            let key = if self.config.prefix.is_empty() {
                Key::from(part)
            } else {
                Key::from(format!("{}/{part}", self.config.prefix))
            };
            let path = self.dir.join(&rel);
            let size = rt.block_on(upload(self.store.as_ref(), &path, &key))?;
            // The store has every byte: only now may the local copy go.
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            self.report.shipped += 1;
            self.report.shipped_bytes += size;
            if self.warned_down {
                eprintln!("capture: {} reachable again, shipping", self.config.url());
                self.warned_down = false;
            }
        }
        Ok(())
    }

    /// The finalized segments waiting, oldest first, after holding them to `--spool-mib`:
    /// past it, a warning (once), and with `--spool-full drop-oldest` the oldest deleted
    /// (and counted) until the rest fit.
    fn bound_spool(&mut self) -> Vec<(String, u64)> {
        let mut pending = finalized(&self.dir);
        let mut spooled: u64 = pending.iter().map(|p| p.1).sum();
        let bound = self.config.spool_bytes;
        if spooled <= bound {
            return pending;
        }
        if !self.report.spool_full {
            self.report.spool_full = true;
            eprintln!(
                "capture: warning: {} MiB of segments wait in {} for {} (over --spool-mib {}); {}",
                spooled >> 20,
                self.dir.display(),
                self.config.url(),
                bound >> 20,
                match self.config.when_full {
                    SpoolFull::Keep => "every segment is kept and recording goes on",
                    SpoolFull::DropOldest =>
                        "the oldest are deleted to stay under it (--spool-full drop-oldest)",
                }
            );
        }
        if self.config.when_full == SpoolFull::Keep {
            return pending;
        }
        let mut dropped = 0;
        while spooled > bound && dropped < pending.len() {
            let (rel, size) = &pending[dropped];
            let path = self.dir.join(rel);
            let rows = rows_in(&path);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.report.dropped += 1;
                    self.report.dropped_bytes += size;
                    match rows {
                        Some(rows) => self.report.dropped_events += rows,
                        None => self.report.dropped_uncounted += 1,
                    }
                }
                Err(e) => eprintln!(
                    "capture: warning: dropping {} (over --spool-mib): {e}",
                    path.display()
                ),
            }
            spooled -= size;
            dropped += 1;
        }
        pending.drain(..dropped);
        pending
    }

    fn main_loop(mut self, finish: Receiver<Instant>) -> ShipReport {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                self.report.last_error = Some(format!("cannot start the I/O runtime: {e}"));
                return self.finish_report();
            }
        };
        let mut backoff = Duration::from_secs(1);
        let mut next_try = Instant::now();
        let mut deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now < next_try {
                // Backing off: the spool is still held to its bound every poll.
                self.bound_spool();
            } else {
                match self.pass(&rt) {
                    Ok(()) => {
                        backoff = Duration::from_secs(1);
                        self.report.last_error = None;
                        if deadline.is_some() {
                            break;
                        }
                        next_try = Instant::now() + POLL;
                    }
                    Err(e) => {
                        if !self.warned_down {
                            eprintln!(
                                "capture: warning: shipping to {} failed: {e}; segments stay in {} and are retried",
                                self.config.url(),
                                self.dir.display()
                            );
                            self.warned_down = true;
                        }
                        self.report.last_error = Some(e);
                        next_try = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            let wait = next_try
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), POLL);
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(wait),
                None => wait,
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match finish.recv_timeout(wait) {
                Ok(d) => {
                    // The end of the run: try at once, then within the drain time.
                    deadline = Some(d);
                    next_try = Instant::now();
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.finish_report()
    }

    fn finish_report(mut self) -> ShipReport {
        let left = finalized(&self.dir);
        self.report.waiting = left.len() as u64;
        self.report.waiting_bytes = left.iter().map(|p| p.1).sum();
        self.report
    }
}

impl Shipper {
    /// Starts shipping the finalized segments of `dir` (leftovers of earlier runs first).
    pub fn start(config: &ShipConfig, dir: &Path, host: &str) -> Result<Shipper, ShipError> {
        let store = build_store(config).map_err(|message| ShipError::Store {
            url: config.url(),
            message,
        })?;
        let (finish, rx) = bounded(1);
        let run = Run {
            config: config.clone(),
            dir: dir.to_path_buf(),
            host: host.to_string(),
            store,
            report: ShipReport {
                url: config.url(),
                ..ShipReport::default()
            },
            warned_down: false,
        };
        let handle = std::thread::Builder::new()
            .name("needle-ship".into())
            .spawn(move || run.main_loop(rx))
            .map_err(|e| ShipError::Store {
                url: config.url(),
                message: format!("cannot start the shipping thread: {e}"),
            })?;
        Ok(Shipper { finish, handle })
    }

    /// Ships what the run left (waiting at most the configured drain time) and reports.
    pub fn finish(self, drain: Duration) -> ShipReport {
        let _ = self.finish.send(Instant::now() + drain);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_keys() {
        assert_eq!(
            ShipConfig::parse("s3://b/fleet/traces/").unwrap(),
            ("b".into(), "fleet/traces".into())
        );
        assert_eq!(
            ShipConfig::parse("s3://b").unwrap(),
            ("b".into(), String::new())
        );
        assert!(ShipConfig::parse("/tmp/x").is_err());
        assert!(ShipConfig::parse("s3:///x").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            partition_key(dir.path(), "host=a/date=2026-11-23/s.parquet", "h"),
            "host=a/date=2026-11-23/s.parquet"
        );
        std::fs::write(dir.path().join("x.parquet"), b"no footer").unwrap();
        assert!(partition_key(dir.path(), "x.parquet", "h").starts_with("host=h/date="));
    }

    #[test]
    fn only_finalized_segments_are_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("host=a/date=2026-11-23")).unwrap();
        std::fs::write(d.join("host=a/date=2026-11-23/b.parquet"), b"12").unwrap();
        std::fs::write(d.join("host=a/date=2026-11-23/.c.parquet.partial"), b"1").unwrap();
        std::fs::write(d.join("a.parquet"), b"1").unwrap();
        std::fs::write(d.join("notes.txt"), b"1").unwrap();
        assert_eq!(
            finalized(d),
            [
                ("a.parquet".to_string(), 1),
                ("host=a/date=2026-11-23/b.parquet".to_string(), 2)
            ]
        );
    }

    fn run_with(dir: &Path, when_full: SpoolFull) -> Run {
        Run {
            config: ShipConfig {
                bucket: "b".into(),
                prefix: String::new(),
                endpoint: None,
                spool_bytes: 1 << 20,
                when_full,
                drain: Duration::ZERO,
            },
            dir: dir.to_path_buf(),
            host: "h".into(),
            store: Arc::new(object_store::memory::InMemory::new()),
            report: ShipReport::default(),
            warned_down: false,
        }
    }

    #[test]
    fn past_the_bound_the_oldest_go_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        // Four segments of 400 KiB, oldest first by name; a bound of 1 MiB.
        let names: Vec<String> = (0..4)
            .map(|i| format!("needle-h-20261206T10000{i}.000Z-0000{i}.parquet"))
            .collect();
        for n in &names {
            std::fs::write(dir.path().join(n), vec![0u8; 400 << 10]).unwrap();
        }

        let mut keep = run_with(dir.path(), SpoolFull::Keep);
        assert_eq!(keep.bound_spool().len(), 4);
        assert!(keep.report.spool_full);
        assert_eq!(keep.report.dropped, 0);
        assert!(names.iter().all(|n| dir.path().join(n).exists()));

        let mut drop = run_with(dir.path(), SpoolFull::DropOldest);
        let left: Vec<String> = drop.bound_spool().into_iter().map(|p| p.0).collect();
        assert_eq!(left, names[2..]);
        assert_eq!(
            (drop.report.dropped, drop.report.dropped_bytes),
            (2, 800 << 10)
        );
        // Not Parquet: their events cannot be counted, and the report says how many.
        assert_eq!(
            (drop.report.dropped_events, drop.report.dropped_uncounted),
            (0, 2)
        );
        assert!(!dir.path().join(&names[0]).exists() && !dir.path().join(&names[1]).exists());
        assert!(dir.path().join(&names[2]).exists() && dir.path().join(&names[3]).exists());
        // Under the bound now: nothing more goes.
        assert_eq!(drop.bound_spool().len(), 2);
        assert_eq!(drop.report.dropped, 2);
    }
}
