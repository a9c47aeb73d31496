//! Client conveniences of the real binary, on loopback (no root):
//! `postern spa --verbose` says where the packet went, how big it was and
//! what it asks — never the key; `postern knock --verbose` lists the knocks;
//! `postern status --watch` redraws the daemon's view every second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The binary as a command: under qemu-user (the cross runner sets
/// `POSTERN_QEMU_USER` to the emulator) it goes through the same emulator,
/// since nothing registers it with binfmt_misc.
fn postern() -> Command {
    match std::env::var_os("POSTERN_QEMU_USER") {
        Some(qemu) => {
            let mut c = Command::new(qemu);
            c.arg(EXE);
            c
        }
        None => Command::new(EXE),
    }
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = postern().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn spa_verbose_shows_destination_size_and_request_but_never_the_key() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = sock.local_addr().unwrap().port().to_string();
    let key_file = std::env::temp_dir().join(format!("postern-verbose-{}.key", std::process::id()));
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let kf = key_file.display().to_string();
    let (ok, out, err) = run(&[
        "spa",
        "localhost",
        "-p",
        &port,
        "--key-file",
        &kf,
        "-A",
        "tcp/22,udp/53",
        "--duration",
        "45",
        "--verbose",
    ]);
    let _ = std::fs::remove_file(&key_file);
    assert!(ok, "{err}");
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    for line in [
        format!("  destination: localhost = 127.0.0.1 udp:{port}\n"),
        format!("  size:        {n} bytes"),
        "  request:     open\n".to_string(),
        "  for:         the packet's source (no address sealed in it)\n".to_string(),
        "  ports:       tcp:22 udp:53\n".to_string(),
        "  duration:    45 s\n".to_string(),
        "  key:         from the command line (not shown)\n".to_string(),
    ] {
        assert!(out.contains(&line), "{line:?} in {out}");
    }
    assert!(
        !out.contains(KEY) && !err.contains(KEY),
        "the key never shows: {out}"
    );
    assert!(!out.contains("BwcHBwcH"), "not even part of it: {out}");

    // No ports: the router's choice.
    let (ok, out, _) = run(&["spa", "127.0.0.1", "-p", &port, "--key", KEY, "--verbose"]);
    assert!(ok);
    assert!(
        out.contains("  ports:       none: the router's choice (the client's default_access)\n"),
        "{out}"
    );
    assert!(!out.contains(KEY));
}

#[test]
fn knock_verbose_lists_every_knock() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let udp = format!("udp:{port}");
    let (ok, out, err) = run(&["knock", "--verbose", "127.0.0.1", &udp, "tcp:9"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(
            "knocking 127.0.0.1 = 127.0.0.1: 2 knock(s), 0 ms apart\n  \
             1/2: {udp} (one empty UDP datagram)\n  2/2: tcp:9 (one TCP SYN)\n"
        )
    );
}

#[test]
fn status_watch_redraws_every_second() {
    let path = std::env::temp_dir().join(format!("postern-watch-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    // A stand-in daemon: answers each `text` request with a numbered view.
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let mut line = String::new();
            let _ = BufReader::new(&mut conn).read_line(&mut line);
            assert_eq!(line, "text\n");
            let _ = writeln!(conn, "live grants: {i}");
        }
    });
    let mut child = postern()
        .args(["status", "--watch", "-s"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Each chunk of output with when it came.
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                return;
            }
        }
    });
    let mut out = String::new();
    let mut frame_times = Vec::new();
    let end = Instant::now() + Duration::from_secs(15);
    while frame_times.len() < 2 && Instant::now() < end {
        if let Ok((at, chunk)) = rx.recv_timeout(Duration::from_millis(100)) {
            let text = String::from_utf8_lossy(&chunk).into_owned();
            for _ in text.matches("\x1b[H\x1b[2J") {
                frame_times.push(at);
            }
            out.push_str(&text);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    assert_eq!(frame_times.len(), 2, "two frames: {out:?}");
    let gap = frame_times[1] - frame_times[0];
    assert!(
        gap >= Duration::from_millis(900),
        "redrawn every second, not faster: {gap:?}"
    );
    assert!(
        out.contains("live grants: 0\n") && out.contains("live grants: 1\n"),
        "{out:?}"
    );
    assert!(out.contains("(every 1 s; Ctrl-C ends)"), "{out:?}");

    // --watch is for the terminal view.
    let (ok, _, err) = run(&["status", "--watch", "--json", "-s", "/nonexistent"]);
    assert!(
        !ok && err.contains("--watch redraws the text view"),
        "{err}"
    );
}
