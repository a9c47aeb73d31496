//! The daemon: one thread, one `poll` loop over the capture sockets and a signalfd.
//!
//! Owns the process-level I/O: reading the config file, opening capture
//! sockets, driving the firewall backend, reading the clocks and signals
//! (HUP reloads, TERM/INT stop), the SPA replay state file
//! ([`ReplayFile`], written before each SPA grant), the control socket that
//! answers `postern status`, and the nftables event monitor that notices a
//! firewall restart (which drops the kernel's sets) so that live grants are
//! re-applied with their remaining time. Capture devices that are missing at
//! start, go down, disappear or are created again (a new ifindex: PPPoE
//! reconnects, `wifi` reloads, veths) are [`Captures`]' business: noticed on
//! the tick, reopened by name, never spinning the loop.
//! All decisions are the [`Engine`]'s.

use core::fmt;
use core::time::Duration;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use log::{debug, error, info, warn};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::bans::{BanTable, NetText};
use crate::capture::{bpf, Capture, Pacer};
use crate::cidr::Cidr;
use crate::config::{self, BackendKind, Config};
use crate::control::{ControlSocket, Request, DEFAULT_SOCKET};
use crate::engine::{Decision, Engine, Origin};
use crate::firewall::dry_run::DryRunBackend;
use crate::firewall::ipset::Fw3Backend;
use crate::firewall::nft::monitor::Monitor;
use crate::firewall::nft::NftBackend;
use crate::firewall::{Backend, Grant};
use crate::grants::GrantTable;
use crate::launcher::{Launcher, Reloaded};
use crate::local_networks::{self, Watch};
use crate::privileges::{self, Become, Keep};
use crate::replay_file::{Loaded, ReplayFile};
use crate::spa::Refused;
use crate::status::Snapshot;
use crate::time::{Millis, Now};

mod actions;
mod captures;
mod control_requests;
mod hooks;
mod peer_link;

use crate::runner::CommandSpec;
use actions::Actions;
pub use actions::{command_specs, forward_specs};
use captures::Captures;

/// How often the engine's housekeeping runs.
const TICK: Duration = Duration::from_secs(1);
/// Largest frame read (IPv6 jumbograms aside, nothing bigger reaches us).
const FRAME_BUFFER: usize = 65_536;
/// Most SPA refusal warnings logged per second (the rest are counted, then summed up).
const REFUSAL_LOGS_PER_SECOND: u32 = 10;

/// Command-line choices for `postern daemon`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The UCI config file.
    pub config: PathBuf,
    /// Capture devices from `-i`; when empty, the config's `list device`.
    pub devices: Vec<String>,
    /// `--backend` override of the config's `option backend`.
    pub backend: Option<BackendKind>,
    /// `--log-level` override of the config's `option log_level`.
    pub log_level: Option<log::LevelFilter>,
    /// `--control PATH`: the status socket (default [`DEFAULT_SOCKET`]).
    pub control: Option<PathBuf>,
}

/// Why the daemon could not start (or had to stop).
#[derive(Debug)]
pub struct DaemonError(pub String);

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DaemonError {}

fn fail(msg: impl Into<String>) -> DaemonError {
    DaemonError(msg.into())
}

/// Picks the backend: an explicit choice, or for `auto` fw4 when OpenWrt's
/// `fw4` is installed, else fw3 when `fw3` is, else postern's own nftables table.
pub fn make_backend(kind: BackendKind) -> Result<Box<dyn Backend>, DaemonError> {
    let kind = match kind {
        BackendKind::Auto if installed(&["/sbin/fw4", "/usr/sbin/fw4"]) => BackendKind::Fw4,
        BackendKind::Auto if installed(&["/sbin/fw3"]) => BackendKind::Fw3,
        BackendKind::Auto => BackendKind::Nft,
        other => other,
    };
    Ok(match kind {
        BackendKind::Nft | BackendKind::Auto => Box::new(NftBackend::standalone()),
        BackendKind::Fw4 => Box::new(NftBackend::fw4()),
        BackendKind::Fw3 => Box::new(Fw3Backend::new()),
        BackendKind::DryRun => Box::new(DryRunBackend::new()),
    })
}

fn installed(paths: &[&str]) -> bool {
    paths.iter().any(|p| std::path::Path::new(p).exists())
}

/// A configuration with its commands' users resolved, or what is wrong with it.
type LoadedConfig = Result<(Config, Vec<CommandSpec>), Vec<config::ConfigError>>;

/// The configuration file's bytes as the privileged launcher read them (on
/// reload), with the commands' users resolved.
fn config_from(opts: &Options, bytes: &[u8]) -> LoadedConfig {
    let file = opts.config.display().to_string();
    let mut cfg = config::parse_bytes(&file, bytes)?;
    config::peer::read_key_files(&file, &mut cfg)?;
    let commands = actions::command_specs(&file, &cfg)?;
    Ok((cfg, commands))
}

/// Loads the config and resolves its commands' users; warns when it holds
/// keys that group or others may read.
fn load_config(opts: &Options) -> LoadedConfig {
    let cfg = config::load(&opts.config)?;
    let commands = actions::command_specs(&opts.config.display().to_string(), &cfg)?;
    for w in config::typed::warnings(&cfg) {
        warn!("{}: {w}", opts.config.display());
    }
    if let Ok(meta) = std::fs::metadata(&opts.config) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = opts.config.display().to_string();
        if let Some(w) =
            config::permission_warning(&path, meta.permissions().mode(), cfg.has_secrets())
        {
            warn!("{w}");
        }
    }
    Ok((cfg, commands))
}

