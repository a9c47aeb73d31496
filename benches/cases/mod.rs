//! Per-packet workloads shared by `benches/packets.rs` (timing, callgrind) and
//! `tests/alloc.rs` (zero allocations per packet).
//!
//! Every case drives the public API exactly as the daemon does: real frames
//! (valid checksums unless the case is about bad ones) through
//! `Engine::on_frame` with `Checksums::Verify`, or `wire::observe` alone.
//! Setup (config, engine, frame pools, table prefill) allocates; [`Case::step`]
//! must not. Each case also states what its packets must do to the engine's
//! counters, so a case that silently takes another path is caught
//! ([`Case::verify`]).
//!
//! Adding a case is one entry in [`NAMES`] and [`DESCRIPTIONS`], one arm in
//! [`Case::new`] and one arm in [`Case::verify`] (and one test in
//! `tests/alloc.rs`, which counts the cases).
//!
//! # A valid SPA packet, measured honestly
//!
//! A valid SPA packet is accepted once: the replay cache refuses its nonce
//! ever after, and a cache full of live entries refuses new ones, so no
//! fixed pool of sealed packets can be accepted forever (sealing a fresh one
//! per step would time the sender too). Two measurements cover it:
//!
//! * `spa_valid` (steady state, cycled forever): a pool of [`SPA_POOL`]
//!   packets with distinct nonces, each accepted once in the set-up pass;
//!   from then on every packet is a replay: length, the client's pre-filter
//!   (one SipHash), the replay lookup (one keyed hash into the cache's
//!   index), refused before the AEAD — what a flood of captured packets costs.
//! * the *first pass* of `spa_valid` ([`Case::cold`], [`FIRST_PASS`]): a
//!   fresh engine, every packet accepted (pre-filter, budget, one AEAD open,
//!   request parse, timestamp window, cache insert, allow list, an Open
//!   decision each), the cache filling from 0 to [`SPA_POOL`]: the whole
//!   cost of a valid packet. Bounded by the pool, so the benchmark
//!   times many fresh passes, callgrind counts one, and `tests/alloc.rs`
//!   counts allocations over the second half of one.
//!
//! `fwknop_valid` is measured the same way: the real fwknop client's packet
//! (`src/spa/fwknop/testdata/packets.txt`, `access_source_sha256`: `-A tcp/22
//! -s`, HMAC-SHA256) and 63 re-seals of its plaintext with other salts
//! (`postern::spa::fwknop::seal_for_test`, hidden from the docs, unused by
//! the daemon), so 64 distinct packets whose replay ids differ. The engine
//! clock is the client's timestamp, as in the fwknop vector tests.
//!
//! [`SPA_POOL`] (64) fills one client's replay quota
//! (`postern::spa::replay::QUOTA`) exactly: the first pass accepts them all.

use std::hint::black_box;

use postern::config;
use postern::engine::{Counters, Engine};
use postern::knock::volume::VolumePolicy;
use postern::port::PortSpec;
use postern::spa::fwknop;
use postern::spa::seal::{seal, MAX_PACKET_LEN, MIN_PACKET_LEN};
use postern::spa::{Key, Kind, Refusal, RequestRepr, Target as SpaTarget};
use postern::time::{Millis, Now};
use postern::wire::{self, Checksums};

/// The configuration every engine case runs with: one 3-step sequence. Bans
/// are off: the `knock_step` client makes a wrong step every other packet and
/// would be banned after ten (the case measures matching, not a banned source).
pub const CONFIG: &str = "\
config postern 'main'
\toption backend 'dry-run'
\toption ban_duration '0'

config sequence 'ssh'
\tlist knock 'tcp:7000'
\tlist knock 'udp:8000'
\tlist knock 'tcp:9000'
\toption timeout '10'
\tlist open 'tcp:2222'
\toption duration '30'
";

