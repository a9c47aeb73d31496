//! Target `fwknop`: the fwknop wire format (`spa::fwknop`) and the
//! verifier's fwknop path.
//!
//! The fuzzer cannot forge an HMAC, so the harness seals packets itself, as
//! the real client does, with its own crypto (`aes`, `md-5`, `sha1`, `sha2`
//! used directly, not postern's code; [`check_sealer`] shows it reproduces the
//! real client's packets byte for byte), under the keys of the configured
//! clients. It judges every verdict with its own reading of the plaintext
//! ([`read`], written from `docs/fwknop.md` and the module docs of
//! `spa::fwknop::message`) and a model of the documented check order
//! (`src/spa/verifier/fwknop_path.rs`).
//!
//! Input: byte 0 picks the mode (% 4), byte 1 the configuration (% 5: the
//! `vec` client's HMAC type and key, so every real-client vector in
//! `src/spa/fwknop/testdata/packets.txt` authenticates under one of them).
//! * 0 raw payload: `precheck`, `authenticate`, `decrypt`, `message::parse`
//!   and the verifier never panic; unless a configured key authenticates it (a
//!   seed can be a real packet) it is never accepted nor reported as
//!   authenticated, with at most one HMAC per candidate client; the payload
//!   read as a plaintext: `message::parse` agrees with [`read`].
//! * 1 fuzz plaintext fields, the harness appends a correct digest (or not),
//!   seals them under a chosen client's keys (or a stranger's, or the right
//!   HMAC key with the wrong type or encryption key), sends them from a
//!   chosen source: `message::parse` agrees with [`read`]; the verdict equals
//!   the model (client, kind, address, ports, command index, forward index,
//!   duration, replay record, exact HMAC count); a second copy is a replay.
//! * 2 the same with a plaintext built from fuzz choices (message types 0–7,
//!   addresses, ports, command texts, NAT hosts, client timeouts, digests),
//!   which reaches the command and NAT paths far more often.
//! * 3 a sealed packet with one byte changed: never authenticates.

use core::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use sha2::Digest;

use postern::config::{self, Config};
use postern::port::{L4Proto, PortSpec};
use postern::spa::fwknop::message::{self, MessageType};
use postern::spa::fwknop::{self, HmacType, Keys, Scratch, Secret};
use postern::spa::{seal, Kind, Refusal, Verifier};
use postern::time::{Millis, Now};

use super::input::Input;
use super::spa::source;

/// The real client's vectors: `KEY_BASE64` and `HMAC_KEY_BASE64` of
/// `src/spa/fwknop/testdata/packets.txt`.
const VEC_KEY: &str = "DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=";
const VEC_HMAC: &str =
    "dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==";
/// The passphrase vector's Rijndael key (`--key-rijndael`).
const PASSPHRASE: &[u8] = b"fwknop test key";
/// The vectors in their text form.
const VECTORS: &str = include_str!("../../../src/spa/fwknop/testdata/packets.txt");

/// The `vec` client's HMAC type and Rijndael key in each configuration.
const VARIANTS: [(HmacType, bool); 5] = [
    (HmacType::Sha256, false),
    (HmacType::Sha1, false),
    (HmacType::Sha384, false),
    (HmacType::Sha512, false),
    (HmacType::Sha256, true),
];

/// Keys as raw bytes, for the harness's own sealing.
#[derive(Clone)]
pub struct SealKeys {
    /// The Rijndael key (the `EVP_BytesToKey` password).
    pub key: Vec<u8>,
    /// The HMAC key.
    pub hmac_key: Vec<u8>,
    /// The HMAC's hash.
    pub hmac: HmacType,
}

impl SealKeys {
    fn postern(&self) -> Keys {
        Keys {
            key: Secret::from_bytes(&self.key).unwrap(),
            hmac_key: Secret::from_bytes(&self.hmac_key).unwrap(),
            hmac_type: self.hmac,
        }
    }
}

fn vec_keys(variant: usize) -> SealKeys {
    let (hmac, pass) = VARIANTS[variant % VARIANTS.len()];
    SealKeys {
        key: if pass {
            PASSPHRASE.to_vec()
        } else {
            b64_decode(VEC_KEY.trim_end_matches('=').as_bytes()).unwrap()
        },
        hmac_key: b64_decode(VEC_HMAC.trim_end_matches('=').as_bytes()).unwrap(),
        hmac,
    }
}

/// Client `mine`'s keys (only from 192.0.2.0/24).
fn mine_keys() -> SealKeys {
    SealKeys {
        key: vec![0x5a; 32],
        hmac_key: vec![0xa5; 64],
        hmac: HmacType::Sha512,
    }
}

/// Keys of the disabled client `off`: never authenticate.
fn stranger_keys() -> SealKeys {
    SealKeys {
        key: vec![0x77; 32],
        hmac_key: vec![0x88; 48],
        hmac: HmacType::Sha256,
    }
}

