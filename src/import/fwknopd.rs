//! fwknopd's `access.conf` + `fwknopd.conf`, or OpenWrt's `/etc/config/fwknopd`, into postern UCI.
//!
//! `access.conf`: `NAME value` lines; each `SOURCE` starts a stanza, which
//! becomes a `config client` with the fwknop keys (`KEY`/`KEY_BASE64` →
//! `fwknop_key`, `HMAC_KEY`/`HMAC_KEY_BASE64` → `fwknop_hmac_key`,
//! `HMAC_DIGEST_TYPE` → `fwknop_hmac_type`), `OPEN_PORTS` → `list allow`,
//! `SOURCE` → `list source`, `FW_ACCESS_TIMEOUT` → `fwknop_timeout`,
//! `MAX_FW_TIMEOUT` → `max_duration`. `fwknopd.conf`: `PCAP_INTF` → `list
//! device`, `PCAP_FILTER` (`udp port N`) → `spa_port`, `MAX_SPA_PACKET_AGE` →
//! `max_skew`. OpenWrt's layout holds the same names as options of `config
//! access` and `config config` sections, and `config network` names the UCI
//! network (→ `list interface`). Stanzas postern cannot serve (no HMAC key,
//! GPG only, no `OPEN_PORTS`) are left out with a warning; every other name
//! without an equivalent is warned about and ignored.

use super::uci_out::UciOut;
use super::{section_name, Converted, Warnings};
use crate::config::uci::{self, Value};
use crate::spa::fwknop::{HmacType, MAX_HMAC_KEY_LEN, MAX_KEY_LEN};

/// One `NAME value` setting with its line.
#[derive(Debug, Clone)]
struct Var {
    name: String,
    value: String,
    line: usize,
}

/// An access stanza (from `SOURCE` to the next) or an OpenWrt `config access`.
#[derive(Debug, Default)]
struct Stanza {
    name: Option<String>,
    line: usize,
    vars: Vec<Var>,
}

impl Stanza {
    fn get(&self, name: &str) -> Option<&Var> {
        self.vars.iter().find(|v| v.name == name)
    }
}

/// Everything read from the input files.
#[derive(Default)]
struct Input {
    stanzas: Vec<(String, Stanza)>,
    conf: Vec<(String, Var)>,
    networks: Vec<String>,
}

/// Converts fwknopd's configuration. `access` is `(file name, text)` of
/// `access.conf` or of OpenWrt's `/etc/config/fwknopd`; `conf` the optional
/// `fwknopd.conf`. Errors only when the input cannot be read as either form.
pub fn fwknopd(access: (&str, &str), conf: Option<(&str, &str)>) -> Result<Converted, String> {
    let mut warn: Vec<String> = Vec::new();
    let mut input = Input::default();
    if is_uci(access.1) {
        read_openwrt(access.0, access.1, &mut input, &mut warn)?;
    } else {
        read_access(access.0, access.1, &mut input, &mut warn);
    }
    if let Some((file, text)) = conf {
        read_conf(file, text, &mut input, &mut warn);
    }
    let mut out = UciOut::default();
    let mut files = access.0.to_string();
    if let Some((f, _)) = conf {
        files = format!("{files} and {f}");
    }
    out.comment(&format!(
        "Converted by 'postern import fwknopd' from {files}."
    ));
    main_section(&input, &mut out, &mut warn);
    let mut index = 0;
    for (file, s) in &input.stanzas {
        index += 1;
        let mut w = Warnings::new(file);
        client(&mut w, s, index, &mut out);
        warn.extend(w.list);
    }
    if input.stanzas.is_empty() {
        warn.push(format!(
            "{}: no access stanza (SOURCE …) found: no clients converted",
            access.0
        ));
    }
    Ok(Converted {
        uci: out.finish(),
        warnings: warn,
    })
}

/// True for UCI text (`config …` as the first statement).
fn is_uci(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("config ") || l == "config")
}

