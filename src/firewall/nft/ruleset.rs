//! nftables ruleset text: the standalone `table inet postern` and the fw4 includes.
//!
//! Owns every piece of `nft` syntax postern writes. Pure string building, no I/O.
//! The standalone text documents the table (`postern check`, tests): the
//! daemon creates it with the equivalent netlink batch ([`super::standalone`]);
//! the fw4 includes are installed as files (packaging). The object names here
//! are the ones both use.

use core::fmt::Write as _;

use crate::firewall::ForwardSpec;
use crate::port::PortSpec;

/// The table the standalone backend owns (family `inet`).
pub const STANDALONE_TABLE: &str = "postern";
/// The set of guarded `proto . port` pairs in the standalone table.
pub const GUARD_SET: &str = "guard";
/// IPv4 allow set of the standalone table.
pub const STANDALONE_ALLOW4: &str = "allow4";
/// IPv6 allow set of the standalone table.
pub const STANDALONE_ALLOW6: &str = "allow6";
/// The input chain of the standalone table.
pub const STANDALONE_CHAIN: &str = "input";
/// IPv4 ban set of the standalone table.
pub const STANDALONE_BAN4: &str = "ban4";
/// IPv6 ban set of the standalone table.
pub const STANDALONE_BAN6: &str = "ban6";
/// IPv4 ban set inside the fw4 table (created by the fw4 include).
pub const FW4_BAN4: &str = "postern_ban4";
/// IPv6 ban set inside the fw4 table (created by the fw4 include).
pub const FW4_BAN6: &str = "postern_ban6";
/// OpenWrt's fw4 table (family `inet`).
pub const FW4_TABLE: &str = "fw4";
/// IPv4 allow set inside the fw4 table (created by the fw4 include).
pub const FW4_ALLOW4: &str = "postern_allow4";
/// IPv6 allow set inside the fw4 table (created by the fw4 include).
pub const FW4_ALLOW6: &str = "postern_allow6";

/// The forward DNAT map of the standalone table (`src . proto . port : to4 . to_port`).
pub const STANDALONE_FWD4: &str = "fwd4";
/// IPv4 forward allow set of the standalone table (`src . to4 . proto . to_port`).
pub const STANDALONE_FWD_ALLOW4: &str = "fwd_allow4";
/// IPv6 forward allow set of the standalone table (`src . to6 . proto . to_port`).
pub const STANDALONE_FWD_ALLOW6: &str = "fwd_allow6";
/// IPv4 forward targets (`to4 . proto . to_port`) closed to everyone not granted.
pub const FWD_GUARD4: &str = "fwd_guard4";
/// IPv6 forward targets (`to6 . proto . to_port`) closed to everyone not granted.
pub const FWD_GUARD6: &str = "fwd_guard6";
/// The standalone nat chain doing the forward DNAT.
pub const DSTNAT_CHAIN: &str = "dstnat";
/// The standalone filter chain on the forward hook.
pub const FORWARD_CHAIN: &str = "forward";
/// The forward DNAT map inside the fw4 table (created by the fw4 include).
pub const FW4_FWD4: &str = "postern_fwd4";
/// IPv4 forward allow set inside the fw4 table (created by the fw4 include).
pub const FW4_FWD_ALLOW4: &str = "postern_fwd_allow4";
/// IPv6 forward allow set inside the fw4 table (created by the fw4 include).
pub const FW4_FWD_ALLOW6: &str = "postern_fwd_allow6";
/// postern's own nat base chain inside the fw4 table (created by the fw4 include).
pub const FW4_DSTNAT_CHAIN: &str = "postern_dstnat";

const FWD4_TYPE: &str =
    "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout;";
const FWD_ALLOW4_TYPE: &str =
    "type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags timeout;";
const FWD_ALLOW6_TYPE: &str =
    "type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags timeout;";
const FWD_GUARD4_TYPE: &str = "type ipv4_addr . inet_proto . inet_service;";
const FWD_GUARD6_TYPE: &str = "type ipv6_addr . inet_proto . inet_service;";
const DSTNAT_HOOK: &str = "type nat hook prerouting priority dstnat - 5; policy accept;";
const FORWARD_HOOK: &str = "type filter hook forward priority filter - 5; policy accept;";

