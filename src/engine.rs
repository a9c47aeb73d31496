//! The engine: frames and observations in, [`Decision`]s out.
//!
//! Owns the knock [`Matcher`], the SPA [`Verifier`] (UDP to `spa_port` goes
//! there instead of the matcher) and the counters that `postern status`
//! reports, and the [`BanTable`]: failed SPA packets (authentication, replay,
//! timestamp) count against their source's network (IPv4 address, IPv6
//! /`ban_ipv6_prefix`), which is banned past the configured threshold
//! ([`Decision::Ban`]) unless it is one the table never bans (link-local,
//! multicast, the router's own networks and gateways: see
//! [`Engine::set_protected`]); a banned network's packets are ignored.
//!
//! Knocks never count as failures, right or wrong: a ban is visible from
//! outside, so a ban that came sooner after wrong knocks than after right ones
//! would tell an attacker which of their guesses were right (an oracle: a
//! TOTP or static sequence learned one knock at a time). Instead every knock
//! into a knock range or onto a static knock port is counted against its
//! source network by [`VolumeTable`], whatever it was, and ignored past the
//! limit. Sans-IO: no syscalls, no clock reads (time is an
//! argument), no heap allocation per packet; everything is allocated in
//! [`Engine::new`].

use core::fmt;
use core::net::IpAddr;
use core::time::Duration;

use crate::bans::{BanCounters, BanPolicy, BanTable, ProtectedNets};
use crate::cidr::Cidr;
use crate::config::{Action, Config, MAX_SEQUENCES};
use crate::knock::authenticated::{AuthClient, AuthCounters, AuthKeys, AuthMatcher, AuthVerdict};
use crate::knock::encoded::{EncodedCounters, EncodedMatcher, EncodedProfile};
use crate::knock::hmac::HmacKey;
use crate::knock::totp::{TotpCounters, TotpMatcher, TotpSteps};
use crate::knock::volume::{Volume, VolumeCounters, VolumePolicy, VolumeTable};
use crate::knock::{KnockCounters, Matcher, SequenceSteps};
use crate::port::{L4Proto, PortSpec};
use crate::spa::{self, Refusal, Refused, ReplayEntry, ReplayRecord, SpaCounters, Verifier};
use crate::time::{Millis, Now};
use crate::wire::{self, Checksums, Observation, RejectCounters};

/// Who asked for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// A completed knock sequence.
    Sequence(&'a str),
    /// An SPA client (by its `config client` name), in a packet from `from`.
    Client {
        /// The client's name.
        name: &'a str,
        /// The packet's source address.
        from: IpAddr,
    },
    /// An encoded sequence of a `config encoded` profile.
    Encoded(&'a str),
    /// An authenticated knock sequence of a client (by its `config client` name).
    KnockClient {
        /// The client's name.
        name: &'a str,
        /// The knocks' source address.
        from: IpAddr,
    },
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Sequence(name) => write!(f, "sequence {name}"),
            Origin::Client { name, from } => write!(f, "spa client {name}, packet from {from}"),
            Origin::Encoded(name) => write!(f, "encoded {name}"),
            Origin::KnockClient { name, from } => {
                write!(f, "knock client {name}, knocks from {from}")
            }
        }
    }
}

/// What the firewall edge must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Allow `addr` to `ports` for `duration` (new connections; established ones stay).
    Open {
        /// The address allowed in (the knocker, the SPA packet's source, or its `-a` address).
        addr: IpAddr,
        /// Who asked.
        by: Origin<'a>,
        /// Ports to open.
        ports: &'a [PortSpec],
        /// How long new connections are allowed.
        duration: Duration,
        /// For SPA: the replay record to persist before granting (see [`Engine::replay_record`]).
        record: Option<ReplayEntry>,
    },
    /// Remove `addr`'s grants on `ports` now.
    Close {
        /// The address whose grants go.
        addr: IpAddr,
        /// Who asked.
        by: Origin<'a>,
        /// Ports to close.
        ports: &'a [PortSpec],
        /// For SPA: the replay record to persist before revoking.
        record: Option<ReplayEntry>,
    },
    /// An SPA packet was refused (nothing to do but log; already counted).
    Refuse {
        /// The packet's source address.
        src: IpAddr,
        /// Why, and the client if its key authenticated the packet.
        refused: Refused<'a>,
    },
    /// Run an enabled command (an authenticated, fresh SPA request the
    /// client may make). The command runs for the packet's source.
    Run {
        /// The index of the command in [`Config::active_commands`].
        command: usize,
        /// Who asked.
        by: Origin<'a>,
        /// The replay record to persist before running.
        record: Option<ReplayEntry>,
    },
    /// Let `addr` through an enabled forward for `duration`.
    Forward {
        /// The address allowed through (the packet's source, or its `-a` address).
        addr: IpAddr,
        /// The index of the forward in [`Config::active_forwards`].
        forward: usize,
        /// Who asked.
        by: Origin<'a>,
        /// How long new connections are forwarded.
        duration: Duration,
        /// The replay record to persist before forwarding.
        record: Option<ReplayEntry>,
    },
    /// Ban the network `net` for `duration` (too many failures from it; see
    /// [`crate::bans`]): an IPv4 address as /32, IPv6 per `ban_ipv6_prefix`.
    Ban {
        /// The network banned.
        net: Cidr,
        /// How long.
        duration: Duration,
    },
}

