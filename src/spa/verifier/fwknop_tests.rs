//! The verifier with fwknop packets: the real client's vectors through every rule.

use super::*;
use crate::config::{FwknopClient, Main};
use crate::spa::fwknop::vectors::{vectors, Vector};
use crate::spa::fwknop::{seal_for_test, Keys, Secret, SALTED_PREFIX};
use crate::spa::Key;
use core::net::Ipv4Addr;

const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
const DASH_A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 2));

fn vector(name: &str) -> Vector {
    vectors().into_iter().find(|v| v.name == name).unwrap()
}

fn client(name: &str, keys: Option<Keys>) -> Client {
    Client {
        name: name.to_string(),
        enabled: true,
        key: None,
        fwknop: keys.map(|keys| FwknopClient {
            keys,
            timeout: Duration::from_secs(30),
        }),
        allow: vec![PortSpec::tcp(22), PortSpec::udp(53), PortSpec::tcp(2222)],
        max_duration: Duration::from_secs(300),
        sources: Vec::new(),
        allow_other_address: false,
        require_address: false,
        commands: Vec::new(),
        forwards: Vec::new(),
        default_access: Vec::new(),
    }
}

fn verifier(clients: Vec<Client>) -> Verifier {
    Verifier::new(&Config {
        peers: Vec::new(),
        knock_modes: Default::default(),
        commands: Vec::new(),
        forwards: Vec::new(),
        main: Main::default(),
        sequences: Vec::new(),
        clients,
        hooks: Vec::new(),
    })
}

/// The router's clock when the vector was made (the vectors never grow old).
fn at(v: &Vector) -> Now {
    Now {
        mono: Millis(1_000_000),
        unix: v.timestamp,
    }
}

fn outcome(v: &mut Verifier, now: Now, src: IpAddr, p: &[u8]) -> Result<(), Refusal> {
    v.verify(now, src, p).map(|_| ()).map_err(|r| r.reason)
}

#[test]
fn every_access_vector_opens_with_its_own_keys() {
    for (name, ports, secs) in [
        ("access_source_sha256", vec![PortSpec::tcp(22)], 30),
        (
            "timeout_hmac_sha384_digest_sha1",
            vec![PortSpec::tcp(2222)],
            45,
        ),
        (
            "access_hmac_sha512_digest_sha512",
            vec![PortSpec::udp(53)],
            30,
        ),
        (
            "access_digest_sha384_passphrase",
            vec![PortSpec::tcp(22)],
            30,
        ),
    ] {
        let v = vector(name);
        let mut ver = verifier(vec![
            client(
                "other",
                Some(vector("access_source_sha256").keys).map(|mut k| {
                    k.hmac_key = Secret::from_bytes(b"someone else").unwrap();
                    k
                }),
            ),
            client("phone", Some(v.keys.clone())),
        ]);
        let a = ver.verify(at(&v), SRC, &v.packet).unwrap();
        assert_eq!(a.client, "phone", "{name}");
        assert_eq!(a.kind, Kind::Open);
        assert_eq!(a.addr, SRC, "{name}: -s means the source");
        assert_eq!(a.ports, &ports[..], "{name}");
        assert_eq!(a.duration, Duration::from_secs(secs), "{name}");
        assert_eq!(a.record.timestamp, v.timestamp);
        assert_eq!(a.record.nonce, fwknop::replay_id(&v.packet));
        let c = ver.counters();
        assert_eq!((c.hmac_attempts, c.aead_attempts, c.accepted), (2, 0, 1));
        // The same packet again, from anywhere: a replay.
        let r = ver.verify(at(&v), DASH_A, &v.packet).unwrap_err();
        assert_eq!((r.reason, r.client), (Refusal::Replay, Some("phone")));
    }
}

#[test]
fn dash_a_follows_the_client_policy() {
    let v = vector("access_addr_hmac_sha1_digest_md5");
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    let r = ver.verify(at(&v), SRC, &v.packet).unwrap_err();
    assert_eq!(
        (r.reason, r.detail),
        (Refusal::OtherAddress, Detail::Addr(DASH_A))
    );
    // From the -a address itself it is simply the source.
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    assert_eq!(ver.verify(at(&v), DASH_A, &v.packet).unwrap().addr, DASH_A);
    let mut ver = verifier(vec![Client {
        allow_other_address: true,
        require_address: false,
        commands: Vec::new(),
        forwards: Vec::new(),
        ..client("phone", Some(v.keys.clone()))
    }]);
    let a = ver.verify(at(&v), SRC, &v.packet).unwrap();
    assert_eq!(a.addr, DASH_A);
    assert_eq!(a.ports, [PortSpec::tcp(22), PortSpec::udp(53)]);
}

