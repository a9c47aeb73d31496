//! Open and close hooks end to end: the real daemon (started as root, so
//! hooks go through its privileged launcher) in a router namespace with
//! standalone nftables, `postern spa` and `postern knock` from the client.
//!
//! - an SPA client's `on_open` writes a file when its grant opens, and its
//!   `on_close` removes it when the grant expires, at the expiry ± 1 s (the
//!   daemon's own timer), exactly once, with the grant in the environment;
//! - `on_close` runs when a close request ends the grant, and when a reload
//!   removes the sequence that made it (whose grant is then revoked too).
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where they must run.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use postern::demo::{Lab, CLIENT_V4, DEMO_PORT, ROUTER_V4};
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const PROBE: Duration = Duration::from_millis(500);

/// A lab tag unique to this process and test.
fn tag(letter: char) -> String {
    format!("h{letter}{}", std::process::id() % 100_000)
}

/// `config command` sections: `up` writes the environment to DIR/granted,
/// `down` appends `EVENT REASON BY ADDRESS PORTS DURATION` to DIR/closes
/// and removes DIR/granted. (The admin chose a shell here; postern runs
/// none of its own.)
fn hook_commands(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "config command 'up'\n\tlist exec '/bin/sh'\n\tlist exec '-c'\n\
         \tlist exec '/usr/bin/env > {d}/granted.tmp && /bin/mv {d}/granted.tmp {d}/granted'\n\n\
         config command 'down'\n\tlist exec '/bin/sh'\n\tlist exec '-c'\n\
         \tlist exec 'echo \"$POSTERN_EVENT $POSTERN_REASON $POSTERN_GRANTED_BY $POSTERN_ADDRESS $POSTERN_PORTS $POSTERN_DURATION\" >> {d}/closes; /bin/rm -f {d}/granted'\n\n"
    )
}

fn main_section(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'debug'\n\toption state_dir '{}'\n\n",
        lab.dir().join("state").display()
    )
}

fn client(hooks: bool) -> String {
    let mut c =
        format!("config client 'phone'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n");
    if hooks {
        c.push_str("\toption on_open 'up'\n\toption on_close 'down'\n");
    }
    c.push('\n');
    c
}

