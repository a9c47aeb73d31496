//! The daemon: one thread, one `poll` loop over the capture sockets and a signalfd.
//!
//! Owns the process-level I/O: reading the config file, opening capture
//! sockets, driving the firewall backend, reading the clock and signals
//! (HUP reloads, TERM/INT stop). All decisions are the [`Engine`]'s.

use core::fmt;
use core::time::Duration;
use std::os::fd::AsFd;
use std::path::PathBuf;

use log::{error, info, warn};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::capture::{bpf, Capture, Pacer};
use crate::config::{self, BackendKind, Config};
use crate::engine::{Decision, Engine};
use crate::firewall::dry_run::DryRunBackend;
use crate::firewall::nft::NftBackend;
use crate::firewall::{Backend, Grant};
use crate::time::Millis;

/// How often the engine's housekeeping runs.
const TICK: Duration = Duration::from_secs(1);
/// Largest frame read (IPv6 jumbograms aside, nothing bigger reaches us).
const FRAME_BUFFER: usize = 65_536;

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
/// `fw4` is installed, else postern's own nftables table.
pub fn make_backend(kind: BackendKind) -> Result<Box<dyn Backend>, DaemonError> {
    let kind = match kind {
        BackendKind::Auto if fw4_installed() => BackendKind::Fw4,
        BackendKind::Auto => BackendKind::Nft,
        other => other,
    };
    Ok(match kind {
        BackendKind::Nft | BackendKind::Auto => Box::new(NftBackend::standalone()),
        BackendKind::Fw4 => Box::new(NftBackend::fw4()),
        BackendKind::DryRun => Box::new(DryRunBackend::new()),
        BackendKind::Fw3 => {
            return Err(fail(
                "backend fw3 (iptables + ipset) is not available in this version; use fw4, nft or dry-run",
            ))
        }
    })
}