/// What the harness knows about a configured fwknop client.
struct ClientModel {
    name: &'static str,
    allow: &'static [PortSpec],
    max: u64,
    timeout: u64,
    other_address: bool,
    commands: &'static [&'static str],
    forwards: &'static [&'static str],
}

const VEC: ClientModel = ClientModel {
    name: "vec",
    allow: &[PortSpec::tcp(22), PortSpec::udp(53), PortSpec::tcp(2222)],
    max: 300,
    timeout: 30,
    other_address: true,
    commands: &["wake", "touch", "nomatch", "sleeping"],
    forwards: &["f22", "f2200", "f6", "foff"],
};

const MINE: ClientModel = ClientModel {
    name: "mine",
    allow: &[PortSpec::tcp(22)],
    max: 60,
    timeout: 30,
    other_address: false,
    commands: &["other"],
    forwards: &["fudp"],
};

fn padded(bytes: &[u8]) -> String {
    postern::base64::encode(bytes)
}

/// The configuration text of variant `v`.
pub fn config_text(v: usize) -> String {
    let k = vec_keys(v);
    let mine = mine_keys();
    let off = stranger_keys();
    format!(
        "config postern\n\toption max_skew 120\n\n\
         config command 'wake'\n\tlist exec '/bin/true'\n\toption fwknop_match 'wake nas'\n\n\
         config command 'touch'\n\tlist exec '/usr/bin/touch'\n\tlist exec '/tmp/x'\n\toption fwknop_match 'touch /tmp/x'\n\n\
         config command 'other'\n\tlist exec '/bin/true'\n\toption fwknop_match 'reboot'\n\n\
         config command 'nomatch'\n\tlist exec '/bin/true'\n\n\
         config command 'sleeping'\n\toption enabled 0\n\tlist exec '/bin/true'\n\toption fwknop_match 'sleep'\n\n\
         config forward 'f22'\n\toption proto tcp\n\toption port 22\n\toption to 10.213.0.5\n\n\
         config forward 'f2200'\n\toption proto tcp\n\toption port 2200\n\toption to 10.213.0.5\n\toption to_port 22\n\n\
         config forward 'f6'\n\toption proto tcp\n\toption port 2300\n\toption to6 fd00:213::5\n\n\
         config forward 'fudp'\n\toption proto udp\n\toption port 5000\n\toption to 10.1.0.5\n\toption to_port 53\n\n\
         config forward 'foff'\n\toption enabled 0\n\toption proto tcp\n\toption port 2400\n\toption to 10.213.0.6\n\n\
         config client 'vec'\n\toption fwknop_key '{}'\n\toption fwknop_hmac_key '{}'\n\toption fwknop_hmac_type {}\n\
         \tlist allow tcp:22\n\tlist allow udp:53\n\tlist allow tcp:2222\n\toption max_duration 300\n\toption fwknop_timeout 30\n\
         \toption allow_other_address 1\n\tlist command wake\n\tlist command touch\n\tlist command nomatch\n\tlist command sleeping\n\
         \tlist forward f22\n\tlist forward f2200\n\tlist forward f6\n\tlist forward foff\n\n\
         config client 'mine'\n\toption fwknop_key '{}'\n\toption fwknop_hmac_key '{}'\n\toption fwknop_hmac_type sha512\n\
         \tlist allow tcp:22\n\tlist source 192.0.2.0/24\n\toption max_duration 60\n\tlist command other\n\tlist forward fudp\n\n\
         config client 'native'\n\toption key '{}'\n\tlist allow tcp:22\n\n\
         config client 'off'\n\toption enabled 0\n\toption fwknop_key '{}'\n\toption fwknop_hmac_key '{}'\n\tlist allow tcp:22\n",
        padded(&k.key),
        padded(&k.hmac_key),
        k.hmac.name(),
        padded(&mine.key),
        padded(&mine.hmac_key),
        padded(&[0x99; 32]),
        padded(&off.key),
        padded(&off.hmac_key),
    )
}

fn configs() -> &'static [Config] {
    static C: OnceLock<Vec<Config>> = OnceLock::new();
    C.get_or_init(|| {
        (0..VARIANTS.len())
            .map(|v| config::parse_str("fwknop.conf", &config_text(v)).expect("valid"))
            .collect()
    })
}

const T0: u64 = 1_795_475_868;

fn now(unix: u64) -> Now {
    Now {
        mono: Millis(7_000_000),
        unix,
    }
}

