//! What the kernel programs record and skip: syscall profiles, the full syscall stream, the
//! kernel-side path filter and the collapse window for repeated opens and connections, turned
//! into the `CONFIG` global of the eBPF object.

use std::time::Duration;

use needle_common::abi::{
    FEATURE_FILE_FILTER, FEATURE_FULL, FEATURE_PROC_SELF_FILTER, FEATURE_PROFILE,
    FILTER_COMPONENTS, FILTER_NAME_MAX, FILTER_PREFIXES, FILTER_TEXT_MAX, PathPrefix, ProbeConfig,
};

/// How much of the syscall activity is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyscallMode {
    /// No per-syscall work beyond the file, network and security events.
    Off,
    /// Per-thread syscall counts, emitted every profile interval and at thread exit.
    Profile,
    /// Profiles plus one row per syscall exit (syscall number, return value, thread, time).
    Full,
}

/// Read-only opens and executable mappings skipped by default: shared libraries and loader
/// caches of unchanged system paths, the bulk of every process start.
pub const DEFAULT_SKIP_PREFIXES: &[&str] = &[
    "/lib/",
    "/lib64/",
    "/usr/lib/",
    "/usr/lib64/",
    "/etc/ld.so.cache",
    "/usr/share/locale/",
    "/usr/share/zoneinfo/",
];

/// A path prefix the kernel cannot hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    /// Not absolute, or has `.`/`..`/empty components.
    #[error("skip prefix {0:?}: must be an absolute, normalized path such as /usr/lib/")]
    NotAbsolute(String),
    /// Too many components or bytes for the kernel's fixed-size filter.
    #[error(
        "skip prefix {0:?}: at most {FILTER_COMPONENTS} components of at most {FILTER_NAME_MAX} bytes, {FILTER_TEXT_MAX} bytes in all"
    )]
    TooLong(String),
    /// More prefixes than slots.
    #[error("at most {FILTER_PREFIXES} skip prefixes (got {0})")]
    TooMany(usize),
}

/// The kernel form of one prefix.
pub fn prefix(text: &str) -> Result<PathPrefix, PrefixError> {
    let trimmed = text
        .strip_prefix('/')
        .ok_or_else(|| PrefixError::NotAbsolute(text.into()))?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let components: Vec<&str> = trimmed.split('/').collect();
    if components
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(PrefixError::NotAbsolute(text.into()));
    }
    if components.len() > FILTER_COMPONENTS
        || components.iter().any(|c| c.len() > FILTER_NAME_MAX)
        || text.len() > FILTER_TEXT_MAX
    {
        return Err(PrefixError::TooLong(text.into()));
    }
    let mut p = PathPrefix::empty();
    p.depth = components.len() as u32;
    for (i, c) in components.iter().enumerate() {
        p.lens[i] = c.len() as u32;
        p.names[i][..c.len()].copy_from_slice(c.as_bytes());
    }
    p.text[..text.len()].copy_from_slice(text.as_bytes());
    p.text_len = text.len() as u32;
    Ok(p)
}

/// Settings of the kernel programs, as the command line gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Profiles / full stream.
    pub syscalls: SyscallMode,
    /// How often a thread's profile is emitted while it runs.
    pub profile_interval: Duration,
    /// Prefixes skipped for read-only opens and exec mappings.
    pub skip_prefixes: Vec<String>,
    /// Skip a process's read-only opens of its own `/proc/<pid>/…`.
    pub skip_proc_self: bool,
    /// Identical opens, and connections to one peer, by one thread within this long are
    /// counted into one row (zero: every open and connection is a row of its own).
    pub collapse_window: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            syscalls: SyscallMode::Profile,
            profile_interval: Duration::from_secs(30),
            skip_prefixes: DEFAULT_SKIP_PREFIXES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            skip_proc_self: true,
            collapse_window: Duration::from_secs(1),
        }
    }
}

impl ProbeSettings {
    /// Checks the prefixes fit the kernel filter.
    pub fn validate(&self) -> Result<(), PrefixError> {
        if self.skip_prefixes.len() > FILTER_PREFIXES {
            return Err(PrefixError::TooMany(self.skip_prefixes.len()));
        }
        self.skip_prefixes
            .iter()
            .try_for_each(|p| prefix(p).map(|_| ()))
    }

