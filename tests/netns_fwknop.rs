//! fwknop compatibility end to end: the real `fwknop` client (Debian's
//! `fwknop-client` 2.6.10) in the client namespace opens a port guarded by
//! postern in the router namespace; a wrong HMAC key, a replay from the
//! attacker namespace and `-a` with another address are refused; the same
//! client's packet carried over IPv6 opens for the IPv6 source.
//!
//! Root only (and the `fwknop` binary). Without root each test prints SKIPPED
//! loudly and passes — except under `CI=true`, where a missing root or a
//! missing `fwknop` fails the test.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use postern::capture::{bpf, Capture};
use postern::demo::{
    self, Lab, ATTACKER_V4, CLIENT_V4, CLIENT_V6, DEMO_PORT, ROUTER_V4, ROUTER_V6, ROUTER_X_V4,
};
use postern::port::PortSpec;
use postern::wire;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const SPA_PORT: u16 = 62201;
/// Keys from `fwknop --key-gen` (32-byte Rijndael key, 64-byte HMAC key).
const KEY: &str = "DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=";
const HMAC: &str =
    "dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==";
/// Another 64-byte HMAC key (`fwknop --key-gen`), not the router's.
const WRONG_HMAC: &str =
    "Mc8fQ486sJ5L754mME7qtAIfZsJrYI39LPgOK7zIiVg0Ss8KtYjsa44vpQ1e2tBYG6+2621t0yJsvjiqLBayZA==";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when the test may run; prints SKIPPED (or fails under CI) otherwise.
fn ready_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let fwknop = Command::new("fwknop").arg("--version").output().is_ok();
    if root && fwknop {
        return true;
    }
    let why = if root {
        "needs the fwknop client (apt-get install fwknop-client)"
    } else {
        "needs root (network namespaces, nftables). Run: sudo -E cargo test"
    };
    assert!(
        !in_ci(),
        "{test}: {why}, and CI=true: these tests must run in CI"
    );
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

fn tag(letter: char) -> String {
    format!("f{letter}{}", std::process::id() % 100_000)
}

/// A lab with the service and the attacker namespace.
fn lab(letter: char) -> Lab {
    let mut lab = Lab::new(&tag(letter)).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// The router's config: one client with fwknop keys that may open the demo port.
fn config(lab: &Lab, extra: &str) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'debug'\n\toption state_dir '{}'\n\n\
         config client 'phone'\n\toption fwknop_key '{KEY}'\n\toption fwknop_hmac_key '{HMAC}'\n\
         \tlist allow 'tcp:{DEMO_PORT}'\n{extra}",
        lab.dir().join("state").display()
    )
}

/// The fwknop command line the tests run (with `HOME` set to the lab dir, so
/// nothing of the user's is read or written).
fn fwknop_args(target: &[&str], hmac: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "fwknop",
        "--no-rc-file",
        "--no-save-args",
        "-A",
        &format!("tcp/{DEMO_PORT}"),
        "--use-hmac",
        "--key-base64-rijndael",
        KEY,
        "--key-base64-hmac",
        hmac,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(target.iter().map(|s| s.to_string()));
    a
}

