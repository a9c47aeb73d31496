//! The command runner: the edge that runs the admin's named commands for SPA
//! command mode.
//!
//! Owns the child processes: spawning them (no shell: argv[0] is an absolute
//! path, the arguments go as they are), draining their output, enforcing
//! timeouts on their process groups, reaping them (by pid: never anyone
//! else's children) and reporting each finished run as a [`Finished`]. Does
//! not decide whether a command may run (the SPA verifier and the engine do),
//! and reads no clock: the daemon passes `now` in.
//!
//! A child starts with stdin on `/dev/null`, stdout and stderr on one pipe
//! (our end non-blocking and close-on-exec), in its own process group, in
//! `/`, with the environment cleared but for `PATH` and the `POSTERN_*`
//! variables (see [`ENV_PATH`]), and, given a [`RunAs`], with that user's
//! uid and gid and no supplementary groups (`setgroups(0)` before `setuid`).
//! It inherits only fds 0–2: every fd above is marked close-on-exec in the
//! child before exec (`close_range`), which also covers fds the daemon
//! itself inherited. Its ambient capability set is cleared before exec (see
//! [`crate::privileges`]). The process is started by [`crate::spawn`]
//! (fork + execve by hand, smaller than `std::process::Command`).
//!
//! A run ends when its process exits. Past its timeout the process group
//! gets SIGTERM, and SIGKILL [`KILL_GRACE`] later; a timed-out run's group is
//! also SIGKILLed when its leader exits, so nothing it started outlives it.
//! After a normal exit, processes the command left behind in its group are
//! left alone, but their later output is not collected.

mod finished;
mod spec;

#[cfg(test)]
mod tests;

use core::time::Duration;
use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use log::{debug, error, info, warn};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::grant_hooks::GrantEnv;
use crate::spawn::{ExecReport, ExecState, Spawn, Stdio};

pub use finished::{Finished, Status};
pub use spec::{
    check_argv, check_program, resolve_user, CommandSpec, RunAs, MAX_ARGS, MAX_ARG_LEN,
};

/// Most commands running at once.
pub const MAX_RUNNING: usize = 4;
/// Output kept and logged per command run (bytes); beyond it output is read
/// and dropped, and counted in [`Finished::dropped`].
pub const MAX_OUTPUT: usize = 4096;
/// From SIGTERM (timeout) to SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// From SIGTERM to SIGKILL in [`Runner::shutdown`].
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// `PATH` in a command's environment (the rest: `POSTERN_COMMAND`,
/// `POSTERN_CLIENT`, `POSTERN_SOURCE`, and for hooks [`GrantEnv::vars`]).
pub const ENV_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Bytes read per `read` (a stack buffer once the kept output is full).
const READ_CHUNK: usize = 4096;
/// Reads per run per wake-up: a chatty command cannot hold the daemon's
/// loop (what is left keeps its fd readable for the next `poll`).
const READS_PER_WAKE: usize = 16;
/// Reads after the process exited, for what is still in the pipe (64 KiB by
/// default).
const READS_AT_EXIT: usize = 64;
/// How long [`Runner::shutdown`] waits for SIGKILLed processes to be reaped.
const SHUTDOWN_REAP: Duration = Duration::from_secs(5);
/// Sleep between reaping attempts in [`Runner::shutdown`].
const SHUTDOWN_STEP: Duration = Duration::from_millis(10);

static_assertions::const_assert!(MAX_RUNNING >= 1 && MAX_RUNNING <= 16);
static_assertions::const_assert!(MAX_OUTPUT >= 256 && MAX_OUTPUT <= 65_536);

/// Who asked for a run: for the log and the child's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requester<'a> {
    /// The SPA client's name.
    pub client: &'a str,
    /// The address the request came from.
    pub source: IpAddr,
    /// For an open or close hook: the grant it is about (its `POSTERN_*`
    /// environment, [`GrantEnv::vars`]).
    pub grant: Option<&'a GrantEnv>,
}

