//! The nftables backend: grants as set elements with kernel timeouts.
//!
//! Two flavours share one per-grant path:
//! * **standalone** owns `table inet postern` (guard set, `allow4`/`allow6`,
//!   the ban sets `ban4`/`ban6`, an
//!   input chain at priority filter - 5). Setup and teardown are one netlink
//!   batch each, built by [`standalone`] (the same batch `nft -f` sends for the
//!   [`ruleset`] text; no `nft` binary needed); setup is atomic, idempotent and
//!   keeps live grants.
//! * **fw4** adds elements to `postern_allow4`/`postern_allow6` in OpenWrt's
//!   `table inet fw4`, which the postern fw4 includes create (sets, and the
//!   chains `postern_input`/`postern_forward` that fw4's base `input` and
//!   `forward` chains jump to for the capture devices, ahead of every zone's
//!   rules). Setup checks (over netlink) that the sets exist and fills the
//!   guard set `postern_guard` and the device sets `postern_devices` /
//!   `postern_drop_devices` with one `nft -f -` (the capture devices and the
//!   zones' verdict come from [`Backend::set_capture`]); after `fw4 restart`
//!   the daemon's resync runs setup again. Teardown leaves fw4 alone.
//!
//! Port forwards ([`Backend::forward`]): an IPv4 grant is an element of the
//! DNAT map `fwd4` (`src . proto . port : to4 . to_port`, used by the nat
//! chain `dstnat` at priority dstnat - 5) plus an element of `fwd_allow4`
//! (`src . to4 . proto . to_port`), added in one transaction with a kernel
//! timeout; IPv6 has no NAT, only `fwd_allow6`. The standalone `forward`
//! chain (priority filter - 5) accepts established flows and granted
//! sources outside the banned networks, and drops every other packet to a
//! configured forward target (`fwd_guard4`/`fwd_guard6`): this guard applies
//! to routed traffic from **any** interface (LAN subnets included), not only
//! the WAN. The forward objects are set up by an `nft -f` script
//! ([`ruleset::standalone_forward_script`]); without the `nft` tool
//! `setup_forwards` refuses forwards ("forwards need the nft tool"). On fw4
//! the objects (`postern_fwd4`, `postern_fwd_allow4/6`, the guard sets
//! `postern_fwd_guard4/6`, the base chain `postern_dstnat`, the chain
//! `postern_forward`) come from the includes; `setup_forwards` fills the
//! guard sets, which close the targets to traffic from the capture devices.
//!
//! Bans ([`Backend::ban`]) are networks: elements of the interval sets
//! `ban4`/`ban6` (fw4: `postern_ban4`/`postern_ban6`; `flags interval,
//! timeout`) with a timeout, sent as an interval start and end
//! ([`netlink::NetElemRequest`]). No rule drops them: the grant and forward
//! accepts and the DNAT rule skip sources in them (`ip saddr != @ban4`), so a
//! banned source gets what a source without a grant gets, and nothing but
//! new connections to guarded ports and forward targets is affected. The
//! standalone input chain refuses guarded ports like closed ones (TCP RST,
//! ICMP port unreachable), so neither guard nor ban shows from outside.
//!
//! Where the `nft` tool is installed, the standalone table is set up from the
//! [`ruleset`] text with one `nft -f -`; without it (a minimal router, the
//! emulated MIPS router) the [`standalone`] netlink batch — the same bytes —
//! builds it. A table left by an older postern (ban sets of single
//! addresses: `EEXIST`) is removed and built again. Grants, revokes and bans
//! never spawn `nft`: they are `NEWSETELEM`/`DELSETELEM` batches built by
//! [`netlink`] (pure, byte-tested) and sent by `nfnetlink::socket` (the only
//! netlink I/O).

pub mod monitor;
pub mod netlink;
pub mod ruleset;
pub mod standalone;

use std::io;
use std::net::IpAddr;

