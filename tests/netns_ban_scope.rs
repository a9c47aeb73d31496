//! What a ban closes, end to end on a real kernel (issue 14 items 1 and 5).
//!
//! Bans come from failures that need no key (junk SPA datagrams, wrong
//! knocks), so anyone who can forge a source address can get it banned. A
//! ban must therefore only stop *new connections to what postern guards*
//! from the banned network: never established flows, other services,
//! ICMPv6 neighbour discovery, or other networks. And a guarded port must
//! answer like any closed port (TCP RST, ICMP port unreachable), for a
//! source without a grant and for a banned one alike, so that neither the
//! guard nor the ban can be seen from outside.
//!
//! * the daemon with the standalone backend, a source banned by junk SPA
//!   datagrams with its address (IPv4);
//! * the standalone table driven directly: an IPv6 ban of a /64 (the
//!   prefix the engine bans) covers the other addresses of that /64;
//! * a fw4-shaped table built from the shipped includes.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[path = "support/fw4_standin.rs"]
mod fw4_standin;

use postern::cidr::Cidr;
use postern::demo::{
    self, Lab, ATTACKER_V6, CLIENT_V4, CLIENT_V6, DEMO_PORT, LAN_V4, LAN_V6, ROUTER_V4, ROUTER_V6,
    ROUTER_X_V6,
};
use postern::firewall::nft::NftBackend;
use postern::firewall::{Backend, ForwardGrant, ForwardSpec, Grant, GuardVerdict};
use postern::port::PortSpec;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SPA_PORT: u16 = 62201;
const SEQUENCE: [&str; 3] = ["tcp:7000", "udp:8000", "tcp:9000"];
/// A UDP port the sequence also opens (guarded; nothing listens on it).
const GUARDED_UDP: u16 = 5300;
/// A service on the router that postern does not guard.
const UNGUARDED: u16 = 2323;
/// A port nothing listens on and postern does not guard.
const CLOSED: u16 = 2424;
/// A second address of the client, in the same /64 as [`CLIENT_V6`].
const CLIENT_V6_OTHER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x213, 0, 0, 0, 0, 0, 0x99);
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
        "\n*** SKIPPED {test}: needs root (network namespaces, nftables). Run: sudo -E cargo test ***\n"
    );
    false
}

/// How a port answered a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// TCP: the connection opened. UDP: a datagram came back.
    Open,
    /// TCP: RST (`ECONNREFUSED`). UDP: ICMP port unreachable (`ECONNREFUSED`).
    Refused,
    /// Nothing within the probe time (a silent drop).
    Silence,
}

/// A TCP connection from `src` (bound) in namespace `ns` to `dst`.
fn tcp_connect(ns: &str, src: IpAddr, dst: SocketAddr) -> Result<TcpStream, Answer> {
    use nix::errno::Errno;
    use nix::sys::socket::{
        bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
        SockaddrIn6,
    };
    demo::in_netns(ns, move || {
        let family = if dst.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        let tv = nix::sys::time::TimeVal::new(0, PROBE.as_micros() as _);
        setsockopt(&fd, sockopt::SendTimeout, &tv).unwrap();
        let src = SocketAddr::new(src, 0);
        let r = match (src, dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => bind(fd.as_raw_fd(), &SockaddrIn::from(s))
                .and_then(|_| connect(fd.as_raw_fd(), &SockaddrIn::from(d))),
            (SocketAddr::V6(s), SocketAddr::V6(d)) => bind(fd.as_raw_fd(), &SockaddrIn6::from(s))
                .and_then(|_| connect(fd.as_raw_fd(), &SockaddrIn6::from(d))),
            _ => panic!("mixed families"),
        };
        match r {
            Ok(()) => {
                let s = TcpStream::from(fd);
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                Ok(s)
            }
            Err(Errno::ECONNREFUSED) => Err(Answer::Refused),
            Err(Errno::EINPROGRESS | Errno::EAGAIN | Errno::ETIMEDOUT) => Err(Answer::Silence),
            Err(e) => panic!("connect {src} -> {dst}: {e}"),
        }
    })
    .unwrap()
}