/// Runs the daemon in the foreground until TERM or INT.
pub fn run(opts: &Options) -> Result<(), DaemonError> {
    let (cfg, commands) = load_config(opts).map_err(|errs| {
        for e in &errs {
            error!("{e}");
        }
        fail(format!(
            "{}: {} error(s); not starting",
            opts.config.display(),
            errs.len()
        ))
    })?;
    log::set_max_level(opts.log_level.unwrap_or(cfg.main.log_level));
    if !cfg.main.enabled {
        info!(
            "disabled in {} (option enabled '0'); exiting",
            opts.config.display()
        );
        return Ok(());
    }
    let devices = if opts.devices.is_empty() {
        cfg.main.devices.clone()
    } else {
        opts.devices.clone()
    };
    if devices.is_empty() {
        return Err(fail(
            "no capture device: give -i DEV or 'list device' in the config",
        ));
    }

    let mut backend = make_backend(opts.backend.unwrap_or(cfg.main.backend))?;
    if matches!(backend.name(), "fw4" | "fw3") {
        // The fw4 and fw3 guards close the guarded ports on the capture
        // devices, as their zones refuse (same /etc/config/firewall); say
        // where that cannot work.
        let report =
            crate::firewall::fw4_zones::report_at(Path::new("/"), &cfg.main.interfaces, &devices);
        for w in &report.warnings {
            match w.strip_prefix("fw4: ") {
                Some(rest) if backend.name() == "fw3" => warn!("fw3: {rest}"),
                _ => warn!("{w}"),
            }
        }
        backend.set_capture(&devices, report.verdict);
    }
    // SAFETY: geteuid cannot fail.
    let started_as = unsafe { libc::geteuid() };
    // fw3 forwards run iptables (DNAT rules at reload and after a firewall
    // restart), which needs root's lock file.
    let needs_root = (backend.name() == "fw3" && cfg.active_forwards().next().is_some())
        .then_some("the fw3 backend's forwards run iptables, which needs root");
    let become_user = decide_user(started_as, cfg.main.user.as_deref(), needs_root)?;

    // Signals first, so a TERM during start-up is not lost.
    let mut mask = SigSet::empty();
    // SIGCHLD wakes the loop when a command ends (children get a clean mask).
    for s in [
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGCHLD,
    ] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| fail(format!("blocking signals: {}", std::io::Error::from(e))))?;
    // Forked while root, before anything else is open: runs the commands.
    let launcher = if started_as == 0 {
        let setup = crate::launcher::Setup {
            config: opts.config.clone(),
            log_level: opts.log_level,
        };
        let l = Launcher::fork(setup, commands.clone())
            .map_err(|e| fail(format!("privileged launcher: {e}")))?;
        debug!("privileged launcher started (pid {})", l.pid());
        Some(l)
    } else {
        None
    };
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| fail(format!("signalfd: {}", std::io::Error::from(e))))?;

    backend
        .setup(&cfg.guarded_ports())
        .map_err(|e| fail(format!("firewall setup ({}): {e}", backend.name())))?;
    backend
        .setup_forwards(&actions::forward_specs(&cfg))
        .map_err(|e| fail(format!("firewall forwards ({}): {e}", backend.name())))?;

    let control_path = opts
        .control
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let control = ControlSocket::bind(&control_path)
        .map_err(|e| fail(format!("control socket {}: {e}", control_path.display())))?;
    if let Become::User { uid, gid, .. } = become_user {
        hand_over_files(&cfg, &control_path, uid, gid)?;
    }
    let result = serve(
        opts,
        cfg,
        commands,
        &devices,
        backend.as_mut(),
        &signals,
        (become_user, launcher),
        &control,
    );
    if let Err(e) = backend.teardown() {
        warn!("firewall teardown ({}): {e}", backend.name());
    }
    result
}

/// Loads the SPA replay state file (and checks that it can be written) when
/// SPA is on: the file, and the replay guard its content calls for (boot, or
/// now when the history is unknown: see [`Loaded::guard`]).
fn open_replay_file(cfg: &Config) -> Result<Option<(ReplayFile, Millis)>, DaemonError> {
    if cfg.spa_port().is_none() {
        return Ok(None);
    }
    let dir = std::path::Path::new(&cfg.main.state_dir);
    let (mut file, loaded) =
        ReplayFile::load(dir).map_err(|e| fail(format!("SPA state directory: {e}")))?;
    match &loaded {
        Loaded::Missing => info!(
            "spa: no replay state at {}: nothing recorded yet in this boot",
            file.path().display()
        ),
        Loaded::Restored(n) => info!(
            "spa: restored {n} packet(s) (floor {}) from {}",
            file.record().floor,
            file.path().display()
        ),
        Loaded::OtherBoot => info!(
            "spa: replay state at {} is from an earlier boot: ignored",
            file.path().display()
        ),
        Loaded::Bad(msg) => error!(
            "spa: replay state at {} is unreadable or malformed ({msg}): the packets accepted \
             in this boot are unknown, so every SPA packet stamped before now + max_skew \
             ({} s) is refused",
            file.path().display(),
            cfg.main.max_skew.as_secs()
        ),
    }
    let guard = loaded.guard(boot_instant(), Millis::now_monotonic());
    // Written at once: a state directory that cannot be written stops the start,
    // not the first grant.
    file.save()
        .map_err(|e| fail(format!("SPA replay state cannot be written: {e}")))?;
    Ok(Some((file, guard)))
}

