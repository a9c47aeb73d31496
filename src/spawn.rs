//! Starting child processes by hand: `fork` + `execve`, in place of
//! `std::process::Command`, whose spawn machinery (posix_spawn and fork
//! paths, its environment map, `pre_exec` plumbing) cost the router binary
//! more than this module does.
//!
//! Owns the one unsafe stretch between `fork` and `execve`. Everything that
//! allocates is prepared before `fork`: the program's path (looked up in
//! `PATH` in the parent), argv and envp as C strings with their pointer
//! arrays, `/dev/null`, the pipes, an empty signal mask. In the child only
//! async-signal-safe calls follow (`sigprocmask`, `signal`, `dup2`,
//! `fcntl`, `setgroups`/`setgid`/`setuid`, `chdir`, `setpgid`,
//! `close_range`, `prctl`, `execve`, `write`, `_exit`), as the daemon's lab
//! spawns from a multi-threaded process. A failed exec (or a failed step
//! before it) is reported to the parent through a close-on-exec pipe, so
//! [`Spawn::spawn`] returns the error (e.g. `NotFound`, `PermissionDenied`)
//! instead of a child that exits 127. [`Spawn::start`] does not wait for
//! that report (an event loop must not block until the child's exec): the
//! child's [`ExecReport`] says later, without blocking, whether it got there.
//!
//! Does not decide what runs or when (the command runner, the firewall
//! backends and the demo lab do), and does not reap children it did not
//! start. The child starts with an empty signal mask and `SIGPIPE` at its
//! default (the daemon blocks signals for its signalfd, and Rust ignores
//! `SIGPIPE`), as std's spawn does.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Output};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// `PATH` searched for a program without a `/` when the parent has none.
const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// What a child's fd 0, 1 or 2 is.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The parent's own fd (the default).
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A new pipe; the parent's end is in [`Child`]'s `stdin`/`stdout`/`stderr`.
    Piped,
    /// This fd (duplicated onto 0, 1 or 2 in the child).
    Fd(OwnedFd),
}

/// A process to start: program, arguments, environment, stdio and the
/// child's credentials and process group.
#[derive(Debug)]
pub struct Spawn {
    program: OsString,
    args: Vec<OsString>,
    env: Option<Vec<OsString>>,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    stdin_set: bool,
    process_group: bool,
    current_dir: Option<OsString>,
    user: Option<(u32, u32)>,
    close_inherited_fds: bool,
    clear_ambient_caps: bool,
}