#[test]
fn wrong_keys_and_clients_without_fwknop_keys() {
    let v = vector("access_source_sha256");
    let mut wrong = v.keys.clone();
    wrong.hmac_key = Secret::from_bytes(b"wrong").unwrap();
    let mut ver = verifier(vec![
        client("a", Some(wrong.clone())),
        client("b", Some(wrong)),
    ]);
    let r = ver.verify(at(&v), SRC, &v.packet).unwrap_err();
    assert_eq!((r.reason, r.client), (Refusal::AuthFailed, None));
    assert_eq!(ver.counters().hmac_attempts, 2, "one HMAC per candidate");

    let native = Client {
        key: Some(Key::from_bytes([1; 32])),
        ..client("native", None)
    };
    let mut ver = verifier(vec![native]);
    assert_eq!(
        outcome(&mut ver, at(&v), SRC, &v.packet),
        Err(Refusal::NoClientForSource)
    );
    assert_eq!(ver.counters().hmac_attempts, 0);

    let mut ver = verifier(vec![Client {
        sources: vec!["198.51.100.0/24".parse().unwrap()],
        ..client("far", Some(v.keys.clone()))
    }]);
    assert_eq!(
        outcome(&mut ver, at(&v), SRC, &v.packet),
        Err(Refusal::NoClientForSource)
    );
}

#[test]
fn local_nat_is_refused_by_name() {
    let v = vector("nat_local");
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    let r = ver.verify(at(&v), SRC, &v.packet).unwrap_err();
    assert_eq!(
        (r.reason, r.client, r.detail),
        (
            Refusal::Unsupported,
            Some("phone"),
            Detail::Fwknop(fwknop::Error::Nat)
        )
    );
    assert!(r.to_string().starts_with("fwknop packet: fwknop "), "{r}");
    assert!(r.reason.authenticated());
}

#[test]
fn cheap_checks_cost_no_hmac() {
    let v = vector("access_source_sha256");
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    let mut prefixed = SALTED_PREFIX.to_vec();
    prefixed.extend_from_slice(&v.packet);
    assert_eq!(
        outcome(&mut ver, at(&v), SRC, &prefixed),
        Err(Refusal::AuthFailed)
    );
    assert_eq!(ver.counters().hmac_attempts, 0);
    // Not base64 or too short: the native path (no native keys here).
    let mut junk = v.packet.clone();
    junk.push(b'=');
    assert_eq!(
        outcome(&mut ver, at(&v), SRC, &junk),
        Err(Refusal::NoClientForSource)
    );
    assert_eq!(
        outcome(&mut ver, at(&v), SRC, &v.packet[..100]),
        Err(Refusal::NoClientForSource),
        "100 bytes is a native packet's length"
    );
    let long = [b'A'; 1600];
    assert_eq!(
        outcome(&mut ver, at(&v), SRC, &long),
        Err(Refusal::BadLength)
    );
    assert_eq!(ver.counters().hmac_attempts, 0);
    assert_eq!(outcome(&mut ver, at(&v), SRC, &v.packet), Ok(()));
}

#[test]
fn budget_bounds_hmac_work() {
    let v = vector("access_source_sha256");
    let mut ver = Verifier::new(&Config {
        peers: Vec::new(),
        knock_modes: Default::default(),
        commands: Vec::new(),
        forwards: Vec::new(),
        main: Main {
            spa_verify_budget: 3,
            ..Main::default()
        },
        sequences: Vec::new(),
        clients: vec![client("a", Some(v.keys.clone())), client("b", None).clone()]
            .into_iter()
            .map(|c| Client {
                key: Some(Key::from_bytes(
                    [c.name.len() as u8 + c.name.as_bytes()[0]; 32],
                )),
                ..c
            })
            .collect(),
        hooks: Vec::new(),
    });
    let mut tampered = v.packet.clone();
    tampered[5] ^= 1;
    for _ in 0..3 {
        assert_eq!(
            outcome(&mut ver, at(&v), SRC, &tampered),
            Err(Refusal::AuthFailed)
        );
    }
    assert_eq!(
        outcome(&mut ver, at(&v), SRC, &v.packet),
        Err(Refusal::BudgetExceeded),
        "three HMACs spent this second"
    );
    assert_eq!(
        ver.counters().hmac_attempts,
        3,
        "one candidate with fwknop keys"
    );
    let later = Now {
        mono: Millis(1_001_000),
        unix: v.timestamp,
    };
    assert_eq!(
        outcome(&mut ver, later, SRC, &v.packet),
        Ok(()),
        "next second"
    );
}

