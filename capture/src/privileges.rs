//! Can this process load eBPF programs at all? Checked first, so the error says so plainly
//! instead of surfacing as a tracefs or bpf(2) failure.

/// Capability bits in `/proc/self/status` `CapEff`.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Why the process lacks the privileges capture needs, if it does.
pub fn missing() -> Option<String> {
    if rustix::process::geteuid().is_root() {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    Some(format!(
        "capture needs root (or CAP_BPF + CAP_PERFMON) to load eBPF programs; running as uid {}",
        rustix::process::geteuid().as_raw()
    ))
}
