//! Encoded sequences: the article's example, checksums, windows, duplicates.

use super::*;
use core::net::{Ipv4Addr, Ipv6Addr};

const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

/// The article's layout: header 2,0,3 | four port digits | checksum | footer 3,0,2.
fn shape() -> EncodedShape {
    EncodedShape {
        alphabet: Alphabet {
            base: 45000,
            width: 10,
        },
        header: [2, 0, 3].into_iter().collect(),
        footer: [3, 0, 2].into_iter().collect(),
        port_digits: 4,
        duration_digits: 0,
    }
}

fn profile(shape: EncodedShape) -> EncodedProfile {
    EncodedProfile {
        shape,
        allow: vec![PortSpec::tcp(143), PortSpec::tcp(2222), PortSpec::udp(53)],
        duration: Duration::from_secs(30),
        max_duration: Duration::from_secs(600),
        timeout: Duration::from_secs(5),
    }
}

fn matcher() -> EncodedMatcher {
    EncodedMatcher::new(vec![profile(shape())])
}

fn run(m: &mut EncodedMatcher, src: IpAddr, knocks: &[PortSpec]) -> Vec<EncodedGrant> {
    knocks
        .iter()
        .enumerate()
        .filter_map(|(i, &k)| m.on_knock(Millis(i as u64 * 10), src, k))
        .collect()
}

fn knocks_for(port: PortSpec, minutes: u32) -> Vec<PortSpec> {
    let s = shape();
    s.knocks(port.proto, &s.encode(port.port, minutes).unwrap())
}

#[test]
fn the_articles_example() {
    let s = shape();
    let syms = s.encode(143, 0).unwrap();
    // 0143: digits 0,1,4,3, checksum 8.
    assert_eq!(syms, [2, 0, 3, 0, 1, 4, 3, 8, 3, 0, 2]);
    assert_eq!(s.decode(&syms), Ok((143, 0)));
    let ports: Vec<u16> = s
        .knocks(L4Proto::Tcp, &syms)
        .iter()
        .map(|k| k.port)
        .collect();
    assert_eq!(
        ports,
        [45002, 45010, 45003, 45010, 45001, 45014, 45003, 45018, 45003, 45010, 45002]
    );
    let mut m = matcher();
    let got = run(&mut m, ALICE, &knocks_for(PortSpec::tcp(143), 0));
    assert_eq!(
        got,
        [EncodedGrant {
            profile: 0,
            allowed: 0,
            duration: Duration::from_secs(30)
        }]
    );
}

#[test]
fn repeated_digits_and_duplicate_packets() {
    let mut m = matcher();
    let k = knocks_for(PortSpec::tcp(2222), 0);
    // Every knock sent twice (SYN retransmits): each repeat is ignored.
    let doubled: Vec<PortSpec> = k.iter().flat_map(|&p| [p, p]).collect();
    let got = run(&mut m, ALICE, &doubled);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].allowed, 1);
    assert_eq!(
        m.counters().window.duplicates,
        k.len() as u64 - 1,
        "the last one's repeat starts nothing"
    );
}

#[test]
fn wrong_checksum_frame_and_port_are_refused() {
    let s = shape();
    let mut syms = s.encode(143, 0).unwrap();
    syms[7] = (syms[7] + 1) % 10;
    assert_eq!(s.decode(&syms), Err(EncodedError::Checksum));
    let mut m = matcher();
    assert!(run(&mut m, ALICE, &s.knocks(L4Proto::Tcp, &syms)).is_empty());
    assert_eq!(m.counters().invalid, 1);
    let mut syms = s.encode(143, 0).unwrap();
    syms[0] = 1;
    assert_eq!(s.decode(&syms), Err(EncodedError::Frame));
    let mut syms = s.encode(143, 0).unwrap();
    syms[4] = 9; // a digit changed, checksum not
    assert_eq!(s.decode(&syms), Err(EncodedError::Checksum));
    assert_eq!(
        s.decode(&s.encode(0, 0).unwrap_or_default()),
        Err(EncodedError::Frame)
    );
    assert_eq!(s.encode(10_000, 0), Err(EncodedError::TooLong));
    // Valid but not allowed.
    let mut m = matcher();
    assert!(run(&mut m, ALICE, &knocks_for(PortSpec::tcp(22), 0)).is_empty());
    assert_eq!(m.counters().not_allowed, 1);
    // udp:143 is not allowed either (tcp:143 is).
    assert!(run(&mut m, ALICE, &knocks_for(PortSpec::udp(143), 0)).is_empty());
}

#[test]
fn the_knock_protocol_is_the_protocol_opened() {
    let mut m = matcher();
    let got = run(&mut m, ALICE, &knocks_for(PortSpec::udp(53), 0));
    assert_eq!(got.len(), 1);
    assert_eq!(m.profiles()[0].allow[got[0].allowed], PortSpec::udp(53));
}

#[test]
fn sliding_window_finds_a_sequence_after_spurious_knocks() {
    let s = shape();
    for junk in 0..12usize {
        let mut m = matcher();
        let mut k: Vec<PortSpec> = (0..junk)
            .map(|i| PortSpec::tcp(s.alphabet.port(i, (i * 7 % 10) as u8)))
            .collect();
        // Knocks outside the range are no symbols at all.
        k.push(PortSpec::tcp(80));
        k.extend(knocks_for(PortSpec::tcp(143), 0));
        assert_eq!(run(&mut m, ALICE, &k).len(), 1, "{junk} junk knocks before");
    }
}

#[test]
fn duration_digits() {
    let mut sh = shape();
    sh.duration_digits = 2;
    let mut m = EncodedMatcher::new(vec![profile(sh.clone())]);
    let k = sh.knocks(L4Proto::Tcp, &sh.encode(143, 5).unwrap());
    let got = run(&mut m, ALICE, &k);
    assert_eq!(got[0].duration, Duration::from_secs(300));
    let k = sh.knocks(L4Proto::Tcp, &sh.encode(143, 99).unwrap());
    let got = run(&mut m, IpAddr::V6(Ipv6Addr::LOCALHOST), &k);
    assert_eq!(got[0].duration, Duration::from_secs(600), "capped");
}

#[test]
fn knocks_too_slow_time_out() {
    let mut m = matcher();
    let k = knocks_for(PortSpec::tcp(143), 0);
    let mut got = Vec::new();
    for (i, &p) in k.iter().enumerate() {
        let t = if i < 5 { i as u64 } else { 10_000 + i as u64 };
        got.extend(m.on_knock(Millis(t), ALICE, p));
    }
    assert!(got.is_empty());
    m.on_tick(Millis(100_000));
    assert_eq!(m.in_progress(), 0);
}

#[test]
fn random_knock_streams_never_open() {
    let mut rng = crate::test_rng::Rng(0xe7c0_ded5);
    let mut m = matcher();
    let ab = shape().alphabet;
    let mut next = [0usize; 16];
    for i in 0..300_000u64 {
        let s = rng.below(16);
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s as u32));
        // Mostly well-formed symbols (alternating halves), some noise.
        let port = if rng.below(10) == 0 {
            PortSpec::tcp(45000 + rng.below(20) as u16)
        } else {
            next[s] += 1;
            PortSpec::tcp(ab.port(next[s], rng.below(10) as u8))
        };
        assert_eq!(m.on_knock(Millis(i), src, port), None);
    }
    assert!(m.counters().checked > 1000, "windows were checked");
    assert_eq!(m.counters().granted, 0);
}
