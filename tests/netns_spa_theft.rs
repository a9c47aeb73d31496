//! The on-path theft of an SPA packet (issue 15), on a real kernel: three
//! network namespaces in a row — the client (`pst-TAG-v`), the thief in the
//! middle (the lab's `pst-TAG-x`, which routes the client's traffic) and the
//! router (`pst-TAG-r`, the real daemon with nftables). The thief drops the
//! client's SPA packet (nftables in its forward path), records it from its
//! AF_PACKET tap, and re-sends the payload from its own address; then it tries
//! the guarded port.
//!
//! - a plain `postern spa` (`-s`: no address sealed) gives the thief the grant
//!   (the attack; the control that the theft machinery works);
//! - `postern spa --resolve stun:…` (a STUN responder written here from RFC
//!   8489 section 14.2, in the router namespace) seals the client's address:
//!   the thief gets nothing (`other_address`), and without the thief the
//!   client gets in;
//! - `option require_address '1'` on the router: the thief's copy of a plain
//!   packet is refused (`address_required`).
//!
//! Root only. Without it each test prints SKIPPED loudly and passes — except
//! under `CI=true`, where they must run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern::demo::{self, Lab, ATTACKER_V4, DEMO_PORT, ROUTER_X_V4};
use postern::spa::Key;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const SPA_PORT: u16 = 62201;
const STUN_PORT: u16 = 3478;
const PROBE: Duration = Duration::from_millis(700);
/// The client behind the thief, and the thief's address on that link.
const VICTIM_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 2);
const THIEF_INNER_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 1);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn ready_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let why = "needs root (network namespaces, nftables, packet sockets). Run: sudo -E cargo test";
    assert!(
        !in_ci(),
        "{test}: {why}, and CI=true: these tests must run in CI"
    );
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

fn key() -> String {
    Key::from_bytes([0x15; 32]).to_base64()
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab plus the client's namespace behind the thief's.
struct OnPath {
    lab: Lab,
    victim: String,
    thief: String,
    /// The thief's device towards the client (where it taps).
    tap_dev: String,
}

impl Drop for OnPath {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.victim])
            .output();
    }
}

