//! The launcher process's loop: requests from the daemon, SIGCHLD and the
//! running commands' output pipes, all through one `poll`.

use core::net::IpAddr;
use std::ffi::CStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::channel::Channel;
use super::protocol::{Event, Request, MAX_MESSAGE};
use super::{Setup, MAX_CONFIG};
use crate::config::ConfigError;
use crate::grant_hooks::GrantEnv;
use crate::runner::{CommandSpec, Requester, Runner};

/// Longest sleep between the runner's timeout checks.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// The launcher's state.
struct Launcher {
    channel: Channel,
    setup: Setup,
    /// The commands it runs, by name.
    commands: Vec<CommandSpec>,
    /// Read on the last reload (its number, commands, log level), waiting
    /// for the daemon's [`Request::Adopt`].
    pending: Option<(u32, Vec<CommandSpec>, log::LevelFilter)>,
    /// Reads of the file so far.
    reads: u32,
    runner: Runner,
    out: Vec<u8>,
}

/// Runs the launcher until the daemon's end closes or SIGTERM/SIGINT;
/// returns the exit code.
pub(super) fn serve(channel: Channel, setup: Setup, commands: Vec<CommandSpec>) -> i32 {
    name_process(c"postern-launch");
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGCHLD,
    ] {
        mask.add(s);
    }
    // HUP stays blocked and unread: reloads come from the daemon.
    if let Err(e) = mask.thread_block() {
        error!(
            "privileged launcher: blocking signals: {}",
            std::io::Error::from(e)
        );
        return 1;
    }
    mask.remove(Signal::SIGHUP);
    let signals = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    {
        Ok(s) => s,
        Err(e) => {
            error!("privileged launcher: signalfd: {}", std::io::Error::from(e));
            return 1;
        }
    };
    debug!(
        "privileged launcher (pid {}): {} command(s)",
        std::process::id(),
        commands.len()
    );
    let mut l = Launcher {
        channel,
        setup,
        commands,
        pending: None,
        reads: 0,
        runner: Runner::new(),
        out: Vec::with_capacity(MAX_MESSAGE),
    };
    let code = l.run(&signals);
    l.runner.shutdown_with(|f| f.log());
    code
}

