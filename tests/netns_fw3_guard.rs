//! The fw3 guard against an fw3 stand-in (what fw3 renders for OpenWrt's
//! default `/etc/config/firewall`: `INPUT` → `-i lo` accept → the custom
//! `input_rule` chain → established accept → `syn_flood` → the zone jumps;
//! `zone_ZONE_input` → `input_ZONE_rule` → Allow-DHCP-Renew, Allow-Ping, the
//! user's "Allow-SSH-WAN" accept of the guarded port → the zone's reject),
//! loaded with iptables and ip6tables into the router namespace, then the
//! shipped `fw3.include` and the fw3 backend's setup:
//! * the attack: the user's rule accepted the guarded port for everyone
//!   (postern's include only added accepts to `input_wan_rule`);
//! * now the guard closes it ahead of every zone's rules on the capture
//!   devices, as the zone refuses (RST / ICMP port unreachable, silence where
//!   the zone drops), in a zone of any name, and a grant opens it.
//!
//! Root only: SKIPPED when not root, except under CI=true where it must run.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use postern::demo::{self, Lab, CLIENT_V4, CLIENT_V6, DEMO_PORT, ROUTER_V4, ROUTER_V6};
use postern::firewall::ipset::Fw3Backend;
use postern::firewall::{Backend, Grant, GuardVerdict};
use postern::port::PortSpec;

/// A guarded UDP port (nothing listens on it).
const GUARDED_UDP: u16 = 5300;
/// A router port no rule opens (the zone's own refusal).
const CLOSED: u16 = 2424;
const PROBE: Duration = Duration::from_millis(700);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when the test may run; prints SKIPPED (or fails under CI) otherwise.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        !in_ci(),
        "{test}: needs root, and CI=true: netns tests must run in CI"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: needs root (network namespaces, iptables, ipset). Run: sudo -E cargo test ***\n"
    );
    false
}

/// How a port answered a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// TCP: connected. UDP: a datagram came back.
    Open,
    /// TCP RST or ICMP port unreachable.
    Refused,
    /// Nothing within the probe time.
    Silence,
}

/// How `dst` answers a new TCP connection from namespace `ns`.
fn tcp(ns: &str, dst: SocketAddr) -> Answer {
    demo::in_netns(ns, move || match TcpStream::connect_timeout(&dst, PROBE) {
        Ok(_) => Answer::Open,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Answer::Refused,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Answer::Silence,
        Err(e) => panic!("tcp -> {dst}: {e}"),
    })
    .unwrap()
}

/// How `dst` answers a UDP datagram from namespace `ns`.
fn udp(ns: &str, dst: SocketAddr) -> Answer {
    demo::in_netns(ns, move || {
        let any: SocketAddr = if dst.is_ipv6() {
            "[::]:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        };
        let s = UdpSocket::bind(any).unwrap();
        s.connect(dst).unwrap();
        s.set_read_timeout(Some(PROBE)).unwrap();
        s.send(b"probe").unwrap();
        match s.recv(&mut [0u8; 16]) {
            Ok(_) => Answer::Open,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Answer::Refused,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Answer::Silence
            }
            Err(e) => panic!("udp -> {dst}: {e}"),
        }
    })
    .unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn include() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openwrt/postern/files/fw3.include")
}