/// The monotonic instant of boot (`CLOCK_MONOTONIC` now minus `CLOCK_BOOTTIME` now):
/// the SPA replay guard, since packets accepted before this boot are in no state file.
fn boot_instant() -> Millis {
    // nix builds the timespec (it has private padding on 32-bit musl, time64).
    // CLOCK_BOOTTIME exists since Linux 2.6.39.
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    let since_boot = ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000;
    Millis(Millis::now_monotonic().0.saturating_sub(since_boot))
}

/// A new engine for `cfg`, with the boot as its SPA replay guard.
fn engine_for(cfg: &Config) -> Engine {
    let mut engine = Engine::new(cfg);
    engine.set_replay_guard(Some(boot_instant()));
    engine
}

/// Gives `engine` the state file's replay record and the later of the two guards.
fn restore_replay_file(engine: &mut Engine, file: &ReplayFile, guard: Millis) {
    engine.restore_replay(file.record(), Now::read());
    let later = engine.replay_guard().map_or(guard, |g| g.max(guard));
    engine.set_replay_guard(Some(later));
}

/// What carrying out a decision needs besides the decision.
struct Effects<'b> {
    backend: &'b mut dyn Backend,
    replay: Option<ReplayFile>,
    max_skew: u64,
    log_limit: LogLimit,
    /// Live grants, mirrored for status and for re-applying after a firewall restart.
    grants: GrantTable,
    /// Commands and forwards.
    actions: Actions,
    /// State changes for the peer routers (see [`peer_link`]).
    outbox: peer_link::Outbox,
    /// Open and close hooks of grants.
    hooks: hooks::GrantHooks,
}

/// The short name of what granted: a sequence or a client.
fn origin_name<'a>(by: &Origin<'a>) -> &'a str {
    match *by {
        Origin::Sequence(name) | Origin::Encoded(name) => name,
        Origin::Client { name, .. } | Origin::KnockClient { name, .. } => name,
    }
}

/// Opens the nftables event monitor for backends whose grants a firewall
/// restart can drop; without it grants are still safe, just not re-applied.
fn open_monitor(backend: &dyn Backend) -> Option<Monitor> {
    backend.watched()?;
    match Monitor::open() {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(
                "cannot watch for firewall restarts ({e}): grants will not be re-applied after one"
            );
            None
        }
    }
}

/// Reads the monitor's queued events and says whether grants may have been lost.
/// After postern's own setup (start, reload, resync) the kernel also announces
/// the table and sets it re-declared: pass `own_setup` to count only deletions
/// then, so a resync does not trigger itself.
fn firewall_changed(
    monitor: Option<&Monitor>,
    fx: &Effects<'_>,
    buf: &mut [u8],
    own_setup: bool,
) -> bool {
    let (Some(m), Some((table, sets))) = (monitor, fx.backend.watched()) else {
        return false;
    };
    match m.drain(buf, table, &sets) {
        Ok(change) if own_setup => change.removed,
        Ok(change) => change.needs_resync(),
        Err(e) => {
            warn!("firewall monitor: {e}");
            false
        }
    }
}

/// Re-creates the firewall objects and re-applies every live grant with its
/// remaining time. False if setup failed (e.g. fw4 is still restarting).
fn resync(fx: &mut Effects<'_>, cfg: &Config, bans: &BanTable, now: Millis) -> bool {
    if let Err(e) = fx.backend.setup(&cfg.guarded_ports()) {
        debug!("firewall changed; not ready to re-apply grants yet: {e}");
        return false;
    }
    if let Err(e) = fx.backend.setup_forwards(&actions::forward_specs(cfg)) {
        debug!("firewall changed; not ready to re-apply forwards yet: {e}");
        return false;
    }
    let forwarded = fx.actions.reapply(fx.backend, now);
    if forwarded > 0 {
        info!("firewall was reloaded: re-applied {forwarded} live forward(s)");
    }
    let mut applied = 0;
    for (grant, origin) in fx.grants.to_reapply(now) {
        match fx.backend.grant(&grant) {
            Ok(()) => applied += 1,
            Err(e) => error!(
                "could not re-apply {} for {} ({origin}): {e}",
                grant.port, grant.addr
            ),
        }
    }
    if applied > 0 {
        info!("firewall was reloaded: re-applied {applied} live grant(s)");
    }
    let mut banned = 0;
    for ban in bans.active(now) {
        match fx.backend.ban(ban.net, ban.remaining(now)) {
            Ok(()) => banned += 1,
            Err(e) => error!("could not re-apply the ban of {}: {e}", NetText(ban.net)),
        }
    }
    if banned > 0 {
        info!("firewall was reloaded: re-applied {banned} ban(s)");
    }
    true
}