/// How `dst` answers a new TCP connection from `src` in `ns`.
fn tcp(ns: &str, src: IpAddr, dst: SocketAddr) -> Answer {
    match tcp_connect(ns, src, dst) {
        Ok(_) => Answer::Open,
        Err(a) => a,
    }
}

/// How `dst` answers a UDP datagram from `src` in `ns` (a connected socket
/// reports an ICMP port unreachable as `ECONNREFUSED`).
fn udp(ns: &str, src: IpAddr, dst: SocketAddr) -> Answer {
    demo::in_netns(ns, move || {
        let s = UdpSocket::bind(SocketAddr::new(src, 0)).unwrap();
        s.connect(dst).unwrap();
        s.set_read_timeout(Some(PROBE)).unwrap();
        s.send(b"probe").unwrap();
        let mut buf = [0u8; 64];
        match s.recv(&mut buf) {
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
            Err(e) => panic!("udp {src} -> {dst}: {e}"),
        }
    })
    .unwrap()
}

/// UDP sockets bound in the router namespace (they swallow datagrams).
fn udp_sinks(lab: &Lab, ports: &[u16]) -> Vec<UdpSocket> {
    let ports = ports.to_vec();
    demo::in_netns(&lab.router_ns, move || {
        ports
            .iter()
            .map(|p| {
                UdpSocket::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *p)).unwrap()
            })
            .collect()
    })
    .unwrap()
}