/// Everything the engine has counted since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Frames handed to [`Engine::on_frame`].
    pub frames: u64,
    /// Frames rejected by the wire parser, by reason.
    pub rejected: RejectCounters,
    /// TCP packets that were not an initial SYN (ignored: knocks are SYNs).
    pub tcp_not_syn: u64,
    /// Knock matcher counters.
    pub knock: KnockCounters,
    /// SPA verifier counters.
    pub spa: SpaCounters,
    /// TOTP sequence counters.
    pub totp: TotpCounters,
    /// Encoded sequence counters.
    pub encoded: EncodedCounters,
    /// Authenticated knock counters.
    pub auth: AuthCounters,
    /// Knock volume per source network (all knock modes and static knock ports).
    pub volume: VolumeCounters,
    /// Open decisions made.
    pub opened: u64,
    /// Close decisions made.
    pub closed: u64,
    /// Run decisions made (commands).
    pub commands: u64,
    /// Forward decisions made.
    pub forwards: u64,
    /// Failures, bans and packets ignored from banned sources.
    pub bans: BanCounters,
}

/// What a completed sequence does, kept beside the matcher's steps.
struct SequenceAction {
    name: String,
    action: Action,
    ports: Vec<PortSpec>,
    duration: Duration,
}

/// The sans-IO core of the daemon.
pub struct Engine {
    matcher: Matcher,
    actions: Vec<SequenceAction>,
    /// `udp:spa_port` goes to the verifier when some client is enabled.
    spa_port: Option<u16>,
    verifier: Verifier,
    /// TOTP sequences (when configured) and what each does.
    totp: Option<(TotpMatcher, Vec<SequenceAction>)>,
    /// Encoded profiles (when configured) and their names.
    encoded: Option<(EncodedMatcher, Vec<String>)>,
    /// Clients with knock ranges (when configured).
    auth: Option<AuthMatcher>,
    /// Failures per source and live bans.
    bans: BanTable,
    /// Knocks per source network, limited whatever they were.
    volume: VolumeTable,
    counters: Counters,
}

/// Whether an SPA refusal counts as a failure towards a ban: a packet that does
/// not authenticate, or a timestamp out of the window. Refusals that say
/// nothing about the sender's knowledge of a key (length, no client for the
/// source, the budget spent, a full replay cache) or that come from a client
/// that authenticated (ports, durations, addresses) do not; nor do replays:
/// `postern spa --repeat` sends copies of one packet, and anyone who saw a
/// packet could replay it with the client's address as source to get the
/// client banned (a replay costs a hash lookup, no AEAD: nothing to ban for).
fn spa_failure(r: Refusal) -> bool {
    matches!(
        r,
        Refusal::AuthFailed | Refusal::TooOld | Refusal::TooNew | Refusal::BeforeReplayGuard
    )
}

/// Counts a failure of `src`; emits a ban when it crosses the threshold.
fn note_failure<'s>(
    bans: &mut BanTable,
    now: Millis,
    src: IpAddr,
    out: &mut impl FnMut(Decision<'s>),
) {
    if let Some((net, duration)) = bans.on_failure(now, src) {
        out(Decision::Ban { net, duration });
    }
}

/// The decision for a completed sequence's action, counted.
fn act<'s>(a: &'s SequenceAction, addr: IpAddr, counters: &mut Counters) -> Decision<'s> {
    let by = Origin::Sequence(&a.name);
    match a.action {
        Action::Open => {
            counters.opened += 1;
            Decision::Open {
                addr,
                by,
                ports: &a.ports,
                duration: a.duration,
                record: None,
            }
        }
        Action::Close => {
            counters.closed += 1;
            Decision::Close {
                addr,
                by,
                ports: &a.ports,
                record: None,
            }
        }
    }
}

/// The knock modes that carry information, built from `config` (None when unused).
#[allow(clippy::type_complexity)]
fn knock_modes(
    config: &Config,
) -> (
    Option<(TotpMatcher, Vec<SequenceAction>)>,
    Option<(EncodedMatcher, Vec<String>)>,
    Option<AuthMatcher>,
) {
    let mut steps = Vec::new();
    let mut actions = Vec::new();
    for s in config.active_totp().take(MAX_SEQUENCES) {
        steps.push(TotpSteps {
            shape: s.shape,
            key: HmacKey::new(s.key.as_bytes()),
            timeout: s.timeout,
        });
        actions.push(SequenceAction {
            name: s.name.clone(),
            action: s.action,
            ports: s.ports.clone(),
            duration: s.duration,
        });
    }
    let totp = (!steps.is_empty()).then(|| (TotpMatcher::new(steps), actions));
    let (profiles, names): (Vec<EncodedProfile>, Vec<String>) = config
        .active_encoded()
        .map(|e| {
            (
                EncodedProfile {
                    shape: e.shape.clone(),
                    allow: e.allow.clone(),
                    duration: e.duration,
                    max_duration: e.max_duration,
                    timeout: e.timeout,
                },
                e.name.clone(),
            )
        })
        .unzip();
    let encoded = (!profiles.is_empty()).then(|| (EncodedMatcher::new(profiles), names));
    let clients: Vec<AuthClient> = config
        .active_client_knocks()
        // Authenticated knocks use the native key (the config refuses knock_* without one).
        .filter_map(|(c, k)| Some((c, k, c.key.as_ref()?)))
        .map(|(c, k, key)| AuthClient {
            name: c.name.clone(),
            keys: AuthKeys::new(key.as_bytes()),
            base: k.base,
            proto: k.proto,
            allow: c.allow.clone(),
            max_duration: c.max_duration,
            sources: c.sources.clone(),
            timeout: k.timeout,
        })
        .collect();
    let auth = (!clients.is_empty()).then(|| AuthMatcher::new(clients));
    (totp, encoded, auth)
}