#[allow(clippy::too_many_arguments)]
fn serve(
    opts: &Options,
    mut cfg: Config,
    commands: Vec<CommandSpec>,
    devices: &[String],
    backend: &mut dyn Backend,
    signals: &SignalFd,
    (become_user, launcher): (Become, Option<Launcher>),
    control: &ControlSocket,
) -> Result<(), DaemonError> {
    let started = Millis::now_monotonic();
    let mut captures = Captures::open(devices, &bpf::build_ranges(&cfg.capture_ranges(), true))?;
    let started_as_root = launcher.is_some();
    let keep = privileges::needed(commands.iter().map(|c| c.user.is_some()), started_as_root);
    let root_command = commands
        .iter()
        .find(|c| c.user.is_none())
        .map(|c| c.name.clone());
    let monitor = open_monitor(backend);
    let mut peers = peer_link::Peers::open(&cfg)?;
    // Every socket is open: from here on only what the loop needs.
    let held = match &become_user {
        Become::User { name, uid, gid } => switch_user(name, *uid, *gid)?,
        Become::Stay => drop_privileges(keep, started_as_root, root_command.as_deref()),
    };
    // SAFETY: geteuid cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    // Opened as the user the daemon now is (the state directory is its own).
    let mut engine = engine_for(&cfg);
    let replay = open_replay_file(&cfg)?.map(|(file, guard)| {
        restore_replay_file(&mut engine, &file, guard);
        file
    });
    let mut fx = Effects {
        backend,
        replay,
        max_skew: cfg.main.max_skew.as_secs(),
        log_limit: LogLimit::default(),
        grants: GrantTable::new(),
        actions: Actions::new(&cfg, commands),
        outbox: peer_link::Outbox::new(peers.enabled()),
        hooks: hooks::GrantHooks::new(&cfg),
    };
    let mut own_networks = OwnNetworks::open();
    own_networks.refresh(&mut engine, fx.backend);
    fx.actions.set_privileges(held, is_root);
    if let Some(l) = launcher {
        fx.actions.set_launcher(l);
    }
    let mut resync_pending = false;
    let mut buf = vec![0u8; FRAME_BUFFER];
    let mut next_tick = Millis::now_monotonic() + TICK;
    let mut pacer = Pacer::new();
    info!(
        "ready: guarding {} on {} (backend {}), {} sequence(s), {}",
        list(&cfg.guarded_ports()),
        devices.join(","),
        fx.backend.name(),
        cfg.active_sequences().count(),
        spa_line(&cfg)
    );
    // Catch up with the live state of the other router(s).
    peers.request_resync();

    // Built once (again only when a capture is reopened): no allocation per
    // wake-up. Order: signals, control socket, firewall monitor (if any),
    // then one per capture socket.
    let first_capture = if monitor.is_some() { 3 } else { 2 };
    let mut fds = poll_set(signals, control, monitor.as_ref(), &captures);
    // Capture devices appeared, disappeared or were re-created, or a socket
    // was parked: the poll set is rebuilt before the next poll.
    let mut rebuild = false;
    let readable = |f: &PollFd<'_>| {
        f.revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
    };
    // A configuration to reload: read here (no launcher) or by the
    // launcher (with the number of its read).
    let mut loaded: Option<(LoadedConfig, Option<u32>)> = None;
    // Why the last reload was refused (None once one succeeds): status shows it.
    let mut reload_error: Option<String> = None;

    loop {
        let now = Millis::now_monotonic();
        if now >= next_tick {
            engine.on_tick(now);
            rebuild |= captures.tick();
            fx.grants.expire(now);
            fx.actions.live.expire(now);
            fx.actions.runner.on_wake(std::time::Instant::now());
            if resync_pending {
                resync_pending = !resync(&mut fx, &cfg, engine.bans(), now)
                    || firewall_changed(monitor.as_ref(), &fx, &mut buf, true);
            }
            if own_networks.due(now, &mut buf) {
                own_networks.refresh(&mut engine, fx.backend);
            }
            peers.on_tick(now);
            next_tick = now + TICK;
        }
        fx.hooks.expire(&mut fx.actions, now);
        if rebuild {
            drop(fds);
            captures.update(|| bpf::build_ranges(&cfg.capture_ranges(), true));
            fds = poll_set(signals, control, monitor.as_ref(), &captures);
            rebuild = false;
        }
        let wake = fx
            .hooks
            .next_expiry()
            .map_or(next_tick, |at| at.min(next_tick));
        let wait = wake.since(now).min(u64::from(u16::MAX)) as u16;
        // The commands' descriptors (launcher socket, output pipes) go
        // after the fixed set for this poll only: they change as commands
        // start and end. Within the capacity reserved: no allocation.
        let fixed = fds.len();
        // The peer socket (if any) goes first after the fixed set.
        let peer_fd = peers.raw_fd().map(|fd| {
            // SAFETY: the socket stays open until the set is cut back below.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
            fixed
        });
        let first_command = fds.len();
        fx.actions.each_poll_fd(|fd| {
            // SAFETY: the fd stays open until the set is cut back below,
            // before anything that could close it runs.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        });
        let polled = poll(&mut fds, PollTimeout::from(wait));
        let peers_ready = peer_fd.is_some_and(|i| readable(&fds[i]));
        let commands_ready = fds[first_command..]
            .iter()
            .any(|f| f.revents().is_some_and(|r| !r.is_empty()));
        fds.truncate(fixed);
        match polled {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                fx.actions.runner.shutdown();
                return Err(fail(format!("poll: {}", std::io::Error::from(e))));
            }
        }
        if commands_ready {
            match fx.actions.on_ready(std::time::Instant::now()) {
                Some(Reloaded::Text(bytes, seq)) => {
                    loaded = Some((config_from(opts, &bytes), Some(seq)))
                }
                Some(Reloaded::Refused(why)) => {
                    error!("reload refused ({why}); the running configuration stays");
                    reload_error = Some(why);
                }
                None => {}
            }
        }
        let mut drained = 0;
        for (i, capture) in captures.polled().enumerate() {
            let Some(events) = fds[first_capture + i].revents() else {
                continue;
            };
            if events.is_empty() {
                continue;
            }
            let read = drain(capture, &mut buf, &mut engine, &mut fx);
            drained += read;
            // A device that went down leaves an error that wakes every poll
            // until taken; a socket that wakes with nothing to read is parked.
            rebuild |= captures.after_wake(capture, read, events.contains(PollFlags::POLLERR));
        }
        if drained > 0 {
            // Under a flood, let the next poll find a batch (see capture::pacing).
            if let Some(pause) = pacer.after_drain(Millis::now_monotonic(), drained) {
                std::thread::sleep(pause);
            }
        }
        if peers_ready {
            peers.receive(&mut engine, &mut fx, &cfg);
        }
        if monitor.is_some()
            && readable(&fds[2])
            && firewall_changed(monitor.as_ref(), &fx, &mut buf, false)
        {
            // Right away if the objects are back, else on the next ticks.
            resync_pending = !resync(&mut fx, &cfg, engine.bans(), Millis::now_monotonic())
                || firewall_changed(monitor.as_ref(), &fx, &mut buf, true);
        }
        if readable(&fds[1]) {
            control.serve_pending(|request| {
                let now = Millis::now_monotonic();
                match request {
                    Request::Revoke(addr, port) => {
                        let answer = control_requests::revoke(&mut fx, now, addr, port);
                        if answer.starts_with("ok") {
                            fx.outbox.push(crate::peer::Item::Close { addr, port });
                        }
                        return answer;
                    }
                    Request::Unban(net) => {
                        let answer = control_requests::unban(&mut engine, fx.backend, now, net);
                        if answer.starts_with("ok") {
                            fx.outbox.push(crate::peer::Item::Unban { net });
                        }
                        return answer;
                    }
                    Request::PeerSync if peers.enabled() => {
                        peers.request_resync();
                        return "ok: asked the peer router(s) for the live state\n".to_string();
                    }
                    Request::PeerSync => {
                        return "error: no config peer: nothing to sync\n".to_string();
                    }
                    Request::Json | Request::Text => {}
                }
                fx.grants.expire(now);
                let mut snapshot = Snapshot::collect(
                    now,
                    started,
                    fx.backend.name(),
                    devices,
                    engine.knocks_in_progress(),
                    &fx.grants,
                    &engine.counters(),
                )
                .with_bans(now, engine.bans())
                .with_forwards(now, &fx.actions.live)
                .with_commands(fx.actions.command_views(std::time::Instant::now()))
                .with_reload_error(reload_error.clone())
                .with_peers(peers.views(now));
                snapshot.counters.insert(0, captures.counters());
                snapshot.counters.extend(peers.counters());
                match request {
                    Request::Text => snapshot.to_text(),
                    _ => snapshot.to_json(),
                }
            });
        }
        let signal_ready = readable(&fds[0]);

        if signal_ready {
            while let Ok(Some(sig)) = signals.read_signal() {
                match Signal::try_from(sig.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => fx.actions.runner.on_wake(std::time::Instant::now()),
                    Ok(Signal::SIGHUP) => {
                        info!("reloading {}", opts.config.display());
                        match fx.actions.launcher() {
                            // It reads the root-owned file; its bytes come back as an event.
                            Some(l) => {
                                if let Err(e) = l.reload() {
                                    error!("reload refused: privileged launcher: {e}");
                                    reload_error = Some(format!("privileged launcher: {e}"));
                                }
                            }
                            None => loaded = Some((load_config(opts), None)),
                        }
                    }
                    Ok(s) => {
                        info!("{s}: stopping");
                        fx.hooks.stopping();
                        fx.actions.runner.shutdown();
                        return Ok(());
                    }
                    Err(_) => {}
                }
            }
        }
        if let Some((result, seq)) = loaded.take() {
            let reloaded = reload(result, opts, &cfg, fx.backend, &captures);
            reload_error = reloaded.as_ref().err().cloned();
            if let Ok((new, commands)) = reloaded {
                // on_close of withdrawn grants runs as configured when they opened.
                fx.hooks
                    .reload(&mut fx.actions, fx.backend, &mut fx.grants, &new);
                fx.actions.adopt(seq);
                fx.actions.reload(fx.backend, &new, commands);
                let mut next = engine_for(&new);
                next.adopt_replay(&engine, Now::read());
                let old = core::mem::replace(&mut engine, next);
                engine.adopt_bans(&old);
                lift_dropped_bans(fx.backend, &old, &engine);
                own_networks.refresh(&mut engine, fx.backend);
                if fx.replay.is_none() {
                    // SPA was off and is now on: the file's record
                    // goes into the engine before any packet.
                    match open_replay_file(&new) {
                        Ok(Some((file, guard))) => {
                            restore_replay_file(&mut engine, &file, guard);
                            fx.replay = Some(file);
                        }
                        Ok(None) => {}
                        Err(e) => error!("{e}: SPA requests will be refused"),
                    }
                }
                fx.max_skew = new.main.max_skew.as_secs();
                peers.reload(&new);
                cfg = new;
                // The reload's own setup announced our objects again.
                resync_pending |= firewall_changed(monitor.as_ref(), &fx, &mut buf, true);
            }
        }
        peers.send(&mut fx.outbox);
    }
}

