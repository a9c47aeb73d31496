//! SPA port forwards with real traffic: three network namespaces, client —
//! router — lan (the lab's "attacker" namespace serves as the LAN host), the
//! router running a firewall backend with one forward (tcp 8080 on the
//! router's WAN address → the LAN host's port 80, and the LAN host's IPv6
//! address port 80). Before a grant the client cannot reach the LAN service;
//! after `forward()` it can, from its granted source only; after the kernel
//! timeout new connections fail again.
//!
//! Needs root, iproute2 and `nft`. Without root each test prints `SKIPPED
//! (needs root)` and passes, unless `CI=true`, where skipping is a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern::demo::{self, Lab, ATTACKER_V4, ATTACKER_V6, CLIENT_V4, ROUTER_V4};
use postern::firewall::nft::NftBackend;
use postern::firewall::{Backend, ForwardGrant, ForwardSpec};
use postern::port::L4Proto;

/// A second source address on the client's link.
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 3);
const CLIENT_V6: Ipv6Addr = demo::CLIENT_V6;
const EXT_PORT: u16 = 8080;
const LAN_PORT: u16 = 80;

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: needs root, and CI=true forbids skipping"
    );
    // Straight to fd 2: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (needs root): {test} — run `cargo test --test netns_forward` as root"
    );
    false
}

fn spec() -> ForwardSpec {
    ForwardSpec {
        proto: L4Proto::Tcp,
        port: EXT_PORT,
        to4: Some(ATTACKER_V4),
        to6: Some(ATTACKER_V6),
        to_port: LAN_PORT,
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab with routing: the router forwards, the LAN host routes via it, the
/// client has a second address and a route to the LAN's IPv6 prefix.
fn lab(tag: &str) -> (Lab, String) {
    let mut lab = Lab::new(tag).expect("lab");
    lab.add_attacker().expect("lan namespace");
    let lan = lab.attacker_ns.clone().unwrap();
    let client_dev = format!("pc{}", &lab.router_dev[2..]);
    let r = lab.router_ns.clone();
    let c = lab.client_ns.clone();
    for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
        demo::set_sysctl(&r, key, "1").expect("forwarding on");
    }
    run(&[
        "ip",
        "-n",
        &lan,
        "route",
        "add",
        "default",
        "via",
        "10.213.1.1",
    ]);
    run(&[
        "ip",
        "-n",
        &lan,
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd00:213:1::1",
    ]);
    run(&[
        "ip",
        "-n",
        &c,
        "-6",
        "route",
        "add",
        "fd00:213:1::/64",
        "via",
        "fd00:213::1",
    ]);
    run(&[
        "ip",
        "-n",
        &c,
        "addr",
        "add",
        "10.213.0.3/24",
        "dev",
        &client_dev,
    ]);
    (lab, lan)
}

/// A TCP service in `ns` on `port` (IPv4 and IPv6): greets, then echoes.
struct Service {
    stop: Arc<AtomicBool>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(ns: &str, port: u16) -> Service {
    let listener = demo::in_netns(ns, move || {
        let l = TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))?;
        l.set_nonblocking(true)?;
        Ok::<_, std::io::Error>(l)
    })
    .unwrap()
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                        let _ = s.write_all(b"hello from the lan\n");
                        let mut buf = [0u8; 256];
                        while let Ok(n) = s.read(&mut buf) {
                            if n == 0 || s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Service { stop }
}

/// A TCP connection from `src` (bound) in namespace `ns` to `dst`, with its
/// greeting; `None` when it cannot be opened within `timeout`.
fn connect(
    ns: &str,
    src: IpAddr,
    dst: SocketAddr,
    timeout: Duration,
) -> Option<(TcpStream, String)> {
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
        let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).ok()?;
        let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
        setsockopt(&fd, sockopt::SendTimeout, &tv).ok()?;
        let src = SocketAddr::new(src, 0);
        let ok = match (src, dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => bind(fd.as_raw_fd(), &SockaddrIn::from(s))
                .and_then(|_| connect(fd.as_raw_fd(), &SockaddrIn::from(d))),
            (SocketAddr::V6(s), SocketAddr::V6(d)) => bind(fd.as_raw_fd(), &SockaddrIn6::from(s))
                .and_then(|_| connect(fd.as_raw_fd(), &SockaddrIn6::from(d))),
            _ => return None,
        };
        ok.ok()?;
        let mut s = TcpStream::from(fd);
        s.set_read_timeout(Some(timeout)).ok()?;
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).ok()?;
        Some((s, line.trim_end().to_string()))
    })
    .unwrap()
}

