//! Packets made by the real fwknop client (`testdata/packets.txt`, how they
//! were made: `testdata/README.md`): authenticated, decrypted and parsed,
//! and tampered variants refused.

use core::net::Ipv4Addr;

use super::*;
use crate::port::PortSpec;

/// One vector of `testdata/packets.txt`.
pub(crate) struct Vector {
    pub name: String,
    pub keys: Keys,
    pub timestamp: u64,
    pub packet: Vec<u8>,
}

fn arg<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = command.split(' ');
    words.find(|w| *w == flag)?;
    words.next()
}

/// The vectors with the keys their command lines name.
pub(crate) fn vectors() -> Vec<Vector> {
    let text = include_str!("testdata/packets.txt");
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} missing in {block}"))
                .trim()
                .to_string()
        };
        let command = field("command:");
        let key = match arg(&command, "--key-base64-rijndael") {
            Some(k) => Secret::from_base64(k).unwrap(),
            // The passphrase vector: `--key-rijndael 'fwknop test key'`.
            None => Secret::from_bytes(b"fwknop test key").unwrap(),
        };
        let hmac_type = match arg(&command, "--hmac-digest-type") {
            None => HmacType::Sha256,
            Some(t) => HmacType::NAMES.iter().find(|(n, _)| *n == t).unwrap().1,
        };
        out.push(Vector {
            name: field("vector:"),
            keys: Keys {
                key,
                hmac_key: Secret::from_base64(arg(&command, "--key-base64-hmac").unwrap()).unwrap(),
                hmac_type,
            },
            timestamp: field("timestamp:").parse().unwrap(),
            packet: field("packet:").into_bytes(),
        });
    }
    assert_eq!(out.len(), 13, "every vector read");
    out
}

/// What an access packet asks for: address (`None`: the source), ports, client timeout.
type Opened = (Option<Ipv4Addr>, Vec<PortSpec>, Option<u32>);

fn open(v: &Vector, packet: &[u8]) -> Result<Message, Error> {
    precheck(packet).map_err(|_| Error::Layout)?;
    if !authenticate(&v.keys, packet) {
        return Err(Error::Base64);
    }
    let mut scratch = Scratch::new();
    message::parse(decrypt(&v.keys, packet, &mut scratch)?)
}

#[test]
fn real_client_packets_open() {
    let src = None;
    let a = Some(Ipv4Addr::new(10, 213, 0, 2));
    for v in vectors() {
        assert!(looks_like_fwknop(&v.packet), "{}", v.name);
        let got = open(&v, &v.packet);
        let expect: Result<Opened, Error> = match v.name.as_str() {
            "access_source_sha256" | "access_digest_sha384_passphrase" => {
                Ok((src, vec![PortSpec::tcp(22)], None))
            }
            "access_addr_hmac_sha1_digest_md5" => {
                Ok((a, vec![PortSpec::tcp(22), PortSpec::udp(53)], None))
            }
            "timeout_hmac_sha384_digest_sha1" => Ok((src, vec![PortSpec::tcp(2222)], Some(45))),
            "access_hmac_sha512_digest_sha512" => Ok((src, vec![PortSpec::udp(53)], None)),
            "command" => {
                let m = got.clone().expect(&v.name);
                assert_eq!(m.kind, message::MessageType::Command);
                assert_eq!(&m.command[..], b"touch /tmp/x");
                Ok((src, vec![], None))
            }
            "command_text_a" => {
                let m = got.clone().expect(&v.name);
                assert_eq!(&m.command[..], b"wake nas");
                Ok((a, vec![], None))
            }
            "nat_timeout_port" => {
                // -A tcp/2222 -N 10.213.0.5:22 --nat-port 2200 -f 40: the
                // external port is --nat-port's, the LAN port -N's.
                let m = got.clone().expect(&v.name);
                assert_eq!(m.kind, message::MessageType::ClientTimeoutNatAccess);
                let nat = m.nat.expect("NAT target");
                assert_eq!((nat.addr, nat.port), (Ipv4Addr::new(10, 213, 0, 5), 22));
                Ok((a, vec![PortSpec::tcp(2200)], Some(40)))
            }
            "nat_local" => Err(Error::Nat),
            "nat_access" => {
                let m = got.clone().expect(&v.name);
                assert_eq!(m.kind, message::MessageType::NatAccess);
                let nat = m.nat.expect("NAT target");
                assert_eq!((nat.addr, nat.port), (Ipv4Addr::new(10, 213, 0, 5), 22));
                Ok((src, vec![PortSpec::tcp(22)], None))
            }
            // Other AES modes: the HMAC is fine, CBC decryption gives junk.
            "mode_cfb" | "mode_ctr" => {
                let e = got.clone().expect_err(&v.name);
                assert!(
                    matches!(
                        e,
                        Error::Padding | Error::NotText | Error::Fields | Error::DigestType
                    ),
                    "{}: {e:?}",
                    v.name
                );
                Err(e)
            }
            "digest_sha3_256" => Err(Error::DigestMismatch),
            other => panic!("unknown vector {other}"),
        };
        let got = got.map(|m| {
            assert_eq!(m.timestamp, v.timestamp, "{}", v.name);
            (m.access.addr, m.access.ports.to_vec(), m.client_timeout)
        });
        assert_eq!(got, expect, "{}", v.name);
    }
}

