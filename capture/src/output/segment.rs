//! Rotating Parquet segments, written under a temporary name and renamed when complete.
//!
//! A segment is `needle-<host>-<run start>-<index>.parquet`. While open it is called
//! `….parquet.partial`; [`SegmentWriter::finalize`] writes the footer with the metadata,
//! fsyncs the file, renames it and fsyncs the directory. A reader never sees half a file, and
//! after a crash (`kill -9`, power loss) the only incomplete file is the one named `.partial`.
//!
//! With [`Layout::Hive`] each segment goes into `host=<host>/date=<YYYY-MM-DD>/` under the
//! output directory, the date (UTC) of the segment's first event, so that a fleet's traces are
//! laid out as distributed engines (Spark, Trino) and `analyze` partition them.

use std::fs::File;

use needle_common::schema::{Row, TraceFileWriter, TraceMetadata, WriteOptions};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;

use super::dir::{OutputDir, OutputError};

/// Suffix of a segment that is still being written (or was cut short by a crash).
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Why a segment could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The directory or file.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Parquet encoding or the write beneath it.
    #[error("writing {file}: {source}")]
    Parquet {
        /// The segment file.
        file: String,
        /// The error.
        source: ParquetError,
    },
}

impl SegmentError {
    /// True when the disk (or quota) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SegmentError::Output(e) => e.is_disk_full(),
            SegmentError::Parquet { source, .. } => {
                let text = source.to_string();
                text.contains("No space left") || text.contains("Disk quota exceeded")
            }
        }
    }
}

/// Where segments go under the output directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// All in the output directory.
    #[default]
    Flat,
    /// `host=<host>/date=<YYYY-MM-DD>/`, the UTC date of each segment's first event.
    Hive,
}

/// `host` made safe as one path component (and file-name part): ASCII letters, digits, `-`
/// and `.` kept, anything else `_`, at most 64 characters, never `.` or `..`.
fn safe_host(host: &str) -> String {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') {
        "_".into()
    } else {
        safe
    }
}

/// The hive partition directories of a segment whose first event is at `time_ns`.
pub fn hive_dirs(host: &str, time_ns: i64) -> [String; 2] {
    let (y, m, d, ..) = civil_from_unix(time_ns.div_euclid(1_000_000_000));
    [
        format!("host={}", safe_host(host)),
        format!("date={y:04}-{m:02}-{d:02}"),
    ]
}

/// File name of segment `index` of a run that started at `run_start_ns` (wall clock).
pub fn segment_name(host: &str, run_start_ns: i64, index: u64) -> String {
    let host = safe_host(host);
    let secs = run_start_ns.div_euclid(1_000_000_000);
    let millis = run_start_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    format!("needle-{host}-{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}.{millis:03}Z-{index:05}.parquet")
}

/// Unix seconds → UTC calendar fields (Howard Hinnant's days-from-civil, inverted).
fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// A segment that was finalized.
#[derive(Clone, Debug)]
pub struct FinishedSegment {
    /// File name within the output directory.
    pub name: String,
    /// Rows in it.
    pub rows: u64,
    /// Size on disk.
    pub bytes: u64,
}

struct OpenSegment {
    writer: TraceFileWriter<File>,
    /// Its partition directory (hive layout).
    sub: Option<(OutputDir, String)>,
    partial_name: String,
    final_name: String,
    rows: u64,
}

impl OpenSegment {
    /// `name` relative to the output directory.
    fn relative(&self, name: &str) -> String {
        match &self.sub {
            Some((_, rel)) => format!("{rel}/{name}"),
            None => name.to_string(),
        }
    }
}

/// Writes record batches into rotating segments.
pub struct SegmentWriter {
    dir: OutputDir,
    host: String,
    run_start_ns: i64,
    opts: WriteOptions,
    layout: Layout,
    open: Option<OpenSegment>,
    next_index: u64,
    finished: Vec<FinishedSegment>,
}

impl SegmentWriter {
    /// A writer into `dir` for a run that started at `run_start_ns`.
    pub fn new(dir: OutputDir, host: &str, run_start_ns: i64, opts: WriteOptions) -> Self {
        SegmentWriter {
            dir,
            host: host.into(),
            run_start_ns,
            opts,
            layout: Layout::Flat,
            open: None,
            next_index: 0,
            finished: Vec::new(),
        }
    }

