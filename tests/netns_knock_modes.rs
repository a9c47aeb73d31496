//! The knock modes that carry information, end to end on a real kernel:
//! network namespaces, nftables, the real daemon binary, postern's client and
//! (for TOTP) Debian's `knock` sending what `postern knock --print` printed.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root (or `knock`) fails the test.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use postern::demo::{Lab, ATTACKER_V4, CLIENT_V6, DEMO_PORT, ROUTER_V4, ROUTER_V6, ROUTER_X_V4};
#[path = "support/root.rs"]
mod root;
use root::{in_ci, root_or_skip};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// A lab tag unique to this process and test.
fn tag(letter: char) -> String {
    format!("k{letter}{}", std::process::id() % 100_000)
}

fn lab(letter: char) -> Lab {
    let mut lab = Lab::new(&tag(letter)).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

fn header(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\n",
        lab.dir().join("state").display()
    )
}

fn totp_config(lab: &Lab) -> String {
    format!(
        "{}config sequence 'otp'\n\toption key '{KEY}'\n\toption knock_base '40000'\n\toption period '30'\n\tlist open 'tcp:{DEMO_PORT}'\n\toption duration '60'\n",
        header(lab)
    )
}

/// Runs `postern ARGS...` in the client namespace; its stdout.
fn postern(lab: &Lab, args: &[&str]) -> String {
    let mut all = vec![EXE];
    all.extend_from_slice(args);
    let out = lab.run_in_client(&all).expect("run postern");
    assert!(
        out.status.success(),
        "postern {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn open_from(lab: &Lab, ns: &str, addr: IpAddr) -> bool {
    lab.connect_from(ns, addr, DEMO_PORT, PROBE)
        .expect("connect")
        .is_some()
}

fn is_open(lab: &Lab, addr: IpAddr) -> bool {
    open_from(lab, &lab.client_ns, addr)
}

fn v4() -> IpAddr {
    IpAddr::V4(ROUTER_V4)
}

fn opened_count(lab: &mut Lab) -> usize {
    lab.daemon(0)
        .log()
        .iter()
        .filter(|l| l.contains(&format!("opened tcp:{DEMO_PORT}")))
        .count()
}

/// Waits until the wall clock is not within `margin` s of a 30 s step boundary,
/// so a sequence printed now is still the current one when it arrives.
fn away_from_step_boundary(margin: u64) {
    loop {
        let unix = postern::time::unix_now();
        let into = unix % 30;
        if into >= margin && into + margin < 30 {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn totp_with_postern_client_opens_once_per_step() {
    if !root_or_skip("totp_with_postern_client_opens_once_per_step") {
        return;
    }
    let mut lab = lab('t');
    let cfg = totp_config(&lab);
    lab.start_daemon(Path::new(EXE), &cfg, None).unwrap();
    assert!(!is_open(&lab, v4()), "guarded before any knock");
    away_from_step_boundary(3);
    // A static knock on some other port first: not a TOTP knock.
    postern(&lab, &["knock", "10.213.0.1", "tcp:7000"]);
    let out = postern(
        &lab,
        &[
            "knock",
            "10.213.0.1",
            "--totp",
            "--key",
            KEY,
            "--base",
            "40000",
        ],
    );
    assert!(out.contains("sent 6 knocks"), "{out}");
    lab.daemons_wait("opened tcp:2222 for 10.213.0.2");
    assert!(lab.daemons_wait("opened").contains("sequence otp"));
    assert!(is_open(&lab, v4()));
    // The same step again: refused (used once per step).
    let printed = postern(
        &lab,
        &[
            "knock", "--totp", "--print", "--key", KEY, "--base", "40000",
        ],
    );
    let ports: Vec<String> = printed
        .split_whitespace()
        .map(|p| format!("tcp:{p}"))
        .collect();
    let mut args = vec!["knock", "10.213.0.1"];
    args.extend(ports.iter().map(String::as_str));
    postern(&lab, &args);
    std::thread::sleep(Duration::from_millis(500));
    if postern::time::unix_now() % 30 >= 2 {
        assert_eq!(opened_count(&mut lab), 1, "replayed within the step");
    }
}

#[test]
fn totp_printed_sequence_sent_by_debian_knock_opens() {
    if !root_or_skip("totp_printed_sequence_sent_by_debian_knock_opens") {
        return;
    }
    if std::process::Command::new("knock")
        .arg("--help")
        .output()
        .is_err()
    {
        assert!(
            !in_ci(),
            "Debian's knock client (package knockd) must be installed in CI"
        );
        eprintln!("\n*** SKIPPED totp_printed_sequence_sent_by_debian_knock_opens: no 'knock' (apt-get install knockd) ***\n");
        return;
    }
    let mut lab = lab('k');
    let cfg = totp_config(&lab).replace(
        "option knock_base '40000'",
        "option knock_base '40000'\n\toption knock_proto 'udp'\n\toption length '6'\n\toption knock_range '3000'",
    );
    lab.start_daemon(Path::new(EXE), &cfg, None).unwrap();
    assert!(!is_open(&lab, v4()));
    away_from_step_boundary(3);
    let printed = postern(
        &lab,
        &[
            "knock", "--totp", "--print", "--key", KEY, "--base", "40000", "--proto", "udp",
            "--length", "6", "--range", "3000",
        ],
    );
    let ports: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(ports.len(), 6, "{printed}");
    assert!(ports.iter().all(|p| p.ends_with(":udp")), "{printed}");
    let mut args = vec!["knock", "-d", "20", "10.213.0.1"];
    args.extend(ports.iter().copied());
    let out = lab.run_in_client(&args).unwrap();
    assert!(
        out.status.success(),
        "knock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.daemons_wait("opened tcp:2222 for 10.213.0.2");
    assert!(is_open(&lab, v4()));
}

#[test]
fn encoded_sequence_opens_the_port_it_spells() {
    if !root_or_skip("encoded_sequence_opens_the_port_it_spells") {
        return;
    }
    let mut lab = lab('e');
    let profile = "config encoded 'enc'\n\toption knock_base '45000'\n\tlist header 2\n\tlist header 0\n\tlist header 3\n\tlist footer 3\n\tlist footer 0\n\tlist footer 2\n\toption port_digits 4\n\toption duration_digits 1\n\toption duration '60'\n";
    let cfg = format!(
        "{}{profile}\tlist allow 'tcp:{DEMO_PORT}'\n\tlist allow 'tcp:143'\n",
        header(&lab)
    );
    lab.start_daemon(Path::new(EXE), &cfg, None).unwrap();
    assert!(!is_open(&lab, v4()));
    // The client reads a copy of the router's section.
    let client_conf = lab.dir().join("client.conf");
    std::fs::write(&client_conf, format!("{profile}\tlist allow 'tcp:143'\n")).unwrap();
    let conf = client_conf.to_str().unwrap();
    // tcp:143 is allowed but another port: 2222 stays closed.
    postern(
        &lab,
        &[
            "knock",
            "10.213.0.1",
            "--encode",
            "tcp/143",
            "--profile",
            "enc",
            "-c",
            conf,
        ],
    );
    lab.daemons_wait("opened tcp:143 for 10.213.0.2");
    assert!(!is_open(&lab, v4()));
    postern(
        &lab,
        &[
            "knock",
            "10.213.0.1",
            "--encode",
            "tcp/2222",
            "--profile",
            "enc",
            "-c",
            conf,
            "--minutes",
            "2",
        ],
    );
    let line = lab.daemons_wait("opened tcp:2222 for 10.213.0.2");
    assert!(line.contains("for 120 s (encoded enc)"), "{line}");
    assert!(is_open(&lab, v4()));
}

#[test]
fn authenticated_knocks_open_for_their_source_only_and_never_twice() {
    if !root_or_skip("authenticated_knocks_open_for_their_source_only_and_never_twice") {
        return;
    }
    let mut lab = lab('a');
    lab.add_attacker().unwrap();
    let cfg = format!(
        "{}config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n\toption max_duration '600'\n\toption knock_base '50000'\n",
        header(&lab)
    );
    lab.start_daemon(Path::new(EXE), &cfg, None).unwrap();
    assert!(!is_open(&lab, v4()));
    away_from_step_boundary(3);
    // The client's twelve knocks (printed, then sent as they are): what a
    // sniffer on the path sees.
    let printed = postern(
        &lab,
        &[
            "knock",
            "--auth",
            "-A",
            "tcp/2222",
            "--base",
            "50000",
            "--key",
            KEY,
            "--source",
            "10.213.0.2",
            "--minutes",
            "2",
            "--print",
        ],
    );
    let wire: Vec<String> = printed
        .split_whitespace()
        .map(|p| format!("tcp:{p}"))
        .collect();
    assert_eq!(wire.len(), 12, "{printed}");
    let mut args = vec!["knock", "--delay", "20", "10.213.0.1"];
    args.extend(wire.iter().map(String::as_str));
    postern(&lab, &args);
    let line = lab.daemons_wait("opened tcp:2222 for 10.213.0.2");
    assert!(line.contains("for 120 s (knock client laptop"), "{line}");
    assert!(is_open(&lab, v4()));

    // The sniffed knocks replayed from the attacker's address: nothing opens there.
    let x = lab.attacker_ns.clone().unwrap();
    let mut args = vec![EXE, "knock", "--delay", "20", "10.213.1.1"];
    args.extend(wire.iter().map(String::as_str));
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &x])
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success());
    // ...and the knocks replayed from the client's own address: the code is used up.
    let mut args = vec!["knock", "--delay", "20", "10.213.0.1"];
    args.extend(wire.iter().map(String::as_str));
    postern(&lab, &args);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !open_from(&lab, &x, IpAddr::V4(ROUTER_X_V4)),
        "attacker {ATTACKER_V4} got in"
    );
    assert_eq!(opened_count(&mut lab), 1, "one grant only");

    // IPv6, and close.
    let v6 = IpAddr::V6(ROUTER_V6);
    postern(
        &lab,
        &[
            "knock",
            "fd00:213::1",
            "--auth",
            "-A",
            "tcp/2222",
            "--base",
            "50000",
            "--key",
            KEY,
        ],
    );
    lab.daemons_wait(&format!("opened tcp:2222 for {CLIENT_V6} for 600 s"));
    assert!(is_open(&lab, v6));
    postern(
        &lab,
        &[
            "knock",
            "10.213.0.1",
            "--auth",
            "-A",
            "tcp/2222",
            "--base",
            "50000",
            "--key",
            KEY,
            "--close",
        ],
    );
    lab.daemons_wait("closed tcp:2222 for 10.213.0.2");
    assert!(!is_open(&lab, v4()), "closed at once");
    assert!(is_open(&lab, v6), "the IPv6 grant stays");
}
