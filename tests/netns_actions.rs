//! SPA commands and forwards end to end, with three namespaces: client —
//! router (postern, standalone nftables) — LAN host.
//!
//! - a command runs exactly the configured program with its arguments taken
//!   literally (a marker file whose name holds shell metacharacters, and no
//!   file that a shell would have made); a command the client may not run,
//!   and fwknop command text that matches no `fwknop_match`, run nothing;
//! - a forward grant lets the client reach the LAN host's service through the
//!   router's WAN address (IPv4, DNAT) or at the host's own address (IPv6, no
//!   NAT), and new connections fail again once it expires; a client without
//!   the forward in its list gets nothing;
//! - the real `fwknop` client's NAT request (`-N HOST:PORT`) opens the
//!   configured forward.
//!
//! Root only (and the `fwknop` binary). Without root each test prints SKIPPED
//! loudly and passes — except under `CI=true`, where they must run.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use postern::demo::{Lab, LAN_V4, LAN_V6, ROUTER_V4, ROUTER_V6};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(700);
/// The phone's native key and a second client's.
const KEY1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
/// fwknop keys (`fwknop --key-gen`).
const FKEY: &str = "DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=";
const FHMAC: &str =
    "dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==";
/// The router port forwarded, and the LAN host's service port behind it.
const EXT_PORT: u16 = 8022;
const LAN_PORT: u16 = 2022;
const LAN_GREETING: &str = "hello from the lan host";

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
    format!("a{letter}{}", std::process::id() % 100_000)
}