/// Sends a line on an established connection and reads the echo.
fn echo(s: &mut TcpStream, text: &str) -> std::io::Result<String> {
    s.write_all(format!("{text}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

/// Opens a connection and reads the service's greeting.
fn established(ns: &str, src: IpAddr, dst: SocketAddr) -> TcpStream {
    established_with(ns, src, dst, "hello from the router")
}

/// Opens a connection and checks the service's greeting.
fn established_with(ns: &str, src: IpAddr, dst: SocketAddr, greeting: &str) -> TcpStream {
    let mut s = tcp_connect(ns, src, dst)
        .unwrap_or_else(|a| panic!("{src} -> {dst}: {a:?} before the ban"));
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), greeting);
    s
}

/// `postern knock HOST KNOCKS...` from namespace `ns`.
fn knock_from(ns: &str, host: IpAddr, knocks: &[&str]) {
    let host = host.to_string();
    let mut args = vec![EXE, "knock", host.as_str()];
    args.extend_from_slice(knocks);
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(&args)
        .output()
        .expect("run postern knock");
    assert!(
        out.status.success(),
        "postern knock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` datagrams of junk the size of an SPA packet from `ns` to `to`'s SPA
/// port: what an off-path attacker sends with a forged source address.
fn junk_spa(ns: &str, to: IpAddr, n: usize) {
    demo::in_netns(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..n {
            s.send_to(&[0x5a ^ i as u8; 120], SocketAddr::new(to, SPA_PORT))
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .unwrap();
}

/// A lab whose router serves the guarded port and an unguarded service.
fn lab(prefix: &str) -> Lab {
    let tag = format!("{prefix}{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab.serve_tcp(UNGUARDED).unwrap();
    lab
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Gives the client a second address in its /64 and empties the router's
/// neighbour cache, so that the router must resolve the banned addresses
/// again with ICMPv6 neighbour discovery.
fn second_v6_address(lab: &Lab) {
    let dev = format!("pc{}", &lab.router_dev[2..]);
    run(&[
        "ip",
        "-n",
        &lab.client_ns,
        "addr",
        "add",
        &format!("{CLIENT_V6_OTHER}/64"),
        "dev",
        &dev,
        "nodad",
    ]);
}

fn flush_router_neighbours(lab: &Lab) {
    run(&["ip", "-n", &lab.router_ns, "neigh", "flush", "all"]);
}

/// Runs `f` with the backend inside the router namespace and gives it back.
fn in_router<B: Backend + Send + 'static, T: Send + 'static>(
    lab: &Lab,
    mut b: B,
    f: impl FnOnce(&mut B) -> T + Send + 'static,
) -> (B, T) {
    demo::in_netns(&lab.router_ns, move || {
        let t = f(&mut b);
        (b, t)
    })
    .unwrap()
}

fn grant(addr: IpAddr, port: PortSpec) -> Grant {
    Grant {
        addr,
        port,
        timeout: Duration::from_secs(60),
    }
}

/// The attack of issue 14 item 1 against the daemon: junk SPA datagrams with
/// the client's source address get it banned. On the old ruleset the ban
/// dropped everything from it ahead of `ct state established`: its open SSH
/// session froze and every other service of the router went dark. Now only
/// new connections to the guarded port are refused — with the same RST a
/// closed port sends and a source without a grant gets — and a scanner
/// cannot tell a guarded port from a closed one (item 5).
#[test]
fn junk_spa_ban_refuses_only_new_connections_to_guarded_ports() {
    if !root_or_skip("junk_spa_ban_refuses_only_new_connections_to_guarded_ports") {
        return;
    }
    let mut lab = lab("s");
    let config = format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\
         \toption ban_threshold '5'\n\toption ban_window '60'\n\toption ban_duration '60'\n\n\
         config sequence 'service'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist knock 'tcp:9000'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\tlist open 'udp:{GUARDED_UDP}'\n\toption duration '60'\n\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n",
        lab.dir().join("state").display()
    );
    // The client stands for a remote host: postern never bans on-link subnets.
    lab.make_client_remote().unwrap();
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    // The kernel answers datagrams to unbound ports with ICMP port
    // unreachable, rate-limited per destination (a burst of 6, then one a
    // second): sinks on the SPA and knock ports keep the junk and the knock
    // from spending the burst the probes below need.
    let _sinks = udp_sinks(&lab, &[SPA_PORT, 8000]);
    let c = lab.client_ns.clone();
    let (me, router) = (IpAddr::V4(CLIENT_V4), IpAddr::V4(ROUTER_V4));
    let at = |port| SocketAddr::new(router, port);

    // A scanner without a grant: the guarded ports answer exactly like
    // closed ones (the old guard dropped silently, which gave them away).
    assert_eq!(tcp(&c, me, at(CLOSED)), Answer::Refused, "closed tcp");
    assert_eq!(tcp(&c, me, at(DEMO_PORT)), Answer::Refused, "guarded tcp");
    assert_eq!(udp(&c, me, at(CLOSED)), Answer::Refused, "closed udp");
    assert_eq!(udp(&c, me, at(GUARDED_UDP)), Answer::Refused, "guarded udp");
    assert_eq!(
        tcp(&c, me, at(UNGUARDED)),
        Answer::Open,
        "unguarded service"
    );

    // The client knocks and opens a session on the guarded port.
    knock_from(&c, router, &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    let mut session = established(&c, me, at(DEMO_PORT));
    assert_eq!(echo(&mut session, "before").unwrap(), "before");

    // The attack: junk "from" the client gets it banned in the kernel.
    junk_spa(&c, router, 5);
    lab.daemons_wait(&format!("banned {CLIENT_V4}"));
    let listed = lab
        .sh_in_router(&format!(
            "nft get element inet postern ban4 {{ {CLIENT_V4} }}"
        ))
        .expect("the ban is in the kernel");
    assert!(listed.contains(&CLIENT_V4.to_string()), "{listed}");

    // The established session lives on.
    assert_eq!(
        echo(&mut session, "after the ban").expect("established flow cut by the ban"),
        "after the ban"
    );
    // Other services of the router stay reachable.
    assert_eq!(
        tcp(&c, me, at(UNGUARDED)),
        Answer::Open,
        "the ban closed an unguarded service"
    );
    // New connections to the guarded ports are refused despite the grant,
    // exactly as for a source without a grant and as a closed port is.
    assert_eq!(
        tcp(&c, me, at(DEMO_PORT)),
        Answer::Refused,
        "banned, guarded tcp"
    );
    assert_eq!(
        tcp(&c, me, at(CLOSED)),
        Answer::Refused,
        "banned, closed tcp"
    );
    assert_eq!(
        udp(&c, me, at(GUARDED_UDP)),
        Answer::Refused,
        "banned, guarded udp"
    );
    assert_eq!(
        udp(&c, me, at(CLOSED)),
        Answer::Refused,
        "banned, closed udp"
    );
    // Nothing in the chain drops.
    let chain = lab
        .sh_in_router("nft list chain inet postern input")
        .unwrap();
    assert!(!chain.contains("drop"), "{chain}");
}

/// An IPv6 ban is a prefix (the engine bans the /64): it covers the other
/// addresses of that /64 for the guarded port, and for nothing else —
/// neither established flows, nor unguarded services, nor neighbour
/// discovery, nor another /64.
#[test]
fn ipv6_prefix_ban_covers_the_prefix_for_guarded_ports_only() {
    if !root_or_skip("ipv6_prefix_ban_covers_the_prefix_for_guarded_ports_only") {
        return;
    }
    let mut lab = lab("6");
    lab.add_attacker().unwrap();
    second_v6_address(&lab);
    let c = lab.client_ns.clone();
    let x = lab.attacker_ns.clone().unwrap();
    let (me, other) = (IpAddr::V6(CLIENT_V6), IpAddr::V6(CLIENT_V6_OTHER));
    let guarded = SocketAddr::new(IpAddr::V6(ROUTER_V6), DEMO_PORT);
    let unguarded = SocketAddr::new(IpAddr::V6(ROUTER_V6), UNGUARDED);
    let guarded_x = SocketAddr::new(IpAddr::V6(ROUTER_X_V6), DEMO_PORT);
    let (b, r) = in_router(&lab, NftBackend::standalone(), move |b| {
        b.setup(&[PortSpec::tcp(DEMO_PORT)])?;
        for a in [me, other, IpAddr::V6(ATTACKER_V6)] {
            b.grant(&grant(a, PortSpec::tcp(DEMO_PORT)))?;
        }
        Ok::<_, postern::firewall::FirewallError>(())
    });
    r.expect("setup and grants");
    let mut session = established(&c, me, guarded);
    assert_eq!(
        tcp(&c, other, guarded),
        Answer::Open,
        "granted before the ban"
    );

    let net = Cidr::network_of(me, 64);
    let (b, r) = in_router(&lab, b, move |b| b.ban(net, Duration::from_secs(60)));
    r.expect("ban");
    flush_router_neighbours(&lab);

    assert_eq!(echo(&mut session, "still here").unwrap(), "still here");
    // Both addresses of the /64 are refused on the guarded port, like a
    // source without a grant...
    assert_eq!(
        tcp(&c, other, guarded),
        Answer::Refused,
        "other address of the /64"
    );
    assert_eq!(tcp(&c, me, guarded), Answer::Refused, "banned address");
    // ...and reach the unguarded service (neighbour discovery passes).
    assert_eq!(tcp(&c, other, unguarded), Answer::Open, "unguarded service");
    assert_eq!(tcp(&c, me, unguarded), Answer::Open, "unguarded service");
    // Another /64 keeps its grant.
    assert_eq!(
        tcp(&x, IpAddr::V6(ATTACKER_V6), guarded_x),
        Answer::Open,
        "another /64"
    );

    // Lifting the ban gives the live grants back.
    let (mut b, r) = in_router(&lab, b, move |b| b.unban(net));
    r.expect("unban");
    assert_eq!(tcp(&c, other, guarded), Answer::Open, "after the unban");
    demo::in_netns(&lab.router_ns, move || b.teardown())
        .unwrap()
        .unwrap();
}

/// fw4: the shipped includes in the fw4 stand-in (real fw4's shape: input
/// policy drop, postern's jump ahead of fw4's established accept, OpenWrt's
/// default rules and a user rule for an unguarded service in the zone
/// `uplink`, the zone's reject at the end).
/// The old include dropped all new traffic from a banned source at the top
/// of `input_wan` — neighbour discovery, other services, and a silent drop
/// where others get fw4's reject. Now a ban only withholds postern's accept.
#[test]
fn fw4_ban_withholds_only_posterns_accepts() {
    if !root_or_skip("fw4_ban_withholds_only_posterns_accepts") {
        return;
    }
    let lab = lab("4");
    second_v6_address(&lab);
    // The fw4 stand-in: OpenWrt's default zone rules (ICMPv6 accepted for
    // neighbour discovery), a user rule accepting the unguarded service,
    // the zone's reject at the end, postern's includes in the base chains.
    let table = fw4_standin::ruleset(
        &fw4_standin::Wan {
            zone: "uplink",
            dev: &lab.router_dev,
            input: "reject",
        },
        "br-lan",
        UNGUARDED,
        Some(&fw4_standin::shipped()),
    );
    let path = lab.dir().join("fw4.nft");
    std::fs::write(&path, table).unwrap();
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.router_ns,
        "nft",
        "-f",
        path.to_str().unwrap(),
    ]);

    let c = lab.client_ns.clone();
    let (me4, me6, other6) = (
        IpAddr::V4(CLIENT_V4),
        IpAddr::V6(CLIENT_V6),
        IpAddr::V6(CLIENT_V6_OTHER),
    );
    let v4 = |port| SocketAddr::new(IpAddr::V4(ROUTER_V4), port);
    let v6 = |port| SocketAddr::new(IpAddr::V6(ROUTER_V6), port);
    // Without postern's guard the zone's reject answers (no user rule for it).
    assert_eq!(tcp(&c, me4, v4(DEMO_PORT)), Answer::Refused, "no grant");
    let dev = lab.router_dev.clone();
    let (b, r) = in_router(&lab, NftBackend::fw4(), move |b| {
        b.set_capture(&[dev], GuardVerdict::Reject);
        b.setup(&[PortSpec::tcp(DEMO_PORT)])?;
        for a in [me4, me6, other6] {
            b.grant(&grant(a, PortSpec::tcp(DEMO_PORT)))?;
        }
        Ok::<_, postern::firewall::FirewallError>(())
    });
    r.expect("setup and grants");
    let mut session = established(&c, me4, v4(DEMO_PORT));
    assert_eq!(tcp(&c, other6, v6(DEMO_PORT)), Answer::Open, "granted");

    let (_b, r) = in_router(&lab, b, move |b| {
        b.ban(Cidr::host(me4), Duration::from_secs(60))?;
        b.ban(Cidr::network_of(me6, 64), Duration::from_secs(60))
    });
    r.expect("ban");
    flush_router_neighbours(&lab);

    assert_eq!(echo(&mut session, "fw4").unwrap(), "fw4");
    // The banned sources reach the unguarded service (IPv6 after neighbour
    // discovery with the banned addresses)...
    assert_eq!(tcp(&c, me4, v4(UNGUARDED)), Answer::Open, "v4 unguarded");
    assert_eq!(tcp(&c, me6, v6(UNGUARDED)), Answer::Open, "v6 unguarded");
    assert_eq!(tcp(&c, other6, v6(UNGUARDED)), Answer::Open, "v6 unguarded");
    // ...and get fw4's own reject on the guarded port, as without a grant.
    assert_eq!(tcp(&c, me4, v4(DEMO_PORT)), Answer::Refused, "v4 guarded");
    assert_eq!(tcp(&c, me6, v6(DEMO_PORT)), Answer::Refused, "v6 guarded");
    assert_eq!(tcp(&c, other6, v6(DEMO_PORT)), Answer::Refused, "same /64");
    assert_eq!(tcp(&c, me4, v4(CLOSED)), Answer::Refused, "closed");
}

/// The router's kernel counter `name` (from `nstat -az`).
fn router_counter(lab: &Lab, name: &str) -> u64 {
    let out = lab.sh_in_router(&format!("nstat -az {name}")).unwrap();
    out.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// A guarded UDP port's ICMP port unreachable comes from the kernel's
/// `icmp_send`/`icmpv6_send` like a closed port's, so the kernel rate-limits
/// both alike and in one bucket per destination (`net.ipv4.icmp_ratelimit`,
/// `net.ipv6.icmp.ratelimit`, with a small burst; `icmp_msgs_per_sec`
/// globally). With the interval raised to 10 s (IPv6: 40 s, which the
/// kernel divides by 4 for a /64 route), refusals spend the bucket whichever
/// port they come from; then neither kind of port answers, and the kernel
/// counts each silenced answer as rate-limited (`IcmpOutRateLimitHost`). A
/// scanner sees the same rate limit on both.
#[test]
fn guarded_udp_refusals_share_the_kernels_icmp_rate_limit() {
    if !root_or_skip("guarded_udp_refusals_share_the_kernels_icmp_rate_limit") {
        return;
    }
    let lab = lab("r");
    for (key, value) in [
        ("net.ipv4.icmp_ratelimit", "10000"),
        ("net.ipv6.icmp.ratelimit", "40000"),
    ] {
        demo::set_sysctl(&lab.router_ns, key, value).expect("icmp rate limit");
    }
    let (b, r) = in_router(&lab, NftBackend::standalone(), |b| {
        b.setup(&[PortSpec::udp(GUARDED_UDP)])
    });
    r.expect("setup");
    let c = lab.client_ns.clone();
    for (me, router, counter) in [
        (
            IpAddr::V4(CLIENT_V4),
            IpAddr::V4(ROUTER_V4),
            "IcmpOutRateLimitHost",
        ),
        (
            IpAddr::V6(CLIENT_V6),
            IpAddr::V6(ROUTER_V6),
            "Icmp6OutRateLimitHost",
        ),
    ] {
        let guarded = SocketAddr::new(router, GUARDED_UDP);
        let closed = SocketAddr::new(router, CLOSED);
        // The guarded port refuses first, then guarded and closed probes
        // take turns until the bucket is empty.
        assert_eq!(udp(&c, me, guarded), Answer::Refused, "{me}: guarded");
        let mut turn = [closed, guarded].into_iter().cycle();
        let mut spent = 1;
        while udp(&c, me, turn.next().unwrap()) == Answer::Refused {
            spent += 1;
            assert!(spent <= 10, "{me}: no ICMP rate limit");
        }
        let limited = router_counter(&lab, counter);
        assert!(limited >= 1, "{me}: silence without the rate limit");
        assert_eq!(
            udp(&c, me, closed),
            Answer::Silence,
            "{me}: closed, limited"
        );
        assert_eq!(
            udp(&c, me, guarded),
            Answer::Silence,
            "{me}: guarded, limited"
        );
        assert_eq!(
            router_counter(&lab, counter),
            limited + 2,
            "{me}: both silenced by the kernel's limit"
        );
    }
    demo::in_netns(&lab.router_ns, move || {
        let mut b = b;
        b.teardown()
    })
    .unwrap()
    .unwrap();
}

/// Port forwards: a LAN host behind the router serves the forward target
/// (port 80, reached as the router's 8080 over IPv4 and directly over IPv6)
/// and another service (port 81) that is no forward target.
const FWD_EXT: u16 = 8080;
const FWD_LAN: u16 = 80;
const LAN_OTHER: u16 = 81;

fn forward_spec() -> ForwardSpec {
    ForwardSpec {
        proto: postern::port::L4Proto::Tcp,
        port: FWD_EXT,
        to4: Some(LAN_V4),
        to6: Some(LAN_V6),
        to_port: FWD_LAN,
    }
}

/// A ban of a source granted a forward: its established forwarded flows
/// live on, and it still reaches LAN services that are no forward target;
/// a new connection to the forward gets what a source without a grant gets
/// (IPv4: no DNAT, so the router's own closed port answers; IPv6: the
/// forward guard). Both backends: the standalone forward chain and DNAT
/// rule, and fw4's `forward_wan` include and `postern_dstnat` chain in a
/// fw4-shaped table (a user's rule for port 81 after the include).
fn forward_ban_story<B: Backend + Send + 'static>(lab: &Lab, b: B) {
    let c = lab.client_ns.clone();
    let (me4, me6) = (IpAddr::V4(CLIENT_V4), IpAddr::V6(CLIENT_V6));
    let wan4 = SocketAddr::new(IpAddr::V4(ROUTER_V4), FWD_EXT);
    let lan6 = SocketAddr::new(IpAddr::V6(LAN_V6), FWD_LAN);
    let other4 = SocketAddr::new(IpAddr::V4(LAN_V4), LAN_OTHER);
    let other6 = SocketAddr::new(IpAddr::V6(LAN_V6), LAN_OTHER);
    // Without a grant.
    let ungranted = (tcp(&c, me4, wan4), tcp(&c, me6, lan6));
    assert_eq!(
        ungranted.0,
        Answer::Refused,
        "no DNAT: the router's closed port"
    );
    assert_eq!(ungranted.1, Answer::Silence, "the IPv6 forward guard");
    let grant = move |src| ForwardGrant {
        src,
        spec: forward_spec(),
        timeout: Duration::from_secs(60),
    };
    let (b, r) = in_router(lab, b, move |b| {
        b.forward(&grant(me4))?;
        b.forward(&grant(me6))
    });
    r.expect("forward");
    let mut s4 = established_with(&c, me4, wan4, "hello from the lan");
    let mut s6 = established_with(&c, me6, lan6, "hello from the lan");

    let (_b, r) = in_router(lab, b, move |b| {
        b.ban(Cidr::host(me4), Duration::from_secs(60))?;
        b.ban(Cidr::network_of(me6, 64), Duration::from_secs(60))
    });
    r.expect("ban");
    assert_eq!(echo(&mut s4, "v4").expect("forwarded flow cut"), "v4");
    assert_eq!(echo(&mut s6, "v6").expect("forwarded flow cut"), "v6");
    assert_eq!(
        tcp(&c, me4, other4),
        Answer::Open,
        "v4 lan service, no forward"
    );
    assert_eq!(
        tcp(&c, me6, other6),
        Answer::Open,
        "v6 lan service, no forward"
    );
    assert_eq!(
        (tcp(&c, me4, wan4), tcp(&c, me6, lan6)),
        ungranted,
        "banned: as without a grant"
    );
}

fn forward_lab(prefix: &str) -> Lab {
    let tag = format!("{prefix}{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    let lan = lab.add_lan_host().unwrap();
    lab.serve_tcp_in(&lan, FWD_LAN, "hello from the lan")
        .unwrap();
    lab.serve_tcp_in(&lan, LAN_OTHER, "another lan service")
        .unwrap();
    lab
}

#[test]
fn standalone_forward_ban_closes_only_the_forward() {
    if !root_or_skip("standalone_forward_ban_closes_only_the_forward") {
        return;
    }
    let lab = forward_lab("f");
    let (b, r) = in_router(&lab, NftBackend::standalone(), |b| {
        b.setup(&[])?;
        b.setup_forwards(&[forward_spec()])
    });
    r.expect("setup");
    forward_ban_story(&lab, b);
}

#[test]
fn fw4_forward_ban_closes_only_the_forward() {
    if !root_or_skip("fw4_forward_ban_closes_only_the_forward") {
        return;
    }
    let lab = forward_lab("g");
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("openwrt/postern/files");
    let read = |f: &str| std::fs::read_to_string(files.join(f)).unwrap();
    let table = format!(
        "table inet fw4 {{\n{}\n\
         chain forward {{ type filter hook forward priority filter; policy drop;\n{}\n\
         ct state established,related accept\n iifname \"{}\" jump forward_wan\n accept\n}}\n\
         chain forward_wan {{\n\
         tcp dport {LAN_OTHER} accept comment \"a user's forward rule\"\n drop\n}}\n}}\n",
        read("fw4-table-pre.nft"),
        read("fw4-chain-pre-forward.nft"),
        lab.router_dev,
    );
    let path = lab.dir().join("fw4.nft");
    std::fs::write(&path, table).unwrap();
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.router_ns,
        "nft",
        "-f",
        path.to_str().unwrap(),
    ]);
    let dev = lab.router_dev.clone();
    let (b, r) = in_router(&lab, NftBackend::fw4(), move |b| {
        b.set_capture(&[dev], GuardVerdict::Reject);
        b.setup(&[])?;
        b.setup_forwards(&[forward_spec()])
    });
    r.expect("setup");
    forward_ban_story(&lab, b);
}
