//! Commands and forwards through the verifier: native requests by name,
//! fwknop command (`-C`) and NAT (`-N`) messages from the real client.

use super::*;
use crate::config::{Command, Forward, FwknopClient, Main};
use crate::port::L4Proto;
use crate::spa::fwknop::vectors::{vectors, Vector};
use crate::spa::seal::{seal, MAX_PACKET_LEN};
use crate::spa::Key;
use core::net::Ipv4Addr;

const T0: u64 = 1_800_000_000;
const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
const DASH_A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 2));

fn command(name: &str, enabled: bool, fwknop_match: Option<&str>) -> Command {
    Command {
        name: name.to_string(),
        enabled,
        argv: vec!["/bin/true".to_string()],
        timeout: Duration::from_secs(5),
        user: None,
        fwknop_match: fwknop_match.map(str::to_string),
        line: 1,
    }
}

fn forward(name: &str, enabled: bool, port: u16, to_port: u16) -> NamedForward {
    NamedForward {
        name: name.to_string(),
        forward: Forward {
            enabled,
            proto: L4Proto::Tcp,
            port,
            to4: Some(Ipv4Addr::new(10, 213, 0, 5)),
            to6: None,
            to_port,
        },
    }
}

/// A client with native key `[1; 32]` and the fwknop keys of the vectors.
fn client(commands: &[&str], forwards: &[&str]) -> Client {
    let keys = vectors().remove(0).keys;
    Client {
        name: "phone".to_string(),
        enabled: true,
        key: Some(Key::from_bytes([1; 32])),
        fwknop: Some(FwknopClient {
            keys,
            timeout: Duration::from_secs(30),
        }),
        allow: vec![PortSpec::tcp(22)],
        max_duration: Duration::from_secs(120),
        sources: Vec::new(),
        allow_other_address: false,
        require_address: false,
        commands: commands.iter().map(|s| s.to_string()).collect(),
        forwards: forwards.iter().map(|s| s.to_string()).collect(),
        default_access: Vec::new(),
    }
}

/// Commands: `off` (disabled), `wake` (fwknop `touch /tmp/x`), `reboot`
/// (fwknop `wake nas`). Forwards: `old` (disabled), `ssh` tcp:22 →
/// 10.213.0.5:22, `alt` tcp:2200 → 10.213.0.5:22, `web` tcp:8080 → :80.
fn verifier(c: Client) -> Verifier {
    Verifier::new(&Config {
        peers: Vec::new(),
        main: Main::default(),
        sequences: Vec::new(),
        knock_modes: Default::default(),
        commands: vec![
            command("off", false, None),
            command("wake", true, Some("touch /tmp/x")),
            command("reboot", true, Some("wake nas")),
        ],
        forwards: vec![
            forward("old", false, 22, 22),
            forward("ssh", true, 22, 22),
            forward("alt", true, 2200, 22),
            forward("web", true, 8080, 80),
        ],
        clients: vec![c],
        hooks: Vec::new(),
    })
}

fn now() -> Now {
    Now {
        mono: Millis(9_000_000),
        unix: T0,
    }
}

fn named(kind: Kind, name: &str, duration: u32, target: Target, n: u8) -> Vec<u8> {
    let r = RequestRepr {
        kind,
        timestamp: T0,
        duration,
        target,
        ports: heapless::Vec::new(),
        name: heapless::String::try_from(name).unwrap(),
    };
    let mut out = [0u8; MAX_PACKET_LEN];
    let len = seal(
        &Key::from_bytes([1; 32]),
        &[n; crate::spa::prefilter::RANDOM_LEN],
        &r,
        &[7; 5],
        &mut out,
    )
    .unwrap();
    out[..len].to_vec()
}

fn reason(v: &mut Verifier, at: Now, src: IpAddr, p: &[u8]) -> Refusal {
    v.verify(at, src, p).unwrap_err().reason
}

