//! Authenticated one-time knock sequences: the knocks carry a sealed request.
//!
//! A client with a key and a knock range (`config client` with `knock_base`)
//! sends [`SYMBOLS`] knocks; symbol `i` is a byte knocked on
//! `base + (i % 2) * 256 + byte` (see [`super::window`]). The twelve bytes are
//!
//! ```text
//! c (4) = request XOR HMAC(k_enc, tag)[..4]
//! tag (8) = HMAC(k_mac, "postern knock v1" || step || source address || request)[..8]
//! request = port (2, big-endian) | IP protocol (6 or 17) | code
//! code: 0 = open for the client's max_duration, 1..=254 = open for that many
//!       minutes (at most max_duration), 255 = close
//! ```
//!
//! with `step = unix_time / 30`, `k_enc` and `k_mac` derived from the client
//! key by HMAC with fixed labels, and the source address as the daemon sees
//! it (a family byte, then 16 address bytes). The daemon keeps the last
//! twelve symbols per (source, client), tries the window whenever it is full
//! against the steps within ±2 of its own (about ±75 s of clock skew),
//! compares tags in constant time and slides on failure. An authentic tag
//! (accepted, or refused for a port the client may not ask for) goes into
//! its client's used-code cache ([`USED_PER_CLIENT`] entries: one client
//! cannot crowd out another) until its step is out of reach, so the same
//! sequence is never accepted twice, not even after a reload that allows it; a sequence sniffed and replayed from
//! another address fails the tag, which binds the source. Work per packet is
//! bounded: one window check, at most [`ATTEMPTS_PER_SECOND`] checks per second.
//!
//! Pure: time is passed in, no I/O, no allocation after construction.

use core::net::IpAddr;
use core::time::Duration;

use heapless::Deque;

use super::hmac::{ct_eq, HmacKey};
use super::table::Key;
use super::window::{Alphabet, Push, WindowCounters, WindowTable};
use crate::cidr::Cidr;
use crate::port::{L4Proto, PortSpec};
use crate::time::Now;

/// Knocks in an authenticated sequence.
pub const SYMBOLS: usize = 12;
/// Bytes of the (encrypted) request.
const REQUEST_LEN: usize = 4;
/// Bytes of the tag: 64 bits.
pub const TAG_LEN: usize = 8;
static_assertions::const_assert_eq!(REQUEST_LEN + TAG_LEN, SYMBOLS);
/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Steps of skew accepted either way.
pub const SKEW_STEPS: u64 = 2;
/// Ports in a client's knock range (`knock_base .. knock_base + RANGE`).
pub const RANGE: u16 = 512;
/// Authentic tags remembered per client (only authenticated sequences
/// enter): sequences within the 150 s a tag stays in reach. When a client's
/// cache is full of tags in reach, its next sequence is refused
/// (`cache_full`); other clients are not affected.
pub const USED_PER_CLIENT: usize = 32;
static_assertions::const_assert!(USED_PER_CLIENT >= 8);
// 16 bytes a tag: at most 16 KiB with every client configured.
static_assertions::const_assert!(crate::config::MAX_CLIENTS * USED_PER_CLIENT * 16 <= 16 * 1024);
/// Most window checks per second over all sources (each is six HMACs).
pub const ATTEMPTS_PER_SECOND: u32 = 1000;
/// Code for "close".
pub const CODE_CLOSE: u8 = 255;
const LABEL: &[u8] = b"postern knock v1";

/// The alphabet of a client whose range starts at `base`.
pub const fn alphabet(base: u16) -> Alphabet {
    Alphabet { base, width: 256 }
}

/// The two keys derived from a client key.
#[derive(Debug, Clone)]
pub struct AuthKeys {
    enc: HmacKey,
    mac: HmacKey,
}

impl AuthKeys {
    /// Derives the keys from a 32-byte client key.
    pub fn new(key: &[u8; 32]) -> AuthKeys {
        let k = HmacKey::new(key);
        AuthKeys {
            enc: HmacKey::new(&k.mac(&[b"postern knock enc v1"])),
            mac: HmacKey::new(&k.mac(&[b"postern knock mac v1"])),
        }
    }
}

