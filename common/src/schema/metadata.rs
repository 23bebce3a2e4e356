//! The key-value metadata every trace file carries (`needle.*` keys).
//!
//! Each field of [`TraceMetadata`] is stored under `needle.<field>` with a JSON value, so any
//! Parquet reader (DuckDB's `parquet_kv_metadata`, pyarrow) shows it and needle reads it back
//! typed. Unknown `needle.*` keys are ignored (newer writers may add fields); a missing
//! `needle.schema_version` means the file is not a needle trace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SCHEMA_VERSION;

/// Prefix of every needle metadata key.
pub const KEY_PREFIX: &str = "needle.";

/// Whether one eBPF program loaded, and why not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStatus {
    /// Program name (the eBPF function).
    pub name: String,
    /// Where it attaches, e.g. `tracepoint/sched/sched_process_exec`.
    pub hook: String,
    /// True when it is attached and recording.
    pub loaded: bool,
    /// Why it was skipped, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Self-description of one trace segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceMetadata {
    /// Column layout version ([`SCHEMA_VERSION`] when written by this build).
    pub schema_version: u32,
    /// Host name of the recording machine.
    pub host: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Version of the program that wrote the file (`capture 0.1.0`, `analyze import 0.1.0`).
    pub writer: String,
    /// Wall-clock start of the segment, ns since the Unix epoch.
    pub start_time_ns: i64,
    /// Wall-clock end of the segment, ns since the Unix epoch.
    pub end_time_ns: i64,
    /// Index of this segment within its capture run (0-based).
    pub segment: u64,
    /// Rows in this file.
    pub events_written: u64,
    /// Events the kernel could not hand over during this segment (ring buffer full), all CPUs.
    pub events_lost: u64,
    /// The same, per CPU.
    pub events_lost_per_cpu: Vec<u64>,
    /// The same, per event kind.
    pub events_lost_by_kind: BTreeMap<String, u64>,
    /// Other kernel counters during this segment (filtered events, read errors), by name.
    pub counters: BTreeMap<String, u64>,
    /// Events written without container/process context during this segment.
    pub enrichment_misses: u64,
    /// What was recording.
    pub programs: Vec<ProgramStatus>,
    /// Recording settings that decide what is in the file (syscall mode, kernel-side filters).
    pub settings: String,
}

/// Why a file's metadata is not usable.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// No `needle.schema_version` key: some other Parquet file.
    #[error("not a needle trace (no `needle.schema_version` in the file metadata)")]
    NotATrace,
    /// Written by a newer needle with a layout this build does not know.
    #[error(
        "trace schema version {found} is newer than this build supports ({supported}); upgrade needle"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// A `needle.*` value is not what it should be.
    #[error("metadata key `{key}`: {message}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl TraceMetadata {
    /// The metadata as Parquet key-value pairs.
    pub fn to_key_values(&self) -> Vec<(String, String)> {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (format!("{KEY_PREFIX}{k}"), v.to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Reads the `needle.*` pairs of a file; checks the schema version.
    pub fn from_key_values<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<TraceMetadata, MetadataError> {
        let mut map = serde_json::Map::new();
        for (key, value) in pairs {
            let Some(field) = key.strip_prefix(KEY_PREFIX) else {
                continue;
            };
            let Some(value) = value else { continue };
            let parsed = serde_json::from_str(value).map_err(|e| MetadataError::BadValue {
                key: key.to_string(),
                message: format!("not JSON: {e}"),
            })?;
            map.insert(field.to_string(), parsed);
        }
        let version = match map.get("schema_version") {
            None => return Err(MetadataError::NotATrace),
            Some(v) => v
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| MetadataError::BadValue {
                    key: format!("{KEY_PREFIX}schema_version"),
                    message: format!("expected a version number, found {v}"),
                })?,
        };
        if version > SCHEMA_VERSION {
            return Err(MetadataError::UnsupportedVersion {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        // Drop fields whose type changed in a newer writer rather than failing the whole file.
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            MetadataError::BadValue {
                key: format!("{KEY_PREFIX}*"),
                message: e.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TraceMetadata {
        TraceMetadata {
            schema_version: SCHEMA_VERSION,
            host: "node-1".into(),
            kernel: "6.18.0".into(),
            writer: "capture 0.1.0".into(),
            start_time_ns: 1,
            end_time_ns: 2,
            segment: 3,
            events_written: 10,
            events_lost: 4,
            events_lost_per_cpu: vec![1, 3],
            events_lost_by_kind: [("exec".to_string(), 4)].into(),
            counters: [("fork_thread_filtered".to_string(), 9)].into(),
            enrichment_misses: 0,
            programs: vec![ProgramStatus {
                name: "sched_process_exec".into(),
                hook: "tracepoint/sched/sched_process_exec".into(),
                loaded: true,
                reason: None,
            }],
            settings: "syscalls=profile".into(),
        }
    }

    #[test]
    fn round_trip() {
        let kv = sample().to_key_values();
        assert!(kv.iter().all(|(k, _)| k.starts_with(KEY_PREFIX)));
        let back =
            TraceMetadata::from_key_values(kv.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))))
                .unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn foreign_and_future_files_are_rejected() {
        let none: Vec<(&str, Option<&str>)> = vec![("pandas", Some("{}"))];
        assert!(matches!(
            TraceMetadata::from_key_values(none),
            Err(MetadataError::NotATrace)
        ));
        let future = vec![("needle.schema_version", Some("999"))];
        assert!(matches!(
            TraceMetadata::from_key_values(future),
            Err(MetadataError::UnsupportedVersion { found: 999, .. })
        ));
        let bad = vec![("needle.schema_version", Some("\"one\""))];
        assert!(matches!(
            TraceMetadata::from_key_values(bad),
            Err(MetadataError::BadValue { .. })
        ));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let kv = vec![
            ("needle.schema_version", Some("1")),
            ("needle.from_the_future", Some("[1]")),
        ];
        assert_eq!(
            TraceMetadata::from_key_values(kv).unwrap().schema_version,
            1
        );
    }
}