impl Spawn {
    /// `program` (an absolute path, or a name looked up in the parent's
    /// `PATH`), with `program` as argv\[0\], the parent's environment and stdio.
    pub fn new(program: impl AsRef<OsStr>) -> Spawn {
        Spawn {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: None,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            stdin_set: false,
            process_group: false,
            current_dir: None,
            user: None,
            close_inherited_fds: false,
            clear_ambient_caps: false,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Spawn {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Spawn
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets `key=value` in the child's environment. The first call replaces
    /// the inherited environment: the child gets exactly the variables set.
    pub fn env(&mut self, key: &str, value: impl AsRef<OsStr>) -> &mut Spawn {
        let mut var = OsString::from(key);
        var.push("=");
        var.push(value.as_ref());
        self.env.get_or_insert_with(Vec::new).push(var);
        self
    }

    /// The child's fd 0 (default: inherited; [`Spawn::output`]: `/dev/null`).
    pub fn stdin(&mut self, s: Stdio) -> &mut Spawn {
        self.stdin = s;
        self.stdin_set = true;
        self
    }

    /// The child's fd 1 (default: inherited).
    pub fn stdout(&mut self, s: Stdio) -> &mut Spawn {
        self.stdout = s;
        self
    }

    /// The child's fd 2 (default: inherited).
    pub fn stderr(&mut self, s: Stdio) -> &mut Spawn {
        self.stderr = s;
        self
    }

    /// Starts the child in a new process group whose id is its pid.
    pub fn process_group(&mut self) -> &mut Spawn {
        self.process_group = true;
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<OsStr>) -> &mut Spawn {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Runs the child as `uid`/`gid` with no supplementary groups (cleared
    /// when the parent runs as root).
    pub fn user(&mut self, uid: u32, gid: u32) -> &mut Spawn {
        self.user = Some((uid, gid));
        self
    }

    /// Marks every fd above 2 close-on-exec in the child, so fds the parent
    /// holds without the flag (some inherited from whoever started it) do
    /// not reach the program.
    pub fn close_inherited_fds(&mut self) -> &mut Spawn {
        self.close_inherited_fds = true;
        self
    }

    /// Clears the child's ambient capability set before exec (see
    /// [`crate::privileges`]).
    pub fn clear_ambient_capabilities(&mut self) -> &mut Spawn {
        self.clear_ambient_caps = true;
        self
    }

    /// Starts the child and waits until it has exec'd. Fails (and leaves no
    /// child behind) when the program is not found, cannot be executed, or a
    /// step before exec fails. The stdio settings are used up (a second
    /// spawn inherits them).
    pub fn spawn(&mut self) -> io::Result<Child> {
        let mut child = self.start()?;
        let Some(mut report) = child.exec_report.take() else {
            return Ok(child);
        };
        report.blocking()?;
        loop {
            match report.check() {
                ExecState::Pending => {}
                ExecState::Done => return Ok(child),
                ExecState::Failed(e) => {
                    // The child failed before exec and exits 127: reap it.
                    let _ = child.wait();
                    return Err(e);
                }
            }
        }
    }

    /// Starts the child without waiting for its exec: returns once it is
    /// forked. Fails when a step in the parent fails (the program is not in
    /// `PATH`, a pipe cannot be made, `fork` fails); a failure in the child
    /// (no such program, not executable, no such user…) comes later from
    /// [`Child::exec_report`]'s [`ExecReport::check`], and the child exits
    /// 127. The stdio settings are used up.
    pub fn start(&mut self) -> io::Result<Child> {
        let path = CString::new(self.resolve()?.into_vec())?;
        let mut argv = vec![CString::new(self.program.as_bytes())?];
        for a in &self.args {
            argv.push(CString::new(a.as_bytes())?);
        }
        let argv_ptrs = null_terminated(&argv);
        let envp = match &self.env {
            Some(vars) => Some(
                vars.iter()
                    .map(|v| CString::new(v.as_bytes()))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let envp_ptrs = envp.as_deref().map(null_terminated);
        let dir = match &self.current_dir {
            Some(d) => Some(CString::new(d.as_bytes())?),
            None => None,
        };
        let (stdin, ours_in) = prepare(&mut self.stdin, true)?;
        let (stdout, ours_out) = prepare(&mut self.stdout, false)?;
        let (stderr, ours_err) = prepare(&mut self.stderr, false)?;
        let (report_read, report_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        // SAFETY: an all-zero sigset_t is valid storage; sigemptyset fills it.
        let mut empty: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: sigemptyset writes into the valid `empty`.
        unsafe { libc::sigemptyset(&mut empty) };
        let plan = ChildPlan {
            path: &path,
            argv: &argv_ptrs,
            envp: envp_ptrs.as_deref(),
            stdio: [
                stdin.as_ref().map(AsRawFd::as_raw_fd),
                stdout.as_ref().map(AsRawFd::as_raw_fd),
                stderr.as_ref().map(AsRawFd::as_raw_fd),
            ],
            dir: dir.as_deref(),
            process_group: self.process_group,
            user: self.user,
            close_inherited_fds: self.close_inherited_fds,
            clear_ambient_caps: self.clear_ambient_caps,
            report: report_write.as_raw_fd(),
            empty_mask: &empty,
        };
        // SAFETY: fork(2); the child runs only `exec_child` (async-signal-safe
        // calls on memory prepared above) and never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the forked child, see `exec_child`.
            unsafe { exec_child(&plan) }
        }
        if self.process_group {
            // Also from this side (the child does it too): the group exists
            // when start() returns, so a signal to it right away is not lost
            // while the child is still between fork and its own setpgid.
            // Fails harmlessly once the child has exec'd.
            // SAFETY: setpgid(2) with integer arguments.
            unsafe { libc::setpgid(pid, pid) };
        }
        // The child's ends, and the report pipe's write end, close here.
        drop((stdin, stdout, stderr, report_write));
        let report = File::from(report_read);
        // Non-blocking: `check` never waits for the child.
        let _ = fcntl(&report, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        Ok(Child {
            pid: pid as u32,
            stdin: ours_in,
            stdout: ours_out,
            stderr: ours_err,
            status: None,
            exec_report: Some(ExecReport {
                pipe: Some(report),
                errno: [0; 4],
                got: 0,
            }),
        })
    }

    /// Runs the child to its end and collects stdout and stderr (stdin is
    /// `/dev/null` unless set).
    pub fn output(&mut self) -> io::Result<Output> {
        if !self.stdin_set {
            self.stdin = Stdio::Null;
        }
        self.stdout = Stdio::Piped;
        self.stderr = Stdio::Piped;
        self.spawn()?.wait_with_output()
    }

    /// The program's path: itself when it has a `/`, else the first
    /// executable file of that name in `PATH`.
    fn resolve(&self) -> io::Result<OsString> {
        if self.program.as_bytes().contains(&b'/') {
            return Ok(self.program.clone());
        }
        let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(&self.program))
            .find(|p| is_executable(p))
            .map(OsString::from)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} not found in PATH", self.program.to_string_lossy()),
                )
            })
    }
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The pointers of `strings` followed by a null pointer (argv/envp form).
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    ptrs.push(core::ptr::null());
    ptrs
}

/// The child's end of `s` (close-on-exec until `dup2`), and the parent's end
/// of a pipe.
fn prepare(s: &mut Stdio, input: bool) -> io::Result<(Option<OwnedFd>, Option<File>)> {
    match core::mem::take(s) {
        Stdio::Inherit => Ok((None, None)),
        Stdio::Null => {
            let null = File::options()
                .read(input)
                .write(!input)
                .open("/dev/null")?;
            Ok((Some(null.into()), None))
        }
        Stdio::Fd(fd) => Ok((Some(fd), None)),
        Stdio::Piped => {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            Ok(if input {
                (Some(read), Some(File::from(write)))
            } else {
                (Some(write), Some(File::from(read)))
            })
        }
    }
}

/// What the child does between fork and exec, prepared in the parent.
struct ChildPlan<'a> {
    path: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: Option<&'a [*const libc::c_char]>,
    stdio: [Option<RawFd>; 3],
    dir: Option<&'a std::ffi::CStr>,
    process_group: bool,
    user: Option<(u32, u32)>,
    close_inherited_fds: bool,
    clear_ambient_caps: bool,
    report: RawFd,
    empty_mask: &'a libc::sigset_t,
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// In the forked child: sets it up as planned and execs; on failure writes
/// errno to the report pipe and exits 127. Async-signal-safe calls only.
unsafe fn exec_child(plan: &ChildPlan<'_>) -> ! {
    let errno = prepare_and_exec(plan);
    let bytes = errno.to_ne_bytes();
    libc::write(plan.report, bytes.as_ptr().cast(), bytes.len());
    libc::_exit(127)
}

/// Returns the errno of the step that failed (exec does not return on success).
unsafe fn prepare_and_exec(plan: &ChildPlan<'_>) -> i32 {
    let errno = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    };
    if libc::sigprocmask(libc::SIG_SETMASK, plan.empty_mask, core::ptr::null_mut()) != 0
        || libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR
    {
        return errno();
    }
    for (target, fd) in plan.stdio.iter().enumerate() {
        let Some(fd) = *fd else { continue };
        let target = target as RawFd;
        if fd == target {
            // dup2 onto itself keeps close-on-exec: clear it instead.
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return errno();
            }
        } else if libc::dup2(fd, target) < 0 {
            return errno();
        }
    }
    if let Some((uid, gid)) = plan.user {
        if libc::geteuid() == 0 && libc::setgroups(0, core::ptr::null()) != 0 {
            return errno();
        }
        if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return errno();
        }
    }
    if let Some(dir) = plan.dir {
        if libc::chdir(dir.as_ptr()) != 0 {
            return errno();
        }
    }
    if plan.process_group && libc::setpgid(0, 0) != 0 {
        return errno();
    }
    if plan.close_inherited_fds {
        cloexec_above_stdio();
    }
    if plan.clear_ambient_caps {
        if let Err(e) = crate::privileges::clear_ambient() {
            return e.raw_os_error().unwrap_or(libc::EPERM);
        }
    }
    let envp = match plan.envp {
        Some(envp) => envp.as_ptr(),
        None => environ,
    };
    libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), envp);
    errno()
}

