//! The daemon's side of open and close hooks: feeds grant events to the
//! [`HookTable`] and runs the hooks it hands back through [`Actions`] (the
//! runner, or the privileged launcher). Also withdraws, at a reload, the
//! grants of sequences and clients the new configuration no longer has.

use core::net::IpAddr;

use log::{error, info, warn};

use super::actions::Actions;
use crate::config::{Config, Hooks};
use crate::firewall::Backend;
use crate::grant_hooks::{HookTable, Opened};
use crate::grants::{cut, GrantTable};
use crate::port::PortSpec;
use crate::time::Millis;

/// The hooked grants and the configured hooks.
#[derive(Default)]
pub(super) struct GrantHooks {
    table: HookTable,
    hooks: Vec<Hooks>,
    /// When [`GrantHooks::expire`] next has work (cached: checked on every wake-up).
    next: Option<Millis>,
}

impl GrantHooks {
    /// With the hooks of `cfg`.
    pub(super) fn new(cfg: &Config) -> GrantHooks {
        GrantHooks {
            hooks: cfg.hooks.clone(),
            ..GrantHooks::default()
        }
    }

    /// A grant was made: runs `on_open` for a new hooked grant.
    pub(super) fn opened(&mut self, actions: &mut Actions, now: Millis, opened: Opened<'_>) {
        let hooks = Hooks::of(&self.hooks, opened.origin);
        self.table
            .open(now, opened, hooks, |run| actions.hook(&run));
        self.next = self.table.next_expiry();
    }

    /// `addr`'s grants on `ports` were closed: runs `on_close` for hooked
    /// grants left without a port.
    pub(super) fn closed(&mut self, actions: &mut Actions, addr: IpAddr, ports: &[PortSpec]) {
        self.table.close(addr, ports, |run| actions.hook(&run));
        self.next = self.table.next_expiry();
    }

    /// When a hooked grant expires next (the loop's poll wakes up for it).
    pub(super) fn next_expiry(&self) -> Option<Millis> {
        self.next
    }

    /// Runs `on_close` for the hooked grants whose time is up at `now`.
    pub(super) fn expire(&mut self, actions: &mut Actions, now: Millis) {
        if self.next.is_some_and(|at| at <= now) {
            self.table.expire(now, |run| actions.hook(&run));
            self.next = self.table.next_expiry();
        }
    }

    /// A reload to `new` was accepted (before the commands switch to it):
    /// grants of sequences and clients that `new` no longer has enabled
    /// are revoked, and hooked ones run their `on_close` (as configured
    /// when they opened). The hooks of `new` apply from now on.
    pub(super) fn reload(
        &mut self,
        actions: &mut Actions,
        backend: &mut dyn Backend,
        grants: &mut GrantTable,
        new: &Config,
    ) {
        let kept = |origin: &str| granting_origins(new).any(|o| cut(o) == origin);
        for g in grants.take_unless(kept) {
            match backend.revoke(g.addr, g.port) {
                Ok(()) => info!(
                    "closed {} for {}: {} was removed by the reload",
                    g.port, g.addr, g.origin
                ),
                Err(e) => error!("could not close {} for {}: {e}", g.port, g.addr),
            }
        }
        self.table.withdraw(kept, |run| actions.hook(&run));
        self.next = self.table.next_expiry();
        self.hooks = new.hooks.clone();
    }

    /// The daemon stops: the kernel keeps live grants until their timeout,
    /// but nobody will run their `on_close`; says so for each.
    pub(super) fn stopping(&self) {
        for g in self.table.live() {
            if let Some(command) = &g.on_close {
                warn!(
                    "stopping with a live grant for {} ({}): its on_close {command} will not run",
                    g.addr, g.origin
                );
            }
        }
    }
}

/// The names of what may have granted: enabled sequences (static and
/// time-derived), encoded profiles and clients.
fn granting_origins(cfg: &Config) -> impl Iterator<Item = &str> {
    cfg.active_sequences()
        .map(|s| s.name.as_str())
        .chain(cfg.active_totp().map(|t| t.name.as_str()))
        .chain(cfg.active_encoded().map(|e| e.name.as_str()))
        .chain(cfg.active_clients().map(|c| c.name.as_str()))
}