/// The user to run as (see [`privileges::become_user`]); logs its warning.
fn decide_user(
    started_as: u32,
    configured: Option<&str>,
    needs_root: Option<&str>,
) -> Result<Become, DaemonError> {
    let lookup = |name: &str| crate::runner::resolve_user(name).map(|u| (u.uid, u.gid));
    let (become_user, warning) =
        privileges::become_user(started_as, configured, needs_root, lookup).map_err(fail)?;
    if let Some(w) = warning {
        warn!("privileges: {w}");
    }
    Ok(become_user)
}

/// Gives the user the daemon becomes what it writes after the switch: the
/// state directory (created if missing; owned by the user, mode 0700, never
/// through a symlink) and the control socket (mode 0600 stays).
fn hand_over_files(
    cfg: &Config,
    control: &std::path::Path,
    uid: u32,
    gid: u32,
) -> Result<(), DaemonError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::path::Path::new(&cfg.main.state_dir);
    let state = |e: std::io::Error| fail(format!("state directory {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(state)?;
    let meta = std::fs::symlink_metadata(dir).map_err(state)?;
    if !meta.is_dir() {
        return Err(fail(format!(
            "state directory {}: not a directory (a symlink?)",
            dir.display()
        )));
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(state)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(state)?;
    // A replay state file a root daemon left: the user replaces it by
    // rename, so only the directory matters; hand it over all the same.
    let file = dir.join(crate::replay_file::FILE_NAME);
    if std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
        std::os::unix::fs::lchown(&file, Some(uid), Some(gid)).map_err(state)?;
    }
    std::os::unix::fs::lchown(control, Some(uid), Some(gid))
        .map_err(|e| fail(format!("control socket {}: {e}", control.display())))?;
    Ok(())
}

/// Switches a daemon started as root to `name` (`uid`/`gid`), keeping only
/// `CAP_NET_RAW` and `CAP_NET_ADMIN` (the latter also ambient, for the `nft`
/// tool). A failure stops the start: a daemon half switched is not run.
fn switch_user(name: &str, uid: u32, gid: u32) -> Result<Keep, DaemonError> {
    let d = privileges::switch_user(
        uid,
        gid,
        privileges::NETWORK,
        privileges::ambient_for(false),
    )
    .map_err(|e| fail(format!("privileges: cannot switch to user {name}: {e}")))?;
    info!(
        "privileges: running as user {name} (uid {uid}, gid {gid}), kept only {} (CapEff {:#x}); no new privileges",
        privileges::names(d.effective),
        d.effective
    );
    if d.effective & privileges::NETWORK != privileges::NETWORK {
        warn!(
            "privileges: without {}: grants and capture may fail",
            privileges::names(privileges::NETWORK & !d.effective)
        );
    }
    Ok(Keep::Only(d.permitted))
}

/// Keeps only the capabilities `keep` names (see [`crate::privileges`]) and
/// logs the result; returns what is held now. A failure is logged, not
/// fatal: a daemon that keeps too much still guards, one that stops does not.
/// `is_root`: the daemon runs as uid 0 (it keeps no ambient set: uid 0's
/// `nft` gets the bounding set).
fn drop_privileges(keep: Keep, is_root: bool, root_command: Option<&str>) -> Keep {
    let Keep::Only(mask) = keep else {
        info!(
            "privileges: all kept: command '{}' runs as root (give it option user to let postern keep only net_raw,net_admin)",
            root_command.unwrap_or("?")
        );
        return Keep::Everything;
    };
    match privileges::drop_to(mask, privileges::ambient_for(is_root)) {
        Ok(d) => {
            info!(
                "privileges: kept only {} (CapEff {:#x}); no new privileges",
                privileges::names(d.effective),
                d.effective
            );
            if d.ambient != 0 {
                debug!(
                    "privileges: ambient {} (for the nft tool)",
                    privileges::names(d.ambient)
                );
            }
            if !d.bounding_narrowed {
                debug!("privileges: bounding set left as it was (no CAP_SETPCAP)");
            }
            if d.effective & privileges::NETWORK != privileges::NETWORK {
                warn!(
                    "privileges: started without {}: grants and capture may fail",
                    privileges::names(privileges::NETWORK & !d.effective)
                );
            }
            Keep::Only(d.permitted)
        }
        Err(e) => {
            warn!(
                "privileges: could not drop capabilities ({e}): running with what it started with"
            );
            Keep::Everything
        }
    }
}

/// The descriptors polled: signals, control socket, monitor (if any), the
/// captures' [`Captures::polled`] sockets.
fn poll_set<'a>(
    signals: &'a SignalFd,
    control: &'a ControlSocket,
    monitor: Option<&'a Monitor>,
    captures: &'a Captures,
) -> Vec<PollFd<'a>> {
    // Room for the commands' descriptors too (see the loop).
    let mut fds: Vec<PollFd<'a>> =
        Vec::with_capacity(captures.polled().count() + 4 + crate::runner::MAX_RUNNING);
    fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
    fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
    if let Some(m) = monitor {
        fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
    }
    for c in captures.polled() {
        fds.push(PollFd::new(c.fd(), PollFlags::POLLIN));
    }
    fds
}

