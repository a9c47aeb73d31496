//! The daemon's side of SPA commands and forwards: runs the commands the
//! engine decided on (through the [`Runner`]), lets sources through forwards
//! (through the firewall backend), mirrors live forwards for `postern status`
//! and firewall restarts, and carries both across reloads.
//!
//! Owns the resolved command list (users looked up when the configuration is
//! loaded, so an unknown user refuses the file with its line) and the active
//! forward list, both in the order the engine's decisions index.

use core::net::IpAddr;
use core::time::Duration;
use std::time::Instant;

use log::{error, info, warn};

use crate::config::{Config, ConfigError, Forward, NamedForward};
use crate::firewall::{Backend, ForwardGrant, ForwardSpec};
use crate::forward_grants::ForwardTable;
use crate::grant_hooks::{GrantEnv, HookRun};
use crate::launcher::{Launcher, Reloaded};
use crate::privileges::Keep;
use crate::runner::{self, CommandSpec, Requester, Runner, StartError};
use crate::status::CommandView;
use crate::time::Millis;

/// The firewall's view of a configured forward.
pub fn forward_spec(f: &Forward) -> ForwardSpec {
    ForwardSpec {
        proto: f.proto,
        port: f.port,
        to4: f.to4,
        to6: f.to6,
        to_port: f.to_port,
    }
}

/// The enabled forwards of `cfg` as the firewall sees them.
pub fn forward_specs(cfg: &Config) -> Vec<ForwardSpec> {
    cfg.active_forwards()
        .map(|f| forward_spec(&f.forward))
        .collect()
}