#[test]
fn clock_ports_and_duration_rules() {
    let v = vector("timeout_hmac_sha384_digest_sha1");
    let old = Now {
        mono: Millis(1_000_000),
        unix: v.timestamp + 121,
    };
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    let r = ver.verify(old, SRC, &v.packet).unwrap_err();
    assert_eq!((r.reason, r.detail), (Refusal::TooOld, Detail::Skew(-121)));
    let mut ver = verifier(vec![Client {
        allow: vec![PortSpec::tcp(22)],
        ..client("phone", Some(v.keys.clone()))
    }]);
    let r = ver.verify(at(&v), SRC, &v.packet).unwrap_err();
    assert_eq!(
        (r.reason, r.detail),
        (Refusal::PortNotAllowed, Detail::Port(PortSpec::tcp(2222)))
    );
    // fwknopd caps a client timeout at MAX_FW_TIMEOUT; postern at max_duration.
    let mut ver = verifier(vec![Client {
        max_duration: Duration::from_secs(20),
        ..client("phone", Some(v.keys.clone()))
    }]);
    let a = ver.verify(at(&v), SRC, &v.packet).unwrap();
    assert_eq!(a.duration, Duration::from_secs(20), "-f 45 capped at 20");
}

#[test]
fn authentic_but_malformed_plaintexts_are_bad_requests() {
    let v = vector("access_source_sha256");
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    let ts = v.timestamp;
    for (plain, e) in [
        (format!("1234567890123456:cm9vdA:{ts}:3.0.0:1:MC4wLjAuMCx0Y3AvMjI:bogusdigestbogusdigestbogusdigestbogusdiges"), fwknop::Error::DigestMismatch),
        ("no colon at all ".repeat(8), fwknop::Error::Fields),
        (format!("{}:{}", "x".repeat(100), "\u{1}"), fwknop::Error::NotText),
    ] {
        let p = seal_for_test(&v.keys, [3; 8], plain.as_bytes());
        let r = ver.verify(at(&v), SRC, &p).unwrap_err();
        assert_eq!(
            (r.reason, r.client, r.detail),
            (Refusal::BadRequest, Some("phone"), Detail::Fwknop(e)),
            "{plain}"
        );
    }
}

#[test]
fn require_address_refuses_fwknop_zero_address_and_keeps_dash_a() {
    let strict = |keys: Keys| Client {
        require_address: true,
        ..client("phone", Some(keys))
    };
    let s = vector("access_source_sha256");
    let mut ver = verifier(vec![strict(s.keys.clone())]);
    let r = ver.verify(at(&s), SRC, &s.packet).unwrap_err();
    assert_eq!(
        (r.reason, r.client),
        (Refusal::AddressRequired, Some("phone")),
        "fwknop -s sends 0.0.0.0"
    );
    assert!(r.record.is_some(), "recorded: never accepted later");
    let a = vector("access_addr_hmac_sha1_digest_md5");
    let mut ver = verifier(vec![strict(a.keys.clone())]);
    assert_eq!(ver.verify(at(&a), DASH_A, &a.packet).unwrap().addr, DASH_A);
}

#[test]
fn fwknop_zero_address_packets_get_the_source_window() {
    let v = vector("access_source_sha256");
    let late = |secs: u64| Now {
        mono: Millis(1_000_000),
        unix: v.timestamp + secs,
    };
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    assert_eq!(
        outcome(&mut ver, late(16), SRC, &v.packet),
        Err(Refusal::TooOld),
        "0.0.0.0: 15 s, not max_skew"
    );
    let mut ver = verifier(vec![client("phone", Some(v.keys.clone()))]);
    assert_eq!(outcome(&mut ver, late(15), SRC, &v.packet), Ok(()));
    let a = vector("access_addr_hmac_sha1_digest_md5");
    let mut ver = verifier(vec![client("phone", Some(a.keys.clone()))]);
    let later = Now {
        mono: Millis(1_000_000),
        unix: a.timestamp + 100,
    };
    assert_eq!(
        outcome(&mut ver, later, DASH_A, &a.packet),
        Ok(()),
        "an explicit address keeps max_skew"
    );
}
