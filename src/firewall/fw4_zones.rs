//! fw4 zones as postern sees them: which zone holds each capture device,
//! how that zone refuses (the guard's verdict), and which postern include
//! fw4 would drop.
//!
//! Owns the reading of `/etc/config/firewall` and `/etc/config/network`
//! (with postern's own UCI parser; OpenWrt has no libuci for us) and of the
//! `/usr/share/nftables.d/chain-{pre,post}/` directories. The decisions are
//! pure functions of the parsed sections; only [`report_at`] touches files.
//! Used by `postern check` and the daemon at start (warnings, verdict). It
//! must not change anything: fw4's configuration is the user's.

use std::path::Path;

use crate::config::uci::{self, Section, Value};
use crate::firewall::GuardVerdict;

/// A zone's input policy (`option input`, else the defaults' `input`, else
/// fw4's `DROP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `ACCEPT`.
    Accept,
    /// `REJECT` (OpenWrt's default WAN zone).
    Reject,
    /// `DROP`.
    Drop,
}

/// One `config zone` of `/etc/config/firewall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `option name`.
    pub name: String,
    /// `list network`: UCI network (interface) names.
    pub networks: Vec<String>,
    /// `list device`: device names (a trailing `+` or `*` is a wildcard).
    pub devices: Vec<String>,
    /// The input policy.
    pub input: Policy,
    /// Whether fw4 renders `srcnat_NAME` (`option masq 1`).
    pub masq: bool,
}

/// The items of option or list `name` (an option is a one-item list).
fn items<'a>(s: &'a Section, name: &str) -> Vec<&'a str> {
    match s.get(name).map(|e| &e.value) {
        Some(Value::Single(v)) => v.split_whitespace().collect(),
        Some(Value::List(v)) => v.iter().map(String::as_str).collect(),
        None => Vec::new(),
    }
}

fn one<'a>(s: &'a Section, name: &str) -> Option<&'a str> {
    items(s, name).first().copied()
}

fn policy(v: &str) -> Option<Policy> {
    match v.to_ascii_uppercase().as_str() {
        "ACCEPT" => Some(Policy::Accept),
        "REJECT" => Some(Policy::Reject),
        "DROP" => Some(Policy::Drop),
        _ => None,
    }
}

/// The zones of a parsed `/etc/config/firewall`, in file order (disabled
/// zones, `option enabled 0`, left out as fw4 does).
pub fn zones(firewall: &[Section]) -> Vec<Zone> {
    let default_input = firewall
        .iter()
        .filter(|s| s.kind == "defaults")
        .find_map(|s| one(s, "input").and_then(policy))
        .unwrap_or(Policy::Drop);
    firewall
        .iter()
        .filter(|s| s.kind == "zone" && one(s, "enabled") != Some("0"))
        .filter_map(|s| {
            Some(Zone {
                name: one(s, "name")?.to_string(),
                networks: items(s, "network").iter().map(|n| n.to_string()).collect(),
                devices: items(s, "device").iter().map(|n| n.to_string()).collect(),
                input: one(s, "input").and_then(policy).unwrap_or(default_input),
                masq: matches!(one(s, "masq"), Some("1" | "yes" | "on" | "true")),
            })
        })
        .collect()
}

/// The devices a network of a parsed `/etc/config/network` may run on:
/// `option device` (`ifname` before 21.02) and, for point-to-point
/// protocols, the device netifd creates (`pppoe-wan` for `wan`).
pub fn network_devices(network: &[Section], name: &str) -> Vec<String> {
    let Some(s) = network
        .iter()
        .find(|s| s.kind == "interface" && s.name.as_deref() == Some(name))
    else {
        return Vec::new();
    };
    let mut devs: Vec<String> = items(s, "device")
        .into_iter()
        .chain(items(s, "ifname"))
        .map(str::to_string)
        .collect();
    if let Some(proto @ ("pppoe" | "pppoa" | "pptp" | "l2tp" | "3g" | "ppp")) = one(s, "proto") {
        devs.push(format!("{proto}-{name}"));
    }
    devs
}

/// Whether `pattern` (a zone's device, maybe with a trailing `+`/`*`) matches `dev`.
fn device_matches(pattern: &str, dev: &str) -> bool {
    match pattern.strip_suffix(['+', '*']) {
        Some(prefix) => dev.starts_with(prefix),
        None => pattern == dev,
    }
}

/// The zone that holds network `net`, if any.
pub fn zone_of_network<'a>(zones: &'a [Zone], net: &str) -> Option<&'a Zone> {
    zones.iter().find(|z| z.networks.iter().any(|n| n == net))
}

/// The zone that holds device `dev`: by its `list device`, or through a
/// network whose device it is.
pub fn zone_of_device<'a>(zones: &'a [Zone], network: &[Section], dev: &str) -> Option<&'a Zone> {
    zones.iter().find(|z| {
        z.devices.iter().any(|p| device_matches(p, dev))
            || z.networks
                .iter()
                .any(|n| network_devices(network, n).iter().any(|d| d == dev))
    })
}