impl Engine {
    /// Builds an engine for the enabled sequences and clients of `config`.
    pub fn new(config: &Config) -> Engine {
        let mut steps = Vec::new();
        let mut actions = Vec::new();
        for s in config.active_sequences().take(MAX_SEQUENCES) {
            steps.push(SequenceSteps {
                steps: s.knocks.iter().copied().collect(),
                timeout: s.timeout,
            });
            actions.push(SequenceAction {
                name: s.name.clone(),
                action: s.action,
                ports: s.ports.clone(),
                duration: s.duration,
            });
        }
        let (totp, encoded, auth) = knock_modes(config);
        Engine {
            matcher: Matcher::new(steps),
            actions,
            spa_port: config.spa_port(),
            verifier: Verifier::new(config),
            totp,
            encoded,
            auth,
            bans: BanTable::new(BanPolicy::from_main(&config.main)),
            // Knock volume per the same networks as bans (`ban_ipv6_prefix`).
            volume: VolumeTable::new(VolumePolicy::with_ipv6_prefix(config.main.ban_ipv6_prefix)),
            counters: Counters::default(),
        }
    }

    /// The knock volume table.
    pub fn volume(&self) -> &VolumeTable {
        &self.volume
    }

    /// Replaces the knock volume limits (counts start afresh).
    pub fn set_volume_policy(&mut self, policy: VolumePolicy) {
        self.volume = VolumeTable::new(policy);
    }

    /// The failure and ban table.
    pub fn bans(&self) -> &BanTable {
        &self.bans
    }

    /// Replaces the router's own networks (addresses, on-link subnets, default
    /// gateways), never banned; `lifted` gets each live ban they now cover.
    pub fn set_protected(
        &mut self,
        now: Millis,
        protected: ProtectedNets,
        lifted: impl FnMut(Cidr),
    ) {
        self.bans.set_protected(now, protected, lifted);
    }

    /// Takes over the failures and bans of `old` (the engine a reload replaces).
    pub fn adopt_bans(&mut self, old: &Engine) {
        self.bans.adopt(&old.bans);
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        Counters {
            knock: self.matcher.counters(),
            spa: self.verifier.counters(),
            totp: self
                .totp
                .as_ref()
                .map(|t| t.0.counters())
                .unwrap_or_default(),
            encoded: self
                .encoded
                .as_ref()
                .map(|e| e.0.counters())
                .unwrap_or_default(),
            auth: self.auth.as_ref().map(|a| a.counters()).unwrap_or_default(),
            volume: self.volume.counters(),
            bans: self.bans.counters(),
            ..self.counters
        }
    }

    /// Attempts in progress in the knock tables (all modes).
    pub fn knocks_in_progress(&self) -> usize {
        self.matcher.in_progress()
            + self.totp.as_ref().map_or(0, |t| t.0.in_progress())
            + self.encoded.as_ref().map_or(0, |e| e.0.in_progress())
            + self.auth.as_ref().map_or(0, |a| a.in_progress())
    }

    /// The SPA replay record (plain data, for the daemon's state file; allocates).
    pub fn replay_record(&self) -> ReplayRecord {
        self.verifier.replay_record()
    }

    /// Adds a saved SPA replay record (from the state file).
    pub fn restore_replay(&mut self, saved: &ReplayRecord, now: Now) {
        self.verifier.restore_replay(saved, now);
    }

    /// Takes over the SPA replay record and guard of `old` (the engine a
    /// reload replaces): the nonces it recorded stay refused, whatever the
    /// new configuration allows, and its floor stays.
    pub fn adopt_replay(&mut self, old: &Engine, now: Now) {
        self.verifier
            .restore_replay(&old.verifier.replay_record(), now);
        self.verifier.set_replay_guard(old.verifier.replay_guard());
    }

    /// Bans `net` for `duration` because a peer router did, under this
    /// engine's ban policy (see [`BanTable::impose`]); true when it is banned.
    pub fn impose_ban(&mut self, now: Millis, net: Cidr, duration: Duration) -> bool {
        self.bans.impose(now, net, duration)
    }

    /// Records an SPA packet a peer router recorded (see [`crate::peer`]):
    /// from now on it is refused here too. No allocation.
    pub fn record_peer_replay(&mut self, client: Option<&str>, entry: ReplayEntry, now: Now) {
        self.verifier.record_peer_replay(client, entry, now);
    }

    /// The SPA replay guard (see [`Verifier::replay_guard`]).
    pub fn replay_guard(&self) -> Option<Millis> {
        self.verifier.replay_guard()
    }

    /// Sets the SPA replay guard: SPA packets stamped before `guard` + `max_skew`
    /// are refused (see [`Verifier::replay_guard`]).
    pub fn set_replay_guard(&mut self, guard: Option<Millis>) {
        self.verifier.set_replay_guard(guard);
    }

    /// Parses one captured frame and feeds it on; malformed frames are counted and dropped.
    pub fn on_frame<'s>(
        &'s mut self,
        now: Now,
        frame: &[u8],
        checksums: Checksums,
        out: &mut impl FnMut(Decision<'s>),
    ) {
        self.counters.frames += 1;
        match wire::observe(frame, checksums) {
            Ok(obs) => self.on_observation(now, &obs, out),
            Err(reason) => self.counters.rejected.count(reason),
        }
    }

    /// Feeds one observed packet; calls `out` for each decision it causes.
    pub fn on_observation<'s>(
        &'s mut self,
        now: Now,
        obs: &Observation<'_>,
        out: &mut impl FnMut(Decision<'s>),
    ) {
        // The capture sees packets before the firewall drops them.
        if self.bans.is_banned(now.mono, obs.src) {
            return;
        }
        if obs.proto == L4Proto::Udp && Some(obs.dst_port) == self.spa_port {
            return self.on_spa(now, obs, out);
        }
        if obs.proto == L4Proto::Tcp && !obs.tcp_flags.is_initial_syn() {
            self.counters.tcp_not_syn += 1;
            return;
        }
        let port = PortSpec {
            proto: obs.proto,
            port: obs.dst_port,
        };
        let claimed = self.knock_modes_claim(port);
        // Volume first, whatever the knock is: only knocks that passed reach a
        // matcher, and nothing a matcher finds (a wrong step, a reset, a bad
        // tag) has any effect outside it but a grant.
        if (claimed || self.matcher.is_knock_port(port))
            && self.volume.on_knock(now.mono, obs.src) == Volume::Limited
        {
            return;
        }
        if claimed {
            return self.on_knock_modes(now, obs.src, port, out);
        }
        let mut completed: heapless::Vec<u8, MAX_SEQUENCES> = heapless::Vec::new();
        self.matcher.on_knock(now.mono, obs.src, port, &mut |i| {
            // At most one completion per sequence per packet: cannot overflow.
            let _ = completed.push(i as u8);
        });
        for &i in &completed {
            out(act(
                &self.actions[usize::from(i)],
                obs.src,
                &mut self.counters,
            ));
        }
    }