/// The enabled commands of `cfg`, ready to run: users resolved. Errors name
/// the file and line of the command (or of `config postern`'s `option
/// user`, which must name an existing user too).
pub fn command_specs(file: &str, cfg: &Config) -> Result<Vec<CommandSpec>, Vec<ConfigError>> {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    if let Some(name) = cfg.main.user.as_deref().filter(|&u| u != "root") {
        if let Err(e) = runner::resolve_user(name) {
            errors.push(ConfigError {
                file: file.to_string(),
                line: cfg.main.user_line,
                message: format!("option user: {e}"),
            });
        }
    }
    for c in cfg.active_commands() {
        let user = match &c.user {
            None => None,
            Some(name) => match runner::resolve_user(name) {
                Ok(u) => Some(u),
                Err(e) => {
                    errors.push(ConfigError {
                        file: file.to_string(),
                        line: c.line,
                        message: format!("command '{}': {e}", c.name),
                    });
                    continue;
                }
            },
        };
        if let Some(program) = c.argv.first() {
            if let Err(e) = runner::check_program(program) {
                warn!("command '{}': {e}", c.name);
            }
        }
        specs.push(CommandSpec {
            name: c.name.clone(),
            argv: c.argv.clone(),
            timeout: c.timeout,
            user,
        });
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

/// Commands and forwards as the running daemon has them.
pub struct Actions {
    /// Running commands.
    pub runner: Runner,
    commands: Vec<CommandSpec>,
    forwards: Vec<NamedForward>,
    /// Live forward grants.
    pub live: ForwardTable,
    /// What the daemon kept when it dropped its privileges.
    keep: Keep,
    /// The daemon runs as uid 0.
    daemon_is_root: bool,
    /// The privileged launcher that runs the commands of a daemon started
    /// as root (`None`: the runner above runs them as the daemon's user).
    launcher: Option<Launcher>,
}

impl Actions {
    /// For a loaded configuration and its resolved commands.
    pub fn new(cfg: &Config, commands: Vec<CommandSpec>) -> Actions {
        Actions {
            runner: Runner::new(),
            commands,
            forwards: cfg.active_forwards().cloned().collect(),
            live: ForwardTable::new(),
            keep: Keep::Everything,
            daemon_is_root: true,
            launcher: None,
        }
    }

    /// Hands commands to `launcher` from now on.
    pub fn set_launcher(&mut self, launcher: Launcher) {
        self.launcher = Some(launcher);
    }

    /// The privileged launcher, if the daemon has one.
    pub fn launcher(&mut self) -> Option<&mut Launcher> {
        self.launcher.as_mut()
    }

    /// Calls `f` with each descriptor to poll for commands: the launcher's
    /// socket, or the local runner's output pipes.
    pub fn each_poll_fd(&self, mut f: impl FnMut(std::os::fd::RawFd)) {
        use std::os::fd::AsRawFd as _;
        if let Some(fd) = self.launcher.as_ref().and_then(Launcher::fd) {
            f(fd.as_raw_fd());
        }
        for fd in self.runner.poll_fds() {
            f(fd.as_raw_fd());
        }
    }

    /// One of the descriptors of [`Actions::each_poll_fd`] is ready:
    /// handles the launcher's events and drains the runner. Returns the
    /// launcher's answer to a reload, if it came.
    pub fn on_ready(&mut self, now: Instant) -> Option<Reloaded> {
        self.runner.on_wake(now);
        self.launcher.as_mut().and_then(Launcher::on_readable)
    }

    /// The daemon took the configuration of the launcher's read `seq`
    /// (`None`: it read the file itself).
    pub fn adopt(&mut self, seq: Option<u32>) {
        if let (Some(l), Some(seq)) = (&mut self.launcher, seq) {
            if let Err(e) = l.adopt(seq) {
                error!(
                    "privileged launcher: {e}: it keeps the commands of the previous configuration"
                );
            }
        }
    }

    /// Records what the daemon kept when it dropped its privileges: commands
    /// that need more are refused (with the reason) rather than half-run.
    pub fn set_privileges(&mut self, keep: Keep, daemon_is_root: bool) {
        self.keep = keep;
        self.daemon_is_root = daemon_is_root;
    }

    /// Why `spec` cannot run with the privileges kept, if it cannot.
    fn lacks_privileges(&self, spec: &CommandSpec) -> Option<String> {
        if self.launcher.is_some() || self.keep.can_run(spec.user.is_some(), self.daemon_is_root) {
            return None;
        }
        Some(match &spec.user {
            Some(u) => format!(
                "it runs as user {}, but postern kept no CAP_SETUID/CAP_SETGID/CAP_KILL \
                 (no command had option user when it started): restart postern to run it",
                u.name
            ),
            None => "it runs as root, but postern dropped root's capabilities at start \
                     (no command ran as root then): restart postern to run it, or give it option user"
                .to_string(),
        })
    }

    /// Runs enabled command `index` for `client`, whose packet came from `source`.
    pub fn run(&mut self, index: usize, client: &str, source: IpAddr) {
        if self.commands.get(index).is_none() {
            error!("spa client {client}: command #{index} is not configured");
            return;
        }
        let asked = format!("for spa client {client}");
        self.start(index, &asked, client, source, None);
    }

    /// Runs the open or close hook `hook` (a `config command` by name).
    pub fn hook(&mut self, hook: &HookRun) {
        let env = &hook.env;
        let asked = format!(
            "as {} hook of {} for {} ({})",
            env.event.as_str(),
            env.granted_by,
            env.address,
            env.reason.as_str()
        );
        let Some(index) = self
            .commands
            .iter()
            .position(|c| c.name == hook.command.as_str())
        else {
            error!(
                "command {} not run {asked}: it is not configured (or disabled)",
                hook.command
            );
            return;
        };
        self.start(index, &asked, &env.granted_by, env.address, Some(env));
    }

    /// Starts command `index` (locally or through the launcher); `asked`
    /// says for whom, in the log.
    fn start(
        &mut self,
        index: usize,
        asked: &str,
        client: &str,
        source: IpAddr,
        grant: Option<&GrantEnv>,
    ) {
        let Some(spec) = self.commands.get(index) else {
            return;
        };
        if let Some(why) = self.lacks_privileges(spec) {
            error!("command {} not run {asked}: {why}", spec.name);
            return;
        }
        if let Some(l) = &mut self.launcher {
            // The launcher runs it by name, from its own configuration; its
            // answer comes as an event.
            let sent = match grant {
                Some(env) => l.hook(&spec.name, env),
                None => l.run(&spec.name, client, source),
            };
            if let Err(e) = sent {
                error!(
                    "command {} not run {asked}: privileged launcher: {e}",
                    spec.name
                );
            }
            return;
        }
        let by = Requester {
            client,
            source,
            grant,
        };
        match self.runner.start(spec, by, Instant::now()) {
            Ok(pid) if grant.is_some() => {
                info!("running command {} (pid {pid}) {asked}", spec.name)
            }
            Ok(pid) => info!(
                "running command {} (pid {pid}) {asked}, packet from {source}",
                spec.name
            ),
            Err(StartError::Busy) => warn!(
                "command {} not run {asked}: {} commands are running already",
                spec.name,
                runner::MAX_RUNNING
            ),
            Err(StartError::AlreadyRunning) => {
                warn!("command {} not run {asked}: it is still running", spec.name)
            }
            Err(StartError::Spawn(e)) => {
                error!("command {} could not start: {e}", spec.name)
            }
        }
    }

    /// Lets `addr` through enabled forward `index` for `duration`, for `client`.
    pub fn forward(
        &mut self,
        backend: &mut dyn Backend,
        now: Millis,
        addr: IpAddr,
        index: usize,
        client: &str,
        duration: Duration,
    ) {
        let Some(f) = self.forwards.get(index) else {
            error!("spa client {client}: forward #{index} is not configured");
            return;
        };
        let grant = ForwardGrant {
            src: addr,
            spec: forward_spec(&f.forward),
            timeout: duration,
        };
        match backend.forward(&grant) {
            Ok(()) => {
                self.live
                    .record(now, addr, &f.name, f.forward, duration, client);
                info!(
                    "opened forward {} ({}) for {addr} for {} s (spa client {client})",
                    f.name,
                    f.forward.path_for(addr),
                    duration.as_secs()
                );
            }
            Err(e) => error!(
                "could not open forward {} for {addr} (spa client {client}): {e}",
                f.name
            ),
        }
    }

    /// The name of the enabled forward `index` (as [`Config::active_forwards`] counts).
    pub fn forward_name(&self, index: usize) -> Option<&str> {
        self.forwards.get(index).map(|f| f.name.as_str())
    }

    /// After a reload: the new command and forward lists; live forwards whose
    /// forward is gone or changed are withdrawn from the firewall now.
    pub fn reload(&mut self, backend: &mut dyn Backend, cfg: &Config, commands: Vec<CommandSpec>) {
        self.commands = commands;
        for spec in &self.commands {
            if let Some(why) = self.lacks_privileges(spec) {
                warn!("command {}: {why}", spec.name);
            }
        }
        self.forwards = cfg.active_forwards().cloned().collect();
        let forwards = &self.forwards;
        let gone = self.live.take_unless(|l| {
            forwards
                .iter()
                .any(|f| f.name.as_str() == l.name.as_str() && f.forward == l.forward)
        });
        for l in gone {
            match backend.unforward(l.addr, &forward_spec(&l.forward)) {
                Ok(()) => info!(
                    "closed forward {} for {}: removed or changed by the reload",
                    l.name, l.addr
                ),
                Err(e) => error!("could not close forward {} for {}: {e}", l.name, l.addr),
            }
        }
    }

    /// After a firewall restart: re-applies live forwards with their remaining time.
    pub fn reapply(&mut self, backend: &mut dyn Backend, now: Millis) -> usize {
        self.live.expire(now);
        let mut applied = 0;
        for l in self.live.live(now) {
            let grant = ForwardGrant {
                src: l.addr,
                spec: forward_spec(&l.forward),
                timeout: l.remaining(now),
            };
            if grant.timeout.is_zero() {
                continue;
            }
            match backend.forward(&grant) {
                Ok(()) => applied += 1,
                Err(e) => error!("could not re-apply forward {} for {}: {e}", l.name, l.addr),
            }
        }
        applied
    }

    /// The running commands for `postern status`.
    pub fn command_views(&self, now: Instant) -> Vec<CommandView> {
        let remote = self.launcher.iter().flat_map(|l| l.running(now));
        self.runner
            .running(now)
            .chain(remote)
            .map(|r| CommandView {
                name: r.name.to_string(),
                client: r.client.to_string(),
                source: r.source.to_string(),
                pid: r.pid,
                running_s: r.seconds,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_user_must_exist_and_is_refused_with_its_line() {
        let text = "config postern\n\toption enabled 0\n\toption user 'postern-no-such-user'\n";
        let cfg = crate::config::parse_str("f", text).unwrap();
        let errors = command_specs("f", &cfg).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "f:3: option user: unknown user 'postern-no-such-user' (not in /etc/passwd)"
        );
        for ok in ["root", "nobody"] {
            let text = format!("config postern\n\toption user '{ok}'\n");
            let cfg = crate::config::parse_str("f", &text).unwrap();
            assert!(command_specs("f", &cfg).is_ok(), "{ok}");
        }
    }
}
