//! The engine: frames and observations in, [`Decision`]s out.
//!
//! Owns the knock [`Matcher`] and the counters that `postern status` reports.
//! Sans-IO: no syscalls, no clock reads (time is an argument), no heap
//! allocation per packet; everything is allocated in [`Engine::new`].

use core::net::IpAddr;
use core::time::Duration;

use crate::config::{Action, Config, MAX_SEQUENCES};
use crate::knock::{KnockCounters, Matcher, SequenceSteps};
use crate::port::{L4Proto, PortSpec};
use crate::time::Millis;
use crate::wire::{self, Checksums, Observation, RejectCounters};

/// What the firewall edge must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Allow `src` to `ports` for `duration` (new connections; established ones stay).
    Open {
        /// The knocking source.
        src: IpAddr,
        /// The sequence that was completed.
        sequence: &'a str,
        /// Ports to open.
        ports: &'a [PortSpec],
        /// How long new connections are allowed.
        duration: Duration,
    },
    /// Remove `src`'s grants on `ports` now.
    Close {
        /// The knocking source.
        src: IpAddr,
        /// The sequence that was completed.
        sequence: &'a str,
        /// Ports to close.
        ports: &'a [PortSpec],
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
    /// Open decisions made.
    pub opened: u64,
    /// Close decisions made.
    pub closed: u64,
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
    counters: Counters,
}

impl Engine {
    /// Builds an engine for the enabled sequences of `config`.
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
        Engine {
            matcher: Matcher::new(steps),
            actions,
            counters: Counters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        Counters {
            knock: self.matcher.counters(),
            ..self.counters
        }
    }

    /// Attempts in progress in the knock table.
    pub fn knocks_in_progress(&self) -> usize {
        self.matcher.in_progress()
    }

    /// Parses one captured frame and feeds it on; malformed frames are counted and dropped.
    pub fn on_frame<'s>(
        &'s mut self,
        now: Millis,
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
        now: Millis,
        obs: &Observation<'_>,
        out: &mut impl FnMut(Decision<'s>),
    ) {
        if obs.proto == L4Proto::Tcp && !obs.tcp_flags.is_initial_syn() {
            self.counters.tcp_not_syn += 1;
            return;
        }
        let port = PortSpec {
            proto: obs.proto,
            port: obs.dst_port,
        };
        let mut completed: heapless::Vec<u8, MAX_SEQUENCES> = heapless::Vec::new();
        self.matcher.on_knock(now, obs.src, port, &mut |i| {
            // At most one completion per sequence per packet: cannot overflow.
            let _ = completed.push(i as u8);
        });
        for &i in &completed {
            let a = &self.actions[usize::from(i)];
            let decision = match a.action {
                Action::Open => {
                    self.counters.opened += 1;
                    Decision::Open {
                        src: obs.src,
                        sequence: &a.name,
                        ports: &a.ports,
                        duration: a.duration,
                    }
                }
                Action::Close => {
                    self.counters.closed += 1;
                    Decision::Close {
                        src: obs.src,
                        sequence: &a.name,
                        ports: &a.ports,
                    }
                }
            };
            out(decision);
        }
    }

    /// Periodic housekeeping: expires knock attempts that ran out of time.
    pub fn on_tick(&mut self, now: Millis) {
        self.matcher.on_tick(now);
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
            e.on_observation(Millis(t as u64), o, &mut |d| out.push(format!("{d:?}")));
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
        assert!(open[0].starts_with("Open { src: 192.0.2.9, sequence: \"ssh\", ports: [PortSpec { proto: Tcp, port: 22 }], duration: 30s"), "{}", open[0]);
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
            close[0].starts_with("Close { src: 192.0.2.9, sequence: \"ssh_close\""),
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
            e.on_frame(Millis(0), frame, Checksums::Verify, &mut |_| n += 1);
        }
        assert_eq!(n, 0);
        assert_eq!(e.counters().frames, 4);
        assert_eq!(e.counters().rejected.total(), 4);
    }
}
