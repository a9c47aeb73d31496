//! The `fwknop_*` options of `config client`.
//!
//! Owns their rules: `fwknop_key` (base64 of the 1–32-byte Rijndael key,
//! fwknopd's `KEY_BASE64`) and `fwknop_hmac_key` (base64 of 1–128 bytes,
//! `HMAC_KEY_BASE64`) come together (postern takes fwknop packets with an
//! HMAC only), must differ, and no two enabled clients share an HMAC key;
//! `fwknop_hmac_type` (default sha256) and `fwknop_timeout` (seconds a
//! request without `fwknop -f` opens, default 30 or `max_duration` if
//! smaller, at most `max_duration`) need the keys.
//!
//! Keys shorter than [`MIN_KEY_BYTES`] are accepted, with a warning
//! ([`weak_keys`]: `postern check` and the daemon print it): fwknop clients
//! configured with a typed passphrase (fwknopd's `KEY`) are common, and
//! refusing them would turn a migration into a lock-out; the warning says
//! what the risk is and how to replace them.

use core::time::Duration;

use super::{get_choice, get_secs, single, CheckedClient, Errors};
use crate::config::uci::{Entry, Section};
use crate::config::{FwknopClient, DEFAULT_FWKNOP_TIMEOUT};
use crate::spa::fwknop::{HmacType, Keys, Secret};

/// The client's fwknop settings: `Some(None)` when it has none, `None` after an error.
pub(super) fn options(
    cx: &mut Errors,
    s: &Section,
    max_duration: Option<Duration>,
) -> Option<Option<FwknopClient>> {
    let before = cx.count();
    let key = s.get("fwknop_key");
    let hmac = s.get("fwknop_hmac_key");
    let (key, hmac) = match (key, hmac) {
        (None, None) => {
            for name in ["fwknop_hmac_type", "fwknop_timeout"] {
                if let Some(e) = s.get(name) {
                    let msg = format!("{name} needs option fwknop_key and fwknop_hmac_key");
                    cx.push(e.line, msg);
                }
            }
            return (cx.count() == before).then_some(None);
        }
        (Some(k), None) => {
            let msg = "fwknop_key needs option fwknop_hmac_key: postern takes fwknop packets \
                       with an HMAC only (fwknop --key-gen makes both; the client needs --use-hmac)";
            cx.push(k.line, msg.to_string());
            return None;
        }
        (None, Some(h)) => {
            cx.push(
                h.line,
                "fwknop_hmac_key needs option fwknop_key".to_string(),
            );
            return None;
        }
        (Some(k), Some(h)) => (secret(cx, k), secret(cx, h)),
    };
    let hmac_type = s
        .get("fwknop_hmac_type")
        .map_or(Some(HmacType::Sha256), |e| {
            get_choice(cx, e, &HmacType::NAMES)
        });
    let max = max_duration.map_or(86_400, |d| d.as_secs());
    let timeout = match s.get("fwknop_timeout") {
        Some(e) => get_secs(cx, e, 1, 86_400).and_then(|t| {
            if t.as_secs() > max {
                let msg = format!(
                    "fwknop_timeout {} s is longer than the client's max_duration {max} s",
                    t.as_secs()
                );
                cx.push(e.line, msg);
                return None;
            }
            Some(t)
        }),
        None => Some(Duration::from_secs(DEFAULT_FWKNOP_TIMEOUT.min(max))),
    };
    let (key, hmac_key) = (key?, hmac?);
    if key.as_bytes() == hmac_key.as_bytes() {
        let line = s.get("fwknop_hmac_key").map_or(s.line, |e| e.line);
        cx.push(
            line,
            "fwknop_hmac_key must differ from fwknop_key".to_string(),
        );
        return None;
    }
    Some(Some(FwknopClient {
        keys: Keys {
            key,
            hmac_key,
            hmac_type: hmac_type?,
        },
        timeout: timeout?,
    }))
}

/// Keys shorter than this many bytes are warned about: one captured packet
/// lets anyone test guesses of them offline (its HMAC checks a guessed HMAC
/// key, its plaintext's fixed layout a guessed encryption key), so they must
/// be too many to try. 16 random bytes are; a typed passphrase of 15
/// characters is not.
pub const MIN_KEY_BYTES: usize = 16;