/// Every case, in report order.
pub const NAMES: [&str; 14] = [
    "junk_syn_other_port",
    "malformed_bad_tcp_checksum",
    "knock_step",
    "sequence_complete",
    "knock_over_volume_limit",
    "spoofed_first_knock_full_table",
    "wire_observe",
    "spa_valid",
    "spa_junk",
    "spa_junk_32_clients",
    "spa_filtered_over_budget",
    "fwknop_valid",
    "fwknop_junk",
    "spa_junk_bans",
];

/// One line of explanation per case (same order as [`NAMES`]).
pub const DESCRIPTIONS: [&str; 14] = [
    "valid IPv4 SYN to tcp:2222 (a port in no sequence): parsed, checksummed, ignored",
    "IPv4 SYN to tcp:7000 with a wrong TCP checksum: parsed, rejected, counted",
    "one source alternates tcp:7000, udp:8000 (reset + first step, second step)",
    "one source knocks tcp:7000, udp:8000, tcp:9000 (an Open decision every 3 packets)",
    "one source over its knock volume limit (240/min): counted and ignored",
    "first knocks from 16384 spoofed sources into a full table (4096): evicts the oldest",
    "wire::observe alone on a valid IPv4 SYN (checksums verified)",
    "valid native SPA packet replayed (1 client): pre-filter, replay lookup; refused before the AEAD",
    "random bytes of SPA size (75-296) from spoofed sources, 1 client: one SipHash, auth_failed",
    "the same junk with 32 clients: 32 SipHashes per packet (the bound), no AEAD",
    "packets that pass the client's pre-filter (forged ciphertext) once its budget is spent",
    "valid fwknop packet (Rijndael + HMAC-SHA256, 1 client): HMAC, AES, parse; refused at replay",
    "base64 junk of fwknop size (150-300) from spoofed sources, 1 client: one HMAC, auth_failed",
    "SPA junk with bans on: fresh spoofed sources fail into a full ban table (evicting), 1 in 9 from a banned source (ignored)",
];

/// Cases that also have a bounded first pass (see the module docs).
pub const FIRST_PASS: [&str; 2] = ["spa_valid", "fwknop_valid"];

/// Valid SPA packets in the `spa_valid` and `fwknop_valid` pools (distinct
/// nonces, distinct salts).
pub const SPA_POOL: usize = 64;
// The first pass accepts every packet of the pool: it must fit one client's quota.
const _: () = assert!(SPA_POOL <= postern::spa::replay::QUOTA);
/// Junk payloads in the SPA junk pools (lengths spread over 75..=296).
const JUNK_POOL: usize = 64;
/// The SPA port of the SPA cases' config.
const SPA_PORT: u16 = 62201;

/// The router address the frames are sent to.
const DST: [u8; 4] = [10, 77, 0, 1];
/// The legitimate knocker of the single-source cases.
const CLIENT: [u8; 4] = [10, 77, 0, 2];
/// Spoofed sources in the eviction case: four times the table capacity, so
/// a source has always been evicted before it comes round again.
const SPOOFED_SOURCES: u32 = 4 * postern::knock::KNOCK_TABLE_CAPACITY as u32;
/// Fresh spoofed sources of the ban case: four times the ban table, so a
/// source has always been evicted before it comes round again.
const BAN_SOURCES: u32 = 4 * postern::bans::BAN_TABLE_CAPACITY as u32;
/// The ban case's source that is banned in the set-up pass.
const BANNED: [u8; 4] = [10, 77, 0, 66];
/// Engine time: constant, so no attempt ever times out (the eviction case
/// must evict, not purge).
const NOW: Now = Now {
    mono: Millis(1_000_000),
    unix: 1_800_000_000,
};

