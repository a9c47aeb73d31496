//! The privileged launcher: a small process forked by a daemon started as
//! root, before it gives up root, that keeps root and runs the configured
//! `config command` entries on the daemon's request — and nothing else.
//!
//! Why: the daemon drops to its own user with only `CAP_NET_RAW` and
//! `CAP_NET_ADMIN` ([`crate::privileges`]), so it can no longer start a
//! command as root or as another user. The launcher holds the
//! [`Runner`](crate::runner::Runner) (spawning, output, timeouts with
//! SIGTERM then SIGKILL, reaping, [`MAX_RUNNING`](crate::runner::MAX_RUNNING))
//! and logs each run as the daemon did; the daemon only asks.
//!
//! What the daemon can make it do: run a command *by name* from the
//! launcher's own copy of the configuration, with the client name and
//! source address as the command's `POSTERN_*` environment
//! ([`protocol::Request`]: names are UCI names, no path or argument ever
//! crosses), and re-read the configuration file. On SIGHUP the daemon asks
//! for the file ([`protocol::Request::Reload`]); the launcher reads and
//! validates it as root (the file holds keys and stays root's, mode 0600),
//! hands the bytes it read to the daemon in a memory file, and keeps the
//! commands it found aside; the daemon parses the same bytes and, when it
//! accepts them, says [`protocol::Request::Adopt`], and the launcher runs
//! the new commands from then on. A compromised daemon can therefore run
//! the commands root configured, with environment values it chooses (as a
//! client's packet can), and nothing more.
//!
//! Lifetime: the launcher ends when the daemon's end of the socket closes
//! (daemon exit or crash) or on SIGTERM/SIGINT, stopping its commands as the
//! runner's shutdown does. A daemon started as root always has one, also
//! without commands: it is the daemon's only way to read the root-owned
//! configuration file on reload, and a reload may add commands.

mod channel;
pub mod protocol;
mod serve;

use core::net::IpAddr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::runner::{CommandSpec, Running, MAX_RUNNING};
use channel::Channel;
use protocol::{Event, Request, MAX_MESSAGE};

/// Largest configuration file handed over on reload (bytes).
pub const MAX_CONFIG: usize = 1 << 20;
/// How long the daemon waits for the launcher to end at exit.
const EXIT_WAIT: Duration = Duration::from_secs(8);

/// What the launcher needs besides its commands.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The configuration file it re-reads on reload.
    pub config: PathBuf,
    /// `--log-level`, when given (else the file's `log_level`).
    pub log_level: Option<log::LevelFilter>,
}

/// The answer to [`Launcher::reload`].
#[derive(Debug)]
pub enum Reloaded {
    /// The configuration file's bytes, as the launcher read them, and the
    /// number of that read (for [`Launcher::adopt`]).
    Text(Vec<u8>, u32),
    /// The launcher could not read or validate the file (it logged why);
    /// the errors, one a line.
    Refused(String),
}

/// A command the launcher runs, as the daemon mirrors it for `postern status`.
#[derive(Debug, Clone)]
struct Remote {
    name: String,
    client: String,
    source: IpAddr,
    pid: u32,
    started: Instant,
}

/// The daemon's handle on its launcher.
#[derive(Debug)]
pub struct Launcher {
    channel: Option<Channel>,
    pid: u32,
    running: Vec<Remote>,
    out: Vec<u8>,
}

