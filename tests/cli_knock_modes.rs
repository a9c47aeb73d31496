//! `postern check` and `postern knock` for the knock modes that carry
//! information, as a user meets them (no root needed: loopback only).

use std::process::{Command, Output};

use postern::knock::hmac::HmacKey;
use postern::knock::totp::{self, TotpShape};
use postern::port::L4Proto;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Runs postern; under qemu-user (cross tests) through the same emulator,
/// since nothing registers the foreign binary with binfmt_misc.
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
    let p = std::env::temp_dir().join(format!("postern-clik-{}-{name}", std::process::id()));
    std::fs::write(&p, body).unwrap();
    p
}

const ENCODED: &str = "config encoded 'enc'\n\toption knock_base '45000'\n\tlist header 2\n\toption port_digits 4\n\tlist allow 'tcp:143'\n";

#[test]
fn check_describes_every_mode() {
    let p = temp_file(
        "modes",
        &format!(
            "config sequence 'otp'\n\toption key '{KEY}'\n\toption knock_base '20000'\n\tlist open 'tcp:22'\n\
             {ENCODED}\
             config client 'laptop'\n\toption key 'CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg='\n\tlist allow 'tcp:2222'\n\toption knock_base '50000'\n"
        ),
    );
    let out = postern(&["check", "-c", p.to_str().unwrap()]);
    std::fs::remove_file(&p).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains(
            "totp sequence otp [enabled]: 6 knocks in tcp:20000+12288 (64.4 bits), new every 30s, opens tcp:22"
        ),
        "{s}"
    );
    assert!(
        s.contains("encoded enc [enabled]: 6 knocks on ports 45000-45019, may open tcp:143"),
        "{s}"
    );
    assert!(
        s.contains("client laptop knocks: 12 authenticated knocks on tcp:50000-50511"),
        "{s}"
    );
    assert!(
        s.contains("guarded ports: tcp:22, tcp:143, tcp:2222"),
        "{s}"
    );
    assert!(
        s.contains("knock volume: at most 240 knocks per 60s from one source network (IPv4 address, IPv6 /64), right or wrong; more are ignored"),
        "{s}"
    );
}

#[test]
fn check_refuses_a_weak_totp_sequence_with_its_strength() {
    let p = temp_file(
        "weak",
        &format!(
            "config sequence 'otp'\n\toption key '{KEY}'\n\toption knock_base '40000'\n\toption knock_range '1024'\n\toption length '4'\n\tlist open 'tcp:22'\n"
        ),
    );
    let out = postern(&["check", "-c", p.to_str().unwrap()]);
    std::fs::remove_file(&p).unwrap();
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains(":4: sequence 'otp': a guessed sequence succeeds once in 2^30.4 tries")
            && e.contains("= 30.4 bits); at least 48 bits are needed"),
        "{e}"
    );
}

#[test]
fn totp_print_is_the_current_sequence_in_knock_syntax() {
    let shape = TotpShape {
        proto: L4Proto::Tcp,
        base: 40000,
        // The router's defaults: the client's must be the same.
        range: 12288,
        length: 6,
        period: 30,
    };
    let key = HmacKey::new(postern::spa::Key::from_base64(KEY).unwrap().as_bytes());
    let expect = |unix: u64| {
        let q = totp::sequence(&key, &shape, unix / 30);
        q.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let before = expect(postern::time::unix_now());
    let out = postern(&[
        "knock", "--totp", "--print", "--key", KEY, "--base", "40000",
    ]);
    let after = expect(postern::time::unix_now());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout).trim().to_string();
    assert!(
        line == before || line == after,
        "{line} vs {before} / {after}"
    );
}

#[test]
fn mode_errors_exit_2_with_the_reason() {
    for (args, want) in [
        (&["knock", "--totp", "--key", KEY][..], "--base"),
        (&["knock", "h", "--encode", "tcp/143"][..], "--profile"),
        (&["knock", "h", "--auth", "--base", "50000"][..], "-A"),
        (
            &["knock", "h", "--totp", "--auth", "--base", "1"][..],
            "exactly one of",
        ),
        (
            &["knock", "h", "--auth", "-A", "tcp/22", "--base", "50000"][..],
            "give a key",
        ),
    ] {
        let out = postern(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn encode_reads_the_profile_and_knocks_loopback() {
    let p = temp_file("enc", ENCODED);
    let conf = p.to_str().unwrap();
    let out = postern(&[
        "knock",
        "127.0.0.1",
        "--encode",
        "tcp/143",
        "--profile",
        "enc",
        "-c",
        conf,
        "--delay",
        "0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sent 6 knocks to 127.0.0.1: encoded request for tcp:143"));
    let out = postern(&[
        "knock",
        "127.0.0.1",
        "--encode",
        "tcp/143",
        "--profile",
        "nope",
        "-c",
        conf,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no config encoded 'nope'"));
    let out = postern(&[
        "knock",
        "--print",
        "--encode",
        "tcp/99999",
        "--profile",
        "enc",
        "-c",
        conf,
    ]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn help_states_the_routers_totp_defaults() {
    let out = postern(&["--help"]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let want = format!(
        "--range {} --length {} --period {}",
        totp::DEFAULT_RANGE,
        totp::DEFAULT_LENGTH,
        totp::DEFAULT_PERIOD
    );
    assert!(all.contains(&want), "{all}");
}
