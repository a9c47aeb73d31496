//! Time-derived (TOTP) knock sequences: the ports change every `period`.
//!
//! The sequence for time step `t = unix_time / period` is derived from
//! `HMAC-SHA256(key, "postern totp v1" || t as u64 big-endian || block)`: the
//! range `base .. base + range` is cut into `length` bands of
//! `range / length` ports, and knock `i` is in band `i`, at the offset given
//! by bytes `4i .. 4i + 4` of the MACs (as a big-endian `u32`, modulo the
//! band size). Knocks in different bands are never equal, so a repeat of the
//! port just matched is a duplicate, and a knock in no band is no knock.
//!
//! The daemon accepts the sequences of the previous, current and next step
//! (clock skew up to one period either way) and each step at most once per
//! sequence, by anyone: once a step was used, that step and all earlier ones
//! are refused, so a sniffed sequence cannot be replayed, not even from
//! another address. Expected sequences are computed when the step changes,
//! not per packet; per-source progress lives in the same fixed-capacity
//! [`ProgressTable`] as static sequences. Pure: time is passed in, no I/O,
//! no allocation after construction.

use core::net::IpAddr;
use core::time::Duration;

use heapless::Vec as HVec;

use super::hmac::HmacKey;
use super::table::{Insert, Key, Progress, ProgressTable};
use crate::port::{L4Proto, PortSpec};
use crate::time::Now;

/// Most knocks in a TOTP sequence.
pub const MAX_TOTP_LENGTH: usize = 16;
/// Fewest ports per band (so each knock carries at least 4 bits).
pub const MIN_BAND: u16 = 16;
/// Default `option period` (seconds).
pub const DEFAULT_PERIOD: u64 = 30;
/// Default `option length` (knocks): the fewest knocks that reach
/// [`TARGET_STRENGTH_BITS`] within the port space.
pub const DEFAULT_LENGTH: u8 = 6;
/// Default `option knock_range` (ports): 6 bands of 2048 ports, 64.4 bits.
pub const DEFAULT_RANGE: u16 = 12288;
/// Steps whose sequences are accepted at any time (`t-1`, `t`, `t+1`).
pub const ACCEPTED_STEPS: u32 = 3;
/// The strength of the default shape must reach this (bits).
pub const TARGET_STRENGTH_BITS: Bits = Bits::whole(64);
/// Configurations weaker than this are refused (bits).
pub const MIN_STRENGTH_BITS: Bits = Bits::whole(48);
const LABEL: &[u8] = b"postern totp v1";
/// MAC bytes per knock.
const BYTES_PER_KNOCK: usize = 4;
const KNOCKS_PER_BLOCK: usize = super::hmac::MAC_LEN / BYTES_PER_KNOCK;

/// The public shape of a TOTP sequence (the key is separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpShape {
    /// Protocol of the knocks.
    pub proto: L4Proto,
    /// First port of the range.
    pub base: u16,
    /// Ports in the range (`base + range - 1` fits a port; `range / length >= MIN_BAND`).
    pub range: u16,
    /// Knocks in a sequence (2..=[`MAX_TOTP_LENGTH`]).
    pub length: u8,
    /// Seconds per step (1 or more).
    pub period: u64,
}

impl TotpShape {
    /// Ports per band.
    pub fn band(&self) -> u16 {
        self.range / u16::from(self.length.max(1))
    }

    /// True when `port` is one of this sequence's knock ports.
    pub fn contains(&self, port: PortSpec) -> bool {
        port.proto == self.proto
            && port.port >= self.base
            && u32::from(port.port) < u32::from(self.base) + u32::from(self.range)
    }

    /// How hard a sequence is to guess, in bits: one blind try (a whole
    /// sequence, `length` knocks) succeeds with probability at most
    /// `ACCEPTED_STEPS / band^length`, so the strength is
    /// `length × log2(band) − log2(ACCEPTED_STEPS)`. Each knock is uniform
    /// over its band (a 32-bit MAC value modulo at most 32768: the bias is
    /// below 2^-17, negligible), and nothing observable tells a right knock
    /// from a wrong one (see `docs/knock-modes.md`), so no knock can be
    /// learned alone.
    pub fn strength_bits(&self) -> Bits {
        let band = Bits::log2(u32::from(self.band().max(1)));
        Bits(i64::from(self.length) * band.0 - Bits::log2(ACCEPTED_STEPS).0)
    }

    /// The time step of unix time `unix`.
    pub fn step_at(&self, unix: u64) -> u64 {
        unix / self.period.max(1)
    }
}

/// A number of bits of guessing strength, in fixed point (32 fractional
/// bits): integer arithmetic only, so that a router build carries no
/// floating-point formatting or `log2` (about 17 KB on soft-float MIPS).
/// Displays with one decimal (`{:.0}`: none), as `{:.1}` shows an `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bits(i64);

impl Bits {
    const ONE: i64 = 1 << 32;

    /// `n` bits.
    pub const fn whole(n: u32) -> Bits {
        Bits((n as i64) << 32)
    }

