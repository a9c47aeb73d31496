//! TOTP sequences: derivation, skew, replay, duplicates, timeouts, floods.

use super::*;
use crate::time::Millis;
use core::net::{Ipv4Addr, Ipv6Addr};

const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const MALLORY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

fn shape() -> TotpShape {
    TotpShape {
        proto: L4Proto::Tcp,
        base: 40000,
        range: 1024,
        length: 4,
        period: 30,
    }
}

fn key() -> HmacKey {
    HmacKey::new(&[7u8; 32])
}

fn matcher() -> TotpMatcher {
    TotpMatcher::new(vec![TotpSteps {
        shape: shape(),
        key: key(),
        timeout: Duration::from_secs(10),
    }])
}

fn now(mono: u64, unix: u64) -> Now {
    Now {
        mono: Millis(mono),
        unix,
    }
}

/// Knocks `ports` one ms apart from `t` (mono ms) at wall time `unix`; the completions.
fn knock(m: &mut TotpMatcher, src: IpAddr, t: u64, unix: u64, ports: &[u16]) -> Vec<usize> {
    ports
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| m.on_knock(now(t + i as u64, unix), src, PortSpec::tcp(p)))
        .collect()
}

fn seq_at(unix: u64) -> Vec<u16> {
    sequence(&key(), &shape(), unix / 30).to_vec()
}

const T0: u64 = 1_800_000_000;

#[test]
fn derivation_stays_in_bands_and_changes_per_step() {
    let s = shape();
    let band = s.band();
    assert_eq!(band, 256);
    let mut seen = std::collections::HashSet::new();
    for step in 0..200u64 {
        let q = sequence(&key(), &s, step);
        assert_eq!(q.len(), 4);
        for (i, &p) in q.iter().enumerate() {
            let lo = s.base + i as u16 * band;
            assert!((lo..lo + band).contains(&p), "knock {i} = {p} in its band");
        }
        seen.insert(q.to_vec());
    }
    assert!(
        seen.len() >= 199,
        "sequences repeat too often: {}",
        seen.len()
    );
    assert_ne!(
        sequence(&HmacKey::new(&[8u8; 32]), &s, 5),
        sequence(&key(), &s, 5),
        "another key, another sequence"
    );
    // Longer than one MAC block: 16 knocks in bands of 64.
    let long = TotpShape { length: 16, ..s };
    let q = sequence(&key(), &long, 9);
    assert_eq!(q.len(), 16);
    assert!(q.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn current_sequence_opens_once_per_step() {
    let mut m = matcher();
    let q = seq_at(T0);
    assert_eq!(knock(&mut m, ALICE, 0, T0, &q), vec![0]);
    assert_eq!(m.in_progress(), 0);
    // The same sequence again, same step: a replay, from anyone.
    assert!(knock(&mut m, ALICE, 100, T0 + 1, &q).is_empty());
    assert!(knock(&mut m, MALLORY, 200, T0 + 2, &q).is_empty());
    assert_eq!(m.counters().completed, 1);
    // The next step works again.
    let next = seq_at(T0 + 30);
    assert_eq!(knock(&mut m, ALICE, 300, T0 + 30, &next), vec![0]);
}

#[test]
fn skew_of_one_step_is_accepted_two_are_not() {
    for (client_offset, ok) in [(-30i64, true), (30, true), (-60, false), (60, false)] {
        let mut m = matcher();
        let q = seq_at((T0 as i64 + client_offset) as u64);
        let got = knock(&mut m, ALICE, 0, T0, &q);
        assert_eq!(got.len() == 1, ok, "client clock off by {client_offset}s");
    }
}

#[test]
fn a_used_step_refuses_older_ones() {
    let mut m = matcher();
    // Alice's clock is ahead: she uses the next step.
    assert_eq!(knock(&mut m, ALICE, 0, T0, &seq_at(T0 + 30)), vec![0]);
    // A sniffed (or slower) sequence of the current step is now refused.
    assert!(knock(&mut m, MALLORY, 10, T0, &seq_at(T0)).is_empty());
    assert!(m.counters().wrong + m.counters().replays >= 1);
}

#[test]
fn wrong_knocks_reset_and_spurious_knocks_before_do_not_matter() {
    let mut m = matcher();
    let q = seq_at(T0);
    // Spurious knocks in the range before the real sequence.
    let mut ports = vec![40001, 40300, 40999];
    ports.extend_from_slice(&q);
    assert_eq!(knock(&mut m, ALICE, 0, T0, &ports), vec![0]);
    // A wrong knock in the middle breaks the attempt.
    let mut m = matcher();
    let bad = if q[2] == 40000 + 2 * 256 {
        q[2] + 1
    } else {
        q[2] - 1
    };
    let ports = [q[0], q[1], bad, q[3]];
    assert!(knock(&mut m, ALICE, 0, T0, &ports).is_empty());
    assert!(m.counters().wrong >= 1);
}

#[test]
fn duplicates_are_ignored() {
    let mut m = matcher();
    let q = seq_at(T0);
    let ports = [q[0], q[0], q[1], q[1], q[1], q[2], q[3]];
    assert_eq!(knock(&mut m, ALICE, 0, T0, &ports), vec![0]);
    assert_eq!(m.counters().duplicates, 3);
}

#[test]
fn timeout_and_tick() {
    let mut m = matcher();
    let q = seq_at(T0);
    m.on_knock(now(0, T0), ALICE, PortSpec::tcp(q[0]));
    m.on_knock(now(5_000, T0), ALICE, PortSpec::tcp(q[1]));
    m.on_knock(now(10_001, T0), ALICE, PortSpec::tcp(q[2]));
    assert_eq!(m.counters().timeouts, 1);
    m.on_knock(now(20_000, T0), ALICE, PortSpec::tcp(q[0]));
    m.on_tick(Millis(30_001));
    assert_eq!(m.in_progress(), 0);
}

#[test]
fn ipv6_sources_and_protocols_are_kept_apart() {
    let mut m = matcher();
    let bob = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let q = seq_at(T0);
    // Interleaved: Alice's and Bob's progress is separate; Bob finishes first.
    m.on_knock(now(0, T0), ALICE, PortSpec::tcp(q[0]));
    assert_eq!(knock(&mut m, bob, 1, T0, &q), vec![0]);
    // UDP to the same ports is no knock of a TCP sequence.
    assert!(!m.claims(PortSpec::udp(q[1])));
    assert!(m.claims(PortSpec::tcp(q[1])));
    assert!(!m.claims(PortSpec::tcp(40000 + 1024)));
}

#[test]
fn random_knock_streams_never_open() {
    let mut rng = crate::test_rng::Rng(0x5eed_70e9);
    let mut m = matcher();
    for i in 0..200_000u64 {
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + rng.below(64) as u32));
        let port = 40000 + rng.below(1024) as u16;
        let unix = T0 + i / 1000;
        assert_eq!(m.on_knock(now(i, unix), src, PortSpec::tcp(port)), None);
    }
    assert_eq!(m.counters().completed, 0);
}

