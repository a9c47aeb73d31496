//! Privileges on a real kernel (network namespaces, the real daemon binary):
//! after opening its sockets the daemon keeps only CAP_NET_RAW and
//! CAP_NET_ADMIN (started as root with `option user 'root'`, it stays uid 0;
//! its commands, root or other users, run through the privileged launcher),
//! read back from `/proc/PID/status`; knock and SPA grants, bans, reloads,
//! the replay state file and `postern status` still work; it runs as
//! `nobody` given just the two capabilities (`setpriv`, no launcher); a
//! command that needs privileges such a daemon lacks is refused with the
//! reason. The switch to the daemon's own user: tests/netns_uid.rs.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use postern::demo::{Lab, ATTACKER_V4, CLIENT_V4, DEMO_PORT, ROUTER_V4, ROUTER_X_V4};
use postern::privileges::NETWORK;
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SEQUENCE: [&str; 3] = ["tcp:7000", "udp:8000", "tcp:9000"];
const NOBODY: u32 = 65_534;
/// `setpriv` as an init system would start it: user nobody, no groups, the
/// two capabilities inheritable and ambient (so they survive the exec).
const AS_NOBODY: [&str; 11] = [
    "setpriv",
    "--reuid",
    "nobody",
    "--regid",
    "nogroup",
    "--clear-groups",
    "--inh-caps",
    "+net_raw,+net_admin",
    "--ambient-caps",
    "+net_raw,+net_admin",
    "--",
];

fn lab(letter: char) -> Lab {
    let tag = format!("p{letter}{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// The demo sequence, an SPA client, bans after 3 failures, and `extra` sections.
fn config(lab: &Lab, duration: u64, client_extra: &str, extra: &str) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'debug'\n\toption state_dir '{}'\n\
         \toption ban_threshold '3'\n\toption ban_duration '60'\n\n\
         config sequence 'service'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist knock 'tcp:9000'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\toption duration '{duration}'\n\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n{client_extra}\n{extra}",
        lab.dir().join("state").display()
    )
}