/// The filter table fw3 renders (`iptables-save` shape) for OpenWrt's default
/// firewall config with the WAN zone named `zone` on `dev` (input `policy`:
/// `REJECT` or `DROP`) and an "Allow-SSH-WAN" rule accepting tcp/`port`.
/// `v6`: the ip6tables variant (ICMPv6 rules and reject codes).
fn fw3_filter(zone: &str, dev: &str, policy: &str, port: u16, v6: bool) -> String {
    let (icmp, ping, unreach) = if v6 {
        (
            "ipv6-icmp",
            "-m icmp6 --icmpv6-type 128",
            "icmp6-port-unreachable",
        )
    } else {
        ("icmp", "-m icmp --icmp-type 8", "icmp-port-unreachable")
    };
    let src = format!("zone_{zone}_src_{policy}");
    let verdict = if policy == "DROP" { "DROP" } else { "reject" };
    format!(
        "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:input_rule - [0:0]
:output_rule - [0:0]
:forwarding_rule - [0:0]
:syn_flood - [0:0]
:reject - [0:0]
:input_lan_rule - [0:0]
:input_{zone}_rule - [0:0]
:forwarding_{zone}_rule - [0:0]
:zone_lan_input - [0:0]
:zone_lan_src_ACCEPT - [0:0]
:zone_{zone}_input - [0:0]
:{src} - [0:0]
-A INPUT -i lo -m comment --comment \"!fw3\" -j ACCEPT
-A INPUT -m comment --comment \"!fw3: Custom input rule chain\" -j input_rule
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"!fw3\" -j ACCEPT
-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment \"!fw3\" -j syn_flood
-A INPUT -i br-lan -m comment --comment \"!fw3\" -j zone_lan_input
-A INPUT -i {dev} -m comment --comment \"!fw3\" -j zone_{zone}_input
-A syn_flood -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m limit --limit 25/sec --limit-burst 50 -m comment --comment \"!fw3\" -j RETURN
-A syn_flood -m comment --comment \"!fw3\" -j DROP
-A reject -p tcp -m comment --comment \"!fw3\" -j REJECT --reject-with tcp-reset
-A reject -m comment --comment \"!fw3\" -j REJECT --reject-with {unreach}
-A zone_lan_input -m comment --comment \"!fw3: Custom lan input rule chain\" -j input_lan_rule
-A zone_lan_input -m conntrack --ctstate DNAT -m comment --comment \"!fw3: Accept port redirections\" -j ACCEPT
-A zone_lan_input -m comment --comment \"!fw3\" -j zone_lan_src_ACCEPT
-A zone_lan_src_ACCEPT -i br-lan -m conntrack --ctstate NEW,UNTRACKED -m comment --comment \"!fw3\" -j ACCEPT
-A zone_{zone}_input -m comment --comment \"!fw3: Custom {zone} input rule chain\" -j input_{zone}_rule
-A zone_{zone}_input -p udp -m udp --dport 68 -m comment --comment \"!fw3: Allow-DHCP-Renew\" -j ACCEPT
-A zone_{zone}_input -p {icmp} {ping} -m limit --limit 1000/sec -m comment --comment \"!fw3: Allow-Ping\" -j ACCEPT
-A zone_{zone}_input -p tcp -m tcp --dport {port} -m comment --comment \"!fw3: Allow-SSH-WAN\" -j ACCEPT
-A zone_{zone}_input -m conntrack --ctstate DNAT -m comment --comment \"!fw3: Accept port redirections\" -j ACCEPT
-A zone_{zone}_input -m comment --comment \"!fw3\" -j {src}
-A {src} -i {dev} -m comment --comment \"!fw3\" -j {verdict}
COMMIT
"
    )
}

/// Loads the stand-in (both families) into the router and runs the shipped
/// include, as fw3 does on every start and reload.
fn load_fw3(lab: &Lab, zone: &str, policy: &str) {
    for (tool, v6) in [("iptables-restore", false), ("ip6tables-restore", true)] {
        let path = lab.dir().join(format!("fw3-{zone}-{v6}.rules"));
        std::fs::write(
            &path,
            fw3_filter(zone, &lab.router_dev, policy, DEMO_PORT, v6),
        )
        .unwrap();
        run_ok(&[
            "ip",
            "netns",
            "exec",
            &lab.router_ns,
            tool,
            path.to_str().unwrap(),
        ]);
    }
    run_ok(&[
        "ip",
        "netns",
        "exec",
        &lab.router_ns,
        "sh",
        include().to_str().unwrap(),
    ]);
}

/// Runs `f` with the backend inside the router namespace and gives it back.
fn in_router<T: Send + 'static>(
    lab: &Lab,
    mut b: Fw3Backend,
    f: impl FnOnce(&mut Fw3Backend) -> T + Send + 'static,
) -> (Fw3Backend, T) {
    demo::in_netns(&lab.router_ns, move || {
        let t = f(&mut b);
        (b, t)
    })
    .unwrap()
}

fn grant(addr: IpAddr) -> Grant {
    Grant {
        addr,
        port: PortSpec::tcp(DEMO_PORT),
        timeout: Duration::from_secs(60),
    }
}