const ALLOW4_TYPE: &str = "type ipv4_addr . inet_proto . inet_service; flags timeout;";
const ALLOW6_TYPE: &str = "type ipv6_addr . inet_proto . inet_service; flags timeout;";
/// Ban sets hold networks (`interval`): an IPv4 ban is a /32, an IPv6 ban a prefix.
const BAN4_TYPE: &str = "type ipv4_addr; flags interval, timeout;";
const BAN6_TYPE: &str = "type ipv6_addr; flags interval, timeout;";
const GUARD_TYPE: &str = "type inet_proto . inet_service;";
const CHAIN_HOOK: &str = "type filter hook input priority filter - 5; policy accept;";

/// The rules of the standalone input chain, in order. Established flows are
/// accepted first; a grant accepts a new connection unless its source lies in
/// a banned network; every other packet to a guarded port is refused as the
/// kernel refuses a closed port (TCP: RST; UDP: ICMP port unreachable), so a
/// scanner cannot tell guarded from closed ports, nor a banned source from a
/// source without a grant. Nothing else is touched: a ban never affects
/// established flows, unguarded ports or ICMP.
fn standalone_rules() -> [String; 5] {
    [
        "ct state established,related accept".to_string(),
        format!("meta nfproto ipv4 ip saddr . meta l4proto . th dport @{STANDALONE_ALLOW4} ip saddr != @{STANDALONE_BAN4} accept"),
        format!(
            "meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @{STANDALONE_ALLOW6} ip6 saddr != @{STANDALONE_BAN6} accept"
        ),
        format!("meta l4proto . th dport @{GUARD_SET} meta l4proto tcp reject with tcp reset"),
        format!("meta l4proto . th dport @{GUARD_SET} reject"),
    ]
}

/// The DNAT rule: an IPv4 packet whose `saddr . l4proto . dport` is in the
/// map `map` goes to the map's `addr . port` (no match: nothing happens),
/// unless its source lies in a network of the ban set `ban4`: a banned
/// source's packet stays addressed to the router, as a non-granted one does.
fn dnat_rule(map: &str, ban4: &str) -> String {
    format!(
        "meta nfproto ipv4 ip saddr != @{ban4} meta l4proto {{ tcp, udp }} dnat ip to ip saddr . meta l4proto . th dport map @{map}"
    )
}

/// The accept rules for granted forward sources outside the banned networks
/// (`allow4`, `allow6`: the allow sets' names; `ban4`, `ban6`: the ban sets').
fn forward_accept_rules(
    [allow4, allow6]: [&str; 2],
    [ban4, ban6]: [&str; 2],
    counter: &str,
) -> [String; 2] {
    [
        format!("meta nfproto ipv4 ip saddr . ip daddr . meta l4proto . th dport @{allow4} ip saddr != @{ban4} {counter}accept"),
        format!("meta nfproto ipv6 ip6 saddr . ip6 daddr . meta l4proto . th dport @{allow6} ip6 saddr != @{ban6} {counter}accept"),
    ]
}

/// The rules of the standalone forward chain, in order: established flows
/// accepted, granted sources outside the banned networks accepted, every
/// other packet to a configured forward target dropped. A ban touches only
/// new connections to forward targets.
fn standalone_forward_rules() -> Vec<String> {
    let [a4, a6] = forward_accept_rules(
        [STANDALONE_FWD_ALLOW4, STANDALONE_FWD_ALLOW6],
        [STANDALONE_BAN4, STANDALONE_BAN6],
        "",
    );
    vec![
        "ct state established,related accept".to_string(),
        a4,
        a6,
        format!("meta nfproto ipv4 ip daddr . meta l4proto . th dport @{FWD_GUARD4} drop"),
        format!("meta nfproto ipv6 ip6 daddr . meta l4proto . th dport @{FWD_GUARD6} drop"),
    ]
}

/// The guard elements of `forwards` for one family: `10.0.0.5 . tcp . 80, …`
/// (sorted, duplicates dropped); `None` when no forward has a target of it.
fn forward_guard_elements(forwards: &[ForwardSpec], ipv6: bool) -> Option<String> {
    let mut items: Vec<String> = forwards
        .iter()
        .filter_map(|f| {
            let addr = if ipv6 {
                f.to6.map(|a| a.to_string())
            } else {
                f.to4.map(|a| a.to_string())
            }?;
            Some(format!("{addr} . {} . {}", f.proto, f.to_port))
        })
        .collect();
    items.sort_unstable();
    items.dedup();
    if items.is_empty() {
        None
    } else {
        Some(items.join(", "))
    }
}

