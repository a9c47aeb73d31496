//! The SPA verifier: a UDP payload in, an [`Accepted`] request or a [`Refused`] out.
//!
//! Owns the enabled clients' ciphers and pre-filter keys, the verification
//! budgets, the replay cache and the SPA counters. A native packet (protocol
//! 2) costs, per enabled client whose `list source` admits it, one SipHash
//! (the keyed pre-filter, [`super::prefilter`]); junk stops there (a junk
//! packet passes one client's filter with probability 2^-32). Only a packet
//! that passed a client's filter is looked up in the replay cache (one keyed
//! hash: a flood of copies of a captured packet stops there too) and then
//! costs one AEAD verification, charged to *that client's* budget
//! (`spa_verify_budget` per second each): junk never touches any budget, and
//! one client's flood cannot spend another's. A request is accepted whole or
//! not at all.
//!
//! Checks, in order: length bounds → a client for the source → pre-filter →
//! replay cache lookup → the client's budget → AEAD → request format →
//! timestamp window (`max_skew`) → replay guard (start of the replay record)
//! and floor → replay cache (which records the nonce from here on, whatever
//! the outcome) → target address → allowed ports, command or forward →
//! duration. Sans-IO, no allocation per packet: the granted ports are copied
//! into a scratch list the verifier owns.
//!
//! Payloads with the length and alphabet of an fwknop packet
//! ([`super::fwknop::looks_like_fwknop`]) take the fwknop path instead
//! (`verifier/fwknop.rs`): the same steps with one HMAC per candidate client
//! (those with fwknop keys) in place of the pre-filter and AEAD (fwknop's
//! wire format has no room for a filter), charged to a budget of its own
//! (`spa_verify_budget` per second, all fwknop packets together), then
//! decryption and the fwknop plaintext; the same replay cache, address
//! policy, allow list and counters.

use core::net::IpAddr;
use core::time::Duration;

use super::fwknop::{self, Error as FwknopError};
use super::prefilter::FilterInput;
use super::replay::{InsertError, ReplayCache, ReplayEntry, ReplayRecord, SavedEntry};
use super::request::{Kind, Request, RequestError, RequestRepr, Target, MAX_PORTS};
use super::seal::{self, Cipher, OpenError, MAX_PLAINTEXT_LEN, NONCE_LEN};
use crate::cidr::Cidr;
use crate::config::{Client, Config, FwknopClient, NamedForward, MAX_CLIENTS};
use crate::port::PortSpec;
use crate::time::{Millis, Now};