/// The SPA cases' configuration: the knock sequence of [`CONFIG`], SPA on
/// [`SPA_PORT`], `clients` clients (keys `[i; 32]`), the last one is the one
/// whose key seals `spa_valid`'s packets (every key is tried before it).
fn spa_config(clients: u8, budget: u32) -> String {
    let mut c = CONFIG.replace(
        "\toption backend 'dry-run'\n",
        &format!(
            "\toption backend 'dry-run'\n\toption spa_port '{SPA_PORT}'\n\toption spa_verify_budget '{budget}'\n"
        ),
    );
    for i in 1..=clients {
        c.push_str(&format!(
            "\nconfig client 'c{i}'\n\toption key '{}'\n\tlist allow 'tcp:2222'\n\toption max_duration '300'\n",
            Key::from_bytes([i; 32]).to_base64()
        ));
    }
    c
}

/// A valid SPA payload for key `[k; 32]`: open tcp:2222 for 30 s for the
/// source, stamped [`NOW`], the nonce's random bytes from `n`, 32 bytes of padding.
fn spa_packet(k: u8, n: u64) -> Vec<u8> {
    let repr = RequestRepr {
        kind: Kind::Open,
        timestamp: NOW.unix,
        duration: 30,
        target: SpaTarget::Source,
        ports: [PortSpec::tcp(2222)].into_iter().collect(),
        name: heapless::String::new(),
    };
    let mut random = [0x3c; 20];
    random[..8].copy_from_slice(&n.to_be_bytes());
    let mut out = [0u8; MAX_PACKET_LEN];
    let len = seal(
        &Key::from_bytes([k; 32]),
        &random,
        &repr,
        &[0x5a; 32],
        &mut out,
    )
    .expect("the bench request fits");
    out[..len].to_vec()
}

/// The real fwknop client's vector `access_source_sha256`: its keys (from
/// the command line), timestamp and packet.
fn fwknop_vector() -> (fwknop::Keys, u64, Vec<u8>) {
    let text = include_str!("../../src/spa/fwknop/testdata/packets.txt");
    let block = text
        .split("\n\n")
        .find(|b| b.starts_with("vector: access_source_sha256\n"))
        .expect("the vector is in packets.txt");
    let field = |name: &str| {
        block
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("every field")
            .trim()
    };
    let arg = |flag: &str| {
        let mut words = field("command:").split(' ');
        words.find(|w| *w == flag);
        words.next().expect("the flag's value")
    };
    let keys = fwknop::Keys {
        key: fwknop::Secret::from_base64(arg("--key-base64-rijndael")).expect("key"),
        hmac_key: fwknop::Secret::from_base64(arg("--key-base64-hmac")).expect("hmac key"),
        hmac_type: fwknop::HmacType::Sha256,
    };
    let timestamp = field("timestamp:").parse().expect("timestamp");
    (keys, timestamp, field("packet:").as_bytes().to_vec())
}

/// The fwknop cases' configuration: the knock sequence of [`CONFIG`], SPA on
/// [`SPA_PORT`], one client with the vector's fwknop keys only.
fn fwknop_config(keys: &fwknop::Keys) -> String {
    let b64 = |b: &[u8]| postern::base64::encode(b);
    format!(
        "{}\nconfig client 'phone'\n\toption fwknop_key '{}'\n\toption fwknop_hmac_key '{}'\n\
         \tlist allow 'tcp:22'\n\toption max_duration '300'\n",
        CONFIG.replace(
            "\toption backend 'dry-run'\n",
            &format!(
                "\toption backend 'dry-run'\n\toption spa_port '{SPA_PORT}'\n\toption spa_verify_budget '1000000'\n"
            ),
        ),
        b64(keys.key.as_bytes()),
        b64(keys.hmac_key.as_bytes()),
    )
}

/// [`SPA_POOL`] valid fwknop packets: the client's own, then its plaintext
/// sealed again with salts 1, 2, … (distinct packets, distinct replay ids).
fn fwknop_pool(keys: &fwknop::Keys, packet: &[u8]) -> Vec<Vec<u8>> {
    let mut scratch = fwknop::Scratch::new();
    let plain = fwknop::decrypt(keys, packet, &mut scratch)
        .expect("the client's packet decrypts")
        .to_vec();
    let mut pool = vec![packet.to_vec()];
    pool.extend((1..SPA_POOL as u64).map(|n| fwknop::seal_for_test(keys, n.to_be_bytes(), &plain)));
    pool
}