/// The `nft -f -` script that sets up the standalone forward objects for
/// `forwards` in one transaction (after [`standalone_setup_script`]): the DNAT
/// map, the allow and guard sets, the `dstnat` and `forward` chains. Idempotent:
/// the guard sets and the chains are flushed and refilled, the map and allow
/// sets (live forward grants) are kept. Without forwards it removes all of
/// them (and so every forward grant).
pub fn standalone_forward_script(forwards: &[ForwardSpec]) -> String {
    let t = STANDALONE_TABLE;
    let mut s = String::new();
    let _ = writeln!(s, "add table inet {t}");
    let _ = writeln!(s, "add set inet {t} {STANDALONE_BAN4} {{ {BAN4_TYPE} }}");
    let _ = writeln!(s, "add set inet {t} {STANDALONE_BAN6} {{ {BAN6_TYPE} }}");
    let _ = writeln!(s, "add map inet {t} {STANDALONE_FWD4} {{ {FWD4_TYPE} }}");
    let _ = writeln!(
        s,
        "add set inet {t} {STANDALONE_FWD_ALLOW4} {{ {FWD_ALLOW4_TYPE} }}"
    );
    let _ = writeln!(
        s,
        "add set inet {t} {STANDALONE_FWD_ALLOW6} {{ {FWD_ALLOW6_TYPE} }}"
    );
    let _ = writeln!(s, "add set inet {t} {FWD_GUARD4} {{ {FWD_GUARD4_TYPE} }}");
    let _ = writeln!(s, "add set inet {t} {FWD_GUARD6} {{ {FWD_GUARD6_TYPE} }}");
    let _ = writeln!(s, "add chain inet {t} {DSTNAT_CHAIN} {{ {DSTNAT_HOOK} }}");
    let _ = writeln!(s, "add chain inet {t} {FORWARD_CHAIN} {{ {FORWARD_HOOK} }}");
    if forwards.is_empty() {
        // Chains first: the sets are in use by their rules.
        for chain in [DSTNAT_CHAIN, FORWARD_CHAIN] {
            let _ = writeln!(s, "delete chain inet {t} {chain}");
        }
        let _ = writeln!(s, "delete map inet {t} {STANDALONE_FWD4}");
        for set in [
            STANDALONE_FWD_ALLOW4,
            STANDALONE_FWD_ALLOW6,
            FWD_GUARD4,
            FWD_GUARD6,
        ] {
            let _ = writeln!(s, "delete set inet {t} {set}");
        }
        return s;
    }
    for (set, ipv6) in [(FWD_GUARD4, false), (FWD_GUARD6, true)] {
        let _ = writeln!(s, "flush set inet {t} {set}");
        if let Some(e) = forward_guard_elements(forwards, ipv6) {
            let _ = writeln!(s, "add element inet {t} {set} {{ {e} }}");
        }
    }
    let _ = writeln!(s, "flush chain inet {t} {DSTNAT_CHAIN}");
    let _ = writeln!(
        s,
        "add rule inet {t} {DSTNAT_CHAIN} {}",
        dnat_rule(STANDALONE_FWD4, STANDALONE_BAN4)
    );
    let _ = writeln!(s, "flush chain inet {t} {FORWARD_CHAIN}");
    for r in standalone_forward_rules() {
        let _ = writeln!(s, "add rule inet {t} {FORWARD_CHAIN} {r}");
    }
    s
}

/// `tcp . 22, udp . 8000` for the guarded ports, sorted, duplicates dropped;
/// `None` when there are none.
fn guard_elements(guard: &[PortSpec]) -> Option<String> {
    let mut ports = guard.to_vec();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return None;
    }
    let mut s = String::new();
    for (i, p) in ports.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{} . {}", p.proto, p.port);
    }
    Some(s)
}

