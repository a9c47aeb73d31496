//! Target `spa`: the native SPA verifier and request format.
//!
//! The fuzzer cannot forge a Poly1305 tag (nor, but for 2^-32, a pre-filter
//! tag), so raw bytes only reach the refusal paths. To fuzz what lies behind
//! authentication, the harness also seals fuzz-chosen plaintext under keys it
//! knows (its own AEAD call, with the nonce `random ‖ pre-filter tag` of
//! protocol 2, checked against `seal::seal`), then compares the verifier's
//! verdict with a model of the documented check order (`src/spa/verifier.rs`).
//!
//! Modes (first byte % 4): 0 raw packet — unless a configured key opens it
//! (a seed can be a real packet), never accepted, never past authentication; 1 sealed fuzz plaintext — verdict equals the model, a second
//! copy is a replay; 2 the request view and `RequestRepr` on raw bytes —
//! accessors never panic, parse → emit → parse is the identity and re-emits
//! the same bytes; 3 a sealed packet with one byte changed — never opens.

use core::net::IpAddr;
use std::sync::OnceLock;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use postern::config::{self, Config};
use postern::spa::prefilter::RANDOM_LEN;
use postern::spa::request::{Request, HEADER_LEN, MAX_NAME_LEN, MAX_PORTS};
use postern::spa::seal::{self, Cipher, MAX_PACKET_LEN, MAX_PLAINTEXT_LEN, NONCE_LEN, TAG_LEN};
use postern::spa::{Key, Kind, Refusal, RequestRepr, Target, Verifier};
use postern::time::{Millis, Now};

use super::input::Input;

/// A fixed test key: 32 copies of `b`.
pub fn key(b: u8) -> Key {
    Key::from_bytes([b; 32])
}

/// The key of client `laptop` (enabled, any source, tcp:22 udp:53, 300 s).
pub const LAPTOP: u8 = 0x11;
/// The key of client `phone` (enabled, 192.0.2.0/24 and 2001:db8::/32, tcp:22 tcp:443, 60 s).
pub const PHONE: u8 = 0x22;
/// The key of client `old` (disabled).
pub const OLD: u8 = 0x33;
/// A key no client has.
pub const STRANGER: u8 = 0x44;

/// Enabled commands and forwards the clients may list: `wake` (laptop and
/// phone), `reboot` (laptop), `unlisted` (nobody), `sleeping` (disabled,
/// listed by laptop); forwards `nas` (laptop), `cam` (phone), `spare`
/// (nobody), `off` (disabled, listed by laptop).
pub const ACTIONS_UCI: &str = "config command 'wake'\n\tlist exec '/bin/true'\n\n\
config command 'reboot'\n\tlist exec '/sbin/reboot'\n\n\
config command 'unlisted'\n\tlist exec '/bin/true'\n\n\
config command 'sleeping'\n\toption enabled 0\n\tlist exec '/bin/true'\n\n\
config forward 'nas'\n\toption proto tcp\n\toption port 2222\n\toption to 10.0.0.5\n\toption to_port 22\n\n\
config forward 'cam'\n\toption proto tcp\n\toption port 8081\n\toption to 10.0.0.6\n\toption to6 fd00:213::6\n\n\
config forward 'spare'\n\toption proto udp\n\toption port 5353\n\toption to 10.0.0.7\n\n\
config forward 'off'\n\toption enabled 0\n\toption proto tcp\n\toption port 2223\n\toption to 10.0.0.5\n";

/// Names an SPA request may carry (configured or not).
pub const NAMES: [&str; 9] = [
    "wake", "reboot", "unlisted", "sleeping", "nas", "cam", "spare", "off", "nope",
];

/// The commands (enabled or not) client key byte `k` lists.
pub fn listed_commands(k: u8) -> &'static [&'static str] {
    match k {
        LAPTOP => &["wake", "reboot", "sleeping"],
        PHONE => &["wake"],
        _ => &[],
    }
}

/// The forwards (enabled or not) client key byte `k` lists.
pub fn listed_forwards(k: u8) -> &'static [&'static str] {
    match k {
        LAPTOP => &["nas", "off"],
        PHONE => &["cam"],
        _ => &[],
    }
}

