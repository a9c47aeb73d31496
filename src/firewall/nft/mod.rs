//! The nftables backend: grants as set elements with kernel timeouts.
//!
//! Two flavours share one per-grant path:
//! * **standalone** owns `table inet postern` (guard set, `allow4`/`allow6`, an
//!   input chain at priority filter - 5). Setup and teardown are one netlink
//!   batch each, built by [`standalone`] (the same batch `nft -f` sends for the
//!   [`ruleset`] text; no `nft` binary needed); setup is atomic, idempotent and
//!   keeps live grants.
//! * **fw4** adds elements to `postern_allow4`/`postern_allow6` in OpenWrt's
//!   `table inet fw4`, which the postern fw4 includes create. Setup only checks
//!   (over netlink) that the sets exist; teardown leaves fw4 alone.
//!
//! This module never spawns `nft`: grants and revokes are
//! `NEWSETELEM`/`DELSETELEM` batches built by [`netlink`] (pure, byte-tested)
//! and sent by `socket` (the only netlink I/O).

pub mod netlink;
pub mod ruleset;
mod socket;
pub mod standalone;

use std::io;
use std::net::IpAddr;

use self::netlink::{ElemOp, EncodeError, SetElemRequest, REQUEST_BUF_LEN};
use self::socket::NfSocket;
use super::{Backend, FirewallError, Grant};
use crate::port::PortSpec;

/// Which firewall the backend plugs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// postern owns `table inet postern` (any Linux with nftables).
    Standalone,
    /// OpenWrt fw4: sets inside `table inet fw4`, created by the postern fw4 includes.
    Fw4,
}

/// nftables over netlink (see the module docs).
#[derive(Debug)]
pub struct NftBackend {
    flavour: Flavour,
    /// Opened on first use, in the caller's network namespace; dropped after a
    /// socket error so that the next call starts afresh.
    sock: Option<NfSocket>,
}

impl NftBackend {
    /// The standalone flavour, owning `table inet postern`.
    pub fn standalone() -> NftBackend {
        NftBackend {
            flavour: Flavour::Standalone,
            sock: None,
        }
    }

    /// The fw4 flavour, using `postern_allow4`/`postern_allow6` in `table inet fw4`.
    pub fn fw4() -> NftBackend {
        NftBackend {
            flavour: Flavour::Fw4,
            sock: None,
        }
    }

    /// The flavour this backend was made with.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The `inet` table holding the allow sets.
    pub fn table(&self) -> &'static str {
        match self.flavour {
            Flavour::Standalone => ruleset::STANDALONE_TABLE,
            Flavour::Fw4 => ruleset::FW4_TABLE,
        }
    }

    /// The allow set for an address family: `allow4`/`allow6` or
    /// `postern_allow4`/`postern_allow6`.
    pub fn allow_set(&self, ipv6: bool) -> &'static str {
        match (self.flavour, ipv6) {
            (Flavour::Standalone, false) => ruleset::STANDALONE_ALLOW4,
            (Flavour::Standalone, true) => ruleset::STANDALONE_ALLOW6,
            (Flavour::Fw4, false) => ruleset::FW4_ALLOW4,
            (Flavour::Fw4, true) => ruleset::FW4_ALLOW6,
        }
    }

    fn socket(&mut self) -> io::Result<&mut NfSocket> {
        match self.sock {
            Some(ref mut sock) => Ok(sock),
            None => Ok(self.sock.insert(NfSocket::open()?)),
        }
    }

    /// Sends one request through the socket; a socket failure (not a kernel
    /// refusal) drops the socket so that the next call reopens it.
    fn exchange(
        &mut self,
        msg_for_seq: impl Fn(u32, &mut [u8]) -> io::Result<(usize, u32)>,
    ) -> io::Result<Result<(), i32>> {
        let sock = self.socket()?;
        let seq = sock.next_seq(3);
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let (n, ack_seq) = msg_for_seq(seq, &mut buf)?;
        let result = sock.request(&buf[..n], ack_seq);
        if result.is_err() {
            self.sock = None;
        }
        result
    }

    /// One set-element change. `ENOENT` from the kernel counts as success when
    /// `absent_ok` (deleting an element that is not there).
    fn elem(
        &mut self,
        op: ElemOp,
        addr: IpAddr,
        port: PortSpec,
        absent_ok: bool,
    ) -> Result<(), FirewallError> {
        // A v4-mapped IPv6 address is an IPv4 source on the wire.
        let addr = addr.to_canonical();
        let req = SetElemRequest {
            op,
            table: self.table(),
            set: self.allow_set(addr.is_ipv6()),
            addr,
            port,
        };
        let outcome = self.exchange(|seq, buf| {
            let n = req
                .emit(seq, buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok((n, SetElemRequest::ack_seq(seq)))
        });
        let source = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(libc::ENOENT)) if absent_ok => return Ok(()),
            Ok(Err(errno)) => io::Error::from_raw_os_error(errno),
            Err(e) => e,
        };
        Err(FirewallError {
            context: elem_context(&req),
            source,
        })
    }

    /// Sends a table batch built by [`standalone`] (`build(seq, buf)`) and
    /// waits for every ack. `what` names the step for errors.
    fn table_batch(
        &mut self,
        buf_len: usize,
        what: &str,
        build: impl Fn(u32, &mut [u8]) -> Result<standalone::Batch, EncodeError>,
    ) -> Result<(), FirewallError> {
        let err = |source| FirewallError {
            context: what.to_string(),
            source,
        };
        let mut buf = vec![0u8; buf_len];
        let sock = self.socket().map_err(err)?;
        // Reserve more numbers than any batch uses (a dozen messages).
        let seq = sock.next_seq(32);
        let batch = build(seq, &mut buf)
            .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let outcome = sock.request_range(&buf[..batch.len], batch.first_ack, batch.last_ack);
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(errno)) => Err(err(io::Error::from_raw_os_error(errno))),
            Err(e) => {
                self.sock = None;
                Err(err(e))
            }
        }
    }

    /// Checks that `set` exists in the fw4 table.
    fn check_fw4_set(&mut self, set: &'static str) -> Result<(), FirewallError> {
        let outcome = self
            .exchange(|seq, buf| {
                let n = netlink::get_set(ruleset::FW4_TABLE, set, seq, buf)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Ok((n, seq))
            })
            .map_err(|source| FirewallError {
                context: format!("look up set inet fw4 {set}"),
                source,
            })?;
        match outcome {
            Ok(()) => Ok(()),
            Err(libc::ENOENT) => Err(FirewallError {
                context: format!("fw4 set {set} missing: is the postern fw4 include installed?"),
                source: io::Error::from_raw_os_error(libc::ENOENT),
            }),
            Err(errno) => Err(FirewallError {
                context: format!("look up set inet fw4 {set}"),
                source: io::Error::from_raw_os_error(errno),
            }),
        }
    }
}

