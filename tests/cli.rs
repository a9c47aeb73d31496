//! The command line as a user meets it: exit codes and messages.

use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Runs postern. Under qemu-user (cross tests: the cargo runner sets
/// `POSTERN_QEMU_USER` to the emulator) the foreign binary goes through the
/// same emulator, since nothing registers it with binfmt_misc.
fn postern(args: &[&str]) -> Output {
    let mut cmd = match std::env::var_os("POSTERN_QEMU_USER") {
        Some(qemu) => {
            let mut c = Command::new(qemu);
            c.arg(EXE);
            c
        }
        None => Command::new(EXE),
    };
    cmd.args(args).output().expect("run postern")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A file in the temp dir, removed when dropped (also when the test fails).
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl std::ops::Deref for TempFile {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempFile {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

fn temp_file(name: &str, body: &str) -> TempFile {
    let p = std::env::temp_dir().join(format!("postern-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, body).unwrap();
    TempFile(p)
}

#[test]
fn check_accepts_a_good_file_with_a_summary() {
    let p = temp_file(
        "good",
        "config postern 'main'\n\toption backend 'nft'\n\nconfig sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist open 'tcp:22'\n",
    );
    let out = postern(&["check", "-c", p.to_str().unwrap()]);
    std::fs::remove_file(&p).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(stdout.contains("guarded ports: tcp:22"), "{stdout}");
}

#[test]
fn check_lists_every_error_with_file_and_line() {
    let p = temp_file(
        "bad",
        "config sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'tcp:7000'\n\tlist open 'tcp:99999'\n\toption colour 'red'\n",
    );
    let path = p.to_str().unwrap().to_string();
    let out = postern(&["check", "-c", &path]);
    std::fs::remove_file(&p).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for line in [3, 4, 5] {
        assert!(
            stderr.contains(&format!("{path}:{line}:")),
            "line {line} in: {stderr}"
        );
    }
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn check_reports_a_missing_file() {
    let out = postern(&["check", "-c", "/nonexistent/postern.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/postern.conf: cannot read"));
}

#[test]
fn daemon_refuses_a_bad_config_before_touching_anything() {
    let p = temp_file("daemon-bad", "config sequence\n\tlist knock 'tcp:1'\n");
    let out = postern(&[
        "daemon",
        "-c",
        p.to_str().unwrap(),
        "-i",
        "lo",
        "--backend",
        "dry-run",
    ]);
    std::fs::remove_file(&p).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(":1:") || stderr.contains(":2:"), "{stderr}");
    assert!(stderr.contains("not starting"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    for args in [
        &["frobnicate"][..],
        &["knock"][..],
        &["knock", "127.0.0.1"][..],
        &["knock", "127.0.0.1", "tcp:0"][..],
        &["knock", "--delay", "soon", "127.0.0.1", "tcp:1"][..],
        &["daemon", "--backend", "iptables"][..],
        &["daemon", "-c"][..],
        &["spa"][..],
        &["spa", "127.0.0.1", "-A", "tcp/22"][..],
        &["spa", "127.0.0.1", "--key", "c2VjcmV0"][..],
        &["spa", "127.0.0.1", "-A", "tcp/0", "--key", KEY][..],
        &["spa", "127.0.0.1", "-A", "tcp/22", "--key", "not base64!"][..],
        &[
            "spa",
            "127.0.0.1",
            "-A",
            "tcp/22",
            "--key",
            KEY,
            "-a",
            "nowhere",
        ][..],
        &["spa", "--stanza", "x", "-c", "/nonexistent/client.conf"][..],
        &["keygen", "bad-name"][..],
    ] {
        let out = postern(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("postern help"), "{args:?}");
    }
    assert_eq!(postern(&[]).status.code(), Some(2));
}

#[test]
fn help_and_version() {
    let out = postern(&["help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("postern knock"));
    assert!(text(&out.stdout).contains("postern spa"));
    assert!(text(&out.stdout).contains("postern keygen"));
    let out = postern(&["version"]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("postern {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn knock_sends_to_loopback() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let out = postern(&[
        "knock",
        "--delay",
        "1",
        "127.0.0.1",
        &format!("udp:{port}"),
        &format!("udp:{port}"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut buf = [0u8; 4];
    sock.recv_from(&mut buf).unwrap();
    sock.recv_from(&mut buf).unwrap();
}

/// Receives one datagram on `sock` and checks that a router configured with
/// `client_section` accepts it (returns the granted ports as text).
fn router_accepts(sock: &std::net::UdpSocket, client_section: &str) -> String {
    let mut buf = [0u8; 600];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    let cfg = postern::config::parse_str("router", client_section).unwrap();
    let mut v = postern::spa::Verifier::new(&cfg);
    let now = postern::time::Now {
        mono: postern::time::Millis(0),
        unix: postern::time::unix_now(),
    };
    let a = v.verify(now, from.ip(), &buf[..n]).unwrap();
    format!("{} {:?} {:?} {}", a.client, a.kind, a.ports, a.addr)
}

fn udp_sink() -> (std::net::UdpSocket, String) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let port = sock.local_addr().unwrap().port().to_string();
    (sock, port)
}

#[test]
fn spa_sends_a_packet_the_router_accepts() {
    let (sock, port) = udp_sink();
    let out = postern(&[
        "spa",
        "127.0.0.1",
        "-p",
        &port,
        "-A",
        "tcp/22,udp/53",
        "--key",
        KEY,
        "-a",
        "192.0.2.5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("open tcp:22 udp:53 for 192.0.2.5 for 30 s"));
    let router = format!(
        "config client 'me'\n\toption key '{KEY}'\n\tlist allow tcp:22\n\tlist allow udp:53\n\
         \toption allow_other_address 1\n"
    );
    assert_eq!(
        router_accepts(&sock, &router),
        "me Open [PortSpec { proto: Tcp, port: 22 }, PortSpec { proto: Udp, port: 53 }] 192.0.2.5"
    );
}

#[test]
fn spa_stanza_from_the_client_config() {
    let (sock, port) = udp_sink();
    let key_file = temp_file("stanza.key", &format!("{KEY}\n"));
    let conf = temp_file(
        "client.conf",
        &format!(
            "config stanza 'home'\n\toption host '127.0.0.1'\n\toption key_file '{}'\n\tlist access 'tcp/2222'\n\toption port '{port}'\n",
            key_file.display()
        ),
    );
    let out = postern(&[
        "spa",
        "--stanza",
        "home",
        "-c",
        conf.to_str().unwrap(),
        "--close",
    ]);
    let missing = postern(&["spa", "--stanza", "away", "-c", conf.to_str().unwrap()]);
    std::fs::remove_file(&conf).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let router = format!("config client 'home'\n\toption key '{KEY}'\n\tlist allow tcp:2222\n");
    assert_eq!(
        router_accepts(&sock, &router),
        "home Close [PortSpec { proto: Tcp, port: 2222 }] 127.0.0.1"
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no stanza 'away' (stanzas: home)"));
}

#[test]
fn keygen_prints_paste_ready_snippets() {
    let out = postern(&["keygen", "phone"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let key = stdout.lines().next().unwrap();
    assert_eq!(
        postern::spa::Key::from_base64(key)
            .unwrap()
            .as_bytes()
            .len(),
        32
    );
    let again = text(&postern(&["keygen"]).stdout);
    assert_ne!(again.lines().next().unwrap(), key, "a new key each time");
    // The router snippet is a valid config on its own.
    let router: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("config client"))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = postern::config::parse_str("router", &router).unwrap();
    assert_eq!(cfg.clients[0].name, "phone");
    assert_eq!(cfg.clients[0].key.as_ref().unwrap().to_base64(), key);
    // So is the client stanza.
    let stanza: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("config stanza"))
        .map(|l| format!("{l}\n"))
        .collect();
    let sections = postern::config::uci::parse("client", &stanza).unwrap();
    let s = postern::client::conf::from_sections("client", &sections, None).unwrap();
    assert_eq!(s[0].name, "phone");
    assert_eq!(s[0].key.to_base64(), key);
}

#[test]
fn keygen_require_address_binds_both_snippets() {
    let out = postern(&["keygen", "--require-address", "phone"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let router: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("config client"))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = postern::config::parse_str("router", &router).unwrap();
    assert!(cfg.clients[0].require_address);
    let stanza: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("config stanza"))
        .map(|l| format!("{l}\n"))
        .collect();
    let sections = postern::config::uci::parse("client", &stanza).unwrap();
    let s = postern::client::conf::from_sections("client", &sections, None).unwrap();
    assert_eq!(s[0].resolve.as_deref(), Some("stun:STUN_SERVER"));
    let plain = text(&postern(&["keygen", "phone"]).stdout);
    assert!(!plain.contains("require_address") && !plain.contains("resolve"));
}

#[test]
fn import_prints_configs_that_check_accepts_and_warns_on_stderr() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/import/testdata/");
    for (args, warning, name) in [
        (
            vec!["import", "fwknopd", "access.conf", "fwknopd.conf"],
            "access.conf:9: REQUIRE_USERNAME has no postern equivalent",
            "fwknopd",
        ),
        (
            vec!["import", "fwknopd", "openwrt-fwknopd"],
            "PCAP_INTF: the UCI network is used",
            "openwrt",
        ),
        (
            vec!["import", "knockd", "knockd.conf"],
            "[script] left out",
            "knockd",
        ),
    ] {
        let paths: Vec<String> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if i < 2 {
                    a.to_string()
                } else {
                    format!("{dir}{a}")
                }
            })
            .collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let out = postern(&paths);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(warning), "{}", text(&out.stderr));
        assert!(
            !text(&out.stdout).contains("warning"),
            "warnings stay off stdout"
        );
        let file = temp_file(&format!("imported-{name}"), &text(&out.stdout));
        let check = postern(&["check", "-c", file.to_str().unwrap()]);
        assert!(
            check.status.success(),
            "{}\n{}",
            text(&check.stdout),
            text(&check.stderr)
        );
    }
    let bad = postern(&["import", "sshd", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("usage: postern import"));
}

#[test]
fn spa_command_and_forward_reach_the_verifier_by_name() {
    let router = format!(
        "config command 'wake_nas'\n\tlist exec '/bin/true'\n\
         config forward 'nas'\n\toption proto tcp\n\toption port 2222\n\toption to 10.0.0.5\n\
         config client 'me'\n\toption key '{KEY}'\n\tlist command wake_nas\n\tlist forward nas\n"
    );
    let (sock, port) = udp_sink();
    let out = postern(&[
        "spa",
        "127.0.0.1",
        "-p",
        &port,
        "--command",
        "wake_nas",
        "--key",
        KEY,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("run command wake_nas"));
    assert_eq!(router_accepts(&sock, &router), "me Command [] 127.0.0.1");
    let out = postern(&[
        "spa",
        "127.0.0.1",
        "-p",
        &port,
        "--forward",
        "nas",
        "--duration",
        "90",
        "--key",
        KEY,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("open forward nas for 90 s"));
    assert_eq!(router_accepts(&sock, &router), "me Forward [] 127.0.0.1");
    // Names that could not be a section, and a command for another address,
    // are refused before anything is sent.
    for args in [
        vec!["--command", "a;b"],
        vec!["--command", "wake_nas", "-a", "192.0.2.1"],
        vec!["--command", "wake_nas", "-A", "tcp/22"],
        vec!["--command", "x", "--forward", "y"],
    ] {
        let mut all = vec!["spa", "127.0.0.1", "-p", &port, "--key", KEY];
        all.extend(args.iter().copied());
        let out = postern(&all);
        assert!(!out.status.success(), "{args:?} was accepted");
    }
}

#[test]
fn check_looks_up_command_users() {
    let body = |user: &str| {
        format!(
            "config command 'x'\n\tlist exec '/bin/true'\n\toption user '{user}'\n\
             config client 'c'\n\toption key '{KEY}'\n\tlist command 'x'\n"
        )
    };
    let p = temp_file("users", &body("nosuchuser42"));
    let path = p.to_str().unwrap().to_string();
    let out = postern(&["check", "-c", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "{path}:1: command 'x': unknown user 'nosuchuser42'"
        )),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&p, body("root")).unwrap();
    let out = postern(&["check", "-c", &path]);
    std::fs::remove_file(&p).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("x [enabled]: runs [\"/bin/true\"] for up to 30s as root"));
}

#[test]
fn key_files_open_to_group_or_others_are_warned_about_but_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let (sock, port) = udp_sink();
    let key_file = temp_file("open.key", &format!("{KEY}\n"));
    let path = key_file.to_str().unwrap().to_string();
    let warning = format!(
        "warning: key file {path} is readable or writable by group or others (mode 0644): run 'chmod 600 {path}'"
    );
    let conf = temp_file(
        "keyfile-client.conf",
        &format!(
            "config stanza 'home'\n\toption host '127.0.0.1'\n\toption key_file '{path}'\n\tlist access 'tcp/22'\n\toption port '{port}'\n"
        ),
    );
    let spa = |args: &[&str]| {
        let mut all = vec!["spa"];
        all.extend_from_slice(args);
        postern(&all)
    };
    let knock = |key_file: &str| {
        postern(&[
            "knock",
            "--totp",
            "--print",
            "--key-file",
            key_file,
            "--base",
            "40000",
        ])
    };
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let by_flag = spa(&[
        "127.0.0.1",
        "-p",
        &port,
        "-A",
        "tcp/22",
        "--key-file",
        &path,
    ]);
    let by_stanza = spa(&["--stanza", "home", "-c", conf.to_str().unwrap()]);
    let knocked = knock(&path);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let private = spa(&[
        "127.0.0.1",
        "-p",
        &port,
        "-A",
        "tcp/22",
        "--key-file",
        &path,
    ]);
    let knocked_private = knock(&path);
    std::fs::remove_file(&conf).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    for out in [&by_flag, &by_stanza, &knocked] {
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&warning),
            "{}",
            text(&out.stderr)
        );
    }
    for out in [&private, &knocked_private] {
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("warning"),
            "{}",
            text(&out.stderr)
        );
    }
    // The packets went out all the same (the warning changes nothing).
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        sock.recv(&mut buf).expect("an SPA packet");
    }
}

#[test]
fn check_warns_about_short_fwknop_keys() {
    // An 8-byte passphrase as the fwknop key: accepted, but loudly.
    let p = temp_file(
        "weakfwknop",
        "config client 'phone'\n\tlist allow 'tcp:22'\n\toption fwknop_key 'cGFzc3cwcmQ='\n\
         \toption fwknop_hmac_key 'dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA=='\n",
    );
    let path = p.to_str().unwrap().to_string();
    let out = postern(&["check", "-c", &path]);
    std::fs::remove_file(&p).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: {path}: client 'phone': fwknop_key is only 8 byte(s) (fewer than 16)"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("fwknop_hmac_key is only"), "{stderr}");
}

/// Runs postern with stdout a pipe whose reader is already gone: the first
/// write fails with EPIPE (as for `postern keygen NAME | head -1` once head exits).
fn postern_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    let mut cmd = match std::env::var_os("POSTERN_QEMU_USER") {
        Some(qemu) => {
            let mut c = Command::new(qemu);
            c.arg(EXE);
            c
        }
        None => Command::new(EXE),
    };
    cmd.args(args)
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run postern")
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let good = temp_file(
        "epipe",
        "config sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist open 'tcp:22'\n",
    );
    let good = good.to_str().unwrap().to_string();
    for args in [
        &["keygen", "laptop"][..],
        &["keygen"],
        &["help"],
        &["version"],
        &["schema"],
        &["schema", "--json"],
        &["check", "-c", &good],
        &["fw3-forwards", "-c", &good],
    ] {
        let out = postern_into_closed_pipe(args);
        let stderr = text(&out.stderr);
        // Quiet: no panic, no message; ended by SIGPIPE as `yes | head` is,
        // or with success. Never the broken-pipe panic (101, or 134 with
        // panic=abort).
        assert!(stderr.is_empty(), "postern {args:?}: {stderr}");
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.success(),
            "postern {args:?}: {:?}",
            out.status
        );
    }
    std::fs::remove_file(&good).unwrap();
}
