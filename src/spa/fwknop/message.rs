//! The decrypted fwknop plaintext: fields, digest, message types, access request.
//!
//! Owns the text format of fwknop's `fko_encode.c` / `fko_decode.c`:
//!
//! ```text
//! rand(16 digits):b64(user):timestamp:version:type:b64(message)[:b64(nat)][:b64(server_auth)][:client_timeout]:digest
//! ```
//!
//! Base64 fields are unpadded. The digest's hash is told by its length (MD5,
//! SHA-1, SHA-256, SHA-384, SHA-512; fwknop's SHA3 digests are refused) and
//! covers everything before the last `:`. The message of an access request is
//! `ADDR,proto/port[,proto/port…]` with `0.0.0.0` meaning "the packet's
//! source" (`fwknop -s`). Understood: types 1 (access) and 3 (access with a
//! client timeout, `fwknop -f`); 0 (command, `fwknop -C`: the message is
//! `ADDR,command text`); 2 and 4 (NAT access, `fwknop -N HOST:PORT`: one
//! external `proto/port` in the message, and a `nat_access` field
//! `b64(HOST,PORT)` naming the LAN host). Local NAT (5, 6) and `server_auth`
//! are parsed far enough to name them and refused ([`Error::is_unsupported`]).
//! Pure parsing, no allocation.

use core::fmt;
use core::net::Ipv4Addr;

use super::crypto::{self, MAX_DIGEST_LEN};
use crate::base64;
use crate::port::{L4Proto, PortSpec};
use crate::spa::request::MAX_PORTS;

/// Most `:`-separated fields (fwknop's `MAX_SPA_FIELDS`, plus the digest).
const MAX_FIELDS: usize = 10;
/// Fields every message has before the optional ones (rand … message).
const BASE_FIELDS: usize = 6;
/// Longest base64 message field (fwknop's `MAX_SPA_MESSAGE_SIZE`).
const MAX_MESSAGE_B64: usize = 256;
/// Longest base64 username field (fwknop's `MAX_SPA_USERNAME_SIZE`, encoded).
const MAX_USER_B64: usize = 88;
/// Largest client timeout fwknop decodes (`2 << 15`).
const MAX_CLIENT_TIMEOUT: u32 = 2 << 15;
/// Longest base64 `nat_access` field (fwknop's `MAX_SPA_NAT_ACCESS_SIZE`).
const MAX_NAT_B64: usize = 128;
/// Longest command text (what 256 base64 characters decode to, minus `0.0.0.0,`).
pub const MAX_COMMAND_TEXT: usize = 192;

/// fwknop's message types (`fko_message_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 0: run a command on the server.
    Command,
    /// 1: open ports for an address.
    Access,
    /// 2: NAT access: a forward to a LAN host.
    NatAccess,
    /// 3: open ports for the client's timeout (`fwknop -f`).
    ClientTimeoutAccess,
    /// 4: NAT access with a client timeout.
    ClientTimeoutNatAccess,
    /// 5: local NAT access (refused).
    LocalNatAccess,
    /// 6: local NAT access with a client timeout (refused).
    ClientTimeoutLocalNatAccess,
}

impl MessageType {
    fn from_number(n: u8) -> Option<MessageType> {
        Some(match n {
            0 => MessageType::Command,
            1 => MessageType::Access,
            2 => MessageType::NatAccess,
            3 => MessageType::ClientTimeoutAccess,
            4 => MessageType::ClientTimeoutNatAccess,
            5 => MessageType::LocalNatAccess,
            6 => MessageType::ClientTimeoutLocalNatAccess,
            _ => return None,
        })
    }
}

/// What an access message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The address to open for; `None` for `0.0.0.0` (the packet's source).
    pub addr: Option<Ipv4Addr>,
    /// The ports, in the message's order (1 to [`MAX_PORTS`]).
    pub ports: heapless::Vec<PortSpec, MAX_PORTS>,
}

/// The LAN host of a NAT access message (`fwknop -N HOST:PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatTarget {
    /// The LAN host's address.
    pub addr: Ipv4Addr,
    /// The LAN host's port.
    pub port: u16,
}