    /// True when `port` is in the range of a TOTP sequence, encoded profile or
    /// client (config keeps their ranges apart from each other and from static knocks).
    fn knock_modes_claim(&self, port: PortSpec) -> bool {
        self.totp.as_ref().is_some_and(|t| t.0.claims(port))
            || self.encoded.as_ref().is_some_and(|e| e.0.claims(port))
            || self.auth.as_ref().is_some_and(|a| a.claims(port))
    }

    /// A knock claimed by a TOTP sequence, encoded profile or client.
    fn on_knock_modes<'s>(
        &'s mut self,
        now: Now,
        src: IpAddr,
        port: PortSpec,
        out: &mut impl FnMut(Decision<'s>),
    ) {
        if let Some((m, actions)) = &mut self.totp {
            if m.claims(port) {
                if let Some(i) = m.on_knock(now, src, port) {
                    out(act(&actions[i], src, &mut self.counters));
                }
                return;
            }
        }
        if let Some((m, names)) = &mut self.encoded {
            if m.claims(port) {
                if let Some(g) = m.on_knock(now.mono, src, port) {
                    let p = &m.profiles()[g.profile];
                    self.counters.opened += 1;
                    out(Decision::Open {
                        addr: src,
                        by: Origin::Encoded(&names[g.profile]),
                        ports: core::slice::from_ref(&p.allow[g.allowed]),
                        duration: g.duration,
                        record: None,
                    });
                }
                return;
            }
        }
        if let Some(m) = &mut self.auth {
            if m.claims(port) {
                if let Some((i, verdict)) = m.on_knock(now, src, port) {
                    let c = &m.clients()[i];
                    let by = Origin::KnockClient {
                        name: &c.name,
                        from: src,
                    };
                    out(match verdict {
                        AuthVerdict::Open { allowed, duration } => {
                            self.counters.opened += 1;
                            Decision::Open {
                                addr: src,
                                by,
                                ports: core::slice::from_ref(&c.allow[allowed]),
                                duration,
                                record: None,
                            }
                        }
                        AuthVerdict::Close { allowed } => {
                            self.counters.closed += 1;
                            Decision::Close {
                                addr: src,
                                by,
                                ports: core::slice::from_ref(&c.allow[allowed]),
                                record: None,
                            }
                        }
                    });
                }
            }
        }
    }

    /// An SPA packet: verified whole, then one decision (open, close or refuse).
    fn on_spa<'s>(
        &'s mut self,
        now: Now,
        obs: &Observation<'_>,
        out: &mut impl FnMut(Decision<'s>),
    ) {
        let decision = match self.verifier.verify(now, obs.src, obs.payload) {
            Ok(a) => {
                let by = Origin::Client {
                    name: a.client,
                    from: obs.src,
                };
                match a.kind {
                    spa::Kind::Open => {
                        self.counters.opened += 1;
                        Decision::Open {
                            addr: a.addr,
                            by,
                            ports: a.ports,
                            duration: a.duration,
                            record: Some(a.record),
                        }
                    }
                    spa::Kind::Close => {
                        self.counters.closed += 1;
                        Decision::Close {
                            addr: a.addr,
                            by,
                            ports: a.ports,
                            record: Some(a.record),
                        }
                    }
                    spa::Kind::Command => {
                        self.counters.commands += 1;
                        Decision::Run {
                            command: a.item,
                            by,
                            record: Some(a.record),
                        }
                    }
                    spa::Kind::Forward => {
                        self.counters.forwards += 1;
                        Decision::Forward {
                            addr: a.addr,
                            forward: a.item,
                            by,
                            duration: a.duration,
                            record: Some(a.record),
                        }
                    }
                }
            }
            Err(refused) => {
                let failed = spa_failure(refused.reason);
                out(Decision::Refuse {
                    src: obs.src,
                    refused,
                });
                if failed {
                    note_failure(&mut self.bans, now.mono, obs.src, out);
                }
                return;
            }
        };
        out(decision);
    }

    /// Periodic housekeeping: expires knock attempts (all modes) that ran out of time.
    pub fn on_tick(&mut self, now: Millis) {
        self.matcher.on_tick(now);
        if let Some((m, _)) = &mut self.totp {
            m.on_tick(now);
        }
        if let Some((m, _)) = &mut self.encoded {
            m.on_tick(now);
        }
        if let Some(m) = &mut self.auth {
            m.on_tick(now);
        }
        self.bans.expire(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Main, Sequence};
    use crate::wire::TcpFlags;
    use core::net::Ipv4Addr;

    fn config() -> Config {
        let seq = |name: &str, knocks: Vec<PortSpec>, action, ports| Sequence {
            name: name.to_string(),
            enabled: true,
            knocks,
            timeout: Duration::from_secs(10),
            action,
            ports,
            duration: Duration::from_secs(30),
        };
        Config {
            main: Main::default(),
            clients: Vec::new(),
            knock_modes: Default::default(),
            commands: Vec::new(),
            forwards: Vec::new(),
            peers: Vec::new(),
            sequences: vec![
                seq(
                    "ssh",
                    vec![
                        PortSpec::tcp(7000),
                        PortSpec::udp(8000),
                        PortSpec::tcp(9000),
                    ],
                    Action::Open,
                    vec![PortSpec::tcp(22)],
                ),
                seq(
                    "ssh_close",
                    vec![
                        PortSpec::tcp(9000),
                        PortSpec::udp(8000),
                        PortSpec::tcp(7000),
                    ],
                    Action::Close,
                    vec![PortSpec::tcp(22)],
                ),
                Sequence {
                    enabled: false,
                    ..seq(
                        "off",
                        vec![PortSpec::udp(1)],
                        Action::Open,
                        vec![PortSpec::tcp(80)],
                    )
                },
            ],
            hooks: Vec::new(),
        }
    }

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

    fn obs(proto: L4Proto, port: u16, flags: u8) -> Observation<'static> {
        Observation {
            src: SRC,
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            proto,
            src_port: 40000,
            dst_port: port,
            tcp_flags: TcpFlags(flags),
            payload: &[],
        }
    }

