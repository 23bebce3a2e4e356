//! Traces and partial files in object storage: inputs named `s3://bucket/prefix…`.
//!
//! The inputs stay paths (`PathBuf` holding the URL) so that every error, summary and report
//! names them as the user wrote them; this module lists a prefix (hive trees included), opens an
//! object through parquet's async reader ([`ParquetObjectReader`]) and drives it to completion
//! on a small tokio runtime. The runtime lives only here, where objects are read: the rest of
//! the scan (rayon tasks, the accumulators) stays synchronous and calls [`block_on`].
//!
//! Credentials come from the usual AWS chain as `object_store` reads it (environment, web
//! identity, container and instance credentials), plus the shared credentials file
//! (`~/.aws/credentials`, `AWS_PROFILE`) when the environment holds no key. An S3-compatible
//! store is reached with `--s3-endpoint URL` or `AWS_ENDPOINT_URL`; plain http is allowed only
//! for such an explicit endpoint. Secrets are never printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parquet::arrow::async_reader::ParquetObjectReader;

use super::ScanError;

/// The URL scheme of object-storage inputs.
pub const SCHEME: &str = "s3://";

/// How to reach the object store (`--s3-endpoint`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); else `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
}

static CONFIG: OnceLock<StoreConfig> = OnceLock::new();

/// Sets how stores are reached, once per process, before any `s3://` input is read (the
/// inputs travel as paths through readers that take nothing else). Later calls are ignored.
pub fn configure(config: StoreConfig) {
    let _ = CONFIG.set(config);
}

/// True when `path` names an object (`s3://…`) rather than a local file.
pub fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

fn store_err(url: &Path, message: impl std::fmt::Display) -> ScanError {
    // object_store's messages can span lines (a server's XML body): keep the one-line promise.
    let message = message
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    ScanError::Store {
        url: url.to_path_buf(),
        message,
    }
}

/// `s3://bucket/key` split into the bucket and the key (possibly empty).
fn split(url: &Path) -> Result<(String, String), ScanError> {
    let rest = url
        .to_str()
        .and_then(|s| s.strip_prefix(SCHEME))
        .ok_or_else(|| store_err(url, "not an s3:// URL"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(store_err(url, "no bucket in the URL (s3://bucket/prefix)"));
    }
    Ok((bucket.to_string(), key.to_string()))
}

fn runtime(url: &Path) -> Result<&'static tokio::runtime::Runtime, ScanError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("object-store")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the I/O runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| store_err(url, e))
}

/// Runs `f` to completion on the object-store runtime (from any synchronous thread).
pub(super) fn block_on<F: std::future::Future>(url: &Path, f: F) -> Result<F::Output, ScanError> {
    Ok(runtime(url)?.block_on(f))
}

fn build_store(url: &Path, bucket: &str) -> Result<Arc<dyn ObjectStore>, ScanError> {
    let config = CONFIG.get().cloned().unwrap_or_default();
    let store =
        needle_common::store::s3(bucket, config.endpoint.as_deref(), Duration::from_secs(60))
            .map_err(|e| store_err(url, e))?;
    Ok(Arc::new(Counting(Arc::new(store))))
}

static FETCHED_BYTES: AtomicU64 = AtomicU64::new(0);
static FETCHES: AtomicU64 = AtomicU64::new(0);

/// Bytes the stores sent (object bodies, as the HTTP responses carried them: ranges the
/// reader asked for, merged when close) and the GET requests, since the process started.
pub fn fetched() -> (u64, u64) {
    (
        FETCHED_BYTES.load(Ordering::Relaxed),
        FETCHES.load(Ordering::Relaxed),
    )
}

/// A store that counts what its GETs return, so that a run can say what it fetched.
#[derive(Debug)]
struct Counting(Arc<dyn ObjectStore>);

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

type Key = object_store::path::Path;