/// A parsed, digest-checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The client's clock, unix seconds.
    pub timestamp: u64,
    /// Access, client-timeout access, command, or (client-timeout) NAT access.
    pub kind: MessageType,
    /// What to open: the address and ports (for NAT, the one external
    /// port); for a command, the address and no ports.
    pub access: Access,
    /// Seconds the client asked for (`-f`), if it did and it is not 0.
    pub client_timeout: Option<u32>,
    /// A command message's text (after `ADDR,`); empty for other types.
    pub command: heapless::Vec<u8, MAX_COMMAND_TEXT>,
    /// A NAT access message's LAN host.
    pub nat: Option<NatTarget>,
}

/// Why an authenticated fwknop packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The ciphertext is not canonical base64.
    Base64,
    /// No `Salted__` header, or not whole AES blocks.
    Layout,
    /// Bad PKCS#7 padding.
    Padding,
    /// A byte that is not printable ASCII in the plaintext.
    NotText,
    /// Too few or too many fields for the message type.
    Fields,
    /// The digest has no known length.
    DigestType,
    /// The digest does not match the fields (or is a SHA3 digest).
    DigestMismatch,
    /// The random field is not 16 digits.
    Random,
    /// The username field is not base64.
    Username,
    /// The timestamp is not a number.
    Timestamp,
    /// The version field is empty or too long.
    Version,
    /// An unknown message type.
    MessageType,
    /// The message field is not base64 of `ADDR,proto/port…`.
    Message,
    /// The message field is longer than fwknop's limit (a long `-C` command
    /// text, or very many ports).
    MessageTooLong,
    /// The address is not IPv4 dotted decimal.
    Address,
    /// A protocol other than tcp or udp.
    Protocol,
    /// A port that is not 1 to 65535.
    Port,
    /// More than [`MAX_PORTS`] ports.
    TooManyPorts,
    /// The client timeout is not a number up to 65536.
    ClientTimeout,
    /// A command message whose text is empty or not printable.
    Command,
    /// A local NAT access message (`fwknop --nat-local`): not supported.
    Nat,
    /// A NAT access field that is not `b64(IPv4,port)`, or NAT with other than one port.
    NatAccess,
    /// A `server_auth` field: not supported.
    ServerAuth,
}

impl Error {
    /// True for well-formed requests of a kind postern does not serve.
    pub const fn is_unsupported(self) -> bool {
        matches!(self, Error::Nat | Error::ServerAuth)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Base64 => "ciphertext is not base64",
            Error::Layout => "ciphertext has no Salted__ header or is not whole AES blocks",
            Error::Padding => "bad padding after decryption",
            Error::NotText => "plaintext is not printable text",
            Error::Fields => "wrong number of fields",
            Error::DigestType => "digest of unknown length",
            Error::DigestMismatch => "digest does not match (SHA3 digests are not supported)",
            Error::Random => "random field is not 16 digits",
            Error::Username => "username is not base64",
            Error::Timestamp => "timestamp is not a number",
            Error::Version => "bad version field",
            Error::MessageType => "unknown message type",
            Error::Message => "access message is not ADDR,proto/port",
            Error::MessageTooLong => {
                "message too long (over 256 base64 characters: a command text of up to about 180)"
            }
            Error::Address => "address in the access message is not IPv4",
            Error::Protocol => "protocol is not tcp or udp",
            Error::Port => "port is not 1 to 65535",
            Error::TooManyPorts => "more ports than postern takes in one request (16)",
            Error::ClientTimeout => "client timeout is not a number up to 65536",
            Error::Command => "command text is empty or not printable",
            Error::Nat => "fwknop local NAT access (--nat-local) is not supported",
            Error::NatAccess => "NAT access is not one proto/port and HOST,PORT of an IPv4 host",
            Error::ServerAuth => "fwknop server_auth field is not supported",
        })
    }
}

/// A plaintext as the fwknop client writes it: random, user, `timestamp`,
/// version, message type `ty`, base64 of `message`, then a SHA-256 digest
/// (tests only: the real client makes the vectors).
#[doc(hidden)]
pub fn plaintext_for_test(timestamp: u64, ty: u8, message: &str) -> Vec<u8> {
    let mut msg = [0u8; MAX_MESSAGE_B64];
    let n = base64::encode_unpadded_into(message.as_bytes(), &mut msg).unwrap_or(0);
    let mut fields = format!("1234567890123456:cm9vdA:{timestamp}:3.0.0:{ty}:").into_bytes();
    fields.extend_from_slice(&msg[..n]);
    let mut d = [0u8; 86];
    let n = digest_b64(43, &fields, &mut d).unwrap_or(0);
    fields.push(b':');
    fields.extend_from_slice(&d[..n]);
    fields
}