/// Reads every queued frame of one socket (bounded, so one busy socket cannot
/// starve the others); returns how many were read.
fn drain(capture: &Capture, buf: &mut [u8], engine: &mut Engine, fx: &mut Effects<'_>) -> usize {
    let mut n = 0;
    for _ in 0..256 {
        match capture.recv(buf) {
            Ok(Some(frame)) => {
                n += 1;
                if frame.outgoing {
                    continue;
                }
                let now = Now::read();
                engine.on_frame(now, frame.data, frame.checksums, &mut |d| apply(fx, now, d));
            }
            Ok(None) => return n,
            // The device went down (recvmsg takes the error; the tick logs it).
            Err(e) if e.kind() == std::io::ErrorKind::NetworkDown => {
                debug!("capture {}: {e}", capture.ifname());
                return n;
            }
            Err(e) => {
                warn!("capture {}: {e}", capture.ifname());
                return n;
            }
        }
    }
    n
}

/// Carries one decision out and logs it. An SPA decision is first recorded in
/// the replay state file; if that fails nothing is granted (a grant that could
/// be replayed after a restart is worse than none). An open is all or nothing:
/// if the backend fails on one port, the ports granted before it are revoked.
fn apply(fx: &mut Effects<'_>, now: Now, decision: Decision<'_>) {
    let (record, by) = match decision {
        Decision::Open { record, by, .. }
        | Decision::Close { record, by, .. }
        | Decision::Run { record, by, .. }
        | Decision::Forward { record, by, .. } => (record, by),
        Decision::Refuse { src, refused } => {
            record_refused(fx, now, &refused);
            return log_refusal(fx, now, src, &refused);
        }
        Decision::Ban { net, duration } => {
            fx.outbox.push(crate::peer::Item::Ban {
                net,
                remaining: duration,
            });
            return ban(fx, net, duration);
        }
    };
    if let Some(entry) = record {
        let client = Some(client_of(&by).0);
        let saved = match fx.replay.as_mut() {
            Some(file) => file.record_packet(client, entry, now.unix, fx.max_skew),
            None => Err(std::io::Error::other("no replay state file")),
        };
        fx.outbox.push(peer_link::replay_item(client, entry));
        if let Err(e) = saved {
            error!("spa: not acting on a request: cannot record it against replay: {e}");
            return;
        }
    }
    match decision {
        Decision::Open {
            addr,
            by,
            ports,
            duration,
            ..
        } => {
            for (i, &port) in ports.iter().enumerate() {
                let grant = Grant {
                    addr,
                    port,
                    timeout: duration,
                };
                if let Err(e) = fx.backend.grant(&grant) {
                    error!("could not open {port} for {addr} ({by}): {e}");
                    for &done in &ports[..i] {
                        match fx.backend.revoke(addr, done) {
                            Ok(()) => warn!(
                                "closed {done} for {addr} again: the request is all or nothing"
                            ),
                            Err(e) => error!("could not close {done} for {addr}: {e}"),
                        }
                    }
                    return;
                }
            }
            for &port in ports {
                let grant = Grant {
                    addr,
                    port,
                    timeout: duration,
                };
                fx.grants.record(now.mono, &grant, origin_name(&by));
                fx.outbox
                    .push(peer_link::grant_item(&grant, origin_name(&by)));
                info!(
                    "opened {port} for {addr} for {} s ({by})",
                    duration.as_secs()
                );
            }
            let opened = crate::grant_hooks::Opened {
                addr,
                origin: origin_name(&by),
                ports,
                duration,
            };
            fx.hooks.opened(&mut fx.actions, now.mono, opened);
        }
        Decision::Close {
            addr, by, ports, ..
        } => {
            for &port in ports {
                fx.grants.remove(addr, port);
                fx.outbox.push(crate::peer::Item::Close { addr, port });
                match fx.backend.revoke(addr, port) {
                    Ok(()) => info!("closed {port} for {addr} ({by})"),
                    Err(e) => error!("could not close {port} for {addr} ({by}): {e}"),
                }
            }
            fx.hooks.closed(&mut fx.actions, addr, ports);
        }
        Decision::Run { command, by, .. } => {
            let (client, from) = client_of(&by);
            fx.actions.run(command, client, from);
        }
        Decision::Forward {
            addr,
            forward,
            by,
            duration,
            ..
        } => {
            let (client, _) = client_of(&by);
            fx.actions
                .forward(fx.backend, now.mono, addr, forward, client, duration);
            if let Some(name) = fx.actions.forward_name(forward) {
                let item = peer_link::forward_item(addr, name, client, duration);
                fx.outbox.push(item);
            }
        }
        Decision::Refuse { .. } | Decision::Ban { .. } => {}
    }
}

