//! Authenticated sequences: sealing, tags, source binding, replay, skew,
//! sliding windows, duplicates, budgets.

use super::*;
use crate::time::Millis;
use core::net::{Ipv4Addr, Ipv6Addr};

const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const MALLORY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
const T0: u64 = 1_800_000_000;
const BASE: u16 = 50000;

fn keys() -> AuthKeys {
    AuthKeys::new(&[7u8; 32])
}

fn client() -> AuthClient {
    AuthClient {
        name: "laptop".into(),
        keys: keys(),
        base: BASE,
        proto: L4Proto::Tcp,
        allow: vec![PortSpec::tcp(22), PortSpec::udp(53)],
        max_duration: Duration::from_secs(600),
        sources: Vec::new(),
        timeout: Duration::from_secs(10),
    }
}

fn matcher() -> AuthMatcher {
    AuthMatcher::new(vec![client()])
}

fn open22(minutes: u8) -> AuthRequest {
    AuthRequest {
        port: PortSpec::tcp(22),
        action: AuthAction::Open(minutes),
    }
}

fn knocks_for(src: IpAddr, unix: u64, req: &AuthRequest) -> Vec<PortSpec> {
    knocks(
        BASE,
        L4Proto::Tcp,
        &seal(&keys(), unix / STEP_SECS, src, req),
    )
}

fn now(mono: u64, unix: u64) -> Now {
    Now {
        mono: Millis(mono),
        unix,
    }
}

fn run(
    m: &mut AuthMatcher,
    src: IpAddr,
    t: u64,
    unix: u64,
    k: &[PortSpec],
) -> Vec<(usize, AuthVerdict)> {
    k.iter()
        .enumerate()
        .filter_map(|(i, &p)| m.on_knock(now(t + i as u64 * 10, unix), src, p))
        .collect()
}

#[test]
fn seal_and_open_round_trip() {
    let req = open22(5);
    let syms = seal(&keys(), T0 / STEP_SECS, ALICE, &req);
    assert_eq!(open(&keys(), T0, ALICE, &syms), Ok((req, T0 / STEP_SECS)));
    let close = AuthRequest {
        port: PortSpec::udp(53),
        action: AuthAction::Close,
    };
    let syms = seal(&keys(), T0 / STEP_SECS, ALICE, &close);
    assert_eq!(open(&keys(), T0, ALICE, &syms).map(|r| r.0), Ok(close));
    // The request is not visible: another port, other first four symbols.
    let other = seal(
        &keys(),
        T0 / STEP_SECS,
        ALICE,
        &AuthRequest {
            port: PortSpec::tcp(23),
            ..req
        },
    );
    assert_ne!(other[..4], seal(&keys(), T0 / STEP_SECS, ALICE, &req)[..4]);
}

#[test]
fn every_bit_of_the_sequence_is_authenticated() {
    let syms = seal(&keys(), T0 / STEP_SECS, ALICE, &open22(0));
    for i in 0..SYMBOLS {
        for bit in 0..8 {
            let mut bad = syms;
            bad[i] ^= 1 << bit;
            assert_eq!(
                open(&keys(), T0, ALICE, &bad),
                Err(AuthError::BadTag),
                "symbol {i} bit {bit}"
            );
        }
    }
    assert_eq!(
        open(&AuthKeys::new(&[8u8; 32]), T0, ALICE, &syms),
        Err(AuthError::BadTag),
        "wrong key"
    );
}

#[test]
fn good_sequence_opens_and_is_bound_to_its_source() {
    let mut m = matcher();
    let k = knocks_for(ALICE, T0, &open22(5));
    let got = run(&mut m, ALICE, 0, T0, &k);
    assert_eq!(
        got,
        [(
            0,
            AuthVerdict::Open {
                allowed: 0,
                duration: Duration::from_secs(300)
            }
        )]
    );
    // Sniffed and sent from another address: the tag binds Alice's address.
    assert!(run(&mut m, MALLORY, 1_000, T0, &k).is_empty());
    assert_eq!(m.counters().bad_tag, 1);
    // IPv6 works the same.
    let bob = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let k = knocks_for(bob, T0, &open22(0));
    let got = run(&mut m, bob, 2_000, T0, &k);
    assert_eq!(
        got,
        [(
            0,
            AuthVerdict::Open {
                allowed: 0,
                duration: Duration::from_secs(600)
            }
        )],
        "0 minutes: the client's max_duration"
    );
}

#[test]
fn replay_from_the_same_source_is_refused() {
    let mut m = matcher();
    let k = knocks_for(ALICE, T0, &open22(1));
    assert_eq!(run(&mut m, ALICE, 0, T0, &k).len(), 1);
    assert!(run(&mut m, ALICE, 1_000, T0 + 10, &k).is_empty());
    assert_eq!(m.counters().replays, 1);
    // Out of reach later: refused as stale.
    assert!(run(&mut m, ALICE, 2_000, T0 + 200, &k).is_empty());
    assert_eq!(m.counters().bad_tag, 1);
}

#[test]
fn clock_skew_within_two_steps() {
    for (skew, ok) in [(-60i64, true), (59, true), (-95, false), (95, false)] {
        let mut m = matcher();
        let k = knocks_for(ALICE, (T0 as i64 + skew) as u64, &open22(1));
        assert_eq!(run(&mut m, ALICE, 0, T0, &k).len() == 1, ok, "skew {skew}s");
    }
}

