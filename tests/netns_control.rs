//! The control socket's state-changing requests end to end (network
//! namespaces, nftables, the real daemon binary): `postern revoke` ends a
//! live grant in the kernel at once, `postern unban` lifts a ban in the
//! kernel at once, and a refused reload shows in `postern status` (the
//! LuCI page reads `last_reload_error`) until a good one follows.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use postern::demo::{Lab, ATTACKER_V4, CLIENT_V4, DEMO_PORT, ROUTER_V4, ROUTER_X_V4};
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const SEQUENCE: [&str; 3] = ["tcp:7000", "udp:8000", "tcp:9000"];

/// The router's one SPA client (so that SPA is on).
const CLIENT_KEY: &str = "cG9zdGVybi1jb250cm9sLXRlc3QtY2xpZW50LWszMiE=";
/// A key the router does not know: its packets are failures.
const STRANGER_KEY: &str = "bm90LXRoZS1yb3V0ZXJzLWtleS1hdC1hbGwtMzJieXQ=";

fn config(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\
         \toption ban_threshold '3'\n\toption ban_window '60'\n\toption ban_duration '300'\n\n\
         config sequence 'service'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist knock 'tcp:9000'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\toption duration '300'\n\n\
         config client 'laptop'\n\toption key '{CLIENT_KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n",
        lab.dir().join("state").display()
    )
}

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
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `postern ARGS... -s SOCKET` against the lab's daemon.
fn control(lab: &Lab, args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .arg("-s")
        .arg(lab.control_path(0))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn revoke_and_unban_act_in_the_kernel_at_once() {
    if !root_or_skip("revoke_and_unban_act_in_the_kernel_at_once") {
        return;
    }
    let tag = format!("ct{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab.start_daemon(Path::new(EXE), &config(&lab), None)
        .unwrap();
    let router = IpAddr::V4(ROUTER_V4);
    let router_x = IpAddr::V4(ROUTER_X_V4);
    let x = lab.attacker_ns.clone().unwrap();

    // A live grant for the client, 300 s long.
    knock_from(&lab.client_ns, router, &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    let open = |lab: &Lab| {
        lab.connect_from(&lab.client_ns, router, DEMO_PORT, PROBE)
            .unwrap()
            .is_some()
    };
    assert!(open(&lab));
    let port = format!("tcp:{DEMO_PORT}");
    let client = CLIENT_V4.to_string();

    // A grant that is not there, and a bad request: refused, nothing changes.
    let none = control(&lab, &["revoke", "192.0.2.99", &port]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        text(&none).contains("error: no live grant"),
        "{}",
        text(&none)
    );
    let bad = control(&lab, &["revoke", &client, "tcp:0"]);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(open(&lab), "a refused request changed nothing");

    // The revoke: the port closes now, not in 300 s.
    let ok = control(&lab, &["revoke", &client, &port]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).starts_with(&format!("ok: revoked {port} for {client}")));
    lab.daemons_wait(&format!("revoked {port} for {client} (control socket)"));
    assert!(!open(&lab), "revoked grant still open in the kernel");
    let json = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(json.contains("\"grants\":[]"), "{json}");

    // A ban: SPA packets sealed with a key the router does not know, from
    // the attacker's link (knocks never ban: that would be an oracle).
    for _ in 0..3 {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &x, EXE, "spa", &router_x.to_string()])
            .args(["-A", &format!("tcp/{DEMO_PORT}"), "--key", STRANGER_KEY])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    lab.daemons_wait(&format!("banned {ATTACKER_V4} for 300 s"));
    let ban4 = |lab: &Lab| {
        lab.sh_in_router("nft list set inet postern ban4")
            .unwrap_or_default()
    };
    assert!(ban4(&lab).contains(&ATTACKER_V4.to_string()));
    let none = control(&lab, &["unban", "192.0.2.0/24"]);
    assert!(
        text(&none).contains("error: no live ban within 192.0.2.0/24"),
        "{}",
        text(&none)
    );
    // Lifted at once, in the kernel and in the daemon (its knocks count again).
    let net = format!("{ATTACKER_V4}/32");
    let ok = control(&lab, &["unban", &net]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert_eq!(text(&ok), format!("ok: lifted the ban of {ATTACKER_V4}\n"));
    assert!(
        !ban4(&lab).contains(&ATTACKER_V4.to_string()),
        "{}",
        ban4(&lab)
    );
    let json = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(json.contains("\"bans\":[]"), "{json}");
    knock_from(&x, router_x, &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {ATTACKER_V4}"));
}

#[test]
fn a_refused_reload_shows_in_status_until_a_good_one() {
    if !root_or_skip("a_refused_reload_shows_in_status_until_a_good_one") {
        return;
    }
    let tag = format!("cr{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    let good = config(&lab);
    lab.start_daemon(Path::new(EXE), &good, None).unwrap();
    let json = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(json.contains("\"last_reload_error\":null"), "{json}");

    // A knock step equal to the SPA port with a client: the daemon refuses it.
    let path = lab.config_path(0);
    let bad = good.replace("tcp:9000", "tcp:7000\n\tlist knock 'udp:62201'")
        + "\nconfig client 'phone'\n\tlist allow 'tcp:22'\n";
    std::fs::write(&path, &bad).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait("reload refused");
    let json = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(json.contains("\"last_reload_error\":\""), "{json}");
    assert!(json.contains("has no key"), "{json}");
    let text = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(text.contains("LAST RELOAD REFUSED"), "{text}");

    std::fs::write(&path, &good).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait("reloaded: guarding");
    let json = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(json.contains("\"last_reload_error\":null"), "{json}");
}