/// The client name and packet source of an SPA decision.
fn client_of<'a>(by: &Origin<'a>) -> (&'a str, core::net::IpAddr) {
    match *by {
        Origin::Client { name, from } | Origin::KnockClient { name, from } => (name, from),
        Origin::Sequence(name) | Origin::Encoded(name) => (
            name,
            core::net::IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
        ),
    }
}

/// The router's own networks, which bans spare (see [`crate::local_networks`]):
/// learnt at start, at reload, when the kernel announces an address or route
/// change (checked on the tick), and every [`OWN_NETWORKS_REFRESH`] anyway.
struct OwnNetworks {
    watch: Option<Watch>,
    next: Millis,
}

/// Longest time between two refreshes of the router's own networks.
const OWN_NETWORKS_REFRESH: Duration = Duration::from_secs(60);

impl OwnNetworks {
    fn open() -> OwnNetworks {
        let watch = Watch::open()
            .map_err(|e| {
                warn!("cannot watch address and route changes ({e}): the router's own networks are learnt again every {} s", OWN_NETWORKS_REFRESH.as_secs());
            })
            .ok();
        OwnNetworks {
            watch,
            next: Millis::now_monotonic(),
        }
    }

    /// True when a change was announced or the periodic refresh is due.
    fn due(&self, now: Millis, buf: &mut [u8]) -> bool {
        let changed = self.watch.as_ref().is_some_and(|w| w.changed(buf));
        changed || now >= self.next
    }

    /// Learns the networks again and hands them to the engine; lifts the
    /// bans they now cover. On failure the previous networks stay.
    fn refresh(&mut self, engine: &mut Engine, backend: &mut dyn Backend) {
        let now = Millis::now_monotonic();
        self.next = now + OWN_NETWORKS_REFRESH;
        let found = match local_networks::learn() {
            Ok(found) => found,
            Err(e) => {
                warn!("could not learn the router's own networks: {e}; keeping the previous ones");
                return;
            }
        };
        let (protected, dropped) = found.protected();
        if protected == *engine.bans().protected() {
            return;
        }
        if dropped > 0 {
            warn!(
                "the router has more own networks than postern tracks: {dropped} not protected from bans"
            );
        }
        let list: Vec<String> = protected.as_slice().iter().map(|n| n.to_string()).collect();
        info!(
            "never banned (own addresses, subnets, gateways): {}",
            list.join(" ")
        );
        engine.set_protected(now, protected, |net| {
            lift_ban(backend, net, "it is the router's own network or gateway")
        });
    }
}