/// `NAME value` lines: `(name, value, line)`, comments and blank lines skipped.
fn lines(text: &str) -> impl Iterator<Item = (String, String, usize)> + '_ {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let (name, value) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        Some((name.to_ascii_uppercase(), value.trim().to_string(), i + 1))
    })
}

fn read_access(file: &str, text: &str, input: &mut Input, warn: &mut Vec<String>) {
    let mut w = Warnings::new(file);
    let mut current: Option<Stanza> = None;
    for (name, value, line) in lines(text) {
        if name.starts_with('%') {
            w.push(
                line,
                format!("{name} is not followed: import the included file too"),
            );
            continue;
        }
        if name == "SOURCE" {
            if let Some(s) = current.take() {
                input.stanzas.push((file.to_string(), s));
            }
            current = Some(Stanza {
                name: None,
                line,
                vars: Vec::new(),
            });
        }
        match current.as_mut() {
            Some(s) => s.vars.push(Var { name, value, line }),
            None => w.push(
                line,
                format!("{name} before the first SOURCE line: ignored"),
            ),
        }
    }
    if let Some(s) = current {
        input.stanzas.push((file.to_string(), s));
    }
    warn.extend(w.list);
}

fn read_conf(file: &str, text: &str, input: &mut Input, warn: &mut Vec<String>) {
    let mut w = Warnings::new(file);
    for (name, value, line) in lines(text) {
        if name.starts_with('%') {
            w.push(line, format!("{name} is not followed"));
            continue;
        }
        input
            .conf
            .push((file.to_string(), Var { name, value, line }));
    }
    warn.extend(w.list);
}

fn read_openwrt(
    file: &str,
    text: &str,
    input: &mut Input,
    warn: &mut Vec<String>,
) -> Result<(), String> {
    let sections = uci::parse(file, text).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut w = Warnings::new(file);
    let mut uci_enabled = false;
    for s in &sections {
        let vars = || {
            s.options.iter().map(|e| Var {
                name: e.name.to_ascii_uppercase(),
                value: match &e.value {
                    Value::Single(v) => v.clone(),
                    Value::List(v) => v.join(", "),
                },
                line: e.line,
            })
        };
        match s.kind.as_str() {
            "global" => {
                uci_enabled = s.get("uci_enabled").is_some_and(|e| {
                    matches!(&e.value, Value::Single(v) if ["1", "on", "true", "yes", "enabled"].contains(&v.as_str()))
                });
            }
            "network" => {
                if let Some(e) = s.get("network") {
                    if let Value::Single(v) = &e.value {
                        input.networks.push(v.clone());
                    }
                }
            }
            "access" => input.stanzas.push((
                file.to_string(),
                Stanza {
                    name: s.name.clone(),
                    line: s.line,
                    vars: vars().collect(),
                },
            )),
            "config" => input.conf.extend(vars().map(|v| (file.to_string(), v))),
            other => w.push(
                s.line,
                format!("section type '{other}' has no postern equivalent"),
            ),
        }
    }
    if !uci_enabled {
        w.push(
            1,
            "option uci_enabled is not set in config global: OpenWrt's fwknopd reads \
             /etc/fwknop/access.conf and fwknopd.conf instead; if those hold your keys, import them",
        );
    }
    warn.extend(w.list);
    Ok(())
}