/// The digest hashes fwknop writes (by unpadded base64 length).
fn digest_b64(len: usize, data: &[u8], out: &mut [u8; 86]) -> Option<usize> {
    let mut d = [0u8; MAX_DIGEST_LEN];
    let n = match len {
        22 => crypto::digest::<md5::Md5>(data, &mut d),
        27 => crypto::digest::<sha1::Sha1>(data, &mut d),
        43 => crypto::digest::<sha2::Sha256>(data, &mut d),
        64 => crypto::digest::<sha2::Sha384>(data, &mut d),
        86 => crypto::digest::<sha2::Sha512>(data, &mut d),
        _ => return None,
    };
    base64::encode_unpadded_into(&d[..n], out)
}

fn digits(f: &[u8], max: usize) -> Option<u64> {
    if f.is_empty() || f.len() > max || !f.iter().all(u8::is_ascii_digit) {
        return None;
    }
    f.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Parses and checks a decrypted plaintext.
pub fn parse(plain: &[u8]) -> Result<Message, Error> {
    if !plain.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        return Err(Error::NotText);
    }
    let cut = plain
        .iter()
        .rposition(|&c| c == b':')
        .ok_or(Error::Fields)?;
    let (encoded, digest) = (&plain[..cut], &plain[cut + 1..]);
    let mut want = [0u8; 86];
    let n = digest_b64(digest.len(), encoded, &mut want).ok_or(Error::DigestType)?;
    if !crypto::ct_eq(&want[..n], digest) {
        return Err(Error::DigestMismatch);
    }

    let mut fields: heapless::Vec<&[u8], MAX_FIELDS> = heapless::Vec::new();
    for f in encoded.split(|&c| c == b':') {
        fields.push(f).map_err(|_| Error::Fields)?;
    }
    if fields.len() < BASE_FIELDS {
        return Err(Error::Fields);
    }
    let (base, extra) = fields.split_at(BASE_FIELDS);
    if base[0].len() != 16 || !base[0].iter().all(u8::is_ascii_digit) {
        return Err(Error::Random);
    }
    let mut user = [0u8; MAX_USER_B64];
    if base[1].is_empty() || base[1].len() > MAX_USER_B64 {
        return Err(Error::Username);
    }
    base64::decode_unpadded_into(base[1], &mut user).map_err(|_| Error::Username)?;
    let timestamp = digits(base[2], 12).ok_or(Error::Timestamp)?;
    if base[3].is_empty() || base[3].len() > 8 {
        return Err(Error::Version);
    }
    let kind = digits(base[4], 2)
        .and_then(|n| MessageType::from_number(n as u8))
        .ok_or(Error::MessageType)?;
    // Optional fields by type: [nat_access] [server_auth] [client_timeout].
    let (nat, timeout) = match (kind, extra) {
        (MessageType::Command | MessageType::Access, []) => (None, None),
        (MessageType::ClientTimeoutAccess, [t]) => (None, Some(*t)),
        (MessageType::NatAccess, [n]) => (Some(*n), None),
        (MessageType::ClientTimeoutNatAccess, [n, t]) => (Some(*n), Some(*t)),
        (MessageType::LocalNatAccess | MessageType::ClientTimeoutLocalNatAccess, _) => {
            return Err(Error::Nat)
        }
        // One field more than the type has: a server_auth field.
        (MessageType::Command | MessageType::Access, [_])
        | (MessageType::ClientTimeoutAccess | MessageType::NatAccess, [_, _])
        | (MessageType::ClientTimeoutNatAccess, [_, _, _]) => return Err(Error::ServerAuth),
        _ => return Err(Error::Fields),
    };
    let client_timeout = match timeout {
        None => None,
        Some(t) => {
            let t = digits(t, 5)
                .filter(|&t| t <= u64::from(MAX_CLIENT_TIMEOUT))
                .ok_or(Error::ClientTimeout)?;
            (t > 0).then_some(t as u32)
        }
    };
    let mut command = heapless::Vec::new();
    let access = if kind == MessageType::Command {
        command_message(base[5], &mut command)?
    } else {
        access(base[5])?
    };
    let nat = match nat {
        Some(field) => {
            if access.ports.len() != 1 {
                // Also: no port (NAT needs the router port it forwards).
                return Err(Error::NatAccess);
            }
            Some(nat_access(field)?)
        }
        None => None,
    };
    Ok(Message {
        timestamp,
        kind,
        access,
        client_timeout,
        command,
        nat,
    })
}

