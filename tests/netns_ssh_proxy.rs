//! `postern ssh-proxy` with real OpenSSH: Debian's `sshd` in the router
//! namespace on a port postern guards, Debian's `ssh` in the client
//! namespace with `ProxyCommand postern ssh-proxy … %h %p`.
//!
//! - without postern, ssh gets nowhere (the guard refuses it);
//! - with a wrong key the proxy gives up after `--wait` with a clear message;
//! - with the key, ssh logs in with a public key and runs a command, over
//!   IPv4 and IPv6, to a name whose addresses are tried in order, and once
//!   with `ProxyUseFdpass yes` (the proxy hands the socket over and exits).
//!
//! Root only (and `sshd`, `ssh`). Without them each test prints SKIPPED
//! loudly and passes — except under `CI=true`, where they must run.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use postern::demo::{Lab, ROUTER_V4};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const WRONG_KEY: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
const SSH_PORT: u16 = 2222;
const SSHD: &str = "/usr/sbin/sshd";
const GREETING: &str = "hello-through-postern";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when the test may run; prints SKIPPED (or fails under CI) otherwise.
fn ready_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let ssh = Command::new("ssh").arg("-V").output().is_ok() && Path::new(SSHD).exists();
    if root && ssh {
        return true;
    }
    let why = if root {
        "needs OpenSSH (apt-get install openssh-server openssh-client)"
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
    format!("x{letter}{}", std::process::id() % 100_000)
}

/// sshd in the router namespace (killed, by its pid, on drop), and the
/// `/etc/netns/CLIENT` directory of the test's host names (removed on drop).
struct Sshd {
    child: Child,
    netns_etc: Option<PathBuf>,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.netns_etc {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Keys, config and a running sshd on `SSH_PORT` of both router addresses.
fn start_sshd(lab: &Lab) -> Sshd {
    let dir = lab.dir();
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let host_key = dir.join("host_key");
    let user_key = dir.join("id");
    for k in [&host_key, &user_key] {
        run(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &k.display().to_string(),
        ]);
    }
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {SSH_PORT}\nListenAddress 10.213.0.1\nListenAddress fd00:213::1\n\
             HostKey {host}\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel VERBOSE\n",
            host = host_key.display(),
            d = dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.router_ns, SSHD, "-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let sshd = Sshd {
        child,
        netns_etc: None,
    };
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
        if text.matches("Server listening on").count() >= 2 {
            break;
        }
        assert!(Instant::now() < end, "sshd did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

/// `ssh … root@HOST echo GREETING` in the client namespace through
/// `proxy` (a ProxyCommand, or none), with `extra` ssh options.
fn ssh(lab: &Lab, host: &str, proxy: Option<&str>, extra: &[&str]) -> Output {
    let key = lab.dir().join("id").display().to_string();
    let port = SSH_PORT.to_string();
    let proxy_opt = proxy.map(|p| format!("ProxyCommand={p}"));
    let mut args = vec![
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        &key,
        "-p",
        &port,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=4",
    ];
    if let Some(p) = &proxy_opt {
        args.extend_from_slice(&["-o", p]);
    }
    args.extend_from_slice(extra);
    let target = format!("root@{host}");
    args.extend_from_slice(&[&target, "echo", GREETING]);
    lab.run_in_client(&args).expect("run ssh")
}

fn logged_in(out: &Output) -> bool {
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == GREETING
}

fn postern_config(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{SSH_PORT}'\n",
        lab.dir().join("state").display()
    )
}

fn port_open(lab: &Lab) -> bool {
    lab.connect(IpAddr::V4(ROUTER_V4), SSH_PORT, Duration::from_millis(400))
        .expect("connect")
        .is_some()
}

#[test]
fn ssh_logs_in_through_postern_ssh_proxy() {
    if !ready_or_skip("ssh_logs_in_through_postern_ssh_proxy") {
        return;
    }
    let mut lab = Lab::new(&tag('s')).unwrap();
    let mut sshd = start_sshd(&lab);
    let cfg = postern_config(&lab);
    lab.start_daemon(Path::new(EXE), &cfg, None).unwrap();

    // Without postern: the guard refuses the connection.
    let out = ssh(&lab, "10.213.0.1", None, &[]);
    assert!(!logged_in(&out), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Connection refused") || err.contains("timed out"),
        "{err}"
    );

    // A wrong key: no grant; the proxy gives up after --wait, saying why.
    let proxy = format!("{EXE} ssh-proxy --key {WRONG_KEY} --wait 2 %h %p");
    let out = ssh(&lab, "10.213.0.1", Some(&proxy), &[]);
    assert!(!logged_in(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ssh-proxy: no connection to 10.213.0.1 port 2222 within 2 s after the SPA request (open tcp:2222 for 30 s)"),
        "{err}"
    );

    // The key: logs in and runs the command (IPv4), a short grant.
    let proxy = format!("{EXE} ssh-proxy --key {KEY} --duration 2 --verbose %h %p");
    let out = ssh(&lab, "10.213.0.1", Some(&proxy), &[]);
    assert!(logged_in(&out), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connected to 10.213.0.1:2222"), "{err}");
    assert!(
        !err.contains("passing the connected socket"),
        "relayed: {err}"
    );

    // IPv6.
    let out = ssh(&lab, "fd00:213::1", Some(&proxy), &[]);
    assert!(logged_in(&out), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connected to [fd00:213::1]:2222"), "{err}");

    // ProxyUseFdpass yes, after the grants expired: a new request, and
    // the socket handed to ssh.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!port_open(&lab), "the 2 s grant expired");
    let out = ssh(
        &lab,
        "10.213.0.1",
        Some(&proxy),
        &["-o", "ProxyUseFdpass=yes"],
    );
    assert!(logged_in(&out), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("passing the connected socket to ssh"), "{err}");

    // A name with both addresses (this namespace's /etc/hosts via ip netns
    // exec): tried in the resolver's order, and it gets in.
    let etc = PathBuf::from("/etc/netns").join(&lab.client_ns);
    std::fs::create_dir_all(&etc).unwrap();
    sshd.netns_etc = Some(etc.clone());
    std::fs::write(
        etc.join("hosts"),
        "127.0.0.1 localhost\nfd00:213::1 router.test\n10.213.0.1 router.test\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let out = ssh(&lab, "router.test", Some(&proxy), &[]);
    assert!(logged_in(&out), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let sent: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("sent SPA request"))
        .collect();
    assert_eq!(sent.len(), 2, "one request per router address: {err}");
    eprintln!("{err}");
}