/// The standalone table written out whole, as `nft list table` would show it
/// (for `postern check` and the docs). Loading this twice duplicates the rules;
/// [`standalone_setup_script`] is what setup does (as a netlink batch).
pub fn standalone_ruleset(guard: &[PortSpec]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table inet {STANDALONE_TABLE} {{");
    match guard_elements(guard) {
        Some(e) => {
            let _ = writeln!(
                s,
                "  set {GUARD_SET} {{ {GUARD_TYPE} elements = {{ {e} }} }}"
            );
        }
        None => {
            let _ = writeln!(s, "  set {GUARD_SET} {{ {GUARD_TYPE} }}");
        }
    }
    let _ = writeln!(s, "  set {STANDALONE_ALLOW4} {{ {ALLOW4_TYPE} }}");
    let _ = writeln!(s, "  set {STANDALONE_ALLOW6} {{ {ALLOW6_TYPE} }}");
    let _ = writeln!(s, "  set {STANDALONE_BAN4} {{ {BAN4_TYPE} }}");
    let _ = writeln!(s, "  set {STANDALONE_BAN6} {{ {BAN6_TYPE} }}");
    let _ = writeln!(s, "  chain {STANDALONE_CHAIN} {{ {CHAIN_HOOK}");
    for r in standalone_rules() {
        let _ = writeln!(s, "    {r}");
    }
    s.push_str("  }\n}\n");
    s
}

/// The `nft -f -` script that creates or updates the standalone table in one
/// atomic transaction ([`super::standalone::setup`] sends the same batch over
/// netlink; its test compares the two byte for byte). Idempotent: existing objects are kept (`add` of an
/// object with the same definition is a no-op), the guard set and the chain
/// are flushed and refilled, and the allow and ban sets — the live grants
/// and bans — are left alone.
pub fn standalone_setup_script(guard: &[PortSpec]) -> String {
    let t = STANDALONE_TABLE;
    let mut s = String::new();
    let _ = writeln!(s, "add table inet {t}");
    let _ = writeln!(s, "add set inet {t} {GUARD_SET} {{ {GUARD_TYPE} }}");
    let _ = writeln!(
        s,
        "add set inet {t} {STANDALONE_ALLOW4} {{ {ALLOW4_TYPE} }}"
    );
    let _ = writeln!(
        s,
        "add set inet {t} {STANDALONE_ALLOW6} {{ {ALLOW6_TYPE} }}"
    );
    let _ = writeln!(s, "add set inet {t} {STANDALONE_BAN4} {{ {BAN4_TYPE} }}");
    let _ = writeln!(s, "add set inet {t} {STANDALONE_BAN6} {{ {BAN6_TYPE} }}");
    let _ = writeln!(
        s,
        "add chain inet {t} {STANDALONE_CHAIN} {{ {CHAIN_HOOK} }}"
    );
    let _ = writeln!(s, "flush set inet {t} {GUARD_SET}");
    if let Some(e) = guard_elements(guard) {
        let _ = writeln!(s, "add element inet {t} {GUARD_SET} {{ {e} }}");
    }
    let _ = writeln!(s, "flush chain inet {t} {STANDALONE_CHAIN}");
    for r in standalone_rules() {
        let _ = writeln!(s, "add rule inet {t} {STANDALONE_CHAIN} {r}");
    }
    s
}

/// The `nft -f -` script that removes the standalone table. Adding it first
/// makes the delete succeed when the table is already gone (nft 1.0.6 has no
/// `destroy`).
pub fn standalone_teardown_script() -> String {
    format!("add table inet {STANDALONE_TABLE}\ndelete table inet {STANDALONE_TABLE}\n")
}

/// The guard set inside the fw4 table: the guarded `proto . port` pairs
/// (filled by the daemon at setup, like the standalone [`GUARD_SET`]).
pub const FW4_GUARD: &str = "postern_guard";
/// The capture devices inside the fw4 table (`type ifname`, filled by the
/// daemon): the base-chain includes jump into postern's chains for them.
pub const FW4_DEVICES: &str = "postern_devices";
/// The capture devices whose fw4 zone drops rather than rejects (a subset of
/// [`FW4_DEVICES`], filled by the daemon): guarded ports are dropped there.
pub const FW4_DROP_DEVICES: &str = "postern_drop_devices";
/// IPv4 forward targets closed to sources without a grant, in the fw4 table.
pub const FW4_FWD_GUARD4: &str = "postern_fwd_guard4";
/// IPv6 forward targets closed to sources without a grant, in the fw4 table.
pub const FW4_FWD_GUARD6: &str = "postern_fwd_guard6";
/// postern's regular chain for input from a capture device, in the fw4 table.
pub const FW4_INPUT_CHAIN: &str = "postern_input";
/// postern's regular chain for forwards from a capture device, in the fw4 table.
pub const FW4_FORWARD_CHAIN: &str = "postern_forward";

/// The rules of the fw4 `postern_input` chain, in order: established flows
/// go back to fw4 (which accepts them); a grant accepts unless its source
/// lies in a banned network; every other packet to a guarded port is
/// dropped on a device of a dropping zone and refused as a closed port
/// everywhere else (TCP RST, ICMP port unreachable: what fw4's
/// `handle_reject` sends). Anything else returns to fw4 untouched, so the
/// zone's own rules (DHCP, ICMPv6, user rules) see it as before.
fn fw4_input_rules() -> [String; 6] {
    [
        "ct state established,related return".to_string(),
        format!("meta nfproto ipv4 ip saddr . meta l4proto . th dport @{FW4_ALLOW4} ip saddr != @{FW4_BAN4} counter accept"),
        format!("meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @{FW4_ALLOW6} ip6 saddr != @{FW4_BAN6} counter accept"),
        format!("meta l4proto . th dport @{FW4_GUARD} iifname @{FW4_DROP_DEVICES} counter drop"),
        format!("meta l4proto . th dport @{FW4_GUARD} meta l4proto tcp counter reject with tcp reset"),
        format!("meta l4proto . th dport @{FW4_GUARD} counter reject with icmpx type port-unreachable"),
    ]
}

/// The rules of the fw4 `postern_forward` chain: established flows back to
/// fw4, granted forward sources outside the banned networks accepted, every
/// other packet from a capture device to a configured forward target dropped.
fn fw4_forward_rules() -> Vec<String> {
    let [a4, a6] = forward_accept_rules(
        [FW4_FWD_ALLOW4, FW4_FWD_ALLOW6],
        [FW4_BAN4, FW4_BAN6],
        "counter ",
    );
    vec![
        "ct state established,related return".to_string(),
        a4,
        a6,
        format!(
            "meta nfproto ipv4 ip daddr . meta l4proto . th dport @{FW4_FWD_GUARD4} counter drop"
        ),
        format!(
            "meta nfproto ipv6 ip6 daddr . meta l4proto . th dport @{FW4_FWD_GUARD6} counter drop"
        ),
    ]
}

/// One fw4-include chain block: `chain NAME {` with one rule a line.
fn fw4_chain(name: &str, rules: &[String]) -> String {
    let mut s = format!("chain {name} {{\n");
    for r in rules {
        let _ = writeln!(s, "\t{r}");
    }
    s.push_str("}\n");
    s
}

/// The fw4 include `/usr/share/nftables.d/table-pre/20-postern.nft`, declared
/// inside `table inet fw4` before fw4's chains: the grant, ban and guard
/// sets, the capture-device sets, the forward map and sets, postern's own
/// DNAT base chain (fw4 has a zone's `dstnat_*` chain only when it has
/// redirects) and the regular chains `postern_input` / `postern_forward`
/// that the base-chain includes jump to. Nothing here names a zone.
pub fn fw4_table_pre() -> String {
    format!(
        "{}\n\
         # postern: guarded ports and capture devices (elements added by the postern daemon)\n\
         set {FW4_GUARD} {{\n\ttype inet_proto . inet_service\n}}\n\n\
         set {FW4_DEVICES} {{\n\ttype ifname\n}}\n\n\
         set {FW4_DROP_DEVICES} {{\n\ttype ifname\n}}\n\n\
         # postern: port forwards for granted sources (elements added by the postern daemon)\n\
         map {FW4_FWD4} {{\n\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n\tflags timeout\n}}\n\n\
         set {FW4_FWD_ALLOW4} {{\n\ttype ipv4_addr . ipv4_addr . inet_proto . inet_service\n\tflags timeout\n}}\n\n\
         set {FW4_FWD_ALLOW6} {{\n\ttype ipv6_addr . ipv6_addr . inet_proto . inet_service\n\tflags timeout\n}}\n\n\
         set {FW4_FWD_GUARD4} {{\n\ttype ipv4_addr . inet_proto . inet_service\n}}\n\n\
         set {FW4_FWD_GUARD6} {{\n\ttype ipv6_addr . inet_proto . inet_service\n}}\n\n\
         chain {FW4_DSTNAT_CHAIN} {{\n\t{DSTNAT_HOOK}\n\t{}\n}}\n\n\
         # postern: input from a capture device (jumped to from fw4's input chain,\n\
         # ahead of fw4's zone rules): grants accept, guarded ports are closed\n\
         {}\n\
         # postern: forwards from a capture device: granted sources accepted,\n\
         # other traffic to a forward target dropped\n\
         {}",
        fw4_table_pre_grants(),
        dnat_rule(FW4_FWD4, FW4_BAN4),
        fw4_chain(FW4_INPUT_CHAIN, &fw4_input_rules()),
        fw4_chain(FW4_FORWARD_CHAIN, &fw4_forward_rules()),
    )
}

/// The fw4 include `/usr/share/nftables.d/chain-pre/input/20-postern.nft`:
/// one rule at the top of fw4's base `input` chain (before fw4's own
/// established accept and its zone jumps) sending packets from a capture
/// device through `postern_input`. A base chain is always rendered, in any
/// zone layout: nothing depends on a zone's name.
pub fn fw4_chain_pre_input() -> String {
    format!(
        "# postern: capture devices through postern_input, ahead of every zone's rules\n\
         iifname @{FW4_DEVICES} jump {FW4_INPUT_CHAIN}\n"
    )
}

/// The fw4 include `/usr/share/nftables.d/chain-pre/forward/20-postern.nft`:
/// packets forwarded from a capture device go through `postern_forward`
/// first (granted forwards accepted, other traffic to forward targets dropped).
pub fn fw4_chain_pre_forward() -> String {
    format!(
        "# postern: forwards from capture devices through postern_forward\n\
         iifname @{FW4_DEVICES} jump {FW4_FORWARD_CHAIN}\n"
    )
}

/// The grant and ban sets of [`fw4_table_pre`].
fn fw4_table_pre_grants() -> String {
    format!(
        "# postern: knock/SPA grants (elements added by the postern daemon)\n\
         set {FW4_ALLOW4} {{\n\ttype ipv4_addr . inet_proto . inet_service\n\tflags timeout\n}}\n\n\
         set {FW4_ALLOW6} {{\n\ttype ipv6_addr . inet_proto . inet_service\n\tflags timeout\n}}\n\n\
         # postern: networks banned after too many failed knocks or SPA packets\n\
         # (their grants and forwards stop accepting; nothing else is touched)\n\
         set {FW4_BAN4} {{\n\ttype ipv4_addr\n\tflags interval, timeout\n}}\n\n\
         set {FW4_BAN6} {{\n\ttype ipv6_addr\n\tflags interval, timeout\n}}\n"
    )
}

/// Whether `name` can be a Linux interface name in a postern nft script:
/// 1–15 bytes of ASCII letters, digits and `-_.@:` (no quote, space or
/// wildcard can reach the script).
pub fn is_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b))
}