/// In the child, between fork and exec: marks every fd above 2
/// close-on-exec. Marks rather than closes: the report pipe must stay open
/// until exec.
fn cloexec_above_stdio() {
    // SAFETY: close_range(2) with plain integer arguments (Linux 5.11+).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Older kernels: each possible fd in turn.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid `limit`.
    let highest: libc::c_int = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        1024
    } else if limit.rlim_cur < 65_536 {
        limit.rlim_cur as libc::c_int
    } else {
        65_536
    };
    for fd in 3..highest {
        // SAFETY: fcntl on any integer is harmless (EBADF when not open).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Whether a started child reached its `execve`.
#[derive(Debug)]
pub enum ExecState {
    /// Not known yet: the child is between `fork` and `execve`.
    Pending,
    /// It exec'd the program.
    Done,
    /// A step before exec (or exec itself) failed with this error; the
    /// child exits 127.
    Failed(io::Error),
}

/// The read end of a child's close-on-exec report pipe: end of file when
/// the child exec'd, an errno when it failed before.
#[derive(Debug)]
pub struct ExecReport {
    /// `None` once the outcome is known.
    pipe: Option<File>,
    errno: [u8; 4],
    got: usize,
}

impl ExecReport {
    /// The outcome so far; never blocks (unless [`ExecReport::blocking`]
    /// was called). After `Done` or `Failed` it says `Done`.
    pub fn check(&mut self) -> ExecState {
        let Some(pipe) = &mut self.pipe else {
            return ExecState::Done;
        };
        while self.got < self.errno.len() {
            match pipe.read(&mut self.errno[self.got..]) {
                Ok(0) => break,
                Ok(n) => self.got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ExecState::Pending,
                Err(e) => {
                    self.pipe = None;
                    return ExecState::Failed(e);
                }
            }
        }
        self.pipe = None;
        if self.got == 0 {
            return ExecState::Done;
        }
        // The child writes its 4 bytes at once (below PIPE_BUF: atomic).
        let errno = if self.got == self.errno.len() {
            i32::from_ne_bytes(self.errno)
        } else {
            libc::EIO
        };
        ExecState::Failed(io::Error::from_raw_os_error(errno))
    }

    /// The pipe's fd while the outcome is unknown (readable when it is).
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.pipe.as_ref().map(AsFd::as_fd)
    }

    /// Makes [`ExecReport::check`] wait for the outcome.
    fn blocking(&mut self) -> io::Result<()> {
        if let Some(pipe) = &self.pipe {
            fcntl(pipe, FcntlArg::F_SETFL(OFlag::empty()))?;
        }
        Ok(())
    }
}

