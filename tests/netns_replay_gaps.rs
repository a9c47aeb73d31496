//! SPA replay protection without gaps, end to end on a real kernel (network
//! namespaces, nftables, the real daemon binary, `postern spa`): a packet is
//! captured on the wire in the router namespace (AF_PACKET, like any sniffer)
//! and replayed after restarts and reloads that once let it through.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use postern::capture::{bpf, Capture};
use postern::demo::{self, Lab, CLIENT_V4, DEMO_PORT, ROUTER_V4};
use postern::port::PortSpec;
use postern::wire;
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SPA_PORT: u16 = 62201;

/// A lab with the service, tagged with this process and test.
fn lab(letter: char) -> Lab {
    let mut lab = Lab::new(&format!("r{letter}{}", std::process::id() % 100_000)).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// The router's config: a knock sequence (so there is always something to
/// guard) and the SPA client `laptop`, enabled or not, with `extra` lines in
/// its section; `main` lines go into `config postern`.
fn config(lab: &Lab, client_enabled: bool, main: &str, extra: &str) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'info'\n\
         \toption state_dir '{}'\n{main}\n\
         config sequence 'service'\n\tlist knock 'tcp:7000'\n\tlist knock 'tcp:9000'\n\
         \toption action 'open'\n\tlist open 'tcp:{DEMO_PORT}'\n\n\
         config client 'laptop'\n\toption enabled '{}'\n\toption key '{KEY}'\n\
         \tlist allow 'tcp:{DEMO_PORT}'\n\toption max_duration '600'\n{extra}",
        lab.dir().join("state").display(),
        u8::from(client_enabled)
    )
}

/// Runs `postern spa` in the client namespace, asking for tcp `port`.
fn spa(lab: &Lab, port: u16) {
    let port = format!("tcp/{port}");
    let args = [
        EXE,
        "spa",
        "10.213.0.1",
        "-A",
        &port,
        "--key",
        KEY,
        "--duration",
        "60",
    ];
    let out = lab.run_in_client(&args).expect("run postern spa");
    assert!(
        out.status.success(),
        "postern spa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_open(lab: &Lab) -> bool {
    lab.connect(IpAddr::V4(ROUTER_V4), DEMO_PORT, PROBE)
        .expect("connect")
        .is_some()
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

/// Sends the captured `payload` again from the client namespace.
fn resend(lab: &Lab, payload: Vec<u8>) {
    let to = SocketAddr::new(IpAddr::V4(ROUTER_V4), SPA_PORT);
    demo::in_netns(&lab.client_ns, move || {
        UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .send_to(&payload, to)
            .unwrap();
    })
    .unwrap();
}

/// Stops the newest daemon with TERM (the standalone table and grants go with it).
fn stop(lab: &mut Lab, index: usize) {
    let d = lab.daemon(index);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

/// Rewrites the newest daemon's config and reloads it with SIGHUP.
fn reload(lab: &mut Lab, index: usize, config: &str) {
    std::fs::write(lab.config_path(index), config).unwrap();
    lab.daemon(index).signal(libc::SIGHUP);
    lab.daemons_wait("reloaded:");
}

#[test]
fn replay_after_a_restart_with_spa_switched_on_by_a_reload_is_refused() {
    if !root_or_skip("replay_after_a_restart_with_spa_switched_on_by_a_reload_is_refused") {
        return;
    }
    let mut lab = lab('a');
    let on = config(&lab, true, "", "");
    lab.start_daemon(Path::new(EXE), &on, None).unwrap();
    let cap = sniffer(&lab);
    spa(&lab, DEMO_PORT);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    let payload = sniffed_payload(&cap);
    stop(&mut lab, 0);

    // Restarted with the client disabled: no SPA at start...
    lab.start_daemon(Path::new(EXE), &config(&lab, false, "", ""), None)
        .unwrap();
    assert!(!is_open(&lab), "guarded again, no grant");
    // ...then the client is enabled by a reload.
    reload(&mut lab, 1, &on);
    lab.daemons_wait("spa: restored 1 packet(s)");
    resend(&lab, payload);
    lab.daemons_wait(&format!(
        "refused packet from {CLIENT_V4} (client laptop): replay"
    ));
    assert!(!is_open(&lab), "the replay opened nothing");
    // A fresh packet still works.
    spa(&lab, DEMO_PORT);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert!(is_open(&lab));
}

/// Sends `postern spa` for tcp `port` and returns its bytes as seen on the wire.
fn spa_captured(lab: &Lab, port: u16) -> Vec<u8> {
    let cap = sniffer(lab);
    spa(lab, port);
    sniffed_payload(&cap)
}

#[test]
fn raising_max_skew_or_allowing_a_refused_request_across_restarts_replays_nothing() {
    if !root_or_skip(
        "raising_max_skew_or_allowing_a_refused_request_across_restarts_replays_nothing",
    ) {
        return;
    }
    let mut lab = lab('b');
    // max_skew 2 s: a packet leaves the window (and the state file) quickly.
    let narrow = config(&lab, true, "\toption max_skew '2'\n", "");
    lab.start_daemon(Path::new(EXE), &narrow, None).unwrap();
    let old = spa_captured(&lab, DEMO_PORT);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    std::thread::sleep(Duration::from_millis(3500));
    // A newer packet: writing it drops the old one's entry from the file.
    spa(&lab, DEMO_PORT);
    // Refused after authentication: a port the client may not open.
    let refused = spa_captured(&lab, 2224);
    lab.daemons_wait("(port_not_allowed)");
    stop(&mut lab, 0);

    // Restart with a wide window and the port allowed.
    let wide = config(
        &lab,
        true,
        "\toption max_skew '600'\n",
        "\tlist allow 'tcp:2224'\n",
    );
    lab.start_daemon(Path::new(EXE), &wide, None).unwrap();
    lab.daemons_wait("spa: restored 2 packet(s)");
    resend(&lab, old);
    lab.daemons_wait("(before_replay_guard)");
    resend(&lab, refused);
    lab.daemons_wait(&format!(
        "refused packet from {CLIENT_V4} (client laptop): replay"
    ));
    assert!(!is_open(&lab), "nothing opened");
    let log = lab.daemon(1).log().join("\n");
    assert!(!log.contains("opened"), "{log}");
}

#[test]
fn replay_after_a_restart_with_a_malformed_state_file_is_refused() {
    if !root_or_skip("replay_after_a_restart_with_a_malformed_state_file_is_refused") {
        return;
    }
    let mut lab = lab('c');
    let on = config(&lab, true, "", "");
    lab.start_daemon(Path::new(EXE), &on, None).unwrap();
    let captured = spa_captured(&lab, DEMO_PORT);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    stop(&mut lab, 0);
    // The state is lost: the history of this boot is unknown.
    let file = lab.dir().join("state").join("spa-replay");
    std::fs::write(&file, "postern-spa-replay 2\ngarbage\n").unwrap();
    lab.start_daemon(Path::new(EXE), &on, None).unwrap();
    lab.daemons_wait("is unreadable or malformed");
    resend(&lab, captured);
    lab.daemons_wait("(before_replay_guard)");
    assert!(!is_open(&lab), "the replay opened nothing");
}
