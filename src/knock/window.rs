//! Per-source windows of knock symbols, for the modes whose knocks carry data
//! (encoded and authenticated sequences).
//!
//! A *symbol* is a small number knocked as a port of a range: the symbol at
//! position `i` of a sequence with alphabet size `S` is knocked on
//! `base + (i % 2) * S + value`. Alternating halves mean two consecutive
//! knocks of a real sequence are never the same port, so a packet to the port
//! just knocked is always a duplicate (a TCP SYN retransmit, a duplicated
//! datagram) and is ignored, even when the data repeats a symbol.
//!
//! The table keeps, per (source, profile), the last symbols in arrival order.
//! A sequence starts on the lower half only; a symbol on the same half as the
//! one before cannot continue a sequence, so the window restarts. When the
//! window holds a whole sequence the owner checks it; on failure it slides
//! (drops the two oldest symbols: sliding by one would leave a window that
//! starts on the upper half, which no sequence does). Entries live in the same
//! fixed-capacity [`ProgressTable`] as static sequences, with progress = the
//! number of symbols held, so a flood of first symbols never evicts a source
//! that is further along. Pure, no allocation after construction.

use core::net::IpAddr;

use super::table::{Insert, Key, Progress, ProgressTable};
use crate::time::Millis;

/// Most symbols in one sequence of a window mode.
pub const MAX_WINDOW: usize = 32;
static_assertions::const_assert!(MAX_WINDOW < u8::MAX as usize);

/// How symbols map onto a port range: `base .. base + 2 * width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alphabet {
    /// First port of the range.
    pub base: u16,
    /// Symbols per half (2..=256).
    pub width: u16,
}

impl Alphabet {
    /// Ports in the range (`2 * width`).
    pub const fn span(self) -> u32 {
        2 * self.width as u32
    }

    /// Last port of the range (the config layer checks it fits in a `u16`).
    pub const fn last(self) -> u32 {
        self.base as u32 + self.span() - 1
    }

    /// True when `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        port >= self.base && u32::from(port) <= self.last()
    }

    /// The (half, value) a port stands for, if it is in the range.
    pub fn symbol(self, port: u16) -> Option<(u8, u8)> {
        if !self.contains(port) {
            return None;
        }
        let off = port - self.base;
        let half = u8::from(off >= self.width);
        Some((half, (off % self.width) as u8))
    }

    /// The port knocked for `value` at position `index` of a sequence.
    pub fn port(self, index: usize, value: u8) -> u16 {
        let half = (index % 2) as u16;
        self.base
            .wrapping_add(half * self.width)
            .wrapping_add(u16::from(value))
    }
}

/// The symbols one source has knocked on one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    syms: [u8; MAX_WINDOW],
    len: u8,
    last_port: u16,
    last: Millis,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            syms: [0; MAX_WINDOW],
            len: 0,
            last_port: 0,
            last: Millis(0),
        }
    }
}

impl Window {
    fn first(value: u8, port: u16, now: Millis) -> Window {
        let mut w = Window {
            len: 1,
            last_port: port,
            last: now,
            ..Window::default()
        };
        w.syms[0] = value;
        w
    }

    /// The symbols held, oldest first.
    pub fn symbols(&self) -> &[u8] {
        &self.syms[..usize::from(self.len)]
    }
}

/// What one knock did to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The port just knocked, again: ignored.
    Duplicate,
    /// An upper-half symbol with no sequence begun: ignored.
    NotStarted,
    /// A first symbol not stored: the table is full of sources further along.
    TableFull,
    /// Stored; the window is not full yet.
    Partial,
    /// The window holds a whole sequence: check it, then [`WindowTable::remove`]
    /// on success or [`WindowTable::slide`] on failure.
    Ready(Window),
}