/// A started child process.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    /// From [`Spawn::start`]: whether the child reached exec (taken by
    /// whoever wants to know; [`Spawn::spawn`] has waited for it already).
    pub exec_report: Option<ExecReport>,
    /// The parent's end of the child's stdin, given [`Stdio::Piped`].
    pub stdin: Option<File>,
    /// The parent's end of the child's stdout, given [`Stdio::Piped`].
    pub stdout: Option<File>,
    /// The parent's end of the child's stderr, given [`Stdio::Piped`].
    pub stderr: Option<File>,
    status: Option<ExitStatus>,
}

impl Child {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Its exit status if it has ended (reaped then), `None` while it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.waitpid(libc::WNOHANG)
    }

    /// Waits for it to end (reaps it).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        loop {
            if let Some(status) = self.waitpid(0)? {
                return Ok(status);
            }
        }
    }

    /// SIGKILL, unless it was reaped already.
    pub fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(io::Error::from)
    }

    /// Closes stdin, reads stdout and stderr to their ends (both at once,
    /// so neither pipe can fill and stall the child), and waits.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read_both(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn waitpid(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid status pointer.
            let rc = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut raw, flags) };
            if rc > 0 {
                let status = ExitStatus::from_raw(raw);
                self.status = Some(status);
                return Ok(Some(status));
            }
            if rc == 0 {
                return Ok(None);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Reads both pipes to their ends, polling so that neither blocks the other.
fn read_both(out: Option<File>, err: Option<File>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut pipes = [out, err];
    let mut bufs = [Vec::new(), Vec::new()];
    for p in pipes.iter().flatten() {
        fcntl(p, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    }
    while pipes.iter().any(Option::is_some) {
        let mut fds = [0, 1].map(|i| libc::pollfd {
            fd: pipes[i].as_ref().map_or(-1, AsRawFd::as_raw_fd),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: poll(2) on a valid array of two pollfds (fd -1 is ignored).
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for i in 0..2 {
            if fds[i].revents == 0 {
                continue;
            }
            let Some(pipe) = &mut pipes[i] else { continue };
            match pipe.read_to_end(&mut bufs[i]) {
                Ok(_) => pipes[i] = None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    let [out, err] = bufs;
    Ok((out, err))
}

#[cfg(test)]
mod tests;