impl OnPath {
    fn new(letter: char, router_extra: &str) -> OnPath {
        let tag = format!("th{letter}{}", std::process::id() % 100_000);
        let mut lab = Lab::new(&tag).unwrap();
        lab.add_attacker().unwrap();
        lab.serve_tcp(DEMO_PORT).unwrap();
        let thief = lab.attacker_ns.clone().unwrap();
        let victim = format!("pst-{tag}-v");
        let _ = Command::new("ip").args(["netns", "del", &victim]).output();
        let (tap_dev, vdev) = (format!("pt{tag}"), format!("pv{tag}"));
        let on_path = OnPath {
            lab,
            victim: victim.clone(),
            thief: thief.clone(),
            tap_dev: tap_dev.clone(),
        };
        run(&["ip", "netns", "add", &victim]);
        run(&[
            "ip", "link", "add", &tap_dev, "netns", &thief, "type", "veth", "peer", "name", &vdev,
            "netns", &victim,
        ]);
        let (t4, v4) = (format!("{THIEF_INNER_V4}/24"), format!("{VICTIM_V4}/24"));
        // Fixed MACs and permanent neighbours: no ARP races on the new link.
        let (tmac, vmac) = ("02:00:5e:00:09:01", "02:00:5e:00:09:02");
        run(&["ip", "-n", &thief, "link", "set", &tap_dev, "address", tmac]);
        run(&["ip", "-n", &victim, "link", "set", &vdev, "address", vmac]);
        run(&["ip", "-n", &thief, "addr", "add", &t4, "dev", &tap_dev]);
        run(&["ip", "-n", &thief, "link", "set", &tap_dev, "up"]);
        run(&["ip", "-n", &victim, "addr", "add", &v4, "dev", &vdev]);
        run(&["ip", "-n", &victim, "link", "set", "lo", "up"]);
        run(&["ip", "-n", &victim, "link", "set", &vdev, "up"]);
        let (via, victim_ip) = (THIEF_INNER_V4.to_string(), VICTIM_V4.to_string());
        run(&[
            "ip",
            "-n",
            &thief,
            "neigh",
            "replace",
            &victim_ip,
            "lladdr",
            vmac,
            "dev",
            &tap_dev,
            "nud",
            "permanent",
        ]);
        run(&[
            "ip",
            "-n",
            &victim,
            "neigh",
            "replace",
            &via,
            "lladdr",
            tmac,
            "dev",
            &vdev,
            "nud",
            "permanent",
        ]);
        run(&["ip", "-n", &victim, "route", "add", "default", "via", &via]);
        demo::set_sysctl(&thief, "net.ipv4.ip_forward", "1").expect("forwarding on");
        let r = on_path.lab.router_ns.clone();
        let x = ATTACKER_V4.to_string();
        run(&["ip", "-n", &r, "route", "add", "10.213.9.0/24", "via", &x]);
        // Wait for carrier on both ends of the new link.
        let end = Instant::now() + Duration::from_secs(5);
        for (ns, dev) in [(&thief, &tap_dev), (&victim, &vdev)] {
            let path = format!("/sys/class/net/{dev}/carrier");
            loop {
                let up = Command::new("ip")
                    .args(["netns", "exec", ns, "cat", &path])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1");
                if up {
                    break;
                }
                assert!(Instant::now() < end, "{dev} in {ns} has no carrier");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut on_path = on_path;
        let config = format!(
            "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'info'\n\toption state_dir '{}'\n\n\
             config client 'laptop'\n\toption key '{}'\n\tlist allow 'tcp:{DEMO_PORT}'\n{router_extra}",
            on_path.lab.dir().join("state").display(),
            key()
        );
        on_path
            .lab
            .start_daemon(Path::new(EXE), &config, None)
            .unwrap();
        on_path
    }

    /// The thief drops every SPA packet it would forward.
    fn thief_drops_spa(&self) {
        let x = &self.thief;
        run(&[
            "ip", "netns", "exec", x, "nft", "add", "table", "inet", "thief",
        ]);
        run(&[
            "ip",
            "netns",
            "exec",
            x,
            "nft",
            "add",
            "chain",
            "inet",
            "thief",
            "steal",
            "{ type filter hook forward priority 0 ; }",
        ]);
        let port = SPA_PORT.to_string();
        run(&[
            "ip", "netns", "exec", x, "nft", "add", "rule", "inet", "thief", "steal", "udp",
            "dport", &port, "drop",
        ]);
    }

    /// Runs `postern spa` in the client namespace with `extra` arguments.
    fn client_spa(&self, extra: &[&str]) {
        let router = ROUTER_X_V4.to_string();
        let port = format!("tcp/{DEMO_PORT}");
        let k = key();
        let mut args = vec![
            "netns",
            "exec",
            &self.victim,
            EXE,
            "spa",
            &router,
            "-A",
            &port,
            "--key",
            &k,
        ];
        args.extend_from_slice(extra);
        let out = Command::new("ip").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "postern spa {extra:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends the client's packet while the thief taps it; returns the payload the
    /// thief recorded.
    fn steal(&self, extra: &[&str]) -> Vec<u8> {
        let (ns, dev) = (self.thief.clone(), self.tap_dev.clone());
        let ready = Arc::new(AtomicBool::new(false));
        let ready2 = ready.clone();
        let tap = std::thread::spawn(move || {
            demo::in_netns(&ns, move || record_spa(&dev, &ready2)).unwrap()
        });
        while !ready.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.client_spa(extra);
        tap.join()
            .unwrap()
            .expect("the thief saw the client's SPA packet")
    }

    /// The thief re-sends `payload` from its own address.
    fn resend(&self, payload: Vec<u8>) {
        demo::in_netns(&self.thief, move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(&payload, SocketAddr::new(IpAddr::V4(ROUTER_X_V4), SPA_PORT))
                .unwrap();
        })
        .unwrap();
    }

    fn thief_connects(&self) -> bool {
        self.lab
            .connect_from(&self.thief, IpAddr::V4(ROUTER_X_V4), DEMO_PORT, PROBE)
            .unwrap()
            .is_some()
    }

    fn client_connects(&self) -> bool {
        self.lab
            .connect_from(&self.victim, IpAddr::V4(ROUTER_X_V4), DEMO_PORT, PROBE)
            .unwrap()
            .is_some()
    }

    fn log(&mut self) -> String {
        self.lab.daemon(0).log().join("\n")
    }

    fn wait_log(&mut self, needle: &str) -> String {
        self.lab
            .daemon(0)
            .wait_for_log(needle, Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no '{needle}' in the log:\n{}", self.log()))
    }

    /// A STUN responder in the router namespace (until the test ends).
    fn stun_responder(&self) {
        let ns = self.lab.router_ns.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = demo::in_netns(&ns, move || {
                let s = UdpSocket::bind(("0.0.0.0", STUN_PORT)).unwrap();
                tx.send(()).unwrap();
                let mut buf = [0u8; 548];
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    if let Some(answer) = binding_success(&buf[..n], from) {
                        let _ = s.send_to(&answer, from);
                    }
                }
            });
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("STUN responder bound");
    }
}

/// A Binding success response to a Binding request, with XOR-MAPPED-ADDRESS
/// `from` (RFC 8489 sections 5, 14.2; IPv4 only here).
fn binding_success(req: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let SocketAddr::V4(from) = from else {
        return None;
    };
    if req.len() < 20 || req[..2] != [0x00, 0x01] || req[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let mut m = vec![0x01, 0x01, 0x00, 12];
    m.extend_from_slice(&req[4..20]);
    m.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
    m.extend_from_slice(&(from.port() ^ 0x2112).to_be_bytes());
    m.extend_from_slice(&(u32::from(*from.ip()) ^ 0x2112_a442).to_be_bytes());
    Some(m)
}

/// Taps `dev` (AF_PACKET, cooked: IP packets) for the first UDP datagram to
/// the SPA port; returns its payload, or None after 5 s.
fn record_spa(dev: &str, ready: &AtomicBool) -> Option<Vec<u8>> {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto)) };
    assert!(
        fd >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex > 0, "no device {dev}");
    // SAFETY: zeroed sockaddr_ll is valid; then filled in.
    let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: binding our socket to a valid sockaddr_ll.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: setting a timeval option on our socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            core::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    ready.store(true, Ordering::SeqCst);
    let end = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    let mut found = None;
    while found.is_none() && Instant::now() < end {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        let p = &buf[..n as usize];
        let ihl = usize::from(p[0] & 0x0f) * 4;
        if p.len() < ihl + 8 || p[0] >> 4 != 4 || p[9] != 17 {
            continue;
        }
        let udp = &p[ihl..];
        if u16::from_be_bytes([udp[2], udp[3]]) == SPA_PORT {
            found = Some(udp[8..].to_vec());
        }
    }
    // SAFETY: closing our own socket.
    unsafe { libc::close(fd) };
    found
}