    /// log2(`x`) (`x` ≥ 1; 0 counts as 1), to about 2^-30.
    pub fn log2(x: u32) -> Bits {
        let x = x.max(1);
        let whole = 31 - x.leading_zeros();
        // The mantissa x / 2^whole in [1, 2), 31 fractional bits; each
        // squaring yields the next bit of its logarithm.
        let mut m = (u64::from(x) << 31) >> whole;
        let mut frac = 0i64;
        for bit in (0..32).rev() {
            m = (m * m) >> 31;
            if m >= 2 << 31 {
                m >>= 1;
                frac |= 1 << bit;
            }
        }
        Bits((i64::from(whole) << 32) | frac)
    }

    /// The value as a float (tests, and clients that want one).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / Self::ONE as f64
    }
}

impl core::fmt::Display for Bits {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let tenths = f.precision() != Some(0);
        let scale = if tenths { 10 } else { 1 };
        // Rounded half up to the last digit shown.
        let v = (self.0 * scale + Self::ONE / 2) >> 32;
        let sign = if v < 0 { "-" } else { "" };
        let v = v.unsigned_abs();
        if tenths {
            write!(f, "{sign}{}.{}", v / 10, v % 10)
        } else {
            write!(f, "{sign}{v}")
        }
    }
}

/// The knock ports of step `step` (`shape.length` of them).
pub fn sequence(key: &HmacKey, shape: &TotpShape, step: u64) -> HVec<u16, MAX_TOTP_LENGTH> {
    let mut out = HVec::new();
    let length = usize::from(shape.length).min(MAX_TOTP_LENGTH);
    let band = u32::from(shape.band().max(1));
    let mut block = [0u8; super::hmac::MAC_LEN];
    for i in 0..length {
        if i % KNOCKS_PER_BLOCK == 0 {
            let b = [(i / KNOCKS_PER_BLOCK) as u8];
            block = key.mac(&[LABEL, &step.to_be_bytes(), &b]);
        }
        let j = (i % KNOCKS_PER_BLOCK) * BYTES_PER_KNOCK;
        let v = u32::from_be_bytes([block[j], block[j + 1], block[j + 2], block[j + 3]]);
        let port = u32::from(shape.base) + i as u32 * band + v % band;
        // Cannot overflow: length <= capacity; the port fits (checked by config).
        let _ = out.push(port as u16);
    }
    out
}

/// One configured TOTP sequence as the matcher needs it.
#[derive(Debug, Clone)]
pub struct TotpSteps {
    /// Range, length, period.
    pub shape: TotpShape,
    /// The prepared key.
    pub key: HmacKey,
    /// Time from the first to the last knock.
    pub timeout: Duration,
}

/// TOTP counters, for `postern status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotpCounters {
    /// Packets to a port in some TOTP range.
    pub knocks: u64,
    /// Knocks that matched the next expected port.
    pub steps_matched: u64,
    /// Repeats of the port just matched, ignored.
    pub duplicates: u64,
    /// Knocks in the range that matched nothing (progress reset).
    pub wrong: u64,
    /// Attempts that ran out of time.
    pub timeouts: u64,
    /// Sequences completed.
    pub completed: u64,
    /// Completed with a step already used (a replay): refused.
    pub replays: u64,
    /// First-step entries evicted to make room.
    pub evictions: u64,
    /// First knocks dropped because the table was full of advanced entries.
    pub dropped_table_full: u64,
}

/// Candidate steps still consistent with a source's knocks: bit `j` is step `base + j`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Candidates {
    base: u64,
    alive: u8,
}

/// Expected ports of the steps around the current one, refreshed when the step changes.
struct State {
    steps: TotpSteps,
    /// Step of `expected[1]` (`expected[0]` is the one before, `[2]` the one after).
    center: Option<u64>,
    expected: [HVec<u16, MAX_TOTP_LENGTH>; 3],
    /// The latest step used by a completed sequence: it and older ones are refused.
    last_used: Option<u64>,
}

impl State {
    fn refresh(&mut self, unix: u64) {
        let c = self.steps.shape.step_at(unix);
        if self.center == Some(c) {
            return;
        }
        for (j, e) in self.expected.iter_mut().enumerate() {
            *e = match (c + j as u64).checked_sub(1) {
                Some(s) => sequence(&self.steps.key, &self.steps.shape, s),
                None => HVec::new(),
            };
        }
        self.center = Some(c);
    }

    /// The expected ports of absolute step `s`, if it is one of the three cached.
    fn expected(&self, s: u64) -> Option<&[u16]> {
        let c = self.center?;
        let j = (s + 1).checked_sub(c)?;
        self.expected
            .get(j as usize)
            .map(|e| e.as_slice())
            .filter(|e| !e.is_empty())
    }

    fn usable(&self, s: u64) -> bool {
        self.last_used.is_none_or(|u| s > u)
    }
}

/// Per-source progress through TOTP sequences.
pub struct TotpMatcher {
    states: Vec<State>,
    table: Box<ProgressTable<Candidates>>,
    counters: TotpCounters,
}

