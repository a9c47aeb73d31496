//! The project's fw4 stand-in: the ruleset `fw4 print` renders for
//! OpenWrt's default `/etc/config/firewall`, with the WAN zone renamed (any
//! name: `uplink`, `wan6x`) and an "Allow-SSH-WAN" user rule that accepts a
//! port postern guards. Its shape — policies, chain order, the default
//! rules, where fw4 puts `chain-pre` includes — was taken from real
//! firewall4 (`fw4 print` of that configuration, built from source; see
//! docs/fw4.md). postern's shipped include files are loaded
//! where fw4 includes them, by path, exactly as fw4 writes them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The directory of the shipped include files.
pub fn files() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openwrt/postern/files")
}

/// The shipped includes: `table-pre`, `chain-pre/input`, `chain-pre/forward`.
pub fn shipped() -> [PathBuf; 3] {
    [
        "fw4-table-pre.nft",
        "fw4-chain-pre-input.nft",
        "fw4-chain-pre-forward.nft",
    ]
    .map(|f| files().join(f))
}

/// The includes as installed under `root`: `usr/share/nftables.d/…/20-postern.nft`.
pub fn installed(root: &Path) -> [PathBuf; 3] {
    ["table-pre", "chain-pre/input", "chain-pre/forward"].map(|d| {
        root.join("usr/share/nftables.d")
            .join(d)
            .join("20-postern.nft")
    })
}

/// One zone of the stand-in besides `lan`.
pub struct Wan<'a> {
    /// The zone's name (never assumed to be `wan`).
    pub zone: &'a str,
    /// The zone's device (`pppoe-wan`, a veth in tests).
    pub dev: &'a str,
    /// The zone's input policy as fw4 writes it: `reject` (OpenWrt's
    /// default) or `drop`.
    pub input: &'a str,
}