/// Open (for minutes, 0 = the client's maximum) or close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
    /// Open for this many minutes (1..=254), or 0: the client's `max_duration`.
    Open(u8),
    /// Close now.
    Close,
}

/// What a sequence asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRequest {
    /// The port.
    pub port: PortSpec,
    /// Open or close.
    pub action: AuthAction,
}

/// Why a full window was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No step in reach gives this tag (wrong key, source, time, or noise).
    BadTag,
    /// Authentic, but the request bytes make no sense.
    Malformed,
}

fn addr_bytes(src: IpAddr) -> [u8; 17] {
    let mut out = [0u8; 17];
    match src {
        IpAddr::V4(a) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out[0] = 6;
            out[1..].copy_from_slice(&a.octets());
        }
    }
    out
}

fn tag(keys: &AuthKeys, step: u64, src: &[u8; 17], request: &[u8; REQUEST_LEN]) -> [u8; TAG_LEN] {
    let m = keys.mac.mac(&[LABEL, &step.to_be_bytes(), src, request]);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&m[..TAG_LEN]);
    t
}

fn pad(keys: &AuthKeys, tag: &[u8]) -> [u8; REQUEST_LEN] {
    let m = keys.enc.mac(&[tag]);
    let mut p = [0u8; REQUEST_LEN];
    p.copy_from_slice(&m[..REQUEST_LEN]);
    p
}

/// The twelve symbols for `req` from `src` at time step `step`.
pub fn seal(keys: &AuthKeys, step: u64, src: IpAddr, req: &AuthRequest) -> [u8; SYMBOLS] {
    let code = match req.action {
        AuthAction::Open(m) => m.min(CODE_CLOSE - 1),
        AuthAction::Close => CODE_CLOSE,
    };
    let [hi, lo] = req.port.port.to_be_bytes();
    let request = [hi, lo, req.port.proto.number(), code];
    let t = tag(keys, step, &addr_bytes(src), &request);
    let p = pad(keys, &t);
    let mut out = [0u8; SYMBOLS];
    for i in 0..REQUEST_LEN {
        out[i] = request[i] ^ p[i];
    }
    out[REQUEST_LEN..].copy_from_slice(&t);
    out
}

/// The knocks for `symbols` in the range at `base`.
pub fn knocks(base: u16, proto: L4Proto, symbols: &[u8]) -> Vec<PortSpec> {
    symbols
        .iter()
        .enumerate()
        .map(|(i, &b)| PortSpec {
            proto,
            port: alphabet(base).port(i, b),
        })
        .collect()
}

/// Opens a full window from `src` at unix time `unix`: the request and the
/// step it was sealed for, if some step within ±[`SKEW_STEPS`] authenticates it.
pub fn open(
    keys: &AuthKeys,
    unix: u64,
    src: IpAddr,
    syms: &[u8],
) -> Result<(AuthRequest, u64), AuthError> {
    if syms.len() != SYMBOLS {
        return Err(AuthError::BadTag);
    }
    let (c, t) = syms.split_at(REQUEST_LEN);
    let p = pad(keys, t);
    let mut request = [0u8; REQUEST_LEN];
    for i in 0..REQUEST_LEN {
        request[i] = c[i] ^ p[i];
    }
    let addr = addr_bytes(src);
    let now = unix / STEP_SECS;
    let mut found = None;
    for s in now.saturating_sub(SKEW_STEPS)..=now.saturating_add(SKEW_STEPS) {
        // Every candidate is computed and compared in full: no early exit.
        if ct_eq(&tag(keys, s, &addr, &request), t) {
            found = Some(s);
        }
    }
    let step = found.ok_or(AuthError::BadTag)?;
    let port = u16::from_be_bytes([request[0], request[1]]);
    let proto = L4Proto::from_number(request[2]).ok_or(AuthError::Malformed)?;
    if port == 0 {
        return Err(AuthError::Malformed);
    }
    let action = match request[3] {
        CODE_CLOSE => AuthAction::Close,
        m => AuthAction::Open(m),
    };
    Ok((
        AuthRequest {
            port: PortSpec { proto, port },
            action,
        },
        step,
    ))
}