/// "add 10.0.0.2 . tcp . 22 to inet postern allow4" (or "delete … from …").
fn elem_context(req: &SetElemRequest<'_>) -> String {
    let (verb, prep) = match req.op {
        ElemOp::Add { .. } => ("add", "to"),
        ElemOp::Delete => ("delete", "from"),
    };
    format!(
        "{verb} {} . {} . {} {prep} inet {} {}",
        req.addr, req.port.proto, req.port.port, req.table, req.set
    )
}

impl Backend for NftBackend {
    fn setup(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError> {
        match self.flavour {
            Flavour::Standalone => {
                self.table_batch(
                    standalone::setup_buf_len(guarded.len()),
                    "set up table inet postern",
                    |seq, buf| standalone::setup(ruleset::STANDALONE_TABLE, guarded, seq, buf),
                )?;
                log::info!(
                    "nft: table inet {} ready, {} guarded port(s)",
                    ruleset::STANDALONE_TABLE,
                    guarded.len()
                );
                Ok(())
            }
            Flavour::Fw4 => {
                // fw4 closes the WAN input by default; `guarded` needs no rules here.
                self.check_fw4_set(ruleset::FW4_ALLOW4)?;
                self.check_fw4_set(ruleset::FW4_ALLOW6)?;
                log::info!(
                    "fw4: sets {} and {} present",
                    ruleset::FW4_ALLOW4,
                    ruleset::FW4_ALLOW6
                );
                Ok(())
            }
        }
    }

    fn grant(&mut self, grant: &Grant) -> Result<(), FirewallError> {
        let op = ElemOp::Add {
            timeout: grant.timeout,
        };
        if grant.timeout.is_zero() {
            // Refused before the delete below, so an existing grant stays as it is.
            return Err(FirewallError {
                context: elem_context(&SetElemRequest {
                    op,
                    table: self.table(),
                    set: self.allow_set(grant.addr.to_canonical().is_ipv6()),
                    addr: grant.addr.to_canonical(),
                    port: grant.port,
                }),
                source: io::Error::new(io::ErrorKind::InvalidInput, EncodeError::ZeroTimeout),
            });
        }
        // Re-adding an element keeps its old expiry: delete first (absent is
        // fine), then add, in separate batches since an error aborts a batch.
        self.elem(ElemOp::Delete, grant.addr, grant.port, true)?;
        self.elem(op, grant.addr, grant.port, false)
    }

    fn revoke(&mut self, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError> {
        self.elem(ElemOp::Delete, addr, port, true)
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        match self.flavour {
            Flavour::Standalone => {
                self.table_batch(256, "remove table inet postern", |seq, buf| {
                    standalone::teardown(ruleset::STANDALONE_TABLE, seq, buf)
                })?;
                self.sock = None;
                Ok(())
            }
            Flavour::Fw4 => Ok(()),
        }
    }

    fn name(&self) -> &'static str {
        match self.flavour {
            Flavour::Standalone => "nft",
            Flavour::Fw4 => "fw4",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use core::time::Duration;

    #[test]
    fn names_and_sets() {
        let s = NftBackend::standalone();
        assert_eq!((s.name(), s.table()), ("nft", "postern"));
        assert_eq!(
            (s.allow_set(false), s.allow_set(true)),
            ("allow4", "allow6")
        );
        let f = NftBackend::fw4();
        assert_eq!(
            (f.name(), f.table(), f.flavour()),
            ("fw4", "fw4", Flavour::Fw4)
        );
        assert_eq!(
            (f.allow_set(false), f.allow_set(true)),
            ("postern_allow4", "postern_allow6")
        );
    }

    #[test]
    fn error_context() {
        let req = SetElemRequest {
            op: ElemOp::Add {
                timeout: Duration::from_secs(1),
            },
            table: "postern",
            set: "allow4",
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port: PortSpec::tcp(22),
        };
        assert_eq!(
            elem_context(&req),
            "add 10.0.0.2 . tcp . 22 to inet postern allow4"
        );
        let req = SetElemRequest {
            op: ElemOp::Delete,
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            set: "allow6",
            port: PortSpec::udp(53),
            ..req
        };
        assert_eq!(
            elem_context(&req),
            "delete ::1 . udp . 53 from inet postern allow6"
        );
    }
}