/// Runs the real fwknop client in the client namespace.
fn fwknop(lab: &Lab, target: &[&str], hmac: &str) {
    let home = format!("HOME={}", lab.dir().display());
    let mut args = vec!["env".to_string(), home];
    args.extend(fwknop_args(target, hmac));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.run_in_client(&args).expect("run fwknop");
    assert!(
        out.status.success(),
        "fwknop {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn open_from(lab: &Lab, ns: &str, addr: IpAddr) -> bool {
    lab.connect_from(ns, addr, DEMO_PORT, PROBE)
        .expect("connect")
        .is_some()
}

fn attacker(lab: &Lab) -> String {
    lab.attacker_ns.clone().expect("attacker namespace")
}

fn stop_daemon(lab: &mut Lab, index: usize) {
    let d = lab.daemon(index);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

/// A sniffer on the router's client-facing device, for UDP to the SPA port.
fn sniffer(lab: &Lab) -> Capture {
    let dev = lab.router_dev.clone();
    demo::in_netns(&lab.router_ns, move || {
        Capture::open(&dev, &bpf::build(&[PortSpec::udp(SPA_PORT)], true))
    })
    .unwrap()
    .unwrap()
}

/// The UDP payload of the next SPA packet the sniffer saw (waits at most 3 s).
fn sniffed_payload(cap: &Capture) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(frame) = cap.recv(&mut buf).unwrap() {
            let obs = wire::observe(frame.data, frame.checksums).unwrap();
            if obs.dst_port == SPA_PORT {
                return obs.payload.to_vec();
            }
        }
        assert!(Instant::now() < end, "no SPA packet seen on the wire");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `payload` as one UDP datagram from namespace `ns` to `to`.
fn send(ns: &str, payload: Vec<u8>, to: SocketAddr) {
    demo::in_netns(ns, move || {
        let bind: SocketAddr = match to {
            SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            SocketAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        UdpSocket::bind(bind)
            .unwrap()
            .send_to(&payload, to)
            .unwrap();
    })
    .unwrap();
}

#[test]
fn fwknop_client_opens_the_port_and_a_replay_is_refused() {
    if !ready_or_skip("fwknop_client_opens_the_port_and_a_replay_is_refused") {
        return;
    }
    let mut lab = lab('a');
    lab.start_daemon(Path::new(EXE), &config(&lab, ""), None)
        .unwrap();
    let v4 = IpAddr::V4(ROUTER_V4);
    let x = attacker(&lab);
    let router_x = IpAddr::V4(ROUTER_X_V4);
    assert!(!open_from(&lab, &lab.client_ns, v4), "guarded before SPA");
    let cap = sniffer(&lab);
    fwknop(&lab, &["-s", "-D", "10.213.0.1"], HMAC);
    lab.daemons_wait(&format!(
        "opened tcp:{DEMO_PORT} for {CLIENT_V4} for 30 s (spa client phone, packet from {CLIENT_V4})"
    ));
    assert!(open_from(&lab, &lab.client_ns, v4), "open for the sender");
    assert!(!open_from(&lab, &x, router_x), "not for anyone else");

    // The packet captured on the wire, replayed from the attacker's namespace.
    let payload = sniffed_payload(&cap);
    assert!(
        payload
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'),
        "fwknop packets are base64 text"
    );
    send(&x, payload.clone(), SocketAddr::new(router_x, SPA_PORT));
    lab.daemons_wait(&format!(
        "refused packet from {ATTACKER_V4} (client phone): replay"
    ));
    assert!(!open_from(&lab, &x, router_x), "the replay opened nothing");
    assert!(!lab
        .router_ruleset()
        .contains(&format!("{ATTACKER_V4} . tcp . {DEMO_PORT}")));

    // Across a daemon restart too (the replay state file).
    stop_daemon(&mut lab, 0);
    lab.start_daemon(Path::new(EXE), &config(&lab, ""), None)
        .unwrap();
    lab.daemons_wait("spa: restored 1 packet(s)");
    send(&lab.client_ns, payload, SocketAddr::new(v4, SPA_PORT));
    lab.daemons_wait(&format!(
        "refused packet from {CLIENT_V4} (client phone): replay"
    ));
    assert!(!open_from(&lab, &lab.client_ns, v4), "nothing opened");
}

#[test]
fn fwknop_with_a_wrong_hmac_key_is_refused() {
    if !ready_or_skip("fwknop_with_a_wrong_hmac_key_is_refused") {
        return;
    }
    let mut lab = lab('b');
    lab.start_daemon(Path::new(EXE), &config(&lab, ""), None)
        .unwrap();
    let v4 = IpAddr::V4(ROUTER_V4);
    fwknop(&lab, &["-s", "-D", "10.213.0.1"], WRONG_HMAC);
    lab.daemons_wait(&format!(
        "refused packet from {CLIENT_V4}: no client key authenticates it (auth_failed)"
    ));
    assert!(!open_from(&lab, &lab.client_ns, v4), "nothing opened");
    // The right key still works afterwards.
    fwknop(&lab, &["-s", "-D", "10.213.0.1"], HMAC);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert!(open_from(&lab, &lab.client_ns, v4));
}

#[test]
fn fwknop_dash_a_is_refused_by_default_and_opens_for_that_address_when_allowed() {
    if !ready_or_skip("fwknop_dash_a_is_refused_by_default_and_opens_for_that_address_when_allowed")
    {
        return;
    }
    let mut lab = lab('c');
    lab.start_daemon(Path::new(EXE), &config(&lab, ""), None)
        .unwrap();
    let x = attacker(&lab);
    let router_x = IpAddr::V4(ROUTER_X_V4);
    let other = ATTACKER_V4.to_string();
    fwknop(&lab, &["-a", &other, "-D", "10.213.0.1"], HMAC);
    lab.daemons_wait(&format!(
        "refused packet from {CLIENT_V4} (client phone): asks for {ATTACKER_V4}, not its source, \
         and the client may not ask for other addresses (option allow_other_address) (other_address)"
    ));
    assert!(!open_from(&lab, &x, router_x), "refused: nothing opened");
    // -a with the client's own address is the same as -s.
    fwknop(
        &lab,
        &["-a", &CLIENT_V4.to_string(), "-D", "10.213.0.1"],
        HMAC,
    );
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    stop_daemon(&mut lab, 0);

    let allowed = config(&lab, "\toption allow_other_address '1'\n");
    lab.start_daemon(Path::new(EXE), &allowed, None).unwrap();
    fwknop(&lab, &["-a", &other, "-D", "10.213.0.1"], HMAC);
    lab.daemons_wait(&format!(
        "opened tcp:{DEMO_PORT} for {ATTACKER_V4} for 30 s (spa client phone, packet from {CLIENT_V4})"
    ));
    assert!(open_from(&lab, &x, router_x), "open for the -a address");
    assert!(
        !open_from(&lab, &lab.client_ns, IpAddr::V4(ROUTER_V4)),
        "not for the sender"
    );
}

#[test]
fn fwknop_packet_over_ipv6_opens_for_the_ipv6_source() {
    if !ready_or_skip("fwknop_packet_over_ipv6_opens_for_the_ipv6_source") {
        return;
    }
    // fwknop 2.6.10 cannot send to an IPv6 address ("Error in getaddrinfo:
    // Address family for hostname not supported"), so the client saves its
    // packet (-B, --test) and the test carries it over IPv6, as any sender could.
    let mut lab = lab('d');
    lab.start_daemon(Path::new(EXE), &config(&lab, ""), None)
        .unwrap();
    let file = lab.dir().join("packet.txt");
    let file_s = file.display().to_string();
    fwknop(
        &lab,
        &["-s", "-D", "10.213.0.1", "--test", "-B", &file_s],
        HMAC,
    );
    let payload = std::fs::read(&file).unwrap();
    let payload = payload.trim_ascii().to_vec();
    let v6 = IpAddr::V6(ROUTER_V6);
    assert!(!open_from(&lab, &lab.client_ns, v6));
    send(&lab.client_ns, payload, SocketAddr::new(v6, SPA_PORT));
    lab.daemons_wait(&format!(
        "opened tcp:{DEMO_PORT} for {CLIENT_V6} for 30 s (spa client phone, packet from {CLIENT_V6})"
    ));
    assert!(open_from(&lab, &lab.client_ns, v6));
    assert!(
        !open_from(&lab, &lab.client_ns, IpAddr::V4(ROUTER_V4)),
        "the IPv4 source was not granted"
    );
}
