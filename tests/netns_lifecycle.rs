//! Firewall and interface lifecycle on a real kernel (network namespaces, the
//! real daemon binary): a capture device deleted and created again (a new
//! ifindex) is picked up again without restarting the daemon, and one taken
//! down and up again keeps being captured; a SIGHUP with a broken file keeps
//! live grants, and after `kill -9` the grant lives on in the kernel and a
//! supervisor's restart recovers (same table, replay state restored, new
//! grants).
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern::demo::{demo_config, Lab, CLIENT_V4, DEMO_PORT, ROUTER_V4};
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");

fn knock(lab: &Lab) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.client_ns, EXE, "knock", "10.213.0.1"])
        .args(["tcp:7000", "udp:8000", "tcp:9000"])
        .output()
        .expect("run postern knock");
    assert!(
        out.status.success(),
        "postern knock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn opened(lab: &mut Lab) -> usize {
    let line = format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}");
    lab.daemon(0)
        .log()
        .iter()
        .filter(|l| l.contains(&line))
        .count()
}

#[test]
fn capture_resumes_after_the_interface_is_recreated() {
    if !root_or_skip("capture_resumes_after_the_interface_is_recreated") {
        return;
    }
    let tag = format!("l{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab.start_daemon(Path::new(EXE), &demo_config(5), None)
        .unwrap();
    let router = IpAddr::V4(ROUTER_V4);
    knock(&lab);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert_eq!(opened(&mut lab), 1);

    lab.recreate_client_link().unwrap();
    lab.daemons_wait(&format!(
        "capture {}: interface re-created; capture resumed",
        lab.router_dev
    ));
    // Knocks on the new device are seen, and the service opens through it.
    std::thread::sleep(Duration::from_millis(5500));
    assert!(
        lab.connect(router, DEMO_PORT, Duration::from_millis(500))
            .unwrap()
            .is_none(),
        "the first grant expired"
    );
    knock(&lab);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while opened(&mut lab) < 2 {
        assert!(
            std::time::Instant::now() < end,
            "no knock seen after the interface came back: {:?}",
            lab.daemon(0).log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lab
        .connect(router, DEMO_PORT, Duration::from_millis(500))
        .unwrap()
        .is_some());

    // Down and up again (same ifindex): the socket keeps working by itself.
    let dev = lab.router_dev.clone();
    lab.sh_in_router(&format!("ip link set {dev} down && ip link set {dev} up"))
        .unwrap();
    let client_dev = format!("pc{}", &dev[2..]);
    let out = Command::new("ip")
        .args(["-n", &lab.client_ns, "link", "set", &client_dev, "up"])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_carrier(&lab, &dev);
    knock(&lab);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while opened(&mut lab) < 3 {
        assert!(
            std::time::Instant::now() < end,
            "no knock seen after down/up: {:?}",
            lab.daemon(0).log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most 3 s) for carrier on the router's `dev`.
fn wait_carrier(lab: &Lab, dev: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let up = lab
            .sh_in_router(&format!("cat /sys/class/net/{dev}/carrier"))
            .unwrap_or_default();
        if up.trim() == "1" {
            return;
        }
        assert!(std::time::Instant::now() < end, "{dev}: no carrier");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A sequence opening the demo port for `duration` s and an SPA client, with
/// the replay state in the lab.
fn config_with_spa(lab: &Lab, duration: u64) -> String {
    demo_config(duration).replace(
        "\toption log_level 'info'\n",
        &format!(
            "\toption log_level 'info'\n\toption state_dir '{}'\n",
            lab.dir().join("state").display()
        ),
    ) + &format!("\nconfig client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n")
}

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// `postern spa` from the client: opens the demo port for 8 s.
fn spa(lab: &Lab) {
    let out = lab
        .run_in_client(&[
            EXE,
            "spa",
            "10.213.0.1",
            "-A",
            &format!("tcp/{DEMO_PORT}"),
            "--duration",
            "8",
            "--key",
            KEY,
        ])
        .expect("run postern spa");
    assert!(
        out.status.success(),
        "postern spa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn broken_reload_keeps_grants_and_a_restart_after_kill_9_recovers() {
    if !root_or_skip("broken_reload_keeps_grants_and_a_restart_after_kill_9_recovers") {
        return;
    }
    let tag = format!("k{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    let config = config_with_spa(&lab, 8);
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let router = IpAddr::V4(ROUTER_V4);
    let is_open = |lab: &Lab| {
        lab.connect(router, DEMO_PORT, Duration::from_millis(500))
            .unwrap()
            .is_some()
    };
    knock(&lab);
    spa(&lab);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while opened(&mut lab) < 2 {
        assert!(std::time::Instant::now() < end, "{:?}", lab.daemon(0).log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let granted = std::time::Instant::now();

    // SIGHUP with a broken file: refused, the grant and its mirror stay.
    std::fs::write(lab.config_path(0), "config sequence 'x'\n\tlist knock\n").unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait("reload refused");
    assert!(is_open(&lab), "grant kept after a refused reload");
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("live grants: 1\n"), "{status}");
    assert!(status.contains(&CLIENT_V4.to_string()), "{status}");

    // kill -9: the kernel keeps the grant until its timeout...
    let d = lab.daemon(0);
    d.signal(libc::SIGKILL);
    assert_eq!(d.wait_exit(Duration::from_secs(3)), None);
    assert!(is_open(&lab), "the grant outlives the daemon");
    // ...and a supervisor's restart (procd respawn) comes up on the same
    // table with the grant in place and the SPA replay record restored.
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    lab.daemons_wait("spa: restored 1 packet(s)");
    assert!(is_open(&lab), "restart keeps the live grant");
    // The restarted daemon grants again.
    let count_new = |lab: &mut Lab| {
        let line = format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}");
        lab.daemon(1)
            .log()
            .iter()
            .filter(|l| l.contains(&line))
            .count()
    };
    // (At least 3 s after the first grant, so the two end apart.)
    while granted.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    spa(&lab);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert_eq!(count_new(&mut lab), 1);
    // The first grant was replaced by the new one (8 s from then): still open
    // past the first grant's end, closed by the kernel after the new one's.
    while granted.elapsed() < Duration::from_secs(9) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(is_open(&lab), "the new grant runs its own time");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while is_open(&lab) {
        assert!(
            std::time::Instant::now() < end,
            "the kernel did not close the grant"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
