//! Requests without ports (native: an empty list; fwknop: `none/N` or no
//! port): the router opens the client's `default_access`, never more, and
//! nothing for a client without one.

use super::*;
use crate::config::{FwknopClient, Main};
use crate::spa::fwknop::message::plaintext_for_test;
use crate::spa::fwknop::vectors::vectors;
use crate::spa::fwknop::{seal_for_test, Keys};
use crate::spa::prefilter::RANDOM_LEN;
use crate::spa::seal::{seal, MAX_PACKET_LEN};
use crate::spa::Key;
use core::net::Ipv4Addr;

const T0: u64 = 1_800_000_000;
const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

fn client(default_access: &[PortSpec], fwknop: Option<Keys>) -> Client {
    Client {
        name: "phone".into(),
        enabled: true,
        key: Some(Key::from_bytes([7; 32])),
        fwknop: fwknop.map(|keys| FwknopClient {
            keys,
            timeout: Duration::from_secs(30),
        }),
        allow: vec![PortSpec::tcp(22), PortSpec::udp(53), PortSpec::tcp(443)],
        max_duration: Duration::from_secs(300),
        sources: Vec::new(),
        allow_other_address: false,
        require_address: false,
        commands: Vec::new(),
        forwards: Vec::new(),
        default_access: default_access.to_vec(),
    }
}

fn verifier(c: Client) -> Verifier {
    Verifier::new(&Config {
        main: Main {
            source_skew: Duration::from_secs(86_400),
            ..Main::default()
        },
        sequences: Vec::new(),
        knock_modes: Default::default(),
        commands: Vec::new(),
        forwards: Vec::new(),
        clients: vec![c],
        hooks: Vec::new(),
        peers: Vec::new(),
    })
}

fn now(unix: u64) -> Now {
    Now {
        mono: Millis(5_000_000 + (unix.saturating_sub(T0)) * 1000),
        unix,
    }
}

/// A native request of `kind` without ports, with nonce bytes `n`.
fn empty(kind: Kind, n: u8) -> Vec<u8> {
    let r = RequestRepr {
        kind,
        timestamp: T0,
        duration: if kind == Kind::Open { 60 } else { 0 },
        target: Target::Source,
        ports: heapless::Vec::new(),
        name: heapless::String::new(),
    };
    let mut out = [0u8; MAX_PACKET_LEN];
    let len = seal(
        &Key::from_bytes([7; 32]),
        &[n; RANDOM_LEN],
        &r,
        &[0x33; 3],
        &mut out,
    )
    .unwrap();
    out[..len].to_vec()
}

#[test]
fn no_port_opens_the_default_access_and_nothing_else() {
    let default = [PortSpec::tcp(22), PortSpec::udp(53)];
    let mut v = verifier(client(&default, None));
    let a = v.verify(now(T0), SRC, &empty(Kind::Open, 1)).unwrap();
    assert_eq!((a.kind, a.ports), (Kind::Open, &default[..]));
    assert!(!a.ports.contains(&PortSpec::tcp(443)), "not all of allow");
    let a = v.verify(now(T0), SRC, &empty(Kind::Close, 2)).unwrap();
    assert_eq!((a.kind, a.ports), (Kind::Close, &default[..]));
}

#[test]
fn no_port_from_a_client_without_default_access_opens_nothing() {
    // The attack: a key holder sends an empty list, hoping the router
    // reads it as "everything allowed".
    let mut v = verifier(client(&[], None));
    let r = v.verify(now(T0), SRC, &empty(Kind::Open, 1)).unwrap_err();
    assert_eq!(
        (r.reason, r.detail),
        (Refusal::PortNotAllowed, Detail::NoDefault)
    );
    assert_eq!(
        r.to_string(),
        "asks for no port (the router's choice), and the client has no default_access; nothing opened"
    );
    assert!(r.record.is_some(), "recorded: never accepted later");
}

#[test]
fn fwknop_none_and_empty_access_messages_open_the_default_access() {
    let keys = vectors()
        .into_iter()
        .find(|v| v.name == "access_source_sha256")
        .unwrap()
        .keys;
    let default = [PortSpec::tcp(443)];
    let mut v = verifier(client(&default, Some(keys.clone())));
    for (salt, msg) in [(1, "0.0.0.0,none/0"), (2, "0.0.0.0"), (3, "0.0.0.0,")] {
        let p = seal_for_test(&keys, [salt; 8], &plaintext_for_test(T0, 1, msg));
        let a = v.verify(now(T0), SRC, &p).unwrap();
        assert_eq!(
            (a.kind, a.addr, a.ports),
            (Kind::Open, SRC, &default[..]),
            "{msg}"
        );
        assert_eq!(a.duration, Duration::from_secs(30), "{msg}: fwknop_timeout");
    }
    let mut v = verifier(client(&[], Some(keys.clone())));
    let p = seal_for_test(&keys, [9; 8], &plaintext_for_test(T0, 1, "0.0.0.0,none/0"));
    let r = v.verify(now(T0), SRC, &p).unwrap_err();
    assert_eq!(
        (r.reason, r.detail),
        (Refusal::PortNotAllowed, Detail::NoDefault)
    );
}