/// fwknop-shaped junk `i`: base64 text (no `=`) of 150..=300 characters that
/// does not start with the stripped `Salted__` prefix.
fn fwknop_junk_payload(i: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let len = 150 + (i * 97) % 151;
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ (i as u64);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize]
        })
        .collect()
}

/// Junk payload `i` of the pool: deterministic pseudo-random bytes of a
/// length between the native packet's bounds.
fn junk_payload(i: usize) -> Vec<u8> {
    let span = MAX_PACKET_LEN - MIN_PACKET_LEN + 1;
    let len = MIN_PACKET_LEN + (i * 97) % span;
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64);
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What the case feeds.
enum Target {
    Engine(Box<Engine>),
    Observe,
}

/// A prepared workload: a pool of frames cycled through one target.
pub struct Case {
    /// The case name (one of [`NAMES`]).
    pub name: &'static str,
    target: Target,
    frames: Vec<Vec<u8>>,
    next: usize,
    /// Engine time of the next packet.
    now: Now,
    /// Milliseconds the engine clock advances per packet (0: constant time).
    tick_ms: u64,
    /// Built by [`Case::cold`]: no set-up pass, the first pass is measured.
    cold: bool,
    /// Packets fed since the last [`Case::mark`].
    packets: u64,
    /// Decisions the engine made since the last [`Case::mark`].
    decisions: u64,
    /// `wire::observe` successes since the last [`Case::mark`].
    observed: u64,
    baseline: Counters,
}

impl Case {
    /// Builds case `name` (setup allocates), or `None` for an unknown name.
    pub fn new(name: &str) -> Option<Case> {
        let mut case = Case::build(name)?;
        // One full pass over the pool: fills the table in the eviction case,
        // has every SPA packet accepted once, spends the budget, and brings
        // every case to its steady state.
        case.run(case.frames.len() as u64);
        case.mark();
        Some(case)
    }

    /// Builds case `name` without the set-up pass, for a measured first pass
    /// (at most [`Case::cycle_len`] packets); only names in [`FIRST_PASS`].
    pub fn cold(name: &str) -> Option<Case> {
        if !FIRST_PASS.contains(&name) {
            return None;
        }
        let mut case = Case::build(name)?;
        case.cold = true;
        case.mark();
        Some(case)
    }

