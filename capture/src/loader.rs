//! Loading and attaching the eBPF programs, one table entry per program.
//!
//! Each program is probed first (does this kernel have the program type, the tracepoint, BTF?)
//! and loaded on its own: one that fails is reported with the reason and skipped, and capture
//! runs with the rest (kprobes and LSM programs are missing on some kernels, see KERNEL.md).
//! The outcome of every entry is written into each trace file's metadata.

use aya::maps::{MapData, PerCpuArray, ProgramArray, RingBuf};
use std::path::Path;

use aya::programs::{
    BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, ProgramType,
    TracePoint,
};
use aya::{Btf, Ebpf, EbpfLoader, Pod};
use needle_common::abi::nr;
use needle_common::abi::{
    DnsWindows, FEATURE_PROFILE, KernelOffsets, NetWindows, OpenWindows, PROFILE_TABLE_ENTRIES,
    ProbeConfig, ProfileSlot, ProfileState,
};
use needle_common::schema::ProgramStatus;

use crate::kernel::tracefs::TraceFs;

/// The compiled eBPF object.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/capture-ebpf"));

/// Where a program attaches.
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    /// A classic tracepoint (`/sys/kernel/tracing/events/<category>/<name>`).
    Tracepoint {
        /// Category.
        category: &'static str,
        /// Name.
        name: &'static str,
    },
    /// A BTF-enabled raw tracepoint (`tp_btf/<name>`).
    BtfTracepoint {
        /// Name.
        name: &'static str,
    },
    /// A cgroup sock_addr hook (`cgroup/connect4`, …) attached at the cgroup v2 root.
    CgroupSockAddr {
        /// The attach point.
        attach: &'static str,
    },
    /// A cgroup skb hook (`cgroup_skb/egress`, `cgroup_skb/ingress`) at the cgroup v2 root.
    CgroupSkb {
        /// `egress` or `ingress`.
        attach: &'static str,
    },
    /// Not attached: loaded and entered into the `HANDLERS` program array, which `sys_exit`
    /// tail-calls by syscall number.
    SyscallHandler {
        /// The syscall numbers it handles.
        syscalls: &'static [u32],
    },
    /// Not attached: loaded as a tracepoint program and entered into the `EXEC_TAIL` program
    /// array, which `sched_process_exec` tail-calls to describe the new image's fds 0–2.
    ExecTail,
}

impl Hook {
    fn describe(&self) -> String {
        match self {
            Hook::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
            Hook::BtfTracepoint { name } => format!("tp_btf/{name}"),
            Hook::CgroupSockAddr { attach } => format!("cgroup/{attach}"),
            Hook::CgroupSkb { attach } => format!("cgroup_skb/{attach}"),
            Hook::SyscallHandler { syscalls } => {
                format!("sys_exit tail call for {} syscalls", syscalls.len())
            }
            Hook::ExecTail => "sched_process_exec tail call".into(),
        }
    }
}

/// One eBPF program capture knows how to attach.
#[derive(Clone, Copy, Debug)]
pub struct ProgramSpec {
    /// Function name in the object.
    pub name: &'static str,
    /// Where it attaches.
    pub hook: Hook,
    /// Event family it serves (for the summary).
    pub family: &'static str,
    /// Another program of the object to try when this one cannot load.
    pub fallback: Option<&'static str>,
}

