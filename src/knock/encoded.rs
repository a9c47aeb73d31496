//! Encoded sequences: the knocks spell out which port to open.
//!
//! Krzywinski's scheme, generalised. A sequence is, in symbols:
//!
//! ```text
//! header… | port digits (most significant first) | duration digits | checksum | footer…
//! ```
//!
//! Digits are decimal (0-9); `checksum = (sum of port and duration digits) mod 10`;
//! header and footer symbols are any values below the alphabet width. Symbol
//! `i` is knocked on `base + (i % 2) * width + value` (see [`super::window`]:
//! alternating halves make repeats of a digit distinct knocks, so a duplicate
//! packet is always recognised). Every knock of a sequence uses the protocol
//! of the port it asks for (`tcp/143` is knocked with TCP SYNs). The port
//! must be in the profile's allowed list; duration digits give minutes, 0 (or
//! none) means the profile's `duration`, and at most `max_duration` is granted.
//!
//! The daemon keeps a window of the last symbols per (source, profile,
//! protocol) and checks it each time it is full, sliding on failure. Pure, no
//! allocation after construction.
//!
//! What it does not do: hide anything from a sniffer. The sequence is as
//! replayable as a static one; it only saves configuring one sequence per port.

use core::net::IpAddr;
use core::time::Duration;

use heapless::Vec as HVec;

use super::table::Key;
use super::window::{Alphabet, Push, WindowCounters, WindowTable, MAX_WINDOW};
use crate::port::{L4Proto, PortSpec};
use crate::time::Millis;

/// Most header (or footer) symbols.
pub const MAX_FRAME: usize = 8;
/// Most encoded profiles (two window slots each, one per protocol).
pub const MAX_ENCODED: usize = 16;
/// Most port digits (65535 has five).
pub const MAX_PORT_DIGITS: u8 = 5;
/// Most duration digits.
pub const MAX_DURATION_DIGITS: u8 = 4;

/// The public layout of an encoded sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedShape {
    /// Port range and symbols per half.
    pub alphabet: Alphabet,
    /// Symbols before the payload.
    pub header: HVec<u8, MAX_FRAME>,
    /// Symbols after the checksum.
    pub footer: HVec<u8, MAX_FRAME>,
    /// Decimal digits of the port (1..=5; ports above 10^digits - 1 cannot be sent).
    pub port_digits: u8,
    /// Decimal digits of the duration in minutes (0..=4).
    pub duration_digits: u8,
}

/// Why a window is not a valid encoded sequence (or a request cannot be encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodedError {
    /// Header or footer do not match.
    Frame,
    /// A payload symbol is not a decimal digit.
    NotDigit,
    /// The checksum digit is wrong.
    Checksum,
    /// Port 0, or a number that is no port.
    BadPort,
    /// The port is not in the profile's allowed list.
    NotAllowed,
    /// The port or duration has more digits than the profile carries.
    TooLong,
}

impl core::fmt::Display for EncodedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EncodedError::Frame => "header or footer does not match",
            EncodedError::NotDigit => "a payload symbol is not a digit",
            EncodedError::Checksum => "wrong checksum",
            EncodedError::BadPort => "not a port number",
            EncodedError::NotAllowed => "port not in the allowed list",
            EncodedError::TooLong => "the number has more digits than the profile carries",
        })
    }
}

impl EncodedShape {
    /// Symbols in a whole sequence.
    pub fn len(&self) -> usize {
        self.header.len()
            + usize::from(self.port_digits)
            + usize::from(self.duration_digits)
            + 1
            + self.footer.len()
    }

    /// Never true (a sequence has at least a port digit and a checksum).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The symbols asking for `port` for `minutes` (0: the profile's default).
    pub fn encode(&self, port: u16, minutes: u32) -> Result<HVec<u8, MAX_WINDOW>, EncodedError> {
        if port == 0 {
            return Err(EncodedError::BadPort);
        }
        let mut out: HVec<u8, MAX_WINDOW> = HVec::new();
        let mut sum = 0u32;
        let overflow = |_| EncodedError::TooLong;
        out.extend_from_slice(&self.header).map_err(overflow)?;
        for (value, digits) in [
            (u32::from(port), self.port_digits),
            (minutes, self.duration_digits),
        ] {
            if u64::from(value) >= 10u64.pow(u32::from(digits)) {
                return Err(EncodedError::TooLong);
            }
            for d in (0..digits).rev() {
                let digit = (value / 10u32.pow(u32::from(d)) % 10) as u8;
                sum += u32::from(digit);
                out.push(digit).map_err(|_| EncodedError::TooLong)?;
            }
        }
        out.push((sum % 10) as u8)
            .map_err(|_| EncodedError::TooLong)?;
        out.extend_from_slice(&self.footer).map_err(overflow)?;
        Ok(out)
    }

    /// The knocks (`proto` is that of the port asked for) for `symbols`.
    pub fn knocks(&self, proto: L4Proto, symbols: &[u8]) -> Vec<PortSpec> {
        symbols
            .iter()
            .enumerate()
            .map(|(i, &v)| PortSpec {
                proto,
                port: self.alphabet.port(i, v),
            })
            .collect()
    }