/// The SPA clients of the `spa` target (and of the engine target's open
/// configuration), with the commands and forwards of [`ACTIONS_UCI`].
pub fn clients_uci() -> String {
    let k = |b| key(b).to_base64();
    format!(
        "{ACTIONS_UCI}\n\
         config client 'laptop'\n\toption key '{}'\n\tlist allow tcp:22\n\tlist allow udp:53\n\toption max_duration 300\n\
         \tlist command wake\n\tlist command reboot\n\tlist command sleeping\n\tlist forward nas\n\tlist forward off\n\n\
         config client 'phone'\n\toption key '{}'\n\tlist allow tcp:22\n\tlist allow tcp:443\n\
         \tlist source 192.0.2.0/24\n\tlist source 2001:db8::/32\n\toption max_duration 60\n\
         \tlist command wake\n\tlist forward cam\n\n\
         config client 'old'\n\toption enabled 0\n\toption key '{}'\n\tlist allow tcp:22\n\tlist command wake\n\tlist forward nas\n",
        k(LAPTOP),
        k(PHONE),
        k(OLD)
    )
}

/// The index in `cfg`'s enabled commands (or forwards) of `name`, if client
/// key byte `k` lists it and it is enabled.
pub fn action_index(cfg: &Config, k: u8, kind: Kind, name: &str) -> Option<usize> {
    match kind {
        Kind::Command if listed_commands(k).contains(&name) => {
            cfg.active_commands().position(|c| c.name == name)
        }
        Kind::Forward if listed_forwards(k).contains(&name) => {
            cfg.active_forwards().position(|f| f.name == name)
        }
        _ => None,
    }
}

fn spa_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = format!("config postern\n\toption max_skew 120\n\n{}", clients_uci());
        config::parse_str("spa.conf", &text).expect("the fuzz configuration is valid")
    })
}

/// Source addresses the harness sends from: inside and outside `phone`'s networks.
pub const SOURCES: [&str; 4] = ["192.0.2.9", "203.0.113.5", "2001:db8::9", "2001:db9::1"];

/// One of [`SOURCES`].
pub fn source(b: u8) -> IpAddr {
    SOURCES[usize::from(b) % SOURCES.len()].parse().unwrap()
}

/// The protocol 2 nonce of key byte `k` for these random bytes (`random ‖ tag`).
pub fn nonce(k: u8, random: &[u8; RANDOM_LEN]) -> [u8; NONCE_LEN] {
    seal::nonce_for(&key(k), random)
}

/// Seals arbitrary plaintext (not necessarily a request) under key byte `k`
/// with this nonce as given (use [`nonce`] for one that passes `k`'s pre-filter).
pub fn seal_raw(k: u8, nonce: &[u8; NONCE_LEN], plain: &[u8]) -> Vec<u8> {
    let aead = XChaCha20Poly1305::new(key(k).as_bytes().into());
    let mut body = plain.to_vec();
    let tag = aead
        .encrypt_in_place_detached(XNonce::from_slice(nonce), seal::AAD, &mut body)
        .expect("plaintext within AEAD limits");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    out
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 4 {
        0 => raw_packet(&mut input),
        1 => sealed_plaintext(&mut input),
        2 => request_view(input.rest()),
        _ => tampered(&mut input),
    }
}

const T0: u64 = 1_800_000_000;

fn now(unix: u64) -> Now {
    Now {
        mono: Millis(5_000_000),
        unix,
    }
}

/// Bytes that no configured key opens are never accepted nor authenticated.
fn raw_packet(input: &mut Input<'_>) {
    let src = source(input.u8());
    let packet = input.rest();
    let mut scratch = [0u8; MAX_PLAINTEXT_LEN];
    if [LAPTOP, PHONE]
        .iter()
        .any(|&k| seal::open(&Cipher::new(&key(k)), packet, &mut scratch).is_ok())
    {
        return; // a real packet (a seed): mode 1 judges those
    }
    let mut v = Verifier::new(spa_config());
    let r = v
        .verify(now(T0), src, packet)
        .map(|_| ())
        .map_err(|r| (r.reason, r.client));
    match r {
        Err((Refusal::BadLength | Refusal::NoClientForSource | Refusal::AuthFailed, None)) => {}
        other => panic!("raw bytes got {other:?}"),
    }
    assert!(
        v.counters().aead_attempts <= 2,
        "more AEAD work than enabled clients"
    );
}