impl Launcher {
    /// Forks the launcher (the caller must be single-threaded and still
    /// root). It starts with `commands` and keeps every privilege the caller
    /// has now.
    pub fn fork(setup: Setup, commands: Vec<CommandSpec>) -> io::Result<Launcher> {
        let (ours, theirs) = Channel::pair()?;
        // SAFETY: fork(2) in a single-threaded process; the child runs the
        // launcher's loop and exits without returning here.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            drop(ours);
            let code = serve::serve(theirs, setup, commands);
            // SAFETY: _exit(2) ends the child without running the parent's
            // atexit handlers or destructors a second time.
            unsafe { libc::_exit(code) }
        }
        drop(theirs);
        Ok(Launcher {
            channel: Some(ours),
            pid: pid as u32,
            running: Vec::with_capacity(MAX_RUNNING),
            out: Vec::with_capacity(MAX_MESSAGE),
        })
    }

    /// The launcher's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The socket to poll for the launcher's events (`None` once it is gone).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.channel.as_ref().map(AsFd::as_fd)
    }

    fn send(&mut self, request: &Request) -> io::Result<()> {
        let Some(channel) = &self.channel else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the privileged launcher is gone (see the log)",
            ));
        };
        if !request.encode(&mut self.out) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a name"));
        }
        // Never blocks the daemon's loop: a full socket refuses the request.
        channel.send(&self.out, None, true)
    }

    /// Asks for command `name` to run for `client` from `source`; the
    /// outcome comes as an event ([`Launcher::on_readable`]).
    pub fn run(&mut self, name: &str, client: &str, source: IpAddr) -> io::Result<()> {
        self.send(&Request::Run {
            name: name.to_string(),
            client: client.to_string(),
            source,
        })
    }

    /// Asks for command `name` to run as an open or close hook of the
    /// grant `env`; the outcome comes as an event.
    pub fn hook(&mut self, name: &str, env: &crate::grant_hooks::GrantEnv) -> io::Result<()> {
        self.send(&Request::Hook {
            name: name.to_string(),
            env: env.clone(),
        })
    }

    /// Asks the launcher to read the configuration file again; the bytes
    /// come as an event.
    pub fn reload(&mut self) -> io::Result<()> {
        self.send(&Request::Reload)
    }

    /// Tells the launcher that the configuration of its read `seq` is in
    /// use: its commands run from now on (ignored if it has read the file
    /// again since: that read's bytes are on their way).
    pub fn adopt(&mut self, seq: u32) -> io::Result<()> {
        self.send(&Request::Adopt { seq })
    }

    /// Handles every queued event: logs starts and refusals, keeps the
    /// running list, and returns the answer to a reload when one came.
    /// When the launcher is gone, logs it once and reaps it.
    pub fn on_readable(&mut self) -> Option<Reloaded> {
        let mut reloaded = None;
        let mut buf = [0u8; MAX_MESSAGE + 1];
        loop {
            let Some(channel) = &self.channel else {
                return reloaded;
            };
            let got = match channel.recv(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return reloaded,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!("privileged launcher: {e}");
                    return reloaded;
                }
            };
            if got.len == 0 {
                self.gone();
                return reloaded;
            }
            let event = match Event::decode(&buf[..got.len]) {
                Ok(event) => event,
                Err(e) => {
                    error!("{e}");
                    continue;
                }
            };
            match event {
                Event::Started {
                    name,
                    client,
                    source,
                    pid,
                } => {
                    info!("running command {name} (pid {pid}) for spa client {client}, packet from {source}");
                    if self.running.len() < MAX_RUNNING {
                        self.running.push(Remote {
                            name,
                            client,
                            source,
                            pid,
                            started: Instant::now(),
                        });
                    }
                }
                Event::NotStarted {
                    name,
                    client,
                    reason,
                } => warn!("command {name} not run for spa client {client}: {reason}"),
                Event::Finished { name } => self.running.retain(|r| r.name != name),
                Event::Config { seq } => {
                    reloaded = Some(match got.fd {
                        Some(fd) => read_config(File::from(fd), seq),
                        None => {
                            error!("privileged launcher: configuration without its file");
                            Reloaded::Refused(
                                "privileged launcher: configuration without its file".into(),
                            )
                        }
                    })
                }
                Event::ConfigRefused { reason } => reloaded = Some(Reloaded::Refused(reason)),
            }
        }
    }

    /// The commands the launcher runs, for `postern status`.
    pub fn running(&self, now: Instant) -> impl Iterator<Item = Running<'_>> {
        self.running.iter().map(move |r| Running {
            name: &r.name,
            client: &r.client,
            source: r.source,
            pid: r.pid,
            seconds: now.saturating_duration_since(r.started).as_secs(),
        })
    }

    fn gone(&mut self) {
        self.channel = None;
        self.running.clear();
        // Its socket closes as it exits: reap it (briefly waiting).
        let end = Instant::now() + Duration::from_secs(1);
        let mut status = reap(self.pid);
        while status.is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
            status = reap(self.pid);
        }
        error!(
            "privileged launcher (pid {}) ended{}: commands cannot run until postern restarts",
            self.pid,
            status.map(|s| format!(" ({s})")).unwrap_or_default()
        );
    }
}

impl Drop for Launcher {
    /// Closes the socket (the launcher stops its commands and exits) and
    /// waits a bounded time for it to end.
    fn drop(&mut self) {
        if self.channel.take().is_none() {
            return;
        }
        let end = Instant::now() + EXIT_WAIT;
        while Instant::now() < end {
            if reap(self.pid).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        warn!("privileged launcher (pid {}) did not end", self.pid);
    }
}

/// `waitpid(pid, WNOHANG)`: how it ended, once it has.
fn reap(pid: u32) -> Option<String> {
    let mut raw = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut raw, libc::WNOHANG) };
    if rc <= 0 {
        return None;
    }
    Some(if libc::WIFEXITED(raw) {
        format!("exit status {}", libc::WEXITSTATUS(raw))
    } else {
        format!("signal {}", libc::WTERMSIG(raw))
    })
}

/// The memory file's bytes, bounded by [`MAX_CONFIG`].
fn read_config(mut file: File, seq: u32) -> Reloaded {
    use std::io::{Seek, SeekFrom};
    let mut bytes = Vec::new();
    let read = file.seek(SeekFrom::Start(0)).and_then(|_| {
        (&mut file)
            .take(MAX_CONFIG as u64 + 1)
            .read_to_end(&mut bytes)
    });
    match read {
        Ok(n) if n <= MAX_CONFIG => Reloaded::Text(bytes, seq),
        Ok(_) => {
            let why = format!("configuration larger than {MAX_CONFIG} bytes");
            error!("reload: {why}");
            Reloaded::Refused(why)
        }
        Err(e) => {
            let why = format!("reading the configuration from the launcher: {e}");
            error!("reload: {why}");
            Reloaded::Refused(why)
        }
    }
}