use self::netlink::{
    ElemOp, EncodeError, KeyElem, NetElemRequest, SetElemRequest, FORWARD_BUF_LEN, REQUEST_BUF_LEN,
};
use super::nfnetlink::socket::LazySocket;
use super::{
    forward_target, zero_forward_timeout, Backend, FirewallError, ForwardGrant, ForwardLedger,
    ForwardSpec, Grant,
};
use crate::cidr::Cidr;
use crate::firewall::GuardVerdict;
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
    /// Opened on first use, in the caller's network namespace.
    sock: LazySocket,
    /// Standalone only: build the table over netlink even where `nft` exists.
    netlink_setup: bool,
    /// Forward grants made by this backend and not yet over, so a reload can
    /// remove the grants of forwards no longer configured.
    live_forwards: ForwardLedger,
    /// fw4 only: the capture devices and how their zones refuse (see
    /// [`Backend::set_capture`]).
    capture: Vec<String>,
    verdict: GuardVerdict,
}

/// The kernel elements of one forward grant: the DNAT map element (IPv4
/// only) and the allow-set element.
struct ForwardElems {
    map_key: Option<[u8; 12]>,
    map_value: [u8; 8],
    allow_key: [u8; 40],
    allow_len: usize,
    ipv6: bool,
}

impl ForwardElems {
    /// The elements for `src` (canonical) through `spec` to `target`.
    fn new(src: IpAddr, spec: &ForwardSpec, target: IpAddr) -> Option<ForwardElems> {
        let mut allow_key = [0u8; 40];
        let allow_len =
            netlink::fwd_allow_key(src, target, spec.proto, spec.to_port, &mut allow_key)?;
        let (map_key, map_value) = match (src, target) {
            (IpAddr::V4(s), IpAddr::V4(t)) => (
                Some(netlink::fwd_map_key(s, spec.proto, spec.port)),
                netlink::fwd_map_value(t, spec.to_port),
            ),
            _ => (None, [0; 8]),
        };
        Some(ForwardElems {
            map_key,
            map_value,
            allow_key,
            allow_len,
            ipv6: src.is_ipv6(),
        })
    }
}

impl NftBackend {
    /// The standalone flavour, owning `table inet postern`.
    pub fn standalone() -> NftBackend {
        NftBackend {
            flavour: Flavour::Standalone,
            sock: LazySocket::new(),
            netlink_setup: false,
            live_forwards: ForwardLedger::default(),
            capture: Vec::new(),
            verdict: GuardVerdict::Reject,
        }
    }

    /// The standalone flavour with its table always built by the netlink
    /// batch of [`standalone`] (what runs where no `nft` tool is installed).
    pub fn standalone_over_netlink() -> NftBackend {
        NftBackend {
            netlink_setup: true,
            ..NftBackend::standalone()
        }
    }

    /// The fw4 flavour, using `postern_allow4`/`postern_allow6` in `table inet fw4`.
    pub fn fw4() -> NftBackend {
        NftBackend {
            flavour: Flavour::Fw4,
            ..NftBackend::standalone()
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

    /// The ban set for an address family: `ban4`/`ban6` or `postern_ban4`/`postern_ban6`.
    pub fn ban_set(&self, ipv6: bool) -> &'static str {
        match (self.flavour, ipv6) {
            (Flavour::Standalone, false) => ruleset::STANDALONE_BAN4,
            (Flavour::Standalone, true) => ruleset::STANDALONE_BAN6,
            (Flavour::Fw4, false) => ruleset::FW4_BAN4,
            (Flavour::Fw4, true) => ruleset::FW4_BAN6,
        }
    }

    /// The forward DNAT map: `fwd4` or `postern_fwd4`.
    pub fn forward_map(&self) -> &'static str {
        match self.flavour {
            Flavour::Standalone => ruleset::STANDALONE_FWD4,
            Flavour::Fw4 => ruleset::FW4_FWD4,
        }
    }

