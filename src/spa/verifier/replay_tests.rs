//! Replay protection without gaps (issue 14, item 3): restarts and reloads
//! that change `max_skew` or what a client may ask for, a lost state file.
//! Each test is an attack that succeeded before the change.

use super::*;
use crate::config::Main;
use crate::replay_file::Loaded;
use crate::spa::replay::ReplayRecord;
use crate::spa::seal::{seal, MAX_PACKET_LEN};
use crate::spa::Key;
use core::net::Ipv4Addr;

const T0: u64 = 1_800_000_000;
const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

fn key(i: u8) -> Key {
    Key::from_bytes([i; 32])
}

fn client(i: u8) -> Client {
    Client {
        name: format!("c{i}"),
        enabled: true,
        key: Some(key(i)),
        fwknop: None,
        allow: vec![PortSpec::tcp(22)],
        max_duration: Duration::from_secs(300),
        sources: Vec::new(),
        allow_other_address: false,
        require_address: false,
        commands: Vec::new(),
        forwards: Vec::new(),
        default_access: Vec::new(),
    }
}

fn config(clients: Vec<Client>, max_skew: u64) -> Config {
    Config {
        peers: Vec::new(),
        main: Main {
            max_skew: Duration::from_secs(max_skew),
            // These packets ask for their source: give them max_skew's
            // window (the source window has tests of its own).
            source_skew: Duration::from_secs(86_400),
            ..Main::default()
        },
        sequences: Vec::new(),
        knock_modes: Default::default(),
        commands: Vec::new(),
        forwards: Vec::new(),
        clients,
        hooks: Vec::new(),
    }
}

fn now(unix: u64) -> Now {
    Now {
        mono: Millis(5_000_000 + (unix - T0) * 1000),
        unix,
    }
}

fn repr(ts: u64, port: PortSpec) -> RequestRepr {
    RequestRepr {
        kind: Kind::Open,
        timestamp: ts,
        duration: 60,
        target: Target::Source,
        ports: heapless::Vec::from_slice(&[port]).unwrap(),
        name: heapless::String::new(),
    }
}

fn packet(k: u8, n: u8, r: &RequestRepr) -> Vec<u8> {
    let mut out = [0u8; MAX_PACKET_LEN];
    let len = seal(
        &key(k),
        &[n; crate::spa::prefilter::RANDOM_LEN],
        r,
        &[0x33; 10],
        &mut out,
    )
    .unwrap();
    out[..len].to_vec()
}

fn outcome(v: &mut Verifier, at: Now, p: &[u8]) -> Result<(), Refusal> {
    v.verify(at, SRC, p).map(|_| ()).map_err(|r| r.reason)
}

/// The daemon's reload: a new verifier that takes over the old record.
fn reload(old: &Verifier, cfg: &Config, at: Now) -> Verifier {
    let mut v = Verifier::new(cfg);
    v.restore_replay(&old.replay_record(), at);
    v.set_replay_guard(old.replay_guard());
    v
}

#[test]
fn reloading_max_skew_down_then_up_does_not_reopen_the_gap() {
    let (wide, narrow) = (config(vec![client(1)], 600), config(vec![client(1)], 120));
    let mut v = Verifier::new(&wide);
    let p = packet(1, 1, &repr(T0, PortSpec::tcp(22)));
    assert_eq!(outcome(&mut v, now(T0), &p), Ok(()));
    // Down: the entry is out of the narrow window, forgotten — under the floor.
    let v = reload(&v, &narrow, now(T0 + 200));
    assert_eq!(v.replay_len(), 0);
    // Up again: the packet is inside the wide window, but below the floor.
    let mut v = reload(&v, &wide, now(T0 + 200));
    assert_eq!(
        outcome(&mut v, now(T0 + 200), &p),
        Err(Refusal::BeforeReplayGuard)
    );
    // Newer packets are not affected.
    let q = packet(1, 2, &repr(T0 + 150, PortSpec::tcp(22)));
    assert_eq!(outcome(&mut v, now(T0 + 200), &q), Ok(()));
}

