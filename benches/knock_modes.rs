//! Cost of the knock modes that carry information: deriving a TOTP step,
//! checking a full authenticated window (the worst case per packet), and a
//! flood of well-formed junk symbols through the authenticated matcher.
//!
//! A plain `std::time` loop (no criterion): `cargo bench --bench knock_modes`.
//! Prints nanoseconds per operation; asserts nothing about speed. Run without
//! `--bench` (as `cargo test --all-targets` does, unoptimised) it only makes a
//! few iterations, as a smoke test.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use postern::knock::authenticated::{
    self, AuthAction, AuthClient, AuthKeys, AuthMatcher, AuthRequest,
};
use postern::knock::hmac::HmacKey;
use postern::knock::totp::{self, TotpShape};
use postern::port::{L4Proto, PortSpec};
use postern::time::{Millis, Now};

const T0: u64 = 1_800_000_000;

fn report(what: &str, n: u32, start: Instant) {
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{what:<56} {ns:>10.0} ns");
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let scale = if bench { 1 } else { 1000 };
    let src: IpAddr = "192.0.2.9".parse().unwrap();

    let key = HmacKey::new(&[7; 32]);
    let shape = TotpShape {
        proto: L4Proto::Tcp,
        base: 40000,
        range: 1024,
        length: 4,
        period: 30,
    };
    let n = 100_000u32 / scale;
    let start = Instant::now();
    for i in 0..n {
        black_box(totp::sequence(&key, &shape, black_box(u64::from(i))));
    }
    report(
        "TOTP: derive one step's sequence (once per period)",
        n,
        start,
    );

    let keys = AuthKeys::new(&[7; 32]);
    let req = AuthRequest {
        port: PortSpec::tcp(22),
        action: AuthAction::Open(1),
    };
    let good = authenticated::seal(&keys, T0 / authenticated::STEP_SECS, src, &req);
    let n = 100_000u32 / scale;
    let start = Instant::now();
    for _ in 0..n {
        assert!(authenticated::open(&keys, T0, src, black_box(&good)).is_ok());
    }
    report("auth: check a valid window (6 HMAC-SHA256)", n, start);
    let junk = [0x5a; authenticated::SYMBOLS];
    let start = Instant::now();
    for _ in 0..n {
        assert!(authenticated::open(&keys, T0, src, black_box(&junk)).is_err());
    }
    report("auth: check a junk window (6 HMAC-SHA256)", n, start);

    // A flood of well-formed symbols from 256 sources, 100 per millisecond:
    // the check budget bounds the crypto, the rest is table work.
    let mut m = AuthMatcher::new(vec![AuthClient {
        name: "laptop".into(),
        keys,
        base: 50000,
        proto: L4Proto::Tcp,
        allow: vec![PortSpec::tcp(22)],
        max_duration: Duration::from_secs(600),
        sources: Vec::new(),
        timeout: Duration::from_secs(10),
    }]);
    let n = 1_000_000u32 / scale;
    let a = authenticated::alphabet(50000);
    let start = Instant::now();
    for i in 0..n {
        let s = IpAddr::from([10, 0, 0, (i % 256) as u8]);
        let port = PortSpec::tcp(a.port(
            (i / 256) as usize,
            (i.wrapping_mul(2_654_435_761) >> 24) as u8,
        ));
        let now = Now {
            mono: Millis(u64::from(i / 100)),
            unix: T0,
        };
        black_box(m.on_knock(now, s, port));
    }
    report("auth: per knock of a well-formed junk flood", n, start);
    println!("  ({:?})", m.counters());
}
