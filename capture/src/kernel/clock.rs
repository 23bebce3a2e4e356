//! Boot-time nanoseconds (what the kernel stamps) to wall-clock nanoseconds (what people read).

use rustix::time::{ClockId, clock_gettime};

fn ns(ts: rustix::time::Timespec) -> i64 {
    ts.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec)
}

/// `CLOCK_REALTIME − CLOCK_BOOTTIME`, measured once at start-up.
///
/// Both clocks are read back to back, three times, and the pair with the smallest gap is kept,
/// so the error is bounded by one clock read (tens of nanoseconds). Later NTP steps of the wall
/// clock are not followed: rows stay ordered and comparable within a capture.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    offset_ns: i64,
}

impl BootClock {
    /// Measures the offset now.
    pub fn measure() -> BootClock {
        let mut best = (i64::MAX, 0);
        for _ in 0..3 {
            let b0 = ns(clock_gettime(ClockId::Boottime));
            let real = ns(clock_gettime(ClockId::Realtime));
            let b1 = ns(clock_gettime(ClockId::Boottime));
            let gap = b1 - b0;
            if gap < best.0 {
                best = (gap, real - (b0 + gap / 2));
            }
        }
        BootClock { offset_ns: best.1 }
    }

    /// Wall-clock ns since the Unix epoch for a boot-time stamp.
    pub fn wall_ns(&self, boot_ns: u64) -> i64 {
        self.offset_ns
            .saturating_add(i64::try_from(boot_ns).unwrap_or(i64::MAX))
    }

    /// Current boot-time ns.
    pub fn now_boot_ns() -> u64 {
        u64::try_from(ns(clock_gettime(ClockId::Boottime))).unwrap_or(0)
    }

    /// Current wall-clock ns.
    pub fn now_wall_ns() -> i64 {
        ns(clock_gettime(ClockId::Realtime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converted_boot_time_is_close_to_wall_time() {
        let clock = BootClock::measure();
        let wall = clock.wall_ns(BootClock::now_boot_ns());
        let real = BootClock::now_wall_ns();
        assert!(
            (real - wall).abs() < 50_000_000,
            "off by {} ns",
            real - wall
        );
    }
}