    fn build(name: &str) -> Option<Case> {
        let name = *NAMES.iter().find(|n| **n == name)?;
        let spa = |src: [u8; 4], payload: &[u8]| ipv4_udp(src, DST, 40002, SPA_PORT, payload);
        let junk = || -> Vec<Vec<u8>> {
            (0..JUNK_POOL)
                .map(|i| spa(spoofed(i as u32), &junk_payload(i)))
                .collect()
        };
        // The SPA cases advance the engine clock 1 ms per packet so that the
        // per-second verification budget is a real budget (not spent once
        // for ever), except the case that is about a spent budget.
        let mut tick_ms = 0;
        let mut now = NOW;
        let tcp = |src: [u8; 4], dport: u16| ipv4_tcp(src, DST, 40000, dport, TCP_SYN);
        let udp = |src: [u8; 4], dport: u16| ipv4_udp(src, DST, 40001, dport, &[]);
        let (target, frames) = match name {
            "junk_syn_other_port" => (engine(), vec![tcp(CLIENT, 2222)]),
            "malformed_bad_tcp_checksum" => {
                let mut f = tcp(CLIENT, 7000);
                f[20 + 16] ^= 0x5a; // TCP checksum, high byte
                (engine(), vec![f])
            }
            "knock_step" => (engine(), vec![tcp(CLIENT, 7000), udp(CLIENT, 8000)]),
            "knock_over_volume_limit" => (
                engine_limited(),
                vec![tcp(CLIENT, 7000), udp(CLIENT, 8000), tcp(CLIENT, 9000)],
            ),
            "sequence_complete" => (
                engine(),
                vec![tcp(CLIENT, 7000), udp(CLIENT, 8000), tcp(CLIENT, 9000)],
            ),
            "spoofed_first_knock_full_table" => {
                let frames = (0..SPOOFED_SOURCES)
                    .map(|i| tcp(spoofed(i), 7000))
                    .collect();
                (engine(), frames)
            }
            "wire_observe" => (Target::Observe, vec![tcp(CLIENT, 7000)]),
            "spa_valid" => {
                tick_ms = 1;
                let frames = (0..SPA_POOL as u64)
                    .map(|n| spa(CLIENT, &spa_packet(1, n)))
                    .collect();
                (engine_with(&spa_config(1, 1_000_000)), frames)
            }
            "spa_junk" => {
                tick_ms = 1;
                (engine_with(&spa_config(1, 1_000_000)), junk())
            }
            "spa_junk_32_clients" => {
                tick_ms = 1;
                (engine_with(&spa_config(32, 1_000_000)), junk())
            }
            "spa_filtered_over_budget" => {
                // The client's nonces (they pass its pre-filter) with a
                // forged rest: never accepted, so never in the replay cache.
                let frames = (0..JUNK_POOL as u64)
                    .map(|n| {
                        let mut p = spa_packet(1, 1000 + n);
                        if let Some(b) = p.last_mut() {
                            *b ^= 0x5a;
                        }
                        spa(CLIENT, &p)
                    })
                    .collect();
                (engine_with(&spa_config(1, 32)), frames)
            }
            "fwknop_valid" => {
                tick_ms = 1;
                let (keys, timestamp, packet) = fwknop_vector();
                now.unix = timestamp;
                let frames = fwknop_pool(&keys, &packet)
                    .iter()
                    .map(|p| spa(CLIENT, p))
                    .collect();
                (engine_with(&fwknop_config(&keys)), frames)
            }
            "spa_junk_bans" => {
                tick_ms = 1;
                let mut frames = Vec::new();
                for i in 0..BAN_SOURCES {
                    let payload = junk_payload(i as usize % JUNK_POOL);
                    if i % 8 == 0 {
                        frames.push(spa(BANNED, &payload));
                    }
                    frames.push(spa(spoofed(BAN_SOURCES + i), &payload));
                }
                let text = spa_config(1, 1_000_000).replace(
                    "\toption ban_duration '0'\n",
                    "\toption ban_threshold '2'\n",
                );
                (engine_with(&text), frames)
            }
            "fwknop_junk" => {
                tick_ms = 1;
                let (keys, _, _) = fwknop_vector();
                let frames = (0..JUNK_POOL)
                    .map(|i| spa(spoofed(i as u32), &fwknop_junk_payload(i)))
                    .collect();
                (engine_with(&fwknop_config(&keys)), frames)
            }
            _ => return None,
        };
        Some(Case {
            name,
            target,
            frames,
            next: 0,
            now,
            tick_ms,
            cold: false,
            packets: 0,
            decisions: 0,
            observed: 0,
            baseline: Counters::default(),
        })
    }

    /// Frames in the pool (one cycle of the workload).
    pub fn cycle_len(&self) -> usize {
        self.frames.len()
    }

    /// Feeds the next frame of the pool. Must not allocate.
    #[inline(never)]
    pub fn step(&mut self) {
        let frame = &self.frames[self.next];
        self.next += 1;
        if self.next == self.frames.len() {
            self.next = 0;
        }
        self.packets += 1;
        let now = self.now;
        self.now.mono = Millis(now.mono.0 + self.tick_ms);
        match &mut self.target {
            Target::Engine(e) => {
                let decisions = &mut self.decisions;
                e.on_frame(now, black_box(frame), Checksums::Verify, &mut |d| {
                    black_box(d);
                    *decisions += 1;
                });
            }
            Target::Observe => {
                if black_box(wire::observe(black_box(frame), Checksums::Verify)).is_ok() {
                    self.observed += 1;
                }
            }
        }
    }