fn main_section(input: &Input, out: &mut UciOut, warn: &mut Vec<String>) {
    out.section("postern", "main");
    let names: Vec<&str> = input.networks.iter().map(String::as_str).collect();
    out.list("interface", names.iter().copied());
    for (file, v) in &input.conf {
        let mut w = Warnings::new(file);
        let line = v.line;
        match v.name.as_str() {
            "PCAP_INTF" if !input.networks.is_empty() => w.push(
                line,
                "PCAP_INTF: the UCI network is used instead (as OpenWrt's fwknopd does)",
            ),
            "PCAP_INTF" => out.list("device", [v.value.as_str()]),
            "PCAP_FILTER" => match udp_port(&v.value) {
                Some(p) => out.option("spa_port", &p.to_string()),
                None => w.push(
                    line,
                    format!(
                        "PCAP_FILTER '{}': postern takes 'option spa_port N' only",
                        v.value
                    ),
                ),
            },
            "MAX_SPA_PACKET_AGE" => match v.value.parse::<u64>() {
                Ok(n) if (1..=86_400).contains(&n) => out.option("max_skew", &n.to_string()),
                _ => w.push(
                    line,
                    format!(
                        "MAX_SPA_PACKET_AGE '{}': not 1 to 86400 s, ignored",
                        v.value
                    ),
                ),
            },
            "ENABLE_SPA_PACKET_AGING" | "ENABLE_DIGEST_PERSISTENCE" if yes(&v.value) => {}
            "ENABLE_SPA_PACKET_AGING" => w.push(
                line,
                "ENABLE_SPA_PACKET_AGING N: postern always checks the timestamp (max_skew)",
            ),
            "ENABLE_DIGEST_PERSISTENCE" => w.push(
                line,
                "ENABLE_DIGEST_PERSISTENCE N: postern always keeps its replay cache",
            ),
            other => w.push(line, format!("{other} has no postern equivalent: ignored")),
        }
        warn.extend(w.list);
    }
}

fn yes(v: &str) -> bool {
    v.eq_ignore_ascii_case("y") || v.eq_ignore_ascii_case("yes") || v == "1"
}

/// The port of a `udp port N` / `udp dst port N` pcap filter.
fn udp_port(filter: &str) -> Option<u16> {
    let words: Vec<&str> = filter.split_whitespace().collect();
    match words.as_slice() {
        ["udp", "port", p] | ["udp", "dst", "port", p] => crate::port::parse_port(p),
        _ => None,
    }
}

/// Writes one client, or leaves the stanza out with a warning.
fn client(w: &mut Warnings, s: &Stanza, index: usize, out: &mut UciOut) {
    let fallback = format!("fwknop_{index}");
    let name = s
        .name
        .as_deref()
        .map_or(fallback.clone(), |n| section_name(n, &fallback));
    let skip = |w: &mut Warnings, why: &str| {
        w.push(s.line, format!("access stanza {index} left out: {why}"));
    };
    let Some(key) = enc_key(w, s) else {
        return skip(w, "no usable KEY or KEY_BASE64 (postern takes Rijndael + HMAC fwknop packets only; GPG is not supported)");
    };
    let Some(hmac) = hmac_key(w, s) else {
        return skip(w, "no usable HMAC_KEY or HMAC_KEY_BASE64 (postern takes fwknop packets with an HMAC only: the client needs --use-hmac)");
    };
    let ports = match s.get("OPEN_PORTS") {
        Some(v) => match allow_list(&v.value) {
            Some(p) => p,
            None => return skip(w, &format!("OPEN_PORTS '{}' is not proto/port, …", v.value)),
        },
        None => {
            return skip(w, "no OPEN_PORTS: fwknopd let this key open any port; postern needs them listed (list allow)")
        }
    };
    let hmac_type = match s.get("HMAC_DIGEST_TYPE") {
        None => None,
        Some(v) => match HmacType::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&v.value))
        {
            Some((n, _)) => Some(*n),
            None => {
                return skip(
                    w,
                    &format!(
                        "HMAC_DIGEST_TYPE '{}' is not supported (sha1, sha256, sha384, sha512)",
                        v.value
                    ),
                )
            }
        },
    };
    let secs = |w: &mut Warnings, v: &Var| match v.value.parse::<u64>() {
        Ok(n) if (1..=86_400).contains(&n) => Some(n),
        _ => {
            w.push(
                v.line,
                format!("{} '{}': not 1 to 86400 s, ignored", v.name, v.value),
            );
            None
        }
    };
    let access = s.get("FW_ACCESS_TIMEOUT").and_then(|v| secs(w, v));
    let max = s.get("MAX_FW_TIMEOUT").and_then(|v| secs(w, v));
    // fwknopd's defaults: 30 s, capped at 300 s; a longer access timeout raises the cap.
    let max = max.unwrap_or(300).max(access.unwrap_or(0));
    let sources = match s.get("SOURCE") {
        Some(v) => source_list(w, v),
        None => Vec::new(),
    };

    out.section("client", &name);
    out.option("fwknop_key", &key);
    out.option("fwknop_hmac_key", &hmac);
    if let Some(t) = hmac_type {
        out.option("fwknop_hmac_type", t);
    }
    out.list("allow", ports.iter().map(String::as_str));
    out.option("max_duration", &max.to_string());
    if let Some(a) = access {
        out.option("fwknop_timeout", &a.to_string());
    }
    out.list("source", sources.iter().map(String::as_str));
    out.hint("fwknopd opened for any address a packet named (-a); postern only for the packet's");
    out.hint("source unless you add: option allow_other_address '1'");

    for v in &s.vars {
        let known = [
            "SOURCE",
            "OPEN_PORTS",
            "KEY",
            "KEY_BASE64",
            "HMAC_KEY",
            "HMAC_KEY_BASE64",
            "HMAC_DIGEST_TYPE",
            "FW_ACCESS_TIMEOUT",
            "MAX_FW_TIMEOUT",
            "USE_HMAC",
        ];
        match v.name.as_str() {
            n if known.contains(&n) => {}
            "ENCRYPTION_MODE" if v.value.eq_ignore_ascii_case("cbc") => {}
            "REQUIRE_SOURCE_ADDRESS" => w.push(
                v.line,
                "REQUIRE_SOURCE_ADDRESS: postern opens for the packet's source (-s or -a with the same address); other addresses only with allow_other_address",
            ),
            n if n.starts_with("GPG_") => w.push(v.line, format!("{n}: GPG is not supported, ignored")),
            n => w.push(v.line, format!("{n} has no postern equivalent: ignored")),
        }
    }
}

