//! Server-chosen ports end to end: a request without ports opens the
//! client's `list default_access` and nothing else — from `postern spa`
//! without `-A` (and `--stanza` with no `access`), and from fwknop's
//! portless access message (`ADDR,none/0`, what the fwknop client sends
//! without `-A`). A client without `default_access` gets nothing.
//!
//! The real `fwknop` client runs here too: Debian's fwknop 2.6.10 refuses to
//! build a portless message itself (libfko rejects `none/0`: "Invalid SPA
//! access message format"), so when it does, the same message is sealed with
//! the client's keys by the test and sent from the client namespace; a
//! fwknop that sends it gets its own packet checked instead.
//!
//! Root only (and the `fwknop` binary). Without root each test prints
//! SKIPPED loudly and passes — except under `CI=true`, where they must run.

use std::net::{IpAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern::demo::{self, Lab, DEMO_PORT, ROUTER_V4};
use postern::spa::fwknop::message::plaintext_for_test;
use postern::spa::fwknop::{seal_for_test, HmacType, Keys, Secret};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const KEY2: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
/// fwknop keys (`fwknop --key-gen`).
const FKEY: &str = "DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=";
const FHMAC: &str =
    "dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==";
/// A second allowed port, not in the default access.
const OTHER_PORT: u16 = 2223;

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
    format!("d{letter}{}", std::process::id() % 100_000)
}

/// The router: `phone` (native and fwknop keys) may open both ports and
/// opens the demo port when it names none; `plain` has no default.
fn config(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\n\
         config client 'phone'\n\toption key '{KEY}'\n\toption fwknop_key '{FKEY}'\n\toption fwknop_hmac_key '{FHMAC}'\n\
         \tlist allow 'tcp:{DEMO_PORT}'\n\tlist allow 'tcp:{OTHER_PORT}'\n\tlist default_access 'tcp:{DEMO_PORT}'\n\n\
         config client 'plain'\n\toption key '{KEY2}'\n\tlist allow 'tcp:{DEMO_PORT}'\n",
        lab.dir().join("state").display()
    )
}

fn lab(letter: char) -> Lab {
    let mut lab = Lab::new(&tag(letter)).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab.serve_tcp(OTHER_PORT).unwrap();
    let cfg = config(&lab);
    lab.start_daemon(Path::new(EXE), &cfg, None).unwrap();
    lab
}

fn open(lab: &Lab, port: u16) -> bool {
    lab.connect(IpAddr::V4(ROUTER_V4), port, PROBE)
        .expect("connect")
        .is_some()
}

fn postern(lab: &Lab, args: &[&str]) -> std::process::Output {
    let mut all = vec![EXE];
    all.extend_from_slice(args);
    lab.run_in_client(&all).expect("run postern")
}

#[test]
fn postern_spa_without_ports_opens_the_default_access() {
    if !ready_or_skip("postern_spa_without_ports_opens_the_default_access") {
        return;
    }
    let lab = lab('n');
    assert!(!open(&lab, DEMO_PORT) && !open(&lab, OTHER_PORT));

    // A client without default_access: its portless request opens nothing.
    let out = postern(&lab, &["spa", "10.213.0.1", "--key", KEY2]);
    assert!(out.status.success(), "{out:?}");
    lab.daemons_wait("has no default_access; nothing opened (port_not_allowed)");
    assert!(!open(&lab, DEMO_PORT));

    // No -A: the router's choice, and only that.
    let out = postern(&lab, &["spa", "10.213.0.1", "--key", KEY]);
    assert!(out.status.success(), "{out:?}");
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for 10.213.0.2"));
    assert!(open(&lab, DEMO_PORT), "the default access is open");
    assert!(!open(&lab, OTHER_PORT), "the other allowed port is not");

    // --close without -A closes the default access again.
    let out = postern(&lab, &["spa", "10.213.0.1", "--key", KEY, "--close"]);
    assert!(out.status.success(), "{out:?}");
    lab.daemons_wait(&format!("closed tcp:{DEMO_PORT} for 10.213.0.2"));
    assert!(!open(&lab, DEMO_PORT));

    // A stanza without access needs no -A.
    let conf = lab.dir().join("client.conf");
    std::fs::write(
        &conf,
        format!("config stanza 'home'\n\toption host '10.213.0.1'\n\toption key '{KEY}'\n"),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let out = postern(&lab, &["spa", "--stanza", "home", "-c", &conf]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            open(&lab, DEMO_PORT)
        }),
        "the stanza's request opened the default access"
    );
    assert!(!open(&lab, OTHER_PORT));
}

#[test]
fn fwknop_without_ports_opens_the_default_access() {
    if !ready_or_skip("fwknop_without_ports_opens_the_default_access") {
        return;
    }
    let lab = lab('f');
    let home = format!("HOME={}", lab.dir().display());
    let fwknop = |access: &[&str]| {
        let mut all = vec![
            "env",
            &home,
            "fwknop",
            "--no-rc-file",
            "--no-save-args",
            "--use-hmac",
            "--key-base64-rijndael",
            FKEY,
            "--key-base64-hmac",
            FHMAC,
            "-D",
            "10.213.0.1",
            "-s",
        ];
        all.extend_from_slice(access);
        lab.run_in_client(&all).expect("run fwknop")
    };
    // The real client with ports: the client's allow list as usual.
    let out = fwknop(&["-A", &format!("tcp/{OTHER_PORT}")]);
    assert!(out.status.success(), "{out:?}");
    lab.daemons_wait(&format!("opened tcp:{OTHER_PORT} for 10.213.0.2"));
    assert!(!open(&lab, DEMO_PORT));

    // The real client asked for no port (its default message is none/0).
    let out = fwknop(&["-A", "none/0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("this fwknop sends a portless access message itself");
    } else {
        assert!(
            stderr.contains("Invalid SPA access message format"),
            "fwknop -A none/0: {stderr}"
        );
        eprintln!(
            "fwknop refuses to build a portless message (libfko 2.6.10); sending the same \
             message sealed with its keys: {}",
            stderr.trim()
        );
        let keys = Keys {
            key: Secret::from_base64(FKEY).unwrap(),
            hmac_key: Secret::from_base64(FHMAC).unwrap(),
            hmac_type: HmacType::Sha256,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let plain = plaintext_for_test(now, 1, "0.0.0.0,none/0");
        let packet = seal_for_test(&keys, [0x5a; 8], &plain);
        demo::in_netns(&lab.client_ns, move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(&packet, "10.213.0.1:62201").unwrap();
        })
        .unwrap();
    }
    lab.daemons_wait(&format!(
        "opened tcp:{DEMO_PORT} for 10.213.0.2 for 30 s (spa client phone"
    ));
    assert!(open(&lab, DEMO_PORT), "the default access is open");
}