/// One warning per enabled client whose fwknop key or HMAC key is shorter than
/// [`MIN_KEY_BYTES`] (never showing the key).
pub fn weak_keys(cfg: &crate::config::Config) -> Vec<String> {
    let mut out = Vec::new();
    for c in cfg.active_clients() {
        let Some(f) = &c.fwknop else { continue };
        for (name, len) in [
            ("fwknop_key", f.keys.key.as_bytes().len()),
            ("fwknop_hmac_key", f.keys.hmac_key.as_bytes().len()),
        ] {
            if len < MIN_KEY_BYTES {
                out.push(format!(
                    "client '{}': {name} is only {len} byte(s) (fewer than {MIN_KEY_BYTES}): \
                     anyone who captures one of its packets can guess it offline; \
                     make new keys with 'fwknop --key-gen' and give them to the client",
                    c.name
                ));
            }
        }
    }
    out
}

fn secret<const N: usize>(cx: &mut Errors, e: &Entry) -> Option<Secret<N>> {
    let v = single(cx, e)?;
    match Secret::from_base64(v) {
        Ok(k) => Some(k),
        Err(err) => {
            // Never echo the value: it is a secret.
            cx.push(e.line, format!("{} is not valid: {err}", e.name));
            None
        }
    }
}

/// Two enabled clients may not share an HMAC key: it names the client.
pub(super) fn same_hmac_key(cx: &mut Errors, c: &CheckedClient, earlier: &[&CheckedClient]) {
    let Some(f) = &c.client.fwknop else { return };
    let same = earlier.iter().find(|d| {
        d.client
            .fwknop
            .as_ref()
            .is_some_and(|g| g.keys.hmac_key == f.keys.hmac_key)
    });
    if let Some(d) = same {
        let msg = format!(
            "client '{}' has the same fwknop_hmac_key as client '{}' (line {}): give each client its own keys",
            c.client.name, d.client.name, d.fwknop_line
        );
        cx.push(c.fwknop_line, msg);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;
    use crate::spa::fwknop::HmacType;
    use core::time::Duration;

    const K: &str = "DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=";
    const H: &str =
        "dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==";

    fn client(extra: &str) -> String {
        format!("config client 'phone'\n\tlist allow 'tcp:22'\n{extra}")
    }

    fn errs(text: &str) -> Vec<String> {
        parse_str("f", text)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn fwknop_only_client() {
        let c = parse_str(
            "f",
            &client(&format!(
                "\toption fwknop_key '{K}'\n\toption fwknop_hmac_key '{H}'\n\toption fwknop_hmac_type sha512\n\toption allow_other_address 1\n"
            )),
        )
        .unwrap();
        let cl = &c.clients[0];
        assert_eq!(cl.key, None);
        assert!(cl.allow_other_address);
        let f = cl.fwknop.as_ref().unwrap();
        assert_eq!(f.keys.hmac_type, HmacType::Sha512);
        assert_eq!(f.keys.key.as_bytes().len(), 32);
        assert_eq!(f.keys.hmac_key.as_bytes().len(), 64);
        assert_eq!(f.timeout, Duration::from_secs(30));
        assert_eq!(c.spa_port(), Some(62201), "fwknop clients use the SPA port");
        let s = crate::config::typed::summary(&c);
        assert!(
            s.contains("phone [enabled]: may open tcp:22 for up to 300s, from anywhere, also for other addresses; fwknop keys only (hmac sha512, 30s without -f)"),
            "{s}"
        );
        let short = parse_str(
            "f",
            &client(&format!(
                "\toption max_duration 10\n\toption fwknop_key '{K}'\n\toption fwknop_hmac_key '{H}'\n"
            )),
        )
        .unwrap();
        assert_eq!(
            short.clients[0].fwknop.as_ref().unwrap().timeout,
            Duration::from_secs(10),
            "default capped by max_duration"
        );
    }

    #[test]
    fn short_keys_load_with_a_warning() {
        // A typed passphrase (fwknopd's KEY), 8 bytes, and a short HMAC key.
        let short = crate::base64::encode(b"passw0rd");
        let hmac15 = crate::base64::encode(&[9; 15]);
        let c = parse_str(
            "f",
            &client(&format!(
                "\toption fwknop_key '{short}'\n\toption fwknop_hmac_key '{hmac15}'\n"
            )),
        )
        .unwrap();
        let w = super::weak_keys(&c);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("client 'phone': fwknop_key is only 8 byte(s) (fewer than 16): anyone who captures one of its packets can guess it offline;"), "{w:?}");
        assert!(
            w[1].starts_with("client 'phone': fwknop_hmac_key is only 15 byte(s)"),
            "{w:?}"
        );
        assert!(!w.concat().contains(&short), "never shows the key");
        // 16 bytes and more: no warning; disabled clients: none either.
        let k16 = crate::base64::encode(&[7; 16]);
        let ok = parse_str(
            "f",
            &client(&format!(
                "\toption fwknop_key '{k16}'\n\toption fwknop_hmac_key '{H}'\n"
            )),
        )
        .unwrap();
        assert!(super::weak_keys(&ok).is_empty());
        let off = parse_str(
            "f",
            &client(&format!(
                "\toption enabled 0\n\toption fwknop_key '{short}'\n\toption fwknop_hmac_key '{hmac15}'\n"
            )),
        )
        .unwrap();
        assert!(super::weak_keys(&off).is_empty());
    }

    #[test]
    fn fwknop_errors_name_the_line() {
        assert_eq!(
            errs(&client("")),
            ["f:1: client 'phone' has no key: add option key '…' (make one with 'postern keygen'), or fwknop_key and fwknop_hmac_key for fwknop clients"]
        );
        assert_eq!(
            errs(&client(&format!("\toption fwknop_key '{K}'\n"))),
            ["f:3: fwknop_key needs option fwknop_hmac_key: postern takes fwknop packets with an HMAC only (fwknop --key-gen makes both; the client needs --use-hmac)"]
        );
        assert_eq!(
            errs(&client(&format!("\toption fwknop_hmac_key '{H}'\n"))),
            ["f:3: fwknop_hmac_key needs option fwknop_key"]
        );
        let long_key = crate::base64::encode(&[1; 33]);
        assert_eq!(
            errs(&client(&format!(
                "\toption fwknop_key '{long_key}'\n\toption fwknop_hmac_key '{H}'\n"
            ))),
            ["f:3: fwknop_key is not valid: decodes to 33 bytes, this key has 1 to 32 (make keys with 'fwknop --key-gen')"]
        );
        let long_hmac = crate::base64::encode(&[1; 129]);
        assert_eq!(
            errs(&client(&format!(
                "\toption fwknop_key '{K}'\n\toption fwknop_hmac_key '{long_hmac}'\n"
            ))),
            ["f:4: fwknop_hmac_key is not valid: decodes to 129 bytes, this key has 1 to 128 (make keys with 'fwknop --key-gen')"]
        );
        assert_eq!(
            errs(&client(&format!(
                "\toption fwknop_key '{K}'\n\toption fwknop_hmac_key '{K}'\n"
            ))),
            ["f:4: fwknop_hmac_key must differ from fwknop_key"]
        );
        assert_eq!(
            errs(&client(&format!(
                "\toption fwknop_key '{K}'\n\toption fwknop_hmac_key '{H}'\n\toption fwknop_hmac_type md5\n"
            ))),
            ["f:5: fwknop_hmac_type 'md5' is not valid (expected one of: sha1, sha256, sha384, sha512)"]
        );
        assert_eq!(
            errs(&client(&format!(
                "\toption fwknop_key '{K}'\n\toption fwknop_hmac_key '{H}'\n\toption fwknop_timeout 600\n"
            ))),
            ["f:5: fwknop_timeout 600 s is longer than the client's max_duration 300 s"]
        );
        assert_eq!(
            errs(&client("\toption key 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc='\n\toption fwknop_timeout 5\n")),
            ["f:4: fwknop_timeout needs option fwknop_key and fwknop_hmac_key"]
        );
        let two = format!(
            "{}config client 'tablet'\n\tlist allow 'tcp:22'\n\toption fwknop_key 'AAAA'\n\toption fwknop_hmac_key '{H}'\n",
            client(&format!("\toption fwknop_key '{K}'\n\toption fwknop_hmac_key '{H}'\n"))
        );
        assert_eq!(
            errs(&two),
            ["f:8: client 'tablet' has the same fwknop_hmac_key as client 'phone' (line 4): give each client its own keys"]
        );
    }
}