/// Window counters (per mode), for `postern status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowCounters {
    /// Symbols stored.
    pub symbols: u64,
    /// Duplicates ignored.
    pub duplicates: u64,
    /// Windows restarted by a symbol on the wrong half.
    pub restarts: u64,
    /// Upper-half symbols with nothing begun (ignored).
    pub not_started: u64,
    /// Windows dropped after `timeout` without a knock.
    pub timeouts: u64,
    /// First symbols that evicted a first-symbol entry.
    pub evictions: u64,
    /// First symbols dropped: the table was full of sources further along.
    pub dropped_table_full: u64,
}

/// Fixed-capacity windows keyed by (source, profile slot).
pub struct WindowTable {
    table: Box<ProgressTable<Window>>,
    counters: WindowCounters,
}

impl Default for WindowTable {
    fn default() -> Self {
        WindowTable {
            table: ProgressTable::boxed(),
            counters: WindowCounters::default(),
        }
    }
}

impl WindowTable {
    /// Windows held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no window is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Counters so far.
    pub fn counters(&self) -> WindowCounters {
        self.counters
    }

    /// The symbols `src` holds on `slot`.
    pub fn window_of(&self, src: IpAddr, slot: u8) -> Option<Window> {
        self.table
            .get(&Key {
                src,
                sequence: slot,
            })
            .map(|p| p.data)
    }