impl Launcher {
    fn run(&mut self, signals: &SignalFd) -> i32 {
        let mut buf = [0u8; MAX_MESSAGE + 1];
        loop {
            let now = Instant::now();
            let wait = self
                .runner
                .next_deadline()
                .map_or(MAX_WAIT, |d| d.saturating_duration_since(now).min(MAX_WAIT));
            let (from_daemon, signalled) = {
                let mut fds = vec![
                    PollFd::new(self.channel.as_fd(), PollFlags::POLLIN),
                    PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                ];
                fds.extend(
                    self.runner
                        .poll_fds()
                        .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
                );
                let ms = u16::try_from(wait.as_millis() + 1).unwrap_or(u16::MAX);
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        error!("privileged launcher: poll: {}", std::io::Error::from(e));
                        return 1;
                    }
                }
                let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            };
            if signalled {
                while let Ok(Some(sig)) = signals.read_signal() {
                    if sig.ssi_signo as i32 != libc::SIGCHLD {
                        info!("privileged launcher: signal {}: stopping", sig.ssi_signo);
                        return 0;
                    }
                }
            }
            if from_daemon {
                loop {
                    match self.channel.recv(&mut buf) {
                        Ok(got) if got.len == 0 => {
                            debug!("privileged launcher: the daemon closed its end: stopping");
                            return 0;
                        }
                        Ok(got) => self.handle(&buf[..got.len]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            error!("privileged launcher: {e}");
                            break;
                        }
                    }
                }
            }
            let mut finished = Vec::new();
            self.runner.on_wake_with(Instant::now(), |f| {
                f.log();
                finished.push(f.name);
            });
            for name in finished {
                self.tell(&Event::Finished { name }, None);
            }
        }
    }

    /// Sends `event` (and `fd`) to the daemon; blocks if its queue is full.
    fn tell(&mut self, event: &Event, fd: Option<&OwnedFd>) {
        if !event.encode(&mut self.out) {
            error!("privileged launcher: cannot encode {event:?}");
            return;
        }
        if let Err(e) = self
            .channel
            .send(&self.out, fd.map(AsRawFd::as_raw_fd), false)
        {
            warn!("privileged launcher: telling the daemon: {e}");
        }
    }

    fn handle(&mut self, bytes: &[u8]) {
        let request = match Request::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                warn!("privileged launcher: {e}: ignored");
                return;
            }
        };
        match request {
            Request::Run {
                name,
                client,
                source,
            } => self.start(name, client, source, None),
            Request::Hook { name, env } => {
                let client = env.granted_by.to_string();
                self.start(name, client, env.address, Some(&env));
            }
            Request::Reload => self.reload(),
            Request::Adopt { seq } => match self.pending.take() {
                Some((read, commands, level)) if read == seq => {
                    self.commands = commands;
                    log::set_max_level(self.setup.log_level.unwrap_or(level));
                    debug!(
                        "privileged launcher: {} command(s) after the reload",
                        self.commands.len()
                    );
                }
                other => {
                    // A newer read is on its way to the daemon: keep it.
                    self.pending = other;
                    debug!("privileged launcher: read {seq} is not the last one: not adopted");
                }
            },
        }
    }

    /// Starts command `name` (looked up in the launcher's own
    /// configuration) for `client` from `source`, as a hook of `grant`
    /// when given, and tells the daemon how it went.
    fn start(&mut self, name: String, client: String, source: IpAddr, grant: Option<&GrantEnv>) {
        let event = match self.commands.iter().find(|c| c.name == name) {
            None => Event::NotStarted {
                name,
                client,
                reason: "no such command is configured".into(),
            },
            Some(spec) => {
                let by = Requester {
                    client: &client,
                    source,
                    grant,
                };
                match self.runner.start(spec, by, Instant::now()) {
                    Ok(pid) => Event::Started {
                        name,
                        client,
                        source,
                        pid,
                    },
                    Err(e) => Event::NotStarted {
                        name,
                        client,
                        reason: e.to_string(),
                    },
                }
            }
        };
        self.tell(&event, None);
    }

    /// Reads and validates the configuration file; hands its bytes over.
    fn reload(&mut self) {
        self.pending = None;
        let file = self.setup.config.display().to_string();
        let loaded = read_file(&self.setup.config, &file).and_then(|bytes| {
            let cfg = crate::config::parse_bytes(&file, &bytes)?;
            let commands = crate::daemon::command_specs(&file, &cfg)?;
            Ok((bytes, cfg, commands))
        });
        let (bytes, cfg, commands) = match loaded {
            Ok(l) => l,
            Err(errs) => {
                for e in &errs {
                    error!("{e}");
                }
                let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                let reason = lines.join("\n");
                self.tell(&Event::ConfigRefused { reason }, None);
                return;
            }
        };
        if let Ok(meta) = std::fs::metadata(&self.setup.config) {
            use std::os::unix::fs::PermissionsExt as _;
            if let Some(w) = crate::config::permission_warning(
                &file,
                meta.permissions().mode(),
                cfg.has_secrets(),
            ) {
                warn!("{w}");
            }
        }
        match memory_file(&bytes) {
            Ok(fd) => {
                self.reads = self.reads.wrapping_add(1);
                self.pending = Some((self.reads, commands, cfg.main.log_level));
                self.tell(&Event::Config { seq: self.reads }, Some(&fd));
            }
            Err(e) => {
                error!("reload: cannot hand the configuration over: {e}");
                let reason = format!("cannot hand the configuration over: {e}");
                self.tell(&Event::ConfigRefused { reason }, None);
            }
        }
    }
}

fn read_file(path: &std::path::Path, file: &str) -> Result<Vec<u8>, Vec<ConfigError>> {
    let err = |message: String| {
        vec![ConfigError {
            file: file.to_string(),
            line: 0,
            message,
        }]
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if bytes.len() > MAX_CONFIG {
        return Err(err(format!("larger than {MAX_CONFIG} bytes")));
    }
    Ok(bytes)
}

/// An anonymous memory file holding `bytes`.
fn memory_file(bytes: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create(2) with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"postern-config".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    Ok(file.into())
}

/// Sets the process name (`ps`, `/proc/PID/status`).
fn name_process(name: &CStr) {
    // SAFETY: prctl(PR_SET_NAME) with a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}
