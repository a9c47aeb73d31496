//! `postern spa --repeat N`: copies of an accepted packet are replays, and
//! replays never count towards a ban (of the client, or of a source a
//! replay was spoofed from).

use super::*;
use crate::spa::seal::{seal, MAX_PACKET_LEN};
use crate::spa::{Kind, RequestRepr, Target};
use crate::wire::TcpFlags;
use core::net::Ipv4Addr;

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const UNIX: u64 = 1_800_000_000;
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

fn engine() -> Engine {
    let text = format!("config client 'phone'\n\toption key '{KEY}'\n\tlist allow 'tcp:22'\n");
    Engine::new(&crate::config::parse_str("t", &text).unwrap())
}

/// An open tcp:22 request, sealed with random bytes `n`.
fn packet(n: u8) -> Vec<u8> {
    let r = RequestRepr {
        kind: Kind::Open,
        timestamp: UNIX,
        duration: 30,
        target: Target::Source,
        ports: [PortSpec::tcp(22)].into_iter().collect(),
        name: heapless::String::new(),
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
    buf[..len].to_vec()
}

fn send(e: &mut Engine, ms: u64, src: IpAddr, payload: &[u8]) -> Vec<String> {
    let obs = Observation {
        src,
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        proto: L4Proto::Udp,
        src_port: 40000,
        dst_port: 62201,
        tcp_flags: TcpFlags(0),
        payload,
    };
    let now = Now {
        mono: Millis(10_000_000 + ms),
        unix: UNIX,
    };
    let mut out = Vec::new();
    e.on_observation(now, &obs, &mut |d| out.push(format!("{d:?}")));
    out
}

#[test]
fn repeated_copies_of_an_accepted_packet_never_ban_the_client() {
    let mut e = engine();
    let p = packet(1);
    let mut opened = 0;
    // Far more copies than the ban threshold (10 within 60 s).
    for i in 0..30 {
        for d in send(&mut e, i * 20, CLIENT, &p) {
            assert!(!d.starts_with("Ban"), "copy {i}: {d}");
            opened += usize::from(d.starts_with("Open"));
        }
    }
    assert_eq!(opened, 1, "the first copy opens, the others are replays");
    assert_eq!(e.counters().spa.refused(Refusal::Replay), 29);
    assert_eq!(e.counters().bans.failures, 0);
    // The client's next request still gets in.
    assert!(send(&mut e, 1000, CLIENT, &packet(2))[0].starts_with("Open"));
}

#[test]
fn replays_spoofed_from_a_source_do_not_ban_it() {
    let mut e = engine();
    let p = packet(3);
    assert!(send(&mut e, 0, CLIENT, &p)[0].starts_with("Open"));
    // Someone who saw the packet replays it with the client's address as
    // source (or any other) to get that address banned: nothing counts.
    let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    for i in 0..40 {
        let src = if i % 2 == 0 { CLIENT } else { other };
        assert!(send(&mut e, i, src, &p)
            .iter()
            .all(|d| !d.starts_with("Ban")));
    }
    assert_eq!(e.counters().bans.failures, 0);
}

#[test]
fn repeated_copies_of_a_packet_with_a_wrong_clock_count_once() {
    let mut e = engine();
    let r = RequestRepr {
        kind: Kind::Open,
        timestamp: UNIX - 600,
        duration: 30,
        target: Target::Source,
        ports: [PortSpec::tcp(22)].into_iter().collect(),
        name: heapless::String::new(),
    };
    let mut buf = [0u8; MAX_PACKET_LEN];
    let key = crate::spa::Key::from_base64(KEY).unwrap();
    let len = seal(
        &key,
        &[9; crate::spa::prefilter::RANDOM_LEN],
        &r,
        &[],
        &mut buf,
    )
    .unwrap();
    for i in 0..10 {
        let out = send(&mut e, i * 20, CLIENT, &buf[..len]);
        assert!(out.iter().all(|d| !d.starts_with("Ban")), "{out:?}");
    }
    assert_eq!(e.counters().spa.refused(Refusal::TooOld), 1);
    assert_eq!(e.counters().spa.refused(Refusal::Replay), 9);
    assert_eq!(e.counters().bans.failures, 1, "one attempt, one failure");
}