/// `"eth1", "pppoe-wan"` (sorted, duplicates dropped); `None` when empty.
fn ifname_elements(devices: &[String]) -> Option<String> {
    let mut names: Vec<&str> = devices.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return None;
    }
    Some(
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The `nft -f -` script the fw4 backend's setup runs (one transaction):
/// refills the guard set with `guard`, the device set with `devices` and the
/// drop-device set with `devices` when `drop` (the zones drop rather than
/// reject). Grants, bans and forward grants are left alone. `None` when a
/// device name is not a plain interface name ([`is_ifname`]).
pub fn fw4_setup_script(guard: &[PortSpec], devices: &[String], drop: bool) -> Option<String> {
    if !devices.iter().all(|d| is_ifname(d)) {
        return None;
    }
    let t = FW4_TABLE;
    let mut s = String::new();
    let _ = writeln!(s, "flush set inet {t} {FW4_GUARD}");
    if let Some(e) = guard_elements(guard) {
        let _ = writeln!(s, "add element inet {t} {FW4_GUARD} {{ {e} }}");
    }
    for (set, fill) in [(FW4_DEVICES, true), (FW4_DROP_DEVICES, drop)] {
        let _ = writeln!(s, "flush set inet {t} {set}");
        if let Some(e) = ifname_elements(devices).filter(|_| fill) {
            let _ = writeln!(s, "add element inet {t} {set} {{ {e} }}");
        }
    }
    Some(s)
}

/// The `nft -f -` script the fw4 backend's forward setup runs: refills the
/// forward guard sets with the targets of `forwards` (forward grants, the
/// map and the allow sets are left alone).
pub fn fw4_forward_script(forwards: &[ForwardSpec]) -> String {
    let t = FW4_TABLE;
    let mut s = String::new();
    for (set, ipv6) in [(FW4_FWD_GUARD4, false), (FW4_FWD_GUARD6, true)] {
        let _ = writeln!(s, "flush set inet {t} {set}");
        if let Some(e) = forward_guard_elements(forwards, ipv6) {
            let _ = writeln!(s, "add element inet {t} {set} {{ {e} }}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_text() {
        let guard = [PortSpec::udp(8000), PortSpec::tcp(22), PortSpec::tcp(22)];
        assert_eq!(
            standalone_ruleset(&guard),
            "table inet postern {
  set guard { type inet_proto . inet_service; elements = { tcp . 22, udp . 8000 } }
  set allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
  set allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
  set ban4 { type ipv4_addr; flags interval, timeout; }
  set ban6 { type ipv6_addr; flags interval, timeout; }
  chain input { type filter hook input priority filter - 5; policy accept;
    ct state established,related accept
    meta nfproto ipv4 ip saddr . meta l4proto . th dport @allow4 ip saddr != @ban4 accept
    meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @allow6 ip6 saddr != @ban6 accept
    meta l4proto . th dport @guard meta l4proto tcp reject with tcp reset
    meta l4proto . th dport @guard reject
  }
}
"
        );
        assert!(
            standalone_ruleset(&[]).contains("  set guard { type inet_proto . inet_service; }\n")
        );
    }

    #[test]
    fn setup_script() {
        assert_eq!(
            standalone_setup_script(&[PortSpec::tcp(22), PortSpec::udp(53)]),
            "add table inet postern
add set inet postern guard { type inet_proto . inet_service; }
add set inet postern allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
add set inet postern allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
add set inet postern ban4 { type ipv4_addr; flags interval, timeout; }
add set inet postern ban6 { type ipv6_addr; flags interval, timeout; }
add chain inet postern input { type filter hook input priority filter - 5; policy accept; }
flush set inet postern guard
add element inet postern guard { tcp . 22, udp . 53 }
flush chain inet postern input
add rule inet postern input ct state established,related accept
add rule inet postern input meta nfproto ipv4 ip saddr . meta l4proto . th dport @allow4 ip saddr != @ban4 accept
add rule inet postern input meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @allow6 ip6 saddr != @ban6 accept
add rule inet postern input meta l4proto . th dport @guard meta l4proto tcp reject with tcp reset
add rule inet postern input meta l4proto . th dport @guard reject
"
        );
        let empty = standalone_setup_script(&[]);
        assert!(!empty.contains("add element"));
        assert!(empty.contains("flush set inet postern guard\n"));
        // The allow sets are never flushed: live grants survive a reload.
        assert!(!empty.contains("flush set inet postern allow"));
        assert!(!empty.contains("flush set inet postern ban"));
    }

    #[test]
    fn forward_script() {
        use crate::port::L4Proto;
        use core::net::{Ipv4Addr, Ipv6Addr};
        let web = ForwardSpec {
            proto: L4Proto::Tcp,
            port: 8080,
            to4: Some(Ipv4Addr::new(10, 0, 0, 5)),
            to6: Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5)),
            to_port: 80,
        };
        let dns = ForwardSpec {
            proto: L4Proto::Udp,
            port: 5353,
            to4: Some(Ipv4Addr::new(10, 0, 0, 6)),
            to6: None,
            to_port: 53,
        };
        let s = standalone_forward_script(&[web, dns, web]);
        assert!(s.starts_with("add table inet postern\n"), "{s}");
        for line in [
            "add map inet postern fwd4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; }\n",
            "add set inet postern fwd_allow6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags timeout; }\n",
            "add chain inet postern dstnat { type nat hook prerouting priority dstnat - 5; policy accept; }\n",
            "add chain inet postern forward { type filter hook forward priority filter - 5; policy accept; }\n",
            "add element inet postern fwd_guard4 { 10.0.0.5 . tcp . 80, 10.0.0.6 . udp . 53 }\n",
            "add element inet postern fwd_guard6 { fd00::5 . tcp . 80 }\n",
            "add rule inet postern dstnat meta nfproto ipv4 ip saddr != @ban4 meta l4proto { tcp, udp } dnat ip to ip saddr . meta l4proto . th dport map @fwd4\n",
        ] {
            assert!(s.contains(line), "missing {line} in\n{s}");
        }
        // The forward chain, in order; the allow sets and the map are never flushed.
        let rules: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("add rule inet postern forward "))
            .collect();
        assert_eq!(
            rules,
            [
                "ct state established,related accept",
                "meta nfproto ipv4 ip saddr . ip daddr . meta l4proto . th dport @fwd_allow4 ip saddr != @ban4 accept",
                "meta nfproto ipv6 ip6 saddr . ip6 daddr . meta l4proto . th dport @fwd_allow6 ip6 saddr != @ban6 accept",
                "meta nfproto ipv4 ip daddr . meta l4proto . th dport @fwd_guard4 drop",
                "meta nfproto ipv6 ip6 daddr . meta l4proto . th dport @fwd_guard6 drop",
            ]
        );
        assert!(!s.contains("flush set inet postern fwd_allow") && !s.contains("flush map"));
        // Without forwards the objects are removed, chains before sets.
        let e = standalone_forward_script(&[]);
        let chain = e.find("delete chain inet postern forward").unwrap();
        assert!(
            chain < e.find("delete set inet postern fwd_allow4").unwrap(),
            "{e}"
        );
        assert!(e.contains("delete map inet postern fwd4\n"), "{e}");
        assert!(!e.contains("add rule"), "{e}");
        // fw4: our own DNAT base chain and the postern_forward chain.
        let pre = fw4_table_pre();
        assert!(pre.contains(
            "chain postern_dstnat {\n\ttype nat hook prerouting priority dstnat - 5; policy accept;\n\tmeta nfproto ipv4 ip saddr != @postern_ban4 meta l4proto { tcp, udp } dnat ip to ip saddr . meta l4proto . th dport map @postern_fwd4\n}\n"
        ));
        assert!(pre.contains(
            "chain postern_forward {\n\tct state established,related return\n\tmeta nfproto ipv4 ip saddr . ip daddr . meta l4proto . th dport @postern_fwd_allow4 ip saddr != @postern_ban4 counter accept\n"
        ), "{pre}");
        assert_eq!(
            fw4_forward_script(&[web, dns]),
            "flush set inet fw4 postern_fwd_guard4\n\
             add element inet fw4 postern_fwd_guard4 { 10.0.0.5 . tcp . 80, 10.0.0.6 . udp . 53 }\n\
             flush set inet fw4 postern_fwd_guard6\n\
             add element inet fw4 postern_fwd_guard6 { fd00::5 . tcp . 80 }\n"
        );
        assert_eq!(
            fw4_forward_script(&[]),
            "flush set inet fw4 postern_fwd_guard4\nflush set inet fw4 postern_fwd_guard6\n"
        );
    }

    #[test]
    fn teardown_and_fw4_includes() {
        assert_eq!(
            standalone_teardown_script(),
            "add table inet postern\ndelete table inet postern\n"
        );
        let pre = fw4_table_pre();
        assert!(pre.contains(
            "set postern_allow4 {\n\ttype ipv4_addr . inet_proto . inet_service\n\tflags timeout\n}"
        ));
        assert!(pre.contains("set postern_allow6 {\n\ttype ipv6_addr"));
        assert!(pre.contains("set postern_ban4 {\n\ttype ipv4_addr\n\tflags interval, timeout\n}"));
        assert!(pre.contains("set postern_ban6 {\n\ttype ipv6_addr\n\tflags interval, timeout\n}"));
        // The input chain: established back to fw4, grants (not banned)
        // accepted, then the guard, ahead of every zone's own rules.
        let chain = &pre[pre.find("chain postern_input {").unwrap()..];
        let rules: Vec<&str> = chain
            .lines()
            .skip(1)
            .take_while(|l| *l != "}")
            .map(str::trim)
            .collect();
        assert_eq!(
            rules,
            [
                "ct state established,related return",
                "meta nfproto ipv4 ip saddr . meta l4proto . th dport @postern_allow4 ip saddr != @postern_ban4 counter accept",
                "meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @postern_allow6 ip6 saddr != @postern_ban6 counter accept",
                "meta l4proto . th dport @postern_guard iifname @postern_drop_devices counter drop",
                "meta l4proto . th dport @postern_guard meta l4proto tcp counter reject with tcp reset",
                "meta l4proto . th dport @postern_guard counter reject with icmpx type port-unreachable",
            ]
        );
        // The base-chain includes name no zone.
        for (include, chain) in [
            (fw4_chain_pre_input(), "postern_input"),
            (fw4_chain_pre_forward(), "postern_forward"),
        ] {
            let rules: Vec<&str> = include.lines().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(rules, [format!("iifname @postern_devices jump {chain}")]);
        }
    }

    #[test]
    fn fw4_setup_fills_guard_and_device_sets() {
        let devs = ["pppoe-wan".to_string(), "eth1".to_string()];
        let guard = [PortSpec::tcp(2222), PortSpec::udp(53)];
        assert_eq!(
            fw4_setup_script(&guard, &devs, false).unwrap(),
            "flush set inet fw4 postern_guard\n\
             add element inet fw4 postern_guard { tcp . 2222, udp . 53 }\n\
             flush set inet fw4 postern_devices\n\
             add element inet fw4 postern_devices { \"eth1\", \"pppoe-wan\" }\n\
             flush set inet fw4 postern_drop_devices\n"
        );
        let drop = fw4_setup_script(&[], &devs, true).unwrap();
        assert!(!drop.contains("postern_guard {"), "{drop}");
        assert!(drop.ends_with(
            "flush set inet fw4 postern_drop_devices\n\
             add element inet fw4 postern_drop_devices { \"eth1\", \"pppoe-wan\" }\n"
        ));
        // A name that could break out of the quotes never reaches nft.
        for bad in ["eth\"0", "a b", "", "sixteen-chars-xx", "eth+"] {
            assert!(
                fw4_setup_script(&guard, &[bad.to_string()], false).is_none(),
                "{bad}"
            );
        }
    }
}
