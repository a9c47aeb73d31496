//! `config peer` sections: the other router(s) of a VRRP pair.
//!
//! A peer needs a unicast `address` and a `key`; every enabled peer uses
//! the same `port`, `source` and `interface` (one socket serves them all), which is not
//! the SPA port; two peers never share an address; at most [`MAX_PEERS`].

use core::net::IpAddr;

use super::{get_abs_path, get_bool, get_key, get_port, section_label, single, Errors};
use crate::config::peer::{Peer, DEFAULT_PEER_PORT, MAX_PEERS};
use crate::config::uci::{Entry, Section};
use crate::config::Main;

/// Options of `config peer`.
pub(super) const PEER_OPTIONS: &[&str] = &[
    "enabled",
    "address",
    "key",
    "key_file",
    "port",
    "source",
    "interface",
];

fn get_unicast(cx: &mut Errors, e: &Entry) -> Option<IpAddr> {
    let v = single(cx, e)?;
    match v.parse::<IpAddr>() {
        Ok(a) if !(a.is_unspecified() || a.is_multicast() || a.is_loopback()) => Some(a),
        _ => {
            let msg = format!("{} '{v}' is not a unicast IP address", e.name);
            cx.push(e.line, msg);
            None
        }
    }
}

/// A `config peer` section.
pub(super) fn peer(cx: &mut Errors, s: &Section, index: usize) -> Option<Peer> {
    let label = section_label(s, index);
    let before = cx.count();
    super::check_names(cx, s, &label, PEER_OPTIONS);
    let opt = |n: &str| s.get(n);
    let enabled = opt("enabled").map_or(Some(true), |e| get_bool(cx, e));
    let address = match opt("address") {
        Some(e) => get_unicast(cx, e),
        None => {
            cx.push(
                s.line,
                format!("{label} needs option address: the other router's address"),
            );
            None
        }
    };
    let key = match opt("key") {
        Some(e) => get_key(cx, e).map(Some),
        None => Some(None),
    };
    let key_file = match opt("key_file") {
        Some(e) if opt("key").is_some() => {
            cx.push(e.line, "give key or key_file, not both".to_string());
            None
        }
        Some(e) => get_abs_path(cx, e).map(Some),
        None => Some(None),
    };
    if opt("key").is_none() && opt("key_file").is_none() {
        let msg = format!(
            "{label} needs option key (or key_file): the same 32-byte base64 key on both routers (make one with 'postern keygen')"
        );
        cx.push(s.line, msg);
    }
    let port = opt("port").map_or(Some(DEFAULT_PEER_PORT), |e| get_port(cx, e));
    let source = match opt("source") {
        Some(e) => get_unicast(cx, e).map(Some),
        None => Some(None),
    };
    let interface = match opt("interface") {
        Some(e) => single(cx, e).and_then(|v| {
            if super::is_device_name(v) {
                Some(Some(v.to_string()))
            } else {
                let msg = format!("interface '{v}' is not a device name (1-15 characters without spaces, '/' or ':')");
                cx.push(e.line, msg);
                None
            }
        }),
        None => Some(None),
    };
    if let (Some(a), Some(Some(src))) = (address, source) {
        if a.is_ipv4() != src.is_ipv4() {
            let line = opt("source").map_or(s.line, |e| e.line);
            cx.push(
                line,
                format!("source {src} and address {a} are not of the same family"),
            );
        }
    }
    if cx.count() != before {
        return None;
    }
    Some(Peer {
        name: s
            .name
            .clone()
            .unwrap_or_else(|| super::anon_name(&s.kind, index)),
        enabled: enabled?,
        address: address?,
        key: key?,
        key_file: key_file?,
        key_line: opt("key").or(opt("key_file")).map_or(s.line, |e| e.line),
        port: port?,
        source: source?,
        interface: interface?,
        line: s.line,
    })
}