    /// Feeds one knock on `port` (symbol `half`/`value` of `alphabet`) from the
    /// source in `key`; `need` is the sequence length, `timeout_ms` the most
    /// time between two knocks, `timeout_of` that of any slot (for eviction).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        now: Millis,
        key: Key,
        port: u16,
        (half, value): (u8, u8),
        need: usize,
        timeout_ms: u64,
        timeout_of: &impl Fn(u8) -> u64,
    ) -> Push {
        let mut current = self.table.get(&key);
        if let Some(p) = current {
            if now.since(p.data.last) > timeout_ms {
                self.table.remove(&key);
                self.counters.timeouts += 1;
                current = None;
            }
        }
        if let Some(p) = current {
            let w = p.data;
            if w.last_port == port {
                self.counters.duplicates += 1;
                return Push::Duplicate;
            }
            let len = usize::from(w.len);
            if usize::from(half) == len % 2 && len < need && len < MAX_WINDOW {
                let mut w = w;
                w.syms[len] = value;
                w.len += 1;
                w.last_port = port;
                w.last = now;
                if let Some(d) = self.table.data_mut(&key) {
                    *d = w;
                }
                self.table.set_matched(&key, w.len);
                self.counters.symbols += 1;
                return if usize::from(w.len) == need {
                    Push::Ready(w)
                } else {
                    Push::Partial
                };
            }
            self.counters.restarts += 1;
            self.table.remove(&key);
        }
        if half != 0 {
            self.counters.not_started += 1;
            return Push::NotStarted;
        }
        let w = Window::first(value, port, now);
        let expired =
            |k: &Key, p: &Progress<Window>| now.since(p.data.last) > timeout_of(k.sequence);
        match self.table.insert_first_with(key, now, w, expired) {
            Insert::Stored => {}
            Insert::StoredAfterEviction => self.counters.evictions += 1,
            Insert::DroppedFull => {
                self.counters.dropped_table_full += 1;
                return Push::TableFull;
            }
        }
        self.counters.symbols += 1;
        if need == 1 {
            Push::Ready(w)
        } else {
            Push::Partial
        }
    }

    /// After a failed check: drops the two oldest symbols (the window then
    /// starts on the lower half again).
    pub fn slide(&mut self, key: &Key) {
        let Some(w) = self.table.data_mut(key) else {
            return;
        };
        let len = usize::from(w.len);
        if len <= 2 {
            self.table.remove(key);
            return;
        }
        w.syms.copy_within(2..len, 0);
        w.len -= 2;
        let n = w.len;
        self.table.set_matched(key, n);
    }

    /// Forgets `key`'s window (after a success).
    pub fn remove(&mut self, key: &Key) {
        self.table.remove(key);
    }

    /// Drops windows idle longer than their slot's timeout.
    pub fn purge(&mut self, now: Millis, timeout_of: &impl Fn(u8) -> u64) {
        let expired =
            |k: &Key, p: &Progress<Window>| now.since(p.data.last) > timeout_of(k.sequence);
        let n = self.table.purge_expired(&expired);
        self.counters.timeouts += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knock::KNOCK_TABLE_CAPACITY;
    use core::net::Ipv4Addr;

    const AB: Alphabet = Alphabet {
        base: 40000,
        width: 10,
    };

    fn key(n: u32) -> Key {
        Key {
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)),
            sequence: 0,
        }
    }

    fn feed(t: &mut WindowTable, now: u64, k: Key, index: usize, value: u8, need: usize) -> Push {
        let port = AB.port(index, value);
        let sym = AB.symbol(port).unwrap();
        t.push(Millis(now), k, port, sym, need, 5_000, &|_| 5_000)
    }

    #[test]
    fn alphabet_round_trip() {
        assert_eq!(AB.port(0, 3), 40003);
        assert_eq!(AB.port(1, 3), 40013);
        assert_eq!(AB.symbol(40013), Some((1, 3)));
        assert_eq!(AB.symbol(40020), None);
        assert_eq!(AB.symbol(39999), None);
        assert_eq!(AB.last(), 40019);
    }

    #[test]
    fn repeated_values_are_not_duplicates_but_repeated_ports_are() {
        let mut t = WindowTable::default();
        let k = key(1);
        assert_eq!(feed(&mut t, 0, k, 0, 2, 4), Push::Partial);
        assert_eq!(feed(&mut t, 1, k, 0, 2, 4), Push::Duplicate);
        assert_eq!(feed(&mut t, 2, k, 1, 2, 4), Push::Partial);
        assert_eq!(feed(&mut t, 3, k, 2, 2, 4), Push::Partial);
        let Push::Ready(w) = feed(&mut t, 4, k, 3, 2, 4) else {
            panic!("full")
        };
        assert_eq!(w.symbols(), [2, 2, 2, 2]);
        assert_eq!(t.counters().duplicates, 1);
    }

    #[test]
    fn wrong_half_restarts_and_upper_half_never_starts() {
        let mut t = WindowTable::default();
        let k = key(1);
        assert_eq!(feed(&mut t, 0, k, 1, 5, 4), Push::NotStarted);
        assert!(t.is_empty());
        feed(&mut t, 1, k, 0, 5, 4);
        assert_eq!(feed(&mut t, 2, k, 0, 6, 4), Push::Partial, "restarted");
        assert_eq!(t.window_of(k.src, 0).unwrap().symbols(), [6]);
        assert_eq!(t.counters().restarts, 1);
    }

    #[test]
    fn slide_keeps_alternation_and_timeout_forgets() {
        let mut t = WindowTable::default();
        let k = key(1);
        for (i, v) in [1, 2, 3, 4].into_iter().enumerate() {
            feed(&mut t, i as u64, k, i, v, 4);
        }
        t.slide(&k);
        assert_eq!(t.window_of(k.src, 0).unwrap().symbols(), [3, 4]);
        assert_eq!(feed(&mut t, 10, k, 2, 7, 4), Push::Partial);
        // Idle longer than the timeout: a new window.
        assert_eq!(feed(&mut t, 6_000, k, 3, 8, 4), Push::NotStarted);
        assert_eq!(t.counters().timeouts, 1);
    }

    #[test]
    fn advanced_windows_survive_a_first_symbol_flood() {
        let mut t = WindowTable::default();
        let alice = key(0);
        feed(&mut t, 0, alice, 0, 1, 8);
        feed(&mut t, 1, alice, 1, 1, 8);
        for i in 1..3 * KNOCK_TABLE_CAPACITY as u32 {
            feed(&mut t, 2, key(i), 0, (i % 10) as u8, 8);
        }
        assert_eq!(t.window_of(alice.src, 0).unwrap().symbols(), [1, 1]);
        assert_eq!(t.len(), KNOCK_TABLE_CAPACITY);
    }
}
