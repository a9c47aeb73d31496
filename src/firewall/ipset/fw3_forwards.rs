//! The iptables side of fw3 port forwards as shell text.
//!
//! Owns the commands that (re)build postern's nat chain `postern_fwd`: one
//! DNAT rule per configured IPv4 forward, taken only by sources in the ipset
//! `postern_fwd4` outside the banned networks of `postern_ban4`, and the jump to it from fw3's `prerouting_wan_rule`. The
//! fw3 include runs this text (`postern fw3-forwards | sh`) on every firewall
//! reload, since fw3 flushes its `*_rule` chains; the fw3 backend runs it
//! after a daemon reload. Pure string building, no I/O. The sets and the
//! forward accept rules are static and live in the include itself.

use core::fmt::Write as _;

use super::{BAN4, FWD4, FWD_CHAIN};
use crate::firewall::ForwardSpec;

/// fw3's per-zone nat hook for user rules on the WAN (flushed by fw3 reloads).
pub const PREROUTING_CHAIN: &str = "prerouting_wan_rule";

/// The `sh` script that makes `postern_fwd` hold exactly the DNAT rules of
/// `forwards` (IPv4 targets only; IPv6 forwards need no NAT) and makes sure
/// `prerouting_wan_rule` jumps to it. Idempotent.
pub fn forward_rules_script(forwards: &[ForwardSpec]) -> String {
    let mut s = String::from("# postern: DNAT for sources granted a port forward\nset -e\n");
    let _ = writeln!(s, "iptables -t nat -N {FWD_CHAIN} 2>/dev/null || true");
    let _ = writeln!(s, "iptables -t nat -F {FWD_CHAIN}");
    let mut seen: Vec<&ForwardSpec> = Vec::new();
    for f in forwards {
        let Some(to4) = f.to4 else { continue };
        if seen.iter().any(|g| g.proto == f.proto && g.port == f.port) {
            continue; // one DNAT per external port: the first one wins
        }
        seen.push(f);
        let _ = writeln!(
            s,
            "iptables -t nat -A {FWD_CHAIN} -p {} --dport {} -m set --match-set {FWD4} src,dst -m set ! --match-set {BAN4} src -j DNAT --to-destination {to4}:{}",
            f.proto, f.port, f.to_port
        );
    }
    let _ = writeln!(
        s,
        "iptables -t nat -C {PREROUTING_CHAIN} -j {FWD_CHAIN} 2>/dev/null ||\n\tiptables -t nat -A {PREROUTING_CHAIN} -j {FWD_CHAIN}"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::L4Proto;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn one_dnat_rule_per_ipv4_forward() {
        let web = ForwardSpec {
            proto: L4Proto::Tcp,
            port: 8080,
            to4: Some(Ipv4Addr::new(192, 168, 1, 5)),
            to6: Some(Ipv6Addr::LOCALHOST),
            to_port: 80,
        };
        let v6_only = ForwardSpec {
            proto: L4Proto::Udp,
            port: 51820,
            to4: None,
            to6: Some(Ipv6Addr::LOCALHOST),
            to_port: 51820,
        };
        let dup = ForwardSpec {
            to4: Some(Ipv4Addr::new(192, 168, 1, 6)),
            ..web
        };
        assert_eq!(
            forward_rules_script(&[web, v6_only, dup]),
            "# postern: DNAT for sources granted a port forward
set -e
iptables -t nat -N postern_fwd 2>/dev/null || true
iptables -t nat -F postern_fwd
iptables -t nat -A postern_fwd -p tcp --dport 8080 -m set --match-set postern_fwd4 src,dst -m set ! --match-set postern_ban4 src -j DNAT --to-destination 192.168.1.5:80
iptables -t nat -C prerouting_wan_rule -j postern_fwd 2>/dev/null ||
\tiptables -t nat -A prerouting_wan_rule -j postern_fwd
"
        );
        // No forwards: the chain is emptied, nothing else.
        let empty = forward_rules_script(&[]);
        assert!(!empty.contains("-j DNAT"), "{empty}");
        assert!(empty.contains("-F postern_fwd\n"), "{empty}");
    }
}
