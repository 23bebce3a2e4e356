//! Maps and globals shared by every program.

use aya_ebpf::macros::map;
use aya_ebpf::maps::{PerCpuArray, RingBuf};
use needle_common::abi::{KernelOffsets, ProbeConfig, COUNTER_SLOTS};

/// All events, from every CPU. User space sizes it at load time (a multiple of the CPU count).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Per-CPU counters: losses per kind, then [`needle_common::abi::Counter`] slots.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

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
}

#[unsafe(no_mangle)]
#[used]
pub static ABI_LAYOUTS: AbiLayouts = unsafe { core::mem::zeroed() };

/// The offsets as loaded (volatile: the compiler must not fold the zero initializer).
#[inline(always)]
pub fn offsets() -> KernelOffsets {
    // SAFETY: a plain read of a global that the program never writes.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

/// The settings as loaded.
#[inline(always)]
pub fn config() -> ProbeConfig {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&CONFIG) }
}