/// The guard's verdict: drop when a zone holding a capture network or
/// device drops (`input DROP`), else reject (what a closed port answers in
/// a `REJECT` zone, fw4's default for the WAN). One verdict for all capture
/// devices; with zones of both kinds, drop (it tells a scanner nothing).
pub fn guard_verdict(capture_zones: &[&Zone]) -> GuardVerdict {
    if capture_zones.iter().any(|z| z.input == Policy::Drop) {
        GuardVerdict::Drop
    } else {
        GuardVerdict::Reject
    }
}

/// The chains fw4 renders that a `chain-pre`/`chain-post` include can name:
/// the base chains, and each zone's `input_`, `output_`, `forward_` chains
/// (`srcnat_` with masquerading). `dstnat_NAME` exists only when the zone
/// has a port forward, so it is not counted.
pub fn rendered_chain(zones: &[Zone], chain: &str) -> bool {
    const BASE: &[&str] = &[
        "input",
        "forward",
        "output",
        "prerouting",
        "dstnat",
        "srcnat",
        "raw_prerouting",
        "raw_output",
        "mangle_prerouting",
        "mangle_postrouting",
        "mangle_input",
        "mangle_output",
        "mangle_forward",
    ];
    BASE.contains(&chain)
        || zones.iter().any(|z| {
            ["input_", "output_", "forward_"]
                .iter()
                .any(|p| chain.strip_prefix(p) == Some(z.name.as_str()))
                || (z.masq && chain.strip_prefix("srcnat_") == Some(z.name.as_str()))
        })
}

/// What `postern check` and the daemon say about fw4, and the guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How guarded ports are refused on the capture devices.
    pub verdict: GuardVerdict,
    /// One line per problem (empty: nothing to say).
    pub warnings: Vec<String>,
}

/// The report for postern's `list interface` networks `networks` and the
/// capture devices `devices`, against the parsed firewall and network
/// configurations and the include files `includes` (`(position, chain,
/// file name)` under `/usr/share/nftables.d`).
pub fn report(
    firewall: &[Section],
    network: &[Section],
    networks: &[String],
    devices: &[String],
    includes: &[(String, String, String)],
) -> Report {
    let zones = zones(firewall);
    let mut warnings = Vec::new();
    let mut held: Vec<&Zone> = Vec::new();
    for net in networks {
        match zone_of_network(&zones, net) {
            Some(z) => held.push(z),
            None => warnings.push(format!(
                "fw4: network '{net}' is in no firewall zone: fw4 does not filter it, \
                 and nothing is guarded there but by postern's own chain"
            )),
        }
    }
    for dev in devices {
        match zone_of_device(&zones, network, dev) {
            Some(z) => held.push(z),
            // A device resolved from a zoned network (pppoe-wan, a VLAN) is
            // fine even if the network config does not name it.
            None if !networks.is_empty() && held.iter().any(|z| !z.networks.is_empty()) => {}
            None => warnings.push(format!(
                "fw4: capture device '{dev}' is in no firewall zone (add it to a zone's \
                 'list device' or 'list network')"
            )),
        }
    }
    for (position, chain, file) in includes {
        if !rendered_chain(&zones, chain) {
            warnings.push(format!(
                "fw4: /usr/share/nftables.d/{position}/{chain}/{file} is aimed at chain \
                 '{chain}', which fw4 does not render: fw4 drops it silently"
            ));
        }
    }
    Report {
        verdict: guard_verdict(&held),
        warnings,
    }
}