#[test]
fn tampering_and_wrong_keys_fail_the_hmac() {
    for v in vectors() {
        // Every position of the packet, ciphertext and HMAC text alike.
        for i in 0..v.packet.len() {
            let mut p = v.packet.clone();
            p[i] = if p[i] == b'A' { b'B' } else { b'A' };
            assert!(!authenticate(&v.keys, &p), "{} byte {i}", v.name);
        }
        let mut wrong = v.keys.clone();
        wrong.hmac_key = Secret::from_bytes(b"another hmac key").unwrap();
        assert!(!authenticate(&wrong, &v.packet), "{}", v.name);
        for (_, t) in HmacType::NAMES {
            let other = Keys {
                hmac_type: t,
                ..v.keys.clone()
            };
            assert_eq!(
                authenticate(&other, &v.packet),
                t == v.keys.hmac_type,
                "{} with {t:?}",
                v.name
            );
        }
        // The right HMAC key but the wrong encryption key: authenticates, does not decrypt.
        let mut bad_enc = v.keys.clone();
        bad_enc.key = Secret::from_bytes(b"not the key").unwrap();
        assert!(authenticate(&bad_enc, &v.packet));
        let mut scratch = Scratch::new();
        let r = decrypt(&bad_enc, &v.packet, &mut scratch).map(message::parse);
        assert!(!matches!(r, Ok(Ok(_))), "{}", v.name);
    }
}

#[test]
fn prefix_and_length_prechecks() {
    let v = &vectors()[0];
    let mut prefixed = SALTED_PREFIX.to_vec();
    prefixed.extend_from_slice(&v.packet);
    assert_eq!(precheck(&prefixed), Err(Precheck::Prefix));
    assert!(
        !authenticate(&v.keys, &prefixed),
        "the prefix restored twice"
    );
    assert_eq!(
        precheck(&v.packet[..MIN_PACKET_LEN - 1]),
        Err(Precheck::Length)
    );
    assert_eq!(precheck(&[b'A'; MAX_PACKET_LEN + 1]), Err(Precheck::Length));
    let mut padded = v.packet.clone();
    padded.push(b'=');
    assert_eq!(precheck(&padded), Err(Precheck::Charset));
    assert!(!looks_like_fwknop(&padded));
}

#[test]
fn sealed_by_the_test_encoder_opens_like_the_client() {
    // The test encoder (used for malformed plaintexts elsewhere) agrees with
    // the real client: re-seal a vector's plaintext and open it again.
    let v = &vectors()[1];
    let mut scratch = Scratch::new();
    let plain = decrypt(&v.keys, &v.packet, &mut scratch).unwrap().to_vec();
    let again = seal_for_test(&v.keys, [7; SALT_LEN], &plain);
    assert_ne!(again, v.packet, "another salt");
    assert_eq!(open(v, &again), open(v, &v.packet));
    assert_eq!(replay_id(&again), replay_id(&again));
    assert_ne!(replay_id(&again), replay_id(&v.packet));
}