/// One field of `/proc/PID/status` (e.g. `CapEff`), trimmed.
fn proc_status(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn caps(pid: u32, field: &str) -> u64 {
    u64::from_str_radix(&proc_status(pid, field), 16).unwrap()
}

/// The first number of `Uid:` (real uid).
fn uid(pid: u32) -> u32 {
    proc_status(pid, "Uid")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn run_in(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn knock_from(ns: &str, host: IpAddr, knocks: &[&str]) {
    let host = host.to_string();
    let mut args = vec![EXE, "knock", host.as_str()];
    args.extend_from_slice(knocks);
    run_in(ns, &args);
}

/// `postern spa` from the client: opens the demo port.
fn spa(lab: &Lab) {
    let port = format!("tcp/{DEMO_PORT}");
    run_in(
        &lab.client_ns,
        &[EXE, "spa", "10.213.0.1", "-A", &port, "--key", KEY],
    );
}

/// `postern spa --command NAME` from the client.
fn spa_command(lab: &Lab, name: &str) {
    run_in(
        &lab.client_ns,
        &[EXE, "spa", "10.213.0.1", "--command", name, "--key", KEY],
    );
}

/// A command that prints its own uid and effective capabilities.
const WHOAMI: &str = "\tlist exec '/bin/grep'\n\tlist exec '-E'\n\tlist exec '^(Uid|CapEff):'\n\tlist exec '/proc/self/status'\n";

/// The command's output lines as the daemon logged them (`command NAME: …`).
fn output_of(lab: &mut Lab, name: &str) -> String {
    let prefix = format!("command {name}: ");
    lab.daemons_wait(&format!("{prefix}CapEff"));
    lab.daemon(0)
        .log()
        .iter()
        .filter_map(|l| l.split_once(&prefix).map(|(_, r)| r.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `output` (of [`WHOAMI`]) shows uid `uid` and no capability.
fn assert_whoami(output: &str, uid: u32) {
    let uid_line = output.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.contains(&uid.to_string()) && !uid_line.contains(" 0"),
        "{output}"
    );
    let caps = output.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(caps.ends_with("0000000000000000"), "{output}");
}

fn count(lab: &mut Lab, what: &str) -> usize {
    lab.daemon(0)
        .log()
        .iter()
        .filter(|l| l.contains(what))
        .count()
}

/// Waits (at most 5 s) until the log holds `n` lines containing `what`.
fn wait_count(lab: &mut Lab, what: &str, n: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    while count(lab, what) < n {
        assert!(
            Instant::now() < end,
            "fewer than {n} lines with '{what}':\n{}",
            lab.daemon(0).log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open(lab: &Lab) -> bool {
    lab.connect(IpAddr::V4(ROUTER_V4), DEMO_PORT, PROBE)
        .unwrap()
        .is_some()
}

/// Knock, SPA, a ban and a reload all work (the daemon is index 0).
fn everything_still_works(lab: &mut Lab) {
    let opened = format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}");
    knock_from(&lab.client_ns, IpAddr::V4(ROUTER_V4), &SEQUENCE);
    wait_count(lab, &opened, 1);
    assert!(open(lab), "knock grant");
    // SPA: recorded in the replay state file before the grant.
    spa(lab);
    wait_count(lab, &opened, 2);
    let state = lab.dir().join("state").join("spa-replay");
    assert!(
        std::fs::metadata(&state).unwrap().len() > 0,
        "replay state written"
    );
    // Three junk SPA packets from the attacker: banned in the kernel.
    let x = lab.attacker_ns.clone().unwrap();
    postern::demo::in_netns(&x, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..3u8 {
            s.send_to(&[0xa5 ^ i; 120], (ROUTER_X_V4, 62201)).unwrap();
        }
    })
    .unwrap();
    lab.daemons_wait(&format!("banned {ATTACKER_V4} for 60 s"));
    let bans = lab
        .sh_in_router("nft list set inet postern ban4")
        .unwrap_or_default();
    assert!(bans.contains(&ATTACKER_V4.to_string()), "{bans}");
    // A reload with another duration is read and applied.
    let path = lab.config_path(0);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("option duration '30'", "option duration '40'");
    std::fs::write(&path, text).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait("reloaded:");
    knock_from(&lab.client_ns, IpAddr::V4(ROUTER_V4), &SEQUENCE);
    lab.daemons_wait(&format!("{opened} for 40 s"));
    // A firewall restart: the grant comes back (netlink with CAP_NET_ADMIN only).
    lab.sh_in_router("nft delete table inet postern").unwrap();
    lab.daemons_wait("firewall was reloaded: re-applied");
    assert!(open(lab), "grant re-applied after the firewall restart");
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    assert!(status.contains("banned sources: 1\n"), "{status}");
}

#[test]
fn root_daemon_keeps_only_net_raw_and_net_admin() {
    if !root_or_skip("root_daemon_keeps_only_net_raw_and_net_admin") {
        return;
    }
    let mut lab = lab('r');
    // Root by choice: the capability drop without the user switch
    // (tests/netns_uid.rs covers the switch).
    let cfg = config(&lab, 30, "", "").replace(
        "\toption backend 'nft'\n",
        "\toption backend 'nft'\n\toption user 'root'\n",
    );
    let pid = lab.start_daemon(Path::new(EXE), &cfg, None).unwrap().pid();
    assert_eq!(proc_status(pid, "Name"), "postern");
    let (eff, prm, inh, amb, bnd) = (
        caps(pid, "CapEff"),
        caps(pid, "CapPrm"),
        caps(pid, "CapInh"),
        caps(pid, "CapAmb"),
        caps(pid, "CapBnd"),
    );
    eprintln!(
        "root daemon: CapEff {eff:#x} CapPrm {prm:#x} CapInh {inh:#x} CapAmb {amb:#x} CapBnd {bnd:#x} NoNewPrivs {}",
        proc_status(pid, "NoNewPrivs")
    );
    assert_eq!((eff, prm, inh, amb, bnd), (NETWORK, NETWORK, 0, 0, NETWORK));
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(uid(pid), 0);
    lab.daemons_wait("privileges: kept only net_admin,net_raw (CapEff 0x3000)");

    everything_still_works(&mut lab);

    // A reload adds a command that runs as root: the privileged launcher
    // (forked before the drop) runs it, while the daemon stays dropped.
    let marker = lab.dir().join("rootly-ran");
    let added = config(
        &lab,
        40,
        "\tlist command 'rootly'\n",
        &format!(
            "config command 'rootly'\n\tlist exec '/usr/bin/touch'\n\tlist exec '{}'\n",
            marker.display()
        ),
    )
    .replace(
        "\toption backend 'nft'\n",
        "\toption backend 'nft'\n\toption user 'root'\n",
    );
    std::fs::write(lab.config_path(0), added).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    wait_count(&mut lab, "reloaded:", 2);
    spa_command(&lab, "rootly");
    lab.daemons_wait("command rootly for client laptop");
    assert!(marker.exists(), "the command ran");
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&marker).unwrap().uid(), 0);
    assert_eq!(caps(pid, "CapEff"), NETWORK, "still dropped after reloads");
}

#[test]
fn non_root_daemon_with_two_capabilities_works() {
    if !root_or_skip("non_root_daemon_with_two_capabilities_works") {
        return;
    }
    let mut lab = lab('n');
    // The daemon's files: the lab directory (config, state dir, control
    // socket) belongs to nobody, as procd's init script would arrange.
    std::os::unix::fs::chown(lab.dir(), Some(NOBODY), Some(NOBODY)).unwrap();
    let out_file = lab.dir().join("whoami");
    let cfg = config(
        &lab,
        30,
        "\tlist command 'whoami'\n\tlist command 'as_other'\n",
        &format!(
            "config command 'whoami'\n{WHOAMI}\n\
             config command 'as_other'\n\tlist exec '/usr/bin/touch'\n\tlist exec '{}'\n\toption user 'daemon'\n",
            out_file.display()
        ),
    );
    let pid = lab
        .start_daemon_wrapped(Path::new(EXE), &cfg, None, &AS_NOBODY)
        .unwrap()
        .pid();
    assert_eq!(proc_status(pid, "Name"), "postern");
    let (eff, prm, inh, amb, bnd) = (
        caps(pid, "CapEff"),
        caps(pid, "CapPrm"),
        caps(pid, "CapInh"),
        caps(pid, "CapAmb"),
        caps(pid, "CapBnd"),
    );
    eprintln!(
        "daemon as nobody: CapEff {eff:#x} CapPrm {prm:#x} CapInh {inh:#x} CapAmb {amb:#x} CapBnd {bnd:#x} NoNewPrivs {}",
        proc_status(pid, "NoNewPrivs")
    );
    assert_eq!(uid(pid), NOBODY);
    // Asked for SETUID/SETGID/KILL (a command has option user) but has not
    // got them: the two it was given; NET_ADMIN stays ambient for `nft`.
    let net_admin = postern::privileges::bit(postern::privileges::CAP_NET_ADMIN);
    assert_eq!(
        (eff, prm, inh, amb),
        (NETWORK, NETWORK, net_admin, net_admin)
    );
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");

    everything_still_works(&mut lab);
    // The control socket and the replay state belong to nobody.
    use std::os::unix::fs::MetadataExt as _;
    let sock = std::fs::metadata(lab.control_path(0)).unwrap();
    assert_eq!((sock.uid(), sock.mode() & 0o777), (NOBODY, 0o600));
    let state = std::fs::metadata(lab.dir().join("state").join("spa-replay")).unwrap();
    assert_eq!(state.uid(), NOBODY);

    // A command without a user runs as the daemon's user, without
    // capabilities (the ambient NET_ADMIN is not passed on).
    spa_command(&lab, "whoami");
    let output = output_of(&mut lab, "whoami");
    assert_whoami(&output, NOBODY);
    // One that should run as another user cannot: refused with the reason.
    spa_command(&lab, "as_other");
    lab.daemons_wait("command as_other not run for spa client laptop: it runs as user daemon, but postern kept no CAP_SETUID");
    assert!(!out_file.exists());
}

#[test]
fn commands_with_users_run_through_the_launcher() {
    if !root_or_skip("commands_with_users_run_through_the_launcher") {
        return;
    }
    let mut lab = lab('u');
    let cfg = config(
        &lab,
        30,
        "\tlist command 'whoami'\n\tlist command 'slow'\n",
        &format!(
            "config command 'whoami'\n{WHOAMI}\toption user 'nobody'\n\n\
             config command 'slow'\n\tlist exec '/bin/sleep'\n\tlist exec '30'\n\toption timeout '1'\n\toption user 'nobody'\n"
        ),
    );
    let pid = lab.start_daemon(Path::new(EXE), &cfg, None).unwrap().pid();
    let (eff, prm, bnd) = (
        caps(pid, "CapEff"),
        caps(pid, "CapPrm"),
        caps(pid, "CapBnd"),
    );
    eprintln!("root daemon with user commands: CapEff {eff:#x} CapPrm {prm:#x} CapBnd {bnd:#x}");
    // The launcher runs the commands: the daemon keeps the network only.
    assert_eq!((eff, prm, bnd), (NETWORK, NETWORK, NETWORK));
    assert_eq!(caps(pid, "CapInh"), 0);
    lab.daemons_wait("privileges: kept only net_admin,net_raw (CapEff 0x3000)");

    // The command runs as its user.
    spa_command(&lab, "whoami");
    let output = output_of(&mut lab, "whoami");
    assert_whoami(&output, NOBODY);
    // A command of another user is stopped at its timeout (by the launcher).
    spa_command(&lab, "slow");
    let line = lab.daemons_wait("running command slow (pid ");
    let child: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_eq!(uid(child), NOBODY);
    let end = Instant::now() + Duration::from_secs(6);
    while Path::new(&format!("/proc/{child}")).exists() {
        assert!(
            Instant::now() < end,
            "the timed-out command survived:\n{}",
            lab.daemon(0).log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.daemons_wait("ran past its 1 s timeout");
    let log = lab.daemon(0).log().join("\n");
    // killpg's error text comes from strerror (std::io::Error).
    assert!(!log.contains("Operation not permitted"), "{log}");
    // Grants work as before.
    knock_from(&lab.client_ns, IpAddr::V4(ROUTER_V4), &SEQUENCE);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert!(open(&lab));
}
