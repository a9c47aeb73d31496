//! Checks the test vectors of `docs/spa-protocol.md` against the code.

use super::prefilter::{FilterKey, RANDOM_LEN};
use super::request::{Kind, Request, RequestRepr, Target};
use super::seal::{nonce_for, open, seal, Cipher, MAX_PACKET_LEN, MAX_PLAINTEXT_LEN, NONCE_LEN};
use super::Key;
use crate::port::PortSpec;

const DOC: &str = include_str!("../../docs/spa-protocol.md");

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    assert!(s.len() % 2 == 0, "odd hex: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The requests the vectors describe in words.
fn expected(n: &str) -> RequestRepr {
    let ports = |p: &[PortSpec]| heapless::Vec::from_slice(p).unwrap();
    match n {
        "1" => RequestRepr {
            kind: Kind::Open,
            timestamp: 1_800_000_000,
            duration: 30,
            target: Target::Source,
            ports: ports(&[PortSpec::tcp(22)]),
            name: heapless::String::new(),
        },
        "2" => RequestRepr {
            kind: Kind::Open,
            timestamp: 1_800_000_123,
            duration: 600,
            target: Target::Addr("198.51.100.7".parse().unwrap()),
            ports: ports(&[PortSpec::tcp(22), PortSpec::udp(53)]),
            name: heapless::String::new(),
        },
        "3" => RequestRepr {
            kind: Kind::Close,
            timestamp: 1_800_000_456,
            duration: 0,
            target: Target::Addr("2001:db8::7".parse().unwrap()),
            ports: ports(&[PortSpec::tcp(2222)]),
            name: heapless::String::new(),
        },
        "4" => RequestRepr {
            kind: Kind::Command,
            timestamp: 1_800_000_789,
            duration: 0,
            target: Target::Source,
            ports: heapless::Vec::new(),
            name: heapless::String::try_from("wake_nas").unwrap(),
        },
        "5" => RequestRepr {
            kind: Kind::Forward,
            timestamp: 1_800_001_000,
            duration: 120,
            target: Target::Addr("203.0.113.9".parse().unwrap()),
            ports: heapless::Vec::new(),
            name: heapless::String::try_from("nas_ssh").unwrap(),
        },
        "6" => RequestRepr {
            kind: Kind::Open,
            timestamp: 1_800_001_234,
            duration: 60,
            target: Target::Source,
            ports: heapless::Vec::new(),
            name: heapless::String::new(),
        },
        other => panic!("unknown vector {other}"),
    }
}

#[test]
fn the_documented_vectors_hold() {
    let mut checked = 0;
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("vector ") else {
            continue;
        };
        let n = rest.split(':').next().unwrap_or("");
        let mut field = |name: &str| {
            let l = lines.next().unwrap_or("");
            let (k, v) = l.trim().split_once(':').unwrap_or(("", ""));
            assert_eq!(k, name, "vector {n}");
            hex(v.trim())
        };
        let key: [u8; 32] = field("key").try_into().unwrap();
        let filter_key = field("filter_key");
        let random: [u8; RANDOM_LEN] = field("random").try_into().unwrap();
        let nonce: [u8; NONCE_LEN] = field("nonce").try_into().unwrap();
        let padding = field("padding");
        let plaintext = field("plaintext");
        let packet = field("packet");
        let key = Key::from_bytes(key);
        let want = expected(n);
        assert_eq!(
            FilterKey::derive(&key).as_bytes()[..],
            filter_key[..],
            "vector {n}: filter key"
        );
        assert_eq!(nonce_for(&key, &random), nonce, "vector {n}: nonce");
        assert!(Cipher::new(&key).passes(&packet), "vector {n}: pre-filter");

        let parsed = RequestRepr::parse(&Request::new_checked(&plaintext[..]).unwrap()).unwrap();
        assert_eq!(parsed, want, "vector {n}: plaintext");
        let mut emitted = vec![0u8; want.buffer_len()];
        want.emit(&mut Request::new_unchecked(&mut emitted[..]));
        emitted.extend_from_slice(&padding);
        assert_eq!(emitted, plaintext, "vector {n}: emit");

        let mut out = [0u8; MAX_PACKET_LEN];
        let len = seal(&key, &random, &want, &padding, &mut out).unwrap();
        assert_eq!(&out[..len], &packet[..], "vector {n}: sealed packet");
        let mut scratch = [0u8; MAX_PLAINTEXT_LEN];
        let opened = open(&Cipher::new(&key), &packet, &mut scratch).unwrap();
        assert_eq!(opened, &plaintext[..], "vector {n}: opened");
        checked += 1;
    }
    assert_eq!(checked, 6, "the doc's six vectors were found");
}