#[test]
fn native_command_by_name_and_index_among_enabled() {
    let mut v = verifier(client(&["wake", "reboot"], &[]));
    let p = named(Kind::Command, "reboot", 0, Target::Source, 1);
    let a = v.verify(now(), SRC, &p).unwrap();
    assert_eq!((a.client, a.kind, a.addr), ("phone", Kind::Command, SRC));
    assert_eq!(
        a.item, 1,
        "second enabled command (the disabled one is skipped)"
    );
    assert!(a.ports.is_empty());
    assert_eq!(a.duration, Duration::ZERO);
    assert_eq!(reason(&mut v, now(), SRC, &p), Refusal::Replay, "runs once");
}

#[test]
fn native_command_not_listed_unknown_or_disabled_runs_nothing() {
    let mut v = verifier(client(&["wake", "off"], &[]));
    for (n, name) in [(1, "reboot"), (2, "nope"), (3, "off")] {
        let p = named(Kind::Command, name, 0, Target::Source, n);
        let r = v.verify(now(), SRC, &p).unwrap_err();
        assert_eq!(
            (r.reason, r.client),
            (Refusal::CommandNotAllowed, Some("phone"))
        );
        assert!(r.to_string().contains("nothing runs"), "{r}");
    }
    assert_eq!(v.counters().refused(Refusal::CommandNotAllowed), 3);
    assert_eq!(v.counters().accepted, 0);
}

#[test]
fn native_forward_with_duration_and_address_policy() {
    let mut v = verifier(client(&[], &["web"]));
    let a = v
        .verify(
            now(),
            SRC,
            &named(Kind::Forward, "web", 60, Target::Source, 1),
        )
        .unwrap();
    assert_eq!((a.kind, a.item, a.addr), (Kind::Forward, 2, SRC));
    assert_eq!(a.duration, Duration::from_secs(60));
    let p = named(Kind::Forward, "web", 121, Target::Source, 2);
    assert_eq!(reason(&mut v, now(), SRC, &p), Refusal::DurationTooLong);
    let p = named(Kind::Forward, "ssh", 60, Target::Source, 3);
    assert_eq!(reason(&mut v, now(), SRC, &p), Refusal::ForwardNotAllowed);
    let p = named(Kind::Forward, "old", 60, Target::Source, 4);
    assert_eq!(reason(&mut v, now(), SRC, &p), Refusal::ForwardNotAllowed);
    let p = named(Kind::Forward, "web", 60, Target::Addr(DASH_A), 5);
    assert_eq!(reason(&mut v, now(), SRC, &p), Refusal::OtherAddress);
    let mut v = verifier(Client {
        allow_other_address: true,
        require_address: false,
        ..client(&[], &["web"])
    });
    let a = v.verify(
        now(),
        SRC,
        &named(Kind::Forward, "web", 60, Target::Addr(DASH_A), 6),
    );
    assert_eq!(a.unwrap().addr, DASH_A);
}

fn vector(name: &str) -> Vector {
    vectors().into_iter().find(|v| v.name == name).unwrap()
}

fn at(v: &Vector) -> Now {
    Now {
        mono: Millis(1_000_000),
        unix: v.timestamp,
    }
}

#[test]
fn fwknop_command_runs_only_on_an_exact_fwknop_match() {
    // fwknop -C 'touch /tmp/x' -s
    let v = vector("command");
    let mut ver = verifier(client(&["wake"], &[]));
    let a = ver.verify(at(&v), SRC, &v.packet).unwrap();
    assert_eq!((a.kind, a.item, a.addr), (Kind::Command, 0, SRC));
    assert_eq!(
        reason(&mut ver, at(&v), SRC, &v.packet),
        Refusal::Replay,
        "a replayed command packet runs nothing"
    );
    let mut ver = verifier(client(&["reboot"], &[]));
    assert_eq!(
        reason(&mut ver, at(&v), SRC, &v.packet),
        Refusal::CommandNotAllowed,
        "the text matches a command the client may not run"
    );
    let mut ver = verifier(client(&[], &[]));
    assert_eq!(
        reason(&mut ver, at(&v), SRC, &v.packet),
        Refusal::CommandNotAllowed
    );
}