/// Decodes `b64(ADDR,command text)`; the text goes to `text`.
fn command_message(
    field: &[u8],
    text: &mut heapless::Vec<u8, MAX_COMMAND_TEXT>,
) -> Result<Access, Error> {
    if field.len() > MAX_MESSAGE_B64 {
        return Err(Error::MessageTooLong);
    }
    if field.is_empty() {
        return Err(Error::Message);
    }
    let mut buf = [0u8; MAX_MESSAGE_B64];
    let n = base64::decode_unpadded_into(field, &mut buf).map_err(|_| Error::Message)?;
    let decoded = &buf[..n];
    let comma = decoded
        .iter()
        .position(|&c| c == b',')
        .ok_or(Error::Message)?;
    let addr: Ipv4Addr = core::str::from_utf8(&decoded[..comma])
        .map_err(|_| Error::Address)?
        .parse()
        .map_err(|_| Error::Address)?;
    let cmd = &decoded[comma + 1..];
    if cmd.is_empty() || !cmd.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        return Err(Error::Command);
    }
    text.extend_from_slice(cmd).map_err(|_| Error::Command)?;
    Ok(Access {
        addr: (!addr.is_unspecified()).then_some(addr),
        ports: heapless::Vec::new(),
    })
}

/// Decodes `b64(HOST,PORT)` of a NAT access message.
fn nat_access(field: &[u8]) -> Result<NatTarget, Error> {
    if field.is_empty() || field.len() > MAX_NAT_B64 {
        return Err(Error::NatAccess);
    }
    let mut buf = [0u8; MAX_NAT_B64];
    let n = base64::decode_unpadded_into(field, &mut buf).map_err(|_| Error::NatAccess)?;
    let text = core::str::from_utf8(&buf[..n]).map_err(|_| Error::NatAccess)?;
    let (host, port) = text.split_once(',').ok_or(Error::NatAccess)?;
    let addr: Ipv4Addr = host.parse().map_err(|_| Error::NatAccess)?;
    let port = digits(port.as_bytes(), 5)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0)
        .ok_or(Error::NatAccess)?;
    Ok(NatTarget { addr, port })
}