/// After a reload: lifts the kernel bans the new configuration no longer
/// keeps (the network is now trusted, bans are off, or `ban_ipv6_prefix` changed).
fn lift_dropped_bans(backend: &mut dyn Backend, old: &Engine, new: &Engine) {
    let now = Millis::now_monotonic();
    for ban in old.bans().active(now) {
        if new.bans().banned_until(now, ban.net).is_none() {
            lift_ban(backend, ban.net, "no longer banned by the configuration");
        }
    }
}

/// Lifts the kernel ban of `net` now, and logs `why`.
fn lift_ban(backend: &mut dyn Backend, net: Cidr, why: &str) {
    match backend.unban(net) {
        Ok(()) => info!("lifted the ban of {}: {why}", NetText(net)),
        Err(e) => error!("could not lift the ban of {}: {e}", NetText(net)),
    }
}

/// Bans a network in the kernel and logs it.
fn ban(fx: &mut Effects<'_>, net: Cidr, duration: Duration) {
    match fx.backend.ban(net, duration) {
        Ok(()) => warn!(
            "banned {} for {} s: too many failed knocks or SPA packets",
            NetText(net),
            duration.as_secs()
        ),
        Err(e) => error!("could not ban {}: {e}", NetText(net)),
    }
}

/// Persists the nonce of an authenticated packet the engine refused after
/// recording it (a port, address or command not allowed), so that a restart
/// with a configuration that would allow it does not accept it either.
fn record_refused(fx: &mut Effects<'_>, now: Now, r: &Refused<'_>) {
    let Some(entry) = r.record else {
        return;
    };
    fx.outbox.push(peer_link::replay_item(r.client, entry));
    let Some(file) = fx.replay.as_mut() else {
        return;
    };
    if let Err(e) = file.record_packet(r.client, entry, now.unix, fx.max_skew) {
        error!("spa: cannot record a refused packet against replay: {e}");
    }
}

/// Authenticated refusals are warnings (rate-limited); junk is only debug output
/// (it is counted either way).
fn log_refusal(fx: &mut Effects<'_>, now: Now, src: core::net::IpAddr, r: &Refused<'_>) {
    let Some(client) = r.client else {
        debug!("spa: refused packet from {src}: {r} ({})", r.reason.name());
        return;
    };
    if let Some(suppressed) = fx.log_limit.admit(now.mono) {
        if suppressed > 0 {
            warn!("spa: {suppressed} more refusal(s) were not logged");
        }
        warn!(
            "spa: refused packet from {src} (client {client}): {r} ({})",
            r.reason.name()
        );
    }
}

/// At most [`REFUSAL_LOGS_PER_SECOND`] lines per second.
#[derive(Default)]
struct LogLimit {
    second: u64,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    /// `Some(lines suppressed since the last admitted one)` when this line may be logged.
    fn admit(&mut self, now: Millis) -> Option<u64> {
        let s = now.0 / 1000;
        if s != self.second {
            self.second = s;
            self.logged = 0;
        }
        if self.logged >= REFUSAL_LOGS_PER_SECOND {
            self.suppressed += 1;
            return None;
        }
        self.logged += 1;
        Some(core::mem::take(&mut self.suppressed))
    }
}

fn spa_line(cfg: &Config) -> String {
    match cfg.spa_port() {
        Some(p) => format!(
            "spa on udp:{p} for {} client(s)",
            cfg.active_clients().count()
        ),
        None => "spa off (no client)".to_string(),
    }
}

/// SIGHUP: a new config (`loaded`) that parses and sets up replaces the
/// old; otherwise the old stays, and the error says why (one line each).
fn reload(
    loaded: LoadedConfig,
    opts: &Options,
    old: &Config,
    backend: &mut dyn Backend,
    captures: &Captures,
) -> Result<(Config, Vec<CommandSpec>), String> {
    let (new, commands) = match loaded {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs {
                error!("{e}");
            }
            error!(
                "reload refused ({} error(s)); the running configuration stays",
                errs.len()
            );
            let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            return Err(lines.join("\n"));
        }
    };
    if new.main.backend != old.main.backend && opts.backend.is_none() {
        warn!("option backend changed: takes effect at the next restart");
    }
    if opts.devices.is_empty() && new.main.devices != old.main.devices {
        warn!("list device changed: takes effect at the next restart");
    }
    if let Err(e) = backend.setup(&new.guarded_ports()) {
        error!("reload refused: firewall setup failed: {e}; the running configuration stays");
        return Err(format!("firewall setup failed: {e}"));
    }
    if let Err(e) = backend.setup_forwards(&actions::forward_specs(&new)) {
        error!("reload refused: firewall forwards failed: {e}; the running configuration stays");
        // The guard of the old configuration again.
        if let Err(e) = backend.setup(&old.guarded_ports()) {
            error!("could not restore the firewall setup of the running configuration: {e}");
        }
        return Err(format!("firewall forwards failed: {e}"));
    }
    captures.set_filter(&bpf::build_ranges(&new.capture_ranges(), true));
    log::set_max_level(opts.log_level.unwrap_or(new.main.log_level));
    info!(
        "reloaded: guarding {}, {} sequence(s), {}",
        list(&new.guarded_ports()),
        new.active_sequences().count(),
        spa_line(&new)
    );
    Ok((new, commands))
}

fn list(ports: &[crate::port::PortSpec]) -> String {
    if ports.is_empty() {
        return "nothing".to_string();
    }
    ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