    /// Writes segments in `layout`.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The output directory.
    pub fn dir(&self) -> &OutputDir {
        &self.dir
    }

    /// Index the next finalized segment will have.
    pub fn current_index(&self) -> u64 {
        self.next_index
    }

    /// The open segment, opened if none is (`first_ns`: the time of its first event, for the
    /// hive layout's date).
    fn open_segment(&mut self, first_ns: Option<i64>) -> Result<&mut OpenSegment, SegmentError> {
        if self.open.is_none() {
            let final_name = segment_name(&self.host, self.run_start_ns, self.next_index);
            let partial_name = format!("{final_name}{PARTIAL_SUFFIX}");
            let sub = match self.layout {
                Layout::Flat => None,
                Layout::Hive => {
                    let [host, date] = hive_dirs(&self.host, first_ns.unwrap_or(self.run_start_ns));
                    let dir = self.dir.subdir(&host)?.subdir(&date)?;
                    Some((dir, format!("{host}/{date}")))
                }
            };
            let file = sub
                .as_ref()
                .map_or(&self.dir, |(d, _)| d)
                .create_new(&partial_name)?;
            let writer =
                TraceFileWriter::try_new(file, &self.host, &self.opts).map_err(|source| {
                    SegmentError::Parquet {
                        file: partial_name.clone(),
                        source,
                    }
                })?;
            self.open = Some(OpenSegment {
                writer,
                sub,
                partial_name,
                final_name,
                rows: 0,
            });
        }
        // Just ensured above.
        Ok(self.open.as_mut().expect("segment is open"))
    }

    /// Writes `rows`, in this order, to the open segment as row groups of at most the
    /// configured size (one, when the reader hands over a row group at a time).
    pub fn write<'a, R: Into<Row<'a>>>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<(), SegmentError> {
        let mut rows = rows.into_iter().map(Into::into).peekable();
        let Some(first) = rows.peek() else {
            return Ok(());
        };
        let seg = self.open_segment(Some(first.time_ns()))?;
        let written = seg
            .writer
            .write(rows)
            .map_err(|source| SegmentError::Parquet {
                file: seg.partial_name.clone(),
                source,
            })?;
        seg.rows += written as u64;
        Ok(())
    }

    /// Bytes written so far to the open segment (0 when none is open).
    pub fn open_bytes(&self) -> u64 {
        self.open
            .as_ref()
            .map_or(0, |s| s.writer.bytes_written() as u64)
    }

    /// Rows in the open segment.
    pub fn open_rows(&self) -> u64 {
        self.open.as_ref().map_or(0, |s| s.rows)
    }

    /// Completes the open segment (an empty one if none is open, so that every period's
    /// metadata — losses, programs — is on disk): footer with `meta`, fsync, rename.
    pub fn finalize(&mut self, mut meta: TraceMetadata) -> Result<FinishedSegment, SegmentError> {
        self.open_segment((meta.start_time_ns > 0).then_some(meta.start_time_ns))?;
        let Some(mut seg) = self.open.take() else {
            unreachable!("opened above")
        };
        meta.segment = self.next_index;
        meta.events_written = seg.rows;
        for (k, v) in meta.to_key_values() {
            seg.writer.append_key_value_metadata(KeyValue::new(k, v));
        }
        let partial = seg.partial_name.clone();
        let name = seg.relative(&seg.final_name);
        let file = seg
            .writer
            .into_inner()
            .map_err(|source| SegmentError::Parquet {
                file: partial.clone(),
                source,
            })?;
        let dir = seg.sub.as_ref().map_or(&self.dir, |(d, _)| d);
        file.sync_all().map_err(|e| OutputError::Io {
            path: dir.path().join(&partial),
            source: e,
        })?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        dir.rename(&partial, &seg.final_name)?;
        self.next_index += 1;
        let done = FinishedSegment {
            name,
            rows: seg.rows,
            bytes,
        };
        self.finished.push(done.clone());
        Ok(done)
    }

    /// Name of the open (partial) segment relative to the output directory, if any.
    pub fn open_partial_name(&self) -> Option<String> {
        self.open.as_ref().map(|s| s.relative(&s.partial_name))
    }