/// What the verifier must say about a packet sealed under key `k` holding `plain`, from `src` at `unix`.
fn model(k: u8, plain: &[u8], src: IpAddr, unix: u64) -> Result<(), Refusal> {
    let len = NONCE_LEN + plain.len() + TAG_LEN;
    // docs/spa-protocol.md: packets are 73 to 296 bytes (the shortest request
    // is a command with a one-character name).
    if !(73..=296).contains(&len) {
        return Err(Refusal::BadLength);
    }
    let phone_ok = matches!(src, IpAddr::V4(a) if a.octets()[..3] == [192, 0, 2])
        || matches!(src, IpAddr::V6(a) if a.segments()[..2] == [0x2001, 0xdb8]);
    let (allow, max): (&[(u8, u16)], u64) = match k {
        LAPTOP => (&[(6, 22), (17, 53)], 300),
        PHONE if phone_ok => (&[(6, 22), (6, 443)], 60),
        _ => return Err(Refusal::AuthFailed),
    };
    let repr = match Request::new_checked(plain).and_then(|r| RequestRepr::parse(&r)) {
        Ok(r) => r,
        Err(_) => return Err(Refusal::BadRequest),
    };
    // The timestamp window first; from there on the nonce is recorded.
    // 120 s (max_skew); 15 s (source_skew) for a packet that asks for its source.
    let window = if repr.target == Target::Source {
        15
    } else {
        120
    };
    let skew = i128::from(repr.timestamp) - i128::from(unix);
    if skew < -window {
        return Err(Refusal::TooOld);
    }
    if skew > window {
        return Err(Refusal::TooNew);
    }
    if let Target::Addr(a) = repr.target {
        let v4_broadcast = matches!(a, IpAddr::V4(v) if v.is_broadcast());
        if a != src {
            if a.is_unspecified() || a.is_multicast() || a.is_loopback() || v4_broadcast {
                return Err(Refusal::BadAddress);
            }
            // No harness client sets allow_other_address.
            return Err(Refusal::OtherAddress);
        }
    }
    match repr.kind {
        Kind::Open | Kind::Close => {
            // No port: the client's default_access, which no harness client has.
            if repr.ports.is_empty()
                || repr
                    .ports
                    .iter()
                    .any(|p| !allow.contains(&(p.proto.number(), p.port)))
            {
                return Err(Refusal::PortNotAllowed);
            }
        }
        Kind::Command => {
            if action_index(spa_config(), k, Kind::Command, &repr.name).is_none() {
                return Err(Refusal::CommandNotAllowed);
            }
        }
        Kind::Forward => {
            if action_index(spa_config(), k, Kind::Forward, &repr.name).is_none() {
                return Err(Refusal::ForwardNotAllowed);
            }
        }
    }
    let timed = matches!(repr.kind, Kind::Open | Kind::Forward);
    if timed && u64::from(repr.duration) > max {
        return Err(Refusal::DurationTooLong);
    }
    Ok(())
}

/// Fuzz plaintext sealed under a known key: the verdict follows the model.
fn sealed_plaintext(input: &mut Input<'_>) {
    let k = [LAPTOP, PHONE, OLD, STRANGER][usize::from(input.u8()) % 4];
    let src = source(input.u8());
    let delta = i64::from(input.u8() as i8) * if input.u8() & 1 == 0 { 1 } else { 3 };
    // NONCE_LEN input bytes (as in protocol 1's corpus): the first
    // RANDOM_LEN are the random part, the tag is the key's.
    let mut random = [0u8; RANDOM_LEN];
    let given = input.bytes(NONCE_LEN);
    let n = given.len().min(RANDOM_LEN);
    random[..n].copy_from_slice(&given[..n]);
    let nonce = nonce(k, &random);
    let plain = input.rest();
    let packet = seal_raw(k, &nonce, plain);
    let ts = plain
        .get(2..10)
        .map_or(T0, |b| u64::from_be_bytes(b.try_into().unwrap()));
    let unix = ts.saturating_add_signed(delta);

    // Our AEAD and postern's agree on well-formed requests.
    if let Ok(repr) = Request::new_checked(plain).and_then(|r| RequestRepr::parse(&r)) {
        if plain.len() <= MAX_PLAINTEXT_LEN {
            let mut out = [0u8; MAX_PACKET_LEN];
            let n = seal::seal(
                &key(k),
                &random,
                &repr,
                &plain[repr.buffer_len()..],
                &mut out,
            )
            .expect("fits");
            assert_eq!(
                &out[..n],
                &packet[..],
                "seal::seal differs from the reference AEAD"
            );
        }
    }

    let expected = model(k, plain, src, unix);
    let mut v = Verifier::new(spa_config());
    let first = match v.verify(now(unix), src, &packet) {
        Ok(a) => {
            let repr = RequestRepr::parse(&Request::new_checked(plain).unwrap()).unwrap();
            assert_eq!(a.client, if k == LAPTOP { "laptop" } else { "phone" });
            assert_eq!(a.kind, repr.kind);
            assert_eq!(a.ports, &repr.ports[..]);
            assert_eq!(a.duration.as_secs(), u64::from(repr.duration));
            if repr.kind.has_name() {
                assert_eq!(
                    Some(a.item),
                    action_index(spa_config(), k, repr.kind, &repr.name),
                    "the index names the requested command or forward"
                );
            } else {
                assert_eq!(a.item, 0);
            }
            assert_eq!(
                a.addr,
                match repr.target {
                    Target::Source => src,
                    Target::Addr(x) => x,
                }
            );
            assert_eq!(a.record.nonce, nonce);
            assert_eq!(a.record.timestamp, repr.timestamp);
            Ok(())
        }
        Err(r) => {
            assert_eq!(r.client.is_some(), r.reason.authenticated(), "{r:?}");
            let _ = r.to_string();
            Err(r.reason)
        }
    };
    assert_eq!(first, expected, "verdict differs from the model");
    let recorded = matches!(
        first,
        Ok(())
            | Err(Refusal::BadAddress
                | Refusal::OtherAddress
                | Refusal::AddressRequired
                | Refusal::TooOld
                | Refusal::TooNew
                | Refusal::BeforeReplayGuard
                | Refusal::PortNotAllowed
                | Refusal::DurationTooLong
                | Refusal::CommandNotAllowed
                | Refusal::ForwardNotAllowed)
    );
    let second = v
        .verify(now(unix), src, &packet)
        .map(|_| ())
        .map_err(|r| r.reason);
    assert_eq!(
        second,
        if recorded {
            Err(Refusal::Replay)
        } else {
            first
        },
        "second copy"
    );
}