/// Checks across the enabled peers (see the module docs).
pub(super) fn cross_check(cx: &mut Errors, main: &Main, peers: &[Peer]) {
    let active: Vec<&Peer> = peers.iter().filter(|p| p.enabled).collect();
    if let Some(p) = active.get(MAX_PEERS) {
        cx.push(
            p.line,
            format!("too many enabled peers: at most {MAX_PEERS}"),
        );
    }
    for (i, p) in active.iter().enumerate() {
        if let Some(d) = active[..i].iter().find(|d| d.address == p.address) {
            let msg = format!(
                "peer '{}' has the address of peer '{}' (line {})",
                p.name, d.name, d.line
            );
            cx.push(p.line, msg);
        }
        if let Some(first) = active
            .first()
            .filter(|f| f.port != p.port || f.source != p.source)
        {
            let msg = format!(
                "peer '{}' uses another port or source than peer '{}' (line {}): every peer shares one socket",
                p.name, first.name, first.line
            );
            cx.push(p.line, msg);
        }
        if p.port == main.spa_port {
            let msg = format!(
                "peer '{}' uses the SPA port {}: pick another port",
                p.name, p.port
            );
            cx.push(p.line, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, Config};

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn errors(text: &str) -> Vec<String> {
        parse_str("t", text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn ok(text: &str) -> Config {
        parse_str("t", text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn a_peer_with_address_and_key_is_read_with_defaults() {
        let c = ok(&format!(
            "config peer 'twin'\n\toption address '10.99.0.2'\n\toption key '{KEY}'\n"
        ));
        assert_eq!(c.peers.len(), 1);
        let p = &c.peers[0];
        assert_eq!(p.name, "twin");
        assert_eq!(p.address, "10.99.0.2".parse::<core::net::IpAddr>().unwrap());
        assert_eq!(p.port, crate::config::peer::DEFAULT_PEER_PORT);
        assert_eq!(p.source, None);
        assert!(p.enabled);
        assert!(p.key.is_some());
        assert_eq!(p.interface, None);
        let c = ok(&format!(
            "config peer 'twin'\n\toption address '10.99.0.2'\n\toption key '{KEY}'\n\toption interface 'lan2'\n"
        ));
        assert_eq!(c.peers[0].interface.as_deref(), Some("lan2"));
        let e = errors(&format!(
            "config peer 'twin'\n\toption address '10.99.0.2'\n\toption key '{KEY}'\n\toption interface 'a/b'\n"
        ));
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:4: ") && m.contains("not a device name")),
            "{e:?}"
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = errors("config peer 'a'\n\toption address 'ff02::1'\n\toption key 'short'\n\toption port '0'\n\toption sauce 'x'\n");
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:2: ") && m.contains("not a unicast")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:3: ") && m.contains("key is not valid")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:4: ") && m.contains("not a port")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:5: ") && m.contains("unknown option 'sauce'")),
            "{e:?}"
        );
        let e = errors("config peer 'a'\n");
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:1: ") && m.contains("needs option address")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("needs option key")), "{e:?}");
    }

    #[test]
    fn peers_share_port_and_source_and_not_the_spa_port() {
        let two = format!(
            "config peer 'a'\n\toption address '10.0.0.2'\n\toption key '{KEY}'\n\
             config peer 'b'\n\toption address '10.0.0.3'\n\toption key '{KEY}'\n\toption port '9'\n"
        );
        let e = errors(&two);
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:4: ") && m.contains("one socket")),
            "{e:?}"
        );
        let same = format!(
            "config peer 'a'\n\toption address '10.0.0.2'\n\toption key '{KEY}'\n\
             config peer 'b'\n\toption address '10.0.0.2'\n\toption key '{KEY}'\n"
        );
        assert!(errors(&same)
            .iter()
            .any(|m| m.contains("has the address of peer 'a'")));
        let spa = format!(
            "config peer 'a'\n\toption address '10.0.0.2'\n\toption key '{KEY}'\n\toption port '62201'\n"
        );
        assert!(errors(&spa).iter().any(|m| m.contains("SPA port")));
        let family = format!(
            "config peer 'a'\n\toption address '10.0.0.2'\n\toption key '{KEY}'\n\toption source 'fd00::1'\n"
        );
        assert!(errors(&family)
            .iter()
            .any(|m| m.starts_with("t:4: ") && m.contains("same family")));
    }

    #[test]
    fn a_key_file_is_read_with_errors_at_its_line() {
        let dir = std::env::temp_dir().join(format!("postern-peer-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, format!("{KEY}\n")).unwrap();
        let text = |path: &std::path::Path| {
            format!(
                "config peer 'twin'\n\toption address '10.99.0.2'\n\toption key_file '{}'\n",
                path.display()
            )
        };
        let mut c = ok(&text(&good));
        assert_eq!(c.peers[0].key, None, "not read by the pure parser");
        crate::config::peer::read_key_files("t", &mut c).unwrap();
        assert!(c.peers[0].key.is_some());
        let bad = dir.join("bad");
        std::fs::write(&bad, "secret-not-base64").unwrap();
        for path in [bad, dir.join("missing")] {
            let mut c = ok(&text(&path));
            let e = crate::config::peer::read_key_files("t", &mut c).unwrap_err();
            let m = e[0].to_string();
            assert!(m.starts_with("t:3: key_file"), "{m}");
            assert!(!m.contains("secret"), "the content is never echoed: {m}");
        }
        let e = errors(&format!("{}\toption key '{KEY}'\n", text(&good)));
        assert!(
            e.iter()
                .any(|m| m.starts_with("t:3: ") && m.contains("not both")),
            "{e:?}"
        );
        let e =
            errors("config peer 'twin'\n\toption address '10.99.0.2'\n\toption key_file 'rel'\n");
        assert!(e.iter().any(|m| m.starts_with("t:3: ")), "{e:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