#[async_trait::async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Key,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Key,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Key,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let r = self.0.get_opts(location, options).await?;
        FETCHES.fetch_add(1, Ordering::Relaxed);
        if !head {
            FETCHED_BYTES.fetch_add(r.range.end.saturating_sub(r.range.start), Ordering::Relaxed);
        }
        Ok(r)
    }

    async fn delete(&self, location: &Key) -> object_store::Result<()> {
        self.0.delete(location).await
    }

    fn list(&self, prefix: Option<&Key>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Key>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Key, to: &Key) -> object_store::Result<()> {
        self.0.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Key, to: &Key) -> object_store::Result<()> {
        self.0.copy_if_not_exists(from, to).await
    }
}

/// The store of `url`'s bucket (built once per bucket).
fn store(url: &Path, bucket: &str) -> Result<Arc<dyn ObjectStore>, ScanError> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    if let Some(s) = stores.lock().ok().and_then(|m| m.get(bucket).cloned()) {
        return Ok(s);
    }
    let s = build_store(url, bucket)?;
    if let Ok(mut m) = stores.lock() {
        m.insert(bucket.to_string(), s.clone());
    }
    Ok(s)
}

/// The objects under the prefix `url` (every depth, so hive trees too) whose names `keep`
/// accepts, as `s3://bucket/key` paths in key order. A URL naming one object yields it.
pub(super) fn list(url: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, ScanError> {
    let (bucket, key) = split(url)?;
    let store = store(url, &bucket)?;
    let prefix = key.trim_end_matches('/');
    let prefix = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix));
    let metas = block_on(url, async {
        let mut found = Vec::new();
        let mut s = store.list(prefix.as_ref());
        while let Some(m) = s.next().await {
            found.push(m?.location);
        }
        Ok::<_, object_store::Error>(found)
    })?
    .map_err(|e| store_err(url, needle_common::store::describe(&e)))?;
    let mut out: Vec<PathBuf> = metas
        .into_iter()
        .map(|l| PathBuf::from(format!("{SCHEME}{bucket}/{l}")))
        .filter(|p| keep(p))
        .collect();
    if out.is_empty() && !key.is_empty() && !key.ends_with('/') {
        // Not a prefix of anything: perhaps the URL names an object (of any name) itself.
        let location = object_store::path::Path::from(key.as_str());
        if block_on(url, store.head(&location))?.is_ok() {
            out.push(url.to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}

/// One object opened for reading: its store, key and size.
#[derive(Clone)]
pub struct Object {
    url: PathBuf,
    store: Arc<dyn ObjectStore>,
    location: object_store::path::Path,
    size: u64,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Object({})", self.url.display())
    }
}

impl Object {
    /// Looks the object at `url` up (its size, which parquet's reader needs for the footer).
    pub fn open(url: &Path) -> Result<Object, ScanError> {
        let (bucket, key) = split(url)?;
        if key.is_empty() || key.ends_with('/') {
            return Err(store_err(url, "names a prefix, not an object"));
        }
        let store = store(url, &bucket)?;
        let location = object_store::path::Path::from(key.as_str());
        let meta = block_on(url, store.head(&location))?
            .map_err(|e| store_err(url, needle_common::store::describe(&e)))?;
        Ok(Object {
            url: url.to_path_buf(),
            store,
            location,
            size: meta.size,
        })
    }

    /// An async Parquet reader over the object (ranged GETs: only what the reader asks for).
    pub fn reader(&self) -> ParquetObjectReader {
        ParquetObjectReader::new(self.store.clone(), self.location.clone())
            .with_file_size(self.size)
    }

    /// The whole object (partial files are read whole).
    pub fn bytes(&self) -> Result<Vec<u8>, ScanError> {
        let got = block_on(&self.url, async {
            self.store.get(&self.location).await?.bytes().await
        })?;
        got.map(|b| b.to_vec())
            .map_err(|e| store_err(&self.url, needle_common::store::describe(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_key() {
        let s = |u: &str| split(Path::new(u)).map_err(|e| e.to_string());
        assert_eq!(
            s("s3://b/p/host=a/").unwrap(),
            ("b".into(), "p/host=a/".into())
        );
        assert_eq!(s("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(s("s3:///key").unwrap_err().contains("s3:///key: no bucket"));
        assert!(is_url(Path::new("s3://b/k")) && !is_url(Path::new("b/k")));
    }
}