    /// The forward allow set for an address family: `fwd_allow4`/`fwd_allow6`
    /// or `postern_fwd_allow4`/`postern_fwd_allow6`.
    pub fn forward_allow_set(&self, ipv6: bool) -> &'static str {
        match (self.flavour, ipv6) {
            (Flavour::Standalone, false) => ruleset::STANDALONE_FWD_ALLOW4,
            (Flavour::Standalone, true) => ruleset::STANDALONE_FWD_ALLOW6,
            (Flavour::Fw4, false) => ruleset::FW4_FWD_ALLOW4,
            (Flavour::Fw4, true) => ruleset::FW4_FWD_ALLOW6,
        }
    }

    /// Sends the element batch `elems` with `op` in one transaction.
    /// `Ok(Err(errno))` is the kernel refusing it (nothing applied).
    fn forward_batch(&mut self, op: ElemOp, elems: &[KeyElem<'_>]) -> io::Result<Result<(), i32>> {
        let table = self.table();
        let n = u32::try_from(elems.len()).unwrap_or(u32::MAX);
        let mut buf = [0u8; FORWARD_BUF_LEN];
        self.sock.exchange_batch(n + 2, &mut buf, |seq, buf| {
            let len = netlink::elem_batch(op, table, elems, seq, buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok((len, seq.wrapping_add(1), seq.wrapping_add(n)))
        })
    }

    /// Whether `set` holds `key` now (an unbatched get, no transaction).
    fn key_present(&mut self, set: &'static str, key: &[u8]) -> io::Result<Result<(), i32>> {
        let table = self.table();
        self.exchange(|seq, buf| {
            let n = netlink::get_elem_key(table, set, key, seq, buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok((n, seq))
        })
    }

    /// Deletes `key` from `set` if it is there (absent: nothing sent but the get).
    fn delete_key_if_present(
        &mut self,
        set: &'static str,
        key: &[u8],
        what: &str,
    ) -> Result<(), FirewallError> {
        let table = self.table();
        let err = |source| FirewallError {
            context: format!("{what}: delete from inet {table} {set}"),
            source,
        };
        match self.key_present(set, key) {
            Ok(Ok(())) => {}
            Ok(Err(libc::ENOENT)) => return Ok(()),
            Ok(Err(errno)) => return Err(err(io::Error::from_raw_os_error(errno))),
            Err(e) => return Err(err(e)),
        }
        let elem = KeyElem {
            set,
            key,
            data: None,
        };
        match self.forward_batch(ElemOp::Delete, &[elem]) {
            Ok(Ok(())) | Ok(Err(libc::ENOENT)) => Ok(()),
            Ok(Err(errno)) => Err(err(io::Error::from_raw_os_error(errno))),
            Err(e) => Err(err(e)),
        }
    }

    /// Removes both elements of the grant of `src` through `spec` (absent ones are fine).
    fn remove_forward(&mut self, src: IpAddr, spec: &ForwardSpec) -> Result<(), FirewallError> {
        let src = src.to_canonical();
        self.live_forwards.ended(src, spec);
        let Ok((target, _)) = forward_target(src, spec) else {
            return Ok(()); // no target of this family: nothing was ever added
        };
        let Some(e) = ForwardElems::new(src, spec, target) else {
            return Ok(());
        };
        let what = format!("unforward {} from {src}", spec.describe());
        if let Some(k) = e.map_key {
            self.delete_key_if_present(self.forward_map(), &k, &what)?;
        }
        let set = self.forward_allow_set(e.ipv6);
        self.delete_key_if_present(set, &e.allow_key[..e.allow_len], &what)
    }

    /// One change to a ban set; `ENOENT` is success when `absent_ok`.
    fn ban_elem(&mut self, op: ElemOp, net: Cidr, absent_ok: bool) -> Result<(), FirewallError> {
        let req = NetElemRequest {
            op,
            table: self.table(),
            set: self.ban_set(net.addr().is_ipv6()),
            net,
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
            // The exact network was deleted first, so this is an interval
            // set refusing an overlap: a live ban of another prefix length.
            Ok(Err(libc::EEXIST)) if matches!(op, ElemOp::Add { .. }) => io::Error::new(
                io::ErrorKind::AlreadyExists,
                "overlaps a live ban of another prefix length (was the IPv6 ban prefix changed?)",
            ),
            Ok(Err(errno)) => io::Error::from_raw_os_error(errno),
            Err(e) => e,
        };
        let verb = match op {
            ElemOp::Add { .. } => "add",
            ElemOp::Delete => "delete",
        };
        Err(FirewallError {
            context: format!("{verb} {net} in inet {} {}", req.table, req.set),
            source,
        })
    }

    /// Sends one request built by `msg_for_seq` (see [`LazySocket::exchange`]).
    fn exchange(
        &mut self,
        msg_for_seq: impl FnOnce(u32, &mut [u8]) -> io::Result<(usize, u32)>,
    ) -> io::Result<Result<(), i32>> {
        let mut buf = [0u8; REQUEST_BUF_LEN];
        self.sock.exchange(3, &mut buf, msg_for_seq)
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

    /// Whether the allow set holds `addr . port` now (an unbatched get).
    fn elem_present(&mut self, addr: IpAddr, port: PortSpec) -> Result<bool, FirewallError> {
        let addr = addr.to_canonical();
        let (table, set) = (self.table(), self.allow_set(addr.is_ipv6()));
        let outcome = self.exchange(|seq, buf| {
            let n = netlink::get_elem(table, set, addr, port, seq, buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok((n, seq))
        });
        let source = match outcome {
            Ok(Ok(())) => return Ok(true),
            Ok(Err(libc::ENOENT)) => return Ok(false),
            Ok(Err(errno)) => io::Error::from_raw_os_error(errno),
            Err(e) => e,
        };
        Err(FirewallError {
            context: format!(
                "look up {addr} . {} . {} in inet {table} {set}",
                port.proto, port.port
            ),
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
        // Reserve more numbers than any batch uses (a dozen messages).
        let outcome = self.sock.exchange_batch(32, &mut buf, |seq, buf| {
            let batch =
                build(seq, buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok((batch.len, batch.first_ack, batch.last_ack))
        });
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(errno)) => Err(err(io::Error::from_raw_os_error(errno))),
            Err(e) => Err(err(e)),
        }
    }

    /// Creates or updates the standalone table: with `nft -f` where the tool
    /// is installed, else with the equivalent netlink batch.
    fn setup_standalone(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError> {
        if !self.netlink_setup && nft_installed() {
            run_nft_script(
                &ruleset::standalone_setup_script(guarded),
                "set up table inet postern",
            )
        } else {
            self.table_batch(
                standalone::setup_buf_len(guarded.len()),
                "set up table inet postern",
                |seq, buf| standalone::setup(ruleset::STANDALONE_TABLE, guarded, seq, buf),
            )
        }
    }

    /// Fills the fw4 guard and device sets (one `nft -f -` transaction): the
    /// include's `postern_input` then closes `guarded` on the capture devices.
    fn setup_fw4_guard(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError> {
        for set in [
            ruleset::FW4_GUARD,
            ruleset::FW4_DEVICES,
            ruleset::FW4_DROP_DEVICES,
        ] {
            self.check_fw4_set(set).map_err(|e| FirewallError {
                context: if e.source.raw_os_error() == Some(libc::ENOENT) {
                    format!(
                        "fw4 set {set} missing: the fw4 include of this postern version \
                         is not loaded, so guarded ports would stay open (reload the \
                         firewall; see /var/run/postern/firewall-include.err)"
                    )
                } else {
                    e.context
                },
                source: e.source,
            })?;
        }
        let drop = self.verdict == GuardVerdict::Drop;
        let script = ruleset::fw4_setup_script(guarded, &self.capture, drop).ok_or_else(|| {
            FirewallError {
                context: format!("fw4: capture devices {:?}", self.capture),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not an interface name"),
            }
        })?;
        run_nft_script(&script, "fill the fw4 guard sets")?;
        if self.capture.is_empty() {
            log::warn!("fw4: no capture device given: guarded ports are closed on no interface");
        }
        log::info!(
            "fw4: guarding {} port(s) on {} ({}), ahead of the zones' rules",
            guarded.len(),
            self.capture.join(" "),
            if drop { "drop" } else { "reject" }
        );
        Ok(())
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

/// Whether a setup failed because an object exists with another definition
/// (`EEXIST` from the kernel, "File exists" from `nft`).
fn already_exists(e: &FirewallError) -> bool {
    e.source.raw_os_error() == Some(libc::EEXIST) || e.source.to_string().contains("File exists")
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

/// True when the `nft` tool can be run (it sets up the full standalone table,
/// ban sets included).
fn nft_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("nft").is_file()))
}

/// Runs `nft -f -` with `script` on stdin. `what` names the step for errors.
pub fn run_nft_script(script: &str, what: &str) -> Result<(), FirewallError> {
    use crate::spawn::{Spawn, Stdio};
    use std::io::Write as _;
    let mut child = Spawn::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::Piped)
        .stdout(Stdio::Null)
        .stderr(Stdio::Piped)
        .spawn()
        .map_err(|source| FirewallError {
            context: if source.kind() == io::ErrorKind::NotFound {
                format!("{what}: cannot run `nft` (is the nftables package installed?)")
            } else {
                format!("{what}: cannot run `nft`")
            },
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error (nft exited early) shows up in the exit status below.
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| FirewallError {
        context: format!("{what}: waiting for `nft`"),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(FirewallError {
            context: format!("{what}: `nft -f -` failed ({})", out.status),
            source: io::Error::other(stderr.trim().to_string()),
        })
    }
}

impl Backend for NftBackend {
    fn setup(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError> {
        match self.flavour {
            Flavour::Standalone => {
                if let Err(e) = self.setup_standalone(guarded) {
                    if !already_exists(&e) {
                        return Err(e);
                    }
                    // A set of the same name but another type: the table was
                    // left by another postern version (its ban sets held
                    // addresses, not networks). Rebuild it; grants and bans
                    // of this daemon are re-applied by its resync.
                    log::warn!(
                        "nft: table inet {} has objects of another postern version ({e}): rebuilding it",
                        ruleset::STANDALONE_TABLE
                    );
                    self.teardown()?;
                    self.setup_standalone(guarded)?;
                }
                log::info!(
                    "nft: table inet {} ready, {} guarded port(s)",
                    ruleset::STANDALONE_TABLE,
                    guarded.len()
                );
                Ok(())
            }
            Flavour::Fw4 => {
                self.check_fw4_set(ruleset::FW4_ALLOW4)?;
                self.check_fw4_set(ruleset::FW4_ALLOW6)?;
                self.setup_fw4_guard(guarded)?;
                // An older include has no ban sets: grants still work, bans fail (logged).
                for set in [ruleset::FW4_BAN4, ruleset::FW4_BAN6] {
                    if let Err(e) = self.check_fw4_set(set) {
                        log::warn!("fw4: {e}: sources will not be banned");
                    }
                }
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
        // Re-adding an element keeps its old expiry: delete it first, then
        // add, in separate batches since an error aborts a batch. Only delete
        // an element that exists: deleting an absent one aborts the kernel's
        // transaction, which waits for an RCU grace period (measured ~10 ms,
        // most of the knock-to-open latency); a get is no transaction.
        if self.elem_present(grant.addr, grant.port)? {
            self.elem(ElemOp::Delete, grant.addr, grant.port, true)?;
        }
        self.elem(op, grant.addr, grant.port, false)
    }

    fn revoke(&mut self, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError> {
        self.elem(ElemOp::Delete, addr, port, true)
    }

    fn ban(&mut self, net: Cidr, duration: core::time::Duration) -> Result<(), FirewallError> {
        let op = ElemOp::Add { timeout: duration };
        if duration.is_zero() {
            return Err(FirewallError {
                context: format!("ban {net}"),
                source: io::Error::new(io::ErrorKind::InvalidInput, EncodeError::ZeroTimeout),
            });
        }
        // As for grants: re-adding keeps the old expiry, so delete first.
        // Bans are rare; the delete of an absent element costs little here.
        self.ban_elem(ElemOp::Delete, net, true)?;
        self.ban_elem(op, net, false)
    }

    fn unban(&mut self, net: Cidr) -> Result<(), FirewallError> {
        self.ban_elem(ElemOp::Delete, net, true)
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        self.sock.close();
        match self.flavour {
            Flavour::Standalone if !self.netlink_setup && nft_installed() => run_nft_script(
                &ruleset::standalone_teardown_script(),
                "remove table inet postern",
            ),
            Flavour::Standalone => {
                self.table_batch(256, "remove table inet postern", |seq, buf| {
                    standalone::teardown(ruleset::STANDALONE_TABLE, seq, buf)
                })?;
                self.sock.close();
                Ok(())
            }
            Flavour::Fw4 => Ok(()),
        }
    }

    fn setup_forwards(&mut self, forwards: &[ForwardSpec]) -> Result<(), FirewallError> {
        // Grants of forwards no longer configured (or changed) end now.
        let stale = self.live_forwards.stale(forwards);
        match self.flavour {
            Flavour::Standalone => {
                if self.netlink_setup || !nft_installed() {
                    if forwards.is_empty() {
                        return Ok(());
                    }
                    return Err(FirewallError {
                        context: format!(
                            "set up {} forward(s) in table inet {}",
                            forwards.len(),
                            ruleset::STANDALONE_TABLE
                        ),
                        source: io::Error::new(
                            io::ErrorKind::Unsupported,
                            "forwards need the nft tool (install the nftables package)",
                        ),
                    });
                }
                for (src, spec) in &stale {
                    self.remove_forward(*src, spec)?;
                }
                // Without forwards the script removes every forward object.
                run_nft_script(
                    &ruleset::standalone_forward_script(forwards),
                    "set up forwards in table inet postern",
                )?;
                if forwards.is_empty() {
                    self.live_forwards.clear();
                }
                log::info!(
                    "nft: {} forward(s) ready in table inet {}",
                    forwards.len(),
                    ruleset::STANDALONE_TABLE
                );
                Ok(())
            }
            Flavour::Fw4 => {
                let guards = [ruleset::FW4_FWD_GUARD4, ruleset::FW4_FWD_GUARD6];
                if !forwards.is_empty() {
                    for set in [
                        ruleset::FW4_FWD4,
                        ruleset::FW4_FWD_ALLOW4,
                        ruleset::FW4_FWD_ALLOW6,
                        guards[0],
                        guards[1],
                    ] {
                        self.check_fw4_set(set).map_err(|e| FirewallError {
                            context: format!(
                                "{}: forwards need the postern fw4 include \
                                 /usr/share/nftables.d/table-pre/20-postern.nft \
                                 (and chain-pre/forward/20-postern.nft) of this version",
                                e.context
                            ),
                            source: e.source,
                        })?;
                    }
                }
                for (src, spec) in &stale {
                    self.remove_forward(*src, spec)?;
                }
                // An older include without the guard sets has no forwards to guard.
                if forwards.is_empty() && guards.iter().any(|s| self.check_fw4_set(s).is_err()) {
                    return Ok(());
                }
                run_nft_script(
                    &ruleset::fw4_forward_script(forwards),
                    "fill the fw4 forward guard sets",
                )?;
                log::info!("fw4: {} forward(s), forward sets present", forwards.len());
                Ok(())
            }
        }
    }

    fn forward(&mut self, g: &ForwardGrant) -> Result<(), FirewallError> {
        if g.timeout.is_zero() {
            return Err(zero_forward_timeout(g));
        }
        let src = g.src.to_canonical();
        let (target, _) = forward_target(src, &g.spec)?;
        let what = format!("forward {} from {src} to {target}", g.spec.describe());
        let e = ForwardElems::new(src, &g.spec, target).ok_or_else(|| FirewallError {
            context: what.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "address families differ"),
        })?;
        // As for grants: re-adding keeps the old expiry, so delete first (in
        // their own transactions: a failing delete would abort the add).
        let map = self.forward_map();
        let allow = self.forward_allow_set(e.ipv6);
        if let Some(k) = e.map_key {
            self.delete_key_if_present(map, &k, &what)?;
        }
        self.delete_key_if_present(allow, &e.allow_key[..e.allow_len], &what)?;
        // DNAT and accept in one transaction: both or neither.
        let allow_elem = KeyElem {
            set: allow,
            key: &e.allow_key[..e.allow_len],
            data: None,
        };
        let both;
        let elems: &[KeyElem<'_>] = match &e.map_key {
            Some(k) => {
                let map_elem = KeyElem {
                    set: map,
                    key: k,
                    data: Some(&e.map_value),
                };
                both = [map_elem, allow_elem];
                &both
            }
            None => core::slice::from_ref(&allow_elem),
        };
        let op = ElemOp::Add { timeout: g.timeout };
        let source = match self.forward_batch(op, elems) {
            Ok(Ok(())) => {
                self.live_forwards.granted(src, g.spec, g.timeout);
                return Ok(());
            }
            Ok(Err(errno)) => io::Error::from_raw_os_error(errno),
            Err(e) => e,
        };
        Err(FirewallError {
            context: format!("{what}: add to inet {} {}", self.table(), allow),
            source,
        })
    }

    fn unforward(&mut self, src: IpAddr, spec: &ForwardSpec) -> Result<(), FirewallError> {
        self.remove_forward(src, spec)
    }

    fn watched(&self) -> Option<(&'static str, [&'static str; 2])> {
        Some((self.table(), [self.allow_set(false), self.allow_set(true)]))
    }

    fn set_capture(&mut self, devices: &[String], verdict: GuardVerdict) {
        self.capture = devices.to_vec();
        self.verdict = verdict;
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