fn fw4_installed() -> bool {
    ["/sbin/fw4", "/usr/sbin/fw4"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
}

/// Loads the config, printing every error.
fn load_config(opts: &Options) -> Result<Config, Vec<config::ConfigError>> {
    config::load(&opts.config)
}

/// Runs the daemon in the foreground until TERM or INT.
pub fn run(opts: &Options) -> Result<(), DaemonError> {
    let cfg = load_config(opts).map_err(|errs| {
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

    // Signals first, so a TERM during start-up is not lost.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| fail(format!("blocking signals: {e}")))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| fail(format!("signalfd: {e}")))?;

    let mut backend = make_backend(opts.backend.unwrap_or(cfg.main.backend))?;
    backend
        .setup(&cfg.guarded_ports())
        .map_err(|e| fail(format!("firewall setup ({}): {e}", backend.name())))?;

    let result = serve(opts, cfg, &devices, backend.as_mut(), &signals);
    if let Err(e) = backend.teardown() {
        warn!("firewall teardown ({}): {e}", backend.name());
    }
    result
}

/// Opens one capture socket per device with the config's filter.
fn open_captures(devices: &[String], cfg: &Config) -> Result<Vec<Capture>, DaemonError> {
    let program = bpf::build(&cfg.knock_ports(), true);
    devices
        .iter()
        .map(|d| Capture::open(d, &program).map_err(|e| fail(format!("capture on {d}: {e}"))))
        .collect()
}

fn serve(
    opts: &Options,
    mut cfg: Config,
    devices: &[String],
    backend: &mut dyn Backend,
    signals: &SignalFd,
) -> Result<(), DaemonError> {
    let captures = open_captures(devices, &cfg)?;
    let mut engine = Engine::new(&cfg);
    let mut buf = vec![0u8; FRAME_BUFFER];
    let mut next_tick = Millis::now_monotonic() + TICK;
    let mut pacer = Pacer::new();
    info!(
        "ready: guarding {} on {} (backend {}), {} sequence(s)",
        list(&cfg.guarded_ports()),
        devices.join(","),
        backend.name(),
        cfg.active_sequences().count()
    );

    // Built once: no allocation per wake-up.
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(captures.len() + 1);
    fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
    for c in &captures {
        fds.push(PollFd::new(c.fd(), PollFlags::POLLIN));
    }
    let readable = |f: &PollFd<'_>| {
        f.revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
    };

    loop {
        let now = Millis::now_monotonic();
        if now >= next_tick {
            engine.on_tick(now);
            next_tick = now + TICK;
        }
        let wait = next_tick.since(now).min(u64::from(u16::MAX)) as u16;
        match poll(&mut fds, PollTimeout::from(wait)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(fail(format!("poll: {e}"))),
        }
        let mut drained = 0;
        for (i, capture) in captures.iter().enumerate() {
            if readable(&fds[i + 1]) {
                drained += drain(capture, &mut buf, &mut engine, backend);
            }
        }
        if drained > 0 {
            // Under a flood, let the next poll find a batch (see capture::pacing).
            if let Some(pause) = pacer.after_drain(Millis::now_monotonic(), drained) {
                std::thread::sleep(pause);
            }
        }
        let signal_ready = readable(&fds[0]);

        if signal_ready {
            while let Ok(Some(sig)) = signals.read_signal() {
                match Signal::try_from(sig.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => {
                        if let Some(new) = reload(opts, &cfg, backend, &captures) {
                            engine = Engine::new(&new);
                            cfg = new;
                        }
                    }
                    Ok(s) => {
                        info!("{s}: stopping");
                        return Ok(());
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// Reads every queued frame of one socket (bounded, so one busy socket cannot
/// starve the others); returns how many were read.
fn drain(
    capture: &Capture,
    buf: &mut [u8],
    engine: &mut Engine,
    backend: &mut dyn Backend,
) -> usize {
    let mut n = 0;
    for _ in 0..256 {
        match capture.recv(buf) {
            Ok(Some(frame)) => {
                n += 1;
                if frame.outgoing {
                    continue;
                }
                let now = Millis::now_monotonic();
                engine.on_frame(now, frame.data, frame.checksums, &mut |d| apply(backend, d));
            }
            Ok(None) => return n,
            Err(e) => {
                warn!("capture {}: {e}", capture.ifname());
                return n;
            }
        }
    }
    n
}

/// Carries one decision out and logs it.
fn apply(backend: &mut dyn Backend, decision: Decision<'_>) {
    match decision {
        Decision::Open {
            src,
            sequence,
            ports,
            duration,
        } => {
            for &port in ports {
                let grant = Grant {
                    addr: src,
                    port,
                    timeout: duration,
                };
                match backend.grant(&grant) {
                    Ok(()) => info!(
                        "opened {port} for {src} for {} s (sequence {sequence})",
                        duration.as_secs()
                    ),
                    Err(e) => error!("could not open {port} for {src} (sequence {sequence}): {e}"),
                }
            }
        }
        Decision::Close {
            src,
            sequence,
            ports,
        } => {
            for &port in ports {
                match backend.revoke(src, port) {
                    Ok(()) => info!("closed {port} for {src} (sequence {sequence})"),
                    Err(e) => error!("could not close {port} for {src} (sequence {sequence}): {e}"),
                }
            }
        }
    }
}

/// SIGHUP: a new config that parses and sets up replaces the old; otherwise the old stays.
fn reload(
    opts: &Options,
    old: &Config,
    backend: &mut dyn Backend,
    captures: &[Capture],
) -> Option<Config> {
    info!("reloading {}", opts.config.display());
    let new = match load_config(opts) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs {
                error!("{e}");
            }
            error!(
                "reload refused ({} error(s)); the running configuration stays",
                errs.len()
            );
            return None;
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
        return None;
    }
    let program = bpf::build(&new.knock_ports(), true);
    for c in captures {
        if let Err(e) = c.set_filter(&program) {
            error!("capture {}: new filter not attached: {e}", c.ifname());
        }
    }
    log::set_max_level(opts.log_level.unwrap_or(new.main.log_level));
    info!(
        "reloaded: guarding {}, {} sequence(s)",
        list(&new.guarded_ports()),
        new.active_sequences().count()
    );
    Some(new)
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
