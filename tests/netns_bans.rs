//! Brute-force bans end to end on a real kernel: network namespaces (router,
//! client, and an attacker on a second link), nftables, the real daemon
//! binary, `postern knock`. Failures past the threshold ban the source in the
//! kernel (a set element with a timeout, dropped ahead of the grants), the
//! daemon ignores its knocks meanwhile, the ban runs out by itself, and a
//! trusted network is never banned.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use postern::demo::{self, Lab, ATTACKER_V4, CLIENT_V4, DEMO_PORT, ROUTER_V4, ROUTER_X_V4};
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SPA_PORT: u16 = 62201;
const SEQUENCE: [&str; 3] = ["tcp:7000", "udp:8000", "tcp:9000"];

/// A lab with the service and the attacker namespace.
fn lab(letter: char) -> Lab {
    let tag = format!("b{letter}{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// The demo sequence and an SPA client (so the SPA port is watched), with bans
/// after `threshold` failures for `ban` seconds, and `extra` main options.
fn config(lab: &Lab, threshold: u32, ban: u64, extra: &str) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\
         \toption ban_threshold '{threshold}'\n\toption ban_window '60'\n\toption ban_duration '{ban}'\n{extra}\n\
         config sequence 'service'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist knock 'tcp:9000'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\toption duration '60'\n\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n",
        lab.dir().join("state").display()
    )
}