    fn feed(e: &mut Engine, o: &[Observation<'_>]) -> Vec<String> {
        let mut out = Vec::new();
        for (t, o) in o.iter().enumerate() {
            let now = Now {
                mono: Millis(t as u64),
                unix: 0,
            };
            e.on_observation(now, o, &mut |d| out.push(format!("{d:?}")));
        }
        out
    }

    #[test]
    fn open_then_close_decisions() {
        let mut e = Engine::new(&config());
        let syn = TcpFlags::SYN;
        let open = feed(
            &mut e,
            &[
                obs(L4Proto::Tcp, 7000, syn),
                obs(L4Proto::Udp, 8000, 0),
                obs(L4Proto::Tcp, 9000, syn),
            ],
        );
        assert_eq!(open.len(), 1);
        assert!(open[0].starts_with("Open { addr: 192.0.2.9, by: Sequence(\"ssh\"), ports: [PortSpec { proto: Tcp, port: 22 }], duration: 30s, record: None"), "{}", open[0]);
        let close = feed(
            &mut e,
            &[
                obs(L4Proto::Tcp, 9000, syn),
                obs(L4Proto::Udp, 8000, 0),
                obs(L4Proto::Tcp, 7000, syn),
            ],
        );
        assert_eq!(close.len(), 1);
        assert!(
            close[0].starts_with("Close { addr: 192.0.2.9, by: Sequence(\"ssh_close\")"),
            "{}",
            close[0]
        );
        let c = e.counters();
        assert_eq!((c.opened, c.closed), (1, 1));
    }

    #[test]
    fn only_initial_syns_knock() {
        let mut e = Engine::new(&config());
        let syn = TcpFlags::SYN;
        let synack = TcpFlags::SYN | TcpFlags::ACK;
        let out = feed(
            &mut e,
            &[
                obs(L4Proto::Tcp, 7000, synack),
                obs(L4Proto::Tcp, 7000, TcpFlags::ACK),
                obs(L4Proto::Udp, 8000, 0),
                obs(L4Proto::Tcp, 9000, syn),
            ],
        );
        assert!(out.is_empty());
        assert_eq!(e.counters().tcp_not_syn, 2);
    }

    #[test]
    fn disabled_sequences_do_nothing() {
        let mut e = Engine::new(&config());
        assert!(feed(&mut e, &[obs(L4Proto::Udp, 1, 0)]).is_empty());
        assert_eq!(e.counters().knock.not_knock_port, 1);
    }

    #[test]
    fn garbage_frames_are_counted_not_fatal() {
        let mut e = Engine::new(&config());
        let mut n = 0;
        for frame in [&[][..], &[0x45][..], &[0x60; 30][..], &[0xff; 60][..]] {
            e.on_frame(Now::default(), frame, Checksums::Verify, &mut |_| n += 1);
        }
        assert_eq!(n, 0);
        assert_eq!(e.counters().frames, 4);
        assert_eq!(e.counters().rejected.total(), 4);
    }
}

#[cfg(test)]
mod knock_mode_tests {
    //! The knock modes that carry information, through the engine: routing by
    //! range, decisions, origins.

    use super::*;
    use crate::knock::authenticated::{self, AuthAction, AuthRequest};
    use crate::knock::totp;
    use crate::wire::TcpFlags;
    use core::net::Ipv4Addr;

    const KEY7: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    const KEY8: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    const UNIX: u64 = 1_800_000_000;

    /// The modes side by side; bans off (random knocks would ban the whole
    /// source pool and hide the matchers from the property test below).
    fn engine() -> Engine {
        let text = format!(
            "config postern\n\toption ban_duration 0\n\
             config sequence 'otp'\n\toption key '{KEY7}'\n\toption knock_base '20000'\n\tlist open 'tcp:22'\n\
             config encoded 'enc'\n\toption knock_base '45000'\n\toption port_digits 4\n\tlist header 1\n\tlist allow 'tcp:143'\n\
             config client 'laptop'\n\toption key '{KEY8}'\n\tlist allow 'tcp:2222'\n\toption knock_base '50000'\n\
             config sequence 'static'\n\tlist knock 'tcp:7000'\n\tlist knock 'tcp:7001'\n\tlist open 'tcp:80'\n"
        );
        Engine::new(&crate::config::parse_str("t", &text).unwrap())
    }

    fn knock(e: &mut Engine, ports: &[u16]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, &p) in ports.iter().enumerate() {
            let obs = Observation {
                src: SRC,
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                proto: L4Proto::Tcp,
                src_port: 40000,
                dst_port: p,
                tcp_flags: TcpFlags(TcpFlags::SYN),
                payload: &[],
            };
            let now = Now {
                mono: Millis(i as u64 * 10),
                unix: UNIX,
            };
            e.on_observation(now, &obs, &mut |d| out.push(format!("{d:?}")));
        }
        out
    }