/// One client with a knock range, as the matcher needs it.
#[derive(Debug, Clone)]
pub struct AuthClient {
    /// The `config client` name.
    pub name: String,
    /// Keys derived from the client key.
    pub keys: AuthKeys,
    /// First port of the range ([`RANGE`] ports).
    pub base: u16,
    /// Protocol of the knocks.
    pub proto: L4Proto,
    /// Ports the client may open or close.
    pub allow: Vec<PortSpec>,
    /// Longest grant.
    pub max_duration: Duration,
    /// Networks knocks may come from (empty: anywhere).
    pub sources: Vec<Cidr>,
    /// Most time between two knocks.
    pub timeout: Duration,
}

/// What an accepted sequence does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    /// Open `allow[allowed]` for `duration`.
    Open {
        /// Index of the port in the client's allowed list.
        allowed: usize,
        /// How long.
        duration: Duration,
    },
    /// Close `allow[allowed]`.
    Close {
        /// Index of the port in the client's allowed list.
        allowed: usize,
    },
}

/// Authenticated-knock counters, for `postern status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthCounters {
    /// Packets to a port in some client's range.
    pub knocks: u64,
    /// Knocks from outside the client's `list source`: ignored.
    pub wrong_source: u64,
    /// The window counters.
    pub window: WindowCounters,
    /// Full windows checked.
    pub checked: u64,
    /// Full windows not checked: over [`ATTEMPTS_PER_SECOND`].
    pub over_budget: u64,
    /// Windows no step authenticated (slid on).
    pub bad_tag: u64,
    /// Authentic but malformed, or asking for a port not allowed.
    pub refused: u64,
    /// Authentic sequences seen before: refused.
    pub replays: u64,
    /// Authentic sequences refused because the used-code cache was full.
    pub cache_full: u64,
    /// Requests granted (open or close).
    pub granted: u64,
}

/// Per-source windows over the clients with knock ranges.
pub struct AuthMatcher {
    clients: Vec<AuthClient>,
    windows: WindowTable,
    /// Per client (same index): authentic tags and their steps, oldest first.
    used: Vec<Deque<([u8; TAG_LEN], u64), USED_PER_CLIENT>>,
    second: u64,
    attempts: u32,
    counters: AuthCounters,
}