/// Why a packet was refused. Each reason is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Too short or too long to be a packet (no crypto tried).
    BadLength,
    /// No enabled client accepts packets from this source (`list source`).
    NoClientForSource,
    /// The verification budget of this second is spent (the client's whose
    /// pre-filter the packet passed, or the fwknop path's): dropped unopened.
    BudgetExceeded,
    /// No candidate key authenticates it (junk, a wrong key, or tampering).
    AuthFailed,
    /// Authenticated, but not a valid request (client bug or newer version).
    BadRequest,
    /// The explicit address is not one a grant can be for (unspecified, multicast, loopback…).
    BadAddress,
    /// The timestamp is more than `max_skew` behind the router's clock.
    TooOld,
    /// The timestamp is more than `max_skew` ahead of the router's clock.
    TooNew,
    /// The timestamp is not after the start of the replay record (+ `max_skew`),
    /// or is below the replay cache's floor: the packet may have been
    /// accepted before, and the record no longer says.
    BeforeReplayGuard,
    /// This packet was accepted before.
    Replay,
    /// The replay cache holds only live entries: refused rather than forgetting one.
    ReplayCacheFull,
    /// A port the client may not open or close.
    PortNotAllowed,
    /// A longer duration than the client's `max_duration`.
    DurationTooLong,
    /// An address other than the packet's source, and the client may not
    /// ask for others (`option allow_other_address`).
    OtherAddress,
    /// No explicit address (the packet's source), and the client requires
    /// one (`option require_address`).
    AddressRequired,
    /// A well-formed fwknop request of a kind postern does not serve
    /// (local NAT access, server_auth).
    Unsupported,
    /// A command that is not configured, not enabled, or not in the client's
    /// `list command` (for fwknop: no such command's `fwknop_match` is this text).
    CommandNotAllowed,
    /// A forward that is not configured, not enabled, or not in the client's
    /// `list forward` (for fwknop: no such forward has this port and LAN host).
    ForwardNotAllowed,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Refusal; 18] = [
        Refusal::BadLength,
        Refusal::NoClientForSource,
        Refusal::BudgetExceeded,
        Refusal::AuthFailed,
        Refusal::BadRequest,
        Refusal::BadAddress,
        Refusal::TooOld,
        Refusal::TooNew,
        Refusal::BeforeReplayGuard,
        Refusal::Replay,
        Refusal::ReplayCacheFull,
        Refusal::PortNotAllowed,
        Refusal::DurationTooLong,
        Refusal::OtherAddress,
        Refusal::Unsupported,
        Refusal::CommandNotAllowed,
        Refusal::ForwardNotAllowed,
        Refusal::AddressRequired,
    ];

    /// Position in [`Refusal::ALL`], for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name for logs and status output.
    pub const fn name(self) -> &'static str {
        match self {
            Refusal::BadLength => "bad_length",
            Refusal::NoClientForSource => "no_client_for_source",
            Refusal::BudgetExceeded => "budget_exceeded",
            Refusal::AuthFailed => "auth_failed",
            Refusal::BadRequest => "bad_request",
            Refusal::BadAddress => "bad_address",
            Refusal::TooOld => "too_old",
            Refusal::TooNew => "too_new",
            Refusal::BeforeReplayGuard => "before_replay_guard",
            Refusal::Replay => "replay",
            Refusal::ReplayCacheFull => "replay_cache_full",
            Refusal::PortNotAllowed => "port_not_allowed",
            Refusal::DurationTooLong => "duration_too_long",
            Refusal::OtherAddress => "other_address",
            Refusal::Unsupported => "unsupported",
            Refusal::CommandNotAllowed => "command_not_allowed",
            Refusal::ForwardNotAllowed => "forward_not_allowed",
            Refusal::AddressRequired => "address_required",
        }
    }

    /// True when the packet was authenticated (the client is known), so the
    /// refusal is worth a warning; the others are what junk causes.
    pub const fn authenticated(self) -> bool {
        !matches!(
            self,
            Refusal::BadLength
                | Refusal::NoClientForSource
                | Refusal::BudgetExceeded
                | Refusal::AuthFailed
        )
    }
}

/// What a refusal is about, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Nothing more to say.
    None,
    /// Timestamp minus the router's clock, seconds (negative: behind).
    Skew(i64),
    /// The port that is not allowed.
    Port(PortSpec),
    /// Requested and allowed seconds.
    Duration {
        /// Requested.
        requested: u32,
        /// The client's `max_duration`.
        max: u64,
    },
    /// What is wrong with the request.
    Request(RequestError),
    /// The refused explicit address.
    Addr(IpAddr),
    /// What is wrong with an authenticated fwknop packet.
    Fwknop(FwknopError),
    /// A request without ports from a client without `default_access`.
    NoDefault,
}

/// A refused packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused<'a> {
    /// Why.
    pub reason: Refusal,
    /// The client whose key authenticated it, if any did.
    pub client: Option<&'a str>,
    /// More about it.
    pub detail: Detail,
    /// What the replay cache recorded for this authenticated packet (its
    /// nonce is refused from now on): the daemon persists it, so a restart
    /// with a configuration that would allow the request does not either.
    pub record: Option<ReplayEntry>,
}