fn lab(prefix: &str) -> Lab {
    let tag = format!("{prefix}{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// Issue 16, the fw3 side of item 1, the attack first: with an
/// "Allow-SSH-WAN" rule accepting the guarded port in the WAN zone, the port
/// was open to the Internet on fw3 while postern logged "guarding" (the
/// include only added grant accepts to `input_wan_rule`, and fw3 puts user
/// rules after that chain in `zone_wan_input`). Now the guard, hooked into
/// fw3's `input_rule` ahead of every zone, closes it as the zone refuses, in
/// a zone named `wan` or `uplink`; grants open it; the zone's other rules
/// and established sessions are untouched.
#[test]
fn fw3_guard_closes_a_port_a_user_rule_accepts_in_any_zone() {
    if !root_or_skip("fw3_guard_closes_a_port_a_user_rule_accepts_in_any_zone") {
        return;
    }
    for (i, zone) in ["wan", "uplink"].into_iter().enumerate() {
        let lab = lab(&format!("f3g{i}"));
        load_fw3(&lab, zone, "REJECT");
        let c = lab.client_ns.clone();
        let v4 = |port| SocketAddr::new(IpAddr::V4(ROUTER_V4), port);
        let v6 = |port| SocketAddr::new(IpAddr::V6(ROUTER_V6), port);
        assert_eq!(tcp(&c, v4(DEMO_PORT)), Answer::Open, "{zone}: user rule");

        let dev = lab.router_dev.clone();
        let (b, r) = in_router(&lab, Fw3Backend::new(), move |b| {
            b.set_capture(&[dev], GuardVerdict::Reject);
            b.setup(&[PortSpec::tcp(DEMO_PORT), PortSpec::udp(GUARDED_UDP)])
        });
        r.expect("setup");
        assert_eq!(
            tcp(&c, v4(DEMO_PORT)),
            Answer::Refused,
            "{zone}: v4 guarded despite the user's accept rule"
        );
        assert_eq!(
            tcp(&c, v6(DEMO_PORT)),
            Answer::Refused,
            "{zone}: v6 guarded"
        );
        assert_eq!(udp(&c, v4(GUARDED_UDP)), Answer::Refused, "{zone}: udp");
        assert_eq!(udp(&c, v6(GUARDED_UDP)), Answer::Refused, "{zone}: udp6");
        assert_eq!(tcp(&c, v4(CLOSED)), Answer::Refused, "{zone}: closed");
        // The zone's default rules still work (Allow-DHCP-Renew: udp/68).
        let sink =
            demo::in_netns(&lab.router_ns, || UdpSocket::bind("0.0.0.0:68").unwrap()).unwrap();
        sink.set_read_timeout(Some(PROBE)).unwrap();
        demo::in_netns(&c, move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"renew", v4(68)).unwrap();
        })
        .unwrap();
        assert!(sink.recv(&mut [0u8; 8]).is_ok(), "{zone}: Allow-DHCP-Renew");

        // fw3 reruns the include on every reload: still one jump, still guarded.
        load_fw3(&lab, zone, "REJECT");
        let jumps = lab
            .sh_in_router("iptables -S input_rule | grep -c postern_input")
            .unwrap();
        assert_eq!(jumps.trim(), "1", "{zone}: one jump after a reload");
        assert_eq!(
            tcp(&c, v4(DEMO_PORT)),
            Answer::Refused,
            "{zone}: guarded after a reload"
        );

        let (b, r) = in_router(&lab, b, |b| {
            b.grant(&grant(IpAddr::V4(CLIENT_V4)))?;
            b.grant(&grant(IpAddr::V6(CLIENT_V6)))
        });
        r.expect("grant");
        assert_eq!(tcp(&c, v4(DEMO_PORT)), Answer::Open, "{zone}: v4 granted");
        assert_eq!(tcp(&c, v6(DEMO_PORT)), Answer::Open, "{zone}: v6 granted");
        // An established connection outlives its grant.
        let session =
            demo::in_netns(&c, move || TcpStream::connect(v4(DEMO_PORT)).unwrap()).unwrap();
        let (_b, r) = in_router(&lab, b, |b| {
            b.revoke(IpAddr::V4(CLIENT_V4), PortSpec::tcp(DEMO_PORT))
        });
        r.expect("revoke");
        assert_eq!(tcp(&c, v4(DEMO_PORT)), Answer::Refused, "{zone}: revoked");
        let mut line = String::new();
        use std::io::BufRead as _;
        session
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        std::io::BufReader::new(&session)
            .read_line(&mut line)
            .expect("the established session still reads");
        assert!(!line.is_empty());
    }
}

/// In a zone whose input policy is DROP the guard drops too: a scanner sees
/// guarded ports exactly like the zone's closed ones (silence).
#[test]
fn fw3_guard_drops_where_the_zone_drops() {
    if !root_or_skip("fw3_guard_drops_where_the_zone_drops") {
        return;
    }
    let lab = lab("f3d");
    load_fw3(&lab, "uplink", "DROP");
    let c = lab.client_ns.clone();
    let v4 = |port| SocketAddr::new(IpAddr::V4(ROUTER_V4), port);
    let dev = lab.router_dev.clone();
    let (_b, r) = in_router(&lab, Fw3Backend::new(), move |b| {
        b.set_capture(&[dev], GuardVerdict::Drop);
        b.setup(&[PortSpec::tcp(DEMO_PORT), PortSpec::udp(GUARDED_UDP)])
    });
    r.expect("setup");
    assert_eq!(tcp(&c, v4(DEMO_PORT)), Answer::Silence, "guarded");
    assert_eq!(tcp(&c, v4(CLOSED)), Answer::Silence, "closed");
    assert_eq!(udp(&c, v4(GUARDED_UDP)), Answer::Silence, "udp guarded");
}