#[test]
fn raising_max_skew_and_restarting_does_not_reopen_the_gap() {
    // The daemon's state file, as it records packets under max_skew 120.
    let mut file = ReplayRecord::default();
    let mut v = Verifier::new(&config(vec![client(1)], 120));
    let p = packet(1, 1, &repr(T0, PortSpec::tcp(22)));
    let a = v.verify(now(T0), SRC, &p).unwrap();
    file.record(Some(a.client), a.record, T0, 120);
    let q = packet(1, 2, &repr(T0 + 200, PortSpec::tcp(22)));
    let a = v.verify(now(T0 + 200), SRC, &q).unwrap();
    // This write drops p's entry (T0 + 120 < T0 + 200).
    file.record(Some(a.client), a.record, T0 + 200, 120);
    assert_eq!(file.entries.len(), 1);
    // Restart with max_skew 600: p is inside the window again.
    let mut after = Verifier::new(&config(vec![client(1)], 600));
    after.restore_replay(&file, now(T0 + 210));
    assert_eq!(
        outcome(&mut after, now(T0 + 210), &p),
        Err(Refusal::BeforeReplayGuard)
    );
    assert_eq!(outcome(&mut after, now(T0 + 210), &q), Err(Refusal::Replay));
}

#[test]
fn a_port_refused_once_stays_refused_after_a_reload_or_restart_that_allows_it() {
    let before = config(vec![client(1)], 120);
    let mut after_cfg = before.clone();
    after_cfg.clients[0].allow.push(PortSpec::tcp(80));
    let mut v = Verifier::new(&before);
    let p = packet(1, 1, &repr(T0, PortSpec::tcp(80)));
    let r = v.verify(now(T0), SRC, &p).unwrap_err();
    assert_eq!(r.reason, Refusal::PortNotAllowed);
    let record = r.record.expect("an authenticated refusal is recorded");
    assert_eq!(
        record.nonce,
        crate::spa::seal::nonce_for(&key(1), &[1; crate::spa::prefilter::RANDOM_LEN])
    );
    // In memory, across a reload that now allows the port.
    let mut reloaded = reload(&v, &after_cfg, now(T0 + 5));
    assert_eq!(
        outcome(&mut reloaded, now(T0 + 5), &p),
        Err(Refusal::Replay)
    );
    // On disk, across a restart that allows it.
    let mut file = ReplayRecord::default();
    file.record(Some("c1"), record, T0, 120);
    let mut restarted = Verifier::new(&after_cfg);
    restarted.restore_replay(&file, now(T0 + 5));
    assert_eq!(
        outcome(&mut restarted, now(T0 + 5), &p),
        Err(Refusal::Replay)
    );
}

#[test]
fn another_address_refused_once_stays_refused_after_allow_other_address() {
    let before = config(vec![client(1)], 120);
    let mut after_cfg = before.clone();
    after_cfg.clients[0].allow_other_address = true;
    let mut v = Verifier::new(&before);
    let mut r = repr(T0, PortSpec::tcp(22));
    r.target = Target::Addr("198.51.100.7".parse().unwrap());
    let p = packet(1, 1, &r);
    let refused = v.verify(now(T0), SRC, &p).unwrap_err();
    assert_eq!(refused.reason, Refusal::OtherAddress);
    assert!(refused.record.is_some());
    let mut reloaded = reload(&v, &after_cfg, now(T0 + 5));
    assert_eq!(
        outcome(&mut reloaded, now(T0 + 5), &p),
        Err(Refusal::Replay)
    );
    // Refusals before the replay cache record nothing.
    let junk = v.verify(now(T0), SRC, &packet(9, 2, &r)).unwrap_err();
    assert_eq!((junk.reason, junk.record), (Refusal::AuthFailed, None));
    let old = packet(1, 3, &repr(T0 - 500, PortSpec::tcp(22)));
    let r = v.verify(now(T0), SRC, &old).unwrap_err();
    assert_eq!((r.reason, r.record), (Refusal::TooOld, None));
}