impl core::fmt::Display for Refused<'_> {
    /// What went wrong, for the log line (the caller adds source and client).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let skew = |f: &mut core::fmt::Formatter<'_>, word: &str| {
            match self.detail {
            Detail::Skew(s) => write!(
                f,
                "timestamp {} s {word} the router's clock (more than max_skew, or source_skew for a packet without an address): check both clocks",
                s.unsigned_abs()
            ),
            _ => write!(f, "timestamp {word} the router's clock"),
        }
        };
        match (self.reason, self.detail) {
            (Refusal::TooOld, _) => skew(f, "behind"),
            (Refusal::TooNew, _) => skew(f, "ahead of"),
            (Refusal::BadRequest, Detail::Request(e)) => write!(f, "bad request: {e}"),
            (Refusal::BadRequest | Refusal::Unsupported, Detail::Fwknop(e)) => {
                write!(f, "fwknop packet: {e}")
            }
            (Refusal::BadAddress, Detail::Addr(a)) => write!(f, "cannot grant address {a}"),
            (Refusal::OtherAddress, Detail::Addr(a)) => write!(
                f,
                "asks for {a}, not its source, and the client may not ask for other addresses (option allow_other_address)"
            ),
            (Refusal::PortNotAllowed, Detail::Port(p)) => {
                write!(f, "{p} is not in the client's allow list; nothing opened")
            }
            (Refusal::PortNotAllowed, Detail::NoDefault) => f.write_str(
                "asks for no port (the router's choice), and the client has no default_access; nothing opened",
            ),
            (Refusal::DurationTooLong, Detail::Duration { requested, max }) => write!(
                f,
                "{requested} s requested, the client's max_duration is {max} s; nothing opened"
            ),
            (Refusal::BeforeReplayGuard, _) => f.write_str(
                "timestamp predates the replay record (its start + max_skew, or its floor): it may have been accepted before; send a new packet",
            ),
            (Refusal::Replay, _) => f.write_str("replay of a packet accepted before"),
            (Refusal::ReplayCacheFull, _) => {
                f.write_str("replay cache full of live entries; try again later")
            }
            (Refusal::BadLength, _) => f.write_str("length is not an SPA packet's"),
            (Refusal::NoClientForSource, _) => {
                f.write_str("no enabled client accepts packets from this source")
            }
            (Refusal::BudgetExceeded, _) => {
                f.write_str("verification budget of this second spent; dropped unopened")
            }
            (Refusal::AuthFailed, _) => f.write_str("no client key authenticates it"),
            (Refusal::CommandNotAllowed, _) => f.write_str(
                "asks for a command that is not configured or not in the client's list command; nothing runs",
            ),
            (Refusal::AddressRequired, _) => f.write_str(
                "asks for the packet's source, and the client must name its address (option require_address): send with --resolve or -a; nothing opened",
            ),
            (Refusal::ForwardNotAllowed, _) => f.write_str(
                "asks for a forward that is not configured or not in the client's list forward; nothing opened",
            ),
            (r, _) => f.write_str(r.name()),
        }
    }
}

/// An accepted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted<'a> {
    /// The client whose key authenticated it.
    pub client: &'a str,
    /// Open, close, command or forward.
    pub kind: Kind,
    /// The address to grant (the packet's source, or the explicit one).
    pub addr: IpAddr,
    /// Open and close: the ports (all allowed for this client); empty otherwise.
    pub ports: &'a [PortSpec],
    /// Command: the index of the command in [`Config::active_commands`];
    /// forward: of the forward in [`Config::active_forwards`]; 0 otherwise.
    pub item: usize,
    /// How long (zero for close and command).
    pub duration: Duration,
    /// What the replay cache recorded: the daemon persists it before granting.
    pub record: ReplayEntry,
}