/// Why [`Runner::start`] started nothing.
#[derive(Debug)]
pub enum StartError {
    /// [`MAX_RUNNING`] commands are running.
    Busy,
    /// A command of this name is running (one instance per name).
    AlreadyRunning,
    /// The process could not be started (no such program, not executable,
    /// no such user…).
    Spawn(io::Error),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Busy => write!(f, "{MAX_RUNNING} commands are running already"),
            StartError::AlreadyRunning => f.write_str("it is running already"),
            StartError::Spawn(e) => write!(f, "cannot start it: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running command, for `postern status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running<'a> {
    /// The command's name.
    pub name: &'a str,
    /// The SPA client that asked for it.
    pub client: &'a str,
    /// The address the request came from.
    pub source: IpAddr,
    /// Its process id (and process group id).
    pub pid: u32,
    /// Whole seconds since it started.
    pub seconds: u64,
}

/// The running commands: at most [`MAX_RUNNING`], one per name.
#[derive(Debug, Default)]
pub struct Runner {
    slots: [Option<Run>; MAX_RUNNING],
}

/// One running command.
#[derive(Debug)]
struct Run {
    name: String,
    client: String,
    source: IpAddr,
    pid: u32,
    /// Our end of the output pipe; `None` after end of file.
    output: Option<File>,
    /// Whether the child reached exec; `None` once it did.
    exec_report: Option<ExecReport>,
    /// Why the child did not reach exec (it exits 127).
    exec_error: Option<String>,
    /// The kept output: capacity [`MAX_OUTPUT`], reserved at spawn.
    kept: Vec<u8>,
    dropped: u64,
    started: Instant,
    timeout: Duration,
    /// When SIGTERM went to the group (timeout or shutdown).
    term_sent: Option<Instant>,
    kill_sent: bool,
    /// SIGTERM went for the timeout (not for a shutdown).
    timed_out: bool,
    /// [`Runner::shutdown`] stopped it.
    stopped: bool,
}

impl Runner {
    /// No command running.
    pub fn new() -> Runner {
        Runner::default()
    }

    /// Starts `spec` for `by` and returns its pid. Fails when a command of
    /// the same name is running, when [`MAX_RUNNING`] are, or when the
    /// process cannot be started.
    pub fn start(
        &mut self,
        spec: &CommandSpec,
        by: Requester<'_>,
        now: Instant,
    ) -> Result<u32, StartError> {
        if self.slots.iter().flatten().any(|run| run.name == spec.name) {
            return Err(StartError::AlreadyRunning);
        }
        let Some(slot) = self.slots.iter_mut().find(|slot| slot.is_none()) else {
            return Err(StartError::Busy);
        };
        let run = Run::spawn(spec, by, now).map_err(StartError::Spawn)?;
        let pid = run.pid;
        match &spec.user {
            Some(user) => info!(
                "command {} started for client {} from {} (pid {pid}, user {})",
                spec.name, by.client, by.source, user.name
            ),
            None => info!(
                "command {} started for client {} from {} (pid {pid})",
                spec.name, by.client, by.source
            ),
        }
        *slot = Some(run);
        Ok(pid)
    }