    /// Feeds `n` frames.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Starts a new accounting period for [`Case::verify`].
    pub fn mark(&mut self) {
        self.packets = 0;
        self.decisions = 0;
        self.observed = 0;
        if let Target::Engine(e) = &self.target {
            self.baseline = e.counters();
        }
    }

    /// Checks that the packets since [`Case::mark`] took the path the case
    /// is about (counted by the engine), e.g. that the eviction case evicted
    /// once per packet.
    pub fn verify(&self) -> Result<(), String> {
        let n = self.packets;
        let now = match &self.target {
            Target::Engine(e) => e.counters(),
            Target::Observe => Counters::default(),
        };
        let b = &self.baseline;
        let frames = now.frames - b.frames;
        let rejected = now.rejected.total() - b.rejected.total();
        let not_knock = now.knock.not_knock_port - b.knock.not_knock_port;
        let steps = now.knock.steps_matched - b.knock.steps_matched;
        let resets = now.knock.resets - b.knock.resets;
        let completed = now.knock.completed - b.knock.completed;
        let evictions = now.knock.evictions - b.knock.evictions;
        let full = now.knock.dropped_table_full - b.knock.dropped_table_full;
        let cycles = n / self.frames.len() as u64;
        let spa = &now.spa;
        let spa_packets = spa.packets - b.spa.packets;
        let aead = spa.aead_attempts - b.spa.aead_attempts;
        let hmac = spa.hmac_attempts - b.spa.hmac_attempts;
        let accepted = spa.accepted - b.spa.accepted;
        let refused = |r: Refusal| spa.refused(r) - b.spa.refused(r);
        let opened = now.opened - b.opened;
        let ok = match self.name {
            "spa_valid" if self.cold => {
                n <= self.frames.len() as u64
                    && accepted == n
                    && opened == n
                    && aead == n
                    && self.decisions == n
            }
            "spa_valid" => {
                spa_packets == n
                    && aead == 0
                    && refused(Refusal::Replay) == n
                    && accepted == 0
                    && self.decisions == n
            }
            "fwknop_valid" if self.cold => {
                n <= self.frames.len() as u64
                    && accepted == n
                    && opened == n
                    && hmac == n
                    && aead == 0
                    && self.decisions == n
            }
            "fwknop_valid" => {
                spa_packets == n
                    && hmac == n
                    && aead == 0
                    && refused(Refusal::Replay) == n
                    && accepted == 0
                    && self.decisions == n
            }
            "fwknop_junk" => {
                spa_packets == n && hmac == n && aead == 0 && refused(Refusal::AuthFailed) == n
            }
            "spa_junk" | "spa_junk_32_clients" => {
                spa_packets == n && aead == 0 && refused(Refusal::AuthFailed) == n
            }
            "spa_junk_bans" => {
                let bans = &now.bans;
                let ignored = bans.from_banned - b.bans.from_banned;
                let failures = bans.failures - b.bans.failures;
                ignored > 0
                    && spa_packets + ignored == n
                    && refused(Refusal::AuthFailed) == spa_packets
                    && failures == spa_packets
                    && bans.evicted - b.bans.evicted == spa_packets
                    && bans.bans == b.bans.bans
            }
            "spa_filtered_over_budget" => {
                spa_packets == n && aead == 0 && refused(Refusal::BudgetExceeded) == n
            }
            "junk_syn_other_port" => frames == n && not_knock == n && rejected == 0,
            "malformed_bad_tcp_checksum" => {
                let bad = wire::Reject::BadTransportChecksum;
                frames == n && rejected == n && now.rejected.get(bad) - b.rejected.get(bad) == n
            }
            "knock_step" => steps == n && resets + 1 >= n / 2 && completed == 0,
            "knock_over_volume_limit" => {
                now.volume.limited - b.volume.limited == n && steps == 0 && self.decisions == 0
            }
            "sequence_complete" => steps == n && completed >= cycles && self.decisions == completed,
            "spoofed_first_knock_full_table" => {
                let table_full = match &self.target {
                    Target::Engine(e) => {
                        e.knocks_in_progress() == postern::knock::KNOCK_TABLE_CAPACITY
                    }
                    Target::Observe => false,
                };
                steps == n && evictions == n && full == 0 && table_full
            }
            "wire_observe" => self.observed == n,
            _ => false,
        };
        if ok && n > 0 {
            Ok(())
        } else {
            Err(format!(
                "{}: {n} packets: frames {frames}, rejected {rejected}, not-knock {not_knock}, \
                 steps {steps}, resets {resets}, completed {completed}, decisions {}, \
                 evictions {evictions}, dropped-full {full}, observed {}, spa packets \
                 {spa_packets}, aead {aead}, hmac {hmac}, accepted {accepted}, opened {opened}",
                self.name, self.decisions, self.observed
            ))
        }
    }
}

