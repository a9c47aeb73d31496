//! [`Statistics`]: what the kernel counted on a capture socket.
//!
//! The kernel counts, per packet socket, the frames that passed the filter
//! and those it dropped because the daemon had not read the ring (or the
//! receive buffer) in time (`PACKET_STATISTICS`). Reading the counters
//! resets them, so the socket keeps running totals; this module owns that
//! arithmetic. Pure: the socket reads, this adds.

/// Running totals of one capture socket (or several, added up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statistics {
    /// Frames that passed the filter, dropped ones included.
    pub frames: u64,
    /// Frames the kernel dropped: the ring (or receive buffer) was full.
    pub drops: u64,
    /// Frames for another host (`PACKET_OTHERHOST`) that reached user space
    /// anyway and were skipped there (the daemon's filter drops them in the
    /// kernel, so this stays 0 unless a filter lets them through).
    pub other_host: u64,
}

impl Statistics {
    /// Adds one `PACKET_STATISTICS` reading (`tp_packets`, `tp_drops`: the
    /// counts since the previous reading). Saturates instead of wrapping.
    pub fn add_reading(&mut self, packets: u32, drops: u32) {
        self.frames = self.frames.saturating_add(u64::from(packets));
        self.drops = self.drops.saturating_add(u64::from(drops));
    }

    /// The sum of two totals (e.g. over every capture socket).
    pub fn plus(self, other: Statistics) -> Statistics {
        Statistics {
            frames: self.frames.saturating_add(other.frames),
            drops: self.drops.saturating_add(other.drops),
            other_host: self.other_host.saturating_add(other.other_host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_accumulate_because_the_kernel_resets_them() {
        let mut s = Statistics::default();
        s.add_reading(600, 88);
        s.add_reading(10, 0);
        assert_eq!(
            s,
            Statistics {
                frames: 610,
                drops: 88,
                other_host: 0
            }
        );
        let t = s.plus(Statistics {
            frames: 1,
            drops: 2,
            other_host: 3,
        });
        assert_eq!((t.frames, t.drops, t.other_host), (611, 90, 3));
    }

    #[test]
    fn totals_saturate() {
        let mut s = Statistics {
            frames: u64::MAX - 1,
            drops: u64::MAX,
            other_host: 0,
        };
        s.add_reading(u32::MAX, 1);
        assert_eq!((s.frames, s.drops), (u64::MAX, u64::MAX));
    }
}
