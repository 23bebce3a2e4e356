//! Facts about the host recorded in every trace file.

/// Host name and kernel release.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// `uname -n`.
    pub hostname: String,
    /// `uname -r`.
    pub kernel: String,
    /// Number of possible CPUs (sizes per-CPU structures).
    pub cpus: usize,
}

impl HostInfo {
    /// Reads them from the running system.
    pub fn read() -> HostInfo {
        let uts = rustix::system::uname();
        HostInfo {
            hostname: uts.nodename().to_string_lossy().into_owned(),
            kernel: uts.release().to_string_lossy().into_owned(),
            cpus: aya::util::nr_cpus().unwrap_or(1).max(1),
        }
    }
}