impl TotpMatcher {
    /// Builds a matcher (allocates once). Sequence `i` is reported as index `i`.
    pub fn new(steps: Vec<TotpSteps>) -> TotpMatcher {
        let mut steps = steps;
        steps.truncate(crate::config::MAX_SEQUENCES);
        TotpMatcher {
            states: steps
                .into_iter()
                .map(|steps| State {
                    steps,
                    center: None,
                    expected: [HVec::new(), HVec::new(), HVec::new()],
                    last_used: None,
                })
                .collect(),
            table: ProgressTable::boxed(),
            counters: TotpCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> TotpCounters {
        self.counters
    }

    /// Attempts in progress.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    /// True when `port` is in some sequence's range (the engine routes it here).
    pub fn claims(&self, port: PortSpec) -> bool {
        self.states.iter().any(|s| s.steps.shape.contains(port))
    }

    /// Feeds one knock; returns the index of the sequence it completes.
    pub fn on_knock(&mut self, now: Now, src: IpAddr, port: PortSpec) -> Option<usize> {
        let index = self
            .states
            .iter()
            .position(|s| s.steps.shape.contains(port))?;
        self.counters.knocks += 1;
        self.states[index].refresh(now.unix);
        let key = Key {
            src,
            sequence: index as u8,
        };
        let timeout = self.states[index].steps.timeout.as_millis() as u64;
        let mut current = self.table.get(&key);
        if let Some(p) = current {
            if now.mono.since(p.started) > timeout {
                self.table.remove(&key);
                self.counters.timeouts += 1;
                current = None;
            }
        }
        if let Some(p) = current {
            let state = &self.states[index];
            let matched = usize::from(p.matched);
            let (mut next, mut dup) = (0u8, false);
            for j in 0..3u8 {
                if p.data.alive & (1 << j) == 0 {
                    continue;
                }
                let Some(e) = state.expected(p.data.base + u64::from(j)) else {
                    continue;
                };
                if e.get(matched) == Some(&port.port) {
                    next |= 1 << j;
                } else if e.get(matched.wrapping_sub(1)) == Some(&port.port) {
                    dup = true;
                }
            }
            if next != 0 {
                self.counters.steps_matched += 1;
                if matched + 1 == usize::from(state.steps.shape.length) {
                    self.table.remove(&key);
                    return self.complete(index, p.data.base, next);
                }
                self.table.advance(&key);
                if let Some(d) = self.table.data_mut(&key) {
                    d.alive = next;
                }
                return None;
            }
            if dup {
                self.counters.duplicates += 1;
                return None;
            }
            self.table.remove(&key);
        }
        self.start(now, key, index, port.port)
    }

    /// Begins an attempt if `port` is the first knock of a usable candidate step.
    fn start(&mut self, now: Now, key: Key, index: usize, port: u16) -> Option<usize> {
        let state = &self.states[index];
        let center = state.center?;
        let base = center.saturating_sub(1);
        let mut alive = 0u8;
        for j in 0..3u8 {
            let s = base + u64::from(j);
            if !state.usable(s) {
                continue;
            }
            if state.expected(s).and_then(|e| e.first()) == Some(&port) {
                alive |= 1 << j;
            }
        }
        if alive == 0 {
            self.counters.wrong += 1;
            return None;
        }
        self.counters.steps_matched += 1;
        if state.steps.shape.length <= 1 {
            return self.complete(index, base, alive);
        }
        let states = &self.states;
        let mono = now.mono;
        let expired = |k: &Key, p: &Progress<Candidates>| match states.get(usize::from(k.sequence))
        {
            Some(s) => mono.since(p.started) > s.steps.timeout.as_millis() as u64,
            None => true,
        };
        match self
            .table
            .insert_first_with(key, now.mono, Candidates { base, alive }, expired)
        {
            Insert::Stored => {}
            Insert::StoredAfterEviction => self.counters.evictions += 1,
            Insert::DroppedFull => self.counters.dropped_table_full += 1,
        }
        None
    }

    /// A whole sequence matched for the steps in `alive`: the latest usable one is used up.
    fn complete(&mut self, index: usize, base: u64, alive: u8) -> Option<usize> {
        let state = &mut self.states[index];
        let step = (0..3u8)
            .rev()
            .filter(|j| alive & (1 << j) != 0)
            .map(|j| base + u64::from(j))
            .find(|&s| state.usable(s));
        match step {
            Some(s) => {
                state.last_used = Some(s);
                self.counters.completed += 1;
                Some(index)
            }
            None => {
                self.counters.replays += 1;
                None
            }
        }
    }

    /// Drops attempts that ran out of time.
    pub fn on_tick(&mut self, now: crate::time::Millis) {
        let states = &self.states;
        let expired = |k: &Key, p: &Progress<Candidates>| match states.get(usize::from(k.sequence))
        {
            Some(s) => now.since(p.started) > s.steps.timeout.as_millis() as u64,
            None => true,
        };
        let n = self.table.purge_expired(&expired);
        self.counters.timeouts += n as u64;
    }
}

#[cfg(test)]
mod tests;