/// Every program, in attach order.
#[rustfmt::skip]
pub const PROGRAMS: &[ProgramSpec] = &[
    // Before the exec program: it tail-calls this one from its first run on.
    ProgramSpec { name: "sched_process_exec_stdio", hook: Hook::ExecTail, family: "process", fallback: None },
    ProgramSpec { name: "sched_process_exec", hook: Hook::Tracepoint { category: "sched", name: "sched_process_exec" }, family: "process", fallback: None },
    ProgramSpec { name: "sched_process_fork", hook: Hook::BtfTracepoint { name: "sched_process_fork" }, family: "process", fallback: None },
    ProgramSpec { name: "sched_process_exit", hook: Hook::Tracepoint { category: "sched", name: "sched_process_exit" }, family: "process", fallback: None },
    ProgramSpec { name: "connect4", hook: Hook::CgroupSockAddr { attach: "connect4" }, family: "network", fallback: None },
    ProgramSpec { name: "connect6", hook: Hook::CgroupSockAddr { attach: "connect6" }, family: "network", fallback: None },
    ProgramSpec { name: "sendmsg4", hook: Hook::CgroupSockAddr { attach: "sendmsg4" }, family: "network", fallback: None },
    ProgramSpec { name: "sendmsg6", hook: Hook::CgroupSockAddr { attach: "sendmsg6" }, family: "network", fallback: None },
    ProgramSpec { name: "dns_egress", hook: Hook::CgroupSkb { attach: "egress" }, family: "dns", fallback: None },
    ProgramSpec { name: "dns_ingress", hook: Hook::CgroupSkb { attach: "ingress" }, family: "dns", fallback: None },
    ProgramSpec { name: "sys_exit_open", hook: Hook::SyscallHandler { syscalls: &[nr::OPEN, nr::CREAT, nr::OPENAT, nr::OPENAT2] }, family: "file", fallback: None },
    ProgramSpec { name: "sys_exit_path", hook: Hook::SyscallHandler { syscalls: &[nr::UNLINK, nr::RMDIR, nr::UNLINKAT, nr::RENAME, nr::RENAMEAT, nr::RENAMEAT2, nr::CHMOD, nr::FCHMOD, nr::FCHMODAT, nr::FCHMODAT2, nr::CHOWN, nr::LCHOWN, nr::FCHOWN, nr::FCHOWNAT] }, family: "file", fallback: None },
    ProgramSpec { name: "sys_exit_file_change", hook: Hook::SyscallHandler { syscalls: &[nr::LINK, nr::LINKAT, nr::SYMLINK, nr::SYMLINKAT, nr::MKDIR, nr::MKDIRAT, nr::TRUNCATE, nr::FTRUNCATE, nr::UTIMENSAT, nr::FUTIMESAT, nr::UTIMES, nr::UTIME] }, family: "file", fallback: None },
    ProgramSpec { name: "sys_exit_memory", hook: Hook::SyscallHandler { syscalls: &[nr::MMAP, nr::MEMFD_CREATE] }, family: "file", fallback: None },
    ProgramSpec { name: "sys_exit_security", hook: Hook::SyscallHandler { syscalls: &[nr::PTRACE, nr::PROCESS_VM_WRITEV, nr::SETUID, nr::SETGID, nr::SETREUID, nr::SETREGID, nr::SETRESUID, nr::SETRESGID, nr::SETFSUID, nr::SETFSGID, nr::CAPSET, nr::USERFAULTFD, nr::MOUNT, nr::UNSHARE, nr::SETNS, nr::BPF, nr::KEYCTL] }, family: "security", fallback: None },
    ProgramSpec { name: "sys_exit_module", hook: Hook::SyscallHandler { syscalls: &[nr::INIT_MODULE, nr::FINIT_MODULE] }, family: "security", fallback: None },
    ProgramSpec { name: "sys_exit_socket", hook: Hook::SyscallHandler { syscalls: &[nr::ACCEPT, nr::ACCEPT4, nr::BIND, nr::LISTEN, nr::CONNECT] }, family: "network", fallback: None },
    ProgramSpec { name: "sys_exit_socket_fd", hook: Hook::SyscallHandler { syscalls: &[nr::SOCKET, nr::DUP, nr::DUP2, nr::DUP3] }, family: "network", fallback: None },
    // Last: the handlers are in place before the dispatcher sees its first syscall.
    ProgramSpec { name: "sys_exit", hook: Hook::BtfTracepoint { name: "sys_exit" }, family: "syscall", fallback: None },
];