/// The encryption key as base64 (from `KEY_BASE64`, or `KEY` encoded).
fn enc_key(w: &mut Warnings, s: &Stanza) -> Option<String> {
    secret(w, s, "KEY_BASE64", "KEY", MAX_KEY_LEN)
}

/// The HMAC key as base64 (from `HMAC_KEY_BASE64`, or `HMAC_KEY` encoded).
fn hmac_key(w: &mut Warnings, s: &Stanza) -> Option<String> {
    secret(w, s, "HMAC_KEY_BASE64", "HMAC_KEY", MAX_HMAC_KEY_LEN)
}

fn secret(w: &mut Warnings, s: &Stanza, b64: &str, raw: &str, max: usize) -> Option<String> {
    if let Some(v) = s.get(b64) {
        return match crate::base64::decode(&v.value) {
            Ok(b) if (1..=max).contains(&b.len()) => {
                if b.len() < crate::config::typed::MIN_FWKNOP_KEY_BYTES {
                    w.push(
                        v.line,
                        format!(
                            "{b64} is weak: only {} bytes (fewer than {}), it can be guessed offline \
                             from one captured packet; make new keys with 'fwknop --key-gen'",
                            b.len(),
                            crate::config::typed::MIN_FWKNOP_KEY_BYTES
                        ),
                    );
                }
                Some(v.value.clone())
            }
            Ok(b) => {
                w.push(
                    v.line,
                    format!(
                        "{b64} decodes to {} bytes, postern takes 1 to {max}",
                        b.len()
                    ),
                );
                None
            }
            Err(e) => {
                w.push(v.line, format!("{b64} is not base64: {e}"));
                None
            }
        };
    }
    let v = s.get(raw)?;
    if v.value == "__CHANGEME__" || v.value == "CHANGEME" || v.value.is_empty() {
        w.push(v.line, format!("{raw} is the placeholder '{}'", v.value));
        return None;
    }
    if v.value.len() > max {
        w.push(
            v.line,
            format!("{raw} is {} bytes, postern takes 1 to {max}", v.value.len()),
        );
        return None;
    }
    // A passphrase someone typed, not random bytes: converted as is (the
    // client keeps working), flagged so that it gets replaced.
    w.push(
        v.line,
        format!(
            "{raw} is a passphrase, weak: typed text can be guessed offline from one \
             captured packet; converted as is, but make new keys with 'fwknop --key-gen' \
             ({b64}) and give them to the client"
        ),
    );
    Some(crate::base64::encode(v.value.as_bytes()))
}

