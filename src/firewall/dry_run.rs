//! The dry-run backend: logs what a real backend would do and remembers it.
//!
//! Owns only an in-memory list of operations (for tests and `backend dry-run`).
//! Must never touch the kernel or spawn anything.

use std::net::IpAddr;

use super::{Backend, FirewallError, Grant};
use crate::port::PortSpec;

/// One call made on a [`DryRunBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRunOp {
    /// `setup` with these guarded ports.
    Setup(Vec<PortSpec>),
    /// `grant`.
    Grant(Grant),
    /// `revoke` of this address and port.
    Revoke(IpAddr, PortSpec),
    /// `ban` of this address for this long.
    Ban(IpAddr, core::time::Duration),
    /// `teardown`.
    Teardown,
}

/// A backend that changes nothing: every call is logged at info level and recorded.
#[derive(Debug, Default)]
pub struct DryRunBackend {
    ops: Vec<DryRunOp>,
}

impl DryRunBackend {
    /// A backend with no recorded operations.
    pub fn new() -> DryRunBackend {
        DryRunBackend::default()
    }

    /// The operations so far, oldest first.
    pub fn ops(&self) -> &[DryRunOp] {
        &self.ops
    }

    /// Forgets the recorded operations.
    pub fn clear(&mut self) {
        self.ops.clear();
    }
}

impl Backend for DryRunBackend {
    fn setup(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError> {
        let list: Vec<String> = guarded.iter().map(|p| p.to_string()).collect();
        log::info!("dry-run: setup, guarding [{}]", list.join(", "));
        self.ops.push(DryRunOp::Setup(guarded.to_vec()));
        Ok(())
    }

    fn grant(&mut self, grant: &Grant) -> Result<(), FirewallError> {
        log::info!(
            "dry-run: grant {} to {} for {} ms",
            grant.addr,
            grant.port,
            grant.timeout.as_millis()
        );
        self.ops.push(DryRunOp::Grant(*grant));
        Ok(())
    }

    fn revoke(&mut self, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError> {
        log::info!("dry-run: revoke {addr} to {port}");
        self.ops.push(DryRunOp::Revoke(addr, port));
        Ok(())
    }

    fn ban(&mut self, addr: IpAddr, duration: core::time::Duration) -> Result<(), FirewallError> {
        log::info!("dry-run: ban {addr} for {} ms", duration.as_millis());
        self.ops.push(DryRunOp::Ban(addr, duration));
        Ok(())
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        log::info!("dry-run: teardown");
        self.ops.push(DryRunOp::Teardown);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "dry-run"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use std::net::Ipv4Addr;

    #[test]
    fn records_every_call_in_order() {
        let mut b = DryRunBackend::new();
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let g = Grant {
            addr,
            port: PortSpec::tcp(22),
            timeout: Duration::from_secs(30),
        };
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        b.grant(&g).unwrap();
        b.revoke(addr, PortSpec::tcp(22)).unwrap();
        b.teardown().unwrap();
        assert_eq!(b.name(), "dry-run");
        assert_eq!(
            b.ops(),
            &[
                DryRunOp::Setup(vec![PortSpec::tcp(22)]),
                DryRunOp::Grant(g),
                DryRunOp::Revoke(addr, PortSpec::tcp(22)),
                DryRunOp::Teardown,
            ]
        );
        b.clear();
        assert!(b.ops().is_empty());
    }
}
