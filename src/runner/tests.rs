//! The runner with real processes (/bin and /usr/bin programs of the host;
//! under qemu-user the emulated test binary starts them natively).

use super::*;

use std::path::PathBuf;

/// Generous: the tests wait on conditions, never on time.
const PATIENCE: Duration = Duration::from_secs(60);

fn spec(name: &str, argv: &[&str], timeout: Duration) -> CommandSpec {
    CommandSpec {
        name: name.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout,
        user: None,
    }
}

fn alice() -> Requester<'static> {
    Requester {
        client: "alice",
        source: "192.0.2.9".parse().unwrap(),
        grant: None,
    }
}

/// Wakes the runner (as the daemon would) until no command runs.
fn run_to_end(runner: &mut Runner) -> Vec<Finished> {
    let give_up = Instant::now() + PATIENCE;
    let mut done = Vec::new();
    while !runner.is_empty() {
        assert!(
            Instant::now() < give_up,
            "commands still running: {runner:?}"
        );
        runner.on_wake_with(Instant::now(), |f| done.push(f));
        std::thread::sleep(Duration::from_millis(10));
    }
    done
}

/// Starts `spec` and waits for its end.
fn run_one(spec: &CommandSpec) -> Finished {
    let mut runner = Runner::new();
    let pid = runner.start(spec, alice(), Instant::now()).unwrap();
    let mut done = run_to_end(&mut runner);
    assert_eq!(done.len(), 1);
    let f = done.pop().unwrap();
    assert_eq!(f.pid, pid);
    f
}

fn text(f: &Finished) -> &str {
    core::str::from_utf8(&f.output).unwrap()
}

