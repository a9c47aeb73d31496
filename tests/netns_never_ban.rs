//! Bans that an attacker cannot turn against the router's own neighbours, end
//! to end on a real kernel: network namespaces, nftables (the standalone
//! backend), the real daemon binary. Junk SPA datagrams spoofed "from" the
//! router's default gateway (IPv4) or from a link-local address (IPv6: the
//! upstream router's fe80::) never ban it, also after the gateway changes
//! at run time; a spoofed ordinary source is still banned, an IPv6 one as
//! its /64 (rotating addresses within it does not escape); a reload to
//! `ban_ipv6_prefix 128` lifts that /64 ban and bans per address.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern::demo::{self, Lab, ROUTER_X_V4, ROUTER_X_V6};
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SPA_PORT: u16 = 62201;
/// The router's default gateway, on the attacker's link.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 213, 1, 254);
/// The gateway after a "reconnect".
const NEW_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 213, 1, 253);
/// The upstream router's link-local address, and the router's own.
const UPSTREAM_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
/// Ordinary remote sources the attacker spoofs.
const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 7);
const REMOTE_V6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x55, 0, 0, 0, 0, 7);
const REMOTE_V6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x55, 0, 0xaaaa, 0, 0, 8);

fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bans after 3 failures, an SPA client so the SPA port is watched, and
/// `extra` main options.
fn config(lab: &Lab, extra: &str) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\
         \toption ban_threshold '3'\n\toption ban_window '60'\n\toption ban_duration '300'\n{extra}\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:2222'\n",
        lab.dir().join("state").display()
    )
}