    /// Segments finalized so far.
    pub fn finished(&self) -> &[FinishedSegment] {
        &self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use needle_common::schema::{Detail, Event, Process};

    #[test]
    fn names_sort_by_time_and_index_and_are_safe() {
        // 2026-11-23T07:30:12.345Z
        let t = 1_795_419_012_345_000_000;
        assert_eq!(
            segment_name("node-1", t, 7),
            "needle-node-1-20261123T073012.345Z-00007.parquet"
        );
        assert_eq!(
            segment_name("a/../b c", 0, 0),
            "needle-a_.._b_c-19700101T000000.000Z-00000.parquet"
        );
        assert!(segment_name("h", t, 9) < segment_name("h", t, 10));
    }

    #[test]
    fn calendar_conversion() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(4_102_444_799), (2099, 12, 31, 23, 59, 59));
    }

    #[test]
    fn segments_are_partial_until_finalized() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(tmp.path()).unwrap();
        let mut w = SegmentWriter::new(dir, "h", 0, WriteOptions::default());
        let ev = Event::new(
            1,
            1,
            Process {
                comm: "x".into(),
                ..Default::default()
            },
            Detail::Fork,
        );
        w.write([&ev]).unwrap();
        let partial = w.open_partial_name().unwrap().to_string();
        assert!(tmp.path().join(&partial).exists());
        let meta = TraceMetadata {
            schema_version: 1,
            host: "h".into(),
            ..Default::default()
        };
        let done = w.finalize(meta.clone()).unwrap();
        assert!(!tmp.path().join(&partial).exists());
        assert_eq!(done.rows, 1);
        assert!(tmp.path().join(&done.name).exists());
        // An idle period still leaves a file with its metadata.
        let empty = w.finalize(meta).unwrap();
        assert_eq!(empty.rows, 0);
        assert_ne!(empty.name, done.name);
    }

    #[test]
    fn hive_layout_files_segments_by_host_and_first_event_date() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(tmp.path()).unwrap();
        // 2026-11-23T23:59:59Z, run started the day before.
        let t = 1_795_478_399_000_000_000;
        let mut w = SegmentWriter::new(
            dir,
            "node/1",
            t - 86_400_000_000_000,
            WriteOptions::default(),
        )
        .with_layout(Layout::Hive);
        let events: Vec<Event> = [t, t + 2_000_000_000]
            .into_iter()
            .enumerate()
            .map(|(i, time)| {
                Event::new(
                    time,
                    i as u64,
                    Process {
                        comm: "x".into(),
                        ..Default::default()
                    },
                    Detail::Fork,
                )
            })
            .collect();
        w.write(&events).unwrap();
        let partial = w.open_partial_name().unwrap();
        assert!(
            partial.starts_with("host=node_1/date=2026-11-23/"),
            "{partial}"
        );
        assert!(tmp.path().join(&partial).exists());
        let meta = TraceMetadata {
            schema_version: 1,
            host: "node/1".into(),
            start_time_ns: t,
            ..Default::default()
        };
        let done = w.finalize(meta.clone()).unwrap();
        assert!(
            done.name
                .starts_with("host=node_1/date=2026-11-23/needle-node_1-"),
            "{}",
            done.name
        );
        assert!(tmp.path().join(&done.name).exists());
        // The next segment's first event is the next day: the next partition.
        let ev = Event::new(
            t + 3_000_000_000,
            9,
            Process {
                comm: "x".into(),
                ..Default::default()
            },
            Detail::Fork,
        );
        w.write([&ev]).unwrap();
        let next = w.finalize(meta).unwrap();
        assert!(
            next.name.starts_with("host=node_1/date=2026-11-24/"),
            "{}",
            next.name
        );
        // Private directories, never a symlink: a planted one is refused.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join("host=node_1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let planted = tmp.path().join("host=evil");
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &planted).unwrap();
        let dir = OutputDir::open_or_create(tmp.path()).unwrap();
        assert!(dir.subdir("host=evil").is_err());
        assert_eq!(
            hive_dirs("..", 0),
            ["host=_".to_string(), "date=1970-01-01".to_string()]
        );
    }
}