/// A fresh directory of the test's own.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("postern-runner-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True when `pid` is gone (or a zombie waiting for its new parent).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_dead(pid: u32) {
    let give_up = Instant::now() + PATIENCE;
    while !dead(pid) {
        assert!(Instant::now() < give_up, "pid {pid} still alive");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn output_and_status_are_reported() {
    let f = run_one(&spec(
        "hello",
        &["/bin/echo", "hello", "world"],
        Duration::from_secs(30),
    ));
    assert_eq!(f.status, Status::Exited(0));
    assert!(f.success());
    assert_eq!(text(&f), "hello world\n");
    assert_eq!(f.lines().collect::<Vec<_>>(), [b"hello world"]);
    assert_eq!((f.name.as_str(), f.client.as_str()), ("hello", "alice"));
    assert_eq!(f.source, alice().source);
    assert_eq!((f.dropped, f.timed_out, f.killed), (0, false, false));
    let summary = f.summary().to_string();
    assert!(
        summary.starts_with("command hello for client alice from 192.0.2.9 (pid "),
        "{summary}"
    );
    assert!(summary.contains("exited with status 0"), "{summary}");
}

#[test]
fn stdout_and_stderr_share_the_output() {
    let f = run_one(&spec(
        "both",
        &["/bin/sh", "-c", "echo out; echo err >&2; echo out2"],
        Duration::from_secs(30),
    ));
    assert_eq!(text(&f), "out\nerr\nout2\n");
}

#[test]
fn arguments_reach_the_program_literally() {
    let dir = temp_dir("literal");
    let pwned = dir.join("pwned");
    let subst = format!("$(touch {})", pwned.display());
    let backticks = format!("`touch {}`", pwned.display());
    let args = [
        "a;b",
        subst.as_str(),
        backticks.as_str(),
        "x | y",
        "*",
        "two words",
        "$HOME",
        "'single'",
        "\"double\"",
        "> out",
        "",
        "tab\there",
    ];
    let mut argv = vec!["/usr/bin/printf", "[%s]\\n"];
    argv.extend(args);
    let f = run_one(&spec("literal", &argv, Duration::from_secs(30)));
    assert_eq!(f.status, Status::Exited(0));
    let expected: String = args.iter().map(|a| format!("[{a}]\n")).collect();
    assert_eq!(text(&f), expected);
    assert!(!pwned.exists(), "a shell expanded an argument");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_start_runs_the_command_exactly_once() {
    let dir = temp_dir("once");
    let script = dir.join("record");
    let marker = dir.join("marker");
    // The admin's script gets its arguments as they are, and an environment
    // to tell who asked.
    std::fs::write(
        &script,
        "m=$1; shift\nprintf 'run %s\\n' \"$POSTERN_CLIENT\" >> \"$m\"\nprintf '<%s>\\n' \"$@\" >> \"$m\"\n",
    )
    .unwrap();
    let spec = spec(
        "record",
        &[
            "/bin/sh",
            script.to_str().unwrap(),
            marker.to_str().unwrap(),
            "a b",
            "$(id)",
        ],
        Duration::from_secs(30),
    );
    let f = run_one(&spec);
    assert!(f.success(), "{}", f.summary());
    let once = "run alice\n<a b>\n<$(id)>\n";
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), once);
    run_one(&spec);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("{once}{once}")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failures_and_signals_are_reported() {
    let f = run_one(&spec("false", &["/bin/false"], Duration::from_secs(30)));
    assert_eq!(f.status, Status::Exited(1));
    assert!(!f.success());
    assert!(f.summary().to_string().contains("exited with status 1"));

    let f = run_one(&spec(
        "suicide",
        &["/bin/sh", "-c", "kill -USR1 $$"],
        Duration::from_secs(30),
    ));
    assert_eq!(f.status, Status::Signaled(libc::SIGUSR1));
    assert!(!f.success() && !f.timed_out);
    assert!(f.summary().to_string().contains("killed by SIGUSR1"));
}

#[test]
fn a_program_that_cannot_start_is_reported_when_it_ends() {
    // start() does not wait for the exec: the failure comes from the
    // child's report, and the run ends with it.
    let missing = spec("missing", &["/nonexistent/program"], Duration::from_secs(1));
    let f = run_one(&missing);
    let e = f.exec_error.as_deref().unwrap();
    assert!(e.contains("No such file"), "{e}");
    assert_eq!(f.status, Status::Exited(127));
    assert!(!f.success());
    let mut runner = Runner::new();
    let empty = spec("empty", &[], Duration::from_secs(1));
    assert!(matches!(
        runner.start(&empty, alice(), Instant::now()),
        Err(StartError::Spawn(_))
    ));
    assert!(runner.is_empty());
}

#[test]
fn output_is_drained_through_poll_alone() {
    // A child writing far more than a pipe holds, with the runner woken
    // only when its output pipe is readable (no tick, no SIGCHLD): it still
    // runs to its end, promptly. With wake-ups only on ticks (16 reads of
    // 4 KiB each) 4 MiB would take over a minute of ticks.
    let mut runner = Runner::new();
    let big = spec(
        "big",
        &["/usr/bin/head", "-c", "4194304", "/dev/zero"],
        Duration::from_secs(120),
    );
    runner.start(&big, alice(), Instant::now()).unwrap();
    let give_up = Instant::now() + PATIENCE;
    let mut done = Vec::new();
    let mut wakes = 0u32;
    while done.is_empty() {
        assert!(Instant::now() < give_up, "still running: {runner:?}");
        let mut fds: Vec<libc::pollfd> = runner
            .poll_fds()
            .map(|fd| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        assert!(!fds.is_empty(), "the run's pipe is polled until it ends");
        // SAFETY: poll(2) on a valid array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10_000) };
        assert!(n > 0, "poll timed out: the pipe never became readable");
        wakes += 1;
        runner.on_wake_with(Instant::now(), |f| done.push(f));
        if done.is_empty() && runner.poll_fds().next().is_none() {
            // Pipe closed, process not yet reaped: one more look.
            std::thread::sleep(Duration::from_millis(5));
            runner.on_wake_with(Instant::now(), |f| done.push(f));
        }
    }
    let f = done.pop().unwrap();
    assert!(f.success(), "{}", f.summary());
    assert_eq!(f.output.len() as u64 + f.dropped, 4_194_304);
    eprintln!("4 MiB drained in {wakes} poll wake-ups");
}

#[test]
fn a_timeout_terms_the_whole_process_group() {
    let f = run_one(&spec(
        "sleep",
        &["/bin/sleep", "30"],
        Duration::from_secs(1),
    ));
    assert_eq!(f.status, Status::Signaled(libc::SIGTERM));
    assert!(f.timed_out && !f.killed && !f.success());
    assert!(f.run_time >= Duration::from_secs(1));

    // A shell (the admin's choice of program) with a child of its own.
    let dir = temp_dir("group");
    let marker = dir.join("child");
    let script = format!(
        "/bin/sleep 30 & echo $! > {}; wait",
        marker.to_str().unwrap()
    );
    let f = run_one(&spec(
        "group",
        &["/bin/sh", "-c", &script],
        Duration::from_secs(1),
    ));
    assert_eq!(f.status, Status::Signaled(libc::SIGTERM));
    assert!(f.timed_out && !f.killed);
    let child: u32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_dead(child);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_command_ignoring_term_is_killed_after_the_grace() {
    let f = run_one(&spec(
        "stubborn",
        &[
            "/bin/sh",
            "-c",
            "trap '' TERM; echo ready; while :; do /bin/sleep 1; done",
        ],
        Duration::from_secs(1),
    ));
    assert_eq!(f.status, Status::Signaled(libc::SIGKILL));
    assert!(f.timed_out && f.killed && !f.stopped);
    assert!(f.run_time >= Duration::from_secs(1) + KILL_GRACE);
    assert_eq!(text(&f), "ready\n");
}

#[test]
fn one_instance_per_name_and_at_most_max_running() {
    let mut runner = Runner::new();
    let start = Instant::now();
    let sleeper = |i: usize| spec(&format!("c{i}"), &["/bin/sleep", "30"], PATIENCE);
    let mut pids = Vec::new();
    for i in 0..MAX_RUNNING {
        pids.push(runner.start(&sleeper(i), alice(), start).unwrap());
    }
    assert!(matches!(
        runner.start(&sleeper(0), alice(), start),
        Err(StartError::AlreadyRunning)
    ));
    assert!(matches!(
        runner.start(&sleeper(MAX_RUNNING), alice(), start),
        Err(StartError::Busy)
    ));
    assert_eq!(runner.len(), MAX_RUNNING);
    assert_eq!(runner.poll_fds().count(), MAX_RUNNING);
    assert_eq!(runner.next_deadline(), Some(start + PATIENCE));
    let listed: Vec<_> = runner.running(start + Duration::from_secs(5)).collect();
    assert_eq!(listed.len(), MAX_RUNNING);
    for (i, r) in listed.iter().enumerate() {
        assert_eq!(r.name, format!("c{i}"));
        assert_eq!((r.client, r.source), ("alice", alice().source));
        assert_eq!((r.pid, r.seconds), (pids[i], 5));
    }

    // Nothing finished yet: waking changes nothing.
    runner.on_wake_with(Instant::now(), |f| panic!("{f:?}"));
    assert_eq!(runner.len(), MAX_RUNNING);

    let mut done = Vec::new();
    runner.shutdown_with(|f| done.push(f));
    assert!(runner.is_empty());
    assert_eq!(done.len(), MAX_RUNNING);
    for f in &done {
        assert_eq!(f.status, Status::Signaled(libc::SIGTERM), "{f:?}");
        assert!(f.stopped && !f.timed_out && !f.killed, "{f:?}");
        // Reaped: no longer a child of ours.
        let err = wait(f.pid, Wait::Peek).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECHILD));
    }
    // A freed name and slot start again.
    runner.start(&sleeper(0), alice(), Instant::now()).unwrap();
}

#[test]
fn shutdown_kills_and_reaps_everything() {
    let dir = temp_dir("shutdown");
    let marker = dir.join("child");
    let stubborn = format!(
        "trap '' TERM; /bin/sleep 30 & echo $! > {}; while :; do /bin/sleep 1; done",
        marker.to_str().unwrap()
    );
    let mut runner = Runner::new();
    let now = Instant::now();
    runner
        .start(
            &spec("sleep", &["/bin/sleep", "30"], PATIENCE),
            alice(),
            now,
        )
        .unwrap();
    runner
        .start(
            &spec("stubborn", &["/bin/sh", "-c", &stubborn], PATIENCE),
            alice(),
            now,
        )
        .unwrap();
    let give_up = Instant::now() + PATIENCE;
    while !marker.exists() || std::fs::read_to_string(&marker).unwrap().trim().is_empty() {
        assert!(
            Instant::now() < give_up,
            "the stubborn script never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let child: u32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let mut done = Vec::new();
    runner.shutdown_with(|f| done.push(f));
    assert!(runner.is_empty());
    done.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].status, Status::Signaled(libc::SIGTERM));
    assert_eq!(done[1].status, Status::Signaled(libc::SIGKILL));
    assert!(done[0].stopped && !done[0].killed && !done[0].timed_out);
    assert!(done[1].stopped && done[1].killed && !done[1].timed_out);
    wait_dead(child);
    for f in &done {
        let err = wait(f.pid, Wait::Peek).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECHILD));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_beyond_the_bound_is_dropped_and_counted() {
    let f = run_one(&spec(
        "seq",
        &["/usr/bin/seq", "1", "5000"],
        Duration::from_secs(30),
    ));
    assert!(f.success());
    let full: String = (1..=5000).map(|i| format!("{i}\n")).collect();
    assert!(full.len() > MAX_OUTPUT);
    assert_eq!(f.output, full.as_bytes()[..MAX_OUTPUT]);
    assert_eq!(f.dropped, (full.len() - MAX_OUTPUT) as u64);
    assert!(f
        .summary()
        .to_string()
        .ends_with(&format!(", {} bytes of output", full.len())));
}

#[test]
fn the_environment_is_exactly_the_documented_one() {
    let mut runner = Runner::new();
    let by = Requester {
        client: "bob",
        source: "2001:db8::7".parse().unwrap(),
        grant: None,
    };
    let env = spec("env", &["/usr/bin/env"], Duration::from_secs(30));
    runner.start(&env, by, Instant::now()).unwrap();
    let f = run_to_end(&mut runner).pop().unwrap();
    let mut lines: Vec<&str> = text(&f).lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "POSTERN_CLIENT=bob",
            "POSTERN_COMMAND=env",
            "POSTERN_SOURCE=2001:db8::7",
        ]
    );

    // A hook also learns the grant.
    let grant = crate::grant_hooks::GrantEnv {
        event: crate::grant_hooks::HookEvent::Close,
        reason: crate::grant_hooks::HookReason::Expired,
        address: "2001:db8::7".parse().unwrap(),
        ports: [
            crate::port::PortSpec::tcp(22),
            crate::port::PortSpec::udp(53),
        ]
        .into_iter()
        .collect(),
        granted_by: "ssh".try_into().unwrap(),
        duration_s: 30,
    };
    let by = Requester {
        client: "ssh",
        source: grant.address,
        grant: Some(&grant),
    };
    runner.start(&env, by, Instant::now()).unwrap();
    let f = run_to_end(&mut runner).pop().unwrap();
    let mut lines: Vec<&str> = text(&f).lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "POSTERN_ADDRESS=2001:db8::7",
            "POSTERN_CLIENT=ssh",
            "POSTERN_COMMAND=env",
            "POSTERN_DURATION=30",
            "POSTERN_EVENT=close",
            "POSTERN_GRANTED_BY=ssh",
            "POSTERN_PORTS=tcp:22 udp:53",
            "POSTERN_REASON=expired",
            "POSTERN_SOURCE=2001:db8::7",
        ]
    );

    // Working directory /, stdin /dev/null, its own process group.
    let f = run_one(&spec(
        "setup",
        &[
            "/bin/sh",
            "-c",
            "pwd; /usr/bin/readlink /proc/$$/fd/0; /bin/sed 's/.*) //' /proc/$$/stat",
        ],
        Duration::from_secs(30),
    ));
    let out = text(&f);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("/"), "{out}");
    assert_eq!(lines.next(), Some("/dev/null"), "{out}");
    // /proc/PID/stat after the name: state, parent, process group.
    let stat = lines.next().unwrap();
    assert_eq!(
        stat.split(' ').nth(2),
        Some(f.pid.to_string().as_str()),
        "{out}"
    );

    // No fd beyond 0-2 is inherited: ls's own directory fd is the lowest
    // free one, 3.
    let f = run_one(&spec(
        "fds",
        &["/bin/ls", "/proc/self/fd"],
        Duration::from_secs(30),
    ));
    assert_eq!(text(&f), "0\n1\n2\n3\n");
}

#[test]
fn a_user_runs_with_its_ids_and_no_supplementary_groups() {
    if !is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("runner::tests::a_user_runs_with_its_ids_and_no_supplementary_groups needs root under CI");
        }
        eprintln!(
            "\n*** SKIPPED (needs root): runner::tests::a_user_runs_with_its_ids_and_no_supplementary_groups. \
             Run: sudo -E cargo test ***\n"
        );
        return;
    }
    let nobody = resolve_user("nobody").unwrap();
    let mut spec = spec(
        "whoami",
        &[
            "/bin/sh",
            "-c",
            "/usr/bin/id -u; /usr/bin/id -g; /usr/bin/id -G",
        ],
        Duration::from_secs(30),
    );
    spec.user = Some(nobody.clone());
    let f = run_one(&spec);
    assert!(f.success(), "{} {:?}", f.summary(), text(&f));
    assert_eq!(
        text(&f),
        format!("{}\n{}\n{}\n", nobody.uid, nobody.gid, nobody.gid)
    );
}