/// `postern spa ARGS...` in the client namespace; must succeed.
fn spa(lab: &Lab, args: &[&str]) {
    let mut all = vec![EXE, "spa"];
    all.extend_from_slice(args);
    let out = lab.run_in_client(&all).expect("run postern spa");
    assert!(
        out.status.success(),
        "postern spa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real fwknop client in the client namespace (HOME in the lab dir).
fn fwknop(lab: &Lab, args: &[&str]) {
    let home = format!("HOME={}", lab.dir().display());
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
    ];
    all.extend_from_slice(args);
    let out = lab.run_in_client(&all).expect("run fwknop");
    assert!(
        out.status.success(),
        "fwknop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (at most `limit`) until `path` exists.
fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}

fn state(lab: &Lab) -> String {
    lab.dir().join("state").display().to_string()
}

#[test]
fn spa_command_runs_exactly_the_configured_program() {
    if !ready_or_skip("spa_command_runs_exactly_the_configured_program") {
        return;
    }
    let mut lab = Lab::new(&tag('c')).unwrap();
    let dir = lab.dir().to_path_buf();
    // One argument; a shell would run `touch postern-pwned` in the command's
    // working directory, `/`.
    let literal = format!("{}/ran; touch postern-pwned $(id)", dir.display());
    let config = format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'debug'\n\toption state_dir '{state}'\n\n\
         config command 'mark'\n\tlist exec '/usr/bin/touch'\n\tlist exec '{literal}'\n\toption fwknop_match 'mark it'\n\n\
         config command 'other'\n\tlist exec '/usr/bin/touch'\n\tlist exec '{dir}/other'\n\n\
         config command 'slow'\n\tlist exec '/bin/sleep'\n\tlist exec '30'\n\toption timeout '2'\n\n\
         config client 'phone'\n\toption key '{KEY1}'\n\toption fwknop_key '{FKEY}'\n\toption fwknop_hmac_key '{FHMAC}'\n\
         \tlist command 'mark'\n\tlist command 'slow'\n",
        state = state(&lab),
        dir = dir.display()
    );
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let ran = PathBuf::from(&literal);
    let pwned = Path::new("/postern-pwned");

    spa(&lab, &["10.213.0.1", "--command", "mark", "--key", KEY1]);
    assert!(
        wait_for_file(&ran, Duration::from_secs(5)),
        "the configured program ran with its argument as one literal file name: {:#?}",
        lab.daemon(0).log()
    );
    lab.daemons_wait("running command mark (pid ");
    assert!(!pwned.exists(), "no shell interpreted the argument");

    // A configured command the client may not run: refused, nothing runs.
    spa(&lab, &["10.213.0.1", "--command", "other", "--key", KEY1]);
    lab.daemons_wait("(command_not_allowed)");
    // fwknop text with shell metacharacters that matches no fwknop_match.
    fwknop(&lab, &["-s", "-C", "mark it; touch /tmp/postern-pwned"]);
    let refusals = |lab: &mut Lab| {
        lab.daemon(0)
            .log()
            .iter()
            .filter(|l| l.contains("(command_not_allowed)"))
            .count()
    };
    let end = Instant::now() + Duration::from_secs(5);
    while refusals(&mut lab) < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(refusals(&mut lab), 2, "{:#?}", lab.daemon(0).log());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !dir.join("other").exists(),
        "a command not in the client's list ran"
    );
    assert!(!Path::new("/tmp/postern-pwned").exists());

    // The exact fwknop_match text runs the command (again).
    std::fs::remove_file(&ran).unwrap();
    fwknop(&lab, &["-s", "-C", "mark it"]);
    assert!(
        wait_for_file(&ran, Duration::from_secs(5)),
        "fwknop -C ran it"
    );
    assert!(!pwned.exists());

    // A long command shows in the status and is stopped at its timeout.
    spa(&lab, &["10.213.0.1", "--command", "slow", "--key", KEY1]);
    lab.daemons_wait("running command slow (pid ");
    let status = lab.status(Path::new(EXE), 0, true).unwrap();
    assert!(
        status.contains(
            "\"commands\":[{\"name\":\"slow\",\"client\":\"phone\",\"source\":\"10.213.0.2\""
        ),
        "{status}"
    );
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let s = lab.status(Path::new(EXE), 0, true).unwrap();
        if s.contains("\"commands\":[]") {
            break;
        }
        assert!(
            Instant::now() < end,
            "slow was not stopped at its timeout: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A lab with the LAN host and its service, and the daemon with one forward.
fn forward_lab(letter: char) -> Lab {
    let mut lab = Lab::new(&tag(letter)).unwrap();
    let lan = lab.add_lan_host().unwrap();
    lab.serve_tcp_in(&lan, LAN_PORT, LAN_GREETING).unwrap();
    let config = format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'debug'\n\toption state_dir '{state}'\n\n\
         config forward 'nas'\n\toption proto 'tcp'\n\toption port '{EXT_PORT}'\n\toption to '{LAN_V4}'\n\
         \toption to6 '{LAN_V6}'\n\toption to_port '{LAN_PORT}'\n\n\
         config client 'phone'\n\toption key '{KEY1}'\n\toption fwknop_key '{FKEY}'\n\toption fwknop_hmac_key '{FHMAC}'\n\
         \tlist forward 'nas'\n\n\
         config client 'guest'\n\toption key '{KEY2}'\n\tlist allow 'tcp:2222'\n",
        state = state(&lab)
    );
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    lab
}

fn reach(lab: &Lab, addr: IpAddr, port: u16) -> Option<String> {
    lab.connect(addr, port, PROBE).expect("connect")
}

#[test]
fn spa_forward_reaches_the_lan_host_until_it_expires() {
    if !ready_or_skip("spa_forward_reaches_the_lan_host_until_it_expires") {
        return;
    }
    let lab = forward_lab('f');
    let wan = IpAddr::V4(ROUTER_V4);
    let lan6 = IpAddr::V6(LAN_V6);
    assert_eq!(reach(&lab, wan, EXT_PORT), None, "closed before any grant");
    assert_eq!(
        reach(&lab, lan6, LAN_PORT),
        None,
        "IPv6 guarded before any grant"
    );

    // A client without the forward in its list gets nothing.
    spa(
        &lab,
        &[
            "10.213.0.1",
            "--forward",
            "nas",
            "--duration",
            "3",
            "--key",
            KEY2,
        ],
    );
    lab.daemons_wait("(forward_not_allowed)");
    assert_eq!(reach(&lab, wan, EXT_PORT), None);

    spa(
        &lab,
        &[
            "10.213.0.1",
            "--forward",
            "nas",
            "--duration",
            "3",
            "--key",
            KEY1,
        ],
    );
    lab.daemons_wait(&format!(
        "opened forward nas (tcp:{EXT_PORT} -> {LAN_V4}:{LAN_PORT}) for 10.213.0.2 for 3 s (spa client phone"
    ));
    let opened = Instant::now();
    assert_eq!(
        reach(&lab, wan, EXT_PORT).as_deref(),
        Some(LAN_GREETING),
        "the router's port reaches the LAN host"
    );
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("live forwards: 1"), "{status}");
    assert!(
        status.contains(&format!("tcp:{EXT_PORT} -> {LAN_V4}:{LAN_PORT}")),
        "{status}"
    );
    assert_eq!(
        reach(&lab, lan6, LAN_PORT),
        None,
        "the IPv4 grant opens no IPv6 path"
    );

    // After the kernel timeout new connections fail again.
    let left = Duration::from_millis(3500).saturating_sub(opened.elapsed());
    std::thread::sleep(left);
    assert_eq!(
        reach(&lab, wan, EXT_PORT),
        None,
        "closed once the grant expired"
    );

    // IPv6: no NAT, the LAN host's own address opens for the IPv6 source.
    spa(
        &lab,
        &[
            "fd00:213::1",
            "--forward",
            "nas",
            "--duration",
            "3",
            "--key",
            KEY1,
        ],
    );
    lab.daemons_wait(&format!(
        "opened forward nas (tcp:{LAN_PORT} -> [{LAN_V6}]:{LAN_PORT}) for fd00:213::2 for 3 s"
    ));
    assert_eq!(reach(&lab, lan6, LAN_PORT).as_deref(), Some(LAN_GREETING));
    let _ = ROUTER_V6;
}