/// Everything the verifier has counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaCounters {
    /// Packets handed to [`Verifier::verify`].
    pub packets: u64,
    /// Native packets that passed a client's pre-filter (junk almost never does).
    pub filter_passes: u64,
    /// AEAD verifications tried (the work native packets caused).
    pub aead_attempts: u64,
    /// HMAC verifications tried (the work fwknop packets caused).
    pub hmac_attempts: u64,
    /// Requests accepted.
    pub accepted: u64,
    /// Refusals by reason ([`Refusal::index`]).
    pub refused: [u64; Refusal::ALL.len()],
}

impl SpaCounters {
    /// The count for one reason.
    pub fn refused(&self, r: Refusal) -> u64 {
        self.refused[r.index()]
    }
}

/// An enabled client, ready to verify.
struct ClientKey {
    name: String,
    cipher: Option<Cipher>,
    fwknop: Option<FwknopClient>,
    allow: Vec<PortSpec>,
    max_duration: u64,
    sources: Vec<Cidr>,
    allow_other_address: bool,
    require_address: bool,
    /// AEAD verifications of packets that passed this client's pre-filter.
    budget: Budget,
    /// Indexes of the commands it may run (into `Verifier::commands`).
    commands: Vec<usize>,
    /// Indexes of the forwards it may open (into `Verifier::forwards`).
    forwards: Vec<usize>,
    /// What a request without ports opens or closes (`list default_access`).
    default_access: Vec<PortSpec>,
}

/// An enabled command, as the verifier matches it.
struct CommandName {
    name: String,
    fwknop_match: Option<String>,
}

impl ClientKey {
    fn admits(&self, src: IpAddr) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|n| n.contains(src))
    }
}

/// Verifications allowed per whole second of monotonic time.
#[derive(Clone, Copy)]
struct Budget {
    per_second: u32,
    second: u64,
    used: u32,
}

impl Budget {
    fn new(per_second: u32) -> Budget {
        Budget {
            per_second,
            second: u64::MAX,
            used: 0,
        }
    }

    fn take(&mut self, now: Millis, n: u32) -> bool {
        let s = now.0 / 1000;
        if s != self.second {
            self.second = s;
            self.used = 0;
        }
        match self.used.checked_add(n) {
            Some(u) if u <= self.per_second => {
                self.used = u;
                true
            }
            _ => false,
        }
    }
}

/// Nonces of the last [`RECENT_REFUSALS`] authenticated packets refused for
/// their timestamp (too old, too new, before the replay guard): they cannot
/// enter the replay cache (their timestamps are outside the window it
/// covers), but their copies (`postern spa --repeat`, or someone replaying a
/// captured old packet) must not cost an AEAD each nor count as new
/// failures towards a ban: a copy is refused as a replay before the AEAD.
struct RecentRefusals {
    nonces: [[u8; NONCE_LEN]; RECENT_REFUSALS],
    len: usize,
    next: usize,
}

/// How many timestamp-refused nonces [`RecentRefusals`] keeps.
const RECENT_REFUSALS: usize = 64;

impl RecentRefusals {
    fn contains(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.nonces[..self.len].iter().any(|n| n == nonce)
    }

    fn push(&mut self, nonce: [u8; NONCE_LEN]) {
        self.nonces[self.next] = nonce;
        self.next = (self.next + 1) % RECENT_REFUSALS;
        self.len = (self.len + 1).min(RECENT_REFUSALS);
    }
}

/// What an accepted packet asks for, before it borrows the client's name.
struct Grant {
    kind: Kind,
    addr: IpAddr,
    item: usize,
    duration: u32,
    record: ReplayEntry,
}

/// A refusal before it borrows a client name.
struct Fail {
    reason: Refusal,
    client: Option<usize>,
    detail: Detail,
}

fn fail(reason: Refusal, client: Option<usize>, detail: Detail) -> Fail {
    Fail {
        reason,
        client,
        detail,
    }
}

