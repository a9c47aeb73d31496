//! The command line as a user meets it: exit codes and messages.

use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_postern");

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

fn temp_file(name: &str, body: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("postern-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, body).unwrap();
    p
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
