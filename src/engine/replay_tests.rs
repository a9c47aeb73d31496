//! The engine's replay state across a reload ([`Engine::adopt_replay`]):
//! an authenticated request refused once is refused as a replay after a
//! reload that would allow it, and the guard carries over.

use super::*;
use crate::spa::seal::{seal, MAX_PACKET_LEN};
use crate::spa::{Kind, RequestRepr, Target};
use crate::wire::TcpFlags;
use core::net::Ipv4Addr;

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const UNIX: u64 = 1_800_000_000;
const NOW: Now = Now {
    mono: Millis(10_000_000),
    unix: UNIX,
};

/// An engine whose client `phone` may run the commands listed in `commands`.
fn engine(commands: &str) -> Engine {
    let text = format!(
        "config command 'wake'\n\tlist exec '/bin/true'\n\
         config command 'reboot'\n\tlist exec '/bin/true'\n\
         config client 'phone'\n\toption key '{KEY}'\n{commands}"
    );
    Engine::new(&crate::config::parse_str("t", &text).unwrap())
}

/// The decisions for a command request `name` sealed with nonce byte `n`.
fn command(e: &mut Engine, name: &str, n: u8) -> Vec<String> {
    let r = RequestRepr {
        kind: Kind::Command,
        timestamp: UNIX,
        duration: 0,
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
    let mut out = Vec::new();
    e.on_observation(NOW, &obs, &mut |d| out.push(format!("{d:?}")));
    out
}

#[test]
fn a_refused_command_is_a_replay_after_a_reload_that_allows_it() {
    let mut old = engine("\tlist command wake\n");
    let out = command(&mut old, "reboot", 1);
    assert!(out[0].contains("reason: CommandNotAllowed"), "{out:?}");
    assert!(out[0].contains("record: Some("), "recorded: {out:?}");
    old.set_replay_guard(Some(Millis(7)));
    let mut new = engine("\tlist command wake\n\tlist command reboot\n");
    new.adopt_replay(&old, NOW);
    assert_eq!(new.replay_guard(), Some(Millis(7)));
    let out = command(&mut new, "reboot", 1);
    assert!(out[0].contains("reason: Replay"), "{out:?}");
    // Without the old engine's record the same packet would run the command.
    let mut forgetful = engine("\tlist command wake\n\tlist command reboot\n");
    let out = command(&mut forgetful, "reboot", 1);
    assert!(out[0].starts_with("Run { command: 1"), "{out:?}");
}

#[test]
fn a_packet_a_peer_router_recorded_is_refused_here() {
    // The attack: a packet accepted by the other router is replayed here.
    let mut master = engine("\tlist command wake\n");
    let out = command(&mut master, "wake", 3);
    assert!(out[0].starts_with("Run { command: 0"), "{out:?}");
    let mut backup = engine("\tlist command wake\n");
    for s in master.replay_record().entries {
        backup.record_peer_replay(s.client.as_deref(), s.entry, NOW);
    }
    let out = command(&mut backup, "wake", 3);
    assert!(out[0].contains("reason: Replay"), "{out:?}");
    // A fresh packet still runs it.
    let out = command(&mut backup, "wake", 4);
    assert!(out[0].starts_with("Run { command: 0"), "{out:?}");
}