/// Why capture could not start its sensor at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not allowed to use bpf(2).
    #[error(
        "not permitted to load eBPF programs ({0}); run capture as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE)"
    )]
    Permission(String),
    /// The kernel has no BPF support, or refused the object as a whole.
    #[error("the kernel refused needle's eBPF object: {0}")]
    Object(String),
    /// Every program failed.
    #[error("no eBPF program could be attached:\n{0}")]
    NothingLoaded(String),
    /// A map the object must have is missing or of the wrong type.
    #[error("eBPF map {name}: {message}")]
    Map {
        /// Map name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct OffsetsGlobal(KernelOffsets);
// SAFETY: KernelOffsets is #[repr(C)], Copy, and bytemuck::Pod (no padding, any bit pattern valid).
unsafe impl Pod for OffsetsGlobal {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct ConfigGlobal(ProbeConfig);
// SAFETY: as above.
unsafe impl Pod for ConfigGlobal {}

/// Settings of the sensor.
#[derive(Clone, Copy, Debug)]
pub struct SensorOptions {
    /// Ring buffer size (rounded up to a power of two of at least one page).
    pub ring_bytes: u32,
    /// The programs' `CONFIG` global.
    pub config: ProbeConfig,
}

/// The open collapse windows of live threads, as raw [`OpenWindows`] values by thread id.
pub type WindowsMap = aya::maps::HashMap<MapData, u32, [u8; size_of::<OpenWindows>()]>;

/// The network collapse windows of live threads, as raw [`NetWindows`] values by thread id.
pub type NetWindowsMap = aya::maps::HashMap<MapData, u32, [u8; size_of::<NetWindows>()]>;

/// The DNS collapse windows of live threads, as raw [`DnsWindows`] values by thread id.
pub type DnsWindowsMap = aya::maps::HashMap<MapData, u32, [u8; size_of::<DnsWindows>()]>;

/// The direct-mapped profile table, as raw [`ProfileSlot`] values by index.
pub type ProfileTableMap = aya::maps::Array<MapData, [u8; size_of::<ProfileSlot>()]>;

/// The profiles of threads whose table entry was taken, as raw [`ProfileState`] values by thread id.
pub type ProfilesMap = aya::maps::HashMap<MapData, u32, [u8; size_of::<ProfileState>()]>;

/// The loaded, attached programs and the maps user space reads.
pub struct Sensor {
    /// Owns the programs and their links: dropping it detaches everything.
    ebpf: Option<Ebpf>,
    /// The tail-call program arrays (kept open while the programs that use them run).
    _tails: Tails,
    /// The event ring buffer.
    pub events: RingBuf<MapData>,
    /// Per-CPU counters.
    pub counters: PerCpuArray<MapData, u64>,
    /// Open collapse windows still open (read after [`Sensor::detach`]).
    pub windows: Option<WindowsMap>,
    /// Network collapse windows still open (read after [`Sensor::detach`]).
    pub net_windows: Option<NetWindowsMap>,
    /// DNS collapse windows still open (read after [`Sensor::detach`]).
    pub dns_windows: Option<DnsWindowsMap>,
    /// Syscall profiles of live threads: the table (read after [`Sensor::detach`]).
    pub profile_table: Option<ProfileTableMap>,
    /// Syscall profiles of live threads: the overflow hash map (read after [`Sensor::detach`]).
    pub profiles: Option<ProfilesMap>,
    /// What loaded and what did not.
    pub programs: Vec<ProgramStatus>,
}

/// Time one program spent in the kernel (needs `sysctl kernel.bpf_stats_enabled=1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramCost {
    /// Program name.
    pub name: String,
    /// Times it ran.
    pub runs: u64,
    /// Total time in it, ns.
    pub ns: u64,
}

impl Sensor {
    /// Run counts and run time per program, as the kernel accounts them; empty when the kernel
    /// is not collecting BPF statistics.
    pub fn costs(&self) -> Vec<ProgramCost> {
        let Some(ebpf) = &self.ebpf else {
            return Vec::new();
        };
        let mut out: Vec<ProgramCost> = ebpf
            .programs()
            .filter_map(|(name, p)| p.info().ok().map(|i| (name, i)))
            .map(|(name, i)| ProgramCost {
                name: name.to_string(),
                runs: i.run_count(),
                ns: i.run_time().as_nanos() as u64,
            })
            .filter(|c| c.runs > 0)
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.ns));
        out
    }

    /// Detaches and unloads every program; the maps taken out of the object (ring buffer,
    /// counters, windows) stay readable, and nothing writes to them any more.
    pub fn detach(&mut self) {
        self._tails = Tails::default();
        self.ebpf = None;
    }
}