#[test]
fn a_malformed_state_file_guards_from_now() {
    let cfg = config(vec![client(1)], 120);
    let mut v = Verifier::new(&cfg);
    let p = packet(1, 1, &repr(T0, PortSpec::tcp(22)));
    assert_eq!(outcome(&mut v, now(T0), &p), Ok(()));
    // Restart 10 s later; the state file is junk. Before the change the guard
    // was the boot (long ago) and the empty history let the replay through.
    let boot = Millis(0);
    let guard = Loaded::Bad("junk".into()).guard(boot, now(T0 + 10).mono);
    let mut after = Verifier::new(&cfg);
    after.set_replay_guard(Some(guard));
    assert_eq!(
        outcome(&mut after, now(T0 + 10), &p),
        Err(Refusal::BeforeReplayGuard)
    );
    // Packets stamped after now + max_skew pass again.
    let fresh = packet(1, 2, &repr(T0 + 10 + 121, PortSpec::tcp(22)));
    assert_eq!(outcome(&mut after, now(T0 + 131), &fresh), Ok(()));
    // With a readable (empty) file the boot guard lets a new packet through at once.
    let mut ok = Verifier::new(&cfg);
    ok.set_replay_guard(Some(Loaded::Missing.guard(boot, now(T0 + 10).mono)));
    let q = packet(1, 3, &repr(T0 + 10, PortSpec::tcp(22)));
    assert_eq!(outcome(&mut ok, now(T0 + 10), &q), Ok(()));
}

#[test]
fn the_replay_lookup_needs_no_cryptography() {
    let mut v = Verifier::new(&config(vec![client(1)], 120));
    let p = packet(1, 7, &repr(T0, PortSpec::tcp(22)));
    assert!(!v.replay_contains(&seal::nonce_of(&p)));
    assert_eq!(outcome(&mut v, now(T0), &p), Ok(()));
    assert!(v.replay_contains(&seal::nonce_of(&p)));
}

#[test]
fn entries_of_a_disabled_client_stay_refused_after_it_comes_back() {
    let two = config(vec![client(1), client(2)], 120);
    let one = config(vec![client(1)], 120);
    let mut v = Verifier::new(&two);
    let p = packet(2, 1, &repr(T0, PortSpec::tcp(22)));
    assert_eq!(outcome(&mut v, now(T0), &p), Ok(()));
    let v = reload(&v, &one, now(T0 + 1));
    let saved = v.replay_record();
    assert_eq!(saved.entries[0].client, None, "an orphan while c2 is gone");
    let mut v = reload(&v, &two, now(T0 + 2));
    assert_eq!(outcome(&mut v, now(T0 + 2), &p), Err(Refusal::Replay));
}

/// The residual of issue 15 (docs/spa-protocol.md, "Residual: an archive of
/// one client's packets"), measured: a sniffer that kept more stale packets
/// of one client than the router remembers refusing (64) replays them in a
/// cycle. Each passes that client's pre-filter and is too old to be in the
/// replay cache; the ring of the last 64 timestamp refusals holds only the
/// most recent ones, so every packet the ring has forgotten costs one AEAD
/// from that client's budget again: the flood keeps the budget spent second
/// after second, and that client's fresh packet is dropped unopened
/// (`budget_exceeded`). Bounded: another client is untouched, and nothing is
/// banned (the refusals are `too_old` and `replay`, never `auth_failed`).
#[test]
fn residual_an_archive_of_stale_packets_spends_only_its_own_clients_budget() {
    let mut cfg = config(vec![client(1), client(2)], 120);
    cfg.main.spa_verify_budget = 32;
    let mut v = Verifier::new(&cfg);
    // 100 packets of client 1, sealed an hour before "now", each unseen.
    let archive: Vec<Vec<u8>> = (0..100u8)
        .map(|n| packet(1, n, &repr(T0 - 3600, PortSpec::tcp(22))))
        .collect();
    let mut replayed = archive.iter().cycle();
    let fresh1 = packet(1, 200, &repr(T0, PortSpec::tcp(22)));
    for second in 0..5 {
        let at = now(T0 + second);
        let before = v.counters().aead_attempts;
        // 300 archived packets a second (1000 would do at the default budget).
        for p in replayed.by_ref().take(300) {
            let r = outcome(&mut v, at, p);
            assert!(
                matches!(
                    r,
                    Err(Refusal::TooOld | Refusal::Replay | Refusal::BudgetExceeded)
                ),
                "{r:?}"
            );
        }
        assert_eq!(v.counters().aead_attempts - before, 32, "second {second}");
        assert_eq!(outcome(&mut v, at, &fresh1), Err(Refusal::BudgetExceeded));
    }
    // Client 2 is not affected.
    let fresh2 = packet(2, 201, &repr(T0 + 4, PortSpec::tcp(22)));
    assert_eq!(outcome(&mut v, now(T0 + 4), &fresh2), Ok(()));
    // When the flood stops, the victim gets in.
    assert_eq!(outcome(&mut v, now(T0 + 6), &fresh1), Ok(()));
}
