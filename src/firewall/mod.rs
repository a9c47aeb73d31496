//! Firewall backends: where a [`crate::engine::Decision`] becomes kernel state.
//!
//! A grant is a set element with a kernel timeout, so an open port closes on
//! time even if the daemon dies. Backends are edges (they do I/O); the bytes
//! they send are built by pure functions in their submodules and tested as bytes.

use core::fmt;
use core::net::IpAddr;
use core::time::Duration;

use crate::port::PortSpec;

pub mod dry_run;
pub mod ipset;
pub mod nfnetlink;
pub mod nft;

/// One address allowed to one port for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The address allowed in.
    pub addr: IpAddr,
    /// The port it may open new connections to.
    pub port: PortSpec,
    /// How long new connections are allowed; the kernel removes the element after it.
    pub timeout: Duration,
}

/// A firewall failure, with the operation that failed.
#[derive(Debug)]
pub struct FirewallError {
    /// What was being done, e.g. "add element to postern_allow4".
    pub context: String,
    /// The underlying OS error (errno from the kernel or a spawn failure).
    pub source: std::io::Error,
}

impl fmt::Display for FirewallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for FirewallError {}

/// What every firewall backend does.
pub trait Backend {
    /// Prepares kernel state: tables/sets/chains for `guarded` ports (the ports
    /// that stay closed unless granted). Called at start and after a reload with
    /// the new guarded set; must be idempotent and keep live grants.
    fn setup(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError>;
    /// Allows `grant.addr` to `grant.port` for `grant.timeout` (re-granting restarts the timeout).
    fn grant(&mut self, grant: &Grant) -> Result<(), FirewallError>;
    /// Removes the grant of `addr` to `port` now; absent grants are not an error.
    fn revoke(&mut self, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError>;
    /// Removes what `setup` created (if the backend owns it). Called on clean exit.
    fn teardown(&mut self) -> Result<(), FirewallError>;
    /// Drops everything from `addr` for `duration` (a kernel timeout, so the
    /// ban ends on time even if the daemon dies; banning again restarts it).
    /// Backends without ban sets log that and change nothing.
    fn ban(&mut self, addr: IpAddr, duration: Duration) -> Result<(), FirewallError> {
        log::warn!(
            "{}: bans not supported by this backend: {addr} not banned for {} s",
            self.name(),
            duration.as_secs()
        );
        Ok(())
    }
    /// Lifts the ban of `addr` now; an absent ban is not an error. Backends
    /// without ban sets do nothing.
    fn unban(&mut self, addr: IpAddr) -> Result<(), FirewallError> {
        let _ = addr;
        Ok(())
    }
    /// A short name for logs (`nft`, `fw4`, `dry-run`).
    fn name(&self) -> &'static str;
    /// The nftables table (family inet) and sets whose deletion drops this
    /// backend's grants, so the daemon can watch for firewall restarts and
    /// re-apply live grants. `None`: nothing to watch.
    fn watched(&self) -> Option<(&'static str, [&'static str; 2])> {
        None
    }
}