    /// Reads a whole window: `(port, minutes)`.
    pub fn decode(&self, syms: &[u8]) -> Result<(u16, u32), EncodedError> {
        if syms.len() != self.len() {
            return Err(EncodedError::Frame);
        }
        let (h, f) = (self.header.len(), self.footer.len());
        if syms[..h] != self.header[..] || syms[syms.len() - f..] != self.footer[..] {
            return Err(EncodedError::Frame);
        }
        let payload = &syms[h..syms.len() - f];
        if payload.iter().any(|&d| d > 9) {
            return Err(EncodedError::NotDigit);
        }
        let (digits, check) = payload.split_at(payload.len() - 1);
        let sum: u32 = digits.iter().map(|&d| u32::from(d)).sum();
        if check != [(sum % 10) as u8] {
            return Err(EncodedError::Checksum);
        }
        let (p, m) = digits.split_at(usize::from(self.port_digits));
        let number = |ds: &[u8]| ds.iter().fold(0u32, |n, &d| n * 10 + u32::from(d));
        let port = u16::try_from(number(p))
            .ok()
            .filter(|&p| p != 0)
            .ok_or(EncodedError::BadPort)?;
        Ok((port, number(m)))
    }
}

/// One configured encoded profile as the matcher needs it.
#[derive(Debug, Clone)]
pub struct EncodedProfile {
    /// Layout.
    pub shape: EncodedShape,
    /// Ports that may be asked for.
    pub allow: Vec<PortSpec>,
    /// Duration when none is asked for.
    pub duration: Duration,
    /// Longest duration granted.
    pub max_duration: Duration,
    /// Most time between two knocks.
    pub timeout: Duration,
}

/// A decoded, allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedGrant {
    /// Index of the profile.
    pub profile: usize,
    /// Index of the port in the profile's allowed list.
    pub allowed: usize,
    /// How long to open it.
    pub duration: Duration,
}

/// Encoded-sequence counters, for `postern status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodedCounters {
    /// Packets to a port in some profile's range.
    pub knocks: u64,
    /// The window counters.
    pub window: WindowCounters,
    /// Full windows checked.
    pub checked: u64,
    /// Full windows that were no sequence (slid on).
    pub invalid: u64,
    /// Valid sequences asking for a port not allowed.
    pub not_allowed: u64,
    /// Requests granted.
    pub granted: u64,
}

/// Per-source windows over the encoded profiles.
pub struct EncodedMatcher {
    profiles: Vec<EncodedProfile>,
    windows: WindowTable,
    counters: EncodedCounters,
}

fn slot(profile: usize, proto: L4Proto) -> u8 {
    (profile * 2 + usize::from(proto == L4Proto::Udp)) as u8
}

static_assertions::const_assert!(MAX_ENCODED * 2 <= u8::MAX as usize);

impl EncodedMatcher {
    /// Builds a matcher (allocates once); at most [`MAX_ENCODED`] profiles are used.
    pub fn new(profiles: Vec<EncodedProfile>) -> EncodedMatcher {
        let mut profiles = profiles;
        profiles.truncate(MAX_ENCODED);
        EncodedMatcher {
            profiles,
            windows: WindowTable::default(),
            counters: EncodedCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> EncodedCounters {
        EncodedCounters {
            window: self.windows.counters(),
            ..self.counters
        }
    }

    /// Windows held.
    pub fn in_progress(&self) -> usize {
        self.windows.len()
    }

    /// The profiles.
    pub fn profiles(&self) -> &[EncodedProfile] {
        &self.profiles
    }

    fn profile_of(&self, port: PortSpec) -> Option<usize> {
        self.profiles.iter().position(|p| {
            p.shape.alphabet.contains(port.port) && p.allow.iter().any(|a| a.proto == port.proto)
        })
    }

    /// True when `port` is in some profile's range, for a protocol it allows.
    pub fn claims(&self, port: PortSpec) -> bool {
        self.profile_of(port).is_some()
    }

    /// Feeds one knock; returns the grant when it completes a valid, allowed sequence.
    pub fn on_knock(&mut self, now: Millis, src: IpAddr, port: PortSpec) -> Option<EncodedGrant> {
        let index = self.profile_of(port)?;
        self.counters.knocks += 1;
        let p = &self.profiles[index];
        let sym = p.shape.alphabet.symbol(port.port)?;
        let key = Key {
            src,
            sequence: slot(index, port.proto),
        };
        let profiles = &self.profiles;
        let timeout_of = |s: u8| {
            profiles
                .get(usize::from(s) / 2)
                .map_or(0, |p| p.timeout.as_millis() as u64)
        };
        let timeout = p.timeout.as_millis() as u64;
        let Push::Ready(w) = self.windows.push(
            now,
            key,
            port.port,
            sym,
            p.shape.len(),
            timeout,
            &timeout_of,
        ) else {
            return None;
        };
        self.counters.checked += 1;
        let (number, minutes) = match p.shape.decode(w.symbols()) {
            Ok(v) => v,
            Err(_) => {
                self.counters.invalid += 1;
                self.windows.slide(&key);
                return None;
            }
        };
        self.windows.remove(&key);
        let wanted = PortSpec {
            proto: port.proto,
            port: number,
        };
        let Some(allowed) = p.allow.iter().position(|a| *a == wanted) else {
            self.counters.not_allowed += 1;
            return None;
        };
        let duration = if minutes == 0 {
            p.duration
        } else {
            Duration::from_secs(u64::from(minutes) * 60).min(p.max_duration)
        };
        self.counters.granted += 1;
        Some(EncodedGrant {
            profile: index,
            allowed,
            duration,
        })
    }

    /// Drops idle windows.
    pub fn on_tick(&mut self, now: Millis) {
        let profiles = &self.profiles;
        let timeout_of = |s: u8| {
            profiles
                .get(usize::from(s) / 2)
                .map_or(0, |p| p.timeout.as_millis() as u64)
        };
        self.windows.purge(now, &timeout_of);
    }
}

#[cfg(test)]
mod tests;