/// `n` junk datagrams the size of an SPA packet from `from` (an address of
/// namespace `ns`) to `to`.
fn junk(ns: &str, from: SocketAddr, to: SocketAddr, n: usize) {
    demo::in_netns(ns, move || {
        let s = UdpSocket::bind(from).unwrap_or_else(|e| panic!("bind {from}: {e}"));
        for i in 0..n {
            s.send_to(&[0x5a ^ i as u8; 120], to)
                .unwrap_or_else(|e| panic!("send {from} -> {to}: {e}"));
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .unwrap();
}

fn v4(a: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(a), port)
}

fn nft_set(lab: &Lab, set: &str) -> String {
    lab.sh_in_router(&format!("nft list set inet postern {set}"))
        .unwrap_or_default()
}

#[test]
fn spoofed_gateway_and_link_local_sources_are_never_banned() {
    if !root_or_skip("spoofed_gateway_and_link_local_sources_are_never_banned") {
        return;
    }
    let tag = format!("nb{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.add_attacker().unwrap();
    let x = lab.attacker_ns.clone().unwrap();
    let (r, rx) = (lab.router_ns.clone(), lab.router_x_dev.clone().unwrap());
    let ax = ip_link_of(&x);
    // The router's default gateway is on the attacker's link; the attacker
    // can send with its address, a link-local one, and remote ones.
    ip(&format!(
        "-n {r} route add default via {GATEWAY} dev {rx} onlink"
    ));
    ip(&format!("-n {r} addr add {ROUTER_LL}/64 dev {rx} nodad"));
    for a in [GATEWAY, NEW_GATEWAY, REMOTE_V4] {
        ip(&format!("-n {x} addr add {a}/32 dev {ax}"));
    }
    ip(&format!("-n {x} addr add {UPSTREAM_LL}/64 dev {ax} nodad"));
    for a in [REMOTE_V6_A, REMOTE_V6_B] {
        ip(&format!("-n {x} addr add {a}/128 dev {ax} nodad"));
    }
    lab.start_daemon(Path::new(EXE), &config(&lab, ""), None)
        .unwrap();
    lab.daemons_wait(&format!(
        "never banned (own addresses, subnets, gateways): {GATEWAY}/32"
    ));
    let scope = if_index(&x, &ax);
    let spa4 = v4(ROUTER_X_V4, SPA_PORT);

    // 10 junk datagrams each "from" the gateway and from fe80::1.
    junk(&x, v4(GATEWAY, 0), spa4, 10);
    let ll = |a: Ipv6Addr, port| SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope));
    junk(&x, ll(UPSTREAM_LL, 0), ll(ROUTER_LL, SPA_PORT), 10);
    // Then an ordinary spoofed source of each family: banned, IPv6 as its
    // /64 although no address of it failed three times.
    junk(&x, v4(REMOTE_V4, 0), spa4, 3);
    let spa6 = SocketAddr::new(IpAddr::V6(ROUTER_X_V6), SPA_PORT);
    junk(&x, SocketAddr::new(IpAddr::V6(REMOTE_V6_A), 0), spa6, 2);
    junk(&x, SocketAddr::new(IpAddr::V6(REMOTE_V6_B), 0), spa6, 1);
    lab.daemons_wait(&format!("banned {REMOTE_V4} for 300 s"));
    lab.daemons_wait("banned 2001:db8:55::/64 for 300 s");

    let log = lab.daemon(0).log().join("\n");
    assert!(!log.contains(&format!("banned {GATEWAY}")), "{log}");
    assert!(!log.contains("banned fe80"), "{log}");
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("banned sources: 2\n"), "{status}");
    assert!(status.contains(&format!("  {REMOTE_V4} ")), "{status}");
    assert!(status.contains("  2001:db8:55::/64 "), "{status}");
    assert!(status.contains("protected_failures=20"), "{status}");
    let json = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(json.contains("{\"addr\":\"2001:db8:55::/64\""), "{json}");
    let (ban4, ban6) = (nft_set(&lab, "ban4"), nft_set(&lab, "ban6"));
    assert!(ban4.contains(&REMOTE_V4.to_string()), "{ban4}");
    assert!(!ban4.contains(&GATEWAY.to_string()), "{ban4}");
    assert!(ban6.contains("2001:db8:55::"), "{ban6}");
    assert!(!ban6.contains("fe80"), "{ban6}");

    // A "reconnect" moves the default gateway: the change is noticed on the
    // next tick, and the new gateway is never banned either.
    ip(&format!(
        "-n {r} route replace default via {NEW_GATEWAY} dev {rx} onlink"
    ));
    lab.daemons_wait(&format!(
        "never banned (own addresses, subnets, gateways): {NEW_GATEWAY}/32"
    ));
    junk(&x, v4(NEW_GATEWAY, 0), spa4, 10);
    // Sent after the junk on the same link: once it is seen, so was the junk.
    junk(&x, v4(REMOTE_V4, 0), spa4, 1);
    std::thread::sleep(Duration::from_millis(300));
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("protected_failures=30"), "{status}");
    assert!(status.contains("banned sources: 2\n"), "{status}");
    let log = lab.daemon(0).log().join("\n");
    assert!(!log.contains(&format!("banned {NEW_GATEWAY}")), "{log}");
    assert!(!nft_set(&lab, "ban4").contains(&NEW_GATEWAY.to_string()));

    // A reload to per-address IPv6 bans lifts the /64 ban, keeps the IPv4
    // one, and still spares the gateway.
    let per_address = config(&lab, "\toption ban_ipv6_prefix '128'\n");
    std::fs::write(lab.config_path(0), per_address).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait("lifted the ban of 2001:db8:55::/64: no longer banned by the configuration");
    junk(&x, v4(NEW_GATEWAY, 0), spa4, 10);
    junk(&x, SocketAddr::new(IpAddr::V6(REMOTE_V6_A), 0), spa6, 2);
    junk(&x, SocketAddr::new(IpAddr::V6(REMOTE_V6_B), 0), spa6, 2);
    junk(&x, SocketAddr::new(IpAddr::V6(REMOTE_V6_A), 0), spa6, 1);
    lab.daemons_wait(&format!("banned {REMOTE_V6_A} for 300 s"));
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("banned sources: 2\n"), "{status}");
    assert!(status.contains(&format!("  {REMOTE_V4} ")), "{status}");
    assert!(status.contains(&format!("  {REMOTE_V6_A} ")), "{status}");
    assert!(status.contains("protected_failures=40"), "{status}");
    let log = lab.daemon(0).log().join("\n");
    assert!(!log.contains(&format!("banned {REMOTE_V6_B}")), "{log}");
    assert!(!log.contains(&format!("banned {NEW_GATEWAY}")), "{log}");
}

/// The name of the attacker's only non-loopback link.
fn ip_link_of(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .find(|n| n != "lo")
        .unwrap_or_else(|| panic!("no link in {ns}: {text}"))
}

/// The interface index of `dev` in `ns`.
fn if_index(ns: &str, dev: &str) -> u32 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/ifindex"),
        ])
        .output()
        .expect("read ifindex");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ifindex")
}