/// Reads a UCI file under `root`; a missing or broken file reads as empty
/// and says so in `warnings`.
fn read_uci(root: &Path, rel: &str, warnings: &mut Vec<String>) -> Vec<Section> {
    let path = root.join(rel);
    match std::fs::read(&path) {
        Ok(bytes) => uci::parse_bytes(&path.display().to_string(), &bytes).unwrap_or_else(|errs| {
            for e in errs {
                warnings.push(format!("fw4: cannot read zones: {e}"));
            }
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            warnings.push(format!("fw4: cannot read {}: {e}", path.display()));
            Vec::new()
        }
    }
}

/// postern's include files aimed at a chain: `(position, chain, file)` for
/// every `*postern*.nft` in `DIR/chain-pre/*/` and `DIR/chain-post/*/`.
pub fn chain_includes(dir: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for position in ["chain-pre", "chain-post"] {
        let Ok(chains) = std::fs::read_dir(dir.join(position)) else {
            continue;
        };
        for chain in chains.flatten() {
            let Ok(files) = std::fs::read_dir(chain.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.contains("postern") && name.ends_with(".nft") {
                    out.push((
                        position.to_string(),
                        chain.file_name().to_string_lossy().into_owned(),
                        name,
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// [`report`] on the system under `root` (`/` on the router): reads
/// `etc/config/firewall`, `etc/config/network` and `usr/share/nftables.d`.
pub fn report_at(root: &Path, networks: &[String], devices: &[String]) -> Report {
    let mut warnings = Vec::new();
    if !root.join("etc/config/firewall").exists() {
        warnings.push(format!(
            "fw4: no {}: the zones of the capture devices are not checked",
            root.join("etc/config/firewall").display()
        ));
        return Report {
            verdict: GuardVerdict::Reject,
            warnings,
        };
    }
    let firewall = read_uci(root, "etc/config/firewall", &mut warnings);
    let network = read_uci(root, "etc/config/network", &mut warnings);
    let includes = chain_includes(&root.join("usr/share/nftables.d"));
    let mut r = report(&firewall, &network, networks, devices, &includes);
    warnings.append(&mut r.warnings);
    r.warnings = warnings;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREWALL: &str = "\
config defaults
\toption input REJECT
config zone
\toption name lan
\tlist network 'lan'
\toption input ACCEPT
config zone
\toption name uplink
\tlist network 'wan'
\tlist network 'wan6'
\toption masq 1
config zone
\toption name dmz
\tlist device 'eth9+'
\toption input DROP
";
    const NETWORK: &str = "\
config interface 'wan'
\toption device 'eth0.2'
\toption proto 'pppoe'
config interface 'lan'
\toption device 'br-lan'
";

    fn parse(t: &str) -> Vec<Section> {
        uci::parse("test", t).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn zones_policies_and_devices() {
        let z = zones(&parse(FIREWALL));
        assert_eq!(z.len(), 3);
        assert_eq!(
            (z[1].name.as_str(), z[1].input, z[1].masq),
            ("uplink", Policy::Reject, true)
        );
        assert_eq!(z[2].input, Policy::Drop);
        let net = parse(NETWORK);
        assert_eq!(network_devices(&net, "wan"), ["eth0.2", "pppoe-wan"]);
        assert_eq!(
            zone_of_device(&z, &net, "pppoe-wan").unwrap().name,
            "uplink"
        );
        assert_eq!(zone_of_device(&z, &net, "eth91").unwrap().name, "dmz");
        assert!(zone_of_device(&z, &net, "eth1").is_none());
        assert_eq!(zone_of_network(&z, "wan6").unwrap().name, "uplink");
    }

    #[test]
    fn verdict_follows_the_capture_zones() {
        let (fw, net) = (parse(FIREWALL), parse(NETWORK));
        let r = report(&fw, &net, &s(&["wan"]), &s(&["pppoe-wan"]), &[]);
        assert_eq!(
            r,
            Report {
                verdict: GuardVerdict::Reject,
                warnings: vec![]
            }
        );
        let r = report(&fw, &net, &[], &s(&["eth90"]), &[]);
        assert_eq!(r.verdict, GuardVerdict::Drop);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn warns_for_unzoned_capture_and_dropped_includes() {
        let (fw, net) = (parse(FIREWALL), parse(NETWORK));
        let r = report(
            &fw,
            &net,
            &s(&["wwan"]),
            &s(&["eth1"]),
            &[
                ("chain-pre".into(), "input".into(), "20-postern.nft".into()),
                (
                    "chain-pre".into(),
                    "input_uplink".into(),
                    "20-postern.nft".into(),
                ),
                (
                    "chain-pre".into(),
                    "input_wan".into(),
                    "20-postern.nft".into(),
                ),
                (
                    "chain-post".into(),
                    "dstnat_uplink".into(),
                    "20-postern.nft".into(),
                ),
            ],
        );
        assert_eq!(r.warnings.len(), 4, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("network 'wwan' is in no firewall zone"));
        assert!(r.warnings[1].contains("capture device 'eth1' is in no firewall zone"));
        assert!(r.warnings[2].contains("chain-pre/input_wan/20-postern.nft"));
        assert!(r.warnings[3].contains("'dstnat_uplink', which fw4 does not render"));
    }

    #[test]
    fn report_at_reads_the_router_files() {
        let root = std::env::temp_dir().join(format!("postern-fw4z-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc/config")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/nftables.d/chain-pre/input_wan")).unwrap();
        std::fs::write(root.join("etc/config/firewall"), FIREWALL).unwrap();
        std::fs::write(root.join("etc/config/network"), NETWORK).unwrap();
        std::fs::write(
            root.join("usr/share/nftables.d/chain-pre/input_wan/20-postern.nft"),
            "",
        )
        .unwrap();
        let r = report_at(&root, &s(&["wan"]), &s(&["pppoe-wan"]));
        assert_eq!(r.verdict, GuardVerdict::Reject);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("input_wan"));
        std::fs::write(
            root.join("etc/config/firewall"),
            "config zone\n\toption 'x\n",
        )
        .unwrap();
        let r = report_at(&root, &s(&["wan"]), &[]);
        assert!(
            r.warnings[0].starts_with("fw4: cannot read zones:"),
            "{:?}",
            r.warnings
        );
        std::fs::remove_file(root.join("etc/config/firewall")).unwrap();
        let r = report_at(&root, &s(&["wan"]), &[]);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("zones of the capture devices are not checked"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
