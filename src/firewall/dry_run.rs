//! The dry-run backend: logs what a real backend would do and remembers it.
//!
//! Owns only an in-memory list of operations (for tests and `backend dry-run`).
//! Must never touch the kernel or spawn anything.

use std::net::IpAddr;

use super::{
    forward_target, zero_forward_timeout, Backend, FirewallError, ForwardGrant, ForwardSpec, Grant,
};
use crate::cidr::Cidr;
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
    /// `ban` of this network for this long.
    Ban(Cidr, core::time::Duration),
    /// `unban` of this network.
    Unban(Cidr),
    /// `teardown`.
    Teardown,
    /// `setup_forwards` with these forwards.
    SetupForwards(Vec<ForwardSpec>),
    /// `forward` (only recorded when a real backend would accept it).
    Forward(ForwardGrant),
    /// `unforward` of this source and forward.
    Unforward(IpAddr, ForwardSpec),
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
            grant.timeout.as_millis() as u64
        );
        self.ops.push(DryRunOp::Grant(*grant));
        Ok(())
    }

    fn revoke(&mut self, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError> {
        log::info!("dry-run: revoke {addr} to {port}");
        self.ops.push(DryRunOp::Revoke(addr, port));
        Ok(())
    }

    fn ban(&mut self, net: Cidr, duration: core::time::Duration) -> Result<(), FirewallError> {
        log::info!("dry-run: ban {net} for {} ms", duration.as_millis() as u64);
        self.ops.push(DryRunOp::Ban(net, duration));
        Ok(())
    }

    fn unban(&mut self, net: Cidr) -> Result<(), FirewallError> {
        log::info!("dry-run: unban {net}");
        self.ops.push(DryRunOp::Unban(net));
        Ok(())
    }

    fn setup_forwards(&mut self, forwards: &[ForwardSpec]) -> Result<(), FirewallError> {
        let list: Vec<String> = forwards.iter().map(|f| f.describe()).collect();
        log::info!("dry-run: setup forwards [{}]", list.join(", "));
        self.ops.push(DryRunOp::SetupForwards(forwards.to_vec()));
        Ok(())
    }

    fn forward(&mut self, g: &ForwardGrant) -> Result<(), FirewallError> {
        // Refuse what the real backends refuse, so dry runs show the same errors.
        if g.timeout.is_zero() {
            return Err(zero_forward_timeout(g));
        }
        let (target, _) = forward_target(g.src, &g.spec)?;
        log::info!(
            "dry-run: forward {} from {} to {target} for {} ms",
            g.spec.describe(),
            g.src,
            g.timeout.as_millis() as u64
        );
        self.ops.push(DryRunOp::Forward(*g));
        Ok(())
    }

    fn unforward(&mut self, src: IpAddr, spec: &ForwardSpec) -> Result<(), FirewallError> {
        log::info!("dry-run: unforward {} from {src}", spec.describe());
        self.ops.push(DryRunOp::Unforward(src, *spec));
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

    #[test]
    fn records_forwards_and_refuses_what_real_backends_refuse() {
        use crate::port::L4Proto;
        use std::net::Ipv6Addr;
        let spec = ForwardSpec {
            proto: L4Proto::Tcp,
            port: 8080,
            to4: Some(Ipv4Addr::new(192, 168, 1, 5)),
            to6: None,
            to_port: 80,
        };
        let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let g = ForwardGrant {
            src,
            spec,
            timeout: Duration::from_secs(30),
        };
        let mut b = DryRunBackend::new();
        b.setup_forwards(&[spec]).unwrap();
        b.forward(&g).unwrap();
        b.unforward(src, &spec).unwrap();
        // No IPv6 target: refused, not recorded. Zero timeout: refused.
        let v6 = ForwardGrant {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..g
        };
        let err = b.forward(&v6).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.context.contains("no IPv6 target"), "{err}");
        let zero = ForwardGrant {
            timeout: Duration::ZERO,
            ..g
        };
        assert!(b.forward(&zero).is_err());
        assert_eq!(
            b.ops(),
            &[
                DryRunOp::SetupForwards(vec![spec]),
                DryRunOp::Forward(g),
                DryRunOp::Unforward(src, spec),
            ]
        );
        assert_eq!(spec.describe(), "tcp/8080 -> 192.168.1.5:80");
    }
}