#[test]
fn strength_counts_bands_knocks_and_accepted_steps() {
    let default = TotpShape {
        proto: L4Proto::Tcp,
        base: 40000,
        range: DEFAULT_RANGE,
        length: DEFAULT_LENGTH,
        period: DEFAULT_PERIOD,
    };
    // 6 x log2(2048) - log2(3)
    assert!((default.strength_bits().as_f64() - (66.0 - 3f64.log2())).abs() < 1e-7);
    assert!(default.strength_bits() >= TARGET_STRENGTH_BITS);
    assert!(
        u32::from(default.range) <= 65535 - 1024,
        "leaves room in the port space"
    );
    // The old default: 4 x log2(256) - log2(3) = 30.4 bits.
    let old = TotpShape {
        range: 1024,
        length: 4,
        ..default
    };
    assert_eq!(format!("{:.1}", old.strength_bits()), "30.4");
    assert!(old.strength_bits() < MIN_STRENGTH_BITS);
    // A range that is not a multiple of the length: the band is rounded down.
    let odd = TotpShape {
        range: 3000,
        length: 6,
        ..default
    };
    assert_eq!(odd.band(), 500);
    assert!((odd.strength_bits().as_f64() - (6.0 * 500f64.log2() - 3f64.log2())).abs() < 1e-7);
    assert_eq!(format!("{:.0}", MIN_STRENGTH_BITS), "48");
    assert_eq!(format!("{}", Bits::whole(1)), "1.0");
}