impl AuthMatcher {
    /// Builds a matcher (allocates once); at most [`crate::config::MAX_CLIENTS`] clients.
    pub fn new(clients: Vec<AuthClient>) -> AuthMatcher {
        let mut clients = clients;
        clients.truncate(crate::config::MAX_CLIENTS);
        let used = clients.iter().map(|_| Deque::new()).collect();
        AuthMatcher {
            clients,
            windows: WindowTable::default(),
            used,
            second: 0,
            attempts: 0,
            counters: AuthCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> AuthCounters {
        AuthCounters {
            window: self.windows.counters(),
            ..self.counters
        }
    }

    /// Windows held.
    pub fn in_progress(&self) -> usize {
        self.windows.len()
    }

    /// The clients.
    pub fn clients(&self) -> &[AuthClient] {
        &self.clients
    }

    fn client_of(&self, port: PortSpec) -> Option<usize> {
        self.clients
            .iter()
            .position(|c| c.proto == port.proto && alphabet(c.base).contains(port.port))
    }

    /// True when `port` is in some client's range.
    pub fn claims(&self, port: PortSpec) -> bool {
        self.client_of(port).is_some()
    }

    /// Feeds one knock; returns the client index and verdict when it completes
    /// an authentic, allowed, fresh sequence.
    pub fn on_knock(
        &mut self,
        now: Now,
        src: IpAddr,
        port: PortSpec,
    ) -> Option<(usize, AuthVerdict)> {
        let index = self.client_of(port)?;
        self.counters.knocks += 1;
        let c = &self.clients[index];
        if !c.sources.is_empty() && !c.sources.iter().any(|n| n.contains(src)) {
            self.counters.wrong_source += 1;
            return None;
        }
        let sym = alphabet(c.base).symbol(port.port)?;
        let key = Key {
            src,
            sequence: index as u8,
        };
        let clients = &self.clients;
        let timeout_of = |s: u8| {
            clients
                .get(usize::from(s))
                .map_or(0, |c| c.timeout.as_millis() as u64)
        };
        let timeout = c.timeout.as_millis() as u64;
        let Push::Ready(w) =
            self.windows
                .push(now.mono, key, port.port, sym, SYMBOLS, timeout, &timeout_of)
        else {
            return None;
        };
        if !self.admit(now) {
            self.counters.over_budget += 1;
            self.windows.slide(&key);
            return None;
        }
        self.counters.checked += 1;
        let c = &self.clients[index];
        let (req, step) = match open(&c.keys, now.unix, src, w.symbols()) {
            Ok(v) => v,
            Err(AuthError::BadTag) => {
                self.counters.bad_tag += 1;
                self.windows.slide(&key);
                return None;
            }
            Err(AuthError::Malformed) => {
                self.counters.refused += 1;
                self.windows.remove(&key);
                return None;
            }
        };
        self.windows.remove(&key);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&w.symbols()[REQUEST_LEN..]);
        if !self.remember(index, now.unix, t, step) {
            return None;
        }
        let c = &self.clients[index];
        let Some(allowed) = c.allow.iter().position(|a| *a == req.port) else {
            self.counters.refused += 1;
            return None;
        };
        let verdict = match req.action {
            AuthAction::Close => AuthVerdict::Close { allowed },
            AuthAction::Open(0) => AuthVerdict::Open {
                allowed,
                duration: c.max_duration,
            },
            AuthAction::Open(m) => AuthVerdict::Open {
                allowed,
                duration: Duration::from_secs(u64::from(m) * 60).min(c.max_duration),
            },
        };
        self.counters.granted += 1;
        Some((index, verdict))
    }

    /// One more window check this second, if the budget allows.
    fn admit(&mut self, now: Now) -> bool {
        let s = now.mono.0 / 1000;
        if s != self.second {
            self.second = s;
            self.attempts = 0;
        }
        if self.attempts >= ATTEMPTS_PER_SECOND {
            return false;
        }
        self.attempts += 1;
        true
    }

    /// Records an authentic tag of client `index`; false (and counted) if it
    /// was seen before or that client's cache is full of tags still in reach.
    fn remember(&mut self, index: usize, unix: u64, tag: [u8; TAG_LEN], step: u64) -> bool {
        let Some(used) = self.used.get_mut(index) else {
            return false;
        };
        let oldest_in_reach = (unix / STEP_SECS).saturating_sub(2 * SKEW_STEPS + 1);
        while used.front().is_some_and(|&(_, s)| s < oldest_in_reach) {
            used.pop_front();
        }
        if used.iter().any(|(t, _)| *t == tag) {
            self.counters.replays += 1;
            return false;
        }
        if used.push_back((tag, step)).is_err() {
            self.counters.cache_full += 1;
            return false;
        }
        true
    }

    /// Takes over the used codes of `old` (the matcher a reload replaces),
    /// client by client (by name): a sequence seen before stays refused.
    pub fn adopt_used(&mut self, old: &AuthMatcher) {
        for (c, used) in self.clients.iter().zip(self.used.iter_mut()) {
            if let Some(i) = old.clients.iter().position(|o| o.name == c.name) {
                used.clone_from(&old.used[i]);
            }
        }
    }

    /// Drops idle windows.
    pub fn on_tick(&mut self, now: crate::time::Millis) {
        let clients = &self.clients;
        let timeout_of = |s: u8| {
            clients
                .get(usize::from(s))
                .map_or(0, |c| c.timeout.as_millis() as u64)
        };
        self.windows.purge(now, &timeout_of);
    }
}

#[cfg(test)]
mod tests;
