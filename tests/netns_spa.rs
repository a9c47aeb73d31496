//! SPA end to end on a real kernel: network namespaces (router, client and an
//! attacker on a second link), nftables, the real daemon binary and
//! `postern spa`. A packet is captured on the wire in the router namespace
//! (AF_PACKET, like any sniffer) and replayed.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use postern::capture::{bpf, Capture};
use postern::demo::{
    self, Lab, ATTACKER_V4, CLIENT_V4, CLIENT_V6, DEMO_PORT, ROUTER_V4, ROUTER_V6, ROUTER_X_V4,
};
use postern::port::PortSpec;
use postern::wire;
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SPA_PORT: u16 = 62201;

/// A lab tag unique to this process and test.
fn tag(letter: char) -> String {
    format!("s{letter}{}", std::process::id() % 100_000)
}

/// A lab with the service and the attacker namespace.
fn lab(letter: char) -> Lab {
    let mut lab = Lab::new(&tag(letter)).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// The router's config: one SPA client that may open the demo port, state in the lab dir.
fn spa_config(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n\toption max_duration '600'\n",
        lab.dir().join("state").display()
    )
}

/// [`spa_config`] with the client allowed to ask for other addresses (`-a`).
fn spa_config_other_addresses(lab: &Lab) -> String {
    format!("{}\toption allow_other_address '1'\n", spa_config(lab))
}

/// Runs `postern spa` in the client namespace.
fn spa(lab: &Lab, extra: &[&str]) {
    let port = format!("tcp/{DEMO_PORT}");
    let mut args = vec![EXE, "spa"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-A", &port, "--key", KEY, "--duration", "60"]);
    let out = lab.run_in_client(&args).expect("run postern spa");
    assert!(
        out.status.success(),
        "postern spa: {}",
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
fn resend(ns: &str, payload: Vec<u8>, to: SocketAddr) {
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
fn spa_opens_for_the_sender_and_a_replay_from_elsewhere_is_refused() {
    if !root_or_skip("spa_opens_for_the_sender_and_a_replay_from_elsewhere_is_refused") {
        return;
    }
    let mut lab = lab('a');
    let config = spa_config(&lab);
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let v4 = IpAddr::V4(ROUTER_V4);
    let x = attacker(&lab);
    assert!(!open_from(&lab, &lab.client_ns, v4), "guarded before SPA");
    let cap = sniffer(&lab);
    spa(&lab, &["10.213.0.1"]);
    lab.daemons_wait(&format!(
        "opened tcp:{DEMO_PORT} for {CLIENT_V4} for 60 s (spa client laptop, packet from {CLIENT_V4})"
    ));
    assert!(open_from(&lab, &lab.client_ns, v4), "open for the sender");
    let router_x = IpAddr::V4(ROUTER_X_V4);
    assert!(!open_from(&lab, &x, router_x), "not for anyone else");

    let payload = sniffed_payload(&cap);
    resend(&x, payload, SocketAddr::new(router_x, SPA_PORT));
    lab.daemons_wait(&format!(
        "refused packet from {ATTACKER_V4} (client laptop): replay"
    ));
    assert!(!open_from(&lab, &x, router_x), "the replay opened nothing");
    assert!(!lab
        .router_ruleset()
        .contains(&format!("{ATTACKER_V4} . tcp . {DEMO_PORT}")));
}

#[test]
fn spa_dash_a_is_refused_by_default_and_opens_for_that_address_only_when_allowed() {
    if !root_or_skip(
        "spa_dash_a_is_refused_by_default_and_opens_for_that_address_only_when_allowed",
    ) {
        return;
    }
    let mut lab = lab('b');
    // By default a client opens only for its own source.
    lab.start_daemon(Path::new(EXE), &spa_config(&lab), None)
        .unwrap();
    let x = attacker(&lab);
    let router_x = IpAddr::V4(ROUTER_X_V4);
    spa(&lab, &["10.213.0.1", "-a", &ATTACKER_V4.to_string()]);
    lab.daemons_wait(&format!(
        "refused packet from {CLIENT_V4} (client laptop): asks for {ATTACKER_V4}, not its source"
    ));
    assert!(!open_from(&lab, &x, router_x), "refused: nothing opened");
    let d = lab.daemon(0);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));

    let config = spa_config_other_addresses(&lab);
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    assert!(!open_from(&lab, &x, router_x));
    spa(&lab, &["10.213.0.1", "-a", &ATTACKER_V4.to_string()]);
    lab.daemons_wait(&format!(
        "opened tcp:{DEMO_PORT} for {ATTACKER_V4} for 60 s (spa client laptop, packet from {CLIENT_V4})"
    ));
    assert!(open_from(&lab, &x, router_x), "open for the -a address");
    assert!(
        !open_from(&lab, &lab.client_ns, IpAddr::V4(ROUTER_V4)),
        "not for the sender"
    );
    // A close request (also with -a) removes it at once.
    let port = format!("tcp/{DEMO_PORT}");
    let out = lab
        .run_in_client(&[
            EXE,
            "spa",
            "10.213.0.1",
            "-a",
            &ATTACKER_V4.to_string(),
            "--close",
            "-A",
            &port,
            "--key",
            KEY,
        ])
        .unwrap();
    assert!(out.status.success());
    lab.daemons_wait(&format!("closed tcp:{DEMO_PORT} for {ATTACKER_V4}"));
    assert!(
        !open_from(&lab, &x, router_x),
        "closed by the close request"
    );
}

#[test]
fn spa_over_ipv6_opens_for_the_ipv6_source_only() {
    if !root_or_skip("spa_over_ipv6_opens_for_the_ipv6_source_only") {
        return;
    }
    let mut lab = lab('c');
    let config = spa_config(&lab);
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let v6 = IpAddr::V6(ROUTER_V6);
    assert!(!open_from(&lab, &lab.client_ns, v6));
    spa(&lab, &["fd00:213::1"]);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V6}"));
    assert!(open_from(&lab, &lab.client_ns, v6));
    assert!(
        !open_from(&lab, &lab.client_ns, IpAddr::V4(ROUTER_V4)),
        "the IPv4 source was not granted"
    );
    assert!(lab
        .router_ruleset()
        .contains(&format!("{CLIENT_V6} . tcp . {DEMO_PORT}")));
}

#[test]
fn replay_after_a_daemon_restart_is_refused() {
    if !root_or_skip("replay_after_a_daemon_restart_is_refused") {
        return;
    }
    let mut lab = lab('d');
    let config = spa_config(&lab);
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let v4 = IpAddr::V4(ROUTER_V4);
    let cap = sniffer(&lab);
    spa(&lab, &["10.213.0.1"]);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    let payload = sniffed_payload(&cap);
    // Stop: the standalone table (and the grant) goes with the daemon.
    let d = lab.daemon(0);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));

    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    lab.daemons_wait("spa: restored 1 packet(s)");
    assert!(
        !open_from(&lab, &lab.client_ns, v4),
        "guarded again, no grant"
    );
    // The same bytes from the same source, well within the timestamp window.
    resend(
        &lab.client_ns,
        payload.clone(),
        SocketAddr::new(v4, SPA_PORT),
    );
    lab.daemons_wait(&format!(
        "refused packet from {CLIENT_V4} (client laptop): replay"
    ));
    assert!(
        !open_from(&lab, &lab.client_ns, v4),
        "the replay opened nothing"
    );
    // A fresh packet still works.
    spa(&lab, &["10.213.0.1"]);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert!(open_from(&lab, &lab.client_ns, v4));
}
