//! Maps and globals shared by every program.

use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf};
use needle_common::abi::{
    COUNTER_SLOTS, CallEvent, DnsEvent, DnsWindows, EventHeader, ExecEvent, KernelOffsets,
    NetWindows, OpenWindows, PROFILE_SLOTS, PROFILE_TABLE_ENTRIES, ProbeConfig, ProfileEvent,
    ProfileSlot, ProfileState, STDIO_FDS,
};

/// All events, from every CPU. User space sizes it at load time (a multiple of the CPU count).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Per-CPU counters: losses per kind, then [`needle_common::abi::Counter`] slots.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Syscall-exit handlers, indexed by syscall number: `sys_exit` tail-calls the one for the
/// syscall that just returned; numbers without an entry cost one failed tail call.
#[map]
pub static HANDLERS: ProgramArray = ProgramArray::with_max_entries(PROFILE_SLOTS as u32, 0);

/// Per-CPU room to build a variable-length [`CallEvent`] before it is copied into the ring.
#[map]
pub static CALL_SCRATCH: PerCpuArray<CallEvent> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU room to build an exec record across the tail calls that fill its standard fds.
#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Where the standard-fd walk of the exec being built stands (per CPU, beside
/// [`EXEC_SCRATCH`]).
#[repr(C)]
pub struct StdioProgress {
    /// The next fd to describe.
    pub next: u32,
    pub _pad: u32,
    /// `struct file *` of fds 0, 1, 2 (0: closed), read once.
    pub files: [u64; STDIO_FDS],
}

/// Per-CPU [`StdioProgress`].
#[map]
pub static STDIO_PROGRESS: PerCpuArray<StdioProgress> = PerCpuArray::with_max_entries(1, 0);

/// `sched_process_exec_stdio` at index 0: `sched_process_exec` tail-calls it, and it calls
/// itself, once per standard fd. Filled by user space.
#[map]
pub static EXEC_TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Per-CPU room to build a profile record.
#[map]
pub static PROFILE_SCRATCH: PerCpuArray<ProfileEvent> = PerCpuArray::with_max_entries(1, 0);

/// A zeroed profile, the template for new entries and for resets (never written).
#[map]
pub static PROFILE_ZERO: PerCpuArray<ProfileState> = PerCpuArray::with_max_entries(1, 0);

/// Syscall counts per thread, direct-mapped by thread id. The verifier inlines an array lookup,
/// where a hash lookup by tid cost ~40 ns on every syscall — as much again as the rest of
/// `sys_exit`. A thread takes the entry of its tid when it is free and gives it back at exit; a
/// thread whose entry another live thread holds counts in [`PROFILES`] instead.
#[map]
pub static PROFILE_TABLE: Array<ProfileSlot> = Array::with_max_entries(PROFILE_TABLE_ENTRIES, 0);

/// Syscall counts of threads whose [`PROFILE_TABLE`] entry was taken, by thread id, allocated
/// on the thread's first counted syscall and removed when it exits (`BPF_F_NO_PREALLOC`:
/// memory follows the number of such threads).
#[map]
pub static PROFILES: HashMap<u32, ProfileState> = HashMap::with_max_entries(16384, 1);

/// Collapse windows of repeated opens per thread id, created on a thread's first collapsible
/// open and removed when it exits (`BPF_F_NO_PREALLOC`). User space reads what is left at the
/// end of a capture.
#[map]
pub static OPEN_WINDOWS_BY_TID: HashMap<u32, OpenWindows> = HashMap::with_max_entries(16384, 1);

/// Zeroed windows, the template for new entries (never written).
#[map]
pub static WINDOWS_ZERO: PerCpuArray<OpenWindows> = PerCpuArray::with_max_entries(1, 0);

/// Collapse windows of repeated connections per thread id (like [`OPEN_WINDOWS_BY_TID`]):
/// created on a thread's first connect, UDP send or accept, removed when it exits.
#[map]
pub static NET_WINDOWS_BY_TID: HashMap<u32, NetWindows> = HashMap::with_max_entries(16384, 1);

/// Zeroed network windows, the template for new entries (never written).
#[map]
pub static NET_WINDOWS_ZERO: PerCpuArray<NetWindows> = PerCpuArray::with_max_entries(1, 0);

/// DNS collapse windows per thread id (the socket owner's): created by a thread's first UDP
/// query, removed when it exits (`BPF_F_NO_PREALLOC`). An answer only uses the windows its
/// thread already has, so an answer to a thread that is gone creates nothing.
#[map]
pub static DNS_WINDOWS_BY_TID: HashMap<u32, DnsWindows> = HashMap::with_max_entries(16384, 1);

/// Zeroed DNS windows, the template for new entries (never written).
#[map]
pub static DNS_WINDOWS_ZERO: PerCpuArray<DnsWindows> = PerCpuArray::with_max_entries(1, 0);

/// Who owns a socket that talks to port 53, by socket cookie: the header the sock_addr hook
/// filled at connect/sendmsg time (the DNS packet hooks run where the task is not known).
#[map]
pub static DNS_OWNERS: LruHashMap<u64, EventHeader> = LruHashMap::with_max_entries(8192, 0);

/// Per-CPU room to build a DNS record.
#[map]
pub static DNS_SCRATCH: PerCpuArray<DnsEvent> = PerCpuArray::with_max_entries(1, 0);

/// Kernel struct and tracepoint offsets, filled in by user space before load.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::zeroed();

/// Run-time settings, filled in by user space before load.
#[unsafe(no_mangle)]
pub static CONFIG: ProbeConfig = ProbeConfig::zeroed();

/// One of each record struct, never read: it makes bpf-linker emit their BTF, so capture's
/// tests can check the layouts the kernel side was compiled with against the ABI crate.
#[repr(C)]
pub struct AbiLayouts {
    pub header: needle_common::abi::EventHeader,
    pub exec: needle_common::abi::ExecEvent,
    pub fork: needle_common::abi::ForkEvent,
    pub exit: needle_common::abi::ExitEvent,
    pub net: needle_common::abi::NetEvent,
    pub call: needle_common::abi::CallEvent,
    pub profile: needle_common::abi::ProfileEvent,
    pub syscall: needle_common::abi::SyscallEvent,
    pub dns: needle_common::abi::DnsEvent,
    pub repeat: needle_common::abi::RepeatEvent,
    pub windows: needle_common::abi::OpenWindows,
    pub net_windows: needle_common::abi::NetWindows,
    pub dns_windows: needle_common::abi::DnsWindows,
}

#[unsafe(no_mangle)]
#[used]
pub static ABI_LAYOUTS: AbiLayouts = unsafe { core::mem::zeroed() };

/// The offsets as loaded. The pointer goes through a volatile read so that the compiler cannot
/// fold the zero initializer into the code; fields are then read where they are used (the
/// structs are too large to copy onto the 512-byte eBPF stack).
#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    let p: *const KernelOffsets = &OFFSETS;
    // SAFETY: reads a local pointer; the result points at the global, which lives forever.
    unsafe { &*core::ptr::read_volatile(&p) }
}

/// The settings as loaded (see [`offsets`]).
#[inline(always)]
pub fn config() -> &'static ProbeConfig {
    let p: *const ProbeConfig = &CONFIG;
    // SAFETY: as above.
    unsafe { &*core::ptr::read_volatile(&p) }
}