/// The SPA core of the engine.
pub struct Verifier {
    clients: Vec<ClientKey>,
    commands: Vec<CommandName>,
    forwards: Vec<NamedForward>,
    max_skew: u64,
    /// The window of packets for their source (`source_skew`, at most `max_skew`).
    source_skew: u64,
    /// The fwknop path's budget (HMACs per second, all its packets).
    fwknop_budget: Budget,
    replay: ReplayCache,
    recent_refusals: RecentRefusals,
    guard: Option<Millis>,
    scratch: [u8; MAX_PLAINTEXT_LEN],
    fwknop_scratch: fwknop::Scratch,
    ports: heapless::Vec<PortSpec, MAX_PORTS>,
    counters: SpaCounters,
    /// What the replay cache recorded for the packet being verified.
    recorded: Option<ReplayEntry>,
}

impl Verifier {
    /// A verifier for the enabled clients of `config` (at most [`MAX_CLIENTS`]).
    pub fn new(config: &Config) -> Verifier {
        let commands: Vec<CommandName> = config
            .active_commands()
            .map(|c| CommandName {
                name: c.name.clone(),
                fwknop_match: c.fwknop_match.clone(),
            })
            .collect();
        let forwards: Vec<NamedForward> = config.active_forwards().cloned().collect();
        let index_of = |names: &[String], all: &[&str]| -> Vec<usize> {
            names
                .iter()
                .filter_map(|n| all.iter().position(|a| a == n))
                .collect()
        };
        let command_names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        let forward_names: Vec<&str> = forwards.iter().map(|f| f.name.as_str()).collect();
        let clients: Vec<ClientKey> = config
            .active_clients()
            .take(MAX_CLIENTS)
            .map(|c| ClientKey {
                commands: index_of(&c.commands, &command_names),
                forwards: index_of(&c.forwards, &forward_names),
                budget: Budget::new(config.main.spa_verify_budget),
                ..ClientKey::from(c)
            })
            .collect();
        let replay = ReplayCache::new(clients.len());
        Verifier {
            clients,
            commands,
            forwards,
            max_skew: config.main.max_skew.as_secs(),
            source_skew: config.main.source_skew.min(config.main.max_skew).as_secs(),
            fwknop_budget: Budget::new(config.main.spa_verify_budget),
            replay,
            recent_refusals: RecentRefusals {
                nonces: [[0; NONCE_LEN]; RECENT_REFUSALS],
                len: 0,
                next: 0,
            },
            guard: None,
            scratch: [0; MAX_PLAINTEXT_LEN],
            fwknop_scratch: fwknop::Scratch::new(),
            ports: heapless::Vec::new(),
            counters: SpaCounters::default(),
            recorded: None,
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> SpaCounters {
        self.counters
    }

    /// The replay record as plain data (for the state file and reloads;
    /// allocates: not for the packet path).
    pub fn replay_record(&self) -> ReplayRecord {
        ReplayRecord {
            floor: self.replay.floor(),
            entries: self
                .replay
                .iter()
                .map(|(owner, entry)| SavedEntry {
                    client: owner.map(|i| self.clients[i].name.clone()),
                    entry,
                })
                .collect(),
        }
    }

    /// Adds a saved replay record (from the state file, or the engine a
    /// reload replaces): each entry to its client's quota by name (or to the
    /// orphans), and the floor.
    pub fn restore_replay(&mut self, saved: &ReplayRecord, now: Now) {
        self.replay.raise_floor(saved.floor);
        for s in &saved.entries {
            let owner = s
                .client
                .as_deref()
                .and_then(|n| self.clients.iter().position(|c| c.name == n));
            self.replay.restore(owner, s.entry, now.unix, self.max_skew);
        }
    }

    /// Adds one entry a peer router recorded (as [`Verifier::restore_replay`]
    /// does for a saved one; no allocation).
    pub fn record_peer_replay(&mut self, client: Option<&str>, entry: ReplayEntry, now: Now) {
        let owner = client.and_then(|n| self.clients.iter().position(|c| c.name == n));
        self.replay.restore(owner, entry, now.unix, self.max_skew);
    }

    /// True when a packet with this replay id was recorded: one keyed hash,
    /// no cryptography (may be asked before the AEAD).
    pub fn replay_contains(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.replay.contains(nonce)
    }

    /// Entries in the replay cache.
    pub fn replay_len(&self) -> usize {
        self.replay.len()
    }

    /// The replay guard: the monotonic instant the replay record starts. Packets
    /// whose timestamp is not later than that instant (in wall-clock time, as
    /// the clock says now) plus `max_skew` are refused, because they could have
    /// been accepted before the record began. `None` (the default) disables it.
    pub fn replay_guard(&self) -> Option<Millis> {
        self.guard
    }

    /// Sets the replay guard (see [`Verifier::replay_guard`]).
    pub fn set_replay_guard(&mut self, guard: Option<Millis>) {
        self.guard = guard;
    }

    /// Verifies one UDP payload that arrived from `src`.
    pub fn verify(
        &mut self,
        now: Now,
        src: IpAddr,
        payload: &[u8],
    ) -> Result<Accepted<'_>, Refused<'_>> {
        self.counters.packets += 1;
        self.recorded = None;
        let checked = if fwknop::looks_like_fwknop(payload) {
            self.check_fwknop(now, src, payload)
        } else {
            self.check(now, src, payload)
        };
        match checked {
            Ok((i, g)) => {
                self.counters.accepted += 1;
                let c = &self.clients[i];
                Ok(Accepted {
                    client: &c.name,
                    kind: g.kind,
                    addr: g.addr,
                    ports: &self.ports,
                    item: g.item,
                    duration: Duration::from_secs(u64::from(g.duration)),
                    record: g.record,
                })
            }
            Err(f) => {
                self.counters.refused[f.reason.index()] += 1;
                Err(Refused {
                    reason: f.reason,
                    client: f.client.map(|i| self.clients[i].name.as_str()),
                    detail: f.detail,
                    record: self.recorded.take(),
                })
            }
        }
    }

    fn check(&mut self, now: Now, src: IpAddr, payload: &[u8]) -> Result<(usize, Grant), Fail> {
        let none = Detail::None;
        seal::check_len(payload).map_err(|_| fail(Refusal::BadLength, None, none))?;
        // Length checked: the nonce is there.
        let Some(input) = FilterInput::of(payload) else {
            return Err(fail(Refusal::BadLength, None, none));
        };
        let mut candidates = false;
        // What junk gets: no filter passed, so no AEAD was tried.
        let mut outcome = Refusal::AuthFailed;
        let mut replay_checked = false;
        let mut found = None;
        for (i, c) in self.clients.iter_mut().enumerate() {
            let Some(cipher) = &c.cipher else { continue };
            if !c.admits(src) {
                continue;
            }
            candidates = true;
            if !cipher.matches(&input) {
                continue;
            }
            self.counters.filter_passes += 1;
            // Copies of a recorded packet stop here, before any budget or AEAD.
            if !replay_checked {
                replay_checked = true;
                let nonce = seal::nonce_of(payload);
                if self.replay.contains(&nonce) || self.recent_refusals.contains(&nonce) {
                    return Err(fail(Refusal::Replay, Some(i), none));
                }
            }
            if !c.budget.take(now.mono, 1) {
                outcome = Refusal::BudgetExceeded;
                continue;
            }
            self.counters.aead_attempts += 1;
            match seal::open(cipher, payload, &mut self.scratch) {
                Ok(plain) => {
                    found = Some((i, plain.len()));
                    break;
                }
                Err(OpenError::Auth | OpenError::BadLength) => outcome = Refusal::AuthFailed,
            }
        }
        if !candidates {
            return Err(fail(Refusal::NoClientForSource, None, none));
        }
        let Some((i, len)) = found else {
            return Err(fail(outcome, None, none));
        };
        let who = Some(i);
        let repr = Request::new_checked(&self.scratch[..len])
            .and_then(|r| RequestRepr::parse(&r))
            .map_err(|e| fail(Refusal::BadRequest, who, Detail::Request(e)))?;
        let id = seal::nonce_of(payload);
        let requested = match repr.target {
            Target::Source => None,
            Target::Addr(a) => Some(a),
        };
        self.fresh(now, i, repr.timestamp, id, requested.is_none())?;
        let addr = self.target(i, src, requested, repr.kind)?;
        let item = match repr.kind {
            Kind::Open | Kind::Close => {
                self.allowed(i, &repr.ports)?;
                0
            }
            Kind::Command => {
                self.ports.clear();
                let name = repr.name.as_str();
                self.command_allowed(i, |c| c.name == name)?
            }
            Kind::Forward => {
                self.ports.clear();
                let name = repr.name.as_str();
                self.forward_allowed(i, |f| f.name == name)?
            }
        };
        let c = &self.clients[i];
        let timed = matches!(repr.kind, Kind::Open | Kind::Forward);
        if timed && u64::from(repr.duration) > c.max_duration {
            let d = Detail::Duration {
                requested: repr.duration,
                max: c.max_duration,
            };
            return Err(fail(Refusal::DurationTooLong, Some(i), d));
        }
        let record = ReplayEntry {
            nonce: id,
            timestamp: repr.timestamp,
        };
        Ok((
            i,
            Grant {
                kind: repr.kind,
                addr,
                item,
                duration: repr.duration,
                record,
            },
        ))
    }

    /// The address to grant: the source (unless the client requires an
    /// explicit address for what opens something), or an explicit one the
    /// client may ask for.
    fn target(
        &self,
        i: usize,
        src: IpAddr,
        requested: Option<IpAddr>,
        kind: Kind,
    ) -> Result<IpAddr, Fail> {
        match requested {
            // A command opens nothing for an address: a stolen one runs
            // what the client asked for anyway.
            None if self.clients[i].require_address && kind != Kind::Command => {
                Err(fail(Refusal::AddressRequired, Some(i), Detail::None))
            }
            None => Ok(src),
            Some(a) if a == src => Ok(a),
            Some(a) if !grantable(a) => Err(fail(Refusal::BadAddress, Some(i), Detail::Addr(a))),
            Some(a) if !self.clients[i].allow_other_address => {
                Err(fail(Refusal::OtherAddress, Some(i), Detail::Addr(a)))
            }
            Some(a) => Ok(a),
        }
    }

    /// Timestamp window (`source_skew` for a packet that asks for its
    /// `source`, else `max_skew`), replay guard and floor, and the replay
    /// cache, which records `id` now (even if a later check refuses the request).
    fn fresh(
        &mut self,
        now: Now,
        i: usize,
        timestamp: u64,
        id: [u8; NONCE_LEN],
        source: bool,
    ) -> Result<(), Fail> {
        let who = Some(i);
        if self.recent_refusals.contains(&id) {
            // A copy of a packet refused for its timestamp (fwknop's path
            // gets here; native copies stop before the AEAD).
            return Err(fail(Refusal::Replay, who, Detail::None));
        }
        let timed_out = self.timestamp_refusal(now, timestamp, source);
        if let Some((reason, skew)) = timed_out {
            self.recent_refusals.push(id);
            return Err(fail(reason, who, skew));
        }
        let entry = ReplayEntry {
            nonce: id,
            timestamp,
        };
        match self.replay.insert(i, entry, now.unix, self.max_skew) {
            Ok(()) => {
                self.recorded = Some(entry);
                Ok(())
            }
            Err(InsertError::Replayed(_)) => Err(fail(Refusal::Replay, who, Detail::None)),
            Err(InsertError::Full(_)) => Err(fail(Refusal::ReplayCacheFull, who, Detail::None)),
        }
    }

    /// The timestamp checks: the window, the replay guard and the floor.
    fn timestamp_refusal(
        &self,
        now: Now,
        timestamp: u64,
        source: bool,
    ) -> Option<(Refusal, Detail)> {
        let window = if source {
            self.source_skew
        } else {
            self.max_skew
        };
        let skew = i128::from(timestamp) - i128::from(now.unix);
        let skew_detail = Detail::Skew(skew.clamp(i64::MIN.into(), i64::MAX.into()) as i64);
        if skew < -i128::from(window) {
            return Some((Refusal::TooOld, skew_detail));
        }
        if skew > i128::from(window) {
            return Some((Refusal::TooNew, skew_detail));
        }
        if let Some(g) = self.guard {
            let guard_unix = now.unix.saturating_sub(now.mono.since(g) / 1000);
            if timestamp <= guard_unix.saturating_add(self.max_skew) {
                return Some((Refusal::BeforeReplayGuard, skew_detail));
            }
        }
        if timestamp < self.replay.floor() {
            return Some((Refusal::BeforeReplayGuard, skew_detail));
        }
        None
    }

    /// The index of the first enabled command that `matches` and that client
    /// `i` may run.
    fn command_allowed(
        &self,
        i: usize,
        matches: impl Fn(&CommandName) -> bool,
    ) -> Result<usize, Fail> {
        self.clients[i]
            .commands
            .iter()
            .copied()
            .find(|&k| matches(&self.commands[k]))
            .ok_or(fail(Refusal::CommandNotAllowed, Some(i), Detail::None))
    }

    /// The index of the first enabled forward that `matches` and that client
    /// `i` may open.
    fn forward_allowed(
        &self,
        i: usize,
        matches: impl Fn(&NamedForward) -> bool,
    ) -> Result<usize, Fail> {
        self.clients[i]
            .forwards
            .iter()
            .copied()
            .find(|&k| matches(&self.forwards[k]))
            .ok_or(fail(Refusal::ForwardNotAllowed, Some(i), Detail::None))
    }

    /// Every port must be in the client's allow list; copies them for the
    /// decision. No port at all asks for the client's `default_access`
    /// (refused when it has none).
    fn allowed(&mut self, i: usize, ports: &[PortSpec]) -> Result<(), Fail> {
        let c = &self.clients[i];
        let ports = if ports.is_empty() {
            if c.default_access.is_empty() {
                return Err(fail(Refusal::PortNotAllowed, Some(i), Detail::NoDefault));
            }
            &c.default_access[..]
        } else {
            ports
        };
        if let Some(p) = ports.iter().find(|p| !c.allow.contains(p)) {
            return Err(fail(Refusal::PortNotAllowed, Some(i), Detail::Port(*p)));
        }
        self.ports.clear();
        for p in ports {
            // Both hold at most MAX_PORTS.
            let _ = self.ports.push(*p);
        }
        Ok(())
    }
}

impl From<&Client> for ClientKey {
    fn from(c: &Client) -> ClientKey {
        ClientKey {
            name: c.name.clone(),
            cipher: c.key.as_ref().map(Cipher::new),
            fwknop: c.fwknop.clone(),
            allow: c.allow.clone(),
            max_duration: c.max_duration.as_secs(),
            sources: c.sources.clone(),
            allow_other_address: c.allow_other_address,
            require_address: c.require_address,
            budget: Budget::new(0),
            commands: Vec::new(),
            forwards: Vec::new(),
            default_access: c.default_access.clone(),
        }
    }
}

/// Whether a grant for `a` makes sense (the same rule the wire parser applies to sources).
fn grantable(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.is_loopback()
        || matches!(a, IpAddr::V4(v4) if v4.is_broadcast()))
}

mod fwknop_path;

#[cfg(test)]
mod actions_tests;
#[cfg(test)]
mod default_access_tests;
#[cfg(test)]
mod fwknop_tests;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod tests;
