//! Time as plain data: monotonic [`Millis`] and the pair [`Now`] (monotonic + wall clock).
//!
//! The core never reads a clock: the daemon reads the clocks once per event
//! and passes them in. Tests and fuzzers make up any time they like.

use core::ops::{Add, Sub};
use core::time::Duration;

/// Milliseconds on a monotonic clock (since an arbitrary origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// Milliseconds elapsed since `earlier` (zero if `earlier` is later).
    pub const fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Reads `CLOCK_MONOTONIC`. For the edges only; the core takes time as input.
    pub fn now_monotonic() -> Millis {
        // `timespec` has private padding fields on 32-bit musl (time64), so no
        // struct literal: nix builds it. CLOCK_MONOTONIC always exists.
        let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
        Millis(ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000)
    }
}

/// Both clocks at one instant: monotonic time for timeouts, wall-clock time for
/// SPA timestamps (which come from other machines' clocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// `CLOCK_MONOTONIC` (on Linux it counts from boot, which the SPA replay guard uses).
    pub mono: Millis,
    /// Wall-clock unix seconds (`CLOCK_REALTIME`).
    pub unix: u64,
}

impl Now {
    /// Reads both clocks. For the edges only.
    pub fn read() -> Now {
        Now {
            mono: Millis::now_monotonic(),
            unix: unix_now(),
        }
    }
}

/// Reads `CLOCK_REALTIME` in whole seconds (0 before 1970). For the edges only.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(d.as_millis() as u64))
    }
}

impl Sub<Duration> for Millis {
    type Output = Millis;
    fn sub(self, d: Duration) -> Millis {
        Millis(self.0.saturating_sub(d.as_millis() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Millis(5).since(Millis(7)), 0);
        assert_eq!(Millis(7).since(Millis(5)), 2);
        assert_eq!(Millis(1) - Duration::from_secs(1), Millis(0));
        assert_eq!(Millis(1) + Duration::from_millis(1500), Millis(1501));
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = Millis::now_monotonic();
        let b = Millis::now_monotonic();
        assert!(b >= a);
        assert!(a.0 > 0);
    }
}