    #[test]
    fn each_mode_opens_through_the_engine() {
        let mut e = engine();
        let key = HmacKey::new(crate::spa::Key::from_base64(KEY7).unwrap().as_bytes());
        let shape = totp::TotpShape {
            proto: L4Proto::Tcp,
            base: 20000,
            range: totp::DEFAULT_RANGE,
            length: totp::DEFAULT_LENGTH,
            period: 30,
        };
        let q = totp::sequence(&key, &shape, UNIX / 30);
        let out = knock(&mut e, &q);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].contains("by: Sequence(\"otp\"), ports: [PortSpec { proto: Tcp, port: 22 }]"),
            "{}",
            out[0]
        );

        let cfg_shape = crate::knock::encoded::EncodedShape {
            alphabet: crate::knock::window::Alphabet {
                base: 45000,
                width: 10,
            },
            header: [1].into_iter().collect(),
            footer: heapless::Vec::new(),
            port_digits: 4,
            duration_digits: 0,
        };
        let k = cfg_shape.knocks(L4Proto::Tcp, &cfg_shape.encode(143, 0).unwrap());
        let ports: Vec<u16> = k.iter().map(|p| p.port).collect();
        let out = knock(&mut e, &ports);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].contains(
                "by: Encoded(\"enc\"), ports: [PortSpec { proto: Tcp, port: 143 }], duration: 30s"
            ),
            "{}",
            out[0]
        );

        let keys =
            authenticated::AuthKeys::new(crate::spa::Key::from_base64(KEY8).unwrap().as_bytes());
        let req = AuthRequest {
            port: PortSpec::tcp(2222),
            action: AuthAction::Close,
        };
        let syms = authenticated::seal(&keys, UNIX / 30, SRC, &req);
        let ports: Vec<u16> = authenticated::knocks(50000, L4Proto::Tcp, &syms)
            .iter()
            .map(|p| p.port)
            .collect();
        let out = knock(&mut e, &ports);
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("Close { addr: 192.0.2.9, by: KnockClient { name: \"laptop\", from: 192.0.2.9 }, ports: [PortSpec { proto: Tcp, port: 2222 }]"), "{}", out[0]);

        // The static sequence still works; nothing was counted as a static knock before.
        assert_eq!(e.counters().knock.knocks, 0);
        assert_eq!(knock(&mut e, &[7000, 7001]).len(), 1);
        let c = e.counters();
        assert_eq!((c.opened, c.closed), (3, 1));
        assert_eq!(
            (c.totp.completed, c.encoded.granted, c.auth.granted),
            (1, 1, 1)
        );
        e.on_tick(Millis(1_000_000));
        assert_eq!(e.knocks_in_progress(), 0);
    }

    #[test]
    fn random_knocks_over_every_range_never_decide_anything() {
        let mut e = engine();
        // No volume limit here: every knock reaches the matchers.
        e.set_volume_policy(VolumePolicy {
            limit: u32::MAX,
            ..VolumePolicy::default()
        });
        let mut rng = crate::test_rng::Rng(0x0bad_cafe);
        // Ports drawn from all the ranges (and the static steps), sources from a
        // small pool so windows fill, IPv4 and IPv6, TCP and UDP.
        let ranges: [(u16, u16); 4] = [(20000, 12288), (45000, 20), (50000, 512), (7000, 2)];
        let mut decisions = 0;
        for i in 0..300_000u64 {
            let (base, span) = ranges[rng.below(ranges.len())];
            let port = base + rng.below(usize::from(span)) as u16;
            let n = rng.below(32) as u8;
            let src = if n % 2 == 0 {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
            } else {
                IpAddr::V6(core::net::Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    u16::from(n),
                ))
            };
            let proto = if rng.below(8) == 0 {
                L4Proto::Udp
            } else {
                L4Proto::Tcp
            };
            let obs = Observation {
                src,
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                proto,
                src_port: 40000,
                dst_port: port,
                tcp_flags: TcpFlags(TcpFlags::SYN),
                payload: &[],
            };
            let now = Now {
                mono: Millis(i * 3),
                unix: UNIX + i / 100,
            };
            e.on_observation(now, &obs, &mut |d| {
                // A static sequence of two known ports can be hit by chance; nothing else.
                if !format!("{d:?}").contains("Sequence(\"static\")") {
                    decisions += 1;
                }
            });
        }
        assert_eq!(decisions, 0);
        let c = e.counters();
        assert!(
            c.totp.knocks > 0 && c.encoded.checked > 0 && c.auth.knocks > 0,
            "{c:?}"
        );
    }
}

#[cfg(test)]
mod ban_tests {
    //! Failures through the engine: which ones count, the ban decision, and
    //! what a banned source can no longer do.

    use super::*;
    use crate::wire::TcpFlags;
    use core::net::Ipv4Addr;