fn attacker(lab: &Lab) -> String {
    lab.attacker_ns.clone().expect("attacker namespace")
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

/// `n` datagrams of junk the size of an SPA packet from `ns` to `to`'s SPA port.
fn junk_spa(ns: &str, to: IpAddr, n: usize) {
    demo::in_netns(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..n {
            s.send_to(&[0xa5 ^ i as u8; 120], SocketAddr::new(to, SPA_PORT))
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .unwrap();
}

fn open_from(lab: &Lab, ns: &str, addr: IpAddr) -> bool {
    lab.connect_from(ns, addr, DEMO_PORT, PROBE)
        .expect("connect")
        .is_some()
}

/// Elements of the router's `ban4` set.
fn ban4(lab: &Lab) -> String {
    lab.sh_in_router("nft list set inet postern ban4")
        .unwrap_or_default()
}

#[test]
fn junk_spa_bans_the_attacker_in_the_kernel_until_the_timeout() {
    if !root_or_skip("junk_spa_bans_the_attacker_in_the_kernel_until_the_timeout") {
        return;
    }
    let mut lab = lab('a');
    lab.start_daemon(Path::new(EXE), &config(&lab, 5, 6, ""), None)
        .unwrap();
    let x = attacker(&lab);
    let router_x = IpAddr::V4(ROUTER_X_V4);

    // The attacker first knocks right: a live grant.
    knock_from(&x, router_x, &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {ATTACKER_V4}"));
    assert!(open_from(&lab, &x, router_x), "granted before the ban");

    // Then guesses: 5 junk SPA packets ban it.
    junk_spa(&x, router_x, 5);
    lab.daemons_wait(&format!(
        "banned {ATTACKER_V4} for 6 s: too many failed knocks or SPA packets"
    ));
    let banned_at = Instant::now();
    assert!(
        ban4(&lab).contains(&ATTACKER_V4.to_string()),
        "{}",
        ban4(&lab)
    );
    // The kernel drops it ahead of its live grant.
    assert!(!open_from(&lab, &x, router_x), "banned despite the grant");
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("banned sources: 1\n"), "{status}");
    assert!(status.contains(&format!("  {ATTACKER_V4} ")), "{status}");
    assert!(status.contains("bans: failures=5 "), "{status}");

    // Its further knocks are ignored: a correct sequence makes no new grant.
    knock_from(&x, router_x, &SEQUENCE);
    let json = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(
        json.contains(&format!("\"bans\":[{{\"addr\":\"{ATTACKER_V4}\"")),
        "{json}"
    );
    assert!(!json.contains("\"from_banned\":0"), "{json}");
    let opened_for_attacker = |lab: &mut Lab| {
        lab.daemon(0)
            .log()
            .iter()
            .filter(|l| l.contains(&format!("opened tcp:{DEMO_PORT} for {ATTACKER_V4}")))
            .count()
    };
    assert_eq!(opened_for_attacker(&mut lab), 1);

    // The legitimate client still gets in.
    knock_from(&lab.client_ns, IpAddr::V4(ROUTER_V4), &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert!(open_from(&lab, &lab.client_ns, IpAddr::V4(ROUTER_V4)));

    // The kernel lifts the ban on time; the grant (60 s) is usable again.
    while ban4(&lab).contains(&ATTACKER_V4.to_string()) {
        assert!(
            banned_at.elapsed() < Duration::from_secs(10),
            "ban not lifted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        banned_at.elapsed() >= Duration::from_secs(4),
        "lifted too early"
    );
    assert!(open_from(&lab, &x, router_x), "grant usable after the ban");
    // And the daemon listens to it again.
    std::thread::sleep(Duration::from_millis(1100));
    knock_from(&x, router_x, &SEQUENCE);
    lab.daemons_wait("opened tcp:2222 for 10.213.1.2 for 60 s");
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("banned sources: 0\n"), "{status}");
}

#[test]
fn failures_ban_but_never_a_trusted_network() {
    if !root_or_skip("failures_ban_but_never_a_trusted_network") {
        return;
    }
    let mut lab = lab('b');
    let trusted = "\tlist trusted '10.213.0.0/24'\n";
    lab.start_daemon(Path::new(EXE), &config(&lab, 3, 300, trusted), None)
        .unwrap();
    let x = attacker(&lab);
    let router_x = IpAddr::V4(ROUTER_X_V4);
    let router = IpAddr::V4(ROUTER_V4);

    // The trusted client fumbles ten times (first step, then a wrong one:
    // never a failure, right or wrong) and sends junk SPA (ten failures)...
    for _ in 0..10 {
        knock_from(&lab.client_ns, router, &["tcp:7000", "tcp:9000"]);
    }
    junk_spa(&lab.client_ns, router, 10);
    // ...and still gets in.
    knock_from(&lab.client_ns, router, &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert!(open_from(&lab, &lab.client_ns, router));

    // The same fumbling from the attacker's network bans nothing (a ban
    // after wrong steps would tell which steps were right); three junk SPA
    // packets ban it.
    for _ in 0..3 {
        knock_from(&x, router_x, &["tcp:7000", "tcp:9000"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !ban4(&lab).contains(&ATTACKER_V4.to_string()),
        "{}",
        ban4(&lab)
    );
    junk_spa(&x, router_x, 3);
    lab.daemons_wait(&format!("banned {ATTACKER_V4} for 300 s"));
    knock_from(&x, router_x, &SEQUENCE);
    assert!(!open_from(&lab, &x, router_x), "banned source knocked open");

    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    // Only the attacker is listed as banned.
    assert!(
        status.contains(&format!("banned sources: 1\n  {ATTACKER_V4} ")),
        "{status}"
    );
    assert!(status.contains("trusted_failures=10"), "{status}");
    let log = lab.daemon(0).log().join("\n");
    assert!(!log.contains(&format!("banned {CLIENT_V4}")), "{log}");

    // The config holds a key: a group-readable file is warned about (at reload too).
    let path = lab.config_path(0);
    // At start, whether it warned depends on the umask the file was written with.
    let at_start = lab
        .daemon(0)
        .log()
        .iter()
        .filter(|l| l.contains("holds keys"))
        .count();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait(&format!(
        "{} holds keys but is readable or writable by group or others (mode 0640)",
        path.display()
    ));
    let count = |lab: &mut Lab, what: &str| {
        lab.daemon(0)
            .log()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    };
    lab.daemons_wait("reloaded:");
    let (warned, reloads) = (count(&mut lab, "holds keys"), count(&mut lab, "reloaded:"));
    assert_eq!((warned, reloads), (at_start + 1, 1));
    // Private again: the next reload says nothing.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    let end = Instant::now() + Duration::from_secs(5);
    while count(&mut lab, "reloaded:") < 2 {
        assert!(Instant::now() < end, "no second reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(&mut lab, "holds keys"), at_start + 1);
    // A firewall restart drops the table: the ban is re-applied with its remaining time.
    lab.sh_in_router("nft delete table inet postern").unwrap();
    lab.daemons_wait("firewall was reloaded: re-applied 1 ban(s)");
    assert!(
        ban4(&lab).contains(&ATTACKER_V4.to_string()),
        "{}",
        ban4(&lab)
    );
    assert!(!open_from(&lab, &x, router_x), "banned after the restart");
    // Bans survive the reloads.
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(
        status.contains(&format!("banned sources: 1\n  {ATTACKER_V4} ")),
        "{status}"
    );

    // Trusting the attacker's network lifts its ban at once.
    let trusting = config(
        &lab,
        3,
        300,
        "\tlist trusted '10.213.0.0/24'\n\tlist trusted '10.213.1.0/24'\n",
    );
    std::fs::write(&path, trusting).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait(&format!(
        "lifted the ban of {ATTACKER_V4}: no longer banned by the configuration"
    ));
    assert!(
        !ban4(&lab).contains(&ATTACKER_V4.to_string()),
        "{}",
        ban4(&lab)
    );
    knock_from(&x, router_x, &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {ATTACKER_V4}"));
    assert!(open_from(&lab, &x, router_x));
    assert!(
        !log.contains(&format!("opened tcp:{DEMO_PORT} for {ATTACKER_V4}")),
        "{log}"
    );
}