fn echo(s: &mut TcpStream, text: &str) -> String {
    s.write_all(format!("{text}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_string()
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

/// The whole story against one backend whose forward objects exist.
fn traffic_story<B: Backend + Send + 'static>(lab: &Lab, lan: &str, b: B) {
    let _service = serve(lan, LAN_PORT);
    let wan4 = SocketAddr::new(IpAddr::V4(ROUTER_V4), EXT_PORT);
    let lan6 = SocketAddr::new(IpAddr::V6(ATTACKER_V6), LAN_PORT);
    let short = Duration::from_millis(800);
    let c = lab.client_ns.clone();
    let (me4, other4, me6) = (
        IpAddr::V4(CLIENT_V4),
        IpAddr::V4(OTHER_V4),
        IpAddr::V6(CLIENT_V6),
    );

    // The LAN service itself is up (from the router).
    assert!(
        connect(
            &lab.router_ns,
            IpAddr::V4(Ipv4Addr::new(10, 213, 1, 1)),
            SocketAddr::new(IpAddr::V4(ATTACKER_V4), LAN_PORT),
            short
        )
        .is_some(),
        "lan service not reachable from the router"
    );
    // Before a grant: no DNAT (refused by the router), IPv6 dropped by the guard.
    assert!(
        connect(&c, me4, wan4, short).is_none(),
        "reached the lan before the grant"
    );
    assert!(
        connect(&c, me6, lan6, short).is_none(),
        "reached the lan over IPv6 before the grant"
    );

    let grant = |src| ForwardGrant {
        src,
        spec: spec(),
        timeout: Duration::from_secs(3),
    };
    let (b, r) = in_router(lab, b, move |b| {
        b.forward(&grant(me4))?;
        b.forward(&grant(me6))
    });
    r.expect("forward");
    let granted_at = Instant::now();

    let (mut s4, hello) = connect(&c, me4, wan4, short).expect("granted IPv4 source connects");
    assert_eq!(hello, "hello from the lan");
    assert_eq!(echo(&mut s4, "through the router"), "through the router");
    let (_s6, hello6) = connect(&c, me6, lan6, short).expect("granted IPv6 source connects");
    assert_eq!(hello6, "hello from the lan");
    // Another source on the client's link gets nothing.
    assert!(
        connect(&c, other4, wan4, short).is_none(),
        "ungranted source reached the lan"
    );

    // After the kernel timeout new connections fail; the open one lives on.
    std::thread::sleep(
        Duration::from_secs(3).saturating_sub(granted_at.elapsed()) + Duration::from_millis(700),
    );
    assert!(
        connect(&c, me4, wan4, short).is_none(),
        "IPv4 forward outlived its timeout"
    );
    assert!(
        connect(&c, me6, lan6, short).is_none(),
        "IPv6 forward outlived its timeout"
    );
    assert_eq!(echo(&mut s4, "still here"), "still here");

    // Unforward ends a grant at once.
    let (b, r) = in_router(lab, b, move |b| {
        b.forward(&ForwardGrant {
            timeout: Duration::from_secs(60),
            ..grant(me4)
        })
    });
    r.unwrap();
    assert!(connect(&c, me4, wan4, short).is_some());
    let (_b, r) = in_router(lab, b, move |b| b.unforward(me4, &spec()));
    r.unwrap();
    assert!(
        connect(&c, me4, wan4, short).is_none(),
        "unforward left the forward open"
    );
}

#[test]
fn standalone_forward_real_traffic() {
    if !root_or_skip("standalone_forward_real_traffic") {
        return;
    }
    let (lab, lan) = lab("fwdnft");
    let (b, r) = in_router(&lab, NftBackend::standalone(), |b| {
        b.setup(&[])?;
        b.setup_forwards(&[spec()])
    });
    r.expect("setup");
    traffic_story(&lab, &lan, b);
}

#[test]
fn fw4_forward_real_traffic() {
    if !root_or_skip("fw4_forward_real_traffic") {
        return;
    }
    let (lab, lan) = lab("fwdfw4");
    // A fw4-shaped table from the shipped includes: wan forward policy drop.
    let files = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openwrt/postern/files");
    let pre = std::fs::read_to_string(files.join("fw4-table-pre.nft")).unwrap();
    let fwd = std::fs::read_to_string(files.join("fw4-chain-pre-forward.nft")).unwrap();
    let table = format!(
        "table inet fw4 {{\n{pre}\n\
         chain forward {{ type filter hook forward priority filter; policy drop;\n{fwd}\n\
         ct state established,related accept\n iifname \"{}\" jump forward_wan\n accept\n}}\n\
         chain forward_wan {{\ndrop\n}}\n}}\n",
        lab.router_dev
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
        b.set_capture(&[dev], postern::firewall::GuardVerdict::Reject);
        b.setup(&[])?;
        b.setup_forwards(&[spec()])
    });
    r.expect("setup");
    traffic_story(&lab, &lan, b);
}