/// `tcp/22, udp/53` → `["tcp:22", "udp:53"]`.
fn allow_list(value: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (proto, port) = item.split_once('/')?;
        let proto = proto.to_ascii_lowercase();
        if proto != "tcp" && proto != "udp" {
            return None;
        }
        let port = crate::port::parse_port(port.trim())?;
        out.push(format!("{proto}:{port}"));
    }
    (!out.is_empty()).then_some(out)
}

/// `ANY` → none; `192.0.2.1, 10.0.0.0/8` → networks (netmask forms are warned about).
fn source_list(w: &mut Warnings, v: &Var) -> Vec<String> {
    let mut out = Vec::new();
    for item in v.value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item.eq_ignore_ascii_case("any") {
            return Vec::new();
        }
        match item.parse::<crate::cidr::Cidr>() {
            Ok(n) => out.push(n.to_string()),
            Err(_) => w.push(
                v.line,
                format!("SOURCE item '{item}' is not ADDR or ADDR/LEN: left out"),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use core::time::Duration;

    const ACCESS: &str = include_str!("testdata/access.conf");
    const CONF: &str = include_str!("testdata/fwknopd.conf");
    const OPENWRT: &str = include_str!("testdata/openwrt-fwknopd");

    #[test]
    fn access_and_fwknopd_conf_convert_to_a_valid_config() {
        let c = fwknopd(("access.conf", ACCESS), Some(("fwknopd.conf", CONF))).unwrap();
        let cfg = parse_str("converted", &c.uci).unwrap_or_else(|e| panic!("{e:?}\n{}", c.uci));
        assert_eq!(cfg.main.spa_port, 62202);
        assert_eq!(cfg.main.max_skew, Duration::from_secs(90));
        assert_eq!(cfg.main.devices, ["eth1"]);
        let names: Vec<&str> = cfg.clients.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["fwknop_1", "fwknop_2"]);
        let laptop = &cfg.clients[0];
        assert_eq!(laptop.key, None);
        let f = laptop.fwknop.as_ref().unwrap();
        assert_eq!(
            f.keys.key.as_bytes(),
            crate::base64::decode("DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=").unwrap()
        );
        assert_eq!(f.keys.hmac_type, HmacType::Sha256);
        assert_eq!(f.timeout, Duration::from_secs(60));
        assert_eq!(laptop.max_duration, Duration::from_secs(600));
        assert_eq!(
            laptop.allow,
            [
                crate::port::PortSpec::tcp(22),
                crate::port::PortSpec::udp(53)
            ]
        );
        assert_eq!(laptop.sources.len(), 2);
        assert!(!laptop.allow_other_address, "the safe default");
        let phone = &cfg.clients[1];
        let f = phone.fwknop.as_ref().unwrap();
        assert_eq!(
            f.keys.key.as_bytes(),
            b"a passphrase key",
            "KEY: the raw text"
        );
        assert_eq!(f.keys.hmac_key.as_bytes(), b"an hmac passphrase");
        assert_eq!(f.keys.hmac_type, HmacType::Sha512);
        assert_eq!(f.timeout, Duration::from_secs(30));
        assert!(phone.sources.is_empty(), "ANY");

        let warned = |needle: &str| c.warnings.iter().any(|w| w.contains(needle));
        for needle in [
            "KEY is a passphrase, weak: typed text can be guessed offline from one captured packet; converted as is, but make new keys with 'fwknop --key-gen' (KEY_BASE64)",
            "HMAC_KEY is a passphrase, weak:",
            "access.conf:9: REQUIRE_USERNAME has no postern equivalent: ignored",
            "access.conf:10: REQUIRE_SOURCE_ADDRESS",
            "access.conf:20: GPG_DECRYPT_ID: GPG is not supported",
            "access stanza 3 left out: no usable HMAC_KEY",
            "access stanza 4 left out: no OPEN_PORTS",
            "fwknopd.conf:5: ENABLE_IPT_FORWARDING has no postern equivalent: ignored",
            "fwknopd.conf:6: ENABLE_SPA_PACKET_AGING N",
        ] {
            assert!(warned(needle), "{needle} in {:#?}", c.warnings);
        }
        assert!(
            !warned("KEY_BASE64 has no"),
            "known names are not warned about"
        );
        assert!(
            !warned("access.conf:4: KEY_BASE64 is weak") && !warned("access.conf:5: HMAC"),
            "random 32 and 64 bytes"
        );
        assert!(warned("access.conf:25: KEY_BASE64 is weak: only 9 bytes"));
        assert!(!warned("OPEN_PORTS has no") && !warned("MAX_FW_TIMEOUT has no"));
        assert!(!c.uci.contains("GPG"), "{}", c.uci);
    }

    #[test]
    fn openwrt_uci_layout() {
        let c = fwknopd(("/etc/config/fwknopd", OPENWRT), None).unwrap();
        let cfg = parse_str("converted", &c.uci).unwrap_or_else(|e| panic!("{e:?}\n{}", c.uci));
        assert_eq!(cfg.main.interfaces, ["wan"]);
        assert!(
            cfg.main.devices.is_empty(),
            "the network wins over PCAP_INTF"
        );
        assert_eq!(cfg.main.max_skew, Duration::from_secs(60));
        assert_eq!(cfg.clients.len(), 1);
        assert_eq!(cfg.clients[0].name, "router_ssh");
        assert_eq!(cfg.clients[0].allow, [crate::port::PortSpec::tcp(22)]);
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("PCAP_INTF: the UCI network is used")));
        // The placeholder stanza of OpenWrt's default file is left out.
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("KEY is the placeholder 'CHANGEME'")),
            "{:#?}",
            c.warnings
        );

        let disabled = OPENWRT.replace("option uci_enabled '1'", "option uci_enabled '0'");
        let c = fwknopd(("/etc/config/fwknopd", &disabled), None).unwrap();
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("uci_enabled is not set")));
    }

    #[test]
    fn odd_inputs_warn_and_never_fail() {
        let c = fwknopd(("a", "OPEN_PORTS tcp/22\n%include /etc/x\n"), None).unwrap();
        assert!(c.warnings[0].starts_with("a:1: OPEN_PORTS before the first SOURCE"));
        assert!(c.warnings.iter().any(|w| w.contains("no access stanza")));
        parse_str("c", &c.uci).unwrap();
        assert!(fwknopd(("a", "config access\n\toption 'unterminated\n"), None).is_err());
        assert_eq!(udp_port("udp port 62201"), Some(62201));
        assert_eq!(udp_port("udp dst port 1"), Some(1));
        assert_eq!(udp_port("tcp port 1"), None);
        assert_eq!(
            allow_list("tcp/22,udp/53"),
            Some(vec!["tcp:22".into(), "udp:53".into()])
        );
        assert_eq!(allow_list("icmp/0"), None);
        // Random bytes, but too few of them.
        let short = crate::base64::encode(&[5; 12]);
        let c = fwknopd(
            (
                "a",
                &format!(
                    "SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {short}\nHMAC_KEY_BASE64 {}\n",
                    crate::base64::encode(&[6; 32])
                ),
            ),
            None,
        )
        .unwrap();
        assert!(
            c.warnings.iter().any(|w| w.starts_with(
                "a:3: KEY_BASE64 is weak: only 12 bytes (fewer than 16), it can be guessed offline"
            )),
            "{:#?}",
            c.warnings
        );
        assert!(!c
            .warnings
            .iter()
            .any(|w| w.contains("HMAC_KEY_BASE64 is weak")));
        parse_str("c", &c.uci).unwrap();
    }
}