#[test]
fn the_thief_gets_the_grant_of_a_packet_without_an_address() {
    if !ready_or_skip("the_thief_gets_the_grant_of_a_packet_without_an_address") {
        return;
    }
    let mut t = OnPath::new('a', "");
    t.thief_drops_spa();
    assert!(!t.thief_connects(), "closed before");
    let stolen = t.steal(&[]);
    t.resend(stolen);
    t.wait_log(&format!("opened tcp:{DEMO_PORT} for {ATTACKER_V4}"));
    assert!(t.thief_connects(), "the attack works against -s");
    assert!(!t.client_connects(), "and the client got nothing");
}

#[test]
fn a_packet_with_the_resolved_address_leaves_the_thief_nothing() {
    if !ready_or_skip("a_packet_with_the_resolved_address_leaves_the_thief_nothing") {
        return;
    }
    let mut t = OnPath::new('b', "");
    t.stun_responder();
    let stun = format!("stun:{ROUTER_X_V4}:{STUN_PORT}");
    t.thief_drops_spa();
    let stolen = t.steal(&["--resolve", &stun]);
    t.resend(stolen);
    t.wait_log("other_address");
    assert!(!t.thief_connects(), "the thief gets nothing");
    assert!(
        !t.log().contains("opened tcp:"),
        "nothing opened:\n{}",
        t.log()
    );
    // Without the thief dropping it, the client's --resolve packet opens for itself.
    run(&[
        "ip", "netns", "exec", &t.thief, "nft", "delete", "table", "inet", "thief",
    ]);
    t.client_spa(&["--resolve", &stun]);
    t.wait_log(&format!("opened tcp:{DEMO_PORT} for {VICTIM_V4}"));
    assert!(t.client_connects());
    assert!(!t.thief_connects());
}

#[test]
fn require_address_leaves_the_thief_nothing() {
    if !ready_or_skip("require_address_leaves_the_thief_nothing") {
        return;
    }
    let mut t = OnPath::new('c', "\toption require_address '1'\n");
    t.thief_drops_spa();
    let stolen = t.steal(&[]);
    t.resend(stolen);
    t.wait_log("address_required");
    assert!(!t.thief_connects(), "the thief gets nothing");
    assert!(
        !t.log().contains("opened tcp:"),
        "nothing opened:\n{}",
        t.log()
    );
    // The client naming its own address (-a) gets in.
    run(&[
        "ip", "netns", "exec", &t.thief, "nft", "delete", "table", "inet", "thief",
    ]);
    t.client_spa(&["-a", &VICTIM_V4.to_string()]);
    t.wait_log(&format!("opened tcp:{DEMO_PORT} for {VICTIM_V4}"));
    assert!(t.client_connects());
}
