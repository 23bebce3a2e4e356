//! A read-only reader of bbolt files, the key/value store where podman 4 (`libpod/bolt_state.db`)
//! and containerd (`io.containerd.metadata.v1.bolt/meta.db`) keep what their runtime state does
//! not: names, labels, images, pods.
//!
//! The engines hold the file open (containerd with an exclusive lock for its whole life), so it
//! is read without a lock, page by page with `pread`: the newest valid meta page (magic, version,
//! FNV-1a checksum) gives the root, and every page read is checked (in bounds, of the expected
//! type, elements inside the page). A write racing the read can at worst make a lookup fail
//! with [`BoltError::Format`] or miss; it can never make the reader loop or panic. Depth and
//! the size of what is read are bounded.
//!
//! Format (bbolt): a page is a 16-byte header (`id u64, flags u16, count u16, overflow u32`)
//! and `count` 16-byte elements; branch elements are `pos u32, ksize u32, pgid u64`, leaf ones
//! `flags u32, pos u32, ksize u32, vsize u32`, with `pos` counted from the element itself. A leaf
//! value flagged as a bucket starts with `root u64, sequence u64`; root 0 means the bucket's
//! single leaf page follows inline.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
/// Deepest B+tree walked (a real tree of a few GiB is 5–6 levels deep).
const MAX_DEPTH: usize = 32;
/// Largest page (with its overflow) read: a container's config in podman's file is ~20 KiB.
const MAX_PAGE_BYTES: u64 = 16 << 20;
/// Most entries returned by [`BoltFile::entries`].
const MAX_ENTRIES: usize = 4096;

/// A bbolt file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    /// Opening or reading failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Not a bbolt file, or a page that does not hold together (a concurrent write, a
    /// damaged file).
    #[error("{path}: not a readable bbolt file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// A bucket: its root page, or its inline leaf page.
#[derive(Clone, Debug)]
pub enum Bucket {
    /// Root page id.
    Paged(u64),
    /// The bytes of an inline leaf page.
    Inline(Vec<u8>),
}

/// A value found in a bucket.
#[derive(Clone, Debug)]
pub enum Value {
    /// Plain bytes.
    Bytes(Vec<u8>),
    /// A nested bucket.
    Bucket(Bucket),
}

/// An open bbolt file.
pub struct BoltFile {
    path: PathBuf,
    file: File,
    page_size: u64,
    /// Page count (high-water mark) from the meta page.
    pages: u64,
    root: Bucket,
}

/// One element of a page.
struct Element<'a> {
    key: &'a [u8],
    /// Leaf: the value; branch: empty.
    value: &'a [u8],
    /// Leaf: whether the value is a bucket.
    bucket: bool,
    /// Branch: the child page.
    child: u64,
}