/// The checked view and the representation on raw bytes.
fn request_view(bytes: &[u8]) {
    let Ok(r) = Request::new_checked(bytes) else {
        assert!(
            bytes.len() < HEADER_LEN + 3 * usize::from(bytes.get(31).copied().unwrap_or(0))
                || bytes.len() < HEADER_LEN
        );
        return;
    };
    let _ = (
        r.version(),
        r.kind(),
        r.timestamp(),
        r.duration(),
        r.addr_kind(),
        r.addr_bytes(),
    );
    // The count byte counts ports, or name bytes for the named kinds (whose
    // view has no port pairs to read).
    if Kind::from_number(r.kind()).is_some_and(Kind::has_name) {
        assert_eq!(r.name().len(), usize::from(r.port_count()));
    } else {
        for i in 0..usize::from(r.port_count()) {
            let _ = r.port(i);
        }
    }
    let padding = r.padding().len();
    let Ok(repr) = RequestRepr::parse(&r) else {
        return;
    };
    if repr.kind.has_name() {
        assert!(repr.ports.is_empty());
        assert!((1..=MAX_NAME_LEN).contains(&repr.name.len()));
        assert_eq!(r.name(), repr.name.as_bytes());
    } else {
        // None: the router's choice (the client's default_access).
        assert!(repr.ports.len() <= MAX_PORTS);
        assert!(repr.name.is_empty());
    }
    assert_eq!(repr.buffer_len() + padding, bytes.len());
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Request::new_unchecked(&mut buf[..]));
    assert_eq!(
        &buf[..],
        &bytes[..repr.buffer_len()],
        "emit does not reproduce the bytes"
    );
    let again = RequestRepr::parse(&Request::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(again, repr);
}

/// A valid packet with one byte changed never opens, under any key.
fn tampered(input: &mut Input<'_>) {
    let at = usize::from(input.u16());
    let flip = input.u8() | 1;
    let plain = input.rest();
    let mut packet = seal_raw(LAPTOP, &nonce(LAPTOP, &[7; RANDOM_LEN]), plain);
    let at = at % packet.len();
    packet[at] ^= flip;
    let mut scratch = [0u8; MAX_PLAINTEXT_LEN];
    for k in [LAPTOP, PHONE, OLD, STRANGER] {
        assert!(seal::open(&Cipher::new(&key(k)), &packet, &mut scratch).is_err());
    }
    // A changed nonce byte fails the pre-filter too (the tag covers the nonce).
    assert_eq!(
        Cipher::new(&key(LAPTOP)).passes(&packet),
        at >= NONCE_LEN,
        "byte {at}"
    );
    let mut v = Verifier::new(spa_config());
    let r = v
        .verify(now(T0), source(0), &packet)
        .map(|_| ())
        .map_err(|r| r.reason);
    assert!(
        matches!(r, Err(Refusal::BadLength | Refusal::AuthFailed)),
        "{r:?}"
    );
}