/// The ruleset text: `lan` on `lan_dev` (input/forward ACCEPT), the WAN zone
/// `wan` with OpenWrt's default rules and Allow-SSH-WAN for tcp/`ssh_port`,
/// postern's includes `includes` (table-pre, chain-pre/input,
/// chain-pre/forward: [`shipped`] or [`installed`]); `None`: no include
/// lines, as fw4 renders when the files are absent.
pub fn ruleset(
    wan: &Wan<'_>,
    lan_dev: &str,
    ssh_port: u16,
    includes: Option<&[PathBuf; 3]>,
) -> String {
    let (z, dev) = (wan.zone, wan.dev);
    let inc = |i: usize, indent: &str| match includes {
        Some(p) => format!("{indent}include \"{}\"\n", p[i].display()),
        None => String::new(),
    };
    let verdict = if wan.input == "drop" {
        format!("\t\tjump drop_from_{z}")
    } else {
        format!("\t\tjump reject_from_{z}")
    };
    format!(
        r#"table inet fw4
flush table inet fw4

table inet fw4 {{
	define lan_devices = {{ "{lan_dev}" }}
	define {z}_devices = {{ "{dev}" }}

{table_pre}
	chain input {{
		type filter hook input priority filter; policy drop;

		iif "lo" accept comment "!fw4: Accept traffic from loopback"

{chain_pre_input}		ct state vmap {{ established : accept, related : accept }} comment "!fw4: Handle inbound flows"
		tcp flags & (fin | syn | rst | ack) == syn jump syn_flood comment "!fw4: Rate limit TCP syn packets"
		iifname "{lan_dev}" jump input_lan comment "!fw4: Handle lan IPv4/IPv6 input traffic"
		iifname "{dev}" jump input_{z} comment "!fw4: Handle {z} IPv4/IPv6 input traffic"
		jump handle_reject
	}}

	chain forward {{
		type filter hook forward priority filter; policy drop;

{chain_pre_forward}		ct state vmap {{ established : accept, related : accept }} comment "!fw4: Handle forwarded flows"
		iifname "{lan_dev}" jump forward_lan comment "!fw4: Handle lan IPv4/IPv6 forward traffic"
		iifname "{dev}" jump forward_{z} comment "!fw4: Handle {z} IPv4/IPv6 forward traffic"
		jump handle_reject
	}}

	chain output {{
		type filter hook output priority filter; policy accept;

		oif "lo" accept comment "!fw4: Accept traffic towards loopback"

		ct state vmap {{ established : accept, related : accept }} comment "!fw4: Handle outbound flows"
		oifname "{lan_dev}" jump output_lan comment "!fw4: Handle lan IPv4/IPv6 output traffic"
		oifname "{dev}" jump output_{z} comment "!fw4: Handle {z} IPv4/IPv6 output traffic"
	}}

	chain prerouting {{
		type filter hook prerouting priority filter; policy accept;
		iifname "{lan_dev}" jump helper_lan comment "!fw4: Handle lan IPv4/IPv6 helper assignment"
	}}

	chain handle_reject {{
		meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject with icmpx type port-unreachable comment "!fw4: Reject any other traffic"
	}}

	chain syn_flood {{
		limit rate 25/second burst 50 packets return comment "!fw4: Accept SYN packets below rate-limit"
		drop comment "!fw4: Drop excess packets"
	}}

	chain input_lan {{
		jump accept_from_lan
	}}

	chain output_lan {{
		jump accept_to_lan
	}}

	chain forward_lan {{
		jump accept_to_{z} comment "!fw4: Accept lan to {z} forwarding"
		jump accept_to_lan
	}}

	chain helper_lan {{
	}}

	chain accept_from_lan {{
		iifname "{lan_dev}" counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}}

	chain accept_to_lan {{
		oifname "{lan_dev}" counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}}

	chain input_{z} {{
		meta nfproto ipv4 udp dport 68 counter accept comment "!fw4: Allow-DHCP-Renew"
		meta nfproto ipv4 icmp type 8 counter accept comment "!fw4: Allow-Ping"
		meta nfproto ipv4 meta l4proto igmp counter accept comment "!fw4: Allow-IGMP"
		meta nfproto ipv6 udp dport 546 counter accept comment "!fw4: Allow-DHCPv6"
		ip6 saddr fe80::/10 icmpv6 type . icmpv6 code {{ 130 . 0, 131 . 0, 132 . 0, 143 . 0 }} counter accept comment "!fw4: Allow-MLD"
		meta nfproto ipv6 icmpv6 type {{ 128, 129, 1, 3, 133, 134 }} limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"
		meta nfproto ipv6 icmpv6 type . icmpv6 code {{ 2 . 0, 4 . 0, 4 . 1, 135 . 0, 136 . 0 }} limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"
		tcp dport {ssh_port} counter accept comment "!fw4: Allow-SSH-WAN"
{verdict}
	}}

	chain output_{z} {{
		jump accept_to_{z}
	}}

	chain forward_{z} {{
		meta nfproto ipv6 icmpv6 type {{ 128, 129, 1, 3 }} limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Forward"
		meta nfproto ipv6 icmpv6 type . icmpv6 code {{ 2 . 0, 4 . 0, 4 . 1 }} limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Forward"
		meta l4proto esp counter jump accept_to_lan comment "!fw4: Allow-IPSec-ESP"
		udp dport 500 counter jump accept_to_lan comment "!fw4: Allow-ISAKMP"
		jump drop_to_{z}
	}}

	chain accept_to_{z} {{
		meta nfproto ipv4 oifname "{dev}" ct state invalid counter drop comment "!fw4: Prevent NAT leakage"
		oifname "{dev}" counter accept comment "!fw4: accept {z} IPv4/IPv6 traffic"
	}}

	chain reject_from_{z} {{
		iifname "{dev}" counter jump handle_reject comment "!fw4: reject {z} IPv4/IPv6 traffic"
	}}

	chain drop_from_{z} {{
		iifname "{dev}" counter drop comment "!fw4: drop {z} IPv4/IPv6 traffic"
	}}

	chain drop_to_{z} {{
		oifname "{dev}" counter drop comment "!fw4: drop {z} IPv4/IPv6 traffic"
	}}

	chain dstnat {{
		type nat hook prerouting priority dstnat; policy accept;
	}}

	chain srcnat {{
		type nat hook postrouting priority srcnat; policy accept;
		oifname "{dev}" jump srcnat_{z} comment "!fw4: Handle {z} IPv4/IPv6 srcnat traffic"
	}}

	chain srcnat_{z} {{
		meta nfproto ipv4 masquerade comment "!fw4: Masquerade IPv4 {z} traffic"
	}}

	chain raw_prerouting {{
		type filter hook prerouting priority raw; policy accept;
	}}

	chain raw_output {{
		type filter hook output priority raw; policy accept;
	}}

	chain mangle_prerouting {{
		type filter hook prerouting priority mangle; policy accept;
	}}

	chain mangle_postrouting {{
		type filter hook postrouting priority mangle; policy accept;
		oifname "{dev}" tcp flags syn / syn,fin,rst tcp option maxseg size set rt mtu comment "!fw4: Zone {z} IPv4/IPv6 egress MTU fixing"
	}}

	chain mangle_input {{
		type filter hook input priority mangle; policy accept;
	}}

	chain mangle_output {{
		type route hook output priority mangle; policy accept;
	}}

	chain mangle_forward {{
		type filter hook forward priority mangle; policy accept;
		iifname "{dev}" tcp flags syn / syn,fin,rst tcp option maxseg size set rt mtu comment "!fw4: Zone {z} IPv4/IPv6 ingress MTU fixing"
	}}
}}
"#,
        table_pre = inc(0, "\t"),
        chain_pre_input = inc(1, "\t\t"),
        chain_pre_forward = inc(2, "\t\t"),
    )
}
