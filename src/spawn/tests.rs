//! The hand-written spawn: stdio, environment, exec errors, credentials-free
//! parts (the runner's tests and the root netns suites cover users and caps).

use super::*;
use std::io::Write;

#[test]
fn output_collects_stdout_stderr_and_the_exit_code() {
    let out = Spawn::new("/bin/sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(!out.status.success());
}

#[test]
fn large_output_on_both_pipes_does_not_deadlock() {
    // 256 KiB on each pipe: far more than a pipe holds (64 KiB).
    let script = "head -c 262144 /dev/zero; head -c 262144 /dev/zero >&2";
    let out = Spawn::new("sh").args(["-c", script]).output().unwrap();
    assert_eq!(out.stdout.len(), 262_144);
    assert_eq!(out.stderr.len(), 262_144);
    assert!(out.status.success());
}

#[test]
fn a_name_is_looked_up_in_path_and_a_missing_one_is_not_found() {
    let out = Spawn::new("sh").args(["-c", "exit 0"]).output().unwrap();
    assert!(out.status.success());
    let e = Spawn::new("postern-no-such-program").spawn().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let e = Spawn::new("/nonexistent/program").spawn().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

#[test]
fn exec_failure_is_reported_by_the_child() {
    // A directory cannot be executed: execve fails in the child (EACCES),
    // which reports it through the close-on-exec pipe.
    let e = Spawn::new("/").spawn().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // A failing step before exec (chdir) too.
    let e = Spawn::new("/bin/true")
        .current_dir("/nonexistent-dir")
        .spawn()
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
}

#[test]
fn the_environment_is_exactly_what_was_set() {
    let out = Spawn::new("/usr/bin/env")
        .env("PATH", "/bin")
        .env("POSTERN_X", "a b=c")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "PATH=/bin\nPOSTERN_X=a b=c\n"
    );
    // Without env(): inherited.
    let out = Spawn::new("/usr/bin/env").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let path = std::env::var("PATH").unwrap();
    assert!(text.lines().any(|l| l == format!("PATH={path}")), "{text}");
}

#[test]
fn stdin_pipe_reaches_the_child_and_output_default_stdin_is_null() {
    let mut child = Spawn::new("/bin/cat")
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"hello");
    let out = Spawn::new("/bin/cat").output().unwrap();
    assert!(out.stdout.is_empty() && out.status.success());
}

#[test]
fn working_dir_process_group_and_fds() {
    let out = Spawn::new("/bin/sh")
        .args([
            "-c",
            "pwd; cut -d' ' -f5 /proc/$$/stat; echo $$; ls /proc/self/fd",
        ])
        .current_dir("/")
        .process_group()
        .close_inherited_fds()
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "/");
    assert_eq!(
        lines[1].trim(),
        lines[2].trim(),
        "its own process group: {text}"
    );
    // ls's own fds: 0-2 and the directory it reads (3); nothing of ours.
    let fds: Vec<u32> = lines[3..].iter().map(|l| l.parse().unwrap()).collect();
    assert!(fds.iter().all(|&fd| fd <= 3), "{text}");
}

#[test]
fn the_child_starts_with_an_empty_signal_mask_and_default_sigpipe() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    // Block SIGTERM in a thread of ours (as the daemon does for its signalfd).
    let out = std::thread::spawn(|| {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGTERM);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).unwrap();
        Spawn::new("/bin/sh")
            .args(["-c", "grep -E '^(SigBlk|SigIgn)' /proc/self/status"])
            .output()
            .unwrap()
    })
    .join()
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    // SIGPIPE (13) is bit 12: not ignored.
    let ign = text
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:\t"))
        .unwrap();
    let ign = u64::from_str_radix(ign.trim(), 16).unwrap();
    assert_eq!(ign & (1 << 12), 0, "{text}");
}

#[test]
fn try_wait_kill_and_wait() {
    let mut child = Spawn::new("/bin/sleep").arg("30").spawn().unwrap();
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(child.try_wait().unwrap(), Some(status));
    child.kill().unwrap(); // reaped: nothing to signal, no error
}

#[test]
fn start_does_not_wait_for_the_exec_and_reports_it_later() {
    // The report of a child still between fork and exec: a pipe whose
    // write end is open. check() answers at once.
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    let read = File::from(read);
    fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let mut report = ExecReport {
        pipe: Some(read),
        errno: [0; 4],
        got: 0,
    };
    assert!(matches!(report.check(), ExecState::Pending));
    assert!(report.fd().is_some());
    // The child fails: its errno arrives.
    let mut write = File::from(write);
    std::io::Write::write_all(&mut write, &libc::ENOENT.to_ne_bytes()).unwrap();
    drop(write);
    match report.check() {
        ExecState::Failed(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    assert!(matches!(report.check(), ExecState::Done));

    // A real child that cannot exec: start() returns the child, the report
    // says why, and the child exits 127.
    let mut child = Spawn::new("/nonexistent/program").start().unwrap();
    let mut report = child.exec_report.take().unwrap();
    let failed = loop {
        match report.check() {
            ExecState::Pending => std::thread::sleep(std::time::Duration::from_millis(1)),
            ExecState::Done => panic!("exec'd a missing program"),
            ExecState::Failed(e) => break e,
        }
    };
    assert_eq!(failed.kind(), io::ErrorKind::NotFound);
    assert_eq!(child.wait().unwrap().code(), Some(127));

    // One that can: Done once exec'd.
    let mut child = Spawn::new("/bin/true").start().unwrap();
    let mut report = child.exec_report.take().unwrap();
    while matches!(report.check(), ExecState::Pending) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(matches!(report.check(), ExecState::Done));
    assert!(child.wait().unwrap().success());
}