/// Decodes and parses `b64(ADDR,proto/port[,proto/port…])`. `ADDR` alone,
/// `ADDR,` and `none/N` items (fwknop's default access message is
/// `ADDR,none/0`) ask for no port: the client's `default_access`.
fn access(field: &[u8]) -> Result<Access, Error> {
    if field.len() > MAX_MESSAGE_B64 {
        return Err(Error::MessageTooLong);
    }
    if field.is_empty() {
        return Err(Error::Message);
    }
    let mut buf = [0u8; MAX_MESSAGE_B64];
    let n = base64::decode_unpadded_into(field, &mut buf).map_err(|_| Error::Message)?;
    let text = core::str::from_utf8(&buf[..n]).map_err(|_| Error::Message)?;
    let mut parts = text.split(',');
    let addr: Ipv4Addr = parts
        .next()
        .ok_or(Error::Message)?
        .parse()
        .map_err(|_| Error::Address)?;
    let mut ports = heapless::Vec::new();
    let mut parts = parts.peekable();
    while let Some(spec) = parts.next() {
        if spec.is_empty() && parts.peek().is_none() {
            break;
        }
        let (proto, port) = spec.split_once('/').ok_or(Error::Message)?;
        let proto = match proto {
            "tcp" => L4Proto::Tcp,
            "udp" => L4Proto::Udp,
            "none" if digits(port.as_bytes(), 5).is_some() => continue,
            _ => return Err(Error::Protocol),
        };
        let port = u16::try_from(digits(port.as_bytes(), 5).ok_or(Error::Port)?)
            .ok()
            .filter(|&p| p != 0)
            .ok_or(Error::Port)?;
        ports
            .push(PortSpec { proto, port })
            .map_err(|_| Error::TooManyPorts)?;
    }
    Ok(Access {
        addr: (!addr.is_unspecified()).then_some(addr),
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        let mut out = [0u8; 512];
        let n = base64::encode_unpadded_into(s.as_bytes(), &mut out).unwrap();
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    /// A plaintext with a correct digest of `len` base64 characters.
    fn plain(fields: &str, digest_len: usize) -> Vec<u8> {
        let mut d = [0u8; 86];
        let n = digest_b64(digest_len, fields.as_bytes(), &mut d).unwrap();
        let mut v = fields.as_bytes().to_vec();
        v.push(b':');
        v.extend_from_slice(&d[..n]);
        v
    }

    fn fields(ty: u8, msg: &str, extra: &str) -> String {
        format!(
            "1234567890123456:{}:1795475593:3.0.0:{ty}:{}{extra}",
            b64("root"),
            b64(msg)
        )
    }

    #[test]
    fn access_with_every_digest() {
        for len in [22, 27, 43, 64, 86] {
            let m = parse(&plain(&fields(1, "0.0.0.0,tcp/22,udp/53", ""), len)).unwrap();
            assert_eq!(m.timestamp, 1_795_475_593);
            assert_eq!(m.kind, MessageType::Access);
            assert_eq!(m.access.addr, None, "0.0.0.0: the source");
            assert_eq!(m.access.ports, [PortSpec::tcp(22), PortSpec::udp(53)]);
            assert_eq!(m.client_timeout, None);
        }
    }

    #[test]
    fn explicit_address_and_client_timeout() {
        let m = parse(&plain(&fields(3, "10.213.0.2,tcp/22", ":45"), 43)).unwrap();
        assert_eq!(m.access.addr, Some(Ipv4Addr::new(10, 213, 0, 2)));
        assert_eq!(m.client_timeout, Some(45));
        let m = parse(&plain(&fields(3, "10.213.0.2,tcp/22", ":0"), 43)).unwrap();
        assert_eq!(m.client_timeout, None, "0: the server's default");
    }

    #[test]
    fn refusals() {
        let p = |ty, msg: &str, extra: &str| parse(&plain(&fields(ty, msg, extra), 43));
        assert_eq!(p(5, "0.0.0.0,tcp/22", ":MTAuMC4wLjIsMjI"), Err(Error::Nat));
        assert_eq!(p(0, "0.0.0.0,", ""), Err(Error::Command), "empty command");
        assert_eq!(p(0, "0.0.0.0,a\tb", ""), Err(Error::Command));
        assert_eq!(p(0, "reboot", ""), Err(Error::Message), "no address");
        assert_eq!(p(0, "0.0.0.0,reboot", ":c2VjcmV0"), Err(Error::ServerAuth));
        let nat = |ty, msg: &str, extra: &str| p(ty, msg, extra);
        assert_eq!(
            nat(
                2,
                "0.0.0.0,tcp/22,tcp/23",
                &format!(":{}", b64("10.0.0.2,22"))
            ),
            Err(Error::NatAccess),
            "NAT takes one port"
        );
        for bad in [
            "10.0.0.2",
            "10.0.0.2,0",
            "10.0.0.2,70000",
            "host,22",
            "::1,22",
        ] {
            assert_eq!(
                nat(2, "0.0.0.0,tcp/22", &format!(":{}", b64(bad))),
                Err(Error::NatAccess),
                "{bad}"
            );
        }
        assert_eq!(nat(2, "0.0.0.0,tcp/22", ""), Err(Error::Fields));
        assert_eq!(
            nat(
                2,
                "0.0.0.0,tcp/22",
                &format!(":{}:c2VjcmV0", b64("10.0.0.2,22"))
            ),
            Err(Error::ServerAuth)
        );
        assert_eq!(p(1, "0.0.0.0,tcp/22", ":c2VjcmV0"), Err(Error::ServerAuth));
        assert_eq!(
            p(3, "0.0.0.0,tcp/22", ":c2VjcmV0:30"),
            Err(Error::ServerAuth)
        );
        assert_eq!(p(1, "0.0.0.0,tcp/22", ":a:b"), Err(Error::Fields));
        assert_eq!(p(3, "0.0.0.0,tcp/22", ""), Err(Error::Fields));
        assert_eq!(p(3, "0.0.0.0,tcp/22", ":65537"), Err(Error::ClientTimeout));
        assert_eq!(p(3, "0.0.0.0,tcp/22", ":x"), Err(Error::ClientTimeout));
        assert_eq!(p(7, "0.0.0.0,tcp/22", ""), Err(Error::MessageType));
        assert_eq!(p(1, "0.0.0.0,icmp/0", ""), Err(Error::Protocol));
        assert_eq!(p(1, "0.0.0.0,tcp/0", ""), Err(Error::Port));
        assert_eq!(p(1, "0.0.0.0,tcp/65536", ""), Err(Error::Port));
        assert_eq!(p(1, "0.0.0.0,tcp22", ""), Err(Error::Message));
        assert_eq!(p(1, "0.0.0.0,none/x", ""), Err(Error::Protocol));
        assert_eq!(p(1, "0.0.0.0,,tcp/22", ""), Err(Error::Message));
        assert_eq!(p(1, "0.0.0.0,none", ""), Err(Error::Message));
        assert_eq!(p(1, "2001:db8::1,tcp/22", ""), Err(Error::Address));
        assert_eq!(p(1, "010.0.0.1,tcp/22", ""), Err(Error::Address));
        let many: Vec<String> = (1..=17).map(|i| format!("tcp/{i}")).collect();
        assert_eq!(
            p(1, &format!("0.0.0.0,{}", many.join(",")), ""),
            Err(Error::TooManyPorts)
        );
        assert!(Error::Nat.is_unsupported() && !Error::Port.is_unsupported());
        assert!(!Error::Command.is_unsupported());
    }

    #[test]
    fn messages_without_ports_ask_for_the_default_access() {
        let p = |ty: u8, msg: &str, extra: &str| parse(&plain(&fields(ty, msg, extra), 43));
        for msg in ["0.0.0.0", "0.0.0.0,", "0.0.0.0,none/0", "10.0.0.2,none/22"] {
            let m = p(1, msg, "").unwrap();
            assert!(m.access.ports.is_empty(), "{msg}");
        }
        assert_eq!(
            p(1, "10.0.0.2", "").unwrap().access.addr,
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        let m = p(1, "0.0.0.0,none/0,tcp/22", "").unwrap();
        assert_eq!(m.access.ports, [PortSpec::tcp(22)], "none adds nothing");
        let m = p(3, "0.0.0.0,none/0", ":60").unwrap();
        assert!(m.access.ports.is_empty());
        assert_eq!(m.client_timeout, Some(60));
        // NAT needs its router port.
        let nat = ":MTkyLjE2OC4xLjEwLDIy";
        assert_eq!(p(2, "0.0.0.0,none/0", nat), Err(Error::NatAccess));
        assert_eq!(p(2, "0.0.0.0", nat), Err(Error::NatAccess));
        // The test helper writes what the client writes.
        let m = parse(&plaintext_for_test(1_795_475_593, 1, "0.0.0.0,none/0")).unwrap();
        assert!(m.access.ports.is_empty() && m.timestamp == 1_795_475_593);
    }

    #[test]
    fn command_messages() {
        let m = parse(&plain(&fields(0, "0.0.0.0,wake nas; rm -rf /", ""), 43)).unwrap();
        assert_eq!(m.kind, MessageType::Command);
        assert_eq!(m.access.addr, None);
        assert!(m.access.ports.is_empty());
        assert_eq!(&m.command[..], b"wake nas; rm -rf /", "text kept literally");
        assert_eq!(m.nat, None);
        let m = parse(&plain(&fields(0, "10.213.0.2,a,b", ""), 43)).unwrap();
        assert_eq!(m.access.addr, Some(Ipv4Addr::new(10, 213, 0, 2)));
        assert_eq!(&m.command[..], b"a,b", "split at the first comma only");
        // The longest command text that fits: 192 bytes of message.
        let longest = format!("0.0.0.0,{}", "x".repeat(184));
        let m = parse(&plain(&fields(0, &longest, ""), 43)).unwrap();
        assert_eq!(m.command.len(), 184);
    }

    #[test]
    fn a_too_long_message_says_so() {
        // fwknop -C with a long command: refused for its length, not as a
        // malformed access message.
        let long = format!("0.0.0.0,{}", "x".repeat(185));
        let e = parse(&plain(&fields(0, &long, ""), 43)).unwrap_err();
        assert_eq!(e, Error::MessageTooLong);
        assert_eq!(
            e.to_string(),
            "message too long (over 256 base64 characters: a command text of up to about 180)"
        );
        let ports: Vec<String> = (1..=40).map(|p| format!("tcp/{p}")).collect();
        let many = format!("0.0.0.0,{}", ports.join(","));
        assert_eq!(
            parse(&plain(&fields(1, &many, ""), 43)),
            Err(Error::MessageTooLong)
        );
    }

    #[test]
    fn nat_messages_as_the_real_client_writes_them() {
        // fwknop -A tcp/2222 -N 192.168.1.10:22 -a 10.0.0.9 (2.6.10, --test -v).
        let f = "2107598760161773:cm9vdA:1795483074:3.0.0:2:MTAuMC4wLjksdGNwLzIyMjI:MTkyLjE2OC4xLjEwLDIy";
        let m = parse(&plain(f, 43)).unwrap();
        assert_eq!(m.kind, MessageType::NatAccess);
        assert_eq!(m.access.addr, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(m.access.ports, [PortSpec::tcp(2222)]);
        assert_eq!(
            m.nat,
            Some(NatTarget {
                addr: Ipv4Addr::new(192, 168, 1, 10),
                port: 22
            })
        );
        assert_eq!(m.client_timeout, None);
        let t = parse(&plain(
            &fields(
                4,
                "0.0.0.0,udp/5000",
                &format!(":{}:40", b64("10.1.0.5,53")),
            ),
            43,
        ))
        .unwrap();
        assert_eq!(t.kind, MessageType::ClientTimeoutNatAccess);
        assert_eq!(t.client_timeout, Some(40));
        assert_eq!(t.nat.unwrap().port, 53);
    }

    #[test]
    fn digest_and_field_checks() {
        let good = plain(&fields(1, "0.0.0.0,tcp/22", ""), 43);
        assert!(parse(&good).is_ok());
        let mut bad = good.clone();
        bad[20] ^= 1;
        assert_eq!(parse(&bad), Err(Error::DigestMismatch), "a field changed");
        let mut short = good.clone();
        short.pop();
        assert_eq!(parse(&short), Err(Error::DigestType));
        let mut bin = good.clone();
        bin[3] = 0;
        assert_eq!(parse(&bin), Err(Error::NotText));
        assert_eq!(parse(b"no colon"), Err(Error::Fields));
        let p = |f: &str| parse(&plain(f, 43));
        let m = b64("0.0.0.0,tcp/22");
        assert_eq!(
            p(&format!("123456789012345:cm9vdA:1:3.0.0:1:{m}")),
            Err(Error::Random)
        );
        assert_eq!(
            p(&format!("1234567890123456:c:1:3.0.0:1:{m}")),
            Err(Error::Username)
        );
        assert_eq!(
            p(&format!("1234567890123456:cm9vdA:x:3.0.0:1:{m}")),
            Err(Error::Timestamp)
        );
        assert_eq!(
            p(&format!("1234567890123456:cm9vdA:1::1:{m}")),
            Err(Error::Version)
        );
        assert_eq!(p("1234567890123456:cm9vdA:1:3.0.0:1"), Err(Error::Fields));
        assert_eq!(
            p("1234567890123456:cm9vdA:1:3.0.0:1:!!"),
            Err(Error::Message)
        );
    }

    #[test]
    fn junk_never_panics() {
        let mut rng = crate::test_rng::Rng(0xf00d);
        let base = plain(&fields(3, "10.0.0.1,tcp/22,udp/53", ":30"), 43);
        for _ in 0..3000 {
            let mut v = base.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(v.len());
                v[i] = b"0:aZ/+,.\x00\xff"[rng.below(10)];
            }
            v.truncate(rng.below(v.len() + 1));
            let _ = parse(&v);
        }
    }
}