#[test]
fn fwknop_nat_request_opens_the_configured_forward() {
    if !ready_or_skip("fwknop_nat_request_opens_the_configured_forward") {
        return;
    }
    let lab = forward_lab('n');
    let wan = IpAddr::V4(ROUTER_V4);
    // A LAN host:port no forward has: refused, nothing opened.
    fwknop(
        &lab,
        &[
            "-A",
            &format!("tcp/{EXT_PORT}"),
            "-N",
            &format!("{LAN_V4}:{}", LAN_PORT + 1),
            "-s",
        ],
    );
    lab.daemons_wait("(forward_not_allowed)");
    assert_eq!(reach(&lab, wan, EXT_PORT), None);

    fwknop(
        &lab,
        &[
            "-A",
            &format!("tcp/{EXT_PORT}"),
            "-N",
            &format!("{LAN_V4}:{LAN_PORT}"),
            "-s",
            "-f",
            "20",
        ],
    );
    lab.daemons_wait(&format!(
        "opened forward nas (tcp:{EXT_PORT} -> {LAN_V4}:{LAN_PORT}) for 10.213.0.2 for 20 s (spa client phone"
    ));
    assert_eq!(reach(&lab, wan, EXT_PORT).as_deref(), Some(LAN_GREETING));
}

#[test]
fn a_live_forward_survives_a_firewall_restart() {
    if !ready_or_skip("a_live_forward_survives_a_firewall_restart") {
        return;
    }
    let lab = forward_lab('r');
    let wan = IpAddr::V4(ROUTER_V4);
    spa(
        &lab,
        &[
            "10.213.0.1",
            "--forward",
            "nas",
            "--duration",
            "60",
            "--key",
            KEY1,
        ],
    );
    lab.daemons_wait("opened forward nas");
    assert_eq!(reach(&lab, wan, EXT_PORT).as_deref(), Some(LAN_GREETING));
    // What `fw4 restart` or `nft flush ruleset` does to the kernel's state.
    lab.sh_in_router("nft flush ruleset").unwrap();
    lab.daemons_wait("re-applied 1 live forward(s)");
    assert_eq!(
        reach(&lab, wan, EXT_PORT).as_deref(),
        Some(LAN_GREETING),
        "the forward was re-applied with its remaining time"
    );
    let ruleset = lab.router_ruleset();
    assert!(ruleset.contains("map fwd4"), "{ruleset}");
}