#[test]
fn fwknop_command_with_an_address_follows_the_address_policy() {
    // fwknop -C 'wake nas' -a 10.213.0.2
    let v = vector("command_text_a");
    let mut ver = verifier(client(&["reboot"], &[]));
    assert_eq!(
        reason(&mut ver, at(&v), SRC, &v.packet),
        Refusal::OtherAddress
    );
    assert_eq!(
        reason(&mut ver, at(&v), DASH_A, &v.packet),
        Refusal::Replay,
        "an authenticated packet refused once is recorded: never accepted later"
    );
    let mut ver = verifier(client(&["reboot"], &[]));
    let a = ver.verify(at(&v), DASH_A, &v.packet).unwrap();
    assert_eq!((a.kind, a.item), (Kind::Command, 1));
}

#[test]
fn fwknop_nat_opens_the_forward_with_that_port_and_lan_host() {
    // fwknop -A tcp/22 -N 10.213.0.5:22 -s
    let v = vector("nat_access");
    let mut ver = verifier(client(&[], &["ssh", "alt"]));
    let a = ver.verify(at(&v), SRC, &v.packet).unwrap();
    assert_eq!((a.kind, a.item, a.addr), (Kind::Forward, 0, SRC));
    assert_eq!(
        a.duration,
        Duration::from_secs(30),
        "the client's fwknop_timeout"
    );
    let mut ver = verifier(client(&[], &["alt", "web"]));
    assert_eq!(
        reason(&mut ver, at(&v), SRC, &v.packet),
        Refusal::ForwardNotAllowed,
        "no listed forward has tcp:22 -> 10.213.0.5:22"
    );
    // -A tcp/2222 -N 10.213.0.5:22 --nat-port 2200 -f 40 -a 10.213.0.2
    let v = vector("nat_timeout_port");
    let mut ver = verifier(client(&[], &["ssh", "alt"]));
    let a = ver.verify(at(&v), DASH_A, &v.packet).unwrap();
    assert_eq!((a.kind, a.item, a.addr), (Kind::Forward, 1, DASH_A));
    assert_eq!(a.duration, Duration::from_secs(40), "fwknop -f");
}

/// Found by the `spa` fuzz target's model: a command request with a one- or
/// two-character name and little padding is shorter than a one-port request,
/// and the length bound refused it unopened (`postern spa --command x` failed
/// whenever the random padding was short).
#[test]
fn shortest_named_requests_are_not_refused_for_their_length() {
    let mut c = client(&["x"], &["y"]);
    c.commands = vec!["x".to_string()];
    let mut v = Verifier::new(&Config {
        peers: Vec::new(),
        main: Main::default(),
        sequences: Vec::new(),
        knock_modes: Default::default(),
        commands: vec![command("x", true, None)],
        forwards: vec![forward("y", true, 2200, 22)],
        clients: vec![c],
        hooks: Vec::new(),
    });
    for (n, kind, name, duration) in [(1, Kind::Command, "x", 0), (2, Kind::Forward, "y", 60)] {
        let r = RequestRepr {
            kind,
            timestamp: T0,
            duration,
            target: Target::Source,
            ports: heapless::Vec::new(),
            name: heapless::String::try_from(name).unwrap(),
        };
        let mut out = [0u8; MAX_PACKET_LEN];
        let len = seal(
            &Key::from_bytes([1; 32]),
            &[n; crate::spa::prefilter::RANDOM_LEN],
            &r,
            &[],
            &mut out,
        )
        .unwrap();
        assert_eq!(len, crate::spa::seal::MIN_PACKET_LEN);
        let a = v.verify(now(), SRC, &out[..len]).unwrap();
        assert_eq!((a.kind, a.item), (kind, 0));
    }
}