#[test]
fn sliding_window_after_spurious_knocks_and_duplicates() {
    let k = knocks_for(ALICE, T0, &open22(1));
    for junk in 0..30usize {
        let mut m = matcher();
        let mut stream: Vec<PortSpec> = (0..junk)
            .map(|i| PortSpec::tcp(alphabet(BASE).port(i, (i * 37) as u8)))
            .collect();
        stream.push(PortSpec::tcp(443)); // not in the range: no symbol at all
        stream.extend(k.iter().flat_map(|&p| [p, p])); // every knock twice
        assert_eq!(
            run(&mut m, ALICE, 0, T0, &stream).len(),
            1,
            "{junk} junk knocks"
        );
        assert!(m.counters().window.duplicates >= SYMBOLS as u64 - 1);
    }
}

#[test]
fn ports_not_allowed_and_sources_not_listed_are_refused() {
    let mut m = matcher();
    let req = AuthRequest {
        port: PortSpec::tcp(23),
        action: AuthAction::Open(1),
    };
    assert!(run(&mut m, ALICE, 0, T0, &knocks_for(ALICE, T0, &req)).is_empty());
    assert_eq!(m.counters().refused, 1);
    let mut c = client();
    c.sources = vec!["192.0.2.0/24".parse().unwrap()];
    let mut m = AuthMatcher::new(vec![c]);
    assert!(run(&mut m, ALICE, 0, T0, &knocks_for(ALICE, T0, &open22(1))).is_empty());
    assert_eq!(m.counters().wrong_source, SYMBOLS as u64);
    // Close.
    let mut m = matcher();
    let req = AuthRequest {
        port: PortSpec::udp(53),
        action: AuthAction::Close,
    };
    assert_eq!(
        run(&mut m, ALICE, 0, T0, &knocks_for(ALICE, T0, &req)),
        [(0, AuthVerdict::Close { allowed: 1 })]
    );
}

#[test]
fn checks_per_second_are_bounded() {
    let mut m = matcher();
    let mut rng = crate::test_rng::Rng(42);
    // A flood of well-formed random symbols (alternating halves) within one second.
    for i in 0..20_000u64 {
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 256) as u32));
        let port = PortSpec::tcp(alphabet(BASE).port((i / 256) as usize, rng.next() as u8));
        m.on_knock(now(i / 100, T0), src, port);
    }
    let c = m.counters();
    assert!(c.checked <= u64::from(ATTEMPTS_PER_SECOND), "{c:?}");
    assert!(c.over_budget > 0, "{c:?}");
}

#[test]
fn random_knock_streams_never_open() {
    let mut rng = crate::test_rng::Rng(0x00a1_7e47);
    let mut m = matcher();
    let mut next = [0usize; 8];
    for i in 0..200_000u64 {
        let s = rng.below(8);
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s as u32));
        // Mostly well-formed symbols (an attacker knows the scheme), some noise.
        let port = if rng.below(10) == 0 {
            PortSpec::tcp(BASE + rng.below(512) as u16)
        } else {
            next[s] += 1;
            PortSpec::tcp(alphabet(BASE).port(next[s], rng.next() as u8))
        };
        // 10 ms apart: the budget never bites, every full window is checked.
        assert_eq!(m.on_knock(now(i * 10, T0 + i / 100), src, port), None);
    }
    let c = m.counters();
    assert!(c.checked > 1000, "{c:?}");
    assert_eq!(c.granted, 0);
}

/// The attack: one client (or one leaked key) fills the used-code cache with
/// authentic sequences; before per-client quotas every other client's
/// sequence was then refused (`cache_full`).
#[test]
fn one_client_cannot_fill_another_clients_used_codes() {
    let mut bob = client();
    bob.name = "bob".into();
    bob.keys = AuthKeys::new(&[9u8; 32]);
    bob.base = BASE + RANGE;
    let mut m = AuthMatcher::new(vec![client(), bob]);
    let mut granted = 0;
    for i in 0..300u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        granted += run(&mut m, src, 0, T0, &knocks_for(src, T0, &open22(1))).len();
    }
    assert!(granted < 300, "the flooding client hits its own quota");
    assert!(m.counters().cache_full > 0);
    let bob_knocks = knocks(
        BASE + RANGE,
        L4Proto::Tcp,
        &seal(
            &AuthKeys::new(&[9u8; 32]),
            T0 / STEP_SECS,
            ALICE,
            &open22(1),
        ),
    );
    assert_eq!(
        run(&mut m, ALICE, 0, T0, &bob_knocks).len(),
        1,
        "another client still gets in"
    );
}

/// The attack: a sequence refused for a port the client may not open, or an
/// accepted one, replayed from the same source after a reload (a new
/// matcher) that allows the port. Before, the reload forgot every used code.
#[test]
fn authentic_sequences_stay_used_across_a_reload() {
    let mut m = matcher();
    let telnet = AuthRequest {
        port: PortSpec::tcp(23),
        action: AuthAction::Open(1),
    };
    let refused = knocks_for(ALICE, T0, &telnet);
    assert!(run(&mut m, ALICE, 0, T0, &refused).is_empty());
    let accepted = knocks_for(ALICE, T0, &open22(1));
    assert_eq!(run(&mut m, ALICE, 1_000, T0, &accepted).len(), 1);
    let mut wider = client();
    wider.allow.push(PortSpec::tcp(23));
    let mut reloaded = AuthMatcher::new(vec![wider]);
    reloaded.adopt_used(&m);
    assert!(run(&mut reloaded, ALICE, 2_000, T0 + 5, &refused).is_empty());
    assert!(run(&mut reloaded, ALICE, 3_000, T0 + 5, &accepted).is_empty());
    assert_eq!(reloaded.counters().replays, 2);
}
