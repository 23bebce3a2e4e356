//! Tracepoint record layouts from tracefs `format` files.
//!
//! Field offsets of classic tracepoints are read from
//! `/sys/kernel/tracing/events/<category>/<name>/format` rather than assumed.

use std::fs;
use std::path::{Path, PathBuf};

/// Where tracefs is normally mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// Why a tracepoint's layout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    /// tracefs is not mounted and could not be mounted.
    #[error(
        "tracefs is not mounted at {TRACEFS} and mounting it failed: {0} (mount -t tracefs nodev {TRACEFS})"
    )]
    NotMounted(String),
    /// The tracepoint does not exist on this kernel.
    #[error("tracepoint {category}/{name} not found ({path}): {message}")]
    NoTracepoint {
        /// Category.
        category: String,
        /// Name.
        name: String,
        /// The format file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A field the programs need is missing.
    #[error("tracepoint {tracepoint} has no field `{field}`")]
    NoField {
        /// `category/name`.
        tracepoint: String,
        /// Field name.
        field: String,
    },
}

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name (`filename`, `pid`).
    pub name: String,
    /// Declared C type (`__data_loc char[]`, `pid_t`).
    pub c_type: String,
    /// Byte offset in the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// A parsed `format` file.
#[derive(Clone, Debug)]
pub struct Format {
    /// `category/name`.
    pub tracepoint: String,
    /// Its fields, common ones included.
    pub fields: Vec<Field>,
}

impl Format {
    /// Parses the text of a `format` file.
    pub fn parse(tracepoint: &str, text: &str) -> Format {
        let fields = text.lines().filter_map(parse_field_line).collect();
        Format {
            tracepoint: tracepoint.to_string(),
            fields,
        }
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field called `name`, or an error naming the tracepoint.
    pub fn require(&self, name: &str) -> Result<&Field, TracefsError> {
        self.field(name).ok_or_else(|| TracefsError::NoField {
            tracepoint: self.tracepoint.clone(),
            field: name.to_string(),
        })
    }
}

/// `\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;`
fn parse_field_line(line: &str) -> Option<Field> {
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    for part in line.trim().split(';') {
        let part = part.trim();
        if let Some(d) = part.strip_prefix("field:") {
            decl = Some(d.trim());
        } else if let Some(o) = part.strip_prefix("offset:") {
            offset = o.trim().parse().ok();
        } else if let Some(s) = part.strip_prefix("size:") {
            size = s.trim().parse().ok();
        }
    }
    let decl = decl?;
    // `char comm[16]`: the array suffix belongs to the type; `__data_loc char[] filename`: the
    // brackets are already in the type. Either way the name is the last identifier.
    let (base, array) = match decl
        .strip_suffix(']')
        .and_then(|d| d.rfind('[').map(|i| (&decl[..i], &decl[i..])))
    {
        Some((base, array)) => (base.trim_end(), array),
        None => (decl, ""),
    };
    let name_start = base
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let name = &base[name_start..];
    if name.is_empty() {
        return None;
    }
    let c_type = format!("{}{array}", base[..name_start].trim_end());
    Some(Field {
        name: name.to_string(),
        c_type,
        offset: offset?,
        size: size?,
    })
}

/// A usable tracefs mount.
pub struct TraceFs {
    root: PathBuf,
}

impl TraceFs {
    /// Finds tracefs, mounting it at [`TRACEFS`] when it is not mounted (needs root).
    pub fn open_or_mount() -> Result<TraceFs, TracefsError> {
        for root in [TRACEFS, DEBUGFS_TRACING] {
            if Path::new(root).join("events").is_dir() {
                return Ok(TraceFs { root: root.into() });
            }
        }
        rustix::mount::mount(
            "nodev",
            TRACEFS,
            "tracefs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .map_err(|e| TracefsError::NotMounted(e.to_string()))?;
        Ok(TraceFs {
            root: TRACEFS.into(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when the tracepoint exists.
    pub fn has(&self, category: &str, name: &str) -> bool {
        self.root.join("events").join(category).join(name).is_dir()
    }

    /// Reads and parses a tracepoint's format.
    pub fn format(&self, category: &str, name: &str) -> Result<Format, TracefsError> {
        let path = self
            .root
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = fs::read_to_string(&path).map_err(|e| TracefsError::NoTracepoint {
            category: category.into(),
            name: name.into(),
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Format::parse(&format!("{category}/{name}"), &text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = "name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;

print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid
";

    #[test]
    fn parses_fields_and_types() {
        let f = Format::parse("sched/sched_process_exec", EXEC);
        assert_eq!(
            f.field("filename").unwrap(),
            &Field {
                name: "filename".into(),
                c_type: "__data_loc char[]".into(),
                offset: 8,
                size: 4
            }
        );
        assert_eq!(f.field("old_pid").unwrap().offset, 16);
        assert_eq!(f.field("comm").unwrap().c_type, "char[16]");
        assert_eq!(f.field("common_pid").unwrap().offset, 4);
        assert!(matches!(
            f.require("group_dead"),
            Err(TracefsError::NoField { .. })
        ));
    }

    #[test]
    fn running_kernel_formats_match_the_parser() {
        let Ok(fs) = TraceFs::open_or_mount() else {
            eprintln!("SKIP: tracefs not available (needs root to mount)");
            return;
        };
        let exec = fs.format("sched", "sched_process_exec").unwrap();
        assert_eq!(exec.require("filename").unwrap().size, 4);
        assert_eq!(exec.require("old_pid").unwrap().size, 4);
    }
}
