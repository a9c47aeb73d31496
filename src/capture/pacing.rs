//! [`Pacer`]: fewer wake-ups under a flood, none of the delay otherwise.
//!
//! Waking the daemon costs more than handling a packet (a context switch
//! each way, `poll`, an empty `recvmsg`): at 20,000 spoofed packets a second
//! that is one wake-up per packet. The pacer watches how many frames the loop
//! drains per window; above a rate no person knocking reaches, it asks the
//! loop to pause briefly after each drain, so the next drain finds a batch.
//! A knock under a flood is then handled at most [`COALESCE`] later; at
//! normal rates nothing waits.
//!
//! Pure: time is passed in, the caller sleeps.

use core::time::Duration;

use crate::time::Millis;

/// The window over which the packet rate is counted.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Frames per [`WINDOW`] above which drains are coalesced (2,000 a second:
/// far above any knocking client, far below a flood).
pub const BUSY_FRAMES: u32 = 200;
/// The pause after a drain while busy: the most a packet waits for it.
pub const COALESCE: Duration = Duration::from_millis(1);

/// Decides whether the event loop should pause after a drain.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    window_start: Millis,
    frames: u32,
    busy: bool,
}

impl Pacer {
    /// A pacer that starts idle.
    pub fn new() -> Pacer {
        Pacer::default()
    }

    /// Records that a drain at `now` read `frames` frames; returns the pause
    /// to take before polling again (`None`: poll at once).
    ///
    /// Busy is decided per window: a window with more than [`BUSY_FRAMES`]
    /// frames makes the loop busy at once and for the whole next window;
    /// a quiet window makes it idle again.
    pub fn after_drain(&mut self, now: Millis, frames: usize) -> Option<Duration> {
        if now.since(self.window_start) >= WINDOW.as_millis() as u64 {
            self.busy = self.frames > BUSY_FRAMES;
            self.window_start = now;
            self.frames = 0;
        }
        self.frames = self
            .frames
            .saturating_add(u32::try_from(frames).unwrap_or(u32::MAX));
        if self.frames > BUSY_FRAMES {
            self.busy = true;
        }
        self.busy.then_some(COALESCE)
    }

    /// Whether drains are being coalesced.
    pub fn is_busy(&self) -> bool {
        self.busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_knock_sequence_never_waits() {
        let mut p = Pacer::new();
        // Three knocks within a millisecond, each drained alone, then quiet.
        for t in [1000, 1000, 1001] {
            assert_eq!(p.after_drain(Millis(t), 1), None);
        }
        assert_eq!(p.after_drain(Millis(5000), 1), None);
    }

    #[test]
    fn a_flood_is_coalesced_then_released() {
        let mut p = Pacer::new();
        let mut t = 10_000;
        let mut waits = 0;
        // 20 frames per millisecond for 300 ms.
        for _ in 0..300 {
            if p.after_drain(Millis(t), 20).is_some() {
                waits += 1;
            }
            t += 1;
        }
        assert!(p.is_busy());
        assert!(waits >= 290, "coalesced {waits} of 300 drains");
        // Two quiet windows later, no more pauses.
        t += 150;
        p.after_drain(Millis(t), 1);
        t += 150;
        assert_eq!(p.after_drain(Millis(t), 1), None);
        assert!(!p.is_busy());
    }

    #[test]
    fn the_rate_threshold_is_per_window() {
        let mut p = Pacer::new();
        // BUSY_FRAMES spread evenly over one window: not busy.
        let per_ms = BUSY_FRAMES as usize / 100;
        for t in 0..99 {
            assert_eq!(p.after_drain(Millis(1_000 + t), per_ms), None);
        }
        // A burst above it in a window: busy at once.
        assert_eq!(
            p.after_drain(Millis(1_200), BUSY_FRAMES as usize + 1),
            Some(COALESCE)
        );
    }

    #[test]
    fn huge_counts_saturate() {
        let mut p = Pacer::new();
        assert_eq!(p.after_drain(Millis(0), usize::MAX), Some(COALESCE));
        assert_eq!(p.after_drain(Millis(1), usize::MAX), Some(COALESCE));
    }
}