    /// The running commands' output pipes: poll them for readability and
    /// call [`Runner::on_wake`] when one is, so the output is drained as it
    /// comes (a full pipe would stall the command until the next tick), and
    /// a run ends when its pipe closes.
    pub fn poll_fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|run| run.output.as_ref().map(AsFd::as_fd))
    }

    /// The earliest instant a timeout signal is due, if any command runs:
    /// the daemon may bound its `poll` timeout by it (its 1 s tick is
    /// precise enough otherwise).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|run| match run.term_sent {
                None => Some(run.started + run.timeout),
                Some(at) if !run.kill_sent => Some(at + KILL_GRACE),
                Some(_) => None,
            })
            .min()
    }

    /// Called on every daemon wake-up: drains output, enforces timeouts,
    /// reaps exited commands and logs each finished run
    /// ([`Finished::log`]). Allocates nothing unless a run finishes.
    pub fn on_wake(&mut self, now: Instant) {
        self.on_wake_with(now, |run| run.log());
    }

    /// [`Runner::on_wake`], handing each finished run to `finished` instead
    /// of logging it.
    pub fn on_wake_with(&mut self, now: Instant, mut finished: impl FnMut(Finished)) {
        for slot in &mut self.slots {
            let Some(run) = slot else { continue };
            run.check_exec();
            run.drain(READS_PER_WAKE);
            match wait(run.pid, Wait::Peek) {
                Ok(None) => run.enforce_timeout(now),
                Ok(Some(_)) => {
                    if run.term_sent.is_some() {
                        // The leader is a zombie until reaped below, so the
                        // group id still names this group only.
                        run.signal_group(Signal::SIGKILL);
                    }
                    run.drain(READS_AT_EXIT);
                    run.check_exec();
                    let status = match wait(run.pid, Wait::Reap) {
                        Ok(Some(status)) => status,
                        Ok(None) | Err(_) => Status::Unknown,
                    };
                    if let Some(run) = slot.take() {
                        finished(run.finish(status, now));
                    }
                }
                Err(e) => {
                    error!("command {} (pid {}): waitid: {e}", run.name, run.pid);
                    if let Some(run) = slot.take() {
                        finished(run.finish(Status::Unknown, now));
                    }
                }
            }
        }
    }

    /// The running commands, with their run time at `now`.
    pub fn running(&self, now: Instant) -> impl Iterator<Item = Running<'_>> {
        self.slots.iter().flatten().map(move |run| Running {
            name: &run.name,
            client: &run.client,
            source: run.source,
            pid: run.pid,
            seconds: now.saturating_duration_since(run.started).as_secs(),
        })
    }

    /// How many commands are running.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// True when no command is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every running command and reaps it, logging each run: SIGTERM
    /// to the process groups, SIGKILL after [`SHUTDOWN_GRACE`]. Blocks
    /// (sleeping) for at most about [`SHUTDOWN_GRACE`] plus a few seconds;
    /// called on daemon exit (and on drop).
    pub fn shutdown(&mut self) {
        self.shutdown_with(|run| run.log());
    }

    /// [`Runner::shutdown`], handing each finished run to `finished`.
    pub fn shutdown_with(&mut self, mut finished: impl FnMut(Finished)) {
        if self.is_empty() {
            return;
        }
        let start = Instant::now();
        for run in self.slots.iter_mut().flatten() {
            if run.term_sent.is_none() {
                info!("command {} (pid {}): stopping (SIGTERM)", run.name, run.pid);
                run.signal_group(Signal::SIGTERM);
                run.term_sent = Some(start);
            }
            run.stopped = true;
        }
        self.reap_until(start + SHUTDOWN_GRACE, &mut finished);
        for run in self.slots.iter_mut().flatten() {
            if !run.kill_sent {
                warn!(
                    "command {} (pid {}): SIGKILL on shutdown",
                    run.name, run.pid
                );
                run.signal_group(Signal::SIGKILL);
                run.kill_sent = true;
            }
        }
        self.reap_until(Instant::now() + SHUTDOWN_REAP, &mut finished);
        for run in self.slots.iter().flatten() {
            error!(
                "command {} (pid {}) survived SIGKILL; left unreaped",
                run.name, run.pid
            );
        }
    }

    /// Reaps (sleeping between tries) until no command runs or `deadline`.
    fn reap_until(&mut self, deadline: Instant, finished: &mut impl FnMut(Finished)) {
        loop {
            let now = Instant::now();
            self.on_wake_with(now, &mut *finished);
            if self.is_empty() || now >= deadline {
                return;
            }
            std::thread::sleep(SHUTDOWN_STEP);
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Run {
    fn spawn(spec: &CommandSpec, by: Requester<'_>, now: Instant) -> io::Result<Run> {
        let Some((program, args)) = spec.argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty exec"));
        };
        // Both ends close-on-exec: the child gets the write end as its fds 1
        // and 2 only (dup2 clears the flag there). Only our end is
        // non-blocking: the child's writes block on a full pipe.
        let (ours, theirs) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        fcntl(&ours, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        let theirs_too = theirs.try_clone()?;
        let mut command = Spawn::new(program);
        command
            .args(args)
            .env("PATH", ENV_PATH)
            .env("POSTERN_COMMAND", &spec.name)
            .env("POSTERN_CLIENT", by.client)
            .env("POSTERN_SOURCE", by.source.to_string());
        if let Some(grant) = by.grant {
            for (key, value) in grant.vars() {
                command.env(key, value);
            }
        }
        command
            .current_dir("/")
            .stdin(Stdio::Null)
            .stdout(Stdio::Fd(theirs))
            .stderr(Stdio::Fd(theirs_too))
            .process_group()
            .close_inherited_fds()
            // A non-root daemon keeps CAP_NET_ADMIN ambient for `nft`;
            // commands get no capability from it.
            .clear_ambient_capabilities();
        if let Some(user) = &spec.user {
            command.user(user.uid, user.gid);
        }
        // The child's write ends close in start(), which does not wait for
        // the exec (the daemon's loop must not block on it): a failure
        // before exec is read from the report later. No wait of the
        // `Child`'s own: we reap by pid.
        let mut child = command.start()?;
        let pid = child.id();
        let exec_report = child.exec_report.take();
        let mut kept = Vec::new();
        kept.try_reserve_exact(MAX_OUTPUT)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(Run {
            name: spec.name.clone(),
            client: by.client.to_owned(),
            source: by.source,
            pid,
            output: Some(File::from(ours)),
            exec_report,
            exec_error: None,
            kept,
            dropped: 0,
            started: now,
            timeout: spec.timeout,
            term_sent: None,
            kill_sent: false,
            timed_out: false,
            stopped: false,
        })
    }

    /// Notes whether the child reached exec (without waiting).
    fn check_exec(&mut self) {
        let Some(report) = &mut self.exec_report else {
            return;
        };
        match report.check() {
            ExecState::Pending => return,
            ExecState::Done => {}
            ExecState::Failed(e) => self.exec_error = Some(e.to_string()),
        }
        self.exec_report = None;
    }

    /// Reads what the pipe holds (at most `reads` reads); closes it at end
    /// of file.
    fn drain(&mut self, reads: usize) {
        let Some(pipe) = &mut self.output else { return };
        let mut scratch = [0u8; READ_CHUNK];
        for _ in 0..reads {
            let room = MAX_OUTPUT.saturating_sub(self.kept.len());
            let got = if room > 0 {
                let start = self.kept.len();
                let take = room.min(READ_CHUNK);
                // Within the capacity reserved at spawn: no reallocation.
                self.kept.resize(start + take, 0);
                let got = pipe.read(&mut self.kept[start..]);
                self.kept.truncate(start + *got.as_ref().unwrap_or(&0));
                got
            } else {
                let got = pipe.read(&mut scratch);
                if let Ok(n) = got {
                    self.dropped += n as u64;
                }
                got
            };
            match got {
                Ok(0) => {
                    self.output = None;
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("command {} (pid {}): output: {e}", self.name, self.pid);
                    self.output = None;
                    return;
                }
            }
        }
    }

    fn enforce_timeout(&mut self, now: Instant) {
        match self.term_sent {
            None if now.saturating_duration_since(self.started) >= self.timeout => {
                warn!(
                    "command {} (pid {}) ran past its {} s timeout: SIGTERM to its process group",
                    self.name,
                    self.pid,
                    self.timeout.as_secs()
                );
                self.signal_group(Signal::SIGTERM);
                self.term_sent = Some(now);
                self.timed_out = true;
            }
            Some(at) if !self.kill_sent && now.saturating_duration_since(at) >= KILL_GRACE => {
                warn!(
                    "command {} (pid {}) outlived SIGTERM by {} s: SIGKILL to its process group",
                    self.name,
                    self.pid,
                    KILL_GRACE.as_secs()
                );
                self.signal_group(Signal::SIGKILL);
                self.kill_sent = true;
            }
            _ => {}
        }
    }

    /// Signals the run's process group. Only called while the leader is
    /// unreaped, so the group id cannot name anyone else's group.
    fn signal_group(&self, signal: Signal) {
        let Ok(pgid) = i32::try_from(self.pid) else {
            return;
        };
        if let Err(e) = killpg(Pid::from_raw(pgid), signal) {
            debug!(
                "command {} (pid {}): {signal}: {}",
                self.name,
                self.pid,
                io::Error::from(e)
            );
        }
    }

    fn finish(self, status: Status, now: Instant) -> Finished {
        Finished {
            run_time: now.saturating_duration_since(self.started),
            name: self.name,
            client: self.client,
            source: self.source,
            pid: self.pid,
            status,
            output: self.kept,
            dropped: self.dropped,
            timed_out: self.timed_out,
            killed: self.kill_sent,
            stopped: self.stopped,
            exec_error: self.exec_error,
        }
    }
}

/// Whether [`wait`] reaps the exited process or leaves it a zombie.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Peek,
    Reap,
}

/// `waitid(P_PID, pid, WEXITED | WNOHANG)`: `None` while `pid` runs, else
/// how it ended. Only ever our own children's pids.
fn wait(pid: u32, how: Wait) -> io::Result<Option<Status>> {
    let mut flags = libc::WEXITED | libc::WNOHANG;
    if how == Wait::Peek {
        flags |= libc::WNOWAIT;
    }
    // SAFETY: an all-zero siginfo_t is a valid value (si_pid 0 = no child
    // changed state); waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { core::mem::zeroed() };
    loop {
        // SAFETY: a plain syscall with a valid pointer to `info`.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    // SAFETY: waitid filled `info` for SIGCHLD (or left it zeroed), where
    // si_pid and si_status are the valid union members.
    let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
    if child == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => Status::Exited(status),
        _ => Status::Signaled(status),
    }))
}