fn engine() -> Target {
    engine_with(CONFIG)
}

/// An engine for [`CONFIG`] with no knock volume limit: the knock cases
/// measure matching (one client knocks far more than a user would); the
/// volume table is still looked up for every knock.
fn engine_with(text: &str) -> Target {
    let cfg = config::parse_str("bench", text).expect("bench config parses");
    let mut e = Engine::new(&cfg);
    e.set_volume_policy(VolumePolicy {
        limit: u32::MAX,
        ..VolumePolicy::default()
    });
    Target::Engine(Box::new(e))
}

/// An engine for [`CONFIG`] with the default knock volume limit, its client
/// already over it (the case's packets are all ignored).
fn engine_limited() -> Target {
    let cfg = config::parse_str("bench", CONFIG).expect("bench config parses");
    let mut e = Engine::new(&cfg);
    let knock = ipv4_tcp(CLIENT, DST, 40000, 7000, TCP_SYN);
    for _ in 0..e.volume().policy().limit {
        e.on_frame(NOW, &knock, Checksums::Verify, &mut |_| {});
    }
    Target::Engine(Box::new(e))
}

/// Spoofed source `i`: 100.64.0.0/10 and up, never the lab's or a bad address.
fn spoofed(i: u32) -> [u8; 4] {
    (0x6440_0000u32 + i + 1).to_be_bytes()
}

/// TCP flags of a connection opening.
const TCP_SYN: u8 = 0x02;

/// An IPv4 + TCP frame (no options, no payload) with correct checksums.
pub fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(20);
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&0x1234_5678u32.to_be_bytes()); // seq
    l4.extend_from_slice(&0u32.to_be_bytes()); // ack
    l4.push(5 << 4); // data offset: 20 bytes
    l4.push(flags);
    l4.extend_from_slice(&64240u16.to_be_bytes()); // window
    l4.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let c = l4_checksum(src, dst, 6, &l4);
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 6, &l4)
}

/// An IPv4 + UDP frame with correct checksums.
pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + payload.len());
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    let c = match l4_checksum(src, dst, 17, &l4) {
        0 => 0xffff, // RFC 768: a computed zero is sent as all ones
        c => c,
    };
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 17, &l4)
}

/// Prepends an IPv4 header (DF, TTL 64, no options) with its checksum.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = fold(sum16(&p, 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// The TCP/UDP checksum over the IPv4 pseudo-header and `l4`.
fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> u16 {
    let mut acc = sum16(&src, 0);
    acc = sum16(&dst, acc);
    acc += u32::from(proto) + l4.len() as u32;
    fold(sum16(l4, acc))
}

/// Adds the big-endian 16-bit words of `data` (odd tail padded with zero).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let hi = c[0];
        let lo = c.get(1).copied().unwrap_or(0);
        acc += u32::from(u16::from_be_bytes([hi, lo]));
    }
    acc
}

/// Folds the carries and complements: the Internet checksum.
fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}