/// `postern spa` from the client for the demo port; must succeed.
fn spa(lab: &Lab, extra: &[&str]) {
    let port = format!("tcp/{DEMO_PORT}");
    let mut args = vec![EXE, "spa", "10.213.0.1", "-A", &port, "--key", KEY];
    args.extend_from_slice(extra);
    let out = lab.run_in_client(&args).expect("run postern spa");
    assert!(
        out.status.success(),
        "postern spa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls (every 10 ms, at most `limit`) until `done` holds; returns when it did.
fn until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Instant> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done().then(Instant::now)
}

fn closes(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("closes"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn open(lab: &Lab) -> bool {
    lab.connect(IpAddr::V4(ROUTER_V4), DEMO_PORT, PROBE)
        .expect("connect")
        .is_some()
}

#[test]
fn hooks_run_on_open_and_once_at_expiry() {
    if !root_or_skip("hooks_run_on_open_and_once_at_expiry") {
        return;
    }
    let mut lab = Lab::new(&tag('e')).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    let dir = lab.dir().to_path_buf();
    let config = format!(
        "{}{}{}",
        main_section(&lab),
        hook_commands(&dir),
        client(true)
    );
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let granted = dir.join("granted");
    assert!(!open(&lab));

    let duration = 3;
    spa(&lab, &["--duration", &duration.to_string()]);
    let opened = until(Duration::from_secs(5), || granted.exists())
        .unwrap_or_else(|| panic!("on_open wrote no file: {:#?}", lab.daemon(0).log()));
    assert!(open(&lab), "the grant is live");
    let env = std::fs::read_to_string(&granted).unwrap();
    for var in [
        "POSTERN_EVENT=open".to_string(),
        "POSTERN_REASON=granted".to_string(),
        format!("POSTERN_ADDRESS={CLIENT_V4}"),
        format!("POSTERN_PORTS=tcp:{DEMO_PORT}"),
        "POSTERN_GRANTED_BY=phone".to_string(),
        format!("POSTERN_DURATION={duration}"),
        "POSTERN_COMMAND=up".to_string(),
    ] {
        assert!(env.lines().any(|l| l == var), "{var} in {env}");
    }
    lab.daemons_wait("running command up (pid ");

    let closed =
        until(Duration::from_secs(duration + 3), || !granted.exists()).unwrap_or_else(|| {
            panic!(
                "on_close did not remove the file: {:#?}",
                lab.daemon(0).log()
            )
        });
    let took = closed.duration_since(opened).as_secs_f64();
    eprintln!("on_close ran {took:.3} s after on_open (grant: {duration} s)");
    assert!(
        (took - duration as f64).abs() <= 1.0,
        "on_close at the expiry ± 1 s: {took:.3} s for a {duration} s grant"
    );
    assert!(!open(&lab), "the grant expired in the kernel");
    // Once: nothing more runs later.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        closes(&dir),
        [format!(
            "close expired phone {CLIENT_V4} tcp:{DEMO_PORT} {duration}"
        )]
    );
}

#[test]
fn on_close_runs_on_a_close_request_and_on_a_reload_that_removes_the_grant() {
    if !root_or_skip("on_close_runs_on_a_close_request_and_on_a_reload_that_removes_the_grant") {
        return;
    }
    let mut lab = Lab::new(&tag('c')).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    let dir = lab.dir().to_path_buf();
    let sequence = format!(
        "config sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\toption duration '600'\n\
         \toption on_open 'up'\n\toption on_close 'down'\n\n"
    );
    let config = format!(
        "{}{}{}{sequence}",
        main_section(&lab),
        hook_commands(&dir),
        client(true)
    );
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let granted = dir.join("granted");

    // A close request ends the client's grant: on_close runs at once.
    spa(&lab, &["--duration", "300"]);
    assert!(
        until(Duration::from_secs(5), || granted.exists()).is_some(),
        "{:#?}",
        lab.daemon(0).log()
    );
    spa(&lab, &["--close"]);
    assert!(
        until(Duration::from_secs(5), || !granted.exists()).is_some(),
        "on_close on --close: {:#?}",
        lab.daemon(0).log()
    );
    assert!(!open(&lab));
    assert_eq!(
        closes(&dir),
        [format!(
            "close closed phone {CLIENT_V4} tcp:{DEMO_PORT} 300"
        )]
    );

    // A knock sequence's grant; a reload without the sequence ends it.
    let out = lab
        .run_in_client(&[EXE, "knock", "10.213.0.1", "tcp:7000", "udp:8000"])
        .unwrap();
    assert!(out.status.success());
    assert!(
        until(Duration::from_secs(5), || granted.exists()).is_some(),
        "the sequence's on_open: {:#?}",
        lab.daemon(0).log()
    );
    assert!(open(&lab));
    let env = std::fs::read_to_string(&granted).unwrap();
    assert!(env.contains("POSTERN_GRANTED_BY=ssh\n"), "{env}");
    let without = format!(
        "{}{}{}",
        main_section(&lab),
        hook_commands(&dir),
        client(true)
    );
    std::fs::write(lab.config_path(0), without).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait("reloaded:");
    assert!(
        until(Duration::from_secs(5), || !granted.exists()).is_some(),
        "on_close on the reload: {:#?}",
        lab.daemon(0).log()
    );
    assert!(!open(&lab), "the removed sequence's grant was revoked");
    assert_eq!(
        closes(&dir)[1..],
        [format!("close removed ssh {CLIENT_V4} tcp:{DEMO_PORT} 600")]
    );
}

#[test]
fn a_reload_that_removes_a_client_revokes_its_live_grants() {
    if !root_or_skip("a_reload_that_removes_a_client_revokes_its_live_grants") {
        return;
    }
    // The attack: a client's key leaked; the admin deletes the client and
    // reloads. Its live grant (up to max_duration) must not outlive that.
    let mut lab = Lab::new(&tag('r')).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    // Another client keeps the port guarded after the reload.
    let other = format!(
        "config client 'other'\n\toption key 'CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg='\n\tlist allow 'tcp:{DEMO_PORT}'\n"
    );
    let config = format!("{}{}{other}", main_section(&lab), client(false));
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    spa(&lab, &["--duration", "300"]);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4} for 300 s"));
    assert!(open(&lab));
    std::fs::write(lab.config_path(0), format!("{}{other}", main_section(&lab))).unwrap();
    lab.daemon(0).signal(libc::SIGHUP);
    lab.daemons_wait("reloaded:");
    lab.daemons_wait(&format!(
        "closed tcp:{DEMO_PORT} for {CLIENT_V4}: phone was removed by the reload"
    ));
    assert!(!open(&lab), "the removed client's grant was revoked");
}