    /// The `CONFIG` global.
    pub fn probe_config(
        &self,
        wakeup_bytes: u64,
        self_tgid: u32,
    ) -> Result<ProbeConfig, PrefixError> {
        self.validate()?;
        let mut c = ProbeConfig::zeroed();
        c.wakeup_bytes = wakeup_bytes;
        c.self_tgid = self_tgid;
        c.features = match self.syscalls {
            SyscallMode::Off => 0,
            SyscallMode::Profile => FEATURE_PROFILE,
            SyscallMode::Full => FEATURE_PROFILE | FEATURE_FULL,
        };
        if !self.skip_prefixes.is_empty() {
            c.features |= FEATURE_FILE_FILTER;
        }
        if self.skip_proc_self {
            c.features |= FEATURE_PROC_SELF_FILTER;
        }
        c.profile_interval_ns = u64::try_from(self.profile_interval.as_nanos()).unwrap_or(u64::MAX);
        c.collapse_window_ns = u64::try_from(self.collapse_window.as_nanos()).unwrap_or(u64::MAX);
        // Random per run (std's hasher keys come from the OS's random source).
        c.dns_hash_seed = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            self_tgid,
        );
        for (slot, text) in c.prefixes.iter_mut().zip(&self.skip_prefixes) {
            *slot = prefix(text)?;
        }
        Ok(c)
    }

    /// One line for the summary and the file metadata.
    pub fn describe(&self) -> String {
        let skip = if self.skip_prefixes.is_empty() {
            "none".to_string()
        } else {
            self.skip_prefixes.join(",")
        };
        format!(
            "syscalls={:?} profile_interval={} skip_prefixes={} skip_proc_self={} collapse_window={}",
            self.syscalls,
            humantime::format_duration(self.profile_interval),
            skip,
            self.skip_proc_self,
            humantime::format_duration(self.collapse_window)
        )
        .to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_components_and_text() {
        let p = prefix("/usr/lib/").unwrap();
        assert_eq!(p.depth, 2);
        assert_eq!(&p.names[0][..3], b"usr");
        assert_eq!(&p.names[1][..3], b"lib");
        assert_eq!((p.lens[0], p.lens[1]), (3, 3));
        assert_eq!(&p.text[..p.text_len as usize], b"/usr/lib/");
        let p = prefix("/etc/ld.so.cache").unwrap();
        assert_eq!((p.depth, p.lens[1]), (2, 11));
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert!(matches!(
            prefix("usr/lib"),
            Err(PrefixError::NotAbsolute(_))
        ));
        assert!(matches!(
            prefix("/usr/../etc"),
            Err(PrefixError::NotAbsolute(_))
        ));
        assert!(matches!(prefix("/a/b/c/d"), Err(PrefixError::TooLong(_))));
        assert!(matches!(
            prefix("/a-very-long-component-name/"),
            Err(PrefixError::TooLong(_))
        ));
        let s = ProbeSettings {
            skip_prefixes: vec!["/a/".into(); 9],
            ..ProbeSettings::default()
        };
        assert_eq!(s.validate(), Err(PrefixError::TooMany(9)));
    }

    #[test]
    fn defaults_fit_and_set_features() {
        let c = ProbeSettings::default().probe_config(1, 2).unwrap();
        assert_eq!(
            c.features,
            FEATURE_PROFILE | FEATURE_FILE_FILTER | FEATURE_PROC_SELF_FILTER
        );
        assert_eq!(
            c.prefixes.iter().filter(|p| p.depth > 0).count(),
            DEFAULT_SKIP_PREFIXES.len()
        );
        let none = ProbeSettings {
            skip_prefixes: vec![],
            skip_proc_self: false,
            syscalls: SyscallMode::Full,
            ..ProbeSettings::default()
        };
        assert_eq!(
            none.probe_config(1, 2).unwrap().features,
            FEATURE_PROFILE | FEATURE_FULL
        );
    }
}