fn is_permission(e: &impl std::fmt::Display) -> bool {
    let s = e.to_string();
    s.contains("Operation not permitted") || s.contains("EPERM") || s.contains("Permission denied")
}

/// Probes, loads and attaches every program in [`PROGRAMS`].
pub fn load(
    tracefs: &TraceFs,
    cgroup2_root: Option<&Path>,
    offsets: KernelOffsets,
    opts: SensorOptions,
) -> Result<Sensor, LoadError> {
    // Opened once; every cgroup program attaches to it.
    let cgroup_root =
        cgroup2_root.map(|p| std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display())));
    let btf = Btf::from_sys_fs().ok();
    let config = opts.config;
    let ring_bytes = opts.ring_bytes.max(4096).next_power_of_two();
    let mut ebpf = EbpfLoader::new()
        .btf(btf.as_ref())
        .override_global("OFFSETS", &OffsetsGlobal(offsets), true)
        .override_global("CONFIG", &ConfigGlobal(config), true)
        .map_max_entries("EVENTS", ring_bytes)
        // The direct-mapped profile table is 8 MiB of kernel memory: one entry when profiles
        // are off (the programs then never look into it).
        .map_max_entries(
            "PROFILE_TABLE",
            if config.features & FEATURE_PROFILE != 0 {
                PROFILE_TABLE_ENTRIES
            } else {
                1
            },
        )
        .load(OBJECT)
        .map_err(|e| {
            let msg = format!("{e:#}");
            if is_permission(&e) || is_permission(&msg) {
                LoadError::Permission(msg)
            } else {
                LoadError::Object(msg)
            }
        })?;

    let mut tails = Tails {
        handlers: take_program_array(&mut ebpf, "HANDLERS"),
        exec: take_program_array(&mut ebpf, "EXEC_TAIL"),
    };
    let mut statuses = Vec::new();
    for spec in PROGRAMS {
        let status = match attach(
            &mut ebpf,
            spec,
            tracefs,
            btf.as_ref(),
            cgroup_root.as_ref(),
            &mut tails,
        ) {
            Ok(()) => ProgramStatus {
                name: spec.name.into(),
                hook: spec.hook.describe(),
                loaded: true,
                reason: None,
            },
            Err(reason) => match spec.fallback {
                Some(fallback) => {
                    let fb = PROGRAMS.iter().find(|p| p.name == fallback).copied();
                    match fb.map(|fb| {
                        attach(
                            &mut ebpf,
                            &fb,
                            tracefs,
                            btf.as_ref(),
                            cgroup_root.as_ref(),
                            &mut tails,
                        )
                    }) {
                        Some(Ok(())) => ProgramStatus {
                            name: fallback.into(),
                            hook: fb.map(|f| f.hook.describe()).unwrap_or_default(),
                            loaded: true,
                            reason: Some(format!("fallback for {}: {reason}", spec.name)),
                        },
                        _ => ProgramStatus {
                            name: spec.name.into(),
                            hook: spec.hook.describe(),
                            loaded: false,
                            reason: Some(reason),
                        },
                    }
                }
                None => ProgramStatus {
                    name: spec.name.into(),
                    hook: spec.hook.describe(),
                    loaded: false,
                    reason: Some(reason),
                },
            },
        };
        statuses.push(status);
    }
    if !statuses.iter().any(|s| s.loaded) {
        let reasons: Vec<String> = statuses
            .iter()
            .map(|s| {
                format!(
                    "  {} ({}): {}",
                    s.name,
                    s.hook,
                    s.reason.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let text = reasons.join("\n");
        return Err(if is_permission(&text) {
            LoadError::Permission(text)
        } else {
            LoadError::NothingLoaded(text)
        });
    }

    let events = ebpf.take_map("EVENTS").ok_or(LoadError::Map {
        name: "EVENTS",
        message: "missing".into(),
    })?;
    let events = RingBuf::try_from(events).map_err(|e| LoadError::Map {
        name: "EVENTS",
        message: e.to_string(),
    })?;
    let counters = ebpf.take_map("COUNTERS").ok_or(LoadError::Map {
        name: "COUNTERS",
        message: "missing".into(),
    })?;
    let counters = PerCpuArray::try_from(counters).map_err(|e| LoadError::Map {
        name: "COUNTERS",
        message: e.to_string(),
    })?;
    // Optional: without it, collapsed counts of threads still alive at the end are lost (and
    // the summary says how many windows that was not known for).
    let windows = take_optional::<WindowsMap>(&mut ebpf, "OPEN_WINDOWS_BY_TID");
    let net_windows = take_optional::<NetWindowsMap>(&mut ebpf, "NET_WINDOWS_BY_TID");
    let dns_windows = take_optional::<DnsWindowsMap>(&mut ebpf, "DNS_WINDOWS_BY_TID");
    // Optional as well: without them, the counts of threads alive at the end are not written.
    let profile_table = take_optional::<ProfileTableMap>(&mut ebpf, "PROFILE_TABLE");
    let profiles = take_optional::<ProfilesMap>(&mut ebpf, "PROFILES");
    Ok(Sensor {
        _tails: tails,
        ebpf: Some(ebpf),
        events,
        counters,
        windows,
        net_windows,
        dns_windows,
        profile_table,
        profiles,
        programs: statuses,
    })
}

/// The program arrays programs are entered into instead of being attached.
struct Tails {
    /// `HANDLERS`: `sys_exit`'s handlers by syscall number.
    handlers: Result<ProgramArray<MapData>, String>,
    /// `EXEC_TAIL`: the exec program's standard-fd reader.
    exec: Result<ProgramArray<MapData>, String>,
}

impl Default for Tails {
    fn default() -> Self {
        Tails {
            handlers: Err("closed".into()),
            exec: Err("closed".into()),
        }
    }
}

/// Program array `name` of the object, or why it cannot be had.
fn take_program_array(ebpf: &mut Ebpf, name: &str) -> Result<ProgramArray<MapData>, String> {
    match ebpf.take_map(name).map(ProgramArray::try_from) {
        Some(Ok(a)) => Ok(a),
        Some(Err(e)) => Err(format!("program array {name}: {e}")),
        None => Err(format!("program array {name} is missing")),
    }
}

/// Map `name` of the object as a `T`, or `None` when it is missing or of another type.
fn take_optional<T: TryFrom<aya::maps::Map>>(ebpf: &mut Ebpf, name: &str) -> Option<T> {
    ebpf.take_map(name).and_then(|m| T::try_from(m).ok())
}

/// Probes, loads and attaches one program; the error is the reason, for the summary.
fn attach(
    ebpf: &mut Ebpf,
    spec: &ProgramSpec,
    tracefs: &TraceFs,
    btf: Option<&Btf>,
    cgroup_root: Option<&Result<std::fs::File, String>>,
    tails: &mut Tails,
) -> Result<(), String> {
    let program = ebpf
        .program_mut(spec.name)
        .ok_or_else(|| format!("program {} is not in the object", spec.name))?;
    match spec.hook {
        Hook::Tracepoint { category, name } => {
            if !matches!(
                aya::sys::is_program_supported(ProgramType::TracePoint),
                Ok(true)
            ) {
                return Err("kernel does not support tracepoint programs".into());
            }
            if !tracefs.has(category, name) {
                return Err(format!(
                    "tracepoint {category}/{name} does not exist on this kernel"
                ));
            }
            let tp: &mut TracePoint = program.try_into().map_err(|e| format!("{e}"))?;
            tp.load().map_err(|e| format!("load: {e:#}"))?;
            tp.attach(category, name)
                .map_err(|e| format!("attach: {e:#}"))?;
        }
        Hook::BtfTracepoint { name } => {
            let btf = btf.ok_or("kernel has no BTF (/sys/kernel/btf/vmlinux)")?;
            let tp: &mut BtfTracePoint = program.try_into().map_err(|e| format!("{e}"))?;
            tp.load(name, btf).map_err(|e| format!("load: {e:#}"))?;
            tp.attach().map_err(|e| format!("attach: {e:#}"))?;
        }
        Hook::CgroupSockAddr { .. } => {
            let root = match cgroup_root {
                Some(Ok(f)) => f,
                Some(Err(e)) => return Err(format!("cgroup v2 root: {e}")),
                None => return Err("no cgroup v2 hierarchy is mounted".into()),
            };
            if !matches!(
                aya::sys::is_program_supported(ProgramType::CgroupSockAddr),
                Ok(true)
            ) {
                return Err("kernel does not support cgroup sock_addr programs".into());
            }
            let p: &mut CgroupSockAddr = program.try_into().map_err(|e| format!("{e}"))?;
            p.load().map_err(|e| format!("load: {e:#}"))?;
            // aya attaches through bpf_link_create where the kernel has it; links always share the
            // hook with other programs (systemd's, a CNI's), and the kernel wants flags 0 there.
            p.attach(root, CgroupAttachMode::Single)
                .map_err(|e| format!("attach: {e:#} ({:?})", std::error::Error::source(&e)))?;
        }
        Hook::CgroupSkb { attach } => {
            let root = match cgroup_root {
                Some(Ok(f)) => f,
                Some(Err(e)) => return Err(format!("cgroup v2 root: {e}")),
                None => return Err("no cgroup v2 hierarchy is mounted".into()),
            };
            if !matches!(
                aya::sys::is_program_supported(ProgramType::CgroupSkb),
                Ok(true)
            ) {
                return Err("kernel does not support cgroup skb programs".into());
            }
            let kind = if attach == "ingress" {
                CgroupSkbAttachType::Ingress
            } else {
                CgroupSkbAttachType::Egress
            };
            let p: &mut CgroupSkb = program.try_into().map_err(|e| format!("{e}"))?;
            p.load().map_err(|e| format!("load: {e:#}"))?;
            p.attach(root, kind, CgroupAttachMode::Single)
                .map_err(|e| format!("attach: {e:#}"))?;
        }
        Hook::ExecTail => {
            let array = tails.exec.as_mut().map_err(|e| e.clone())?;
            // Tail calls stay within one program type: a tracepoint program, like the exec one.
            let tp: &mut TracePoint = program.try_into().map_err(|e| format!("{e}"))?;
            tp.load().map_err(|e| format!("load: {e:#}"))?;
            let fd = tp.fd().map_err(|e| format!("{e:#}"))?;
            array
                .set(0, fd, 0)
                .map_err(|e| format!("program array entry 0: {e:#}"))?;
        }
        Hook::SyscallHandler { syscalls } => {
            let array = tails.handlers.as_mut().map_err(|e| e.clone())?;
            // Tail calls stay within one program type and hook: the handlers are `tp_btf`
            // programs of `sys_exit`, like the dispatcher.
            let btf = btf.ok_or("kernel has no BTF (/sys/kernel/btf/vmlinux)")?;
            let tp: &mut BtfTracePoint = program.try_into().map_err(|e| format!("{e}"))?;
            tp.load("sys_exit", btf)
                .map_err(|e| format!("load: {e:#}"))?;
            let fd = tp.fd().map_err(|e| format!("{e:#}"))?;
            for nr in syscalls {
                array
                    .set(*nr, fd, 0)
                    .map_err(|e| format!("program array entry {nr}: {e:#}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use btf_rs::{Btf, Type};
    use needle_common::abi::{
        CallEvent, DnsEvent, DnsWindow, DnsWindows, EventHeader, ExecEvent, ExitEvent, ForkEvent,
        KernelOffsets, NetEvent, NetWindow, NetWindows, OpenWindow, OpenWindows, PathPrefix,
        ProbeConfig, ProfileEvent, RepeatEvent, StdioFd, SyscallEvent,
    };
    use object::{Object, ObjectSection};

    use super::OBJECT;

    /// The eBPF object's own BTF (emitted by bpf-linker from the kernel-side build).
    fn object_btf() -> Btf {
        let elf = object::File::parse(OBJECT).expect("eBPF object is ELF");
        let section = elf.section_by_name(".BTF").expect("eBPF object has .BTF");
        Btf::from_bytes(section.data().expect(".BTF data")).expect("parse .BTF")
    }

    fn check(btf: &Btf, name: &str, size: usize, fields: &[(&str, usize)]) {
        let types = btf
            .resolve_types_by_name(name)
            .unwrap_or_else(|_| panic!("{name} not in the eBPF object's BTF"));
        let Some(Type::Struct(s)) = types.into_iter().find(|t| matches!(t, Type::Struct(_))) else {
            panic!("{name} is not a struct in BTF");
        };
        assert_eq!(s.size(), size, "size of {name}: kernel side vs ABI crate");
        for (field, offset) in fields {
            let m = s
                .members
                .iter()
                .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == *field))
                .unwrap_or_else(|| panic!("{name}.{field} missing on the kernel side"));
            assert_eq!(
                m.bit_offset() as usize,
                offset * 8,
                "offset of {name}.{field}"
            );
        }
        assert_eq!(
            s.members.len(),
            fields.len(),
            "{name}: field count differs (update this test)"
        );
    }

    /// Tetragon's alignchecker idea: the layouts the eBPF programs were compiled with must be
    /// the ones the decoder reads.
    #[test]
    fn kernel_side_layouts_match_the_abi_crate() {
        let btf = object_btf();
        macro_rules! fields {
            ($t:ty: $($f:ident),* $(,)?) => { &[$((stringify!($f), offset_of!($t, $f))),*] };
        }
        check(
            &btf,
            "EventHeader",
            size_of::<EventHeader>(),
            fields!(EventHeader: kind, cpu, ktime_ns, cgroup_id, pid, tgid, ppid, uid, gid, shape, start_ns, parent_start_ns, comm),
        );
        check(
            &btf,
            "CallEvent",
            size_of::<CallEvent>(),
            fields!(CallEvent: header, syscall, flags, ret, args, dev, path_len, path2_len, path3_len, depth, window, ino, data),
        );
        check(
            &btf,
            "ProfileEvent",
            size_of::<ProfileEvent>(),
            fields!(ProfileEvent: header, since_ns, counts),
        );
        // ProfileState and ProfileSlot are not in the object's BTF (map values only): the ABI
        // crate asserts that they are laid out as ProfileEvent (after an owner word).
        check(
            &btf,
            "SyscallEvent",
            size_of::<SyscallEvent>(),
            fields!(SyscallEvent: header, syscall, _pad, ret),
        );
        check(
            &btf,
            "DnsEvent",
            size_of::<DnsEvent>(),
            fields!(DnsEvent: header, family, protocol, direction, src_port, dst_port, src_addr, dst_addr, payload_len, captured, window, _pad, payload),
        );
        check(
            &btf,
            "PathPrefix",
            size_of::<PathPrefix>(),
            fields!(PathPrefix: depth, lens, names, text, text_len, _pad),
        );
        check(
            &btf,
            "ExecEvent",
            size_of::<ExecEvent>(),
            fields!(ExecEvent: header, old_pid, flags, filename_len, args_len, exe_flags, exe_nlink, exe_dev, _pad, exe_ino, exe_size, exe_mtime_sec, exe_dname, cap_effective, cap_permitted, stdio, cwd_flags, cwd_len, filename, args, stdio_paths, cwd),
        );
        check(
            &btf,
            "StdioFd",
            size_of::<StdioFd>(),
            fields!(StdioFd: flags, path_flags, mode, family, sock_type, path_len, rdev, ports, ino, addr),
        );
        check(
            &btf,
            "ForkEvent",
            size_of::<ForkEvent>(),
            fields!(ForkEvent: header, parent_pid, _pad),
        );
        check(
            &btf,
            "NetEvent",
            size_of::<NetEvent>(),
            fields!(NetEvent: header, family, dst_port, protocol, dst_addr, window, _pad),
        );
        check(
            &btf,
            "ExitEvent",
            size_of::<ExitEvent>(),
            fields!(ExitEvent: header, exit_code, flags),
        );
        check(
            &btf,
            "KernelOffsets",
            size_of::<KernelOffsets>(),
            fields!(KernelOffsets: task_real_parent, task_tgid, task_pid, task_mm, task_exit_code, task_group_leader, task_start_boottime, mm_arg_start, mm_arg_end, mm_exe_file, file_inode, file_dentry, dentry_name, inode_ino, inode_nlink, inode_size, inode_mtime_sec, inode_sb, sb_dev, tp_exec_filename, tp_exec_old_pid, tp_exit_group_dead, regs_nr, regs_args, task_files, files_fdt, fdt_fd, fdt_max_fds, file_vfsmount, file_private_data, dentry_parent, vfsmount_root, mount_mnt, mount_parent, mount_mountpoint, task_fs, fs_root_mnt, fs_root_dentry, task_thread_pid, pid_level, pid_numbers, upid_size, socket_sk, socket_type, skc_family, skc_num, skc_dport, skc_rcv_saddr, skc_daddr, skc_v6_rcv_saddr, skc_v6_daddr, task_ti_status, skc_cookie, inode_mode, inode_rdev, task_cred, cred_cap_effective, cred_cap_permitted, fs_pwd_mnt, fs_pwd_dentry, _pad),
        );
        check(
            &btf,
            "ProbeConfig",
            size_of::<ProbeConfig>(),
            fields!(ProbeConfig: wakeup_bytes, self_tgid, features, profile_interval_ns, collapse_window_ns, dns_hash_seed, prefixes),
        );
        check(
            &btf,
            "RepeatEvent",
            size_of::<RepeatEvent>(),
            fields!(RepeatEvent: header, window, count, first_ns, last_ns, failed, last_err),
        );
        check(
            &btf,
            "OpenWindows",
            size_of::<OpenWindows>(),
            fields!(OpenWindows: windows, next, _pad),
        );
        check(
            &btf,
            "OpenWindow",
            size_of::<OpenWindow>(),
            fields!(OpenWindow: ino, sb, first_ns, last_ns, flags, count, state, _pad),
        );
        check(
            &btf,
            "NetWindows",
            size_of::<NetWindows>(),
            fields!(NetWindows: windows, next, pending, pending_cookie),
        );
        check(
            &btf,
            "NetWindow",
            size_of::<NetWindow>(),
            fields!(NetWindow: addr, first_ns, last_ns, kind, family, port, protocol, count, failed, last_err, state, _pad),
        );
        check(
            &btf,
            "DnsWindows",
            size_of::<DnsWindows>(),
            fields!(DnsWindows: queries, answers, next_query, next_answer),
        );
        check(
            &btf,
            "DnsWindow",
            size_of::<DnsWindow>(),
            fields!(DnsWindow: hash, addr, first_ns, last_ns, count, state, port, len, family, _pad, _pad2),
        );
    }
}