    const KEY8: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
    const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    const FRIEND: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));

    fn engine(extra: &str) -> Engine {
        let text = format!(
            "config postern\n\toption ban_threshold 3\n{extra}\
             config client 'laptop'\n\toption key '{KEY8}'\n\tlist allow 'tcp:22'\n\
             config sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'tcp:7001'\n\tlist knock 'tcp:7002'\n\tlist open 'tcp:22'\n"
        );
        Engine::new(&crate::config::parse_str("t", &text).unwrap())
    }

    fn packet(
        e: &mut Engine,
        t: u64,
        src: IpAddr,
        proto: L4Proto,
        port: u16,
        payload: &[u8],
    ) -> Vec<String> {
        let obs = Observation {
            src,
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            proto,
            src_port: 40000,
            dst_port: port,
            tcp_flags: TcpFlags(TcpFlags::SYN),
            payload,
        };
        let now = Now {
            mono: Millis(t),
            unix: 1_800_000_000,
        };
        let mut out = Vec::new();
        e.on_observation(now, &obs, &mut |d| out.push(format!("{d:?}")));
        out
    }

    fn junk(e: &mut Engine, t: u64, src: IpAddr) -> Vec<String> {
        packet(e, t, src, L4Proto::Udp, 62201, &[0xab; 120])
    }

    fn knock(e: &mut Engine, t: u64, src: IpAddr, ports: &[u16]) -> Vec<String> {
        ports
            .iter()
            .flat_map(|&p| packet(e, t, src, L4Proto::Tcp, p, &[]))
            .collect()
    }

    #[test]
    fn junk_spa_packets_ban_their_source_which_is_then_ignored() {
        let mut e = engine("");
        assert!(junk(&mut e, 0, ATTACKER)[0].starts_with("Refuse"));
        junk(&mut e, 1, ATTACKER);
        let out = junk(&mut e, 2, ATTACKER);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[1],
            "Ban { net: Cidr { addr: 198.51.100.7, len: 32 }, duration: 300s }"
        );
        // Banned: a correct knock sequence no longer opens, SPA is not even verified.
        let spa_before = e.counters().spa.packets;
        assert!(junk(&mut e, 3, ATTACKER).is_empty());
        assert!(knock(&mut e, 4, ATTACKER, &[7000, 7001, 7002]).is_empty());
        assert_eq!(e.counters().spa.packets, spa_before);
        // Someone else still gets in.
        assert_eq!(knock(&mut e, 5, FRIEND, &[7000, 7001, 7002]).len(), 1);
        let c = e.counters().bans;
        assert_eq!((c.failures, c.bans, c.from_banned), (3, 1, 4));
        assert_eq!(e.bans().active(Millis(5)).count(), 1);
        // The ban runs out (the kernel's timeout is the same length).
        e.on_tick(Millis(300_002));
        assert_eq!(
            knock(&mut e, 300_003, ATTACKER, &[7000, 7001, 7002]).len(),
            1
        );
    }

    #[test]
    fn wrong_knock_steps_never_count() {
        // A wrong step must not ban (the ban would be an oracle on the steps):
        // only the volume limit applies to knocks.
        let mut e = engine("");
        for round in 0..50 {
            let out = knock(&mut e, round, ATTACKER, &[7000, 7002]);
            assert!(out.is_empty(), "{out:?}");
        }
        assert_eq!(e.counters().bans.failures, 0);
        assert_eq!(e.counters().knock.resets, 50);
        assert_eq!(e.counters().volume.knocks, 100);
    }

    #[test]
    fn trusted_sources_and_disabled_bans() {
        let mut e = engine("\tlist trusted '198.51.100.0/24'\n");
        for t in 0..20 {
            assert!(!junk(&mut e, t, ATTACKER)
                .iter()
                .any(|d| d.starts_with("Ban")));
        }
        assert_eq!(e.counters().bans.trusted_failures, 20);
        let mut off = engine("\toption ban_duration 0\n");
        for t in 0..20 {
            assert!(!junk(&mut off, t, ATTACKER)
                .iter()
                .any(|d| d.starts_with("Ban")));
        }
        assert_eq!(off.counters().bans.bans, 0);
    }

    #[test]
    fn refusals_that_say_nothing_about_a_key_do_not_count() {
        let mut e = engine("");
        // Too short to be an SPA packet.
        for t in 0..10 {
            packet(&mut e, t, ATTACKER, L4Proto::Udp, 62201, &[1, 2, 3]);
        }
        assert_eq!(e.counters().bans.failures, 0);
        assert!(!spa_failure(Refusal::Replay) && spa_failure(Refusal::TooOld));
        assert!(!spa_failure(Refusal::BudgetExceeded) && !spa_failure(Refusal::PortNotAllowed));
    }

    #[test]
    fn random_failures_from_many_sources_only_ever_ban() {
        // More sources than the ban table holds, wrong knocks and junk SPA:
        // the only decisions are bans, each source at most once per ban, and
        // the table stays within its capacity.
        let mut e = engine("");
        let mut rng = crate::test_rng::Rng(0x5eed_ba45);
        let mut bans = std::collections::HashSet::new();
        for i in 0..60_000u64 {
            let n = rng.below(3 * crate::bans::BAN_TABLE_CAPACITY) as u32;
            let src = IpAddr::V4(Ipv4Addr::from(0xc633_0000 + n));
            let out = match rng.below(3) {
                0 => junk(&mut e, i, src),
                1 => packet(
                    &mut e,
                    i,
                    src,
                    L4Proto::Tcp,
                    7000 + rng.below(3) as u16 * 2,
                    &[],
                ),
                _ => packet(&mut e, i, src, L4Proto::Tcp, 7002, &[]),
            };
            for d in out {
                if d.starts_with("Ban") {
                    assert!(bans.insert(src), "{src} banned twice");
                } else {
                    assert!(d.starts_with("Refuse"), "{d}");
                }
            }
            assert!(e.bans().len() <= crate::bans::BAN_TABLE_CAPACITY);
        }
        let c = e.counters().bans;
        assert_eq!(c.bans as usize, bans.len());
        assert!(c.bans > 0 && c.from_banned > 0 && c.evicted > 0, "{c:?}");
    }

    fn bans_in(out: &[String]) -> Vec<&String> {
        out.iter().filter(|d| d.starts_with("Ban")).collect()
    }

    #[test]
    fn attack_junk_from_the_upstream_routers_link_local_address_bans_nothing() {
        // The attack of issue 14: an on-link attacker spoofs the upstream
        // router's fe80:: address to take IPv6 away from the whole LAN.
        let mut e = engine("");
        let upstream: IpAddr = "fe80::1".parse().unwrap();
        for t in 0..10 {
            assert!(bans_in(&junk(&mut e, t, upstream)).is_empty());
        }
        assert!(e.bans().active(Millis(10)).next().is_none());
    }

    #[test]
    fn attack_rotating_addresses_within_one_64_does_not_escape() {
        let mut e = engine("");
        let mut out = Vec::new();
        for n in 0..3u16 {
            let src = IpAddr::V6(core::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 7, n, 1, 2, 3));
            out.extend(junk(&mut e, u64::from(n), src));
        }
        let bans = bans_in(&out);
        assert_eq!(bans.len(), 1, "{out:?}");
        assert_eq!(
            bans[0],
            "Ban { net: Cidr { addr: 2001:db8:7:7::, len: 64 }, duration: 300s }"
        );
        // Any other address of that /64 is ignored now.
        let other = IpAddr::V6(core::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 7, 9, 9, 9, 9));
        assert!(knock(&mut e, 5, other, &[7000, 7001, 7002]).is_empty());
    }

    #[test]
    fn the_routers_gateway_own_address_and_subnet_are_never_banned() {
        let mut e = engine("");
        let mut p = ProtectedNets::new();
        for n in [
            "198.51.100.1",
            "192.0.2.1",
            "192.168.1.0/24",
            "2001:db8:aa::1",
        ] {
            assert!(p.add(n.parse().unwrap()));
        }
        e.set_protected(Millis(0), p, |n| panic!("{n} was not banned"));
        for a in [
            "198.51.100.1",
            "192.0.2.1",
            "192.168.1.77",
            "2001:db8:aa::1",
            "2001:db8:aa::99",
            "ff02::1",
            "224.0.0.251",
            "169.254.7.7",
            "fe80::1",
        ] {
            let src: IpAddr = a.parse().unwrap();
            for t in 0..10 {
                assert!(bans_in(&junk(&mut e, t, src)).is_empty(), "{a}");
                assert!(
                    bans_in(&knock(&mut e, t, src, &[7000, 7002])).is_empty(),
                    "{a}"
                );
            }
        }
        assert_eq!(e.counters().bans.bans, 0);
        // The junk counts (as protected failures); the wrong knocks never do.
        assert_eq!(e.counters().bans.protected_failures, 9 * 10);
        // A stranger next door still is.
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        let out: Vec<String> = (0..3).flat_map(|t| junk(&mut e, t, stranger)).collect();
        assert_eq!(bans_in(&out).len(), 1);
    }

    #[test]
    fn bans_survive_a_reload() {
        let mut old = engine("");
        for t in 0..3 {
            junk(&mut old, t, ATTACKER);
        }
        let mut new = engine("\toption ban_threshold 5\n");
        new.adopt_bans(&old);
        assert!(knock(&mut new, 10, ATTACKER, &[7000, 7001, 7002]).is_empty());
    }

    #[cfg(test)]
    mod action_tests {
        use super::*;
        use crate::spa::seal::{seal, MAX_PACKET_LEN};
        use crate::spa::{Kind, RequestRepr, Target};
        use crate::wire::TcpFlags;
        use core::net::Ipv4Addr;

        const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        const UNIX: u64 = 1_800_000_000;

        fn engine() -> Engine {
            let text = format!(
            "config command 'off'\n\toption enabled 0\n\tlist exec '/bin/false'\n\
             config command 'wake'\n\tlist exec '/bin/true'\n\
             config forward 'nas'\n\toption proto tcp\n\toption port 2222\n\toption to 10.0.0.5\n\toption to_port 22\n\
             config client 'phone'\n\toption key '{KEY}'\n\tlist command wake\n\tlist forward nas\n"
        );
            Engine::new(&crate::config::parse_str("t", &text).unwrap())
        }

        fn spa(e: &mut Engine, kind: Kind, name: &str, duration: u32, n: u8) -> Vec<String> {
            let r = RequestRepr {
                kind,
                timestamp: UNIX,
                duration,
                target: Target::Source,
                ports: heapless::Vec::new(),
                name: heapless::String::try_from(name).unwrap(),
            };
            let mut buf = [0u8; MAX_PACKET_LEN];
            let key = crate::spa::Key::from_base64(KEY).unwrap();
            let len = seal(
                &key,
                &[n; crate::spa::prefilter::RANDOM_LEN],
                &r,
                &[],
                &mut buf,
            )
            .unwrap();
            let obs = Observation {
                src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                proto: L4Proto::Udp,
                src_port: 40000,
                dst_port: 62201,
                tcp_flags: TcpFlags(0),
                payload: &buf[..len],
            };
            let now = Now {
                mono: Millis(1000),
                unix: UNIX,
            };
            let mut out = Vec::new();
            e.on_observation(now, &obs, &mut |d| out.push(format!("{d:?}")));
            out
        }

        #[test]
        fn command_and_forward_decisions_carry_their_index() {
            let mut e = engine();
            let out = spa(&mut e, Kind::Command, "wake", 0, 1);
            assert_eq!(out.len(), 1, "{out:?}");
            assert!(
                out[0].starts_with("Run { command: 0, by: Client { name: \"phone\""),
                "{}",
                out[0]
            );
            let out = spa(&mut e, Kind::Forward, "nas", 45, 2);
            assert!(
                out[0].starts_with(
                    "Forward { addr: 192.0.2.9, forward: 0, by: Client { name: \"phone\""
                ),
                "{}",
                out[0]
            );
            assert!(out[0].contains("duration: 45s"), "{}", out[0]);
            let out = spa(&mut e, Kind::Command, "off", 0, 3);
            assert!(out[0].starts_with("Refuse"), "{}", out[0]);
            let c = e.counters();
            assert_eq!((c.commands, c.forwards, c.opened), (1, 1, 0));
        }
    }
}

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod repeat_tests;

#[cfg(test)]
mod replay_tests;
