//! SPA verifier cost per packet: a valid packet, a junk packet (one AEAD
//! verification per candidate key), and a packet of a bad length (no crypto).
//!
//! A plain `std::time` loop (no criterion): `cargo bench --bench spa`.
//! Prints nanoseconds per packet; asserts nothing about speed. Run without
//! `--bench` (as `cargo test --all-targets` does, unoptimised) it only makes a
//! few iterations, as a smoke test.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use postern::config::{Client, Config, Main};
use postern::port::PortSpec;
use postern::spa::seal::{seal, MAX_PACKET_LEN};
use postern::spa::{Key, Kind, RequestRepr, Target, Verifier};
use postern::time::{Millis, Now};

const T0: u64 = 1_800_000_000;

fn config(clients: u8) -> Config {
    Config {
        main: Main {
            spa_verify_budget: 1_000_000,
            ..Main::default()
        },
        sequences: Vec::new(),
        knock_modes: Default::default(),
        clients: (1..=clients)
            .map(|i| Client {
                name: format!("c{i}"),
                enabled: true,
                key: Some(Key::from_bytes([i; 32])),
                fwknop: None,
                allow: vec![PortSpec::tcp(22)],
                max_duration: Duration::from_secs(300),
                sources: Vec::new(),
                allow_other_address: false,
            })
            .collect(),
    }
}

/// A valid packet for key `k` with a distinct nonce `n` (so the replay cache
/// does not refuse it) and 32 bytes of padding.
fn packet(k: u8, n: u64) -> Vec<u8> {
    let repr = RequestRepr {
        kind: Kind::Open,
        timestamp: T0,
        duration: 60,
        target: Target::Source,
        ports: heapless::Vec::from_slice(&[PortSpec::tcp(22)]).unwrap(),
    };
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    let mut out = [0u8; MAX_PACKET_LEN];
    let len = seal(
        &Key::from_bytes([k; 32]),
        &nonce,
        &repr,
        &[0x5a; 32],
        &mut out,
    )
    .unwrap();
    out[..len].to_vec()
}

fn report(what: &str, n: u32, start: Instant) {
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{what:<48} {ns:>10.0} ns/packet");
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let scale = if bench { 1 } else { 1000 };
    let src: IpAddr = "192.0.2.9".parse().unwrap();
    let now = |i: u64| Now {
        mono: Millis(i),
        unix: T0,
    };
    for clients in [1u8, 8, 32] {
        let mut v = Verifier::new(&config(clients));
        // Valid packets for the last key (worst case: every key is tried).
        // Fresh nonces, and a new verifier every 1000 so the replay cache never fills.
        let n = 20_000u32 / scale;
        let packets: Vec<Vec<u8>> = (0..1000).map(|i| packet(clients, i)).collect();
        let start = Instant::now();
        for i in 0..n {
            if i % 1000 == 0 {
                v = Verifier::new(&config(clients));
            }
            let ok = v
                .verify(
                    now(u64::from(i)),
                    src,
                    black_box(&packets[(i % 1000) as usize]),
                )
                .is_ok();
            assert!(ok);
        }
        report(
            &format!("valid packet, {clients} client(s), last key"),
            n,
            start,
        );

        let junk: Vec<u8> = (0..packets[0].len()).map(|i| (i * 37) as u8).collect();
        let start = Instant::now();
        for i in 0..n {
            let r = v.verify(now(u64::from(i)), src, black_box(&junk));
            assert!(r.is_err());
        }
        report(&format!("junk packet, {clients} client(s)"), n, start);
    }
    let mut v = Verifier::new(&config(32));
    let short = vec![0u8; 40];
    let n = 1_000_000u32 / scale;
    let start = Instant::now();
    for i in 0..n {
        let _ = black_box(v.verify(now(u64::from(i)), src, black_box(&short)));
    }
    report("bad length (no crypto), 32 clients", n, start);
}