// ---- the harness's own crypto: what the fwknop client does -----------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Unpadded base64.
pub fn b64(bytes: &[u8]) -> String {
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=c.len() {
            s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

/// Strict unpadded base64: alphabet only, no length 4k+1, no stray bits.
pub fn b64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    for c in text.chunks(4) {
        let mut n = 0u32;
        for &ch in c {
            n = n << 6 | B64.iter().position(|&a| a == ch)? as u32;
        }
        let n = n << (6 * (4 - c.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = c.len() - 1;
        // The bits past the last whole byte must be zero.
        if bytes[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Some(out)
}

fn hmac_with<D: Digest>(block: usize, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > block {
        D::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let pad = |x: u8| k.iter().map(|b| b ^ x).collect::<Vec<u8>>();
    let inner = D::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    D::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn hmac(t: HmacType, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match t {
        HmacType::Sha1 => hmac_with::<sha1::Sha1>(64, key, msg),
        HmacType::Sha256 => hmac_with::<sha2::Sha256>(64, key, msg),
        HmacType::Sha384 => hmac_with::<sha2::Sha384>(128, key, msg),
        HmacType::Sha512 => hmac_with::<sha2::Sha512>(128, key, msg),
    }
}

/// Seals `plain` as the fwknop client does: `Salted__ ‖ salt ‖
/// AES-256-CBC(EVP_BytesToKey(MD5))`, base64 without `U2FsdGVkX1`, then the
/// base64 HMAC of the text with it.
pub fn seal(k: &SealKeys, salt: [u8; 8], plain: &[u8]) -> Vec<u8> {
    let mut material = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    while material.len() < 48 {
        prev = md5::Md5::new()
            .chain_update(&prev)
            .chain_update(&k.key)
            .chain_update(salt)
            .finalize()
            .to_vec();
        material.extend_from_slice(&prev);
    }
    let aes = aes::Aes256::new(GenericArray::from_slice(&material[..32]));
    let pad = 16 - plain.len() % 16;
    let mut data = plain.to_vec();
    data.resize(plain.len() + pad, pad as u8);
    let mut chain = material[32..48].to_vec();
    for block in data.chunks_mut(16) {
        for (b, c) in block.iter_mut().zip(&chain) {
            *b ^= c;
        }
        aes.encrypt_block(GenericArray::from_mut_slice(block));
        chain.copy_from_slice(block);
    }
    let mut raw = b"Salted__".to_vec();
    raw.extend_from_slice(&salt);
    raw.extend_from_slice(&data);
    let text = b64(&raw);
    let mac = b64(&hmac(k.hmac, &k.hmac_key, text.as_bytes()));
    format!("{}{mac}", &text[10..]).into_bytes()
}

/// `fields:b64(digest(fields))` with the digest of `len` base64 characters.
fn with_digest(fields: &[u8], len: usize) -> Vec<u8> {
    let d = match len {
        22 => md5::Md5::digest(fields).to_vec(),
        27 => sha1::Sha1::digest(fields).to_vec(),
        43 => sha2::Sha256::digest(fields).to_vec(),
        64 => sha2::Sha384::digest(fields).to_vec(),
        _ => sha2::Sha512::digest(fields).to_vec(),
    };
    let mut v = fields.to_vec();
    v.push(b':');
    v.extend_from_slice(b64(&d).as_bytes());
    v
}

/// `fields` with a SHA-256 digest appended (for seeds).
pub fn with_digest_pub(fields: &[u8]) -> Vec<u8> {
    with_digest(fields, 43)
}

const DIGEST_LENS: [usize; 5] = [22, 27, 43, 64, 86];

// ---- the harness's reading of a plaintext -------------------------------

/// Why [`read`] refuses a plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Not a valid message.
    Bad,
    /// Well-formed, of a kind postern does not serve (local NAT, server_auth).
    Unsupported,
}

/// A message as the harness reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Unix seconds.
    pub ts: u64,
    /// Message type number.
    pub ty: u8,
    /// `None` for 0.0.0.0.
    pub addr: Option<Ipv4Addr>,
    /// The ports (empty for a command).
    pub ports: Vec<PortSpec>,
    /// A command's text.
    pub text: Vec<u8>,
    /// A NAT message's LAN host and port.
    pub nat: Option<(Ipv4Addr, u16)>,
    /// The client timeout, if given and not 0.
    pub timeout: Option<u32>,
}

fn number(s: &str, max_len: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn port(s: &str) -> Option<u16> {
    number(s, 5)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0)
}

/// Reads a decrypted plaintext the way the docs describe it.
pub fn read(p: &[u8]) -> Result<Msg, Why> {
    use Why::Bad;
    if !p.iter().all(|c| (0x20..0x7f).contains(c)) {
        return Err(Bad);
    }
    let s = core::str::from_utf8(p).map_err(|_| Bad)?;
    let (body, digest) = s.rsplit_once(':').ok_or(Bad)?;
    if !DIGEST_LENS.contains(&digest.len()) || with_digest(body.as_bytes(), digest.len()) != p {
        return Err(Bad);
    }
    let f: Vec<&str> = body.split(':').collect();
    if !(6..=10).contains(&f.len()) {
        return Err(Bad);
    }
    if f[0].len() != 16 || number(f[0], 16).is_none() {
        return Err(Bad);
    }
    if f[1].is_empty() || f[1].len() > 88 || b64_decode(f[1].as_bytes()).is_none() {
        return Err(Bad);
    }
    let ts = number(f[2], 12).ok_or(Bad)?;
    if f[3].is_empty() || f[3].len() > 8 {
        return Err(Bad);
    }
    let ty = number(f[4], 2).filter(|&t| t <= 6).ok_or(Bad)? as u8;
    let extra = &f[6..];
    let (nat, timeout) = match (ty, extra.len()) {
        (0 | 1, 0) => (None, None),
        (3, 1) => (None, Some(extra[0])),
        (2, 1) => (Some(extra[0]), None),
        (4, 2) => (Some(extra[0]), Some(extra[1])),
        (5 | 6, _) | (0 | 1, 1) | (2 | 3, 2) | (4, 3) => return Err(Why::Unsupported),
        _ => return Err(Bad),
    };
    let timeout = match timeout {
        None => None,
        Some(t) => {
            let t = number(t, 5).filter(|&t| t <= 65536).ok_or(Bad)?;
            (t > 0).then_some(t as u32)
        }
    };
    if f[5].is_empty() || f[5].len() > 256 {
        return Err(Bad);
    }
    let m = b64_decode(f[5].as_bytes()).ok_or(Bad)?;
    let (addr, ports, text) = if ty == 0 {
        let comma = m.iter().position(|&c| c == b',').ok_or(Bad)?;
        let a: Ipv4Addr = core::str::from_utf8(&m[..comma])
            .map_err(|_| Bad)?
            .parse()
            .map_err(|_| Bad)?;
        let text = m[comma + 1..].to_vec();
        if text.is_empty() || !text.iter().all(|c| (0x20..0x7f).contains(c)) {
            return Err(Bad);
        }
        (a, Vec::new(), text)
    } else {
        let t = core::str::from_utf8(&m).map_err(|_| Bad)?;
        let mut parts = t.split(',');
        let a: Ipv4Addr = parts.next().unwrap_or("").parse().map_err(|_| Bad)?;
        let mut ports = Vec::new();
        let items: Vec<&str> = parts.collect();
        for (i, spec) in items.iter().enumerate() {
            // A last empty item ("ADDR,") asks for nothing, like none/N.
            if spec.is_empty() && i + 1 == items.len() {
                break;
            }
            let (proto, p) = spec.split_once('/').ok_or(Bad)?;
            let proto = match proto {
                "tcp" => L4Proto::Tcp,
                "udp" => L4Proto::Udp,
                "none" if number(p, 5).is_some() => continue,
                _ => return Err(Bad),
            };
            ports.push(PortSpec {
                proto,
                port: port(p).ok_or(Bad)?,
            });
        }
        // No port at all: the client's default_access.
        if ports.len() > 16 {
            return Err(Bad);
        }
        (a, ports, Vec::new())
    };
    let nat = match nat {
        None => None,
        Some(field) => {
            if ports.len() != 1 || field.is_empty() || field.len() > 128 {
                return Err(Bad);
            }
            let t = b64_decode(field.as_bytes()).ok_or(Bad)?;
            let t = String::from_utf8(t).map_err(|_| Bad)?;
            let (host, p) = t.split_once(',').ok_or(Bad)?;
            Some((host.parse().map_err(|_| Bad)?, port(p).ok_or(Bad)?))
        }
    };
    Ok(Msg {
        ts,
        ty,
        addr: (!addr.is_unspecified()).then_some(addr),
        ports,
        text,
        nat,
        timeout,
    })
}

fn type_number(t: MessageType) -> u8 {
    match t {
        MessageType::Command => 0,
        MessageType::Access => 1,
        MessageType::NatAccess => 2,
        MessageType::ClientTimeoutAccess => 3,
        MessageType::ClientTimeoutNatAccess => 4,
        MessageType::LocalNatAccess => 5,
        MessageType::ClientTimeoutLocalNatAccess => 6,
    }
}

/// `message::parse` and [`read`] agree on `plain`.
fn parse_agrees(plain: &[u8]) -> Result<Msg, Why> {
    let mine = read(plain);
    match (message::parse(plain), &mine) {
        (Ok(m), Ok(r)) => {
            assert_eq!(m.timestamp, r.ts);
            assert_eq!(type_number(m.kind), r.ty);
            assert_eq!(m.access.addr, r.addr);
            assert_eq!(&m.access.ports[..], &r.ports[..]);
            assert_eq!(&m.command[..], &r.text[..]);
            assert_eq!(m.nat.map(|n| (n.addr, n.port)), r.nat);
            assert_eq!(m.client_timeout, r.timeout);
        }
        (Err(e), Err(w)) => {
            assert_eq!(e.is_unsupported(), *w == Why::Unsupported, "{e:?} vs {w:?}");
            let _ = e.to_string();
        }
        (got, _) => panic!("message::parse says {got:?}, the harness {mine:?}"),
    }
    mine
}

// ---- the verdict model --------------------------------------------------

/// Who sealed a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealer {
    /// Client `vec`'s keys.
    Vec,
    /// Client `mine`'s keys.
    Mine,
    /// The disabled client's keys.
    Stranger,
    /// `vec`'s HMAC key with another HMAC type.
    WrongType,
    /// `vec`'s HMAC key and type, the other Rijndael key.
    WrongKey,
}

fn sealer_keys(s: Sealer, variant: usize) -> SealKeys {
    match s {
        Sealer::Vec => vec_keys(variant),
        Sealer::Mine => mine_keys(),
        Sealer::Stranger => stranger_keys(),
        Sealer::WrongType => {
            let mut k = vec_keys(variant);
            k.hmac = match k.hmac {
                HmacType::Sha1 => HmacType::Sha256,
                HmacType::Sha256 => HmacType::Sha384,
                HmacType::Sha384 => HmacType::Sha512,
                HmacType::Sha512 => HmacType::Sha1,
            };
            k
        }
        Sealer::WrongKey => {
            let mut k = vec_keys(variant);
            k.key = if k.key == PASSPHRASE {
                vec_keys(0).key
            } else {
                PASSPHRASE.to_vec()
            };
            k
        }
    }
}

fn in_lab(src: IpAddr) -> bool {
    matches!(src, IpAddr::V4(a) if a.octets()[..3] == [192, 0, 2])
}

/// The fwknop clients that are candidates for a packet from `src`.
fn candidates(src: IpAddr) -> u64 {
    1 + u64::from(in_lab(src))
}

/// What the verifier must say.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Accept {
        client: &'static str,
        kind: Kind,
        addr: IpAddr,
        ports: Vec<PortSpec>,
        item: usize,
        duration: u64,
    },
    Refuse(Refusal, Option<&'static str>),
}

fn grantable(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.is_loopback()
        || matches!(a, IpAddr::V4(v) if v.is_broadcast()))
}

/// The model of `verifier/fwknop_path.rs` for a packet sealed by `sealer`
/// around `plain`, of `len` bytes, from `src` at `unix`; also the HMACs it costs.
fn model(
    cfg: &Config,
    sealer: Sealer,
    plain: &[u8],
    len: usize,
    src: IpAddr,
    unix: u64,
) -> (Verdict, u64) {
    use Verdict::Refuse;
    if !(fwknop::MIN_PACKET_LEN..=fwknop::MAX_PACKET_LEN).contains(&len) {
        // Not fwknop-shaped: the native path, whose only client (`native`,
        // any source) fails to open it.
        let native = (seal::MIN_PACKET_LEN..=seal::MAX_PACKET_LEN).contains(&len);
        let r = if native {
            Refusal::AuthFailed
        } else {
            Refusal::BadLength
        };
        return (Refuse(r, None), 0);
    }
    let client = match sealer {
        Sealer::Vec | Sealer::WrongKey => &VEC,
        Sealer::Mine if in_lab(src) => &MINE,
        _ => return (Refuse(Refusal::AuthFailed, None), candidates(src)),
    };
    let hmacs = if client.name == "vec" { 1 } else { 2 };
    let who = Some(client.name);
    let refuse = |r| (Refuse(r, who), hmacs);
    if sealer == Sealer::WrongKey {
        return refuse(Refusal::BadRequest);
    }
    let m = match read(plain) {
        Ok(m) => m,
        Err(Why::Bad) => return refuse(Refusal::BadRequest),
        Err(Why::Unsupported) => return refuse(Refusal::Unsupported),
    };
    // The timestamp window first; from there on the replay id is recorded.
    // 120 s (max_skew); 15 s (source_skew) for 0.0.0.0, the packet's source.
    let window = if m.addr.is_none() { 15 } else { 120 };
    let skew = i128::from(m.ts) - i128::from(unix);
    if skew < -window {
        return refuse(Refusal::TooOld);
    }
    if skew > window {
        return refuse(Refusal::TooNew);
    }
    let addr = match m.addr.map(IpAddr::V4) {
        None => src,
        Some(a) if a == src => a,
        Some(a) if !grantable(a) => return refuse(Refusal::BadAddress),
        Some(_) if !client.other_address => return refuse(Refusal::OtherAddress),
        Some(a) => a,
    };
    let duration = m
        .timeout
        .map_or(client.timeout, |t| u64::from(t).min(client.max));
    let (kind, item, ports, duration) = if m.ty == 0 {
        let found = cfg.active_commands().enumerate().find(|(_, c)| {
            client.commands.contains(&c.name.as_str())
                && c.fwknop_match.as_deref().map(str::as_bytes) == Some(&m.text[..])
        });
        match found {
            Some((i, _)) => (Kind::Command, i, Vec::new(), 0),
            None => return refuse(Refusal::CommandNotAllowed),
        }
    } else if let Some((host, to_port)) = m.nat {
        let p = m.ports[0];
        let found = cfg.active_forwards().enumerate().find(|(_, f)| {
            let w = &f.forward;
            client.forwards.contains(&f.name.as_str())
                && w.proto == p.proto
                && w.port == p.port
                && w.to4 == Some(host)
                && w.to_port == to_port
        });
        match found {
            Some((i, _)) => (Kind::Forward, i, Vec::new(), duration),
            None => return refuse(Refusal::ForwardNotAllowed),
        }
    } else {
        // No port asks for the default_access, which no harness client has.
        if m.ports.is_empty() || m.ports.iter().any(|p| !client.allow.contains(p)) {
            return refuse(Refusal::PortNotAllowed);
        }
        (Kind::Open, 0, m.ports.clone(), duration)
    };
    (
        Verdict::Accept {
            client: client.name,
            kind,
            addr,
            ports,
            item,
            duration,
        },
        hmacs,
    )
}

/// A client name the model knows.
fn known(name: &str) -> &'static str {
    match name {
        "vec" => "vec",
        "mine" => "mine",
        other => panic!("a verdict for client {other}"),
    }
}

/// Sends `packet` (sealed by `sealer` around `plain`) twice and checks both verdicts.
fn judge(
    variant: usize,
    sealer: Sealer,
    plain: &[u8],
    packet: &[u8],
    src: IpAddr,
    unix: u64,
) -> Option<Kind> {
    let cfg = &configs()[variant];
    let (expected, hmacs) = model(cfg, sealer, plain, packet.len(), src, unix);
    let mut v = Verifier::new(cfg);
    let got = match v.verify(now(unix), src, packet) {
        Ok(a) => {
            let id = sha2::Sha256::digest(packet);
            assert_eq!(&a.record.nonce[..], &id[..24], "replay record");
            if let Ok(m) = read(plain) {
                assert_eq!(a.record.timestamp, m.ts);
            }
            // The independent reading of what was granted.
            match a.kind {
                Kind::Command => {
                    let c = cfg.active_commands().nth(a.item).expect("a command index");
                    let m = read(plain).expect("an accepted plaintext reads");
                    assert_eq!(
                        c.fwknop_match.as_deref().map(str::as_bytes),
                        Some(&m.text[..])
                    );
                    assert!(c.enabled);
                }
                Kind::Forward => {
                    let f = cfg.active_forwards().nth(a.item).expect("a forward index");
                    let m = read(plain).expect("an accepted plaintext reads");
                    let (host, to_port) = m.nat.expect("a NAT message");
                    assert_eq!(
                        (
                            f.forward.proto,
                            f.forward.port,
                            f.forward.to4,
                            f.forward.to_port
                        ),
                        (m.ports[0].proto, m.ports[0].port, Some(host), to_port)
                    );
                }
                Kind::Open | Kind::Close => {}
            }
            Verdict::Accept {
                client: known(a.client),
                kind: a.kind,
                addr: a.addr,
                ports: a.ports.to_vec(),
                item: a.item,
                duration: a.duration.as_secs(),
            }
        }
        Err(r) => {
            assert_eq!(r.client.is_some(), r.reason.authenticated(), "{r:?}");
            let _ = r.to_string();
            Verdict::Refuse(r.reason, r.client.map(known))
        }
    };
    assert_eq!(got, expected, "verdict differs from the model");
    assert_eq!(v.counters().hmac_attempts, hmacs, "HMACs computed");
    let recorded = matches!(
        got,
        Verdict::Accept { .. }
            | Verdict::Refuse(
                Refusal::BadAddress
                    | Refusal::OtherAddress
                    | Refusal::AddressRequired
                    | Refusal::PortNotAllowed
                    | Refusal::CommandNotAllowed
                    | Refusal::ForwardNotAllowed
                    // Remembered as refused for their timestamp: a copy is a replay.
                    | Refusal::TooOld
                    | Refusal::TooNew
                    | Refusal::BeforeReplayGuard,
                _
            )
    );
    let second = v
        .verify(now(unix), src, packet)
        .map(|_| ())
        .map_err(|r| r.reason);
    match (recorded, &got) {
        (true, _) => assert_eq!(second, Err(Refusal::Replay), "second copy"),
        (false, Verdict::Refuse(r, _)) => assert_eq!(second, Err(*r), "second copy"),
        (false, Verdict::Accept { .. }) => unreachable!(),
    }
    match got {
        Verdict::Accept { kind, .. } => Some(kind),
        Verdict::Refuse(..) => None,
    }
}

// ---- modes ---------------------------------------------------------------

/// Runs one input.
pub fn run(data: &[u8]) {
    let _ = run_kind(data);
}

/// Runs one input; returns what the first copy of a sealed packet (modes 1
/// and 2) was accepted as, if it was.
pub fn run_kind(data: &[u8]) -> Option<Kind> {
    let mut input = Input::new(data);
    let mode = input.u8() % 4;
    let variant = usize::from(input.u8()) % VARIANTS.len();
    match mode {
        0 => raw(variant, &mut input),
        1 => return sealed_fields(variant, &mut input),
        2 => return built(variant, &mut input),
        _ => tampered(variant, &mut input),
    }
    None
}

fn all_keys(variant: usize) -> [SealKeys; 3] {
    [vec_keys(variant), mine_keys(), stranger_keys()]
}

fn raw(variant: usize, input: &mut Input<'_>) {
    let src = source(input.u8());
    let payload = input.rest();
    let _ = parse_agrees(payload);
    let pre = fwknop::precheck(payload);
    assert_eq!(
        pre.is_ok(),
        fwknop::looks_like_fwknop(payload) && !payload.starts_with(fwknop::SALTED_PREFIX)
    );
    let mut authentic = false;
    for k in all_keys(variant) {
        let keys = k.postern();
        authentic |= fwknop::authenticate(&keys, payload);
        let mut scratch = Scratch::new();
        if let Ok(plain) = fwknop::decrypt(&keys, payload, &mut scratch) {
            assert!(plain.len() < payload.len());
            let _ = message::parse(plain);
        }
    }
    let cfg = &configs()[variant];
    let mut v = Verifier::new(cfg);
    let r = v
        .verify(now(T0), src, payload)
        .map(|a| a.client.to_string());
    if authentic {
        return; // a real packet (a seed): modes 1 and 2 judge those
    }
    match r {
        Err(r) => {
            assert!(r.client.is_none() && !r.reason.authenticated(), "{r:?}");
        }
        Ok(c) => panic!("unauthenticated bytes accepted for {c}"),
    }
    let c = v.counters();
    assert!(c.hmac_attempts <= candidates(src), "HMACs per packet");
    assert!(c.aead_attempts <= 1, "AEAD tries per packet");
    assert!(
        c.hmac_attempts == 0 || c.aead_attempts == 0,
        "one path per packet"
    );
}

fn pick_sealer(b: u8) -> Sealer {
    match b % 8 {
        0..=3 => Sealer::Vec,
        4 => Sealer::Mine,
        5 => Sealer::Stranger,
        6 => Sealer::WrongType,
        _ => Sealer::WrongKey,
    }
}

fn salt(input: &mut Input<'_>) -> [u8; 8] {
    let mut s = [0u8; 8];
    for b in &mut s {
        *b = input.u8();
    }
    s
}

/// The plaintext's timestamp as the harness reads it (third field), else T0.
fn ts_of(plain: &[u8]) -> u64 {
    core::str::from_utf8(plain)
        .ok()
        .and_then(|s| s.split(':').nth(2))
        .and_then(|t| number(t, 12))
        .unwrap_or(T0)
}

fn sealed_fields(variant: usize, input: &mut Input<'_>) -> Option<Kind> {
    let sealer = pick_sealer(input.u8());
    let src = source(input.u8());
    let salt = salt(input);
    let digest = usize::from(input.u8());
    let delta = i64::from(input.u8() as i8) * 2;
    let fields = input.rest();
    let plain = match DIGEST_LENS.get(digest) {
        Some(&len) => with_digest(fields, len),
        None => fields.to_vec(),
    };
    let _ = parse_agrees(&plain);
    let packet = seal(&sealer_keys(sealer, variant), salt, &plain);
    let unix = ts_of(&plain).saturating_add_signed(delta);
    judge(variant, sealer, &plain, &packet, src, unix)
}

/// Addresses a built message may name.
const ADDRS: [&str; 8] = [
    "0.0.0.0",
    "192.0.2.9",
    "10.213.0.2",
    "224.0.0.1",
    "127.0.0.1",
    "255.255.255.255",
    "203.0.113.5",
    "010.0.0.1",
];
/// Port specs a built message may ask for.
const SPECS: [&str; 9] = [
    "tcp/22", "udp/53", "tcp/2222", "tcp/2200", "udp/5000", "tcp/2300", "tcp/2400", "tcp/0",
    "icmp/1",
];
/// Command texts a built message may carry.
const TEXTS: [&str; 6] = [
    "wake nas",
    "touch /tmp/x",
    "reboot",
    "sleep",
    "wake nas ",
    "x,y",
];
/// NAT targets a built message may name.
const NATS: [&str; 7] = [
    "10.213.0.5,22",
    "10.1.0.5,53",
    "10.213.0.6,2400",
    "10.213.0.5,2200",
    "10.213.0.5",
    "fd00:213::5,22",
    "10.213.0.5,0",
];

fn pick<'a>(input: &mut Input<'_>, list: &[&'a str]) -> &'a str {
    list[usize::from(input.u8()) % list.len()]
}

fn built(variant: usize, input: &mut Input<'_>) -> Option<Kind> {
    let sealer = pick_sealer(input.u8());
    let src = source(input.u8());
    let salt = salt(input);
    let flags = input.u8();
    let ty = input.u8() % 8;
    let ts = T0.saturating_add_signed(i64::from(input.u8() as i8) * 2);
    let addr = pick(input, &ADDRS);
    let message = if ty == 0 {
        let text = if flags & 1 == 0 {
            pick(input, &TEXTS).as_bytes().to_vec()
        } else {
            input.chunk().to_vec()
        };
        let mut m = format!("{addr},").into_bytes();
        m.extend_from_slice(&text);
        m
    } else {
        let n = 1 + usize::from(input.u8() % 3);
        let specs: Vec<&str> = (0..n).map(|_| pick(input, &SPECS)).collect();
        format!("{addr},{}", specs.join(",")).into_bytes()
    };
    let user = if flags & 2 == 0 {
        b64(b"root")
    } else {
        b64(input.chunk())
    };
    let mut fields = format!(
        "{}:{user}:{ts}:3.0.0:{ty}:{}",
        if flags & 4 == 0 {
            "1234567890123456"
        } else {
            "123456789012345"
        },
        b64(&message)
    );
    if matches!(ty, 2 | 4 | 5 | 6) {
        fields.push(':');
        fields.push_str(&b64(pick(input, &NATS).as_bytes()));
    }
    if matches!(ty, 3 | 4 | 6) {
        let t = input.u16();
        fields.push_str(&format!(":{}", if flags & 8 == 0 { t % 400 } else { t }));
    }
    if flags & 16 != 0 {
        fields.push_str(":c2VydmVyX2F1dGg"); // a server_auth field
    }
    let plain = with_digest(fields.as_bytes(), DIGEST_LENS[usize::from(flags >> 5) % 5]);
    let _ = parse_agrees(&plain);
    let packet = seal(&sealer_keys(sealer, variant), salt, &plain);
    let unix = T0.saturating_add_signed(i64::from(input.u8() as i8) * 2);
    judge(variant, sealer, &plain, &packet, src, unix)
}

fn tampered(variant: usize, input: &mut Input<'_>) {
    let at = usize::from(input.u16());
    let to = input.u8();
    let salt = salt(input);
    let plain = input.rest();
    let keys = vec_keys(variant);
    let mut packet = seal(&keys, salt, plain);
    let at = at % packet.len();
    if packet[at] == to {
        return;
    }
    packet[at] = to;
    for k in all_keys(variant) {
        assert!(
            !fwknop::authenticate(&k.postern(), &packet),
            "a changed packet authenticates"
        );
    }
    let mut v = Verifier::new(&configs()[variant]);
    let r = v.verify(now(T0), source(0), &packet).map(|_| ());
    assert!(matches!(r, Err(r) if !r.reason.authenticated()), "{r:?}");
}

// ---- the sealer against the real client ----------------------------------

/// The vectors of `packets.txt`: (name, keys, timestamp, packet).
pub fn vectors() -> Vec<(String, SealKeys, u64, Vec<u8>)> {
    let arg = |command: &str, flag: &str| -> Option<String> {
        let mut w = command.split(' ');
        w.find(|x| *x == flag)?;
        w.next().map(str::to_string)
    };
    let mut out = Vec::new();
    for block in VECTORS.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .to_string()
        };
        let command = field("command:");
        let key = match arg(&command, "--key-base64-rijndael") {
            Some(k) => b64_decode(k.trim_end_matches('=').as_bytes()).unwrap(),
            None => PASSPHRASE.to_vec(),
        };
        let hmac = match arg(&command, "--hmac-digest-type").as_deref() {
            None => HmacType::Sha256,
            Some(t) => HmacType::NAMES.iter().find(|(n, _)| *n == t).unwrap().1,
        };
        let hmac_key = arg(&command, "--key-base64-hmac").unwrap();
        out.push((
            field("vector:"),
            SealKeys {
                key,
                hmac_key: b64_decode(hmac_key.trim_end_matches('=').as_bytes()).unwrap(),
                hmac,
            },
            field("timestamp:").parse().unwrap(),
            field("packet:").into_bytes(),
        ));
    }
    out
}