impl BoltFile {
    /// Opens `path` (never following a symlink in its last component); Ok(None) when it does
    /// not exist.
    pub fn open(path: &Path) -> Result<Option<BoltFile>, BoltError> {
        let Some(file) = super::nofollow::open(path).map_err(|source| BoltError::Read {
            path: path.into(),
            source,
        })?
        else {
            return Ok(None);
        };
        let mut db = BoltFile {
            path: path.into(),
            file,
            page_size: 4096,
            pages: 2,
            root: Bucket::Paged(0),
        };
        // Both meta pages sit at the start; the page size is in them, so read generously.
        let mut first = vec![0u8; 64 << 10];
        let n = db.read_at(&mut first, 0)?;
        first.truncate(n);
        let meta0 = parse_meta(&first);
        let meta1 = meta0
            .as_ref()
            .ok()
            .and_then(|m| first.get(m.page_size as usize..))
            .map(parse_meta);
        let best = match (meta0, meta1) {
            (Ok(a), Some(Ok(b))) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), _) => a,
            (Err(_), _) => {
                // Page 0 unusable: page 1 sits at one of the page sizes bbolt uses.
                [4096usize, 8192, 16384, 65536]
                    .iter()
                    .find_map(|&size| {
                        first
                            .get(size..)
                            .and_then(|b| parse_meta(b).ok())
                            .filter(|m| m.page_size as usize == size)
                    })
                    .ok_or_else(|| db.format("no valid meta page"))?
            }
        };
        db.page_size = u64::from(best.page_size);
        db.pages = best.pages;
        db.root = Bucket::Paged(best.root);
        Ok(Some(db))
    }

    /// The bucket at `path` (names from the top), if every one exists and is a bucket.
    pub fn bucket(&self, path: &[&[u8]]) -> Result<Option<Bucket>, BoltError> {
        let mut bucket = self.root.clone();
        for name in path {
            match self.get(&bucket, name)? {
                Some(Value::Bucket(b)) => bucket = b,
                _ => return Ok(None),
            }
        }
        Ok(Some(bucket))
    }

    /// The value of `key` in `bucket`.
    pub fn get(&self, bucket: &Bucket, key: &[u8]) -> Result<Option<Value>, BoltError> {
        let mut page = match bucket {
            Bucket::Inline(bytes) => bytes.clone(),
            Bucket::Paged(id) => self.page(*id)?,
        };
        for _ in 0..MAX_DEPTH {
            let (flags, elements) = self.elements(&page)?;
            if flags & BRANCH != 0 {
                // The last child whose first key is <= key (the first child if none is).
                let child = elements
                    .iter()
                    .take_while(|e| e.key <= key)
                    .last()
                    .or(elements.first())
                    .map(|e| e.child)
                    .ok_or_else(|| self.format("empty branch page"))?;
                page = self.page(child)?;
                continue;
            }
            return elements
                .iter()
                .find(|e| e.key == key)
                .map(|e| self.value(e))
                .transpose();
        }
        Err(self.format("tree deeper than 32 levels"))
    }

    /// Every key and value of `bucket`, in key order (at most 4096).
    pub fn entries(&self, bucket: &Bucket) -> Result<Vec<(Vec<u8>, Value)>, BoltError> {
        let first = match bucket {
            Bucket::Inline(bytes) => bytes.clone(),
            Bucket::Paged(id) => self.page(*id)?,
        };
        let mut out = Vec::new();
        // Depth-first, children in order; each stack entry carries its depth.
        let mut stack = vec![(first, 0usize)];
        let mut visited = 0;
        while let Some((page, depth)) = stack.pop() {
            visited += 1;
            if depth >= MAX_DEPTH || visited > MAX_ENTRIES {
                return Err(self.format("tree too deep or too large for a bucket of labels"));
            }
            let (flags, elements) = self.elements(&page)?;
            if flags & BRANCH != 0 {
                if stack.len() + elements.len() > MAX_ENTRIES {
                    return Err(self.format("bucket too large"));
                }
                for e in elements.iter().rev() {
                    stack.push((self.page(e.child)?, depth + 1));
                }
                continue;
            }
            for e in &elements {
                if out.len() >= MAX_ENTRIES {
                    return Ok(out);
                }
                out.push((e.key.to_vec(), self.value(e)?));
            }
        }
        Ok(out)
    }

    /// The bytes of page `id` with its overflow pages.
    fn page(&self, id: u64) -> Result<Vec<u8>, BoltError> {
        if id < 2 || id >= self.pages {
            return Err(self.format(&format!("page {id} outside the file's {}", self.pages)));
        }
        let offset = id
            .checked_mul(self.page_size)
            .ok_or_else(|| self.format("page offset overflows"))?;
        let mut page = vec![0u8; self.page_size as usize];
        if self.read_at(&mut page, offset)? < PAGE_HEADER {
            return Err(self.format(&format!("page {id} is cut short")));
        }
        let overflow = u64::from(u32_at(&page, 12));
        if overflow > 0 {
            let len = (overflow + 1).saturating_mul(self.page_size);
            if len > MAX_PAGE_BYTES || id + overflow >= self.pages {
                return Err(self.format(&format!("page {id} overflow {overflow} out of bounds")));
            }
            page = vec![0u8; len as usize];
            let n = self.read_at(&mut page, offset)?;
            page.truncate(n);
        }
        Ok(page)
    }

    /// The flags and elements of a branch or leaf page, each checked to lie inside the page.
    fn elements<'a>(&self, page: &'a [u8]) -> Result<(u16, Vec<Element<'a>>), BoltError> {
        if page.len() < PAGE_HEADER {
            return Err(self.format("page shorter than its header"));
        }
        let flags = u16_at(page, 8);
        let count = usize::from(u16_at(page, 10));
        if flags & (BRANCH | LEAF) == 0 {
            return Err(self.format(&format!("page of type {flags:#x} in a tree")));
        }
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let at = PAGE_HEADER + i * ELEMENT;
            let header = page
                .get(at..at + ELEMENT)
                .ok_or_else(|| self.format("element outside its page"))?;
            let element = if flags & BRANCH != 0 {
                let (pos, ksize) = (u32_at(header, 0) as usize, u32_at(header, 4) as usize);
                Element {
                    key: slice(page, at + pos, ksize).ok_or_else(|| self.format("key outside"))?,
                    value: &[],
                    bucket: false,
                    child: u64_at(header, 8),
                }
            } else {
                let leaf_flags = u32_at(header, 0);
                let (pos, ksize, vsize) = (
                    u32_at(header, 4) as usize,
                    u32_at(header, 8) as usize,
                    u32_at(header, 12) as usize,
                );
                let key = slice(page, at + pos, ksize).ok_or_else(|| self.format("key outside"))?;
                let value = slice(page, at + pos + ksize, vsize)
                    .ok_or_else(|| self.format("value outside its page"))?;
                Element {
                    key,
                    value,
                    bucket: leaf_flags & BUCKET_LEAF != 0,
                    child: 0,
                }
            };
            out.push(element);
        }
        Ok((flags, out))
    }

    fn value(&self, e: &Element<'_>) -> Result<Value, BoltError> {
        if !e.bucket {
            return Ok(Value::Bytes(e.value.to_vec()));
        }
        if e.value.len() < 16 {
            return Err(self.format("bucket header cut short"));
        }
        let root = u64_at(e.value, 0);
        Ok(Value::Bucket(if root == 0 {
            Bucket::Inline(e.value[16..].to_vec())
        } else {
            Bucket::Paged(root)
        }))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, BoltError> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(BoltError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(done)
    }

    fn format(&self, reason: &str) -> BoltError {
        BoltError::Format {
            path: self.path.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// The fields of a meta page that the reader needs.
struct Meta {
    page_size: u32,
    root: u64,
    pages: u64,
    txid: u64,
}

/// A meta page (its page header first); checked by magic, version and checksum.
fn parse_meta(page: &[u8]) -> Result<Meta, &'static str> {
    let m = page
        .get(PAGE_HEADER..PAGE_HEADER + 64)
        .ok_or("file shorter than a meta page")?;
    if u32_at(m, 0) != MAGIC {
        return Err("bad magic");
    }
    if u32_at(m, 4) != VERSION {
        return Err("unsupported version");
    }
    if fnv1a64(&m[..56]) != u64_at(m, 56) {
        return Err("meta checksum mismatch");
    }
    let page_size = u32_at(m, 8);
    if !(512..=(1 << 20)).contains(&page_size) || !page_size.is_power_of_two() {
        return Err("implausible page size");
    }
    Ok(Meta {
        page_size,
        root: u64_at(m, 16),
        pages: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn slice(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests;