/// The configuration variant under which a vector's keys are client `vec`'s.
pub fn variant_of(k: &SealKeys) -> usize {
    VARIANTS
        .iter()
        .position(|&(h, pass)| h == k.hmac && pass == (k.key == PASSPHRASE))
        .unwrap()
}

/// The salt and plaintext of a real packet (decrypted by postern).
pub fn open_vector(k: &SealKeys, packet: &[u8]) -> Option<([u8; 8], Vec<u8>)> {
    let mut scratch = Scratch::new();
    let plain = fwknop::decrypt(&k.postern(), packet, &mut scratch)
        .ok()?
        .to_vec();
    let body = &packet[..packet.len() - k.hmac.b64_len()];
    let mut text = fwknop::SALTED_PREFIX.to_vec();
    text.extend_from_slice(body);
    let raw = b64_decode(&text[..text.len() / 4 * 4])?;
    Some((raw[8..16].try_into().unwrap(), plain))
}

/// The harness's sealer reproduces every real-client packet that decrypts
/// with CBC; returns how many it checked.
pub fn check_sealer() -> usize {
    let mut n = 0;
    for (name, k, _, packet) in vectors() {
        let Some((salt, plain)) = open_vector(&k, &packet) else {
            continue;
        };
        assert_eq!(
            String::from_utf8_lossy(&seal(&k, salt, &plain)),
            String::from_utf8_lossy(&packet),
            "{name}"
        );
        n += 1;
    }
    n
}
